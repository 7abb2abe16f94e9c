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
 * checkpoint. Writes of a running job (epoch commit, checkpoint, finish) check that this
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

#define PG_POOL 4
#define CHUNK (1u << 20)
#define NODE_MAX 256

struct td_pg {
    pthread_mutex_t mu;
    pthread_cond_t freed;
    PGconn *conn[PG_POOL];
    int busy[PG_POOL];
    char uri[1024];
    char cache[PATH_MAX / 2];
    const char *build_tag;
    char node[NODE_MAX];
    double lease_s;
};

static const char *const STATE_NAMES[TD_JOB_NSTATES] = {
    "queued", "running", "succeeded", "failed", "cancelled"};

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

#define NOW_S "extract(epoch from clock_timestamp())"

#define JOB_COLS                                                                          \
    "id, model, dataset, validation, state, hyperparameters, created_at, started_at, "   \
    "finished_at, error_code, error_message, restarts, epoch, epochs, cancel_requested, " \
    "idempotency_key, metrics, checkpoint_epoch, (model_params IS NOT NULL)::int, "       \
    "crashes, resumed_on_different_build, sweep, sweep_trial, stop_at_epoch, paused, "  \
    "stopped_early, node, classes"

#define DS_COLS                                                                          \
    "id, name, n_samples, n_features, n_classes, target, label_cols, prob_cols, n_pairs, " \
    "created_at, bytes"

/* ---- connections and statements ----------------------------------------------------- */

static PGconn *acquire(td_pg *p, int *slot)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (int i = 0; i < PG_POOL; i++)
            if (!p->busy[i]) {
                p->busy[i] = 1;
                *slot = i;
                pthread_mutex_unlock(&p->mu);
                if (PQstatus(p->conn[i]) != CONNECTION_OK)
                    PQreset(p->conn[i]);
                return p->conn[i];
            }
        pthread_cond_wait(&p->freed, &p->mu);
    }
}

