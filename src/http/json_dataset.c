/* json_dataset.c — dataset bodies (JSON, CSV) into owned arrays; dataset summaries.
 * Contracts in json_dataset.h. */
#include "http/json_dataset.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/json_util.h"

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

static td_status copy_name(char **out, const char *name, const char *field, td_error *err)
{
    size_t n = strlen(name);
    if (n > TD_DATASET_NAME_MAX)
        return td_fail(err, TD_EINVAL, field, "name is %zu bytes long; at most %d are allowed",
                       n, TD_DATASET_NAME_MAX);
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

td_status td_json_dataset_from(td_dataset_buf *out, const cJSON *obj, const char *prefix,
                               td_error *err)
{
    static const char *const keys[] = {"X", "y", "Y", "pairs", "pair_labels", "name", NULL};
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
    td_status st = td_json_check_keys(obj, prefix, "the dataset", keys, err);
    if (st)
        return st;

    const cJSON *X = member(obj, "X"), *y = member(obj, "y"), *Y = member(obj, "Y"),
                *pairs = member(obj, "pairs"), *pl = member(obj, "pair_labels"),
                *name = member(obj, "name");
    if (!X)
        return td_fail(err, TD_EINVAL, pX, "%s is required: the samples as an array of rows "
                       "(N, D)", pX);
    if (y && Y)
        return td_fail(err, TD_EINVAL, pY, "give either y (class indices) or Y (probability "
                       "targets), not both");
    if ((st = td_json_matrix_f32(&d.X, &d.ds.N, &d.ds.D, X, 0, pX, err)))
        goto fail;
    int64_t N = d.ds.N;
    if (y) {
        int grouped;
        int64_t rows;
        if ((st = td_json_labels_i32(&d.y, &rows, &d.ds.y_cols, &grouped, y, py, err)))
            goto fail;
        if (rows != N) {
            st = td_fail(err, TD_EINVAL, py, "%s has %lld %s, but %s has %lld rows", py,
                         (long long)rows, grouped ? "rows" : "entries", pX, (long long)N);
            goto fail;
        }
    }
    if (Y) {
        int64_t rows;
        if ((st = td_json_matrix_f32(&d.Y, &rows, &d.ds.Y_cols, Y, TD_JSON_NONNEG, pY, err)))
            goto fail;
        if (rows != N) {
            st = td_fail(err, TD_EINVAL, pY, "%s has %lld rows, but %s has %lld rows", pY,
                         (long long)rows, pX, (long long)N);
            goto fail;
        }
    }
    if (pairs || pl) {
        if (!pairs || !pl) {
            st = td_fail(err, TD_EINVAL, pairs ? ppl : pp, "pairs and pair_labels go "
                         "together: give both or neither");
            goto fail;
        }
        int64_t P, cols, nl;
        if (cJSON_IsArray(pairs) && cJSON_IsArray(pairs->child) &&
            cJSON_GetArraySize(pairs->child) != 2) {
            char p0[TD_JSON_PATH_MAX];
            td_json_index_path(p0, pp, 0, -1);
            st = td_fail(err, TD_EINVAL, p0, "%s must be an array of [i, j] row index pairs; "
                         "%s has %d values", pp, p0, cJSON_GetArraySize(pairs->child));
            goto fail;
        }
        if ((st = td_json_matrix_i32(&d.pairs, &P, &cols, pairs, 0, N - 1, 0, pp, err)))
            goto fail;
        if ((st = td_json_vector_i32(&d.pair_labels, &nl, pl, 0, 1, TD_JSON_BOOLS, ppl, err)))
            goto fail;
        if (nl != P) {
            st = td_fail(err, TD_EINVAL, ppl, "%s has %lld entries, but %s has %lld pairs", ppl,
                         (long long)nl, pp, (long long)P);
            goto fail;
        }
        d.ds.P = P;
    }
    if (name) {
        const char *s;
        if ((st = td_json_get_string(&s, name, pn, err)) || (st = copy_name(&d.name, s, pn, err)))
            goto fail;
    }
    fill_view(&d);
    *out = d;
    return TD_OK;
fail:
    td_dataset_buf_free(&d);
    return st;
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
    td_csv_opts o = {TD_CSV_LABEL_LAST, 0};
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
        else
            return td_fail(err, TD_EINVAL, "label_column", "label_column must be one of last, "
                           "first, none; got \"%.64s\"", label_column);
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
    return TD_OK;
}

/* A growing array of fixed-size elements. */
typedef struct grow {
    void *data;
    size_t n, cap, size;
} grow;

static int grow_push(grow *g, const void *elem)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        void *p = realloc(g->data, cap * g->size);
        if (!p)
            return -1;
        g->data = p;
        g->cap = cap;
    }
    memcpy((char *)g->data + g->n * g->size, elem, g->size);
    g->n++;
    return 0;
}

