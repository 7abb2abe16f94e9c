/* test_routes.c — the /v1 routes' answers to bad input, against a live daemon:
 *   bodies       oversized, truncated, deeply nested, wrongly typed, empty, non-object,
 *                NaN/Infinity, unknown keys, inline data: the error object, the field, and
 *                a healthy daemon afterwards
 *   routes       each route's error paths (404, 409, 422), inline data and validation
 *                sets, CSV upload, idempotency, /readyz, /metrics counting by code
 *   openapi      GET /v1/openapi.json is the embedded docs/openapi.json and lists every
 *                route of the table
 * Each test starts its own short-lived daemon on an ephemeral port; routes_https and
 * routes_pg run the same over HTTPS and on a PostgreSQL store. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "http/routes.h"
#include "pgtest.h"
#include "testutil.h"

/* ---- helpers ----------------------------------------------------------------------- */

/* The error object's field, or "" when it has none. */
static const char *field_of(const api_call *c)
{
    const char *f = api_str(cJSON_GetObjectItemCaseSensitive(c->json, "error"), "field");
    return f ? f : "";
}

static char *post_dataset(int port, const char *body)
{
    return api_post_id(port, "/v1/datasets", body, 201);
}

static char *post_job(int port, const char *body)
{
    return api_post_id(port, "/v1/jobs", body, 202);
}

/* ---- bad bodies ------------------------------------------------------------------------ */

START_TEST(oversized_body_is_413)
{
    httpc_daemon d = api_start(NULL, "max_body_mb = 1\n", NULL, NULL);
    size_t n = 2u << 20;
    char *big = malloc(n + 1);
    ck_assert_ptr_nonnull(big);
    /* A syntactically plausible dataset, 2 MB long. */
    memcpy(big, "{\"X\":[[", 7);
    for (size_t i = 7; i < n - 16; i += 2)
        memcpy(big + i, "1,", 2);
    size_t at = n - 16 - ((n - 16 - 7) % 2);
    memcpy(big + at, "1]],\"y\":[0]}", 12);
    big[at + 12] = '\0';
    api_call c = api_req_n(d.port, "POST", "/v1/datasets", NULL, big, strlen(big));
    ck_assert_int_gt(strlen(big), 1u << 20);
    api_expect_error(&c, 413, "payload_too_large", NULL);
    api_done(&c);
    c = api_req_n(d.port, "POST", "/v1/jobs", NULL, big, strlen(big));
    api_expect_error(&c, 413, "payload_too_large", NULL);
    api_done(&c);
    free(big);
    /* Still serving, and a body under the limit is taken. */
    api_expect_healthy(d.port);
    free(post_dataset(d.port, "{\"X\":[[1,2],[3,4]],\"y\":[0,1]}"));
    api_stop(&d);
}
END_TEST

/* The N of "malformed JSON at byte N" in the error message, or -1. */
static long byte_offset(const api_call *c)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->json, "error");
    const char *m = api_str(e, "message"), *p = m ? strstr(m, "at byte ") : NULL;
    return p ? strtol(p + 8, NULL, 10) : -1;
}

