/* test_build.c — issue 10 item 8 (exact resume across builds) and the store's additions.
 *   blob      tagged blobs (version 2): the tag round-trips, is covered by the checksum,
 *             is bounded; version 1 files read with the tag "" (unknown)
 *   store     checkpoints carry the store's build tag; a database made before the columns
 *             of issue 10 gets them at open (migration), its jobs intact
 *   daemon    a job resumed by the same build says resumed_on_different_build false, one
 *             resumed by a build with another fingerprint (test hook
 *             TD_TEST_BUILD_FINGERPRINT) or from a checkpoint without a fingerprint
 *             (rewritten as version 1) says true, with a log line. */
#define _GNU_SOURCE /* nftw, usleep */
#include <cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "math/fingerprint.h"
#include "store/blob.h"
#include "store/store.h"
#include "storetest.h"
#include "testutil.h"

/* ========================================================================= blob ==== */

START_TEST(blob_tags_roundtrip_and_untagged_files_read_as_unknown)
{
    mk_tmpdir();
    char path[512], tag[TD_BLOB_TAG_MAX + 1];
    snprintf(path, sizeof path, "%s/t.bin", g_dir);
    const char payload[] = "the payload";
    td_blob_seg seg = {payload, sizeof payload};
    void *p;
    size_t len;
    uint64_t aux;

    EXPECT(TD_OK, td_blob_write_tagged(path, TD_BLOB_CHECKPOINT, 9, "build A", &seg, 1, E));
    EXPECT(TD_OK,
           td_blob_read_tagged(path, TD_BLOB_CHECKPOINT, &aux, tag, sizeof tag, &p, &len, E));
    ck_assert_str_eq(tag, "build A");
    ck_assert_uint_eq(aux, 9);
    ck_assert_uint_eq(len, sizeof payload);
    ck_assert_str_eq(p, payload);
    td_blob_free(p);
    /* the untagged reader takes it too; a short buffer gets the tag cut */
    EXPECT(TD_OK, td_blob_read(path, TD_BLOB_CHECKPOINT, NULL, &p, &len, E));
    ck_assert_str_eq(p, payload);
    td_blob_free(p);
    char small[4];
    EXPECT(TD_OK, td_blob_read_tagged(path, TD_BLOB_ANY, NULL, small, sizeof small, &p, &len, E));
    ck_assert_str_eq(small, "bui");
    td_blob_free(p);
    /* the tag is under the checksum */
    flip_byte(path, TD_BLOB_HEADER + 4 + 2);
    EXPECT(TD_EIO, td_blob_read_tagged(path, TD_BLOB_ANY, NULL, tag, sizeof tag, &p, &len, E));
    ck_assert_ptr_nonnull(strstr(g_err.message, "checksum"));
    ck_assert_ptr_null(p);
    /* a tag length past the file is malformed, not a crash */
    flip_byte(path, TD_BLOB_HEADER + 4 + 2);
    flip_byte(path, TD_BLOB_HEADER + 1);
    EXPECT(TD_EIO, td_blob_read_tagged(path, TD_BLOB_ANY, NULL, tag, sizeof tag, &p, &len, E));
    ck_assert_ptr_nonnull(strstr(g_err.message, "tag"));

    /* version 1 (no tag, or an empty one): the tag reads as "" */
    EXPECT(TD_OK, td_blob_write_tagged(path, TD_BLOB_CHECKPOINT, 3, "", &seg, 1, E));
    strcpy(tag, "stale");
    EXPECT(TD_OK,
           td_blob_read_tagged(path, TD_BLOB_CHECKPOINT, &aux, tag, sizeof tag, &p, &len, E));
    ck_assert_str_eq(tag, "");
    ck_assert_str_eq(p, payload);
    td_blob_free(p);

    char *huge = malloc(TD_BLOB_TAG_MAX + 2);
    ck_assert_ptr_nonnull(huge);
    memset(huge, 'x', TD_BLOB_TAG_MAX + 1);
    huge[TD_BLOB_TAG_MAX + 1] = '\0';
    EXPECT(TD_EINVAL, td_blob_write_tagged(path, TD_BLOB_CHECKPOINT, 1, huge, &seg, 1, E));
    free(huge);
    rm_tmpdir();
}
END_TEST

/* ======================================================================== store ==== */

static void new_job(td_store *s, char id[TD_ID_MAX])
{
    float X[4] = {0, 1, 2, 3};
    int32_t y[4] = {0, 1, 0, 1};
    td_dataset ds = {.N = 4, .D = 1, .X = X, .y = y, .y_cols = 1};
    td_dataset_meta m;
    EXPECT(TD_OK, td_store_dataset_put(s, &ds, NULL, &m, E));
    td_job_spec spec = {.model = "softmax", .dataset = m.id, .hyperparameters = "{}", .epochs = 10};
    EXPECT(TD_OK, td_store_job_insert(s, &spec, id, E));
    EXPECT(TD_OK, td_store_job_start(s, id, NULL, E));
}

