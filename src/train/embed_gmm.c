/* embed_gmm.c — the embed_gmm model's td_trainer: one step = one iteration (SPEC §5).
 *
 * The network f(x; W) is D -> hidden (activation) -> E, linear output (mlp.c's layers,
 * driven through an mlp view of the parameter block). An iteration:
 *   1. P pairs: from the dataset's pairs/pair_labels when it has them (all of them when
 *      there are <= P, else P drawn uniformly with replacement), else from the labels,
 *      balanced: the first ceil(P/2) pairs are similar (anchor uniform over the rows,
 *      partner uniform among the rows with its label), the rest dissimilar (partner
 *      uniform among the rows with another label; similar when every row has one label).
 *   2. Warm-up (the first warmup_iterations): embed the 2P pair rows, contrastive loss,
 *      backward, optimizer step.
 *   3. After it: embed the GMM's rows (all N, or gmm_batch drawn without replacement) and
 *      the pair rows (with all N rows embedded the pairs index those embeddings: nothing is
 *      embedded twice). The first time, the GMM is initialised from the best of n_init
 *      k-means++ runs on the embeddings (td_gmm_initialize). Then one EM step with the
 *      network fixed: E-step, M-step, and every component whose weight fell below
 *      1/(10 M) is re-seeded by splitting (td_gmm_split). Then, with the GMM fixed, ONE
 *      combined backward: dZ = gamma * d(mean NLL)/dZ (td_gmm_nll_grad, under the updated
 *      GMM) plus the contrastive gradients scattered onto the pair rows' embeddings,
 *      then td_mlp_backward(dZ) once through the network and one optimizer step on
 *      contrastive + gamma * gmm_nll (+ l1/l2). Nothing is retained between iterations,
 *      so an iteration costs the same at iteration 10 and 10000.
 * Records: pair_loss (mean contrastive), gmm_nll (mean NLL of the embedded GMM rows under
 * the GMM the network step used; null in the warm-up), loss = pair_loss + gamma * gmm_nll
 * + reg_loss, reseeded (splits), min_size / max_size / size_k (N_k of the M-step over the
 * GMM's rows).
 * Model: the network, the GMM (double here, float in the model block) and assignments:
 * after each EM iteration the argmax responsibilities of the rows it saw (at the
 * embeddings of that iteration, one network step behind); after the last iteration, what
 * td_embed_predict gives for every training row under the final model.
 * Snapshot: header (iteration, EM steps, optimizer step, elapsed, RNG) + the float block
 * (network, gmm copy, assignments) + the optimizer's moments + the double GMM, so a
 * restored run continues bit-identically. Threads: mlp.c and gmm.c split work into chunks
 * fixed by the sizes only; the pair loss and the scatter are sequential; results are
 * bit-identical for any thread count. */
#include "train/embed_gmm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math/pool.h"
#include "math/rng.h"
#include "train/gmm.h"
#include "train/layout.h"
#include "train/mlp.h"
#include "train/optim.h"
#include "train/trainer_impl.h"
#include "traind/loss.h"

#define MAX_PARAMS (1ll << 28)

enum {
    C_EPOCH,
    C_ELAPSED,
    C_LOSS,
    C_PAIR,
    C_NLL,
    C_REG,
    C_RESEEDED,
    C_MIN_SIZE,
    C_MAX_SIZE,
    C_SIZES
};
static const char *const fixed_columns[] = {"epoch",     "elapsed_s", "loss",
                                            "pair_loss", "gmm_nll",   "reg_loss",
                                            "reseeded",  "min_size",  "max_size"};

/* ---- validation, layout, views ------------------------------------------------------ */

int64_t td_embed_gmm_rows(const td_hparams *hp, int64_t N)
{
    return hp->embed.gmm_batch > 0 && hp->embed.gmm_batch < N ? hp->embed.gmm_batch : N;
}

