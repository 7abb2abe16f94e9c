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

#define CLIENTS 3
#define PER_CLIENT 8
#define NJOBS (CLIENTS * PER_CLIENT)

/* A daemon over dir (NULL: a new one) with a queue of 2 and 2 workers. */
static httpc_daemon start(const char *dir)
{
    return api_start(dir, "max_queued_jobs = 2\nworkers = 2\n", NULL, NULL);
}

typedef struct client {
    int port;
    const char *body;
    char ids[PER_CLIENT][64];
    int busy;   /* 429s retried */
    int failed; /* another status, or no id */
} client;

static void *submit(void *arg)
{
    client *c = arg;
    for (int i = 0; i < PER_CLIENT && !c->failed; i++) {
        for (;;) {
            api_call r = api_req(c->port, "POST", "/v1/jobs", c->body);
            if (r.status == 202 && api_str(r.json, "id"))
                snprintf(c->ids[i], sizeof c->ids[i], "%s", api_str(r.json, "id"));
            else if (r.status == 429)
                c->busy++;
            else
                c->failed = 1;
            int again = r.status == 429;
            api_done(&r);
            if (!again) break;
        }
    }
    return NULL;
}

/* Submits NJOBS one-epoch softmax jobs from CLIENTS threads; ids[] gets them. */
static void submit_all(int port, char ids[NJOBS][64])
{
    api_call r = api_req(port, "POST", "/v1/datasets",
                         "{\"X\":[[0,1],[1,0],[1,1],[0,0],[2,1],[1,2]],\"y\":[0,1,0,1,2,2]}");
    ck_assert_int_eq(r.status, 201);
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":1,\"lr\":0.5}}",
             api_str(r.json, "id"));
    api_done(&r);
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

/* Every job succeeded with the same weights (same data, same settings, one epoch). */
static void check_all_succeeded(int port, char ids[NJOBS][64])
{
    char *first = NULL;
    for (int i = 0; i < NJOBS; i++) {
        api_expect_state(port, ids[i], "succeeded", 30);
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs/%s/model", ids[i]);
        api_call r = api_req(port, "GET", path, NULL);
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
        api_done(&r);
    }
    free(first);
}

START_TEST(one_epoch_jobs_from_concurrent_clients_all_succeed_with_their_models)
{
    httpc_daemon d = start(NULL);
    char ids[NJOBS][64];
    submit_all(d.port, ids);
    check_all_succeeded(d.port, ids);
    api_term(&d);
    /* recorded for good: a restart finds nothing to resume */
    httpc_daemon d2 = start(d.dir);
    char *log = httpc_daemon_log(&d2);
    ck_assert_msg(!strstr(log, "recovered"), "a restart resumed jobs: %s", log);
    free(log);
    check_all_succeeded(d2.port, ids);
    api_stop(&d2);
}
END_TEST

START_TEST(a_stop_while_ends_are_pending_loses_no_job)
{
    httpc_daemon d = start(NULL);
    char ids[NJOBS][64];
    submit_all(d.port, ids);
    /* at once: the last jobs are queued, running or handed to the committer */
    api_term(&d);
    httpc_daemon d2 = start(d.dir);
    check_all_succeeded(d2.port, ids);
    char *log = httpc_daemon_log(&d2);
    ck_assert_msg(!strstr(log, "crashed"), "a job was counted as crashed: %s", log);
    free(log);
    api_stop(&d2);
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
