/* json_loss.c — POST /v1/loss: request body -> engine loss call -> result JSON.
 * Contracts in json_loss.h. Each loss has one function that reads its inputs, calls the
 * reduced engine function of loss.h, and writes the outputs; they share the readers of
 * json_util.c and one cleanup label each. */
#include "codec/json_loss.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_out.h"
#include "codec/json_util.h"
#include "codec/stream_dataset.h"
#include "traind/hparams.h"
#include "traind/loss.h"

static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* A request as read: the small members as a cJSON object, the arrays in the stream; and
 * the arrays of its evaluation, owned here and freed by td_json_loss_finish once the loss
 * has run (one handed over to the answer is set NULL). x: logits / probabilities / a;
 * x2: the probability targets / b; w: class_weights; y: class indices / similar;
 * per: per_sample; grad: the gradient; expected: expected_index. */
typedef struct lreq {
    const cJSON *obj;
    td_dstream *s;
    float *x, *x2, *w, *per, *grad, *expected;
    int32_t *y;
} lreq;

/* A required array member (absent or null: the error). */
static td_status required(td_jarray **out, const lreq *q, const char *key, const char *what,
                          td_error *err)
{
    *out = td_dstream_array(q->s, key);
    return *out ? TD_OK : td_fail(err, TD_EINVAL, key, "%s is required: %s", key, what);
}

/* An optional number in [lo, hi] (null or absent: dflt). */
static td_status opt_double(double *out, const cJSON *obj, const char *key, double dflt, double lo,
                            double hi, td_error *err)
{
    const cJSON *v = member(obj, key);
    *out = dflt;
    if (!v) return TD_OK;
    td_status st = td_json_get_double(out, v, key, err);
    if (st) return st;
    if (!(*out >= lo && *out <= hi))
        return td_fail(err, TD_EINVAL, key, "%s must be in [%g, %g], got %g", key, lo, hi, *out);
    return TD_OK;
}

static td_status opt_ignore_index(int32_t *out, const cJSON *obj, td_error *err)
{
    const cJSON *v = member(obj, "ignore_index");
    *out = -100;
    if (!v) return TD_OK;
    int64_t x;
    td_status st = td_json_get_int(&x, v, INT32_MIN, INT32_MAX, "ignore_index", err);
    *out = (int32_t)x;
    return st;
}

static td_status shape_mismatch(const char *name, int64_t r, int64_t c, const char *ref, int64_t R,
                                int64_t C, td_error *err)
{
    return td_fail(err, TD_EINVAL, name,
                   "%s has shape (%lld, %lld), expected (%lld, %lld) like "
                   "%s",
                   name, (long long)r, (long long)c, (long long)R, (long long)C, ref);
}

/* Closes the answer object. */
static td_status written(td_jout *o, td_error *err)
{
    td_jout_text(o, "}");
    return td_jout_failed(o) ? td_fail(err, TD_ENOMEM, "", "out of memory writing the result")
                             : TD_OK;
}

/* A number, or null where it is not defined. */
static void put_number(td_jout *o, double v, int defined)
{
    if (defined)
        td_jout_double(o, v);
    else
        td_jout_text(o, "null");
}

/* Opens the answer: {"loss": loss and, with per, "per_sample": per (n), handed over. */
static void put_loss(td_jout *o, double loss, int defined, float **per, int64_t n)
{
    td_jout_text(o, "{\"loss\":");
    put_number(o, loss, defined);
    if (!per) return;
    td_jout_text(o, ",\"per_sample\":");
    int64_t dims[1] = {n};
    td_jout_f32(o, *per, 1, dims);
    *per = NULL;
}

/* Makes the output arrays of q of per, grad and expected floats (-1: not made). */
static td_status alloc_outputs(lreq *q, int64_t per, int64_t grad, int64_t expected, td_error *err)
{
    const int64_t n[3] = {per, grad, expected};
    float **a[3] = {&q->per, &q->grad, &q->expected};
    for (int i = 0; i < 3; i++)
        if (n[i] >= 0 && !(*a[i] = malloc(sizeof(float) * (size_t)n[i])))
            return td_fail(err, TD_ENOMEM, "", "out of memory");
    return TD_OK;
}

/* Hands v (r, c) over to the answer. */
static void put_matrix(td_jout *o, float **v, int64_t r, int64_t c)
{
    int64_t dims[2] = {r, c};
    td_jout_f32(o, *v, 2, dims);
    *v = NULL;
}

