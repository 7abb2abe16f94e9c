/* hparams.h — hyperparameters of every model: one struct, one table.
 *
 * The table (td_hparam_defs) is the single source of names, types, defaults, bounds and
 * descriptions (the model catalogue GET /v1/models is read off it):
 * the JSON edge walks it to convert a request's "hyperparameters" object into a
 * td_hparams and back (the resolved values a job reports), and td_hparams_check walks it
 * to validate bounds before cross-field rules. A name with a dot ("monotone.weight")
 * lives in a nested JSON object. Like liblinear's check_parameter, everything is checked
 * before training starts, with messages that name the field and the rule. */
#ifndef TRAIND_HPARAMS_H
#define TRAIND_HPARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "traind/dataset.h"
#include "traind/status.h"

typedef enum {
    TD_MODEL_SOFTMAX = 0,
    TD_MODEL_MLP,
    TD_MODEL_GMM,
    TD_MODEL_EMBED_GMM,
    TD_MODEL_COUNT
} td_model_kind;
typedef enum { TD_OPT_SGD = 0, TD_OPT_ADAM, TD_OPT_ADAMW } td_optimizer_kind;
typedef enum { TD_INTERCEPT_FIT = 0, TD_INTERCEPT_NONE, TD_INTERCEPT_COLUMN0 } td_intercept;
typedef enum { TD_L2_SUM = 0, TD_L2_MEAN } td_l2_scale;
typedef enum { TD_ACT_RELU = 0, TD_ACT_TANH, TD_ACT_SIGMOID } td_activation;
/* tied: one covariance matrix shared by every component (scikit-learn's "tied") */
typedef enum { TD_COV_FULL = 0, TD_COV_DIAG, TD_COV_SPHERICAL, TD_COV_TIED } td_covariance;
typedef enum { TD_GMM_INIT_KMEANSPP = 0, TD_GMM_INIT_RANDOM } td_gmm_init;

/* A float array of 1 to 3 dimensions given as nested JSON arrays (weights_init (M),
 * means_init (M, E), covariances_init (M, E, E) full | (M, E) diag | (M) spherical |
 * (E, E) tied); row-major. */
typedef struct td_hp_tensor {
    float *v; /* (n) owned, or NULL when not given */
    int64_t n;
    int ndim;
    int64_t dims[3];
} td_hp_tensor;

#define TD_MAX_HIDDEN 16
#define TD_MAX_CLASSES 100000

/* The settings every model reads (the optimizer, the loss and the regularisation of the
 * gradient-trained ones, seed, tol, standardize) are at top level; the settings of one
 * family are in its nested struct (hp.mlp, hp.gmm, hp.embed). */
typedef struct td_hparams {
    td_model_kind model;
    /* optimizer (SPEC §4) */
    td_optimizer_kind optimizer;
    double lr, momentum, dampening, weight_decay, betas[2], eps;
    int nesterov;
    int64_t batch_size; /* 0 = full batch */
    int64_t epochs;
    int shuffle;
    int64_t seed;
    double tol;               /* early stop / EM tolerance */
    int64_t n_iter_no_change; /* 0 = early stopping off */
    double validation_split;
    /* regularisation (SPEC §3) */
    double l2, l1;
    td_l2_scale l2_scale;
    int regularize_bias;
    td_intercept intercept;
    /* loss */
    int64_t n_classes; /* 0 = from the data */
    int64_t ignore_index;
    double label_smoothing;
    float *class_weights; /* (n_class_weights) owned, or NULL */
    int64_t n_class_weights;
    int64_t groups; /* 1 = plain softmax output */
    double monotone_weight, monotone_margin;
    /* mlp, and embed_gmm's network */
    struct td_hp_mlp {
        int64_t hidden[TD_MAX_HIDDEN];
        int64_t n_hidden;
        td_activation activation;
    } mlp;
    /* gmm, and embed_gmm's mixture (issue 6) */
    struct td_hp_gmm {
        int64_t components;
        td_covariance covariance;
        double reg_covar;
        int64_t n_init;
        int64_t max_iter; /* gmm: EM iterations at most */
        td_gmm_init init; /* gmm: how parameters not given explicitly start */
        td_hp_tensor weights_init, means_init, covariances_init; /* gmm, optional */
    } gmm;
    /* embed_gmm */
    struct td_hp_embed {
        int64_t embedding_dim, pairs_per_iteration, gmm_batch;
        int64_t warmup_iterations; /* pair loss alone first; -1 = 15% of iterations */
        double margin, gmm_weight;
    } embed;
    int standardize; /* every model: features scaled by the training rows' mean
                                    and std first (the model keeps them; standardize.c) */
    /* warm start: flat, in the order of td_model_layout; owned, or NULL */
    float *initial_weights;
    int64_t n_initial_weights;
} td_hparams;

