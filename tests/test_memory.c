/* test_memory.c — memory admission (issue 10, item 2):
 *   estimate     td_train_memory_estimate against the bytes really allocated (failalloc's
 *                byte accounting) by create + set_threads + a few epochs + a snapshot, for
 *                softmax (full batch, mini-batches with a validation split, grouped
 *                outputs), mlp, gmm with every covariance, embed_gmm: actual <= estimate
 *                <= 2 x actual + 1 MiB
 *   check        td_trainer_check gives td_trainer_create's errors and allocates nothing
 *   threads      the softmax and mlp kernels' gradient slots grow with the threads, not a
 *                fixed 16, and the results are bit-identical for 1, 2, 3 and 5 threads.
 * The daemon's memory budget (max_memory_mb) is test_budget.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failalloc.h"
#include "testutil.h"

/* ---- data ------------------------------------------------------------------------- */

/* X (N, D) uniform in [-1.5, 1.5); labels y (N, G) in [0, S) from a fixed seed. */
static td_dataset make_data(int64_t N, int64_t D, int64_t G, int64_t S, unsigned seed)
{
    float *X = malloc(sizeof(float) * (size_t)(N * D));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)(N * G));
    ck_assert(X && y);
    srand(seed);
    for (int64_t i = 0; i < N * D; i++)
        X[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 3.0f;
    for (int64_t i = 0; i < N * G; i++)
        y[i] = (int32_t)(i < S ? i % S : rand() % S); /* every class appears */
    return (td_dataset){.N = N, .D = D, .X = X, .y = y, .y_cols = G};
}

static void free_data(td_dataset *ds)
{
    free((void *)ds->X);
    free((void *)ds->y);
    free((void *)ds->pairs);
    free((void *)ds->pair_labels);
}

/* ---- estimate against reality ------------------------------------------------------ */

/* Peak bytes allocated by creating a trainer, giving it `threads` threads, `epochs` steps
 * and one snapshot; *estimate gets td_train_memory_estimate for the same. */
static long measure(const td_hparams *hp, const td_dataset *ds, int threads, int epochs,
                    size_t *estimate)
{
    td_error err = {{0}, {0}};
    int64_t K;
    ck_assert_msg(td_trainer_check(hp, ds, NULL, &K, &err) == TD_OK, "%s: %s", err.field,
                  err.message);
    *estimate = td_train_memory_estimate(hp, ds, NULL, K, threads);
    failalloc_track(1);
    td_trainer *t = tu_make_trainer(hp, ds);
    td_trainer_set_threads(t, threads);
    td_record rec;
    for (int e = 0; e < epochs && !td_trainer_done(t); e++)
        tu_step_ok(t, &rec);
    size_t cap = td_trainer_state_size(t);
    void *snap = malloc(cap);
    ck_assert_ptr_nonnull(snap);
    ck_assert_uint_eq(td_trainer_save(t, snap, cap), cap);
    free(snap);
    td_trainer_destroy(t);
    long peak = failalloc_peak_bytes();
    failalloc_track(0);
    return peak;
}

static void expect_estimate(const char *what, const td_hparams *hp, const td_dataset *ds,
                            int epochs)
{
    for (int threads = 1; threads <= 4; threads *= 2) {
        size_t est;
        long peak = measure(hp, ds, threads, epochs, &est);
        ck_assert_msg(peak > 0, "%s: nothing measured", what);
        ck_assert_msg((size_t)peak <= est && est <= 2 * (size_t)peak + (1u << 20),
                      "%s, %d threads: allocated %ld bytes, estimate %zu", what, threads, peak,
                      est);
    }
}

START_TEST(estimate_bounds_softmax)
{
    td_dataset ds = make_data(3000, 300, 1, 40, 1);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.epochs = 2;
    expect_estimate("softmax, full batch", &hp, &ds, 2);
    hp.optimizer = TD_OPT_ADAM;
    hp.batch_size = 256;
    hp.validation_split = 0.2;
    expect_estimate("softmax, adam, mini-batches, validation split", &hp, &ds, 2);
    free_data(&ds);

    td_dataset g = make_data(2000, 200, 3, 12, 2); /* grouped: 3 groups of 12 classes */
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.groups = 3;
    hp.epochs = 2;
    expect_estimate("softmax, grouped outputs", &hp, &g, 2);
    free_data(&g);
}
END_TEST

START_TEST(estimate_bounds_mlp)
{
    td_dataset ds = make_data(3000, 120, 1, 10, 3);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.n_hidden = 2;
    hp.mlp.hidden[0] = 256;
    hp.mlp.hidden[1] = 64;
    hp.epochs = 2;
    expect_estimate("mlp, adam, mini-batches", &hp, &ds, 2);
    hp.batch_size = 0;
    hp.optimizer = TD_OPT_SGD;
    expect_estimate("mlp, sgd, full batch", &hp, &ds, 2);
    free_data(&ds);
}
END_TEST

