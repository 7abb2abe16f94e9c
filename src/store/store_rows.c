/* store_rows.c — what both store backends share to read rows and pages (store_rows.h). */
#include "store/store_rows.h"

#include <stdio.h>
#include <string.h>

#include "store/store_sweeps.h"

static void drop_jobs(void *rows, int n) { td_job_rows_free(rows, n); }
static void drop_sweeps(void *rows, int n) { td_sweep_rows_free(rows, n); }
static void drop_trials(void *rows, int n) { td_sweep_trials_free(rows, n); }

const td_row_kind TD_JOB_ROWS = {sizeof(td_job_row), offsetof(td_job_row, id), drop_jobs, "jobs"};
const td_row_kind TD_SWEEP_ROWS = {sizeof(td_sweep_row), offsetof(td_sweep_row, id), drop_sweeps,
                                   "sweeps"};
/* trials have no id: they are never paged */
const td_row_kind TD_TRIAL_ROWS = {sizeof(td_sweep_trial), 0, drop_trials, "trials"};

td_status td_store_page_start(int limit, const char *after, char cursor[TD_ID_MAX],
                              char next[TD_ID_MAX], int *n, td_error *err)
{
    *n = 0;
    snprintf(cursor, TD_ID_MAX, "%s", after ? after : "");
    next[0] = '\0';
    if (limit < 1) return td_fail(err, TD_EINVAL, "limit", "limit must be >= 1, got %d", limit);
    return TD_OK;
}

int td_store_state_of(const char *name)
{
    for (int i = 0; name && i < TD_JOB_NSTATES; i++)
        if (strcmp(name, td_job_state_name((td_job_state)i)) == 0) return i;
    return -1;
}

td_target_kind td_store_target_of(const char *name)
{
    for (int i = 0; name && i <= TD_TARGET_PROBS; i++)
        if (strcmp(name, td_target_name((td_target_kind)i)) == 0) return (td_target_kind)i;
    return TD_TARGET_NONE;
}

int td_store_count_cols(const char *names)
{
    if (!names || !*names) return 0;
    int n = 1;
    for (; *names; names++)
        n += *names == ',';
    return n;
}

/* JOB_COLS' columns (both backends), as store_rows.h says */
#define J(col, kind, field) TD_COL(td_job_row, col, kind, field)
const td_col TD_JOB_READ[] = {
    J(0, 't', id),
    J(1, 't', model),
    J(2, 't', dataset),
    J(3, 't', validation),
    J(4, 's', state),
    J(6, 't', created_at),
    J(7, 't', started_at),
    J(8, 't', finished_at),
    J(9, 't', error_code),
    J(10, 't', error_message),
    J(11, 'n', restarts),
    J(12, 'n', epoch),
    J(13, 'n', epochs),
    J(14, 'n', cancel_requested),
    J(15, 't', idempotency_key),
    J(17, 'N', checkpoint_epoch),
    J(18, 'n', has_model),
    J(19, 'n', crashes),
    J(20, 'n', resumed_on_different_build),
    J(21, 't', sweep),
    J(22, 'N', sweep_trial),
    J(23, 'n', stop_at_epoch),
    J(24, 'n', paused),
    J(25, 'n', stopped_early),
};
#undef J

const int TD_JOB_NREAD = (int)(sizeof TD_JOB_READ / sizeof *TD_JOB_READ);

/* SWEEP_COLS' columns (both backends) */
#define W(col, kind, field) TD_COL(td_sweep_row, col, kind, field)
const td_col TD_SWEEP_READ[] = {
    W(0, 't', id),          W(2, 't', model),          W(3, 't', dataset),
    W(4, 't', validation),  W(6, 't', metric),         W(7, 'n', maximize),
    W(8, 'n', epochs),      W(9, 'n', min_epochs),     W(10, 'n', eta),
    W(11, 'n', rung),       W(12, 'n', n_trials),      W(13, 'n', cancel_requested),
    W(14, 't', created_at), W(15, 't', started_at),    W(16, 't', finished_at),
    W(17, 't', error_code), W(18, 't', error_message), W(1, 's', state),
};
#undef W

const int TD_SWEEP_NREAD = (int)(sizeof TD_SWEEP_READ / sizeof *TD_SWEEP_READ);
