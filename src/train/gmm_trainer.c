/* gmm_trainer.c — the gmm model's td_trainer: one step = one EM iteration (SPEC §5).
 *
 * A step is the body of scikit-learn's GaussianMixture fit loop:
 *   lower_bound = E-step mean log-likelihood under the current parameters;
 *   M-step; change = lower_bound - previous lower_bound (+inf on the first iteration);
 *   converged when |change| < tol; the run is done when converged or after max_iter.
 * So progress, events, checkpoints and exact resume work as for every other job, with
 * epoch = iteration and epochs = max_iter.
 *
 * Initialisation (td_gmm_initialize) runs at the start of the first step, not in create:
 * the HTTP side builds a trainer to validate a job, and that must not cost a k-means.
 * n_init: the best of n_init k-means++ / Lloyd partitions by inertia seeds one EM run
 * (as SPEC §5 says for embed_gmm). scikit-learn instead runs n_init complete EM fits and
 * keeps the best lower bound; with one EM iteration per step and max_iter planned steps,
 * restarts of the whole fit do not fit the job model, so the choice is made by inertia.
 *
 * Empty components (N_k < TD_GMM_EMPTY after an M-step) are re-seeded: the first at the
 * row with the lowest log-likelihood in that iteration's E-step, any others at rows drawn
 * with the trainer's RNG; covariance of the whole data set + reg_covar, weight 1/N. The
 * record's "reseeded" column counts them; an iteration that re-seeds may lower the
 * likelihood (every other iteration never does).
 *
 * Snapshot: header (iteration, converged, previous lower bound, elapsed, RNG state) and the
 * double parameters, so a restored run continues bit-identically. */
#include "traind/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math/pool.h"
#include "math/rng.h"
#include "train/gmm.h"
#include "train/trainer_impl.h"

enum { C_EPOCH, C_ELAPSED, C_LOSS, C_LB, C_CHANGE, C_CONVERGED, C_RESEEDED, C_MIN_SIZE,
       C_MAX_SIZE, C_SIZES };
_Static_assert(C_MAX_SIZE == C_MIN_SIZE + 1 && C_SIZES == C_MIN_SIZE + 2,
               "td_size_record's column order");
static const char *const fixed_columns[] = {"epoch", "elapsed_s", "loss", "lower_bound",
                                            "change", "converged", "reseeded", "min_size",
                                            "max_size"};

typedef struct gmm_trainer {
    td_trainer base;               /* first: the vtable */
    td_hparams hp;                 /* owned copy */
    td_model model;                /* float copy of the parameters + gmm fields */
    const td_dataset *train;
    td_gmm g, prev;                /* current parameters; before this step's M-step */
    td_gmm_work *w;                /* made on the first step */
    int ready;                     /* w holds g's precision factors */
    td_pool *pool;
    td_rng rng;
    int initialized, converged;
    double lower_bound;            /* last iteration's; -inf before the first */
    double *nk;                    /* (M) */
    unsigned char *empty;          /* (M) */
    int ncols;
    char size_names[TD_REC_MAX][32];
    const char *cols[TD_REC_MAX + 1];
} gmm_trainer;

static const td_trainer_vtbl gmm_vtbl;

