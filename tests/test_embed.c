/* test_embed.c — the embed_gmm model: finite-difference checks (double) of the contrastive
 * and GMM-NLL gradients w.r.t. the embeddings and of the combined network gradient; the
 * split re-seeding; blob purity for several seeds with the default settings; determinism
 * across thread counts; exact save/restore (inside and after the warm-up); datasets with
 * pairs; validation. embed_gmm jobs through the REST API are in test_rest_gmm.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math/rng.h"
#include "fixtures.h"
#include "testutil.h"
#include "train/gmm.h"
#include "traind/loss.h"
#include "traind/train.h"

/* ---- helpers ------------------------------------------------------------------------ */

static double gauss(td_rng *r)
{
    double u = td_rng_uniform(r), v = td_rng_uniform(r);
    return sqrt(-2 * log(1 - u)) * cos(2 * M_PI * v);
}

static void expect_invalid(const td_hparams *hp, const td_dataset *ds, const char *field)
{
    td_error err = {{0}, {0}};
    td_trainer *t = NULL;
    ck_assert_int_eq(td_trainer_create(&t, hp, ds, NULL, &err), TD_EINVAL);
    ck_assert_msg(strcmp(err.field, field) == 0, "field %s (%s), want %s", err.field, err.message,
                  field);
}

/* The model's assignments (rows). */
static const float *assignments(const td_model *m)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    ck_assert_str_eq(t[nt - 1].name, "assignments");
    ck_assert_int_eq(t[nt - 1].cols, m->rows);
    return m->params + t[nt - 1].offset;
}

/* ---- double references -------------------------------------------------------------- */

/* mean contrastive loss of SPEC §2 in double */
static double ref_contrastive(const double *a, const double *b, const int32_t *s, int64_t P,
                              int64_t E, double margin)
{
    double tot = 0;
    for (int64_t p = 0; p < P; p++) {
        double d2 = 0;
        for (int64_t j = 0; j < E; j++)
            d2 += (a[p * E + j] - b[p * E + j]) * (a[p * E + j] - b[p * E + j]);
        double h = fmax(0, margin - sqrt(d2));
        tot += s[p] ? d2 / 2 : h * h / 2;
    }
    return tot / (double)P;
}

/* A GMM in double: weights (M), means (M, E), full covariances (M, E, E). */
typedef struct dgmm {
    int64_t M, E;
    double w[8], mu[8 * 8], S[8 * 8 * 8];
} dgmm;

static void ref_cholesky(double *L, const double *A, int64_t E)
{
    memset(L, 0, sizeof(double) * (size_t)(E * E));
    for (int64_t j = 0; j < E; j++) {
        double s = A[j * E + j];
        for (int64_t k = 0; k < j; k++)
            s -= L[j * E + k] * L[j * E + k];
        ck_assert(s > 0);
        L[j * E + j] = sqrt(s);
        for (int64_t i = j + 1; i < E; i++) {
            double t = A[i * E + j];
            for (int64_t k = 0; k < j; k++)
                t -= L[i * E + k] * L[j * E + k];
            L[i * E + j] = t / L[j * E + j];
        }
    }
}

/* mean over rows of -log sum_k w_k N(z_i | mu_k, S_k), in double */
static double ref_nll(const dgmm *g, const double *Z, int64_t N)
{
    int64_t M = g->M, E = g->E;
    double L[64], y[8], lp[8], tot = 0;
    for (int64_t i = 0; i < N; i++) {
        double mx = -INFINITY;
        for (int64_t k = 0; k < M; k++) {
            ref_cholesky(L, g->S + k * E * E, E);
            double q = 0, ld = 0;
            for (int64_t a = 0; a < E; a++) { /* forward substitution L y = z - mu */
                double t = Z[i * E + a] - g->mu[k * E + a];
                for (int64_t b = 0; b < a; b++)
                    t -= L[a * E + b] * y[b];
                y[a] = t / L[a * E + a];
                q += y[a] * y[a];
                ld += log(L[a * E + a]);
            }
            lp[k] = log(g->w[k]) - 0.5 * (double)E * log(2 * M_PI) - ld - 0.5 * q;
            mx = lp[k] > mx ? lp[k] : mx;
        }
        double s = 0;
        for (int64_t k = 0; k < M; k++)
            s += exp(lp[k] - mx);
        tot += -(mx + log(s));
    }
    return tot / (double)N;
}

