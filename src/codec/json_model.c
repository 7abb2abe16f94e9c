/* json_model.c — model objects, model meta, predict requests and predictions.
 * Contracts in json_model.h. Big arrays are written straight into a td_sbuf. */
#include "codec/json_model.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_out.h"
#include "codec/json_util.h"
#include "codec/stream_dataset.h"

/* Enum names come from the hyperparameter table, the one place they are written. */
static const char *choice_name(const char *hp_name, int v)
{
    const td_hparam_def *d = td_hparam_find(hp_name);
    if (!d || !d->choices || v < 0) return "?";
    for (int i = 0; d->choices[i]; i++)
        if (i == v) return d->choices[i];
    return "?";
}

static int choice_parse(const char *hp_name, const char *s)
{
    const td_hparam_def *d = td_hparam_find(hp_name);
    if (!d || !d->choices || !s) return -1;
    for (int i = 0; d->choices[i]; i++)
        if (strcmp(d->choices[i], s) == 0) return i;
    return -1;
}

/* One converter row per model family (indexed by td_model_kind, table below): its model
 * object (GET /v1/jobs/{id}/model), what its meta carries beyond the shape, and its
 * predictions object. */
enum {
    META_FIT = 1,      /* covariance, lower_bound, converged, n_iter (the mixtures) */
    META_EMBED = 2,    /* components, rows (embed_gmm) */
    META_NO_HIDDEN = 4 /* hidden layers are refused (softmax) */
};
typedef struct model_codec {
    td_status (*model)(char **out, size_t *len, const td_model *m, td_error *err);
    unsigned meta;
    td_status (*predict)(td_jout *o, const td_model *m, const float *X, int64_t N,
                         const td_names_view *nv, td_error *err);
} model_codec;
static const model_codec *codec_of(td_model_kind kind);

/* m has a converter row and parameters. */
static td_status check_model(const td_model *m, td_error *err)
{
    if (!codec_of(m->kind))
        return td_fail(err, TD_EINVAL, "model", "the %s model is not available yet", "?");
    if (!m->params) return td_fail(err, TD_EINTERNAL, "model", "the model has no parameters");
    return TD_OK;
}

static td_status finish(td_sbuf *b, char **out, size_t *len, td_error *err)
{
    *out = td_sbuf_finish(b, len);
    return *out ? TD_OK : td_fail(err, TD_ENOMEM, "", "out of memory writing the response");
}

/* {"model":"gmm","covariance","weights","means","covariances","lower_bound","converged",
 * "n_iter"} of a gmm model (or embed_gmm's gmm view) into b; covariances (M, E, E) full,
 * (M, E) diag, (M) spherical, (E, E) tied. */
static void gmm_object(td_sbuf *b, const td_model *m)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    td_model_layout(m, t);
    int64_t M = m->K, E = m->D;
    td_sbuf_puts(b, "{\"model\":\"gmm\",\"covariance\":");
    td_sbuf_string(b, choice_name("covariance", (int)m->covariance));
    td_sbuf_puts(b, ",\"weights\":");
    td_sbuf_floats(b, m->params + t[0].offset, M);
    td_sbuf_puts(b, ",\"means\":");
    td_sbuf_matrix_f32(b, m->params + t[1].offset, M, E);
    td_sbuf_puts(b, ",\"covariances\":");
    const float *c = m->params + t[2].offset;
    if (m->covariance == TD_COV_FULL) {
        td_sbuf_puts(b, "[");
        for (int64_t k = 0; k < M; k++) {
            if (k) td_sbuf_puts(b, ",");
            td_sbuf_matrix_f32(b, c + k * E * E, E, E);
        }
        td_sbuf_puts(b, "]");
    } else if (m->covariance == TD_COV_DIAG) {
        td_sbuf_matrix_f32(b, c, M, E);
    } else if (m->covariance == TD_COV_TIED) { /* one (E, E) matrix, as scikit-learn */
        td_sbuf_matrix_f32(b, c, E, E);
    } else {
        td_sbuf_floats(b, c, M);
    }
    td_sbuf_puts(b, ",\"lower_bound\":");
    td_sbuf_double(b, m->lower_bound);
    td_sbuf_puts(b, m->converged ? ",\"converged\":true" : ",\"converged\":false");
    td_sbuf_printf(b, ",\"n_iter\":%lld}", (long long)m->n_iter);
}

