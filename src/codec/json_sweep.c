/* json_sweep.c — sweeps in and out of JSON (contract in json_sweep.h). */
#include "codec/json_sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_util.h"
#include "jobs/sweeps.h"
#include "math/rng.h"

#define SH "schedule.successive_halving"
#define NETS (TD_MODEL_BIT(TD_MODEL_SOFTMAX) | TD_MODEL_BIT(TD_MODEL_MLP))

/* The record columns a sweep may rank by: the models that record them, whether they need
 * validation data, and their natural mode. */
static const struct metric_def {
    const char *name;
    unsigned models;
    int needs_validation, maximize;
} METRICS[] = {
    {"loss", TD_MODELS_ALL, 0, 0},
    {"val_loss", NETS, 1, 0},
    {"val_accuracy", NETS, 1, 1},
    {"accuracy", NETS, 0, 1},
    {"data_loss", NETS, 0, 0},
    {"lower_bound", TD_MODEL_BIT(TD_MODEL_GMM), 0, 1},
    {"pair_loss", TD_MODEL_BIT(TD_MODEL_EMBED_GMM), 0, 0},
    {"gmm_nll", TD_MODEL_BIT(TD_MODEL_EMBED_GMM), 0, 0},
};
#define NMETRICS (sizeof METRICS / sizeof METRICS[0])

#define TD_SWEEP_MAX_DIMS 64

static const char *const DIST_NAMES[] = {"uniform", "log_uniform", "int_uniform", NULL};

void td_sweep_request_fini(td_sweep_request *r)
{
    if (!r) return;
    cJSON_Delete(r->root);
    free(r->dims);
    memset(r, 0, sizeof *r);
}

static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* An optional string member that must be a or b: *out 0 for a, 1 for b (absent or null:
 * *out unchanged). */
static td_status read_choice(int *out, const cJSON *root, const char *key, const char *a,
                             const char *b, td_error *err)
{
    const cJSON *v = member(root, key);
    const char *s;
    if (!v) return TD_OK;
    td_status st = td_json_get_string(&s, v, key, err);
    if (st) return st;
    if (strcmp(s, a) != 0 && strcmp(s, b) != 0)
        return td_fail(err, TD_EINVAL, key, "%s must be \"%s\" or \"%s\", got \"%.64s\"", key, a, b,
                       s);
    *out = strcmp(s, b) == 0;
    return TD_OK;
}

/* One entry of "search": a non-empty list, or one distribution {"kind": [a, b]}. */
static td_status read_dim(td_search_dim *d, const cJSON *v, td_error *err)
{
    char field[TD_JSON_PATH_MAX];
    td_json_path(field, "search", d->name);
    const td_hparam_def *def = td_hparam_find(d->name);
    if (!def) {
        const char *near = td_hparam_suggest(d->name);
        return td_fail(err, TD_EINVAL, field, "%s: unknown hyperparameter \"%.64s\"%s%s%s", field,
                       d->name, near ? "; did you mean \"" : "", near ? near : "",
                       near ? "\"?" : "");
    }
    if (def->type == TD_HP_WEIGHTS)
        return td_fail(err, TD_EINVAL, field, "%s: initial_weights cannot be searched", field);
    if (cJSON_IsArray(v)) {
        d->kind = TD_SEARCH_LIST;
        d->values = v;
        d->n = cJSON_GetArraySize(v);
        if (d->n < 1 || d->n > TD_SWEEP_MAX_TRIALS)
            return td_fail(err, TD_EINVAL, field, "%s must list 1 to %d values", field,
                           TD_SWEEP_MAX_TRIALS);
        return TD_OK;
    }
    if (!cJSON_IsObject(v) || !v->child || v->child->next)
        return td_fail(err, TD_EINVAL, field,
                       "%s must be a list of values or one of "
                       "{\"uniform\": [a, b]}, {\"log_uniform\": [a, b]}, "
                       "{\"int_uniform\": [a, b]}",
                       field);
    td_status st = td_json_check_keys(v, field, field, DIST_NAMES, err);
    if (st) return st;
    char dfield[TD_JSON_PATH_MAX];
    td_json_path(dfield, field, v->child->string);
    d->kind = strcmp(v->child->string, "uniform") == 0 ? TD_SEARCH_UNIFORM
        : strcmp(v->child->string, "log_uniform") == 0 ? TD_SEARCH_LOG_UNIFORM
                                                       : TD_SEARCH_INT_UNIFORM;
    const cJSON *ab = v->child;
    double x[2];
    if ((st = td_json_get_pair(x, ab, d->kind == TD_SEARCH_INT_UNIFORM, NULL, " [a, b]", dfield,
                               err)))
        return st;
    if (d->kind == TD_SEARCH_LOG_UNIFORM && !(x[0] > 0 && x[1] > 0))
        return td_fail(err, TD_EINVAL, dfield, "%s: bounds must be > 0, got [%g, %g]", dfield, x[0],
                       x[1]);
    if (d->kind == TD_SEARCH_INT_UNIFORM ? !(x[0] <= x[1]) : !(x[0] < x[1]))
        return td_fail(err, TD_EINVAL, dfield, "%s: [a, b] needs a %s b, got [%g, %g]", dfield,
                       d->kind == TD_SEARCH_INT_UNIFORM ? "<=" : "<", x[0], x[1]);
    d->lo = x[0], d->hi = x[1];
    return TD_OK;
}

