/* routes_sweeps.c — the /v1/sweeps handlers (issue 18; the scheduler is jobs/sweeps.h).
 *
 * POST /v1/sweeps validates everything before anything is stored: the body's shape
 * (json_sweep.h), then every trial exactly as POST /v1/jobs validates a job — its
 * hyperparameters object read by td_json_hparams, its stored text decoded and checked
 * against the datasets by td_app_check_job (no trainer built), its memory against
 * max_memory_mb — then the metric and the schedule against the trials. A failing trial's
 * error keeps the job's field and says which trial it was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_hparams.h"
#include "codec/json_job.h"
#include "codec/json_sweep.h"
#include "codec/json_util.h"
#include "http/routes_impl.h"
#include "util/budget.h"
#include "util/log.h"

/* Answers the sweep (with its trials when with_trials). */
static void answer_sweep(td_app *app, td_resp *resp, int status, const char *id, int with_trials)
{
    td_error err = {{0}, {0}};
    td_sweep_row row;
    td_sweep_trial *t = NULL;
    int n = 0;
    td_status st = td_store_sweep_get(app->store, id, &row, &err);
    if (st == TD_OK && (st = td_store_sweep_trials(app->store, id, row.metric, &t, &n, &err)))
        td_sweep_row_fini(&row);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    if (status == 202) td_resp_header(resp, "Location", "/v1/sweeps/%s", row.id);
    json_or_oom(resp, status, td_json_sweep(&row, t, n, with_trials));
    td_sweep_trials_free(t, n);
    td_sweep_row_fini(&row);
}

/* Says which trial an error is about: "trial 3 of 8 ({"lr":0.5}): <message>". */
static td_status in_trial(td_status st, td_error *err, int64_t i, int64_t n, const cJSON *vals)
{
    char *v = vals ? cJSON_PrintUnformatted(vals) : NULL;
    char msg[sizeof err->message];
    snprintf(msg, sizeof msg, "%s", err->message);
    char field[sizeof err->field];
    snprintf(field, sizeof field, "%s", err->field);
    td_fail(err, st, field[0] ? field : NULL, "trial %lld of %lld (%.120s): %s", (long long)i,
            (long long)n, v ? v : "?", msg);
    free(v);
    return st;
}

/* The sweep's trials, each validated as a job: out[i] gets its values and hyperparameter
 * texts (malloc'd; the caller frees both) and its memory. *epochs gets trial 0's planned
 * epochs; *has_validation is 1 when every trial has validation data. */
static td_status make_trials(td_app *app, const td_sweep_request *r, const td_stored_dataset *train,
                             const td_stored_dataset *val, td_sweep_trial_spec *out,
                             int64_t *epochs, int *has_validation, int *over_budget, td_error *err)
{
    td_status st = TD_OK;
    const char *model = td_model_names[r->model];
    uint64_t budget = td_budget_limit();
    *has_validation = 1;
    for (int64_t i = 0; i < r->n_trials && !st; i++) {
        cJSON *vals = NULL, *hobj = NULL, *iw = NULL;
        td_hparams hp;
        td_hparams_defaults(&hp, r->model);
        char *text = NULL;
        int64_t K = 0;
        uint64_t bytes = 0;
        if ((st = td_json_sweep_trial(r, i, &vals, &hobj, err))) break;
        st = td_json_hparams(&hp, r->model, hobj, &iw, err);
        if (st == TD_OK && !(text = td_job_hparams_text(&hp, iw)))
            st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
        if (st == TD_OK)
            st = td_app_check_job(app, model, text, train, val, "dataset", &K, &bytes, err);
        int64_t e = td_hparams_epochs(&hp);
        if (st == TD_OK && budget && bytes > budget) {
            *over_budget = 1;
            st = td_fail(err, TD_EINVAL, NULL,
                         "it needs ~%llu MB of working memory, over "
                         "max_memory_mb = %llu",
                         (unsigned long long)((bytes >> 20) + 1),
                         (unsigned long long)(budget >> 20));
        }
        if (st == TD_OK && i > 0 && r->eta && e != *epochs)
            st = td_fail(err, TD_EINVAL, "schedule",
                         "with successive_halving every trial "
                         "trains the same epochs: trial 0 has %lld, this one %lld",
                         (long long)*epochs, (long long)e);
        if (i == 0) *epochs = e;
        if (!val && !(hp.validation_split > 0)) *has_validation = 0;
        out[i].hyperparameters = text;
        out[i].values = cJSON_PrintUnformatted(vals);
        out[i].bytes = bytes;
        if (st == TD_OK && !out[i].values) st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
        if (st && st != TD_ENOMEM) in_trial(st, err, i, r->n_trials, vals);
        cJSON_Delete(vals);
        cJSON_Delete(hobj);
        cJSON_Delete(iw);
        td_hparams_fini(&hp);
    }
    return st;
}

