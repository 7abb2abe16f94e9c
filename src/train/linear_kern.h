/* linear_kern.h — the bodies of the softmax kernel's inner loops (linear_isa.h), included
 * by linear_isa.c once per instruction-set level with TD_KSUFFIX naming the level: under
 * `#pragma GCC target(...)` the same GCC vector-extension code becomes SSE2, AVX2 or
 * AVX-512 code, and __AVX512F__ selects the AVX-512 reductions. No include guard. */
#define TD_KN3(n, s) n##s
#define TD_KN2(n, s) TD_KN3(n, s)
#define TD_KN(n) TD_KN2(n, TD_KSUFFIX)
#define hsum TD_KN(hsum)
#define hsum_many TD_KN(hsum_many)
#define dots TD_KN(dots)
#define block_logits TD_KN(block_logits)
#define block_grad TD_KN(block_grad)
#define grad_tile TD_KN(grad_tile)
#define xent_block TD_KN(xent_block)
#define RB TD_LIN_RB

static inline float hsum(const v16 *pa) /* (a pointer: no vector ABI in generic code) */
{
    const v16 a = *pa;
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
static inline __attribute__((always_inline)) void hsum_many(float *out, const v16 *v, const int n)
{
#ifdef __AVX512F__
    const v16 z = {0};
    v16 c[8], e[4], g[2];
    for (int p = 0; p < 8; p++) { /* c[p]: v[2p]'s 8 pair sums, then v[2p+1]'s */
        v16 a = 2 * p < n ? v[2 * p] : z, b = 2 * p + 1 < n ? v[2 * p + 1] : z;
        c[p] =
            __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
            __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30,
                                    31);
    }
    for (int q = 0; q < 4; q++) /* e[q]: 4 sums each of v[4q .. 4q+3] */
        e[q] = __builtin_shufflevector(c[2 * q], c[2 * q + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18,
                                       19, 24, 25, 26, 27) +
            __builtin_shufflevector(c[2 * q], c[2 * q + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22,
                                    23, 28, 29, 30, 31);
    for (int r = 0; r < 2; r++) /* g[r]: 2 sums each of v[8r .. 8r+7] */
        g[r] = __builtin_shufflevector(e[2 * r], e[2 * r + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20,
                                       21, 24, 25, 28, 29) +
            __builtin_shufflevector(e[2 * r], e[2 * r + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22,
                                    23, 26, 27, 30, 31);
    v16 sum = __builtin_shufflevector(g[0], g[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                      28, 30) +
        __builtin_shufflevector(g[0], g[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29,
                                31);
    for (int m = 0; m < n; m++)
        out[m] = sum[m];
#else
    for (int m = 0; m < n; m++)
        out[m] = hsum(&v[m]);
#endif
}

/* out0 (nk), out1 (nk) = x0 . Wt[k], x1 . Wt[k] for the nk <= 8 classes whose transposed
 * weight rows start at Wt (row stride DP). Inlined with a constant nk, so the 2 * nk
 * accumulators live in registers and each weight vector loaded serves both rows. */
static inline __attribute__((always_inline)) void dots(float *out0, float *out1, const float *x0,
                                                       const float *x1, const float *Wt, int64_t DP,
                                                       int64_t D, const int nk)
{
    const int64_t DV = D / 16;
    v16 a[16]; /* a[k]: row 0's class k, a[nk + k]: row 1's */
    for (int k = 0; k < 2 * nk; k++)
        a[k] = (v16){0};
    for (int64_t v = 0; v < DV; v++) {
        const v16 p = *(const v16u *)(x0 + 16 * v), q = *(const v16u *)(x1 + 16 * v);
        for (int k = 0; k < nk; k++) {
            v16 w = *(const v16 *)(Wt + k * DP + 16 * v);
#ifdef __AVX512F__
            __asm__("" : "+v"(w)); /* one load for both rows, not a memory operand each */
#endif
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
static void block_logits(const td_lin_args *L, float *restrict logits, const float *const *x,
                         const float *const *next)
{
    const int64_t D = L->D, K = L->K, DP = L->DP;
    const int64_t ngroups = (K + 7) / 8, per = (K + ngroups - 1) / ngroups;
    for (int r = 0; r < RB; r += 2) {
        /* Prefetch two rows of the next block per pair of rows computed: spread out, so
         * the requests fit the memory system's queue instead of being dropped. Every
         * cache line (measured on W2: every other line, leaving the pair to the
         * adjacent-line prefetcher, was 18% slower an epoch), into L2 (prefetcht1: 7%
         * faster than into L1, whose few fill buffers the burst would hold up). */
        for (int i = r; i < r + 2; i++)
            if (next[i])
                for (int64_t off = 0; off < D; off += 16)
                    __builtin_prefetch(next[i] + off, 0, 2);
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

/* dWt[k0 .. k0+nk) (row stride DP) += dz^T X[block] for vectors v0, v0+1 of D (nv = 1
 * or 2 of them): the 2 nk <= 20 accumulators stay in registers through the block's rows,
 * so each x vector is loaded once for all nk classes and dWt once per block. Inlined
 * with constant nk and nv. Each element adds its rows in order (one FMA each). */
static inline __attribute__((always_inline)) void grad_tile(float *restrict dWt, int64_t DP,
                                                            const float *restrict dz, int64_t K,
                                                            int64_t k0, const float *const *x,
                                                            int64_t v0, const int nk, const int nv)
{
    v16 acc[20];
    for (int k = 0; k < nk; k++)
        for (int j = 0; j < nv; j++)
            acc[2 * k + j] = *(const v16 *)(dWt + (k0 + k) * DP + 16 * (v0 + j));
    for (int r = 0; r < RB; r++) {
        v16 xv[2];
        for (int j = 0; j < nv; j++)
            xv[j] = *(const v16u *)(x[r] + 16 * (v0 + j));
        const float *z = dz + r * K + k0;
        for (int k = 0; k < nk; k++)
            for (int j = 0; j < nv; j++)
                acc[2 * k + j] += z[k] * xv[j];
    }
    for (int k = 0; k < nk; k++)
        for (int j = 0; j < nv; j++)
            *(v16 *)(dWt + (k0 + k) * DP + 16 * (v0 + j)) = acc[2 * k + j];
}

/* dWt (K, DP) += dz^T X[block] (the gradient transposed: each class's row runs along D,
 * so the inner loop is whole vectors of x with no padding of K), db (K) += column sums
 * of dz; dz is (RB, K), zero in rows without data. Classes in groups of at most 10,
 * two vectors of D at a time (grad_tile). */
static void block_grad(const td_lin_args *L, float *restrict dWt, float *restrict db,
                       const float *restrict dz, const float *const *x)
{
    const int64_t D = L->D, K = L->K, DP = L->DP, DV = D / 16;
    const int64_t ngroups = (K + 9) / 10, per = (K + ngroups - 1) / ngroups;
    for (int64_t k0 = 0; k0 < K; k0 += per) {
        const int nk = (int)(K - k0 < per ? K - k0 : per);
        for (int64_t v = 0; v < DV; v += 2) {
            const int nv = DV - v >= 2 ? 2 : 1;
#define TILE(n)                                        \
    case n:                                            \
        if (nv == 2)                                   \
            grad_tile(dWt, DP, dz, K, k0, x, v, n, 2); \
        else                                           \
            grad_tile(dWt, DP, dz, K, k0, x, v, n, 1); \
        break;
            switch (nk) {
                TILE(1)
                TILE(2) TILE(3) TILE(4) TILE(5) TILE(6) TILE(7) TILE(8) TILE(9) default : TILE(10)
            }
#undef TILE
        }
    }
    for (int64_t k = 0; k < K; k++) {
        float t_db = 0;
        for (int r = 0; r < RB; r++)
            t_db += dz[r * K + k];
        for (int64_t t = DV * 16; t < D; t++) {
            float acc = 0;
            for (int r = 0; r < RB; r++)
                acc += dz[r * K + k] * x[r][t];
            dWt[k * DP + t] += acc;
        }
        db[k] += t_db;
    }
}

#ifdef __AVX512F__
/* td_lin_xent_fn with K <= 16: a row's logits are one vector. Per row as loss.c's
 * xent_row: m = max z, e = expf(z - m) (td_vexp16, bit-identical to expf), s = sum e in
 * double (here a tree over the lanes, not k order), loss -= (z_y - m) - log s (with one
 * log for the block: the log of the product of its rows' s, each in [1, K], K <= 16),
 * dz = (float)(scale * (e / s - onehot(y))); argmax accuracy as targets.c (the first
 * largest logit). */
static int xent_block(td_loss_sums *s, float *dz, const float *logits, const int32_t *y, int64_t nb,
                      int64_t K, int32_t ignore, float scale)
{
    const __mmask16 km = (__mmask16)((1u << K) - 1);
    for (int64_t r = 0; r < nb; r++) /* NaN or infinity: the general code */
        if (_mm512_mask_fpclass_ps_mask(km, _mm512_maskz_loadu_ps(km, logits + r * K), 0x99))
            return 0;
    const __m512d vscale = _mm512_set1_pd((double)scale);
    double loss = 0.0, prod = 1.0; /* loss = sum -(z_y - m) + log prod s (s in [1, 16]) */
    int64_t correct = 0, counted = 0;
    for (int64_t r = 0; r < nb; r++) {
        const float *z = logits + r * K;
        const __m512 zv = _mm512_maskz_loadu_ps(km, z);
        if (y[r] == ignore) {
            _mm512_mask_storeu_ps(dz + r * K, km, _mm512_setzero_ps());
            continue;
        }
        const float m = _mm512_mask_reduce_max_ps(km, zv);
        const __m512 x = _mm512_sub_ps(zv, _mm512_set1_ps(m));
        const __mmask16 in =
            _mm512_mask_cmp_ps_mask(km, x, _mm512_set1_ps(TD_VEXP_MIN), _CMP_GE_OQ); /* others: 0 */
        const __m512 e = _mm512_maskz_mov_ps(in, td_vexp16(x));
        const __m512d elo = _mm512_cvtps_pd(_mm512_castps512_ps256(e));
        const __m512d ehi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1));
        const double sum = _mm512_reduce_add_pd(_mm512_add_pd(elo, ehi));
        loss -= (double)z[y[r]] - m;
        prod *= sum;
        const __m512d inv = _mm512_set1_pd(1.0 / sum);
        const __mmask16 hot = (__mmask16)(1u << y[r]);
        const __m512d one = _mm512_set1_pd(1.0);
        __m512d glo = _mm512_mask_sub_pd(_mm512_mul_pd(elo, inv), (__mmask8)hot,
                                         _mm512_mul_pd(elo, inv), one);
        __m512d ghi = _mm512_mask_sub_pd(_mm512_mul_pd(ehi, inv), (__mmask8)(hot >> 8),
                                         _mm512_mul_pd(ehi, inv), one);
        __m256 gl = _mm512_cvtpd_ps(_mm512_mul_pd(glo, vscale));
        __m256 gh = _mm512_cvtpd_ps(_mm512_mul_pd(ghi, vscale));
        _mm512_mask_storeu_ps(dz + r * K, km,
                              _mm512_insertf32x8(_mm512_castps256_ps512(gl), gh, 1));
        const __mmask16 top = _mm512_mask_cmp_ps_mask(km, zv, _mm512_set1_ps(m), _CMP_EQ_OQ);
        counted++;
        correct += __builtin_ctz((unsigned)top) == y[r];
    }
    for (int64_t r = nb; r < RB; r++)
        _mm512_mask_storeu_ps(dz + r * K, km, _mm512_setzero_ps());
    s->loss_sum += loss + log(prod);
    s->correct += correct;
    s->counted += counted;
    return 1;
}
#define TD_KXENT xent_block
#else
#define TD_KXENT NULL
#endif

static const td_lin_kernels TD_KN(td_lin_kernels) = {block_logits, block_grad, TD_KXENT};
#undef TD_KXENT
#undef hsum
#undef hsum_many
#undef dots
#undef block_logits
#undef block_grad
#undef grad_tile
#undef xent_block
#undef RB