START_TEST(malformed_and_mistyped_bodies)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    api_call c;

    /* Truncated JSON: 400, the offset points at the end of what was sent. */
    const char *truncated[] = {"{\"X\": [[1,2],[3,4]], \"y\": [0,", "{\"X\": [[1,2],[3,4]",
                               "{\"name\":\"abc", "{\"X\""};
    for (size_t i = 0; i < sizeof truncated / sizeof truncated[0]; i++) {
        c = api_req(port, "POST", "/v1/datasets", truncated[i]);
        api_expect_error(&c, 400, "malformed_json", "");
        long off = byte_offset(&c), len = (long)strlen(truncated[i]);
        ck_assert_msg(off >= len - 5 && off <= len, "offset %ld for a body of %ld bytes: %s", off,
                      len, c.r.body);
        api_done(&c);
    }
    c = api_req(port, "POST", "/v1/jobs", "{\"model\":\"softmax\" \"dataset\":\"x\"}");
    api_expect_error(&c, 400, "malformed_json", NULL);
    ck_assert_int_eq(byte_offset(&c), 19);
    api_done(&c);
    c = api_req(port, "POST", "/v1/datasets", "{\"X\":[[1,2]],\"y\":[0]} trailing");
    api_expect_error(&c, 400, "malformed_json", NULL);
    ck_assert_int_eq(byte_offset(&c), 22);
    api_done(&c);

    /* Deeply nested arrays: rejected, no crash; open and balanced alike, on every body. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 16);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', depth);
    deep[depth] = '\0';
    const char *paths[] = {"/v1/datasets", "/v1/jobs", "/v1/loss"};
    for (int i = 0; i < 3; i++) {
        c = api_req(port, "POST", paths[i], deep);
        ck_assert_msg(c.status == 400 || c.status == 422, "%s: %d", paths[i], c.status);
        api_expect_error(&c, c.status, NULL, NULL);
        api_done(&c);
    }
    strcpy(deep, "{\"X\":");
    memset(deep + 5, '[', depth);
    memset(deep + 5 + depth, ']', depth);
    strcpy(deep + 5 + 2 * depth, ",\"y\":[0]}");
    c = api_req(port, "POST", "/v1/datasets", deep);
    ck_assert_msg(c.status == 400 || c.status == 422, "balanced nesting: %d", c.status);
    api_expect_error(&c, c.status, NULL, NULL);
    api_done(&c);
    free(deep);
    api_expect_healthy(port);

    /* Empty bodies and bodies that are not objects. */
    const char *routes[] = {"/v1/datasets", "/v1/jobs", "/v1/loss"};
    for (int i = 0; i < 3; i++) {
        c = api_req_n(port, "POST", routes[i], API_JSON, "", 0);
        api_expect_error(&c, 400, "malformed_json", NULL);
        ck_assert_int_eq(byte_offset(&c), 0);
        api_done(&c);
        const char *nonobj[] = {"[1,2,3]", "\"text\"", "42", "null", "true"};
        for (int j = 0; j < 5; j++) {
            c = api_req(port, "POST", routes[i], nonobj[j]);
            api_expect_error(&c, 422, "invalid_argument", NULL);
            api_done(&c);
        }
    }

    /* Wrongly typed dataset fields, and NaN / Infinity / float32-overflow literals in X: 422
     * naming the element, not a 400. */
    static const struct {
        const char *body, *field;
    } bad_ds[] = {
        {"{\"X\":\"1,2;3,4\",\"y\":[0,1]}", "X"},
        {"{\"X\":[[1,2],[3,4]],\"y\":{\"0\":1}}", "y"},
        {"{\"X\":[[1,2],[3,4]],\"y\":[0,1],\"name\":7}", "name"},
        {"{\"X\":[[1,2],[3,4]],\"y\":[0,\"1\"]}", "y[1]"},
        {"{\"X\":[[1,NaN],[2,3]],\"y\":[0,1]}", "X[0][1]"},
        {"{\"X\":[[1,2],[Infinity,3]],\"y\":[0,1]}", "X[1][0]"},
        {"{\"X\":[[1,2],[3,4],[5,-Infinity]],\"y\":[0,1,1]}", "X[2][1]"},
        {"{\"X\":[[1,2],[3,1e39]],\"y\":[0,1]}", "X[1][1]"},
    };
    for (size_t i = 0; i < sizeof bad_ds / sizeof *bad_ds; i++) {
        c = api_req(port, "POST", "/v1/datasets", bad_ds[i].body);
        api_expect_error(&c, 422, "invalid_argument", bad_ds[i].field);
        api_done(&c);
    }

    /* Job bodies: wrongly typed fields, unknown keys. */
    char *ds = post_dataset(port, "{\"X\":[[1,2],[3,4],[0,1]],\"y\":[0,1,1]}");
    struct {
        const char *hp, *field;
    } bad_hp[] = {
        {"[1,2]", "hyperparameters"},
        {"\"fast\"", "hyperparameters"},
        {"{\"epochs\":\"10\"}", "hyperparameters.epochs"},
        {"{\"epochs\":10.5}", "hyperparameters.epochs"},
        {"{\"nesterov\":1,\"momentum\":0.9}", "hyperparameters.nesterov"},
        {"{\"lr\":\"0.1\"}", "hyperparameters.lr"},
        {"{\"betas\":[0.9]}", "hyperparameters.betas"},
        {"{\"optimizer\":\"sgdm\"}", "hyperparameters.optimizer"},
        {"{\"learning_rate\":0.1}", "hyperparameters.learning_rate"},
        {"{\"initial_weights\":{\"W\":[[1,2]],\"b\":[0,0]}}", NULL},
    };
    char body[512];
    for (size_t i = 0; i < sizeof bad_hp / sizeof bad_hp[0]; i++) {
        snprintf(body, sizeof body,
                 "{\"model\":\"softmax\",\"dataset\":\"%s\","
                 "\"hyperparameters\":%s}",
                 ds, bad_hp[i].hp);
        c = api_req(port, "POST", "/v1/jobs", body);
        api_expect_error(&c, 422, "invalid_argument", bad_hp[i].field);
        if (!bad_hp[i].field)
            ck_assert_msg(strncmp(field_of(&c), "hyperparameters.initial_weights", 31) == 0, "%s",
                          c.r.body);
        api_done(&c);
    }
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"hyperparams\":{}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, "invalid_argument", "hyperparams");
    ck_assert_ptr_nonnull(strstr(c.r.body, "hyperparams"));
    api_done(&c);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"datset\":\"%s\"}", ds);
    c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, "invalid_argument", "datset");
    api_done(&c);
    snprintf(body, sizeof body, "{\"model\":7,\"dataset\":\"%s\"}", ds);
    c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, "invalid_argument", "model");
    api_done(&c);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":[\"%s\"]}", ds);
    c = api_req(port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, "invalid_argument", "dataset");
    api_done(&c);
    c = api_req(port, "POST", "/v1/jobs", "{\"model\":\"softmax\"}");
    api_expect_error(&c, 422, "invalid_argument", "dataset");
    api_done(&c);

    /* Inline data with an error inside: the field is prefixed "data.". */
    struct {
        const char *data, *hp, *field;
    } bad_data[] = {
        {"{\"X\":[[1,2],[3]],\"y\":[0,1]}", "{}", "data.X[1]"},
        {"{\"X\":[[1,2],[3,4]],\"y\":[0,1.5]}", "{}", "data.y[1]"},
        {"{\"X\":[[1,NaN],[3,4]],\"y\":[0,1]}", "{}", "data.X[0][1]"},
        {"{\"X\":\"no\",\"y\":[0,1]}", "{}", "data.X"},
        {"{\"X\":[[1,2],[3,4]],\"y\":[0,1],\"colour\":1}", "{}", "data.colour"},
        {"{\"X\":[[2,2],[1,4]],\"y\":[0,1]}", "{\"intercept\":\"column0\"}", "data.X[0][0]"},
        {"{\"X\":[[1,2],[0,4]],\"y\":[0,1]}", "{\"intercept\":\"column0\"}", "data.X[1][0]"},
        {"[1,2]", "{}", "data"},
    };
    for (size_t i = 0; i < sizeof bad_data / sizeof bad_data[0]; i++) {
        snprintf(body, sizeof body, "{\"model\":\"softmax\",\"data\":%s,\"hyperparameters\":%s}",
                 bad_data[i].data, bad_data[i].hp);
        c = api_req(port, "POST", "/v1/jobs", body);
        api_expect_error(&c, 422, "invalid_argument", bad_data[i].field);
        ck_assert_msg(strncmp(field_of(&c), "data", 4) == 0, "%s: field not under data: %s",
                      bad_data[i].data, c.r.body);
        api_done(&c);
    }
    /* A hyperparameter that contradicts inline data is still the hyperparameter's fault. */
    c = api_req(port, "POST", "/v1/jobs",
                "{\"model\":\"softmax\",\"data\":{\"X\":[[1,2],"
                "[1,4]],\"y\":[0,5]},\"hyperparameters\":{\"n_classes\":2}}");
    api_expect_error(&c, 422, "invalid_argument", "hyperparameters.n_classes");
    api_done(&c);
    /* None of the failed inline bodies left a dataset behind. */
    c = api_req(port, "GET", "/v1/datasets", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(c.json, "datasets")), 1);
    api_done(&c);
    c = api_req(port, "GET", "/v1/jobs", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(c.json, "jobs")), 0);
    api_done(&c);

    api_expect_healthy(port);
    free(ds);
    api_stop(&d);
}
END_TEST

