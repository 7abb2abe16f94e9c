/* store_sqlite.h — the SQLite store's internals, shared by its files only: store.c (open,
 * migrate, group commit), store_datasets.c, store_jobs.c and store_history.c. The DESIGN
 * note is in store.c. Not for other modules (they use store.h; store_sweeps.c uses
 * store_impl.h). */
#ifndef TRAIND_STORE_SQLITE_H
#define TRAIND_STORE_SQLITE_H

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/blob.h"
#include "store/dscache.h"
#include "store/store.h"
#include "store/store_impl.h"
#include "store/store_pg.h"

#define TD_STMT_CACHE 64 /* statements kept per connection */

struct td_store {
    pthread_mutex_t mu;
    sqlite3 *db;
    int lock_fd;
    char dir[PATH_MAX / 2];
    sqlite3_stmt *st_job_by[2];          /* SELECT a job by id / by idempotency key (kept) */
    char build_tag[TD_BLOB_TAG_MAX + 1]; /* written into checkpoints; "" = none */
    td_pg *pg;                           /* the PostgreSQL backend, or NULL: SQLite (db) */
    td_dscache *datasets;                /* loaded datasets, shared (dscache.h) */
    /* group commit (store.c DESIGN): guarded by sync_mu, taken after mu */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    uint64_t committed, synced;           /* tickets of relaxed commits made / made durable */
    int syncing;                          /* a thread is syncing the WAL for the group */
    int wal_fd;                           /* traind.db-wal, opened at the first group sync */
    uint64_t files_written, files_synced; /* unsynced model files written / covered by a
                                      * syncfs (td_store_sync_files); under sync_mu */
    int sync_normal;                      /* the connection is at synchronous=NORMAL (relax) */
    int relaxing;                         /* the operation under mu declared relaxed commits */
    /* statement cache (store.c, "statement cache"): guarded by mu */
    struct td_stmt_slot {
        sqlite3_stmt *st; /* NULL: a free slot */
        uint64_t hash;    /* of its SQL text */
        int busy;         /* handed out by prepare, not yet given back */
    } stmts[TD_STMT_CACHE];
};

static const char *const STATE_NAMES[TD_JOB_NSTATES] = {"queued", "running", "succeeded", "failed",
                                                        "cancelled"};
static const char *const TARGET_NAMES[] = {"none", "index", "grouped", "probs"};

#define JOB_COLS                                                                          \
    "id, model, dataset, validation, state, hyperparameters, created_at, started_at, "    \
    "finished_at, error_code, error_message, restarts, epoch, epochs, cancel_requested, " \
    "idempotency_key, metrics, checkpoint_epoch, model_params IS NOT NULL, crashes, "     \
    "resumed_on_different_build, sweep, sweep_trial, stop_at_epoch, paused, "             \
    "stopped_early, classes, warnings"

#define DS_COLS                                                                            \
    "id, name, n_samples, n_features, n_classes, target, label_cols, prob_cols, n_pairs, " \
    "created_at, bytes"

/* ---- small helpers ------------------------------------------------------------------ */

static inline void enter(td_store *s) { pthread_mutex_lock(&s->mu); }

/* Rolls back a transaction left open by an error path, then unlocks. */
static inline void leave(td_store *s)
{
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->relaxing = 0; /* (relax's callers unrelax; this holds on every way out) */
    pthread_mutex_unlock(&s->mu);
}

/* SQLite's failure as TD_EIO, or TD_ENOSPACE when it was for lack of space: SQLITE_FULL
 * (a write of the WAL or the database), or an I/O error whose errno is ENOSPC or EDQUOT
 * (e.g. growing the -shm file). */
