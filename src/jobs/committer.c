/* committer.c — small jobs' ends, recorded in batches (see jobs.c's DESIGN: "Small
 * jobs"). */
#include "jobs/jobs_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/reserve.h"
#include "util/log.h"

/* ---- the committer ------------------------------------------------------------------
 * A job that ends succeeded before its first checkpoint (every small job) wrote its model
 * unsynced (put_model_unsynced); its worker hands the end over here and takes the next
 * job at once. The committer takes every end handed over meanwhile as one batch: one
 * syncfs makes their model files durable, then one transaction records them succeeded
 * (td_store_jobs_succeed), so a batch of small jobs costs two syncs, not a few each. Until
 * then a job reads as running (with its final epoch) and keeps its live mark: that
 * transaction clears it with the state, so a small job's end costs no commit of its own.
 * If the process dies first, the next start counts a crash (one of MAX_CRASHES: a crash
 * loop fails a job only when it dies running it that often) and resumes it, and it
 * computes the same weights.
 * A batch that cannot be recorded is retried as record_end retries, then its live marks
 * are cleared (the daemon is not dying: no crash to count); td_jobs_stop drains the
 * batches before it returns. */

/* 1 when the committer has the job's end (and will clear its live mark). */
int td_jobs_hand_off(td_jobs *jm, const char *id, int64_t n_params)
{
    pthread_mutex_lock(&jm->mu);
    if (jm->nends == jm->ends_cap) {
        int cap = jm->ends_cap ? 2 * jm->ends_cap : 64;
        char(*ids)[TD_ID_MAX] = realloc(jm->end_ids, sizeof *ids * (size_t)cap);
        if (ids) jm->end_ids = ids;
        int64_t *np = ids ? realloc(jm->end_params, sizeof *np * (size_t)cap) : NULL;
        if (np) jm->end_params = np, jm->ends_cap = cap;
    }
    if (jm->nends == jm->ends_cap) { /* out of memory: the job stays running, and resumes */
        pthread_mutex_unlock(&jm->mu);
        td_log(TD_LOG_ERROR, "jobs",
               "job %s: out of memory recording its end: it resumes at "
               "the next start",
               id);
        return 0;
    }
    memcpy(jm->end_ids[jm->nends], id, TD_ID_MAX);
    jm->end_params[jm->nends++] = n_params;
    pthread_cond_signal(&jm->ends_cv);
    pthread_mutex_unlock(&jm->mu);
    return 1;
}

/* A batch of ends: n jobs' ids and model sizes. */
typedef struct {
    const char *const *ids;
    const int64_t *np;
    int n;
} batch;

/* One attempt at a batch: its files durable, then its ends. */
static td_status ends_once(td_jobs *jm, const void *a, td_error *err)
{
    const batch *b = a;
    td_status st = td_store_sync_files(jm->store, err);
    return st ? st : td_store_jobs_succeed(jm->store, b->ids, b->np, b->n, err);
}

void *td_jobs_committer(void *arg)
{
    td_jobs *jm = arg;
    char(*ids)[TD_ID_MAX] = NULL;
    int64_t *np = NULL;
    const char **idp = NULL;
    int cap = 0;
    pthread_mutex_lock(&jm->mu);
    for (;;) {
        while (jm->nends == 0 && !jm->ends_stop)
            pthread_cond_wait(&jm->ends_cv, &jm->mu);
        if (jm->nends == 0) break; /* stopping, and drained */
        if (jm->nends > cap) {
            int c = jm->ends_cap;
            char(*i2)[TD_ID_MAX] = realloc(ids, sizeof *ids * (size_t)c);
            int64_t *n2 = i2 ? realloc(np, sizeof *np * (size_t)c) : NULL;
            const char **p2 = n2 ? realloc(idp, sizeof *idp * (size_t)c) : NULL;
            if (i2) ids = i2;
            if (n2) np = n2;
            if (p2) idp = p2, cap = c;
        }
        int n = jm->nends < cap ? jm->nends : cap;
        if (n == 0) { /* out of memory: they stay running, and resume at the next start */
            td_log(TD_LOG_ERROR, "jobs", "out of memory recording %d job ends", jm->nends);
            jm->nends = 0;
            continue;
        }
        memcpy(ids, jm->end_ids, sizeof *ids * (size_t)n);
        memcpy(np, jm->end_params, sizeof *np * (size_t)n);
        jm->nends -= n;
        memmove(jm->end_ids, jm->end_ids + n, sizeof *ids * (size_t)jm->nends);
        memmove(jm->end_params, jm->end_params + n, sizeof *np * (size_t)jm->nends);
        pthread_mutex_unlock(&jm->mu);
        for (int i = 0; i < n; i++)
            idp[i] = ids[i];
        td_error err = {{0}, {0}};
        const batch b = {idp, np, n};
        char what[48];
        snprintf(what, sizeof what, "recording %d job ends", n);
        int attempts;
        td_status st = td_jobs_record_end(jm, ends_once, &b, what, &attempts, &err);
        if (st) {
            td_log(TD_LOG_ERROR, "jobs",
                   "%d job ends (succeeded, from job %s) are not "
                   "recorded (%s): they stay running in the store, and the next start "
                   "resumes them",
                   n, ids[0], err.message);
            for (int i = 0; i < n; i++) /* no worker runs them: not a crash at the next start */
                td_jobs_mark_live(jm, idp[i], 0);
        }
        pthread_mutex_lock(&jm->mu);
        td_jobs_notify_locked(jm);
    }
    pthread_mutex_unlock(&jm->mu);
    free(ids);
    free(np);
    free(idp);
    return NULL;
}
