/* loss.c — the losses of SPEC §2 (see include/traind/loss.h for every contract).
 *
 * Every softmax goes through row_log_softmax(): log p_k = (z_k - m) - log sum_j
 * exp(z_j - m), m = max z, in double. m and the log-sum are kept apart (never m + log s,
 * which loses log s when |m| is about 1e16 or more), so logits of any finite magnitude
 * give finite, normalised results. Cross entropy on logits (index targets, probability targets, grouped) is
 * one routine, xent_row(): with per-class coefficients c_k (class weight times the
 * smoothed target), loss = -sum_k c_k log p_k and d loss/d z_j = p_j sum_k c_k - c_j. */
#include "traind/loss.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>

#include "math/vexp.h"

td_ce_opts td_ce_opts_default(void)
{
    return (td_ce_opts){.ignore_index = -100,
                        .class_weights = NULL,
                        .label_smoothing = 0.0,
                        .reduction = TD_REDUCTION_MEAN};
}

static const td_ce_opts *opts_or_default(const td_ce_opts *o, td_ce_opts *storage)
{
    if (o) return o;
    *storage = td_ce_opts_default();
    return storage;
}

/* The log-softmax of a row z (K): log p_k = lsm_logp(&r, z[k]) with r = row_log_softmax(z). */
typedef struct lsm {
    double max, logsum; /* m = max_k z_k, log sum_k exp(z_k - m) */
} lsm;

static lsm row_log_softmax(const float *z, int64_t K)
{
    lsm r = {0.0, 0.0};
    if (K <= 0) return r;
    r.max = z[0];
    for (int64_t k = 1; k < K; k++)
        if (z[k] > r.max) r.max = z[k];
    double s = 0.0;
    for (int64_t k = 0; k < K; k++)
        s += exp((double)z[k] - r.max);
    r.logsum = log(s);
    return r;
}

static double lsm_logp(const lsm *r, float zk) { return ((double)zk - r->max) - r->logsum; }

/* Coefficient c_k of -log p_k for one row: w_k * ((1-eps) t_k + eps/K), where the target
 * t is the probability row Y (K) or, when Y is NULL, the one-hot of class y. */
static double xent_coef(const float *Y, int32_t y, const float *w, double eps, int64_t K, int64_t k)
{
    double t = Y ? (double)Y[k] : (double)(k == y);
    return (w ? (double)w[k] : 1.0) * ((1.0 - eps) * t + eps / (double)K);
}

#if TD_HAVE_VEXP
/* exp_shifted's first K - K % 4 elements, four at a time with td_vexp4 (bit-identical to
 * expf, see vexp.h), for CPUs with AVX2 (td_isa()); adds to *s in k order. */
__attribute__((target("avx2,fma"))) static int64_t exp_shifted4(double *s, float *e, const float *z,
                                                                float m, int64_t K)
{
    int64_t k = 0;
    const __m128 mv = _mm_set1_ps(m), lo = _mm_set1_ps(TD_VEXP_MIN);
    for (; k + 4 <= K; k += 4) {
        __m128 x = _mm_sub_ps(_mm_loadu_ps(z + k), mv);
        float v[4];
        _mm_storeu_ps(v, td_vexp4(x));
        if (_mm_movemask_ps(_mm_cmp_ps(x, lo, _CMP_NGE_UQ))) /* underflow or NaN */
            for (int j = 0; j < 4; j++)
                if (!(z[k + j] - m >= TD_VEXP_MIN)) v[j] = expf(z[k + j] - m);
        for (int j = 0; j < 4; j++) {
            if (e) e[k + j] = v[j];
            *s += v[j];
        }
    }
    return k;
}
#endif

/* 1 when exp_shifted may take exp_shifted4: asked once per call of a loss, not per row. */
static int vexp_ok(void)
{
#if TD_HAVE_VEXP
    return td_isa() >= TD_ISA_AVX2;
#else
    return 0;
#endif
}

/* e[k] = expf(z[k] - m) (e may be NULL) for k < K; returns their sum in double, added
 * in k order: the same bits at every instruction-set level. vexp: vexp_ok(). */
