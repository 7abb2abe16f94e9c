/* grad_trainer.c — the epoch loop shared by the gradient-trained models (SPEC §3–4).
 *
 * One epoch: (optionally) reshuffle the training rows with the trainer's RNG, then for
 * each mini-batch (or the full batch) evaluate the data loss and its gradient, add the
 * regulariser's, and take one optimizer step. After the epoch: validation loss and
 * accuracy, early stopping, divergence check. Everything that decides the next epoch
 * (parameters, optimizer moments and step, RNG state, epoch, early-stopping state,
 * elapsed time) is in td_trainer_save's snapshot, so a restored run continues exactly.
 *
 * The model-specific part is the objective: for softmax, td_linear_eval's fused pass; for
 * mlp, td_mlp_eval (layer by layer with sgemm, mlp.c). */
#include "traind/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math/isa.h"
#include "math/pool.h"
#include "math/rng.h"
#include "train/linear.h"
#include "train/mlp.h"
#include "train/optim.h"
#include "train/trainer_impl.h"

enum {
    C_EPOCH,
    C_ELAPSED,
    C_LOSS,
    C_DATA,
    C_REG,
    C_VAL_LOSS,
    C_VAL_ACC,
    C_GNORM,
    C_ACC,
    C_PENALTY,
    C_VIOLATION,
    C_COUNT
};
static const char *const columns[] = {"epoch",    "elapsed_s", "loss",           "data_loss",
                                      "reg_loss", "val_loss",  "val_accuracy",   "grad_norm",
                                      "accuracy", "penalty",   "violation_rate", NULL};

typedef struct grad_trainer {
    td_trainer base; /* first: the kind and the base fields */
    td_hparams hp;   /* owned copy */
    td_model model;  /* shape + params (owned) */
    td_tensor_desc layout[TD_MAX_TENSORS];
    int ntensors;
    int64_t n_penalized; /* weights under l1/l2 (for l2_scale "mean") */
    const td_dataset *train;
    const td_dataset *val_src;    /* rows of val_rows index this set (train or val) */
    int64_t *train_rows, n_train; /* sorted; NULL = all rows of train in order */
    int64_t *val_rows, n_val;
    int64_t *perm;              /* (n_train) this epoch's order */
    int64_t batch;              /* rows per mini-batch */
    td_targets tg_full, tg_val; /* targets of the full training set / validation set */
    int32_t *by;                /* (batch, G) gathered targets, or NULL */
    float *bY;                  /* (batch, K) gathered probabilities, or NULL */
    void *owned[4];             /* gathered full/val target arrays */
    td_optim opt;
    td_rng rng;
    double best;
    int64_t no_improve;
    td_linear *lin; /* softmax */
    td_mlp *mlp;    /* mlp */
} grad_trainer;

/* ---- helpers ------------------------------------------------------------------------ */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t td_split_count(double validation_split, int64_t N)
{
    return (int64_t)floor(validation_split * (double)N);
}

int64_t *td_split_order(int64_t N, int64_t seed)
{
    int64_t *all = malloc(sizeof(int64_t) * (size_t)(N > 0 ? N : 1));
    if (!all) return NULL;
    for (int64_t i = 0; i < N; i++)
        all[i] = i;
    td_rng split_rng;
    td_rng_seed(&split_rng, (uint64_t)seed, 1);
    td_rng_shuffle(&split_rng, all, N);
    return all;
}

/* tg->Y (ds->Y) or tg->y (ds->y), the other NULL: ds's targets of rows[0..n) in row order,
 * copied into buf (n rows of K floats or G labels). */
static void targets_of_rows(td_targets *tg, const td_dataset *ds, const int64_t *rows, int64_t n,
                            void *buf, int64_t G, int64_t K)
{
    size_t row = ds->Y ? sizeof(float) * (size_t)K : sizeof(int32_t) * (size_t)G;
    const char *src = ds->Y ? (const char *)ds->Y : (const char *)ds->y;
    for (int64_t i = 0; i < n; i++)
        memcpy((char *)buf + (size_t)i * row, src + (size_t)rows[i] * row, row);
    tg->Y = ds->Y ? buf : NULL;
    tg->y = ds->Y ? NULL : buf;
}

