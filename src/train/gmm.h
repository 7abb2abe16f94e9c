/* gmm.h — Gaussian-mixture EM with scikit-learn GaussianMixture semantics (SPEC §2, §5).
 *
 * Parameters are double (td_gmm); data are float32 rows X (N, E). Shapes:
 *   weights (M), means (M, E), covariances (M, E, E) full | (M, E) diag | (M) spherical |
 *   (E, E) tied (one matrix shared by every component, scikit-learn's "tied").
 * Responsibilities are kept transposed, respT (M, N), so that each component's column is
 * contiguous for the M-step's BLAS calls.
 *
 * One EM iteration, as scikit-learn's fit loop does it:
 *   td_gmm_prepare  Cholesky of every covariance -> precision factors P_k (Sigma_k^-1 =
 *                   P_k P_k^T) and log det P_k; fails on a covariance that is not
 *                   positive definite;
 *   td_gmm_estep    log N(x | mu_k, Sigma_k) = -E/2 log 2pi + log det P_k
 *                   - ||(x - mu_k) P_k||^2 / 2, log-sum-exp over k with log pi_k, giving
 *                   respT and each row's log-likelihood; their mean is the lower bound;
 *   td_gmm_mstep    N_k = sum_i r_ik + 10 eps, mu_k = sum_i r_ik x_i / N_k,
 *                   Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k + reg_covar I
 *                   (diag: the diagonal; spherical: its mean; tied: the scatters summed
 *                   over k, divided by sum_k N_k), pi_k = N_k / sum N.
 * Precision (full and tied): a component with N_k <= E, or collinear features, has a
 * scatter of rank < E whose null directions only reg_covar fills; float32 rounding there
 * is as large as reg_covar itself (1e-6) and made such fits diverge or drift from
 * scikit-learn. So for full and tied the scatter is always accumulated in double (dsyrk
 * on double rows) and the Cholesky factor and its inverse stay double. When some
 * covariance is ill-conditioned (a lower bound of its condition number above 1e3),
 * td_gmm_prepare puts the E-step in double too: the rows centred in double times the
 * double factors (dgemm), the squared distances and log densities in double, rounded to
 * float only for the log-sum-exp and the responsibilities. Otherwise (well-conditioned,
 * as most fits are) the E-step multiplies by float copies of the factors (sgemm), as
 * exact there and about twice as fast. The full E-step is one product per block of rows
 * against all M factors stacked (M*E, E) (tied: one (E, E) factor, then a distance per
 * component); the M-step is an sgemv and a dsyrk per component and block of rows (rows
 * whose responsibility is exactly 0 are left out of the block), accumulated in double.
 * diag and spherical need no matrix product: their E-step is an elementwise pass in
 * float.
 * Rows are shifted by a fixed centre (the data mean in training) before any product, so
 * data far from the origin loses no float32 precision.
 *
 * Degenerate data: a component whose N_k falls below TD_GMM_EMPTY is reported by
 * td_gmm_mstep and re-seeded by the caller (td_gmm_reseed: at the row with the lowest
 * likelihood, covariance of the whole data set + reg_covar, weight 1/N); a covariance that
 * is not positive definite (possible only with reg_covar 0) is an error naming the
 * component and reg_covar. Nothing here produces NaN from finite data.
 *
 * Threads: every parallel pass is split into tasks whose row ranges depend only on N, M
 * and E, never on the thread count; each task writes its own slot and slots are reduced in
 * task order, so results are bit-identical for any td_pool. OpenBLAS runs single-threaded
 * (td_blas_init). */
#ifndef TRAIND_GMM_H
#define TRAIND_GMM_H

#include <stddef.h>
#include <stdint.h>

#include "math/pool.h"
#include "math/rng.h"
#include "traind/train.h"

/* Total responsibility below which a component counts as empty (re-seeded). */
#define TD_GMM_EMPTY 1e-8

typedef struct td_gmm {
    int64_t M, E;
    td_covariance cov;
    double *weights; /* (M); owns the one allocation (td_gmm_alloc) the others point into */
    double *means;   /* (M, E), after weights */
    double *covs;    /* (td_gmm_covs_size), after means */
} td_gmm;

