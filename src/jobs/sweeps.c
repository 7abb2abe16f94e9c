/* sweeps.c — the sweep scheduler (contract in sweeps.h).
 *
 * DESIGN (threads): one thread. It sleeps on the job manager's change counter
 * (td_jobs_wait_change: a job's start, pause and end move it; td_sweeps_kick too), at most
 * every PASS_MIN_MS, and then makes a pass over the active sweeps. Only this thread
 * releases, continues or stops trials and ends sweeps, so there is no race between two
 * deciders; HTTP threads only insert sweeps and record cancel requests in the store. It
 * holds no lock across a store call (it has no lock: its only shared fields are `stop`,
 * under `mu`). */
#include "jobs/sweeps.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"

#define PASS_MIN_MS 20
#define WAIT_MS 500

struct td_sweeps {
    td_store *store;
    td_jobs *jobs;
    int window;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    int stop;
};

int64_t td_sweep_rung_epochs(const td_sweep_row *s, int64_t k)
{
    if (s->eta < 2 || s->min_epochs < 1) return s->epochs;
    int64_t b = s->min_epochs;
    for (int64_t i = 0; i < k && b < s->epochs; i++)
        b = b > s->epochs / s->eta ? s->epochs : b * s->eta;
    return b < s->epochs ? b : s->epochs;
}

/* 1 when metric a ranks before b (NaN ranks last). */
static int better(double a, double b, int maximize)
{
    if (isnan(b)) return !isnan(a);
    if (isnan(a)) return 0;
    return maximize ? a > b : a < b;
}

int td_sweep_best(const td_sweep_trial *t, int n, int maximize)
{
    int best = -1;
    for (int pass = 0; pass < 2 && best < 0; pass++)
        for (int i = 0; i < n; i++)
            if (t[i].job[0] && t[i].state == TD_JOB_SUCCEEDED && !isnan(t[i].metric) &&
                (pass || !t[i].stopped_early) &&
                (best < 0 || better(t[i].metric, t[best].metric, maximize)))
                best = i;
    return best;
}

static int active(const td_sweep_trial *t) { return t->job[0] && !td_job_state_terminal(t->state); }

/* Releases trial t for a budget of `until` epochs (the full run when until >= epochs):
 * a new job at rung 0, else its paused job continues. 1 when released, 0 when it must wait
 * (a full queue, a stopping daemon, a storage failure: tried again next pass), -1 when
 * the sweep cannot go on (err: its dataset is gone). */
static int release(td_sweeps *sw, const td_sweep_row *s, const td_sweep_trial *t, int64_t until,
                   td_error *err)
{
    int64_t stop_at = until < s->epochs ? until : 0;
    td_status st;
    if (t->job[0]) {
        st = td_jobs_continue(sw->jobs, t->job, stop_at, t->bytes, err);
        if (st == TD_ECONFLICT || st == TD_ENOTFOUND) /* cancelled or deleted meanwhile */
            return 0;
    } else {
        char id[TD_ID_MAX];
        td_job_spec spec = {.model = s->model,
                            .dataset = s->dataset,
                            .validation = s->validation[0] ? s->validation : NULL,
                            .hyperparameters = t->hyperparameters,
                            .epochs = s->epochs,
                            .sweep = s->id,
                            .sweep_trial = t->index,
                            .stop_at_epoch = stop_at};
        st = td_jobs_submit(sw->jobs, &spec, t->bytes, id, err);
        if (st == TD_ENOTFOUND || st == TD_EINVAL) return -1;
    }
    return st == TD_OK;
}

/* Ends sweep s: cancelled when asked, else succeeded when a trial succeeded, else failed
 * naming the first failed trial. */
static void finish(td_sweeps *sw, const td_sweep_row *s, const td_sweep_trial *t, int n)
{
    td_job_state end = TD_JOB_FAILED;
    char msg[TD_ERRMSG_MAX] = "";
    if (s->cancel_requested) {
        end = TD_JOB_CANCELLED;
    } else {
        for (int i = 0; i < n; i++)
            if (t[i].job[0] && t[i].state == TD_JOB_SUCCEEDED) end = TD_JOB_SUCCEEDED;
    }
    if (end == TD_JOB_FAILED) {
        int f = 0; /* the first trial that ran and did not succeed */
        while (f < n - 1 && (!t[f].job[0] || t[f].state == TD_JOB_SUCCEEDED))
            f++;
        snprintf(msg, sizeof msg, "no trial succeeded; trial %lld (job %s) ended %s%s%s",
                 (long long)t[f].index, t[f].job[0] ? t[f].job : "none",
                 td_job_state_name(t[f].state), t[f].error_code[0] ? ": " : "", t[f].error_code);
    }
    td_error err = {{0}, {0}};
    if (td_store_sweep_set_state(sw->store, s->id, end,
                                 end == TD_JOB_FAILED ? "trials_failed" : NULL, msg[0] ? msg : NULL,
                                 &err))
        td_log(TD_LOG_WARN, "sweeps", "sweep %s: recording its end failed: %s", s->id, err.message);
    else
        td_log(TD_LOG_INFO, "sweeps", "sweep %s %s", s->id, td_job_state_name(end));
}

