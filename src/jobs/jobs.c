/* jobs.c — queue, workers and the life of a training job.
 *
 * DESIGN (threads): `mu` guards the queue, the running table, the change counter and the
 * stats. HTTP threads call td_jobs_submit / td_jobs_cancel / td_jobs_wait_change; each
 * worker thread pops an id under the lock, then unlocks to train (Redis's bio pattern).
 * `mu` is never held across a store call (one may wait on the disk or on SQLite's lock,
 * and everything that takes `mu` would wait with it): td_jobs_submit counts its insert
 * in `inserting` under the lock, so the queue bound holds, and inserts unlocked.
 * A worker checks its cancel flag and the stop flag at every epoch boundary, so a cancel
 * or a SIGTERM takes effect within one epoch.
 *
 * Epochs: a worker appends each epoch's record to the job's tail (jobs/tail.h), which
 * readers (event streams, GET /losses) copy from, and flushes the tail to the store in
 * batches (at most every TD_TAIL_FLUSH_S or TD_TAIL_BATCH records), before each
 * checkpoint and at the end: no store transaction, fsync or wake-up of watchers per
 * epoch. The slot's `tail` pointer is set and cleared under `mu`; td_jobs_tail lends it
 * out with a reference.
 *
 * Cores: `cores` compute threads are shared by the running jobs: at each epoch a job
 * takes cores / running (at least 1) for its trainer's pool, so a job alone uses every
 * core and two jobs on two cores use one each; OpenBLAS is single-threaded (math/blas.c).
 * Results never depend on the thread count (see train.h), so exact resume holds however
 * the load changes. Training threads run at nice TRAIN_NICE (a worker sets it on itself
 * and its trainer's pool threads inherit it): with every core training, an HTTP thread
 * (nice 0) still gets a core as soon as a request comes, so status requests stay fast;
 * when the API is idle the cores are all training's.
 *
 * A full disk: a write of a running job refused for lack of space (TD_ENOSPACE) is
 * reported to the reserve (store/reserve.h: new work is refused, /readyz says why) and
 * tried again after 0.25, 0.5 and 1 s; then the job fails with insufficient_storage.
 * Recording that end may release the reserve; if even it cannot be written (END_TRIES
 * attempts, ~8 s), the worker leaves the job "running" in the store and takes the next
 * one: the next start resumes it. A worker sleeps between attempts and never spins. A
 * queued job does not start while state_dir is full: its worker waits for room.
 *
 * Memory (util/budget.h): every queued job carries its estimate (td_train_memory_estimate
 * for `cores` threads; its datasets are shared file mappings, not counted). A worker takes the head of the queue only once
 * that estimate is reserved in the budget, and returns it when the job ends; so jobs that
 * fit alone but not together run one after the other, in submission order (the head
 * waits, nothing overtakes it: no starvation). Workers sleep on `work` meanwhile; every
 * release of budget (a job ending, a request body read) broadcasts it. td_budget_release
 * is never called with `mu` held (the listener takes `mu`).
 *
 * Small jobs (W9): the queue is handed over on condition variables only: a worker sleeps
 * on `work` until a job is queued or budget is released, and a submit finding the queue
 * full sleeps on `room` (up to ROOM_WAIT_MS) until a worker pops one. A job's claim
 * (start + live mark) and its history columns commit without waiting for the disk; its
 * end (state + live mark cleared) is durable when recorded, by a WAL sync shared with
 * concurrent inserts and ends (store.c, group commit); a finished job writes no
 * checkpoint, only its model, and a job that succeeds before its first checkpoint hands
 * its end to the committer (committer.c) and its worker takes the next job at once.
 *
 * Crash loops: a worker marks its job live in the store before training (in its claim)
 * and clears the mark when it lets go (the job ended: with its recorded end; or it was
 * checkpointed for a shutdown). A mark found at the next start means the process died
 * running the job (a crash, an abort, an OOM kill): the job counts a crash and resumes,
 * and at MAX_CRASHES it fails with code "crashed" instead (td_jobs_start, before any job
 * runs), so one job whose data or settings kill the process cannot keep the service down.
 *
 * A shared store (td_store_shared: PostgreSQL, many daemons; lease.c): there is no local queue.
 * An idle worker claims the oldest job that fits what is left of the memory budget from
 * the store (td_store_job_claim_next: FOR UPDATE SKIP LOCKED), reserves its estimate, and
 * runs it as above (no hand-off to the committer: its end is recorded before the worker
 * lets go of the lease); with nothing to claim it polls every CLAIM_POLL_MS (a submit here wakes it
 * at once). The heartbeat thread renews the leases of the running jobs every lease_s / 3,
 * brings cancel requests made on any daemon to the worker (so a cancel takes an epoch
 * plus a heartbeat), and reaps crashed holders (a live mark with an expired lease: the
 * crash count of the issue-10 protection, now across daemons). A worker that lets go
 * clears its mark and ends the lease, so another daemon resumes the job at once. */
#include "jobs/jobs.h"
#include "jobs/jobs_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "codec/json_job.h"
#include "math/blas.h"
#include "math/fingerprint.h"
#include "store/blob.h"
#include "jobs/tail.h"
#include "store/store_sweeps.h"
#include "traind/train.h"
#include "util/budget.h"
#include "util/clock.h"
#include "util/log.h"


void td_jobs_notify_locked(td_jobs *jm)
{
    jm->change++;
    pthread_cond_broadcast(&jm->changed);
}

static void notify(td_jobs *jm)
{
    pthread_mutex_lock(&jm->mu);
    td_jobs_notify_locked(jm);
    pthread_mutex_unlock(&jm->mu);
}

