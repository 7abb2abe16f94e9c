/* npz_stream.c — .npy / .npz bodies read as they arrive (contract in npz_stream.h).
 *
 * Two layers, each a small state machine over whatever bytes arrive:
 *  - the zip layer (zip mode only): a local file header, name and extra field; the
 *    member's data, stored (passed through) or deflated (inflated into a 64 KiB buffer);
 *    an optional data descriptor; then the next header, or the central directory (end);
 *  - the member layer: the .npy preamble and header dict, then the data, cut at element
 *    boundaries (a partial element waits in carry) before it goes to the sink. */
#include "codec/npz_stream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define OUTBUF ((size_t)1 << 16)
#define NAME_MAX_BYTES 255
#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_END 0x06054b50u
#define SIG_DESC 0x08074b50u

typedef enum { M_HDR, M_DATA, M_DONE } member_state;
typedef enum { Z_LFH, Z_NAME, Z_DATA, Z_DESC, Z_TAIL } zip_state;

struct td_npz_reader {
    const td_npy_sink *sink;
    void *ctx;
    int zip;
    td_status st;
    td_error err;

    /* member layer */
    member_state ms;
    char name[NAME_MAX_BYTES + 1];  /* without ".npy" */
    char field[NAME_MAX_BYTES + 8]; /* "<name>.npy" */
    uint8_t *hdr;                   /* the .npy header as it arrives */
    size_t hdr_len, hdr_need, hdr_cap;
    td_npy_header h;
    uint64_t data_left;  /* data bytes still to come */
    uint8_t carry[1024]; /* a partial element (itemsize <= 8 for numbers; a
                                        unicode element up to 256 characters) */
    size_t carry_n;
    uint64_t member_bytes; /* uncompressed bytes of the member so far */

    /* zip layer */
    zip_state zs;
    uint8_t fix[64]; /* the fixed part of a header or descriptor */
    size_t fix_len, fix_need;
    uint8_t *var; /* name + extra field */
    size_t var_len, var_need;
    unsigned flags, method;
    uint32_t crc_hdr, crc;
    uint64_t csize, usize; /* from the header (valid unless flags bit 3) */
    uint64_t ctaken;       /* compressed bytes of the member read so far */
    int zip64;
    int members;
    char **seen; /* member names so far */
    int nseen;
    z_stream z;
    int z_live;
    uint8_t *out; /* inflate output */
};

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static int failed(td_npz_reader *r) { return r->st != TD_OK; }

#define FAIL(r, ...) ((r)->st = td_fail(&(r)->err, TD_EINVAL, __VA_ARGS__))

/* ---- member layer ------------------------------------------------------------------- */

static void member_start(td_npz_reader *r, const char *name)
{
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->field, sizeof r->field, "%s.npy", name);
    r->ms = M_HDR;
    r->hdr_len = 0;
    r->hdr_need = 8;
    r->carry_n = 0;
    r->member_bytes = 0;
}

static int hdr_reserve(td_npz_reader *r, size_t n)
{
    if (n <= r->hdr_cap) return 0;
    uint8_t *p = realloc(r->hdr, n);
    if (!p) {
        r->st = td_fail(&r->err, TD_ENOMEM, NULL, "out of memory reading %s", r->field);
        return -1;
    }
    r->hdr = p;
    r->hdr_cap = n;
    return 0;
}

static void member_header_done(td_npz_reader *r)
{
    if ((r->st = td_npy_header_parse(&r->h, r->hdr, r->hdr_len, r->field, &r->err)) ||
        (r->st = r->sink->begin(r->ctx, r->name, r->field, &r->h, &r->err)))
        return;
    if (r->h.kind == 'U' && (size_t)r->h.itemsize > sizeof r->carry) { /* the sink took
                                                                              strings */
        FAIL(r, r->field, "%s: strings of more than %zu characters are not supported", r->field,
             sizeof r->carry / 4);
        return;
    }
    r->ms = M_DATA;
    r->data_left = r->h.data_bytes;
    if (r->data_left == 0) {
        r->ms = M_DONE;
        r->st = r->sink->end(r->ctx, &r->err);
    }
}

/* Feeds up to n bytes of the member's uncompressed content; returns how many it took
 * (fewer than n only once the .npy is complete, or on an error). */
