/* test_mlp.c — the mlp model and grouped outputs (issue 5, SPEC §2 and §5): every layer's
 * gradient and the whole network's against finite differences in double, l1/l2 with the
 * biases unpenalised, the grouped reference reproduced through an mlp, PyTorch's default
 * initialisation, determinism across thread counts and exact resume, the two-spirals
 * problem (mlp yes, softmax no), the monotone penalty on data whose labels rise, grouped
 * predictions, and mlp jobs through the REST API of a live daemon. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpc.h"
#include "testutil.h"
#include "traind/train.h"
#include "train/mlp.h"

/* ---- helpers -------------------------------------------------------------------------- */

static double urand(unsigned *s) /* uniform [0, 1), a fixed LCG: the same data everywhere */
{
    *s = *s * 1664525u + 1013904223u;
    return (double)(*s >> 8) / 16777216.0;
}

static double nrand(unsigned *s)
{
    double u = urand(s), v = urand(s);
    return sqrt(-2 * log(1 - u)) * cos(2 * M_PI * v);
}

/* X (N, D) normal; y from a random two-layer rule over K classes (not linear). */
static td_dataset make_data(int64_t N, int64_t D, int64_t K, unsigned seed)
{
    float *X = malloc(sizeof(float) * (size_t)(N * D));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    ck_assert(X && y);
    for (int64_t i = 0; i < N * D; i++)
        X[i] = (float)nrand(&seed);
    for (int64_t n = 0; n < N; n++) {
        int64_t best = 0;
        double bv = -1e30;
        for (int64_t k = 0; k < K; k++) {
            double z = 0;
            for (int64_t d = 0; d < D; d++)
                z += tanh(X[n * D + d] * (double)((d + 2 * k) % 5 - 2)) * ((d + k) % 3 - 1.0);
            if (z > bv)
                bv = z, best = k;
        }
        y[n] = (int32_t)(n < K ? n : best); /* every class present */
    }
    return (td_dataset){.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
}

static void free_data(td_dataset *ds)
{
    free((void *)ds->X);
    free((void *)ds->y);
    free((void *)ds->Y);
}

static void mlp_hp(td_hparams *hp, int64_t h0, int64_t h1, td_activation act)
{
    td_hparams_defaults(hp, TD_MODEL_MLP);
    hp->mlp.n_hidden = h1 > 0 ? 2 : 1;
    hp->mlp.hidden[0] = h0;
    hp->mlp.hidden[1] = h1;
    hp->mlp.activation = act;
    hp->seed = 5;
}

static int64_t run_all(td_trainer *t, td_record *recs, int64_t max)
{
    int64_t e = 0;
    td_record last;
    while (!td_trainer_done(t))
        tu_step_ok(t, e < max ? &recs[e++] : &last);
    return e;
}

/* Index of a record column by name (the grad trainer's columns). */
static int col(const td_trainer *t, const char *name)
{
    int n;
    const char *const *c = td_trainer_columns(t, &n);
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i], name))
            return i;
    ck_abort_msg("no column %s", name);
    return -1;
}

/* Fraction of rows of ds whose predicted labels (all groups) match. */
static double accuracy(const td_model *m, const td_dataset *ds)
{
    int64_t G = m->G;
    float *p = malloc(sizeof(float) * (size_t)(ds->N * m->K));
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)(ds->N * G));
    td_error err;
    ck_assert_int_eq(td_model_predict(p, lab, m, ds->X, ds->N, ds->D, &err), TD_OK);
    int64_t ok = 0, cnt = 0;
    for (int64_t i = 0; i < ds->N * G; i++) {
        if (ds->y[i] < 0)
            continue;
        cnt++;
        ok += lab[i] == ds->y[i];
    }
    free(p), free(lab);
    return (double)ok / (double)cnt;
}

/* Rows whose predicted per-group labels decrease somewhere. */
static double violation_rate(const td_model *m, const td_dataset *ds)
{
    int64_t G = m->G;
    float *p = malloc(sizeof(float) * (size_t)(ds->N * m->K));
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)(ds->N * G));
    td_error err;
    ck_assert_int_eq(td_model_predict(p, lab, m, ds->X, ds->N, ds->D, &err), TD_OK);
    int64_t bad = 0;
    for (int64_t n = 0; n < ds->N; n++) {
        int v = 0;
        for (int64_t g = 0; g + 1 < G; g++)
            v |= lab[n * G + g + 1] < lab[n * G + g];
        bad += v;
    }
    free(p), free(lab);
    return (double)bad / (double)ds->N;
}

/* ---- layers against finite differences ---------------------------------------------- */

/* sum_i R_i * v_i in double */
static double dot(const float *v, const double *R, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += R[i] * v[i];
    return s;
}

/* Central difference of f(x) = dot(R, out(x)) in x[i], where recompute() refills out. */
#define FD(x, i, h, recompute, out, R, n) \
    ({ float keep_ = (x)[i]; double fp_, fm_; \
       (x)[i] = keep_ + (float)(h); recompute; fp_ = dot(out, R, n); \
       (x)[i] = keep_ - (float)(h); recompute; fm_ = dot(out, R, n); \
       (x)[i] = keep_; (fp_ - fm_) / (((double)(keep_ + (float)(h)) - (double)(keep_ - (float)(h)))); })

