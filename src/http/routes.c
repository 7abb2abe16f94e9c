/* routes.c — the /v1 handlers of SPEC §6 and the application state they share.
 *
 * Each handler: read the request (JSON through the json_* converters, which name the
 * offending field), call the store / the job manager / the engine, answer with JSON built
 * by the converters. No handler holds a lock across a call; the store and the job manager
 * are thread-safe. Status codes follow SPEC §6: 400 malformed JSON, 404 unknown id,
 * 409 state conflicts, 422 invalid values, 429 queue full, 503 shutting down, 507 a write
 * refused for lack of space.
 *
 * A full disk (store/reserve.h): every write's TD_ENOSPACE is reported to the reserve;
 * new work (an upload, a job) asks td_reserve_check first and is refused with 507 while
 * state_dir is full; a delete or a cancel that meets TD_ENOSPACE releases the reserve
 * and is tried once more; /readyz is 503 with the reason while full. */
#include "http/routes.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/export.h"
#include "http/catalog.h"
#include "codec/class_names.h"
#include "http/events.h"
#include "codec/json_dataset.h"
#include "codec/json_eval.h"
#include "codec/json_hparams.h"
#include "codec/json_job.h"
#include "codec/json_loss.h"
#include "codec/json_model.h"
#include "codec/json_out.h"
#include "codec/json_util.h"
#include "http/npy_upload.h"
#include "http/static.h"
#include "http/routes_impl.h"
#include "codec/stream_dataset.h"
#include "jobs/jobs.h"
#include "jobs/sweeps.h"
#include "store/reserve.h"
#include "jobs/tail.h"
#include "store/store.h"
#include "traind/train.h"
#include "util/budget.h"
#include "util/log.h"
#include "util/text.h"

struct td_app {
    td_store *store;
    td_jobs *jobs;
    td_sweeps *sweeps;           /* the sweep scheduler (jobs/sweeps.h) */
    td_reserve *reserve;         /* state_dir's space reserve */
    td_config cfg;
    int cores;                   /* compute threads: a job's estimate assumes them all */
};

/* ---- small helpers ----------------------------------------------------------------- */

/* Answers a failure of a json_* or engine call: 400 for malformed JSON, else by status. */
static void fail(td_resp *resp, td_status st, const td_error *err)
{
    if (st == TD_EMALFORMED)
        td_resp_error(resp, 400, "malformed_json", NULL, "%s", err->message);
    else
        td_resp_from_error(resp, st, err);
}

static char *cjson_take(cJSON *obj)
{
    char *s = obj ? td_json_print(obj) : NULL;
    cJSON_Delete(obj);
    return s;
}

static void json_or_oom(td_resp *resp, int status, char *body)
{
    if (body)
        td_resp_json(resp, status, body);
    else
        td_resp_error(resp, 500, "out_of_memory", NULL, "out of memory");
}

/* limit in [1, 1000] (default 50) and after from the query string. */
static int paging(const td_req *req, td_resp *resp, int *limit, const char **after)
{
    const char *l = td_req_query(req, "limit");
    *after = td_req_query(req, "after");
    *limit = 50;
    if (l) {
        char *end;
        errno = 0;
        long v = strtol(l, &end, 10);
        if (errno || *end || end == l || v < 1 || v > 1000) {
            td_resp_error(resp, 422, "invalid_argument", "limit",
                          "limit must be an integer in [1, 1000], got \"%s\"", l);
            return -1;
        }
        *limit = (int)v;
    }
    return 0;
}

/* after= names no such object: a 422, not an empty page that reads as "the end". */
static void cursor_unknown(td_resp *resp, const char *what, const char *after)
{
    td_resp_error(resp, 422, "invalid_argument", "after", "after: there is no %s \"%s\" (a "
                  "cursor is the \"next\" of the previous page)", what, after);
}

/* An optional integer query argument in [lo, hi]: *out unaltered when absent; a 422
 * naming it when it is not such an integer (returns -1 then). */
