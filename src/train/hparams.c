/* hparams.c — the hyperparameter table, model defaults and validation (SPEC §3–5).
 *
 * td_hparam_defs is the one place where names, types, bounds and the models a value
 * applies to are written. Defaults live in td_hparams_defaults (they depend on the model).
 * td_hparams_check validates a filled struct against the table and the dataset before a
 * trainer is built, so training itself never meets a bad value. */
#include "traind/hparams.h"

#include "train/embed_gmm.h"
#include "train/gmm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const td_model_names[] = {"softmax", "mlp", "gmm", "embed_gmm", NULL};
const char *const td_model_docs[] = {
    "multinomial logistic regression: one linear layer and a softmax (per group), trained "
    "by gradient descent on the cross-entropy (scikit-learn's LogisticRegression with "
    "l2 = 1/(C N))",
    "multilayer perceptron: hidden layers with an activation, then a softmax output, "
    "trained by gradient descent on the cross-entropy (scikit-learn's MLPClassifier)",
    "Gaussian mixture fitted by expectation-maximisation (scikit-learn's GaussianMixture); "
    "needs no labels",
    "a network mapping rows to an embedding trained with a pair loss (labels or pairs), "
    "and a Gaussian mixture fitted on the embeddings",
    NULL};
static const char *const optimizer_names[] = {"sgd", "adam", "adamw", NULL};
static const char *const intercept_names[] = {"fit", "none", "column0", NULL};
static const char *const l2_scale_names[] = {"sum", "mean", NULL};
static const char *const activation_names[] = {"relu", "tanh", "sigmoid", NULL};
static const char *const covariance_names[] = {"full", "diag", "spherical", "tied", NULL};
static const char *const gmm_init_names[] = {"kmeans++", "random", NULL};

#define SOFTMAX TD_MODEL_BIT(TD_MODEL_SOFTMAX)
#define MLP TD_MODEL_BIT(TD_MODEL_MLP)
#define GMM TD_MODEL_BIT(TD_MODEL_GMM)
#define EMBED TD_MODEL_BIT(TD_MODEL_EMBED_GMM)
#define NETS (SOFTMAX | MLP)
#define GRAD (SOFTMAX | MLP | EMBED)
#define BIG 1e300
#define MAX_NET_PARAMS (1ll << 28) /* softmax / mlp parameters (embed_gmm has the same cap) */

#define OFF(f) offsetof(td_hparams, f)
#define NUM(n, t, f, lo, hi, excl, models, doc) \
    {n, t, OFF(f), 0, lo, hi, excl, NULL, models, doc}
#define ENUM(n, f, names, models, doc) \
    {n, TD_HP_ENUM, OFF(f), 0, 0, 0, 0, names, models, doc}

