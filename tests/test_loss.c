/* test_loss.c — the losses of SPEC §2 against the PyTorch/numpy reference vectors
 * (every case of every file, read at run time), central finite differences of every
 * gradient, and the edge cases: all rows ignored, extreme logits, bad targets, d = 0. */
#include "testutil.h"
#include "traind/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------- */

static const cJSON *item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    ck_assert_msg(v != NULL, "reference has no \"%s\"", key);
    return v;
}

static float *floats_or_null(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? tu_floats(v, NULL, NULL, NULL) : NULL;
}

static double num_or(const cJSON *obj, const char *key, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static td_reduction reduction_of(const cJSON *c)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "reduction");
    if (!cJSON_IsString(r) || strcmp(r->valuestring, "mean") == 0) return TD_REDUCTION_MEAN;
    ck_assert_str_eq(r->valuestring, "sum");
    return TD_REDUCTION_SUM;
}

static void assert_all_finite(const float *x, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(isfinite(x[i]), "%s[%lld] = %g is not finite", what, (long long)i,
                      (double)x[i]);
}

static void fill(float *x, int64_t n, float v)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = v;
}

/* Deterministic pseudo-random numbers (splitmix64) for the gradient checks. */
static uint64_t rng_state;
static double urand(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
    return sqrt(-2.0 * log(1.0 - urand())) * cos(6.283185307179586 * urand());
}

/* Central difference of f (a double-valued loss of the float array x) at every element
 * of x, compared with the analytic gradient. The step actually taken ((float)(x+h) -
 * (float)(x-h)) is used as the divisor. With positive set, the step is at most a tenth
 * of x so entries stay positive. The loss is a sum in double of float32 inputs, so the
 * difference is accurate to about h^2; the tolerances catch any missing term. */
typedef double (*loss_fn)(void *ctx);
static void fd_check(loss_fn f, void *ctx, float *x, const float *grad, int64_t n, double h,
                     int positive, const char *what)
{
    double gnorm = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float x0 = x[i];
        double hi = positive ? fmin(h, 0.1 * x0) : h;
        float xp = (float)(x0 + hi), xm = (float)(x0 - hi);
        x[i] = xp;
        double fp = f(ctx);
        x[i] = xm;
        double fm = f(ctx);
        x[i] = x0;
        double fd = (fp - fm) / ((double)xp - (double)xm);
        tu_close_at(__FILE__, __LINE__, grad[i], fd, 2e-3, 2e-5, what, i);
        gnorm += fabs(grad[i]);
    }
    ck_assert_msg(gnorm > 1e-2, "%s: gradient is (nearly) zero, check is vacuous", what);
}

/* ---- reference vectors --------------------------------------------------------------- */

START_TEST(ce_index_reference)
{
    cJSON *ref = tu_ref_load("cross_entropy_index.json");
    int64_t N, K, nt;
    float *logits = tu_floats(item(ref, "logits"), NULL, &N, &K);
    int32_t *target = tu_ints(item(ref, "target"), &nt, NULL, NULL);
    ck_assert_int_eq(nt, N);
    float *per = malloc(sizeof(float) * (size_t)N), *grad = malloc(sizeof(float) * (size_t)(N * K));
    float *per2 = malloc(sizeof(float) * (size_t)N),
          *grad2 = malloc(sizeof(float) * (size_t)(N * K));
    int ncases = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, item(ref, "cases"))
    {
        td_ce_opts o = td_ce_opts_default();
        o.ignore_index = (int32_t)tu_num(ref, "ignore_index");
        o.reduction = reduction_of(c);
        o.label_smoothing = num_or(c, "label_smoothing", 0.0);
        float *w = floats_or_null(c, "class_weights");
        o.class_weights = w;
        double *want_grad = tu_doubles(item(c, "grad"), NULL, NULL, NULL);

        double loss = -1.0;
        int defined = -1;
        td_error err;
        fill(grad, N * K, NAN);
        ck_assert_int_eq(td_ce_index(&loss, &defined, per, grad, logits, target, N, K, &o, &err),
                         TD_OK);
        ck_assert_int_eq(defined, 1);
        tu_close(loss, tu_num(c, "loss"), 1e-5, 1e-7, "loss");
        tu_close_array(grad, want_grad, N * K, 1e-5, 1e-7, "grad");

        /* per_sample is PyTorch's reduction='none': it reduces to the loss. */
        double denom = o.reduction == TD_REDUCTION_MEAN ? td_ce_index_denom(target, N, &o) : 1.0;
        double s = 0.0;
        for (int64_t n = 0; n < N; n++) {
            s += per[n];
            if (target[n] == o.ignore_index) ck_assert(per[n] == 0.0f);
        }
        tu_close(s / denom, tu_num(c, "loss"), 1e-5, 1e-7, "sum(per_sample)/denom");

        /* The trainers' path: _sum block by block with grad_scale = 1/denom. */
        int64_t half = N / 2;
        double s1, s2;
        td_ce_index_sum(&s1, per2, grad2, logits, target, half, K, &o, (float)(1.0 / denom));
        td_ce_index_sum(&s2, per2 + half, grad2 + half * K, logits + half * K, target + half,
                        N - half, K, &o, (float)(1.0 / denom));
        tu_close((s1 + s2) / denom, tu_num(c, "loss"), 1e-5, 1e-7, "blockwise loss");
        tu_close_array(grad2, want_grad, N * K, 1e-5, 1e-7, "blockwise grad");

        free(w);
        free(want_grad);
        ncases++;
    }
    ck_assert_int_gt(ncases, 0);
    free(logits), free(target), free(per), free(grad), free(per2), free(grad2);
    cJSON_Delete(ref);
}
END_TEST