/* The model's float parameters and fit fields from t->g. */
static void sync_model(gmm_trainer *t)
{
    td_gmm_to_params(t->model.params, &t->g);
    t->model.lower_bound = t->base.epoch ? t->lower_bound : NAN;
    t->model.converged = t->converged;
    t->base.stopped = t->converged;
    t->model.n_iter = t->base.epoch;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

td_status td_gmm_trainer_check(const td_hparams *hp, const td_dataset *train,
                               const td_dataset *val, int64_t *K, td_error *err)
{
    td_status st;
    if ((st = td_hparams_check(hp, train, K, err)))
        return st;
    if (val)
        return td_fail(err, TD_EINVAL, "validation", "a gmm job takes no validation set");
    return TD_OK;
}

size_t td_gmm_trainer_bytes(const td_hparams *hp, const td_dataset *train, int64_t K,
                            int threads)
{
    int64_t M = K, E = train->D, N = train->N;
    size_t gmm = sizeof(double) * (size_t)(M + M * E + M * td_gmm_cov_size(hp->covariance, E));
    td_model m;
    td_model_shape(&m, hp, E, K);
    return sizeof(gmm_trainer) + sizeof(float) * (size_t)m.n_params + 2 * gmm +
           sizeof(double) * (size_t)(M + E) + (size_t)M +
           sizeof(float) * (size_t)(hp->weights_init.n + hp->means_init.n +
                                    hp->covariances_init.n) +
           td_gmm_work_bytes(N, E, M, hp->covariance) +
           1024 * (size_t)(threads > 1 ? threads : 1) +  /* the pool */
           512 + gmm; /* one td_trainer_save snapshot: header and mixture */
}

td_status td_gmm_trainer_create(td_trainer **out, const td_hparams *hp,
                                const td_dataset *train, const td_dataset *val, td_error *err)
{
    td_status st;
    int64_t K;
    *out = NULL;
    if ((st = td_gmm_trainer_check(hp, train, val, &K, err)))
        return st;
    gmm_trainer *t = TD_TRAINER_NEW(gmm_trainer, &gmm_vtbl, hp, hp->max_iter);
    if (!t)
        return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    t->base.rows = train->N;
    t->train = train;
    td_model_shape(&t->model, hp, train->D, K);
    int64_t M = K, E = train->D;
    if (!(t->model.params = calloc((size_t)t->model.n_params, sizeof(float))) ||
        td_gmm_alloc(&t->g, M, E, hp->covariance) ||
        td_gmm_alloc(&t->prev, M, E, hp->covariance) ||
        !(t->nk = calloc((size_t)M, sizeof(double))) || !(t->empty = calloc((size_t)M, 1)))
        goto nomem;
    /* placeholder until the first step initialises: uniform weights, zero means, unit
     * covariances */
    int64_t CS = td_gmm_cov_size(hp->covariance, E);
    for (int64_t k = 0; k < M; k++) {
        t->g.weights[k] = 1.0 / (double)M;
        for (int64_t j = 0; j < E; j++) {
            if (hp->covariance == TD_COV_FULL)
                t->g.covs[k * CS + j * E + j] = 1;
            else if (hp->covariance == TD_COV_DIAG)
                t->g.covs[k * CS + j] = 1;
        }
        if (hp->covariance == TD_COV_SPHERICAL)
            t->g.covs[k] = 1;
    }
    t->lower_bound = -INFINITY;
    sync_model(t);
    td_rng_seed(&t->rng, (uint64_t)hp->seed, 3);

    t->ncols = td_size_columns(t->cols, t->size_names, fixed_columns,
                               (int)(sizeof fixed_columns / sizeof fixed_columns[0]), M);
    *out = &t->base;
    return TD_OK;
nomem:
    t->base.vt->destroy(&t->base);
    return td_fail(err, TD_ENOMEM, NULL, "out of memory while preparing the trainer");
}

static void gmm_destroy(td_trainer *base)
{
    gmm_trainer *t = (gmm_trainer *)base;
    if (!t)
        return;
    td_gmm_work_destroy(t->w);
    td_pool_destroy(t->pool);
    td_gmm_free(&t->g);
    td_gmm_free(&t->prev);
    free(t->nk);
    free(t->empty);
    td_model_fini(&t->model);
    td_hparams_fini(&t->hp);
    free(t);
}

static void gmm_set_threads(td_trainer *base, int n)
{
    td_pool_resize(&((gmm_trainer *)base)->pool, n);
}

#define SELF(b) ((const gmm_trainer *)(b))
static const char *const *gmm_columns(const td_trainer *b, int *n)
{
    *n = SELF(b)->ncols;
    return SELF(b)->cols;
}

/* ---- one EM iteration --------------------------------------------------------------- */

static td_status gmm_step(td_trainer *base, td_record *rec, td_error *err)
{
    gmm_trainer *t = (gmm_trainer *)base;
    double t0 = td_now_s();
    const td_dataset *ds = t->train;
    int64_t M = t->g.M, E = t->g.E, N = ds->N;
    td_status st;
    for (int i = 0; i < TD_REC_MAX; i++)
        rec->v[i] = NAN;
    if (!t->w) {
        t->w = td_gmm_work_create(ds->X, N, E, M, t->hp.covariance, NULL);
        if (!t->w)
            return td_fail(err, TD_ENOMEM, NULL, "out of memory for the EM workspace "
                           "(%lld rows, %lld components)", (long long)N, (long long)M);
        t->ready = 0;
    }
    if (!t->initialized) {
        if ((st = td_gmm_initialize(&t->g, t->w, t->pool, &t->hp, &t->rng, err)))
            return st;
        t->initialized = 1;
        t->ready = 0;
        if (td_gmm_finite(&t->g))
            sync_model(t);
    }
    if (!t->ready && (st = td_gmm_prepare(t->w, &t->g, err)))
        return st; /* only an initial covariance can fail here (reg_covar 0) */
    t->ready = 1;

    double ll;
    int64_t worst;
    if ((st = td_gmm_estep(t->w, t->pool, &ll, &worst, err)))
        return st;
    if (!isfinite(ll))
        return td_fail(err, TD_EDIVERGED, "dataset.X",
                       "the log-likelihood is not finite at iteration %lld (some rows have "
                       "zero density: are the features' magnitudes within float32 range?); "
                       "the parameters of iteration %lld are kept",
                       (long long)(t->base.epoch + 1), (long long)t->base.epoch);
    td_gmm_copy(&t->prev, &t->g);
    int64_t n_empty = 0;
    if ((st = td_gmm_mstep(t->w, t->pool, &t->g, t->hp.reg_covar, t->nk, t->empty, &n_empty,
                           err)))
        goto restore;
    double *row = malloc(sizeof(double) * (size_t)E);
    if (!row) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
        goto restore;
    }
    int first = 1;
    for (int64_t k = 0; k < M && !st; k++) {
        if (!t->empty[k])
            continue;
        int64_t i = first ? worst : (int64_t)td_rng_below(&t->rng, (uint64_t)N);
        first = 0;
        for (int64_t j = 0; j < E; j++)
            row[j] = ds->X[i * E + j];
        if (td_gmm_reseed(t->w, &t->g, k, row, t->hp.reg_covar))
            st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    }
    free(row);
    if (st)
        goto restore;
    if (!td_gmm_finite(&t->g)) {
        st = td_fail(err, TD_EDIVERGED, "hyperparameters.reg_covar", "the M-step of iteration %lld gave "
                     "non-finite parameters; the parameters of iteration %lld are kept",
                     (long long)(t->base.epoch + 1), (long long)t->base.epoch);
        goto restore;
    }
    if ((st = td_gmm_prepare(t->w, &t->g, err))) {
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err ? err->message : "");
        st = td_fail(err, st, "hyperparameters.reg_covar", "iteration %lld: %s (reg_covar is "
                     "%g); the parameters of iteration %lld are kept",
                     (long long)(t->base.epoch + 1), msg, t->hp.reg_covar,
                     (long long)t->base.epoch);
        goto restore;
    }
    t->base.epoch++;
    double change = ll - t->lower_bound;
    t->lower_bound = ll;
    t->converged = fabs(change) < t->hp.tol;
    sync_model(t);
    t->base.elapsed += td_now_s() - t0;

    rec->v[C_EPOCH] = (double)t->base.epoch;
    rec->v[C_ELAPSED] = t->base.elapsed;
    rec->v[C_LOSS] = -ll;
    rec->v[C_LB] = ll;
    rec->v[C_CHANGE] = t->base.epoch > 1 ? change : NAN;
    rec->v[C_CONVERGED] = t->converged;
    rec->v[C_RESEEDED] = (double)n_empty;
    td_size_record(rec, C_MIN_SIZE, t->nk, M, t->ncols);
    return TD_OK;
