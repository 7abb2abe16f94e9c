/* test_crash.c — issue 10 item 1: no data can crash a job, and no job can crash the
 * daemon for good.
 *   engine    every model (softmax and mlp, plain, grouped and with probability targets;
 *             gmm with every covariance and init; embed_gmm likewise) trained a few epochs
 *             on finite but extreme data (|x| up to 3.4e38, subnormals, signed zeros,
 *             mixed): each step gives TD_OK with finite weights and records, or fails
 *             cleanly (TD_EDIVERGED with a field and a message naming the cause)
 *   http      the repro (an embed_gmm job on [[3e38,-3e38],[1e-45,0],[1,1]]) ends
 *             failed with a message naming the cause; the daemon stays healthy
 *   loop      a job that kills the daemon (test hook TD_FAULT_ABORT_IN_JOB) is resumed
 *             once, then failed with code "crashed" at the next start; the daemon then
 *             serves and trains; a SIGTERM shutdown does not count as a crash. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "testutil.h"
#include "traind/train.h"

/* ======================================================================= engine ==== */

#define XN 6
#define XD 2

/* Extreme rows (XN, XD): each set is finite float32. */
static const float EXTREME[][XN * XD] = {
    /* the repro, padded with copies */
    {3e38f, -3e38f, 1e-45f, 0.0f, 1.0f, 1.0f, 3e38f, -3e38f, 1e-45f, 0.0f, 1.0f, 1.0f},
    /* the float32 extremes */
    {3.4028235e38f, 3.4028235e38f, -3.4028235e38f, -3.4028235e38f, 3.4028235e38f, -3.4028235e38f,
     -3.4028235e38f, 3.4028235e38f, 0.0f, 0.0f, 1.0f, -1.0f},
    /* subnormals, signed zeros and the smallest normal */
    {1e-45f, 0.0f, -1e-45f, -0.0f, 1.17549435e-38f, 1e-45f, -1e-45f, 1e-38f, 0.0f, -0.0f, 1e-45f,
     1e-45f},
    /* mixed magnitudes */
    {3.4028235e38f, 1e-45f, -1e-45f, -3.4028235e38f, 1e30f, -1e-30f, 1e19f, -1e19f, 0.0f, 1.0f,
     -1e38f, 1e38f},
    /* one huge column, one ordinary */
    {1e38f, 0.5f, -1e38f, 0.25f, 1e38f, -0.5f, -1e38f, 1.0f, 1e38f, 2.0f, -1e38f, -2.0f},
    /* large but not overflowing alone: squares and sums overflow float32 */
    {1e20f, -1e20f, 3e19f, 2e19f, -1e20f, 1e20f, 5e19f, -5e19f, 1e20f, 1e20f, -1e20f, -1e20f},
};
#define NSETS (int)(sizeof EXTREME / sizeof EXTREME[0])

static const int32_t Y1[XN] = {0, 1, 0, 1, 2, 2};
static const int32_t Y2[XN * 2] = {0, 1, 1, 2, 0, 0, 2, 2, 1, 0, 2, 1};
static const float YP[XN * 2] = {1, 0, 0.5f, 0.5f, 0, 1, 0.25f, 0.75f, 1, 0, 0, 1};

typedef struct scenario {
    char name[64];
    td_hparams hp;
    int targets; /* 0 none, 1 labels, 2 grouped labels, 3 probabilities */
} scenario;

/* Every model configuration trained here; returns the count. */
static int scenarios(scenario *sc)
{
    int n = 0;
    for (int m = 0; m < 2; m++)
        for (int tg = 1; tg <= 3; tg++)
            for (int o = 0; o < 3; o++) {
                scenario *s = &sc[n++];
                td_hparams_defaults(&s->hp, m ? TD_MODEL_MLP : TD_MODEL_SOFTMAX);
                s->hp.optimizer = (td_optimizer_kind)o;
                s->hp.epochs = 3;
                s->hp.l2 = o == 2 ? 0.01 : 0;
                if (m) {
                    s->hp.mlp.n_hidden = 1, s->hp.mlp.hidden[0] = 4;
                    s->hp.mlp.activation = (td_activation)o; /* relu, tanh, sigmoid */
                    s->hp.batch_size = 4;
                }
                if (tg == 2) s->hp.groups = 2, s->hp.monotone_weight = 0.5;
                s->targets = tg;
                snprintf(s->name, sizeof s->name, "%s targets %d optimizer %d",
                         m ? "mlp" : "softmax", tg, o);
            }
    for (int c = 0; c < 4; c++) /* full, diag, spherical, tied */
        for (int in = 0; in < 2; in++) {
            scenario *s = &sc[n++];
            td_hparams_defaults(&s->hp, TD_MODEL_GMM);
            s->hp.gmm.covariance = (td_covariance)c, s->hp.gmm.init = (td_gmm_init)in;
            s->hp.gmm.components = 2, s->hp.gmm.max_iter = 3;
            s->targets = 0;
            snprintf(s->name, sizeof s->name, "gmm covariance %d init %d", c, in);
            s = &sc[n++];
            td_hparams_defaults(&s->hp, TD_MODEL_EMBED_GMM);
            s->hp.gmm.covariance = (td_covariance)c, s->hp.gmm.init = (td_gmm_init)in;
            s->hp.gmm.components = 2, s->hp.embed.embedding_dim = 2, s->hp.epochs = 3;
            s->hp.embed.warmup_iterations = in; /* with and without a warm-up */
            s->targets = 1;
            snprintf(s->name, sizeof s->name, "embed_gmm covariance %d init %d", c, in);
        }
    return n;
}