START_TEST(ce_probs_reference)
{
    cJSON *ref = tu_ref_load("cross_entropy_probs.json");
    int64_t N, K, tn, tk;
    float *logits = tu_floats(item(ref, "logits"), NULL, &N, &K);
    float *Y = tu_floats(item(ref, "target"), NULL, &tn, &tk);
    ck_assert(tn == N && tk == K);
    float *per = malloc(sizeof(float) * (size_t)N), *grad = malloc(sizeof(float) * (size_t)(N * K));
    int ncases = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, item(ref, "cases"))
    {
        td_ce_opts o = td_ce_opts_default();
        o.reduction = reduction_of(c);
        o.label_smoothing = num_or(c, "label_smoothing", 0.0);
        float *w = floats_or_null(c, "class_weights");
        o.class_weights = w;
        double *want_grad = tu_doubles(item(c, "grad"), NULL, NULL, NULL);
        double loss = -1.0;
        fill(grad, N * K, NAN);
        ck_assert_int_eq(td_ce_probs(&loss, per, grad, logits, Y, N, K, &o, NULL), TD_OK);
        tu_close(loss, tu_num(c, "loss"), 1e-5, 1e-7, "loss");
        tu_close_array(grad, want_grad, N * K, 1e-5, 1e-7, "grad");
        double s = 0.0;
        for (int64_t n = 0; n < N; n++)
            s += per[n];
        tu_close(o.reduction == TD_REDUCTION_MEAN ? s / (double)N : s, tu_num(c, "loss"), 1e-5,
                 1e-7, "sum(per_sample)/N");
        free(w);
        free(want_grad);
        ncases++;
    }
    ck_assert_int_gt(ncases, 0);
    free(logits), free(Y), free(per), free(grad);
    cJSON_Delete(ref);
}
END_TEST

START_TEST(categorical_reference)
{
    cJSON *ref = tu_ref_load("categorical_crossentropy_probs.json");
    int64_t N, K, tn, tk, pn;
    float *P = tu_floats(item(ref, "probabilities"), NULL, &N, &K);
    float *Y = tu_floats(item(ref, "target"), NULL, &tn, &tk);
    double *want_per = tu_doubles(item(ref, "per_sample"), &pn, NULL, NULL);
    ck_assert(tn == N && tk == K && pn == N);
    float *per = malloc(sizeof(float) * (size_t)N), *grad = malloc(sizeof(float) * (size_t)(N * K));
    double loss = -1.0;
    fill(grad, N * K, NAN);
    ck_assert_int_eq(td_categorical_ce(&loss, per, grad, P, Y, N, K, tu_num(ref, "epsilon"), NULL),
                     TD_OK);
    tu_close(loss, tu_num(ref, "mean"), 1e-5, 1e-7, "mean");
    tu_close_array(per, want_per, N, 1e-5, 1e-7, "per_sample");
    assert_all_finite(grad, N * K, "dprobs");
    free(P), free(Y), free(want_per), free(per), free(grad);
    cJSON_Delete(ref);
}
END_TEST

