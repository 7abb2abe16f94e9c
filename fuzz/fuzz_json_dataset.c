/* fuzz_json_dataset.c — libFuzzer target for the streaming JSON dataset parser.
 *
 * Each input is parsed by the stream whole, in 1-byte pieces and in pieces of sizes
 * drawn from the input's hash: all three must agree exactly (status, field, message,
 * arrays). It is also parsed by the tree reader (td_json_dataset_parse): where the tree
 * accepts the body or names a value error, the stream must say the same; where the tree
 * finds malformed JSON the stream must too. The documented exceptions (stream_dataset.h:
 * the stream is stricter about "01", "1.", "-.5", control bytes, "\u" escapes and NaN
 * keys, and takes numbers of more than 63 characters and a BOM before a body under 5
 * bytes) are recognised and skipped.
 * Run: make fuzz (FUZZ_SECONDS per target). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_tree.h"
#include "fuzz.h"
#include "codec/json_dataset.h"
#include "codec/json_util.h"
#include "codec/stream_dataset.h"

static td_status stream(td_dataset_buf *out, const uint8_t *data, size_t size, int mode,
                        uint64_t seed, td_error *err)
{
    td_dstream *s = td_dstream_json(size);
    if (!s) abort();
    size_t i = 0;
    while (i < size) {
        size_t n = fuzz_piece(mode, &seed, size - i, 97);
        td_dstream_feed(s, (const char *)data + i, n);
        i += n;
    }
    td_status st = td_dstream_finish(s, out, err);
    td_dstream_destroy(s);
    return st;
}

static int same_arrays(const td_dataset_buf *a, const td_dataset_buf *b)
{
    if (a->ds.N != b->ds.N || a->ds.D != b->ds.D || a->ds.y_cols != b->ds.y_cols ||
        a->ds.Y_cols != b->ds.Y_cols || a->ds.P != b->ds.P)
        return 0;
    size_t N = (size_t)a->ds.N;
    if (memcmp(a->X, b->X, N * (size_t)a->ds.D * 4)) return 0;
    if (!a->y != !b->y || (a->y && memcmp(a->y, b->y, N * (size_t)a->ds.y_cols * 4))) return 0;
    if (!a->Y != !b->Y || (a->Y && memcmp(a->Y, b->Y, N * (size_t)a->ds.Y_cols * 4))) return 0;
    if (!a->pairs != !b->pairs ||
        (a->pairs &&
         (memcmp(a->pairs, b->pairs, (size_t)a->ds.P * 8) ||
          memcmp(a->pair_labels, b->pair_labels, (size_t)a->ds.P * 4))))
        return 0;
    return !a->name == !b->name && (!a->name || strcmp(a->name, b->name) == 0);
}

static int same(td_status sa, const td_dataset_buf *a, const td_error *ea, td_status sb,
                const td_dataset_buf *b, const td_error *eb)
{
    if (sa != sb) return 0;
    if (sa == TD_OK) return same_arrays(a, b);
    return strcmp(ea->field, eb->field) == 0 && strcmp(ea->message, eb->message) == 0;
}

/* Where the tree (cJSON) is laxer than the stream, or refuses long numbers. */
static int lenient_corner(const uint8_t *d, size_t n, const td_error *stream_err)
{
    const char *m = stream_err->message;
    if (strstr(m, "invalid number") || strstr(m, "expected a key") ||
        strstr(m, "control character") || strstr(m, "\\u escape"))
        return 1;
    if (n < 5 && n >= 3 && memcmp(d, "\xEF\xBB\xBF", 3) == 0)
        return 1; /* cJSON skips a byte order mark only in a body of 5 bytes or more */
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < 0x20 && d[i] != '\t' && d[i] != '\n' && d[i] != '\r')
            return 1; /* cJSON takes any byte below 0x20 for whitespace */
        int numc = (d[i] >= '0' && d[i] <= '9') || d[i] == '.' || d[i] == 'e' || d[i] == 'E' ||
            d[i] == '+' || d[i] == '-';
        run = numc ? run + 1 : 0;
        if (run >= 60) return 1;
    }
    return 0;
}

int td_fuzz_json_dataset(const uint8_t *data, size_t size)
{
    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ull;
    td_dataset_buf a, b, c, t;
    td_error ea = {{0}, {0}}, eb = {{0}, {0}}, ec = {{0}, {0}}, et = {{0}, {0}};
    td_status sa = stream(&a, data, size, 0, seed, &ea);
    td_status sb = stream(&b, data, size, 1, seed, &eb);
    td_status sc = stream(&c, data, size, 2, seed, &ec);
    if (!same(sa, &a, &ea, sb, &b, &eb) || !same(sa, &a, &ea, sc, &c, &ec)) {
        fprintf(stderr, "pieces differ: %d [%s] %s / %d [%s] %s / %d [%s] %s\n", sa, ea.field,
                ea.message, sb, eb.field, eb.message, sc, ec.field, ec.message);
        abort();
    }
    td_status st = td_json_dataset_parse(&t, (const char *)data, size, &et);
    int sm = sa == TD_EMALFORMED, tm = st == TD_EMALFORMED;
    int ok;
    if (tm)
        ok = sm || lenient_corner(data, size, &ea);
    else if (sm)
        ok = lenient_corner(data, size, &ea);
    else
        ok = same(sa, &a, &ea, st, &t, &et);
    if (!ok) {
        fprintf(stderr, "stream %d [%s] %s\ntree   %d [%s] %s\n", sa, ea.field, ea.message, st,
                et.field, et.message);
        abort();
    }
    if (sa == TD_OK) {
        td_dataset_buf_free(&a);
        td_dataset_buf_free(&b);
        td_dataset_buf_free(&c);
    }
    if (st == TD_OK) td_dataset_buf_free(&t);
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_json_dataset)
