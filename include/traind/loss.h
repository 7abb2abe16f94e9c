/* loss.h — the losses of SPEC §2, on plain float32 arrays.
 *
 * Conventions (all functions):
 *  - matrices are row-major; shapes are given in each comment: logits is (N, K).
 *  - sums are accumulated in double; outputs are float32.
 *  - outputs come first; every output pointer except the scalar result may be NULL
 *    when the caller does not want it; array outputs are OVERWRITTEN, never accumulated.
 *  - the "_sum" variants return the un-reduced sum over rows and write
 *    grad_scale * d(sum)/d(input): the trainers compute a mini-batch's denominator once
 *    (td_ce_index_denom) and evaluate the loss block by block with grad_scale = 1/denom.
 *    The reduced variants are thin wrappers over them, so /v1/loss and the trainers run
 *    the same code.
 *  - logits of any magnitude (±1000 and beyond) give finite results.
 */
#ifndef TRAIND_LOSS_H
#define TRAIND_LOSS_H

#include <stdint.h>

#include "traind/status.h"

typedef enum { TD_REDUCTION_MEAN = 0, TD_REDUCTION_SUM } td_reduction;

typedef struct td_ce_opts {
    int32_t ignore_index;       /* rows with this target contribute nothing; default -100 */
    const float *class_weights; /* (K) or NULL */
    double label_smoothing;     /* eps in [0, 1]; default 0 */
    td_reduction reduction;     /* default mean */
} td_ce_opts;

/* PyTorch defaults: ignore_index -100, no weights, no smoothing, mean. */
td_ce_opts td_ce_opts_default(void);

/* ---- cross entropy on logits, class-index targets ---------------------------------- */

/* Validates target (N): each entry in [0, K) or == ignore_index; otherwise TD_EINVAL with
 * field "target[n]" for the first offending row. */
td_status td_ce_index_check(const int32_t *target, int64_t N, int64_t K, const td_ce_opts *o,
                            td_error *err);

/* Denominator of the mean reduction: number of non-ignored rows, or the sum of
 * class_weights[target[n]] over them when weights are given. 0 when all are ignored. */
double td_ce_index_denom(const int32_t *target, int64_t N, const td_ce_opts *o);

/* Un-reduced sum. logits (N, K), target (N) (already checked).
 * *sum     = sum_n loss_n, where loss_n is PyTorch's reduction='none' value:
 *            w_{y_n} * ((1-eps) * -log p_{n,y_n}) + eps/K * sum_k w_k * -log p_{nk}
 *            (w = 1 without weights), 0 for ignored rows.
 * per_sample (N): loss_n.  dlogits (N, K): grad_scale * d(sum)/d(logits). */
void td_ce_index_sum(double *sum, float *per_sample, float *dlogits, const float *logits,
                     const int32_t *target, int64_t N, int64_t K, const td_ce_opts *o,
                     float grad_scale);

/* Reduced loss. *loss gets the mean or sum; *defined is 0 (and *loss 0, dlogits all 0)
 * when reduction is mean and every row is ignored. dlogits is d(loss)/d(logits). */
td_status td_ce_index(double *loss, int *defined, float *per_sample, float *dlogits,
                      const float *logits, const int32_t *target, int64_t N, int64_t K,
                      const td_ce_opts *o, td_error *err);

/* ---- cross entropy on logits, probability targets ---------------------------------- */

/* target Y (N, K) rows of soft labels (non-negative; rows need not be normalised).
 * loss_n = sum_k w_k * Y_nk * -log p_nk, with smoothing Y' = (1-eps) Y + eps/K.
 * Mean divides by N, even with class weights (PyTorch). ignore_index does not apply. */
void td_ce_probs_sum(double *sum, float *per_sample, float *dlogits, const float *logits,
                     const float *target, int64_t N, int64_t K, const td_ce_opts *o,
                     float grad_scale);