restore:
    td_gmm_copy(&t->g, &t->prev);
    t->ready = 0;
    return st;
}

/* ---- snapshots ---------------------------------------------------------------------- */

typedef struct gmm_state {
    char magic[8];                 /* "TDGMMST1" */
    int64_t M, E, cov, n_iter, initialized, converged;
    double lower_bound, elapsed;
    uint64_t rng[4];
} gmm_state;

static size_t param_bytes(const gmm_trainer *t)
{
    int64_t M = t->g.M, E = t->g.E;
    return sizeof(double) * (size_t)(M + M * E + M * td_gmm_cov_size(t->g.cov, E));
}

static size_t gmm_state_size(const td_trainer *base)
{
    return sizeof(gmm_state) + param_bytes(SELF(base));
}

static size_t gmm_save(const td_trainer *base, void *buf, size_t cap)
{
    const gmm_trainer *t = SELF(base);
    size_t need = gmm_state_size(base);
    if (cap < need)
        return 0;
    gmm_state h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, "TDGMMST1", 8);
    h.M = t->g.M, h.E = t->g.E, h.cov = t->g.cov;
    h.n_iter = t->base.epoch, h.initialized = t->initialized, h.converged = t->converged;
    h.lower_bound = t->lower_bound, h.elapsed = t->base.elapsed;
    memcpy(h.rng, t->rng.s, sizeof h.rng);
    char *p = buf;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    int64_t M = t->g.M, E = t->g.E;
    size_t nw = sizeof(double) * (size_t)M, nm = nw * (size_t)E;
    memcpy(p, t->g.weights, nw);
    memcpy(p + nw, t->g.means, nm);
    memcpy(p + nw + nm, t->g.covs, param_bytes(t) - nw - nm);
    return need;
}

