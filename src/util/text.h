/* text.h — byte-level text rules shared by the HTTP edge, the config and the logs:
 * UTF-8 validity, escaping of bytes echoed back to a client, and whole-file reads that
 * refuse (rather than cut) what does not fit. */
#ifndef TRAIND_TEXT_H
#define TRAIND_TEXT_H

#include <stddef.h>

#include "traind/status.h"

/* 1 when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF) with no
 * NUL byte; 0 otherwise. */
int td_utf8_valid(const char *s, size_t n);

/* Copies the NUL-terminated src into dst (dstlen > 0 bytes, always NUL-terminated),
 * keeping well-formed UTF-8 and writing every byte of a malformed sequence as the four
 * characters "\xHH"; with controls, control characters and DEL too (for text that is
 * not JSON-escaped afterwards). A sequence that would not fit whole is dropped, so dst is
 * always valid UTF-8. Returns dst. */
char *td_escape_bytes(char *dst, size_t dstlen, const char *src, int controls);

/* Reads all of path into a malloc'd, NUL-terminated buffer (*out, *len without the NUL).
 * A file larger than max bytes, or holding a NUL byte, is an error (TD_EINVAL), never
 * truncated; what names the file in messages ("tokens_file"), and is err->field. */
td_status td_read_small_file(const char *path, size_t max, const char *what, char **out,
                             size_t *len, td_error *err);

#endif