static double exp_shifted(float *e, const float *z, float m, int64_t K, int vexp)
{
    double s = 0.0;
    int64_t k = 0;
#if TD_HAVE_VEXP
    if (vexp) k = exp_shifted4(&s, e, z, m, K);
#else
    (void)vexp;
#endif
    for (; k < K; k++) {
        float v = expf(z[k] - m);
        if (e) e[k] = v;
        s += v;
    }
    return s;
}

/* One row of cross entropy on logits z (K). Returns -sum_k c_k log p_k (coefficients as
 * in xent_coef); dz (K) is overwritten with scale * d(loss)/dz when non-NULL.
 * Hot path of the trainers: one exp per element (kept in dz until the gradient is formed),
 * one log per row, and only the non-zero coefficients touch the loss. */
static double xent_row(float *dz, const float *z, const float *Y, int32_t y, const float *w,
                       double eps, int64_t K, float scale, int vexp)
{
    float m = z[0];
    for (int64_t k = 1; k < K; k++)
        if (z[k] > m) m = z[k];
    double s = exp_shifted(dz, z, m, K, vexp);
    const double logsum = log(s);
    double loss = 0.0, csum = 0.0;
    if (!Y && eps == 0.0) { /* one-hot target: one coefficient */
        csum = w ? (double)w[y] : 1.0;
        loss = -csum * (((double)z[y] - m) - logsum);
    } else {
        for (int64_t k = 0; k < K; k++) {
            double c = xent_coef(Y, y, w, eps, K, k);
            if (c != 0.0) loss -= c * (((double)z[k] - m) - logsum);
            csum += c;
        }
    }
    if (dz) {
        const double inv = 1.0 / s;
        for (int64_t k = 0; k < K; k++)
            dz[k] = (float)((double)scale *
                            ((double)dz[k] * inv * csum - xent_coef(Y, y, w, eps, K, k)));
    }
    return loss;
}

static void zero_floats(float *x, int64_t n)
{
    if (x)
        for (int64_t i = 0; i < n; i++)
            x[i] = 0.0f;
}

/* ---- cross entropy on logits, class-index targets ---------------------------------- */

td_status td_ce_index_check(const int32_t *target, int64_t N, int64_t K, const td_ce_opts *o,
                            td_error *err)
{
    td_ce_opts def;
    o = opts_or_default(o, &def);
    for (int64_t n = 0; n < N; n++) {
        int32_t y = target[n];
        if (y == o->ignore_index || (y >= 0 && y < K)) continue;
        char field[64];
        snprintf(field, sizeof field, "target[%lld]", (long long)n);
        return td_fail(err, TD_EINVAL, field,
                       "class index %d is outside [0, %lld) and is not ignore_index (%d)", (int)y,
                       (long long)K, (int)o->ignore_index);
    }
    return TD_OK;
}

double td_ce_index_denom(const int32_t *target, int64_t N, const td_ce_opts *o)
{
    td_ce_opts def;
    o = opts_or_default(o, &def);
    double d = 0.0;
    for (int64_t n = 0; n < N; n++)
        if (target[n] != o->ignore_index)
            d += o->class_weights ? (double)o->class_weights[target[n]] : 1.0;
    return d;
}

/* The rows of td_ce_index_sum (index targets idx, probs NULL; ignored rows give loss 0
 * and a zero gradient) and td_ce_probs_sum (probability targets probs (N, K), idx NULL). */
static void ce_rows(double *sum, float *per_sample, float *dlogits, const float *logits,
                    const int32_t *idx, const float *probs, int64_t N, int64_t K,
                    const td_ce_opts *o, float grad_scale)
{
    td_ce_opts def;
    o = opts_or_default(o, &def);
    double total = 0.0;
    const int vexp = vexp_ok();
    for (int64_t n = 0; n < N; n++) {
        float *dz = dlogits ? dlogits + n * K : NULL;
        double l = 0.0;
        if (idx && idx[n] == o->ignore_index)
            zero_floats(dz, K);
        else
            l = xent_row(dz, logits + n * K, probs ? probs + n * K : NULL, idx ? idx[n] : 0,
                         o->class_weights, o->label_smoothing, K, grad_scale, vexp);
        if (per_sample) per_sample[n] = (float)l;
        total += l;
    }
    *sum = total;
}

