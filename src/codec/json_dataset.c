/* json_dataset.c — dataset bodies (JSON, CSV) into owned arrays; dataset summaries.
 * Contracts in json_dataset.h. */
#include "codec/json_dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"
#include "codec/class_names.h"
#include "traind/hparams.h"

#include "codec/json_util.h"
#include "codec/stream_dataset.h"

const char *const td_target_names[] = {"none", "index", "grouped", "probs", NULL};

void td_dataset_buf_free(td_dataset_buf *d)
{
    if (!d)
        return;
    free(d->X);
    free(d->y);
    free(d->Y);
    free(d->pairs);
    free(d->pair_labels);
    free(d->name);
    td_strings_free(d->classes, d->n_classes);
    td_strings_free(d->columns, d->n_columns);
    memset(d, 0, sizeof *d);
}

/* Points the engine view at the owned arrays (sizes already set in d->ds). */
static void fill_view(td_dataset_buf *d)
{
    d->ds.X = d->X;
    d->ds.y = d->y;
    d->ds.Y = d->Y;
    d->ds.pairs = d->pairs;
    d->ds.pair_labels = d->pair_labels;
    if (!d->y)
        d->ds.y_cols = 0;
    if (!d->Y)
        d->ds.Y_cols = 0;
    if (!d->pairs)
        d->ds.P = 0;
}

td_status td_dataset_name_copy(char **out, const char *name, size_t n, const char *field,
                               td_error *err)
{
    if (n > TD_DATASET_NAME_MAX)
        return td_fail(err, TD_EINVAL, field, "name is %zu bytes long; at most %d are allowed",
                       n, TD_DATASET_NAME_MAX);
    if (!td_utf8_valid(name, n))
        return td_fail(err, TD_EINVAL, field, "%s must be UTF-8 text without NUL characters",
                       field);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return td_fail(err, TD_EINVAL, field, "name must not contain control characters");
    *out = strdup(name);
    return *out ? TD_OK : td_fail(err, TD_ENOMEM, field, "out of memory");
}

/* A present, non-null member (NULL otherwise). */
static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

void td_dataset_parts_fini(td_dataset_parts *p)
{
    free(p->X.data);
    free(p->y.data);
    free(p->Y.data);
    free(p->pairs.data);
    free(p->pair_labels.data);
    free(p->name);
    td_names_fini(p->y.names);
    free(p->y.names);
    memset(p, 0, sizeof *p);
}

static td_status part_error(const td_dataset_part *a, td_error *err)
{
    if (err)
        *err = a->err;
    return a->st;
}

