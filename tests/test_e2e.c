/* test_e2e.c — the daemon as users meet it: a real traind process on an ephemeral port,
 * a real state directory, requests over TCP. Covers the REST flow of SPEC §6, error
 * shapes and codes, Server-Sent Events, cancel, idempotency, the queue bound, auth, and
 * exact resume after SIGTERM and after kill -9. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "testutil.h"

#define JSON_HDR "Content-Type: application/json"

typedef struct call {
    int status;
    cJSON *json;                 /* parsed body, or NULL */
    httpc_resp r;
} call;

static call req(int port, const char *method, const char *path, const char *hdrs,
                const char *body)
{
    call c = {0};
    c.status = httpc_request(port, method, path, hdrs ? hdrs : (body ? JSON_HDR : NULL), body,
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

/* Asserts the SPEC error object and returns its code. */
static void expect_error(call *c, int status, const char *code, const char *field)
{
    ck_assert_msg(c->status == status, "status %d, want %d: %s", c->status, status,
                  c->r.body ? c->r.body : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->json, "error");
    ck_assert_msg(cJSON_IsObject(e), "no error object in %s", c->r.body);
    ck_assert_ptr_nonnull(str(e, "message"));
    if (code)
        ck_assert_str_eq(str(e, "code"), code);
    if (field)
        ck_assert_str_eq(str(e, "field"), field);
}

static httpc_daemon start(const char *dir, const char *const *args, const char *const *env)
{
    httpc_daemon d;
    int port = httpc_daemon_start(&d, dir, args, env);
    if (port <= 0) {
        char *log = httpc_daemon_log(&d);
        ck_abort_msg("daemon did not start: %s", log);
    }
    return d;
}

/* A dataset body: n rows of d features from a fixed pseudo-random sequence; labels from
 * a linear rule over K classes. */
static char *dataset_body(int n, int d, int K, unsigned seed)
{
    size_t cap = (size_t)n * (size_t)d * 16 + (size_t)n * 8 + 64;
    char *b = malloc(cap), *p = b;
    ck_assert(b);
    p += sprintf(p, "{\"name\":\"e2e\",\"X\":[");
    int *y = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        double best = -1e9;
        y[i] = 0;
        p += sprintf(p, "%s[", i ? "," : "");
        for (int j = 0; j < d; j++) {
            seed = seed * 1103515245u + 12345u;
            double x = ((seed >> 8) % 2000) / 1000.0 - 1.0;
            p += sprintf(p, "%s%.4f", j ? "," : "", x);
            for (int k = 0; k < K; k++) {
                double s = x * ((j + k) % 3 - 1) + 0.01 * k;
                if (j == d - 1 && s > best) {
                    best = s;
                    y[i] = k;
                }
            }
        }
        p += sprintf(p, "]");
    }
    p += sprintf(p, "],\"y\":[");
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%d", i ? "," : "", i < K ? i : y[i]); /* every class present */
    sprintf(p, "]}");
    free(y);
    return b;
}

static char *post_dataset(int port, int n, int d, int K)
{
    char *body = dataset_body(n, d, K, 7);
    call c = req(port, "POST", "/v1/datasets", NULL, body);
    free(body);
    ck_assert_msg(c.status == 201, "dataset: %d %s", c.status, c.r.body);
    char loc[128];
    ck_assert_ptr_nonnull(httpc_header(&c.r, "Location", loc, sizeof loc));
    char *id = strdup(str(c.json, "id"));
    ck_assert(strstr(loc, id) != NULL);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "n_samples")->valueint, n);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "n_features")->valueint, d);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "n_classes")->valueint, K);
    done(&c);
    return id;
}

static char *post_job(int port, const char *ds, const char *hp, const char *hdrs)
{
    char body[4096];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\",\"hyperparameters\":%s}", ds, hp);
    call c = req(port, "POST", "/v1/jobs", hdrs, body);
    ck_assert_msg(c.status == 202, "job: %d %s", c.status, c.r.body);
    char *id = strdup(str(c.json, "id"));
    done(&c);
    return id;
}

/* Polls the job until its state is terminal (or timeout_s); returns the state. */
static char *wait_job(int port, const char *id, double timeout_s)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    double t0 = httpc_now();
    for (;;) {
        call c = req(port, "GET", path, NULL, NULL);
        ck_assert_int_eq(c.status, 200);
        const char *st = str(c.json, "state");
        if (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled") ||
            httpc_now() - t0 > timeout_s) {
            char *s = strdup(st);
            done(&c);
            return s;
        }
        done(&c);
        usleep(20000);
    }
}