/* Releases the connection, rolling back a transaction an error path left open. */
static void release(td_pg *p, int slot)
{
    PGconn *c = p->conn[slot];
    if (PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
    pthread_mutex_lock(&p->mu);
    p->busy[slot] = 0;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

/* The failure of r (or of the connection) as a td_status: TD_ENOSPACE for disk_full
 * (SQLSTATE 53100), TD_ECONFLICT for a unique violation, else TD_EIO. Clears r. */
static td_status pg_fail(PGconn *c, PGresult *r, td_error *err, const char *what)
{
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    td_status st = code && strcmp(code, "53100") == 0   ? TD_ENOSPACE
                   : code && strcmp(code, "23505") == 0 ? TD_ECONFLICT
                                                        : TD_EIO;
    char msg[TD_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    PQclear(r);
    return td_fail(err, st, NULL, "postgresql: %s (in: %.60s)", msg, what);
}

/* Runs sql with text parameters vals[0..n) (NULL = SQL NULL), plus one binary parameter
 * when bin != NULL (it is $<n+1>). *out gets the result (clear it) when it is a command
 * or rows; binres asks for binary result columns. */
static td_status run(PGconn *c, const char *sql, int n, const char *const *vals,
                     const void *bin, size_t bin_len, int binres, PGresult **out,
                     td_error *err)
{
    const char *v[16];
    int lens[16] = {0}, fmts[16] = {0};
    int np = n + (bin != NULL);
    for (int i = 0; i < n; i++)
        v[i] = vals[i];
    if (bin) {
        v[n] = bin;
        lens[n] = (int)bin_len;
        fmts[n] = 1;
    }
    for (int attempt = 0;; attempt++) {
        int idle = PQtransactionStatus(c) == PQTRANS_IDLE;
        /* without parameters, PQexec: it takes several statements (the migrations) */
        PGresult *r = np == 0 && !binres ? PQexec(c, sql)
                                         : PQexecParams(c, sql, np, NULL, v, lens, fmts, binres);
        ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK) {
            if (out)
                *out = r;
            else
                PQclear(r);
            return TD_OK;
        }
        /* a connection lost outside a transaction (server restart): reset, try once more */
        if (attempt == 0 && idle && PQstatus(c) == CONNECTION_BAD) {
            PQclear(r);
            PQreset(c);
            if (PQstatus(c) == CONNECTION_OK)
                continue;
            r = NULL;
        }
        if (out)
            *out = NULL;
        return pg_fail(c, r, err, sql);
    }
}

static td_status exec0(PGconn *c, const char *sql, td_error *err)
{
    return run(c, sql, 0, NULL, NULL, 0, 0, NULL, err);
}

/* Rows changed by a command result. */
static long changed(PGresult *r)
{
    return atol(PQcmdTuples(r));
}

static void i64s(char b[24], int64_t v)
{
    snprintf(b, 24, "%" PRId64, v);
}

static int64_t geti(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static void gets_(PGresult *r, int row, int col, char *out, size_t cap)
{
    snprintf(out, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static int64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (uint8_t)p[i];
    return (int64_t)v;
}

static int state_of(const char *t)
{
    for (int i = 0; i < TD_JOB_NSTATES; i++)
        if (t && strcmp(t, STATE_NAMES[i]) == 0)
            return i;
    return -1;
}

static td_target_kind target_of(const char *t)
{
    for (int i = 0; i <= TD_TARGET_PROBS; i++)
        if (strcmp(t, td_target_name((td_target_kind)i)) == 0)
            return (td_target_kind)i;
    return TD_TARGET_NONE;
}

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
        return td_fail(err, TD_EIO, "store", "the PostgreSQL store has schema version %d; this "
                       "traind knows version %d", version, TD_PG_SCHEMA);
    for (int v = version; v < TD_PG_SCHEMA; v++)
        if ((rc = exec0(c, MIGRATIONS[v], err)))
            return rc;
    char b[24];
    i64s(b, TD_PG_SCHEMA);
    const char *vals[] = {b};
    rc = run(c, fresh ? "INSERT INTO traind_schema VALUES ($1::int)"
                      : "UPDATE traind_schema SET version = $1::int",
             1, vals, NULL, 0, 0, NULL, err);
    return rc ? rc : exec0(c, "COMMIT", err);
}

td_status td_pg_open(td_pg **out, const char *uri, const char *cache_dir,
                     const char *build_tag, td_error *err)
{
    td_status rc = TD_OK;
    *out = NULL;
    td_pg *p = calloc(1, sizeof *p);
    if (!p)
        return td_fail(err, TD_ENOMEM, NULL, "out of memory opening the store");
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
    if (!rc)
        rc = migrate(p->conn[0], err);
    if (rc) {
        td_pg_close(p);
        return rc;
    }
    *out = p;
    return TD_OK;
}

void td_pg_close(td_pg *p)
{
    if (!p)
        return;
    for (int i = 0; i < PG_POOL; i++)
        if (p->conn[i])
            PQfinish(p->conn[i]);
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
    return rc ? rc : run(c, "INSERT INTO blobs VALUES ($1, $2::bigint, $3, 0, 0)", 3, v, NULL, 0,
                         0, NULL, err);
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
    return run(c, "UPDATE blobs SET length = $2::bigint, checksum = $3::bigint WHERE key = $1",
               3, v, NULL, 0, 0, NULL, err);
}

/* Replaces blob key with the payload segs, in chunks of CHUNK bytes across the segments'
 * boundaries (inside the caller's transaction). */
static td_status blob_put(PGconn *c, const char *key, uint64_t aux, const char *tag,
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
    if (!rc && fill)
        rc = blob_chunk(c, key, seq, buf, fill, err);
    if (!rc)
        rc = blob_end(c, key, total, &h, err);
    free(buf);
    return rc;
}

/* Replaces blob key with the bytes of file path, read CHUNK bytes at a time (a dataset
 * file may be large: it is never in memory whole). */
static td_status blob_put_file(PGconn *c, const char *key, const char *path, td_error *err)
{
    td_xxh64_state h;
    uint64_t total = 0;
    td_xxh64_init(&h, 0);
    FILE *f = fopen(path, "rb");
    char *buf = malloc(CHUNK);
    td_status rc = !f   ? td_fail(err, TD_EIO, NULL, "%s: %s", path, strerror(errno))
                   : !buf ? td_fail(err, TD_ENOMEM, NULL, "out of memory importing %s", path)
                          : blob_begin(c, key, 0, "", err);
    for (int seq = 0; !rc; seq++) {
        size_t n = fread(buf, 1, CHUNK, f);
        if (n == 0) {
            if (ferror(f))
                rc = td_fail(err, TD_EIO, NULL, "cannot read %s", path);
            break;
        }
        td_xxh64_update(&h, buf, n);
        total += n;
        rc = blob_chunk(c, key, seq, buf, n, err);
    }
    if (!rc)
        rc = blob_end(c, key, total, &h, err);
    if (f)
        fclose(f);
    free(buf);
    return rc;
}

/* Reads blob key: *payload malloc'd (length *len; never NULL on success), aux and tag.
 * TD_ENOTFOUND when absent; a checksum or length mismatch is TD_EIO. */
static td_status blob_get(PGconn *c, const char *key, uint64_t *aux, char *tag, size_t tag_cap,
                          void **payload, size_t *len, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {key};
    *payload = NULL;
    td_status rc = run(c, "SELECT aux, tag, length, checksum FROM blobs WHERE key = $1", 1, v,
                       NULL, 0, 0, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return td_fail(err, TD_ENOTFOUND, NULL, "blob %s not found", key);
    }
    if (aux)
        *aux = (uint64_t)geti(r, 0, 0);
    if (tag && tag_cap)
        gets_(r, 0, 1, tag, tag_cap);
    size_t total = (size_t)geti(r, 0, 2);
    uint64_t sum = (uint64_t)geti(r, 0, 3);
    PQclear(r);
    char *buf = malloc(total ? total : 1);
    if (!buf)
        return td_fail(err, TD_ENOMEM, NULL, "out of memory reading %s", key);
    rc = run(c, "SELECT data FROM blob_chunks WHERE key = $1 ORDER BY seq", 1, v, NULL, 0, 1, &r,
             err);
    size_t got = 0;
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        size_t k = (size_t)PQgetlength(r, i, 0);
        if (got + k > total)
            break;
        memcpy(buf + got, PQgetvalue(r, i, 0), k);
        got += k;
    }
    PQclear(r);
    if (!rc && (got != total || td_xxh64(buf, total, 0) != sum))
        rc = td_fail(err, TD_EIO, NULL, "blob %s: %zu of %zu bytes, or its checksum does not "
                     "match", key, got, total);
    if (rc) {
        free(buf);
        return rc;
    }
    *payload = buf;
    *len = total;
    return TD_OK;
}

static void blob_key(char *out, size_t cap, const char *kind, const char *id)
{
    snprintf(out, cap, "%s/%s", kind, id);
}

/* ---- datasets ----------------------------------------------------------------------- */

static void read_ds(PGresult *r, int i, td_dataset_meta *m)
{
    memset(m, 0, sizeof *m);
    gets_(r, i, 0, m->id, sizeof m->id);
    gets_(r, i, 1, m->name, sizeof m->name);
    m->N = geti(r, i, 2);
    m->D = geti(r, i, 3);
    m->n_classes = geti(r, i, 4);
    m->target = target_of(PQgetvalue(r, i, 5));
    m->y_cols = geti(r, i, 6);
    m->Y_cols = geti(r, i, 7);
    m->P = geti(r, i, 8);
    gets_(r, i, 9, m->created_at, sizeof m->created_at);
    m->bytes = geti(r, i, 10);
}

static td_status ds_get(PGconn *c, const char *id, const char *lock, td_dataset_meta *out,
                        td_error *err)
{
    char sql[160];
    PGresult *r = NULL;
    const char *v[] = {id ? id : ""};
    snprintf(sql, sizeof sql, "SELECT " DS_COLS " FROM datasets WHERE id = $1 %s", lock);
    td_status rc = run(c, sql, 1, v, NULL, 0, 0, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id ? id : "");
    else if (out)
        read_ds(r, 0, out);
    PQclear(r);
    return rc;
}

td_status td_pg_dataset_insert(td_pg *p, const td_dataset_meta *m, td_error *err)
{
    char path[PATH_MAX], key[64], b[7][24];
    int slot;
    int64_t nums[] = {m->N, m->D, m->n_classes, m->y_cols, m->Y_cols, m->P, m->bytes};
    for (int i = 0; i < 7; i++)
        i64s(b[i], nums[i]);
    const char *v[] = {m->id, m->name, b[0], b[1], b[2], td_target_name(m->target),
                       b[3], b[4], b[5], m->created_at, b[6]};
    snprintf(path, sizeof path, "%s/datasets/%s.bin", p->cache, m->id);
    blob_key(key, sizeof key, "ds", m->id);
    PGconn *c = acquire(p, &slot);
    /* the file (already the local cache's copy) and the row, in one transaction */
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = blob_put_file(c, key, path, err);
    if (!rc)
        rc = run(c, "INSERT INTO datasets (" DS_COLS ") VALUES ($1, $2, $3::bigint, "
                 "$4::bigint, $5::bigint, $6, $7::bigint, $8::bigint, $9::bigint, $10, "
                 "$11::bigint)", 11, v, NULL, 0, 0, NULL, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

td_status td_pg_dataset_names_set(td_pg *p, const char *id, const char *classes,
                                  const char *columns, td_error *err)
{
    const char *v[] = {id ? id : "", classes, columns};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "UPDATE datasets SET classes = $2, columns = $3 WHERE id = $1", 3, v,
                       NULL, 0, 0, NULL, err);
    release(p, slot);
    return rc;
}

td_status td_pg_dataset_names(td_pg *p, const char *id, char **classes, char **columns,
                              td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id ? id : ""};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "SELECT classes, columns FROM datasets WHERE id = $1", 1, v, NULL, 0,
                       0, &r, err);
    release(p, slot);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", v[0]);
    if (!rc) {
        *classes = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
        *columns = PQgetisnull(r, 0, 1) ? NULL : strdup(PQgetvalue(r, 0, 1));
        if ((!PQgetisnull(r, 0, 0) && !*classes) || (!PQgetisnull(r, 0, 1) && !*columns)) {
            free(*classes), free(*columns);
            *classes = *columns = NULL;
            rc = td_fail(err, TD_ENOMEM, NULL, "out of memory");
        }
    }
    PQclear(r);
    return rc;
}

td_status td_pg_dataset_get(td_pg *p, const char *id, td_dataset_meta *out, td_error *err)
{
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = ds_get(c, id, "", out, err);
    release(p, slot);
    return rc;
}

/* Writes blob key's payload to f a chunk at a time (in the caller's snapshot), verifying
 * its length and checksum. TD_ENOTFOUND when absent; a write error is TD_EIO (TD_ENOSPACE
 * for lack of space) naming path. */
static td_status blob_get_file(PGconn *c, const char *key, FILE *f, const char *path,
                               td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {key, NULL};
    char bq[24];
    td_status rc = run(c, "SELECT length, checksum, (SELECT count(*) FROM blob_chunks WHERE "
                       "key = $1) FROM blobs WHERE key = $1", 1, v, NULL, 0, 0, &r, err);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "blob %s not found", key);
    uint64_t total = rc ? 0 : (uint64_t)geti(r, 0, 0), sum = rc ? 0 : (uint64_t)geti(r, 0, 1);
    int64_t nchunks = rc ? 0 : geti(r, 0, 2);
    PQclear(r);
    td_xxh64_state h;
    td_xxh64_init(&h, 0);
    uint64_t got = 0;
    for (int64_t seq = 0; !rc && seq < nchunks; seq++) {
        i64s(bq, seq);
        v[1] = bq;
        r = NULL;
        if ((rc = run(c, "SELECT data FROM blob_chunks WHERE key = $1 AND seq = $2::int", 2, v,
                      NULL, 0, 1, &r, err)))
            break;
        size_t n = PQntuples(r) ? (size_t)PQgetlength(r, 0, 0) : 0;
        const char *d = n ? PQgetvalue(r, 0, 0) : NULL;
        if (n && fwrite(d, 1, n, f) != n) {
            int e = errno;
            rc = td_fail(err, e == ENOSPC || e == EDQUOT ? TD_ENOSPACE : TD_EIO, NULL,
                         "cannot write %s: %s", path, strerror(e));
        }
        if (n)
            td_xxh64_update(&h, d, n);
        got += n;
        PQclear(r);
    }
    if (!rc && (got != total || td_xxh64_digest(&h) != sum))
        rc = td_fail(err, TD_EIO, NULL, "blob %s: %llu of %llu bytes, or its checksum does not "
                     "match", key, (unsigned long long)got, (unsigned long long)total);
    return rc;
}

