/* gmm.c — Gaussian-mixture EM kernels: parameters, the workspace, E-step, the NLL
 * gradient and M-step (contracts and the algorithm in gmm.h; k-means++ initialisation and
 * re-seeding in gmm_init.c, validation and prediction in gmm_model.c, their shared layout
 * in gmm_impl.h).
 *
 * DESIGN (threads): every parallel pass runs on td_pool with tasks fixed by N, M and E:
 *  - E-step, td_gmm_nll_grad, k-means assignment, k-means++ distances: R row chunks
 *    (R = N/4096 clamped to [1, MAX_TASKS]), each with its own scratch and result slot;
 *  - M-step: tasks of (component group, row chunk); fewer than MAX_TASKS components get
 *    several row chunks each, more are grouped. Each task owns its scratch and writes
 *    double partial sums into its slot; the caller reduces the slots in task order.
 * Nothing depends on the number of threads, so every result is bit-identical for any
 * pool. OpenBLAS is single-threaded (td_blas_init): the pool is the only parallelism. */
#include "train/gmm.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math/blas.h"
#include "math/isa.h"
#include "train/gmm_impl.h"
#include "train/layout.h"

int td_gmm_finite(const td_gmm *g)
{
    int64_t n[3] = {g->M, g->M * g->E, td_gmm_covs_size(g->cov, g->M, g->E)};
    const double *v[3] = {g->weights, g->means, g->covs};
    for (int a = 0; a < 3; a++)
        for (int64_t i = 0; i < n[a]; i++)
            if (!(fabs(v[a][i]) <= FLT_MAX)) /* finite in float32 too: models store float */
                return 0;
    return 1;
}

/* 16 floats: one AVX-512 register, two AVX2 registers (GCC vector extensions, as in
 * linear.c). Hot scratch rows are 64-byte aligned and padded to multiples of 16. */
typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

/* *px = e^x for x <= 0, 16 lanes (Cephes expf polynomial, about 1 ulp); 0 below EXP_CUT; a
 * NaN lane counts as x = 0 (so a row whose densities are all 0 gets uniform weights, never
 * NaN). Written with vector extensions because GCC does not vectorise floorf/selects
 * without -ffast-math; by pointer, so no vector crosses a call boundary (ABI). */
static inline void vexp_neg(v16 *px)
{
    v16 x = *px;
    v16i num = x == x;        /* -1 where not NaN */
    x = (v16)((v16i)x & num); /* NaN -> 0 */
    v16i keep = x >= EXP_CUT;
    v16 cut = x * 0.0f + EXP_CUT;
    v16 xc = (v16)(((v16i)x & keep) | ((v16i)cut & ~keep));
    v16 t = xc * 1.44269504088896341f;
    v16 n = (t + 12582912.0f) - 12582912.0f; /* round to nearest (|t| < 2^22) */
    v16 r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    v16 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v16i bits = (__builtin_convertvector(n, v16i) + 127) << 23;
    *px = (v16)((v16i)(p * (v16)bits) & keep);
}

/* n floats, 64-byte aligned, zeroed, n rounded up to 16. */
static float *valloc_f(int64_t n)
{
    size_t bytes = (size_t)((n + 15) / 16 * 16) * sizeof(float);
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes);
    return p;
}

/* ---- parameters ------------------------------------------------------------------- */

int64_t td_gmm_cov_size(td_covariance cov, int64_t E)
{
    return cov == TD_COV_FULL || cov == TD_COV_TIED ? E * E : cov == TD_COV_DIAG ? E : 1;
}

int64_t td_gmm_covs_size(td_covariance cov, int64_t M, int64_t E)
{
    return cov == TD_COV_TIED ? E * E : M * td_gmm_cov_size(cov, E);
}

void td_gmm_placeholder(td_gmm *g)
{
    int64_t M = g->M, E = g->E, CS = td_gmm_cov_size(g->cov, E);
    memset(g->means, 0, sizeof(double) * (size_t)(M * E));
    memset(g->covs, 0, sizeof(double) * (size_t)td_gmm_covs_size(g->cov, M, E));
    for (int64_t k = 0; k < M; k++)
        g->weights[k] = 1.0 / (double)M;
    for (int64_t c = 0; c < td_gmm_covs_size(g->cov, M, E); c += CS) /* each matrix */
        for (int64_t j = 0; j < E; j++)
            if (g->cov == TD_COV_FULL || g->cov == TD_COV_TIED)
                g->covs[c + j * E + j] = 1;
            else if (g->cov == TD_COV_DIAG)
                g->covs[c + j] = 1;
            else
                g->covs[c] = 1;
}

/* One allocation: weights (M), then means (M, E), then covs, the order td_gmm_put writes;
 * so a copy, a snapshot and a restore are one memcpy each. */
td_status td_gmm_alloc(td_gmm *g, int64_t M, int64_t E, td_covariance cov)
{
    memset(g, 0, sizeof *g);
    g->M = M, g->E = E, g->cov = cov;
    if (!(g->weights = xcalloc(td_gmm_bytes(g) / sizeof(double), sizeof(double)))) return TD_ENOMEM;
    g->means = g->weights + M;
    g->covs = g->means + M * E;
    return TD_OK;
}

void td_gmm_free(td_gmm *g)
{
    free(g->weights);
    g->weights = g->means = g->covs = NULL;
}

void td_gmm_copy(td_gmm *dst, const td_gmm *src)
{
    memcpy(dst->weights, src->weights, td_gmm_bytes(src));
}

size_t td_gmm_bytes(const td_gmm *g)
{
    return sizeof(double) * (size_t)(g->M + g->M * g->E + td_gmm_covs_size(g->cov, g->M, g->E));
}

void td_gmm_put(char *p, const td_gmm *g) { memcpy(p, g->weights, td_gmm_bytes(g)); }

void td_gmm_get(td_gmm *g, const char *p) { memcpy(g->weights, p, td_gmm_bytes(g)); }

