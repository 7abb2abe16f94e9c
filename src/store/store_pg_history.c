/* store_pg_history.c — the PostgreSQL backend's history, checkpoints and
 * models (store_pg.h; DESIGN in store_pg.c). */
#include "store/store_pg_impl.h"

/* ---- history ------------------------------------------------------------------------ */

/* The column count of job_id's history (0 when unset); TD_ENOTFOUND without the job. */
static td_status hist_cols(PGconn *c, const char *job_id, int *ncols, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {job_id ? job_id : ""};
    td_status rc =
        run(c, "SELECT history_columns FROM jobs WHERE id = $1", 1, v, NULL, 0, 0, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
    else
        *ncols = PQgetisnull(r, 0, 0) ? 0 : td_store_count_cols(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

td_status td_pg_history_columns_set(td_pg *p, const char *job_id, const char *joined, int n,
                                    td_error *err)
{
    PGresult *r = NULL;
    int cur = 0, state, slot;
    const char *v[] = {job_id ? job_id : "", joined};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc) rc = job_lock(c, job_id, &state, NULL, NULL, NULL, 0, err);
    if (!rc) rc = hist_cols(c, job_id, &cur, err);
    if (!rc && cur != 0 && cur != n) {
        rc = run(c, "SELECT EXISTS (SELECT 1 FROM history WHERE job_id = $1)::int", 1, v, NULL, 0,
                 0, &r, err);
        if (!rc && geti(r, 0, 0))
            rc = td_fail(err, TD_ECONFLICT, "columns", "job %s has history with %d columns, not %d",
                         job_id, cur, n);
        PQclear(r);
    }
    if (!rc)
        rc = run(c, "UPDATE jobs SET history_columns = $2 WHERE id = $1", 2, v, NULL, 0, 0, NULL,
                 err);
    return pg_end(p, slot, rc, err);
}

td_status td_pg_history_get(td_pg *p, const char *job_id, int64_t after_epoch, int64_t limit,
                            td_history *out, td_error *err)
{
    PGresult *r = NULL;
    td_history h;
    char be[24], bl[24];
    memset(&h, 0, sizeof h);
    memset(out, 0, sizeof *out);
    const char *v[] = {job_id ? job_id : "", be, limit > 0 ? bl : NULL};
    i64s(be, after_epoch);
    i64s(bl, limit);
    int slot;
    PGconn *c = acquire(p, &slot);
    /* one snapshot for the columns and the records */
    td_status rc = exec0(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc)
        rc = run(c, "SELECT history_columns FROM jobs WHERE id = $1", 1, v, NULL, 0, 0, &r, err);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
    if (!rc) {
        const char *t = PQgetisnull(r, 0, 0) ? "" : PQgetvalue(r, 0, 0);
        for (const char *q = t; *q && h.n_cols < TD_HIST_MAX_COLS;) {
            size_t len = strcspn(q, ",");
            snprintf(h.names[h.n_cols++], TD_HIST_NAME_MAX, "%.*s", (int)len, q);
            q += len + (q[len] == ',');
        }
    }
    PQclear(r);
    r = NULL;
    if (!rc && h.n_cols > 0)
        rc = run(c,
                 "SELECT epoch, record FROM history WHERE job_id = $1 AND epoch > $2::bigint "
                 "ORDER BY epoch LIMIT $3::bigint",
                 3, v, NULL, 0, 1, &r, err); /* NULL: all */
    rc = pg_end(p, slot, rc, err);
    int64_t nrows = r ? PQntuples(r) : 0;
    if (!rc && nrows > 0) {
        h.epochs = malloc(sizeof *h.epochs * (size_t)nrows);
        h.cols = malloc(sizeof *h.cols * (size_t)nrows * (size_t)h.n_cols);
        if (!h.epochs || !h.cols)
            rc = td_fail(err, TD_ENOMEM, NULL, "out of memory reading history of %s", job_id);
    }
    for (int64_t i = 0; !rc && i < nrows; i++) {
        const char *rec = PQgetvalue(r, (int)i, 1);
        size_t bytes = (size_t)PQgetlength(r, (int)i, 1);
        if (bytes != sizeof(double) * (size_t)h.n_cols) {
            rc = td_fail(err, TD_EIO, NULL,
                         "history of %s: record has %zu bytes for %d "
                         "columns",
                         job_id, bytes, h.n_cols);
            break;
        }
        h.epochs[i] = be64(PQgetvalue(r, (int)i, 0));
        for (int col = 0; col < h.n_cols; col++)
            memcpy(&h.cols[(size_t)col * (size_t)nrows + (size_t)i],
                   rec + sizeof(double) * (size_t)col, sizeof(double));
        h.n_rows = i + 1;
    }
    PQclear(r);
    if (rc) {
        td_history_fini(&h);
        return rc;
    }
    *out = h;
    return TD_OK;
}

td_status td_pg_history_truncate(td_pg *p, const char *job_id, int64_t after_epoch, td_error *err)
{
    char be[24];
    int ncols, slot;
    i64s(be, after_epoch);
    const char *v[] = {job_id ? job_id : "", be};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc) rc = hist_cols(c, job_id, &ncols, err);
    if (!rc)
        rc = run(c, "DELETE FROM history WHERE job_id = $1 AND epoch > $2::bigint", 2, v, NULL, 0,
                 0, NULL, err);
    if (!rc)
        rc = run(c, "UPDATE jobs SET epoch = LEAST(epoch, $2::bigint) WHERE id = $1", 2, v, NULL, 0,
                 0, NULL, err);
    return pg_end(p, slot, rc, err);
}

/* ---- checkpoints, models ------------------------------------------------------------ */

td_status td_pg_checkpoint_save(td_pg *p, const char *job_id, int64_t epoch, const void *ckpt,
                                size_t ckpt_len, td_error *err)
{
    PGresult *r = NULL;
    char be[24], key[64], node[NODE_MAX];
    int state, slot;
    i64s(be, epoch);
    blob_key(key, sizeof key, "ckpt", job_id);
    const char *v[] = {job_id, be};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc) rc = job_lock(c, job_id, &state, NULL, NULL, node, sizeof node, err);
    if (!rc) rc = held_here(p, job_id, state, node, err);
    if (!rc) rc = run(c, "SELECT epoch FROM jobs WHERE id = $1", 1, v, NULL, 0, 0, &r, err);
    if (!rc && epoch > geti(r, 0, 0))
        rc = td_fail(err, TD_EINVAL, "epoch",
                     "checkpoint of epoch %lld is ahead of the committed epoch %lld",
                     (long long)epoch, (long long)geti(r, 0, 0));
    PQclear(r);
    if (!rc)
        rc = run(c, "UPDATE jobs SET checkpoint_epoch = $2::bigint WHERE id = $1", 2, v, NULL, 0, 0,
                 NULL, err);
    if (!rc) {
        td_blob_seg seg = {ckpt, ckpt_len};
        rc = blob_put(c, key, (uint64_t)epoch, p->build_tag, &seg, 1, err);
    }
    return pg_end(p, slot, rc, err);
}

