/* fingerprint.h — what the numbers a build computes depend on, as one line of text.
 *
 * Exact resume (train.h) holds for the same binary on the same kind of CPU. A checkpoint
 * carries the fingerprint of the build that wrote it (store/blob.h, the tag of version 2
 * files); a job that resumes under another fingerprint continues, but says so
 * ("resumed_on_different_build"): its results may differ from an uninterrupted run from
 * the first epoch after the resume. The fingerprint names:
 *   the traind version (TD_VERSION), the compiler (__VERSION__) and the flags that change
 *   the generated code (TD_BUILD_FLAGS: the Makefile's OPT and SAN);
 *   the instruction sets the build targets (__AVX2__, __FMA__, __AVX512F__, ...: none
 *   beyond SSE2 in the default, portable build);
 *   the level of the engine's dispatched kernels (math/isa.h): "kernels avx512" (td_isa(),
 *   which TD_ISA can lower) and "(clones avx512)" (the CPU's level, which the
 *   target_clones functions of gmm, mlp and the optimizers follow);
 *   the CPU features OpenBLAS picks its kernels by at run time (avx, avx2, fma, avx512f,
 *   via __builtin_cpu_supports) and what OpenBLAS reports (openblas_get_config, which
 *   holds its version and the kernel core it chose). */
#ifndef TRAIND_FINGERPRINT_H
#define TRAIND_FINGERPRINT_H

/* The fingerprint of this process's numeric code path: static, NUL-terminated, at most
 * a few hundred bytes; computed once (thread-safe). */
const char *td_numeric_fingerprint(void);

#endif