/* Values of one covariance: E*E full and tied, E diag, 1 spherical. */
int64_t td_gmm_cov_size(td_covariance cov, int64_t E);
/* Values of all M covariances: M * td_gmm_cov_size, or E*E for tied (one shared). */
int64_t td_gmm_covs_size(td_covariance cov, int64_t M, int64_t E);
/* 1 when every weight, mean and covariance value of g is finite as a float32 too (models
 * store float). */
int td_gmm_finite(const td_gmm *g);
/* Placeholder parameters (before an initialisation): uniform weights, zero means, unit
 * covariances. */
void td_gmm_placeholder(td_gmm *g);
td_status td_gmm_alloc(td_gmm *g, int64_t M, int64_t E, td_covariance cov);
void td_gmm_free(td_gmm *g);
/* dst = src (same M, E, cov). */
void td_gmm_copy(td_gmm *dst, const td_gmm *src);
/* Snapshots: g's parameters in double (weights, means, covariances) take td_gmm_bytes;
 * td_gmm_put writes them at p, td_gmm_get reads them from p into g (same M, E, cov). */
size_t td_gmm_bytes(const td_gmm *g);
void td_gmm_put(char *p, const td_gmm *g);
void td_gmm_get(td_gmm *g, const char *p);
/* Between g and a model's flat float block in td_model_layout order. */
void td_gmm_to_params(float *params, const td_gmm *g);
void td_gmm_from_params(td_gmm *g, const float *params);

/* td_model_layout for a gmm model (see train.h). */
int td_gmm_layout(const td_model *m, td_tensor_desc *out);

/* td_hparams_check's gmm part, after the table bounds: components <= N, model size, and
 * the shapes and values of weights_init (M; >= 0, sums to 1), means_init (M, E) and
 * covariances_init ((M, E, E) symmetric positive definite | (M, E) > 0 | (M) > 0). No
 * labels are needed. *K gets M. */
td_status td_gmm_check(const td_hparams *hp, const td_dataset *ds, int64_t *K, td_error *err);

/* ---- the EM workspace over one data set --------------------------------------------- */

typedef struct td_gmm_work td_gmm_work;

/* A workspace for X (N, E), borrowed for its life, and M components. centre (E) is
 * subtracted from every row before products; NULL = the data mean. NULL when out of
 * memory. */
td_gmm_work *td_gmm_work_create(const float *X, int64_t N, int64_t E, int64_t M, td_covariance cov,
                                const double *centre);
void td_gmm_work_destroy(td_gmm_work *w);
/* Bytes td_gmm_work_create and the passes on it (k-means++ initialisation, the gradient
 * scratch of td_gmm_nll_grad) allocate at most, without allocating; the responsibilities
 * (M, N) dominate. */
size_t td_gmm_work_bytes(int64_t N, int64_t E, int64_t M, td_covariance cov);
/* respT (M, N) of the last E-step. */
const float *td_gmm_work_resp(const td_gmm_work *w);
/* Moves the fixed centre (E) subtracted before products (embed_gmm: the rows' contents
 * change every iteration). Results change only by float rounding; the prepared parameters
 * and the cached data covariance are dropped, so td_gmm_prepare must run again. */
void td_gmm_work_set_centre(td_gmm_work *w, const double *centre);

/* Precision factors of g for the next E-step. TD_EDIVERGED (field
 * hyperparameters.reg_covar) when a covariance is not positive definite. */
td_status td_gmm_prepare(td_gmm_work *w, const td_gmm *g, td_error *err);
/* E-step with the prepared parameters: respT and loglik overwritten; *mean_ll = mean
 * log-likelihood (double sum; -inf when some row has zero likelihood); *worst = the first
 * row with the lowest log-likelihood. TD_ENOMEM only. */
td_status td_gmm_estep(td_gmm_work *w, td_pool *pool, double *mean_ll, int64_t *worst,
                       td_error *err);
/* M-step from respT: g's weights, means and covariances overwritten. nk (M, may be NULL)
 * gets N_k. Components with N_k < TD_GMM_EMPTY are marked in empty (M) (1, else 0) and
 * keep their previous mean and covariance; *n_empty gets their count. Weights are
 * normalised over all components. */