/* ---- every route's error paths --------------------------------------------------------- */

START_TEST(unknown_ids_are_404)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    struct {
        const char *method, *path;
    } r404[] = {
        {"GET", "/v1/datasets/ds_nope"},      {"DELETE", "/v1/datasets/ds_nope"},
        {"GET", "/v1/jobs/job_nope"},         {"DELETE", "/v1/jobs/job_nope"},
        {"GET", "/v1/jobs/job_nope/losses"},  {"GET", "/v1/jobs/job_nope/losses?format=csv"},
        {"GET", "/v1/jobs/job_nope/events"},  {"GET", "/v1/jobs/job_nope/model"},
        {"POST", "/v1/jobs/job_nope/cancel"}, {"POST", "/v1/jobs/job_nope/predict"},
    };
    for (size_t i = 0; i < sizeof r404 / sizeof r404[0]; i++) {
        int post = strcmp(r404[i].method, "POST") == 0 && strstr(r404[i].path, "predict");
        api_call c = api_req(d.port, r404[i].method, r404[i].path, post ? "{\"X\":[[1,2]]}" : NULL);
        ck_assert_msg(c.status == 404, "%s %s: %d %s", r404[i].method, r404[i].path, c.status,
                      c.r.body);
        api_expect_error(&c, 404, "not_found", NULL);
        api_done(&c);
    }
    /* A job body naming a missing dataset or validation set: 422 on that field. */
    api_call c =
        api_req(d.port, "POST", "/v1/jobs", "{\"model\":\"softmax\",\"dataset\":\"ds_nope\"}");
    api_expect_error(&c, 422, "invalid_argument", "dataset");
    api_done(&c);
    char *ds = post_dataset(d.port, "{\"X\":[[1,2],[3,4]],\"y\":[0,1]}");
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"validation\":\"ds_nope\"}",
             ds);
    c = api_req(d.port, "POST", "/v1/jobs", body);
    api_expect_error(&c, 422, "invalid_argument", "validation");
    api_done(&c);
    free(ds);
    api_stop(&d);
}
END_TEST

