/* npy.h — numpy's .npy array format: the header, and values to float32 / int32.
 *
 * File layout (numpy.lib.format, versions 1.0, 2.0 and 3.0):
 *   off 0  magic      6 bytes  "\x93NUMPY"
 *   off 6  version    2 bytes  major, minor (1.0: header length u16; 2.0/3.0: u32)
 *   off 8  hlen       u16 LE (1.0) | u32 LE (2.0, 3.0)
 *   then   header     hlen bytes: a Python dict literal, ASCII (3.0: UTF-8), padded with
 *                     spaces and ended by '\n':
 *                     {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
 *   then   data       prod(shape) * itemsize bytes, C order (row-major) or, when
 *                     fortran_order is True, Fortran order (column-major)
 * Accepted dtypes (descr): '<' / '>' / '|' / '=' byte order, then b1 (bool), i1 i2 i4 i8,
 * u1 u2 u4 u8, f4 f8; '|O' (object arrays), structured dtypes, and strings are refused
 * with an error that names them. Unicode '<U<n>' is recognised (kind 'U') so that labels
 * can be refused with the right words.
 *
 * Conversions follow numpy's astype: to float32, integers round to nearest even, float64
 * rounds to nearest (beyond the float32 range it becomes +-inf; the dataset reader then
 * refuses it as not finite), bool is 0 / 1. To int32 (labels, pair indices), values must
 * be integral and in int32 range (checked, never wrapped).
 *
 * Thread-safety: no state. */
#ifndef TRAIND_CODEC_NPY_H
#define TRAIND_CODEC_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "traind/status.h"

#define TD_NPY_MAX_DIMS 8
#define TD_NPY_MAX_HEADER 65536 /* header bytes (numpy itself writes < 4 KiB) */

typedef struct td_npy_header {
    char descr[32]; /* as given, e.g. "<f8" */
    char kind;      /* 'b' bool, 'i' signed, 'u' unsigned, 'f' float,
                                        'U' unicode (refused by the readers) */
    int itemsize;   /* bytes per element */
    int big_endian; /* data byte order (1-byte items: 0) */
    int fortran_order;
    int ndim;
    int64_t shape[TD_NPY_MAX_DIMS];
    int64_t count;       /* prod(shape) (1 for ndim 0) */
    uint64_t data_bytes; /* count * itemsize */
    size_t header_bytes; /* magic + version + length + dict: where data starts */
} td_npy_header;

/* How many bytes of a .npy file (starting at its magic) buf must hold before the next
 * question can be answered: 8 (magic and version), then 10 or 12 (the header length),
 * then the whole header; never more than the file's header, so a reader that fills buf
 * up to the answer and asks again never takes data bytes. 0 when the magic, version or
 * length is bad (td_npy_header_parse then names the error). */
size_t td_npy_header_need(const uint8_t *buf, size_t len);

/* Parses the header at buf[0..len) (len >= td_npy_header_need). Strict: the three keys
 * exactly once, a supported descr, non-negative dimensions whose product and byte size
 * fit in 63 bits. Errors (TD_EINVAL) name field, e.g. "X.npy: dtype '|O' (object arrays)
 * is not supported". */
td_status td_npy_header_parse(td_npy_header *h, const uint8_t *buf, size_t len, const char *field,
                              td_error *err);

/* Converts n elements at src (h's dtype and byte order; src needs no alignment) to
 * float32, OVERWRITING dst[0..n). Kind 'U' is not convertible (caller refuses it). */
void td_npy_to_f32(float *dst, const void *src, size_t n, const td_npy_header *h);

/* Converts n elements to int32, OVERWRITING dst[0..n). Returns n, or the index of the
 * first element that is not integral or lies outside [INT32_MIN, INT32_MAX] (dst up to it
 * is written; *bad gets its value as a double). */
size_t td_npy_to_i32(int32_t *dst, const void *src, size_t n, const td_npy_header *h, double *bad);

/* Writes a version 1.0 header for a little-endian C-order array (descr "<f4", "<i4",
 * "<f8", ...) into out (at least 128 + 24 * ndim bytes); returns its length, a multiple of
 * 64 as numpy writes it. */
size_t td_npy_header_write(char *out, const char *descr, int ndim, const int64_t *shape);

#endif
