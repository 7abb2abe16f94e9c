/* npz_stream.h — a .npy or .npz body read as it arrives, array by array.
 *
 * A body is fed in pieces of any size (td_npz_reader_feed), then finished. Each array's
 * header is parsed (npy.h) and handed to the sink, then its data as whole elements in
 * file order, in pieces; memory is a few buffers of 64 KiB, never the body.
 *
 * .npz is a zip file as numpy.savez / savez_compressed write it: each member "<name>.npy"
 * stored (method 0) or deflated (method 8, inflated with zlib), zip64 sizes, and
 * members followed by a data descriptor (flag bit 3, what zipfile writes to a stream
 * it cannot seek). The zip's central directory sits at its end; a stream cannot wait
 * for it, so the members are read by their local headers in order and the reader stops
 * at the first central-directory record (the rest is read and ignored). Every member's
 * CRC-32 and sizes are checked against its header or descriptor; a member whose .npy
 * ends before or after its zip data is an error. Encrypted members, other compression
 * methods and names other than "<name>.npy" are refused; a name given twice too.
 *
 * Errors (TD_EINVAL) name the member ("X.npy: ...") or, before any, the body ("npz: ...").
 *
 * Thread-safety: a reader belongs to one thread at a time. */
#ifndef TRAIND_CODEC_NPZ_STREAM_H
#define TRAIND_CODEC_NPZ_STREAM_H

#include <stddef.h>

#include "codec/npy.h"
#include "traind/status.h"

/* Receives the arrays. name: the member name without ".npy" ("X" for a bare .npy body);
 * field: the name to put in errors ("X.npy"). A nonzero status stops the reader with
 * that error. */
typedef struct td_npy_sink {
    td_status (*begin)(void *ctx, const char *name, const char *field, const td_npy_header *h,
                       td_error *err);
    /* n whole elements (n * h->itemsize bytes, the file's byte order, unaligned) */
    td_status (*data)(void *ctx, const void *elems, size_t n, td_error *err);
    td_status (*end)(void *ctx, td_error *err);
} td_npy_sink;

typedef struct td_npz_reader td_npz_reader;

/* A reader of a zip (.npz) body when zip is 1, else of one .npy taken as "X". NULL when
 * out of memory. sink and ctx are borrowed. */
td_npz_reader *td_npz_reader_create(int zip, const td_npy_sink *sink, void *ctx);

/* The next len bytes. Returns 0 to go on, 1 once an error decided the outcome (further
 * bytes are ignored). */
int td_npz_reader_feed(td_npz_reader *r, const void *data, size_t len);

/* The body is complete: TD_OK when every array was whole, else the first error. */
td_status td_npz_reader_finish(td_npz_reader *r, td_error *err);

/* NULL is fine. */
void td_npz_reader_destroy(td_npz_reader *r);

#endif
