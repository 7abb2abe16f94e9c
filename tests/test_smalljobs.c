/* test_smalljobs.c — issue 13 item 3 (W9): many one-epoch jobs from concurrent clients
 * against a short queue. A submit finding the queue full waits for a worker to take a job
 * before it answers 429; a job's end goes through the committer (jobs.c: its model file
 * unsynced, one syncfs and one transaction a batch), and every job still ends succeeded,
 * with its model, and stays so across a restart; ends handed over when SIGTERM comes are
 * recorded before the process exits, or resumed by the next start. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "testutil.h"

#define JSON_HDR "Content-Type: application/json"
#define CLIENTS 3
#define PER_CLIENT 8
#define NJOBS (CLIENTS * PER_CLIENT)

typedef struct call {
    int status;
    cJSON *json;                 /* parsed body, or NULL */
    httpc_resp r;
} call;

static call req(int port, const char *method, const char *path, const char *body)
{
    call c = {0};
    c.status = httpc_request(port, method, path, body ? JSON_HDR : NULL, body,
                             body ? strlen(body) : 0, &c.r);
    c.json = c.r.body ? cJSON_Parse(c.r.body) : NULL;
    return c;
}

static void done(call *c)
{
    cJSON_Delete(c->json);
    httpc_free(&c->r);
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A daemon over dir (NULL: a new one) with a queue of 2 and 2 workers. */
static httpc_daemon start(const char *dir)
{
    char path[300], tmpl[] = "/tmp/traind-small-XXXXXX";
    if (!dir)
        ck_assert_ptr_nonnull(dir = mkdtemp(tmpl));
    snprintf(path, sizeof path, "%s/small.conf", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("max_queued_jobs = 2\nworkers = 2\n", f);
    fclose(f);
    const char *args[] = {"--config", path, NULL};
    httpc_daemon d;
    if (httpc_daemon_start(&d, dir, args, NULL) <= 0) {
        char *log = httpc_daemon_log(&d);
        ck_abort_msg("daemon did not start: %s", log);
    }
    return d;
}

typedef struct client {
    int port;
    const char *body;
    char ids[PER_CLIENT][64];
    int busy;                    /* 429s retried */
    int failed;                  /* another status, or no id */
} client;

static void *submit(void *arg)
{
    client *c = arg;
    for (int i = 0; i < PER_CLIENT && !c->failed; i++) {
        for (;;) {
            call r = req(c->port, "POST", "/v1/jobs", c->body);
            if (r.status == 202 && str(r.json, "id"))
                snprintf(c->ids[i], sizeof c->ids[i], "%s", str(r.json, "id"));
            else if (r.status == 429)
                c->busy++;
            else
                c->failed = 1;
            int again = r.status == 429;
            done(&r);
            if (!again)
                break;
        }
    }
    return NULL;
}

/* Submits NJOBS one-epoch softmax jobs from CLIENTS threads; ids[] gets them. */
static void submit_all(int port, char ids[NJOBS][64])
{
    call r = req(port, "POST", "/v1/datasets",
                 "{\"X\":[[0,1],[1,0],[1,1],[0,0],[2,1],[1,2]],\"y\":[0,1,0,1,2,2]}");
    ck_assert_int_eq(r.status, 201);
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":1,\"lr\":0.5}}", str(r.json, "id"));
    done(&r);
    client c[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].port = port, c[i].body = body;
        ck_assert_int_eq(pthread_create(&th[i], NULL, submit, &c[i]), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(!c[i].failed, "client %d: a submission failed", i);
        for (int j = 0; j < PER_CLIENT; j++)
            memcpy(ids[i * PER_CLIENT + j], c[i].ids[j], 64);
    }
}

/* Waits (up to 30 s) until job id is terminal; returns its state (malloc'd). */
static char *wait_terminal(int port, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    double t0 = httpc_now();
    for (;;) {
        call r = req(port, "GET", path, NULL);
        ck_assert_int_eq(r.status, 200);
        const char *s = str(r.json, "state");
        ck_assert_ptr_nonnull(s);
        if (strcmp(s, "queued") != 0 && strcmp(s, "running") != 0) {
            char *out = strdup(s);
            done(&r);
            return out;
        }
        done(&r);
        ck_assert_msg(httpc_now() - t0 < 30, "job %s still %s after 30 s", id, s);
        usleep(10000);
    }
}

/* Every job succeeded with the same weights (same data, same settings, one epoch). */
static void check_all_succeeded(int port, char ids[NJOBS][64])
{
    char *first = NULL;
    for (int i = 0; i < NJOBS; i++) {
        char *state = wait_terminal(port, ids[i]);
        ck_assert_msg(strcmp(state, "succeeded") == 0, "job %s %s", ids[i], state);
        free(state);
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs/%s/model", ids[i]);
        call r = req(port, "GET", path, NULL);
        ck_assert_int_eq(r.status, 200);
        cJSON *W = cJSON_GetObjectItemCaseSensitive(r.json, "W");
        ck_assert_int_eq(cJSON_GetArraySize(W), 2); /* (D, K) = (2, 3) */
        ck_assert_int_eq(cJSON_GetArraySize(W->child), 3);
        char *w = cJSON_PrintUnformatted(W);
        if (!first)
            first = w;
        else {
            ck_assert_str_eq(w, first);
            free(w);
        }
        done(&r);
    }
    free(first);
}

START_TEST(one_epoch_jobs_from_concurrent_clients_all_succeed_with_their_models)
{
    httpc_daemon d = start(NULL);
    char ids[NJOBS][64];
    submit_all(d.port, ids);
    check_all_succeeded(d.port, ids);
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 20), 0);
    /* recorded for good: a restart finds nothing to resume */
    httpc_daemon d2 = start(d.dir);
    char *log = httpc_daemon_log(&d2);
    ck_assert_msg(!strstr(log, "recovered"), "a restart resumed jobs: %s", log);
    free(log);
    check_all_succeeded(d2.port, ids);
    ck_assert_int_eq(httpc_daemon_stop(&d2, SIGTERM, 20), 0);
    httpc_daemon_cleanup(&d2);
}
END_TEST

START_TEST(a_stop_while_ends_are_pending_loses_no_job)
{
    httpc_daemon d = start(NULL);
    char ids[NJOBS][64];
    submit_all(d.port, ids);
    /* at once: the last jobs are queued, running or handed to the committer */
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 20), 0);
    httpc_daemon d2 = start(d.dir);
    check_all_succeeded(d2.port, ids);
    char *log = httpc_daemon_log(&d2);
    ck_assert_msg(!strstr(log, "crashed"), "a job was counted as crashed: %s", log);
    free(log);
    ck_assert_int_eq(httpc_daemon_stop(&d2, SIGTERM, 20), 0);
    httpc_daemon_cleanup(&d2);
}
END_TEST

Suite *suite_smalljobs(void)
{
    Suite *s = suite_create("smalljobs");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, one_epoch_jobs_from_concurrent_clients_all_succeed_with_their_models);
    tcase_add_test(tc, a_stop_while_ends_are_pending_loses_no_job);
    suite_add_tcase(s, tc);
    return s;
}
