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

#define JSON_HDR "Content-Type: application/json"

typedef struct call {
    int status;
    cJSON *json;
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

static const cJSON *item(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "no \"%s\"", k);
    return v;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = item(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "\"%s\" is not a number", k);
    return v->valuedouble;
}

/* A daemon with conf (config file text) in a fresh directory, or over dir again. */
static httpc_daemon start(const char *dir, const char *conf)
{
    char d[256], path[300];
    if (dir) {
        snprintf(d, sizeof d, "%s", dir);
    } else {
        snprintf(d, sizeof d, "/tmp/traind-sweep-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(d));
    }
    snprintf(path, sizeof path, "%s/traind.conf", d);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(conf, f);
    fclose(f);
    const char *args[] = {"--config", path, NULL};
    httpc_daemon dm;
    if (httpc_daemon_start(&dm, d, args, NULL) <= 0)
        ck_abort_msg("daemon did not start: %s", httpc_daemon_log(&dm));
    return dm;
}

static void stop(httpc_daemon *d)
{
    ck_assert_int_eq(httpc_daemon_stop(d, SIGTERM, 20), 0);
    httpc_daemon_cleanup(d);
}

/* POSTs body, asserts want, returns the strdup'd id. */
static char *post_id(int port, const char *path, const char *body, int want)
{
    call c = req(port, "POST", path, body);
    ck_assert_msg(c.status == want, "POST %s: %d %s", path, c.status, c.r.body);
    char *id = strdup(str(c.json, "id"));
    done(&c);
    return id;
}

static cJSON *get_json(int port, const char *fmt, const char *id)
{
    char path[200];
    snprintf(path, sizeof path, fmt, id);
    call c = req(port, "GET", path, NULL);
    ck_assert_msg(c.status == 200, "GET %s: %d %s", path, c.status, c.r.body);
    cJSON *j = c.json;
    c.json = NULL;
    done(&c);
    return j;
}

static char *get_raw(int port, const char *fmt, const char *id)
{
    char path[200];
    snprintf(path, sizeof path, fmt, id);
    call c = req(port, "GET", path, NULL);
    ck_assert_msg(c.status == 200, "GET %s: %d %s", path, c.status, c.r.body);
    char *b = strdup(c.r.body);
    done(&c);
    return b;
}

/* n rows of d features from a fixed LCG, 3 classes by a linear rule (rows 0..2 are 0..2). */
static char *dataset_body(int n, int d, unsigned seed)
{
    cJSON *o = cJSON_CreateObject(), *X = cJSON_AddArrayToObject(o, "X"),
          *y = cJSON_AddArrayToObject(o, "y");
    for (int i = 0; i < n; i++) {
        cJSON *row = cJSON_CreateArray();
        double s[3] = {0};
        for (int j = 0; j < d; j++) {
            seed = seed * 1103515245u + 12345u;
            double x = (double)((seed >> 8) % 2000) / 1000.0 - 1.0;
            cJSON_AddItemToArray(row, cJSON_CreateNumber(x));
            for (int k = 0; k < 3; k++)
                s[k] += x * ((j + k) % 3 - 1) + 0.01 * k;
        }
        int best = s[1] > s[0] ? 1 : 0;
        best = s[2] > s[best] ? 2 : best;
        cJSON_AddItemToArray(X, row);
        cJSON_AddItemToArray(y, cJSON_CreateNumber(i < 3 ? i : best));
    }
    char *b = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return b;
}

static void post_datasets(int port, char **ds, char **val)
{
    char *b = dataset_body(200, 4, 7);
    *ds = post_id(port, "/v1/datasets", b, 201);
    free(b);
    b = dataset_body(60, 4, 99);
    *val = post_id(port, "/v1/datasets", b, 201);
    free(b);
}

/* Polls the sweep until it is terminal; returns it. */
static cJSON *wait_sweep(int port, const char *id)
{
    double t0 = httpc_now();
    for (;;) {
        cJSON *s = get_json(port, "/v1/sweeps/%s", id);
        const char *st = str(s, "state");
        if (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))
            return s;
        ck_assert_msg(httpc_now() - t0 < 60, "sweep %s still %s", id, st);
        cJSON_Delete(s);
        usleep(10000);
    }
}