td_status td_dataset_parts_finish(td_dataset_buf *out, td_dataset_parts *p,
                                  const char *prefix, td_error *err)
{
    char pX[TD_JSON_PATH_MAX], py[TD_JSON_PATH_MAX], pY[TD_JSON_PATH_MAX],
        pp[TD_JSON_PATH_MAX], ppl[TD_JSON_PATH_MAX], pn[TD_JSON_PATH_MAX];
    td_json_path(pX, prefix, "X");
    td_json_path(py, prefix, "y");
    td_json_path(pY, prefix, "Y");
    td_json_path(pp, prefix, "pairs");
    td_json_path(ppl, prefix, "pair_labels");
    td_json_path(pn, prefix, "name");

    td_dataset_buf d;
    memset(&d, 0, sizeof d);
    memset(out, 0, sizeof *out);
    td_status st;
    if (p->key_st) {
        if (err)
            *err = p->key_err;
        st = p->key_st;
        goto fail;
    }
    if (!p->X.present) {
        st = td_fail(err, TD_EINVAL, pX, "%s is required: the samples as an array of rows "
                     "(N, D)", pX);
        goto fail;
    }
    if (p->y.present && p->Y.present) {
        st = td_fail(err, TD_EINVAL, pY, "give either y (class indices) or Y (probability "
                     "targets), not both");
        goto fail;
    }
    if ((st = part_error(&p->X, err)))
        goto fail;
    int64_t N = p->X.rows;
    if (p->y.present) {
        if ((st = part_error(&p->y, err)))
            goto fail;
        if (p->y.rows != N) {
            st = td_fail(err, TD_EINVAL, py, "%s has %lld %s, but %s has %lld rows", py,
                         (long long)p->y.rows, p->y.grouped ? "rows" : "entries", pX,
                         (long long)N);
            goto fail;
        }
    }
    if (p->Y.present) {
        if ((st = part_error(&p->Y, err)))
            goto fail;
        if (p->Y.rows != N) {
            st = td_fail(err, TD_EINVAL, pY, "%s has %lld rows, but %s has %lld rows", pY,
                         (long long)p->Y.rows, pX, (long long)N);
            goto fail;
        }
    }
    if (p->pairs.present || p->pair_labels.present) {
        if (!p->pairs.present || !p->pair_labels.present) {
            st = td_fail(err, TD_EINVAL, p->pairs.present ? ppl : pp, "pairs and pair_labels "
                         "go together: give both or neither");
            goto fail;
        }
        if (p->pairs.row0_len >= 0 && p->pairs.row0_len != 2) {
            char p0[TD_JSON_PATH_MAX];
            td_json_index_path(p0, pp, 0, -1);
            st = td_fail(err, TD_EINVAL, p0, "%s must be an array of [i, j] row index pairs; "
                         "%s has %d values", pp, p0, (int)p->pairs.row0_len);
            goto fail;
        }
        if ((st = part_error(&p->pairs, err)) || (st = part_error(&p->pair_labels, err)))
            goto fail;
        if (p->pair_labels.rows != p->pairs.rows) {
            st = td_fail(err, TD_EINVAL, ppl, "%s has %lld entries, but %s has %lld pairs", ppl,
                         (long long)p->pair_labels.rows, pp, (long long)p->pairs.rows);
            goto fail;
        }
    }
    if (p->name_present) {
        if ((st = p->name_st)) {
            if (err)
                *err = p->name_err;
            goto fail;
        }
        if ((st = td_dataset_name_copy(&d.name, p->name ? p->name : "",
                                       p->name ? p->name_len : 0, pn, err)))
            goto fail;
    }
    d.ds.N = N;
    d.ds.D = p->X.cols;
    d.X = p->X.data, p->X.data = NULL;
    if (p->y.present) {
        d.y = p->y.data, p->y.data = NULL;
        d.ds.y_cols = p->y.cols;
        if (p->y.names && (st = td_names_finish(p->y.names, d.y, N, &d.classes,
                                                &d.n_classes, err)))
            goto fail;
    }
    if (p->Y.present) {
        d.Y = p->Y.data, p->Y.data = NULL;
        d.ds.Y_cols = p->Y.cols;
    }
    if (p->pairs.present) {
        d.pairs = p->pairs.data, p->pairs.data = NULL;
        d.pair_labels = p->pair_labels.data, p->pair_labels.data = NULL;
        d.ds.P = p->pairs.rows;
    }
    td_dataset_parts_fini(p);
    fill_view(&d);
    *out = d;
    return TD_OK;
fail:
    td_dataset_parts_fini(p);
    td_dataset_buf_free(&d);
    return st;
}

/* y as class names (its first element is a string): the tree reader's version of the
 * stream's name_elem / label_done, with the same errors. */
static td_status read_names(td_dataset_part *a, const cJSON *v, const char *path)
{
    int64_t n = cJSON_GetArraySize(v), i = 0;
    int32_t *y = malloc((size_t)(n ? n : 1) * sizeof *y);
    if (!y || !(a->names = calloc(1, sizeof *a->names))) {
        free(y);
        return td_fail(&a->err, TD_ENOMEM, path, "out of memory reading %s", path);
    }
    a->data = y;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        char ep[TD_JSON_PATH_MAX];
        td_json_index_path(ep, path, i, -1);
        if (td_json_kind_of(c) != TD_JV_STRING) /* NaN's marker is a cJSON string too */
            return td_fail(&a->err, TD_EINVAL, ep, "%s must be a class name (a string), as "
                           "%s[0] is; got %s", ep, path, td_json_kind(c));
        size_t len = strlen(c->valuestring);
        if (len == 0 || len > TD_CLASS_NAME_MAX)
            return td_fail(&a->err, TD_EINVAL, ep, "%s: a class name must be 1 to %d bytes of "
                           "text without NUL", ep, TD_CLASS_NAME_MAX);
        int32_t k = td_names_add(a->names, c->valuestring, len);
        if (k == -1)
            return td_fail(&a->err, TD_ENOMEM, path, "out of memory reading %s", path);
        if (k == -2)
            return td_fail(&a->err, TD_EINVAL, ep, "%s: more than %d distinct class names", ep,
                           TD_MAX_CLASSES);
        y[i] = k;
    }
    a->rows = n;
    return TD_OK;
}

