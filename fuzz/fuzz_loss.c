/* fuzz_loss.c — libFuzzer target for POST /v1/loss bodies (td_json_loss_eval, which
 * streams the body through td_dstream_object and runs the engine's own losses on what it
 * read).
 * Checked: a refusal is TD_EINVAL / TD_EMALFORMED with a message; an answer is JSON that
 * parses back (no NaN or Infinity literal leaks into it) and is an object holding "loss";
 * the body fed in pieces (sizes from its first byte) gives the same answer or error; and
 * every array member read from the stream (td_jarray_*) gives what the tree reader gives
 * for the same value (td_json_parse + td_json_*), with one of the readers chosen by the
 * body's length.
 * Run: make fuzz (FUZZ_SECONDS per target). */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "codec/json_loss.h"
#include "codec/json_util.h"
#include "codec/stream_dataset.h"
#include "dataset_tree.h"

static const char *const ARRAY_KEYS[] = {"logits", "target",  "probabilities", "a",
                                         "b",      "similar", "class_weights", NULL};

/* Reader r of the tree value tv and of the streamed a: the same status, error and
 * values. */
static void compare_reader(const cJSON *tv, td_jarray *a, int r, const char *key)
{
    td_error e1 = {{0}, {0}}, e2 = {{0}, {0}};
    void *d1 = NULL, *d2 = NULL;
    int64_t r1 = 0, c1 = 1, r2 = 0, c2 = 1;
    int g1 = 0, g2 = 0;
    td_status s1, s2;
    switch (r) {
    case 0:
        s1 = td_json_matrix_f32((float **)&d1, &r1, &c1, tv, 0, key, &e1);
        s2 = td_jarray_matrix_f32((float **)&d2, &r2, &c2, a, 0, key, &e2);
        break;
    case 1:
        s1 = td_json_matrix_f32((float **)&d1, &r1, &c1, tv, TD_JSON_NONNEG, key, &e1);
        s2 = td_jarray_matrix_f32((float **)&d2, &r2, &c2, a, TD_JSON_NONNEG, key, &e2);
        break;
    case 2:
        s1 = td_json_vector_f32((float **)&d1, &r1, tv, TD_JSON_NONNEG, key, &e1);
        s2 = td_jarray_vector_f32((float **)&d2, &r2, a, TD_JSON_NONNEG, key, &e2);
        break;
    case 3:
        s1 = td_json_vector_i32((int32_t **)&d1, &r1, tv, INT32_MIN, INT32_MAX, 0, key, &e1);
        s2 = td_jarray_vector_i32((int32_t **)&d2, &r2, a, INT32_MIN, INT32_MAX, 0, key, &e2);
        break;
    case 4:
        s1 = td_json_vector_i32((int32_t **)&d1, &r1, tv, 0, 1, TD_JSON_BOOLS, key, &e1);
        s2 = td_jarray_vector_i32((int32_t **)&d2, &r2, a, 0, 1, TD_JSON_BOOLS, key, &e2);
        break;
    default:
        s1 = td_json_labels_i32((int32_t **)&d1, &r1, &c1, &g1, tv, key, &e1);
        s2 = td_jarray_labels_i32((int32_t **)&d2, &r2, &c2, &g2, a, key, &e2);
        break;
    }
    FUZZ_CHECK(s1 == s2, "%s reader %d: tree %d [%s] %s, stream %d [%s] %s", key, r, s1, e1.field,
               e1.message, s2, e2.field, e2.message);
    if (s1)
        FUZZ_CHECK(strcmp(e1.field, e2.field) == 0 && strcmp(e1.message, e2.message) == 0,
                   "%s reader %d: tree [%s] %s, stream [%s] %s", key, r, e1.field, e1.message,
                   e2.field, e2.message);
    else
        FUZZ_CHECK(r1 == r2 && c1 == c2 && g1 == g2 && memcmp(d1, d2, (size_t)(r1 * c1) * 4) == 0,
                   "%s reader %d: the values differ", key, r);
    free(d1);
    free(d2);
}

/* The arrays of the body, streamed in pieces of 1 + data[0] % 11 bytes, against the
 * tree (when both read the body: the tree parser is laxer in a few corners). */
static void compare_arrays(const uint8_t *data, size_t size)
{
    cJSON *tree = NULL;
    td_error err;
    if (td_json_parse(&tree, (const char *)data, size, &err) != TD_OK) return;
    td_dstream *s = td_json_loss_stream(size);
    FUZZ_CHECK(s != NULL, "out of memory");
    size_t step = size ? 1 + data[0] % 11 : 1;
    for (size_t at = 0; at < size; at += step)
        td_dstream_feed(s, (const char *)data + at, step < size - at ? step : size - at);
    const cJSON *members;
    if (td_dstream_object_finish(s, &members, &err) == TD_OK && cJSON_IsObject(tree)) {
        for (int k = 0; ARRAY_KEYS[k]; k++) {
            const cJSON *tv = cJSON_GetObjectItemCaseSensitive(tree, ARRAY_KEYS[k]);
            td_jarray *a = td_dstream_array(s, ARRAY_KEYS[k]);
            FUZZ_CHECK((a != NULL) == (tv && !cJSON_IsNull(tv)), "%s: present %d / %d",
                       ARRAY_KEYS[k], a != NULL, tv && !cJSON_IsNull(tv));
            if (a) compare_reader(tv, a, (int)((size + (size_t)k) % 6), ARRAY_KEYS[k]);
        }
    }
    td_dstream_destroy(s);
    cJSON_Delete(tree);
}

/* The body in pieces through the loss route's own calls: the same as whole. */
static void compare_pieces(const uint8_t *data, size_t size, td_status st0, const td_error *e0,
                           const char *out0)
{
    td_dstream *s = td_json_loss_stream(0);
    FUZZ_CHECK(s != NULL, "out of memory");
    size_t step = size ? 1 + data[size - 1] % 5 : 1;
    for (size_t at = 0; at < size; at += step)
        td_dstream_feed(s, (const char *)data + at, step < size - at ? step : size - at);
    td_jout *o = NULL;
    td_error err = {{0}, {0}};
    td_status st = td_json_loss_finish(s, &o, &err);
    td_dstream_destroy(s);
    FUZZ_CHECK(st == st0, "pieces: %d [%s] %s, whole: %d [%s] %s", st, err.field, err.message, st0,
               e0->field, e0->message);
    if (st) {
        FUZZ_CHECK(strcmp(err.message, e0->message) == 0, "pieces: %s, whole: %s", err.message,
                   e0->message);
        return;
    }
    char *out = td_jout_string(o, NULL);
    td_jout_free(o);
    FUZZ_CHECK(out && strcmp(out, out0) == 0, "pieces answer differs");
    free(out);
}

int td_fuzz_loss(const uint8_t *data, size_t size)
{
    td_error err = {{0}, {0}};
    char *out = NULL;
    td_status st = td_json_loss_eval((const char *)data, size, &out, &err);
    compare_pieces(data, size, st, &err, out);
    compare_arrays(data, size);
    if (st != TD_OK) {
        FUZZ_CHECK_REFUSAL(st, err);
        FUZZ_CHECK(out == NULL, "output on error");
        return 0;
    }
    FUZZ_CHECK(out != NULL, "no output");
    cJSON *j = cJSON_Parse(out);
    FUZZ_CHECK(cJSON_IsObject(j) && cJSON_GetObjectItemCaseSensitive(j, "loss"),
               "answer is not an object with \"loss\": %.300s", out);
    cJSON_Delete(j);
    free(out);
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_loss)
