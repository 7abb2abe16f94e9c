/* store.h — traind's persistent state: SQLite (WAL) for rows, blob files for arrays.
 *
 * Layout under state_dir:
 *   traind.db                   datasets, jobs, history, models (schema: PRAGMA user_version)
 *   lock                        flock()ed while a store is open (one daemon per directory)
 *   datasets/<ds_id>.bin        X, y, Y, pairs, pair_labels (blob.h format)
 *   checkpoints/<job>.<epoch>.ckpt   the latest recorded checkpoint of a job
 *   models/<job_id>.bin         final model: meta JSON + float32 params
 *
 * The store knows nothing of HTTP or JSON: hyperparameters, model meta and metrics are
 * opaque strings it keeps. Every function is thread-safe (one connection guarded by a
 * mutex; large file reads and writes happen outside the mutex). Every function that
 * can fail returns a td_status and fills err (may be NULL): SQLite or file failures are
 * TD_EIO with the underlying message (TD_ENOSPACE when a write was refused for lack of
 * space: SQLITE_FULL, ENOSPC, EDQUOT), a missing row TD_ENOTFOUND, a state conflict
 * TD_ECONFLICT, a bad argument TD_EINVAL (err->field names it).
 *
 * Ids are prefix + 13 hex digits of microseconds since the epoch + 11 random hex digits
 * ("job_0640f1c2a3b4c5d6e7f8091a"); within a process they are strictly increasing, so
 * "newest first" is ORDER BY id DESC and paging uses the last id seen as the cursor. */
#ifndef TRAIND_STORE_STORE_H
#define TRAIND_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/blob.h"
#include "store/dscache.h"
#include "traind/dataset.h"
#include "traind/status.h"

#define TD_ID_MAX 40        /* ids, NUL included */
#define TD_NAME_MAX 128     /* dataset names, NUL included */
#define TD_TIME_MAX 32      /* "2024-05-01T12:34:56.789Z" */
#define TD_IDEM_KEY_MAX 256 /* idempotency keys, NUL included */
#define TD_MODEL_NAME_MAX 32
#define TD_ERRCODE_MAX 32
#define TD_ERRMSG_MAX 512
#define TD_HIST_MAX_COLS 64
#define TD_HIST_NAME_MAX 32
#define TD_NODE_MAX 256   /* node names (shared stores), NUL included */
#define TD_STORE_SCHEMA 1 /* PRAGMA user_version */
#define TD_DATASET_HDR_WORDS \
    8                       /* a dataset file's payload starts with int64 N, D, y_cols,
                                  Y_cols, P, pad, 0, 0, then pad zero bytes (then X, y, Y,
                                  pairs, pair_labels) */
#define TD_DATASET_ALIGN 64 /* X's file offset is a multiple of it (mapped in place) */
#define TD_DATASET_PAD                                                                     \
    ((TD_DATASET_ALIGN - (TD_BLOB_HEADER + TD_DATASET_HDR_WORDS * 8) % TD_DATASET_ALIGN) % \
     TD_DATASET_ALIGN)

typedef struct td_store td_store;

/* Opens (creating if needed) state_dir, its subdirectories and traind.db; creates or
 * checks the schema; takes the directory lock (TD_ECONFLICT if another process holds
 * it); removes leftovers of a crash (temp files, dataset files without a row,
 * checkpoint files other than each job's recorded one, model files without a row,
 * history of deleted jobs). */
td_status td_store_open(td_store **out, const char *state_dir, td_error *err);
/* td_store_open with a backend: uri NULL or "" is the SQLite store above; a libpq URI
 * ("postgresql://user@host:port/db", store_pg.h) is a PostgreSQL store shared by many
 * daemons: every table and blob lives in the database, state_dir keeps the lock and a
 * cache of dataset files; the schema is created or migrated at open. */
