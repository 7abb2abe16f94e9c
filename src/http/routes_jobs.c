/* routes_jobs.c — /v1/jobs: submit (validated as its worker will run it), list, get,
 * loss history, validation rows, cancel, delete, and the event stream. Route table and
 * conventions: routes.c. */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/class_names.h"
#include "codec/json_hparams.h"
#include "codec/json_job.h"
#include "codec/json_util.h"
#include "http/events.h"
#include "http/routes_impl.h"
#include "jobs/jobs.h"
#include "jobs/tail.h"
#include "store/reserve.h"
#include "store/store.h"
#include "traind/train.h"
#include "util/budget.h"
#include "util/log.h"
#include "util/names.h"
#include "util/text.h"

/* An optional integer query argument in [lo, hi]: *out unaltered when absent; a 422
 * naming it when it is not such an integer (returns -1 then). */
static int query_int(const td_req *req, td_resp *resp, const char *name, int64_t lo, int64_t hi,
                     int64_t *out)
{
    const char *v = td_req_query(req, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        td_resp_error(resp, 422, "invalid_argument", name,
                      "%s must be an integer in [%lld, %lld], got \"%.64s\"", name, (long long)lo,
                      (long long)hi, v);
        return -1;
    }
    *out = x;
    return 0;
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
    if (status == 202 || status == 201) td_resp_header(resp, "Location", "/v1/jobs/%s", row.id);
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
    if (st == TD_OK && tc && net && (st = td_strings_parse(tc, &names, &n, err)) == TD_OK && n != K)
        st = td_fail(err, TD_EINVAL, "hyperparameters.n_classes",
                     "the dataset names %lld "
                     "classes but the model would have %lld outputs; leave n_classes null",
                     (long long)n, (long long)K);
    if (st == TD_OK && validation && (tc || vc) && (!tc || !vc || strcmp(tc, vc) != 0))
        st = td_fail(err, TD_EINVAL, "validation",
                     "the validation set's class names (%.120s) "
                     "differ from the training set's (%.120s): a validation set must name the "
                     "same classes",
                     vc ? vc : "none, its labels are indices",
                     tc ? tc : "none, its labels are indices");
    td_strings_free(names, n);
    free(tc), free(tcols), free(vc), free(vcols);
    return st;
}

td_status td_app_check_job(td_app *app, const char *model, const char *hp_text,
                           const td_stored_dataset *train, const td_stored_dataset *val,
                           const char *data_field, int64_t *K, uint64_t *bytes, td_error *err)
{
    td_hparams hp;
    td_status st = td_job_decode_hparams(&hp, model, hp_text, &train->ds, err);
    if (st == TD_OK) st = td_trainer_check(&hp, &train->ds, val ? &val->ds : NULL, K, err);
    if (st) td_json_scope_error(err, data_field);
    if (st == TD_OK)
        st = check_names(app, model, train->meta.id, val ? val->meta.id : NULL, *K, err);
    if (st == TD_OK) *bytes = td_jobs_job_bytes(&hp, train, val, *K, app->cores);
    td_hparams_fini(&hp);
    return st;
}

/* The failure for a dataset id that is not stored: when it is the name of a stored
 * dataset, the message gives that dataset's id (the newest of that name). Only on this
 * error path, and bounded: a few pages of the list. */
td_status td_app_no_dataset(td_app *app, const char *field, const char *id, td_error *err)
{
    char after[TD_ID_MAX] = "", found[TD_ID_MAX] = "";
    for (int page = 0; page < 10 && !found[0]; page++) {
        td_dataset_meta *rows = NULL;
        int n = 0;
        if (td_store_dataset_list(app->store, 1000, after, &rows, &n, after, NULL) != TD_OK) break;
        for (int i = 0; i < n && !found[0]; i++)
            if (rows[i].name[0] && strcmp(rows[i].name, id) == 0)
                snprintf(found, sizeof found, "%s", rows[i].id);
        free(rows);
        if (!after[0]) break;
    }
    if (found[0])
        return td_fail(err, TD_EINVAL, field,
                       "no dataset with id \"%.128s\"; \"%.128s\" is the "
                       "name of dataset %s: give its id, \"%s\"",
                       id, id, found, found);
    return td_fail(err, TD_EINVAL, field, "no dataset with id \"%.128s\"", id);
}

