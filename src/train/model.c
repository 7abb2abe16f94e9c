/* model.c — model shapes, the layout of the flat parameter block, and prediction: the
 * generic part of each, which calls the family's row (family.h) for the rest.
 *
 * Every model keeps all its parameters in one float block (llm.c style); the layout names
 * the tensors carved out of it, so the optimizer, checkpoints and the JSON edge each walk
 * one array. W is (in, out) as in SPEC §1 (the transpose of torch's Linear.weight). */
#include "traind/train.h"

#include "train/family.h"
#include "train/layout.h"

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
    m->intercept = TD_INTERCEPT_FIT;
    m->activation = hp->mlp.activation;
    const td_family *f = td_family_of((int)hp->model);
    if (f) f->shape(m, hp);
    m->n_params = td_model_nparams(m);
}

int td_model_layout(const td_model *m, td_tensor_desc out[TD_MAX_TENSORS])
{
    const td_family *f = td_family_of((int)m->kind);
    return f ? f->layout(m, out) : td_net_layout(m, out); /* unknown: as a linear layer */
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

td_status td_model_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                           int64_t N, int64_t D, td_error *err)
{
    if (D != m->D)
        return td_fail(err, TD_EINVAL, "X", "X has %lld features, the model expects %lld",
                       (long long)D, (long long)m->D);
    const td_family *f = td_family_of((int)m->kind);
    if (!f)
        return td_fail(err, TD_EINVAL, "model", "prediction for model %d is not available",
                       (int)m->kind);
    return f->predict(probs, labels, m, X, N, err);
}

void td_tensor_add(td_tensor_desc *t, int *n, int64_t *off, const char *name, int layer,
                   int64_t rows, int64_t cols, int penalized, int64_t skip_rows)
{
    td_tensor_desc *d = &t[(*n)++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->layer = layer;
    d->rows = rows;
    d->cols = cols;
    d->offset = *off;
    d->penalized = penalized;
    d->skip_rows = skip_rows;
    *off += rows * cols;
}
