/* test_budget.c — the daemon's memory budget (max_memory_mb, util/budget.c; issue 10,
 * item 2) against a live daemon: the 2 x 100,000 softmax with 2684 classes gets 422
 * over_memory_budget at once, naming the estimate and max_memory_mb, and the daemon's peak
 * RSS barely moves; two jobs that fit one at a time run one after the other, and a small
 * job queued behind does not overtake the waiting one (FIFO); /metrics shows the
 * reservation, back to 0 at the end; a body that does not fit beside a running job gets
 * 503 with Retry-After, one larger than the budget allows 413, before it is read; a
 * predict over the budget is refused. The estimates themselves are test_memory.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "testutil.h"

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
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":1}}",
             ds);
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
                              strstr(msg, "max_memory_mb = 64"),
                          "message: %s", msg);
            ck_assert_msg(httpc_proc_kb(d.pid, "VmHWM") - before < 32 * 1024, "peak RSS grew");
        } else {
            ck_assert_int_eq(st, 200);
            ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "labels")), 10);
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
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":3}}",
             small);
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
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":10000000}}",
             ds);
    cJSON *j;
    ck_assert_int_eq(post(d.port, "/v1/jobs", body, strlen(body), &j), 202);
    char *first = strdup(api_str(j, "id"));
    cJSON_Delete(j);
    api_wait_state(d.port, first, "running", 30);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":2}}",
             ds);
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
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":2}}",
             tiny);
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
    ck_assert_msg(
        strstr(api_str(cJSON_GetObjectItemCaseSensitive(j, "error"), "message"), "max_memory_mb"),
        "no max_memory_mb in the message");
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

Suite *suite_budget(void)
{
    Suite *s = suite_create("budget");
    TCase *d = tcase_create("daemon");
    tcase_set_timeout(d, 60);
    tcase_add_test(d, huge_softmax_is_refused_at_submission);
    tcase_add_test(d, jobs_that_fit_one_at_a_time_run_in_turn);
    tcase_add_test(d, body_over_the_budget_is_refused_unread);
    tcase_add_test(d, predict_over_the_budget_is_refused);
    suite_add_tcase(s, d);
    return s;
}
