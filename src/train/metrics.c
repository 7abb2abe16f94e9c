/* metrics.c — evaluation numbers of a model on labelled rows (contracts in train.h):
 * scikit-learn's classification metrics over every class 0..K-1, and a gmm's parameter
 * count for bic / aic. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "traind/train.h"

void td_class_metrics_fini(td_class_metrics *c)
{
    if (!c) return;
    free(c->confusion);
    free(c->precision);
    free(c->support);
    memset(c, 0, sizeof *c);
}

/* num / den, or 0 when den is 0 (scikit-learn's zero_division=0) */
static double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

td_status td_class_metrics_compute(td_class_metrics *c, const float *probs, const int32_t *pred,
                                   const int32_t *y, int64_t N, int64_t K, td_error *err)
{
    memset(c, 0, sizeof *c);
    for (int64_t i = 0; i < N; i++)
        if (y[i] < 0 || y[i] >= K)
            return td_fail(err, TD_EINVAL, "y",
                           "y[%lld] = %d is not a class of the model "
                           "(0 to %lld)",
                           (long long)i, y[i], (long long)K - 1);
    c->K = K;
    c->N = N;
    c->confusion = calloc((size_t)(K * K), sizeof *c->confusion);
    c->precision = calloc((size_t)(3 * K), sizeof *c->precision);
    c->support = calloc((size_t)K, sizeof *c->support);
    if (!c->confusion || !c->precision || !c->support) {
        td_class_metrics_fini(c);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory for a %lld-class report", (long long)K);
    }
    c->recall = c->precision + K;
    c->f1 = c->precision + 2 * K;
    double loss = 0;
    int64_t right = 0;
    for (int64_t i = 0; i < N; i++) {
        c->confusion[y[i] * K + pred[i]]++;
        right += y[i] == pred[i];
        /* a probability that rounded to 0 in float32 counts as the smallest normal one */
        double p = probs[i * K + y[i]];
        loss -= log(p > FLT_MIN ? p : FLT_MIN);
    }
    c->loss = N ? loss / (double)N : 0.0;
    c->accuracy = N ? (double)right / (double)N : 0.0;
    for (int64_t k = 0; k < K; k++) {
        int64_t tp = c->confusion[k * K + k], predicted = 0, actual = 0;
        for (int64_t j = 0; j < K; j++) {
            predicted += c->confusion[j * K + k];
            actual += c->confusion[k * K + j];
        }
        c->support[k] = actual;
        c->precision[k] = ratio((double)tp, (double)predicted);
        c->recall[k] = ratio((double)tp, (double)actual);
        c->f1[k] = ratio(2 * c->precision[k] * c->recall[k], c->precision[k] + c->recall[k]);
        double w = N ? (double)actual / (double)N : 0.0;
        c->macro[0] += c->precision[k] / (double)K;
        c->macro[1] += c->recall[k] / (double)K;
        c->macro[2] += c->f1[k] / (double)K;
        c->weighted[0] += c->precision[k] * w;
        c->weighted[1] += c->recall[k] * w;
        c->weighted[2] += c->f1[k] * w;
    }
    return TD_OK;
}

int64_t td_gmm_n_parameters(const td_model *m)
{
    int64_t M = m->K, E = m->D, cov;
    switch (m->covariance) {
    case TD_COV_FULL: cov = M * E * (E + 1) / 2; break;
    case TD_COV_DIAG: cov = M * E; break;
    case TD_COV_SPHERICAL: cov = M; break;
    case TD_COV_TIED: cov = E * (E + 1) / 2; break; /* one shared full covariance */
    default: cov = 0; break;
    }
    return cov + M * E + M - 1; /* + means + weights (summing to 1) */
}
