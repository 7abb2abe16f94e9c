/* json_hparams.h — the "hyperparameters" object and the job body (SPEC §6), driven by the
 * table td_hparam_defs (include/traind/hparams.h).
 *
 * Rules of the "hyperparameters" object (every error has field "hyperparameters.<name>"):
 *  - unknown name: "unknown hyperparameter \"learning_rate\"; did you mean \"lr\"?";
 *  - a known name that the model does not use: "hyperparameter \"hidden\" does not apply
 *    to the softmax model";
 *  - numbers must be numbers (not strings), ints integral, within the table's bounds;
 *    bools true/false only; enums one of the listed names; betas an array of 2 numbers;
 *    hidden an array of positive ints (at most TD_MAX_HIDDEN); class_weights an array of
 *    non-negative numbers; "monotone" an object {"weight", "margin"} (the dotted names of
 *    the table); weights_init / means_init / covariances_init (gmm) nested arrays of 1 to
 *    3 dimensions with rows of one length (their shapes are checked against the data by
 *    td_hparams_check) and echoed back nested; null means "use the default" for every
 *    name.
 *  - weight_decay not given (or null) with optimizer "adamw" is 0.01, PyTorch's AdamW
 *    default (SPEC §4); the table's 0 is the sgd/adam default.
 *  - initial_weights is kept as a detached cJSON copy: its conversion needs the model's
 *    shape (D, K), known only once the dataset is (td_json_initial_weights).
 * Values are checked against the table's bounds here too; cross-field rules and checks
 * against the dataset are td_hparams_check's. */
#ifndef TRAIND_CODEC_JSON_HPARAMS_H
#define TRAIND_CODEC_JSON_HPARAMS_H

#include <cJSON.h>
#include <stddef.h>

#include "codec/json_dataset.h"
#include "codec/stream_dataset.h"
#include "traind/hparams.h"
#include "traind/status.h"
#include "traind/train.h"

/* Fills *hp with the model's defaults (td_hparams_defaults), then the values of obj
 * (may be NULL: defaults only). *initial_weights (if the pointer is non-NULL) receives a
 * detached copy of the "initial_weights" value, or NULL; the caller deletes it. On error
 * hp holds no owned memory (td_hparams_fini is still safe) and *initial_weights is NULL. */
td_status td_json_hparams(td_hparams *hp, td_model_kind model, const cJSON *obj,
                          cJSON **initial_weights, td_error *err);

/* Converts initial weights of the model object's shape into the flat parameter order of
 * td_model_layout(shape): softmax {"W": (D, K), "b": (K) | null}; mlp
 * {"layers": [{"W", "b"}, ...]} (W of layer l is (in_l, out_l)). Keys of a model object
 * ("model", "intercept", "groups", "activation") are accepted and ignored, so a GET
 * /model answer can be passed back. Shapes are checked against shape (errors like
 * "hyperparameters.initial_weights.W has 3 rows, expected 4"); values must be finite
 * float32. *out (shape->n_params floats, td_model_nparams) is malloc'd. */
td_status td_json_initial_weights(const cJSON *w, const td_model *shape, float **out,
                                  td_error *err);

/* The resolved hyperparameters as a JSON object: every name of the table that applies to
 * hp->model, defaults included; dotted names nested ("monotone": {"weight","margin"});
 * class_weights null when not given; n_classes null when 0 (from the data; the caller may
 * set the resolved K first); initial_weights omitted when absent, else
 * {"n_params": n}. Parsing the result with td_json_hparams gives back hp (minus
 * initial_weights). NULL when out of memory. */
cJSON *td_json_hparams_object(const td_hparams *hp);

/* ---- the job body: {"model", "dataset" | "data", "validation", "hyperparameters"} ---- */

typedef struct td_job_request {
    td_model_kind model;
    char *dataset_id;       /* "dataset": an id (owned), or NULL */
    td_dataset_buf *data;   /* "data": an inline dataset (owned), or NULL */
    char *validation_id;    /* "validation": an id (owned), or NULL */
    td_hparams hp;          /* resolved, initial_weights not yet converted */
    cJSON *initial_weights; /* detached copy of hyperparameters.initial_weights, or NULL */
} td_job_request;

/* Parses a job body. Exactly one of "dataset" and "data" is required, "model" is
 * required (unknown model: field "model", with a suggestion). Unknown top-level keys are
 * rejected naming them. Malformed JSON is json_util's 400 error. On error *out holds
 * nothing to free (td_job_request_fini is still safe). */
td_status td_json_job_parse(td_job_request *out, const char *body, size_t len, td_error *err);
/* The same as the body streams (td_dstream_object: "data" through the dataset parser,
 * numbers straight into its arrays; the other members through cJSON): feed the parser
 * with td_dstream_feed, then td_json_job_finish (once). NULL when out of memory. */
td_dstream *td_json_job_stream(uint64_t size_hint);
td_status td_json_job_finish(td_job_request *out, td_dstream *s, td_error *err);
void td_job_request_fini(td_job_request *r);

#endif