/* ---- gradients made as they are sent ---------------------------------------------- */

/* The gradients of cross_entropy and contrastive are rows of the engine's "_sum"
 * functions (loss.h) at the scale their reduced variants use: each row depends on its
 * inputs alone, so rows made a block at a time as the answer is sent are the very bits
 * the reduced call writes, and the answer holds its inputs, never a gradient as big. */
typedef struct grad_src {
    float *x, *x2, *w; /* logits / a, the probability targets / b, weights */
    int32_t *y;        /* class indices / similar */
    int64_t cols;
    td_ce_opts o;
    double margin;
    float scale;
} grad_src;

static void grad_src_free(void *ctx)
{
    grad_src *g = ctx;
    free(g->x), free(g->x2), free(g->w), free(g->y);
    free(g);
}

static void ce_fill(void *ctx, int64_t r0, int64_t n, float *out)
{
    grad_src *g = ctx;
    double sum;
    const float *z = g->x + r0 * g->cols;
    if (g->x2)
        td_ce_probs_sum(&sum, NULL, out, z, g->x2 + r0 * g->cols, n, g->cols, &g->o, g->scale);
    else
        td_ce_index_sum(&sum, NULL, out, z, g->y + r0, n, g->cols, &g->o, g->scale);
}

static void contrastive_fill(void *ctx, int64_t r0, int64_t n, float *out, int which)
{
    grad_src *g = ctx;
    double sum;
    td_contrastive_sum(&sum, NULL, which ? NULL : out, which ? out : NULL, g->x + r0 * g->cols,
                       g->x2 + r0 * g->cols, g->y + r0, n, g->cols, g->margin, g->scale);
}

static void contrastive_fill_a(void *ctx, int64_t r0, int64_t n, float *out)
{
    contrastive_fill(ctx, r0, n, out, 0);
}

static void contrastive_fill_b(void *ctx, int64_t r0, int64_t n, float *out)
{
    contrastive_fill(ctx, r0, n, out, 1);
}

/* ---- cross_entropy ---------------------------------------------------------------- */

static td_status eval_ce(lreq *q, td_jout *out, td_error *err)
{
    const cJSON *req = q->obj;
    int64_t N, K;
    td_jarray *lv, *tv;
    td_status st;
    if ((st = required(&lv, q, "logits", "an (N, K) array of rows", err)) ||
        (st = required(&tv, q, "target", "class indices (N) or probabilities (N, K)", err)) ||
        (st = td_jarray_matrix_f32(&q->x, &N, &K, lv, 0, "logits", err)))
        return st;
    td_ce_opts o = td_ce_opts_default();
    int probs = td_jarray_rows(tv);
    if (probs) {
        int64_t r, c;
        if ((st = td_jarray_matrix_f32(&q->x2, &r, &c, tv, TD_JSON_NONNEG, "target", err)))
            return st;
        if (r != N || c != K) return shape_mismatch("target", r, c, "logits", N, K, err);
    } else {
        int64_t n;
        if ((st = td_jarray_vector_i32(&q->y, &n, tv, INT32_MIN, INT32_MAX, 0, "target", err)))
            return st;
        if (n != N)
            return td_fail(err, TD_EINVAL, "target",
                           "target has %lld entries, logits have %lld rows", (long long)n,
                           (long long)N);
    }
    if ((st = opt_ignore_index(&o.ignore_index, req, err)) ||
        (st = opt_double(&o.label_smoothing, req, "label_smoothing", 0.0, 0.0, 1.0, err)))
        return st;
    td_jarray *wv = td_dstream_array(q->s, "class_weights");
    if (wv) {
        int64_t n;
        if ((st = td_jarray_vector_f32(&q->w, &n, wv, TD_JSON_NONNEG, "class_weights", err)))
            return st;
        if (n != K)
            return td_fail(err, TD_EINVAL, "class_weights",
                           "class_weights has %lld entries, logits have %lld classes", (long long)n,
                           (long long)K);
        o.class_weights = q->w;
    }
    const cJSON *rv = member(req, "reduction");
    if (rv) {
        const char *s = cJSON_IsString(rv) ? rv->valuestring : "";
        if (strcmp(s, "mean") == 0)
            o.reduction = TD_REDUCTION_MEAN;
        else if (strcmp(s, "sum") == 0)
            o.reduction = TD_REDUCTION_SUM;
        else
            return td_fail(err, TD_EINVAL, "reduction", "reduction must be \"mean\" or \"sum\"");
    }
    if ((st = alloc_outputs(q, N, -1, -1, err))) return st;
    double loss, denom = 1.0;
    int defined = 1;
    if (probs) {
        st = td_ce_probs(&loss, q->per, NULL, q->x, q->x2, N, K, &o, err);
        if (o.reduction == TD_REDUCTION_MEAN && N > 0) denom = (double)N;
    } else {
        st = td_ce_index(&loss, &defined, q->per, NULL, q->x, q->y, N, K, &o, err);
        if (o.reduction == TD_REDUCTION_MEAN) denom = td_ce_index_denom(q->y, N, &o);
    }
    if (st) return st;
    grad_src *g = calloc(1, sizeof *g);
    if (!g) return td_fail(err, TD_ENOMEM, "", "out of memory");
    *g = (grad_src){.x = q->x,
                    .x2 = q->x2,
                    .w = q->w,
                    .y = q->y,
                    .cols = K,
                    .o = o,
                    .scale = defined ? (float)(1.0 / denom) : 0.0f};
    q->x = q->x2 = q->w = NULL, q->y = NULL;
    put_loss(out, loss, defined, &q->per, N);
    td_jout_text(out, ",\"grad\":");
    td_jout_f32_rows(out, N, K, ce_fill, g, grad_src_free);
    return written(out, err);
}

