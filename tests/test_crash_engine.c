/* test_crash_engine.c — issue 10 item 1, the engine's side: no data can crash a job.
 *   engine    every model (softmax and mlp, plain, grouped and with probability targets;
 *             gmm with every covariance and init; embed_gmm likewise) trained a few epochs
 *             on finite but extreme data (|x| up to 3.4e38, subnormals, signed zeros,
 *             mixed): each step gives TD_OK with finite weights and records, or fails
 *             cleanly (TD_EDIVERGED with a field and a message naming the cause)
 * The daemon's side (a job on such data, a job that kills the daemon) is test_crash.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "traind/train.h"

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

Suite *suite_crash_engine(void)
{
    Suite *s = suite_create("crash_engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, every_model_survives_extreme_finite_data);
    tcase_add_test(tc, subnormal_data_trains_every_model);
    suite_add_tcase(s, tc);
    return s;
}
