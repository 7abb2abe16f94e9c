/* test_engine.c — the engine as a library (include/traind): model files (td_model_save /
 * td_model_load and their in-memory form) for every family, damaged files refused,
 * td_trainer_run, the defaults the engine owns, and the examples (examples/, built against
 * libtraind_engine.a alone) run and checked against the engine's own answers. */
#include "testutil.h"

#include "math/xxh64.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Three clusters in the plane, 20 rows each (class = cluster). */
#define ROWS 60
static float X[ROWS * 2];
static int32_t y[ROWS];
static td_dataset clusters(void)
{
    static const float c[3][2] = {{-2, 0}, {2, 0}, {0, 3}};
    for (int i = 0; i < ROWS; i++) {
        y[i] = i % 3;
        X[2 * i] = c[y[i]][0] + 0.1f * (float)((i * 7) % 5 - 2);
        X[2 * i + 1] = c[y[i]][1] + 0.1f * (float)((i * 11) % 5 - 2);
    }
    return (td_dataset){.N = ROWS, .D = 2, .X = X, .y = y, .y_cols = 1};
}

static void tmp_path(char *path, size_t cap, const char *name)
{
    snprintf(path, cap, "/tmp/td_engine_%d_%s", (int)getpid(), name);
}

/* A trainer of `model` on the clusters after `steps` steps (small settings per family). */
static td_trainer *trained(td_model_kind model, int steps, const td_dataset *ds)
{
    td_hparams hp;
    td_hparams_defaults(&hp, model);
    hp.epochs = 5;
    if (model == TD_MODEL_MLP) hp.mlp.hidden[0] = 4;
    if (model == TD_MODEL_GMM) hp.gmm.components = 3;
    if (model == TD_MODEL_EMBED_GMM) {
        hp.mlp.hidden[0] = 4;
        hp.gmm.components = 3;
        hp.embed.pairs_per_iteration = 16;
        hp.embed.warmup_iterations = 1;
        hp.gmm.n_init = 1;
    }
    td_trainer *t = tu_make_trainer(&hp, ds);
    td_record rec;
    for (int i = 0; i < steps; i++)
        tu_step_ok(t, &rec);
    return t;
}

/* ---- model files ------------------------------------------------------------------- */

START_TEST(test_model_file_round_trip)
{
    td_dataset ds = clusters();
    td_model_kind kind = (td_model_kind)_i;
    td_trainer *t = trained(kind, kind == TD_MODEL_EMBED_GMM ? 5 : 2, &ds);
    const td_model *m = td_trainer_model(t);
    char path[256];
    tmp_path(path, sizeof path, "round_trip.tdm");
    td_error err;
    ck_assert_int_eq(td_model_save(m, path, &err), TD_OK);
    td_model back;
    ck_assert_int_eq(td_model_load(&back, path, &err), TD_OK);
    unlink(path);
    ck_assert_int_eq(back.kind, m->kind);
    ck_assert_int_eq(back.D, m->D);
    ck_assert_int_eq(back.K, m->K);
    ck_assert_int_eq(back.G, m->G);
    ck_assert_int_eq(back.n_hidden, m->n_hidden);
    ck_assert_int_eq(back.components, m->components);
    ck_assert_int_eq(back.rows, m->rows);
    ck_assert_int_eq(back.n_iter, m->n_iter);
    ck_assert(memcmp(&back.lower_bound, &m->lower_bound, sizeof(double)) == 0);
    ck_assert_int_eq(back.n_params, m->n_params);
    ck_assert(memcmp(back.params, m->params, sizeof(float) * (size_t)m->n_params) == 0);
    /* the loaded model predicts exactly as the trained one */
    int64_t K = m->kind == TD_MODEL_EMBED_GMM ? m->components : m->K; /* probs' columns */
    float *p1 = malloc(sizeof(float) * ROWS * (size_t)K);
    float *p2 = malloc(sizeof(float) * ROWS * (size_t)K);
    int32_t l1[ROWS], l2[ROWS];
    ck_assert_int_eq(td_model_predict(p1, l1, m, ds.X, ROWS, 2, &err), TD_OK);
    ck_assert_int_eq(td_model_predict(p2, l2, &back, ds.X, ROWS, 2, &err), TD_OK);
    ck_assert(memcmp(p1, p2, sizeof(float) * ROWS * (size_t)K) == 0);
    ck_assert(memcmp(l1, l2, sizeof l1) == 0);
    free(p1), free(p2);
    td_model_fini(&back);
    td_trainer_destroy(t);
}
END_TEST