START_TEST(checkpoints_carry_the_build_tag)
{
    mk_tmpdir();
    td_store *s = NULL;
    EXPECT(TD_OK, td_store_open(&s, g_dir, E));
    char id[TD_ID_MAX], tag[TD_BLOB_TAG_MAX + 1];
    new_job(s, id);
    const char *cols[1] = {"epoch"};
    EXPECT(TD_OK, td_store_history_columns_set(s, id, cols, 1, E));
    unsigned char ck[64] = {1, 2, 3};
    double rec = 1;
    void *buf;
    size_t len;
    int64_t epoch;
    /* no tag set: none written */
    EXPECT(TD_OK, commit_epoch(s, id, 1, &rec, 1, NULL, ck, sizeof ck, E));
    EXPECT(TD_OK, td_store_checkpoint_load_tagged(s, id, &buf, &len, &epoch, tag, sizeof tag, E));
    ck_assert_str_eq(tag, "");
    td_store_free(buf);
    td_store_set_build_tag(s, td_numeric_fingerprint());
    rec = 2;
    EXPECT(TD_OK, commit_epoch(s, id, 2, &rec, 1, NULL, ck, sizeof ck, E));
    EXPECT(TD_OK, td_store_checkpoint_load_tagged(s, id, &buf, &len, &epoch, tag, sizeof tag, E));
    ck_assert_str_eq(tag, td_numeric_fingerprint());
    ck_assert_int_eq(epoch, 2);
    ck_assert_uint_eq(len, sizeof ck);
    ck_assert_int_eq(memcmp(buf, ck, sizeof ck), 0);
    td_store_free(buf);
    /* the fingerprint names the version, the flags and the CPU features */
    ck_assert_ptr_nonnull(strstr(td_numeric_fingerprint(), TD_VERSION));
    ck_assert_ptr_nonnull(strstr(td_numeric_fingerprint(), "flags "));
    ck_assert_ptr_nonnull(strstr(td_numeric_fingerprint(), "cpu"));
    td_job_row r;
    EXPECT(TD_OK, td_store_job_get(s, id, &r, E));
    ck_assert_int_eq(r.resumed_on_different_build, 0);
    td_job_row_fini(&r);
    EXPECT(TD_OK, td_store_job_mark_different_build(s, id, E));
    EXPECT(TD_OK, td_store_job_get(s, id, &r, E));
    ck_assert_int_eq(r.resumed_on_different_build, 1);
    td_job_row_fini(&r);
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

/* A database from before issue 10 (its jobs table without live, crashes and
 * resumed_on_different_build) opens: the columns are added, the rows keep their values. */
START_TEST(an_older_database_gets_the_new_columns)
{
    mk_tmpdir();
    td_store *s = NULL;
    EXPECT(TD_OK, td_store_open(&s, g_dir, E));
    char id[TD_ID_MAX];
    new_job(s, id);
    td_store_close(s);
    char path[512];
    snprintf(path, sizeof path, "%s/traind.db", g_dir);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    const char *cols[] = {"live", "crashes", "resumed_on_different_build"};
    for (int i = 0; i < 3; i++) {
        char sql[128];
        snprintf(sql, sizeof sql, "ALTER TABLE jobs DROP COLUMN %s", cols[i]);
        ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql,
                      sqlite3_errmsg(db));
    }
    sqlite3_close(db);

    EXPECT(TD_OK, td_store_open(&s, g_dir, E));
    td_job_row r;
    EXPECT(TD_OK, td_store_job_get(s, id, &r, E));
    ck_assert_int_eq(r.state, TD_JOB_RUNNING);
    ck_assert_int_eq(r.crashes, 0);
    ck_assert_int_eq(r.resumed_on_different_build, 0);
    td_job_row_fini(&r);
    /* the crash bookkeeping works on it: live at a "death", reaped at the next start */
    EXPECT(TD_OK, td_store_job_set_live(s, id, 1, E));
    td_job_row *failed;
    int n;
    EXPECT(TD_OK, td_store_job_reap_crashed(s, 2, &failed, &n, E));
    ck_assert_int_eq(n, 0);
    EXPECT(TD_OK, td_store_job_set_live(s, id, 1, E));
    EXPECT(TD_OK, td_store_job_reap_crashed(s, 2, &failed, &n, E));
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(failed[0].id, id);
    ck_assert_str_eq(failed[0].error_code, "crashed");
    ck_assert_int_eq(failed[0].crashes, 2);
    ck_assert_int_eq(failed[0].state, TD_JOB_FAILED);
    td_job_rows_free(failed, n);
    td_store_close(s);
    rm_tmpdir();
}
END_TEST

/* ======================================================================= daemon ==== */

/* Starts a daemon over dir (NULL: new) with fingerprint fp (NULL: the real one). */
static httpc_daemon start(const char *dir, const char *fp)
{
    char env0[200];
    snprintf(env0, sizeof env0, "TD_TEST_BUILD_FINGERPRINT=%s", fp ? fp : "");
    const char *env[] = {env0, NULL};
    return api_start(dir, "workers = 2\ncheckpoint_interval_s = 0\n", NULL, env);
}