/* Appends id to the ring, growing it when needed. Caller holds mu. */
static td_status push_locked(td_jobs *jm, const char *id, uint64_t bytes)
{
    if (jm->qlen == jm->qcap) {
        int cap = jm->qcap ? 2 * jm->qcap : 64;
        qentry *q = malloc(sizeof *q * (size_t)cap);
        if (!q) return TD_ENOMEM;
        for (int i = 0; i < jm->qlen; i++)
            q[i] = jm->queue[(jm->qhead + i) % jm->qcap];
        free(jm->queue);
        jm->queue = q, jm->qcap = cap, jm->qhead = 0;
    }
    qentry *e = &jm->queue[(jm->qhead + jm->qlen) % jm->qcap];
    snprintf(e->id, TD_ID_MAX, "%s", id);
    e->bytes = bytes;
    jm->qlen++;
    pthread_cond_signal(&jm->work);
    return TD_OK;
}

/* Removes id from the ring if present. Caller holds mu. */
static void remove_locked(td_jobs *jm, const char *id)
{
    for (int i = 0; i < jm->qlen; i++) {
        if (strcmp(jm->queue[(jm->qhead + i) % jm->qcap].id, id) != 0) continue;
        for (int j = i; j + 1 < jm->qlen; j++)
            jm->queue[(jm->qhead + j) % jm->qcap] = jm->queue[(jm->qhead + j + 1) % jm->qcap];
        jm->qlen--;
        pthread_cond_broadcast(&jm->work); /* the job behind it may fit now */
        pthread_cond_broadcast(&jm->room);
        return;
    }
}

/* 1 when the head of the queue may start: its estimate is now reserved (a job over the
 * whole budget, possible only for one recovered at start-up, reserves all of it and so
 * runs alone). Caller holds mu. */
static int admit_locked(td_jobs *jm)
{
    if (jm->qlen == 0) return 0;
    qentry *e = &jm->queue[jm->qhead];
    uint64_t limit = td_budget_limit();
    if (limit && e->bytes > limit) e->bytes = limit;
    return td_budget_reserve(e->bytes);
}

static void budget_released(void *arg)
{
    td_jobs *jm = arg;
    pthread_mutex_lock(&jm->mu);
    pthread_cond_broadcast(&jm->work);
    pthread_mutex_unlock(&jm->mu);
}

/* ---- one job ---------------------------------------------------------------------- */

typedef struct job_ctx {
    td_jobs *jm;
    int slot;
    const char *id;
    td_trainer *t;
    void *snap;
    size_t snap_cap;
    int64_t ckpt_epoch;
    td_tail *tail;
    int64_t model_epoch;     /* the epoch of the stored model, -1 when none yet */
    int loss_col;            /* the records' "loss" column, -1 when none */
    td_loss_trace loss;      /* its first, largest and last values, for the warnings */
    int64_t stop_at;         /* > 0: pause at this epoch (a sweep's rung), see below */
    int64_t unsynced_params; /* >= 0: the final model's file is written unsynced, its
                                  * end goes to the committer; -1 otherwise */
    int small;               /* a few microseconds an epoch: one thread */
} job_ctx;

/* Stores the trainer's current weights as the job's model (also done at checkpoints, so
 * GET /model on a running job returns the latest checkpointed weights). */
static td_status put_model(job_ctx *c, td_error *err)
{
    const td_model *m = td_trainer_model(c->t);
    char *meta = td_json_model_meta_string(m);
    if (!meta) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    td_status st = td_store_model_put(c->jm->store, c->id, meta, m->params, m->n_params, err);
    free(meta);
    if (st == TD_OK) c->model_epoch = td_trainer_epoch(c->t);
    return st;
}

/* The final model of a job that stored none yet (no checkpoint came): its file is written
 * without fsync, and the committer makes it durable and records the end with it. */
static td_status put_model_unsynced(job_ctx *c)
{
    const td_model *m = td_trainer_model(c->t);
    char *meta = td_json_model_meta_string(m);
    if (!meta) return TD_ENOMEM;
    td_status st =
        td_store_model_write_unsynced(c->jm->store, c->id, meta, m->params, m->n_params, NULL);
    free(meta);
    if (st == TD_OK) c->unsynced_params = m->n_params;
    return st;
}

/* Commits the records the tail holds that the store has not, with the latest one's
 * metrics for the job row. */
static td_status flush(job_ctx *c, td_error *err)
{
    int ncols;
    const char *const *names = td_tail_columns(c->tail, &ncols);
    td_tail_view v;
    td_tail_view_get(c->tail, &v);
    if (v.hi <= v.committed) return TD_OK;
    double rec[TD_HIST_MAX_COLS];
    char *metrics =
        td_tail_row(c->tail, v.hi, rec) ? td_json_metrics_string(names, rec, ncols) : NULL;
    td_status st = td_tail_flush(c->tail, metrics, td_mono_s(), err);
    free(metrics);
    return st;
}

static size_t snapshot(job_ctx *c) { return td_trainer_save(c->t, c->snap, c->snap_cap); }

/* Below this many values of X (64 KiB) an epoch is a few microseconds of work: waking a
 * pool thread costs more than it saves (W8), so such a job trains on its own thread. */
#define SMALL_JOB_VALUES 16384

static int threads_for_job(td_jobs *jm, int small)
{
    if (small) return 1;
    pthread_mutex_lock(&jm->mu);
    int n = jm->o.cores / (jm->nrunning > 0 ? jm->nrunning : 1);
    pthread_mutex_unlock(&jm->mu);
    return n < 1 ? 1 : n;
}


/* The end of a job whose write failed with st: failed, unless it was refused for lack of
 * space and the manager is stopping (then it stays running and resumes at the next start). */
static td_job_state stopped_or_failed(td_jobs *jm, td_status st)
{
    return st == TD_ENOSPACE && td_jobs_stopping_within(jm, 0) ? TD_JOB_RUNNING : TD_JOB_FAILED;
}

/* After attempt `attempt` (from 1) of a running job's write failed with st: a lack of
 * space is reported to the reserve and, while attempts remain, waited out (0.25 s, then
 * doubling) unless the manager stops meanwhile. 1 when the write should be tried again. */