START_TEST(dense_layer_gradients_match_finite_differences)
{
    enum { B = 5, C = 4, OC = 3 };
    unsigned s = 11;
    float inp[B * C], W[C * OC], b[OC], out[B * OC], dout[B * OC];
    float dinp[B * C], dW[C * OC], db[OC];
    double R[B * OC];
    for (int i = 0; i < B * C; i++) inp[i] = (float)nrand(&s);
    for (int i = 0; i < C * OC; i++) W[i] = (float)nrand(&s);
    for (int i = 0; i < OC; i++) b[i] = (float)nrand(&s);
    for (int i = 0; i < B * OC; i++) dout[i] = (float)(R[i] = nrand(&s));
    /* out = inp W + b, checked directly in double */
    td_dense_forward(out, inp, W, b, B, C, OC);
    for (int r = 0; r < B; r++)
        for (int j = 0; j < OC; j++) {
            double z = b[j];
            for (int c = 0; c < C; c++)
                z += (double)inp[r * C + c] * W[c * OC + j];
            tu_close_at(__FILE__, __LINE__, out[r * OC + j], z, 1e-5, 1e-6, "out", r * OC + j);
        }
    td_dense_backward(dinp, dW, db, dout, inp, W, B, C, OC, 0);
#define FWD td_dense_forward(out, inp, W, b, B, C, OC)
    for (int i = 0; i < B * C; i++)
        tu_close_at(__FILE__, __LINE__, dinp[i], FD(inp, i, 1e-2, FWD, out, R, B * OC), 1e-3,
                    1e-4, "dinp", i);
    for (int i = 0; i < C * OC; i++)
        tu_close_at(__FILE__, __LINE__, dW[i], FD(W, i, 1e-2, FWD, out, R, B * OC), 1e-3, 1e-4,
                    "dW", i);
    for (int i = 0; i < OC; i++)
        tu_close_at(__FILE__, __LINE__, db[i], FD(b, i, 1e-2, FWD, out, R, B * OC), 1e-3, 1e-4,
                    "db", i);
#undef FWD
    /* accumulate = 1 adds to dW and db; dinp is still overwritten; no bias: db NULL */
    float dW1[C * OC], db1[OC], dinp1[B * C];
    memcpy(dW1, dW, sizeof dW), memcpy(db1, db, sizeof db);
    td_dense_backward(dinp1, dW1, db1, dout, inp, W, B, C, OC, 1);
    for (int i = 0; i < C * OC; i++)
        tu_close_at(__FILE__, __LINE__, dW1[i], 2.0 * dW[i], 1e-6, 1e-6, "dW accumulated", i);
    for (int i = 0; i < OC; i++)
        tu_close_at(__FILE__, __LINE__, db1[i], 2.0 * db[i], 1e-6, 1e-6, "db accumulated", i);
    ck_assert(memcmp(dinp1, dinp, sizeof dinp) == 0);
    td_dense_forward(out, inp, W, NULL, B, C, OC);
    for (int i = 0; i < B * OC; i++) {
        double z = 0;
        for (int c = 0; c < C; c++)
            z += (double)inp[(i / OC) * C + c] * W[c * OC + i % OC];
        tu_close_at(__FILE__, __LINE__, out[i], z, 1e-5, 1e-6, "out without b", i);
    }
    td_dense_backward(NULL, dW1, NULL, dout, inp, W, B, C, OC, 0); /* first layer: no dinp */
    ck_assert(memcmp(dW1, dW, sizeof dW) == 0);
}
END_TEST

START_TEST(activation_gradients_match_finite_differences)
{
    enum { N = 64 };
    static const char *const names[] = {"relu", "tanh", "sigmoid"};
    for (int a = 0; a < 3; a++) {
        unsigned s = 17 + (unsigned)a;
        float x[N], out[N], dout[N], dinp[N];
        double R[N];
        for (int i = 0; i < N; i++) {
            double v = nrand(&s) * 2;
            x[i] = (float)(fabs(v) < 0.05 ? v + 0.2 : v); /* no relu kink within h */
            dout[i] = (float)(R[i] = nrand(&s));
        }
        td_activation act = (td_activation)a;
        td_act_forward(out, x, N, act);
        for (int i = 0; i < N; i++) {
            double want = a == 0 ? fmax(x[i], 0) : a == 1 ? tanh(x[i]) : 1 / (1 + exp(-x[i]));
            tu_close_at(__FILE__, __LINE__, out[i], want, 1e-6, 1e-7, names[a], i);
        }
        td_act_backward(dinp, dout, out, N, act);
        for (int i = 0; i < N; i++) {
            double fd = FD(x, i, 1e-2, td_act_forward(out, x, N, act), out, R, N);
            tu_close_at(__FILE__, __LINE__, dinp[i], fd, 2e-3, 2e-5, names[a], i);
        }
        /* in place: dinp may be dout, out may be inp */
        td_act_forward(out, x, N, act);
        td_act_backward(dinp, dout, out, N, act);
        float y[N];
        memcpy(y, dout, sizeof y);
        td_act_backward(y, y, out, N, act);
        ck_assert(memcmp(y, dinp, sizeof y) == 0);
        memcpy(y, x, sizeof y);
        td_act_forward(y, y, N, act);
        ck_assert(memcmp(y, out, sizeof y) == 0);
    }
    /* relu's gradient at 0 is 0 (torch's threshold_backward) and NaN propagates forward */
    float z[2] = {0.0f, NAN}, o[2], d[2] = {1.0f, 1.0f};
    td_act_forward(o, z, 2, TD_ACT_RELU);
    ck_assert(o[0] == 0.0f && isnan(o[1]));
    td_act_backward(d, d, o, 1, TD_ACT_RELU);
    ck_assert(d[0] == 0.0f);
}
END_TEST

/* ---- the whole network against finite differences ----------------------------------- */

/* Randomises the trainer's parameters away from 0 (l1's kink), then checks the objective's
 * gradient against central differences; for relu, where a step may cross a kink of some
 * hidden unit, a one-sided difference that agrees also passes. */
static void fd_check(const td_hparams *hp, const td_dataset *ds, unsigned seed)
{
    td_trainer *t = tu_make_trainer(hp, ds);
    td_model *m = (td_model *)td_trainer_model(t);
    int64_t P = m->n_params;
    for (int64_t i = 0; i < P; i++) {
        double v = (urand(&seed) - 0.5) * 1.6;
        m->params[i] = (float)(v + (v < 0 ? -0.05 : 0.05));
    }
    float *g = malloc(sizeof(float) * (size_t)P), *scratch = malloc(sizeof(float) * (size_t)P);
    double f0;
    ck_assert_int_eq(td_trainer_objective(t, &f0, g), TD_OK);
    const double h = hp->mlp.activation == TD_ACT_RELU ? 2e-3 : 1e-2; /* fewer kinks crossed */
    for (int64_t i = 0; i < P; i++) {
        float keep = m->params[i];
        double fp, fm;
        m->params[i] = keep + (float)h;
        td_trainer_objective(t, &fp, scratch);
        m->params[i] = keep - (float)h;
        td_trainer_objective(t, &fm, scratch);
        m->params[i] = keep;
        double fd = (fp - fm) / (2 * h), tol = 2e-4 + 2e-3 * fabs(fd);
        if (hp->mlp.activation == TD_ACT_RELU && fabs(g[i] - fd) > tol) {
            double right = (fp - f0) / h, left = (f0 - fm) / h;
            if (fabs(g[i] - right) <= 4 * tol || fabs(g[i] - left) <= 4 * tol)
                continue;
        }
        tu_close_at(__FILE__, __LINE__, g[i], fd, 2e-3, 2e-4, "dloss/dparam", i);
    }
    free(g), free(scratch);
    td_trainer_destroy(t);
}

