/* test_json_loss.c — /v1/loss bodies (codec/json_loss.c) evaluated on the PyTorch
 * reference vectors, and the field and rule each bad body is refused with. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_loss.h"
#include "codec/json_util.h"

/* ---- /v1/loss ---------------------------------------------------------------------- */

static cJSON *ref_item(const cJSON *obj, const char *key)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    ck_assert_msg(v != NULL, "reference has no \"%s\"", key);
    return v;
}

static void add_copy(cJSON *req, const char *key, const cJSON *v)
{
    cJSON_AddItemToObject(req, key, cJSON_Duplicate(v, 1));
}

/* Runs req through td_json_loss_eval and returns the parsed result. */
static cJSON *eval_ok(cJSON *req)
{
    char *body = cJSON_PrintUnformatted(req);
    char *out = NULL;
    td_error err;
    td_status st = td_json_loss_eval(body, strlen(body), &out, &err);
    ck_assert_msg(st == TD_OK, "loss eval failed: %s: %s", err.field, err.message);
    cJSON *res = tu_parse(out);
    free(out);
    free(body);
    return res;
}

static void compare_array(const cJSON *got, const cJSON *want, const char *what)
{
    int64_t ng, nw;
    float *g = tu_floats(got, &ng, NULL, NULL);
    double *w = tu_doubles(want, &nw, NULL, NULL);
    ck_assert_int_eq(ng, nw);
    tu_close_array(g, w, nw, 1e-5, 1e-7, what);
    free(g);
    free(w);
}

START_TEST(loss_cross_entropy_reference)
{
    cJSON *ref = tu_ref_load("cross_entropy_index.json");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, ref_item(ref, "cases"))
    {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "loss", "cross_entropy");
        add_copy(req, "logits", ref_item(ref, "logits"));
        add_copy(req, "target", ref_item(ref, "target"));
        add_copy(req, "ignore_index", ref_item(ref, "ignore_index"));
        add_copy(req, "class_weights", ref_item(c, "class_weights"));
        add_copy(req, "label_smoothing", ref_item(c, "label_smoothing"));
        add_copy(req, "reduction", ref_item(c, "reduction"));
        cJSON *res = eval_ok(req);
        tu_close(tu_num(res, "loss"), tu_num(c, "loss"), 1e-5, 0, "loss");
        compare_array(ref_item(res, "grad"), ref_item(c, "grad"), "grad");
        ck_assert_int_eq(cJSON_GetArraySize(ref_item(res, "per_sample")), 7);
        /* per_sample sums to the summed loss */
        if (strcmp(ref_item(c, "reduction")->valuestring, "sum") == 0) {
            double s = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, ref_item(res, "per_sample")) s += v->valuedouble;
            tu_close(s, tu_num(c, "loss"), 1e-5, 0, "sum of per_sample");
        }
        cJSON_Delete(res);
        cJSON_Delete(req);
        n++;
    }
    ck_assert_int_eq(n, 8);
    cJSON_Delete(ref);

    /* probability targets */
    ref = tu_ref_load("cross_entropy_probs.json");
    cJSON_ArrayForEach(c, ref_item(ref, "cases"))
    {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "loss", "cross_entropy");
        add_copy(req, "logits", ref_item(ref, "logits"));
        add_copy(req, "target", ref_item(ref, "target"));
        add_copy(req, "class_weights", ref_item(c, "class_weights"));
        add_copy(req, "reduction", ref_item(c, "reduction"));
        cJSON *res = eval_ok(req);
        tu_close(tu_num(res, "loss"), tu_num(c, "loss"), 1e-5, 0, "loss");
        compare_array(ref_item(res, "grad"), ref_item(c, "grad"), "grad");
        cJSON_Delete(res);
        cJSON_Delete(req);
    }
    cJSON_Delete(ref);
}
END_TEST

