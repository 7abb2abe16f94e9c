/* test_api.c — the /v1 API against a live daemon, beyond the walkthrough of test_e2e.c:
 *   reference    the vectors of $TD_REFDIR through POST /v1/loss and through real training
 *                jobs (optimizers with initial_weights, GD with intercept "column0"); every
 *                request body is built from the reference JSON at run time, so any seed's
 *                set can be swapped in
 *   persistence  datasets, a finished job, its history and model, byte for byte across a
 *                clean restart over the same state directory
 *   bodies       oversized, truncated, deeply nested, wrongly typed, empty, non-object,
 *                NaN/Infinity, unknown keys, inline data: the error object, the field, and
 *                a healthy daemon afterwards
 *   routes       each route's error paths (404, 409, 422), inline data and validation
 *                sets, CSV upload, idempotency, /readyz, /metrics counting by code
 *   openapi      GET /v1/openapi.json is the embedded docs/openapi.json and lists every
 *                route of the table
 * Each test starts its own short-lived daemon on an ephemeral port. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/routes.h"
#include "api.h"
#include "pgtest.h"
#include "testutil.h"

#define JSON_HDR "Content-Type: application/json"

/* ---- helpers ----------------------------------------------------------------------- */

typedef struct call {
    int status;
    cJSON *json;                 /* parsed body, or NULL */
    httpc_resp r;
} call;

static call req_n(int port, const char *method, const char *path, const char *hdrs,
                  const char *body, size_t len)
{
    call c = {0};
    c.status = httpc_request(port, method, path, hdrs ? hdrs : (body ? JSON_HDR : NULL), body,
                             len, &c.r);
    c.json = c.r.body ? cJSON_Parse(c.r.body) : NULL;
    return c;
}

static call req(int port, const char *method, const char *path, const char *hdrs,
                const char *body)
{
    return req_n(port, method, path, hdrs, body, body ? strlen(body) : 0);
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

static const cJSON *item(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "no \"%s\" in the answer", k);
    return v;
}

/* The error object's field, or "" when it has none. */
static const char *field_of(const call *c)
{
    const char *f = str(cJSON_GetObjectItemCaseSensitive(c->json, "error"), "field");
    return f ? f : "";
}

/* Asserts the SPEC error object: status, {"error":{"code","message","field"?}}. code and
 * field are checked when non-NULL; field "" asserts that there is no field. */
static void expect_error(const call *c, int status, const char *code, const char *field)
{
    ck_assert_msg(c->status == status, "status %d, want %d: %s", c->status, status,
                  c->r.body ? c->r.body : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->json, "error");
    ck_assert_msg(cJSON_IsObject(e), "no error object in %s", c->r.body);
    ck_assert_msg(str(e, "message") && *str(e, "message"), "no message in %s", c->r.body);
    ck_assert_msg(str(e, "code") && *str(e, "code"), "no code in %s", c->r.body);
    if (code)
        ck_assert_str_eq(str(e, "code"), code);
    if (field && !*field)
        ck_assert_msg(str(e, "field") == NULL, "unexpected field in %s", c->r.body);
    else if (field)
        ck_assert_msg(str(e, "field") && strcmp(str(e, "field"), field) == 0,
                      "field should be \"%s\": %s", field, c->r.body);
}

static httpc_daemon start(const char *dir, const char *const *args)
{
    httpc_daemon d;
    int port = httpc_daemon_start(&d, dir, args, NULL);
    if (port <= 0) {
        char *log = httpc_daemon_log(&d);
        ck_abort_msg("daemon did not start: %s", log);
    }
    return d;
}

