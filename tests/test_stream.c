/* test_stream.c — the streaming dataset parser (stream_dataset.h) and streamed request
 * bodies (td_body_sink).
 *
 * Parser: every number form against (float)strtod, every error with its element and
 * message (the same as the tree reader's, dataset_tree.h, for each body), malformed
 * offsets, and the same bodies fed whole, in 1-byte, 7-byte and random pieces giving
 * identical arrays and errors; CSV quoting and line endings; the limits.
 * Server: a sink gets the body in order and is freed when the client goes away or the
 * body passes the limit. Daemon: a big dataset streams in without its text in memory,
 * and a body over max_body_mb is answered 413 without the daemon growing by its size. */
#define _GNU_SOURCE
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"
#include "codec/json_dataset.h"
#include "codec/json_util.h"
#include "http/server.h"
#include "codec/stream_dataset.h"
#include "api.h"
#include "dataset_tree.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------ */

enum { WHOLE = 0, RANDOM = -1 };

/* Feeds body in pieces of chunk bytes (RANDOM: 1..64, seeded) to a JSON parser, or a CSV
 * parser when csv is non-NULL, and finishes. */
static td_status parse_in(td_dataset_buf *out, const char *body, size_t len, int chunk,
                          unsigned seed, const td_csv_opts *csv, td_error *err)
{
    td_dstream *s = csv ? td_dstream_csv(csv, "csv", len) : td_dstream_json(len);
    ck_assert_ptr_nonnull(s);
    size_t i = 0;
    unsigned r = seed * 2654435761u + 1;
    while (i < len) {
        size_t n = chunk > 0 ? (size_t)chunk : chunk == WHOLE ? len : 0;
        if (chunk == RANDOM) {
            r = r * 1103515245u + 12345u;
            n = 1 + (r >> 16) % 64;
        }
        if (n > len - i) n = len - i;
        td_dstream_feed(s, body + i, n);
        i += n;
    }
    td_status st = td_dstream_finish(s, out, err);
    td_dstream_destroy(s);
    return st;
}

static void expect_same_buf(const td_dataset_buf *a, const td_dataset_buf *b, const char *what)
{
    ck_assert_msg(a->ds.N == b->ds.N && a->ds.D == b->ds.D && a->ds.y_cols == b->ds.y_cols &&
                      a->ds.Y_cols == b->ds.Y_cols && a->ds.P == b->ds.P,
                  "%s: shapes differ", what);
    ck_assert_msg(memcmp(a->X, b->X, (size_t)(a->ds.N * a->ds.D) * 4) == 0, "%s: X differs", what);
    ck_assert_msg(!a->y == !b->y, "%s: y", what);
    if (a->y)
        ck_assert_msg(memcmp(a->y, b->y, (size_t)(a->ds.N * a->ds.y_cols) * 4) == 0, "%s: y", what);
    ck_assert_msg(a->n_classes == b->n_classes && a->n_columns == b->n_columns,
                  "%s: class or column names differ in number", what);
    for (int64_t k = 0; k < a->n_classes; k++)
        ck_assert_msg(strcmp(a->classes[k], b->classes[k]) == 0, "%s: classes[%lld]", what,
                      (long long)k);
    for (int64_t k = 0; k < a->n_columns; k++)
        ck_assert_msg(strcmp(a->columns[k], b->columns[k]) == 0, "%s: columns[%lld]", what,
                      (long long)k);
    ck_assert_msg(!a->Y == !b->Y, "%s: Y", what);
    if (a->Y)
        ck_assert_msg(memcmp(a->Y, b->Y, (size_t)(a->ds.N * a->ds.Y_cols) * 4) == 0, "%s: Y", what);
    ck_assert_msg(!a->pairs == !b->pairs, "%s: pairs", what);
    if (a->pairs) {
        ck_assert_msg(memcmp(a->pairs, b->pairs, (size_t)a->ds.P * 8) == 0, "%s: pairs", what);
        ck_assert_msg(memcmp(a->pair_labels, b->pair_labels, (size_t)a->ds.P * 4) == 0,
                      "%s: pair_labels", what);
    }
    ck_assert_msg(!a->name == !b->name && (!a->name || strcmp(a->name, b->name) == 0), "%s: name",
                  what);
    ck_assert_ptr_eq(a->ds.X, a->X);
}

/* Parses body whole, in 1-byte, 7-byte and random pieces (3 seeds): every way must give
 * the same outcome; returns the whole-body one (*out owned by the caller on success). */
static td_status parse_all_ways(td_dataset_buf *out, const char *body, size_t len,
                                const td_csv_opts *csv, td_error *err)
{
    td_status st = parse_in(out, body, len, WHOLE, 0, csv, err);
    const int chunks[] = {1, 7, RANDOM, RANDOM, RANDOM, 4096};
    for (int k = 0; k < 6; k++) {
        td_dataset_buf b;
        td_error e = {{0}, {0}};
        td_status sb = parse_in(&b, body, len, chunks[k], (unsigned)k, csv, &e);
        ck_assert_msg(sb == st, "%.200s: status %d in pieces of %d, %d whole (%s / %s)", body, sb,
                      chunks[k], st, e.message, err ? err->message : "");
        if (st == TD_OK) {
            expect_same_buf(out, &b, body);
            td_dataset_buf_free(&b);
        } else if (err) {
            ck_assert_msg(strcmp(e.field, err->field) == 0 && strcmp(e.message, err->message) == 0,
                          "%.200s: pieces of %d say [%s] %s, whole [%s] %s", body, chunks[k],
                          e.field, e.message, err->field, err->message);
        }
    }
    return st;
}

/* The JSON body through the stream (all ways) and through the tree reader: the same
 * outcome. Returns the stream's status; *err its error. */
static td_status json_both(const char *body, td_error *err)
{
    size_t len = strlen(body);
    td_dataset_buf a, b;
    td_error et = {{0}, {0}};
    td_status ss = parse_all_ways(&a, body, len, NULL, err);
    td_status st = td_json_dataset_parse(&b, body, len, &et);
    ck_assert_msg(ss == st, "%s: stream %d (%s), tree %d (%s)", body, ss, err->message, st,
                  et.message);
    if (st == TD_OK) {
        expect_same_buf(&a, &b, body);
        td_dataset_buf_free(&a);
        td_dataset_buf_free(&b);
    } else if (st == TD_EMALFORMED) {
        ck_assert_msg(ss == TD_EMALFORMED, "%s: %s", body, err->message);
    } else {
        ck_assert_msg(strcmp(err->field, et.field) == 0 && strcmp(err->message, et.message) == 0,
                      "%s: stream [%s] %s, tree [%s] %s", body, err->field, err->message, et.field,
                      et.message);
    }
    return ss;
}

static void json_expect(const char *body, const char *field, const char *text)
{
    td_error err = {{0}, {0}};
    td_status st = json_both(body, &err);
    ck_assert_msg(st == TD_EINVAL, "%s: %d %s", body, st, err.message);
    ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", want \"%s\" (%s)", body,
                  err.field, field, err.message);
    ck_assert_msg(strstr(err.message, text), "%s: message \"%s\" lacks \"%s\"", body, err.message,
                  text);
}

/* A malformed body: 400 at byte off, the message saying why. */
static void json_malformed(const char *body, long off, const char *why)
{
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    td_status st = parse_all_ways(&d, body, strlen(body), NULL, &err);
    ck_assert_msg(st == TD_EMALFORMED, "%s: %d %s", body, st, err.message);
    char want[64];
    snprintf(want, sizeof want, "malformed JSON at byte %ld: ", off);
    ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "%s: \"%s\", want \"%s\"", body,
                  err.message, want);
    ck_assert_msg(strstr(err.message, why), "%s: \"%s\" lacks \"%s\"", body, err.message, why);
}