const td_hparam_def td_hparam_defs[] = {
    ENUM("optimizer", optimizer, optimizer_names, GRAD,
        "sgd (with momentum, dampening, nesterov), adam or adamw, as in torch.optim"),
    NUM("lr", TD_HP_DOUBLE, lr, 0, 1e6, 1, GRAD, "learning rate"),
    NUM("momentum", TD_HP_DOUBLE, momentum, 0, 1, 0, GRAD, "sgd: momentum factor"),
    NUM("dampening", TD_HP_DOUBLE, dampening, 0, 1, 0, GRAD, "sgd: dampening for momentum"),
    NUM("nesterov", TD_HP_BOOL, nesterov, 0, 1, 0, GRAD,
        "sgd: Nesterov momentum (needs momentum > 0 and dampening 0)"),
    NUM("weight_decay", TD_HP_DOUBLE, weight_decay, 0, 1e6, 0, GRAD,
        "decoupled for adamw (default 0.01 there), added to the gradient for sgd and adam"),
    NUM("betas", TD_HP_DOUBLE2, betas, 0, 1, 0, GRAD,
        "adam / adamw: coefficients of the running averages of the gradient and its square"),
    NUM("eps", TD_HP_DOUBLE, eps, 0, 1, 1, GRAD, "adam / adamw: term added to the denominator"),
    NUM("batch_size", TD_HP_INT, batch_size, 0, 1e9, 0, NETS,
        "rows per minibatch; 0 = the full batch"),
    NUM("epochs", TD_HP_INT, epochs, 1, 1e7, 0, NETS, "passes over the training rows"),
    NUM("shuffle", TD_HP_BOOL, shuffle, 0, 1, 0, NETS, "reshuffle the rows before every epoch"),
    NUM("seed", TD_HP_INT, seed, 0, 9007199254740991.0, 0, TD_MODELS_ALL,
        "random seed (shuffling, initialisation, validation split)"),
    NUM("tol", TD_HP_DOUBLE, tol, 0, 1e300, 0, TD_MODELS_ALL,
        "early stopping: the least improvement of the loss that counts (gmm: of the lower bound)"),
    NUM("n_iter_no_change", TD_HP_INT, n_iter_no_change, 0, 1e7, 0, NETS,
        "epochs without an improvement of tol before stopping; 0 = never stop early"),
    NUM("validation_split", TD_HP_DOUBLE, validation_split, 0, 1, 0, NETS,
        "fraction of the rows held out for val_loss and val_accuracy"),
    NUM("l2", TD_HP_DOUBLE, l2, 0, BIG, 0, GRAD, "L2 penalty on the weights"),
    ENUM("l2_scale", l2_scale, l2_scale_names, GRAD,
        "sum: l2/2 * sum(w^2) is added to the loss; mean: the same divided by the rows"),
    NUM("l1", TD_HP_DOUBLE, l1, 0, BIG, 0, GRAD, "L1 penalty on the weights (a proximal step)"),
    NUM("regularize_bias", TD_HP_BOOL, regularize_bias, 0, 1, 0, GRAD,
        "apply l2 and l1 to the biases too"),
    ENUM("intercept", intercept, intercept_names, SOFTMAX,
        "fit a bias, none, or column0 (feature 0 is all ones; its weights are the bias)"),
    NUM("n_classes", TD_HP_INT, n_classes, 0, TD_MAX_CLASSES, 0, NETS,
        "number of classes; null = from the data (the largest label + 1)"),
    NUM("ignore_index", TD_HP_INT, ignore_index, -2147483648.0, 2147483647.0, 0, NETS,
        "rows with this label are left out of the loss"),
    NUM("label_smoothing", TD_HP_DOUBLE, label_smoothing, 0, 1, 0, NETS,
        "cross-entropy label smoothing, as in torch.nn.CrossEntropyLoss"),
    /* the bound as float32, which the weights are checked as: 1e30 itself is accepted */
    {"class_weights", TD_HP_FLOAT_LIST, OFF(class_weights), OFF(n_class_weights), 0,
     (double)1e30f, 0, NULL, NETS, "a weight per class in the loss (n_classes of them)"},
    NUM("groups", TD_HP_INT, groups, 1, TD_MAX_CLASSES, 0, NETS,
        "softmax groups over the outputs (multi-output labels Y); 1 = one softmax"),
    NUM("monotone.weight", TD_HP_DOUBLE, monotone_weight, 0, 1e6, 0, NETS,
        "weight of the penalty keeping grouped outputs monotone; 0 = off"),
    NUM("monotone.margin", TD_HP_DOUBLE, monotone_margin, -1e6, 1e6, 0, NETS,
        "margin of the monotonicity penalty"),
    {"hidden", TD_HP_INT_LIST, OFF(hidden), OFF(n_hidden), 1, 1e6, 0, NULL, MLP | EMBED,
     "widths of the hidden layers"},
    ENUM("activation", activation, activation_names, MLP | EMBED,
        "activation of the hidden layers"),
    NUM("components", TD_HP_INT, components, 1, 10000, 0, GMM | EMBED,
        "number of mixture components"),
    ENUM("covariance", covariance, covariance_names, GMM | EMBED,
        "covariance of each component: full, diag or spherical"),
    NUM("reg_covar", TD_HP_DOUBLE, reg_covar, 0, 1e6, 0, GMM | EMBED,
        "added to the diagonal of every covariance"),
    NUM("max_iter", TD_HP_INT, max_iter, 1, 1e7, 0, GMM, "EM iterations at most"),
    NUM("iterations", TD_HP_INT, epochs, 1, 1e7, 0, EMBED,
        "training iterations (network steps on sampled pairs)"),
    NUM("embedding_dim", TD_HP_INT, embedding_dim, 1, 4096, 0, EMBED,
        "dimension of the embedding the network maps rows to"),
    NUM("pairs_per_iteration", TD_HP_INT, pairs_per_iteration, 1, 1e8, 0, EMBED,
        "labelled pairs sampled per iteration for the pair loss"),
    NUM("warmup_iterations", TD_HP_INT, warmup_iterations, -1, 1e7, 0, EMBED,
        "iterations of pair loss alone before the gmm term; -1 = 15% of iterations"),
    NUM("n_init", TD_HP_INT, n_init, 1, 1000, 0, GMM | EMBED,
        "EM restarts; the best lower bound is kept"),
    NUM("gmm_batch", TD_HP_INT, gmm_batch, 0, 1e9, 0, EMBED,
        "rows per EM step on the embeddings; 0 = all rows"),
    NUM("margin", TD_HP_DOUBLE, margin, 0, 1e6, 1, EMBED, "contrastive margin of the pair loss"),
    NUM("gmm_weight", TD_HP_DOUBLE, gmm_weight, 0, 1e6, 0, EMBED,
        "weight of the gmm negative log-likelihood in the loss"),
    ENUM("init", init, gmm_init_names, GMM,
        "how the components start when not given: kmeans++ or random"),
    {"weights_init", TD_HP_TENSOR, OFF(weights_init), 0, 0, 1, 0, NULL, GMM,
     "initial mixture weights (M), summing to 1"},
    {"means_init", TD_HP_TENSOR, OFF(means_init), 0, -BIG, BIG, 0, NULL, GMM,
     "initial means (M, D)"},
    {"covariances_init", TD_HP_TENSOR, OFF(covariances_init), 0, -BIG, BIG, 0, NULL, GMM,
     "initial covariances: (M, D, D) full, (M, D) diag, (M) spherical"},
    NUM("standardize", TD_HP_BOOL, standardize, 0, 1, 0, TD_MODELS_ALL,
        "scale every feature to mean 0 and standard deviation 1 (population std of the "
        "training rows, as scikit-learn's StandardScaler; a constant feature keeps scale 1) "
        "before training; the model keeps the mean and scale and applies them to every "
        "prediction and export"),
    {"initial_weights", TD_HP_WEIGHTS, OFF(initial_weights), OFF(n_initial_weights), -BIG, BIG,
     0, NULL, NETS, "warm start: weights of a model of the same shape, as GET /model gives them"},
};
const size_t td_hparam_ndefs = sizeof td_hparam_defs / sizeof td_hparam_defs[0];

