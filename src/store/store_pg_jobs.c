/* store_pg_jobs.c — the PostgreSQL backend's jobs: insert, reads, state transitions, the
 * shared queue and crash-loop marks (store_pg.h; DESIGN in store_pg.c). */
#include "store/store_pg_impl.h"

/* ---- jobs --------------------------------------------------------------------------- */

/* Fills row (a td_job_row) from row i of a JOB_COLS result. */
static td_status read_job(PGresult *r, int i, void *row, td_error *err)
{
    td_job_row *j = row;
    memset(j, 0, sizeof *j);
    td_pg_read_cols(r, i, j, TD_JOB_READ, TD_JOB_NREAD);
    gets_(r, i, 26, j->node, sizeof j->node);
    j->hyperparameters = strdup(PQgetvalue(r, i, 5));
    j->metrics = PQgetisnull(r, i, 16) ? NULL : strdup(PQgetvalue(r, i, 16));
    j->classes = PQgetisnull(r, i, 27) ? NULL : strdup(PQgetvalue(r, i, 27));
    if (!j->hyperparameters || (!PQgetisnull(r, i, 16) && !j->metrics) ||
        (!PQgetisnull(r, i, 27) && !j->classes)) {
        td_job_row_fini(j);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory reading job %s", j->id);
    }
    return TD_OK;
}

/* Every row of a JOB_COLS result (cleared), up to cap; next as td_pg_collect's. */
static td_status collect(PGresult *r, int cap, td_job_row **rows, int *n, char *next, td_error *err)
{
    void *v = NULL;
    td_status rc = td_pg_collect(r, cap, &TD_JOB_ROWS, read_job, &v, n, next, err);
    PQclear(r);
    *rows = v;
    return rc;
}

static td_status job_get(PGconn *c, const char *col, const char *key, td_job_row *out,
                         td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {key ? key : ""};
    int by_id = strcmp(col, "id") == 0;
    td_status rc = run(c,
                       by_id ? "SELECT " JOB_COLS " FROM jobs WHERE id = $1"
                             : "SELECT " JOB_COLS " FROM jobs WHERE idempotency_key = $1",
                       1, v, NULL, 0, 0, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s%s not found",
                     by_id ? "" : "with idempotency key ", key ? key : "");
    else
        rc = read_job(r, 0, out, err);
    PQclear(r);
    return rc;
}

td_status td_pg_job_get(td_pg *p, const char *col, const char *key, td_job_row *out, td_error *err)
{
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = job_get(c, col, key, out, err);
    release(p, slot);
    return rc;
}

/* Locks job id's row (FOR UPDATE, in the caller's transaction) and gives its state
 * (TD_ENOTFOUND when absent), checkpoint epoch (-1: none), model flag, node. */
td_status job_lock(PGconn *c, const char *id, int *state, int64_t *ckpt, int *has_model, char *node,
                   size_t node_cap, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id ? id : ""};
    td_status rc = run(c,
                       "SELECT state, checkpoint_epoch, (model_params IS NOT NULL)::int, "
                       "node, epoch FROM jobs WHERE id = $1 FOR UPDATE",
                       1, v, NULL, 0, 0, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", id ? id : "");
    }
    *state = td_store_state_of(PQgetvalue(r, 0, 0));
    if (ckpt) *ckpt = PQgetisnull(r, 0, 1) ? -1 : geti(r, 0, 1);
    if (has_model) *has_model = (int)geti(r, 0, 2);
    if (node) gets_(r, 0, 3, node, node_cap);
    PQclear(r);
    return TD_OK;
}

/* TD_ECONFLICT when a running job is held by another daemon (its writes belong to it). */
td_status held_here(td_pg *p, const char *id, int state, const char *node, td_error *err)
{
    if (state == TD_JOB_RUNNING && node[0] && strcmp(node, p->node) != 0)
        return td_fail(err, TD_ECONFLICT, "node", "job %s is held by %s now, not %s", id, node,
                       p->node);
    return TD_OK;
}

