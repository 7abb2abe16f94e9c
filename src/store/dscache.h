/* dscache.h — datasets shared by every job and request that reads them.
 *
 * One entry per dataset id read in this process. While anyone holds an entry, the
 * dataset's blob file is mapped once, read-only (td_blob_map), and every holder reads the
 * same pages: page cache, file-backed, so N jobs on one dataset cost no anonymous memory
 * for it. The last release unmaps it. The entry remembers the stamp of the file version
 * whose checksum was verified, so a file is hashed once per daemon lifetime (again only
 * when the file changed: another inode, size, mtime or ctime). A dataset deleted while
 * held stays readable by its holders: the mapping outlives the unlink. (traind never
 * rewrites a blob in place, td_blob_write renames a new file over it, so a mapping never
 * sees its file shrink; one cut short from outside would fault its readers.)
 *
 * Alignment: the caller names the payload offset that must land on a TD_DSCACHE_ALIGN
 * boundary (a dataset's X). A file whose layout puts it elsewhere (written before the
 * padding existed) is copied once into an aligned buffer, shared the same way.
 *
 * Thread-safe: a cache mutex guards the entries' list and counts; each entry has its own
 * lock held while it is mapped and verified, so a large file being hashed holds up only
 * the readers of that dataset. */
#ifndef TRAIND_STORE_DSCACHE_H
#define TRAIND_STORE_DSCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "traind/status.h"

#define TD_DSCACHE_ALIGN 64

typedef struct td_dscache td_dscache;
typedef struct td_dscache_entry td_dscache_entry;

/* Offset within payload (len bytes) that must be aligned; called once per mapping. */
typedef size_t (*td_dscache_align_fn)(const void *payload, size_t len);

/* NULL when out of memory. */
td_dscache *td_dscache_create(void);
/* Frees the cache; every entry must have been released. NULL is fine. */
void td_dscache_destroy(td_dscache *c);

/* Holds id's data, mapping path (a TD_BLOB_DATASET blob) when nobody holds it yet.
 * *payload, *len: the blob's payload, valid until td_dscache_release(*entry). Errors are
 * td_blob_map's (TD_ENOTFOUND for a missing file, TD_EIO for a bad one, naming path). */
td_status td_dscache_acquire(td_dscache *c, const char *id, const char *path,
                             td_dscache_align_fn align, td_dscache_entry **entry,
                             const void **payload, size_t *len, td_error *err);
/* Lets go of an entry from td_dscache_acquire (NULL is fine); the last holder unmaps. */
void td_dscache_release(td_dscache_entry *e);
/* The dataset id was deleted: its entry goes once the last holder lets go. */
void td_dscache_forget(td_dscache *c, const char *id);

typedef struct td_dscache_stats {
    uint64_t verifications; /* files verified (checksum computed and right) */
    int64_t mapped;         /* datasets held now */
    int64_t mapped_bytes;   /* their file bytes */
    int64_t copied_bytes;   /* of which copied into memory (older layout) */
} td_dscache_stats;

void td_dscache_stats_get(td_dscache *c, td_dscache_stats *out);

#endif