void td_gmm_to_params(float *p, const td_gmm *g)
{
    int64_t M = g->M, ME = g->M * g->E, MC = td_gmm_covs_size(g->cov, g->M, g->E);
    for (int64_t i = 0; i < M; i++)
        p[i] = (float)g->weights[i];
    for (int64_t i = 0; i < ME; i++)
        p[M + i] = (float)g->means[i];
    for (int64_t i = 0; i < MC; i++)
        p[M + ME + i] = (float)g->covs[i];
}

void td_gmm_from_params(td_gmm *g, const float *p)
{
    int64_t M = g->M, ME = g->M * g->E, MC = td_gmm_covs_size(g->cov, g->M, g->E);
    for (int64_t i = 0; i < M; i++)
        g->weights[i] = p[i];
    for (int64_t i = 0; i < ME; i++)
        g->means[i] = p[M + i];
    for (int64_t i = 0; i < MC; i++)
        g->covs[i] = p[M + ME + i];
}

int td_gmm_layout(const td_model *m, td_tensor_desc *out)
{
    int n = 0;
    int64_t off = 0, M = m->K, E = m->D;
    td_tensor_add(out, &n, &off, "weights", 0, 1, M, 0, 0);
    td_tensor_add(out, &n, &off, "means", 0, M, E, 0, 0);
    if (m->covariance == TD_COV_FULL)
        td_tensor_add(out, &n, &off, "covariances", 0, M, E * E, 0, 0);
    else if (m->covariance == TD_COV_TIED)
        td_tensor_add(out, &n, &off, "covariances", 0, E, E, 0, 0);
    else if (m->covariance == TD_COV_DIAG)
        td_tensor_add(out, &n, &off, "covariances", 0, M, E, 0, 0);
    else
        td_tensor_add(out, &n, &off, "covariances", 0, 1, M, 0, 0);
    return n;
}

/* The work split, from N, E, M and the covariance kind only: E-step chunks R of blocks
 * of B rows (Mg components per full-covariance block); M-step tasks T2 = groups of Kg
 * components x C row chunks, with blocks of B2 rows. */
static void work_plan(td_gmm_work *w, int64_t *Kg_out)
{
    int64_t N = w->N, E = w->E, M = w->M;
    w->R = imax(1, imin(MAX_TASKS, (N + ROWS_PER_TASK - 1) / ROWS_PER_TASK));
    w->R = imin(w->R, imax(1, ESUM_DOUBLES / (M * (E + 1))));
    int64_t B = SCRATCH_FLOATS / imax(1, imax(M, E));
    B = imax(16, imin(256, B / 16 * 16)); /* a multiple of 16: see log_densities */
    w->B = B;
    w->Mg = imax(1, imin(M, SCRATCH_FLOATS / (B * E)));
    int64_t C = 1, Kg = 1;
    if (M >= MAX_TASKS) {
        Kg = (M + MAX_TASKS - 1) / MAX_TASKS;
    } else {
        C = MAX_TASKS / M;
        C = imin(C, imax(1, N / 2048));
        if (M * w->SA * C > (1ll << 24)) C = 1;
    }
    int64_t G = (M + Kg - 1) / Kg;
    w->C = C;
    w->T2 = G * C;
    w->B2 = imax(8, imin(256, SCRATCH_FLOATS / E / 8 * 8));
    *Kg_out = Kg;
}

static size_t vbytes(int64_t n) { return (size_t)((n + 15) / 16 * 16) * sizeof(float); }

size_t td_gmm_work_bytes(int64_t N, int64_t E, int64_t M, td_covariance cov)
{
    int dbl = cov == TD_COV_FULL || cov == TD_COV_TIED;
    td_gmm_work w = {
        .N = N, .E = E, .M = M, .cov = cov, .CS = td_gmm_cov_size(cov, E), .SA = dbl ? E * E : E};
    int64_t Kg;
    work_plan(&w, &Kg);
    /* centre, respT, loglik; PT, cv (or PTd, cvd), cst, mu_cf, mu_cd, skip */
    size_t b = sizeof w + sizeof(double) * (size_t)E + sizeof(float) * (size_t)(E + M * N + N) +
        (dbl ? (sizeof(double) + sizeof(float)) *
                 (size_t)((cov == TD_COV_FULL ? M * E * E : E * E) + M * E)
             : sizeof(float) * (size_t)(2 * M * E)) +
        sizeof(double) * (size_t)(M + M * E) + sizeof(float) * (size_t)(M * E) + (size_t)M;
    size_t chunk = vbytes(E * w.B) * 2 + vbytes(M * w.B) + 2 * vbytes(w.B) + /* + gT */
        sizeof(double) * (size_t)(M + M * E) + sizeof(float) * (size_t)(M * E) +
        (dbl ? sizeof(double) *
                     (size_t)(E * w.B + w.Mg * E * w.B + w.B +
                              2 * E * w.B) + /* xbTd yTd accd gTd */
                 vbytes(w.Mg * E * w.B) +
                 vbytes(E * w.B) /* yT, gT's 2nd half */
             : 0);
    b += (size_t)w.R * chunk;
    int64_t cap = w.B2 + GATHER_WIN;
    b += (size_t)w.T2 *
        (sizeof(float) * (size_t)(2 * cap * E + cap + E) + sizeof(int64_t) * GATHER_WIN +
         (dbl ? sizeof(double) * (size_t)(2 * cap * E + E * E) : 0));
    b += sizeof(double) * (size_t)(w.C * M * (1 + E + w.SA));
    b += sizeof(double) * (size_t)w.CS; /* data_cov */
    /* k-means++ (td_gmm_initialize): cum, d2, labels twice, centres twice, sums */
    b += sizeof(double) * (size_t)(2 * N + 3 * M * E + M) + sizeof(int32_t) * (size_t)(2 * N) +
        sizeof(float) * (size_t)(M * E + M) + (size_t)M;
    /* the data's covariance (data_covariance: E*E twice for full, else O(E)) and a split
     * (td_gmm_split: top_eigen for full, the scatter of a component's rows for spherical) */
    size_t EE = (size_t)(E * E);
    b += cov == TD_COV_FULL       ? sizeof(double) * 4 * EE
        : cov == TD_COV_SPHERICAL ? sizeof(double) * EE
                                  : 0;
    return b + sizeof(double) * (size_t)(4 * E) + sizeof(float) * 512 * (size_t)E;
}

