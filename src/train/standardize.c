/* standardize.c — the `standardize` hyperparameter, and the warnings of a finished run.
 *
 * Standardisation is a trainer around the model family's trainer (trainer_impl.h): it
 * computes each feature's mean and population std over the training dataset's rows (all of
 * them: rows validation_split holds out are counted too, as a scikit-learn Pipeline with a
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

/* ---- the standardizing trainer -------------------------------------------------------- */

typedef struct std_trainer {
    td_trainer base;       /* first: the vtable */
    td_trainer *inner;     /* the family's trainer, on the copies below */
    td_dataset train, val; /* the caller's, with X replaced by the copies */
    float *Xtrain, *Xval;  /* (N, D) owned standardized copies; Xval NULL without val */
    float *stats;          /* (2 * D) owned: mean, then scale */
    int64_t D;
    td_model model; /* the family's model plus mean and scale (borrowed) */
} std_trainer;

#define SELF(b) ((std_trainer *)(b))
#define INNER(b) (SELF(b)->inner)

static void std_destroy(td_trainer *b)
{
    std_trainer *t = SELF(b);
    td_trainer_destroy(t->inner); /* before the copies it reads */
    free(t->Xtrain);
    free(t->Xval);
    free(t->stats);
    free(t);
}

/* The base fields trainer.c reads (train/trainer_impl.h) are the family's, and the model
 * the family's with mean and scale: copied after every call that may change them. */
static void sync(std_trainer *t)
{
    const td_trainer *in = t->inner;
    t->model = *in->model;
    t->model.mean = t->stats;
    t->model.scale = t->stats + t->D;
    t->base.hp = in->hp;
    t->base.model = &t->model;
    t->base.epoch = in->epoch;
    t->base.epochs = in->epochs;
    t->base.rows = in->rows;
    t->base.elapsed = in->elapsed;
    t->base.stopped = in->stopped;
}

static void std_set_threads(td_trainer *b, int n) { td_trainer_set_threads(INNER(b), n); }
static td_status std_step(td_trainer *b, td_record *rec, td_error *err)
{
    td_status st = td_trainer_step(INNER(b), rec, err);
    sync(SELF(b));
    return st;
}
static const char *const *std_columns(const td_trainer *b, int *n)
{
    return td_trainer_columns(INNER(b), n);
}
static td_status std_objective(td_trainer *b, double *loss, float *grad)
{
    return td_trainer_objective(INNER(b), loss, grad);
}

static size_t stats_bytes(const std_trainer *t) { return sizeof(float) * (size_t)(2 * t->D); }

static size_t std_state_size(const td_trainer *b)
{
    return td_trainer_state_size(INNER(b)) + stats_bytes(SELF(b));
}

static size_t std_save(const td_trainer *b, void *buf, size_t cap)
{
    const std_trainer *t = SELF(b);
    size_t n = td_trainer_save(t->inner, buf, cap);
    if (n + stats_bytes(t) > cap) return 0;
    memcpy((char *)buf + n, t->stats, stats_bytes(t));
    return n + stats_bytes(t);
}

static td_status std_restore(td_trainer *b, const void *buf, size_t len, td_error *err)
{
    std_trainer *t = SELF(b);
    if (len < stats_bytes(t) ||
        memcmp((const char *)buf + len - stats_bytes(t), t->stats, stats_bytes(t)) != 0)
        return td_fail(err, TD_EINVAL, "checkpoint",
                       "the checkpoint's standardization "
                       "(mean and scale) differs from the training data's");
    td_status st = td_trainer_restore(t->inner, buf, len - stats_bytes(t), err);
    sync(t);
    return st;
}

static const td_trainer_vtbl std_vt = {
    .destroy = std_destroy,
    .set_threads = std_set_threads,
    .step = std_step,
    .columns = std_columns,
    .state_size = std_state_size,
    .save = std_save,
    .restore = std_restore,
    .objective = std_objective,
};

td_status td_std_trainer_create(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                                const td_dataset *val, td_checked_create create, td_error *err)
{
    *out = NULL;
    if (train->N < 1 || train->D < 1)
        return create(out, hp, train, val, err); /* the family names the problem */
    std_trainer *t = calloc(1, sizeof *t);
    if (!t) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    t->base.vt = &std_vt;
    t->D = train->D;
    t->train = *train;
    t->stats = malloc(stats_bytes(t));
    t->Xtrain = malloc(sizeof(float) * (size_t)(train->N * train->D));
    if (val && val->N > 0 && val->D == train->D) {
        t->val = *val;
        t->Xval = malloc(sizeof(float) * (size_t)(val->N * val->D));
    }
    if (!t->stats || !t->Xtrain || (val && val->N > 0 && val->D == train->D && !t->Xval)) {
        std_destroy(&t->base);
        return td_fail(err, TD_ENOMEM, NULL,
                       "out of memory for the standardized copy of "
                       "the data (%lld x %lld)",
                       (long long)train->N, (long long)train->D);
    }
    float *mean = t->stats, *scale = t->stats + t->D;
    td_status st = td_standardize_fit(mean, scale, train->X, train->N, train->D, err);
    if (st) {
        std_destroy(&t->base);
        return st;
    }
    td_standardize_apply(t->Xtrain, train->X, train->N, train->D, mean, scale);
    t->train.X = t->Xtrain;
    if (t->Xval) {
        td_standardize_apply(t->Xval, val->X, val->N, val->D, mean, scale);
        t->val.X = t->Xval;
    }
    st = create(&t->inner, hp, &t->train, val ? (t->Xval ? &t->val : val) : NULL, err);
    if (st) {
        std_destroy(&t->base);
        return st;
    }
    sync(t);
    *out = &t->base;
    return TD_OK;
}

size_t td_std_trainer_bytes(const td_dataset *train, const td_dataset *val)
{
    size_t b = sizeof(float) * (size_t)(train->N * train->D) /* the training copy */
        + sizeof(double) * (size_t)(2 * train->D)            /* td_standardize_fit's sums */
        + 2 * sizeof(float) * (size_t)(2 * train->D);        /* stats, in the snapshot too */
    if (val) b += sizeof(float) * (size_t)(val->N * val->D);
    return b + sizeof(std_trainer);
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