td_status td_pg_job_insert(td_pg *p, const td_job_spec *spec, char id_out[TD_ID_MAX], td_error *err)
{
    PGresult *r = NULL;
    char id[TD_ID_MAX], now[TD_TIME_MAX], be[24], bm[24];
    const char *key =
        spec->idempotency_key && *spec->idempotency_key ? spec->idempotency_key : NULL;
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc && spec->max_queued > 0) {
        /* cluster-wide bound: inserts serialise on this lock, then count */
        rc = exec0(c, "SELECT pg_advisory_xact_lock(7472616965)", err);
        if (!rc)
            rc = run(c, "SELECT count(*) FROM jobs WHERE state = 'queued'", 0, NULL, NULL, 0, 0, &r,
                     err);
        if (!rc && geti(r, 0, 0) >= spec->max_queued)
            rc = td_fail(err, TD_EBUSY, NULL,
                         "the queue is full (%lld jobs waiting, "
                         "max_queued_jobs = %lld); retry later",
                         (long long)geti(r, 0, 0), (long long)spec->max_queued);
        PQclear(r);
        r = NULL;
    }
    if (!rc && key) {
        const char *v[] = {key};
        rc = run(c, "SELECT id FROM jobs WHERE idempotency_key = $1", 1, v, NULL, 0, 0, &r, err);
        if (!rc && PQntuples(r) > 0) {
            gets_(r, 0, 0, id_out, TD_ID_MAX);
            rc = td_fail(err, TD_ECONFLICT, "idempotency_key",
                         "a job with this Idempotency-Key exists: %s", id_out);
        }
        PQclear(r);
    }
    if (!rc) rc = ds_get(c, spec->dataset, "FOR SHARE", NULL, err);
    if (!rc && spec->validation && *spec->validation &&
        (rc = ds_get(c, spec->validation, "FOR SHARE", NULL, err)) == TD_ENOTFOUND)
        td_fail(err, TD_ENOTFOUND, "validation", "dataset %s not found", spec->validation);
    if (!rc) {
        char bt[24], bs[24];
        int in_sweep = spec->sweep && *spec->sweep;
        td_store_new_id(id, "job_");
        td_store_now(now);
        i64s(be, spec->epochs);
        i64s(bm, (int64_t)spec->mem_bytes);
        i64s(bt, spec->sweep_trial);
        i64s(bs, spec->stop_at_epoch);
        const char *v[] = {id,
                           spec->model,
                           spec->dataset,
                           spec->validation && *spec->validation ? spec->validation : NULL,
                           spec->hyperparameters,
                           now,
                           be,
                           key,
                           bm,
                           in_sweep ? spec->sweep : NULL,
                           in_sweep ? bt : NULL,
                           spec->stop_at_epoch > 0 ? bs : NULL};
        rc = run(c,
                 "INSERT INTO jobs (id, model, dataset, validation, state, hyperparameters, "
                 "created_at, epochs, idempotency_key, mem_bytes, sweep, sweep_trial, "
                 "stop_at_epoch, classes) VALUES ($1, $2, $3, $4, 'queued', $5, $6, "
                 "$7::bigint, $8, $9::bigint, $10, $11::bigint, $12::bigint, (SELECT classes "
                 "FROM datasets WHERE id = $3))",
                 12, v, NULL, 0, 0, NULL, err);
    }
    if (rc == TD_ECONFLICT && key && !id_out[0]) /* a concurrent insert won the key */
        td_fail(err, TD_ECONFLICT, "idempotency_key", "a job with this Idempotency-Key exists");
    if (!rc) rc = exec0(c, "COMMIT", err);
    if (!rc) snprintf(id_out, TD_ID_MAX, "%s", id);
    if (rc == TD_ECONFLICT && key && !id_out[0]) { /* find the winner's id */
        PQclear(PQexec(c, "ROLLBACK"));
        const char *v[] = {key};
        if (run(c, "SELECT id FROM jobs WHERE idempotency_key = $1", 1, v, NULL, 0, 0, &r, NULL) ==
            TD_OK) {
            if (PQntuples(r)) gets_(r, 0, 0, id_out, TD_ID_MAX);
            PQclear(r);
        }
    }
    release(p, slot);
    return rc;
}

