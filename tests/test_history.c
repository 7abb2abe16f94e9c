/* test_history.c — bounded, batched history and coalesced event streams (issue 10.6,
 * 10.7, 13.1, 13.4): the store's thinning and the tail's merge directly, then a real
 * daemon: the bound keeps first, best and latest; GET /losses pages and downsamples;
 * /events coalesces, keeps its order, thins by epochs, resumes after Last-Event-ID;
 * streams that never read cost no memory; a running job's /losses includes its tail; and
 * a kill -9 with a thinned history still resumes exactly. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "jobs/tail.h"
#include "store/store.h"
#include "storetest.h"
#include "testutil.h"

/* ---- store and tail, directly --------------------------------------------------------- */

/* A store in a fresh directory with one running job whose columns are epoch, loss. */
static td_store *store_with_job(char id[TD_ID_MAX])
{
    mk_tmpdir();
    td_store *s = NULL;
    EXPECT(TD_OK, td_store_open(&s, g_dir, E));
    float X[8] = {0, 1, 1, 0, 1, 1, 0, 0};
    int32_t y[4] = {0, 1, 1, 0};
    td_dataset ds = {.N = 4, .D = 2, .X = X, .y = y, .y_cols = 1};
    td_dataset_meta m;
    EXPECT(TD_OK, td_store_dataset_put(s, &ds, "h", &m, E));
    td_job_spec spec = {
        .model = "softmax", .dataset = m.id, .hyperparameters = "{}", .epochs = 100000};
    EXPECT(TD_OK, td_store_job_insert(s, &spec, id, E));
    EXPECT(TD_OK, td_store_job_start(s, id, NULL, E));
    static const char *const cols[] = {"epoch", "loss"};
    EXPECT(TD_OK, td_store_history_columns_set(s, id, cols, 2, E));
    return s;
}

static void store_done(td_store *s)
{
    td_store_close(s);
    rm_tmpdir();
}

/* A loss with one clear minimum at epoch 3001 (odd: never on a stride) and plateaus. */
static double loss_at(int64_t e) { return 1.0 + fabs((double)(e - 3001)) / 1000.0; }

START_TEST(store_bound_thins_keeping_first_best_latest)
{
    char id[TD_ID_MAX];
    td_store *s = store_with_job(id);
    const int64_t M = 100, last = 5000;
    int64_t *ep = malloc(sizeof *ep * 700);
    double *rec = malloc(sizeof *rec * 2 * 700);
    int64_t e = 0, best = -1, prev_best = -1;
    unsigned seed = 12345;
    while (e < last) {
        seed = seed * 1103515245u + 12345u;
        int64_t n = 1 + (seed >> 8) % 600; /* batches of 1..600 records */
        if (e + n > last) n = last - e;
        for (int64_t i = 0; i < n; i++) {
            ep[i] = ++e;
            rec[2 * i] = (double)e, rec[2 * i + 1] = loss_at(e);
            if (best < 0 || loss_at(e) < loss_at(best)) best = e;
        }
        td_history_batch b = {.n_cols = 2,
                              .n_rows = n,
                              .epochs = ep,
                              .records = rec,
                              .max_rows = M,
                              .first = 1,
                              .best = best,
                              .prev_best = prev_best};
        EXPECT(TD_OK, td_store_history_commit(s, id, &b, E));
        prev_best = best;
        /* After every batch: within the bound; exactly the stride's multiples plus the
         * first, the best and the latest; values intact. */
        td_history h;
        EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
        int64_t S = td_history_stride(e, M);
        ck_assert_msg(h.n_rows <= M, "%lld rows stored at epoch %lld, bound %lld",
                      (long long)h.n_rows, (long long)e, (long long)M);
        int64_t want =
            e / S + (S > 1 && 1 % S) + (best % S != 0 && best != 1) + (e % S != 0 && e != best);
        ck_assert_int_eq(h.n_rows, want);
        ck_assert_int_eq(h.epochs[0], 1);
        ck_assert_int_eq(h.epochs[h.n_rows - 1], e);
        int has_best = 0;
        for (int64_t i = 0; i < h.n_rows; i++) {
            int64_t k = h.epochs[i];
            has_best |= k == best;
            ck_assert_msg(k % S == 0 || k == 1 || k == best || k == e,
                          "epoch %lld kept at stride %lld", (long long)k, (long long)S);
            ck_assert(h.cols[(size_t)h.n_rows + (size_t)i] == loss_at(k));
        }
        ck_assert_msg(has_best, "best epoch %lld lost at epoch %lld", (long long)best,
                      (long long)e);
        td_history_fini(&h);
    }
    ck_assert_int_eq(best, 3001);
    ck_assert_int_eq(td_history_stride(last, M), 64); /* 5000/64 + 3 <= 100 < 5000/32 + 3 */
    td_job_row row;
    EXPECT(TD_OK, td_store_job_get(s, id, &row, E));
    ck_assert_int_eq(row.epoch, last);
    td_job_row_fini(&row);
    /* A lower bound after a restart: the first batch thins the whole history to it. */
    ep[0] = last + 1, rec[0] = (double)(last + 1), rec[1] = loss_at(last + 1);
    td_history_batch again = {.n_cols = 2,
                              .n_rows = 1,
                              .epochs = ep,
                              .records = rec,
                              .max_rows = 20,
                              .first = 1,
                              .best = best,
                              .prev_best = best,
                              .full_pass = 1};
    EXPECT(TD_OK, td_store_history_commit(s, id, &again, E));
    td_history h;
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(td_history_stride(last + 1, 20), 512); /* 5001/512 + 3 <= 20 */
    ck_assert_int_eq(h.n_rows, 5001 / 512 + 3);
    td_history_fini(&h);
    /* A record count that does not match the columns is refused. */
    td_history_batch bad = {.n_cols = 3, .n_rows = 1, .epochs = ep, .records = rec};
    EXPECT(TD_EINVAL, td_store_history_commit(s, id, &bad, E));
    free(ep), free(rec);
    store_done(s);
}
END_TEST

