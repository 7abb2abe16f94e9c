/* csv_stream.c — text/csv bodies as they arrive (stream_dataset.h): a state machine
 * over records and fields (quoted, unquoted, CR/LF), keeping the current record's
 * values; each record is checked as td_csv_dataset_parse checks it, and its values are
 * appended to X and y. */
#include "codec/stream_impl.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/hparams.h"

/* ================================================================ CSV =========== */

#define LOC_FMT "line %lld, column %lld"

/* A field holding ';' or tabs while the delimiter is ',': the file is likely separated by
 * those. Writes the hint and returns 1, else 0. */
static int sep_hint(const td_dstream *s, char *hint, size_t cap)
{
    const char *sep = NULL;
    if (s->opts.delimiter == ',' && memchr(s->field, ';', s->flen))
        sep = ";";
    else if (s->opts.delimiter == ',' && memchr(s->field, '\t', s->flen))
        sep = "tab";
    if (sep) snprintf(hint, cap, " (the file looks %s-separated: pass delimiter=%s)", sep, sep);
    return sep != NULL;
}

/* "line L, column C: ..." (+ the header hint for an error on line 1). */
static void csv_fail(td_dstream *s, int64_t line, int64_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void csv_fail(td_dstream *s, int64_t line, int64_t col, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char field[64];
    snprintf(field, sizeof field, LOC_FMT, (long long)line, (long long)col);
    char hint[96] = "";
    if (!sep_hint(s, hint, sizeof hint) && s->header_hint && line == 1)
        snprintf(hint, sizeof hint, " (if the first line names the columns, pass header=true)");
    td_ds_fatal(s, TD_EINVAL, field, "%s: %s%s", field, what, hint);
}

/* Is the record being read parsed (not the header)? */
static inline int csv_parsing(const td_dstream *s) { return !(s->first_record && s->opts.header); }

static void field_begin(td_dstream *s)
{
    s->flen = 0;
    s->fover = 0;
    s->field_line = s->line;
}

/* Keeps the field's bytes (leading blanks dropped: they are trimmed anyway). */
static void field_put(td_dstream *s, const char *p, size_t n)
{
    if (s->flen == 0)
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
    size_t room = FIELD_CAP - s->flen;
    if (n <= room) {
        memcpy(s->field + s->flen, p, n);
        s->flen += n;
        return;
    }
    memcpy(s->field + s->flen, p, room);
    s->flen = FIELD_CAP;
    for (size_t i = room; i < n && !s->fover; i++)
        s->fover = p[i] != ' ' && p[i] != '\t';
}

/* The field's text without trailing blanks (leading ones were never kept). */
static size_t field_trim(const char *t, size_t n)
{
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    return n;
}

static int rec_grow(td_dstream *s)
{
    size_t cap = s->rec_cap ? s->rec_cap * 2 : 64;
    double *nd = realloc(s->rec_d, cap * sizeof *nd);
    if (nd) s->rec_d = nd;
    float *nf = realloc(s->rec_f, cap * sizeof *nf);
    if (nf) s->rec_f = nf;
    unsigned char *ne = realloc(s->rec_exact, cap);
    if (ne) s->rec_exact = ne;
    int64_t *nl = realloc(s->rec_line_of, cap * sizeof *nl);
    if (nl) s->rec_line_of = nl;
    if (!nd || !nf || !ne || !nl) {
        td_ds_fatal(s, TD_ENOMEM, "", "out of memory reading the CSV body");
        return -1;
    }
    s->rec_cap = cap;
    return 0;
}

/* Would strtod read all of t[0..n) as a finite or infinite number (as field_end does)? */
static int looks_numeric(const char *t, size_t n)
{
    if (n == 0 || n >= 128) return 0;
    char buf[128];
    memcpy(buf, t, n);
    buf[n] = '\0';
    char *end;
    (void)strtod(buf, &end);
    return end == buf + n;
}

/* A field of the header: its trimmed text kept as a column name. */
static void header_field(td_dstream *s)
{
    s->rec_n++; /* (a name is kept up to FIELD_CAP bytes) */
    char **nh = realloc(s->hdr, (size_t)(s->nhdr + 1) * sizeof *nh);
    if (!nh) {
        td_ds_fatal(s, TD_ENOMEM, "", "out of memory reading the CSV header");
        return;
    }
    s->hdr = nh;
    size_t n = field_trim(s->field, s->flen);
    if (!(s->hdr[s->nhdr] = malloc(n + 1))) {
        td_ds_fatal(s, TD_ENOMEM, "", "out of memory reading the CSV header");
        return;
    }
    memcpy(s->hdr[s->nhdr], s->field, n);
    s->hdr[s->nhdr++][n] = '\0';
}

/* The header has ended: label_column given by name is found among its names. */
static void header_end(td_dstream *s)
{
    if (s->opts.label_column == TD_CSV_LABEL_FIRST)
        s->lab_idx = 0;
    else if (s->opts.label_column == TD_CSV_LABEL_LAST)
        s->lab_idx = s->nhdr - 1;
    if (s->opts.label_column != TD_CSV_LABEL_NAMED) return;
    for (int64_t k = 0; k < s->nhdr; k++)
        if (strcmp(s->hdr[k], s->opts.label_name) == 0) {
            s->lab_idx = k;
            return;
        }
    char list[256] = "";
    for (int64_t k = 0; k < s->nhdr && strlen(list) < 200; k++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%.40s\"", k ? ", " : "",
                 s->hdr[k]);
    td_ds_fatal(s, TD_EINVAL, "label_column",
                "label_column \"%.64s\" is not a column of the header "
                "(%s)",
                s->opts.label_name, list);
}

/* The field just read: a number (as strtod reads the trimmed text), kept for the
 * record's checks. */
static void field_end(td_dstream *s)
{
    if (s->done) return;
    if (!csv_parsing(s)) { /* the header: its names are kept */
        header_field(s);
        return;
    }
    const char *t = s->field;
    size_t n = field_trim(s->field, s->flen);
    int64_t line = s->field_line, col = s->col;
    if (col == 1) { /* kept for label_column=first */
        memcpy(s->first_field, t, n);
        s->first_len = n;
    }
    /* the label column, or (label_column=last, the first record) maybe it */
    int maybe_label = s->labelled &&
        (s->lab_idx >= 0    ? col - 1 == s->lab_idx
             : s->ncols < 0 ? s->opts.label_column == TD_CSV_LABEL_LAST
                            : col == s->ncols);
    if (maybe_label) {
        memcpy(s->lab_text, t, n);
        s->lab_len = n;
    }
    if (s->pend_col && s->lab_idx < 0) { /* the field before was no number, nor the last */
        csv_fail(s, s->pend_line, s->pend_col, "\"%s\" is not a number", s->pend_text);
        return;
    }
    if (n == 0 && !s->fover) {
        csv_fail(s, line, col,
                 s->named && maybe_label ? "empty class name" : "empty field; expected a number");
        return;
    }
    if (maybe_label && !s->fover && n < 128 && !looks_numeric(t, n)) { /* a class name */
        memcpy(s->pend_text, t, n);
        s->pend_text[n] = '\0';
        s->pend_col = col, s->pend_line = line;
        if (s->rec_n == s->rec_cap && rec_grow(s)) return;
        s->rec_d[s->rec_n] = 0;
        s->rec_f[s->rec_n] = 0;
        s->rec_exact[s->rec_n] = 2; /* a name: record_end decides */
        s->rec_line_of[s->rec_n] = line;
        s->rec_n++;
        return;
    }
    if (s->fover || n >= 128) {
        csv_fail(s, line, col, "\"%.40s...\" is not a number", t);
        return;
    }
    double d;
    float f;
    int exact = 1;
    num nm;
    const char *stop;
    char buf[128];
    memcpy(buf, t, n);
    buf[n] = '\0';
    if (scan_number(t, t + n, 1, &nm, &stop) == SCAN_OK && stop == t + n) {
        f = num_f32(&nm, t, n, &d);
        /* not exact: f is right and d within a few ulps, |d| < 2^127 (num_f32) */
        exact = num_exact(&nm, &d) || !(fabs(d) < 0x1p127);
    } else { /* not a JSON number: strtod decides (hex, "+1", ".5", "inf", ...) */
        char *end;
        d = strtod(buf, &end);
        if (end != buf + n) {
            csv_fail(s, line, col, "\"%s\" is not a number", buf);
            return;
        }
        f = (float)d;
    }
    if (!isfinite(d)) {
        csv_fail(s, line, col, "\"%s\" is not a finite number", buf);
        return;
    }
    if (s->rec_n == s->rec_cap && rec_grow(s)) return;
    s->rec_d[s->rec_n] = d;
    s->rec_f[s->rec_n] = f;
    s->rec_exact[s->rec_n] = (unsigned char)exact;
    s->rec_line_of[s->rec_n] = line;
    s->rec_n++;
}

/* The label of a record (its column k) as a class name: its index into the names so far
 * pushed to y. -1 when the record failed. */
static int label_name(td_dstream *s, int64_t k)
{
    int64_t line = s->rec_line_of[k];
    if (!s->named) {
        csv_fail(s, line, k + 1,
                 "label \"%s\" is not an integer class index (the first "
                 "row's label is a number; a column of class names has a name on every row)",
                 s->pend_text);
        return -1;
    }
    if (memchr(s->lab_text, '\0', s->lab_len)) {
        csv_fail(s, line, k + 1, "a class name must be text without NUL bytes");
        return -1;
    }
    int32_t idx = td_names_add(&s->names, s->lab_text, s->lab_len);
    if (idx == -1) {
        td_ds_fatal(s, TD_ENOMEM, "", "out of memory reading the CSV body");
        return -1;
    }
    if (idx == -2) {
        csv_fail(s, line, k + 1, "more than %d distinct class names", TD_MAX_CLASSES);
        return -1;
    }
    uint32_t bits;
    memcpy(&bits, &idx, sizeof bits);
    build_push(s, &s->cy, bits);
    return 0;
}

/* The record just read (rec_n fields) has ended at body offset off: the checks of a
 * record, then its values into X and y. */
static void record_end(td_dstream *s, uint64_t off)
{
    if (s->done) return;
    int64_t nf = (int64_t)s->rec_n;
    int labelled = s->labelled;
    if (s->ncols < 0) {
        s->ncols = nf;
        if (labelled && s->ncols < 2) {
            char hint[96] = "";
            sep_hint(s, hint, sizeof hint);
            td_ds_fatal(s, TD_EINVAL, "label_column",
                        "line %lld has 1 column; with label_column=%s "
                        "at least 2 are needed (or pass label_column=none)%s",
                        (long long)s->rec_line,
                        s->opts.label_column == TD_CSV_LABEL_FIRST ? "first" : "last", hint);
            return;
        }
        s->D = labelled ? s->ncols - 1 : s->ncols;
    } else if (nf != s->ncols) {
        char field[32];
        snprintf(field, sizeof field, "line %lld", (long long)s->rec_line);
        td_ds_fatal(s, TD_EINVAL, field,
                    "line %lld has %lld column%s, expected %lld (like line %s)",
                    (long long)s->rec_line, (long long)nf, nf == 1 ? "" : "s", (long long)s->ncols,
                    s->opts.header ? "1, the header" : "1");
        return;
    }
    int skip = !csv_parsing(s);
    s->first_record = 0;
    s->rec_n = 0;
    if (skip) {
        header_end(s);
        return;
    }
    s->header_hint = 0; /* past the first line */
    int64_t lab = !labelled                          ? -1
        : s->lab_idx >= 0                            ? s->lab_idx
        : s->opts.label_column == TD_CSV_LABEL_FIRST ? 0
                                                     : nf - 1;
    if (s->pend_col && s->pend_col - 1 != lab) {
        csv_fail(s, s->pend_line, s->pend_col, "\"%s\" is not a number", s->pend_text);
        return;
    }
    s->pend_col = 0;
    if (labelled && s->N == 0) s->named = s->rec_exact[lab] == 2;
    if (s->N == 0 && s->size_hint > off && off > s->rec_off) {
        /* the first row tells how many bytes a row takes: reserve for the rest */
        uint64_t rows = (s->size_hint - s->rec_off) / (off - s->rec_off) * 11 / 10 + 2;
        uint64_t most = s->size_hint / 2 + 1;
        uint64_t want = rows * (uint64_t)s->D;
        if (want > most) want = most;
        td_build_reserve(s, &s->cx, (size_t)want);
        if (labelled) td_build_reserve(s, &s->cy, (size_t)(rows < most ? rows : most));
    }
    if (td_build_reserve(s, &s->cx, s->cx.n + (size_t)s->D)) return;
    for (int64_t k = 0; k < nf; k++) {
        double v = s->rec_d[k];
        if (k == lab && (s->named || s->rec_exact[k] == 2)) {
            if (label_name(s, k)) return;
        } else if (k == lab) {
            if (!s->rec_exact[k]) { /* integrality is decided on strtod's double */
                const char *t = k == 0 ? s->first_field : s->field;
                v = td_strtod_n(t, k == 0 ? s->first_len : field_trim(s->field, s->flen));
            }
            if (v != floor(v) || v < INT32_MIN || v > INT32_MAX) {
                csv_fail(s, s->rec_line_of[k], k + 1,
                         "label %.17g is not an integer class "
                         "index",
                         v);
                return;
            }
            int32_t t32 = (int32_t)v;
            uint32_t bits;
            memcpy(&bits, &t32, sizeof bits);
            build_push(s, &s->cy, bits);
        } else {
            /* as JSON's: refused when it rounds past float32 (3.4028235e38 is FLT_MAX) */
            if (isinf(s->rec_f[k])) {
                csv_fail(s, s->rec_line_of[k], k + 1,
                         "%.9g is outside the float32 range "
                         "(|x| <= %.8g)",
                         v, (double)FLT_MAX);
                return;
            }
            uint32_t bits;
            bits_of_float(&bits, s->rec_f[k]);
            s->cx.data[s->cx.n++] = bits;
        }
    }
    s->N++;
}

/* A record begins at p (its first field, which may start with blanks). */
static void record_begin(td_dstream *s, const char *p)
{
    s->rec_line = s->line;
    s->rec_n = 0;
    s->pend_col = 0;
    s->col = 1;
    if (s->N == 0) s->rec_off = s->cx.start_off = s->cy.start_off = off_of(s, p);
    field_begin(s);
}

/* One piece of a CSV body. */
void td_ds_lex_csv(td_dstream *s, const char *p, const char *end)
{
    while (p < end && !s->done) {
        unsigned char c = (unsigned char)*p;
        switch (s->cs) {
        case C_CR: /* after a CR: an LF may complete the line end */
            s->cs = C_REC;
            if (c == '\n') {
                p++;
                break;
            }
            /* fall through */
        case C_REC: /* the start of a line: blank lines (spaces only) are skipped */
            if (c == ' ' || c == '\t') {
                s->rec_ws = 1;
                p++;
                break;
            }
            if (c == '\n' || c == '\r') {
                s->rec_ws = 0;
                s->line++;
                s->cs = c == '\r' ? C_CR : C_REC;
                p++;
                break;
            }
            record_begin(s, p);
            if (s->rec_ws) { /* the field began at the blanks: it is unquoted */
                s->rec_ws = 0;
                s->cs = C_UNQUOTED;
                break;
            }
            s->cs = C_FIELD;
            /* fall through */
        case C_FIELD:
            field_begin(s);
            if (c == '"') {
                s->cs = C_QUOTED;
                p++;
                break;
            }
            s->cs = C_UNQUOTED;
            /* fall through */
        case C_UNQUOTED: {
            const char *q = p;
            const char dl = s->opts.delimiter;
            while (q < end && *q != dl && *q != '\n' && *q != '\r' && *q != '"')
                q++;
            field_put(s, p, (size_t)(q - p));
            p = q;
            if (p == end) break;
            c = (unsigned char)*p;
            if (c == '"') {
                csv_fail(s, s->field_line, s->col,
                         "a quote inside an unquoted field; quote "
                         "the whole field and double the inner quotes");
                break;
            }
            goto field_done;
        }
        case C_QUOTED: {
            const char *q = p;
            while (q < end && *q != '"' && *q != '\n')
                q++;
            field_put(s, p, (size_t)(q - p));
            p = q;
            if (p == end) break;
            if (*p == '\n') {
                s->line++;
                field_put(s, p, 1);
                p++;
                break;
            }
            s->cs = C_QUOTE;
            p++;
            break;
        }
        case C_QUOTE: /* after a quote inside a quoted field: "" is a quote */
            if (c == '"') {
                field_put(s, "\"", 1);
                s->cs = C_QUOTED;
                p++;
                break;
            }
            s->cs = C_AFTER_QUOTE;
            /* fall through */
        case C_AFTER_QUOTE:
            if (c == ' ' || c == '\t') {
                p++;
                break;
            }
            if (c != (unsigned char)s->opts.delimiter && c != '\n' && c != '\r') {
                csv_fail(s, s->line, s->col, "unexpected character '%c' after a closing quote", c);
                break;
            }
            goto field_done;
        }
        continue;
    field_done: /* at p: ',' or a line end after a field */
        field_end(s);
        if (c == (unsigned char)s->opts.delimiter) {
            s->col++;
            s->cs = C_FIELD;
            p++;
            continue;
        }
        record_end(s, off_of(s, p));
        s->line++;
        s->cs = c == '\r' ? C_CR : C_REC;
        p++;
    }
}

td_status td_ds_csv_finish(td_dstream *s, td_dataset_buf *out, td_error *err)
{
    if (!s->done) {
        uint64_t total = s->fed;
        switch (s->cs) {
        case C_REC:
        case C_CR: break;
        case C_FIELD: /* after a comma at the very end: an empty field */
            field_begin(s);
            /* fall through */
        case C_UNQUOTED:
        case C_QUOTE:
        case C_AFTER_QUOTE:
            field_end(s);
            record_end(s, total);
            break;
        case C_QUOTED:
            csv_fail(s, s->field_line, s->col,
                     "unterminated quoted field: the closing quote is "
                     "missing");
            break;
        }
    }
    if (!s->done && s->N == 0) td_ds_fatal(s, TD_EINVAL, "", "the CSV body has no data rows");
    if (s->done) {
        if (err) *err = s->fatal_err;
        return s->fatal_st;
    }
    memset(out, 0, sizeof *out);
    if (s->csv_name) {
        td_status st =
            td_dataset_name_copy(&out->name, s->csv_name, strlen(s->csv_name), "name", err);
        if (st) return st;
    }
    if (s->cx.cap > s->cx.n) { /* give back the reserve */
        uint32_t *p = realloc(s->cx.data, (s->cx.n ? s->cx.n : 1) * sizeof *p);
        if (p) s->cx.data = p;
    }
    out->X = (float *)s->cx.data;
    s->cx.data = NULL;
    if (s->labelled) {
        out->y = (int32_t *)s->cy.data;
        s->cy.data = NULL;
        td_status st;
        if (s->named &&
            (st = td_names_finish(&s->names, out->y, s->N, &out->classes, &out->n_classes, err))) {
            td_dataset_buf_free(out);
            return st;
        }
    }
    if (s->hdr && s->nhdr == s->ncols) { /* the feature columns' names */
        int64_t lab = s->labelled ? s->lab_idx : -1;
        if (!(out->columns = calloc((size_t)s->nhdr, sizeof *out->columns))) {
            td_dataset_buf_free(out);
            return td_fail(err, TD_ENOMEM, "", "out of memory reading the CSV header");
        }
        for (int64_t k = 0; k < s->nhdr; k++)
            if (k != lab) {
                out->columns[out->n_columns++] = s->hdr[k];
                s->hdr[k] = NULL;
            }
    }
    out->ds.N = s->N;
    out->ds.D = s->D;
    out->ds.X = out->X;
    out->ds.y = out->y;
    out->ds.y_cols = s->labelled ? 1 : 0;
    return TD_OK;
}

td_dstream *td_dstream_csv(const td_csv_opts *o, const char *name, uint64_t size_hint)
{
    td_dstream *s = td_ds_new(size_hint);
    if (!s) return NULL;
    s->csv = 1;
    s->opts = o ? *o : td_csv_opts_default();
    if (name && !(s->csv_name = strdup(name))) {
        free(s);
        return NULL;
    }
    s->line = 1;
    s->cs = C_REC;
    s->ncols = -1;
    s->first_record = 1;
    s->header_hint = !s->opts.header;
    s->labelled = s->opts.label_column != TD_CSV_LABEL_NONE;
    s->lab_idx = s->opts.label_column == TD_CSV_LABEL_FIRST ? 0 : -1;
    td_dataset_part *px = &s->parts.X, *py = &s->parts.y;
    td_build_init(&s->cx, px, "X", SH_ROWS, 0, 0, 0, 0);
    td_build_init(&s->cy, py, "y", SH_VECTOR, 1, 0, INT32_MIN, INT32_MAX);
    return s;
}