td_status td_pg_job_list(td_pg *p, int state, int limit, const char *after, td_job_row **rows,
                         int *n, char next[TD_ID_MAX], td_error *err)
{
    char cursor[TD_ID_MAX], bl[24];
    PGresult *r = NULL;
    *rows = NULL;
    td_status rc = td_store_page_start(limit, after, cursor, next, n, err);
    if (rc) return rc;
    if (state >= TD_JOB_NSTATES) return td_fail(err, TD_EINVAL, "state", "unknown state %d", state);
    i64s(bl, (int64_t)limit + 1);
    const char *v[] = {state >= 0 ? td_job_state_name(state) : "", cursor, bl};
    rc = pg_query(p,
                  "SELECT " JOB_COLS " FROM jobs WHERE ($1 = '' OR state = $1) AND "
                  "($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3::bigint",
                  3, v, &r, err);
    return rc ? rc : collect(r, limit, rows, n, next, err);
}

td_status td_pg_job_list_active(td_pg *p, td_job_row **rows, int *n, td_error *err)
{
    PGresult *r = NULL;
    *rows = NULL;
    *n = 0;
    td_status rc = pg_query(p,
                            "SELECT " JOB_COLS " FROM jobs WHERE state IN ('queued', 'running') "
                            "AND paused = 0 ORDER BY id ASC",
                            0, NULL, &r, err);
    return rc ? rc : collect(r, INT_MAX, rows, n, NULL, err);
}

td_status td_pg_job_counts(td_pg *p, int64_t counts[TD_JOB_NSTATES], td_error *err)
{
    PGresult *r = NULL;
    for (int i = 0; i < TD_JOB_NSTATES; i++)
        counts[i] = 0;
    td_status rc = pg_query(p, "SELECT state, count(*) FROM jobs GROUP BY state", 0, NULL, &r, err);
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        int st = td_store_state_of(PQgetvalue(r, i, 0));
        if (st >= 0) counts[st] = geti(r, i, 1);
    }
    PQclear(r);
    return rc;
}

