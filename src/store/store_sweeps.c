/* store_sweeps.c — sweeps, their trials, and paused / stopped-early jobs (store_sweeps.h).
 *
 * Same discipline as store.c (whose connection and lock it uses through store_impl.h):
 * every multi-statement change is one BEGIN IMMEDIATE transaction, so a kill -9 leaves
 * either all of it or none; a check and the write that depends on it run under the lock.
 * A PostgreSQL store (store_pg.h) takes each call to its td_pg_sweep_* twin instead. */
#include "store/store_sweeps.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_impl.h"
#include "store/store_pg.h"

static const char *const MIGRATION[] = {
    "CREATE TABLE IF NOT EXISTS sweeps("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  state TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  dataset TEXT NOT NULL,"
    "  validation TEXT,"
    "  spec TEXT NOT NULL,"
    "  metric TEXT NOT NULL,"
    "  maximize INTEGER NOT NULL,"
    "  epochs INTEGER NOT NULL,"
    "  min_epochs INTEGER NOT NULL,"
    "  eta INTEGER NOT NULL,"
    "  rung INTEGER NOT NULL DEFAULT 0,"
    "  n_trials INTEGER NOT NULL,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  created_at TEXT NOT NULL,"
    "  started_at TEXT,"
    "  finished_at TEXT,"
    "  error_code TEXT,"
    "  error_message TEXT"
    ") WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS sweeps_state ON sweeps(state, id)",
    "CREATE TABLE IF NOT EXISTS sweep_trials("
    "  sweep_id TEXT NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  \"values\" TEXT NOT NULL,"
    "  hyperparameters TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  PRIMARY KEY (sweep_id, idx)"
    ") WITHOUT ROWID",
};

/* Columns the jobs table gains: name, then its definition. */
static const char *const JOB_COLUMNS[][2] = {
    {"sweep", "ALTER TABLE jobs ADD COLUMN sweep TEXT"},
    {"sweep_trial", "ALTER TABLE jobs ADD COLUMN sweep_trial INTEGER"},
    {"stop_at_epoch", "ALTER TABLE jobs ADD COLUMN stop_at_epoch INTEGER"},
    {"paused", "ALTER TABLE jobs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0"},
    {"stopped_early", "ALTER TABLE jobs ADD COLUMN stopped_early INTEGER NOT NULL DEFAULT 0"},
};

#define SWEEP_COLS                                                                        \
    "id, state, model, dataset, validation, spec, metric, maximize, epochs, min_epochs, " \
    "eta, rung, n_trials, cancel_requested, created_at, started_at, finished_at, "        \
    "error_code, error_message"

static void copy_col(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static char *dup_col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return strdup(t ? (const char *)t : "");
}