START_TEST(grouped_reference)
{
    cJSON *ref = tu_ref_load("grouped_softmax_monotone.json");
    int64_t N, GS, tn, G;
    float *logits = tu_floats(item(ref, "logits"), NULL, &N, &GS);
    int32_t *target = tu_ints(item(ref, "target"), NULL, &tn, &G);
    ck_assert_int_eq(tn, N);
    ck_assert_int_eq(G, (int64_t)tu_num(ref, "groups"));
    ck_assert_int_eq(GS % G, 0);
    int64_t S = GS / G;
    double *want_E = tu_doubles(item(ref, "expected_index"), NULL, NULL, NULL);
    double *want_grad = tu_doubles(item(ref, "grad"), NULL, NULL, NULL);
    float *E = malloc(sizeof(float) * (size_t)(N * G)),
          *grad = malloc(sizeof(float) * (size_t)(N * GS));
    double weight = tu_num(ref, "weight"), margin = tu_num(ref, "margin");
    td_grouped_loss out;
    fill(grad, N * GS, NAN);
    ck_assert_int_eq(td_grouped(&out, E, grad, logits, target, N, G, S,
                                (int32_t)tu_num(ref, "ignore_index"), weight, margin, NULL),
                     TD_OK);
    ck_assert_int_eq(out.defined, 1);
    tu_close(out.cross_entropy, tu_num(ref, "cross_entropy"), 1e-5, 1e-7, "cross_entropy");
    tu_close(out.penalty, tu_num(ref, "penalty"), 1e-5, 1e-7, "penalty");
    tu_close(out.loss, tu_num(ref, "loss"), 1e-5, 1e-7, "loss");
    tu_close_array(E, want_E, N * G, 1e-5, 1e-6, "expected_index");
    tu_close_array(grad, want_grad, N * GS, 1e-5, 1e-7, "grad");

    /* Violation rate against an argmax computed here. */
    int64_t viol = 0;
    for (int64_t n = 0; n < N; n++) {
        int64_t prev = -1, bad = 0;
        for (int64_t g = 0; g < G; g++) {
            const float *z = logits + n * GS + g * S;
            int64_t am = 0;
            for (int64_t k = 1; k < S; k++)
                if (z[k] > z[am]) am = k;
            if (am < prev) bad = 1;
            prev = am;
        }
        viol += bad;
    }
    tu_close(out.violation_rate, (double)viol / (double)N, 0, 1e-12, "violation_rate");
    free(logits), free(target), free(want_E), free(want_grad), free(E), free(grad);
    cJSON_Delete(ref);
}
END_TEST

START_TEST(contrastive_reference)
{
    cJSON *ref = tu_ref_load("contrastive.json");
    int64_t P, E, bp, be, sp;
    float *a = tu_floats(item(ref, "a"), NULL, &P, &E);
    float *b = tu_floats(item(ref, "b"), NULL, &bp, &be);
    int32_t *s = tu_ints(item(ref, "similar"), &sp, NULL, NULL);
    ck_assert(bp == P && be == E && sp == P);
    double *want_da = tu_doubles(item(ref, "grad_a"), NULL, NULL, NULL);
    double *want_db = tu_doubles(item(ref, "grad_b"), NULL, NULL, NULL);
    float *da = malloc(sizeof(float) * (size_t)(P * E)),
          *db = malloc(sizeof(float) * (size_t)(P * E));
    float *per = malloc(sizeof(float) * (size_t)P);
    double loss = -1.0;
    fill(da, P * E, NAN), fill(db, P * E, NAN);
    ck_assert_int_eq(td_contrastive(&loss, per, da, db, a, b, s, P, E, tu_num(ref, "margin"), NULL),
                     TD_OK);
    tu_close(loss, tu_num(ref, "loss"), 1e-5, 1e-7, "loss");
    tu_close_array(da, want_da, P * E, 1e-5, 1e-7, "grad_a");
    tu_close_array(db, want_db, P * E, 1e-5, 1e-7, "grad_b");
    double sum = 0.0;
    for (int64_t p = 0; p < P; p++)
        sum += per[p];
    tu_close(sum / (double)P, tu_num(ref, "loss"), 1e-5, 1e-7, "mean(per_pair)");
    free(a), free(b), free(s), free(want_da), free(want_db), free(da), free(db), free(per);
    cJSON_Delete(ref);
}
END_TEST