/* TD_ECONFLICT when job id is a trial of a sweep still queued or running. */
static td_status in_active_sweep(PGconn *c, const char *id, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id};
    td_status rc = run(c,
                       "SELECT w.id FROM jobs j JOIN sweeps w ON w.id = j.sweep WHERE "
                       "j.id = $1 AND w.state IN ('queued', 'running')",
                       1, v, NULL, 0, 0, &r, err);
    if (!rc && PQntuples(r) > 0)
        rc = td_fail(err, TD_ECONFLICT, "state",
                     "job %s is a trial of sweep %s, which is "
                     "still active; delete the sweep once it ends",
                     id, PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* Writes transition t from the state it found, in the caller's transaction. */
static td_status transition_write(td_pg *p, PGconn *c, const td_job_transition *t, td_error *err)
{
    char now[TD_TIME_MAX], k1[64], k2[64];
    const char *id = t->id ? t->id : "";
    int queued = t->found == TD_JOB_QUEUED;
    td_status rc = TD_OK;

    td_store_now(now);
    switch (t->kind) {
    case TD_TRANS_START: {
        const char *v[] = {id, now, p->node, t->live ? "1" : "0"};
        return run(c,
                   queued ? "UPDATE jobs SET state = 'running', node = $3, started_at = "
                            "COALESCE(started_at, $2), live = GREATEST(live, $4::int) WHERE "
                            "id = $1" /* a paused trial keeps its first start */
                          : "UPDATE jobs SET restarts = restarts + 1, node = $3, "
                            "started_at = COALESCE(started_at, $2), live = GREATEST(live, "
                            "$4::int) WHERE id = $1",
                   4, v, NULL, 0, 0, NULL, err);
    }
    case TD_TRANS_FINISH: {
        const char *code = t->error_code, *msg = t->error_message;
        const char *v[] = {id, td_job_state_name(t->state), now, code && *code ? code : NULL,
                           msg && *msg ? msg : NULL};
        return run(c,
                   "UPDATE jobs SET state = $2, finished_at = $3, error_code = $4, "
                   "error_message = $5, lease_until = NULL, live = 0 WHERE id = $1",
                   5, v, NULL, 0, 0, NULL, err);
    }
    case TD_TRANS_CANCEL: {
        const char *v[] = {id, now};
        /* a running job's holder hears of it at its next heartbeat (td_pg_job_renew) */
        return run(c,
                   queued ? "UPDATE jobs SET state = 'cancelled', finished_at = $2, "
                            "cancel_requested = 1 WHERE id = $1"
                          : "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND $2 <> ''",
                   2, v, NULL, 0, 0, NULL, err);
    }
    case TD_TRANS_DELETE: break;
    }
    blob_key(k1, sizeof k1, "ckpt", id);
    blob_key(k2, sizeof k2, "model", id);
    const char *v[] = {id, k1, k2};
    /* PostgreSQL has no WAL-size concern of SQLite's: one transaction */
    rc = run(c, "DELETE FROM jobs WHERE id = $1 AND $2 <> '' AND $3 <> ''", 3, v, NULL, 0, 0, NULL,
             err);
    if (!rc)
        rc = run(c, "DELETE FROM history WHERE job_id = $1 AND $2 <> '' AND $3 <> ''", 3, v, NULL,
                 0, 0, NULL, err);
    if (!rc)
        rc = run(c, "DELETE FROM blobs WHERE key IN ($2, $3) AND $1 <> ''", 3, v, NULL, 0, 0, NULL,
                 err);
    return rc;
}

/* The PostgreSQL executor of t (job_transition.h): the job's row locked FOR UPDATE; a
 * finish also checks that this daemon holds a running job, a delete that no active sweep
 * needs it. */
td_status td_pg_job_transition(td_pg *p, td_job_transition *t, td_error *err)
{
    char node[NODE_MAX];
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = job_lock(c, t->id, &t->found, &t->ckpt_epoch, &t->has_model, node, sizeof node, err);
    if (!rc) rc = td_job_transition_check(t, err);
    if (!rc && t->kind == TD_TRANS_FINISH) rc = held_here(p, t->id, t->found, node, err);
    if (!rc && t->kind == TD_TRANS_DELETE) rc = in_active_sweep(c, t->id, err);
    if (!rc) rc = transition_write(p, c, t, err);
    if (!rc) rc = exec0(c, "COMMIT", err);
    if (!rc && t->row) rc = job_get(c, "id", t->id, t->row, err);
    release(p, slot);
    return rc;
}

/* ---- the shared queue --------------------------------------------------------------- */

td_status td_pg_job_claim(td_pg *p, uint64_t mem_avail, char id_out[TD_ID_MAX], uint64_t *mem_bytes,
                          td_error *err)
{
    PGresult *r = NULL;
    char bl[32], bm[24];
    snprintf(bl, sizeof bl, "%.3f", p->lease_s);
    i64s(bm, mem_avail > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)mem_avail);
    const char *v[] = {p->node, bl, bm};
    /* oldest first; SKIP LOCKED: a row another daemon is claiming is passed over */
    td_status rc = pg_query(p,
                            "UPDATE jobs SET node = $1, lease_until = " NOW_S " + $2::float8, "
                            "live = 1 WHERE id = (SELECT id FROM jobs WHERE state IN ('queued', "
                            "'running') AND paused = 0 AND live = 0 AND (lease_until IS NULL OR "
                            "lease_until < " NOW_S ") AND mem_bytes <= $3::bigint ORDER BY id "
                            "LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, mem_bytes",
                            3, v, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "no job to claim");
    else {
        gets_(r, 0, 0, id_out, TD_ID_MAX);
        *mem_bytes = (uint64_t)geti(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

td_status td_pg_job_renew(td_pg *p, const char *const *ids, int n, int *cancel, int *held,
                          td_error *err)
{
    PGresult *r = NULL;
    char bl[32], *list = NULL;
    size_t cap = 3, pos = 0;
    for (int i = 0; i < n; i++)
        cap += strlen(ids[i]) + 1;
    if (!(list = malloc(cap)))
        return td_fail(err, TD_ENOMEM, NULL, "out of memory renewing leases");
    list[pos++] = '{';
    for (int i = 0; i < n; i++)
        pos += (size_t)sprintf(list + pos, "%s%s", i ? "," : "", ids[i]); /* ids: [a-z0-9_] */
    list[pos++] = '}';
    list[pos] = '\0';
    snprintf(bl, sizeof bl, "%.3f", p->lease_s);
    const char *v[] = {p->node, bl, list};
    td_status rc = pg_query(p,
                            "UPDATE jobs SET lease_until = " NOW_S " + $2::float8 WHERE "
                            "node = $1 AND id = ANY($3::text[]) AND state IN ('queued', 'running') "
                            "RETURNING id, cancel_requested",
                            3, v, &r, err);
    free(list);
    for (int i = 0; i < n; i++)
        cancel[i] = held[i] = 0;
    for (int k = 0; !rc && k < PQntuples(r); k++)
        for (int i = 0; i < n; i++)
            if (strcmp(PQgetvalue(r, k, 0), ids[i]) == 0) {
                held[i] = 1;
                cancel[i] = (int)geti(r, k, 1);
            }
    PQclear(r);
    return rc;
}

/* ---- crash-loop protection ---------------------------------------------------------- */

td_status td_pg_job_set_live(td_pg *p, const char *id, int live, td_error *err)
{
    const char *v[] = {id ? id : "", p->node};
    /* letting go also ends the lease: another daemon may take the job at once */
    return pg_query(p,
                    live ? "UPDATE jobs SET live = 1 WHERE id = $1 AND $2 <> ''"
                         : "UPDATE jobs SET live = 0, lease_until = NULL WHERE id = $1 "
                           "AND (node IS NULL OR node = $2)",
                    2, v, NULL, err);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const td_job_row *)a)->id, ((const td_job_row *)b)->id);
}