START_TEST(tail_merges_pending_records)
{
    char id[TD_ID_MAX];
    td_store *s = store_with_job(id);
    static const char *const cols[] = {"epoch", "loss"};
    td_tail *t = NULL;
    EXPECT(TD_OK, td_tail_create(&t, s, id, cols, 2, 100000, 0, 0, E));
    double r[2];
    for (int e = 1; e <= 10; e++) {
        r[0] = e, r[1] = 1.0 / e;
        td_tail_append(t, e, r);
    }
    /* Nothing in the store yet; the merged history has all ten. */
    td_history h;
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 0);
    td_history_fini(&h);
    EXPECT(TD_OK, td_tail_history_get(t, s, id, -1, 0, &h, E));
    ck_assert_int_eq(h.n_rows, 10);
    ck_assert(h.cols[10 + 9] == 0.1);
    td_history_fini(&h);
    ck_assert(!td_tail_flush_due(t, 0)); /* fewer than a batch, and no time passed */
    ck_assert(td_tail_flush_due(t, 1e12));
    EXPECT(TD_OK, td_tail_flush(t, "{\"loss\":0.1}", 0, E));
    for (int e = 11; e <= 15; e++) {
        r[0] = e, r[1] = 1.0 / e;
        td_tail_append(t, e, r);
    }
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 10);
    td_history_fini(&h);
    /* store 1..10 + tail 11..15, paged */
    EXPECT(TD_OK, td_tail_history_get(t, s, id, -1, 0, &h, E));
    ck_assert_int_eq(h.n_rows, 15);
    for (int i = 0; i < 15; i++)
        ck_assert_int_eq(h.epochs[i], i + 1);
    td_history_fini(&h);
    EXPECT(TD_OK, td_tail_history_get(t, s, id, 8, 4, &h, E));
    ck_assert_int_eq(h.n_rows, 4);
    ck_assert_int_eq(h.epochs[0], 9);
    ck_assert_int_eq(h.epochs[3], 12);
    ck_assert(h.cols[4 + 3] == 1.0 / 12);
    td_history_fini(&h);
    EXPECT(TD_OK, td_tail_history_get(t, s, id, 12, 0, &h, E));
    ck_assert_int_eq(h.n_rows, 3);
    ck_assert_int_eq(h.epochs[0], 13);
    /* downsample: first and last kept, evenly spaced */
    td_history_fini(&h);
    EXPECT(TD_OK, td_tail_history_get(t, s, id, -1, 0, &h, E));
    td_history_downsample(&h, 4);
    ck_assert_int_eq(h.n_rows, 4);
    int64_t want[4] = {1, 6, 10, 15};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(h.epochs[i], want[i]);
        ck_assert(h.cols[4 + i] == 1.0 / (double)want[i]);
        ck_assert(h.cols[i] == (double)want[i]);
    }
    td_history_fini(&h);
    /* readers' view */
    td_tail_view v;
    td_tail_view_get(t, &v);
    ck_assert_int_eq(v.lo, 1);
    ck_assert_int_eq(v.hi, 15);
    ck_assert_int_eq(v.committed, 10);
    ck_assert(!v.closed);
    ck_assert(td_tail_row(t, 15, r) && r[1] == 1.0 / 15);
    ck_assert(!td_tail_row(t, 16, r));
    td_tail_close(t);
    td_tail_wait(t, 100, 10000, &v); /* returns at once: closed */
    ck_assert(v.closed);
    td_tail_release(t);
    store_done(s);
}
END_TEST

