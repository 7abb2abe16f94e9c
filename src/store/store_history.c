/* store_history.c — the SQLite store's history table (batched commits), checkpoint and model
 * files (store.h; DESIGN in store.c). */
#include "store/store_sqlite.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Deletes the history of a job whose row is gone, PURGE_BATCH records per transaction with
 * a checkpoint after each. One transaction would need a WAL as large as the history it
 * deletes (SQLite writes each page it empties: ~13 MB per 100,000 records of 9 columns),
 * which a full disk does not have; a checkpointed WAL is rewritten from its start, so
 * batches need one batch's pages (under 200 KB) however long the history. Takes the lock
 * per batch, so other requests interleave with a long purge. */
#define PURGE_BATCH 1000

td_status history_purge(td_store *s, const char *job_id)
{
    td_status rc = TD_OK;
    for (int n = 1; n > 0 && rc == TD_OK;) {
        sqlite3_stmt *st = NULL;
        enter(s);
        rc = prepare(s, &st,
                     "DELETE FROM history WHERE job_id = ?1 AND epoch IN (SELECT epoch FROM "
                     "history WHERE job_id = ?1 ORDER BY epoch LIMIT ?2)",
                     NULL);
        if (rc == TD_OK) {
            bind_str(st, 1, job_id);
            sqlite3_bind_int(st, 2, PURGE_BATCH);
            rc = step_done(s, st, NULL);
        }
        n = rc ? 0 : sqlite3_changes(s->db);
        if (n > 0) sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        unprepare(s, st);
        leave(s);
    }
    return rc;
}

/* At open: deletes the history of jobs that no longer exist (a delete cut short by a crash
 * or a full disk), with one index seek per distinct job id. Best effort: what cannot be
 * deleted now (a full disk) waits for the next open. */
void sweep_history(td_store *s)
{
    sqlite3_stmt *st = NULL;
    char cursor[TD_ID_MAX] = "", id[TD_ID_MAX];
    td_status rc = prepare(s, &st,
                           "SELECT h.job_id, EXISTS (SELECT 1 FROM jobs WHERE id = h.job_id) "
                           "FROM (SELECT job_id FROM history WHERE job_id > ?1 "
                           "ORDER BY job_id LIMIT 1) h",
                           NULL);
    while (rc == TD_OK) {
        int row = 0;
        sqlite3_reset(st);
        bind_str(st, 1, cursor);
        if ((rc = step_row(s, st, &row, NULL)) || !row) break;
        col_copy(st, 0, id, sizeof id);
        int orphan = !sqlite3_column_int(st, 1);
        sqlite3_reset(st);
        if (orphan) rc = history_purge(s, id);
        snprintf(cursor, sizeof cursor, "%s", id);
    }
    unprepare(s, st);
}

/* ---- history ------------------------------------------------------------------------ */

/* Steps *st to job_id's history_columns (column 0; NULL when not set); TD_ENOTFOUND
 * without the job. Give *st back with unprepare. */
static td_status hist_names_query(td_store *s, sqlite3_stmt **st, const char *job_id, td_error *err)
{
    int row = 0;
    td_status rc =
        td_store_query(s, st, &row, err, "SELECT history_columns FROM jobs WHERE id = ?1", "s",
                       job_id ? job_id : "");
    if (!rc && !row)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
    return rc;
}

/* The column count of job_id's history (0 when not set); TD_ENOTFOUND without the job. */
static td_status hist_cols_locked(td_store *s, const char *job_id, int *ncols, td_error *err)
{
    sqlite3_stmt *st = NULL;
    td_status rc = hist_names_query(s, &st, job_id, err);
    if (!rc) *ncols = td_store_count_cols((const char *)sqlite3_column_text(st, 0));
    unprepare(s, st);
    return rc;
}

