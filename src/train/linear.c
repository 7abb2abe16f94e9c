/* linear.c — fused softmax-regression pass: logits, loss and gradient per block of rows.
 *
 * Why fused: with K around 10, the two sgemm calls of the textbook formulation are skinny
 * and memory-bound (each reads all of X). Here each block of RB rows is read once for the
 * logits and, while still in cache, again for the gradient, so an epoch costs about one
 * pass over X. Weights are padded to KP = 16*KV columns so the inner loops run on whole
 * 16-float vectors (GCC vector extensions: one AVX-512 register, two AVX2 registers).
 * The inner loops are in linear_kern.h, one variant per instruction set (linear_isa.h,
 * math/isa.h); this file splits the work and reduces it.
 *
 * The loss of each block is computed by the loss code of loss.c (the "_sum" variants with
 * the batch's denominators), so training and /v1/loss share one implementation; the one
 * exception is the common case of plain class indices with K <= 16 at the AVX-512 level,
 * whose cross entropy is one vector per row (xent_block, linear_kern.h: the same
 * formulas, with the sum of a row's exponentials taken as a tree). */
#include "train/linear.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/linear_isa.h"

typedef float v16 __attribute__((vector_size(64)));
#define RB TD_LIN_RB           /* rows per block */
#define MIN_CHUNK 128          /* rows per chunk, at least */
#define SLOTS_SMALL (1u << 20) /* bytes of slots always allowed (see slots_for) */

/* A slot is the working set of one chunk in flight: a thread reuses it for the chunks it
 * runs, so memory grows with the threads, not with the chunks. Slot 0's dWt/db also hold
 * the reduced gradient (chunk 0's partial, then the running sum). */
typedef struct slot {
    float *dWt;              /* (K, DP) partial gradient, transposed; NULL without grad */
    float *db;               /* (K) */
    float *logits, *dlogits; /* (RB, K) scratch */
    v16 *acc;                /* (RB, KV) scratch: padded logits, then padded dlogits */
} slot;

struct td_linear {
    int64_t D, K, KV, DP; /* DP = D rounded up to 16 */
    float *Wt;            /* (K, DP) transposed copy of W, zero-padded */
    float *b;             /* (K) bias, zeros without one */
    float *zero_row;      /* (D) zeros, stands in for missing rows of a block */
    int with_grad;
    int nslots;                       /* slots allocated, >= 1; >= 2 when max_rows needs chunks */
    slot slots[TD_LINEAR_MAX_CHUNKS]; /* at most one per chunk */
    td_loss_sums sums[TD_LINEAR_MAX_CHUNKS]; /* per chunk, reduced in chunk order */
};

static void *vec_alloc(size_t nvec)
{
    void *p = aligned_alloc(64, (nvec ? nvec : 1) * sizeof(v16));
    if (p) memset(p, 0, (nvec ? nvec : 1) * sizeof(v16));
    return p;
}

/* Chunks of n rows: at most TD_LINEAR_MAX_CHUNKS, each at least MIN_CHUNK rows and a
 * whole number of blocks. Depends on n only. */
static int64_t chunk_rows_for(int64_t n)
{
    int64_t per = (n + TD_LINEAR_MAX_CHUNKS - 1) / TD_LINEAR_MAX_CHUNKS;
    per = per > MIN_CHUNK ? per : MIN_CHUNK;
    return (per + RB - 1) / RB * RB;
}

static int64_t nchunks_for(int64_t n)
{
    int64_t rows = chunk_rows_for(n);
    return (n + rows - 1) / rows;
}

static size_t slot_bytes(int64_t K, int64_t KV, int64_t DP, int with_grad)
{
    size_t b = 2 * sizeof(float) * RB * (size_t)K + sizeof(v16) * (size_t)(RB * KV);
    if (with_grad) b += sizeof(float) * (size_t)(K * DP) + sizeof(float) * (size_t)K;
    return b;
}

/* Slots for `threads` threads over batches of at most max_rows rows: one per chunk in
 * flight plus the accumulator, or as many as SLOTS_SMALL bytes hold when that is more
 * (a small model then runs every chunk in one wave, as fast as ever), never more than
 * there are chunks. */
static int slots_for(int64_t max_rows, int threads, size_t bytes)
{
    int64_t c = nchunks_for(max_rows > 0 ? max_rows : 1);
    int64_t s = (threads > 1 ? threads : 1) + 1, small = (int64_t)(SLOTS_SMALL / bytes);
    s = s > small ? s : small;
    return (int)(c < s ? c : s);
}

size_t td_linear_bytes(int64_t D, int64_t K, int with_grad, int64_t max_rows, int threads)
{
    int64_t KV = (K + 15) / 16, DP = (D + 15) / 16 * 16;
    return sizeof(struct td_linear) + sizeof(float) * (size_t)(K * DP + K + D) +
        (size_t)slots_for(max_rows, threads, slot_bytes(K, KV, DP, with_grad)) *
        slot_bytes(K, KV, DP, with_grad);
}

