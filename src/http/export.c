/* export.c — datasets, models and predictions as .npz / CSV / C (contract in export.h).
 *
 * Every answer here is a set of named arrays (float32 or int32, up to 3-D) written one
 * of a few ways: an .npz (codec/npz_write.h) or a JSON object of nested arrays. */
#define _GNU_SOURCE /* strcasestr */
#include "http/export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/model_c.h"
#include "codec/model_onnx.h"
#include "codec/npy.h"
#include "codec/npz_write.h"
#include "codec/json_model.h"
#include "codec/json_util.h"
#include "http/npy_upload.h"

typedef enum { F_JSON, F_CSV, F_NPZ, F_C, F_ONNX, F_NONE } fmt;
static const char *const FMT_NAMES[] = {"json", "csv", "npz", "c", "onnx"};
static const char *const FMT_TYPES[] = {"application/json", "text/csv", "application/zip",
                                        "text/x-c", "application/onnx"};

#define MAX_ARRAYS (TD_MAX_TENSORS + 2) /* a model's tensors, mean and scale */

typedef struct array {
    char name[48];
    int is_int; /* int32, else float32 */
    int ndim;
    int64_t shape[3];
    const void *data; /* borrowed */
} array;

typedef struct array_set {
    array a[MAX_ARRAYS];
    int n;
} array_set;

static void add(array_set *s, const char *name, int is_int, const void *data, int ndim, int64_t d0,
                int64_t d1, int64_t d2)
{
    if (s->n >= MAX_ARRAYS) return;
    array *a = &s->a[s->n++];
    snprintf(a->name, sizeof a->name, "%s", name);
    a->is_int = is_int;
    a->data = data;
    a->ndim = ndim;
    a->shape[0] = d0, a->shape[1] = d1, a->shape[2] = d2;
}

/* The format asked for: ?format= (one of allowed, a bitmask of 1 << fmt), else the
 * Accept header, else JSON. F_NONE after answering 422. */
static fmt pick_format(const td_req *req, td_resp *resp, unsigned allowed)
{
    const char *q = td_req_query(req, "format");
    if (q) {
        for (int f = 0; f < F_NONE; f++)
            if ((allowed & (1u << f)) && strcmp(q, FMT_NAMES[f]) == 0) return (fmt)f;
        char list[64] = "";
        for (int f = 0; f < F_NONE; f++)
            if (allowed & (1u << f))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         list[0] ? ", " : "", FMT_NAMES[f]);
        td_resp_error(resp, 422, "invalid_argument", "format",
                      "format must be one of %s; "
                      "got \"%s\"",
                      list, q);
        return F_NONE;
    }
    const char *acc = td_req_header(req, "Accept");
    for (int f = 1; acc && f < F_NONE; f++)
        if ((allowed & (1u << f)) && strcasestr(acc, FMT_TYPES[f])) return (fmt)f;
    return F_JSON;
}

static void answer_bytes(td_resp *resp, fmt f, char *body, size_t len, const char *file)
{
    resp->status = 200;
    resp->content_type = FMT_TYPES[f];
    resp->body = body;
    resp->body_len = len;
    if (file) td_resp_header(resp, "Content-Disposition", "attachment; filename=\"%s\"", file);
}

static td_status write_npz(const array_set *s, char **out, size_t *len, td_error *err)
{
    td_npz_writer *w = td_npz_writer_create();
    if (!w) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    for (int i = 0; i < s->n; i++) {
        const array *a = &s->a[i];
        td_status st = td_npz_writer_add(w, a->name, a->is_int ? TD_NPY_I4 : TD_NPY_F4, a->ndim,
                                         a->shape, a->data, err);
        if (st) {
            td_npz_writer_destroy(w);
            return st;
        }
    }
    return td_npz_writer_finish(w, out, len, err);
}

static void json_array(td_sbuf *b, const array *a)
{
    int64_t inner = a->ndim == 3 ? a->shape[1] * a->shape[2] : 0;
    if (a->ndim == 1) {
        if (a->is_int)
            td_sbuf_ints(b, a->data, a->shape[0]);
        else
            td_sbuf_floats(b, a->data, a->shape[0]);
    } else if (a->ndim == 2) {
        if (a->is_int)
            td_sbuf_matrix_i32(b, a->data, a->shape[0], a->shape[1]);
        else
            td_sbuf_matrix_f32(b, a->data, a->shape[0], a->shape[1]);
    } else {
        td_sbuf_puts(b, "[");
        for (int64_t i = 0; i < a->shape[0]; i++) {
            if (i) td_sbuf_puts(b, ",");
            if (a->is_int)
                td_sbuf_matrix_i32(b, (const int32_t *)a->data + i * inner, a->shape[1],
                                   a->shape[2]);
            else
                td_sbuf_matrix_f32(b, (const float *)a->data + i * inner, a->shape[1], a->shape[2]);
        }
        td_sbuf_puts(b, "]");
    }
}