static int job_epoch(int port, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    call c = req(port, "GET", path, NULL, NULL);
    int e = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "progress"), "epoch")->valueint;
    done(&c);
    return e;
}

static char *get_body(int port, const char *fmt, const char *id)
{
    char path[160];
    snprintf(path, sizeof path, fmt, id);
    call c = req(port, "GET", path, NULL, NULL);
    ck_assert_msg(c.status == 200, "%s: %d %s", path, c.status, c.r.body);
    char *b = strdup(c.r.body);
    done(&c);
    return b;
}

/* ---- the walkthrough ---------------------------------------------------------------- */

START_TEST(rest_flow)
{
    httpc_daemon d = start(NULL, NULL, NULL);
    int port = d.port;
    call c = req(port, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_str_eq(str(c.json, "status"), "ok");
    done(&c);
    c = req(port, "GET", "/readyz", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    done(&c);

    char *ds = post_dataset(port, 300, 4, 3);
    char *job = post_job(port, ds, "{\"epochs\":40,\"lr\":0.5,\"l2\":0.01,\"seed\":3}", NULL);
    char *state = wait_job(port, job, 30);
    ck_assert_str_eq(state, "succeeded");
    free(state);

    /* The job object: resolved hyperparameters, progress, metrics. */
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    c = req(port, "GET", path, NULL, NULL);
    const cJSON *hp = cJSON_GetObjectItem(c.json, "hyperparameters");
    ck_assert_str_eq(str(hp, "optimizer"), "sgd");
    tu_close(cJSON_GetObjectItem(hp, "lr")->valuedouble, 0.5, 0, 0, "lr");
    const cJSON *prog = cJSON_GetObjectItem(c.json, "progress");
    ck_assert_int_eq(cJSON_GetObjectItem(prog, "epoch")->valueint, 40);
    tu_close(cJSON_GetObjectItem(prog, "fraction")->valuedouble, 1.0, 0, 0, "fraction");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "metrics"), "loss")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c.json, "error")));
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint, 0);
    done(&c);

    /* Losses: columnar JSON, the loss falls; CSV has a header and 40 rows. */
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", job);
    c = req(port, "GET", path, NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    const cJSON *loss = cJSON_GetObjectItem(c.json, "loss");
    ck_assert_int_eq(cJSON_GetArraySize(loss), 40);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "elapsed_s")), 40);
    ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "epoch"), 39)->valueint, 40);
    ck_assert(cJSON_GetArrayItem(loss, 39)->valuedouble < cJSON_GetArrayItem(loss, 0)->valuedouble);
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/losses?format=csv", job);
    c = req(port, "GET", path, NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert(strncmp(c.r.body, "epoch,elapsed_s,loss,", 21) == 0);
    int lines = 0;
    for (const char *p = c.r.body; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 41);
    done(&c);

    /* Model and predictions. */
    snprintf(path, sizeof path, "/v1/jobs/%s/model", job);
    c = req(port, "GET", path, NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_str_eq(str(c.json, "model"), "softmax");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "W")), 4);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "W"), 0)), 3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "b")), 3);
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    c = req(port, "POST", path, NULL, "{\"X\":[[0.1,0.2,0.3,0.4],[-1,0,1,0.5]]}");
    ck_assert_msg(c.status == 200, "predict: %s", c.r.body);
    const cJSON *probs = cJSON_GetObjectItem(c.json, "probabilities");
    ck_assert_int_eq(cJSON_GetArraySize(probs), 2);
    for (int i = 0; i < 2; i++) {
        double s = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetArrayItem(probs, i)) s += v->valuedouble;
        tu_close(s, 1.0, 0, 1e-5, "probability row sum");
    }
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "labels")), 2);
    done(&c);
    c = req(port, "POST", path, NULL, "{\"X\":[[0.1,0.2]]}");
    expect_error(&c, 422, NULL, NULL);
    done(&c);

    /* Listing and paging. */
    char *job2 = post_job(port, ds, "{\"epochs\":2}", NULL);
    free(wait_job(port, job2, 30));
    c = req(port, "GET", "/v1/jobs?limit=1", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "jobs")), 1);
    ck_assert_str_eq(str(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "jobs"), 0), "id"), job2);
    char next[64];
    snprintf(next, sizeof next, "%s", str(c.json, "next"));
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs?limit=1&after=%s", next);
    c = req(port, "GET", path, NULL, NULL);
    ck_assert_str_eq(str(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "jobs"), 0), "id"), job);
    done(&c);
    c = req(port, "GET", "/v1/jobs?state=running", NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "jobs")), 0);
    done(&c);
    c = req(port, "GET", "/v1/datasets", NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "datasets")), 1);
    done(&c);

    /* Metrics. */
    c = req(port, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_jobs{state=\"succeeded\"} 2"));
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_samples_trained_total"));
    done(&c);

    /* Cancel a finished job: 409; delete it: 204, then 404. */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job);
    c = req(port, "POST", path, NULL, NULL);
    expect_error(&c, 409, NULL, NULL);
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    c = req(port, "DELETE", path, NULL, NULL);
    ck_assert_int_eq(c.status, 204);
    done(&c);
    c = req(port, "GET", path, NULL, NULL);
    expect_error(&c, 404, NULL, NULL);
    done(&c);
    snprintf(path, sizeof path, "/v1/datasets/%s", ds);
    c = req(port, "DELETE", path, NULL, NULL);
    ck_assert_int_eq(c.status, 204);
    done(&c);

    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);
    free(ds), free(job), free(job2);
}
END_TEST