td_status td_embed_check(const td_hparams *hp, const td_dataset *ds, int64_t *K, td_error *err)
{
    int64_t N = ds->N, D = ds->D, E = hp->embed.embedding_dim, M = hp->gmm.components;
    if (ds->pairs && ds->P > 0) {
        for (int64_t p = 0; p < ds->P; p++) {
            char field[64];
            for (int s = 0; s < 2; s++)
                if (ds->pairs[2 * p + s] < 0 || ds->pairs[2 * p + s] >= N) {
                    snprintf(field, sizeof field, "pairs[%lld][%d]", (long long)p, s);
                    return td_fail(err, TD_EINVAL, field, "row %d is outside [0, %lld)",
                                   ds->pairs[2 * p + s], (long long)N);
                }
            if (!ds->pair_labels || (ds->pair_labels[p] != 0 && ds->pair_labels[p] != 1)) {
                snprintf(field, sizeof field, "pair_labels[%lld]", (long long)p);
                return td_fail(err, TD_EINVAL, field,
                               "pair labels must be 1 (similar) or 0 "
                               "(dissimilar)");
            }
        }
    } else if (ds->y && ds->y_cols != 1) {
        return td_fail(err, TD_EINVAL, "y",
                       "embed_gmm takes one label per row (same "
                       "label = similar pair); the targets have %lld columns",
                       (long long)ds->y_cols);
    } else if (!ds->y) {
        return td_fail(err, TD_EINVAL, "dataset",
                       "the embed_gmm model needs labels y (one "
                       "per row: same label = similar pair) or pairs with pair_labels%s",
                       ds->Y ? "; probability targets Y do not define pairs" : "");
    }
    int64_t ng = td_embed_gmm_rows(hp, N);
    if (M > ng)
        return td_fail(err, TD_EINVAL, "components",
                       "components (%lld) must not "
                       "exceed the rows the GMM is fitted on (%lld%s)",
                       (long long)M, (long long)ng, ng < N ? ", gmm_batch" : "");
    int64_t warm = td_hparams_warmup(hp);
    if (warm >= hp->epochs)
        return td_fail(err, TD_EINVAL, "warmup_iterations",
                       "warmup_iterations (%lld) "
                       "must be less than iterations (%lld): the GMM starts after the "
                       "warm-up",
                       (long long)warm, (long long)hp->epochs);
    double n = 0, in = (double)D;
    for (int64_t l = 0; l < hp->mlp.n_hidden; l++) {
        n += (in + 1) * (double)hp->mlp.hidden[l];
        in = (double)hp->mlp.hidden[l];
    }
    n += (in + 1) * (double)E;
    n += (double)M * (1.0 + (double)E) + (double)td_gmm_covs_size(hp->gmm.covariance, M, E) +
        (double)N;
    if (n > (double)MAX_PARAMS)
        return td_fail(err, TD_EINVAL, "hidden",
                       "the model would have %.0f parameters "
                       "(network, mixture and one assignment per row); at most %lld are "
                       "supported",
                       n, MAX_PARAMS);
    if (K) *K = E;
    return TD_OK;
}

int td_embed_layout(const td_model *m, td_tensor_desc *out)
{
    int n = 0;
    int64_t off = 0, in = m->D, M = m->components, E = m->K;
    for (int64_t l = 0; l <= m->n_hidden; l++) {
        int64_t o = l < m->n_hidden ? m->hidden[l] : E;
        td_tensor_add(out, &n, &off, "W", (int)l, in, o, 1, 0);
        td_tensor_add(out, &n, &off, "b", (int)l, 1, o, 0, 0);
        in = o;
    }
    td_tensor_add(out, &n, &off, "weights", 0, 1, M, 0, 0);
    td_tensor_add(out, &n, &off, "means", 0, M, E, 0, 0);
    if (m->covariance == TD_COV_TIED)
        td_tensor_add(out, &n, &off, "covariances", 0, E, E, 0, 0);
    else
        td_tensor_add(out, &n, &off, "covariances", 0, m->covariance == TD_COV_SPHERICAL ? 1 : M,
                      m->covariance == TD_COV_FULL       ? E * E
                          : m->covariance == TD_COV_DIAG ? E
                                                         : M,
                      0, 0);
    td_tensor_add(out, &n, &off, "assignments", 0, 1, m->rows, 0, 0);
    return n;
}

void td_embed_net_view(td_model *net, const td_model *m)
{
    memset(net, 0, sizeof *net);
    net->kind = TD_MODEL_MLP;
    net->D = m->D;
    net->K = m->K;
    net->G = 1;
    net->intercept = TD_INTERCEPT_FIT;
    net->n_hidden = m->n_hidden;
    memcpy(net->hidden, m->hidden, sizeof net->hidden);
    net->activation = m->activation;
    net->n_params = td_model_nparams(net);
    net->params = m->params;
}

void td_embed_gmm_view(td_model *gmm, const td_model *m)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_embed_layout(m, t);
    memset(gmm, 0, sizeof *gmm);
    gmm->kind = TD_MODEL_GMM;
    gmm->D = m->K;
    gmm->K = m->components;
    gmm->G = 1;
    gmm->covariance = m->covariance;
    gmm->lower_bound = m->lower_bound;
    gmm->converged = m->converged;
    gmm->n_iter = m->n_iter;
    gmm->n_params = t[nt - 1].offset - t[nt - 4].offset;
    gmm->params = m->params ? m->params + t[nt - 4].offset : NULL;
}

td_status td_embed_predict(float *emb, int32_t *labels, float *resp, float *loglik,
                           const td_model *m, const float *X, int64_t N, int64_t D, td_error *err)
{
    if (m->kind != TD_MODEL_EMBED_GMM)
        return td_fail(err, TD_EINVAL, "model", "not an embed_gmm model");
    if (D != m->D)
        return td_fail(err, TD_EINVAL, "X", "X has %lld features, the model expects %lld",
                       (long long)D, (long long)m->D);
    td_model net, gm;
    {
        td_model plain; /* standardize: the model on standardized rows */
        float *Xs;
        td_status sst = td_standardize_input(m, &plain, &Xs, X, N, err);
        if (sst || Xs) {
            if (!sst) sst = td_embed_predict(emb, labels, resp, loglik, &plain, Xs, N, D, err);
            free(Xs);
            return sst;
        }
    }
    td_embed_net_view(&net, m);
    td_embed_gmm_view(&gm, m);
    float *Z = emb ? emb : malloc(sizeof(float) * (size_t)(N * m->K + 1));
    td_mlp *mm = td_mlp_create(&net, 0);
    td_status st;
    if (!Z || !mm) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory for %lld predictions", (long long)N);
        goto done;
    }
    td_mlp_forward(mm, NULL, Z, net.params, X, NULL, N);
    st = TD_OK;
    if (labels || resp || loglik) st = td_gmm_predict(labels, resp, loglik, &gm, Z, N, m->K, err);
