/* num_parse.c — the slow path of the number converters (strtod) and td_parse_f32.
 * Contracts in num_parse.h and stream_dataset.h. */
#include "codec/num_parse.h"

#include <stdlib.h>
#include <string.h>

#include "codec/stream_dataset.h"

double td_strtod_n(const char *text, size_t len)
{
    char buf[TOK_MAX + 1];
    if (len > TOK_MAX) len = TOK_MAX;
    memcpy(buf, text, len);
    buf[len] = '\0';
    return strtod(buf, NULL);
}

int td_parse_f32(const char *text, size_t n, float *out, double *d)
{
    num nm;
    const char *stop;
    if (n == 0 || n > TOK_MAX || scan_number(text, text + n, 1, &nm, &stop) != SCAN_OK ||
        stop != text + n)
        return -1;
    double v;
    *out = num_f32(&nm, text, n, &v);
    if (d) *d = v;
    return 0;
}
