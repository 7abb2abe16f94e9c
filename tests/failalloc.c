/* failalloc.c — the --wrap side of failalloc.h, and the fault suites' loop over it. */
#include "failalloc.h"

#include <check.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
void __wrap_free(void *p);

static atomic_long g_fail_at = -1, g_count, g_failed;
static atomic_int g_track;
static atomic_long g_live, g_peak;

void failalloc_arm(long n)
{
    atomic_store(&g_fail_at, -1);
    atomic_store(&g_count, 0);
    atomic_store(&g_failed, 0);
    atomic_store(&g_fail_at, n);
}

long failalloc_count(void) { return atomic_load(&g_count); }

int failalloc_failed(void) { return atomic_load(&g_failed) != 0; }

void failalloc_track(int on)
{
    atomic_store(&g_track, 0);
    atomic_store(&g_live, 0);
    atomic_store(&g_peak, 0);
    atomic_store(&g_track, on);
}

long failalloc_peak_bytes(void) { return atomic_load(&g_peak); }
long failalloc_live_bytes(void) { return atomic_load(&g_live); }

/* Adds the block's usable size (sign -1: a free) to the live bytes; keeps the peak. */
static void account(void *p, int sign)
{
    if (!p || !atomic_load(&g_track)) return;
    long d = sign * (long)malloc_usable_size(p);
    long now = atomic_fetch_add(&g_live, d) + d;
    long peak = atomic_load(&g_peak);
    while (now > peak && !atomic_compare_exchange_weak(&g_peak, &peak, now))
        ;
}

/* 1 when this allocation is the one to refuse. */
static int refuse(void)
{
    long at = atomic_load(&g_fail_at);
    if (at < 0) return 0;
    long k = atomic_fetch_add(&g_count, 1) + 1;
    if (at > 0 && k == at) {
        atomic_store(&g_failed, 1);
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    void *p = refuse() ? NULL : __real_malloc(n);
    account(p, 1);
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    void *p = refuse() ? NULL : __real_calloc(n, size);
    account(p, 1);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (refuse()) return NULL;
    long old = p && atomic_load(&g_track) ? (long)malloc_usable_size(p) : 0;
    void *q = __real_realloc(p, n);
    if (q && atomic_load(&g_track)) {
        atomic_fetch_sub(&g_live, old);
        account(q, 1);
    }
    return q;
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    void *p = refuse() ? NULL : __real_aligned_alloc(align, n);
    account(p, 1);
    return p;
}

void __wrap_free(void *p)
{
    account(p, -1);
    __real_free(p);
}

/* ---- failalloc_each ------------------------------------------------------------------ */

static volatile long g_alloc_n;
static const char *volatile g_alloc_name;

static void on_crash(int sig)
{
    char msg[160];
    int k = snprintf(msg, sizeof msg, "failalloc: %s crashed with allocation %ld failing\n",
                     g_alloc_name, g_alloc_n);
    ssize_t w = write(2, msg, (size_t)k);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

void failalloc_each(const char *name, td_status (*run)(void), const td_error *err)
{
    failalloc_arm(0);
    td_status st = run();
    long total = failalloc_count();
    failalloc_arm(-1);
    ck_assert_msg(st == TD_OK, "%s fails without injection: %s", name, td_status_code(st));
    ck_assert_msg(total > 0, "%s made no allocation: is the runner linked with --wrap?", name);
    g_alloc_name = name;
    signal(SIGSEGV, on_crash);
    signal(SIGABRT, on_crash);
    int refused = 0;
    for (long n = 1; n <= total; n++) {
        g_alloc_n = n;
        failalloc_arm(n);
        st = run();
        int failed = failalloc_failed();
        failalloc_arm(-1);
        if (failed) {
            refused++;
            ck_assert_msg(st == TD_ENOMEM || st == TD_OK,
                          "%s with allocation %ld of %ld failing: %s, not out_of_memory (%s: %s)",
                          name, n, total, td_status_code(st), err->field, err->message);
        } else {
            ck_assert_msg(st == TD_OK, "%s: %s without a failure", name, td_status_code(st));
        }
    }
    signal(SIGSEGV, SIG_DFL);
    signal(SIGABRT, SIG_DFL);
    ck_assert_int_gt(refused, 0);
}