/* ---- gradients w.r.t. the embeddings ------------------------------------------------ */

START_TEST(contrastive_gradient_matches_finite_differences)
{
    enum { P = 12, E = 3 };
    td_rng r;
    td_rng_seed(&r, 5, 1);
    float a[P * E], b[P * E], da[P * E], db[P * E];
    double ad[P * E], bd[P * E];
    int32_t s[P];
    for (int64_t p = 0; p < P; p++) {
        s[p] = p % 2;
        double scale = p % 3 == 0 ? 1.5 : 0.3; /* dissimilar pairs both inside and outside
                                                  the margin */
        for (int64_t j = 0; j < E; j++) {
            a[p * E + j] = (float)gauss(&r);
            b[p * E + j] = (float)(a[p * E + j] + scale * gauss(&r));
        }
    }
    for (int64_t i = 0; i < P * E; i++)
        ad[i] = a[i], bd[i] = b[i];
    double sum;
    td_contrastive_sum(&sum, NULL, da, db, a, b, s, P, E, 1.0, 1.0f / P);
    tu_close(sum / P, ref_contrastive(ad, bd, s, P, E, 1.0), 1e-12, 1e-12, "loss");
    const double h = 1e-6;
    for (int64_t i = 0; i < P * E; i++) {
        for (int side = 0; side < 2; side++) {
            double *v = side ? bd : ad, keep = v[i];
            v[i] = keep + h;
            double up = ref_contrastive(ad, bd, s, P, E, 1.0);
            v[i] = keep - h;
            double dn = ref_contrastive(ad, bd, s, P, E, 1.0);
            v[i] = keep;
            tu_close(side ? db[i] : da[i], (up - dn) / (2 * h), 1e-4, 1e-6, "d loss / d pair");
        }
    }
}
END_TEST

/* gamma/N * d(sum NLL)/dZ from td_gmm_nll_grad against central differences of the double
 * mean NLL, for each covariance kind (diag and spherical written as full matrices; tied:
 * component 0's matrix for all). thin (full and tied): a rank-1 covariance + 1e-5 I,
 * condition ~1e4-1e5, which puts the E-step and the gradient in double. */
static void check_nll_grad(td_covariance cov, int thin)
{
    enum { N = 40, E = 3, M = 3 };
    td_rng r;
    td_rng_seed(&r, 11 + (uint64_t)cov, 2);
    float X[N * E], dX[N * E];
    double Z[N * E];
    td_gmm g;
    ck_assert_int_eq(td_gmm_alloc(&g, M, E, cov), TD_OK);
    dgmm ref = {.M = M, .E = E};
    int64_t CS = td_gmm_cov_size(cov, E);
    for (int64_t k = 0; k < M; k++) {
        g.weights[k] = ref.w[k] = (1.0 + (double)k) / 6.0;
        for (int64_t j = 0; j < E; j++)
            g.means[k * E + j] = ref.mu[k * E + j] = 2 * gauss(&r);
        double A[E * E];
        for (int64_t i = 0; i < E * E; i++)
            A[i] = thin && i % E ? 0 : 0.4 * gauss(&r);
        for (int64_t a = 0; a < E; a++)
            for (int64_t b = 0; b < E; b++) {
                double s = 0;
                for (int64_t c = 0; c < E; c++)
                    s += A[a * E + c] * A[b * E + c];
                if (cov == TD_COV_TIED && k > 0) { /* one shared matrix */
                    ref.S[k * E * E + a * E + b] = ref.S[a * E + b];
                    continue;
                }
                double v = cov == TD_COV_FULL || cov == TD_COV_TIED
                    ? s + (a == b ? (thin ? 1e-5 : 0.5) : 0)
                    : a == b
                    ? (cov == TD_COV_DIAG ? 0.5 + 0.3 * (double)(a + k) : 0.7 + 0.2 * (double)k)
                    : 0;
                ref.S[k * E * E + a * E + b] = v;
                if (cov == TD_COV_FULL || cov == TD_COV_TIED)
                    g.covs[k * CS + a * E + b] = v;
                else if (cov == TD_COV_DIAG && a == b)
                    g.covs[k * CS + a] = v;
                else if (a == b)
                    g.covs[k] = v;
            }
    }
    for (int64_t i = 0; i < N; i++) {
        int64_t k = i % M;
        for (int64_t j = 0; j < E; j++)
            X[i * E + j] = (float)(ref.mu[k * E + j] + 1.2 * gauss(&r));
    }
    for (int64_t i = 0; i < N * E; i++)
        Z[i] = X[i];
    td_gmm_work *w = td_gmm_work_create(X, N, E, M, cov, NULL);
    ck_assert_ptr_nonnull(w);
    td_error err = {{0}, {0}};
    double ll, ll2;
    const float gamma = 0.3f;
    ck_assert_int_eq(td_gmm_prepare(w, &g, &err), TD_OK);
    ck_assert_int_eq(td_gmm_estep(w, NULL, &ll2, NULL, &err), TD_OK);
    ck_assert_int_eq(td_gmm_nll_grad(w, NULL, dX, gamma / N, &ll, &err), TD_OK);
    tu_close(ll, ll2, 0, 1e-12, "mean log-likelihood as the E-step's");
    tu_close(-ll, ref_nll(&ref, Z, N), 1e-5, 1e-5, "mean NLL");
    const double h = 1e-5;
    for (int64_t i = 0; i < N * E; i++) {
        double keep = Z[i];
        Z[i] = keep + h;
        double up = ref_nll(&ref, Z, N);
        Z[i] = keep - h;
        double dn = ref_nll(&ref, Z, N);
        Z[i] = keep;
        tu_close(dX[i], gamma * (up - dn) / (2 * h), 2e-3, 2e-5, "d gamma NLL / dz");
    }
    td_gmm_work_destroy(w);
    td_gmm_free(&g);
}

