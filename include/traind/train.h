/* train.h — the training engine's entry points: trainers, models, predictions.
 *
 * A td_trainer owns everything a run needs (parameters, optimizer moments, RNG state,
 * epoch counter, early-stopping state) and advances one epoch per td_trainer_step. The
 * caller's loop is the per-epoch hook: it publishes the record, checks for cancellation,
 * and saves td_trainer_save() snapshots as checkpoints. Restoring a snapshot into a fresh
 * trainer built from the same dataset and hyperparameters continues bit-identically.
 * Results do not depend on the number of threads (td_trainer_set_threads): work is split
 * into fixed chunks whose partial sums are reduced in a fixed order.
 *
 * The engine knows nothing of HTTP, JSON or storage. */
#ifndef TRAIND_TRAIN_H
#define TRAIND_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "traind/dataset.h"
#include "traind/hparams.h"
#include "traind/status.h"

/* ---- models: shape description + one flat parameter block ------------------------- */

typedef struct td_model {
    td_model_kind kind;
    int64_t D, K, G; /* inputs, outputs, groups (K = G * S); gmm: D = E
                                    features, K = M components, G = 1 */
    td_intercept intercept;
    int64_t n_hidden, hidden[TD_MAX_HIDDEN];
    td_activation activation;
    /* gmm only: covariance kind and the fit's state (lower_bound NaN before the first
     * iteration) */
    td_covariance covariance;
    double lower_bound;
    int converged;
    int64_t n_iter;
    /* embed_gmm only: D inputs, K = E embedding outputs of the network (hidden layers as
     * mlp), `components` M mixture components in embedding space, `rows` training rows
     * (one assignment each); covariance, lower_bound, converged and n_iter as gmm */
    int64_t components, rows;
    int64_t n_params;
    float *params; /* (n_params) owned; layout per td_model_layout */
    /* standardize: every input row is x' = (x - mean) / scale (float32, per feature) before
     * the model; both NULL when the model takes raw features. mean is one block of 2 * D
     * floats and scale = mean + D; owned like params (td_model_fini frees it), borrowed in
     * a trainer's model. */
    float *mean, *scale;
} td_model;

/* One named tensor inside the flat parameter block: params[offset .. offset+rows*cols). */
typedef struct td_tensor_desc {
    char name[16];      /* "W" or "b"; gmm "weights", "means", "covariances" */
    int layer;          /* index in "layers" (mlp), 0 for softmax */
    int64_t rows, cols; /* a vector has rows == 1 */
    int64_t offset;
    int penalized;     /* 1 when l1/l2 apply (every W; b only with regularize_bias) */
    int64_t skip_rows; /* leading rows left out of the penalty: 1 for W with
                                    intercept "column0" (row 0 is the bias) */
} td_tensor_desc;

#define TD_MAX_TENSORS (2 * (TD_MAX_HIDDEN + 1) + 4)

/* Fills the model's shape fields (not params) from hyperparameters and data sizes. */
void td_model_shape(td_model *m, const td_hparams *hp, int64_t D, int64_t K);
/* The tensors of m's parameter block in order; returns their count. Softmax: W (D, K),
 * then b (1, K) when intercept is "fit". mlp: W0, b0, W1, b1, ... gmm: weights (1, M),
 * means (M, E), covariances (M, E*E) full | (M, E) diag | (1, M) spherical. embed_gmm:
 * the network's W0, b0, ..., W_L (H, E), b_L (the output layer is linear), then the gmm's
 * weights, means, covariances, then assignments (1, rows): each training row's component
 * as a float (exact: M <= 10000), -1 before the GMM exists. */
int td_model_layout(const td_model *m, td_tensor_desc out[TD_MAX_TENSORS]);
/* Total parameter count of the layout. */
int64_t td_model_nparams(const td_model *m);
void td_model_fini(td_model *m);

