/* failalloc.h — allocation-failure injection, for the test runner only.
 *
 * The runner is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,
 * --wrap=aligned_alloc,--wrap=free (Makefile), so those calls from libtraind.a and the tests go
 * through failalloc.c, which passes them on unless armed. The daemon, the benches and the
 * library itself are built without it: production pays nothing. Allocations inside shared
 * libraries (cJSON, SQLite, libc's strdup) are not counted.
 *
 *   failalloc_arm(0);  run();  long total = failalloc_count();   count a run
 *   failalloc_arm(n);  st = run();  failalloc_arm(-1);             fail its n-th allocation
 * Counting is process-wide (every thread), so arm around single-threaded work. */
#ifndef TRAIND_FAILALLOC_H
#define TRAIND_FAILALLOC_H

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

#endif
