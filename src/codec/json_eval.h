/* json_eval.h — POST /v1/jobs/{id}/evaluate: the body ({"dataset": id} or inline X and y)
 * and the answer (classification report or a gmm's score, bic and aic). */
#ifndef TRAIND_CODEC_JSON_EVAL_H
#define TRAIND_CODEC_JSON_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "codec/json_model.h"
#include "codec/stream_dataset.h"
#include "traind/train.h"

/* The evaluate body as it streams (X and y into their arrays). NULL when out of memory. */
td_dstream *td_json_evaluate_stream(uint64_t size_hint);

/* Once the body is in: either dataset (cap bytes) gets the id of a stored dataset, or *X
 * (N, m->D) and *y (N; NULL when not given) are malloc'd from the inline X and y. */
td_status td_json_evaluate_input(float **X, int32_t **y, int64_t *N, char *dataset, size_t cap,
                                 td_dstream *s, const td_model *m, td_error *err);

/* The evaluation of m on X (N, D) with labels y (classifiers; indices into the model's
 * classes; may be NULL for a gmm) as a JSON object, malloc'd into *out. nv (may be NULL):
 * the model's class names. Classifiers (softmax, mlp with one label per row): n_samples,
 * loss, accuracy, classes, confusion_matrix, per_class [{class, precision, recall, f1,
 * support}], macro_avg, weighted_avg. gmm: n_samples, score, bic, aic, n_parameters. */
td_status td_json_evaluate(char **out, const td_model *m, const float *X, const int32_t *y,
                           int64_t N, const td_names_view *nv, td_error *err);

#endif