static int all_finite(const float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

/* Trains s on X a few epochs; every step succeeds with finite results or fails cleanly.
 * Returns 1 when a step failed (cleanly). */
static int train_extreme(scenario *s, const float *X, const char *what)
{
    td_dataset ds = {.N = XN, .D = XD, .X = X};
    if (s->targets == 1)
        ds.y = Y1, ds.y_cols = 1;
    else if (s->targets == 2)
        ds.y = Y2, ds.y_cols = 2;
    else if (s->targets == 3)
        ds.Y = YP, ds.Y_cols = 2;
    td_trainer *t = tu_make_trainer(&s->hp, &ds);
    td_trainer_set_threads(t, 2);
    int failed = 0;
    for (int e = 0; e < 3 && !td_trainer_done(t); e++) {
        td_error err = {{0}, {0}};
        td_record rec;
        td_status st = td_trainer_step(t, &rec, &err);
        const td_model *m = td_trainer_model(t);
        /* whatever happened, the model the job would store is finite */
        ck_assert_msg(all_finite(m->params, m->n_params),
                      "%s on %s: non-finite weights after "
                      "step %d (status %d)",
                      s->name, what, e, st);
        if (st) {
            ck_assert_msg(st == TD_EDIVERGED, "%s on %s: status %d (%s)", s->name, what, st,
                          err.message);
            ck_assert_msg(err.field[0] && strstr(err.message, "finite"),
                          "%s on %s: the error must name its field and cause: %s: %s", s->name,
                          what, err.field, err.message);
            failed = 1;
            break;
        }
        int nc;
        td_trainer_columns(t, &nc);
        for (int c = 0; c < nc; c++) /* NaN is "not applicable" (null); inf never */
            ck_assert_msg(!isinf(rec.v[c]), "%s on %s: column %d is %g", s->name, what, c,
                          rec.v[c]);
        ck_assert_msg(isfinite(rec.v[tu_column(t, "loss")]), "%s on %s: loss %g", s->name, what,
                      rec.v[tu_column(t, "loss")]);
    }
    td_trainer_destroy(t);
    return failed;
}

START_TEST(every_model_survives_extreme_finite_data)
{
    scenario sc[40];
    int n = scenarios(sc), failures = 0, runs = 0;
    for (int d = 0; d < NSETS; d++)
        for (int i = 0; i < n; i++, runs++) {
            char what[32];
            snprintf(what, sizeof what, "data set %d", d);
            failures += train_extreme(&sc[i], EXTREME[d], what);
        }
    /* both outcomes occur: the subnormal set trains, the overflowing sets fail cleanly */
    ck_assert_int_gt(failures, 0);
    ck_assert_int_lt(failures, runs);
    for (int i = 0; i < n; i++)
        td_hparams_fini(&sc[i].hp);
}
END_TEST

/* The subnormal set trains every model to the end. */
START_TEST(subnormal_data_trains_every_model)
{
    scenario sc[40];
    int n = scenarios(sc);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(train_extreme(&sc[i], EXTREME[2], "subnormals") == 0, "%s failed",
                      sc[i].name);
        td_hparams_fini(&sc[i].hp);
    }
}
END_TEST

/* ========================================================================= http ==== */

static void expect_failed(int port, const char *job, const char *code, const char *needle)
{
    cJSON *j = api_wait_job(port, job, 30);
    ck_assert_str_eq(api_str(j, "state"), "failed");
    const cJSON *e = api_item(j, "error");
    ck_assert_str_eq(api_str(e, "code"), code);
    ck_assert_msg(strstr(api_str(e, "message"), needle) != NULL, "message \"%s\" lacks \"%s\"",
                  api_str(e, "message"), needle);
    cJSON_Delete(j);
}

#define ORDINARY_DS "{\"X\":[[0,1],[1,0],[0.5,0.2],[0.1,0.9]],\"y\":[0,1,1,0]}"

