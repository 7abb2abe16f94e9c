/* test_json.c — the JSON codec: dataset bodies (JSON and CSV) and the element each error
 * names, hyperparameters through the table, initial weights into the flat layout, model
 * objects and meta round trips, predictions, engine fields named as the request does
 * (/v1/loss bodies: test_json_loss.c). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_dataset.h"
#include "codec/json_hparams.h"
#include "codec/json_model.h"
#include "codec/json_util.h"
#include "http/http.h"
#include "codec/stream_dataset.h"

/* ---- helpers ----------------------------------------------------------------------- */

#define expect_error(st, err, want_field, want_text)                                           \
    do {                                                                                       \
        ck_assert_msg((st) != TD_OK, "expected an error naming %s", want_field);               \
        ck_assert_str_eq((err).field, want_field);                                             \
        ck_assert_msg(strstr((err).message, want_text) != NULL, "message \"%s\" lacks \"%s\"", \
                      (err).message, want_text);                                               \
    } while (0)

/* The dataset reader of the daemon: the streaming parser, the body in one piece. */
static td_status ds_parse(td_dataset_buf *d, const char *body, td_error *err)
{
    td_dstream *s = td_dstream_json(strlen(body));
    ck_assert_ptr_nonnull(s);
    td_dstream_feed(s, body, strlen(body));
    td_status st = td_dstream_finish(s, d, err);
    td_dstream_destroy(s);
    return st;
}

/* Parses body expecting an error naming field with text in the message. */
static void ds_expect(const char *body, const char *field, const char *text)
{
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    td_status st = ds_parse(&d, body, &err);
    ck_assert_msg(st == TD_EINVAL, "body %s: status %d, want TD_EINVAL", body, st);
    ck_assert_msg(strcmp(err.field, field) == 0, "body %s: field \"%s\", want \"%s\" (%s)", body,
                  err.field, field, err.message);
    ck_assert_msg(strstr(err.message, text), "body %s: message \"%s\" lacks \"%s\"", body,
                  err.message, text);
    ck_assert_ptr_null(d.X);
}

static td_status csv_parse(td_dataset_buf *d, const char *body, const char *label,
                           const char *header, td_error *err)
{
    td_csv_opts o;
    td_status st = td_csv_opts_parse(&o, label, header, err);
    if (st) return st;
    return td_csv_dataset_parse(d, body, strlen(body), &o, "csv", err);
}

static void csv_expect(const char *body, const char *label, const char *header, const char *field,
                       const char *text)
{
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    td_status st = csv_parse(&d, body, label, header, &err);
    ck_assert_msg(st == TD_EINVAL, "csv %s: status %d", body, st);
    ck_assert_msg(strcmp(err.field, field) == 0, "csv %s: field \"%s\", want \"%s\" (%s)", body,
                  err.field, field, err.message);
    ck_assert_msg(strstr(err.message, text), "csv %s: message \"%s\" lacks \"%s\"", body,
                  err.message, text);
}

static td_status hp_parse(td_hparams *hp, td_model_kind model, const char *text, cJSON **iw,
                          td_error *err)
{
    cJSON *o = tu_parse(text);
    td_status st = td_json_hparams(hp, model, o, iw, err);
    cJSON_Delete(o);
    return st;
}

static void hp_expect(td_model_kind model, const char *text, const char *field, const char *msg)
{
    td_hparams hp;
    td_error err = {{0}, {0}};
    td_status st = hp_parse(&hp, model, text, NULL, &err);
    ck_assert_msg(st == TD_EINVAL, "%s: status %d", text, st);
    ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", want \"%s\" (%s)", text,
                  err.field, field, err.message);
    ck_assert_msg(strstr(err.message, msg), "%s: message \"%s\" lacks \"%s\"", text, err.message,
                  msg);
    td_hparams_fini(&hp);
}

/* The status the server answers a failure with (td_resp_from_error). */
static int http_status(td_status st, const td_error *err)
{
    td_resp r = {0};
    td_resp_from_error(&r, st, err);
    int status = r.status;
    td_resp_free(&r);
    return status;
}

/* ---- json_util --------------------------------------------------------------------- */

START_TEST(parse_malformed_offsets)
{
    cJSON *o;
    td_error err;
    const char *body = "{\"X\": [[1, 2],, [3, 4]]}";
    td_status st = td_json_parse(&o, body, strlen(body), &err);
    ck_assert(st == TD_EMALFORMED);
    ck_assert_int_eq(http_status(st, &err), 400);
    ck_assert_str_eq(err.field, "");
    ck_assert_msg(strncmp(err.message, "malformed JSON at byte ", 23) == 0, "%s", err.message);
    ck_assert_ptr_null(o);

    st = td_json_parse(&o, "{} x", 4, &err);
    ck_assert(st == TD_EMALFORMED);
    ck_assert_msg(strstr(err.message, "at byte 3"), "%s", err.message);

    st = td_json_parse(&o, "  \n", 3, &err);
    ck_assert(st == TD_EMALFORMED);
    ck_assert_msg(strstr(err.message, "empty"), "%s", err.message);

    /* length is honoured: the first 7 bytes are a complete value */
    ck_assert_int_eq(td_json_parse(&o, "[1, 2] garbage", 6, &err), TD_OK);
    cJSON_Delete(o);

    /* an invalid value (not malformed JSON) maps to 422 */
    td_fail(&err, TD_EINVAL, "X[0][0]", "bad");
    ck_assert_int_eq(http_status(TD_EINVAL, &err), 422);

    /* deep nesting is refused by cJSON's limit, as malformed, without a crash */
    size_t n = 5000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    st = td_json_parse(&o, deep, 2 * n, &err);
    ck_assert(st == TD_EMALFORMED);
    free(deep);
}
END_TEST

/* Engine errors name engine fields; the converter names them as the request does. */
static void scoped(const char *engine, const char *data_field, const char *want)
{
    td_error err = {{0}, {0}};
    td_fail(&err, TD_EINVAL, engine[0] ? engine : NULL, "m");
    td_json_scope_error(&err, data_field);
    ck_assert_str_eq(err.field, want);
}

START_TEST(engine_fields_scoped)
{
    scoped("lr", "dataset", "hyperparameters.lr");
    scoped("covariances_init[1][0]", "dataset", "hyperparameters.covariances_init[1][0]");
    scoped("monotone.weight", "data", "hyperparameters.monotone.weight");
    scoped("X[3][0]", "dataset", "dataset.X[3][0]");
    scoped("X[3][0]", "data", "data.X[3][0]");
    scoped("y[7]", "data", "data.y[7]");
    scoped("pairs[0][1]", "dataset", "dataset.pairs[0][1]");
    scoped("pair_labels", "data", "data.pair_labels");
    scoped("dataset", "data", "data");
    scoped("dataset", "dataset", "dataset");
    /* left alone: fields a converter named already, and the request's own keys */
    scoped("hyperparameters.lr", "dataset", "hyperparameters.lr");
    scoped("data.X[0]", "data", "data.X[0]");
    scoped("model", "dataset", "model");
    scoped("validation", "dataset", "validation");
    scoped("", "dataset", "");
    /* a prefix of a hyperparameter's name is not that hyperparameter */
    scoped("l", "dataset", "l");
    scoped("validation_splits", "dataset", "validation_splits");
}
END_TEST

