/* jobs.h — the job manager: a bounded queue of job ids feeding a pool of worker threads
 * that run trainers, record every epoch (in memory, then in the store in batches: see
 * jobs/tail.h), checkpoint, and resume.
 *
 * The store is the source of truth (a job exists once td_store_job_insert returns); the
 * queue only orders work. At start-up every queued or running job found in the store is
 * queued again, so a restart or kill -9 loses nothing: a running job resumes from its
 * latest checkpoint with history truncated to that epoch, and finishes bit-identically. */
#ifndef TRAIND_JOBS_H
#define TRAIND_JOBS_H

#include <stdint.h>

#include "store/reserve.h"
#include "store/store.h"
#include "traind/hparams.h"
#include "traind/status.h"

typedef struct td_jobs td_jobs;

typedef struct td_jobs_opts {
    int workers;                  /* worker threads (jobs trained at once), >= 1 */
    int cores;                    /* compute threads shared by running jobs, >= 1 */
    int max_queued;               /* queued jobs accepted before TD_EBUSY */
    double checkpoint_interval_s; /* at most this long between checkpoints of a job */
    td_reserve *reserve;          /* state_dir's space reserve (borrowed), or NULL */
    /* A shared store (td_store_shared): workers claim jobs from the store's queue, and a
     * heartbeat renews their leases every lease_s / 3; max_queued holds cluster-wide. */
    char node[TD_NODE_MAX];   /* this daemon's node name */
    int lease_s;              /* 0 = 15 */
    int64_t history_max_rows; /* history records kept per job (store.h); 0 = unbounded */
} td_jobs_opts;

/* Starts the workers and queues the store's unfinished jobs (oldest first). */
td_status td_jobs_start(td_jobs **out, td_store *store, const td_jobs_opts *o, td_error *err);

/* Stops: no new job is taken; running jobs stop at their next epoch boundary, write a
 * checkpoint and stay "running" in the store (they resume at the next start); waits for
 * the workers. Safe to call once; td_jobs_destroy frees. */
void td_jobs_stop(td_jobs *jm);
void td_jobs_destroy(td_jobs *jm);

/* Inserts a job (td_store_job_insert) and queues it. TD_EBUSY when max_queued jobs wait
 * already (nothing inserted), TD_ESHUTDOWN after td_jobs_stop. A duplicate idempotency
 * key gives TD_ECONFLICT with the existing id in id_out (nothing queued). mem_bytes is
 * the job's memory (td_jobs_job_bytes): it starts once that fits the budget
 * (util/budget.h) and stays queued until then, behind no later job. */
td_status td_jobs_submit(td_jobs *jm, const td_job_spec *spec, uint64_t mem_bytes,
                         char id_out[TD_ID_MAX], td_error *err);
/* td_jobs_submit's TD_EBUSY / TD_ESHUTDOWN, without inserting: a request checks it before
 * its costly part (reading the dataset), so a client retrying a 429 costs little. */
td_status td_jobs_check_room(td_jobs *jm, td_error *err);

/* Queues a paused job again (store_sweeps.h: td_store_job_continue) to train up to stop_at
 * (0: to the end), under the same bound as td_jobs_submit (TD_EBUSY: it stays paused).
 * TD_ECONFLICT when the job is no longer paused. */
td_status td_jobs_continue(td_jobs *jm, const char *id, int64_t stop_at, uint64_t mem_bytes,
                           td_error *err);

/* Moves the change counter (wakes td_jobs_wait_change): for the sweep scheduler. */
void td_jobs_poke(td_jobs *jm);

/* A job's memory for admission: its trainer's td_train_memory_estimate with `cores`
 * threads (val may be NULL); K from td_trainer_check. The datasets are not counted: the
 * jobs on a dataset share its read-only file mapping (td_store_dataset_load). */
uint64_t td_jobs_job_bytes(const td_hparams *hp, const td_stored_dataset *train,
                           const td_stored_dataset *val, int64_t K, int cores);

/* Cancels: a queued job at once, a running one at its next epoch boundary. */
td_status td_jobs_cancel(td_jobs *jm, const char *id, td_job_state *state_after, td_error *err);

/* Change notification for watchers (Server-Sent Events): returns the current change
 * counter, waiting up to timeout_ms for it to move past `seen`. Every state change (a job
 * submitted, started, cancelled, ended) moves it; epochs do not (they go to the job's
 * tail: td_jobs_tail). */
uint64_t td_jobs_wait_change(td_jobs *jm, uint64_t seen, int timeout_ms);

/* The in-memory history tail (jobs/tail.h) of job id while this process trains it, with a
 * reference for the caller (td_tail_release it), or NULL. */
struct td_tail *td_jobs_tail(td_jobs *jm, const char *id);

typedef struct td_jobs_stats {
    int64_t queued, running; /* in this process's queue / workers */
    int64_t samples_trained; /* rows processed by finished epochs since start */
    int64_t epochs_trained;
    int workers_alive;
    int accepting;
} td_jobs_stats;
void td_jobs_stats_get(td_jobs *jm, td_jobs_stats *out);

#endif
