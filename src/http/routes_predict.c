/* routes_predict.c — what a job's model answers: GET /v1/jobs/{id}/model (JSON or an
 * export), POST .../predict and .../evaluate, and POST /v1/loss. Route table and
 * conventions: routes.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/class_names.h"
#include "codec/json_eval.h"
#include "codec/json_loss.h"
#include "codec/json_model.h"
#include "codec/json_out.h"
#include "codec/stream_dataset.h"
#include "http/export.h"
#include "http/routes_impl.h"
#include "store/store.h"
#include "traind/train.h"
#include "util/budget.h"
#include "util/names.h"

/* Answers 200 with the writer o (owned by the response from now on). */
static void answer_stream(td_resp *resp, td_jout *o)
{
    resp->status = 200;
    resp->content_type = "application/json";
    resp->stream = td_jout_read;
    resp->stream_ctx = o;
    resp->stream_free = td_jout_free;
}

/* Loads the job's latest model (final, or the last checkpoint of a running job). */
static td_status load_model(td_app *app, const char *id, td_model *m, td_error *err)
{
    td_job_row row;
    td_status st = td_store_job_get(app->store, id, &row, err);
    if (st) return st;
    int has = row.has_model;
    td_job_state state = row.state;
    td_job_row_fini(&row);
    if (!has)
        return td_fail(err, TD_ECONFLICT, NULL,
                       "job %s has no model yet (state %s): a model exists once the first "
                       "checkpoint is written",
                       id, td_job_state_name(state));
    char *meta = NULL;
    float *params = NULL;
    int64_t n = 0;
    if ((st = td_store_model_get(app->store, id, &meta, &params, &n, err))) return st;
    st = td_json_model_from_meta(m, meta, strlen(meta), params, n, err);
    td_store_free(meta);
    td_store_free(params);
    return st;
}

/* The class names a job's dataset gave (td_job_row.classes): *names malloc'd (free with
 * td_strings_free), or NULL with *n 0 when it has none. */
static td_status job_classes(td_app *app, const char *id, char ***names, int64_t *n, td_error *err)
{
    *names = NULL;
    *n = 0;
    td_job_row row;
    td_status st = td_store_job_get(app->store, id, &row, err);
    if (st) return st;
    if (row.classes) st = td_strings_parse(row.classes, names, n, err);
    td_job_row_fini(&row);
    return st;
}

void td_h_job_model(void *a, const td_req *req, td_resp *resp)
{
    td_error err = {{0}, {0}};
    td_model m = {0};
    td_status st = load_model(a, req->params[0], &m, &err);
    char *out = NULL;
    size_t len = 0;
    if (st == TD_OK && td_export_model_wanted(req)) { /* npz, C, ONNX: export.h */
        td_job_row row;
        char **names = NULL;
        int64_t K = 0;
        int got = td_store_job_get(((td_app *)a)->store, req->params[0], &row, NULL) == TD_OK;
        if (got && row.classes) td_strings_parse(row.classes, &names, &K, NULL);
        td_export_model_named(&m, names, K, names ? row.classes : NULL, req, resp);
        td_strings_free(names, K);
        if (got) td_job_row_fini(&row);
        td_model_fini(&m);
        return;
    }
    if (st == TD_OK) st = td_json_model(&out, &len, &m, &err);
    td_model_fini(&m);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    td_job_row row; /* + "classes": the dataset's class names, or null */
    if (td_store_job_get(((td_app *)a)->store, req->params[0], &row, NULL) == TD_OK) {
        const char *c = row.classes ? row.classes : "null";
        char *with = len && out[len - 1] == '}' ? malloc(len + strlen(c) + 16) : NULL;
        if (with) {
            snprintf(with, len + strlen(c) + 16, "%.*s,\"classes\":%s}", (int)(len - 1), out, c);
            free(out);
            out = with;
        }
        td_job_row_fini(&row);
    }
    td_resp_json(resp, 200, out);
}

/* The rows X (N, D; malloc'd copy) of stored dataset id, which must have D features;
 * ds (may be NULL) keeps the whole loaded dataset for the caller (labels). */
static td_status dataset_rows(td_app *app, const char *id, int64_t D, float **X, int64_t *N,
                              td_stored_dataset *ds, td_error *err)
{
    td_stored_dataset sd = {0};
    td_status st = td_store_dataset_load(app->store, id, &sd, err);
    if (st == TD_ENOTFOUND) st = td_app_no_dataset(app, "dataset", id, err);
    if (st == TD_OK && sd.ds.D != D)
        st = td_fail(err, TD_EINVAL, "dataset",
                     "dataset %s has %lld features, the model "
                     "expects %lld",
                     id, (long long)sd.ds.D, (long long)D);
    if (st == TD_OK && !(*X = malloc(sizeof(float) * (size_t)(sd.ds.N * D))))
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory for %lld rows", (long long)sd.ds.N);
    if (st == TD_OK) {
        memcpy(*X, sd.ds.X, sizeof(float) * (size_t)(sd.ds.N * D));
        *N = sd.ds.N;
    }
    if (st == TD_OK && ds)
        *ds = sd;
    else
        td_stored_dataset_fini(&sd);
    return st;
}

