/* json_hparams.c — "hyperparameters" <-> td_hparams through td_hparam_defs, initial
 * weights into the flat parameter layout, and the job body. Contracts in json_hparams.h. */
#include "codec/json_hparams.h"

#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_util.h"
#include "codec/stream_dataset.h"

#define HP "hyperparameters"

/* ---- reading one value ------------------------------------------------------------ */

/* Bounds of a number per the table (the same messages as td_hparams_check). */
static td_status check_bounds(const td_hparam_def *d, double v, const char *field, td_error *err)
{
    if (d->min_exclusive ? !(v > d->min) : !(v >= d->min))
        return td_fail(err, TD_EINVAL, field, "%s must be %s %g, got %g", field,
                       d->min_exclusive ? ">" : ">=", d->min, v);
    if (!(v <= d->max))
        return td_fail(err, TD_EINVAL, field, "%s must be <= %g, got %g", field, d->max, v);
    return TD_OK;
}

static int64_t int_lo(const td_hparam_def *d)
{
    return d->min <= -9.2e18 ? INT64_MIN : (int64_t)ceil(d->min);
}

static int64_t int_hi(const td_hparam_def *d)
{
    return d->max >= 9.2e18 ? INT64_MAX : (int64_t)floor(d->max);
}

static td_status read_enum(int *out, const td_hparam_def *d, const cJSON *v, const char *field,
                           td_error *err)
{
    char list[256];
    size_t n = 0;
    list[0] = '\0';
    for (size_t i = 0; d->choices[i] && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s\"%s\"", i ? ", " : "", d->choices[i]);
    const char *s;
    if (!cJSON_IsString(v) || td_json_get_string(&s, v, field, NULL))
        return td_fail(err, TD_EINVAL, field, "%s must be one of %s", field, list);
    for (int i = 0; d->choices[i]; i++)
        if (strcmp(d->choices[i], s) == 0) {
            *out = i;
            return TD_OK;
        }
    const char *near = td_json_suggest(s, d->choices);
    if (near)
        return td_fail(err, TD_EINVAL, field,
                       "%s must be one of %s; got \"%.64s\" (did you "
                       "mean \"%s\"?)",
                       field, list, s, near);
    return td_fail(err, TD_EINVAL, field, "%s must be one of %s; got \"%.64s\"", field, list, s);
}

/* A nested array of 1 to 3 dimensions (numbers; rows of one length at every level),
 * finite float32 within the table's bounds, into *t (its old values freed). */
static td_status read_hp_tensor(td_hp_tensor *t, const td_hparam_def *d, const cJSON *v,
                                const char *field, td_error *err)
{
    if (!cJSON_IsArray(v) || !v->child)
        return td_fail(err, TD_EINVAL, field,
                       "%s must be a non-empty array of numbers, or of "
                       "rows of numbers",
                       field);
    td_status st = TD_OK;
    float *vals = NULL;
    int64_t dims[3] = {0, 0, 0};
    const cJSON *c0 = v->child;
    int ndim = !cJSON_IsArray(c0) ? 1 : c0->child && cJSON_IsArray(c0->child) ? 3 : 2;
    if (ndim == 1) {
        st = td_json_vector_f32(&vals, &dims[0], v, 0, field, err);
    } else if (ndim == 2) {
        st = td_json_matrix_f32(&vals, &dims[0], &dims[1], v, 0, field, err);
    } else {
        dims[0] = cJSON_GetArraySize(v);
        int64_t i = 0;
        for (const cJSON *c = v->child; c && !st; c = c->next, i++) {
            char ef[TD_JSON_PATH_MAX];
            td_json_index_path(ef, field, i, -1);
            float *m = NULL;
            int64_t r = 0, k = 0;
            if (!cJSON_IsArray(c) || !c->child || !cJSON_IsArray(c->child)) {
                st = td_fail(err, TD_EINVAL, ef, "%s must be an array of rows (like %s[0])", ef,
                             field);
                break;
            }
            if ((st = td_json_matrix_f32(&m, &r, &k, c, 0, ef, err))) break;
            if (i == 0) {
                dims[1] = r, dims[2] = k;
                vals = malloc(sizeof(float) * (size_t)(dims[0] * r * k));
                if (!vals) st = td_fail(err, TD_ENOMEM, field, "out of memory");
            } else if (r != dims[1] || k != dims[2]) {
                st = td_fail(err, TD_EINVAL, ef,
                             "%s is %lld x %lld, expected %lld x %lld "
                             "(like %s[0])",
                             ef, (long long)r, (long long)k, (long long)dims[1], (long long)dims[2],
                             field);
            }
            if (!st) memcpy(vals + i * dims[1] * dims[2], m, sizeof(float) * (size_t)(r * k));
            free(m);
        }
    }
    int64_t n = dims[0] * (ndim > 1 ? dims[1] : 1) * (ndim > 2 ? dims[2] : 1);
    for (int64_t i = 0; !st && i < n; i++) {
        char ef[TD_JSON_PATH_MAX];
        if (ndim == 1)
            td_json_index_path(ef, field, i, -1);
        else if (ndim == 2)
            td_json_index_path(ef, field, i / dims[1], i % dims[1]);
        else {
            char ij[TD_JSON_PATH_MAX];
            td_json_index_path(ij, field, i / (dims[1] * dims[2]), i / dims[2] % dims[1]);
            td_json_index_path(ef, ij, i % dims[2], -1);
        }
        st = check_bounds(d, vals[i], ef, err);
    }
    if (st) {
        free(vals);
        return st;
    }
    free(t->v);
    t->v = vals;
    t->n = n;
    t->ndim = ndim;
    memcpy(t->dims, dims, sizeof dims);
    return TD_OK;
}

