/* store_jobs.c — the SQLite store's jobs table: insert, reads, the state transitions,
 * crash-loop marks (store.h; DESIGN in store.c). */
#include "store/store_sqlite.h"

#include <unistd.h>

/* ---- jobs --------------------------------------------------------------------------- */

void td_job_row_fini(td_job_row *row)
{
    free(row->hyperparameters);
    free(row->metrics);
    free(row->classes);
    free(row->warnings);
    row->hyperparameters = NULL;
    row->metrics = NULL;
    row->classes = NULL;
    row->warnings = NULL;
}

void td_job_rows_free(td_job_row *rows, int n)
{
    if (!rows) return;
    for (int i = 0; i < n; i++)
        td_job_row_fini(&rows[i]);
    free(rows);
}

/* Fills row (a td_job_row) from a JOB_COLS row; TD_ENOMEM if a JSON copy fails (it is then
 * fini'd). */
td_status read_job(sqlite3_stmt *st, void *row, td_error *err)
{
    td_job_row *r = row;
    memset(r, 0, sizeof *r);
    td_store_read_cols(st, r, TD_JOB_READ, TD_JOB_NREAD);
    if (col_dup(st, 5, &r->hyperparameters) != 0 || col_dup(st, 16, &r->metrics) != 0 ||
        col_dup(st, 26, &r->classes) != 0 || col_dup(st, 27, &r->warnings) != 0) {
        td_job_row_fini(r);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory reading job %s", r->id);
    }
    return TD_OK;
}

/* One job by "id" or "idempotency_key"; caller holds the lock. */
td_status job_get_locked(td_store *s, const char *col, const char *key, td_job_row *out,
                         td_error *err)
{
    td_status rc = TD_OK;
    int by_id = strcmp(col, "id") == 0;
    sqlite3_stmt *st = s->st_job_by[!by_id];
    int row = 0;

    if (!st) { /* prepared once, kept for every later call */
        const char *sql = by_id ? "SELECT " JOB_COLS " FROM jobs WHERE id = ?1"
                                : "SELECT " JOB_COLS " FROM jobs WHERE idempotency_key = ?1";
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
            return db_fail(s, err, "prepare");
        s->st_job_by[!by_id] = st;
    }
    bind_str(st, 1, key ? key : "");
    rc = step_row(s, st, &row, err);
    if (rc) goto cleanup;
    if (!row) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s%s not found",
                     strcmp(col, "id") == 0 ? "" : "with idempotency key ", key ? key : "");
        goto cleanup;
    }
    rc = read_job(st, out, err);
cleanup:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* One job by col ("id" or "idempotency_key"), from either backend. */
static td_status job_get_by(td_store *s, const char *col, const char *key, td_job_row *out,
                            td_error *err)
{
    memset(out, 0, sizeof *out);
    if (s->pg) return td_pg_job_get(s->pg, col, key, out, err);
    enter(s);
    td_status rc = job_get_locked(s, col, key, out, err);
    leave(s);
    return rc;
}

td_status td_store_job_get(td_store *s, const char *id, td_job_row *out, td_error *err)
{
    return job_get_by(s, "id", id, out, err);
}

td_status td_store_job_find_idempotent(td_store *s, const char *key, td_job_row *out, td_error *err)
{
    return job_get_by(s, "idempotency_key", key, out, err);
}

/* The state of job id (-1 when absent), plus its checkpoint epoch and model flag. */
td_status job_state_locked(td_store *s, const char *id, int *state, int64_t *ckpt_epoch,
                           int *has_model, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    *state = -1;
    if (ckpt_epoch) *ckpt_epoch = -1;
    rc = td_store_query(s, &st, &row, err,
                        "SELECT state, checkpoint_epoch, model_params IS NOT NULL FROM jobs "
                        "WHERE id = ?1",
                        "s", id ? id : "");
    if (rc) goto cleanup;
    if (!row) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", id ? id : "");
        goto cleanup;
    }
    *state = state_from_text(sqlite3_column_text(st, 0));
    if (ckpt_epoch)
        *ckpt_epoch = sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 1);
    if (has_model) *has_model = sqlite3_column_int(st, 2);
cleanup:
    unprepare(s, st);
    return rc;
}

