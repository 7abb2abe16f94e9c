/* family.c — the registry's table: one row per td_model_kind, all in one place as
 * liblinear's solver table and Redis's command table (family.h). */
#include "train/family.h"
#include "train/embed_gmm.h" /* td_embed_check, td_embed_layout */
#include "train/gmm.h"       /* td_gmm_check, td_gmm_layout */

/* One row per family: what it is, its hyperparameters' hooks, its model and its trainer.
 * The functions a row names live in the family's own file, family_<name>.c (family.h). */
static const td_family families[TD_MODEL_COUNT] = {
    /* in td_model_kind order (test family) */
    {
        /* TD_MODEL_SOFTMAX */
        .name = "softmax",
        .doc = "multinomial logistic regression: one linear layer and a softmax (per group), "
               "trained by gradient descent on the cross-entropy (scikit-learn's "
               "LogisticRegression with l2 = 1/(C N))",
        /* hyperparameters: the shared defaults */
        .check = td_family_softmax_check,
        /* model */
        .shape = td_family_softmax_shape,
        .layout = td_net_layout,
        .predict = td_net_predict,
        /* trainer (grad_trainer.c) */
        .trainer = &td_grad_trainer,
    },
    {
        /* TD_MODEL_MLP */
        .name = "mlp",
        .doc = "multilayer perceptron: hidden layers with an activation, then a softmax output, "
               "trained by gradient descent on the cross-entropy (scikit-learn's MLPClassifier)",
        /* hyperparameters */
        .defaults = td_family_mlp_defaults,
        .check_hparams = td_family_mlp_check_hparams,
        .check = td_family_mlp_check,
        /* model */
        .shape = td_family_mlp_shape,
        .layout = td_net_layout,
        .predict = td_net_predict,
        /* trainer (grad_trainer.c, as softmax) */
        .trainer = &td_grad_trainer,
    },
    {
        /* TD_MODEL_GMM */
        .name = "gmm",
        .doc = "Gaussian mixture fitted by expectation-maximisation (scikit-learn's "
               "GaussianMixture); needs no labels",
        /* hyperparameters; unlabelled: labels, if any, are ignored */
        .defaults = td_family_gmm_defaults,
        .check = td_gmm_check,
        .epochs = td_family_gmm_epochs,
        /* model (gmm.c, gmm_model.c) */
        .shape = td_family_gmm_shape,
        .layout = td_gmm_layout,
        .predict = td_family_gmm_predict,
        /* trainer (gmm_trainer.c): one step = one EM iteration */
        .trainer = &td_gmm_trainer,
    },
    {
        /* TD_MODEL_EMBED_GMM */
        .name = "embed_gmm",
        .doc = "a network mapping rows to an embedding trained with a pair loss (labels or "
               "pairs), and a Gaussian mixture fitted on the embeddings",
        /* hyperparameters; labels or pairs define the pair loss */
        .defaults = td_family_embed_defaults,
        .resolve = td_family_embed_resolve,
        .open = td_family_embed_open,
        .check = td_embed_check,
        /* model: the network, the mixture, one assignment per training row */
        .shape = td_family_embed_shape,
        .layout = td_embed_layout,
        .predict = td_family_embed_predict,
        /* trainer (embed_gmm.c): one step = one iteration */
        .trainer = &td_embed_trainer,
    },
};

/* The rows' names by kind, for the callers that index them (hparams.h); tests/test_family.c
 * checks that they agree with the rows. */
const char *const td_model_names[] = {"softmax", "mlp", "gmm", "embed_gmm", NULL};

const td_family *td_family_of(int kind)
{
    return kind >= 0 && kind < TD_MODEL_COUNT ? &families[kind] : NULL;
}

const char *td_model_doc(td_model_kind kind)
{
    const td_family *f = td_family_of((int)kind);
    return f ? f->doc : NULL;
}
