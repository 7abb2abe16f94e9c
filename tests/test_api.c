/* test_api.c — the /v1 API against a live daemon, beyond the walkthrough of test_e2e.c:
 *   reference    the vectors of $TD_REFDIR through POST /v1/loss and through real training
 *                jobs (optimizers with initial_weights, GD with intercept "column0"); every
 *                request body is built from the reference JSON at run time, so any seed's
 *                set can be swapped in
 *   persistence  datasets, a finished job, its history and model, byte for byte across a
 *                clean restart over the same state directory
 * Bad bodies and each route's error paths are test_routes.c. Each test starts its own
 * short-lived daemon on an ephemeral port; api_https and api_pg run the same over HTTPS
 * and on a PostgreSQL store. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "pgtest.h"
#include "testutil.h"

/* ---- helpers ----------------------------------------------------------------------- */

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
    if (v) cJSON_AddItemToObject(obj, key, jdup(v));
}

static char *post_dataset(int port, const char *body)
{
    return api_post_id(port, "/v1/datasets", body, 201);
}

static char *post_job(int port, const char *body)
{
    return api_post_id(port, "/v1/jobs", body, 202);
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
        tu_close_at(__FILE__, __LINE__, got->valuedouble, want->valuedouble, rtol, atol, what, -1);
        return;
    }
    ck_assert_msg(cJSON_IsArray(want), "reference %s is neither a number nor an array", what);
    ck_assert_msg(cJSON_IsArray(got), "%s is not an array", what);
    ck_assert_msg(cJSON_GetArraySize(got) == cJSON_GetArraySize(want), "%s has %d entries, want %d",
                  what, cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    int i = 0;
    const cJSON *g = got->child, *w;
    cJSON_ArrayForEach(w, want)
    {
        char sub[160];
        snprintf(sub, sizeof sub, "%s[%d]", what, i++);
        json_close(g, w, rtol, atol, sub);
        g = g->next;
    }
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
    api_call c = api_req(port, "POST", "/v1/loss", body);
    ck_assert_msg(c.status == 200, "/v1/loss: %d %s\nrequest %s", c.status, c.r.body, body);
    free(body);
    cJSON *j = c.json;
    ck_assert_ptr_nonnull(j);
    c.json = NULL;
    api_done(&c);
    return j;
}

static void ce_index_cases(int port)
{
    cJSON *ref = tu_ref_load("cross_entropy_index.json");
    const cJSON *cases = api_item(ref, "cases"), *cs, *target = api_item(ref, "target");
    int ignore = (int)tu_num(ref, "ignore_index"), n = 0;
    ck_assert_int_gt(cJSON_GetArraySize(cases), 0);
    cJSON_ArrayForEach(cs, cases)
    {
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
        json_close(api_item(res, "loss"), api_item(cs, "loss"), LOSS_RTOL, 0, what);
        snprintf(what, sizeof what, "cross_entropy_index case %d grad", n);
        json_close(api_item(res, "grad"), api_item(cs, "grad"), LOSS_RTOL, GRAD_ATOL, what);
        /* per_sample: 0 on ignored rows; with "sum" they add up to the loss. */
        const cJSON *per = api_item(res, "per_sample"), *t, *p = per->child;
        ck_assert_int_eq(cJSON_GetArraySize(per), cJSON_GetArraySize(target));
        double sum = 0;
        cJSON_ArrayForEach(t, target)
        {
            if (t->valueint == ignore)
                ck_assert_msg(p->valuedouble == 0.0, "ignored row has loss %g", p->valuedouble);
            sum += p->valuedouble;
            p = p->next;
        }
        if (strcmp(api_str(cs, "reduction"), "sum") == 0)
            tu_close(sum, tu_num(cs, "loss"), LOSS_RTOL, 0, "sum of per_sample");
        cJSON_Delete(res);
        n++;
    }
    cJSON_Delete(ref);
}

