/* test_family.c — the model-family registry (src/train/family.h): one complete row per
 * td_model_kind, whose name is the kind's JSON name, and the generic entry points
 * dispatching through it (defaults, planned epochs, shapes, unknown kinds refused). */
#include "testutil.h"
#include "train/family.h"

#include <math.h>
#include <string.h>

START_TEST(every_kind_has_a_complete_row)
{
    for (int k = 0; k < TD_MODEL_COUNT; k++) {
        const td_family *f = td_family_of(k);
        ck_assert_ptr_nonnull(f);
        ck_assert_str_eq(f->name, td_model_names[k]);
        ck_assert_int_eq(td_model_parse(f->name), k);
        ck_assert_ptr_eq(td_model_doc((td_model_kind)k), f->doc);
        ck_assert_uint_gt(strlen(f->doc), 20);
        ck_assert_ptr_nonnull(f->check);
        ck_assert_ptr_nonnull(f->shape);
        ck_assert_ptr_nonnull(f->layout);
        ck_assert_ptr_nonnull(f->predict);
        ck_assert_ptr_nonnull(f->trainer);
        ck_assert_ptr_nonnull(f->trainer->check);
        ck_assert_ptr_nonnull(f->trainer->bytes);
        ck_assert_ptr_nonnull(f->trainer->create);
        ck_assert_ptr_nonnull(f->trainer->step);
    }
    ck_assert_ptr_null(td_model_names[TD_MODEL_COUNT]);
    ck_assert_ptr_null(td_family_of(-1));
    ck_assert_ptr_null(td_family_of(TD_MODEL_COUNT));
    ck_assert_ptr_null(td_model_doc(TD_MODEL_COUNT));
}
END_TEST

START_TEST(defaults_come_from_the_rows)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    ck_assert_int_eq(hp.optimizer, TD_OPT_SGD);
    ck_assert_int_eq(hp.epochs, 100);
    ck_assert_int_eq(td_hparams_epochs(&hp), 100);
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    ck_assert_int_eq(hp.optimizer, TD_OPT_ADAM);
    ck_assert_int_eq(hp.batch_size, 64);
    ck_assert_int_eq(hp.mlp.n_hidden, 1);
    ck_assert_int_eq(hp.mlp.hidden[0], 100);
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    ck_assert_double_eq(hp.tol, 1e-3);
    hp.gmm.max_iter = 7;
    ck_assert_int_eq(td_hparams_epochs(&hp), 7); /* gmm plans max_iter EM iterations */
    td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
    ck_assert_int_eq(hp.epochs, 300);
    ck_assert_int_eq(hp.mlp.hidden[0], 128);
    ck_assert_int_eq(hp.gmm.components, 2);
    ck_assert_int_eq(hp.gmm.n_init, 5);
    ck_assert_int_eq(hp.embed.embedding_dim, 2);
    ck_assert_int_eq(hp.embed.warmup_iterations, -1);
    hp.n_classes = 3;
    ck_assert_int_eq(td_hparams_open(&hp), 1); /* the warm-up is open */
    td_hparams_resolve(&hp, 2);                /* embed_gmm's row fills the warm-up: 15% of 300 */
    ck_assert_int_eq(hp.embed.warmup_iterations, 45);
    ck_assert_int_eq(td_hparams_open(&hp), 0);
    ck_assert_double_eq(hp.weight_decay, 0); /* adam's */
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    ck_assert_int_eq(td_hparams_open(&hp), 1); /* n_classes from the data */
    hp.n_classes = 3;
    ck_assert_int_eq(td_hparams_open(&hp), 0);
}
END_TEST

START_TEST(shapes_and_layouts_per_family)
{
    td_hparams hp;
    td_model m;
    td_tensor_desc t[TD_MAX_TENSORS];
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.intercept = TD_INTERCEPT_NONE;
    td_model_shape(&m, &hp, 3, 4);
    ck_assert_int_eq(td_model_layout(&m, t), 1); /* W only */
    ck_assert_int_eq(m.n_params, 12);
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.hidden[0] = 5;
    td_model_shape(&m, &hp, 3, 2);
    ck_assert_int_eq(td_model_layout(&m, t), 4);
    ck_assert_int_eq(m.n_params, 3 * 5 + 5 + 5 * 2 + 2);
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = 2;
    hp.gmm.covariance = TD_COV_DIAG;
    td_model_shape(&m, &hp, 3, 2);
    ck_assert_int_eq(m.G, 1);
    ck_assert(isnan(m.lower_bound));
    ck_assert_int_eq(td_model_layout(&m, t), 3);
    ck_assert_str_eq(t[2].name, "covariances");
    ck_assert_int_eq(m.n_params, 2 + 2 * 3 + 2 * 3);
    td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
    td_model_shape(&m, &hp, 3, 2);
    ck_assert_int_eq(m.components, 2);
    ck_assert_int_eq(td_model_layout(&m, t), 4 + 4); /* W0 b0 W1 b1, gmm, assignments */
}
END_TEST

START_TEST(unknown_kind_is_refused)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.model = (td_model_kind)TD_MODEL_COUNT;
    float X[2] = {1, 2};
    int32_t y[2] = {0, 1};
    td_dataset ds = {.X = X, .y = y, .N = 2, .D = 1, .y_cols = 1};
    td_error err = {0};
    int64_t K = 0;
    ck_assert_int_eq(td_hparams_check(&hp, &ds, &K, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "model");
    ck_assert_int_eq(td_trainer_check(&hp, &ds, NULL, &K, &err), TD_EINVAL);
    td_trainer *t = (td_trainer *)&hp;
    ck_assert_int_eq(td_trainer_create(&t, &hp, &ds, NULL, &err), TD_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_uint_eq(td_train_memory_estimate(&hp, &ds, NULL, 2, 1), 0);
}
END_TEST

Suite *suite_family(void)
{
    Suite *s = suite_create("family");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, every_kind_has_a_complete_row);
    tcase_add_test(tc, defaults_come_from_the_rows);
    tcase_add_test(tc, shapes_and_layouts_per_family);
    tcase_add_test(tc, unknown_kind_is_refused);
    suite_add_tcase(s, tc);
    return s;
}
