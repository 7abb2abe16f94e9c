/* hparams.c — the hyperparameter table, model defaults and validation (SPEC §3–5).
 *
 * td_hparam_defs is the one place where names, types, bounds and the models a value
 * applies to are written. Defaults live in td_hparams_defaults: the shared ones here, a
 * family's own in its registry row (family.h). td_hparams_check validates a filled struct
 * against the table, then the family's row checks it against the dataset, before a trainer
 * is built, so training itself never meets a bad value. */
#include "traind/hparams.h"

#include "train/family.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#define OFF(f) offsetof(td_hparams, f)
#define NUM(n, t, f, lo, hi, excl, models, doc)          \
    {                                                    \
        n, t, OFF(f), 0, lo, hi, excl, NULL, models, doc \
    }
#define ENUM(n, f, names, models, doc)                        \
    {                                                         \
        n, TD_HP_ENUM, OFF(f), 0, 0, 0, 0, names, models, doc \
    }

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
    {"class_weights", TD_HP_FLOAT_LIST, OFF(class_weights), OFF(n_class_weights), 0, (double)1e30f,
     0, NULL, NETS, "a weight per class in the loss (n_classes of them)"},
    NUM("groups", TD_HP_INT, groups, 1, TD_MAX_CLASSES, 0, NETS,
        "softmax groups over the outputs (multi-output labels Y); 1 = one softmax"),
    NUM("monotone.weight", TD_HP_DOUBLE, monotone_weight, 0, 1e6, 0, NETS,
        "weight of the penalty keeping grouped outputs monotone; 0 = off"),
    NUM("monotone.margin", TD_HP_DOUBLE, monotone_margin, -1e6, 1e6, 0, NETS,
        "margin of the monotonicity penalty"),
    {"hidden", TD_HP_INT_LIST, OFF(mlp.hidden), OFF(mlp.n_hidden), 1, 1e6, 0, NULL, MLP | EMBED,
     "widths of the hidden layers"},
    ENUM("activation", mlp.activation, activation_names, MLP | EMBED,
         "activation of the hidden layers"),
    NUM("components", TD_HP_INT, gmm.components, 1, 10000, 0, GMM | EMBED,
        "number of mixture components"),
    ENUM("covariance", gmm.covariance, covariance_names, GMM | EMBED,
         "covariance of each component: full, diag or spherical"),
    NUM("reg_covar", TD_HP_DOUBLE, gmm.reg_covar, 0, 1e6, 0, GMM | EMBED,
        "added to the diagonal of every covariance"),
    NUM("max_iter", TD_HP_INT, gmm.max_iter, 1, 1e7, 0, GMM, "EM iterations at most"),
    NUM("iterations", TD_HP_INT, epochs, 1, 1e7, 0, EMBED,
        "training iterations (network steps on sampled pairs)"),
    NUM("embedding_dim", TD_HP_INT, embed.embedding_dim, 1, 4096, 0, EMBED,
        "dimension of the embedding the network maps rows to"),
    NUM("pairs_per_iteration", TD_HP_INT, embed.pairs_per_iteration, 1, 1e8, 0, EMBED,
        "labelled pairs sampled per iteration for the pair loss"),
    NUM("warmup_iterations", TD_HP_INT, embed.warmup_iterations, -1, 1e7, 0, EMBED,
        "iterations of pair loss alone before the gmm term; -1 = 15% of iterations"),
    NUM("n_init", TD_HP_INT, gmm.n_init, 1, 1000, 0, GMM | EMBED,
        "EM restarts; the best lower bound is kept"),
    NUM("gmm_batch", TD_HP_INT, embed.gmm_batch, 0, 1e9, 0, EMBED,
        "rows per EM step on the embeddings; 0 = all rows"),
    NUM("margin", TD_HP_DOUBLE, embed.margin, 0, 1e6, 1, EMBED,
        "contrastive margin of the pair loss"),
    NUM("gmm_weight", TD_HP_DOUBLE, embed.gmm_weight, 0, 1e6, 0, EMBED,
        "weight of the gmm negative log-likelihood in the loss"),
    ENUM("init", gmm.init, gmm_init_names, GMM,
         "how the components start when not given: kmeans++ or random"),
    {"weights_init", TD_HP_TENSOR, OFF(gmm.weights_init), 0, 0, 1, 0, NULL, GMM,
     "initial mixture weights (M), summing to 1"},
    {"means_init", TD_HP_TENSOR, OFF(gmm.means_init), 0, -BIG, BIG, 0, NULL, GMM,
     "initial means (M, D)"},
    {"covariances_init", TD_HP_TENSOR, OFF(gmm.covariances_init), 0, -BIG, BIG, 0, NULL, GMM,
     "initial covariances: (M, D, D) full, (M, D) diag, (M) spherical"},
    NUM("standardize", TD_HP_BOOL, standardize, 0, 1, 0, TD_MODELS_ALL,
        "scale every feature to mean 0 and standard deviation 1 (population std of the "
        "training rows, as scikit-learn's StandardScaler; a constant feature keeps scale 1) "
        "before training; the model keeps the mean and scale and applies them to every "
        "prediction and export"),
    {"initial_weights", TD_HP_WEIGHTS, OFF(initial_weights), OFF(n_initial_weights), -BIG, BIG, 0,
     NULL, NETS, "warm start: weights of a model of the same shape, as GET /model gives them"},
};
const size_t td_hparam_ndefs = sizeof td_hparam_defs / sizeof td_hparam_defs[0];

