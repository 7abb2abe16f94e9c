/* store_sweeps.h — hyperparameter sweeps in the store (issue 18), and the two job states a
 * sweep's trials add: paused (waiting for the sweep's next rung) and stopped early.
 *
 * Tables (traind.db, created by an idempotent migration at open):
 *   sweeps(id, state, model, dataset, validation, spec, metric, mode, epochs, min_epochs,
 *          eta, rung, n_trials, cancel_requested, created_at, started_at, finished_at,
 *          error_code, error_message)
 *   sweep_trials(sweep_id, idx, "values", hyperparameters, bytes)  every trial, at submission
 *   jobs.sweep, jobs.sweep_trial     a trial's job (inserted when the sweep releases it)
 *   jobs.stop_at_epoch, jobs.paused, jobs.stopped_early
 * A trial's job is found by (sweep, sweep_trial), written by the job's own insert: a crash
 * can never leave a trial job without its link, nor release a trial twice.
 *
 * A sweep's state uses the job states: queued, running, succeeded, failed, cancelled. */
#ifndef TRAIND_STORE_SWEEPS_H
#define TRAIND_STORE_SWEEPS_H

#include <stdint.h>

#include "store/store.h"

#define TD_SWEEP_MAX_TRIALS 1000

/* What a new sweep is made of (strings borrowed). */
typedef struct td_sweep_spec {
    const char *model, *dataset;
    const char *validation;  /* or NULL */
    const char *spec;        /* JSON echoed by the API: method, search, base, schedule.. */
    const char *metric;      /* a record column, e.g. "val_loss" */
    int maximize;            /* mode "max" */
    int64_t epochs;          /* every trial's planned epochs */
    int64_t min_epochs, eta; /* successive halving; both 0 without */
} td_sweep_spec;

typedef struct td_sweep_trial_spec {
    const char *values;          /* JSON object of the searched values */
    const char *hyperparameters; /* the job's hyperparameter text (td_job_hparams_text) */
    uint64_t bytes;              /* its memory estimate (td_jobs_job_bytes) */
} td_sweep_trial_spec;

typedef struct td_sweep_row {
    char id[TD_ID_MAX];
    td_job_state state;
    char model[TD_MODEL_NAME_MAX], dataset[TD_ID_MAX], validation[TD_ID_MAX];
    char metric[TD_HIST_NAME_MAX];
    int maximize;
    int64_t epochs, min_epochs, eta;
    int64_t rung; /* successive halving's current rung, from 0 */
    int64_t n_trials;
    int cancel_requested;
    char created_at[TD_TIME_MAX], started_at[TD_TIME_MAX], finished_at[TD_TIME_MAX];
    char error_code[TD_ERRCODE_MAX], error_message[TD_ERRMSG_MAX];
    char *spec; /* malloc'd */
} td_sweep_row;

void td_sweep_row_fini(td_sweep_row *r);
void td_sweep_rows_free(td_sweep_row *rows, int n);

/* One trial and its job (job "" while not released: the job fields are then zero). */
typedef struct td_sweep_trial {
    int64_t index;
    char *values, *hyperparameters; /* malloc'd */
    uint64_t bytes;
    char job[TD_ID_MAX];
    td_job_state state;
    int paused, stopped_early, cancel_requested;
    int64_t epoch, stop_at_epoch;
    double metric; /* the sweep's metric in the job's latest record; NaN none */
    char error_code[TD_ERRCODE_MAX];
} td_sweep_trial;

void td_sweep_trials_free(td_sweep_trial *t, int n);

/* Inserts a queued sweep and its n trials (one transaction) under a new "swp_" id; the
 * dataset (and validation) must exist: TD_ENOTFOUND with field "dataset"/"validation". */
td_status td_store_sweep_insert(td_store *s, const td_sweep_spec *spec,
                                const td_sweep_trial_spec *trials, int n, char id_out[TD_ID_MAX],
                                td_error *err);
td_status td_store_sweep_get(td_store *s, const char *id, td_sweep_row *out, td_error *err);
/* Newest first, paged as td_store_job_list. Free with td_sweep_rows_free. */
td_status td_store_sweep_list(td_store *s, int limit, const char *after, td_sweep_row **rows,
                              int *n, char next[TD_ID_MAX], td_error *err);
/* Sweeps in state queued or running, oldest first. */
td_status td_store_sweep_list_active(td_store *s, td_sweep_row **rows, int *n, td_error *err);
/* The trials of sweep id in index order, with their jobs and the value of metric. */
td_status td_store_sweep_trials(td_store *s, const char *id, const char *metric,
                                td_sweep_trial **out, int *n, td_error *err);
/* queued -> running (started_at), or an active sweep -> a terminal state (finished_at,
 * error code and message may be NULL). TD_ECONFLICT when the sweep is terminal already. */
td_status td_store_sweep_set_state(td_store *s, const char *id, td_job_state state,
                                   const char *code, const char *msg, td_error *err);
/* Records a cancel request (the scheduler cancels the trials, then the sweep);
 * TD_ECONFLICT when terminal. */
td_status td_store_sweep_cancel(td_store *s, const char *id, td_error *err);
/* The end of a rung of successive halving, in one transaction: the paused trial jobs
 * stop[0..n) end succeeded with stopped_early (a job no longer paused is left alone) and
 * the sweep moves to rung `rung`. */
td_status td_store_sweep_promote(td_store *s, const char *id, int64_t rung, const char *const *stop,
                                 int n, td_error *err);
/* Deletes a terminal sweep, its trials' jobs (td_store_job_delete) and its rows;
 * TD_ECONFLICT while it is queued or running. */
td_status td_store_sweep_delete(td_store *s, const char *id, td_error *err);

/* 1 when this daemon is to drive the sweeps (the scheduler makes a pass only then): always
 * with SQLite; with a shared store, the one daemon holding a session advisory lock of the
 * database (taken here when free; it passes to another daemon when the holder's
 * connection ends, e.g. at its death). */
int td_store_sweeps_leader(td_store *s);

/* A worker pauses job id at its stop_at_epoch: running -> queued with paused = 1, so the
 * start-up recovery leaves it for its sweep. A cancel requested meanwhile wins: the job
 * ends cancelled. TD_ECONFLICT when the job is not running. */
td_status td_store_job_pause(td_store *s, const char *id, td_error *err);
/* The sweep continues a paused job: paused = 0 and stop_at_epoch = stop_at (0: train to
 * the end). TD_ECONFLICT when the job is not paused (cancelled meanwhile). */
td_status td_store_job_continue(td_store *s, const char *id, int64_t stop_at, td_error *err);

#endif
