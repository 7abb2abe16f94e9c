/* test_mlp.c — the mlp model and grouped outputs (issue 5, SPEC §2 and §5): every layer's
 * gradient and the whole network's against finite differences in double, l1/l2 with the
 * biases unpenalised, the grouped reference reproduced through an mlp, PyTorch's default
 * initialisation, determinism across thread counts and exact resume, the two-spirals
 * problem (mlp yes, softmax no), the monotone penalty on data whose labels rise, and grouped
 * predictions. mlp jobs through the REST API are in test_rest_mlp.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "testutil.h"
#include "traind/train.h"
#include "train/mlp.h"

/* ---- helpers -------------------------------------------------------------------------- */

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
            if (z > bv) bv = z, best = k;
        }
        y[n] = (int32_t)(n < K ? n : best); /* every class present */
    }
    return (td_dataset){.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
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
        if (!strcmp(c[i], name)) return i;
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
        if (ds->y[i] < 0) continue;
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
#define FD(x, i, h, recompute, out, R, n)                                              \
    ({                                                                                 \
        float keep_ = (x)[i];                                                          \
        double fp_, fm_;                                                               \
        (x)[i] = keep_ + (float)(h);                                                   \
        recompute;                                                                     \
        fp_ = dot(out, R, n);                                                          \
        (x)[i] = keep_ - (float)(h);                                                   \
        recompute;                                                                     \
        fm_ = dot(out, R, n);                                                          \
        (x)[i] = keep_;                                                                \
        (fp_ - fm_) / (((double)(keep_ + (float)(h)) - (double)(keep_ - (float)(h)))); \
    })

START_TEST(dense_layer_gradients_match_finite_differences)
{
    enum { B = 5, C = 4, OC = 3 };
    unsigned s = 11;
    float inp[B * C], W[C * OC], b[OC], out[B * OC], dout[B * OC];
    float dinp[B * C], dW[C * OC], db[OC];
    double R[B * OC];
    for (int i = 0; i < B * C; i++)
        inp[i] = (float)nrand(&s);
    for (int i = 0; i < C * OC; i++)
        W[i] = (float)nrand(&s);
    for (int i = 0; i < OC; i++)
        b[i] = (float)nrand(&s);
    for (int i = 0; i < B * OC; i++)
        dout[i] = (float)(R[i] = nrand(&s));
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
        tu_close_at(__FILE__, __LINE__, dinp[i], FD(inp, i, 1e-2, FWD, out, R, B * OC), 1e-3, 1e-4,
                    "dinp", i);
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
            if (fabs(g[i] - right) <= 4 * tol || fabs(g[i] - left) <= 4 * tol) continue;
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
            if (t[i].name[0] == 'W') pen += 0.5 * 0.25 * w * w + 0.03 * fabs(w);
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
                if (z[k] > z[best]) best = k;
            mx = z[best];
            for (int64_t k = 0; k < S; k++)
                sum += exp(z[k] - mx), e += k * exp(z[k] - mx);
            tu_close_at(__FILE__, __LINE__, e / sum, E[n * G + gg], 1e-5, 1e-6, "E", n * G + gg);
            v |= best < prev;
            prev = best;
        }
        viol += v;
    }
    tu_close(rec.v[col(t, "violation_rate")], (double)viol / (double)N, 0, 1e-12, "violation_rate");
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
    ck_assert(memcmp(m->params, td_trainer_model(b)->params, sizeof(float) * (size_t)m->n_params) ==
              0);
    ck_assert(memcmp(m->params, td_trainer_model(c)->params, sizeof(float) * (size_t)m->n_params) !=
              0);
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
    size_t cap;
    void *snap = tu_resume_bit_identical(&hp, &ds, 3, 2, &cap);
    /* a snapshot of another architecture is refused */
    hp.mlp.hidden[1] = 9;
    td_trainer *other = tu_make_trainer(&hp, &ds);
    td_error err;
    ck_assert_int_eq(td_trainer_restore(other, snap, cap, &err), TD_EINVAL);
    td_trainer_destroy(other);
    free(snap);
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
    ck_assert_str_eq(err.field, "hidden");
    ck_assert_ptr_null(t);
    mlp_hp(&hp, 4, 0, TD_ACT_RELU);
    hp.n_initial_weights = 5;
    hp.initial_weights = calloc(5, sizeof(float));
    ck_assert_int_eq(td_trainer_create(&t, &hp, &ds, NULL, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "initial_weights");
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
    fprintf(stderr,
            "monotone: accuracy %.4f -> %.4f, violations %.4f -> %.4f (train %.4f -> %.4f)\n",
            acc[0], acc[1], viol[0], viol[1], rec_viol[0], rec_viol[1]);
    ck_assert_msg(rec_viol[1] <= 0.05 && viol[1] <= 0.05, "violation rate %.4f / %.4f", rec_viol[1],
                  viol[1]);
    ck_assert_msg(rec_viol[1] < rec_viol[0] && viol[1] <= viol[0],
                  "the penalty did not lower the violations");
    ck_assert_msg(acc[1] >= acc[0] - 0.02, "accuracy %.4f with the penalty, %.4f without", acc[1],
                  acc[0]);
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
    return s;
}
