/* family_mlp.c — what the mlp family's row (family.c) names: hidden layers with an
 * activation and a softmax output, trained by grad_trainer.c on mlp.c's layers. */
#include "train/family.h"

#include <string.h>


void td_family_mlp_defaults(td_hparams *hp)
{
    hp->optimizer = TD_OPT_ADAM;
    hp->lr = 1e-3;
    hp->batch_size = 64;
    hp->epochs = 20;
    hp->mlp.n_hidden = 1;
    hp->mlp.hidden[0] = 100;
}

td_status td_family_mlp_check_hparams(const td_hparams *hp, td_error *err)
{
    if (hp->mlp.n_hidden < 1)
        return td_fail(err, TD_EINVAL, "hidden", "hidden needs at least one layer size");
    return TD_OK;
}

td_status td_family_mlp_check(const td_hparams *hp, const td_dataset *ds, int64_t *K, td_error *err)
{
    return td_net_check(hp, ds, hp->mlp.n_hidden, 0, K, err);
}

void td_family_mlp_shape(td_model *m, const td_hparams *hp)
{
    m->n_hidden = hp->mlp.n_hidden;
    memcpy(m->hidden, hp->mlp.hidden, sizeof m->hidden);
}