void td_ce_index_sum(double *sum, float *per_sample, float *dlogits, const float *logits,
                     const int32_t *target, int64_t N, int64_t K, const td_ce_opts *o,
                     float grad_scale)
{
    ce_rows(sum, per_sample, dlogits, logits, target, NULL, N, K, o, grad_scale);
}

td_status td_ce_index(double *loss, int *defined, float *per_sample, float *dlogits,
                      const float *logits, const int32_t *target, int64_t N, int64_t K,
                      const td_ce_opts *o, td_error *err)
{
    td_ce_opts def;
    o = opts_or_default(o, &def);
    td_status st = td_ce_index_check(target, N, K, o, err);
    if (st != TD_OK) return st;
    double denom = o->reduction == TD_REDUCTION_MEAN ? td_ce_index_denom(target, N, o) : 1.0;
    /* Mean over nothing (every row ignored, or weights summing to 0) is undefined:
     * report it as loss 0, defined 0, and a zero gradient instead of PyTorch's NaN. */
    int ok = denom != 0.0;
    double sum;
    td_ce_index_sum(&sum, per_sample, dlogits, logits, target, N, K, o,
                    ok ? (float)(1.0 / denom) : 0.0f);
    if (!ok) zero_floats(dlogits, N * K);
    *loss = ok ? sum / denom : 0.0;
    if (defined) *defined = ok;
    return TD_OK;
}

/* ---- cross entropy on logits, probability targets ---------------------------------- */

void td_ce_probs_sum(double *sum, float *per_sample, float *dlogits, const float *logits,
                     const float *target, int64_t N, int64_t K, const td_ce_opts *o,
                     float grad_scale)
{
    ce_rows(sum, per_sample, dlogits, logits, NULL, target, N, K, o, grad_scale);
}

td_status td_ce_probs(double *loss, float *per_sample, float *dlogits, const float *logits,
                      const float *target, int64_t N, int64_t K, const td_ce_opts *o, td_error *err)
{
    td_ce_opts def;
    o = opts_or_default(o, &def);
    /* Mean divides by N even with class weights (PyTorch); N = 0 gives loss 0. */
    double denom = o->reduction == TD_REDUCTION_MEAN && N > 0 ? (double)N : 1.0;
    double sum;
    td_ce_probs_sum(&sum, per_sample, dlogits, logits, target, N, K, o, (float)(1.0 / denom));
    *loss = sum / denom;
    return TD_OK;
}

/* ---- Keras categorical cross entropy on probabilities ------------------------------ */

/* Gradient: with s = rowsum, q = probs/s, c = clip(q), g_k = dL/dq_k = -y_k/c_k where q_k
 * is inside [eps, 1-eps] and 0 where clipped (as TensorFlow's clip gradient), the
 * normalisation gives dL/dprobs_j = (g_j - sum_k g_k q_k) / s. */
td_status td_categorical_ce(double *loss, float *per_sample, float *dprobs, const float *probs,
                            const float *target, int64_t N, int64_t K, double eps, td_error *err)
{
    if (!(eps > 0.0 && eps < 0.5))
        return td_fail(err, TD_EINVAL, "epsilon", "must be in (0, 0.5), got %g", eps);
    for (int64_t n = 0; n < N; n++) {
        double s = 0.0;
        for (int64_t k = 0; k < K; k++) {
            float v = probs[n * K + k];
            if (!(v >= 0.0f) || isinf(v)) {
                s = -1.0;
                break;
            }
            s += v;
        }
        if (s > 0.0 && isfinite(s)) continue;
        char field[64];
        snprintf(field, sizeof field, "probabilities[%lld]", (long long)n);
        return td_fail(err, TD_EINVAL, field,
                       "a row must be finite and non-negative with a positive sum");
    }
    double total = 0.0, scale = N > 0 ? 1.0 / (double)N : 0.0;
    for (int64_t n = 0; n < N; n++) {
        const float *p = probs + n * K, *y = target + n * K;
        double s = 0.0, l = 0.0, gq = 0.0; /* gq = sum_k g_k q_k */
        for (int64_t k = 0; k < K; k++)
            s += p[k];
        for (int64_t k = 0; k < K; k++) {
            double q = p[k] / s, c = fmin(fmax(q, eps), 1.0 - eps);
            l -= y[k] * log(c);
            if (q >= eps && q <= 1.0 - eps) gq -= y[k]; /* g_k q_k = -y_k */
        }
        if (dprobs)
            for (int64_t k = 0; k < K; k++) {
                double q = p[k] / s;
                double g = q >= eps && q <= 1.0 - eps ? -y[k] / q : 0.0;
                dprobs[n * K + k] = (float)(scale * (g - gq) / s);
            }
        if (per_sample) per_sample[n] = (float)l;
        total += l;
    }
    *loss = total * scale;
    return TD_OK;
}

