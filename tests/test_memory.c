/* test_memory.c — memory admission (issue 10, item 2):
 *   estimate     td_train_memory_estimate against the bytes really allocated (failalloc's
 *                byte accounting) by create + set_threads + a few epochs + a snapshot, for
 *                softmax (full batch, mini-batches with a validation split, grouped
 *                outputs), mlp, gmm with every covariance, embed_gmm: actual <= estimate
 *                <= 2 x actual + 1 MiB
 *   check        td_trainer_check gives td_trainer_create's errors and allocates nothing
 *   threads      the softmax and mlp kernels' gradient slots grow with the threads, not a
 *                fixed 16, and the results are bit-identical for 1, 2, 3 and 5 threads
 *   daemon       the 2 x 100,000 softmax with 2684 classes gets 422 over_memory_budget at
 *                once, naming the estimate and max_memory_mb, and the daemon's peak RSS
 *                barely moves; two jobs that fit one at a time run one after the other,
 *                and a small job queued behind does not overtake the waiting one (FIFO);
 *                /metrics shows the reservation, back to 0 at the end; a body that does
 *                not fit beside a running job gets 503 with Retry-After, one larger than
 *                the budget allows 413, before it is read */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "failalloc.h"
#include "api.h"
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
    hp.n_hidden = 2;
    hp.hidden[0] = 256;
    hp.hidden[1] = 64;
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
        hp.components = 8;
        hp.covariance = covs[c];
        hp.max_iter = 3;
        hp.n_init = c == 4 ? 2 : 1; /* a second run and the best run's copy */
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
    hp.components = 3;
    hp.covariance = TD_COV_DIAG;
    hp.max_iter = 2;
    int64_t K;
    td_error err = {{0}, {0}};
    ck_assert_int_eq(td_trainer_check(&hp, &ds, NULL, &K, &err), TD_OK);
    size_t est = td_train_memory_estimate(&hp, &ds, NULL, K, 1);
    ck_assert_msg(est < ((size_t)64 << 20), "estimate %zu bytes for 6 rows of %lld features",
                  est, (long long)D);
    expect_estimate("gmm diag, wide rows, a re-seed", &hp, &ds, 2);
    free_data(&ds);
}
END_TEST

START_TEST(estimate_bounds_embed_gmm)
{
    td_dataset ds = make_data(1500, 20, 1, 5, 5);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
    hp.embedding_dim = 4;
    hp.components = 5;
    hp.epochs = 4;
    hp.warmup_iterations = 1;
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
    bad[0].n_classes = 2;                 /* labels reach 2 */
    bad[1].validation_split = 0.001;      /* no validation row */
    static float w[3] = {1, 2, 3};
    bad[2].initial_weights = w, bad[2].n_initial_weights = 3;
    td_hparams_defaults(&bad[3], TD_MODEL_GMM);
    bad[3].components = 60;               /* more than the rows */
    td_hparams_defaults(&bad[4], TD_MODEL_EMBED_GMM);
    bad[4].warmup_iterations = 1000;
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
static void same_bits_for_threads(const td_hparams *hp, const td_dataset *ds,
                                  const int *threads, int n, long *peaks)
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
        ck_assert_msg(slots == threads[i] + 1, "%d threads: %ld slots (%ld bytes)",
                      threads[i], slots, peaks[i]);
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
    hp.n_hidden = 1;
    hp.hidden[0] = 512;
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

/* ---- against a daemon -------------------------------------------------------------- */

#define JSON_HDR "Content-Type: application/json"

/* POSTs body; returns the status, *json the parsed answer (caller deletes). */
static int post(int port, const char *path, const char *body, size_t len, cJSON **json)
{
    httpc_resp r;
    int st = httpc_request(port, "POST", path, JSON_HDR, body, len, &r);
    *json = r.body ? cJSON_Parse(r.body) : NULL;
    httpc_free(&r);
    return st;
}

/* The state of job id. */
static char *job_state(int port, const char *id)
{
    cJSON *j = api_get_json(port, "/v1/jobs/%s", id);
    char *s = strdup(api_str(j, "state"));
    cJSON_Delete(j);
    return s;
}

/* A dataset of rows x cols: row i all i, labels 0 and last (the others 0). Returns its id. */
static char *post_dataset(int port, int rows, int cols, int last)
{
    size_t cap = (size_t)rows * (size_t)cols * 2 + 256, n = 0;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    n += (size_t)snprintf(b + n, cap - n, "{\"X\":[");
    for (int i = 0; i < rows; i++) {
        b[n++] = '[';
        for (int j = 0; j < cols; j++) {
            b[n++] = (char)('0' + i % 10);
            b[n++] = j + 1 < cols ? ',' : ']';
        }
        b[n++] = i + 1 < rows ? ',' : ']';
    }
    n += (size_t)snprintf(b + n, cap - n, ",\"y\":[");
    for (int i = 0; i < rows; i++)
        n += (size_t)snprintf(b + n, cap - n, "%d%s", i == rows - 1 ? last : 0,
                              i + 1 < rows ? "," : "]}");
    cJSON *j;
    ck_assert_int_eq(post(port, "/v1/datasets", b, n, &j), 201);
    free(b);
    char *id = strdup(api_str(j, "id"));
    cJSON_Delete(j);
    return id;
}

/* A prediction holds its outputs: 200 rows of 100,000 class probabilities (~160 MB by
 * the estimate) are refused under a 64 MB budget with the estimate and the budget named;
 * 10 rows are answered, and the reservation is returned once the answer is sent. */
START_TEST(predict_over_the_budget_is_refused)
{
    httpc_daemon d = api_start(NULL, "max_memory_mb = 64\n", NULL, NULL);
    char *ds = post_dataset(d.port, 2, 1, 99999);
    char body[8192];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":1}}", ds);
    cJSON *j;
    ck_assert_int_eq(post(d.port, "/v1/jobs", body, strlen(body), &j), 202);
    char *id = strdup(api_str(j, "id"));
    cJSON_Delete(j);
    api_wait_state(d.port, id, "succeeded", 30);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", id);
    for (int rows = 200, pass = 0; pass < 2; pass++, rows = 10) {
        size_t n = (size_t)snprintf(body, sizeof body, "{\"X\":[");
        for (int i = 0; i < rows; i++)
            n += (size_t)snprintf(body + n, sizeof body - n, "%s[0.5]", i ? "," : "");
        n += (size_t)snprintf(body + n, sizeof body - n, "]}");
        long before = httpc_proc_kb(d.pid, "VmHWM");
        int st = post(d.port, path, body, n, &j);
        if (rows == 200) {
            ck_assert_int_eq(st, 422);
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
            ck_assert_str_eq(api_str(e, "code"), "over_memory_budget");
            const char *msg = api_str(e, "message");
            ck_assert_msg(strstr(msg, "predicting 200 rows needs ~") &&
                          strstr(msg, "max_memory_mb = 64"), "message: %s", msg);
            ck_assert_msg(httpc_proc_kb(d.pid, "VmHWM") - before < 32 * 1024, "peak RSS grew");
        } else {
            ck_assert_int_eq(st, 200);
            ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "labels")),
                             10);
        }
        cJSON_Delete(j);
    }
    /* returned when the server frees the sent answer, just after the client has it */
    double t0 = httpc_now();
    while (httpc_metric(d.port, "traind_memory_reserved_bytes") != 0 && httpc_now() - t0 < 5)
        usleep(10000);
    ck_assert_msg(httpc_metric(d.port, "traind_memory_reserved_bytes") == 0, "reservation kept");
    free(id), free(ds);
    api_stop(&d);
}
END_TEST