/* Targets of ds's rows (n) gathered in row order into a new array kept in t->owned. */
static td_status gather_targets(grad_trainer *t, td_targets *tg, const td_dataset *ds,
                                const int64_t *rows, int64_t n, int slot)
{
    *tg = t->tg_full;
    int64_t G = t->hp.groups, K = t->model.K;
    if (!rows) {
        tg->y = ds->y;
        tg->Y = ds->Y;
        return TD_OK;
    }
    size_t row = ds->Y ? sizeof(float) * (size_t)K : sizeof(int32_t) * (size_t)G;
    void *buf = malloc(row * (size_t)n + 1); /* + 1: never malloc(0) */
    if (!buf) return TD_ENOMEM;
    t->owned[slot] = buf;
    targets_of_rows(tg, ds, rows, n, buf, G, K);
    return TD_OK;
}

/* Data loss and gradient (grad may be NULL) of params over rows (n) of ds. */
static void objective(grad_trainer *t, td_batch_stats *st, float *grad, const float *params,
                      const td_dataset *ds, const int64_t *rows, int64_t n, const td_targets *tg)
{
    if (t->mlp) {
        td_mlp_eval(t->mlp, t->base.pool, st, grad, params, ds->X, rows, n, tg);
        return;
    }
    const td_tensor_desc *W = &t->layout[0];
    const float *b = t->ntensors > 1 ? params + t->layout[1].offset : NULL;
    float *dW = grad ? grad + W->offset : NULL;
    float *db = grad && t->ntensors > 1 ? grad + t->layout[1].offset : NULL;
    td_linear_eval(t->lin, t->base.pool, st, dW, db, params + W->offset, b, ds->X, rows, n, tg);
}

/* Adds the l1/l2 gradient to grad (when non-NULL) and returns the penalty (SPEC §3). */
static double regularize(const grad_trainer *t, const float *params, float *grad)
{
    return td_regularize(&t->hp, t->layout, t->ntensors, t->n_penalized, params, grad);
}