/* ---- grouped cross entropy with the monotone expected-index penalty ---------------- */

td_status td_grouped_check(const int32_t *target, int64_t N, int64_t G, int64_t S,
                           int32_t ignore_index, td_error *err)
{
    for (int64_t i = 0; i < N * G; i++) {
        int32_t y = target[i];
        if (y == ignore_index || (y >= 0 && y < S)) continue;
        char field[64];
        snprintf(field, sizeof field, "target[%lld][%lld]", (long long)(i / G), (long long)(i % G));
        return td_fail(err, TD_EINVAL, field,
                       "class index %d is outside [0, %lld) and is not ignore_index (%d)", (int)y,
                       (long long)S, (int)ignore_index);
    }
    return TD_OK;
}

/* One group z (S): its log-softmax, expected index E = sum_k k p_k and the index of its
 * largest logit (the first one on ties). */
typedef struct group_stats {
    lsm ls;
    double E;
    int64_t argmax;
} group_stats;

static group_stats group_stats_of(const float *z, int64_t S)
{
    group_stats st = {row_log_softmax(z, S), 0.0, 0};
    for (int64_t k = 0; k < S; k++) {
        st.E += (double)k * exp(lsm_logp(&st.ls, z[k]));
        if (z[k] > z[st.argmax]) st.argmax = k;
    }
    return st;
}

/* Groups are visited left to right with a window of three (g-1, g, g+1), so the penalty
 * gradient dP/dE_g = 2 h_g - 2 h_{g-1}, h_g = max(0, E_g - E_{g+1} + margin), needs no
 * scratch memory; each group's softmax is evaluated once for its statistics. Then
 * dE_g/dz_gk = p_gk (k - E_g). */
void td_grouped_sum(td_grouped_result *r, float *expected, float *dlogits, const float *logits,
                    const int32_t *target, int64_t N, int64_t G, int64_t S, int32_t ignore_index,
                    double margin, float ce_scale, float pen_scale)
{
    td_grouped_result acc = {0.0, 0.0, 0.0, 0};
    const int vexp = vexp_ok();
    for (int64_t n = 0; n < N && G > 0; n++) {
        const float *zr = logits + n * G * S;
        double h_prev = 0.0; /* h_{g-1} */
        int violates = 0;
        group_stats cur = group_stats_of(zr, S), next = cur;
        for (int64_t g = 0; g < G; g++) {
            const float *z = zr + g * S;
            int32_t y = target[n * G + g];
            double h = 0.0;
            if (g + 1 < G) {
                next = group_stats_of(z + S, S);
                h = fmax(0.0, cur.E - next.E + margin);
                acc.penalty_sum += h * h;
                if (next.argmax < cur.argmax) violates = 1;
            }
            if (expected) expected[n * G + g] = (float)cur.E;
            float *dz = dlogits ? dlogits + n * G * S + g * S : NULL;
            if (y != ignore_index) {
                acc.ce_sum += xent_row(dz, z, NULL, y, NULL, 0.0, S, ce_scale, vexp);
                acc.ce_count += 1.0;
            } else {
                zero_floats(dz, S);
            }
            double dE = (double)pen_scale * (2.0 * h - 2.0 * h_prev);
            if (dz && dE != 0.0)
                for (int64_t k = 0; k < S; k++)
                    dz[k] += (float)(dE * exp(lsm_logp(&cur.ls, z[k])) * ((double)k - cur.E));
            h_prev = h;
            cur = next;
        }
        acc.violations += violates;
    }
    *r = acc;
}

