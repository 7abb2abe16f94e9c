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
    if (!d) return;
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
    if (!d->y) d->ds.y_cols = 0;
    if (!d->Y) d->ds.Y_cols = 0;
    if (!d->pairs) d->ds.P = 0;
}

td_status td_dataset_name_copy(char **out, const char *name, size_t n, const char *field,
                               td_error *err)
{
    if (n > TD_DATASET_NAME_MAX)
        return td_fail(err, TD_EINVAL, field, "name is %zu bytes long; at most %d are allowed", n,
                       TD_DATASET_NAME_MAX);
    if (!td_utf8_valid(name, n))
        return td_fail(err, TD_EINVAL, field, "%s must be UTF-8 text without NUL characters",
                       field);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return td_fail(err, TD_EINVAL, field, "name must not contain control characters");
    *out = strdup(name);
    return *out ? TD_OK : td_fail(err, TD_ENOMEM, field, "out of memory");
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
    if (err) *err = a->err;
    return a->st;
}

td_status td_dataset_parts_finish(td_dataset_buf *out, td_dataset_parts *p, const char *prefix,
                                  td_error *err)
{
    char pX[TD_JSON_PATH_MAX], py[TD_JSON_PATH_MAX], pY[TD_JSON_PATH_MAX], pp[TD_JSON_PATH_MAX],
        ppl[TD_JSON_PATH_MAX], pn[TD_JSON_PATH_MAX];
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
        if (err) *err = p->key_err;
        st = p->key_st;
        goto fail;
    }
    if (!p->X.present) {
        st = td_fail(err, TD_EINVAL, pX,
                     "%s is required: the samples as an array of rows "
                     "(N, D)",
                     pX);
        goto fail;
    }
    if (p->y.present && p->Y.present) {
        st = td_fail(err, TD_EINVAL, pY,
                     "give either y (class indices) or Y (probability "
                     "targets), not both");
        goto fail;
    }
    if ((st = part_error(&p->X, err))) goto fail;
    int64_t N = p->X.rows;
    if (p->y.present) {
        if ((st = part_error(&p->y, err))) goto fail;
        if (p->y.rows != N) {
            st = td_fail(err, TD_EINVAL, py, "%s has %lld %s, but %s has %lld rows", py,
                         (long long)p->y.rows, p->y.grouped ? "rows" : "entries", pX, (long long)N);
            goto fail;
        }
    }
    if (p->Y.present) {
        if ((st = part_error(&p->Y, err))) goto fail;
        if (p->Y.rows != N) {
            st = td_fail(err, TD_EINVAL, pY, "%s has %lld rows, but %s has %lld rows", pY,
                         (long long)p->Y.rows, pX, (long long)N);
            goto fail;
        }
    }
    if (p->pairs.present || p->pair_labels.present) {
        if (!p->pairs.present || !p->pair_labels.present) {
            st = td_fail(err, TD_EINVAL, p->pairs.present ? ppl : pp,
                         "pairs and pair_labels "
                         "go together: give both or neither");
            goto fail;
        }
        if (p->pairs.row0_len >= 0 && p->pairs.row0_len != 2) {
            char p0[TD_JSON_PATH_MAX];
            td_json_index_path(p0, pp, 0, -1);
            st = td_fail(err, TD_EINVAL, p0,
                         "%s must be an array of [i, j] row index pairs; "
                         "%s has %d values",
                         pp, p0, (int)p->pairs.row0_len);
            goto fail;
        }
        if ((st = part_error(&p->pairs, err)) || (st = part_error(&p->pair_labels, err))) goto fail;
        if (p->pair_labels.rows != p->pairs.rows) {
            st = td_fail(err, TD_EINVAL, ppl, "%s has %lld entries, but %s has %lld pairs", ppl,
                         (long long)p->pair_labels.rows, pp, (long long)p->pairs.rows);
            goto fail;
        }
    }
    if (p->name_present) {
        if ((st = p->name_st)) {
            if (err) *err = p->name_err;
            goto fail;
        }
        if ((st = td_dataset_name_copy(&d.name, p->name ? p->name : "", p->name ? p->name_len : 0,
                                       pn, err)))
            goto fail;
    }
    d.ds.N = N;
    d.ds.D = p->X.cols;
    d.X = p->X.data, p->X.data = NULL;
    if (p->y.present) {
        d.y = p->y.data, p->y.data = NULL;
        d.ds.y_cols = p->y.cols;
        if (p->y.names && (st = td_names_finish(p->y.names, d.y, N, &d.classes, &d.n_classes, err)))
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
            return td_fail(err, TD_EINVAL, "label_column",
                           "label_column must be one of last, "
                           "first, none, or a column name of the header; got \"%.64s\"",
                           label_column);
    }
    if (header) {
        if (strcmp(header, "true") == 0 || strcmp(header, "1") == 0)
            o->header = 1;
        else if (strcmp(header, "false") == 0 || strcmp(header, "0") == 0)
            o->header = 0;
        else
            return td_fail(err, TD_EINVAL, "header",
                           "header must be true or false; got "
                           "\"%.64s\"",
                           header);
    }
    if (o->label_column == TD_CSV_LABEL_NAMED && !o->header)
        return td_fail(err, TD_EINVAL, "label_column",
                       "label_column \"%.64s\" names a column: "
                       "that needs header=true (or use last, first, none)",
                       o->label_name);
    return TD_OK;
}

