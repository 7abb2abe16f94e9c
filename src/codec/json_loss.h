/* json_loss.h — POST /v1/loss: evaluate a loss of SPEC §2 on given inputs with the engine's
 * own loss code (include/traind/loss.h), as plain function of body -> JSON.
 *
 * Requests ({"loss": name, ...}) and results:
 *   cross_entropy            logits (N, K); target class indices (N) or probabilities
 *                            (N, K); ignore_index (-100), class_weights (K) | null,
 *                            label_smoothing (0), reduction "mean" | "sum"
 *                            -> {"loss" (null when undefined: every row ignored),
 *                                "per_sample" (N), "grad" (N, K)}
 *   categorical_crossentropy probabilities (N, K), target (N, K), epsilon (1e-7)
 *                            -> {"loss", "per_sample", "grad"} (grad w.r.t. probabilities)
 *   grouped_cross_entropy    logits (N, G*S), target (N, G), groups (default: target's
 *                            columns), ignore_index (-100), monotone {weight (0), margin (0)}
 *                            -> {"loss", "cross_entropy" (null when every entry is ignored;
 *                                then "loss" is null too), "penalty", "expected_index" (N, G),
 *                                "violation_rate", "grad" (N, G*S)}
 *   contrastive              a (P, E), b (P, E), similar (P) of 0/1 (or true/false),
 *                            margin (1.0) -> {"loss", "per_sample", "grad_a", "grad_b"}
 * Unknown loss names and keys are 422 errors with a suggestion; element errors name the
 * element ("logits[2][1]", "target[3]"); malformed JSON is json_util's 400 error. */
#ifndef TRAIND_CODEC_JSON_LOSS_H
#define TRAIND_CODEC_JSON_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "codec/json_out.h"
#include "codec/stream_dataset.h"
#include "traind/status.h"

/* The request read as it streams (stream_dataset.h, td_dstream_object): the arrays go
 * straight into float32 / int32 arrays, the other members through cJSON. Feed it with
 * td_dstream_feed; NULL when out of memory. */
td_dstream *td_json_loss_stream(uint64_t size_hint);
/* Evaluates the streamed request: *out gets the answer as a writer (json_out.h; the
 * caller frees it), NULL on error. The errors are td_json_loss_eval's. */
td_status td_json_loss_finish(td_dstream *s, td_jout **out, td_error *err);

/* The same on a whole body: *out_json (malloc'd, NUL-terminated) gets the result object
 * on success, NULL on error. */
td_status td_json_loss_eval(const char *body, size_t len, char **out_json, td_error *err);

#endif