td_status td_pg_dataset_fetch(td_pg *p, const char *id, const char *path, td_dataset_meta *out,
                              td_error *err)
{
    char key[64], tmp[PATH_MAX + 32];
    static unsigned seq;
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = ds_get(c, id, "", out, err);
    if (rc || access(path, R_OK) == 0) { /* cached: ids are never reused */
        release(p, slot);
        return rc;
    }
    /* a temp file (td_blob_is_temp's name: swept at the next open) renamed over path, so a
     * concurrent reader sees no file or the whole file */
    blob_key(key, sizeof key, "ds", id);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%u", path, (int)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    FILE *f = fopen(tmp, "wb");
    if (!f)
        rc = td_fail(err, errno == ENOSPC || errno == EDQUOT ? TD_ENOSPACE : TD_EIO, NULL,
                     "cannot cache dataset %s at %s: %s", id, tmp, strerror(errno));
    if (!rc)
        rc = exec0(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc && (rc = blob_get_file(c, key, f, tmp, err)) == TD_ENOTFOUND)
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    if (f && fclose(f) != 0 && !rc)
        rc = td_fail(err, TD_EIO, NULL, "cannot write %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = td_fail(err, TD_EIO, NULL, "rename %s: %s", tmp, strerror(errno));
    if (rc && f)
        unlink(tmp);
    return rc;
}

td_status td_pg_dataset_list(td_pg *p, int limit, const char *after, td_dataset_meta **rows,
                             int *n, char next[TD_ID_MAX], td_error *err)
{
    char cursor[TD_ID_MAX], bl[24];
    PGresult *r = NULL;
    snprintf(cursor, sizeof cursor, "%s", after ? after : "");
    *rows = NULL;
    *n = 0;
    next[0] = '\0';
    if (limit < 1)
        return td_fail(err, TD_EINVAL, "limit", "limit must be >= 1, got %d", limit);
    i64s(bl, (int64_t)limit + 1);
    const char *v[] = {cursor, bl};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "SELECT " DS_COLS " FROM datasets WHERE ($1 = '' OR id < $1) "
                       "ORDER BY id DESC LIMIT $2::bigint", 2, v, NULL, 0, 0, &r, err);
    release(p, slot);
    if (rc)
        return rc;
    int count = PQntuples(r);
    td_dataset_meta *m = malloc(sizeof *m * (size_t)(count ? count : 1));
    if (!m) {
        PQclear(r);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory listing datasets");
    }
    for (int i = 0; i < count; i++)
        read_ds(r, i, &m[i]);
    PQclear(r);
    if (count > limit) {
        count = limit;
        snprintf(next, TD_ID_MAX, "%s", m[limit - 1].id);
    }
    *rows = m;
    *n = count;
    return TD_OK;
}

static td_status in_use(PGconn *c, const char *id, int *used, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id};
    td_status rc = run(c, "SELECT (EXISTS (SELECT 1 FROM jobs WHERE (dataset = $1 OR "
                       "validation = $1) AND state IN ('queued', 'running')) OR EXISTS (SELECT "
                       "1 FROM sweeps WHERE (dataset = $1 OR validation = $1) AND state IN "
                       "('queued', 'running')))::int", 1, v, NULL, 0, 0, &r, err);
    if (!rc)
        *used = (int)geti(r, 0, 0);
    PQclear(r);
    return rc;
}

td_status td_pg_dataset_in_use(td_pg *p, const char *id, int *used, td_error *err)
{
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = in_use(c, id ? id : "", used, err);
    release(p, slot);
    return rc;
}

