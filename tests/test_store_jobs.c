/* test_store_jobs.c — the store's jobs, history, checkpoints and models, persistence and
 * concurrency, against a real temp directory: the SQLite backend (suite "store_jobs") and
 * the backend-independent tests again on a real PostgreSQL with the PostgreSQL-only ones,
 * two stores (two daemons) on one database (suite "store_jobs_pg", tests/pgtest.h). The
 * fixtures are storetest.h. */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/blob.h"
#include "store/store.h"
#include "pgtest.h"
#include "storetest.h"
#include "testutil.h"

/* The history columns of the jobs below. */
static const char *const COLS[] = {"epoch", "elapsed_s", "loss", "val_loss"};

/* ---- jobs --------------------------------------------------------------------------- */

START_TEST(job_lifecycle)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta ds;
    put_small_ds(s, &ds);
    char a[TD_ID_MAX], b[TD_ID_MAX], c[TD_ID_MAX];
    insert_job(s, ds.id, NULL, a);
    insert_job(s, ds.id, NULL, b);
    insert_job(s, ds.id, NULL, c);

    td_job_row r;
    EXPECT(TD_OK, td_store_job_get(s, a, &r, E));
    ck_assert_str_eq(r.id, a);
    ck_assert_str_eq(r.model, "softmax");
    ck_assert_str_eq(r.dataset, ds.id);
    ck_assert_str_eq(r.validation, "");
    ck_assert_int_eq(r.state, TD_JOB_QUEUED);
    ck_assert_str_eq(r.hyperparameters, "{\"lr\":0.1}");
    ck_assert_ptr_null(r.metrics);
    ck_assert_str_eq(r.started_at, "");
    ck_assert_int_eq(r.epochs, 10);
    ck_assert_int_eq(r.checkpoint_epoch, -1);
    ck_assert_uint_eq(strlen(r.created_at), 24);
    td_job_row_fini(&r);

    /* a: queued -> running -> progress -> cancel request -> cancelled. */
    EXPECT(TD_OK, td_store_job_start(s, a, &r, E));
    ck_assert_int_eq(r.state, TD_JOB_RUNNING);
    ck_assert_int_eq(r.restarts, 0);
    ck_assert_uint_eq(strlen(r.started_at), 24);
    char started[TD_TIME_MAX];
    memcpy(started, r.started_at, sizeof started);
    td_job_row_fini(&r);
    EXPECT(TD_OK, td_store_history_columns_set(s, a, COLS, 4, E));
    double rec[4] = {4, 1, 0.5, NAN};
    EXPECT(TD_OK, commit_epoch(s, a, 4, rec, 4, "{\"loss\":0.5}", NULL, 0, E));
    rec[0] = 5;
    EXPECT(TD_OK, commit_epoch(s, a, 5, rec, 4, NULL, NULL, 0, E));
    td_job_state after;
    EXPECT(TD_OK, td_store_job_cancel(s, a, &after, E));
    ck_assert_int_eq(after, TD_JOB_RUNNING);
    EXPECT(TD_OK, td_store_job_get(s, a, &r, E));
    ck_assert_int_eq(r.epoch, 5);
    ck_assert_str_eq(r.metrics, "{\"loss\":0.5}");
    ck_assert_int_eq(r.cancel_requested, 1);
    ck_assert_int_eq(r.state, TD_JOB_RUNNING);
    td_job_row_fini(&r);
    /* A restart finds it running: resumed, restarts + 1, started_at kept. */
    EXPECT(TD_OK, td_store_job_start(s, a, &r, E));
    ck_assert_int_eq(r.restarts, 1);
    ck_assert_str_eq(r.started_at, started);
    td_job_row_fini(&r);
    EXPECT(TD_ECONFLICT, td_store_job_delete(s, a, E));
    EXPECT(TD_EINVAL, td_store_job_finish(s, a, TD_JOB_RUNNING, NULL, NULL, E));
    EXPECT(TD_OK, td_store_job_finish(s, a, TD_JOB_CANCELLED, "cancelled", "by request", E));
    EXPECT(TD_ECONFLICT, td_store_job_finish(s, a, TD_JOB_SUCCEEDED, NULL, NULL, E));
    EXPECT(TD_ECONFLICT, td_store_job_cancel(s, a, &after, E));
    EXPECT(TD_ECONFLICT, td_store_job_start(s, a, NULL, E));
    EXPECT(TD_OK, td_store_job_get(s, a, &r, E));
    ck_assert_int_eq(r.state, TD_JOB_CANCELLED);
    ck_assert_str_eq(r.error_code, "cancelled");
    ck_assert_str_eq(r.error_message, "by request");
    ck_assert_uint_eq(strlen(r.finished_at), 24);
    td_job_row_fini(&r);

    /* b: cancelled while queued, at once; a worker that pops it later must skip it. */
    EXPECT(TD_OK, td_store_job_cancel(s, b, &after, E));
    ck_assert_int_eq(after, TD_JOB_CANCELLED);
    EXPECT(TD_ECONFLICT, td_store_job_start(s, b, NULL, E));

    /* c: fails. */
    EXPECT(TD_OK, td_store_job_start(s, c, NULL, E));
    EXPECT(TD_OK, td_store_job_finish(s, c, TD_JOB_FAILED, "diverged", "loss is NaN", E));

    char d[TD_ID_MAX], e2[TD_ID_MAX];
    insert_job(s, ds.id, NULL, d);
    insert_job(s, ds.id, NULL, e2);
    EXPECT(TD_OK, td_store_job_start(s, e2, NULL, E));

    int64_t counts[TD_JOB_NSTATES];
    EXPECT(TD_OK, td_store_job_counts(s, counts, E));
    ck_assert_int_eq(counts[TD_JOB_QUEUED], 1);
    ck_assert_int_eq(counts[TD_JOB_RUNNING], 1);
    ck_assert_int_eq(counts[TD_JOB_SUCCEEDED], 0);
    ck_assert_int_eq(counts[TD_JOB_FAILED], 1);
    ck_assert_int_eq(counts[TD_JOB_CANCELLED], 2);

    td_job_row *rows;
    int n;
    EXPECT(TD_OK, td_store_job_list_active(s, &rows, &n, E));
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(rows[0].id, d); /* oldest first */
    ck_assert_str_eq(rows[1].id, e2);
    td_job_rows_free(rows, n);

    char next[TD_ID_MAX];
    EXPECT(TD_OK, td_store_job_list(s, TD_JOB_CANCELLED, 10, NULL, &rows, &n, next, E));
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(rows[0].id, b); /* newest first */
    ck_assert_str_eq(rows[1].id, a);
    ck_assert_str_eq(next, "");
    td_job_rows_free(rows, n);
    EXPECT(TD_OK, td_store_job_list(s, -1, 3, NULL, &rows, &n, next, E));
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(rows[0].id, e2);
    ck_assert_str_eq(rows[2].id, c);
    ck_assert_str_eq(next, c);
    td_job_rows_free(rows, n);
    EXPECT(TD_OK, td_store_job_list(s, -1, 3, next, &rows, &n, next, E));
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(rows[0].id, b);
    ck_assert_str_eq(rows[1].id, a);
    ck_assert_str_eq(next, "");
    td_job_rows_free(rows, n);

    EXPECT(TD_OK, td_store_job_delete(s, a, E));
    EXPECT(TD_ENOTFOUND, td_store_job_get(s, a, &r, E));
    EXPECT(TD_ENOTFOUND, td_store_job_delete(s, a, E));
    EXPECT(TD_ENOTFOUND, td_store_job_start(s, "job_nope", NULL, E));
    EXPECT(TD_ENOTFOUND, commit_epoch(s, "job_nope", 1, rec, 4, NULL, NULL, 0, E));
    td_job_state st;
    EXPECT(TD_OK, td_job_state_parse("succeeded", &st, E));
    ck_assert_int_eq(st, TD_JOB_SUCCEEDED);
    EXPECT(TD_EINVAL, td_job_state_parse("done", &st, E));
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

