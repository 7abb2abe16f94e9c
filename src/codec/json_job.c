/* json_job.c — jobs in and out of JSON (see json_job.h). */
#include "codec/json_job.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_hparams.h"
#include "codec/json_model.h"
#include "codec/json_util.h"

char *td_job_hparams_text(const td_hparams *hp, const void *initial_weights_cjson)
{
    cJSON *obj = td_json_hparams_object(hp);
    if (!obj) return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "initial_weights");
    if (initial_weights_cjson &&
        !td_json_add(obj, "initial_weights", cJSON_Duplicate(initial_weights_cjson, 1))) {
        cJSON_Delete(obj);
        return NULL;
    }
    return td_json_take(obj);
}

td_status td_job_decode_hparams(td_hparams *hp, const char *model, const char *text,
                                const td_dataset *ds, td_error *err)
{
    int kind = td_model_parse(model);
    td_hparams_defaults(hp, kind < 0 ? TD_MODEL_SOFTMAX : (td_model_kind)kind);
    if (kind < 0) return td_fail(err, TD_EINVAL, "model", "unknown model \"%s\"", model);
    cJSON *obj = NULL, *iw = NULL;
    td_status st = td_json_parse(&obj, text, strlen(text), err);
    if (st) return st;
    /* n_classes null means "from the data" (the resolved K is not stored as a number). */
    st = td_json_hparams(hp, (td_model_kind)kind, obj, &iw, err);
    cJSON_Delete(obj);
    if (st) goto out;
    int64_t K;
    if ((st = td_hparams_check(hp, ds, &K, err))) goto out;
    if (iw) {
        td_model shape;
        td_model_shape(&shape, hp, ds->D, K);
        float *w = NULL;
        if ((st = td_json_initial_weights(iw, &shape, &w, err))) goto out;
        hp->initial_weights = w;
        hp->n_initial_weights = shape.n_params;
    }
out:
    cJSON_Delete(iw);
    return st;
}

char *td_json_metrics_string(const char *const *names, const double *v, int n)
{
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b, "{");
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], "epoch") == 0 || strcmp(names[i], "elapsed_s") == 0) continue;
        td_sbuf_key(&b, names[i], first);
        td_sbuf_value(&b, names[i], v[i]);
        first = 0;
    }
    td_sbuf_puts(&b, "}");
    return td_sbuf_finish(&b, NULL);
}

char *td_json_model_meta_string(const td_model *m)
{
    char *out = NULL;
    return td_json_model_meta(&out, m, NULL) == TD_OK ? out : NULL;
}

/* Writes the stored hyperparameters, with initial_weights summarised as {"n_values": n}. */
static void put_hparams(td_sbuf *b, const char *text)
{
    if (!text || !strstr(text, "\"initial_weights\"")) {
        td_sbuf_puts(b, text && *text ? text : "{}");
        return;
    }
    cJSON *obj = cJSON_Parse(text);
    cJSON *iw = obj ? cJSON_GetObjectItemCaseSensitive(obj, "initial_weights") : NULL;
    if (iw) {
        cJSON *sum = cJSON_CreateObject();
        cJSON_AddStringToObject(sum, "given", "yes");
        cJSON_ReplaceItemViaPointer(obj, iw, sum);
    }
    char *s = obj ? td_json_print(obj) : NULL;
    td_sbuf_puts(b, s ? s : "{}");
    free(s);
    cJSON_Delete(obj);
}

static void put_opt_string(td_sbuf *b, const char *key, const char *s)
{
    td_sbuf_key(b, key, 0);
    td_sbuf_string(b, s && *s ? s : NULL);
}