/* {"<name>": nested arrays, ...}; name_key adds "name": name_val (NULL: null). */
static td_status write_json(const array_set *s, const char *name_key, const char *name_val,
                            char **out, size_t *len, td_error *err)
{
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b, "{");
    for (int i = 0; i < s->n; i++) {
        td_sbuf_key(&b, s->a[i].name, i == 0);
        json_array(&b, &s->a[i]);
    }
    if (name_key) {
        td_sbuf_key(&b, name_key, s->n == 0);
        td_sbuf_string(&b, name_val);
    }
    td_sbuf_puts(&b, "}");
    *out = td_sbuf_finish(&b, len);
    return *out ? TD_OK : td_fail(err, TD_ENOMEM, NULL, "out of memory writing the response");
}

/* ---- datasets ----------------------------------------------------------------------- */

static td_status write_csv(const td_dataset *ds, char **out, size_t *len, td_error *err)
{
    if (ds->Y || ds->P > 0 || (ds->y && ds->y_cols != 1))
        return td_fail(err, TD_EINVAL, "format",
                       "CSV holds X and at most one label column; "
                       "this dataset has %s: use format json or npz",
                       ds->Y           ? "probability targets Y"
                           : ds->P > 0 ? "pairs"
                                       : "grouped labels");
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_reserve(&b, (size_t)(ds->N * (ds->D + 1)) * 12);
    for (int64_t i = 0; i < ds->N; i++) {
        for (int64_t j = 0; j < ds->D; j++) {
            if (j) td_sbuf_put(&b, ",", 1);
            td_sbuf_float(&b, ds->X[i * ds->D + j]);
        }
        if (ds->y) {
            td_sbuf_put(&b, ",", 1);
            td_sbuf_int(&b, ds->y[i]);
        }
        td_sbuf_put(&b, "\n", 1);
    }
    *out = td_sbuf_finish(&b, len);
    return *out ? TD_OK : td_fail(err, TD_ENOMEM, NULL, "out of memory writing the response");
}

void td_export_dataset(td_store *s, const td_req *req, td_resp *resp)
{
    fmt f = pick_format(req, resp, 1u << F_JSON | 1u << F_CSV | 1u << F_NPZ);
    if (f == F_NONE) return;
    td_error err = {{0}, {0}};
    td_stored_dataset sd;
    td_status st = td_store_dataset_load(s, req->params[0], &sd, &err);
    if (st) {
        td_resp_from_error(resp, st, &err);
        return;
    }
    const td_dataset *ds = &sd.ds;
    array_set set = {.n = 0};
    add(&set, "X", 0, ds->X, 2, ds->N, ds->D, 0);
    if (ds->y && ds->y_cols == 1)
        add(&set, "y", 1, ds->y, 1, ds->N, 0, 0);
    else if (ds->y)
        add(&set, "y", 1, ds->y, 2, ds->N, ds->y_cols, 0);
    if (ds->Y) add(&set, "Y", 0, ds->Y, 2, ds->N, ds->Y_cols, 0);
    if (ds->P > 0) {
        add(&set, "pairs", 1, ds->pairs, 2, ds->P, 2, 0);
        add(&set, "pair_labels", 1, ds->pair_labels, 1, ds->P, 0, 0);
    }
    char *out = NULL, file[TD_ID_MAX + 8];
    size_t len = 0;
    snprintf(file, sizeof file, "%s.%s", sd.meta.id, FMT_NAMES[f]);
    if (f == F_NPZ)
        st = write_npz(&set, &out, &len, &err);
    else if (f == F_CSV)
        st = write_csv(ds, &out, &len, &err);
    else
        st = write_json(&set, "name", sd.meta.name[0] ? sd.meta.name : NULL, &out, &len, &err);
    td_stored_dataset_fini(&sd);
    if (st)
        td_resp_from_error(resp, st, &err);
    else
        answer_bytes(resp, f, out, len, f == F_JSON ? NULL : file);
}

/* ---- models ------------------------------------------------------------------------- */