/* Sets one table entry from v (not null). */
static td_status set_value(td_hparams *hp, const td_hparam_def *d, const cJSON *v, cJSON **iw,
                           td_error *err)
{
    char field[TD_JSON_PATH_MAX];
    td_json_path(field, HP, d->name);
    char *p = (char *)hp + d->offset;
    td_status st;
    switch (d->type) {
    case TD_HP_DOUBLE: {
        double x;
        if ((st = td_json_get_double(&x, v, field, err)) || (st = check_bounds(d, x, field, err)))
            return st;
        *(double *)p = x;
        return TD_OK;
    }
    case TD_HP_INT: {
        int64_t x;
        if ((st = td_json_get_int(&x, v, int_lo(d), int_hi(d), field, err)) ||
            (st = check_bounds(d, (double)x, field, err)))
            return st;
        *(int64_t *)p = x;
        return TD_OK;
    }
    case TD_HP_BOOL: return td_json_get_bool((int *)p, v, field, err);
    case TD_HP_ENUM: {
        int x = 0;
        if ((st = read_enum(&x, d, v, field, err))) return st;
        *(int *)p = x; /* the enum fields are int-sized with values 0.. */
        return TD_OK;
    }
    case TD_HP_DOUBLE2: {
        double x[2], range[2] = {d->min, d->max};
        if ((st = td_json_get_pair(x, v, 0, range, "", field, err))) return st;
        memcpy(p, x, sizeof x);
        return TD_OK;
    }
    case TD_HP_INT_LIST: {
        int64_t *list = (int64_t *)p, *count = (int64_t *)((char *)hp + d->count_offset);
        int64_t tmp[TD_MAX_HIDDEN];
        int64_t n = 0;
        if (cJSON_IsNumber(v)) { /* one layer: 64 is [64] */
            if ((st = td_json_get_int(&tmp[0], v, int_lo(d), int_hi(d), field, err))) return st;
            n = 1;
        } else if (cJSON_IsArray(v)) {
            int64_t size = cJSON_GetArraySize(v);
            if (size > TD_MAX_HIDDEN)
                return td_fail(err, TD_EINVAL, field,
                               "%s has %lld entries; at most %d are "
                               "supported",
                               field, (long long)size, TD_MAX_HIDDEN);
            for (const cJSON *c = v->child; c; c = c->next, n++) {
                char ef[TD_JSON_PATH_MAX];
                td_json_index_path(ef, field, n, -1);
                if ((st = td_json_get_int(&tmp[n], c, int_lo(d), int_hi(d), ef, err))) return st;
            }
        } else {
            return td_fail(err, TD_EINVAL, field, "%s must be an array of integers, got %s", field,
                           td_json_kind(v));
        }
        memcpy(list, tmp, sizeof(int64_t) * (size_t)n);
        *count = n;
        return TD_OK;
    }
    case TD_HP_FLOAT_LIST: {
        float **list = (float **)p;
        int64_t *count = (int64_t *)((char *)hp + d->count_offset);
        float *vals;
        int64_t n;
        if ((st = td_json_vector_f32(&vals, &n, v, 0, field, err))) return st;
        for (int64_t i = 0; i < n; i++) {
            char ef[TD_JSON_PATH_MAX];
            td_json_index_path(ef, field, i, -1);
            if ((st = check_bounds(d, vals[i], ef, err))) {
                free(vals);
                return st;
            }
        }
        free(*list);
        *list = vals;
        *count = n;
        return TD_OK;
    }
    case TD_HP_WEIGHTS:
        if (!cJSON_IsObject(v))
            return td_fail(err, TD_EINVAL, field,
                           "%s must be an object: {\"W\": [[...]], "
                           "\"b\": [...]} for softmax, {\"layers\": [{\"W\", \"b\"}, ...]} "
                           "for mlp",
                           field);
        if (iw) {
            cJSON_Delete(*iw);
            *iw = cJSON_Duplicate(v, 1);
            if (!*iw) return td_fail(err, TD_ENOMEM, field, "out of memory");
        }
        return TD_OK;
    case TD_HP_TENSOR: return read_hp_tensor((td_hp_tensor *)p, d, v, field, err);
    }
    return td_fail(err, TD_EINTERNAL, field, "unknown hyperparameter type");
}