/* ---- categorical_crossentropy ----------------------------------------------------- */

static td_status eval_cce(lreq *q, td_jout *out, td_error *err)
{
    int64_t N, K, r, c;
    td_jarray *pv, *tv;
    double eps, loss;
    td_status st;
    if ((st = required(&pv, q, "probabilities", "an (N, K) array of rows", err)) ||
        (st = required(&tv, q, "target", "an (N, K) array of rows", err)) ||
        (st = td_jarray_matrix_f32(&q->x, &N, &K, pv, TD_JSON_NONNEG, "probabilities", err)) ||
        (st = td_jarray_matrix_f32(&q->x2, &r, &c, tv, 0, "target", err)))
        return st;
    if (r != N || c != K) return shape_mismatch("target", r, c, "probabilities", N, K, err);
    if ((st = opt_double(&eps, q->obj, "epsilon", 1e-7, 0.0, 1.0, err)) ||
        (st = alloc_outputs(q, N, N * K, -1, err)) ||
        (st = td_categorical_ce(&loss, q->per, q->grad, q->x, q->x2, N, K, eps, err)))
        return st;
    put_loss(out, loss, 1, &q->per, N);
    td_jout_text(out, ",\"grad\":");
    put_matrix(out, &q->grad, N, K);
    return written(out, err);
}

/* ---- grouped_cross_entropy -------------------------------------------------------- */