td_status td_store_history_columns_set(td_store *s, const char *job_id, const char *const *names,
                                       int n, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char joined[TD_HIST_MAX_COLS * TD_HIST_NAME_MAX];
    size_t pos = 0;
    int cur = 0, row = 0, locked = 0, relaxed = 0;

    if (n < 1 || n > TD_HIST_MAX_COLS) {
        rc = td_fail(err, TD_EINVAL, "columns", "need 1..%d history columns, got %d",
                     TD_HIST_MAX_COLS, n);
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        const char *p = names[i];
        size_t len = p ? strlen(p) : 0;
        int ok = len > 0 && len < TD_HIST_NAME_MAX;
        for (size_t k = 0; ok && k < len; k++)
            ok = (p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') ||
                (p[k] >= '0' && p[k] <= '9') || p[k] == '_';
        if (!ok) {
            rc = td_fail(err, TD_EINVAL, "columns", "bad history column name \"%s\"", p ? p : "");
            goto cleanup;
        }
        if (i) joined[pos++] = ',';
        memcpy(joined + pos, p, len);
        pos += len;
    }
    joined[pos] = '\0';
    if (s->pg) return td_pg_history_columns_set(s->pg, job_id, joined, n, err);
    enter(s);
    locked = 1;
    rc = begin_relaxed(s, &relaxed, err); /* set again at every start: see DESIGN, group commit */
    if (rc) goto cleanup;
    rc = hist_cols_locked(s, job_id, &cur, err);
    if (rc) goto cleanup;
    if (cur != 0 && cur != n) {
        rc = td_store_query(s, &st, &row, err,
                            "SELECT EXISTS (SELECT 1 FROM history WHERE job_id = ?1)", "s", job_id);
        if (rc) goto cleanup;
        if (row && sqlite3_column_int(st, 0)) {
            rc = td_fail(err, TD_ECONFLICT, "columns", "job %s has history with %d columns, not %d",
                         job_id, cur, n);
            goto cleanup;
        }
    }
    rc = td_store_run(s, err, "UPDATE jobs SET history_columns = ?2 WHERE id = ?1", "ss", job_id,
                      joined);
    if (rc) goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
cleanup:
    end_op(s, st, relaxed, locked);
    return rc;
}

void td_history_fini(td_history *h)
{
    if (!h) return;
    free(h->epochs);
    free(h->cols);
    h->epochs = NULL;
    h->cols = NULL;
    h->n_rows = 0;
}

/* Reads the records with epoch > after_epoch (the first limit of them; limit < 0: all)
 * into h (n_cols already set); caller holds the lock. */
static td_status hist_rows_locked(td_store *s, const char *job_id, int64_t after_epoch,
                                  int64_t limit, td_history *h, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    rc = td_store_query(s, &st, &row, err,
                        "SELECT COUNT(*) FROM (SELECT 1 FROM history WHERE job_id = ?1 "
                        "AND epoch > ?2 LIMIT ?3)",
                        "sII", job_id, after_epoch, limit);
    if (rc) goto cleanup;
    int64_t nrows = row ? sqlite3_column_int64(st, 0) : 0;
    if (nrows > 0) {
        h->epochs = malloc(sizeof *h->epochs * (size_t)nrows);
        h->cols = malloc(sizeof *h->cols * (size_t)nrows * (size_t)h->n_cols);
        if (!h->epochs || !h->cols) {
            rc = td_fail(err, TD_ENOMEM, NULL, "out of memory reading history of %s", job_id);
            goto cleanup;
        }
    }
    rc = td_store_bind(s, &st, err,
                       "SELECT epoch, record FROM history WHERE job_id = ?1 AND epoch > ?2 "
                       "ORDER BY epoch LIMIT ?3",
                       "sII", job_id, after_epoch, limit);
    if (rc) goto cleanup;
    while (h->n_rows < nrows) {
        rc = step_row(s, st, &row, err);
        if (rc) goto cleanup;
        if (!row) break;
        const unsigned char *rec = sqlite3_column_blob(st, 1);
        size_t bytes = (size_t)sqlite3_column_bytes(st, 1);
        if (!rec || bytes != sizeof(double) * (size_t)h->n_cols) {
            rc = td_fail(err, TD_EIO, NULL,
                         "history of %s, epoch %lld: record has %zu bytes for %d columns", job_id,
                         (long long)sqlite3_column_int64(st, 0), bytes, h->n_cols);
            goto cleanup;
        }
        h->epochs[h->n_rows] = sqlite3_column_int64(st, 0);
        for (int c = 0; c < h->n_cols; c++)
            memcpy(&h->cols[(size_t)c * (size_t)nrows + (size_t)h->n_rows],
                   rec + sizeof(double) * (size_t)c, sizeof(double));
        h->n_rows++;
    }
    if (h->n_rows != nrows)
        rc = td_fail(err, TD_EINTERNAL, NULL, "history of %s changed while read", job_id);
cleanup:
    unprepare(s, st);
    return rc;
}

td_status td_store_history_get(td_store *s, const char *job_id, int64_t after_epoch,
                               td_history *out, td_error *err)
{
    return td_store_history_page(s, job_id, after_epoch, -1, out, err);
}

td_status td_store_history_page(td_store *s, const char *job_id, int64_t after_epoch, int64_t limit,
                                td_history *out, td_error *err)
{
    if (s->pg) return td_pg_history_get(s->pg, job_id, after_epoch, limit, out, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    td_history h;

    memset(&h, 0, sizeof h);
    memset(out, 0, sizeof *out);
    enter(s);
    rc = hist_names_query(s, &st, job_id, err);
    if (rc) goto cleanup;
    const unsigned char *t = sqlite3_column_text(st, 0);
    for (const char *p = (const char *)t; p && *p && h.n_cols < TD_HIST_MAX_COLS;) {
        size_t len = strcspn(p, ",");
        snprintf(h.names[h.n_cols++], TD_HIST_NAME_MAX, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
    }
    if (h.n_cols > 0) {
        rc = hist_rows_locked(s, job_id, after_epoch, limit > 0 ? limit : -1, &h, err);
        if (rc) goto cleanup;
    }
    *out = h;
    memset(&h, 0, sizeof h);
cleanup:
    unprepare(s, st);
    leave(s);
    td_history_fini(&h);
    return rc;
}

td_status td_store_history_truncate(td_store *s, const char *job_id, int64_t after_epoch,
                                    td_error *err)
{
    if (s->pg) return td_pg_history_truncate(s->pg, job_id, after_epoch, err);
    td_status rc = TD_OK;
    int ncols;

    enter(s);
    rc = hist_cols_locked(s, job_id, &ncols, err);
    if (rc) goto cleanup;
    /* The job's progress goes back with its history, in one transaction. */
    if ((rc = exec_sql(s, "BEGIN IMMEDIATE", err))) goto cleanup;
    rc = td_store_run(s, err, "DELETE FROM history WHERE job_id = ?1 AND epoch > ?2", "sI", job_id,
                      after_epoch);
    if (rc) goto cleanup;
    rc = td_store_run(s, err, "UPDATE jobs SET epoch = MIN(epoch, ?2) WHERE id = ?1", "sI", job_id,
                      after_epoch);
    if (rc) goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
cleanup:
    leave(s);
    return rc;
}

/* ---- batched, bounded history ---------------------------------------------------------- */

int64_t td_history_stride(int64_t latest, int64_t max_rows)
{
    if (max_rows <= 0 || latest <= max_rows) return 1;
    int64_t S = 2;
    while (latest / S + 3 > max_rows && S < (INT64_C(1) << 62))
        S *= 2;
    return S;
}

/* 1 when the bound keeps epoch e: a multiple of the stride, the first, the best or the
 * latest. */
static int hist_kept(int64_t e, int64_t S, const td_history_batch *b, int64_t latest)
{
    return e % S == 0 || e == b->first || e == b->best || e == latest;
}

/* Drops the records the bound no longer keeps: all of them when the stride changed or the
 * batch asks for it (a full pass over the job's history), else only the two that were
 * kept as exceptions until now (the previous latest and the previous best). Caller holds
 * the lock and the transaction. */
static td_status hist_thin_locked(td_store *s, const char *job_id, const td_history_batch *b,
                                  int64_t prev_latest, int64_t latest, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int64_t S = td_history_stride(latest, b->max_rows);
    int full = b->full_pass || S != td_history_stride(prev_latest, b->max_rows);

    if (S == 1) return TD_OK;
    rc = td_store_bind(s, &st, err,
                       full ? "DELETE FROM history WHERE job_id = ?1 AND epoch % ?2 != 0 "
                              "AND epoch NOT IN (?3, ?4, ?5)"
                            : "DELETE FROM history WHERE job_id = ?1 AND epoch IN (?6, ?7) "
                              "AND epoch % ?2 != 0 AND epoch NOT IN (?3, ?4, ?5)",
                       "sIIII", job_id, S, b->first, b->best, latest);
    if (rc) goto cleanup;
    if (!full) {
        sqlite3_bind_int64(st, 6, prev_latest);
        sqlite3_bind_int64(st, 7, b->prev_best);
    }
    rc = step_done(s, st, err);
cleanup:
    unprepare(s, st);
    return rc;
}

td_status td_store_history_commit(td_store *s, const char *job_id, const td_history_batch *b,
                                  td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int ncols = 0, row = 0, locked = 0, relaxed = 0;

    if (b->n_rows < 1 || !b->epochs || !b->records) {
        rc = td_fail(err, TD_EINVAL, "records", "an empty history batch");
        goto cleanup;
    }
    if (s->pg) return td_pg_history_commit(s->pg, job_id, b, err);
    int64_t latest = b->epochs[b->n_rows - 1];
    int64_t S = td_history_stride(latest, b->max_rows);
    enter(s);
    locked = 1;
    /* No fsync for this transaction: see store.h. Set outside the transaction; any later
     * write not declared relaxed is put back at FULL first (relax). */
    rc = begin_relaxed(s, &relaxed, err);
    if (rc) goto cleanup;
    rc = hist_cols_locked(s, job_id, &ncols, err);
    if (rc) goto cleanup;
    if (ncols == 0 || ncols != b->n_cols) {
        rc = td_fail(err, TD_EINVAL, "columns",
                     "job %s: records have %d values, history has "
                     "%d columns",
                     job_id, b->n_cols, ncols);
        goto cleanup;
    }
    rc = td_store_query(s, &st, &row, err, "SELECT epoch FROM jobs WHERE id = ?1", "s", job_id);
    if (rc) goto cleanup;
    int64_t prev_latest = row ? sqlite3_column_int64(st, 0) : 0;
    rc = td_store_bind(s, &st, err,
                       "INSERT OR REPLACE INTO history (job_id, epoch, record) "
                       "VALUES (?1, ?2, ?3)",
                       "s", job_id);
    if (rc) goto cleanup;
    size_t rec_bytes = sizeof(double) * (size_t)b->n_cols;
    for (int64_t i = 0; i < b->n_rows; i++) {
        if (!hist_kept(b->epochs[i], S, b, latest)) continue;
        sqlite3_bind_int64(st, 2, b->epochs[i]);
        sqlite3_bind_blob(st, 3, b->records + (size_t)i * (size_t)b->n_cols, (int)rec_bytes,
                          SQLITE_STATIC);
        rc = step_done(s, st, err);
        if (rc) goto cleanup;
        sqlite3_reset(st);
    }
    rc = td_store_run(s, err,
                      "UPDATE jobs SET epoch = ?2, metrics = COALESCE(?3, metrics) "
                      "WHERE id = ?1",
                      "sIo", job_id, latest, b->metrics_json);
    if (rc) goto cleanup;
    rc = hist_thin_locked(s, job_id, b, prev_latest, latest, err);
    if (rc) goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
cleanup:
    unprepare(s, st);
    if (locked && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    end_op(s, NULL, relaxed, locked);
    return rc;
}

void td_history_downsample(td_history *h, int64_t max_points)
{
    int64_t n = h->n_rows;
    if (max_points < 2 || n <= max_points) return;
    /* Point k of m takes row round(k (n - 1) / (m - 1)): strictly increasing in k since
     * n > m, so the rows move forward in place, column by column. */
    int64_t m = max_points;
    for (int64_t k = 0; k < m; k++) {
        int64_t i = (k * (n - 1) + (m - 1) / 2) / (m - 1);
        h->epochs[k] = h->epochs[i];
        for (int c = 0; c < h->n_cols; c++)
            h->cols[(size_t)c * (size_t)m + (size_t)k] = h->cols[(size_t)c * (size_t)n + (size_t)i];
    }
    h->n_rows = m;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

td_status td_store_checkpoint_save(td_store *s, const char *job_id, int64_t epoch, const void *ckpt,
                                   size_t ckpt_len, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char path[PATH_MAX];
    int64_t old = -2; /* -2: unknown, -1: none recorded */
    int state, row = 0, written = 0, committed = 0, locked = 0;

    if (!ckpt) return td_fail(err, TD_EINVAL, "checkpoint", "no checkpoint given");
    if (!id_ok(job_id)) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    if (epoch < 0) {
        rc = td_fail(err, TD_EINVAL, "epoch", "epoch must be >= 0");
        goto cleanup;
    }
    if (s->pg) return td_pg_checkpoint_save(s->pg, job_id, epoch, ckpt, ckpt_len, err);
    td_blob_seg seg = {ckpt, ckpt_len};
    ckpt_path(path, sizeof path, s, job_id, epoch);
    rc =
        td_blob_write_tagged(path, TD_BLOB_CHECKPOINT, (uint64_t)epoch, s->build_tag, &seg, 1, err);
    if (rc) goto cleanup;
    written = 1;
    enter(s);
    locked = 1;
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc) goto cleanup;
    rc = job_state_locked(s, job_id, &state, &old, NULL, err);
    if (rc) goto cleanup;
    rc = td_store_query(s, &st, &row, err, "SELECT epoch FROM jobs WHERE id = ?1", "s", job_id);
    if (rc) goto cleanup;
    if (!row || epoch > sqlite3_column_int64(st, 0)) {
        rc = td_fail(err, TD_EINVAL, "epoch",
                     "checkpoint of epoch %lld is ahead of the committed epoch %lld",
                     (long long)epoch, (long long)(row ? sqlite3_column_int64(st, 0) : 0));
        goto cleanup;
    }
    rc = td_store_bind(s, &st, err, "UPDATE jobs SET checkpoint_epoch = ?2 WHERE id = ?1", "sI",
                       job_id, epoch);
    if (rc) goto cleanup;
    rc = step_commit(s, st, err);
    if (rc) goto cleanup;
    committed = 1;
cleanup:
    end_op(s, st, 0, locked);
    if (written && committed && old >= 0 && old != epoch) {
        ckpt_path(path, sizeof path, s, job_id, old); /* the superseded checkpoint */
        unlink(path);
    } else if (written && !committed && old != -2 && old != epoch) {
        unlink(path); /* never recorded, and not the recorded one */
    }
    return rc;
}

td_status td_store_checkpoint_load(td_store *s, const char *job_id, void **buf, size_t *len,
                                   int64_t *epoch, td_error *err)
{
    return td_store_checkpoint_load_tagged(s, job_id, buf, len, epoch, NULL, 0, err);
}

td_status td_store_checkpoint_load_tagged(td_store *s, const char *job_id, void **buf, size_t *len,
                                          int64_t *epoch, char *tag, size_t tag_cap, td_error *err)
{
    td_status rc = TD_OK;
    char path[PATH_MAX];
    int64_t rec = -1;
    uint64_t aux = 0;
    int state;

    *buf = NULL;
    *len = 0;
    if (!id_ok(job_id)) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    if (s->pg) return td_pg_checkpoint_load(s->pg, job_id, buf, len, epoch, tag, tag_cap, err);
    /* A concurrent checkpoint save may replace the recorded file between reading the row
     * and opening the file: read the row again then (a few times at most). */
    for (int attempt = 0; attempt < 5; attempt++) {
        enter(s);
        rc = job_state_locked(s, job_id, &state, &rec, NULL, err);
        leave(s);
        if (rc) goto cleanup;
        if (rec < 0) {
            rc = td_fail(err, TD_ENOTFOUND, "checkpoint", "job %s has no checkpoint", job_id);
            goto cleanup;
        }
        ckpt_path(path, sizeof path, s, job_id, rec);
        rc = td_blob_read_tagged(path, TD_BLOB_CHECKPOINT, &aux, tag, tag_cap, buf, len, err);
        if (rc != TD_ENOTFOUND) break;
    }
    if (rc == TD_ENOTFOUND)
        rc = td_fail(err, TD_EIO, NULL, "%s: recorded checkpoint file is missing", path);
    if (rc) goto cleanup;
    if ((int64_t)aux != rec) {
        rc = td_fail(err, TD_EIO, NULL, "%s: holds epoch %lld, expected %lld", path, (long long)aux,
                     (long long)rec);
        goto cleanup;
    }
    if (epoch) *epoch = rec;
cleanup:
    if (rc) {
        td_blob_free(*buf);
        *buf = NULL;
        *len = 0;
    }
    return rc;
}

/* ---- models --------------------------------------------------------------------------- */

td_status td_store_model_put(td_store *s, const char *job_id, const char *meta_json,
                             const float *params, int64_t n, td_error *err)
{
    td_status rc = TD_OK;
    char path[PATH_MAX];
    int written = 0, locked = 0, relaxed = 0;
    size_t bytes;

    if (!id_ok(job_id)) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    if (!meta_json || n < 0 || (n > 0 && !params) ||
        __builtin_mul_overflow((size_t)n, sizeof(float), &bytes)) {
        rc = td_fail(err, TD_EINVAL, "model", "model needs meta JSON and n >= 0 parameters");
        goto cleanup;
    }
    if (s->pg) return td_pg_model_put(s->pg, job_id, meta_json, params, n, err);
    /* The new file replaces the job's previous model, which the row may already refer to:
     * if the row's update then fails (a locked or full database), that file must stay
     * (a job's shape never changes, so it matches the row); only a file no row refers to
     * is removed. */
    int state, had_model = 0;
    enter(s);
    rc = job_state_locked(s, job_id, &state, NULL, &had_model, err);
    leave(s);
    if (rc) goto cleanup;
    td_blob_seg segs[2] = {{params, bytes}, {meta_json, strlen(meta_json) + 1}};
    path_of(path, sizeof path, s, "models", job_id, ".bin");
    rc = td_blob_write(path, TD_BLOB_MODEL, (uint64_t)n, segs, 2, err);
    if (rc) goto cleanup;
    written = !had_model;
    enter(s);
    locked = 1;
    /* the file is synced; the row commits relaxed, durable with the job's next durable
     * commit (its end or a checkpoint: see DESIGN, group commit) */
    if ((rc = relax(s, err))) goto cleanup;
    relaxed = 1;
    rc = td_store_run(s, err, "UPDATE jobs SET model_params = ?2, model_image = NULL WHERE id = ?1",
                      "sI", job_id, n);
    if (rc) goto cleanup;
    if (sqlite3_changes(s->db) == 0) {
        written = 1; /* the job is gone: so is any reference to the file */
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id);
        goto cleanup;
    }
    written = 0;
cleanup:
    if (relaxed) unrelax(s);
    if (locked) leave(s);
    if (written) unlink(path);
    return rc;
}

/* Small models (W9: a model per job, thousands of jobs a second) live in their job's row:
 * td_store_model_write_unsynced keeps a model whose image is at most TD_MODEL_INLINE_MAX
 * bytes in jobs.model_image (the bytes its file would hold: blob.h, checksummed) instead of
 * creating models/<id>.bin, so a small job's end costs no file, no inode and no syncfs.
 * The image commits relaxed and becomes durable with td_store_jobs_succeed's group sync,
 * which records it (model_params): the WAL is written in order. td_store_model_put writes
 * a file and clears the image; td_store_model_get reads whichever the row has. */
static td_status model_write_inline(td_store *s, const char *job_id, const td_blob_seg *segs,
                                    int64_t n, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    void *image = NULL;
    size_t len = 0;
    int state, had_model = 0, relaxed = 0;

    if ((rc = td_blob_image(TD_BLOB_MODEL, (uint64_t)n, segs, 2, &image, &len, err))) return rc;
    enter(s);
    if ((rc = relax(s, err))) goto cleanup;
    relaxed = 1;
    if ((rc = job_state_locked(s, job_id, &state, NULL, &had_model, err))) goto cleanup;
    if (had_model) { /* a recorded model is only ever replaced by a synced one */
        rc = td_fail(err, TD_ECONFLICT, "model", "job %s has a recorded model", job_id);
        goto cleanup;
    }
    if ((rc = prepare(s, &st, "UPDATE jobs SET model_image = ?2 WHERE id = ?1", err))) goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_blob(st, 2, image, (int)len, SQLITE_STATIC);
    rc = step_done(s, st, err);
cleanup:
    end_op(s, st, relaxed, 1);
    td_blob_free(image);
    return rc;
}

td_status td_store_model_write_unsynced(td_store *s, const char *job_id, const char *meta_json,
                                        const float *params, int64_t n, td_error *err)
{
    char path[PATH_MAX];
    size_t bytes;
    int state, had_model = 0;

    if (!id_ok(job_id))
        return td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
    if (!meta_json || n < 0 || (n > 0 && !params) ||
        __builtin_mul_overflow((size_t)n, sizeof(float), &bytes))
        return td_fail(err, TD_EINVAL, "model", "model needs meta JSON and n >= 0 parameters");
    if (s->pg) return td_pg_model_write_unsynced(s->pg, job_id, meta_json, params, n, err);
    td_blob_seg segs[2] = {{params, bytes}, {meta_json, strlen(meta_json) + 1}};
    if (bytes + segs[1].len <= TD_MODEL_INLINE_MAX)
        return model_write_inline(s, job_id, segs, n, err);
    enter(s);
    td_status rc = job_state_locked(s, job_id, &state, NULL, &had_model, err);
    leave(s);
    if (rc) return rc;
    if (had_model) /* a recorded file is only ever replaced by a synced one */
        return td_fail(err, TD_ECONFLICT, "model", "job %s has a recorded model", job_id);
    path_of(path, sizeof path, s, "models", job_id, ".bin");
    if ((rc = td_blob_write_unsynced(path, TD_BLOB_MODEL, (uint64_t)n, segs, 2, err))) return rc;
    pthread_mutex_lock(&s->sync_mu);
    s->files_written++;
    pthread_mutex_unlock(&s->sync_mu);
    return TD_OK;
}

td_status td_store_sync_files(td_store *s, td_error *err)
{
    if (s->pg) /* the models are in the database: nothing of theirs in files */
        return TD_OK;
    /* every file written unsynced so far, unless a sync already covered them (small models
     * are in their rows: then there is nothing to sync) */
    pthread_mutex_lock(&s->sync_mu);
    uint64_t target = s->files_written;
    int needed = target > s->files_synced;
    pthread_mutex_unlock(&s->sync_mu);
    if (!needed) return TD_OK;
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syscall(SYS_syncfs, fd) != 0) {
        int e = errno ? errno : EIO;
        if (fd >= 0) close(fd);
        return td_fail(err, e == ENOSPC || e == EDQUOT ? TD_ENOSPACE : TD_EIO, NULL,
                       "cannot sync the files of %s: %s", s->dir, strerror(e));
    }
    close(fd);
    pthread_mutex_lock(&s->sync_mu);
    if (target > s->files_synced) s->files_synced = target;
    pthread_mutex_unlock(&s->sync_mu);
    return TD_OK;
}

td_status td_store_jobs_succeed(td_store *s, const char *const *ids, const int64_t *n_params, int n,
                                td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];
    uint64_t ticket = 0;

    if (s->pg) return td_pg_jobs_succeed(s->pg, ids, n_params, n, err);
    td_store_now(now);
    enter(s);
    if ((rc = relax(s, err))) /* durable at return all the same: group_sync below */
        goto cleanup;
    if ((rc = exec_sql(s, "BEGIN IMMEDIATE", err))) goto cleanup;
    /* a job already terminal (none can be: it was running) or gone is left as it is */
    rc = prepare(s, &st,
                 "UPDATE jobs SET state = 'succeeded', finished_at = ?2, live = 0, "
                 "model_params = ?3 WHERE id = ?1 AND state IN ('queued', 'running')",
                 err);
    for (int i = 0; i < n && rc == TD_OK; i++) {
        sqlite3_reset(st);
        bind_str(st, 1, ids[i]);
        bind_str(st, 2, now);
        sqlite3_bind_int64(st, 3, n_params[i]);
        rc = step_done(s, st, err);
    }
    if (rc == TD_OK && (rc = exec_sql(s, "COMMIT", err)) == TD_OK) ticket = commit_ticket(s);
cleanup:
    unprepare(s, st);
    unrelax(s);
    leave(s);
    if (ticket) rc = group_sync(s, ticket, err);
    return rc;
}

/* The payload of job_id's model image (model_write_inline), checked, into *buf (malloc'd,
 * *len bytes; NULL when the row has no image: the model is in its file), *aux its
 * parameter count. Caller holds the lock. */
static td_status model_image_locked(td_store *s, const char *job_id, uint64_t *aux, void **buf,
                                    size_t *len, td_error *err)
{
    sqlite3_stmt *st = NULL;
    const void *payload;
    size_t plen;
    char what[TD_ID_MAX + 32];
    int row = 0;

    *buf = NULL;
    td_status rc = prepare(s, &st, "SELECT model_image FROM jobs WHERE id = ?1", err);
    if (!rc) {
        bind_str(st, 1, job_id);
        rc = step_row(s, st, &row, err);
    }
    if (rc || !row || sqlite3_column_type(st, 0) == SQLITE_NULL) goto cleanup;
    snprintf(what, sizeof what, "the model of job %s", job_id);
    if ((rc = td_blob_image_check(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                                  TD_BLOB_MODEL, what, aux, &payload, &plen, err)))
        goto cleanup;
    if (!(*buf = malloc(plen ? plen : 1))) {
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory reading %s", what);
        goto cleanup;
    }
    memcpy(*buf, payload, plen);
    *len = plen;
cleanup:
    unprepare(s, st);
    return rc;
}

td_status td_store_model_get(td_store *s, const char *job_id, char **meta_json, float **params,
                             int64_t *n, td_error *err)
{
    if (s->pg) return td_pg_model_get(s->pg, job_id, meta_json, params, n, err);
    td_status rc = TD_OK;
    char path[PATH_MAX];
    void *buf = NULL;
    size_t len = 0;
    uint64_t aux = 0;
    int state, has_model = 0;

    *meta_json = NULL;
    *params = NULL;
    *n = 0;
    if (!id_ok(job_id)) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    path_of(path, sizeof path, s, "models", job_id, ".bin");
    enter(s);
    rc = job_state_locked(s, job_id, &state, NULL, &has_model, err);
    if (!rc && has_model) rc = model_image_locked(s, job_id, &aux, &buf, &len, err);
    leave(s);
    if (rc) goto cleanup;
    if (!has_model) {
        rc = td_fail(err, TD_ENOTFOUND, "model", "job %s has no model", job_id);
        goto cleanup;
    }
    if (!buf && (rc = td_blob_read(path, TD_BLOB_MODEL, &aux, &buf, &len, err))) goto cleanup;
    size_t pbytes = (size_t)aux * sizeof(float);
    if (aux > (uint64_t)INT64_MAX / sizeof(float) || len < pbytes + 1 ||
        ((char *)buf)[len - 1] != '\0') {
        rc = td_fail(err, TD_EIO, NULL, "%s: malformed model file", path);
        goto cleanup;
    }
    *meta_json = strdup((char *)buf + pbytes);
    if (!*meta_json) {
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory reading %s", path);
        goto cleanup;
    }
    *params = buf; /* params sit at the start of the payload */
    *n = (int64_t)aux;
    buf = NULL;
cleanup:
    td_blob_free(buf);
    return rc;
}