/* ---- the workspace ------------------------------------------------------------------ */

td_gmm_work *td_gmm_work_create(const float *X, int64_t N, int64_t E, int64_t M, td_covariance cov,
                                const double *centre)
{
    td_blas_init();
    td_gmm_work *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->X = X, w->N = N, w->E = E, w->M = M, w->cov = cov;
    w->CS = td_gmm_cov_size(cov, E);
    w->CSK = cov == TD_COV_TIED ? 0 : w->CS;
    w->dbl = cov == TD_COV_FULL || cov == TD_COV_TIED;
    w->SA = w->dbl ? E * E : E;
    int ok = (w->centre = xcalloc((size_t)E, sizeof(double))) &&
        (w->centre_f = xcalloc((size_t)E, sizeof(float))) &&
        (w->respT = xcalloc((size_t)(M * N), sizeof(float))) &&
        (w->loglik = xcalloc((size_t)N, sizeof(float))) &&
        (!w->dbl ||
         ((w->PTd = xcalloc((size_t)(cov == TD_COV_FULL ? M * E * E : E * E), sizeof(double))) &&
          (w->cvd = xcalloc((size_t)(M * E), sizeof(double))))) &&
        (w->PT = xcalloc((size_t)(cov == TD_COV_FULL       ? M * E * E
                                      : cov == TD_COV_TIED ? E * E
                                                           : M * E),
                         sizeof(float))) &&
        (w->cv = xcalloc((size_t)(M * E), sizeof(float))) &&
        (w->cst = xcalloc((size_t)M, sizeof(double))) &&
        (w->mu_cf = xcalloc((size_t)(M * E), sizeof(float))) &&
        (w->mu_cd = xcalloc((size_t)(M * E), sizeof(double))) && (w->skip = xcalloc((size_t)M, 1));
    if (!ok) goto fail;
    if (centre) {
        memcpy(w->centre, centre, sizeof(double) * (size_t)E);
    } else {
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < E; j++)
                w->centre[j] += X[i * E + j];
        for (int64_t j = 0; j < E; j++)
            w->centre[j] /= (double)N;
    }
    for (int64_t j = 0; j < E; j++)
        w->centre_f[j] = (float)w->centre[j];

    /* E-step chunks and blocks */
    int64_t Kg;
    work_plan(w, &Kg);
    int64_t B = w->B, C = w->C;
    for (int64_t r = 0; r < w->R; r++) {
        echunk *c = &w->ch[r];
        c->lo = N * r / w->R;
        c->hi = N * (r + 1) / w->R;
        ok = (c->xbT = valloc_f(E * B)) && (c->lp = valloc_f(M * B)) && (c->mx = valloc_f(B)) &&
            (c->sm = valloc_f(B)) && (c->nk = xcalloc((size_t)M, sizeof(double))) &&
            (c->rx = xcalloc((size_t)(M * E), sizeof(double))) &&
            (c->rxf = xcalloc((size_t)(M * E), sizeof(float))) &&
            (!w->dbl ||
             ((c->yT = valloc_f((cov == TD_COV_FULL ? w->Mg : 1) * E * B)) &&
              (c->xbTd = xcalloc((size_t)(E * B), sizeof(double))) &&
              (c->yTd =
                   xcalloc((size_t)((cov == TD_COV_FULL ? w->Mg : 1) * E * B), sizeof(double))) &&
              (c->accd = xcalloc((size_t)B, sizeof(double)))));
        if (!ok) goto fail;
    }

    /* M-step tasks: (component group, row chunk) */
    for (int64_t t = 0; t < w->T2; t++) {
        mtask *m = &w->mt[t];
        int64_t g = t / C;
        m->c = t % C;
        m->k0 = g * Kg;
        m->k1 = imin(M, m->k0 + Kg);
        m->lo = N * m->c / C;
        m->hi = N * (m->c + 1) / C;
        int64_t cap = w->B2 + GATHER_WIN;
        ok = (m->xb = xcalloc((size_t)(cap * E), sizeof(float))) &&
            (m->rr = xcalloc((size_t)cap, sizeof(float))) &&
            (m->wb = xcalloc((size_t)(cap * E), sizeof(float))) &&
            (m->idx = xcalloc(GATHER_WIN, sizeof(int64_t))) &&
            (m->sb = xcalloc((size_t)E, sizeof(float))) &&
            (!w->dbl ||
             ((m->xd = xcalloc((size_t)(cap * E), sizeof(double))) &&
              (m->wd = xcalloc((size_t)(cap * E), sizeof(double))) &&
              (m->sd = xcalloc((size_t)(E * E), sizeof(double)))));
        if (!ok) goto fail;
    }
    ok = (w->nk_part = xcalloc((size_t)(C * M), sizeof(double))) &&
        (w->rx_part = xcalloc((size_t)(C * M * E), sizeof(double))) &&
        (w->s_part = xcalloc((size_t)(C * M * w->SA), sizeof(double)));
    if (ok) return w;
fail:
    td_gmm_work_destroy(w);
    return NULL;
}

