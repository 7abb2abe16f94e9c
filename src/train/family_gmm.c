/* family_gmm.c — the gmm family's row: a Gaussian mixture fitted by EM (gmm.c,
 * gmm_trainer.c; family.h). */
#include "train/family.h"

#include <math.h>

#include "train/gmm.h"

static void gmm_defaults(td_hparams *hp)
{
    hp->tol = 1e-3; /* gmm.components: the shared default, 1 */
}

static int64_t gmm_epochs(const td_hparams *hp) { return hp->gmm.max_iter; }

/* D = E features, K = M components */
static void gmm_shape(td_model *m, const td_hparams *hp)
{
    m->G = 1;
    m->covariance = hp->gmm.covariance;
    m->lower_bound = NAN;
}

/* probs: responsibilities (N, M) */
static td_status gmm_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                             int64_t N, td_error *err)
{
    return td_gmm_predict(labels, probs, NULL, m, X, N, m->D, err);
}

const td_family td_family_gmm = {
    .name = "gmm",
    .doc = "Gaussian mixture fitted by expectation-maximisation (scikit-learn's "
           "GaussianMixture); needs no labels",
    /* hyperparameters; unlabelled: labels, if any, are ignored */
    .defaults = gmm_defaults,
    .check = td_gmm_check,
    .epochs = gmm_epochs,
    /* model (gmm.c, gmm_model.c) */
    .shape = gmm_shape,
    .layout = td_gmm_layout,
    .predict = gmm_predict,
    /* trainer (gmm_trainer.c): one step = one EM iteration */
    .trainer = &td_gmm_trainer,
};