td_status td_store_open_uri(td_store **out, const char *state_dir, const char *uri, td_error *err);
/* 1 for a store shared by several daemons (PostgreSQL): its jobs are claimed from the
 * database with td_store_job_claim_next and held with leases, not queued per process. */
int td_store_shared(const td_store *s);
/* Shared stores: this daemon's node name (shown in jobs it holds, at most TD_NODE_MAX - 1
 * bytes) and lease length in seconds. Set before any job runs. No-op for SQLite. */
void td_store_set_node(td_store *s, const char *node, double lease_s);
/* Closes the database and releases the lock; NULL is fine. */
void td_store_close(td_store *s);

/* New id: prefix ("ds_", "job_") + 24 hex digits, time-ordered (see above). prefix must
 * be at most 15 characters. Thread-safe. */
void td_store_new_id(char out[TD_ID_MAX], const char *prefix);

/* Current time as RFC 3339 UTC with milliseconds: "2024-05-01T12:34:56.789Z". */
void td_store_now(char out[TD_TIME_MAX]);

/* ---- datasets --------------------------------------------------------------------- */

/* td_target_kind: include/traind/dataset.h */

/* "none", "index", "grouped", "probs". */
const char *td_target_name(td_target_kind t);

typedef struct td_dataset_meta {
    char id[TD_ID_MAX];
    char name[TD_NAME_MAX]; /* "" when none was given */
    int64_t N, D;           /* n_samples, n_features */
    int64_t n_classes;      /* index/grouped: max(y) + 1 over y >= 0; probs: Y_cols;
                                    none: 0 */
    td_target_kind target;
    int64_t y_cols, Y_cols; /* 0 when absent */
    int64_t P;              /* n_pairs */
    char created_at[TD_TIME_MAX];
    int64_t bytes; /* size of the data file */
} td_dataset_meta;

/* A loaded dataset: ds's arrays point into the dataset's shared read-only mapping (X
 * 64-byte aligned), held through handle: every job and request that loads the same
 * dataset reads the same pages (dscache.h). Never write through ds. */
typedef struct td_stored_dataset {
    td_dataset_meta meta;
    td_dataset ds;
    td_dscache_entry *handle;
} td_stored_dataset;

/* Stores ds (arrays copied to datasets/<id>.bin, then the row inserted) under a new
 * "ds_" id; name may be NULL. At most one of y, Y; y needs y_cols >= 1, Y needs
 * Y_cols >= 1; P > 0 needs pairs and pair_labels. The store does not validate label
 * values or pair indices (the HTTP edge does). *out (may be NULL) gets the metadata. */
td_status td_store_dataset_put(td_store *s, const td_dataset *ds, const char *name,
                               td_dataset_meta *out, td_error *err);
td_status td_store_dataset_get(td_store *s, const char *id, td_dataset_meta *out, td_error *err);
/* A dataset's class names and feature column names, each a JSON array of strings or
 * NULL (none). _set right after the row is inserted; the getter mallocs (free()). A job
 * copies its dataset's classes when inserted (td_job_row.classes). */
td_status td_store_dataset_names_set(td_store *s, const char *id, const char *classes,
                                     const char *columns, td_error *err);
td_status td_store_dataset_names(td_store *s, const char *id, char **classes, char **columns,
                                 td_error *err);

/* For writers that stream a dataset file themselves (dataset_out.h): the metadata of ds
 * (counts, target, n_classes; X is not read) under a new id and the current time; the
 * path of an id's data file; and the row, inserted once that file is in place (a row
 * never points to a missing file). */
void td_store_dataset_meta_fill(td_dataset_meta *m, const td_dataset *ds, const char *name);
void td_store_dataset_path(const td_store *s, const char *id, char *out, size_t cap);
td_status td_store_dataset_insert(td_store *s, const td_dataset_meta *m, td_error *err);
/* Newest first: up to limit (>= 1) datasets with id < after (after NULL or "" = from the
 * newest; it may be the same buffer as next). *rows is a malloc'd array of *n (free it
 * with free()); next gets the cursor for the following page, or "" when this page is
 * the last. */