static inline td_status db_fail(td_store *s, td_error *err, const char *what)
{
    int ec = sqlite3_extended_errcode(s->db) & 0xff, en = sqlite3_system_errno(s->db);
    if (ec == SQLITE_IOERR && (en == ENOSPC || en == EDQUOT)) /* the message says "disk I/O" */
        return td_fail(err, TD_ENOSPACE, NULL, "sqlite (%s): %s (%s)", what, sqlite3_errmsg(s->db),
                       strerror(en));
    return td_fail(err, ec == SQLITE_FULL ? TD_ENOSPACE : TD_EIO, NULL, "sqlite (%s): %s", what,
                   sqlite3_errmsg(s->db));
}

/* Before a write that starts outside a transaction (exec_sql, step_done): the connection
 * back at synchronous=FULL unless the operation declared its commits relaxed (relax).
 * See "group commit" below. */
static inline td_status durable(td_store *s, td_error *err)
{
    if (!s->sync_normal || s->relaxing || !sqlite3_get_autocommit(s->db)) return TD_OK;
    if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(s, err, "PRAGMA synchronous=FULL");
    s->sync_normal = 0;
    return TD_OK;
}

/* Statement cache (store.c): stmt_take gives a statement for one SQL statement, kept from
 * an earlier use when there is one (reset, no bindings), else prepared; stmt_give takes it
 * back (reset and kept, or finalized; NULL: nothing). Caller holds mu. */
td_status stmt_take(td_store *s, sqlite3_stmt **st, const char *sql, td_error *err);
void stmt_give(td_store *s, sqlite3_stmt *st);

/* Gives back *st (if any) and prepares sql into it (from the statement cache). */
static inline td_status prepare(td_store *s, sqlite3_stmt **st, const char *sql, td_error *err)
{
    stmt_give(s, *st);
    *st = NULL;
    return stmt_take(s, st, sql, err);
}

/* Done with a statement of prepare (NULL: nothing). */
static inline void unprepare(td_store *s, sqlite3_stmt *st) { stmt_give(s, st); }

/* Runs sql: one statement from the cache; several (the schema), or a PRAGMA (SQLite applies
 * some when it prepares them, so a kept one would do nothing), with sqlite3_exec. */
static inline td_status exec_sql(td_store *s, const char *sql, td_error *err)
{
    td_status drc = strncmp(sql, "PRAGMA", 6) != 0 ? durable(s, err) : TD_OK;
    if (drc) return drc;
    if (!strchr(sql, ';') && strncmp(sql, "PRAGMA", 6) != 0) {
        sqlite3_stmt *st = NULL;
        td_status rc = stmt_take(s, &st, sql, err);
        int r = SQLITE_ROW;
        while (!rc && r == SQLITE_ROW)
            r = sqlite3_step(st);
        if (!rc && r != SQLITE_DONE) rc = db_fail(s, err, sql);
        unprepare(s, st);
        return rc;
    }
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_fail(s, err, sql);
    return TD_OK;
}

/* Steps a statement that returns no row. */
static inline td_status step_done(td_store *s, sqlite3_stmt *st, td_error *err)
{
    td_status drc = durable(s, err);
    if (drc) return drc;
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE) return db_fail(s, err, "step");
    return TD_OK;
}

/* Steps a statement that returns no row, then commits the caller's transaction. */
static inline td_status step_commit(td_store *s, sqlite3_stmt *st, td_error *err)
{
    td_status rc = step_done(s, st, err);
    return rc ? rc : exec_sql(s, "COMMIT", err);
}

/* Steps a query: *row = 1 with a row, 0 at the end. */
static inline td_status step_row(td_store *s, sqlite3_stmt *st, int *row, td_error *err)
{
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *row = 1;
        return TD_OK;
    }
    *row = 0;
    if (r != SQLITE_DONE) return db_fail(s, err, "step");
    return TD_OK;
}

/* Binds text, or NULL when v is NULL or "". */
static inline void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static inline void bind_str(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

/* Copies column i as text into out (size cap), "" when NULL. */
static inline void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* strdup of column i, *out NULL when the column is NULL; -1 on allocation failure. */
static inline int col_dup(sqlite3_stmt *st, int i, char **out)
{
    *out = NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t) return 0;
    *out = strdup((const char *)t);
    return *out ? 0 : -1;
}

