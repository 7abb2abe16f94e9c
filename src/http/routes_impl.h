/* routes_impl.h — what routes.c shares with the other route files (routes_datasets.c,
 * routes_jobs.c, routes_predict.c, routes_sweeps.c): the application's parts, its answer
 * helpers, the job validation every job and every sweep trial goes through, and the
 * handlers of the route table (routes.c). Not for other modules. */
#ifndef TRAIND_HTTP_ROUTES_IMPL_H
#define TRAIND_HTTP_ROUTES_IMPL_H

#include <cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec/json_util.h"
#include "codec/stream_dataset.h"
#include "http/http.h"
#include "http/routes.h"
#include "jobs/jobs.h"
#include "jobs/sweeps.h"
#include "store/reserve.h"
#include "store/store.h"

/* Decodes a job's stored hyperparameter text against the loaded datasets (val may be
 * NULL) and checks it as td_trainer_create will, without building the trainer: the
 * validation of POST /v1/jobs. *K gets the outputs, *bytes the memory for admission. An
 * error names its field as the request does (td_json_scope_error), the data as data_field:
 * "dataset", or "data" for a job's inline data. */
td_status td_app_check_job(td_app *app, const char *model, const char *hp_text,
                           const td_stored_dataset *train, const td_stored_dataset *val,
                           const char *data_field, int64_t *K, uint64_t *bytes, td_error *err);

/* A store call on one object: a delete or a cancel. */
typedef td_status (*td_app_store_op)(td_store *s, const char *id, td_error *err);
/* op(app->store, id, err), tried once more when it met a full disk and the space reserve
 * gave room back (store/reserve.h): deletes and cancels are never refused for space. */
td_status td_app_retry(td_app *app, td_app_store_op op, const char *id, td_error *err);
/* DELETE /v1/<objects>/{id}: op through td_app_retry, answered 204 or with the failure. */
void td_app_delete(td_app *app, td_app_store_op op, const td_req *req, td_resp *resp);
/* Answers a listing: the failure st of its store call (err), or 200 with the page
 * {"<key>":[item 0, ..., item n-1],"next":next} (next "": null). item(app, rows, i) gives
 * item i's JSON (malloc'd, taken; NULL: null). */
void td_app_page(td_app *app, td_resp *resp, td_status st, const td_error *err, const char *key,
                 int n, char *(*item)(td_app *app, const void *rows, int i), const void *rows,
                 const char *next);
/* The rows of a listing's page, as its store call gives them (any: the array). */
typedef union td_app_rows {
    void *any;
    td_dataset_meta *datasets;
    struct td_sweep_row *sweeps;
} td_app_rows;
/* A listing, GET /v1/<key> (td_app_list). */
typedef struct td_app_listing {
    const char *key;  /* "datasets": the page's member */
    const char *what; /* "dataset": names an unknown cursor (with exists) */
    /* the store's page after `after`: *n rows, next as td_store_job_list's */
    td_status (*list)(td_app *app, int limit, const char *after, td_app_rows *rows, int *n,
                      char next[TD_ID_MAX], td_error *err);
    char *(*item)(td_app *app, const void *rows, int i); /* as td_app_page's */
    void (*drop)(void *rows, int n);                     /* frees the n rows */
    int (*exists)(td_app *app, const char *id); /* 0: no object id; NULL: after unchecked */
} td_app_listing;
/* Answers GET /v1/<key> by l: limit and after from the query (a 422 for a bad limit, or
 * for an after naming no object when l->exists is set), then as td_app_page. */
void td_app_list(td_app *app, const td_req *req, td_resp *resp, const td_app_listing *l);

/* The /v1/sweeps handlers (routes_sweeps.c). */
void td_h_sweep_create(void *app, const td_req *req, td_resp *resp);
void td_h_sweep_list(void *app, const td_req *req, td_resp *resp);
void td_h_sweep_get(void *app, const td_req *req, td_resp *resp);
void td_h_sweep_delete(void *app, const td_req *req, td_resp *resp);
void td_h_sweep_cancel(void *app, const td_req *req, td_resp *resp);