td_status td_pg_dataset_delete(td_pg *p, const char *id, td_error *err)
{
    char key[64];
    int used = 0, slot;
    PGconn *c = acquire(p, &slot);
    const char *v[] = {id ? id : ""};
    blob_key(key, sizeof key, "ds", id ? id : "");
    const char *vk[] = {key};
    /* FOR UPDATE on the row: a job insert (which takes it FOR SHARE) waits, or we wait */
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = ds_get(c, id, "FOR UPDATE", NULL, err);
    if (!rc)
        rc = in_use(c, id, &used, err);
    if (!rc && used)
        rc = td_fail(err, TD_ECONFLICT, "dataset",
                     "dataset %s is used by a queued or running job", id);
    if (!rc)
        rc = run(c, "DELETE FROM datasets WHERE id = $1", 1, v, NULL, 0, 0, NULL, err);
    if (!rc)
        rc = run(c, "DELETE FROM blobs WHERE key = $1", 1, vk, NULL, 0, 0, NULL, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

/* ---- jobs --------------------------------------------------------------------------- */

static td_status read_job(PGresult *r, int i, td_job_row *j, td_error *err)
{
    memset(j, 0, sizeof *j);
    gets_(r, i, 0, j->id, sizeof j->id);
    gets_(r, i, 1, j->model, sizeof j->model);
    gets_(r, i, 2, j->dataset, sizeof j->dataset);
    gets_(r, i, 3, j->validation, sizeof j->validation);
    int st = state_of(PQgetvalue(r, i, 4));
    j->state = st < 0 ? TD_JOB_FAILED : (td_job_state)st;
    gets_(r, i, 6, j->created_at, sizeof j->created_at);
    gets_(r, i, 7, j->started_at, sizeof j->started_at);
    gets_(r, i, 8, j->finished_at, sizeof j->finished_at);
    gets_(r, i, 9, j->error_code, sizeof j->error_code);
    gets_(r, i, 10, j->error_message, sizeof j->error_message);
    j->restarts = geti(r, i, 11);
    j->epoch = geti(r, i, 12);
    j->epochs = geti(r, i, 13);
    j->cancel_requested = (int)geti(r, i, 14);
    gets_(r, i, 15, j->idempotency_key, sizeof j->idempotency_key);
    j->checkpoint_epoch = PQgetisnull(r, i, 17) ? -1 : geti(r, i, 17);
    j->has_model = (int)geti(r, i, 18);
    j->crashes = geti(r, i, 19);
    j->resumed_on_different_build = (int)geti(r, i, 20);
    gets_(r, i, 21, j->sweep, sizeof j->sweep);
    j->sweep_trial = PQgetisnull(r, i, 22) ? -1 : geti(r, i, 22);
    j->stop_at_epoch = geti(r, i, 23); /* NULL: 0 */
    j->paused = (int)geti(r, i, 24);
    j->stopped_early = (int)geti(r, i, 25);
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

/* Collects every row of a JOB_COLS result (cleared). */
static td_status collect(PGresult *r, td_job_row **rows, int *n, td_error *err)
{
    int count = PQntuples(r);
    td_status rc = TD_OK;
    td_job_row *v = count ? calloc((size_t)count, sizeof *v) : NULL; /* none: NULL */
    if (count && !v)
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory listing jobs");
    int i = 0;
    for (; !rc && i < count; i++)
        if ((rc = read_job(r, i, &v[i], err)))
            break;
    PQclear(r);
    if (rc) {
        td_job_rows_free(v, i);
        return rc;
    }
    *rows = v;
    *n = count;
    return TD_OK;
}

static td_status job_get(PGconn *c, const char *col, const char *key, td_job_row *out,
                         td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {key ? key : ""};
    int by_id = strcmp(col, "id") == 0;
    td_status rc = run(c, by_id ? "SELECT " JOB_COLS " FROM jobs WHERE id = $1"
                                : "SELECT " JOB_COLS " FROM jobs WHERE idempotency_key = $1",
                       1, v, NULL, 0, 0, &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s%s not found",
                     by_id ? "" : "with idempotency key ", key ? key : "");
    else
        rc = read_job(r, 0, out, err);
    PQclear(r);
    return rc;
}

td_status td_pg_job_get(td_pg *p, const char *col, const char *key, td_job_row *out,
                        td_error *err)
{
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = job_get(c, col, key, out, err);
    release(p, slot);
    return rc;
}

/* Locks job id's row (FOR UPDATE, in the caller's transaction) and gives its state
 * (TD_ENOTFOUND when absent), checkpoint epoch (-1: none), model flag, node. */
static td_status job_lock(PGconn *c, const char *id, int *state, int64_t *ckpt, int *has_model,
                          char *node, size_t node_cap, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id ? id : ""};
    td_status rc = run(c, "SELECT state, checkpoint_epoch, (model_params IS NOT NULL)::int, "
                       "node, epoch FROM jobs WHERE id = $1 FOR UPDATE", 1, v, NULL, 0, 0, &r,
                       err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", id ? id : "");
    }
    *state = state_of(PQgetvalue(r, 0, 0));
    if (ckpt)
        *ckpt = PQgetisnull(r, 0, 1) ? -1 : geti(r, 0, 1);
    if (has_model)
        *has_model = (int)geti(r, 0, 2);
    if (node)
        gets_(r, 0, 3, node, node_cap);
    PQclear(r);
    return TD_OK;
}

/* TD_ECONFLICT when a running job is held by another daemon (its writes belong to it). */
static td_status held_here(td_pg *p, const char *id, int state, const char *node, td_error *err)
{
    if (state == TD_JOB_RUNNING && node[0] && strcmp(node, p->node) != 0)
        return td_fail(err, TD_ECONFLICT, "node", "job %s is held by %s now, not %s", id, node,
                       p->node);
    return TD_OK;
}

td_status td_pg_job_insert(td_pg *p, const td_job_spec *spec, char id_out[TD_ID_MAX],
                           td_error *err)
{
    PGresult *r = NULL;
    char id[TD_ID_MAX], now[TD_TIME_MAX], be[24], bm[24];
    const char *key = spec->idempotency_key && *spec->idempotency_key ? spec->idempotency_key
                                                                      : NULL;
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc && spec->max_queued > 0) {
        /* cluster-wide bound: inserts serialise on this lock, then count */
        rc = exec0(c, "SELECT pg_advisory_xact_lock(7472616965)", err);
        if (!rc)
            rc = run(c, "SELECT count(*) FROM jobs WHERE state = 'queued'", 0, NULL, NULL, 0, 0,
                     &r, err);
        if (!rc && geti(r, 0, 0) >= spec->max_queued)
            rc = td_fail(err, TD_EBUSY, NULL, "the queue is full (%lld jobs waiting, "
                         "max_queued_jobs = %lld); retry later", (long long)geti(r, 0, 0),
                         (long long)spec->max_queued);
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
    if (!rc)
        rc = ds_get(c, spec->dataset, "FOR SHARE", NULL, err);
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
        const char *v[] = {id, spec->model, spec->dataset,
                           spec->validation && *spec->validation ? spec->validation : NULL,
                           spec->hyperparameters, now, be, key, bm,
                           in_sweep ? spec->sweep : NULL, in_sweep ? bt : NULL,
                           spec->stop_at_epoch > 0 ? bs : NULL};
        rc = run(c, "INSERT INTO jobs (id, model, dataset, validation, state, hyperparameters, "
                 "created_at, epochs, idempotency_key, mem_bytes, sweep, sweep_trial, "
                 "stop_at_epoch, classes) VALUES ($1, $2, $3, $4, 'queued', $5, $6, "
                 "$7::bigint, $8, $9::bigint, $10, $11::bigint, $12::bigint, (SELECT classes "
                 "FROM datasets WHERE id = $3))", 12, v, NULL, 0, 0, NULL, err);
    }
    if (rc == TD_ECONFLICT && key && !id_out[0]) /* a concurrent insert won the key */
        td_fail(err, TD_ECONFLICT, "idempotency_key", "a job with this Idempotency-Key exists");
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    if (!rc)
        snprintf(id_out, TD_ID_MAX, "%s", id);
    if (rc == TD_ECONFLICT && key && !id_out[0]) { /* find the winner's id */
        PQclear(PQexec(c, "ROLLBACK"));
        const char *v[] = {key};
        if (run(c, "SELECT id FROM jobs WHERE idempotency_key = $1", 1, v, NULL, 0, 0, &r,
                NULL) == TD_OK) {
            if (PQntuples(r))
                gets_(r, 0, 0, id_out, TD_ID_MAX);
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
    snprintf(cursor, sizeof cursor, "%s", after ? after : "");
    *rows = NULL;
    *n = 0;
    next[0] = '\0';
    if (limit < 1)
        return td_fail(err, TD_EINVAL, "limit", "limit must be >= 1, got %d", limit);
    if (state >= TD_JOB_NSTATES)
        return td_fail(err, TD_EINVAL, "state", "unknown state %d", state);
    i64s(bl, (int64_t)limit + 1);
    const char *v[] = {state >= 0 ? STATE_NAMES[state] : "", cursor, bl};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "SELECT " JOB_COLS " FROM jobs WHERE ($1 = '' OR state = $1) AND "
                       "($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3::bigint", 3, v, NULL, 0,
                       0, &r, err);
    release(p, slot);
    if (!rc)
        rc = collect(r, rows, n, err);
    if (!rc && *n > limit) {
        td_job_row_fini(&(*rows)[limit]);
        *n = limit;
        snprintf(next, TD_ID_MAX, "%s", (*rows)[limit - 1].id);
    }
    return rc;
}

td_status td_pg_job_list_active(td_pg *p, td_job_row **rows, int *n, td_error *err)
{
    PGresult *r = NULL;
    *rows = NULL;
    *n = 0;
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "SELECT " JOB_COLS " FROM jobs WHERE state IN ('queued', 'running') "
                       "AND paused = 0 ORDER BY id ASC", 0, NULL, NULL, 0, 0, &r, err);
    release(p, slot);
    return rc ? rc : collect(r, rows, n, err);
}

td_status td_pg_job_counts(td_pg *p, int64_t counts[TD_JOB_NSTATES], td_error *err)
{
    PGresult *r = NULL;
    for (int i = 0; i < TD_JOB_NSTATES; i++)
        counts[i] = 0;
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "SELECT state, count(*) FROM jobs GROUP BY state", 0, NULL, NULL, 0,
                       0, &r, err);
    release(p, slot);
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        int st = state_of(PQgetvalue(r, i, 0));
        if (st >= 0)
            counts[st] = geti(r, i, 1);
    }
    PQclear(r);
    return rc;
}

td_status td_pg_job_start(td_pg *p, const char *id, int live, td_job_row *out, td_error *err)
{
    char now[TD_TIME_MAX], node[NODE_MAX];
    int state, slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = job_lock(c, id, &state, NULL, NULL, node, sizeof node, err);
    if (!rc && state != TD_JOB_QUEUED && state != TD_JOB_RUNNING)
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is %s", id,
                     td_job_state_name((td_job_state)state));
    if (!rc) {
        td_store_now(now);
        const char *v[] = {id, now, p->node, live ? "1" : "0"};
        rc = run(c, state == TD_JOB_QUEUED
                        ? "UPDATE jobs SET state = 'running', node = $3, started_at = "
                          "COALESCE(started_at, $2), live = GREATEST(live, $4::int) WHERE "
                          "id = $1" /* a paused trial keeps its first start */
                        : "UPDATE jobs SET restarts = restarts + 1, node = $3, "
                          "started_at = COALESCE(started_at, $2), live = GREATEST(live, "
                          "$4::int) WHERE id = $1",
                 4, v, NULL, 0, 0, NULL, err);
    }
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    if (!rc && out)
        rc = job_get(c, "id", id, out, err);
    release(p, slot);
    return rc;
}

