/* jobs_impl.h — the job manager's state, shared by jobs.c (queue, workers, a job's life),
 * committer.c (batched ends of small jobs) and lease.c (a shared store's claims and
 * leases). The DESIGN note on threads and on `mu` is at the top of jobs.c. Internal: only
 * src/jobs includes it. */
#ifndef TRAIND_JOBS_IMPL_H
#define TRAIND_JOBS_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "jobs/jobs.h"
#include "jobs/tail.h"
#include "store/blob.h"

#define TRAIN_NICE 10
#define COMMIT_TRIES 4  /* attempts of an epoch's commit or the final model */
#define END_TRIES 6     /* attempts of a job's end */
#define ROOM_WAIT_MS 50 /* a submit finding the queue full waits this long for a place */

typedef struct running {
    char id[TD_ID_MAX]; /* "" when the slot is idle */
    int cancel;
    td_tail *tail; /* the job's history tail once it trains, else NULL */
} running;

typedef struct qentry {
    char id[TD_ID_MAX];
    uint64_t bytes; /* estimated memory, reserved while it runs */
} qentry;

struct td_jobs {
    td_store *store;
    td_jobs_opts o;
    pthread_mutex_t mu;
    pthread_cond_t work, changed;
    pthread_cond_t room; /* the queue got shorter: a submit waiting for a place */
    qentry *queue;       /* ring of qcap jobs */
    int qhead, qlen, qcap;
    int inserting; /* td_jobs_submit calls inserting into the store */
    int stopping;
    pthread_t *threads;
    int nthreads;
    running *run; /* (nthreads) */
    int nrunning;
    uint64_t change;
    int64_t samples, epochs;
    int64_t fault_abort_after; /* test hook TD_FAULT_ABORT_IN_JOB; 0 = off */
    /* ends handed to the committer (see "the committer"): ids and model sizes */
    pthread_cond_t ends_cv;
    char (*end_ids)[TD_ID_MAX];
    int64_t *end_params;
    int nends, ends_cap, ends_stop;
    pthread_t committer;
    int committer_started;
    char fingerprint[TD_BLOB_TAG_MAX + 1]; /* this build's, as checkpoints carry it */
    int shared;                            /* a shared store: claims and leases (see DESIGN) */
    pthread_t heartbeat;
    int hb_started, hb_stop;
};

#define CLAIM_POLL_MS 200

/* Deaths of the daemon while running a job after which the job is failed ("crashed")
 * instead of resumed once more: one bad job cannot keep the service down. */
#define MAX_CRASHES 2

/* jobs.c */
void td_jobs_notify_locked(td_jobs *jm); /* mu held: wake watchers */
int td_jobs_stopping_within(td_jobs *jm, int ms);
int td_jobs_mark_live(td_jobs *jm, const char *id, int live);
td_status td_jobs_reap_crashed(td_jobs *jm, td_error *err);
td_status td_jobs_record_end(td_jobs *jm, td_status (*once)(td_jobs *, const void *, td_error *),
                             const void *arg, const char *what, int *attempts, td_error *err);
/* (their contracts are at their definitions in jobs.c) */

/* committer.c */
/* 1 when the committer has the job's end (and will clear its live mark). */
int td_jobs_hand_off(td_jobs *jm, const char *id, int64_t n_params);
void *td_jobs_committer(void *arg); /* the thread; arg: td_jobs */

/* lease.c (shared store) */
/* mu held (released meanwhile): claims the oldest job that fits the budget into id and
 * *bytes; 1 when one was claimed, else 0 after waiting up to CLAIM_POLL_MS on `work`. */
int td_jobs_claim(td_jobs *jm, char id[TD_ID_MAX], uint64_t *bytes);
void *td_jobs_heartbeat(void *arg); /* the thread; arg: td_jobs */

#endif