START_TEST(loss_other_references)
{
    cJSON *ref = tu_ref_load("contrastive.json");
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "loss", "contrastive");
    add_copy(req, "a", ref_item(ref, "a"));
    add_copy(req, "b", ref_item(ref, "b"));
    add_copy(req, "similar", ref_item(ref, "similar"));
    add_copy(req, "margin", ref_item(ref, "margin"));
    cJSON *res = eval_ok(req);
    tu_close(tu_num(res, "loss"), tu_num(ref, "loss"), 1e-5, 0, "loss");
    compare_array(ref_item(res, "grad_a"), ref_item(ref, "grad_a"), "grad_a");
    compare_array(ref_item(res, "grad_b"), ref_item(ref, "grad_b"), "grad_b");
    ck_assert_int_eq(cJSON_GetArraySize(ref_item(res, "per_sample")), 6);
    cJSON_Delete(res);
    cJSON_Delete(req);
    cJSON_Delete(ref);

    ref = tu_ref_load("categorical_crossentropy_probs.json");
    req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "loss", "categorical_crossentropy");
    add_copy(req, "probabilities", ref_item(ref, "probabilities"));
    add_copy(req, "target", ref_item(ref, "target"));
    add_copy(req, "epsilon", ref_item(ref, "epsilon"));
    res = eval_ok(req);
    tu_close(tu_num(res, "loss"), tu_num(ref, "mean"), 1e-5, 0, "loss");
    compare_array(ref_item(res, "per_sample"), ref_item(ref, "per_sample"), "per_sample");
    cJSON_Delete(res);
    cJSON_Delete(req);
    cJSON_Delete(ref);

    ref = tu_ref_load("grouped_softmax_monotone.json");
    req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "loss", "grouped_cross_entropy");
    add_copy(req, "logits", ref_item(ref, "logits"));
    add_copy(req, "target", ref_item(ref, "target"));
    add_copy(req, "groups", ref_item(ref, "groups"));
    add_copy(req, "ignore_index", ref_item(ref, "ignore_index"));
    cJSON *mono = cJSON_AddObjectToObject(req, "monotone");
    add_copy(mono, "weight", ref_item(ref, "weight"));
    add_copy(mono, "margin", ref_item(ref, "margin"));
    res = eval_ok(req);
    tu_close(tu_num(res, "loss"), tu_num(ref, "loss"), 1e-5, 0, "loss");
    tu_close(tu_num(res, "cross_entropy"), tu_num(ref, "cross_entropy"), 1e-5, 0, "ce");
    tu_close(tu_num(res, "penalty"), tu_num(ref, "penalty"), 1e-5, 0, "penalty");
    compare_array(ref_item(res, "expected_index"), ref_item(ref, "expected_index"),
                  "expected_index");
    compare_array(ref_item(res, "grad"), ref_item(ref, "grad"), "grad");
    ck_assert(cJSON_IsNumber(ref_item(res, "violation_rate")));
    cJSON_Delete(res);
    cJSON_Delete(req);
    cJSON_Delete(ref);
}
END_TEST

static void loss_expect(const char *body, const char *field, const char *msg)
{
    char *out = NULL;
    td_error err = {{0}, {0}};
    td_status st = td_json_loss_eval(body, strlen(body), &out, &err);
    ck_assert_msg(st == TD_EINVAL, "%s: status %d", body, st);
    ck_assert_ptr_null(out);
    ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", want \"%s\" (%s)", body,
                  err.field, field, err.message);
    ck_assert_msg(strstr(err.message, msg), "%s: message \"%s\" lacks \"%s\"", body, err.message,
                  msg);
}

