/* store_pg_sweeps.c — the PostgreSQL backend's sweeps (store_sweeps.h, store_pg.h; DESIGN
 * in store_pg.c). */
#include "store/store_pg_impl.h"

#include <math.h>

#include "store/store_sweeps.h"

/* ---- sweeps (store_sweeps.h) -------------------------------------------------------- */

#define SWEEP_COLS                                                                        \
    "id, state, model, dataset, validation, spec, metric, maximize, epochs, min_epochs, " \
    "eta, rung, n_trials, cancel_requested, created_at, started_at, finished_at, "        \
    "error_code, error_message"

/* Fills row (a td_sweep_row) from row i of a SWEEP_COLS result. */
static td_status read_sweep(PGresult *r, int i, void *row, td_error *err)
{
    td_sweep_row *w = row;
    memset(w, 0, sizeof *w);
    td_pg_read_cols(r, i, w, TD_SWEEP_READ, TD_SWEEP_NREAD);
    if (!(w->spec = strdup(PQgetvalue(r, i, 5))))
        return td_fail(err, TD_ENOMEM, NULL, "out of memory reading sweep %s", w->id);
    return TD_OK;
}

td_status td_pg_sweep_insert(td_pg *p, const td_sweep_spec *spec, const td_sweep_trial_spec *trials,
                             int n, char id_out[TD_ID_MAX], td_error *err)
{
    char id[TD_ID_MAX], now[TD_TIME_MAX], b[5][24];
    int slot;
    td_store_new_id(id, "swp_");
    td_store_now(now);
    i64s(b[0], spec->maximize), i64s(b[1], spec->epochs), i64s(b[2], spec->min_epochs);
    i64s(b[3], spec->eta), i64s(b[4], n);
    const char *v[] = {id,
                       spec->model,
                       spec->dataset,
                       spec->validation && *spec->validation ? spec->validation : NULL,
                       spec->spec,
                       spec->metric,
                       b[0],
                       b[1],
                       b[2],
                       b[3],
                       b[4],
                       now};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc) rc = ds_get(c, spec->dataset, "FOR SHARE", NULL, err);
    if (!rc && v[3] && (rc = ds_get(c, v[3], "FOR SHARE", NULL, err)) == TD_ENOTFOUND)
        td_fail(err, TD_ENOTFOUND, "validation", "dataset %s not found", v[3]);
    if (!rc)
        rc = run(c,
                 "INSERT INTO sweeps (id, state, model, dataset, validation, spec, metric, "
                 "maximize, epochs, min_epochs, eta, n_trials, created_at) VALUES ($1, "
                 "'queued', $2, $3, $4, $5, $6, $7::int, $8::bigint, $9::bigint, $10::bigint, "
                 "$11::bigint, $12)",
                 12, v, NULL, 0, 0, NULL, err);
    for (int i = 0; !rc && i < n; i++) {
        char bi[24], bb[24];
        i64s(bi, i), i64s(bb, (int64_t)trials[i].bytes);
        const char *t[] = {id, bi, trials[i].values, trials[i].hyperparameters, bb};
        rc = run(c, "INSERT INTO sweep_trials VALUES ($1, $2::bigint, $3, $4, $5::bigint)", 5, t,
                 NULL, 0, 0, NULL, err);
    }
    rc = pg_end(p, slot, rc, err);
    if (!rc) snprintf(id_out, TD_ID_MAX, "%s", id);
    return rc;
}

td_status td_pg_sweep_get(td_pg *p, const char *id, td_sweep_row *out, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id ? id : ""};
    td_status rc = pg_query(p, "SELECT " SWEEP_COLS " FROM sweeps WHERE id = $1", 1, v, &r, err);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "sweep %s not found", v[0]);
    else if (!rc)
        rc = read_sweep(r, 0, out, err);
    PQclear(r);
    return rc;
}

