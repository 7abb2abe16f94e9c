/* model_onnx.c — a model as an ONNX ModelProto (contract in model_onnx.h).
 *
 * The graph is built as protobuf-c structs whose memory all comes from one arena (a list
 * of allocations freed together once the message is packed). Node outputs are named
 * "t<n>" except the graph's outputs. */
#include "codec/model_onnx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/model_c.h"
#include "onnx.pb-c.h"

#define OPSET 13
#define IR_VERSION 8
#define MAX_ATTRS 2 /* per node: axis/axes and keepdims at most */

typedef struct graph {
    void **allocs; /* the arena */
    size_t nalloc, capalloc;
    Onnx__NodeProto **node;
    size_t n_node, cap_node;
    Onnx__TensorProto **init;
    size_t n_init, cap_init;
    int tmp;
    int oom;
} graph;

static void *A(graph *g, size_t n)
{
    if (g->oom) return NULL;
    if (g->nalloc == g->capalloc) {
        size_t cap = g->capalloc ? 2 * g->capalloc : 64;
        void **p = realloc(g->allocs, cap * sizeof *p);
        if (!p) {
            g->oom = 1;
            return NULL;
        }
        g->allocs = p;
        g->capalloc = cap;
    }
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        g->oom = 1;
        return NULL;
    }
    g->allocs[g->nalloc++] = p;
    return p;
}

static char *S(graph *g, const char *s)
{
    char *p = A(g, strlen(s) + 1);
    if (p) strcpy(p, s);
    return p;
}

