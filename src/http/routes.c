/* routes.c — the /v1 route table of SPEC §6 and the application state its handlers
 * share; the handlers are in routes_datasets.c, routes_jobs.c, routes_predict.c and
 * routes_sweeps.c (routes_impl.h).
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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/catalog.h"
#include "http/routes_impl.h"
#include "http/static.h"
#include "jobs/jobs.h"
#include "jobs/sweeps.h"
#include "store/reserve.h"
#include "store/store.h"
#include "util/budget.h"

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
     &td_dataset_sink, "name,label_column,header,delimiter"},
    {"GET", "/v1/datasets", td_h_dataset_list, NULL, 0, NULL, "limit,after"},
    {"GET", "/v1/datasets/{id}", td_h_dataset_get, NULL, 0, NULL, ""},
    {"DELETE", "/v1/datasets/{id}", td_h_dataset_delete, NULL, 0, NULL, ""},
    {"GET", "/v1/datasets/{id}/data", td_h_dataset_data, NULL, 0, NULL, "format"},
    {"POST", "/v1/jobs", NULL, JSON, 0, &td_job_sink, ""},
    {"GET", "/v1/jobs", td_h_job_list, NULL, 0, NULL, "state,limit,after"},
    {"GET", "/v1/jobs/{id}", td_h_job_get, NULL, 0, NULL, ""},
    {"DELETE", "/v1/jobs/{id}", td_h_job_delete, NULL, 0, NULL, ""},
    {"GET", "/v1/jobs/{id}/losses", td_h_job_losses, NULL, 0, NULL,
     "format,after_epoch,limit,max_points"},
    {"GET", "/v1/jobs/{id}/events", td_h_job_events, NULL, 0, NULL, "max_rate,every"},
    {"GET", "/v1/jobs/{id}/model", td_h_job_model, NULL, 0, NULL, "format"},
    {"GET", "/v1/jobs/{id}/validation", td_h_job_validation, NULL, 0, NULL, ""},
    {"POST", "/v1/jobs/{id}/predict", NULL, JSON ",application/x-npy", 0, &td_predict_sink, ""},
    {"POST", "/v1/jobs/{id}/evaluate", NULL, JSON, 0, &td_eval_sink, ""},
    {"POST", "/v1/jobs/{id}/cancel", td_h_job_cancel, NULL, 0, NULL, ""},
    {"POST", "/v1/sweeps", td_h_sweep_create, JSON, 0, NULL, ""},
    {"GET", "/v1/sweeps", td_h_sweep_list, NULL, 0, NULL, "limit,after"},
    {"GET", "/v1/sweeps/{id}", td_h_sweep_get, NULL, 0, NULL, ""},
    {"DELETE", "/v1/sweeps/{id}", td_h_sweep_delete, NULL, 0, NULL, ""},
    {"POST", "/v1/sweeps/{id}/cancel", td_h_sweep_cancel, NULL, 0, NULL, ""},
    {"POST", "/v1/loss", NULL, JSON, 0, &td_loss_sink, ""},
    {"GET", "/v1/openapi.json", h_openapi, NULL, 0, NULL, ""},
    {"GET", "/v1/models", td_h_models, NULL, 0, NULL, ""}, /* catalog.h */
    {"GET", "/", td_h_index, NULL, 1, NULL, ""},           /* static.h: the dashboard */
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
    if (st != TD_OK && st != TD_ENOSPACE) return st;
    td_status rs =
        td_reserve_open(&app->reserve, cfg->state_dir, (int64_t)cfg->disk_reserve_mb << 20, &rerr);
    if (st == TD_ENOSPACE && rs == TD_OK && td_reserve_release(app->reserve, st, err))
        st = td_store_open_uri(&app->store, cfg->state_dir, cfg->store, err);
    if (st == TD_OK && rs != TD_OK) st = td_fail(err, rs, rerr.field, "%s", rerr.message);
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
    if (!app) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
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
    td_jobs_opts o = {.workers = td_config_workers(cfg),
                      .cores = app->cores,
                      .max_queued = cfg->max_queued_jobs,
                      .checkpoint_interval_s = cfg->checkpoint_interval_s,
                      .reserve = app->reserve,
                      .lease_s = cfg->lease_s,
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

const td_config *td_app_config(const td_app *app) { return &app->cfg; }

int td_app_ready(td_app *app, char *reason, size_t cap)
{
    td_jobs_stats s = {0};
    if (app && app->jobs) td_jobs_stats_get(app->jobs, &s);
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
    fprintf(out,
            "# HELP traind_queue_depth Jobs waiting for a worker.\n"
            "# TYPE traind_queue_depth gauge\ntraind_queue_depth %lld\n",
            (long long)js.queued);
    /* running jobs: traind_jobs{state="running"} above (one name per metric) */
    fprintf(out,
            "# HELP traind_samples_trained_total Training rows processed.\n"
            "# TYPE traind_samples_trained_total counter\n"
            "traind_samples_trained_total %lld\n",
            (long long)js.samples_trained);
    fprintf(out,
            "# HELP traind_epochs_trained_total Epochs completed.\n"
            "# TYPE traind_epochs_trained_total counter\n"
            "traind_epochs_trained_total %lld\n",
            (long long)js.epochs_trained);
    fprintf(out,
            "# HELP traind_state_dir_full 1 while state_dir is full: new work gets 507.\n"
            "# TYPE traind_state_dir_full gauge\ntraind_state_dir_full %d\n",
            td_reserve_check(app->reserve, NULL) == TD_ENOSPACE);
    fprintf(out,
            "# HELP traind_memory_budget_bytes max_memory_mb in bytes.\n"
            "# TYPE traind_memory_budget_bytes gauge\ntraind_memory_budget_bytes %llu\n"
            "# HELP traind_memory_reserved_bytes Estimated memory of running jobs and "
            "request bodies being read.\n"
            "# TYPE traind_memory_reserved_bytes gauge\ntraind_memory_reserved_bytes %llu\n",
            (unsigned long long)td_budget_limit(), (unsigned long long)td_budget_used());
    td_dscache_stats ds;
    td_store_dataset_cache_stats(app->store, &ds);
    fprintf(out,
            "# HELP traind_dataset_checksums_total Dataset files whose checksum was "
            "verified (once per file version).\n"
            "# TYPE traind_dataset_checksums_total counter\n"
            "traind_dataset_checksums_total %llu\n"
            "# HELP traind_datasets_mapped Datasets held by jobs and requests now, each "
            "mapped once.\n# TYPE traind_datasets_mapped gauge\ntraind_datasets_mapped %lld\n"
            "# HELP traind_datasets_mapped_bytes File bytes of the datasets held now.\n"
            "# TYPE traind_datasets_mapped_bytes gauge\ntraind_datasets_mapped_bytes %lld\n",
            (unsigned long long)ds.verifications, (long long)ds.mapped, (long long)ds.mapped_bytes);
}

void td_app_shutdown(td_app *app)
{
    if (!app) return;
    td_sweeps_destroy(app->sweeps); /* first: it releases trials to the jobs */
    td_jobs_destroy(app->jobs);     /* stops: running jobs checkpoint and stay resumable */
    td_reserve_close(app->reserve);
    td_store_close(app->store);
    free(app);
}

/* ---- for the other route files (routes_impl.h) --------------------------------------- */

td_status td_app_retry(td_app *app, td_app_store_op op, const char *id, td_error *err)
{
    td_status st = op(app->store, id, err);
    if (td_reserve_release(app->reserve, st, err)) st = op(app->store, id, err);
    return st;
}

void td_app_delete(td_app *app, td_app_store_op op, const td_req *req, td_resp *resp)
{
    td_error err = {{0}, {0}};
    td_status st = td_app_retry(app, op, req->params[0], &err);
    if (st)
        fail(resp, st, &err);
    else
        resp->status = 204;
}

void td_app_page(td_app *app, td_resp *resp, td_status st, const td_error *err, const char *key,
                 int n, char *(*item)(td_app *app, const void *rows, int i), const void *rows,
                 const char *next)
{
    if (st) {
        fail(resp, st, err);
        return;
    }
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b, "{");
    td_sbuf_string(&b, key);
    td_sbuf_puts(&b, ":[");
    for (int i = 0; i < n; i++) {
        char *j = item(app, rows, i);
        if (i) td_sbuf_puts(&b, ",");
        td_sbuf_puts(&b, j ? j : "null");
        free(j);
    }
    td_sbuf_puts(&b, "],\"next\":");
    td_sbuf_string(&b, next[0] ? next : NULL);
    td_sbuf_puts(&b, "}");
    json_or_oom(resp, 200, td_sbuf_finish(&b, NULL));
}

void td_app_list(td_app *app, const td_req *req, td_resp *resp, const td_app_listing *l)
{
    td_error err = {{0}, {0}};
    int limit, n = 0;
    const char *after;
    if (paging(req, resp, &limit, &after)) return;
    if (l->exists && after && *after && !l->exists(app, after)) {
        cursor_unknown(resp, l->what, after);
        return;
    }
    td_app_rows rows = {NULL};
    char next[TD_ID_MAX];
    td_status st = l->list(app, limit, after, &rows, &n, next, &err);
    td_app_page(app, resp, st, &err, l->key, n, l->item, rows.any, next);
    l->drop(rows.any, n);
}