START_TEST(loss_errors_and_edges)
{
    loss_expect("{\"loss\": \"cross_entropi\", \"logits\": [[1]], \"target\": [0]}", "loss",
                "unknown loss \"cross_entropi\"; did you mean \"cross_entropy\"?");
    loss_expect("{\"logits\": [[1]]}", "loss", "loss is required");
    loss_expect("{\"loss\": \"cross_entropy\", \"logits\": [[1, 2]], \"target\": [0], "
                "\"class_weight\": [1, 1]}",
                "class_weight", "did you mean \"class_weights\"?");
    loss_expect("{\"loss\": \"cross_entropy\", \"logits\": [[1, 2], [3, 4]], \"target\": [0, 2]}",
                "target[1]", "");
    loss_expect("{\"loss\": \"cross_entropy\", \"logits\": [[1, 2], [3, 4]], \"target\": [0, 0.5]}",
                "target[1]", "not an integer");
    loss_expect(
        "{\"loss\": \"cross_entropy\", \"logits\": [[1, 2], [3, \"4\"]], \"target\": [0, 1]}",
        "logits[1][1]", "must be a number");
    loss_expect("{\"loss\": \"cross_entropy\", \"logits\": [[1, 2]], \"target\": [0, 1]}", "target",
                "target has 2 entries, logits have 1 rows");
    loss_expect("{\"loss\": \"cross_entropy\", \"logits\": [[1, 2]], \"target\": [0], "
                "\"class_weights\": [1]}",
                "class_weights", "1 entries, logits have 2 classes");
    loss_expect("{\"loss\": \"cross_entropy\", \"logits\": [[1, 2]], \"target\": [0], "
                "\"reduction\": \"none\"}",
                "reduction", "\"mean\" or \"sum\"");
    loss_expect("{\"loss\": \"cross_entropy\", \"logits\": [[1, 2]], \"target\": [[0.5, 0.5], "
                "[1, 0]]}",
                "target", "target has shape (2, 2), expected (1, 2)");
    loss_expect("{\"loss\": \"grouped_cross_entropy\", \"logits\": [[1, 2, 3]], \"target\": "
                "[[0, 1]]}",
                "logits", "not a multiple of groups (2)");
    loss_expect("{\"loss\": \"grouped_cross_entropy\", \"logits\": [[1, 2, 3, 4]], \"target\": "
                "[[0, 1]], \"groups\": 4}",
                "groups", "groups is 4 but target has 2 columns");
    loss_expect("{\"loss\": \"grouped_cross_entropy\", \"logits\": [[1, 2, 3, 4]], \"target\": "
                "[[0, 1]], \"monotone\": {\"weigth\": 1}}",
                "monotone.weigth", "did you mean \"weight\"?");
    loss_expect("{\"loss\": \"contrastive\", \"a\": [[1, 2]], \"b\": [[1, 2]], \"similar\": [2]}",
                "similar[0]", "outside [0, 1]");
    loss_expect("{\"loss\": \"contrastive\", \"a\": [[1, 2]], \"b\": [[1]], \"similar\": [1]}", "b",
                "b has shape (1, 1), expected (1, 2)");
    loss_expect("{\"loss\": \"categorical_crossentropy\", \"probabilities\": [[0.5, -0.5]], "
                "\"target\": [[1, 0]]}",
                "probabilities[0][1]", "negative");

    /* every row ignored: loss null, zero gradient */
    const char *body = "{\"loss\": \"cross_entropy\", \"logits\": [[1, 2], [3, 4]], "
                       "\"target\": [-100, -100]}";
    char *out;
    td_error err;
    ck_assert_int_eq(td_json_loss_eval(body, strlen(body), &out, &err), TD_OK);
    ck_assert_str_eq(out, "{\"loss\":null,\"per_sample\":[0,0],\"grad\":[[0,0],[0,0]]}");
    free(out);

    /* similar as booleans; identical points have a finite gradient */
    body = "{\"loss\": \"contrastive\", \"a\": [[1, 2]], \"b\": [[1, 2]], \"similar\": [false]}";
    ck_assert_int_eq(td_json_loss_eval(body, strlen(body), &out, &err), TD_OK);
    ck_assert_str_eq(out,
                     "{\"loss\":0.5,\"per_sample\":[0.5],\"grad_a\":[[0,0]],"
                     "\"grad_b\":[[0,0]]}");
    free(out);

    /* malformed JSON stays a 400 */
    td_status st = td_json_loss_eval("{\"loss\":", 8, &out, &err);
    ck_assert(st == TD_EMALFORMED);
    ck_assert_ptr_null(out);
}
END_TEST

Suite *suite_json_loss(void)
{
    Suite *s = suite_create("json_loss");
    TCase *tc = tcase_create("loss");
    tcase_add_test(tc, loss_cross_entropy_reference);
    tcase_add_test(tc, loss_other_references);
    tcase_add_test(tc, loss_errors_and_edges);
    suite_add_tcase(s, tc);
    return s;
}