static int retry_write(td_jobs *jm, td_status st, const td_error *err, int attempt)
{
    if (td_reserve_note(jm->o.reserve, st, err) != TD_ENOSPACE || attempt >= COMMIT_TRIES) return 0;
    return !td_jobs_stopping_within(jm, 250 << (attempt - 1));
}

/* Test hook (see td_jobs_start): the process aborts inside a job, as a crash would,
 * once it has trained fault_abort_after epochs. */
static void fault_abort_point(td_jobs *jm)
{
    pthread_mutex_lock(&jm->mu);
    int hit = jm->fault_abort_after > 0 && jm->epochs >= jm->fault_abort_after;
    pthread_mutex_unlock(&jm->mu);
    if (hit) {
        td_log(TD_LOG_ERROR, "jobs",
               "TD_FAULT_ABORT_IN_JOB: aborting the process inside a "
               "job (test hook)");
        abort();
    }
}

/* Flushes the history tail, then checkpoints the trainer's current epoch unless the
 * recorded checkpoint has it already, and stores its weights as the model. */
static td_status checkpoint_now(job_ctx *c, td_error *err)
{
    int64_t e = td_trainer_epoch(c->t);
    td_status fst = flush(c, err); /* a checkpoint comes after the records up to its epoch */
    if (fst || e <= c->ckpt_epoch || e == 0) return fst;
    size_t len = snapshot(c);
    td_status st = td_store_checkpoint_save(c->jm->store, c->id, e, c->snap, len, err);
    if (st == TD_OK) {
        c->ckpt_epoch = e;
        put_model(c, NULL);
    }
    return st;
}

/* Finds the "loss" column and starts its trace; a resumed job replays the stored records
 * up to its checkpoint. */
static void loss_trace_start(job_ctx *c, const char *const *names, int ncols)
{
    td_loss_trace_init(&c->loss);
    c->loss_col = -1;
    for (int i = 0; i < ncols; i++)
        if (strcmp(names[i], "loss") == 0) c->loss_col = i;
    td_history h;
    if (c->loss_col < 0 || c->ckpt_epoch <= 0 ||
        td_store_history_get(c->jm->store, c->id, 0, &h, NULL) != TD_OK)
        return;
    for (int k = 0; k < h.n_cols; k++)
        if (strcmp(h.names[k], "loss") == 0)
            for (int64_t i = 0; i < h.n_rows; i++)
                td_loss_trace_add(&c->loss, h.cols[(int64_t)k * h.n_rows + i]);
    td_history_fini(&h);
}

/* The finished run's warnings (train.h) into the job; a failure to record them is logged,
 * never the job's. */
static void record_warnings(job_ctx *c, const td_hparams *hp, const td_dataset *train)
{
    td_warning w[TD_MAX_WARNINGS];
    int n = 0;
    td_train_warnings(w, &n, hp, train, td_trainer_model(c->t), &c->loss);
    if (n == 0) return;
    char *json = td_json_warnings(w, n);
    td_error err = {0};
    if (!json || td_store_job_set_warnings(c->jm->store, c->id, json, &err) != TD_OK)
        td_log(TD_LOG_WARN, "jobs", "job %s: its warnings were not recorded: %s", c->id,
               json ? err.message : "out of memory");
    for (int i = 0; i < n; i++)
        td_log(TD_LOG_INFO, "jobs", "job %s warning %s: %s", c->id, w[i].code, w[i].message);
    free(json);
}

/* Trains until done, cancelled, stopped or failed. Returns the terminal state to record,
 * or TD_JOB_RUNNING when the daemon is stopping (the job resumes at the next start; so
 * does a job whose write was still refused for lack of space when the stop came), or
 * TD_JOB_QUEUED when it reached its stop_at epoch: it is then checkpointed at exactly that
 * epoch, to be paused (td_store_job_pause) and continued later by its sweep. */
static td_job_state train_loop(job_ctx *c, td_error *err, td_status *st_out)
{
    td_jobs *jm = c->jm;
    double last_ckpt = td_mono_s();
    td_status st = TD_OK;
    for (;;) {
        if (td_trainer_done(c->t)) {
            /* (not with a shared store: a hand-off lets go of the lease before the end is
             * recorded, and another daemon would take the job meanwhile) */
            if (c->model_epoch < 0 && !jm->shared && put_model_unsynced(c) == TD_OK)
                c->model_epoch = td_trainer_epoch(c->t);
            if (c->model_epoch != td_trainer_epoch(c->t)) /* else stored at the checkpoint */
                for (int attempt = 1; (st = put_model(c, err)); attempt++)
                    if (!retry_write(jm, st, err, attempt)) break;
            *st_out = st;
            return st == TD_OK ? TD_JOB_SUCCEEDED : stopped_or_failed(jm, st);
        }
        pthread_mutex_lock(&jm->mu);
        int cancel = jm->run[c->slot].cancel, stopping = jm->stopping;
        pthread_mutex_unlock(&jm->mu);
        if (cancel) {
            flush(c, NULL);
            put_model(c, NULL);
            return TD_JOB_CANCELLED;
        }
        if (stopping) {
            *st_out = checkpoint_now(c, err);
            return TD_JOB_RUNNING;
        }
        if (c->stop_at > 0 && td_trainer_epoch(c->t) >= c->stop_at) {
            *st_out = st = checkpoint_now(c, err);
            return st == TD_OK ? TD_JOB_QUEUED : stopped_or_failed(jm, st);
        }
        td_trainer_set_threads(c->t, threads_for_job(jm, c->small));
        td_record rec;
        st = td_trainer_step(c->t, &rec, err);
        if (st) {
            flush(c, NULL);     /* the epochs before this one */
            put_model(c, NULL); /* the last finite weights */
            *st_out = st;
            return TD_JOB_FAILED;
        }
        int64_t e = td_trainer_epoch(c->t);
        if (c->loss_col >= 0) td_loss_trace_add(&c->loss, rec.v[c->loss_col]);
        td_tail_append(c->tail, e, rec.v);
        double now = td_mono_s();
        /* no checkpoint at the last epoch: the end follows at once, with the model (if
         * the end cannot be recorded, the job resumes from its last checkpoint and
         * computes the same weights again) */
        int done = td_trainer_done(c->t);
        int due = (!done && now - last_ckpt >= jm->o.checkpoint_interval_s) ||
            (c->stop_at > 0 && e >= c->stop_at);
        if (due || done || td_tail_flush_due(c->tail, now)) {
            /* a checkpoint is recorded after the records up to its epoch (store.h); records
             * whose commit failed stay pending for the next attempt (tail.h) */
            for (int attempt = 1; (st = flush(c, err)); attempt++)
                if (!retry_write(jm, st, err, attempt)) break;
            if (st) {
                *st_out = st;
                return stopped_or_failed(jm, st);
            }
        }
        if (due) {
            size_t len = snapshot(c);
            for (int attempt = 1;
                 (st = td_store_checkpoint_save(jm->store, c->id, e, c->snap, len, err)); attempt++)
                if (!retry_write(jm, st, err, attempt)) break;
            if (st) {
                *st_out = st;
                return stopped_or_failed(jm, st);
            }
            c->ckpt_epoch = e;
            last_ckpt = td_mono_s();
            put_model(c, NULL);
        }
        pthread_mutex_lock(&jm->mu);
        jm->epochs++;
        jm->samples += td_trainer_rows(c->t);
        pthread_mutex_unlock(&jm->mu);
        fault_abort_point(jm);
    }
}