td_status td_store_dataset_list(td_store *s, int limit, const char *after, td_dataset_meta **rows,
                                int *n, char next[TD_ID_MAX], td_error *err);
/* Holds the dataset's arrays in *out: the file mapped read-only, shared with every other
 * holder; its checksum verified the first time this process maps that version of the
 * file. Release with td_stored_dataset_fini; a dataset deleted meanwhile stays readable
 * until then. Costs no anonymous memory, except for a file of the older unpadded layout
 * (one aligned copy, shared the same way). */
td_status td_store_dataset_load(td_store *s, const char *id, td_stored_dataset *out, td_error *err);
void td_stored_dataset_fini(td_stored_dataset *sd);
/* Counts of the shared datasets (checksums computed, datasets held now). */
void td_store_dataset_cache_stats(td_store *s, td_dscache_stats *out);
/* Deletes the row and the file; TD_ECONFLICT (checked in the same transaction) while a
 * queued or running job or sweep uses it, TD_ENOTFOUND if absent. */
td_status td_store_dataset_delete(td_store *s, const char *id, td_error *err);

/* ---- jobs ------------------------------------------------------------------------- */

typedef enum {
    TD_JOB_QUEUED = 0,
    TD_JOB_RUNNING,
    TD_JOB_SUCCEEDED,
    TD_JOB_FAILED,
    TD_JOB_CANCELLED,
    TD_JOB_NSTATES
} td_job_state;

/* "queued", "running", "succeeded", "failed", "cancelled". */
const char *td_job_state_name(td_job_state st);
/* Parses a state name; returns TD_EINVAL (field "state") for anything else. */
td_status td_job_state_parse(const char *name, td_job_state *out, td_error *err);
/* 1 for succeeded, failed, cancelled. */
int td_job_state_terminal(td_job_state st);

/* What a new job is made of (all strings borrowed). */
typedef struct td_job_spec {
    const char *model;           /* "softmax", ... (< TD_MODEL_NAME_MAX) */
    const char *dataset;         /* id of a stored dataset */
    const char *validation;      /* id of a stored dataset, or NULL */
    const char *hyperparameters; /* JSON text, every value resolved */
    int64_t epochs;              /* planned, for progress */
    const char *idempotency_key; /* NULL or "" for none; < TD_IDEM_KEY_MAX */
    uint64_t mem_bytes;          /* shared stores: the job's memory estimate, for the
                                    admission of td_store_job_claim_next (0 = unknown) */
    int64_t max_queued;          /* shared stores: TD_EBUSY when this many jobs are queued
                                    cluster-wide (checked atomically); 0 = no bound */
    const char *sweep;           /* the sweep this job is a trial of (store_sweeps.h), or NULL */
    int64_t sweep_trial;         /* its trial index in that sweep */
    int64_t stop_at_epoch;       /* > 0: pause at this epoch (td_store_job_pause); 0: run on */
} td_job_spec;

/* One job as stored. The fixed arrays are "" when unset. hyperparameters and metrics
 * are malloc'd (metrics NULL until the first epoch); free with td_job_row_fini. */