START_TEST(network_gradient_matches_finite_differences)
{
    td_dataset ds = make_data(40, 3, 3, 23);
    for (int a = 0; a < 3; a++) {
        td_hparams hp;
        mlp_hp(&hp, 5, 4, (td_activation)a);
        fd_check(&hp, &ds, 100 + (unsigned)a); /* two hidden layers, plain cross entropy */
        hp.mlp.n_hidden = 1;
        hp.l2 = 0.3;
        hp.l1 = 0.02;
        fd_check(&hp, &ds, 200 + (unsigned)a); /* one hidden layer, l1 + l2 */
        hp.mlp.n_hidden = 3;
        hp.mlp.hidden[2] = 3;
        hp.l2_scale = TD_L2_MEAN;
        hp.regularize_bias = 1;
        hp.label_smoothing = 0.1;
        float w[3] = {0.5f, 2.0f, 1.5f};
        hp.class_weights = w;
        hp.n_class_weights = 3;
        fd_check(&hp, &ds, 300 + (unsigned)a); /* three layers, weights, smoothing */
    }
    /* probability targets */
    float *Y = malloc(sizeof(float) * 40 * 3);
    unsigned s = 9;
    for (int i = 0; i < 40 * 3; i++)
        Y[i] = (float)urand(&s);
    td_dataset dp = ds;
    dp.y = NULL, dp.y_cols = 0, dp.Y = Y, dp.Y_cols = 3;
    td_hparams hp;
    mlp_hp(&hp, 4, 0, TD_ACT_TANH);
    fd_check(&hp, &dp, 400);
    free(Y);
    free_data(&ds);
}
END_TEST

START_TEST(grouped_monotone_gradient_matches_finite_differences)
{
    td_dataset base = make_data(30, 3, 4, 29);
    int32_t *y = malloc(sizeof(int32_t) * 90);
    for (int i = 0; i < 90; i++)
        y[i] = (i % 7 == 3) ? -100 : (base.y[i / 3] + i % 3) % 4;
    td_dataset ds = base;
    ds.y = y;
    ds.y_cols = 3;
    for (int a = 0; a < 3; a++) {
        td_hparams hp;
        mlp_hp(&hp, 6, 5, (td_activation)a);
        hp.groups = 3;
        hp.monotone_weight = 0.7;
        hp.monotone_margin = 0.1;
        hp.l2 = 0.05;
        fd_check(&hp, &ds, 500 + (unsigned)a);
    }
    free(y);
    free_data(&base);
}
END_TEST

/* l1/l2 act on every W and on no b; the loss and the gradient differ by exactly the
 * penalty's terms. */
START_TEST(regularisers_leave_biases_alone)
{
    td_dataset ds = make_data(50, 4, 3, 31);
    td_hparams hp;
    mlp_hp(&hp, 6, 5, TD_ACT_TANH);
    td_trainer *plain = tu_make_trainer(&hp, &ds);
    hp.l2 = 0.25;
    hp.l1 = 0.03;
    td_trainer *reg = tu_make_trainer(&hp, &ds);
    const td_model *m = td_trainer_model(reg);
    ck_assert(memcmp(m->params, td_trainer_model(plain)->params,
                     sizeof(float) * (size_t)m->n_params) == 0); /* same seeded init */
    int64_t P = m->n_params;
    float *g0 = malloc(sizeof(float) * (size_t)P), *g1 = malloc(sizeof(float) * (size_t)P);
    double f0, f1;
    td_trainer_objective(plain, &f0, g0);
    td_trainer_objective(reg, &f1, g1);
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    ck_assert_int_eq(nt, 6);
    double pen = 0;
    for (int i = 0; i < nt; i++) {
        ck_assert_int_eq(t[i].penalized, t[i].name[0] == 'W');
        for (int64_t j = t[i].offset; j < t[i].offset + t[i].rows * t[i].cols; j++) {
            double w = m->params[j];
            double want = t[i].name[0] == 'W' ? 0.25 * w + 0.03 * ((w > 0) - (w < 0)) : 0;
            if (t[i].name[0] == 'W')
                pen += 0.5 * 0.25 * w * w + 0.03 * fabs(w);
            tu_close_at(__FILE__, __LINE__, (double)g1[j] - g0[j], want, 1e-4, 1e-6,
                        t[i].name[0] == 'W' ? "reg grad of W" : "reg grad of b", j);
        }
    }
    tu_close(f1 - f0, pen, 1e-5, 1e-7, "reg loss");
    td_record rec;
    tu_step_ok(reg, &rec);
    ck_assert(rec.v[col(reg, "reg_loss")] > 0);
    free(g0), free(g1);
    td_trainer_destroy(plain);
    td_trainer_destroy(reg);
    free_data(&ds);
}
END_TEST

/* ---- the grouped reference through an mlp ------------------------------------------- */

/* X = I_N, one hidden relu layer W0 = I_N, b0 = 0, output W1 = the reference logits,
 * b1 = 0: the network's logits are the reference's exactly, so the mlp's loss, penalty
 * and d(loss)/d(W1) (= d(loss)/d(logits)) must be the reference's. One SGD step moves W1
 * by -lr * grad. */
START_TEST(grouped_reference_reproduced_through_mlp)
{
    cJSON *ref = tu_ref_load("grouped_softmax_monotone.json");
    int64_t N, K, Nt, G;
    float *Z = tu_floats(cJSON_GetObjectItem(ref, "logits"), NULL, &N, &K);
    int32_t *y = tu_ints(cJSON_GetObjectItem(ref, "target"), NULL, &Nt, &G);
    double *grad = tu_doubles(cJSON_GetObjectItem(ref, "grad"), NULL, NULL, NULL);
    ck_assert_int_eq(Nt, N);
    ck_assert_int_eq((int64_t)tu_num(ref, "groups"), G);
    float *X = calloc((size_t)(N * N), sizeof(float));
    for (int64_t i = 0; i < N; i++)
        X[i * N + i] = 1.0f;
    td_dataset ds = {.N = N, .D = N, .X = X, .y = y, .y_cols = G};
    td_hparams hp;
    mlp_hp(&hp, N, 0, TD_ACT_RELU);
    hp.optimizer = TD_OPT_SGD;
    hp.lr = 0.1;
    hp.batch_size = 0;
    hp.epochs = 1;
    hp.groups = G;
    hp.n_classes = K;
    hp.ignore_index = (int64_t)tu_num(ref, "ignore_index");
    hp.monotone_weight = tu_num(ref, "weight");
    hp.monotone_margin = tu_num(ref, "margin");
    int64_t P = N * N + N + N * K + K;
    hp.n_initial_weights = P;
    hp.initial_weights = calloc((size_t)P, sizeof(float));
    for (int64_t i = 0; i < N; i++)
        hp.initial_weights[i * N + i] = 1.0f;
    memcpy(hp.initial_weights + N * N + N, Z, sizeof(float) * (size_t)(N * K));
    td_trainer *t = tu_make_trainer(&hp, &ds);
    ck_assert_int_eq(td_trainer_model(t)->n_params, P);

    double loss;
    float *g = malloc(sizeof(float) * (size_t)P);
    td_trainer_objective(t, &loss, g);
    tu_close(loss, tu_num(ref, "loss"), 1e-5, 1e-6, "loss");
    tu_close_array(g + N * N + N, grad, N * K, 1e-4, 1e-6, "d(loss)/d(logits)");
    td_record rec;
    tu_step_ok(t, &rec);
    tu_close(rec.v[col(t, "data_loss")], tu_num(ref, "loss"), 1e-5, 1e-6, "data_loss");
    tu_close(rec.v[col(t, "penalty")], tu_num(ref, "penalty"), 1e-5, 1e-6, "penalty");
    const float *W1 = td_trainer_model(t)->params + N * N + N;
    for (int64_t i = 0; i < N * K; i++)
        tu_close_at(__FILE__, __LINE__, W1[i], Z[i] - 0.1 * grad[i], 1e-5, 1e-6, "W1", i);

    /* expected indices and the violation count agree with the loss module */
    int64_t S = K / G;
    double *E = tu_doubles(cJSON_GetObjectItem(ref, "expected_index"), NULL, NULL, NULL);
    int64_t viol = 0;
    for (int64_t n = 0; n < N; n++) {
        int v = 0;
        int64_t prev = -1;
        for (int64_t gg = 0; gg < G; gg++) {
            const float *z = Z + n * K + gg * S;
            double sum = 0, e = 0, mx = z[0];
            int64_t best = 0;
            for (int64_t k = 1; k < S; k++)
                if (z[k] > z[best])
                    best = k;
            mx = z[best];
            for (int64_t k = 0; k < S; k++)
                sum += exp(z[k] - mx), e += k * exp(z[k] - mx);
            tu_close_at(__FILE__, __LINE__, e / sum, E[n * G + gg], 1e-5, 1e-6, "E", n * G + gg);
            v |= best < prev;
            prev = best;
        }
        viol += v;
    }
    tu_close(rec.v[col(t, "violation_rate")], (double)viol / (double)N, 0, 1e-12,
             "violation_rate");
    free(E), free(g), free(X), free(Z), free(y), free(grad);
    td_trainer_destroy(t);
    td_hparams_fini(&hp);
    cJSON_Delete(ref);
}
END_TEST

