/* pool.h — a fixed set of threads that run numbered tasks.
 *
 * td_pool_run(p, ntasks, fn, ctx) calls fn(ctx, task) once for every task in [0, ntasks)
 * across the pool's threads and the calling thread, and returns when all are done.
 * Which thread runs which task varies; callers that need reproducible results write each
 * task's output into its own slot and reduce the slots in task order afterwards. */
#ifndef TRAIND_POOL_H
#define TRAIND_POOL_H

#include <stdint.h>

typedef struct td_pool td_pool;
typedef void (*td_task_fn)(void *ctx, int64_t task);

/* nthreads >= 1 counts the caller: 1 creates no thread. NULL on allocation failure. */
td_pool *td_pool_create(int nthreads);
void td_pool_destroy(td_pool *p);
/* Makes *p a pool of n threads (n < 1 counts as 1; 1 = NULL, run inline), replacing it
 * only when the count changes. On allocation failure *p is NULL: work runs inline. */
void td_pool_resize(td_pool **p, int n);
int td_pool_threads(const td_pool *p);
/* p may be NULL: the tasks run in order on the calling thread. */
void td_pool_run(td_pool *p, int64_t ntasks, td_task_fn fn, void *ctx);

#endif