typedef struct td_job_row {
    char id[TD_ID_MAX];
    char model[TD_MODEL_NAME_MAX];
    char dataset[TD_ID_MAX];
    char validation[TD_ID_MAX];
    td_job_state state;
    char created_at[TD_TIME_MAX];
    char started_at[TD_TIME_MAX];
    char finished_at[TD_TIME_MAX];
    char error_code[TD_ERRCODE_MAX];
    char error_message[TD_ERRMSG_MAX];
    int64_t restarts; /* resumptions after a restart of the daemon */
    int64_t epoch;    /* epochs completed (last committed) */
    int64_t epochs;   /* planned */
    int cancel_requested;
    char idempotency_key[TD_IDEM_KEY_MAX];
    int64_t checkpoint_epoch;       /* epoch of the recorded checkpoint, -1 when none */
    int has_model;                  /* 1 once td_store_model_put ran */
    char *hyperparameters;          /* JSON */
    char *metrics;                  /* JSON of the latest record, or NULL */
    int64_t crashes;                /* deaths of the daemon while running it */
    int resumed_on_different_build; /* 1 once resumed from another build's checkpoint */
    char *warnings;                 /* JSON array of {code, message}, or NULL (none) */
    char node[TD_NODE_MAX];         /* shared stores: the daemon that holds (or last held) it */
    char sweep[TD_ID_MAX];          /* "" unless the job is a sweep's trial */
    int64_t sweep_trial;            /* its index there, -1 when none */
    int64_t stop_at_epoch;          /* 0: none; else the worker pauses the job at this epoch */
    int paused;                     /* 1: "queued" but waiting for its sweep, not for a worker */
    int stopped_early;              /* succeeded by successive halving before its last epoch */
    char *classes;                  /* its dataset's class names (JSON array), or NULL */
} td_job_row;

void td_job_row_fini(td_job_row *row);
/* Finalises rows[0..n) and frees the array. */
void td_job_rows_free(td_job_row *rows, int n);

/* Inserts a queued job with a new "job_" id written to id_out. The dataset (and the
 * validation set) must exist, checked in the same transaction: TD_ENOTFOUND with field
 * "dataset" / "validation" otherwise. A duplicate idempotency key is TD_ECONFLICT
 * (field "idempotency_key") with the existing job's id in id_out. */
td_status td_store_job_insert(td_store *s, const td_job_spec *spec, char id_out[TD_ID_MAX],
                              td_error *err);
td_status td_store_job_get(td_store *s, const char *id, td_job_row *out, td_error *err);
/* TD_ENOTFOUND when no job has that key. */
td_status td_store_job_find_idempotent(td_store *s, const char *key, td_job_row *out,
                                       td_error *err);
/* Newest first; state < 0 means every state, else a td_job_state filter; limit >= 1;
 * after NULL or "" starts at the newest. Free *rows with td_job_rows_free; next as in
 * td_store_dataset_list. */
td_status td_store_job_list(td_store *s, int state, int limit, const char *after, td_job_row **rows,
                            int *n, char next[TD_ID_MAX], td_error *err);
/* Jobs in state queued or running and not paused, oldest first (recovery at start-up). */
td_status td_store_job_list_active(td_store *s, td_job_row **rows, int *n, td_error *err);
/* counts[state] = number of jobs in that state (for /metrics). */
td_status td_store_job_counts(td_store *s, int64_t counts[TD_JOB_NSTATES], td_error *err);

/* A worker takes the job: queued -> running (started_at = now); a job already running
 * (found so at start-up, i.e. being resumed) stays running with restarts + 1 and its
 * original started_at. TD_ECONFLICT when the job is terminal (e.g. cancelled while
 * queued): the worker must skip it. *out (may be NULL) gets the updated row. */
td_status td_store_job_start(td_store *s, const char *id, td_job_row *out, td_error *err);
/* td_store_job_start that also sets the job's live mark (td_store_job_set_live) in the
 * same transaction: a worker's claim. Neither waits for the disk (store.c, group commit). */
td_status td_store_job_claim(td_store *s, const char *id, td_job_row *out, td_error *err);
/* queued/running -> state (terminal), finished_at = now, error_code / error_message
 * (may be NULL; kept "" then), live mark cleared. Durable when it returns (a sync shared
 * with concurrent inserts and ends: store.c, group commit). TD_ECONFLICT when already
 * terminal (a terminal state never changes), TD_EINVAL when state is not terminal. */
td_status td_store_job_finish(td_store *s, const char *id, td_job_state state,
                              const char *error_code, const char *error_message, td_error *err);
