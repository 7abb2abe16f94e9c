/* catalog.c — the model catalogue of GET /v1/models (contract in catalog.h). */
#include "http/catalog.h"
#include "codec/json_util.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_hparams.h"
#include "traind/hparams.h"

#define NO_BOUND 1e300

static const char *const type_names[] = {
    [TD_HP_DOUBLE] = "number",          [TD_HP_INT] = "integer",
    [TD_HP_BOOL] = "boolean",           [TD_HP_ENUM] = "enum",
    [TD_HP_DOUBLE2] = "number_pair",    [TD_HP_INT_LIST] = "integer_list",
    [TD_HP_FLOAT_LIST] = "number_list", [TD_HP_WEIGHTS] = "weights",
    [TD_HP_TENSOR] = "tensor",
};

/* Adds a number printed exactly (cJSON's own printing rounds 2^53 - 1, seed's bound, to 15
 * digits). 0 when out of memory. */
static int add_exact(cJSON *o, const char *key, double v)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return cJSON_AddRawToObject(o, key, buf) != NULL;
}

/* The value of a (maybe dotted) name in the object td_json_hparams_object made, as a new
 * item (null when absent); NULL when out of memory. */
static cJSON *default_of(const cJSON *defaults, const char *name)
{
    const char *dot = strchr(name, '.');
    const cJSON *v = defaults;
    if (dot) {
        char group[64];
        snprintf(group, sizeof group, "%.*s", (int)(dot - name), name);
        v = cJSON_GetObjectItemCaseSensitive(v, group);
        name = dot + 1;
    }
    v = v ? cJSON_GetObjectItemCaseSensitive(v, name) : NULL;
    return v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
}

/* One table row as the catalogue shows it for a model whose defaults are `defaults`. */
static cJSON *entry_json(const td_hparam_def *d, const cJSON *defaults)
{
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddStringToObject(e, "name", d->name) ||
        !cJSON_AddStringToObject(e, "type", type_names[d->type]))
        goto nomem;
    cJSON *def = default_of(defaults, d->name);
    if (!def || !cJSON_AddItemToObject(e, "default", def)) {
        cJSON_Delete(def);
        goto nomem;
    }
    /* every entry has every key: min / max null when unbounded (and for enums and
     * booleans), choices null but for enums */
    int bounded = d->type != TD_HP_ENUM && d->type != TD_HP_BOOL;
    int has_min = bounded && d->min > -NO_BOUND, has_max = bounded && d->max < NO_BOUND;
    if (!(has_min ? add_exact(e, "min", d->min) : cJSON_AddNullToObject(e, "min") != NULL) ||
        !(has_max ? add_exact(e, "max", d->max) : cJSON_AddNullToObject(e, "max") != NULL) ||
        !cJSON_AddBoolToObject(e, "min_exclusive", has_min && d->min_exclusive) ||
        !cJSON_AddBoolToObject(e, "max_exclusive", has_max && d->type == TD_HP_DOUBLE2))
        goto nomem;
    if (d->type == TD_HP_ENUM) {
        cJSON *c = cJSON_AddArrayToObject(e, "choices");
        for (int i = 0; c && d->choices[i]; i++)
            if (!cJSON_AddItemToArray(c, cJSON_CreateString(d->choices[i]))) goto nomem;
        if (!c) goto nomem;
    } else if (!cJSON_AddNullToObject(e, "choices")) {
        goto nomem;
    }
    if (!cJSON_AddStringToObject(e, "description", d->doc ? d->doc : "")) goto nomem;
    return e;
nomem:
    cJSON_Delete(e);
    return NULL;
}

static cJSON *model_json(td_model_kind m)
{
    td_hparams hp;
    td_hparams_defaults(&hp, m);
    td_hparams_resolve(&hp, 0);
    cJSON *defaults = td_json_hparams_object(&hp);
    td_hparams_fini(&hp);
    cJSON *o = cJSON_CreateObject(), *list = NULL;
    if (!defaults || !o || !cJSON_AddStringToObject(o, "name", td_model_names[m]) ||
        !cJSON_AddStringToObject(o, "description", td_model_doc(m)) ||
        !(list = cJSON_AddArrayToObject(o, "hyperparameters")))
        goto nomem;
    for (size_t i = 0; i < td_hparam_ndefs; i++) {
        const td_hparam_def *d = &td_hparam_defs[i];
        if (!(d->models & TD_MODEL_BIT(m))) continue;
        if (!td_json_add(list, NULL, entry_json(d, defaults))) goto nomem;
    }
    cJSON_Delete(defaults);
    return o;
nomem:
    cJSON_Delete(defaults);
    cJSON_Delete(o);
    return NULL;
}

