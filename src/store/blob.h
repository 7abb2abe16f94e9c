/* blob.h — checksummed binary files, written atomically.
 *
 * File layout (all header integers little-endian):
 *   off  0  magic    8 bytes  "TDBLOB\0\0"
 *   off  8  version  u32      TD_BLOB_VERSION
 *   off 12  kind     u32      caller's tag (TD_BLOB_DATASET, ...), checked on read
 *   off 16  aux      u64      caller's value (e.g. a checkpoint's epoch), returned on read
 *   off 24  length   u64      payload bytes
 *   off 32  checksum u64      XXH64 (seed 0) of bytes 0..31 followed by every byte from
 *                             off 40 to the end (the tag section, then the payload)
 *   version 1 (no tag):
 *   off 40  payload
 *   version 2 (tagged):
 *   off 40  tag_len  u32      bytes of the tag, <= TD_BLOB_TAG_MAX
 *   off 44  tag      tag_len bytes of text, no NUL (checkpoints: the build fingerprint
 *                             of the binary that wrote them, math/fingerprint.h)
 *   off 44 + tag_len  payload
 * length counts the payload only. A writer given no tag writes version 1; readers take
 * both, and a version 1 file reads with the tag "" (unknown).
 * The payload is opaque bytes (the store writes host-endian float32/int32 arrays).
 *
 * Writing: a temp file "<path>.tmp.<pid>.<n>" in the same directory receives the
 * header and the segments in one streaming pass (the checksum is computed as the data
 * goes out and the header is rewritten at the end), then fsync, rename over path, fsync
 * of the directory. A crash leaves either the old file or the new one, never a mix;
 * at worst a stray temp file, which td_blob_is_temp() recognises so a sweep can
 * remove it.
 *
 * Thread-safety: the functions keep no state; concurrent writers of the same path
 * each get their own temp file and the last rename wins. */
#ifndef TRAIND_STORE_BLOB_H
#define TRAIND_STORE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "traind/status.h"
#include "math/xxh64.h" /* the checksum; little-endian td_rd64 / td_wr64 */

#define TD_BLOB_VERSION 1u
#define TD_BLOB_VERSION_TAGGED 2u
#define TD_BLOB_HEADER 40
#define TD_BLOB_TAG_MAX 1024

enum { TD_BLOB_ANY = 0, TD_BLOB_DATASET = 1, TD_BLOB_CHECKPOINT = 2, TD_BLOB_MODEL = 3 };

/* One piece of the payload; the payload is the segments' bytes back to back. */
typedef struct td_blob_seg {
    const void *data; /* may be NULL when len == 0 */
    size_t len;
} td_blob_seg;

/* Writes segs[0..nseg) as the payload of path, atomically (see above). On error the
 * temp file is removed, path is unchanged, and err names the file and the failing call:
 * TD_ENOSPACE when it failed for lack of space (ENOSPC, EDQUOT), else TD_EIO. */
td_status td_blob_write(const char *path, uint32_t kind, uint64_t aux, const td_blob_seg *segs,
                        int nseg, td_error *err);

/* td_blob_write with a tag (text, at most TD_BLOB_TAG_MAX bytes, TD_EINVAL past it): a
 * version 2 file; NULL or "" writes version 1, as td_blob_write. */
td_status td_blob_write_tagged(const char *path, uint32_t kind, uint64_t aux, const char *tag,
                               const td_blob_seg *segs, int nseg, td_error *err);
/* td_blob_write without any fsync: atomic against a process crash (temp file, rename), not
 * yet against a power loss. The caller makes it durable before any durable row refers to
 * it (syncfs: td_store_sync_files). */
td_status td_blob_write_unsynced(const char *path, uint32_t kind, uint64_t aux,
                                 const td_blob_seg *segs, int nseg, td_error *err);

/* Reads path, verifying magic, version, kind (unless kind == TD_BLOB_ANY), length
 * against the file size, and the checksum. On success *payload is a new buffer of *len
 * bytes (free it with td_blob_free; never NULL, even for an empty payload) and *aux
 * (may be NULL) gets the header's aux value. A missing file is TD_ENOTFOUND; any
 * mismatch or read failure is TD_EIO with a message naming the file. On error
 * *payload is NULL. */
