/* npy_dataset.c — datasets from .npy / .npz bodies (contract in npy_dataset.h).
 *
 * The reader (npz_stream.h) hands over each array's header, then its elements in file
 * order. Each element is placed at its row-major index (the identity for C order; for a
 * Fortran-order (R, C) array file element k is row k % R, column k / R), converted, and
 * checked where it lands, so an error names the element as the JSON reader would. */
#include "codec/npy_dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/npz_stream.h"
#include "traind/hparams.h"
#include "util/names.h"

#define SCRATCH 16384 /* elements converted at a time */

enum { A_X, A_LABELS, A_PROBS, A_PAIRS, A_PL, NA };
static const char *const ARRAY_NAMES[NA] = {"X", "y", "Y", "pairs", "pair_labels"};

typedef struct held {
    int present;
    int64_t rows, cols; /* cols 1 for a vector */
    void *data;         /* float (X Fortran, Y) or int32_t (the rest) */
} held;

struct td_npy_dataset {
    td_npz_reader *reader;
    const td_npy_xsink *xs;
    void *xctx;
    td_npy_limits lim;
    held a[NA];
    /* the array being read */
    int cur;
    td_npy_header h;
    int64_t k;      /* elements of it so far */
    uint64_t bytes; /* the arrays so far, as float32 / int32 */
    float fbuf[SCRATCH];
    int32_t ibuf[SCRATCH];
    td_names names; /* y as unicode strings ('<U'): its class names */
    int named;
    char **classes; /* after finish: the sorted names (owned) */
    int64_t n_classes;
};

/* "X[3][1]" / "y[7]" for row-major element r of array i. */
static void elem_path(char *out, size_t cap, const td_npy_dataset *d, int i, int64_t r)
{
    const held *a = &d->a[i];
    if (d->h.ndim == 2)
        snprintf(out, cap, "%s[%lld][%lld]", ARRAY_NAMES[i], (long long)(r / a->cols),
                 (long long)(r % a->cols));
    else
        snprintf(out, cap, "%s[%lld]", ARRAY_NAMES[i], (long long)r);
}

/* Row-major index of file element k. */
static int64_t place(const td_npy_dataset *d, int64_t k)
{
    const held *a = &d->a[d->cur];
    if (!d->h.fortran_order || d->h.ndim < 2) return k;
    return (k % a->rows) * a->cols + k / a->rows;
}

static td_status shape_error(const char *field, const td_npy_header *h, const char *want,
                             td_error *err)
{
    char s[128] = "(";
    size_t n = 1;
    for (int i = 0; i < h->ndim && n < sizeof s - 24; i++)
        n += (size_t)snprintf(s + n, sizeof s - n, i ? ", %lld" : "%lld", (long long)h->shape[i]);
    snprintf(s + n, sizeof s - n, "%s)", h->ndim == 1 ? "," : "");
    return td_fail(err, TD_EINVAL, field, "%s: shape %s: %s", field, s, want);
}