static int state_of(const unsigned char *t)
{
    td_job_state s;
    return t && td_job_state_parse((const char *)t, &s, NULL) == TD_OK ? (int)s : -1;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

td_status td_store_sweeps_migrate(td_store *s, td_error *err)
{
    td_status rc = td_store_exec(s, "BEGIN IMMEDIATE", err);
    sqlite3_stmt *st = NULL;
    for (size_t i = 0; !rc && i < sizeof MIGRATION / sizeof *MIGRATION; i++)
        rc = td_store_exec(s, MIGRATION[i], err);
    for (size_t i = 0; !rc && i < sizeof JOB_COLUMNS / sizeof *JOB_COLUMNS; i++) {
        int row = 0;
        if ((rc = td_store_prepare(s, &st,
                                   "SELECT 1 FROM pragma_table_info('jobs') "
                                   "WHERE name = ?1",
                                   err)))
            break;
        sqlite3_bind_text(st, 1, JOB_COLUMNS[i][0], -1, SQLITE_STATIC);
        if (!(rc = td_store_step_row(s, st, &row, err)) && !row)
            rc = td_store_exec(s, JOB_COLUMNS[i][1], err);
    }
    if (!rc)
        rc = td_store_exec(s,
                           "CREATE UNIQUE INDEX IF NOT EXISTS jobs_sweep_trial ON "
                           "jobs(sweep, sweep_trial)",
                           err); /* one job per trial */
    td_store_unprepare(s, st);
    if (!rc)
        rc = td_store_exec(s, "COMMIT", err);
    else
        td_store_exec(s, "ROLLBACK", NULL);
    return rc;
}

/* ---- rows ------------------------------------------------------------------------- */

void td_sweep_row_fini(td_sweep_row *r)
{
    if (r) {
        free(r->spec);
        r->spec = NULL;
    }
}

void td_sweep_rows_free(td_sweep_row *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        td_sweep_row_fini(&rows[i]);
    free(rows);
}

void td_sweep_trials_free(td_sweep_trial *t, int n)
{
    for (int i = 0; t && i < n; i++) {
        free(t[i].values);
        free(t[i].hyperparameters);
    }
    free(t);
}

/* Fills row (a td_sweep_row) from a SWEEP_COLS row. */
static td_status read_sweep(sqlite3_stmt *st, void *row, td_error *err)
{
    td_sweep_row *r = row;
    memset(r, 0, sizeof *r);
    td_store_read_cols(st, r, TD_SWEEP_READ, TD_SWEEP_NREAD);
    if (!(r->spec = dup_col(st, 5)))
        return td_fail(err, TD_ENOMEM, NULL, "out of memory reading sweep %s", r->id);
    return TD_OK;
}

/* ---- sweeps ----------------------------------------------------------------------- */

/* TD_ENOTFOUND (field) unless dataset id exists; lock held. */
static td_status dataset_exists(td_store *s, const char *id, const char *field, td_error *err)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    td_status rc =
        td_store_query(s, &st, &row, err, "SELECT 1 FROM datasets WHERE id = ?1", "o", id);
    td_store_unprepare(s, st);
    if (!rc && !row) rc = td_fail(err, TD_ENOTFOUND, field, "dataset %s not found", id);
    return rc;
}

td_status td_store_sweep_insert(td_store *s, const td_sweep_spec *spec,
                                const td_sweep_trial_spec *trials, int n, char id_out[TD_ID_MAX],
                                td_error *err)
{
    sqlite3_stmt *st = NULL;
    char id[TD_ID_MAX], now[TD_TIME_MAX];
    id_out[0] = '\0';
    if (n < 1 || n > TD_SWEEP_MAX_TRIALS)
        return td_fail(err, TD_EINVAL, "trials", "a sweep has 1 to %d trials", TD_SWEEP_MAX_TRIALS);
    if (td_store_pg(s)) return td_pg_sweep_insert(td_store_pg(s), spec, trials, n, id_out, err);
    td_store_new_id(id, "swp_");
    td_store_now(now);
    td_store_enter(s);
    td_status rc = td_store_exec(s, "BEGIN IMMEDIATE", err);
    if (!rc) rc = dataset_exists(s, spec->dataset, "dataset", err);
    if (!rc && spec->validation && *spec->validation)
        rc = dataset_exists(s, spec->validation, "validation", err);
    if (!rc)
        rc = td_store_run(s, err,
                          "INSERT INTO sweeps (id, state, model, dataset, validation, spec, "
                          "metric, maximize, epochs, min_epochs, eta, n_trials, created_at) "
                          "VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                          "?12)",
                          "ooooooiIIIIo", id, spec->model, spec->dataset, spec->validation,
                          spec->spec, spec->metric, spec->maximize, spec->epochs, spec->min_epochs,
                          spec->eta, (int64_t)n, now);
    if (!rc)
        rc = td_store_prepare(s, &st,
                              "INSERT INTO sweep_trials (sweep_id, idx, \"values\", "
                              "hyperparameters, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                              err);
    for (int i = 0; !rc && i < n; i++) {
        sqlite3_reset(st);
        bind_text(st, 1, id);
        sqlite3_bind_int64(st, 2, i);
        sqlite3_bind_text(st, 3, trials[i].values, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 4, trials[i].hyperparameters, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 5, (int64_t)trials[i].bytes);
        rc = td_store_step_done(s, st, err);
    }
    if (!rc) rc = td_store_exec(s, "COMMIT", err);
    td_store_unprepare(s, st);
    td_store_leave(s);
    if (!rc) snprintf(id_out, TD_ID_MAX, "%s", id);
    return rc;
}

