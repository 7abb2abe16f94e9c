/* store_pg_impl.h — the PostgreSQL backend's internals, shared by its files only:
 * store_pg.c (connections, open, blobs), store_pg_datasets.c, store_pg_jobs.c,
 * store_pg_history.c and store_pg_sweeps.c. The DESIGN note is in store_pg.c. */
#ifndef TRAIND_STORE_PG_IMPL_H
#define TRAIND_STORE_PG_IMPL_H

#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/blob.h"
#include "store/store_pg.h"
#include "store/store_rows.h"

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

#define NOW_S "extract(epoch from clock_timestamp())"

#define JOB_COLS                                                                          \
    "id, model, dataset, validation, state, hyperparameters, created_at, started_at, "    \
    "finished_at, error_code, error_message, restarts, epoch, epochs, cancel_requested, " \
    "idempotency_key, metrics, checkpoint_epoch, (model_params IS NOT NULL)::int, "       \
    "crashes, resumed_on_different_build, sweep, sweep_trial, stop_at_epoch, paused, "    \
    "stopped_early, node, classes"

#define DS_COLS                                                                            \
    "id, name, n_samples, n_features, n_classes, target, label_cols, prob_cols, n_pairs, " \
    "created_at, bytes"

/* ---- connections and statements ----------------------------------------------------- */

static inline PGconn *acquire(td_pg *p, int *slot)
{
    pthread_mutex_lock(&p->mu);
    for (;;) {
        for (int i = 0; i < PG_POOL; i++)
            if (!p->busy[i]) {
                p->busy[i] = 1;
                *slot = i;
                pthread_mutex_unlock(&p->mu);
                if (PQstatus(p->conn[i]) != CONNECTION_OK) PQreset(p->conn[i]);
                return p->conn[i];
            }
        pthread_cond_wait(&p->freed, &p->mu);
    }
}

/* Releases the connection, rolling back a transaction an error path left open. */
static inline void release(td_pg *p, int slot)
{
    PGconn *c = p->conn[slot];
    if (PQtransactionStatus(c) != PQTRANS_IDLE) PQclear(PQexec(c, "ROLLBACK"));
    pthread_mutex_lock(&p->mu);
    p->busy[slot] = 0;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

/* The failure of r (or of the connection) as a td_status: TD_ENOSPACE for disk_full
 * (SQLSTATE 53100), TD_ECONFLICT for a unique violation, else TD_EIO. Clears r. */
static inline td_status pg_fail(PGconn *c, PGresult *r, td_error *err, const char *what)
{
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    td_status st = code && strcmp(code, "53100") == 0 ? TD_ENOSPACE
        : code && strcmp(code, "23505") == 0          ? TD_ECONFLICT
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
static inline td_status run(PGconn *c, const char *sql, int n, const char *const *vals,
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
            if (PQstatus(c) == CONNECTION_OK) continue;
            r = NULL;
        }
        if (out) *out = NULL;
        return pg_fail(c, r, err, sql);
    }
}

static inline td_status exec0(PGconn *c, const char *sql, td_error *err)
{
    return run(c, sql, 0, NULL, NULL, 0, 0, NULL, err);
}

/* Runs one statement with text parameters vals[0..n) on a connection of the pool; *out
 * gets its result as run's (out NULL: a command, its result dropped). */
static inline td_status pg_query(td_pg *p, const char *sql, int n, const char *const *vals,
                                 PGresult **out, td_error *err)
{
    int slot;
    PGconn *c = acquire(p, &slot);
    td_status rc = run(c, sql, n, vals, NULL, 0, 0, out, err);
    release(p, slot);
    return rc;
}

/* Ends the transaction on connection slot, begun after acquire: COMMIT when rc is TD_OK
 * (else release rolls it back), then releases it. rc, or the commit's failure. */
static inline td_status pg_end(td_pg *p, int slot, td_status rc, td_error *err)
{
    if (!rc) rc = exec0(p->conn[slot], "COMMIT", err);
    release(p, slot);
    return rc;
}

/* Rows changed by a command result. */
static inline long changed(PGresult *r) { return atol(PQcmdTuples(r)); }

static inline void i64s(char b[24], int64_t v) { snprintf(b, 24, "%" PRId64, v); }

static inline int64_t geti(PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static inline void gets_(PGresult *r, int row, int col, char *out, size_t cap)
{
    snprintf(out, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static inline int64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (uint8_t)p[i];
    return (int64_t)v;
}

/* ---- across the files (each with its definition's contract) ------------------------- */

static inline void blob_key(char *out, size_t cap, const char *kind, const char *id)
{
    snprintf(out, cap, "%s/%s", kind, id);
}

/* store_pg.c: row i of r read into row by a column table (store_rows.h) */
void td_pg_read_cols(PGresult *r, int i, void *row, const td_col *cols, int n);
/* store_pg.c: reads the rows of r, up to cap, into *rows (calloc'd, k's; NULL when none),
 * *n of them: read(r, i, row, err) fills one (freeing what it took on a failure). When r
 * has a row past them, next (unless NULL) gets the last one's id. r stays the caller's. */
td_status td_pg_collect(PGresult *r, int cap, const td_row_kind *k,
                        td_status (*read)(PGresult *r, int i, void *row, td_error *err),
                        void **rows, int *n, char *next, td_error *err);
/* store_pg.c: blobs, inside the caller's transaction */
td_status blob_put(PGconn *c, const char *key, uint64_t aux, const char *tag,
                   const td_blob_seg *segs, int nseg, td_error *err);
td_status blob_put_file(PGconn *c, const char *key, const char *path, td_error *err);
td_status blob_get(PGconn *c, const char *key, uint64_t *aux, char *tag, size_t tag_cap,
                   void **payload, size_t *len, td_error *err);
/* store_pg_datasets.c */
td_status ds_get(PGconn *c, const char *id, const char *lock, td_dataset_meta *out, td_error *err);
/* store_pg_jobs.c */
td_status job_lock(PGconn *c, const char *id, int *state, int64_t *ckpt, int *has_model, char *node,
                   size_t node_cap, td_error *err);
td_status held_here(td_pg *p, const char *id, int state, const char *node, td_error *err);

#endif
