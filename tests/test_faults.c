/* test_faults.c — fault injection: every fault gives a clear error on the request or job it
 * hits, nothing else is lost, and the daemon keeps serving.
 *   alloc   the job and loss bodies at the JSON edge with their n-th allocation failing,
 *           for every n: TD_ENOMEM (or success), never a crash; under ASan, no leak on any
 *           of those paths (tests/failalloc.h; the engine's own runs: test_faults_engine.c)
 *   files   a dataset file and a model file with a flipped byte (checksum mismatch), a
 *           truncated dataset file, a corrupted checkpoint found at resume, a model row
 *           update that fails after its file was written (a trigger)
 *   sqlite  another process holding the database's write lock: shorter than the busy
 *           timeout (the request waits, then succeeds) and longer (a clear error on the
 *           write and on the training job whose epoch could not be committed)
 *   disk    (root: a private mount namespace) a full disk (a tmpfs as state_dir): at the
 *           store, a delete refused on a disk full to its last page and committed with the
 *           space reserve released (store/reserve.h), a long history deleted in batches;
 *           end to end, 507 insufficient_storage, /readyz 503, the running job failed and
 *           no worker spinning, deletes while full, and new work once space is freed,
 *           without a restart; a read-only state directory while running (read-only bind
 *           mounts over its datasets/, checkpoints/ and models/) and at start-up; skipped,
 *           saying so, where mounting is refused. */
#define _GNU_SOURCE /* unshare */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failalloc.h"
#include "codec/json_hparams.h"
#include "codec/json_job.h"
#include "codec/json_loss.h"
#include "api.h"
#include "fixtures.h"
#include "store/reserve.h"
#include "store/store.h"
#include "testutil.h"
#include "traind/train.h"

/* ======================================================================== alloc ==== */

static td_error g_err; /* the last failure's message, for the assertions */

/* The JSON edge: a job body decoded for a dataset, and a loss evaluation. */
static td_status sc_json(void)
{
    td_dataset ds = faults_data(0);
    td_error err = {{0}, {0}};
    td_job_request jr;
    const char *body = "{\"model\":\"mlp\",\"dataset\":\"ds_1\",\"hyperparameters\":"
                       "{\"hidden\":[4],\"epochs\":2,\"class_weights\":[1,2,1]}}";
    td_status st = td_json_job_parse(&jr, body, strlen(body), &err);
    if (st == TD_OK) {
        char *text = td_job_hparams_text(&jr.hp, jr.initial_weights);
        td_hparams hp;
        if (!text)
            st = TD_ENOMEM;
        else
            st = td_job_decode_hparams(&hp, "mlp", text, &ds, &err);
        if (text) td_hparams_fini(&hp);
        free(text);
    }
    td_job_request_fini(&jr);
    const char *loss = "{\"loss\":\"grouped_cross_entropy\",\"logits\":[[1,2,3,4]],"
                       "\"target\":[[0,1]],\"groups\":2,\"monotone\":{\"weight\":1}}";
    char *out = NULL;
    if (st == TD_OK) st = td_json_loss_eval(loss, strlen(loss), &out, &err);
    free(out);
    if (st) g_err = err;
    return st;
}

START_TEST(json_nth_allocation_fails) { failalloc_each("json", sc_json, &g_err); }
END_TEST

/* ======================================================================= daemon ==== */

/* Asserts a 5xx/4xx answer with the error object whose message contains `text`. */
static void expect_error(api_call *c, int status, const char *text)
{
    ck_assert_msg(c->status == status, "status %d, want %d: %s", c->status, status,
                  c->r.body ? c->r.body : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->json, "error");
    const char *m = api_str(e, "message");
    ck_assert_msg(m && api_str(e, "code"), "no error object: %s", c->r.body);
    ck_assert_msg(strstr(m, text), "message \"%s\" does not say \"%s\"", m, text);
}

static void expect_status(int port, const char *method, const char *path, const char *body,
                          int want)
{
    api_call c = api_req(port, method, path, body);
    ck_assert_msg(c.status == want, "%s %s: %d, want %d: %s", method, path, c.status, want,
                  c.r.body ? c.r.body : "");
    api_done(&c);
}

static char *dataset_body(int n, int d)
{
    size_t cap = (size_t)n * (size_t)d * 12 + (size_t)n * 4 + 64;
    char *b = malloc(cap), *p = b;
    p += sprintf(p, "{\"X\":[");
    for (int i = 0; i < n; i++) {
        p += sprintf(p, "%s[", i ? "," : "");
        for (int j = 0; j < d; j++)
            p += sprintf(p, "%s%.4f", j ? "," : "", (i % 3) + 0.01 * ((i * 7 + j * 3) % 50));
        p += sprintf(p, "]");
    }
    p += sprintf(p, "],\"y\":[");
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%d", i ? "," : "", i % 3);
    sprintf(p, "]}");
    return b;
}