/* The cancel request, atomically: queued -> cancelled at once (finished_at = now);
 * running -> cancel_requested = 1 (the worker stops within an epoch and finishes it as
 * cancelled); terminal -> TD_ECONFLICT. *state_after (may be NULL) gets the new state. */
td_status td_store_job_cancel(td_store *s, const char *id, td_job_state *state_after,
                              td_error *err);
/* Deletes a terminal job with its history, checkpoint and model; TD_ECONFLICT
 * (same transaction) when it is queued or running. The row goes first, then the files,
 * then the history in batches (a bounded WAL, so a long history can be deleted on a full
 * disk); history a crash or a failure leaves behind is removed by the next open. */
td_status td_store_job_delete(td_store *s, const char *id, td_error *err);

/* ---- the shared queue (shared stores only; TD_EINVAL otherwise) ---------------------- */

/* Claims the oldest job that is queued, or running with an expired lease and no live
 * mark (its holder let go or was reaped), whose mem_bytes <= mem_avail: FOR UPDATE SKIP
 * LOCKED, so claimers never wait on each other. The job gets node = this node, a lease of
 * lease_s and the live mark; then td_store_job_claim runs it as usual (a running one
 * counts a restart). TD_ENOTFOUND when there is nothing to claim. */
td_status td_store_job_claim_next(td_store *s, uint64_t mem_avail, char id_out[TD_ID_MAX],
                                  uint64_t *mem_bytes, td_error *err);
/* The heartbeat: renews the lease of each job in ids[0..n) this node still holds;
 * held[i] = 0 for one it lost (finished, or taken after its lease expired), cancel[i] = 1
 * when a cancel was requested (from any daemon). */
td_status td_store_job_renew(td_store *s, const char *const *ids, int n, int *cancel, int *held,
                             td_error *err);

/* ---- history: one record of named double columns per epoch -------------------------- */

/* Sets the column names of job_id's records (n <= TD_HIST_MAX_COLS, each name
 * [A-Za-z0-9_]+ shorter than TD_HIST_NAME_MAX). Setting them again is allowed with the
 * same count; a different count while records exist is TD_ECONFLICT. */
td_status td_store_history_columns_set(td_store *s, const char *job_id, const char *const *names,
                                       int n, td_error *err);

/* Columnar history: column c is cols[c * n_rows .. (c + 1) * n_rows). */
typedef struct td_history {
    int n_cols;
    char names[TD_HIST_MAX_COLS][TD_HIST_NAME_MAX];
    int64_t n_rows;
    int64_t *epochs; /* (n_rows) ascending, malloc'd */
    double *cols;    /* (n_cols, n_rows) malloc'd */
} td_history;

/* Records with epoch > after_epoch (pass -1 for all) in epoch order. TD_ENOTFOUND when
 * the job does not exist; a job without columns gives n_cols = n_rows = 0. Free with
 * td_history_fini. */
td_status td_store_history_get(td_store *s, const char *job_id, int64_t after_epoch,
                               td_history *out, td_error *err);
void td_history_fini(td_history *h);
/* Deletes records with epoch > after_epoch and lowers the job's epoch to at most
 * after_epoch (one transaction): what a job resuming from an earlier checkpoint needs. */
td_status td_store_history_truncate(td_store *s, const char *job_id, int64_t after_epoch,
                                    td_error *err);

/* ---- batched, bounded history --------------------------------------------------------
 *
 * A running job keeps its latest records in memory (jobs/tail.h) and hands them to the
 * store in batches: td_store_history_commit writes many records and the job's progress in
 * one transaction WITHOUT an fsync (synchronous=NORMAL for that transaction). That is safe
 * for exact resume: every checkpoint is recorded by a fully synchronous commit
 * (td_store_checkpoint_save), which makes every earlier batch durable with it, and resume
 * truncates history to the checkpoint's epoch; so a crash (even a power loss) can only
 * lose records after the last checkpoint, which the resumed job computes again,
 * bit-identically.
 *
 * Bound (history_max_rows = M, 0 = none): with L the job's latest epoch, the stored
 * records are the epochs that are multiples of the stride S = td_history_stride(L, M),
 * plus the first epoch, the best epoch and the latest epoch (whatever their stride). S is
 * 1 while L <= M, then the least power of two with L / S + 3 <= M: past the bound history
 * is thinned to every 2nd epoch, then every 4th, and so on, and never holds more than M
 * records. The thinning is a function of L alone, so a resumed job ends with the same
 * records as an uninterrupted one. */

