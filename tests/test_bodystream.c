/* test_bodystream.c — the object bodies that stream (POST /v1/loss, /predict, the inline
 * data of POST /v1/jobs: td_dstream_object, stream_dataset.h) and the answers written as
 * they are sent (json_out.h).
 *
 * Arrays: every reader of a streamed array (td_jarray_*) gives what the tree reader
 * (td_json_* of json_util.h) gives for the same value, values and first error alike, on
 * values chosen at the edges (float32 range, -0, int32 range, integers float32 cannot
 * hold, booleans, literals, shapes). Bodies fed whole and in 1-byte or random pieces give
 * the same answers. The writer's text equals td_sbuf's for the same arrays, read in any
 * chunk size. Daemon: a /v1/loss body, a predict body and inline data of some 20 MB each
 * raise the peak resident set by at most twice the body plus 64 MB. */
#define _GNU_SOURCE
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/json_hparams.h"
#include "codec/json_loss.h"
#include "codec/json_out.h"
#include "codec/json_util.h"
#include "codec/stream_dataset.h"
#include "api.h"
#include "dataset_tree.h"

/* ---- arrays against the tree readers --------------------------------------------- */

static const char *const V_KEYS[] = {"v", NULL};

/* Feeds body to an object parser with array key "v", whole (chunk 0) or in pieces. */
static td_dstream *object_of(const char *body, size_t chunk, unsigned seed)
{
    td_dstream *s = td_dstream_object(V_KEYS, NULL, NULL, strlen(body));
    ck_assert_ptr_nonnull(s);
    size_t n = strlen(body), at = 0;
    while (at < n) {
        size_t k = chunk ? chunk : n;
        if (chunk == (size_t)-1) {
            seed = seed * 1103515245u + 12345u;
            k = 1 + (seed >> 16) % 13;
        }
        if (k > n - at) k = n - at;
        td_dstream_feed(s, body + at, k);
        at += k;
    }
    const cJSON *members;
    td_error err;
    ck_assert_int_eq(td_dstream_object_finish(s, &members, &err), TD_OK);
    return s;
}

/* Reads value v with reader r both ways; asserts the same status, error, shape and
 * values. */
static void compare_reader(const char *value, int r, size_t chunk)
{
    char body[4096];
    snprintf(body, sizeof body, "{\"v\": %s}", value);
    cJSON *tree;
    td_error e1 = {{0}, {0}}, e2 = {{0}, {0}};
    ck_assert_int_eq(td_json_parse(&tree, body, strlen(body), &e1), TD_OK);
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(tree, "v");
    td_dstream *s = object_of(body, chunk, 7);
    td_jarray *a = td_dstream_array(s, "v");
    ck_assert_ptr_nonnull(a);
    void *d1 = NULL, *d2 = NULL;
    int64_t r1 = 0, c1 = 1, r2 = 0, c2 = 1;
    int g1 = 0, g2 = 0;
    td_status s1, s2;
    switch (r) {
    case 0:
        s1 = td_json_matrix_f32((float **)&d1, &r1, &c1, tv, 0, "v", &e1);
        s2 = td_jarray_matrix_f32((float **)&d2, &r2, &c2, a, 0, "v", &e2);
        break;
    case 1:
        s1 = td_json_matrix_f32((float **)&d1, &r1, &c1, tv, TD_JSON_NONNEG, "v", &e1);
        s2 = td_jarray_matrix_f32((float **)&d2, &r2, &c2, a, TD_JSON_NONNEG, "v", &e2);
        break;
    case 2:
        s1 = td_json_vector_f32((float **)&d1, &r1, tv, TD_JSON_NONNEG, "v", &e1);
        s2 = td_jarray_vector_f32((float **)&d2, &r2, a, TD_JSON_NONNEG, "v", &e2);
        break;
    case 3:
        s1 = td_json_vector_i32((int32_t **)&d1, &r1, tv, INT32_MIN, INT32_MAX, 0, "v", &e1);
        s2 = td_jarray_vector_i32((int32_t **)&d2, &r2, a, INT32_MIN, INT32_MAX, 0, "v", &e2);
        break;
    case 4:
        s1 = td_json_vector_i32((int32_t **)&d1, &r1, tv, 0, 1, TD_JSON_BOOLS, "v", &e1);
        s2 = td_jarray_vector_i32((int32_t **)&d2, &r2, a, 0, 1, TD_JSON_BOOLS, "v", &e2);
        break;
    default:
        s1 = td_json_labels_i32((int32_t **)&d1, &r1, &c1, &g1, tv, "v", &e1);
        s2 = td_jarray_labels_i32((int32_t **)&d2, &r2, &c2, &g2, a, "v", &e2);
        break;
    }
    ck_assert_msg(s1 == s2, "%s reader %d: tree %d [%s] %s, stream %d [%s] %s", value, r, s1,
                  e1.field, e1.message, s2, e2.field, e2.message);
    if (s1) {
        ck_assert_msg(strcmp(e1.field, e2.field) == 0 && strcmp(e1.message, e2.message) == 0,
                      "%s reader %d: tree [%s] %s, stream [%s] %s", value, r, e1.field, e1.message,
                      e2.field, e2.message);
    } else {
        ck_assert_int_eq(r1, r2);
        ck_assert_int_eq(c1, c2);
        ck_assert_int_eq(g1, g2);
        ck_assert_msg(memcmp(d1, d2, (size_t)(r1 * c1) * 4) == 0, "%s reader %d: values", value, r);
    }
    free(d1);
    free(d2);
    td_dstream_destroy(s);
    cJSON_Delete(tree);
}