/* 1 once the manager is stopping; waits up to ms for it. */
int td_jobs_stopping_within(td_jobs *jm, int ms)
{
    for (int waited = 0;; waited += 100) {
        pthread_mutex_lock(&jm->mu);
        int stopping = jm->stopping;
        pthread_mutex_unlock(&jm->mu);
        if (stopping || waited >= ms) return stopping;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* An end to record: a terminal state, or the pause (TD_JOB_QUEUED). */
typedef struct {
    const char *id;
    td_job_state final;
    const char *code, *msg;
} job_end;

/* One attempt at recording the end a (a job_end). */
static td_status end_once(td_jobs *jm, const void *a, td_error *err)
{
    const job_end *e = a;
    if (e->final == TD_JOB_QUEUED) return td_store_job_pause(jm->store, e->id, err);
    return td_store_job_finish(jm->store, e->id, e->final, e->code, e->msg, err);
}

/* Records an end by once(jm, arg) (a job's, or the committer's batch): a write refused for
 * lack of space releases the reserve (store/reserve.h) and is tried again at once; a
 * storage failure (a full disk, a read-only or locked database: TD_EIO, TD_ENOSPACE) is
 * logged once ("<what> failed: ...; retrying") and tried again after 0.25, 0.5, 1, 2 and
 * 4 s, unless the manager stops meanwhile. Returns the last attempt's status; *attempts
 * gets how many were made. */
td_status td_jobs_record_end(td_jobs *jm, td_status (*once)(td_jobs *, const void *, td_error *),
                             const void *arg, const char *what, int *attempts, td_error *err)
{
    td_status st = TD_EIO;
    int attempt = 1;
    for (;; attempt++) {
        st = once(jm, arg, err);
        if (td_reserve_release(jm->o.reserve, st, err)) st = once(jm, arg, err);
        if (st != TD_EIO && st != TD_ENOSPACE) /* done, or gone (deleted) / already terminal */
            break;
        if (attempt == 1)
            td_log(TD_LOG_ERROR, "jobs", "%s failed: %s; retrying", what, err->message);
        if (attempt == END_TRIES || td_jobs_stopping_within(jm, 250 << (attempt - 1))) break;
    }
    *attempts = attempt;
    return st;
}

/* Records the job's terminal state (or its pause, final TD_JOB_QUEUED), retried as
 * td_jobs_record_end says; 1 when recorded. A recorded terminal state has cleared the
 * job's live mark with it. If the end is still not recorded (or the daemon stops
 * meanwhile), the worker gives the job up: it stays "running" in the store with no worker,
 * and the next start resumes it from its checkpoint. */
static int record_end(td_jobs *jm, const char *id, td_job_state final, const char *code,
                      const char *msg)
{
    td_error ferr = {{0}, {0}};
    const job_end e = {id, final, code, msg};
    char what[TD_ID_MAX + 32];
    snprintf(what, sizeof what, "job %s: recording the end", id);
    int attempts;
    td_status st = td_jobs_record_end(jm, end_once, &e, what, &attempts, &ferr);
    if (st == TD_OK && attempts > 1)
        td_log(TD_LOG_INFO, "jobs", "job %s: its end is recorded (attempt %d)", id, attempts);
    if (st != TD_EIO && st != TD_ENOSPACE) return st == TD_OK;
    td_log(TD_LOG_ERROR, "jobs",
           "job %s: its end (%s) is not recorded (%s): it stays running in "
           "the store, and the next start resumes it",
           id, td_job_state_name(final), ferr.message);
    return 0;
}

/* While state_dir is full (store/reserve.h) a job waits to start, probing once a second,
 * rather than fail at its first write: queued work survives a full disk. 0 when the
 * manager stops meanwhile (the job stays queued for the next start). */
static int wait_for_room(td_jobs *jm, int slot, const char *id)
{
    int logged = 0;
    while (td_reserve_check(jm->o.reserve, NULL) == TD_ENOSPACE) {
        pthread_mutex_lock(&jm->mu);
        int cancel = jm->run[slot].cancel;
        pthread_mutex_unlock(&jm->mu);
        if (cancel) /* the start finds it cancelled */
            return 1;
        if (!logged++)
            td_log(TD_LOG_INFO, "jobs", "job %s waits for room in state_dir to start", id);
        if (td_jobs_stopping_within(jm, 1000)) return 0;
    }
    return 1;
}

/* Sets or clears the job's live mark (td_store_job_set_live); returns 1 when it is set.
 * A failure is logged, not fatal: the job runs, only its crash count is not kept. */
int td_jobs_mark_live(td_jobs *jm, const char *id, int live)
{
    td_error err = {{0}, {0}};
    if (td_store_job_set_live(jm->store, id, live, &err) == TD_OK) return live;
    td_log(TD_LOG_WARN, "jobs", "job %s: cannot %s its live mark: %s", id, live ? "set" : "clear",
           err.message);
    return 0;
}

/* A checkpoint written by a build with another fingerprint ("" = unknown: written before
 * checkpoints carried one) resumes, but the job says its run is no longer bit-identical
 * to an uninterrupted one: a log line and the job's resumed_on_different_build flag. */
static void note_build_change(td_jobs *jm, const char *id, const char *built_by)
{
    if (strcmp(built_by, jm->fingerprint) == 0) return;
    td_log(TD_LOG_WARN, "jobs",
           "job %s resumes from a checkpoint of a different build (%s; "
           "this build: %s): it continues, but its results may differ from an uninterrupted "
           "run",
           id, built_by[0] ? built_by : "unknown", jm->fingerprint);
    td_error err = {{0}, {0}};
    if (td_store_job_mark_different_build(jm->store, id, &err))
        td_log(TD_LOG_WARN, "jobs", "job %s: cannot record the build change: %s", id, err.message);
}

/* Fails (code "crashed") every unfinished job the daemon died running MAX_CRASHES
 * times; the others count one more crash and resume. */
td_status td_jobs_reap_crashed(td_jobs *jm, td_error *err)
{
    td_job_row *rows = NULL;
    int n = 0;
    td_status st = td_store_job_reap_crashed(jm->store, MAX_CRASHES, &rows, &n, err);
    for (int i = 0; i < n; i++)
        td_log(TD_LOG_ERROR, "jobs", "job %s failed: %s", rows[i].id, rows[i].error_message);
    td_job_rows_free(rows, n);
    return st;
}

static void run_job(td_jobs *jm, int slot, const char *id)
{
    td_error err = {{0}, {0}};
    td_job_row row = {0};
    td_stored_dataset train = {0}, val = {0};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    job_ctx c = {.jm = jm,
                 .slot = slot,
                 .id = id,
                 .model_epoch = -1,
                 .unsynced_params = -1,
                 .loss_col = -1,
                 .loss = {NAN, NAN, NAN}};
    void *ckpt = NULL;
    td_job_state final = TD_JOB_FAILED;
    int live = jm->shared; /* a claim marked it live already: every way out clears it */

    if (!wait_for_room(jm, slot, id)) /* stopping: it stays queued */
        goto out;
    td_status st = td_store_job_claim(jm->store, id, &row, &err); /* with its live mark */
    if (st == TD_ECONFLICT)                                       /* cancelled while queued */
        goto out;
    if (st == TD_ENOTFOUND) /* deleted meanwhile */
        goto out;
    if (st) { /* storage: fail it (recorded once the store takes writes again) */
        td_log(TD_LOG_ERROR, "jobs", "job %s could not start: %s", id, err.message);
        goto done;
    }
    td_log(TD_LOG_INFO, "jobs", "job %s running (%s, restarts %lld)", id, row.model,
           (long long)row.restarts);
    live = 1;
    if (row.cancel_requested) { /* accepted before a crash: it still holds */
        pthread_mutex_lock(&jm->mu);
        jm->run[slot].cancel = 1;
        pthread_mutex_unlock(&jm->mu);
    }
    notify(jm);
    if ((st = td_store_dataset_load(jm->store, row.dataset, &train, &err))) goto done;
    if (row.validation[0] && (st = td_store_dataset_load(jm->store, row.validation, &val, &err)))
        goto done;
    if ((st = td_job_decode_hparams(&hp, row.model, row.hyperparameters, &train.ds, &err)))
        goto done;
    if ((st = td_trainer_create(&c.t, &hp, &train.ds, row.validation[0] ? &val.ds : NULL, &err)))
        goto done;
    int ncols;
    const char *const *names = td_trainer_columns(c.t, &ncols);
    if ((st = td_store_history_columns_set(jm->store, id, names, ncols, &err))) goto done;
    c.stop_at = row.stop_at_epoch;
    c.small = train.ds.N * train.ds.D < SMALL_JOB_VALUES;
    c.snap_cap = td_trainer_state_size(c.t);
    if (!(c.snap = malloc(c.snap_cap))) {
        st = td_fail(&err, TD_ENOMEM, NULL, "out of memory for the checkpoint buffer");
        goto done;
    }
    size_t len;
    char built_by[TD_BLOB_TAG_MAX + 1];
    st = td_store_checkpoint_load_tagged(jm->store, id, &ckpt, &len, &c.ckpt_epoch, built_by,
                                         sizeof built_by, &err);
    if (st == TD_OK) {
        if ((st = td_trainer_restore(c.t, ckpt, len, &err))) goto done;
        td_log(TD_LOG_INFO, "jobs", "job %s resumes at epoch %lld", id, (long long)c.ckpt_epoch);
        note_build_change(jm, id, built_by);
    } else if (st == TD_ENOTFOUND) {
        c.ckpt_epoch = 0;
    } else {
        goto done;
    }
    /* a job's epoch is its last recorded one, so without records past the checkpoint
     * there is nothing to truncate (a new job) */
    if (row.epoch > c.ckpt_epoch &&
        (st = td_store_history_truncate(jm->store, id, c.ckpt_epoch, &err)))
        goto done;
    loss_trace_start(&c, names, ncols);
    if ((st = td_tail_create(&c.tail, jm->store, id, names, ncols, row.epochs, c.ckpt_epoch,
                             jm->o.history_max_rows, &err)))
        goto done;
    pthread_mutex_lock(&jm->mu);
    jm->run[slot].tail = c.tail;
    td_jobs_notify_locked(jm); /* watchers waiting for it to train */
    pthread_mutex_unlock(&jm->mu);
    st = TD_OK;
    final = train_loop(&c, &err, &st);
done:
    if (final == TD_JOB_RUNNING && st != TD_OK) {
        td_log(TD_LOG_WARN, "jobs",
               "job %s: the checkpoint for shutdown failed (%s): it "
               "resumes from epoch %lld",
               id, err.message, (long long)c.ckpt_epoch);
    } else if (final == TD_JOB_RUNNING) {
        td_log(TD_LOG_INFO, "jobs", "job %s checkpointed at epoch %lld for shutdown", id,
               (long long)(c.t ? td_trainer_epoch(c.t) : 0));
    } else if (final == TD_JOB_QUEUED) {
        td_log(TD_LOG_INFO, "jobs", "job %s paused at epoch %lld for its sweep", id,
               (long long)c.ckpt_epoch);
        record_end(jm, id, final, NULL, NULL);
    } else {
        if (final == TD_JOB_FAILED && st == TD_OK) st = TD_EINTERNAL;
        const char *code = final == TD_JOB_FAILED ? td_status_code(st) : NULL;
        const char *msg = final == TD_JOB_FAILED ? err.message : NULL;
        td_log(final == TD_JOB_FAILED ? TD_LOG_WARN : TD_LOG_INFO, "jobs", "job %s %s%s%s", id,
               td_job_state_name(final), msg ? ": " : "", msg ? msg : "");
        if (c.t) record_warnings(&c, &hp, &train.ds);
        if (final == TD_JOB_SUCCEEDED && c.unsynced_params >= 0) {
            if (td_jobs_hand_off(jm, id, c.unsynced_params))
                live = 0; /* the committer's end clears it */
        } else if (record_end(jm, id, final, code, msg))
            live = 0; /* the end cleared it */
    }
out:
    if (live) /* let go cleanly: ended, or checkpointed for a shutdown */
        td_jobs_mark_live(jm, id, 0);
    if (c.tail) { /* everything is flushed and the end recorded: readers go to the store */
        td_tail_close(c.tail);
        pthread_mutex_lock(&jm->mu);
        jm->run[slot].tail = NULL;
        pthread_mutex_unlock(&jm->mu);
        td_tail_release(c.tail);
    }
    free(ckpt);
    free(c.snap);
    td_trainer_destroy(c.t);
    td_hparams_fini(&hp);
    td_stored_dataset_fini(&train);
    td_stored_dataset_fini(&val);
    td_job_row_fini(&row);
    notify(jm);
}

typedef struct worker_arg {
    td_jobs *jm;
    int slot;
} worker_arg;

static void *worker(void *arg)
{
    td_jobs *jm = ((worker_arg *)arg)->jm;
    int slot = ((worker_arg *)arg)->slot;
    free(arg);
    /* best effort: a lower priority for this thread and the threads it creates */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), TRAIN_NICE) != 0)
        td_log(TD_LOG_DEBUG, "jobs", "training threads keep the default priority");
    pthread_mutex_lock(&jm->mu);
    for (;;) {
        while (!jm->stopping && !jm->shared && !admit_locked(jm))
            pthread_cond_wait(&jm->work, &jm->mu);
        if (jm->stopping)
            break; /* (admit_locked reserved nothing: it is not called once stopping) */
        char id[TD_ID_MAX];
        uint64_t bytes;
        if (jm->shared) {
            if (!td_jobs_claim(jm, id, &bytes)) continue;
        } else {
            memcpy(id, jm->queue[jm->qhead].id, TD_ID_MAX);
            bytes = jm->queue[jm->qhead].bytes;
            jm->qhead = (jm->qhead + 1) % jm->qcap;
            jm->qlen--;
            pthread_cond_signal(&jm->room);
        }
        memcpy(jm->run[slot].id, id, TD_ID_MAX);
        jm->run[slot].cancel = 0;
        jm->nrunning++;
        pthread_mutex_unlock(&jm->mu);
        run_job(jm, slot, id);
        td_budget_release(bytes); /* wakes the workers: the next job may fit */
        pthread_mutex_lock(&jm->mu);
        jm->run[slot].id[0] = '\0';
        jm->nrunning--;
    }
    pthread_mutex_unlock(&jm->mu);
    return NULL;
}

