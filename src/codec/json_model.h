/* json_model.h — models and predictions at the JSON edge (SPEC §6).
 *
 * Model object (GET /v1/jobs/{id}/model), W as (in, out) rows:
 *   softmax {"model":"softmax","W":[[...]],"b":[...]|null,"intercept":"fit"[,"groups":G]}
 *   mlp     {"model":"mlp","layers":[{"W","b","activation"},...][,"groups":G]}
 *           (hidden layers carry their activation, the output layer "softmax").
 *   gmm     {"model":"gmm","covariance":"full","weights":(M),"means":(M, E),
 *            "covariances":(M, E, E) full | (M, E) diag | (M) spherical,
 *            "lower_bound":x|null,"converged":bool,"n_iter":n}
 * Every model of a job with standardize adds "standardize":{"mean":(D),"scale":(D)}.
 * Model meta (what the store keeps next to the flat float block; small JSON):
 *   {"kind":"softmax","D":4,"K":3,"G":1,"intercept":"fit","hidden":[...],
 *    "activation":"relu","n_params":15}; gmm (D = E, K = M) adds "covariance",
 *   "lower_bound", "converged", "n_iter"; a standardizing model "mean" and "scale" (D
 *   float32 each, printed shortest so they read back exactly).
 * Predictions: {"probabilities": (N, K) or (N, G, S) when G > 1, "labels": (N) or (N, G)};
 * gmm {"labels": (N), "responsibilities": (N, M), "log_likelihood": (N)}.
 * Predict request: {"X": [[...]]} streamed into a float32 array (td_jarray, with the
 * errors of the tree readers: finite float32, rows of one length), D checked against the
 * model. */
#ifndef TRAIND_CODEC_JSON_MODEL_H
#define TRAIND_CODEC_JSON_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "codec/json_out.h"
#include "codec/stream_dataset.h"
#include "traind/status.h"
#include "traind/train.h"

/* The model object; *out malloc'd (NUL-terminated, *len bytes; len may be NULL). */
td_status td_json_model(char **out, size_t *len, const td_model *m, td_error *err);

/* The meta JSON of m's shape (no parameters); *out malloc'd. */
td_status td_json_model_meta(char **out, const td_model *m, td_error *err);
/* Rebuilds a model from its meta JSON and its flat parameters (copied; n_params must match
 * the layout). *m owns its params (td_model_fini). */
td_status td_json_model_from_meta(td_model *m, const char *meta, size_t meta_len,
                                  const float *params, int64_t n_params, td_error *err);

/* Reads {"X": [[...]]}: *X (N, D) malloc'd; D must equal m->D (field "X", or "X[0]"). */
td_status td_json_predict_parse(float **X, int64_t *N, const char *body, size_t len,
                                const td_model *m, td_error *err);
/* The predictions object from probs (N, K) and labels (N, G) of td_model_predict. */
td_status td_json_predictions(char **out, size_t *len, const td_model *m, const float *probs,
                              const int32_t *labels, int64_t N, td_error *err);
/* The predict request read as it streams (td_dstream_object: X straight into its
 * float32 array); feed it with td_dstream_feed. NULL when out of memory. */
td_dstream *td_json_predict_stream(uint64_t size_hint);
/* The streamed {"X": [[...]]} once the body is in: *X (N, D) malloc'd; D must be m->D. */
td_status td_json_predict_read(float **X, int64_t *N, td_dstream *s, const td_model *m,
                               td_error *err);
/* Predicts from the streamed request: *out gets the answer as a writer (json_out.h,
 * numbers formatted as they are sent; the caller frees it), NULL on error. */
td_status td_json_predict_finish(td_jout **out, const td_model *m, td_dstream *s, td_error *err);
/* Class names borrowed for an answer: v[0..n). */
typedef struct td_names_view {
    char *const *v;
    int64_t n;
} td_names_view;

/* The streamed predict body {"X": [[...]]} or {"dataset": "ds_..."}: either *X (N, D)
 * malloc'd as td_json_predict_read, or dataset (cap bytes) gets the id (*X NULL). */
td_status td_json_predict_input(float **X, int64_t *N, char *dataset, size_t cap, td_dstream *s,
                                const td_model *m, td_error *err);
/* Predicts the rows X (N, m->D; handed over) into the answer writer *out. With class
 * names nv (may be NULL; used when the model has exactly nv->n classes and one label per
 * row) the labels are the names, and "classes" lists them in the probabilities' order. */
td_status td_json_predict_out(td_jout **out, const td_model *m, float *X, int64_t N,
                              const td_names_view *nv, td_error *err);
/* The whole predict request: parse, td_model_predict (gmm: td_gmm_predict), write. */
td_status td_json_predict(char **out, size_t *len, const td_model *m, const char *body,
                          size_t body_len, td_error *err);

#endif