td_status td_store_sweep_get(td_store *s, const char *id, td_sweep_row *out, td_error *err)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    memset(out, 0, sizeof *out);
    if (td_store_pg(s)) return td_pg_sweep_get(td_store_pg(s), id, out, err);
    td_store_enter(s);
    td_status rc = td_store_query(s, &st, &row, err,
                                  "SELECT " SWEEP_COLS " FROM sweeps WHERE id = ?1", "o", id);
    if (!rc && !row) rc = td_fail(err, TD_ENOTFOUND, NULL, "sweep %s not found", id ? id : "");
    if (!rc) rc = read_sweep(st, out, err);
    td_store_unprepare(s, st);
    td_store_leave(s);
    return rc;
}

td_status td_store_sweep_list(td_store *s, int limit, const char *after, td_sweep_row **rows,
                              int *n, char next[TD_ID_MAX], td_error *err)
{
    sqlite3_stmt *st = NULL;
    char cursor[TD_ID_MAX];
    *rows = NULL;
    td_status rc = td_store_page_start(limit, after, cursor, next, n, err);
    if (rc) return rc;
    if (td_store_pg(s))
        return td_pg_sweep_list(td_store_pg(s), 0, limit, cursor, rows, n, next, err);
    td_store_enter(s);
    rc = td_store_bind(s, &st, err,
                       cursor[0] ? "SELECT " SWEEP_COLS
                                   " FROM sweeps WHERE id < ?1 ORDER BY id DESC LIMIT ?2"
                                 : "SELECT " SWEEP_COLS " FROM sweeps ORDER BY id DESC LIMIT ?2",
                       "oI", cursor, (int64_t)limit + 1);
    void *v = NULL;
    if (!rc) rc = td_store_collect(s, st, limit, &TD_SWEEP_ROWS, read_sweep, &v, n, next, err);
    *rows = v;
    td_store_unprepare(s, st);
    td_store_leave(s);
    return rc;
}

td_status td_store_sweep_list_active(td_store *s, td_sweep_row **rows, int *n, td_error *err)
{
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    *n = 0;
    if (td_store_pg(s)) return td_pg_sweep_list(td_store_pg(s), 1, 0, NULL, rows, n, NULL, err);
    td_store_enter(s);
    td_status rc = td_store_prepare(s, &st,
                                    "SELECT " SWEEP_COLS " FROM sweeps WHERE state IN "
                                    "('queued', 'running') ORDER BY id ASC",
                                    err);
    void *v = NULL;
    if (!rc) rc = td_store_collect(s, st, INT32_MAX, &TD_SWEEP_ROWS, read_sweep, &v, n, NULL, err);
    *rows = v;
    td_store_unprepare(s, st);
    td_store_leave(s);
    return rc;
}

/* Fills row (a td_sweep_trial) from a row of td_store_sweep_trials' query. */
static td_status read_trial(sqlite3_stmt *st, void *row, td_error *err)
{
    td_sweep_trial *t = row;
    memset(t, 0, sizeof *t);
    t->index = sqlite3_column_int64(st, 0);
    t->values = dup_col(st, 1);
    t->hyperparameters = dup_col(st, 2);
    t->bytes = (uint64_t)sqlite3_column_int64(st, 3);
    copy_col(st, 4, t->job, sizeof t->job);
    int state = state_of(sqlite3_column_text(st, 5));
    t->state = state < 0 ? TD_JOB_QUEUED : (td_job_state)state;
    t->paused = sqlite3_column_int(st, 6);
    t->stopped_early = sqlite3_column_int(st, 7);
    t->cancel_requested = sqlite3_column_int(st, 8);
    t->epoch = sqlite3_column_int64(st, 9);
    t->stop_at_epoch = sqlite3_column_int64(st, 10);
    t->metric = sqlite3_column_type(st, 11) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 11);
    copy_col(st, 12, t->error_code, sizeof t->error_code);
    if (t->values && t->hyperparameters) return TD_OK;
    free(t->values), free(t->hyperparameters);
    return td_fail(err, TD_ENOMEM, NULL, "out of memory listing trials");
}