td_status td_pg_job_progress(td_pg *p, const char *id, int64_t epoch, const char *metrics_json,
                             td_error *err)
{
    PGresult *r = NULL;
    char be[24];
    i64s(be, epoch);
    const char *v[] = {id ? id : "", be, metrics_json};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "UPDATE jobs SET epoch = $2::bigint, metrics = COALESCE($3, metrics) "
                       "WHERE id = $1", 3, v, NULL, 0, 0, &r, err);
    release(p, slot);
    if (!rc && changed(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", id ? id : "");
    PQclear(r);
    return rc;
}

td_status td_pg_job_finish(td_pg *p, const char *id, td_job_state state, const char *code,
                           const char *msg, td_error *err)
{
    char now[TD_TIME_MAX], node[NODE_MAX];
    int cur, slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = job_lock(c, id, &cur, NULL, NULL, node, sizeof node, err);
    if (!rc && cur != TD_JOB_QUEUED && cur != TD_JOB_RUNNING)
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is already %s", id,
                     td_job_state_name((td_job_state)cur));
    if (!rc)
        rc = held_here(p, id, cur, node, err);
    if (!rc) {
        td_store_now(now);
        const char *v[] = {id, STATE_NAMES[state], now, code && *code ? code : NULL,
                           msg && *msg ? msg : NULL};
        rc = run(c, "UPDATE jobs SET state = $2, finished_at = $3, error_code = $4, "
                 "error_message = $5, lease_until = NULL, live = 0 WHERE id = $1", 5, v, NULL,
                 0, 0, NULL, err);
    }
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

td_status td_pg_job_cancel(td_pg *p, const char *id, td_job_state *state_after, td_error *err)
{
    char now[TD_TIME_MAX];
    int cur, slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = job_lock(c, id, &cur, NULL, NULL, NULL, 0, err);
    if (!rc && cur != TD_JOB_QUEUED && cur != TD_JOB_RUNNING)
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is already %s", id,
                     td_job_state_name((td_job_state)cur));
    if (!rc) {
        td_store_now(now);
        const char *v[] = {id, now};
        /* a running job's holder hears of it at its next heartbeat (td_pg_job_renew) */
        rc = run(c, cur == TD_JOB_QUEUED
                        ? "UPDATE jobs SET state = 'cancelled', finished_at = $2, "
                          "cancel_requested = 1 WHERE id = $1"
                        : "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND $2 <> ''",
                 2, v, NULL, 0, 0, NULL, err);
    }
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    if (!rc && state_after)
        *state_after = cur == TD_JOB_QUEUED ? TD_JOB_CANCELLED : TD_JOB_RUNNING;
    return rc;
}

/* TD_ECONFLICT when job id is a trial of a sweep still queued or running. */
static td_status in_active_sweep(PGconn *c, const char *id, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id};
    td_status rc = run(c, "SELECT w.id FROM jobs j JOIN sweeps w ON w.id = j.sweep WHERE "
                       "j.id = $1 AND w.state IN ('queued', 'running')", 1, v, NULL, 0, 0, &r,
                       err);
    if (!rc && PQntuples(r) > 0)
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is a trial of sweep %s, which is "
                     "still active; delete the sweep once it ends", id, PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

td_status td_pg_job_delete(td_pg *p, const char *id, td_error *err)
{
    char k1[64], k2[64];
    int cur, slot;
    blob_key(k1, sizeof k1, "ckpt", id ? id : "");
    blob_key(k2, sizeof k2, "model", id ? id : "");
    const char *v[] = {id ? id : "", k1, k2};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = job_lock(c, id, &cur, NULL, NULL, NULL, 0, err);
    if (!rc && (cur == TD_JOB_QUEUED || cur == TD_JOB_RUNNING))
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is %s; cancel it first", id,
                     td_job_state_name((td_job_state)cur));
    if (!rc)
        rc = in_active_sweep(c, id, err);
    /* PostgreSQL has no WAL-size concern of SQLite's: one transaction */
    if (!rc)
        rc = run(c, "DELETE FROM jobs WHERE id = $1 AND $2 <> '' AND $3 <> ''", 3, v, NULL, 0,
                 0, NULL, err);
    if (!rc)
        rc = run(c, "DELETE FROM history WHERE job_id = $1 AND $2 <> '' AND $3 <> ''", 3, v,
                 NULL, 0, 0, NULL, err);
    if (!rc)
        rc = run(c, "DELETE FROM blobs WHERE key IN ($2, $3) AND $1 <> ''", 3, v, NULL, 0, 0,
                 NULL, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

/* ---- the shared queue --------------------------------------------------------------- */

td_status td_pg_job_claim(td_pg *p, uint64_t mem_avail, char id_out[TD_ID_MAX],
                          uint64_t *mem_bytes, td_error *err)
{
    PGresult *r = NULL;
    char bl[32], bm[24];
    snprintf(bl, sizeof bl, "%.3f", p->lease_s);
    i64s(bm, mem_avail > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)mem_avail);
    const char *v[] = {p->node, bl, bm};
    int slot;
    PGconn *c = acquire(p, &slot);
    /* oldest first; SKIP LOCKED: a row another daemon is claiming is passed over */
    td_status rc = run(c, "UPDATE jobs SET node = $1, lease_until = " NOW_S " + $2::float8, "
                       "live = 1 WHERE id = (SELECT id FROM jobs WHERE state IN ('queued', "
                       "'running') AND paused = 0 AND live = 0 AND (lease_until IS NULL OR "
                       "lease_until < " NOW_S ") AND mem_bytes <= $3::bigint ORDER BY id LIMIT 1 "
                       "FOR UPDATE SKIP LOCKED) RETURNING id, mem_bytes", 3, v, NULL, 0, 0,
                       &r, err);
    release(p, slot);
    if (rc)
        return rc;
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
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "UPDATE jobs SET lease_until = " NOW_S " + $2::float8 WHERE "
                       "node = $1 AND id = ANY($3::text[]) AND state IN ('queued', 'running') "
                       "RETURNING id, cancel_requested", 3, v, NULL, 0, 0, &r, err);
    release(p, slot);
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

/* ---- history ------------------------------------------------------------------------ */

static int count_cols(const char *t)
{
    if (!t || !*t)
        return 0;
    int n = 1;
    for (; *t; t++)
        n += *t == ',';
    return n;
}