/* ---- finite-difference gradient checks --------------------------------------------- */

enum { FN = 6, FK = 5, FG = 3, FS = 4, FE = 3 };

typedef struct ce_ctx {
    float logits[FN * FK], Y[FN * FK], w[FK];
    int32_t target[FN];
    td_ce_opts o;
} ce_ctx;

static double ce_index_loss(void *p)
{
    ce_ctx *c = p;
    double loss;
    int defined;
    ck_assert_int_eq(
        td_ce_index(&loss, &defined, NULL, NULL, c->logits, c->target, FN, FK, &c->o, NULL), TD_OK);
    return loss;
}

static double ce_probs_loss(void *p)
{
    ce_ctx *c = p;
    double loss;
    ck_assert_int_eq(td_ce_probs(&loss, NULL, NULL, c->logits, c->Y, FN, FK, &c->o, NULL), TD_OK);
    return loss;
}

static void ce_ctx_init(ce_ctx *c, uint64_t seed)
{
    rng_state = seed;
    for (int i = 0; i < FN * FK; i++)
        c->logits[i] = (float)(2.0 * nrand());
    for (int n = 0; n < FN; n++) {
        double s = 0.0;
        for (int k = 0; k < FK; k++)
            s += c->Y[n * FK + k] = (float)(0.05 + urand());
        for (int k = 0; k < FK; k++)
            c->Y[n * FK + k] = (float)(c->Y[n * FK + k] / s);
        c->target[n] = (int32_t)(urand() * FK);
    }
    for (int k = 0; k < FK; k++)
        c->w[k] = (float)(0.5 + 1.5 * urand());
    c->target[2] = -100; /* one ignored row */
    c->o = td_ce_opts_default();
}

START_TEST(ce_index_gradcheck)
{
    /* every combination of weights, smoothing and reduction */
    for (int variant = 0; variant < 8; variant++) {
        ce_ctx c;
        ce_ctx_init(&c, 100 + (uint64_t)variant);
        c.o.class_weights = variant & 1 ? c.w : NULL;
        c.o.label_smoothing = variant & 2 ? 0.15 : 0.0;
        c.o.reduction = variant & 4 ? TD_REDUCTION_SUM : TD_REDUCTION_MEAN;
        float grad[FN * FK];
        double loss;
        int defined;
        ck_assert_int_eq(
            td_ce_index(&loss, &defined, NULL, grad, c.logits, c.target, FN, FK, &c.o, NULL),
            TD_OK);
        fd_check(ce_index_loss, &c, c.logits, grad, FN * FK, 1e-3, 0, "ce_index dlogits");
        for (int k = 0; k < FK; k++)
            ck_assert(grad[2 * FK + k] == 0.0f); /* ignored row */
    }
}
END_TEST

START_TEST(ce_probs_gradcheck)
{
    for (int variant = 0; variant < 8; variant++) {
        ce_ctx c;
        ce_ctx_init(&c, 200 + (uint64_t)variant);
        c.o.class_weights = variant & 1 ? c.w : NULL;
        c.o.label_smoothing = variant & 2 ? 0.2 : 0.0;
        c.o.reduction = variant & 4 ? TD_REDUCTION_SUM : TD_REDUCTION_MEAN;
        if (variant & 1) c.Y[0] *= 3.0f; /* a row that is not normalised */
        float grad[FN * FK];
        double loss;
        ck_assert_int_eq(td_ce_probs(&loss, NULL, grad, c.logits, c.Y, FN, FK, &c.o, NULL), TD_OK);
        fd_check(ce_probs_loss, &c, c.logits, grad, FN * FK, 1e-3, 0, "ce_probs dlogits");
    }
}
END_TEST