START_TEST(gmm_nll_gradient_matches_finite_differences)
{
    check_nll_grad(TD_COV_FULL, 0);
    check_nll_grad(TD_COV_DIAG, 0);
    check_nll_grad(TD_COV_SPHERICAL, 0);
    check_nll_grad(TD_COV_TIED, 0);
    check_nll_grad(TD_COV_FULL, 1);
    check_nll_grad(TD_COV_TIED, 1);
}
END_TEST

/* ---- the combined network gradient -------------------------------------------------- */

/* The objective of td_trainer_objective in double from the model's float parameters:
 * network D -> H (tanh) -> E, contrastive over the dataset's pairs, gamma * mean NLL of
 * every row under the model's GMM, + l2/2 |W|^2. */
typedef struct ref_obj {
    const td_dataset *ds;
    int64_t D, H, E, M;
    double gamma, l2;
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt;
} ref_obj;

static double ref_objective(const ref_obj *o, const double *p)
{
    const td_dataset *ds = o->ds;
    int64_t N = ds->N, D = o->D, H = o->H, E = o->E;
    const double *W0 = p + o->t[0].offset, *b0 = p + o->t[1].offset;
    const double *W1 = p + o->t[2].offset, *b1 = p + o->t[3].offset;
    double *Z = malloc(sizeof(double) * (size_t)(N * E)), h[16];
    ck_assert(Z && H <= 16);
    for (int64_t i = 0; i < N; i++) {
        for (int64_t j = 0; j < H; j++) {
            double s = b0[j];
            for (int64_t d = 0; d < D; d++)
                s += (double)ds->X[i * D + d] * W0[d * H + j];
            h[j] = tanh(s);
        }
        for (int64_t e = 0; e < E; e++) {
            double s = b1[e];
            for (int64_t j = 0; j < H; j++)
                s += h[j] * W1[j * E + e];
            Z[i * E + e] = s;
        }
    }
    int64_t P = ds->P;
    double *a = malloc(sizeof(double) * (size_t)(P * E)),
           *b = malloc(sizeof(double) * (size_t)(P * E));
    ck_assert(a && b);
    for (int64_t q = 0; q < P; q++)
        for (int64_t e = 0; e < E; e++) {
            a[q * E + e] = Z[ds->pairs[2 * q] * E + e];
            b[q * E + e] = Z[ds->pairs[2 * q + 1] * E + e];
        }
    double L = ref_contrastive(a, b, ds->pair_labels, P, E, 1.0);
    dgmm g = {.M = o->M, .E = E};
    const double *gw = p + o->t[4].offset, *gm = p + o->t[5].offset, *gc = p + o->t[6].offset;
    for (int64_t k = 0; k < o->M; k++) {
        g.w[k] = gw[k];
        for (int64_t e = 0; e < E; e++)
            g.mu[k * E + e] = gm[k * E + e];
        for (int64_t e = 0; e < E * E; e++)
            g.S[k * E * E + e] = gc[k * E * E + e];
    }
    L += o->gamma * ref_nll(&g, Z, N);
    double sq = 0;
    for (int i = 0; i < 4; i += 2)
        for (int64_t j = 0; j < o->t[i].rows * o->t[i].cols; j++)
            sq += p[o->t[i].offset + j] * p[o->t[i].offset + j];
    free(Z), free(a), free(b);
    return L + 0.5 * o->l2 * sq;
}