static int stored(td_store *s, const char *id, int64_t epoch)
{
    td_history h;
    EXPECT(TD_OK, td_store_history_page(s, id, epoch - 1, 1, &h, E));
    int yes = h.n_rows == 1 && h.epochs[0] == epoch;
    td_history_fini(&h);
    return yes;
}

/* Best = the lowest val_loss among the records that have one, else the lowest loss; it
 * survives thinning, and a tail made for a resumed job finds it in the store again. */
START_TEST(tail_best_prefers_val_loss)
{
    char id[TD_ID_MAX];
    td_store *s = store_with_job(id);
    static const char *const cols[] = {"epoch", "loss", "val_loss"};
    EXPECT(TD_OK, td_store_history_columns_set(s, id, cols, 3, E));
    td_tail *t = NULL;
    EXPECT(TD_OK, td_tail_create(&t, s, id, cols, 3, 1000, 0, 10, E));
    for (int e = 1; e <= 100; e++) {
        /* epochs 1..9 have no val_loss and the lowest loss of all; later ones have one,
         * lowest at 37; loss keeps falling (its minimum is the latest) */
        double r[3] = {e, e < 10 ? -1.0 : 1.0 / e, e < 10 ? NAN : fabs(e - 37.0)};
        td_tail_append(t, e, r);
        if (e % 7 == 0) EXPECT(TD_OK, td_tail_flush(t, NULL, 0, E));
    }
    EXPECT(TD_OK, td_tail_flush(t, NULL, 0, E));
    td_tail_close(t);
    td_tail_release(t);
    /* stride 16 at epoch 100 (100/16 + 3 <= 10): 16..96, first, best 37, latest 100 */
    td_history h;
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_eq(h.n_rows, 6 + 3);
    td_history_fini(&h);
    ck_assert(stored(s, id, 1) && stored(s, id, 37) && stored(s, id, 100));
    ck_assert(!stored(s, id, 5) && !stored(s, id, 99));
    /* resumed at 100: the new tail reads first and best back and keeps them */
    EXPECT(TD_OK, td_tail_create(&t, s, id, cols, 3, 1000, 100, 10, E));
    for (int e = 101; e <= 200; e++) {
        double r[3] = {e, 1.0 / e, 100.0 + e};
        td_tail_append(t, e, r);
    }
    EXPECT(TD_OK, td_tail_flush(t, NULL, 0, E));
    td_tail_release(t);
    ck_assert(stored(s, id, 1) && stored(s, id, 37) && stored(s, id, 200));
    EXPECT(TD_OK, td_store_history_get(s, id, -1, &h, E));
    ck_assert_int_le(h.n_rows, 10);
    for (int64_t i = 0; i < h.n_rows; i++) /* stride 32 at 200 */
        ck_assert(h.epochs[i] % 32 == 0 || h.epochs[i] == 1 || h.epochs[i] == 37 ||
                  h.epochs[i] == 200);
    td_history_fini(&h);
    store_done(s);
}
END_TEST

/* ---- a real daemon -------------------------------------------------------------------- */

