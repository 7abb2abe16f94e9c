/* store_pg.c — the PostgreSQL backend of the store (store_pg.h; contract in store.h).
 *
 * DESIGN
 * Connections: a pool of PG_POOL libpq connections, each used by one thread at a time
 * (acquire / release under p->mu); a call that finds its connection broken resets it
 * once and retries the statement when it was outside a transaction. Every multi-statement
 * change runs in one transaction on one connection; checks and the writes that depend on
 * them lock the rows they read (FOR UPDATE / FOR SHARE), since other daemons write too.
 *
 * The queue: a queued job, or a running one whose lease expired with no live holder, is
 * claimed with SELECT ... FOR UPDATE SKIP LOCKED (claimers never wait on each other) and
 * gets node = this daemon and lease_until = now + lease_s on the server's clock (no skew
 * between hosts). The holder renews the lease (td_pg_job_renew) from a heartbeat. A
 * daemon killed -9 renews nothing: td_pg_job_reap_crashed, run by every daemon at start
 * and with each heartbeat, counts a crash for each job still marked live whose lease
 * expired and unmarks it, and then any daemon claims it and resumes it from its recorded
 * checkpoint. Writes of a running job (history commit, checkpoint, finish) check that this
 * daemon still holds it, so a daemon that lost its lease (paused past lease_s) cannot
 * overwrite the new holder's progress.
 *
 * Blobs are chunked bytea (store_pg.h); a blob is replaced inside the transaction that
 * records it (a checkpoint with its epoch), so a reader sees the old one or the new one.
 * Datasets also sit as files in the local cache (state_dir/datasets): written there first
 * by the writers (dataset_put, dataset_out streams), imported at insert, fetched by a
 * daemon that lacks them (temp file + rename, so a reader never sees half a file). */
#include "store/store_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/blob.h"
#include "store/store_sweeps.h"

#include "store/store_pg_impl.h"

/* MIGRATIONS[v] takes a database from version v to v + 1; a new version appends its step.
 * They run in the migration's transaction, so a database is at one version or the next.
 * Ids sort bytewise (COLLATE "C", whatever the database's locale): "newest first" and the
 * paging cursors rely on it, as with SQLite. */
static const char *const MIGRATIONS[TD_PG_SCHEMA] = {
    "CREATE TABLE datasets("
    "  id text COLLATE \"C\" PRIMARY KEY, name text NOT NULL, n_samples bigint NOT NULL,"
    "  n_features bigint NOT NULL, n_classes bigint NOT NULL, target text NOT NULL,"
    "  label_cols bigint NOT NULL, prob_cols bigint NOT NULL, n_pairs bigint NOT NULL,"
    "  created_at text NOT NULL, bytes bigint NOT NULL);"
    "CREATE TABLE jobs("
    "  id text COLLATE \"C\" PRIMARY KEY, model text NOT NULL, dataset text NOT NULL,"
    "  validation text,"
    "  state text NOT NULL CHECK (state IN"
    "    ('queued','running','succeeded','failed','cancelled')),"
    "  hyperparameters text NOT NULL, created_at text NOT NULL, started_at text,"
    "  finished_at text, error_code text, error_message text,"
    "  restarts bigint NOT NULL DEFAULT 0, epoch bigint NOT NULL DEFAULT 0,"
    "  epochs bigint NOT NULL DEFAULT 0, cancel_requested int NOT NULL DEFAULT 0,"
    "  idempotency_key text UNIQUE, metrics text, checkpoint_epoch bigint,"
    "  model_params bigint, history_columns text, live int NOT NULL DEFAULT 0,"
    "  crashes bigint NOT NULL DEFAULT 0,"
    "  resumed_on_different_build int NOT NULL DEFAULT 0,"
    "  node text, lease_until double precision, mem_bytes bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_state ON jobs(state, id);"
    "CREATE INDEX jobs_dataset ON jobs(dataset);"
    "CREATE INDEX jobs_validation ON jobs(validation);"
    "CREATE TABLE history(job_id text NOT NULL, epoch bigint NOT NULL,"
    "  record bytea NOT NULL, PRIMARY KEY (job_id, epoch));"
    "CREATE TABLE blobs(key text PRIMARY KEY, aux bigint NOT NULL, tag text NOT NULL,"
    "  length bigint NOT NULL, checksum bigint NOT NULL);"
    "CREATE TABLE blob_chunks(key text NOT NULL REFERENCES blobs(key) ON DELETE CASCADE,"
    "  seq int NOT NULL, data bytea NOT NULL, PRIMARY KEY (key, seq));",
    /* 1 -> 2: sweeps (issue 18), their trials, and the jobs' sweep columns */
    "ALTER TABLE jobs ADD COLUMN sweep text, ADD COLUMN sweep_trial bigint,"
    "  ADD COLUMN stop_at_epoch bigint, ADD COLUMN paused int NOT NULL DEFAULT 0,"
    "  ADD COLUMN stopped_early int NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX jobs_sweep_trial ON jobs(sweep, sweep_trial);"
    "CREATE TABLE sweeps(id text COLLATE \"C\" PRIMARY KEY, state text NOT NULL,"
    "  model text NOT NULL,"
    "  dataset text NOT NULL, validation text, spec text NOT NULL, metric text NOT NULL,"
    "  maximize int NOT NULL, epochs bigint NOT NULL, min_epochs bigint NOT NULL,"
    "  eta bigint NOT NULL, rung bigint NOT NULL DEFAULT 0, n_trials bigint NOT NULL,"
    "  cancel_requested int NOT NULL DEFAULT 0, created_at text NOT NULL, started_at text,"
    "  finished_at text, error_code text, error_message text);"
    "CREATE INDEX sweeps_state ON sweeps(state, id);"
    "CREATE TABLE sweep_trials(sweep_id text NOT NULL, idx bigint NOT NULL,"
    "  \"values\" text NOT NULL, hyperparameters text NOT NULL, bytes bigint NOT NULL,"
    "  PRIMARY KEY (sweep_id, idx));",
    /* 2 -> 3: class and column names (issue 16) */
    "ALTER TABLE datasets ADD COLUMN classes text, ADD COLUMN columns text;"
    "ALTER TABLE jobs ADD COLUMN classes text;",
};

