/* mlp.c — dense layers, activations and the mlp's batch evaluation (see mlp.h).
 *
 * DESIGN (threads): td_mlp_eval splits a batch of n rows into nchunks chunks (a function of
 * n and the model's shape only) and runs them as td_pool tasks. A chunk walks its rows in
 * blocks of at most BLOCK rows: gather the rows of X, forward through every layer, the
 * loss of the block (targets.c), backward through every layer, accumulating dW/db into the
 * chunk's own gradient (chunk 0 writes straight into the caller's grad, a later chunk
 * into its slot's partial). The chunks run in waves of one per thread, each in a slot
 * (scratch + partial gradient) that the next wave reuses; after each wave a second pool
 * pass adds the wave's partials to grad element by element in chunk order, so grad is
 * ((g_0 + g_1) + g_2) + ... for any wave width, and the chunks' loss sums are added in
 * chunk order. Each task touches only its own slot's memory; BLAS runs single-threaded
 * inside the tasks (math/blas.h). */
#include "train/mlp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "math/blas.h"
#include "math/isa.h"
#include "math/rng.h"

#define MAX_CHUNKS 16
#define MIN_CHUNK 64                    /* rows per chunk, at least */
#define BLOCK 128                       /* rows per block inside a chunk, at most */
#define BLOCK_BUDGET (1 << 20)          /* floats of scratch per chunk, about */
#define PARTIAL_BUDGET (64.0 * 1048576) /* bytes of partial gradients, about */
#define REDUCE_TASK 32768               /* gradient elements per reduction task */
#define SLOTS_SMALL (1u << 20)          /* bytes of slots always allowed (see slots_for) */

/* ---- layers --------------------------------------------------------------------------- */

void td_dense_forward(float *out, const float *inp, const float *W, const float *b, int64_t B,
                      int64_t C, int64_t OC)
{
    /* out is (B, OC), inp (B, C), W (C, OC), b (OC) */
    if (b)
        for (int64_t r = 0; r < B; r++)
            memcpy(out + r * OC, b, sizeof(float) * (size_t)OC);
    td_sgemm_nn(out, inp, W, B, OC, C, 1.0f, b ? 1.0f : 0.0f, C, OC, OC);
}

void td_dense_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                       const float *W, int64_t B, int64_t C, int64_t OC, int accumulate)
{
    /* dinp is (B, C), dW (C, OC), db (OC), dout (B, OC), inp (B, C), W (C, OC) */
    if (dinp) td_sgemm_nt(dinp, dout, W, B, C, OC, 1.0f, 0.0f, OC, OC, C);
    td_sgemm_tn(dW, inp, dout, C, OC, B, 1.0f, accumulate ? 1.0f : 0.0f, C, OC, OC);
    if (db) {
        if (!accumulate) memset(db, 0, sizeof(float) * (size_t)OC);
        for (int64_t r = 0; r < B; r++) {
            const float *d = dout + r * OC;
            for (int64_t j = 0; j < OC; j++)
                db[j] += d[j];
        }
    }
}

TD_CLONES
void td_act_forward(float *out, const float *inp, int64_t n, td_activation act)
{
    /* out, inp are (n) */
    switch (act) {
    case TD_ACT_RELU:
        for (int64_t i = 0; i < n; i++) /* NaN passes through, as in torch.relu */
            out[i] = inp[i] < 0.0f ? 0.0f : inp[i];
        break;
    case TD_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            out[i] = tanhf(inp[i]);
        break;
    case TD_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            out[i] = 1.0f / (1.0f + expf(-inp[i]));
        break;
    }
}

TD_CLONES
void td_act_backward(float *dinp, const float *dout, const float *out, int64_t n, td_activation act)
{
    /* dinp, dout, out are (n) */
    switch (act) {
    case TD_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
        break;
    case TD_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
        break;
    case TD_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            dinp[i] = dout[i] * out[i] * (1.0f - out[i]);
        break;
    }
}

/* ---- the network ---------------------------------------------------------------------- */

typedef struct chunk {
    float *mem;                    /* the one allocation below point into */
    float *x;                      /* (block, D) gathered rows */
    float *act[TD_MAX_HIDDEN + 1]; /* (block, dims[l+1]): hidden outputs, then logits */
    float *dlogits;                /* (block, K) */
    float *dh[2];                  /* (block, Hmax) gradients of hidden outputs */
    float *partial;                /* (P) a chunk's gradient (slots > 0) */
} chunk;