START_TEST(model_and_predict_before_a_model_are_409)
{
    httpc_daemon d = api_start(NULL, "workers = 1\n", NULL, NULL);
    int port = d.port;
    char *b = api_dataset_body(60, 2, 2, 3);
    char *ds = post_dataset(port, b);
    free(b);
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":10000000}}",
             ds);
    char *running = post_job(port, body);
    char *queued = post_job(port, body); /* one worker: waits behind the first */
    cJSON *j = api_get_json(port, "/v1/jobs/%s", queued);
    ck_assert_str_eq(api_str(j, "state"), "queued");
    cJSON_Delete(j);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/model", queued);
    api_call c = api_req(port, "GET", path, NULL);
    api_expect_error(&c, 409, NULL, NULL);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", queued);
    c = api_req(port, "POST", path, "{\"X\":[[0.1,0.2]]}");
    api_expect_error(&c, 409, NULL, NULL);
    api_done(&c);
    /* A queued job has an empty history, not an error. */
    j = api_get_json(port, "/v1/jobs/%s/losses", queued);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(j, "epoch")), 0);
    cJSON_Delete(j);
    /* A queued job cannot be deleted; cancelled at once, it can. */
    snprintf(path, sizeof path, "/v1/jobs/%s", queued);
    c = api_req(port, "DELETE", path, NULL);
    api_expect_error(&c, 409, NULL, NULL);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", queued);
    c = api_req(port, "POST", path, NULL);
    ck_assert_int_eq(c.status, 202);
    ck_assert_str_eq(api_str(c.json, "state"), "cancelled");
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/model", queued);
    c = api_req(port, "GET", path, NULL);
    api_expect_error(&c, 409, NULL, NULL); /* cancelled before it ran: still no model */
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", queued);
    c = api_req(port, "POST", path, NULL);
    api_expect_error(&c, 409, NULL, NULL); /* terminal */
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s", queued);
    c = api_req(port, "DELETE", path, NULL);
    ck_assert_int_eq(c.status, 204);
    api_done(&c);

    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", running);
    c = api_req(port, "POST", path, NULL);
    ck_assert_int_eq(c.status, 202);
    api_done(&c);
    api_expect_state(port, running, "cancelled", 10);
    api_stop(&d);
    free(ds), free(running), free(queued);
}
END_TEST

static int array_all_numbers(const cJSON *a, double lo, double hi)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, a) if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo) ||
                                 !(v->valuedouble <= hi)) return 0;
    return cJSON_GetArraySize(a) > 0;
}

