/* store_datasets.c — the SQLite store's datasets table and dataset files (store.h; DESIGN
 * in store.c). */
#include "store/store_sqlite.h"

#include <unistd.h>

/* Dataset file payload: this header {N, D, y_cols, Y_cols, P, pad, 0, 0}, pad zero bytes,
 * then X (N, D) f32, y (N, y_cols) i32, Y (N, Y_cols) f32, pairs (P, 2) i32, pair_labels
 * (P) i32, each absent when its count is 0. pad puts X at a file offset that is a multiple
 * of 64 (DS_PAD), so X is aligned in the shared read-only mapping that jobs read
 * (dscache.h); files written before the padding existed have pad 0 and are copied once
 * into aligned memory when loaded. */
#define DS_HDR_WORDS TD_DATASET_HDR_WORDS
#define DS_HDR_BYTES (DS_HDR_WORDS * sizeof(int64_t))
#define DS_ALIGN TD_DATASET_ALIGN
#define DS_PAD TD_DATASET_PAD

/* ---- datasets ----------------------------------------------------------------------- */

static void read_ds_meta(sqlite3_stmt *st, td_dataset_meta *m)
{
    memset(m, 0, sizeof *m);
    col_copy(st, 0, m->id, sizeof m->id);
    col_copy(st, 1, m->name, sizeof m->name);
    m->N = sqlite3_column_int64(st, 2);
    m->D = sqlite3_column_int64(st, 3);
    m->n_classes = sqlite3_column_int64(st, 4);
    m->target = target_from_text(sqlite3_column_text(st, 5));
    m->y_cols = sqlite3_column_int64(st, 6);
    m->Y_cols = sqlite3_column_int64(st, 7);
    m->P = sqlite3_column_int64(st, 8);
    col_copy(st, 9, m->created_at, sizeof m->created_at);
    m->bytes = sqlite3_column_int64(st, 10);
}

/* Byte sizes of the five arrays; -1 when ds is inconsistent or too large (with the
 * header and DS_PAD bytes of padding). */
static int ds_sizes(const td_dataset *ds, size_t sz[5])
{
    int64_t counts[5] = {0};
    int64_t yc = ds->y ? ds->y_cols : 0, Yc = ds->Y ? ds->Y_cols : 0;
    if (__builtin_mul_overflow(ds->N, ds->D, &counts[0]) ||
        __builtin_mul_overflow(ds->N, yc, &counts[1]) ||
        __builtin_mul_overflow(ds->N, Yc, &counts[2]) ||
        __builtin_mul_overflow(ds->P, (int64_t)2, &counts[3]))
        return -1;
    counts[4] = ds->P;
    size_t total = DS_HDR_BYTES + DS_PAD;
    for (int i = 0; i < 5; i++) {
        if (counts[i] < 0 || __builtin_mul_overflow((size_t)counts[i], (size_t)4, &sz[i]) ||
            __builtin_add_overflow(total, sz[i], &total) || total > (size_t)INT64_MAX / 2)
            return -1;
    }
    return 0;
}

td_status td_store_dataset_put(td_store *s, const td_dataset *ds, const char *name,
                               td_dataset_meta *out, td_error *err)
{
    td_status rc = TD_OK;
    int written = 0;
    char path[PATH_MAX];
    td_dataset_meta m;
    size_t sz[5];

    memset(&m, 0, sizeof m);
    if (!ds || ds->N < 1 || ds->D < 1 || !ds->X) {
        rc = td_fail(err, TD_EINVAL, "X", "a dataset needs X with N >= 1 rows and D >= 1 columns");
        goto cleanup;
    }
    if (ds->y && ds->Y) {
        rc = td_fail(err, TD_EINVAL, "Y", "give either y or Y, not both");
        goto cleanup;
    }
    if ((ds->y && ds->y_cols < 1) || (ds->Y && ds->Y_cols < 1)) {
        rc = td_fail(err, TD_EINVAL, ds->y ? "y" : "Y", "target has no columns");
        goto cleanup;
    }
    if (ds->P < 0 || (ds->P > 0 && (!ds->pairs || !ds->pair_labels))) {
        rc = td_fail(err, TD_EINVAL, "pairs", "pairs and pair_labels must both be given");
        goto cleanup;
    }
    if (name && strlen(name) >= TD_NAME_MAX) {
        rc = td_fail(err, TD_EINVAL, "name", "name is longer than %d bytes", TD_NAME_MAX - 1);
        goto cleanup;
    }
    if (ds_sizes(ds, sz) != 0) {
        rc = td_fail(err, TD_EINVAL, "X", "dataset dimensions are too large");
        goto cleanup;
    }

    td_store_dataset_meta_fill(&m, ds, name);

    int64_t hdr[DS_HDR_WORDS] = {m.N, m.D, m.y_cols, m.Y_cols, m.P, DS_PAD, 0, 0};
    static const char pad[DS_ALIGN];
    td_blob_seg segs[7] = {{hdr, sizeof hdr},       {pad, DS_PAD},  {ds->X, sz[0]},
                           {ds->y, sz[1]},          {ds->Y, sz[2]}, {ds->pairs, sz[3]},
                           {ds->pair_labels, sz[4]}};
    m.bytes = TD_BLOB_HEADER;
    for (int i = 0; i < 7; i++)
        m.bytes += (int64_t)segs[i].len;
    path_of(path, sizeof path, s, "datasets", m.id, ".bin");
    rc = td_blob_write(path, TD_BLOB_DATASET, 0, segs, 7, err);
    if (rc) goto cleanup;
    written = 1;

    rc = td_store_dataset_insert(s, &m, err);
    if (rc) goto cleanup;
    written = 0; /* the row now owns the file */
    if (out) *out = m;
cleanup:
    if (written) unlink(path);
    return rc;
}

