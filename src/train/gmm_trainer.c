/* gmm_trainer.c — the gmm model's td_trainer: one step = one EM iteration (SPEC §5).
 *
 * A step is the body of scikit-learn's GaussianMixture fit loop:
 *   lower_bound = E-step mean log-likelihood under the current parameters;
 *   M-step; change = lower_bound - previous lower_bound (+inf on the first iteration);
 *   converged when |change| < tol; the run is done when converged or after max_iter.
 * So progress, events, checkpoints and exact resume work as for every other job, with
 * epoch = iteration and epochs = max_iter.
 *
 * n_init (scikit-learn's meaning): n_init whole runs one after the other, each an
 * initialisation (one k-means++ / Lloyd partition, or random responsibilities) and EM until
 * converged or max_iter; the run with the highest final lower bound wins (the first on a
 * tie), as GaussianMixture.fit does. The trainer's RNG runs on from run to run, so each
 * run starts elsewhere. Steps are numbered across runs (epoch = EM iterations so far,
 * epochs = n_init x max_iter planned); the record's "run" column says which run an
 * iteration belongs to, and "change" is null on each run's first iteration. The model
 * shows the run in progress until a run has finished, then the best finished run
 * (lower_bound, converged and n_iter are the best run's). When weights_init, means_init
 * and covariances_init are all given every run would be the same: one run is made.
 * Initialisation (td_gmm_initialize) runs at the start of a run's first step, not in
 * create: the HTTP side builds a trainer to validate a job, and that must not cost a
 * k-means.
 *
 * Empty components (N_k < TD_GMM_EMPTY after an M-step) are re-seeded: the first at the
 * row with the lowest log-likelihood in that iteration's E-step, any others at rows drawn
 * with the trainer's RNG; covariance of the whole data set + reg_covar, weight 1/N. The
 * record's "reseeded" column counts them; an iteration that re-seeds may lower the
 * likelihood (every other iteration never does).
 *
 * Snapshot: header (run in progress, runs finished, the run's iteration, converged and
 * previous lower bound, the best run's lower bound, n_iter and converged, elapsed, RNG
 * state), the run's double parameters and the best run's, so a restored job continues
 * bit-identically, also between two runs or in the middle of one. A snapshot of the
 * previous format (one run, no best) is still restored, as run 1. */
#include "traind/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math/pool.h"
#include "math/rng.h"
#include "train/gmm.h"
#include "train/trainer_impl.h"

enum {
    C_EPOCH,
    C_ELAPSED,
    C_LOSS,
    C_LB,
    C_CHANGE,
    C_CONVERGED,
    C_RESEEDED,
    C_MIN_SIZE,
    C_MAX_SIZE,
    C_RUN,
    C_SIZES
};
static const char *const fixed_columns[] = {"epoch",    "elapsed_s", "loss",     "lower_bound",
                                            "change",   "converged", "reseeded", "min_size",
                                            "max_size", "run"};

typedef struct gmm_trainer {
    td_trainer base; /* first: the kind and the base fields */
    td_hparams hp;   /* owned copy */
    td_model model;  /* float copy of the parameters + gmm fields */
    const td_dataset *train;
    td_gmm g, prev; /* current parameters; before this step's M-step */
    td_gmm best;    /* the best finished run's parameters */
    td_gmm_work *w; /* made on the first step */
    int ready;      /* w holds g's precision factors */
    td_rng rng;
    int64_t n_iter;             /* EM iterations of the run in progress */
    int initialized, converged; /* of the run in progress */
    double lower_bound;         /* its last iteration's; -inf before the first */
    int64_t n_runs, runs_done;  /* runs to make (n_init, or 1), runs finished */
    double best_lb;             /* the best finished run's lower bound, n_iter, */
    int64_t best_n_iter;        /* converged (valid once runs_done > 0) */
    int best_converged;
    double *nk;           /* (M) */
    unsigned char *empty; /* (M) */
    char size_names[TD_REC_MAX][32];
    const char *cols[TD_REC_MAX + 1];
} gmm_trainer;

/* The model's float parameters and fit fields: the best finished run's once there is
 * one, else the run in progress (t->g). */