START_TEST(combined_network_gradient_matches_finite_differences)
{
    enum { N = 30, D = 3, H = 5, E = 2, M = 2, NP = 14 };
    int32_t y[N], pairs[2 * NP], pl[NP];
    float *X = embed_blobs(N, D, 2, 3, y);
    for (int64_t q = 0; q < NP; q++) { /* similar and dissimilar pairs from the blobs */
        int64_t i = q, j = (q * 7 + 3) % N;
        pairs[2 * q] = (int32_t)i, pairs[2 * q + 1] = (int32_t)j;
        pl[q] = y[i] == y[j];
    }
    td_dataset ds = {.N = N, .D = D, .X = X, .pairs = pairs, .pair_labels = pl, .P = NP};
    td_hparams hp = embed_hp(E, M, 9);
    hp.mlp.hidden[0] = H;
    hp.mlp.activation = TD_ACT_TANH;
    hp.epochs = 10;
    hp.embed.warmup_iterations = 2;
    hp.embed.gmm_weight = 0.5; /* large, so both terms show in the gradient */
    hp.l2 = 0.01;
    hp.lr = 0.01;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    double loss;
    float *grad = malloc(sizeof(float) * 4096);
    ck_assert_int_ne(td_trainer_objective(t, &loss, grad), TD_OK); /* before any iteration */
    for (int i = 0; i < 4; i++) /* the GMM exists after the warm-up */
        tu_step_ok(t, &rec);
    const td_model *m = td_trainer_model(t);
    ck_assert_int_le(m->n_params, 4096);
    ck_assert_int_eq(td_trainer_objective(t, &loss, grad), TD_OK);
    ref_obj o = {
        .ds = &ds, .D = D, .H = H, .E = E, .M = M, .gamma = hp.embed.gmm_weight, .l2 = hp.l2};
    o.nt = td_model_layout(m, o.t);
    ck_assert_int_eq(o.nt, 8);
    double *p = malloc(sizeof(double) * (size_t)m->n_params);
    for (int64_t i = 0; i < m->n_params; i++)
        p[i] = m->params[i];
    tu_close(loss, ref_objective(&o, p), 1e-5, 1e-6, "objective");
    int64_t n_net = o.t[4].offset;
    const double h = 1e-6;
    for (int64_t i = 0; i < n_net; i++) {
        double keep = p[i];
        p[i] = keep + h;
        double up = ref_objective(&o, p);
        p[i] = keep - h;
        double dn = ref_objective(&o, p);
        p[i] = keep;
        tu_close_at(__FILE__, __LINE__, grad[i], (up - dn) / (2 * h), 2e-3, 2e-5,
                    "d objective / d network parameter", i);
    }
    for (int64_t i = n_net; i < m->n_params; i++)
        ck_assert(grad[i] == 0);
    free(p), free(grad), free(X);
    td_trainer_destroy(t);
    td_hparams_fini(&hp);
}
END_TEST

/* ---- re-seeding by splitting -------------------------------------------------------- */