/* ,"standardize":{"mean":(D),"scale":(D)} when m standardizes its inputs, else nothing. */
static void put_standardize(td_sbuf *b, const td_model *m)
{
    if (!m->mean) return;
    td_sbuf_puts(b, ",\"standardize\":{\"mean\":");
    td_sbuf_floats(b, m->mean, m->D);
    td_sbuf_puts(b, ",\"scale\":");
    td_sbuf_floats(b, m->scale, m->D);
    td_sbuf_puts(b, "}");
}

static td_status gmm_json(char **out, size_t *len, const td_model *m, td_error *err)
{
    if (!m->params) return td_fail(err, TD_EINTERNAL, "model", "the model has no parameters");
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_reserve(&b, (size_t)m->n_params * 14 + 256);
    gmm_object(&b, m);
    if (m->mean && !b.oom) { /* inside gmm_object's closing brace */
        b.len--;
        put_standardize(&b, m);
        td_sbuf_puts(&b, "}");
    }
    return finish(&b, out, len, err);
}

/* "layers":[{"W","b","activation"},...] of the first 2 * (n_hidden + 1) tensors t of m;
 * hidden layers carry m's activation, the output layer out_act. */
static void layers_array(td_sbuf *b, const td_model *m, const td_tensor_desc *t,
                         const char *out_act)
{
    td_sbuf_puts(b, "\"layers\":[");
    for (int l = 0; l <= m->n_hidden; l++) {
        const td_tensor_desc *W = &t[2 * l], *bias = &t[2 * l + 1];
        if (l) td_sbuf_puts(b, ",");
        td_sbuf_puts(b, "{\"W\":");
        td_sbuf_matrix_f32(b, m->params + W->offset, W->rows, W->cols);
        td_sbuf_puts(b, ",\"b\":");
        td_sbuf_floats(b, m->params + bias->offset, bias->cols);
        td_sbuf_puts(b, ",\"activation\":");
        td_sbuf_string(b,
                       l < m->n_hidden ? choice_name("activation", (int)m->activation) : out_act);
        td_sbuf_puts(b, "}");
    }
    td_sbuf_puts(b, "]");
}

/* {"model":"embed_gmm","embedding_dim":E,"network":{"layers":[...]} (output layer
 * "linear"),"gmm":{gmm's model object},"assignments":(rows)}. */
static td_status embed_json(char **out, size_t *len, const td_model *m, td_error *err)
{
    if (!m->params) return td_fail(err, TD_EINTERNAL, "model", "the model has no parameters");
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    td_model gm;
    td_embed_gmm_view(&gm, m);
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_reserve(&b, (size_t)m->n_params * 14 + 256);
    td_sbuf_printf(&b, "{\"model\":\"embed_gmm\",\"embedding_dim\":%lld,\"network\":{",
                   (long long)m->K);
    layers_array(&b, m, t, "linear");
    td_sbuf_puts(&b, "},\"gmm\":");
    gmm_object(&b, &gm);
    td_sbuf_puts(&b, ",\"assignments\":[");
    const float *a = m->params + t[nt - 1].offset;
    for (int64_t i = 0; i < m->rows; i++) {
        if (i) td_sbuf_puts(&b, ",");
        td_sbuf_int(&b, (int64_t)a[i]);
    }
    td_sbuf_puts(&b, "]");
    put_standardize(&b, m);
    td_sbuf_puts(&b, "}");
    return finish(&b, out, len, err);
}