done:
    td_mlp_destroy(mm);
    if (Z != emb) free(Z);
    return st;
}

/* ---- the trainer -------------------------------------------------------------------- */

typedef struct embed_trainer {
    td_trainer base; /* first: the kind and the base fields */
    td_hparams hp;   /* owned copy */
    td_model model;  /* params (owned): network | gmm floats | assignments */
    td_model net;    /* mlp view of the network (params = model.params) */
    td_tensor_desc layout[TD_MAX_TENSORS];
    int ntensors;
    int64_t n_net, gmm_off, assign_off, n_penalized;
    const td_dataset *train;
    int64_t N, D, E, M, P, ng, warmup, zcap;
    /* pairs from labels: rows grouped by label */
    int64_t *order;           /* (N) rows sorted by (label, row) */
    int64_t *gstart, *gcount; /* (n_groups) */
    int64_t *grp;             /* (N) group of each row */
    int64_t n_groups;
    /* per-iteration buffers, made on the first step */
    int64_t *pa, *pb, *ia, *ib; /* (P) pair rows; their rows in Z */
    int32_t *sim;               /* (P) */
    int64_t *rows;              /* (ng + 2P) rows embedded (when not all N) */
    int64_t *perm;              /* (N) identity between iterations (batch sampling) */
    int64_t *swapj;             /* (ng) the sampling's swap partners */
    float *Z, *dZ;              /* (zcap, E) */
    float *A, *B, *dA, *dB;     /* (P, E) */
    double *centre;             /* (E) */
    int32_t *lab;               /* (N) final assignments */
    td_mlp *mlp;
    td_gmm g, gprev;
    td_gmm_work *w;
    double *nk;           /* (M) */
    unsigned char *empty; /* (M) */
    td_optim opt;
    td_rng rng;
    int64_t n_em; /* EM steps taken (base.epoch: iterations) */
    int gmm_ready;
    char size_names[TD_REC_MAX][32];
    const char *cols[TD_REC_MAX + 1];
} embed_trainer;

typedef struct label_row {
    int32_t y;
    int64_t i;
} label_row;