static char *post_dataset(int port, int n, int d)
{
    char *body = dataset_body(n, d);
    char *id = api_post_id(port, "/v1/datasets", body, 201);
    free(body);
    return id;
}

/* The job object once its state is terminal (or after timeout_s); caller deletes. */
static cJSON *wait_job(int port, const char *id, double timeout_s)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    double t0 = httpc_now();
    for (;;) {
        api_call c = api_req(port, "GET", path, NULL);
        ck_assert_int_eq(c.status, 200);
        const char *st = api_str(c.json, "state");
        if (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled") ||
            httpc_now() - t0 > timeout_s) {
            cJSON *j = c.json;
            c.json = NULL;
            api_done(&c);
            return j;
        }
        api_done(&c);
        usleep(20000);
    }
}

static void expect_job_state(int port, const char *id, const char *state, const char *error)
{
    cJSON *j = wait_job(port, id, 30);
    ck_assert_msg(strcmp(api_str(j, "state"), state) == 0, "job %s is %s, want %s", id,
                  api_str(j, "state"), state);
    if (error) {
        const char *m = api_str(cJSON_GetObjectItemCaseSensitive(j, "error"), "message");
        ck_assert_msg(m && strstr(m, error), "job error \"%s\" does not say \"%s\"",
                      m ? m : "(none)", error);
    }
    cJSON_Delete(j);
}

static void healthy(int port)
{
    expect_status(port, "GET", "/healthz", NULL, 200);
    expect_status(port, "GET", "/readyz", NULL, 200);
}