START_TEST(bad_requests_get_clear_errors)
{
    httpc_daemon d = start(NULL, NULL, NULL);
    int port = d.port;
    call c = req(port, "POST", "/v1/datasets", NULL, "{\"X\": [[1,2],[3]], \"y\": [0,1]}");
    expect_error(&c, 422, NULL, "X[1]");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\": [[1,2],[3,\"a\"]], \"y\": [0,1]}");
    expect_error(&c, 422, NULL, "X[1][1]");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\": [[1,2],[3,4]], \"y\": [0, 1.5]}");
    expect_error(&c, 422, NULL, "y[1]");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\": [[1,2],[3,4]], \"y\": [0,");
    expect_error(&c, 400, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(c.r.body, "byte"));
    done(&c);
    c = req(port, "POST", "/v1/datasets", "Content-Type: text/plain", "hello");
    expect_error(&c, 415, NULL, NULL);
    done(&c);
    c = req(port, "GET", "/v1/nothing", NULL, NULL);
    expect_error(&c, 404, NULL, NULL);
    done(&c);
    c = req(port, "PUT", "/v1/jobs", NULL, "{}");
    expect_error(&c, 405, NULL, NULL);
    done(&c);

    char *ds = post_dataset(port, 50, 3, 2);
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"learning_rate\":0.1}}", ds);
    c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, NULL, "hyperparameters.learning_rate");
    ck_assert_ptr_nonnull(strstr(c.r.body, "\\\"lr\\\""));
    done(&c);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"lr\":-1}}", ds);
    c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, NULL, "hyperparameters.lr");
    done(&c);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"intercept\":\"column0\"}}", ds);
    c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, NULL, "dataset.X[0][0]");
    done(&c);
    snprintf(body, sizeof body, "{\"model\":\"embed_gmm\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"iterations\":10,\"warmup_iterations\":10}}", ds);
    c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, NULL, "hyperparameters.warmup_iterations");
    done(&c);
    c = req(port, "POST", "/v1/jobs", NULL, "{\"model\":\"softmax\",\"dataset\":\"ds_nope\"}");
    ck_assert_int_ge(c.status, 404);
    ck_assert_int_le(c.status, 422);
    done(&c);
    c = req(port, "GET", "/v1/jobs?limit=0", NULL, NULL);
    expect_error(&c, 422, NULL, "limit");
    done(&c);

    /* /v1/loss runs the engine's loss. */
    c = req(port, "POST", "/v1/loss", NULL,
            "{\"loss\":\"cross_entropy\",\"logits\":[[1000,-1000],[0,0]],\"target\":[0,-100]}");
    ck_assert_msg(c.status == 200, "loss: %s", c.r.body);
    tu_close(cJSON_GetObjectItem(c.json, "loss")->valuedouble, 0.0, 0, 1e-6, "loss");
    done(&c);
    c = req(port, "POST", "/v1/loss", NULL,
            "{\"loss\":\"cross_entropy\",\"logits\":[[1,2]],\"target\":[-100]}");
    ck_assert_int_eq(c.status, 200);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c.json, "loss")));
    done(&c);

    c = req(port, "GET", "/healthz", NULL, NULL); /* still serving */
    ck_assert_int_eq(c.status, 200);
    done(&c);
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);
    free(ds);
}
END_TEST

/* ---- events, cancel, conflicts, idempotency, queue bound ---------------------------- */

