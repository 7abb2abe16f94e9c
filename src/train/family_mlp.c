/* family_mlp.c — the mlp family's row: hidden layers with an activation and a softmax
 * output, trained by grad_trainer.c on mlp.c's layers (family.h). */
#include "train/family.h"

#include <string.h>


static void mlp_defaults(td_hparams *hp)
{
    hp->optimizer = TD_OPT_ADAM;
    hp->lr = 1e-3;
    hp->batch_size = 64;
    hp->epochs = 20;
    hp->mlp.n_hidden = 1;
    hp->mlp.hidden[0] = 100;
}

static td_status mlp_check_hparams(const td_hparams *hp, td_error *err)
{
    if (hp->mlp.n_hidden < 1)
        return td_fail(err, TD_EINVAL, "hidden", "hidden needs at least one layer size");
    return TD_OK;
}

static td_status mlp_check(const td_hparams *hp, const td_dataset *ds, int64_t *K, td_error *err)
{
    return td_net_check(hp, ds, hp->mlp.n_hidden, 0, K, err);
}

static void mlp_shape(td_model *m, const td_hparams *hp)
{
    m->n_hidden = hp->mlp.n_hidden;
    memcpy(m->hidden, hp->mlp.hidden, sizeof m->hidden);
}

const td_family td_family_mlp = {
    .name = "mlp",
    .doc = "multilayer perceptron: hidden layers with an activation, then a softmax output, "
           "trained by gradient descent on the cross-entropy (scikit-learn's MLPClassifier)",
    /* hyperparameters */
    .defaults = mlp_defaults,
    .check_hparams = mlp_check_hparams,
    .check = mlp_check,
    /* model */
    .shape = mlp_shape,
    .layout = td_net_layout,
    .predict = td_net_predict,
    /* trainer (grad_trainer.c, as softmax) */
    .trainer = &td_grad_trainer,
};