/* Resets one entry to the model's default (for an explicit null). */
static void set_default(td_hparams *hp, const td_hparam_def *d, cJSON **iw)
{
    td_hparams def;
    td_hparams_defaults(&def, hp->model);
    char *p = (char *)hp + d->offset;
    const char *q = (const char *)&def + d->offset;
    switch (d->type) {
    case TD_HP_DOUBLE: memcpy(p, q, sizeof(double)); break;
    case TD_HP_INT: memcpy(p, q, sizeof(int64_t)); break;
    case TD_HP_BOOL:
    case TD_HP_ENUM: memcpy(p, q, sizeof(int)); break;
    case TD_HP_DOUBLE2: memcpy(p, q, 2 * sizeof(double)); break;
    case TD_HP_INT_LIST:
        memcpy(p, q, sizeof(int64_t) * TD_MAX_HIDDEN);
        memcpy((char *)hp + d->count_offset, (const char *)&def + d->count_offset, sizeof(int64_t));
        break;
    case TD_HP_FLOAT_LIST:
        free(*(float **)p);
        *(float **)p = NULL;
        *(int64_t *)((char *)hp + d->count_offset) = 0;
        break;
    case TD_HP_TENSOR:
        free(((td_hp_tensor *)p)->v);
        memset(p, 0, sizeof(td_hp_tensor));
        break;
    case TD_HP_WEIGHTS:
        if (iw) {
            cJSON_Delete(*iw);
            *iw = NULL;
        }
        break;
    }
}

/* ---- the object ------------------------------------------------------------------- */

/* Does some table name start with "group."? */
static int is_group(const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < td_hparam_ndefs; i++)
        if (strncmp(td_hparam_defs[i].name, key, n) == 0 && td_hparam_defs[i].name[n] == '.')
            return 1;
    return 0;
}

static td_status unknown_name(const char *name, td_error *err)
{
    char field[TD_JSON_PATH_MAX];
    td_json_path(field, HP, name);
    const char *near = td_hparam_suggest(name);
    if (near)
        return td_fail(err, TD_EINVAL, field,
                       "unknown hyperparameter \"%.64s\"; did you mean "
                       "\"%s\"?",
                       name, near);
    return td_fail(err, TD_EINVAL, field, "unknown hyperparameter \"%.64s\"", name);
}

