/* budget.h — the daemon's memory budget (max_memory_mb).
 *
 * One process-wide account of bytes: the job manager reserves each running job's
 * estimated working memory (td_train_memory_estimate; datasets are shared file mappings,
 * not counted) and the HTTP server
 * reserves each request body while it is buffered and parsed. A reservation that does not
 * fit is refused at once, never waited for: the caller decides (a queued job stays queued,
 * a body gets 503). A listener hears of every release, so the job manager can start a
 * queued job that now fits without polling. Thread-safe; the listener runs with no lock of
 * this module held. */
#ifndef TRAIND_BUDGET_H
#define TRAIND_BUDGET_H

#include <stdint.h>

/* Sets the limit in bytes (0 = unlimited, the default). Reservations already made stay. */
void td_budget_set_limit(uint64_t bytes);
uint64_t td_budget_limit(void);
/* Bytes reserved now. */
uint64_t td_budget_used(void);

/* Reserves bytes when used + bytes fits the limit: 1, else 0 (nothing reserved). */
int td_budget_reserve(uint64_t bytes);
/* Returns bytes of an earlier reservation, then calls the listener. */
void td_budget_release(uint64_t bytes);

/* Sets the one release listener (fn NULL removes it). Returns after any call of the
 * previous listener has finished, so its ctx may be freed then. */
void td_budget_on_release(void (*fn)(void *ctx), void *ctx);

/* Physical memory of the host in bytes (sysconf), 0 when unknown. */
uint64_t td_budget_physical(void);

#endif
