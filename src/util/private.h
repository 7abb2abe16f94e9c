/* private.h — the state directory is private to the daemon's user.
 *
 * td_state_private sets the process umask to 077, so that everything created from then
 * on (the SQLite database and its -wal/-shm/-journal files, blobs, checkpoints,
 * directories) is 0600 / 0700 whatever umask the daemon was started with; and, when dir
 * exists already, takes group and other permissions off it and everything under it
 * (without following symbolic links), for state made by an older traind or under a
 * looser umask. */
#ifndef TRAIND_PRIVATE_H
#define TRAIND_PRIVATE_H

#include "traind/status.h"

/* *fixed (may be NULL) gets the number of entries whose mode was narrowed. */
td_status td_state_private(const char *dir, int *fixed, td_error *err);

#endif
