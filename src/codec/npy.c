/* npy.c — the .npy header and value conversions (format in npy.h). */
#include "codec/npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t NPY_MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

size_t td_npy_header_need(const uint8_t *buf, size_t len)
{
    if (len < 8) return 8;
    if (memcmp(buf, NPY_MAGIC, 6) != 0 || buf[6] < 1 || buf[6] > 3) return 0;
    size_t pre = buf[6] == 1 ? 10 : 12;
    if (len < pre) return pre;
    uint64_t hl = (uint64_t)buf[8] | (uint64_t)buf[9] << 8;
    if (pre == 12) hl |= (uint64_t)buf[10] << 16 | (uint64_t)buf[11] << 24;
    if (hl > TD_NPY_MAX_HEADER) return 0;
    return pre + (size_t)hl;
}

/* ---- the header dict ---------------------------------------------------------------- */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted Python string without escapes into out (cap bytes); -1 when not one. */
static int read_str(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    out[n] = '\0';
    return 0;
}

static int read_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* (d0, d1, ...) with an optional trailing comma; -1 on bad syntax, -2 on a dimension
 * that is negative or too large, -3 on too many dimensions. */
static int read_shape(cursor *c, int64_t *shape, int *ndim)
{
    *ndim = 0;
    if (!eat(c, '(')) return -1;
    for (;;) {
        skip_ws(c);
        if (eat(c, ')')) return 0;
        if (c->p >= c->end) return -1;
        if (*c->p == '-') return -2;
        if (*c->p < '0' || *c->p > '9') return -1;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return -2;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') /* Python 2 longs */
            c->p++;
        if (*ndim >= TD_NPY_MAX_DIMS) return -3;
        shape[(*ndim)++] = v;
        if (!eat(c, ',')) {
            if (!eat(c, ')')) return -1;
            return 0;
        }
    }
}

/* Fills kind, itemsize, big_endian from descr; 0, or -1 with err filled. */
static td_status parse_descr(td_npy_header *h, const char *field, td_error *err)
{
    const char *d = h->descr;
    char order = d[0];
    if (order != '<' && order != '>' && order != '|' && order != '=')
        return td_fail(err, TD_EINVAL, field,
                       "%s: dtype '%s' is not supported (structured or "
                       "unknown dtype); use a plain numeric array",
                       field, d);
    char k = d[1];
    char *endp = NULL;
    long size = k ? strtol(d + 2, &endp, 10) : 0;
    if (k == 'O')
        return td_fail(err, TD_EINVAL, field, "%s: dtype '%s' (object arrays) is not supported",
                       field, d);
    if (k == 'U' && endp && *endp == '\0' && size > 0) {
        h->kind = 'U';
        h->itemsize = (int)(size > 1 << 20 ? 1 << 20 : size) * 4;
        h->big_endian = order == '>';
        return TD_OK;
    }
    int ok = endp && *endp == '\0' && endp != d + 2 &&
        ((k == 'b' && size == 1) ||
         ((k == 'i' || k == 'u') && (size == 1 || size == 2 || size == 4 || size == 8)) ||
         (k == 'f' && (size == 4 || size == 8)));
    if (!ok)
        return td_fail(err, TD_EINVAL, field,
                       "%s: dtype '%s' is not supported; use bool, "
                       "int8-64, uint8-64, float32 or float64",
                       field, d);
    h->kind = k;
    h->itemsize = (int)size;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    h->big_endian = size > 1 && order != '<';
#else
    h->big_endian = size > 1 && order == '>';
#endif
    return TD_OK;
}

td_status td_npy_header_parse(td_npy_header *h, const uint8_t *buf, size_t len, const char *field,
                              td_error *err)
{
    memset(h, 0, sizeof *h);
    size_t need = td_npy_header_need(buf, len);
    if (need == 0 || len < 8) {
        if (len >= 6 && memcmp(buf, NPY_MAGIC, 6) == 0 && len >= 8 && (buf[6] < 1 || buf[6] > 3))
            return td_fail(err, TD_EINVAL, field,
                           "%s: .npy format version %u.%u is not "
                           "supported (1.0, 2.0, 3.0 are)",
                           field, buf[6], buf[7]);
        if (len >= 6 && memcmp(buf, NPY_MAGIC, 6) == 0)
            return td_fail(err, TD_EINVAL, field, "%s: the .npy header is longer than %d bytes",
                           field, TD_NPY_MAX_HEADER);
        return td_fail(err, TD_EINVAL, field,
                       "%s: not a .npy file (it must start with "
                       "\"\\x93NUMPY\")",
                       field);
    }
    if (len < need)
        return td_fail(err, TD_EINVAL, field, "%s: the .npy header is cut short", field);
    size_t pre = buf[6] == 1 ? 10 : 12;
    cursor c = {(const char *)buf + pre, (const char *)buf + need};
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!eat(&c, '{')) goto syntax;
    for (;;) {
        char key[32];
        if (eat(&c, '}')) break;
        if (read_str(&c, key, sizeof key) != 0 || !eat(&c, ':')) goto syntax;
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = 1;
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[')
                return td_fail(err, TD_EINVAL, field,
                               "%s: structured dtypes are not "
                               "supported; use a plain numeric array",
                               field);
            if (read_str(&c, h->descr, sizeof h->descr) != 0) goto syntax;
        } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
            seen_fortran = 1;
            if (read_word(&c, "True"))
                h->fortran_order = 1;
            else if (!read_word(&c, "False"))
                goto syntax;
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1;
            int r = read_shape(&c, h->shape, &h->ndim);
            if (r == -2)
                return td_fail(err, TD_EINVAL, field,
                               "%s: shape has a negative or too large "
                               "dimension",
                               field);
            if (r == -3)
                return td_fail(err, TD_EINVAL, field, "%s: shape has more than %d dimensions",
                               field, TD_NPY_MAX_DIMS);
            if (r) goto syntax;
        } else {
            return td_fail(err, TD_EINVAL, field,
                           "%s: the .npy header has an unknown or "
                           "repeated key '%s' (descr, fortran_order, shape expected)",
                           field, key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) goto syntax;
            break;
        }
    }
    skip_ws(&c);
    if (c.p != c.end || !seen_descr || !seen_fortran || !seen_shape) goto syntax;
    td_status st = parse_descr(h, field, err);
    if (st) return st;
    h->count = 1;
    for (int i = 0; i < h->ndim; i++)
        if (__builtin_mul_overflow(h->count, h->shape[i], &h->count))
            return td_fail(err, TD_EINVAL, field, "%s: shape is too large", field);
    if (__builtin_mul_overflow((uint64_t)h->count, (uint64_t)h->itemsize, &h->data_bytes) ||
        h->data_bytes > (uint64_t)INT64_MAX)
        return td_fail(err, TD_EINVAL, field, "%s: shape is too large", field);
    h->header_bytes = need;
    return TD_OK;