/* {"model":"softmax","W","b" (null without a fitted bias),"intercept"[,"groups"]} */
static void softmax_body(td_sbuf *b, const td_model *m, const td_tensor_desc *t, int nt)
{
    td_sbuf_puts(b, ",\"W\":");
    td_sbuf_matrix_f32(b, m->params + t[0].offset, t[0].rows, t[0].cols);
    td_sbuf_puts(b, ",\"b\":");
    if (nt > 1)
        td_sbuf_floats(b, m->params + t[1].offset, t[1].cols);
    else
        td_sbuf_puts(b, "null");
    td_sbuf_puts(b, ",\"intercept\":");
    td_sbuf_string(b, choice_name("intercept", (int)m->intercept));
}

/* {"model":"mlp","layers":[...] (output layer "softmax")[,"groups"]} */
static void mlp_body(td_sbuf *b, const td_model *m, const td_tensor_desc *t, int nt)
{
    (void)nt;
    td_sbuf_puts(b, ",");
    layers_array(b, m, t, "softmax");
}

/* A network's model object: the name, the family's body, groups and standardize. */
static td_status net_json(char **out, size_t *len, const td_model *m,
                          void (*body)(td_sbuf *, const td_model *, const td_tensor_desc *, int),
                          td_error *err)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_reserve(&b, (size_t)m->n_params * 12 + 256);
    td_sbuf_puts(&b, "{\"model\":");
    td_sbuf_string(&b, td_model_names[m->kind]);
    body(&b, m, t, nt);
    if (m->G > 1) td_sbuf_printf(&b, ",\"groups\":%lld", (long long)m->G);
    put_standardize(&b, m);
    td_sbuf_puts(&b, "}");
    return finish(&b, out, len, err);
}

static td_status softmax_json(char **out, size_t *len, const td_model *m, td_error *err)
{
    return net_json(out, len, m, softmax_body, err);
}

static td_status mlp_json(char **out, size_t *len, const td_model *m, td_error *err)
{
    return net_json(out, len, m, mlp_body, err);
}

td_status td_json_model(char **out, size_t *len, const td_model *m, td_error *err)
{
    *out = NULL;
    td_status st = check_model(m, err);
    if (st) return st;
    return codec_of(m->kind)->model(out, len, m, err);
}

/* ---- meta ------------------------------------------------------------------------- */

td_status td_json_model_meta(char **out, const td_model *m, td_error *err)
{
    *out = NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *h = o ? cJSON_AddArrayToObject(o, "hidden") : NULL;
    int ok = h != NULL;
    for (int64_t i = 0; ok && i < m->n_hidden && i < TD_MAX_HIDDEN; i++)
        ok = cJSON_AddItemToArray(h, cJSON_CreateNumber((double)m->hidden[i]));
    const model_codec *row = codec_of(m->kind);
    ok = ok && cJSON_AddStringToObject(o, "kind", row ? td_model_names[m->kind] : "?") &&
        cJSON_AddNumberToObject(o, "D", (double)m->D) &&
        cJSON_AddNumberToObject(o, "K", (double)m->K) &&
        cJSON_AddNumberToObject(o, "G", (double)m->G) &&
        cJSON_AddStringToObject(o, "intercept", choice_name("intercept", (int)m->intercept)) &&
        cJSON_AddStringToObject(o, "activation", choice_name("activation", (int)m->activation)) &&
        cJSON_AddNumberToObject(o, "n_params", (double)m->n_params);
    if (ok && row && (row->meta & META_FIT))
        ok = cJSON_AddStringToObject(o, "covariance", /* lower_bound NaN prints as null */
                                     choice_name("covariance", (int)m->covariance)) &&
            cJSON_AddNumberToObject(o, "lower_bound", m->lower_bound) &&
            cJSON_AddBoolToObject(o, "converged", m->converged) &&
            cJSON_AddNumberToObject(o, "n_iter", (double)m->n_iter);
    if (ok && row && (row->meta & META_EMBED))
        ok = cJSON_AddNumberToObject(o, "components", (double)m->components) &&
            cJSON_AddNumberToObject(o, "rows", (double)m->rows);
    for (int i = 0; ok && m->mean && i < 2; i++) { /* float32 text: exact and shortest */
        td_sbuf a;
        td_sbuf_init(&a);
        td_sbuf_floats(&a, i ? m->scale : m->mean, m->D);
        char *text = td_sbuf_finish(&a, NULL);
        ok = text && cJSON_AddRawToObject(o, i ? "scale" : "mean", text);
        free(text);
    }
    if (ok) *out = td_json_print(o);
    cJSON_Delete(o);
    return *out ? TD_OK : td_fail(err, TD_ENOMEM, "", "out of memory");
}