struct td_mlp {
    int64_t L;                       /* hidden layers */
    int64_t dims[TD_MAX_HIDDEN + 2]; /* D, H_0, ..., H_{L-1}, K */
    int64_t Woff[TD_MAX_HIDDEN + 1], boff[TD_MAX_HIDDEN + 1];
    int64_t P;
    td_activation act;
    int64_t block; /* rows per block: BLOCK, fewer for wide layers */
    int max_chunks;
    int with_grad;
    int nslots;                    /* slots allocated: 2 .. max_chunks */
    chunk chunks[MAX_CHUNKS];      /* slots: one per chunk in flight (see run_waves) */
    td_loss_sums sums[MAX_CHUNKS]; /* per chunk, reduced in chunk order */
};

/* The chunk plan of a network of m's shape: max_chunks (partial gradients for chunks 1..
 * within PARTIAL_BUDGET, but at least one: two chunks), rows per block, the widest hidden
 * layer and the scratch floats per row of a block. */
static void plan(const td_model *m, int *max_chunks, int64_t *block, int64_t *hmax_out,
                 int64_t *row_out)
{
    double per = 4.0 * (double)(m->n_params > 0 ? m->n_params : 1);
    double extra = floor(PARTIAL_BUDGET / per);
    *max_chunks = 1 + (int)(extra < 1 ? 1 : extra > MAX_CHUNKS - 1 ? MAX_CHUNKS - 1 : extra);
    int64_t hmax = 1, acts = 0;
    for (int64_t l = 0; l <= m->n_hidden; l++) {
        int64_t width = l < m->n_hidden ? m->hidden[l] : m->K;
        acts += width;
        if (l < m->n_hidden && width > hmax) hmax = width;
    }
    int64_t row = m->D + acts + m->K + 2 * hmax; /* floats per row */
    int64_t b = BLOCK_BUDGET / row;
    *block = b > BLOCK ? BLOCK : b < 8 ? 8 : b;
    *hmax_out = hmax;
    *row_out = row;
}

/* Slots for `threads` threads: one per chunk in flight plus chunk 0's, or as many as
 * SLOTS_SMALL bytes hold when that is more (a small network then runs every chunk in one
 * wave), at most one per chunk. */
static int slots_for(int max_chunks, int threads, size_t bytes)
{
    int s = (threads > 1 ? threads : 1) + 1;
    int64_t small = (int64_t)(SLOTS_SMALL / (bytes ? bytes : 1));
    s = s > small ? s : (int)(small < MAX_CHUNKS ? small : MAX_CHUNKS);
    return s < max_chunks ? s : max_chunks;
}

size_t td_mlp_bytes(const td_model *m, int with_grad, int threads)
{
    int max_chunks;
    int64_t block, hmax, row;
    plan(m, &max_chunks, &block, &hmax, &row);
    size_t per_chunk = sizeof(float) * (size_t)(block * row);
    size_t partial = sizeof(float) * (size_t)(m->n_params > 0 ? m->n_params : 1);
    size_t slots = (size_t)slots_for(max_chunks, threads, per_chunk + partial);
    return sizeof(struct td_mlp) + slots * per_chunk + (with_grad ? (slots - 1) * partial : 0);
}

int td_mlp_reserve(td_mlp *M, int threads)
{
    int64_t hmax = 1;
    for (int64_t l = 1; l <= M->L; l++)
        hmax = M->dims[l] > hmax ? M->dims[l] : hmax;
    int64_t acts = 0;
    for (int64_t l = 1; l <= M->L + 1; l++)
        acts += M->dims[l];
    size_t scratch = (size_t)(M->block * (M->dims[0] + acts + M->dims[M->L + 1] + 2 * hmax));
    int want = slots_for(M->max_chunks, threads,
                         sizeof(float) * (scratch + (size_t)(M->P > 0 ? M->P : 1)));
    for (; M->nslots < want; M->nslots++) {
        /* one allocation a slot: the scratch, then (slots > 0) the partial gradient */
        chunk *ch = &M->chunks[M->nslots];
        int partial = M->with_grad && M->nslots > 0;
        size_t n = scratch + (partial ? (size_t)(M->P > 0 ? M->P : 1) : 0);
        if (!(ch->mem = malloc(sizeof(float) * n))) return -1;
        float *p = ch->mem;
        ch->x = p, p += M->block * M->dims[0];
        for (int64_t l = 0; l <= M->L; l++)
            ch->act[l] = p, p += M->block * M->dims[l + 1];
        ch->dlogits = p, p += M->block * M->dims[M->L + 1];
        ch->dh[0] = p, p += M->block * hmax;
        ch->dh[1] = p, p += M->block * hmax;
        ch->partial = partial ? p : NULL;
    }
    return 0;
}