/* One number as X[0][1] of {"X": [[0, <text>]]}: the float32 (float)strtod gives. */
static float json_number(const char *text)
{
    char body[512];
    snprintf(body, sizeof body, "{\"X\": [[0, %s], [1,%s]]}", text, text);
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    ck_assert_msg(parse_all_ways(&d, body, strlen(body), NULL, &err) == TD_OK, "%s: %s", text,
                  err.message);
    float f = d.X[1];
    ck_assert_msg(memcmp(&d.X[1], &d.X[3], 4) == 0, "%s", text);
    td_dataset_buf_free(&d);
    return f;
}

static void expect_f32(const char *text)
{
    float want = (float)strtod(text, NULL), got = json_number(text), direct;
    ck_assert_msg(memcmp(&got, &want, 4) == 0, "%s: got %a, want %a", text, (double)got,
                  (double)want);
    ck_assert_int_eq(td_parse_f32(text, strlen(text), &direct, NULL), 0);
    ck_assert_msg(memcmp(&direct, &want, 4) == 0, "%s: td_parse_f32 %a", text, (double)direct);
}

/* ---- numbers ------------------------------------------------------------------------ */

START_TEST(number_forms)
{
    static const char *const forms[] = {"0",
                                        "-0",
                                        "0.0",
                                        "-0.0",
                                        "0e0",
                                        "-0E-5",
                                        "1",
                                        "-1",
                                        "7",
                                        "10",
                                        "123456789",
                                        "1.5",
                                        "-2.25",
                                        "0.1",
                                        "0.2",
                                        "0.3",
                                        "1e3",
                                        "1E3",
                                        "1e+3",
                                        "1e-3",
                                        "1E-03",
                                        "2.5e10",
                                        "-7.125e-7",
                                        "0.000001",
                                        "0.0000000000000000000001234",
                                        "123456789012345678901234567890",
                                        "1234567890123456789",
                                        "12345678901234567890",
                                        "9007199254740993",
                                        "9007199254740992",
                                        "0.8444218515250481",
                                        "0.13436424411240122",
                                        "-0.25891675029296335",
                                        "1.0000000000000000000000001",
                                        "3.4028234663852886e+38",
                                        "3.4028235e38",
                                        "-3.4028235e38",
                                        "3.40282356e38",
                                        "1.17549435e-38",
                                        "1.1754942e-38",
                                        "1.4e-45",
                                        "1.401298464324817e-45",
                                        "7e-46",
                                        "7.006492321624086e-46",
                                        "7.006492321624087e-46",
                                        "-1e-45",
                                        "1e-50",
                                        "-1e-50",
                                        "1e-400",
                                        "4.9406564584124654e-324",
                                        "2.2250738585072014e-308",
                                        "16777217",
                                        "16777216.5",
                                        "33554435",
                                        "0.50000002980232238769531249",
                                        "0.500000029802322387695312500001",
                                        "1.00000005960464477539062",
                                        "1.000000059604644775390625",
                                        "1.0000000596046448",
                                        "4.0000002384185791015625",
                                        "3.9999997615814208984375",
                                        "1e22",
                                        "1e23",
                                        "8.589973e9",
                                        "5e-324",
                                        "1e-7",
                                        "-9.999999e-39"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
        expect_f32(forms[i]);
    /* -0 keeps its sign; tiny values flush as float32 does */
    float z = json_number("-0");
    ck_assert(z == 0 && signbit(z));
    ck_assert(signbit(json_number("-1e-50")));
    ck_assert(json_number("1e-50") == 0);
    ck_assert(json_number("1.4e-45") > 0); /* the smallest denormal */

    /* random decimals of every length and exponent, and float32 midpoints written with
     * 17 to 30 digits: all as (float)strtod */
    uint64_t r = 88172645463325252ull;
    char buf[96];
    for (int it = 0; it < 200000; it++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        uint32_t bits = (uint32_t)r & 0x7f7fffffu;
        float f;
        memcpy(&f, &bits, 4);
        double v = (double)f;
        if (it % 3 == 0) v += (double)(nextafterf(f, INFINITY) - f) / 2; /* a midpoint */
        int digits = 1 + (int)((r >> 40) % 30);
        snprintf(buf, sizeof buf, "%s%.*e", (r >> 33) & 1 ? "-" : "", digits, v);
        float want = (float)strtod(buf, NULL), got;
        ck_assert_int_eq(td_parse_f32(buf, strlen(buf), &got, NULL), 0);
        ck_assert_msg(memcmp(&got, &want, 4) == 0, "%s: got %a want %a", buf, (double)got,
                      (double)want);
    }
    /* not JSON numbers */
    static const char *const bad[] = {"",    "-",    "+1",    "01",  "1.",  ".5",  "-.5", "1e",
                                      "1e+", "0x10", "1.5.3", "1-2", "inf", "NaN", " 1",  "1 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float f;
        ck_assert_msg(td_parse_f32(bad[i], strlen(bad[i]), &f, NULL) == -1, "%s", bad[i]);
    }
}
END_TEST

START_TEST(number_limits_and_literals)
{
    json_expect("{\"X\": [[1e39]]}", "X[0][0]", "X[0][0] = 1e+39 is outside the float32 range");
    json_expect("{\"X\": [[1, -3.4028236e38]]}", "X[0][1]", "outside the float32 range");
    json_expect("{\"X\": [[1e999]]}", "X[0][0]", "not finite");
    json_expect("{\"X\": [[1], [-1e400]]}", "X[1][0]", "not finite");
    static const struct {
        const char *lit, *kind;
    } lits[] = {{"NaN", "is NaN"},
                {"nan", "is NaN"},
                {"NAN", "is NaN"},
                {"-NaN", "is NaN"},
                {"+nan", "is NaN"},
                {"Infinity", "is Infinity"},
                {"+Infinity", "is Infinity"},
                {"inf", "is Infinity"},
                {"INFINITY", "is Infinity"},
                {"-Infinity", "is -Infinity"},
                {"-inf", "is -Infinity"},
                {"-INF", "is -Infinity"}};
    for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"X\": [[1, 2], [3, %s]]}", lits[i].lit);
        json_expect(body, "X[1][1]", lits[i].kind);
        snprintf(body, sizeof body, "{\"X\": [[1]], \"Y\": [[%s]]}", lits[i].lit);
        json_expect(body, "Y[0][0]", lits[i].kind);
    }
    json_expect("{\"X\": [[1]], \"y\": [NaN]}", "y[0]", "y[0] is NaN");
    json_expect("{\"X\": NaN}", "X", "got NaN");
    json_expect("{\"X\": [[1]], \"name\": -Infinity}", "name", "must be a string, got -Infinity");
    /* labels as class names: strings from y[0] on, the same errors both ways; the classes
     * sorted by code point, also when a name is cut across pieces */
    json_expect("{\"X\": [[1], [2]], \"y\": [\"a\", 1]}", "y[1]", "must be a class name");
    json_expect("{\"X\": [[1], [2]], \"y\": [\"a\", NaN]}", "y[1]", "must be a class name");
    json_expect("{\"X\": [[1], [2]], \"y\": [\"a\", \"\"]}", "y[1]", "1 to 256 bytes");
    {
        const char *named = "{\"X\": [[1], [2], [3]], \"y\": [\"\\u00e9t\\u00e9\", \"b\", \"b\"]}";
        td_dataset_buf nd, nt;
        td_error ne = {{0}, {0}};
        ck_assert_int_eq(json_both(named, &ne), TD_OK);
        ck_assert_int_eq(parse_all_ways(&nd, named, strlen(named), NULL, &ne), TD_OK);
        ck_assert_int_eq(td_json_dataset_parse(&nt, named, strlen(named), &ne), TD_OK);
        td_dataset_buf *both[2] = {&nd, &nt};
        for (int k = 0; k < 2; k++) {
            ck_assert_int_eq(both[k]->n_classes, 2);
            ck_assert_str_eq(both[k]->classes[0], "b");
            ck_assert_str_eq(both[k]->classes[1], "\xc3\xa9t\xc3\xa9");
            ck_assert_int_eq(both[k]->y[0], 1);
            ck_assert_int_eq(both[k]->y[2], 0);
            td_dataset_buf_free(both[k]);
        }
    }
    /* labels: integral doubles in int32 */
    json_expect("{\"X\": [[1], [2]], \"y\": [0, 2147483648]}", "y[1]", "outside");
    json_expect("{\"X\": [[1], [2]], \"y\": [0, 1.0000001]}", "y[1]", "not an integer");
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    const char *ok = "{\"X\": [[1], [2], [3]], \"y\": [2.0, -2147483648, 1e1]}";
    ck_assert_int_eq(json_both(ok, &err), TD_OK);
    ck_assert_int_eq(parse_all_ways(&d, ok, strlen(ok), NULL, &err), TD_OK);
    ck_assert_int_eq(d.y[0], 2);
    ck_assert_int_eq(d.y[1], INT32_MIN);
    ck_assert_int_eq(d.y[2], 10);
    td_dataset_buf_free(&d);
    /* a number of 4096 bytes is read; one byte more is refused */
    size_t n = 4096;
    char *big = malloc(n + 64);
    strcpy(big, "{\"X\": [[0.");
    size_t at = strlen(big);
    memset(big + at, '0', n - 3);
    big[at + n - 3] = '1';
    strcpy(big + at + n - 2, "]]}");
    ck_assert_int_eq(parse_all_ways(&d, big, strlen(big), NULL, &err), TD_OK);
    ck_assert(d.X[0] == 0.0f);
    td_dataset_buf_free(&d);
    memmove(big + at + 1, big + at, strlen(big + at) + 1);
    big[at] = '0';
    json_malformed(big, 8, "longer than 4096 bytes");
    free(big);
}
END_TEST