/* The stride above; 1 when max_rows <= 0 (unbounded) or latest <= max_rows. max_rows,
 * when positive, must be >= 4. */
int64_t td_history_stride(int64_t latest, int64_t max_rows);

typedef struct td_history_batch {
    int n_cols;               /* == the job's history column count */
    int64_t n_rows;           /* >= 1 */
    const int64_t *epochs;    /* (n_rows) strictly ascending */
    const double *records;    /* (n_rows, n_cols) row-major, NaN kept */
    const char *metrics_json; /* the last record's metrics for the job row, or NULL */
    int64_t max_rows;         /* M above; 0 = unbounded */
    int64_t first, best;      /* epochs kept whatever the stride (-1: none) */
    int64_t prev_best;        /* the best epoch of the previous batch (-1: none): dropped
                                    now unless it is still kept for another reason */
    int full_pass;            /* 1: thin the whole stored history now, not only what
                                    this batch changed (a job's first batch after a
                                    (re)start: max_rows may have changed meanwhile) */
} td_history_batch;

/* Appends (or replaces) the batch's records that the bound keeps, sets the job's epoch to
 * the last one and its metrics (when given), and drops the records the bound no longer
 * keeps: all in one transaction, without fsync (see above). TD_EINVAL (field "columns")
 * when n_cols does not match the job's columns, TD_ENOTFOUND without the job. */
td_status td_store_history_commit(td_store *s, const char *job_id, const td_history_batch *b,
                                  td_error *err);

/* As td_store_history_get, but at most limit records (limit <= 0: all): the first ones
 * with epoch > after_epoch, in epoch order. A page's last epoch is the next page's
 * after_epoch. */
td_status td_store_history_page(td_store *s, const char *job_id, int64_t after_epoch, int64_t limit,
                                td_history *out, td_error *err);

/* Keeps at most max_points (>= 2) of h's records, in place: evenly spaced by index,
 * always the first and the last. Nothing changes when h has at most max_points. */
void td_history_downsample(td_history *h, int64_t max_points);

/* ---- checkpoints ---------------------------------------------------------------------- */

/* Records a checkpoint of an epoch already committed by td_store_history_commit (epoch <=
 * the job's epoch, TD_EINVAL otherwise), fully synchronous, so that every earlier batch
 * is durable with it:
 *  1. the checkpoint is written to checkpoints/<job>.<epoch>.ckpt (atomic rename; the
 *     previously recorded file is untouched);
 *  2. one transaction records its epoch as the job's checkpoint;
 *  3. the previously recorded checkpoint file is removed.
 * After a crash anywhere, the recorded checkpoint exists and matches its epoch, and
 * history holds the records up to it; recovery = td_store_checkpoint_load +
 * td_store_history_truncate(job, checkpoint epoch) (or 0 without a checkpoint), then
 * train on. A file of step 1 that never got recorded is swept at the next open. */
td_status td_store_checkpoint_save(td_store *s, const char *job_id, int64_t epoch, const void *ckpt,
                                   size_t ckpt_len, td_error *err);
/* Loads the latest recorded checkpoint (checksum verified): *buf malloc'd (free with
 * td_store_free), *len bytes, *epoch its epoch. TD_ENOTFOUND when there is none. */
td_status td_store_checkpoint_load(td_store *s, const char *job_id, void **buf, size_t *len,
                                   int64_t *epoch, td_error *err);
