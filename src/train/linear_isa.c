/* linear_isa.c — the softmax kernel's inner loops at each instruction-set level: the
 * bodies of linear_kern.h compiled for the build's baseline and, on GCC/x86-64, under
 * AVX2 and AVX-512 targets; td_lin_kernels_get() hands out td_isa()'s set. */
#include "train/linear_isa.h"

#include <immintrin.h>
#include <math.h>

#include "math/vexp.h"

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4))); /* unaligned access */

#define TD_KSUFFIX _generic
#include "train/linear_kern.h"
#undef TD_KSUFFIX

#if TD_ISA_MULTI
#pragma GCC push_options
TD_TARGET_PRAGMA(TD_TARGET_AVX2)
#define TD_KSUFFIX _avx2
#include "train/linear_kern.h"
#undef TD_KSUFFIX
#pragma GCC pop_options

#pragma GCC push_options
TD_TARGET_PRAGMA(TD_TARGET_AVX512)
#define TD_KSUFFIX _avx512
#include "train/linear_kern.h"
#undef TD_KSUFFIX
#pragma GCC pop_options
#endif

const td_lin_kernels *td_lin_kernels_get(void)
{
#if TD_ISA_MULTI
    switch (td_isa()) {
    case TD_ISA_AVX512: return &td_lin_kernels_avx512;
    case TD_ISA_AVX2: return &td_lin_kernels_avx2;
    default: break;
    }
#endif
    return &td_lin_kernels_generic;
}