TD_CLONES
static double norm2(const float *g, int64_t n)
{
    /* eight interleaved partial sums, added in a fixed order: vectorised, reproducible */
    double s[8] = {0}, tot = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += (double)g[i + j] * g[i + j];
    for (; i < n; i++)
        tot += (double)g[i] * g[i];
    for (int j = 0; j < 8; j++)
        tot += s[j];
    return sqrt(tot);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static td_status grad_check(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                            int64_t *Kout, td_error *err)
{
    td_status st;
    int64_t K;
    if ((st = td_hparams_check(hp, train, &K, err))) return st;
    if (hp->model != TD_MODEL_SOFTMAX && hp->model != TD_MODEL_MLP)
        return td_fail(err, TD_EINTERNAL, "model", "model \"%s\" is not a gradient-trained one",
                       td_model_names[hp->model]);
    if (val) {
        int64_t Kv;
        if (val->D != train->D)
            return td_fail(err, TD_EINVAL, "validation",
                           "the validation set has %lld features, the training set %lld",
                           (long long)val->D, (long long)train->D);
        if ((st = td_hparams_check(hp, val, &Kv, err)))
            return td_fail(err, st, "validation", "validation set: %s", err ? err->message : "");
        if (!!val->Y != !!train->Y || (val->Y && val->Y_cols != K) || Kv > K)
            return td_fail(err, TD_EINVAL, "validation",
                           "the validation set's targets do not match the training set's");
    }
    td_model m;
    td_model_shape(&m, hp, train->D, K);
    if (hp->initial_weights && hp->n_initial_weights != m.n_params)
        return td_fail(err, TD_EINVAL, "initial_weights",
                       "initial_weights has %lld values, the model has %lld parameters",
                       (long long)hp->n_initial_weights, (long long)m.n_params);
    *Kout = K;
    return TD_OK;
}

static size_t grad_bytes(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                         int64_t K, int threads)
{
    td_model m;
    td_model_shape(&m, hp, train->D, K);
    const size_t P = (size_t)m.n_params, G = (size_t)hp->groups;
    td_optim probe = {.kind = hp->optimizer, .momentum = hp->momentum};
    size_t nbuf = (size_t)td_optim_nbuffers(&probe);
    int64_t N = train->N, n_val = val ? val->N : 0, n_train = N;
    size_t b = sizeof(grad_trainer) + sizeof(float) * P * (3 + nbuf); /* params, grad, prev */
    b += sizeof(float) * (size_t)(hp->n_initial_weights + hp->n_class_weights);
    size_t per_row = train->Y ? sizeof(float) * (size_t)K : sizeof(int32_t) * G;
    if (hp->validation_split > 0 && !val) { /* row lists and gathered targets */
        n_val = td_split_count(hp->validation_split, N);
        n_train = N - n_val;
        b += sizeof(int64_t) * (size_t)(N + n_val) + per_row * (size_t)N;
    }
    int64_t batch = hp->batch_size > 0 && hp->batch_size < n_train ? hp->batch_size : 0;
    if (batch) b += sizeof(int64_t) * (size_t)n_train + per_row * (size_t)batch;
    int64_t max_rows = n_train > n_val ? n_train : n_val;
    if (hp->model == TD_MODEL_MLP)
        b += td_mlp_bytes(&m, 1, threads);
    else
        b += td_linear_bytes(train->D, K, 1, max_rows, threads);
    return b + sizeof(float) * P * (1 + nbuf) + 256; /* one td_trainer_save snapshot */
}

static td_status grad_create(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                             const td_dataset *val, int64_t K, td_error *err)
{
    td_status st;
    grad_trainer *t = TD_TRAINER_NEW(grad_trainer, &td_grad_trainer, hp, hp->epochs);
    if (!t) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    st = TD_ENOMEM;
    t->train = train;
    td_model_shape(&t->model, hp, train->D, K);
    t->ntensors = td_model_layout(&t->model, t->layout);
    t->n_penalized = td_penalized_count(hp, t->layout, t->ntensors);
    int64_t P = t->model.n_params;
    if (!(t->model.params = calloc((size_t)P, sizeof(float)))) goto fail;
    if (hp->initial_weights)
        memcpy(t->model.params, hp->initial_weights, sizeof(float) * (size_t)P);
    else if (hp->model == TD_MODEL_MLP)
        td_mlp_init(t->model.params, &t->model, (uint64_t)hp->seed);
    if (td_optim_init(&t->opt, hp, P)) goto fail;

    /* Targets and the validation split: the last fraction after a seeded shuffle. */
    t->tg_full.G = hp->groups;
    t->tg_full.ce = td_ce_opts_default();
    t->tg_full.ce.ignore_index = (int32_t)hp->ignore_index;
    t->tg_full.ce.class_weights = hp->class_weights;
    t->tg_full.ce.label_smoothing = hp->label_smoothing;
    t->tg_full.monotone_weight = hp->monotone_weight;
    t->tg_full.monotone_margin = hp->monotone_margin;
    t->n_train = train->N;
    t->val_src = val;
    t->n_val = val ? val->N : 0;
    if (hp->validation_split > 0 && !val) {
        int64_t N = train->N, nv = td_split_count(hp->validation_split, N);
        int64_t *all = td_split_order(N, hp->seed);
        if (!all) goto fail;
        t->n_train = N - nv;
        t->n_val = nv;
        t->train_rows = all;
        if (!(t->val_rows = malloc(sizeof(int64_t) * (size_t)nv))) goto fail;
        memcpy(t->val_rows, all + t->n_train, sizeof(int64_t) * (size_t)nv);
        qsort(t->train_rows, (size_t)t->n_train, sizeof(int64_t), cmp_i64);
        t->val_src = train;
    }
    td_targets full = t->tg_full;
    if (gather_targets(t, &full, train, t->train_rows, t->n_train, 0)) goto fail;
    t->tg_full = full;
    if (t->val_src && gather_targets(t, &t->tg_val, t->val_src, t->val_rows, t->n_val, 1))
        goto fail;
    t->base.rows = t->n_train;
    t->base.cols = columns;
    t->base.ncols = hp->groups > 1 ? C_COUNT : C_PENALTY;
    t->batch = hp->batch_size > 0 && hp->batch_size < t->n_train ? hp->batch_size : 0;
    if (t->batch) {
        if (!(t->perm = malloc(sizeof(int64_t) * (size_t)t->n_train))) goto fail;
        if (train->Y ? !(t->bY = malloc(sizeof(float) * (size_t)(t->batch * K)))
                     : !(t->by = malloc(sizeof(int32_t) * (size_t)(t->batch * hp->groups))))
            goto fail;
    }
    td_rng_seed(&t->rng, (uint64_t)hp->seed, 2);
    t->best = INFINITY;
    if (hp->model == TD_MODEL_MLP
            ? !(t->mlp = td_mlp_create(&t->model, 1))
            : !(t->lin = td_linear_create(train->D, K, 1,
                                          t->n_train > t->n_val ? t->n_train : t->n_val)))
        goto fail;
    *out = &t->base;
    return TD_OK;
fail:
    t->base.kind->destroy(&t->base);
    if (st == TD_ENOMEM) td_fail(err, st, NULL, "out of memory while preparing the trainer");
    return st;
}

static void grad_destroy(td_trainer *base)
{
    grad_trainer *t = (grad_trainer *)base;
    td_linear_destroy(t->lin);
    td_mlp_destroy(t->mlp);
    td_optim_fini(&t->opt);
    for (size_t i = 0; i < sizeof t->owned / sizeof t->owned[0]; i++)
        free(t->owned[i]);
    free(t->train_rows);
    free(t->val_rows);
    free(t->perm);
    free(t->by);
    free(t->bY);
    td_trainer_free(&t->base);
}

static void grad_set_threads(td_trainer *base, int n)
{
    grad_trainer *t = (grad_trainer *)base;
    /* best effort: without the slots, the linear kernel runs narrower waves */
    if (t->lin) td_linear_reserve(t->lin, t->n_train > t->n_val ? t->n_train : t->n_val, n);
    if (t->mlp) td_mlp_reserve(t->mlp, n);
}

/* ---- one epoch ---------------------------------------------------------------------- */

typedef struct epoch_sums {
    double data, reg, gnorm, ce, penalty;
    int64_t batches, defined, violations, correct, counted, rows;
} epoch_sums;

/* What became non-finite first in an epoch (NULL: nothing). */
static const char *const BAD_LOSS = "loss", *const BAD_GRAD = "gradient",
                         *const BAD_WEIGHTS = "weights";

/* One optimizer step on rows (n) with targets tg; accumulates into s. Returns NULL, or
 * BAD_LOSS / BAD_GRAD when the loss or its gradient was not finite (no step taken). */
static const char *train_batch(grad_trainer *t, epoch_sums *s, const int64_t *rows, int64_t n,
                               const td_targets *tg)
{
    td_batch_stats bs;
    float *params = t->model.params;
    objective(t, &bs, t->opt.grad, params, t->train, rows, n, tg);
    double reg = regularize(t, params, t->opt.grad);
    if (!isfinite(bs.loss) || !isfinite(reg)) return BAD_LOSS;
    double gnorm = norm2(t->opt.grad, t->model.n_params); /* inf or NaN: some entry is */
    if (!isfinite(gnorm)) return BAD_GRAD;
    s->batches++;
    s->reg += reg;
    s->gnorm += gnorm;
    if (bs.defined) {
        s->defined++;
        s->data += bs.loss;
        s->ce += bs.cross_entropy;
    }
    s->penalty += bs.penalty * (double)n;
    s->violations += bs.violations;
    s->correct += bs.correct;
    s->counted += bs.counted;
    s->rows += n;
    td_optim_step_pool(&t->opt, t->base.pool, params, t->opt.grad);
    return NULL;
}

/* *bad: NULL, or what became non-finite (the epoch stops at that batch). */
static void run_epoch(grad_trainer *t, epoch_sums *s, const char **bad)
{
    *bad = NULL;
    if (!t->batch) {
        *bad = train_batch(t, s, t->train_rows, t->n_train, &t->tg_full);
        return;
    }
    for (int64_t i = 0; i < t->n_train; i++)
        t->perm[i] = t->train_rows ? t->train_rows[i] : i;
    if (t->hp.shuffle) td_rng_shuffle(&t->rng, t->perm, t->n_train);
    const td_dataset *ds = t->train;
    int64_t G = t->hp.groups, K = t->model.K;
    for (int64_t lo = 0; lo < t->n_train && !*bad; lo += t->batch) {
        int64_t n = t->n_train - lo < t->batch ? t->n_train - lo : t->batch;
        const int64_t *rows = t->perm + lo;
        td_targets tg = t->tg_full;
        targets_of_rows(&tg, ds, rows, n, ds->Y ? (void *)t->bY : (void *)t->by, G, K);
        *bad = train_batch(t, s, rows, n, &tg);
    }
}

static td_status grad_step(td_trainer *base, td_record *rec, td_error *err)
{
    grad_trainer *t = (grad_trainer *)base;
    double t0 = td_mono_s();
    int64_t P = t->model.n_params;
    for (int i = 0; i < TD_REC_MAX; i++)
        rec->v[i] = NAN;
    td_optim_keep(&t->opt, t->model.params);

    epoch_sums s = {0};
    const char *bad;
    run_epoch(t, &s, &bad);
    double data = s.defined ? s.data / (double)s.defined : NAN;
    double reg = s.batches ? s.reg / (double)s.batches : 0;
    if (!bad && !td_all_finite(t->model.params, P)) bad = BAD_WEIGHTS;
    if (!bad && s.defined && !isfinite(data + reg)) bad = BAD_LOSS;
    if (bad) {
        td_optim_rollback(&t->opt, t->model.params);
        return td_fail(err, TD_EDIVERGED, "lr",
                       "training diverged at epoch %lld (the %s became non-finite); "
                       "the weights of epoch %lld are kept; try a smaller lr (now %g) or "
                       "scale the features",
                       (long long)(t->base.epoch + 1), bad, (long long)t->base.epoch, t->hp.lr);
    }
    t->base.epoch++;

    rec->v[C_DATA] = data;
    rec->v[C_REG] = reg;
    rec->v[C_LOSS] = s.defined ? data + reg : NAN;
    rec->v[C_GNORM] = s.batches ? s.gnorm / (double)s.batches : NAN;
    rec->v[C_ACC] = s.counted ? (double)s.correct / (double)s.counted : NAN;
    if (t->hp.groups > 1) {
        rec->v[C_PENALTY] = s.rows ? s.penalty / (double)s.rows : NAN;
        rec->v[C_VIOLATION] = s.rows ? (double)s.violations / (double)s.rows : NAN;
    }
    double monitor = rec->v[C_LOSS];
    if (t->val_src && t->n_val > 0) {
        td_batch_stats vs;
        objective(t, &vs, NULL, t->model.params, t->val_src, t->val_rows, t->n_val, &t->tg_val);
        rec->v[C_VAL_LOSS] = vs.defined ? vs.loss : NAN;
        rec->v[C_VAL_ACC] = vs.counted ? (double)vs.correct / (double)vs.counted : NAN;
        monitor = rec->v[C_VAL_LOSS];
    }
    /* Early stopping as scikit-learn: no improvement by more than tol for
     * n_iter_no_change consecutive epochs. */
    if (t->hp.n_iter_no_change > 0 && isfinite(monitor)) {
        if (monitor > t->best - t->hp.tol)
            t->no_improve++;
        else
            t->no_improve = 0;
        if (monitor < t->best) t->best = monitor;
        if (t->no_improve >= t->hp.n_iter_no_change) t->base.stopped = 1;
    }
    t->base.elapsed += td_mono_s() - t0;
    rec->v[C_EPOCH] = (double)t->base.epoch;
    rec->v[C_ELAPSED] = t->base.elapsed;
    return TD_OK;
}

/* ---- snapshots ---------------------------------------------------------------------- */

typedef struct state_header {
    char magic[8]; /* "TDSTATE1" */
    int64_t model, n_params, D, K, epoch, opt_step, no_improve, stopped, nbuf;
    double best, elapsed;
    uint64_t rng[4];
} state_header;

static size_t grad_state_size(const td_trainer *base)
{
    const grad_trainer *t = (const grad_trainer *)base;
    return sizeof(state_header) +
        sizeof(float) * (size_t)(t->model.n_params * (1 + td_optim_nbuffers(&t->opt)));
}

static void grad_save(const td_trainer *base, void *buf)
{
    const grad_trainer *t = (const grad_trainer *)base;
    state_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, "TDSTATE1", 8);
    h.model = t->model.kind;
    h.n_params = t->model.n_params;
    h.D = t->model.D;
    h.K = t->model.K;
    h.epoch = t->base.epoch;
    h.opt_step = t->opt.step;
    h.no_improve = t->no_improve;
    h.stopped = t->base.stopped;
    h.nbuf = td_optim_nbuffers(&t->opt);
    h.best = t->best;
    h.elapsed = t->base.elapsed;
    memcpy(h.rng, t->rng.s, sizeof h.rng);
    char *p = buf;
    size_t n = sizeof(float) * (size_t)t->model.n_params;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    memcpy(p, t->model.params, n);
    p += n;
    td_optim_save(&t->opt, p);
}

