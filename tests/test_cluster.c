/* test_cluster.c — several daemons on one PostgreSQL store (issue 17), against a real
 * throwaway server (tests/pgtest.h): they share one queue, any of them answers for any job
 * (status, events, model, cancel), and a daemon killed -9 in the middle of a job loses
 * nothing: another resumes it from its last checkpoint, bit-identically. */
#define _GNU_SOURCE
#include <check.h>
#include <cJSON.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "pgtest.h"

#define NJOBS 4
#define EPOCHS 400
#define DS                                                                              \
    "{\"X\":[[0,1],[1,0],[0.5,0.2],[0.1,0.9],[0.3,0.3],[0.9,0.8],[0.2,0.7],[0.6,0.1]]," \
    "\"y\":[0,1,1,0,0,1,0,1]}"

static char *post_job(int port, const char *ds, int seed, int epochs)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"mlp\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"epochs\":%d,\"seed\":%d,\"hidden\":[16],\"batch_size\":4}}",
             ds, epochs, seed);
    return api_post_id(port, "/v1/jobs", body, 202);
}

/* A daemon with `conf` (plus the common lines) as its config file. */
static void start(httpc_daemon *d, const char *dir, const char *conf)
{
    char text[1100];
    ck_assert_int_lt(strlen(conf), 1024);
    snprintf(text, sizeof text, "%scheckpoint_interval_s = 0\nworkers = 1\n", conf);
    *d = api_start(dir, text, NULL, NULL);
}

/* Reads the event stream of job id from port until needle appears (1) or timeout_s. */
static int stream_shows(int port, const char *id, const char *needle, double timeout_s)
{
    char reqs[256], buf[65536];
    size_t len = 0;
    int fd = httpc_connect(port);
    ck_assert_int_ge(fd, 0);
    snprintf(reqs, sizeof reqs, "GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\n\r\n", id);
    ck_assert_int_eq(httpc_send_all(fd, reqs, strlen(reqs)), 0);
    int found = 0;
    for (double t0 = httpc_now(); !found && httpc_now() - t0 < timeout_s;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = '\0';
        found = strstr(buf, needle) != NULL;
        if (len > sizeof buf / 2) { /* keep the tail */
            memmove(buf, buf + len - 1024, 1024);
            len = 1024;
        }
    }
    close(fd);
    return found;
}

START_TEST(two_daemons_share_the_queue_and_survive_a_kill)
{
    char uri[512], conf[1024];
    td_pgtest_newdb(uri, sizeof uri);
    httpc_daemon a, b, ref;
    snprintf(conf, sizeof conf, "store = %s\nlease_s = 3\nnode_name = a\n", uri);
    start(&a, NULL, conf);
    snprintf(conf, sizeof conf, "store = %s\nlease_s = 3\nnode_name = b\n", uri);
    start(&b, NULL, conf);

    /* one queue: jobs submitted to either daemon, run by both */
    char *ds = api_post_id(a.port, "/v1/datasets", DS, 201);
    char *jobs[NJOBS];
    for (int i = 0; i < NJOBS; i++)
        jobs[i] = post_job(i % 2 ? b.port : a.port, ds, i + 1, EPOCHS);

    /* a job running on a, seen from b (status, then its event stream), well under way */
    const char *victim = NULL;
    for (double t0 = httpc_now(); !victim; usleep(20000)) {
        ck_assert_msg(httpc_now() - t0 < 20, "no job ran on a");
        for (int i = 0; i < NJOBS && !victim; i++) {
            cJSON *j = api_get_json(b.port, "/v1/jobs/%s", jobs[i]);
            if (api_is(j, "state", "running") && api_is(j, "node", "a") &&
                api_num(api_item(j, "progress"), "epoch") >= 5)
                victim = jobs[i];
            cJSON_Delete(j);
        }
    }
    ck_assert_msg(stream_shows(b.port, victim, "event: progress", 10),
                  "b streams no progress of %s, which a runs", victim);
    cJSON *v = api_get_json(b.port, "/v1/jobs/%s", victim);
    ck_assert_str_eq(api_str(v, "state"), "running"); /* killed in the middle of it */
    cJSON_Delete(v);
    ck_assert_int_eq(httpc_daemon_stop(&a, SIGKILL, 5), 128 + SIGKILL);

    /* b takes the victim over once its lease expires, and finishes everything */
    char *models[NJOBS];
    int seen_b = 0;
    for (int i = 0; i < NJOBS; i++) {
        cJSON *j = api_wait_job(b.port, jobs[i], 60);
        ck_assert_msg(api_is(j, "state", "succeeded"), "job %s: %s", jobs[i], api_str(j, "state"));
        seen_b += api_is(j, "node", "b");
        if (jobs[i] == victim) {
            ck_assert_str_eq(api_str(j, "node"), "b");
            ck_assert_int_ge(api_num(j, "restarts"), 1);
        }
        cJSON_Delete(j);
        models[i] = api_get_raw(b.port, "/v1/jobs/%s/model", jobs[i]);
    }
    ck_assert_int_ge(seen_b, 1);

    /* a cancel sent to one daemon reaches the job running on another: a comes back (over
     * its state_dir) and cancels a long job b runs */
    snprintf(conf, sizeof conf, "store = %s\nlease_s = 3\nnode_name = a\n", uri);
    start(&a, a.dir, conf);
    char *longjob = post_job(b.port, ds, 9, 1000000);
    for (double t0 = httpc_now();; usleep(20000)) {
        cJSON *j = api_get_json(a.port, "/v1/jobs/%s", longjob);
        int running = api_is(j, "state", "running");
        cJSON_Delete(j);
        if (running) break;
        ck_assert_msg(httpc_now() - t0 < 20, "the long job never ran");
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", longjob);
    api_call c = api_req(a.port, "POST", path, NULL);
    ck_assert_msg(c.status == 202 || c.status == 200, "cancel: %d %s", c.status, c.r.body);
    api_done(&c);
    api_expect_state(a.port, longjob, "cancelled", 20);
    api_term(&a);
    api_term(&b);

    /* the same jobs on one daemon with its own SQLite store: the same models, bit for bit */
    start(&ref, NULL, "");
    char *ds2 = api_post_id(ref.port, "/v1/datasets", DS, 201);
    for (int i = 0; i < NJOBS; i++) {
        char *id = post_job(ref.port, ds2, i + 1, EPOCHS);
        api_expect_state(ref.port, id, "succeeded", 60);
        char *m = api_get_raw(ref.port, "/v1/jobs/%s/model", id);
        ck_assert_msg(strcmp(m, models[i]) == 0,
                      "job %d's model differs from a single-daemon "
                      "run%s",
                      i, jobs[i] == victim ? " (the one resumed after the kill)" : "");
        free(m);
        free(id);
    }
    api_term(&ref);
    for (int i = 0; i < NJOBS; i++)
        free(jobs[i]), free(models[i]);
    free(ds), free(ds2), free(longjob);
    httpc_daemon_cleanup(&a);
    httpc_daemon_cleanup(&b);
    httpc_daemon_cleanup(&ref);
}
END_TEST

Suite *suite_cluster(void)
{
    td_pgtest_server();
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("pg");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, two_daemons_share_the_queue_and_survive_a_kill);
    suite_add_tcase(s, tc);
    return s;
}
