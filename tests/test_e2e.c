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
    api_call c = api_req(port, "POST", "/v1/datasets", body);
    free(body);
    ck_assert_msg(c.status == 201, "dataset: %d %s", c.status, c.r.body);
    char loc[128];
    ck_assert_ptr_nonnull(httpc_header(&c.r, "Location", loc, sizeof loc));
    char *id = strdup(api_str(c.json, "id"));
    ck_assert(strstr(loc, id) != NULL);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "n_samples")->valueint, n);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "n_features")->valueint, d);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "n_classes")->valueint, K);
    api_done(&c);
    return id;
}

static char *post_job(int port, const char *ds, const char *hp, const char *hdrs)
{
    char body[4096];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"hyperparameters\":%s}",
             ds, hp);
    api_call c = api_reqh(port, "POST", "/v1/jobs", hdrs, body);
    ck_assert_msg(c.status == 202, "job: %d %s", c.status, c.r.body);
    char *id = strdup(api_str(c.json, "id"));
    api_done(&c);
    return id;
}

/* ---- the walkthrough ---------------------------------------------------------------- */

START_TEST(rest_flow)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    api_expect_healthy(port);
    api_call c;

    char *ds = post_dataset(port, 300, 4, 3);
    char *job = post_job(port, ds, "{\"epochs\":40,\"lr\":0.5,\"l2\":0.01,\"seed\":3}", NULL);
    api_expect_state(port, job, "succeeded", 30);

    /* The job object: resolved hyperparameters, progress, metrics. */
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    c = api_req(port, "GET", path, NULL);
    const cJSON *hp = cJSON_GetObjectItem(c.json, "hyperparameters");
    ck_assert_str_eq(api_str(hp, "optimizer"), "sgd");
    tu_close(cJSON_GetObjectItem(hp, "lr")->valuedouble, 0.5, 0, 0, "lr");
    const cJSON *prog = cJSON_GetObjectItem(c.json, "progress");
    ck_assert_int_eq(cJSON_GetObjectItem(prog, "epoch")->valueint, 40);
    tu_close(cJSON_GetObjectItem(prog, "fraction")->valuedouble, 1.0, 0, 0, "fraction");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "metrics"), "loss")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c.json, "error")));
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint, 0);
    api_done(&c);

    /* Losses: columnar JSON, the loss falls; CSV has a header and 40 rows. */
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", job);
    c = api_req(port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    const cJSON *loss = cJSON_GetObjectItem(c.json, "loss");
    ck_assert_int_eq(cJSON_GetArraySize(loss), 40);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "elapsed_s")), 40);
    ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "epoch"), 39)->valueint, 40);
    ck_assert(cJSON_GetArrayItem(loss, 39)->valuedouble < cJSON_GetArrayItem(loss, 0)->valuedouble);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/losses?format=csv", job);
    c = api_req(port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert(strncmp(c.r.body, "epoch,elapsed_s,loss,", 21) == 0);
    int lines = 0;
    for (const char *p = c.r.body; *p; p++)
        lines += *p == '\n';
    ck_assert_int_eq(lines, 41);
    api_done(&c);

    /* Model and predictions. */
    snprintf(path, sizeof path, "/v1/jobs/%s/model", job);
    c = api_req(port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_str_eq(api_str(c.json, "model"), "softmax");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "W")), 4);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "W"), 0)),
                     3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "b")), 3);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    c = api_req(port, "POST", path, "{\"X\":[[0.1,0.2,0.3,0.4],[-1,0,1,0.5]]}");
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
    api_done(&c);
    c = api_req(port, "POST", path, "{\"X\":[[0.1,0.2]]}");
    api_expect_error(&c, 422, NULL, NULL);
    api_done(&c);

    /* Listing and paging. */
    char *job2 = post_job(port, ds, "{\"epochs\":2}", NULL);
    cJSON_Delete(api_wait_job(port, job2, 30));
    c = api_req(port, "GET", "/v1/jobs?limit=1", NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "jobs")), 1);
    ck_assert_str_eq(api_str(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "jobs"), 0), "id"),
                     job2);
    char next[64];
    snprintf(next, sizeof next, "%s", api_str(c.json, "next"));
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs?limit=1&after=%s", next);
    c = api_req(port, "GET", path, NULL);
    ck_assert_str_eq(api_str(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "jobs"), 0), "id"),
                     job);
    api_done(&c);
    c = api_req(port, "GET", "/v1/jobs?state=running", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "jobs")), 0);
    api_done(&c);
    c = api_req(port, "GET", "/v1/datasets", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "datasets")), 1);
    api_done(&c);

    /* Metrics. */
    c = api_req(port, "GET", "/metrics", NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_jobs{state=\"succeeded\"} 2"));
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_samples_trained_total"));
    api_done(&c);

    /* Cancel a finished job: 409; delete it: 204, then 404. */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job);
    c = api_req(port, "POST", path, NULL);
    api_expect_error(&c, 409, NULL, NULL);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    c = api_req(port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 204);
    api_done(&c);
    c = api_req(port, "GET", path, NULL);
    api_expect_error(&c, 404, NULL, NULL);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/datasets/%s", ds);
    c = api_req(port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 204);
    api_done(&c);

    api_stop(&d);
    free(ds), free(job), free(job2);
}
END_TEST

