/* lease.c — a shared store's claims and leases (PostgreSQL, many daemons; see jobs.c's
 * DESIGN: "A shared store"): an idle worker claims the oldest job that fits the memory
 * budget, and the heartbeat thread renews leases, carries cancels and reaps crashed
 * holders. */
#include "jobs/jobs_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/budget.h"
#include "util/clock.h"
#include "util/log.h"

/* Shared store: claims a job that fits the memory budget and reserves its estimate (1);
 * else waits up to CLAIM_POLL_MS for a submit or a stop (0). Caller holds mu; it is
 * released around the store call. */
int td_jobs_claim(td_jobs *jm, char id[TD_ID_MAX], uint64_t *bytes)
{
    pthread_mutex_unlock(&jm->mu);
    uint64_t limit = td_budget_limit(), used = td_budget_used();
    uint64_t avail = !limit ? UINT64_MAX : used < limit ? limit - used : 0;
    td_error err = {{0}, {0}};
    td_status st = td_store_job_claim_next(jm->store, avail, id, bytes, &err);
    int got = st == TD_OK;
    if (st && st != TD_ENOTFOUND)
        td_log(TD_LOG_WARN, "jobs", "claiming a job failed: %s", err.message);
    if (got && limit && *bytes > limit) *bytes = limit;
    if (got && !td_budget_reserve(*bytes)) {           /* a local job took the room meanwhile */
        td_store_job_set_live(jm->store, id, 0, NULL); /* let go: its lease ends */
        got = 0;
    }
    pthread_mutex_lock(&jm->mu);
    if (got && jm->stopping) { /* not started: give it back */
        pthread_mutex_unlock(&jm->mu);
        td_store_job_set_live(jm->store, id, 0, NULL);
        td_budget_release(*bytes);
        pthread_mutex_lock(&jm->mu);
        return 0;
    }
    if (!got && !jm->stopping) {
        struct timespec dl = td_deadline(CLOCK_REALTIME, CLAIM_POLL_MS); /* `work`: default clock */
        pthread_cond_timedwait(&jm->work, &jm->mu, &dl);
    }
    return got;
}

/* Shared store: every lease_s / 3, renews the leases of this daemon's running jobs,
 * raises the cancel flag of those cancelled elsewhere, and reaps crashed holders. */
void *td_jobs_heartbeat(void *arg)
{
    td_jobs *jm = arg;
    int period_ms = jm->o.lease_s * 1000 / 3;
    char(*ids)[TD_ID_MAX] = calloc((size_t)jm->o.workers, sizeof *ids);
    const char **ptrs = calloc((size_t)jm->o.workers, sizeof *ptrs);
    int *cancel = calloc((size_t)jm->o.workers, sizeof *cancel);
    int *held = calloc((size_t)jm->o.workers, sizeof *held);
    pthread_mutex_lock(&jm->mu);
    while (!jm->hb_stop && ids && ptrs && cancel && held) {
        int n = 0;
        for (int i = 0; i < jm->nthreads; i++)
            if (jm->run[i].id[0]) {
                memcpy(ids[n], jm->run[i].id, TD_ID_MAX);
                ptrs[n] = ids[n];
                n++;
            }
        pthread_mutex_unlock(&jm->mu);
        td_error err = {{0}, {0}};
        if (td_store_job_renew(jm->store, ptrs, n, cancel, held, &err))
            td_log(TD_LOG_WARN, "jobs", "renewing the job leases failed: %s", err.message);
        else
            for (int k = 0; k < n; k++)
                if (!held[k])
                    td_log(TD_LOG_WARN, "jobs",
                           "job %s: its lease is lost (held elsewhere "
                           "or ended); its writes from here are refused",
                           ids[k]);
        td_jobs_reap_crashed(jm, &err);
        pthread_mutex_lock(&jm->mu);
        for (int k = 0; k < n; k++)
            for (int i = 0; cancel[k] && i < jm->nthreads; i++)
                if (strcmp(jm->run[i].id, ids[k]) == 0) jm->run[i].cancel = 1;
        struct timespec dl = td_deadline(CLOCK_MONOTONIC, period_ms); /* as `changed` waits */
        while (!jm->hb_stop && pthread_cond_timedwait(&jm->changed, &jm->mu, &dl) == 0) {
        }
    }
    pthread_mutex_unlock(&jm->mu);
    free(ids), free(ptrs), free(cancel), free(held);
    return NULL;
}
