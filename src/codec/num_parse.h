/* num_parse.h — JSON numbers to float32 / double, shared by the streaming parsers
 * (json_stream.c, csv_stream.c, array_build.c) and td_parse_f32 (num_parse.c). How a
 * number is read, and why, is in stream_dataset.h ("Numbers"). The converters are inline:
 * they run once per number of a body. Not for other modules. */
#ifndef TRAIND_CODEC_NUM_PARSE_H
#define TRAIND_CODEC_NUM_PARSE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TOK_MAX 4096 /* bytes of a number or literal */

/* strtod of text[0..len) (not NUL-terminated); len <= TOK_MAX. */
double td_strtod_n(const char *text, size_t len);

/* A decimal number: value = (neg ? -1 : 1) * m * 10^e10, up to the dropped digits. */
typedef struct num {
    uint64_t m; /* the first 19 significant digits */
    int64_t e10;
    int neg;
    int truncated; /* a nonzero digit past the 19th was dropped */
    int plain;     /* digits only: no fraction, no exponent */
} num;

enum { SCAN_OK, SCAN_MORE, SCAN_BAD };

static inline int is_digit(unsigned char c) { return (unsigned)(c - '0') < 10u; }

/* Scans a JSON number (RFC 8259 grammar) at p. SCAN_OK: *stop is the first byte after
 * it. SCAN_MORE: the piece ended where the number may go on (only when !final; with
 * final, end is the end of the text). SCAN_BAD: *stop is the first byte that breaks the
 * grammar. */
static inline int scan_number(const char *p, const char *end, int final, num *n, const char **stop)
{
    const char *q = p;
    uint64_t m = 0;
    int nd = 0, trunc = 0;
    int64_t e10 = 0;
    n->neg = 0;
    n->plain = 1;
    if (q < end && *q == '-') {
        n->neg = 1;
        q++;
    }
    if (q == end) goto more;
    if (*q == '0') {
        q++;
    } else if (is_digit((unsigned char)*q)) {
        /* up to 19 digits go straight in: m < 10^19 < 2^64 */
        const char *lim = end - q > 19 ? q + 19 : end;
        while (q < lim && is_digit((unsigned char)*q))
            m = m * 10 + (unsigned)(*q++ - '0');
        nd = (int)(q - p - n->neg);
        while (q < end && is_digit((unsigned char)*q)) {
            trunc |= *q != '0';
            e10++;
            q++;
        }
    } else {
        *stop = q;
        return SCAN_BAD;
    }
    if (q == end) goto more_or_done;
    if (*q == '.') {
        n->plain = 0;
        q++;
        if (q == end) goto more_or_bad;
        if (!is_digit((unsigned char)*q)) {
            *stop = q;
            return SCAN_BAD;
        }
        if (m == 0) { /* leading zeros of a fraction are not significant */
            const char *z = q;
            while (q < end && *q == '0')
                q++;
            e10 -= q - z;
        }
        while (q < end && is_digit((unsigned char)*q)) {
            if (nd < 19) {
                m = m * 10 + (unsigned)(*q - '0');
                nd++;
                e10--;
            } else {
                trunc |= *q != '0';
            }
            q++;
        }
        if (q == end) goto more_or_done;
    }
    if (*q == 'e' || *q == 'E') {
        n->plain = 0;
        q++;
        if (q == end) goto more_or_bad;
        int eneg = 0;
        if (*q == '+' || *q == '-') {
            eneg = *q == '-';
            q++;
            if (q == end) goto more_or_bad;
        }
        if (!is_digit((unsigned char)*q)) {
            *stop = q;
            return SCAN_BAD;
        }
        int64_t ex = 0;
        while (q < end && is_digit((unsigned char)*q)) {
            if (ex < 100000000) ex = ex * 10 + (*q - '0');
            q++;
        }
        e10 += eneg ? -ex : ex;
        if (q == end) goto more_or_done;
    }
done:
    n->m = m;
    n->e10 = e10;
    n->truncated = trunc;
    *stop = q;
    return SCAN_OK;
more_or_done:
    if (!final) goto more;
    goto done;
more_or_bad:
    if (!final) goto more;
    *stop = q;
    return SCAN_BAD;
more:
    *stop = end;
    return SCAN_MORE;
}

static const double P10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* The correctly rounded double when one exact operation gives it (Clinger's fast path,
 * or an integer of at most 19 digits): 1, else 0. */
static inline int num_exact(const num *n, double *d)
{
    if (n->truncated) return 0;
    double v;
    if (n->m == 0) {
        v = 0.0;
    } else if (n->e10 == 0) {
        v = (double)n->m; /* one correctly rounded conversion */
    } else if (n->m <= (1ull << 53) && n->e10 > 0 && n->e10 <= 22) {
        v = (double)n->m * P10[n->e10];
    } else if (n->m <= (1ull << 53) && n->e10 < 0 && n->e10 >= -22) {
        v = (double)n->m / P10[-n->e10];
    } else {
        return 0;
    }
    *d = n->neg ? -v : v;
    return 1;
}

/* A double within 5 ulps of the value (3 roundings at most, plus the dropped digits
 * under 1e-18 relative), or 0 when the exponent is out of reach. */
static inline int num_approx(const num *n, double *d)
{
    int64_t e = n->e10;
    if (e < -44 || e > 44) return 0;
    double v = (double)n->m;
    if (e > 22)
        v = v * P10[e - 22] * 1e22;
    else if (e >= 0)
        v *= P10[e];
    else if (e >= -22)
        v /= P10[-e];
    else
        v = v / 1e22 / P10[-e - 22];
    *d = n->neg ? -v : v;
    return 1;
}

/* float32 of a scanned number as (float)strtod; *d the double (exact unless the float
 * is safely decided from an approximation, then within a few ulps with |d| < 2^127). */
static inline float num_f32(const num *n, const char *text, size_t len, double *d)
{
    double v;
    if (num_exact(n, &v)) {
        *d = v;
        return (float)v;
    }
    if (num_approx(n, &v)) {
        double a = fabs(v);
        if (a >= 0x1p-125 && a < 0x1p127) {
            uint64_t bits;
            memcpy(&bits, &v, sizeof bits);
            uint32_t low = (uint32_t)(bits & 0x1fffffffu); /* the bits float32 drops */
            if (low > 0x10000000u + 8 || low < 0x10000000u - 8) {
                *d = v;
                return (float)v;
            }
        }
    }
    v = td_strtod_n(text, len);
    *d = v;
    return (float)v;
}

/* The double strtod reads (exactly). */
static inline double num_f64(const num *n, const char *text, size_t len)
{
    double v;
    if (num_exact(n, &v)) return v;
    return td_strtod_n(text, len);
}

#endif
