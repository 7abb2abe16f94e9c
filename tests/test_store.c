/* test_store.c — blob files, ids and the datasets of the store, against a real temp
 * directory: the SQLite backend (suite "store") and the backend-independent tests again on
 * a real PostgreSQL (suite "store_pg", tests/pgtest.h). Jobs, history, checkpoints, models
 * and the shared queue are test_store_jobs.c; the fixtures storetest.h. */
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

/* ---- blob ------------------------------------------------------------------------- */

START_TEST(xxh64_vectors)
{
    /* Values from the reference libxxhash (XXH64, seed 0). */
    uint8_t big[768];
    for (int i = 0; i < 768; i++)
        big[i] = (uint8_t)i;
    ck_assert_uint_eq(td_xxh64("", 0, 0), 0xef46db3751d8e999ULL);
    ck_assert_uint_eq(td_xxh64("a", 1, 0), 0xd24ec4f1a98c6e5bULL);
    ck_assert_uint_eq(td_xxh64("abc", 3, 0), 0x44bc2cf5ad770999ULL);
    ck_assert_uint_eq(td_xxh64(big, sizeof big, 0), 0x8e03c838c596036fULL);
    /* Streaming in odd pieces gives the one-shot value. */
    td_xxh64_state h;
    td_xxh64_init(&h, 0);
    size_t cuts[] = {0, 1, 5, 31, 32, 33, 100, 101, 500, 768};
    for (size_t i = 1; i < sizeof cuts / sizeof *cuts; i++)
        td_xxh64_update(&h, big + cuts[i - 1], cuts[i] - cuts[i - 1]);
    ck_assert_uint_eq(td_xxh64_digest(&h), 0x8e03c838c596036fULL);
}
END_TEST

START_TEST(blob_roundtrip_and_corruption)
{
    mk_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/b.bin", g_dir);
    const char a[] = "hello ", b[] = "segmented world";
    float f[1000];
    for (int i = 0; i < 1000; i++)
        f[i] = (float)i * 0.5f;
    td_blob_seg segs[4] = {{a, 6}, {NULL, 0}, {b, sizeof b}, {f, sizeof f}};
    EXPECT(TD_OK, td_blob_write(path, TD_BLOB_MODEL, 77, segs, 4, E));

    /* Overwrite with the same name works and leaves no temp file behind. */
    EXPECT(TD_OK, td_blob_write(path, TD_BLOB_MODEL, 78, segs, 4, E));
    ck_assert_int_eq(count_files(".", ".tmp."), 0);
    ck_assert_int_eq(count_files(".", NULL), 1);

    void *p;
    size_t len;
    uint64_t aux;
    EXPECT(TD_OK, td_blob_read(path, TD_BLOB_MODEL, &aux, &p, &len, E));
    ck_assert_uint_eq(aux, 78);
    ck_assert_uint_eq(len, 6 + sizeof b + sizeof f);
    ck_assert_int_eq(memcmp(p, "hello segmented world", 22), 0);
    ck_assert_int_eq(memcmp((char *)p + 6 + sizeof b, f, sizeof f), 0);
    td_blob_free(p);

    EXPECT(TD_EIO, td_blob_read(path, TD_BLOB_DATASET, NULL, &p, &len, E));
    ck_assert_ptr_null(p);
    ck_assert_ptr_nonnull(strstr(g_err.message, path));

    flip_byte(path, TD_BLOB_HEADER + 3000);
    EXPECT(TD_EIO, td_blob_read(path, TD_BLOB_ANY, NULL, &p, &len, E));
    ck_assert_ptr_nonnull(strstr(g_err.message, path));
    ck_assert_ptr_nonnull(strstr(g_err.message, "checksum"));
    flip_byte(path, TD_BLOB_HEADER + 3000);
    EXPECT(TD_OK, td_blob_read(path, TD_BLOB_ANY, NULL, &p, &len, E));
    td_blob_free(p);

    flip_byte(path, 17); /* aux is covered by the checksum too */
    EXPECT(TD_EIO, td_blob_read(path, TD_BLOB_ANY, NULL, &p, &len, E));
    flip_byte(path, 17);

    ck_assert_int_eq(truncate(path, TD_BLOB_HEADER + 10), 0);
    EXPECT(TD_EIO, td_blob_read(path, TD_BLOB_ANY, NULL, &p, &len, E));
    ck_assert_ptr_nonnull(strstr(g_err.message, "length"));
    ck_assert_int_eq(truncate(path, 5), 0);
    EXPECT(TD_EIO, td_blob_read(path, TD_BLOB_ANY, NULL, &p, &len, E));

    snprintf(path, sizeof path, "%s/missing.bin", g_dir);
    EXPECT(TD_ENOTFOUND, td_blob_read(path, TD_BLOB_ANY, NULL, &p, &len, E));

    /* Empty payload. */
    snprintf(path, sizeof path, "%s/empty.bin", g_dir);
    EXPECT(TD_OK, td_blob_write(path, TD_BLOB_MODEL, 0, NULL, 0, E));
    EXPECT(TD_OK, td_blob_read(path, TD_BLOB_MODEL, NULL, &p, &len, E));
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(len, 0);
    td_blob_free(p);

    /* A write into a missing directory fails cleanly. */
    snprintf(path, sizeof path, "%s/nodir/x.bin", g_dir);
    EXPECT(TD_EIO, td_blob_write(path, TD_BLOB_MODEL, 0, segs, 1, E));
    rm_tmpdir();
}
END_TEST