/* ---- open / close ------------------------------------------------------------------- */

static td_status migrate(PGconn *c, td_error *err)
{
    PGresult *r = NULL;
    td_status rc;
    /* one daemon at a time creates or migrates; the others then find it done */
    if ((rc = exec0(c, "BEGIN", err)) ||
        (rc = exec0(c, "SELECT pg_advisory_xact_lock(7472616964)", err)) ||
        (rc = exec0(c, "CREATE TABLE IF NOT EXISTS traind_schema(version int NOT NULL)", err)) ||
        (rc = run(c, "SELECT version FROM traind_schema", 0, NULL, NULL, 0, 0, &r, err)))
        return rc;
    int version = PQntuples(r) ? (int)geti(r, 0, 0) : 0, fresh = PQntuples(r) == 0;
    PQclear(r);
    if (version > TD_PG_SCHEMA)
        return td_fail(err, TD_EIO, "store",
                       "the PostgreSQL store has schema version %d; this "
                       "traind knows version %d",
                       version, TD_PG_SCHEMA);
    for (int v = version; v < TD_PG_SCHEMA; v++)
        if ((rc = exec0(c, MIGRATIONS[v], err))) return rc;
    char b[24];
    i64s(b, TD_PG_SCHEMA);
    const char *vals[] = {b};
    rc = run(c,
             fresh ? "INSERT INTO traind_schema VALUES ($1::int)"
                   : "UPDATE traind_schema SET version = $1::int",
             1, vals, NULL, 0, 0, NULL, err);
    return rc ? rc : exec0(c, "COMMIT", err);
}

td_status td_pg_open(td_pg **out, const char *uri, const char *cache_dir, const char *build_tag,
                     td_error *err)
{
    td_status rc = TD_OK;
    *out = NULL;
    td_pg *p = calloc(1, sizeof *p);
    if (!p) return td_fail(err, TD_ENOMEM, NULL, "out of memory opening the store");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->freed, NULL);
    snprintf(p->uri, sizeof p->uri, "%s", uri);
    snprintf(p->cache, sizeof p->cache, "%s", cache_dir);
    p->build_tag = build_tag;
    p->lease_s = 15;
    gethostname(p->node, sizeof p->node - 1);
    for (int i = 0; i < PG_POOL && !rc; i++) {
        p->conn[i] = PQconnectdb(uri);
        if (!p->conn[i] || PQstatus(p->conn[i]) != CONNECTION_OK) {
            rc = td_fail(err, TD_EIO, "store", "cannot connect to the PostgreSQL store: %s",
                         p->conn[i] ? PQerrorMessage(p->conn[i]) : "out of memory");
            break;
        }
        PQclear(PQexec(p->conn[i], "SET client_min_messages = warning"));
    }
    if (!rc) rc = migrate(p->conn[0], err);
    if (rc)
        td_pg_close(p);
    else
        *out = p;
    return rc;
}