static int cmp_label_row(const void *a, const void *b)
{
    const label_row *x = a, *y = b;
    if (x->y != y->y) return x->y < y->y ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static void sync_model(embed_trainer *t)
{
    td_gmm_to_params(t->model.params + t->gmm_off, &t->g);
    t->model.n_iter = t->n_em;
    t->model.converged = 0;
}

static td_status embed_check(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                             int64_t *E, td_error *err)
{
    td_status st;
    if ((st = td_hparams_check(hp, train, E, err))) return st;
    if (val)
        return td_fail(err, TD_EINVAL, "validation",
                       "an embed_gmm job takes no validation "
                       "set");
    return TD_OK;
}

static size_t embed_bytes(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                          int64_t E, int threads)
{
    int64_t N = train->N, D = train->D, M = hp->gmm.components, ng = td_embed_gmm_rows(hp, N);
    int64_t P = train->pairs && train->P > 0 && train->P < hp->embed.pairs_per_iteration
        ? train->P
        : hp->embed.pairs_per_iteration;
    td_model m, net;
    td_model_shape(&m, hp, D, E);
    m.rows = N;
    m.n_params = td_model_nparams(&m);
    td_embed_net_view(&net, &m);
    td_optim probe = {.kind = hp->optimizer, .momentum = hp->momentum};
    size_t nbuf = (size_t)td_optim_nbuffers(&probe), n_net = (size_t)net.n_params;
    size_t gmm = sizeof(double) * (size_t)(M + M * E + td_gmm_covs_size(hp->gmm.covariance, M, E));
    int64_t zcap = ng < N ? ng + 2 * P : N;
    zcap = zcap < 2 * P ? 2 * P : zcap;
    size_t b = sizeof(embed_trainer) + sizeof(float) * (size_t)m.n_params +
        sizeof(float) * n_net * (2 + nbuf) + 2 * gmm +
        sizeof(float) *
            (size_t)(hp->gmm.weights_init.n + hp->gmm.means_init.n + hp->gmm.covariances_init.n);
    /* prepare_buffers: pairs, the rows and embeddings of an iteration, the label groups */
    b += sizeof(int64_t) * (size_t)(4 * P + zcap) + sizeof(int32_t) * (size_t)P +
        sizeof(float) * (size_t)(2 * zcap * E + 4 * P * E) + sizeof(double) * (size_t)(E + M) +
        (size_t)M + td_mlp_bytes(&net, 1, threads);
    if (ng < N) b += sizeof(int64_t) * (size_t)(N + ng);
    if (!(train->pairs && train->P > 0))
        b += sizeof(int64_t) * (size_t)(4 * N) + sizeof(label_row) * (size_t)N;
    b += td_gmm_work_bytes(ng, E, M, hp->gmm.covariance);
    /* the last iteration's predictions on every row (td_embed_predict) */
    b += sizeof(int32_t) * (size_t)N + sizeof(float) * (size_t)(N * E + N * M + N) +
        td_mlp_bytes(&net, 0, 1) + td_gmm_work_bytes(N, E, M, hp->gmm.covariance);
    return b + 512 + sizeof(float) * ((size_t)m.n_params + n_net * nbuf) + gmm;
}

static td_status embed_create(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                              const td_dataset *val, int64_t E, td_error *err)
{
    embed_trainer *t = TD_TRAINER_NEW(embed_trainer, &td_embed_trainer, hp, hp->epochs);
    if (!t) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    t->train = train;
    t->N = train->N, t->D = train->D, t->E = E, t->M = hp->gmm.components;
    t->ng = td_embed_gmm_rows(hp, t->N);
    t->warmup = td_hparams_warmup(hp);
    t->P = train->pairs && train->P > 0 && train->P < hp->embed.pairs_per_iteration
        ? train->P
        : hp->embed.pairs_per_iteration;
    t->base.rows = t->ng < t->N ? t->ng + 2 * t->P : t->N;
    td_model_shape(&t->model, hp, t->D, E);
    t->model.rows = t->N;
    t->model.n_params = td_model_nparams(&t->model);
    t->ntensors = td_model_layout(&t->model, t->layout);
    int nt = t->ntensors;
    t->gmm_off = t->layout[nt - 4].offset;
    t->assign_off = t->layout[nt - 1].offset;
    t->n_net = t->gmm_off;
    t->n_penalized = td_penalized_count(hp, t->layout, nt - 4);
    if (!(t->model.params = calloc((size_t)t->model.n_params, sizeof(float))) ||
        td_gmm_alloc(&t->g, t->M, E, hp->gmm.covariance) ||
        td_gmm_alloc(&t->gprev, t->M, E, hp->gmm.covariance) ||
        td_optim_init(&t->opt, hp, t->n_net))
        goto nomem;
    td_embed_net_view(&t->net, &t->model);
    td_mlp_init(t->model.params, &t->net, (uint64_t)hp->seed);
    td_gmm_placeholder(&t->g); /* defined before the first EM step (warm-up) */
    for (int64_t i = 0; i < t->N; i++)
        t->model.params[t->assign_off + i] = -1.0f;
    t->model.lower_bound = NAN;
    sync_model(t);
    td_rng_seed(&t->rng, (uint64_t)hp->seed, 4);

    t->base.cols = t->cols;
    t->base.ncols = td_size_columns(t->cols, t->size_names, fixed_columns,
                                    (int)(sizeof fixed_columns / sizeof fixed_columns[0]), t->M);
    *out = &t->base;
    return TD_OK;
nomem:
    t->base.kind->destroy(&t->base);
    return td_fail(err, TD_ENOMEM, NULL, "out of memory while preparing the trainer");
}

/* Buffers proportional to N, made on the first step (the HTTP side builds a trainer to
 * validate a job; that must stay cheap). */
static td_status prepare_buffers(embed_trainer *t, td_error *err)
{
    const td_dataset *ds = t->train;
    int64_t N = t->N, E = t->E, P = t->P, M = t->M;
    t->zcap = t->ng < N ? t->ng + 2 * P : N;
    if (t->zcap < 2 * P) t->zcap = 2 * P;
    size_t zb = sizeof(float) * (size_t)(t->zcap * E), pb = sizeof(float) * (size_t)(P * E);
    int ok = (t->pa = malloc(sizeof(int64_t) * (size_t)P)) &&
        (t->pb = malloc(sizeof(int64_t) * (size_t)P)) &&
        (t->ia = malloc(sizeof(int64_t) * (size_t)P)) &&
        (t->ib = malloc(sizeof(int64_t) * (size_t)P)) &&
        (t->sim = malloc(sizeof(int32_t) * (size_t)P)) &&
        (t->rows = malloc(sizeof(int64_t) * (size_t)t->zcap)) && (t->Z = calloc(1, zb)) &&
        (t->dZ = calloc(1, zb)) && (t->A = malloc(pb)) && (t->B = malloc(pb)) &&
        (t->dA = malloc(pb)) && (t->dB = malloc(pb)) &&
        (t->centre = calloc((size_t)E, sizeof(double))) &&
        (t->nk = calloc((size_t)M, sizeof(double))) && (t->empty = calloc((size_t)M, 1)) &&
        (t->mlp = td_mlp_create(&t->net, 1));
    if (ok && t->ng < N) {
        ok = (t->perm = malloc(sizeof(int64_t) * (size_t)N)) &&
            (t->swapj = malloc(sizeof(int64_t) * (size_t)t->ng));
        for (int64_t i = 0; ok && i < N; i++)
            t->perm[i] = i;
    }
    if (ok && !(ds->pairs && ds->P > 0)) {
        ok = (t->order = malloc(sizeof(int64_t) * (size_t)N)) &&
            (t->grp = malloc(sizeof(int64_t) * (size_t)N)) &&
            (t->gstart = malloc(sizeof(int64_t) * (size_t)N)) &&
            (t->gcount = malloc(sizeof(int64_t) * (size_t)N));
        label_row *lr = ok ? malloc(sizeof(label_row) * (size_t)N) : NULL;
        ok = lr != NULL;
        if (ok) {
            for (int64_t i = 0; i < N; i++)
                lr[i].y = ds->y[i], lr[i].i = i;
            qsort(lr, (size_t)N, sizeof *lr, cmp_label_row);
            for (int64_t s = 0; s < N; s++)
                t->order[s] = lr[s].i;
            free(lr);
            t->n_groups = 0;
            for (int64_t s = 0; s < N; s++) {
                int64_t i = t->order[s];
                if (s == 0 || ds->y[i] != ds->y[t->order[s - 1]]) {
                    t->gstart[t->n_groups] = s;
                    t->gcount[t->n_groups++] = 0;
                }
                t->gcount[t->n_groups - 1]++;
                t->grp[i] = t->n_groups - 1;
            }
        }
    }
    if (ok) td_mlp_reserve(t->mlp, td_pool_threads(t->base.pool)); /* best effort, as set_threads */
    if (ok)
        ok =
            (t->w = td_gmm_work_create(t->Z, t->ng, E, M, t->hp.gmm.covariance, t->centre)) != NULL;
    if (!ok)
        return td_fail(err, TD_ENOMEM, NULL,
                       "out of memory for the embed_gmm buffers (%lld "
                       "rows, %lld pairs)",
                       (long long)N, (long long)P);
    return TD_OK;
}

static void embed_destroy(td_trainer *base)
{
    embed_trainer *t = (embed_trainer *)base;
    td_gmm_work_destroy(t->w);
    td_mlp_destroy(t->mlp);
    td_optim_fini(&t->opt);
    td_gmm_free(&t->g);
    td_gmm_free(&t->gprev);
    free(t->order), free(t->grp), free(t->gstart), free(t->gcount);
    free(t->pa), free(t->pb), free(t->ia), free(t->ib), free(t->sim), free(t->rows);
    free(t->perm), free(t->swapj), free(t->Z), free(t->dZ);
    free(t->A), free(t->B), free(t->dA), free(t->dB);
    free(t->centre), free(t->lab), free(t->nk), free(t->empty);
    td_trainer_free(&t->base);
}

static void embed_set_threads(td_trainer *base, int n)
{
    embed_trainer *t = (embed_trainer *)base;
    if (t->mlp) /* best effort: without the slots, the network runs narrower waves */
        td_mlp_reserve(t->mlp, n);
}

#define SELF(b) ((const embed_trainer *)(b))
/* ---- one iteration ------------------------------------------------------------------ */

/* The iteration's P pairs into pa, pb, sim (see the top of the file). */
static void sample_pairs(embed_trainer *t)
{
    const td_dataset *ds = t->train;
    int64_t P = t->P, N = t->N;
    if (ds->pairs && ds->P > 0) {
        for (int64_t p = 0; p < P; p++) {
            int64_t q = ds->P <= P ? p : (int64_t)td_rng_below(&t->rng, (uint64_t)ds->P);
            t->pa[p] = ds->pairs[2 * q];
            t->pb[p] = ds->pairs[2 * q + 1];
            t->sim[p] = ds->pair_labels[q];
        }
        return;
    }
    int64_t n_sim = (P + 1) / 2;
    for (int64_t p = 0; p < P; p++) {
        int64_t i = (int64_t)td_rng_below(&t->rng, (uint64_t)N), g = t->grp[i];
        int64_t gs = t->gstart[g], gc = t->gcount[g], j;
        int similar = p < n_sim || gc == N;
        if (similar) {
            j = t->order[gs + (int64_t)td_rng_below(&t->rng, (uint64_t)gc)];
        } else {
            int64_t u = (int64_t)td_rng_below(&t->rng, (uint64_t)(N - gc));
            j = t->order[u < gs ? u : u + gc];
        }
        t->pa[p] = i;
        t->pb[p] = j;
        t->sim[p] = similar;
    }
}

/* Adds the l1/l2 gradient of the network's weights to grad; returns the penalty. */
static double regularize(const embed_trainer *t, const float *params, float *grad)
{
    return td_regularize(&t->hp, t->layout, t->ntensors - 4, t->n_penalized, params, grad);
}

/* The embeddings Z (n_rows, E) of this iteration must be finite: the network's outputs
 * overflow float32 with features too large for it (at the first iteration) or with
 * weights that grew too large (later). */
static td_status check_embeddings(const embed_trainer *t, int64_t n_rows, td_error *err)
{
    for (int64_t i = 0; i < n_rows * t->E; i++)
        if (!isfinite(t->Z[i]))
            return td_fail(err, TD_EDIVERGED, t->base.epoch ? "lr" : "X",
                           "the embeddings became non-finite at iteration %lld (the network's "
                           "outputs overflow float32); %s",
                           (long long)(t->base.epoch + 1),
                           t->base.epoch ? "the weights of the last iteration are kept; try a "
                                           "smaller lr"
                                         : "scale the features");
    return TD_OK;
}

/* One EM step on the embeddings Z[0..ng) with the network fixed, then the GMM term's
 * gradient into dZ[0..ng) (gamma * d(mean NLL)/dZ). *nll = the mean NLL under the updated
 * GMM; *reseeded = the splits made. */
static td_status em_and_grad(embed_trainer *t, double *nll, int64_t *reseeded, td_error *err)
{
    int64_t ng = t->ng, E = t->E, M = t->M;
    td_status st;
    for (int64_t j = 0; j < E; j++)
        t->centre[j] = 0;
    for (int64_t i = 0; i < ng; i++)
        for (int64_t j = 0; j < E; j++)
            t->centre[j] += t->Z[i * E + j];
    for (int64_t j = 0; j < E; j++)
        t->centre[j] /= (double)ng;
    td_gmm_work_set_centre(t->w, t->centre);
    if (!t->gmm_ready) {
        if ((st = td_gmm_initialize(&t->g, t->w, t->base.pool, &t->hp, t->hp.gmm.n_init, &t->rng,
                                    err)))
            return st;
        t->gmm_ready = 1;
    }
    double ll;
    int64_t n_empty, split;
    if ((st = td_gmm_prepare(t->w, &t->g, err)) ||
        (st = td_gmm_estep(t->w, t->base.pool, &ll, NULL, err)) ||
        (st = td_gmm_mstep(t->w, t->base.pool, &t->g, t->hp.gmm.reg_covar, t->nk, t->empty,
                           &n_empty, err)))
        return st;
    if (!isfinite(ll) || !td_gmm_finite(&t->g)) /* before the split reads the mixture */
        return td_fail(err, TD_EDIVERGED, "reg_covar",
                       "the EM step of iteration %lld "
                       "gave a non-finite %s (the embeddings' spread overflows float32?)",
                       (long long)(t->base.epoch + 1), isfinite(ll) ? "mixture" : "log-likelihood");
    *reseeded = 0;
    for (int64_t k = 0; k < M; k++)
        if (t->g.weights[k] < 1.0 / (10.0 * (double)M)) {
            if (td_gmm_split(t->w, &t->g, k, &split))
                return td_fail(err, TD_ENOMEM, NULL, "out of memory");
            *reseeded += split >= 0;
        }
    if (!td_gmm_finite(&t->g))
        return td_fail(err, TD_EDIVERGED, "reg_covar",
                       "the M-step of iteration %lld "
                       "gave non-finite mixture parameters",
                       (long long)(t->base.epoch + 1));
    if ((st = td_gmm_prepare(t->w, &t->g, err))) {
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err ? err->message : "");
        return td_fail(err, st, "reg_covar", "iteration %lld: %s (reg_covar is %g)",
                       (long long)(t->base.epoch + 1), msg, t->hp.gmm.reg_covar);
    }
    if ((st = td_gmm_nll_grad(t->w, t->base.pool, t->dZ,
                              (float)(t->hp.embed.gmm_weight / (double)ng), &ll, err)))
        return st;
    *nll = -ll;
    return TD_OK;
}

