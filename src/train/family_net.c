/* family_net.c — what softmax and mlp share: the classifier's checks against the data,
 * the layout of a network's parameter block and prediction through a per-group softmax
 * (family.h). */
#include "train/family.h"
#include "train/linear.h"
#include "train/mlp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NET_PARAMS (1ll << 28) /* softmax / mlp parameters (embed_gmm has the same cap) */

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
                return td_fail(err, TD_EINVAL, "groups",
                               "groups is %lld but the dataset's targets have %lld column(s)",
                               (long long)hp->groups, (long long)ds->y_cols);
            return td_fail(err, TD_EINVAL, "y",
                           "targets have %lld columns: set hyperparameters.groups to %lld "
                           "for grouped outputs",
                           (long long)ds->y_cols, (long long)ds->y_cols);
        }
        int32_t mx = -1;
        for (int64_t i = 0; i < ds->N * ds->y_cols; i++)
            if (ds->y[i] != hp->ignore_index && ds->y[i] > mx) mx = ds->y[i];
        k = (int64_t)(mx + 1) * hp->groups;
    } else {
        return td_fail(err, TD_EINVAL, "dataset", "the %s model needs a labelled dataset (y or Y)",
                       td_model_names[hp->model]);
    }
    if (hp->n_classes > 0) {
        if (ds->Y && hp->n_classes != k) /* rows of Y hold exactly Y_cols probabilities */
            return td_fail(err, TD_EINVAL, "n_classes",
                           "n_classes is %lld but the probability targets (Y) have %lld "
                           "columns",
                           (long long)hp->n_classes, (long long)k);
        if (hp->n_classes < k)
            return td_fail(err, TD_EINVAL, "n_classes",
                           "n_classes is %lld but the targets need at least %lld",
                           (long long)hp->n_classes, (long long)k);
        k = hp->n_classes;
    }
    if (k < 1) return td_fail(err, TD_EINVAL, "y", "the targets contain no class");
    *K = k;
    return TD_OK;
}

td_status td_net_check(const td_hparams *hp, const td_dataset *ds, int64_t n_hidden, int column0,
                       int64_t *Kout, td_error *err)
{
    td_status st;
    int64_t K = 0;
    if ((st = infer_classes(hp, ds, &K, err))) return st;
    if (K % hp->groups != 0)
        return td_fail(err, TD_EINVAL, "groups",
                       "groups (%lld) must divide the number of outputs (%lld)",
                       (long long)hp->groups, (long long)K);
    if (hp->groups > 1 && ds->Y)
        return td_fail(err, TD_EINVAL, "groups",
                       "grouped outputs need class-index targets (N, G), not probabilities");
    if (hp->monotone_weight > 0 && hp->groups < 2)
        return td_fail(err, TD_EINVAL, "monotone.weight", "the monotone penalty needs groups >= 2");
    if (hp->class_weights && hp->n_class_weights != K / hp->groups)
        return td_fail(err, TD_EINVAL, "class_weights",
                       "class_weights has %lld entries, the model has %lld classes",
                       (long long)hp->n_class_weights, (long long)(K / hp->groups));
    if (hp->class_weights && hp->groups > 1)
        return td_fail(err, TD_EINVAL, "class_weights",
                       "class_weights is not supported with grouped outputs");
    if (hp->label_smoothing > 0 && hp->groups > 1)
        return td_fail(err, TD_EINVAL, "label_smoothing",
                       "label_smoothing is not supported with grouped outputs");
    if (ds->y) {
        int64_t S = K / hp->groups;
        for (int64_t i = 0; i < ds->N * ds->y_cols; i++) {
            int32_t t = ds->y[i];
            if (t != hp->ignore_index && (t < 0 || t >= S)) {
                char field[64];
                if (ds->y_cols > 1)
                    snprintf(field, sizeof field, "y[%lld][%lld]", (long long)(i / ds->y_cols),
                             (long long)(i % ds->y_cols));
                else
                    snprintf(field, sizeof field, "y[%lld]", (long long)i);
                return td_fail(err, TD_EINVAL, field,
                               "label %d is outside [0, %lld) and is not ignore_index (%lld)", t,
                               (long long)S, (long long)hp->ignore_index);
            }
        }
    }
    if (column0) {
        for (int64_t i = 0; i < ds->N; i++)
            if (ds->X[i * ds->D] != 1.0f) {
                char field[64];
                snprintf(field, sizeof field, "X[%lld][0]", (long long)i);
                return td_fail(err, TD_EINVAL, field,
                               "intercept \"column0\" needs X's first column to be all ones "
                               "(found %g)",
                               (double)ds->X[i * ds->D]);
            }
    }
    /* The trainer holds the parameters, their gradient, the previous step and up to two
     * optimizer moments in float32: cap the model as gmm and embed_gmm do, so that a
     * small request cannot ask for tens of GB (a refusal, not an allocation failure or
     * the OOM killer once the job trains). */
    double n_params = 0, in = (double)ds->D;
    for (int64_t l = 0; l < n_hidden; l++) {
        n_params += (in + 1) * (double)hp->mlp.hidden[l];
        in = (double)hp->mlp.hidden[l];
    }
    n_params += (in + 1) * (double)K;
    if (n_params > (double)MAX_NET_PARAMS)
        return td_fail(err, TD_EINVAL,
                       n_hidden > 0            ? "hidden"
                           : hp->n_classes > 0 ? "n_classes"
                                               : "dataset",
                       "the model would have %.0f parameters (%lld inputs, %lld outputs); at "
                       "most %lld are supported",
                       n_params, (long long)ds->D, (long long)K, MAX_NET_PARAMS);
    int64_t n_val = td_split_count(hp->validation_split, ds->N);
    if (hp->validation_split > 0 && (n_val < 1 || ds->N - n_val < 1))
        return td_fail(err, TD_EINVAL, "validation_split",
                       "validation_split %g of %lld rows leaves an empty training or "
                       "validation set",
                       hp->validation_split, (long long)ds->N);
    if (Kout) *Kout = K;
    return TD_OK;
}

