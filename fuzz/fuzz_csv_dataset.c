/* fuzz_csv_dataset.c — libFuzzer target for the streaming CSV dataset parser.
 *
 * The first byte picks the options (label_column first / last / none, header); the rest
 * is the body, parsed whole, in 1-byte pieces and in pieces of sizes drawn from the
 * input's hash: all must agree exactly, and a dataset must be consistent (N rows of D
 * finite features, a label per row when labelled). Run: make fuzz. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "codec/json_dataset.h"
#include "codec/stream_dataset.h"

static td_status stream(td_dataset_buf *out, const td_csv_opts *o, const uint8_t *data, size_t size,
                        int mode, uint64_t seed, td_error *err)
{
    td_dstream *s = td_dstream_csv(o, "fuzz", size);
    if (!s) abort();
    size_t i = 0;
    while (i < size) {
        size_t n = fuzz_piece(mode, &seed, size - i, 61);
        td_dstream_feed(s, (const char *)data + i, n);
        i += n;
    }
    td_status st = td_dstream_finish(s, out, err);
    td_dstream_destroy(s);
    return st;
}

static int same(td_status sa, const td_dataset_buf *a, const td_error *ea, td_status sb,
                const td_dataset_buf *b, const td_error *eb)
{
    if (sa != sb) return 0;
    if (sa != TD_OK)
        return strcmp(ea->field, eb->field) == 0 && strcmp(ea->message, eb->message) == 0;
    if (a->ds.N != b->ds.N || a->ds.D != b->ds.D || a->ds.y_cols != b->ds.y_cols) return 0;
    if (memcmp(a->X, b->X, (size_t)(a->ds.N * a->ds.D) * 4)) return 0;
    return !a->y == !b->y && (!a->y || memcmp(a->y, b->y, (size_t)a->ds.N * 4) == 0);
}

int td_fuzz_csv_dataset(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    td_csv_opts o = td_csv_opts_default();
    o.label_column = (td_csv_label)(data[0] % 3);
    o.header = (data[0] >> 2) & 1;
    data++, size--;
    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ull;
    td_dataset_buf a, b, c;
    td_error ea = {{0}, {0}}, eb = {{0}, {0}}, ec = {{0}, {0}};
    td_status sa = stream(&a, &o, data, size, 0, seed, &ea);
    td_status sb = stream(&b, &o, data, size, 1, seed, &eb);
    td_status sc = stream(&c, &o, data, size, 2, seed, &ec);
    if (!same(sa, &a, &ea, sb, &b, &eb) || !same(sa, &a, &ea, sc, &c, &ec)) {
        fprintf(stderr, "pieces differ: %d [%s] %s / %d [%s] %s / %d [%s] %s\n", sa, ea.field,
                ea.message, sb, eb.field, eb.message, sc, ec.field, ec.message);
        abort();
    }
    if (sa == TD_OK) {
        if (a.ds.N < 1 || a.ds.D < 1 || (o.label_column != TD_CSV_LABEL_NONE) != !!a.y) abort();
        for (int64_t k = 0; k < a.ds.N * a.ds.D; k++)
            if (!isfinite(a.X[k])) abort();
        td_dataset_buf_free(&a);
        td_dataset_buf_free(&b);
        td_dataset_buf_free(&c);
    } else if (sa != TD_EINVAL || !ea.message[0]) {
        abort();
    }
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_csv_dataset)