char *td_json_job(const td_job_row *r, size_t *len)
{
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_reserve(&b, 2048); /* a job object is 1-2 KB: one allocation */
    td_sbuf_puts(&b, "{");
    td_sbuf_key(&b, "id", 1);
    td_sbuf_string(&b, r->id);
    put_opt_string(&b, "model", r->model);
    put_opt_string(&b, "dataset", r->dataset);
    put_opt_string(&b, "validation", r->validation);
    put_opt_string(&b, "state", td_job_state_name(r->state));
    put_opt_string(&b, "created_at", r->created_at);
    put_opt_string(&b, "started_at", r->started_at);
    put_opt_string(&b, "finished_at", r->finished_at);
    td_sbuf_key(&b, "progress", 0);
    td_sbuf_printf(&b, "{\"epoch\":%lld,\"epochs\":%lld,\"fraction\":", (long long)r->epoch,
                   (long long)r->epochs);
    double frac = r->state == TD_JOB_SUCCEEDED ? 1.0
        : r->epochs > 0                        ? (double)r->epoch / (double)r->epochs
                                               : 0.0;
    td_sbuf_double(&b, frac > 1 ? 1 : frac);
    td_sbuf_puts(&b, "}");
    td_sbuf_key(&b, "metrics", 0);
    td_sbuf_puts(&b, r->metrics && *r->metrics ? r->metrics : "{}");
    td_sbuf_key(&b, "hyperparameters", 0);
    put_hparams(&b, r->hyperparameters);
    td_sbuf_key(&b, "error", 0);
    td_sbuf_error(&b, r->error_code, r->error_message);
    td_sbuf_key(&b, "restarts", 0);
    td_sbuf_int(&b, r->restarts);
    td_sbuf_key(&b, "cancel_requested", 0);
    td_sbuf_puts(&b, r->cancel_requested ? "true" : "false");
    td_sbuf_key(&b, "resumed_on_different_build", 0);
    td_sbuf_puts(&b, r->resumed_on_different_build ? "true" : "false");
    td_sbuf_key(&b, "node", 0); /* shared stores: the daemon that holds (held) it */
    if (r->node[0])
        td_sbuf_string(&b, r->node);
    else
        td_sbuf_puts(&b, "null");
    put_opt_string(&b, "sweep", r->sweep); /* a sweep's trial (issue 18), else null */
    td_sbuf_key(&b, "paused", 0);
    td_sbuf_puts(&b, r->paused ? "true" : "false");
    td_sbuf_key(&b, "stopped_early", 0);
    td_sbuf_puts(&b, r->stopped_early ? "true" : "false");
    td_sbuf_key(&b, "warnings", 0);
    td_sbuf_puts(&b, r->warnings && *r->warnings ? r->warnings : "[]");
    td_sbuf_puts(&b, "}");
    return td_sbuf_finish(&b, len);
}

char *td_json_history(const td_history *h, size_t *len)
{
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_reserve(&b, (size_t)(h->n_cols + 1) * (size_t)h->n_rows * 12 + 64);
    td_sbuf_puts(&b, "{");
    for (int c = 0; c < h->n_cols; c++) {
        td_sbuf_key(&b, h->names[c], c == 0);
        td_sbuf_puts(&b, "[");
        const double *col = h->cols + (int64_t)c * h->n_rows;
        int is_epoch = strcmp(h->names[c], "epoch") == 0;
        for (int64_t i = 0; i < h->n_rows; i++) {
            if (i) td_sbuf_puts(&b, ",");
            if (is_epoch)
                td_sbuf_int(&b, h->epochs[i]);
            else
                td_sbuf_value(&b, h->names[c], col[i]);
        }
        td_sbuf_puts(&b, "]");
    }
    if (h->n_cols == 0) td_sbuf_puts(&b, "\"epoch\":[]");
    td_sbuf_puts(&b, "}");
    return td_sbuf_finish(&b, len);
}

char *td_csv_history(const td_history *h, size_t *len)
{
    td_sbuf b;
    td_sbuf_init(&b);
    for (int c = 0; c < h->n_cols; c++) {
        if (c) td_sbuf_puts(&b, ",");
        td_sbuf_puts(&b, h->names[c]);
    }
    td_sbuf_puts(&b, h->n_cols ? "\n" : "epoch\n");
    for (int64_t i = 0; i < h->n_rows; i++) {
        for (int c = 0; c < h->n_cols; c++) {
            if (c) td_sbuf_puts(&b, ",");
            double v = h->cols[(int64_t)c * h->n_rows + i];
            if (strcmp(h->names[c], "epoch") == 0)
                td_sbuf_int(&b, h->epochs[i]);
            else if (isfinite(v))
                td_sbuf_value(&b, h->names[c], v);
            /* NaN: empty field */
        }
        td_sbuf_puts(&b, "\n");
    }
    return td_sbuf_finish(&b, len);
}

char *td_json_warnings(const td_warning *w, int n)
{
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b, "[");
    for (int i = 0; i < n; i++) {
        td_sbuf_puts(&b, i ? ",{\"code\":" : "{\"code\":");
        td_sbuf_string(&b, w[i].code);
        td_sbuf_puts(&b, ",\"message\":");
        td_sbuf_string(&b, w[i].message);
        td_sbuf_puts(&b, "}");
    }
    td_sbuf_puts(&b, "]");
    return td_sbuf_finish(&b, NULL);
}