/* meta.mean and meta.scale (D finite numbers each; scale > 0) into one owned block, or
 * neither. */
static td_status meta_standardize(td_model *m, const cJSON *o, td_error *err)
{
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(o, "mean");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(o, "scale");
    if (!mean && !scale) return TD_OK;
    if (!cJSON_IsArray(mean) || !cJSON_IsArray(scale) || cJSON_GetArraySize(mean) != m->D ||
        cJSON_GetArraySize(scale) != m->D)
        return td_fail(err, TD_EINVAL, "meta",
                       "meta.mean and meta.scale must be arrays of "
                       "D = %lld numbers",
                       (long long)m->D);
    m->mean = malloc(sizeof(float) * (size_t)(2 * m->D));
    if (!m->mean) return td_fail(err, TD_ENOMEM, "", "out of memory");
    m->scale = m->mean + m->D;
    const cJSON *a = mean->child, *b = scale->child;
    for (int64_t j = 0; j < m->D; j++, a = a->next, b = b->next) {
        if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || !isfinite(a->valuedouble) ||
            !(b->valuedouble > 0) || !isfinite(b->valuedouble))
            return td_fail(err, TD_EINVAL, "meta",
                           "meta.mean[%lld] or meta.scale[%lld] is "
                           "not a finite number (scale > 0)",
                           (long long)j, (long long)j);
        m->mean[j] = (float)a->valuedouble;
        m->scale[j] = (float)b->valuedouble;
    }
    return TD_OK;
}

static td_status meta_int(int64_t *out, const cJSON *o, const char *key, int64_t lo, int64_t hi,
                          td_error *err)
{
    char field[TD_JSON_PATH_MAX];
    td_json_path(field, "meta", key);
    return td_json_get_int(out, cJSON_GetObjectItemCaseSensitive(o, key), lo, hi, field, err);
}

static td_status meta_choice(int *out, const cJSON *o, const char *key, td_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = cJSON_IsString(v) ? choice_parse(key, v->valuestring) : -1;
    if (*out < 0) return td_fail(err, TD_EINVAL, "meta", "meta.%s is missing or unknown", key);
    return TD_OK;
}