START_TEST(events_stream_progress_and_end)
{
    httpc_daemon d = start(NULL, NULL, NULL);
    char *ds = post_dataset(d.port, 100, 3, 2);
    char *job = post_job(d.port, ds, "{\"epochs\":15}", NULL);
    char path[160];
    /* max_rate=0: every epoch, not at most 10 a second (events.h) */
    snprintf(path, sizeof path, "/v1/jobs/%s/events?max_rate=0", job);
    call c = req(d.port, "GET", path, NULL, NULL); /* returns when the stream ends */
    ck_assert_int_eq(c.status, 200);
    char ct[64];
    ck_assert_str_eq(httpc_header(&c.r, "Content-Type", ct, sizeof ct), "text/event-stream");
    int progress = 0;
    for (const char *p = c.r.body; (p = strstr(p, "event: progress")); p++)
        progress++;
    ck_assert_int_eq(progress, 15);
    ck_assert_ptr_nonnull(strstr(c.r.body, "\"epoch\":15"));
    const char *last = strstr(c.r.body, "\"state\":\"succeeded\"");
    ck_assert_ptr_nonnull(last);
    done(&c);
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);
    free(ds), free(job);
}
END_TEST

static char *write_config(const char *text)
{
    char *path = strdup("/tmp/traind-conf-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(cancel_conflicts_idempotency_and_queue_bound)
{
    char *conf = write_config("workers = 1\nmax_queued_jobs = 1\n");
    const char *args[] = {"--config", conf, NULL};
    httpc_daemon d = start(NULL, args, NULL);
    int port = d.port;
    char *ds = post_dataset(port, 100, 3, 2);
    char *long_hp = "{\"epochs\":10000000}";
    char *running = post_job(port, ds, long_hp, NULL);
    double t0 = httpc_now();
    while (job_epoch(port, running) < 1 && httpc_now() - t0 < 10)
        usleep(10000);
    char *queued = post_job(port, ds, long_hp, "Content-Type: application/json\nIdempotency-Key: k1");
    /* The same key gives the same job, not a new one (and not a 429). */
    char *again = post_job(port, ds, long_hp, "Content-Type: application/json\nIdempotency-Key: k1");
    ck_assert_str_eq(queued, again);
    /* Queue full. */
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\"}", ds);
    call c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 429, NULL, NULL);
    char ra[16];
    ck_assert_ptr_nonnull(httpc_header(&c.r, "Retry-After", ra, sizeof ra));
    done(&c);
    /* The dataset is in use. */
    char path[160];
    snprintf(path, sizeof path, "/v1/datasets/%s", ds);
    c = req(port, "DELETE", path, NULL, NULL);
    expect_error(&c, 409, NULL, NULL);
    done(&c);
    /* A running job cannot be deleted. */
    snprintf(path, sizeof path, "/v1/jobs/%s", running);
    c = req(port, "DELETE", path, NULL, NULL);
    expect_error(&c, 409, NULL, NULL);
    done(&c);
    /* Cancel the queued one: at once. */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", queued);
    c = req(port, "POST", path, NULL, NULL);
    ck_assert_int_eq(c.status, 202);
    ck_assert_str_eq(str(c.json, "state"), "cancelled");
    done(&c);
    /* Cancel the running one: within an epoch. */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", running);
    c = req(port, "POST", path, NULL, NULL);
    ck_assert_int_eq(c.status, 202);
    done(&c);
    char *state = wait_job(port, running, 10);
    ck_assert_str_eq(state, "cancelled");
    free(state);
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);
    unlink(conf);
    free(conf), free(ds), free(running), free(queued), free(again);
}
END_TEST

/* ---- auth and start-up refusals ----------------------------------------------------- */

