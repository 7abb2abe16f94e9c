/* gmm_init.c — how the EM of gmm.c starts and restarts: the data's variances and
 * covariance, re-seeding and splitting components, k-means++ and Lloyd's k-means, and
 * td_gmm_initialize (contracts in gmm.h; threads as gmm.c's DESIGN note). */
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

/* The largest |x[i]| (NaN counts as inf), for messages about values out of range. */
static double max_abs(const float *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = isnan(x[i]) ? INFINITY : fmax(m, fabs((double)x[i]));
    return m;
}

/* Variances of the columns of all rows (diag: E values; spherical: their mean), in
 * double, two passes over the rows: O(E) memory, where the full matrix would take E*E. */
static double *data_variances(const td_gmm_work *w)
{
    int64_t E = w->E, N = w->N;
    double *mean = xcalloc((size_t)E, sizeof(double)),
           *out = xcalloc((size_t)w->CS, sizeof(double));
    double *var = w->cov == TD_COV_DIAG ? out : xcalloc((size_t)E, sizeof(double));
    if (!mean || !out || !var) {
        free(mean), free(out);
        if (var != out) free(var);
        return NULL;
    }
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < E; j++)
            mean[j] += (double)w->X[i * E + j] - w->centre_f[j];
    for (int64_t j = 0; j < E; j++)
        mean[j] /= (double)N;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < E; j++) {
            double d = (double)w->X[i * E + j] - w->centre_f[j] - mean[j];
            var[j] += d * d;
        }
    double tr = 0;
    for (int64_t j = 0; j < E; j++)
        tr += var[j] /= (double)N;
    if (w->cov == TD_COV_SPHERICAL) {
        out[0] = tr / (double)E;
        free(var);
    }
    free(mean);
    return out;
}

/* Covariance of all rows (CS values): full or tied in double (dsyrk on blocks of centred
 * rows), diag or spherical by data_variances; computed once. */
static td_status data_covariance(td_gmm_work *w)
{
    if (w->data_cov) return TD_OK;
    if (w->cov == TD_COV_DIAG || w->cov == TD_COV_SPHERICAL) {
        w->data_cov = data_variances(w);
        return w->data_cov ? TD_OK : TD_ENOMEM;
    }
    int64_t E = w->E, N = w->N;
    double *S = xcalloc((size_t)(E * E), sizeof(double)),
           *mean = xcalloc((size_t)E, sizeof(double));
    double *xb = malloc(sizeof(double) * (size_t)(256 * E)),
           *sb = malloc(sizeof(double) * (size_t)(E * E));
    if (!S || !mean || !xb || !sb) {
        free(S), free(mean), free(xb), free(sb);
        return TD_ENOMEM;
    }
    td_blas_init();
    for (int64_t i0 = 0; i0 < N; i0 += 256) {
        int64_t nb = imin(256, N - i0);
        for (int64_t i = 0; i < nb; i++)
            for (int64_t j = 0; j < E; j++) {
                xb[i * E + j] = (double)w->X[(i0 + i) * E + j] - w->centre[j];
                mean[j] += xb[i * E + j];
            }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (blasint)E, (blasint)nb, 1.0, xb,
                    (blasint)E, 0.0, sb, (blasint)E);
        for (int64_t a = 0; a < E; a++)
            for (int64_t b = a; b < E; b++)
                S[a * E + b] += sb[a * E + b];
    }
    for (int64_t j = 0; j < E; j++)
        mean[j] /= (double)N;
    for (int64_t a = 0; a < E; a++)
        for (int64_t b = a; b < E; b++)
            S[b * E + a] = S[a * E + b] = S[a * E + b] / (double)N - mean[a] * mean[b];
    double *out = xcalloc((size_t)w->CS, sizeof(double));
    if (out) {
        double tr = 0;
        for (int64_t j = 0; j < E; j++)
            tr += S[j * E + j];
        if (w->cov == TD_COV_FULL || w->cov == TD_COV_TIED)
            memcpy(out, S, sizeof(double) * (size_t)(E * E));
        else if (w->cov == TD_COV_DIAG)
            for (int64_t j = 0; j < E; j++)
                out[j] = S[j * E + j];
        else
            out[0] = tr / (double)E;
    }
    free(S), free(mean), free(xb), free(sb);
    w->data_cov = out;
    return out ? TD_OK : TD_ENOMEM;
}