/* ---- initialisation, determinism, resume -------------------------------------------- */

START_TEST(init_is_pytorch_linear_default)
{
    td_dataset ds = make_data(20, 30, 4, 37);
    td_hparams hp;
    mlp_hp(&hp, 200, 50, TD_ACT_RELU);
    td_trainer *a = tu_make_trainer(&hp, &ds), *b = tu_make_trainer(&hp, &ds);
    hp.seed = 6;
    td_trainer *c = tu_make_trainer(&hp, &ds);
    const td_model *m = td_trainer_model(a);
    ck_assert(memcmp(m->params, td_trainer_model(b)->params,
                     sizeof(float) * (size_t)m->n_params) == 0);
    ck_assert(memcmp(m->params, td_trainer_model(c)->params,
                     sizeof(float) * (size_t)m->n_params) != 0);
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    ck_assert_int_eq(nt, 6);
    for (int i = 0; i < nt; i++) {
        int64_t fan_in = t[i].name[0] == 'W' ? t[i].rows : t[i - 1].rows;
        double bound = 1 / sqrt((double)fan_in), s = 0, s2 = 0;
        int64_t n = t[i].rows * t[i].cols;
        for (int64_t j = 0; j < n; j++) {
            double w = m->params[t[i].offset + j];
            ck_assert_msg(fabs(w) <= bound, "tensor %d: |%g| > %g", i, w, bound);
            s += w, s2 += w * w;
        }
        if (n >= 200) { /* uniform(-bound, bound): mean 0, variance bound^2/3 */
            tu_close(s / n, 0, 0, 4 * bound / sqrt(3.0 * n), "mean");
            tu_close(s2 / n, bound * bound / 3, 0.1, 0, "variance");
        }
    }
    td_trainer_destroy(a), td_trainer_destroy(b), td_trainer_destroy(c);
    free_data(&ds);
}
END_TEST

START_TEST(same_seed_is_bit_identical_for_any_thread_count)
{
    td_dataset ds = make_data(3000, 12, 4, 41);
    td_hparams hp;
    mlp_hp(&hp, 32, 16, TD_ACT_RELU);
    hp.epochs = 4;
    hp.validation_split = 0.2;
    hp.l2 = 1e-3;
    int64_t batches[3] = {256, 0, 100}; /* 4 chunks; full batch: many chunks; odd size */
    for (int pass = 0; pass < 3; pass++) {
        hp.batch_size = batches[pass];
        hp.optimizer = pass == 1 ? TD_OPT_SGD : TD_OPT_ADAM;
        hp.lr = pass == 1 ? 0.5 : 1e-2;
        td_trainer *a = tu_make_trainer(&hp, &ds), *b = tu_make_trainer(&hp, &ds);
        td_trainer_set_threads(b, 2);
        td_record ra[4], rb[4];
        run_all(a, ra, 4);
        run_all(b, rb, 4);
        const td_model *ma = td_trainer_model(a), *mb = td_trainer_model(b);
        ck_assert(memcmp(ma->params, mb->params, sizeof(float) * (size_t)ma->n_params) == 0);
        for (int e = 0; e < 4; e++)
            for (int c = 2; c < 9; c++)
                ck_assert_msg(memcmp(&ra[e].v[c], &rb[e].v[c], sizeof(double)) == 0,
                              "pass %d epoch %d column %d", pass, e, c);
        ck_assert(ra[3].v[2] < ra[0].v[2]); /* and it learns */
        td_trainer_destroy(a);
        td_trainer_destroy(b);
    }
    free_data(&ds);
}
END_TEST

START_TEST(restored_snapshot_continues_bit_identically)
{
    td_dataset ds = make_data(700, 6, 3, 43);
    td_hparams hp;
    mlp_hp(&hp, 16, 8, TD_ACT_SIGMOID);
    hp.epochs = 8;
    hp.batch_size = 64;
    hp.lr = 1e-2;
    hp.validation_split = 0.2;
    td_trainer *full = tu_make_trainer(&hp, &ds);
    td_record rf[8], rr[8];
    run_all(full, rf, 8);

    td_trainer *first = tu_make_trainer(&hp, &ds);
    td_trainer_set_threads(first, 2);
    for (int e = 0; e < 3; e++)
        tu_step_ok(first, &rr[e]);
    size_t cap = td_trainer_state_size(first);
    void *snap = malloc(cap);
    ck_assert_uint_eq(td_trainer_save(first, snap, cap), cap);
    td_trainer_destroy(first);

    td_trainer *resumed = tu_make_trainer(&hp, &ds);
    td_error err;
    ck_assert_int_eq(td_trainer_restore(resumed, snap, cap, &err), TD_OK);
    ck_assert_int_eq(td_trainer_epoch(resumed), 3);
    for (int e = 3; e < 8; e++)
        tu_step_ok(resumed, &rr[e]);
    ck_assert(td_trainer_done(resumed));
    const td_model *a = td_trainer_model(full), *b = td_trainer_model(resumed);
    ck_assert(memcmp(a->params, b->params, sizeof(float) * (size_t)a->n_params) == 0);
    for (int e = 0; e < 8; e++)
        for (int c = 2; c < 9; c++)
            ck_assert_msg(memcmp(&rf[e].v[c], &rr[e].v[c], sizeof(double)) == 0,
                          "epoch %d column %d differs", e + 1, c);
    /* a snapshot of another architecture is refused */
    hp.mlp.hidden[1] = 9;
    td_trainer *other = tu_make_trainer(&hp, &ds);
    ck_assert_int_eq(td_trainer_restore(other, snap, cap, &err), TD_EINVAL);
    td_trainer_destroy(other);
    free(snap);
    td_trainer_destroy(full);
    td_trainer_destroy(resumed);
    free_data(&ds);
}
END_TEST

