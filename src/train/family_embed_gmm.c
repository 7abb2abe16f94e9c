/* family_embed_gmm.c — what the embed_gmm family's row (family.c) names: a network trained
 * with a pair loss and a Gaussian mixture on its embeddings (embed_gmm.c). */
#include "train/family.h"

#include <math.h>
#include <string.h>

#include "train/embed_gmm.h"

void td_family_embed_defaults(td_hparams *hp)
{
    hp->optimizer = TD_OPT_ADAM;
    hp->lr = 1e-3;
    hp->epochs = 300;
    hp->mlp.n_hidden = 1;
    hp->mlp.hidden[0] = 128;
    hp->embed.embedding_dim = 2;
    hp->gmm.components = 2;
    hp->embed.pairs_per_iteration = 512;
    hp->gmm.n_init = 5;
}

void td_family_embed_resolve(td_hparams *hp, int64_t K)
{
    (void)K;
    hp->embed.warmup_iterations = td_hparams_warmup(hp);
}

int td_family_embed_open(const td_hparams *hp) { return hp->embed.warmup_iterations < 0; }

/* K = E outputs; rows are set by the caller */
void td_family_embed_shape(td_model *m, const td_hparams *hp)
{
    m->n_hidden = hp->mlp.n_hidden;
    memcpy(m->hidden, hp->mlp.hidden, sizeof m->hidden);
    m->G = 1;
    m->covariance = hp->gmm.covariance;
    m->lower_bound = NAN;
    m->components = hp->gmm.components;
}

/* probs: responsibilities (N, M) */
td_status td_family_embed_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                                  int64_t N, td_error *err)
{
    return td_embed_predict(NULL, labels, probs, NULL, m, X, N, m->D, err);
}