td_status td_store_sweep_trials(td_store *s, const char *id, const char *metric,
                                td_sweep_trial **out, int *n, td_error *err)
{
    sqlite3_stmt *st = NULL;
    void *v = NULL;
    char path[TD_HIST_NAME_MAX + 4];
    snprintf(path, sizeof path, "$.%s", metric ? metric : "loss");
    *out = NULL;
    *n = 0;
    if (td_store_pg(s)) return td_pg_sweep_trials(td_store_pg(s), id, metric, out, n, err);
    td_store_enter(s);
    td_status rc = td_store_prepare(
        s, &st,
        "SELECT t.idx, t.\"values\", t.hyperparameters, t.bytes, j.id, j.state, j.paused, "
        "j.stopped_early, j.cancel_requested, j.epoch, j.stop_at_epoch, "
        "json_extract(j.metrics, ?2), j.error_code "
        "FROM sweep_trials t LEFT JOIN jobs j ON j.sweep = t.sweep_id AND j.sweep_trial = t.idx "
        "WHERE t.sweep_id = ?1 ORDER BY t.idx",
        err);
    if (!rc) {
        bind_text(st, 1, id);
        bind_text(st, 2, path);
    }
    if (!rc) rc = td_store_collect(s, st, INT32_MAX, &TD_TRIAL_ROWS, read_trial, &v, n, NULL, err);
    td_store_unprepare(s, st);
    td_store_leave(s);
    *out = v;
    return rc;
}

/* Runs sql on sweep id (?1, texts ?2..?5 from args, NULL for none) if the sweep is
 * active; TD_ENOTFOUND / TD_ECONFLICT otherwise. One transaction. */
static td_status update_active(td_store *s, const char *id, const char *sql,
                               const char *const args[4], td_error *err)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    if (td_store_pg(s)) { /* the same statement with PostgreSQL's $N placeholders */
        char pg[512];
        int nargs = 0;
        snprintf(pg, sizeof pg, "%s", sql);
        for (char *q = pg; (q = strchr(q, '?')) != NULL; q++) {
            *q = '$';
            nargs = q[1] - '1' > nargs ? q[1] - '1' : nargs;
        }
        return td_pg_sweep_update_active(td_store_pg(s), id, pg, args, nargs, err);
    }
    td_store_enter(s);
    td_status rc = td_store_exec(s, "BEGIN IMMEDIATE", err);
    if (!rc)
        rc = td_store_query(s, &st, &row, err, "SELECT state FROM sweeps WHERE id = ?1", "o", id);
    if (!rc && !row) rc = td_fail(err, TD_ENOTFOUND, NULL, "sweep %s not found", id ? id : "");
    if (!rc) {
        int cur = state_of(sqlite3_column_text(st, 0));
        if (cur != TD_JOB_QUEUED && cur != TD_JOB_RUNNING)
            rc = td_fail(err, TD_ECONFLICT, "state", "sweep %s is already %s", id,
                         cur < 0 ? "gone" : td_job_state_name((td_job_state)cur));
    }
    if (!rc) rc = td_store_prepare(s, &st, sql, err);
    if (!rc) {
        bind_text(st, 1, id);
        for (int i = 0; i < 4; i++)
            if (sqlite3_bind_parameter_count(st) >= i + 2) bind_text(st, i + 2, args[i]);
        rc = td_store_step_done(s, st, err);
    }
    if (!rc) rc = td_store_exec(s, "COMMIT", err);
    td_store_unprepare(s, st);
    td_store_leave(s);
    return rc;
}