/* The memory estimate of a job found in the store at start-up (as td_jobs_job_bytes);
 * 0 when it cannot be made (its run then fails with the reason). */
static uint64_t recovered_bytes(td_jobs *jm, const td_job_row *row)
{
    td_stored_dataset train = {0}, val = {0};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    uint64_t bytes = 0;
    int64_t K;
    const td_dataset *v = row->validation[0] ? &val.ds : NULL;
    if (td_store_dataset_load(jm->store, row->dataset, &train, NULL) == TD_OK &&
        (!v || td_store_dataset_load(jm->store, row->validation, &val, NULL) == TD_OK) &&
        td_job_decode_hparams(&hp, row->model, row->hyperparameters, &train.ds, NULL) == TD_OK &&
        td_trainer_check(&hp, &train.ds, v, &K, NULL) == TD_OK)
        bytes = td_jobs_job_bytes(&hp, &train, v ? &val : NULL, K, jm->o.cores);
    td_hparams_fini(&hp);
    td_stored_dataset_fini(&train);
    td_stored_dataset_fini(&val);
    return bytes;
}

/* ---- public ------------------------------------------------------------------------ */

uint64_t td_jobs_job_bytes(const td_hparams *hp, const td_stored_dataset *train,
                           const td_stored_dataset *val, int64_t K, int cores)
{
    /* The datasets are not counted: every job reads the one shared read-only mapping of
     * each (store.h), file-backed pages the kernel can drop and reread, not a copy. */
    return td_train_memory_estimate(hp, &train->ds, val ? &val->ds : NULL, K, cores);
}

