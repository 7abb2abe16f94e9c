/* test_first_use.c — what a data scientist meets first (issue 16), against a live daemon:
 *   names      an iris CSV with a header and species names: classes (sorted like
 *              numpy.unique), columns, label_column by header name, predictions as names
 *              (rows, or {"dataset": id}), the model's classes; JSON string labels in
 *              code point order; delimiter= and its hint; unknown query parameters
 *   evaluate   POST /v1/jobs/{id}/evaluate against scikit-learn's numbers
 *              ($TD_REFDIR/evaluate_metrics.json): a fixed softmax (lr 0) and gmm fits
 *              (full, diag) after one EM iteration
 *   frictions  the validation rows of validation_split, the hints for a top-level epochs,
 *              epochs on a gmm and a dataset given by name, the validation-set message,
 *              --listen PORT and "address already in use" */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "testutil.h"
#include "util/config.h"

#define CSV_HDR "Content-Type: text/csv"

static const char *message_of(const api_call *c)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(c->json, "error"), "message");
    return cJSON_IsString(m) ? m->valuestring : "";
}

/* A 422 (or status) whose message contains want (and field, when non-NULL). */
static void expect_error(int port, const char *method, const char *path, const char *hdrs,
                         const char *body, int status, const char *field, const char *want)
{
    api_call c = api_reqh(port, method, path, hdrs, body);
    ck_assert_msg(c.status == status, "%s %s: %d, want %d: %s", method, path, c.status, status,
                  c.r.body);
    ck_assert_msg(!want || strstr(message_of(&c), want), "message lacks \"%s\": %s", want,
                  c.r.body);
    if (field) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(c.json, "error"), "field");
        ck_assert_msg(cJSON_IsString(f) && strcmp(f->valuestring, field) == 0,
                      "field should be %s: %s", field, c.r.body);
    }
    api_done(&c);
}

/* The strings of a JSON array joined by ',' into buf. */
static const char *joined(const cJSON *a, char *buf, size_t cap)
{
    buf[0] = '\0';
    const cJSON *v;
    cJSON_ArrayForEach(v, a) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s",
                                      buf[0] ? "," : "", cJSON_IsString(v) ? v->valuestring : "?");
    return buf;
}

/* ---- names ------------------------------------------------------------------------- */

static const char IRIS[] =
    "sepal_length,sepal_width,petal_length,petal_width,species\n"
    "5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n4.7,3.2,1.3,0.2,setosa\n"
    "5.0,3.6,1.4,0.2,setosa\n7.0,3.2,4.7,1.4,versicolor\n6.4,3.2,4.5,1.5,versicolor\n"
    "6.9,3.1,4.9,1.5,versicolor\n5.5,2.3,4.0,1.3,versicolor\n6.3,3.3,6.0,2.5,virginica\n"
    "5.8,2.7,5.1,1.9,virginica\n7.1,3.0,5.9,2.1,virginica\n6.3,2.9,5.6,1.8,virginica\n";