td_status td_pg_sweep_list(td_pg *p, int active, int limit, const char *after, td_sweep_row **rows,
                           int *n, char next[TD_ID_MAX], td_error *err)
{
    PGresult *r = NULL;
    char cursor[TD_ID_MAX], bl[24];
    snprintf(cursor, sizeof cursor, "%s", after ? after : ""); /* after may alias next */
    i64s(bl, (int64_t)limit + 1);
    const char *v[] = {cursor, bl};
    td_status rc = pg_query(p,
                            active ? "SELECT " SWEEP_COLS " FROM sweeps WHERE state IN "
                                     "('queued', 'running') ORDER BY id ASC"
                                   : "SELECT " SWEEP_COLS " FROM sweeps WHERE ($1 = '' OR id < "
                                     "$1) ORDER BY id DESC LIMIT $2::bigint",
                            active ? 0 : 2, v, &r, err);
    void *w = NULL;
    if (!rc)
        rc = td_pg_collect(r, active ? INT_MAX : limit, &TD_SWEEP_ROWS, read_sweep, &w, n,
                           active ? NULL : next, err);
    PQclear(r);
    *rows = w;
    return rc;
}

/* Fills row (a td_sweep_trial) from row i of td_pg_sweep_trials' query. */
static td_status read_trial(PGresult *r, int i, void *row, td_error *err)
{
    td_sweep_trial *t = row;
    t->index = geti(r, i, 0);
    t->values = strdup(PQgetvalue(r, i, 1));
    t->hyperparameters = strdup(PQgetvalue(r, i, 2));
    t->bytes = (uint64_t)geti(r, i, 3);
    gets_(r, i, 4, t->job, sizeof t->job);
    int st = PQgetisnull(r, i, 5) ? -1 : td_store_state_of(PQgetvalue(r, i, 5));
    t->state = st < 0 ? TD_JOB_QUEUED : (td_job_state)st;
    t->paused = (int)geti(r, i, 6);
    t->stopped_early = (int)geti(r, i, 7);
    t->cancel_requested = (int)geti(r, i, 8);
    t->epoch = geti(r, i, 9);
    t->stop_at_epoch = geti(r, i, 10);
    t->metric = PQgetisnull(r, i, 11) ? NAN : strtod(PQgetvalue(r, i, 11), NULL);
    gets_(r, i, 12, t->error_code, sizeof t->error_code);
    if (t->values && t->hyperparameters) return TD_OK;
    free(t->values), free(t->hyperparameters);
    return td_fail(err, TD_ENOMEM, NULL, "out of memory listing trials");
}

td_status td_pg_sweep_trials(td_pg *p, const char *id, const char *metric, td_sweep_trial **out,
                             int *n, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id ? id : "", metric ? metric : "loss"};
    td_status rc = pg_query(p,
                            "SELECT t.idx, t.\"values\", t.hyperparameters, t.bytes, j.id, "
                            "j.state, j.paused, j.stopped_early, j.cancel_requested, j.epoch, "
                            "j.stop_at_epoch, CASE WHEN jsonb_typeof(j.metrics::jsonb -> $2) = "
                            "'number' THEN (j.metrics::jsonb ->> $2)::float8 END, j.error_code "
                            "FROM sweep_trials t LEFT JOIN jobs j ON j.sweep = t.sweep_id AND "
                            "j.sweep_trial = t.idx WHERE t.sweep_id = $1 ORDER BY t.idx",
                            2, v, &r, err);
    void *w = NULL;
    if (!rc) rc = td_pg_collect(r, INT_MAX, &TD_TRIAL_ROWS, read_trial, &w, n, NULL, err);
    PQclear(r);
    *out = w;
    return rc;
}

