/* test_standardize.c — the `standardize` hyperparameter and the warnings of a run:
 *   engine   td_standardize_fit against hand-computed population statistics (a constant
 *            feature keeps scale 1), predictions of a standardized model equal the plain
 *            model's on standardized rows, the memory estimate counts the copy, every
 *            warning rule of td_train_warnings on small data
 *   daemon   unscaled wine (tests/data/wine.json, from scikit-learn's load_wine by
 *            tests/data/gen_wine.py) with the default softmax blows up and says so in
 *            `warnings`; with standardize: true it trains to a good accuracy, the model
 *            carries mean and scale, predict applies them; an mlp with lr 1000 warns
 *            (loss_above_chance with adam, loss_increased with sgd, which diverges)
 *   output   numbers shortest and booleans true / false through the daemon. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "httpc.h"
#include "testutil.h"
#include "traind/train.h"

#define JSON_HDR "Content-Type: application/json"

/* ---- engine ------------------------------------------------------------------------- */

START_TEST(fit_is_population_std)
{
    /* feature 0: 1, 2, 3, 6 (mean 3, var (4+1+0+9)/4 = 3.5); feature 1 constant */
    float X[] = {1, 5, 2, 5, 3, 5, 6, 5};
    float mean[2], scale[2];
    ck_assert_int_eq(td_standardize_fit(mean, scale, X, 4, 2, NULL), TD_OK);
    ck_assert_float_eq(mean[0], 3.0f);
    ck_assert_float_eq(scale[0], (float)sqrt(3.5));
    ck_assert_float_eq(mean[1], 5.0f);
    ck_assert_float_eq(scale[1], 1.0f); /* constant: only centred */
    float out[8];
    td_standardize_apply(out, X, 4, 2, mean, scale);
    ck_assert_float_eq(out[0], (1.0f - 3.0f) / (float)sqrt(3.5));
    ck_assert_float_eq(out[1], 0.0f);
}
END_TEST

/* A standardized trainer's model predicts on raw rows what the plain model (its params,
 * no mean) predicts on standardized rows; its snapshot restores; the estimate grows by at
 * least the copy. */
START_TEST(model_applies_its_standardization)
{
    enum { N = 40, D = 3 };
    float X[N * D];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        X[i * D] = (float)(i % 7) * 100 + (float)y[i] * 300;
        X[i * D + 1] = (float)(i % 5) * 0.01f - (float)y[i] * 0.02f;
        X[i * D + 2] = 4;
    }
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.standardize = 1;
    hp.epochs = 5;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    for (int e = 0; e < 5; e++)
        tu_step_ok(t, &rec);
    const td_model *m = td_trainer_model(t);
    ck_assert_ptr_nonnull(m->mean);
    ck_assert_float_eq(m->scale[2], 1.0f);
    float probs[N * 2], plain_probs[N * 2], Xs[N * D];
    int32_t labels[N], plain_labels[N];
    td_error err;
    ck_assert_int_eq(td_model_predict(probs, labels, m, X, N, D, &err), TD_OK);
    td_model plain = *m;
    plain.mean = plain.scale = NULL;
    td_standardize_apply(Xs, X, N, D, m->mean, m->scale);
    ck_assert_int_eq(td_model_predict(plain_probs, plain_labels, &plain, Xs, N, D, &err), TD_OK);
    ck_assert_mem_eq(probs, plain_probs, sizeof probs);
    ck_assert_mem_eq(labels, plain_labels, sizeof labels);

    /* a model file (td_model_encode / decode) keeps them: the same predictions */
    size_t fsz = td_model_file_size(m);
    void *file = malloc(fsz);
    ck_assert_uint_eq(td_model_encode(m, file, fsz), fsz);
    td_model back;
    ck_assert_int_eq(td_model_decode(&back, file, fsz, &err), TD_OK);
    ck_assert_ptr_nonnull(back.mean);
    ck_assert_mem_eq(back.mean, m->mean, sizeof(float) * 2 * D);
    ck_assert_int_eq(td_model_predict(plain_probs, plain_labels, &back, X, N, D, &err), TD_OK);
    ck_assert_mem_eq(probs, plain_probs, sizeof probs);
    td_model_fini(&back);
    ck_assert_int_eq(td_model_decode(&back, file, fsz - 4, &err), TD_EINVAL);
    free(file);

    /* the snapshot carries mean and scale; a trainer on other data refuses it */
    size_t cap = td_trainer_state_size(t);
    void *snap = malloc(cap);
    size_t len = td_trainer_save(t, snap, cap);
    ck_assert_uint_gt(len, 0);
    td_trainer *t2 = tu_make_trainer(&hp, &ds);
    ck_assert_int_eq(td_trainer_restore(t2, snap, len, &err), TD_OK);
    td_trainer_destroy(t2);
    X[0] += 1000;
    t2 = tu_make_trainer(&hp, &ds);
    ck_assert_int_eq(td_trainer_restore(t2, snap, len, &err), TD_EINVAL);
    ck_assert_msg(strstr(err.message, "standardization") != NULL, "%s", err.message);
    td_trainer_destroy(t2);
    free(snap);
    td_trainer_destroy(t);

    int64_t K;
    ck_assert_int_eq(td_trainer_check(&hp, &ds, NULL, &K, &err), TD_OK);
    size_t with = td_train_memory_estimate(&hp, &ds, NULL, K, 1);
    hp.standardize = 0;
    size_t without = td_train_memory_estimate(&hp, &ds, NULL, K, 1);
    ck_assert_uint_ge(with, without + sizeof(float) * N * D);

    /* intercept column0 would turn its ones column into zeros */
    hp.standardize = 1;
    hp.intercept = TD_INTERCEPT_COLUMN0;
    ck_assert_int_eq(td_trainer_check(&hp, &ds, NULL, &K, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "hyperparameters.standardize");
    td_hparams_fini(&hp);
}
END_TEST

