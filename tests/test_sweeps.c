/* test_sweeps.c — hyperparameter sweeps (issue 18) against a live daemon:
 *   grid       a 4x2 grid names the trial with the lowest final val_loss; the trials are
 *              ordinary jobs carrying a "sweep" field
 *   halving    9 random trials, min_epochs 3, eta 3, epochs 27: 6 trials end at 3 epochs,
 *              2 at 9 and 1 at 27; each rung keeps the best third by the metric at the
 *              rung's epoch; the winner's model equals, byte for byte, that of one
 *              uninterrupted job with its hyperparameters
 *   validation every bad body is refused with the field and the rule, nothing stored
 *   cancel     cancel a running sweep, delete refused while running, delete removes the
 *              trials' jobs
 *   restart    a kill -9 in the middle of successive halving: the restarted daemon
 *              finishes the sweep with the same counts and a bit-identical winner
 *   queue      a sweep larger than max_queued_jobs runs through, and leaves room in the
 *              queue for other jobs */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <cJSON.h>

#include "api.h"
#include "pgtest.h"

static void post_datasets(int port, char **ds, char **val)
{
    char *b = api_dataset_body(200, 4, 3, 7);
    *ds = api_post_id(port, "/v1/datasets", b, 201);
    free(b);
    b = api_dataset_body(60, 4, 3, 99);
    *val = api_post_id(port, "/v1/datasets", b, 201);
    free(b);
}

/* The value of column col at epoch e in the job's history. */
static double history_at(int port, const char *job, const char *col, int e)
{
    cJSON *h = api_get_json(port, "/v1/jobs/%s/losses", job);
    const cJSON *epochs = api_item(h, "epoch"), *v = api_item(h, col);
    double out = NAN;
    for (int i = 0; i < cJSON_GetArraySize(epochs); i++)
        if ((int)cJSON_GetArrayItem(epochs, i)->valuedouble == e)
            out = cJSON_GetArrayItem(v, i)->valuedouble;
    cJSON_Delete(h);
    ck_assert_msg(!isnan(out), "job %s has no %s at epoch %d", job, col, e);
    return out;
}

/* ---- grid ---------------------------------------------------------------------------- */

START_TEST(grid_names_lowest_val_loss)
{
    httpc_daemon d = api_start(NULL, "workers = 2\n", NULL, NULL);
    char *ds, *val, body[1024];
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\","
             "\"hyperparameters\":{\"epochs\":8},"
             "\"search\":{\"lr\":[0.5,0.1,0.02,0.004],\"l2\":[0,0.05]}}",
             ds, val);
    api_call c = api_req(d.port, "POST", "/v1/sweeps", body);
    ck_assert_msg(c.status == 202, "%d %s", c.status, c.r.body);
    char *id = strdup(api_str(c.json, "id"));
    ck_assert_str_eq(api_str(c.json, "metric"), "val_loss");
    ck_assert_str_eq(api_str(c.json, "mode"), "min");
    ck_assert_int_eq(cJSON_GetArraySize(api_item(c.json, "trials")), 8);
    api_done(&c);
    cJSON *s = api_wait_sweep(d.port, id, 60);
    ck_assert_str_eq(api_str(s, "state"), "succeeded");
    const cJSON *trials = api_item(s, "trials");
    ck_assert_int_eq(cJSON_GetArraySize(trials), 8);
    double lowest = INFINITY;
    const char *argmin = NULL;
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, trials)
    {
        /* grid order: lr varies slowest */
        const cJSON *hp = api_item(t, "hyperparameters");
        static const double lrs[] = {0.5, 0.1, 0.02, 0.004}, l2s[] = {0, 0.05};
        ck_assert_double_eq(api_num(hp, "lr"), lrs[i / 2]);
        ck_assert_double_eq(api_num(hp, "l2"), l2s[i % 2]);
        ck_assert_str_eq(api_str(t, "state"), "succeeded");
        ck_assert_int_eq((int)api_num(t, "epoch"), 8);
        cJSON *job = api_get_json(d.port, "/v1/jobs/%s", api_str(t, "job"));
        ck_assert_str_eq(api_str(job, "sweep"), id); /* an ordinary job, marked */
        double v = api_num(api_item(job, "metrics"), "val_loss");
        ck_assert_double_eq(api_num(t, "metric"), v);
        ck_assert_double_eq(api_num(api_item(job, "hyperparameters"), "lr"), lrs[i / 2]);
        if (v < lowest) {
            lowest = v;
            argmin = api_str(t, "job");
        }
        cJSON_Delete(job);
        i++;
    }
    const cJSON *best = api_item(s, "best");
    ck_assert_str_eq(api_str(best, "job"), argmin);
    ck_assert_double_eq(api_num(best, "metric"), lowest);
    cJSON *jobs = api_get_json(d.port, "/v1/jobs?limit=100", NULL);
    int marked = 0;
    cJSON_ArrayForEach(t, api_item(jobs, "jobs")) marked +=
        api_str(t, "sweep") && !strcmp(api_str(t, "sweep"), id);
    ck_assert_int_eq(marked, 8);
    cJSON_Delete(jobs);
    cJSON_Delete(s);
    free(id);
    free(ds);
    free(val);
    api_stop(&d);
}
END_TEST