td_status td_gmm_reseed(td_gmm_work *w, td_gmm *g, int64_t k, const double *mean, double reg_covar)
{
    int64_t E = w->E;
    if (data_covariance(w)) return TD_ENOMEM;
    memcpy(g->means + k * E, mean, sizeof(double) * (size_t)E);
    double *cov = g->covs + k * w->CSK;
    if (w->cov != TD_COV_TIED) /* tied: the shared covariance stays as it is */
        memcpy(cov, w->data_cov, sizeof(double) * (size_t)w->CS);
    if (w->cov == TD_COV_FULL)
        for (int64_t j = 0; j < E; j++)
            cov[j * E + j] += reg_covar;
    else if (w->cov != TD_COV_TIED)
        for (int64_t j = 0; j < w->CS; j++)
            cov[j] += reg_covar;
    g->weights[k] = 1.0 / (double)w->N;
    double s = 0;
    for (int64_t m = 0; m < w->M; m++)
        s += g->weights[m];
    for (int64_t m = 0; m < w->M; m++)
        g->weights[m] /= s;
    return TD_OK;
}

/* Top eigenvector v (E) of the symmetric positive semi-definite S (E, E) by power
 * iteration from a fixed start; returns its eigenvalue (>= 0). */
static double top_eigen(double *v, double *tmp, const double *S, int64_t E)
{
    double lambda = 0;
    for (int64_t j = 0; j < E; j++)
        v[j] = 1.0 + (double)j / (double)E; /* fixed, not orthogonal to a generic axis */
    for (int it = 0; it < 500; it++) {
        double nn = 0;
        for (int64_t a = 0; a < E; a++) {
            double s = 0;
            for (int64_t b = 0; b < E; b++)
                s += S[a * E + b] * v[b];
            tmp[a] = s;
            nn += s * s;
        }
        nn = sqrt(nn);
        if (!(nn > 0) || !isfinite(nn)) return 0; /* S v = 0: any axis; keep v normalised */
        double change = 0;
        for (int64_t a = 0; a < E; a++) {
            double x = tmp[a] / nn;
            change += (x - v[a]) * (x - v[a]);
            v[a] = x;
        }
        lambda = nn; /* |S v| with |v| = 1 */
        if (change < 1e-20) break;
    }
    double nv = 0;
    for (int64_t j = 0; j < E; j++)
        nv += v[j] * v[j];
    nv = sqrt(nv);
    for (int64_t j = 0; nv > 0 && j < E; j++)
        v[j] /= nv;
    return lambda;
}

