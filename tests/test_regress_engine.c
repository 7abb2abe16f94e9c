/* test_regress_engine.c — fuzz findings in the engine, asserted at the engine's API (the
 * inputs that found them, and the replay of every finding, are test_regress.c's). */
#include <string.h>

#include "testutil.h"
#include "traind/hparams.h"
#include "traind/train.h"

static float X12[12 * 3];

static td_dataset probs_dataset(float *Y)
{
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 3; j++) {
            X12[i * 3 + j] = (float)(i + j);
            Y[i * 3 + j] = j == i % 3 ? 0.8f : 0.1f;
        }
    td_dataset ds = {.N = 12, .D = 3, .X = X12, .Y = Y, .Y_cols = 3};
    return ds;
}

/* tests/regress/job/probs-n-classes-overread: probability targets of 3 columns with
 * n_classes 6 were accepted, and the trainer read 6 floats per row of Y (a heap over-read
 * when gathering the targets of a validation split, and in every loss evaluation). */
START_TEST(probs_need_n_classes_equal_to_their_columns)
{
    float Y[12 * 3];
    td_dataset ds = probs_dataset(Y);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.n_classes = 6;
    hp.validation_split = 0.25;
    td_error err = {{0}, {0}};
    int64_t K = 0;
    ck_assert_int_eq(td_hparams_check(&hp, &ds, &K, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "n_classes");
    ck_assert_ptr_nonnull(strstr(err.message, "3 columns"));
    hp.n_classes = 3; /* the same number is fine, as is none */
    ck_assert_int_eq(td_hparams_check(&hp, &ds, &K, &err), TD_OK);
    ck_assert_int_eq(K, 3);
    hp.n_classes = 0;
    td_trainer *t = NULL;
    ck_assert_int_eq(td_trainer_create(&t, &hp, &ds, NULL, &err), TD_OK);
    td_trainer_destroy(t);
}
END_TEST

/* An mlp with hidden [30000, 30000] (9e8 parameters, 3.6 GB each for the weights, the
 * gradient, the previous step and two Adam moments) was accepted: a 202, then the OOM
 * killer once the job trained. Networks now have the cap embed_gmm has (2^28). */
START_TEST(huge_networks_are_refused)
{
    float Y[12 * 3];
    td_dataset ds = probs_dataset(Y);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.n_hidden = 2;
    hp.mlp.hidden[0] = hp.mlp.hidden[1] = 30000;
    td_error err = {{0}, {0}};
    ck_assert_int_eq(td_hparams_check(&hp, &ds, NULL, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "hidden");
    ck_assert_ptr_nonnull(strstr(err.message, "parameters"));
    hp.mlp.hidden[0] = hp.mlp.hidden[1] = 4000; /* 1.6e7: fine */
    ck_assert_int_eq(td_hparams_check(&hp, &ds, NULL, &err), TD_OK);
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX); /* softmax: D x K */
    static float Xw[2 * 30000];
    td_dataset wide = {.N = 2, .D = 30000, .X = Xw, .Y = NULL};
    static float Yw[2 * 10000];
    wide.Y = Yw, wide.Y_cols = 10000;
    ck_assert_int_eq(td_hparams_check(&hp, &wide, NULL, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "dataset");
}
END_TEST

Suite *suite_regress_engine(void)
{
    Suite *s = suite_create("regress_engine");
    TCase *found = tcase_create("found");
    tcase_add_test(found, probs_need_n_classes_equal_to_their_columns);
    tcase_add_test(found, huge_networks_are_refused);
    suite_add_tcase(s, found);
    return s;
}