/* The column count of job_id's history (0 when unset); TD_ENOTFOUND without the job. */
static td_status hist_cols(PGconn *c, const char *job_id, int *ncols, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {job_id ? job_id : ""};
    td_status rc = run(c, "SELECT history_columns FROM jobs WHERE id = $1", 1, v, NULL, 0, 0,
                       &r, err);
    if (rc)
        return rc;
    if (PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
    else
        *ncols = PQgetisnull(r, 0, 0) ? 0 : count_cols(PQgetvalue(r, 0, 0));
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
    if (!rc)
        rc = job_lock(c, job_id, &state, NULL, NULL, NULL, 0, err);
    if (!rc)
        rc = hist_cols(c, job_id, &cur, err);
    if (!rc && cur != 0 && cur != n) {
        rc = run(c, "SELECT EXISTS (SELECT 1 FROM history WHERE job_id = $1)::int", 1, v, NULL,
                 0, 0, &r, err);
        if (!rc && geti(r, 0, 0))
            rc = td_fail(err, TD_ECONFLICT, "columns",
                         "job %s has history with %d columns, not %d", job_id, cur, n);
        PQclear(r);
    }
    if (!rc)
        rc = run(c, "UPDATE jobs SET history_columns = $2 WHERE id = $1", 2, v, NULL, 0, 0,
                 NULL, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

static td_status hist_insert(PGconn *c, const char *job_id, int64_t epoch, const double *values,
                             int n, td_error *err)
{
    int ncols = 0;
    char be[24];
    td_status rc = hist_cols(c, job_id, &ncols, err);
    if (rc)
        return rc;
    if (ncols == 0)
        return td_fail(err, TD_EINVAL, "columns", "job %s: history columns were never set",
                       job_id);
    if (n != ncols || !values)
        return td_fail(err, TD_EINVAL, "columns", "job %s: record has %d values, history has "
                       "%d columns", job_id, n, ncols);
    i64s(be, epoch);
    const char *v[] = {job_id, be};
    return run(c, "INSERT INTO history VALUES ($1, $2::bigint, $3) ON CONFLICT (job_id, epoch) "
               "DO UPDATE SET record = EXCLUDED.record", 2, v, values,
               sizeof(double) * (size_t)n, 0, NULL, err);
}

td_status td_pg_history_append(td_pg *p, const char *job_id, int64_t epoch,
                               const double *values, int n, td_error *err)
{
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = hist_insert(c, job_id, epoch, values, n, err);
    release(p, slot);
    return rc;
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
        rc = run(c, "SELECT history_columns FROM jobs WHERE id = $1", 1, v, NULL, 0, 0, &r,
                 err);
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
        rc = run(c, "SELECT epoch, record FROM history WHERE job_id = $1 AND epoch > $2::bigint "
                 "ORDER BY epoch LIMIT $3::bigint", 3, v, NULL, 0, 1, &r, err); /* NULL: all */
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
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
            rc = td_fail(err, TD_EIO, NULL, "history of %s: record has %zu bytes for %d "
                         "columns", job_id, bytes, h.n_cols);
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

td_status td_pg_history_truncate(td_pg *p, const char *job_id, int64_t after_epoch,
                                 td_error *err)
{
    char be[24];
    int ncols, slot;
    i64s(be, after_epoch);
    const char *v[] = {job_id ? job_id : "", be};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = hist_cols(c, job_id, &ncols, err);
    if (!rc)
        rc = run(c, "DELETE FROM history WHERE job_id = $1 AND epoch > $2::bigint", 2, v, NULL,
                 0, 0, NULL, err);
    if (!rc)
        rc = run(c, "UPDATE jobs SET epoch = LEAST(epoch, $2::bigint) WHERE id = $1", 2, v,
                 NULL, 0, 0, NULL, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

/* ---- epoch commit, checkpoints, models ---------------------------------------------- */

td_status td_pg_commit_epoch(td_pg *p, const char *job_id, int64_t epoch, int with_record,
                             const double *record, int n, const char *metrics_json,
                             const void *ckpt, size_t ckpt_len, td_error *err)
{
    PGresult *r = NULL;
    char be[24], key[64], node[NODE_MAX];
    int state, slot;
    i64s(be, epoch);
    blob_key(key, sizeof key, "ckpt", job_id);
    const char *v[] = {job_id, be, metrics_json, ckpt ? "1" : "0"};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = job_lock(c, job_id, &state, NULL, NULL, node, sizeof node, err);
    if (!rc)
        rc = held_here(p, job_id, state, node, err);
    if (!rc && with_record) {
        rc = hist_insert(c, job_id, epoch, record, n, err);
        if (!rc)
            rc = run(c, "UPDATE jobs SET epoch = $2::bigint, metrics = COALESCE($3, metrics), "
                     "checkpoint_epoch = CASE WHEN $4 = '1' THEN $2::bigint ELSE "
                     "checkpoint_epoch END WHERE id = $1", 4, v, NULL, 0, 0, NULL, err);
    } else if (!rc) {
        rc = run(c, "SELECT epoch FROM jobs WHERE id = $1", 1, v, NULL, 0, 0, &r, err);
        if (!rc && epoch > geti(r, 0, 0))
            rc = td_fail(err, TD_EINVAL, "epoch",
                         "checkpoint of epoch %lld is ahead of the committed epoch %lld",
                         (long long)epoch, (long long)geti(r, 0, 0));
        PQclear(r);
        if (!rc)
            rc = run(c, "UPDATE jobs SET checkpoint_epoch = $2::bigint WHERE id = $1", 2, v,
                     NULL, 0, 0, NULL, err);
    }
    if (!rc && ckpt) {
        td_blob_seg seg = {ckpt, ckpt_len};
        rc = blob_put(c, key, (uint64_t)epoch, p->build_tag, &seg, 1, err);
    }
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
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
        rc = run(c, "SELECT checkpoint_epoch FROM jobs WHERE id = $1", 1, v, NULL, 0, 0, &r,
                 err);
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
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    if (rc) {
        free(*buf);
        *buf = NULL;
        *len = 0;
    } else if (epoch) {
        *epoch = rec;
    }
    return rc;
}

td_status td_pg_model_put(td_pg *p, const char *job_id, const char *meta_json,
                          const float *params, int64_t n, td_error *err)
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
    if (!rc)
        rc = job_lock(c, job_id, &state, NULL, NULL, NULL, 0, err);
    if (!rc)
        rc = blob_put(c, key, (uint64_t)n, "", segs, 2, err);
    if (!rc)
        rc = run(c, "UPDATE jobs SET model_params = $2::bigint WHERE id = $1", 2, v, NULL, 0, 0,
                 NULL, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
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
    if (!rc)
        rc = exec0(c, "SET LOCAL synchronous_commit = off", err);
    if (!rc)
        rc = job_lock(c, job_id, &state, NULL, &has_model, NULL, 0, err);
    if (!rc && has_model)
        rc = td_fail(err, TD_ECONFLICT, "model", "job %s has a model already", job_id);
    if (!rc)
        rc = blob_put(c, key, (uint64_t)n, "", segs, 2, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
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
        rc = run(c, "UPDATE jobs SET state = 'succeeded', model_params = $2::bigint, "
                 "finished_at = $3, live = 0, lease_until = NULL WHERE id = $1 AND state IN "
                 "('queued', 'running') AND (node IS NULL OR node = $4)", 4, v, NULL, 0, 0,
                 NULL, err);
    }
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
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
        rc = run(c, "SELECT (model_params IS NOT NULL)::int FROM jobs WHERE id = $1", 1, v, NULL,
                 0, 0, &r, err);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", v[0]);
    else if (!rc && !geti(r, 0, 0))
        rc = td_fail(err, TD_ENOTFOUND, "model", "job %s has no model", v[0]);
    PQclear(r);
    if (!rc)
        rc = blob_get(c, key, &aux, NULL, 0, &buf, &len, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    size_t pbytes = (size_t)aux * sizeof(float);
    if (!rc && (aux > (uint64_t)INT64_MAX / sizeof(float) || len < pbytes + 1 ||
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

/* ---- crash-loop protection ---------------------------------------------------------- */

td_status td_pg_job_set_live(td_pg *p, const char *id, int live, td_error *err)
{
    const char *v[] = {id ? id : "", p->node};
    int slot;
    PGconn *c = acquire(p, &slot);
    /* letting go also ends the lease: another daemon may take the job at once */
    td_status rc = run(c, live ? "UPDATE jobs SET live = 1 WHERE id = $1 AND $2 <> ''"
                               : "UPDATE jobs SET live = 0, lease_until = NULL WHERE id = $1 "
                                 "AND (node IS NULL OR node = $2)",
                       2, v, NULL, 0, 0, NULL, err);
    release(p, slot);
    return rc;
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
        rc = exec0(c, "UPDATE jobs SET crashes = crashes + 1, live = 0 WHERE live = 1 AND "
                   "state IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < "
                   NOW_S ")", err);
    if (!rc)
        rc = run(c, "UPDATE jobs SET state = 'failed', finished_at = $2, error_code = 'crashed', "
                 "error_message = 'the daemon died ' || crashes || ' times while running this "
                 "job (a crash, an abort or an out-of-memory kill); it is not resumed again', "
                 "lease_until = NULL WHERE state IN ('queued', 'running') AND crashes >= "
                 "$1::bigint RETURNING " JOB_COLS, 2, v, NULL, 0, 0, &r, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    if (rc) {
        PQclear(r);
        return rc;
    }
    if ((rc = collect(r, failed, n, err)) == TD_OK && *n > 1)
        qsort(*failed, (size_t)*n, sizeof **failed, by_id); /* oldest first */
    return rc;
}

td_status td_pg_job_mark_different_build(td_pg *p, const char *id, td_error *err)
{
    const char *v[] = {id ? id : ""};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "UPDATE jobs SET resumed_on_different_build = 1 WHERE id = $1", 1, v,
                       NULL, 0, 0, NULL, err);
    release(p, slot);
    return rc;
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
    if (!rc)
        rc = exec0(c, "SET LOCAL synchronous_commit = off", err);
    if (!rc)
        rc = job_lock(c, job_id, &state, NULL, NULL, node, sizeof node, err);
    if (!rc)
        rc = held_here(p, job_id, state, node, err);
    if (!rc)
        rc = hist_cols(c, job_id, &ncols, err);
    if (!rc && (ncols == 0 || ncols != b->n_cols))
        rc = td_fail(err, TD_EINVAL, "columns", "job %s: records have %d values, history has "
                     "%d columns", job_id, b->n_cols, ncols);
    const char *vj[] = {job_id};
    if (!rc)
        rc = run(c, "SELECT epoch FROM jobs WHERE id = $1", 1, vj, NULL, 0, 0, &r, err);
    int64_t prev_latest = rc ? 0 : geti(r, 0, 0);
    PQclear(r);
    size_t rec_bytes = sizeof(double) * (size_t)b->n_cols;
    for (int64_t i = 0; !rc && i < b->n_rows; i++) {
        if (!hist_kept(b->epochs[i], S, b, latest))
            continue;
        i64s(be, b->epochs[i]);
        const char *v[] = {job_id, be};
        rc = run(c, "INSERT INTO history VALUES ($1, $2::bigint, $3) ON CONFLICT (job_id, "
                 "epoch) DO UPDATE SET record = EXCLUDED.record", 2, v,
                 b->records + (size_t)i * (size_t)b->n_cols, rec_bytes, 0, NULL, err);
    }
    i64s(bl, latest);
    const char *vu[] = {job_id, bl, b->metrics_json};
    if (!rc)
        rc = run(c, "UPDATE jobs SET epoch = $2::bigint, metrics = COALESCE($3, metrics) WHERE "
                 "id = $1", 3, vu, NULL, 0, 0, NULL, err);
    /* the thinning of store.c's hist_thin_locked */
    int full = b->full_pass || S != td_history_stride(prev_latest, b->max_rows);
    if (!rc && S > 1) {
        i64s(bs, S), i64s(bf, b->first), i64s(bb, b->best);
        i64s(bpl, prev_latest), i64s(bpb, b->prev_best);
        const char *v[] = {job_id, bs, bf, bb, bl, bpl, bpb};
        rc = run(c, full ? "DELETE FROM history WHERE job_id = $1 AND epoch % $2::bigint <> 0 "
                           "AND epoch NOT IN ($3::bigint, $4::bigint, $5::bigint)"
                         : "DELETE FROM history WHERE job_id = $1 AND epoch IN ($6::bigint, "
                           "$7::bigint) AND epoch % $2::bigint <> 0 AND epoch NOT IN "
                           "($3::bigint, $4::bigint, $5::bigint)",
                 full ? 5 : 7, v, NULL, 0, 0, NULL, err);
    }
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

/* ---- sweeps (store_sweeps.h) -------------------------------------------------------- */

#define SWEEP_COLS                                                                        \
    "id, state, model, dataset, validation, spec, metric, maximize, epochs, min_epochs, " \
    "eta, rung, n_trials, cancel_requested, created_at, started_at, finished_at, "       \
    "error_code, error_message"

static td_status read_sweep(PGresult *r, int i, td_sweep_row *w, td_error *err)
{
    memset(w, 0, sizeof *w);
    gets_(r, i, 0, w->id, sizeof w->id);
    int st = state_of(PQgetvalue(r, i, 1));
    w->state = st < 0 ? TD_JOB_FAILED : (td_job_state)st;
    gets_(r, i, 2, w->model, sizeof w->model);
    gets_(r, i, 3, w->dataset, sizeof w->dataset);
    gets_(r, i, 4, w->validation, sizeof w->validation);
    gets_(r, i, 6, w->metric, sizeof w->metric);
    w->maximize = (int)geti(r, i, 7);
    w->epochs = geti(r, i, 8);
    w->min_epochs = geti(r, i, 9);
    w->eta = geti(r, i, 10);
    w->rung = geti(r, i, 11);
    w->n_trials = geti(r, i, 12);
    w->cancel_requested = (int)geti(r, i, 13);
    gets_(r, i, 14, w->created_at, sizeof w->created_at);
    gets_(r, i, 15, w->started_at, sizeof w->started_at);
    gets_(r, i, 16, w->finished_at, sizeof w->finished_at);
    gets_(r, i, 17, w->error_code, sizeof w->error_code);
    gets_(r, i, 18, w->error_message, sizeof w->error_message);
    if (!(w->spec = strdup(PQgetvalue(r, i, 5))))
        return td_fail(err, TD_ENOMEM, NULL, "out of memory reading sweep %s", w->id);
    return TD_OK;
}

td_status td_pg_sweep_insert(td_pg *p, const td_sweep_spec *spec,
                             const td_sweep_trial_spec *trials, int n, char id_out[TD_ID_MAX],
                             td_error *err)
{
    char id[TD_ID_MAX], now[TD_TIME_MAX], b[5][24];
    int slot;
    td_store_new_id(id, "swp_");
    td_store_now(now);
    i64s(b[0], spec->maximize), i64s(b[1], spec->epochs), i64s(b[2], spec->min_epochs);
    i64s(b[3], spec->eta), i64s(b[4], n);
    const char *v[] = {id, spec->model, spec->dataset,
                       spec->validation && *spec->validation ? spec->validation : NULL,
                       spec->spec, spec->metric, b[0], b[1], b[2], b[3], b[4], now};
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = ds_get(c, spec->dataset, "FOR SHARE", NULL, err);
    if (!rc && v[3] && (rc = ds_get(c, v[3], "FOR SHARE", NULL, err)) == TD_ENOTFOUND)
        td_fail(err, TD_ENOTFOUND, "validation", "dataset %s not found", v[3]);
    if (!rc)
        rc = run(c, "INSERT INTO sweeps (id, state, model, dataset, validation, spec, metric, "
                 "maximize, epochs, min_epochs, eta, n_trials, created_at) VALUES ($1, "
                 "'queued', $2, $3, $4, $5, $6, $7::int, $8::bigint, $9::bigint, $10::bigint, "
                 "$11::bigint, $12)", 12, v, NULL, 0, 0, NULL, err);
    for (int i = 0; !rc && i < n; i++) {
        char bi[24], bb[24];
        i64s(bi, i), i64s(bb, (int64_t)trials[i].bytes);
        const char *t[] = {id, bi, trials[i].values, trials[i].hyperparameters, bb};
        rc = run(c, "INSERT INTO sweep_trials VALUES ($1, $2::bigint, $3, $4, $5::bigint)", 5,
                 t, NULL, 0, 0, NULL, err);
    }
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    if (!rc)
        snprintf(id_out, TD_ID_MAX, "%s", id);
    return rc;
}

td_status td_pg_sweep_get(td_pg *p, const char *id, td_sweep_row *out, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id ? id : ""};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "SELECT " SWEEP_COLS " FROM sweeps WHERE id = $1", 1, v, NULL, 0, 0,
                       &r, err);
    release(p, slot);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "sweep %s not found", v[0]);
    else if (!rc)
        rc = read_sweep(r, 0, out, err);
    PQclear(r);
    return rc;
}

td_status td_pg_sweep_list(td_pg *p, int active, int limit, const char *after,
                           td_sweep_row **rows, int *n, char next[TD_ID_MAX], td_error *err)
{
    PGresult *r = NULL;
    char cursor[TD_ID_MAX], bl[24];
    snprintf(cursor, sizeof cursor, "%s", after ? after : ""); /* after may alias next */
    i64s(bl, (int64_t)limit + 1);
    const char *v[] = {cursor, bl};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = active ? run(c, "SELECT " SWEEP_COLS " FROM sweeps WHERE state IN "
                                "('queued', 'running') ORDER BY id ASC", 0, NULL, NULL, 0, 0,
                                &r, err)
                          : run(c, "SELECT " SWEEP_COLS " FROM sweeps WHERE ($1 = '' OR id < "
                                "$1) ORDER BY id DESC LIMIT $2::bigint", 2, v, NULL, 0, 0, &r,
                                err);
    release(p, slot);
    int count = rc ? 0 : PQntuples(r), i = 0;
    td_sweep_row *w = rc || !count ? NULL : calloc((size_t)count, sizeof *w);
    if (!rc && count && !w)
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory listing sweeps");
    for (; !rc && i < count; i++)
        if ((rc = read_sweep(r, i, &w[i], err)))
            break;
    PQclear(r);
    if (rc) {
        td_sweep_rows_free(w, i);
        return rc;
    }
    if (!active && count > limit) {
        td_sweep_row_fini(&w[limit]);
        count = limit;
        snprintf(next, TD_ID_MAX, "%s", w[limit - 1].id);
    }
    *rows = w;
    *n = count;
    return TD_OK;
}

td_status td_pg_sweep_trials(td_pg *p, const char *id, const char *metric,
                             td_sweep_trial **out, int *n, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id ? id : "", metric ? metric : "loss"};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, "SELECT t.idx, t.\"values\", t.hyperparameters, t.bytes, j.id, "
                       "j.state, j.paused, j.stopped_early, j.cancel_requested, j.epoch, "
                       "j.stop_at_epoch, CASE WHEN jsonb_typeof(j.metrics::jsonb -> $2) = "
                       "'number' THEN (j.metrics::jsonb ->> $2)::float8 END, j.error_code "
                       "FROM sweep_trials t LEFT JOIN jobs j ON j.sweep = t.sweep_id AND "
                       "j.sweep_trial = t.idx WHERE t.sweep_id = $1 ORDER BY t.idx", 2, v,
                       NULL, 0, 0, &r, err);
    release(p, slot);
    int count = rc ? 0 : PQntuples(r), i = 0;
    td_sweep_trial *w = rc || !count ? NULL : calloc((size_t)count, sizeof *w);
    if (!rc && count && !w)
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory listing trials");
    for (; !rc && i < count; i++) {
        td_sweep_trial *t = &w[i];
        t->index = geti(r, i, 0);
        t->values = strdup(PQgetvalue(r, i, 1));
        t->hyperparameters = strdup(PQgetvalue(r, i, 2));
        t->bytes = (uint64_t)geti(r, i, 3);
        gets_(r, i, 4, t->job, sizeof t->job);
        int st = PQgetisnull(r, i, 5) ? -1 : state_of(PQgetvalue(r, i, 5));
        t->state = st < 0 ? TD_JOB_QUEUED : (td_job_state)st;
        t->paused = (int)geti(r, i, 6);
        t->stopped_early = (int)geti(r, i, 7);
        t->cancel_requested = (int)geti(r, i, 8);
        t->epoch = geti(r, i, 9);
        t->stop_at_epoch = geti(r, i, 10);
        t->metric = PQgetisnull(r, i, 11) ? NAN : strtod(PQgetvalue(r, i, 11), NULL);
        gets_(r, i, 12, t->error_code, sizeof t->error_code);
        if (!t->values || !t->hyperparameters)
            rc = td_fail(err, TD_ENOMEM, NULL, "out of memory listing trials");
    }
    PQclear(r);
    if (rc) {
        td_sweep_trials_free(w, count);
        return rc;
    }
    *out = w;
    *n = count;
    return TD_OK;
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
        rc = run(c, "SELECT state FROM sweeps WHERE id = $1 FOR UPDATE", 1, v, NULL, 0, 0, &r,
                 err);
    if (!rc && PQntuples(r) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "sweep %s not found", v[0]);
    if (!rc) {
        int cur = state_of(PQgetvalue(r, 0, 0));
        if (cur != TD_JOB_QUEUED && cur != TD_JOB_RUNNING)
            rc = td_fail(err, TD_ECONFLICT, "state", "sweep %s is already %s", v[0],
                         cur < 0 ? "gone" : td_job_state_name((td_job_state)cur));
    }
    PQclear(r);
    if (!rc)
        rc = run(c, sql, 1 + nargs, v, NULL, 0, 0, NULL, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
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
        rc = run(c, "UPDATE jobs SET state = 'succeeded', stopped_early = 1, paused = 0, "
                 "finished_at = $2 WHERE id = $1 AND paused = 1 AND state = 'queued'", 2, v,
                 NULL, 0, 0, NULL, err);
    }
    const char *v[] = {id, br};
    if (!rc)
        rc = run(c, "UPDATE sweeps SET rung = $2::bigint WHERE id = $1", 2, v, NULL, 0, 0, NULL,
                 err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

td_status td_pg_sweep_delete_rows(td_pg *p, const char *id, td_error *err)
{
    const char *v[] = {id};
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc)
        rc = run(c, "DELETE FROM sweep_trials WHERE sweep_id = $1", 1, v, NULL, 0, 0, NULL, err);
    if (!rc)
        rc = run(c, "DELETE FROM sweeps WHERE id = $1", 1, v, NULL, 0, 0, NULL, err);
    if (!rc)
        rc = exec0(c, "COMMIT", err);
    release(p, slot);
    return rc;
}

/* Runs sql on job id ($1; $2 = now, $3 = x or NULL): TD_ECONFLICT when no row changed (the
 * job is not in the state sql requires), TD_ENOTFOUND when it does not exist. */
static td_status job_update(td_pg *p, const char *id, const char *sql, int64_t x, td_error *err)
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
            rc = PQntuples(r) ? td_fail(err, TD_ECONFLICT, "state", "job %s is %s", v[0],
                                        PQgetvalue(r, 0, 0))
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
    if (PQstatus(c) != CONNECTION_OK)
        PQreset(c);
    /* held already by this session (outside a transaction its only advisory lock; a reset
     * connection lost it), else try to take it (taking it twice would stack it) */
    PGresult *r = NULL;
    int leader = 0;
    if (run(c, "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND granted) THEN 1 ELSE "
            "pg_try_advisory_lock(7472616966)::int END", 0, NULL, NULL, 0, 0, &r, NULL) == TD_OK)
        leader = (int)geti(r, 0, 0);
    PQclear(r);
    release(p, 0);
    return leader;
}

td_status td_pg_job_pause(td_pg *p, const char *id, td_error *err)
{
    /* a paused trial waits for its sweep, not for a lease: the lease ends with it */
    return job_update(p, id, "UPDATE jobs SET "
                      "state = CASE WHEN cancel_requested = 1 THEN 'cancelled' ELSE 'queued' END,"
                      " paused = 1 - cancel_requested, lease_until = NULL, "
                      "finished_at = CASE WHEN cancel_requested = 1 THEN $2 END "
                      "WHERE id = $1 AND state = 'running' AND $3::bigint IS NULL", 0, err);
}

td_status td_pg_job_continue(td_pg *p, const char *id, int64_t stop_at, td_error *err)
{
    return job_update(p, id, "UPDATE jobs SET paused = 0, stop_at_epoch = $3::bigint "
                      "WHERE id = $1 AND paused = 1 AND state = 'queued' AND $2 <> ''",
                      stop_at, err);
}
