/* model_c.h — a trained model as one self-contained C99 header, to compile a model into
 * a program or firmware (GET /v1/jobs/{id}/model?format=c).
 *
 * The header needs nothing but <math.h> (link with -lm), compiles clean with
 * -std=c99 -Wall -Wextra -pedantic, and defines:
 *   TRAIND_N_FEATURES   D, the length of x
 *   TRAIND_N_OUTPUTS    what out receives: K probabilities (softmax, mlp; G groups of
 *                       K / G back to back when grouped), M responsibilities (gmm,
 *                       embed_gmm)
 *   TRAIND_N_GROUPS     G (1 unless grouped)
 *   static int traind_predict(const float *x, float *out)
 *                       fills out and returns the label: the most probable class (of the
 *                       first group when grouped) or the most responsible component.
 *                       A standardized model first computes (x - traind_mean) /
 *                       traind_scale in float32, then calls traind_predict_raw_.
 * The weights are static const arrays, printed so that they read back bit for bit; the
 * arithmetic is in double (so it agrees with /predict to float32 rounding). For a gmm
 * the exporter computes, in double, each component's inverse Cholesky factor (diagonal
 * for diag and spherical) and log normaliser (td_gmm_component_factor), so the header
 * has no factorisation to do. */
#ifndef TRAIND_CODEC_MODEL_C_H
#define TRAIND_CODEC_MODEL_C_H

#include <stddef.h>

#include "traind/status.h"
#include "traind/train.h"

/* The header text for m; *out malloc'd (NUL-terminated, *len bytes). A covariance that
 * is not positive definite is TD_EINVAL (field "model"). */
td_status td_model_c_header(char **out, size_t *len, const td_model *m, td_error *err);
/* The same, with the class names (n_names of them, equal to the outputs of a softmax or
 * mlp of one label per row; otherwise none) as traind_classes[]. */
td_status td_model_c_header_named(char **out, size_t *len, const td_model *m, char *const *names,
                                  int64_t n_names, td_error *err);

/* For component k of the gmm model g (kind gmm, or td_embed_gmm_view's): Li (E, E)
 * OVERWRITTEN with the inverse of the lower Cholesky factor L of its covariance (so that
 * |Li (x - mu_k)|^2 is the Mahalanobis term; diagonal for diag and spherical), zeros above
 * the diagonal, and *log_norm = log w_k - (E log 2 pi + log det Sigma_k) / 2. Double
 * precision. Returns 0, -1 when the covariance is not positive definite, -2 when out of
 * memory. Shared by the C and ONNX exporters. */
int td_gmm_component_factor(double *Li, double *log_norm, const td_model *g, int64_t k);

#endif