void td_gmm_work_destroy(td_gmm_work *w)
{
    if (!w) return;
    for (int r = 0; r < MAX_TASKS; r++) {
        free(w->ch[r].xbT);
        free(w->ch[r].lp);
        free(w->ch[r].mx);
        free(w->ch[r].sm);
        free(w->ch[r].nk);
        free(w->ch[r].rx);
        free(w->ch[r].rxf);
        free(w->ch[r].gT);
        free(w->ch[r].yT);
        free(w->ch[r].xbTd);
        free(w->ch[r].yTd);
        free(w->ch[r].accd);
        free(w->ch[r].gTd);
        free(w->mt[r].xd);
        free(w->mt[r].wd);
        free(w->mt[r].sd);
        free(w->mt[r].idx);
        free(w->mt[r].xb);
        free(w->mt[r].rr);
        free(w->mt[r].wb);
        free(w->mt[r].sb);
    }
    free_kmeans(w);
    free(w->centre);
    free(w->centre_f);
    free(w->respT);
    free(w->loglik);
    free(w->PT);
    free(w->cv);
    free(w->PTd);
    free(w->cvd);
    free(w->mu_cd);
    free(w->cst);
    free(w->nk_part);
    free(w->rx_part);
    free(w->s_part);
    free(w->mu_cf);
    free(w->skip);
    free(w->data_cov);
    free(w);
}

const float *td_gmm_work_resp(const td_gmm_work *w) { return w->respT; }

void td_gmm_work_set_centre(td_gmm_work *w, const double *centre)
{
    for (int64_t j = 0; j < w->E; j++) {
        w->centre[j] = centre[j];
        w->centre_f[j] = (float)centre[j];
    }
    w->prepared = 0;
    w->sums_valid = 0;
    free(w->data_cov);
    w->data_cov = NULL;
}

/* full and tied: the same rows in double, (double)x - centre, into c->xbTd (E, B). */
static void centre_block_Td(const td_gmm_work *w, double *xbTd, int64_t i0, int64_t nb)
{
    int64_t E = w->E, B = w->B;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = w->X + (i0 + i) * E;
        for (int64_t j = 0; j < E; j++)
            xbTd[j * B + i] = (double)x[j] - w->centre[j];
    }
}

/* ---- E-step ------------------------------------------------------------------------- */

/* Lower Cholesky factor of S (E, E) into L, L^-1 into Li, and -log det L into *logdet;
 * -1 when S is not positive definite. */
static int precision_factor(double *L, double *Li, double *logdet, const double *S, int64_t E)
{
    if (cholesky(L, S, E)) return -1;
    tri_inverse(Li, L, E);
    *logdet = 0;
    for (int64_t j = 0; j < E; j++)
        *logdet -= log(L[j * E + j]);
    return 0;
}

/* A lower bound of the condition number of S (E, E) from its inverse Cholesky factor Li:
 * lambda_max >= max_j S_jj and 1 / lambda_min = |Li|_2^2 >= the largest squared row norm. */
static double cond_estimate(const double *S, const double *Li, int64_t E)
{
    double dmax = 0, rmax = 0;
    for (int64_t b = 0; b < E; b++) {
        double r = 0;
        for (int64_t a = 0; a <= b; a++)
            r += Li[b * E + a] * Li[b * E + a];
        rmax = fmax(rmax, r);
        dmax = fmax(dmax, S[b * E + b]);
    }
    return dmax * rmax;
}

/* The float copies of a factor P (E, E, lower) for the float E-step. */
static void factor_to_float(float *Pf, const double *P, int64_t E)
{
    for (int64_t i = 0; i < E * E; i++)
        Pf[i] = (float)P[i];
}

td_status td_gmm_prepare(td_gmm_work *w, const td_gmm *g, td_error *err)
{
    int64_t M = w->M, E = w->E;
    w->prepared = 0;
    double *L = NULL, *Li = NULL, *mc = malloc(sizeof(double) * (size_t)E);
    if (w->dbl) {
        L = malloc(sizeof(double) * (size_t)(E * E));
        Li = malloc(sizeof(double) * (size_t)(E * E));
    }
    if (!mc || (w->dbl && (!L || !Li))) {
        free(mc), free(L), free(Li);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    }
    td_status st = TD_OK;
    double tied_logdet = 0;
    int tied_bad = 0;
    w->edbl = 0;
    if (w->cov == TD_COV_TIED) { /* one factor for every component: PTd (E, E) = L^-1 */
        tied_bad = precision_factor(L, Li, &tied_logdet, g->covs, E);
        if (!tied_bad) {
            memcpy(w->PTd, Li, sizeof(double) * (size_t)(E * E));
            factor_to_float(w->PT, Li, E);
            w->edbl = cond_estimate(g->covs, Li, E) > COND_DOUBLE;
        }
    }
    for (int64_t k = 0; k < M && !st; k++) {
        const double *S = g->covs + k * w->CSK;
        for (int64_t j = 0; j < E; j++)
            mc[j] = g->means[k * E + j] - w->centre[j];
        double logdet = 0; /* log det of the precision factor */
        int bad = 0;
        if (w->dbl) {
            double *P = w->PTd; /* tied: L^-1 */
            if (w->cov == TD_COV_TIED) {
                bad = tied_bad;
                logdet = tied_logdet;
            } else {
                bad = precision_factor(L, Li, &logdet, S, E);
                P = w->PTd + k * E * E;
                if (!bad) {
                    memcpy(P, Li, sizeof(double) * (size_t)(E * E));
                    factor_to_float(w->PT + k * E * E, Li, E);
                    w->edbl |= cond_estimate(S, Li, E) > COND_DOUBLE;
                }
            }
            for (int64_t b = 0; b < E && !bad; b++) {
                double c = 0;
                for (int64_t a = 0; a <= b; a++)
                    c += P[b * E + a] * mc[a];
                w->cvd[k * E + b] = c;
                w->cv[k * E + b] = (float)c;
            }
        } else if (w->cov == TD_COV_DIAG) {
            for (int64_t j = 0; j < E && !bad; j++) {
                bad = !(S[j] > 0) || !isfinite(S[j]);
                logdet -= 0.5 * log(S[j]);
                w->PT[k * E + j] = (float)(1 / sqrt(S[j]));
                w->cv[k * E + j] = (float)mc[j];
            }
        } else {
            bad = !(S[0] > 0) || !isfinite(S[0]);
            logdet = -0.5 * (double)E * log(S[0]);
            w->PT[k] = (float)(1 / S[0]);
            for (int64_t j = 0; j < E; j++)
                w->cv[k * E + j] = (float)mc[j];
        }
        if (bad || !(g->weights[k] >= 0)) {
            if (w->cov == TD_COV_TIED && bad)
                st = td_fail(err, TD_EDIVERGED, "reg_covar",
                             "the tied covariance is ill-defined (not positive definite: "
                             "collinear features or duplicate samples); increase reg_covar");
            else
                st = td_fail(err, TD_EDIVERGED, "reg_covar",
                             "component %lld has an ill-defined covariance (not positive "
                             "definite: collapsed or duplicate samples); increase reg_covar "
                             "or use fewer components",
                             (long long)k);
            break;
        }
        double lw = g->weights[k] > 0 ? log(g->weights[k]) : -INFINITY;
        w->cst[k] = lw + logdet - 0.5 * (double)E * LOG_2PI;
    }
    free(mc), free(L), free(Li);
    if (!st) w->prepared = 1;
    return st;
}

