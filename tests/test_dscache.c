/* test_dscache.c — shared datasets (store/dscache.c) against a real daemon (issue 13,
 * item 5; BENCH.md W11):
 *   four_jobs_share_one_dataset  four softmax jobs at once on one 24 MiB dataset add at
 *                                most 12 MiB of anonymous memory (W11's 48 MiB for 95 MiB,
 *                                scaled; a copy per job would add 96 MiB), the dataset is
 *                                mapped once while they run and unmapped after, and its
 *                                checksum was computed once for the 4 submissions and the
 *                                4 runs. Corrupted files are still caught: test_faults.c's
 *                                corrupted_files, test_store.c's dataset tests. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "testutil.h"

#define ROWS 24576
#define COLS 256 /* X: 24 MiB of float32 */
#define NJOBS 4

/* job id's state and epoch. */
static void job_status(int port, const char *id, char state[32], long *epoch)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    cJSON *j = api_json(port, "GET", path, NULL, 200);
    snprintf(state, 32, "%s", cJSON_GetObjectItem(j, "state")->valuestring);
    const cJSON *p = cJSON_GetObjectItem(j, "progress");
    const cJSON *e = p ? cJSON_GetObjectItem(p, "epoch") : NULL;
    *epoch = cJSON_IsNumber(e) ? (long)e->valuedouble : 0;
    cJSON_Delete(j);
}

/* A ROWS x COLS dataset of digits, labels 0..9. Returns its id (malloc'd). */
static char *post_dataset(int port)
{
    size_t cap = (size_t)ROWS * COLS * 2 + (size_t)ROWS * 4 + 64, n = 0;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    n += (size_t)snprintf(b, cap, "{\"X\":[");
    for (int i = 0; i < ROWS; i++) {
        b[n++] = '[';
        for (int j = 0; j < COLS; j++) {
            b[n++] = (char)('0' + (i * 7 + j * 3) % 10);
            b[n++] = j + 1 < COLS ? ',' : ']';
        }
        b[n++] = i + 1 < ROWS ? ',' : ']';
    }
    n += (size_t)snprintf(b + n, cap - n, ",\"y\":[");
    for (int i = 0; i < ROWS; i++) {
        b[n++] = (char)('0' + i % 10);
        b[n++] = i + 1 < ROWS ? ',' : ']';
    }
    b[n++] = '}';
    b[n] = '\0';
    cJSON *j = api_json(port, "POST", "/v1/datasets", b, 201);
    free(b);
    char *id = strdup(cJSON_GetObjectItem(j, "id")->valuestring);
    cJSON_Delete(j);
    return id;
}

START_TEST(four_jobs_share_one_dataset)
{
    const char *conf = "workers = 4\ncheckpoint_interval_s = 3600\n";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    char *ds = post_dataset(d.port);
    /* A fresh process for the measurement: the upload's parse buffers are gone. */
    api_term(&d);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", d.dir);
    d = api_start(dir, conf, NULL, NULL);
    int port = d.port;
    ck_assert_int_eq((long long)httpc_metric(port, "traind_dataset_checksums_total"), 0);
    long before = httpc_proc_kb(d.pid, "RssAnon");
    ck_assert_int_ge(before, 0);

    char *ids[NJOBS], body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":10000000,\"lr\":0.01}}",
             ds);
    for (int i = 0; i < NJOBS; i++) {
        cJSON *j = api_json(port, "POST", "/v1/jobs", body, 202);
        ids[i] = strdup(cJSON_GetObjectItem(j, "id")->valuestring);
        cJSON_Delete(j);
    }
    /* every job running and past its first epoch: X has been read by all of them */
    for (int i = 0; i < NJOBS; i++) {
        char state[32];
        long epoch = 0;
        double t0 = httpc_now();
        do {
            job_status(port, ids[i], state, &epoch);
            ck_assert_msg(!strcmp(state, "running") || !strcmp(state, "queued"), "job %s is %s",
                          ids[i], state);
            if (epoch < 2) usleep(20000);
        } while (epoch < 2 && httpc_now() - t0 < 60);
        ck_assert_msg(epoch >= 2, "job %s did not train", ids[i]);
    }
    long during = 0;
    for (int k = 0; k < 10; k++) { /* the highest of a few samples while they train */
        long kb = httpc_proc_kb(d.pid, "RssAnon");
        ck_assert_int_ge(kb, 0);
        during = kb > during ? kb : during;
        usleep(20000);
    }
    ck_assert_int_eq((long long)httpc_metric(port, "traind_jobs{state=\"running\"}"), NJOBS);
    ck_assert_int_eq((long long)httpc_metric(port, "traind_datasets_mapped"), 1);
    ck_assert_msg(httpc_metric(port, "traind_datasets_mapped_bytes") > ROWS * COLS * 4.0, "bytes");
    /* hashed once: not at each of the 4 submissions, not at each of the 4 starts */
    ck_assert_int_eq((long long)httpc_metric(port, "traind_dataset_checksums_total"), 1);
    long grew = during - before;
    ck_assert_msg(grew <= 12 * 1024,
                  "4 jobs on a 24 MiB dataset added %ld KiB of anonymous "
                  "memory (%ld -> %ld)",
                  grew, before, during);

    for (int i = 0; i < NJOBS; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs/%s/cancel", ids[i]);
        cJSON_Delete(api_json(port, "POST", path, NULL, 202));
    }
    for (int i = 0; i < NJOBS; i++) {
        char state[32];
        long epoch;
        double t0 = httpc_now();
        do {
            job_status(port, ids[i], state, &epoch);
            if (strcmp(state, "cancelled")) usleep(10000);
        } while (strcmp(state, "cancelled") && httpc_now() - t0 < 30);
        ck_assert_str_eq(state, "cancelled");
        free(ids[i]);
    }
    double t0 = httpc_now(); /* the workers let go just after recording the end */
    while (httpc_metric(port, "traind_datasets_mapped") > 0 && httpc_now() - t0 < 10)
        usleep(10000);
    ck_assert_int_eq((long long)httpc_metric(port, "traind_datasets_mapped"), 0);
    api_stop(&d);
    free(ds);
}
END_TEST

Suite *suite_dscache(void)
{
    Suite *s = suite_create("dscache");
    TCase *tc = tcase_create("datasets");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, four_jobs_share_one_dataset);
    suite_add_tcase(s, tc);
    return s;
}
