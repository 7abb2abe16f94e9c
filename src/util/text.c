/* text.c — UTF-8 checks, escaping, bounded whole-file reads (see text.h). */
#include "util/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* bounds of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0; /* no overlongs */
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f; /* <= U+10FFFF */
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return len;
}

int td_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] == 0) return 0;
        size_t k = utf8_seq(u + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

char *td_escape_bytes(char *dst, size_t dstlen, const char *src, int controls)
{
    const unsigned char *u = (const unsigned char *)src;
    size_t n = strlen(src), o = 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (k && (!controls || (u[i] >= 0x20 && u[i] != 0x7f))) {
            if (o + k >= dstlen) break;
            memcpy(dst + o, u + i, k);
            o += k, i += k;
            continue;
        }
        if (o + 4 >= dstlen) break;
        snprintf(dst + o, 5, "\\x%02X", u[i]);
        o += 4, i++;
    }
    dst[o] = '\0';
    return dst;
}

td_status td_read_small_file(const char *path, size_t max, const char *what, char **out,
                             size_t *len, td_error *err)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return td_fail(err, TD_EIO, what, "cannot open %s %s: %s", what, path, strerror(errno));
    char *buf = malloc(max + 2);
    if (!buf) {
        fclose(f);
        return td_fail(err, TD_ENOMEM, what, "out of memory reading %s", path);
    }
    /* One byte past max tells "exactly max" from "longer": nothing is silently cut. */
    size_t n = fread(buf, 1, max + 1, f);
    int bad = ferror(f);
    fclose(f);
    td_status st = TD_OK;
    if (bad)
        st = td_fail(err, TD_EIO, what, "cannot read %s %s", what, path);
    else if (n > max)
        st = td_fail(err, TD_EINVAL, what, "%s %s is larger than %zu bytes", what, path, max);
    else if (memchr(buf, '\0', n))
        st = td_fail(err, TD_EINVAL, what, "%s %s contains a NUL byte", what, path);
    if (st != TD_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return TD_OK;
}
