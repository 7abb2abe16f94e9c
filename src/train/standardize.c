/* standardize.c — the `standardize` hyperparameter, and the warnings of a finished run.
 *
 * Standardisation is a part of the model family's trainer (td_trainer.std, trainer_impl.h;
 * trainer.c calls it around the family's calls): it computes each feature's mean and
 * population std over the training dataset's rows (all of them: rows validation_split
 * holds out are counted too, as a scikit-learn Pipeline with a
 * StandardScaler before the estimator does), keeps standardized float32 copies of the
 * training and validation X (the families read X in place with BLAS, so the transform
 * cannot be folded into their reads; td_train_memory_estimate counts the copies) and hands
 * the family those. The model it reports carries mean and scale; predictions
 * (td_standardize_input) and exports apply them to raw rows. Its snapshot is the family's
 * followed by mean and scale, which a restore checks against the ones computed from the
 * data. gmm's weights_init / means_init / covariances_init live in the standardized
 * space. */
#define _GNU_SOURCE /* qsort_r */
#include "traind/train.h"

#include "train/trainer_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each feature's mean and population std (ddof 0) over the rows of X (N, D), summed in
 * double in row order: mean (D), sd (D). 0 when out of memory. */
static int moments(double **mean_sd, const float *X, int64_t N, int64_t D)
{
    double *mu = calloc((size_t)(2 * D), sizeof(double)), *sd = mu + D;
    if (!(*mean_sd = mu)) return 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < D; j++)
            mu[j] += X[i * D + j];
    for (int64_t j = 0; j < D; j++)
        mu[j] = N ? mu[j] / (double)N : 0;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < D; j++) {
            double d = (double)X[i * D + j] - mu[j];
            sd[j] += d * d;
        }
    for (int64_t j = 0; j < D; j++)
        sd[j] = N ? sqrt(sd[j] / (double)N) : 0;
    return 1;
}

td_status td_standardize_fit(float *mean, float *scale, const float *X, int64_t N, int64_t D,
                             td_error *err)
{
    double *m;
    if (!moments(&m, X, N, D)) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    for (int64_t j = 0; j < D; j++) {
        double sd = m[D + j];
        mean[j] = (float)m[j];
        /* a constant feature (or one whose float32 std underflows) is only centred */
        scale[j] = sd > 0 && isfinite(sd) && (float)sd > 0 ? (float)sd : 1.0f;
    }
    free(m);
    return TD_OK;
}

void td_standardize_apply(float *out, const float *X, int64_t N, int64_t D, const float *mean,
                          const float *scale)
{
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < D; j++)
            out[i * D + j] = (X[i * D + j] - mean[j]) / scale[j];
}

td_status td_standardize_input(const td_model *m, td_model *plain, float **Xs, const float *X,
                               int64_t N, td_error *err)
{
    *Xs = NULL;
    *plain = *m;
    if (!m->mean) return TD_OK;
    plain->mean = plain->scale = NULL;
    *Xs = malloc(sizeof(float) * (size_t)(N * m->D + 1));
    if (!*Xs)
        return td_fail(err, TD_ENOMEM, NULL, "out of memory standardizing %lld rows", (long long)N);
    td_standardize_apply(*Xs, X, N, m->D, m->mean, m->scale);
    return TD_OK;
}

/* ---- standardize's part of a trainer ------------------------------------------------ */

struct td_std {
    td_dataset train, val; /* the caller's, with X replaced by the copies */
    float *Xtrain, *Xval;  /* (N, D) owned standardized copies; Xval NULL without val */
    int64_t D;
    td_model model; /* the family's model plus mean and scale (borrowed), by td_std_sync */
    float stats[];  /* (2 * D): mean, then scale */
};

void td_std_free(td_std *s)
{
    if (!s) return;
    free(s->Xtrain);
    free(s->Xval);
    free(s);
}

void td_std_sync(td_std *s, const td_model *m)
{
    s->model = *m;
    s->model.mean = s->stats;
    s->model.scale = s->stats + s->D;
}

const td_model *td_std_model(const td_std *s) { return &s->model; }

size_t td_std_state_bytes(const td_std *s) { return sizeof(float) * (size_t)(2 * s->D); }

void td_std_save(const td_std *s, void *buf, size_t n)
{
    memcpy((char *)buf + n, s->stats, td_std_state_bytes(s));
}

