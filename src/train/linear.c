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

#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4))); /* unaligned access */
#define RB 16                  /* rows per block */
#define MIN_CHUNK 128          /* rows per chunk, at least */
#define SLOTS_SMALL (1u << 20) /* bytes of slots always allowed (see slots_for) */

/* A slot is the working set of one chunk in flight: a thread reuses it for the chunks it
 * runs, so memory grows with the threads, not with the chunks. Slot 0's dWt/db also hold
 * the reduced gradient (chunk 0's partial, then the running sum). */
typedef struct slot {
    float *dWt;                /* (K, DP) partial gradient, transposed; NULL without grad */
    float *db;                 /* (K) */
    float *logits, *dlogits;   /* (RB, K) scratch */
    v16 *acc;                  /* (RB, KV) scratch: padded logits, then padded dlogits */
} slot;

struct td_linear {
    int64_t D, K, KV, DP;      /* DP = D rounded up to 16 */
    float *Wt;                 /* (K, DP) transposed copy of W, zero-padded */
    float *b;                  /* (K) bias, zeros without one */
    float *zero_row;           /* (D) zeros, stands in for missing rows of a block */
    int with_grad;
    int nslots;                /* slots allocated, >= 1; >= 2 when max_rows needs chunks */
    slot slots[TD_LINEAR_MAX_CHUNKS];  /* at most one per chunk */
    td_loss_sums sums[TD_LINEAR_MAX_CHUNKS]; /* per chunk, reduced in chunk order */
};