START_TEST(job_idempotency)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta ds;
    put_small_ds(s, &ds);
    char a[TD_ID_MAX], b[TD_ID_MAX], c[TD_ID_MAX];
    insert_job(s, ds.id, "key-1", a);
    td_job_spec spec = {
        .model = "softmax", .dataset = ds.id, .hyperparameters = "{}", .idempotency_key = "key-1"};
    EXPECT(TD_ECONFLICT, td_store_job_insert(s, &spec, b, E));
    ck_assert_str_eq(b, a);
    ck_assert_str_eq(g_err.field, "idempotency_key");
    /* Empty key = no key; two jobs without keys do not collide. */
    insert_job(s, ds.id, "", b);
    insert_job(s, ds.id, NULL, c);
    ck_assert_str_ne(b, c);
    td_job_row r;
    EXPECT(TD_OK, td_store_job_find_idempotent(s, "key-1", &r, E));
    ck_assert_str_eq(r.id, a);
    ck_assert_str_eq(r.idempotency_key, "key-1");
    td_job_row_fini(&r);
    EXPECT(TD_ENOTFOUND, td_store_job_find_idempotent(s, "key-2", &r, E));
    /* The key survives the job's end; deleting the job frees it. */
    EXPECT(TD_OK, td_store_job_cancel(s, a, NULL, E));
    EXPECT(TD_ECONFLICT, td_store_job_insert(s, &spec, b, E));
    EXPECT(TD_OK, td_store_job_delete(s, a, E));
    EXPECT(TD_OK, td_store_job_insert(s, &spec, b, E));
    ck_assert_str_ne(b, a);
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

/* ---- history, epoch commit, checkpoints, models -------------------------------------- */

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

START_TEST(history_nan_and_truncate)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta ds;
    put_small_ds(s, &ds);
    char id[TD_ID_MAX];
    insert_job(s, ds.id, NULL, id);
    double rec[4] = {1, 0.25, 2.5, NAN};
    EXPECT(TD_EINVAL, commit_epoch(s, id, 1, rec, 4, NULL, NULL, 0, E)); /* no columns yet */
    EXPECT(TD_OK, td_store_history_columns_set(s, id, COLS, 4, E));
    const char *bad[] = {"loss", "x,y"};
    EXPECT(TD_EINVAL, td_store_history_columns_set(s, id, bad, 2, E));
    EXPECT(TD_EINVAL, commit_epoch(s, id, 1, rec, 3, NULL, NULL, 0, E));
    for (int e = 3; e >= 1; e--) { /* out of order on purpose */
        double r[4] = {e, 0.5 * e, 1.0 / e, e == 2 ? 0.75 : NAN};
        EXPECT(TD_OK, commit_epoch(s, id, e, r, 4, NULL, NULL, 0, E));
    }
    td_history h;
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_cols, 4);
    ck_assert_int_eq(h.n_rows, 3);
    for (int c = 0; c < 4; c++)
        ck_assert_str_eq(h.names[c], COLS[c]);
    for (int r = 0; r < 3; r++) {
        int e = r + 1;
        ck_assert_int_eq(h.epochs[r], e);
        ck_assert(same_bits(h.cols[0 * 3 + r], e));
        ck_assert(same_bits(h.cols[1 * 3 + r], 0.5 * e));
        ck_assert(same_bits(h.cols[2 * 3 + r], 1.0 / e));
        if (e == 2)
            ck_assert(same_bits(h.cols[3 * 3 + r], 0.75));
        else
            ck_assert(isnan(h.cols[3 * 3 + r]));
    }
    td_history_fini(&h);
    EXPECT(TD_OK, td_store_history_get(s, id, 2, &h, E));
    ck_assert_int_eq(h.n_rows, 1);
    ck_assert_int_eq(h.epochs[0], 3);
    td_history_fini(&h);

    /* Same count again is fine; a different count with records present is not. */
    EXPECT(TD_OK, td_store_history_columns_set(s, id, COLS, 4, E));
    EXPECT(TD_ECONFLICT, td_store_history_columns_set(s, id, COLS, 3, E));

    EXPECT(TD_OK, td_store_history_truncate(s, id, 1, E));
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 1);
    ck_assert_int_eq(h.epochs[0], 1);
    td_history_fini(&h);
    EXPECT(TD_OK, td_store_history_truncate(s, id, 0, E));
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 0);
    ck_assert_int_eq(h.n_cols, 4);
    td_history_fini(&h);

    char other[TD_ID_MAX];
    insert_job(s, ds.id, NULL, other);
    EXPECT(TD_OK, td_store_history_get(s, other, -1, &h, E));
    ck_assert_int_eq(h.n_cols, 0);
    ck_assert_int_eq(h.n_rows, 0);
    td_history_fini(&h);
    EXPECT(TD_ENOTFOUND, td_store_history_get(s, "job_nope", -1, &h, E));
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

