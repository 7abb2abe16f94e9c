/* test_jobs.c — the job manager (regressions found in review): against
 * a real store in a temp directory (no HTTP), and the daemon where only it shows them. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>
#include <sqlite3.h>
#include <time.h>

#include "api.h"
#include "jobs/jobs.h"
#include "store/store.h"
#include "storetest.h"
#include "testutil.h"

/* A small separable 2-class dataset (N rows, 2 features) stored in s. */
static void put_ds(td_store *s, int64_t N, td_dataset_meta *m)
{
    float *X = malloc(sizeof(float) * (size_t)(2 * N));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    ck_assert(X && y);
    for (int64_t i = 0; i < N; i++) {
        y[i] = (int32_t)(i & 1);
        X[2 * i] = (float)(y[i] ? 1.0 : -1.0) + 0.01f * (float)(i % 7);
        X[2 * i + 1] = 0.5f - 0.1f * (float)(i % 5);
    }
    td_dataset ds = {.N = N, .D = 2, .X = X, .y = y, .y_cols = 1};
    EXPECT(TD_OK, td_store_dataset_put(s, &ds, "review", m, E));
    free(X), free(y);
}

static td_job_state job_state(td_store *s, const char *id)
{
    td_job_row row;
    EXPECT(TD_OK, td_store_job_get(s, id, &row, E));
    td_job_state st = row.state;
    td_job_row_fini(&row);
    return st;
}

/* Waits (up to timeout_s) for the job to reach a terminal state; returns the state. */
static td_job_state wait_terminal(td_jobs *jm, td_store *s, const char *id, double timeout_s)
{
    uint64_t seen = 0;
    for (int i = 0; i < (int)(timeout_s * 10); i++) {
        td_job_state st = job_state(s, id);
        if (td_job_state_terminal(st)) return st;
        seen = td_jobs_wait_change(jm, seen, 100);
    }
    return job_state(s, id);
}

/* A cancel accepted (202, cancel_requested = 1) for a running job whose process then died
 * (kill -9) before the job's next epoch boundary: at the next start the job is resumed,
 * and the cancel must still take effect, not be forgotten while the job trains on to
 * "succeeded". */
START_TEST(cancel_requested_survives_restart)
{
    mk_tmpdir();
    td_store *s = NULL;
    EXPECT(TD_OK, td_store_open(&s, g_dir, E));
    td_dataset_meta m;
    put_ds(s, 64, &m);
    char id[TD_ID_MAX];
    td_job_spec spec = {.model = "softmax",
                        .dataset = m.id,
                        .hyperparameters = "{\"epochs\":10000000}",
                        .epochs = 10000000};
    EXPECT(TD_OK, td_store_job_insert(s, &spec, id, E));
    /* What the crashed process left: running, cancel requested. */
    EXPECT(TD_OK, td_store_job_start(s, id, NULL, E));
    td_job_state after;
    EXPECT(TD_OK, td_store_job_cancel(s, id, &after, E));
    ck_assert_int_eq(after, TD_JOB_RUNNING);

    td_jobs *jm = NULL;
    td_jobs_opts o = {.workers = 1, .cores = 1, .max_queued = 8, .checkpoint_interval_s = 60};
    EXPECT(TD_OK, td_jobs_start(&jm, s, &o, E));
    td_job_state st = wait_terminal(jm, s, id, 10);
    td_jobs_destroy(jm);
    ck_assert_msg(st == TD_JOB_CANCELLED, "resumed job ended %s, want cancelled",
                  td_job_state_name(st));
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

/* td_jobs_submit must not hold the job manager's mutex while it waits for the store:
 * everything else that takes that mutex (GET /readyz through td_jobs_stats_get, every
 * worker at every epoch boundary, every event stream) would wait for the store too. Here
 * the store is held up by another SQLite connection owning the write lock (an operator's
 * sqlite3 shell, a backup); the submit waits out the busy timeout, the stats must not. */
typedef struct submit_arg {
    td_jobs *jm;
    const char *ds;
    td_status st;
} submit_arg;

static void *submit_thread(void *p)
{
    submit_arg *a = p;
    char id[TD_ID_MAX];
    td_job_spec spec = {
        .model = "softmax", .dataset = a->ds, .hyperparameters = "{\"epochs\":1}", .epochs = 1};
    a->st = td_jobs_submit(a->jm, &spec, 0, id, NULL);
    return NULL;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

START_TEST(submit_does_not_hold_jobs_lock_across_store)
{
    mk_tmpdir();
    td_store *s = NULL;
    EXPECT(TD_OK, td_store_open(&s, g_dir, E));
    td_dataset_meta m;
    put_ds(s, 16, &m);
    td_jobs *jm = NULL;
    td_jobs_opts o = {.workers = 1, .cores = 1, .max_queued = 8, .checkpoint_interval_s = 60};
    EXPECT(TD_OK, td_jobs_start(&jm, s, &o, E));

    char path[512];
    snprintf(path, sizeof path, "%s/traind.db", g_dir);
    sqlite3 *other = NULL;
    ck_assert_int_eq(sqlite3_open(path, &other), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    submit_arg a = {.jm = jm, .ds = m.id};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, submit_thread, &a), 0);
    usleep(300 * 1000); /* the submit is now waiting for the write lock */
    double t0 = mono_s();
    td_jobs_stats stats;
    td_jobs_stats_get(jm, &stats);
    double waited = mono_s() - t0;
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    pthread_join(th, NULL);
    td_jobs_destroy(jm);
    td_store_close(s);
    rm_tmpdir();
    ck_assert_msg(waited < 0.5, "td_jobs_stats_get waited %.2f s for a submit's store call",
                  waited);
    ck_assert_int_eq(a.st, TD_OK); /* the store was free again well within its busy timeout */
}
END_TEST

/* Requests with one Idempotency-Key and an inline dataset ("data"), sent at once: one job
 * comes of them, and every request stores its dataset before it knows; the ones that lose
 * the race must not leave theirs behind (a dataset no job refers to). */
typedef struct race_arg {
    int port;
    const char *body, *hdrs;
    int status;
} race_arg;

static void *race_post(void *p)
{
    race_arg *a = p;
    httpc_resp r;
    a->status = httpc_request(a->port, "POST", "/v1/jobs", a->hdrs, a->body, strlen(a->body), &r);
    httpc_free(&r);
    return NULL;
}

static int count_datasets(int port)
{
    httpc_resp r;
    ck_assert_int_eq(httpc_request(port, "GET", "/v1/datasets?limit=1000", NULL, NULL, 0, &r), 200);
    cJSON *j = cJSON_Parse(r.body);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "datasets"));
    cJSON_Delete(j);
    httpc_free(&r);
    return n;
}

