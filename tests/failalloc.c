/* failalloc.c — the --wrap side of failalloc.h. */
#include "failalloc.h"

#include <stdatomic.h>
#include <stddef.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

static atomic_long g_fail_at = -1, g_count, g_failed;

void failalloc_arm(long n)
{
    atomic_store(&g_fail_at, -1);
    atomic_store(&g_count, 0);
    atomic_store(&g_failed, 0);
    atomic_store(&g_fail_at, n);
}

long failalloc_count(void) { return atomic_load(&g_count); }

int failalloc_failed(void) { return atomic_load(&g_failed) != 0; }

/* 1 when this allocation is the one to refuse. */
static int refuse(void)
{
    long at = atomic_load(&g_fail_at);
    if (at < 0)
        return 0;
    long k = atomic_fetch_add(&g_count, 1) + 1;
    if (at > 0 && k == at) {
        atomic_store(&g_failed, 1);
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n) { return refuse() ? NULL : __real_malloc(n); }

void *__wrap_calloc(size_t n, size_t size) { return refuse() ? NULL : __real_calloc(n, size); }

void *__wrap_realloc(void *p, size_t n) { return refuse() ? NULL : __real_realloc(p, n); }

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return refuse() ? NULL : __real_aligned_alloc(align, n);
}