START_TEST(iris_csv_with_names)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    cJSON *ds = api_jsonh(port, "POST", "/v1/datasets?header=true&label_column=species&name=iris",
                          CSV_HDR, IRIS, 201);
    char buf[256];
    ck_assert_str_eq(joined(api_item(ds, "classes"), buf, sizeof buf),
                     "setosa,versicolor,virginica");
    ck_assert_str_eq(joined(api_item(ds, "columns"), buf, sizeof buf),
                     "sepal_length,sepal_width,petal_length,petal_width");
    ck_assert_int_eq((int)cJSON_GetNumberValue(api_item(ds, "n_features")), 4);
    ck_assert_int_eq((int)cJSON_GetNumberValue(api_item(ds, "n_classes")), 3);
    char ds_id[64], path[160], body[512];
    snprintf(ds_id, sizeof ds_id, "%s", cJSON_GetStringValue(api_item(ds, "id")));
    cJSON_Delete(ds);
    /* the same through GET, and label_column=last gives the same dataset */
    snprintf(path, sizeof path, "/v1/datasets/%s", ds_id);
    ds = api_json(port, "GET", path, NULL, 200);
    ck_assert_str_eq(joined(api_item(ds, "classes"), buf, sizeof buf),
                     "setosa,versicolor,virginica");
    cJSON_Delete(ds);
    ds = api_jsonh(port, "POST", "/v1/datasets?header=true", CSV_HDR, IRIS, 201);
    ck_assert_str_eq(joined(api_item(ds, "classes"), buf, sizeof buf),
                     "setosa,versicolor,virginica");
    cJSON_Delete(ds);

    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"epochs\":300,\"lr\":0.1}}",
             ds_id);
    char *job = api_post_idh(port, "/v1/jobs", NULL, body, 202);
    api_expect_state(port, job, "succeeded", 12);
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    cJSON *p = api_json(port, "POST", path,
                        "{\"X\":[[5.0,3.4,1.5,0.2],[6.9,3.1,5.4,2.1],"
                        "[6.0,2.9,4.5,1.5]]}",
                        200);
    ck_assert_str_eq(joined(api_item(p, "labels"), buf, sizeof buf), "setosa,virginica,versicolor");
    ck_assert_str_eq(joined(api_item(p, "classes"), buf, sizeof buf),
                     "setosa,versicolor,virginica");
    /* probabilities in classes order: the named label is each row's argmax */
    const cJSON *probs = api_item(p, "probabilities");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(probs, 0)), 3);
    ck_assert(cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetArrayItem(probs, 0), 0)) > 0.5);
    ck_assert(cJSON_GetNumberValue(cJSON_GetArrayItem(cJSON_GetArrayItem(probs, 1), 2)) > 0.5);
    cJSON_Delete(p);
    /* {"dataset": id}: every row, the same answer as the rows themselves */
    snprintf(body, sizeof body, "{\"dataset\":\"%s\"}", ds_id);
    p = api_json(port, "POST", path, body, 200);
    ck_assert_int_eq(cJSON_GetArraySize(api_item(p, "labels")), 12);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(api_item(p, "labels"), 0)), "setosa");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(api_item(p, "labels"), 11)),
                     "virginica");
    cJSON_Delete(p);
    snprintf(path, sizeof path, "/v1/jobs/%s/model", job);
    cJSON *m = api_json(port, "GET", path, NULL, 200);
    ck_assert_str_eq(joined(api_item(m, "classes"), buf, sizeof buf),
                     "setosa,versicolor,virginica");
    cJSON_Delete(m);
    /* the exports: a C header names them, ONNX keeps them as metadata "classes" */
    snprintf(path, sizeof path, "/v1/jobs/%s/model?format=c", job);
    api_call x = api_reqh(port, "GET", path, NULL, NULL);
    ck_assert_int_eq(x.status, 200);
    ck_assert_msg(strstr(x.r.body,
                         "static const char *const traind_classes[TRAIND_N_OUTPUTS] = "
                         "{\n    \"setosa\",\n    \"versicolor\",\n    \"virginica\"\n};"),
                  "%s", x.r.body);
    api_done(&x);
    snprintf(path, sizeof path, "/v1/jobs/%s/model?format=onnx", job);
    x = api_reqh(port, "GET", path, NULL, NULL);
    ck_assert_int_eq(x.status, 200);
    static const char want[] = "classes\x12\x23[\"setosa\",\"versicolor\",\"virginica\"]";
    ck_assert_msg(memmem(x.r.body, x.r.body_len, want, sizeof want - 1) != NULL,
                  "no metadata_props classes in the ONNX model");
    api_done(&x);
    /* evaluate on the stored dataset matches its names to the model's */
    snprintf(path, sizeof path, "/v1/jobs/%s/evaluate", job);
    cJSON *e = api_json(port, "POST", path, body, 200);
    ck_assert_str_eq(joined(api_item(e, "classes"), buf, sizeof buf),
                     "setosa,versicolor,virginica");
    ck_assert_int_eq((int)cJSON_GetNumberValue(api_item(e, "n_samples")), 12);
    ck_assert(cJSON_GetNumberValue(api_item(e, "accuracy")) > 0.9);
    cJSON_Delete(e);
    free(job);

    /* label_column by a name the header lacks; by name without a header */
    expect_error(port, "POST", "/v1/datasets?header=true&label_column=kind", CSV_HDR, IRIS, 422,
                 "label_column", "\"kind\" is not a column of the header");
    expect_error(port, "POST", "/v1/datasets?label_column=species", CSV_HDR, IRIS, 422,
                 "label_column", "needs header=true");
    /* a number after names, a name after numbers */
    expect_error(port, "POST", "/v1/datasets", CSV_HDR, "1,2,3\n4,5,a\n", 422, "line 2, column 3",
                 "is not an integer class index");
    expect_error(port, "POST", "/v1/datasets", CSV_HDR, "1,x,a\n", 422, "line 1, column 2",
                 "\"x\" is not a number");
    api_stop(&d);
}
END_TEST