START_TEST(sbuf_numbers)
{
    td_sbuf b;
    td_sbuf_init(&b);
    float v[] = {0.1f, -2.0f, NAN, INFINITY, 3.4028235e38f, 1e-45f, 0.0f};
    td_sbuf_floats(&b, v, 7);
    td_sbuf_puts(&b, " ");
    td_sbuf_double(&b, 0.1);
    td_sbuf_puts(&b, " ");
    td_sbuf_double(&b, 1.5646826907157823);
    td_sbuf_puts(&b, " ");
    td_sbuf_string(&b, "a\"b\\c\n\x01");
    size_t len;
    char *s = td_sbuf_finish(&b, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(len, strlen(s));
    ck_assert_str_eq(s,
                     "[0.1,-2,null,null,3.4028235e+38,1e-45,0] 0.1 "
                     "1.5646826907157823 \"a\\\"b\\\\c\\n\\u0001\"");
    free(s);

    /* every float32 printed reads back bit-identically */
    td_sbuf_init(&b);
    uint32_t seed = 12345;
    float vals[2000];
    for (int i = 0; i < 2000; i++) {
        seed = seed * 1664525u + 1013904223u;
        uint32_t bits = seed;
        memcpy(&vals[i], &bits, 4);
        if (!isfinite(vals[i])) vals[i] = 1.0f / (float)(i + 1);
    }
    td_sbuf_floats(&b, vals, 2000);
    s = td_sbuf_finish(&b, NULL);
    cJSON *arr = tu_parse(s);
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++)
        ck_assert_msg((float)c->valuedouble == vals[i], "element %d: %s", i, s);
    ck_assert_int_eq(i, 2000);
    cJSON_Delete(arr);
    free(s);
}
END_TEST

/* Shortest round-trip text: the fewest digits that read back as the same float / double,
 * not a fixed %.9g / %.17g. */
START_TEST(numbers_shortest)
{
    char t[32];
    static const struct {
        float v;
        const char *want;
    } f[] = {
        {0.1f, "0.1"},           {1.0f / 3, "0.33333334"},
        {0.2f, "0.2"},           {1e-7f, "1e-07"},
        {123456.7f, "123456.7"}, {16777217.0f, "16777216"},
        {2.5e10f, "2.5e+10"},    {-0.0f, "0"},
        {0.30000001f, "0.3"},    {1.1754944e-38f, "1.1754944e-38"},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        t[td_fmt_float(t, f[i].v)] = '\0';
        ck_assert_str_eq(t, f[i].want);
    }
    static const struct {
        double v;
        const char *want;
    } d[] = {
        {1.0 / 3, "0.3333333333333333"},
        {0.1, "0.1"},
        {2.0 / 3, "0.6666666666666666"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e300, "1e+300"},
        {-1.5, "-1.5"},
        {7, "7"},
        {(double)0.1f, "0.10000000149011612"},
        {4.9406564584124654e-324, "5e-324"},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        td_fmt_double(t, d[i].v);
        ck_assert_str_eq(t, d[i].want);
    }
    /* random doubles read back exactly, and no shorter precision would */
    uint64_t seed = 99;
    for (int i = 0; i < 5000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        double v;
        memcpy(&v, &seed, 8);
        if (!isfinite(v)) continue;
        size_t n = td_fmt_double(t, v);
        ck_assert_msg(strtod(t, NULL) == v, "%s", t);
        char shorter[400];
        int digits = 0;
        for (const char *p = t + strspn(t, "-0."); *p && *p != 'e'; p++)
            digits += *p >= '0' && *p <= '9';
        snprintf(shorter, sizeof shorter, "%.*g", digits > 1 ? digits - 1 : 1, v);
        ck_assert_msg(digits <= 15 || strtod(shorter, NULL) != v, "%s (%zu) is not shortest", t, n);
    }
    /* cJSON trees print with the same numbers, booleans and escapes */
    cJSON *o = tu_parse("{\"a\": 0.3333333333333333, \"b\": [true, false, null, 1e-300],"
                        " \"c\": {\"d\": \"x\\\"y\"}, \"e\": []}");
    char *p = td_json_print(o);
    ck_assert_str_eq(p,
                     "{\"a\":0.3333333333333333,\"b\":[true,false,null,1e-300],"
                     "\"c\":{\"d\":\"x\\\"y\"},\"e\":[]}");
    free(p);
    cJSON_Delete(o);
    /* record columns: converged is a boolean */
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_value(&b, "converged", 1);
    td_sbuf_value(&b, "converged", 0);
    td_sbuf_value(&b, "loss", 1);
    p = td_sbuf_finish(&b, NULL);
    ck_assert_str_eq(p, "truefalse1");
    free(p);
}
END_TEST

START_TEST(check_keys_suggests)
{
    static const char *const keys[] = {"X", "y", "Y", NULL};
    cJSON *o = tu_parse("{\"X\": 1, \"x\": 2}");
    td_error err;
    expect_error(td_json_check_keys(o, "data", "the dataset", keys, &err), err, "data.x",
                 "unknown key \"x\" in the dataset; did you mean \"X\"?");
    cJSON_Delete(o);
    o = tu_parse("{\"X\": 1, \"X\": 2}");
    expect_error(td_json_check_keys(o, NULL, "the dataset", keys, &err), err, "X", "given twice");
    cJSON_Delete(o);
    o = tu_parse("{\"zzzzzz\": 1}");
    expect_error(td_json_check_keys(o, NULL, "the dataset", keys, &err), err, "zzzzzz",
                 "allowed: X, y, Y");
    cJSON_Delete(o);
}
END_TEST

/* ---- datasets ---------------------------------------------------------------------- */

/* A summary of ds as the store makes one at upload (id, name, created_at NULL): the counts,
 * the target kind, n_classes max label + 1 (per group) or Y's width. */
static void summary_of(td_dataset_summary *s, const td_dataset *ds)
{
    memset(s, 0, sizeof *s);
    s->n_samples = ds->N;
    s->n_features = ds->D;
    s->groups = 1;
    s->n_pairs = ds->pairs ? ds->P : 0;
    if (ds->Y) {
        s->target = TD_TARGET_PROBS;
        s->n_classes = ds->Y_cols;
    } else if (ds->y) {
        s->target = ds->y_cols > 1 ? TD_TARGET_GROUPED : TD_TARGET_INDEX;
        s->groups = ds->y_cols > 1 ? ds->y_cols : 1;
        int64_t mx = -1;
        for (int64_t i = 0; i < ds->N * ds->y_cols; i++)
            if (ds->y[i] > mx) mx = ds->y[i];
        s->n_classes = mx + 1;
    } else {
        s->target = TD_TARGET_NONE;
    }
}