/* ---- successive halving ------------------------------------------------------------------ */

static const char *HALVING =
    "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\","
    "\"hyperparameters\":{\"epochs\":27,\"optimizer\":\"adam\",\"batch_size\":32},"
    "\"method\":\"random\",\"trials\":9,\"seed\":%d,"
    "\"search\":{\"lr\":{\"log_uniform\":[0.0005,0.2]},\"l2\":{\"uniform\":[0,0.02]}},"
    "\"schedule\":{\"successive_halving\":{\"min_epochs\":3,\"eta\":3}}}";

/* The halving's outcome: 6 at 3 epochs, 2 at 9, 1 at 27, each rung kept the best third by
 * val_loss at its epoch, and the winner is bit-identical to an uninterrupted job. */
static void check_halving(int port, const cJSON *s, const char *ds, const char *val)
{
    ck_assert_str_eq(api_str(s, "state"), "succeeded");
    int at[28] = {0};
    const cJSON *t, *trials = api_item(s, "trials"), *winner = NULL;
    cJSON_ArrayForEach(t, trials)
    {
        int e = (int)api_num(t, "epoch");
        ck_assert_msg(e == 3 || e == 9 || e == 27, "a trial ended at epoch %d", e);
        at[e]++;
        ck_assert_str_eq(api_str(t, "state"), "succeeded");
        ck_assert_int_eq(cJSON_IsTrue(api_item(t, "stopped_early")), e < 27);
        cJSON *job = api_get_json(port, "/v1/jobs/%s", api_str(t, "job"));
        ck_assert_int_eq(cJSON_IsTrue(api_item(job, "stopped_early")), e < 27);
        /* the full run's */
        ck_assert_int_eq((int)api_num(api_item(job, "progress"), "epochs"), 27);
        cJSON_Delete(job);
        if (e == 27) winner = t;
    }
    ck_assert_int_eq(at[3], 6);
    ck_assert_int_eq(at[9], 2);
    ck_assert_int_eq(at[27], 1);
    ck_assert_str_eq(api_str(api_item(s, "best"), "job"), api_str(winner, "job"));
    ck_assert_int_eq((int)api_num(api_item(s, "counts"), "stopped_early"), 8);
    /* rung 0 kept the 3 lowest val_loss at epoch 3; rung 1 the lowest at epoch 9 */
    double worst_kept = -INFINITY, best_dropped = INFINITY;
    cJSON_ArrayForEach(t, trials)
    {
        double v = history_at(port, api_str(t, "job"), "val_loss", 3);
        if (api_num(t, "epoch") > 3)
            worst_kept = fmax(worst_kept, v);
        else
            best_dropped = fmin(best_dropped, v);
    }
    ck_assert_msg(worst_kept <= best_dropped, "rung 0 kept %g, dropped %g", worst_kept,
                  best_dropped);
    cJSON_ArrayForEach(t, trials) if (api_num(t, "epoch") == 9)
        ck_assert(history_at(port, api_str(winner, "job"), "val_loss", 9) <=
                  history_at(port, api_str(t, "job"), "val_loss", 9));
    /* the same hyperparameters as one uninterrupted job */
    cJSON *body = cJSON_CreateObject(), *hp = cJSON_Duplicate(api_item(s, "hyperparameters"), 1);
    cJSON *w;
    cJSON_ArrayForEach(w, api_item(winner, "hyperparameters"))
        cJSON_AddItemToObject(hp, w->string, cJSON_Duplicate(w, 1));
    cJSON_AddStringToObject(body, "model", "softmax");
    cJSON_AddStringToObject(body, "dataset", ds);
    cJSON_AddStringToObject(body, "validation", val);
    cJSON_AddItemToObject(body, "hyperparameters", hp);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    char *job = api_post_id(port, "/v1/jobs", text, 202);
    free(text);
    api_expect_state(port, job, "succeeded", 60);
    char *a = api_get_raw(port, "/v1/jobs/%s/model", job);
    char *b = api_get_raw(port, "/v1/jobs/%s/model", api_str(winner, "job"));
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    free(job);
}