static char *wait_job(int port, const char *id)
{
    double t0 = httpc_now();
    for (;;) {
        cJSON *j = get_json(port, "/v1/jobs/%s", id);
        char *st = strdup(str(j, "state"));
        cJSON_Delete(j);
        if (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))
            return st;
        ck_assert_msg(httpc_now() - t0 < 60, "job %s still %s", id, st);
        free(st);
        usleep(10000);
    }
}

/* The value of column col at epoch e in the job's history. */
static double history_at(int port, const char *job, const char *col, int e)
{
    cJSON *h = get_json(port, "/v1/jobs/%s/losses", job);
    const cJSON *epochs = item(h, "epoch"), *v = item(h, col);
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
    httpc_daemon d = start(NULL, "workers = 2\n");
    char *ds, *val, body[1024];
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\","
             "\"hyperparameters\":{\"epochs\":8},"
             "\"search\":{\"lr\":[0.5,0.1,0.02,0.004],\"l2\":[0,0.05]}}", ds, val);
    call c = req(d.port, "POST", "/v1/sweeps", body);
    ck_assert_msg(c.status == 202, "%d %s", c.status, c.r.body);
    char *id = strdup(str(c.json, "id"));
    ck_assert_str_eq(str(c.json, "metric"), "val_loss");
    ck_assert_str_eq(str(c.json, "mode"), "min");
    ck_assert_int_eq(cJSON_GetArraySize(item(c.json, "trials")), 8);
    done(&c);
    cJSON *s = wait_sweep(d.port, id);
    ck_assert_str_eq(str(s, "state"), "succeeded");
    const cJSON *trials = item(s, "trials");
    ck_assert_int_eq(cJSON_GetArraySize(trials), 8);
    double lowest = INFINITY;
    const char *argmin = NULL;
    int i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, trials) {
        /* grid order: lr varies slowest */
        const cJSON *hp = item(t, "hyperparameters");
        static const double lrs[] = {0.5, 0.1, 0.02, 0.004}, l2s[] = {0, 0.05};
        ck_assert_double_eq(num(hp, "lr"), lrs[i / 2]);
        ck_assert_double_eq(num(hp, "l2"), l2s[i % 2]);
        ck_assert_str_eq(str(t, "state"), "succeeded");
        ck_assert_int_eq((int)num(t, "epoch"), 8);
        cJSON *job = get_json(d.port, "/v1/jobs/%s", str(t, "job"));
        ck_assert_str_eq(str(job, "sweep"), id); /* an ordinary job, marked */
        double v = num(item(job, "metrics"), "val_loss");
        ck_assert_double_eq(num(t, "metric"), v);
        ck_assert_double_eq(num(item(job, "hyperparameters"), "lr"), lrs[i / 2]);
        if (v < lowest) {
            lowest = v;
            argmin = str(t, "job");
        }
        cJSON_Delete(job);
        i++;
    }
    const cJSON *best = item(s, "best");
    ck_assert_str_eq(str(best, "job"), argmin);
    ck_assert_double_eq(num(best, "metric"), lowest);
    cJSON *jobs = get_json(d.port, "/v1/jobs?limit=100", NULL);
    int marked = 0;
    cJSON_ArrayForEach(t, item(jobs, "jobs"))
        marked += str(t, "sweep") && !strcmp(str(t, "sweep"), id);
    ck_assert_int_eq(marked, 8);
    cJSON_Delete(jobs);
    cJSON_Delete(s);
    free(id);
    free(ds);
    free(val);
    stop(&d);
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
    ck_assert_str_eq(str(s, "state"), "succeeded");
    int at[28] = {0};
    const cJSON *t, *trials = item(s, "trials"), *winner = NULL;
    cJSON_ArrayForEach(t, trials) {
        int e = (int)num(t, "epoch");
        ck_assert_msg(e == 3 || e == 9 || e == 27, "a trial ended at epoch %d", e);
        at[e]++;
        ck_assert_str_eq(str(t, "state"), "succeeded");
        ck_assert_int_eq(cJSON_IsTrue(item(t, "stopped_early")), e < 27);
        cJSON *job = get_json(port, "/v1/jobs/%s", str(t, "job"));
        ck_assert_int_eq(cJSON_IsTrue(item(job, "stopped_early")), e < 27);
        ck_assert_int_eq((int)num(item(job, "progress"), "epochs"), 27); /* the full run's */
        cJSON_Delete(job);
        if (e == 27)
            winner = t;
    }
    ck_assert_int_eq(at[3], 6);
    ck_assert_int_eq(at[9], 2);
    ck_assert_int_eq(at[27], 1);
    ck_assert_str_eq(str(item(s, "best"), "job"), str(winner, "job"));
    ck_assert_int_eq((int)num(item(s, "counts"), "stopped_early"), 8);
    /* rung 0 kept the 3 lowest val_loss at epoch 3; rung 1 the lowest at epoch 9 */
    double worst_kept = -INFINITY, best_dropped = INFINITY;
    cJSON_ArrayForEach(t, trials) {
        double v = history_at(port, str(t, "job"), "val_loss", 3);
        if (num(t, "epoch") > 3)
            worst_kept = fmax(worst_kept, v);
        else
            best_dropped = fmin(best_dropped, v);
    }
    ck_assert_msg(worst_kept <= best_dropped, "rung 0 kept %g, dropped %g", worst_kept,
                  best_dropped);
    cJSON_ArrayForEach(t, trials)
        if (num(t, "epoch") == 9)
            ck_assert(history_at(port, str(winner, "job"), "val_loss", 9) <=
                      history_at(port, str(t, "job"), "val_loss", 9));
    /* the same hyperparameters as one uninterrupted job */
    cJSON *body = cJSON_CreateObject(), *hp = cJSON_Duplicate(item(s, "hyperparameters"), 1);
    cJSON *w;
    cJSON_ArrayForEach(w, item(winner, "hyperparameters"))
        cJSON_AddItemToObject(hp, w->string, cJSON_Duplicate(w, 1));
    cJSON_AddStringToObject(body, "model", "softmax");
    cJSON_AddStringToObject(body, "dataset", ds);
    cJSON_AddStringToObject(body, "validation", val);
    cJSON_AddItemToObject(body, "hyperparameters", hp);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    char *job = post_id(port, "/v1/jobs", text, 202);
    free(text);
    char *st = wait_job(port, job);
    ck_assert_str_eq(st, "succeeded");
    char *a = get_raw(port, "/v1/jobs/%s/model", job);
    char *b = get_raw(port, "/v1/jobs/%s/model", str(winner, "job"));
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
    free(st);
    free(job);
}

