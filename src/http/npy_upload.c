/* npy_upload.c — .npy / .npz dataset uploads (contract in npy_upload.h). */
#include "http/npy_upload.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec/npy_dataset.h"
#include "codec/json_dataset.h"
#include "store/dataset_out.h"

struct td_npy_upload {
    td_store *store;
    td_npy_dataset *reader;
    td_dataset_out *out; /* from X's header on */
    char *name;
    td_status st; /* a refusal before the body (the name) */
    td_error err;
};

int td_npy_upload_kind(const char *ct)
{
    if (!ct) return -1;
    if (strncasecmp(ct, "application/zip", 15) == 0) return 1;
    if (strncasecmp(ct, "application/x-npy", 17) == 0) return 0;
    return -1;
}

static td_status x_begin(void *ctx, int64_t N, int64_t D, td_error *err)
{
    td_npy_upload *u = ctx;
    return td_dataset_out_open(&u->out, u->store, N, D, err);
}

static td_status x_rows(void *ctx, const void *v, size_t n, td_error *err)
{
    td_npy_upload *u = ctx;
    return td_dataset_out_x(u->out, v, n, err);
}

static const td_npy_xsink XSINK = {x_begin, x_rows};

td_npy_upload *td_npy_upload_begin(td_store *s, int zip, int64_t max_rows, int64_t max_features,
                                   uint64_t max_bytes, const char *name)
{
    td_npy_upload *u = calloc(1, sizeof *u);
    if (!u) return NULL;
    u->store = s;
    td_npy_limits lim = {max_rows, max_features, max_bytes};
    if (!(u->reader = td_npy_dataset_create(zip, &XSINK, u, &lim))) {
        free(u);
        return NULL;
    }
    if (name) u->st = td_dataset_name_copy(&u->name, name, strlen(name), "name", &u->err);
    return u;
}

int td_npy_upload_piece(td_npy_upload *u, const char *data, size_t len)
{
    return u->st != TD_OK || td_npy_dataset_feed(u->reader, data, len);
}

td_status td_npy_upload_end(td_npy_upload *u, td_dataset_meta *meta, td_error *err)
{
    if (u->st) {
        *err = u->err;
        return u->st;
    }
    td_dataset ds;
    td_status st = td_npy_dataset_finish(u->reader, &ds, err);
    if (st) return st;
    st = td_dataset_out_commit(u->out, &ds, u->name, meta, err);
    u->out = NULL;
    return st;
}

void td_npy_upload_classes(td_npy_upload *u, char ***classes, int64_t *n)
{
    td_npy_dataset_classes(u->reader, classes, n);
}

void td_npy_upload_free(td_npy_upload *u)
{
    if (!u) return;
    td_dataset_out_abort(u->out);
    td_npy_dataset_destroy(u->reader);
    free(u->name);
    free(u);
}
