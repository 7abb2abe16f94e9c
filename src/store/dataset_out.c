/* dataset_out.c — dataset files written as X streams in (contract in dataset_out.h). */
#include "store/dataset_out.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/blob.h"

struct td_dataset_out {
    td_store *s;
    td_blob_out *blob;
    int64_t N, D;
    uint64_t x_left; /* X values still to come */
    char id[TD_ID_MAX];
    char path[PATH_MAX];
};

td_status td_dataset_out_open(td_dataset_out **out, td_store *s, int64_t N, int64_t D,
                              td_error *err)
{
    *out = NULL;
    uint64_t nx;
    if (N < 1 || D < 1 || __builtin_mul_overflow((uint64_t)N, (uint64_t)D, &nx) ||
        nx > (uint64_t)INT64_MAX / 8)
        return td_fail(err, TD_EINVAL, "X", "dataset dimensions are too large");
    td_dataset_out *o = calloc(1, sizeof *o);
    if (!o) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    o->s = s;
    o->N = N, o->D = D;
    o->x_left = nx;
    td_store_new_id(o->id, "ds_");
    td_store_dataset_path(s, o->id, o->path, sizeof o->path);
    /* As if X were all: then the checksum is computed on the way (blob.h); other arrays
     * rewrite this header at commit. */
    int64_t hdr[TD_DATASET_HDR_WORDS] = {N, D, 0, 0, 0, TD_DATASET_PAD, 0, 0};
    static const char pad[TD_DATASET_ALIGN];
    td_status rc = td_blob_out_open(&o->blob, o->path, TD_BLOB_DATASET, 0,
                                    sizeof hdr + TD_DATASET_PAD + nx * sizeof(float), err);
    if (!rc) rc = td_blob_out_write(o->blob, hdr, sizeof hdr, err);
    if (!rc) rc = td_blob_out_write(o->blob, pad, TD_DATASET_PAD, err);
    if (rc) {
        td_dataset_out_abort(o);
        return rc;
    }
    *out = o;
    return TD_OK;
}

td_status td_dataset_out_x(td_dataset_out *o, const void *v, size_t n, td_error *err)
{
    if (n > o->x_left) return td_fail(err, TD_EINTERNAL, "X", "more X values than N x D");
    o->x_left -= n;
    return td_blob_out_write(o->blob, v, n * sizeof(float), err);
}

td_status td_dataset_out_commit(td_dataset_out *o, const td_dataset *ds, const char *name,
                                td_dataset_meta *meta, td_error *err)
{
    td_status rc = TD_OK;
    td_dataset_meta m;
    int placed = 0;
    if (ds->N != o->N || ds->D != o->D || o->x_left != 0) {
        rc = td_fail(err, TD_EINTERNAL, "X", "X is incomplete");
        goto cleanup;
    }
    td_store_dataset_meta_fill(&m, ds, name);
    memcpy(m.id, o->id, sizeof m.id);
    const struct {
        const void *p;
        int64_t count;
    } rest[] = {{ds->y, ds->y ? ds->N * ds->y_cols : 0},
                {ds->Y, ds->Y ? ds->N * ds->Y_cols : 0},
                {ds->pairs, ds->P * 2},
                {ds->pair_labels, ds->P}};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0] && !rc; i++)
        if (rest[i].count > 0)
            rc = td_blob_out_write(o->blob, rest[i].p, (size_t)rest[i].count * 4, err);
    int64_t hdr[TD_DATASET_HDR_WORDS] = {m.N, m.D, m.y_cols, m.Y_cols, m.P, TD_DATASET_PAD, 0, 0};
    if (!rc && (m.y_cols || m.Y_cols || m.P))
        rc = td_blob_out_pwrite(o->blob, 0, hdr, sizeof hdr, err);
    m.bytes = TD_BLOB_HEADER + (int64_t)sizeof hdr + TD_DATASET_PAD +
        (m.N * m.D + m.N * m.y_cols + m.N * m.Y_cols + 3 * m.P) * 4;
    if (rc) goto cleanup;
    rc = td_blob_out_commit(o->blob, TD_BLOB_DATASET, 0, err);
    o->blob = NULL;
    if (rc) goto cleanup;
    placed = 1;
    rc = td_store_dataset_insert(o->s, &m, err);
    if (rc) goto cleanup;
    placed = 0; /* the row owns the file now */
    if (meta) *meta = m;
cleanup:
    if (placed) unlink(o->path);
    td_dataset_out_abort(o);
    return rc;
}

void td_dataset_out_abort(td_dataset_out *o)
{
    if (!o) return;
    td_blob_out_abort(o->blob);
    free(o);
}