static void ce_probs_cases(int port)
{
    cJSON *ref = tu_ref_load("cross_entropy_probs.json");
    const cJSON *cases = api_item(ref, "cases"), *cs;
    int n = 0;
    ck_assert_int_gt(cJSON_GetArraySize(cases), 0);
    cJSON_ArrayForEach(cs, cases)
    {
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
        json_close(api_item(res, "loss"), api_item(cs, "loss"), LOSS_RTOL, 0, what);
        snprintf(what, sizeof what, "cross_entropy_probs case %d grad", n);
        json_close(api_item(res, "grad"), api_item(cs, "grad"), LOSS_RTOL, GRAD_ATOL, what);
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
    json_close(api_item(res, "loss"), api_item(ref, "mean"), LOSS_RTOL, 0, "categorical loss");
    json_close(api_item(res, "per_sample"), api_item(ref, "per_sample"), LOSS_RTOL, 1e-7,
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
    json_close(api_item(res, "loss"), api_item(ref, "loss"), LOSS_RTOL, 0, "grouped loss");
    json_close(api_item(res, "cross_entropy"), api_item(ref, "cross_entropy"), LOSS_RTOL, 0,
               "grouped cross_entropy");
    json_close(api_item(res, "penalty"), api_item(ref, "penalty"), LOSS_RTOL, 1e-7,
               "grouped penalty");
    json_close(api_item(res, "expected_index"), api_item(ref, "expected_index"), LOSS_RTOL, 1e-7,
               "grouped expected_index");
    json_close(api_item(res, "grad"), api_item(ref, "grad"), LOSS_RTOL, GRAD_ATOL, "grouped grad");
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
    json_close(api_item(res, "loss"), api_item(ref, "loss"), LOSS_RTOL, 0, "contrastive loss");
    json_close(api_item(res, "grad_a"), api_item(ref, "grad_a"), LOSS_RTOL, GRAD_ATOL,
               "contrastive grad_a");
    json_close(api_item(res, "grad_b"), api_item(ref, "grad_b"), LOSS_RTOL, GRAD_ATOL,
               "contrastive grad_b");
    const cJSON *per = api_item(res, "per_sample"), *v;
    ck_assert_int_eq(cJSON_GetArraySize(per), cJSON_GetArraySize(api_item(ref, "similar")));
    double sum = 0;
    cJSON_ArrayForEach(v, per) sum += v->valuedouble;
    tu_close(sum / cJSON_GetArraySize(per), tu_num(ref, "loss"), LOSS_RTOL, 0,
             "mean of per_sample");
    cJSON_Delete(res);
    cJSON_Delete(ref);
}

START_TEST(loss_reference_vectors)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    ce_index_cases(d.port);
    ce_probs_cases(d.port);
    cce_case(d.port);
    grouped_case(d.port);
    contrastive_case(d.port);
    api_expect_healthy(d.port);
    api_stop(&d);
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
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    cJSON *ref = tu_ref_load("optimizers.json");
    const cJSON *cases = api_item(ref, "cases"), *cs, *W0 = api_item(ref, "W0");
    int n = cJSON_GetArraySize(cases);
    ck_assert_int_gt(n, 0);
    int K = cJSON_GetArraySize(W0->child);
    char *ds = post_ref_dataset(d.port, ref);
    char **jobs = calloc((size_t)n, sizeof *jobs);

    /* Submit every case, then check each (the workers run them side by side). */
    int i = 0;
    cJSON_ArrayForEach(cs, cases)
    {
        cJSON *hp = cJSON_CreateObject(), *p;
        cJSON_AddStringToObject(hp, "optimizer", api_str(cs, "optimizer"));
        cJSON_ArrayForEach(p, api_item(cs, "params")) cJSON_AddItemToObject(hp, p->string, jdup(p));
        cJSON_AddNumberToObject(hp, "epochs", cJSON_GetArraySize(api_item(cs, "losses")));
        cJSON_AddNumberToObject(hp, "batch_size", 0);
        cJSON_AddNumberToObject(hp, "n_classes", K);
        cJSON *iw = cJSON_AddObjectToObject(hp, "initial_weights");
        cJSON_AddItemToObject(iw, "W", jdup(W0));
        cJSON_AddItemToObject(iw, "b", jdup(api_item(ref, "b0")));
        char *body = job_body(ds, hp);
        jobs[i++] = post_job(d.port, body);
        free(body);
    }
    i = 0;
    cJSON_ArrayForEach(cs, cases)
    {
        const char *id = jobs[i];
        api_expect_state(d.port, id, "succeeded", 30);
        char what[96], *params = cJSON_PrintUnformatted(api_item(cs, "params"));
        cJSON *job = api_get_json(d.port, "/v1/jobs/%s", id);
        const cJSON *hp = api_item(job, "hyperparameters");
        ck_assert_str_eq(api_str(hp, "optimizer"), api_str(cs, "optimizer"));
        ck_assert_int_eq(api_item(hp, "n_classes")->valueint, K);
        cJSON_Delete(job);

        cJSON *model = api_get_json(d.port, "/v1/jobs/%s/model", id);
        snprintf(what, sizeof what, "%s %.48s W", api_str(cs, "optimizer"), params);
        json_close(api_item(model, "W"), api_item(cs, "W"), TRAIN_RTOL, TRAIN_ATOL, what);
        snprintf(what, sizeof what, "%s %.48s b", api_str(cs, "optimizer"), params);
        json_close(api_item(model, "b"), api_item(cs, "b"), TRAIN_RTOL, TRAIN_ATOL, what);
        cJSON_Delete(model);

        cJSON *losses = api_get_json(d.port, "/v1/jobs/%s/losses", id);
        snprintf(what, sizeof what, "%s %.48s data_loss", api_str(cs, "optimizer"), params);
        json_close(api_item(losses, "data_loss"), api_item(cs, "losses"), TRAIN_RTOL, 0, what);
        cJSON_Delete(losses);
        free(params);
        free(jobs[i++]);
    }
    free(jobs);
    free(ds);
    cJSON_Delete(ref);
    api_stop(&d);
}
END_TEST

START_TEST(column0_reference_job)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    cJSON *ref = tu_ref_load("softmax_gd_intercept_column0.json");
    const cJSON *Wref = api_item(ref, "W"), *hist = api_item(ref, "history");
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
    api_expect_state(d.port, job, "succeeded", 30);

    cJSON *model = api_get_json(d.port, "/v1/jobs/%s/model", job);
    ck_assert_str_eq(api_str(model, "intercept"), "column0");
    ck_assert_msg(cJSON_IsNull(api_item(model, "b")), "column0 has no separate bias");
    json_close(api_item(model, "W"), Wref, TRAIN_RTOL, TRAIN_ATOL, "column0 W");
    cJSON_Delete(model);

    /* history[i] = [data_loss, reg_loss] before update i. */
    cJSON *data = cJSON_CreateArray(), *reg = cJSON_CreateArray();
    const cJSON *row;
    cJSON_ArrayForEach(row, hist)
    {
        cJSON_AddItemToArray(data, jdup(cJSON_GetArrayItem(row, 0)));
        cJSON_AddItemToArray(reg, jdup(cJSON_GetArrayItem(row, 1)));
    }
    cJSON *losses = api_get_json(d.port, "/v1/jobs/%s/losses", job);
    json_close(api_item(losses, "data_loss"), data, TRAIN_RTOL, 0, "column0 data_loss");
    json_close(api_item(losses, "reg_loss"), reg, TRAIN_RTOL, 1e-8, "column0 reg_loss");
    /* loss = data_loss + reg_loss, every epoch. */
    for (int e = 0; e < E; e++)
        tu_close(cJSON_GetArrayItem(api_item(losses, "loss"), e)->valuedouble,
                 cJSON_GetArrayItem(api_item(losses, "data_loss"), e)->valuedouble +
                     cJSON_GetArrayItem(api_item(losses, "reg_loss"), e)->valuedouble,
                 1e-6, 0, "loss = data_loss + reg_loss");
    cJSON_Delete(losses);
    cJSON_Delete(data);
    cJSON_Delete(reg);
    cJSON_Delete(ref);
    free(ds);
    free(job);
    api_stop(&d);
}
END_TEST