static size_t member_feed(td_npz_reader *r, const uint8_t *p, size_t n)
{
    size_t used = 0;
    while (used < n && !failed(r)) {
        if (r->ms == M_HDR) {
            size_t take = r->hdr_need - r->hdr_len;
            if (take > n - used) take = n - used;
            if (hdr_reserve(r, r->hdr_need)) break;
            memcpy(r->hdr + r->hdr_len, p + used, take);
            r->hdr_len += take;
            used += take;
            if (r->hdr_len < r->hdr_need) break;
            size_t need = td_npy_header_need(r->hdr, r->hdr_len);
            if (need == 0) { /* bad magic / version / length: the parser names it */
                r->st = td_npy_header_parse(&r->h, r->hdr, r->hdr_len, r->field, &r->err);
                break;
            }
            if (need > r->hdr_len) {
                r->hdr_need = need;
                continue;
            }
            member_header_done(r);
        } else if (r->ms == M_DATA) {
            size_t take = n - used;
            if (take > r->data_left) take = (size_t)r->data_left;
            const uint8_t *q = p + used;
            size_t left = take, isz = (size_t)r->h.itemsize;
            if (r->carry_n) {
                size_t c = isz - r->carry_n < left ? isz - r->carry_n : left;
                memcpy(r->carry + r->carry_n, q, c);
                r->carry_n += c;
                q += c;
                left -= c;
                if (r->carry_n == isz) {
                    r->carry_n = 0;
                    if ((r->st = r->sink->data(r->ctx, r->carry, 1, &r->err))) break;
                }
            }
            size_t whole = left / isz;
            if (whole && (r->st = r->sink->data(r->ctx, q, whole, &r->err))) break;
            memcpy(r->carry, q + whole * isz, left - whole * isz);
            r->carry_n += left - whole * isz;
            used += take;
            r->data_left -= take;
            if (r->data_left == 0) {
                r->ms = M_DONE;
                r->st = r->sink->end(r->ctx, &r->err);
            }
        } else {
            break; /* M_DONE: the caller decides about the rest */
        }
    }
    r->member_bytes += used;
    return used;
}

/* The member's content is over: the .npy must be complete. */
static void member_close(td_npz_reader *r)
{
    if (failed(r) || r->ms == M_DONE) return;
    if (r->ms == M_HDR)
        FAIL(r, r->field, "%s: the .npy header is cut short", r->field);
    else
        FAIL(r, r->field, "%s: the data is cut short: %llu of %llu bytes", r->field,
             (unsigned long long)(r->h.data_bytes - r->data_left),
             (unsigned long long)r->h.data_bytes);
}

/* ---- zip layer ---------------------------------------------------------------------- */

static void zip_member_begin(td_npz_reader *r)
{
    const uint8_t *f = r->fix;
    uint16_t nlen = le16(f + 26), xlen = le16(f + 28);
    const uint8_t *name = r->var, *x = r->var + nlen, *xend = x + xlen;
    char nm[NAME_MAX_BYTES + 1];
    memcpy(nm, name, nlen);
    nm[nlen] = '\0';
    if (strlen(nm) != nlen || nlen < 5 || strcmp(nm + nlen - 4, ".npy") != 0) {
        FAIL(r, "npz",
             "npz: member '%s' is not a .npy file (numpy.savez names members "
             "'<name>.npy')",
             nm);
        return;
    }
    nm[nlen - 4] = '\0';
    for (int i = 0; i < r->nseen; i++)
        if (strcmp(r->seen[i], nm) == 0) {
            FAIL(r, "npz", "npz: member '%s.npy' is given twice", nm);
            return;
        }
    char **s = realloc(r->seen, sizeof *s * (size_t)(r->nseen + 1));
    if (s) r->seen = s;
    if (!s || !(s[r->nseen] = strdup(nm))) {
        r->st = td_fail(&r->err, TD_ENOMEM, NULL, "out of memory");
        return;
    }
    r->nseen++;
    r->flags = le16(f + 6);
    r->method = le16(f + 8);
    r->crc_hdr = le32(f + 14);
    r->csize = le32(f + 18);
    r->usize = le32(f + 22);
    r->zip64 = 0;
    while (xend - x >= 4) { /* zip64 sizes: usize then csize, those that overflowed */
        uint16_t id = le16(x), len = le16(x + 2);
        const uint8_t *d = x + 4;
        if (d + len > xend) break;
        if (id == 0x0001) {
            r->zip64 = 1;
            const uint8_t *e = d + len;
            if (r->usize == 0xffffffffu && e - d >= 8) {
                r->usize = le64(d);
                d += 8;
            }
            if (r->csize == 0xffffffffu && e - d >= 8) r->csize = le64(d);
        }
        x = d + len;
    }
    member_start(r, nm);
    if (r->flags & 1) {
        FAIL(r, r->field, "%s: encrypted zip members are not supported", r->field);
        return;
    }
    if (r->method != 0 && r->method != 8) {
        FAIL(r, r->field,
             "%s: zip compression method %u is not supported (stored or "
             "deflated, as numpy.savez and savez_compressed write)",
             r->field, r->method);
        return;
    }
    r->crc = (uint32_t)crc32(0L, Z_NULL, 0);
    r->ctaken = 0;
    if (r->method == 8) {
        if (r->z_live)
            inflateReset(&r->z);
        else if (inflateInit2(&r->z, -MAX_WBITS) == Z_OK)
            r->z_live = 1;
        else {
            r->st = td_fail(&r->err, TD_ENOMEM, NULL, "out of memory (zlib)");
            return;
        }
    }
    r->members++;
    r->zs = Z_DATA;
}