START_TEST(split_reseeds_along_the_principal_axis)
{
    enum { N = 8, E = 2, M = 3 };
    float X[N * E] = {0};
    td_gmm_work *w = td_gmm_work_create(X, N, E, M, TD_COV_FULL, NULL);
    td_gmm g;
    ck_assert_int_eq(td_gmm_alloc(&g, M, E, TD_COV_FULL), TD_OK);
    double w0[M] = {0.004, 0.5, 0.496}, tr[M] = {1, 1, 3};
    for (int64_t k = 0; k < M; k++) {
        g.weights[k] = w0[k];
        g.means[k * E] = (double)k, g.means[k * E + 1] = -(double)k;
        g.covs[k * 4] = g.covs[k * 4 + 3] = tr[k] / 2;
    }
    /* component 2: variance 4 along (1, 1)/sqrt 2, 1 across it (largest weight x trace) */
    g.covs[8] = g.covs[11] = 2.5, g.covs[9] = g.covs[10] = 1.5;
    int64_t j;
    ck_assert_int_eq(td_gmm_split(w, &g, 0, &j), TD_OK);
    ck_assert_int_eq(j, 2);
    double s = sqrt(2.0); /* sd 2 along the axis: +/- (sqrt 2, sqrt 2) */
    ck_assert(fabs(fabs(g.means[0] - 2) - s) < 1e-6 && fabs(fabs(g.means[1] + 2) - s) < 1e-6);
    tu_close(g.means[0] + g.means[4], 4, 0, 1e-9, "split means are symmetric");
    tu_close(g.means[1] + g.means[5], -4, 0, 1e-9, "split means are symmetric");
    tu_close((g.means[0] - 2) * (g.means[1] + 2), 2, 0, 1e-6, "along (1, 1)");
    double tot = 0.5 + 0.496; /* renormalised after the tiny weight is dropped */
    tu_close(g.weights[0], 0.248 / tot, 1e-12, 0, "half of j's weight");
    tu_close(g.weights[2], 0.248 / tot, 1e-12, 0, "half of j's weight");
    tu_close(g.weights[1], 0.5 / tot, 1e-12, 0, "others renormalised");
    for (int i = 0; i < 4; i++)
        tu_close(g.covs[i], g.covs[8 + i], 0, 0, "the split component's covariance");
    td_gmm_free(&g);
    td_gmm_work_destroy(w);
}
END_TEST

/* ---- training ------------------------------------------------------------------------ */

/* 6 labelled blobs in 20 dimensions, 3000 rows, E = 4, 300 iterations, default settings:
 * the final assignments reach >= 0.9 purity for every seed, and equal the predictions of
 * the final model on the training rows. */
START_TEST(blob_purity_for_several_seeds)
{
    int64_t N = 3000, D = 20, K = 6;
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N), *lab = malloc(sizeof(int32_t) * (size_t)N);
    float *X = embed_blobs(N, D, K, 1, y);
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    static const int64_t seeds[] = {0, 1, 7};
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        td_hparams hp = embed_hp(4, K, seeds[s]);
        td_trainer *t = tu_make_trainer(&hp, &ds);
        td_trainer_set_threads(t, 2);
        td_record rec;
        int nll = tu_column(t, "gmm_nll"), pl = tu_column(t, "pair_loss"),
            sz = tu_column(t, "size_0");
        ck_assert(nll > 0 && pl > 0 && sz > 0 && tu_column(t, "loss") >= 0);
        ck_assert_int_eq(td_trainer_epochs(t), 300);
        while (!td_trainer_done(t)) {
            tu_step_ok(t, &rec);
            int64_t e = td_trainer_epoch(t);
            ck_assert(isfinite(rec.v[pl]));
            ck_assert(e <= 45 ? isnan(rec.v[nll]) : isfinite(rec.v[nll])); /* 15% warm-up */
            if (e > 45) {
                double tot = 0;
                for (int64_t k = 0; k < K; k++)
                    tot += rec.v[sz + k];
                tu_close(tot, (double)N, 1e-4, 0, "sizes sum to N");
            }
        }
        const td_model *m = td_trainer_model(t);
        const float *a = assignments(m);
        double pur = purity(a, y, N, K, K);
        ck_assert_msg(pur >= 0.9, "seed %lld: purity %.4f", (long long)seeds[s], pur);
        td_error err = {{0}, {0}};
        ck_assert_int_eq(td_embed_predict(NULL, lab, NULL, NULL, m, X, N, D, &err), TD_OK);
        for (int64_t i = 0; i < N; i++)
            ck_assert(a[i] == (float)lab[i]);
        ck_assert_int_eq(m->n_iter, 300 - 45);
        td_trainer_destroy(t);
        td_hparams_fini(&hp);
    }
    free(X), free(y), free(lab);
}
END_TEST