/* ---- persistence across a clean restart ---------------------------------------------- */

/* Everything a client can read about the stored state, as raw bodies. */
enum { SNAP_N = 11 };
static void snapshot(int port, const char *ds1, const char *ds2, const char *job, char *out[SNAP_N])
{
    int i = 0;
    out[i++] = api_get_raw(port, "/v1/datasets%s", "");
    out[i++] = api_get_raw(port, "/v1/datasets/%s", ds1);
    out[i++] = api_get_raw(port, "/v1/datasets/%s", ds2);
    out[i++] = api_get_raw(port, "/v1/jobs%s", "");
    out[i++] = api_get_raw(port, "/v1/jobs/%s", job);
    out[i++] = api_get_raw(port, "/v1/jobs/%s/losses", job);
    out[i++] = api_get_raw(port, "/v1/jobs/%s/losses?format=csv", job);
    out[i++] = api_get_raw(port, "/v1/jobs/%s/model", job);
    out[i++] = api_get_raw(port, "/v1/jobs?state=succeeded%s", "");
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    api_call c = api_req(port, "POST", path, "{\"X\":[[0.5,-0.25,1],[-1,0,0.75]]}");
    ck_assert_msg(c.status == 200, "predict: %d %s", c.status, c.r.body);
    out[i++] = strdup(c.r.body);
    api_done(&c);
    out[i++] = api_get_raw(port, "/v1/jobs/%s/events", job); /* a finished job: finite stream */
    ck_assert_int_eq(i, SNAP_N);
}