START_TEST(dataset_round_trip)
{
    td_dataset_buf d;
    td_error err;
    ck_assert_int_eq(ds_parse(&d,
                              "{\"X\": [[1, 2.5], [-3, 4e-3], [5, 6]], \"y\": [0, 2.0, 1],"
                              " \"name\": \"toy\"}",
                              &err),
                     TD_OK);
    ck_assert_int_eq(d.ds.N, 3);
    ck_assert_int_eq(d.ds.D, 2);
    const float want[] = {1, 2.5f, -3, 4e-3f, 5, 6};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(d.X[i], want[i]);
    ck_assert_ptr_eq(d.ds.X, d.X);
    ck_assert_ptr_eq(d.ds.y, d.y);
    ck_assert_int_eq(d.ds.y_cols, 1);
    ck_assert_int_eq(d.y[1], 2);
    ck_assert_ptr_null(d.ds.Y);
    ck_assert_str_eq(d.name, "toy");

    td_dataset_summary s;
    summary_of(&s, &d.ds);
    s.id = "ds_1";
    s.name = d.name;
    s.created_at = "2026-01-01T00:00:00Z";
    cJSON *j = td_json_dataset_summary(&s);
    char *text = cJSON_PrintUnformatted(j);
    ck_assert_str_eq(text,
                     "{\"id\":\"ds_1\",\"name\":\"toy\",\"n_samples\":3,\"n_features\":2,"
                     "\"n_classes\":3,\"target\":\"index\",\"created_at\":"
                     "\"2026-01-01T00:00:00Z\"}");
    free(text);
    cJSON_Delete(j);
    td_dataset_buf_free(&d);

    /* grouped targets, pairs, an unlabelled set, probabilities */
    ck_assert_int_eq(ds_parse(&d,
                              "{\"X\": [[1], [2], [3]], \"y\": [[0, 1], [2, 0], [1, 1]],"
                              " \"pairs\": [[0, 1], [2, 0]], \"pair_labels\": [1, false]}",
                              &err),
                     TD_OK);
    ck_assert_int_eq(d.ds.y_cols, 2);
    ck_assert_int_eq(d.y[2], 2);
    ck_assert_int_eq(d.ds.P, 2);
    ck_assert_int_eq(d.pairs[2], 2);
    ck_assert_int_eq(d.pair_labels[0], 1);
    ck_assert_int_eq(d.pair_labels[1], 0);
    summary_of(&s, &d.ds);
    ck_assert_int_eq(s.target, TD_TARGET_GROUPED);
    ck_assert_int_eq(s.groups, 2);
    ck_assert_int_eq(s.n_classes, 3);
    ck_assert_int_eq(s.n_pairs, 2);
    td_dataset_buf_free(&d);

    ck_assert_int_eq(ds_parse(&d, "{\"X\": [[1, 2]]}", &err), TD_OK);
    ck_assert_ptr_null(d.ds.y);
    summary_of(&s, &d.ds);
    ck_assert_int_eq(s.target, TD_TARGET_NONE);
    j = td_json_dataset_summary(&s);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "n_classes")));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "target")->valuestring, "none");
    cJSON_Delete(j);
    td_dataset_buf_free(&d);

    ck_assert_int_eq(ds_parse(&d, "{\"X\": [[1], [2]], \"Y\": [[0.25, 0.75], [1, 0]]}", &err),
                     TD_OK);
    ck_assert_int_eq(d.ds.Y_cols, 2);
    ck_assert_float_eq(d.Y[1], 0.75f);
    summary_of(&s, &d.ds);
    ck_assert_int_eq(s.target, TD_TARGET_PROBS);
    ck_assert_int_eq(s.n_classes, 2);
    td_dataset_buf_free(&d);

    /* the largest float32 is accepted, tiny values flush as float32 does */
    ck_assert_int_eq(ds_parse(&d, "{\"X\": [[3.4028235e38, -3.4028234e38, 1e-50]]}", &err), TD_OK);
    ck_assert(isfinite(d.X[0]) && isfinite(d.X[1]));
    td_dataset_buf_free(&d);
}
END_TEST