td_status td_std_restore_check(const td_std *s, const void *buf, size_t len, td_error *err)
{
    size_t sb = td_std_state_bytes(s);
    if (len < sb || memcmp((const char *)buf + len - sb, s->stats, sb) != 0)
        return td_fail(err, TD_EINVAL, "checkpoint",
                       "the checkpoint's standardization "
                       "(mean and scale) differs from the training data's");
    return TD_OK;
}

td_status td_std_trainer_create(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                                const td_dataset *val, td_checked_create create, td_error *err)
{
    *out = NULL;
    if (train->N < 1 || train->D < 1)
        return create(out, hp, train, val, err); /* the family names the problem */
    td_std *s = calloc(1, sizeof *s + sizeof(float) * (size_t)(2 * train->D));
    if (!s) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    s->D = train->D;
    s->train = *train;
    s->Xtrain = malloc(sizeof(float) * (size_t)(train->N * train->D));
    if (val && val->N > 0 && val->D == train->D) {
        s->val = *val;
        s->Xval = malloc(sizeof(float) * (size_t)(val->N * val->D));
    }
    if (!s->Xtrain || (val && val->N > 0 && val->D == train->D && !s->Xval)) {
        td_std_free(s);
        return td_fail(err, TD_ENOMEM, NULL,
                       "out of memory for the standardized copy of "
                       "the data (%lld x %lld)",
                       (long long)train->N, (long long)train->D);
    }
    float *mean = s->stats, *scale = s->stats + s->D;
    td_status st = td_standardize_fit(mean, scale, train->X, train->N, train->D, err);
    if (st) {
        td_std_free(s);
        return st;
    }
    td_standardize_apply(s->Xtrain, train->X, train->N, train->D, mean, scale);
    s->train.X = s->Xtrain;
    if (s->Xval) {
        td_standardize_apply(s->Xval, val->X, val->N, val->D, mean, scale);
        s->val.X = s->Xval;
    }
    st = create(out, hp, &s->train, val ? (s->Xval ? &s->val : val) : NULL, err);
    if (st) {
        td_std_free(s);
        return st;
    }
    (*out)->std = s;
    td_std_sync(s, (*out)->model);
    return TD_OK;
}

size_t td_std_trainer_bytes(const td_dataset *train, const td_dataset *val)
{
    size_t b = sizeof(float) * (size_t)(train->N * train->D) /* the training copy */
        + sizeof(double) * (size_t)(2 * train->D)            /* td_standardize_fit's sums */
        + 2 * sizeof(float) * (size_t)(2 * train->D);        /* stats, in the snapshot too */
    if (val) b += sizeof(float) * (size_t)(val->N * val->D);
    return b + sizeof(td_std);
}

/* ---- warnings ------------------------------------------------------------------------- */

void td_loss_trace_init(td_loss_trace *lt) { lt->first = lt->max = lt->last = NAN; }

void td_loss_trace_add(td_loss_trace *lt, double loss)
{
    if (!isfinite(loss)) return;
    if (isnan(lt->first)) lt->first = lt->max = loss;
    lt->max = loss > lt->max ? loss : lt->max;
    lt->last = loss;
}

static void warn(td_warning *out, int *n, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void warn(td_warning *out, int *n, const char *code, const char *fmt, ...)
{
    if (*n >= TD_MAX_WARNINGS) return;
    td_warning *w = &out[(*n)++];
    snprintf(w->code, sizeof w->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->message, sizeof w->message, fmt, ap);
    va_end(ap);
}

static int cmp_rows(const void *a, const void *b, void *ctx)
{
    const td_dataset *ds = ctx;
    const float *x = ds->X + *(const int64_t *)a * ds->D, *y = ds->X + *(const int64_t *)b * ds->D;
    for (int64_t j = 0; j < ds->D; j++)
        if (x[j] != y[j]) return x[j] < y[j] ? -1 : 1;
    return 0;
}

/* Distinct rows of ds (rows equal value by value, so -0 == 0); -1 when out of memory. */
static int64_t distinct_rows(const td_dataset *ds)
{
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(ds->N + 1));
    if (!idx) return -1;
    for (int64_t i = 0; i < ds->N; i++)
        idx[i] = i;
    qsort_r(idx, (size_t)ds->N, sizeof *idx, cmp_rows, (void *)ds);
    int64_t n = ds->N > 0;
    for (int64_t i = 1; i < ds->N; i++)
        n += cmp_rows(&idx[i - 1], &idx[i], (void *)ds) != 0;
    free(idx);
    return n;
}