static int query_int(const td_req *req, td_resp *resp, const char *name, int64_t lo,
                     int64_t hi, int64_t *out)
{
    const char *v = td_req_query(req, name);
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        td_resp_error(resp, 422, "invalid_argument", name,
                      "%s must be an integer in [%lld, %lld], got \"%.64s\"", name,
                      (long long)lo, (long long)hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static cJSON *dataset_meta_json(const td_dataset_meta *m)
{
    td_dataset_summary s = {
        .id = m->id, .name = m->name[0] ? m->name : NULL, .n_samples = m->N,
        .n_features = m->D, .n_classes = m->n_classes, .groups = m->y_cols > 1 ? m->y_cols : 1,
        .n_pairs = m->P, .target = m->target, .created_at = m->created_at};
    return td_json_dataset_summary(&s);
}

/* Adds key: the JSON array text (class or column names), or null. */
static void add_names(cJSON *o, const char *key, const char *text)
{
    cJSON *v = text ? cJSON_Parse(text) : NULL;
    if (!cJSON_IsArray(v)) {
        cJSON_Delete(v);
        v = cJSON_CreateNull();
    }
    cJSON_AddItemToObject(o, key, v);
}

/* The dataset's JSON with its class names and feature column names (null when none). */
static cJSON *dataset_json(td_app *app, const td_dataset_meta *m)
{
    cJSON *o = dataset_meta_json(m);
    char *classes = NULL, *columns = NULL;
    td_store_dataset_names(app->store, m->id, &classes, &columns, NULL);
    if (o) {
        add_names(o, "classes", classes);
        add_names(o, "columns", columns);
    }
    free(classes);
    free(columns);
    return o;
}

/* ---- datasets ---------------------------------------------------------------------- */

static td_status check_dataset_limits(const td_app *app, const td_dataset *ds, td_error *err)
{
    if (ds->N > app->cfg.max_dataset_rows)
        return td_fail(err, TD_EINVAL, "X", "the dataset has %lld rows; max_dataset_rows is %lld",
                       (long long)ds->N, (long long)app->cfg.max_dataset_rows);
    if (ds->D > app->cfg.max_dataset_features)
        return td_fail(err, TD_EINVAL, "X[0]",
                       "the dataset has %lld features; max_dataset_features is %lld",
                       (long long)ds->D, (long long)app->cfg.max_dataset_features);
    return TD_OK;
}

static td_status delete_dataset(td_app *app, const char *id, td_error *err);

/* Keeps the class and column names of the dataset just stored as id; on failure the
 * dataset goes too (a dataset never loses its names). */
static td_status store_names(td_app *app, const char *id, char *const *classes, int64_t K,
                             char *const *columns, int64_t D, td_error *err)
{
    char *ct = classes ? td_strings_json(classes, K) : NULL;
    char *dt = columns ? td_strings_json(columns, D) : NULL;
    td_status st = (classes && !ct) || (columns && !dt)
                       ? td_fail(err, TD_ENOMEM, NULL, "out of memory")
                       : td_reserve_note(app->reserve, td_store_dataset_names_set(
                                             app->store, id, ct, dt, err), err);
    free(ct);
    free(dt);
    if (st)
        delete_dataset(app, id, NULL);
    return st;
}

/* Stores a parsed dataset; *meta gets its metadata. */
static td_status store_dataset(td_app *app, const td_dataset_buf *d, td_dataset_meta *meta,
                               td_error *err)
{
    td_status st = check_dataset_limits(app, &d->ds, err);
    if (st == TD_OK)
        st = td_reserve_note(app->reserve, td_store_dataset_put(app->store, &d->ds, d->name,
                                                                 meta, err), err);
    if (st == TD_OK && (d->classes || d->columns))
        st = store_names(app, meta->id, d->classes, d->n_classes, d->columns, d->n_columns, err);
    return st;
}

/* Deletes a dataset; on a full disk with the reserve's room. */
static td_status delete_dataset(td_app *app, const char *id, td_error *err)
{
    td_status st = td_store_dataset_delete(app->store, id, err);
    if (td_reserve_release(app->reserve, st, err))
        st = td_store_dataset_delete(app->store, id, err);
    return st;
}

/* POST /v1/datasets streams (a td_body_sink): the body goes through the streaming parser
 * as it arrives (stream_dataset.h), so a dataset of hundreds of megabytes costs its
 * float32 arrays, not its text nor a tree of it. */
typedef struct dataset_upload {
    td_dstream *parser;          /* NULL when the request was refused before its body */
    td_npy_upload *npy;          /* instead of parser for .npy / .npz (npy_upload.h) */
    td_status st;                /* that refusal (a bad label_column / header) */
    td_error err;
} dataset_upload;

static void dataset_free(void *state)
{
    dataset_upload *u = state;
    td_dstream_destroy(u->parser);
    td_npy_upload_free(u->npy);
    free(u);
}

static void *dataset_begin(void *a, const td_req *req)
{
    td_app *app = a;
    dataset_upload *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    if ((u->st = td_reserve_check(app->reserve, &u->err))) /* full: 507, the body unparsed */
        return u;
    const char *ct = td_req_header(req, "Content-Type");
    const char *cl = td_req_header(req, "Content-Length");
    uint64_t hint = cl ? strtoull(cl, NULL, 10) : 0; /* only sizes the arrays */
    int npy = td_npy_upload_kind(ct);
    if (npy >= 0) {
        if (!(u->npy = td_npy_upload_begin(app->store, npy, app->cfg.max_dataset_rows,
                                           app->cfg.max_dataset_features,
                                           td_config_max_body(&app->cfg),
                                           td_req_query(req, "name"))))
            goto nomem;
    } else if (ct && strncasecmp(ct, "text/csv", 8) == 0) {
        td_csv_opts o;
        u->st = td_csv_opts_parse(&o, td_req_query(req, "label_column"),
                                  td_req_query(req, "header"), &u->err);
        if (u->st == TD_OK)
            u->st = td_csv_delimiter_parse(&o, td_req_query(req, "delimiter"), &u->err);
        if (u->st == TD_OK && !(u->parser = td_dstream_csv(&o, td_req_query(req, "name"), hint)))
            goto nomem;
    } else if (!(u->parser = td_dstream_json(hint))) {
        goto nomem;
    }
    return u;
nomem:
    dataset_free(u);
    return NULL;
}

static int dataset_piece(void *state, const char *data, size_t len)
{
    dataset_upload *u = state;
    if (u->npy)
        return td_npy_upload_piece(u->npy, data, len);
    return !u->parser || td_dstream_feed(u->parser, data, len);
}

static void dataset_end(void *a, void *state, const td_req *req, td_resp *resp)
{
    (void)req;
    td_app *app = a;
    dataset_upload *u = state;
    td_error err = u->err;
    td_status st = u->st;
    td_dataset_buf d;
    memset(&d, 0, sizeof d);
    td_dataset_meta meta;
    if (u->npy)
        st = td_npy_upload_end(u->npy, &meta, &err);
    if (u->npy && st == TD_OK) { /* y as unicode names */
        td_npy_upload_classes(u->npy, &d.classes, &d.n_classes);
        if (d.classes)
            st = store_names(app, meta.id, d.classes, d.n_classes, NULL, 0, &err);
    }
    else if (st == TD_OK)
        st = td_dstream_finish(u->parser, &d, &err);
    td_dstream_destroy(u->parser); /* what it held is in d now */
    u->parser = NULL;
    if (st == TD_OK && !u->npy)
        st = store_dataset(app, &d, &meta, &err);
    td_dataset_buf_free(&d);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    td_log(TD_LOG_INFO, "http", "dataset %s stored (%lld x %lld)", meta.id, (long long)meta.N,
           (long long)meta.D);
    td_resp_header(resp, "Location", "/v1/datasets/%s", meta.id);
    json_or_oom(resp, 201, cjson_take(dataset_json(app, &meta)));
}

static const td_body_sink dataset_sink = {dataset_begin, dataset_piece, dataset_end,
                                          dataset_free};

/* POST /v1/jobs, /v1/jobs/{id}/predict and /v1/loss stream too: the state is the object
 * parser (td_dstream_object), whose arrays (the inline dataset's, X, logits, ...) fill
 * as the body arrives; the end callbacks answer as the handlers did, and big answers
 * (predictions, gradients) are written as they are sent (json_out.h). */
static uint64_t size_hint(const td_req *req)
{
    const char *cl = td_req_header(req, "Content-Length");
    return cl ? strtoull(cl, NULL, 10) : 0; /* only sizes the arrays */
}

static int object_piece(void *state, const char *data, size_t len)
{
    return td_dstream_feed(state, data, len);
}

static void object_free(void *state)
{
    td_dstream_destroy(state);
}

/* Answers 200 with the writer o (owned by the response from now on). */
static void answer_stream(td_resp *resp, td_jout *o)
{
    resp->status = 200;
    resp->content_type = "application/json";
    resp->stream = td_jout_read;
    resp->stream_ctx = o;
    resp->stream_free = td_jout_free;
}

static void h_dataset_list(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    int limit, n = 0;
    const char *after;
    if (paging(req, resp, &limit, &after))
        return;
    td_dataset_meta *rows = NULL, cur;
    if (after && *after && td_store_dataset_get(app->store, after, &cur, NULL) == TD_ENOTFOUND) {
        cursor_unknown(resp, "dataset", after);
        return;
    }
    char next[TD_ID_MAX];
    td_status st = td_store_dataset_list(app->store, limit, after, &rows, &n, next, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "datasets");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, dataset_json(app, &rows[i]));
    if (next[0])
        cJSON_AddStringToObject(root, "next", next);
    else
        cJSON_AddNullToObject(root, "next");
    free(rows);
    json_or_oom(resp, 200, cjson_take(root));
}

static void h_dataset_get(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_dataset_meta meta;
    td_status st = td_store_dataset_get(app->store, req->params[0], &meta, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    json_or_oom(resp, 200, cjson_take(dataset_json(app, &meta)));
}

static void h_dataset_data(void *a, const td_req *req, td_resp *resp)
{
    td_export_dataset(((td_app *)a)->store, req, resp); /* export.h */
}

static void h_dataset_delete(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_status st = delete_dataset(app, req->params[0], &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    resp->status = 204;
}

/* ---- jobs -------------------------------------------------------------------------- */

static void answer_job(td_app *app, td_resp *resp, int status, const char *id)
{
    td_error err = {{0}, {0}};
    td_job_row row;
    td_status st = td_store_job_get(app->store, id, &row, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    if (status == 202 || status == 201)
        td_resp_header(resp, "Location", "/v1/jobs/%s", row.id);
    json_or_oom(resp, status, td_json_job(&row, NULL));
    td_job_row_fini(&row);
}

/* A dataset of class names trains a model of exactly those classes, and a validation
 * set must name the same ones (its indices are into its own sorted names). */
static td_status check_names(td_app *app, const char *model, const char *dataset,
                             const char *validation, int64_t K, td_error *err)
{
    char *tc = NULL, *tcols = NULL, *vc = NULL, *vcols = NULL;
    td_status st = td_store_dataset_names(app->store, dataset, &tc, &tcols, err);
    if (st == TD_OK && validation)
        st = td_store_dataset_names(app->store, validation, &vc, &vcols, err);
    char **names = NULL;
    int64_t n = 0;
    int net = strcmp(model, "softmax") == 0 || strcmp(model, "mlp") == 0;
    if (st == TD_OK && tc && net && (st = td_strings_parse(tc, &names, &n, err)) == TD_OK &&
        n != K)
        st = td_fail(err, TD_EINVAL, "hyperparameters.n_classes", "the dataset names %lld "
                     "classes but the model would have %lld outputs; leave n_classes null",
                     (long long)n, (long long)K);
    if (st == TD_OK && validation && (tc || vc) && (!tc || !vc || strcmp(tc, vc) != 0))
        st = td_fail(err, TD_EINVAL, "validation", "the validation set's class names (%.120s) "
                     "differ from the training set's (%.120s): a validation set must name the "
                     "same classes", vc ? vc : "none, its labels are indices",
                     tc ? tc : "none, its labels are indices");
    td_strings_free(names, n);
    free(tc), free(tcols), free(vc), free(vcols);
    return st;
}

td_status td_app_check_job(td_app *app, const char *model, const char *hp_text,
                           const td_stored_dataset *train, const td_stored_dataset *val,
                           int64_t *K, uint64_t *bytes, td_error *err)
{
    td_hparams hp;
    td_status st = td_job_decode_hparams(&hp, model, hp_text, &train->ds, err);
    if (st == TD_OK)
        st = td_trainer_check(&hp, &train->ds, val ? &val->ds : NULL, K, err);
    if (st == TD_OK)
        st = check_names(app, model, train->meta.id, val ? val->meta.id : NULL, *K, err);
    if (st == TD_OK)
        *bytes = td_jobs_job_bytes(&hp, train, val, *K, app->cores);
    td_hparams_fini(&hp);
    return st;
}

/* The failure for a dataset id that is not stored: when it is the name of a stored
 * dataset, the message gives that dataset's id (the newest of that name). Only on this
 * error path, and bounded: a few pages of the list. */
static td_status no_dataset(td_app *app, const char *field, const char *id, td_error *err)
{
    char after[TD_ID_MAX] = "", found[TD_ID_MAX] = "";
    for (int page = 0; page < 10 && !found[0]; page++) {
        td_dataset_meta *rows = NULL;
        int n = 0;
        if (td_store_dataset_list(app->store, 1000, after, &rows, &n, after, NULL) != TD_OK)
            break;
        for (int i = 0; i < n && !found[0]; i++)
            if (rows[i].name[0] && strcmp(rows[i].name, id) == 0)
                snprintf(found, sizeof found, "%s", rows[i].id);
        free(rows);
        if (!after[0])
            break;
    }
    if (found[0])
        return td_fail(err, TD_EINVAL, field, "no dataset with id \"%.128s\"; \"%.128s\" is the "
                       "name of dataset %s: give its id, \"%s\"", id, id, found, found);
    return td_fail(err, TD_EINVAL, field, "no dataset with id \"%.128s\"", id);
}

/* Validates a job exactly as its worker will run it: the stored hyperparameter text is
 * decoded against the dataset and checked as td_trainer_create checks it, without
 * building the trainer (that would cost the job's memory in this thread). *K gets the
 * model's outputs and *bytes its memory for admission (td_jobs_job_bytes). */
static td_status validate_job(td_app *app, const char *model, const char *hp_text,
                              const char *dataset, const char *validation, int64_t *K,
                              uint64_t *bytes, td_error *err)
{
    td_stored_dataset train = {0}, val = {0};
    td_status st = td_store_dataset_load(app->store, dataset, &train, err);
    if (st == TD_ENOTFOUND)
        st = no_dataset(app, "dataset", dataset, err);
    if (st == TD_OK && validation) {
        st = td_store_dataset_load(app->store, validation, &val, err);
        if (st == TD_ENOTFOUND)
            st = no_dataset(app, "validation", validation, err);
    }
    if (st == TD_OK)
        st = td_app_check_job(app, model, hp_text, &train, validation ? &val : NULL, K, bytes,
                              err);
    td_stored_dataset_fini(&train);
    td_stored_dataset_fini(&val);
    return st;
}

static void job_create(void *a, void *parser, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_job_request jr;
    char *hp_text = NULL;
    char id[TD_ID_MAX] = "", ds_id[TD_ID_MAX] = "";
    int raced = 0, over_budget = 0;
    const char *key = td_req_header(req, "Idempotency-Key");
    if (key && (!*key || strlen(key) >= TD_IDEM_KEY_MAX)) {
        td_resp_error(resp, 422, "invalid_argument", "Idempotency-Key",
                      "Idempotency-Key must be 1 to %d characters", TD_IDEM_KEY_MAX - 1);
        return;
    }
    if (key && !td_utf8_valid(key, strlen(key))) { /* it is stored */
        td_resp_error(resp, 422, "invalid_argument", "Idempotency-Key",
                      "Idempotency-Key must be UTF-8 text");
        return;
    }
    if (key) {
        td_job_row row;
        if (td_store_job_find_idempotent(app->store, key, &row, NULL) == TD_OK) {
            td_resp_header(resp, "Location", "/v1/jobs/%s", row.id);
            json_or_oom(resp, 202, td_json_job(&row, NULL));
            td_job_row_fini(&row);
            return;
        }
    }
    td_status st = td_reserve_check(app->reserve, &err); /* a replay above needs no room */
    if (st == TD_OK)
        st = td_json_job_finish(&jr, parser, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    if ((st = td_jobs_check_room(app->jobs, &err))) /* a full queue: 429 before the data is read */
        goto out;
    if (jr.data) {
        td_dataset_meta meta;
        if ((st = store_dataset(app, jr.data, &meta, &err))) {
            if (err.field[0] && strncmp(err.field, "data", 4) != 0) {
                char f[sizeof err.field];
                memcpy(f, err.field, sizeof f);
                snprintf(err.field, sizeof err.field, "data.%.*s", (int)sizeof f - 6, f);
            }
            goto out;
        }
        snprintf(ds_id, sizeof ds_id, "%s", meta.id);
    } else {
        snprintf(ds_id, sizeof ds_id, "%s", jr.dataset_id);
    }
    if (!(hp_text = td_job_hparams_text(&jr.hp, jr.initial_weights))) {
        st = td_fail(&err, TD_ENOMEM, NULL, "out of memory");
        goto out;
    }
    const char *model = td_model_names[jr.model];
    int64_t K = 0;
    uint64_t bytes = 0;
    if ((st = validate_job(app, model, hp_text, ds_id, jr.validation_id, &K, &bytes, &err))) {
        /* The checks against the data name "dataset.X[i][j]"; inline, that is "data.". */
        if (jr.data && strncmp(err.field, "dataset", 7) == 0 &&
            (err.field[7] == '\0' || err.field[7] == '.' || err.field[7] == '[')) {
            memmove(err.field + 4, err.field + 7, strlen(err.field + 7) + 1);
            memcpy(err.field, "data", 4);
        }
        goto out;
    }
    uint64_t budget = td_budget_limit();
    if (budget && bytes > budget) { /* it could never start: say so now */
        over_budget = 1;
        st = td_fail(&err, TD_EINVAL, NULL, "this job needs ~%llu MB of working memory "
                     "(estimate: model, gradients, optimizer state, scratch and its data), "
                     "over max_memory_mb = %llu; use fewer features, classes, components or "
                     "hidden units, or raise max_memory_mb",
                     (unsigned long long)((bytes + (1u << 20) - 1) >> 20),
                     (unsigned long long)(budget >> 20));
        goto out;
    }
    int resolve = jr.hp.n_classes == 0 ||
                  (jr.model == TD_MODEL_EMBED_GMM && jr.hp.warmup_iterations < 0);
    if (resolve) { /* resolve "from the data" / "15%" so the job shows every value */
        td_hparams_resolve(&jr.hp, K);
        free(hp_text);
        if (!(hp_text = td_job_hparams_text(&jr.hp, jr.initial_weights))) {
            st = td_fail(&err, TD_ENOMEM, NULL, "out of memory");
            goto out;
        }
    }
    td_job_spec spec = {.model = model, .dataset = ds_id, .validation = jr.validation_id,
                        .hyperparameters = hp_text,
                        .epochs = jr.model == TD_MODEL_GMM ? jr.hp.max_iter : jr.hp.epochs,
                        .idempotency_key = key};
    st = td_reserve_note(app->reserve, td_jobs_submit(app->jobs, &spec, bytes, id, &err), &err);
    raced = st == TD_ECONFLICT && id[0];
    if (raced) /* the same key raced us: that job (with its own data) is the answer */
        st = TD_OK;
out:
    if ((st || raced) && jr.data && ds_id[0])
        delete_dataset(app, ds_id, NULL); /* nothing refers to it */
    td_job_request_fini(&jr);
    free(hp_text);
    if (over_budget) {
        td_resp_error(resp, 422, "over_memory_budget", NULL, "%s", err.message);
        return;
    }
    if (st) { /* TD_EBUSY: 429 with the Retry-After that td_resp_from_error sets */
        fail(resp, st, &err);
        return;
    }
    td_log(TD_LOG_INFO, "http", "job %s queued", id);
    answer_job(app, resp, 202, id);
}

static void *job_begin(void *a, const td_req *req)
{
    (void)a;
    return td_json_job_stream(size_hint(req));
}

static const td_body_sink job_sink = {job_begin, object_piece, job_create, object_free};

static void h_job_list(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    int limit, n = 0, state = -1;
    const char *after, *s = td_req_query(req, "state");
    if (paging(req, resp, &limit, &after))
        return;
    if (s && *s) {
        td_job_state js;
        if (td_job_state_parse(s, &js, &err)) {
            td_resp_error(resp, 422, "invalid_argument", "state",
                          "state must be one of queued, running, succeeded, failed, cancelled; "
                          "got \"%s\"", s);
            return;
        }
        state = (int)js;
    }
    td_job_row *rows = NULL, cur;
    if (after && *after) {
        td_status cs = td_store_job_get(app->store, after, &cur, NULL);
        if (cs == TD_OK) td_job_row_fini(&cur);
        if (cs == TD_ENOTFOUND) {
            cursor_unknown(resp, "job", after);
            return;
        }
    }
    char next[TD_ID_MAX];
    td_status st = td_store_job_list(app->store, state, limit, after, &rows, &n, next, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b, "{\"jobs\":[");
    for (int i = 0; i < n; i++) {
        char *j = td_json_job(&rows[i], NULL);
        if (i)
            td_sbuf_puts(&b, ",");
        td_sbuf_puts(&b, j ? j : "null");
        free(j);
    }
    td_sbuf_puts(&b, "],\"next\":");
    td_sbuf_string(&b, next[0] ? next : NULL);
    td_sbuf_puts(&b, "}");
    td_job_rows_free(rows, n);
    json_or_oom(resp, 200, td_sbuf_finish(&b, NULL));
}

static void h_job_get(void *a, const td_req *req, td_resp *resp)
{
    answer_job(a, resp, 200, req->params[0]);
}

/* GET /v1/jobs/{id}/losses[?format=][&after_epoch=][&limit=][&max_points=]: the stored
 * history (bounded by history_max_rows) and, for a running job, its records still in
 * memory; after_epoch and limit page, max_points then downsamples what was selected. */
static void h_job_losses(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    const char *fmt = td_req_query(req, "format");
    if (fmt && strcmp(fmt, "csv") != 0 && strcmp(fmt, "json") != 0) {
        td_resp_error(resp, 422, "invalid_argument", "format",
                      "format must be \"json\" or \"csv\", got \"%s\"", fmt);
        return;
    }
    int64_t after = -1, limit = 0, max_points = 0;
    if (query_int(req, resp, "after_epoch", 0, INT64_MAX, &after) ||
        query_int(req, resp, "limit", 1, 1000000000, &limit) ||
        query_int(req, resp, "max_points", 2, 1000000000, &max_points))
        return;
    td_history h;
    td_tail *tail = td_jobs_tail(app->jobs, req->params[0]);
    td_status st = td_tail_history_get(tail, app->store, req->params[0], after, limit, &h, &err);
    td_tail_release(tail);
    if (st == TD_OK && max_points > 0)
        td_history_downsample(&h, max_points);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    size_t len = 0;
    int csv = fmt && strcmp(fmt, "csv") == 0;
    char *body = csv ? td_csv_history(&h, &len) : td_json_history(&h, &len);
    td_history_fini(&h);
    json_or_oom(resp, 200, body);
    if (body && csv)
        resp->content_type = "text/csv";
}

/* Loads the job's latest model (final, or the last checkpoint of a running job). */
static td_status load_model(td_app *app, const char *id, td_model *m, td_error *err)
{
    td_job_row row;
    td_status st = td_store_job_get(app->store, id, &row, err);
    if (st)
        return st;
    int has = row.has_model;
    td_job_state state = row.state;
    td_job_row_fini(&row);
    if (!has)
        return td_fail(err, TD_ECONFLICT, NULL,
                       "job %s has no model yet (state %s): a model exists once the first "
                       "checkpoint is written", id, td_job_state_name(state));
    char *meta = NULL;
    float *params = NULL;
    int64_t n = 0;
    if ((st = td_store_model_get(app->store, id, &meta, &params, &n, err)))
        return st;
    st = td_json_model_from_meta(m, meta, strlen(meta), params, n, err);
    td_store_free(meta);
    td_store_free(params);
    return st;
}

static int cmp_row(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* GET /v1/jobs/{id}/validation: the rows of the dataset that validation_split held out
 * (ascending row indices: the same rows the trainer scores val_loss on), or the id of the
 * separate validation set. 409 when the job holds nothing out. */
static void h_job_validation(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_job_row row;
    td_stored_dataset ds = {0};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    td_status st = td_store_job_get(app->store, req->params[0], &row, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    int64_t *order = NULL;
    if (row.validation[0]) {
        cJSON_AddStringToObject(o, "dataset", row.dataset);
        cJSON_AddStringToObject(o, "validation", row.validation);
        cJSON_AddNullToObject(o, "rows");
        goto answer;
    }
    if ((st = td_store_dataset_load(app->store, row.dataset, &ds, &err)) ||
        (st = td_job_decode_hparams(&hp, row.model, row.hyperparameters, &ds.ds, &err)))
        goto out;
    if (hp.validation_split <= 0) {
        st = td_fail(&err, TD_ECONFLICT, NULL, "job %s holds no rows out: it has neither "
                     "hyperparameters.validation_split nor a validation dataset", row.id);
        goto out;
    }
    int64_t N = ds.ds.N, nv = td_split_count(hp.validation_split, N);
    if (!(order = td_split_order(N, hp.seed))) {
        st = td_fail(&err, TD_ENOMEM, NULL, "out of memory");
        goto out;
    }
    qsort(order + (N - nv), (size_t)nv, sizeof *order, cmp_row);
    cJSON *rows = cJSON_AddArrayToObject(o, "rows");
    for (int64_t i = N - nv; rows && i < N; i++)
        cJSON_AddItemToArray(rows, cJSON_CreateNumber((double)order[i]));
    cJSON_AddStringToObject(o, "dataset", row.dataset);
    cJSON_AddNullToObject(o, "validation");
    cJSON_AddNumberToObject(o, "validation_split", hp.validation_split);
    cJSON_AddNumberToObject(o, "n_rows", (double)nv);
answer:
    json_or_oom(resp, 200, cjson_take(o));
    o = NULL;
out:
    if (st)
        fail(resp, st, &err);
    cJSON_Delete(o);
    free(order);
    td_hparams_fini(&hp);
    td_stored_dataset_fini(&ds);
    td_job_row_fini(&row);
}

/* The class names a job's dataset gave (td_job_row.classes): *names malloc'd (free with
 * td_strings_free), or NULL with *n 0 when it has none. */
static td_status job_classes(td_app *app, const char *id, char ***names, int64_t *n,
                             td_error *err)
{
    *names = NULL;
    *n = 0;
    td_job_row row;
    td_status st = td_store_job_get(app->store, id, &row, err);
    if (st)
        return st;
    if (row.classes)
        st = td_strings_parse(row.classes, names, n, err);
    td_job_row_fini(&row);
    return st;
}

static void h_job_model(void *a, const td_req *req, td_resp *resp)
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
        if (got && row.classes)
            td_strings_parse(row.classes, &names, &K, NULL);
        td_export_model_named(&m, names, K, names ? row.classes : NULL, req, resp);
        td_strings_free(names, K);
        if (got)
            td_job_row_fini(&row);
        td_model_fini(&m);
        return;
    }
    if (st == TD_OK)
        st = td_json_model(&out, &len, &m, &err);
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
    if (st == TD_ENOTFOUND)
        st = no_dataset(app, "dataset", id, err);
    if (st == TD_OK && sd.ds.D != D)
        st = td_fail(err, TD_EINVAL, "dataset", "dataset %s has %lld features, the model "
                     "expects %lld", id, (long long)sd.ds.D, (long long)D);
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
    td_dstream *json;                /* JSON body; NULL for .npy */
    char *raw;                       /* .npy body so far (len of cap bytes) */
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
    if (p->json)
        return td_dstream_feed(p->json, data, len);
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : 1 << 16;
        while (cap < p->len + len)
            cap *= 2;
        char *r = realloc(p->raw, cap);
        if (!r)
            return 1;                /* the end finds the body short: a clear 422 */
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
    if (!p)
        return;
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
    if (st == TD_OK && ds[0])
        st = dataset_rows(a, ds, m.D, &X, &N, NULL, &err);
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
                      "%llu%s", (long long)N, (unsigned long long)(need >> 20),
                      never ? "over" : "more than is free now of",
                      (unsigned long long)(td_budget_limit() >> 20),
                      never ? "; send fewer rows at a time" : "");
        if (!never)
            td_resp_header(resp, "Retry-After", "1");
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

static const td_body_sink predict_sink = {predict_begin, predict_piece, predict_end,
                                          predict_free};

static void h_job_cancel(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_status st = td_jobs_cancel(app->jobs, req->params[0], NULL, &err);
    if (td_reserve_release(app->reserve, st, &err))
        st = td_jobs_cancel(app->jobs, req->params[0], NULL, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    answer_job(app, resp, 202, req->params[0]);
}

static void h_job_delete(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_status st = td_store_job_delete(app->store, req->params[0], &err);
    if (td_reserve_release(app->reserve, st, &err))
        st = td_store_job_delete(app->store, req->params[0], &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    resp->status = 204;
}

/* ---- Server-Sent Events ------------------------------------------------------------ */

/* GET /v1/jobs/{id}/events[?max_rate=R][&every=N] (events.h). */
static void h_job_events(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    int64_t rate = -1, every = 1;
    if (query_int(req, resp, "max_rate", 0, TD_EVENTS_MAX_RATE, &rate) ||
        query_int(req, resp, "every", 1, INT64_MAX / 2, &every))
        return;
    /* every alone thins by epochs instead of by time */
    if (rate < 0)
        rate = td_req_query(req, "every") ? 0 : TD_EVENTS_DEFAULT_RATE;
    td_job_row row;
    td_status st = td_store_job_get(app->store, req->params[0], &row, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    td_job_row_fini(&row);
    const char *last = td_req_header(req, "Last-Event-ID");
    td_events_opts o = {.max_rate = (int)rate, .every = every,
                        .after = last ? strtoll(last, NULL, 10) : 0};
    if ((st = td_events_stream(resp, app->store, app->jobs, req->params[0], &o, &err)))
        fail(resp, st, &err);
}

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

static const td_body_sink loss_sink = {loss_begin, object_piece, loss_end, object_free};

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
        st = td_fail(err, TD_EINVAL, "dataset", "dataset %s has class names but the model was "
                     "trained on class indices", id);
    int32_t *to = st == TD_OK ? malloc(sizeof *to * (size_t)(n ? n : 1)) : NULL;
    if (st == TD_OK && !to)
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    for (int64_t k = 0; st == TD_OK && k < n; k++) {
        to[k] = -1;
        for (int64_t j = 0; j < K; j++)
            if (strcmp(dn[k], model_names[j]) == 0)
                to[k] = (int32_t)j;
        if (to[k] < 0)
            st = td_fail(err, TD_EINVAL, "dataset", "class \"%.64s\" of dataset %s is not a "
                         "class of the model", dn[k], id);
    }
    for (int64_t i = 0; st == TD_OK && i < N; i++)
        if (y[i] >= 0 && y[i] < n)
            y[i] = to[y[i]];
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
    if (st == TD_OK)
        st = td_json_evaluate_input(&X, &y, &N, ds, sizeof ds, parser, &m, &err);
    if (st == TD_OK)
        st = job_classes(app, req->params[0], &names, &K, &err);
    if (st == TD_OK && ds[0]) {
        td_stored_dataset sd = {0};
        st = dataset_rows(app, ds, m.D, &X, &N, &sd, &err);
        if (st == TD_OK && sd.ds.y && sd.ds.y_cols == 1 && m.kind != TD_MODEL_GMM) {
            if (!(y = malloc(sizeof *y * (size_t)N)))
                st = td_fail(&err, TD_ENOMEM, NULL, "out of memory");
            else
                memcpy(y, sd.ds.y, sizeof *y * (size_t)N);
            if (st == TD_OK)
                st = labels_to_model(app, ds, y, N, names, K, &err);
        } else if (st == TD_OK && m.kind != TD_MODEL_GMM) {
            st = td_fail(&err, TD_EINVAL, "dataset", "dataset %s has no class labels y (one per "
                         "row) to evaluate against", ds);
        }
        td_stored_dataset_fini(&sd);
    }
    td_names_view nv = {names, K};
    if (st == TD_OK)
        st = td_json_evaluate(&out, &m, X, y, N, names ? &nv : NULL, &err);
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

static const td_body_sink eval_sink = {eval_begin, object_piece, eval_end, object_free};

/* ---- the OpenAPI document ---------------------------------------------------------- */

/* docs/openapi.json, compiled in by the Makefile ($(BUILD)/gen/openapi.c); NUL-terminated. */
extern const unsigned char td_openapi_json[];
extern const size_t td_openapi_json_len;

static void h_openapi(void *a, const td_req *req, td_resp *resp)
{
    char *body = malloc(td_openapi_json_len + 1);
    if (!body) {
        td_resp_error(resp, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    memcpy(body, td_openapi_json, td_openapi_json_len + 1);
    td_resp_json(resp, 200, body);
    resp->body_len = td_openapi_json_len;
}

/* ---- the table and the app --------------------------------------------------------- */

#define JSON "application/json"
/* Each route declares its query parameters (the last member): any other is a 422. */
static const td_route routes[] = {
    {"POST", "/v1/datasets", NULL, JSON ",text/csv,application/x-npy,application/zip", 0,
     &dataset_sink, "name,label_column,header,delimiter"},
    {"GET", "/v1/datasets", h_dataset_list, NULL, 0, NULL, "limit,after"},
    {"GET", "/v1/datasets/{id}", h_dataset_get, NULL, 0, NULL, ""},
    {"DELETE", "/v1/datasets/{id}", h_dataset_delete, NULL, 0, NULL, ""},
    {"GET", "/v1/datasets/{id}/data", h_dataset_data, NULL, 0, NULL, "format"},
    {"POST", "/v1/jobs", NULL, JSON, 0, &job_sink, ""},
    {"GET", "/v1/jobs", h_job_list, NULL, 0, NULL, "state,limit,after"},
    {"GET", "/v1/jobs/{id}", h_job_get, NULL, 0, NULL, ""},
    {"DELETE", "/v1/jobs/{id}", h_job_delete, NULL, 0, NULL, ""},
    {"GET", "/v1/jobs/{id}/losses", h_job_losses, NULL, 0, NULL,
     "format,after_epoch,limit,max_points"},
    {"GET", "/v1/jobs/{id}/events", h_job_events, NULL, 0, NULL, "max_rate,every"},
    {"GET", "/v1/jobs/{id}/model", h_job_model, NULL, 0, NULL, "format"},
    {"GET", "/v1/jobs/{id}/validation", h_job_validation, NULL, 0, NULL, ""},
    {"POST", "/v1/jobs/{id}/predict", NULL, JSON ",application/x-npy", 0, &predict_sink, ""},
    {"POST", "/v1/jobs/{id}/evaluate", NULL, JSON, 0, &eval_sink, ""},
    {"POST", "/v1/jobs/{id}/cancel", h_job_cancel, NULL, 0, NULL, ""},
    {"POST", "/v1/sweeps", td_h_sweep_create, JSON, 0, NULL, ""},
    {"GET", "/v1/sweeps", td_h_sweep_list, NULL, 0, NULL, "limit,after"},
    {"GET", "/v1/sweeps/{id}", td_h_sweep_get, NULL, 0, NULL, ""},
    {"DELETE", "/v1/sweeps/{id}", td_h_sweep_delete, NULL, 0, NULL, ""},
    {"POST", "/v1/sweeps/{id}/cancel", td_h_sweep_cancel, NULL, 0, NULL, ""},
    {"POST", "/v1/loss", NULL, JSON, 0, &loss_sink, ""},
    {"GET", "/v1/openapi.json", h_openapi, NULL, 0, NULL, ""},
    {"GET", "/v1/models", td_h_models, NULL, 0, NULL, ""},          /* catalog.h */
    {"GET", "/", td_h_index, NULL, 1, NULL, ""},                    /* static.h: the dashboard */
    {"GET", "/assets/{name}", td_h_asset, NULL, 1, NULL, ""},
};

const td_route *td_app_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* Opens the store, then the reserve (the store's open made state_dir). On a disk full to
 * its last byte SQLite cannot even open (its WAL and -shm need room): the reserve is
 * released and the store's open tried again. */
static td_status open_state(td_app *app, const td_config *cfg, td_error *err)
{
    td_error rerr = {{0}, {0}};
    td_status st = td_store_open_uri(&app->store, cfg->state_dir, cfg->store, err);
    if (st != TD_OK && st != TD_ENOSPACE)
        return st;
    td_status rs = td_reserve_open(&app->reserve, cfg->state_dir,
                                   (int64_t)cfg->disk_reserve_mb << 20, &rerr);
    if (st == TD_ENOSPACE && rs == TD_OK && td_reserve_release(app->reserve, st, err))
        st = td_store_open_uri(&app->store, cfg->state_dir, cfg->store, err);
    if (st == TD_OK && rs != TD_OK)
        st = td_fail(err, rs, rerr.field, "%s", rerr.message);
    return st;
}

/* node_name, or "hostname:port" (the port of listen; the pid when it is ephemeral). */
static void node_name(const td_config *cfg, char *out, size_t cap)
{
    char host[128] = "localhost";
    if (cfg->node_name[0]) {
        snprintf(out, cap, "%s", cfg->node_name);
        return;
    }
    gethostname(host, sizeof host - 1);
    const char *colon = strrchr(cfg->listen, ':');
    if (colon && strcmp(colon, ":0") != 0)
        snprintf(out, cap, "%s%s", host, colon);
    else
        snprintf(out, cap, "%s:pid%ld", host, (long)getpid());
}

td_status td_app_init(td_app **out, const td_config *cfg, td_error *err)
{
    *out = NULL;
    td_app *app = calloc(1, sizeof *app);
    if (!app)
        return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    app->cfg = *cfg;
    td_status st = open_state(app, cfg, err);
    if (st) {
        td_reserve_close(app->reserve);
        td_store_close(app->store);
        free(app);
        return st;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    app->cores = cores > 0 ? (int)cores : 1;
    td_budget_set_limit(td_config_max_memory(cfg));
    td_jobs_opts o = {.workers = td_config_workers(cfg), .cores = app->cores,
                      .max_queued = cfg->max_queued_jobs,
                      .checkpoint_interval_s = cfg->checkpoint_interval_s,
                      .reserve = app->reserve, .lease_s = cfg->lease_s,
                      .history_max_rows = cfg->history_max_rows};
    node_name(cfg, o.node, sizeof o.node);
    if ((st = td_jobs_start(&app->jobs, app->store, &o, err)) ||
        (st = td_sweeps_start(&app->sweeps, app->store, app->jobs, o.workers, err))) {
        td_jobs_destroy(app->jobs);
        td_reserve_close(app->reserve);
        td_store_close(app->store);
        free(app);
        return st;
    }
    *out = app;
    return TD_OK;
}

const td_config *td_app_config(const td_app *app)
{
    return &app->cfg;
}

int td_app_ready(td_app *app, char *reason, size_t cap)
{
    td_jobs_stats s = {0};
    if (app && app->jobs)
        td_jobs_stats_get(app->jobs, &s);
    if (!app || !app->store || !s.accepting || s.workers_alive < 1) {
        snprintf(reason, cap, "the store or the workers are not running");
        return 0;
    }
    td_error err = {{0}, {0}};
    if (td_reserve_check(app->reserve, &err)) { /* probes: ready again once there is room */
        snprintf(reason, cap, "%s", err.message);
        return 0;
    }
    return 1;
}

void td_app_metrics(td_app *app, FILE *out)
{
    int64_t counts[TD_JOB_NSTATES] = {0};
    td_store_job_counts(app->store, counts, NULL);
    fprintf(out, "# HELP traind_jobs Jobs by state.\n# TYPE traind_jobs gauge\n");
    for (int s = 0; s < TD_JOB_NSTATES; s++)
        fprintf(out, "traind_jobs{state=\"%s\"} %lld\n", td_job_state_name((td_job_state)s),
                (long long)counts[s]);
    td_jobs_stats js;
    td_jobs_stats_get(app->jobs, &js);
    fprintf(out, "# HELP traind_queue_depth Jobs waiting for a worker.\n"
                 "# TYPE traind_queue_depth gauge\ntraind_queue_depth %lld\n",
            (long long)js.queued);
    /* running jobs: traind_jobs{state="running"} above (one name per metric) */
    fprintf(out, "# HELP traind_samples_trained_total Training rows processed.\n"
                 "# TYPE traind_samples_trained_total counter\n"
                 "traind_samples_trained_total %lld\n", (long long)js.samples_trained);
    fprintf(out, "# HELP traind_epochs_trained_total Epochs completed.\n"
                 "# TYPE traind_epochs_trained_total counter\n"
                 "traind_epochs_trained_total %lld\n", (long long)js.epochs_trained);
    fprintf(out, "# HELP traind_state_dir_full 1 while state_dir is full: new work gets 507.\n"
                 "# TYPE traind_state_dir_full gauge\ntraind_state_dir_full %d\n",
            td_reserve_check(app->reserve, NULL) == TD_ENOSPACE);
    fprintf(out, "# HELP traind_memory_budget_bytes max_memory_mb in bytes.\n"
                 "# TYPE traind_memory_budget_bytes gauge\ntraind_memory_budget_bytes %llu\n"
                 "# HELP traind_memory_reserved_bytes Estimated memory of running jobs and "
                 "request bodies being read.\n"
                 "# TYPE traind_memory_reserved_bytes gauge\ntraind_memory_reserved_bytes %llu\n",
            (unsigned long long)td_budget_limit(), (unsigned long long)td_budget_used());
    td_dscache_stats ds;
    td_store_dataset_cache_stats(app->store, &ds);
    fprintf(out, "# HELP traind_dataset_checksums_total Dataset files whose checksum was "
                 "verified (once per file version).\n"
                 "# TYPE traind_dataset_checksums_total counter\n"
                 "traind_dataset_checksums_total %llu\n"
                 "# HELP traind_datasets_mapped Datasets held by jobs and requests now, each "
                 "mapped once.\n# TYPE traind_datasets_mapped gauge\ntraind_datasets_mapped %lld\n"
                 "# HELP traind_datasets_mapped_bytes File bytes of the datasets held now.\n"
                 "# TYPE traind_datasets_mapped_bytes gauge\ntraind_datasets_mapped_bytes %lld\n",
            (unsigned long long)ds.verifications, (long long)ds.mapped,
            (long long)ds.mapped_bytes);
}

void td_app_shutdown(td_app *app)
{
    if (!app)
        return;
    td_sweeps_destroy(app->sweeps); /* first: it releases trials to the jobs */
    td_jobs_destroy(app->jobs); /* stops: running jobs checkpoint and stay resumable */
    td_reserve_close(app->reserve);
    td_store_close(app->store);
    free(app);
}

/* ---- for the other route files (routes_impl.h) --------------------------------------- */

td_store *td_app_store(td_app *app) { return app->store; }
td_sweeps *td_app_sweeps(td_app *app) { return app->sweeps; }
td_reserve *td_app_reserve(td_app *app) { return app->reserve; }
void td_app_fail(td_resp *resp, td_status st, const td_error *err) { fail(resp, st, err); }
void td_app_json(td_resp *resp, int status, char *body) { json_or_oom(resp, status, body); }
int td_app_paging(const td_req *req, td_resp *resp, int *limit, const char **after)
{
    return paging(req, resp, limit, after);
}