START_TEST(json_names_and_delimiters)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    char buf[256];
    /* code point order, as Python sorts str: "Z" < "a" < "z" < "é" */
    cJSON *ds = api_json(port, "POST", "/v1/datasets",
                         "{\"X\":[[1],[2],[3],[4],[5]],"
                         "\"y\":[\"z\",\"\\u00e9\",\"a\",\"Z\",\"a\"]}",
                         201);
    ck_assert_str_eq(joined(api_item(ds, "classes"), buf, sizeof buf), "Z,a,z,\xc3\xa9");
    ck_assert(cJSON_IsNull(api_item(ds, "columns")));
    cJSON_Delete(ds);
    expect_error(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1],[2]],\"y\":[\"a\",1]}", 422,
                 "y[1]", "must be a class name (a string)");
    expect_error(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1],[2]],\"y\":[0,\"a\"]}", 422,
                 "y[1]", NULL);
    expect_error(port, "POST", "/v1/datasets", NULL, "{\"X\":[[1],[2]],\"y\":[\"a\",\"\"]}", 422,
                 "y[1]", "a class name must be 1 to 256 bytes");
    /* an inline dataset of a job keeps its names */
    ds = api_json(port, "POST", "/v1/datasets", "{\"X\":[[1],[2]],\"y\":[0,1]}", 201);
    ck_assert(cJSON_IsNull(api_item(ds, "classes")));
    cJSON_Delete(ds);

    /* ';' and tab separated files: a hint without delimiter=, the data with it */
    const char *semi = "a;b;label\n1;2;x\n3;4;y\n";
    expect_error(port, "POST", "/v1/datasets?header=true", CSV_HDR, semi, 422, NULL,
                 "pass delimiter=;");
    expect_error(port, "POST", "/v1/datasets", CSV_HDR, "1;2;0\n3;4;1\n", 422, NULL,
                 "pass delimiter=;");
    expect_error(port, "POST", "/v1/datasets", CSV_HDR, "1\t2\t0\n3\t4\t1\n", 422, NULL,
                 "pass delimiter=tab");
    ds = api_jsonh(port, "POST", "/v1/datasets?header=true&delimiter=%3B", CSV_HDR, semi, 201);
    ck_assert_str_eq(joined(api_item(ds, "classes"), buf, sizeof buf), "x,y");
    ck_assert_str_eq(joined(api_item(ds, "columns"), buf, sizeof buf), "a,b");
    cJSON_Delete(ds);
    ds = api_jsonh(port, "POST", "/v1/datasets?delimiter=tab", CSV_HDR, "1\t2\t0\n3\t4\t1\n", 201);
    ck_assert_int_eq((int)cJSON_GetNumberValue(api_item(ds, "n_features")), 2);
    cJSON_Delete(ds);
    expect_error(port, "POST", "/v1/datasets?delimiter=xx", CSV_HDR, semi, 422, "delimiter",
                 "delimiter must be one of");

    /* unknown query parameters, on any route */
    expect_error(port, "POST", "/v1/datasets?headers=true", CSV_HDR, semi, 422, "headers",
                 "unknown query parameter \"headers\"");
    expect_error(port, "GET", "/v1/jobs?limt=3", NULL, NULL, 422, "limt",
                 "GET /v1/jobs takes state,limit,after");
    expect_error(port, "GET", "/healthz?x=1", NULL, NULL, 422, "x", "takes none");
    api_call c = api_reqh(port, "GET", "/v1/jobs?limit=3&state=queued", NULL, NULL);
    ck_assert_int_eq(c.status, 200);
    api_done(&c);
    api_stop(&d);
}
END_TEST

/* ---- evaluate ---------------------------------------------------------------------- */

/* The rows of a reference array as the JSON text of an inline array. */
static char *text_of(const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    ck_assert_ptr_nonnull(s);
    return s;
}

static double num_at(const cJSON *a, int i)
{
    return cJSON_GetNumberValue(cJSON_GetArrayItem(a, i));
}