typedef struct cat_ctx {
    float P[FN * FK], Y[FN * FK];
} cat_ctx;

static double cat_loss(void *p)
{
    cat_ctx *c = p;
    double loss;
    ck_assert_int_eq(td_categorical_ce(&loss, NULL, NULL, c->P, c->Y, FN, FK, 1e-7, NULL), TD_OK);
    return loss;
}

START_TEST(categorical_gradcheck)
{
    cat_ctx c;
    rng_state = 300;
    for (int i = 0; i < FN * FK; i++)
        c.P[i] = (float)(0.05 + urand());
    for (int n = 0; n < FN; n++) {
        int hot = (int)(urand() * FK);
        for (int k = 0; k < FK; k++)
            c.Y[n * FK + k] = k == hot ? 1.0f : 0.0f;
    }
    /* row 1: a soft target; row 3: an entry clipped at eps outside the target class (its
     * gradient comes only through the normalisation); row 4 does not sum to 1; row 5: the
     * target's own entry is clipped, so the row's loss is constant and its gradient 0. */
    for (int k = 0; k < FK; k++)
        c.Y[1 * FK + k] = 1.0f / FK;
    for (int k = 0; k < FK; k++)
        c.Y[3 * FK + k] = k == 1 ? 1.0f : 0.0f;
    for (int k = 0; k < FK; k++)
        c.Y[5 * FK + k] = k == 0 ? 1.0f : 0.0f;
    c.P[3 * FK + 0] = 1e-8f, c.P[5 * FK + 0] = 1e-8f; /* row sums are >= 0.2: q < 1e-7 */
    for (int k = 0; k < FK; k++)
        c.P[4 * FK + k] *= 7.0f;
    float grad[FN * FK];
    double loss;
    ck_assert_int_eq(td_categorical_ce(&loss, NULL, grad, c.P, c.Y, FN, FK, 1e-7, NULL), TD_OK);
    ck_assert(grad[3 * FK + 0] != 0.0f);
    for (int k = 0; k < FK; k++)
        ck_assert(grad[5 * FK + k] == 0.0f);
    fd_check(cat_loss, &c, c.P, grad, FN * FK, 1e-3, 1, "categorical dprobs");
}
END_TEST

typedef struct grp_ctx {
    float logits[FN * FG * FS];
    int32_t target[FN * FG];
    double weight, margin;
} grp_ctx;

static double grp_loss(void *p)
{
    grp_ctx *c = p;
    td_grouped_loss out;
    ck_assert_int_eq(td_grouped(&out, NULL, NULL, c->logits, c->target, FN, FG, FS, -1, c->weight,
                                c->margin, NULL),
                     TD_OK);
    return out.loss;
}

START_TEST(grouped_gradcheck)
{
    grp_ctx c;
    rng_state = 400;
    for (int i = 0; i < FN * FG * FS; i++)
        c.logits[i] = (float)(1.5 * nrand());
    for (int i = 0; i < FN * FG; i++)
        c.target[i] = (int32_t)(urand() * FS);
    c.target[1 * FG + 2] = -1, c.target[4 * FG + 0] = -1;
    c.weight = 0.7, c.margin = 0.5;
    float grad[FN * FG * FS], E[FN * FG];
    td_grouped_loss out;
    ck_assert_int_eq(
        td_grouped(&out, E, grad, c.logits, c.target, FN, FG, FS, -1, c.weight, c.margin, NULL),
        TD_OK);
    ck_assert_msg(out.penalty > 0.0, "penalty inactive: the check would not cover it");
    fd_check(grp_loss, &c, c.logits, grad, FN * FG * FS, 1e-3, 0, "grouped dlogits");

    /* the penalty alone (ce_scale 0) also matches its finite difference */
    td_grouped_result r;
    td_grouped_sum(&r, NULL, grad, c.logits, c.target, FN, FG, FS, -1, c.margin, 0.0f,
                   (float)(c.weight / FN));
    for (int i = 0; i < FN * FG; i++)
        c.target[i] = -1;
    fd_check(grp_loss, &c, c.logits, grad, FN * FG * FS, 1e-3, 0, "penalty dlogits");
}
END_TEST

typedef struct con_ctx {
    float a[FN * FE], b[FN * FE];
    int32_t s[FN];
    double margin;
} con_ctx;