void td_train_warnings(td_warning out[TD_MAX_WARNINGS], int *n, const td_hparams *hp,
                       const td_dataset *train, const td_model *m, const td_loss_trace *lt)
{
    if (lt && isfinite(lt->first) && isfinite(lt->last)) {
        if (lt->last > lt->first)
            warn(out, n, "loss_increased",
                 "the loss ended at %.6g, above its first value "
                 "%.6g: the learning rate may be too large%s",
                 lt->last, lt->first,
                 hp->standardize ? "" : ", or the features need standardize: true");
        else if (lt->first > 0 && lt->max >= 10 * lt->first)
            warn(out, n, "loss_increased",
                 "the loss rose to %.6g, ten times its first value "
                 "%.6g, before ending at %.6g: the learning rate may be too large",
                 lt->max, lt->first, lt->last);
    }
    /* a classifier whose loss (data + penalty) ended above log K, what the zero output
     * layer (every class equally likely, no penalty) scores: the training failed even if
     * the loss fell from a first epoch that already blew up */
    if (m && lt && (m->kind == TD_MODEL_SOFTMAX || m->kind == TD_MODEL_MLP) && m->G == 1 &&
        m->K > 1 && hp->monotone_weight == 0 && isfinite(lt->last) && lt->last > log((double)m->K))
        warn(out, n, "loss_above_chance",
             "the loss ended at %.6g, above log(%lld) = %.4g, "
             "what predicting every class as equally likely scores: the training failed (the "
             "learning rate may be too large%s)",
             lt->last, (long long)m->K, log((double)m->K),
             hp->standardize ? "" : ", or the features need standardize: true");
    if (m && m->kind == TD_MODEL_GMM && hp->tol > 0 && !m->converged &&
        m->n_iter >= hp->gmm.max_iter)
        warn(out, n, "not_converged",
             "the gmm did not converge in max_iter = %lld "
             "iterations (the last change of the lower bound was above tol = %g); raise "
             "max_iter or tol",
             (long long)hp->gmm.max_iter, hp->tol);
    if (hp->model == TD_MODEL_GMM && hp->gmm.components > 1) {
        int64_t d = distinct_rows(train);
        if (d >= 0 && hp->gmm.components > d)
            warn(out, n, "components_exceed_distinct_rows",
                 "components = %lld but the data "
                 "has only %lld distinct rows: some components describe no data",
                 (long long)hp->gmm.components, (long long)d);
    }
    if ((hp->model == TD_MODEL_SOFTMAX || hp->model == TD_MODEL_MLP) && train->y &&
        train->y_cols == 1 && train->N > 0) {
        int32_t c0 = INT32_MIN;
        int64_t i = 0;
        for (; i < train->N; i++) {
            int32_t c = train->y[i];
            if (c == (int32_t)hp->ignore_index) continue;
            if (c0 == INT32_MIN)
                c0 = c;
            else if (c != c0)
                break;
        }
        if (i == train->N && c0 != INT32_MIN)
            warn(out, n, "single_class",
                 "every training label is class %d: the model can "
                 "only predict it",
                 c0);
    }
    double *sd;
    if (!hp->standardize && train->D > 1 && train->N > 1 &&
        moments(&sd, train->X, train->N, train->D)) {
        /* the largest std against the smallest non-zero one (constant features aside) */
        double lo = INFINITY, hi = 0;
        int64_t jlo = 0, jhi = 0;
        for (int64_t j = 0; j < train->D; j++) {
            double s = sd[train->D + j];
            if (!(s > 0) || !isfinite(s)) continue;
            if (s > hi) hi = s, jhi = j;
            if (s < lo) lo = s, jlo = j;
        }
        if (hi > 0 && hi / lo > TD_SCALE_RATIO_WARN)
            warn(out, n, "features_unscaled",
                 "feature scales differ by %.3g times (std of "
                 "feature %lld: %.4g, of feature %lld: %.4g); pass standardize: true",
                 hi / lo, (long long)jhi, hi, (long long)jlo, lo);
        free(sd);
    }
}