static td_status from_meta(td_model *m, const cJSON *o, const float *params, int64_t n_params,
                           td_error *err)
{
    td_status st;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    int k = cJSON_IsString(kind) ? td_model_parse(kind->valuestring) : -1;
    if (k < 0) return td_fail(err, TD_EINVAL, "meta", "meta.kind is missing or unknown");
    m->kind = (td_model_kind)k;
    const model_codec *row = codec_of(m->kind);
    if (!row)
        return td_fail(err, TD_EINVAL, "meta", "the %s model is not available yet",
                       td_model_names[m->kind]);
    int intercept, act;
    int64_t meta_n;
    if ((st = meta_int(&m->D, o, "D", 1, INT32_MAX, err)) ||
        (st = meta_int(&m->K, o, "K", 1, TD_MAX_CLASSES, err)) ||
        (st = meta_int(&m->G, o, "G", 1, TD_MAX_CLASSES, err)) ||
        (st = meta_int(&meta_n, o, "n_params", 0, INT64_MAX, err)) ||
        (st = meta_choice(&intercept, o, "intercept", err)) ||
        (st = meta_choice(&act, o, "activation", err)))
        return st;
    m->intercept = (td_intercept)intercept;
    m->activation = (td_activation)act;
    if (m->K % m->G)
        return td_fail(err, TD_EINVAL, "meta", "meta.G (%lld) does not divide meta.K (%lld)",
                       (long long)m->G, (long long)m->K);
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "hidden");
    if (!cJSON_IsArray(h) || cJSON_GetArraySize(h) > TD_MAX_HIDDEN)
        return td_fail(err, TD_EINVAL, "meta",
                       "meta.hidden must be an array of at most %d "
                       "sizes",
                       TD_MAX_HIDDEN);
    for (const cJSON *c = h->child; c; c = c->next) {
        char field[TD_JSON_PATH_MAX];
        snprintf(field, sizeof field, "meta.hidden[%lld]", (long long)m->n_hidden);
        if ((st = td_json_get_int(&m->hidden[m->n_hidden], c, 1, INT32_MAX, field, err))) return st;
        m->n_hidden++;
    }
    if ((row->meta & META_EMBED) &&
        ((st = meta_int(&m->components, o, "components", 1, INT32_MAX, err)) ||
         (st = meta_int(&m->rows, o, "rows", 1, INT64_MAX, err))))
        return st;
    if (row->meta & META_FIT) {
        int cov;
        const cJSON *lb = cJSON_GetObjectItemCaseSensitive(o, "lower_bound");
        const cJSON *conv = cJSON_GetObjectItemCaseSensitive(o, "converged");
        if ((st = meta_choice(&cov, o, "covariance", err)) ||
            (st = meta_int(&m->n_iter, o, "n_iter", 0, INT64_MAX, err)))
            return st;
        if (!(cJSON_IsNumber(lb) || cJSON_IsNull(lb)) || !cJSON_IsBool(conv))
            return td_fail(err, TD_EINVAL, "meta",
                           "meta.lower_bound or meta.converged is "
                           "missing");
        m->covariance = (td_covariance)cov;
        m->lower_bound = cJSON_IsNumber(lb) ? lb->valuedouble : NAN;
        m->converged = cJSON_IsTrue(conv);
    }
    if (!params) return td_fail(err, TD_EINVAL, "meta", "no parameters were given");
    if ((row->meta & META_NO_HIDDEN) && m->n_hidden)
        return td_fail(err, TD_EINVAL, "meta", "a softmax model has no hidden layers");
    m->n_params = td_model_nparams(m);
    if (m->n_params != meta_n || m->n_params != n_params)
        return td_fail(err, TD_EINVAL, "meta",
                       "the model needs %lld parameters; the meta says "
                       "%lld and %lld were given",
                       (long long)m->n_params, (long long)meta_n, (long long)n_params);
    m->params = malloc(sizeof(float) * (size_t)(n_params > 0 ? n_params : 1));
    if (!m->params) return td_fail(err, TD_ENOMEM, "", "out of memory");
    memcpy(m->params, params, sizeof(float) * (size_t)n_params);
    return meta_standardize(m, o, err);
}

td_status td_json_model_from_meta(td_model *m, const char *meta, size_t meta_len,
                                  const float *params, int64_t n_params, td_error *err)
{
    memset(m, 0, sizeof *m);
    cJSON *o;
    td_status st = td_json_parse(&o, meta, meta_len, err);
    if (!st) {
        st = from_meta(m, o, params, n_params, err);
        cJSON_Delete(o);
    }
    if (st) {
        td_model_fini(m);
        memset(m, 0, sizeof *m);
        /* a stored meta that does not read back is the daemon's fault, not the client's */
        if (st == TD_EINVAL || st == TD_EMALFORMED) st = TD_EINTERNAL;
        if (err) {
            char msg[sizeof err->message];
            snprintf(msg, sizeof msg, "%s", err->message);
            td_fail(err, st, "", "stored model meta is invalid: %s", msg);
        }
    }
    return st;
}

/* ---- predictions ------------------------------------------------------------------ */

static td_status read_X(float **X, int64_t *N, const cJSON *root, td_dstream *s, const td_model *m,
                        td_error *err);

/* The predict body: X streams into its float32 array; any other key is refused by the
 * key check. */
static const char *const predict_arrays[] = {"X", NULL};
static const char *const predict_small[] = {"dataset", NULL};