START_TEST(halving_9_random_trials)
{
    httpc_daemon d = api_start(NULL, "workers = 2\n", NULL, NULL);
    char *ds, *val, body[1024];
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body, HALVING, ds, val, 5);
    char *id = api_post_id(d.port, "/v1/sweeps", body, 202);
    cJSON *s = api_wait_sweep(d.port, id, 60);
    check_halving(d.port, s, ds, val);
    ck_assert_int_eq((int)api_num(api_item(s, "rung"), "epochs"), 27);
    cJSON_Delete(s);
    free(id);
    free(ds);
    free(val);
    api_stop(&d);
}
END_TEST

/* ---- validation ------------------------------------------------------------------------ */

START_TEST(bad_sweeps_name_the_field)
{
    httpc_daemon d = api_start(NULL, "workers = 1\n", NULL, NULL);
    char *ds, *val;
    post_datasets(d.port, &ds, &val);
    static const struct {
        const char *rest, *field, *words;
    } cases[] = {
        {"\"search\":{\"lr\":{\"log_uniform\":[0,1]}},\"method\":\"random\",\"trials\":2",
         "search.lr.log_uniform", "bounds must be > 0"},
        {"\"search\":{\"lr\":{\"uniform\":[0.1,0.01]}},\"method\":\"random\",\"trials\":2",
         "search.lr.uniform", "a < b"},
        {"\"search\":{\"lr\":{\"uniform\":[0.01,0.1]}}", "search.lr", "method \"random\""},
        {"\"search\":{\"learning_rate\":[0.1]}", "search.learning_rate", "did you mean \"lr\""},
        {"\"search\":{\"lr\":{\"normal\":[0,1]}},\"method\":\"random\",\"trials\":2",
         "search.lr.normal", "unknown key"},
        {"\"search\":{\"lr\":[0.1,-1]}", "hyperparameters.lr", "trial 1 of 2"},
        {"\"search\":{\"hidden\":[[8]]}", "hyperparameters.hidden", "does not apply"},
        {"\"search\":{\"lr\":[0.1]},\"metric\":\"val_loss\"", "metric", "validation"},
        {"\"search\":{\"lr\":[0.1]},\"metric\":\"lower_bound\"", "metric", "not one"},
        {"\"search\":{\"lr\":[0.1]},\"mode\":\"up\"", "mode", "\"min\" or \"max\""},
        {"\"search\":{\"lr\":[0.1]},\"trials\":3", "trials", "method \"random\""},
        {"\"search\":{\"lr\":[0.1]},\"method\":\"random\"", "trials", "required"},
        {"\"search\":{}", "search", "required"},
        {"\"search\":{\"lr\":[0.1,0.2]},\"hyperparameters\":{\"epochs\":27},"
         "\"schedule\":{\"successive_halving\":{\"min_epochs\":27,\"eta\":3}}",
         "schedule.successive_halving.min_epochs", "below the trials' epochs (27)"},
        {"\"search\":{\"lr\":[0.1]},\"schedule\":{\"successive_halving\":{\"min_epochs\":1,"
         "\"eta\":1}}",
         "schedule.successive_halving.eta", "outside [2, "},
        {"\"search\":{\"epochs\":[10,20]},\"schedule\":{\"successive_halving\":"
         "{\"min_epochs\":2,\"eta\":2}}",
         "schedule", "same epochs"},
        {"\"search\":{\"lr\":[0.1]},\"hyperparameters\":{\"lr\":\"fast\"}", "hyperparameters.lr",
         "number"},
        {"\"search\":{\"lr\":[0.1]},\"hyperparameters\":{\"l2\":-1}", "hyperparameters.l2", ">= 0"},
        {"\"search\":{\"n_classes\":[3,2]}", "hyperparameters.n_classes",
         "trial 1 of 2 ({\"n_classes\":2}): n_classes is 2 but the targets need at least 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",%s}", ds,
                 cases[i].rest);
        api_call c = api_req(d.port, "POST", "/v1/sweeps", body);
        ck_assert_msg(c.status == 422, "case %zu: %d %s", i, c.status, c.r.body);
        const cJSON *e = api_item(c.json, "error");
        ck_assert_msg(api_str(e, "field") && !strcmp(api_str(e, "field"), cases[i].field),
                      "case %zu: field should be %s: %s", i, cases[i].field, c.r.body);
        ck_assert_msg(strstr(api_str(e, "message"), cases[i].words), "case %zu: %s", i, c.r.body);
        api_done(&c);
    }
    api_call c =
        api_req(d.port, "POST", "/v1/sweeps",
                "{\"model\":\"softmax\",\"dataset\":\"ds_nope\",\"search\":{\"lr\":[0.1]}}");
    ck_assert_int_eq(c.status, 422);
    ck_assert_str_eq(api_str(api_item(c.json, "error"), "field"), "dataset");
    api_done(&c);
    c = api_req(d.port, "POST", "/v1/sweeps", "{\"model\":");
    ck_assert_int_eq(c.status, 400);
    api_done(&c);
    cJSON *l = api_get_json(d.port, "/v1/sweeps", NULL); /* nothing was stored */
    ck_assert_int_eq(cJSON_GetArraySize(api_item(l, "sweeps")), 0);
    cJSON_Delete(l);
    l = api_get_json(d.port, "/v1/jobs", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(l, "jobs")), 0);
    cJSON_Delete(l);
    free(ds);
    free(val);
    api_stop(&d);
}
END_TEST

