/* fingerprint.c — the build fingerprint (see fingerprint.h). */
#include "math/fingerprint.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "math/isa.h"

#ifndef TD_BUILD_FLAGS /* the Makefile passes OPT and SAN; other builds say so */
#define TD_BUILD_FLAGS "(flags unknown)"
#endif
#ifndef TD_VERSION
#define TD_VERSION "0.0.0"
#endif

static char fingerprint[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The target instruction sets the compiler was allowed to use. */
static const char *build_isa(void)
{
    return ""
#ifdef __SSE4_2__
           " sse4.2"
#endif
#ifdef __AVX__
           " avx"
#endif
#ifdef __AVX2__
           " avx2"
#endif
#ifdef __FMA__
           " fma"
#endif
#ifdef __AVX512F__
           " avx512f"
#endif
#ifdef __aarch64__
           " aarch64"
#endif
        ;
}

static void compute(void)
{
    char cpu[64] = "";
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    snprintf(cpu, sizeof cpu, "%s%s%s%s", __builtin_cpu_supports("avx") ? " avx" : "",
             __builtin_cpu_supports("avx2") ? " avx2" : "",
             __builtin_cpu_supports("fma") ? " fma" : "",
             __builtin_cpu_supports("avx512f") ? " avx512f" : "");
#endif
    const char *blas = openblas_get_config();
    const char *core = openblas_get_corename();
    snprintf(fingerprint, sizeof fingerprint,
             "traind %s; cc %s; flags %s; isa%s; kernels %s (clones %s); cpu%s; %s%s%s", TD_VERSION,
             __VERSION__, TD_BUILD_FLAGS, build_isa(), td_isa_name(td_isa()),
             td_isa_name(td_isa_cpu()), cpu, blas ? blas : "openblas",
             core && (!blas || !strstr(blas, core)) ? " core " : "",
             core && (!blas || !strstr(blas, core)) ? core : "");
}

const char *td_numeric_fingerprint(void)
{
    pthread_once(&once, compute);
    return fingerprint;
}