td_mlp *td_mlp_create(const td_model *m, int with_grad)
{
    td_mlp *M = calloc(1, sizeof *M);
    if (!M) return NULL;
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    M->L = m->n_hidden;
    M->act = m->activation;
    M->P = m->n_params;
    M->dims[0] = m->D;
    for (int64_t l = 0; l < M->L; l++)
        M->dims[l + 1] = m->hidden[l];
    M->dims[M->L + 1] = m->K;
    for (int i = 0; i < nt; i++) {
        if (t[i].name[0] == 'W')
            M->Woff[t[i].layer] = t[i].offset;
        else
            M->boff[t[i].layer] = t[i].offset;
    }
    int64_t hmax, row;
    plan(m, &M->max_chunks, &M->block, &hmax, &row);
    M->with_grad = with_grad;
    if (td_mlp_reserve(M, 1)) { /* one thread: two slots */
        td_mlp_destroy(M);
        return NULL;
    }
    return M;
}

void td_mlp_destroy(td_mlp *M)
{
    if (!M) return;
    for (int c = 0; c < MAX_CHUNKS; c++)
        free(M->chunks[c].mem);
    free(M);
}

void td_mlp_init(float *params, const td_model *m, uint64_t seed)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    td_rng rng;
    td_rng_seed(&rng, seed, 3);
    for (int i = 0; i < nt; i++) {
        /* fan_in of the layer: the rows of its W (b shares its layer's W's fan_in) */
        int64_t fan_in = t[i].name[0] == 'W' ? t[i].rows : t[i - 1].rows;
        double bound = 1.0 / sqrt((double)fan_in);
        float *p = params + t[i].offset;
        for (int64_t j = 0; j < t[i].rows * t[i].cols; j++)
            p[j] = (float)((2.0 * td_rng_uniform(&rng) - 1.0) * bound);
    }
}

typedef struct eval_ctx {
    td_mlp *M;
    const float *params;
    const float *X;
    const int64_t *rows;
    int64_t n, chunk_rows, nchunks;
    int64_t base, width;  /* the current wave: chunks [base, base + width) */
    const td_targets *tg; /* NULL: forward only */
    float *grad;          /* (P) or NULL */
    float *logits_out;    /* (n, K) or NULL */
    const float *dout;    /* (n, K) d(loss)/d(output), or NULL: targets */
    td_batch_denoms denoms;
} eval_ctx;

/* Rows [first, first + nb) of the batch: forward, loss, backward. */
static void eval_block(const eval_ctx *e, chunk *ch, td_loss_sums *sums, float *g, int64_t first,
                       int64_t nb, int accumulate)
{
    const td_mlp *M = e->M;
    const int64_t L = M->L, D = M->dims[0], K = M->dims[L + 1];
    const float *prm = e->params;
    const float *x;
    if (e->rows) {
        for (int64_t r = 0; r < nb; r++)
            memcpy(ch->x + r * D, e->X + e->rows[first + r] * D, sizeof(float) * (size_t)D);
        x = ch->x;
    } else {
        x = e->X + first * D;
    }

    /* forward: act[l] (nb, dims[l+1]) = act(act[l-1] W_l + b_l); logits without act */
    float *logits = e->logits_out ? e->logits_out + first * K : ch->act[L];
    const float *in = x;
    for (int64_t l = 0; l <= L; l++) {
        float *out = l == L ? logits : ch->act[l];
        td_dense_forward(out, in, prm + M->Woff[l], prm + M->boff[l], nb, M->dims[l],
                         M->dims[l + 1]);
        if (l < L) td_act_forward(out, out, nb * M->dims[l + 1], M->act);
        in = out;
    }
    const float *dout = ch->dlogits; /* d(loss)/d(output of layer l) */
    if (e->dout) {
        dout = e->dout + first * K;
    } else {
        if (!e->tg) return;
        td_targets_block(sums, g ? ch->dlogits : NULL, logits, first, nb, K, e->tg, &e->denoms);
        if (!g) return;
    }

    /* backward */
    for (int64_t l = L; l >= 0; l--) {
        const float *inp = l > 0 ? ch->act[l - 1] : x;
        float *dinp = l > 0 ? ch->dh[l & 1] : NULL;
        td_dense_backward(dinp, g + M->Woff[l], g + M->boff[l], dout, inp, prm + M->Woff[l], nb,
                          M->dims[l], M->dims[l + 1], accumulate);
        if (l > 0) {
            td_act_backward(dinp, dinp, ch->act[l - 1], nb * M->dims[l], M->act);
            dout = dinp;
        }
    }
}

/* Task t of a wave: chunk base + t, in slot t of the first wave (chunk 0 in slot 0,
 * writing the caller's grad) and slot t + 1 of the later ones. */