typedef struct csv {
    const char *p, *end;
    int64_t line;
    td_sbuf scratch;          /* the text of a quoted field */
    grow vals, lines;         /* the current record: doubles and the line of each field */
    td_error *err;
    int header_hint;          /* an error on line 1 without header=true gets a hint */
} csv;

#define LOC_FMT "line %lld, column %lld"

static td_status csv_fail(csv *c, int64_t line, int64_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static td_status csv_fail(csv *c, int64_t line, int64_t col, const char *fmt, ...)
{
    if (!c->err)
        return TD_EINVAL;
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char field[64];
    snprintf(field, sizeof field, LOC_FMT, (long long)line, (long long)col);
    return td_fail(c->err, TD_EINVAL, field, "%s: %s%s", field, what,
                   c->header_hint && line == 1 ? " (if the first line names the columns, "
                   "pass header=true)" : "");
}

/* Parses the number in text[0..n) (spaces around it allowed). */
static td_status csv_number(csv *c, double *out, const char *text, size_t n, int64_t line,
                            int64_t col)
{
    while (n && (*text == ' ' || *text == '\t'))
        text++, n--;
    while (n && (text[n - 1] == ' ' || text[n - 1] == '\t'))
        n--;
    if (n == 0)
        return csv_fail(c, line, col, "empty field; expected a number");
    char buf[128];
    if (n >= sizeof buf)
        return csv_fail(c, line, col, "\"%.40s...\" is not a number", text);
    memcpy(buf, text, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + n)
        return csv_fail(c, line, col, "\"%s\" is not a number", buf);
    if (!isfinite(v))
        return csv_fail(c, line, col, "\"%s\" is not a finite number", buf);
    *out = v;
    return TD_OK;
}

/* Reads one field at c->p and leaves c->p on the separator (',' / EOL / end). */
static td_status csv_field(csv *c, double *out, int64_t col, int parse)
{
    int64_t line = c->line;
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        c->scratch.len = 0;
        for (;;) {
            if (c->p == c->end)
                return csv_fail(c, line, col, "unterminated quoted field: the closing quote "
                                "is missing");
            if (*c->p == '"') {
                if (c->p + 1 < c->end && c->p[1] == '"') {
                    td_sbuf_put(&c->scratch, "\"", 1);
                    c->p += 2;
                    continue;
                }
                c->p++;
                break;
            }
            if (*c->p == '\n')
                c->line++;
            td_sbuf_put(&c->scratch, c->p, 1);
            c->p++;
        }
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
            c->p++;
        if (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r')
            return csv_fail(c, c->line, col, "unexpected character '%c' after a closing quote",
                            *c->p);
        if (c->scratch.oom)
            return td_fail(c->err, TD_ENOMEM, "", "out of memory");
        if (!parse)
            return TD_OK;
        return csv_number(c, out, c->scratch.data ? c->scratch.data : "", c->scratch.len, line,
                          col);
    }
    const char *start = c->p;
    while (c->p < c->end && *c->p != ',' && *c->p != '\n' && *c->p != '\r') {
        if (*c->p == '"')
            return csv_fail(c, line, col, "a quote inside an unquoted field; quote the whole "
                            "field and double the inner quotes");
        c->p++;
    }
    if (!parse)
        return TD_OK;
    return csv_number(c, out, start, (size_t)(c->p - start), line, col);
}

/* Skips an end of line (LF, CRLF or a lone CR) if there is one. */
static void csv_eol(csv *c)
{
    if (c->p < c->end && *c->p == '\r')
        c->p++;
    if (c->p < c->end && *c->p == '\n')
        c->p++;
    c->line++;
}

td_status td_csv_dataset_parse(td_dataset_buf *out, const char *body, size_t len,
                               const td_csv_opts *o, const char *name, td_error *err)
{
    memset(out, 0, sizeof *out);
    td_csv_opts def = td_csv_opts_default();
    if (!o)
        o = &def;
    csv c = {.p = body, .end = body + len, .line = 1, .err = err};
    c.header_hint = !o->header;
    td_sbuf_init(&c.scratch);
    c.vals.size = sizeof(double);
    c.lines.size = sizeof(int64_t);
    grow X = {.size = sizeof(float)}, y = {.size = sizeof(int32_t)};
    int labelled = o->label_column != TD_CSV_LABEL_NONE;
    int64_t ncols = -1, N = 0, D = 0;
    int first_record = 1;
    td_status st = TD_OK;

    if (len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0)
        c.p += 3;
    while (c.p < c.end) {
        /* blank (or whitespace-only) lines are skipped */
        const char *q = c.p;
        while (q < c.end && (*q == ' ' || *q == '\t'))
            q++;
        if (q == c.end)
            break;
        if (*q == '\n' || *q == '\r') {
            c.p = q;
            csv_eol(&c);
            continue;
        }
        int64_t rec_line = c.line;
        int skip = first_record && o->header;
        c.vals.n = c.lines.n = 0;
        for (int64_t col = 1;; col++) {
            double v = 0;
            int64_t fline = c.line;
            if ((st = csv_field(&c, &v, col, !skip)))
                goto fail;
            if (grow_push(&c.vals, &v) || grow_push(&c.lines, &fline))
                goto nomem;
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            csv_eol(&c);
            break;
        }
        int64_t nf = (int64_t)c.vals.n;
        if (ncols < 0) {
            ncols = nf;
            if (labelled && ncols < 2) {
                st = td_fail(err, TD_EINVAL, "label_column", "line %lld has 1 column; with "
                             "label_column=%s at least 2 are needed (or pass label_column=none)",
                             (long long)rec_line,
                             o->label_column == TD_CSV_LABEL_FIRST ? "first" : "last");
                goto fail;
            }
            D = labelled ? ncols - 1 : ncols;
        } else if (nf != ncols) {
            char field[32];
            snprintf(field, sizeof field, "line %lld", (long long)rec_line);
            st = td_fail(err, TD_EINVAL, field, "line %lld has %lld column%s, expected %lld "
                         "(like line %s)", (long long)rec_line, (long long)nf, nf == 1 ? "" : "s",
                         (long long)ncols, o->header ? "1, the header" : "1");
            goto fail;
        }
        first_record = 0;
        if (skip)
            continue;
        c.header_hint = 0; /* past the first line */
        const double *vals = c.vals.data;
        const int64_t *lines = c.lines.data;
        int64_t lab = !labelled ? -1 : o->label_column == TD_CSV_LABEL_FIRST ? 0 : nf - 1;
        for (int64_t k = 0; k < nf; k++) {
            double v = vals[k];
            if (k == lab) {
                if (v != floor(v) || v < INT32_MIN || v > INT32_MAX) {
                    st = csv_fail(&c, lines[k], k + 1, "label %.17g is not an integer class "
                                  "index", v);
                    goto fail;
                }
                int32_t t = (int32_t)v;
                if (grow_push(&y, &t))
                    goto nomem;
            } else {
                if (!(fabs(v) <= FLT_MAX)) {
                    st = csv_fail(&c, lines[k], k + 1, "%g is outside the float32 range", v);
                    goto fail;
                }
                float f = (float)v;
                if (grow_push(&X, &f))
                    goto nomem;
            }
        }
        N++;
    }
    if (N == 0) {
        st = td_fail(err, TD_EINVAL, "", "the CSV body has no data rows");
        goto fail;
    }
    if (name && (st = copy_name(&out->name, name, "name", err)))
        goto fail;
    out->X = X.data;
    out->y = labelled ? y.data : NULL;
    if (!labelled)
        free(y.data);
    out->ds.N = N;
    out->ds.D = D;
    out->ds.y_cols = labelled ? 1 : 0;
    fill_view(out);
    td_sbuf_fini(&c.scratch);
    free(c.vals.data);
    free(c.lines.data);
    return TD_OK;
nomem:
    st = td_fail(err, TD_ENOMEM, "", "out of memory reading the CSV body");
fail:
    td_sbuf_fini(&c.scratch);
    free(c.vals.data);
    free(c.lines.data);
    free(X.data);
    free(y.data);
    td_dataset_buf_free(out);
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