/* ---- errors: element paths and precedence --------------------------------------- */

START_TEST(errors_name_the_element)
{
    /* the expectations of test_json.c, through the stream, every way, and the same as
     * the tree reader's */
    json_expect("{\"X\": [[1, 2], [3, 4], [5, \"6\"]]}", "X[2][1]",
                "must be a number, got a string");
    json_expect("{\"X\": [[1, 2], [3]]}", "X[1]", "X[1] has 1 value, expected 2");
    json_expect("{\"X\": [[1, 2], [3, 4, 5]]}", "X[1]", "has 3 values, expected 2");
    json_expect("{\"X\": [[1, 2], [3, 4, 5, [6], \"x\"]]}", "X[1]", "has 5 values, expected 2");
    json_expect("{\"X\": [[1, null]]}", "X[0][1]", "got null");
    json_expect("{\"X\": [[true]]}", "X[0][0]", "got true");
    json_expect("{\"X\": [[1], [[2]]]}", "X[1][0]", "got an array");
    json_expect("{\"X\": [[1], [{\"a\": [2]}]]}", "X[1][0]", "got an object");
    json_expect("{\"X\": [[1], 2]}", "X[1]", "must be an array of numbers");
    json_expect("{\"X\": [[1], {\"a\": [1]}, [3]]}", "X[1]", "got an object");
    json_expect("{\"X\": []}", "X", "must not be empty");
    json_expect("{\"X\": [[]]}", "X", "X[0] is empty");
    json_expect("{\"X\": [5, [1]]}", "X", "X[0] is a number");
    json_expect("{\"X\": 5}", "X", "array of rows");
    json_expect("{\"X\": {\"a\": [[1]]}}", "X", "got an object");
    json_expect("{\"y\": [1]}", "X", "X is required");
    json_expect("{\"X\": null, \"y\": [1]}", "X", "X is required");
    json_expect("{\"X\": [[1], [2], [3], [4]], \"y\": [0, 1, 2, 1.5]}", "y[3]",
                "y[3] = 1.5 is not an integer");
    json_expect("{\"X\": [[1], [2], [3], [4]], \"y\": [0, 1, \"2\", 1]}", "y[2]", "got a string");
    json_expect("{\"X\": [[1], [2]], \"y\": [0]}", "y", "y has 1 entries, but X has 2 rows");
    json_expect("{\"X\": [[1], [2]], \"y\": [[0, 1]]}", "y", "y has 1 rows, but X has 2 rows");
    json_expect("{\"X\": [[1], [2]], \"y\": [[0, 1], [1]]}", "y[1]", "has 1 value, expected 2");
    json_expect("{\"X\": [[1], [2]], \"y\": [[0], 1]}", "y[1]", "must be an array of numbers");
    json_expect("{\"X\": [[1], [2]], \"y\": [0, [1]]}", "y[1]", "got an array");
    json_expect("{\"X\": [[1], [2]], \"y\": []}", "y", "must not be empty");
    json_expect("{\"X\": [[1], [2]], \"y\": {}}", "y",
                "must be an array of numbers, got an object");
    json_expect("{\"X\": [[1], [2]], \"y\": [0, 1e10]}", "y[1]", "outside");
    json_expect("{\"X\": [[1]], \"y\": [true]}", "y[0]", "must be an integer, got true");
    json_expect("{\"X\": [[1]], \"y\": [0], \"Y\": [[1]]}", "Y", "not both");
    json_expect("{\"X\": [[1], [2]], \"Y\": [[0.5, 0.5], [0.5, -0.5]]}", "Y[1][1]", "negative");
    json_expect("{\"X\": [[1], [2]], \"Y\": [[0.5, 0.5]]}", "Y", "Y has 1 rows");
    json_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1], [1, 2]], \"pair_labels\": [1, 0]}",
                "pairs[1][1]", "outside [0, 1]");
    json_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1, 1]], \"pair_labels\": [1]}", "pairs[0]",
                "[i, j]");
    json_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1]], \"pair_labels\": [2]}", "pair_labels[0]",
                "outside [0, 1]");
    json_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1]], \"pair_labels\": [1, 0]}", "pair_labels",
                "2 entries");
    json_expect("{\"X\": [[1], [2]], \"pairs\": [[0, 1]]}", "pair_labels", "go together");
    json_expect("{\"X\": [[1], [2]], \"pair_labels\": [1]}", "pairs", "go together");
    json_expect("{\"X\": [[1]], \"x\": [[1]]}", "x", "did you mean \"X\"?");
    json_expect("{\"X\": [[1]], \"labels\": [1]}", "labels", "unknown key \"labels\"");
    json_expect("{\"X\": [[1]], \"zzzzzz\": {\"a\": [1, {\"b\": null}]}}", "zzzzzz",
                "allowed: X, y, Y, pairs, pair_labels, name");
    json_expect("{\"X\": [[1]], \"name\": 5}", "name", "must be a string");
    json_expect("{\"X\": [[1]], \"name\": [\"a\"]}", "name", "must be a string, got an array");
    json_expect("[1, 2]", "", "must be a JSON object");
    json_expect("\"X\"", "", "must be a JSON object");
    json_expect("\t-Infinity\t\t", "", "must be a JSON object"); /* the tree agrees */

    /* pairs before X: indices are checked against X's N all the same, first error first */
    json_expect("{\"pairs\": [[0, 5], [1, 1]], \"pair_labels\": [1, 0], \"X\": [[1], [2]]}",
                "pairs[0][1]", "pairs[0][1] = 5 is outside [0, 1]");
    json_expect("{\"pairs\": [[0, 1], [5, 1, 1]], \"pair_labels\": [1, 0], \"X\": [[1], [2]]}",
                "pairs[1][0]", "outside [0, 1]");
    json_expect("{\"pairs\": [[0, 1], 7], \"pair_labels\": [1, 0], \"X\": [[1], [2]]}", "pairs[1]",
                "must be an array of numbers");
    json_expect("{\"pairs\": [[0, 1], [1e10, 1]], \"pair_labels\": [1, 0], \"X\": [[1], [2]]}",
                "pairs[1][0]", "= 10000000000 is outside [0, 1]");
    json_expect("{\"pairs\": [[0, 1], [1.5, 1]], \"pair_labels\": [1, 0], \"X\": [[1], [2]]}",
                "pairs[1][0]", "not an integer");

    /* precedence: keys, X required, y and Y, then X, y, Y, pairs, pair_labels, name;
     * a later key error wins over an earlier value error */
    json_expect("{\"y\": [1.5], \"X\": [[\"a\"]]}", "X[0][0]", "got a string");
    json_expect("{\"X\": [[\"a\"]], \"y\": [1], \"Y\": [[1]]}", "Y", "not both");
    json_expect("{\"X\": [[\"a\"]], \"oops\": 1}", "oops", "unknown key");
    json_expect("{\"y\": [1], \"X\": [[1]], \"X\": [[2]]}", "X", "given twice");
    json_expect("{\"X\": [[1]], \"name\": 5, \"y\": [0.5]}", "y[0]", "not an integer");
    json_expect("{\"name\": \"a\\u0001b\", \"X\": [[1]]}", "name", "control characters");
}
END_TEST