START_TEST(evaluate_matches_sklearn)
{
    cJSON *ref = tu_ref_load("evaluate_metrics.json");
    const cJSON *cls = api_item(ref, "classifier"), *gm = api_item(ref, "gmm");
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    int K = (int)tu_num(cls, "K");
    /* the softmax holds W, b exactly: lr 1e-30 moves no float32 */
    char *X = text_of(api_item(cls, "X")), *y = text_of(api_item(cls, "y")),
         *W = text_of(api_item(cls, "W")), *b = text_of(api_item(cls, "b"));
    size_t cap = strlen(X) + strlen(y) + strlen(W) + strlen(b) + 512;
    char *body = malloc(cap);
    snprintf(
        body, cap,
        "{\"model\":\"softmax\",\"data\":{\"X\":%s,\"y\":%s},\"hyperparameters\""
        ":{\"epochs\":1,\"lr\":1e-30,\"n_classes\":%d,\"initial_weights\":{\"W\":%s,\"b\":%s}}}",
        X, y, K, W, b);
    char *job = api_post_idh(port, "/v1/jobs", NULL, body, 202);
    api_expect_state(port, job, "succeeded", 12);
    snprintf(body, cap, "{\"X\":%s,\"y\":%s}", X, y);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/evaluate", job);
    cJSON *e = api_json(port, "POST", path, body, 200);
    tu_close(tu_num(e, "accuracy"), tu_num(cls, "accuracy"), 0, 1e-12, "accuracy");
    tu_close(tu_num(e, "loss"), tu_num(cls, "log_loss"), 1e-4, 1e-6, "loss (log_loss)");
    const cJSON *cm = api_item(e, "confusion_matrix"), *rcm = api_item(cls, "confusion_matrix");
    const cJSON *per = api_item(e, "per_class");
    ck_assert_int_eq(cJSON_GetArraySize(per), K);
    for (int k = 0; k < K; k++) {
        for (int j = 0; j < K; j++)
            ck_assert_int_eq((int)num_at(cJSON_GetArrayItem(cm, k), j),
                             (int)num_at(cJSON_GetArrayItem(rcm, k), j));
        const cJSON *pc = cJSON_GetArrayItem(per, k);
        tu_close(tu_num(pc, "precision"), num_at(api_item(cls, "precision"), k), 1e-12, 1e-12,
                 "precision");
        tu_close(tu_num(pc, "recall"), num_at(api_item(cls, "recall"), k), 1e-12, 1e-12, "recall");
        tu_close(tu_num(pc, "f1"), num_at(api_item(cls, "f1"), k), 1e-12, 1e-12, "f1");
        ck_assert_int_eq((int)tu_num(pc, "support"), (int)num_at(api_item(cls, "support"), k));
    }
    static const char *const prf[] = {"precision", "recall", "f1"};
    for (int i = 0; i < 3; i++) {
        tu_close(tu_num(api_item(e, "macro_avg"), prf[i]), num_at(api_item(cls, "macro_avg"), i),
                 1e-12, 1e-12, "macro_avg");
        tu_close(tu_num(api_item(e, "weighted_avg"), prf[i]),
                 num_at(api_item(cls, "weighted_avg"), i), 1e-12, 1e-12, "weighted_avg");
    }
    cJSON_Delete(e);
    /* evaluate agrees with predict on the same rows */
    snprintf(body, cap, "{\"X\":%s}", X);
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    cJSON *p = api_json(port, "POST", path, body, 200);
    for (int i = 0; i < cJSON_GetArraySize(api_item(p, "labels")); i++)
        ck_assert_int_eq((int)num_at(api_item(p, "labels"), i),
                         (int)num_at(api_item(cls, "predicted"), i));
    cJSON_Delete(p);
    free(job);

    /* gmm: one EM iteration from the given start, then score, bic, aic on its rows */
    char *Xg = text_of(api_item(gm, "X")), *mi = text_of(api_item(gm, "means_init"));
    int M = (int)tu_num(gm, "components");
    free(body);
    cap = strlen(Xg) + strlen(mi) + 1024;
    body = malloc(cap);
    snprintf(body, cap, "{\"X\":%s}", Xg);
    char *ds = api_post_idh(port, "/v1/datasets", NULL, body, 201);
    static const char *const covs[] = {"full", "diag"};
    for (int c = 0; c < 2; c++) {
        char w[64] = "", cov[256] = "";
        for (int k = 0; k < M; k++)
            snprintf(w + strlen(w), sizeof w - strlen(w), "%s%.17g", k ? "," : "", 1.0 / M);
        for (int k = 0; k < M; k++) /* identity covariances, E = 2 */
            snprintf(cov + strlen(cov), sizeof cov - strlen(cov), "%s%s", k ? "," : "",
                     c == 0 ? "[[1,0],[0,1]]" : "[1,1]");
        snprintf(body, cap,
                 "{\"model\":\"gmm\",\"dataset\":\"%s\",\"hyperparameters\":{"
                 "\"components\":%d,\"covariance\":\"%s\",\"max_iter\":1,\"tol\":0,"
                 "\"reg_covar\":1e-6,\"weights_init\":[%s],\"means_init\":%s,"
                 "\"covariances_init\":[%s]}}",
                 ds, M, covs[c], w, mi, cov);
        job = api_post_idh(port, "/v1/jobs", NULL, body, 202);
        api_expect_state(port, job, "succeeded", 12);
        snprintf(path, sizeof path, "/v1/jobs/%s/evaluate", job);
        snprintf(body, cap, "{\"dataset\":\"%s\"}", ds);
        e = api_json(port, "POST", path, body, 200);
        const cJSON *r = api_item(gm, covs[c]);
        ck_assert_int_eq((int)tu_num(e, "n_parameters"), (int)tu_num(r, "n_parameters"));
        tu_close(tu_num(e, "score"), tu_num(r, "score"), 1e-4, 1e-6, "score");
        tu_close(tu_num(e, "bic"), tu_num(r, "bic"), 1e-4, 1e-6, "bic");
        tu_close(tu_num(e, "aic"), tu_num(r, "aic"), 1e-4, 1e-6, "aic");
        cJSON_Delete(e);
        free(job);
    }
    free(ds), free(Xg), free(mi), free(X), free(y), free(W), free(b), free(body);
    cJSON_Delete(ref);
    api_stop(&d);
}
END_TEST