START_TEST(estimate_bounds_gmm)
{
    td_dataset ds = make_data(6000, 12, 1, 2, 4);
    free((void *)ds.y);
    ds.y = NULL, ds.y_cols = 0;
    const td_covariance covs[] = {TD_COV_FULL, TD_COV_DIAG, TD_COV_SPHERICAL, TD_COV_TIED,
                                  TD_COV_FULL};
    const char *names[] = {"gmm full", "gmm diag", "gmm spherical", "gmm tied",
                           "gmm full, n_init 2"};
    for (int c = 0; c < 5; c++) {
        td_hparams hp;
        td_hparams_defaults(&hp, TD_MODEL_GMM);
        hp.gmm.components = 8;
        hp.gmm.covariance = covs[c];
        hp.gmm.max_iter = 3;
        hp.gmm.n_init = c == 4 ? 2 : 1; /* a second run and the best run's copy */
        expect_estimate(names[c], &hp, &ds, 3);
    }
    free_data(&ds);
}
END_TEST

/* A diag gmm on wide rows: its estimate and its allocations stay O(N E + M E), with no
 * E x E matrix (the data's covariance for a re-seed was once E x E for every covariance
 * type: 4 GB of estimate at 20,000 features). Two distinct rows for 3 components: k-means
 * leaves one empty, and the re-seed computes the data's variances. */
START_TEST(estimate_bounds_wide_diag_gmm)
{
    const int64_t N = 6, D = 4000;
    td_dataset ds = make_data(N, D, 1, 2, 5);
    float *X = (float *)ds.X;
    for (int64_t i = 2; i < N; i++)
        memcpy(X + i * D, X + (i % 2) * D, sizeof(float) * (size_t)D);
    free((void *)ds.y);
    ds.y = NULL, ds.y_cols = 0;
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = 3;
    hp.gmm.covariance = TD_COV_DIAG;
    hp.gmm.max_iter = 2;
    int64_t K;
    td_error err = {{0}, {0}};
    ck_assert_int_eq(td_trainer_check(&hp, &ds, NULL, &K, &err), TD_OK);
    size_t est = td_train_memory_estimate(&hp, &ds, NULL, K, 1);
    ck_assert_msg(est < ((size_t)64 << 20), "estimate %zu bytes for 6 rows of %lld features", est,
                  (long long)D);
    expect_estimate("gmm diag, wide rows, a re-seed", &hp, &ds, 2);
    free_data(&ds);
}
END_TEST

START_TEST(estimate_bounds_embed_gmm)
{
    td_dataset ds = make_data(1500, 20, 1, 5, 5);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
    hp.embed.embedding_dim = 4;
    hp.gmm.components = 5;
    hp.epochs = 4;
    hp.embed.warmup_iterations = 1;
    expect_estimate("embed_gmm", &hp, &ds, 4); /* through the final predictions */
    free_data(&ds);
}
END_TEST

/* ---- validation without a trainer --------------------------------------------------- */

START_TEST(check_matches_create_and_allocates_nothing)
{
    td_dataset ds = make_data(50, 4, 1, 3, 6), val = make_data(20, 5, 1, 3, 7);
    td_hparams bad[5];
    for (int i = 0; i < 5; i++)
        td_hparams_defaults(&bad[i], TD_MODEL_SOFTMAX);
    bad[0].n_classes = 2;            /* labels reach 2 */
    bad[1].validation_split = 0.001; /* no validation row */
    static float w[3] = {1, 2, 3};
    bad[2].initial_weights = w, bad[2].n_initial_weights = 3;
    td_hparams_defaults(&bad[3], TD_MODEL_GMM);
    bad[3].gmm.components = 60; /* more than the rows */
    td_hparams_defaults(&bad[4], TD_MODEL_EMBED_GMM);
    bad[4].embed.warmup_iterations = 1000;
    for (int i = 0; i < 5; i++) {
        td_error e1 = {{0}, {0}}, e2 = {{0}, {0}};
        int64_t K;
        td_trainer *t = NULL;
        failalloc_track(1);
        td_status s1 = td_trainer_check(&bad[i], &ds, NULL, &K, &e1);
        ck_assert_int_eq(failalloc_peak_bytes(), 0);
        failalloc_track(0);
        td_status s2 = td_trainer_create(&t, &bad[i], &ds, NULL, &e2);
        ck_assert_msg(s1 != TD_OK && s1 == s2, "case %d: check %d, create %d", i, s1, s2);
        ck_assert_str_eq(e1.field, e2.field);
        ck_assert_str_eq(e1.message, e2.message);
    }
    /* the validation set's checks too: 5 features against 4 */
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    td_error e1 = {{0}, {0}}, e2 = {{0}, {0}};
    int64_t K;
    td_trainer *t = NULL;
    ck_assert_int_eq(td_trainer_check(&hp, &ds, &val, &K, &e1), TD_EINVAL);
    ck_assert_int_eq(td_trainer_create(&t, &hp, &ds, &val, &e2), TD_EINVAL);
    ck_assert_str_eq(e1.field, "validation");
    ck_assert_str_eq(e1.message, e2.message);
    free_data(&ds);
    free_data(&val);
}
END_TEST