START_TEST(malformed_offsets)
{
    json_malformed("{\"X\": [[1, NaNa]]}", 11, "not a JSON value");
    json_malformed("{\"X\": [[1, 2],, [3, 4]]}", 14, "expected a value");
    json_malformed("{} x", 3, "unexpected data after the JSON value");
    json_malformed("  \n", 3, "the body is empty");
    json_malformed("", 0, "the body is empty");
    json_malformed("{\"X\": [[1, 2], [3, 4]", 21, "unexpected end of input");
    json_malformed("{\"X\": [[1, 2]], \"name\": \"abc", 28, "unexpected end of input");
    json_malformed("{\"X\" [[1]]}", 5, "expected ':'");
    json_malformed("{\"X\": [[1],]}", 11, "expected a value");
    json_malformed("{\"X\": [[1]],}", 12, "expected a key");
    json_malformed("{\"X\": [[1] 2]}", 11, "expected ',' or ']'");
    json_malformed("{\"X\": [[1]] \"y\"}", 12, "expected ',' or '}'");
    json_malformed("{\"X\": [[tru]]}", 8, "not a JSON value");
    json_malformed("{\"X\": [[1e]]}", 10, "invalid number");
    json_malformed("{\"X\": [[1.5.3]]}", 11, "invalid number");
    json_malformed("{\"X\": [[+1]]}", 8, "not a JSON value");
    json_malformed("{\"X\": [[1]], NaN: 1}", 13, "expected a key");
    /* where cJSON is lax, the stream is not: these are not JSON */
    json_malformed("{\"X\": [[01]]}", 9, "invalid number");
    json_malformed("{\"X\": [[1.]]}", 10, "invalid number");
    json_malformed("{\"X\": [[-.5]]}", 9, "invalid number");
    json_malformed("{\"X\": [[1]], \"name\": \"a\tb\"}", 23, "control character");
    json_malformed("{\"X\": [[1]], \"name\": \"\\u12G4\"}", 26, "four hex digits");
    json_malformed("{\"X\": [[1]], \"name\": \"bad\\q\"}", 26, "invalid escape");
    json_malformed("{\"X\": [[1]], \"name\": \"\\ud800x\"}", 28, "followed by a low one");
    json_malformed("{\"X\": [[1]], \"name\": \"\\ud800\\u0041\"}", 33, "followed by a low one");
    json_malformed("{\"X\": [[1]], \"name\": \"\\udc00\"}", 27, "a low surrogate");
    json_malformed("\xEF\xBB", 0, "expected a value");
    /* the near text comes from the body at the offset, whatever the pieces */
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    const char *b = "{\"X\": [[1, 2],, [3, 4]], \"y\": [0, 1]}";
    parse_all_ways(&d, b, strlen(b), NULL, &err);
    ck_assert_str_eq(err.message,
                     "malformed JSON at byte 14: expected a value near "
                     "\", [3, 4]], ?y?: \"");
    /* nesting: 1000 levels are fine (inside an unknown key, refused as a key), 1001 not */
    size_t n = 1000;
    char *deep = malloc(2 * n + 64);
    strcpy(deep, "{\"deep\": ");
    size_t at = strlen(deep);
    memset(deep + at, '[', n - 1);
    memset(deep + at + n - 1, ']', n - 1);
    strcpy(deep + at + 2 * n - 2, "}");
    json_expect(deep, "deep", "unknown key");
    memmove(deep + at + 1, deep + at, strlen(deep + at) + 1);
    deep[at] = '[';
    memmove(deep + at + n + 1, deep + at + n, strlen(deep + at + n) + 1);
    deep[at + n] = ']';
    json_malformed(deep, (long)(at + n - 1), "nested deeper than 1000 levels");
    free(deep);
}
END_TEST

/* ---- pieces ------------------------------------------------------------------------- */

/* A dataset body with every kind of member and number, written as a client would. */
static char *sample_body(int N, int D, unsigned seed, size_t *len)
{
    size_t cap = (size_t)N * (size_t)D * 32 + 4096;
    char *b = malloc(cap);
    size_t n = 0;
    uint64_t r = 0x9E3779B97F4A7C15ull * (seed + 1);
#define PUT(...) (n += (size_t)snprintf(b + n, cap - n, __VA_ARGS__))
    PUT("{\"name\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\/\", \"X\": [");
    for (int i = 0; i < N; i++) {
        PUT("%s[", i ? ", " : "");
        for (int j = 0; j < D; j++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            double v = ((double)(r >> 11) / 9007199254740992.0 - 0.5) * 10;
            switch (r % 7) {
            case 0: PUT("%s%.17g", j ? ", " : "", v); break;
            case 1: PUT("%s%.3e", j ? ",\n" : "", v * 1e-9); break;
            case 2: PUT("%s%d", j ? "," : "", (int)(v * 100)); break;
            case 3: PUT("%s%.16g", j ? " ,\t" : "", v * 1e20); break;
            case 4: PUT("%s-0", j ? ", " : ""); break;
            case 5: PUT("%s%.9g", j ? ", " : "", (double)(float)v); break;
            default: PUT("%s%.1fE+2", j ? ", " : "", v); break;
            }
        }
        PUT("]");
    }
    PUT("], \"y\": [");
    for (int i = 0; i < N; i++)
        PUT("%s[%d, %d.0]", i ? "," : "", i % 5, i % 3);
    PUT("],\r\n \"pairs\": [");
    for (int i = 0; i < N; i++)
        PUT("%s[%d, %d]", i ? ", " : "", i, (i * 7) % N);
    PUT("], \"pair_labels\": [");
    for (int i = 0; i < N; i++)
        PUT("%s%s", i ? ", " : "", i % 3 == 0 ? "true" : i % 3 == 1 ? "0" : "false");
    PUT("]}\n");
#undef PUT
    *len = n;
    return b;
}