/* 40 rows of 3 features, 2 classes, from a fixed sequence; returns the dataset id. */
static char *post_dataset(int port)
{
    char body[8192], *p = body;
    unsigned seed = 7;
    p += sprintf(p, "{\"X\":[");
    for (int i = 0; i < 40; i++) {
        p += sprintf(p, "%s[", i ? "," : "");
        for (int j = 0; j < 3; j++) {
            seed = seed * 1103515245u + 12345u;
            p += sprintf(p, "%s%.3f", j ? "," : "", ((seed >> 8) % 2000) / 1000.0 - 1.0);
        }
        p += sprintf(p, "]");
    }
    p += sprintf(p, "],\"y\":[");
    for (int i = 0; i < 40; i++)
        p += sprintf(p, "%s%d", i ? "," : "", (i * 7 + i / 3) % 2);
    sprintf(p, "]}");
    return api_post_id(port, "/v1/datasets", body, 201);
}

/* The job's state and epoch (from GET /v1/jobs/{id}). */
static void job_state(int port, const char *id, char state[32], int64_t *epoch)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    api_call c = api_req(port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    snprintf(state, 32, "%s", cJSON_GetObjectItem(c.json, "state")->valuestring);
    *epoch =
        (int64_t)cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "progress"), "epoch")->valuedouble;
    api_done(&c);
}

static void wait_epoch(int port, const char *id, int64_t at_least, double timeout_s)
{
    char st[32];
    int64_t e = 0;
    double t0 = httpc_now();
    while (job_state(port, id, st, &e), e < at_least) {
        ck_assert_msg(httpc_now() - t0 < timeout_s, "job %s at epoch %lld", id, (long long)e);
        usleep(10000);
    }
}

static api_call get(int port, const char *fmt, const char *id, const char *query)
{
    char path[256];
    int n = snprintf(path, sizeof path, fmt, id);
    snprintf(path + n, sizeof path - (size_t)n, "%s", query ? query : "");
    return api_req(port, "GET", path, NULL);
}