START_TEST(halving_9_random_trials)
{
    httpc_daemon d = start(NULL, "workers = 2\n");
    char *ds, *val, body[1024];
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body, HALVING, ds, val, 5);
    char *id = post_id(d.port, "/v1/sweeps", body, 202);
    cJSON *s = wait_sweep(d.port, id);
    check_halving(d.port, s, ds, val);
    ck_assert_int_eq((int)num(item(s, "rung"), "epochs"), 27);
    cJSON_Delete(s);
    free(id);
    free(ds);
    free(val);
    stop(&d);
}
END_TEST

/* ---- validation ------------------------------------------------------------------------ */

START_TEST(bad_sweeps_name_the_field)
{
    httpc_daemon d = start(NULL, "workers = 1\n");
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
         "\"eta\":1}}", "schedule.successive_halving.eta", "outside [2, "},
        {"\"search\":{\"epochs\":[10,20]},\"schedule\":{\"successive_halving\":"
         "{\"min_epochs\":2,\"eta\":2}}", "schedule", "same epochs"},
        {"\"search\":{\"lr\":[0.1]},\"hyperparameters\":{\"lr\":\"fast\"}",
         "hyperparameters.lr", "number"},
        {"\"search\":{\"lr\":[0.1]},\"hyperparameters\":{\"l2\":-1}", "hyperparameters.l2",
         ">= 0"},
        {"\"search\":{\"n_classes\":[3,2]}", "hyperparameters.n_classes",
         "trial 1 of 2 ({\"n_classes\":2}): n_classes is 2 but the targets need at least 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[1024];
        snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",%s}", ds,
                 cases[i].rest);
        call c = req(d.port, "POST", "/v1/sweeps", body);
        ck_assert_msg(c.status == 422, "case %zu: %d %s", i, c.status, c.r.body);
        const cJSON *e = item(c.json, "error");
        ck_assert_msg(str(e, "field") && !strcmp(str(e, "field"), cases[i].field),
                      "case %zu: field should be %s: %s", i, cases[i].field, c.r.body);
        ck_assert_msg(strstr(str(e, "message"), cases[i].words), "case %zu: %s", i, c.r.body);
        done(&c);
    }
    call c = req(d.port, "POST", "/v1/sweeps",
                 "{\"model\":\"softmax\",\"dataset\":\"ds_nope\",\"search\":{\"lr\":[0.1]}}");
    ck_assert_int_eq(c.status, 422);
    ck_assert_str_eq(str(item(c.json, "error"), "field"), "dataset");
    done(&c);
    c = req(d.port, "POST", "/v1/sweeps", "{\"model\":");
    ck_assert_int_eq(c.status, 400);
    done(&c);
    cJSON *l = get_json(d.port, "/v1/sweeps", NULL); /* nothing was stored */
    ck_assert_int_eq(cJSON_GetArraySize(item(l, "sweeps")), 0);
    cJSON_Delete(l);
    l = get_json(d.port, "/v1/jobs", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(item(l, "jobs")), 0);
    cJSON_Delete(l);
    free(ds);
    free(val);
    stop(&d);
}
END_TEST