td_status td_pg_job_reap_crashed(td_pg *p, int max_crashes, td_job_row **failed, int *n,
                                 td_error *err)
{
    PGresult *r = NULL;
    char now[TD_TIME_MAX], bm[24];
    *failed = NULL;
    *n = 0;
    td_store_now(now);
    i64s(bm, max_crashes);
    const char *v[] = {bm, now};
    int slot;
    PGconn *c = acquire(p, &slot);
    /* a live mark whose lease expired: its holder died (a live one renews it) */
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = exec0(c,
                   "UPDATE jobs SET crashes = crashes + 1, live = 0 WHERE live = 1 AND "
                   "state IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < " NOW_S
                   ")",
                   err);
    if (!rc)
        rc = run(c,
                 "UPDATE jobs SET state = 'failed', finished_at = $2, error_code = 'crashed', "
                 "error_message = 'the daemon died ' || crashes || ' times while running this "
                 "job (a crash, an abort or an out-of-memory kill); it is not resumed again', "
                 "lease_until = NULL WHERE state IN ('queued', 'running') AND crashes >= "
                 "$1::bigint RETURNING " JOB_COLS,
                 2, v, NULL, 0, 0, &r, err);
    rc = pg_end(p, slot, rc, err);
    if (rc) {
        PQclear(r);
        return rc;
    }
    if ((rc = collect(r, INT_MAX, failed, n, NULL, err)) == TD_OK && *n > 1)
        qsort(*failed, (size_t)*n, sizeof **failed, by_id); /* oldest first */
    return rc;
}

td_status td_pg_job_mark_different_build(td_pg *p, const char *id, td_error *err)
{
    const char *v[] = {id ? id : ""};
    return pg_query(p, "UPDATE jobs SET resumed_on_different_build = 1 WHERE id = $1", 1, v, NULL,
                    err);
}