/* Predictions for X (N, D): probs (N, K) overwritten (per group softmax when G > 1),
 * labels (N, G) overwritten (argmax within each group). */
td_status td_model_predict(float *probs, int32_t *labels, const td_model *m, const float *X,
                           int64_t N, int64_t D, td_error *err);

/* gmm predictions for X (N, D = E): labels (N) = the most responsible component,
 * resp (N, M) responsibilities (rows sum to 1), loglik (N) = log p(x_i) under the mixture
 * (scikit-learn's score_samples); every output overwritten, each may be NULL. Fails when a
 * covariance is not positive definite. td_model_predict on a gmm model fills probs with
 * resp and labels with labels. */
td_status td_gmm_predict(int32_t *labels, float *resp, float *loglik, const td_model *m,
                         const float *X, int64_t N, int64_t D, td_error *err);

/* The mixture of an embed_gmm model m as a gmm model (D = E, K = M; params borrowed from
 * m's block, nothing allocated), for its JSON and predictions. */
void td_embed_gmm_view(td_model *gmm, const td_model *m);

/* embed_gmm predictions for X (N, D): emb (N, E) = f(X; W), then as td_gmm_predict on the
 * embeddings: labels (N), resp (N, M), loglik (N); every output overwritten, each may be
 * NULL. td_model_predict on an embed_gmm model fills probs with resp. */
td_status td_embed_predict(float *emb, int32_t *labels, float *resp, float *loglik,
                           const td_model *m, const float *X, int64_t N, int64_t D, td_error *err);

/* ---- standardisation (standardize.c) ------------------------------------------------ */

/* Per-feature mean and scale of X (N, D): mean (D) and the population standard deviation
 * (ddof 0, as scikit-learn's StandardScaler), both summed in double in row order; a
 * feature whose std is 0 (or not finite) gets scale 1, so it is only centred. */
td_status td_standardize_fit(float *mean, float *scale, const float *X, int64_t N, int64_t D,
                             td_error *err);
/* out (N, D) = (X - mean) / scale per feature, in float32 (as the ONNX Sub and Div nodes
 * and the C header compute it); out may be X. */
void td_standardize_apply(float *out, const float *X, int64_t N, int64_t D, const float *mean,
                          const float *scale);
/* For the predict functions: when m standardizes, *plain = m without mean and scale and
 * *Xs = the standardized copy of X (N, m->D), malloc'd (the caller frees it); otherwise
 * *Xs = NULL. TD_ENOMEM when the copy cannot be made. */
td_status td_standardize_input(const td_model *m, td_model *plain, float **Xs, const float *X,
                               int64_t N, td_error *err);

/* ---- warnings: a run that finished, but not as it should have ------------------------ */

#define TD_MAX_WARNINGS 8
typedef struct td_warning {
    char code[32]; /* e.g. "loss_increased", "not_converged" */
    char message[256];
} td_warning;

/* How a run's loss went: its first, largest and last finite values (NaN before any). */
typedef struct td_loss_trace {
    double first, max, last;
} td_loss_trace;
void td_loss_trace_init(td_loss_trace *lt);
void td_loss_trace_add(td_loss_trace *lt, double loss);

/* The warnings of a finished run of hp on train, appended to out[*n .. TD_MAX_WARNINGS):
 *   loss_increased     the loss ended above its first value, or rose to 10x it;
 *   loss_above_chance  softmax / mlp (one group, no monotone penalty): the loss ended above
 *                      log K, what the uniform prediction (a zero output layer) scores;
 *   not_converged      gmm: max_iter iterations ran without converging (tol > 0), as
 *                      scikit-learn's ConvergenceWarning;
 *   components_exceed_distinct_rows   gmm / embed_gmm: more components than distinct rows;
 *   single_class       a classifier trained on one class only;
 *   features_unscaled  without standardize, the largest feature std (population) is over
 *                      TD_SCALE_RATIO_WARN times the smallest non-zero one (constant
 *                      features are left out).
 * m is the trained model (may be NULL when the run failed: only the data warnings). */