/* acc (nb) = sum_b ((y[b][i] - c[b]) * s[b])^2 over b < E, with y (E, ld) and s = NULL
 * meaning 1. Written with restrict pointers and one flat loop so that it vectorises. */
TD_CLONES
static void sq_dist(float *restrict acc, const float *restrict y, const float *restrict c,
                    const float *restrict s, int64_t E, int64_t ld, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        acc[i] = 0;
    for (int64_t b = 0; b < E; b++) {
        const float *restrict yb = y + b * ld;
        float cb = c[b], sb = s ? s[b] : 1.0f;
        for (int64_t i = 0; i < nb; i++) {
            float z = (yb[i] - cb) * sb;
            acc[i] += z * z;
        }
    }
}

/* v[i] = add + scale * v[i]. */
TD_CLONES
static void scale_add(float *restrict v, float scale, float add, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        v[i] = add + scale * v[i];
}

/* Per-row log-sum-exp of lp (M, ld) over k, in place: lp becomes the responsibilities;
 * lse (nb) gets log sum_k exp lp[k][i]. mx and sm (ld) are scratch. lp, mx and sm are
 * 64-byte aligned and ld is a multiple of 16; lanes past nb hold junk. */
TD_CLONES
static void softmax_cols(float *restrict lp, float *restrict lse, float *restrict mx,
                         float *restrict sm, int64_t M, int64_t ld, int64_t nb)
{
    for (int64_t i = 0; i < ld; i++)
        mx[i] = lp[i], sm[i] = 0;
    for (int64_t k = 1; k < M; k++) {
        const float *restrict row = lp + k * ld;
        for (int64_t i = 0; i < ld; i++)
            mx[i] = row[i] > mx[i] ? row[i] : mx[i];
    }
    int64_t nv = (nb + 15) / 16; /* whole vectors: rows are padded to ld, a multiple of 16 */
    v16 *vmx = (v16 *)mx, *vsm = (v16 *)sm;
    for (int64_t k = 0; k < M; k++) {
        v16 *row = (v16 *)(lp + k * ld);
        for (int64_t v = 0; v < nv; v++) {
            v16 e = row[v] - vmx[v];
            vexp_neg(&e);
            row[v] = e;
            vsm[v] += e;
        }
    }
    for (int64_t i = 0; i < nb; i++) {
        lse[i] = mx[i] + logf(sm[i]);
        sm[i] = 1.0f / sm[i];
    }
    for (int64_t k = 0; k < M; k++) {
        float *restrict row = lp + k * ld;
        for (int64_t i = 0; i < nb; i++)
            row[i] *= sm[i];
    }
}

/* acc (nb) = sum_b (y[b][i] - c[b])^2 over b < E in double, y (E, ld). */
TD_CLONES
static void sq_dist_d(double *restrict acc, const double *restrict y, const double *restrict c,
                      int64_t E, int64_t ld, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++)
        acc[i] = 0;
    for (int64_t b = 0; b < E; b++) {
        const double *restrict yb = y + b * ld;
        double cb = c[b];
        for (int64_t i = 0; i < nb; i++) {
            double z = yb[i] - cb;
            acc[i] += z * z;
        }
    }
}

/* whiten_block_f / _d and grad_whitened_f / _d: the full and tied whitening and gradient
 * in float and in double, from one text */
#define GMM_REAL float
#define GMM_GEMM cblas_sgemm
#define GMM_WHITEN whiten_block_f
#define GMM_GRAD grad_whitened_f
#include "train/gmm_whitened.h"
#define GMM_REAL double
#define GMM_GEMM cblas_dgemm
#define GMM_WHITEN whiten_block_d
#define GMM_GRAD grad_whitened_d
#include "train/gmm_whitened.h"

/* Log densities of the block's rows into c->lp (M, B): lp[k][i] = cst_k - |z_ik|^2 / 2;
 * full and tied with an ill-conditioned covariance (edbl) evaluate |z_ik|^2 and the sum in
 * double and round lp to float. */