td_status td_store_sweep_set_state(td_store *s, const char *id, td_job_state state,
                                   const char *code, const char *msg, td_error *err)
{
    char now[TD_TIME_MAX];
    td_store_now(now);
    if (state == TD_JOB_RUNNING) {
        const char *const args[4] = {now, NULL, NULL, NULL};
        return update_active(s, id,
                             "UPDATE sweeps SET state = 'running', started_at = "
                             "COALESCE(started_at, ?2) WHERE id = ?1",
                             args, err);
    }
    if (!td_job_state_terminal(state))
        return td_fail(err, TD_EINVAL, "state", "a sweep cannot go back to %s",
                       td_job_state_name(state));
    const char *const args[4] = {td_job_state_name(state), now, code, msg};
    return update_active(s, id,
                         "UPDATE sweeps SET state = ?2, finished_at = ?3, "
                         "error_code = ?4, error_message = ?5 WHERE id = ?1",
                         args, err);
}

td_status td_store_sweep_cancel(td_store *s, const char *id, td_error *err)
{
    const char *const args[4] = {NULL, NULL, NULL, NULL};
    return update_active(s, id, "UPDATE sweeps SET cancel_requested = 1 WHERE id = ?1", args, err);
}

td_status td_store_sweep_promote(td_store *s, const char *id, int64_t rung, const char *const *stop,
                                 int n, td_error *err)
{
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];
    if (td_store_pg(s)) return td_pg_sweep_promote(td_store_pg(s), id, rung, stop, n, err);
    td_store_now(now);
    td_store_enter(s);
    td_status rc = td_store_exec(s, "BEGIN IMMEDIATE", err);
    if (!rc)
        rc = td_store_prepare(s, &st,
                              "UPDATE jobs SET state = 'succeeded', stopped_early = 1, "
                              "paused = 0, finished_at = ?2 WHERE id = ?1 AND paused = 1 AND "
                              "state = 'queued'",
                              err);
    for (int i = 0; !rc && i < n; i++) {
        sqlite3_reset(st);
        bind_text(st, 1, stop[i]);
        bind_text(st, 2, now);
        rc = td_store_step_done(s, st, err);
    }
    if (!rc) rc = td_store_run(s, err, "UPDATE sweeps SET rung = ?2 WHERE id = ?1", "oI", id, rung);
    if (!rc) rc = td_store_exec(s, "COMMIT", err);
    td_store_unprepare(s, st);
    td_store_leave(s);
    return rc;
}

td_status td_store_sweep_delete(td_store *s, const char *id, td_error *err)
{
    td_sweep_row row;
    td_status rc = td_store_sweep_get(s, id, &row, err);
    if (rc) return rc;
    int active = !td_job_state_terminal(row.state);
    td_sweep_row_fini(&row);
    if (active)
        return td_fail(err, TD_ECONFLICT, "state", "sweep %s is %s; cancel it first", id,
                       td_job_state_name(row.state));
    /* A terminal sweep releases nothing more: its jobs can go one by one (each with its
     * files and history), then its rows. A crash in between leaves the sweep with fewer
     * trial jobs; deleting it again finishes. */
    td_sweep_trial *t = NULL;
    int n = 0;
    if ((rc = td_store_sweep_trials(s, id, NULL, &t, &n, err))) return rc;
    for (int i = 0; !rc && i < n; i++)
        if (t[i].job[0] && (rc = td_store_job_delete(s, t[i].job, err)) == TD_ENOTFOUND)
            rc = TD_OK; /* deleted on its own meanwhile */
    td_sweep_trials_free(t, n);
    if (rc) return rc;
    if (td_store_pg(s)) return td_pg_sweep_delete_rows(td_store_pg(s), id, err);
    td_store_enter(s);
    rc = td_store_exec(s, "BEGIN IMMEDIATE", err);
    if (!rc) rc = td_store_run(s, err, "DELETE FROM sweep_trials WHERE sweep_id = ?1", "o", id);
    if (!rc) rc = td_store_run(s, err, "DELETE FROM sweeps WHERE id = ?1", "o", id);
    if (!rc) rc = td_store_exec(s, "COMMIT", err);
    td_store_leave(s);
    return rc;
}