/* Applies one named value after checking the name and the model. */
static td_status apply(td_hparams *hp, const char *name, const cJSON *v, cJSON **iw, td_error *err)
{
    const td_hparam_def *d = td_hparam_find(name);
    if (!d) return unknown_name(name, err);
    if (!(d->models & TD_MODEL_BIT(hp->model))) {
        char field[TD_JSON_PATH_MAX];
        td_json_path(field, HP, name);
        /* Another name for the same value that this model uses ("iterations"/"epochs"). */
        for (size_t i = 0; i < td_hparam_ndefs; i++) {
            const td_hparam_def *o = &td_hparam_defs[i];
            if (o != d && o->offset == d->offset && (o->models & TD_MODEL_BIT(hp->model)))
                return td_fail(err, TD_EINVAL, field,
                               "hyperparameter \"%s\" does not apply "
                               "to the %s model; use \"%s\"",
                               name, td_model_names[hp->model], o->name);
        }
        /* what the other models count in epochs, a gmm counts in EM iterations */
        if (hp->model == TD_MODEL_GMM && d->offset == offsetof(td_hparams, epochs))
            return td_fail(err, TD_EINVAL, field,
                           "hyperparameter \"%s\" does not apply to the "
                           "gmm model; use \"max_iter\" (EM iterations at most)",
                           name);
        return td_fail(err, TD_EINVAL, field,
                       "hyperparameter \"%s\" does not apply to the %s "
                       "model",
                       name, td_model_names[hp->model]);
    }
    if (cJSON_IsNull(v)) {
        set_default(hp, d, iw);
        return TD_OK;
    }
    return set_value(hp, d, v, iw, err);
}

static td_status check_twice(const cJSON *first, const cJSON *c, const char *prefix, td_error *err)
{
    for (const cJSON *d = first; d != c; d = d->next)
        if (d->string && c->string && strcmp(d->string, c->string) == 0) {
            char field[TD_JSON_PATH_MAX];
            td_json_path(field, prefix, c->string);
            return td_fail(err, TD_EINVAL, field, "\"%s\" is given twice", c->string);
        }
    return TD_OK;
}

td_status td_json_hparams(td_hparams *hp, td_model_kind model, const cJSON *obj,
                          cJSON **initial_weights, td_error *err)
{
    td_hparams_defaults(hp, model);
    if (initial_weights) *initial_weights = NULL;
    if (!obj || cJSON_IsNull(obj)) {
        td_hparams_resolve(hp, 0);
        return TD_OK;
    }
    if (!cJSON_IsObject(obj))
        return td_fail(err, TD_EINVAL, HP, HP " must be an object of name: value");
    td_status st = TD_OK;
    for (const cJSON *c = obj->child; c && !st; c = c->next) {
        const char *key = c->string ? c->string : "";
        /* Only known names get past apply(), which bounds this quadratic check. */
        if (!td_hparam_find(key) && !is_group(key)) {
            st = unknown_name(key, err);
            break;
        }
        if ((st = check_twice(obj->child, c, HP, err))) break;
        if (td_hparam_find(key)) {
            st = apply(hp, key, c, initial_weights, err);
            continue;
        }
        /* a nested group such as "monotone": {"weight", "margin"} */
        char gpath[TD_JSON_PATH_MAX];
        td_json_path(gpath, HP, key);
        if (cJSON_IsNull(c)) continue;
        if (!cJSON_IsObject(c)) {
            char list[256];
            size_t n = 0, klen = strlen(key);
            list[0] = '\0';
            for (size_t i = 0; i < td_hparam_ndefs && n < sizeof list; i++)
                if (strncmp(td_hparam_defs[i].name, key, klen) == 0 &&
                    td_hparam_defs[i].name[klen] == '.')
                    n += (size_t)snprintf(list + n, sizeof list - n, "%s\"%s\"", n ? ", " : "",
                                          td_hparam_defs[i].name + klen + 1);
            st = td_fail(err, TD_EINVAL, gpath, "%s must be an object with the keys %s", gpath,
                         list);
            break;
        }
        for (const cJSON *s = c->child; s && !st; s = s->next) {
            char name[TD_JSON_PATH_MAX];
            td_json_path(name, key, s->string ? s->string : "");
            if (!td_hparam_find(name)) {
                st = unknown_name(name, err);
                break;
            }
            if ((st = check_twice(c->child, s, gpath, err))) break;
            st = apply(hp, name, s, initial_weights, err);
        }
    }
    if (!st) /* the defaults that depend on other values (adamw's weight_decay) */
        td_hparams_resolve(hp, 0);
    if (st) {
        td_hparams_fini(hp);
        if (initial_weights) {
            cJSON_Delete(*initial_weights);
            *initial_weights = NULL;
        }
    }
    return st;
}

/* ---- initial weights -------------------------------------------------------------- */

#define IW HP ".initial_weights"