/* Ids that may become file names: [a-z0-9_]+, shorter than TD_ID_MAX. */
static inline int id_ok(const char *id)
{
    if (!id || !*id) return 0;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return n < TD_ID_MAX;
}

static inline void path_of(char *out, size_t cap, const td_store *s, const char *sub,
                           const char *id, const char *suffix)
{
    snprintf(out, cap, "%s/%s/%s%s", s->dir, sub, id, suffix);
}

static inline void ckpt_path(char *out, size_t cap, const td_store *s, const char *job_id,
                             int64_t epoch)
{
    snprintf(out, cap, "%s/checkpoints/%s.%" PRId64 ".ckpt", s->dir, job_id, epoch);
}

/* A column's text as a job state or target kind (store_rows.h) */
static inline int state_from_text(const unsigned char *t)
{
    return td_store_state_of((const char *)t);
}

static inline td_target_kind target_from_text(const unsigned char *t)
{
    return td_store_target_of((const char *)t);
}

/* ---- group commit (store.c; see DESIGN) --------------------------------------------- */

/* Makes the caller's next commits relaxed (synchronous=NORMAL: no fsync). Caller holds mu,
 * outside a transaction, and calls unrelax before it leaves. The connection stays at
 * NORMAL afterwards, so a run of relaxed operations (a small job's claim, history columns,
 * history, model, live mark) parses one PRAGMA, not two each; any other write is put back
 * at FULL before it starts (durable, from exec_sql and step_done), so a write not
 * declared relaxed still commits with an fsync. */
static inline td_status relax(td_store *s, td_error *err)
{
    if (!s->sync_normal) {
        td_status rc = exec_sql(s, "PRAGMA synchronous=NORMAL", err);
        if (rc) return rc;
        s->sync_normal = 1;
    }
    s->relaxing = 1;
    return TD_OK;
}

static inline void unrelax(td_store *s) { s->relaxing = 0; }

/* A relaxed write's start: relax, then BEGIN IMMEDIATE; *relaxed = 1 once relaxed (for
 * end_op). Caller holds mu. */
static inline td_status begin_relaxed(td_store *s, int *relaxed, td_error *err)
{
    td_status rc = relax(s, err);
    if (rc) return rc;
    *relaxed = 1;
    return exec_sql(s, "BEGIN IMMEDIATE", err);
}

/* An operation's end: gives back st (NULL: nothing), unrelaxes if relaxed, and leaves (a
 * transaction left open rolls back) if locked. */
static inline void end_op(td_store *s, sqlite3_stmt *st, int relaxed, int locked)
{
    unprepare(s, st);
    if (relaxed) unrelax(s);
    if (locked) leave(s);
}

/* The ticket of a relaxed commit just made, for group_sync. Caller holds mu. */
uint64_t commit_ticket(td_store *s);
/* Returns once the commit with this ticket is durable (store.c). Caller does not hold mu. */
td_status group_sync(td_store *s, uint64_t ticket, td_error *err);

/* ---- across the tables (each with its definition's contract) ----------------------- */

/* store_datasets.c: dataset id's row; caller holds the lock. */
td_status ds_get_locked(td_store *s, const char *id, td_dataset_meta *out, td_error *err);
/* store_jobs.c */
td_status read_job(sqlite3_stmt *st, void *row, td_error *err);
td_status job_get_locked(td_store *s, const char *col, const char *key, td_job_row *out,
                         td_error *err);
td_status job_state_locked(td_store *s, const char *id, int *state, int64_t *ckpt_epoch,
                           int *has_model, td_error *err);
/* store_history.c: the history of a job whose row is gone; the orphans at open */
td_status history_purge(td_store *s, const char *job_id);
void sweep_history(td_store *s);

#endif