/* ---- frictions --------------------------------------------------------------------- */

START_TEST(frictions)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    char body[1024], path[160];
    /* 20 rows of 2 classes */
    char data[600] = "{\"X\":[";
    for (int i = 0; i < 20; i++)
        snprintf(data + strlen(data), sizeof data - strlen(data), "%s[%d,%d]", i ? "," : "",
                 i % 2 ? i : -i, i % 3);
    snprintf(data + strlen(data), sizeof data - strlen(data), "],\"y\":[");
    for (int i = 0; i < 20; i++)
        snprintf(data + strlen(data), sizeof data - strlen(data), "%s%d", i ? "," : "", i % 2);
    snprintf(data + strlen(data), sizeof data - strlen(data), "],\"name\":\"twenty\"}");
    char *ds = api_post_idh(port, "/v1/datasets", NULL, data, 201);

    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"epochs\":5}", ds);
    expect_error(port, "POST", "/v1/jobs", NULL, body, 422, "epochs",
                 "hyperparameters go in \"hyperparameters\"");
    snprintf(body, sizeof body,
             "{\"model\":\"gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"epochs\":5}}",
             ds);
    expect_error(port, "POST", "/v1/jobs", NULL, body, 422, "hyperparameters.epochs",
                 "use \"max_iter\"");
    expect_error(port, "POST", "/v1/jobs", NULL, "{\"model\":\"softmax\",\"dataset\":\"twenty\"}",
                 422, "dataset", ds);
    /* the validation-set message reads once, not garbled */
    char *unl = api_post_idh(port, "/v1/datasets", NULL, "{\"X\":[[1,2],[3,4]]}", 201);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\",\"validation\":\"%s\"}",
             ds, unl);
    api_call c = api_reqh(port, "POST", "/v1/jobs", NULL, body);
    ck_assert_int_eq(c.status, 422);
    const char *msg = message_of(&c);
    ck_assert_msg(strncmp(msg, "validation set: ", 16) == 0 && !strstr(msg + 16, "validation set:"),
                  "%s", msg);
    ck_assert_msg(strlen(msg) > 30, "%s", msg);
    api_done(&c);

    /* validation_split's rows: evaluating the model on them gives the last val_loss */
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"epochs\":20,\"validation_split\":0.25,\"seed\":7}}",
             ds);
    char *job = api_post_idh(port, "/v1/jobs", NULL, body, 202);
    cJSON *j = api_wait_job(port, job, 12);
    double val_loss = tu_num(api_item(j, "metrics"), "val_loss");
    cJSON_Delete(j);
    snprintf(path, sizeof path, "/v1/jobs/%s/validation", job);
    cJSON *v = api_json(port, "GET", path, NULL, 200);
    const cJSON *rows = api_item(v, "rows");
    ck_assert_int_eq(cJSON_GetArraySize(rows), 5);
    ck_assert_int_eq((int)tu_num(v, "n_rows"), 5);
    cJSON *full = cJSON_Parse(data);
    cJSON *X = cJSON_CreateArray(), *y = cJSON_CreateArray();
    for (int i = 0; i < 5; i++) {
        int r = (int)num_at(rows, i);
        ck_assert(r >= 0 && r < 20);
        if (i) ck_assert_int_lt((int)num_at(rows, i - 1), r);
        cJSON_AddItemToArray(X, cJSON_Duplicate(cJSON_GetArrayItem(api_item(full, "X"), r), 1));
        cJSON_AddItemToArray(y, cJSON_CreateNumber(r % 2));
    }
    cJSON *eb = cJSON_CreateObject();
    cJSON_AddItemToObject(eb, "X", X);
    cJSON_AddItemToObject(eb, "y", y);
    char *ebt = cJSON_PrintUnformatted(eb);
    snprintf(path, sizeof path, "/v1/jobs/%s/evaluate", job);
    cJSON *e = api_json(port, "POST", path, ebt, 200);
    tu_close(tu_num(e, "loss"), val_loss, 1e-5, 1e-6, "loss on the held-out rows vs val_loss");
    cJSON_Delete(e);
    free(ebt);
    cJSON_Delete(eb);
    cJSON_Delete(full);
    cJSON_Delete(v);
    snprintf(path, sizeof path, "/v1/jobs/%s/validation", job);
    free(job);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\"}", ds);
    job = api_post_idh(port, "/v1/jobs", NULL, body, 202);
    snprintf(path, sizeof path, "/v1/jobs/%s/validation", job);
    expect_error(port, "GET", path, NULL, NULL, 409, NULL, "holds no rows out");
    free(job);
    free(unl);
    free(ds);

    /* the port taken: the message points at --listen */
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *const args[] = {"--listen", listen, NULL};
    httpc_daemon d2;
    ck_assert_int_lt(httpc_daemon_start(&d2, NULL, args, NULL), 0);
    char *log = httpc_daemon_log(&d2);
    ck_assert_msg(strstr(log, "--listen PORT"), "%s", log);
    free(log);
    httpc_daemon_stop(&d2, 0, 5);
    httpc_daemon_cleanup(&d2);
    api_stop(&d);
}
END_TEST

