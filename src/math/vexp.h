/* vexp.h — expf on 4 or 16 floats at once, bit-identical to glibc's expf.
 *
 * glibc (2.28 on) computes expf(x) in double: k = round(x * 32/ln2), r = x * 32/ln2 - k,
 * 2^(k/32) from a 32-entry table and a cubic in r, rounded once to float; on a CPU with
 * FMA (every CPU with AVX2) its FMA build (__expf_fma) contracts r and the polynomial.
 * td_vexp4 (AVX2 + FMA) and td_vexp16 (AVX-512) do the same operations in the same order
 * on 4 or 16 lanes, so the training losses are unchanged bit for bit while the
 * exponentials of a row cost a few vector instructions instead of a call each. Checked on
 * every float of [-103.97, 0] against this host's expf (the range the softmax uses:
 * z - max z <= 0). Outside it (underflow to 0, NaN, x > 0) the caller takes expf.
 * The build's baseline is plain x86-64 (math/isa.h): both carry their instruction set as
 * a target attribute and may only be called from code of that level or higher, after
 * td_isa() said so. TD_HAVE_VEXP is 1 where they exist (GCC on x86-64). */
#ifndef TRAIND_MATH_VEXP_H
#define TRAIND_MATH_VEXP_H

#include <stdint.h>

#include "math/isa.h"

#if TD_ISA_MULTI
#include <immintrin.h>
#define TD_HAVE_VEXP 1
#define TD_VEXP_MIN (-0x1.9fe368p6f) /* below: expf underflows to 0 */

/* 2^(i/32) as double bits, minus i << 47 (glibc's __exp2f_data.tab) */
static const uint64_t td_vexp_tab[32] __attribute__((aligned(64))) = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540};

/* The steps both widths share, written once for the intrinsics of prefix P (_mm256,
 * _mm512) and in the same order as glibc:
 *   TD_VEXP_REDUCE: kd = round(x 32/ln2) (its low bits in ki), r = x 32/ln2 - kd
 *   TD_VEXP_POLY:   (1 + c1 r + (c2 + c3 r) r^2) * t, t = 2^(k/32) as double bits. */
#define TD_VEXP_REDUCE(P, CASTPD_SI, xd, kd, ki, r)                             \
    do {                                                                        \
        kd = P##_add_pd(P##_mul_pd(P##_set1_pd(0x1.71547652b82fep+0 * 32), xd), \
                        P##_set1_pd(0x1.8p+52)); /* round to int */             \
        ki = CASTPD_SI(kd);                                                     \
        kd = P##_sub_pd(kd, P##_set1_pd(0x1.8p+52));                            \
        r = P##_fmsub_pd(P##_set1_pd(0x1.71547652b82fep+0 * 32), xd, kd);       \
    } while (0)
#define TD_VEXP_POLY(P, CASTSI_PD, r, t)                                                         \
    P##_mul_pd(                                                                                  \
        P##_fmadd_pd(P##_fmadd_pd(P##_set1_pd(0x1.c6af84b912394p-5 / 32 / 32 / 32), r,           \
                                  P##_set1_pd(0x1.ebfce50fac4f3p-3 / 32 / 32)),                  \
                     P##_mul_pd(r, r),                                                           \
                     P##_fmadd_pd(P##_set1_pd(0x1.62e42ff0c52d6p-1 / 32), r, P##_set1_pd(1.0))), \
        CASTSI_PD(t))

/* expf of each lane of x, for lanes in [TD_VEXP_MIN, 0] (others: undefined). */
__attribute__((target("avx2,fma"))) static inline __m128 td_vexp4(__m128 x)
{
    __m256d xd = _mm256_cvtps_pd(x), kd, r;
    __m256i ki;
    TD_VEXP_REDUCE(_mm256, _mm256_castpd_si256, xd, kd, ki, r);
    __m256i t = _mm256_i64gather_epi64((const long long *)td_vexp_tab,
                                       _mm256_and_si256(ki, _mm256_set1_epi64x(31)), 8);
    t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
    return _mm256_cvtpd_ps(TD_VEXP_POLY(_mm256, _mm256_castsi256_pd, r, t));
}

/* The same on eight lanes of double (the value as td_vexp4 has it before its rounding to
 * float); the table lookup is two in-register permutes instead of a gather. */
__attribute__((target(TD_TARGET_AVX512))) static inline __m512d td_vexp8d(__m512d xd)
{
    __m512d kd, r;
    __m512i ki;
    TD_VEXP_REDUCE(_mm512, _mm512_castpd_si512, xd, kd, ki, r);
    const __m512i *tab = (const __m512i *)td_vexp_tab;
    __m512i lo = _mm512_permutex2var_epi64(tab[0], ki, tab[1]); /* entries ki & 15 */
    __m512i hi = _mm512_permutex2var_epi64(tab[2], ki, tab[3]);
    __mmask8 upper = _mm512_test_epi64_mask(ki, _mm512_set1_epi64(16));
    __m512i t = _mm512_mask_blend_epi64(upper, lo, hi);
    t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
    return TD_VEXP_POLY(_mm512, _mm512_castsi512_pd, r, t);
}

/* expf of each lane of x, for lanes in [TD_VEXP_MIN, 0] (others: undefined). */
__attribute__((target(TD_TARGET_AVX512))) static inline __m512 td_vexp16(__m512 x)
{
    __m256 lo = _mm512_cvtpd_ps(td_vexp8d(_mm512_cvtps_pd(_mm512_castps512_ps256(x))));
    __m256 hi = _mm512_cvtpd_ps(td_vexp8d(_mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1))));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}
#else
#define TD_HAVE_VEXP 0
#endif

#endif
