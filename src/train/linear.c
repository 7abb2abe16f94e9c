/* linear.c — fused softmax-regression pass: logits, loss and gradient per block of rows.
 *
 * Why fused: with K around 10, the two sgemm calls of the textbook formulation are skinny
 * and memory-bound (each reads all of X). Here each block of RB rows is read once for the
 * logits and, while still in cache, again for the gradient, so an epoch costs about one
 * pass over X. Weights are padded to KP = 16*KV columns so the inner loops run on whole
 * 16-float vectors (GCC vector extensions: one AVX-512 register, two AVX2 registers).
 *
 * The loss of each block is computed by the loss code of loss.c (the "_sum" variants with
 * the batch's denominators), so training and /v1/loss share one implementation. */
#include "train/linear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
#define RB 16                  /* rows per block */
#define MIN_CHUNK 128          /* rows per chunk, at least */

typedef struct chunk {
    v16 *dW;                   /* (D, KV) partial gradient */
    v16 *db;                   /* (KV) */
    td_loss_sums sums;
    float *logits, *dlogits;   /* (RB, K) scratch */
    v16 *acc;                  /* (RB, KV) scratch: padded logits, then padded dlogits */
} chunk;

struct td_linear {
    int64_t D, K, KV;
    v16 *Wp;                   /* (D, KV) padded copy of W */
    v16 *bp;                   /* (KV) */
    float *zero_row;           /* (D) zeros, stands in for missing rows of a block */
    chunk chunks[TD_LINEAR_MAX_CHUNKS];
};

static void *vec_alloc(size_t nvec)
{
    void *p = aligned_alloc(64, (nvec ? nvec : 1) * sizeof(v16));
    if (p)
        memset(p, 0, (nvec ? nvec : 1) * sizeof(v16));
    return p;
}

td_linear *td_linear_create(int64_t D, int64_t K)
{
    td_linear *L = calloc(1, sizeof *L);
    if (!L)
        return NULL;
    L->D = D;
    L->K = K;
    L->KV = (K + 15) / 16;
    size_t dk = (size_t)(D * L->KV);
    int ok = (L->Wp = vec_alloc(dk)) && (L->bp = vec_alloc((size_t)L->KV)) &&
             (L->zero_row = calloc((size_t)D, sizeof(float)));
    for (int c = 0; ok && c < TD_LINEAR_MAX_CHUNKS; c++) {
        chunk *ch = &L->chunks[c];
        ok = (ch->dW = vec_alloc(dk)) && (ch->db = vec_alloc((size_t)L->KV)) &&
             (ch->logits = malloc(sizeof(float) * RB * (size_t)K)) &&
             (ch->dlogits = malloc(sizeof(float) * RB * (size_t)K)) &&
             (ch->acc = vec_alloc((size_t)(RB * L->KV)));
    }
    if (!ok) {
        td_linear_destroy(L);
        return NULL;
    }
    return L;
}

void td_linear_destroy(td_linear *L)
{
    if (!L)
        return;
    for (int c = 0; c < TD_LINEAR_MAX_CHUNKS; c++) {
        free(L->chunks[c].dW);
        free(L->chunks[c].db);
        free(L->chunks[c].logits);
        free(L->chunks[c].dlogits);
        free(L->chunks[c].acc);
    }
    free(L->Wp);
    free(L->bp);
    free(L->zero_row);
    free(L);
}

/* Copies W (D, K) and b (K) into the padded Wp (D, KV) and bp (KV). */
static void pack_weights(td_linear *L, const float *W, const float *b)
{
    float *wp = (float *)L->Wp, *bp = (float *)L->bp;
    int64_t KP = L->KV * 16;
    memset(wp, 0, sizeof(float) * (size_t)(L->D * KP));
    memset(bp, 0, sizeof(float) * (size_t)KP);
    for (int64_t d = 0; d < L->D; d++)
        memcpy(wp + d * KP, W + d * L->K, sizeof(float) * (size_t)L->K);
    if (b)
        memcpy(bp, b, sizeof(float) * (size_t)L->K);
}

typedef struct eval_ctx {
    td_linear *L;
    const float *X;
    const int64_t *rows;
    int64_t n, chunk_rows, nchunks;
    const td_targets *tg;
    int want_grad;
    float *logits_out;         /* forward only: (n, K) */
    td_batch_denoms denoms;
} eval_ctx;

static inline const float *row_ptr(const eval_ctx *e, int64_t i)
{
    if (i >= e->n)
        return e->L->zero_row;
    return e->X + (e->rows ? e->rows[i] : i) * e->L->D;
}

/* acc (RB, KV) = X[block] Wp + bp, four rows at a time. */
static void block_logits(const td_linear *L, v16 *restrict acc, const float *const *x)
{
    const int64_t D = L->D, KV = L->KV;
    for (int r = 0; r < RB; r += 4) {
        const float *x0 = x[r], *x1 = x[r + 1], *x2 = x[r + 2], *x3 = x[r + 3];
        for (int64_t kv = 0; kv < KV; kv++) {
            v16 a0 = L->bp[kv], a1 = a0, a2 = a0, a3 = a0;
            const v16 *w = L->Wp + kv;
            for (int64_t d = 0; d < D; d++, w += KV) {
                a0 += x0[d] * *w;
                a1 += x1[d] * *w;
                a2 += x2[d] * *w;
                a3 += x3[d] * *w;
            }
            acc[r * KV + kv] = a0;
            acc[(r + 1) * KV + kv] = a1;
            acc[(r + 2) * KV + kv] = a2;
            acc[(r + 3) * KV + kv] = a3;
        }
    }
}