static void log_densities(td_gmm_work *w, echunk *c, int64_t nb)
{
    int64_t M = w->M, E = w->E, B = w->B;
    float *lp = c->lp;
    if (w->dbl) { /* full and tied: whiten each group of components, then |z|^2 */
        int64_t Mg = w->cov == TD_COV_TIED ? M : w->Mg;
        for (int64_t g0 = 0; g0 < M; g0 += Mg) {
            int64_t mg = imin(Mg, M - g0);
            if (w->edbl) /* ill-conditioned: dgemm of the double factors */
                whiten_block_d(w, c->yTd, w->PTd, c->xbTd, g0, mg, nb);
            else /* well-conditioned: sgemm of the float factors */
                whiten_block_f(w, c->yT, w->PT, c->xbT, g0, mg, nb);
            for (int64_t kk = 0; kk < mg; kk++) {
                int64_t k = g0 + kk, off = w->cov == TD_COV_TIED ? 0 : kk * E * B;
                if (!w->edbl) {
                    sq_dist(lp + k * B, c->yT + off, w->cv + k * E, NULL, E, B, nb);
                    continue;
                }
                sq_dist_d(c->accd, c->yTd + off, w->cvd + k * E, E, B, nb);
                float *row = lp + k * B;
                for (int64_t i = 0; i < nb; i++)
                    row[i] = (float)(w->cst[k] - 0.5 * c->accd[i]);
            }
        }
        if (w->edbl) return; /* lp is complete */
    } else {
        for (int64_t k = 0; k < M; k++) {
            sq_dist(lp + k * B, c->xbT, w->cv + k * E, w->cov == TD_COV_DIAG ? w->PT + k * E : NULL,
                    E, B, nb);
            if (w->cov == TD_COV_SPHERICAL) scale_add(lp + k * B, w->PT[k], 0, nb);
        }
    }
    for (int64_t k = 0; k < M; k++)
        scale_add(lp + k * B, -0.5f, (float)w->cst[k], nb);
}

/* One block of rows i0 .. i0 + nb of a chunk: their log densities, normalised into
 * responsibilities in c->lp ((M, B), OVERWRITTEN; returned) with each row's log-likelihood
 * in w->loglik; the chunk's sum and worst row are ADDED to. The E-step and the gradient
 * share it. */
static inline float *posterior_block(td_gmm_work *w, echunk *c, int64_t i0, int64_t nb)
{
    centre_block_T(w, c->xbT, i0, nb);
    if (w->edbl) centre_block_Td(w, c->xbTd, i0, nb);
    log_densities(w, c, nb);
    float *lp = c->lp, *lse = w->loglik + i0;
    softmax_cols(lp, lse, c->mx, c->sm, w->M, w->B, nb);
    for (int64_t i = 0; i < nb; i++) {
        c->sum += lse[i];
        if (lse[i] < c->worst) c->worst = lse[i], c->worst_i = i0 + i;
    }
    return lp;
}

TD_CLONES
static void estep_task(void *ctx, int64_t r)
{
    td_gmm_work *w = ctx;
    echunk *c = &w->ch[r];
    int64_t M = w->M, N = w->N, B = w->B;
    int64_t E = w->E;
    c->sum = 0;
    c->worst = INFINITY;
    c->worst_i = c->lo;
    memset(c->nk, 0, sizeof(double) * (size_t)M);
    memset(c->rx, 0, sizeof(double) * (size_t)(M * E));
    for (int64_t i0 = c->lo; i0 < c->hi; i0 += B) {
        int64_t nb = imin(B, c->hi - i0);
        float *lp = posterior_block(w, c, i0, nb);
        for (int64_t k = 0; k < M; k++) {
            const float *rk = lp + k * B;
            memcpy(w->respT + k * N + i0, rk, sizeof(float) * (size_t)nb);
            double s = 0;
            for (int64_t i = 0; i < nb; i++)
                s += rk[i];
            c->nk[k] += s;
        }
        /* the M-step's first sums, while the block is in cache: rxf (E, M) = xbT resp^T */
        td_sgemm_nt(c->rxf, c->xbT, lp, E, M, nb, 1.0f, 0.0f, B, B, M);
        for (int64_t k = 0; k < M; k++)
            for (int64_t j = 0; j < E; j++)
                c->rx[k * E + j] += c->rxf[j * M + k];
    }
}

td_status td_gmm_estep(td_gmm_work *w, td_pool *pool, double *mean_ll, int64_t *worst,
                       td_error *err)
{
    if (!w->prepared) return td_fail(err, TD_EINTERNAL, NULL, "gmm E-step before prepare");
    td_pool_run(pool, w->R, estep_task, w);
    double sum = 0, lo = INFINITY;
    int64_t wi = 0;
    for (int64_t r = 0; r < w->R; r++) {
        sum += w->ch[r].sum;
        if (w->ch[r].worst < lo) lo = w->ch[r].worst, wi = w->ch[r].worst_i;
    }
    *mean_ll = sum / (double)w->N;
    if (worst) *worst = wi;
    w->sums_valid = 1;
    return TD_OK;
}

/* ---- gradient of the negative log-likelihood w.r.t. the rows ------------------------ */

/* d(-log p(x))/dx = sum_k r_k Sigma_k^-1 (x - mu_k). With y_k = L_k^-1 (x - mu_k) (the
 * E-step's yTd minus cvd) and Sigma_k^-1 = L_k^-T L_k^-1, a full block's gradient is
 * gTd (E, nb) = sum_k L_k^-T (y_k * r_k) = PTd^T (E, M*E) @ [y_k * r_k] (M*E, nb): one
 * dgemm per component group; tied: L^-T (sum_k r_k y_k), one dgemm. diag:
 * r_k (x - mu_k) / sigma_k^2; spherical: r_k (x - mu_k) / s_k, in float. */
typedef struct grad_ctx {
    td_gmm_work *w;
    float *dX; /* (N, E) */
    float scale;
} grad_ctx;

