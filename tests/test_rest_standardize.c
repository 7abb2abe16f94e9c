/* test_rest_standardize.c — the `standardize` hyperparameter and the warnings of a run
 * through a live daemon (the engine side is test_standardize.c):
 *   wine     unscaled wine (tests/data/wine.json, from scikit-learn's load_wine by
 *            tests/data/gen_wine.py) with the default softmax blows up and says so in
 *            `warnings`; with standardize: true it trains to a good accuracy, the model
 *            carries mean and scale, predict applies them; an mlp with lr 1000 warns
 *            (loss_above_chance with adam, loss_increased with sgd, which diverges)
 *   output   numbers shortest and booleans true / false through the daemon. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "api.h"
#include "testutil.h"

/* POSTs a job, waits for it to end, returns the job object. */
static cJSON *run_job(int port, const char *body)
{
    char *id = api_post_id(port, "/v1/jobs", body, 202);
    cJSON *j = api_wait_job(port, id, 60);
    free(id);
    return j;
}

static int job_warns(const cJSON *job, const char *code)
{
    const cJSON *w = cJSON_GetObjectItem(job, "warnings");
    ck_assert_msg(cJSON_IsArray(w), "no warnings array");
    const cJSON *c;
    cJSON_ArrayForEach(c, w)
    {
        ck_assert(cJSON_IsString(cJSON_GetObjectItem(c, "message")));
        if (strcmp(cJSON_GetObjectItem(c, "code")->valuestring, code) == 0) return 1;
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
    cJSON *p = api_json(port, "POST", path, body, 200);
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
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    char *text = tu_read_file("tests/data/wine.json", NULL);
    cJSON *wine = cJSON_Parse(text);
    cJSON *ds = api_json(port, "POST", "/v1/datasets", text, 201);
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

    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"standardize\":true}}",
             ds_id);
    job = run_job(port, body);
    ck_assert_str_eq(cJSON_GetObjectItem(job, "state")->valuestring, "succeeded");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(job, "warnings")), 0);
    ck_assert(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetObjectItem(job, "hyperparameters"), "standardize")));
    const char *id = cJSON_GetObjectItem(job, "id")->valuestring;
    double acc = wine_accuracy(port, id, wine);
    ck_assert_msg(acc >= 0.97 && acc > raw_acc, "standardized %.3f, raw %.3f", acc, raw_acc);

    /* the model carries wine's means (proline, feature 12: 746.893...) and stds */
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/model", id);
    cJSON *m = api_json(port, "GET", path, NULL, 200);
    const cJSON *st = cJSON_GetObjectItem(m, "standardize");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(st, "mean")), 13);
    tu_close(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "mean"), 12)->valuedouble,
             746.8932584269663, 1e-6, 0, "mean[12]");
    tu_close(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "scale"), 12)->valuedouble, 314.0216568,
             1e-6, 0, "scale[12]"); /* numpy X.std(0), ddof 0 */
    cJSON_Delete(m);
    cJSON_Delete(job);

    /* an mlp with lr 1000 (adam): its first epoch already blows the loss up, so it falls
     * from there, but ends far above log 3 */
    snprintf(body, sizeof body,
             "{\"model\":\"mlp\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"lr\":1000,\"epochs\":10,\"standardize\":true}}",
             ds_id);
    job = run_job(port, body);
    ck_assert_msg(job_warns(job, "loss_above_chance"), "%s", cJSON_PrintUnformatted(job));
    cJSON_Delete(job);
    /* with sgd it diverges: failed, and the loss rose */
    snprintf(body, sizeof body,
             "{\"model\":\"mlp\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"lr\":1000,\"optimizer\":\"sgd\",\"epochs\":20,\"standardize\":true}}",
             ds_id);
    job = run_job(port, body);
    ck_assert_msg(job_warns(job, "loss_increased"), "%s", cJSON_PrintUnformatted(job));
    cJSON_Delete(job);

    cJSON_Delete(ds);
    cJSON_Delete(wine);
    free(text);
    api_stop(&d);
}
END_TEST

/* Output: numbers shortest (a float32 0.1 stored and returned as 0.1), booleans true /
 * false (gmm's converged column in JSON, CSV and the job's metrics). */
START_TEST(outputs_are_shortest_and_boolean)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    cJSON *ds = api_json(port, "POST", "/v1/datasets",
                         "{\"X\":[[0.1,0.2],[0.3,1e-7],[5.1,5.2],[5.3,5.25]]}", 201);
    const char *ds_id = cJSON_GetObjectItem(ds, "id")->valuestring;
    char path[160], body[256];
    snprintf(path, sizeof path, "/v1/datasets/%s/data?format=json", ds_id);
    char *raw = api_get_raw(port, "%s", path);
    ck_assert_msg(strstr(raw, "[[0.1,0.2],[0.3,1e-07],[5.1,5.2],[5.3,5.25]]") != NULL, "%s", raw);
    free(raw);

    snprintf(body, sizeof body,
             "{\"model\":\"gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"components\":2,\"covariance\":\"spherical\",\"max_iter\":50}}",
             ds_id);
    cJSON *job = run_job(port, body);
    ck_assert_str_eq(cJSON_GetObjectItem(job, "state")->valuestring, "succeeded");
    const char *id = cJSON_GetObjectItem(job, "id")->valuestring;
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(job, "metrics"), "converged")));
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", id);
    cJSON *h = api_json(port, "GET", path, NULL, 200);
    const cJSON *conv = cJSON_GetObjectItem(h, "converged"), *c;
    int n = 0;
    cJSON_ArrayForEach(c, conv)
    {
        ck_assert(cJSON_IsBool(c));
        n++;
    }
    ck_assert_int_gt(n, 1);
    ck_assert(cJSON_IsTrue(cJSON_GetArrayItem(conv, n - 1)));
    ck_assert(cJSON_IsFalse(cJSON_GetArrayItem(conv, 0)));
    cJSON_Delete(h);
    snprintf(path, sizeof path, "/v1/jobs/%s/losses?format=csv", id);
    raw = api_get_raw(port, "%s", path);
    ck_assert_msg(strstr(raw, ",true,") && strstr(raw, ",false,"), "%s", raw);
    free(raw);
    cJSON_Delete(job);
    cJSON_Delete(ds);
    api_stop(&d);
}
END_TEST

Suite *suite_rest_standardize(void)
{
    Suite *s = suite_create("rest_standardize");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, wine_blows_up_unscaled_and_trains_standardized);
    tcase_add_test(tc, outputs_are_shortest_and_boolean);
    suite_add_tcase(s, tc);
    return s;
}