static void fill_ckpt(unsigned char *buf, size_t len, int epoch)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(i * 31 + (size_t)epoch);
}

START_TEST(epoch_commit_and_checkpoints)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta ds;
    put_small_ds(s, &ds);
    char id[TD_ID_MAX];
    insert_job(s, ds.id, NULL, id);
    EXPECT(TD_OK, td_store_job_start(s, id, NULL, E));
    EXPECT(TD_OK, td_store_history_columns_set(s, id, COLS, 4, E));

    void *buf;
    size_t len;
    int64_t epoch;
    EXPECT(TD_ENOTFOUND, td_store_checkpoint_load(s, id, &buf, &len, &epoch, E));

    enum { CK = 10000 };
    unsigned char ck[CK];
    for (int e = 1; e <= 5; e++) {
        double rec[4] = {e, e * 0.1, 1.0 / e, NAN};
        char metrics[64];
        snprintf(metrics, sizeof metrics, "{\"loss\":%g}", 1.0 / e);
        int with = e == 2 || e == 4;
        fill_ckpt(ck, CK, e);
        EXPECT(TD_OK, commit_epoch(s, id, e, rec, 4, metrics, with ? ck : NULL, with ? CK : 0, E));
        ck_assert_int_eq(count_files("checkpoints", NULL), e >= 2 ? 1 : 0);
    }
    td_job_row r;
    EXPECT(TD_OK, td_store_job_get(s, id, &r, E));
    ck_assert_int_eq(r.epoch, 5);
    ck_assert_int_eq(r.checkpoint_epoch, 4);
    ck_assert_str_eq(r.metrics, "{\"loss\":0.2}");
    td_job_row_fini(&r);

    EXPECT(TD_OK, td_store_checkpoint_load(s, id, &buf, &len, &epoch, E));
    ck_assert_int_eq(epoch, 4);
    ck_assert_uint_eq(len, CK);
    fill_ckpt(ck, CK, 4);
    ck_assert_int_eq(memcmp(buf, ck, CK), 0);
    td_store_free(buf);

    /* Shutdown checkpoint of the committed epoch; none ahead of it. */
    fill_ckpt(ck, CK, 5);
    EXPECT(TD_EINVAL, td_store_checkpoint_save(s, id, 6, ck, CK, E));
    EXPECT(TD_OK, td_store_checkpoint_save(s, id, 5, ck, CK, E));
    ck_assert_int_eq(count_files("checkpoints", NULL), 1);
    EXPECT(TD_OK, td_store_checkpoint_load(s, id, &buf, &len, &epoch, E));
    ck_assert_int_eq(epoch, 5);
    ck_assert_int_eq(memcmp(buf, ck, CK), 0);
    td_store_free(buf);

    /* Crash simulation: the checkpoint file of epoch 6 was renamed into place, then the
     * process died before the transaction. The recorded checkpoint is still 5; history
     * ends at 5; reopening sweeps the stray file. */
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoints/%s.6.ckpt", g_dir, id);
    td_blob_seg seg = {ck, CK};
    EXPECT(TD_OK, td_blob_write(path, TD_BLOB_CHECKPOINT, 6, &seg, 1, E));
    snprintf(path, sizeof path, "%s/checkpoints/%s.7.ckpt.tmp.1.1", g_dir, id);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fclose(f);
    ck_assert_int_eq(count_files("checkpoints", NULL), 3);
    EXPECT(TD_OK, td_store_checkpoint_load(s, id, &buf, &len, &epoch, E));
    ck_assert_int_eq(epoch, 5);
    td_store_free(buf);
    td_store_close(s);
    s = open_store();
    ck_assert_int_eq(count_files("checkpoints", NULL), 1);

    /* Recovery after a crash: resume from checkpoint 4-equivalent (here: 5), truncate
     * history after it; with an earlier checkpoint, later records go. */
    EXPECT(TD_OK, td_store_checkpoint_load(s, id, &buf, &len, &epoch, E));
    td_store_free(buf);
    EXPECT(TD_OK, td_store_history_truncate(s, id, epoch, E));
    td_history h;
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 5);
    td_history_fini(&h);

    /* Corrupt the recorded checkpoint: EIO naming the file. */
    snprintf(path, sizeof path, "%s/checkpoints/%s.5.ckpt", g_dir, id);
    flip_byte(path, TD_BLOB_HEADER + 100);
    EXPECT(TD_EIO, td_store_checkpoint_load(s, id, &buf, &len, &epoch, E));
    ck_assert_ptr_nonnull(strstr(g_err.message, path));
    ck_assert_ptr_null(buf);

    EXPECT(TD_ENOTFOUND, td_store_checkpoint_save(s, "job_nope", 1, ck, CK, E));
    EXPECT(TD_ENOTFOUND, td_store_checkpoint_save(s, "../x", 1, ck, CK, E));
    ck_assert_int_eq(count_files("checkpoints", NULL), 1);
    /* A record of the wrong width is refused: the job's epoch stays, so no checkpoint of
     * the new epoch can be recorded. */
    double rec3[3] = {0};
    EXPECT(TD_EINVAL, commit_epoch(s, id, 6, rec3, 3, NULL, NULL, 0, E));
    EXPECT(TD_EINVAL, td_store_checkpoint_save(s, id, 6, ck, CK, E));
    ck_assert_int_eq(count_files("checkpoints", NULL), 1);
    EXPECT(TD_OK, td_store_job_get(s, id, &r, E));
    ck_assert_int_eq(r.epoch, 5);
    ck_assert_int_eq(r.checkpoint_epoch, 5);
    td_job_row_fini(&r);
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