/* SIGTERM, exit 0, state removed. */
static void stop(httpc_daemon *d)
{
    ck_assert_int_eq(httpc_daemon_stop(d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(d);
}

static void expect_healthy(int port)
{
    call c = req(port, "GET", "/healthz", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_str_eq(str(c.json, "status"), "ok");
    done(&c);
    c = req(port, "GET", "/readyz", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    done(&c);
}

static char *write_file(const char *text)
{
    char *path = strdup("/tmp/traind-api-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Prints obj (unformatted; doubles round-trip) and deletes it. */
static char *print_take(cJSON *obj)
{
    char *s = cJSON_PrintUnformatted(obj);
    ck_assert_ptr_nonnull(s);
    cJSON_Delete(obj);
    return s;
}

static cJSON *jdup(const cJSON *v)
{
    cJSON *d = cJSON_Duplicate(v, 1);
    ck_assert_ptr_nonnull(d);
    return d;
}

/* Copies ref[key] into obj when present (null included). */
static void copy_key(cJSON *obj, const cJSON *ref, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ref, key);
    if (v)
        cJSON_AddItemToObject(obj, key, jdup(v));
}

/* POSTs body to path, asserts want, returns the strdup'd "id". */
static char *post_id(int port, const char *path, const char *hdrs, const char *body, int want)
{
    call c = req(port, "POST", path, hdrs, body);
    ck_assert_msg(c.status == want, "POST %s: %d %s", path, c.status, c.r.body);
    const char *id = str(c.json, "id");
    ck_assert_ptr_nonnull(id);
    char loc[160], *out = strdup(id);
    ck_assert_ptr_nonnull(httpc_header(&c.r, "Location", loc, sizeof loc));
    ck_assert_msg(strstr(loc, out) != NULL, "Location %s does not name %s", loc, out);
    done(&c);
    return out;
}

static char *post_dataset(int port, const char *body)
{
    return post_id(port, "/v1/datasets", NULL, body, 201);
}

static char *post_job(int port, const char *body)
{
    return post_id(port, "/v1/jobs", NULL, body, 202);
}

/* GET path (printf-formatted with one id), asserts 200, returns the parsed body. */
static cJSON *get_json(int port, const char *fmt, const char *id)
{
    char path[200];
    snprintf(path, sizeof path, fmt, id);
    call c = req(port, "GET", path, NULL, NULL);
    ck_assert_msg(c.status == 200, "GET %s: %d %s", path, c.status, c.r.body);
    ck_assert_msg(c.json != NULL, "GET %s: not JSON: %s", path, c.r.body);
    cJSON *j = c.json;
    c.json = NULL;
    done(&c);
    return j;
}

/* GET path, asserts 200, returns the raw body. */
static char *get_raw(int port, const char *fmt, const char *id)
{
    char path[200];
    snprintf(path, sizeof path, fmt, id);
    call c = req(port, "GET", path, NULL, NULL);
    ck_assert_msg(c.status == 200, "GET %s: %d %s", path, c.status, c.r.body);
    char *b = strdup(c.r.body);
    done(&c);
    return b;
}

/* Polls the job until its state is terminal (or timeout_s); returns the state. */
static char *wait_job(int port, const char *id, double timeout_s)
{
    double t0 = httpc_now();
    for (;;) {
        cJSON *j = get_json(port, "/v1/jobs/%s", id);
        const char *st = str(j, "state");
        ck_assert_ptr_nonnull(st);
        if (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled") ||
            httpc_now() - t0 > timeout_s) {
            char *s = strdup(st);
            cJSON_Delete(j);
            return s;
        }
        cJSON_Delete(j);
        usleep(10000);
    }
}

static void expect_succeeds(int port, const char *id)
{
    char *st = wait_job(port, id, 30);
    if (strcmp(st, "succeeded") != 0) {
        char *job = get_raw(port, "/v1/jobs/%s", id);
        ck_abort_msg("job %s ended %s: %s", id, st, job);
    }
    free(st);
}

/* Compares a JSON value with a reference value elementwise (numbers, arrays of any depth,
 * null): same shape, |got - want| <= atol + rtol |want|. */
static void json_close(const cJSON *got, const cJSON *want, double rtol, double atol,
                       const char *what)
{
    ck_assert_msg(got != NULL, "%s is missing", what);
    if (cJSON_IsNull(want)) {
        ck_assert_msg(cJSON_IsNull(got), "%s should be null", what);
        return;
    }
    if (cJSON_IsNumber(want)) {
        ck_assert_msg(cJSON_IsNumber(got), "%s is not a number", what);
        tu_close_at(__FILE__, __LINE__, got->valuedouble, want->valuedouble, rtol, atol, what,
                    -1);
        return;
    }
    ck_assert_msg(cJSON_IsArray(want), "reference %s is neither a number nor an array", what);
    ck_assert_msg(cJSON_IsArray(got), "%s is not an array", what);
    ck_assert_msg(cJSON_GetArraySize(got) == cJSON_GetArraySize(want),
                  "%s has %d entries, want %d", what, cJSON_GetArraySize(got),
                  cJSON_GetArraySize(want));
    int i = 0;
    const cJSON *g = got->child, *w;
    cJSON_ArrayForEach(w, want) {
        char sub[160];
        snprintf(sub, sizeof sub, "%s[%d]", what, i++);
        json_close(g, w, rtol, atol, sub);
        g = g->next;
    }
}

/* A dataset body of n rows and d features from a fixed LCG; labels by a linear rule over
 * K classes, rows 0..K-1 labelled 0..K-1 so every class is present. */
static char *dataset_body(int n, int d, int K, unsigned seed)
{
    cJSON *o = cJSON_CreateObject(), *X = cJSON_AddArrayToObject(o, "X"),
          *y = cJSON_AddArrayToObject(o, "y");
    for (int i = 0; i < n; i++) {
        cJSON *row = cJSON_CreateArray();
        double s[16] = {0};
        for (int j = 0; j < d; j++) {
            seed = seed * 1103515245u + 12345u;
            double x = (double)((seed >> 8) % 2000) / 1000.0 - 1.0;
            cJSON_AddItemToArray(row, cJSON_CreateNumber(x));
            for (int k = 0; k < K && k < 16; k++)
                s[k] += x * ((j + k) % 3 - 1) + 0.01 * k;
        }
        int best = 0;
        for (int k = 1; k < K && k < 16; k++)
            if (s[k] > s[best])
                best = k;
        cJSON_AddItemToArray(X, row);
        cJSON_AddItemToArray(y, cJSON_CreateNumber(i < K ? i : best));
    }
    return print_take(o);
}

/* {"model":"softmax","dataset":ds,"hyperparameters":hp} (hp taken). */
static char *job_body(const char *ds, cJSON *hp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", "softmax");
    cJSON_AddStringToObject(o, "dataset", ds);
    cJSON_AddItemToObject(o, "hyperparameters", hp);
    return print_take(o);
}

/* ---- reference vectors through POST /v1/loss ----------------------------------------- */

#define LOSS_RTOL 1e-5
#define GRAD_ATOL 1e-7 /* float32 gradients: entries near 0 need an absolute floor */

/* POSTs the request (taken) to /v1/loss, asserts 200, returns the answer. */
static cJSON *eval_loss(int port, cJSON *request)
{
    char *body = print_take(request);
    call c = req(port, "POST", "/v1/loss", NULL, body);
    ck_assert_msg(c.status == 200, "/v1/loss: %d %s\nrequest %s", c.status, c.r.body, body);
    free(body);
    cJSON *j = c.json;
    ck_assert_ptr_nonnull(j);
    c.json = NULL;
    done(&c);
    return j;
}

static void ce_index_cases(int port)
{
    cJSON *ref = tu_ref_load("cross_entropy_index.json");
    const cJSON *cases = item(ref, "cases"), *cs, *target = item(ref, "target");
    int ignore = (int)tu_num(ref, "ignore_index"), n = 0;
    ck_assert_int_gt(cJSON_GetArraySize(cases), 0);
    cJSON_ArrayForEach(cs, cases) {
        cJSON *rq = cJSON_CreateObject();
        cJSON_AddStringToObject(rq, "loss", "cross_entropy");
        copy_key(rq, ref, "logits");
        copy_key(rq, ref, "target");
        copy_key(rq, ref, "ignore_index");
        copy_key(rq, cs, "class_weights");
        copy_key(rq, cs, "label_smoothing");
        copy_key(rq, cs, "reduction");
        cJSON *res = eval_loss(port, rq);
        char what[64];
        snprintf(what, sizeof what, "cross_entropy_index case %d loss", n);
        json_close(item(res, "loss"), item(cs, "loss"), LOSS_RTOL, 0, what);
        snprintf(what, sizeof what, "cross_entropy_index case %d grad", n);
        json_close(item(res, "grad"), item(cs, "grad"), LOSS_RTOL, GRAD_ATOL, what);
        /* per_sample: 0 on ignored rows; with "sum" they add up to the loss. */
        const cJSON *per = item(res, "per_sample"), *t, *p = per->child;
        ck_assert_int_eq(cJSON_GetArraySize(per), cJSON_GetArraySize(target));
        double sum = 0;
        cJSON_ArrayForEach(t, target) {
            if (t->valueint == ignore)
                ck_assert_msg(p->valuedouble == 0.0, "ignored row has loss %g", p->valuedouble);
            sum += p->valuedouble;
            p = p->next;
        }
        if (strcmp(str(cs, "reduction"), "sum") == 0)
            tu_close(sum, tu_num(cs, "loss"), LOSS_RTOL, 0, "sum of per_sample");
        cJSON_Delete(res);
        n++;
    }
    cJSON_Delete(ref);
}

static void ce_probs_cases(int port)
{
    cJSON *ref = tu_ref_load("cross_entropy_probs.json");
    const cJSON *cases = item(ref, "cases"), *cs;
    int n = 0;
    ck_assert_int_gt(cJSON_GetArraySize(cases), 0);
    cJSON_ArrayForEach(cs, cases) {
        cJSON *rq = cJSON_CreateObject();
        cJSON_AddStringToObject(rq, "loss", "cross_entropy");
        copy_key(rq, ref, "logits");
        copy_key(rq, ref, "target");
        copy_key(rq, cs, "class_weights");
        copy_key(rq, cs, "label_smoothing");
        copy_key(rq, cs, "reduction");
        cJSON *res = eval_loss(port, rq);
        char what[64];
        snprintf(what, sizeof what, "cross_entropy_probs case %d loss", n);
        json_close(item(res, "loss"), item(cs, "loss"), LOSS_RTOL, 0, what);
        snprintf(what, sizeof what, "cross_entropy_probs case %d grad", n);
        json_close(item(res, "grad"), item(cs, "grad"), LOSS_RTOL, GRAD_ATOL, what);
        cJSON_Delete(res);
        n++;
    }
    cJSON_Delete(ref);
}

static void cce_case(int port)
{
    cJSON *ref = tu_ref_load("categorical_crossentropy_probs.json");
    cJSON *rq = cJSON_CreateObject();
    cJSON_AddStringToObject(rq, "loss", "categorical_crossentropy");
    copy_key(rq, ref, "probabilities");
    copy_key(rq, ref, "target");
    copy_key(rq, ref, "epsilon");
    cJSON *res = eval_loss(port, rq);
    json_close(item(res, "loss"), item(ref, "mean"), LOSS_RTOL, 0, "categorical loss");
    json_close(item(res, "per_sample"), item(ref, "per_sample"), LOSS_RTOL, 1e-7,
               "categorical per_sample");
    cJSON_Delete(res);
    cJSON_Delete(ref);
}

static void grouped_case(int port)
{
    cJSON *ref = tu_ref_load("grouped_softmax_monotone.json");
    cJSON *rq = cJSON_CreateObject(), *mono = cJSON_CreateObject();
    cJSON_AddStringToObject(rq, "loss", "grouped_cross_entropy");
    copy_key(rq, ref, "logits");
    copy_key(rq, ref, "target");
    copy_key(rq, ref, "groups");
    copy_key(rq, ref, "ignore_index");
    copy_key(mono, ref, "weight");
    copy_key(mono, ref, "margin");
    cJSON_AddItemToObject(rq, "monotone", mono);
    cJSON *res = eval_loss(port, rq);
    json_close(item(res, "loss"), item(ref, "loss"), LOSS_RTOL, 0, "grouped loss");
    json_close(item(res, "cross_entropy"), item(ref, "cross_entropy"), LOSS_RTOL, 0,
               "grouped cross_entropy");
    json_close(item(res, "penalty"), item(ref, "penalty"), LOSS_RTOL, 1e-7, "grouped penalty");
    json_close(item(res, "expected_index"), item(ref, "expected_index"), LOSS_RTOL, 1e-7,
               "grouped expected_index");
    json_close(item(res, "grad"), item(ref, "grad"), LOSS_RTOL, GRAD_ATOL, "grouped grad");
    cJSON_Delete(res);
    cJSON_Delete(ref);
}

static void contrastive_case(int port)
{
    cJSON *ref = tu_ref_load("contrastive.json");
    cJSON *rq = cJSON_CreateObject();
    cJSON_AddStringToObject(rq, "loss", "contrastive");
    copy_key(rq, ref, "a");
    copy_key(rq, ref, "b");
    copy_key(rq, ref, "similar");
    copy_key(rq, ref, "margin");
    cJSON *res = eval_loss(port, rq);
    json_close(item(res, "loss"), item(ref, "loss"), LOSS_RTOL, 0, "contrastive loss");
    json_close(item(res, "grad_a"), item(ref, "grad_a"), LOSS_RTOL, GRAD_ATOL,
               "contrastive grad_a");
    json_close(item(res, "grad_b"), item(ref, "grad_b"), LOSS_RTOL, GRAD_ATOL,
               "contrastive grad_b");
    const cJSON *per = item(res, "per_sample"), *v;
    ck_assert_int_eq(cJSON_GetArraySize(per), cJSON_GetArraySize(item(ref, "similar")));
    double sum = 0;
    cJSON_ArrayForEach(v, per) sum += v->valuedouble;
    tu_close(sum / cJSON_GetArraySize(per), tu_num(ref, "loss"), LOSS_RTOL, 0,
             "mean of per_sample");
    cJSON_Delete(res);
    cJSON_Delete(ref);
}

START_TEST(loss_reference_vectors)
{
    httpc_daemon d = start(NULL, NULL);
    ce_index_cases(d.port);
    ce_probs_cases(d.port);
    cce_case(d.port);
    grouped_case(d.port);
    contrastive_case(d.port);
    expect_healthy(d.port);
    stop(&d);
}
END_TEST

/* ---- reference vectors through training jobs ----------------------------------------- */

#define TRAIN_RTOL 1e-4
#define TRAIN_ATOL 1e-6

/* {"X": ref.X, "y": ref.y} stored as a dataset; returns its id. */
static char *post_ref_dataset(int port, const cJSON *ref)
{
    cJSON *o = cJSON_CreateObject();
    copy_key(o, ref, "X");
    copy_key(o, ref, "y");
    char *body = print_take(o);
    char *id = post_dataset(port, body);
    free(body);
    return id;
}

START_TEST(optimizer_reference_jobs)
{
    httpc_daemon d = start(NULL, NULL);
    cJSON *ref = tu_ref_load("optimizers.json");
    const cJSON *cases = item(ref, "cases"), *cs, *W0 = item(ref, "W0");
    int n = cJSON_GetArraySize(cases);
    ck_assert_int_gt(n, 0);
    int K = cJSON_GetArraySize(W0->child);
    char *ds = post_ref_dataset(d.port, ref);
    char **jobs = calloc((size_t)n, sizeof *jobs);

    /* Submit every case, then check each (the workers run them side by side). */
    int i = 0;
    cJSON_ArrayForEach(cs, cases) {
        cJSON *hp = cJSON_CreateObject(), *p;
        cJSON_AddStringToObject(hp, "optimizer", str(cs, "optimizer"));
        cJSON_ArrayForEach(p, item(cs, "params")) cJSON_AddItemToObject(hp, p->string, jdup(p));
        cJSON_AddNumberToObject(hp, "epochs", cJSON_GetArraySize(item(cs, "losses")));
        cJSON_AddNumberToObject(hp, "batch_size", 0);
        cJSON_AddNumberToObject(hp, "n_classes", K);
        cJSON *iw = cJSON_AddObjectToObject(hp, "initial_weights");
        cJSON_AddItemToObject(iw, "W", jdup(W0));
        cJSON_AddItemToObject(iw, "b", jdup(item(ref, "b0")));
        char *body = job_body(ds, hp);
        jobs[i++] = post_job(d.port, body);
        free(body);
    }
    i = 0;
    cJSON_ArrayForEach(cs, cases) {
        const char *id = jobs[i];
        expect_succeeds(d.port, id);
        char what[96], *params = cJSON_PrintUnformatted(item(cs, "params"));
        cJSON *job = get_json(d.port, "/v1/jobs/%s", id);
        const cJSON *hp = item(job, "hyperparameters");
        ck_assert_str_eq(str(hp, "optimizer"), str(cs, "optimizer"));
        ck_assert_int_eq(item(hp, "n_classes")->valueint, K);
        cJSON_Delete(job);

        cJSON *model = get_json(d.port, "/v1/jobs/%s/model", id);
        snprintf(what, sizeof what, "%s %.48s W", str(cs, "optimizer"), params);
        json_close(item(model, "W"), item(cs, "W"), TRAIN_RTOL, TRAIN_ATOL, what);
        snprintf(what, sizeof what, "%s %.48s b", str(cs, "optimizer"), params);
        json_close(item(model, "b"), item(cs, "b"), TRAIN_RTOL, TRAIN_ATOL, what);
        cJSON_Delete(model);

        cJSON *losses = get_json(d.port, "/v1/jobs/%s/losses", id);
        snprintf(what, sizeof what, "%s %.48s data_loss", str(cs, "optimizer"), params);
        json_close(item(losses, "data_loss"), item(cs, "losses"), TRAIN_RTOL, 0, what);
        cJSON_Delete(losses);
        free(params);
        free(jobs[i++]);
    }
    free(jobs);
    free(ds);
    cJSON_Delete(ref);
    stop(&d);
}
END_TEST

START_TEST(column0_reference_job)
{
    httpc_daemon d = start(NULL, NULL);
    cJSON *ref = tu_ref_load("softmax_gd_intercept_column0.json");
    const cJSON *Wref = item(ref, "W"), *hist = item(ref, "history");
    int E = (int)tu_num(ref, "epochs"), K = cJSON_GetArraySize(Wref->child);
    ck_assert_int_eq(cJSON_GetArraySize(hist), E);
    char *ds = post_ref_dataset(d.port, ref);
    cJSON *hp = cJSON_CreateObject();
    cJSON_AddStringToObject(hp, "optimizer", "sgd");
    cJSON_AddStringToObject(hp, "intercept", "column0");
    copy_key(hp, ref, "lr");
    copy_key(hp, ref, "l2");
    copy_key(hp, ref, "epochs");
    cJSON_AddNumberToObject(hp, "batch_size", 0);
    cJSON_AddNumberToObject(hp, "n_classes", K);
    char *body = job_body(ds, hp);
    char *job = post_job(d.port, body);
    free(body);
    expect_succeeds(d.port, job);

    cJSON *model = get_json(d.port, "/v1/jobs/%s/model", job);
    ck_assert_str_eq(str(model, "intercept"), "column0");
    ck_assert_msg(cJSON_IsNull(item(model, "b")), "column0 has no separate bias");
    json_close(item(model, "W"), Wref, TRAIN_RTOL, TRAIN_ATOL, "column0 W");
    cJSON_Delete(model);

    /* history[i] = [data_loss, reg_loss] before update i. */
    cJSON *data = cJSON_CreateArray(), *reg = cJSON_CreateArray();
    const cJSON *row;
    cJSON_ArrayForEach(row, hist) {
        cJSON_AddItemToArray(data, jdup(cJSON_GetArrayItem(row, 0)));
        cJSON_AddItemToArray(reg, jdup(cJSON_GetArrayItem(row, 1)));
    }
    cJSON *losses = get_json(d.port, "/v1/jobs/%s/losses", job);
    json_close(item(losses, "data_loss"), data, TRAIN_RTOL, 0, "column0 data_loss");
    json_close(item(losses, "reg_loss"), reg, TRAIN_RTOL, 1e-8, "column0 reg_loss");
    /* loss = data_loss + reg_loss, every epoch. */
    for (int e = 0; e < E; e++)
        tu_close(cJSON_GetArrayItem(item(losses, "loss"), e)->valuedouble,
                 cJSON_GetArrayItem(item(losses, "data_loss"), e)->valuedouble +
                     cJSON_GetArrayItem(item(losses, "reg_loss"), e)->valuedouble,
                 1e-6, 0, "loss = data_loss + reg_loss");
    cJSON_Delete(losses);
    cJSON_Delete(data);
    cJSON_Delete(reg);
    cJSON_Delete(ref);
    free(ds);
    free(job);
    stop(&d);
}
END_TEST

/* ---- persistence across a clean restart ---------------------------------------------- */

/* Everything a client can read about the stored state, as raw bodies. */
enum { SNAP_N = 11 };
static void snapshot(int port, const char *ds1, const char *ds2, const char *job,
                     char *out[SNAP_N])
{
    int i = 0;
    out[i++] = get_raw(port, "/v1/datasets%s", "");
    out[i++] = get_raw(port, "/v1/datasets/%s", ds1);
    out[i++] = get_raw(port, "/v1/datasets/%s", ds2);
    out[i++] = get_raw(port, "/v1/jobs%s", "");
    out[i++] = get_raw(port, "/v1/jobs/%s", job);
    out[i++] = get_raw(port, "/v1/jobs/%s/losses", job);
    out[i++] = get_raw(port, "/v1/jobs/%s/losses?format=csv", job);
    out[i++] = get_raw(port, "/v1/jobs/%s/model", job);
    out[i++] = get_raw(port, "/v1/jobs?state=succeeded%s", "");
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    call c = req(port, "POST", path, NULL, "{\"X\":[[0.5,-0.25,1],[-1,0,0.75]]}");
    ck_assert_msg(c.status == 200, "predict: %d %s", c.status, c.r.body);
    out[i++] = strdup(c.r.body);
    done(&c);
    out[i++] = get_raw(port, "/v1/jobs/%s/events", job); /* a finished job: finite stream */
    ck_assert_int_eq(i, SNAP_N);
}

static const char *const SNAP_NAMES[SNAP_N] = {
    "dataset list", "dataset 1", "dataset 2", "job list", "job", "losses", "losses csv",
    "model", "jobs by state", "predictions", "events"};

START_TEST(state_survives_clean_restart)
{
    httpc_daemon d = start(NULL, NULL);
    char *b1 = dataset_body(80, 3, 3, 11);
    char *ds1 = post_dataset(d.port, b1);
    free(b1);
    char *ds2 = post_id(d.port, "/v1/datasets?header=true&label_column=last&name=csv",
                        "Content-Type: text/csv", "a,b,c,label\n1,2,3,0\n4,5,6,1\n7,8,9.5,1\n",
                        201);
    const char *hp = "{\"optimizer\":\"adam\",\"lr\":0.05,\"epochs\":25,\"batch_size\":16,"
                     "\"seed\":9,\"l2\":0.01}";
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\","
             "\"hyperparameters\":%s}", ds1, ds2, hp);
    char *job = post_job(d.port, body);
    expect_succeeds(d.port, job);
    char *before[SNAP_N], *after[SNAP_N];
    snapshot(d.port, ds1, ds2, job, before);
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);

    httpc_daemon r = start(d.dir, NULL);
    expect_healthy(r.port);
    snapshot(r.port, ds1, ds2, job, after);
    for (int i = 0; i < SNAP_N; i++) {
        ck_assert_msg(strcmp(before[i], after[i]) == 0, "%s changed across the restart:\n%s\n%s",
                      SNAP_NAMES[i], before[i], after[i]);
        free(before[i]);
        free(after[i]);
    }
    /* The stored arrays came back too: the same job again trains to the same model. */
    char *again = post_job(r.port, body);
    expect_succeeds(r.port, again);
    char *m1 = get_raw(r.port, "/v1/jobs/%s/model", job);
    char *m2 = get_raw(r.port, "/v1/jobs/%s/model", again);
    ck_assert_str_eq(m1, m2);
    free(m1), free(m2);
    stop(&r);
    free(ds1), free(ds2), free(job), free(again);
}
END_TEST

/* ---- bad bodies ------------------------------------------------------------------------ */

START_TEST(oversized_body_is_413)
{
    char *conf = write_file("max_body_mb = 1\n");
    const char *args[] = {"--config", conf, NULL};
    httpc_daemon d = start(NULL, args);
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
    call c = req_n(d.port, "POST", "/v1/datasets", NULL, big, strlen(big));
    ck_assert_int_gt(strlen(big), 1u << 20);
    expect_error(&c, 413, "payload_too_large", NULL);
    done(&c);
    c = req_n(d.port, "POST", "/v1/jobs", NULL, big, strlen(big));
    expect_error(&c, 413, "payload_too_large", NULL);
    done(&c);
    free(big);
    /* Still serving, and a body under the limit is taken. */
    expect_healthy(d.port);
    free(post_dataset(d.port, "{\"X\":[[1,2],[3,4]],\"y\":[0,1]}"));
    stop(&d);
    unlink(conf);
    free(conf);
}
END_TEST

/* The N of "malformed JSON at byte N" in the error message, or -1. */
static long byte_offset(const call *c)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->json, "error");
    const char *m = str(e, "message"), *p = m ? strstr(m, "at byte ") : NULL;
    return p ? strtol(p + 8, NULL, 10) : -1;
}

START_TEST(malformed_and_mistyped_bodies)
{
    httpc_daemon d = start(NULL, NULL);
    int port = d.port;
    call c;

    /* Truncated JSON: 400, the offset points at the end of what was sent. */
    const char *truncated[] = {"{\"X\": [[1,2],[3,4]], \"y\": [0,", "{\"X\": [[1,2],[3,4]",
                               "{\"name\":\"abc", "{\"X\""};
    for (size_t i = 0; i < sizeof truncated / sizeof truncated[0]; i++) {
        c = req(port, "POST", "/v1/datasets", NULL, truncated[i]);
        expect_error(&c, 400, "malformed_json", "");
        long off = byte_offset(&c), len = (long)strlen(truncated[i]);
        ck_assert_msg(off >= len - 5 && off <= len, "offset %ld for a body of %ld bytes: %s",
                      off, len, c.r.body);
        done(&c);
    }
    c = req(port, "POST", "/v1/jobs", NULL, "{\"model\":\"softmax\" \"dataset\":\"x\"}");
    expect_error(&c, 400, "malformed_json", NULL);
    ck_assert_int_eq(byte_offset(&c), 19);
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1,2]],\"y\":[0]} trailing");
    expect_error(&c, 400, "malformed_json", NULL);
    ck_assert_int_eq(byte_offset(&c), 22);
    done(&c);

    /* Deeply nested arrays: rejected, no crash; open and balanced alike, on every body. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 16);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', depth);
    deep[depth] = '\0';
    const char *paths[] = {"/v1/datasets", "/v1/jobs", "/v1/loss"};
    for (int i = 0; i < 3; i++) {
        c = req(port, "POST", paths[i], NULL, deep);
        ck_assert_msg(c.status == 400 || c.status == 422, "%s: %d", paths[i], c.status);
        expect_error(&c, c.status, NULL, NULL);
        done(&c);
    }
    strcpy(deep, "{\"X\":");
    memset(deep + 5, '[', depth);
    memset(deep + 5 + depth, ']', depth);
    strcpy(deep + 5 + 2 * depth, ",\"y\":[0]}");
    c = req(port, "POST", "/v1/datasets", NULL, deep);
    ck_assert_msg(c.status == 400 || c.status == 422, "balanced nesting: %d", c.status);
    expect_error(&c, c.status, NULL, NULL);
    done(&c);
    free(deep);
    expect_healthy(port);

    /* Empty bodies and bodies that are not objects. */
    const char *routes[] = {"/v1/datasets", "/v1/jobs", "/v1/loss"};
    for (int i = 0; i < 3; i++) {
        c = req_n(port, "POST", routes[i], JSON_HDR, "", 0);
        expect_error(&c, 400, "malformed_json", NULL);
        ck_assert_int_eq(byte_offset(&c), 0);
        done(&c);
        const char *nonobj[] = {"[1,2,3]", "\"text\"", "42", "null", "true"};
        for (int j = 0; j < 5; j++) {
            c = req(port, "POST", routes[i], NULL, nonobj[j]);
            expect_error(&c, 422, "invalid_argument", NULL);
            done(&c);
        }
    }

    /* Wrongly typed dataset fields, each named. */
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":\"1,2;3,4\",\"y\":[0,1]}");
    expect_error(&c, 422, "invalid_argument", "X");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1,2],[3,4]],\"y\":{\"0\":1}}");
    expect_error(&c, 422, "invalid_argument", "y");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1,2],[3,4]],\"y\":[0,1],\"name\":7}");
    expect_error(&c, 422, "invalid_argument", "name");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1,2],[3,4]],\"y\":[0,\"1\"]}");
    expect_error(&c, 422, "invalid_argument", "y[1]");
    done(&c);

    /* NaN / Infinity literals in X: 422 naming the element, not a 400. */
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1,NaN],[2,3]],\"y\":[0,1]}");
    expect_error(&c, 422, "invalid_argument", "X[0][1]");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1,2],[Infinity,3]],\"y\":[0,1]}");
    expect_error(&c, 422, "invalid_argument", "X[1][0]");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1,2],[3,4],[5,-Infinity]],\"y\":[0,1,1]}");
    expect_error(&c, 422, "invalid_argument", "X[2][1]");
    done(&c);
    c = req(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1,2],[3,1e39]],\"y\":[0,1]}");
    expect_error(&c, 422, "invalid_argument", "X[1][1]");
    done(&c);

    /* Job bodies: wrongly typed fields, unknown keys. */
    char *ds = post_dataset(port, "{\"X\":[[1,2],[3,4],[0,1]],\"y\":[0,1,1]}");
    struct { const char *hp, *field; } bad_hp[] = {
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
        snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
                 "\"hyperparameters\":%s}", ds, bad_hp[i].hp);
        c = req(port, "POST", "/v1/jobs", NULL, body);
        expect_error(&c, 422, "invalid_argument", bad_hp[i].field);
        if (!bad_hp[i].field)
            ck_assert_msg(strncmp(field_of(&c), "hyperparameters.initial_weights", 31) == 0,
                          "%s", c.r.body);
        done(&c);
    }
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"hyperparams\":{}}", ds);
    c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, "invalid_argument", "hyperparams");
    ck_assert_ptr_nonnull(strstr(c.r.body, "hyperparams"));
    done(&c);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"datset\":\"%s\"}", ds);
    c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, "invalid_argument", "datset");
    done(&c);
    snprintf(body, sizeof body, "{\"model\":7,\"dataset\":\"%s\"}", ds);
    c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, "invalid_argument", "model");
    done(&c);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":[\"%s\"]}", ds);
    c = req(port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, "invalid_argument", "dataset");
    done(&c);
    c = req(port, "POST", "/v1/jobs", NULL, "{\"model\":\"softmax\"}");
    expect_error(&c, 422, "invalid_argument", "dataset");
    done(&c);

    /* Inline data with an error inside: the field is prefixed "data.". */
    struct { const char *data, *hp, *field; } bad_data[] = {
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
        c = req(port, "POST", "/v1/jobs", NULL, body);
        expect_error(&c, 422, "invalid_argument", bad_data[i].field);
        ck_assert_msg(strncmp(field_of(&c), "data", 4) == 0, "%s: field not under data: %s",
                      bad_data[i].data, c.r.body);
        done(&c);
    }
    /* A hyperparameter that contradicts inline data is still the hyperparameter's fault. */
    c = req(port, "POST", "/v1/jobs", NULL, "{\"model\":\"softmax\",\"data\":{\"X\":[[1,2],"
            "[1,4]],\"y\":[0,5]},\"hyperparameters\":{\"n_classes\":2}}");
    expect_error(&c, 422, "invalid_argument", "hyperparameters.n_classes");
    done(&c);
    /* None of the failed inline bodies left a dataset behind. */
    c = req(port, "GET", "/v1/datasets", NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(item(c.json, "datasets")), 1);
    done(&c);
    c = req(port, "GET", "/v1/jobs", NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(item(c.json, "jobs")), 0);
    done(&c);

    expect_healthy(port);
    free(ds);
    stop(&d);
}
END_TEST

