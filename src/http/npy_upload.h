/* npy_upload.h — POST /v1/datasets with an .npy (application/x-npy) or .npz
 * (application/zip) body: the body goes through the codec (codec/npy_dataset.h) as it
 * arrives and X straight into its data file (store/dataset_out.h), so the upload costs
 * a few buffers and the small arrays, never the body nor X. routes_datasets.c's dataset sink
 * hands the body here when the content type says so. */
#ifndef TRAIND_HTTP_NPY_UPLOAD_H
#define TRAIND_HTTP_NPY_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct td_npy_upload td_npy_upload;

/* 1: an .npz body, 0: an .npy body, -1: neither (content type ct may be NULL). */
int td_npy_upload_kind(const char *ct);

/* A new upload into store s with the dataset limits (npy_dataset.h; <= 0: none) and an optional name
 * (copied). NULL when out of memory. */
td_npy_upload *td_npy_upload_begin(td_store *s, int zip, int64_t max_rows, int64_t max_features,
                                   uint64_t max_bytes, const char *name);
/* The next piece; nonzero once the outcome is decided (an error). */
int td_npy_upload_piece(td_npy_upload *u, const char *data, size_t len);
/* The body is in: stores the dataset (*meta) or gives the error. */
td_status td_npy_upload_end(td_npy_upload *u, td_dataset_meta *meta, td_error *err);
/* After td_npy_upload_end succeeded: y's class names when it was a unicode array, handed
 * over (td_strings_free), else NULL and 0. */
void td_npy_upload_classes(td_npy_upload *u, char ***classes, int64_t *n);
/* NULL is fine; removes whatever an unfinished upload wrote. */
void td_npy_upload_free(td_npy_upload *u);

#endif