void td_store_dataset_meta_fill(td_dataset_meta *m, const td_dataset *ds, const char *name)
{
    memset(m, 0, sizeof *m);
    m->N = ds->N, m->D = ds->D;
    m->y_cols = ds->y ? ds->y_cols : 0;
    m->Y_cols = ds->Y ? ds->Y_cols : 0;
    m->P = ds->P;
    if (ds->y) {
        int32_t mx = -1;
        for (int64_t i = 0; i < ds->N * ds->y_cols; i++)
            mx = ds->y[i] > mx ? ds->y[i] : mx;
        m->target = ds->y_cols > 1 ? TD_TARGET_GROUPED : TD_TARGET_INDEX;
        m->n_classes = (int64_t)mx + 1;
    } else if (ds->Y) {
        m->target = TD_TARGET_PROBS;
        m->n_classes = ds->Y_cols;
    }
    snprintf(m->name, sizeof m->name, "%s", name ? name : "");
    td_store_new_id(m->id, "ds_");
    td_store_now(m->created_at);
}

void td_store_dataset_path(const td_store *s, const char *id, char *out, size_t cap)
{
    path_of(out, cap, s, "datasets", id, ".bin");
}

td_status td_store_dataset_insert(td_store *s, const td_dataset_meta *m, td_error *err)
{
    if (s->pg) return td_pg_dataset_insert(s->pg, m, err);
    enter(s);
    td_status rc = td_store_run(s, err,
                                "INSERT INTO datasets (" DS_COLS ") VALUES "
                                "(?,?,?,?,?,?,?,?,?,?,?)",
                                "ssIIIsIIIsI", m->id, m->name, m->N, m->D, m->n_classes,
                                td_target_name(m->target), m->y_cols, m->Y_cols, m->P,
                                m->created_at, m->bytes);
    leave(s);
    return rc;
}

/* Reads one dataset row; caller holds the lock. */
td_status ds_get_locked(td_store *s, const char *id, td_dataset_meta *out, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    if (!id_ok(id)) {
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id ? id : "");
        goto cleanup;
    }
    rc = td_store_query(s, &st, &row, err, "SELECT " DS_COLS " FROM datasets WHERE id = ?1", "s",
                        id);
    if (rc) goto cleanup;
    if (!row) {
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
        goto cleanup;
    }
    read_ds_meta(st, out);
cleanup:
    unprepare(s, st);
    return rc;
}

td_status td_store_dataset_names_set(td_store *s, const char *id, const char *classes,
                                     const char *columns, td_error *err)
{
    if (s->pg) return td_pg_dataset_names_set(s->pg, id, classes, columns, err);
    enter(s);
    td_status rc =
        td_store_run(s, err, "UPDATE datasets SET classes = ?2, columns = ?3 WHERE id = ?1", "soo",
                     id, classes, columns);
    leave(s);
    return rc;
}

