/* budget.c — the memory budget of budget.h.
 *
 * DESIGN (threads): `mu` guards limit, used and the listener; `cb_mu` is held while the
 * listener runs (outside `mu`), so td_budget_on_release can wait for a running call to end
 * and a caller's own locks are never taken under `mu`. */
#include "util/budget.h"

#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cb_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t limit, used;
static void (*listener)(void *);
static void *listener_ctx;

void td_budget_set_limit(uint64_t bytes)
{
    pthread_mutex_lock(&mu);
    limit = bytes;
    pthread_mutex_unlock(&mu);
}

uint64_t td_budget_limit(void)
{
    pthread_mutex_lock(&mu);
    uint64_t v = limit;
    pthread_mutex_unlock(&mu);
    return v;
}

uint64_t td_budget_used(void)
{
    pthread_mutex_lock(&mu);
    uint64_t v = used;
    pthread_mutex_unlock(&mu);
    return v;
}

int td_budget_reserve(uint64_t bytes)
{
    pthread_mutex_lock(&mu);
    int ok = limit == 0 || (bytes <= limit && used <= limit - bytes);
    if (ok) used += bytes;
    pthread_mutex_unlock(&mu);
    return ok;
}

void td_budget_release(uint64_t bytes)
{
    if (bytes == 0) return;
    pthread_mutex_lock(&cb_mu);
    pthread_mutex_lock(&mu);
    used = bytes < used ? used - bytes : 0;
    void (*fn)(void *) = listener;
    void *ctx = listener_ctx;
    pthread_mutex_unlock(&mu);
    if (fn) fn(ctx);
    pthread_mutex_unlock(&cb_mu);
}

void td_budget_on_release(void (*fn)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&cb_mu);
    pthread_mutex_lock(&mu);
    listener = fn;
    listener_ctx = ctx;
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&cb_mu);
}

uint64_t td_budget_physical(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}
