/* stream_dataset.h — dataset bodies (JSON and text/csv) parsed as they arrive.
 *
 * A body is fed in pieces of any size, in order (td_dstream_feed), and then finished
 * (td_dstream_finish). Numbers are converted as they stream past and written straight
 * into their final float32 / int32 arrays (grown amortised, pre-sized from the body size
 * once the first row shows how many bytes a row takes). Memory is those arrays plus a
 * few KiB: never the body, never a node per number. Nothing depends on where the pieces
 * are cut: a boundary may fall inside a number, a key, a literal, an escape or a CRLF.
 *
 * What is accepted and every error (td_error field and message, and which error wins
 * when a body has several) is exactly what the cJSON tree reader gives for the whole
 * body (tests/dataset_tree.h: the reference the stream is tested and fuzzed against),
 * with the messages written by the same helpers (json_util.h, td_dataset_parts_finish).
 * JSON syntax is RFC 8259 plus the NaN / Infinity literals of json_util.h (so that they
 * are named as values, 422); the tree parser's cJSON is laxer in a few corners that are not JSON
 * (leading zeros "01", "1." and "-.5", raw control characters inside strings, bytes
 * below 0x20 as whitespace, "\u" with bad hex digits read as U+0000, numbers of more
 * than 63 characters refused, a NaN literal as an object key): those are malformed here
 * (400), with a byte offset that points at the offending byte. Malformed JSON is the
 * "malformed JSON at byte N: ..." error of json_util.h (TD_EMALFORMED).
 *
 * Numbers. JSON numbers (and CSV fields) become float32 exactly as (float)strtod(text)
 * does, i.e. rounded to the nearest double first and then to float32 — the reading of
 * Python's float32(float(text)) and numpy's np.array(json.loads(body), np.float32),
 * which is what the peers do. (A direct rounding to float32 differs from it only for a
 * decimal within half a double ulp of a float32 midpoint.) The common forms are
 * converted without strtod: an exact path (up to 2^53 with a power of ten up to 1e22:
 * one correctly rounded operation, Clinger's fast path) and, for 17-19 digit mantissas
 * such as Python's repr, a path with at most a few double ulps of error whose float32
 * rounding is used only when the double lies more than 8 ulps away from a float32
 * midpoint; anything else (denormal results, |x| >= 2^127, exponents past 1e+-44, more
 * than 19 significant digits near a midpoint) goes through strtod. Labels and indices
 * are read as doubles with the same exactness (integral, int32 range), as before.
 *
 * Errors of values (422) are decided only once the whole body is in, because a later
 * syntax error (400) or a key error wins over them, as in the tree reader; a JSON
 * stream therefore reads to the end. A CSV error, a malformed JSON body or an
 * allocation failure decides at once: td_dstream_feed then returns 1 and the caller may
 * drop the rest of the body.
 *
 * Thread-safety: a td_dstream belongs to one thread at a time; distinct ones are
 * independent. */
#ifndef TRAIND_CODEC_STREAM_DATASET_H
#define TRAIND_CODEC_STREAM_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "codec/json_dataset.h"
#include "traind/status.h"

typedef struct td_dstream td_dstream;

/* A parser for a JSON dataset body. size_hint: the body's length when known
 * (Content-Length), else 0; used only to pre-size the arrays. NULL when out of memory. */
td_dstream *td_dstream_json(uint64_t size_hint);

/* A parser for a text/csv body with options o (NULL: defaults) and a dataset name
 * (NULL: none; copied, checked by td_dstream_finish like td_csv_dataset_parse does). */
td_dstream *td_dstream_csv(const td_csv_opts *o, const char *name, uint64_t size_hint);

/* Feeds the next len bytes of the body. Returns 0 to go on, 1 when the outcome is
 * decided (see above; further bytes are ignored). */
int td_dstream_feed(td_dstream *s, const char *data, size_t len);

/* Ends the body and hands over the dataset (*out owns the arrays; free it with
 * td_dataset_buf_free) or the error. Call it once; *out is empty on error. */
td_status td_dstream_finish(td_dstream *s, td_dataset_buf *out, td_error *err);