/* ---- cancel and delete -------------------------------------------------------------------- */

START_TEST(cancel_then_delete_removes_trials)
{
    httpc_daemon d = api_start(NULL, "workers = 1\n", NULL, NULL);
    char *ds, *val, body[1024];
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":1000000},\"search\":{\"lr\":[0.1,0.2,0.3]}}",
             ds);
    char *id = api_post_id(d.port, "/v1/sweeps", body, 202);
    char *job = NULL;
    for (double t0 = httpc_now(); !job; usleep(10000)) { /* until trial 0 runs */
        cJSON *s = api_get_json(d.port, "/v1/sweeps/%s", id);
        const cJSON *t0j = cJSON_GetArrayItem(api_item(s, "trials"), 0);
        if (!strcmp(api_str(s, "state"), "running") && !strcmp(api_str(t0j, "state"), "running"))
            job = strdup(api_str(t0j, "job"));
        ck_assert_str_eq(api_str(cJSON_GetArrayItem(api_item(s, "trials"), 2), "state"), "pending");
        cJSON_Delete(s);
        ck_assert(httpc_now() - t0 < 20);
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/sweeps/%s", id);
    api_call c = api_req(d.port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 409);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job); /* a trial ended on its own */
    c = api_req(d.port, "POST", path, NULL);
    ck_assert_int_eq(c.status, 202);
    api_done(&c);
    api_expect_state(d.port, job, "cancelled", 60);
    snprintf(path, sizeof path, "/v1/jobs/%s", job); /* its sweep still needs its row */
    c = api_req(d.port, "DELETE", path, NULL);
    ck_assert_msg(c.status == 409 && strstr(c.r.body, id), "%d %s", c.status, c.r.body);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/sweeps/%s/cancel", id);
    c = api_req(d.port, "POST", path, NULL);
    ck_assert_msg(c.status == 202, "%d %s", c.status, c.r.body);
    ck_assert(cJSON_IsTrue(api_item(c.json, "cancel_requested")));
    api_done(&c);
    cJSON *s = api_wait_sweep(d.port, id, 60);
    ck_assert_str_eq(api_str(s, "state"), "cancelled");
    int cancelled = (int)api_num(api_item(s, "counts"), "cancelled");
    ck_assert_msg(cancelled == 1 || cancelled == 2, "%d cancelled", cancelled);
    ck_assert_int_eq((int)api_num(api_item(s, "counts"), "pending"), 3 - cancelled);
    ck_assert_int_eq((int)api_num(api_item(s, "counts"), "succeeded"), 0);
    cJSON_Delete(s);
    api_expect_state(d.port, job, "cancelled", 60);
    c = api_req(d.port, "POST", path, NULL); /* cancelled already */
    ck_assert_int_eq(c.status, 409);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/sweeps/%s", id);
    c = api_req(d.port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 204);
    api_done(&c);
    c = api_req(d.port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 404);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    c = api_req(d.port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 404);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/datasets/%s", ds); /* no longer in use */
    c = api_req(d.port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 204);
    api_done(&c);
    free(job);
    free(id);
    free(ds);
    free(val);
    api_stop(&d);
}
END_TEST

