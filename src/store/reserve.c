/* reserve.c — the space reserve of state_dir (the life of a full disk is in reserve.h).
 *
 * The probe asks the filesystem, not statvfs: posix_fallocate fails with ENOSPC or
 * EDQUOT exactly when a write would, quotas included. It allocates the reserve plus the
 * headroom in reserve.bin, then truncates the file back to the reserve, so the headroom
 * is given back at once and whatever is whole of the reserve stays. */
#include "store/reserve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

#define MIN_HEADROOM ((int64_t)1 << 20)

struct td_reserve {
    pthread_mutex_t mu;
    atomic_int full;  /* a write was refused for lack of space, no probe found
                                    room since (written under mu) */
    int64_t bytes;    /* the reserve */
    int64_t headroom; /* free beyond it that ends the full state */
    char path[PATH_MAX];
    td_error reason; /* why it is full (message) */
};

static int no_space(int e) { return e == ENOSPC || e == EDQUOT; }

static double mib(int64_t bytes) { return (double)bytes / (double)(1 << 20); }

/* Makes the reserve whole and tries the headroom beyond it, given back at once. Returns
 * 0 when both fit, else the errno of the failing call, which why->message names.
 * Caller holds mu (or owns r alone). */
static int probe_locked(td_reserve *r, td_error *why)
{
    int fd = open(r->path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        int e = errno;
        td_fail(why, TD_EIO, NULL, "open %s: %s", r->path, strerror(e));
        return e;
    }
    int e = posix_fallocate(fd, 0, (off_t)(r->bytes + r->headroom));
    if (e)
        td_fail(why, TD_EIO, NULL,
                "no room for the %.4g MiB reserve and %.4g MiB more "
                "(posix_fallocate %s: %s)",
                mib(r->bytes), mib(r->headroom), r->path, strerror(e));
    /* the headroom goes back, with whatever a failed call allocated past the reserve */
    if (ftruncate(fd, (off_t)r->bytes) != 0 && !e) {
        e = errno;
        td_fail(why, TD_EIO, NULL, "truncate %s: %s", r->path, strerror(e));
    }
    if (no_space(e) && r->bytes > 0)
        (void)posix_fallocate(fd, 0, (off_t)r->bytes); /* as much of the reserve as fits */
    close(fd);
    return e;
}

td_status td_reserve_open(td_reserve **out, const char *dir, int64_t bytes, td_error *err)
{
    *out = NULL;
    if (bytes < 0)
        return td_fail(err, TD_EINVAL, "disk_reserve_mb", "the reserve must be >= 0 bytes");
    td_reserve *r = calloc(1, sizeof *r);
    if (!r) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    int n = snprintf(r->path, sizeof r->path, "%s/reserve.bin", dir);
    if (n < 0 || (size_t)n >= sizeof r->path) {
        free(r);
        return td_fail(err, TD_EINVAL, "state_dir", "state directory path is too long");
    }
    pthread_mutex_init(&r->mu, NULL);
    r->bytes = bytes;
    r->headroom = bytes > MIN_HEADROOM ? bytes : MIN_HEADROOM;
    td_error why = {{0}, {0}};
    int e = probe_locked(r, &why);
    if (e && !no_space(e)) {
        td_status st =
            td_fail(err, TD_EIO, "disk_reserve_mb", "the space reserve: %s", why.message);
        td_reserve_close(r);
        return st;
    }
    if (e) td_reserve_note(r, TD_ENOSPACE, &why);
    *out = r;
    return TD_OK;
}

void td_reserve_close(td_reserve *r)
{
    if (!r) return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

td_status td_reserve_note(td_reserve *r, td_status st, const td_error *err)
{
    if (!r || st != TD_ENOSPACE) return st;
    pthread_mutex_lock(&r->mu);
    td_fail(&r->reason, st, NULL, "state_dir is full: %s",
            err && err->message[0] ? err->message : "no space left");
    if (!atomic_load(&r->full))
        td_log(TD_LOG_WARN, "store", "%s: new datasets and jobs are refused until space is freed",
               r->reason.message);
    atomic_store(&r->full, 1);
    pthread_mutex_unlock(&r->mu);
    return st;
}

td_status td_reserve_check(td_reserve *r, td_error *err)
{
    if (!r || !atomic_load(&r->full)) return TD_OK;
    td_status st = TD_OK;
    td_error why = {{0}, {0}};
    pthread_mutex_lock(&r->mu);
    if (atomic_load(&r->full)) {
        int e = probe_locked(r, &why);
        if (!no_space(e)) { /* room, or a probe that cannot tell: never wedge on it */
            if (e)
                td_log(TD_LOG_WARN, "store", "the space probe failed (%s): taken as room",
                       why.message);
            atomic_store(&r->full, 0);
            td_log(TD_LOG_INFO, "store",
                   "state_dir has room again (the %.4g MiB reserve is "
                   "whole, %.4g MiB more free): new work is accepted",
                   mib(r->bytes), mib(r->headroom));
        } else {
            st = td_fail(err, TD_ENOSPACE, NULL,
                         "%s; new datasets and jobs are refused until "
                         "space is freed (delete datasets or jobs)",
                         r->reason.message);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

int td_reserve_release(td_reserve *r, td_status st, const td_error *err)
{
    if (!r || st != TD_ENOSPACE) return 0;
    td_reserve_note(r, st, err);
    int freed = 0;
    struct stat sb;
    pthread_mutex_lock(&r->mu);
    if (stat(r->path, &sb) == 0 && sb.st_blocks > 0 && truncate(r->path, 0) == 0) {
        freed = 1;
        td_log(TD_LOG_WARN, "store",
               "released the %.4g MiB space reserve to retry a write that "
               "must not be refused (%s)",
               mib((int64_t)sb.st_blocks * 512),
               err && err->message[0] ? err->message : "no space left");
    }
    pthread_mutex_unlock(&r->mu);
    return freed;
}
