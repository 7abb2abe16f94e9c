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

/* A request as read: the small members as a cJSON object, the arrays in the stream. */
typedef struct lreq {
    const cJSON *obj;
    td_dstream *s;
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

static td_status written(const td_jout *o, td_error *err)
{
    return td_jout_failed(o) ? td_fail(err, TD_ENOMEM, "", "out of memory writing the result")
                             : TD_OK;
}

/* Hands v (n) or v (r, c) over to the answer. */
static void put_vector(td_jout *o, float **v, int64_t n)
{
    int64_t dims[1] = {n};
    td_jout_f32(o, *v, 1, dims);
    *v = NULL;
}

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

static td_status eval_ce(const lreq *q, td_jout *out, td_error *err)
{
    const cJSON *req = q->obj;
    float *logits = NULL, *Y = NULL, *w = NULL, *per = NULL;
    int32_t *y = NULL;
    int64_t N, K;
    td_jarray *lv, *tv;
    td_status st;
    if ((st = required(&lv, q, "logits", "an (N, K) array of rows", err)) ||
        (st = required(&tv, q, "target", "class indices (N) or probabilities (N, K)", err)) ||
        (st = td_jarray_matrix_f32(&logits, &N, &K, lv, 0, "logits", err)))
        goto done;
    td_ce_opts o = td_ce_opts_default();
    int probs = td_jarray_rows(tv);
    if (probs) {
        int64_t r, c;
        if ((st = td_jarray_matrix_f32(&Y, &r, &c, tv, TD_JSON_NONNEG, "target", err))) goto done;
        if (r != N || c != K) {
            st = shape_mismatch("target", r, c, "logits", N, K, err);
            goto done;
        }
    } else {
        int64_t n;
        if ((st = td_jarray_vector_i32(&y, &n, tv, INT32_MIN, INT32_MAX, 0, "target", err)))
            goto done;
        if (n != N) {
            st = td_fail(err, TD_EINVAL, "target",
                         "target has %lld entries, logits have %lld "
                         "rows",
                         (long long)n, (long long)N);
            goto done;
        }
    }
    if ((st = opt_ignore_index(&o.ignore_index, req, err)) ||
        (st = opt_double(&o.label_smoothing, req, "label_smoothing", 0.0, 0.0, 1.0, err)))
        goto done;
    td_jarray *wv = td_dstream_array(q->s, "class_weights");
    if (wv) {
        int64_t n;
        if ((st = td_jarray_vector_f32(&w, &n, wv, TD_JSON_NONNEG, "class_weights", err)))
            goto done;
        if (n != K) {
            st = td_fail(err, TD_EINVAL, "class_weights",
                         "class_weights has %lld entries, "
                         "logits have %lld classes",
                         (long long)n, (long long)K);
            goto done;
        }
        o.class_weights = w;
    }
    const cJSON *rv = member(req, "reduction");
    if (rv) {
        const char *s = cJSON_IsString(rv) ? rv->valuestring : "";
        if (strcmp(s, "mean") == 0)
            o.reduction = TD_REDUCTION_MEAN;
        else if (strcmp(s, "sum") == 0)
            o.reduction = TD_REDUCTION_SUM;
        else {
            st = td_fail(err, TD_EINVAL, "reduction", "reduction must be \"mean\" or \"sum\"");
            goto done;
        }
    }
    per = malloc(sizeof(float) * (size_t)N);
    grad_src *g = calloc(1, sizeof *g);
    if (!per || !g) {
        free(g);
        st = td_fail(err, TD_ENOMEM, "", "out of memory");
        goto done;
    }
    double loss, denom = 1.0;
    int defined = 1;
    if (probs) {
        st = td_ce_probs(&loss, per, NULL, logits, Y, N, K, &o, err);
        if (o.reduction == TD_REDUCTION_MEAN && N > 0) denom = (double)N;
    } else {
        st = td_ce_index(&loss, &defined, per, NULL, logits, y, N, K, &o, err);
        if (o.reduction == TD_REDUCTION_MEAN) denom = td_ce_index_denom(y, N, &o);
    }
    if (st) {
        free(g);
        goto done;
    }
    *g = (grad_src){.x = logits,
                    .x2 = Y,
                    .w = w,
                    .y = y,
                    .cols = K,
                    .o = o,
                    .scale = defined ? (float)(1.0 / denom) : 0.0f};
    logits = Y = w = NULL, y = NULL;
    td_jout_text(out, "{\"loss\":");
    if (defined)
        td_jout_double(out, loss);
    else
        td_jout_text(out, "null");
    td_jout_text(out, ",\"per_sample\":");
    put_vector(out, &per, N);
    td_jout_text(out, ",\"grad\":");
    td_jout_f32_rows(out, N, K, ce_fill, g, grad_src_free);
    td_jout_text(out, "}");
    st = written(out, err);
done:
    free(logits);
    free(Y);
    free(y);
    free(w);
    free(per);
    return st;
}

/* ---- categorical_crossentropy ----------------------------------------------------- */

static td_status eval_cce(const lreq *q, td_jout *out, td_error *err)
{
    const cJSON *req = q->obj;
    float *p = NULL, *t = NULL, *per = NULL, *grad = NULL;
    int64_t N, K, r, c;
    td_jarray *pv, *tv;
    double eps, loss;
    td_status st;
    if ((st = required(&pv, q, "probabilities", "an (N, K) array of rows", err)) ||
        (st = required(&tv, q, "target", "an (N, K) array of rows", err)) ||
        (st = td_jarray_matrix_f32(&p, &N, &K, pv, TD_JSON_NONNEG, "probabilities", err)) ||
        (st = td_jarray_matrix_f32(&t, &r, &c, tv, 0, "target", err)))
        goto done;
    if (r != N || c != K) {
        st = shape_mismatch("target", r, c, "probabilities", N, K, err);
        goto done;
    }
    if ((st = opt_double(&eps, req, "epsilon", 1e-7, 0.0, 1.0, err))) goto done;
    per = malloc(sizeof(float) * (size_t)N);
    grad = malloc(sizeof(float) * (size_t)(N * K));
    if (!per || !grad) {
        st = td_fail(err, TD_ENOMEM, "", "out of memory");
        goto done;
    }
    if ((st = td_categorical_ce(&loss, per, grad, p, t, N, K, eps, err))) goto done;
    td_jout_text(out, "{\"loss\":");
    td_jout_double(out, loss);
    td_jout_text(out, ",\"per_sample\":");
    put_vector(out, &per, N);
    td_jout_text(out, ",\"grad\":");
    put_matrix(out, &grad, N, K);
    td_jout_text(out, "}");
    st = written(out, err);
done:
    free(p);
    free(t);
    free(per);
    free(grad);
    return st;
}

/* ---- grouped_cross_entropy -------------------------------------------------------- */

static td_status eval_grouped(const lreq *q, td_jout *out, td_error *err)
{
    static const char *const mono_keys[] = {"weight", "margin", NULL};
    const cJSON *req = q->obj;
    float *logits = NULL, *expected = NULL, *grad = NULL;
    int32_t *y = NULL;
    int64_t N, K, r, G;
    int grouped;
    td_jarray *lv, *tv;
    td_status st;
    if ((st = required(&lv, q, "logits", "an (N, G*S) array of rows", err)) ||
        (st = required(&tv, q, "target", "an (N, G) array of class indices", err)) ||
        (st = td_jarray_matrix_f32(&logits, &N, &K, lv, 0, "logits", err)) ||
        (st = td_jarray_labels_i32(&y, &r, &G, &grouped, tv, "target", err)))
        goto done;
    if (r != N) {
        st = td_fail(err, TD_EINVAL, "target", "target has %lld rows, logits have %lld",
                     (long long)r, (long long)N);
        goto done;
    }
    const cJSON *gv = member(req, "groups");
    if (gv) {
        int64_t g;
        if ((st = td_json_get_int(&g, gv, 1, TD_MAX_CLASSES, "groups", err))) goto done;
        if (g != G) {
            st = td_fail(err, TD_EINVAL, "groups",
                         "groups is %lld but target has %lld "
                         "column%s",
                         (long long)g, (long long)G, G == 1 ? "" : "s");
            goto done;
        }
    }
    if (K % G) {
        st = td_fail(err, TD_EINVAL, "logits",
                     "logits have %lld columns, not a multiple of "
                     "groups (%lld)",
                     (long long)K, (long long)G);
        goto done;
    }
    int32_t ignore;
    double weight = 0.0, margin = 0.0;
    if ((st = opt_ignore_index(&ignore, req, err))) goto done;
    const cJSON *mv = member(req, "monotone");
    if (mv) {
        if ((st = td_json_check_keys(mv, "monotone", "monotone", mono_keys, err))) goto done;
        const cJSON *wv = member(mv, "weight"), *mg = member(mv, "margin");
        if (wv && (st = td_json_get_double(&weight, wv, "monotone.weight", err))) goto done;
        if (mg && (st = td_json_get_double(&margin, mg, "monotone.margin", err))) goto done;
        if (weight < 0) {
            st = td_fail(err, TD_EINVAL, "monotone.weight",
                         "monotone.weight must be >= 0, "
                         "got %g",
                         weight);
            goto done;
        }
    }
    expected = malloc(sizeof(float) * (size_t)(N * G));
    grad = malloc(sizeof(float) * (size_t)(N * K));
    if (!expected || !grad) {
        st = td_fail(err, TD_ENOMEM, "", "out of memory");
        goto done;
    }
    td_grouped_loss res;
    if ((st =
             td_grouped(&res, expected, grad, logits, y, N, G, K / G, ignore, weight, margin, err)))
        goto done;
    td_jout_text(out, "{\"loss\":");
    if (res.defined)
        td_jout_double(out, res.loss);
    else
        td_jout_text(out, "null");
    td_jout_text(out, ",\"cross_entropy\":");
    if (res.defined)
        td_jout_double(out, res.cross_entropy);
    else
        td_jout_text(out, "null");
    td_jout_text(out, ",\"penalty\":");
    td_jout_double(out, res.penalty);
    td_jout_text(out, ",\"violation_rate\":");
    td_jout_double(out, res.violation_rate);
    td_jout_text(out, ",\"expected_index\":");
    put_matrix(out, &expected, N, G);
    td_jout_text(out, ",\"grad\":");
    put_matrix(out, &grad, N, K);
    td_jout_text(out, "}");
    st = written(out, err);
done:
    free(logits);
    free(y);
    free(expected);
    free(grad);
    return st;
}

/* ---- contrastive ------------------------------------------------------------------ */

static td_status eval_contrastive(const lreq *q, td_jout *out, td_error *err)
{
    const cJSON *req = q->obj;
    float *a = NULL, *bb = NULL, *per = NULL;
    int32_t *s = NULL;
    int64_t P, E, r, c, n;
    td_jarray *av, *bv, *sv;
    double margin, loss;
    td_status st;
    if ((st = required(&av, q, "a", "the first embeddings of each pair (P, E)", err)) ||
        (st = required(&bv, q, "b", "the second embeddings of each pair (P, E)", err)) ||
        (st = required(&sv, q, "similar", "1 (similar) or 0 for each pair (P)", err)) ||
        (st = td_jarray_matrix_f32(&a, &P, &E, av, 0, "a", err)) ||
        (st = td_jarray_matrix_f32(&bb, &r, &c, bv, 0, "b", err)))
        goto done;
    if (r != P || c != E) {
        st = shape_mismatch("b", r, c, "a", P, E, err);
        goto done;
    }
    if ((st = td_jarray_vector_i32(&s, &n, sv, 0, 1, TD_JSON_BOOLS, "similar", err))) goto done;
    if (n != P) {
        st = td_fail(err, TD_EINVAL, "similar", "similar has %lld entries, a has %lld rows",
                     (long long)n, (long long)P);
        goto done;
    }
    if ((st = opt_double(&margin, req, "margin", 1.0, 0.0, 1e30, err))) goto done;
    per = malloc(sizeof(float) * (size_t)P);
    grad_src *g = calloc(1, sizeof *g);
    if (!per || !g) {
        free(g);
        st = td_fail(err, TD_ENOMEM, "", "out of memory");
        goto done;
    }
    if ((st = td_contrastive(&loss, per, NULL, NULL, a, bb, s, P, E, margin, err))) {
        free(g);
        goto done;
    }
    *g = (grad_src){.x = a,
                    .x2 = bb,
                    .y = s,
                    .cols = E,
                    .margin = margin,
                    .scale = (float)(1.0 / (P > 0 ? (double)P : 1.0))};
    a = bb = NULL, s = NULL;
    td_jout_text(out, "{\"loss\":");
    td_jout_double(out, loss);
    td_jout_text(out, ",\"per_sample\":");
    put_vector(out, &per, P);
    td_jout_text(out, ",\"grad_a\":");
    td_jout_f32_rows(out, P, E, contrastive_fill_a, g, NULL);
    td_jout_text(out, ",\"grad_b\":");
    td_jout_f32_rows(out, P, E, contrastive_fill_b, g, grad_src_free); /* frees g, also
                                                                          when it fails */
    td_jout_text(out, "}");
    st = written(out, err);
done:
    free(a);
    free(bb);
    free(s);
    free(per);
    return st;
}

/* ---- dispatch --------------------------------------------------------------------- */

typedef struct loss_entry {
    const char *name;
    const char *const *keys;
    td_status (*eval)(const lreq *q, td_jout *out, td_error *err);
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
    lreq q = {req, s};
    if ((st = e->eval(&q, o, err))) {
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
