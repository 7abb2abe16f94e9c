/* private.c — umask 077 and the modes of an existing state directory (see private.h). */
#define _XOPEN_SOURCE 700
#include "util/private.h"

#include <errno.h>
#include <ftw.h>
#include <string.h>
#include <sys/stat.h>

static int g_fixed; /* nftw has no context pointer; only the main thread calls this */

static int narrow(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type == FTW_SL || type == FTW_SLN) return 0; /* never follow or chmod a link */
    if ((sb->st_mode & 077) && chmod(path, sb->st_mode & 07700) == 0) g_fixed++;
    return 0;
}

td_status td_state_private(const char *dir, int *fixed, td_error *err)
{
    umask(077);
    g_fixed = 0;
    if (fixed) *fixed = 0;
    struct stat sb;
    if (lstat(dir, &sb) != 0) {
        if (errno == ENOENT) return TD_OK; /* the store makes it, 0700 under the umask */
        return td_fail(err, TD_EIO, "state_dir", "cannot stat state_dir %s: %s", dir,
                       strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode))
        return td_fail(err, TD_EIO, "state_dir", "state_dir %s is not a directory", dir);
    if (nftw(dir, narrow, 16, FTW_PHYS) != 0)
        return td_fail(err, TD_EIO, "state_dir", "cannot walk state_dir %s: %s", dir,
                       strerror(errno));
    if (fixed) *fixed = g_fixed;
    return TD_OK;
}