START_TEST(huge_softmax_is_refused_at_submission)
{
    httpc_daemon d = api_start(NULL, "max_memory_mb = 64\n", NULL, NULL);
    char *ds = post_dataset(d.port, 2, 100000, 2683); /* 100,000 x 2684 weights: ~1 GB each */
    long before = httpc_proc_kb(d.pid, "VmHWM");
    char body[160];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\"}", ds);
    double t0 = httpc_now();
    cJSON *j;
    int st = post(d.port, "/v1/jobs", body, strlen(body), &j);
    double took = httpc_now() - t0;
    long after = httpc_proc_kb(d.pid, "VmHWM");
    ck_assert_int_eq(st, 422);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    ck_assert_str_eq(api_str(e, "code"), "over_memory_budget");
    const char *msg = api_str(e, "message");
    unsigned long long mb = 0;
    ck_assert_msg(sscanf(msg, "this job needs ~%llu MB", &mb) == 1, "message: %s", msg);
    ck_assert_msg(mb > 4000 && mb < 8000, "estimate %llu MB: %s", mb, msg); /* ~5 weight copies */
    ck_assert_msg(strstr(msg, "max_memory_mb = 64"), "message: %s", msg);
    ck_assert_msg(after - before < 64 * 1024, "peak RSS grew %ld KiB", after - before);
    ck_assert_msg(took < 5, "took %.1f s", took); /* a bound against a hang, not a speed test */
    cJSON_Delete(j);
    /* nothing was queued */
    cJSON *list = api_json(d.port, "GET", "/v1/jobs", NULL, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "jobs")), 0);
    cJSON_Delete(list);
    /* a small job on the same daemon still runs */
    char *small = post_dataset(d.port, 4, 3, 1);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":3}}", small);
    ck_assert_int_eq(post(d.port, "/v1/jobs", body, strlen(body), &j), 202);
    char *id = strdup(api_str(j, "id"));
    cJSON_Delete(j);
    api_wait_state(d.port, id, "succeeded", 30);
    free(id), free(small), free(ds);
    api_stop(&d);
}
END_TEST