td_status td_pg_checkpoint_load(td_pg *p, const char *job_id, void **buf, size_t *len,
                                int64_t *epoch, char *tag, size_t tag_cap, td_error *err)
{
    char key[64];
    int slot;
    int64_t rec = -1;
    uint64_t aux = 0;
    *buf = NULL;
    *len = 0;
    blob_key(key, sizeof key, "ckpt", job_id ? job_id : "");
    PGconn *c = acquire(p, &slot);
    /* the row and the blob from one snapshot, locking nothing (a lock in a snapshot fails
     * with a serialization error when the heartbeat renewed the row meanwhile) */
    PGresult *r = NULL;
    const char *v[] = {job_id ? job_id : ""};
    td_status rc = exec0(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc)
        rc = run(c, "SELECT checkpoint_epoch FROM jobs WHERE id = $1", 1, v, NULL, 0, 0, &r, err);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", v[0]);
    else if (!rc)
        rec = PQgetisnull(r, 0, 0) ? -1 : geti(r, 0, 0);
    PQclear(r);
    if (!rc && rec < 0)
        rc = td_fail(err, TD_ENOTFOUND, "checkpoint", "job %s has no checkpoint", job_id);
    if (!rc && (rc = blob_get(c, key, &aux, tag, tag_cap, buf, len, err)) == TD_ENOTFOUND)
        rc = td_fail(err, TD_EIO, NULL, "job %s: the recorded checkpoint is missing", job_id);
    if (!rc && (int64_t)aux != rec)
        rc = td_fail(err, TD_EIO, NULL, "job %s: checkpoint holds epoch %lld, expected %lld",
                     job_id, (long long)aux, (long long)rec);
    rc = pg_end(p, slot, rc, err);
    if (rc) {
        free(*buf);
        *buf = NULL;
        *len = 0;
    } else if (epoch) {
        *epoch = rec;
    }
    return rc;
}