td_status td_store_job_in_active_sweep(td_store *s, const char *id, td_error *err)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    td_status rc = td_store_query(
        s, &st, &row, err,
        "SELECT w.id FROM jobs j JOIN sweeps w ON w.id = j.sweep WHERE j.id = ?1 AND "
        "w.state IN ('queued', 'running')",
        "o", id);
    if (!rc && row)
        rc = td_fail(err, TD_ECONFLICT, "state",
                     "job %s is a trial of sweep %s, which is "
                     "still active; delete the sweep once it ends",
                     id, (const char *)sqlite3_column_text(st, 0));
    td_store_unprepare(s, st);
    return rc;
}

int td_store_sweeps_leader(td_store *s)
{
    return td_store_pg(s) ? td_pg_sweeps_leader(td_store_pg(s)) : 1;
}

/* ---- paused jobs ------------------------------------------------------------------ */

/* Runs sql on job id (?1; ?2 = now, ?3 = x) and returns TD_ECONFLICT when no row changed
 * (the job is not in the state sql requires) or TD_ENOTFOUND when it does not exist; with
 * a shared store, pg_sql (the same statement in PostgreSQL's words) through td_pg_job_update. */
static td_status job_update(td_store *s, const char *id, const char *sql, const char *pg_sql,
                            int64_t x, td_error *err)
{
    if (td_store_pg(s)) return td_pg_job_update(td_store_pg(s), id, pg_sql, x, err);
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];
    int row = 0;
    td_store_now(now);
    sqlite3 *db = td_store_enter(s);
    td_status rc = td_store_prepare(s, &st, sql, err);
    if (!rc) {
        bind_text(st, 1, id);
        bind_text(st, 2, now);
        if (x > 0) sqlite3_bind_int64(st, 3, x);
        rc = td_store_step_done(s, st, err);
    }
    if (!rc && sqlite3_changes(db) == 0) {
        rc = td_store_query(s, &st, &row, err, "SELECT state FROM jobs WHERE id = ?1", "o", id);
        if (!rc)
            rc = row ? td_fail(err, TD_ECONFLICT, "state", "job %s is %s", id,
                               (const char *)sqlite3_column_text(st, 0))
                     : td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", id);
    }
    td_store_unprepare(s, st);
    td_store_leave(s);
    return rc;
}

td_status td_store_job_pause(td_store *s, const char *id, td_error *err)
{
    /* with a shared store, a paused trial waits for its sweep, not for a lease: the lease
     * ends with it */
    return job_update(s, id,
                      "UPDATE jobs SET "
                      "state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, "
                      "paused = 1 - cancel_requested, "
                      "finished_at = CASE WHEN cancel_requested THEN ?2 END "
                      "WHERE id = ?1 AND state = 'running'",
                      "UPDATE jobs SET "
                      "state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,"
                      " paused = 1 - cancel_requested, lease_until = NULL, "
                      "finished_at = CASE WHEN cancel_requested = 1 THEN $2 END "
                      "WHERE id = $1 AND state = 'running' AND $3::bigint IS NULL",
                      0, err);
}

td_status td_store_job_continue(td_store *s, const char *id, int64_t stop_at, td_error *err)
{
    return job_update(s, id,
                      "UPDATE jobs SET paused = 0, stop_at_epoch = ?3 "
                      "WHERE id = ?1 AND paused = 1 AND state = 'queued' AND ?2 IS NOT NULL",
                      "UPDATE jobs SET paused = 0, stop_at_epoch = $3::bigint "
                      "WHERE id = $1 AND paused = 1 AND state = 'queued' AND $2 <> ''",
                      stop_at, err);
}