START_TEST(pieces_give_the_same_arrays)
{
    for (unsigned seed = 0; seed < 3; seed++) {
        size_t len;
        char *body = sample_body(40 + (int)seed * 13, 9, seed, &len);
        td_dataset_buf d;
        td_error err = {{0}, {0}};
        ck_assert_msg(json_both(body, &err) == TD_OK, "%s", err.message);
        ck_assert_int_eq(parse_all_ways(&d, body, len, NULL, &err), TD_OK);
        ck_assert_int_eq(d.ds.D, 9);
        ck_assert_int_eq(d.ds.y_cols, 2);
        ck_assert_int_eq(d.ds.P, d.ds.N);
        ck_assert_str_eq(d.name, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" /");
        /* every value as (float)strtod of its text */
        const char *p = strstr(body, "\"X\": [") + 6;
        for (int64_t k = 0; k < d.ds.N * d.ds.D; k++) {
            while (*p == '[' || *p == ',' || *p == ' ' || *p == '\n' || *p == '\t' || *p == ']')
                p++;
            char *end;
            float want = (float)strtod(p, &end);
            ck_assert_msg(memcmp(&want, &d.X[k], 4) == 0, "X value %lld (%.30s)", (long long)k, p);
            p = end;
        }
        td_dataset_buf_free(&d);
        /* the same body with an error near the end: the same error every way */
        char *bad = strdup(body);
        char *pl = strstr(bad, "\"pair_labels\": [") + 16;
        memcpy(pl, "2   ", 4); /* was true */
        td_error e1 = {{0}, {0}};
        ck_assert_int_eq(json_both(bad, &e1), TD_EINVAL);
        ck_assert_str_eq(e1.field, "pair_labels[0]");
        free(bad);
        free(body);
    }
    /* a body read one byte at a time with a size hint far too small or too large */
    size_t len;
    char *body = sample_body(200, 30, 7, &len);
    td_dataset_buf a, b, c;
    td_error err;
    ck_assert_int_eq(parse_in(&a, body, len, WHOLE, 0, NULL, &err), TD_OK);
    td_dstream *s = td_dstream_json(10);
    for (size_t i = 0; i < len; i++)
        td_dstream_feed(s, body + i, 1);
    ck_assert_int_eq(td_dstream_finish(s, &b, &err), TD_OK);
    td_dstream_destroy(s);
    s = td_dstream_json(len * 100);
    td_dstream_feed(s, body, len);
    ck_assert_uint_eq(td_dstream_bytes(s), len);
    ck_assert_int_eq(td_dstream_finish(s, &c, &err), TD_OK);
    td_dstream_destroy(s);
    expect_same_buf(&a, &b, "hint 10");
    expect_same_buf(&a, &c, "hint 100x");
    td_dataset_buf_free(&a);
    td_dataset_buf_free(&b);
    td_dataset_buf_free(&c);
    free(body);
    /* a parser dropped half-way frees everything (checked under ASan) */
    body = sample_body(50, 5, 1, &len);
    s = td_dstream_json(len);
    td_dstream_feed(s, body, len / 2);
    td_dstream_destroy(s);
    free(body);
}
END_TEST

START_TEST(names_keys_and_strings)
{
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    /* escapes of every kind in a name; / ; \u0000 is refused (it would cut the name) */
    const char *b = "{\"X\": [[1]], \"name\": \"a\\/b\\\\c\\b\\f\\r\\t\\u0041\\u00e9\"}";
    ck_assert_int_eq(json_both(b, &err), TD_EINVAL); /* \b is a control character */
    ck_assert_str_eq(err.field, "name");
    b = "{\"X\": [[1]], \"name\": \"a\\/b\\\\c\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"}";
    ck_assert_int_eq(json_both(b, &err), TD_OK);
    ck_assert_int_eq(parse_all_ways(&d, b, strlen(b), NULL, &err), TD_OK);
    ck_assert_str_eq(d.name, "a/b\\cA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    td_dataset_buf_free(&d);
    b = "{\"X\": [[1]], \"name\": \"ab\\u0000cd\"}";
    ck_assert_int_eq(json_both(b, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "name");
    ck_assert_ptr_nonnull(strstr(err.message, "UTF-8 text without NUL"));
    /* "X\u0000zz" is not the key X (a NUL no longer cuts a string) */
    ck_assert_int_eq(json_both("{\"X\\u0000zz\": [[1]]}", &err), TD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.message, "unknown key"));
    /* a name of 256 bytes is fine, 300 is not (told with its length) */
    char big[2048];
    snprintf(big, sizeof big, "{\"X\": [[1]], \"name\": \"%0256d\"}", 0);
    ck_assert_int_eq(json_both(big, &err), TD_OK);
    snprintf(big, sizeof big, "{\"X\": [[1]], \"name\": \"%01000d\"}", 0);
    json_expect(big, "name", "name is 1000 bytes long; at most 256");
    /* a long unknown key: named (cut to the field's size) */
    snprintf(big, sizeof big, "{\"X\": [[1]], \"%0600d\": 1}", 7);
    td_status st = json_both(big, &err);
    ck_assert_int_eq(st, TD_EINVAL);
    ck_assert(strstr(err.message, "unknown key"));
    ck_assert_uint_eq(strlen(err.field), sizeof err.field - 1);
    /* strings anywhere else are only checked */
    ck_assert_int_eq(json_both("{\"X\": [[1]], \"name\": \"n\"}", &err), TD_OK);
    json_expect("{\"X\": [[1]], \"k\": [\"\\u00e9\", {\"\\\"\": \"\\ud83d\\ude00\"}]}", "k",
                "unknown key");
}
END_TEST

/* ---- CSV ---------------------------------------------------------------------------- */

static td_status csv_all_ways(td_dataset_buf *d, const char *body, const char *label,
                              const char *header, td_error *err)
{
    td_csv_opts o;
    td_status st = td_csv_opts_parse(&o, label, header, err);
    if (st) return st;
    st = parse_all_ways(d, body, strlen(body), &o, err);
    /* and td_csv_dataset_parse (the body in one piece) */
    td_dataset_buf b;
    td_error e = {{0}, {0}};
    td_status sb = td_csv_dataset_parse(&b, body, strlen(body), &o, "csv", &e);
    ck_assert_int_eq(sb, st);
    if (st == TD_OK) {
        expect_same_buf(d, &b, body);
        td_dataset_buf_free(&b);
    } else {
        ck_assert_str_eq(e.message, err->message);
    }
    return st;
}

static void csv_expect(const char *body, const char *label, const char *header, const char *field,
                       const char *text)
{
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    td_status st = csv_all_ways(&d, body, label, header, &err);
    ck_assert_msg(st == TD_EINVAL, "csv %s: status %d", body, st);
    ck_assert_msg(strcmp(err.field, field) == 0, "csv %s: field \"%s\", want \"%s\" (%s)", body,
                  err.field, field, err.message);
    ck_assert_msg(strstr(err.message, text), "csv %s: \"%s\" lacks \"%s\"", body, err.message,
                  text);
}