static char *new_dir(void)
{
    char *dir = strdup("/tmp/traind-faults-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static void flip_byte(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

#define PREDICT_BODY "{\"X\":[[0.1,0.2,0.3]]}"

START_TEST(corrupted_files)
{
    char *dir = new_dir();
    httpc_daemon d = api_start(dir, "workers = 1\ncheckpoint_interval_s = 0\n", NULL, NULL);
    int port = d.port;
    char *A = post_dataset(port, 40, 3), *B = post_dataset(port, 40, 3);
    char *C = post_dataset(port, 40, 3);
    char *JA = api_post_job(port, "softmax", A, "{\"epochs\":5}");
    char *JB = api_post_job(port, "softmax", B, "{\"epochs\":5}");
    expect_job_state(port, JA, "succeeded", NULL);
    expect_job_state(port, JB, "succeeded", NULL);
    char path[512], url[256], body[256];

    /* A dataset file with a flipped byte: a job on it is refused, naming the file. */
    snprintf(path, sizeof path, "%s/state/datasets/%s.bin", dir, A);
    flip_byte(path, 100);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\"}", A);
    api_call c = api_req(port, "POST", "/v1/jobs", body);
    expect_error(&c, 500, "checksum mismatch");
    ck_assert_ptr_nonnull(strstr(c.r.body, A));
    api_done(&c);
    snprintf(url, sizeof url, "/v1/datasets/%s", A);
    expect_status(port, "GET", url, NULL, 200);
    /* A truncated one. */
    snprintf(path, sizeof path, "%s/state/datasets/%s.bin", dir, C);
    ck_assert_int_eq(truncate(path, 200), 0);
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\"}", C);
    c = api_req(port, "POST", "/v1/jobs", body);
    expect_error(&c, 500, "length mismatch");
    api_done(&c);

    /* A model file with a flipped byte: GET /model and predict say so; the other job's
     * model is intact. */
    snprintf(path, sizeof path, "%s/state/models/%s.bin", dir, JA);
    flip_byte(path, 50);
    snprintf(url, sizeof url, "/v1/jobs/%s/model", JA);
    c = api_req(port, "GET", url, NULL);
    expect_error(&c, 500, "checksum mismatch");
    api_done(&c);
    snprintf(url, sizeof url, "/v1/jobs/%s/predict", JA);
    c = api_req(port, "POST", url, PREDICT_BODY);
    expect_error(&c, 500, "checksum mismatch");
    api_done(&c);
    snprintf(url, sizeof url, "/v1/jobs/%s/predict", JB);
    expect_status(port, "POST", url, PREDICT_BODY, 200);

    /* A checkpoint corrupted while the daemon is down: at resume that job fails saying
     * why; B, its job and new jobs are fine. */
    char *JL = api_post_job(port, "softmax", B, "{\"epochs\":10000000}");
    double t0 = httpc_now();
    while (api_job_epoch(port, JL) < 20 && httpc_now() - t0 < 20)
        usleep(10000);
    api_term(&d);
    snprintf(url, sizeof url, "%s/state/checkpoints", dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s/%s.*.ckpt", url, JL);
    FILE *ls = popen(cmd, "r");
    ck_assert_ptr_nonnull(fgets(path, sizeof path, ls));
    pclose(ls);
    path[strcspn(path, "\n")] = '\0';
    flip_byte(path, 45);
    d = api_start(dir, "workers = 1\ncheckpoint_interval_s = 0\n", NULL, NULL);
    port = d.port;
    expect_job_state(port, JL, "failed", "checksum mismatch");
    snprintf(url, sizeof url, "/v1/jobs/%s/losses", JL);
    expect_status(port, "GET", url, NULL, 200);
    snprintf(url, sizeof url, "/v1/jobs/%s/predict", JB);
    expect_status(port, "POST", url, PREDICT_BODY, 200);
    char *JN = api_post_job(port, "softmax", B, "{\"epochs\":3}");
    expect_job_state(port, JN, "succeeded", NULL);
    healthy(port);
    api_stop(&d);
    free(dir), free(A), free(B), free(C), free(JA), free(JB), free(JL), free(JN);
}
END_TEST

/* A model update that fails after its file replaced the previous one (a locked or full
 * database) used to remove the file the row still referred to: GET /model of a running job
 * then failed until its next checkpoint. The failure is injected with a trigger. */
START_TEST(failed_model_update_keeps_the_file)
{
    char *dir = new_dir();
    td_store *s = NULL;
    td_error err = {{0}, {0}};
    ck_assert_int_eq(td_store_open(&s, dir, &err), TD_OK);
    td_dataset ds = faults_data(0);
    td_dataset_meta meta;
    ck_assert_int_eq(td_store_dataset_put(s, &ds, "d", &meta, &err), TD_OK);
    td_job_spec spec = {
        .model = "softmax", .dataset = meta.id, .hyperparameters = "{}", .epochs = 1};
    char id[TD_ID_MAX];
    ck_assert_int_eq(td_store_job_insert(s, &spec, id, &err), TD_OK);
    float p1[4] = {1, 1, 1, 1}, p2[4] = {2, 2, 2, 2};
    ck_assert_int_eq(td_store_model_put(s, id, "{\"v\":1}", p1, 4, &err), TD_OK);

    char path[300];
    snprintf(path, sizeof path, "%s/traind.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "CREATE TRIGGER fail_model BEFORE UPDATE OF model_params "
                                  "ON jobs BEGIN SELECT RAISE(ABORT, 'injected'); END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(td_store_model_put(s, id, "{\"v\":2}", p2, 4, &err), TD_EIO);
    ck_assert_ptr_nonnull(strstr(err.message, "injected"));
    char *mj = NULL;
    float *params = NULL;
    int64_t n = 0;
    ck_assert_msg(td_store_model_get(s, id, &mj, &params, &n, &err) == TD_OK, "%s", err.message);
    ck_assert_int_eq(n, 4);
    td_store_free(mj), td_store_free(params);

    /* A job without a model keeps none: the file of a failed first update goes. */
    char id2[TD_ID_MAX];
    ck_assert_int_eq(td_store_job_insert(s, &spec, id2, &err), TD_OK);
    ck_assert_int_eq(td_store_model_put(s, id2, "{}", p1, 4, &err), TD_EIO);
    snprintf(path, sizeof path, "%s/models/%s.bin", dir, id2);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(sqlite3_exec(db, "DROP TRIGGER fail_model", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    td_store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(dir);
}
END_TEST

typedef struct post_arg {
    int port;
    char *body;
    api_call result;
} post_arg;

static void *post_thread(void *p)
{
    post_arg *a = p;
    a->result = api_req(a->port, "POST", "/v1/datasets", a->body);
    return NULL;
}

START_TEST(sqlite_busy)
{
    char *dir = new_dir();
    httpc_daemon d = api_start(dir, "workers = 1\ncheckpoint_interval_s = 0\n", NULL, NULL);
    int port = d.port;
    char *A = post_dataset(port, 30, 3);
    char *JA = api_post_job(port, "softmax", A, "{\"epochs\":3}");
    expect_job_state(port, JA, "succeeded", NULL);
    char *JL = api_post_job(port, "softmax", A, "{\"epochs\":10000000}");
    while (api_job_epoch(port, JL) < 2)
        usleep(10000);

    char path[300];
    snprintf(path, sizeof path, "%s/state/traind.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    char *body = dataset_body(10, 3);

    /* Locked for 1 s (< the daemon's 5 s busy timeout): the write waits, then succeeds. */
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    post_arg a = {port, body, {0}};
    pthread_t th;
    pthread_create(&th, NULL, post_thread, &a);
    usleep(1000 * 1000);
    ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    pthread_join(th, NULL);
    ck_assert_msg(a.result.status == 201, "%d %s", a.result.status, a.result.r.body);
    api_done(&a.result);

    /* Locked for 11 s: the write and the running job's next epoch commit each wait out
     * the busy timeout (5 s, one after the other: one connection) and fail saying why;
     * /healthz answers meanwhile; the rest stays. */
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    double t0 = httpc_now();
    pthread_create(&th, NULL, post_thread, &a);
    for (int i = 0; i < 10; i++) {
        httpc_resp r;
        ck_assert_int_eq(httpc_request(port, "GET", "/healthz", NULL, NULL, 0, &r), 200);
        ck_assert_msg(r.elapsed_s < 1.0, "/healthz took %.2f s", r.elapsed_s);
        httpc_free(&r);
        usleep(200 * 1000);
    }
    pthread_join(th, NULL);
    double waited = httpc_now() - t0;
    expect_error(&a.result, 500, "database is locked");
    api_done(&a.result);
    ck_assert_msg(waited > 4.0, "the write gave up after %.1f s", waited);
    while (httpc_now() - t0 < 11.0)
        usleep(100 * 1000);
    ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    /* The job failed saying why (an epoch commit met the lock), or lost nothing (only a
     * checkpoint's model update did) and trains on; its model reads either way. */
    cJSON *j = wait_job(port, JL, 8);
    const char *m = api_str(cJSON_GetObjectItemCaseSensitive(j, "error"), "message");
    if (strcmp(api_str(j, "state"), "failed") == 0) {
        ck_assert_msg(m && strstr(m, "database is locked"), "failed: %s", m ? m : "(none)");
    } else {
        ck_assert_str_eq(api_str(j, "state"), "running");
        int e0 = api_job_epoch(port, JL);
        usleep(300 * 1000);
        ck_assert_int_gt(api_job_epoch(port, JL), e0);
        char cancel[160];
        snprintf(cancel, sizeof cancel, "/v1/jobs/%s/cancel", JL);
        expect_status(port, "POST", cancel, NULL, 202);
        expect_job_state(port, JL, "cancelled", NULL);
    }
    cJSON_Delete(j);
    char url[160];
    snprintf(url, sizeof url, "/v1/jobs/%s/model", JL);
    expect_status(port, "GET", url, NULL, 200);
    snprintf(url, sizeof url, "/v1/jobs/%s/predict", JA);
    expect_status(port, "POST", url, PREDICT_BODY, 200);
    free(api_post_id(port, "/v1/datasets", body, 201));
    char *JN = api_post_job(port, "softmax", A, "{\"epochs\":3}");
    expect_job_state(port, JN, "succeeded", NULL);
    healthy(port);
    api_stop(&d);
    free(body), free(dir), free(A), free(JA), free(JL), free(JN);
}
END_TEST

/* ======================================================================== disk ==== */

/* A private mount namespace for this test process (and the daemons it starts), so the
 * mounts vanish with it; 0 when mounting is refused (not root, no CAP_SYS_ADMIN). */
static int private_mounts(const char *what)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr,
                "faults: %s skipped: cannot make a mount namespace (%s); run as root "
                "for this case\n",
                what, strerror(errno));
        return 0;
    }
    return 1;
}

static int mount_tmpfs(const char *path, const char *size, const char *what)
{
    mkdir(path, 0750);
    char opts[32];
    snprintf(opts, sizeof opts, "size=%s", size);
    if (mount("tmpfs", path, "tmpfs", 0, opts) != 0) {
        fprintf(stderr, "faults: %s skipped: mount -t tmpfs refused (%s)\n", what, strerror(errno));
        return 0;
    }
    return 1;
}

/* Writes zeros to path until the filesystem refuses: full to its last page. */
static void fill_up(const char *path)
{
    static const char zeros[4096];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    while (write(fd, zeros, sizeof zeros) >= 0)
        ;
    ck_assert_msg(errno == ENOSPC, "filling %s: %s", path, strerror(errno));
    close(fd);
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* User + system CPU seconds of a process, every thread (/proc/<pid>/stat fields 14, 15). */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    unsigned long ut = 0, st = 0;
    const char *p = strrchr(buf, ')'); /* after the command name, which may hold spaces */
    ck_assert_msg(
        p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2,
        "%s: %s", path, buf);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Asserts a 507 insufficient_storage answer whose message names the refused write. */
static void expect_full(api_call *c)
{
    ck_assert_msg(c->status == 507, "status %d, want 507: %s", c->status,
                  c->r.body ? c->r.body : "");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->json, "error");
    const char *code = api_str(e, "code"), *m = api_str(e, "message");
    ck_assert_msg(code && strcmp(code, "insufficient_storage") == 0, "%s", c->r.body);
    ck_assert_msg(m && (strstr(m, "No space left on device") || strstr(m, "disk is full")),
                  "the message does not name the refused write: %s", c->r.body);
}

/* Rows of the history table in dir/traind.db, read with a connection of our own. */
static int history_rows(const char *dir)
{
    char path[300];
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    snprintf(path, sizeof path, "%s/traind.db", dir);
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM history", -1, &q, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int n = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

/* The reserve for real, at the store: on a tmpfs full to its last page, with the WAL
 * checkpointed to nothing, a delete is refused (SQLite cannot append to its WAL:
 * TD_ENOSPACE); the reserve released, it commits, and so does the delete of a job whose
 * history (~2.5 MB) is larger than the reserve (1 MiB): the history goes in batches.
 * Space freed from outside ends the full state: the reserve is whole again. */
START_TEST(reserve_makes_room_for_deletes)
{
    if (!private_mounts("reserve")) return;
    char *dir = new_dir(), path[300];
    if (!mount_tmpfs(dir, "8m", "reserve")) return;
    td_error err = {{0}, {0}};
    td_store *s = NULL;
    td_reserve *r = NULL;
    ck_assert_int_eq(td_store_open(&s, dir, &err), TD_OK);
    ck_assert_int_eq(td_reserve_open(&r, dir, 1 << 20, &err), TD_OK);
    snprintf(path, sizeof path, "%s/reserve.bin", dir);
    ck_assert_int_eq(file_size(path), 1 << 20);
    ck_assert_int_eq(td_reserve_check(r, &err), TD_OK);

    /* A finished job with 20,000 epochs of history. */
    td_dataset ds = faults_data(0);
    td_dataset_meta small;
    ck_assert_int_eq(td_store_dataset_put(s, &ds, "small", &small, &err), TD_OK);
    td_job_spec spec = {
        .model = "softmax", .dataset = small.id, .hyperparameters = "{}", .epochs = 20000};
    char job[TD_ID_MAX];
    ck_assert_int_eq(td_store_job_insert(s, &spec, job, &err), TD_OK);
    const char *cols[9] = {"epoch", "a", "b", "c", "d", "e", "f", "g", "h"};
    ck_assert_int_eq(td_store_history_columns_set(s, job, cols, 9, &err), TD_OK);
    /* committed as a running job's tail commits them: in batches (here of 1,000) */
    int64_t epochs[1000];
    static double recs[1000 * 9];
    for (int e0 = 0; e0 < 20000; e0 += 1000) {
        for (int i = 0; i < 1000; i++)
            epochs[i] = e0 + i + 1, recs[i * 9] = (double)(e0 + i + 1);
        td_history_batch b = {.n_cols = 9,
                              .n_rows = 1000,
                              .epochs = epochs,
                              .records = recs,
                              .first = -1,
                              .best = -1,
                              .prev_best = -1};
        ck_assert_int_eq(td_store_history_commit(s, job, &b, &err), TD_OK);
    }
    ck_assert_int_eq(td_store_job_finish(s, job, TD_JOB_SUCCEEDED, NULL, NULL, &err), TD_OK);

    /* Full: datasets of 160 KB until one is refused, the WAL emptied, the rest filled. */
    sqlite3 *db = NULL;
    snprintf(path, sizeof path, "%s/traind.db", dir);
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    static float X[400 * 100];
    td_dataset big = {.N = 400, .D = 100, .X = X};
    td_dataset_meta m[64];
    int n = 0;
    td_status st;
    while ((st = td_store_dataset_put(s, &big, NULL, &m[n], &err)) == TD_OK && n < 63)
        n++;
    ck_assert_msg(st == TD_ENOSPACE && n > 0, "%d datasets, then %s: %s", n, td_status_code(st),
                  err.message);
    ck_assert_int_eq(td_reserve_note(r, st, &err), TD_ENOSPACE);
    snprintf(path, sizeof path, "%s/filler", dir);
    fill_up(path);
    ck_assert_int_eq(td_reserve_check(r, &err), TD_ENOSPACE);
    ck_assert_msg(strstr(err.message, "state_dir is full"), "%s", err.message);

    /* The delete needs the reserve, and gets it. */
    st = td_store_dataset_delete(s, m[0].id, &err);
    ck_assert_msg(st == TD_ENOSPACE && strstr(err.message, "disk is full"), "%s: %s",
                  td_status_code(st), err.message);
    ck_assert_int_eq(td_reserve_release(r, st, &err), 1);
    snprintf(path, sizeof path, "%s/reserve.bin", dir);
    ck_assert_int_eq(file_size(path), 0);
    ck_assert_int_eq(td_reserve_release(r, st, &err), 0); /* nothing left to release */
    ck_assert_msg(td_store_dataset_delete(s, m[0].id, &err) == TD_OK, "%s", err.message);
    ck_assert_msg(td_store_job_delete(s, job, &err) == TD_OK, "%s", err.message);
    td_history h;
    ck_assert_int_eq(td_store_history_get(s, job, -1, &h, &err), TD_ENOTFOUND);
    ck_assert_int_eq(history_rows(dir), 0); /* all of it went, not just the job's row */
    ck_assert_int_eq(td_reserve_check(r, &err), TD_ENOSPACE); /* 1 MiB + 160 KB: not room */

    /* Space back (the other datasets deleted, the filler removed): the reserve is whole
     * again, new data goes in. */
    for (int i = 1; i < n; i++)
        ck_assert_int_eq(td_store_dataset_delete(s, m[i].id, &err), TD_OK);
    snprintf(path, sizeof path, "%s/filler", dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(td_reserve_check(r, &err), TD_OK);
    snprintf(path, sizeof path, "%s/reserve.bin", dir);
    ck_assert_int_eq(file_size(path), 1 << 20);
    ck_assert_msg(td_store_dataset_put(s, &ds, "after", NULL, &err) == TD_OK, "%s", err.message);

    /* The history a delete left behind (here: rows of a job that is gone) goes at open. */
    td_reserve_close(r);
    td_store_close(s);
    snprintf(path, sizeof path, "%s/traind.db", dir);
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db,
                                  "INSERT INTO history VALUES ('job_gone', 1, x'00'),"
                                  "('job_gone', 2, x'00')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    ck_assert_int_eq(td_store_open(&s, dir, &err), TD_OK);
    sqlite3_close(db);
    ck_assert_int_eq(history_rows(dir), 0);
    td_store_close(s);
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    free(dir);
}
END_TEST

/* A full state_dir, end to end: a write refused for lack of space is a 507
 * insufficient_storage naming it; new work is refused up front and /readyz is 503 with
 * the reason; the running job whose epochs cannot be written fails cleanly, the queued
 * one waits, and no worker spins; DELETE of a dataset and of a job work while full; once
 * space is freed, the queued job runs, new work is accepted and /readyz is 200 again,
 * without a restart. */
START_TEST(full_disk)
{
    if (!private_mounts("full disk")) return;
    char *dir = new_dir(), state[300], path[400];
    snprintf(state, sizeof state, "%s/state", dir);
    if (!mount_tmpfs(state, "16m", "full disk")) return;
    httpc_daemon d = api_start(dir,
                               "workers = 1\ncheckpoint_interval_s = 0\n"
                               "disk_reserve_mb = 1\n",
                               NULL, NULL);
    int port = d.port;
    snprintf(path, sizeof path, "%s/reserve.bin", state);
    ck_assert_int_eq(file_size(path), 1 << 20);
    char *A = post_dataset(port, 30, 3), *C = post_dataset(port, 30, 3);
    char *JA = api_post_job(port, "softmax", A, "{\"epochs\":300}");
    expect_job_state(port, JA, "succeeded", NULL);
    char *JL = api_post_job(port, "softmax", A, "{\"epochs\":10000000}"); /* writes every epoch */
    while (api_job_epoch(port, JL) < 2)
        usleep(10000);
    char *JQ = api_post_job(port, "softmax", A, "{\"epochs\":3}"); /* queued behind it */

    /* Fill it: datasets of ~300 KB until one is refused. */
    char *big = dataset_body(1500, 50);
    char *ids[64];
    int n = 0, refused = 0;
    while (n < 64 && !refused) {
        api_call c = api_req(port, "POST", "/v1/datasets", big);
        if (c.status == 201)
            ids[n++] = strdup(api_str(c.json, "id"));
        else
            expect_full(&c), refused = 1;
        api_done(&c);
    }
    ck_assert_msg(refused, "16 MB took %d datasets of 300 KB", n);
    /* and to its last page */
    char filler[400];
    snprintf(filler, sizeof filler, "%s/filler", state);
    fill_up(filler);

    /* Full: new work is refused up front, /readyz says why; reads work. */
    api_call c = api_req(port, "POST", "/v1/datasets", big);
    expect_full(&c);
    ck_assert_ptr_nonnull(
        strstr(api_str(cJSON_GetObjectItem(c.json, "error"), "message"), "state_dir is full"));
    api_done(&c);
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"softmax\",\"dataset\":\"%s\"}", A);
    c = api_req(port, "POST", "/v1/jobs", body);
    expect_full(&c);
    api_done(&c);
    c = api_req(port, "GET", "/readyz", NULL);
    ck_assert_msg(c.status == 503, "/readyz %d on a full disk: %s", c.status, c.r.body);
    ck_assert_str_eq(api_str(c.json, "status"), "not_ready");
    ck_assert_msg(strstr(api_str(c.json, "reason"), "state_dir is full"), "%s", c.r.body);
    ck_assert_str_eq(api_str(cJSON_GetObjectItem(c.json, "error"), "code"), "not_ready");
    api_done(&c);
    expect_status(port, "GET", "/healthz", NULL, 200);
    char url[160];
    snprintf(url, sizeof url, "/v1/jobs/%s/predict", JA);
    expect_status(port, "POST", url, PREDICT_BODY, 200);
    c = api_req(port, "GET", "/metrics", NULL);
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_state_dir_full 1\n"));
    api_done(&c);

    /* The running job cannot write its epochs: after its retries it fails, saying why. */
    cJSON *j = wait_job(port, JL, 30);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    ck_assert_msg(strcmp(api_str(j, "state"), "failed") == 0 && api_str(e, "code") &&
                      strcmp(api_str(e, "code"), "insufficient_storage") == 0,
                  "job on a full disk: %s %s", api_str(j, "state"), api_str(e, "message"));
    cJSON_Delete(j);
    /* The queued job does not start (to fail) while full: it waits for room. */
    usleep(300 * 1000);
    snprintf(url, sizeof url, "/v1/jobs/%s", JQ);
    c = api_req(port, "GET", url, NULL);
    ck_assert_str_eq(api_str(c.json, "state"), "queued");
    api_done(&c);
    /* No worker spins: idle, the daemon uses no CPU. */
    double cpu0 = cpu_seconds(d.pid), t0 = httpc_now();
    usleep(1500 * 1000);
    double used = cpu_seconds(d.pid) - cpu0, wall = httpc_now() - t0;
    ck_assert_msg(used < 0.1, "the idle daemon used %.2f s of CPU in %.2f s", used, wall);

    /* DELETE works while full: a dataset, a finished job, the failed one. */
    snprintf(url, sizeof url, "/v1/datasets/%s", C);
    expect_status(port, "DELETE", url, NULL, 204);
    snprintf(url, sizeof url, "/v1/jobs/%s", JA);
    expect_status(port, "DELETE", url, NULL, 204);
    expect_status(port, "GET", url, NULL, 404);
    snprintf(url, sizeof url, "/v1/jobs/%s", JL);
    expect_status(port, "DELETE", url, NULL, 204);

    /* Space freed: without a restart, /readyz is 200, the reserve whole, new work runs. */
    ck_assert_int_eq(unlink(filler), 0);
    for (int i = 0; i < n; i++) {
        snprintf(url, sizeof url, "/v1/datasets/%s", ids[i]);
        expect_status(port, "DELETE", url, NULL, 204);
        free(ids[i]);
    }
    healthy(port);
    ck_assert_int_eq(file_size(path), 1 << 20);
    expect_job_state(port, JQ, "succeeded", NULL);
    c = api_req(port, "GET", "/metrics", NULL);
    ck_assert_ptr_nonnull(strstr(c.r.body, "traind_state_dir_full 0\n"));
    api_done(&c);
    char *B = post_dataset(port, 30, 3);
    char *JB = api_post_job(port, "softmax", B, "{\"epochs\":3}");
    expect_job_state(port, JB, "succeeded", NULL);
    api_term(&d);
    /* And all of it after a restart. */
    d = api_start(dir, "workers = 1\ndisk_reserve_mb = 1\n", NULL, NULL);
    port = d.port;
    snprintf(url, sizeof url, "/v1/jobs/%s/predict", JB);
    expect_status(port, "POST", url, PREDICT_BODY, 200);
    snprintf(url, sizeof url, "/v1/jobs/%s", JL);
    expect_status(port, "GET", url, NULL, 404);
    healthy(port);
    api_term(&d);
    /* A start on a disk full to its last page (the clean stop removed SQLite's WAL and
     * -shm, which the open must create): it starts on the reserve, not ready, and the
     * DELETE works. */
    fill_up(filler);
    d = api_start(dir, "workers = 1\ndisk_reserve_mb = 1\n", NULL, NULL);
    port = d.port;
    c = api_req(port, "GET", "/readyz", NULL);
    ck_assert_msg(c.status == 503 && strstr(api_str(c.json, "reason"), "state_dir is full"),
                  "%d %s", c.status, c.r.body);
    api_done(&c);
    snprintf(url, sizeof url, "/v1/datasets/%s", B);
    expect_status(port, "DELETE", url, NULL, 204);
    char *log = httpc_daemon_log(&d), *run = log; /* the log of every start: this one's */
    for (char *p = log; (p = strstr(p, " starting: ")); p++)
        run = p;
    ck_assert_msg(strstr(run, "released the 1 MiB space reserve"), "%s", run);
    free(log);
    ck_assert_int_eq(unlink(filler), 0);
    healthy(port);
    api_term(&d);
    umount2(state, MNT_DETACH);
    httpc_daemon_cleanup(&d);
    free(big), free(dir), free(A), free(B), free(C), free(JA), free(JB), free(JL), free(JQ);
}
END_TEST

static void bind_ro(const char *path)
{
    ck_assert_msg(mount(path, path, NULL, MS_BIND, NULL) == 0, "bind %s: %s", path,
                  strerror(errno));
    ck_assert_msg(mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) == 0,
                  "remount %s read-only: %s", path, strerror(errno));
}

START_TEST(read_only_state)
{
    if (!private_mounts("read-only state")) return;
    char *dir = new_dir(), state[300], sub[3][360];
    snprintf(state, sizeof state, "%s/state", dir);
    if (!mount_tmpfs(state, "16m", "read-only state")) return;
    httpc_daemon d = api_start(dir,
                               "workers = 1\ncheckpoint_interval_s = 0\n"
                               "disk_reserve_mb = 1\n",
                               NULL, NULL);
    int port = d.port;
    char *A = post_dataset(port, 30, 3);
    char *JA = api_post_job(port, "softmax", A, "{\"epochs\":5}");
    expect_job_state(port, JA, "succeeded", NULL);

    /* While it runs: the files' directories become read-only (the database, open for
     * writing, cannot be remounted under it). */
    const char *names[3] = {"datasets", "checkpoints", "models"};
    for (int i = 0; i < 3; i++) {
        snprintf(sub[i], sizeof sub[i], "%s/%s", state, names[i]);
        bind_ro(sub[i]);
    }
    char *small = dataset_body(10, 3);
    api_call c = api_req(port, "POST", "/v1/datasets", small);
    expect_error(&c, 500, "Read-only file system");
    api_done(&c);
    char *JR = api_post_job(port, "softmax", A, "{\"epochs\":50}");
    expect_job_state(port, JR, "failed", "Read-only file system");
    char url[160];
    snprintf(url, sizeof url, "/v1/jobs/%s/predict", JA);
    expect_status(port, "POST", url, PREDICT_BODY, 200);
    healthy(port);
    /* A job's datasets are mapped (store/dscache.h) until its worker lets go, just after
     * its end is recorded: a mapped file keeps the mount busy a moment longer. */
    for (int i = 0; i < 3; i++) {
        int rc;
        double t0 = httpc_now();
        while ((rc = umount2(sub[i], 0)) != 0 && errno == EBUSY && httpc_now() - t0 < 10)
            usleep(20000);
        ck_assert_msg(rc == 0, "umount %s: %s", sub[i], strerror(errno));
    }
    free(api_post_id(port, "/v1/datasets", small, 201));
    api_term(&d);

    /* At start-up: refused with the reason, exit code 1; fine again once writable. */
    ck_assert_int_eq(mount(NULL, state, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    ck_assert_int_lt(api_start_any(&d, dir,
                                   "workers = 1\ncheckpoint_interval_s = 0\n"
                                   "disk_reserve_mb = 1\n",
                                   NULL, NULL),
                     0);
    ck_assert_int_eq(httpc_daemon_stop(&d, 0, 10), 1);
    char *log = httpc_daemon_log(&d);
    ck_assert_msg(strstr(log, "cannot start") && strstr(log, "Read-only file system"), "%s", log);
    free(log);
    ck_assert_int_eq(mount(NULL, state, NULL, MS_REMOUNT, NULL), 0);
    d = api_start(dir, "workers = 1\ndisk_reserve_mb = 1\n", NULL, NULL);
    snprintf(url, sizeof url, "/v1/jobs/%s/predict", JA);
    expect_status(d.port, "POST", url, PREDICT_BODY, 200);
    expect_job_state(d.port, JR, "failed", "Read-only file system");
    api_term(&d);
    umount2(state, MNT_DETACH);
    httpc_daemon_cleanup(&d);
    free(small), free(dir), free(A), free(JA), free(JR);
}
END_TEST

Suite *suite_faults(void)
{
    Suite *s = suite_create("faults");
    TCase *alloc = tcase_create("alloc");
    tcase_set_timeout(alloc, 120);
    tcase_add_test(alloc, json_nth_allocation_fails);
    suite_add_tcase(s, alloc);
    TCase *files = tcase_create("files");
    tcase_set_timeout(files, 120);
    tcase_add_test(files, corrupted_files);
    tcase_add_test(files, failed_model_update_keeps_the_file);
    tcase_add_test(files, sqlite_busy);
    suite_add_tcase(s, files);
    TCase *disk = tcase_create("disk");
    tcase_set_timeout(disk, 120);
    tcase_add_test(disk, reserve_makes_room_for_deletes);
    tcase_add_test(disk, full_disk);
    tcase_add_test(disk, read_only_state);
    suite_add_tcase(s, disk);
    return s;
}