/* ---- kill -9 and restart -------------------------------------------------------------------- */

START_TEST(halving_survives_kill_9)
{
    httpc_daemon d = api_start(NULL, "workers = 1\n", NULL, NULL);
    char *ds, *val, body[1024], dir[256];
    snprintf(dir, sizeof dir, "%s", d.dir);
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body, HALVING, ds, val, 11);
    char *id = api_post_id(d.port, "/v1/sweeps", body, 202);
    for (double t0 = httpc_now();; usleep(2000)) { /* until some trial waits at rung 0 */
        cJSON *s = api_get_json(d.port, "/v1/sweeps/%s", id);
        ck_assert_msg(strcmp(api_str(s, "state"), "succeeded") != 0, "done before the kill");
        int paused = (int)api_num(api_item(s, "counts"), "paused");
        cJSON_Delete(s);
        if (paused >= 2) break;
        ck_assert(httpc_now() - t0 < 30);
    }
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGKILL, 10), 128 + SIGKILL);
    d = api_start(dir, "workers = 1\n", NULL, NULL);
    cJSON *s = api_wait_sweep(d.port, id, 60);
    check_halving(d.port, s, ds, val);
    cJSON_Delete(s);
    free(id);
    free(ds);
    free(val);
    api_stop(&d);
}
END_TEST

/* ---- the queue bound ---------------------------------------------------------------------- */

START_TEST(sweep_never_fills_the_queue)
{
    httpc_daemon d = api_start(NULL, "workers = 1\nmax_queued_jobs = 2\n", NULL, NULL);
    char *ds, *val, body[1024];
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":5},\"search\":{\"lr\":[0.1,0.2,0.3,0.4],"
             "\"l2\":[0,0.1]}}",
             ds);
    char *id = api_post_id(d.port, "/v1/sweeps", body, 202);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":5}}",
             ds);
    char *job = api_post_id(d.port, "/v1/jobs", body, 202); /* room beside the sweep */
    cJSON *s = api_wait_sweep(d.port, id, 60);
    ck_assert_str_eq(api_str(s, "state"), "succeeded");
    ck_assert_int_eq((int)api_num(api_item(s, "counts"), "succeeded"), 8);
    cJSON_Delete(s);
    api_expect_state(d.port, job, "succeeded", 60);
    cJSON *l = api_get_json(d.port, "/v1/sweeps", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(l, "sweeps")), 1);
    ck_assert(!cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(api_item(l, "sweeps"), 0),
                                                "trials")); /* the listing is a summary */
    cJSON_Delete(l);
    free(job);
    free(id);
    free(ds);
    free(val);
    api_stop(&d);
}
END_TEST

Suite *suite_sweeps(void)
{
    Suite *s = suite_create("sweeps");
    TCase *tc = tcase_create("sweeps");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, grid_names_lowest_val_loss);
    tcase_add_test(tc, halving_9_random_trials);
    tcase_add_test(tc, bad_sweeps_name_the_field);
    tcase_add_test(tc, cancel_then_delete_removes_trials);
    tcase_add_test(tc, halving_survives_kill_9);
    tcase_add_test(tc, sweep_never_fills_the_queue);
    suite_add_tcase(s, tc);
    return s;
}

/* Two of them on a shared PostgreSQL store (issue 17; trials paused, continued, stopped,
 * resumed after a kill, deleted): a fresh database per test (api_pg_on). */
Suite *suite_sweeps_pg(void)
{
    td_pgtest_server();
    Suite *s = suite_create("sweeps_pg");
    TCase *tc = tcase_create("pg");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, api_pg_on, api_pg_off);
    tcase_add_test(tc, cancel_then_delete_removes_trials);
    tcase_add_test(tc, halving_survives_kill_9);
    suite_add_tcase(s, tc);
    return s;
}