static td_status on_begin(void *ctx, const char *name, const char *field, const td_npy_header *h,
                          td_error *err)
{
    td_npy_dataset *d = ctx;
    int i = 0;
    while (i < NA && strcmp(name, ARRAY_NAMES[i]) != 0)
        i++;
    if (i == NA)
        return td_fail(err, TD_EINVAL, field,
                       "%s: unknown array; an .npz dataset holds X.npy "
                       "and optionally y.npy, Y.npy, pairs.npy, pair_labels.npy",
                       field);
    if (h->kind == 'U' && i != A_LABELS)
        return td_fail(err, TD_EINVAL, field,
                       "%s: dtype '%s' (strings) is not supported; use "
                       "a numeric array",
                       field, h->descr);
    if (h->kind == 'U' && h->ndim != 1)
        return shape_error(field, h, "class names (strings) must be 1-D (n_samples,)", err);
    if (h->kind == 'U' && (h->itemsize < 4 || h->itemsize > 4 * TD_CLASS_NAME_MAX))
        return td_fail(err, TD_EINVAL, field,
                       "%s: dtype '%s': a class name is 1 to %d "
                       "characters",
                       field, h->descr, TD_CLASS_NAME_MAX);
    d->named = h->kind == 'U';
    held *a = &d->a[i];
    int nd = h->ndim;
    if (d->lim.max_bytes &&
        ((uint64_t)h->count > d->lim.max_bytes / 4 ||
         d->bytes + (uint64_t)h->count * 4 > d->lim.max_bytes))
        return td_fail(err, TD_EINVAL, field,
                       "%s: %lld values; the arrays may hold at most "
                       "%llu bytes as float32 / int32 (max_body_mb)",
                       field, (long long)h->count, (unsigned long long)d->lim.max_bytes);
    d->bytes += (uint64_t)h->count * 4;
    switch (i) {
    case A_X:
        if (nd != 2 || h->shape[0] < 1 || h->shape[1] < 1)
            return shape_error(field, h, "X must be 2-D (n_samples, n_features), both >= 1", err);
        break;
    case A_LABELS:
        if (nd != 1 && !(nd == 2 && h->shape[1] >= 1))
            return shape_error(field, h,
                               "y must be (n_samples,) or grouped "
                               "(n_samples, n_groups)",
                               err);
        break;
    case A_PROBS:
        if (nd != 2 || h->shape[1] < 1)
            return shape_error(field, h, "Y must be 2-D (n_samples, n_classes)", err);
        break;
    case A_PAIRS:
        if (nd != 2 || h->shape[1] != 2)
            return shape_error(field, h, "pairs must be (n_pairs, 2) row index pairs", err);
        break;
    default:
        if (nd != 1) return shape_error(field, h, "pair_labels must be (n_pairs,)", err);
        break;
    }
    a->rows = h->shape[0];
    a->cols = nd == 2 ? h->shape[1] : 1;
    a->present = 1;
    d->cur = i;
    d->h = *h;
    d->k = 0;
    if (i == A_X) {
        if (d->lim.max_rows > 0 && a->rows > d->lim.max_rows)
            return td_fail(err, TD_EINVAL, "X",
                           "the dataset has %lld rows; max_dataset_rows "
                           "is %lld",
                           (long long)a->rows, (long long)d->lim.max_rows);
        if (d->lim.max_features > 0 && a->cols > d->lim.max_features)
            return td_fail(err, TD_EINVAL, "X[0]",
                           "the dataset has %lld features; "
                           "max_dataset_features is %lld",
                           (long long)a->cols, (long long)d->lim.max_features);
        td_status st = d->xs->begin(d->xctx, a->rows, a->cols, err);
        if (st || !h->fortran_order) return st;
    }
    /* held whole: the labels, Y, pairs (and a Fortran-order X, to be emitted by rows) */
    size_t bytes;
    if (__builtin_mul_overflow((size_t)h->count, (size_t)4, &bytes) ||
        !(a->data = malloc(bytes ? bytes : 1)))
        return td_fail(err, TD_ENOMEM, field, "%s: out of memory (%lld values)", field,
                       (long long)h->count);
    return TD_OK;
}

/* Checks the float32 values of file elements k..k+n (at vals, host order, maybe
 * unaligned): finite, and >= 0 for Y. */