td_status td_store_dataset_names(td_store *s, const char *id, char **classes, char **columns,
                                 td_error *err)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    *classes = *columns = NULL;
    if (s->pg) return td_pg_dataset_names(s->pg, id, classes, columns, err);
    enter(s);
    td_status rc = prepare(s, &st, "SELECT classes, columns FROM datasets WHERE id = ?1", err);
    if (!rc) {
        bind_str(st, 1, id);
        rc = step_row(s, st, &row, err);
    }
    if (!rc && !row) rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
    if (!rc && (col_dup(st, 0, classes) || col_dup(st, 1, columns))) {
        free(*classes);
        *classes = NULL;
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    }
    unprepare(s, st);
    leave(s);
    return rc;
}

td_status td_store_dataset_get(td_store *s, const char *id, td_dataset_meta *out, td_error *err)
{
    if (s->pg) return td_pg_dataset_get(s->pg, id, out, err);
    enter(s);
    td_status rc = ds_get_locked(s, id, out, err);
    leave(s);
    return rc;
}

td_status td_store_dataset_list(td_store *s, int limit, const char *after, td_dataset_meta **rows,
                                int *n, char next[TD_ID_MAX], td_error *err)
{
    if (s->pg) return td_pg_dataset_list(s->pg, limit, after, rows, n, next, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    td_dataset_meta *v = NULL;
    int count = 0, locked = 0;
    char cursor[TD_ID_MAX];

    *rows = NULL;
    if ((rc = td_store_page_start(limit, after, cursor, next, n, err))) goto cleanup;
    v = malloc(sizeof *v * ((size_t)limit + 1));
    if (!v) {
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory listing datasets");
        goto cleanup;
    }
    enter(s);
    locked = 1;
    /* one statement per shape, so that each is a primary-key range, never a scan */
    rc = td_store_bind(s, &st, err,
                       cursor[0] ? "SELECT " DS_COLS " FROM datasets WHERE id < ?1 "
                                   "ORDER BY id DESC LIMIT ?2"
                                 : "SELECT " DS_COLS " FROM datasets ORDER BY id DESC LIMIT ?2",
                       "oI", cursor, (int64_t)limit + 1);
    if (rc) goto cleanup;
    for (;;) {
        int row;
        rc = step_row(s, st, &row, err);
        if (rc) goto cleanup;
        if (!row) break;
        read_ds_meta(st, &v[count++]);
    }
    if (count > limit) {
        count = limit;
        snprintf(next, TD_ID_MAX, "%s", v[limit - 1].id);
    }
    *rows = v;
    *n = count;
    v = NULL;
cleanup:
    end_op(s, st, 0, locked);
    free(v);
    return rc;
}

void td_stored_dataset_fini(td_stored_dataset *sd)
{
    if (!sd) return;
    td_dscache_release(sd->handle);
    memset(sd, 0, sizeof *sd);
}

/* The padding a dataset payload declares (word 5 of its header): 0 in files written
 * before it existed; anything but 0 or DS_PAD is a bad file (the shape check says so). */
static size_t ds_pad_of(const void *payload, size_t len)
{
    int64_t pad = 0;
    if (len >= DS_HDR_BYTES) memcpy(&pad, (const char *)payload + 5 * sizeof(int64_t), sizeof pad);
    return pad == (int64_t)DS_PAD ? DS_PAD : 0;
}

/* Where X starts in a payload (what dscache aligns). */
static size_t ds_x_offset(const void *payload, size_t len)
{
    return DS_HDR_BYTES + ds_pad_of(payload, len);
}

td_status td_store_dataset_load(td_store *s, const char *id, td_stored_dataset *out, td_error *err)
{
    td_status rc = TD_OK;
    char path[PATH_MAX];
    const void *buf = NULL;
    size_t len = 0;
    td_dscache_entry *handle = NULL;

    memset(out, 0, sizeof *out);
    if (!id_ok(id)) {
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id ? id : "");
        goto cleanup;
    }
    path_of(path, sizeof path, s, "datasets", id, ".bin");
    if (s->pg) { /* the row, and the file in the local cache (fetched when absent) */
        rc = td_pg_dataset_fetch(s->pg, id, path, &out->meta, err);
    } else {
        enter(s);
        rc = ds_get_locked(s, id, &out->meta, err);
        leave(s);
    }
    if (rc) goto cleanup;
    rc = td_dscache_acquire(s->datasets, id, path, ds_x_offset, &handle, &buf, &len, err);
    if (rc == TD_ENOTFOUND && s->pg) {
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
    } else if (rc == TD_ENOTFOUND) {
        /* Deleted meanwhile (not found), or the row lost its file (corruption). */
        td_dataset_meta again;
        enter(s);
        rc = ds_get_locked(s, id, &again, NULL);
        leave(s);
        rc = rc == TD_OK ? td_fail(err, TD_EIO, NULL, "%s: data file missing", path)
                         : td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
        goto cleanup;
    }
    if (rc) goto cleanup;

    const td_dataset_meta *m = &out->meta;
    int64_t hdr[DS_HDR_WORDS];
    td_dataset d = {.N = m->N, .D = m->D, .y_cols = m->y_cols, .Y_cols = m->Y_cols, .P = m->P};
    size_t sz[5], total = DS_HDR_BYTES;
    /* Non-NULL placeholders so ds_sizes counts the arrays the metadata says exist. */
    d.y = m->y_cols ? (const int32_t *)buf : NULL;
    d.Y = m->Y_cols ? (const float *)buf : NULL;
    if (len < DS_HDR_BYTES || ds_sizes(&d, sz) != 0) {
        rc = td_fail(err, TD_EIO, NULL, "%s: does not match dataset %s", path, id);
        goto cleanup;
    }
    memcpy(hdr, buf, sizeof hdr);
    size_t pad = ds_pad_of(buf, len);
    total += pad;
    for (int i = 0; i < 5; i++)
        total += sz[i];
    if (hdr[0] != m->N || hdr[1] != m->D || hdr[2] != m->y_cols || hdr[3] != m->Y_cols ||
        hdr[4] != m->P || hdr[5] != (int64_t)pad || total != len) {
        rc = td_fail(err, TD_EIO, NULL, "%s: shape does not match dataset %s", path, id);
        goto cleanup;
    }
    const char *p = (const char *)buf + DS_HDR_BYTES + pad;
    d.X = (const float *)p;
    p += sz[0];
    d.y = sz[1] ? (const int32_t *)p : NULL;
    p += sz[1];
    d.Y = sz[2] ? (const float *)p : NULL;
    p += sz[2];
    d.pairs = sz[3] ? (const int32_t *)p : NULL;
    p += sz[3];
    d.pair_labels = sz[4] ? (const int32_t *)p : NULL;
    out->ds = d;
    out->handle = handle;
    handle = NULL;
cleanup:
    td_dscache_release(handle);
    return rc;
}