TD_CLONES
static void grad_task(void *ctx, int64_t r)
{
    const grad_ctx *gc = ctx;
    td_gmm_work *w = gc->w;
    echunk *c = &w->ch[r];
    int64_t M = w->M, N = w->N, B = w->B, E = w->E;
    c->sum = 0;
    c->worst = INFINITY;
    c->worst_i = c->lo;
    for (int64_t i0 = c->lo; i0 < c->hi; i0 += B) {
        int64_t nb = imin(B, c->hi - i0);
        float *lp = posterior_block(w, c, i0, nb);
        for (int64_t k = 0; k < M; k++)
            memcpy(w->respT + k * N + i0, lp + k * B, sizeof(float) * (size_t)nb);
        if (w->edbl) {
            double *gd = c->gTd;
            grad_whitened_d(w, gd, c->yTd, c->xbTd, w->PTd, w->cvd, lp, nb);
            for (int64_t i = 0; i < nb; i++)
                for (int64_t b = 0; b < E; b++)
                    gc->dX[(i0 + i) * E + b] = (float)(gc->scale * gd[b * B + i]);
            continue;
        }
        float *g = c->gT;
        if (w->cov == TD_COV_TIED || w->cov == TD_COV_FULL) {
            grad_whitened_f(w, g, c->yT, c->xbT, w->PT, w->cv, lp, nb);
        } else {
            for (int64_t b = 0; b < E; b++)
                memset(g + b * B, 0, sizeof(float) * (size_t)nb);
            for (int64_t k = 0; k < M; k++) {
                const float *restrict rk = lp + k * B;
                for (int64_t b = 0; b < E; b++) {
                    float s =
                        w->cov == TD_COV_DIAG ? w->PT[k * E + b] * w->PT[k * E + b] : w->PT[k];
                    float cb = w->cv[k * E + b];
                    const float *restrict x = c->xbT + b * B;
                    float *restrict gb = g + b * B;
                    for (int64_t i = 0; i < nb; i++)
                        gb[i] += rk[i] * (x[i] - cb) * s;
                }
            }
        }
        for (int64_t i = 0; i < nb; i++)
            for (int64_t b = 0; b < E; b++)
                gc->dX[(i0 + i) * E + b] = gc->scale * g[b * B + i];
    }
}

td_status td_gmm_nll_grad(td_gmm_work *w, td_pool *pool, float *dX, float scale, double *mean_ll,
                          td_error *err)
{
    if (!w->prepared) return td_fail(err, TD_EINTERNAL, NULL, "gmm gradient before prepare");
    for (int64_t r = 0; r < w->R; r++)
        if ((w->edbl && !w->ch[r].gTd &&
             !(w->ch[r].gTd = xcalloc((size_t)(2 * w->E * w->B), sizeof(double)))) ||
            (!w->ch[r].gT && !(w->ch[r].gT = valloc_f((w->dbl ? 2 : 1) * w->E * w->B))))
            return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    grad_ctx gc = {w, dX, scale};
    td_pool_run(pool, w->R, grad_task, &gc);
    double sum = 0;
    for (int64_t r = 0; r < w->R; r++)
        sum += w->ch[r].sum;
    *mean_ll = sum / (double)w->N;
    w->sums_valid = 0; /* no M-step sums were gathered */
    return TD_OK;
}

/* ---- M-step ------------------------------------------------------------------------- */

/* Gathers the next rows of [*cur, hi) with r_ik > 0 (r = respT row k), centred, into m->xb
 * (dbl: into m->xd, in double) and their r into m->rr, until at least B2 are buffered or the range ends; returns the
 * count (0: done). Windows of GATHER_WIN rows are compacted without branches. */
TD_CLONES
static int64_t gather(const td_gmm_work *w, mtask *m, const float *r, int64_t *cur, int64_t hi,
                      int dbl)
{
    int64_t E = w->E, n = 0;
    while (n < w->B2 && *cur < hi) {
        int64_t end = imin(hi, *cur + GATHER_WIN), cnt = 0;
        for (int64_t i = *cur; i < end; i++) {
            m->idx[cnt] = i;
            cnt += r[i] > 0;
        }
        *cur = end;
        for (int64_t t = 0; t < cnt; t++, n++) {
            const float *x = w->X + m->idx[t] * E;
            if (dbl) {
                double *dd = m->xd + n * E;
                for (int64_t j = 0; j < E; j++)
                    dd[j] = (double)x[j] - w->centre[j];
            } else {
                float *dst = m->xb + n * E;
                for (int64_t j = 0; j < E; j++)
                    dst[j] = x[j] - w->centre_f[j];
            }
            m->rr[n] = r[m->idx[t]];
        }
    }
    return n;
}

/* First pass (when no E-step gave them): N_k and sum_i r_ik (x_i - c) of the task's rows
 * into its slot of nk_part / rx_part. */
TD_CLONES
static void mstep_sums_task(void *ctx, int64_t t)
{
    td_gmm_work *w = ctx;
    mtask *m = &w->mt[t];
    int64_t E = w->E, M = w->M;
    float tmp[256];
    float *v = E <= 256 ? tmp : m->sb; /* sb has >= E floats */
    for (int64_t k = m->k0; k < m->k1; k++) {
        double *nk = &w->nk_part[m->c * M + k], *rx = &w->rx_part[(m->c * M + k) * E];
        *nk = 0;
        memset(rx, 0, sizeof(double) * (size_t)E);
        int64_t cur = m->lo, n;
        while ((n = gather(w, m, w->respT + k * w->N, &cur, m->hi, 0)) > 0) {
            for (int64_t i = 0; i < n; i++)
                *nk += m->rr[i];
            cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)n, (blasint)E, 1.0f, m->xb, (blasint)E,
                        m->rr, 1, 0.0f, v, 1);
            for (int64_t j = 0; j < E; j++)
                rx[j] += v[j];
        }
    }
}

/* Second pass: sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T (full and tied: upper triangle, in
 * double through dsyrk, so that the scatter of a component with N_k <= E or of collinear
 * features stays positive semi-definite) or its diagonal, of the task's rows. */