/* ---- ids ---------------------------------------------------------------------------- */

START_TEST(ids_are_ordered)
{
    char prev[TD_ID_MAX] = "", id[TD_ID_MAX];
    for (int i = 0; i < 1000; i++) {
        td_store_new_id(id, "job_");
        ck_assert_uint_eq(strlen(id), 4 + 24);
        ck_assert_int_eq(strncmp(id, "job_", 4), 0);
        ck_assert_uint_eq(strspn(id + 4, "0123456789abcdef"), 24);
        ck_assert_msg(strcmp(prev, id) < 0, "%s !< %s", prev, id);
        memcpy(prev, id, sizeof id);
    }
    char t[TD_TIME_MAX];
    td_store_now(t);
    ck_assert_uint_eq(strlen(t), 24);
    ck_assert_int_eq(t[10], 'T');
    ck_assert_int_eq(t[23], 'Z');
}
END_TEST

/* ---- datasets ----------------------------------------------------------------------- */

START_TEST(dataset_roundtrip)
{
    mk_tmpdir();
    td_store *s = open_store();
    struct {
        int64_t N, D, G, P;
        int probs;
        td_target_kind kind;
        int64_t K;
    } cases[] = {{50, 7, 1, 0, 0, TD_TARGET_INDEX, 7}, {20, 3, 4, 0, 0, TD_TARGET_GROUPED, 7},
                 {10, 2, 5, 0, 1, TD_TARGET_PROBS, 5}, {30, 4, 0, 0, 0, TD_TARGET_NONE, 0},
                 {25, 6, 0, 40, 0, TD_TARGET_NONE, 0}, {1, 1, 1, 1, 0, TD_TARGET_INDEX, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        fixture_ds f;
        make_ds(&f, cases[c].N, cases[c].D, cases[c].G, cases[c].P, cases[c].probs,
                (unsigned)c + 3);
        td_dataset_meta m, g;
        EXPECT(TD_OK, td_store_dataset_put(s, &f.ds, c ? NULL : "iris", &m, E));
        ck_assert_int_eq(strncmp(m.id, "ds_", 3), 0);
        ck_assert_str_eq(m.name, c ? "" : "iris");
        ck_assert_int_eq(m.N, cases[c].N);
        ck_assert_int_eq(m.D, cases[c].D);
        ck_assert_int_eq(m.target, cases[c].kind);
        ck_assert_int_eq(m.n_classes, cases[c].K);
        ck_assert_int_eq(m.P, cases[c].P);
        EXPECT(TD_OK, td_store_dataset_get(s, m.id, &g, E));
        ck_assert_int_eq(memcmp(&m, &g, sizeof m), 0);

        td_stored_dataset sd;
        EXPECT(TD_OK, td_store_dataset_load(s, m.id, &sd, E));
        const td_dataset *d = &sd.ds;
        ck_assert_int_eq(d->N, f.ds.N);
        ck_assert_int_eq(d->D, f.ds.D);
        ck_assert_int_eq(memcmp(d->X, f.X, sizeof(float) * (size_t)(d->N * d->D)), 0);
        if (f.y) {
            ck_assert_int_eq(d->y_cols, f.ds.y_cols);
            ck_assert_int_eq(memcmp(d->y, f.y, sizeof(int32_t) * (size_t)(d->N * d->y_cols)), 0);
        } else {
            ck_assert_ptr_null(d->y);
        }
        if (f.Y) {
            ck_assert_int_eq(d->Y_cols, f.ds.Y_cols);
            ck_assert_int_eq(memcmp(d->Y, f.Y, sizeof(float) * (size_t)(d->N * d->Y_cols)), 0);
        } else {
            ck_assert_ptr_null(d->Y);
        }
        if (f.pairs) {
            ck_assert_int_eq(memcmp(d->pairs, f.pairs, sizeof(int32_t) * 2 * (size_t)d->P), 0);
            ck_assert_int_eq(memcmp(d->pair_labels, f.labels, sizeof(int32_t) * (size_t)d->P), 0);
        } else {
            ck_assert_ptr_null(d->pairs);
        }
        struct stat sb;
        char path[512];
        snprintf(path, sizeof path, "%s/datasets/%s.bin", g_dir, m.id);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert_int_eq(sb.st_size, m.bytes);
        td_stored_dataset_fini(&sd);
        free_ds(&f);
    }

    /* Bad input. */
    fixture_ds f;
    make_ds(&f, 3, 2, 1, 0, 0, 1);
    td_dataset bad = f.ds;
    bad.D = 0;
    EXPECT(TD_EINVAL, td_store_dataset_put(s, &bad, NULL, NULL, E));
    bad = f.ds;
    bad.Y = f.X, bad.Y_cols = 2;
    EXPECT(TD_EINVAL, td_store_dataset_put(s, &bad, NULL, NULL, E));
    bad = f.ds;
    bad.N = INT64_MAX / 2;
    EXPECT(TD_EINVAL, td_store_dataset_put(s, &bad, NULL, NULL, E));
    free_ds(&f);

    td_dataset_meta g;
    td_stored_dataset sd;
    EXPECT(TD_ENOTFOUND, td_store_dataset_get(s, "ds_nope", &g, E));
    EXPECT(TD_ENOTFOUND, td_store_dataset_get(s, "../../etc/passwd", &g, E));
    EXPECT(TD_ENOTFOUND, td_store_dataset_load(s, "../traind.db", &sd, E));
    ck_assert_int_eq(count_files("datasets", ".tmp."), 0);
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

START_TEST(dataset_corruption)
{
    mk_tmpdir();
    td_store *s = open_store();
    fixture_ds f;
    make_ds(&f, 100, 10, 1, 0, 0, 9);
    td_dataset_meta m;
    EXPECT(TD_OK, td_store_dataset_put(s, &f.ds, NULL, &m, E));
    char path[512];
    snprintf(path, sizeof path, "%s/datasets/%s.bin", g_dir, m.id);
    flip_byte(path, TD_BLOB_HEADER + 64 + 4 * 500 + 1);
    td_stored_dataset sd;
    EXPECT(TD_EIO, td_store_dataset_load(s, m.id, &sd, E));
    ck_assert_msg(strstr(g_err.message, path) != NULL, "message \"%s\" names no file",
                  g_err.message);
    ck_assert_ptr_null(sd.handle);

    /* The row stays but its file vanished: an I/O error, not "not found". */
    ck_assert_int_eq(unlink(path), 0);
    EXPECT(TD_EIO, td_store_dataset_load(s, m.id, &sd, E));
    td_store_close(s);
    free_ds(&f);
    rm_tmpdir();
}
END_TEST

/* ---- shared datasets (dscache.h) ------------------------------------------------------ */

/* Two loads of one dataset share one mapping, X 64-byte aligned; the checksum is computed
 * once for the file however often it is loaded, and again once the file changed (a
 * flipped byte is then caught); a dataset deleted while held stays readable by its holder. */
START_TEST(dataset_shared_and_verified_once)
{
    mk_tmpdir();
    td_store *s = open_store();
    fixture_ds f;
    make_ds(&f, 300, 10, 1, 0, 0, 5);
    td_dataset_meta m;
    EXPECT(TD_OK, td_store_dataset_put(s, &f.ds, NULL, &m, E));
    td_dscache_stats st;
    td_stored_dataset a, b;
    EXPECT(TD_OK, td_store_dataset_load(s, m.id, &a, E));
    EXPECT(TD_OK, td_store_dataset_load(s, m.id, &b, E));
    ck_assert_ptr_eq(a.ds.X, b.ds.X); /* one mapping */
    ck_assert_int_eq((uintptr_t)a.ds.X % 64, 0);
    ck_assert_int_eq(memcmp(a.ds.X, f.X, sizeof(float) * 300 * 10), 0);
    td_store_dataset_cache_stats(s, &st);
    ck_assert_int_eq(st.verifications, 1);
    ck_assert_int_eq(st.mapped, 1);
    ck_assert_int_eq(st.mapped_bytes, m.bytes);
    ck_assert_int_eq(st.copied_bytes, 0);
    td_stored_dataset_fini(&a);
    td_stored_dataset_fini(&b);
    td_store_dataset_cache_stats(s, &st);
    ck_assert_int_eq(st.mapped, 0); /* the last release unmapped it */
    EXPECT(TD_OK, td_store_dataset_load(s, m.id, &a, E));
    td_stored_dataset_fini(&a);
    td_store_dataset_cache_stats(s, &st);
    ck_assert_int_eq(st.verifications, 1); /* mapped again, not hashed again */

    /* The file changes: hashed again, and the flipped byte is caught. */
    char path[512];
    snprintf(path, sizeof path, "%s/datasets/%s.bin", g_dir, m.id);
    usleep(20000); /* a later ctime even on a coarse clock */
    flip_byte(path, TD_BLOB_HEADER + 64 + 64 + 4 * 7);
    EXPECT(TD_EIO, td_store_dataset_load(s, m.id, &a, E));
    ck_assert_msg(strstr(g_err.message, "checksum mismatch"), "%s", g_err.message);
    flip_byte(path, TD_BLOB_HEADER + 64 + 64 + 4 * 7); /* restored: verified again, fine */
    EXPECT(TD_OK, td_store_dataset_load(s, m.id, &a, E));
    td_store_dataset_cache_stats(s, &st);
    ck_assert_int_eq(st.verifications, 2); /* the failed one is not counted */

    /* Deleted while held: the holder reads on; a new load finds nothing. */
    EXPECT(TD_OK, td_store_dataset_delete(s, m.id, E));
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(memcmp(a.ds.X, f.X, sizeof(float) * 300 * 10), 0);
    ck_assert_int_eq(memcmp(a.ds.y, f.y, sizeof(int32_t) * 300), 0);
    EXPECT(TD_ENOTFOUND, td_store_dataset_load(s, m.id, &b, E));
    td_stored_dataset_fini(&a);
    td_store_dataset_cache_stats(s, &st);
    ck_assert_int_eq(st.mapped, 0);
    td_store_close(s);
    free_ds(&f);
    rm_tmpdir();
}
END_TEST

/* A dataset file of the layout before the alignment padding (pad word 0, X right after
 * the 64-byte header) still loads: copied once into aligned memory, shared the same way. */
START_TEST(dataset_unpadded_layout_is_copied)
{
    mk_tmpdir();
    td_store *s = open_store();
    fixture_ds f;
    make_ds(&f, 40, 3, 1, 0, 0, 8);
    td_dataset_meta m;
    EXPECT(TD_OK, td_store_dataset_put(s, &f.ds, NULL, &m, E));
    char path[512];
    snprintf(path, sizeof path, "%s/datasets/%s.bin", g_dir, m.id);
    int64_t hdr[8] = {40, 3, 1, 0, 0, 0, 0, 0};
    td_blob_seg segs[3] = {
        {hdr, sizeof hdr}, {f.X, sizeof(float) * 120}, {f.y, sizeof(int32_t) * 40}};
    EXPECT(TD_OK, td_blob_write(path, TD_BLOB_DATASET, 0, segs, 3, E));
    td_stored_dataset a, b;
    EXPECT(TD_OK, td_store_dataset_load(s, m.id, &a, E));
    EXPECT(TD_OK, td_store_dataset_load(s, m.id, &b, E));
    ck_assert_ptr_eq(a.ds.X, b.ds.X);
    ck_assert_int_eq((uintptr_t)a.ds.X % 64, 0);
    ck_assert_int_eq(memcmp(a.ds.X, f.X, sizeof(float) * 120), 0);
    ck_assert_int_eq(memcmp(a.ds.y, f.y, sizeof(int32_t) * 40), 0);
    td_dscache_stats st;
    td_store_dataset_cache_stats(s, &st);
    ck_assert_int_eq(st.copied_bytes, 64 + 120 * 4 + 40 * 4);
    td_stored_dataset_fini(&a);
    td_stored_dataset_fini(&b);
    /* a pad word that is neither 0 nor the padding is a bad file */
    hdr[5] = 8;
    EXPECT(TD_OK, td_blob_write(path, TD_BLOB_DATASET, 0, segs, 3, E));
    EXPECT(TD_EIO, td_store_dataset_load(s, m.id, &a, E));
    td_store_close(s);
    free_ds(&f);
    rm_tmpdir();
}
END_TEST

START_TEST(dataset_list_paging)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta made[5];
    for (int i = 0; i < 5; i++)
        put_small_ds(s, &made[i]);
    td_dataset_meta *rows;
    int n;
    char next[TD_ID_MAX];
    EXPECT(TD_OK, td_store_dataset_list(s, 10, NULL, &rows, &n, next, E));
    ck_assert_int_eq(n, 5);
    ck_assert_str_eq(next, "");
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(rows[i].id, made[4 - i].id);
    free(rows);

    /* Pages of 2: [4 3] [2 1] [0]. */
    char after[TD_ID_MAX] = "";
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        EXPECT(TD_OK, td_store_dataset_list(s, 2, after, &rows, &n, next, E));
        ck_assert_int_eq(n, page < 2 ? 2 : 1);
        for (int i = 0; i < n; i++)
            ck_assert_str_eq(rows[i].id, made[4 - seen - i].id);
        seen += n;
        if (page < 2)
            ck_assert_str_eq(next, rows[n - 1].id);
        else
            ck_assert_str_eq(next, "");
        memcpy(after, next, sizeof after);
        free(rows);
    }
    ck_assert_int_eq(seen, 5);
    EXPECT(TD_EINVAL, td_store_dataset_list(s, 0, NULL, &rows, &n, next, E));
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

START_TEST(dataset_delete_conflict)
{
    mk_tmpdir();
    td_store *s = open_store();
    td_dataset_meta train, val;
    put_small_ds(s, &train);
    put_small_ds(s, &val);
    char id[TD_ID_MAX];
    td_job_spec spec = {.model = "softmax",
                        .dataset = train.id,
                        .validation = val.id,
                        .hyperparameters = "{}",
                        .epochs = 3};
    EXPECT(TD_OK, td_store_job_insert(s, &spec, id, E));
    EXPECT(TD_ECONFLICT, td_store_dataset_delete(s, train.id, E));
    EXPECT(TD_ECONFLICT, td_store_dataset_delete(s, val.id, E));
    EXPECT(TD_OK, td_store_job_start(s, id, NULL, E));
    EXPECT(TD_ECONFLICT, td_store_dataset_delete(s, train.id, E));
    EXPECT(TD_OK, td_store_job_finish(s, id, TD_JOB_SUCCEEDED, NULL, NULL, E));
    EXPECT(TD_OK, td_store_dataset_delete(s, train.id, E));
    EXPECT(TD_ENOTFOUND, td_store_dataset_delete(s, train.id, E));
    td_dataset_meta g;
    EXPECT(TD_ENOTFOUND, td_store_dataset_get(s, train.id, &g, E));
    ck_assert_int_eq(count_files("datasets", NULL), 1);
    /* A job cannot be created on a deleted dataset. */
    EXPECT(TD_ENOTFOUND, td_store_job_insert(s, &spec, id, E));
    ck_assert_str_eq(g_err.field, "dataset");
    spec.dataset = val.id, spec.validation = "ds_gone";
    EXPECT(TD_ENOTFOUND, td_store_job_insert(s, &spec, id, E));
    ck_assert_str_eq(g_err.field, "validation");
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

Suite *suite_store(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("blob");
    tcase_add_test(tc, xxh64_vectors);
    tcase_add_test(tc, blob_roundtrip_and_corruption);
    tcase_add_test(tc, ids_are_ordered);
    suite_add_tcase(s, tc);
    tc = tcase_create("datasets");
    tcase_add_test(tc, dataset_roundtrip);
    tcase_add_test(tc, dataset_corruption);
    tcase_add_test(tc, dataset_list_paging);
    tcase_add_test(tc, dataset_delete_conflict);
    tcase_add_test(tc, dataset_shared_and_verified_once);
    tcase_add_test(tc, dataset_unpadded_layout_is_copied);
    suite_add_tcase(s, tc);
    return s;
}

/* The tests above that do not look at SQLite's files, on a fresh PostgreSQL database each. */
Suite *suite_store_pg(void)
{
    td_pgtest_server();
    Suite *s = suite_create("store_pg");
    TCase *tc = tcase_create("pg");
    tcase_add_checked_fixture(tc, fresh_pg_db, NULL);
    tcase_add_test(tc, dataset_roundtrip);
    tcase_add_test(tc, dataset_list_paging);
    tcase_add_test(tc, dataset_delete_conflict);
    suite_add_tcase(s, tc);
    return s;
}