int td_export_model_wanted(const td_req *req)
{
    const char *q = td_req_query(req, "format");
    const char *acc = td_req_header(req, "Accept");
    return (q && strcmp(q, "json") != 0) ||
        (acc &&
         (strcasestr(acc, "application/zip") || strcasestr(acc, "text/x-c") ||
          strcasestr(acc, "application/onnx")));
}

/* The model's tensors under their JSON names. */
static void model_arrays(array_set *set, const td_model *m)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    int n = td_model_layout(m, t);
    int net = m->kind == TD_MODEL_MLP || m->kind == TD_MODEL_EMBED_GMM;
    int embed = m->kind == TD_MODEL_EMBED_GMM; /* {"network":{"layers"},"gmm":{..}} */
    for (int i = 0; i < n; i++) {
        char name[48];
        int is_net = net && (!strcmp(t[i].name, "W") || !strcmp(t[i].name, "b"));
        if (is_net)
            snprintf(name, sizeof name, "%slayers.%d.%.15s", embed ? "network." : "", t[i].layer,
                     t[i].name);
        else
            snprintf(name, sizeof name, "%s%.15s",
                     embed && strcmp(t[i].name, "assignments") ? "gmm." : "", t[i].name);
        const float *p = m->params + t[i].offset;
        int64_t E = m->kind == TD_MODEL_EMBED_GMM ? m->K : m->D;
        if (!strcmp(t[i].name, "covariances") && m->covariance == TD_COV_FULL)
            add(set, name, 0, p, 3, t[i].rows, E, E);
        else if (t[i].rows == 1)
            add(set, name, 0, p, 1, t[i].cols, 0, 0);
        else
            add(set, name, 0, p, 2, t[i].rows, t[i].cols, 0);
    }
    if (m->mean) { /* standardize: x' = (x - mean) / scale before the model; JSON paths */
        add(set, "standardize.mean", 0, m->mean, 1, m->D, 0, 0);
        add(set, "standardize.scale", 0, m->scale, 1, m->D, 0, 0);
    }
}

void td_export_model(const td_model *m, const td_req *req, td_resp *resp)
{
    td_export_model_named(m, NULL, 0, NULL, req, resp);
}

void td_export_model_named(const td_model *m, char *const *names, int64_t n_names,
                           const char *names_json, const td_req *req, td_resp *resp)
{
    fmt f = pick_format(req, resp, 1u << F_JSON | 1u << F_NPZ | 1u << F_C | 1u << F_ONNX);
    if (f == F_NONE) return;
    td_error err = {{0}, {0}};
    char *out = NULL;
    size_t len = 0;
    td_status st;
    if (f == F_C) {
        st = td_model_c_header_named(&out, &len, m, names, n_names, &err);
    } else if (f == F_ONNX) {
        st = td_model_onnx_meta(&out, &len, m, names_json, &err);
    } else {
        array_set set = {.n = 0};
        model_arrays(&set, m);
        st = f == F_NPZ ? write_npz(&set, &out, &len, &err)
                        : write_json(&set, NULL, NULL, &out, &len, &err);
    }
    if (st)
        td_resp_from_error(resp, st, &err);
    else
        answer_bytes(resp, f, out, len,
                     f == F_NPZ        ? "model.npz"
                         : f == F_C    ? "traind_model.h"
                         : f == F_ONNX ? "model.onnx"
                                       : NULL);
}

/* ---- predictions -------------------------------------------------------------------- */

int td_export_npy_body(const td_req *req)
{
    return td_npy_upload_kind(td_req_header(req, "Content-Type")) == 0; /* npy_upload.h */
}

int td_export_predict_wanted(const td_req *req)
{
    const char *acc = td_req_header(req, "Accept");
    return td_export_npy_body(req) || (acc && strcasestr(acc, "application/zip"));
}