td_status td_csv_delimiter_parse(td_csv_opts *o, const char *delimiter, td_error *err)
{
    if (!delimiter) return TD_OK;
    if (strcmp(delimiter, "tab") == 0 || strcmp(delimiter, "\\t") == 0 ||
        strcmp(delimiter, "\t") == 0)
        o->delimiter = '\t';
    else if (strlen(delimiter) == 1 && strchr(",;|", delimiter[0]))
        o->delimiter = delimiter[0];
    else
        return td_fail(err, TD_EINVAL, "delimiter",
                       "delimiter must be one of \",\", \";\", "
                       "\"|\", \"tab\"; got \"%.16s\"",
                       delimiter);
    return TD_OK;
}

td_status td_csv_dataset_parse(td_dataset_buf *out, const char *body, size_t len,
                               const td_csv_opts *o, const char *name, td_error *err)
{
    memset(out, 0, sizeof *out);
    td_dstream *s = td_dstream_csv(o, name, len);
    if (!s) return td_fail(err, TD_ENOMEM, "", "out of memory reading the CSV body");
    td_dstream_feed(s, body, len);
    td_status st = td_dstream_finish(s, out, err);
    td_dstream_destroy(s);
    return st;
}

/* ---- summary ---------------------------------------------------------------------- */

cJSON *td_json_dataset_summary(const td_dataset_summary *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    int ok = 1;
    if (s->id) ok &= cJSON_AddStringToObject(o, "id", s->id) != NULL;
    ok &= (s->name ? cJSON_AddStringToObject(o, "name", s->name)
                   : cJSON_AddNullToObject(o, "name")) != NULL;
    ok &= cJSON_AddNumberToObject(o, "n_samples", (double)s->n_samples) != NULL;
    ok &= cJSON_AddNumberToObject(o, "n_features", (double)s->n_features) != NULL;
    ok &= (s->n_classes > 0 ? cJSON_AddNumberToObject(o, "n_classes", (double)s->n_classes)
                            : cJSON_AddNullToObject(o, "n_classes")) != NULL;
    ok &= cJSON_AddStringToObject(o, "target", td_target_names[s->target]) != NULL;
    if (s->target == TD_TARGET_GROUPED)
        ok &= cJSON_AddNumberToObject(o, "groups", (double)s->groups) != NULL;
    if (s->n_pairs > 0) ok &= cJSON_AddNumberToObject(o, "n_pairs", (double)s->n_pairs) != NULL;
    if (s->created_at) ok &= cJSON_AddStringToObject(o, "created_at", s->created_at) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