static double con_loss(void *p)
{
    con_ctx *c = p;
    double loss;
    ck_assert_int_eq(
        td_contrastive(&loss, NULL, NULL, NULL, c->a, c->b, c->s, FN, FE, c->margin, NULL), TD_OK);
    return loss;
}

START_TEST(contrastive_gradcheck)
{
    con_ctx c;
    rng_state = 500;
    for (int p = 0; p < FN; p++) {
        double spread = p < 3 ? 0.4 : 1.5; /* some pairs inside the margin, some outside */
        for (int e = 0; e < FE; e++) {
            c.a[p * FE + e] = (float)nrand();
            c.b[p * FE + e] = (float)(c.a[p * FE + e] + spread * nrand());
        }
        c.s[p] = p % 2;
    }
    c.margin = 1.2;
    float da[FN * FE], db[FN * FE];
    double loss;
    ck_assert_int_eq(td_contrastive(&loss, NULL, da, db, c.a, c.b, c.s, FN, FE, c.margin, NULL),
                     TD_OK);
    fd_check(con_loss, &c, c.a, da, FN * FE, 1e-3, 0, "contrastive da");
    fd_check(con_loss, &c, c.b, db, FN * FE, 1e-3, 0, "contrastive db");
}
END_TEST

/* ---- edge cases ---------------------------------------------------------------------- */

START_TEST(all_rows_ignored)
{
    float logits[3 * 4] = {1, 2, 3, 4, -1, 0, 1, 2, 5, 5, 5, 5};
    int32_t target[3] = {-100, -100, -100};
    float w[4] = {1, 2, 3, 4};
    for (int variant = 0; variant < 4; variant++) {
        td_ce_opts o = td_ce_opts_default();
        o.class_weights = variant & 1 ? w : NULL;
        o.label_smoothing = variant & 2 ? 0.1 : 0.0;
        float per[3], grad[12];
        fill(per, 3, NAN), fill(grad, 12, NAN);
        double loss = NAN;
        int defined = -1;
        ck_assert_int_eq(td_ce_index(&loss, &defined, per, grad, logits, target, 3, 4, &o, NULL),
                         TD_OK);
        ck_assert_int_eq(defined, 0);
        ck_assert(loss == 0.0);
        for (int i = 0; i < 12; i++)
            ck_assert(grad[i] == 0.0f);
        for (int i = 0; i < 3; i++)
            ck_assert(per[i] == 0.0f);
        ck_assert(td_ce_index_denom(target, 3, &o) == 0.0);

        o.reduction = TD_REDUCTION_SUM; /* a sum over nothing is 0, and defined */
        ck_assert_int_eq(td_ce_index(&loss, &defined, per, grad, logits, target, 3, 4, &o, NULL),
                         TD_OK);
        ck_assert_int_eq(defined, 1);
        ck_assert(loss == 0.0);
        for (int i = 0; i < 12; i++)
            ck_assert(grad[i] == 0.0f);
    }

    /* grouped: the cross entropy is undefined, the penalty still counts */
    int32_t gt[2 * 2] = {-1, -1, -1, -1};
    float gl[2 * 2 * 3] = {0, 0, 5, 5, 0, 0, 1, 2, 3, 3, 2, 1};
    float grad[12];
    fill(grad, 12, NAN);
    td_grouped_loss out;
    ck_assert_int_eq(td_grouped(&out, NULL, grad, gl, gt, 2, 2, 3, -1, 0.0, 0.0, NULL), TD_OK);
    ck_assert_int_eq(out.defined, 0);
    ck_assert(out.cross_entropy == 0.0 && out.loss == 0.0);
    for (int i = 0; i < 12; i++)
        ck_assert(grad[i] == 0.0f);
    ck_assert_int_eq(td_grouped(&out, NULL, grad, gl, gt, 2, 2, 3, -1, 1.0, 0.0, NULL), TD_OK);
    ck_assert_int_eq(out.defined, 0);
    ck_assert(out.penalty > 0.0 && out.loss == out.penalty);
    assert_all_finite(grad, 12, "grouped grad");
}
END_TEST