static void sync_model(gmm_trainer *t)
{
    t->base.epochs = t->n_runs * t->hp.gmm.max_iter;
    t->base.stopped = t->runs_done >= t->n_runs;
    if (t->runs_done > 0) {
        td_gmm_to_params(t->model.params, &t->best);
        t->model.lower_bound = t->best_lb;
        t->model.converged = t->best_converged;
        t->model.n_iter = t->best_n_iter;
        return;
    }
    td_gmm_to_params(t->model.params, &t->g);
    t->model.lower_bound = t->n_iter ? t->lower_bound : NAN;
    t->model.converged = t->converged;
    t->model.n_iter = t->n_iter;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static td_status gmm_check(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                           int64_t *K, td_error *err)
{
    td_status st;
    if ((st = td_hparams_check(hp, train, K, err))) return st;
    if (val) return td_fail(err, TD_EINVAL, "validation", "a gmm job takes no validation set");
    return TD_OK;
}

static size_t gmm_bytes(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                        int64_t K, int threads)
{
    int64_t M = K, E = train->D, N = train->N;
    size_t gmm = sizeof(double) * (size_t)(M + M * E + td_gmm_covs_size(hp->gmm.covariance, M, E));
    td_model m;
    td_model_shape(&m, hp, E, K);
    return sizeof(gmm_trainer) + sizeof(float) * (size_t)m.n_params + 3 * gmm + /* g prev best */
        sizeof(double) * (size_t)(M + E) + (size_t)M +
        sizeof(float) *
        (size_t)(hp->gmm.weights_init.n + hp->gmm.means_init.n + hp->gmm.covariances_init.n) +
        td_gmm_work_bytes(N, E, M, hp->gmm.covariance) + 512 +
        2 * gmm; /* one td_trainer_save snapshot: header, run and best mixtures */
}

static td_status gmm_create(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                            const td_dataset *val, int64_t K, td_error *err)
{
    gmm_trainer *t = TD_TRAINER_NEW(gmm_trainer, &td_gmm_trainer, hp, hp->gmm.max_iter);
    if (!t) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    t->base.rows = train->N;
    t->train = train;
    td_model_shape(&t->model, hp, train->D, K);
    int64_t M = K, E = train->D;
    if (!(t->model.params = calloc((size_t)t->model.n_params, sizeof(float))) ||
        td_gmm_alloc(&t->g, M, E, hp->gmm.covariance) ||
        td_gmm_alloc(&t->prev, M, E, hp->gmm.covariance) ||
        td_gmm_alloc(&t->best, M, E, hp->gmm.covariance) ||
        !(t->nk = calloc((size_t)M, sizeof(double))) || !(t->empty = calloc((size_t)M, 1)))
        goto nomem;
    td_gmm_placeholder(&t->g); /* until the first step initialises */
    t->lower_bound = -INFINITY;
    t->best_lb = -INFINITY;
    /* with every parameter given, each run would repeat the first */
    t->n_runs = hp->gmm.weights_init.v && hp->gmm.means_init.v && hp->gmm.covariances_init.v
        ? 1
        : hp->gmm.n_init;
    sync_model(t);
    td_rng_seed(&t->rng, (uint64_t)hp->seed, 3);

    t->base.cols = t->cols;
    t->base.ncols = td_size_columns(t->cols, t->size_names, fixed_columns,
                                    (int)(sizeof fixed_columns / sizeof fixed_columns[0]), M);
    *out = &t->base;
    return TD_OK;
nomem:
    t->base.kind->destroy(&t->base);
    return td_fail(err, TD_ENOMEM, NULL, "out of memory while preparing the trainer");
}

static void gmm_destroy(td_trainer *base)
{
    gmm_trainer *t = (gmm_trainer *)base;
    td_gmm_work_destroy(t->w);
    td_gmm_free(&t->g);
    td_gmm_free(&t->prev);
    td_gmm_free(&t->best);
    free(t->nk);
    free(t->empty);
    td_trainer_free(&t->base);
}

#define SELF(b) ((const gmm_trainer *)(b))
/* ---- one EM iteration --------------------------------------------------------------- */

/* The run in progress has finished: it becomes the best when its lower bound is higher
 * than every earlier run's (scikit-learn: `lower_bound > max_lower_bound`), and the next
 * run, if any, starts from scratch at the next step. */
static void end_run(gmm_trainer *t)
{
    if (t->runs_done == 0 || t->lower_bound > t->best_lb) {
        td_gmm_copy(&t->best, &t->g);
        t->best_lb = t->lower_bound;
        t->best_n_iter = t->n_iter;
        t->best_converged = t->converged;
    }
    if (++t->runs_done < t->n_runs) {
        t->initialized = 0;
        t->n_iter = 0;
        t->converged = 0;
        t->lower_bound = -INFINITY;
    }
}

static td_status gmm_step(td_trainer *base, td_record *rec, td_error *err)
{
    gmm_trainer *t = (gmm_trainer *)base;
    double t0 = td_mono_s();
    const td_dataset *ds = t->train;
    int64_t M = t->g.M, E = t->g.E, N = ds->N;
    td_status st;
    for (int i = 0; i < TD_REC_MAX; i++)
        rec->v[i] = NAN;
    if (!t->w) {
        t->w = td_gmm_work_create(ds->X, N, E, M, t->hp.gmm.covariance, NULL);
        if (!t->w)
            return td_fail(err, TD_ENOMEM, NULL,
                           "out of memory for the EM workspace "
                           "(%lld rows, %lld components)",
                           (long long)N, (long long)M);
        t->ready = 0;
    }
    if (!t->initialized) {
        if ((st = td_gmm_initialize(&t->g, t->w, t->base.pool, &t->hp, 1, &t->rng, err))) return st;
        t->initialized = 1;
        t->ready = 0;
        if (td_gmm_finite(&t->g)) sync_model(t);
    }
    if (!t->ready && (st = td_gmm_prepare(t->w, &t->g, err)))
        return st; /* only an initial covariance can fail here (reg_covar 0) */
    t->ready = 1;

    double ll;
    int64_t worst;
    if ((st = td_gmm_estep(t->w, t->base.pool, &ll, &worst, err))) return st;
    if (!isfinite(ll))
        return td_fail(err, TD_EDIVERGED, "X",
                       "the log-likelihood is not finite at iteration %lld (some rows have "
                       "zero density: are the features' magnitudes within float32 range?); "
                       "the parameters of iteration %lld are kept",
                       (long long)(t->n_iter + 1), (long long)t->n_iter);
    td_gmm_copy(&t->prev, &t->g);
    int64_t n_empty = 0;
    if ((st = td_gmm_mstep(t->w, t->base.pool, &t->g, t->hp.gmm.reg_covar, t->nk, t->empty,
                           &n_empty, err)))
        goto restore;
    double *row = malloc(sizeof(double) * (size_t)E);
    if (!row) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
        goto restore;
    }
    int first = 1;
    for (int64_t k = 0; k < M && !st; k++) {
        if (!t->empty[k]) continue;
        int64_t i = first ? worst : (int64_t)td_rng_below(&t->rng, (uint64_t)N);
        first = 0;
        for (int64_t j = 0; j < E; j++)
            row[j] = ds->X[i * E + j];
        if (td_gmm_reseed(t->w, &t->g, k, row, t->hp.gmm.reg_covar))
            st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    }
    free(row);
    if (st) goto restore;
    if (!td_gmm_finite(&t->g)) {
        st = td_fail(err, TD_EDIVERGED, "reg_covar",
                     "the M-step of iteration %lld gave "
                     "non-finite parameters; the parameters of iteration %lld are kept",
                     (long long)(t->n_iter + 1), (long long)t->n_iter);
        goto restore;
    }
    if ((st = td_gmm_prepare(t->w, &t->g, err))) {
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err ? err->message : "");
        st = td_fail(err, st, "reg_covar",
                     "iteration %lld: %s (reg_covar is "
                     "%g); the parameters of iteration %lld are kept",
                     (long long)(t->n_iter + 1), msg, t->hp.gmm.reg_covar, (long long)t->n_iter);
        goto restore;
    }
    t->n_iter++;
    t->base.epoch++; /* EM iterations over all runs */
    double change = ll - t->lower_bound;
    t->lower_bound = ll;
    t->converged = fabs(change) < t->hp.tol;
    int64_t run = t->runs_done + 1;
    rec->v[C_CHANGE] = t->n_iter > 1 ? change : NAN;
    rec->v[C_CONVERGED] = t->converged;
    if (t->converged || t->n_iter >= t->hp.gmm.max_iter) end_run(t);
    sync_model(t);
    t->base.elapsed += td_mono_s() - t0;

    rec->v[C_EPOCH] = (double)t->base.epoch;
    rec->v[C_RUN] = (double)run;
    rec->v[C_ELAPSED] = t->base.elapsed;
    rec->v[C_LOSS] = -ll;
    rec->v[C_LB] = ll;
    rec->v[C_RESEEDED] = (double)n_empty;
    td_size_record(rec, C_MIN_SIZE, C_MAX_SIZE, C_SIZES, t->nk, M, t->base.ncols);
    return TD_OK;
