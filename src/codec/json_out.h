/* json_out.h — a JSON answer written as it is sent: text pieces and float32 / int32
 * arrays, formatted element by element when the server asks for bytes (td_stream_fn), so
 * that an answer of millions of numbers costs its arrays, never its text.
 *
 * The numbers are written exactly as td_sbuf_floats / _ints / _matrix_f32 / _matrix_i32
 * write them (json_util.h), so an answer is byte-identical to the one string built with
 * those. An array of n dims (1 to 3) is nested like them: [[a,b],[c,d]]; zero elements
 * give "[]".
 *
 * Appends never fail visibly: an allocation failure is remembered (td_jout_failed) and
 * later appends are ignored. Arrays handed over are owned (freed with the writer), also
 * when the append fails. One thread at a time. */
#ifndef TRAIND_CODEC_JSON_OUT_H
#define TRAIND_CODEC_JSON_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct td_jout td_jout;

td_jout *td_jout_new(void);                   /* NULL when out of memory */
void td_jout_text(td_jout *o, const char *s); /* copied */
void td_jout_double(td_jout *o, double v);    /* as td_sbuf_double */
/* v (owned from now on) of shape dims[0..ndim) */
void td_jout_f32(td_jout *o, float *v, int ndim, const int64_t *dims);
void td_jout_i32(td_jout *o, int32_t *v, int ndim, const int64_t *dims);
/* A float32 matrix (rows, cols) made as it is sent, a block of rows at a time:
 * fill(ctx, r0, n, out) writes rows [r0, r0 + n) into out (n * cols floats). ctx is freed
 * with free_ctx (may be NULL) when the writer is, also when the append fails. */
typedef void (*td_jout_fill_fn)(void *ctx, int64_t r0, int64_t n, float *out);
void td_jout_f32_rows(td_jout *o, int64_t rows, int64_t cols, td_jout_fill_fn fill, void *ctx,
                      void (*free_ctx)(void *));
int td_jout_failed(const td_jout *o);

/* A td_stream_fn (http.h) over the writer (ctx): up to max bytes, -1 at the end. */
ssize_t td_jout_read(void *ctx, uint64_t pos, char *buf, size_t max);
/* The writer holds bytes of the memory budget (util/budget.h, reserved by the caller):
 * they are released when it is freed, once the answer is sent. */
void td_jout_hold(td_jout *o, uint64_t bytes);
/* Frees the writer and its arrays; NULL is fine. A td_resp stream_free. */
void td_jout_free(void *ctx);
/* The whole answer as one string (*len bytes, NUL-terminated), consuming the writer's
 * output; NULL when out of memory. For tests, fuzzing and callers that want a string. */
char *td_jout_string(td_jout *o, size_t *len);

#endif