static int has_warning(const td_warning *w, int n, const char *code)
{
    for (int i = 0; i < n; i++)
        if (strcmp(w[i].code, code) == 0)
            return 1;
    return 0;
}

START_TEST(warning_rules)
{
    float X[] = {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1};
    int32_t y[] = {2, 2, 2, 2, 2, 2};
    td_dataset ds = {.N = 6, .D = 2, .X = X, .y = y, .y_cols = 1};
    td_hparams hp;
    td_warning w[TD_MAX_WARNINGS];
    int n = 0;

    /* the loss: fell (none), ended above its first value, rose tenfold and came back */
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    td_loss_trace lt;
    td_loss_trace_init(&lt);
    td_loss_trace_add(&lt, 1.0);
    td_loss_trace_add(&lt, 0.5);
    td_loss_trace_add(&lt, NAN); /* skipped */
    ds.y = NULL;
    td_train_warnings(w, &n, &hp, &ds, NULL, &lt);
    ck_assert_int_eq(n, 0);
    td_loss_trace_add(&lt, 1.5);
    td_train_warnings(w, &n, &hp, &ds, NULL, &lt);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(w[0].code, "loss_increased");
    n = 0;
    td_loss_trace_add(&lt, 10.0);
    td_loss_trace_add(&lt, 0.9);
    td_train_warnings(w, &n, &hp, &ds, NULL, &lt);
    ck_assert_int_eq(n, 1);
    ck_assert_msg(strstr(w[0].message, "ten times") != NULL, "%s", w[0].message);

    /* a classifier's loss that fell but ended above log K (K = 3: 1.0986) */
    td_model net = {.kind = TD_MODEL_MLP, .K = 3, .G = 1};
    td_loss_trace_init(&lt);
    td_loss_trace_add(&lt, 5e7);
    td_loss_trace_add(&lt, 1.2);
    n = 0;
    td_train_warnings(w, &n, &hp, &ds, &net, &lt);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(w[0].code, "loss_above_chance");
    td_loss_trace_add(&lt, 1.05);
    n = 0;
    td_train_warnings(w, &n, &hp, &ds, &net, &lt);
    ck_assert_int_eq(n, 0);

    /* one class */
    n = 0;
    ds.y = y;
    td_train_warnings(w, &n, &hp, &ds, NULL, NULL);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(w[0].code, "single_class");
    ck_assert_msg(strstr(w[0].message, "class 2") != NULL, "%s", w[0].message);

    /* gmm: 3 components on 2 distinct rows; not converged in max_iter with tol > 0 */
    td_hparams_fini(&hp);
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = 3;
    hp.max_iter = 4;
    hp.tol = 1e-3;
    td_model m = {.kind = TD_MODEL_GMM, .converged = 0, .n_iter = 4};
    n = 0;
    td_train_warnings(w, &n, &hp, &ds, &m, NULL);
    ck_assert_int_eq(n, 2);
    ck_assert(has_warning(w, n, "not_converged"));
    ck_assert(has_warning(w, n, "components_exceed_distinct_rows"));
    hp.tol = 0; /* tol 0 asks for exactly max_iter iterations */
    hp.gmm.components = 2;
    n = 0;
    td_train_warnings(w, &n, &hp, &ds, &m, NULL);
    ck_assert_int_eq(n, 0);

    /* scales: std 0.5 against 5000 (ratio 1e4) warns, not with standardize; a constant
     * feature is left out of the ratio */
    float Xs[] = {0, 0, 7, 1, 10000, 7, 0, 0, 7, 1, 10000, 7};
    td_dataset wide = {.N = 4, .D = 3, .X = Xs};
    n = 0;
    td_train_warnings(w, &n, &hp, &wide, NULL, NULL);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(w[0].code, "features_unscaled");
    n = 0;
    hp.standardize = 1;
    td_train_warnings(w, &n, &hp, &wide, NULL, NULL);
    ck_assert_int_eq(n, 0);
    td_hparams_fini(&hp);
}
END_TEST

