/* pool.c — thread pool for data-parallel loops inside one training job.
 *
 * DESIGN: the pool's threads spin briefly, then sleep on `wake`, until a generation
 * counter moves; tasks are claimed with an atomic counter, so a fast thread takes more of
 * them. The caller takes tasks too and then waits only for the workers that joined this
 * generation (`busy`): a worker that wakes after every task was claimed does not join, so
 * a worker the OS has not scheduled (another process on its core) never holds the caller
 * up. The caller spins briefly on `busy` before it sleeps on `done`: the workers finish
 * within microseconds of its own last task, and each mini-batch step (W2: 391 an epoch)
 * would otherwise pay a futex sleep and wake-up. One
 * td_pool_run at a time per pool (a trainer owns its pool). */
#include "math/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SPINS 20000 /* pause instructions before sleeping: ~1 ms */

struct td_pool {
    int nthreads;       /* including the caller */
    pthread_t *threads; /* (nthreads - 1) */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    _Atomic uint64_t generation;
    atomic_int busy; /* workers that joined the current generation (changed
                                     under mu, read without it by the spinning caller) */
    int stop;
    td_task_fn fn;
    void *ctx;
    int64_t ntasks;
    atomic_llong next;
};

static void drain(td_pool *p)
{
    for (;;) {
        int64_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->ntasks) return;
        p->fn(p->ctx, t);
    }
}

static void *worker(void *arg)
{
    td_pool *p = arg;
    uint64_t seen = 0;
    for (;;) {
        /* Spin briefly first: mini-batch steps come every few tens of microseconds, far
         * less than a sleep/wake round trip costs. */
        for (int spin = 0; spin < SPINS && atomic_load(&p->generation) == seen; spin++)
            __builtin_ia32_pause();
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        if (atomic_load(&p->next) >= p->ntasks) { /* late: every task is taken */
            pthread_mutex_unlock(&p->mu);
            continue;
        }
        p->busy++;
        pthread_mutex_unlock(&p->mu);
        drain(p);
        pthread_mutex_lock(&p->mu);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

td_pool *td_pool_create(int nthreads)
{
    td_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->nthreads = nthreads < 1 ? 1 : nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    if (p->nthreads > 1) {
        p->threads = calloc((size_t)p->nthreads - 1, sizeof *p->threads);
        if (!p->threads) {
            td_pool_destroy(p);
            return NULL;
        }
        for (int i = 0; i < p->nthreads - 1; i++)
            if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
                p->nthreads = i + 1; /* run with the threads we got */
                break;
            }
    }
    return p;
}

void td_pool_destroy(td_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; p->threads && i < p->nthreads - 1; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

void td_pool_resize(td_pool **p, int n)
{
    if (n < 1) n = 1;
    if (td_pool_threads(*p) == n) return;
    td_pool_destroy(*p);
    *p = n > 1 ? td_pool_create(n) : NULL;
}

int td_pool_threads(const td_pool *p) { return p ? p->nthreads : 1; }

void td_pool_run(td_pool *p, int64_t ntasks, td_task_fn fn, void *ctx)
{
    if (!p || p->nthreads == 1 || ntasks <= 1) {
        for (int64_t t = 0; t < ntasks; t++)
            fn(ctx, t);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store(&p->next, 0);
    p->busy = 0;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p);
    for (int spin = 0; spin < SPINS && atomic_load(&p->busy) > 0; spin++)
        __builtin_ia32_pause();
    if (atomic_load(&p->busy) == 0) /* (acquire: the workers' results are visible) */
        return;
    pthread_mutex_lock(&p->mu);
    while (p->busy > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