/* Reads one member into a part with a tree reader. */
static void read_part(td_dataset_part *a, const cJSON *v, int kind, int64_t N,
                      const char *path)
{
    a->present = v != NULL;
    a->cols = 1;
    a->row0_len = -1;
    if (!v)
        return;
    float **f = (float **)&a->data;
    int32_t **i = (int32_t **)&a->data;
    switch (kind) {
    case 0: /* X */
        a->st = td_json_matrix_f32(f, &a->rows, &a->cols, v, 0, path, &a->err);
        break;
    case 1: /* y */
        if (cJSON_IsArray(v) && v->child && td_json_kind_of(v->child) == TD_JV_STRING)
            a->st = read_names(a, v, path);
        else
            a->st = td_json_labels_i32(i, &a->rows, &a->cols, &a->grouped, v, path, &a->err);
        break;
    case 2: /* Y */
        a->st = td_json_matrix_f32(f, &a->rows, &a->cols, v, TD_JSON_NONNEG, path, &a->err);
        break;
    case 3: /* pairs */
        if (cJSON_IsArray(v) && cJSON_IsArray(v->child))
            a->row0_len = cJSON_GetArraySize(v->child);
        a->st = td_json_matrix_i32(i, &a->rows, &a->cols, v, 0, N - 1, 0, path, &a->err);
        break;
    default: /* pair_labels */
        a->st = td_json_vector_i32(i, &a->rows, v, 0, 1, TD_JSON_BOOLS, path, &a->err);
        break;
    }
}

td_status td_json_dataset_from(td_dataset_buf *out, const cJSON *obj, const char *prefix,
                               td_error *err)
{
    static const char *const keys[] = {"X", "y", "Y", "pairs", "pair_labels", "name", NULL};
    const char *const names[] = {"X", "y", "Y", "pairs", "pair_labels"};
    td_dataset_parts p;
    memset(&p, 0, sizeof p);
    memset(out, 0, sizeof *out);
    p.key_st = td_json_check_keys(obj, prefix, "the dataset", keys, &p.key_err);
    if (p.key_st == TD_OK) {
        td_dataset_part *parts[] = {&p.X, &p.y, &p.Y, &p.pairs, &p.pair_labels};
        for (int k = 0; k < 5; k++) {
            char path[TD_JSON_PATH_MAX];
            td_json_path(path, prefix, names[k]);
            read_part(parts[k], member(obj, names[k]), k, p.X.st ? 0 : p.X.rows, path);
        }
        const cJSON *name = member(obj, "name");
        if (name) {
            char pn[TD_JSON_PATH_MAX];
            const char *s = NULL;
            td_json_path(pn, prefix, "name");
            p.name_present = 1;
            p.name_st = td_json_get_string(&s, name, pn, &p.name_err);
            if (!p.name_st && !(p.name = strdup(s)))
                p.name_st = td_fail(&p.name_err, TD_ENOMEM, pn, "out of memory");
            p.name_len = p.name ? strlen(p.name) : 0;
        }
    }
    return td_dataset_parts_finish(out, &p, prefix, err);
}

td_status td_json_dataset_parse(td_dataset_buf *out, const char *body, size_t len,
                                td_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    td_status st = td_json_parse(&root, body, len, err);
    if (st)
        return st;
    st = td_json_dataset_from(out, root, NULL, err);
    cJSON_Delete(root);
    return st;
}

/* ---- CSV -------------------------------------------------------------------------- */

td_csv_opts td_csv_opts_default(void)
{
    td_csv_opts o = {TD_CSV_LABEL_LAST, 0, ',', ""};
    return o;
}