void td_h_sweep_create(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_sweep_request r;
    memset(&r, 0, sizeof r);
    td_stored_dataset train = {0}, val = {0};
    td_sweep_trial_spec *trials = NULL;
    char *spec_text = NULL, id[TD_ID_MAX] = "";
    int over_budget = 0, has_val = 0, maximize = 0;
    int64_t epochs = 0;
    const char *metric = NULL;
    td_status st = td_reserve_check(app->reserve, &err);
    if (st == TD_OK) st = td_json_sweep_parse(&r, req->body, req->body_len, &err);
    if (st == TD_OK &&
        (st = td_store_dataset_load(app->store, r.dataset, &train, &err)) == TD_ENOTFOUND)
        st = td_fail(&err, TD_EINVAL, "dataset", "no dataset with id \"%.64s\"", r.dataset);
    if (st == TD_OK && r.validation &&
        (st = td_store_dataset_load(app->store, r.validation, &val, &err)) == TD_ENOTFOUND)
        st = td_fail(&err, TD_EINVAL, "validation", "no dataset with id \"%.64s\"", r.validation);
    if (st == TD_OK) { /* the base on its own, even where every trial overrides it */
        td_hparams base;
        st = td_json_hparams(&base, r.model, r.base, NULL, &err);
        td_hparams_fini(&base);
    }
    if (st == TD_OK && !(trials = calloc((size_t)r.n_trials, sizeof *trials)))
        st = td_fail(&err, TD_ENOMEM, NULL, "out of memory");
    if (st == TD_OK)
        st = make_trials(app, &r, &train, r.validation ? &val : NULL, trials, &epochs, &has_val,
                         &over_budget, &err);
    if (st == TD_OK) st = td_json_sweep_metric(&r, has_val, &metric, &maximize, &err);
    if (st == TD_OK && r.eta && r.min_epochs >= epochs)
        st = td_fail(&err, TD_EINVAL, "schedule.successive_halving.min_epochs",
                     "schedule.successive_halving.min_epochs must be below the trials' epochs "
                     "(%lld), got %lld",
                     (long long)epochs, (long long)r.min_epochs);
    if (st == TD_OK && !(spec_text = td_json_sweep_spec(&r)))
        st = td_fail(&err, TD_ENOMEM, NULL, "out of memory");
    if (st == TD_OK) {
        td_sweep_spec spec = {.model = td_model_names[r.model],
                              .dataset = r.dataset,
                              .validation = r.validation,
                              .spec = spec_text,
                              .metric = metric,
                              .maximize = maximize,
                              .epochs = epochs,
                              .min_epochs = r.eta ? r.min_epochs : 0,
                              .eta = r.eta};
        st = td_reserve_note(
            app->reserve,
            td_store_sweep_insert(app->store, &spec, trials, (int)r.n_trials, id, &err), &err);
    }
    for (int64_t i = 0; trials && i < r.n_trials; i++) {
        free((char *)trials[i].values);
        free((char *)trials[i].hyperparameters);
    }
    free(trials);
    free(spec_text);
    td_stored_dataset_fini(&train);
    td_stored_dataset_fini(&val);
    td_sweep_request_fini(&r);
    if (over_budget) {
        td_resp_error(resp, 422, "over_memory_budget", NULL, "%s", err.message);
        return;
    }
    if (st) {
        fail(resp, st, &err);
        return;
    }
    td_log(TD_LOG_INFO, "http", "sweep %s queued", id);
    td_sweeps_kick(app->sweeps);
    answer_sweep(app, resp, 202, id, 1);
}

/* The sweep listing (td_app_list): td_sweep_row rows, each with its trials. */
static td_status sweep_list(td_app *app, int limit, const char *after, td_app_rows *rows, int *n,
                            char next[TD_ID_MAX], td_error *err)
{
    return td_store_sweep_list(app->store, limit, after, &rows->sweeps, n, next, err);
}

static char *sweep_item(td_app *app, const void *rows, int i)
{
    const td_sweep_row *w = &((const td_sweep_row *)rows)[i];
    td_sweep_trial *t = NULL;
    int nt = 0;
    td_store_sweep_trials(app->store, w->id, w->metric, &t, &nt, NULL);
    char *j = td_json_sweep(w, t, nt, 0);
    td_sweep_trials_free(t, nt);
    return j;
}

static void sweep_rows_free(void *rows, int n) { td_sweep_rows_free(rows, n); }

static const td_app_listing sweep_listing = {
    .key = "sweeps", .list = sweep_list, .item = sweep_item, .drop = sweep_rows_free};

void td_h_sweep_list(void *app, const td_req *req, td_resp *resp)
{
    td_app_list(app, req, resp, &sweep_listing);
}

void td_h_sweep_get(void *a, const td_req *req, td_resp *resp)
{
    answer_sweep(a, resp, 200, req->params[0], 1);
}

void td_h_sweep_cancel(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    td_status st = td_app_retry(app, td_store_sweep_cancel, req->params[0], &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    td_sweeps_kick(app->sweeps);
    answer_sweep(app, resp, 202, req->params[0], 1);
}

void td_h_sweep_delete(void *a, const td_req *req, td_resp *resp)
{
    td_app_delete(a, td_store_sweep_delete, req, resp);
}