td_status td_store_job_insert(td_store *s, const td_job_spec *spec, char id_out[TD_ID_MAX],
                              td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    td_dataset_meta m;
    char id[TD_ID_MAX], now[TD_TIME_MAX];
    int row = 0, locked = 0, relaxed = 0;
    uint64_t ticket = 0;
    const char *key =
        spec && spec->idempotency_key && *spec->idempotency_key ? spec->idempotency_key : NULL;

    id_out[0] = '\0';
    if (!spec || !spec->model || !*spec->model || strlen(spec->model) >= TD_MODEL_NAME_MAX) {
        rc = td_fail(err, TD_EINVAL, "model", "model name is empty or too long");
        goto cleanup;
    }
    if (!spec->hyperparameters) {
        rc = td_fail(err, TD_EINVAL, "hyperparameters", "hyperparameters are missing");
        goto cleanup;
    }
    if (spec->epochs < 0) {
        rc = td_fail(err, TD_EINVAL, "hyperparameters.epochs", "epochs must be >= 0");
        goto cleanup;
    }
    if (key && strlen(key) >= TD_IDEM_KEY_MAX) {
        rc = td_fail(err, TD_EINVAL, "idempotency_key", "Idempotency-Key is longer than %d bytes",
                     TD_IDEM_KEY_MAX - 1);
        goto cleanup;
    }
    if (s->pg) return td_pg_job_insert(s->pg, spec, id_out, err);
    enter(s);
    locked = 1;
    rc = begin_relaxed(s, &relaxed, err); /* durable at return all the same: group_sync below */
    if (rc) goto cleanup;
    if (key) {
        rc = td_store_query(s, &st, &row, err, "SELECT id FROM jobs WHERE idempotency_key = ?1",
                            "s", key);
        if (rc) goto cleanup;
        if (row) {
            col_copy(st, 0, id_out, TD_ID_MAX);
            rc = td_fail(err, TD_ECONFLICT, "idempotency_key",
                         "a job with this Idempotency-Key exists: %s", id_out);
            goto cleanup;
        }
    }
    rc = ds_get_locked(s, spec->dataset, &m, err);
    if (rc) goto cleanup;
    if (spec->validation && *spec->validation) {
        rc = ds_get_locked(s, spec->validation, &m, err);
        if (rc) {
            if (rc == TD_ENOTFOUND)
                td_fail(err, TD_ENOTFOUND, "validation", "dataset %s not found", spec->validation);
            goto cleanup;
        }
    }
    td_store_new_id(id, "job_");
    td_store_now(now);
    rc = td_store_bind(s, &st, err,
                       "INSERT INTO jobs (id, model, dataset, validation, state, "
                       "hyperparameters, created_at, epochs, idempotency_key, sweep, "
                       "sweep_trial, stop_at_epoch, classes) VALUES (?1, ?2, ?3, ?4, 'queued', "
                       "?5, ?6, ?7, ?8, ?9, ?10, ?11, (SELECT classes FROM datasets "
                       "WHERE id = ?3))",
                       "sssossIoo", id, spec->model, spec->dataset, spec->validation,
                       spec->hyperparameters, now, spec->epochs, key, spec->sweep);
    if (rc) goto cleanup;
    if (spec->sweep && *spec->sweep) sqlite3_bind_int64(st, 10, spec->sweep_trial);
    if (spec->stop_at_epoch > 0) sqlite3_bind_int64(st, 11, spec->stop_at_epoch);
    rc = step_commit(s, st, err);
    if (rc) goto cleanup;
    ticket = commit_ticket(s);
    snprintf(id_out, TD_ID_MAX, "%s", id);
cleanup:
    end_op(s, st, relaxed, locked);
    if (ticket) /* the 202 promises the job survives a power loss */
        rc = group_sync(s, ticket, err);
    return rc;
}