static td_status grad_restore(td_trainer *base, const void *buf, size_t len, td_error *err)
{
    grad_trainer *t = (grad_trainer *)base;
    state_header h;
    td_status st =
        td_state_header(&h, sizeof h, buf, len, "TDSTATE1", "not a training-state snapshot", err);
    if (st) return st;
    if (h.model != t->model.kind || h.n_params != t->model.n_params || h.D != t->model.D ||
        h.K != t->model.K || h.nbuf != td_optim_nbuffers(&t->opt) || len != grad_state_size(base))
        return td_fail(err, TD_EINVAL, "checkpoint",
                       "the snapshot does not match this model and optimizer");
    const char *p = (const char *)buf + sizeof h;
    size_t n = sizeof(float) * (size_t)t->model.n_params;
    memcpy(t->model.params, p, n);
    p += n;
    td_optim_load(&t->opt, p);
    t->base.epoch = h.epoch;
    t->opt.step = h.opt_step;
    t->no_improve = h.no_improve;
    t->base.stopped = (int)h.stopped;
    t->best = h.best;
    t->base.elapsed = h.elapsed;
    memcpy(t->rng.s, h.rng, sizeof h.rng);
    return TD_OK;
}

static td_status grad_objective(td_trainer *base, double *loss, float *grad)
{
    grad_trainer *t = (grad_trainer *)base;
    td_batch_stats bs;
    objective(t, &bs, grad, t->model.params, t->train, t->train_rows, t->n_train, &t->tg_full);
    *loss = bs.loss + regularize(t, t->model.params, grad);
    return TD_OK;
}

const td_trainer_kind td_grad_trainer = {
    .check = grad_check,
    .bytes = grad_bytes,
    .create = grad_create,
    .destroy = grad_destroy,
    .set_threads = grad_set_threads,
    .step = grad_step,
    .state_size = grad_state_size,
    .save = grad_save,
    .restore = grad_restore,
    .objective = grad_objective,
};
