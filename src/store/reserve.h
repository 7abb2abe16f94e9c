/* reserve.h — room kept in state_dir so that a full disk can still be emptied.
 *
 * On a full disk even a delete needs space: SQLite appends the pages it changes to its
 * WAL before the files can go. state_dir/reserve.bin holds `bytes` of allocated space
 * (posix_fallocate) for that moment. The life of a full disk:
 *   1. A write is refused for lack of space (TD_ENOSPACE: SQLITE_FULL, ENOSPC, EDQUOT).
 *      Its caller reports it (td_reserve_note): the reserve turns full, with the failure
 *      as the reason.
 *   2. While full, new work (uploads, job submissions) is refused up front and /readyz
 *      is 503 with the reason (td_reserve_check: TD_ENOSPACE), so that the space left
 *      goes to the writes that free space.
 *   3. A write that frees space or must be recorded (a delete, a cancel, a job's end)
 *      and meets TD_ENOSPACE releases the reserve (td_reserve_release: the file is
 *      truncated to 0 bytes, its blocks are free) and is tried once more.
 *   4. While full, td_reserve_check probes: the full state ends once the reserve is whole
 *      again (re-allocated) and as much again can be allocated (the headroom, at least
 *      1 MiB). Space freed by deletes or from outside is seen without a restart.
 * The reserve holds real blocks where posix_fallocate allocates them (ext4, xfs, tmpfs);
 * on copy-on-write or compressing filesystems (btrfs, zfs) it may hold none.
 *
 * Thread-safe: one mutex, under which the probe's few file calls run (only while full;
 * not full, td_reserve_check is one atomic load). Every function accepts r == NULL: no
 * reserve, never full. */
#ifndef TRAIND_STORE_RESERVE_H
#define TRAIND_STORE_RESERVE_H

#include <stdint.h>

#include "traind/status.h"

typedef struct td_reserve td_reserve;

/* Opens dir/reserve.bin (dir must exist: td_store_open makes it) and allocates bytes
 * (>= 0) in it, giving back anything beyond. No room for it (or for the headroom) is not
 * an error: the reserve starts full. TD_EIO when the file cannot be opened or allocated
 * for another reason (e.g. a filesystem without posix_fallocate: set the reserve to 0). */
td_status td_reserve_open(td_reserve **out, const char *dir, int64_t bytes, td_error *err);
/* Frees the handle; the file stays (the next open re-uses it). NULL is fine. */
void td_reserve_close(td_reserve *r);

/* Reports a write's outcome and returns st: TD_ENOSPACE turns the reserve full, with
 * err's message (may be NULL) as the reason; any other status changes nothing. */
td_status td_reserve_note(td_reserve *r, td_status st, const td_error *err);

/* TD_OK when new work may write; while full (and no probe finds room) TD_ENOSPACE with
 * the reason and what to do in err. */
td_status td_reserve_check(td_reserve *r, td_error *err);

/* For a write that frees space or must be recorded, after it returned st: when st is
 * TD_ENOSPACE, notes it (as td_reserve_note) and truncates the reserve; returns 1 when
 * that freed space (the write may be tried once more), else 0. */
int td_reserve_release(td_reserve *r, td_status st, const td_error *err);

#endif