/* ---- validation of the hyperparameters ------------------------------------------------ */

START_TEST(mlp_hyperparameters_are_checked)
{
    td_dataset ds = make_data(20, 3, 3, 47);
    td_hparams hp;
    mlp_hp(&hp, 4, 0, TD_ACT_RELU);
    hp.mlp.n_hidden = 0;
    td_error err = {0};
    td_trainer *t = NULL;
    ck_assert_int_eq(td_trainer_create(&t, &hp, &ds, NULL, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "hyperparameters.hidden");
    ck_assert_ptr_null(t);
    mlp_hp(&hp, 4, 0, TD_ACT_RELU);
    hp.n_initial_weights = 5;
    hp.initial_weights = calloc(5, sizeof(float));
    ck_assert_int_eq(td_trainer_create(&t, &hp, &ds, NULL, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "hyperparameters.initial_weights");
    td_hparams_fini(&hp);
    /* defaults of SPEC §5 */
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    ck_assert_int_eq(hp.optimizer, TD_OPT_ADAM);
    tu_close(hp.lr, 1e-3, 0, 0, "lr");
    ck_assert_int_eq(hp.batch_size, 64);
    ck_assert_int_eq(hp.epochs, 20);
    free_data(&ds);
}
END_TEST

/* ---- two spirals -------------------------------------------------------------------- */

/* Two interleaved spirals of n/2 points each, 1.5 turns, scaled into [-1, 1]^2. */
static td_dataset spirals(int64_t n)
{
    float *X = malloc(sizeof(float) * (size_t)(2 * n));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    unsigned s = 3;
    for (int64_t i = 0; i < n; i++) {
        int cls = (int)(i & 1);
        double t = sqrt((i / 2 + 0.5) / (double)(n / 2)) * 3 * M_PI;
        double r = t / (3 * M_PI);
        double a = t + cls * M_PI;
        X[2 * i] = (float)(r * cos(a) + 0.01 * nrand(&s));
        X[2 * i + 1] = (float)(r * sin(a) + 0.01 * nrand(&s));
        y[i] = cls;
    }
    return (td_dataset){.N = n, .D = 2, .X = X, .y = y, .y_cols = 1};
}

#define SPIRAL_HP "{\"hidden\":[64,64],\"activation\":\"tanh\",\"optimizer\":\"adam\"," \
                  "\"lr\":0.01,\"batch_size\":64,\"epochs\":60,\"seed\":1}"

static void spiral_hp(td_hparams *hp)
{
    mlp_hp(hp, 64, 64, TD_ACT_TANH);
    hp->optimizer = TD_OPT_ADAM;
    hp->lr = 0.01;
    hp->batch_size = 64;
    hp->epochs = 60;
    hp->seed = 1;
}

START_TEST(two_spirals_mlp_learns_softmax_cannot)
{
    td_dataset ds = spirals(2000);
    td_hparams hp;
    spiral_hp(&hp);
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_trainer_set_threads(t, 2);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    double acc = accuracy(td_trainer_model(t), &ds);
    ck_assert_msg(acc >= 0.97, "mlp training accuracy %.4f < 0.97", acc);
    ck_assert(rec.v[col(t, "accuracy")] >= 0.95);
    td_trainer_destroy(t);

    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.optimizer = TD_OPT_ADAM;
    hp.lr = 0.01;
    hp.batch_size = 64;
    hp.epochs = 60;
    t = tu_make_trainer(&hp, &ds);
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    double lin = accuracy(td_trainer_model(t), &ds);
    fprintf(stderr, "two spirals: training accuracy mlp %.4f, softmax %.4f\n", acc, lin);
    ck_assert_msg(lin < 0.75, "softmax regression reached %.4f on the spirals", lin);
    td_trainer_destroy(t);
    free_data(&ds);
}
END_TEST

/* ---- the monotone penalty ------------------------------------------------------------- */

/* G = 3 groups of S = 5 ordered levels; the true level of group g rises with g:
 * y_g = clamp(floor(2.5 + s + 0.05 g + 0.5 noise_g)) with s linear in x: the expected level
 * rises with g, each group's label is noisy on its own. */
static td_dataset rising(int64_t N, unsigned seed)
{
    enum { D = 4, G = 3, S = 5 };
    float *X = malloc(sizeof(float) * (size_t)(N * D));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)(N * G));
    for (int64_t n = 0; n < N; n++) {
        double s = 0;
        for (int d = 0; d < D; d++) {
            X[n * D + d] = (float)nrand(&seed);
            s += X[n * D + d] * (0.6 - 0.25 * d);
        }
        for (int g = 0; g < G; g++) {
            int v = (int)floor(2.5 + s + 0.05 * g + 0.5 * nrand(&seed));
            y[n * G + g] = v < 0 ? 0 : v >= S ? S - 1 : v;
        }
    }
    return (td_dataset){.N = N, .D = D, .X = X, .y = y, .y_cols = G};
}

START_TEST(monotone_penalty_orders_the_groups)
{
    td_dataset ds = rising(2000, 53), test = rising(1000, 59);
    double acc[2], viol[2], rec_viol[2];
    for (int with = 0; with < 2; with++) {
        td_hparams hp;
        mlp_hp(&hp, 16, 0, TD_ACT_TANH);
        hp.groups = 3;
        hp.lr = 0.01;
        hp.batch_size = 64;
        hp.epochs = 10;
        hp.monotone_weight = with ? 5.0 : 0.0;
        hp.monotone_margin = with ? 0.05 : 0.0;
        td_trainer *t = tu_make_trainer(&hp, &ds);
        td_record rec;
        while (!td_trainer_done(t))
            tu_step_ok(t, &rec);
        acc[with] = accuracy(td_trainer_model(t), &test);
        viol[with] = violation_rate(td_trainer_model(t), &test);
        rec_viol[with] = rec.v[col(t, "violation_rate")];
        ck_assert(isfinite(rec.v[col(t, "penalty")]));
        td_trainer_destroy(t);
    }
    fprintf(stderr, "monotone: accuracy %.4f -> %.4f, violations %.4f -> %.4f (train %.4f -> %.4f)\n",
            acc[0], acc[1], viol[0], viol[1], rec_viol[0], rec_viol[1]);
    ck_assert_msg(rec_viol[1] <= 0.05 && viol[1] <= 0.05, "violation rate %.4f / %.4f",
                  rec_viol[1], viol[1]);
    ck_assert_msg(rec_viol[1] < rec_viol[0] && viol[1] <= viol[0],
                  "the penalty did not lower the violations");
    ck_assert_msg(acc[1] >= acc[0] - 0.02, "accuracy %.4f with the penalty, %.4f without",
                  acc[1], acc[0]);
    free_data(&ds);
    free_data(&test);
}
END_TEST