static td_status read_schedule(td_sweep_request *r, const cJSON *v, td_error *err)
{
    static const char *const keys[] = {"successive_halving", NULL};
    static const char *const sh_keys[] = {"min_epochs", "eta", NULL};
    td_status st = td_json_check_keys(v, "schedule", "schedule", keys, err);
    if (st) return st;
    const cJSON *sh = member(v, "successive_halving");
    if (!sh) return td_fail(err, TD_EINVAL, SH, SH " is required in a schedule");
    if ((st = td_json_check_keys(sh, SH, SH, sh_keys, err))) return st;
    const cJSON *r0 = member(sh, "min_epochs"), *eta = member(sh, "eta");
    if (!r0)
        return td_fail(err, TD_EINVAL, SH ".min_epochs",
                       SH ".min_epochs is required: the "
                          "epochs every trial trains");
    if (!eta)
        return td_fail(err, TD_EINVAL, SH ".eta",
                       SH ".eta is required: 1/eta of the trials "
                          "go on at each rung");
    if ((st = td_json_get_int(&r->min_epochs, r0, 1, INT32_MAX, SH ".min_epochs", err))) return st;
    return td_json_get_int(&r->eta, eta, 2, 1000, SH ".eta", err);
}

static td_status sweep_from(td_sweep_request *r, td_error *err)
{
    static const char *const keys[] = {"model",  "dataset", "validation", "hyperparameters",
                                       "search", "method",  "trials",     "seed",
                                       "metric", "mode",    "schedule",   NULL};
    const cJSON *root = r->root, *v;
    td_status st = td_json_check_keys(root, NULL, "the sweep body", keys, err);
    if (st) return st;
    const char *s;
    if (!(v = member(root, "model")))
        return td_fail(err, TD_EINVAL, "model",
                       "model is required: one of softmax, mlp, gmm, "
                       "embed_gmm");
    if ((st = td_json_get_string(&s, v, "model", err))) return st;
    int kind = td_model_parse(s);
    if (kind < 0)
        return td_fail(err, TD_EINVAL, "model",
                       "unknown model \"%.64s\" (models: softmax, mlp, "
                       "gmm, embed_gmm)",
                       s);
    r->model = (td_model_kind)kind;
    if (!(v = member(root, "dataset")))
        return td_fail(err, TD_EINVAL, "dataset",
                       "dataset is required: the id of a stored "
                       "dataset");
    if ((st = td_json_get_string(&r->dataset, v, "dataset", err))) return st;
    if ((v = member(root, "validation")) &&
        (st = td_json_get_string(&r->validation, v, "validation", err)))
        return st;
    r->base = member(root, "hyperparameters");
    if (r->base && !cJSON_IsObject(r->base))
        return td_fail(err, TD_EINVAL, "hyperparameters",
                       "hyperparameters must be an object "
                       "of name: value");
    r->random = 0;
    if ((st = read_choice(&r->random, root, "method", "grid", "random", err))) return st;
    const cJSON *search = member(root, "search");
    if (!cJSON_IsObject(search) || !search->child)
        return td_fail(err, TD_EINVAL, "search",
                       "search is required: an object of "
                       "hyperparameter name: [values] or {\"uniform\" | \"log_uniform\" | "
                       "\"int_uniform\": [a, b]}");
    for (const cJSON *c = search->child; c; c = c->next)
        for (const cJSON *d = search->child; d != c; d = d->next)
            if (strcmp(c->string, d->string) == 0) {
                char f[TD_JSON_PATH_MAX];
                td_json_path(f, "search", c->string);
                return td_fail(err, TD_EINVAL, f, "\"%s\" is given twice", c->string);
            }
    r->ndims = cJSON_GetArraySize(search);
    if (r->ndims > TD_SWEEP_MAX_DIMS)
        return td_fail(err, TD_EINVAL, "search", "search has %d names; at most %d", r->ndims,
                       TD_SWEEP_MAX_DIMS);
    if (!(r->dims = calloc((size_t)r->ndims, sizeof *r->dims)))
        return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    int k = 0;
    for (const cJSON *c = search->child; c; c = c->next, k++) {
        r->dims[k].name = c->string;
        if ((st = read_dim(&r->dims[k], c, err))) return st;
    }
    const cJSON *trials = member(root, "trials");
    if (r->random) {
        if (!trials)
            return td_fail(err, TD_EINVAL, "trials",
                           "trials is required with method "
                           "\"random\": how many to draw");
        if ((st = td_json_get_int(&r->n_trials, trials, 1, TD_SWEEP_MAX_TRIALS, "trials", err)))
            return st;
    } else {
        r->n_trials = 1;
        for (k = 0; k < r->ndims; k++) {
            char f[TD_JSON_PATH_MAX];
            td_json_path(f, "search", r->dims[k].name);
            if (r->dims[k].kind != TD_SEARCH_LIST)
                return td_fail(err, TD_EINVAL, f,
                               "%s: a grid takes a list of values; a "
                               "distribution needs method \"random\"",
                               f);
            r->n_trials *= r->dims[k].n;
            if (r->n_trials > TD_SWEEP_MAX_TRIALS)
                return td_fail(err, TD_EINVAL, "search", "the grid has more than %d trials",
                               TD_SWEEP_MAX_TRIALS);
        }
        if (trials)
            return td_fail(err, TD_EINVAL, "trials",
                           "a grid has one trial per combination "
                           "(%lld here); trials is for method \"random\"",
                           (long long)r->n_trials);
    }
    if ((v = member(root, "seed")) &&
        (st = td_json_get_int(&r->seed, v, 0, INT64_C(1) << 53, "seed", err)))
        return st;
    if ((v = member(root, "metric")) && (st = td_json_get_string(&r->metric, v, "metric", err)))
        return st;
    r->mode = -1;
    if ((st = read_choice(&r->mode, root, "mode", "min", "max", err))) return st;
    if ((v = member(root, "schedule"))) return read_schedule(r, v, err);
    return TD_OK;
}

