/* store_pg.h — the PostgreSQL backend of store.h (internal to src/store).
 *
 * store.c is the front: a store opened with a postgresql:// URI (td_store_open_uri) hands
 * every call to the td_pg_* function of the same name, with the same contract as the
 * SQLite backend (store.h), plus the shared queue (td_store_job_claim / _renew). What
 * differs is where bytes live: every table and every blob (datasets, checkpoints,
 * models) is in the database, so daemons on several hosts share nothing else; state_dir
 * keeps only a cache of dataset files (datasets/<id>.bin, the blob.h file verbatim).
 *
 * Layout in PostgreSQL (schema version TD_PG_SCHEMA, in table traind_schema):
 *   datasets, jobs, history    the SQLite tables; jobs also has node (the daemon that
 *                              holds it), lease_until (server clock, epoch seconds) and
 *                              mem_bytes (its memory estimate, for admission)
 *   blobs(key, aux, tag, length, checksum) + blob_chunks(key, seq, data bytea)
 *                              "ds/<id>": a dataset file; "ckpt/<job>": the recorded
 *                              checkpoint (aux = epoch, tag = build); "model/<job>":
 *                              params then meta JSON + NUL (aux = n). Chunks of 1 MiB;
 *                              checksum = XXH64 of the payload, verified on read. */
#ifndef TRAIND_STORE_STORE_PG_H
#define TRAIND_STORE_STORE_PG_H

#include "store/store.h"
#include "store/job_transition.h"

#define TD_PG_SCHEMA 3 /* 1: the tables of store.h; 2: sweeps (store_sweeps.h); 3: names */

typedef struct td_pg td_pg;

/* Connects (a small pool) to uri, creates or migrates the schema under an advisory lock
 * (daemons starting together wait for each other). cache_dir is state_dir (its datasets/
 * exists); build_tag points to the front's tag (read at each checkpoint write). */
td_status td_pg_open(td_pg **out, const char *uri, const char *cache_dir, const char *build_tag,
                     td_error *err);
void td_pg_close(td_pg *p);
void td_pg_set_node(td_pg *p, const char *node, double lease_s);

td_status td_pg_dataset_insert(td_pg *p, const td_dataset_meta *m, td_error *err);
td_status td_pg_dataset_get(td_pg *p, const char *id, td_dataset_meta *out, td_error *err);
td_status td_pg_dataset_names_set(td_pg *p, const char *id, const char *classes,
                                  const char *columns, td_error *err);
td_status td_pg_dataset_names(td_pg *p, const char *id, char **classes, char **columns,
                              td_error *err);
/* The row, and the data file in the local cache at path (fetched when absent). */
td_status td_pg_dataset_fetch(td_pg *p, const char *id, const char *path, td_dataset_meta *out,
                              td_error *err);
td_status td_pg_dataset_list(td_pg *p, int limit, const char *after, td_dataset_meta **rows, int *n,
                             char next[TD_ID_MAX], td_error *err);
td_status td_pg_dataset_delete(td_pg *p, const char *id, td_error *err);

td_status td_pg_job_insert(td_pg *p, const td_job_spec *spec, char id_out[TD_ID_MAX],
                           td_error *err);
td_status td_pg_job_get(td_pg *p, const char *col, const char *key, td_job_row *out, td_error *err);
td_status td_pg_job_list(td_pg *p, int state, int limit, const char *after, td_job_row **rows,
                         int *n, char next[TD_ID_MAX], td_error *err);
td_status td_pg_job_list_active(td_pg *p, td_job_row **rows, int *n, td_error *err);
td_status td_pg_job_counts(td_pg *p, int64_t counts[TD_JOB_NSTATES], td_error *err);
/* Runs t (job_transition.h): start, finish, cancel or delete, in one transaction. */
td_status td_pg_job_transition(td_pg *p, td_job_transition *t, td_error *err);
td_status td_pg_model_write_unsynced(td_pg *p, const char *job_id, const char *meta_json,
                                     const float *params, int64_t n, td_error *err);
td_status td_pg_jobs_succeed(td_pg *p, const char *const *ids, const int64_t *n_params, int n,
                             td_error *err);
td_status td_pg_job_claim(td_pg *p, uint64_t mem_avail, char id_out[TD_ID_MAX], uint64_t *mem_bytes,
                          td_error *err);
td_status td_pg_job_renew(td_pg *p, const char *const *ids, int n, int *cancel, int *held,
                          td_error *err);

td_status td_pg_history_columns_set(td_pg *p, const char *job_id, const char *joined, int n,
                                    td_error *err);
/* limit <= 0: every record (td_store_history_page). */
td_status td_pg_history_get(td_pg *p, const char *job_id, int64_t after_epoch, int64_t limit,
                            td_history *out, td_error *err);
td_status td_pg_history_commit(td_pg *p, const char *job_id, const td_history_batch *b,
                               td_error *err);
td_status td_pg_history_truncate(td_pg *p, const char *job_id, int64_t after_epoch, td_error *err);

td_status td_pg_checkpoint_save(td_pg *p, const char *job_id, int64_t epoch, const void *ckpt,
                                size_t ckpt_len, td_error *err);
td_status td_pg_checkpoint_load(td_pg *p, const char *job_id, void **buf, size_t *len,
                                int64_t *epoch, char *tag, size_t tag_cap, td_error *err);
td_status td_pg_model_put(td_pg *p, const char *job_id, const char *meta_json, const float *params,
                          int64_t n, td_error *err);
td_status td_pg_model_get(td_pg *p, const char *job_id, char **meta_json, float **params,
                          int64_t *n, td_error *err);

td_status td_pg_job_set_live(td_pg *p, const char *id, int live, td_error *err);
td_status td_pg_job_reap_crashed(td_pg *p, int max_crashes, td_job_row **failed, int *n,
                                 td_error *err);
td_status td_pg_job_mark_different_build(td_pg *p, const char *id, td_error *err);

/* store_sweeps.h, same contracts */
struct td_sweep_spec;
struct td_sweep_trial_spec;
struct td_sweep_row;
struct td_sweep_trial;
td_status td_pg_sweep_insert(td_pg *p, const struct td_sweep_spec *spec,
                             const struct td_sweep_trial_spec *trials, int n,
                             char id_out[TD_ID_MAX], td_error *err);
td_status td_pg_sweep_get(td_pg *p, const char *id, struct td_sweep_row *out, td_error *err);
td_status td_pg_sweep_list(td_pg *p, int active, int limit, const char *after,
                           struct td_sweep_row **rows, int *n, char next[TD_ID_MAX], td_error *err);
td_status td_pg_sweep_trials(td_pg *p, const char *id, const char *metric,
                             struct td_sweep_trial **out, int *n, td_error *err);
/* Runs sql ($1 = id, $2.. = args[0..nargs)) on sweep id if it is active. */
td_status td_pg_sweep_update_active(td_pg *p, const char *id, const char *sql,
                                    const char *const *args, int nargs, td_error *err);
td_status td_pg_sweep_promote(td_pg *p, const char *id, int64_t rung, const char *const *stop,
                              int n, td_error *err);
td_status td_pg_sweep_delete_rows(td_pg *p, const char *id, td_error *err);
int td_pg_sweeps_leader(td_pg *p);
/* Runs sql on job id ($1; $2 = now, $3 = x, NULL when x <= 0): TD_ECONFLICT when no row
 * changed (the job is not in the state sql requires), TD_ENOTFOUND when it does not exist
 * (td_store_job_pause / _continue). */
td_status td_pg_job_update(td_pg *p, const char *id, const char *sql, int64_t x, td_error *err);

#endif