td_status td_blob_read(const char *path, uint32_t kind, uint64_t *aux, void **payload, size_t *len,
                       td_error *err);
/* td_blob_read that also returns the tag: NUL-terminated into tag (tag_cap > 0 bytes;
 * a longer tag is cut), "" for a version 1 file. tag may be NULL. */
td_status td_blob_read_tagged(const char *path, uint32_t kind, uint64_t *aux, char *tag,
                              size_t tag_cap, void **payload, size_t *len, td_error *err);

/* What identifies one version of a file: a file replaced (rename) or written to since
 * gets another stamp (a new inode, or a later ctime). */
typedef struct td_blob_stamp {
    uint64_t dev, ino;
    int64_t size, mtime_ns, ctime_ns;
} td_blob_stamp;

/* A read-only shared mapping of a whole blob file (the page cache's pages: file-backed,
 * not anonymous memory). payload is at file offset TD_BLOB_HEADER of a page-aligned
 * mapping. */
typedef struct td_blob_map_t {
    void *base; /* NULL when not mapped */
    size_t map_len;
    const void *payload;
    size_t len; /* payload bytes */
    uint64_t aux;
    td_blob_stamp stamp; /* of the file mapped */
    int verified;        /* 1 when this call computed the checksum */
} td_blob_map_t;

/* Maps path read-only, checking the header as td_blob_read does (same errors). The
 * checksum is computed unless the file's stamp equals *verified (the stamp of a version
 * already verified; NULL = always verify). On error nothing stays mapped. A file
 * unlinked or renamed over after the call stays mapped as it was until td_blob_unmap. */
td_status td_blob_map(const char *path, uint32_t kind, const td_blob_stamp *verified,
                      td_blob_map_t *out, td_error *err);
/* Unmaps (a zeroed or already unmapped m is fine). */
void td_blob_unmap(td_blob_map_t *m);

/* ---- in memory ------------------------------------------------------------------- */

/* The bytes a version 1 file of these segments holds (the layout above), for a blob kept
 * elsewhere than in a file of its own (a small model in its job's row: store_history.c).
 * *image is malloc'd (td_blob_free), *len bytes; TD_ENOMEM. */
td_status td_blob_image(uint32_t kind, uint64_t aux, const td_blob_seg *segs, int nseg,
                        void **image, size_t *len, td_error *err);
/* Checks an image as td_blob_read checks a file (magic, version, kind unless TD_BLOB_ANY,
 * length, checksum; TD_EIO naming `what`). On success *payload points into image (no
 * copy), *plen bytes, and *aux (may be NULL) gets aux. */
td_status td_blob_image_check(const void *image, size_t len, uint32_t kind, const char *what,
                              uint64_t *aux, const void **payload, size_t *plen, td_error *err);

/* Frees a payload from td_blob_read (NULL is fine). */
void td_blob_free(void *payload);

/* 1 when a directory entry name is a temp file left by td_blob_write. */
int td_blob_is_temp(const char *name);

/* ---- streaming writer ------------------------------------------------------------- */

/* A blob whose payload is not in memory at once: written to the temp file piece by piece
 * (td_blob_out_write appends, td_blob_out_pwrite overwrites bytes already written, e.g.
 * a header whose values were not known at the start), then td_blob_out_commit fsyncs and
 * renames over path, like td_blob_write. The checksum: when open was told the payload's
 * length (length > 0; kind and aux are then final too) it is computed as the bytes go
 * out, and used if exactly that many were written and none overwritten; otherwise
 * commit reads the payload back to compute it. commit and abort free the writer; abort
 * (NULL is fine) removes the temp file. Errors are TD_EIO naming the file. */
typedef struct td_blob_out td_blob_out;

td_status td_blob_out_open(td_blob_out **out, const char *path, uint32_t kind, uint64_t aux,
                           uint64_t length, td_error *err);
td_status td_blob_out_write(td_blob_out *o, const void *data, size_t len, td_error *err);
td_status td_blob_out_pwrite(td_blob_out *o, uint64_t payload_off, const void *data, size_t len,
                             td_error *err);
td_status td_blob_out_commit(td_blob_out *o, uint32_t kind, uint64_t aux, td_error *err);
void td_blob_out_abort(td_blob_out *o);

#endif