/* ---- daemon ------------------------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s is missing (tests/data/gen_wine.py makes it)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static cJSON *call_json(int port, const char *method, const char *path, const char *body,
                        int want)
{
    httpc_resp r;
    int status = httpc_request(port, method, path, body ? JSON_HDR : NULL, body,
                               body ? strlen(body) : 0, &r);
    ck_assert_msg(status == want, "%s %s: %d %s", method, path, status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_msg(j != NULL, "%s %s: not JSON: %s", method, path, r.body);
    httpc_free(&r);
    return j;
}

/* POSTs a job, waits for it to end, returns the job object. */
static cJSON *run_job(int port, const char *body)
{
    cJSON *j = call_json(port, "POST", "/v1/jobs", body, 202);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", cJSON_GetObjectItem(j, "id")->valuestring);
    cJSON_Delete(j);
    double t0 = httpc_now();
    for (;;) {
        j = call_json(port, "GET", path, NULL, 200);
        const char *st = cJSON_GetObjectItem(j, "state")->valuestring;
        if (strcmp(st, "queued") && strcmp(st, "running"))
            return j;
        ck_assert_msg(httpc_now() - t0 < 60, "%s did not end", path);
        cJSON_Delete(j);
        usleep(20000);
    }
}

static int job_warns(const cJSON *job, const char *code)
{
    const cJSON *w = cJSON_GetObjectItem(job, "warnings");
    ck_assert_msg(cJSON_IsArray(w), "no warnings array");
    const cJSON *c;
    cJSON_ArrayForEach(c, w) {
        ck_assert(cJSON_IsString(cJSON_GetObjectItem(c, "message")));
        if (strcmp(cJSON_GetObjectItem(c, "code")->valuestring, code) == 0)
            return 1;
    }
    return 0;
}

/* Accuracy of the job's predictions on wine's own rows. */
static double wine_accuracy(int port, const char *job_id, const cJSON *wine)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddItemToObject(req, "X", cJSON_Duplicate(cJSON_GetObjectItem(wine, "X"), 1));
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job_id);
    cJSON *p = call_json(port, "POST", path, body, 200);
    free(body);
    const cJSON *labels = cJSON_GetObjectItem(p, "labels"), *y = cJSON_GetObjectItem(wine, "y");
    int right = 0, n = cJSON_GetArraySize(y);
    ck_assert_int_eq(cJSON_GetArraySize(labels), n);
    for (int i = 0; i < n; i++)
        right += cJSON_GetArrayItem(labels, i)->valueint == cJSON_GetArrayItem(y, i)->valueint;
    cJSON_Delete(p);
    return (double)right / n;
}

START_TEST(wine_blows_up_unscaled_and_trains_standardized)
{
    httpc_daemon d;
    int port = httpc_daemon_start(&d, NULL, NULL, NULL);
    ck_assert_int_gt(port, 0);
    char *text = slurp("tests/data/wine.json");
    cJSON *wine = cJSON_Parse(text);
    cJSON *ds = call_json(port, "POST", "/v1/datasets", text, 201);
    char body[512];
    const char *ds_id = cJSON_GetObjectItem(ds, "id")->valuestring;

    /* the defaults (sgd, lr 0.1, full batch, 100 epochs) on raw features */
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\"}", ds_id);
    cJSON *job = run_job(port, body);
    ck_assert_str_eq(cJSON_GetObjectItem(job, "state")->valuestring, "succeeded");
    ck_assert_msg(job_warns(job, "loss_increased"), "%s", cJSON_PrintUnformatted(job));
    ck_assert(job_warns(job, "features_unscaled"));
    double raw_acc = wine_accuracy(port, cJSON_GetObjectItem(job, "id")->valuestring, wine);
    cJSON_Delete(job);

    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"standardize\":true}}", ds_id);
    job = run_job(port, body);
    ck_assert_str_eq(cJSON_GetObjectItem(job, "state")->valuestring, "succeeded");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(job, "warnings")), 0);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "hyperparameters"),
                                               "standardize")));
    const char *id = cJSON_GetObjectItem(job, "id")->valuestring;
    double acc = wine_accuracy(port, id, wine);
    ck_assert_msg(acc >= 0.97 && acc > raw_acc, "standardized %.3f, raw %.3f", acc, raw_acc);

    /* the model carries wine's means (proline, feature 12: 746.893...) and stds */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/model", id);
    cJSON *m = call_json(port, "GET", path, NULL, 200);
    const cJSON *st = cJSON_GetObjectItem(m, "standardize");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(st, "mean")), 13);
    tu_close(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "mean"), 12)->valuedouble,
             746.8932584269663, 1e-6, 0, "mean[12]");
    tu_close(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "scale"), 12)->valuedouble,
             314.0216568, 1e-6, 0, "scale[12]"); /* numpy X.std(0), ddof 0 */
    cJSON_Delete(m);
    cJSON_Delete(job);

    /* an mlp with lr 1000 (adam): its first epoch already blows the loss up, so it falls
     * from there, but ends far above log 3 */
    snprintf(body, sizeof body, "{\"model\":\"mlp\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"lr\":1000,\"epochs\":10,\"standardize\":true}}", ds_id);
    job = run_job(port, body);
    ck_assert_msg(job_warns(job, "loss_above_chance"), "%s", cJSON_PrintUnformatted(job));
    cJSON_Delete(job);
    /* with sgd it diverges: failed, and the loss rose */
    snprintf(body, sizeof body, "{\"model\":\"mlp\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"lr\":1000,\"optimizer\":\"sgd\",\"epochs\":20,\"standardize\":true}}", ds_id);
    job = run_job(port, body);
    ck_assert_msg(job_warns(job, "loss_increased"), "%s", cJSON_PrintUnformatted(job));
    cJSON_Delete(job);

    cJSON_Delete(ds);
    cJSON_Delete(wine);
    free(text);
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);
}
END_TEST