td_status td_jobs_start(td_jobs **out, td_store *store, const td_jobs_opts *o, td_error *err)
{
    *out = NULL;
    td_jobs *jm = calloc(1, sizeof *jm);
    if (!jm) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    jm->store = store;
    jm->o = *o;
    /* now, not at the first job's first product: making OpenBLAS single-threaded wakes
     * its server thread, which then spins on a core for a while (~0.1 s) */
    td_blas_init();
    if (jm->o.workers < 1) jm->o.workers = 1;
    if (jm->o.cores < 1) jm->o.cores = 1;
    pthread_mutex_init(&jm->mu, NULL);
    pthread_cond_init(&jm->work, NULL);
    pthread_condattr_t ca; /* timed waits on the monotonic clock: immune to clock changes */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&jm->changed, &ca);
    pthread_cond_init(&jm->room, &ca);
    pthread_cond_init(&jm->ends_cv, NULL);
    pthread_condattr_destroy(&ca);
    /* test hook (README, Hardening): another build's fingerprint, without rebuilding */
    const char *fp = getenv("TD_TEST_BUILD_FINGERPRINT");
    snprintf(jm->fingerprint, sizeof jm->fingerprint, "%s",
             fp && *fp ? fp : td_numeric_fingerprint());
    td_store_set_build_tag(store, jm->fingerprint);
    td_log(TD_LOG_INFO, "jobs", "build fingerprint: %s", jm->fingerprint);
    const char *fault = getenv("TD_FAULT_ABORT_IN_JOB"); /* test hook: README, Hardening */
    if (fault && *fault) {
        jm->fault_abort_after = atoll(fault) > 0 ? atoll(fault) : 1;
        td_log(TD_LOG_WARN, "jobs",
               "test hook TD_FAULT_ABORT_IN_JOB is set: the process "
               "aborts after %lld trained epochs",
               (long long)jm->fault_abort_after);
    }
    td_job_row *rows = NULL;
    int n = 0;
    jm->shared = td_store_shared(store);
    if (jm->shared) {
        if (jm->o.lease_s < 2) jm->o.lease_s = 15;
        td_store_set_node(store, jm->o.node[0] ? jm->o.node : "traind", jm->o.lease_s);
        td_log(TD_LOG_INFO, "jobs", "shared store: node %s, lease %d s", jm->o.node, jm->o.lease_s);
    }
    td_status st = td_jobs_reap_crashed(jm, err);
    if (st == TD_OK && !jm->shared) /* a shared store's jobs are claimed, not queued */
        st = td_store_job_list_active(store, &rows, &n, err);
    if (st) {
        td_jobs_destroy(jm);
        return st;
    }
    for (int i = 0; i < n && !st; i++)
        st = push_locked(jm, rows[i].id, recovered_bytes(jm, &rows[i]));
    td_job_rows_free(rows, n);
    if (n > 0) td_log(TD_LOG_INFO, "jobs", "recovered %d unfinished job(s)", n);
    td_budget_on_release(budget_released, jm);
    jm->run = calloc((size_t)jm->o.workers, sizeof *jm->run);
    jm->threads = calloc((size_t)jm->o.workers, sizeof *jm->threads);
    if (st || !jm->run || !jm->threads) {
        td_jobs_destroy(jm);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    }
    if (pthread_create(&jm->committer, NULL, td_jobs_committer, jm) != 0) {
        td_jobs_destroy(jm);
        return td_fail(err, TD_ENOMEM, NULL, "cannot start the committer thread");
    }
    jm->committer_started = 1;
    for (int i = 0; i < jm->o.workers; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a) a->jm = jm, a->slot = i;
        if (!a || pthread_create(&jm->threads[i], NULL, worker, a) != 0) {
            free(a);
            td_jobs_stop(jm);
            td_jobs_destroy(jm);
            return td_fail(err, TD_ENOMEM, NULL, "cannot start worker threads");
        }
        jm->nthreads++;
    }
    if (jm->shared) {
        if (pthread_create(&jm->heartbeat, NULL, td_jobs_heartbeat, jm) != 0) {
            td_jobs_stop(jm);
            td_jobs_destroy(jm);
            return td_fail(err, TD_ENOMEM, NULL, "cannot start the heartbeat thread");
        }
        jm->hb_started = 1;
    }
    *out = jm;
    return TD_OK;
}