restore:
    td_gmm_copy(&t->g, &t->prev);
    t->ready = 0;
    return st;
}

/* ---- snapshots ---------------------------------------------------------------------- */

typedef struct gmm_state {
    char magic[8]; /* "TDGMMST2" ("TDGMMST1": this header alone) */
    int64_t M, E, cov, n_iter, initialized, converged;
    double lower_bound, elapsed;
    uint64_t rng[4];
} gmm_state;

typedef struct gmm_state2 { /* TDGMMST2: the runs of n_init */
    gmm_state h;
    int64_t n_runs, runs_done, iters, best_n_iter, best_converged;
    double best_lb;
} gmm_state2;

/* header, the run's mixture, the best run's mixture */
static size_t gmm_state_size(const td_trainer *base)
{
    return sizeof(gmm_state2) + 2 * td_gmm_bytes(&SELF(base)->g);
}

static void gmm_save(const td_trainer *base, void *buf)
{
    const gmm_trainer *t = SELF(base);
    gmm_state2 s;
    memset(&s, 0, sizeof s);
    gmm_state *h = &s.h;
    memcpy(h->magic, "TDGMMST2", 8);
    h->M = t->g.M, h->E = t->g.E, h->cov = t->g.cov;
    h->n_iter = t->n_iter, h->initialized = t->initialized, h->converged = t->converged;
    h->lower_bound = t->lower_bound, h->elapsed = t->base.elapsed;
    memcpy(h->rng, t->rng.s, sizeof h->rng);
    s.n_runs = t->n_runs, s.runs_done = t->runs_done, s.iters = t->base.epoch;
    s.best_n_iter = t->best_n_iter, s.best_converged = t->best_converged;
    s.best_lb = t->best_lb;
    char *p = buf;
    memcpy(p, &s, sizeof s);
    td_gmm_put(p + sizeof s, &t->g);
    td_gmm_put(p + sizeof s + td_gmm_bytes(&t->g), &t->best);
}