int td_net_layout(const td_model *m, td_tensor_desc *out)
{
    int n = 0;
    int64_t off = 0;
    int64_t in = m->D;
    for (int64_t l = 0; l < m->n_hidden; l++) {
        td_tensor_add(out, &n, &off, "W", (int)l, in, m->hidden[l], 1, 0);
        td_tensor_add(out, &n, &off, "b", (int)l, 1, m->hidden[l], 0, 0);
        in = m->hidden[l];
    }
    td_tensor_add(out, &n, &off, "W", (int)m->n_hidden, in, m->K, 1,
                  m->intercept == TD_INTERCEPT_COLUMN0 ? 1 : 0);
    if (m->intercept == TD_INTERCEPT_FIT)
        td_tensor_add(out, &n, &off, "b", (int)m->n_hidden, 1, m->K, 0, 0);
    return n;
}

/* Softmax over each group of S = K/G entries of every row of z (N, K), in place;
 * labels (N, G) get the argmax of each group. */
static void group_softmax(float *z, int32_t *labels, int64_t N, int64_t K, int64_t G)
{
    int64_t S = K / G;
    for (int64_t i = 0; i < N * G; i++) {
        float *p = z + i * S;
        int64_t best = 0;
        for (int64_t k = 1; k < S; k++)
            if (p[k] > p[best]) best = k;
        double m = p[best], sum = 0;
        for (int64_t k = 0; k < S; k++)
            sum += exp((double)p[k] - m);
        for (int64_t k = 0; k < S; k++)
            p[k] = (float)(exp((double)p[k] - m) / sum);
        if (labels) labels[i] = (int32_t)best;
    }
}

/* out (N, K) OVERWRITTEN with the logits of m on X (N, m->D): X W + b without a hidden
 * layer (softmax), else the network's (mlp). */
static td_status net_forward(float *out, const td_model *m, const float *X, int64_t N,
                             td_error *err)
{
    if (m->n_hidden) {
        td_mlp *M = td_mlp_create(m, 0);
        if (!M) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
        td_mlp_forward(M, NULL, out, m->params, X, NULL, N);
        td_mlp_destroy(M);
        return TD_OK;
    }
    td_tensor_desc t[TD_MAX_TENSORS];
    int n = td_model_layout(m, t);
    td_linear *L = td_linear_create(m->D, m->K, 0, N);
    if (!L) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    td_linear_forward(L, NULL, out, m->params + t[0].offset, n > 1 ? m->params + t[1].offset : NULL,
                      X, NULL, N);
    td_linear_destroy(L);
    return TD_OK;
}

td_status td_net_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                         int64_t N, td_error *err)
{
    {
        td_model plain; /* standardize: the model on standardized rows */
        float *Xs;
        td_status sst = td_standardize_input(m, &plain, &Xs, X, N, err);
        if (sst || Xs) {
            if (!sst) sst = td_net_predict(probs, labels, &plain, Xs, N, err);
            free(Xs);
            return sst;
        }
    }
    td_status st = net_forward(probs, m, X, N, err);
    if (st) return st;
    group_softmax(probs, labels, N, m->K, m->G);
    return TD_OK;
}