/* ---- gradient slots scale with the threads ------------------------------------------ */

/* Trains hp on ds with each of the thread counts and asserts the same weights, bit for bit,
 * as with the first; peaks[i] gets the bytes allocated with threads[i] (no epoch). */
static void same_bits_for_threads(const td_hparams *hp, const td_dataset *ds, const int *threads,
                                  int n, long *peaks)
{
    float *ref = NULL;
    int64_t P = 0;
    for (int i = 0; i < n; i++) {
        size_t est;
        peaks[i] = measure(hp, ds, threads[i], 0, &est);
        td_trainer *t = tu_make_trainer(hp, ds);
        td_trainer_set_threads(t, threads[i]);
        td_record rec;
        while (!td_trainer_done(t))
            tu_step_ok(t, &rec);
        const td_model *m = td_trainer_model(t);
        if (!ref) {
            P = m->n_params;
            ref = malloc(sizeof(float) * (size_t)P);
            memcpy(ref, m->params, sizeof(float) * (size_t)P);
        } else {
            ck_assert_msg(memcmp(ref, m->params, sizeof(float) * (size_t)P) == 0,
                          "%d threads: other bits than %d", threads[i], threads[0]);
        }
        td_trainer_destroy(t);
    }
    free(ref);
}

START_TEST(softmax_slots_grow_with_threads_and_bits_do_not_change)
{
    /* 1024 rows: 8 chunks. D x K = 1024 x 256: one gradient is 1 MiB (past the slots a
     * small model may keep regardless of threads); the rest is small. */
    td_dataset ds = make_data(1024, 1024, 1, 256, 8);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.optimizer = TD_OPT_ADAM;
    hp.epochs = 2;
    hp.l2 = 1e-3;
    const long grad = (long)sizeof(float) * 1024 * 256;
    const int threads[] = {1, 2, 3, 5};
    long peaks[4];
    same_bits_for_threads(&hp, &ds, threads, 4, peaks);
    for (int i = 0; i < 4; i++) {
        /* params, grad, prev, the packed weights, Adam's m and v, one snapshot of 3: 9
         * weight-sized buffers, plus threads + 1 gradient slots (8, one per chunk,
         * before). */
        long slots = (peaks[i] - 9 * grad) / grad;
        ck_assert_msg(slots == threads[i] + 1, "%d threads: %ld slots (%ld bytes)", threads[i],
                      slots, peaks[i]);
    }
    free_data(&ds);
}
END_TEST

START_TEST(mlp_slots_grow_with_threads_and_bits_do_not_change)
{
    /* full batch of 4096 rows: 16 chunks of 256 rows */
    td_dataset ds = make_data(4096, 64, 1, 8, 9);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.n_hidden = 1;
    hp.mlp.hidden[0] = 512;
    hp.batch_size = 0;
    hp.epochs = 3;
    const int threads[] = {1, 2, 3, 5};
    long peaks[4];
    same_bits_for_threads(&hp, &ds, threads, 4, peaks);
    /* every added thread adds one slot (the same bytes each): 2, 3, 4, 6 slots */
    long slot = peaks[1] - peaks[0];
    ck_assert_int_gt(slot, 0);
    for (int i = 2; i < 4; i++) {
        long per = (peaks[i] - peaks[0]) / (threads[i] - 1);
        ck_assert_msg(labs(per - slot) < slot / 20, "%d threads: %ld bytes a slot, %ld with 2",
                      threads[i], per, slot);
    }
    free_data(&ds);
}
END_TEST

Suite *suite_memory(void)
{
    Suite *s = suite_create("memory");
    TCase *e = tcase_create("estimate");
    tcase_set_timeout(e, 60);
    tcase_add_test(e, estimate_bounds_softmax);
    tcase_add_test(e, estimate_bounds_mlp);
    tcase_add_test(e, estimate_bounds_gmm);
    tcase_add_test(e, estimate_bounds_wide_diag_gmm);
    tcase_add_test(e, estimate_bounds_embed_gmm);
    tcase_add_test(e, check_matches_create_and_allocates_nothing);
    tcase_add_test(e, softmax_slots_grow_with_threads_and_bits_do_not_change);
    tcase_add_test(e, mlp_slots_grow_with_threads_and_bits_do_not_change);
    suite_add_tcase(s, e);
    return s;
}
