/* npz_write.h — .npy arrays and .npz files (an uncompressed zip of them, as numpy.savez
 * writes) built in memory, for the downloads (datasets, models, predictions).
 *
 * Arrays are written in the host's byte order ('<' on the little-endian machines traind
 * runs on), C order, version 1.0 headers. Zip members are stored (method 0) with their
 * CRC-32; a member or the whole file over 4 GiB - 1 is refused (TD_EINVAL): no zip64.
 *
 * Thread-safety: a writer belongs to one thread. */
#ifndef TRAIND_CODEC_NPZ_WRITE_H
#define TRAIND_CODEC_NPZ_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "traind/status.h"

/* numpy type codes of the host's float32, int32, float64 ("<f4", ...). */
extern const char TD_NPY_F4[], TD_NPY_I4[], TD_NPY_F8[];

/* One .npy file: header + the count * itemsize bytes at data (count = prod(shape)).
 * *out malloc'd, *len bytes. */
td_status td_npy_build(char **out, size_t *len, const char *descr, int ndim, const int64_t *shape,
                       const void *data, td_error *err);

typedef struct td_npz_writer td_npz_writer;

/* NULL when out of memory. */
td_npz_writer *td_npz_writer_create(void);
/* Adds "<name>.npy" (as td_npy_build). */
td_status td_npz_writer_add(td_npz_writer *w, const char *name, const char *descr, int ndim,
                            const int64_t *shape, const void *data, td_error *err);
/* The zip: *out malloc'd (*len bytes); the writer is freed either way. */
td_status td_npz_writer_finish(td_npz_writer *w, char **out, size_t *len, td_error *err);
/* Frees an unfinished writer; NULL is fine. */
void td_npz_writer_destroy(td_npz_writer *w);

#endif
