/* test_standardize.c — the `standardize` hyperparameter and the warnings of a run:
 *   engine   td_standardize_fit against hand-computed population statistics (a constant
 *            feature keeps scale 1), predictions of a standardized model equal the plain
 *            model's on standardized rows, the memory estimate counts the copy, every
 *            warning rule of td_train_warnings on small data.
 * The same through a live daemon is test_rest_standardize.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "traind/train.h"

START_TEST(fit_is_population_std)
{
    /* feature 0: 1, 2, 3, 6 (mean 3, var (4+1+0+9)/4 = 3.5); feature 1 constant */
    float X[] = {1, 5, 2, 5, 3, 5, 6, 5};
    float mean[2], scale[2];
    ck_assert_int_eq(td_standardize_fit(mean, scale, X, 4, 2, NULL), TD_OK);
    ck_assert_float_eq(mean[0], 3.0f);
    ck_assert_float_eq(scale[0], (float)sqrt(3.5));
    ck_assert_float_eq(mean[1], 5.0f);
    ck_assert_float_eq(scale[1], 1.0f); /* constant: only centred */
    float out[8];
    td_standardize_apply(out, X, 4, 2, mean, scale);
    ck_assert_float_eq(out[0], (1.0f - 3.0f) / (float)sqrt(3.5));
    ck_assert_float_eq(out[1], 0.0f);
}
END_TEST

/* A standardized trainer's model predicts on raw rows what the plain model (its params,
 * no mean) predicts on standardized rows; its snapshot restores; the estimate grows by at
 * least the copy. */
START_TEST(model_applies_its_standardization)
{
    enum { N = 40, D = 3 };
    float X[N * D];
    int32_t y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        X[i * D] = (float)(i % 7) * 100 + (float)y[i] * 300;
        X[i * D + 1] = (float)(i % 5) * 0.01f - (float)y[i] * 0.02f;
        X[i * D + 2] = 4;
    }
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.standardize = 1;
    hp.epochs = 5;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    for (int e = 0; e < 5; e++)
        tu_step_ok(t, &rec);
    const td_model *m = td_trainer_model(t);
    ck_assert_ptr_nonnull(m->mean);
    ck_assert_float_eq(m->scale[2], 1.0f);
    float probs[N * 2], plain_probs[N * 2], Xs[N * D];
    int32_t labels[N], plain_labels[N];
    td_error err;
    ck_assert_int_eq(td_model_predict(probs, labels, m, X, N, D, &err), TD_OK);
    td_model plain = *m;
    plain.mean = plain.scale = NULL;
    td_standardize_apply(Xs, X, N, D, m->mean, m->scale);
    ck_assert_int_eq(td_model_predict(plain_probs, plain_labels, &plain, Xs, N, D, &err), TD_OK);
    ck_assert_mem_eq(probs, plain_probs, sizeof probs);
    ck_assert_mem_eq(labels, plain_labels, sizeof labels);

    /* a model file (td_model_encode / decode) keeps them: the same predictions */
    size_t fsz = td_model_file_size(m);
    void *file = malloc(fsz);
    ck_assert_uint_eq(td_model_encode(m, file, fsz), fsz);
    td_model back;
    ck_assert_int_eq(td_model_decode(&back, file, fsz, &err), TD_OK);
    ck_assert_ptr_nonnull(back.mean);
    ck_assert_mem_eq(back.mean, m->mean, sizeof(float) * 2 * D);
    ck_assert_int_eq(td_model_predict(plain_probs, plain_labels, &back, X, N, D, &err), TD_OK);
    ck_assert_mem_eq(probs, plain_probs, sizeof probs);
    td_model_fini(&back);
    ck_assert_int_eq(td_model_decode(&back, file, fsz - 4, &err), TD_EINVAL);
    free(file);

    /* the snapshot carries mean and scale; a trainer on other data refuses it */
    size_t cap = td_trainer_state_size(t);
    void *snap = malloc(cap);
    size_t len = td_trainer_save(t, snap, cap);
    ck_assert_uint_gt(len, 0);
    td_trainer *t2 = tu_make_trainer(&hp, &ds);
    ck_assert_int_eq(td_trainer_restore(t2, snap, len, &err), TD_OK);
    td_trainer_destroy(t2);
    X[0] += 1000;
    t2 = tu_make_trainer(&hp, &ds);
    ck_assert_int_eq(td_trainer_restore(t2, snap, len, &err), TD_EINVAL);
    ck_assert_msg(strstr(err.message, "standardization") != NULL, "%s", err.message);
    td_trainer_destroy(t2);
    free(snap);
    td_trainer_destroy(t);

    int64_t K;
    ck_assert_int_eq(td_trainer_check(&hp, &ds, NULL, &K, &err), TD_OK);
    size_t with = td_train_memory_estimate(&hp, &ds, NULL, K, 1);
    hp.standardize = 0;
    size_t without = td_train_memory_estimate(&hp, &ds, NULL, K, 1);
    ck_assert_uint_ge(with, without + sizeof(float) * N * D);

    /* intercept column0 would turn its ones column into zeros */
    hp.standardize = 1;
    hp.intercept = TD_INTERCEPT_COLUMN0;
    ck_assert_int_eq(td_trainer_check(&hp, &ds, NULL, &K, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "standardize");
    td_hparams_fini(&hp);
}
END_TEST