START_TEST(model_and_job_delete_files)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta ds;
    put_small_ds(s, &ds);
    char id[TD_ID_MAX];
    insert_job(s, ds.id, NULL, id);
    char *meta;
    float *params;
    int64_t n;
    EXPECT(TD_ENOTFOUND, td_store_model_get(s, id, &meta, &params, &n, E));
    float w[7] = {1.5f, -2, 0, NAN, 1e-30f, 3, 4};
    EXPECT(TD_OK, td_store_model_put(s, id, "{\"model\":\"softmax\",\"D\":3}", w, 7, E));
    EXPECT(TD_OK, td_store_model_get(s, id, &meta, &params, &n, E));
    ck_assert_str_eq(meta, "{\"model\":\"softmax\",\"D\":3}");
    ck_assert_int_eq(n, 7);
    ck_assert_int_eq(memcmp(params, w, sizeof w), 0);
    td_store_free(meta);
    td_store_free(params);
    EXPECT(TD_ENOTFOUND, td_store_model_put(s, "job_nope", "{}", w, 7, E));
    ck_assert_int_eq(count_files("models", NULL), 1);

    EXPECT(TD_OK, td_store_job_start(s, id, NULL, E));
    EXPECT(TD_OK, td_store_history_columns_set(s, id, COLS, 4, E));
    double rec[4] = {1, 2, 3, 4};
    unsigned char ck[100] = {1};
    EXPECT(TD_OK, commit_epoch(s, id, 1, rec, 4, "{}", ck, sizeof ck, E));
    EXPECT(TD_OK, td_store_job_finish(s, id, TD_JOB_SUCCEEDED, NULL, NULL, E));
    ck_assert_int_eq(count_files("checkpoints", NULL), 1);
    EXPECT(TD_OK, td_store_job_delete(s, id, E));
    ck_assert_int_eq(count_files("checkpoints", NULL), 0);
    ck_assert_int_eq(count_files("models", NULL), 0);
    td_history h;
    EXPECT(TD_ENOTFOUND, td_store_history_get(s, id, -1, &h, E));
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

/* ---- persistence, locking, concurrency ------------------------------------------------ */

START_TEST(reopen_keeps_everything)
{
    mk_tmpdir();
    td_store *s = open_store();
    fixture_ds f;
    make_ds(&f, 40, 5, 2, 3, 0, 77);
    td_dataset_meta m;
    EXPECT(TD_OK, td_store_dataset_put(s, &f.ds, "kept", &m, E));
    char id[TD_ID_MAX];
    insert_job(s, m.id, "k", id);
    EXPECT(TD_OK, td_store_job_start(s, id, NULL, E));
    EXPECT(TD_OK, td_store_history_columns_set(s, id, COLS, 4, E));
    double rec[4] = {1, 0.5, NAN, -0.0};
    unsigned char ck[300];
    fill_ckpt(ck, sizeof ck, 1);
    EXPECT(TD_OK, commit_epoch(s, id, 1, rec, 4, "{\"loss\":1}", ck, sizeof ck, E));
    float w[3] = {1, 2, 3};
    EXPECT(TD_OK, td_store_model_put(s, id, "{}", w, 3, E));

    /* A second store on the same directory is refused while the first is open. */
    td_store *other = NULL;
    EXPECT(TD_ECONFLICT, td_store_open(&other, g_dir, E));
    ck_assert_ptr_null(other);
    td_store_close(s);

    s = open_store();
    td_dataset_meta g;
    EXPECT(TD_OK, td_store_dataset_get(s, m.id, &g, E));
    ck_assert_int_eq(memcmp(&g, &m, sizeof m), 0);
    td_stored_dataset sd;
    EXPECT(TD_OK, td_store_dataset_load(s, m.id, &sd, E));
    ck_assert_int_eq(memcmp(sd.ds.X, f.X, sizeof(float) * 200), 0);
    ck_assert_int_eq(memcmp(sd.ds.y, f.y, sizeof(int32_t) * 80), 0);
    ck_assert_int_eq(memcmp(sd.ds.pairs, f.pairs, sizeof(int32_t) * 6), 0);
    td_stored_dataset_fini(&sd);
    td_job_row r;
    EXPECT(TD_OK, td_store_job_find_idempotent(s, "k", &r, E));
    ck_assert_str_eq(r.id, id);
    ck_assert_int_eq(r.state, TD_JOB_RUNNING);
    ck_assert_int_eq(r.epoch, 1);
    ck_assert_int_eq(r.checkpoint_epoch, 1);
    ck_assert_int_eq(r.has_model, 1);
    ck_assert_str_eq(r.metrics, "{\"loss\":1}");
    td_job_row_fini(&r);
    td_history h;
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 1);
    ck_assert(isnan(h.cols[2]));
    ck_assert(same_bits(h.cols[3], -0.0));
    td_history_fini(&h);
    void *buf;
    size_t len;
    int64_t epoch;
    EXPECT(TD_OK, td_store_checkpoint_load(s, id, &buf, &len, &epoch, E));
    ck_assert_int_eq(memcmp(buf, ck, sizeof ck), 0);
    td_store_free(buf);
    char *meta;
    float *params;
    int64_t n;
    EXPECT(TD_OK, td_store_model_get(s, id, &meta, &params, &n, E));
    ck_assert_int_eq(memcmp(params, w, sizeof w), 0);
    td_store_free(meta);
    td_store_free(params);
    td_job_row *rows;
    int nr;
    EXPECT(TD_OK, td_store_job_list_active(s, &rows, &nr, E));
    ck_assert_int_eq(nr, 1);
    td_job_rows_free(rows, nr);

    /* Orphans from a crash are swept: a dataset file without a row, a model file of a
     * job that has none recorded, a temp file. */
    char path[512];
    snprintf(path, sizeof path, "%s/datasets/ds_00000000000000000000dead.bin", g_dir);
    td_blob_seg seg = {"x", 1};
    EXPECT(TD_OK, td_blob_write(path, TD_BLOB_DATASET, 0, &seg, 1, E));
    snprintf(path, sizeof path, "%s/models/job_00000000000000000000dead.bin", g_dir);
    EXPECT(TD_OK, td_blob_write(path, TD_BLOB_MODEL, 0, &seg, 1, E));
    snprintf(path, sizeof path, "%s/datasets/%s.bin.tmp.9.9", g_dir, m.id);
    FILE *fp = fopen(path, "w");
    fclose(fp);
    td_store_close(s);
    s = open_store();
    ck_assert_int_eq(count_files("datasets", NULL), 1);
    ck_assert_int_eq(count_files("models", NULL), 1);
    td_store_close(s);
    free_ds(&f);
    rm_tmpdir();
}
END_TEST