/* Frees the parser and anything it still holds; NULL is fine. */
void td_dstream_destroy(td_dstream *s);

/* Total bytes fed so far. */
uint64_t td_dstream_bytes(const td_dstream *s);

/* ---- object bodies (POST /v1/loss, /predict, the job body) ------------------------ */

/* An object body whose big arrays stream too. The root object's members are read by
 * key:
 *  - array_keys: the member is a numeric array, read as it streams into one float32
 *    array (a td_jarray): the rules (float or integer, ranges, shape) are applied only
 *    when the caller reads it (td_jarray_*), so they may depend on other members (a loss
 *    name that comes after its arrays), with the errors the tree readers of json_util.h
 *    give for the same value.
 *  - dataset_key (may be NULL): an inline dataset, streamed through a nested dataset
 *    parser whose fields are named "<dataset_key>.X[i][j]" and so on.
 *  - small_keys: kept as JSON text (at most TD_OBJECT_SMALL_MAX bytes for them all) and
 *    parsed with cJSON at the end.
 *  - any other key: only its name is kept (with a 0 for its value), so that key checks
 *    on the cJSON object see every key in order.
 * The key lists must outlive the parser. Memory: the arrays (4 bytes a number, the
 * nested dataset's as td_dstream_json's), the small members' text and tree, a few KiB.
 * td_dstream_feed and td_dstream_destroy work as for datasets. */
#define TD_OBJECT_SMALL_MAX (8u << 20)

td_dstream *td_dstream_object(const char *const *array_keys, const char *const *small_keys,
                              const char *dataset_key, uint64_t size_hint);

/* Ends the body. On success *members is the cJSON object of the small members, in body
 * order, with a stand-in (0, or null when the value was null) for the array, dataset and
 * unknown members; when the root is not an object, a cJSON array stands for it (only
 * cJSON_IsObject matters). Owned by s. Malformed JSON is json_util's 400 error. */
td_status td_dstream_object_finish(td_dstream *s, const cJSON **members, td_error *err);

/* A numeric array member: read by one of the td_jarray_* functions, once. */
typedef struct td_jarray td_jarray;

/* The array member key after td_dstream_object_finish (owned by s), or NULL when it was
 * absent or null (or given a second time: the first counts). */
td_jarray *td_dstream_array(td_dstream *s, const char *key);

/* The inline dataset (dataset_key) after td_dstream_object_finish, read with the rules
 * of td_dstream_json, its fields named "<dataset_key>.X[i][j]" and so on (as the tree
 * reader's td_json_dataset_from with prefix dataset_key); call it only when the member
 * was given and not null. Once. */
td_status td_dstream_dataset(td_dstream *s, td_dataset_buf *out, td_error *err);

/* 1 when a is an array whose first element is an array (the tree test
 * cJSON_IsArray(v) && cJSON_IsArray(v->child)). */
int td_jarray_rows(const td_jarray *a);
/* As td_json_matrix_f32 / _vector_f32 / _vector_i32 / _labels_i32 on the same value:
 * the same result and the same first error. *out is malloc'd (the array's storage,
 * handed over). */
td_status td_jarray_matrix_f32(float **out, int64_t *rows, int64_t *cols, td_jarray *a,
                               unsigned flags, const char *path, td_error *err);
td_status td_jarray_vector_f32(float **out, int64_t *n, td_jarray *a, unsigned flags,
                               const char *path, td_error *err);
td_status td_jarray_vector_i32(int32_t **out, int64_t *n, td_jarray *a, int64_t lo, int64_t hi,
                               unsigned flags, const char *path, td_error *err);
td_status td_jarray_labels_i32(int32_t **out, int64_t *rows, int64_t *cols, int *grouped,
                               td_jarray *a, const char *path, td_error *err);

/* ---- numbers (exposed for tests and benchmarks) ------------------------------------ */

/* Converts the JSON number text[0..n) (the whole of it must be one number: RFC 8259
 * grammar) to float32 as (float)strtod would, and gives the double *d it stands for
 * (may be NULL; exact whenever the float path needed it, see above). Returns 0, or -1
 * when text is not a JSON number. */
int td_parse_f32(const char *text, size_t n, float *out, double *d);

#endif