START_TEST(csv_quoting_and_line_ends)
{
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    /* CRLF, quoted fields with doubled quotes and a comma, no trailing newline */
    ck_assert_int_eq(csv_all_ways(&d,
                                  "\"f \"\"1\"\"\",\"a,b\",label\r\n1.5,\"-2\",0\r\n3, 4 ,\"2\"",
                                  NULL, "true", &err),
                     TD_OK);
    ck_assert_int_eq(d.ds.N, 2);
    ck_assert_int_eq(d.ds.D, 2);
    ck_assert_float_eq(d.X[1], -2.0f);
    ck_assert_float_eq(d.X[3], 4.0f);
    ck_assert_int_eq(d.y[1], 2);
    td_dataset_buf_free(&d);
    /* LF, CR alone, CRLF mixed; blank and blank-looking lines; a BOM; label first */
    ck_assert_int_eq(csv_all_ways(&d,
                                  "\xEF\xBB\xBF"
                                  "1,0.5,0.25\n\n  \t\n2,1,2\r3,4,5\r\n\r\n",
                                  "first", NULL, &err),
                     TD_OK);
    ck_assert_int_eq(d.ds.N, 3);
    ck_assert_int_eq(d.y[2], 3);
    ck_assert_float_eq(d.X[5], 5.0f);
    td_dataset_buf_free(&d);
    /* a quoted field spanning lines in the header, and numbers as strtod reads them */
    ck_assert_int_eq(csv_all_ways(&d, "\"a\nb\",c\n0x10,+1\n.5,5.\n1e-50,0.13436424411240122\n",
                                  "none", "true", &err),
                     TD_OK);
    ck_assert_int_eq(d.ds.N, 3);
    ck_assert_float_eq(d.X[0], 16.0f);
    ck_assert_float_eq(d.X[1], 1.0f);
    ck_assert_float_eq(d.X[2], 0.5f);
    ck_assert(d.X[4] == 0.0f);
    ck_assert(d.X[5] == (float)strtod("0.13436424411240122", NULL));
    td_dataset_buf_free(&d);
    /* float32's extremes as numpy prints them are in range, as in JSON: 3.4028235e38
     * (and 3.40282356e38) round to FLT_MAX, not past it */
    ck_assert_int_eq(csv_all_ways(&d, "3.4028235e38,-3.40282356e38,1e-45,0\n", NULL, NULL, &err),
                     TD_OK);
    ck_assert(d.X[0] == FLT_MAX && d.X[1] == -FLT_MAX && d.X[2] > 0.0f);
    td_dataset_buf_free(&d);
    /* the label is read as strtod does: 1.0000000000000001 is 1 */
    ck_assert_int_eq(csv_all_ways(&d, "1.0000000000000001,2,3\n", "first", NULL, &err), TD_OK);
    ck_assert_int_eq(d.y[0], 1);
    td_dataset_buf_free(&d);
    ck_assert_int_eq(csv_all_ways(&d, "2,3,  1.0000000000000001  \n", NULL, NULL, &err), TD_OK);
    ck_assert_int_eq(d.y[0], 1);
    td_dataset_buf_free(&d);
    /* the BOM only at the very start */
    csv_expect("1,2\n\xEF\xBB\xBF"
               "3,4\n",
               "none", NULL, "line 2, column 1", "not a number");

    /* errors say where */
    csv_expect("1,2,0\n3,x,1\n", NULL, NULL, "line 2, column 2",
               "line 2, column 2: \"x\" is not a number");
    csv_expect("1,2,0\n3,4,1\n5,6,1.5\n", NULL, NULL, "line 3, column 3",
               "label 1.5 is not an integer");
    csv_expect("1,2,0\n3,4\n", NULL, NULL, "line 2", "line 2 has 2 columns, expected 3");
    csv_expect("a,b,c\n1,2\n", NULL, "true", "line 2", "expected 3 (like line 1, the header)");
    csv_expect("1,2,0\r\n3,,1\r\n", NULL, NULL, "line 2, column 2", "empty field");
    csv_expect("1,2,\n", NULL, NULL, "line 1, column 3", "empty field");
    csv_expect("1,2,", NULL, NULL, "line 1, column 3", "empty field");
    csv_expect("1,\"2,0\n3,4,1\n", NULL, NULL, "line 1, column 2", "unterminated quoted field");
    csv_expect("1,2\"x,0\n", NULL, NULL, "line 1, column 2", "quote inside an unquoted field");
    csv_expect("  \"1\",2,0\n", NULL, NULL, "line 1, column 1", "quote inside an unquoted field");
    csv_expect("1,\"2\"x,0\n", NULL, NULL, "line 1, column 2", "after a closing quote");
    csv_expect("1,\"a\nb\"x,0\n", NULL, NULL, "line 2, column 2", "after a closing quote");
    csv_expect("a,b,c\n1,2,0\n", NULL, NULL, "line 1, column 1", "header=true");
    csv_expect("1,nan,0\n", NULL, NULL, "line 1, column 2", "not a finite number");
    csv_expect("1,1e999,0\n", NULL, NULL, "line 1, column 2", "\"1e999\" is not a finite number");
    csv_expect("1,1e39,0\n", NULL, NULL, "line 1, column 2", "float32");
    csv_expect("1,3.4028236e38,0\n", NULL, NULL, "line 1, column 2",
               "3.4028236e+38 is outside the float32 range (|x| <= 3.4028235e+38)");
    csv_expect("1,-3.40282357e38,0\n", NULL, NULL, "line 1, column 2", "float32 range");
    csv_expect("1,2,2147483648\n", NULL, NULL, "line 1, column 3", "not an integer class index");
    csv_expect("\"a\nb\",c,label\n1,x,0\n", NULL, "true", "line 3, column 2",
               "\"x\" is not a number");
    csv_expect("1\n2\n", NULL, NULL, "label_column", "at least 2");
    csv_expect("a,b\n", NULL, "true", "", "no data rows");
    csv_expect("", NULL, NULL, "", "no data rows");
    csv_expect("\n \n\r\n", NULL, NULL, "", "no data rows");
    csv_expect("1,2", "middle", NULL, "label_column", "last, first, none");
    csv_expect("1,2", NULL, "yes", "header", "true or false");
    /* class names and header names, in pieces of every size (csv_all_ways) */
    ck_assert_int_eq(csv_all_ways(&d, "f1,\"f 2\",kind\n1,2,\"b, c\"\n3,4,a\n5,6,\"b, c\"\n", NULL,
                                  "true", &err),
                     TD_OK);
    ck_assert_int_eq(d.n_classes, 2);
    ck_assert_str_eq(d.classes[0], "a");
    ck_assert_str_eq(d.classes[1], "b, c");
    ck_assert_int_eq(d.y[0], 1);
    ck_assert_int_eq(d.y[1], 0);
    ck_assert_int_eq(d.n_columns, 2);
    ck_assert_str_eq(d.columns[1], "f 2");
    td_dataset_buf_free(&d);
    ck_assert_int_eq(csv_all_ways(&d, "kind,f1\nx,1\ny,2\n", "kind", "true", &err), TD_OK);
    ck_assert_int_eq(d.ds.D, 1);
    ck_assert_str_eq(d.columns[0], "f1");
    ck_assert_str_eq(d.classes[1], "y");
    td_dataset_buf_free(&d);
    /* fields: 127 bytes may be a number, 128 are not; blanks around do not count */
    char f[1024];
    snprintf(f, sizeof f, "1,%0127d,0\n", 5);
    ck_assert_int_eq(csv_all_ways(&d, f, NULL, NULL, &err), TD_OK);
    td_dataset_buf_free(&d);
    snprintf(f, sizeof f, "1,%0128d,0\n", 5);
    csv_expect(f, NULL, NULL, "line 1, column 2", "...\" is not a number");
    snprintf(f, sizeof f, "1,%400s,0\n", "7");
    ck_assert_int_eq(csv_all_ways(&d, f, NULL, NULL, &err), TD_OK);
    ck_assert_float_eq(d.X[1], 7.0f);
    td_dataset_buf_free(&d);
    snprintf(f, sizeof f, "1,7%400s,0\n", "");
    ck_assert_int_eq(csv_all_ways(&d, f, NULL, NULL, &err), TD_OK);
    td_dataset_buf_free(&d);
    /* the name's rules */
    td_csv_opts o = td_csv_opts_default();
    ck_assert_int_eq(td_csv_dataset_parse(&d, "1,0\n", 4, &o, "a\nb", &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "name");
}
END_TEST

START_TEST(csv_big_in_pieces)
{
    /* 3000 rows of 20 features written as Python's csv module would (repr floats) */
    size_t cap = 3000 * 20 * 26 + 64, n = 0;
    char *b = malloc(cap);
    uint64_t r = 1;
    for (int i = 0; i < 3000; i++) {
        for (int j = 0; j < 20; j++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            n += (size_t)snprintf(b + n, cap - n, "%.17g,", (double)(r >> 11) / 9007199254740992.0);
        }
        n += (size_t)snprintf(b + n, cap - n, "%d%s", i % 10, i % 2 ? "\r\n" : "\n");
    }
    td_dataset_buf d;
    td_error err = {{0}, {0}};
    ck_assert_int_eq(csv_all_ways(&d, b, NULL, NULL, &err), TD_OK);
    ck_assert_int_eq(d.ds.N, 3000);
    ck_assert_int_eq(d.ds.D, 20);
    ck_assert_int_eq(d.y[2999], 9);
    const char *p = b;
    for (int k = 0; k < 21; k++) {
        char *end;
        float want = (float)strtod(p, &end);
        if (k < 20) ck_assert(memcmp(&want, &d.X[k], 4) == 0);
        p = end + 1;
    }
    td_dataset_buf_free(&d);
    free(b);
}
END_TEST

/* ---- streamed request bodies (td_body_sink) -------------------------------------- */

static atomic_int g_begun, g_freed, g_ended;

typedef struct {
    uint64_t bytes, hash;
    int stop_after;
} sink_state;

static void *t_begin(void *app, const td_req *req)
{
    atomic_fetch_add(&g_begun, 1);
    sink_state *s = calloc(1, sizeof *s);
    s->hash = 1469598103934665603ull;
    const char *stop = td_req_query(req, "stop");
    s->stop_after = stop ? atoi(stop) : -1;
    return s;
}

static int t_piece(void *state, const char *data, size_t len)
{
    sink_state *s = state;
    for (size_t i = 0; i < len; i++)
        s->hash = (s->hash ^ (unsigned char)data[i]) * 1099511628211ull;
    s->bytes += len;
    return s->stop_after >= 0 && s->bytes >= (uint64_t)s->stop_after;
}

static void t_end(void *app, void *state, const td_req *req, td_resp *resp)
{
    sink_state *s = state;
    atomic_fetch_add(&g_ended, 1);
    char *j = malloc(128);
    snprintf(j, 128, "{\"bytes\":%llu,\"hash\":\"%016llx\",\"len\":%zu}",
             (unsigned long long)s->bytes, (unsigned long long)s->hash, req->body_len);
    td_resp_json(resp, 201, j);
}

static void t_free(void *state)
{
    free(state);
    atomic_fetch_add(&g_freed, 1);
}

static const td_body_sink t_sink = {t_begin, t_piece, t_end, t_free};

static void h_plain(void *app, const td_req *req, td_resp *resp)
{
    td_resp_json(resp, 200, strdup("{}"));
}

static const td_route sink_routes[] = {
    {"POST", "/sink", NULL, "application/json", 0, &t_sink, NULL},
    {"GET", "/plain", h_plain, NULL, 0, NULL, NULL},
};

static td_server *sink_server(uint64_t max_body)
{
    td_server_opts o = td_server_default_opts();
    o.listen = "127.0.0.1:0";
    o.max_body = max_body;
    o.connection_timeout_s = 10;
    td_server *s = NULL;
    td_error e = {{0}, {0}};
    ck_assert_int_eq(td_server_start(&s, &o, sink_routes, 2, NULL, &e), TD_OK);
    return s;
}

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) < want; i++)
        usleep(10000);
    ck_assert_int_ge(atomic_load(v), want);
}

