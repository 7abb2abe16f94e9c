/* test_crash.c — issue 10 item 1: no job can crash the daemon for good (the engine's
 * side, every model on extreme data, is test_crash_engine.c).
 *   http      the repro (an embed_gmm job on [[3e38,-3e38],[1e-45,0],[1,1]]) ends
 *             failed with a message naming the cause; the daemon stays healthy
 *   loop      a job that kills the daemon (test hook TD_FAULT_ABORT_IN_JOB) is resumed
 *             once, then failed with code "crashed" at the next start; the daemon then
 *             serves and trains; a SIGTERM shutdown does not count as a crash. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "testutil.h"

/* ========================================================================= http ==== */

static void expect_failed(int port, const char *job, const char *code, const char *needle)
{
    cJSON *j = api_wait_job(port, job, 30);
    ck_assert_str_eq(api_str(j, "state"), "failed");
    const cJSON *e = api_item(j, "error");
    ck_assert_str_eq(api_str(e, "code"), code);
    ck_assert_msg(strstr(api_str(e, "message"), needle) != NULL, "message \"%s\" lacks \"%s\"",
                  api_str(e, "message"), needle);
    cJSON_Delete(j);
}

#define ORDINARY_DS "{\"X\":[[0,1],[1,0],[0.5,0.2],[0.1,0.9]],\"y\":[0,1,1,0]}"

START_TEST(extreme_data_fails_the_job_and_the_daemon_serves_on)
{
    httpc_daemon d = api_start(NULL, "workers = 1\n", NULL, NULL);
    char *ds = api_post_id(d.port, "/v1/datasets",
                           "{\"X\":[[3e38,-3e38],[1e-45,0],[1,1]],\"y\":[0,1,0]}", 201);
    /* the repro: SEGV in td_gmm_initialize before the fix */
    char *embed =
        api_post_job(d.port, "embed_gmm", ds, "{\"iterations\":2,\"warmup_iterations\":0}");
    expect_failed(d.port, embed, "diverged", "embeddings became non-finite");
    const char *covs[] = {"full", "diag", "spherical", "tied"};
    for (int i = 0; i < 4; i++) {
        char hp[128];
        snprintf(hp, sizeof hp, "{\"components\":2,\"covariance\":\"%s\"}", covs[i]);
        char *gmm = api_post_job(d.port, "gmm", ds, hp);
        expect_failed(d.port, gmm, "diverged", "finite");
        free(gmm);
    }
    char *mlp = api_post_job(d.port, "mlp", ds, "{\"epochs\":2}");
    expect_failed(d.port, mlp, "diverged", "non-finite");
    api_expect_healthy(d.port);
    /* and it still trains */
    char *ok_ds = api_post_id(d.port, "/v1/datasets", ORDINARY_DS, 201);
    char *ok = api_post_job(d.port, "softmax", ok_ds, "{\"epochs\":3}");
    api_expect_state(d.port, ok, "succeeded", 30);
    api_stop(&d);
    free(ds), free(embed), free(mlp), free(ok_ds), free(ok);
}
END_TEST

/* Starts the daemon over dir with the abort hook and waits for it to die of SIGABRT
 * inside the resumed job (jobs resume before the daemon listens: it may die first). */
static void crash_once(const char *dir, const char *conf)
{
    const char *env[] = {"TD_FAULT_ABORT_IN_JOB=1", NULL};
    httpc_daemon d;
    api_start_any(&d, dir, conf, NULL, env);
    int code = httpc_daemon_stop(&d, 0, 30); /* only wait */
    char *log = httpc_daemon_log(&d);
    ck_assert_msg(code == 128 + SIGABRT, "exit %d, want SIGABRT: %s", code, log);
    ck_assert_msg(strstr(log, "TD_FAULT_ABORT_IN_JOB: aborting") != NULL, "%s", log);
    free(log);
}

START_TEST(a_job_that_kills_the_daemon_twice_fails_as_crashed)
{
    const char *conf = "workers = 1\ncheckpoint_interval_s = 0\n";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", d.dir);
    char *ds = api_post_id(d.port, "/v1/datasets", ORDINARY_DS, 201);
    char *job = api_post_job(d.port, "softmax", ds, "{\"epochs\":10000000}");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    /* two clean shutdowns while it runs (trains in this process): no crash counted */
    for (int i = 0, last = 0; i < 2; i++) {
        for (double t0 = httpc_now();; usleep(10000)) {
            api_call c = api_req(d.port, "GET", path, NULL);
            int e = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "progress"), "epoch")->valueint;
            int r = cJSON_GetObjectItem(c.json, "restarts")->valueint;
            api_done(&c);
            if (e > last && r == i) {
                last = e;
                break;
            }
            ck_assert_msg(httpc_now() - t0 < 20, "the job does not train");
        }
        api_term(&d);
        if (i == 0) d = api_start(dir, conf, NULL, NULL);
    }
    /* two deaths inside the job: after the first it resumes (and kills the daemon again) */
    crash_once(dir, conf);
    crash_once(dir, conf);
    /* the third start fails it instead of resuming it, hook still set: no abort */
    const char *env[] = {"TD_FAULT_ABORT_IN_JOB=1", NULL};
    d = api_start(dir, conf, NULL, env);
    expect_failed(d.port, job, "crashed", "died 2 times");
    api_call c = api_req(d.port, "GET", path, NULL);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint,
                     3); /* resumed twice, not a third time */
    api_done(&c);
    usleep(300000);
    api_expect_healthy(d.port);
    char *log = httpc_daemon_log(&d);
    ck_assert_msg(strstr(log, "it is not resumed again") != NULL, "%s", log);
    free(log);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST
Suite *suite_crash(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, extreme_data_fails_the_job_and_the_daemon_serves_on);
    tcase_add_test(tc, a_job_that_kills_the_daemon_twice_fails_as_crashed);
    suite_add_tcase(s, tc);
    return s;
}