static td_status embed_step(td_trainer *base, td_record *rec, td_error *err)
{
    embed_trainer *t = (embed_trainer *)base;
    double t0 = td_mono_s();
    const td_dataset *ds = t->train;
    int64_t N = t->N, E = t->E, P = t->P, M = t->M;
    float *params = t->model.params;
    td_status st;
    for (int i = 0; i < TD_REC_MAX; i++)
        rec->v[i] = NAN;
    if (!t->Z && (st = prepare_buffers(t, err))) return st;
    int warm = t->base.epoch < t->warmup, was_ready = t->gmm_ready;
    sample_pairs(t);

    /* rows to embed: [GMM rows | pair a rows | pair b rows], or all N rows */
    int64_t ng = warm ? 0 : t->ng, n_rows;
    const int64_t *rows = t->rows;
    if (!warm && ng == N) {
        rows = NULL;
        n_rows = N;
        memcpy(t->ia, t->pa, sizeof(int64_t) * (size_t)P);
        memcpy(t->ib, t->pb, sizeof(int64_t) * (size_t)P);
    } else {
        if (ng) { /* gmm_batch rows without replacement: a partial Fisher-Yates, undone
                   * in reverse so perm is the identity again (no state between iterations) */
            for (int64_t i = 0; i < ng; i++) {
                int64_t j = i + (int64_t)td_rng_below(&t->rng, (uint64_t)(N - i));
                int64_t tmp = t->perm[i];
                t->perm[i] = t->perm[j], t->perm[j] = tmp;
                t->swapj[i] = j;
                t->rows[i] = t->perm[i];
            }
            for (int64_t i = ng - 1; i >= 0; i--) {
                int64_t j = t->swapj[i], tmp = t->perm[i];
                t->perm[i] = t->perm[j], t->perm[j] = tmp;
            }
        }
        for (int64_t p = 0; p < P; p++) {
            t->rows[ng + p] = t->pa[p];
            t->rows[ng + P + p] = t->pb[p];
            t->ia[p] = ng + p;
            t->ib[p] = ng + P + p;
        }
        n_rows = ng + 2 * P;
    }
    td_mlp_forward(t->mlp, t->base.pool, t->Z, params, ds->X, rows, n_rows);
    if ((st = check_embeddings(t, n_rows, err))) return st;

    /* pair loss; its gradient w.r.t. the pair embeddings */
    for (int64_t p = 0; p < P; p++) {
        memcpy(t->A + p * E, t->Z + t->ia[p] * E, sizeof(float) * (size_t)E);
        memcpy(t->B + p * E, t->Z + t->ib[p] * E, sizeof(float) * (size_t)E);
    }
    double psum;
    td_contrastive_sum(&psum, NULL, t->dA, t->dB, t->A, t->B, t->sim, P, E, t->hp.embed.margin,
                       (float)(1.0 / (double)P));
    double pair_loss = psum / (double)P, nll = NAN;
    int64_t reseeded = 0;

    /* EM step and the GMM term's gradient on rows [0, ng) of dZ; the rest zero */
    if (!warm) {
        td_gmm_copy(&t->gprev, &t->g);
        if ((st = em_and_grad(t, &nll, &reseeded, err))) goto restore_gmm;
    }
    memset(t->dZ + ng * E, 0, sizeof(float) * (size_t)((n_rows - ng) * E));
    for (int64_t p = 0; p < P; p++) {
        float *a = t->dZ + t->ia[p] * E, *b = t->dZ + t->ib[p] * E;
        for (int64_t j = 0; j < E; j++) {
            a[j] += t->dA[p * E + j];
            b[j] += t->dB[p * E + j];
        }
    }

    /* one backward through the network, one optimizer step */
    td_mlp_backward(t->mlp, t->base.pool, t->opt.grad, params, ds->X, rows, n_rows, t->dZ);
    double reg = regularize(t, params, t->opt.grad);
    double loss = pair_loss + (warm ? 0 : t->hp.embed.gmm_weight * nll) + reg;
    td_optim_keep(&t->opt, params);
    /* the first non-finite value names the cause: the loss, its gradient, or the step */
    const char *bad = !isfinite(loss)           ? "loss"
        : !td_all_finite(t->opt.grad, t->n_net) ? "gradient"
                                                : NULL;
    if (!bad) {
        td_optim_step_pool(&t->opt, t->base.pool, params, t->opt.grad);
        if (!td_all_finite(params, t->n_net)) bad = "weights";
    }
    if (bad) {
        td_optim_rollback(&t->opt, params);
        st = td_fail(err, TD_EDIVERGED, "lr",
                     "training diverged at iteration %lld "
                     "(the %s became non-finite); the weights of iteration %lld are kept; "
                     "try a smaller lr (now %g) or gmm_weight (now %g)",
                     (long long)(t->base.epoch + 1), bad, (long long)t->base.epoch, t->hp.lr,
                     t->hp.embed.gmm_weight);
        if (!warm) goto restore_gmm;
        return st;
    }
    t->base.epoch++;
    if (!warm) {
        t->n_em++;
        t->model.lower_bound = -nll;
        const float *resp = td_gmm_work_resp(t->w);
        float *assign = params + t->assign_off;
        for (int64_t i = 0; i < ng; i++) {
            int64_t best = 0;
            for (int64_t k = 1; k < M; k++)
                if (resp[k * ng + i] > resp[best * ng + i]) best = k;
            assign[rows ? rows[i] : i] = (float)best;
        }
    }
    sync_model(t);
    if (t->base.epoch >= t->hp.epochs) { /* final assignments: the final model's predictions */
        if (!t->lab && !(t->lab = malloc(sizeof(int32_t) * (size_t)N)))
            return td_fail(err, TD_ENOMEM, NULL, "out of memory");
        st = td_embed_predict(NULL, t->lab, NULL, NULL, &t->model, ds->X, N, t->D, err);
        if (st == TD_EINVAL) /* the float32 copy of a covariance is not positive definite */
            return td_fail(err, TD_EDIVERGED, "reg_covar",
                           "iteration %lld: the final "
                           "mixture's covariances are not positive definite once stored as "
                           "float32 (collapsed or collinear embeddings, no finite density); "
                           "increase reg_covar (now %g)",
                           (long long)t->base.epoch, t->hp.gmm.reg_covar);
        if (st) return st;
        for (int64_t i = 0; i < N; i++)
            params[t->assign_off + i] = (float)t->lab[i];
    }
    t->base.elapsed += td_mono_s() - t0;

    rec->v[C_EPOCH] = (double)t->base.epoch;
    rec->v[C_ELAPSED] = t->base.elapsed;
    rec->v[C_LOSS] = loss;
    rec->v[C_PAIR] = pair_loss;
    rec->v[C_NLL] = nll;
    rec->v[C_REG] = reg;
    if (!warm) {
        rec->v[C_RESEEDED] = (double)reseeded;
        td_size_record(rec, C_MIN_SIZE, C_MAX_SIZE, C_SIZES, t->nk, M, t->base.ncols);
    }
    return TD_OK;
restore_gmm: /* the mixture of the last good iteration (the placeholder before the init) */
    td_gmm_copy(&t->g, &t->gprev);
    t->gmm_ready = was_ready;
    return st;
}