START_TEST(idempotent_inline_data_race_leaves_no_dataset)
{
    httpc_daemon d;
    int port = httpc_daemon_start(&d, NULL, NULL, NULL);
    ck_assert_msg(port > 0, "daemon did not start");
    /* A dataset big enough that storing and validating it takes a moment. */
    size_t cap = 64u << 10;
    char *body = malloc(cap), *p = body;
    p += sprintf(p,
                 "{\"model\":\"softmax\",\"hyperparameters\":{\"epochs\":1},"
                 "\"data\":{\"X\":[");
    for (int i = 0; i < 1500; i++)
        p += sprintf(p, "%s[%d.5,%d]", i ? "," : "", i % 13, i % 7);
    p += sprintf(p, "],\"y\":[");
    for (int i = 0; i < 1500; i++)
        p += sprintf(p, "%s%d", i ? "," : "", i % 3);
    sprintf(p, "]}}");
    enum { ROUNDS = 6, CLIENTS = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        char hdrs[128];
        snprintf(hdrs, sizeof hdrs, "Content-Type: application/json\nIdempotency-Key: race-%d",
                 round);
        pthread_t th[CLIENTS];
        race_arg a[CLIENTS];
        for (int c = 0; c < CLIENTS; c++) {
            a[c] = (race_arg){.port = port, .body = body, .hdrs = hdrs};
            ck_assert_int_eq(pthread_create(&th[c], NULL, race_post, &a[c]), 0);
        }
        for (int c = 0; c < CLIENTS; c++) {
            pthread_join(th[c], NULL);
            ck_assert_int_eq(a[c].status, 202);
        }
    }
    int n = count_datasets(port);
    api_stop(&d);
    free(body);
    ck_assert_msg(n == ROUNDS, "%d datasets for %d jobs: the losers' inline data leaked", n,
                  ROUNDS);
}
END_TEST

/* After a crash at epoch 10 with the checkpoint at 8, resuming truncates the history to 8:
 * the job's progress must go back to 8 with it, not show 10 over 8 rows. */
START_TEST(history_truncate_lowers_progress)
{
    mk_tmpdir();
    td_store *s = NULL;
    EXPECT(TD_OK, td_store_open(&s, g_dir, E));
    td_dataset_meta m;
    put_ds(s, 8, &m);
    td_job_spec spec = {.model = "softmax", .dataset = m.id, .hyperparameters = "{}", .epochs = 20};
    char id[TD_ID_MAX];
    EXPECT(TD_OK, td_store_job_insert(s, &spec, id, E));
    const char *names[] = {"epoch", "loss"};
    EXPECT(TD_OK, td_store_history_columns_set(s, id, names, 2, E));
    char ck[16] = "checkpoint-8";
    for (int e = 1; e <= 10; e++) {
        double rec[2] = {e, 1.0 / e};
        EXPECT(TD_OK,
               commit_epoch(s, id, e, rec, 2, NULL, e == 8 ? ck : NULL, e == 8 ? sizeof ck : 0, E));
    }
    EXPECT(TD_OK, td_store_history_truncate(s, id, 8, E));
    td_job_row row;
    EXPECT(TD_OK, td_store_job_get(s, id, &row, E));
    ck_assert_int_eq(row.epoch, 8);
    td_job_row_fini(&row);
    td_history h;
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 8);
    td_history_fini(&h);
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

Suite *suite_jobs(void)
{
    Suite *s = suite_create("jobs");
    TCase *tc = tcase_create("jobs");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, cancel_requested_survives_restart);
    tcase_add_test(tc, history_truncate_lowers_progress);
    tcase_add_test(tc, idempotent_inline_data_race_leaves_no_dataset);
    tcase_add_test(tc, submit_does_not_hold_jobs_lock_across_store);
    suite_add_tcase(s, tc);
    return s;
}