START_TEST(sink_gets_the_body_in_order)
{
    atomic_store(&g_begun, 0), atomic_store(&g_freed, 0), atomic_store(&g_ended, 0);
    td_server *s = sink_server(8u << 20);
    int port = td_server_port(s);
    size_t n = 3u << 20;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)('a' + (i * 7919) % 26);
    httpc_resp r;
    ck_assert_int_eq(
        httpc_request(port, "POST", "/sink", "Content-Type: application/json", body, n, &r), 201);
    char want[128];
    snprintf(want, sizeof want, "{\"bytes\":%zu,\"hash\":\"%016llx\",\"len\":%zu}", n,
             (unsigned long long)fnv(body, n), n);
    ck_assert_str_eq(r.body, want);
    httpc_free(&r);
    /* a sink that wants no more still gets its end, with the body counted whole */
    ck_assert_int_eq(httpc_request(port, "POST", "/sink?stop=1000",
                                   "Content-Type: application/json", body, n, &r),
                     201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"len\":3145728"));
    httpc_free(&r);
    /* an empty body: begin and end all the same */
    ck_assert_int_eq(
        httpc_request(port, "POST", "/sink", "Content-Type: application/json", "", 0, &r), 201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"bytes\":0"));
    httpc_free(&r);
    /* refused before the body: never begun (415, 413 from Content-Length) */
    ck_assert_int_eq(httpc_request(port, "POST", "/sink", "Content-Type: text/plain", "x", 1, &r),
                     415);
    httpc_free(&r);
    ck_assert_int_eq(
        httpc_request(port, "POST", "/sink", "Content-Type: application/json", body, n, &r), 201);
    httpc_free(&r);
    wait_for(&g_freed, 4);
    ck_assert_int_eq(atomic_load(&g_begun), 4);
    ck_assert_int_eq(atomic_load(&g_ended), 4);
    td_server_stop(s);
    free(body);
}
END_TEST

START_TEST(sink_freed_when_client_goes_or_limit_passes)
{
    atomic_store(&g_begun, 0), atomic_store(&g_freed, 0), atomic_store(&g_ended, 0);
    td_server *s = sink_server(1u << 20);
    int port = td_server_port(s);
    /* the client goes away half-way through the body */
    int fd = httpc_connect(port);
    const char *h = "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: 500000\r\n\r\n";
    ck_assert_int_eq(httpc_send_all(fd, h, strlen(h)), 0);
    char chunk[4096];
    memset(chunk, '1', sizeof chunk);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(httpc_send_all(fd, chunk, sizeof chunk), 0);
    wait_for(&g_begun, 1);
    close(fd);
    wait_for(&g_freed, 1);
    ck_assert_int_eq(atomic_load(&g_ended), 0);

    /* a chunked body past the limit: 413, the state freed, end never called */
    fd = httpc_connect(port);
    const char *ch = "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    ck_assert_int_eq(httpc_send_all(fd, ch, strlen(ch)), 0);
    for (int i = 0; i < 400; i++) { /* 1.6 MB */
        char sz[16];
        snprintf(sz, sizeof sz, "%zx\r\n", sizeof chunk);
        ck_assert_int_eq(httpc_send_all(fd, sz, strlen(sz)), 0);
        ck_assert_int_eq(httpc_send_all(fd, chunk, sizeof chunk), 0);
        ck_assert_int_eq(httpc_send_all(fd, "\r\n", 2), 0);
        if (i == 300) /* past the limit: the state is gone before the body ends */
            wait_for(&g_freed, 2);
    }
    ck_assert_int_eq(httpc_send_all(fd, "0\r\n\r\n", 5), 0);
    char buf[512] = {0};
    ck_assert_int_gt(recv(fd, buf, sizeof buf - 1, 0), 12);
    ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 413"));
    close(fd);
    ck_assert_int_eq(atomic_load(&g_begun), 2);
    ck_assert_int_eq(atomic_load(&g_ended), 0);
    /* still serving */
    httpc_resp r;
    ck_assert_int_eq(httpc_request(port, "GET", "/plain", NULL, NULL, 0, &r), 200);
    httpc_free(&r);
    td_server_stop(s);
}
END_TEST