/* The application: what every handler gets as its app argument. */
struct td_app {
    td_store *store;
    td_jobs *jobs;
    td_sweeps *sweeps;   /* the sweep scheduler (jobs/sweeps.h) */
    td_reserve *reserve; /* state_dir's space reserve */
    td_config cfg;
    int cores; /* compute threads: a job's estimate assumes them all */
};

/* ---- small helpers (static: each route file its copy) ------------------------------- */

/* Answers a failure of a json_* or engine call: 400 for malformed JSON, else by status. */
static inline void fail(td_resp *resp, td_status st, const td_error *err)
{
    if (st == TD_EMALFORMED)
        td_resp_error(resp, 400, "malformed_json", NULL, "%s", err->message);
    else
        td_resp_from_error(resp, st, err);
}

static inline void json_or_oom(td_resp *resp, int status, char *body)
{
    if (body)
        td_resp_json(resp, status, body);
    else
        td_resp_error(resp, 500, "out_of_memory", NULL, "out of memory");
}

/* limit in [1, 1000] (default 50) and after from the query string. */
static inline int paging(const td_req *req, td_resp *resp, int *limit, const char **after)
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
static inline void cursor_unknown(td_resp *resp, const char *what, const char *after)
{
    td_resp_error(resp, 422, "invalid_argument", "after",
                  "after: there is no %s \"%s\" (a "
                  "cursor is the \"next\" of the previous page)",
                  what, after);
}

/* POST /v1/jobs, /v1/jobs/{id}/predict and /v1/loss stream too: the state is the object
 * parser (td_dstream_object), whose arrays (the inline dataset's, X, logits, ...) fill
 * as the body arrives; the end callbacks answer as the handlers did, and big answers
 * (predictions, gradients) are written as they are sent (json_out.h). */
static inline uint64_t size_hint(const td_req *req)
{
    const char *cl = td_req_header(req, "Content-Length");
    return cl ? strtoull(cl, NULL, 10) : 0; /* only sizes the arrays */
}

static inline int object_piece(void *state, const char *data, size_t len)
{
    return td_dstream_feed(state, data, len);
}

static inline void object_free(void *state) { td_dstream_destroy(state); }

/* ---- across the route files -------------------------------------------------------- */

/* Stores a parsed dataset (max_dataset_rows / _features checked, its class and column
 * names kept); *meta gets its metadata (routes_datasets.c). */
td_status td_app_store_dataset(td_app *app, const td_dataset_buf *d, td_dataset_meta *meta,
                               td_error *err);
/* Deletes a dataset; on a full disk with the reserve's room (routes_datasets.c). */
td_status td_app_delete_dataset(td_app *app, const char *id, td_error *err);
/* The failure for a dataset id that is not stored, naming field (routes_jobs.c). */
td_status td_app_no_dataset(td_app *app, const char *field, const char *id, td_error *err);

/* The handlers and body sinks of the route table (routes.c). */
extern const td_body_sink td_dataset_sink; /* routes_datasets.c */
void td_h_dataset_list(void *app, const td_req *req, td_resp *resp);
void td_h_dataset_get(void *app, const td_req *req, td_resp *resp);
void td_h_dataset_data(void *app, const td_req *req, td_resp *resp);
void td_h_dataset_delete(void *app, const td_req *req, td_resp *resp);
extern const td_body_sink td_job_sink; /* routes_jobs.c */
void td_h_job_list(void *app, const td_req *req, td_resp *resp);
void td_h_job_get(void *app, const td_req *req, td_resp *resp);
void td_h_job_losses(void *app, const td_req *req, td_resp *resp);
void td_h_job_validation(void *app, const td_req *req, td_resp *resp);
void td_h_job_cancel(void *app, const td_req *req, td_resp *resp);
void td_h_job_delete(void *app, const td_req *req, td_resp *resp);
void td_h_job_events(void *app, const td_req *req, td_resp *resp);
extern const td_body_sink td_predict_sink; /* routes_predict.c */
extern const td_body_sink td_eval_sink;
extern const td_body_sink td_loss_sink;
void td_h_job_model(void *app, const td_req *req, td_resp *resp);

#endif