static const char *const VALUES[] = {
    "[[1, 2.5], [3, -4]]",
    "[1, 2, 3]",
    "[0, 1, true, false]",
    "[[0, 1], [1, 0]]",
    "[[1e39, 2]]",
    "[[-1e39]]",
    "[3.4028235e38, 3.4028236e38]",
    "[3.40282356e38]",
    "[1e400]",
    "[-1e400, 1]",
    "[-1e-50, 0.5]",
    "[0.5, -1e-50]",
    "[-0, -0.0, 0]",
    "[-1e-50]",
    "[[2, -1e-50], [1, 1]]",
    "[16777217, 16777216]",
    "[2147483647, -2147483648]",
    "[2147483648]",
    "[-2147483649]",
    "[1.0000000001, 1]",
    "[1, 1.0000000001]",
    "[1.5]",
    "[2.0, 3e0, 40e-1]",
    "[123456789012, 1]",
    "[9007199254740993]",
    "[true]",
    "[false, 2]",
    "[1, null]",
    "[null]",
    "[\"a\", 1]",
    "[NaN]",
    "[1, Infinity]",
    "[-Infinity, NaN]",
    "[[1, 2], [3]]",
    "[[1], [2, 3]]",
    "[[1, 2], 3]",
    "[[1, 2], [3, \"x\"]]",
    "[[]]",
    "[[], [1]]",
    "[]",
    "5",
    "\"s\"",
    "true",
    "{}",
    "{\"a\": 1}",
    "[{}]",
    "[[{}]]",
    "[[1, [2]]]",
    "[1, [2]]",
    "[[1, 2], [3, 4, 5], [\"x\"]]",
    "[[1, -0.5], [2, 1e39]]",
    "[[1.5, 2], [1e39, -1]]",
    "[[16777217, 1], [2, 2147483648]]",
    "[[0, 1], [true, 1]]",
    "[1e-46, -1e-46]",
    "[0.1, 0.2, 0.30000000000000004]",
    "[1.00000000000000000001]",
    "[[3, 2147483647.0000001]]",
    "[-2147483648.5]",
    "[4294967296, 1.5]",
};

START_TEST(jarray_matches_tree_readers)
{
    for (size_t i = 0; i < sizeof VALUES / sizeof VALUES[0]; i++)
        for (int r = 0; r < 6; r++) {
            compare_reader(VALUES[i], r, 0);
            compare_reader(VALUES[i], r, 1);
            compare_reader(VALUES[i], r, (size_t)-1);
        }
}
END_TEST

/* ---- whole bodies in pieces -------------------------------------------------------- */