START_TEST(test_model_file_damaged)
{
    td_dataset ds = clusters();
    td_trainer *t = trained(TD_MODEL_MLP, 1, &ds);
    const td_model *m = td_trainer_model(t);
    size_t n = td_model_file_size(m);
    unsigned char *buf = malloc(n), *bad = malloc(n);
    ck_assert_uint_eq(td_model_encode(m, buf, n - 1), 0);
    ck_assert_uint_eq(td_model_encode(m, buf, n), n);
    td_model back;
    td_error err;
    /* any one byte changed: the checksum (or, in the magic, the magic) refuses it */
    for (size_t i = 0; i < n; i += 7) {
        memcpy(bad, buf, n);
        bad[i] ^= 0x20;
        ck_assert_int_eq(td_model_decode(&back, bad, n, &err), TD_EINVAL);
        ck_assert_str_eq(err.field, "model");
        ck_assert_msg(strstr(err.message, i < 8 ? "magic" : "checksum"), "%zu: %s", i, err.message);
        ck_assert_ptr_null(back.params);
    }
    /* truncated anywhere */
    for (size_t len = 0; len < n; len += 13)
        ck_assert_int_eq(td_model_decode(&back, buf, len, &err), TD_EINVAL);
    /* a consistent checksum over a shape that does not match the parameters */
    memcpy(bad, buf, n);
    bad[8 + 8 * 1] += 1; /* D */
    td_wr64(bad + n - 8, td_xxh64(bad, n - 8, 0));
    ck_assert_int_eq(td_model_decode(&back, bad, n, &err), TD_EINVAL);
    ck_assert_msg(strstr(err.message, "parameter count"), "%s", err.message);
    memcpy(bad, buf, n);
    bad[8] = 9; /* kind */
    td_wr64(bad + n - 8, td_xxh64(bad, n - 8, 0));
    ck_assert_int_eq(td_model_decode(&back, bad, n, &err), TD_EINVAL);
    ck_assert_msg(strstr(err.message, "unknown model kind"), "%s", err.message);
    /* huge sizes are refused before any count is computed */
    memcpy(bad, buf, n);
    td_wr64(bad + 8 + 8 * 6, (uint64_t)1 << 30); /* hidden[0] */
    td_wr64(bad + 8 + 8 * 1, (uint64_t)1 << 30); /* D */
    td_wr64(bad + n - 8, td_xxh64(bad, n - 8, 0));
    ck_assert_int_eq(td_model_decode(&back, bad, n, &err), TD_EINVAL);
    ck_assert_int_eq(td_model_decode(&back, buf, n, &err), TD_OK);
    td_model_fini(&back);

    char path[256];
    tmp_path(path, sizeof path, "missing.tdm");
    ck_assert_int_eq(td_model_load(&back, path, &err), TD_ENOTFOUND);
    ck_assert_str_eq(err.field, "path");
    free(buf), free(bad);
    td_trainer_destroy(t);
}
END_TEST

/* ---- td_trainer_run ----------------------------------------------------------------- */

static int count_epochs(const td_trainer *t, const td_record *rec, void *ctx)
{
    int *n = ctx;
    ck_assert_int_eq((int64_t)rec->v[0], td_trainer_epoch(t));
    return ++n[0] == n[1];
}

START_TEST(test_trainer_run)
{
    td_dataset ds = clusters();
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.epochs = 7;
    td_trainer *a = tu_make_trainer(&hp, &ds), *b = tu_make_trainer(&hp, &ds);
    td_error err;
    td_record last, rec;
    int n[2] = {0, -1};
    ck_assert_int_eq(td_trainer_run(a, count_epochs, n, &last, &err), TD_OK);
    ck_assert_int_eq(n[0], 7);
    ck_assert(td_trainer_done(a));
    ck_assert_int_eq(td_trainer_epoch(a), 7);
    for (int i = 0; i < 7; i++) /* the same as stepping by hand */
        tu_step_ok(b, &rec);
    ck_assert(memcmp(td_trainer_model(a)->params, td_trainer_model(b)->params,
                     sizeof(float) * (size_t)td_trainer_model(a)->n_params) == 0);
    ck_assert_double_eq(last.v[2], rec.v[2]);
    td_trainer_destroy(a);
    /* the callback stops it */
    a = tu_make_trainer(&hp, &ds);
    n[0] = 0, n[1] = 3;
    ck_assert_int_eq(td_trainer_run(a, count_epochs, n, NULL, &err), TD_ESTOPPED);
    ck_assert_int_eq(td_trainer_epoch(a), 3);
    ck_assert(!td_trainer_done(a));
    ck_assert_int_eq(td_trainer_run(a, NULL, NULL, NULL, &err), TD_OK);
    ck_assert_int_eq(td_trainer_epoch(a), 7);
    td_trainer_destroy(a);
    td_trainer_destroy(b);
}
END_TEST

/* ---- the defaults the engine owns --------------------------------------------------- */

/* adamw's weight_decay is 0.01 for a C caller too (not only over HTTP): left open by
 * td_hparams_defaults, filled by td_hparams_resolve and by the trainer itself. */