const td_hparam_def *td_hparam_find(const char *name)
{
    for (size_t i = 0; i < td_hparam_ndefs; i++)
        if (strcmp(td_hparam_defs[i].name, name) == 0)
            return &td_hparam_defs[i];
    return NULL;
}

int td_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 99;
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int sub = diag + (a[i - 1] != b[j - 1]);
            int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

/* Common long spellings users bring from other libraries. */
static const struct { const char *alias, *name; } aliases[] = {
    {"learning_rate", "lr"},     {"learning_rate_init", "lr"}, {"alpha", "l2"},
    {"lambda", "l2"},            {"epsilon", "eps"},           {"max_epochs", "epochs"},
    {"n_epochs", "epochs"},      {"num_epochs", "epochs"},     {"batchsize", "batch_size"},
    {"hidden_layer_sizes", "hidden"}, {"n_components", "components"},
    {"covariance_type", "covariance"}, {"random_state", "seed"}, {"decay", "weight_decay"},
    {"num_classes", "n_classes"}, {"early_stopping", "n_iter_no_change"},
    {"fit_intercept", "intercept"}, {"init_params", "init"},
};

const char *td_hparam_suggest(const char *name)
{
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(aliases[i].alias, name) == 0)
            return aliases[i].name;
    const char *best = NULL;
    int best_d = 99;
    for (size_t i = 0; i < td_hparam_ndefs; i++) {
        int d = td_edit_distance(name, td_hparam_defs[i].name);
        if (d < best_d)
            best_d = d, best = td_hparam_defs[i].name;
    }
    size_t len = strlen(name);
    int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    return best_d <= limit ? best : NULL;
}