/* ---- every route's error paths --------------------------------------------------------- */

START_TEST(unknown_ids_are_404)
{
    httpc_daemon d = start(NULL, NULL);
    struct { const char *method, *path; } r404[] = {
        {"GET", "/v1/datasets/ds_nope"},      {"DELETE", "/v1/datasets/ds_nope"},
        {"GET", "/v1/jobs/job_nope"},         {"DELETE", "/v1/jobs/job_nope"},
        {"GET", "/v1/jobs/job_nope/losses"},  {"GET", "/v1/jobs/job_nope/losses?format=csv"},
        {"GET", "/v1/jobs/job_nope/events"},  {"GET", "/v1/jobs/job_nope/model"},
        {"POST", "/v1/jobs/job_nope/cancel"}, {"POST", "/v1/jobs/job_nope/predict"},
    };
    for (size_t i = 0; i < sizeof r404 / sizeof r404[0]; i++) {
        int post = strcmp(r404[i].method, "POST") == 0 && strstr(r404[i].path, "predict");
        call c = req(d.port, r404[i].method, r404[i].path, NULL, post ? "{\"X\":[[1,2]]}" : NULL);
        ck_assert_msg(c.status == 404, "%s %s: %d %s", r404[i].method, r404[i].path, c.status,
                      c.r.body);
        expect_error(&c, 404, "not_found", NULL);
        done(&c);
    }
    /* A job body naming a missing dataset or validation set: 422 on that field. */
    call c = req(d.port, "POST", "/v1/jobs", NULL, "{\"model\":\"softmax\",\"dataset\":\"ds_nope\"}");
    expect_error(&c, 422, "invalid_argument", "dataset");
    done(&c);
    char *ds = post_dataset(d.port, "{\"X\":[[1,2],[3,4]],\"y\":[0,1]}");
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"validation\":\"ds_nope\"}", ds);
    c = req(d.port, "POST", "/v1/jobs", NULL, body);
    expect_error(&c, 422, "invalid_argument", "validation");
    done(&c);
    free(ds);
    stop(&d);
}
END_TEST