/* Reads tensor t (W or b) from v into out + t->offset, checking its shape. */
static td_status read_tensor(float *out, const td_tensor_desc *t, const cJSON *v, const char *path,
                             const char *rows_are, const char *cols_are, td_error *err)
{
    td_status st;
    float *buf = NULL;
    if (t->name[0] == 'W') {
        int64_t R, C;
        if ((st = td_json_matrix_f32(&buf, &R, &C, v, 0, path, err))) return st;
        if (R != t->rows)
            st = td_fail(err, TD_EINVAL, path, "%s has %lld rows, expected %lld (%s)", path,
                         (long long)R, (long long)t->rows, rows_are);
        else if (C != t->cols)
            st = td_fail(err, TD_EINVAL, path, "%s has %lld columns, expected %lld (%s)", path,
                         (long long)C, (long long)t->cols, cols_are);
    } else {
        int64_t n;
        if ((st = td_json_vector_f32(&buf, &n, v, 0, path, err))) return st;
        if (n != t->cols)
            st = td_fail(err, TD_EINVAL, path, "%s has %lld entries, expected %lld (%s)", path,
                         (long long)n, (long long)t->cols, cols_are);
    }
    if (!st) memcpy(out + t->offset, buf, sizeof(float) * (size_t)(t->rows * t->cols));
    free(buf);
    return st;
}

static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* One layer's {"W", "b"}: tensors t[0] (W) and, when has_b, t[1] (b). */
static td_status read_layer(float *out, const cJSON *obj, const char *prefix,
                            const td_tensor_desc *t, int has_b, const char *rows_are,
                            const char *cols_are, const char *no_bias_why, td_error *err)
{
    char pW[TD_JSON_PATH_MAX], pb[TD_JSON_PATH_MAX];
    td_json_path(pW, prefix, "W");
    td_json_path(pb, prefix, "b");
    const cJSON *W = member(obj, "W"), *b = member(obj, "b");
    if (!W) return td_fail(err, TD_EINVAL, pW, "%s is required", pW);
    td_status st = read_tensor(out, &t[0], W, pW, rows_are, cols_are, err);
    if (st) return st;
    if (has_b) {
        if (!b)
            return td_fail(err, TD_EINVAL, pb, "%s is required (%lld values)", pb,
                           (long long)t[1].cols);
        return read_tensor(out, &t[1], b, pb, rows_are, cols_are, err);
    }
    if (b) return td_fail(err, TD_EINVAL, pb, "%s must be null or absent: %s", pb, no_bias_why);
    return TD_OK;
}

/* softmax: {"W", "b", "intercept"} into buf (t: the model's nt tensors). */
static td_status softmax_initial(float *buf, const cJSON *w, const td_model *shape,
                                 const td_tensor_desc *t, int nt, td_error *err)
{
    const char *why = shape->intercept == TD_INTERCEPT_COLUMN0
        ? "with intercept \"column0\" the bias is row 0 of W"
        : "the model has no bias (intercept \"none\")";
    return read_layer(buf, w, IW, t, nt > 1, "the number of input features",
                      "the number of classes", why, err);
}

/* mlp: {"layers": [{"W", "b", "activation"}, ...]} into buf. */
static td_status mlp_initial(float *buf, const cJSON *w, const td_model *shape,
                             const td_tensor_desc *t, int nt, td_error *err)
{
    static const char *const layer_keys[] = {"W", "b", "activation", NULL};
    td_status st = TD_OK;
    const cJSON *layers = member(w, "layers");
    int64_t L = shape->n_hidden + 1;
    if (!cJSON_IsArray(layers)) {
        st = td_fail(err, TD_EINVAL, IW ".layers",
                     IW ".layers must be an array of %lld "
                        "layers {\"W\", \"b\"}",
                     (long long)L);
    } else if (cJSON_GetArraySize(layers) != L) {
        st = td_fail(err, TD_EINVAL, IW ".layers",
                     IW ".layers has %d entries, expected "
                        "%lld (%lld hidden layers and the output layer)",
                     cJSON_GetArraySize(layers), (long long)L, (long long)shape->n_hidden);
    } else {
        int64_t l = 0;
        for (const cJSON *layer = layers->child; layer && !st; layer = layer->next, l++) {
            char lp[TD_JSON_PATH_MAX];
            snprintf(lp, sizeof lp, IW ".layers[%lld]", (long long)l);
            if ((st = td_json_check_keys(layer, lp, "a layer", layer_keys, err))) break;
            const char *rows_are =
                l == 0 ? "the number of input features" : "the previous layer's width";
            const char *cols_are = l == L - 1 ? "the number of outputs" : "the layer's width";
            st = read_layer(buf, layer, lp, &t[2 * l], 1, rows_are, cols_are, "", err);
        }
    }
    (void)nt;
    return st;
}