td_status td_export_npy_X(float **X, int64_t *N, const void *data, size_t len, const td_model *m,
                          td_error *err)
{
    td_npy_header h;
    const uint8_t *body = data;
    td_status st = td_npy_header_parse(&h, body, len, "X.npy", err);
    if (st) return st;
    if (h.kind == 'U')
        return td_fail(err, TD_EINVAL, "X.npy",
                       "X.npy: dtype '%s' (strings) is not "
                       "supported; use a numeric array",
                       h.descr);
    if (h.ndim != 2 || h.shape[0] < 1 || h.shape[1] != m->D)
        return td_fail(err, TD_EINVAL, "X.npy",
                       "X.npy must be 2-D (n_samples >= 1, %lld "
                       "features) for this model",
                       (long long)m->D);
    if (len - h.header_bytes != h.data_bytes)
        return td_fail(err, TD_EINVAL, "X.npy",
                       "X.npy: the data is %zu bytes; the header "
                       "says %llu",
                       len - h.header_bytes, (unsigned long long)h.data_bytes);
    int64_t n = h.shape[0], D = h.shape[1];
    float *x = malloc(sizeof(float) * (size_t)h.count), *t = NULL;
    if (!x || (h.fortran_order && !(t = malloc(sizeof(float) * (size_t)h.count)))) {
        free(x);
        return td_fail(err, TD_ENOMEM, "X.npy", "out of memory for X");
    }
    td_npy_to_f32(x, body + h.header_bytes, (size_t)h.count, &h);
    if (t) { /* Fortran order: column j is x[j * n ..] */
        for (int64_t j = 0; j < D; j++)
            for (int64_t i = 0; i < n; i++)
                t[i * D + j] = x[j * n + i];
        free(x);
        x = t;
    }
    for (int64_t k = 0; k < n * D; k++)
        if (!isfinite(x[k])) {
            char path[64];
            snprintf(path, sizeof path, "X[%lld][%lld]", (long long)(k / D), (long long)(k % D));
            free(x);
            return td_fail(err, TD_EINVAL, path,
                           "%s is not finite as float32; only finite "
                           "numbers are allowed",
                           path);
        }
    *X = x;
    *N = n;
    return TD_OK;
}

void td_export_predict(const td_model *m, float *X, int64_t N, const td_req *req, td_resp *resp)
{
    td_error err = {{0}, {0}};
    float *a = NULL, *b = NULL, *c = NULL;
    int32_t *labels = NULL;
    const char *acc = td_req_header(req, "Accept");
    fmt f = acc && strcasestr(acc, "application/zip") ? F_NPZ : F_JSON;
    td_status st;
    int64_t G = m->G > 0 ? m->G : 1, K = m->K,
            M = m->kind == TD_MODEL_EMBED_GMM ? m->components : m->K;
    /* a: probabilities | responsibilities (N, K | M); b: log_likelihood (N);
     * c: embedding (N, E); labels (N, G) */
    a = malloc(sizeof(float) * (size_t)(N * (K > M ? K : M) + 1));
    b = malloc(sizeof(float) * (size_t)(N + 1));
    c = malloc(sizeof(float) * (size_t)(N * K + 1));
    labels = malloc(sizeof(int32_t) * (size_t)(N * G + 1));
    if (!a || !b || !c || !labels) {
        st = td_fail(&err, TD_ENOMEM, "", "out of memory for %lld predictions", (long long)N);
        goto done;
    }
    array_set set = {.n = 0};
    if (m->kind == TD_MODEL_GMM) {
        st = td_gmm_predict(labels, a, b, m, X, N, m->D, &err);
    } else if (m->kind == TD_MODEL_EMBED_GMM) {
        st = td_embed_predict(c, labels, a, b, m, X, N, m->D, &err);
        add(&set, "embedding", 0, c, 2, N, K, 0);
    } else {
        st = td_model_predict(a, labels, m, X, N, m->D, &err);
        if (G > 1) {
            add(&set, "probabilities", 0, a, 3, N, G, K / G);
            add(&set, "labels", 1, labels, 2, N, G, 0);
        } else {
            add(&set, "probabilities", 0, a, 2, N, K, 0);
            add(&set, "labels", 1, labels, 1, N, 0, 0);
        }
    }
    if (m->kind == TD_MODEL_GMM || m->kind == TD_MODEL_EMBED_GMM) {
        add(&set, "labels", 1, labels, 1, N, 0, 0);
        add(&set, "responsibilities", 0, a, 2, N, M, 0);
        add(&set, "log_likelihood", 0, b, 1, N, 0, 0);
    }
    if (st) goto done;
    char *out = NULL;
    size_t len = 0;
    st = f == F_NPZ ? write_npz(&set, &out, &len, &err)
                    : write_json(&set, NULL, NULL, &out, &len, &err);
    if (!st) answer_bytes(resp, f, out, len, f == F_NPZ ? "predictions.npz" : NULL);
done:
    if (st == TD_EMALFORMED)
        td_resp_error(resp, 400, "malformed_json", NULL, "%s", err.message);
    else if (st)
        td_resp_from_error(resp, st, &err);
    free(X), free(a), free(b), free(c), free(labels);
}