td_status td_pg_model_put(td_pg *p, const char *job_id, const char *meta_json, const float *params,
                          int64_t n, td_error *err)
{
    char key[64], bn[24];
    int state, slot;
    size_t bytes;
    if (!meta_json || n < 0 || (n > 0 && !params) ||
        __builtin_mul_overflow((size_t)n, sizeof(float), &bytes))
        return td_fail(err, TD_EINVAL, "model", "model needs meta JSON and n >= 0 parameters");
    blob_key(key, sizeof key, "model", job_id ? job_id : "");
    i64s(bn, n);
    const char *v[] = {job_id ? job_id : "", bn};
    td_blob_seg segs[2] = {{params, bytes}, {meta_json, strlen(meta_json) + 1}};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc) rc = job_lock(c, job_id, &state, NULL, NULL, NULL, 0, err);
    if (!rc) rc = blob_put(c, key, (uint64_t)n, "", segs, 2, err);
    if (!rc)
        rc = run(c, "UPDATE jobs SET model_params = $2::bigint WHERE id = $1", 2, v, NULL, 0, 0,
                 NULL, err);
    return pg_end(p, slot, rc, err);
}

td_status td_pg_model_write_unsynced(td_pg *p, const char *job_id, const char *meta_json,
                                     const float *params, int64_t n, td_error *err)
{
    char key[64];
    int state, has_model = 0, slot;
    size_t bytes;
    if (!meta_json || n < 0 || (n > 0 && !params) ||
        __builtin_mul_overflow((size_t)n, sizeof(float), &bytes))
        return td_fail(err, TD_EINVAL, "model", "model needs meta JSON and n >= 0 parameters");
    blob_key(key, sizeof key, "model", job_id ? job_id : "");
    td_blob_seg segs[2] = {{params, bytes}, {meta_json, strlen(meta_json) + 1}};
    PGconn *c = acquire(p, &slot);
    /* the blob only, committed without waiting for the WAL flush: td_pg_jobs_succeed
     * records it (store.h); until then no row refers to it */
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc) rc = exec0(c, "SET LOCAL synchronous_commit = off", err);
    if (!rc) rc = job_lock(c, job_id, &state, NULL, &has_model, NULL, 0, err);
    if (!rc && has_model)
        rc = td_fail(err, TD_ECONFLICT, "model", "job %s has a model already", job_id);
    if (!rc) rc = blob_put(c, key, (uint64_t)n, "", segs, 2, err);
    return pg_end(p, slot, rc, err);
}

td_status td_pg_jobs_succeed(td_pg *p, const char *const *ids, const int64_t *n_params, int n,
                             td_error *err)
{
    char now[TD_TIME_MAX], bn[24];
    int slot;
    td_store_now(now);
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    for (int i = 0; !rc && i < n; i++) {
        i64s(bn, n_params[i]);
        const char *v[] = {ids[i], bn, now, p->node};
        rc = run(c,
                 "UPDATE jobs SET state = 'succeeded', model_params = $2::bigint, "
                 "finished_at = $3, live = 0, lease_until = NULL WHERE id = $1 AND state IN "
                 "('queued', 'running') AND (node IS NULL OR node = $4)",
                 4, v, NULL, 0, 0, NULL, err);
    }
    return pg_end(p, slot, rc, err);
}

td_status td_pg_model_get(td_pg *p, const char *job_id, char **meta_json, float **params,
                          int64_t *n, td_error *err)
{
    PGresult *r = NULL;
    char key[64];
    void *buf = NULL;
    size_t len = 0;
    uint64_t aux = 0;
    *meta_json = NULL;
    *params = NULL;
    *n = 0;
    blob_key(key, sizeof key, "model", job_id ? job_id : "");
    const char *v[] = {job_id ? job_id : ""};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc)
        rc = run(c, "SELECT (model_params IS NOT NULL)::int FROM jobs WHERE id = $1", 1, v, NULL, 0,
                 0, &r, err);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", v[0]);
    else if (!rc && !geti(r, 0, 0))
        rc = td_fail(err, TD_ENOTFOUND, "model", "job %s has no model", v[0]);
    PQclear(r);
    if (!rc) rc = blob_get(c, key, &aux, NULL, 0, &buf, &len, err);
    rc = pg_end(p, slot, rc, err);
    size_t pbytes = (size_t)aux * sizeof(float);
    if (!rc &&
        (aux > (uint64_t)INT64_MAX / sizeof(float) || len < pbytes + 1 ||
         ((char *)buf)[len - 1] != '\0'))
        rc = td_fail(err, TD_EIO, NULL, "job %s: malformed model", v[0]);
    if (!rc && !(*meta_json = strdup((char *)buf + pbytes)))
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory reading the model of %s", v[0]);
    if (rc) {
        free(buf);
        return rc;
    }
    *params = buf; /* params sit at the start of the payload */
    *n = (int64_t)aux;
    return TD_OK;
}