/* Runs hp on ds with n threads to the end; returns the params (caller frees) and the
 * records' loss column sum in *sig. */
static float *run_all(const td_hparams *hp, const td_dataset *ds, int n, double *sig)
{
    td_trainer *t = tu_make_trainer(hp, ds);
    td_trainer_set_threads(t, n);
    td_record rec;
    *sig = 0;
    while (!td_trainer_done(t)) {
        tu_step_ok(t, &rec);
        *sig = *sig * 1.000001 + rec.v[2] + (isnan(rec.v[4]) ? 0 : rec.v[4]);
    }
    const td_model *m = td_trainer_model(t);
    float *p = malloc(sizeof(float) * (size_t)m->n_params);
    memcpy(p, m->params, sizeof(float) * (size_t)m->n_params);
    td_trainer_destroy(t);
    return p;
}

START_TEST(same_seed_is_bit_identical_for_any_thread_count)
{
    int64_t N = 5000, D = 10, K = 4;
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    float *X = embed_blobs(N, D, K, 2, y);
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    for (int variant = 0; variant < 2; variant++) {
        td_hparams hp = embed_hp(3, K, 5);
        hp.epochs = 30;
        hp.mlp.hidden[0] = 32;
        if (variant) { /* a GMM batch, diagonal covariances, two hidden layers */
            hp.embed.gmm_batch = 1200;
            hp.gmm.covariance = TD_COV_DIAG;
            hp.mlp.n_hidden = 2;
            hp.mlp.hidden[1] = 16;
            hp.mlp.activation = TD_ACT_TANH;
        }
        double s1, s2, s3;
        float *p1 = run_all(&hp, &ds, 1, &s1), *p2 = run_all(&hp, &ds, 2, &s2),
              *p3 = run_all(&hp, &ds, 3, &s3);
        td_trainer *t = tu_make_trainer(&hp, &ds);
        int64_t n = td_trainer_model(t)->n_params;
        td_trainer_destroy(t);
        ck_assert(memcmp(p1, p2, sizeof(float) * (size_t)n) == 0);
        ck_assert(memcmp(p1, p3, sizeof(float) * (size_t)n) == 0);
        ck_assert(s1 == s2 && s1 == s3);
        free(p1), free(p2), free(p3);
        td_hparams_fini(&hp);
    }
    free(X), free(y);
}
END_TEST

START_TEST(restored_snapshot_continues_bit_identically)
{
    int64_t N = 2000, D = 8, K = 3;
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    float *X = embed_blobs(N, D, K, 4, y);
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    td_hparams hp = embed_hp(3, K, 2);
    hp.epochs = 24;
    hp.embed.warmup_iterations = 6;
    hp.mlp.hidden[0] = 16;
    hp.embed.gmm_batch = 700;
    static const int at[] = {3, 6, 11}; /* inside the warm-up, at its end, after it */
    for (size_t s = 0; s < sizeof at / sizeof at[0]; s++) {
        td_trainer *a = tu_make_trainer(&hp, &ds);
        td_record ra, rb;
        for (int i = 0; i < at[s]; i++)
            tu_step_ok(a, &ra);
        size_t len = td_trainer_state_size(a);
        void *snap = malloc(len);
        ck_assert_uint_eq(td_trainer_save(a, snap, len), len);
        td_trainer *b = tu_make_trainer(&hp, &ds);
        td_error err = {{0}, {0}};
        ck_assert_int_eq(td_trainer_restore(b, snap, len, &err), TD_OK);
        ck_assert_int_eq(td_trainer_epoch(b), at[s]);
        const td_model *ma = td_trainer_model(a), *mb = td_trainer_model(b);
        ck_assert(memcmp(ma->params, mb->params, sizeof(float) * (size_t)ma->n_params) == 0);
        int ncol;
        td_trainer_columns(a, &ncol);
        while (!td_trainer_done(a)) {
            tu_step_ok(a, &ra);
            tu_step_ok(b, &rb);
            for (int c = 2; c < ncol; c++) /* every column but the elapsed time */
                ck_assert(ra.v[c] == rb.v[c] || (isnan(ra.v[c]) && isnan(rb.v[c])));
        }
        ck_assert(td_trainer_done(b));
        ck_assert(memcmp(ma->params, mb->params, sizeof(float) * (size_t)ma->n_params) == 0);
        ck_assert(ma->n_iter == mb->n_iter && ma->lower_bound == mb->lower_bound);
        if (s == 0) { /* a snapshot of another shape is refused */
            td_hparams hp2 = embed_hp(2, K, 2);
            td_trainer *c = tu_make_trainer(&hp2, &ds);
            ck_assert_int_eq(td_trainer_restore(c, snap, len, &err), TD_EINVAL);
            td_trainer_destroy(c);
        }
        free(snap);
        td_trainer_destroy(a);
        td_trainer_destroy(b);
    }
    td_hparams_fini(&hp);
    free(X), free(y);
}
END_TEST