/* ---- snapshots ---------------------------------------------------------------------- */

typedef struct embed_state {
    char magic[8]; /* "TDEMBST1" */
    int64_t n_params, n_net, M, E, cov, nbuf, iter, n_em, gmm_ready, opt_step;
    double lower_bound, elapsed;
    uint64_t rng[4];
} embed_state;

static size_t embed_state_size(const td_trainer *base)
{
    const embed_trainer *t = SELF(base);
    return sizeof(embed_state) + sizeof(float) * (size_t)t->model.n_params +
        sizeof(float) * (size_t)(t->n_net * td_optim_nbuffers(&t->opt)) + td_gmm_bytes(&t->g);
}

static void embed_save(const td_trainer *base, void *buf)
{
    const embed_trainer *t = SELF(base);
    embed_state h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, "TDEMBST1", 8);
    h.n_params = t->model.n_params, h.n_net = t->n_net, h.M = t->M, h.E = t->E;
    h.cov = t->g.cov, h.nbuf = td_optim_nbuffers(&t->opt);
    h.iter = t->base.epoch, h.n_em = t->n_em, h.gmm_ready = t->gmm_ready, h.opt_step = t->opt.step;
    h.lower_bound = t->model.lower_bound, h.elapsed = t->base.elapsed;
    memcpy(h.rng, t->rng.s, sizeof h.rng);
    char *p = buf;
    memcpy(p, &h, sizeof h), p += sizeof h;
    size_t np = sizeof(float) * (size_t)t->model.n_params;
    memcpy(p, t->model.params, np), p += np;
    td_gmm_put(td_optim_save(&t->opt, p), &t->g);
}

