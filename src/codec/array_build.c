/* array_build.c — the array builders of the streaming parser (stream_impl.h): each
 * array member of a dataset body has one; it applies the tree readers' checks in the
 * same order (json_util.c read_matrix / read_vector), keeps the first error of its array,
 * and appends accepted values to its array. pairs are read as int32 and checked against
 * [0, N-1] once X's N is known (td_ds_json_finish), which gives the same first error as
 * reading them after X; the checks across arrays are td_dataset_parts_finish's. An
 * object body's arrays (td_jarray) are kept by a generic builder and read under their
 * rule by td_jarray_* (stream_dataset.h). */
#include "codec/stream_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "traind/hparams.h"

/* ---------------------------------------------------------------- builders ------ */

/* Keeps st (its message already in b->part->err) as the first error of b's array. */
static void build_fail(build *b, td_status st)
{
    b->part->st = st;
    b->failed = 1;
}

void td_build_init(build *b, td_dataset_part *part, const char *name, int shape, int is_int,
                   unsigned flags, int64_t lo, int64_t hi)
{
    memset(b, 0, sizeof *b);
    b->part = part;
    b->shape = shape;
    b->rule.is_int = is_int;
    b->rule.flags = flags;
    b->rule.lo = lo;
    b->rule.hi = hi;
    b->C = -1;
    snprintf(b->path, sizeof b->path, "%s", name);
    part->row0_len = -1;
    part->cols = 1;
}

/* Room for need values. Past the first few thousand, the array grows to what the rest
 * of the body can hold at the density seen so far, plus 10% (at least 1/8 more): a big
 * array is moved (copied, by realloc) once or twice, not log2(N) times. */