static td_status eval_grouped(lreq *q, td_jout *out, td_error *err)
{
    static const char *const mono_keys[] = {"weight", "margin", NULL};
    const cJSON *req = q->obj;
    int64_t N, K, r, G;
    int grouped;
    td_jarray *lv, *tv;
    td_status st;
    if ((st = required(&lv, q, "logits", "an (N, G*S) array of rows", err)) ||
        (st = required(&tv, q, "target", "an (N, G) array of class indices", err)) ||
        (st = td_jarray_matrix_f32(&q->x, &N, &K, lv, 0, "logits", err)) ||
        (st = td_jarray_labels_i32(&q->y, &r, &G, &grouped, tv, "target", err)))
        return st;
    if (r != N)
        return td_fail(err, TD_EINVAL, "target", "target has %lld rows, logits have %lld",
                       (long long)r, (long long)N);
    const cJSON *gv = member(req, "groups");
    if (gv) {
        int64_t g;
        if ((st = td_json_get_int(&g, gv, 1, TD_MAX_CLASSES, "groups", err))) return st;
        if (g != G)
            return td_fail(err, TD_EINVAL, "groups", "groups is %lld but target has %lld column%s",
                           (long long)g, (long long)G, G == 1 ? "" : "s");
    }
    if (K % G)
        return td_fail(err, TD_EINVAL, "logits",
                       "logits have %lld columns, not a multiple of groups (%lld)", (long long)K,
                       (long long)G);
    int32_t ignore;
    double weight = 0.0, margin = 0.0;
    if ((st = opt_ignore_index(&ignore, req, err))) return st;
    const cJSON *mv = member(req, "monotone");
    if (mv) {
        if ((st = td_json_check_keys(mv, "monotone", "monotone", mono_keys, err))) return st;
        const cJSON *wv = member(mv, "weight"), *mg = member(mv, "margin");
        if (wv && (st = td_json_get_double(&weight, wv, "monotone.weight", err))) return st;
        if (mg && (st = td_json_get_double(&margin, mg, "monotone.margin", err))) return st;
        if (weight < 0)
            return td_fail(err, TD_EINVAL, "monotone.weight",
                           "monotone.weight must be >= 0, got %g", weight);
    }
    td_grouped_loss res;
    if ((st = alloc_outputs(q, -1, N * K, N * G, err)) ||
        (st = td_grouped(&res, q->expected, q->grad, q->x, q->y, N, G, K / G, ignore, weight,
                         margin, err)))
        return st;
    put_loss(out, res.loss, res.defined, NULL, 0);
    td_jout_text(out, ",\"cross_entropy\":");
    put_number(out, res.cross_entropy, res.defined);
    td_jout_text(out, ",\"penalty\":");
    td_jout_double(out, res.penalty);
    td_jout_text(out, ",\"violation_rate\":");
    td_jout_double(out, res.violation_rate);
    td_jout_text(out, ",\"expected_index\":");
    put_matrix(out, &q->expected, N, G);
    td_jout_text(out, ",\"grad\":");
    put_matrix(out, &q->grad, N, K);
    return written(out, err);
}

/* ---- contrastive ------------------------------------------------------------------ */

static td_status eval_contrastive(lreq *q, td_jout *out, td_error *err)
{
    int64_t P, E, r, c, n;
    td_jarray *av, *bv, *sv;
    double margin, loss;
    td_status st;
    if ((st = required(&av, q, "a", "the first embeddings of each pair (P, E)", err)) ||
        (st = required(&bv, q, "b", "the second embeddings of each pair (P, E)", err)) ||
        (st = required(&sv, q, "similar", "1 (similar) or 0 for each pair (P)", err)) ||
        (st = td_jarray_matrix_f32(&q->x, &P, &E, av, 0, "a", err)) ||
        (st = td_jarray_matrix_f32(&q->x2, &r, &c, bv, 0, "b", err)))
        return st;
    if (r != P || c != E) return shape_mismatch("b", r, c, "a", P, E, err);
    if ((st = td_jarray_vector_i32(&q->y, &n, sv, 0, 1, TD_JSON_BOOLS, "similar", err))) return st;
    if (n != P)
        return td_fail(err, TD_EINVAL, "similar", "similar has %lld entries, a has %lld rows",
                       (long long)n, (long long)P);
    if ((st = opt_double(&margin, q->obj, "margin", 1.0, 0.0, 1e30, err)) ||
        (st = alloc_outputs(q, P, -1, -1, err)) ||
        (st = td_contrastive(&loss, q->per, NULL, NULL, q->x, q->x2, q->y, P, E, margin, err)))
        return st;
    grad_src *g = calloc(1, sizeof *g);
    if (!g) return td_fail(err, TD_ENOMEM, "", "out of memory");
    *g = (grad_src){.x = q->x,
                    .x2 = q->x2,
                    .y = q->y,
                    .cols = E,
                    .margin = margin,
                    .scale = (float)(1.0 / (P > 0 ? (double)P : 1.0))};
    q->x = q->x2 = NULL, q->y = NULL;
    put_loss(out, loss, 1, &q->per, P);
    td_jout_text(out, ",\"grad_a\":");
    td_jout_f32_rows(out, P, E, contrastive_fill_a, g, NULL);
    td_jout_text(out, ",\"grad_b\":");
    td_jout_f32_rows(out, P, E, contrastive_fill_b, g, grad_src_free); /* frees g, also
                                                                          when it fails */
    return written(out, err);
}

/* ---- dispatch --------------------------------------------------------------------- */

typedef struct loss_entry {
    const char *name;
    const char *const *keys;
    td_status (*eval)(lreq *q, td_jout *out, td_error *err);
} loss_entry;

static const char *const ce_keys[] = {
    "loss",          "logits",          "target",    "ignore_index",
    "class_weights", "label_smoothing", "reduction", NULL};
