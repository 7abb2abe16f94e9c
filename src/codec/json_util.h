/* json_util.h — the JSON edge's small tools: parsing a body, reading numbers and arrays
 * with element paths, checking keys, and a growing string buffer for big responses.
 *
 * cJSON trees exist only at the edge (src/codec, src/http): a body is parsed, converted
 * to plain arrays and structs with these readers, and deleted. Every reader names the
 * offending element in td_error.field as a JSON path ("X[12][3]",
 * "hyperparameters.betas[1]") and says the rule in the message.
 *
 * Malformed JSON (HTTP 400) versus invalid values (HTTP 422): TD_EMALFORMED (the message
 * starts with "malformed JSON at byte N") versus TD_EINVAL; td_resp_from_error (http.h)
 * maps both.
 *
 * Non-finite literals: JSON has no NaN or Infinity, but Python's json module writes them.
 * td_json_parse accepts NaN, Infinity, -Infinity (and nan, inf, -inf) outside strings so
 * that the number readers can reject them as values, naming the element (422), instead of
 * failing the whole body with a byte offset. They come through as marker strings that only
 * the readers below understand; code that reads numbers with these readers never sees
 * them. */
#ifndef TRAIND_CODEC_JSON_UTIL_H
#define TRAIND_CODEC_JSON_UTIL_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "traind/status.h"

/* ---- parsing ---------------------------------------------------------------------- */

/* Parses body[0..len) (it need not be NUL-terminated) into *out (caller deletes with
 * cJSON_Delete). On a syntax error, an empty body, or trailing data after the value:
 * TD_EMALFORMED, field "", message "malformed JSON at byte N: ...", *out NULL.
 * TD_ENOMEM when the tree cannot be allocated. */
td_status td_json_parse(cJSON **out, const char *body, size_t len, td_error *err);

/* ---- paths and keys --------------------------------------------------------------- */

#define TD_JSON_PATH_MAX 128 /* = sizeof(td_error.field) */

/* out = "prefix.key", or "key" when prefix is NULL or "". */
void td_json_path(char out[TD_JSON_PATH_MAX], const char *prefix, const char *key);

/* out = "base[i]" (j < 0) or "base[i][j]"; truncated to fit. */
void td_json_index_path(char out[TD_JSON_PATH_MAX], const char *base, int64_t i, int64_t j);

/* Names an engine error's field as the request does. The engine names its own fields: a
 * hyperparameter ("lr", "covariances_init[2]", "monotone.weight"), the data ("X[3][0]",
 * "y[7]", "Y", "pairs[0][1]", "pair_labels[4]", or "dataset" for all of it). This puts
 * "hyperparameters." before a hyperparameter and data_field ("dataset", or "data" for a
 * job's inline data) in place of the data's root; any other field ("model",
 * "validation", or one a converter already named in full) is left as it is. */
void td_json_scope_error(td_error *err, const char *data_field);

/* Checks that obj is an object whose keys are all in allowed (NULL-terminated) and none
 * is given twice. Unknown key: field "prefix.key", message
 * "unknown key \"x\"; did you mean \"X\"?" (the suggestion when one is close).
 * what names the object in messages ("dataset", "job body", ...). */
td_status td_json_check_keys(const cJSON *obj, const char *prefix, const char *what,
                             const char *const *allowed, td_error *err);

/* The entry of choices (NULL-terminated) closest to name by edit distance (case folded),
 * or NULL when none is close enough to suggest. */
const char *td_json_suggest(const char *name, const char *const *choices);


/* ---- value kinds ------------------------------------------------------------------ */

/* What a JSON value is, without a cJSON node: the streaming parser (stream_dataset.h)
 * describes values with it, so that both paths share the readers' rules and messages. */
typedef enum {
    TD_JV_NONE = 0, /* no value at all ("nothing") */
    TD_JV_NUMBER,
    TD_JV_STRING,
    TD_JV_NULL,
    TD_JV_TRUE,
    TD_JV_FALSE,
    TD_JV_ARRAY,
    TD_JV_OBJECT,
    TD_JV_NAN,
    TD_JV_PINF,
    TD_JV_NINF /* the non-finite literals (see above) */
} td_json_vkind;

/* The kind of v (the non-finite markers included); TD_JV_NONE for NULL. */
td_json_vkind td_json_kind_of(const cJSON *v);
/* For messages: "a number", "a string", "null", "true", "an array", "NaN", "nothing", ... */
const char *td_json_kind_name(td_json_vkind k);

/* ---- scalars ---------------------------------------------------------------------- */

/* What v is, for messages: "a string", "null", "true", "an array", "NaN", ... */
const char *td_json_kind(const cJSON *v);

/* A finite number (not a string, bool, null or NaN/Infinity literal). */
td_status td_json_get_double(double *out, const cJSON *v, const char *path, td_error *err);
/* An integral number (1.0 is fine, 1.5 is not) in [lo, hi]. */
td_status td_json_get_int(int64_t *out, const cJSON *v, int64_t lo, int64_t hi, const char *path,
                          td_error *err);