/* The member's data is over (and its descriptor read when it has one): check it. */
static void zip_member_end(td_npz_reader *r, uint32_t crc, uint64_t csize, uint64_t usize)
{
    member_close(r);
    if (failed(r)) return;
    if (crc != r->crc)
        FAIL(r, r->field, "%s: CRC-32 mismatch (the zip member is corrupt)", r->field);
    else if (usize != r->member_bytes || csize != r->ctaken)
        FAIL(r, r->field, "%s: the zip sizes do not match the member's data", r->field);
    r->zs = Z_LFH;
    r->fix_len = 0;
}

static void after_data(td_npz_reader *r)
{
    if (r->flags & 8) {
        r->zs = Z_DESC;
        r->fix_len = 0;
        r->fix_need = 4;
    } else {
        zip_member_end(r, r->crc_hdr, r->csize, r->usize);
    }
}

/* Member data bytes (compressed for method 8); returns how many were used. */
static size_t zip_data(td_npz_reader *r, const uint8_t *p, size_t n)
{
    if (r->method == 0) {
        size_t take = n;
        if (!(r->flags & 8) && take > r->csize - r->ctaken) take = (size_t)(r->csize - r->ctaken);
        size_t used = member_feed(r, p, take);
        r->crc = (uint32_t)crc32(r->crc, p, (uInt)used);
        r->ctaken += used;
        if (failed(r)) return used;
        if (!(r->flags & 8) && used < take)
            FAIL(r, r->field, "%s: trailing bytes after the array", r->field);
        else if (r->flags & 8 ? r->ms == M_DONE : r->ctaken == r->csize)
            after_data(r);
        return used;
    }
    size_t used = 0;
    while (!failed(r)) {
        size_t avail = n - used;
        if (!(r->flags & 8) && avail > r->csize - r->ctaken) avail = (size_t)(r->csize - r->ctaken);
        r->z.next_in = (Bytef *)(p + used);
        r->z.avail_in = (uInt)(avail > (1u << 30) ? 1u << 30 : avail);
        r->z.next_out = r->out;
        r->z.avail_out = (uInt)OUTBUF;
        uInt in0 = r->z.avail_in;
        int zr = inflate(&r->z, Z_NO_FLUSH);
        size_t in_used = in0 - r->z.avail_in, produced = OUTBUF - r->z.avail_out;
        used += in_used;
        r->ctaken += in_used;
        /* what came out before a corrupt spot goes first, as it would in smaller pieces */
        r->crc = (uint32_t)crc32(r->crc, r->out, (uInt)produced);
        if (member_feed(r, r->out, produced) < produced && !failed(r))
            FAIL(r, r->field, "%s: trailing bytes after the array", r->field);
        if (failed(r)) break;
        if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
            FAIL(r, r->field, "%s: the deflated data is corrupt (%s)", r->field,
                 r->z.msg ? r->z.msg : "zlib error");
            break;
        }
        if (zr == Z_STREAM_END) {
            if (!(r->flags & 8) && r->ctaken != r->csize)
                FAIL(r, r->field, "%s: the zip sizes do not match the member's data", r->field);
            else
                after_data(r);
            break;
        }
        if (!(r->flags & 8) && r->ctaken == r->csize && r->z.avail_out != 0) {
            FAIL(r, r->field, "%s: the deflated data is cut short", r->field);
            break;
        }
        if (in_used == 0 && produced == 0) break; /* needs more input */
    }
    return used;
}

/* Collects fix_need bytes into fix; returns bytes used. */
static size_t collect(uint8_t *dst, size_t *have, size_t need, const uint8_t *p, size_t n)
{
    size_t take = need - *have < n ? need - *have : n;
    memcpy(dst + *have, p, take);
    *have += take;
    return take;
}

