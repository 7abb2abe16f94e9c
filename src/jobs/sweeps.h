/* sweeps.h — the sweep scheduler (issue 18): releases a sweep's trials to the job queue a
 * few at a time and runs successive halving's rungs.
 *
 * A sweep is a list of trials (store_sweeps.h) fixed at submission; each trial becomes an
 * ordinary job when released. Without a schedule every trial trains its full epochs. With
 * successive halving (min_epochs r, eta η) rung k has the budget B_k = r·η^k epochs (the
 * last rung: the trials' full epochs): every trial alive in rung k trains to B_k and
 * pauses there (a checkpoint at exactly B_k; the job was submitted with the full epochs,
 * so its schedules are those of the full run); once all have, the best max(1, ⌊n/η⌋) by
 * the metric continue from their checkpoints, bit-identically, and the others end
 * succeeded with stopped_early.
 *
 * The store is the truth: every decision is made from the sweep's row and its trials' job
 * rows, and every change is one store transaction, so the scheduler picks up where it was
 * after a restart or a kill -9. At most `window` trials of a sweep are queued or running at
 * once, so a sweep never fills max_queued_jobs (a full queue only delays a release). */
#ifndef TRAIND_JOBS_SWEEPS_H
#define TRAIND_JOBS_SWEEPS_H

#include "jobs/jobs.h"
#include "store/store_sweeps.h"

typedef struct td_sweeps td_sweeps;

/* Starts the scheduler thread. window >= 1. */
td_status td_sweeps_start(td_sweeps **out, td_store *store, td_jobs *jobs, int window,
                          td_error *err);
/* Stops the thread (call before td_jobs_stop) and frees; NULL is fine. */
void td_sweeps_destroy(td_sweeps *sw);
/* Wakes the scheduler (a sweep was submitted or cancelled). */
void td_sweeps_kick(td_sweeps *sw);

/* The budget of rung k: min(epochs, min_epochs·eta^k); epochs without a schedule. */
int64_t td_sweep_rung_epochs(const td_sweep_row *s, int64_t k);
/* The best trial: among the succeeded ones that were not stopped early (or, when there are
 * none, all the succeeded ones), the best metric by the sweep's mode, ties to the lower
 * index; -1 when no trial qualifies with a metric. */
int td_sweep_best(const td_sweep_trial *t, int n, int maximize);

#endif