START_TEST(model_and_predict_before_a_model_are_409)
{
    char *conf = write_file("workers = 1\n");
    const char *args[] = {"--config", conf, NULL};
    httpc_daemon d = start(NULL, args);
    int port = d.port;
    char *b = dataset_body(60, 2, 2, 3);
    char *ds = post_dataset(port, b);
    free(b);
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":10000000}}", ds);
    char *running = post_job(port, body);
    char *queued = post_job(port, body); /* one worker: waits behind the first */
    cJSON *j = get_json(port, "/v1/jobs/%s", queued);
    ck_assert_str_eq(str(j, "state"), "queued");
    cJSON_Delete(j);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/model", queued);
    call c = req(port, "GET", path, NULL, NULL);
    expect_error(&c, 409, NULL, NULL);
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", queued);
    c = req(port, "POST", path, NULL, "{\"X\":[[0.1,0.2]]}");
    expect_error(&c, 409, NULL, NULL);
    done(&c);
    /* A queued job has an empty history, not an error. */
    j = get_json(port, "/v1/jobs/%s/losses", queued);
    ck_assert_int_eq(cJSON_GetArraySize(item(j, "epoch")), 0);
    cJSON_Delete(j);
    /* A queued job cannot be deleted; cancelled at once, it can. */
    snprintf(path, sizeof path, "/v1/jobs/%s", queued);
    c = req(port, "DELETE", path, NULL, NULL);
    expect_error(&c, 409, NULL, NULL);
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", queued);
    c = req(port, "POST", path, NULL, NULL);
    ck_assert_int_eq(c.status, 202);
    ck_assert_str_eq(str(c.json, "state"), "cancelled");
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/model", queued);
    c = req(port, "GET", path, NULL, NULL);
    expect_error(&c, 409, NULL, NULL); /* cancelled before it ran: still no model */
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", queued);
    c = req(port, "POST", path, NULL, NULL);
    expect_error(&c, 409, NULL, NULL); /* terminal */
    done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s", queued);
    c = req(port, "DELETE", path, NULL, NULL);
    ck_assert_int_eq(c.status, 204);
    done(&c);

    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", running);
    c = req(port, "POST", path, NULL, NULL);
    ck_assert_int_eq(c.status, 202);
    done(&c);
    char *st = wait_job(port, running, 10);
    ck_assert_str_eq(st, "cancelled");
    free(st);
    stop(&d);
    unlink(conf);
    free(conf), free(ds), free(running), free(queued);
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
    httpc_daemon d = start(NULL, NULL);
    int port = d.port;

    /* Inline data: a dataset is stored and the job trains on it. */
    char *b = dataset_body(40, 3, 3, 5);
    char *body = malloc(strlen(b) + 256);
    sprintf(body, "{\"model\":\"softmax\",\"data\":%s,\"hyperparameters\":{\"epochs\":7}}", b);
    call c = req(port, "POST", "/v1/jobs", NULL, body);
    ck_assert_msg(c.status == 202 || c.status == 201, "inline job: %d %s", c.status, c.r.body);
    char *inline_job = strdup(str(c.json, "id"));
    char *inline_ds = strdup(str(c.json, "dataset"));
    done(&c);
    free(body);
    expect_succeeds(port, inline_job);
    cJSON *j = get_json(port, "/v1/datasets/%s", inline_ds);
    ck_assert_int_eq(item(j, "n_samples")->valueint, 40);
    ck_assert_int_eq(item(j, "n_features")->valueint, 3);
    ck_assert_int_eq(item(j, "n_classes")->valueint, 3);
    cJSON_Delete(j);
    j = get_json(port, "/v1/jobs/%s/losses", inline_job);
    ck_assert_int_eq(cJSON_GetArraySize(item(j, "data_loss")), 7);
    cJSON_Delete(j);

    /* A validation set: val_loss and val_accuracy are numbers every epoch. */
    char *train = post_dataset(port, b);
    free(b);
    b = dataset_body(25, 3, 3, 77);
    char *val = post_dataset(port, b);
    free(b);
    char jb[512];
    snprintf(jb, sizeof jb, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\","
             "\"hyperparameters\":{\"epochs\":12,\"lr\":0.5}}", train, val);
    char *vjob = post_job(port, jb);
    expect_succeeds(port, vjob);
    j = get_json(port, "/v1/jobs/%s/losses", vjob);
    ck_assert_int_eq(cJSON_GetArraySize(item(j, "val_loss")), 12);
    ck_assert_int_eq(cJSON_GetArraySize(item(j, "val_accuracy")), 12);
    ck_assert_msg(array_all_numbers(item(j, "val_loss"), 1e-9, 100), "val_loss not numbers");
    ck_assert_msg(array_all_numbers(item(j, "val_accuracy"), 0, 1), "val_accuracy not in [0,1]");
    /* Trained on rows of the same rule, the model beats chance on the held-out set. */
    ck_assert_double_lt(cJSON_GetArrayItem(item(j, "val_loss"), 11)->valuedouble, log(3.0));
    ck_assert_double_gt(cJSON_GetArrayItem(item(j, "val_accuracy"), 11)->valuedouble, 1.0 / 3);
    cJSON_Delete(j);
    j = get_json(port, "/v1/jobs/%s", vjob);
    ck_assert_str_eq(str(j, "validation"), val);
    ck_assert(cJSON_IsNumber(item(item(j, "metrics"), "val_loss")));
    cJSON_Delete(j);

    /* A validation set with another feature count: 422 on "validation". */
    char *wide = post_dataset(port, "{\"X\":[[1,2,3,4],[4,3,2,1]],\"y\":[0,1]}");
    snprintf(jb, sizeof jb, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\"}",
             train, wide);
    c = req(port, "POST", "/v1/jobs", NULL, jb);
    expect_error(&c, 422, "invalid_argument", "validation");
    done(&c);

    /* predict: the wrong feature count names the row; other bad bodies too. */
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", vjob);
    c = req(port, "POST", path, NULL, "{\"X\":[[0.1,0.2]]}");
    expect_error(&c, 422, "invalid_argument", "X");
    ck_assert_msg(strstr(c.r.body, "expects 3 features") != NULL, "%s", c.r.body);
    done(&c);
    c = req(port, "POST", path, NULL, "{\"X\":[[0.1,0.2,0.3],[1,2,NaN]]}");
    expect_error(&c, 422, "invalid_argument", "X[1][2]");
    done(&c);
    c = req(port, "POST", path, NULL, "{\"X\":[[0.1,0.2,0.3]");
    expect_error(&c, 400, "malformed_json", NULL);
    done(&c);
    c = req(port, "POST", path, NULL, "{\"rows\":[[0.1,0.2,0.3]]}");
    expect_error(&c, 422, "invalid_argument", NULL);
    done(&c);
    c = req(port, "POST", path, NULL, "{\"X\":[[0.1,0.2,0.3],[1,2,3]]}");
    ck_assert_int_eq(c.status, 200);
    ck_assert_int_eq(cJSON_GetArraySize(item(c.json, "labels")), 2);
    done(&c);

    stop(&d);
    free(inline_job), free(inline_ds), free(train), free(val), free(vjob), free(wide);
}
END_TEST

