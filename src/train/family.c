/* family.c — the registry's table: one row per td_model_kind (family.h). */
#include "train/family.h"


static const td_family *const families[TD_MODEL_COUNT] = {
    [TD_MODEL_SOFTMAX] = &td_family_softmax,
    [TD_MODEL_MLP] = &td_family_mlp,
    [TD_MODEL_GMM] = &td_family_gmm,
    [TD_MODEL_EMBED_GMM] = &td_family_embed_gmm,
};

/* The rows' names by kind, for the callers that index them (hparams.h); tests/test_family.c
 * checks that they agree with the rows. */
const char *const td_model_names[] = {"softmax", "mlp", "gmm", "embed_gmm", NULL};

const td_family *td_family_of(int kind)
{
    return kind >= 0 && kind < TD_MODEL_COUNT ? families[kind] : NULL;
}

const char *td_model_doc(td_model_kind kind)
{
    const td_family *f = td_family_of((int)kind);
    return f ? f->doc : NULL;
}