#define TD_SCALE_RATIO_WARN 1e3
void td_train_warnings(td_warning out[TD_MAX_WARNINGS], int *n, const td_hparams *hp,
                       const td_dataset *train, const td_model *m, const td_loss_trace *lt);
/* ---- model files: save and load, like liblinear's save_model / load_model ----------- */

/* Writes m (shape, fit state and parameters) to path as one binary file: magic
 * "TDMODEL1", little-endian fields, the float32 parameters, an XXH64 checksum (the format
 * is in src/train/model_file.c). Written to "<path>.tmp", then renamed over path. */
td_status td_model_save(const td_model *m, const char *path, td_error *err);
/* Reads a file td_model_save wrote into *m (params allocated: free with td_model_fini).
 * A damaged, truncated or foreign file fails with TD_EINVAL (field "model") and *m empty;
 * a missing one with TD_ENOTFOUND. */
td_status td_model_load(td_model *m, const char *path, td_error *err);
/* The same in memory: td_model_encode writes td_model_file_size(m) bytes into buf (0 when
 * cap is smaller); td_model_decode reads them (params allocated, as td_model_load). */
size_t td_model_file_size(const td_model *m);
size_t td_model_encode(const td_model *m, void *buf, size_t cap);
td_status td_model_decode(td_model *m, const void *buf, size_t len, td_error *err);

/* ---- evaluation ---------------------------------------------------------------------- */

/* scikit-learn's classification numbers of predictions pred (N) with probabilities probs
 * (N, K) against true labels y (N, each in [0, K)), over every class 0..K-1 (its
 * labels=range(K)), a 0/0 counting 0 (zero_division=0): accuracy, confusion (K, K; rows
 * true, columns predicted), per class precision, recall, f1 and support, their macro
 * and support-weighted averages ([precision, recall, f1]), and loss = the mean of
 * -log p(y_i) (a float32 0 counts as FLT_MIN). Free with td_class_metrics_fini. */
typedef struct td_class_metrics {
    int64_t K, N;
    double loss, accuracy;
    int64_t *confusion;              /* (K, K) */
    double *precision, *recall, *f1; /* (K) each; one allocation (precision) */
    int64_t *support;                /* (K) */
    double macro[3], weighted[3];
} td_class_metrics;

td_status td_class_metrics_compute(td_class_metrics *c, const float *probs, const int32_t *pred,
                                   const int32_t *y, int64_t N, int64_t K, td_error *err);
void td_class_metrics_fini(td_class_metrics *c);

/* A gmm's free parameters as scikit-learn counts them for bic and aic: covariances
 * (full M E(E+1)/2, diag M E, spherical M, tied E(E+1)/2) + means M E + weights M - 1. */
int64_t td_gmm_n_parameters(const td_model *m);

/* ---- per-epoch records: named columns, NaN = not applicable (JSON null) ------------ */

#define TD_REC_MAX 40
typedef struct td_record {
    double v[TD_REC_MAX];
} td_record;


/* ---- trainers --------------------------------------------------------------------- */

typedef struct td_trainer td_trainer;

/* The column names of this trainer's records, e.g. epoch, elapsed_s, loss, data_loss,
 * reg_loss, val_loss, val_accuracy, grad_norm, accuracy[, penalty, violation_rate];
 * *n gets the count. NULL-terminated, static. */
const char *const *td_trainer_columns(const td_trainer *t, int *n);

/* The index in td_record.v of the column called name; -1 when this trainer has none. */
int td_trainer_column(const td_trainer *t, const char *name);

/* Validates hp against train (td_hparams_check) and builds a trainer at epoch 0 with its
 * initial weights. val (may be NULL) is a separate validation set; otherwise
 * hp->validation_split holds rows out. The datasets are borrowed for the trainer's life. */
