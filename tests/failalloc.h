/* failalloc.h — allocation-failure injection, for the test runners only.
 *
 * Both runners (build/test_runner, build/engine_runner) are linked with -Wl,--wrap=malloc,
 * --wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=free (Makefile), so those calls
 * from the library they link (libtraind.a, libtraind_engine.a) and the tests go through
 * failalloc.c, which passes them on unless armed. The daemon, the benches and the
 * library itself are built without it: production pays nothing. Allocations inside shared
 * libraries (cJSON, SQLite, libc's strdup) are not counted.
 *
 *   failalloc_arm(0);  run();  long total = failalloc_count();   count a run
 *   failalloc_arm(n);  st = run();  failalloc_arm(-1);             fail its n-th allocation
 * Counting is process-wide (every thread), so arm around single-threaded work. */
#ifndef TRAIND_FAILALLOC_H
#define TRAIND_FAILALLOC_H

#include "traind/status.h"

/* n > 0: the n-th allocation from now fails (returns NULL), the others succeed;
 * n = 0: count only; n < 0: off (the default). Resets the count. */
void failalloc_arm(long n);
/* Allocations since the last failalloc_arm (while armed or counting). */
long failalloc_count(void);
/* 1 when the armed allocation has been refused. */
int failalloc_failed(void);

/* Byte accounting (free is wrapped too): on = 1 resets and starts counting the live bytes
 * (malloc_usable_size of each block allocated minus each freed) and their peak; 0 stops.
 * Process-wide, like the count: measure single-threaded work, or a trainer whose pool
 * threads do not allocate. */
void failalloc_track(int on);
long failalloc_peak_bytes(void);
long failalloc_live_bytes(void);

/* The fault suites' loop (test_faults_engine.c, test_faults.c): runs run() once counting its
 * allocations (it must succeed, and allocate), then once with each of them failing in turn:
 * each such run returns TD_OK or, when the refused allocation was reached, TD_ENOMEM, and at
 * least one reaches it. A crash on the way names `name` and the allocation on stderr. *err
 * (the scenario's last error) goes into the failure message. */
void failalloc_each(const char *name, td_status (*run)(void), const td_error *err);

#endif
