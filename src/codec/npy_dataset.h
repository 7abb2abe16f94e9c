/* npy_dataset.h — a dataset from an .npy or .npz body, read as it arrives.
 *
 * .npy (application/x-npy): one 2-D array, X, unlabelled.
 * .npz (application/zip, numpy.savez / savez_compressed): members X.npy (required) and
 * optionally y.npy (N) or (N, G), Y.npy (N, K), pairs.npy (P, 2), pair_labels.npy (P),
 * in any order; the rules are those of the JSON body (json_dataset.h):
 *  - X: float32/64, int8-64, uint8-64 or bool, converted to float32 as numpy's
 *    astype(np.float32) does; every value finite (float64 beyond the float32 range is
 *    refused, as in JSON);
 *  - y, pairs: integral values in int32 range (any integer, bool or float dtype);
 *    pair_labels 0 / 1; Y finite and >= 0; pairs in [0, N - 1];
 *  - strings: y may be a 1-D unicode array (class names); other string arrays are refused.
 * C and Fortran order, either byte order. Errors (TD_EINVAL, 422) name the member for a
 * header ("y.npy: ...") and the element for a value ("X[3][1]", "y[7]").
 *
 * Memory: X goes to the caller's sink row by row as it arrives (converted in 64 KiB
 * pieces); only a Fortran-order X is gathered whole (its float32 array) to be emitted in
 * row order at its end. The other arrays are held (they are N or P values each).
 *
 * Thread-safety: a reader belongs to one thread at a time. */
#ifndef TRAIND_CODEC_NPY_DATASET_H
#define TRAIND_CODEC_NPY_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "traind/dataset.h"
#include "traind/status.h"

/* Where X goes: begin once its shape is known (after the limits were checked), then
 * N * D float32 values in row-major order over any number of rows calls (host byte
 * order; v may be unaligned: a native float32 body is passed through uncopied). */
typedef struct td_npy_xsink {
    td_status (*begin)(void *ctx, int64_t N, int64_t D, td_error *err);
    td_status (*rows)(void *ctx, const void *v, size_t n, td_error *err);
} td_npy_xsink;

typedef struct td_npy_limits {
    int64_t max_rows, max_features; /* <= 0: none */
    uint64_t max_bytes;             /* all arrays as float32 / int32 together; 0: none.
                                        (the body limit: a deflated .npz cannot unpack
                                        into more than an .npy body could bring) */
} td_npy_limits;

typedef struct td_npy_dataset td_npy_dataset;

/* zip 1: an .npz body, 0: one .npy. xs, ctx, lim borrowed. NULL when out of memory. */
td_npy_dataset *td_npy_dataset_create(int zip, const td_npy_xsink *xs, void *ctx,
                                      const td_npy_limits *lim);
/* The next len bytes; 0 to go on, 1 once an error decided (the rest may be dropped). */
int td_npy_dataset_feed(td_npy_dataset *d, const void *data, size_t len);
/* The body is in: checks across the arrays. On success *out has N, D and the held
 * arrays (owned by d: valid until td_npy_dataset_destroy; out->X is NULL, the sink has
 * X). */
td_status td_npy_dataset_finish(td_npy_dataset *d, td_dataset *out, td_error *err);
/* NULL is fine. */
void td_npy_dataset_destroy(td_npy_dataset *d);
/* After a successful finish: the class names when y was a unicode array ('<U', 1-D; the
 * names sorted by code point like numpy.unique, y holding indices into them), handed
 * over (free with td_strings_free, util/names.h); NULL and 0 otherwise. */
void td_npy_dataset_classes(td_npy_dataset *d, char ***classes, int64_t *n);

#endif
