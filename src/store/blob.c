/* blob.c — checksummed binary files written atomically (format in blob.h).
 *
 * The checksum is XXH64 (math/xxh64.c, seed 0): ~10 GB/s in one pass,
 * so a file of hundreds of MB costs far less to hash than to write or read. It is fed
 * in the same loop that writes (or reads) each chunk, while the chunk is in cache. */
#define _GNU_SOURCE /* sync_file_range */
#include "store/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t BLOB_MAGIC[8] = {'T', 'D', 'B', 'L', 'O', 'B', 0, 0};
#define CHUNK ((size_t)1 << 20)

/* ---- files ------------------------------------------------------------------------ */

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads exactly len bytes; returns 0, or -1 with errno (EIO-ish 0 for a short file). */
static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = 0;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static void fill_header(uint8_t hdr[TD_BLOB_HEADER], uint32_t version, uint32_t kind, uint64_t aux,
                        uint64_t length)
{
    memcpy(hdr, BLOB_MAGIC, 8);
    td_wr32(hdr + 8, version);
    td_wr32(hdr + 12, kind);
    td_wr64(hdr + 16, aux);
    td_wr64(hdr + 24, length);
    td_wr64(hdr + 32, 0);
}

/* fsyncs the directory holding path so a rename in it is durable. */
static int fsync_parent(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Writes the header (checksum 0), the tag section (tag_len > 0: version 2), the payload
 * while hashing them, then the checksum. */
static int write_payload(int fd, uint32_t kind, uint64_t aux, uint64_t length, const char *tag,
                         size_t tag_len, const td_blob_seg *segs, int nseg)
{
    uint8_t hdr[TD_BLOB_HEADER];
    td_xxh64_state h;
    td_xxh64_init(&h, 0);
    fill_header(hdr, tag_len ? TD_BLOB_VERSION_TAGGED : TD_BLOB_VERSION, kind, aux, length);
    td_xxh64_update(&h, hdr, 32);
    if (write_all(fd, hdr, sizeof hdr) != 0) return -1;
    if (tag_len) {
        uint8_t n[4];
        td_wr32(n, (uint32_t)tag_len);
        td_xxh64_update(&h, n, 4);
        td_xxh64_update(&h, tag, tag_len);
        if (write_all(fd, n, 4) != 0 || write_all(fd, tag, tag_len) != 0) return -1;
    }
    for (int i = 0; i < nseg; i++) {
        const char *p = segs[i].data;
        size_t left = segs[i].len;
        while (left > 0) {
            size_t c = left < CHUNK ? left : CHUNK;
            td_xxh64_update(&h, p, c);
            if (write_all(fd, p, c) != 0) return -1;
            p += c;
            left -= c;
        }
    }
    td_wr64(hdr + 32, td_xxh64_digest(&h));
    ssize_t w = pwrite(fd, hdr + 32, 8, 32);
    if (w != 8) {
        if (w >= 0) errno = EIO;
        return -1;
    }
    return 0;
}

/* A failed write's status: lack of space (a full disk, an exhausted quota) is TD_ENOSPACE,
 * the rest TD_EIO. */
static td_status write_status(int e) { return e == ENOSPC || e == EDQUOT ? TD_ENOSPACE : TD_EIO; }

td_status td_blob_write(const char *path, uint32_t kind, uint64_t aux, const td_blob_seg *segs,
                        int nseg, td_error *err)
{
    return td_blob_write_tagged(path, kind, aux, NULL, segs, nseg, err);
}

/* td_blob_write_tagged; without sync, no fsync of the file or its directory. */
static td_status blob_write(const char *path, uint32_t kind, uint64_t aux, const char *tag,
                            const td_blob_seg *segs, int nseg, int sync, td_error *err)
{
    static atomic_uint counter;
    td_status rc = TD_OK;
    char tmp[PATH_MAX];
    int fd = -1, created = 0;
    uint64_t length = 0;
    size_t tag_len = tag ? strlen(tag) : 0;

    if (tag_len > TD_BLOB_TAG_MAX) {
        rc = td_fail(err, TD_EINVAL, NULL, "blob %s: a tag of %zu bytes (at most %d)", path,
                     tag_len, TD_BLOB_TAG_MAX);
        goto cleanup;
    }

    for (int i = 0; i < nseg; i++) {
        if (segs[i].len > 0 && !segs[i].data) {
            rc = td_fail(err, TD_EINTERNAL, NULL, "blob %s: segment %d has no data", path, i);
            goto cleanup;
        }
        length += segs[i].len;
    }
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
                     atomic_fetch_add(&counter, 1));
    if (n < 0 || (size_t)n >= sizeof tmp) {
        rc = td_fail(err, TD_EIO, NULL, "blob path too long: %s", path);
        goto cleanup;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = td_fail(err, write_status(errno), NULL, "create %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    created = 1;

    if (write_payload(fd, kind, aux, length, tag, tag_len, segs, nseg) != 0 ||
        (sync && fsync(fd) != 0)) {
        int e = errno ? errno : EIO;
        rc = td_fail(err, write_status(e), NULL, "write %s: %s", tmp, strerror(e));
        goto cleanup;
    }
    int crc = close(fd);
    fd = -1;
    if (crc != 0) {
        rc = td_fail(err, write_status(errno), NULL, "close %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        rc = td_fail(err, write_status(errno), NULL, "rename %s -> %s: %s", tmp, path,
                     strerror(errno));
        goto cleanup;
    }
    created = 0;
    if (sync && fsync_parent(path) != 0) {
        rc = td_fail(err, write_status(errno), NULL, "fsync directory of %s: %s", path,
                     strerror(errno));
        goto cleanup;
    }
cleanup:
    if (fd >= 0) close(fd);
    if (created) unlink(tmp);
    return rc;
}

/* Checks a header read from path (sb its stat) against kind and the file size: magic,
 * version (tagged only when `before` counts the tag), kind unless TD_BLOB_ANY, length;
 * before is the bytes ahead of the payload (the header, and a tag section).
 * *length gets the payload bytes. */
static td_status check_header(const char *path, const uint8_t hdr[TD_BLOB_HEADER],
                              const struct stat *sb, uint32_t kind, off_t before, uint64_t *length,
                              td_error *err)
{
    if (memcmp(hdr, BLOB_MAGIC, 8) != 0)
        return td_fail(err, TD_EIO, NULL, "%s: not a traind blob (bad magic)", path);
    uint32_t version = td_rd32(hdr + 8);
    if (version != TD_BLOB_VERSION &&
        (version != TD_BLOB_VERSION_TAGGED || before == TD_BLOB_HEADER))
        return td_fail(err, TD_EIO, NULL, "%s: unsupported blob version %u", path, version);
    if (kind != TD_BLOB_ANY && td_rd32(hdr + 12) != kind)
        return td_fail(err, TD_EIO, NULL, "%s: blob kind %u, expected %u", path, td_rd32(hdr + 12),
                       kind);
    *length = td_rd64(hdr + 24);
    if (*length != (uint64_t)(sb->st_size - before) || *length > SIZE_MAX - 1)
        return td_fail(err, TD_EIO, NULL, "%s: length mismatch (header %llu, file has %llu)", path,
                       (unsigned long long)*length, (unsigned long long)(sb->st_size - before));
    return TD_OK;
}

/* Opens path and fstats it: a missing file is TD_ENOTFOUND, a file shorter than a
 * header TD_EIO. *fd is -1 on error. */
static td_status open_blob(const char *path, int *fd, struct stat *sb, td_error *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return td_fail(err, errno == ENOENT ? TD_ENOTFOUND : TD_EIO, NULL, "open %s: %s", path,
                       strerror(errno));
    td_status rc = TD_OK;
    if (fstat(*fd, sb) != 0)
        rc = td_fail(err, TD_EIO, NULL, "stat %s: %s", path, strerror(errno));
    else if (sb->st_size < TD_BLOB_HEADER)
        rc = td_fail(err, TD_EIO, NULL, "%s: truncated (%lld bytes, no header)", path,
                     (long long)sb->st_size);
    if (rc) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

static td_status checksum_status(const char *path, const uint8_t hdr[TD_BLOB_HEADER], uint64_t got,
                                 td_error *err)
{
    uint64_t want = td_rd64(hdr + 32);
    if (want == got) return TD_OK;
    return td_fail(err, TD_EIO, NULL, "%s: checksum mismatch (stored %016llx, computed %016llx)",
                   path, (unsigned long long)want, (unsigned long long)got);
}

td_status td_blob_write_tagged(const char *path, uint32_t kind, uint64_t aux, const char *tag,
                               const td_blob_seg *segs, int nseg, td_error *err)
{
    return blob_write(path, kind, aux, tag, segs, nseg, 1, err);
}

td_status td_blob_write_unsynced(const char *path, uint32_t kind, uint64_t aux,
                                 const td_blob_seg *segs, int nseg, td_error *err)
{
    return blob_write(path, kind, aux, NULL, segs, nseg, 0, err);
}

td_status td_blob_read(const char *path, uint32_t kind, uint64_t *aux, void **payload, size_t *len,
                       td_error *err)
{
    return td_blob_read_tagged(path, kind, aux, NULL, 0, payload, len, err);
}

td_status td_blob_read_tagged(const char *path, uint32_t kind, uint64_t *aux, char *tag,
                              size_t tag_cap, void **payload, size_t *len, td_error *err)
{
    td_status rc = TD_OK;
    int fd = -1;
    uint8_t *buf = NULL;
    uint8_t hdr[TD_BLOB_HEADER], tag_hdr[4] = {0};
    char tag_buf[TD_BLOB_TAG_MAX];
    uint32_t tag_len = 0;
    struct stat sb;
    uint64_t length = 0;

    if (tag && tag_cap) tag[0] = '\0';
    *payload = NULL;
    *len = 0;
    if ((rc = open_blob(path, &fd, &sb, err))) goto cleanup;
    if (read_all(fd, hdr, sizeof hdr) != 0) {
        rc = td_fail(err, TD_EIO, NULL, "read %s: %s", path, strerror(errno ? errno : EIO));
        goto cleanup;
    }
    uint32_t version = td_rd32(hdr + 8);
    if (memcmp(hdr, BLOB_MAGIC, 8) == 0 && version == TD_BLOB_VERSION_TAGGED) {
        if (sb.st_size < TD_BLOB_HEADER + 4 || read_all(fd, tag_hdr, 4) != 0 ||
            (tag_len = td_rd32(tag_hdr)) > TD_BLOB_TAG_MAX ||
            (off_t)tag_len > sb.st_size - TD_BLOB_HEADER - 4 ||
            read_all(fd, tag_buf, tag_len) != 0) {
            rc = td_fail(err, TD_EIO, NULL, "%s: truncated or malformed tag", path);
            goto cleanup;
        }
    }
    off_t before = TD_BLOB_HEADER + (version == TD_BLOB_VERSION_TAGGED ? 4 + (off_t)tag_len : 0);
    if ((rc = check_header(path, hdr, &sb, kind, before, &length, err))) goto cleanup;
    buf = malloc(length ? (size_t)length : 1);
    if (!buf) {
        rc = td_fail(err, TD_ENOMEM, NULL, "%s: cannot allocate %llu bytes", path,
                     (unsigned long long)length);
        goto cleanup;
    }
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    td_xxh64_state h;
    td_xxh64_init(&h, 0);
    td_xxh64_update(&h, hdr, 32);
    if (version == TD_BLOB_VERSION_TAGGED) {
        td_xxh64_update(&h, tag_hdr, 4);
        td_xxh64_update(&h, tag_buf, tag_len);
    }
    for (size_t off = 0; off < length;) {
        size_t c = length - off < CHUNK ? (size_t)(length - off) : CHUNK;
        if (read_all(fd, buf + off, c) != 0) {
            rc = td_fail(err, TD_EIO, NULL, "read %s: %s", path,
                         errno ? strerror(errno) : "file shrank while reading");
            goto cleanup;
        }
        td_xxh64_update(&h, buf + off, c);
        off += c;
    }
    if ((rc = checksum_status(path, hdr, td_xxh64_digest(&h), err))) goto cleanup;
    if (aux) *aux = td_rd64(hdr + 16);
    if (tag && tag_cap) {
        size_t n = tag_len < tag_cap - 1 ? tag_len : tag_cap - 1;
        memcpy(tag, tag_buf, n);
        tag[n] = '\0';
    }
    *payload = buf;
    *len = (size_t)length;
    buf = NULL;
cleanup:
    free(buf);
    if (fd >= 0) close(fd);
    return rc;
}

td_status td_blob_image(uint32_t kind, uint64_t aux, const td_blob_seg *segs, int nseg,
                        void **image, size_t *len, td_error *err)
{
    size_t length = 0;
    for (int i = 0; i < nseg; i++)
        length += segs[i].len;
    uint8_t *buf = malloc(TD_BLOB_HEADER + length);
    *image = buf;
    *len = TD_BLOB_HEADER + length;
    if (!buf) return td_fail(err, TD_ENOMEM, NULL, "out of memory for a blob of %zu bytes", length);
    td_xxh64_state h;
    td_xxh64_init(&h, 0);
    fill_header(buf, TD_BLOB_VERSION, kind, aux, length);
    td_xxh64_update(&h, buf, 32);
    uint8_t *p = buf + TD_BLOB_HEADER;
    for (int i = 0; i < nseg; i++) {
        if (segs[i].len) memcpy(p, segs[i].data, segs[i].len);
        p += segs[i].len;
    }
    td_xxh64_update(&h, buf + TD_BLOB_HEADER, length);
    td_wr64(buf + 32, td_xxh64_digest(&h));
    return TD_OK;
}

td_status td_blob_image_check(const void *image, size_t len, uint32_t kind, const char *what,
                              uint64_t *aux, const void **payload, size_t *plen, td_error *err)
{
    const uint8_t *hdr = image;
    struct stat sb = {.st_size = (off_t)len};
    uint64_t length = 0;
    td_status rc;

    *payload = NULL;
    *plen = 0;
    if (len < TD_BLOB_HEADER)
        return td_fail(err, TD_EIO, NULL, "%s: truncated (%zu bytes, no header)", what, len);
    if ((rc = check_header(what, hdr, &sb, kind, TD_BLOB_HEADER, &length, err))) return rc;
    td_xxh64_state h;
    td_xxh64_init(&h, 0);
    td_xxh64_update(&h, hdr, 32);
    td_xxh64_update(&h, hdr + TD_BLOB_HEADER, (size_t)length);
    if ((rc = checksum_status(what, hdr, td_xxh64_digest(&h), err))) return rc;
    if (aux) *aux = td_rd64(hdr + 16);
    *payload = hdr + TD_BLOB_HEADER;
    *plen = (size_t)length;
    return TD_OK;
}

td_status td_blob_map(const char *path, uint32_t kind, const td_blob_stamp *verified,
                      td_blob_map_t *out, td_error *err)
{
    td_status rc = TD_OK;
    int fd = -1;
    struct stat sb;
    uint64_t length = 0;
    void *base = MAP_FAILED;

    memset(out, 0, sizeof *out);
    if ((rc = open_blob(path, &fd, &sb, err))) goto cleanup;
    base = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        rc = td_fail(err, errno == ENOMEM ? TD_ENOMEM : TD_EIO, NULL, "mmap %s: %s", path,
                     strerror(errno));
        goto cleanup;
    }
    const uint8_t *hdr = base; /* untagged: datasets carry no tag */
    if ((rc = check_header(path, hdr, &sb, kind, TD_BLOB_HEADER, &length, err))) goto cleanup;
    td_blob_stamp stamp = {.dev = (uint64_t)sb.st_dev,
                           .ino = (uint64_t)sb.st_ino,
                           .size = (int64_t)sb.st_size,
                           .mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec,
                           .ctime_ns =
                               (int64_t)sb.st_ctim.tv_sec * 1000000000 + sb.st_ctim.tv_nsec};
    out->verified = !verified || memcmp(verified, &stamp, sizeof stamp) != 0;
    if (out->verified) { /* a file not seen before, or changed since: hash it */
        madvise(base, (size_t)sb.st_size, MADV_SEQUENTIAL);
        td_xxh64_state h;
        td_xxh64_init(&h, 0);
        td_xxh64_update(&h, hdr, 32);
        td_xxh64_update(&h, hdr + TD_BLOB_HEADER, (size_t)length);
        madvise(base, (size_t)sb.st_size, MADV_NORMAL);
        if ((rc = checksum_status(path, hdr, td_xxh64_digest(&h), err))) goto cleanup;
    }
    out->base = base;
    out->map_len = (size_t)sb.st_size;
    out->payload = hdr + TD_BLOB_HEADER;
    out->len = (size_t)length;
    out->aux = td_rd64(hdr + 16);
    out->stamp = stamp;
    base = MAP_FAILED;
cleanup:
    if (base != MAP_FAILED) munmap(base, (size_t)sb.st_size);
    if (fd >= 0) close(fd); /* the mapping stays valid */
    return rc;
}

void td_blob_unmap(td_blob_map_t *m)
{
    if (m && m->base) munmap(m->base, m->map_len);
    if (m) memset(m, 0, sizeof *m);
}

void td_blob_free(void *payload) { free(payload); }

int td_blob_is_temp(const char *name) { return strstr(name, ".tmp.") != NULL; }

/* ---- streaming writer --------------------------------------------------------------- */

struct td_blob_out {
    int fd;
    uint64_t length;   /* payload bytes so far (buffered ones included) */
    uint64_t declared; /* the length promised at open (0: none) */
    int inline_hash;   /* 1 while h covers the header and every byte written */
    td_xxh64_state h;
    size_t buf_len;
    char path[PATH_MAX], tmp[PATH_MAX];
    char buf[CHUNK]; /* writes go out a MiB at a time */
};

/* Starts the disk writes of every whole WRITEBACK bytes written so far (not waiting for
 * them), so that they overlap what is still arriving and commit's fsync has little left;
 * a hint: its failure is fsync's to report. */
#define WRITEBACK ((uint64_t)16 << 20)
static void out_writeback(td_blob_out *o, size_t just_written)
{
    uint64_t end = TD_BLOB_HEADER + o->length - o->buf_len, before = end - just_written;
    if (end / WRITEBACK != before / WRITEBACK) {
        uint64_t upto = end / WRITEBACK * WRITEBACK;
        sync_file_range(o->fd, (off_t)(upto - WRITEBACK), (off_t)WRITEBACK, SYNC_FILE_RANGE_WRITE);
    }
}

static td_status out_flush(td_blob_out *o, td_error *err)
{
    size_t n = o->buf_len;
    if (n && write_all(o->fd, o->buf, n) != 0)
        return td_fail(err, write_status(errno), NULL, "write %s: %s", o->tmp, strerror(errno));
    o->buf_len = 0;
    out_writeback(o, n);
    return TD_OK;
}

td_status td_blob_out_open(td_blob_out **out, const char *path, uint32_t kind, uint64_t aux,
                           uint64_t length, td_error *err)
{
    static atomic_uint counter;
    *out = NULL;
    td_blob_out *o = malloc(sizeof *o);
    if (!o) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    o->length = 0;
    o->buf_len = 0;
    o->declared = length;
    o->inline_hash = length > 0;
    if (o->inline_hash) { /* the header is known: hash as the payload goes out */
        uint8_t hdr[TD_BLOB_HEADER];
        fill_header(hdr, TD_BLOB_VERSION, kind, aux, length);
        td_xxh64_init(&o->h, 0);
        td_xxh64_update(&o->h, hdr, 32);
    }
    int n1 = snprintf(o->path, sizeof o->path, "%s", path);
    int n2 = snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%ld.s%u", path, (long)getpid(),
                      atomic_fetch_add(&counter, 1));
    if (n1 < 0 || (size_t)n1 >= sizeof o->path || n2 < 0 || (size_t)n2 >= sizeof o->tmp) {
        free(o);
        return td_fail(err, TD_EIO, NULL, "blob path too long: %s", path);
    }
    o->fd = open(o->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (o->fd < 0) {
        td_status rc = td_fail(err, TD_EIO, NULL, "create %s: %s", o->tmp, strerror(errno));
        free(o);
        return rc;
    }
    if (lseek(o->fd, TD_BLOB_HEADER, SEEK_SET) < 0) {
        td_status rc = td_fail(err, TD_EIO, NULL, "seek %s: %s", o->tmp, strerror(errno));
        td_blob_out_abort(o);
        return rc;
    }
    *out = o;
    return TD_OK;
}

td_status td_blob_out_write(td_blob_out *o, const void *data, size_t len, td_error *err)
{
    const char *p = data;
    o->length += len;
    if (o->inline_hash) td_xxh64_update(&o->h, data, len);
    if (o->buf_len == 0 && len >= CHUNK / 16) { /* big pieces skip the buffer */
        if (write_all(o->fd, data, len) != 0)
            return td_fail(err, write_status(errno), NULL, "write %s: %s", o->tmp, strerror(errno));
        out_writeback(o, len);
        return TD_OK;
    }
    while (len > 0) {
        size_t c = CHUNK - o->buf_len < len ? CHUNK - o->buf_len : len;
        memcpy(o->buf + o->buf_len, p, c);
        o->buf_len += c;
        p += c;
        len -= c;
        if (o->buf_len == CHUNK && out_flush(o, err)) return TD_EIO;
    }
    return TD_OK;
}

td_status td_blob_out_pwrite(td_blob_out *o, uint64_t off, const void *data, size_t len,
                             td_error *err)
{
    td_status rc = out_flush(o, err);
    if (rc) return rc;
    if (off + len > o->length)
        return td_fail(err, TD_EINTERNAL, NULL, "blob %s: pwrite past the payload", o->tmp);
    o->inline_hash = 0; /* bytes already hashed change: read back at commit */
    ssize_t w = pwrite(o->fd, data, len, (off_t)(TD_BLOB_HEADER + off));
    if (w < 0 || (size_t)w != len)
        return td_fail(err, write_status(w < 0 ? errno : EIO), NULL, "write %s: %s", o->tmp,
                       strerror(w < 0 ? errno : EIO));
    return TD_OK;
}

/* The checksum over the header and the payload as the file now holds them (the payload
 * was not hashed on the way out: td_blob_out_pwrite may have changed it since). */
static int out_checksum(td_blob_out *o, const uint8_t hdr[TD_BLOB_HEADER], uint64_t *sum)
{
    td_xxh64_state h;
    td_xxh64_init(&h, 0);
    td_xxh64_update(&h, hdr, 32);
    uint64_t off = 0;
    while (off < o->length) {
        size_t c = o->length - off < CHUNK ? (size_t)(o->length - off) : CHUNK;
        ssize_t r = pread(o->fd, o->buf, c, (off_t)(TD_BLOB_HEADER + off));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = EIO;
            return -1;
        }
        td_xxh64_update(&h, o->buf, (size_t)r);
        off += (uint64_t)r;
    }
    *sum = td_xxh64_digest(&h);
    return 0;
}

td_status td_blob_out_commit(td_blob_out *o, uint32_t kind, uint64_t aux, td_error *err)
{
    td_status rc = out_flush(o, err);
    uint8_t hdr[TD_BLOB_HEADER];
    uint64_t sum = 0;
    if (rc) goto cleanup;
    fill_header(hdr, TD_BLOB_VERSION, kind, aux, o->length);
    if (o->inline_hash && o->length == o->declared)
        sum = td_xxh64_digest(&o->h);
    else if (out_checksum(o, hdr, &sum) != 0) {
        rc = td_fail(err, TD_EIO, NULL, "read back %s: %s", o->tmp, strerror(errno));
        goto cleanup;
    }
    td_wr64(hdr + 32, sum);
    if (pwrite(o->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr || fsync(o->fd) != 0) {
        rc = td_fail(err, write_status(errno), NULL, "write %s: %s", o->tmp,
                     strerror(errno ? errno : EIO));
        goto cleanup;
    }
    int crc = close(o->fd);
    o->fd = -1;
    if (crc != 0) {
        rc = td_fail(err, write_status(errno), NULL, "close %s: %s", o->tmp, strerror(errno));
        goto cleanup;
    }
    if (rename(o->tmp, o->path) != 0) {
        rc = td_fail(err, TD_EIO, NULL, "rename %s -> %s: %s", o->tmp, o->path, strerror(errno));
        goto cleanup;
    }
    o->tmp[0] = '\0'; /* renamed: nothing left to remove */
    if (fsync_parent(o->path) != 0)
        rc = td_fail(err, TD_EIO, NULL, "fsync directory of %s: %s", o->path, strerror(errno));
cleanup:
    td_blob_out_abort(o);
    return rc;
}

void td_blob_out_abort(td_blob_out *o)
{
    if (!o) return;
    if (o->fd >= 0) close(o->fd);
    if (o->tmp[0]) unlink(o->tmp);
    free(o);
}
