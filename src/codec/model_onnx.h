/* model_onnx.h — a trained model as an ONNX model (GET /v1/jobs/{id}/model?format=onnx).
 *
 * Encoded with protobuf-c from the ONNX schema (third_party/onnx/onnx.proto, compiled at
 * build time by protoc-c); IR version 8, opset 13 of the default domain, graph "traind".
 * One input "X" float32 [N, D] (N symbolic); the outputs carry /predict's keys:
 *   softmax, mlp  "probabilities" float32 [N, K] (grouped: [N, G, S], a softmax per
 *                 group), "labels" int64 [N] (grouped [N, G])
 *   gmm           "responsibilities" float32 [N, M], "labels" int64 [N],
 *                 "log_likelihood" float32 [N]
 *   embed_gmm     "embedding" float32 [N, E] first, then the gmm's three.
 * The weights are initializers; no standardisation exists in traind's models, so none is
 * added. A gmm is evaluated as x -> (x - mu_m) L_m^-T per component m (L_m the Cholesky
 * factor of the covariance, computed in double here; diag and spherical give a diagonal
 * L_m), squared norms, plus each component's log normaliser and log weight: the log
 * joint, whose softmax, argmax and logsumexp are the three outputs.
 * Labels are int64 (ArgMax's type), /predict's int32 values. */
#ifndef TRAIND_CODEC_MODEL_ONNX_H
#define TRAIND_CODEC_MODEL_ONNX_H

#include <stddef.h>

#include "traind/status.h"
#include "traind/train.h"

/* The serialized ModelProto of m; *out malloc'd (*len bytes). A covariance that is not
 * positive definite is TD_EINVAL (field "model"). */
td_status td_model_onnx(char **out, size_t *len, const td_model *m, td_error *err);
/* The same, with classes (may be NULL: none), the JSON array text of the class names,
 * as the model's metadata_props entry "classes". */
td_status td_model_onnx_meta(char **out, size_t *len, const td_model *m, const char *classes,
                             td_error *err);

#endif
