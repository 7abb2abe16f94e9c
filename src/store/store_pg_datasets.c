/* store_pg_datasets.c — the PostgreSQL backend's datasets: rows, blobs and the local file
 * cache (store_pg.h; DESIGN in store_pg.c). */
#include "store/store_pg_impl.h"

#include <errno.h>
#include <unistd.h>

/* ---- datasets ----------------------------------------------------------------------- */

static void read_ds(PGresult *r, int i, td_dataset_meta *m)
{
    memset(m, 0, sizeof *m);
    gets_(r, i, 0, m->id, sizeof m->id);
    gets_(r, i, 1, m->name, sizeof m->name);
    m->N = geti(r, i, 2);
    m->D = geti(r, i, 3);
    m->n_classes = geti(r, i, 4);
    m->target = td_store_target_of(PQgetvalue(r, i, 5));
    m->y_cols = geti(r, i, 6);
    m->Y_cols = geti(r, i, 7);
    m->P = geti(r, i, 8);
    gets_(r, i, 9, m->created_at, sizeof m->created_at);
    m->bytes = geti(r, i, 10);
}

td_status ds_get(PGconn *c, const char *id, const char *lock, td_dataset_meta *out, td_error *err)
{
    char sql[160];
    PGresult *r = NULL;
    const char *v[] = {id ? id : ""};
    snprintf(sql, sizeof sql, "SELECT " DS_COLS " FROM datasets WHERE id = $1 %s", lock);
    td_status rc = run(c, sql, 1, v, NULL, 0, 0, &r, err);
    if (rc) return rc;
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
    const char *v[] = {m->id, m->name, b[0], b[1],          b[2], td_target_name(m->target),
                       b[3],  b[4],    b[5], m->created_at, b[6]};
    snprintf(path, sizeof path, "%s/datasets/%s.bin", p->cache, m->id);
    blob_key(key, sizeof key, "ds", m->id);
    PGconn *c = acquire(p, &slot);
    /* the file (already the local cache's copy) and the row, in one transaction */
    td_status rc = exec0(c, "BEGIN", err);
    if (!rc) rc = blob_put_file(c, key, path, err);
    if (!rc)
        rc = run(c,
                 "INSERT INTO datasets (" DS_COLS ") VALUES ($1, $2, $3::bigint, "
                 "$4::bigint, $5::bigint, $6, $7::bigint, $8::bigint, $9::bigint, $10, "
                 "$11::bigint)",
                 11, v, NULL, 0, 0, NULL, err);
    return pg_end(p, slot, rc, err);
}

td_status td_pg_dataset_names_set(td_pg *p, const char *id, const char *classes,
                                  const char *columns, td_error *err)
{
    const char *v[] = {id ? id : "", classes, columns};
    return pg_query(p, "UPDATE datasets SET classes = $2, columns = $3 WHERE id = $1", 3, v, NULL,
                    err);
}

td_status td_pg_dataset_names(td_pg *p, const char *id, char **classes, char **columns,
                              td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {id ? id : ""};
    td_status rc =
        pg_query(p, "SELECT classes, columns FROM datasets WHERE id = $1", 1, v, &r, err);
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
static td_status blob_get_file(PGconn *c, const char *key, FILE *f, const char *path, td_error *err)
{
    PGresult *r = NULL;
    const char *v[] = {key, NULL};
    char bq[24];
    td_status rc = run(c,
                       "SELECT length, checksum, (SELECT count(*) FROM blob_chunks WHERE "
                       "key = $1) FROM blobs WHERE key = $1",
                       1, v, NULL, 0, 0, &r, err);
    if (!rc && PQntuples(r) == 0) rc = td_fail(err, TD_ENOTFOUND, NULL, "blob %s not found", key);
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
        if (n) td_xxh64_update(&h, d, n);
        got += n;
        PQclear(r);
    }
    if (!rc && (got != total || td_xxh64_digest(&h) != sum))
        rc = td_fail(err, TD_EIO, NULL,
                     "blob %s: %llu of %llu bytes, or its checksum does not "
                     "match",
                     key, (unsigned long long)got, (unsigned long long)total);
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
    if (!rc) rc = exec0(c, "BEGIN ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc && (rc = blob_get_file(c, key, f, tmp, err)) == TD_ENOTFOUND)
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
    rc = pg_end(p, slot, rc, err);
    if (f && fclose(f) != 0 && !rc)
        rc = td_fail(err, TD_EIO, NULL, "cannot write %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = td_fail(err, TD_EIO, NULL, "rename %s: %s", tmp, strerror(errno));
    if (rc && f) unlink(tmp);
    return rc;
}

td_status td_pg_dataset_list(td_pg *p, int limit, const char *after, td_dataset_meta **rows, int *n,
                             char next[TD_ID_MAX], td_error *err)
{
    char cursor[TD_ID_MAX], bl[24];
    *rows = NULL;
    td_status rc = td_store_page_start(limit, after, cursor, next, n, err);
    if (rc) return rc;
    i64s(bl, (int64_t)limit + 1);
    const char *v[] = {cursor, bl};
    PGresult *r = NULL;
    rc = pg_query(p,
                  "SELECT " DS_COLS " FROM datasets WHERE ($1 = '' OR id < $1) "
                  "ORDER BY id DESC LIMIT $2::bigint",
                  2, v, &r, err);
    if (rc) return rc;
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
    td_status rc = run(c,
                       "SELECT (EXISTS (SELECT 1 FROM jobs WHERE (dataset = $1 OR "
                       "validation = $1) AND state IN ('queued', 'running')) OR EXISTS (SELECT "
                       "1 FROM sweeps WHERE (dataset = $1 OR validation = $1) AND state IN "
                       "('queued', 'running')))::int",
                       1, v, NULL, 0, 0, &r, err);
    if (!rc) *used = (int)geti(r, 0, 0);
    PQclear(r);
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
    if (!rc) rc = ds_get(c, id, "FOR UPDATE", NULL, err);
    if (!rc) rc = in_use(c, id, &used, err);
    if (!rc && used)
        rc = td_fail(err, TD_ECONFLICT, "dataset", "dataset %s is used by a queued or running job",
                     id);
    if (!rc) rc = run(c, "DELETE FROM datasets WHERE id = $1", 1, v, NULL, 0, 0, NULL, err);
    if (!rc) rc = run(c, "DELETE FROM blobs WHERE key = $1", 1, vk, NULL, 0, 0, NULL, err);
    return pg_end(p, slot, rc, err);
}
