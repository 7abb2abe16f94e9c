/* test_isa.c — the run-time choice of kernel variants (math/isa.h).
 *   levels   td_isa() is a level this CPU runs, no higher than td_isa_cpu(); names and
 *            TD_ISA's values round-trip; the fingerprint names the dispatched level
 *   env      TD_ISA=generic in a fresh process lowers the level (and the fingerprint
 *            says so); a value above the CPU's or unknown is ignored
 *   variants the softmax trainer on the generic kernels (forced) matches the dispatched
 *            ones within float tolerance, for the fused cross entropy (K <= 16), the
 *            general path (K > 16, label smoothing) and mini-batches; each level is
 *            bit-identical across thread counts */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "math/fingerprint.h"
#include "math/isa.h"
#include "testutil.h"
#include "traind/train.h"

START_TEST(levels_are_valid_and_named)
{
    td_isa_level cpu = td_isa_cpu(), now = td_isa();
    ck_assert_int_ge(now, TD_ISA_GENERIC);
    ck_assert_int_le(now, cpu);
    ck_assert_int_le(cpu, TD_ISA_AVX512);
    for (int l = TD_ISA_GENERIC; l <= TD_ISA_AVX512; l++)
        ck_assert_int_eq(td_isa_parse(td_isa_name((td_isa_level)l)), l);
    ck_assert_int_eq(td_isa_parse("sse9"), -1);
    ck_assert_int_eq(td_isa_parse(""), -1);
    ck_assert_int_eq(td_isa_parse(NULL), -1);
    char want[64];
    snprintf(want, sizeof want, "kernels %s (clones %s)", td_isa_name(now), td_isa_name(cpu));
    ck_assert_msg(strstr(td_numeric_fingerprint(), want), "%s lacks \"%s\"",
                  td_numeric_fingerprint(), want);
#if TD_ISA_MULTI && defined(__x86_64__)
    /* the level agrees with what the CPU reports */
    __builtin_cpu_init();
    ck_assert_int_eq(cpu == TD_ISA_AVX512, !!__builtin_cpu_supports("x86-64-v4"));
    ck_assert_int_eq(cpu >= TD_ISA_AVX2, !!__builtin_cpu_supports("x86-64-v3"));
#endif
}
END_TEST

/* In a child that has not chosen yet (this test process must not call td_isa first):
 * TD_ISA=value, then 0 when td_isa() is min(cap, the CPU's level) and the fingerprint
 * names it. */
