/* family.h — the model-family registry: one row per family, as liblinear's solver table
 * and Redis's command table.
 *
 * The generic entry points of the engine (td_hparams_defaults / _resolve / _check /
 * _epochs, td_model_shape / _layout / _predict, td_trainer_create / _check,
 * td_train_memory_estimate) look the family's row up by td_model_kind and call it; none of
 * them switches on the family. The rows stand together in family.c's table; a family's
 * code lives in its own files: family_<name>.c holds the pieces its row names (declared at
 * the end of this header), and its trainer (a td_trainer_kind: grad_trainer.c,
 * gmm_trainer.c, embed_gmm.c) and kernels (mlp.c, linear.c, gmm*.c) sit below it.
 *
 * Adding a family: its enum value (hparams.h), its family_<name>.c (and its trainer kind
 * in a new trainer file when no existing one trains it), its row in family.c's table, its
 * hyperparameter rows (hparams.c's td_hparam_defs; settings of its own go in a nested
 * struct of td_hparams) and its converter row (codec/json_model.c).
 *
 * Headers depend downward only: hparams.c, model.c and trainer.c include this header and
 * nothing family-specific; family.c and family_<name>.c include the families' headers. */
#ifndef TRAIND_FAMILY_H
#define TRAIND_FAMILY_H

#include <stddef.h>
#include <stdint.h>

#include "train/layout.h"
#include "train/trainer_impl.h"
#include "traind/train.h"

typedef struct td_family {
    const char *name; /* as in JSON ("softmax"); td_model_names[kind] */
    const char *doc;  /* one line for people (GET /v1/models) */
    /* Sets the family's own defaults over the shared ones td_hparams_defaults wrote (every
     * other field is already at its default). NULL: the shared defaults suffice. */
    void (*defaults)(td_hparams *hp);
    /* The family's open defaults once the outputs K > 0 are known (td_hparams_resolve,
     * after the shared ones). NULL: none. */
    void (*resolve)(td_hparams *hp, int64_t K);
    /* 1 when resolve would fill a value of hp (td_hparams_open). NULL: never. */
    int (*open)(const td_hparams *hp);
    /* Rules on the hyperparameters alone, checked after the table bounds and before the
     * dataset is looked at. NULL: none. */
    td_status (*check_hparams)(const td_hparams *hp, td_error *err);
    /* td_hparams_check's family part, after the shared rules (ds has rows and columns):
     * hp against the dataset; *K (may be NULL) gets the model's outputs. */
    td_status (*check)(const td_hparams *hp, const td_dataset *ds, int64_t *K, td_error *err);
    /* Epochs (iterations) a run plans (td_hparams_epochs). NULL: hp->epochs. */
    int64_t (*epochs)(const td_hparams *hp);
    /* td_model_shape's family part: m has kind, D, K, G = groups, intercept "fit" and the
     * activation; n_params is counted after. */
    void (*shape)(td_model *m, const td_hparams *hp);
    /* td_model_layout (train.h); returns the tensor count. */
    int (*layout)(const td_model *m, td_tensor_desc *out);
    /* td_model_predict with X's width already checked against m->D. */
    td_status (*predict)(float *probs, int32_t *labels, const td_model *m, const float *X,
                         int64_t N, td_error *err);
    /* Its trainer (trainer_impl.h): td_trainer_create / _check and td_train_memory_estimate
     * call its create, check and bytes (standardize is applied around them by trainer.c),
     * and every td_trainer_* call on the trainer goes to the kind it keeps. Families
     * trained alike share one (softmax and mlp: td_grad_trainer). */
    const td_trainer_kind *trainer;
    /* (The exporters, ONNX and the C header, live above the engine in src/codec; when they
     * get rows, those are the family's converter row there, as json_model.c's.) */
} td_family;

/* The row of family `kind`; NULL when kind is not a family. */
const td_family *td_family_of(int kind);

/* ---- pieces shared by the rows -------------------------------------------------------- */

/* The classifiers (softmax, mlp; family_net.c). td_net_check: td_hparams_check's rules
 * for a network with n_hidden hidden layers of hp's widths and a softmax output (classes
 * from the data, groups, class_weights, labels in range, the parameter cap,
 * validation_split); column0: intercept "column0", whose ones column is checked. */
td_status td_net_check(const td_hparams *hp, const td_dataset *ds, int64_t n_hidden, int column0,
                       int64_t *K, td_error *err);
/* td_model_layout of a network: W0, b0, ..., W_L, then b_L with intercept "fit". */
int td_net_layout(const td_model *m, td_tensor_desc *out);
/* td_model_predict of a network (softmax: no hidden layer; mlp): standardizes X when m
 * does, computes the logits (linear.c or mlp.c), then the softmax of each group (labels:
 * the argmax within each group). */
td_status td_net_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                         int64_t N, td_error *err);

/* ---- what the rows name, one file a family (family_<name>.c) ---------------------------- */

/* softmax */
td_status td_family_softmax_check(const td_hparams *hp, const td_dataset *ds, int64_t *K,
                                  td_error *err);
void td_family_softmax_shape(td_model *m, const td_hparams *hp);
/* mlp */
void td_family_mlp_defaults(td_hparams *hp);
td_status td_family_mlp_check_hparams(const td_hparams *hp, td_error *err);
td_status td_family_mlp_check(const td_hparams *hp, const td_dataset *ds, int64_t *K,
                              td_error *err);
void td_family_mlp_shape(td_model *m, const td_hparams *hp);
/* gmm (its check is gmm.c's td_gmm_check) */
void td_family_gmm_defaults(td_hparams *hp);
int64_t td_family_gmm_epochs(const td_hparams *hp);
void td_family_gmm_shape(td_model *m, const td_hparams *hp);
td_status td_family_gmm_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                                int64_t N, td_error *err);
/* embed_gmm (its check is embed_gmm.c's td_embed_check) */
void td_family_embed_defaults(td_hparams *hp);
void td_family_embed_resolve(td_hparams *hp, int64_t K);
int td_family_embed_open(const td_hparams *hp);
void td_family_embed_shape(td_model *m, const td_hparams *hp);
td_status td_family_embed_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                                  int64_t N, td_error *err);

#endif