/* ---- batched history (store.h: td_store_history_commit) ----------------------------- */

static int hist_kept(int64_t e, int64_t S, const td_history_batch *b, int64_t latest)
{
    return e % S == 0 || e == b->first || e == b->best || e == latest;
}

td_status td_pg_history_commit(td_pg *p, const char *job_id, const td_history_batch *b,
                               td_error *err)
{
    PGresult *r = NULL;
    char bl[24], bs[24], bf[24], bb[24], bpl[24], bpb[24], be[24];
    int ncols = 0, state, slot;
    char node[NODE_MAX];
    if (b->n_rows < 1 || !b->epochs || !b->records)
        return td_fail(err, TD_EINVAL, "records", "an empty history batch");
    int64_t latest = b->epochs[b->n_rows - 1];
    int64_t S = td_history_stride(latest, b->max_rows);
    PGconn *c = acquire(p, &slot);
    /* no wait for the WAL flush, as SQLite's synchronous=NORMAL (store.h): the next
     * checkpoint's commit is synchronous and makes this batch durable with it */
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc) rc = exec0(c, "SET LOCAL synchronous_commit = off", err);
    if (!rc) rc = job_lock(c, job_id, &state, NULL, NULL, node, sizeof node, err);
    if (!rc) rc = held_here(p, job_id, state, node, err);
    if (!rc) rc = hist_cols(c, job_id, &ncols, err);
    if (!rc && (ncols == 0 || ncols != b->n_cols))
        rc = td_fail(err, TD_EINVAL, "columns",
                     "job %s: records have %d values, history has "
                     "%d columns",
                     job_id, b->n_cols, ncols);
    const char *vj[] = {job_id};
    if (!rc) rc = run(c, "SELECT epoch FROM jobs WHERE id = $1", 1, vj, NULL, 0, 0, &r, err);
    int64_t prev_latest = rc ? 0 : geti(r, 0, 0);
    PQclear(r);
    size_t rec_bytes = sizeof(double) * (size_t)b->n_cols;
    for (int64_t i = 0; !rc && i < b->n_rows; i++) {
        if (!hist_kept(b->epochs[i], S, b, latest)) continue;
        i64s(be, b->epochs[i]);
        const char *v[] = {job_id, be};
        rc = run(c,
                 "INSERT INTO history VALUES ($1, $2::bigint, $3) ON CONFLICT (job_id, "
                 "epoch) DO UPDATE SET record = EXCLUDED.record",
                 2, v, b->records + (size_t)i * (size_t)b->n_cols, rec_bytes, 0, NULL, err);
    }
    i64s(bl, latest);
    const char *vu[] = {job_id, bl, b->metrics_json};
    if (!rc)
        rc = run(c,
                 "UPDATE jobs SET epoch = $2::bigint, metrics = COALESCE($3, metrics) WHERE "
                 "id = $1",
                 3, vu, NULL, 0, 0, NULL, err);
    /* the thinning of store.c's hist_thin_locked */
    int full = b->full_pass || S != td_history_stride(prev_latest, b->max_rows);
    if (!rc && S > 1) {
        i64s(bs, S), i64s(bf, b->first), i64s(bb, b->best);
        i64s(bpl, prev_latest), i64s(bpb, b->prev_best);
        const char *v[] = {job_id, bs, bf, bb, bl, bpl, bpb};
        rc = run(c,
                 full ? "DELETE FROM history WHERE job_id = $1 AND epoch % $2::bigint <> 0 "
                        "AND epoch NOT IN ($3::bigint, $4::bigint, $5::bigint)"
                      : "DELETE FROM history WHERE job_id = $1 AND epoch IN ($6::bigint, "
                        "$7::bigint) AND epoch % $2::bigint <> 0 AND epoch NOT IN "
                        "($3::bigint, $4::bigint, $5::bigint)",
                 full ? 5 : 7, v, NULL, 0, 0, NULL, err);
    }
    return pg_end(p, slot, rc, err);
}