td_status td_gmm_split(td_gmm_work *w, td_gmm *g, int64_t k, int64_t *split)
{
    int64_t M = w->M, E = w->E, N = w->N, CS = w->CS, CSK = w->CSK;
    int full = w->cov == TD_COV_FULL || w->cov == TD_COV_TIED;
    if (split) *split = -1;
    if (M < 2) return TD_OK;
    /* the component with the largest weight x total variance */
    int64_t j = -1;
    double best = -1;
    for (int64_t m = 0; m < M; m++) {
        if (m == k) continue;
        const double *c = g->covs + m * CSK;
        double tr = 0;
        if (full)
            for (int64_t a = 0; a < E; a++)
                tr += c[a * E + a];
        else if (w->cov == TD_COV_DIAG)
            for (int64_t a = 0; a < E; a++)
                tr += c[a];
        else
            tr = (double)E * c[0];
        if (g->weights[m] * tr > best) best = g->weights[m] * tr, j = m;
    }
    if (j < 0) /* no component with a finite, positive spread: nothing to split */
        return TD_OK;
    double *v = xcalloc((size_t)E, sizeof(double)), *tmp = xcalloc((size_t)E, sizeof(double));
    /* spherical only: the scatter of the component's rows (E, E) */
    double *S = w->cov == TD_COV_SPHERICAL ? xcalloc((size_t)(E * E), sizeof(double)) : NULL;
    if (!v || !tmp || (w->cov == TD_COV_SPHERICAL && !S)) {
        free(v), free(tmp), free(S);
        return TD_ENOMEM;
    }
    const double *cj = g->covs + j * CSK, *mu = g->means + j * E;
    double sd = 0;
    if (full) {
        sd = sqrt(top_eigen(v, tmp, cj, E));
    } else if (w->cov == TD_COV_DIAG) {
        int64_t a = 0;
        for (int64_t b = 1; b < E; b++)
            if (cj[b] > cj[a]) a = b;
        v[a] = 1;
        sd = sqrt(cj[a]);
    } else {
        /* spherical: no preferred axis in the model; take the principal axis of the
         * component's responsibility-weighted scatter of the rows, at its sd sqrt(s) */
        const float *rj = w->respT + j * N;
        double tot = 0;
        for (int64_t i = 0; i < N; i++) {
            if (!(rj[i] > 0)) continue;
            const float *x = w->X + i * E;
            for (int64_t a = 0; a < E; a++)
                tmp[a] = (double)x[a] - mu[a];
            for (int64_t a = 0; a < E; a++)
                for (int64_t b = 0; b < E; b++)
                    S[a * E + b] += rj[i] * tmp[a] * tmp[b];
            tot += rj[i];
        }
        if (tot > 0)
            top_eigen(v, tmp, S, E);
        else
            v[0] = 1;
        sd = sqrt(cj[0]);
    }
    for (int64_t a = 0; a < E; a++) {
        double m0 = mu[a];
        g->means[k * E + a] = m0 + sd * v[a];
        g->means[j * E + a] = m0 - sd * v[a];
    }
    if (CSK) /* tied: both share the one covariance already */
        memcpy(g->covs + k * CSK, cj, sizeof(double) * (size_t)CS);
    g->weights[k] = g->weights[j] = 0.5 * g->weights[j];
    double s = 0;
    for (int64_t m = 0; m < M; m++)
        s += g->weights[m];
    for (int64_t m = 0; m < M; m++)
        g->weights[m] /= s;
    free(v), free(tmp), free(S);
    if (split) *split = j;
    return TD_OK;
}

/* ---- k-means ------------------------------------------------------------------------ */

/* For each candidate row t, c->tpart[t] = sum over the chunk's rows of min(d2, squared
 * distance to the candidate); with kpp_update, d2 = min(d2, distance to candidate 0). */
TD_CLONES
static void kpp_task(void *ctx, int64_t r)
{
    td_gmm_work *w = ctx;
    echunk *c = &w->ch[r];
    int64_t E = w->E;
    for (int64_t t = 0; t < w->ncand; t++) {
        const float *y = w->X + w->cand_idx[t] * E;
        double part = 0;
        for (int64_t i = c->lo; i < c->hi; i++) {
            const float *x = w->X + i * E;
            double s = 0;
            for (int64_t j = 0; j < E; j++) {
                double d = (double)x[j] - (double)y[j];
                s += d * d;
            }
            s = s < w->d2[i] ? s : w->d2[i];
            part += s;
            if (w->kpp_update) w->d2[i] = s;
        }
        c->tpart[t] = part;
    }
}

/* Runs the candidates in w->cand_idx; returns the index (into cand_idx) of the one with
 * the lowest potential and its potential. */
static int64_t kpp_candidates(td_gmm_work *w, td_pool *pool, double *pot)
{
    w->kpp_update = 0;
    td_pool_run(pool, w->R, kpp_task, w);
    int64_t best = 0;
    double bp = INFINITY;
    for (int64_t t = 0; t < w->ncand; t++) {
        double s = 0;
        for (int64_t r = 0; r < w->R; r++)
            s += w->ch[r].tpart[t];
        if (s < bp) bp = s, best = t;
    }
    *pot = bp;
    return best;
}

/* Greedy k-means++ (as scikit-learn: 2 + log M candidates per centre, the one that
 * lowers the potential most): centre rows into w->cen_f (centred). */