/* ---- cancel and delete -------------------------------------------------------------------- */

START_TEST(cancel_then_delete_removes_trials)
{
    httpc_daemon d = start(NULL, "workers = 1\n");
    char *ds, *val, body[1024];
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":1000000},\"search\":{\"lr\":[0.1,0.2,0.3]}}", ds);
    char *id = post_id(d.port, "/v1/sweeps", body, 202);
    char *job = NULL;
    for (double t0 = httpc_now(); !job; usleep(10000)) { /* until trial 0 runs */
        cJSON *s = get_json(d.port, "/v1/sweeps/%s", id);
        const cJSON *t0j = cJSON_GetArrayItem(item(s, "trials"), 0);
        if (!strcmp(str(s, "state"), "running") && !strcmp(str(t0j, "state"), "running"))
            job = strdup(str(t0j, "job"));
        ck_assert_str_eq(str(cJSON_GetArrayItem(item(s, "trials"), 2), "state"), "pending");
        cJSON_Delete(s);
        ck_assert(httpc_now() - t0 < 20);
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/sweeps/%s", id);
    call c = req(d.port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 409);
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job); /* a trial ended on its own */
    c = req(d.port, "POST", path, NULL);
    ck_assert_int_eq(c.status, 202);
    done(&c);
    char *st0 = wait_job(d.port, job);
    ck_assert_str_eq(st0, "cancelled");
    free(st0);
    snprintf(path, sizeof path, "/v1/jobs/%s", job); /* its sweep still needs its row */
    c = req(d.port, "DELETE", path, NULL);
    ck_assert_msg(c.status == 409 && strstr(c.r.body, id), "%d %s", c.status, c.r.body);
    done(&c);
    snprintf(path, sizeof path, "/v1/sweeps/%s/cancel", id);
    c = req(d.port, "POST", path, NULL);
    ck_assert_msg(c.status == 202, "%d %s", c.status, c.r.body);
    ck_assert(cJSON_IsTrue(item(c.json, "cancel_requested")));
    done(&c);
    cJSON *s = wait_sweep(d.port, id);
    ck_assert_str_eq(str(s, "state"), "cancelled");
    int cancelled = (int)num(item(s, "counts"), "cancelled");
    ck_assert_msg(cancelled == 1 || cancelled == 2, "%d cancelled", cancelled);
    ck_assert_int_eq((int)num(item(s, "counts"), "pending"), 3 - cancelled);
    ck_assert_int_eq((int)num(item(s, "counts"), "succeeded"), 0);
    cJSON_Delete(s);
    char *st = wait_job(d.port, job);
    ck_assert_str_eq(st, "cancelled");
    free(st);
    c = req(d.port, "POST", path, NULL); /* cancelled already */
    ck_assert_int_eq(c.status, 409);
    done(&c);
    snprintf(path, sizeof path, "/v1/sweeps/%s", id);
    c = req(d.port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 204);
    done(&c);
    c = req(d.port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 404);
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    c = req(d.port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 404);
    done(&c);
    snprintf(path, sizeof path, "/v1/datasets/%s", ds); /* no longer in use */
    c = req(d.port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 204);
    done(&c);
    free(job);
    free(id);
    free(ds);
    free(val);
    stop(&d);
}
END_TEST