START_TEST(inline_data_validation_and_predict_shapes)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;

    /* Inline data: a dataset is stored and the job trains on it. */
    char *b = api_dataset_body(40, 3, 3, 5);
    char *body = malloc(strlen(b) + 256);
    sprintf(body, "{\"model\":\"softmax\",\"data\":%s,\"hyperparameters\":{\"epochs\":7}}", b);
    api_call c = api_req(port, "POST", "/v1/jobs", body);
    ck_assert_msg(c.status == 202 || c.status == 201, "inline job: %d %s", c.status, c.r.body);
    char *inline_job = strdup(api_str(c.json, "id"));
    char *inline_ds = strdup(api_str(c.json, "dataset"));
    api_done(&c);
    free(body);
    api_expect_state(port, inline_job, "succeeded", 30);
    cJSON *j = api_get_json(port, "/v1/datasets/%s", inline_ds);
    ck_assert_int_eq(api_item(j, "n_samples")->valueint, 40);
    ck_assert_int_eq(api_item(j, "n_features")->valueint, 3);
    ck_assert_int_eq(api_item(j, "n_classes")->valueint, 3);
    cJSON_Delete(j);
    j = api_get_json(port, "/v1/jobs/%s/losses", inline_job);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(j, "data_loss")), 7);
    cJSON_Delete(j);

    /* A validation set: val_loss and val_accuracy are numbers every epoch. */
    char *train = post_dataset(port, b);
    free(b);
    b = api_dataset_body(25, 3, 3, 77);
    char *val = post_dataset(port, b);
    free(b);
    char jb[512];
    snprintf(jb, sizeof jb,
             "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\","
             "\"hyperparameters\":{\"epochs\":12,\"lr\":0.5}}",
             train, val);
    char *vjob = post_job(port, jb);
    api_expect_state(port, vjob, "succeeded", 30);
    j = api_get_json(port, "/v1/jobs/%s/losses", vjob);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(j, "val_loss")), 12);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(j, "val_accuracy")), 12);
    ck_assert_msg(array_all_numbers(api_item(j, "val_loss"), 1e-9, 100), "val_loss not numbers");
    ck_assert_msg(array_all_numbers(api_item(j, "val_accuracy"), 0, 1),
                  "val_accuracy not in [0,1]");
    /* Trained on rows of the same rule, the model beats chance on the held-out set. */
    ck_assert_double_lt(cJSON_GetArrayItem(api_item(j, "val_loss"), 11)->valuedouble, log(3.0));
    ck_assert_double_gt(cJSON_GetArrayItem(api_item(j, "val_accuracy"), 11)->valuedouble, 1.0 / 3);
    cJSON_Delete(j);
    j = api_get_json(port, "/v1/jobs/%s", vjob);
    ck_assert_str_eq(api_str(j, "validation"), val);
    ck_assert(cJSON_IsNumber(api_item(api_item(j, "metrics"), "val_loss")));
    cJSON_Delete(j);

    /* A validation set with another feature count: 422 on "validation". */
    char *wide = post_dataset(port, "{\"X\":[[1,2,3,4],[4,3,2,1]],\"y\":[0,1]}");
    snprintf(jb, sizeof jb, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\"}",
             train, wide);
    c = api_req(port, "POST", "/v1/jobs", jb);
    api_expect_error(&c, 422, "invalid_argument", "validation");
    api_done(&c);

    /* predict: the wrong feature count names the row; other bad bodies too. */
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", vjob);
    c = api_req(port, "POST", path, "{\"X\":[[0.1,0.2]]}");
    api_expect_error(&c, 422, "invalid_argument", "X");
    ck_assert_msg(strstr(c.r.body, "expects 3 features") != NULL, "%s", c.r.body);
    api_done(&c);
    c = api_req(port, "POST", path, "{\"X\":[[0.1,0.2,0.3],[1,2,NaN]]}");
    api_expect_error(&c, 422, "invalid_argument", "X[1][2]");
    api_done(&c);
    c = api_req(port, "POST", path, "{\"X\":[[0.1,0.2,0.3]");
    api_expect_error(&c, 400, "malformed_json", NULL);
    api_done(&c);
    c = api_req(port, "POST", path, "{\"rows\":[[0.1,0.2,0.3]]}");
    api_expect_error(&c, 422, "invalid_argument", NULL);
    api_done(&c);
    c = api_req(port, "POST", path, "{\"X\":[[0.1,0.2,0.3],[1,2,3]]}");
    ck_assert_int_eq(c.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(c.json, "labels")), 2);
    api_done(&c);

    api_stop(&d);
    free(inline_job), free(inline_ds), free(train), free(val), free(vjob), free(wide);
}
END_TEST