START_TEST(csv_upload)
{
    httpc_daemon d = start(NULL, NULL);
    int port = d.port;
    /* Label first, a header line, CRLF and a quoted field. */
    const char *csv = "label,a,b\r\n0,1,2\r\n1,3,-4\r\n2,\"0.5\",6\r\n1,-1,0.25\r\n";
    call c = req(port, "POST", "/v1/datasets?header=true&label_column=first",
                 "Content-Type: text/csv", csv);
    ck_assert_msg(c.status == 201, "csv: %d %s", c.status, c.r.body);
    ck_assert_int_eq(item(c.json, "n_samples")->valueint, 4);
    ck_assert_int_eq(item(c.json, "n_features")->valueint, 2);
    ck_assert_int_eq(item(c.json, "n_classes")->valueint, 3);
    ck_assert_str_eq(str(c.json, "target"), "index");
    char *ds = strdup(str(c.json, "id"));
    done(&c);

    /* One full-batch GD step from zero weights with lr 1: W = X^T (Y - 1/K) / N and
     * b = mean(Y - 1/K), which pins every value and label to its place. */
    const double X[4][2] = {{1, 2}, {3, -4}, {0.5, 6}, {-1, 0.25}};
    const int y[4] = {0, 1, 2, 1};
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"epochs\":1,\"lr\":1,\"batch_size\":0}}", ds);
    char *job = post_job(port, body);
    expect_succeeds(port, job);
    cJSON *m = get_json(port, "/v1/jobs/%s/model", job);
    for (int k = 0; k < 3; k++) {
        double bk = 0;
        for (int n = 0; n < 4; n++)
            bk += ((y[n] == k) - 1.0 / 3) / 4;
        tu_close(cJSON_GetArrayItem(item(m, "b"), k)->valuedouble, bk, 1e-6, 1e-7, "csv b");
        for (int j = 0; j < 2; j++) {
            double w = 0;
            for (int n = 0; n < 4; n++)
                w += X[n][j] * ((y[n] == k) - 1.0 / 3) / 4;
            tu_close(cJSON_GetArrayItem(cJSON_GetArrayItem(item(m, "W"), j), k)->valuedouble,
                     w, 1e-6, 1e-7, "csv W");
        }
    }
    cJSON_Delete(m);

    /* Bad CSV: the field names the line and the column. */
    struct { const char *csv, *field; } bad[] = {
        {"label,a,b\n0,1,2\n1,3,x\n", "line 3, column 3"},
        {"label,a,b\n0,1,2\n1.5,3,4\n", "line 3, column 1"},
        {"label,a,b\n0,1,2\n1,,4\n", "line 3, column 2"},
        {"label,a,b\n0,1,2\n1,3\n", "line 3"},
        {"label,a,b\n0,1,2\n0,1,2\n1,nan,4\n", "line 4, column 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = req(port, "POST", "/v1/datasets?header=true&label_column=first",
                "Content-Type: text/csv", bad[i].csv);
        expect_error(&c, 422, "invalid_argument", bad[i].field);
        done(&c);
    }
    c = req(port, "POST", "/v1/datasets?label_column=middle", "Content-Type: text/csv", "1,2\n");
    expect_error(&c, 422, "invalid_argument", "label_column");
    done(&c);
    c = req(port, "POST", "/v1/datasets?header=maybe", "Content-Type: text/csv", "1,2\n");
    expect_error(&c, 422, "invalid_argument", "header");
    done(&c);
    c = req(port, "POST", "/v1/datasets", "Content-Type: text/xml", "<x/>");
    expect_error(&c, 415, NULL, NULL);
    done(&c);
    stop(&d);
    free(ds), free(job);
}
END_TEST