/* GET /v1/jobs/{id}/model as it is: "classes" (the dataset's names) is ignored */
static const char *const softmax_keys[] = {"W",      "b",       "model", "intercept",
                                           "groups", "classes", NULL};
static const char *const mlp_keys[] = {"layers", "model", "groups", "classes", NULL};

/* The initial_weights converter of each family that takes them (keys: the object's
 * members; read: into the flat block); the others have none. */
static const struct {
    const char *const *keys;
    td_status (*read)(float *buf, const cJSON *w, const td_model *shape, const td_tensor_desc *t,
                      int nt, td_error *err);
} initial_rows[TD_MODEL_COUNT] = {
    [TD_MODEL_SOFTMAX] = {softmax_keys, softmax_initial},
    [TD_MODEL_MLP] = {mlp_keys, mlp_initial},
};

td_status td_json_initial_weights(const cJSON *w, const td_model *shape, float **out, td_error *err)
{
    *out = NULL;
    if ((unsigned)shape->kind >= TD_MODEL_COUNT || !initial_rows[shape->kind].read)
        return td_fail(err, TD_EINVAL, IW,
                       "initial_weights are not supported for the %s "
                       "model",
                       (unsigned)shape->kind < TD_MODEL_COUNT ? td_model_names[shape->kind] : "?");
    td_status st =
        td_json_check_keys(w, IW, "initial_weights", initial_rows[shape->kind].keys, err);
    if (st) return st;
    const cJSON *m = member(w, "model");
    if (m && !(cJSON_IsString(m) && strcmp(m->valuestring, td_model_names[shape->kind]) == 0))
        return td_fail(err, TD_EINVAL, IW ".model",
                       "initial_weights are for a %s model, but "
                       "this job trains %s",
                       cJSON_IsString(m) ? m->valuestring : "different",
                       td_model_names[shape->kind]);

    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(shape, t);
    int64_t n = td_model_nparams(shape);
    float *buf = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!buf) return td_fail(err, TD_ENOMEM, IW, "out of memory");
    if ((st = initial_rows[shape->kind].read(buf, w, shape, t, nt, err))) {
        free(buf);
        return st;
    }
    *out = buf;
    return TD_OK;
}

/* ---- td_hparams -> JSON ----------------------------------------------------------- */

/* The double that prints as the shortest decimal that reads back as f. */
static double shortest_double(float f)
{
    char tmp[32];
    for (int prec = 6; prec < 9; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, (double)f);
        if ((float)strtod(tmp, NULL) == f) return strtod(tmp, NULL);
    }
    return (double)f;
}

/* A td_hp_tensor as nested arrays (null when not given); NULL when out of memory. */
static cJSON *tensor_json(const td_hp_tensor *t)
{
    if (!t->v) return cJSON_CreateNull();
    int64_t inner = t->ndim > 1 ? t->n / t->dims[0] : 1; /* values per outer element */
    cJSON *out = cJSON_CreateArray();
    for (int64_t i = 0; out && i < t->dims[0]; i++) {
        cJSON *e;
        if (t->ndim == 1) {
            e = cJSON_CreateNumber(shortest_double(t->v[i]));
        } else {
            td_hp_tensor sub = {.v = t->v + i * inner,
                                .n = inner,
                                .ndim = t->ndim - 1,
                                .dims = {t->dims[1], t->dims[2], 0}};
            e = tensor_json(&sub);
        }
        if (!e || !cJSON_AddItemToArray(out, e)) {
            cJSON_Delete(e);
            cJSON_Delete(out);
            return NULL;
        }
    }
    return out;
}

/* The object a dotted name lives in ("monotone.weight" -> out["monotone"]), created on
 * first use; *leaf gets the key inside it. NULL when out of memory. */
static cJSON *container_for(cJSON *out, const char *name, const char **leaf)
{
    const char *dot = strchr(name, '.');
    if (!dot) {
        *leaf = name;
        return out;
    }
    char group[64];
    snprintf(group, sizeof group, "%.*s", (int)(dot - name), name);
    *leaf = dot + 1;
    cJSON *g = cJSON_GetObjectItemCaseSensitive(out, group);
    if (!g) g = cJSON_AddObjectToObject(out, group);
    return g;
}