START_TEST(csv_upload)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    /* Label first, a header line, CRLF and a quoted field. */
    const char *csv = "label,a,b\r\n0,1,2\r\n1,3,-4\r\n2,\"0.5\",6\r\n1,-1,0.25\r\n";
    api_call c = api_reqh(port, "POST", "/v1/datasets?header=true&label_column=first",
                          "Content-Type: text/csv", csv);
    ck_assert_msg(c.status == 201, "csv: %d %s", c.status, c.r.body);
    ck_assert_int_eq(api_item(c.json, "n_samples")->valueint, 4);
    ck_assert_int_eq(api_item(c.json, "n_features")->valueint, 2);
    ck_assert_int_eq(api_item(c.json, "n_classes")->valueint, 3);
    ck_assert_str_eq(api_str(c.json, "target"), "index");
    char *ds = strdup(api_str(c.json, "id"));
    api_done(&c);

    /* One full-batch GD step from zero weights with lr 1: W = X^T (Y - 1/K) / N and
     * b = mean(Y - 1/K), which pins every value and label to its place. */
    const double X[4][2] = {{1, 2}, {3, -4}, {0.5, 6}, {-1, 0.25}};
    const int y[4] = {0, 1, 2, 1};
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"epochs\":1,\"lr\":1,\"batch_size\":0}}",
             ds);
    char *job = post_job(port, body);
    api_expect_state(port, job, "succeeded", 30);
    cJSON *m = api_get_json(port, "/v1/jobs/%s/model", job);
    for (int k = 0; k < 3; k++) {
        double bk = 0;
        for (int n = 0; n < 4; n++)
            bk += ((y[n] == k) - 1.0 / 3) / 4;
        tu_close(cJSON_GetArrayItem(api_item(m, "b"), k)->valuedouble, bk, 1e-6, 1e-7, "csv b");
        for (int j = 0; j < 2; j++) {
            double w = 0;
            for (int n = 0; n < 4; n++)
                w += X[n][j] * ((y[n] == k) - 1.0 / 3) / 4;
            tu_close(cJSON_GetArrayItem(cJSON_GetArrayItem(api_item(m, "W"), j), k)->valuedouble, w,
                     1e-6, 1e-7, "csv W");
        }
    }
    cJSON_Delete(m);

    /* Bad CSV: the field names the line and the column. */
    struct {
        const char *csv, *field;
    } bad[] = {
        {"label,a,b\n0,1,2\n1,3,x\n", "line 3, column 3"},
        {"label,a,b\n0,1,2\n1.5,3,4\n", "line 3, column 1"},
        {"label,a,b\n0,1,2\n1,,4\n", "line 3, column 2"},
        {"label,a,b\n0,1,2\n1,3\n", "line 3"},
        {"label,a,b\n0,1,2\n0,1,2\n1,nan,4\n", "line 4, column 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = api_reqh(port, "POST", "/v1/datasets?header=true&label_column=first",
                     "Content-Type: text/csv", bad[i].csv);
        api_expect_error(&c, 422, "invalid_argument", bad[i].field);
        api_done(&c);
    }
    c = api_reqh(port, "POST", "/v1/datasets?label_column=middle", "Content-Type: text/csv",
                 "1,2\n");
    api_expect_error(&c, 422, "invalid_argument", "label_column");
    api_done(&c);
    c = api_reqh(port, "POST", "/v1/datasets?header=maybe", "Content-Type: text/csv", "1,2\n");
    api_expect_error(&c, 422, "invalid_argument", "header");
    api_done(&c);
    c = api_reqh(port, "POST", "/v1/datasets", "Content-Type: text/xml", "<x/>");
    api_expect_error(&c, 415, NULL, NULL);
    api_done(&c);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

/* traind_http_requests_total{code="C"} in a /metrics body (0 when absent). */
static long requests_by_code(int port, int code)
{
    api_call c = api_req(port, "GET", "/metrics", NULL);
    ck_assert_int_eq(c.status, 200);
    char key[64];
    snprintf(key, sizeof key, "traind_http_requests_total{code=\"%d\"} ", code);
    const char *p = strstr(c.r.body, key);
    long n = p ? strtol(p + strlen(key), NULL, 10) : 0;
    api_done(&c);
    return n;
}