/* ---- kill -9 and restart -------------------------------------------------------------------- */

START_TEST(halving_survives_kill_9)
{
    httpc_daemon d = start(NULL, "workers = 1\n");
    char *ds, *val, body[1024], dir[256];
    snprintf(dir, sizeof dir, "%s", d.dir);
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body, HALVING, ds, val, 11);
    char *id = post_id(d.port, "/v1/sweeps", body, 202);
    for (double t0 = httpc_now();; usleep(2000)) { /* until some trial waits at rung 0 */
        cJSON *s = get_json(d.port, "/v1/sweeps/%s", id);
        ck_assert_msg(strcmp(str(s, "state"), "succeeded") != 0, "done before the kill");
        int paused = (int)num(item(s, "counts"), "paused");
        cJSON_Delete(s);
        if (paused >= 2)
            break;
        ck_assert(httpc_now() - t0 < 30);
    }
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGKILL, 10), 128 + SIGKILL);
    d = start(dir, "workers = 1\n");
    cJSON *s = wait_sweep(d.port, id);
    check_halving(d.port, s, ds, val);
    cJSON_Delete(s);
    free(id);
    free(ds);
    free(val);
    stop(&d);
}
END_TEST

/* ---- the queue bound ---------------------------------------------------------------------- */

START_TEST(sweep_never_fills_the_queue)
{
    httpc_daemon d = start(NULL, "workers = 1\nmax_queued_jobs = 2\n");
    char *ds, *val, body[1024];
    post_datasets(d.port, &ds, &val);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":5},\"search\":{\"lr\":[0.1,0.2,0.3,0.4],"
             "\"l2\":[0,0.1]}}", ds);
    char *id = post_id(d.port, "/v1/sweeps", body, 202);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":5}}", ds);
    char *job = post_id(d.port, "/v1/jobs", body, 202); /* room beside the sweep */
    cJSON *s = wait_sweep(d.port, id);
    ck_assert_str_eq(str(s, "state"), "succeeded");
    ck_assert_int_eq((int)num(item(s, "counts"), "succeeded"), 8);
    cJSON_Delete(s);
    char *st = wait_job(d.port, job);
    ck_assert_str_eq(st, "succeeded");
    free(st);
    cJSON *l = get_json(d.port, "/v1/sweeps", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(item(l, "sweeps")), 1);
    ck_assert(!cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(item(l, "sweeps"), 0),
                                                "trials")); /* the listing is a summary */
    cJSON_Delete(l);
    free(job);
    free(id);
    free(ds);
    free(val);
    stop(&d);
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
