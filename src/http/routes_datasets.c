/* routes_datasets.c — /v1/datasets: upload (streamed through the dataset parsers as the
 * body arrives), list, get, export, delete. Route table and conventions: routes.c. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/class_names.h"
#include "codec/json_dataset.h"
#include "codec/stream_dataset.h"
#include "http/export.h"
#include "http/npy_upload.h"
#include "http/routes_impl.h"
#include "store/reserve.h"
#include "store/store.h"
#include "util/log.h"
#include "util/names.h"

static cJSON *dataset_meta_json(const td_dataset_meta *m)
{
    td_dataset_summary s = {.id = m->id,
                            .name = m->name[0] ? m->name : NULL,
                            .n_samples = m->N,
                            .n_features = m->D,
                            .n_classes = m->n_classes,
                            .groups = m->y_cols > 1 ? m->y_cols : 1,
                            .n_pairs = m->P,
                            .target = m->target,
                            .created_at = m->created_at};
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

/* Keeps the class and column names of the dataset just stored as id; on failure the
 * dataset goes too (a dataset never loses its names). */
static td_status store_names(td_app *app, const char *id, char *const *classes, int64_t K,
                             char *const *columns, int64_t D, td_error *err)
{
    char *ct = classes ? td_strings_json(classes, K) : NULL;
    char *dt = columns ? td_strings_json(columns, D) : NULL;
    td_status st = (classes && !ct) || (columns && !dt)
        ? td_fail(err, TD_ENOMEM, NULL, "out of memory")
        : td_reserve_note(app->reserve, td_store_dataset_names_set(app->store, id, ct, dt, err),
                          err);
    free(ct);
    free(dt);
    if (st) td_app_delete_dataset(app, id, NULL);
    return st;
}

/* Stores a parsed dataset; *meta gets its metadata. */
td_status td_app_store_dataset(td_app *app, const td_dataset_buf *d, td_dataset_meta *meta,
                               td_error *err)
{
    td_status st = check_dataset_limits(app, &d->ds, err);
    if (st == TD_OK)
        st = td_reserve_note(app->reserve,
                             td_store_dataset_put(app->store, &d->ds, d->name, meta, err), err);
    if (st == TD_OK && (d->classes || d->columns))
        st = store_names(app, meta->id, d->classes, d->n_classes, d->columns, d->n_columns, err);
    return st;
}

/* Deletes a dataset; on a full disk with the reserve's room. */
td_status td_app_delete_dataset(td_app *app, const char *id, td_error *err)
{
    return td_app_retry(app, td_store_dataset_delete, id, err);
}

/* POST /v1/datasets streams (a td_body_sink): the body goes through the streaming parser
 * as it arrives (stream_dataset.h), so a dataset of hundreds of megabytes costs its
 * float32 arrays, not its text nor a tree of it. */
typedef struct dataset_upload {
    td_dstream *parser; /* NULL when the request was refused before its body */
    td_npy_upload *npy; /* instead of parser for .npy / .npz (npy_upload.h) */
    td_status st;       /* that refusal (a bad label_column / header) */
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
    if (!u) return NULL;
    if ((u->st = td_reserve_check(app->reserve, &u->err))) /* full: 507, the body unparsed */
        return u;
    const char *ct = td_req_header(req, "Content-Type");
    const char *cl = td_req_header(req, "Content-Length");
    uint64_t hint = cl ? strtoull(cl, NULL, 10) : 0; /* only sizes the arrays */
    int npy = td_npy_upload_kind(ct);
    if (npy >= 0) {
        if (!(u->npy = td_npy_upload_begin(
                  app->store, npy, app->cfg.max_dataset_rows, app->cfg.max_dataset_features,
                  td_config_max_body(&app->cfg), td_req_query(req, "name"))))
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
    if (u->npy) return td_npy_upload_piece(u->npy, data, len);
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
    if (u->npy) st = td_npy_upload_end(u->npy, &meta, &err);
    if (u->npy && st == TD_OK) { /* y as unicode names */
        td_npy_upload_classes(u->npy, &d.classes, &d.n_classes);
        if (d.classes) st = store_names(app, meta.id, d.classes, d.n_classes, NULL, 0, &err);
    } else if (st == TD_OK)
        st = td_dstream_finish(u->parser, &d, &err);
    td_dstream_destroy(u->parser); /* what it held is in d now */
    u->parser = NULL;
    if (st == TD_OK && !u->npy) st = td_app_store_dataset(app, &d, &meta, &err);
    td_dataset_buf_free(&d);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    td_log(TD_LOG_INFO, "http", "dataset %s stored (%lld x %lld)", meta.id, (long long)meta.N,
           (long long)meta.D);
    td_resp_header(resp, "Location", "/v1/datasets/%s", meta.id);
    json_or_oom(resp, 201, td_json_take(dataset_json(app, &meta)));
}

const td_body_sink td_dataset_sink = {dataset_begin, dataset_piece, dataset_end, dataset_free};

/* The dataset listing (td_app_list): td_dataset_meta rows, each with its names. */
static td_status dataset_list(td_app *app, int limit, const char *after, td_app_rows *rows, int *n,
                              char next[TD_ID_MAX], td_error *err)
{
    return td_store_dataset_list(app->store, limit, after, &rows->datasets, n, next, err);
}

static char *dataset_item(td_app *app, const void *rows, int i)
{
    return td_json_take(dataset_json(app, &((const td_dataset_meta *)rows)[i]));
}

static void dataset_rows_free(void *rows, int n) { free(rows); }

static int dataset_exists(td_app *app, const char *id)
{
    td_dataset_meta m;
    return td_store_dataset_get(app->store, id, &m, NULL) != TD_ENOTFOUND;
}

static const td_app_listing dataset_listing = {.key = "datasets",
                                               .what = "dataset",
                                               .list = dataset_list,
                                               .item = dataset_item,
                                               .drop = dataset_rows_free,
                                               .exists = dataset_exists};

void td_h_dataset_list(void *app, const td_req *req, td_resp *resp)
{
    td_app_list(app, req, resp, &dataset_listing);
}

void td_h_dataset_get(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_dataset_meta meta;
    td_status st = td_store_dataset_get(app->store, req->params[0], &meta, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    json_or_oom(resp, 200, td_json_take(dataset_json(app, &meta)));
}

void td_h_dataset_data(void *a, const td_req *req, td_resp *resp)
{
    td_export_dataset(((td_app *)a)->store, req, resp); /* export.h */
}

void td_h_dataset_delete(void *a, const td_req *req, td_resp *resp)
{
    td_app_delete(a, td_store_dataset_delete, req, resp);
}