START_TEST(listing_idempotency_health_metrics)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    api_call c = api_req(port, "GET", "/readyz", NULL);
    ck_assert_int_eq(c.status, 200);
    api_done(&c);

    c = api_req(port, "GET", "/v1/jobs?state=bogus", NULL);
    api_expect_error(&c, 422, "invalid_argument", "state");
    api_done(&c);
    c = api_req(port, "GET", "/v1/jobs?limit=abc", NULL);
    api_expect_error(&c, 422, "invalid_argument", "limit");
    api_done(&c);
    c = api_req(port, "GET", "/v1/datasets?limit=1001", NULL);
    api_expect_error(&c, 422, "invalid_argument", "limit");
    api_done(&c);

    /* Idempotency-Key: the same key is the same job, before and after it finished. */
    char *ds = post_dataset(port, "{\"X\":[[1,2],[3,4],[0,1]],\"y\":[0,1,1]}");
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":3}}",
             ds);
    const char *k1 = API_JSON "\nIdempotency-Key: api-key-1";
    char *a = api_post_idh(port, "/v1/jobs", k1, body, 202);
    char *b = api_post_idh(port, "/v1/jobs", k1, body, 202);
    ck_assert_str_eq(a, b);
    api_expect_state(port, a, "succeeded", 30);
    char *c3 = api_post_idh(port, "/v1/jobs", k1, body, 202);
    ck_assert_str_eq(a, c3);
    char *other =
        api_post_idh(port, "/v1/jobs", API_JSON "\nIdempotency-Key: api-key-2", body, 202);
    ck_assert_str_ne(a, other);
    api_expect_state(port, other, "succeeded", 30);
    c = api_req(port, "GET", "/v1/jobs", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(c.json, "jobs")), 2);
    ck_assert(cJSON_IsNull(api_item(c.json, "next")));
    api_done(&c);
    c = api_req(port, "GET", "/v1/jobs?state=succeeded&limit=1", NULL);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(c.json, "jobs")), 1);
    ck_assert_str_eq(api_str(cJSON_GetArrayItem(api_item(c.json, "jobs"), 0), "state"),
                     "succeeded");
    ck_assert_ptr_nonnull(api_str(c.json, "next"));
    api_done(&c);

    /* /metrics counts every answer by its code. */
    long n404 = requests_by_code(port, 404), n422 = requests_by_code(port, 422);
    long n202 = requests_by_code(port, 202);
    for (int i = 0; i < 3; i++) {
        c = api_req(port, "GET", "/v1/jobs/job_missing", NULL);
        ck_assert_int_eq(c.status, 404);
        api_done(&c);
    }
    for (int i = 0; i < 2; i++) {
        c = api_req(port, "GET", "/v1/jobs?state=nope", NULL);
        ck_assert_int_eq(c.status, 422);
        api_done(&c);
    }
    free(api_post_idh(port, "/v1/jobs", k1, body, 202));
    ck_assert_int_eq(requests_by_code(port, 404), n404 + 3);
    ck_assert_int_eq(requests_by_code(port, 422), n422 + 2);
    ck_assert_int_eq(requests_by_code(port, 202), n202 + 1);
    c = api_req(port, "GET", "/metrics", NULL);
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_jobs{state=\"succeeded\"} 2"));
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_queue_depth 0"));
    /* one name per metric: running jobs are traind_jobs{state="running"} only */
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_jobs{state=\"running\"} 0"));
    ck_assert_ptr_null(strstr(c.r.body, "traind_jobs_running"));
    api_done(&c);
    api_stop(&d);
    free(ds), free(a), free(b), free(c3), free(other);
}
END_TEST

/* ---- the OpenAPI document -------------------------------------------------------------- */