START_TEST(jobs_that_fit_one_at_a_time_run_in_turn)
{
    /* 2 rows x 1000 features, 1000 classes: each job needs ~24 MB (params, grad, prev,
     * packed weights, one gradient slot, snapshot: 4 MB each); 40 MB holds one. */
    httpc_daemon d = api_start(NULL, "max_memory_mb = 40\nworkers = 2\n", NULL, NULL);
    char *ds = post_dataset(d.port, 2, 1000, 999);
    char body[200];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":10000000}}", ds);
    cJSON *j;
    ck_assert_int_eq(post(d.port, "/v1/jobs", body, strlen(body), &j), 202);
    char *first = strdup(api_str(j, "id"));
    cJSON_Delete(j);
    api_wait_state(d.port, first, "running", 30);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":2}}", ds);
    ck_assert_int_eq(post(d.port, "/v1/jobs", body, strlen(body), &j), 202);
    char *second = strdup(api_str(j, "id"));
    cJSON_Delete(j);
    double reserved = httpc_metric(d.port, "traind_memory_reserved_bytes");
    ck_assert_msg(reserved > 16e6 && reserved <= 40 * 1048576.0, "reserved %.0f", reserved);
    ck_assert_int_eq((long long)httpc_metric(d.port, "traind_memory_budget_bytes"), 40ll << 20);
    /* A body that fits the budget but not beside the running job: 503, Retry-After. */
    size_t big = 9u << 20; /* reserves 18 MiB */
    char *blank = malloc(big);
    ck_assert_ptr_nonnull(blank);
    memset(blank, ' ', big);
    httpc_resp r;
    ck_assert_int_eq(httpc_request(d.port, "POST", "/v1/loss", JSON_HDR, blank, big, &r), 503);
    char ra[16];
    ck_assert_ptr_nonnull(httpc_header(&r, "Retry-After", ra, sizeof ra));
    ck_assert_ptr_nonnull(strstr(r.body, "over_memory_budget"));
    httpc_free(&r);
    free(blank);
    /* A small job behind it would fit now, but does not overtake it (FIFO). */
    char *tiny = post_dataset(d.port, 4, 3, 1);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":2}}", tiny);
    ck_assert_int_eq(post(d.port, "/v1/jobs", body, strlen(body), &j), 202);
    char *third = strdup(api_str(j, "id"));
    cJSON_Delete(j);
    /* A free worker, but no memory: they stay queued while the first trains. */
    for (int i = 0; i < 20; i++) {
        char *s = job_state(d.port, second), *s3 = job_state(d.port, third);
        ck_assert_str_eq(s, "queued");
        ck_assert_str_eq(s3, "queued");
        free(s), free(s3);
        usleep(25000);
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", first);
    ck_assert_int_eq(post(d.port, path, NULL, 0, &j), 202);
    cJSON_Delete(j);
    api_wait_state(d.port, first, "cancelled", 30);
    api_wait_state(d.port, second, "succeeded", 30); /* started once the first let go */
    api_wait_state(d.port, third, "succeeded", 30);
    char p2[128], p3[128];
    snprintf(p2, sizeof p2, "/v1/jobs/%s", second);
    snprintf(p3, sizeof p3, "/v1/jobs/%s", third);
    cJSON *j2 = api_json(d.port, "GET", p2, NULL, 200);
    cJSON *j3 = api_json(d.port, "GET", p3, NULL, 200);
    ck_assert_msg(strcmp(api_str(j2, "started_at"), api_str(j3, "started_at")) <= 0,
                  "the third started (%s) before the second (%s)", api_str(j3, "started_at"),
                  api_str(j2, "started_at"));
    cJSON_Delete(j2), cJSON_Delete(j3);
    free(third), free(tiny);
    for (int i = 0; i < 500 && httpc_metric(d.port, "traind_memory_reserved_bytes") > 0; i++)
        usleep(10000); /* the worker returns the reservation just after recording the end */
    ck_assert_int_eq((long long)httpc_metric(d.port, "traind_memory_reserved_bytes"), 0);
    free(first), free(second), free(ds);
    api_stop(&d);
}
END_TEST

START_TEST(body_over_the_budget_is_refused_unread)
{
    httpc_daemon d = api_start(NULL, "max_memory_mb = 1\n", NULL, NULL);
    /* 600 KB reserves 1.2 MB while read and parsed: more than the whole budget. */
    size_t n = 600 * 1000;
    char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    memset(b, ' ', n);
    b[0] = '{', b[n - 1] = '}';
    cJSON *j;
    ck_assert_int_eq(post(d.port, "/v1/loss", b, n, &j), 413);
    ck_assert_msg(strstr(api_str(cJSON_GetObjectItemCaseSensitive(j, "error"), "message"),
                         "max_memory_mb"), "no max_memory_mb in the message");
    cJSON_Delete(j);
    free(b);
    /* a small body still goes through (the refused one's reservation is not kept) */
    cJSON *h = api_json(d.port, "GET", "/v1/jobs", NULL, 200);
    cJSON_Delete(h);
    char *ds = post_dataset(d.port, 3, 2, 1);
    free(ds);
    api_stop(&d);
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
    TCase *d = tcase_create("daemon");
    tcase_set_timeout(d, 60);
    tcase_add_test(d, huge_softmax_is_refused_at_submission);
    tcase_add_test(d, jobs_that_fit_one_at_a_time_run_in_turn);
    tcase_add_test(d, body_over_the_budget_is_refused_unread);
    tcase_add_test(d, predict_over_the_budget_is_refused);
    suite_add_tcase(s, d);
    return s;
}
