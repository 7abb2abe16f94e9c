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

#include "codec/json_dataset.h"

/* Parses a JSON dataset body. On error *out is left empty (nothing to free). */
td_status td_json_dataset_parse(td_dataset_buf *out, const char *body, size_t len, td_error *err);
/* The same from an already parsed object; element paths get prefix ("data" gives
 * "data.X[2][1]"); prefix may be NULL or "". */
td_status td_json_dataset_from(td_dataset_buf *out, const cJSON *obj, const char *prefix,
                               td_error *err);

#endif
