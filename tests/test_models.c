/* test_models.c — where a SQLite store keeps a job's model (store_history.c, "models"): a
 * small model's checksummed image in its job's row, a large one in models/<id>.bin; and the
 * in-memory blob image both are checked with (blob.h). Suite "models". */
#define _GNU_SOURCE
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/blob.h"
#include "store/store.h"

static char g_dir[64];
static td_error g_err;

#define OK(expr)                                                                                 \
    do {                                                                                         \
        memset(&g_err, 0, sizeof g_err);                                                         \
        td_status st_ = (expr);                                                                  \
        ck_assert_msg(st_ == TD_OK, "%s -> %s (%s)", #expr, td_status_code(st_), g_err.message); \
    } while (0)

/* A store in a new temp directory with one tiny dataset and n jobs claimed (running). */
static td_store *store_with_jobs(int n, char ids[][TD_ID_MAX])
{
    static const float X[8] = {0, 1, 1, 0, 1, 1, 0, 0};
    static const int32_t y[4] = {0, 1, 1, 0};
    td_dataset ds = {.N = 4, .D = 2, .X = X, .y = y, .y_cols = 1};
    td_dataset_meta m;
    td_store *s = NULL;
    snprintf(g_dir, sizeof g_dir, "/tmp/traind_models_XXXXXX");
    ck_assert(mkdtemp(g_dir) != NULL);
    OK(td_store_open(&s, g_dir, &g_err));
    OK(td_store_dataset_put(s, &ds, "tiny", &m, &g_err));
    for (int i = 0; i < n; i++) {
        td_job_spec spec = {
            .model = "softmax", .dataset = m.id, .hyperparameters = "{}", .epochs = 1};
        OK(td_store_job_insert(s, &spec, ids[i], &g_err));
        OK(td_store_job_claim(s, ids[i], NULL, &g_err));
    }
    return s;
}

static void remove_store(td_store *s)
{
    char cmd[128];
    td_store_close(s);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int model_file_exists(const char *id)
{
    char path[160];
    snprintf(path, sizeof path, "%s/models/%s.bin", g_dir, id);
    return access(path, F_OK) == 0;
}

/* The model's parameter count and meta, read back through the store. */
static void expect_model(td_store *s, const char *id, int64_t n, float first, const char *meta)
{
    char *mj = NULL;
    float *p = NULL;
    int64_t k = 0;
    OK(td_store_model_get(s, id, &mj, &p, &k, &g_err));
    ck_assert_int_eq(k, n);
    ck_assert(p[0] == first);
    ck_assert_str_eq(mj, meta);
    td_store_free(mj);
    td_store_free(p);
}

START_TEST(image_roundtrip_and_corruption)
{
    const char a[] = "abc", b[] = "defgh";
    td_blob_seg segs[2] = {{a, 3}, {b, 5}};
    void *img = NULL;
    size_t len = 0, plen = 0;
    const void *payload = NULL;
    uint64_t aux = 0;
    OK(td_blob_image(TD_BLOB_MODEL, 42, segs, 2, &img, &len, &g_err));
    ck_assert_uint_eq(len, TD_BLOB_HEADER + 8);
    OK(td_blob_image_check(img, len, TD_BLOB_MODEL, "img", &aux, &payload, &plen, &g_err));
    ck_assert_uint_eq(aux, 42);
    ck_assert_uint_eq(plen, 8);
    ck_assert_int_eq(memcmp(payload, "abcdefgh", 8), 0);
    ck_assert_int_eq(
        td_blob_image_check(img, len, TD_BLOB_CHECKPOINT, "img", NULL, &payload, &plen, &g_err),
        TD_EIO);
    ck_assert_ptr_nonnull(strstr(g_err.message, "blob kind 3, expected 2"));
    ck_assert_int_eq(
        td_blob_image_check(img, len - 1, TD_BLOB_MODEL, "img", NULL, &payload, &plen, &g_err),
        TD_EIO);
    ck_assert_ptr_nonnull(strstr(g_err.message, "length mismatch"));
    ((char *)img)[TD_BLOB_HEADER + 2] ^= 1;
    ck_assert_int_eq(
        td_blob_image_check(img, len, TD_BLOB_MODEL, "img", NULL, &payload, &plen, &g_err), TD_EIO);
    ck_assert_ptr_nonnull(strstr(g_err.message, "img: checksum mismatch"));
    td_blob_free(img);
}
END_TEST

/* A small model goes into its row (no file), a large one into models/; both are recorded
 * only by td_store_jobs_succeed, read back the same, survive a reopen, and go with their
 * job. td_store_model_put replaces a row's image by a file. */
START_TEST(small_models_in_rows_large_in_files)
{
    char ids[2][TD_ID_MAX];
    td_store *s = store_with_jobs(2, ids);
    const float small[3] = {1, 2, 3};
    int64_t big_n = TD_MODEL_INLINE_MAX / sizeof(float) + 1;
    float *big = calloc((size_t)big_n, sizeof *big);
    big[0] = 7;
    OK(td_store_model_write_unsynced(s, ids[0], "{\"m\":1}", small, 3, &g_err));
    OK(td_store_model_write_unsynced(s, ids[1], "{\"m\":2}", big, big_n, &g_err));
    ck_assert(!model_file_exists(ids[0]));
    ck_assert(model_file_exists(ids[1]));
    ck_assert_int_eq(
        td_store_model_get(s, ids[0], &(char *){0}, &(float *){0}, &(int64_t){0}, &g_err),
        TD_ENOTFOUND); /* not recorded yet */
    OK(td_store_sync_files(s, &g_err));
    const char *ends[2] = {ids[0], ids[1]};
    const int64_t np[2] = {3, big_n};
    OK(td_store_jobs_succeed(s, ends, np, 2, &g_err));
    expect_model(s, ids[0], 3, 1, "{\"m\":1}");
    expect_model(s, ids[1], big_n, 7, "{\"m\":2}");
    ck_assert_int_eq(td_store_model_write_unsynced(s, ids[0], "{}", small, 3, &g_err),
                     TD_ECONFLICT);

    td_store_close(s); /* the open's sweep keeps both */
    OK(td_store_open(&s, g_dir, &g_err));
    expect_model(s, ids[0], 3, 1, "{\"m\":1}");
    expect_model(s, ids[1], big_n, 7, "{\"m\":2}");

    const float two[2] = {5, 6};
    OK(td_store_model_put(s, ids[0], "{\"m\":3}", two, 2, &g_err));
    ck_assert(model_file_exists(ids[0]));
    expect_model(s, ids[0], 2, 5, "{\"m\":3}");
    OK(td_store_job_delete(s, ids[0], &g_err));
    ck_assert(!model_file_exists(ids[0]));
    free(big);
    remove_store(s);
}
END_TEST

/* A flipped byte in a row's image is found as in a file: TD_EIO, "checksum mismatch". */
START_TEST(corrupted_row_image)
{
    char ids[1][TD_ID_MAX], path[128];
    td_store *s = store_with_jobs(1, ids);
    const float w[4] = {1, 2, 3, 4};
    OK(td_store_model_write_unsynced(s, ids[0], "{}", w, 4, &g_err));
    const char *ends[1] = {ids[0]};
    OK(td_store_jobs_succeed(s, ends, (const int64_t[]){4}, 1, &g_err));
    snprintf(path, sizeof path, "%s/traind.db", g_dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char sql[200];
    /* offset 42, in the first parameter (the payload starts after the 40-byte header):
     * 1.0f's 0x80 becomes 0 */
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET model_image = CAST(substr(model_image, 1, 42) "
             "|| X'00' || substr(model_image, 44) AS BLOB) WHERE id = '%s'",
             ids[0]);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char *mj = NULL;
    float *p = NULL;
    int64_t k = 0;
    ck_assert_int_eq(td_store_model_get(s, ids[0], &mj, &p, &k, &g_err), TD_EIO);
    ck_assert_ptr_nonnull(strstr(g_err.message, "checksum mismatch"));
    ck_assert_ptr_null(p);
    remove_store(s);
}
END_TEST

Suite *suite_models(void)
{
    Suite *s = suite_create("models");
    TCase *tc = tcase_create("models");
    tcase_add_test(tc, image_roundtrip_and_corruption);
    tcase_add_test(tc, small_models_in_rows_large_in_files);
    tcase_add_test(tc, corrupted_row_image);
    suite_add_tcase(s, tc);
    return s;
}