/* traind_http_requests_total{code="C"} in a /metrics body (0 when absent). */
static long requests_by_code(int port, int code)
{
    call c = req(port, "GET", "/metrics", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    char key[64];
    snprintf(key, sizeof key, "traind_http_requests_total{code=\"%d\"} ", code);
    const char *p = strstr(c.r.body, key);
    long n = p ? strtol(p + strlen(key), NULL, 10) : 0;
    done(&c);
    return n;
}

START_TEST(listing_idempotency_health_metrics)
{
    httpc_daemon d = start(NULL, NULL);
    int port = d.port;
    call c = req(port, "GET", "/readyz", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    done(&c);

    c = req(port, "GET", "/v1/jobs?state=bogus", NULL, NULL);
    expect_error(&c, 422, "invalid_argument", "state");
    done(&c);
    c = req(port, "GET", "/v1/jobs?limit=abc", NULL, NULL);
    expect_error(&c, 422, "invalid_argument", "limit");
    done(&c);
    c = req(port, "GET", "/v1/datasets?limit=1001", NULL, NULL);
    expect_error(&c, 422, "invalid_argument", "limit");
    done(&c);

    /* Idempotency-Key: the same key is the same job, before and after it finished. */
    char *ds = post_dataset(port, "{\"X\":[[1,2],[3,4],[0,1]],\"y\":[0,1,1]}");
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":3}}", ds);
    const char *k1 = JSON_HDR "\nIdempotency-Key: api-key-1";
    char *a = post_id(port, "/v1/jobs", k1, body, 202);
    char *b = post_id(port, "/v1/jobs", k1, body, 202);
    ck_assert_str_eq(a, b);
    expect_succeeds(port, a);
    char *c3 = post_id(port, "/v1/jobs", k1, body, 202);
    ck_assert_str_eq(a, c3);
    char *other = post_id(port, "/v1/jobs", JSON_HDR "\nIdempotency-Key: api-key-2", body, 202);
    ck_assert_str_ne(a, other);
    expect_succeeds(port, other);
    c = req(port, "GET", "/v1/jobs", NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(item(c.json, "jobs")), 2);
    ck_assert(cJSON_IsNull(item(c.json, "next")));
    done(&c);
    c = req(port, "GET", "/v1/jobs?state=succeeded&limit=1", NULL, NULL);
    ck_assert_int_eq(cJSON_GetArraySize(item(c.json, "jobs")), 1);
    ck_assert_str_eq(str(cJSON_GetArrayItem(item(c.json, "jobs"), 0), "state"), "succeeded");
    ck_assert_ptr_nonnull(str(c.json, "next"));
    done(&c);

    /* /metrics counts every answer by its code. */
    long n404 = requests_by_code(port, 404), n422 = requests_by_code(port, 422);
    long n202 = requests_by_code(port, 202);
    for (int i = 0; i < 3; i++) {
        c = req(port, "GET", "/v1/jobs/job_missing", NULL, NULL);
        ck_assert_int_eq(c.status, 404);
        done(&c);
    }
    for (int i = 0; i < 2; i++) {
        c = req(port, "GET", "/v1/jobs?state=nope", NULL, NULL);
        ck_assert_int_eq(c.status, 422);
        done(&c);
    }
    free(post_id(port, "/v1/jobs", k1, body, 202));
    ck_assert_int_eq(requests_by_code(port, 404), n404 + 3);
    ck_assert_int_eq(requests_by_code(port, 422), n422 + 2);
    ck_assert_int_eq(requests_by_code(port, 202), n202 + 1);
    c = req(port, "GET", "/metrics", NULL, NULL);
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_jobs{state=\"succeeded\"} 2"));
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_queue_depth 0"));
    /* one name per metric: running jobs are traind_jobs{state="running"} only */
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_jobs{state=\"running\"} 0"));
    ck_assert_ptr_null(strstr(c.r.body, "traind_jobs_running"));
    done(&c);
    stop(&d);
    free(ds), free(a), free(b), free(c3), free(other);
}
END_TEST