static int64_t count_of(const char *body, const char *needle)
{
    int64_t n = 0;
    for (const char *p = body; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* The epoch column of a /losses answer. */
static const cJSON *epochs_of(const api_call *c)
{
    const cJSON *e = cJSON_GetObjectItem(c->json, "epoch");
    ck_assert_msg(cJSON_IsArray(e), "no epoch column: %.200s", c->r.body);
    return e;
}

static int64_t at(const cJSON *arr, int i)
{
    return (int64_t)cJSON_GetArrayItem(arr, i)->valuedouble;
}

/* Mini-batch SGD: a noisy loss whose best epoch lies in the middle of the run. */
#define NOISY_HP "{\"epochs\":10000,\"lr\":0.5,\"batch_size\":4,\"seed\":12}"

START_TEST(bound_keeps_first_best_latest)
{
    /* The whole history, unbounded... */
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    char *ds = post_dataset(d.port);
    char *job = api_post_job(d.port, "softmax", ds, NOISY_HP);
    api_wait_state(d.port, job, "succeeded", 60);
    api_call full = get(d.port, "/v1/jobs/%s/losses", job, NULL);
    ck_assert_int_eq(full.status, 200);
    const cJSON *fe = epochs_of(&full), *fl = cJSON_GetObjectItem(full.json, "loss");
    ck_assert_int_eq(cJSON_GetArraySize(fe), 10000);
    int best = 0;
    for (int i = 1; i < 10000; i++)
        if (cJSON_GetArrayItem(fl, i)->valuedouble < cJSON_GetArrayItem(fl, best)->valuedouble)
            best = i;
    int64_t best_epoch = best + 1;
    api_stop(&d);
    free(ds), free(job);

    /* ...and the same job under history_max_rows = 500: stride 32 (10000/32 + 3 <= 500). */
    d = api_start(NULL, "history_max_rows = 500\n", NULL, NULL);
    ds = post_dataset(d.port);
    job = api_post_job(d.port, "softmax", ds, NOISY_HP);
    api_wait_state(d.port, job, "succeeded", 60);
    api_call c = get(d.port, "/v1/jobs/%s/losses", job, NULL);
    ck_assert_int_eq(c.status, 200);
    const cJSON *ep = epochs_of(&c), *loss = cJSON_GetObjectItem(c.json, "loss");
    int n = cJSON_GetArraySize(ep);
    ck_assert_msg(n <= 500, "%d rows stored, bound 500", n);
    ck_assert_msg(best_epoch % 32 != 0 && best_epoch > 1 && best_epoch < 10000,
                  "the best epoch (%lld) should be off the stride for this test",
                  (long long)best_epoch);
    ck_assert_int_eq(n, 10000 / 32 + 3); /* multiples of 32, first, best, latest */
    ck_assert_int_eq(at(ep, 0), 1);
    ck_assert_int_eq(at(ep, n - 1), 10000);
    int has_best = 0;
    for (int i = 0; i < n; i++) {
        int64_t e = at(ep, i);
        has_best |= e == best_epoch;
        ck_assert_msg(e % 32 == 0 || e == 1 || e == best_epoch || e == 10000, "epoch %lld kept",
                      (long long)e);
        /* the same record as in the unbounded run, bit for bit */
        ck_assert(cJSON_GetArrayItem(loss, i)->valuedouble ==
                  cJSON_GetArrayItem(fl, (int)e - 1)->valuedouble);
    }
    ck_assert_msg(has_best, "best epoch %lld was dropped", (long long)best_epoch);
    api_done(&c);
    api_done(&full);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

START_TEST(losses_page_and_downsample)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    char *ds = post_dataset(d.port);
    char *job = api_post_job(d.port, "softmax", ds, "{\"epochs\":3000}");
    api_wait_state(d.port, job, "succeeded", 60);

    api_call c = get(d.port, "/v1/jobs/%s/losses", job, "?max_points=7");
    ck_assert_int_eq(c.status, 200);
    const cJSON *ep = epochs_of(&c);
    ck_assert_int_eq(cJSON_GetArraySize(ep), 7);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "loss")), 7);
    for (int k = 0; k < 7; k++) /* evenly spaced: row round(k * 2999 / 6), first and last */
        ck_assert_int_eq(at(ep, k), 1 + (k * 2999 + 3) / 6);
    api_done(&c);
    c = get(d.port, "/v1/jobs/%s/losses", job, "?max_points=7&format=csv");
    ck_assert_int_eq(c.status, 200);
    ck_assert_int_eq(count_of(c.r.body, "\n"), 8); /* header + 7 */
    ck_assert_ptr_nonnull(strstr(c.r.body, "\n3000,"));
    api_done(&c);
    c = get(d.port, "/v1/jobs/%s/losses", job, "?after_epoch=2990");
    ep = epochs_of(&c);
    ck_assert_int_eq(cJSON_GetArraySize(ep), 10);
    ck_assert_int_eq(at(ep, 0), 2991);
    ck_assert_int_eq(at(ep, 9), 3000);
    api_done(&c);
    c = get(d.port, "/v1/jobs/%s/losses", job, "?after_epoch=100&limit=5");
    ep = epochs_of(&c);
    ck_assert_int_eq(cJSON_GetArraySize(ep), 5);
    ck_assert_int_eq(at(ep, 0), 101);
    ck_assert_int_eq(at(ep, 4), 105);
    api_done(&c);
    c = get(d.port, "/v1/jobs/%s/losses", job, "?after_epoch=2000&max_points=3");
    ep = epochs_of(&c);
    ck_assert_int_eq(cJSON_GetArraySize(ep), 3);
    ck_assert_int_eq(at(ep, 0), 2001);
    ck_assert_int_eq(at(ep, 1), 2501);
    ck_assert_int_eq(at(ep, 2), 3000);
    api_done(&c);
    c = get(d.port, "/v1/jobs/%s/losses", job, "?after_epoch=3000");
    ck_assert_int_eq(cJSON_GetArraySize(epochs_of(&c)), 0);
    api_done(&c);

    /* Bad values: 422 naming the parameter. */
    static const char *const bad[][2] = {{"?max_points=1", "max_points"},
                                         {"?max_points=ten", "max_points"},
                                         {"?after_epoch=-1", "after_epoch"},
                                         {"?after_epoch=1.5", "after_epoch"},
                                         {"?limit=0", "limit"},
                                         {"?format=xml", "format"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = get(d.port, "/v1/jobs/%s/losses", job, bad[i][0]);
        ck_assert_msg(c.status == 422, "%s: %d", bad[i][0], c.status);
        const cJSON *e = cJSON_GetObjectItem(c.json, "error");
        ck_assert_str_eq(cJSON_GetObjectItem(e, "field")->valuestring, bad[i][1]);
        ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(e, "message")->valuestring, bad[i][1]));
        api_done(&c);
    }
    static const char *const bad_ev[][2] = {
        {"?max_rate=-1", "max_rate"}, {"?max_rate=1001", "max_rate"}, {"?every=0", "every"}};
    for (size_t i = 0; i < sizeof bad_ev / sizeof bad_ev[0]; i++) {
        c = get(d.port, "/v1/jobs/%s/events", job, bad_ev[i][0]);
        ck_assert_msg(c.status == 422, "%s: %d", bad_ev[i][0], c.status);
        ck_assert_str_eq(
            cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "error"), "field")->valuestring,
            bad_ev[i][1]);
        api_done(&c);
    }
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