typedef struct {
    td_store *s;
    const char *ds_id;
    int failures;
    char ids[25][TD_ID_MAX];
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    td_error err;
    for (int i = 0; i < 25; i++) {
        td_job_spec spec = {
            .model = "softmax", .dataset = a->ds_id, .hyperparameters = "{}", .epochs = 2};
        td_job_row r, *rows;
        int n;
        char next[TD_ID_MAX];
        if (td_store_job_insert(a->s, &spec, a->ids[i], &err) != TD_OK ||
            td_store_job_get(a->s, a->ids[i], &r, &err) != TD_OK) {
            a->failures++;
            continue;
        }
        td_job_row_fini(&r);
        if (td_store_job_list(a->s, -1, 5, NULL, &rows, &n, next, &err) != TD_OK) {
            a->failures++;
            continue;
        }
        td_job_rows_free(rows, n);
        fixture_ds f;
        make_ds(&f, 8, 2, 1, 0, 0, (unsigned)i);
        td_dataset_meta m;
        td_stored_dataset sd;
        if (td_store_dataset_put(a->s, &f.ds, NULL, &m, &err) != TD_OK ||
            td_store_dataset_load(a->s, m.id, &sd, &err) != TD_OK)
            a->failures++;
        else
            td_stored_dataset_fini(&sd);
        free_ds(&f);
        if (td_store_job_start(a->s, a->ids[i], NULL, &err) != TD_OK ||
            td_store_history_columns_set(a->s, a->ids[i], COLS, 4, &err) != TD_OK)
            a->failures++;
        double rec[4] = {1, 2, 3, 4};
        if (commit_epoch(a->s, a->ids[i], 1, rec, 4, "{}", rec, sizeof rec, &err) != TD_OK ||
            td_store_job_finish(a->s, a->ids[i], TD_JOB_SUCCEEDED, NULL, NULL, &err) != TD_OK)
            a->failures++;
    }
    return NULL;
}