static void kmeanspp(td_gmm_work *w, td_pool *pool, td_rng *rng, double *cum)
{
    int64_t N = w->N, E = w->E, M = w->M;
    int64_t trials = imin(8, 2 + (int64_t)log((double)M));
    /* first centre: uniform; d2 = squared distance to it (d2 = inf so min takes dist) */
    for (int64_t i = 0; i < N; i++)
        w->d2[i] = INFINITY;
    int64_t chosen = (int64_t)td_rng_below(rng, (uint64_t)N);
    w->cand_idx[0] = chosen;
    w->ncand = 1;
    w->kpp_update = 1;
    td_pool_run(pool, w->R, kpp_task, w);
    for (int64_t k = 0;; k++) {
        for (int64_t j = 0; j < E; j++)
            w->cen_f[k * E + j] = w->X[chosen * E + j] - w->centre_f[j];
        if (k + 1 == M) break;
        double acc = 0;
        for (int64_t i = 0; i < N; i++)
            cum[i] = acc += w->d2[i];
        for (int64_t t = 0; t < trials; t++) {
            int64_t idx;
            if (acc > 0) {
                double u = td_rng_uniform(rng) * acc;
                int64_t lo = 0, hi = N - 1; /* first i with cum[i] > u */
                while (lo < hi) {
                    int64_t mid = lo + (hi - lo) / 2;
                    if (cum[mid] > u)
                        hi = mid;
                    else
                        lo = mid + 1;
                }
                idx = lo;
            } else { /* every row sits on a centre: any row */
                idx = (int64_t)td_rng_below(rng, (uint64_t)N);
            }
            w->cand_idx[t] = idx;
        }
        w->ncand = trials;
        double pot;
        chosen = w->cand_idx[kpp_candidates(w, pool, &pot)];
        w->cand_idx[0] = chosen; /* d2 = min(d2, distance to the chosen row) */
        w->ncand = 1;
        w->kpp_update = 1;
        td_pool_run(pool, w->R, kpp_task, w);
    }
}

/* Nearest centre of every row of the chunk (w->lab), via ||c||^2 - 2 c.x. */
TD_CLONES
static void assign_task(void *ctx, int64_t r)
{
    td_gmm_work *w = ctx;
    echunk *c = &w->ch[r];
    int64_t M = w->M, E = w->E, B = w->B;
    c->changed = 0;
    for (int64_t i0 = c->lo; i0 < c->hi; i0 += B) {
        int64_t nb = imin(B, c->hi - i0);
        centre_block_T(w, c->xbT, i0, nb);
        td_sgemm_nn(c->lp, w->cen_f, c->xbT, M, nb, E, 1.0f, 0.0f, E, B, B);
        for (int64_t i = 0; i < nb; i++)
            c->mx[i] = INFINITY, c->sm[i] = 0;
        for (int64_t k = 0; k < M; k++) {
            const float *dot = c->lp + k * B;
            float cn = w->cen_n[k];
            for (int64_t i = 0; i < nb; i++) {
                float d = cn - 2.0f * dot[i];
                if (d < c->mx[i]) c->mx[i] = d, c->sm[i] = (float)k;
            }
        }
        for (int64_t i = 0; i < nb; i++) {
            int32_t k = (int32_t)c->sm[i];
            c->changed += w->lab[i0 + i] != k;
            w->lab[i0 + i] = k;
        }
    }
}

/* Exact inertia of the chunk's rows: sum ||x - c_label||^2 in double. */
TD_CLONES
static void inertia_task(void *ctx, int64_t r)
{
    td_gmm_work *w = ctx;
    echunk *c = &w->ch[r];
    int64_t E = w->E;
    c->sum = 0;
    for (int64_t i = c->lo; i < c->hi; i++) {
        const float *x = w->X + i * E, *cen = w->cen_f + w->lab[i] * E;
        for (int64_t j = 0; j < E; j++) {
            double d = (double)x[j] - (double)w->centre_f[j] - (double)cen[j];
            c->sum += d * d;
        }
    }
}

