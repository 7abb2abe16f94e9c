/* dataset_tree.h — the cJSON tree reader of JSON dataset bodies: the body parsed whole
 * with cJSON (td_json_parse), then each member read with json_util.h's tree readers.
 * Production reads every dataset body, inline data included, with the streaming parser
 * (codec/stream_dataset.h); this reader stays here as the reference the stream is
 * checked against (test_stream.c, fuzz/fuzz_json_dataset.c, fuzz/fuzz_job.c): both
 * must give the same arrays and the same first error (field and message). The stream
 * is stricter in a few corners that are not JSON (stream_dataset.h lists them). */
#ifndef TRAIND_TESTS_DATASET_TREE_H
#define TRAIND_TESTS_DATASET_TREE_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/json_dataset.h"

/* Parses a JSON dataset body. On error *out is left empty (nothing to free). */
td_status td_json_dataset_parse(td_dataset_buf *out, const char *body, size_t len, td_error *err);
/* The same from an already parsed object; element paths get prefix ("data" gives
 * "data.X[2][1]"); prefix may be NULL or "". */
td_status td_json_dataset_from(td_dataset_buf *out, const cJSON *obj, const char *prefix,
                               td_error *err);

/* The tree reader's integer arrays (json_util.h's td_json_read_vector / _matrix under an
 * int32 rule, elements in [lo, hi]; the same shape rules and errors as the float
 * readers), the reference of the stream's td_jarray_*_i32 (test_bodystream.c,
 * fuzz/fuzz_loss.c). */
td_status td_json_vector_i32(int32_t **out, int64_t *n, const cJSON *v, int64_t lo, int64_t hi,
                             unsigned flags, const char *path, td_error *err);
td_status td_json_matrix_i32(int32_t **out, int64_t *rows, int64_t *cols, const cJSON *v,
                             int64_t lo, int64_t hi, unsigned flags, const char *path,
                             td_error *err);
/* Class-index targets: a vector (N) -> *cols = 1, *grouped = 0; or a matrix (N, G) ->
 * *cols = G, *grouped = 1. The shape is decided by the first element. */
td_status td_json_labels_i32(int32_t **out, int64_t *rows, int64_t *cols, int *grouped,
                             const cJSON *v, const char *path, td_error *err);

#endif