START_TEST(grouped_predictions_are_per_group_distributions)
{
    td_dataset ds = rising(300, 61);
    td_hparams hp;
    mlp_hp(&hp, 8, 0, TD_ACT_RELU);
    hp.groups = 3;
    hp.epochs = 3;
    td_trainer *t = tu_make_trainer(&hp, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    const td_model *m = td_trainer_model(t);
    ck_assert_int_eq(m->G, 3);
    ck_assert_int_eq(m->K, 15);
    float p[300 * 15];
    int32_t lab[300 * 3];
    td_error err;
    ck_assert_int_eq(td_model_predict(p, lab, m, ds.X, 300, 4, &err), TD_OK);
    for (int64_t i = 0; i < 300 * 3; i++) {
        double s = 0;
        for (int k = 0; k < 5; k++) {
            s += p[i * 5 + k];
            ck_assert(p[i * 5 + k] <= p[i * 5 + lab[i]]);
        }
        tu_close_at(__FILE__, __LINE__, s, 1.0, 0, 1e-5, "group sum", i);
    }
    ck_assert_int_eq(td_model_predict(p, lab, m, ds.X, 10, 3, &err), TD_EINVAL);
    td_trainer_destroy(t);
    free_data(&ds);
}
END_TEST

/* ---- through the REST API of a live daemon ------------------------------------------- */

#define JSON_HDR "Content-Type: application/json"

typedef struct call {
    int status;
    cJSON *json;                 /* parsed body, or NULL */
    httpc_resp r;
} call;

static call req(int port, const char *method, const char *path, const char *body)
{
    call c = {0};
    c.status = httpc_request(port, method, path, body ? JSON_HDR : NULL, body,
                             body ? strlen(body) : 0, &c.r);
    c.json = c.r.body ? cJSON_Parse(c.r.body) : NULL;
    return c;
}

static void done(call *c)
{
    cJSON_Delete(c->json);
    httpc_free(&c->r);
}

static httpc_daemon start_daemon(void)
{
    httpc_daemon d;
    if (httpc_daemon_start(&d, NULL, NULL, NULL) <= 0) {
        char *log = httpc_daemon_log(&d);
        ck_abort_msg("daemon did not start: %s", log);
    }
    return d;
}

/* {"X": [...], "y": [...]} of ds; y as rows of G when ds->y_cols > 1. malloc'd. */
static char *dataset_json(const td_dataset *ds)
{
    size_t cap = (size_t)(ds->N * ds->D) * 18 + (size_t)(ds->N * ds->y_cols) * 8 + 64;
    char *b = malloc(cap), *p = b;
    ck_assert(b);
    p += sprintf(p, "{\"X\":[");
    for (int64_t n = 0; n < ds->N; n++) {
        p += sprintf(p, "%s[", n ? "," : "");
        for (int64_t d = 0; d < ds->D; d++)
            p += sprintf(p, "%s%.9g", d ? "," : "", (double)ds->X[n * ds->D + d]);
        p += sprintf(p, "]");
    }
    p += sprintf(p, "],\"y\":[");
    for (int64_t n = 0; n < ds->N; n++) {
        int64_t G = ds->y_cols;
        p += sprintf(p, "%s%s", n ? "," : "", G > 1 ? "[" : "");
        for (int64_t g = 0; g < G; g++)
            p += sprintf(p, "%s%d", g ? "," : "", ds->y[n * G + g]);
        p += sprintf(p, "%s", G > 1 ? "]" : "");
    }
    sprintf(p, "]}");
    return b;
}

static char *post_dataset(int port, const td_dataset *ds)
{
    char *body = dataset_json(ds);
    call c = req(port, "POST", "/v1/datasets", body);
    free(body);
    ck_assert_msg(c.status == 201, "dataset: %d %s", c.status, c.r.body);
    char *id = strdup(cJSON_GetObjectItem(c.json, "id")->valuestring);
    done(&c);
    return id;
}

/* Posts a job; returns its id. */
static char *post_job(int port, const char *model, const char *ds, const char *hp)
{
    size_t n = strlen(hp) + 256;
    char *body = malloc(n);
    snprintf(body, n, "{\"model\":\"%s\",\"dataset\":\"%s\",\"hyperparameters\":%s}", model,
             ds, hp);
    call c = req(port, "POST", "/v1/jobs", body);
    free(body);
    ck_assert_msg(c.status == 202, "job: %d %s", c.status, c.r.body);
    char *id = strdup(cJSON_GetObjectItem(c.json, "id")->valuestring);
    done(&c);
    return id;
}

/* Waits for job to succeed (fails the test on another terminal state or a timeout). */
static void wait_job(int port, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    double t0 = httpc_now();
    for (;;) {
        call c = req(port, "GET", path, NULL);
        ck_assert_int_eq(c.status, 200);
        const char *st = cJSON_GetObjectItem(c.json, "state")->valuestring;
        if (!strcmp(st, "succeeded")) {
            done(&c);
            return;
        }
        ck_assert_msg(strcmp(st, "failed") && strcmp(st, "cancelled") &&
                      httpc_now() - t0 < 90, "job %s: %s", st, c.r.body);
        done(&c);
        usleep(20000);
    }
}

static char *run_job(int port, const char *model, const char *ds, const char *hp)
{
    char *id = post_job(port, model, ds, hp);
    wait_job(port, id);
    return id;
}

static int job_epoch(int port, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    call c = req(port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    int e = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "progress"), "epoch")->valueint;
    done(&c);
    return e;
}

static call get(int port, const char *fmt, const char *id)
{
    char path[160];
    snprintf(path, sizeof path, fmt, id);
    call c = req(port, "GET", path, NULL);
    ck_assert_msg(c.status == 200, "%s: %d %s", path, c.status, c.r.body);
    return c;
}

/* POST /predict with rows [0, n) of ds. */
static call predict(int port, const char *job, const td_dataset *ds, int64_t n)
{
    td_dataset part = *ds;
    part.N = n;
    part.y_cols = 0; /* X only */
    char *body = dataset_json(&part);
    strcpy(strstr(body, ",\"y\":"), "}");
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    call c = req(port, "POST", path, body);
    free(body);
    ck_assert_msg(c.status == 200, "predict: %d %s", c.status, c.r.body);
    return c;
}

static int64_t array_len(const cJSON *o, const char *key)
{
    const cJSON *a = key ? cJSON_GetObjectItem(o, key) : o;
    ck_assert_msg(cJSON_IsArray(a), "%s is not an array", key ? key : "item");
    return cJSON_GetArraySize(a);
}