void td_pg_close(td_pg *p)
{
    if (!p) return;
    for (int i = 0; i < PG_POOL; i++)
        if (p->conn[i]) PQfinish(p->conn[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->freed);
    free(p);
}

void td_pg_set_node(td_pg *p, const char *node, double lease_s)
{
    snprintf(p->node, sizeof p->node, "%s", node);
    p->lease_s = lease_s;
}

/* ---- blobs -------------------------------------------------------------------------- */

/* Writing a blob (inside the caller's transaction): blob_begin replaces key's row (its
 * length and checksum set by blob_end), blob_chunk appends chunk seq. */
static td_status blob_begin(PGconn *c, const char *key, uint64_t aux, const char *tag,
                            td_error *err)
{
    char ba[24];
    i64s(ba, (int64_t)aux);
    const char *v[] = {key, ba, tag ? tag : ""};
    td_status rc = run(c, "DELETE FROM blobs WHERE key = $1", 1, v, NULL, 0, 0, NULL, err);
    return rc ? rc
              : run(c, "INSERT INTO blobs VALUES ($1, $2::bigint, $3, 0, 0)", 3, v, NULL, 0, 0,
                    NULL, err);
}

static td_status blob_chunk(PGconn *c, const char *key, int seq, const void *data, size_t len,
                            td_error *err)
{
    char bq[24];
    i64s(bq, seq);
    const char *v[] = {key, bq};
    return run(c, "INSERT INTO blob_chunks VALUES ($1, $2::int, $3)", 2, v, data, len, 0, NULL,
               err);
}

static td_status blob_end(PGconn *c, const char *key, uint64_t length, td_xxh64_state *h,
                          td_error *err)
{
    char bl[24], bs[24];
    i64s(bl, (int64_t)length);
    i64s(bs, (int64_t)td_xxh64_digest(h));
    const char *v[] = {key, bl, bs};
    return run(c, "UPDATE blobs SET length = $2::bigint, checksum = $3::bigint WHERE key = $1", 3,
               v, NULL, 0, 0, NULL, err);
}

/* Replaces blob key with the payload segs, in chunks of CHUNK bytes across the segments'
 * boundaries (inside the caller's transaction). */
td_status blob_put(PGconn *c, const char *key, uint64_t aux, const char *tag,
                   const td_blob_seg *segs, int nseg, td_error *err)
{
    td_xxh64_state h;
    size_t total = 0, fill = 0;
    int seq = 0;
    td_xxh64_init(&h, 0);
    for (int i = 0; i < nseg; i++)
        total += segs[i].len;
    char *buf = total ? malloc(total < CHUNK ? total : CHUNK) : NULL;
    td_status rc = total && !buf ? td_fail(err, TD_ENOMEM, NULL, "out of memory writing %s", key)
                                 : blob_begin(c, key, aux, tag, err);
    for (int i = 0; i < nseg && !rc; i++) {
        const char *d = segs[i].data;
        td_xxh64_update(&h, d, segs[i].len);
        for (size_t off = 0; off < segs[i].len && !rc;) {
            size_t k = segs[i].len - off < CHUNK - fill ? segs[i].len - off : CHUNK - fill;
            memcpy(buf + fill, d + off, k);
            fill += k, off += k;
            if (fill == CHUNK) {
                rc = blob_chunk(c, key, seq++, buf, fill, err);
                fill = 0;
            }
        }
    }
    if (!rc && fill) rc = blob_chunk(c, key, seq, buf, fill, err);
    if (!rc) rc = blob_end(c, key, total, &h, err);
    free(buf);
    return rc;
}

/* Replaces blob key with the bytes of file path, read CHUNK bytes at a time (a dataset
 * file may be large: it is never in memory whole). */
td_status blob_put_file(PGconn *c, const char *key, const char *path, td_error *err)
{
    td_xxh64_state h;
    uint64_t total = 0;
    td_xxh64_init(&h, 0);
    FILE *f = fopen(path, "rb");
    char *buf = malloc(CHUNK);
    td_status rc = !f ? td_fail(err, TD_EIO, NULL, "%s: %s", path, strerror(errno))
        : !buf        ? td_fail(err, TD_ENOMEM, NULL, "out of memory importing %s", path)
                      : blob_begin(c, key, 0, "", err);
    for (int seq = 0; !rc; seq++) {
        size_t n = fread(buf, 1, CHUNK, f);
        if (n == 0) {
            if (ferror(f)) rc = td_fail(err, TD_EIO, NULL, "cannot read %s", path);
            break;
        }
        td_xxh64_update(&h, buf, n);
        total += n;
        rc = blob_chunk(c, key, seq, buf, n, err);
    }
    if (!rc) rc = blob_end(c, key, total, &h, err);
    if (f) fclose(f);
    free(buf);
    return rc;
}

/* Reads blob key: *payload malloc'd (length *len; never NULL on success), aux and tag.
 * TD_ENOTFOUND when absent; a checksum or length mismatch is TD_EIO. */
td_status blob_get(PGconn *c, const char *key, uint64_t *aux, char *tag, size_t tag_cap,
                   void **payload, size_t *len, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {key};
    *payload = NULL;
    td_status rc = run(c, "SELECT aux, tag, length, checksum FROM blobs WHERE key = $1", 1, v, NULL,
                       0, 0, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return td_fail(err, TD_ENOTFOUND, NULL, "blob %s not found", key);
    }
    if (aux) *aux = (uint64_t)geti(r, 0, 0);
    if (tag && tag_cap) gets_(r, 0, 1, tag, tag_cap);
    size_t total = (size_t)geti(r, 0, 2);
    uint64_t sum = (uint64_t)geti(r, 0, 3);
    PQclear(r);
    char *buf = malloc(total ? total : 1);
    if (!buf) return td_fail(err, TD_ENOMEM, NULL, "out of memory reading %s", key);
    rc = run(c, "SELECT data FROM blob_chunks WHERE key = $1 ORDER BY seq", 1, v, NULL, 0, 1, &r,
             err);
    size_t got = 0;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        size_t k = (size_t)PQgetlength(r, i, 0);
        if (got + k > total) break;
        memcpy(buf + got, PQgetvalue(r, i, 0), k);
        got += k;
    }
    PQclear(r);
    if (!rc && (got != total || td_xxh64(buf, total, 0) != sum))
        rc = td_fail(err, TD_EIO, NULL,
                     "blob %s: %zu of %zu bytes, or its checksum does not "
                     "match",
                     key, got, total);
    if (rc) {
        free(buf);
        return rc;
    }
    *payload = buf;
    *len = total;
    return TD_OK;
}