TD_CLONES
static void mstep_cov_task(void *ctx, int64_t t)
{
    td_gmm_work *w = ctx;
    mtask *m = &w->mt[t];
    int64_t E = w->E, M = w->M;
    for (int64_t k = m->k0; k < m->k1; k++) {
        double *S = &w->s_part[(m->c * M + k) * w->SA];
        memset(S, 0, sizeof(double) * (size_t)w->SA);
        if (w->skip[k]) continue;
        const float *mu = w->mu_cf + k * E;
        const double *mud = w->mu_cd + k * E;
        int64_t cur = m->lo, n;
        while ((n = gather(w, m, w->respT + k * w->N, &cur, m->hi, w->dbl)) > 0) {
            if (w->dbl) {
                for (int64_t i = 0; i < n; i++) {
                    double s = sqrt((double)m->rr[i]);
                    const double *x = m->xd + i * E;
                    double *o = m->wd + i * E;
                    for (int64_t j = 0; j < E; j++)
                        o[j] = s * (x[j] - mud[j]);
                }
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (blasint)E, (blasint)n, 1.0,
                            m->wd, (blasint)E, 0.0, m->sd, (blasint)E);
                for (int64_t a = 0; a < E; a++)
                    for (int64_t b = a; b < E; b++)
                        S[a * E + b] += m->sd[a * E + b];
                continue;
            }
            for (int64_t i = 0; i < n; i++) {
                float s = sqrtf(m->rr[i]);
                const float *x = m->xb + i * E;
                float *o = m->wb + i * E;
                for (int64_t j = 0; j < E; j++)
                    o[j] = s * (x[j] - mu[j]);
            }
            {
                float *acc = m->sb;
                for (int64_t j = 0; j < E; j++)
                    acc[j] = 0;
                for (int64_t i = 0; i < n; i++) {
                    const float *o = m->wb + i * E;
                    for (int64_t j = 0; j < E; j++)
                        acc[j] += o[j] * o[j];
                }
                for (int64_t j = 0; j < E; j++)
                    S[j] += acc[j];
            }
        }
    }
}

td_status td_gmm_mstep(td_gmm_work *w, td_pool *pool, td_gmm *g, double reg_covar, double *nk_out,
                       unsigned char *empty, int64_t *n_empty, td_error *err)
{
    int64_t M = w->M, E = w->E, C = w->C;
    td_blas_init();
    /* N_k and sum r (x - c): from the last E-step's chunks (reduced in chunk order), else a
     * pass of their own; either way into nk_part / rx_part slot 0.. */
    if (w->sums_valid) {
        memset(w->nk_part, 0, sizeof(double) * (size_t)(C * M));
        memset(w->rx_part, 0, sizeof(double) * (size_t)(C * M * E));
        for (int64_t r = 0; r < w->R; r++)
            for (int64_t k = 0; k < M; k++) {
                w->nk_part[k] += w->ch[r].nk[k];
                for (int64_t j = 0; j < E; j++)
                    w->rx_part[k * E + j] += w->ch[r].rx[k * E + j];
            }
    } else {
        td_pool_run(pool, w->T2, mstep_sums_task, w);
    }
    w->sums_valid = 0;
    int64_t ne = 0;
    double wsum = 0;
    for (int64_t k = 0; k < M; k++) {
        double nk = 0;
        for (int64_t c = 0; c < C; c++)
            nk += w->nk_part[c * M + k];
        if (nk_out) nk_out[k] = nk;
        w->skip[k] = nk < TD_GMM_EMPTY;
        if (empty) empty[k] = w->skip[k];
        ne += w->skip[k];
        double d = nk + 10 * DBL_EPSILON;
        g->weights[k] = d / (double)w->N;
        wsum += g->weights[k];
        if (w->skip[k]) continue;
        for (int64_t j = 0; j < E; j++) {
            double s = 0;
            for (int64_t c = 0; c < C; c++)
                s += w->rx_part[(c * M + k) * E + j];
            double mc = s / d;
            g->means[k * E + j] = mc + w->centre[j];
            w->mu_cf[k * E + j] = (float)mc;
            w->mu_cd[k * E + j] = mc;
        }
    }
    for (int64_t k = 0; k < M; k++)
        g->weights[k] /= wsum;
    td_pool_run(pool, w->T2, mstep_cov_task, w);
    if (w->cov == TD_COV_TIED) /* sum_k scatter_k / sum_k N_k, as scikit-learn */
        memset(g->covs, 0, sizeof(double) * (size_t)(E * E));
    double dsum = 0;
    for (int64_t k = 0; k < M; k++) {
        double nk = 0;
        for (int64_t c = 0; c < C; c++)
            nk += w->nk_part[c * M + k];
        double d = nk + 10 * DBL_EPSILON;
        dsum += d;
        if (w->skip[k]) continue;
        double *cov = g->covs + k * w->CSK;
        if (w->cov == TD_COV_TIED) {
            for (int64_t a = 0; a < E; a++)
                for (int64_t b = a; b < E; b++)
                    for (int64_t c = 0; c < C; c++)
                        cov[a * E + b] += w->s_part[(c * M + k) * w->SA + a * E + b];
        } else if (w->cov == TD_COV_FULL) {
            for (int64_t a = 0; a < E; a++)
                for (int64_t b = a; b < E; b++) {
                    double s = 0;
                    for (int64_t c = 0; c < C; c++)
                        s += w->s_part[(c * M + k) * w->SA + a * E + b];
                    s /= d;
                    cov[a * E + b] = cov[b * E + a] = s;
                }
            for (int64_t a = 0; a < E; a++)
                cov[a * E + a] += reg_covar;
        } else {
            double mean = 0;
            for (int64_t j = 0; j < E; j++) {
                double s = 0;
                for (int64_t c = 0; c < C; c++)
                    s += w->s_part[(c * M + k) * w->SA + j];
                s = s / d + reg_covar;
                if (w->cov == TD_COV_DIAG) cov[j] = s;
                mean += s;
            }
            if (w->cov == TD_COV_SPHERICAL) cov[0] = mean / (double)E;
        }
    }
    if (w->cov == TD_COV_TIED) {
        double *cov = g->covs;
        for (int64_t a = 0; a < E; a++)
            for (int64_t b = a; b < E; b++)
                cov[a * E + b] = cov[b * E + a] = cov[a * E + b] / dsum;
        for (int64_t a = 0; a < E; a++)
            cov[a * E + a] += reg_covar;
    }
    if (n_empty) *n_empty = ne;
    (void)err;
    return TD_OK;
}