static td_status gmm_restore(td_trainer *base, const void *buf, size_t len, td_error *err)
{
    gmm_trainer *t = (gmm_trainer *)base;
    gmm_state h;
    if (len < sizeof h)
        return td_fail(err, TD_EINVAL, "checkpoint", "checkpoint is truncated");
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, "TDGMMST1", 8) != 0)
        return td_fail(err, TD_EINVAL, "checkpoint", "not a gmm training-state snapshot");
    if (h.M != t->g.M || h.E != t->g.E || h.cov != t->g.cov || len != gmm_state_size(base))
        return td_fail(err, TD_EINVAL, "checkpoint",
                       "the snapshot does not match this model");
    const char *p = (const char *)buf + sizeof h;
    int64_t M = t->g.M, E = t->g.E;
    size_t nw = sizeof(double) * (size_t)M, nm = nw * (size_t)E;
    memcpy(t->g.weights, p, nw);
    memcpy(t->g.means, p + nw, nm);
    memcpy(t->g.covs, p + nw + nm, param_bytes(t) - nw - nm);
    t->base.epoch = h.n_iter;
    t->initialized = (int)h.initialized;
    t->converged = (int)h.converged;
    t->lower_bound = h.lower_bound;
    t->base.elapsed = h.elapsed;
    memcpy(t->rng.s, h.rng, sizeof h.rng);
    t->ready = 0;
    sync_model(t);
    return TD_OK;
}

static const td_trainer_vtbl gmm_vtbl = {
    .destroy = gmm_destroy,
    .set_threads = gmm_set_threads,
    .step = gmm_step,
    .columns = gmm_columns,
    .state_size = gmm_state_size,
    .save = gmm_save,
    .restore = gmm_restore,
    .objective = NULL,
};