static void zip_feed(td_npz_reader *r, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n && !failed(r)) {
        switch (r->zs) {
        case Z_LFH:
            r->fix_need = r->fix_len < 4 ? 4 : 30;
            off += collect(r->fix, &r->fix_len, r->fix_need, p + off, n - off);
            if (r->fix_len == 4) {
                uint32_t sig = le32(r->fix);
                if (sig == SIG_CENTRAL || sig == SIG_END) {
                    if (r->members == 0) FAIL(r, "npz", "npz: the zip file holds no arrays");
                    r->zs = Z_TAIL;
                } else if (sig != SIG_LOCAL) {
                    FAIL(r, "npz",
                         r->members ? "npz: a zip record is corrupt after member %d"
                                    : "npz: not a zip file (an .npz as numpy.savez writes it)",
                         r->members);
                }
            } else if (r->fix_len == 30) {
                size_t nlen = le16(r->fix + 26), xlen = le16(r->fix + 28);
                if (nlen > NAME_MAX_BYTES) {
                    FAIL(r, "npz", "npz: a member name is longer than %d bytes", NAME_MAX_BYTES);
                    break;
                }
                free(r->var);
                r->var = malloc(nlen + xlen + 1);
                if (!r->var) {
                    r->st = td_fail(&r->err, TD_ENOMEM, NULL, "out of memory");
                    break;
                }
                r->var_len = 0;
                r->var_need = nlen + xlen;
                r->zs = Z_NAME;
                if (r->var_need == 0) zip_member_begin(r);
            }
            break;
        case Z_NAME:
            off += collect(r->var, &r->var_len, r->var_need, p + off, n - off);
            if (r->var_len == r->var_need) zip_member_begin(r);
            break;
        case Z_DATA: off += zip_data(r, p + off, n - off); break;
        case Z_DESC: {
            off += collect(r->fix, &r->fix_len, r->fix_need, p + off, n - off);
            size_t body = r->zip64 ? 20 : 12;
            if (r->fix_len == 4 && r->fix_need == 4)
                r->fix_need = le32(r->fix) == SIG_DESC ? 4 + body : body;
            else if (r->fix_len == r->fix_need) {
                const uint8_t *d = r->fix + (r->fix_need == body ? 0 : 4);
                uint64_t cs = r->zip64 ? le64(d + 4) : le32(d + 4);
                uint64_t us = r->zip64 ? le64(d + 12) : le32(d + 8);
                zip_member_end(r, le32(d), cs, us);
            }
            break;
        }
        case Z_TAIL: off = n; break;
        }
    }
}

/* ---- the reader --------------------------------------------------------------------- */

td_npz_reader *td_npz_reader_create(int zip, const td_npy_sink *sink, void *ctx)
{
    td_npz_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->sink = sink;
    r->ctx = ctx;
    r->zip = zip;
    if (zip && !(r->out = malloc(OUTBUF))) {
        free(r);
        return NULL;
    }
    if (!zip) member_start(r, "X");
    return r;
}

int td_npz_reader_feed(td_npz_reader *r, const void *data, size_t len)
{
    if (failed(r)) return 1;
    if (r->zip) {
        zip_feed(r, data, len);
    } else if (member_feed(r, data, len) < len && !failed(r)) {
        FAIL(r, r->field, "%s: trailing bytes after the array", r->field);
    }
    return failed(r);
}

td_status td_npz_reader_finish(td_npz_reader *r, td_error *err)
{
    if (!failed(r)) {
        if (!r->zip)
            member_close(r);
        else if (r->zs == Z_LFH && r->fix_len == 0 && r->members > 0)
            FAIL(r, "npz", "npz: the zip file ends without its central directory");
        else if (r->zs == Z_DATA || r->zs == Z_DESC) {
            member_close(r);
            if (!failed(r)) FAIL(r, r->field, "%s: the zip member is cut short", r->field);
        } else if (r->zs != Z_TAIL)
            FAIL(r, "npz",
                 r->members ? "npz: the zip file is cut short"
                            : "npz: not a zip file (an .npz as numpy.savez writes it)");
    }
    if (failed(r) && err) *err = r->err;
    return r->st;
}

void td_npz_reader_destroy(td_npz_reader *r)
{
    if (!r) return;
    if (r->z_live) inflateEnd(&r->z);
    for (int i = 0; i < r->nseen; i++)
        free(r->seen[i]);
    free(r->seen);
    free(r->var);
    free(r->hdr);
    free(r->out);
    free(r);
}