/* true or false only. */
td_status td_json_get_bool(int *out, const cJSON *v, const char *path, td_error *err);
/* An array of exactly 2 numbers into x: with integral, integers in [-2^53, 2^53]; with range,
 * each in [range[0], range[1]). hint follows "must be an array of 2 numbers" in the error. */
td_status td_json_get_pair(double x[2], const cJSON *v, int integral, const double *range,
                           const char *hint, const char *path, td_error *err);
/* A string; *out borrows the tree's storage. */
td_status td_json_get_string(const char **out, const cJSON *v, const char *path, td_error *err);
/* The "dataset" member of a body that names a stored dataset: copied into dataset (cap
 * bytes, NUL-terminated). */
td_status td_json_dataset_id(char *dataset, size_t cap, const cJSON *v, td_error *err);

/* ---- arrays ----------------------------------------------------------------------- */

/* Flags of the array readers. */
#define TD_JSON_NONNEG 1u   /* elements must be >= 0 */
#define TD_JSON_BOOLS 2u    /* int readers: true/false accepted as 1/0 */
#define TD_JSON_EMPTY_OK 4u /* an empty array (0 rows) is accepted; *out may be NULL */

/* An array of rows of finite float32 numbers, all rows the same non-zero length.
 * *out (rows, cols) row-major, malloc'd (caller frees). Errors name the element:
 * "X must be an array of rows", "X[1] has 3 values, expected 4 (like X[0])",
 * "X[2][1] must be a number, got a string". */
td_status td_json_matrix_f32(float **out, int64_t *rows, int64_t *cols, const cJSON *v,
                             unsigned flags, const char *path, td_error *err);
/* An array of finite float32 numbers. */
td_status td_json_vector_f32(float **out, int64_t *n, const cJSON *v, unsigned flags,
                             const char *path, td_error *err);

/* ---- element rules and messages, without cJSON ------------------------------------ */

/* The rule every element of an array reader obeys. */
typedef struct td_json_rule {
    int is_int;     /* 0: finite float32; 1: integral in [lo, hi] (int32) */
    unsigned flags; /* TD_JSON_NONNEG (float), TD_JSON_BOOLS (int) */
    int64_t lo, hi;
} td_json_rule;

/* The array readers under rule r, *out malloc'd with (int32 or float32) elements:
 * td_json_matrix_f32 and td_json_vector_f32 are these with a float rule. Dataset bodies
 * are read by the stream parser (stream_dataset.h); the integer readers of the tree
 * reader the tests check that parser against (tests/dataset_tree.h) are these too. */
td_status td_json_read_matrix(void **out, int64_t *rows, int64_t *cols, const cJSON *v,
                              const td_json_rule *r, const char *path, td_error *err);
td_status td_json_read_vector(void **out, int64_t *n, const cJSON *v, const td_json_rule *r,
                              const char *path, td_error *err);

/* The readers' fast check: a number v (as strtod reads it) that passes r (float: finite,
 * |v| within float32, >= 0 under NONNEG; int: integral in [lo, hi]). */
static inline int td_json_rule_ok(const td_json_rule *r, double v)
{
    if (!r->is_int)
        return v > -0x1.ffffffp+127 && v < 0x1.ffffffp+127 &&
            (!(r->flags & TD_JSON_NONNEG) || v >= 0);
    return v >= (double)r->lo && v <= (double)r->hi && v == (double)(int64_t)v;
}

/* The error for an element that fails r: kind k (for numbers v is the value strtod
 * reads; true/false count as 1/0 under TD_JSON_BOOLS), named path. Always an error
 * (TD_EINVAL), with the readers' words: "X[2][1] must be a number, got a string",
 * "X[0][0] is NaN; ...", "... is outside the float32 range ...", "y[3] = 1.5 is not an
 * integer", "... is outside [0, 9]", "Y[1][1] = -0.5 is negative; ...". */
td_status td_json_elem_fail(const td_json_rule *r, td_json_vkind k, double v, const char *path,
                            td_error *err);

/* Shape errors of the array readers, in their words. */
/* "X must be an array of rows (arrays of numbers), got a number" */
td_status td_json_fail_not_rows(const char *path, td_json_vkind k, td_error *err);
/* "X must be an array of rows (arrays of numbers); X[0] is a number" */
td_status td_json_fail_first_not_row(const char *path, td_json_vkind first, td_error *err);
/* "X[0] is empty; rows need at least one value" (field path) */
td_status td_json_fail_first_row_empty(const char *path, td_error *err);
/* "X must not be empty" */
td_status td_json_fail_empty(const char *path, td_error *err);
/* "y must be an array of numbers, got a string" (also a row: path "X[3]") */
td_status td_json_fail_not_numbers(const char *path, td_json_vkind k, td_error *err);
/* "X[1] has 3 values, expected 2 (like X[0]); rows must all have the same length"
 * (field "X[1]") */