static int slot_alloc(td_linear *L, slot *sl)
{
    const int64_t K = L->K;
    return (!L->with_grad ||
            ((sl->dWt = vec_alloc((size_t)(K * L->DP / 16))) &&
             (sl->db = calloc((size_t)K, sizeof(float))))) &&
        (sl->logits = malloc(sizeof(float) * RB * (size_t)K)) &&
        (sl->dlogits = malloc(sizeof(float) * RB * (size_t)K)) &&
        (sl->acc = vec_alloc((size_t)(RB * L->KV)));
}

static void slot_free(slot *sl)
{
    free(sl->dWt);
    free(sl->db);
    free(sl->logits);
    free(sl->dlogits);
    free(sl->acc);
    memset(sl, 0, sizeof *sl);
}

int td_linear_reserve(td_linear *L, int64_t max_rows, int threads)
{
    int want = slots_for(max_rows, threads, slot_bytes(L->K, L->KV, L->DP, L->with_grad));
    while (L->nslots < want) {
        if (!slot_alloc(L, &L->slots[L->nslots])) {
            slot_free(&L->slots[L->nslots]);
            return -1;
        }
        L->nslots++;
    }
    return 0;
}

td_linear *td_linear_create(int64_t D, int64_t K, int with_grad, int64_t max_rows)
{
    td_linear *L = calloc(1, sizeof *L);
    if (!L) return NULL;
    L->D = D;
    L->K = K;
    L->KV = (K + 15) / 16;
    L->DP = (D + 15) / 16 * 16;
    L->with_grad = with_grad;
    int ok = (L->Wt = vec_alloc((size_t)(K * L->DP / 16))) &&
        (L->b = calloc((size_t)K, sizeof(float))) &&
        (L->zero_row = calloc((size_t)D, sizeof(float)));
    if (!ok || td_linear_reserve(L, max_rows, 1)) { /* the slots of one thread */
        td_linear_destroy(L);
        return NULL;
    }
    return L;
}

void td_linear_destroy(td_linear *L)
{
    if (!L) return;
    for (int s = 0; s < L->nslots; s++)
        slot_free(&L->slots[s]);
    free(L->Wt);
    free(L->b);
    free(L->zero_row);
    free(L);
}

/* Copies W (D, K) into the transposed Wt (K, DP) and b (K) (zeros when NULL). */
static void pack_weights(td_linear *L, const float *W, const float *b)
{
    for (int64_t k = 0; k < L->K; k++)
        for (int64_t d = 0; d < L->D; d++)
            L->Wt[k * L->DP + d] = W[d * L->K + k];
    for (int64_t k = 0; k < L->K; k++)
        L->b[k] = b ? b[k] : 0.0f;
}

typedef struct eval_ctx {
    td_linear *L;
    const float *X;
    const int64_t *rows;
    int64_t n, chunk_rows, nchunks;
    int64_t base; /* first chunk of the current wave */
    const td_targets *tg;
    const td_lin_kernels *kern; /* td_isa()'s inner loops (linear_isa.h) */
    int xent;                   /* tg is plain class indices and kern has an xent */
    int want_grad;
    float *logits_out; /* forward only: (n, K) */
    td_batch_denoms denoms;
} eval_ctx;

static inline const float *row_ptr(const eval_ctx *e, int64_t i)
{
    if (i >= e->n) return e->L->zero_row;
    return e->X + (e->rows ? e->rows[i] : i) * e->L->D;
}

/* Task t of a wave: chunk base + t, in slot t of the first wave (chunk 0 in slot 0, the
 * accumulator) and slot t + 1 of the later ones. */