const td_hparam_def *td_hparam_find(const char *name)
{
    for (size_t i = 0; i < td_hparam_ndefs; i++)
        if (strcmp(td_hparam_defs[i].name, name) == 0) return &td_hparam_defs[i];
    return NULL;
}

int td_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
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
static const struct {
    const char *alias, *name;
} aliases[] = {
    {"learning_rate", "lr"},
    {"learning_rate_init", "lr"},
    {"alpha", "l2"},
    {"lambda", "l2"},
    {"epsilon", "eps"},
    {"max_epochs", "epochs"},
    {"n_epochs", "epochs"},
    {"num_epochs", "epochs"},
    {"batchsize", "batch_size"},
    {"hidden_layer_sizes", "hidden"},
    {"n_components", "components"},
    {"covariance_type", "covariance"},
    {"random_state", "seed"},
    {"decay", "weight_decay"},
    {"num_classes", "n_classes"},
    {"early_stopping", "n_iter_no_change"},
    {"fit_intercept", "intercept"},
    {"init_params", "init"},
};

const char *td_hparam_suggest(const char *name)
{
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(aliases[i].alias, name) == 0) return aliases[i].name;
    const char *best = NULL;
    int best_d = 99;
    for (size_t i = 0; i < td_hparam_ndefs; i++) {
        int d = td_edit_distance(name, td_hparam_defs[i].name);
        if (d < best_d) best_d = d, best = td_hparam_defs[i].name;
    }
    size_t len = strlen(name);
    int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    return best_d <= limit ? best : NULL;
}

int td_model_parse(const char *name)
{
    for (int i = 0; td_model_names[i]; i++)
        if (strcmp(td_model_names[i], name) == 0) return i;
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
    hp->mlp.activation = TD_ACT_RELU;
    hp->gmm.components = 1;
    hp->gmm.covariance = TD_COV_FULL;
    hp->gmm.reg_covar = 1e-6;
    hp->gmm.max_iter = 100;
    hp->gmm.n_init = 1;
    hp->embed.margin = 1.0;
    hp->embed.gmm_weight = 0.01;
    hp->embed.warmup_iterations = -1; /* -1 = 15% of iterations */
    hp->weight_decay = NAN;           /* the optimizer's: td_hparams_resolve */
    const td_family *f = td_family_of((int)model);
    if (f && f->defaults) f->defaults(hp);
}

void td_hparams_fini(td_hparams *hp)
{
    td_model_kind model = hp->model;
    free(hp->class_weights);
    free(hp->initial_weights);
    free(hp->gmm.weights_init.v);
    free(hp->gmm.means_init.v);
    free(hp->gmm.covariances_init.v);
    td_hparams_defaults(hp, model);
}

static td_status dup_floats(float **dst, const float *src, int64_t n)
{
    *dst = NULL;
    if (!src || n <= 0) return TD_OK;
    *dst = malloc(sizeof(float) * (size_t)n);
    if (!*dst) return TD_ENOMEM;
    memcpy(*dst, src, sizeof(float) * (size_t)n);
    return TD_OK;
}