td_dstream *td_json_predict_stream(uint64_t size_hint)
{
    return td_dstream_object(predict_arrays, predict_small, NULL, size_hint);
}

td_status td_json_predict_input(float **X, int64_t *N, char *dataset, size_t cap, td_dstream *s,
                                const td_model *m, td_error *err)
{
    static const char *const keys[] = {"X", "dataset", NULL};
    dataset[0] = '\0';
    *X = NULL;
    *N = 0;
    const cJSON *root;
    td_status st = td_dstream_object_finish(s, &root, err);
    if (st || (st = td_json_check_keys(root, NULL, "the predict body", keys, err))) return st;
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "dataset");
    if (ds && cJSON_GetObjectItemCaseSensitive(root, "X"))
        return td_fail(err, TD_EINVAL, "dataset",
                       "give either X (the rows) or dataset (the id "
                       "of a stored dataset), not both");
    if (!ds) return read_X(X, N, root, s, m, err);
    return td_json_dataset_id(dataset, cap, ds, err);
}

/* Reads the streamed {"X": [[...]]}: *X (N, D) malloc'd; D must equal m->D. */
td_status td_json_predict_read(float **X, int64_t *N, td_dstream *s, const td_model *m,
                               td_error *err)
{
    static const char *const keys[] = {"X", NULL};
    *X = NULL;
    *N = 0;
    const cJSON *root;
    td_status st = td_dstream_object_finish(s, &root, err);
    if (st) return st;
    if ((st = td_json_check_keys(root, NULL, "the predict body", keys, err))) return st;
    return read_X(X, N, root, s, m, err);
}

/* X of the finished predict body root: *X (N, D) malloc'd; D must equal m->D. */
static td_status read_X(float **X, int64_t *N, const cJSON *root, td_dstream *s, const td_model *m,
                        td_error *err)
{
    td_status st;
    int64_t D = 0;
    if (!cJSON_GetObjectItemCaseSensitive(root, "X"))
        return td_fail(err, TD_EINVAL, "X", "X is required: the samples as an array of rows");
    td_jarray *x = td_dstream_array(s, "X");
    if (!x) /* "X": null */
        return td_json_fail_not_rows("X", TD_JV_NULL, err);
    if ((st = td_jarray_matrix_f32(X, N, &D, x, 0, "X", err))) return st;
    if (D != m->D) {
        st = td_fail(err, TD_EINVAL, "X", "X has %lld columns, the model expects %lld features",
                     (long long)D, (long long)m->D);
        free(*X);
        *X = NULL;
        *N = 0;
    }
    return st;
}

td_status td_json_predict_parse(float **X, int64_t *N, const char *body, size_t len,
                                const td_model *m, td_error *err)
{
    *X = NULL;
    *N = 0;
    td_dstream *s = td_json_predict_stream(len);
    if (!s) return td_fail(err, TD_ENOMEM, "", "out of memory reading the body");
    td_dstream_feed(s, body, len);
    td_status st = td_json_predict_read(X, N, s, m, err);
    td_dstream_destroy(s);
    return st;
}

static void put_f32(td_jout *o, float **v, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    int64_t dims[3] = {d0, d1, d2};
    td_jout_f32(o, *v, ndim, dims);
    *v = NULL;
}

static void put_i32(td_jout *o, int32_t **v, int ndim, int64_t d0, int64_t d1)
{
    int64_t dims[2] = {d0, d1};
    td_jout_i32(o, *v, ndim, dims);
    *v = NULL;
}

static td_status written(const td_jout *o, td_error *err)
{
    return td_jout_failed(o) ? td_fail(err, TD_ENOMEM, "",
                                       "out of memory writing the "
                                       "response")
                             : TD_OK;
}

/* labels[0..N) as the class names they index (names has K entries), then
 * ,"classes":[...]; labels is freed. -1 when out of memory. */