static void eval_chunk(void *arg, int64_t t)
{
    const eval_ctx *e = arg;
    const td_linear *L = e->L;
    const int64_t c = e->base + t;
    slot *ch = &e->L->slots[e->base == 0 ? t : t + 1];
    td_loss_sums *sums = &e->L->sums[c];
    const int64_t K = L->K;
    int64_t lo = c * e->chunk_rows, hi = lo + e->chunk_rows < e->n ? lo + e->chunk_rows : e->n;
    memset(sums, 0, sizeof *sums);
    if (e->want_grad) {
        memset(ch->dWt, 0, sizeof(float) * (size_t)(K * L->DP));
        memset(ch->db, 0, sizeof(float) * (size_t)K);
    }
    const td_lin_args args = {L->D, K, L->DP, L->Wt, L->b};
    const float xscale = e->denoms.denom > 0 ? (float)(1.0 / e->denoms.denom) : 0.0f;
    const float *x[RB];
    if (e->rows) /* scattered rows: the first block's are requested together */
        for (int64_t i = lo; i < lo + RB && i < hi; i++)
            for (int64_t off = 0; off < L->D; off += 16)
                __builtin_prefetch(row_ptr(e, i) + off, 0, 2);
    for (int64_t first = lo; first < hi; first += RB) {
        int64_t nb = hi - first < RB ? hi - first : RB;
        for (int r = 0; r < RB; r++)
            x[r] = r < nb ? row_ptr(e, first + r) : L->zero_row;
        /* The next block's rows, fetched while this one computes: scattered rows (a
         * mini-batch); consecutive rows are requested two blocks ahead below, as one
         * range. */
        const float *next[RB];
        for (int r = 0; r < RB; r++)
            next[r] = e->rows && first + RB + r < hi ? row_ptr(e, first + RB + r) : NULL;
        if (!e->rows && first + 2 * RB < hi) { /* consecutive rows: two blocks ahead, every
                                                 line (the streamer stops at each page) */
            const char *ahead = (const char *)(e->X + (first + 2 * RB) * L->D);
            for (size_t off = 0; off < sizeof(float) * (size_t)(RB * L->D); off += 64)
                __builtin_prefetch(ahead + off);
        }
        e->kern->logits(&args, ch->logits, x, next);
        float *logits = ch->logits;
        if (e->logits_out) {
            logits = e->logits_out + first * K;
            memcpy(logits, ch->logits, sizeof(float) * (size_t)(nb * K));
        }
        if (!e->tg) continue;
        if (!e->xent ||
            !e->kern->xent(sums, ch->dlogits, logits, e->tg->y + first, nb, K,
                           e->tg->ce.ignore_index, xscale))
            td_targets_block(sums, e->want_grad ? ch->dlogits : NULL, logits, first, nb, K, e->tg,
                             &e->denoms);
        if (!e->want_grad) continue;
        if (nb < RB) memset(ch->dlogits + nb * K, 0, sizeof(float) * (size_t)((RB - nb) * K));
        e->kern->grad(&args, ch->dWt, ch->db, ch->dlogits, x);
    }
}

static void split(eval_ctx *e)
{
    e->chunk_rows = chunk_rows_for(e->n);
    e->nchunks = (e->n + e->chunk_rows - 1) / e->chunk_rows;
}

/* Runs every chunk in waves of as many chunks as there are threads (and slots for them);
 * after each wave the partial gradients of its chunks are added to slot 0 in chunk order,
 * so the sum is slot0 = ((g0 + g1) + g2) + ... whatever the wave width. */
static void run_waves(eval_ctx *e, td_pool *pool)
{
    td_linear *L = e->L;
    int64_t width = td_pool_threads(pool);
    if (width > L->nslots - 1) width = L->nslots - 1;
    assert(e->nchunks <= L->nslots || L->nslots >= 2); /* n <= max_rows of create */
    if (e->nchunks <= L->nslots)                       /* every chunk has a slot: one wave */
        width = e->nchunks;
    const int64_t G = L->K * L->DP;
    for (e->base = 0; e->base < e->nchunks;) {
        int64_t n = e->nchunks - e->base < width ? e->nchunks - e->base : width;
        td_pool_run(pool, n, eval_chunk, e);
        for (int64_t t = 0; e->want_grad && t < n; t++) {
            if (e->base + t == 0) continue;
            const slot *ch = &L->slots[e->base == 0 ? t : t + 1];
            float *dst = L->slots[0].dWt;
            for (int64_t i = 0; i < G; i++)
                dst[i] += ch->dWt[i];
            for (int64_t i = 0; i < L->K; i++)
                L->slots[0].db[i] += ch->db[i];
        }
        e->base += n;
    }
}

void td_linear_eval(td_linear *L, td_pool *pool, td_batch_stats *st, float *dW, float *db,
                    const float *W, const float *b, const float *X, const int64_t *rows, int64_t n,
                    const td_targets *tg)
{
    eval_ctx e = {.L = L,
                  .X = X,
                  .rows = rows,
                  .n = n,
                  .tg = tg,
                  .want_grad = dW != NULL,
                  .kern = td_lin_kernels_get()};
    e.xent = e.kern->xent && tg->G == 1 && tg->y && !tg->Y && !tg->ce.class_weights &&
        tg->ce.label_smoothing == 0.0 && L->K <= 16;
    td_targets_denoms(&e.denoms, tg, n);
    split(&e);
    pack_weights(L, W, b);
    run_waves(&e, pool);

    /* Reduce the chunks' loss sums in order (the gradients were, wave by wave). */
    td_loss_sums sums = {0};
    for (int64_t c = 0; c < e.nchunks; c++)
        td_loss_sums_add(&sums, &L->sums[c]);
    td_targets_finish(st, &sums, &e.denoms, tg);
    if (dW) {
        const float *g = L->slots[0].dWt;
        for (int64_t d = 0; d < L->D; d++)
            for (int64_t k = 0; k < L->K; k++)
                dW[d * L->K + k] = g[k * L->DP + d];
        if (db) memcpy(db, L->slots[0].db, sizeof(float) * (size_t)L->K);
    }
}

void td_linear_forward(td_linear *L, td_pool *pool, float *logits, const float *W, const float *b,
                       const float *X, const int64_t *rows, int64_t n)
{
    eval_ctx e = {
        .L = L, .X = X, .rows = rows, .n = n, .logits_out = logits, .kern = td_lin_kernels_get()};
    split(&e);
    pack_weights(L, W, b);
    run_waves(&e, pool);
}