static td_status embed_restore(td_trainer *base, const void *buf, size_t len, td_error *err)
{
    embed_trainer *t = (embed_trainer *)base;
    embed_state h;
    td_status st = td_state_header(&h, sizeof h, buf, len, "TDEMBST1",
                                   "not an embed_gmm training-state snapshot", err);
    if (st) return st;
    if (h.n_params != t->model.n_params || h.n_net != t->n_net || h.M != t->M || h.E != t->E ||
        h.cov != t->g.cov || h.nbuf != td_optim_nbuffers(&t->opt) || len != embed_state_size(base))
        return td_fail(err, TD_EINVAL, "checkpoint",
                       "the snapshot does not match this model "
                       "and optimizer");
    const char *p = (const char *)buf + sizeof h;
    size_t np = sizeof(float) * (size_t)t->model.n_params;
    memcpy(t->model.params, p, np), p += np;
    td_gmm_get(&t->g, td_optim_load(&t->opt, p));
    t->base.epoch = h.iter;
    t->n_em = h.n_em;
    t->gmm_ready = (int)h.gmm_ready;
    t->opt.step = h.opt_step;
    t->model.lower_bound = h.lower_bound;
    t->base.elapsed = h.elapsed;
    memcpy(t->rng.s, h.rng, sizeof h.rng);
    sync_model(t);
    return TD_OK;
}