int td_model_parse(const char *name)
{
    for (int i = 0; td_model_names[i]; i++)
        if (strcmp(td_model_names[i], name) == 0)
            return i;
    return -1;
}

void td_hparams_defaults(td_hparams *hp, td_model_kind model)
{
    memset(hp, 0, sizeof *hp);
    hp->model = model;
    hp->optimizer = TD_OPT_SGD;
    hp->lr = 0.1;
    hp->betas[0] = 0.9;
    hp->betas[1] = 0.999;
    hp->eps = 1e-8;
    hp->epochs = 100;
    hp->shuffle = 1;
    hp->tol = 1e-4;
    hp->ignore_index = -100;
    hp->groups = 1;
    hp->activation = TD_ACT_RELU;
    hp->components = 1;
    hp->covariance = TD_COV_FULL;
    hp->reg_covar = 1e-6;
    hp->max_iter = 100;
    hp->n_init = 1;
    hp->margin = 1.0;
    hp->gmm_weight = 0.01;
    hp->warmup_iterations = -1; /* -1 = 15% of iterations */
    hp->weight_decay = NAN;     /* the optimizer's: td_hparams_resolve */
    switch (model) {
    case TD_MODEL_MLP:
        hp->optimizer = TD_OPT_ADAM;
        hp->lr = 1e-3;
        hp->batch_size = 64;
        hp->epochs = 20;
        hp->n_hidden = 1;
        hp->hidden[0] = 100;
        break;
    case TD_MODEL_GMM:
        hp->tol = 1e-3;
        hp->components = 1;
        break;
    case TD_MODEL_EMBED_GMM:
        hp->optimizer = TD_OPT_ADAM;
        hp->lr = 1e-3;
        hp->epochs = 300;
        hp->n_hidden = 1;
        hp->hidden[0] = 128;
        hp->embedding_dim = 2;
        hp->components = 2;
        hp->pairs_per_iteration = 512;
        hp->n_init = 5;
        break;
    default:
        break;
    }
}

void td_hparams_fini(td_hparams *hp)
{
    td_model_kind model = hp->model;
    free(hp->class_weights);
    free(hp->initial_weights);
    free(hp->weights_init.v);
    free(hp->means_init.v);
    free(hp->covariances_init.v);
    td_hparams_defaults(hp, model);
}

static td_status dup_floats(float **dst, const float *src, int64_t n)
{
    *dst = NULL;
    if (!src || n <= 0)
        return TD_OK;
    *dst = malloc(sizeof(float) * (size_t)n);
    if (!*dst)
        return TD_ENOMEM;
    memcpy(*dst, src, sizeof(float) * (size_t)n);
    return TD_OK;
}

td_status td_hparams_copy(td_hparams *dst, const td_hparams *src)
{
    *dst = *src;
    dst->class_weights = dst->initial_weights = NULL;
    dst->weights_init.v = dst->means_init.v = dst->covariances_init.v = NULL;
    if (dup_floats(&dst->class_weights, src->class_weights, src->n_class_weights) ||
        dup_floats(&dst->initial_weights, src->initial_weights, src->n_initial_weights) ||
        dup_floats(&dst->weights_init.v, src->weights_init.v, src->weights_init.n) ||
        dup_floats(&dst->means_init.v, src->means_init.v, src->means_init.n) ||
        dup_floats(&dst->covariances_init.v, src->covariances_init.v,
                   src->covariances_init.n)) {
        td_hparams_fini(dst);
        return TD_ENOMEM;
    }
    return TD_OK;
}