syntax:
    return td_fail(err, TD_EINVAL, field,
                   "%s: the .npy header is not a dict of descr, "
                   "fortran_order and shape",
                   field);
}

/* ---- conversions -------------------------------------------------------------------- */

/* Loads the element at p into v, an object of its type (size bytes, h->itemsize), in host
 * byte order. */
static inline void load_elem(void *v, size_t size, const uint8_t *p, const td_npy_header *h)
{
    uint8_t *t = v;
    memcpy(t, p, size);
    if (h->big_endian)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            uint8_t x = t[a];
            t[a] = t[b];
            t[b] = x;
        }
}

/* T_F32(type, expression of v) for the element type of h: the conversion loop in each
 * type (exact for every kind but int64/uint64 beyond 2^53, which the float32 path does not
 * use). The integer types by size, signed with U empty, unsigned with U u. */
#define INT_CASES(T_F32, U)               \
    switch (h->itemsize) {                \
    case 1: T_F32(U##int8_t, v); break;   \
    case 2: T_F32(U##int16_t, v); break;  \
    case 4: T_F32(U##int32_t, v); break;  \
    default: T_F32(U##int64_t, v); break; \
    }
#define ELEM_CASES(T_F32)                       \
    switch (h->kind) {                          \
    case 'b': T_F32(uint8_t, v ? 1 : 0); break; \
    case 'f':                                   \
        if (h->itemsize == 4) {                 \
            T_F32(float, v);                    \
        } else {                                \
            T_F32(double, v);                   \
        }                                       \
        break;                                  \
    case 'i': INT_CASES(T_F32, ) break;         \
    default: INT_CASES(T_F32, u) break;         \
    }

void td_npy_to_f32(float *dst, const void *src, size_t n, const td_npy_header *h)
{
    const uint8_t *p = src;
    size_t sz = (size_t)h->itemsize;
    if (h->kind == 'f' && sz == 4 && !h->big_endian) {
        memcpy(dst, src, n * 4); /* the common case: nothing to convert */
        return;
    }
    /* C's conversions to float round to nearest even, as numpy's astype does */
#define TO_F32(T, EXPR)                         \
    for (size_t i = 0; i < n; i++) {            \
        T v;                                    \
        load_elem(&v, sizeof v, p + i * sz, h); \
        dst[i] = (float)(EXPR);                 \
    }
    ELEM_CASES(TO_F32)
#undef TO_F32
}

size_t td_npy_to_i32(int32_t *dst, const void *src, size_t n, const td_npy_header *h, double *bad)
{
    const uint8_t *p = src;
    size_t sz = (size_t)h->itemsize;
    /* each case checks in its own type: no double rounding of 64-bit integers */
#define TO_I32(T, EXPR)                         \
    for (size_t i = 0; i < n; i++) {            \
        T v;                                    \
        load_elem(&v, sizeof v, p + i * sz, h); \
        if (!in_i32_##T(v)) {                   \
            *bad = (double)v;                   \
            return i;                           \
        }                                       \
        dst[i] = (int32_t)(EXPR);               \
    }
#define in_i32_uint8_t(v) 1
#define in_i32_int8_t(v) 1
#define in_i32_int16_t(v) 1
#define in_i32_uint16_t(v) 1
#define in_i32_int32_t(v) 1
#define in_i32_uint32_t(v) ((v) <= (uint32_t)INT32_MAX)
#define in_i32_int64_t(v) ((v) >= INT32_MIN && (v) <= INT32_MAX)
#define in_i32_uint64_t(v) ((v) <= (uint64_t)INT32_MAX)
#define in_i32_float(v) ((v) == floorf(v) && (v) >= -0x1p31f && (v) < 0x1p31f)
#define in_i32_double(v) ((v) == floor(v) && (v) >= -0x1p31 && (v) <= 2147483647.0)
    ELEM_CASES(TO_I32)
#undef TO_I32
    return n;
}

size_t td_npy_header_write(char *out, const char *descr, int ndim, const int64_t *shape)
{
    char dict[512];
    int n =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++)
        n +=
            snprintf(dict + n, sizeof dict - (size_t)n, i ? ", %lld" : "%lld", (long long)shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
    size_t total = 10 + (size_t)n + 1; /* preamble, dict, '\n' */
    size_t padded = (total + 63) / 64 * 64;
    memcpy(out, NPY_MAGIC, 6);
    out[6] = 1;
    out[7] = 0;
    size_t hl = padded - 10;
    out[8] = (char)(hl & 0xff);
    out[9] = (char)(hl >> 8);
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', padded - total);
    out[padded - 1] = '\n';
    return padded;
}
