/* catalog.h — GET /v1/models: every model and its hyperparameters, read off the one table
 * (td_hparam_defs, include/traind/hparams.h) and the model defaults (td_hparams_defaults),
 * so the catalogue cannot disagree with what POST /v1/jobs accepts.
 *
 *   {"models": [{"name": "softmax", "description": "...", "hyperparameters": [
 *       {"name": "lr", "type": "number", "default": 0.1, "min": 0, "max": 1000000,
 *        "choices": null, "description": "learning rate", "min_exclusive": true,
 *        "max_exclusive": false},
 *       {"name": "optimizer", "type": "enum", "choices": ["sgd", "adam", "adamw"], ...},
 *       ...]}, ...]}
 *
 * type is one of number, integer, boolean, enum, number_pair (betas), integer_list
 * (hidden), number_list (class_weights), tensor (nested arrays: gmm *_init), weights
 * (initial_weights: an object shaped like GET /model). A dotted name ("monotone.weight")
 * is key "weight" of the object "monotone" in a job body. Bounds apply to a number, to
 * every element of a list or tensor, and are null where the table has none (|x| >=
 * 1e300) and for enums and booleans; a number_pair's max is exclusive. default is the model's default as a job
 * reports it (null: from the data, or not given). Tables in table order. */
#ifndef TRAIND_HTTP_CATALOG_H
#define TRAIND_HTTP_CATALOG_H

#include "http/http.h"

/* The catalogue as JSON text (malloc'd), or NULL when out of memory. */
char *td_json_model_catalog(void);

/* docs/hyperparameters.md: the catalogue as Markdown, one table per model (malloc'd;
 * NULL when out of memory). `make docs` writes it (scripts/hparams_md.c) and the docs
 * suite checks the file in the repository is this text. */
char *td_hparams_markdown(void);

/* GET /v1/models. */
void td_h_models(void *app, const td_req *req, td_resp *resp);

#endif