/* Appends p to the pointer array *arr (n, cap); 0 or -1. */
static int push(graph *g, void ***arr, size_t *n, size_t *cap, void *p)
{
    if (!p || g->oom) return -1;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        void **q = A(g, c * sizeof *q);
        if (!q) return -1;
        if (*n) memcpy(q, *arr, *n * sizeof *q);
        *arr = q;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

static const char *tmp(graph *g)
{
    char name[24];
    snprintf(name, sizeof name, "t%d", g->tmp++);
    return S(g, name);
}

/* An initializer: float32 (f) or int64 (i) data of the given dims; returns its name. */
static const char *init_tensor(graph *g, const char *name, const float *f, const int64_t *i,
                               int ndims, const int64_t *dims)
{
    Onnx__TensorProto *t = A(g, sizeof *t);
    if (!t) return NULL;
    onnx__tensor_proto__init(t);
    const char *nm = name ? S(g, name) : tmp(g);
    t->name = (char *)nm;
    t->n_dims = (size_t)ndims;
    t->dims = A(g, sizeof(int64_t) * (size_t)(ndims ? ndims : 1));
    size_t count = 1;
    for (int d = 0; t->dims && d < ndims; d++) {
        t->dims[d] = dims[d];
        count *= (size_t)dims[d];
    }
    t->has_data_type = 1;
    if (f) {
        t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        t->n_float_data = count;
        t->float_data = A(g, count * sizeof(float));
        if (t->float_data) memcpy(t->float_data, f, count * sizeof(float)); /* f is non-NULL here */
    } else {
        t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
        t->n_int64_data = count;
        t->int64_data = A(g, count * sizeof(int64_t));
        if (t->int64_data && i) memcpy(t->int64_data, i, count * sizeof(int64_t));
    }
    push(g, (void ***)&g->init, &g->n_init, &g->cap_init, t);
    return g->oom ? NULL : nm;
}

static const char *ints(graph *g, int n, const int64_t *v)
{
    int64_t dims[1] = {n};
    return init_tensor(g, NULL, NULL, v, 1, dims);
}

/* A node op(in...) -> out (NULL: a new temporary); returns out, or NULL when out of
 * memory (then g->oom). */
static Onnx__NodeProto *node(graph *g, const char *op, const char *out, const char *in0,
                             const char *in1, const char *in2)
{
    Onnx__NodeProto *n = A(g, sizeof *n);
    if (!n) return NULL;
    onnx__node_proto__init(n);
    n->op_type = S(g, op);
    const char *ins[3] = {in0, in1, in2};
    n->input = A(g, 3 * sizeof(char *));
    for (int i = 0; i < 3 && ins[i] && n->input; i++)
        n->input[n->n_input++] = (char *)ins[i];
    n->output = A(g, sizeof(char *));
    if (n->output) {
        n->output[0] = (char *)(out ? S(g, out) : tmp(g));
        n->n_output = 1;
    }
    n->attribute = A(g, MAX_ATTRS * sizeof *n->attribute);
    char nm[32];
    snprintf(nm, sizeof nm, "n%zu_%s", g->n_node, op);
    n->name = S(g, nm);
    push(g, (void ***)&g->node, &g->n_node, &g->cap_node, n);
    return g->oom ? NULL : n;
}

static const char *out_of(Onnx__NodeProto *n) { return n ? n->output[0] : NULL; }

static void attr_i(graph *g, Onnx__NodeProto *n, const char *name, int64_t v, const int64_t *vs,
                   int nv)
{
    if (!n) return;
    Onnx__AttributeProto *a = A(g, sizeof *a);
    if (!a) return;
    onnx__attribute_proto__init(a);
    a->name = S(g, name);
    a->has_type = 1;
    if (vs) {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        a->ints = A(g, sizeof(int64_t) * (size_t)nv);
        if (a->ints) memcpy(a->ints, vs, sizeof(int64_t) * (size_t)nv);
        a->n_ints = (size_t)nv;
    } else {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        a->has_i = 1;
        a->i = v;
    }
    if (n->attribute && n->n_attribute < MAX_ATTRS) n->attribute[n->n_attribute++] = a;
}

/* A single-attribute helper for the reductions and ArgMax: axis/axes + keepdims. */
static const char *reduce(graph *g, const char *op, const char *out, const char *in, int64_t axis,
                          int keepdims)
{
    Onnx__NodeProto *n = node(g, op, out, in, NULL, NULL);
    if (!strcmp(op, "ArgMax"))
        attr_i(g, n, "axis", axis, NULL, 0);
    else
        attr_i(g, n, "axes", 0, &axis, 1);
    attr_i(g, n, "keepdims", keepdims, NULL, 0);
    return out_of(n);
}

/* The network's layers on x: returns the last layer's output (linear). */
static const char *net(graph *g, const td_model *m, const char *x)
{
    static const char *const ACT[] = {"Relu", "Tanh", "Sigmoid"};
    td_tensor_desc t[TD_MAX_TENSORS];
    int n = td_model_layout(m, t), layers = 0;
    for (int i = 0; i < n; i++)
        layers += !strcmp(t[i].name, "W");
    for (int i = 0, l = 0; i < n && x; i++) {
        if (strcmp(t[i].name, "W") != 0) continue;
        int64_t dims[2] = {t[i].rows, t[i].cols};
        char nm[32];
        snprintf(nm, sizeof nm, "W%d", t[i].layer);
        x = out_of(node(g, "MatMul", NULL, x,
                        init_tensor(g, nm, m->params + t[i].offset, NULL, 2, dims), NULL));
        if (i + 1 < n && !strcmp(t[i + 1].name, "b")) {
            snprintf(nm, sizeof nm, "b%d", t[i].layer);
            x = out_of(node(g, "Add", NULL, x,
                            init_tensor(g, nm, m->params + t[i + 1].offset, NULL, 1, &dims[1]),
                            NULL));
        }
        if (++l < layers) x = out_of(node(g, ACT[m->activation], NULL, x, NULL, NULL));
    }
    return x;
}

/* softmax / mlp outputs from the logits z (N, K). */
static void classifier(graph *g, const td_model *m, const char *z)
{
    int64_t G = m->G > 0 ? m->G : 1;
    if (G > 1) {
        int64_t shape[3] = {-1, G, m->K / G};
        z = out_of(node(g, "Reshape", NULL, z, ints(g, 3, shape), NULL));
    }
    Onnx__NodeProto *sm = node(g, "Softmax", "probabilities", z, NULL, NULL);
    attr_i(g, sm, "axis", -1, NULL, 0);
    reduce(g, "ArgMax", "labels", z, G > 1 ? 2 : 1, 0);
}

/* gmm outputs from the inputs e (N, E) under the gmm model gm. */
static td_status mixture(graph *g, const td_model *gm, const char *e, td_error *err)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    td_model_layout(gm, t);
    int64_t M = gm->K, E = gm->D;
    double *Li = malloc(sizeof(double) * (size_t)(E * E));
    float *LT = malloc(sizeof(float) * (size_t)(M * E * E)),
          *logc = malloc(sizeof(float) * (size_t)M);
    td_status st = TD_OK;
    if (!Li || !LT || !logc) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
        goto done;
    }
    for (int64_t k = 0; k < M; k++) {
        double ln;
        int r = td_gmm_component_factor(Li, &ln, gm, k);
        if (r) {
            st = r == -1 ? td_fail(err, TD_EINVAL, "model",
                                   "the model's covariances are not "
                                   "positive definite")
                         : td_fail(err, TD_ENOMEM, NULL, "out of memory");
            goto done;
        }
        logc[k] = (float)ln;
        for (int64_t i = 0; i < E; i++) /* LT[k] = Li^T: row vectors times it */
            for (int64_t j = 0; j < E; j++)
                LT[(k * E + i) * E + j] = (float)Li[j * E + i];
    }
    int64_t r1[3] = {-1, 1, E}, r2[4] = {-1, M, 1, E}, dmu[2] = {M, E}, dlt[3] = {M, E, E};
    /* (N, 1, E) - (M, E) -> (N, M, E) -> (N, M, 1, E) @ (M, E, E) -> (N, M, 1, E) */
    const char *x3 = out_of(node(g, "Reshape", NULL, e, ints(g, 3, r1), NULL));
    const char *d = out_of(node(
        g, "Sub", NULL, x3, init_tensor(g, "means", gm->params + t[1].offset, NULL, 2, dmu), NULL));
    const char *d4 = out_of(node(g, "Reshape", NULL, d, ints(g, 4, r2), NULL));
    const char *y =
        out_of(node(g, "MatMul", NULL, d4, init_tensor(g, "prec_chol_T", LT, NULL, 3, dlt), NULL));
    Onnx__NodeProto *sq = node(g, "ReduceSumSquare", NULL, y, NULL, NULL);
    attr_i(g, sq, "axes", 0, (const int64_t[]){2, 3}, 2);
    attr_i(g, sq, "keepdims", 0, NULL, 0);
    float half = -0.5f;
    const char *lp = out_of(
        node(g, "Mul", NULL, out_of(sq), init_tensor(g, "minus_half", &half, NULL, 0, NULL), NULL));
    lp = out_of(node(g, "Add", NULL, lp, init_tensor(g, "log_norm", logc, NULL, 1, &M), NULL));
    Onnx__NodeProto *sm = node(g, "Softmax", "responsibilities", lp, NULL, NULL);
    attr_i(g, sm, "axis", 1, NULL, 0);
    reduce(g, "ArgMax", "labels", lp, 1, 0);
    /* log-sum-exp with the row's max taken out first */
    const char *mx = reduce(g, "ReduceMax", NULL, lp, 1, 1);
    const char *sh = out_of(node(g, "Sub", NULL, lp, mx, NULL));
    const char *ls = reduce(g, "ReduceLogSumExp", NULL, sh, 1, 1);
    const char *ll = out_of(node(g, "Add", NULL, ls, mx, NULL));
    int64_t flat[1] = {-1};
    node(g, "Reshape", "log_likelihood", ll, ints(g, 1, flat), NULL);
    if (g->oom) st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