static int has_warning(const td_warning *w, int n, const char *code)
{
    for (int i = 0; i < n; i++)
        if (strcmp(w[i].code, code) == 0) return 1;
    return 0;
}

START_TEST(warning_rules)
{
    float X[] = {0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1};
    int32_t y[] = {2, 2, 2, 2, 2, 2};
    td_dataset ds = {.N = 6, .D = 2, .X = X, .y = y, .y_cols = 1};
    td_hparams hp;
    td_warning w[TD_MAX_WARNINGS];
    int n = 0;

    /* the loss: fell (none), ended above its first value, rose tenfold and came back */
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    td_loss_trace lt;
    td_loss_trace_init(&lt);
    td_loss_trace_add(&lt, 1.0);
    td_loss_trace_add(&lt, 0.5);
    td_loss_trace_add(&lt, NAN); /* skipped */
    ds.y = NULL;
    td_train_warnings(w, &n, &hp, &ds, NULL, &lt);
    ck_assert_int_eq(n, 0);
    td_loss_trace_add(&lt, 1.5);
    td_train_warnings(w, &n, &hp, &ds, NULL, &lt);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(w[0].code, "loss_increased");
    n = 0;
    td_loss_trace_add(&lt, 10.0);
    td_loss_trace_add(&lt, 0.9);
    td_train_warnings(w, &n, &hp, &ds, NULL, &lt);
    ck_assert_int_eq(n, 1);
    ck_assert_msg(strstr(w[0].message, "ten times") != NULL, "%s", w[0].message);

    /* a classifier's loss that fell but ended above log K (K = 3: 1.0986) */
    td_model net = {.kind = TD_MODEL_MLP, .K = 3, .G = 1};
    td_loss_trace_init(&lt);
    td_loss_trace_add(&lt, 5e7);
    td_loss_trace_add(&lt, 1.2);
    n = 0;
    td_train_warnings(w, &n, &hp, &ds, &net, &lt);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(w[0].code, "loss_above_chance");
    td_loss_trace_add(&lt, 1.05);
    n = 0;
    td_train_warnings(w, &n, &hp, &ds, &net, &lt);
    ck_assert_int_eq(n, 0);

    /* one class */
    n = 0;
    ds.y = y;
    td_train_warnings(w, &n, &hp, &ds, NULL, NULL);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(w[0].code, "single_class");
    ck_assert_msg(strstr(w[0].message, "class 2") != NULL, "%s", w[0].message);

    /* gmm: 3 components on 2 distinct rows; not converged in max_iter with tol > 0 */
    td_hparams_fini(&hp);
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = 3;
    hp.gmm.max_iter = 4;
    hp.tol = 1e-3;
    td_model m = {.kind = TD_MODEL_GMM, .converged = 0, .n_iter = 4};
    n = 0;
    td_train_warnings(w, &n, &hp, &ds, &m, NULL);
    ck_assert_int_eq(n, 2);
    ck_assert(has_warning(w, n, "not_converged"));
    ck_assert(has_warning(w, n, "components_exceed_distinct_rows"));
    hp.tol = 0; /* tol 0 asks for exactly max_iter iterations */
    hp.gmm.components = 2;
    n = 0;
    td_train_warnings(w, &n, &hp, &ds, &m, NULL);
    ck_assert_int_eq(n, 0);

    /* scales: std 0.5 against 5000 (ratio 1e4) warns, not with standardize; a constant
     * feature is left out of the ratio */
    float Xs[] = {0, 0, 7, 1, 10000, 7, 0, 0, 7, 1, 10000, 7};
    td_dataset wide = {.N = 4, .D = 3, .X = Xs};
    n = 0;
    td_train_warnings(w, &n, &hp, &wide, NULL, NULL);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(w[0].code, "features_unscaled");
    n = 0;
    hp.standardize = 1;
    td_train_warnings(w, &n, &hp, &wide, NULL, NULL);
    ck_assert_int_eq(n, 0);
    td_hparams_fini(&hp);
}
END_TEST

Suite *suite_standardize(void)
{
    Suite *s = suite_create("standardize");
    TCase *tc = tcase_create("engine");
    tcase_add_test(tc, fit_is_population_std);
    tcase_add_test(tc, model_applies_its_standardization);
    tcase_add_test(tc, warning_rules);
    suite_add_tcase(s, tc);
    return s;
}