static void *vec_alloc(size_t nvec)
{
    void *p = aligned_alloc(64, (nvec ? nvec : 1) * sizeof(v16));
    if (p)
        memset(p, 0, (nvec ? nvec : 1) * sizeof(v16));
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
    if (with_grad)
        b += sizeof(float) * (size_t)(K * DP) + sizeof(float) * (size_t)K;
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
    return (!L->with_grad || ((sl->dWt = vec_alloc((size_t)(K * L->DP / 16))) &&
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
    if (!L)
        return NULL;
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
    if (!L)
        return;
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
    int64_t base;              /* first chunk of the current wave */
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

static inline float hsum(v16 a)
{
#ifdef __AVX512F__
    return _mm512_reduce_add_ps((__m512)a);
#else
    typedef float v8 __attribute__((vector_size(32)));
    v8 h = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
           __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
    float s = 0;
    for (int i = 0; i < 8; i++)
        s += h[i];
    return s;
#endif
}

/* out[m] = hsum(v[m]) for the n <= 16 vectors v, bit for bit: with AVX-512 the same
 * pairings as _mm512_reduce_add_ps (lanes i + i+8, then i + i+4, i + i^2, i + i^1),
 * done for all n at once as a tree of two-source shuffles: about 15 vector adds instead
 * of n horizontal sums of 4 adds and 4 shuffles each. */
static inline __attribute__((always_inline)) void hsum_many(float *out, const v16 *v,
                                                            const int n)
{
#ifdef __AVX512F__
    const v16 z = {0};
    v16 c[8], e[4], g[2];
    for (int p = 0; p < 8; p++) { /* c[p]: v[2p]'s 8 pair sums, then v[2p+1]'s */
        v16 a = 2 * p < n ? v[2 * p] : z, b = 2 * p + 1 < n ? v[2 * p + 1] : z;
        c[p] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21,
                                       22, 23) +
               __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28,
                                       29, 30, 31);
    }
    for (int q = 0; q < 4; q++) /* e[q]: 4 sums each of v[4q .. 4q+3] */
        e[q] = __builtin_shufflevector(c[2 * q], c[2 * q + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16,
                                       17, 18, 19, 24, 25, 26, 27) +
               __builtin_shufflevector(c[2 * q], c[2 * q + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20,
                                       21, 22, 23, 28, 29, 30, 31);
    for (int r = 0; r < 2; r++) /* g[r]: 2 sums each of v[8r .. 8r+7] */
        g[r] = __builtin_shufflevector(e[2 * r], e[2 * r + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16,
                                       17, 20, 21, 24, 25, 28, 29) +
               __builtin_shufflevector(e[2 * r], e[2 * r + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18,
                                       19, 22, 23, 26, 27, 30, 31);
    v16 sum = __builtin_shufflevector(g[0], g[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
                                      24, 26, 28, 30) +
              __builtin_shufflevector(g[0], g[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23,
                                      25, 27, 29, 31);
    for (int m = 0; m < n; m++)
        out[m] = sum[m];
#else
    for (int m = 0; m < n; m++)
        out[m] = hsum(v[m]);
#endif
}

/* out0 (nk), out1 (nk) = x0 . Wt[k], x1 . Wt[k] for the nk <= 8 classes whose transposed
 * weight rows start at Wt (row stride DP). Inlined with a constant nk, so the 2 * nk
 * accumulators live in registers and each weight vector loaded serves both rows. */
static inline __attribute__((always_inline)) void dots(float *out0, float *out1,
                                                       const float *x0, const float *x1,
                                                       const float *Wt, int64_t DP,
                                                       int64_t D, const int nk)
{
    const int64_t DV = D / 16;
    v16 a[16]; /* a[k]: row 0's class k, a[nk + k]: row 1's */
    for (int k = 0; k < 2 * nk; k++)
        a[k] = (v16){0};
    for (int64_t v = 0; v < DV; v++) {
        const v16 p = *(const v16u *)(x0 + 16 * v), q = *(const v16u *)(x1 + 16 * v);
        for (int k = 0; k < nk; k++) {
            const v16 w = *(const v16 *)(Wt + k * DP + 16 * v);
            a[k] += p * w;
            a[nk + k] += q * w;
        }
    }
    float h[16];
    hsum_many(h, a, 2 * nk);
    for (int k = 0; k < nk; k++) {
        float s0 = h[k], s1 = h[nk + k];
        for (int64_t t = DV * 16; t < D; t++) {
            s0 += x0[t] * Wt[k * DP + t];
            s1 += x1[t] * Wt[k * DP + t];
        }
        out0[k] = s0;
        out1[k] = s1;
    }
}

/* logits (RB, K) = X[block] W + b, from the transposed weights Wt (K, DP), two rows at a
 * time, the classes in groups of at most 8. */
static void block_logits(const td_linear *L, float *restrict logits, const float *const *x,
                         const float *const *next)
{
    const int64_t D = L->D, K = L->K, DP = L->DP;
    const int64_t ngroups = (K + 7) / 8, per = (K + ngroups - 1) / ngroups;
    for (int r = 0; r < RB; r += 2) {
        /* Prefetch two rows of the next block per pair of rows computed: spread out, so
         * the requests fit the memory system's queue instead of being dropped. Every
         * other cache line: the adjacent-line prefetcher brings its pair, and a prefetch
         * waiting for a free fill buffer stalls the loop. */
        for (int i = r; i < r + 2; i++)
            if (next[i])
                for (int64_t off = 0; off < D; off += 32)
                    __builtin_prefetch(next[i] + off);
        float *o0 = logits + r * K, *o1 = o0 + K;
        for (int64_t k0 = 0; k0 < K; k0 += per) {
            const int nk = (int)(K - k0 < per ? K - k0 : per);
            const float *W = L->Wt + k0 * DP;
            switch (nk) {
            case 1: dots(o0 + k0, o1 + k0, x[r], x[r + 1], W, DP, D, 1); break;
            case 2: dots(o0 + k0, o1 + k0, x[r], x[r + 1], W, DP, D, 2); break;
            case 3: dots(o0 + k0, o1 + k0, x[r], x[r + 1], W, DP, D, 3); break;
            case 4: dots(o0 + k0, o1 + k0, x[r], x[r + 1], W, DP, D, 4); break;
            case 5: dots(o0 + k0, o1 + k0, x[r], x[r + 1], W, DP, D, 5); break;
            case 6: dots(o0 + k0, o1 + k0, x[r], x[r + 1], W, DP, D, 6); break;
            case 7: dots(o0 + k0, o1 + k0, x[r], x[r + 1], W, DP, D, 7); break;
            default: dots(o0 + k0, o1 + k0, x[r], x[r + 1], W, DP, D, 8); break;
            }
        }
        for (int64_t k = 0; k < K; k++) {
            o0[k] += L->b[k];
            o1[k] += L->b[k];
        }
    }
}

/* dWt (K, DP) += dz^T X[block] (the gradient transposed: each class's row runs along D,
 * so the inner loop is whole vectors of x with no padding of K), db (K) += column sums
 * of dz; dz is (RB, K), zero in rows without data. Four rows per pass over dWt. */
static void block_grad(const td_linear *L, float *restrict dWt, float *restrict db,
                       const float *restrict dz, const float *const *x)
{
    const int64_t D = L->D, K = L->K, DP = L->DP, DV = D / 16;
    for (int r = 0; r < RB; r += 8) {
        const float *const *xr = x + r;
        const float *z = dz + r * K;
        for (int64_t k = 0; k < K; k++) {
            float a[8];
            for (int i = 0; i < 8; i++)
                a[i] = z[i * K + k];
            v16 *w = (v16 *)(dWt + k * DP);
            for (int64_t v = 0; v < DV; v++) {
                v16 s0 = a[0] * *(const v16u *)(xr[0] + 16 * v) + a[1] * *(const v16u *)(xr[1] + 16 * v);
                v16 s1 = a[2] * *(const v16u *)(xr[2] + 16 * v) + a[3] * *(const v16u *)(xr[3] + 16 * v);
                v16 s2 = a[4] * *(const v16u *)(xr[4] + 16 * v) + a[5] * *(const v16u *)(xr[5] + 16 * v);
                v16 s3 = a[6] * *(const v16u *)(xr[6] + 16 * v) + a[7] * *(const v16u *)(xr[7] + 16 * v);
                w[v] += (s0 + s1) + (s2 + s3);
            }
            float t_db = 0;
            for (int i = 0; i < 8; i++)
                t_db += a[i];
            for (int64_t t = DV * 16; t < D; t++) {
                float acc = 0;
                for (int i = 0; i < 8; i++)
                    acc += a[i] * xr[i][t];
                dWt[k * DP + t] += acc;
            }
            db[k] += t_db;
        }
    }
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
    const float *x[RB];
    if (e->rows) /* scattered rows: the first block's are requested together */
        for (int64_t i = lo; i < lo + RB && i < hi; i++)
            for (int64_t off = 0; off < L->D; off += 32)
                __builtin_prefetch(row_ptr(e, i) + off);
    for (int64_t first = lo; first < hi; first += RB) {
        int64_t nb = hi - first < RB ? hi - first : RB;
        for (int r = 0; r < RB; r++)
            x[r] = r < nb ? row_ptr(e, first + r) : L->zero_row;
        /* The next block's rows, fetched while this one computes: scattered rows (a
         * mini-batch) only; consecutive rows stream in by the hardware prefetcher, and
         * prefetching them too only queues up behind it. */
        const float *next[RB];
        for (int r = 0; r < RB; r++)
            next[r] = e->rows && first + RB + r < hi ? row_ptr(e, first + RB + r) : NULL;
        block_logits(L, ch->logits, x, next);
        float *logits = ch->logits;
        if (e->logits_out) {
            logits = e->logits_out + first * K;
            memcpy(logits, ch->logits, sizeof(float) * (size_t)(nb * K));
        }
        if (!e->tg)
            continue;
        td_targets_block(sums, e->want_grad ? ch->dlogits : NULL, logits, first, nb, K,
                         e->tg, &e->denoms);
        if (!e->want_grad)
            continue;
        if (nb < RB)
            memset(ch->dlogits + nb * K, 0, sizeof(float) * (size_t)((RB - nb) * K));
        block_grad(L, ch->dWt, ch->db, ch->dlogits, x);
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
    if (width > L->nslots - 1)
        width = L->nslots - 1;
    assert(e->nchunks <= L->nslots || L->nslots >= 2); /* n <= max_rows of create */
    if (e->nchunks <= L->nslots) /* every chunk has a slot: one wave */
        width = e->nchunks;
    const int64_t G = L->K * L->DP;
    for (e->base = 0; e->base < e->nchunks;) {
        int64_t n = e->nchunks - e->base < width ? e->nchunks - e->base : width;
        td_pool_run(pool, n, eval_chunk, e);
        for (int64_t t = 0; e->want_grad && t < n; t++) {
            if (e->base + t == 0)
                continue;
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
                    const float *W, const float *b, const float *X, const int64_t *rows,
                    int64_t n, const td_targets *tg)
{
    eval_ctx e = {.L = L, .X = X, .rows = rows, .n = n, .tg = tg, .want_grad = dW != NULL};
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
        if (db)
            memcpy(db, L->slots[0].db, sizeof(float) * (size_t)L->K);
    }
}

void td_linear_forward(td_linear *L, td_pool *pool, float *logits, const float *W,
                       const float *b, const float *X, const int64_t *rows, int64_t n)
{
    eval_ctx e = {.L = L, .X = X, .rows = rows, .n = n, .logits_out = logits};
    split(&e);
    pack_weights(L, W, b);
    run_waves(&e, pool);
}