static chunk *slot_of(const eval_ctx *e, int64_t t)
{
    return &e->M->chunks[e->base == 0 ? t : t + 1];
}

static void eval_chunk(void *arg, int64_t t)
{
    const eval_ctx *e = arg;
    const int64_t c = e->base + t;
    chunk *ch = slot_of(e, t);
    float *g = e->grad ? (c == 0 ? e->grad : ch->partial) : NULL;
    int64_t lo = c * e->chunk_rows, hi = lo + e->chunk_rows < e->n ? lo + e->chunk_rows : e->n;
    memset(&e->M->sums[c], 0, sizeof e->M->sums[c]);
    const int64_t B = e->M->block;
    for (int64_t first = lo; first < hi; first += B) {
        int64_t nb = hi - first < B ? hi - first : B;
        eval_block(e, ch, &e->M->sums[c], g, first, nb, first > lo);
    }
}

/* grad[i] += partial[i] of each chunk of the wave after chunk 0, in chunk order, for one
 * range of i. */
TD_CLONES
static void reduce_task(void *arg, int64_t task)
{
    const eval_ctx *e = arg;
    int64_t lo = task * REDUCE_TASK, hi = lo + REDUCE_TASK < e->M->P ? lo + REDUCE_TASK : e->M->P;
    float *restrict g = e->grad;
    for (int64_t t = e->base == 0 ? 1 : 0; t < e->width; t++) {
        const float *restrict p = slot_of(e, t)->partial;
        for (int64_t i = lo; i < hi; i++)
            g[i] += p[i];
    }
}

/* Runs every chunk in waves of one chunk per thread (and slot); after each wave its
 * partial gradients are added to grad in chunk order, so every element of grad is
 * ((g_0 + g_1) + g_2) + ... whatever the wave width. */
static void run_waves(eval_ctx *e, td_pool *pool)
{
    td_mlp *M = e->M;
    int64_t width = td_pool_threads(pool);
    if (width > M->nslots - 1) width = M->nslots - 1;
    if (e->nchunks <= M->nslots) /* every chunk has a slot: one wave */
        width = e->nchunks;
    for (e->base = 0; e->base < e->nchunks; e->base += e->width) {
        e->width = e->nchunks - e->base < width ? e->nchunks - e->base : width;
        td_pool_run(pool, e->width, eval_chunk, e);
        if (e->grad && (e->base > 0 || e->width > 1))
            td_pool_run(pool, (M->P + REDUCE_TASK - 1) / REDUCE_TASK, reduce_task, e);
    }
}

/* Chunks of e->n rows: as many as max_chunks allows, each at least MIN_CHUNK rows and a
 * whole number of blocks when longer than one block. Depends on n and the shape only. */
static void split(eval_ctx *e)
{
    int64_t per = (e->n + e->M->max_chunks - 1) / e->M->max_chunks;
    int64_t rows = per > MIN_CHUNK ? per : MIN_CHUNK, B = e->M->block;
    rows = rows > B ? (rows + B - 1) / B * B : (rows + 7) / 8 * 8;
    e->chunk_rows = rows;
    e->nchunks = (e->n + rows - 1) / rows;
}

void td_mlp_eval(td_mlp *M, td_pool *pool, td_batch_stats *st, float *grad, const float *params,
                 const float *X, const int64_t *rows, int64_t n, const td_targets *tg)
{
    eval_ctx e = {.M = M, .params = params, .X = X, .rows = rows, .n = n, .tg = tg, .grad = grad};
    td_targets_denoms(&e.denoms, tg, n);
    split(&e);
    if (grad && n == 0) memset(grad, 0, sizeof(float) * (size_t)M->P);
    run_waves(&e, pool);
    td_loss_sums sums = {0};
    for (int64_t c = 0; c < e.nchunks; c++)
        td_loss_sums_add(&sums, &M->sums[c]);
    td_targets_finish(st, &sums, &e.denoms, tg);
}

void td_mlp_forward(td_mlp *M, td_pool *pool, float *logits, const float *params, const float *X,
                    const int64_t *rows, int64_t n)
{
    eval_ctx e = {.M = M, .params = params, .X = X, .rows = rows, .n = n, .logits_out = logits};
    split(&e);
    run_waves(&e, pool);
}

void td_mlp_backward(td_mlp *M, td_pool *pool, float *grad, const float *params, const float *X,
                     const int64_t *rows, int64_t n, const float *dout)
{
    eval_ctx e = {
        .M = M, .params = params, .X = X, .rows = rows, .n = n, .grad = grad, .dout = dout};
    split(&e);
    if (n == 0) memset(grad, 0, sizeof(float) * (size_t)M->P);
    run_waves(&e, pool);
}