done:
    free(Li), free(LT), free(logc);
    return st;
}

/* A graph input or output: name, element type, dims (-1: symbolic "N"). */
static Onnx__ValueInfoProto *value_info(graph *g, const char *name, int32_t elem, int ndims,
                                        const int64_t *dims)
{
    Onnx__ValueInfoProto *v = A(g, sizeof *v);
    Onnx__TypeProto *tp = A(g, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = A(g, sizeof *tt);
    Onnx__TensorShapeProto *sh = A(g, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dim = A(g, sizeof *dim * (size_t)ndims);
    if (!v || !tp || !tt || !sh || !dim) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndims; i++) {
        Onnx__TensorShapeProto__Dimension *d = A(g, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = S(g, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dim[i] = d;
    }
    sh->n_dim = (size_t)ndims;
    sh->dim = dim;
    tt->has_elem_type = 1;
    tt->elem_type = elem;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = S(g, name);
    v->type = tp;
    return v;
}

/* The model's input: X, or (X - mean) / scale by Sub and Div nodes when m standardizes
 * (float32, as td_standardize_apply). */
static const char *input(graph *g, const td_model *m)
{
    if (!m->mean) return "X";
    int64_t dims[1] = {m->D};
    const char *c =
        out_of(node(g, "Sub", NULL, "X", init_tensor(g, "mean", m->mean, NULL, 1, dims), NULL));
    return out_of(node(g, "Div", NULL, c, init_tensor(g, "scale", m->scale, NULL, 1, dims), NULL));
}

td_status td_model_onnx(char **out, size_t *len, const td_model *m, td_error *err)
{
    return td_model_onnx_meta(out, len, m, NULL, err);
}

td_status td_model_onnx_meta(char **out, size_t *len, const td_model *m, const char *classes,
                             td_error *err)
{
    *out = NULL;
    if (!m->params || (unsigned)m->kind >= TD_MODEL_COUNT)
        return td_fail(err, TD_EINTERNAL, "model", "the model has no parameters");
    graph g;
    memset(&g, 0, sizeof g);
    td_status st = TD_OK;
    int gmm = m->kind == TD_MODEL_GMM, embed = m->kind == TD_MODEL_EMBED_GMM;
    int64_t G = m->G > 0 ? m->G : 1, N = -1;
    const int32_t F = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
                  I = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    Onnx__ValueInfoProto *outs[4] = {0};
    int nout = 0;
    const char *x = input(&g, m);
    if (!x) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    } else if (gmm) {
        st = mixture(&g, m, x, err);
    } else if (embed) {
        td_model view;
        td_embed_gmm_view(&view, m);
        const char *emb = net(&g, m, x);
        node(&g, "Identity", "embedding", emb, NULL, NULL);
        st = mixture(&g, &view, emb, err);
        outs[nout++] = value_info(&g, "embedding", F, 2, (int64_t[]){N, m->K});
    } else {
        classifier(&g, m, net(&g, m, x));
        outs[nout++] = value_info(&g, "probabilities", F, G > 1 ? 3 : 2,
                                  G > 1 ? (int64_t[]){N, G, m->K / G} : (int64_t[]){N, m->K});
        outs[nout++] = value_info(&g, "labels", I, G > 1 ? 2 : 1, (int64_t[]){N, G});
    }
    if (gmm || embed) {
        int64_t M = embed ? m->components : m->K;
        outs[nout++] = value_info(&g, "responsibilities", F, 2, (int64_t[]){N, M});
        outs[nout++] = value_info(&g, "labels", I, 1, (int64_t[]){N});
        outs[nout++] = value_info(&g, "log_likelihood", F, 1, (int64_t[]){N});
    }
    Onnx__ValueInfoProto *in = value_info(&g, "X", F, 2, (int64_t[]){N, m->D});
    Onnx__GraphProto *gp = A(&g, sizeof *gp);
    Onnx__ModelProto *mp = A(&g, sizeof *mp);
    Onnx__OperatorSetIdProto *op = A(&g, sizeof *op);
    Onnx__OperatorSetIdProto **ops = A(&g, sizeof *ops);
    Onnx__ValueInfoProto **ins = A(&g, sizeof *ins), **os = A(&g, sizeof *os * 4);
    if (st) goto done;
    if (g.oom || !in || !gp || !mp || !op || !ops || !ins || !os) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory writing the ONNX model");
        goto done;
    }
    for (int i = 0; i < nout; i++)
        if (!(os[i] = outs[i])) {
            st = td_fail(err, TD_ENOMEM, NULL, "out of memory writing the ONNX model");
            goto done;
        }
    onnx__graph_proto__init(gp);
    gp->name = S(&g, "traind");
    gp->n_node = g.n_node;
    gp->node = g.node;
    gp->n_initializer = g.n_init;
    gp->initializer = g.init;
    ins[0] = in;
    gp->n_input = 1;
    gp->input = ins;
    gp->n_output = (size_t)nout;
    gp->output = os;
    onnx__operator_set_id_proto__init(op);
    op->domain = S(&g, "");
    op->has_version = 1;
    op->version = OPSET;
    ops[0] = op;
    onnx__model_proto__init(mp);
    mp->has_ir_version = 1;
    mp->ir_version = IR_VERSION;
    mp->n_opset_import = 1;
    mp->opset_import = ops;
    mp->producer_name = S(&g, "traind");
    mp->producer_version = S(&g, TD_VERSION);
    mp->graph = gp;
    if (classes) { /* metadata_props {"classes": the JSON array of class names} */
        Onnx__StringStringEntryProto *kv = A(&g, sizeof *kv);
        Onnx__StringStringEntryProto **kvs = A(&g, sizeof *kvs);
        if (kv && kvs) {
            onnx__string_string_entry_proto__init(kv);
            kv->key = S(&g, "classes");
            kv->value = S(&g, classes);
            kvs[0] = kv;
            mp->n_metadata_props = 1;
            mp->metadata_props = kvs;
        }
    }
    if (g.oom) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory writing the ONNX model");
        goto done;
    }
    size_t n = onnx__model_proto__get_packed_size(mp);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory writing the ONNX model");
        goto done;
    }
    *len = onnx__model_proto__pack(mp, buf);
    *out = (char *)buf;
done:
    for (size_t i = 0; i < g.nalloc; i++)
        free(g.allocs[i]);
    free(g.allocs);
    return st;
}