/* The job's JSON once it has trained past epoch `after` in this process (restarts >= r). */
static api_call job_past(int port, const char *id, int after, int restarts)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (double t0 = httpc_now();; usleep(10000)) {
        api_call c = api_req(port, "GET", path, NULL);
        ck_assert_int_eq(c.status, 200);
        int e = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "progress"), "epoch")->valueint;
        if (e > after && cJSON_GetObjectItem(c.json, "restarts")->valueint >= restarts) return c;
        ck_assert_msg(httpc_now() - t0 < 30, "job %s stuck at epoch %d", id, e);
        api_done(&c);
    }
}

static int epoch_of(const api_call *c)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(c->json, "progress"), "epoch")->valueint;
}

static int different(const api_call *c)
{
    const cJSON *v = cJSON_GetObjectItem(c->json, "resumed_on_different_build");
    ck_assert_msg(cJSON_IsBool(v), "no resumed_on_different_build in %s", c->r.body);
    return cJSON_IsTrue(v);
}

/* Rewrites job id's recorded checkpoint under dir as a version 1 blob (no fingerprint),
 * as a traind from before fingerprints wrote it. */
static void strip_fingerprint(const char *dir, const char *id)
{
    char cdir[512], path[1024];
    snprintf(cdir, sizeof cdir, "%s/state/checkpoints", dir);
    DIR *d = opendir(cdir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, id, strlen(id)) != 0 || de->d_name[strlen(id)] != '.') continue;
        snprintf(path, sizeof path, "%s/%s", cdir, de->d_name);
        char tag[TD_BLOB_TAG_MAX + 1];
        void *p;
        size_t len;
        uint64_t aux;
        EXPECT(TD_OK,
               td_blob_read_tagged(path, TD_BLOB_CHECKPOINT, &aux, tag, sizeof tag, &p, &len, E));
        ck_assert_str_eq(tag, "build A"); /* what the daemon wrote */
        td_blob_seg seg = {p, len};
        EXPECT(TD_OK, td_blob_write(path, TD_BLOB_CHECKPOINT, aux, &seg, 1, E));
        td_blob_free(p);
        n++;
    }
    closedir(d);
    ck_assert_int_eq(n, 1);
}

START_TEST(a_resume_on_another_build_says_so)
{
    httpc_daemon d = start(NULL, "build A");
    char dir[256];
    snprintf(dir, sizeof dir, "%s", d.dir);
    char *ds = api_post_id(d.port, "/v1/datasets",
                           "{\"X\":[[0,1],[1,0],[0.5,0.2],[0.1,0.9]],"
                           "\"y\":[0,1,1,0]}",
                           201);
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":10000000}}",
             ds);
    char *same = api_post_id(d.port, "/v1/jobs", body, 202);
    char *old = api_post_id(d.port, "/v1/jobs", body, 202);
    api_call c = job_past(d.port, same, 0, 0);
    ck_assert(!different(&c));
    api_done(&c);
    c = job_past(d.port, old, 0, 0);
    api_done(&c);
    api_term(&d);

    /* the same build: false; a checkpoint without a fingerprint: true */
    strip_fingerprint(dir, old);
    d = start(dir, "build A");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", same);
    c = api_req(d.port, "GET", path, NULL);
    int e = epoch_of(&c);
    api_done(&c);
    c = job_past(d.port, same, e, 1); /* trained on after the resume */
    ck_assert(!different(&c));
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s", old);
    c = api_req(d.port, "GET", path, NULL);
    e = epoch_of(&c);
    api_done(&c);
    c = job_past(d.port, old, e, 1);
    ck_assert(different(&c));
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s", same);
    api_term(&d);
    char *log = httpc_daemon_log(&d);
    char want[200];
    snprintf(want, sizeof want, "job %s resumes from a checkpoint of a different build (unknown;",
             old);
    ck_assert_msg(strstr(log, want) != NULL, "no log line \"%s\" in %s", want, log);
    snprintf(want, sizeof want, "job %s resumes from a checkpoint of a different build", same);
    ck_assert_msg(strstr(log, want) == NULL, "%s", log);
    free(log);

    /* another build: true, and it says which */
    d = start(dir, "build B");
    c = api_req(d.port, "GET", path, NULL);
    e = epoch_of(&c);
    api_done(&c);
    c = job_past(d.port, same, e, 2);
    ck_assert(different(&c));
    api_done(&c);
    api_term(&d);
    log = httpc_daemon_log(&d);
    snprintf(want, sizeof want,
             "job %s resumes from a checkpoint of a different build (build A; "
             "this build: build B)",
             same);
    ck_assert_msg(strstr(log, want) != NULL, "no log line \"%s\" in %s", want, log);
    free(log);
    httpc_daemon_cleanup(&d);
    free(ds), free(same), free(old);
}
END_TEST

Suite *suite_build(void)
{
    Suite *s = suite_create("build");
    TCase *tc = tcase_create("store");
    tcase_add_test(tc, blob_tags_roundtrip_and_untagged_files_read_as_unknown);
    tcase_add_test(tc, checkpoints_carry_the_build_tag);
    tcase_add_test(tc, an_older_database_gets_the_new_columns);
    suite_add_tcase(s, tc);
    tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_resume_on_another_build_says_so);
    suite_add_tcase(s, tc);
    return s;
}