/* Every "layers"[l] W (in, out) and b (out) against the trainer's parameters, exactly. */
static void expect_layers(const cJSON *model, const td_model *m, const char *act)
{
    const cJSON *layers = cJSON_GetObjectItem(model, "layers");
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    ck_assert_int_eq(array_len(layers, NULL), nt / 2);
    for (int l = 0; l < nt / 2; l++) {
        const cJSON *L = cJSON_GetArrayItem(layers, l);
        const td_tensor_desc *W = &t[2 * l], *b = &t[2 * l + 1];
        ck_assert_str_eq(cJSON_GetObjectItem(L, "activation")->valuestring,
                         l < nt / 2 - 1 ? act : "softmax");
        int64_t rows, cols, nb;
        float *w = tu_floats(cJSON_GetObjectItem(L, "W"), NULL, &rows, &cols);
        float *bb = tu_floats(cJSON_GetObjectItem(L, "b"), &nb, NULL, NULL);
        ck_assert_int_eq(rows, W->rows);
        ck_assert_int_eq(cols, W->cols);
        ck_assert_int_eq(nb, b->cols);
        ck_assert(memcmp(w, m->params + W->offset, sizeof(float) * (size_t)(rows * cols)) == 0);
        ck_assert(memcmp(bb, m->params + b->offset, sizeof(float) * (size_t)nb) == 0);
        free(w), free(bb);
    }
}

START_TEST(rest_two_spirals)
{
    httpc_daemon d = start_daemon();
    int port = d.port;
    td_dataset ds = spirals(2000);
    char *dsid = post_dataset(port, &ds);
    char *job = run_job(port, "mlp", dsid, SPIRAL_HP);

    /* the job: resolved hyperparameters */
    call c = get(port, "/v1/jobs/%s", job);
    const cJSON *hp = cJSON_GetObjectItem(c.json, "hyperparameters");
    ck_assert_str_eq(cJSON_GetObjectItem(c.json, "model")->valuestring, "mlp");
    ck_assert_int_eq(array_len(hp, "hidden"), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(hp, "activation")->valuestring, "tanh");
    ck_assert_str_eq(cJSON_GetObjectItem(hp, "optimizer")->valuestring, "adam");
    done(&c);

    /* losses: one row per epoch, falling */
    c = get(port, "/v1/jobs/%s/losses", job);
    const cJSON *loss = cJSON_GetObjectItem(c.json, "loss");
    ck_assert_int_eq(array_len(c.json, "loss"), 60);
    ck_assert_int_eq(array_len(c.json, "accuracy"), 60);
    ck_assert(cJSON_GetArrayItem(loss, 59)->valuedouble <
              0.2 * cJSON_GetArrayItem(loss, 0)->valuedouble);
    done(&c);

    /* the model is the engine's, bit for bit (same data, seed and build; the daemon's
     * thread count does not matter) */
    td_hparams h;
    spiral_hp(&h);
    td_trainer *t = tu_make_trainer(&h, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    c = get(port, "/v1/jobs/%s/model", job);
    ck_assert_str_eq(cJSON_GetObjectItem(c.json, "model")->valuestring, "mlp");
    expect_layers(c.json, td_trainer_model(t), "tanh");
    char *model_json = strdup(c.r.body);
    done(&c);

    /* predictions on the training set: >= 97% */
    c = predict(port, job, &ds, ds.N);
    const cJSON *probs = cJSON_GetObjectItem(c.json, "probabilities");
    const cJSON *labels = cJSON_GetObjectItem(c.json, "labels");
    ck_assert_int_eq(array_len(probs, NULL), ds.N);
    ck_assert_int_eq(array_len(labels, NULL), ds.N);
    int64_t ok = 0;
    for (int64_t n = 0; n < ds.N; n++) {
        const cJSON *row = cJSON_GetArrayItem(probs, (int)n);
        ck_assert_int_eq(array_len(row, NULL), 2);
        tu_close(cJSON_GetArrayItem(row, 0)->valuedouble + cJSON_GetArrayItem(row, 1)->valuedouble,
                 1.0, 0, 1e-6, "row sum");
        ok += cJSON_GetArrayItem(labels, (int)n)->valueint == ds.y[n];
    }
    ck_assert_msg(ok >= 0.97 * ds.N, "REST predictions: %lld of %lld right", (long long)ok,
                  (long long)ds.N);
    done(&c);

    /* the model object goes back in as initial_weights ({"layers": [...]}): with a step
     * far below float resolution, the weights come back unchanged */
    size_t n = strlen(model_json) + 256;
    char *hp2 = malloc(n);
    snprintf(hp2, n, "{\"hidden\":[64,64],\"activation\":\"tanh\",\"optimizer\":\"sgd\","
             "\"lr\":1e-30,\"epochs\":1,\"initial_weights\":%s}", model_json);
    char *job2 = run_job(port, "mlp", dsid, hp2);
    c = get(port, "/v1/jobs/%s/model", job2);
    expect_layers(c.json, td_trainer_model(t), "tanh");
    done(&c);

    /* softmax regression on the same data through the same API cannot separate them */
    char *job3 = run_job(port, "softmax", dsid,
                         "{\"optimizer\":\"adam\",\"lr\":0.01,\"batch_size\":64,\"epochs\":30}");
    c = predict(port, job3, &ds, ds.N);
    labels = cJSON_GetObjectItem(c.json, "labels");
    ok = 0;
    for (int64_t i = 0; i < ds.N; i++)
        ok += cJSON_GetArrayItem(labels, (int)i)->valueint == ds.y[i];
    ck_assert_msg(ok < 0.75 * ds.N, "softmax got %lld of %lld", (long long)ok, (long long)ds.N);
    done(&c);

    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);
    td_trainer_destroy(t);
    free(model_json), free(hp2), free(job), free(job2), free(job3), free(dsid);
    free_data(&ds);
}
END_TEST