td_status td_gmm_mstep(td_gmm_work *w, td_pool *pool, td_gmm *g, double reg_covar, double *nk,
                       unsigned char *empty, int64_t *n_empty, td_error *err);
/* The GMM negative log-likelihood's gradient w.r.t. the rows (SPEC §2, embed_gmm): an
 * E-step with the prepared parameters (respT, loglik and *mean_ll as td_gmm_estep), and
 * dX (N, E) OVERWRITTEN with scale * d(-log p(x_i))/dx_i = scale * sum_k r_ik
 * Sigma_k^-1 (x_i - mu_k); scale = gamma / N gives gamma * d(mean NLL)/dX. Batched like
 * the E-step (one sgemm per block for the full case), bit-identical for any pool. The
 * M-step after it gathers its own sums. TD_ENOMEM only. */
td_status td_gmm_nll_grad(td_gmm_work *w, td_pool *pool, float *dX, float scale, double *mean_ll,
                          td_error *err);

/* Re-seeds component k (embed_gmm, SPEC §5 step 3) by splitting the other component j
 * with the largest weight x total variance (trace) along its principal axis: means at
 * mu_j +/- one standard deviation along it, both with Sigma_j, each with half of j's weight;
 * weights renormalised. The axis: full, the top eigenvector of Sigma_j; diag, the
 * coordinate of largest variance; spherical (no preferred axis), the top eigenvector of j's
 * responsibility-weighted scatter of the workspace rows (respT of the last E-step). *split
 * (may be NULL) gets j, or -1 when M = 1 or no other component has a finite, positive
 * weight x variance (nothing to split). TD_ENOMEM only. */
td_status td_gmm_split(td_gmm_work *w, td_gmm *g, int64_t k, int64_t *split);

/* Re-seeds component k: mean = mean (E, original coordinates), covariance = covariance of
 * the whole data set + reg_covar (tied: the shared covariance is kept), weight 1/N; then
 * renormalises the weights. */
td_status td_gmm_reseed(td_gmm_work *w, td_gmm *g, int64_t k, const double *mean, double reg_covar);

/* Initial parameters (SPEC §5): weights_init / means_init / covariances_init where given;
 * TD_EDIVERGED (field dataset.X) when the k-means or the estimated mixture is not finite;
 * whatever is not given is estimated (M-step with reg_covar) from the best of kmeans_runs
 * k-means partitions (k-means++ seeding, Lloyd iterations; lowest inertia: gmm passes 1 per
 * EM run, as scikit-learn's GaussianMixture does, embed_gmm its n_init), or with init
 * "random" from random responsibilities. rng advances. */
td_status td_gmm_initialize(td_gmm *g, td_gmm_work *w, td_pool *pool, const td_hparams *hp,
                            int64_t kmeans_runs, td_rng *rng, td_error *err);

/* k-means over the workspace's rows: labels (N) and centres (M, E, original coordinates)
 * of the lowest-inertia run among n_init; *inertia its sum of squared distances.
 * TD_EDIVERGED (field dataset.X) when no run has a finite inertia (finite rows whose
 * squared distances overflow float32); labels and centres are then untouched. */
td_status td_gmm_kmeans(int32_t *labels, double *centres, double *inertia, td_gmm_work *w,
                        td_pool *pool, int64_t n_init, td_rng *rng, td_error *err);

/* For exporters (the C header, ONNX): component k's covariance Sigma (E, E) full |
 * (E) diag | (1) spherical, float32 as a model stores it, gives Li (E, E) OVERWRITTEN with
 * the inverse of its lower Cholesky factor (so ||Li (x - mu)||^2 is the Mahalanobis term;
 * diagonal for diag and spherical; zeros above the diagonal) and *logdet = log det Sigma.
 * Double precision. Returns 0, -1 when Sigma is not positive definite, -2 when out of
 * memory. */
int td_gmm_inverse_factor(double *Li, double *logdet, const float *cov, td_covariance kind,
                          int64_t E);

#endif