START_TEST(concurrent_use)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta ds;
    put_small_ds(s, &ds);
    worker_arg args[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        memset(&args[t], 0, sizeof args[t]);
        args[t].s = s, args[t].ds_id = ds.id;
        ck_assert_int_eq(pthread_create(&th[t], NULL, worker, &args[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(args[t].failures, 0);
    }
    int64_t counts[TD_JOB_NSTATES];
    EXPECT(TD_OK, td_store_job_counts(s, counts, E));
    ck_assert_int_eq(counts[TD_JOB_SUCCEEDED], 100);
    td_dataset_meta *rows;
    int n;
    char next[TD_ID_MAX];
    EXPECT(TD_OK, td_store_dataset_list(s, 1000, NULL, &rows, &n, next, E));
    ck_assert_int_eq(n, 101);
    for (int i = 1; i < n; i++)
        ck_assert(strcmp(rows[i - 1].id, rows[i].id) > 0);
    free(rows);
    if (!g_uri[0]) /* PostgreSQL keeps checkpoints in the database */
        ck_assert_int_eq(count_files("checkpoints", NULL), 100);
    ck_assert_int_eq(count_files("datasets", ".tmp."), 0);
    ck_assert_int_eq(count_files("checkpoints", ".tmp."), 0);
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

/* Group commit and the committer's calls (issue 13 item 3): a claim sets the live mark, a
 * finish clears it; an unsynced model file is refused over a recorded model; a batch of
 * ends records every running job succeeded with its model and leaves a terminal one. */
START_TEST(claim_finish_and_batched_ends)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta ds;
    put_small_ds(s, &ds);
    char a[TD_ID_MAX], b[TD_ID_MAX], c[TD_ID_MAX], d[TD_ID_MAX];
    insert_job(s, ds.id, NULL, a);
    insert_job(s, ds.id, NULL, b);
    insert_job(s, ds.id, NULL, c);
    insert_job(s, ds.id, NULL, d);
    td_job_row r;
    EXPECT(TD_OK, td_store_job_claim(s, a, &r, E));
    ck_assert_int_eq(r.state, TD_JOB_RUNNING);
    td_job_row_fini(&r);
    EXPECT(TD_OK, td_store_job_claim(s, b, NULL, E));
    EXPECT(TD_OK, td_store_job_claim(s, d, NULL, E));
    EXPECT(TD_OK, td_store_job_finish(s, d, TD_JOB_FAILED, "diverged", "NaN", E)); /* unmarks */
    EXPECT(TD_OK, td_store_job_cancel(s, c, NULL, E));
    td_job_row *failed;
    int n;
    /* a and b are marked (counted a crash, unmarked), d is not (terminal anyway) */
    EXPECT(TD_OK, td_store_job_reap_crashed(s, 5, &failed, &n, E));
    td_job_rows_free(failed, n);
    EXPECT(TD_OK, td_store_job_get(s, a, &r, E));
    ck_assert_int_eq(r.crashes, 1);
    td_job_row_fini(&r);
    EXPECT(TD_OK, td_store_job_get(s, d, &r, E));
    ck_assert_int_eq(r.crashes, 0);
    td_job_row_fini(&r);

    const float wa[3] = {1, 2, 3}, wb[2] = {4, 5};
    EXPECT(TD_OK, td_store_model_write_unsynced(s, a, "{\"m\":1}", wa, 3, E));
    EXPECT(TD_OK, td_store_model_put(s, b, "{\"m\":2}", wb, 2, E));
    EXPECT(TD_ECONFLICT, td_store_model_write_unsynced(s, b, "{\"m\":3}", wa, 3, E));
    EXPECT(TD_ENOTFOUND, td_store_model_write_unsynced(s, "job_nope", "{}", wa, 3, E));
    EXPECT(TD_OK, td_store_job_get(s, a, &r, E));
    ck_assert_int_eq(r.has_model, 0); /* the file alone records nothing */
    td_job_row_fini(&r);
    EXPECT(TD_OK, td_store_sync_files(s, E));
    const char *ids[] = {a, b, c};
    const int64_t np[] = {3, 2, 7};
    EXPECT(TD_OK, td_store_jobs_succeed(s, ids, np, 3, E));
    EXPECT(TD_OK, td_store_job_get(s, a, &r, E));
    ck_assert_int_eq(r.state, TD_JOB_SUCCEEDED);
    ck_assert_int_eq(r.has_model, 1);
    ck_assert(r.finished_at[0] != '\0');
    td_job_row_fini(&r);
    EXPECT(TD_OK, td_store_job_get(s, c, &r, E));
    ck_assert_int_eq(r.state, TD_JOB_CANCELLED); /* terminal: left as it was */
    ck_assert_int_eq(r.has_model, 0);
    td_job_row_fini(&r);
    char *meta;
    float *params;
    int64_t k;
    EXPECT(TD_OK, td_store_model_get(s, a, &meta, &params, &k, E));
    ck_assert_int_eq(k, 3);
    ck_assert(params[0] == 1 && params[2] == 3);
    ck_assert_str_eq(meta, "{\"m\":1}");
    td_store_free(meta);
    td_store_free(params);
    EXPECT(TD_OK, td_store_model_get(s, b, &meta, &params, &k, E));
    ck_assert_int_eq(k, 2);
    ck_assert(params[1] == 5);
    td_store_free(meta);
    td_store_free(params);
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

/* ---- PostgreSQL only: two stores (two daemons) on one database ------------------------ */

static td_store *open_second(char *dir2, size_t cap)
{
    snprintf(dir2, cap, "/tmp/traind_store2_XXXXXX");
    ck_assert(mkdtemp(dir2) != NULL);
    td_store *s2 = NULL;
    EXPECT(TD_OK, td_store_open_uri(&s2, dir2, g_uri, E));
    return s2;
}

START_TEST(pg_shared_queue_claims_leases_and_reaps)
{
    mk_tmpdir();
    char dir2[256];
    td_store *s1 = open_store(), *s2 = open_second(dir2, sizeof dir2);
    ck_assert_int_eq(td_store_shared(s1), 1);
    td_store_set_node(s1, "n1", 0.5);
    td_store_set_node(s2, "n2", 0.5);
    td_dataset_meta m;
    put_small_ds(s1, &m);
    char a[TD_ID_MAX], b[TD_ID_MAX], got[TD_ID_MAX];
    uint64_t bytes;
    td_job_spec spec = {.model = "softmax",
                        .dataset = m.id,
                        .hyperparameters = "{}",
                        .epochs = 10,
                        .mem_bytes = 1000};
    EXPECT(TD_OK, td_store_job_insert(s1, &spec, a, E));
    spec.mem_bytes = 50;
    EXPECT(TD_OK, td_store_job_insert(s2, &spec, b, E));
    /* admission: only b fits 100 bytes; then a is the oldest */
    EXPECT(TD_OK, td_store_job_claim_next(s2, 100, got, &bytes, E));
    ck_assert_str_eq(got, b);
    ck_assert_int_eq(bytes, 50);
    EXPECT(TD_OK, td_store_job_claim_next(s1, UINT64_MAX, got, &bytes, E));
    ck_assert_str_eq(got, a);
    EXPECT(TD_ENOTFOUND, td_store_job_claim_next(s1, UINT64_MAX, got, &bytes, E));
    td_job_row row;
    EXPECT(TD_OK, td_store_job_start(s1, a, &row, E));
    ck_assert_str_eq(row.node, "n1");
    ck_assert_int_eq(row.state, TD_JOB_RUNNING);
    td_job_row_fini(&row);
    EXPECT(TD_OK, td_store_job_start(s2, b, NULL, E));
    /* the holder's writes only */
    const char *cols[] = {"loss"};
    double v = 1.5;
    EXPECT(TD_OK, td_store_history_columns_set(s1, a, cols, 1, E));
    EXPECT(TD_ECONFLICT, commit_epoch(s2, a, 1, &v, 1, NULL, NULL, 0, E));
    EXPECT(TD_OK, commit_epoch(s1, a, 1, &v, 1, NULL, "ck", 2, E));
    /* a cancel on the other daemon reaches the holder's heartbeat */
    EXPECT(TD_OK, td_store_job_cancel(s2, a, NULL, E));
    const char *ids[] = {a, b};
    int cancel[2], held[2];
    EXPECT(TD_OK, td_store_job_renew(s1, ids, 2, cancel, held, E));
    ck_assert_int_eq(held[0], 1);
    ck_assert_int_eq(cancel[0], 1);
    ck_assert_int_eq(held[1], 0); /* b is n2's */
    /* n2 dies holding b: once its lease expires, a reap counts the crash and n1 takes it */
    td_job_row *failed;
    int nf;
    EXPECT(TD_OK, td_store_job_reap_crashed(s1, 2, &failed, &nf, E));
    ck_assert_int_eq(nf, 0);
    EXPECT(TD_ENOTFOUND, td_store_job_claim_next(s1, UINT64_MAX, got, &bytes, E)); /* leased */
    usleep(700 * 1000);
    EXPECT(TD_OK, td_store_job_renew(s1, ids, 1, cancel, held, E)); /* a stays n1's */
    EXPECT(TD_OK, td_store_job_reap_crashed(s1, 2, &failed, &nf, E));
    ck_assert_int_eq(nf, 0);
    EXPECT(TD_OK, td_store_job_claim_next(s1, UINT64_MAX, got, &bytes, E));
    ck_assert_str_eq(got, b);
    EXPECT(TD_OK, td_store_job_start(s1, b, &row, E));
    ck_assert_int_eq(row.restarts, 1);
    ck_assert_int_eq(row.crashes, 1);
    ck_assert_str_eq(row.node, "n1");
    td_job_row_fini(&row);
    /* n2's late renewal finds b lost; its finish is refused */
    EXPECT(TD_OK, td_store_job_renew(s2, ids + 1, 1, cancel, held, E));
    ck_assert_int_eq(held[0], 0);
    EXPECT(TD_ECONFLICT, td_store_job_finish(s2, b, TD_JOB_SUCCEEDED, NULL, NULL, E));
    /* a second death: crashes reach max_crashes = 2 and the reap fails it */
    usleep(700 * 1000);
    EXPECT(TD_OK, td_store_job_reap_crashed(s2, 2, &failed, &nf, E));
    ck_assert_int_eq(nf, 1); /* b; a (n1 stopped renewing it too) counts its first */
    ck_assert_str_eq(failed[0].id, b);
    ck_assert_str_eq(failed[0].error_code, "crashed");
    EXPECT(TD_OK, td_store_job_get(s2, a, &row, E));
    ck_assert_int_eq(row.crashes, 1);
    td_job_row_fini(&row);
    td_job_rows_free(failed, nf);
    EXPECT(TD_OK, td_store_job_finish(s1, a, TD_JOB_CANCELLED, NULL, NULL, E));
    /* letting go ends the lease at once */
    char c[TD_ID_MAX];
    EXPECT(TD_OK, td_store_job_insert(s1, &spec, c, E));
    EXPECT(TD_OK, td_store_job_claim_next(s1, UINT64_MAX, got, &bytes, E));
    EXPECT(TD_ENOTFOUND, td_store_job_claim_next(s2, UINT64_MAX, got, &bytes, E));
    EXPECT(TD_OK, td_store_job_set_live(s1, c, 0, E));
    EXPECT(TD_OK, td_store_job_claim_next(s2, UINT64_MAX, got, &bytes, E));
    ck_assert_str_eq(got, c);
    /* max_queued holds across stores (c, claimed but not started, is still queued) */
    spec.max_queued = 3;
    char d[TD_ID_MAX], e[TD_ID_MAX];
    EXPECT(TD_OK, td_store_job_insert(s1, &spec, d, E));
    EXPECT(TD_OK, td_store_job_insert(s2, &spec, e, E));
    EXPECT(TD_EBUSY, td_store_job_insert(s1, &spec, e, E));
    /* idempotency keys too */
    spec.max_queued = 0;
    spec.idempotency_key = "k1";
    EXPECT(TD_OK, td_store_job_insert(s1, &spec, d, E));
    EXPECT(TD_ECONFLICT, td_store_job_insert(s2, &spec, e, E));
    ck_assert_str_eq(e, d);
    td_store_close(s1);
    td_store_close(s2);
    rm_tmpdir();
    rm_dir(dir2);
}
END_TEST

START_TEST(pg_blobs_live_in_the_database)
{
    mk_tmpdir();
    char dir2[256];
    td_store *s1 = open_store(), *s2 = open_second(dir2, sizeof dir2);
    td_store_set_build_tag(s1, "build-1");
    /* a dataset put on one daemon loads on the other (fetched into its cache), over
     * several 1 MiB chunks */
    fixture_ds f;
    make_ds(&f, 50000, 7, 2, 11, 0, 5);
    td_dataset_meta m;
    EXPECT(TD_OK, td_store_dataset_put(s1, &f.ds, "d", &m, E));
    td_stored_dataset sd;
    EXPECT(TD_OK, td_store_dataset_load(s2, m.id, &sd, E));
    ck_assert_int_eq(memcmp(sd.ds.X, f.X, sizeof(float) * 50000 * 7), 0);
    ck_assert_int_eq(memcmp(sd.ds.y, f.y, sizeof(int32_t) * 50000 * 2), 0);
    ck_assert_int_eq(memcmp(sd.ds.pair_labels, f.labels, sizeof(int32_t) * 11), 0);
    td_stored_dataset_fini(&sd);
    free_ds(&f);
    /* class and column names, copied into a job at its insert */
    EXPECT(TD_OK, td_store_dataset_names_set(s1, m.id, "[\"a\",\"b\"]", "[\"x\"]", E));
    char *classes, *columns;
    EXPECT(TD_OK, td_store_dataset_names(s2, m.id, &classes, &columns, E));
    ck_assert_str_eq(classes, "[\"a\",\"b\"]");
    ck_assert_str_eq(columns, "[\"x\"]");
    free(classes), free(columns);
    /* a checkpoint over several 1 MiB chunks, written by one and read by the other */
    char id[TD_ID_MAX];
    insert_job(s1, m.id, NULL, id);
    td_job_row jr;
    EXPECT(TD_OK, td_store_job_get(s2, id, &jr, E));
    ck_assert_str_eq(jr.classes, "[\"a\",\"b\"]");
    td_job_row_fini(&jr);
    const char *cols[] = {"loss"};
    EXPECT(TD_OK, td_store_history_columns_set(s1, id, cols, 1, E));
    size_t n = (5u << 20) / 2 + 3;
    unsigned char *ck = malloc(n);
    for (size_t i = 0; i < n; i++)
        ck[i] = (unsigned char)(i * 31 + 7);
    double v = NAN;
    EXPECT(TD_OK, commit_epoch(s1, id, 3, &v, 1, "{}", ck, n, E));
    void *buf;
    size_t len;
    int64_t ep;
    char tag[64];
    EXPECT(TD_OK, td_store_checkpoint_load_tagged(s2, id, &buf, &len, &ep, tag, sizeof tag, E));
    ck_assert_int_eq(len, n);
    ck_assert_int_eq(ep, 3);
    ck_assert_str_eq(tag, "build-1");
    ck_assert_int_eq(memcmp(buf, ck, n), 0);
    td_store_free(buf);
    td_history h;
    EXPECT(TD_OK, td_store_history_get(s2, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 1);
    ck_assert(isnan(h.cols[0]));
    td_history_fini(&h);
    /* a model */
    float params[5] = {1, -2, 3.5f, 0, 1e-30f};
    EXPECT(TD_OK, td_store_model_put(s1, id, "{\"m\":1}", params, 5, E));
    char *meta;
    float *p;
    int64_t np;
    EXPECT(TD_OK, td_store_model_get(s2, id, &meta, &p, &np, E));
    ck_assert_str_eq(meta, "{\"m\":1}");
    ck_assert_int_eq(np, 5);
    ck_assert_int_eq(memcmp(p, params, sizeof params), 0);
    td_store_free(meta);
    td_store_free(p);
    /* small jobs' batched ends: the model first, then the end with it, one transaction */
    char id2[TD_ID_MAX];
    insert_job(s1, m.id, NULL, id2);
    EXPECT(TD_OK, td_store_job_claim(s1, id2, NULL, E));
    EXPECT(TD_OK, td_store_model_write_unsynced(s1, id2, "{\"m\":2}", params, 5, E));
    EXPECT(TD_ENOTFOUND, td_store_model_get(s2, id2, &meta, &p, &np, E)); /* not recorded */
    EXPECT(TD_OK, td_store_sync_files(s1, E));
    const char *ends[] = {id2};
    const int64_t ends_n[] = {5};
    EXPECT(TD_OK, td_store_jobs_succeed(s1, ends, ends_n, 1, E));
    td_job_row jr2;
    EXPECT(TD_OK, td_store_job_get(s2, id2, &jr2, E));
    ck_assert_int_eq(jr2.state, TD_JOB_SUCCEEDED);
    ck_assert_int_eq(jr2.has_model, 1);
    td_job_row_fini(&jr2);
    EXPECT(TD_OK, td_store_model_get(s2, id2, &meta, &p, &np, E));
    ck_assert_str_eq(meta, "{\"m\":2}");
    td_store_free(meta);
    td_store_free(p);
    EXPECT(TD_ECONFLICT, td_store_model_write_unsynced(s1, id2, "{}", params, 5, E));
    /* delete on one, gone on the other */
    EXPECT(TD_OK, td_store_job_finish(s1, id, TD_JOB_SUCCEEDED, NULL, NULL, E));
    EXPECT(TD_OK, td_store_job_delete(s2, id, E));
    EXPECT(TD_ENOTFOUND, td_store_model_get(s1, id, &meta, &p, &np, E));
    EXPECT(TD_ENOTFOUND, td_store_checkpoint_load(s1, id, &buf, &len, &ep, E));
    EXPECT(TD_OK, td_store_dataset_delete(s2, m.id, E));
    EXPECT(TD_ENOTFOUND, td_store_dataset_load(s1, m.id, &sd, E));
    /* reopening finds the schema (version table) in place */
    td_store_close(s2);
    EXPECT(TD_OK, td_store_open_uri(&s2, dir2, g_uri, E));
    free(ck);
    td_store_close(s1);
    td_store_close(s2);
    rm_tmpdir();
    rm_dir(dir2);
}
END_TEST

Suite *suite_store_jobs(void)
{
    Suite *s = suite_create("store_jobs");
    TCase *tc = tcase_create("jobs");
    tcase_add_test(tc, job_lifecycle);
    tcase_add_test(tc, job_idempotency);
    tcase_add_test(tc, history_nan_and_truncate);
    tcase_add_test(tc, epoch_commit_and_checkpoints);
    tcase_add_test(tc, model_and_job_delete_files);
    suite_add_tcase(s, tc);
    tc = tcase_create("persistence");
    tcase_add_test(tc, reopen_keeps_everything);
    tcase_add_test(tc, concurrent_use);
    tcase_add_test(tc, claim_finish_and_batched_ends);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests above that do not look at SQLite's files, and the PostgreSQL-only ones (blobs
 * in the database, the shared queue), on a fresh PostgreSQL database each. */
Suite *suite_store_jobs_pg(void)
{
    td_pgtest_server();
    Suite *s = suite_create("store_jobs_pg");
    TCase *tc = tcase_create("pg");
    tcase_add_checked_fixture(tc, fresh_pg_db, NULL);
    tcase_add_test(tc, job_lifecycle);
    tcase_add_test(tc, job_idempotency);
    tcase_add_test(tc, history_nan_and_truncate);
    tcase_add_test(tc, concurrent_use);
    tcase_add_test(tc, pg_shared_queue_claims_leases_and_reaps);
    tcase_add_test(tc, pg_blobs_live_in_the_database);
    suite_add_tcase(s, tc);
    return s;
}