char *td_json_model_catalog(void)
{
    cJSON *root = cJSON_CreateObject(), *models = cJSON_AddArrayToObject(root, "models");
    if (!models) {
        cJSON_Delete(root);
        return NULL;
    }
    for (int m = 0; m < TD_MODEL_COUNT; m++) {
        if (!td_json_add(models, NULL, model_json((td_model_kind)m))) {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return td_json_take(root);
}

/* A catalogue value as Markdown table text: numbers shortest, lists as JSON, strings bare;
 * '|' escaped. */
static void md_value(td_sbuf *b, const cJSON *v)
{
    char *t = cJSON_IsString(v) ? NULL : td_json_print(v);
    const char *s = cJSON_IsString(v) ? v->valuestring : t ? t : "";
    for (; *s; s++)
        td_sbuf_puts(b, *s == '|' ? "\\|" : (char[2]){*s, 0});
    free(t);
}

char *td_hparams_markdown(void)
{
    char *json = td_json_model_catalog();
    cJSON *cat = json ? cJSON_Parse(json) : NULL;
    free(json);
    if (!cat) return NULL;
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_puts(&b,
                 "# Hyperparameters\n\n"
                 "Generated from the hyperparameter table (`td_hparam_defs` in "
                 "src/train/hparams.c) by `make docs`; do not edit: the docs suite fails "
                 "when this file is not what the table gives. `GET /v1/models` serves the "
                 "same catalogue as JSON. A job gives them as `\"hyperparameters\"`; a "
                 "dotted name (`monotone.weight`) is a key of a nested object "
                 "(`{\"monotone\": {\"weight\": 1}}`); null or absent means the default.\n");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(cat, "models"))
    {
        td_sbuf_puts(&b, "\n## ");
        md_value(&b, cJSON_GetObjectItem(m, "name"));
        td_sbuf_puts(&b, "\n\n");
        md_value(&b, cJSON_GetObjectItem(m, "description"));
        td_sbuf_puts(&b,
                     "\n\n| name | type | default | range | description |\n"
                     "|---|---|---|---|---|\n");
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItem(m, "hyperparameters"))
        {
            const cJSON *lo = cJSON_GetObjectItem(h, "min"), *hi = cJSON_GetObjectItem(h, "max");
            const cJSON *ch = cJSON_GetObjectItem(h, "choices");
            td_sbuf_puts(&b, "| `");
            md_value(&b, cJSON_GetObjectItem(h, "name"));
            td_sbuf_puts(&b, "` | ");
            md_value(&b, cJSON_GetObjectItem(h, "type"));
            td_sbuf_puts(&b, " | ");
            md_value(&b, cJSON_GetObjectItem(h, "default"));
            td_sbuf_puts(&b, " | ");
            for (const cJSON *c = cJSON_IsArray(ch) ? ch->child : NULL; c; c = c->next) {
                if (c != ch->child) td_sbuf_puts(&b, ", ");
                md_value(&b, c);
            }
            if (cJSON_IsNumber(lo)) {
                td_sbuf_puts(&b,
                             cJSON_IsTrue(cJSON_GetObjectItem(h, "min_exclusive")) ? "> " : "≥ ");
                md_value(&b, lo);
            }
            if (cJSON_IsNumber(hi)) {
                td_sbuf_puts(&b, cJSON_IsNumber(lo) ? ", " : "");
                td_sbuf_puts(&b,
                             cJSON_IsTrue(cJSON_GetObjectItem(h, "max_exclusive")) ? "< " : "≤ ");
                md_value(&b, hi);
            }
            td_sbuf_puts(&b, " | ");
            md_value(&b, cJSON_GetObjectItem(h, "description"));
            td_sbuf_puts(&b, " |\n");
        }
    }
    cJSON_Delete(cat);
    return td_sbuf_finish(&b, NULL);
}

void td_h_models(void *app, const td_req *req, td_resp *resp)
{
    (void)app, (void)req;
    td_resp_json(resp, 200, td_json_model_catalog()); /* NULL: a 500 out_of_memory */
}