START_TEST(rest_grouped_monotone)
{
    httpc_daemon d = start_daemon();
    int port = d.port;
    td_dataset ds = rising(600, 67);
    char *dsid = post_dataset(port, &ds);
    const char *hp = "{\"hidden\":[16],\"activation\":\"tanh\",\"groups\":3,"
                     "\"monotone\":{\"weight\":5,\"margin\":0.05},\"lr\":0.01,"
                     "\"batch_size\":64,\"epochs\":10,\"seed\":2}";
    char *job = run_job(port, "mlp", dsid, hp);

    call c = get(port, "/v1/jobs/%s", job);
    const cJSON *h = cJSON_GetObjectItem(c.json, "hyperparameters");
    ck_assert_int_eq(cJSON_GetObjectItem(h, "groups")->valueint, 3);
    tu_close(cJSON_GetObjectItem(cJSON_GetObjectItem(h, "monotone"), "weight")->valuedouble, 5,
             0, 0, "monotone.weight");
    const cJSON *metrics = cJSON_GetObjectItem(c.json, "metrics");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(metrics, "violation_rate")));
    done(&c);

    c = get(port, "/v1/jobs/%s/losses", job);
    ck_assert_int_eq(array_len(c.json, "penalty"), 10);
    ck_assert_int_eq(array_len(c.json, "violation_rate"), 10);
    double v = cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "violation_rate"), 9)->valuedouble;
    ck_assert_msg(v <= 0.05, "violation rate %g", v);
    done(&c);

    c = get(port, "/v1/jobs/%s/model", job);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "groups")->valueint, 3);
    const cJSON *layers = cJSON_GetObjectItem(c.json, "layers");
    ck_assert_int_eq(array_len(layers, NULL), 2);
    ck_assert_int_eq(array_len(cJSON_GetArrayItem(layers, 0), "W"), 4);
    ck_assert_int_eq(array_len(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 1),
                                                                      "W"), 0), NULL), 15);
    done(&c);

    /* predictions: probabilities (N, G, S), labels (N, G) = argmax of each group */
    c = predict(port, job, &ds, 7);
    const cJSON *probs = cJSON_GetObjectItem(c.json, "probabilities");
    const cJSON *labels = cJSON_GetObjectItem(c.json, "labels");
    ck_assert_int_eq(array_len(probs, NULL), 7);
    ck_assert_int_eq(array_len(labels, NULL), 7);
    for (int n = 0; n < 7; n++) {
        const cJSON *pn = cJSON_GetArrayItem(probs, n), *ln = cJSON_GetArrayItem(labels, n);
        ck_assert_int_eq(array_len(pn, NULL), 3);
        ck_assert_int_eq(array_len(ln, NULL), 3);
        for (int g = 0; g < 3; g++) {
            const cJSON *pg = cJSON_GetArrayItem(pn, g);
            ck_assert_int_eq(array_len(pg, NULL), 5);
            double s = 0, best = -1;
            int arg = -1;
            for (int k = 0; k < 5; k++) {
                double p = cJSON_GetArrayItem(pg, k)->valuedouble;
                s += p;
                if (p > best)
                    best = p, arg = k;
            }
            tu_close(s, 1.0, 0, 1e-6, "group sum");
            ck_assert_int_eq(cJSON_GetArrayItem(ln, g)->valueint, arg);
        }
    }
    done(&c);

    ck_assert_int_eq(httpc_daemon_stop(&d, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&d);
    free(job), free(dsid);
    free_data(&ds);
}
END_TEST

/* A grouped mlp job killed with SIGKILL mid-run resumes from its checkpoint after a
 * restart and ends with the uninterrupted engine's weights, bit for bit, and a history of
 * every epoch exactly once. */
START_TEST(rest_resume_after_kill9_is_exact)
{
    char conf[] = "/tmp/traind-mlp-conf-XXXXXX";
    int fd = mkstemp(conf);
    const char *text = "checkpoint_interval_s = 0\nworkers = 1\n";
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    const char *args[] = {"--config", conf, NULL};
    httpc_daemon d;
    ck_assert_int_gt(httpc_daemon_start(&d, NULL, args, NULL), 0);
    td_dataset ds = rising(400, 71);
    char *dsid = post_dataset(d.port, &ds);
    const char *hp = "{\"hidden\":[8,8],\"activation\":\"relu\",\"groups\":3,"
                     "\"monotone\":{\"weight\":1},\"lr\":0.005,\"batch_size\":50,"
                     "\"epochs\":800,\"validation_split\":0.25,\"seed\":4}";
    char *job = post_job(d.port, "mlp", dsid, hp);
    double t0 = httpc_now();
    while (job_epoch(d.port, job) < 40 && httpc_now() - t0 < 30)
        usleep(2000);
    int before = job_epoch(d.port, job);
    ck_assert_msg(before >= 40 && before < 800, "epoch %d when interrupting", before);
    httpc_daemon_stop(&d, SIGKILL, 10);

    httpc_daemon r;
    ck_assert_int_gt(httpc_daemon_start(&r, d.dir, args, NULL), 0);
    wait_job(r.port, job);
    call c = get(r.port, "/v1/jobs/%s", job);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint, 1);
    done(&c);
    c = get(r.port, "/v1/jobs/%s/losses", job);
    const cJSON *ep = cJSON_GetObjectItem(c.json, "epoch"), *v;
    ck_assert_int_eq(array_len(ep, NULL), 800);
    int i = 1;
    cJSON_ArrayForEach(v, ep) ck_assert_int_eq(v->valueint, i++);
    double last_val = cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "val_loss"), 799)->valuedouble;
    done(&c);

    td_hparams h;
    mlp_hp(&h, 8, 8, TD_ACT_RELU);
    h.groups = 3;
    h.monotone_weight = 1;
    h.lr = 0.005;
    h.batch_size = 50;
    h.epochs = 800;
    h.validation_split = 0.25;
    h.seed = 4;
    td_trainer *t = tu_make_trainer(&h, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    c = get(r.port, "/v1/jobs/%s/model", job);
    expect_layers(c.json, td_trainer_model(t), "relu");
    done(&c);
    ck_assert(memcmp(&last_val, &rec.v[col(t, "val_loss")], sizeof last_val) == 0);

    ck_assert_int_eq(httpc_daemon_stop(&r, SIGTERM, 10), 0);
    httpc_daemon_cleanup(&r);
    unlink(conf);
    td_trainer_destroy(t);
    free(job), free(dsid);
    free_data(&ds);
}
END_TEST

Suite *suite_mlp(void)
{
    Suite *s = suite_create("mlp");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, dense_layer_gradients_match_finite_differences);
    tcase_add_test(tc, activation_gradients_match_finite_differences);
    tcase_add_test(tc, network_gradient_matches_finite_differences);
    tcase_add_test(tc, grouped_monotone_gradient_matches_finite_differences);
    tcase_add_test(tc, regularisers_leave_biases_alone);
    tcase_add_test(tc, grouped_reference_reproduced_through_mlp);
    tcase_add_test(tc, init_is_pytorch_linear_default);
    tcase_add_test(tc, same_seed_is_bit_identical_for_any_thread_count);
    tcase_add_test(tc, restored_snapshot_continues_bit_identically);
    tcase_add_test(tc, mlp_hyperparameters_are_checked);
    tcase_add_test(tc, two_spirals_mlp_learns_softmax_cannot);
    tcase_add_test(tc, monotone_penalty_orders_the_groups);
    tcase_add_test(tc, grouped_predictions_are_per_group_distributions);
    suite_add_tcase(s, tc);
    tc = tcase_create("rest");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, rest_two_spirals);
    tcase_add_test(tc, rest_grouped_monotone);
    tcase_add_test(tc, rest_resume_after_kill9_is_exact);
    suite_add_tcase(s, tc);
    return s;
}