typedef struct stream_arg {
    int port;
    char path[256];
    httpc_resp r;
} stream_arg;

static void *read_stream(void *p)
{
    stream_arg *a = p;
    httpc_request(a->port, "GET", a->path, NULL, NULL, 0, &a->r);
    return NULL;
}

START_TEST(events_coalesce_in_order)
{
    httpc_daemon d = api_start(NULL, "workers = 1\n", NULL, NULL);
    char *ds = post_dataset(d.port);
    /* One worker, busy: the watched job waits in the queue until the blocker goes. */
    char *blocker = api_post_job(d.port, "softmax", ds, "{\"epochs\":10000000}");
    wait_epoch(d.port, blocker, 1, 30);
    char *job = api_post_job(d.port, "softmax", ds, "{\"epochs\":20000}");
    stream_arg a = {.port = d.port};
    snprintf(a.path, sizeof a.path, "/v1/jobs/%s/events", job);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, read_stream, &a), 0);
    usleep(300000); /* the stream sees the job queued */
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", blocker);
    api_call c = api_req(d.port, "POST", path, NULL);
    ck_assert_int_eq(c.status, 202);
    api_done(&c);
    pthread_join(th, NULL);
    ck_assert_int_eq(a.r.status, 200);
    const char *b = a.r.body;
    const char *queued = strstr(b, "{\"state\":\"queued\"");
    const char *running = strstr(b, "{\"state\":\"running\"");
    const char *progress = strstr(b, "event: progress");
    const char *succeeded = strstr(b, "{\"state\":\"succeeded\"");
    ck_assert_msg(queued && running && progress && succeeded, "events: %.600s", b);
    ck_assert_msg(queued < running && running < progress && progress < succeeded,
                  "out of order: %.600s", b);
    /* At most 10 progress events a second (the default), plus the final one; the final
     * epoch is the last progress event, and the terminal state ends the stream. */
    int64_t n = count_of(b, "event: progress");
    ck_assert_msg(n >= 1 && n <= 10 * a.r.elapsed_s + 2, "%lld progress events in %.2f s",
                  (long long)n, a.r.elapsed_s);
    const char *last = b, *p;
    for (p = b; (p = strstr(p, "event: progress")); p++)
        last = p;
    ck_assert_msg(strncmp(last - strlen("id: 20000\n"), "id: 20000\n", 10) == 0,
                  "last progress: %.200s", last - 12);
    ck_assert_ptr_nonnull(strstr(last, "\"epoch\":20000,"));
    ck_assert_ptr_null(strstr(succeeded + 1, "event:"));
    fprintf(stderr, "events_coalesce_in_order: %lld progress events in %.2f s for 20000 epochs\n",
            (long long)n, a.r.elapsed_s);
    httpc_free(&a.r);
    api_stop(&d);
    free(ds), free(blocker), free(job);
}
END_TEST