START_TEST(bad_requests_get_clear_errors)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    api_call c = api_req(port, "POST", "/v1/datasets", "{\"X\": [[1,2],[3]], \"y\": [0,1]}");
    api_expect_error(&c, 422, NULL, "X[1]");
    api_done(&c);
    c = api_req(port, "POST", "/v1/datasets", "{\"X\": [[1,2],[3,\"a\"]], \"y\": [0,1]}");
    api_expect_error(&c, 422, NULL, "X[1][1]");
    api_done(&c);
    c = api_req(port, "POST", "/v1/datasets", "{\"X\": [[1,2],[3,4]], \"y\": [0, 1.5]}");
    api_expect_error(&c, 422, NULL, "y[1]");
    api_done(&c);
    c = api_req(port, "POST", "/v1/datasets", "{\"X\": [[1,2],[3,4]], \"y\": [0,");
    api_expect_error(&c, 400, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(c.r.body, "byte"));
    api_done(&c);
    c = api_reqh(port, "POST", "/v1/datasets", "Content-Type: text/plain", "hello");
    api_expect_error(&c, 415, NULL, NULL);
    api_done(&c);
    c = api_req(port, "GET", "/v1/nothing", NULL);
    api_expect_error(&c, 404, NULL, NULL);
    api_done(&c);
    c = api_req(port, "PUT", "/v1/jobs", "{}");
    api_expect_error(&c, 405, NULL, NULL);
    api_done(&c);

    char *ds = post_dataset(port, 50, 3, 2);
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"learning_rate\":0.1}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, NULL, "hyperparameters.learning_rate");
    ck_assert_ptr_nonnull(strstr(c.r.body, "\\\"lr\\\""));
    api_done(&c);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"lr\":-1}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, NULL, "hyperparameters.lr");
    api_done(&c);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"intercept\":\"column0\"}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, NULL, "dataset.X[0][0]");
    api_done(&c);
    snprintf(body, sizeof body,
             "{\"model\":\"embed_gmm\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"iterations\":10,\"warmup_iterations\":10}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, NULL, "hyperparameters.warmup_iterations");
    api_done(&c);
    c = api_req(port, "POST", "/v1/jobs", "{\"model\":\"softmax\",\"dataset\":\"ds_nope\"}");
    ck_assert_int_ge(c.status, 404);
    ck_assert_int_le(c.status, 422);
    api_done(&c);
    c = api_req(port, "GET", "/v1/jobs?limit=0", NULL);
    api_expect_error(&c, 422, NULL, "limit");
    api_done(&c);

    /* /v1/loss runs the engine's loss. */
    c = api_reqh(
        port, "POST", "/v1/loss", NULL,
        "{\"loss\":\"cross_entropy\",\"logits\":[[1000,-1000],[0,0]],\"target\":[0,-100]}");
    ck_assert_msg(c.status == 200, "loss: %s", c.r.body);
    tu_close(cJSON_GetObjectItem(c.json, "loss")->valuedouble, 0.0, 0, 1e-6, "loss");
    api_done(&c);
    c = api_reqh(port, "POST", "/v1/loss", NULL,
                 "{\"loss\":\"cross_entropy\",\"logits\":[[1,2]],\"target\":[-100]}");
    ck_assert_int_eq(c.status, 200);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c.json, "loss")));
    api_done(&c);

    c = api_req(port, "GET", "/healthz", NULL); /* still serving */
    ck_assert_int_eq(c.status, 200);
    api_done(&c);
    api_stop(&d);
    free(ds);
}
END_TEST

/* ---- events, cancel, conflicts, idempotency, queue bound ---------------------------- */

START_TEST(events_stream_progress_and_end)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    char *ds = post_dataset(d.port, 100, 3, 2);
    char *job = post_job(d.port, ds, "{\"epochs\":15}", NULL);
    char path[160];
    /* max_rate=0: every epoch, not at most 10 a second (events.h) */
    snprintf(path, sizeof path, "/v1/jobs/%s/events?max_rate=0", job);
    api_call c = api_req(d.port, "GET", path, NULL); /* returns when the stream ends */
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
    api_done(&c);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

