/* test_softmax.c — the softmax trainer: PyTorch optimizer trajectories, the column0
 * regularisation reference, gradients against finite differences, the huge-l2 limit,
 * determinism, exact resume from a snapshot, divergence, early stopping, validation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "traind/train.h"

/* A labelled dataset made with a fixed seed: X (N, D) standard-ish normal, y from a random
 * linear model; column0 puts ones in column 0. The caller frees X and y. */
static td_dataset make_data(int64_t N, int64_t D, int64_t K, unsigned seed, int column0)
{
    float *X = malloc(sizeof(float) * (size_t)(N * D));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    float *Wt = malloc(sizeof(float) * (size_t)(D * K));
    ck_assert(X && y && Wt);
    srand(seed);
    for (int64_t i = 0; i < N * D; i++)
        X[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 3.0f;
    for (int64_t i = 0; i < D * K; i++)
        Wt[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (int64_t n = 0; n < N; n++) {
        if (column0) X[n * D] = 1.0f;
        int64_t best = 0;
        double bv = -1e30;
        for (int64_t k = 0; k < K; k++) {
            double z = 0;
            for (int64_t d = 0; d < D; d++)
                z += X[n * D + d] * Wt[d * K + k];
            z += 0.3 * ((double)rand() / RAND_MAX); /* noise: not separable */
            if (z > bv) bv = z, best = k;
        }
        y[n] = (int32_t)best;
    }
    free(Wt);
    return (td_dataset){.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
}

static void free_data(td_dataset *ds)
{
    free((void *)ds->X);
    free((void *)ds->y);
}

/* ---- PyTorch optimizer trajectories (reference/optimizers.json) -------------------- */

START_TEST(optimizers_match_torch)
{
    cJSON *ref = tu_ref_load("optimizers.json");
    int64_t N, D, K;
    float *X = tu_floats(cJSON_GetObjectItem(ref, "X"), NULL, &N, &D);
    int32_t *y = tu_ints(cJSON_GetObjectItem(ref, "y"), NULL, NULL, NULL);
    float *W0 = tu_floats(cJSON_GetObjectItem(ref, "W0"), NULL, NULL, &K);
    float *b0 = tu_floats(cJSON_GetObjectItem(ref, "b0"), NULL, NULL, NULL);
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    const cJSON *c;
    int ncase = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "cases"))
    {
        const char *name = cJSON_GetObjectItem(c, "optimizer")->valuestring;
        const cJSON *p = cJSON_GetObjectItem(c, "params");
        td_hparams hp;
        td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
        hp.optimizer = strcmp(name, "sgd") == 0 ? TD_OPT_SGD
            : strcmp(name, "adam") == 0         ? TD_OPT_ADAM
                                                : TD_OPT_ADAMW;
        if (hp.optimizer == TD_OPT_ADAMW) hp.weight_decay = 0.01; /* torch's AdamW default */
        hp.lr = tu_num(p, "lr");
        const cJSON *v;
        if ((v = cJSON_GetObjectItem(p, "momentum"))) hp.momentum = v->valuedouble;
        if ((v = cJSON_GetObjectItem(p, "dampening"))) hp.dampening = v->valuedouble;
        if ((v = cJSON_GetObjectItem(p, "nesterov"))) hp.nesterov = cJSON_IsTrue(v);
        if ((v = cJSON_GetObjectItem(p, "weight_decay"))) hp.weight_decay = v->valuedouble;
        if ((v = cJSON_GetObjectItem(p, "eps"))) hp.eps = v->valuedouble;
        if ((v = cJSON_GetObjectItem(p, "betas"))) {
            hp.betas[0] = cJSON_GetArrayItem(v, 0)->valuedouble;
            hp.betas[1] = cJSON_GetArrayItem(v, 1)->valuedouble;
        }
        int64_t nl;
        double *losses = tu_doubles(cJSON_GetObjectItem(c, "losses"), &nl, NULL, NULL);
        hp.epochs = nl;
        hp.n_classes = K;
        hp.n_initial_weights = D * K + K;
        hp.initial_weights = malloc(sizeof(float) * (size_t)hp.n_initial_weights);
        memcpy(hp.initial_weights, W0, sizeof(float) * (size_t)(D * K));
        memcpy(hp.initial_weights + D * K, b0, sizeof(float) * (size_t)K);
        td_trainer *t = tu_make_trainer(&hp, &ds);
        for (int64_t e = 0; e < nl; e++) {
            td_record rec;
            tu_step_ok(t, &rec);
            tu_close_at(__FILE__, __LINE__, rec.v[3], losses[e], 1e-4, 1e-6, name, e);
        }
        double *W = tu_doubles(cJSON_GetObjectItem(c, "W"), NULL, NULL, NULL);
        double *b = tu_doubles(cJSON_GetObjectItem(c, "b"), NULL, NULL, NULL);
        const td_model *m = td_trainer_model(t);
        tu_close_array(m->params, W, D * K, 1e-4, 1e-6, "W");
        tu_close_array(m->params + D * K, b, K, 1e-4, 1e-6, "b");
        free(W), free(b), free(losses);
        td_trainer_destroy(t);
        td_hparams_fini(&hp);
        ncase++;
    }
    ck_assert_int_ge(ncase, 10);
    free(X), free(y), free(W0), free(b0);
    cJSON_Delete(ref);
}
END_TEST

/* ---- full-batch GD with the ones column and the bias row unpenalised ---------------- */

START_TEST(column0_matches_reference)
{
    cJSON *ref = tu_ref_load("softmax_gd_intercept_column0.json");
    int64_t N, D, nh;
    float *X = tu_floats(cJSON_GetObjectItem(ref, "X"), NULL, &N, &D);
    int32_t *y = tu_ints(cJSON_GetObjectItem(ref, "y"), NULL, NULL, NULL);
    double *hist = tu_doubles(cJSON_GetObjectItem(ref, "history"), NULL, &nh, NULL);
    int64_t Kr;
    double *Wref = tu_doubles(cJSON_GetObjectItem(ref, "W"), NULL, NULL, &Kr);
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.intercept = TD_INTERCEPT_COLUMN0;
    hp.lr = tu_num(ref, "lr");
    hp.l2 = tu_num(ref, "l2");
    hp.epochs = (int64_t)tu_num(ref, "epochs");
    hp.n_classes = Kr;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    ck_assert_int_eq(td_trainer_model(t)->n_params, D * Kr); /* no separate b */
    for (int64_t e = 0; e < nh; e++) {
        td_record rec;
        tu_step_ok(t, &rec);
        tu_close_at(__FILE__, __LINE__, rec.v[3], hist[2 * e], 1e-4, 1e-7, "data_loss", e);
        tu_close_at(__FILE__, __LINE__, rec.v[4], hist[2 * e + 1], 1e-4, 1e-7, "reg_loss", e);
        tu_close_at(__FILE__, __LINE__, rec.v[2], hist[2 * e] + hist[2 * e + 1], 1e-4, 1e-7, "loss",
                    e);
    }
    ck_assert(td_trainer_done(t));
    tu_close_array(td_trainer_model(t)->params, Wref, D * Kr, 1e-4, 1e-6, "W");
    td_trainer_destroy(t);
    td_hparams_fini(&hp);
    free(X), free(y), free(hist), free(Wref);
    cJSON_Delete(ref);
}
END_TEST

/* ---- gradient of the model objective vs central differences (double) ---------------- */

static void fd_check(td_hparams *hp, const td_dataset *ds)
{
    td_trainer *t = tu_make_trainer(hp, ds);
    td_model *m = (td_model *)td_trainer_model(t);
    int64_t P = m->n_params;
    srand(7);
    for (int64_t i = 0; i < P; i++) /* away from 0 so l1's kink is not crossed */
        m->params[i] = (float)(((double)rand() / RAND_MAX - 0.5) * 0.8 + 0.05);
    float *g = malloc(sizeof(float) * (size_t)P), *scratch = malloc(sizeof(float) * (size_t)P);
    double f0;
    td_trainer_objective(t, &f0, g);
    const double h = 1e-2;
    for (int64_t i = 0; i < P; i++) {
        float keep = m->params[i];
        double fp, fm;
        m->params[i] = keep + (float)h;
        td_trainer_objective(t, &fp, scratch);
        m->params[i] = keep - (float)h;
        td_trainer_objective(t, &fm, scratch);
        m->params[i] = keep;
        double fd = (fp - fm) / (2 * h);
        tu_close_at(__FILE__, __LINE__, g[i], fd, 2e-3, 2e-4, "dloss/dparam", i);
    }
    free(g), free(scratch);
    td_trainer_destroy(t);
}

START_TEST(gradient_matches_finite_differences)
{
    td_dataset ds = make_data(60, 5, 4, 3, 1);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.l2 = 0.3;
    fd_check(&hp, &ds); /* intercept fit, l2 */
    hp.intercept = TD_INTERCEPT_COLUMN0;
    hp.l1 = 0.05;
    hp.l2_scale = TD_L2_MEAN;
    fd_check(&hp, &ds); /* column0, l1 + mean-scaled l2 */
    hp.intercept = TD_INTERCEPT_NONE;
    hp.label_smoothing = 0.1;
    float w[4] = {0.5f, 2.0f, 1.0f, 1.5f};
    hp.class_weights = w;
    hp.n_class_weights = 4;
    hp.regularize_bias = 1;
    fd_check(&hp, &ds); /* weights + smoothing */
    hp.class_weights = NULL;
    hp.n_class_weights = 0;
    free_data(&ds);
}
END_TEST

START_TEST(grouped_gradient_matches_finite_differences)
{
    /* 3 groups of 4 classes; targets from the data, some ignored. */
    td_dataset base = make_data(50, 4, 4, 5, 0);
    int32_t *y = malloc(sizeof(int32_t) * 150);
    for (int i = 0; i < 150; i++)
        y[i] = (i % 7 == 3) ? -100 : (base.y[i / 3] + i % 3) % 4;
    td_dataset ds = base;
    ds.y = y;
    ds.y_cols = 3;
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.groups = 3;
    hp.monotone_weight = 0.7;
    hp.monotone_margin = 0.1;
    hp.l2 = 0.1;
    fd_check(&hp, &ds);
    free(y);
    free_data(&base);
}
END_TEST

/* ---- the regularisation question: huge l2, bias row -> centred log priors ------------ */

START_TEST(huge_l2_leaves_log_priors_in_bias_row)
{
    int64_t N = 400, D = 4, K = 3;
    td_dataset ds = make_data(N, D, K, 11, 1);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.intercept = TD_INTERCEPT_COLUMN0;
    hp.l2 = 1e4;
    hp.lr = 1e-4; /* lr * l2 = 1: stable GD on the penalised rows */
    hp.optimizer = TD_OPT_SGD;
    hp.momentum = 0.99; /* effective lr 1e-2 along the flat bias directions */
    hp.epochs = 4000;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    const float *W = td_trainer_model(t)->params;
    double prior[3] = {0}, mean = 0;
    for (int64_t n = 0; n < N; n++)
        prior[ds.y[n]] += 1.0 / (double)N;
    for (int k = 0; k < K; k++)
        mean += log(prior[k]) / (double)K;
    for (int k = 0; k < K; k++)
        tu_close(W[k], log(prior[k]) - mean, 0, 2e-3, "bias row");
    for (int64_t i = K; i < D * K; i++)
        ck_assert_msg(fabsf(W[i]) < 1e-3, "W[%lld] = %g did not shrink", (long long)i, W[i]);
    td_trainer_destroy(t);
    free_data(&ds);
}
END_TEST

/* ---- determinism, threads, exact resume --------------------------------------------- */

static void run_all(td_trainer *t, td_record *recs)
{
    int64_t e = 0;
    while (!td_trainer_done(t))
        tu_step_ok(t, &recs[e++]);
}

static void minibatch_hp(td_hparams *hp)
{
    td_hparams_defaults(hp, TD_MODEL_SOFTMAX);
    hp->optimizer = TD_OPT_ADAM;
    hp->lr = 0.01;
    hp->batch_size = 32;
    hp->epochs = 12;
    hp->validation_split = 0.2;
    hp->l2 = 1e-3;
    hp->seed = 42;
}

START_TEST(same_seed_is_bit_identical_for_any_thread_count)
{
    td_dataset ds = make_data(5000, 20, 5, 9, 0);
    td_hparams hp;
    minibatch_hp(&hp);
    hp.batch_size = 0; /* full batch: 5000 rows make several chunks */
    for (int pass = 0; pass < 2; pass++) {
        td_trainer *a = tu_make_trainer(&hp, &ds), *b = tu_make_trainer(&hp, &ds);
        td_trainer_set_threads(b, 2);
        td_record ra[12], rb[12];
        run_all(a, ra);
        run_all(b, rb);
        const td_model *ma = td_trainer_model(a), *mb = td_trainer_model(b);
        ck_assert(memcmp(ma->params, mb->params, sizeof(float) * (size_t)ma->n_params) == 0);
        for (int e = 0; e < 12; e++)
            ck_assert(ra[e].v[2] == rb[e].v[2] && ra[e].v[5] == rb[e].v[5]);
        td_trainer_destroy(a);
        td_trainer_destroy(b);
        hp.batch_size = 64; /* second pass: mini-batches with shuffling */
    }
    free_data(&ds);
}
END_TEST

START_TEST(restored_snapshot_continues_bit_identically)
{
    td_dataset ds = make_data(800, 6, 3, 13, 0);
    td_hparams hp;
    minibatch_hp(&hp);
    size_t cap;
    void *snap = tu_resume_bit_identical(&hp, &ds, 5, 1, &cap);
    /* A snapshot of another shape is refused. */
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_error err;
    ck_assert_int_eq(td_trainer_restore(t, snap, cap - 4, &err), TD_EINVAL);
    td_trainer_destroy(t);
    free(snap);
    free_data(&ds);
}
END_TEST

/* ---- divergence, early stopping, validation ---------------------------------------- */

START_TEST(divergence_keeps_last_finite_weights)
{
    td_dataset ds = make_data(200, 4, 3, 17, 0);
    for (int i = 0; i < 200 * 4; i++)
        ((float *)ds.X)[i] *= 1e18f;
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.lr = 1e5;
    hp.epochs = 50;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    td_error err;
    td_status st = TD_OK;
    int64_t e = 0;
    while (st == TD_OK && !td_trainer_done(t)) {
        st = td_trainer_step(t, &rec, &err);
        e++;
    }
    ck_assert_int_eq(st, TD_EDIVERGED);
    ck_assert_str_eq(err.field, "lr");
    ck_assert_ptr_nonnull(strstr(err.message, "smaller lr"));
    const td_model *m = td_trainer_model(t);
    for (int64_t i = 0; i < m->n_params; i++)
        ck_assert(isfinite(m->params[i]));
    td_trainer_destroy(t);
    free_data(&ds);
}
END_TEST

START_TEST(early_stopping_stops)
{
    td_dataset ds = make_data(300, 4, 3, 19, 0);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.epochs = 10000;
    hp.n_iter_no_change = 5;
    hp.tol = 1e-3;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    ck_assert_int_lt(td_trainer_epoch(t), 10000);
    ck_assert_int_gt(td_trainer_epoch(t), 5);
    td_trainer_destroy(t);
    free_data(&ds);
}
END_TEST

static void expect_invalid(const td_hparams *hp, const td_dataset *ds, const char *field)
{
    td_error err = {0};
    td_trainer *t = NULL;
    td_status st = td_trainer_create(&t, hp, ds, NULL, &err);
    ck_assert_msg(st == TD_EINVAL, "expected an error on %s", field);
    ck_assert_str_eq(err.field, field);
    ck_assert(strlen(err.message) > 10);
    ck_assert_ptr_null(t);
}

START_TEST(validation_names_field_and_rule)
{
    td_dataset ds = make_data(20, 3, 3, 23, 0);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.lr = 0;
    expect_invalid(&hp, &ds, "lr");
    hp.lr = 0.1;
    hp.nesterov = 1;
    expect_invalid(&hp, &ds, "nesterov");
    hp.nesterov = 0;
    hp.intercept = TD_INTERCEPT_COLUMN0; /* column 0 is not ones */
    expect_invalid(&hp, &ds, "X[0][0]");
    hp.intercept = TD_INTERCEPT_FIT;
    hp.groups = 2;
    expect_invalid(&hp, &ds, "groups");
    hp.groups = 1;
    hp.validation_split = 0.01;
    expect_invalid(&hp, &ds, "validation_split");
    hp.validation_split = 0;
    hp.betas[1] = 1.0;
    expect_invalid(&hp, &ds, "betas");
    hp.betas[1] = 0.999;
    hp.n_classes = 2; /* labels reach 2 */
    int32_t *y = (int32_t *)ds.y;
    y[4] = 2;
    expect_invalid(&hp, &ds, "n_classes");
    hp.n_classes = 0;
    y[4] = -3;
    expect_invalid(&hp, &ds, "y[4]");
    free_data(&ds);
}
END_TEST

START_TEST(predict_gives_distributions_and_argmax)
{
    td_dataset ds = make_data(500, 5, 4, 29, 0);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.epochs = 200;
    hp.lr = 0.5;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    const td_model *m = td_trainer_model(t);
    float *p = malloc(sizeof(float) * 500 * 4);
    int32_t *lab = malloc(sizeof(int32_t) * 500);
    td_error err;
    ck_assert_int_eq(td_model_predict(p, lab, m, ds.X, 500, 5, &err), TD_OK);
    int correct = 0;
    for (int n = 0; n < 500; n++) {
        double s = 0;
        for (int k = 0; k < 4; k++) {
            s += p[n * 4 + k];
            ck_assert(p[n * 4 + k] <= p[n * 4 + lab[n]]);
        }
        tu_close(s, 1.0, 0, 1e-5, "row sum");
        correct += lab[n] == ds.y[n];
    }
    /* Same accuracy as the trainer's own last evaluation, and well above chance. */
    ck_assert_int_gt(correct, 400);
    ck_assert_int_eq(td_model_predict(p, lab, m, ds.X, 100, 4, &err), TD_EINVAL);
    free(p), free(lab);
    td_trainer_destroy(t);
    free_data(&ds);
}
END_TEST

Suite *suite_softmax(void)
{
    Suite *s = suite_create("softmax");
    TCase *tc = tcase_create("softmax");
    tcase_add_test(tc, optimizers_match_torch);
    tcase_add_test(tc, column0_matches_reference);
    tcase_add_test(tc, gradient_matches_finite_differences);
    tcase_add_test(tc, grouped_gradient_matches_finite_differences);
    tcase_add_test(tc, huge_l2_leaves_log_priors_in_bias_row);
    tcase_add_test(tc, same_seed_is_bit_identical_for_any_thread_count);
    tcase_add_test(tc, restored_snapshot_continues_bit_identically);
    tcase_add_test(tc, divergence_keeps_last_finite_weights);
    tcase_add_test(tc, early_stopping_stops);
    tcase_add_test(tc, validation_names_field_and_rule);
    tcase_add_test(tc, predict_gives_distributions_and_argmax);
    suite_add_tcase(s, tc);
    return s;
}