int64_t td_hparams_warmup(const td_hparams *hp)
{
    return hp->warmup_iterations >= 0 ? hp->warmup_iterations : hp->epochs * 15 / 100;
}

void td_hparams_resolve(td_hparams *hp, int64_t K)
{
    if (isnan(hp->weight_decay)) /* SPEC §4: torch.optim.AdamW's 0.01; sgd and adam 0 */
        hp->weight_decay = hp->optimizer == TD_OPT_ADAMW ? TD_ADAMW_WEIGHT_DECAY : 0;
    if (K > 0 && hp->n_classes == 0)
        hp->n_classes = K;
    if (K > 0 && hp->model == TD_MODEL_EMBED_GMM)
        hp->warmup_iterations = td_hparams_warmup(hp);
}

/* ---- validation ------------------------------------------------------------------- */

#define FIELD(name) "hyperparameters." name

static td_status check_number(const td_hparam_def *d, double v, td_error *err)
{
    char field[96];
    snprintf(field, sizeof field, FIELD("%s"), d->name);
    if (!isfinite(v))
        return td_fail(err, TD_EINVAL, field, "%s must be a finite number", d->name);
    if (d->min_exclusive ? !(v > d->min) : !(v >= d->min))
        return td_fail(err, TD_EINVAL, field, "%s must be %s %g, got %g", d->name,
                       d->min_exclusive ? ">" : ">=", d->min, v);
    if (!(v <= d->max))
        return td_fail(err, TD_EINVAL, field, "%s must be <= %g, got %g", d->name, d->max, v);
    return TD_OK;
}

/* Table bounds for every value the model uses. */
static td_status check_table(const td_hparams *hp, td_error *err)
{
    const char *base = (const char *)hp;
    for (size_t i = 0; i < td_hparam_ndefs; i++) {
        const td_hparam_def *d = &td_hparam_defs[i];
        if (!(d->models & TD_MODEL_BIT(hp->model)))
            continue;
        const void *p = base + d->offset;
        td_status st = TD_OK;
        switch (d->type) {
        case TD_HP_DOUBLE:
            st = check_number(d, *(const double *)p, err);
            break;
        case TD_HP_INT:
            st = check_number(d, (double)*(const int64_t *)p, err);
            break;
        case TD_HP_DOUBLE2:
            for (int k = 0; k < 2 && !st; k++) {
                double v = ((const double *)p)[k];
                if (!(v >= 0 && v < 1))
                    st = td_fail(err, TD_EINVAL, FIELD("betas"),
                                 "betas[%d] must be in [0, 1), got %g", k, v);
            }
            break;
        case TD_HP_INT_LIST: {
            int64_t n = *(const int64_t *)(base + d->count_offset);
            for (int64_t k = 0; k < n && !st; k++)
                st = check_number(d, (double)((const int64_t *)p)[k], err);
            break;
        }
        case TD_HP_FLOAT_LIST: {
            int64_t n = *(const int64_t *)(base + d->count_offset);
            const float *v = *(float *const *)p;
            for (int64_t k = 0; k < n && !st; k++)
                st = check_number(d, v[k], err);
            break;
        }
        case TD_HP_WEIGHTS: {
            int64_t n = *(const int64_t *)(base + d->count_offset);
            const float *v = *(float *const *)p;
            for (int64_t k = 0; k < n && !st; k++)
                if (!isfinite(v[k]))
                    st = td_fail(err, TD_EINVAL, FIELD("initial_weights"),
                                 "initial_weights must be finite (element %lld)", (long long)k);
            break;
        }
        case TD_HP_TENSOR: {
            const td_hp_tensor *t = (const td_hp_tensor *)p;
            for (int64_t k = 0; t->v && k < t->n && !st; k++)
                st = check_number(d, t->v[k], err);
            break;
        }
        case TD_HP_BOOL:
        case TD_HP_ENUM:
            break;
        }
        if (st)
            return st;
    }
    return TD_OK;
}