static const char *const SNAP_NAMES[SNAP_N] = {
    "dataset list", "dataset 1", "dataset 2",     "job list",    "job",   "losses",
    "losses csv",   "model",     "jobs by state", "predictions", "events"};

START_TEST(state_survives_clean_restart)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    char *b1 = api_dataset_body(80, 3, 3, 11);
    char *ds1 = post_dataset(d.port, b1);
    free(b1);
    char *ds2 =
        api_post_idh(d.port, "/v1/datasets?header=true&label_column=last&name=csv",
                     "Content-Type: text/csv", "a,b,c,label\n1,2,3,0\n4,5,6,1\n7,8,9.5,1\n", 201);
    const char *hp = "{\"optimizer\":\"adam\",\"lr\":0.05,\"epochs\":25,\"batch_size\":16,"
                     "\"seed\":9,\"l2\":0.01}";
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\","
             "\"hyperparameters\":%s}",
             ds1, ds2, hp);
    char *job = post_job(d.port, body);
    api_expect_state(d.port, job, "succeeded", 30);
    char *before[SNAP_N], *after[SNAP_N];
    snapshot(d.port, ds1, ds2, job, before);
    api_term(&d);

    httpc_daemon r = api_start(d.dir, NULL, NULL, NULL);
    api_expect_healthy(r.port);
    snapshot(r.port, ds1, ds2, job, after);
    for (int i = 0; i < SNAP_N; i++) {
        ck_assert_msg(strcmp(before[i], after[i]) == 0, "%s changed across the restart:\n%s\n%s",
                      SNAP_NAMES[i], before[i], after[i]);
        free(before[i]);
        free(after[i]);
    }
    /* The stored arrays came back too: the same job again trains to the same model. */
    char *again = post_job(r.port, body);
    api_expect_state(r.port, again, "succeeded", 30);
    char *m1 = api_get_raw(r.port, "/v1/jobs/%s/model", job);
    char *m2 = api_get_raw(r.port, "/v1/jobs/%s/model", again);
    ck_assert_str_eq(m1, m2);
    free(m1), free(m2);
    api_stop(&r);
    free(ds1), free(ds2), free(job), free(again);
}
END_TEST

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
    return s;
}

Suite *suite_api(void) { return api_suite("api", NULL, NULL); }

/* The same suite over HTTPS (issue 11; api_https_on) and on a shared PostgreSQL store
 * (issue 17; api_pg_on). Checked fixtures run in each test's own process. */
Suite *suite_api_https(void) { return api_suite("api_https", api_https_on, api_https_off); }

Suite *suite_api_pg(void)
{
    td_pgtest_server();
    return api_suite("api_pg", api_pg_on, api_pg_off);
}
