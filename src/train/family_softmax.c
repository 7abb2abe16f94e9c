/* family_softmax.c — what the softmax family's row (family.c) names: multinomial logistic
 * regression, one linear layer and a softmax per group, trained by grad_trainer.c. */
#include "train/family.h"

td_status td_family_softmax_check(const td_hparams *hp, const td_dataset *ds, int64_t *K,
                                  td_error *err)
{
    if (hp->standardize && hp->intercept == TD_INTERCEPT_COLUMN0)
        return td_fail(err, TD_EINVAL, "standardize",
                       "standardize cannot be combined with intercept \"column0\": it would "
                       "turn the ones column into zeros; use intercept \"fit\"");
    return td_net_check(hp, ds, 0, hp->intercept == TD_INTERCEPT_COLUMN0, K, err);
}

void td_family_softmax_shape(td_model *m, const td_hparams *hp) { m->intercept = hp->intercept; }
