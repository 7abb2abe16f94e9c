/* json_sweep.h — the sweep body of POST /v1/sweeps, its trials, and the sweep object.
 *
 * The body (issue 18):
 *   {"model", "dataset", "validation"?, "hyperparameters"?: base,
 *    "search": {NAME: [v, ...] | {"uniform": [a, b]} | {"log_uniform": [a, b]} |
 *               {"int_uniform": [a, b]}},
 *    "method"?: "grid" (default) | "random", "trials": N (random only), "seed"?: 0,
 *    "metric"?, "mode"?: "min" | "max",
 *    "schedule"?: {"successive_halving": {"min_epochs": r, "eta": η}}}
 * Errors name the field: "search.lr.log_uniform", "schedule.successive_halving.eta", ...
 * A grid is the cartesian product of the lists, the first name varying slowest; it
 * takes lists only. Random trial i draws every name in order from one stream seeded by
 * (seed, i): a list uniformly, uniform in [a, b), log_uniform exp(uniform(log a, log b)),
 * int_uniform an integer in [a, b]. Each trial's hyperparameters are the base object with
 * its values set (a dotted name such as "monotone.weight" inside its object); they are
 * then read and checked exactly as a job's (json_hparams.h, td_trainer_check). */
#ifndef TRAIND_CODEC_JSON_SWEEP_H
#define TRAIND_CODEC_JSON_SWEEP_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store_sweeps.h"
#include "traind/hparams.h"
#include "traind/status.h"

typedef enum {
    TD_SEARCH_LIST = 0,
    TD_SEARCH_UNIFORM,
    TD_SEARCH_LOG_UNIFORM,
    TD_SEARCH_INT_UNIFORM
} td_search_kind;

typedef struct td_search_dim {
    const char *name; /* borrowed from the request's tree */
    td_search_kind kind;
    const cJSON *values; /* TD_SEARCH_LIST: the array (n values) */
    int64_t n;
    double lo, hi; /* the distributions' bounds */
} td_search_dim;

typedef struct td_sweep_request {
    cJSON *root; /* the parsed body (owned); the fields below borrow it */
    td_model_kind model;
    const char *dataset, *validation; /* validation NULL when absent */
    const cJSON *base;                /* "hyperparameters", or NULL */
    td_search_dim *dims;              /* (ndims) owned */
    int ndims;
    int random;
    int64_t n_trials; /* grid: the product of the list lengths */
    int64_t seed;
    const char *metric;      /* NULL: the default (val_loss with validation, else loss) */
    int mode;                /* -1 not given, 0 min, 1 max */
    int64_t min_epochs, eta; /* 0 without a schedule */
} td_sweep_request;

/* Parses and checks the body's shape and values (not the trials: td_json_sweep_trial).
 * Malformed JSON is json_util's 400 error. On error *out holds nothing to free
 * (td_sweep_request_fini is still safe). */
td_status td_json_sweep_parse(td_sweep_request *out, const char *body, size_t len, td_error *err);
void td_sweep_request_fini(td_sweep_request *r);

/* Trial i (0 <= i < n_trials): *values = {name: value} of its searched values, *hparams =
 * the base with those values set; both new trees (the caller deletes them). */
td_status td_json_sweep_trial(const td_sweep_request *r, int64_t i, cJSON **values, cJSON **hparams,
                              td_error *err);

/* Resolves the metric for the trials just checked: the given one, or val_loss when every
 * trial has validation data (has_validation) and loss otherwise; checks that the model
 * records it, and that it has validation data when it needs it. *maximize gets the mode
 * (the given one, or the metric's natural one: accuracies and lower_bound are maximised). */
td_status td_json_sweep_metric(const td_sweep_request *r, int has_validation, const char **metric,
                               int *maximize, td_error *err);

/* The JSON the sweep keeps to echo: {"method","n_trials","seed","search","hyperparameters",
 * "schedule"} (malloc'd, or NULL when out of memory). */
char *td_json_sweep_spec(const td_sweep_request *r);

/* The sweep object: its fields, the counts of its trials by state, "best" and, when
 * with_trials, every trial. malloc'd, or NULL. */
char *td_json_sweep(const td_sweep_row *s, const td_sweep_trial *t, int n, int with_trials);

#endif