START_TEST(dataset_errors_name_the_element)
{
    ds_expect("{\"X\": [[1, 2], [3, 4], [5, \"6\"]]}", "X[2][1]", "must be a number, got a string");
    ds_expect("{\"X\": [[1, 2], [3]]}", "X[1]", "X[1] has 1 value, expected 2");
    ds_expect("{\"X\": [[1, 2], [3, 4, 5]]}", "X[1]", "has 3 values, expected 2");
    ds_expect("{\"X\": [[1e39]]}", "X[0][0]", "outside the float32 range");
    ds_expect("{\"X\": [[1, -1e39]]}", "X[0][1]", "outside the float32 range");
    ds_expect("{\"X\": [[1, 2], [NaN, 1]]}", "X[1][0]", "X[1][0] is NaN");
    ds_expect("{\"X\": [[1, Infinity]]}", "X[0][1]", "is Infinity");
    ds_expect("{\"X\": [[1, 2], [3, -Infinity]]}", "X[1][1]", "is -Infinity");
    ds_expect("{\"X\": [[1, nan]]}", "X[0][1]", "is NaN");
    ds_expect("{\"X\": [[1e999]]}", "X[0][0]", "not finite");
    ds_expect("{\"X\": [[1, null]]}", "X[0][1]", "got null");
    ds_expect("{\"X\": [[true]]}", "X[0][0]", "got true");
    ds_expect("{\"X\": [[1], [[2]]]}", "X[1][0]", "got an array");
    ds_expect("{\"X\": [[1], 2]}", "X[1]", "must be an array of numbers");
    ds_expect("{\"X\": []}", "X", "must not be empty");
    ds_expect("{\"X\": [[]]}", "X", "X[0] is empty");
    ds_expect("{\"X\": 5}", "X", "array of rows");
    ds_expect("{\"y\": [1]}", "X", "X is required");
    ds_expect("{\"X\": [[1], [2], [3], [4]], \"y\": [0, 1, 2, 1.5]}", "y[3]",
              "y[3] = 1.5 is not an integer");
    ds_expect("{\"X\": [[1], [2], [3], [4]], \"y\": [0, 1, \"2\", 1]}", "y[2]", "got a string");
    ds_expect("{\"X\": [[1], [2]], \"y\": [0]}", "y", "y has 1 entries, but X has 2 rows");
    ds_expect("{\"X\": [[1], [2]], \"y\": [[0, 1], [1]]}", "y[1]", "has 1 value, expected 2");
    ds_expect("{\"X\": [[1], [2]], \"y\": [0, 1e10]}", "y[1]", "outside");
    ds_expect("{\"X\": [[1]], \"y\": [0], \"Y\": [[1]]}", "Y", "not both");
    ds_expect("{\"X\": [[1], [2]], \"Y\": [[0.5, 0.5], [0.5, -0.5]]}", "Y[1][1]", "negative");
    ds_expect("{\"X\": [[1], [2]], \"Y\": [[0.5, 0.5]]}", "Y", "Y has 1 rows");
    ds_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1], [1, 2]], \"pair_labels\": [1, 0]}",
              "pairs[1][1]", "outside [0, 1]");
    ds_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1, 1]], \"pair_labels\": [1]}", "pairs[0]",
              "[i, j]");
    ds_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1]], \"pair_labels\": [2]}", "pair_labels[0]",
              "outside [0, 1]");
    ds_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1]], \"pair_labels\": [1, 0]}", "pair_labels",
              "2 entries");
    ds_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1]]}", "pair_labels", "go together");
    ds_expect("{\"X\": [[1]], \"x\": [[1]]}", "x", "did you mean \"X\"?");
    ds_expect("{\"X\": [[1]], \"labels\": [1]}", "labels", "unknown key \"labels\"");
    ds_expect("{\"X\": [[1]], \"name\": 5}", "name", "must be a string");
    ds_expect("[1, 2]", "", "must be a JSON object");

    /* malformed JSON is a 400 with a byte offset, not a 422 */
    td_dataset_buf d;
    td_error err;
    td_status st = ds_parse(&d, "{\"X\": [[1, 2], [3, 4]", &err);
    ck_assert(st == TD_EMALFORMED);
    st = ds_parse(&d, "{\"X\": [[1, NaNa]]}", &err);
    ck_assert(st == TD_EMALFORMED);
    ck_assert_msg(strstr(err.message, "at byte 11"), "%s", err.message);

    /* a NaN inside a string is just a string */
    ck_assert_int_eq(ds_parse(&d, "{\"X\": [[1]], \"name\": \"NaN Infinity\"}", &err), TD_OK);
    ck_assert_str_eq(d.name, "NaN Infinity");
    td_dataset_buf_free(&d);
}
END_TEST

START_TEST(dataset_csv)
{
    td_dataset_buf d;
    td_error err;
    /* CRLF, quoted fields with a doubled quote inside a header, no trailing newline */
    ck_assert_int_eq(csv_parse(&d, "\"f \"\"1\"\"\",f2,label\r\n1.5,\"-2\",0\r\n3, 4 ,\"2\"", NULL,
                               "true", &err),
                     TD_OK);
    ck_assert_int_eq(d.ds.N, 2);
    ck_assert_int_eq(d.ds.D, 2);
    ck_assert_float_eq(d.X[0], 1.5f);
    ck_assert_float_eq(d.X[1], -2.0f);
    ck_assert_float_eq(d.X[3], 4.0f);
    ck_assert_int_eq(d.y[0], 0);
    ck_assert_int_eq(d.y[1], 2);
    ck_assert_str_eq(d.name, "csv");
    td_dataset_buf_free(&d);

    /* label first, LF, trailing newline and blank lines, a BOM */
    ck_assert_int_eq(csv_parse(&d,
                               "\xEF\xBB\xBF"
                               "1,0.5,0.25\n\n2,1,2\n\n",
                               "first", NULL, &err),
                     TD_OK);
    ck_assert_int_eq(d.ds.N, 2);
    ck_assert_int_eq(d.ds.D, 2);
    ck_assert_int_eq(d.y[0], 1);
    ck_assert_int_eq(d.y[1], 2);
    ck_assert_float_eq(d.X[2], 1.0f);
    td_dataset_buf_free(&d);

    /* unlabelled */
    ck_assert_int_eq(csv_parse(&d, "1,2,3\n4,5,6\n", "none", "false", &err), TD_OK);
    ck_assert_int_eq(d.ds.D, 3);
    ck_assert_ptr_null(d.ds.y);
    ck_assert_float_eq(d.X[5], 6.0f);
    td_dataset_buf_free(&d);

    /* errors say line and column */
    csv_expect("1,2,0\n3,x,1\n", NULL, NULL, "line 2, column 2",
               "line 2, column 2: \"x\" is not a number");
    csv_expect("1,2,0\n3,4,1\n5,6,1.5\n", NULL, NULL, "line 3, column 3",
               "label 1.5 is not an integer");
    csv_expect("1,2,0\n3,4\n", NULL, NULL, "line 2", "line 2 has 2 columns, expected 3");
    csv_expect("1,2,0\r\n3,,1\r\n", NULL, NULL, "line 2, column 2", "empty field");
    csv_expect("1,\"2,0\n3,4,1\n", NULL, NULL, "line 1, column 2", "unterminated quoted field");
    csv_expect("1,2\"x,0\n", NULL, NULL, "line 1, column 2", "quote inside an unquoted field");
    csv_expect("1,\"2\"x,0\n", NULL, NULL, "line 1, column 2", "after a closing quote");
    csv_expect("a,b,c\n1,2,0\n", NULL, NULL, "line 1, column 1", "header=true");
    csv_expect("1,nan,0\n", NULL, NULL, "line 1, column 2", "not a finite number");
    csv_expect("1,1e39,0\n", NULL, NULL, "line 1, column 2", "float32");
    /* a quoted header spanning two lines moves the line count */
    csv_expect("\"a\nb\",c,label\n1,x,0\n", NULL, "true", "line 3, column 2",
               "\"x\" is not a number");
    csv_expect("1\n2\n", NULL, NULL, "label_column", "at least 2");
    csv_expect("a,b\n", NULL, "true", "", "no data rows");
    csv_expect("", NULL, NULL, "", "no data rows");
    csv_expect("1,2", "middle", NULL, "label_column", "last, first, none");
    csv_expect("1,2", NULL, "yes", "header", "true or false");
}
END_TEST

/* ---- hyperparameters --------------------------------------------------------------- */

