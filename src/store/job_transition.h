/* job_transition.h — a job's change of state (start, finish, cancel, delete) as both store
 * backends run it: in one transaction, read and lock the job's row, refuse unless the job
 * is in a state the change accepts (td_job_transition_check), write the change for the
 * state found, commit. The struct describes the change; store_jobs.c (SQLite) and
 * store_pg_jobs.c (td_pg_job_transition) are its executors. For the store's files only. */
#ifndef TRAIND_JOB_TRANSITION_H
#define TRAIND_JOB_TRANSITION_H

#include <stdint.h>

#include "store/store.h"

typedef enum {
    TD_TRANS_START,  /* queued or running -> running (a running one counts a restart) */
    TD_TRANS_FINISH, /* queued or running -> state (terminal) */
    TD_TRANS_CANCEL, /* queued -> cancelled; running: cancel requested */
    TD_TRANS_DELETE, /* terminal -> row gone (files and history: the caller's) */
} td_trans_kind;

typedef struct {
    td_trans_kind kind;
    const char *id;
    int live;                  /* START: also mark the job live (td_store_job_claim) */
    td_job_row *row;           /* START: when set, gets the job's row after the change */
    td_job_state state;        /* FINISH: the terminal state */
    const char *error_code;    /* FINISH: NULL or "" for none */
    const char *error_message; /* FINISH: NULL or "" for none */
    /* set by the executor from the locked row */
    int found;          /* the state the job was in */
    int64_t ckpt_epoch; /* its recorded checkpoint epoch, -1: none */
    int has_model;      /* it had a model file */
} td_job_transition;

/* TD_ECONFLICT (field "state"), naming the job and t->found, when t may not run from the
 * state found; else TD_OK. */
td_status td_job_transition_check(const td_job_transition *t, td_error *err);

#endif