START_TEST(listen_port_alone)
{
    td_config c;
    td_error err;
    td_config_defaults(&c);
    ck_assert_int_eq(td_config_set(&c, "listen", "8081", &err), TD_OK);
    ck_assert_str_eq(c.listen, "127.0.0.1:8081");
    ck_assert_int_eq(td_config_set(&c, "listen", ":9090", &err), TD_OK);
    ck_assert_str_eq(c.listen, "127.0.0.1:9090");
    ck_assert_int_eq(td_config_set(&c, "listen", "[::1]:7000", &err), TD_OK);
    ck_assert_str_eq(c.listen, "[::1]:7000");
    ck_assert_int_eq(td_config_set(&c, "listen", "70000", &err), TD_EINVAL);
    ck_assert_int_eq(td_config_set(&c, "listen", "-5", &err), TD_EINVAL);
    ck_assert_str_eq(c.listen, "[::1]:7000");
}
END_TEST

Suite *suite_first_use(void)
{
    Suite *s = suite_create("first_use");
    TCase *t = tcase_create("first_use");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, iris_csv_with_names);
    tcase_add_test(t, json_names_and_delimiters);
    tcase_add_test(t, evaluate_matches_sklearn);
    tcase_add_test(t, frictions);
    tcase_add_test(t, listen_port_alone);
    suite_add_tcase(s, t);
    return s;
}