START_TEST(extreme_data_fails_the_job_and_the_daemon_serves_on)
{
    httpc_daemon d = api_start(NULL, "workers = 1\n", NULL, NULL);
    char *ds = api_post_id(d.port, "/v1/datasets",
                           "{\"X\":[[3e38,-3e38],[1e-45,0],[1,1]],\"y\":[0,1,0]}", 201);
    /* the repro: SEGV in td_gmm_initialize before the fix */
    char *embed =
        api_post_job(d.port, "embed_gmm", ds, "{\"iterations\":2,\"warmup_iterations\":0}");
    expect_failed(d.port, embed, "diverged", "embeddings became non-finite");
    const char *covs[] = {"full", "diag", "spherical", "tied"};
    for (int i = 0; i < 4; i++) {
        char hp[128];
        snprintf(hp, sizeof hp, "{\"components\":2,\"covariance\":\"%s\"}", covs[i]);
        char *gmm = api_post_job(d.port, "gmm", ds, hp);
        expect_failed(d.port, gmm, "diverged", "finite");
        free(gmm);
    }
    char *mlp = api_post_job(d.port, "mlp", ds, "{\"epochs\":2}");
    expect_failed(d.port, mlp, "diverged", "non-finite");
    api_expect_healthy(d.port);
    /* and it still trains */
    char *ok_ds = api_post_id(d.port, "/v1/datasets", ORDINARY_DS, 201);
    char *ok = api_post_job(d.port, "softmax", ok_ds, "{\"epochs\":3}");
    api_expect_state(d.port, ok, "succeeded", 30);
    api_stop(&d);
    free(ds), free(embed), free(mlp), free(ok_ds), free(ok);
}
END_TEST

/* Starts the daemon over dir with the abort hook and waits for it to die of SIGABRT
 * inside the resumed job (jobs resume before the daemon listens: it may die first). */
static void crash_once(const char *dir, const char *conf)
{
    const char *env[] = {"TD_FAULT_ABORT_IN_JOB=1", NULL};
    httpc_daemon d;
    api_start_any(&d, dir, conf, NULL, env);
    int code = httpc_daemon_stop(&d, 0, 30); /* only wait */
    char *log = httpc_daemon_log(&d);
    ck_assert_msg(code == 128 + SIGABRT, "exit %d, want SIGABRT: %s", code, log);
    ck_assert_msg(strstr(log, "TD_FAULT_ABORT_IN_JOB: aborting") != NULL, "%s", log);
    free(log);
}

START_TEST(a_job_that_kills_the_daemon_twice_fails_as_crashed)
{
    const char *conf = "workers = 1\ncheckpoint_interval_s = 0\n";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", d.dir);
    char *ds = api_post_id(d.port, "/v1/datasets", ORDINARY_DS, 201);
    char *job = api_post_job(d.port, "softmax", ds, "{\"epochs\":10000000}");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    /* two clean shutdowns while it runs (trains in this process): no crash counted */
    for (int i = 0, last = 0; i < 2; i++) {
        for (double t0 = httpc_now();; usleep(10000)) {
            api_call c = api_req(d.port, "GET", path, NULL);
            int e = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "progress"), "epoch")->valueint;
            int r = cJSON_GetObjectItem(c.json, "restarts")->valueint;
            api_done(&c);
            if (e > last && r == i) {
                last = e;
                break;
            }
            ck_assert_msg(httpc_now() - t0 < 20, "the job does not train");
        }
        api_term(&d);
        if (i == 0) d = api_start(dir, conf, NULL, NULL);
    }
    /* two deaths inside the job: after the first it resumes (and kills the daemon again) */
    crash_once(dir, conf);
    crash_once(dir, conf);
    /* the third start fails it instead of resuming it, hook still set: no abort */
    const char *env[] = {"TD_FAULT_ABORT_IN_JOB=1", NULL};
    d = api_start(dir, conf, NULL, env);
    expect_failed(d.port, job, "crashed", "died 2 times");
    api_call c = api_req(d.port, "GET", path, NULL);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint,
                     3); /* resumed twice, not a third time */
    api_done(&c);
    usleep(300000);
    api_expect_healthy(d.port);
    char *log = httpc_daemon_log(&d);
    ck_assert_msg(strstr(log, "it is not resumed again") != NULL, "%s", log);
    free(log);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

Suite *suite_crash(void)
{
    Suite *s = suite_create("crash");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_model_survives_extreme_finite_data);
    tcase_add_test(tc, subnormal_data_trains_every_model);
    suite_add_tcase(s, tc);
    tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, extreme_data_fails_the_job_and_the_daemon_serves_on);
    tcase_add_test(tc, a_job_that_kills_the_daemon_twice_fails_as_crashed);
    suite_add_tcase(s, tc);
    return s;
}
