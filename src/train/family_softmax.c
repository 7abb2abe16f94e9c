/* family_softmax.c — the softmax family's row: multinomial logistic regression, one linear
 * layer and a softmax per group, trained by grad_trainer.c (family.h). */
#include "train/family.h"

static td_status softmax_check(const td_hparams *hp, const td_dataset *ds, int64_t *K,
                               td_error *err)
{
    if (hp->standardize && hp->intercept == TD_INTERCEPT_COLUMN0)
        return td_fail(err, TD_EINVAL, "standardize",
                       "standardize cannot be combined with intercept \"column0\": it would "
                       "turn the ones column into zeros; use intercept \"fit\"");
    return td_net_check(hp, ds, 0, hp->intercept == TD_INTERCEPT_COLUMN0, K, err);
}

static void softmax_shape(td_model *m, const td_hparams *hp) { m->intercept = hp->intercept; }

const td_family td_family_softmax = {
    .name = "softmax",
    .doc = "multinomial logistic regression: one linear layer and a softmax (per group), "
           "trained by gradient descent on the cross-entropy (scikit-learn's "
           "LogisticRegression with l2 = 1/(C N))",
    /* hyperparameters: the shared defaults */
    .check = softmax_check,
    /* model */
    .shape = softmax_shape,
    .layout = td_net_layout,
    .predict = td_net_predict,
    /* trainer (grad_trainer.c) */
    .trainer = &td_grad_trainer,
};