/* dW (D, KV) += X[block]^T dz, db += column sums of dz; dz is (RB, KV). */
static void block_grad(const td_linear *L, v16 *restrict dW, v16 *restrict db,
                       const v16 *restrict dz, const float *const *x)
{
    const int64_t D = L->D, KV = L->KV;
    for (int r = 0; r < RB; r += 4) {
        const float *x0 = x[r], *x1 = x[r + 1], *x2 = x[r + 2], *x3 = x[r + 3];
        const v16 *z0 = dz + r * KV, *z1 = z0 + KV, *z2 = z1 + KV, *z3 = z2 + KV;
        for (int64_t d = 0; d < D; d++) {
            v16 *w = dW + d * KV;
            for (int64_t kv = 0; kv < KV; kv++)
                w[kv] += x0[d] * z0[kv] + x1[d] * z1[kv] + x2[d] * z2[kv] + x3[d] * z3[kv];
        }
        for (int64_t kv = 0; kv < KV; kv++)
            db[kv] += z0[kv] + z1[kv] + z2[kv] + z3[kv];
    }
}

static void eval_chunk(void *arg, int64_t c)
{
    const eval_ctx *e = arg;
    const td_linear *L = e->L;
    chunk *ch = &e->L->chunks[c];
    const int64_t K = L->K, KV = L->KV;
    int64_t lo = c * e->chunk_rows, hi = lo + e->chunk_rows < e->n ? lo + e->chunk_rows : e->n;
    memset(&ch->sums, 0, sizeof ch->sums);
    if (e->want_grad) {
        memset(ch->dW, 0, sizeof(v16) * (size_t)(L->D * KV));
        memset(ch->db, 0, sizeof(v16) * (size_t)KV);
    }
    const float *x[RB];
    for (int64_t first = lo; first < hi; first += RB) {
        int64_t nb = hi - first < RB ? hi - first : RB;
        for (int r = 0; r < RB; r++)
            x[r] = r < nb ? row_ptr(e, first + r) : L->zero_row;
        block_logits(L, ch->acc, x);
        float *logits = e->logits_out ? e->logits_out + first * K : ch->logits;
        for (int64_t r = 0; r < nb; r++)
            memcpy(logits + r * K, (const float *)(ch->acc + r * KV), sizeof(float) * (size_t)K);
        if (!e->tg)
            continue;
        td_targets_block(&ch->sums, e->want_grad ? ch->dlogits : NULL, logits, first, nb, K,
                         e->tg, &e->denoms);
        if (!e->want_grad)
            continue;
        memset(ch->acc, 0, sizeof(v16) * (size_t)(RB * KV));
        for (int64_t r = 0; r < nb; r++)
            memcpy((float *)(ch->acc + r * KV), ch->dlogits + r * K, sizeof(float) * (size_t)K);
        block_grad(L, ch->dW, ch->db, ch->acc, x);
    }
}

static void split(eval_ctx *e)
{
    int64_t per = (e->n + TD_LINEAR_MAX_CHUNKS - 1) / TD_LINEAR_MAX_CHUNKS;
    e->chunk_rows = per > MIN_CHUNK ? per : MIN_CHUNK;
    e->chunk_rows = (e->chunk_rows + RB - 1) / RB * RB;
    e->nchunks = (e->n + e->chunk_rows - 1) / e->chunk_rows;
}

void td_linear_eval(td_linear *L, td_pool *pool, td_batch_stats *st, float *dW, float *db,
                    const float *W, const float *b, const float *X, const int64_t *rows,
                    int64_t n, const td_targets *tg)
{
    eval_ctx e = {.L = L, .X = X, .rows = rows, .n = n, .tg = tg, .want_grad = dW != NULL};
    td_targets_denoms(&e.denoms, tg, n);
    split(&e);
    pack_weights(L, W, b);
    td_pool_run(pool, e.nchunks, eval_chunk, &e);

    /* Reduce the chunks in order. */
    td_loss_sums sums = {0};
    for (int64_t c = 0; c < e.nchunks; c++) {
        const chunk *ch = &L->chunks[c];
        td_loss_sums_add(&sums, &ch->sums);
        if (c > 0 && dW) {
            v16 *dst = L->chunks[0].dW;
            for (int64_t i = 0; i < L->D * L->KV; i++)
                dst[i] += ch->dW[i];
            for (int64_t i = 0; i < L->KV; i++)
                L->chunks[0].db[i] += ch->db[i];
        }
    }
    td_targets_finish(st, &sums, &e.denoms, tg);
    if (dW) {
        const float *g = (const float *)L->chunks[0].dW;
        int64_t KP = L->KV * 16;
        for (int64_t d = 0; d < L->D; d++)
            memcpy(dW + d * L->K, g + d * KP, sizeof(float) * (size_t)L->K);
        if (db)
            memcpy(db, L->chunks[0].db, sizeof(float) * (size_t)L->K);
    }
}

void td_linear_forward(td_linear *L, td_pool *pool, float *logits, const float *W,
                       const float *b, const float *X, const int64_t *rows, int64_t n)
{
    eval_ctx e = {.L = L, .X = X, .rows = rows, .n = n, .logits_out = logits};
    split(&e);
    pack_weights(L, W, b);
    td_pool_run(pool, e.nchunks, eval_chunk, &e);
}