static int put_names(td_jout *o, int32_t **labels, int64_t N, const td_names_view *nv)
{
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b, "[");
    for (int64_t i = 0; i < N; i++) {
        if (i) td_sbuf_puts(&b, ",");
        int32_t k = (*labels)[i];
        if (k >= 0 && k < nv->n)
            td_sbuf_string(&b, nv->v[k]);
        else
            td_sbuf_int(&b, k);
    }
    td_sbuf_puts(&b, "],\"classes\":[");
    for (int64_t k = 0; k < nv->n; k++) {
        if (k) td_sbuf_puts(&b, ",");
        td_sbuf_string(&b, nv->v[k]);
    }
    td_sbuf_puts(&b, "]");
    int ok = b.data && !b.oom;
    if (ok) td_jout_text(o, b.data);
    td_sbuf_fini(&b);
    free(*labels);
    *labels = NULL;
    return ok ? 0 : -1;
}

/* The predictions object of probs (N, K) and labels (N, G), both handed over; with class
 * names (nv non-NULL, G == 1) the labels are names and "classes" follows. */
static td_status predictions_out(td_jout *o, const td_model *m, float **probs, int32_t **labels,
                                 int64_t N, const td_names_view *nv, td_error *err)
{
    int64_t G = m->G > 0 ? m->G : 1, K = m->K, S = K / G;
    td_jout_text(o, "{\"probabilities\":");
    if (G == 1 && nv) {
        put_f32(o, probs, 2, N, K, 0);
        td_jout_text(o, ",\"labels\":");
        if (put_names(o, labels, N, nv)) {
            free(*probs), *probs = NULL;
            return td_fail(err, TD_ENOMEM, "", "out of memory writing the response");
        }
    } else if (G == 1) {
        put_f32(o, probs, 2, N, K, 0);
        td_jout_text(o, ",\"labels\":");
        put_i32(o, labels, 1, N, 0);
    } else {
        put_f32(o, probs, 3, N, G, S);
        td_jout_text(o, ",\"labels\":");
        put_i32(o, labels, 2, N, G);
    }
    td_jout_text(o, "}");
    return written(o, err);
}

td_status td_json_predictions(char **out, size_t *len, const td_model *m, const float *probs,
                              const int32_t *labels, int64_t N, td_error *err)
{
    *out = NULL;
    int64_t G = m->G > 0 ? m->G : 1;
    float *p = malloc(sizeof(float) * (size_t)(N * m->K + 1));
    int32_t *l = malloc(sizeof(int32_t) * (size_t)(N * G + 1));
    td_jout *o = td_jout_new();
    td_status st;
    if (!p || !l || !o) {
        st = td_fail(err, TD_ENOMEM, "", "out of memory writing the response");
        goto done;
    }
    memcpy(p, probs, sizeof(float) * (size_t)(N * m->K));
    memcpy(l, labels, sizeof(int32_t) * (size_t)(N * G));
    if ((st = predictions_out(o, m, &p, &l, N, NULL, err))) goto done;
    if (!(*out = td_jout_string(o, len)))
        st = td_fail(err, TD_ENOMEM, "", "out of memory writing the response");
done:
    free(p);
    free(l);
    td_jout_free(o);
    return st;
}

/* gmm: {"labels": (N), "responsibilities": (N, M), "log_likelihood": (N)};
 * embed_gmm: the same after "embedding": (N, E). */
static td_status mixture_out(td_jout *o, const td_model *m, const float *X, int64_t N,
                             const td_names_view *nv, td_error *err)
{
    int embed = (codec_of(m->kind)->meta & META_EMBED) != 0;
    int64_t M = embed ? m->components : m->K, E = m->K;
    float *emb = embed ? malloc(sizeof(float) * (size_t)(N * E + 1)) : NULL;
    float *resp = malloc(sizeof(float) * (size_t)(N * M + 1));
    float *ll = malloc(sizeof(float) * (size_t)(N + 1));
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)(N + 1));
    td_status st;
    if ((embed && !emb) || !resp || !ll || !labels) {
        st = td_fail(err, TD_ENOMEM, "", "out of memory for %lld predictions", (long long)N);
        goto done;
    }
    if (embed)
        st = td_embed_predict(emb, labels, resp, ll, m, X, N, m->D, err);
    else
        st = td_gmm_predict(labels, resp, ll, m, X, N, m->D, err);
    if (st) goto done;
    td_jout_text(o, "{");
    if (embed) {
        td_jout_text(o, "\"embedding\":");
        put_f32(o, &emb, 2, N, E, 0);
        td_jout_text(o, ",");
    }
    td_jout_text(o, "\"labels\":");
    put_i32(o, &labels, 1, N, 0);
    td_jout_text(o, ",\"responsibilities\":");
    put_f32(o, &resp, 2, N, M, 0);
    td_jout_text(o, ",\"log_likelihood\":");
    put_f32(o, &ll, 1, N, 0, 0);
    td_jout_text(o, "}");
    st = written(o, err);