td_status td_grouped(td_grouped_loss *out, float *expected, float *dlogits, const float *logits,
                     const int32_t *target, int64_t N, int64_t G, int64_t S, int32_t ignore_index,
                     double weight, double margin, td_error *err)
{
    td_status st = td_grouped_check(target, N, G, S, ignore_index, err);
    if (st != TD_OK) return st;
    double count = 0.0;
    for (int64_t i = 0; i < N * G; i++)
        count += target[i] != ignore_index;
    /* With every entry ignored the cross entropy is undefined: it is reported as 0 with
     * defined = 0 and contributes no gradient; the penalty still does. */
    float ce_scale = count > 0.0 ? (float)(1.0 / count) : 0.0f;
    float pen_scale = N > 0 ? (float)(weight / (double)N) : 0.0f;
    td_grouped_result r;
    td_grouped_sum(&r, expected, dlogits, logits, target, N, G, S, ignore_index, margin, ce_scale,
                   pen_scale);
    out->defined = count > 0.0;
    out->cross_entropy = out->defined ? r.ce_sum / r.ce_count : 0.0;
    out->penalty = N > 0 ? r.penalty_sum / (double)N : 0.0;
    out->violation_rate = N > 0 ? (double)r.violations / (double)N : 0.0;
    out->loss = out->cross_entropy + weight * out->penalty;
    return TD_OK;
}

/* ---- contrastive pair loss (Hadsell et al. 2006) ----------------------------------- */

/* With u = a - b, d2 = |u|^2: d(s d2/2)/da = s u; for the dissimilar term
 * d((margin - d)^2/2)/da = -(margin - d) u / d when d < margin. At d = 0 the direction
 * u/d is undefined and the subgradient 0 is used (the pair gets no push apart). */
void td_contrastive_sum(double *sum, float *per_pair, float *da, float *db, const float *a,
                        const float *b, const int32_t *similar, int64_t P, int64_t E, double margin,
                        float grad_scale)
{
    double total = 0.0;
    for (int64_t p = 0; p < P; p++) {
        const float *ap = a + p * E, *bp = b + p * E;
        double d2 = 0.0;
        for (int64_t e = 0; e < E; e++) {
            double u = (double)ap[e] - (double)bp[e];
            d2 += u * u;
        }
        double s = similar[p], d = sqrt(d2), h = fmax(0.0, margin - d);
        double l = s * d2 / 2.0 + (1.0 - s) * h * h / 2.0;
        /* coefficient of u in d(loss)/da */
        double coef = s - (d > 0.0 ? (1.0 - s) * h / d : 0.0);
        for (int64_t e = 0; e < E; e++) {
            double g = (double)grad_scale * coef * ((double)ap[e] - (double)bp[e]);
            if (da) da[p * E + e] = (float)g;
            if (db) db[p * E + e] = (float)-g;
        }
        if (per_pair) per_pair[p] = (float)l;
        total += l;
    }
    *sum = total;
}

td_status td_contrastive(double *loss, float *per_pair, float *da, float *db, const float *a,
                         const float *b, const int32_t *similar, int64_t P, int64_t E,
                         double margin, td_error *err)
{
    for (int64_t p = 0; p < P; p++) {
        if (similar[p] == 0 || similar[p] == 1) continue;
        char field[64];
        snprintf(field, sizeof field, "similar[%lld]", (long long)p);
        return td_fail(err, TD_EINVAL, field, "must be 0 or 1, got %d", (int)similar[p]);
    }
    double denom = P > 0 ? (double)P : 1.0, sum;
    td_contrastive_sum(&sum, per_pair, da, db, a, b, similar, P, E, margin, (float)(1.0 / denom));
    *loss = sum / denom;
    return TD_OK;
}
