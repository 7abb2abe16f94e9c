/* npz_write.c — .npy / .npz files in memory (contract in npz_write.h). */
#include "codec/npz_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/npy.h"

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
const char TD_NPY_F4[] = ">f4", TD_NPY_I4[] = ">i4", TD_NPY_F8[] = ">f8";
#else
const char TD_NPY_F4[] = "<f4", TD_NPY_I4[] = "<i4", TD_NPY_F8[] = "<f8";
#endif

#define ZIP_MAX 0xffffffffu

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int put(buf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return -1;
        b->p = q;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int put16(buf *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return put(b, x, 2);
}

static int put32(buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return put(b, x, 4);
}

static size_t itemsize_of(const char *descr) { return (size_t)(descr[2] - '0'); }

static td_status npy_into(buf *b, const char *descr, int ndim, const int64_t *shape,
                          const void *data, td_error *err)
{
    char hdr[128 + 24 * TD_NPY_MAX_DIMS];
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)shape[i];
    size_t hl = td_npy_header_write(hdr, descr, ndim, shape);
    if (put(b, hdr, hl) || put(b, data, count * itemsize_of(descr)))
        return td_fail(err, TD_ENOMEM, NULL, "out of memory writing an .npy");
    return TD_OK;
}

td_status td_npy_build(char **out, size_t *len, const char *descr, int ndim, const int64_t *shape,
                       const void *data, td_error *err)
{
    buf b = {0};
    td_status st = npy_into(&b, descr, ndim, shape, data, err);
    if (st) {
        free(b.p);
        return st;
    }
    *out = b.p;
    *len = b.len;
    return TD_OK;
}

struct td_npz_writer {
    buf zip;     /* local headers and data so far */
    buf central; /* the central directory's records */
    int n;
};

td_npz_writer *td_npz_writer_create(void) { return calloc(1, sizeof(td_npz_writer)); }

td_status td_npz_writer_add(td_npz_writer *w, const char *name, const char *descr, int ndim,
                            const int64_t *shape, const void *data, td_error *err)
{
    buf m = {0};
    char fname[300];
    size_t nl = (size_t)snprintf(fname, sizeof fname, "%s.npy", name);
    td_status st = npy_into(&m, descr, ndim, shape, data, err);
    if (st) goto cleanup;
    if (m.len > ZIP_MAX || w->zip.len + m.len + 30 + nl > ZIP_MAX) {
        st = td_fail(err, TD_EINVAL, name, "%s: over 4 GiB; too large for an .npz download", name);
        goto cleanup;
    }
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)m.p, (uInt)m.len);
    uint32_t off = (uint32_t)w->zip.len;
    /* local file header: version 2.0, no flags, stored, 1980-01-01 00:00 */
    int bad = put32(&w->zip, 0x04034b50) | put16(&w->zip, 20) | put16(&w->zip, 0) |
        put16(&w->zip, 0) | put16(&w->zip, 0) | put16(&w->zip, 0x21) | put32(&w->zip, crc) |
        put32(&w->zip, (uint32_t)m.len) | put32(&w->zip, (uint32_t)m.len) |
        put16(&w->zip, (unsigned)nl) | put16(&w->zip, 0) | put(&w->zip, fname, nl) |
        put(&w->zip, m.p, m.len);
    bad |= put32(&w->central, 0x02014b50) | put16(&w->central, 20) | put16(&w->central, 20) |
        put16(&w->central, 0) | put16(&w->central, 0) | put16(&w->central, 0) |
        put16(&w->central, 0x21) | put32(&w->central, crc) | put32(&w->central, (uint32_t)m.len) |
        put32(&w->central, (uint32_t)m.len) | put16(&w->central, (unsigned)nl) |
        put16(&w->central, 0) | put16(&w->central, 0) | put16(&w->central, 0) |
        put16(&w->central, 0) | put32(&w->central, 0) | put32(&w->central, off) |
        put(&w->central, fname, nl);
    if (bad) st = td_fail(err, TD_ENOMEM, NULL, "out of memory writing an .npz");
    w->n++;
cleanup:
    free(m.p);
    return st;
}

td_status td_npz_writer_finish(td_npz_writer *w, char **out, size_t *len, td_error *err)
{
    td_status st = TD_OK;
    uint32_t cd_off = (uint32_t)w->zip.len, cd_len = (uint32_t)w->central.len;
    if ((uint64_t)w->zip.len + w->central.len + 22 > ZIP_MAX) {
        st = td_fail(err, TD_EINVAL, NULL, "over 4 GiB; too large for an .npz download");
    } else if (put(&w->zip, w->central.p, w->central.len) || put32(&w->zip, 0x06054b50) ||
               put16(&w->zip, 0) || put16(&w->zip, 0) || put16(&w->zip, (unsigned)w->n) ||
               put16(&w->zip, (unsigned)w->n) || put32(&w->zip, cd_len) || put32(&w->zip, cd_off) ||
               put16(&w->zip, 0)) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory writing an .npz");
    } else {
        *out = w->zip.p;
        *len = w->zip.len;
        w->zip.p = NULL;
    }
    td_npz_writer_destroy(w);
    return st;
}

void td_npz_writer_destroy(td_npz_writer *w)
{
    if (!w) return;
    free(w->zip.p);
    free(w->central.p);
    free(w);
}