td_status td_ce_probs(double *loss, float *per_sample, float *dlogits, const float *logits,
                      const float *target, int64_t N, int64_t K, const td_ce_opts *o,
                      td_error *err);

/* ---- Keras categorical cross entropy on probabilities ------------------------------ */

/* probs (N, K) non-negative (rows need not sum to 1), target (N, K).
 * p = probs / rowsum; p = clip(p, eps, 1-eps); loss_n = -sum_k y_nk log p_nk; *loss = mean.
 * dprobs (N, K): d(mean loss)/d(probs); no gradient flows through a clipped entry's clip,
 * but the normalisation still couples it to its row.
 * TD_EINVAL (field "probabilities[n]") for a row with a negative or non-finite entry or a
 * zero sum; (field "epsilon") for eps outside (0, 0.5). */
td_status td_categorical_ce(double *loss, float *per_sample, float *dprobs, const float *probs,
                            const float *target, int64_t N, int64_t K, double eps, td_error *err);

/* ---- grouped cross entropy with the monotone expected-index penalty ---------------- */

typedef struct td_grouped_result {
    double ce_sum;      /* sum over non-ignored (n, g) of -log p_{n,g,y_ng} */
    double ce_count;    /* number of non-ignored (n, g) entries */
    double penalty_sum; /* sum_n sum_{g<G-1} max(0, E_g - E_{g+1} + margin)^2 */
    int64_t violations; /* rows whose per-group argmax sequence decreases somewhere */
} td_grouped_result;

/* logits (N, G*S): group g of row n is logits[n*G*S + g*S .. + S). target (N, G).
 * Entries must be in [0, S) or == ignore_index (td_grouped_check).
 * expected (N, G): E_ng = sum_k k p_ngk (may be NULL).
 * dlogits (N, G*S): ce_scale * d(ce_sum) + pen_scale * d(penalty_sum) w.r.t. logits;
 * the trainers pass ce_scale = 1/ce_count and pen_scale = weight/N of the whole batch. */
td_status td_grouped_check(const int32_t *target, int64_t N, int64_t G, int64_t S,
                           int32_t ignore_index, td_error *err);
void td_grouped_sum(td_grouped_result *r, float *expected, float *dlogits, const float *logits,
                    const int32_t *target, int64_t N, int64_t G, int64_t S, int32_t ignore_index,
                    double margin, float ce_scale, float pen_scale);

/* Reduced: ce = ce_sum/ce_count (defined=0 and ce=0 when count is 0, the penalty still
 * applies), penalty = penalty_sum/N, loss = ce + weight * penalty;
 * dlogits = d(loss)/d(logits). td_grouped_check names entries "target[n][g]". */
typedef struct td_grouped_loss {
    double loss, cross_entropy, penalty, violation_rate;
    int defined;
} td_grouped_loss;
td_status td_grouped(td_grouped_loss *out, float *expected, float *dlogits, const float *logits,
                     const int32_t *target, int64_t N, int64_t G, int64_t S, int32_t ignore_index,
                     double weight, double margin, td_error *err);

/* ---- contrastive pair loss (Hadsell et al. 2006) ----------------------------------- */

/* a, b (P, E); similar (P) in {0, 1}. d2 = ||a-b||^2,
 * loss_p = s * d2/2 + (1-s) * max(0, margin - d)^2/2; *sum = sum_p loss_p.
 * da, db (P, E): grad_scale * d(sum)/d(a), d(sum)/d(b); finite at d = 0. */
void td_contrastive_sum(double *sum, float *per_pair, float *da, float *db, const float *a,
                        const float *b, const int32_t *similar, int64_t P, int64_t E, double margin,
                        float grad_scale);
/* Mean over pairs (a dissimilar pair at d = 0 gets a zero gradient);
 * TD_EINVAL (field "similar[p]") when a label is not 0 or 1. */
td_status td_contrastive(double *loss, float *per_pair, float *da, float *db, const float *a,
                         const float *b, const int32_t *similar, int64_t P, int64_t E,
                         double margin, td_error *err);

#endif