/* Output: numbers shortest (a float32 0.1 stored and returned as 0.1), booleans true /
 * false (gmm's converged column in JSON, CSV and the job's metrics). */
START_TEST(outputs_are_shortest_and_boolean)
{
    httpc_daemon d;
    int port = httpc_daemon_start(&d, NULL, NULL, NULL);
    ck_assert_int_gt(port, 0);
    cJSON *ds = call_json(port, "POST", "/v1/datasets",
                          "{\"X\":[[0.1,0.2],[0.3,1e-7],[5.1,5.2],[5.3,5.25]]}", 201);
    const char *ds_id = cJSON_GetObjectItem(ds, "id")->valuestring;
    char path[160], body[256];
    snprintf(path, sizeof path, "/v1/datasets/%s/data?format=json", ds_id);
    httpc_resp r;
    ck_assert_int_eq(httpc_request(port, "GET", path, NULL, NULL, 0, &r), 200);
    ck_assert_msg(strstr(r.body, "[[0.1,0.2],[0.3,1e-07],[5.1,5.2],[5.3,5.25]]") != NULL,
                  "%s", r.body);
    httpc_free(&r);

    snprintf(body, sizeof body, "{\"model\":\"gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"components\":2,\"covariance\":\"spherical\",\"max_iter\":50}}", ds_id);
    cJSON *job = run_job(port, body);
    ck_assert_str_eq(cJSON_GetObjectItem(job, "state")->valuestring, "succeeded");
    const char *id = cJSON_GetObjectItem(job, "id")->valuestring;
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "metrics"),
                                               "converged")));
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", id);
    cJSON *h = call_json(port, "GET", path, NULL, 200);
    const cJSON *conv = cJSON_GetObjectItem(h, "converged"), *c;
    int n = 0;
    cJSON_ArrayForEach(c, conv) {
        ck_assert(cJSON_IsBool(c));
        n++;
    }
    ck_assert_int_gt(n, 1);
    ck_assert(cJSON_IsTrue(cJSON_GetArrayItem(conv, n - 1)));
    ck_assert(cJSON_IsFalse(cJSON_GetArrayItem(conv, 0)));
    cJSON_Delete(h);
    snprintf(path, sizeof path, "/v1/jobs/%s/losses?format=csv", id);
    ck_assert_int_eq(httpc_request(port, "GET", path, NULL, NULL, 0, &r), 200);
    ck_assert_msg(strstr(r.body, ",true,") && strstr(r.body, ",false,"), "%s", r.body);
    httpc_free(&r);
    cJSON_Delete(job);
    cJSON_Delete(ds);
    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);
}
END_TEST

Suite *suite_standardize(void)
{
    Suite *s = suite_create("standardize");
    TCase *tc = tcase_create("engine");
    tcase_add_test(tc, fit_is_population_std);
    tcase_add_test(tc, model_applies_its_standardization);
    tcase_add_test(tc, warning_rules);
    suite_add_tcase(s, tc);
    tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, wine_blows_up_unscaled_and_trains_standardized);
    tcase_add_test(tc, outputs_are_shortest_and_boolean);
    suite_add_tcase(s, tc);
    return s;
}