/* td_store_checkpoint_load that also gives the checkpoint's build tag (see
 * td_store_set_build_tag) in tag (tag_cap bytes, NUL-terminated; may be NULL): "" when
 * the checkpoint has none (written before tags, or by a store without one). */
td_status td_store_checkpoint_load_tagged(td_store *s, const char *job_id, void **buf, size_t *len,
                                          int64_t *epoch, char *tag, size_t tag_cap, td_error *err);

/* ---- models ------------------------------------------------------------------------- */

/* Stores job_id's final model: meta_json (the shape description) and params (n) in
 * models/<job_id>.bin (params first, then the meta text); replaces a previous one.
 * TD_ENOTFOUND if the job is absent. */
td_status td_store_model_put(td_store *s, const char *job_id, const char *meta_json,
                             const float *params, int64_t n, td_error *err);
/* Small jobs' ends, batched (jobs/jobs.c): td_store_model_write_unsynced writes the model
 * file of a job that has no recorded model yet, without fsync, and records nothing
 * (TD_ECONFLICT when the job has one: td_store_model_put it); a model of at most
 * TD_MODEL_INLINE_MAX bytes (params and meta) goes into the job's row instead, committed
 * relaxed, with no file. td_store_sync_files makes every file written so far durable
 * (syncfs of state_dir; nothing to do when none was); td_store_jobs_succeed then
 * records n jobs succeeded with their models (n_params each), live marks cleared, in one
 * transaction, durable at return. A job no longer queued or running is left as it is. */
#define TD_MODEL_INLINE_MAX 65536
td_status td_store_model_write_unsynced(td_store *s, const char *job_id, const char *meta_json,
                                        const float *params, int64_t n, td_error *err);
td_status td_store_sync_files(td_store *s, td_error *err);
td_status td_store_jobs_succeed(td_store *s, const char *const *ids, const int64_t *n_params, int n,
                                td_error *err);
/* *meta_json (NUL-terminated) and *params (n; never NULL) are malloc'd: free both with
 * td_store_free. TD_ENOTFOUND when the job or its model is absent. */
td_status td_store_model_get(td_store *s, const char *job_id, char **meta_json, float **params,
                             int64_t *n, td_error *err);

/* Frees buffers the store handed out (checkpoints, model meta and params). */
void td_store_free(void *p);

/* ---- build changes and crash-loop protection (issue 10) ------------------------------ */

/* The tag every checkpoint written from now on carries (the build fingerprint,
 * math/fingerprint.h; at most TD_BLOB_TAG_MAX bytes, longer is cut; NULL or "" = none).
 * Set it before any job runs: it is not synchronised with checkpoint writes. */
void td_store_set_build_tag(td_store *s, const char *tag);
/* Sets the job's resumed_on_different_build flag (it never clears). */
td_status td_store_job_mark_different_build(td_store *s, const char *id, td_error *err);
/* Records the job's warnings (a JSON array; NULL clears them). */
td_status td_store_job_set_warnings(td_store *s, const char *id, const char *json, td_error *err);


/* A job's "live" mark: a worker sets it (1) when it takes the job, before training, and
 * clears it (0) when it lets go (job ended, or checkpointed for a shutdown). A mark found
 * set when a daemon starts means the previous process died while running the job. */
td_status td_store_job_set_live(td_store *s, const char *id, int live, td_error *err);
/* At start-up, before any job runs (shared stores: also at every heartbeat, and only
 * for marks whose lease expired): every queued or running job still marked live
 * counts one more crash (and is unmarked); those with at least max_crashes become
 * failed with error code "crashed" and a message giving the count. *failed gets the rows
 * of the jobs failed now (oldest first; free with td_job_rows_free), *n their count. */
td_status td_store_job_reap_crashed(td_store *s, int max_crashes, td_job_row **failed, int *n,
                                    td_error *err);

#endif