/* ---- the OpenAPI document -------------------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

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
    cJSON_ArrayForEach(ch, v) {
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
    httpc_daemon d;
    ck_assert_int_gt(httpc_daemon_start(&d, NULL, NULL, env), 0);
    call c = req(d.port, "GET", "/v1/openapi.json", NULL, NULL);
    expect_error(&c, 401, NULL, NULL); /* behind auth like the rest of /v1 */
    done(&c);
    c = req(d.port, "GET", "/v1/openapi.json", "Authorization: Bearer openapi-token", NULL);
    ck_assert_int_eq(c.status, 200);
    char ct[64];
    ck_assert_ptr_nonnull(httpc_header(&c.r, "Content-Type", ct, sizeof ct));
    ck_assert_msg(strncmp(ct, "application/json", 16) == 0, "Content-Type %s", ct);
    ck_assert_msg(c.json != NULL, "not valid JSON");
    /* Served byte for byte as the repository's docs/openapi.json. */
    char *file = read_text("docs/openapi.json");
    ck_assert_uint_eq(c.r.body_len, strlen(file));
    ck_assert(memcmp(c.r.body, file, c.r.body_len) == 0);
    free(file);

    const cJSON *doc = c.json, *paths = item(doc, "paths");
    ck_assert_msg(strncmp(str(doc, "openapi"), "3.", 2) == 0, "openapi %s", str(doc, "openapi"));
    ck_assert_ptr_nonnull(str(item(doc, "info"), "title"));
    ck_assert_ptr_nonnull(str(item(doc, "info"), "version"));
    check_refs(doc, doc);
    /* The error object of SPEC §6. */
    const cJSON *err = item(item(item(doc, "components"), "schemas"), "Error");
    const cJSON *eo = item(item(err, "properties"), "error");
    if (cJSON_GetObjectItem(eo, "$ref"))
        eo = resolve(doc, str(eo, "$ref"));
    const cJSON *props = item(eo, "properties");
    const char *const error_keys[] = {"code", "message", "field"};
    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(str(item(props, error_keys[i]), "type"), "string");

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
        ck_assert_msg(op != NULL, "openapi.json lacks %s %s", routes[i].method,
                      routes[i].pattern);
        ck_assert_msg(cJSON_GetArraySize(item(op, "responses")) > 0, "%s %s: no responses",
                      routes[i].method, routes[i].pattern);
    }
    const char *base[] = {"/healthz", "/readyz", "/metrics", "/v1/openapi.json"};
    for (int i = 0; i < 4; i++) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(paths, base[i]);
        ck_assert_msg(p && cJSON_GetObjectItem(p, "get"), "openapi.json lacks GET %s", base[i]);
    }
    done(&c);
    stop(&d);
}
END_TEST