td_status td_hparams_copy(td_hparams *dst, const td_hparams *src)
{
    *dst = *src;
    dst->class_weights = dst->initial_weights = NULL;
    dst->gmm.weights_init.v = dst->gmm.means_init.v = dst->gmm.covariances_init.v = NULL;
    if (dup_floats(&dst->class_weights, src->class_weights, src->n_class_weights) ||
        dup_floats(&dst->initial_weights, src->initial_weights, src->n_initial_weights) ||
        dup_floats(&dst->gmm.weights_init.v, src->gmm.weights_init.v, src->gmm.weights_init.n) ||
        dup_floats(&dst->gmm.means_init.v, src->gmm.means_init.v, src->gmm.means_init.n) ||
        dup_floats(&dst->gmm.covariances_init.v, src->gmm.covariances_init.v,
                   src->gmm.covariances_init.n)) {
        td_hparams_fini(dst);
        return TD_ENOMEM;
    }
    return TD_OK;
}

int64_t td_hparams_warmup(const td_hparams *hp)
{
    return hp->embed.warmup_iterations >= 0 ? hp->embed.warmup_iterations : hp->epochs * 15 / 100;
}

void td_hparams_resolve(td_hparams *hp, int64_t K)
{
    if (isnan(hp->weight_decay)) /* SPEC §4: torch.optim.AdamW's 0.01; sgd and adam 0 */
        hp->weight_decay = hp->optimizer == TD_OPT_ADAMW ? TD_ADAMW_WEIGHT_DECAY : 0;
    if (K > 0 && hp->n_classes == 0) hp->n_classes = K;
    const td_family *f = td_family_of((int)hp->model);
    if (K > 0 && f && f->resolve) f->resolve(hp, K);
}

int td_hparams_open(const td_hparams *hp)
{
    const td_family *f = td_family_of((int)hp->model);
    return hp->n_classes == 0 || (f && f->open && f->open(hp));
}

int64_t td_hparams_epochs(const td_hparams *hp)
{
    const td_family *f = td_family_of((int)hp->model);
    return f && f->epochs ? f->epochs(hp) : hp->epochs;
}

/* ---- validation ------------------------------------------------------------------- */


static td_status check_number(const td_hparam_def *d, double v, td_error *err)
{
    char field[96];
    snprintf(field, sizeof field, "%s", d->name);
    if (!isfinite(v)) return td_fail(err, TD_EINVAL, field, "%s must be a finite number", d->name);
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
        if (!(d->models & TD_MODEL_BIT(hp->model))) continue;
        const void *p = base + d->offset;
        td_status st = TD_OK;
        switch (d->type) {
        case TD_HP_DOUBLE: st = check_number(d, *(const double *)p, err); break;
        case TD_HP_INT: st = check_number(d, (double)*(const int64_t *)p, err); break;
        case TD_HP_DOUBLE2:
            for (int k = 0; k < 2 && !st; k++) {
                double v = ((const double *)p)[k];
                if (!(v >= 0 && v < 1))
                    st = td_fail(err, TD_EINVAL, "betas", "betas[%d] must be in [0, 1), got %g", k,
                                 v);
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
                    st = td_fail(err, TD_EINVAL, "initial_weights",
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
        case TD_HP_ENUM: break;
        }
        if (st) return st;
    }
    return TD_OK;
}

td_status td_hparams_check(const td_hparams *given, const td_dataset *ds, int64_t *Kout,
                           td_error *err)
{
    td_hparams resolved = *given; /* a shallow copy, only read: the open defaults filled */
    td_hparams_resolve(&resolved, 0);
    const td_hparams *hp = &resolved;
    const td_family *f = td_family_of((int)hp->model);
    td_status st;
    if (!f) return td_fail(err, TD_EINVAL, "model", "unknown model");
    if ((st = check_table(hp, err))) return st;
    if (hp->nesterov && (hp->momentum <= 0 || hp->dampening != 0))
        return td_fail(err, TD_EINVAL, "nesterov", "nesterov needs momentum > 0 and dampening = 0");
    if (f->check_hparams && (st = f->check_hparams(hp, err))) return st;
    if (ds->N < 1 || ds->D < 1) return td_fail(err, TD_EINVAL, "dataset", "the dataset is empty");
    return f->check(hp, ds, Kout, err);
}