static td_status gmm_restore(td_trainer *base, const void *buf, size_t len, td_error *err)
{
    gmm_trainer *t = (gmm_trainer *)base;
    gmm_state2 s;
    memset(&s, 0, sizeof s);
    gmm_state *h = &s.h;
    if (len < sizeof *h) return td_fail(err, TD_EINVAL, "checkpoint", "checkpoint is truncated");
    memcpy(h, buf, sizeof *h);
    int v1 = memcmp(h->magic, "TDGMMST1", 8) == 0;
    if (!v1 && memcmp(h->magic, "TDGMMST2", 8) != 0)
        return td_fail(err, TD_EINVAL, "checkpoint", "not a gmm training-state snapshot");
    size_t want = v1 ? sizeof *h + td_gmm_bytes(&t->g) : gmm_state_size(base);
    if (h->M != t->g.M || h->E != t->g.E || h->cov != t->g.cov || len != want)
        return td_fail(err, TD_EINVAL, "checkpoint", "the snapshot does not match this model");
    const char *p = (const char *)buf;
    if (v1) { /* one run in progress, nothing finished */
        s.n_runs = t->n_runs, s.iters = h->n_iter, s.best_lb = -INFINITY;
        if (h->converged || h->n_iter >= t->hp.gmm.max_iter) /* it had finished */
            s.n_runs = 1;
        td_gmm_get(&t->g, p + sizeof *h);
    } else {
        memcpy(&s, buf, sizeof s);
        if (s.n_runs != t->n_runs || s.runs_done < 0 || s.runs_done > s.n_runs)
            return td_fail(err, TD_EINVAL, "checkpoint",
                           "the snapshot does not match this model (n_init)");
        td_gmm_get(&t->g, p + sizeof s);
        td_gmm_get(&t->best, p + sizeof s + td_gmm_bytes(&t->g));
    }
    t->n_iter = h->n_iter;
    t->initialized = (int)h->initialized;
    t->converged = (int)h->converged;
    t->lower_bound = h->lower_bound;
    t->base.elapsed = h->elapsed;
    memcpy(t->rng.s, h->rng, sizeof h->rng);
    t->n_runs = s.n_runs;
    t->runs_done = s.runs_done;
    t->base.epoch = s.iters;
    t->best_n_iter = s.best_n_iter;
    t->best_converged = (int)s.best_converged;
    t->best_lb = s.best_lb;
    if (v1 && (t->converged || t->n_iter >= t->hp.gmm.max_iter)) end_run(t);
    t->ready = 0;
    sync_model(t);
    return TD_OK;
}

const td_trainer_kind td_gmm_trainer = {
    .check = gmm_check,
    .bytes = gmm_bytes,
    .create = gmm_create,
    .destroy = gmm_destroy,
    .step = gmm_step,
    .state_size = gmm_state_size,
    .save = gmm_save,
    .restore = gmm_restore,
    .objective = NULL,
};