START_TEST(bearer_token_guards_v1_and_metrics)
{
    const char *env[] = {"TRAIND_TOKEN=s3cret-token-42", NULL};
    httpc_daemon d = start(NULL, NULL, env);
    call c = req(d.port, "GET", "/v1/jobs", NULL, NULL);
    expect_error(&c, 401, NULL, NULL);
    done(&c);
    c = req(d.port, "GET", "/v1/jobs", "Authorization: Bearer wrong", NULL);
    expect_error(&c, 401, NULL, NULL);
    done(&c);
    c = req(d.port, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(c.status, 401);
    done(&c);
    c = req(d.port, "GET", "/v1/jobs", "Authorization: Bearer s3cret-token-42", NULL);
    ck_assert_int_eq(c.status, 200);
    done(&c);
    c = req(d.port, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    done(&c);
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);

    const char *args[] = {"--listen", "0.0.0.0:0", NULL};
    httpc_daemon e;
    ck_assert_int_lt(httpc_daemon_start(&e, NULL, args, NULL), 0);
    ck_assert_int_ne(e.exit_code, 0);
    char *log = httpc_daemon_log(&e);
    ck_assert_msg(strstr(log, "token") != NULL, "refusal should say how to set a token: %s", log);
    free(log);
    httpc_daemon_cleanup(&e);
}
END_TEST

/* ---- exact resume ------------------------------------------------------------------- */

static const char *RESUME_HP =
    "{\"epochs\":1500,\"optimizer\":\"adam\",\"lr\":0.01,\"batch_size\":64,"
    "\"validation_split\":0.2,\"l2\":0.001,\"seed\":5}";

/* Interrupts a job with sig while it runs, restarts over the same state, and checks that
 * the job finishes with the same model as an uninterrupted run and a gap-free history. */
static void resume_after(int sig)
{
    char *conf = write_config("checkpoint_interval_s = 0\nworkers = 1\n");
    const char *args[] = {"--config", conf, NULL};
    httpc_daemon d = start(NULL, args, NULL);
    char *ds = post_dataset(d.port, 400, 6, 3);
    char *job = post_job(d.port, ds, RESUME_HP, NULL);
    double t0 = httpc_now();
    while (job_epoch(d.port, job) < 200 && httpc_now() - t0 < 30)
        usleep(5000);
    int e_before = job_epoch(d.port, job);
    ck_assert_msg(e_before >= 200 && e_before < 1500, "epoch %d when interrupting", e_before);
    int code = httpc_daemon_stop(&d, sig, 10);
    if (sig == SIGTERM)
        ck_assert_int_eq(code, 0);

    httpc_daemon r = start(d.dir, args, NULL);
    char *state = wait_job(r.port, job, 240);
    ck_assert_str_eq(state, "succeeded");
    free(state);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    call c = req(r.port, "GET", path, NULL, NULL);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint, 1);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(c.json, "resumed_on_different_build")));
    done(&c);
    /* History: epochs 1..1500 exactly once each. */
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", job);
    c = req(r.port, "GET", path, NULL, NULL);
    const cJSON *ep = cJSON_GetObjectItem(c.json, "epoch");
    ck_assert_int_eq(cJSON_GetArraySize(ep), 1500);
    int i = 1;
    const cJSON *v;
    cJSON_ArrayForEach(v, ep) ck_assert_int_eq(v->valueint, i++);
    done(&c);
    char *resumed = get_body(r.port, "/v1/jobs/%s/model", job);
    char *losses_resumed = get_body(r.port, "/v1/jobs/%s/losses?format=csv", job);

    /* The same job uninterrupted. */
    char *ref = post_job(r.port, ds, RESUME_HP, NULL);
    state = wait_job(r.port, ref, 240);
    ck_assert_str_eq(state, "succeeded");
    free(state);
    char *straight = get_body(r.port, "/v1/jobs/%s/model", ref);
    ck_assert_msg(strcmp(resumed, straight) == 0, "resumed model differs from uninterrupted");
    /* And the loss columns agree bit for bit (elapsed_s aside): compare column 3 on. */
    char *losses_straight = get_body(r.port, "/v1/jobs/%s/losses?format=csv", ref);
    char *a = losses_resumed, *b = losses_straight;
    int line = 0;
    while (*a && *b) {
        char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        char *ca = strchr(strchr(a, ',') + 1, ','), *cb = strchr(strchr(b, ',') + 1, ',');
        ck_assert_msg(ea - ca == eb - cb && strncmp(ca, cb, (size_t)(ea - ca)) == 0,
                      "history line %d differs", line);
        a = ea + 1, b = eb + 1, line++;
    }
    ck_assert_int_eq(line, 1501);
    ck_assert_int_eq(httpc_daemon_stop(&r, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&r);
    unlink(conf);
    free(conf), free(ds), free(job), free(ref), free(resumed), free(straight);
    free(losses_resumed), free(losses_straight);
}

START_TEST(resume_after_sigterm_is_exact)
{
    resume_after(SIGTERM);
}
END_TEST

START_TEST(resume_after_kill9_is_exact)
{
    resume_after(SIGKILL);
}
END_TEST

Suite *suite_e2e(void)
{
    Suite *s = suite_create("e2e");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, rest_flow);
    tcase_add_test(tc, bad_requests_get_clear_errors);
    tcase_add_test(tc, events_stream_progress_and_end);
    tcase_add_test(tc, cancel_conflicts_idempotency_and_queue_bound);
    tcase_add_test(tc, bearer_token_guards_v1_and_metrics);
    tcase_add_test(tc, resume_after_sigterm_is_exact);
    tcase_add_test(tc, resume_after_kill9_is_exact);
    suite_add_tcase(s, tc);
    return s;
}