START_TEST(extreme_logits)
{
    const float big[] = {1000.0f, 1e30f};
    for (int i = 0; i < 2; i++) {
        float B = big[i];
        float logits[3 * 3] = {B, -B, 0, -B, B, -B, B, B, -B};
        int32_t target[3] = {0, 0, 2};
        float w[3] = {0.5f, 1.0f, 2.0f};
        float per[3], grad[9];
        td_ce_opts o = td_ce_opts_default();
        o.class_weights = w;
        o.label_smoothing = 0.1;
        double loss;
        int defined;
        ck_assert_int_eq(td_ce_index(&loss, &defined, per, grad, logits, target, 3, 3, &o, NULL),
                         TD_OK);
        ck_assert(isfinite(loss));
        assert_all_finite(per, 3, "per_sample");
        assert_all_finite(grad, 9, "grad");

        o = td_ce_opts_default();
        o.reduction = TD_REDUCTION_SUM;
        ck_assert_int_eq(td_ce_index(&loss, &defined, per, grad, logits, target, 3, 3, &o, NULL),
                         TD_OK);
        /* row 0 is right with certainty; row 1 is wrong by 2B; row 2 by 2B + log 2 */
        tu_close(per[0], 0.0, 0, 1e-6, "per_sample[0]");
        tu_close(per[1], 2.0 * B, 1e-6, 0, "per_sample[1]");
        tu_close(per[2], 2.0 * B + (i == 0 ? log(2.0) : 0.0), 1e-6, 0, "per_sample[2]");
        tu_close(grad[3 + 0], -1.0, 0, 1e-6, "grad[1][0]");
        tu_close(grad[3 + 1], 1.0, 0, 1e-6, "grad[1][1]");
        tu_close(grad[6 + 0], 0.5, 0, 1e-6, "grad[2][0]");

        float Y[9] = {0.2f, 0.3f, 0.5f, 1, 0, 0, 0, 0, 1};
        ck_assert_int_eq(td_ce_probs(&loss, per, grad, logits, Y, 3, 3, &o, NULL), TD_OK);
        ck_assert(isfinite(loss));
        assert_all_finite(grad, 9, "probs grad");

        float gl[2 * 6] = {B, -B, 0, -B, 0, B, -B, -B, B, B, -B, -B};
        int32_t gt[2 * 2] = {0, 2, 1, -1};
        float E[4], ggrad[12];
        td_grouped_loss out;
        ck_assert_int_eq(td_grouped(&out, E, ggrad, gl, gt, 2, 2, 3, -1, 1.0, 0.5, NULL), TD_OK);
        ck_assert(isfinite(out.loss));
        assert_all_finite(E, 4, "expected_index");
        assert_all_finite(ggrad, 12, "grouped grad");
        tu_close(out.violation_rate, 0.5, 0, 1e-12, "violation_rate");
    }
}
END_TEST