/* Stops helper thread th when *started: *stop = 1 under mu, cv woken, th joined. */
static void stop_helper(td_jobs *jm, pthread_t th, int *started, int *stop, pthread_cond_t *cv)
{
    if (!*started) return;
    pthread_mutex_lock(&jm->mu);
    *stop = 1;
    pthread_cond_broadcast(cv);
    pthread_mutex_unlock(&jm->mu);
    pthread_join(th, NULL);
    *started = 0;
}

void td_jobs_stop(td_jobs *jm)
{
    if (!jm) return;
    pthread_mutex_lock(&jm->mu);
    if (jm->stopping) {
        pthread_mutex_unlock(&jm->mu);
        return;
    }
    jm->stopping = 1;
    pthread_cond_broadcast(&jm->work);
    pthread_cond_broadcast(&jm->room);
    td_jobs_notify_locked(jm);
    pthread_mutex_unlock(&jm->mu);
    for (int i = 0; i < jm->nthreads; i++)
        pthread_join(jm->threads[i], NULL);
    /* the committer after the workers: it records every end they handed */
    stop_helper(jm, jm->committer, &jm->committer_started, &jm->ends_stop, &jm->ends_cv);
    /* the heartbeat after the workers and the committer: leases hold until then */
    stop_helper(jm, jm->heartbeat, &jm->hb_started, &jm->hb_stop, &jm->changed);
}

void td_jobs_destroy(td_jobs *jm)
{
    if (!jm) return;
    td_jobs_stop(jm);
    td_budget_on_release(NULL, NULL);
    free(jm->queue);
    free(jm->threads);
    free(jm->run);
    pthread_mutex_destroy(&jm->mu);
    pthread_cond_destroy(&jm->work);
    pthread_cond_destroy(&jm->changed);
    pthread_cond_destroy(&jm->room);
    pthread_cond_destroy(&jm->ends_cv);
    free(jm->end_ids);
    free(jm->end_params);
    free(jm);
}