td_status td_trainer_create(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                            const td_dataset *val, td_error *err);
void td_trainer_destroy(td_trainer *t);

/* The rows validation_split holds out of N: the last td_split_count of td_split_order
 * (a malloc'd permutation of 0..N-1 drawn from seed; NULL when out of memory). The
 * trainer of softmax and mlp uses exactly these, so they can be given back to users. */
int64_t td_split_count(double validation_split, int64_t N);
int64_t *td_split_order(int64_t N, int64_t seed);

/* Every check td_trainer_create makes (hyperparameters against the data, the validation
 * set, initial_weights), with the same errors, and nothing allocated: for validating a job
 * where building it would cost its memory. *K gets the model's outputs. */
td_status td_trainer_check(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                           int64_t *K, td_error *err);

/* Bytes of working memory a trainer of hp on train (and val, may be NULL) uses at its
 * peak with `threads` threads, computed from the shapes alone (nothing allocated; only
 * N, D, P and which arrays are present are read): parameters, gradients and the copy kept
 * against divergence, optimizer state, per-chunk partial gradients and scratch, the
 * mixtures' responsibilities and k-means buffers, the targets and row orders the trainer
 * copies, and one td_trainer_save snapshot. The datasets themselves are not counted. hp
 * must have passed td_trainer_check, which gives K. An upper estimate: within about 2x of
 * what is allocated (tests/test_memory.c measures it per family). */
size_t td_train_memory_estimate(const td_hparams *hp, const td_dataset *train,
                                const td_dataset *val, int64_t K, int threads);

/* Threads this trainer may use (>= 1); does not change any result. */
void td_trainer_set_threads(td_trainer *t, int n);

/* Runs one epoch and fills rec. Returns TD_OK, or TD_EDIVERGED (weights left at the last
 * finite values; err names the epoch). */
td_status td_trainer_step(td_trainer *t, td_record *rec, td_error *err);
/* Called after each epoch by td_trainer_run with that epoch's record; nonzero stops. */
typedef int (*td_epoch_fn)(const td_trainer *t, const td_record *rec, void *ctx);
/* The whole loop for an embedder: td_trainer_step until td_trainer_done. on_epoch (may be
 * NULL) sees every record; when it returns nonzero the run stops with TD_ESTOPPED (the
 * model is that epoch's). last (may be NULL) gets the last record. TD_EDIVERGED as
 * td_trainer_step. */
td_status td_trainer_run(td_trainer *t, td_epoch_fn on_epoch, void *ctx, td_record *last,
                         td_error *err);
/* 1 once all epochs ran or early stopping fired. */
int td_trainer_done(const td_trainer *t);
int64_t td_trainer_epoch(const td_trainer *t);  /* epochs completed */
int64_t td_trainer_epochs(const td_trainer *t); /* epochs planned */
int64_t td_trainer_rows(const td_trainer *t);   /* training rows per epoch */

/* The current model (params borrowed from the trainer; valid until the next step). */
const td_model *td_trainer_model(const td_trainer *t);

/* Snapshot of the full training state. td_trainer_save writes at most
 * td_trainer_state_size bytes into buf and returns the count written. td_trainer_restore
 * requires a trainer created from the same data and hyperparameters. */
size_t td_trainer_state_size(const td_trainer *t);
size_t td_trainer_save(const td_trainer *t, void *buf, size_t cap);
td_status td_trainer_restore(td_trainer *t, const void *buf, size_t len, td_error *err);

/* Full-batch objective at the current parameters, for tests and diagnostics: *loss gets
 * data_loss + reg_loss over the training rows and grad (n_params) is OVERWRITTEN with
 * its gradient (the data part as the trainers compute it, plus the l1/l2 part). */
td_status td_trainer_objective(td_trainer *t, double *loss, float *grad);

/* Seconds of training so far (restored with the state, so a resumed run continues). */
double td_trainer_elapsed(const td_trainer *t);

#endif