START_TEST(invalid_inputs)
{
    float logits[4 * 3] = {0};
    td_ce_opts o = td_ce_opts_default();
    td_error err;
    double loss;
    int defined;
    int32_t bad_high[4] = {0, 1, -100, 3};
    ck_assert_int_eq(td_ce_index(&loss, &defined, NULL, NULL, logits, bad_high, 4, 3, &o, &err),
                     TD_EINVAL);
    ck_assert_str_eq(err.field, "target[3]");
    int32_t bad_neg[4] = {0, -1, 2, 7};
    ck_assert_int_eq(td_ce_index_check(bad_neg, 4, 3, &o, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "target[1]");
    o.ignore_index = -1;
    ck_assert_int_eq(td_ce_index_check(bad_neg, 4, 3, &o, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "target[3]");
    ck_assert_int_eq(td_ce_index_check(bad_neg, 3, 3, &o, NULL), TD_OK);

    int32_t gt[2 * 3] = {0, 1, 2, 3, -1, 0};
    ck_assert_int_eq(td_grouped_check(gt, 2, 3, 3, -1, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "target[1][0]");

    float P[2 * 2] = {0.5f, 0.5f, 0.0f, 0.0f}, Y[4] = {1, 0, 0, 1};
    ck_assert_int_eq(td_categorical_ce(&loss, NULL, NULL, P, Y, 2, 2, 1e-7, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "probabilities[1]");
    P[3] = 1.0f, P[0] = -0.1f;
    ck_assert_int_eq(td_categorical_ce(&loss, NULL, NULL, P, Y, 2, 2, 1e-7, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "probabilities[0]");

    float a[2] = {0, 0}, b[2] = {1, 1};
    int32_t s[2] = {1, 2};
    ck_assert_int_eq(td_contrastive(&loss, NULL, NULL, NULL, a, b, s, 2, 1, 1.0, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "similar[1]");
}
END_TEST

START_TEST(contrastive_zero_distance)
{
    float a[2 * 3] = {0.3f, -1.0f, 2.0f, 0.3f, -1.0f, 2.0f};
    float b[2 * 3] = {0.3f, -1.0f, 2.0f, 0.3f, -1.0f, 2.0f};
    int32_t s[2] = {1, 0};
    float per[2], da[6], db[6];
    double loss;
    ck_assert_int_eq(td_contrastive(&loss, per, da, db, a, b, s, 2, 3, 1.5, NULL), TD_OK);
    tu_close(per[0], 0.0, 0, 0, "similar pair at d=0");
    tu_close(per[1], 1.5 * 1.5 / 2, 1e-7, 0, "dissimilar pair at d=0");
    tu_close(loss, 1.5 * 1.5 / 4, 1e-7, 0, "loss");
    for (int i = 0; i < 6; i++)
        ck_assert(da[i] == 0.0f && db[i] == 0.0f);

    /* just off zero the dissimilar gradient is finite with magnitude (margin - d) */
    b[3] += 1e-6f;
    ck_assert_int_eq(td_contrastive(&loss, per, da, db, a, b, s, 2, 3, 1.5, NULL), TD_OK);
    assert_all_finite(da, 6, "da");
    tu_close(da[3] * 2.0, 1.5, 1e-5, 0, "|da| just off d=0");
}
END_TEST

START_TEST(grouped_violations)
{
    /* argmax sequences: (0, 2, 1) decreases; (0, 0, 2) does not; (2, 1, 1) decreases; the
     * ignored targets do not matter: the count is over predictions. */
    float z[3 * 3 * 3] = {5, 0, 0, 0, 0, 5, 0, 5, 0, 5, 0, 0, 5, 0,
                          0, 0, 0, 5, 0, 0, 5, 0, 5, 0, 0, 5, 0};
    int32_t t[3 * 3] = {0, 2, 1, -1, -1, -1, 2, 1, 1};
    td_grouped_loss out;
    ck_assert_int_eq(td_grouped(&out, NULL, NULL, z, t, 3, 3, 3, -1, 0.0, 0.0, NULL), TD_OK);
    tu_close(out.violation_rate, 2.0 / 3.0, 0, 1e-12, "violation_rate");
    td_grouped_result r;
    td_grouped_sum(&r, NULL, NULL, z, t, 3, 3, 3, -1, 0.0, 1.0f, 1.0f);
    ck_assert_int_eq(r.violations, 2);
    ck_assert(r.ce_count == 6.0);
}
END_TEST

Suite *suite_loss(void)
{
    Suite *s = suite_create("loss");
    TCase *ref = tcase_create("reference");
    tcase_add_test(ref, ce_index_reference);
    tcase_add_test(ref, ce_probs_reference);
    tcase_add_test(ref, categorical_reference);
    tcase_add_test(ref, grouped_reference);
    tcase_add_test(ref, contrastive_reference);
    suite_add_tcase(s, ref);
    TCase *fd = tcase_create("gradcheck");
    tcase_add_test(fd, ce_index_gradcheck);
    tcase_add_test(fd, ce_probs_gradcheck);
    tcase_add_test(fd, categorical_gradcheck);
    tcase_add_test(fd, grouped_gradcheck);
    tcase_add_test(fd, contrastive_gradcheck);
    suite_add_tcase(s, fd);
    TCase *edge = tcase_create("edge");
    tcase_add_test(edge, all_rows_ignored);
    tcase_add_test(edge, extreme_logits);
    tcase_add_test(edge, invalid_inputs);
    tcase_add_test(edge, contrastive_zero_distance);
    tcase_add_test(edge, grouped_violations);
    suite_add_tcase(s, edge);
    return s;
}
