/* isa.h — which vector instruction set the engine's own kernels run on.
 *
 * The default build targets plain x86-64 (Makefile OPT), so the binary runs on any x86-64
 * CPU. The few hot kernels that OpenBLAS does not cover are compiled more than once and
 * chosen at run time:
 *   - the softmax model's fused kernel (train/linear_isa.c: logits, the cross entropy of a
 *     block, the weight gradient) and loss.c's exponentials: explicit variants, chosen once
 *     per process by td_isa() (TD_ISA in the environment can lower the choice, for tests and
 *     for reproducing another machine's numbers);
 *   - the loops of gmm, mlp and the optimizers marked TD_CLONES: GCC function
 *     multiversioning (target_clones), resolved by the dynamic loader from the CPU alone.
 * Levels: generic (the build's baseline), avx2 (x86-64-v3: AVX2, FMA) and avx512
 * (x86-64-v4: AVX-512 F, BW, DQ, VL). A variant's results are deterministic (the same bits
 * for any thread count) but differ from another variant's in the last bits (FMA
 * contraction, vector widths), so the level is part of the numeric fingerprint
 * (math/fingerprint.h). OpenBLAS dispatches itself. */
#ifndef TRAIND_ISA_H
#define TRAIND_ISA_H

typedef enum td_isa_level {
    TD_ISA_GENERIC = 0,
    TD_ISA_AVX2 = 1,
    TD_ISA_AVX512 = 2,
} td_isa_level;

/* The level of the explicit kernels: td_isa_cpu(), lowered to TD_ISA's level when that
 * is set to generic, avx2 or avx512 (a higher level than the CPU has, or any other value,
 * is ignored). Computed once per process, thread-safe. */
td_isa_level td_isa(void);

/* The highest level this CPU runs (always TD_ISA_GENERIC off x86-64 or without GCC's
 * multiversioning). */
td_isa_level td_isa_cpu(void);

/* "generic", "avx2", "avx512". */
const char *td_isa_name(td_isa_level level);

/* The level named by s ("generic", "avx2", "avx512"); -1 for anything else (NULL too). */
int td_isa_parse(const char *s);

/* Test hook: makes td_isa() return level (clamped to td_isa_cpu()) from now on in this
 * process; returns the level in force before. Not for concurrent use with running
 * kernels. */
td_isa_level td_isa_force(td_isa_level level);

/* TD_ISA_MULTI is 1 where the variants exist (GCC on x86-64): the kernels' files compile
 * their bodies under `#pragma GCC target(TD_TARGET_AVX2)` and TD_TARGET_AVX512. TD_CLONES
 * marks a function for target_clones; elsewhere it is empty and one variant is built. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TD_NO_MULTIVERSION)
#define TD_ISA_MULTI 1
#define TD_TARGET_AVX2 "avx2,fma,bmi,bmi2,lzcnt,popcnt,f16c,movbe"
#define TD_TARGET_AVX512 \
    "avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx2,fma,bmi,bmi2,lzcnt,popcnt,f16c,movbe"
#define TD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
/* TD_TARGET_PRAGMA(TD_TARGET_AVX2) == #pragma GCC target("avx2,...") (a pragma's
 * argument is not macro-expanded) */
#define TD_DO_PRAGMA(x) _Pragma(#x)
#define TD_TARGET_PRAGMA(t) TD_DO_PRAGMA(GCC target(t))
#else
#define TD_ISA_MULTI 0
#define TD_CLONES
#endif

#endif