/* The suite; with fixtures (setup, teardown) around each test of every case. */
static Suite *api_suite(const char *name, void (*setup)(void), void (*teardown)(void))
{
    Suite *s = suite_create(name);
    TCase *ref = tcase_create("reference");
    tcase_set_timeout(ref, 120);
    tcase_add_test(ref, loss_reference_vectors);
    tcase_add_test(ref, optimizer_reference_jobs);
    tcase_add_test(ref, column0_reference_job);
    if (setup) tcase_add_checked_fixture(ref, setup, teardown);
    suite_add_tcase(s, ref);
    TCase *life = tcase_create("persistence");
    tcase_set_timeout(life, 120);
    tcase_add_test(life, state_survives_clean_restart);
    if (setup) tcase_add_checked_fixture(life, setup, teardown);
    suite_add_tcase(s, life);
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


Suite *suite_api(void) { return api_suite("api", NULL, NULL); }

/* The same suite over HTTPS (issue 11): httpc makes a self-signed certificate with
 * openssl, every daemon gets tls_cert_file / tls_key_file, and every request goes through
 * GnuTLS, verifying the certificate. Checked fixtures run in each test's own process. */
static void https_on(void) { ck_assert_int_eq(httpc_tls_on(), 0); }
static void https_off(void) { httpc_tls_off(); }

Suite *suite_api_https(void) { return api_suite("api_https", https_on, https_off); }

/* The same suite on a shared PostgreSQL store (issue 17; tests/pgtest.h): a fresh
 * database per test, every daemon of the test on it. */
static void pg_on(void)
{
    char uri[512];
    td_pgtest_newdb(uri, sizeof uri);
    httpc_store_set(uri);
}
static void pg_off(void) { httpc_store_set(NULL); }

Suite *suite_api_pg(void)
{
    td_pgtest_server();
    return api_suite("api_pg", pg_on, pg_off);
}