/* A dataset with pairs and no labels trains; bad data and settings are named. */
START_TEST(pairs_datasets_and_validation)
{
    int64_t N = 600, D = 5, K = 3, NP = 400;
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N), pairs[2 * 400], pl[400];
    float *X = embed_blobs(N, D, K, 8, y);
    td_rng r;
    td_rng_seed(&r, 1, 1);
    for (int64_t q = 0; q < NP; q++) {
        int64_t i = (int64_t)td_rng_below(&r, (uint64_t)N),
                j = (int64_t)td_rng_below(&r, (uint64_t)N);
        pairs[2 * q] = (int32_t)i, pairs[2 * q + 1] = (int32_t)j;
        pl[q] = y[i] == y[j];
    }
    td_dataset ds = {.N = N, .D = D, .X = X, .pairs = pairs, .pair_labels = pl, .P = NP};
    td_hparams hp = embed_hp(2, K, 1);
    hp.epochs = 150;
    hp.lr = 3e-3;
    hp.embed.pairs_per_iteration = 128; /* < NP: drawn from the dataset's pairs */
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    double pur = purity(assignments(td_trainer_model(t)), y, N, K, K);
    ck_assert_msg(pur >= 0.9, "purity %.4f from pairs", pur);
    td_trainer_destroy(t);

    /* validation */
    td_dataset bare = {.N = N, .D = D, .X = X};
    expect_invalid(&hp, &bare, "dataset");
    float *Y = calloc((size_t)(N * 2), sizeof(float));
    td_dataset probs = {.N = N, .D = D, .X = X, .Y = Y, .Y_cols = 2};
    expect_invalid(&hp, &probs, "dataset");
    pairs[7] = (int32_t)N;
    expect_invalid(&hp, &ds, "pairs[3][1]");
    pairs[7] = 0;
    pl[5] = 2;
    expect_invalid(&hp, &ds, "pair_labels[5]");
    pl[5] = 1;
    td_dataset lab = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    hp.embed.warmup_iterations = 150;
    expect_invalid(&hp, &lab, "warmup_iterations");
    hp.embed.warmup_iterations = -1;
    hp.embed.gmm_batch = 2;
    expect_invalid(&hp, &lab, "components");
    hp.embed.gmm_batch = 0;
    t = tu_make_trainer(&hp, &lab); /* labels alone are enough */
    td_trainer_destroy(t);
    ck_assert_int_eq(td_hparams_warmup(&hp), 150 * 15 / 100);
    td_hparams_fini(&hp);
    free(X), free(y), free(Y);
}
END_TEST

Suite *suite_embed(void)
{
    Suite *s = suite_create("embed");
    TCase *tc = tcase_create("engine");
    tcase_add_test(tc, contrastive_gradient_matches_finite_differences);
    tcase_add_test(tc, gmm_nll_gradient_matches_finite_differences);
    tcase_add_test(tc, combined_network_gradient_matches_finite_differences);
    tcase_add_test(tc, split_reseeds_along_the_principal_axis);
    tcase_add_test(tc, blob_purity_for_several_seeds);
    tcase_add_test(tc, same_seed_is_bit_identical_for_any_thread_count);
    tcase_add_test(tc, restored_snapshot_continues_bit_identically);
    tcase_add_test(tc, pairs_datasets_and_validation);
    suite_add_tcase(s, tc);
    return s;
}