td_status td_store_job_list(td_store *s, int state, int limit, const char *after, td_job_row **rows,
                            int *n, char next[TD_ID_MAX], td_error *err)
{
    if (s->pg) return td_pg_job_list(s->pg, state, limit, after, rows, n, next, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int locked = 0;
    char cursor[TD_ID_MAX];
    void *v = NULL;

    *rows = NULL;
    if ((rc = td_store_page_start(limit, after, cursor, next, n, err))) goto cleanup;
    if (state >= TD_JOB_NSTATES) {
        rc = td_fail(err, TD_EINVAL, "state", "unknown state %d", state);
        goto cleanup;
    }
    enter(s);
    locked = 1;
    /* one statement per filter shape, so that each is a range of the primary key or of
     * jobs_state (state, id): "?1 IS NULL OR ..." would make SQLite scan the table */
    static const char *const sql[2][2] = {
        {"SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?3",
         "SELECT " JOB_COLS " FROM jobs WHERE id < ?2 ORDER BY id DESC LIMIT ?3"},
        {"SELECT " JOB_COLS " FROM jobs WHERE state = ?1 ORDER BY id DESC LIMIT ?3",
         "SELECT " JOB_COLS " FROM jobs WHERE state = ?1 AND id < ?2 ORDER BY id DESC "
         "LIMIT ?3"}};
    rc = td_store_bind(s, &st, err, sql[state >= 0][cursor[0] != '\0'], "ooI",
                       state >= 0 ? STATE_NAMES[state] : NULL, cursor, (int64_t)limit + 1);
    if (rc) goto cleanup;
    rc = td_store_collect(s, st, limit, &TD_JOB_ROWS, read_job, &v, n, next, err);
    *rows = v;
cleanup:
    end_op(s, st, 0, locked);
    return rc;
}

/* All the rows of sql (SELECT JOB_COLS ...), with arg bound to ?1 unless NULL; caller
 * holds the lock. */
static td_status select_jobs_locked(td_store *s, const char *sql, const char *arg,
                                    td_job_row **rows, int *n, td_error *err)
{
    sqlite3_stmt *st = NULL;
    td_status rc = td_store_bind(s, &st, err, sql, arg ? "s" : "", arg);
    void *v = NULL;
    if (!rc) rc = td_store_collect(s, st, INT32_MAX, &TD_JOB_ROWS, read_job, &v, n, NULL, err);
    *rows = v;
    unprepare(s, st);
    return rc;
}

td_status td_store_job_list_active(td_store *s, td_job_row **rows, int *n, td_error *err)
{
    if (s->pg) return td_pg_job_list_active(s->pg, rows, n, err);
    *rows = NULL;
    *n = 0;
    enter(s);
    td_status rc = select_jobs_locked(s,
                                      "SELECT " JOB_COLS " FROM jobs WHERE state IN "
                                      "('queued', 'running') AND paused = 0 ORDER BY id ASC",
                                      NULL, rows, n, err);
    leave(s);
    return rc;
}

td_status td_store_job_counts(td_store *s, int64_t counts[TD_JOB_NSTATES], td_error *err)
{
    if (s->pg) return td_pg_job_counts(s->pg, counts, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;

    for (int i = 0; i < TD_JOB_NSTATES; i++)
        counts[i] = 0;
    enter(s);
    rc = prepare(s, &st, "SELECT state, COUNT(*) FROM jobs GROUP BY state", err);
    if (rc) goto cleanup;
    for (;;) {
        int row;
        rc = step_row(s, st, &row, err);
        if (rc || !row) goto cleanup;
        int i = state_from_text(sqlite3_column_text(st, 0));
        if (i >= 0) counts[i] = sqlite3_column_int64(st, 1);
    }
cleanup:
    unprepare(s, st);
    leave(s);
    return rc;
}

/* ---- state transitions (job_transition.h) ------------------------------------------- */

/* The SQL of transition t from the state it found. Parameters: ?1 id, ?2 now, ?3 the
 * terminal state, ?4 error code, ?5 error message, ?6 live; each statement uses some. */
static const char *transition_sql(const td_job_transition *t)
{
    int queued = t->found == TD_JOB_QUEUED;
    switch (t->kind) {
    case TD_TRANS_START:
        return queued ? "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, "
                        "?2), live = MAX(live, ?6) WHERE id = ?1" /* a paused trial keeps its
                                                                     first start */
                      : "UPDATE jobs SET restarts = restarts + 1, "
                        "started_at = COALESCE(started_at, ?2), live = MAX(live, ?6) "
                        "WHERE id = ?1";
    case TD_TRANS_FINISH:
        return "UPDATE jobs SET state = ?3, finished_at = ?2, error_code = ?4, "
               "error_message = ?5, live = 0 WHERE id = ?1";
    case TD_TRANS_CANCEL:
        return queued ? "UPDATE jobs SET state = 'cancelled', finished_at = ?2, "
                        "cancel_requested = 1 WHERE id = ?1"
                      : "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1";
    case TD_TRANS_DELETE: break;
    }
    return "DELETE FROM jobs WHERE id = ?1";
}

/* Runs t (job_transition.h): td_pg_job_transition with a PostgreSQL store, else here, in
 * one BEGIN IMMEDIATE transaction. A start and a finish commit relaxed (see DESIGN, group
 * commit): a finish is durable at return all the same (group_sync), a start with the job's
 * next durable commit. A cancel and a delete commit with synchronous=FULL. */
static td_status job_transition(td_store *s, td_job_transition *t, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];
    int relaxed = 0;
    uint64_t ticket = 0;

    if (s->pg) return td_pg_job_transition(s->pg, t, err);
    enter(s);
    if (t->kind == TD_TRANS_START || t->kind == TD_TRANS_FINISH) {
        if ((rc = relax(s, err))) goto cleanup;
        relaxed = 1;
    }
    if ((rc = exec_sql(s, "BEGIN IMMEDIATE", err)) ||
        (rc = job_state_locked(s, t->id, &t->found, &t->ckpt_epoch, &t->has_model, err)) ||
        (rc = td_job_transition_check(t, err)))
        goto cleanup;
    if (t->kind == TD_TRANS_DELETE && (rc = td_store_job_in_active_sweep(s, t->id, err)))
        goto cleanup; /* its sweep still needs it */
    td_store_now(now);
    if ((rc = prepare(s, &st, transition_sql(t), err))) goto cleanup;
    /* a parameter the statement lacks is out of range: SQLITE_RANGE, nothing bound */
    bind_str(st, 1, t->id);
    bind_str(st, 2, now);
    bind_str(st, 3, STATE_NAMES[t->state]);
    bind_opt(st, 4, t->error_code);
    bind_opt(st, 5, t->error_message);
    sqlite3_bind_int(st, 6, t->live != 0);
    if ((rc = step_done(s, st, err)) || (rc = exec_sql(s, "COMMIT", err))) goto cleanup;
    if (t->kind == TD_TRANS_FINISH) ticket = commit_ticket(s);
    if (t->row) rc = job_get_locked(s, "id", t->id, t->row, err);
cleanup:
    end_op(s, st, relaxed, 1);
    if (ticket) /* a job's end must survive a power loss once reported */
        rc = group_sync(s, ticket, err);
    return rc;
}

/* td_store_job_start, and with live set, td_store_job_claim. */
static td_status job_start(td_store *s, const char *id, int live, td_job_row *out, td_error *err)
{
    td_job_transition t = {.kind = TD_TRANS_START, .id = id, .live = live, .row = out};
    if (out) memset(out, 0, sizeof *out);
    return job_transition(s, &t, err);
}

td_status td_store_job_start(td_store *s, const char *id, td_job_row *out, td_error *err)
{
    return job_start(s, id, 0, out, err);
}

td_status td_store_job_claim(td_store *s, const char *id, td_job_row *out, td_error *err)
{
    return job_start(s, id, 1, out, err);
}

td_status td_store_job_finish(td_store *s, const char *id, td_job_state state,
                              const char *error_code, const char *error_message, td_error *err)
{
    td_job_transition t = {.kind = TD_TRANS_FINISH,
                           .id = id,
                           .state = state,
                           .error_code = error_code,
                           .error_message = error_message};
    if (!td_job_state_terminal(state))
        return td_fail(err, TD_EINVAL, "state", "%s is not a terminal state",
                       td_job_state_name(state));
    return job_transition(s, &t, err);
}

td_status td_store_job_cancel(td_store *s, const char *id, td_job_state *state_after, td_error *err)
{
    td_job_transition t = {.kind = TD_TRANS_CANCEL, .id = id};
    td_status rc = job_transition(s, &t, err);
    if (rc == TD_OK && state_after)
        *state_after = t.found == TD_JOB_QUEUED ? TD_JOB_CANCELLED : TD_JOB_RUNNING;
    return rc;
}

td_status td_store_job_delete(td_store *s, const char *id, td_error *err)
{
    td_job_transition t = {.kind = TD_TRANS_DELETE, .id = id};
    char path[PATH_MAX];
    td_status rc = job_transition(s, &t, err);
    if (rc || s->pg) /* PostgreSQL: its transaction removed what it holds */
        return rc;
    if (id_ok(id)) {
        /* Files go after the rows; a failure leaves orphans for the next open's sweep. */
        if (t.ckpt_epoch >= 0) {
            ckpt_path(path, sizeof path, s, id, t.ckpt_epoch);
            unlink(path);
        }
        if (t.has_model) {
            path_of(path, sizeof path, s, "models", id, ".bin");
            unlink(path);
        }
    }
    history_purge(s, id); /* what it leaves, the next open's sweep removes */
    return rc;
}

/* ---- crash-loop protection and build changes (issue 10) ------------------------------ */

td_status td_store_job_set_live(td_store *s, const char *id, int live, td_error *err)
{
    if (s->pg) return td_pg_job_set_live(s->pg, id, live, err);
    td_status rc = TD_OK;

    enter(s);
    /* relaxed (see DESIGN, group commit): the mark is about process deaths, and a process
     * death loses no commit */
    if ((rc = relax(s, err))) goto cleanup;
    rc = td_store_run(s, err, "UPDATE jobs SET live = ?2 WHERE id = ?1", "si", id ? id : "",
                      live != 0);
cleanup:
    unrelax(s);
    leave(s);
    return rc;
}

td_status td_store_job_reap_crashed(td_store *s, int max_crashes, td_job_row **failed, int *n,
                                    td_error *err)
{
    if (s->pg) return td_pg_job_reap_crashed(s->pg, max_crashes, failed, n, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];

    *failed = NULL;
    *n = 0;
    td_store_now(now);
    enter(s);
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc) goto cleanup;
    rc = prepare(s, &st,
                 "UPDATE jobs SET crashes = crashes + (state IN ('queued', 'running')), "
                 "live = 0 WHERE live = 1",
                 err);
    if (rc || (rc = step_done(s, st, err))) goto cleanup;
    rc = td_store_run(s, err,
                      "UPDATE jobs SET state = 'failed', finished_at = ?2, error_code = "
                      "'crashed', error_message = 'the daemon died ' || crashes || ' times "
                      "while running this job (a crash, an abort or an out-of-memory kill); "
                      "it is not resumed again' WHERE state IN ('queued', 'running') AND "
                      "crashes >= ?1",
                      "is", max_crashes, now);
    if (rc) goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
    if (rc) goto cleanup;
    rc = select_jobs_locked(s,
                            "SELECT " JOB_COLS " FROM jobs WHERE error_code = 'crashed' AND "
                            "finished_at = ?1 ORDER BY id ASC",
                            now, failed, n, err);
cleanup:
    unprepare(s, st);
    leave(s);
    return rc;
}

