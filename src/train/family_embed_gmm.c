/* family_embed_gmm.c — the embed_gmm family's row: a network trained with a pair loss and
 * a Gaussian mixture on its embeddings (embed_gmm.c; family.h). */
#include "train/family.h"

#include <math.h>
#include <string.h>

#include "train/embed_gmm.h"

static void embed_defaults(td_hparams *hp)
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

static void embed_resolve(td_hparams *hp, int64_t K)
{
    (void)K;
    hp->embed.warmup_iterations = td_hparams_warmup(hp);
}

static int embed_open(const td_hparams *hp) { return hp->embed.warmup_iterations < 0; }

/* K = E outputs; rows are set by the caller */
static void embed_shape(td_model *m, const td_hparams *hp)
{
    m->n_hidden = hp->mlp.n_hidden;
    memcpy(m->hidden, hp->mlp.hidden, sizeof m->hidden);
    m->G = 1;
    m->covariance = hp->gmm.covariance;
    m->lower_bound = NAN;
    m->components = hp->gmm.components;
}

/* probs: responsibilities (N, M) */
static td_status embed_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                               int64_t N, td_error *err)
{
    return td_embed_predict(NULL, labels, probs, NULL, m, X, N, m->D, err);
}

const td_family td_family_embed_gmm = {
    .name = "embed_gmm",
    .doc = "a network mapping rows to an embedding trained with a pair loss (labels or "
           "pairs), and a Gaussian mixture fitted on the embeddings",
    /* hyperparameters; labels or pairs define the pair loss */
    .defaults = embed_defaults,
    .resolve = embed_resolve,
    .open = embed_open,
    .check = td_embed_check,
    /* model: the network, the mixture, one assignment per training row */
    .shape = embed_shape,
    .layout = td_embed_layout,
    .predict = embed_predict,
    /* trainer (embed_gmm.c): one step = one iteration */
    .trainer = &td_embed_trainer,
};