static char *loss_in(const char *body, size_t chunk, td_status *st, td_error *err)
{
    td_dstream *s = td_json_loss_stream(0);
    size_t n = strlen(body);
    for (size_t at = 0; at < n; at += chunk)
        td_dstream_feed(s, body + at, chunk < n - at ? chunk : n - at);
    td_jout *o = NULL;
    *st = td_json_loss_finish(s, &o, err);
    td_dstream_destroy(s);
    char *text = o ? td_jout_string(o, NULL) : NULL;
    td_jout_free(o);
    return text;
}

START_TEST(loss_bodies_in_pieces)
{
    static const char *const bodies[] = {
        "{\"loss\":\"cross_entropy\",\"logits\":[[1,2,3],[0.5,-1,2]],\"target\":[2,0]}",
        "{\"target\":[[0,0.5,0.5],[1,0,0]],\"logits\":[[1,2,3],[0.5,-1,2]],"
        "\"loss\":\"cross_entropy\",\"label_smoothing\":0.1,\"class_weights\":[1,2,0.5]}",
        "{\"loss\":\"grouped_cross_entropy\",\"logits\":[[1,2,3,4],[4,3,2,1]],"
        "\"target\":[[0,1],[1,-100]],\"monotone\":{\"weight\":0.5,\"margin\":0.1}}",
        "{\"loss\":\"contrastive\",\"a\":[[1,0],[0,1]],\"b\":[[1,0],[1,1]],"
        "\"similar\":[true,0],\"margin\":2}",
        "{\"loss\":\"categorical_crossentropy\",\"probabilities\":[[0.2,0.8]],"
        "\"target\":[[0,1]],\"epsilon\":1e-6}",
        "{\"loss\":\"cross_entropy\",\"logits\":[[1,2]],\"target\":[5]}",
        "{\"loss\":\"cross_entropy\",\"logits\":[[1,2]],\"target\":[1],\"bogus\":[[1]]}",
        "{\"loss\":\"contrastive\",\"a\":[[1,0]],\"b\":[[1,0]],\"similar\":[2]}",
        "{\"loss\":\"cross_entropy\",\"logits\":[[1,2]],\"target\":null}",
        "{\"loss\":\"cross_entropy\",\"logits\":[[1,2]],\"target\":[1],\"logits\":[[1]]}",
        "[1, 2]",
        "{\"loss\":\"cross_entropy\",\"logits\":[[1,2]],\"target\":[1]",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        td_status s0, s1, s7;
        td_error e0 = {{0}, {0}}, e1 = {{0}, {0}}, e7 = {{0}, {0}};
        char *whole = NULL;
        s0 = td_json_loss_eval(bodies[i], strlen(bodies[i]), &whole, &e0);
        char *one = loss_in(bodies[i], 1, &s1, &e1), *seven = loss_in(bodies[i], 7, &s7, &e7);
        ck_assert_int_eq(s0, s1);
        ck_assert_int_eq(s0, s7);
        if (s0) {
            ck_assert_str_eq(e0.message, e1.message);
            ck_assert_str_eq(e0.message, e7.message);
        } else {
            ck_assert_str_eq(whole, one);
            ck_assert_str_eq(whole, seven);
        }
        free(whole), free(one), free(seven);
    }
    /* the messages of the tree readers, with the arrays before the loss name */
    td_error err;
    char *out = NULL;
    const char *b = "{\"target\":[[0,1],[1,0.5]],\"logits\":[[1,2],[3,4]],\"loss\":\"grouped_"
                    "cross_entropy\"}";
    ck_assert_int_eq(td_json_loss_eval(b, strlen(b), &out, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "target[1][1]");
    ck_assert_ptr_nonnull(strstr(err.message, "is not an integer"));
    b = "{\"target\":[[0,1],[1,-0.5]],\"logits\":[[1,2],[3,4]],\"loss\":\"cross_entropy\"}";
    ck_assert_int_eq(td_json_loss_eval(b, strlen(b), &out, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "target[1][1]");
    ck_assert_ptr_nonnull(strstr(err.message, "negative"));
}
END_TEST

START_TEST(inline_data_in_pieces)
{
    const char *body = "{\"model\":\"softmax\",\"data\":{\"name\":\"in\\u006cine\",\"X\":[[1,2],"
                       "[3,4],[5,6]],\"y\":[0,1,0]},\"hyperparameters\":{\"epochs\":3}}";
    size_t n = strlen(body);
    for (size_t chunk = 1; chunk <= n; chunk += chunk < 8 ? 1 : 9) {
        td_dstream *s = td_json_job_stream(n);
        for (size_t at = 0; at < n; at += chunk)
            td_dstream_feed(s, body + at, chunk < n - at ? chunk : n - at);
        td_job_request jr;
        td_error err;
        ck_assert_int_eq(td_json_job_finish(&jr, s, &err), TD_OK);
        ck_assert_ptr_nonnull(jr.data);
        ck_assert_int_eq(jr.data->ds.N, 3);
        ck_assert_int_eq(jr.data->ds.D, 2);
        ck_assert(jr.data->X[5] == 6.0f && jr.data->y[1] == 1);
        ck_assert_str_eq(jr.data->name, "inline");
        ck_assert_int_eq(jr.hp.epochs, 3);
        td_job_request_fini(&jr);
        td_dstream_destroy(s);
    }
    /* errors name the inline element, as the tree reader did */
    static const char *const bad[][2] = {
        {"{\"model\":\"softmax\",\"data\":{\"X\":[[1,2],[3]],\"y\":[0,1]}}", "data.X[1]"},
        {"{\"model\":\"softmax\",\"data\":{\"X\":[[1,\"a\"]],\"y\":[0]}}", "data.X[0][1]"},
        {"{\"model\":\"softmax\",\"data\":{\"X\":[[1]],\"z\":[0]}}", "data.z"},
        {"{\"model\":\"softmax\",\"data\":7}", "data"},
        {"{\"model\":\"softmax\",\"data\":{\"X\":[[1]],\"y\":[0],\"name\":5}}", "data.name"},
        {"{\"model\":\"softmax\",\"data\":null}", "dataset"},
        {"{\"model\":\"softmax\",\"data\":{\"X\":[[1]],\"y\":[0]},\"dataset\":\"ds_1\"}", "data"},
        {"{\"model\":\"softmax\",\"data\":{\"X\":[[1]]},\"data\":{\"X\":[[1]]}}", "data"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        td_job_request jr;
        td_error err;
        ck_assert_int_eq(td_json_job_parse(&jr, bad[i][0], strlen(bad[i][0]), &err), TD_EINVAL);
        ck_assert_msg(strcmp(err.field, bad[i][1]) == 0, "%s: [%s] %s", bad[i][0], err.field,
                      err.message);
        td_job_request_fini(&jr);
    }
}
END_TEST

/* ---- the writer -------------------------------------------------------------------- */

START_TEST(writer_matches_sbuf)
{
    enum { N = 7, K = 6 };
    float *f = malloc(sizeof(float) * N * K);
    int32_t *l = malloc(sizeof(int32_t) * N * K);
    const float special[] = {0.0f, -0.0f,  1.0f,          -3.0f,    1e7f, 9999999.0f,
                             0.1f, 1e-45f, 3.4028235e38f, INFINITY, NAN,  -1.5e-7f};
    for (int i = 0; i < N * K; i++) {
        f[i] = i < 12 ? special[i] : (float)sin(i) * powf(10.0f, (float)(i % 9) - 4);
        l[i] = i % 3 ? i * 7919 : -i;
    }
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b, "{\"a\":");
    td_sbuf_double(&b, 0.1);
    td_sbuf_puts(&b, ",\"v\":");
    td_sbuf_floats(&b, f, N * K);
    td_sbuf_puts(&b, ",\"m\":");
    td_sbuf_matrix_f32(&b, f, N, K);
    td_sbuf_puts(&b, ",\"t\":[");
    for (int n = 0; n < N; n++) {
        if (n) td_sbuf_puts(&b, ",");
        td_sbuf_matrix_f32(&b, f + n * K, 2, 3);
    }
    td_sbuf_puts(&b, "],\"l\":");
    td_sbuf_ints(&b, l, N * K);
    td_sbuf_puts(&b, ",\"g\":");
    td_sbuf_matrix_i32(&b, l, N, K);
    td_sbuf_puts(&b, ",\"e\":");
    td_sbuf_floats(&b, f, 0);
    td_sbuf_puts(&b, "}");
    char *want = td_sbuf_finish(&b, NULL);
    for (size_t chunk = 1; chunk < 40; chunk += 3) {
        td_jout *o = td_jout_new();
        int64_t d1[1] = {N * K}, d2[2] = {N, K}, d3[3] = {N, 2, 3}, d0[1] = {0};
        float *c[4];
        for (int k = 0; k < 4; k++) {
            c[k] = malloc(sizeof(float) * N * K);
            memcpy(c[k], f, sizeof(float) * N * K);
        }
        int32_t *li[2];
        for (int k = 0; k < 2; k++) {
            li[k] = malloc(sizeof(int32_t) * N * K);
            memcpy(li[k], l, sizeof(int32_t) * N * K);
        }
        td_jout_text(o, "{\"a\":");
        td_jout_double(o, 0.1);
        td_jout_text(o, ",\"v\":");
        td_jout_f32(o, c[0], 1, d1);
        td_jout_text(o, ",\"m\":");
        td_jout_f32(o, c[1], 2, d2);
        td_jout_text(o, ",\"t\":");
        td_jout_f32(o, c[2], 3, d3);
        td_jout_text(o, ",\"l\":");
        td_jout_i32(o, li[0], 1, d1);
        td_jout_text(o, ",\"g\":");
        td_jout_i32(o, li[1], 2, d2);
        td_jout_text(o, ",\"e\":");
        td_jout_f32(o, c[3], 1, d0);
        td_jout_text(o, "}");
        ck_assert(!td_jout_failed(o));
        char got[8192];
        size_t n = 0;
        ssize_t k;
        while ((k = td_jout_read(o, n, got + n, chunk)) > 0) {
            ck_assert_int_le(k, (ssize_t)chunk);
            n += (size_t)k;
            ck_assert_int_lt(n, sizeof got);
        }
        got[n] = '\0';
        ck_assert_str_eq(got, want);
        td_jout_free(o);
    }
    free(want);
    free(f);
    free(l);
}
END_TEST

/* ---- the daemon: peak memory for big bodies --------------------------------------- */

/* Resets the peak to the current resident set (so each body is measured on its own);
 * 0 when the kernel would not. */
static int reset_hwm(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* A growing text buffer for the generated bodies. */
typedef struct gbuf {
    char *p;
    size_t n, cap;
} gbuf;

static void gput(gbuf *g, const char *s)
{
    size_t k = strlen(s);
    if (g->n + k + 1 > g->cap) {
        g->cap = (g->n + k + 1) * 2;
        g->p = realloc(g->p, g->cap);
        ck_assert_ptr_nonnull(g->p);
    }
    memcpy(g->p + g->n, s, k + 1);
    g->n += k;
}

/* rows x cols numbers like "-0.123456" (a plausible 9-10 bytes each), seeded. */
static void gmatrix(gbuf *g, int64_t rows, int cols, uint64_t *r)
{
    char num[32];
    gput(g, "[");
    for (int64_t i = 0; i < rows; i++) {
        gput(g, i ? ",[" : "[");
        for (int j = 0; j < cols; j++) {
            *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
            unsigned v = (unsigned)(*r % 2000000u);
            snprintf(num, sizeof num, "%s%s%u.%06u", j ? "," : "", v & 1 ? "-" : "",
                     (v >> 1) / 1000000u, (v >> 1) % 1000000u);
            gput(g, num);
        }
        gput(g, "]");
    }
    gput(g, "]");
}

static void gints(gbuf *g, int64_t n, int mod)
{
    char num[24];
    gput(g, "[");
    for (int64_t i = 0; i < n; i++) {
        snprintf(num, sizeof num, "%s%d", i ? "," : "", (int)(i % mod));
        gput(g, num);
    }
    gput(g, "]");
}

/* POSTs body and returns the growth of the daemon's peak resident set in bytes. */
static long post_growth(httpc_daemon *d, const char *path, const gbuf *body, int want,
                        const char *want_text)
{
    int reset = reset_hwm(d->pid);
    long before = httpc_proc_kb(d->pid, "VmHWM");
    httpc_resp r;
    int st = httpc_request(d->port, "POST", path, "Content-Type: application/json", body->p,
                           body->n, &r);
    ck_assert_msg(st == want, "%s: %d %.300s", path, st, r.body ? r.body : "");
    ck_assert_msg(strstr(r.body, want_text), "%s: %.300s", path, r.body);
    httpc_free(&r);
    long grew = (httpc_proc_kb(d->pid, "VmHWM") - before) * 1024;
    fprintf(stderr, "bodystream: %s body %.1f MB, peak resident set +%.1f MB%s\n", path,
            (double)body->n / 1e6, (double)grew / 1e6, reset ? "" : " (cumulative peak)");
    return grew;
}

START_TEST(daemon_big_bodies_within_twice_the_body)
{
    httpc_daemon d;
    const char *args[] = {"--workers", "1", NULL};
    int port = httpc_daemon_start(&d, NULL, args, NULL);
    ck_assert_msg(port > 0, "daemon did not start");
    uint64_t r = 88172645463325252ull;
    const long slack = 64l << 20;

    /* /v1/loss: logits (N, 10) and targets, some 20 MB; the answer (grad) as big */
    gbuf g = {0};
    int64_t N = 200000;
    gput(&g, "{\"logits\":");
    gmatrix(&g, N, 10, &r);
    gput(&g, ",\"target\":");
    gints(&g, N, 10);
    gput(&g, ",\"loss\":\"cross_entropy\"}");
    long grew = post_growth(&d, "/v1/loss", &g, 200, "\"grad\":[[");
    ck_assert_msg(grew <= 2 * (long)g.n + slack, "loss: +%ld bytes for %zu", grew, g.n);

    /* a model, then a predict body of some 20 MB */
    const char *job = "{\"model\":\"softmax\",\"data\":{\"X\":[[0,0,1,0],[1,0,0,1],[0,1,1,1],"
                      "[1,1,0,0]],\"y\":[0,1,2,1]},\"hyperparameters\":{\"epochs\":2}}";
    httpc_resp resp;
    ck_assert_int_eq(httpc_request(port, "POST", "/v1/jobs", "Content-Type: application/json", job,
                                   strlen(job), &resp),
                     202);
    char id[64] = "";
    const char *p = strstr(resp.body, "\"id\":\"");
    ck_assert_ptr_nonnull(p);
    sscanf(p + 6, "%63[^\"]", id);
    httpc_free(&resp);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(httpc_request(port, "GET", path, NULL, NULL, 0, &resp), 200);
        int done = strstr(resp.body, "\"state\":\"succeeded\"") != NULL;
        httpc_free(&resp);
        if (done) break;
        usleep(50000);
    }
    g.n = 0;
    gput(&g, "{\"X\":");
    gmatrix(&g, 500000, 4, &r);
    gput(&g, "}");
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", id);
    grew = post_growth(&d, path, &g, 200, "\"labels\":[");
    ck_assert_msg(grew <= 2 * (long)g.n + slack, "predict: +%ld bytes for %zu", grew, g.n);

    /* inline data of some 20 MB, read whole before the bad hyperparameter is named */
    g.n = 0;
    gput(&g, "{\"model\":\"softmax\",\"data\":{\"X\":");
    gmatrix(&g, N, 10, &r);
    gput(&g, ",\"y\":");
    gints(&g, N, 3);
    gput(&g, "},\"hyperparameters\":{\"epochs\":-1}}");
    grew = post_growth(&d, "/v1/jobs", &g, 422, "\"field\":\"hyperparameters.epochs\"");
    ck_assert_msg(grew <= 2 * (long)g.n + slack, "inline data: +%ld bytes for %zu", grew, g.n);
    free(g.p);
    api_stop(&d);
}
END_TEST

Suite *suite_bodystream(void)
{
    Suite *s = suite_create("bodystream");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, jarray_matches_tree_readers);
    tcase_add_test(tc, loss_bodies_in_pieces);
    tcase_add_test(tc, inline_data_in_pieces);
    tcase_add_test(tc, writer_matches_sbuf);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("daemon");
    tcase_set_timeout(td, 120);
    tcase_add_test(td, daemon_big_bodies_within_twice_the_body);
    suite_add_tcase(s, td);
    return s;
}