/* TD_OK when the queue has a place for one more job. A full queue is waited on for up to
 * ROOM_WAIT_MS (woken by the worker that pops a job, not polled): a burst of submissions
 * then queues behind the workers instead of spinning on 429s. Caller holds mu. */
static td_status room_locked(td_jobs *jm, td_error *err)
{
    struct timespec deadline = td_deadline(CLOCK_MONOTONIC, ROOM_WAIT_MS);
    while (!jm->stopping && !jm->shared && jm->qlen + jm->inserting >= jm->o.max_queued)
        if (pthread_cond_timedwait(&jm->room, &jm->mu, &deadline) != 0) break;
    if (jm->stopping) return td_fail(err, TD_ESHUTDOWN, NULL, "the daemon is shutting down");
    if (!jm->shared && jm->qlen + jm->inserting >= jm->o.max_queued) /* shared: the store's */
        return td_fail(err, TD_EBUSY, NULL,
                       "the queue is full (%d jobs waiting, max_queued_jobs = %d); retry later",
                       jm->qlen + jm->inserting, jm->o.max_queued);
    return TD_OK;
}

/* Takes a place under the queue bound for a job the store is about to make queued. */
static td_status take_place(td_jobs *jm, td_error *err)
{
    pthread_mutex_lock(&jm->mu);
    td_status st = room_locked(jm, err);
    if (st == TD_OK) jm->inserting++; /* our place under the bound while the store inserts */
    pthread_mutex_unlock(&jm->mu);
    return st;
}

td_status td_jobs_check_room(td_jobs *jm, td_error *err)
{
    pthread_mutex_lock(&jm->mu);
    td_status st = room_locked(jm, err);
    pthread_mutex_unlock(&jm->mu);
    return st;
}

/* Gives the place back and, when the store call succeeded (st), queues id. */
static td_status fill_place(td_jobs *jm, td_status st, const char *id, uint64_t mem_bytes,
                            td_error *err)
{
    pthread_mutex_lock(&jm->mu);
    jm->inserting--;
    if (st == TD_OK && jm->shared) /* in the store's queue: an idle worker claims it now */
        pthread_cond_broadcast(&jm->work);
    else if (st == TD_OK && (st = push_locked(jm, id, mem_bytes)))
        td_fail(err, st, NULL, "out of memory");
    if (st == TD_OK) td_jobs_notify_locked(jm);
    pthread_mutex_unlock(&jm->mu);
    return st;
}

td_status td_jobs_submit(td_jobs *jm, const td_job_spec *spec, uint64_t mem_bytes,
                         char id_out[TD_ID_MAX], td_error *err)
{
    td_status st = take_place(jm, err);
    if (st) return st;
    td_job_spec sp = *spec;
    sp.mem_bytes = mem_bytes;                          /* a shared store's admission */
    sp.max_queued = jm->shared ? jm->o.max_queued : 0; /* and its cluster-wide bound */
    st = td_store_job_insert(jm->store, &sp, id_out, err);
    return fill_place(jm, st, id_out, mem_bytes, err);
}

td_status td_jobs_continue(td_jobs *jm, const char *id, int64_t stop_at, uint64_t mem_bytes,
                           td_error *err)
{
    td_status st = take_place(jm, err);
    if (st) return st;
    st = td_store_job_continue(jm->store, id, stop_at, err);
    return fill_place(jm, st, id, mem_bytes, err);
}

void td_jobs_poke(td_jobs *jm) { notify(jm); }

td_status td_jobs_cancel(td_jobs *jm, const char *id, td_job_state *state_after, td_error *err)
{
    /* The store decides (atomically) and is the truth; the queue and the running table
     * follow it, updated after, under mu. A worker that pops the job meanwhile finds it
     * cancelled (td_store_job_start: TD_ECONFLICT); one that started it before the store
     * call has it in its slot (set at the pop) by the time we look. */
    td_job_state after;
    td_status st = td_store_job_cancel(jm->store, id, &after, err);
    pthread_mutex_lock(&jm->mu);
    if (st == TD_OK) {
        if (after == TD_JOB_CANCELLED) remove_locked(jm, id);
        for (int i = 0; i < jm->nthreads; i++)
            if (strcmp(jm->run[i].id, id) == 0) jm->run[i].cancel = 1;
        td_jobs_notify_locked(jm);
        if (state_after) *state_after = after;
    }
    pthread_mutex_unlock(&jm->mu);
    return st;
}

uint64_t td_jobs_wait_change(td_jobs *jm, uint64_t seen, int timeout_ms)
{
    struct timespec deadline = td_deadline(CLOCK_MONOTONIC, timeout_ms);
    pthread_mutex_lock(&jm->mu);
    while (jm->change == seen && !jm->stopping)
        if (pthread_cond_timedwait(&jm->changed, &jm->mu, &deadline) != 0) break;
    uint64_t now = jm->change;
    pthread_mutex_unlock(&jm->mu);
    return now;
}

td_tail *td_jobs_tail(td_jobs *jm, const char *id)
{
    td_tail *t = NULL;
    pthread_mutex_lock(&jm->mu);
    for (int i = 0; i < jm->nthreads && !t; i++)
        if (jm->run[i].tail && strcmp(jm->run[i].id, id) == 0) {
            t = jm->run[i].tail;
            td_tail_retain(t);
        }
    pthread_mutex_unlock(&jm->mu);
    return t;
}

void td_jobs_stats_get(td_jobs *jm, td_jobs_stats *out)
{
    pthread_mutex_lock(&jm->mu);
    out->queued = jm->qlen;
    out->running = jm->nrunning;
    out->samples_trained = jm->samples;
    out->epochs_trained = jm->epochs;
    out->workers_alive = jm->stopping ? 0 : jm->nthreads;
    out->accepting = !jm->stopping;
    pthread_mutex_unlock(&jm->mu);
}
