/* model.c — model shapes, the layout of the flat parameter block, and prediction.
 *
 * Every model keeps all its parameters in one float block (llm.c style); the layout names
 * the tensors carved out of it, so the optimizer, checkpoints and the JSON edge each walk
 * one array. W is (in, out) as in SPEC §1 (the transpose of torch's Linear.weight). */
#include "traind/train.h"

#include <math.h>
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
    if (hp->model == TD_MODEL_MLP) {
        m->n_hidden = hp->n_hidden;
        memcpy(m->hidden, hp->hidden, sizeof m->hidden);
    }
    m->activation = hp->activation;
    m->n_params = td_model_nparams(m);
}

static void add(td_tensor_desc *t, int *n, int64_t *off, const char *name, int layer,
                int64_t rows, int64_t cols, int penalized)
{
    td_tensor_desc *d = &t[(*n)++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->layer = layer;
    d->rows = rows;
    d->cols = cols;
    d->offset = *off;
    d->penalized = penalized;
    *off += rows * cols;
}

int td_model_layout(const td_model *m, td_tensor_desc out[TD_MAX_TENSORS])
{
    int n = 0;
    int64_t off = 0;
    int64_t in = m->D;
    for (int64_t l = 0; l < m->n_hidden; l++) {
        add(out, &n, &off, "W", (int)l, in, m->hidden[l], 1);
        add(out, &n, &off, "b", (int)l, 1, m->hidden[l], 0);
        in = m->hidden[l];
    }
    add(out, &n, &off, "W", (int)m->n_hidden, in, m->K, 1);
    if (m->intercept == TD_INTERCEPT_FIT)
        add(out, &n, &off, "b", (int)m->n_hidden, 1, m->K, 0);
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
    m->params = NULL;
}