/* The end of a rung: the best max(1, ⌊alive/η⌋) paused trials go on, the others stop. */
static void promote(td_sweeps *sw, const td_sweep_row *s, const td_sweep_trial *t, int n)
{
    int *order = malloc(sizeof *order * (size_t)(n > 0 ? n : 1));
    const char **stop = malloc(sizeof *stop * (size_t)(n > 0 ? n : 1));
    int alive = 0, nstop = 0;
    if (!order || !stop) goto out;
    for (int i = 0; i < n; i++) {
        if (!active(&t[i])) continue;
        int j = alive++; /* insertion sort by metric, stable (ties keep index order) */
        while (j > 0 && better(t[i].metric, t[order[j - 1]].metric, s->maximize)) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    int keep = alive / (int)s->eta;
    if (keep < 1) keep = 1;
    for (int j = keep; j < alive; j++)
        stop[nstop++] = t[order[j]].job;
    td_error err = {{0}, {0}};
    if (td_store_sweep_promote(sw->store, s->id, s->rung + 1, stop, nstop, &err))
        td_log(TD_LOG_WARN, "sweeps", "sweep %s: ending rung %lld failed: %s", s->id,
               (long long)s->rung, err.message);
    else
        td_log(TD_LOG_INFO, "sweeps",
               "sweep %s: rung %lld done, %d of %d trials go on to "
               "%lld epochs",
               s->id, (long long)s->rung, keep < alive ? keep : alive, alive,
               (long long)td_sweep_rung_epochs(s, s->rung + 1));
out:
    free(order);
    free(stop);
}

/* One step of sweep s: whatever its state in the store calls for now. */
static void advance(td_sweeps *sw, const td_sweep_row *s)
{
    td_error err = {{0}, {0}};
    td_sweep_trial *t = NULL;
    int n = 0;
    if (td_store_sweep_trials(sw->store, s->id, s->metric, &t, &n, &err)) {
        td_log(TD_LOG_WARN, "sweeps", "sweep %s: %s", s->id, err.message);
        return;
    }
    int inflight = 0, started = 0, pending = 0, busy = 0;
    int64_t until = td_sweep_rung_epochs(s, s->rung);
    for (int i = 0; i < n; i++) {
        if (active(&t[i]) && !t[i].paused) inflight++;
        if (t[i].job[0] && (t[i].state != TD_JOB_QUEUED || t[i].epoch > 0)) started = 1;
    }
    if (s->cancel_requested) {
        for (int i = 0; i < n; i++) {
            if (!active(&t[i])) continue;
            busy = 1; /* a paused trial ends at once, a running one within an epoch */
            if (!t[i].cancel_requested) td_jobs_cancel(sw->jobs, t[i].job, NULL, NULL);
        }
        if (!busy) finish(sw, s, t, n);
        goto out;
    }
    if (s->state == TD_JOB_QUEUED && started)
        td_store_sweep_set_state(sw->store, s->id, TD_JOB_RUNNING, NULL, NULL, NULL);
    for (int i = 0; i < n; i++) {
        int waiting = !t[i].job[0] || (active(&t[i]) && t[i].paused && t[i].epoch < until);
        if (!waiting) continue;
        pending++;
        if (inflight >= sw->window || busy) continue;
        int r = release(sw, s, &t[i], until, &err);
        if (r < 0) {
            td_store_sweep_set_state(sw->store, s->id, TD_JOB_FAILED, td_status_code(TD_EINVAL),
                                     err.message, NULL);
            td_log(TD_LOG_WARN, "sweeps", "sweep %s failed: %s", s->id, err.message);
            goto out;
        }
        if (r == 0)
            busy = 1; /* the queue is full or the store refused: next pass */
        else
            inflight++;
    }
    if (pending || inflight) goto out;
    int alive = 0;
    for (int i = 0; i < n; i++)
        alive += active(&t[i]);
    if (alive && until < s->epochs)
        promote(sw, s, t, n);
    else if (!alive)
        finish(sw, s, t, n);
out:
    td_sweep_trials_free(t, n);
}

static int stopping(td_sweeps *sw)
{
    pthread_mutex_lock(&sw->mu);
    int stop = sw->stop;
    pthread_mutex_unlock(&sw->mu);
    return stop;
}

static void *scheduler(void *arg)
{
    td_sweeps *sw = arg;
    uint64_t seen = 0;
    while (!stopping(sw)) {
        td_sweep_row *rows = NULL;
        int n = 0;
        /* a shared store: one daemon of the cluster decides (store_sweeps.h) */
        if (td_store_sweeps_leader(sw->store) &&
            td_store_sweep_list_active(sw->store, &rows, &n, NULL) == TD_OK)
            for (int i = 0; i < n && !stopping(sw); i++)
                advance(sw, &rows[i]);
        td_sweep_rows_free(rows, n);
        struct timespec ts = {0, PASS_MIN_MS * 1000000L};
        nanosleep(&ts, NULL);
        seen = td_jobs_wait_change(sw->jobs, seen, WAIT_MS);
    }
    return NULL;
}

td_status td_sweeps_start(td_sweeps **out, td_store *store, td_jobs *jobs, int window,
                          td_error *err)
{
    td_sweeps *sw = calloc(1, sizeof *sw);
    *out = NULL;
    if (!sw) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    sw->store = store;
    sw->jobs = jobs;
    sw->window = window < 1 ? 1 : window;
    pthread_mutex_init(&sw->mu, NULL);
    if (pthread_create(&sw->thread, NULL, scheduler, sw) != 0) {
        td_sweeps_destroy(sw);
        return td_fail(err, TD_ENOMEM, NULL, "cannot start the sweep scheduler");
    }
    sw->started = 1;
    *out = sw;
    return TD_OK;
}

void td_sweeps_kick(td_sweeps *sw)
{
    if (sw) td_jobs_poke(sw->jobs);
}

void td_sweeps_destroy(td_sweeps *sw)
{
    if (!sw) return;
    pthread_mutex_lock(&sw->mu);
    sw->stop = 1;
    pthread_mutex_unlock(&sw->mu);
    if (sw->started) {
        td_jobs_poke(sw->jobs);
        pthread_join(sw->thread, NULL);
    }
    pthread_mutex_destroy(&sw->mu);
    free(sw);
}