void td_store_dataset_cache_stats(td_store *s, td_dscache_stats *out)
{
    td_dscache_stats_get(s->datasets, out);
}

static td_status in_use_locked(td_store *s, const char *id, int *in_use, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    rc = td_store_query(s, &st, &row, err,
                        "SELECT EXISTS (SELECT 1 FROM jobs WHERE (dataset = ?1 OR "
                        "validation = ?1) AND state IN ('queued', 'running')) OR EXISTS "
                        "(SELECT 1 FROM sweeps WHERE (dataset = ?1 OR validation = ?1) AND "
                        "state IN ('queued', 'running'))",
                        "s", id);
    if (rc) goto cleanup;
    *in_use = row && sqlite3_column_int(st, 0);
cleanup:
    unprepare(s, st);
    return rc;
}

td_status td_store_dataset_delete(td_store *s, const char *id, td_error *err)
{
    td_status rc = TD_OK;
    char path[PATH_MAX];
    if (s->pg && (rc = td_pg_dataset_delete(s->pg, id, err)) == TD_OK) {
        td_dscache_forget(s->datasets, id); /* as below: the rows went, then the cache */
        path_of(path, sizeof path, s, "datasets", id, ".bin");
        unlink(path); /* this daemon's copy; others keep a file no id will name again */
    }
    if (s->pg) return rc;
    td_dataset_meta m;
    int in_use = 0, deleted = 0;

    enter(s);
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc) goto cleanup;
    rc = ds_get_locked(s, id, &m, err);
    if (rc) goto cleanup;
    rc = in_use_locked(s, id, &in_use, err);
    if (rc) goto cleanup;
    if (in_use) {
        rc = td_fail(err, TD_ECONFLICT, "dataset", "dataset %s is used by a queued or running job",
                     id);
        goto cleanup;
    }
    rc = td_store_run(s, err, "DELETE FROM datasets WHERE id = ?1", "s", id);
    if (rc) goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
    if (rc) goto cleanup;
    deleted = 1;
cleanup:
    leave(s);
    if (deleted) {
        td_dscache_forget(s->datasets, id); /* its holders keep reading the mapping */
        path_of(path, sizeof path, s, "datasets", id, ".bin");
        unlink(path); /* a failure leaves an orphan the next open sweeps */
    }
    return rc;
}