static int level_in_child(const char *value, td_isa_level cap)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("TD_ISA", value, 1);
        td_isa_level want = cap < td_isa_cpu() ? cap : td_isa_cpu();
        char name[48];
        snprintf(name, sizeof name, "kernels %s ", td_isa_name(want));
        _exit(td_isa() == want && strstr(td_numeric_fingerprint(), name) ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(env_lowers_the_level)
{
    ck_assert_int_eq(level_in_child("generic", TD_ISA_GENERIC), 0);
    ck_assert_int_eq(level_in_child("avx2", TD_ISA_AVX2), 0);
    ck_assert_int_eq(level_in_child("avx512", TD_ISA_AVX512), 0); /* never above the CPU */
    ck_assert_int_eq(level_in_child("fast", TD_ISA_AVX512), 0);   /* unknown: ignored */
#if TD_ISA_MULTI
    __builtin_cpu_init();                    /* (not td_isa_cpu: this process must not choose) */
    if (__builtin_cpu_supports("x86-64-v3")) /* a level other than the one asked for fails */
        ck_assert_int_ne(level_in_child("generic", TD_ISA_AVX512), 0);
#endif
}
END_TEST

/* X (N, D) uniform in [-1.5, 1.5], y from a random linear model plus noise; row `ignored`
 * (when >= 0) gets the ignore_index -100. */
static td_dataset make_data(int64_t N, int64_t D, int64_t K, unsigned seed, int64_t ignored)
{
    float *X = malloc(sizeof(float) * (size_t)(N * D)),
          *W = malloc(sizeof(float) * (size_t)(D * K));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    ck_assert(X && y && W);
    srand(seed);
    for (int64_t i = 0; i < N * D; i++)
        X[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 3.0f;
    for (int64_t i = 0; i < D * K; i++)
        W[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (int64_t n = 0; n < N; n++) {
        int64_t best = 0;
        double bv = -1e30;
        for (int64_t k = 0; k < K; k++) {
            double z = 0.3 * ((double)rand() / RAND_MAX);
            for (int64_t d = 0; d < D; d++)
                z += X[n * D + d] * W[d * K + k];
            if (z > bv) bv = z, best = k;
        }
        y[n] = (int32_t)best;
    }
    if (ignored >= 0) y[ignored] = -100;
    free(W);
    return (td_dataset){.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
}

#define EPOCHS 6

/* Trains hp on ds at the given level with `threads` threads: the final parameters (the
 * caller frees them) and each epoch's loss. */
static float *train_at(td_isa_level level, const td_hparams *hp, const td_dataset *ds, int threads,
                       double *loss, int64_t *P)
{
    td_isa_level before = td_isa_force(level);
    ck_assert_int_eq(td_isa(), level); /* else the comparison below is of one level with itself */
    td_trainer *t = tu_make_trainer(hp, ds);
    td_trainer_set_threads(t, threads);
    for (int e = 0; e < EPOCHS; e++) {
        td_record r;
        tu_step_ok(t, &r);
        loss[e] = r.v[2];
    }
    const td_model *m = td_trainer_model(t);
    *P = m->n_params;
    float *p = malloc(sizeof(float) * (size_t)m->n_params);
    ck_assert_ptr_nonnull(p);
    memcpy(p, m->params, sizeof(float) * (size_t)m->n_params);
    td_trainer_destroy(t);
    td_isa_force(before);
    return p;
}

/* generic vs the CPU's level: close; each level: the same bits for 1 and 3 threads. */
static void compare_levels(const td_hparams *hp, const td_dataset *ds)
{
    double lg[EPOCHS], lg3[EPOCHS], lc[EPOCHS], lc3[EPOCHS];
    int64_t P;
    float *g = train_at(TD_ISA_GENERIC, hp, ds, 1, lg, &P);
    float *g3 = train_at(TD_ISA_GENERIC, hp, ds, 3, lg3, &P);
    float *c = train_at(td_isa_cpu(), hp, ds, 1, lc, &P);
    float *c3 = train_at(td_isa_cpu(), hp, ds, 3, lc3, &P);
    ck_assert(memcmp(g, g3, sizeof(float) * (size_t)P) == 0);
    ck_assert(memcmp(c, c3, sizeof(float) * (size_t)P) == 0);
    ck_assert(memcmp(lg, lg3, sizeof lg) == 0 && memcmp(lc, lc3, sizeof lc) == 0);
    double scale = 0, diff = 0;
    for (int64_t i = 0; i < P; i++) {
        scale = fmax(scale, fabs((double)g[i]));
        diff = fmax(diff, fabs((double)g[i] - (double)c[i]));
    }
    ck_assert_msg(scale > 0.01, "the model did not move (%g)", scale);
    ck_assert_msg(diff <= 1e-4 * scale, "generic and %s differ by %g (scale %g)",
                  td_isa_name(td_isa_cpu()), diff, scale);
    for (int e = 0; e < EPOCHS; e++)
        ck_assert_msg(fabs(lg[e] - lc[e]) <= 1e-5 * fabs(lg[e]), "epoch %d: loss %.9g vs %.9g", e,
                      lg[e], lc[e]);
    ck_assert(lg[EPOCHS - 1] < lg[0]); /* it trained */
    free(g);
    free(g3);
    free(c);
    free(c3);
}

START_TEST(generic_variant_matches_dispatched)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.lr = 0.5;
    hp.l2 = 1e-3;
    hp.seed = 3;
    /* full batch: the fused cross entropy (K = 10 <= 16), several chunks */
    td_dataset ds = make_data(3000, 37, 10, 5, -1);
    compare_levels(&hp, &ds);
    free((void *)ds.X);
    free((void *)ds.y);
    /* mini-batches of scattered rows, Adam, one ignored class index */
    hp.optimizer = TD_OPT_ADAM;
    hp.lr = 0.01;
    hp.batch_size = 64;
    ds = make_data(3000, 37, 10, 5, 7);
    compare_levels(&hp, &ds);
    free((void *)ds.X);
    free((void *)ds.y);
    /* K > 16 and label smoothing: the general cross entropy (loss.c) after the kernels */
    ds = make_data(1500, 20, 19, 6, -1);
    hp.label_smoothing = 0.1;
    compare_levels(&hp, &ds);
    free((void *)ds.X);
    free((void *)ds.y);
}
END_TEST

Suite *suite_isa(void)
{
    Suite *s = suite_create("isa");
    TCase *tc = tcase_create("isa");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, levels_are_valid_and_named);
    tcase_add_test(tc, env_lowers_the_level);
    tcase_add_test(tc, generic_variant_matches_dispatched);
    suite_add_tcase(s, tc);
    return s;
}