done:
    free(emb), free(resp), free(ll), free(labels);
    return st;
}

/* softmax / mlp: the predictions object. */
static td_status net_out(td_jout *o, const td_model *m, const float *X, int64_t N,
                         const td_names_view *nv, td_error *err)
{
    int64_t G = m->G > 0 ? m->G : 1;
    float *probs = malloc(sizeof(float) * (size_t)(N * m->K));
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)(N * G));
    td_status st;
    if (!probs || !labels) {
        st = td_fail(err, TD_ENOMEM, "", "out of memory for %lld predictions", (long long)N);
        goto done;
    }
    if ((st = td_model_predict(probs, labels, m, X, N, m->D, err))) goto done;
    st = predictions_out(o, m, &probs, &labels, N, nv, err);
done:
    free(probs);
    free(labels);
    return st;
}

static const model_codec codecs[TD_MODEL_COUNT] = {
    [TD_MODEL_SOFTMAX] = {softmax_json, META_NO_HIDDEN, net_out},
    [TD_MODEL_MLP] = {mlp_json, 0, net_out},
    [TD_MODEL_GMM] = {gmm_json, META_FIT, mixture_out},
    [TD_MODEL_EMBED_GMM] = {embed_json, META_FIT | META_EMBED, mixture_out},
};

static const model_codec *codec_of(td_model_kind kind)
{
    return (unsigned)kind < TD_MODEL_COUNT ? &codecs[kind] : NULL;
}

td_status td_json_predict_out(td_jout **out, const td_model *m, float *X, int64_t N,
                              const td_names_view *nv, td_error *err)
{
    *out = NULL;
    td_status st = check_model(m, err);
    if (st) {
        free(X);
        return st;
    }
    if (nv && nv->n != m->K)
        nv = NULL; /* names only for a model of one label per row over exactly them */
    td_jout *o = td_jout_new();
    if (!o) {
        free(X);
        return td_fail(err, TD_ENOMEM, "", "out of memory for %lld predictions", (long long)N);
    }
    st = codec_of(m->kind)->predict(o, m, X, N, nv, err);
    free(X);
    if (st) {
        td_jout_free(o);
        return st;
    }
    *out = o;
    return TD_OK;
}

td_status td_json_predict_finish(td_jout **out, const td_model *m, td_dstream *s, td_error *err)
{
    *out = NULL;
    float *X = NULL;
    int64_t N;
    td_status st = check_model(m, err);
    if (st || (st = td_json_predict_read(&X, &N, s, m, err))) return st;
    return td_json_predict_out(out, m, X, N, NULL, err);
}

td_status td_json_predict(char **out, size_t *len, const td_model *m, const char *body,
                          size_t body_len, td_error *err)
{
    *out = NULL;
    if (len) *len = 0;
    td_dstream *s = td_json_predict_stream(body_len);
    if (!s) return td_fail(err, TD_ENOMEM, "", "out of memory reading the body");
    td_dstream_feed(s, body, body_len);
    td_jout *o;
    td_status st = td_json_predict_finish(&o, m, s, err);
    td_dstream_destroy(s);
    if (st) return st;
    *out = td_jout_string(o, len);
    td_jout_free(o);
    return *out ? TD_OK : td_fail(err, TD_ENOMEM, "", "out of memory writing the response");
}
