/* model.c — model shapes, the layout of the flat parameter block, and prediction.
 *
 * Every model keeps all its parameters in one float block (llm.c style); the layout names
 * the tensors carved out of it, so the optimizer, checkpoints and the JSON edge each walk
 * one array. W is (in, out) as in SPEC §1 (the transpose of torch's Linear.weight). */
#include "traind/train.h"

#include "train/embed_gmm.h"
#include "train/gmm.h"
#include "train/linear.h"
#include "train/mlp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void td_model_shape(td_model *m, const td_hparams *hp, int64_t D, int64_t K)
{
    memset(m, 0, sizeof *m);
    m->kind = hp->model;
    m->D = D;
    m->K = K;
    m->G = hp->groups;
    m->intercept = hp->model == TD_MODEL_SOFTMAX ? hp->intercept : TD_INTERCEPT_FIT;
    if (hp->model == TD_MODEL_MLP || hp->model == TD_MODEL_EMBED_GMM) {
        m->n_hidden = hp->n_hidden;
        memcpy(m->hidden, hp->hidden, sizeof m->hidden);
    }
    m->activation = hp->activation;
    if (hp->model == TD_MODEL_GMM) { /* D = E features, K = M components */
        m->G = 1;
        m->covariance = hp->covariance;
        m->lower_bound = NAN;
    }
    if (hp->model == TD_MODEL_EMBED_GMM) { /* K = E outputs; rows are set by the caller */
        m->G = 1;
        m->covariance = hp->covariance;
        m->lower_bound = NAN;
        m->components = hp->components;
    }
    m->n_params = td_model_nparams(m);
}

static void add(td_tensor_desc *t, int *n, int64_t *off, const char *name, int layer,
                int64_t rows, int64_t cols, int penalized, int64_t skip_rows)
{
    td_tensor_desc *d = &t[(*n)++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->layer = layer;
    d->rows = rows;
    d->cols = cols;
    d->offset = *off;
    d->penalized = penalized;
    d->skip_rows = skip_rows;
    *off += rows * cols;
}

int td_model_layout(const td_model *m, td_tensor_desc out[TD_MAX_TENSORS])
{
    if (m->kind == TD_MODEL_GMM)
        return td_gmm_layout(m, out);
    if (m->kind == TD_MODEL_EMBED_GMM)
        return td_embed_layout(m, out);
    int n = 0;
    int64_t off = 0;
    int64_t in = m->D;
    for (int64_t l = 0; l < m->n_hidden; l++) {
        add(out, &n, &off, "W", (int)l, in, m->hidden[l], 1, 0);
        add(out, &n, &off, "b", (int)l, 1, m->hidden[l], 0, 0);
        in = m->hidden[l];
    }
    add(out, &n, &off, "W", (int)m->n_hidden, in, m->K, 1,
        m->intercept == TD_INTERCEPT_COLUMN0 ? 1 : 0);
    if (m->intercept == TD_INTERCEPT_FIT)
        add(out, &n, &off, "b", (int)m->n_hidden, 1, m->K, 0, 0);
    return n;
}

int64_t td_model_nparams(const td_model *m)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    int n = td_model_layout(m, t);
    return t[n - 1].offset + t[n - 1].rows * t[n - 1].cols;
}

void td_model_fini(td_model *m)
{
    free(m->params);
    free(m->mean);
    m->params = NULL;
    m->mean = m->scale = NULL;
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
            if (p[k] > p[best])
                best = k;
        double m = p[best], sum = 0;
        for (int64_t k = 0; k < S; k++)
            sum += exp((double)p[k] - m);
        for (int64_t k = 0; k < S; k++)
            p[k] = (float)(exp((double)p[k] - m) / sum);
        if (labels)
            labels[i] = (int32_t)best;
    }
}

td_status td_model_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                           int64_t N, int64_t D, td_error *err)
{
    if (D != m->D)
        return td_fail(err, TD_EINVAL, "X", "X has %lld features, the model expects %lld",
                       (long long)D, (long long)m->D);
    if (m->kind == TD_MODEL_GMM) /* probs: responsibilities (N, M) */
        return td_gmm_predict(labels, probs, NULL, m, X, N, D, err);
    if (m->kind == TD_MODEL_EMBED_GMM) /* probs: responsibilities (N, M) */
        return td_embed_predict(NULL, labels, probs, NULL, m, X, N, D, err);
    {
        td_model plain; /* standardize: the model on standardized rows */
        float *Xs;
        td_status sst = td_standardize_input(m, &plain, &Xs, X, N, err);
        if (sst || Xs) {
            if (!sst)
                sst = td_model_predict(probs, labels, &plain, Xs, N, D, err);
            free(Xs);
            return sst;
        }
    }
    if (m->kind == TD_MODEL_MLP) {
        td_mlp *M = td_mlp_create(m, 0);
        if (!M)
            return td_fail(err, TD_ENOMEM, NULL, "out of memory");
        td_mlp_forward(M, NULL, probs, m->params, X, NULL, N);
        td_mlp_destroy(M);
        group_softmax(probs, labels, N, m->K, m->G);
        return TD_OK;
    }
    if (m->kind != TD_MODEL_SOFTMAX)
        return td_fail(err, TD_EINVAL, "model", "prediction for model \"%s\" is not available",
                       td_model_names[m->kind]);
    td_tensor_desc t[TD_MAX_TENSORS];
    int n = td_model_layout(m, t);
    td_linear *L = td_linear_create(m->D, m->K, 0, N);
    if (!L)
        return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    td_linear_forward(L, NULL, probs, m->params + t[0].offset,
                      n > 1 ? m->params + t[1].offset : NULL, X, NULL, N);
    td_linear_destroy(L);
    group_softmax(probs, labels, N, m->K, m->G);
    return TD_OK;
}
