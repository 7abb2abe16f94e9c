/* embed_gmm.h — the embed_gmm model (SPEC §5): a network z = f(x; W) trained on a pair
 * loss together with a GMM fitted by EM in embedding space.
 *
 * The network is the mlp's dense layers (mlp.c) with a linear output of E units; the GMM
 * is gmm.c's EM; the pair loss is loss.c's td_contrastive_sum. The trainer
 * (embed_gmm.c, td_embed_trainer in trainer_impl.h) alternates them; predictions
 * are td_embed_predict (train.h). */
#ifndef TRAIND_EMBED_GMM_H
#define TRAIND_EMBED_GMM_H

#include <stdint.h>

#include "traind/train.h"

/* td_hparams_check's embed_gmm part, after the table bounds: the dataset has one label per
 * row (y (N), same label = similar pair) or pairs (P, 2) with pair_labels (P) in {0, 1};
 * components <= the rows the GMM sees (N, or gmm_batch); warmup_iterations <
 * iterations; the model size. *K (may be NULL) gets E (the network's outputs). */
td_status td_embed_check(const td_hparams *hp, const td_dataset *ds, int64_t *K, td_error *err);

/* Rows the GMM sees each iteration: gmm_batch when 0 < gmm_batch < N, else N. */
int64_t td_embed_gmm_rows(const td_hparams *hp, int64_t N);

/* td_model_layout for an embed_gmm model (see train.h); returns the tensor count. */
int td_embed_layout(const td_model *m, td_tensor_desc *out);

/* A view of an embed_gmm model's network (params borrowed, nothing allocated): an mlp
 * model D -> hidden -> E whose params are m's first tensors; its output layer's values are
 * the raw embeddings (td_mlp_forward, no softmax). The mixture's view is
 * td_embed_gmm_view (train.h). */
void td_embed_net_view(td_model *net, const td_model *m);

#endif