td_status td_json_fail_ragged(const char *path, int64_t row, int64_t got, int64_t want,
                              td_error *err);
/* "name must be a string, got NaN" */
td_status td_json_fail_not_string(const char *path, td_json_vkind k, td_error *err);
/* "<what> must be a JSON object" (field prefix, "" when NULL) */
td_status td_json_fail_not_object(const char *prefix, const char *what, td_error *err);
/* One key of an object, as td_json_check_keys checks each in turn: unknown (not in
 * allowed) gives field "prefix.key" and a suggestion or the allowed list; repeated (the
 * caller has seen this known key before) gives "key \"X\" is given twice". TD_OK else. */
td_status td_json_check_key(const char *key, int repeated, const char *prefix, const char *what,
                            const char *const *allowed, td_error *err);

/* The malformed-JSON error (TD_EMALFORMED, 400):
 * "malformed JSON at byte N: <why> near \"<up to 16 bytes of near>\"", or at the end of
 * the input (near NULL): "malformed JSON at byte N: <why, default: unexpected end of
 * input>". why NULL means "syntax error". */
td_status td_json_fail_malformed(uint64_t off, const char *near, size_t near_len, const char *why,
                                 td_error *err);

/* ---- output: a growing string buffer ---------------------------------------------- */

/* Appends never fail visibly: an allocation failure sets oom, later appends are ignored,
 * and td_sbuf_finish returns NULL. Capacity doubles, so appending is amortised O(1). */
typedef struct td_sbuf {
    char *data;
    size_t len, cap;
    int oom;
} td_sbuf;

void td_sbuf_init(td_sbuf *b);
void td_sbuf_fini(td_sbuf *b);                  /* frees the data */
void td_sbuf_reserve(td_sbuf *b, size_t extra); /* room for extra more bytes */
void td_sbuf_put(td_sbuf *b, const char *s, size_t n);
void td_sbuf_puts(td_sbuf *b, const char *s);
void td_sbuf_printf(td_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A float32 in its shortest round-trip form: the fewest significant digits (%.6g to %.9g)
 * that read back as the same float (0.1f prints as 0.1; -0 prints as 0); null for
 * NaN/inf. */
void td_sbuf_float(td_sbuf *b, float v);
/* The text td_sbuf_float / td_sbuf_int write, into out (not NUL-terminated); returns
 * its length (at most 31 / 20 bytes). */
size_t td_fmt_float(char out[32], float v);
size_t td_fmt_int(char out[24], int64_t v);
/* A double in its shortest round-trip form, the first of %.15g, %.16g, %.17g that reads
 * back as v (1/3 prints as 0.3333333333333333); null for NaN/inf. */
void td_sbuf_double(td_sbuf *b, double v);
/* The text td_sbuf_double writes, into out (NUL-terminated); returns its length. */
size_t td_fmt_double(char out[32], double v);
/* A per-epoch record value of the named column: true/false for the boolean columns
 * (td_column_is_bool: gmm's "converged"), else as td_sbuf_double. */
void td_sbuf_value(td_sbuf *b, const char *column, double v);
int td_column_is_bool(const char *column);
/* cJSON_PrintUnformatted with every number in td_sbuf_double's shortest form (cJSON's own
 * printer falls back from %.15g straight to %.17g); NULL when out of memory. */
char *td_json_print(const cJSON *item);
/* td_json_print, then item is deleted (NULL gives NULL). */
char *td_json_take(cJSON *item);
/* Adds item to the object parent as key, or with key NULL to the array parent; item is
 * owned: deleted when it cannot be added. 0 when item is NULL or the add fails. */
int td_json_add(cJSON *parent, const char *key, cJSON *item);
void td_sbuf_int(td_sbuf *b, int64_t v);
/* A JSON string literal (quoted, escaped); NULL writes null. */
void td_sbuf_string(td_sbuf *b, const char *s);
/* "key": (with a leading comma unless first) */
void td_sbuf_key(td_sbuf *b, const char *key, int first);
/* [v0,v1,...] of n floats, ints; [[...],[...]] of a (rows, cols) matrix. */
void td_sbuf_floats(td_sbuf *b, const float *v, int64_t n);
void td_sbuf_ints(td_sbuf *b, const int32_t *v, int64_t n);
void td_sbuf_matrix_f32(td_sbuf *b, const float *v, int64_t rows, int64_t cols);
void td_sbuf_matrix_i32(td_sbuf *b, const int32_t *v, int64_t rows, int64_t cols);
/* A job's or sweep's error member: {"code": code, "message": message}, or null when code
 * is "". */
void td_sbuf_error(td_sbuf *b, const char *code, const char *message);
/* Hands back the NUL-terminated string (caller frees) and its length (len may be NULL);
 * NULL after an allocation failure (the buffer is freed either way). */
char *td_sbuf_finish(td_sbuf *b, size_t *len);

#endif