START_TEST(events_every_and_last_event_id)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    char *ds = post_dataset(d.port);
    char *job = api_post_job(d.port, "softmax", ds, "{\"epochs\":3000}");
    api_wait_state(d.port, job, "succeeded", 60);
    /* every: the multiples, replayed from the stored history, then the state */
    api_call c = get(d.port, "/v1/jobs/%s/events", job, "?every=1000");
    ck_assert_int_eq(c.status, 200);
    ck_assert_int_eq(count_of(c.r.body, "event: progress"), 3);
    const char *p1 = strstr(c.r.body, "id: 1000\n"), *p2 = strstr(c.r.body, "id: 2000\n"),
               *p3 = strstr(c.r.body, "id: 3000\n"), *s = strstr(c.r.body, "\"succeeded\"");
    ck_assert(p1 && p2 && p3 && s && p1 < p2 && p2 < p3 && p3 < s);
    api_done(&c);
    c = get(d.port, "/v1/jobs/%s/events", job, "?every=7");
    ck_assert_int_eq(count_of(c.r.body, "event: progress"), 3000 / 7 + 1); /* + the final */
    ck_assert_ptr_nonnull(strstr(c.r.body, "id: 2996\n"));
    ck_assert_ptr_nonnull(strstr(c.r.body, "id: 3000\n"));
    api_done(&c);
    /* the default rate: a finished job sends its final epoch and its state */
    c = get(d.port, "/v1/jobs/%s/events", job, NULL);
    ck_assert_int_eq(count_of(c.r.body, "event: progress"), 1);
    ck_assert_ptr_nonnull(strstr(c.r.body, "id: 3000\n"));
    ck_assert_ptr_nonnull(strstr(c.r.body, "\"epochs\":3000}"));
    api_done(&c);
    /* Last-Event-ID resumes after it */
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/events?max_rate=0", job);
    c = api_reqh(d.port, "GET", path, "Last-Event-ID: 2995", NULL);
    ck_assert_int_eq(count_of(c.r.body, "event: progress"), 5);
    ck_assert(strstr(c.r.body, "id: 2996\n") < strstr(c.r.body, "id: 3000\n"));
    ck_assert_ptr_null(strstr(c.r.body, "id: 2995\n"));
    api_done(&c);
    c = api_reqh(d.port, "GET", path, "Last-Event-ID: 3000", NULL);
    ck_assert_int_eq(count_of(c.r.body, "event: progress"), 0);
    ck_assert_ptr_nonnull(strstr(c.r.body, "\"state\":\"succeeded\""));
    api_done(&c);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

START_TEST(idle_streams_keep_memory_flat)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    char *ds = post_dataset(d.port);
    char *job = api_post_job(d.port, "softmax", ds, "{\"epochs\":10000000}");
    wait_epoch(d.port, job, 20000, 60); /* a long history already */
    long before = httpc_proc_kb(d.pid, "VmRSS");
    ck_assert_int_ge(before, 0);
    enum { NS = 50 };
    int fds[NS];
    char request[256];
    for (int i = 0; i < NS; i++) {
        /* most at the default rate, some asking for every epoch */
        snprintf(request, sizeof request, "GET /v1/jobs/%s/events%s HTTP/1.1\r\nHost: t\r\n\r\n",
                 job, i % 10 == 0 ? "?max_rate=0" : "");
        fds[i] = httpc_connect(d.port);
        ck_assert_int_ge(fds[i], 0);
        int small = 4096; /* fills fast: the daemon's writes block */
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        ck_assert_int_eq(httpc_send_all(fds[i], request, strlen(request)), 0);
    }
    sleep(1); /* they never read; the job trains on */
    long after = httpc_proc_kb(d.pid, "VmRSS");
    api_call c = api_req(d.port, "GET", "/healthz", NULL);
    ck_assert_int_eq(c.status, 200);
    api_done(&c);
    int64_t e0;
    char st[32];
    job_state(d.port, job, st, &e0);
    wait_epoch(d.port, job, e0 + 1, 10); /* it trains on */
    for (int i = 0; i < NS; i++)
        close(fds[i]);
    fprintf(stderr, "idle_streams_keep_memory_flat: VmRSS %ld kB -> %ld kB with %d streams\n",
            before, after, NS);
    /* ~1 MiB a stream is generous (a thread's touched stack and two 16 KiB buffers); the
     * old streams built the whole history first (megabytes each at these epochs). */
    long per_stream_kb = 1024;
#ifdef __SANITIZE_ADDRESS__
    per_stream_kb = 4096; /* ASan: redzones, fake stacks and its quarantine of freed blocks */
#endif
    ck_assert_msg(after - before < NS * per_stream_kb, "VmRSS grew %ld kB with %d idle streams",
                  after - before, NS);
    snprintf(request, sizeof request, "/v1/jobs/%s/cancel", job);
    c = api_req(d.port, "POST", request, NULL);
    api_done(&c);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

