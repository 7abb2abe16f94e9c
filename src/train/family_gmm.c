/* family_gmm.c — what the gmm family's row (family.c) names: a Gaussian mixture fitted by
 * EM (gmm.c, gmm_trainer.c). */
#include "train/family.h"

#include <math.h>

#include "train/gmm.h"

void td_family_gmm_defaults(td_hparams *hp)
{
    hp->tol = 1e-3; /* gmm.components: the shared default, 1 */
}

int64_t td_family_gmm_epochs(const td_hparams *hp) { return hp->gmm.max_iter; }

/* D = E features, K = M components */
void td_family_gmm_shape(td_model *m, const td_hparams *hp)
{
    m->G = 1;
    m->covariance = hp->gmm.covariance;
    m->lower_bound = NAN;
}

/* probs: responsibilities (N, M) */
td_status td_family_gmm_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                                int64_t N, td_error *err)
{
    return td_gmm_predict(labels, probs, NULL, m, X, N, m->D, err);
}