/* ---- the objective (tests, diagnostics) --------------------------------------------- */

/* contrastive over the last iteration's pairs + gamma * the mean NLL of every training row
 * under the current GMM, held fixed (no term before the GMM is initialised) + l1/l2, at
 * the current network; grad (n_params) OVERWRITTEN: the network's gradient from one
 * combined backward, zeros for the mixture and the assignments. Needs one iteration done.
 * Buffers for N + 2P rows are made and freed here; the training state is not touched. */
static td_status embed_objective(td_trainer *base, double *loss, float *grad)
{
    embed_trainer *t = (embed_trainer *)base;
    if (!t->Z || t->base.epoch == 0)
        return td_fail(NULL, TD_EINVAL, NULL, "no iteration has run yet");
    int64_t N = t->N, E = t->E, P = t->P, n_rows = N + 2 * P;
    const float *params = t->model.params;
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)n_rows);
    float *Z = malloc(sizeof(float) * (size_t)(n_rows * E));
    float *dZ = calloc((size_t)(n_rows * E), sizeof(float));
    td_gmm_work *w = NULL;
    td_status st = TD_OK;
    if (!rows || !Z || !dZ) {
        st = TD_ENOMEM;
        goto done;
    }
    for (int64_t i = 0; i < N; i++)
        rows[i] = i;
    for (int64_t p = 0; p < P; p++)
        rows[N + p] = t->pa[p], rows[N + P + p] = t->pb[p];
    td_mlp_forward(t->mlp, t->base.pool, Z, params, t->train->X, rows, n_rows);
    double psum, ll;
    td_contrastive_sum(&psum, NULL, t->dA, t->dB, Z + N * E, Z + (N + P) * E, t->sim, P, E,
                       t->hp.embed.margin, (float)(1.0 / (double)P));
    double L = psum / (double)P;
    if (t->gmm_ready) {
        for (int64_t j = 0; j < E; j++)
            t->centre[j] = 0;
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < E; j++)
                t->centre[j] += Z[i * E + j];
        for (int64_t j = 0; j < E; j++)
            t->centre[j] /= (double)N;
        if (!(w = td_gmm_work_create(Z, N, E, t->M, t->hp.gmm.covariance, t->centre))) {
            st = TD_ENOMEM;
            goto done;
        }
        if ((st = td_gmm_prepare(w, &t->g, NULL)) ||
            (st = td_gmm_nll_grad(w, t->base.pool, dZ, (float)(t->hp.embed.gmm_weight / (double)N),
                                  &ll, NULL)))
            goto done;
        L += t->hp.embed.gmm_weight * -ll;
    }
    memcpy(dZ + N * E, t->dA, sizeof(float) * (size_t)(P * E));
    memcpy(dZ + (N + P) * E, t->dB, sizeof(float) * (size_t)(P * E));
    td_mlp_backward(t->mlp, t->base.pool, grad, params, t->train->X, rows, n_rows, dZ);
    memset(grad + t->n_net, 0, sizeof(float) * (size_t)(t->model.n_params - t->n_net));
    L += regularize(t, params, grad);
    *loss = L;
done:
    td_gmm_work_destroy(w);
    free(rows), free(Z), free(dZ);
    return st;
}

const td_trainer_kind td_embed_trainer = {
    .check = embed_check,
    .bytes = embed_bytes,
    .create = embed_create,
    .destroy = embed_destroy,
    .set_threads = embed_set_threads,
    .step = embed_step,
    .state_size = embed_state_size,
    .save = embed_save,
    .restore = embed_restore,
    .objective = embed_objective,
};