static const char *const cce_keys[] = {"loss", "probabilities", "target", "epsilon", NULL};
static const char *const grouped_keys[] = {"loss",         "logits",   "target", "groups",
                                           "ignore_index", "monotone", NULL};
static const char *const contrastive_keys[] = {"loss", "a", "b", "similar", "margin", NULL};

static const loss_entry losses[] = {
    {"cross_entropy", ce_keys, eval_ce},
    {"categorical_crossentropy", cce_keys, eval_cce},
    {"grouped_cross_entropy", grouped_keys, eval_grouped},
    {"contrastive", contrastive_keys, eval_contrastive},
};
static const char *const loss_names[] = {"cross_entropy", "categorical_crossentropy",
                                         "grouped_cross_entropy", "contrastive", NULL};
#define LOSS_LIST "cross_entropy, categorical_crossentropy, grouped_cross_entropy, contrastive"

/* The members that may hold big arrays, and the others (any other key is refused by
 * the key check of its loss). */
static const char *const array_keys[] = {"logits", "target",  "probabilities", "a",
                                         "b",      "similar", "class_weights", NULL};
static const char *const small_keys[] = {"loss",      "ignore_index", "label_smoothing",
                                         "reduction", "epsilon",      "groups",
                                         "monotone",  "margin",       NULL};

td_dstream *td_json_loss_stream(uint64_t size_hint)
{
    return td_dstream_object(array_keys, small_keys, NULL, size_hint);
}

td_status td_json_loss_finish(td_dstream *s, td_jout **out, td_error *err)
{
    *out = NULL;
    const cJSON *req;
    td_status st = td_dstream_object_finish(s, &req, err);
    if (st) return st;
    const cJSON *nv = cJSON_GetObjectItemCaseSensitive(req, "loss");
    const loss_entry *e = NULL;
    if (!cJSON_IsObject(req)) {
        st = td_fail(err, TD_EINVAL, "", "the body must be a JSON object {\"loss\": ...}");
    } else if (!nv) {
        st = td_fail(err, TD_EINVAL, "loss", "loss is required: one of " LOSS_LIST);
    } else if (!cJSON_IsString(nv)) {
        st = td_fail(err, TD_EINVAL, "loss", "loss must be a string: one of " LOSS_LIST);
    } else {
        for (size_t i = 0; i < sizeof losses / sizeof losses[0]; i++)
            if (strcmp(losses[i].name, nv->valuestring) == 0) e = &losses[i];
        if (!e) {
            const char *near = td_json_suggest(nv->valuestring, loss_names);
            if (near)
                st = td_fail(err, TD_EINVAL, "loss",
                             "unknown loss \"%.64s\"; did you mean "
                             "\"%s\"? (losses: " LOSS_LIST ")",
                             nv->valuestring, near);
            else
                st = td_fail(err, TD_EINVAL, "loss",
                             "unknown loss \"%.64s\" (losses: " LOSS_LIST ")", nv->valuestring);
        }
    }
    if (!st) {
        char what[64];
        snprintf(what, sizeof what, "a %s request", e->name);
        st = td_json_check_keys(req, NULL, what, e->keys, err);
    }
    if (st) return st;
    td_jout *o = td_jout_new();
    if (!o) return td_fail(err, TD_ENOMEM, "", "out of memory writing the result");
    lreq q = {.obj = req, .s = s};
    st = e->eval(&q, o, err);
    free(q.x), free(q.x2), free(q.w), free(q.y);
    free(q.per), free(q.grad), free(q.expected);
    if (st) {
        td_jout_free(o);
        return st;
    }
    *out = o;
    return TD_OK;
}

td_status td_json_loss_eval(const char *body, size_t len, char **out_json, td_error *err)
{
    *out_json = NULL;
    td_dstream *s = td_json_loss_stream(len);
    if (!s) return td_fail(err, TD_ENOMEM, "", "out of memory reading the body");
    td_dstream_feed(s, body, len);
    td_jout *o;
    td_status st = td_json_loss_finish(s, &o, err);
    td_dstream_destroy(s);
    if (st) return st;
    *out_json = td_jout_string(o, NULL);
    td_jout_free(o);
    return *out_json ? TD_OK : td_fail(err, TD_ENOMEM, "", "out of memory writing the result");
}