START_TEST(cancel_conflicts_idempotency_and_queue_bound)
{
    const char *conf = "workers = 1\nmax_queued_jobs = 1\n";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    int port = d.port;
    char *ds = post_dataset(port, 100, 3, 2);
    char *long_hp = "{\"epochs\":10000000}";
    char *running = post_job(port, ds, long_hp, NULL);
    double t0 = httpc_now();
    while (api_job_epoch(port, running) < 1 && httpc_now() - t0 < 10)
        usleep(10000);
    char *queued = post_job(port, ds, long_hp, API_JSON "\nIdempotency-Key: k1");
    /* The same key gives the same job, not a new one (and not a 429). */
    char *again = post_job(port, ds, long_hp, API_JSON "\nIdempotency-Key: k1");
    ck_assert_str_eq(queued, again);
    /* Queue full. */
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\"}", ds);
    api_call c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 429, NULL, NULL);
    char ra[16];
    ck_assert_ptr_nonnull(httpc_header(&c.r, "Retry-After", ra, sizeof ra));
    api_done(&c);
    /* The dataset is in use. */
    char path[160];
    snprintf(path, sizeof path, "/v1/datasets/%s", ds);
    c = api_req(port, "DELETE", path, NULL);
    api_expect_error(&c, 409, NULL, NULL);
    api_done(&c);
    /* A running job cannot be deleted. */
    snprintf(path, sizeof path, "/v1/jobs/%s", running);
    c = api_req(port, "DELETE", path, NULL);
    api_expect_error(&c, 409, NULL, NULL);
    api_done(&c);
    /* Cancel the queued one: at once. */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", queued);
    c = api_req(port, "POST", path, NULL);
    ck_assert_int_eq(c.status, 202);
    ck_assert_str_eq(api_str(c.json, "state"), "cancelled");
    api_done(&c);
    /* Cancel the running one: within an epoch. */
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", running);
    c = api_req(port, "POST", path, NULL);
    ck_assert_int_eq(c.status, 202);
    api_done(&c);
    api_expect_state(port, running, "cancelled", 10);
    api_stop(&d);
    free(ds), free(running), free(queued), free(again);
}
END_TEST

/* ---- auth and start-up refusals ----------------------------------------------------- */

START_TEST(bearer_token_guards_v1_and_metrics)
{
    const char *env[] = {"TRAIND_TOKEN=s3cret-token-42", NULL};
    httpc_daemon d = api_start(NULL, NULL, NULL, env);
    api_call c = api_req(d.port, "GET", "/v1/jobs", NULL);
    api_expect_error(&c, 401, NULL, NULL);
    api_done(&c);
    c = api_reqh(d.port, "GET", "/v1/jobs", "Authorization: Bearer wrong", NULL);
    api_expect_error(&c, 401, NULL, NULL);
    api_done(&c);
    c = api_req(d.port, "GET", "/metrics", NULL);
    ck_assert_int_eq(c.status, 401);
    api_done(&c);
    c = api_reqh(d.port, "GET", "/v1/jobs", "Authorization: Bearer s3cret-token-42", NULL);
    ck_assert_int_eq(c.status, 200);
    api_done(&c);
    c = api_req(d.port, "GET", "/healthz", NULL);
    ck_assert_int_eq(c.status, 200);
    api_done(&c);
    api_stop(&d);

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
    const char *conf = "checkpoint_interval_s = 0\nworkers = 1\n";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    char *ds = post_dataset(d.port, 400, 6, 3);
    char *job = post_job(d.port, ds, RESUME_HP, NULL);
    double t0 = httpc_now();
    while (api_job_epoch(d.port, job) < 200 && httpc_now() - t0 < 30)
        usleep(5000);
    int e_before = api_job_epoch(d.port, job);
    ck_assert_msg(e_before >= 200 && e_before < 1500, "epoch %d when interrupting", e_before);
    int code = httpc_daemon_stop(&d, sig, 10);
    if (sig == SIGTERM) ck_assert_int_eq(code, 0);

    httpc_daemon r = api_start(d.dir, conf, NULL, NULL);
    api_expect_state(r.port, job, "succeeded", 240);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    api_call c = api_req(r.port, "GET", path, NULL);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint, 1);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(c.json, "resumed_on_different_build")));
    api_done(&c);
    /* History: epochs 1..1500 exactly once each. */
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", job);
    c = api_req(r.port, "GET", path, NULL);
    const cJSON *ep = cJSON_GetObjectItem(c.json, "epoch");
    ck_assert_int_eq(cJSON_GetArraySize(ep), 1500);
    int i = 1;
    const cJSON *v;
    cJSON_ArrayForEach(v, ep) ck_assert_int_eq(v->valueint, i++);
    api_done(&c);
    char *resumed = api_get_raw(r.port, "/v1/jobs/%s/model", job);
    char *losses_resumed = api_get_raw(r.port, "/v1/jobs/%s/losses?format=csv", job);

    /* The same job uninterrupted. */
    char *ref = post_job(r.port, ds, RESUME_HP, NULL);
    api_expect_state(r.port, ref, "succeeded", 240);
    char *straight = api_get_raw(r.port, "/v1/jobs/%s/model", ref);
    ck_assert_msg(strcmp(resumed, straight) == 0, "resumed model differs from uninterrupted");
    /* And the loss columns agree bit for bit (elapsed_s aside): compare column 3 on. */
    char *losses_straight = api_get_raw(r.port, "/v1/jobs/%s/losses?format=csv", ref);
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
    api_stop(&r);
    free(ds), free(job), free(ref), free(resumed), free(straight);
    free(losses_resumed), free(losses_straight);
}

START_TEST(resume_after_sigterm_is_exact) { resume_after(SIGTERM); }
END_TEST

START_TEST(resume_after_kill9_is_exact) { resume_after(SIGKILL); }
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
