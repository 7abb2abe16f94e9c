/* gmm_model.c — a gmm model outside EM: validation of its hyperparameters against the
 * data, prediction, and the precision factors the exporters need (contracts in gmm.h). */
#include "train/gmm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/gmm_impl.h"

/* ---- validation --------------------------------------------------------------------- */

static const char *cov_name(td_covariance c)
{
    return c == TD_COV_FULL ? "full"
        : c == TD_COV_DIAG  ? "diag"
        : c == TD_COV_TIED  ? "tied"
                            : "spherical";
}

static void shape_text(char *buf, size_t n, const td_hp_tensor *t)
{
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < t->ndim && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
    if (len < n) snprintf(buf + len, n - len, ")");
}

/* Does t have exactly the dims want (ndim of them)? */
static int shape_is(const td_hp_tensor *t, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    int64_t want[3] = {d0, d1, d2};
    if (t->ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (t->dims[d] != want[d]) return 0;
    return 1;
}

static td_status check_covariances_init(const td_hparams *hp, int64_t M, int64_t E, td_error *err)
{
    const td_hp_tensor *t = &hp->gmm.covariances_init;
    char got[96], field[96];
    shape_text(got, sizeof got, t);
    static const char *const what[] = {"(components, features, features)", "(components, features)",
                                       "(components)",
                                       "(features, features), one matrix for all components"};
    int ok = hp->gmm.covariance == TD_COV_FULL ? shape_is(t, 3, M, E, E)
        : hp->gmm.covariance == TD_COV_DIAG    ? shape_is(t, 2, M, E, 0)
        : hp->gmm.covariance == TD_COV_TIED    ? shape_is(t, 2, E, E, 0)
                                               : shape_is(t, 1, M, 0, 0);
    if (!ok) {
        char want[96];
        if (hp->gmm.covariance == TD_COV_TIED)
            snprintf(want, sizeof want, "(%lld, %lld)", (long long)E, (long long)E);
        else if (hp->gmm.covariance == TD_COV_FULL)
            snprintf(want, sizeof want, "(%lld, %lld, %lld)", (long long)M, (long long)E,
                     (long long)E);
        else if (hp->gmm.covariance == TD_COV_DIAG)
            snprintf(want, sizeof want, "(%lld, %lld)", (long long)M, (long long)E);
        else
            snprintf(want, sizeof want, "(%lld)", (long long)M);
        return td_fail(err, TD_EINVAL, "covariances_init",
                       "covariances_init has shape %s; covariance \"%s\" needs %s %s", got,
                       cov_name(hp->gmm.covariance), want, what[hp->gmm.covariance]);
    }
    if (hp->gmm.covariance == TD_COV_DIAG || hp->gmm.covariance == TD_COV_SPHERICAL) {
        for (int64_t i = 0; i < t->n; i++)
            if (!(t->v[i] > 0)) {
                if (hp->gmm.covariance == TD_COV_DIAG)
                    snprintf(field, sizeof field, "covariances_init[%lld][%lld]",
                             (long long)(i / E), (long long)(i % E));
                else
                    snprintf(field, sizeof field, "covariances_init[%lld]", (long long)i);
                return td_fail(err, TD_EINVAL, field, "variances must be > 0, got %g",
                               (double)t->v[i]);
            }
        return TD_OK;
    }
    double *A = malloc(sizeof(double) * (size_t)(2 * E * E));
    if (!A) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    td_status st = TD_OK;
    int64_t nmat = hp->gmm.covariance == TD_COV_TIED ? 1 : M;
    for (int64_t k = 0; k < nmat && !st; k++) {
        const float *c = t->v + k * E * E;
        if (hp->gmm.covariance == TD_COV_TIED)
            snprintf(field, sizeof field, "covariances_init");
        else
            snprintf(field, sizeof field, "covariances_init[%lld]", (long long)k);
        for (int64_t i = 0; i < E && !st; i++)
            for (int64_t j = 0; j < i && !st; j++) {
                double a = c[i * E + j], b = c[j * E + i];
                if (fabs(a - b) > 1e-8 + 1e-5 * fmax(fabs(a), fabs(b)))
                    st = td_fail(err, TD_EINVAL, field,
                                 "%s is not symmetric: [%lld][%lld] "
                                 "= %g but [%lld][%lld] = %g",
                                 field, (long long)i, (long long)j, a, (long long)j, (long long)i,
                                 b);
            }
        for (int64_t i = 0; i < E * E; i++)
            A[i] = c[i];
        if (!st && cholesky(A + E * E, A, E))
            st = td_fail(err, TD_EINVAL, field, "%s is not positive definite", field);
    }
    free(A);
    return st;
}

td_status td_gmm_check(const td_hparams *hp, const td_dataset *ds, int64_t *K, td_error *err)
{
    int64_t M = hp->gmm.components, E = ds->D, N = ds->N;
    char got[96];
    if (M > N)
        return td_fail(err, TD_EINVAL, "components",
                       "components (%lld) must not "
                       "exceed the number of samples (%lld)",
                       (long long)M, (long long)N);
    int64_t P = M * (1 + E) + td_gmm_covs_size(hp->gmm.covariance, M, E);
    if (P > MAX_PARAMS)
        return td_fail(err, TD_EINVAL, "components",
                       "%lld components of %lld "
                       "features with covariance \"%s\" have %lld parameters; at most %lld "
                       "are supported",
                       (long long)M, (long long)E, cov_name(hp->gmm.covariance), (long long)P,
                       MAX_PARAMS);
    const td_hp_tensor *w = &hp->gmm.weights_init;
    if (w->v) {
        if (!shape_is(w, 1, M, 0, 0)) {
            shape_text(got, sizeof got, w);
            return td_fail(err, TD_EINVAL, "weights_init",
                           "weights_init has shape %s; "
                           "it needs one weight per component (%lld)",
                           got, (long long)M);
        }
        double sum = 0;
        for (int64_t k = 0; k < M; k++) {
            if (!(w->v[k] >= 0 && w->v[k] <= 1)) {
                char field[64];
                snprintf(field, sizeof field, "weights_init[%lld]", (long long)k);
                return td_fail(err, TD_EINVAL, field, "weights must be in [0, 1], got %g",
                               (double)w->v[k]);
            }
            sum += w->v[k];
        }
        if (fabs(sum - 1) > 1e-5)
            return td_fail(err, TD_EINVAL, "weights_init",
                           "weights_init must sum to "
                           "1, got %.7g",
                           sum);
    }
    const td_hp_tensor *mu = &hp->gmm.means_init;
    if (mu->v && !shape_is(mu, 2, M, E, 0)) {
        shape_text(got, sizeof got, mu);
        return td_fail(err, TD_EINVAL, "means_init",
                       "means_init has shape %s; it "
                       "needs (%lld, %lld) (components, features)",
                       got, (long long)M, (long long)E);
    }
    if (hp->gmm.covariances_init.v) {
        td_status st = check_covariances_init(hp, M, E, err);
        if (st) return st;
    }
    if (K) *K = M;
    return TD_OK;
}

/* ---- prediction --------------------------------------------------------------------- */

td_status td_gmm_predict(int32_t *labels, float *resp, float *loglik, const td_model *m,
                         const float *X, int64_t N, int64_t D, td_error *err)
{
    if (m->kind != TD_MODEL_GMM) return td_fail(err, TD_EINVAL, "model", "not a gmm model");
    if (D != m->D)
        return td_fail(err, TD_EINVAL, "X", "X has %lld features, the model expects %lld",
                       (long long)D, (long long)m->D);
    int64_t M = m->K, E = m->D;
    {
        td_model plain; /* standardize: the model on standardized rows */
        float *Xs;
        td_status sst = td_standardize_input(m, &plain, &Xs, X, N, err);
        if (sst || Xs) {
            if (!sst) sst = td_gmm_predict(labels, resp, loglik, &plain, Xs, N, D, err);
            free(Xs);
            return sst;
        }
    }
    td_gmm g;
    if (td_gmm_alloc(&g, M, E, m->covariance))
        return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    td_gmm_from_params(&g, m->params);
    /* centre: the mixture's mean, so products lose no precision far from the origin */
    double *centre = xcalloc((size_t)E, sizeof(double)), wsum = 0;
    for (int64_t k = 0; centre && k < M; k++) {
        wsum += g.weights[k];
        for (int64_t j = 0; j < E; j++)
            centre[j] += g.weights[k] * g.means[k * E + j];
    }
    for (int64_t j = 0; centre && wsum > 0 && j < E; j++)
        centre[j] /= wsum;
    td_gmm_work *w = centre ? td_gmm_work_create(X, N, E, M, m->covariance, centre) : NULL;
    free(centre);
    td_status st;
    if (!w) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory for %lld predictions", (long long)N);
        goto done;
    }
    if ((st = td_gmm_prepare(w, &g, err))) {
        if (st != TD_ENOMEM) /* out of memory stays what it is */
            st = td_fail(err, TD_EINVAL, "model",
                         "the model's covariances are not positive "
                         "definite");
        goto done;
    }
    double mean_ll;
    if ((st = td_gmm_estep(w, NULL, &mean_ll, NULL, err))) goto done;
    for (int64_t i = 0; i < N; i++) {
        int64_t best = 0;
        for (int64_t k = 0; k < M; k++) {
            float r = w->respT[k * N + i];
            if (resp) resp[i * M + k] = r;
            if (r > w->respT[best * N + i]) best = k;
        }
        if (labels) labels[i] = (int32_t)best;
        if (loglik) loglik[i] = w->loglik[i];
    }
done:
    td_gmm_work_destroy(w);
    td_gmm_free(&g);
    return st;
}

int td_gmm_inverse_factor(double *Li, double *logdet, const float *cov, td_covariance kind,
                          int64_t E)
{
    *logdet = 0;
    if (kind != TD_COV_FULL) {
        memset(Li, 0, sizeof(double) * (size_t)(E * E));
        for (int64_t j = 0; j < E; j++) {
            double v = kind == TD_COV_DIAG ? cov[j] : cov[0];
            if (!(v > 0) || !isfinite(v)) return -1;
            Li[j * E + j] = 1 / sqrt(v);
            *logdet += log(v);
        }
        return 0;
    }
    double *A = xcalloc((size_t)(2 * E * E), sizeof(double)), *L = A ? A + E * E : NULL;
    if (!A) return -2;
    for (int64_t i = 0; i < E * E; i++)
        A[i] = cov[i];
    int rc = cholesky(L, A, E);
    if (rc == 0) {
        tri_inverse(Li, L, E);
        for (int64_t j = 0; j < E; j++)
            *logdet += 2 * log(L[j * E + j]);
    }
    free(A);
    return rc;
}
