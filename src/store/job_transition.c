/* job_transition.c — which states each job transition accepts (job_transition.h). */
#include "store/job_transition.h"

#define ACTIVE (1u << TD_JOB_QUEUED | 1u << TD_JOB_RUNNING)
#define ENDED (1u << TD_JOB_SUCCEEDED | 1u << TD_JOB_FAILED | 1u << TD_JOB_CANCELLED)

/* Per kind: the states it runs from (bit 1 << state) and the refusal, printf'd with the
 * job id and the state found. */
static const struct {
    unsigned from;
    const char *refusal;
} RULES[] = {
    [TD_TRANS_START] = {ACTIVE, "job %s is %s"},
    [TD_TRANS_FINISH] = {ACTIVE, "job %s is already %s"},
    [TD_TRANS_CANCEL] = {ACTIVE, "job %s is already %s"},
    [TD_TRANS_DELETE] = {ENDED, "job %s is %s; cancel it first"},
};

td_status td_job_transition_check(const td_job_transition *t, td_error *err)
{
    if (t->found >= 0 && (RULES[t->kind].from & 1u << t->found)) return TD_OK;
    return td_fail(err, TD_ECONFLICT, "state", RULES[t->kind].refusal, t->id,
                   td_job_state_name((td_job_state)t->found));
}
