/* dataset_out.h — a dataset file written as its X streams in (POST /v1/datasets with an
 * .npy / .npz body), so that a dataset of hundreds of megabytes never sits in memory.
 *
 * X (N, D) float32, row-major, is appended in order as it arrives; the smaller arrays
 * (y, Y, pairs, pair_labels: known only once the whole body is in) are held by the caller
 * and written at commit, after X, in the layout of td_store_dataset_put (store.c), then
 * the payload header, the checksum, fsync and rename (blob.h), and last the row.
 *
 * Thread-safety: one writer belongs to one thread; distinct writers are independent. */
#ifndef TRAIND_STORE_DATASET_OUT_H
#define TRAIND_STORE_DATASET_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct td_dataset_out td_dataset_out;

/* Starts the data file of a new dataset of N x D (N, D >= 1). */
td_status td_dataset_out_open(td_dataset_out **out, td_store *s, int64_t N, int64_t D,
                              td_error *err);

/* Appends n float32 values of X (row-major; N * D in all, over any number of calls; v
 * in the host's byte order, no alignment needed). */
td_status td_dataset_out_x(td_dataset_out *o, const void *v, size_t n, td_error *err);

/* Writes the rest: ds gives N, D (equal to open's) and y / Y / pairs / pair_labels
 * (ds->X is not read), name may be NULL. On success the dataset is stored and *meta (may
 * be NULL) gets its metadata. Frees o either way; a failure leaves nothing behind. */
td_status td_dataset_out_commit(td_dataset_out *o, const td_dataset *ds, const char *name,
                                td_dataset_meta *meta, td_error *err);

/* Drops an unfinished file; NULL is fine. */
void td_dataset_out_abort(td_dataset_out *o);

#endif