/* Runs sql, an UPDATE of job ?1 (id) setting text ?2 (unbound when text is NULL), alone
 * under the lock. */
static td_status job_update(td_store *s, const char *sql, const char *id, const char *text,
                            td_error *err)
{
    sqlite3_stmt *st = NULL;
    enter(s);
    td_status rc = prepare(s, &st, sql, err);
    if (rc == TD_OK) {
        bind_str(st, 1, id ? id : "");
        if (text) bind_str(st, 2, text);
        rc = step_done(s, st, err);
    }
    unprepare(s, st);
    leave(s);
    return rc;
}

td_status td_store_job_mark_different_build(td_store *s, const char *id, td_error *err)
{
    if (s->pg) return td_pg_job_mark_different_build(s->pg, id, err);
    return job_update(s, "UPDATE jobs SET resumed_on_different_build = 1 WHERE id = ?1", id, NULL,
                      err);
}

td_status td_store_job_set_warnings(td_store *s, const char *id, const char *json, td_error *err)
{
    if (s->pg) /* not yet: store_pg.c has no warnings column */
        return td_fail(err, TD_EINVAL, "store",
                       "a PostgreSQL store does not keep "
                       "job warnings yet");
    return job_update(s, "UPDATE jobs SET warnings = ?2 WHERE id = ?1", id, json, err);
}

/* ---- the shared queue (PostgreSQL only; store_pg.c) ----------------------------------- */

td_status td_store_job_claim_next(td_store *s, uint64_t mem_avail, char id_out[TD_ID_MAX],
                                  uint64_t *mem_bytes, td_error *err)
{
    id_out[0] = '\0';
    *mem_bytes = 0;
    if (!s->pg) return td_fail(err, TD_EINVAL, "store", "claims need a shared (PostgreSQL) store");
    return td_pg_job_claim(s->pg, mem_avail, id_out, mem_bytes, err);
}

td_status td_store_job_renew(td_store *s, const char *const *ids, int n, int *cancel, int *held,
                             td_error *err)
{
    if (!s->pg) return td_fail(err, TD_EINVAL, "store", "leases need a shared (PostgreSQL) store");
    if (n <= 0) return TD_OK;
    for (int i = 0; i < n; i++)
        if (!id_ok(ids[i])) return td_fail(err, TD_EINVAL, "id", "bad job id \"%s\"", ids[i]);
    return td_pg_job_renew(s->pg, ids, n, cancel, held, err);
}