/* Resolves a local "$ref" ("#/components/schemas/X") against root. */
static const cJSON *resolve(const cJSON *root, const char *ref)
{
    ck_assert_msg(strncmp(ref, "#/", 2) == 0, "non-local $ref %s", ref);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    const cJSON *at = root;
    for (char *save, *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
        at = cJSON_GetObjectItemCaseSensitive(at, tok);
    return at;
}

/* Every "$ref" anywhere under v resolves. */
static void check_refs(const cJSON *root, const cJSON *v)
{
    const cJSON *ch;
    cJSON_ArrayForEach(ch, v)
    {
        if (ch->string && strcmp(ch->string, "$ref") == 0) {
            ck_assert(cJSON_IsString(ch));
            ck_assert_msg(resolve(root, ch->valuestring) != NULL, "dangling $ref %s",
                          ch->valuestring);
        }
        check_refs(root, ch);
    }
}

START_TEST(openapi_document)
{
    const char *env[] = {"TRAIND_TOKEN=openapi-token", NULL};
    httpc_daemon d = api_start(NULL, NULL, NULL, env);
    api_call c = api_req(d.port, "GET", "/v1/openapi.json", NULL);
    api_expect_error(&c, 401, NULL, NULL); /* behind auth like the rest of /v1 */
    api_done(&c);
    c = api_reqh(d.port, "GET", "/v1/openapi.json", "Authorization: Bearer openapi-token", NULL);
    ck_assert_int_eq(c.status, 200);
    char ct[64];
    ck_assert_ptr_nonnull(httpc_header(&c.r, "Content-Type", ct, sizeof ct));
    ck_assert_msg(strncmp(ct, "application/json", 16) == 0, "Content-Type %s", ct);
    ck_assert_msg(c.json != NULL, "not valid JSON");
    /* Served byte for byte as the repository's docs/openapi.json. */
    char *file = tu_read_file("docs/openapi.json", NULL);
    ck_assert_uint_eq(c.r.body_len, strlen(file));
    ck_assert(memcmp(c.r.body, file, c.r.body_len) == 0);
    free(file);

    const cJSON *doc = c.json, *paths = api_item(doc, "paths");
    ck_assert_msg(strncmp(api_str(doc, "openapi"), "3.", 2) == 0, "openapi %s",
                  api_str(doc, "openapi"));
    ck_assert_ptr_nonnull(api_str(api_item(doc, "info"), "title"));
    ck_assert_ptr_nonnull(api_str(api_item(doc, "info"), "version"));
    check_refs(doc, doc);
    /* The error object of SPEC §6. */
    const cJSON *err = api_item(api_item(api_item(doc, "components"), "schemas"), "Error");
    const cJSON *eo = api_item(api_item(err, "properties"), "error");
    if (cJSON_GetObjectItem(eo, "$ref")) eo = resolve(doc, api_str(eo, "$ref"));
    const cJSON *props = api_item(eo, "properties");
    const char *const error_keys[] = {"code", "message", "field"};
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(api_str(api_item(props, error_keys[i]), "type"), "string");

    /* Every route of the table (and the base routes of main.c) is documented with its
     * method, and every operation answers something. */
    size_t n;
    const td_route *routes = td_app_routes(&n);
    ck_assert_uint_gt(n, 10);
    for (size_t i = 0; i < n; i++) {
        char m[16];
        size_t k = 0;
        for (; routes[i].method[k] && k < sizeof m - 1; k++)
            m[k] = (char)(routes[i].method[k] | 0x20);
        m[k] = '\0';
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(paths, routes[i].pattern);
        ck_assert_msg(p != NULL, "openapi.json lacks path %s", routes[i].pattern);
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(p, m);
        ck_assert_msg(op != NULL, "openapi.json lacks %s %s", routes[i].method, routes[i].pattern);
        ck_assert_msg(cJSON_GetArraySize(api_item(op, "responses")) > 0, "%s %s: no responses",
                      routes[i].method, routes[i].pattern);
    }
    const char *base[] = {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"};
    for (int i = 0; i < 4; i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(paths, base[i]);
        ck_assert_msg(p && cJSON_GetObjectItem(p, "get"), "openapi.json lacks GET %s", base[i]);
    }
    api_done(&c);
    api_stop(&d);
}
END_TEST

/* The suite; with fixtures (setup, teardown) around each test of every case. */
static Suite *routes_suite(const char *name, void (*setup)(void), void (*teardown)(void))
{
    Suite *s = suite_create(name);
    TCase *bodies = tcase_create("bodies");
    tcase_set_timeout(bodies, 120);
    tcase_add_test(bodies, oversized_body_is_413);
    tcase_add_test(bodies, malformed_and_mistyped_bodies);
    if (setup) tcase_add_checked_fixture(bodies, setup, teardown);
    suite_add_tcase(s, bodies);
    TCase *routes = tcase_create("routes");
    tcase_set_timeout(routes, 120);
    tcase_add_test(routes, unknown_ids_are_404);
    tcase_add_test(routes, model_and_predict_before_a_model_are_409);
    tcase_add_test(routes, inline_data_validation_and_predict_shapes);
    tcase_add_test(routes, csv_upload);
    tcase_add_test(routes, listing_idempotency_health_metrics);
    tcase_add_test(routes, openapi_document);
    if (setup) tcase_add_checked_fixture(routes, setup, teardown);
    suite_add_tcase(s, routes);
    return s;
}

Suite *suite_routes(void) { return routes_suite("routes", NULL, NULL); }

/* The same suite over HTTPS (issue 11; api_https_on) and on a shared PostgreSQL store
 * (issue 17; api_pg_on). Checked fixtures run in each test's own process. */
Suite *suite_routes_https(void)
{
    return routes_suite("routes_https", api_https_on, api_https_off);
}

Suite *suite_routes_pg(void)
{
    td_pgtest_server();
    return routes_suite("routes_pg", api_pg_on, api_pg_off);
}
