/* fuzz_npy.c — libFuzzer target for the .npy / .npz dataset reader (codec/npy_dataset.h).
 *
 * The first byte's low bit picks .npz (1) or .npy (0); the rest is the body, read whole,
 * in 1-byte pieces and in pieces of sizes drawn from the input's hash: all three must
 * agree exactly (status, field, message, and every array), and a dataset must be
 * consistent (X of N x D finite values handed over in full, labels per row, pairs in
 * range). Arrays are capped at 1 MiB (max_bytes) so a header cannot ask for more. Run:
 * make fuzz. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/npy_dataset.h"
#include "fuzz.h"

typedef struct xsink {
    int64_t N, D;
    float *X;
    size_t n, cap;
} xsink;

static td_status x_begin(void *ctx, int64_t N, int64_t D, td_error *err)
{
    xsink *s = ctx;
    FUZZ_CHECK(s->X == NULL, "X begun twice");
    s->N = N, s->D = D;
    s->cap = (size_t)(N * D);
    s->X = malloc(s->cap * sizeof(float) + 1);
    return s->X ? TD_OK : td_fail(err, TD_ENOMEM, NULL, "out of memory");
}

static td_status x_rows(void *ctx, const void *v, size_t n, td_error *err)
{
    xsink *s = ctx;
    (void)err;
    FUZZ_CHECK(s->n + n <= s->cap, "more X values than N x D");
    memcpy(s->X + s->n, v, n * sizeof(float));
    s->n += n;
    return TD_OK;
}

static const td_npy_xsink XS = {x_begin, x_rows};

typedef struct result {
    td_status st;
    td_error err;
    xsink x;
    td_dataset ds;
    td_npy_dataset *d; /* owns ds's arrays */
} result;

static void run(result *r, int zip, const uint8_t *data, size_t size, int mode, uint64_t seed)
{
    memset(r, 0, sizeof *r);
    td_npy_limits lim = {100000, 10000, 1u << 20};
    r->d = td_npy_dataset_create(zip, &XS, &r->x, &lim);
    if (!r->d) abort();
    size_t i = 0;
    while (i < size) {
        size_t n = fuzz_piece(mode, &seed, size - i, 97);
        if (td_npy_dataset_feed(r->d, data + i, n)) break;
        i += n;
    }
    r->st = td_npy_dataset_finish(r->d, &r->ds, &r->err);
}

static void fini(result *r)
{
    td_npy_dataset_destroy(r->d);
    free(r->x.X);
}

static void same(const result *a, const result *b)
{
    FUZZ_CHECK(a->st == b->st, "status %d vs %d", a->st, b->st);
    if (a->st) {
        FUZZ_CHECK(!strcmp(a->err.field, b->err.field) && !strcmp(a->err.message, b->err.message),
                   "errors differ: %s | %s", a->err.message, b->err.message);
        return;
    }
    const td_dataset *x = &a->ds, *y = &b->ds;
    FUZZ_CHECK(x->N == y->N && x->D == y->D && x->y_cols == y->y_cols && x->Y_cols == y->Y_cols &&
                   x->P == y->P,
               "shapes differ");
    FUZZ_CHECK(!memcmp(a->x.X, b->x.X, a->x.n * 4), "X differs");
    FUZZ_CHECK(!x->y == !y->y && (!x->y || !memcmp(x->y, y->y, (size_t)(x->N * x->y_cols) * 4)),
               "y differs");
    FUZZ_CHECK(!x->Y == !y->Y && (!x->Y || !memcmp(x->Y, y->Y, (size_t)(x->N * x->Y_cols) * 4)),
               "Y differs");
    FUZZ_CHECK(!x->P ||
                   (!memcmp(x->pairs, y->pairs, (size_t)x->P * 8) &&
                    !memcmp(x->pair_labels, y->pair_labels, (size_t)x->P * 4)),
               "pairs differ");
}

static void consistent(const result *r)
{
    if (r->st) {
        FUZZ_CHECK_REFUSAL(r->st, r->err);
        return;
    }
    const td_dataset *d = &r->ds;
    FUZZ_CHECK(d->N >= 1 && d->D >= 1 && d->N == r->x.N && d->D == r->x.D, "bad shape");
    FUZZ_CHECK(r->x.n == (size_t)(d->N * d->D), "X incomplete: %zu values", r->x.n);
    for (size_t i = 0; i < r->x.n; i++)
        FUZZ_CHECK(isfinite(r->x.X[i]), "X[%zu] not finite", i);
    for (int64_t i = 0; d->Y && i < d->N * d->Y_cols; i++)
        FUZZ_CHECK(isfinite(d->Y[i]) && d->Y[i] >= 0, "Y bad");
    for (int64_t i = 0; i < d->P * 2; i++)
        FUZZ_CHECK(d->pairs[i] >= 0 && d->pairs[i] < d->N, "pair out of range");
    for (int64_t i = 0; i < d->P; i++)
        FUZZ_CHECK(d->pair_labels[i] == 0 || d->pair_labels[i] == 1, "pair label");
}

int td_fuzz_npy(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int zip = data[0] & 1;
    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ull;
    result r[3];
    for (int m = 0; m < 3; m++) {
        run(&r[m], zip, data + 1, size - 1, m, seed);
        consistent(&r[m]);
    }
    same(&r[0], &r[1]);
    same(&r[0], &r[2]);
    for (int m = 0; m < 3; m++)
        fini(&r[m]);
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_npy)
