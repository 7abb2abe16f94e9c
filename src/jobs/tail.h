/* tail.h — a running job's in-memory history tail: the latest records of its epochs, the
 * ones not yet in the store, and what the history bound keeps (first, best).
 *
 * The worker appends each epoch's record here (td_tail_append) instead of committing it,
 * and hands the pending records to the store in batches (td_tail_flush: when
 * TD_TAIL_BATCH records wait or TD_TAIL_FLUSH_S passed since the last flush, at each
 * checkpoint and at the end). Readers — event streams, GET /losses of a running job — copy
 * records out of the tail, never out of the store while the job trains, so any number of
 * them costs the worker nothing but an uncontended mutex per epoch.
 *
 * Window: the tail holds every record of epochs [lo, hi] (the last TD_TAIL_ROWS) for
 * streams. The store holds the history up to epoch `committed`, thinned by
 * history_max_rows (store.h); the pending records, those of epochs (committed, hi] that
 * the bound keeps, wait in the tail until the next flush (only those: the rest would be
 * thinned away anyway, so a thinned history costs few writes however fast the epochs).
 *
 * Ownership: reference-counted. The worker creates it (one reference), the job manager
 * lends it to readers (td_jobs_tail, which takes a reference for them); each holder calls
 * td_tail_release once. All functions are thread-safe; append, flush and close are for
 * the job's worker only. */
#ifndef TRAIND_JOBS_TAIL_H
#define TRAIND_JOBS_TAIL_H

#include <stdint.h>

#include "store/store.h"
#include "traind/status.h"

#define TD_TAIL_ROWS 2048   /* records kept in memory for readers */
#define TD_TAIL_BATCH 2048  /* pending records that make a flush due (the most held) */
#define TD_TAIL_FLUSH_S 0.1 /* seconds after which pending records make a flush due */

typedef struct td_tail td_tail;

/* A tail for job_id's records (columns names[0..ncols), copied), of a job that plans
 * `epochs` epochs and has everything up to epoch `committed` in the store already (0 for
 * a new job, the checkpoint's epoch for a resumed one). max_rows: history_max_rows
 * (0 = unbounded). When committed > 0 the first and best epochs are read back from the
 * store's history. */
td_status td_tail_create(td_tail **out, td_store *store, const char *job_id,
                         const char *const *names, int ncols, int64_t epochs, int64_t committed,
                         int64_t max_rows, td_error *err);
void td_tail_retain(td_tail *t);
/* Drops a reference; the last one frees. NULL is fine. */
void td_tail_release(td_tail *t);

/* ---- the worker --------------------------------------------------------------------- */

/* Records epoch (== hi + 1) with values rec[0..ncols). The pending records must fit: the
 * worker flushes whenever td_tail_flush_due says so. */
void td_tail_append(td_tail *t, int64_t epoch, const double *rec);
/* 1 when a flush is due: TD_TAIL_BATCH records pending, or some pending for at least
 * TD_TAIL_FLUSH_S seconds (now: monotonic seconds). */
int td_tail_flush_due(const td_tail *t, double now);
/* Commits the pending records (td_store_history_commit, with metrics_json for the job
 * row), then counts them as committed. Nothing to do is TD_OK. On failure the records stay
 * pending. */
td_status td_tail_flush(td_tail *t, const char *metrics_json, double now, td_error *err);
/* The job is over in this process (ended, or stopping for a restart), everything flushed:
 * wakes the readers, who then read the outcome from the store. */
void td_tail_close(td_tail *t);

/* ---- readers ------------------------------------------------------------------------ */

typedef struct td_tail_view {
    int64_t lo, hi;    /* records of epochs lo..hi are in the tail (none if lo > hi) */
    int64_t committed; /* epochs up to here are in the store */
    int64_t epochs;    /* planned */
    int closed;
} td_tail_view;

void td_tail_view_get(td_tail *t, td_tail_view *v);
/* Column names and count (fixed for the tail's life). */
const char *const *td_tail_columns(const td_tail *t, int *ncols);
/* Copies the record of epoch into rec (ncols values); 0 when it is not in the window. */
int td_tail_row(td_tail *t, int64_t epoch, double *rec);
/* The pending records (epochs above committed that the bound keeps, ascending; the last
 * is hi), copied into *h (names set; free with td_history_fini), and `committed`, both
 * seen at the same instant. */
td_status td_tail_pending(td_tail *t, td_history *h, int64_t *committed, td_error *err);
/* A job's history as GET /losses shows it: the store's records with epoch > after_epoch
 * (the first `limit` of them; limit <= 0: all) merged with the tail's records not in the
 * store yet, when t (may be NULL: a job not training here) is given. Free *out with
 * td_history_fini. Errors as td_store_history_page. */
td_status td_tail_history_get(td_tail *t, td_store *store, const char *job_id, int64_t after_epoch,
                              int64_t limit, td_history *out, td_error *err);
/* Waits up to timeout_ms for a record past epoch `after` or for the close; returns at
 * once if there is one already. Fills v with the state it saw. */
void td_tail_wait(td_tail *t, int64_t after, int timeout_ms, td_tail_view *v);

#endif