/* Number of outputs K implied by the data and hyperparameters. */
static td_status infer_classes(const td_hparams *hp, const td_dataset *ds, int64_t *K,
                               td_error *err)
{
    int64_t k = 0;
    if (ds->Y) {
        k = ds->Y_cols;
    } else if (ds->y) {
        if (ds->y_cols != hp->groups) {
            if (hp->groups > 1)
                return td_fail(err, TD_EINVAL, FIELD("groups"),
                               "groups is %lld but the dataset's targets have %lld column(s)",
                               (long long)hp->groups, (long long)ds->y_cols);
            return td_fail(err, TD_EINVAL, "dataset.y",
                           "targets have %lld columns: set hyperparameters.groups to %lld "
                           "for grouped outputs", (long long)ds->y_cols, (long long)ds->y_cols);
        }
        int32_t mx = -1;
        for (int64_t i = 0; i < ds->N * ds->y_cols; i++)
            if (ds->y[i] != hp->ignore_index && ds->y[i] > mx)
                mx = ds->y[i];
        k = (int64_t)(mx + 1) * hp->groups;
    } else {
        return td_fail(err, TD_EINVAL, "dataset", "the %s model needs a labelled dataset (y or Y)",
                       td_model_names[hp->model]);
    }
    if (hp->n_classes > 0) {
        if (ds->Y && hp->n_classes != k) /* rows of Y hold exactly Y_cols probabilities */
            return td_fail(err, TD_EINVAL, FIELD("n_classes"),
                           "n_classes is %lld but the probability targets (Y) have %lld "
                           "columns", (long long)hp->n_classes, (long long)k);
        if (hp->n_classes < k)
            return td_fail(err, TD_EINVAL, FIELD("n_classes"),
                           "n_classes is %lld but the targets need at least %lld",
                           (long long)hp->n_classes, (long long)k);
        k = hp->n_classes;
    }
    if (k < 1)
        return td_fail(err, TD_EINVAL, "dataset.y", "the targets contain no class");
    *K = k;
    return TD_OK;
}