START_TEST(test_adamw_default_weight_decay)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.optimizer = TD_OPT_ADAMW;
    hp.mlp.hidden[0] = 4;
    hp.epochs = 3;
    hp.lr = 0.05;
    td_hparams r = hp;
    td_hparams_resolve(&r, 0);
    ck_assert_double_eq(r.weight_decay, 0.01);
    ck_assert_int_eq(r.n_classes, 0); /* K unknown: left open */
    td_hparams_resolve(&r, 3);
    ck_assert_int_eq(r.n_classes, 3);
    r.optimizer = TD_OPT_ADAM;
    r.weight_decay = NAN;
    td_hparams_resolve(&r, 0);
    ck_assert_double_eq(r.weight_decay, 0);
    td_hparams e;
    td_hparams_defaults(&e, TD_MODEL_EMBED_GMM);
    e.epochs = 40;
    td_hparams_resolve(&e, 2);
    ck_assert_int_eq(e.embed.warmup_iterations, 6); /* 15% of 40 */

    /* trained with the open default = trained with 0.01 given, != trained with 0 */
    td_dataset ds = clusters();
    td_hparams given = hp, none = hp;
    given.weight_decay = 0.01;
    none.weight_decay = 0;
    td_trainer *a = tu_make_trainer(&hp, &ds), *b = tu_make_trainer(&given, &ds),
               *c = tu_make_trainer(&none, &ds);
    td_error err;
    ck_assert_int_eq(td_trainer_run(a, NULL, NULL, NULL, &err), TD_OK);
    ck_assert_int_eq(td_trainer_run(b, NULL, NULL, NULL, &err), TD_OK);
    ck_assert_int_eq(td_trainer_run(c, NULL, NULL, NULL, &err), TD_OK);
    size_t bytes = sizeof(float) * (size_t)td_trainer_model(a)->n_params;
    ck_assert(memcmp(td_trainer_model(a)->params, td_trainer_model(b)->params, bytes) == 0);
    ck_assert(memcmp(td_trainer_model(a)->params, td_trainer_model(c)->params, bytes) != 0);
    td_trainer_destroy(a), td_trainer_destroy(b), td_trainer_destroy(c);
}
END_TEST

/* ---- the examples ------------------------------------------------------------------- */

/* Runs a command; its stdout into out (NUL-terminated); returns the exit status. */
static int run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(test_examples)
{
    const char *dir = getenv("TD_EXAMPLES");
    ck_assert_msg(dir != NULL, "TD_EXAMPLES is not set (make test sets it)");
    char path[256], cmd[1024], out[4096];
    tmp_path(path, sizeof path, "example.tdm");
    snprintf(cmd, sizeof cmd, "%s/train_save %s", dir, path);
    ck_assert_int_eq(run(cmd, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "trained 200 epochs") && strstr(out, "accuracy 1.0000"), "%s", out);
    const char *l = strstr(out, "loss ");
    ck_assert_ptr_nonnull(l);
    double first = atof(l + 5);
    double final = atof(strstr(out, "trained 200 epochs: loss ") + 25);
    ck_assert_msg(final < first && final > 0 && final < 0.05, "%s", out);
    ck_assert(strstr(out, "(9 parameters)")); /* W (2, 3) and b (3) */

    /* load_predict's answers are the engine's own for the model on disk */
    td_model m;
    td_error err;
    ck_assert_int_eq(td_model_load(&m, path, &err), TD_OK);
    snprintf(cmd, sizeof cmd, "%s/load_predict %s -2 0 2 0 0 3 0.5 -1", dir, path);
    ck_assert_int_eq(run(cmd, out, sizeof out), 0);
    unlink(path);
    ck_assert(strstr(out, "softmax, 2 inputs, 3 classes"));
    const char *s = strchr(out, '\n');
    int lines = 0;
    for (; s && s[1]; s = strchr(s + 1, '\n'), lines++) {
        float x[2], p[3], probs[3];
        int label;
        int32_t want;
        ck_assert_int_eq(sscanf(s + 1, "x %f %f  class %d  p %f %f %f", &x[0], &x[1], &label, &p[0],
                                &p[1], &p[2]),
                         6);
        ck_assert_int_eq(td_model_predict(probs, &want, &m, x, 1, 2, &err), TD_OK);
        ck_assert_int_eq(label, want);
        for (int k = 0; k < 3; k++)
            tu_close(p[k], probs[k], 0, 1e-6, "probability");
        if (lines < 3) /* the cluster centres: their own class, confidently */
            ck_assert(label == lines && p[label] > 0.95f);
    }
    ck_assert_int_eq(lines, 4);
    td_model_fini(&m);
    /* a damaged file: a clear error and exit status 1 */
    snprintf(cmd, sizeof cmd, "%s/load_predict %s 2>&1", dir, "/dev/null");
    ck_assert_int_eq(run(cmd, out, sizeof out), 1);
    ck_assert_msg(strstr(out, "not a valid model file"), "%s", out);
}
END_TEST

Suite *suite_engine(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_model_file_round_trip, 0, TD_MODEL_COUNT);
    tcase_add_test(tc, test_model_file_damaged);
    tcase_add_test(tc, test_trainer_run);
    tcase_add_test(tc, test_adamw_default_weight_decay);
    tcase_add_test(tc, test_examples);
    suite_add_tcase(s, tc);
    return s;
}