START_TEST(hparams_defaults_and_values)
{
    td_hparams hp;
    td_error err;
    ck_assert_int_eq(td_json_hparams(&hp, TD_MODEL_SOFTMAX, NULL, NULL, &err), TD_OK);
    ck_assert_double_eq(hp.lr, 0.1);
    ck_assert_int_eq(hp.epochs, 100);
    ck_assert_int_eq(hp.optimizer, TD_OPT_SGD);
    td_hparams_fini(&hp);

    cJSON *iw = NULL;
    ck_assert_int_eq(hp_parse(&hp, TD_MODEL_SOFTMAX,
                              "{\"lr\": 0.5, \"epochs\": 3, \"optimizer\": \"adamw\","
                              " \"betas\": [0.8, 0.99], \"nesterov\": false, \"groups\": 2,"
                              " \"monotone\": {\"weight\": 0.3, \"margin\": 0.1},"
                              " \"class_weights\": [1, 2.5], \"intercept\": \"column0\","
                              " \"seed\": 7, \"momentum\": null,"
                              " \"initial_weights\": {\"W\": [[1]], \"b\": null}}",
                              &iw, &err),
                     TD_OK);
    ck_assert_double_eq(hp.lr, 0.5);
    ck_assert_int_eq(hp.epochs, 3);
    ck_assert_int_eq(hp.optimizer, TD_OPT_ADAMW);
    ck_assert_double_eq(hp.betas[0], 0.8);
    ck_assert_double_eq(hp.betas[1], 0.99);
    ck_assert_int_eq(hp.groups, 2);
    ck_assert_double_eq(hp.monotone_weight, 0.3);
    ck_assert_double_eq(hp.monotone_margin, 0.1);
    ck_assert_int_eq(hp.n_class_weights, 2);
    ck_assert_float_eq(hp.class_weights[1], 2.5f);
    ck_assert_int_eq(hp.intercept, TD_INTERCEPT_COLUMN0);
    ck_assert_int_eq(hp.seed, 7);
    ck_assert_double_eq(hp.momentum, 0.0);
    ck_assert_ptr_nonnull(iw);
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(iw, "W")));
    cJSON_Delete(iw);

    /* resolved object -> text -> parsed again gives the same values */
    cJSON *obj = td_json_hparams_object(&hp);
    ck_assert_ptr_nonnull(obj);
    ck_assert_double_eq(cJSON_GetObjectItem(obj, "lr")->valuedouble, 0.5);
    ck_assert_str_eq(cJSON_GetObjectItem(obj, "optimizer")->valuestring, "adamw");
    ck_assert_double_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(obj, "monotone"), "weight")->valuedouble, 0.3);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(obj, "n_classes")));
    ck_assert_ptr_null(cJSON_GetObjectItem(obj, "hidden")); /* not a softmax name */
    ck_assert_ptr_null(cJSON_GetObjectItem(obj, "initial_weights"));
    char *text = cJSON_PrintUnformatted(obj);
    ck_assert_msg(strstr(text, "\"class_weights\":[1,2.5]"), "%s", text);
    td_hparams back;
    ck_assert_int_eq(hp_parse(&back, TD_MODEL_SOFTMAX, text, NULL, &err), TD_OK);
    ck_assert_double_eq(back.lr, hp.lr);
    ck_assert_double_eq(back.betas[1], hp.betas[1]);
    ck_assert_double_eq(back.monotone_margin, hp.monotone_margin);
    ck_assert_double_eq(back.tol, hp.tol);
    ck_assert_int_eq(back.intercept, hp.intercept);
    ck_assert_int_eq(back.shuffle, hp.shuffle);
    ck_assert_int_eq(back.n_class_weights, 2);
    ck_assert_float_eq(back.class_weights[0], 1.0f);
    td_hparams_fini(&back);
    free(text);
    cJSON_Delete(obj);
    td_hparams_fini(&hp);

    /* mlp: hidden list, defaults of the model, an int accepted as one layer */
    ck_assert_int_eq(hp_parse(&hp, TD_MODEL_MLP,
                              "{\"hidden\": [64, 32], \"activation\": "
                              "\"tanh\"}",
                              NULL, &err),
                     TD_OK);
    ck_assert_int_eq(hp.mlp.n_hidden, 2);
    ck_assert_int_eq(hp.mlp.hidden[1], 32);
    ck_assert_int_eq(hp.mlp.activation, TD_ACT_TANH);
    ck_assert_int_eq(hp.optimizer, TD_OPT_ADAM);
    ck_assert_int_eq(hp.batch_size, 64);
    obj = td_json_hparams_object(&hp);
    text = cJSON_PrintUnformatted(obj);
    ck_assert_msg(strstr(text, "\"hidden\":[64,32]") && strstr(text, "\"activation\":\"tanh\""),
                  "%s", text);
    free(text);
    cJSON_Delete(obj);
    td_hparams_fini(&hp);
    ck_assert_int_eq(hp_parse(&hp, TD_MODEL_MLP, "{\"hidden\": 16}", NULL, &err), TD_OK);
    ck_assert_int_eq(hp.mlp.n_hidden, 1);
    ck_assert_int_eq(hp.mlp.hidden[0], 16);
    td_hparams_fini(&hp);
}
END_TEST