td_status td_csv_opts_parse(td_csv_opts *o, const char *label_column, const char *header,
                            td_error *err)
{
    *o = td_csv_opts_default();
    if (label_column) {
        if (strcmp(label_column, "last") == 0)
            o->label_column = TD_CSV_LABEL_LAST;
        else if (strcmp(label_column, "first") == 0)
            o->label_column = TD_CSV_LABEL_FIRST;
        else if (strcmp(label_column, "none") == 0)
            o->label_column = TD_CSV_LABEL_NONE;
        else if (label_column[0] && strlen(label_column) < sizeof o->label_name) {
            o->label_column = TD_CSV_LABEL_NAMED; /* a header name: header=true, below */
            snprintf(o->label_name, sizeof o->label_name, "%s", label_column);
        } else
            return td_fail(err, TD_EINVAL, "label_column", "label_column must be one of last, "
                           "first, none, or a column name of the header; got \"%.64s\"",
                           label_column);
    }
    if (header) {
        if (strcmp(header, "true") == 0 || strcmp(header, "1") == 0)
            o->header = 1;
        else if (strcmp(header, "false") == 0 || strcmp(header, "0") == 0)
            o->header = 0;
        else
            return td_fail(err, TD_EINVAL, "header", "header must be true or false; got "
                           "\"%.64s\"", header);
    }
    if (o->label_column == TD_CSV_LABEL_NAMED && !o->header)
        return td_fail(err, TD_EINVAL, "label_column", "label_column \"%.64s\" names a column: "
                       "that needs header=true (or use last, first, none)", o->label_name);
    return TD_OK;
}

td_status td_csv_delimiter_parse(td_csv_opts *o, const char *delimiter, td_error *err)
{
    if (!delimiter)
        return TD_OK;
    if (strcmp(delimiter, "tab") == 0 || strcmp(delimiter, "\\t") == 0 ||
        strcmp(delimiter, "\t") == 0)
        o->delimiter = '\t';
    else if (strlen(delimiter) == 1 && strchr(",;|", delimiter[0]))
        o->delimiter = delimiter[0];
    else
        return td_fail(err, TD_EINVAL, "delimiter", "delimiter must be one of \",\", \";\", "
                       "\"|\", \"tab\"; got \"%.16s\"", delimiter);
    return TD_OK;
}

td_status td_csv_dataset_parse(td_dataset_buf *out, const char *body, size_t len,
                               const td_csv_opts *o, const char *name, td_error *err)
{
    memset(out, 0, sizeof *out);
    td_dstream *s = td_dstream_csv(o, name, len);
    if (!s)
        return td_fail(err, TD_ENOMEM, "", "out of memory reading the CSV body");
    td_dstream_feed(s, body, len);
    td_status st = td_dstream_finish(s, out, err);
    td_dstream_destroy(s);
    return st;
}

/* ---- summary ---------------------------------------------------------------------- */

void td_dataset_summary_of(td_dataset_summary *s, const td_dataset *ds)
{
    memset(s, 0, sizeof *s);
    s->n_samples = ds->N;
    s->n_features = ds->D;
    s->groups = 1;
    s->n_pairs = ds->pairs ? ds->P : 0;
    if (ds->Y) {
        s->target = TD_TARGET_PROBS;
        s->n_classes = ds->Y_cols;
    } else if (ds->y) {
        s->target = ds->y_cols > 1 ? TD_TARGET_GROUPED : TD_TARGET_INDEX;
        s->groups = ds->y_cols > 1 ? ds->y_cols : 1;
        int64_t mx = -1;
        for (int64_t i = 0; i < ds->N * ds->y_cols; i++)
            if (ds->y[i] > mx)
                mx = ds->y[i];
        s->n_classes = mx + 1;
    } else {
        s->target = TD_TARGET_NONE;
    }
}

cJSON *td_json_dataset_summary(const td_dataset_summary *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = 1;
    if (s->id)
        ok &= cJSON_AddStringToObject(o, "id", s->id) != NULL;
    ok &= (s->name ? cJSON_AddStringToObject(o, "name", s->name)
                   : cJSON_AddNullToObject(o, "name")) != NULL;
    ok &= cJSON_AddNumberToObject(o, "n_samples", (double)s->n_samples) != NULL;
    ok &= cJSON_AddNumberToObject(o, "n_features", (double)s->n_features) != NULL;
    ok &= (s->n_classes > 0 ? cJSON_AddNumberToObject(o, "n_classes", (double)s->n_classes)
                            : cJSON_AddNullToObject(o, "n_classes")) != NULL;
    ok &= cJSON_AddStringToObject(o, "target", td_target_names[s->target]) != NULL;
    if (s->target == TD_TARGET_GROUPED)
        ok &= cJSON_AddNumberToObject(o, "groups", (double)s->groups) != NULL;
    if (s->n_pairs > 0)
        ok &= cJSON_AddNumberToObject(o, "n_pairs", (double)s->n_pairs) != NULL;
    if (s->created_at)
        ok &= cJSON_AddStringToObject(o, "created_at", s->created_at) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