typedef enum {
    TD_HP_DOUBLE,
    TD_HP_INT,
    TD_HP_BOOL,
    TD_HP_ENUM,
    TD_HP_DOUBLE2,    /* double[2] (betas) */
    TD_HP_INT_LIST,   /* int64_t[TD_MAX_HIDDEN] + count (hidden) */
    TD_HP_FLOAT_LIST, /* owned float* + count (class_weights) */
    TD_HP_WEIGHTS,    /* initial_weights: shape given by the model layout */
    TD_HP_TENSOR      /* td_hp_tensor: nested arrays (gmm *_init) */
} td_hp_type;

#define TD_MODELS_ALL 0xFu
#define TD_MODEL_BIT(m) (1u << (m))

typedef struct td_hparam_def {
    const char *name; /* JSON name; "a.b" = key b of object a */
    td_hp_type type;
    size_t offset;              /* of the value in td_hparams */
    size_t count_offset;        /* of the int64_t count, for lists */
    double min, max;            /* inclusive bounds for numbers and list elements */
    int min_exclusive;          /* 1: value must be > min */
    const char *const *choices; /* TD_HP_ENUM: names, NULL-terminated */
    unsigned models;            /* bitmask of models that accept it */
    const char *doc;            /* one line for people (GET /v1/models, the dashboard) */
} td_hparam_def;

extern const td_hparam_def td_hparam_defs[];
extern const size_t td_hparam_ndefs;
extern const char *const td_model_names[]; /* indexed by td_model_kind */
/* The model's one-line description (GET /v1/models); NULL when kind is not a model. */
const char *td_model_doc(td_model_kind kind);

/* Looks a name up; NULL when unknown. */
const td_hparam_def *td_hparam_find(const char *name);
/* The known name closest to `name` (edit distance), for "did you mean"; NULL if none is
 * close enough. */
const char *td_hparam_suggest(const char *name);
/* Levenshtein distance (case-sensitive; 99 when either string is over 64 bytes): the
 * "did you mean" of hyperparameter names here and of every other name at the JSON edge. */
int td_edit_distance(const char *a, const char *b);
/* Parses a model name; -1 when unknown. */
int td_model_parse(const char *name);

#define TD_ADAMW_WEIGHT_DECAY 0.01 /* torch.optim.AdamW's default */

/* Sets every field to the model's defaults (SPEC §4–5): softmax sgd/lr 0.1/full batch/
 * 100 epochs; mlp adam/1e-3/batch 64/20 epochs; ... Three depend on other settings or on
 * the data and are left open until td_hparams_resolve: weight_decay NaN (the optimizer's
 * default, so the optimizer may be changed after this call), n_classes 0 (from the data)
 * and warmup_iterations -1 (15% of iterations). The engine's entry points resolve their
 * own copy, so a caller may pass the open values. */
void td_hparams_defaults(td_hparams *hp, td_model_kind model);
/* Fills in the open defaults: weight_decay NaN -> TD_ADAMW_WEIGHT_DECAY for adamw, else 0;
 * with K > 0 (the outputs td_hparams_check found): n_classes 0 -> K, and for embed_gmm
 * warmup_iterations -1 -> td_hparams_warmup. Values already set are kept. */
void td_hparams_resolve(td_hparams *hp, int64_t K);
/* Frees owned lists and resets to defaults of the same model. */
void td_hparams_fini(td_hparams *hp);
/* Deep copy (owned lists duplicated). */
td_status td_hparams_copy(td_hparams *dst, const td_hparams *src);

/* 1 when td_hparams_resolve with K > 0 would fill a value (n_classes 0, embed_gmm's
 * warm-up -1): what a caller that shows the resolved values needs to redo. */
int td_hparams_open(const td_hparams *hp);
/* Epochs (iterations) a run of hp plans: epochs, or max_iter for gmm (its EM iterations).
 * What td_trainer_epochs reports. */
int64_t td_hparams_epochs(const td_hparams *hp);

/* embed_gmm's warm-up length: warmup_iterations, or 15% of iterations (rounded down) when
 * it is -1 (SPEC §5). */
int64_t td_hparams_warmup(const td_hparams *hp);

/* Validates every value against the table bounds and the cross-field rules, and against
 * the dataset (n_classes, groups, column0 ones column, class_weights length,
 * validation_split leaving rows, initial_weights size; gmm: no labels needed, components
 * <= N, the shapes and values of weights_init / means_init / covariances_init). Field
 * names in errors are "hyperparameters.<name>". On success fills *K (classes / outputs;
 * gmm: components) when K != NULL. */
td_status td_hparams_check(const td_hparams *hp, const td_dataset *ds, int64_t *K, td_error *err);

#endif