/* ---- the daemon ------------------------------------------------------------------- */

static char *conf_file(const char *text)
{
    char *path = strdup("/tmp/traind-stream-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(daemon_streams_big_bodies)
{
    char *conf = conf_file("max_body_mb = 64\nworkers = 1\n");
    const char *args[] = {"--config", conf, NULL};
    httpc_daemon d;
    int port = httpc_daemon_start(&d, NULL, args, NULL);
    ck_assert_msg(port > 0, "daemon did not start");

    /* 4000 x 256 as Python writes it: ~20 MB of text for 4 MB of float32 */
    int N = 4000, D = 256;
    size_t cap = (size_t)N * D * 24 + 1024, n = 0;
    char *body = malloc(cap);
    uint64_t r = 42;
    n += (size_t)snprintf(body + n, cap - n, "{\"X\": [");
    for (int i = 0; i < N; i++) {
        n += (size_t)snprintf(body + n, cap - n, "%s[", i ? ", " : "");
        for (int j = 0; j < D; j++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            n += (size_t)snprintf(body + n, cap - n, "%s%.17g", j ? ", " : "",
                                  (double)(r >> 11) / 9007199254740992.0);
        }
        n += (size_t)snprintf(body + n, cap - n, "]");
    }
    n += (size_t)snprintf(body + n, cap - n, "], \"y\": [");
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(body + n, cap - n, "%s%d", i ? ", " : "", i % 10);
    n += (size_t)snprintf(body + n, cap - n, "]}");
    long before = httpc_proc_kb(d.pid, "VmHWM");
    httpc_resp resp;
    ck_assert_int_eq(httpc_request(port, "POST", "/v1/datasets", "Content-Type: application/json",
                                   body, n, &resp),
                     201);
    ck_assert_ptr_nonnull(strstr(resp.body, "\"n_samples\":4000,\"n_features\":256"));
    httpc_free(&resp);
    long grew = httpc_proc_kb(d.pid, "VmHWM") - before;
    /* the float32 matrix is 4 MB; the text (20 MB) is never held */
    ck_assert_msg(grew * 1024 < (long)n / 2, "peak grew by %ld KiB for a %zu-byte body", grew, n);

    /* a malformed body far in: 400 with its offset */
    body[n - 5] = 'x';
    ck_assert_int_eq(httpc_request(port, "POST", "/v1/datasets", "Content-Type: application/json",
                                   body, n, &resp),
                     400);
    char want[64];
    snprintf(want, sizeof want, "malformed JSON at byte %zu", n - 5);
    ck_assert_msg(strstr(resp.body, want), "%s", resp.body);
    httpc_free(&resp);
    /* CSV streams too */
    const char *csv = "1,2,0\n3,4,1\n";
    ck_assert_int_eq(httpc_request(port, "POST", "/v1/datasets?label_column=last&name=c",
                                   "Content-Type: text/csv", csv, strlen(csv), &resp),
                     201);
    ck_assert_ptr_nonnull(strstr(resp.body, "\"name\":\"c\",\"n_samples\":2"));
    httpc_free(&resp);
    ck_assert_int_eq(httpc_request(port, "POST", "/v1/datasets?label_column=middle",
                                   "Content-Type: text/csv", csv, strlen(csv), &resp),
                     422);
    ck_assert_ptr_nonnull(strstr(resp.body, "\"field\":\"label_column\""));
    httpc_free(&resp);
    free(body);
    api_stop(&d);
    unlink(conf);
    free(conf);
}
END_TEST

START_TEST(daemon_413_without_growing)
{
    char *conf = conf_file("max_body_mb = 2\nworkers = 1\n");
    const char *args[] = {"--config", conf, NULL};
    httpc_daemon d;
    int port = httpc_daemon_start(&d, NULL, args, NULL);
    ck_assert_msg(port > 0, "daemon did not start");
    long before = httpc_proc_kb(d.pid, "VmHWM");
    /* 12 MB of a plausible dataset, chunked (no Content-Length to refuse it by) */
    int fd = httpc_connect(port);
    const char *h = "POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    ck_assert_int_eq(httpc_send_all(fd, h, strlen(h)), 0);
    char piece[8192];
    size_t k = 0;
    while (k + 10 < sizeof piece)
        k += (size_t)snprintf(piece + k, sizeof piece - k, "[0.123456, ");
    const char *head = "{\"X\": [";
    char sz[32];
    snprintf(sz, sizeof sz, "%zx\r\n", strlen(head));
    ck_assert_int_eq(httpc_send_all(fd, sz, strlen(sz)), 0);
    ck_assert_int_eq(httpc_send_all(fd, head, strlen(head)), 0);
    ck_assert_int_eq(httpc_send_all(fd, "\r\n", 2), 0);
    for (size_t sent = 0; sent < (12u << 20); sent += k) {
        snprintf(sz, sizeof sz, "%zx\r\n", k);
        ck_assert_int_eq(httpc_send_all(fd, sz, strlen(sz)), 0);
        ck_assert_int_eq(httpc_send_all(fd, piece, k), 0);
        ck_assert_int_eq(httpc_send_all(fd, "\r\n", 2), 0);
    }
    ck_assert_int_eq(httpc_send_all(fd, "0\r\n\r\n", 5), 0);
    char buf[1024] = {0};
    ck_assert_int_gt(recv(fd, buf, sizeof buf - 1, 0), 12);
    ck_assert_msg(strstr(buf, "HTTP/1.1 413") && strstr(buf, "payload_too_large"), "%s", buf);
    close(fd);
    long grew = httpc_proc_kb(d.pid, "VmHWM") - before;
    ck_assert_msg(grew < 6 * 1024, "peak grew by %ld KiB for a 12 MB body over a 2 MB limit", grew);
    /* with a Content-Length: refused before the body */
    httpc_resp r;
    char *big = calloc(1, 3u << 20);
    memset(big, ' ', 3u << 20);
    ck_assert_int_eq(httpc_request(port, "POST", "/v1/datasets", "Content-Type: application/json",
                                   big, 3u << 20, &r),
                     413);
    httpc_free(&r);
    free(big);
    api_stop(&d);
    unlink(conf);
    free(conf);
}
END_TEST

Suite *suite_stream(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_create("parser");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, number_forms);
    tcase_add_test(tc, number_limits_and_literals);
    tcase_add_test(tc, errors_name_the_element);
    tcase_add_test(tc, malformed_offsets);
    tcase_add_test(tc, pieces_give_the_same_arrays);
    tcase_add_test(tc, names_keys_and_strings);
    tcase_add_test(tc, csv_quoting_and_line_ends);
    tcase_add_test(tc, csv_big_in_pieces);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("http");
    tcase_set_timeout(th, 120);
    tcase_add_test(th, sink_gets_the_body_in_order);
    tcase_add_test(th, sink_freed_when_client_goes_or_limit_passes);
    tcase_add_test(th, daemon_streams_big_bodies);
    tcase_add_test(th, daemon_413_without_growing);
    suite_add_tcase(s, th);
    return s;
}