static void centre_norms(td_gmm_work *w)
{
    for (int64_t k = 0; k < w->M; k++) {
        double s = 0;
        for (int64_t j = 0; j < w->E; j++)
            s += (double)w->cen_f[k * w->E + j] * w->cen_f[k * w->E + j];
        w->cen_n[k] = (float)s;
    }
}

/* Lloyd iterations from the centres in w->cen_f; labels in w->lab. */
static td_status lloyd(td_gmm_work *w, td_pool *pool, double tol)
{
    int64_t N = w->N, E = w->E, M = w->M;
    double *sum = xcalloc((size_t)(M * E), sizeof(double));
    int64_t *count = xcalloc((size_t)M, sizeof(int64_t));
    if (!sum || !count) {
        free(sum), free(count);
        return TD_ENOMEM;
    }
    for (int64_t i = 0; i < N; i++)
        w->lab[i] = -1;
    centre_norms(w);
    td_pool_run(pool, w->R, assign_task, w);
    for (int it = 0; it < KMEANS_MAX_ITER; it++) {
        memset(sum, 0, sizeof(double) * (size_t)(M * E));
        memset(count, 0, sizeof(int64_t) * (size_t)M);
        for (int64_t i = 0; i < N; i++) {
            int64_t k = w->lab[i];
            count[k]++;
            for (int64_t j = 0; j < E; j++)
                sum[k * E + j] += (double)w->X[i * E + j] - w->centre[j];
        }
        double shift = 0;
        for (int64_t k = 0; k < M; k++) {
            if (!count[k]) continue; /* an empty cluster keeps its centre */
            for (int64_t j = 0; j < E; j++) {
                float c = (float)(sum[k * E + j] / (double)count[k]);
                double d = (double)c - w->cen_f[k * E + j];
                shift += d * d;
                w->cen_f[k * E + j] = c;
            }
        }
        centre_norms(w);
        td_pool_run(pool, w->R, assign_task, w);
        int64_t changed = 0;
        for (int64_t r = 0; r < w->R; r++)
            changed += w->ch[r].changed;
        if (changed == 0 || shift <= tol) break;
    }
    free(sum), free(count);
    return TD_OK;
}

td_status td_gmm_kmeans(int32_t *labels, double *centres, double *inertia, td_gmm_work *w,
                        td_pool *pool, int64_t n_init, td_rng *rng, td_error *err)
{
    int64_t N = w->N, E = w->E, M = w->M;
    double *cum = malloc(sizeof(double) * (size_t)N);
    int ok = cum && (w->cen_f = xcalloc((size_t)(M * E), sizeof(float))) &&
        (w->cen_n = xcalloc((size_t)M, sizeof(float))) &&
        (w->lab = xcalloc((size_t)N, sizeof(int32_t))) &&
        (w->d2 = xcalloc((size_t)N, sizeof(double)));
    td_status st = ok ? TD_OK : TD_ENOMEM;
    /* tolerance: KMEANS_TOL x the mean feature variance (scikit-learn's _tolerance) */
    double var = 0;
    for (int64_t j = 0; ok && j < E; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < N; i++) {
            double x = (double)w->X[i * E + j] - w->centre[j];
            s += x, s2 += x * x;
        }
        var += s2 / (double)N - (s / (double)N) * (s / (double)N);
    }
    double tol = KMEANS_TOL * var / (double)E, best = INFINITY;
    int found = 0; /* a run with a finite inertia filled labels and centres */
    for (int64_t run = 0; ok && run < n_init && !st; run++) {
        kmeanspp(w, pool, rng, cum);
        if ((st = lloyd(w, pool, tol))) break;
        td_pool_run(pool, w->R, inertia_task, w);
        double in = 0;
        for (int64_t r = 0; r < w->R; r++)
            in += w->ch[r].sum;
        if (isfinite(in) && (!found || in < best)) {
            found = 1;
            best = in;
            memcpy(labels, w->lab, sizeof(int32_t) * (size_t)N);
            for (int64_t k = 0; k < M; k++)
                for (int64_t j = 0; j < E; j++)
                    centres[k * E + j] = (double)w->cen_f[k * E + j] + w->centre[j];
        }
    }
    free(cum);
    free_kmeans(w);
    if (st) return td_fail(err, st, NULL, "out of memory in the k-means initialisation");
    if (!found) /* NaN or inf: the float32 distances overflowed; labels were never set */
        return td_fail(err, TD_EDIVERGED, "X",
                       "the k-means initialisation gave a "
                       "non-finite inertia: squared distances between the rows overflow "
                       "float32 (the largest |value| is %g); scale the features",
                       max_abs(w->X, N * E));
    if (inertia) *inertia = best;
    return TD_OK;
}