/* NULL, v deleted: a value that could not be completed. */
static cJSON *dropped(cJSON *v)
{
    cJSON_Delete(v);
    return NULL;
}

cJSON *td_json_hparams_object(const td_hparams *hp)
{
    cJSON *out = cJSON_CreateObject();
    if (!out) return NULL;
    const char *base = (const char *)hp;
    for (size_t i = 0; i < td_hparam_ndefs; i++) {
        const td_hparam_def *d = &td_hparam_defs[i];
        if (!(d->models & TD_MODEL_BIT(hp->model))) continue;
        const char *leaf;
        cJSON *o = container_for(out, d->name, &leaf);
        if (!o) goto nomem;
        const char *p = base + d->offset;
        cJSON *v = NULL;
        switch (d->type) {
        case TD_HP_DOUBLE: v = cJSON_CreateNumber(*(const double *)p); break;
        case TD_HP_INT: {
            int64_t x = *(const int64_t *)p;
            v = strcmp(d->name, "n_classes") == 0 && x == 0 ? cJSON_CreateNull()
                                                            : cJSON_CreateNumber((double)x);
            break;
        }
        case TD_HP_BOOL: v = cJSON_CreateBool(*(const int *)p); break;
        case TD_HP_ENUM: {
            int x = *(const int *)p, n = 0;
            while (d->choices[n])
                n++;
            v = x >= 0 && x < n ? cJSON_CreateString(d->choices[x]) : cJSON_CreateNull();
            break;
        }
        case TD_HP_DOUBLE2: v = cJSON_CreateDoubleArray((const double *)p, 2); break;
        case TD_HP_INT_LIST: {
            int64_t n = *(const int64_t *)(base + d->count_offset);
            v = cJSON_CreateArray();
            for (int64_t k = 0; v && k < n && k < TD_MAX_HIDDEN; k++)
                if (!td_json_add(v, NULL, cJSON_CreateNumber((double)((const int64_t *)p)[k])))
                    v = dropped(v);
            break;
        }
        case TD_HP_FLOAT_LIST: {
            const float *f = *(float *const *)p;
            int64_t n = *(const int64_t *)(base + d->count_offset);
            if (!f) {
                v = cJSON_CreateNull();
                break;
            }
            v = cJSON_CreateArray();
            for (int64_t k = 0; v && k < n; k++)
                if (!td_json_add(v, NULL, cJSON_CreateNumber(shortest_double(f[k]))))
                    v = dropped(v);
            break;
        }
        case TD_HP_WEIGHTS: {
            const float *f = *(float *const *)p;
            if (!f) continue;
            v = cJSON_CreateObject();
            if (v &&
                !cJSON_AddNumberToObject(v, "n_params",
                                         (double)*(const int64_t *)(base + d->count_offset)))
                v = dropped(v);
            break;
        }
        case TD_HP_TENSOR: v = tensor_json((const td_hp_tensor *)p); break;
        }
        if (!td_json_add(o, leaf, v)) goto nomem;
    }
    return out;
nomem:
    cJSON_Delete(out);
    return NULL;
}

/* ---- the job body ----------------------------------------------------------------- */

void td_job_request_fini(td_job_request *r)
{
    if (!r) return;
    free(r->dataset_id);
    if (r->data) {
        td_dataset_buf_free(r->data);
        free(r->data);
    }
    free(r->validation_id);
    td_hparams_fini(&r->hp);
    cJSON_Delete(r->initial_weights);
    memset(r, 0, sizeof *r);
    td_hparams_defaults(&r->hp, TD_MODEL_SOFTMAX);
}

static int key_index_of(const char *const *keys, const char *key)
{
    for (int i = 0; keys[i]; i++)
        if (strcmp(keys[i], key) == 0) return i;
    return -1;
}

static td_status get_id(char **out, const cJSON *v, const char *field, td_error *err)
{
    const char *s;
    td_status st = td_json_get_string(&s, v, field, err);
    if (st) return st;
    if (!s[0] || strlen(s) > 128)
        return td_fail(err, TD_EINVAL, field, "%s must be a dataset id such as \"ds_...\"", field);
    *out = strdup(s);
    return *out ? TD_OK : td_fail(err, TD_ENOMEM, field, "out of memory");
}