td_status td_hparams_check(const td_hparams *given, const td_dataset *ds, int64_t *Kout,
                           td_error *err)
{
    td_hparams resolved = *given; /* a shallow copy, only read: the open defaults filled */
    td_hparams_resolve(&resolved, 0);
    const td_hparams *hp = &resolved;
    td_status st;
    if ((unsigned)hp->model >= TD_MODEL_COUNT)
        return td_fail(err, TD_EINVAL, "model", "unknown model");
    if ((st = check_table(hp, err)))
        return st;
    if (hp->nesterov && (hp->momentum <= 0 || hp->dampening != 0))
        return td_fail(err, TD_EINVAL, FIELD("nesterov"),
                       "nesterov needs momentum > 0 and dampening = 0");
    if (hp->model == TD_MODEL_MLP && hp->n_hidden < 1)
        return td_fail(err, TD_EINVAL, FIELD("hidden"), "hidden needs at least one layer size");
    if (ds->N < 1 || ds->D < 1)
        return td_fail(err, TD_EINVAL, "dataset", "the dataset is empty");
    if (hp->standardize && hp->model == TD_MODEL_SOFTMAX && hp->intercept == TD_INTERCEPT_COLUMN0)
        return td_fail(err, TD_EINVAL, FIELD("standardize"),
                       "standardize cannot be combined with intercept \"column0\": it would "
                       "turn the ones column into zeros; use intercept \"fit\"");
    if (hp->model == TD_MODEL_GMM) /* unlabelled: labels, if any, are ignored */
        return td_gmm_check(hp, ds, Kout, err);
    if (hp->model == TD_MODEL_EMBED_GMM) /* labels or pairs define the pair loss */
        return td_embed_check(hp, ds, Kout, err);

    int64_t K = 0;
    if ((st = infer_classes(hp, ds, &K, err)))
        return st;
    if (K % hp->groups != 0)
        return td_fail(err, TD_EINVAL, FIELD("groups"),
                       "groups (%lld) must divide the number of outputs (%lld)",
                       (long long)hp->groups, (long long)K);
    if (hp->groups > 1 && ds->Y)
        return td_fail(err, TD_EINVAL, FIELD("groups"),
                       "grouped outputs need class-index targets (N, G), not probabilities");
    if (hp->monotone_weight > 0 && hp->groups < 2)
        return td_fail(err, TD_EINVAL, FIELD("monotone.weight"),
                       "the monotone penalty needs groups >= 2");
    if (hp->class_weights && hp->n_class_weights != K / hp->groups)
        return td_fail(err, TD_EINVAL, FIELD("class_weights"),
                       "class_weights has %lld entries, the model has %lld classes",
                       (long long)hp->n_class_weights, (long long)(K / hp->groups));
    if (hp->class_weights && hp->groups > 1)
        return td_fail(err, TD_EINVAL, FIELD("class_weights"),
                       "class_weights is not supported with grouped outputs");
    if (hp->label_smoothing > 0 && hp->groups > 1)
        return td_fail(err, TD_EINVAL, FIELD("label_smoothing"),
                       "label_smoothing is not supported with grouped outputs");
    if (ds->y) {
        int64_t S = K / hp->groups;
        for (int64_t i = 0; i < ds->N * ds->y_cols; i++) {
            int32_t t = ds->y[i];
            if (t != hp->ignore_index && (t < 0 || t >= S)) {
                char field[64];
                if (ds->y_cols > 1)
                    snprintf(field, sizeof field, "dataset.y[%lld][%lld]",
                             (long long)(i / ds->y_cols), (long long)(i % ds->y_cols));
                else
                    snprintf(field, sizeof field, "dataset.y[%lld]", (long long)i);
                return td_fail(err, TD_EINVAL, field,
                               "label %d is outside [0, %lld) and is not ignore_index (%lld)",
                               t, (long long)S, (long long)hp->ignore_index);
            }
        }
    }
    if (hp->model == TD_MODEL_SOFTMAX && hp->intercept == TD_INTERCEPT_COLUMN0) {
        for (int64_t i = 0; i < ds->N; i++)
            if (ds->X[i * ds->D] != 1.0f) {
                char field[64];
                snprintf(field, sizeof field, "dataset.X[%lld][0]", (long long)i);
                return td_fail(err, TD_EINVAL, field,
                               "intercept \"column0\" needs X's first column to be all ones "
                               "(found %g)", (double)ds->X[i * ds->D]);
            }
    }
    /* The trainer holds the parameters, their gradient, the previous step and up to two
     * optimizer moments in float32: cap the model as gmm and embed_gmm do, so that a
     * small request cannot ask for tens of GB (a refusal, not an allocation failure or
     * the OOM killer once the job trains). */
    double n_params = 0, in = (double)ds->D;
    for (int64_t l = 0; hp->model == TD_MODEL_MLP && l < hp->n_hidden; l++) {
        n_params += (in + 1) * (double)hp->hidden[l];
        in = (double)hp->hidden[l];
    }
    n_params += (in + 1) * (double)K;
    if (n_params > (double)MAX_NET_PARAMS)
        return td_fail(err, TD_EINVAL,
                       hp->model == TD_MODEL_MLP ? FIELD("hidden")
                       : hp->n_classes > 0       ? FIELD("n_classes")
                                                 : "dataset",
                       "the model would have %.0f parameters (%lld inputs, %lld outputs); at "
                       "most %lld are supported", n_params, (long long)ds->D, (long long)K,
                       MAX_NET_PARAMS);
    int64_t n_val = (int64_t)floor(hp->validation_split * (double)ds->N);
    if (hp->validation_split > 0 && (n_val < 1 || ds->N - n_val < 1))
        return td_fail(err, TD_EINVAL, FIELD("validation_split"),
                       "validation_split %g of %lld rows leaves an empty training or "
                       "validation set", hp->validation_split, (long long)ds->N);
    if (Kout)
        *Kout = K;
    return TD_OK;
}