START_TEST(hparams_errors)
{
    hp_expect(TD_MODEL_SOFTMAX, "{\"learning_rate\": 0.1}", "hyperparameters.learning_rate",
              "unknown hyperparameter \"learning_rate\"; did you mean \"lr\"?");
    hp_expect(TD_MODEL_SOFTMAX, "{\"epoch\": 3}", "hyperparameters.epoch",
              "did you mean \"epochs\"?");
    hp_expect(TD_MODEL_SOFTMAX, "{\"flux\": 3}", "hyperparameters.flux",
              "unknown hyperparameter \"flux\"");
    hp_expect(TD_MODEL_SOFTMAX, "{\"lr\": \"0.1\"}", "hyperparameters.lr",
              "must be a number, got a string");
    hp_expect(TD_MODEL_SOFTMAX, "{\"lr\": -1}", "hyperparameters.lr", "must be > 0, got -1");
    hp_expect(TD_MODEL_SOFTMAX, "{\"lr\": NaN}", "hyperparameters.lr", "NaN");
    hp_expect(TD_MODEL_SOFTMAX, "{\"epochs\": 2.5}", "hyperparameters.epochs", "not an integer");
    hp_expect(TD_MODEL_SOFTMAX, "{\"epochs\": 0}", "hyperparameters.epochs", "outside [1,");
    hp_expect(TD_MODEL_SOFTMAX, "{\"shuffle\": 1}", "hyperparameters.shuffle",
              "must be true or false");
    hp_expect(TD_MODEL_SOFTMAX, "{\"optimizer\": \"adm\"}", "hyperparameters.optimizer",
              "must be one of \"sgd\", \"adam\", \"adamw\"; got \"adm\" (did you mean \"adam\"?)");
    hp_expect(TD_MODEL_SOFTMAX, "{\"optimizer\": 3}", "hyperparameters.optimizer",
              "must be one of");
    hp_expect(TD_MODEL_SOFTMAX, "{\"hidden\": [64]}", "hyperparameters.hidden",
              "hyperparameter \"hidden\" does not apply to the softmax model");
    hp_expect(TD_MODEL_EMBED_GMM, "{\"epochs\": 5}", "hyperparameters.epochs",
              "use \"iterations\"");
    hp_expect(TD_MODEL_SOFTMAX, "{\"betas\": [0.9]}", "hyperparameters.betas",
              "array of 2 numbers");
    hp_expect(TD_MODEL_SOFTMAX, "{\"betas\": [0.9, \"x\"]}", "hyperparameters.betas[1]",
              "must be a number");
    hp_expect(TD_MODEL_SOFTMAX, "{\"betas\": [0.9, 1.0]}", "hyperparameters.betas[1]", "in [0, 1)");
    hp_expect(TD_MODEL_SOFTMAX, "{\"monotone\": {\"wieght\": 1}}",
              "hyperparameters.monotone.wieght", "did you mean \"monotone.weight\"?");
    hp_expect(TD_MODEL_SOFTMAX, "{\"monotone\": {\"weight\": \"1\"}}",
              "hyperparameters.monotone.weight", "must be a number");
    hp_expect(TD_MODEL_SOFTMAX, "{\"monotone\": 0.3}", "hyperparameters.monotone",
              "object with the keys \"weight\", \"margin\"");
    hp_expect(TD_MODEL_MLP, "{\"hidden\": [64, 0]}", "hyperparameters.hidden[1]", "outside [1,");
    hp_expect(TD_MODEL_MLP, "{\"hidden\": \"64\"}", "hyperparameters.hidden", "array of integers");
    hp_expect(TD_MODEL_SOFTMAX, "{\"class_weights\": [1, -2]}", "hyperparameters.class_weights[1]",
              ">= 0");
    hp_expect(TD_MODEL_SOFTMAX, "{\"class_weights\": []}", "hyperparameters.class_weights",
              "must not be empty");
    hp_expect(TD_MODEL_SOFTMAX, "{\"class_weights\": [1, 2e30]}",
              "hyperparameters.class_weights[1]", "must be <= 1e+30, got 2e+30");
    { /* the bound itself, as written (float32 rounds 1e30 up): accepted by both checks */
        td_hparams hp;
        td_error err = {{0}, {0}};
        ck_assert_int_eq(
            hp_parse(&hp, TD_MODEL_SOFTMAX, "{\"class_weights\": [1e30, 0]}", NULL, &err), TD_OK);
        td_dataset ds = {
            .N = 2, .D = 1, .X = (const float[]){0, 1}, .y = (const int32_t[]){0, 1}, .y_cols = 1};
        ck_assert_msg(td_hparams_check(&hp, &ds, NULL, &err) == TD_OK, "%s", err.message);
        td_hparams_fini(&hp);
    }
    hp_expect(TD_MODEL_SOFTMAX, "{\"lr\": 0.1, \"lr\": 0.2}", "hyperparameters.lr", "twice");
    hp_expect(TD_MODEL_SOFTMAX, "{\"initial_weights\": [1, 2]}", "hyperparameters.initial_weights",
              "must be an object");
    hp_expect(TD_MODEL_SOFTMAX, "[1]", "hyperparameters", "must be an object");
}
END_TEST

START_TEST(initial_weights_layout)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    td_model shape;
    td_model_shape(&shape, &hp, 3, 2);
    td_error err;
    float *w = NULL;

    cJSON *o = tu_parse("{\"W\": [[1, 2], [3, 4], [5, 6]], \"b\": [7, 8], \"model\": "
                        "\"softmax\", \"intercept\": \"fit\"}");
    ck_assert_int_eq(td_json_initial_weights(o, &shape, &w, &err), TD_OK);
    ck_assert_int_eq(td_model_nparams(&shape), 8);
    for (int i = 0; i < 8; i++)
        ck_assert_float_eq(w[i], (float)(i + 1));
    free(w);
    cJSON_Delete(o);

    struct {
        const char *body, *field, *msg;
    } bad[] = {
        {"{\"W\": [[1, 2], [3, 4]], \"b\": [7, 8]}", "hyperparameters.initial_weights.W",
         "hyperparameters.initial_weights.W has 2 rows, expected 3"},
        {"{\"W\": [[1], [3], [5]], \"b\": [7, 8]}", "hyperparameters.initial_weights.W",
         "has 1 columns, expected 2"},
        {"{\"W\": [[1, 2], [3, 4], [5, 6]], \"b\": [7]}", "hyperparameters.initial_weights.b",
         "has 1 entries, expected 2"},
        {"{\"W\": [[1, 2], [3, 4], [5, 6]]}", "hyperparameters.initial_weights.b", "is required"},
        {"{\"W\": [[1, 2], [3, NaN], [5, 6]], \"b\": [7, 8]}",
         "hyperparameters.initial_weights.W[1][1]", "NaN"},
        {"{\"W\": [[1, 2], [3, 4], [5, 6]], \"b\": [7, 8], \"bias\": 1}",
         "hyperparameters.initial_weights.bias", "unknown key"},
        {"{\"W\": [[1, 2], [3, 4], [5, 6]], \"b\": [7, 8], \"model\": \"mlp\"}",
         "hyperparameters.initial_weights.model", "for a mlp model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = tu_parse(bad[i].body);
        td_status st = td_json_initial_weights(o, &shape, &w, &err);
        ck_assert_msg(st == TD_EINVAL, "%s", bad[i].body);
        ck_assert_ptr_null(w);
        ck_assert_msg(strcmp(err.field, bad[i].field) == 0, "%s: field %s", bad[i].body, err.field);
        ck_assert_msg(strstr(err.message, bad[i].msg), "%s: %s", bad[i].body, err.message);
        cJSON_Delete(o);
    }

    /* no bias: b must be null or absent */
    hp.intercept = TD_INTERCEPT_NONE;
    td_model_shape(&shape, &hp, 3, 2);
    o = tu_parse("{\"W\": [[1, 2], [3, 4], [5, 6]], \"b\": null}");
    ck_assert_int_eq(td_json_initial_weights(o, &shape, &w, &err), TD_OK);
    ck_assert_float_eq(w[5], 6.0f);
    free(w);
    cJSON_Delete(o);
    o = tu_parse("{\"W\": [[1, 2], [3, 4], [5, 6]], \"b\": [1, 2]}");
    expect_error(td_json_initial_weights(o, &shape, &w, &err), err,
                 "hyperparameters.initial_weights.b", "no bias");
    cJSON_Delete(o);

    /* mlp: D 3 -> 4 -> 2, layers in order W0 b0 W1 b1 */
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.n_hidden = 1;
    hp.mlp.hidden[0] = 4;
    td_model_shape(&shape, &hp, 3, 2);
    ck_assert_int_eq(td_model_nparams(&shape), 3 * 4 + 4 + 4 * 2 + 2);
    o = tu_parse("{\"model\": \"mlp\", \"layers\": ["
                 "{\"W\": [[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]], \"b\": [4, 4, 4, 4],"
                 " \"activation\": \"relu\"},"
                 "{\"W\": [[5, 5], [6, 6], [7, 7], [8, 8]], \"b\": [9, 9]}]}");
    ck_assert_int_eq(td_json_initial_weights(o, &shape, &w, &err), TD_OK);
    ck_assert_float_eq(w[0], 1.0f);
    ck_assert_float_eq(w[11], 3.0f);
    ck_assert_float_eq(w[12], 4.0f);
    ck_assert_float_eq(w[16], 5.0f);
    ck_assert_float_eq(w[23], 8.0f);
    ck_assert_float_eq(w[25], 9.0f);
    free(w);
    cJSON_Delete(o);
    o = tu_parse("{\"layers\": ["
                 "{\"W\": [[1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]], \"b\": [4, 4, 4, 4]},"
                 "{\"W\": [[5, 5], [6, 6], [7, 7]], \"b\": [9, 9]}]}");
    expect_error(td_json_initial_weights(o, &shape, &w, &err), err,
                 "hyperparameters.initial_weights.layers[1].W",
                 "layers[1].W has 3 rows, expected 4");
    cJSON_Delete(o);
    o = tu_parse("{\"layers\": [{\"W\": [[1, 1, 1, 1]], \"b\": [4, 4, 4, 4]}]}");
    expect_error(td_json_initial_weights(o, &shape, &w, &err), err,
                 "hyperparameters.initial_weights.layers", "has 1 entries, expected 2");
    cJSON_Delete(o);
}
END_TEST