/* ---- initialisation ----------------------------------------------------------------- */

td_status td_gmm_initialize(td_gmm *g, td_gmm_work *w, td_pool *pool, const td_hparams *hp,
                            int64_t kmeans_runs, td_rng *rng, td_error *err)
{
    int64_t N = w->N, E = w->E, M = w->M;
    td_status st = TD_OK;
    int need = !hp->gmm.weights_init.v || !hp->gmm.means_init.v || !hp->gmm.covariances_init.v;
    if (need) {
        double *centres = NULL;
        int32_t *labels = NULL;
        if (hp->gmm.init == TD_GMM_INIT_RANDOM) {
            for (int64_t i = 0; i < N; i++) {
                double s = 0;
                for (int64_t k = 0; k < M; k++)
                    s += w->respT[k * N + i] = (float)td_rng_uniform(rng);
                for (int64_t k = 0; k < M; k++)
                    w->respT[k * N + i] = (float)(w->respT[k * N + i] / s);
            }
        } else {
            centres = malloc(sizeof(double) * (size_t)(M * E));
            labels = malloc(sizeof(int32_t) * (size_t)N);
            if (!centres || !labels) {
                free(centres), free(labels);
                return td_fail(err, TD_ENOMEM, NULL, "out of memory");
            }
            if ((st = td_gmm_kmeans(labels, centres, NULL, w, pool, kmeans_runs, rng, err))) {
                free(centres), free(labels);
                return st;
            }
            memset(w->respT, 0, sizeof(float) * (size_t)(M * N));
            for (int64_t i = 0; i < N; i++)
                w->respT[labels[i] * N + i] = 1.0f;
        }
        unsigned char *empty = xcalloc((size_t)M, 1);
        if (!empty) {
            free(centres), free(labels);
            return td_fail(err, TD_ENOMEM, NULL, "out of memory");
        }
        st = td_gmm_mstep(w, pool, g, hp->gmm.reg_covar, NULL, empty, NULL, err);
        /* a k-means cluster without rows (duplicates) starts at its centre */
        for (int64_t k = 0; k < M && !st; k++)
            if (empty[k]) {
                double *mean = g->means + k * E;
                if (centres)
                    memcpy(mean, centres + k * E, sizeof(double) * (size_t)E);
                else
                    for (int64_t j = 0; j < E; j++)
                        mean[j] = w->X[td_rng_below(rng, (uint64_t)N) * E + j];
                if (td_gmm_reseed(w, g, k, mean, hp->gmm.reg_covar))
                    st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
            }
        free(empty), free(centres), free(labels);
        if (st) return st;
        if (!td_gmm_finite(g))
            return td_fail(err, TD_EDIVERGED, "X",
                           "the initial mixture is not "
                           "finite: the rows' spread overflows float32 in the covariance "
                           "estimates (the largest |value| is %g); scale the features",
                           max_abs(w->X, N * E));
    }
    if (hp->gmm.weights_init.v) {
        double s = 0;
        for (int64_t k = 0; k < M; k++)
            s += hp->gmm.weights_init.v[k];
        for (int64_t k = 0; k < M; k++)
            g->weights[k] = hp->gmm.weights_init.v[k] / s;
    }
    if (hp->gmm.means_init.v)
        for (int64_t i = 0; i < M * E; i++)
            g->means[i] = hp->gmm.means_init.v[i];
    if (hp->gmm.covariances_init.v)
        for (int64_t i = 0; i < td_gmm_covs_size(w->cov, M, E); i++)
            g->covs[i] = hp->gmm.covariances_init.v[i];
    return TD_OK;
}