/* Validates a job exactly as its worker will run it: the stored hyperparameter text is
 * decoded against the dataset and checked as td_trainer_create checks it, without
 * building the trainer (that would cost the job's memory in this thread). *K gets the
 * model's outputs and *bytes its memory for admission (td_jobs_job_bytes). */
static td_status validate_job(td_app *app, const char *model, const char *hp_text,
                              const char *dataset, const char *validation, const char *data_field,
                              int64_t *K, uint64_t *bytes, td_error *err)
{
    td_stored_dataset train = {0}, val = {0};
    td_status st = td_store_dataset_load(app->store, dataset, &train, err);
    if (st == TD_ENOTFOUND) st = td_app_no_dataset(app, "dataset", dataset, err);
    if (st == TD_OK && validation) {
        st = td_store_dataset_load(app->store, validation, &val, err);
        if (st == TD_ENOTFOUND) st = td_app_no_dataset(app, "validation", validation, err);
    }
    if (st == TD_OK)
        st = td_app_check_job(app, model, hp_text, &train, validation ? &val : NULL, data_field, K,
                              bytes, err);
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
    if (st == TD_OK) st = td_json_job_finish(&jr, parser, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    if ((st = td_jobs_check_room(app->jobs, &err))) /* a full queue: 429 before the data is read */
        goto out;
    if (jr.data) {
        td_dataset_meta meta;
        if ((st = td_app_store_dataset(app, jr.data, &meta, &err))) {
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
    /* the checks against inline data name it "data.X[i][j]", as the request does */
    if ((st = validate_job(app, model, hp_text, ds_id, jr.validation_id,
                           jr.data ? "data" : "dataset", &K, &bytes, &err)))
        goto out;
    uint64_t budget = td_budget_limit();
    if (budget && bytes > budget) { /* it could never start: say so now */
        over_budget = 1;
        st = td_fail(&err, TD_EINVAL, NULL,
                     "this job needs ~%llu MB of working memory "
                     "(estimate: model, gradients, optimizer state, scratch and its data), "
                     "over max_memory_mb = %llu; use fewer features, classes, components or "
                     "hidden units, or raise max_memory_mb",
                     (unsigned long long)((bytes + (1u << 20) - 1) >> 20),
                     (unsigned long long)(budget >> 20));
        goto out;
    }
    /* resolve "from the data" / "15%" so the job shows every value */
    if (td_hparams_open(&jr.hp)) {
        td_hparams_resolve(&jr.hp, K);
        free(hp_text);
        if (!(hp_text = td_job_hparams_text(&jr.hp, jr.initial_weights))) {
            st = td_fail(&err, TD_ENOMEM, NULL, "out of memory");
            goto out;
        }
    }
    td_job_spec spec = {.model = model,
                        .dataset = ds_id,
                        .validation = jr.validation_id,
                        .hyperparameters = hp_text,
                        .epochs = td_hparams_epochs(&jr.hp),
                        .idempotency_key = key};
    st = td_reserve_note(app->reserve, td_jobs_submit(app->jobs, &spec, bytes, id, &err), &err);
    raced = st == TD_ECONFLICT && id[0];
    if (raced) /* the same key raced us: that job (with its own data) is the answer */
        st = TD_OK;
out:
    if ((st || raced) && jr.data && ds_id[0])
        td_app_delete_dataset(app, ds_id, NULL); /* nothing refers to it */
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

const td_body_sink td_job_sink = {job_begin, object_piece, job_create, object_free};

/* A page's item i (td_app_page): rows[i] (td_job_row). */
static char *job_item(td_app *app, const void *rows, int i)
{
    return td_json_job(&((const td_job_row *)rows)[i], NULL);
}

void td_h_job_list(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    int limit, n = 0, state = -1;
    const char *after, *s = td_req_query(req, "state");
    if (paging(req, resp, &limit, &after)) return;
    if (s && *s) {
        td_job_state js;
        if (td_job_state_parse(s, &js, &err)) {
            td_resp_error(resp, 422, "invalid_argument", "state",
                          "state must be one of queued, running, succeeded, failed, cancelled; "
                          "got \"%s\"",
                          s);
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
    td_app_page(app, resp, st, &err, "jobs", n, job_item, rows, next);
    td_job_rows_free(rows, n);
}

void td_h_job_get(void *a, const td_req *req, td_resp *resp)
{
    answer_job(a, resp, 200, req->params[0]);
}

/* GET /v1/jobs/{id}/losses[?format=][&after_epoch=][&limit=][&max_points=]: the stored
 * history (bounded by history_max_rows) and, for a running job, its records still in
 * memory; after_epoch and limit page, max_points then downsamples what was selected. */
void td_h_job_losses(void *a, const td_req *req, td_resp *resp)
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
    if (st == TD_OK && max_points > 0) td_history_downsample(&h, max_points);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    size_t len = 0;
    int csv = fmt && strcmp(fmt, "csv") == 0;
    char *body = csv ? td_csv_history(&h, &len) : td_json_history(&h, &len);
    td_history_fini(&h);
    json_or_oom(resp, 200, body);
    if (body && csv) resp->content_type = "text/csv";
}

static int cmp_row(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* GET /v1/jobs/{id}/validation: the rows of the dataset that validation_split held out
 * (ascending row indices: the same rows the trainer scores val_loss on), or the id of the
 * separate validation set. 409 when the job holds nothing out. */
void td_h_job_validation(void *a, const td_req *req, td_resp *resp)
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
        st = td_fail(&err, TD_ECONFLICT, NULL,
                     "job %s holds no rows out: it has neither "
                     "hyperparameters.validation_split nor a validation dataset",
                     row.id);
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
    json_or_oom(resp, 200, td_json_take(o));
    o = NULL;
out:
    if (st) fail(resp, st, &err);
    cJSON_Delete(o);
    free(order);
    td_hparams_fini(&hp);
    td_stored_dataset_fini(&ds);
    td_job_row_fini(&row);
}

void td_h_job_cancel(void *a, const td_req *req, td_resp *resp)
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

void td_h_job_delete(void *a, const td_req *req, td_resp *resp)
{
    td_app_delete(a, td_store_job_delete, req, resp);
}

/* ---- Server-Sent Events ------------------------------------------------------------ */

/* GET /v1/jobs/{id}/events[?max_rate=R][&every=N] (events.h). */
void td_h_job_events(void *a, const td_req *req, td_resp *resp)
{
    td_app *app = a;
    td_error err = {{0}, {0}};
    int64_t rate = -1, every = 1;
    if (query_int(req, resp, "max_rate", 0, TD_EVENTS_MAX_RATE, &rate) ||
        query_int(req, resp, "every", 1, INT64_MAX / 2, &every))
        return;
    /* every alone thins by epochs instead of by time */
    if (rate < 0) rate = td_req_query(req, "every") ? 0 : TD_EVENTS_DEFAULT_RATE;
    td_job_row row;
    td_status st = td_store_job_get(app->store, req->params[0], &row, &err);
    if (st) {
        fail(resp, st, &err);
        return;
    }
    td_job_row_fini(&row);
    const char *last = td_req_header(req, "Last-Event-ID");
    td_events_opts o = {
        .max_rate = (int)rate, .every = every, .after = last ? strtoll(last, NULL, 10) : 0};
    if ((st = td_events_stream(resp, app->store, app->jobs, req->params[0], &o, &err)))
        fail(resp, st, &err);
}