START_TEST(job_body)
{
    td_job_request r;
    td_error err;
    const char *body = "{\"model\": \"softmax\", \"dataset\": \"ds_abc\", \"validation\": "
                       "\"ds_val\", \"hyperparameters\": {\"lr\": 0.05, \"initial_weights\": "
                       "{\"W\": [[0]], \"b\": [0]}}}";
    ck_assert_int_eq(td_json_job_parse(&r, body, strlen(body), &err), TD_OK);
    ck_assert_int_eq(r.model, TD_MODEL_SOFTMAX);
    ck_assert_str_eq(r.dataset_id, "ds_abc");
    ck_assert_str_eq(r.validation_id, "ds_val");
    ck_assert_ptr_null(r.data);
    ck_assert_double_eq(r.hp.lr, 0.05);
    ck_assert_ptr_nonnull(r.initial_weights);
    td_job_request_fini(&r);

    body = "{\"model\": \"mlp\", \"data\": {\"X\": [[1, 2], [3, 4]], \"y\": [0, 1]}}";
    ck_assert_int_eq(td_json_job_parse(&r, body, strlen(body), &err), TD_OK);
    ck_assert_int_eq(r.model, TD_MODEL_MLP);
    ck_assert_ptr_nonnull(r.data);
    ck_assert_int_eq(r.data->ds.N, 2);
    ck_assert_int_eq(r.hp.batch_size, 64);
    td_job_request_fini(&r);

    struct {
        const char *body, *field, *msg;
    } bad[] = {
        {"{\"model\": \"softmax\", \"datset\": \"ds_1\"}", "datset", "did you mean \"dataset\"?"},
        {"{\"model\": \"softmx\", \"dataset\": \"ds_1\"}", "model",
         "unknown model \"softmx\"; did you mean \"softmax\"?"},
        {"{\"dataset\": \"ds_1\"}", "model", "model is required"},
        {"{\"model\": \"softmax\"}", "dataset", "dataset is required"},
        {"{\"model\": \"softmax\", \"dataset\": \"ds_1\", \"data\": {\"X\": [[1]]}}", "data",
         "not both"},
        {"{\"model\": \"softmax\", \"data\": {\"X\": [[1, 2], [3, \"4\"]]}}", "data.X[1][1]",
         "must be a number"},
        {"{\"model\": \"softmax\", \"dataset\": 5}", "dataset", "must be a string"},
        {"{\"model\": \"softmax\", \"dataset\": \"ds_1\", \"hyperparameters\": "
         "{\"learning_rate\": 1}}",
         "hyperparameters.learning_rate", "did you mean \"lr\"?"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        td_status st = td_json_job_parse(&r, bad[i].body, strlen(bad[i].body), &err);
        ck_assert_msg(st == TD_EINVAL, "%s", bad[i].body);
        ck_assert_msg(strcmp(err.field, bad[i].field) == 0, "%s: field %s (%s)", bad[i].body,
                      err.field, err.message);
        ck_assert_msg(strstr(err.message, bad[i].msg), "%s: %s", bad[i].body, err.message);
        ck_assert_ptr_null(r.dataset_id);
        ck_assert_ptr_null(r.data);
        td_job_request_fini(&r);
    }
    td_status st = td_json_job_parse(&r, "{\"model\": ", 10, &err);
    ck_assert(st == TD_EMALFORMED);
}
END_TEST

/* ---- models ------------------------------------------------------------------------ */

static void fill_params(td_model *m)
{
    m->n_params = td_model_nparams(m);
    m->params = malloc(sizeof(float) * (size_t)m->n_params);
    for (int64_t i = 0; i < m->n_params; i++)
        m->params[i] = (float)i * 0.25f - 1.0f;
}

START_TEST(model_json_and_meta_round_trip)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    td_model m;
    td_model_shape(&m, &hp, 2, 3);
    fill_params(&m);
    td_error err;
    char *text;
    size_t len;
    ck_assert_int_eq(td_json_model(&text, &len, &m, &err), TD_OK);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_str_eq(text,
                     "{\"model\":\"softmax\",\"W\":[[-1,-0.75,-0.5],[-0.25,0,0.25]],"
                     "\"b\":[0.5,0.75,1],\"intercept\":\"fit\"}");
    /* the model object is accepted back as initial weights */
    cJSON *o = tu_parse(text);
    float *w;
    ck_assert_int_eq(td_json_initial_weights(o, &m, &w, &err), TD_OK);
    ck_assert_mem_eq(w, m.params, sizeof(float) * 9);
    free(w);
    cJSON_Delete(o);
    free(text);

    char *meta;
    ck_assert_int_eq(td_json_model_meta(&meta, &m, &err), TD_OK);
    td_model back;
    ck_assert_int_eq(td_json_model_from_meta(&back, meta, strlen(meta), m.params, m.n_params, &err),
                     TD_OK);
    ck_assert_int_eq(back.kind, m.kind);
    ck_assert_int_eq(back.D, 2);
    ck_assert_int_eq(back.K, 3);
    ck_assert_int_eq(back.G, 1);
    ck_assert_int_eq(back.intercept, TD_INTERCEPT_FIT);
    ck_assert_mem_eq(back.params, m.params, sizeof(float) * 9);
    char *meta2;
    ck_assert_int_eq(td_json_model_meta(&meta2, &back, &err), TD_OK);
    ck_assert_str_eq(meta, meta2);
    free(meta2);
    td_model_fini(&back);
    /* a parameter count that does not match the meta is refused (internal: 500) */
    ck_assert_int_eq(td_json_model_from_meta(&back, meta, strlen(meta), m.params, 8, &err),
                     TD_EINTERNAL);
    ck_assert_ptr_null(back.params);
    free(meta);
    td_model_fini(&m);

    /* grouped mlp with two hidden layers, no bias column on softmax variants */
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.n_hidden = 2;
    hp.mlp.hidden[0] = 3;
    hp.mlp.hidden[1] = 2;
    hp.mlp.activation = TD_ACT_SIGMOID;
    hp.groups = 2;
    td_model_shape(&m, &hp, 2, 4);
    fill_params(&m);
    ck_assert_int_eq(td_json_model(&text, NULL, &m, &err), TD_OK);
    o = tu_parse(text);
    ck_assert_str_eq(cJSON_GetObjectItem(o, "model")->valuestring, "mlp");
    ck_assert_int_eq(cJSON_GetObjectItem(o, "groups")->valueint, 2);
    cJSON *layers = cJSON_GetObjectItem(o, "layers");
    ck_assert_int_eq(cJSON_GetArraySize(layers), 3);
    cJSON *l1 = cJSON_GetArrayItem(layers, 1), *l2 = cJSON_GetArrayItem(layers, 2);
    ck_assert_str_eq(cJSON_GetObjectItem(l1, "activation")->valuestring, "sigmoid");
    ck_assert_str_eq(cJSON_GetObjectItem(l2, "activation")->valuestring, "softmax");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(l1, "W")), 3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(l2, "W"), 0)), 4);
    ck_assert_int_eq(td_json_initial_weights(o, &m, &w, &err), TD_OK);
    ck_assert_mem_eq(w, m.params, sizeof(float) * (size_t)m.n_params);
    free(w);
    cJSON_Delete(o);
    free(text);
    ck_assert_int_eq(td_json_model_meta(&meta, &m, &err), TD_OK);
    ck_assert_int_eq(td_json_model_from_meta(&back, meta, strlen(meta), m.params, m.n_params, &err),
                     TD_OK);
    ck_assert_int_eq(back.n_hidden, 2);
    ck_assert_int_eq(back.hidden[1], 2);
    ck_assert_int_eq(back.activation, TD_ACT_SIGMOID);
    ck_assert_int_eq(back.G, 2);
    ck_assert_int_eq(back.n_params, m.n_params);
    td_model_fini(&back);
    free(meta);
    td_model_fini(&m);

    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.intercept = TD_INTERCEPT_COLUMN0;
    td_model_shape(&m, &hp, 2, 2);
    fill_params(&m);
    ck_assert_int_eq(td_json_model(&text, NULL, &m, &err), TD_OK);
    ck_assert_msg(strstr(text, "\"b\":null,\"intercept\":\"column0\""), "%s", text);
    free(text);
    td_model_fini(&m);
}
END_TEST