int td_build_reserve(td_dstream *s, build *b, size_t need)
{
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap * 2 : 256;
    uint64_t at = s->base_off; /* within a piece of where we are */
    if (b->n >= 4096 && s->size_hint > at && at > b->start_off) {
        double more = (double)b->n / (double)(at - b->start_off) * (double)(s->size_hint - at);
        double est = (double)b->n + more * 1.1 + 4096;
        size_t step = b->cap + b->cap / 8;
        if (est < (double)cap) cap = est > (double)step ? (size_t)est : step;
    }
    if (cap < need) cap = need;
    uint32_t *p = realloc(b->data, cap * sizeof *p);
    if (!p) {
        td_ds_oom(s, b->path);
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void td_build_drop(build *b)
{
    free(b->data);
    b->data = NULL;
    b->n = b->cap = 0;
    free(b->exc);
    b->exc = NULL;
    b->nexc = b->capexc = 0;
}

/* Row 0 of a matrix has ended at off: reserve what the rest of the body can hold. */
static void build_estimate(td_dstream *s, build *b, uint64_t off)
{
    uint64_t row_bytes = off - b->row0_off;
    if (!s->size_hint || s->size_hint <= off || row_bytes == 0 || b->C <= 0) return;
    uint64_t rows = (s->size_hint - off) / row_bytes * 11 / 10 + 2; /* 10% to spare */
    uint64_t want = rows * (uint64_t)b->C;
    uint64_t most = s->size_hint / 2 + (uint64_t)b->C; /* a value takes 2 bytes at least */
    if (want > most) want = most;
    if (want > b->cap && want < SIZE_MAX / sizeof(uint32_t)) td_build_reserve(s, b, (size_t)want);
}

/* A generic builder's element k (index into data) of kind k. */
void td_build_generic(td_dstream *s, build *b, int64_t i, int64_t j, td_json_vkind k, const num *nm,
                      const char *text, size_t tlen)
{
    int64_t at = (int64_t)b->n;
    uint32_t bits;
    if (k == TD_JV_TRUE || k == TD_JV_FALSE) {
        if (b->fb < 0) {
            b->fb = at;
            b->fb_kind = k;
        }
        bits_of_float(&bits, k == TD_JV_TRUE ? 1.0f : 0.0f);
        build_push(s, b, bits);
        return;
    }
    if (k != TD_JV_NUMBER) {
        b->failed = b->bad = 1;
        b->bad_kind = k;
        b->bad_value = 0;
        b->bad_i = i;
        b->bad_j = j;
        return;
    }
    double d = num_f64(nm, text, tlen);
    float f = (float)d;
    if ((double)f != d) {
        if (d == floor(d) && d >= INT32_MIN && d <= INT32_MAX) {
            if (b->nexc == b->capexc) {
                size_t cap = b->capexc ? b->capexc * 2 : 16;
                struct exc *e = realloc(b->exc, cap * sizeof *e);
                if (!e) {
                    td_ds_oom(s, b->path);
                    return;
                }
                b->exc = e;
                b->capexc = cap;
            }
            b->exc[b->nexc].k = at;
            b->exc[b->nexc++].v = (int32_t)d;
        } else if (b->ib < 0) {
            b->ib = at;
            b->ib_d = d;
        }
        if (isinf(f) && b->rb < 0) {
            b->rb = at;
            b->rb_d = d;
        }
        if (f == 0 && d < 0 && b->nb < 0) {
            b->nb = at;
            b->nb_d = d;
        }
    }
    bits_of_float(&bits, f);
    build_push(s, b, bits);
}

/* One element (kind k; numbers with their text) at (i, j) (j < 0 for a vector). */
static void build_elem(td_dstream *s, build *b, int64_t i, int64_t j, td_json_vkind k,
                       const num *nm, const char *text, size_t tlen)
{
    double d = 0;
    if (b->generic) {
        td_build_generic(s, b, i, j, k, nm, text, tlen);
        return;
    }
    if (k == TD_JV_NUMBER) {
        uint32_t bits;
        if (!b->rule.is_int) {
            float f = num_f32(nm, text, tlen, &d);
            if (td_json_rule_ok(&b->rule, d)) {
                bits_of_float(&bits, f);
                build_push(s, b, bits);
                return;
            }
        } else {
            d = num_f64(nm, text, tlen);
            if (td_json_rule_ok(&b->rule, d)) {
                int32_t v = (int32_t)d;
                memcpy(&bits, &v, sizeof bits);
                build_push(s, b, bits);
                return;
            }
        }
    } else if (b->rule.is_int && (b->rule.flags & TD_JSON_BOOLS) &&
               (k == TD_JV_TRUE || k == TD_JV_FALSE)) {
        int32_t v = k == TD_JV_TRUE;
        if (v >= b->rule.lo && v <= b->rule.hi) {
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            build_push(s, b, bits);
            return;
        }
    }
    b->failed = b->bad = 1;
    b->bad_kind = k;
    b->bad_value = d;
    b->bad_i = i;
    b->bad_j = j;
}

/* Element i of a y given as class names (the first element was a string): a string is
 * taken when it ends (label_done), anything else is refused. */
static void name_elem(td_dstream *s, build *b, td_json_vkind k)
{
    td_dataset_part *part = b->part;
    if (!part->names && !(part->names = calloc(1, sizeof *part->names))) {
        td_ds_oom(s, b->path);
        return;
    }
    if (k == TD_JV_STRING) {
        b->name_pending = 1;
        return;
    }
    char path[TD_JSON_PATH_MAX];
    td_json_index_path(path, b->path, b->i, -1);
    build_fail(b,
               td_fail(&part->err, TD_EINVAL, path,
                       "%s must be a class name (a string), as "
                       "%s[0] is; got %s",
                       path, b->path, td_json_kind_name(k)));
}

/* The string of a pending name element has ended (s->label_buf, s->cap_len/total). */
void td_build_label_done(td_dstream *s, build *b)
{
    td_dataset_part *part = b->part;
    b->name_pending = 0;
    if (b->failed) return;
    char path[TD_JSON_PATH_MAX];
    td_json_index_path(path, b->path, b->i - 1, -1);
    int named = s->cap_total > 0 && s->cap_total <= TD_CLASS_NAME_MAX && !s->cap_nul;
    int32_t idx = named ? td_names_add(part->names, s->label_buf, s->cap_len) : -2;
    if (idx == -1) {
        td_ds_oom(s, b->path);
        return;
    }
    if (idx == -2) { /* not a class name, or one too many */
        build_fail(b,
                   named ? td_fail(&part->err, TD_EINVAL, path,
                                   "%s: more than %d distinct class names", path, TD_MAX_CLASSES)
                         : td_fail(&part->err, TD_EINVAL, path,
                                   "%s: a class name must be 1 to %d bytes of text without NUL",
                                   path, TD_CLASS_NAME_MAX));
        return;
    }
    uint32_t bits;
    memcpy(&bits, &idx, sizeof bits);
    build_push(s, b, bits);
}

/* A value at level L of builder b (L 0: the member itself). A container is reported
 * when it opens, as kind TD_JV_ARRAY / TD_JV_OBJECT. */
void td_build_value(td_dstream *s, build *b, int L, td_json_vkind k, const num *nm,
                    const char *text, size_t tlen, uint64_t off)
{
    td_dataset_part *part = b->part;
    if (L == 0) {
        if (k == TD_JV_ARRAY) {
            b->active = 1;
            b->start_off = off;
            return;
        }
        if (b->generic) { /* the reader names it as a matrix or a vector */
            b->root_kind = k;
            b->failed = 1;
            return;
        }
        build_fail(b,
                   b->shape == SH_ROWS ? td_json_fail_not_rows(b->path, k, &part->err)
                                       : td_json_fail_not_numbers(b->path, k, &part->err));
        return;
    }
    if (!b->active) return;
    if (L == 1 && b->i == 0) b->first_kind = k;
    if (b->shape == SH_LABELS && L == 1 && b->i == 0) { /* the first element decides */
        if (k == TD_JV_ARRAY) {
            b->shape = SH_ROWS;
            part->grouped = 1;
        } else {
            b->shape = SH_VECTOR;
        }
    }
    if (b->shape == SH_VECTOR) {
        if (L == 1) {
            if (!b->failed && b->names_ok && (part->names || (b->i == 0 && k == TD_JV_STRING)))
                name_elem(s, b, k);
            else if (!b->failed)
                build_elem(s, b, b->i, -1, k, nm, text, tlen);
            b->i++;
        }
        return;
    }
    /* rows */
    if (L == 1) {
        if (k == TD_JV_ARRAY) {
            b->j = 0;
            if (b->i == 0) b->row0_off = off;
            return;
        }
        if (!b->failed) {
            if (b->i == 0) {
                build_fail(b, td_json_fail_first_not_row(b->path, k, &part->err));
            } else {
                char rpath[TD_JSON_PATH_MAX];
                td_json_index_path(rpath, b->path, b->i, -1);
                build_fail(b, td_json_fail_not_numbers(rpath, k, &part->err));
            }
        }
        b->i++;
        return;
    }
    if (L == 2) {
        if (!b->failed) {
            if (b->i > 0 && b->j >= b->C)
                b->failed = b->ragged = 1; /* its length is told when it ends */
            else
                build_elem(s, b, b->i, b->j, k, nm, text, tlen);
        }
        b->j++;
    }
}

/* The container that was the value at level L ends at off (an array when is_array). */
void td_build_close(td_dstream *s, build *b, int L, int is_array, uint64_t off)
{
    td_dataset_part *part = b->part;
    if (!b->active) return;
    if (L == 0) {
        if (!b->failed && b->i == 0) {
            build_fail(b, td_json_fail_empty(b->path, &part->err));
        }
        part->rows = b->i;
        return;
    }
    if (L != 1 || b->shape != SH_ROWS || !is_array) /* other elements counted as they began */
        return;
    if (b->i == 0) {
        part->row0_len = b->j;
        if (!b->failed) {
            b->C = b->j;
            if (b->C == 0) {
                build_fail(b, td_json_fail_first_row_empty(b->path, &part->err));
            } else {
                build_estimate(s, b, off);
            }
        }
    } else if (b->ragged || (!b->failed && b->j != b->C)) {
        b->ragged = 0;
        build_fail(b, td_json_fail_ragged(b->path, b->i, b->j, b->C, &part->err));
    }
    b->i++;
}

/* Turns a builder into its part (the element error formatted with the final rule). */
void td_build_finish(build *b, const td_json_rule *final_rule)
{
    td_dataset_part *part = b->part;
    if (!part->present) {
        td_build_drop(b);
        return;
    }
    if (b->bad && !part->st) {
        char path[TD_JSON_PATH_MAX];
        td_json_index_path(path, b->path, b->bad_i, b->bad_j);
        part->st = td_json_elem_fail(final_rule ? final_rule : &b->rule, b->bad_kind, b->bad_value,
                                     path, &part->err);
    }
    if (b->shape == SH_ROWS)
        part->cols = b->C > 0 ? b->C : 0;
    else
        part->cols = 1;
    if (part->st) {
        td_build_drop(b);
        return;
    }
    if (b->cap > b->n) { /* give back the reserve */
        uint32_t *p = realloc(b->data, (b->n ? b->n : 1) * sizeof *p);
        if (p) b->data = p;
    }
    part->data = b->data;
    b->data = NULL;
}

/* ---------------------------------------------------------------- td_jarray ----- */

int td_jarray_rows(const td_jarray *a)
{
    return a->b.root_kind == TD_JV_NONE && a->b.shape == SH_ROWS;
}

/* Reads a generic array under rule r as a matrix or a vector: the tree readers'
 * (json_util.c read_matrix / read_vector) result and first error. The values kept are
 * those before the builder's own first error (a shape or a kind), in element order, so
 * a value refused by r among them comes first. Integers are converted in place. */
static td_status jarray_read(void **out, int64_t *rows, int64_t *cols, td_jarray *a,
                             const td_json_rule *r, int matrix, const char *path, td_error *err)
{
    build *b = &a->b;
    char ep[TD_JSON_PATH_MAX];
    *out = NULL;
    *rows = *cols = 0;
    if (b->root_kind != TD_JV_NONE)
        return matrix ? td_json_fail_not_rows(path, b->root_kind, err)
                      : td_json_fail_not_numbers(path, b->root_kind, err);
    if (b->i == 0) return (r->flags & TD_JSON_EMPTY_OK) ? TD_OK : td_json_fail_empty(path, err);
    int rows_mode = b->shape == SH_ROWS;
    if (matrix && !rows_mode) return td_json_fail_first_not_row(path, b->first_kind, err);
    if (!matrix && rows_mode) {
        td_json_index_path(ep, path, 0, -1);
        return td_json_elem_fail(r, TD_JV_ARRAY, 0, ep, err);
    }
    int64_t C = rows_mode ? b->C : 1;
    int bools = r->is_int && (r->flags & TD_JSON_BOOLS);
    size_t e = 0;
    for (size_t k = 0; k < b->n; k++) {
        int64_t ks = (int64_t)k;
        float f;
        memcpy(&f, &b->data[k], sizeof f);
        double v = f; /* d itself unless noted on the side */
        td_json_vkind kind = ks == b->fb ? b->fb_kind : TD_JV_NUMBER;
        int ok;
        if (kind != TD_JV_NUMBER && !bools) {
            ok = 0;
        } else if (!r->is_int) {
            if (ks == b->rb)
                v = b->rb_d;
            else if (ks == b->nb)
                v = b->nb_d;
            ok = td_json_rule_ok(r, v);
        } else {
            if (ks == b->ib)
                v = b->ib_d;
            else if (e < b->nexc && b->exc[e].k == ks)
                v = b->exc[e++].v;
            ok = td_json_rule_ok(r, v);
            if (ok) {
                int32_t iv = (int32_t)v;
                memcpy(&b->data[k], &iv, sizeof iv);
            }
        }
        if (!ok) {
            if (rows_mode)
                td_json_index_path(ep, path, ks / C, ks % C);
            else
                td_json_index_path(ep, path, ks, -1);
            return td_json_elem_fail(r, kind, v, ep, err);
        }
    }
    if (a->part.st) {
        if (err) *err = a->part.err;
        return a->part.st;
    }
    if (b->bad) {
        td_json_index_path(ep, path, b->bad_i, b->bad_j);
        return td_json_elem_fail(r, b->bad_kind, b->bad_value, ep, err);
    }
    if (b->cap > b->n) { /* give back the reserve */
        uint32_t *p = realloc(b->data, (b->n ? b->n : 1) * sizeof *p);
        if (p) b->data = p;
    }
    *out = b->data;
    b->data = NULL;
    b->n = b->cap = 0;
    *rows = rows_mode ? a->part.rows : b->i;
    *cols = C;
    return TD_OK;
}

td_status td_jarray_matrix_f32(float **out, int64_t *rows, int64_t *cols, td_jarray *a,
                               unsigned flags, const char *path, td_error *err)
{
    td_json_rule r = {0, flags, 0, 0};
    return jarray_read((void **)out, rows, cols, a, &r, 1, path, err);
}

td_status td_jarray_vector_f32(float **out, int64_t *n, td_jarray *a, unsigned flags,
                               const char *path, td_error *err)
{
    td_json_rule r = {0, flags, 0, 0};
    int64_t cols;
    return jarray_read((void **)out, n, &cols, a, &r, 0, path, err);
}

td_status td_jarray_vector_i32(int32_t **out, int64_t *n, td_jarray *a, int64_t lo, int64_t hi,
                               unsigned flags, const char *path, td_error *err)
{
    td_json_rule r = {1, flags, lo < INT32_MIN ? INT32_MIN : lo, hi > INT32_MAX ? INT32_MAX : hi};
    int64_t cols;
    return jarray_read((void **)out, n, &cols, a, &r, 0, path, err);
}

td_status td_jarray_labels_i32(int32_t **out, int64_t *rows, int64_t *cols, int *grouped,
                               td_jarray *a, const char *path, td_error *err)
{
    td_json_rule r = {1, 0, INT32_MIN, INT32_MAX};
    *grouped = td_jarray_rows(a);
    td_status st = jarray_read((void **)out, rows, cols, a, &r, *grouped, path, err);
    if (!*grouped) *cols = 1;
    return st;
}