/* A predict body: JSON through the object stream, or an .npy (X alone) kept whole (its
 * header tells the layout only at the end of a variable-length prefix; max_body_mb bounds
 * it, and the budget counts it like any body). */
typedef struct predict_state {
    td_dstream *json; /* JSON body; NULL for .npy */
    char *raw;        /* .npy body so far (len of cap bytes) */
    size_t len, cap;
} predict_state;

static void *predict_begin(void *a, const td_req *req)
{
    (void)a;
    predict_state *p = calloc(1, sizeof *p);
    if (p && !td_export_npy_body(req) && !(p->json = td_json_predict_stream(size_hint(req)))) {
        free(p);
        p = NULL;
    }
    return p;
}

static int predict_piece(void *state, const char *data, size_t len)
{
    predict_state *p = state;
    if (p->json) return td_dstream_feed(p->json, data, len);
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : 1 << 16;
        while (cap < p->len + len)
            cap *= 2;
        char *r = realloc(p->raw, cap);
        if (!r) return 1; /* the end finds the body short: a clear 422 */
        p->raw = r;
        p->cap = cap;
    }
    memcpy(p->raw + p->len, data, len);
    p->len += len;
    return 0;
}

static void predict_free(void *state)
{
    predict_state *p = state;
    if (!p) return;
    td_dstream_destroy(p->json);
    free(p->raw);
    free(p);
}

/* Memory a prediction of N rows holds beyond X (an estimate, as the jobs' are): the
 * outputs (probabilities or responsibilities, labels, log-likelihoods, embeddings) and
 * the per-row scratch of the forward pass, twice over for an answer built whole (.npz). */
static uint64_t predict_bytes(const td_model *m, int64_t N)
{
    uint64_t per_row = (uint64_t)(m->K + m->G + m->components + 2);
    for (int64_t l = 0; l < m->n_hidden; l++)
        per_row += (uint64_t)m->hidden[l];
    if (m->kind == TD_MODEL_GMM)
        per_row += (uint64_t)m->K; /* log-densities beside the responsibilities */
    return 2 * per_row * sizeof(float) * (uint64_t)N;
}

static void predict_end(void *a, void *parser, const td_req *req, td_resp *resp)
{
    td_error err = {{0}, {0}};
    td_model m = {0};
    predict_state *p = parser;
    float *X = NULL;
    int64_t N = 0;
    char ds[TD_ID_MAX] = "";
    td_status st = load_model(a, req->params[0], &m, &err);
    if (st == TD_OK) /* the rows: X, {"dataset": id} or an .npy */
        st = p->json ? td_json_predict_input(&X, &N, ds, sizeof ds, p->json, &m, &err)
                     : td_export_npy_X(&X, &N, p->raw, p->len, &m, &err);
    if (st == TD_OK && ds[0]) st = dataset_rows(a, ds, m.D, &X, &N, NULL, &err);
    if (st) {
        free(X);
        td_model_fini(&m);
        fail(resp, st, &err);
        return;
    }
    uint64_t need = predict_bytes(&m, N);
    if (!td_budget_reserve(need)) { /* no request takes more than max_memory_mb allows */
        int never = td_budget_limit() && need > td_budget_limit();
        td_resp_error(resp, never ? 422 : 503, "over_memory_budget", "X",
                      "predicting %lld rows needs ~%llu MB (estimate), %s max_memory_mb = "
                      "%llu%s",
                      (long long)N, (unsigned long long)(need >> 20),
                      never ? "over" : "more than is free now of",
                      (unsigned long long)(td_budget_limit() >> 20),
                      never ? "; send fewer rows at a time" : "");
        if (!never) td_resp_header(resp, "Retry-After", "1");
        free(X);
        td_model_fini(&m);
        return;
    }
    if (td_export_predict_wanted(req)) { /* .npy in or .npz out: export.h, built whole */
        td_export_predict(&m, X, N, req, resp);
        td_budget_release(need);
        td_model_fini(&m);
        return;
    }
    td_jout *out = NULL;
    char **names = NULL;
    int64_t K = 0;
    st = job_classes(a, req->params[0], &names, &K, &err);
    td_names_view nv = {names, K};
    if (st == TD_OK)
        st = td_json_predict_out(&out, &m, X, N, names ? &nv : NULL, &err);
    else
        free(X);
    td_strings_free(names, K);
    td_model_fini(&m);
    if (st) {
        td_budget_release(need);
        fail(resp, st, &err);
        return;
    }
    td_jout_hold(out, need); /* released once the answer is sent */
    answer_stream(resp, out);
}