START_TEST(running_losses_include_tail)
{
    httpc_daemon d = api_start(NULL, "checkpoint_interval_s = 3600\n", NULL, NULL);
    char *ds = post_dataset(d.port);
    char *job = api_post_job(d.port, "softmax", ds, "{\"epochs\":10000000}");
    wait_epoch(d.port, job, 1000, 60);
    for (int round = 0; round < 5; round++) {
        /* the job object shows the store's epoch; /losses has at least that, no gaps */
        char st[32];
        int64_t e0;
        job_state(d.port, job, st, &e0);
        char q[64];
        snprintf(q, sizeof q, "?after_epoch=%lld", (long long)(e0 - 10));
        api_call c = get(d.port, "/v1/jobs/%s/losses", job, q);
        const cJSON *ep = epochs_of(&c);
        int n = cJSON_GetArraySize(ep);
        ck_assert_msg(n >= 10, "%d rows after epoch %lld", n, (long long)(e0 - 10));
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(at(ep, i), e0 - 9 + i);
        api_done(&c);
    }
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/cancel", job);
    api_call c = api_req(d.port, "POST", path, NULL);
    api_done(&c);
    api_wait_state(d.port, job, "cancelled", 30);
    /* everything trained is stored at the end: gap-free from 1 */
    int64_t e;
    char st[32];
    job_state(d.port, job, st, &e);
    c = get(d.port, "/v1/jobs/%s/losses", job, NULL);
    const cJSON *ep = epochs_of(&c);
    ck_assert_int_eq(cJSON_GetArraySize(ep), e);
    ck_assert_int_eq(at(ep, (int)e - 1), e);
    api_done(&c);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

/* kill -9 under a thinned history: the resumed job ends with the same stored records as
 * an uninterrupted one (thinning depends on the latest epoch alone). A checkpoint every
 * epoch until the kill (stride 8 by then), none after it (stride 64 at the end). */
START_TEST(resume_with_thinned_history_is_exact)
{
    const char *conf = "checkpoint_interval_s = 0\nworkers = 1\nhistory_max_rows = 12\n";
    const char *hp = "{\"epochs\":400,\"lr\":0.5,\"batch_size\":4,\"seed\":3}";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    char *ds = post_dataset(d.port);
    char *job = api_post_job(d.port, "softmax", ds, hp);
    wait_epoch(d.port, job, 60, 60);
    httpc_daemon_stop(&d, SIGKILL, 10);
    httpc_daemon r = api_start(d.dir,
                               "checkpoint_interval_s = 3600\nworkers = 1\n"
                               "history_max_rows = 12\n",
                               NULL, NULL);
    api_wait_state(r.port, job, "succeeded", 60);
    char *ref = api_post_job(r.port, "softmax", ds, hp);
    api_wait_state(r.port, ref, "succeeded", 60);
    api_call a = get(r.port, "/v1/jobs/%s/losses", job, NULL);
    api_call b = get(r.port, "/v1/jobs/%s/losses", ref, NULL);
    const cJSON *ea = epochs_of(&a), *eb = epochs_of(&b);
    ck_assert_int_le(cJSON_GetArraySize(ea), 12);
    ck_assert_int_eq(cJSON_GetArraySize(ea), cJSON_GetArraySize(eb));
    const char *cols[] = {"epoch", "loss", "accuracy"};
    for (int k = 0; k < 3; k++) {
        const cJSON *ca = cJSON_GetObjectItem(a.json, cols[k]),
                    *cb = cJSON_GetObjectItem(b.json, cols[k]);
        for (int i = 0; i < cJSON_GetArraySize(ea); i++)
            ck_assert_msg(cJSON_GetArrayItem(ca, i)->valuedouble ==
                              cJSON_GetArrayItem(cb, i)->valuedouble,
                          "%s differs at row %d", cols[k], i);
    }
    ck_assert_int_eq(at(ea, cJSON_GetArraySize(ea) - 1), 400);
    api_done(&a), api_done(&b);
    api_stop(&r);
    free(ds), free(job), free(ref);
}
END_TEST

Suite *suite_history(void)
{
    Suite *s = suite_create("history");
    TCase *unit = tcase_create("store_and_tail");
    tcase_add_test(unit, store_bound_thins_keeping_first_best_latest);
    tcase_add_test(unit, tail_merges_pending_records);
    tcase_add_test(unit, tail_best_prefers_val_loss);
    suite_add_tcase(s, unit);
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, bound_keeps_first_best_latest);
    tcase_add_test(tc, losses_page_and_downsample);
    tcase_add_test(tc, events_coalesce_in_order);
    tcase_add_test(tc, events_every_and_last_event_id);
    tcase_add_test(tc, idle_streams_keep_memory_flat);
    tcase_add_test(tc, running_losses_include_tail);
    tcase_add_test(tc, resume_with_thinned_history_is_exact);
    suite_add_tcase(s, tc);
    return s;
}