td_status td_pg_sweep_update_active(td_pg *p, const char *id, const char *sql,
                                    const char *const *args, int nargs, td_error *err)
{
    PGresult *r = NULL;
    const char *v[6] = {id ? id : ""};
    for (int i = 0; i < nargs && i < 5; i++)
        v[i + 1] = args[i];
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = run(c, "SELECT state FROM sweeps WHERE id = $1 FOR UPDATE", 1, v, NULL, 0, 0, &r, err);
    if (!rc && PQntuples(r) == 0) rc = td_fail(err, TD_ENOTFOUND, NULL, "sweep %s not found", v[0]);
    if (!rc) {
        int cur = td_store_state_of(PQgetvalue(r, 0, 0));
        if (cur != TD_JOB_QUEUED && cur != TD_JOB_RUNNING)
            rc = td_fail(err, TD_ECONFLICT, "state", "sweep %s is already %s", v[0],
                         cur < 0 ? "gone" : td_job_state_name((td_job_state)cur));
    }
    PQclear(r);
    if (!rc) rc = run(c, sql, 1 + nargs, v, NULL, 0, 0, NULL, err);
    return pg_end(p, slot, rc, err);
}

td_status td_pg_sweep_promote(td_pg *p, const char *id, int64_t rung, const char *const *stop,
                              int n, td_error *err)
{
    char now[TD_TIME_MAX], br[24];
    int slot;
    td_store_now(now);
    i64s(br, rung);
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    for (int i = 0; !rc && i < n; i++) {
        const char *v[] = {stop[i], now};
        rc = run(c,
                 "UPDATE jobs SET state = 'succeeded', stopped_early = 1, paused = 0, "
                 "finished_at = $2 WHERE id = $1 AND paused = 1 AND state = 'queued'",
                 2, v, NULL, 0, 0, NULL, err);
    }
    const char *v[] = {id, br};
    if (!rc)
        rc = run(c, "UPDATE sweeps SET rung = $2::bigint WHERE id = $1", 2, v, NULL, 0, 0, NULL,
                 err);
    return pg_end(p, slot, rc, err);
}

td_status td_pg_sweep_delete_rows(td_pg *p, const char *id, td_error *err)
{
    const char *v[] = {id};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = run(c, "DELETE FROM sweep_trials WHERE sweep_id = $1", 1, v, NULL, 0, 0, NULL, err);
    if (!rc) rc = run(c, "DELETE FROM sweeps WHERE id = $1", 1, v, NULL, 0, 0, NULL, err);
    return pg_end(p, slot, rc, err);
}

td_status td_pg_job_update(td_pg *p, const char *id, const char *sql, int64_t x, td_error *err)
{
    PGresult *r = NULL;
    char now[TD_TIME_MAX], bx[24];
    td_store_now(now);
    i64s(bx, x);
    const char *v[] = {id ? id : "", now, x > 0 ? bx : NULL};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, sql, 3, v, NULL, 0, 0, &r, err);
    if (!rc && changed(r) == 0) {
        PQclear(r);
        r = NULL;
        rc = run(c, "SELECT state FROM jobs WHERE id = $1", 1, v, NULL, 0, 0, &r, err);
        if (!rc)
            rc = PQntuples(r)
                ? td_fail(err, TD_ECONFLICT, "state", "job %s is %s", v[0], PQgetvalue(r, 0, 0))
                : td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", v[0]);
    }
    PQclear(r);
    release(p, slot);
    return rc;
}

int td_pg_sweeps_leader(td_pg *p)
{
    /* the session lock lives on conn[0]: wait for that connection in particular */
    pthread_mutex_lock(&p->mu);
    while (p->busy[0])
        pthread_cond_wait(&p->freed, &p->mu);
    p->busy[0] = 1;
    pthread_mutex_unlock(&p->mu);
    PGconn *c = p->conn[0];
    if (PQstatus(c) != CONNECTION_OK) PQreset(c);
    /* held already by this session (outside a transaction its only advisory lock; a reset
     * connection lost it), else try to take it (taking it twice would stack it) */
    PGresult *r = NULL;
    int leader = 0;
    if (run(c,
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND granted) THEN 1 ELSE "
            "pg_try_advisory_lock(7472616966)::int END",
            0, NULL, NULL, 0, 0, &r, NULL) == TD_OK)
        leader = (int)geti(r, 0, 0);
    PQclear(r);
    release(p, 0);
    return leader;
}