const td_body_sink td_predict_sink = {predict_begin, predict_piece, predict_end, predict_free};

/* ---- losses ------------------------------------------------------------------------ */

static void *loss_begin(void *a, const td_req *req)
{
    (void)a;
    return td_json_loss_stream(size_hint(req));
}

static void loss_end(void *a, void *parser, const td_req *req, td_resp *resp)
{
    (void)a, (void)req;
    td_error err = {{0}, {0}};
    td_jout *out = NULL;
    td_status st = td_json_loss_finish(parser, &out, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    answer_stream(resp, out);
}

const td_body_sink td_loss_sink = {loss_begin, object_piece, loss_end, object_free};

/* ---- evaluate ---------------------------------------------------------------------- */

static void *eval_begin(void *a, const td_req *req)
{
    (void)a;
    return td_json_evaluate_stream(size_hint(req));
}

/* The labels of a stored dataset as the model's classes: its class names matched by name
 * to the model's (model_names NULL: the dataset's indices as they are). y (N) is
 * rewritten in place. */
static td_status labels_to_model(td_app *app, const char *id, int32_t *y, int64_t N,
                                 char *const *model_names, int64_t K, td_error *err)
{
    char *ct = NULL, *cols = NULL, **dn = NULL;
    int64_t n = 0;
    td_status st = td_store_dataset_names(app->store, id, &ct, &cols, err);
    free(cols);
    if (st || !ct) {
        free(ct);
        return st; /* indices: checked against the model's classes by the metrics */
    }
    st = td_strings_parse(ct, &dn, &n, err);
    free(ct);
    if (st == TD_OK && !model_names)
        st = td_fail(err, TD_EINVAL, "dataset",
                     "dataset %s has class names but the model was "
                     "trained on class indices",
                     id);
    int32_t *to = st == TD_OK ? malloc(sizeof *to * (size_t)(n ? n : 1)) : NULL;
    if (st == TD_OK && !to) st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    for (int64_t k = 0; st == TD_OK && k < n; k++) {
        to[k] = -1;
        for (int64_t j = 0; j < K; j++)
            if (strcmp(dn[k], model_names[j]) == 0) to[k] = (int32_t)j;
        if (to[k] < 0)
            st = td_fail(err, TD_EINVAL, "dataset",
                         "class \"%.64s\" of dataset %s is not a "
                         "class of the model",
                         dn[k], id);
    }
    for (int64_t i = 0; st == TD_OK && i < N; i++)
        if (y[i] >= 0 && y[i] < n) y[i] = to[y[i]];
    free(to);
    td_strings_free(dn, n);
    return st;
}

static void eval_end(void *a, void *parser, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_model m = {0};
    float *X = NULL;
    int32_t *y = NULL;
    int64_t N = 0, K = 0;
    char ds[TD_ID_MAX], **names = NULL, *out = NULL;
    td_status st = load_model(app, req->params[0], &m, &err);
    if (st == TD_OK) st = td_json_evaluate_input(&X, &y, &N, ds, sizeof ds, parser, &m, &err);
    if (st == TD_OK) st = job_classes(app, req->params[0], &names, &K, &err);
    if (st == TD_OK && ds[0]) {
        td_stored_dataset sd = {0};
        st = dataset_rows(app, ds, m.D, &X, &N, &sd, &err);
        if (st == TD_OK && sd.ds.y && sd.ds.y_cols == 1 && m.kind != TD_MODEL_GMM) {
            if (!(y = malloc(sizeof *y * (size_t)N)))
                st = td_fail(&err, TD_ENOMEM, NULL, "out of memory");
            else
                memcpy(y, sd.ds.y, sizeof *y * (size_t)N);
            if (st == TD_OK) st = labels_to_model(app, ds, y, N, names, K, &err);
        } else if (st == TD_OK && m.kind != TD_MODEL_GMM) {
            st = td_fail(&err, TD_EINVAL, "dataset",
                         "dataset %s has no class labels y (one per "
                         "row) to evaluate against",
                         ds);
        }
        td_stored_dataset_fini(&sd);
    }
    td_names_view nv = {names, K};
    if (st == TD_OK) st = td_json_evaluate(&out, &m, X, y, N, names ? &nv : NULL, &err);
    free(X);
    free(y);
    td_strings_free(names, K);
    td_model_fini(&m);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    json_or_oom(resp, 200, out);
}

const td_body_sink td_eval_sink = {eval_begin, object_piece, eval_end, object_free};