START_TEST(predictions)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.groups = 2;
    td_model m;
    td_model_shape(&m, &hp, 1, 4);
    td_error err;
    const float probs[] = {0.25f, 0.75f, 1, 0, 0.5f, 0.5f, 0, 1};
    const int32_t labels[] = {1, 0, 0, 1};
    char *text;
    ck_assert_int_eq(td_json_predictions(&text, NULL, &m, probs, labels, 2, &err), TD_OK);
    ck_assert_str_eq(text,
                     "{\"probabilities\":[[[0.25,0.75],[1,0]],[[0.5,0.5],[0,1]]],"
                     "\"labels\":[[1,0],[0,1]]}");
    free(text);
    m.G = 1;
    ck_assert_int_eq(td_json_predictions(&text, NULL, &m, probs, labels, 2, &err), TD_OK);
    ck_assert_str_eq(text,
                     "{\"probabilities\":[[0.25,0.75,1,0],[0.5,0.5,0,1]],"
                     "\"labels\":[1,0]}");
    free(text);

    /* the predict body: same number rules as datasets, D checked */
    float *X;
    int64_t N;
    const char *body = "{\"X\": [[1], [2], [3]]}";
    ck_assert_int_eq(td_json_predict_parse(&X, &N, body, strlen(body), &m, &err), TD_OK);
    ck_assert_int_eq(N, 3);
    ck_assert_float_eq(X[2], 3.0f);
    free(X);
    body = "{\"X\": [[1, 2]]}";
    expect_error(td_json_predict_parse(&X, &N, body, strlen(body), &m, &err), err, "X",
                 "X has 2 columns, the model expects 1 features");
    body = "{\"X\": [[1], [Infinity]]}";
    expect_error(td_json_predict_parse(&X, &N, body, strlen(body), &m, &err), err, "X[1][0]",
                 "Infinity");
    body = "{\"x\": [[1]]}";
    expect_error(td_json_predict_parse(&X, &N, body, strlen(body), &m, &err), err, "x",
                 "did you mean \"X\"?");

    /* through the engine: zero weights give uniform probabilities */
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    td_model_shape(&m, &hp, 2, 4);
    m.params = calloc((size_t)m.n_params, sizeof(float));
    body = "{\"X\": [[1, 2], [3, 4]]}";
    ck_assert_int_eq(td_json_predict(&text, NULL, &m, body, strlen(body), &err), TD_OK);
    ck_assert_str_eq(text,
                     "{\"probabilities\":[[0.25,0.25,0.25,0.25],[0.25,0.25,0.25,0.25]],"
                     "\"labels\":[0,0]}");
    free(text);
    td_model_fini(&m);
}
END_TEST

Suite *suite_json(void)
{
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, parse_malformed_offsets);
    tcase_add_test(tc, sbuf_numbers);
    tcase_add_test(tc, engine_fields_scoped);
    tcase_add_test(tc, numbers_shortest);
    tcase_add_test(tc, check_keys_suggests);
    suite_add_tcase(s, tc);
    tc = tcase_create("dataset");
    tcase_add_test(tc, dataset_round_trip);
    tcase_add_test(tc, dataset_errors_name_the_element);
    tcase_add_test(tc, dataset_csv);
    suite_add_tcase(s, tc);
    tc = tcase_create("hparams");
    tcase_add_test(tc, hparams_defaults_and_values);
    tcase_add_test(tc, hparams_errors);
    tcase_add_test(tc, initial_weights_layout);
    tcase_add_test(tc, job_body);
    suite_add_tcase(s, tc);
    tc = tcase_create("model");
    tcase_add_test(tc, model_json_and_meta_round_trip);
    tcase_add_test(tc, predictions);
    suite_add_tcase(s, tc);
    return s;
}
