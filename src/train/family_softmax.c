/* family_softmax.c — the softmax family's row: multinomial logistic regression, one linear
 * layer and a softmax per group, trained by grad_trainer.c (family.h). */
#include "train/family.h"

#include "train/linear.h"


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

/* out (N, K) = X W + b */
static td_status softmax_forward(float *out, const td_model *m, const float *X, int64_t N,
                                 td_error *err)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    int n = td_model_layout(m, t);
    td_linear *L = td_linear_create(m->D, m->K, 0, N);
    if (!L) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    td_linear_forward(L, NULL, out, m->params + t[0].offset, n > 1 ? m->params + t[1].offset : NULL,
                      X, NULL, N);
    td_linear_destroy(L);
    return TD_OK;
}

static td_status softmax_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                                 int64_t N, td_error *err)
{
    return td_net_predict(probs, labels, m, X, N, softmax_forward, err);
}

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
    .predict = softmax_predict,
    /* trainer (grad_trainer.c) */
    .trainer = &td_grad_trainer,
};