td_status td_json_sweep_parse(td_sweep_request *out, const char *body, size_t len, td_error *err)
{
    memset(out, 0, sizeof *out);
    td_status st = td_json_parse(&out->root, body, len, err);
    if (st) return st;
    if ((st = sweep_from(out, err))) td_sweep_request_fini(out);
    return st;
}

/* Sets obj[name] = v (taken), a dotted name inside its group object. */
static int set_value(cJSON *obj, const char *name, cJSON *v)
{
    const char *dot = strchr(name, '.');
    if (dot) {
        char group[64];
        snprintf(group, sizeof group, "%.*s", (int)(dot - name), name);
        cJSON *g = cJSON_GetObjectItemCaseSensitive(obj, group);
        if (!cJSON_IsObject(g)) {
            cJSON_DeleteItemFromObjectCaseSensitive(obj, group);
            if (!(g = cJSON_AddObjectToObject(obj, group))) return -1;
        }
        obj = g, name = dot + 1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
    return cJSON_AddItemToObject(obj, name, v) ? 0 : -1;
}

td_status td_json_sweep_trial(const td_sweep_request *r, int64_t i, cJSON **values, cJSON **hparams,
                              td_error *err)
{
    cJSON *vals = cJSON_CreateObject();
    cJSON *hp = r->base ? cJSON_Duplicate(r->base, 1) : cJSON_CreateObject();
    td_rng rng;
    td_rng_seed(&rng, (uint64_t)r->seed, (uint64_t)i + 1);
    int64_t rest = i; /* grid: i in mixed radix, the first name the most significant */
    int ok = vals && hp;
    int64_t idx[TD_SWEEP_MAX_DIMS];
    for (int k = r->ndims - 1; k >= 0; k--) {
        const td_search_dim *d = &r->dims[k];
        idx[k] = d->kind == TD_SEARCH_LIST && !r->random ? rest % d->n : 0;
        if (d->kind == TD_SEARCH_LIST && !r->random) rest /= d->n;
    }
    for (int k = 0; ok && k < r->ndims; k++) {
        const td_search_dim *d = &r->dims[k];
        cJSON *v = NULL;
        double u;
        switch (d->kind) {
        case TD_SEARCH_LIST: {
            int64_t j = r->random ? (int64_t)td_rng_below(&rng, (uint64_t)d->n) : idx[k];
            v = cJSON_Duplicate(cJSON_GetArrayItem(d->values, (int)j), 1);
            break;
        }
        case TD_SEARCH_UNIFORM:
            u = td_rng_uniform(&rng);
            v = cJSON_CreateNumber(d->lo + (d->hi - d->lo) * u);
            break;
        case TD_SEARCH_LOG_UNIFORM:
            u = td_rng_uniform(&rng);
            v = cJSON_CreateNumber(exp(log(d->lo) + (log(d->hi) - log(d->lo)) * u));
            break;
        case TD_SEARCH_INT_UNIFORM:
            v = cJSON_CreateNumber(d->lo +
                                   (double)td_rng_below(&rng, (uint64_t)(d->hi - d->lo) + 1));
            break;
        }
        cJSON *copy = v ? cJSON_Duplicate(v, 1) : NULL;
        ok = v && copy && set_value(hp, d->name, copy) == 0;
        if (!ok) cJSON_Delete(copy);
        ok = ok && cJSON_AddItemToObject(vals, d->name, v);
        if (!ok) cJSON_Delete(v);
    }
    if (!ok) {
        cJSON_Delete(vals);
        cJSON_Delete(hp);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    }
    *values = vals;
    *hparams = hp;
    return TD_OK;
}

td_status td_json_sweep_metric(const td_sweep_request *r, int has_validation, const char **metric,
                               int *maximize, td_error *err)
{
    const char *name = r->metric                            ? r->metric
        : has_validation && (TD_MODEL_BIT(r->model) & NETS) ? "val_loss"
                                                            : "loss";
    const struct metric_def *m = NULL;
    char list[256] = "";
    size_t n = 0;
    const char *names[NMETRICS + 1];
    int nn = 0;
    for (size_t i = 0; i < NMETRICS; i++) {
        if (!(METRICS[i].models & TD_MODEL_BIT(r->model))) continue;
        if (strcmp(METRICS[i].name, name) == 0) m = &METRICS[i];
        names[nn++] = METRICS[i].name;
        n +=
            (size_t)snprintf(list + n, sizeof list - n, "%s\"%s\"", n ? ", " : "", METRICS[i].name);
    }
    names[nn] = NULL;
    if (!m) {
        const char *near = td_json_suggest(name, names);
        return td_fail(err, TD_EINVAL, "metric",
                       "metric \"%.32s\" is not one the %s model "
                       "records (%s)%s%s%s",
                       name, td_model_names[r->model], list, near ? "; did you mean \"" : "",
                       near ? near : "", near ? "\"?" : "");
    }
    if (m->needs_validation && !has_validation)
        return td_fail(err, TD_EINVAL, "metric",
                       "metric \"%s\" needs validation data in "
                       "every trial: give \"validation\" (a dataset id) or "
                       "hyperparameters.validation_split > 0",
                       name);
    *metric = m->name;
    *maximize = r->mode >= 0 ? r->mode : m->maximize;
    return TD_OK;
}

char *td_json_sweep_spec(const td_sweep_request *r)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *search = cJSON_GetObjectItemCaseSensitive(r->root, "search");
    int ok = o && cJSON_AddStringToObject(o, "method", r->random ? "random" : "grid") &&
        cJSON_AddNumberToObject(o, "n_trials", (double)r->n_trials) &&
        cJSON_AddNumberToObject(o, "seed", (double)r->seed) &&
        cJSON_AddItemToObject(o, "search", cJSON_Duplicate(search, 1)) &&
        cJSON_AddItemToObject(o, "hyperparameters",
                              r->base ? cJSON_Duplicate(r->base, 1) : cJSON_CreateObject());
    if (ok && r->eta) {
        cJSON *sh =
            cJSON_AddObjectToObject(cJSON_AddObjectToObject(o, "schedule"), "successive_halving");
        ok = sh && cJSON_AddNumberToObject(sh, "min_epochs", (double)r->min_epochs) &&
            cJSON_AddNumberToObject(sh, "eta", (double)r->eta);
    } else if (ok) {
        ok = cJSON_AddNullToObject(o, "schedule") != NULL;
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

/* A trial's state name: "pending" before its job exists, "paused" between rungs. */
static const char *trial_state(const td_sweep_trial *t)
{
    if (!t->job[0]) return "pending";
    if (t->paused && t->state == TD_JOB_QUEUED) return "paused";
    return td_job_state_name(t->state);
}

static void put_opt(td_sbuf *b, const char *key, const char *v)
{
    td_sbuf_key(b, key, 0);
    td_sbuf_string(b, v && *v ? v : NULL);
}

static void put_trial(td_sbuf *b, const td_sweep_trial *t, int brief)
{
    td_sbuf_puts(b, "{");
    td_sbuf_key(b, brief ? "job" : "index", 1);
    if (brief) {
        td_sbuf_string(b, t->job);
    } else {
        td_sbuf_int(b, t->index);
        put_opt(b, "job", t->job);
        put_opt(b, "state", trial_state(t));
        td_sbuf_key(b, "epoch", 0);
        td_sbuf_int(b, t->epoch);
        td_sbuf_key(b, "stopped_early", 0);
        td_sbuf_puts(b, t->stopped_early ? "true" : "false");
    }
    td_sbuf_key(b, "metric", 0);
    td_sbuf_double(b, t->metric);
    td_sbuf_key(b, "hyperparameters", 0);
    td_sbuf_puts(b, t->values);
    td_sbuf_puts(b, "}");
}

char *td_json_sweep(const td_sweep_row *s, const td_sweep_trial *t, int n, int with_trials)
{
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b, "{");
    td_sbuf_key(&b, "id", 1);
    td_sbuf_string(&b, s->id);
    put_opt(&b, "state", td_job_state_name(s->state));
    put_opt(&b, "model", s->model);
    put_opt(&b, "dataset", s->dataset);
    put_opt(&b, "validation", s->validation);
    put_opt(&b, "created_at", s->created_at);
    put_opt(&b, "started_at", s->started_at);
    put_opt(&b, "finished_at", s->finished_at);
    put_opt(&b, "metric", s->metric);
    put_opt(&b, "mode", s->maximize ? "max" : "min");
    td_sbuf_key(&b, "epochs", 0);
    td_sbuf_int(&b, s->epochs);
    size_t len = s->spec ? strlen(s->spec) : 0; /* {"method",...}: spliced in */
    if (len > 2) {
        td_sbuf_puts(&b, ",");
        td_sbuf_put(&b, s->spec + 1, len - 2);
    }
    td_sbuf_key(&b, "rung", 0);
    if (s->eta)
        td_sbuf_printf(&b, "{\"index\":%lld,\"epochs\":%lld}", (long long)s->rung,
                       (long long)td_sweep_rung_epochs(s, s->rung));
    else
        td_sbuf_puts(&b, "null");
    static const char *const names[] = {"pending",   "queued", "running",  "paused",
                                        "succeeded", "failed", "cancelled"};
    int64_t counts[7] = {0}, early = 0;
    for (int i = 0; i < n; i++) {
        const char *st = trial_state(&t[i]);
        for (int k = 0; k < 7; k++)
            counts[k] += strcmp(st, names[k]) == 0;
        early += t[i].stopped_early;
    }
    td_sbuf_key(&b, "counts", 0);
    td_sbuf_puts(&b, "{");
    for (int k = 0; k < 7; k++) {
        td_sbuf_key(&b, names[k], k == 0);
        td_sbuf_int(&b, counts[k]);
    }
    td_sbuf_key(&b, "stopped_early", 0);
    td_sbuf_int(&b, early);
    td_sbuf_puts(&b, "}");
    td_sbuf_key(&b, "cancel_requested", 0);
    td_sbuf_puts(&b, s->cancel_requested ? "true" : "false");
    td_sbuf_key(&b, "error", 0);
    td_sbuf_error(&b, s->error_code, s->error_message);
    int best = td_sweep_best(t, n, s->maximize);
    td_sbuf_key(&b, "best", 0);
    if (best >= 0)
        put_trial(&b, &t[best], 1);
    else
        td_sbuf_puts(&b, "null");
    if (with_trials) {
        td_sbuf_key(&b, "trials", 0);
        td_sbuf_puts(&b, "[");
        for (int i = 0; i < n; i++) {
            if (i) td_sbuf_puts(&b, ",");
            put_trial(&b, &t[i], 0);
        }
        td_sbuf_puts(&b, "]");
    }
    td_sbuf_puts(&b, "}");
    return td_sbuf_finish(&b, NULL);
}