/* The job body's members: data (an inline dataset) streams through the dataset parser;
 * the others are small (hyperparameters included: its initial_weights go through cJSON,
 * within TD_OBJECT_SMALL_MAX). */
static const char *const job_small_keys[] = {"model", "dataset", "validation", "hyperparameters",
                                             NULL};

static td_status job_from(td_job_request *r, const cJSON *root, td_dstream *s, td_error *err)
{
    static const char *const keys[] = {"model",      "dataset",         "data",
                                       "validation", "hyperparameters", NULL};
    /* a hyperparameter at the top level ("epochs": 50) belongs in hyperparameters */
    for (const cJSON *c = root ? root->child : NULL; c; c = c->next)
        if (c->string && key_index_of(keys, c->string) < 0 && td_hparam_find(c->string))
            return td_fail(err, TD_EINVAL, c->string,
                           "unknown key \"%.64s\" in the job body; "
                           "hyperparameters go in \"hyperparameters\": {\"%.64s\": ...}",
                           c->string, c->string);
    td_status st = td_json_check_keys(root, NULL, "the job body", keys, err);
    if (st) return st;
    const cJSON *model = member(root, "model"), *ds = member(root, "dataset"),
                *data = member(root, "data"), *val = member(root, "validation");
    if (!model)
        return td_fail(err, TD_EINVAL, "model",
                       "model is required: one of softmax, mlp, gmm, "
                       "embed_gmm");
    const char *name;
    if ((st = td_json_get_string(&name, model, "model", err))) return st;
    int kind = td_model_parse(name);
    if (kind < 0) {
        const char *near = td_json_suggest(name, td_model_names);
        if (near)
            return td_fail(err, TD_EINVAL, "model",
                           "unknown model \"%.64s\"; did you mean "
                           "\"%s\"? (models: softmax, mlp, gmm, embed_gmm)",
                           name, near);
        return td_fail(err, TD_EINVAL, "model",
                       "unknown model \"%.64s\" (models: softmax, mlp, "
                       "gmm, embed_gmm)",
                       name);
    }
    r->model = (td_model_kind)kind;
    if (ds && data)
        return td_fail(err, TD_EINVAL, "data",
                       "give either dataset (the id of a stored "
                       "dataset) or data (an inline dataset), not both");
    if (!ds && !data)
        return td_fail(err, TD_EINVAL, "dataset",
                       "dataset is required: the id of a stored "
                       "dataset (or the data itself inline as \"data\")");
    if (ds && (st = get_id(&r->dataset_id, ds, "dataset", err))) return st;
    if (data) {
        r->data = calloc(1, sizeof *r->data);
        if (!r->data) return td_fail(err, TD_ENOMEM, "data", "out of memory");
        if ((st = td_dstream_dataset(s, r->data, err))) return st;
    }
    if (val && (st = get_id(&r->validation_id, val, "validation", err))) return st;
    return td_json_hparams(&r->hp, r->model,
                           cJSON_GetObjectItemCaseSensitive(root, "hyperparameters"),
                           &r->initial_weights, err);
}

td_dstream *td_json_job_stream(uint64_t size_hint)
{
    return td_dstream_object(NULL, job_small_keys, "data", size_hint);
}

td_status td_json_job_finish(td_job_request *out, td_dstream *s, td_error *err)
{
    memset(out, 0, sizeof *out);
    td_hparams_defaults(&out->hp, TD_MODEL_SOFTMAX);
    const cJSON *root;
    td_status st = td_dstream_object_finish(s, &root, err);
    if (st) return st;
    st = job_from(out, root, s, err);
    if (st) td_job_request_fini(out);
    return st;
}

td_status td_json_job_parse(td_job_request *out, const char *body, size_t len, td_error *err)
{
    td_dstream *s = td_json_job_stream(len);
    if (!s) {
        memset(out, 0, sizeof *out);
        td_hparams_defaults(&out->hp, TD_MODEL_SOFTMAX);
        return td_fail(err, TD_ENOMEM, "", "out of memory reading the body");
    }
    td_dstream_feed(s, body, len);
    td_status st = td_json_job_finish(out, s, err);
    td_dstream_destroy(s);
    return st;
}