static td_status check_floats(td_npy_dataset *d, const void *vals, size_t n, td_error *err)
{
    const unsigned char *q = vals;
    if (d->cur != A_PROBS) { /* the fast pass: any exponent all ones? (vectorises) */
        uint32_t bad = 0;
        for (size_t t = 0; t < n; t++) {
            uint32_t u;
            memcpy(&u, q + 4 * t, sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (!bad) return TD_OK;
    }
    for (size_t t = 0; t < n; t++) {
        float v;
        memcpy(&v, q + 4 * t, sizeof v);
        if (isfinite(v) && (d->cur != A_PROBS || v >= 0)) continue;
        char path[96];
        elem_path(path, sizeof path, d, d->cur, place(d, d->k + (int64_t)t));
        if (!isfinite(v))
            return td_fail(err, TD_EINVAL, path,
                           "%s is %s as float32; only finite numbers "
                           "are allowed",
                           path,
                           isnan(v) ? "NaN"
                                    : "infinite (or beyond the "
                                      "float32 range)");
        return td_fail(err, TD_EINVAL, path,
                       "%s = %g is negative; probability targets must "
                       "be >= 0",
                       path, (double)v);
    }
    return TD_OK;
}

/* Unicode labels: each element is itemsize / 4 UCS4 code points (numpy's '<U'/'>U',
 * padded with NULs), made UTF-8 and interned; y gets the provisional indices. */
static td_status names_data(td_npy_dataset *d, const uint8_t *p, size_t n, td_error *err)
{
    size_t chars = (size_t)d->h.itemsize / 4;
    char buf[4 * TD_CLASS_NAME_MAX];
    for (size_t t = 0; t < n; t++, p += d->h.itemsize) {
        size_t len = 0;
        int64_t r = place(d, d->k + (int64_t)t);
        char path[96];
        for (size_t c = 0; c < chars; c++) {
            const uint8_t *q = p + 4 * c;
            uint32_t cp = d->h.big_endian
                ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | q[2] << 8 | q[3]
                : (uint32_t)q[3] << 24 | (uint32_t)q[2] << 16 | q[1] << 8 | q[0];
            if (cp == 0) break; /* numpy pads with NULs */
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                elem_path(path, sizeof path, d, A_LABELS, r);
                return td_fail(err, TD_EINVAL, path,
                               "%s holds U+%X, which is not a Unicode "
                               "character",
                               path, cp);
            }
            if (cp < 0x80) {
                buf[len++] = (char)cp;
            } else if (cp < 0x800) {
                buf[len++] = (char)(0xC0 | (cp >> 6));
                buf[len++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                buf[len++] = (char)(0xE0 | (cp >> 12));
                buf[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[len++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[len++] = (char)(0xF0 | (cp >> 18));
                buf[len++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                buf[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                buf[len++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        elem_path(path, sizeof path, d, A_LABELS, r);
        if (len == 0 || len > TD_CLASS_NAME_MAX || memchr(buf, '\0', len))
            return td_fail(err, TD_EINVAL, path,
                           "%s: a class name must be 1 to %d bytes of "
                           "UTF-8 without NUL",
                           path, TD_CLASS_NAME_MAX);
        int32_t idx = td_names_add(&d->names, buf, len);
        if (idx == -1) return td_fail(err, TD_ENOMEM, "y", "out of memory for the class names");
        if (idx == -2)
            return td_fail(err, TD_EINVAL, path, "%s: more than %d distinct class names", path,
                           TD_MAX_CLASSES);
        ((int32_t *)d->a[A_LABELS].data)[r] = idx;
    }
    d->k += (int64_t)n;
    return TD_OK;
}

static td_status on_data(void *ctx, const void *elems, size_t n, td_error *err)
{
    td_npy_dataset *d = ctx;
    const uint8_t *p = elems;
    size_t isz = (size_t)d->h.itemsize;
    held *a = &d->a[d->cur];
    if (d->cur == A_LABELS && d->named) return names_data(d, p, n, err);
    while (n > 0) {
        size_t c = n < SCRATCH ? n : SCRATCH;
        td_status st = TD_OK;
        if (d->cur == A_X && !d->h.fortran_order && d->h.kind == 'f' && isz == 4 &&
            !d->h.big_endian) {
            /* native float32 rows: checked and passed on as they are */
            if ((st = check_floats(d, p, c, err)) || (st = d->xs->rows(d->xctx, p, c, err)))
                return st;
        } else if (d->cur == A_X || d->cur == A_PROBS) {
            td_npy_to_f32(d->fbuf, p, c, &d->h);
            if ((st = check_floats(d, d->fbuf, c, err))) return st;
            if (d->cur == A_X && !d->h.fortran_order) {
                if ((st = d->xs->rows(d->xctx, d->fbuf, c, err))) return st;
            } else {
                float *dst = a->data;
                for (size_t t = 0; t < c; t++)
                    dst[place(d, d->k + (int64_t)t)] = d->fbuf[t];
            }
        } else {
            double bad = 0;
            size_t ok = td_npy_to_i32(d->ibuf, p, c, &d->h, &bad);
            int32_t lo = d->cur == A_PL ? 0 : INT32_MIN, hi = d->cur == A_PL ? 1 : INT32_MAX;
            for (size_t t = 0; t < c; t++) {
                if (t >= ok || d->ibuf[t] < lo || d->ibuf[t] > hi) {
                    char path[96];
                    elem_path(path, sizeof path, d, d->cur, place(d, d->k + (int64_t)t));
                    double v = t >= ok ? bad : d->ibuf[t];
                    if (d->cur == A_PL)
                        return td_fail(err, TD_EINVAL, path,
                                       "%s = %.17g: pair labels are 0 "
                                       "(dissimilar) or 1 (similar)",
                                       path, v);
                    return td_fail(err, TD_EINVAL, path,
                                   v == floor(v) ? "%s = %.17g is outside [-2147483648, 2147483647]"
                                                 : "%s = %.17g is not an integer",
                                   path, v);
                }
                ((int32_t *)a->data)[place(d, d->k + (int64_t)t)] = d->ibuf[t];
            }
        }
        d->k += (int64_t)c;
        p += c * isz;
        n -= c;
    }
    return TD_OK;
}

static td_status on_end(void *ctx, td_error *err)
{
    td_npy_dataset *d = ctx;
    held *a = &d->a[A_X];
    if (d->cur != A_X || !d->h.fortran_order) return TD_OK;
    /* a Fortran-order X was gathered in row order: hand it over, then let it go */
    td_status st = d->xs->rows(d->xctx, a->data, (size_t)(a->rows * a->cols), err);
    free(a->data);
    a->data = NULL;
    return st;
}

static const td_npy_sink SINK = {on_begin, on_data, on_end};

td_npy_dataset *td_npy_dataset_create(int zip, const td_npy_xsink *xs, void *ctx,
                                      const td_npy_limits *lim)
{
    td_npy_dataset *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->xs = xs;
    d->xctx = ctx;
    if (lim) d->lim = *lim;
    if (!(d->reader = td_npz_reader_create(zip, &SINK, d))) {
        free(d);
        return NULL;
    }
    return d;
}

int td_npy_dataset_feed(td_npy_dataset *d, const void *data, size_t len)
{
    return td_npz_reader_feed(d->reader, data, len);
}

td_status td_npy_dataset_finish(td_npy_dataset *d, td_dataset *out, td_error *err)
{
    memset(out, 0, sizeof *out);
    td_status st = td_npz_reader_finish(d->reader, err);
    if (st) return st;
    held *a = d->a;
    if (!a[A_X].present)
        return td_fail(err, TD_EINVAL, "X", "X.npy is required: the samples (N, D)");
    int64_t N = a[A_X].rows;
    if (a[A_LABELS].present && a[A_PROBS].present)
        return td_fail(err, TD_EINVAL, "Y",
                       "give either y (class indices) or Y (probability "
                       "targets), not both");
    for (int i = A_LABELS; i <= A_PROBS; i++)
        if (a[i].present && a[i].rows != N)
            return td_fail(err, TD_EINVAL, ARRAY_NAMES[i],
                           "%s has %lld rows, but X has %lld "
                           "rows",
                           ARRAY_NAMES[i], (long long)a[i].rows, (long long)N);
    if (a[A_PAIRS].present != a[A_PL].present)
        return td_fail(err, TD_EINVAL, a[A_PAIRS].present ? "pair_labels" : "pairs",
                       "pairs and pair_labels go together: give both or neither");
    if (a[A_PAIRS].present) {
        if (a[A_PL].rows != a[A_PAIRS].rows)
            return td_fail(err, TD_EINVAL, "pair_labels",
                           "pair_labels has %lld entries, but "
                           "pairs has %lld pairs",
                           (long long)a[A_PL].rows, (long long)a[A_PAIRS].rows);
        const int32_t *pr = a[A_PAIRS].data;
        for (int64_t r = 0; r < a[A_PAIRS].rows * 2; r++)
            if (pr[r] < 0 || pr[r] >= N) {
                char path[96];
                snprintf(path, sizeof path, "pairs[%lld][%lld]", (long long)(r / 2),
                         (long long)(r % 2));
                return td_fail(err, TD_EINVAL, path,
                               "%s = %d is outside [0, %lld] (row "
                               "indices of X)",
                               path, pr[r], (long long)N - 1);
            }
    }
    if (a[A_LABELS].present && d->named) {
        td_strings_free(d->classes, d->n_classes);
        td_status st2 =
            td_names_finish(&d->names, a[A_LABELS].data, N, &d->classes, &d->n_classes, err);
        if (st2) return st2;
        d->named = 0; /* finished once */
    }
    out->N = N;
    out->D = a[A_X].cols;
    if (a[A_LABELS].present) {
        out->y = a[A_LABELS].data;
        out->y_cols = a[A_LABELS].cols;
    }
    if (a[A_PROBS].present) {
        out->Y = a[A_PROBS].data;
        out->Y_cols = a[A_PROBS].cols;
    }
    if (a[A_PAIRS].present) {
        out->pairs = a[A_PAIRS].data;
        out->pair_labels = a[A_PL].data;
        out->P = a[A_PAIRS].rows;
    }
    return TD_OK;
}

void td_npy_dataset_destroy(td_npy_dataset *d)
{
    if (!d) return;
    td_npz_reader_destroy(d->reader);
    for (int i = 0; i < NA; i++)
        free(d->a[i].data);
    td_names_fini(&d->names);
    td_strings_free(d->classes, d->n_classes);
    free(d);
}

void td_npy_dataset_classes(td_npy_dataset *d, char ***classes, int64_t *n)
{
    *classes = d->classes;
    *n = d->n_classes;
    d->classes = NULL;
    d->n_classes = 0;
}