/* ---- rows --------------------------------------------------------------------------- */

void td_pg_read_cols(PGresult *r, int i, void *row, const td_col *cols, int n)
{
    for (const td_col *c = cols; c < cols + n; c++) {
        char *f = (char *)row + c->off;
        if (c->kind == 't')
            gets_(r, i, c->col, f, c->size);
        else if (c->kind == 's')
            *(td_job_state *)f = td_store_row_state(PQgetvalue(r, i, c->col));
        else if (c->kind == 'N' && PQgetisnull(r, i, c->col))
            *(int64_t *)f = -1;
        else if (c->size == sizeof(int64_t))
            *(int64_t *)f = geti(r, i, c->col);
        else
            *(int *)f = (int)geti(r, i, c->col);
    }
}

td_status td_pg_collect(PGresult *r, int cap, const td_row_kind *k,
                        td_status (*read)(PGresult *r, int i, void *row, td_error *err),
                        void **rows, int *n, char *next, td_error *err)
{
    int count = PQntuples(r) < cap ? PQntuples(r) : cap, i = 0;
    char *v = count ? calloc((size_t)count, k->elem) : NULL;
    if (count && !v) return td_fail(err, TD_ENOMEM, NULL, "out of memory listing %s", k->what);
    td_status rc = TD_OK;
    for (; i < count; i++)
        if ((rc = read(r, i, v + k->elem * (size_t)i, err))) break;
    if (rc) {
        k->drop(v, i);
        return rc;
    }
    if (next && PQntuples(r) > count)
        snprintf(next, TD_ID_MAX, "%s", v + k->elem * (size_t)(count - 1) + k->id);
    *rows = v;
    *n = count;
    return TD_OK;
}
