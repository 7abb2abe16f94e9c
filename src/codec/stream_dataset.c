/* stream_dataset.c — dataset bodies parsed as they arrive (contracts in stream_dataset.h):
 * the errors and the public entry points (feed, finish, destroy) of the parser, whose
 * parts are in
 *   num_parse.{h,c}  numbers (scanned and converted in place, strtod only when needed)
 *   json_stream.c    the JSON lexer, a dataset's members, object bodies
 *   csv_stream.c     the CSV state machine
 *   array_build.c    the array builders (the tree readers' checks, in their order)
 * and share stream_impl.h (the parser's state).
 */
#include "codec/stream_dataset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/stream_impl.h"

/* ================================================================ errors ========= */

void td_ds_fatal(td_dstream *s, td_status st, const char *field, const char *fmt, ...)
{
    if (s->done) return;
    s->done = 1;
    s->fatal_st = st;
    va_list ap;
    va_start(ap, fmt);
    char msg[sizeof s->fatal_err.message];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    td_fail(&s->fatal_err, st, field, "%s", msg);
}

void td_ds_oom(td_dstream *s, const char *what)
{
    td_ds_fatal(s, TD_ENOMEM, what, "out of memory reading %s", what);
}

/* Malformed JSON at body offset off; the bytes from off on are then collected by
 * near_put (the caller gives those it holds). */
void td_ds_malformed(td_dstream *s, uint64_t off, const char *why)
{
    if (s->done) return;
    s->done = 1;
    s->malformed = 1;
    s->bad_off = off;
    s->bad_why = why;
    s->near_len = 0;
}

void td_ds_near_put(td_dstream *s, const char *p, size_t n)
{
    if (!s->malformed) return;
    size_t room = NEAR_MAX - s->near_len;
    if (n > room) n = room;
    memcpy(s->near + s->near_len, p, n);
    s->near_len += n;
}

/* ================================================================ public ========= */

td_dstream *td_ds_new(uint64_t size_hint)
{
    td_dstream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->size_hint = size_hint;
    s->state = S_VALUE;
    s->member = K_SKIP;
    return s;
}

/* Lexes p[0..n), which starts at body offset off. */
static void run(td_dstream *s, const char *p, size_t n, uint64_t off)
{
    if (!n) return;
    if (s->done) { /* past a malformed offset: the bytes quoted after it */
        td_ds_near_put(s, p, n);
        return;
    }
    s->base = p;
    s->base_off = off;
    if (s->csv) {
        td_ds_lex_csv(s, p, p + n);
    } else {
        td_ds_lex_json(s, p, p + n);
        if (s->tap != TAP_NONE && !s->done) td_ds_tap_flush(s, off + n);
    }
}

/* The first three bytes are held until they show whether the body opens with a UTF-8
 * byte order mark (skipped); at the end of the body (final) fewer may do. */
const char *td_ds_bom_check(td_dstream *s, const char *data, size_t len, int final)
{
    size_t before = s->pre_len;
    size_t take = len < 3 - before ? len : 3 - before;
    memcpy(s->pre + before, data, take);
    s->pre_len += take;
    if (s->pre_len < 3 && !final) return NULL;
    s->bom_checked = 1;
    if (s->pre_len == 3 && memcmp(s->pre, "\xEF\xBB\xBF", 3) == 0) return data + take;
    run(s, s->pre, before, 0); /* the bytes of earlier pieces, then this piece's */
    return data;
}

int td_dstream_feed(td_dstream *s, const char *data, size_t len)
{
    if (s->finished) return 1;
    if (!s->done) {
        const char *p = data;
        if (!s->bom_checked) p = td_ds_bom_check(s, data, len, 0);
        if (p) run(s, p, len - (size_t)(p - data), s->fed + (uint64_t)(p - data));
    } else if (s->malformed) {
        td_ds_near_put(s, data, len);
    }
    s->fed += len;
    if (!s->done) return 0;
    return !s->malformed || s->near_len >= NEAR_MAX;
}

uint64_t td_dstream_bytes(const td_dstream *s) { return s->fed; }

td_status td_dstream_finish(td_dstream *s, td_dataset_buf *out, td_error *err)
{
    memset(out, 0, sizeof *out);
    if (s->finished) return td_fail(err, TD_EINTERNAL, NULL, "td_dstream_finish called twice");
    s->finished = 1;
    if (!s->bom_checked && !s->done) td_ds_bom_check(s, "", 0, 1);
    td_status st = s->csv ? td_ds_csv_finish(s, out, err) : td_ds_json_finish(s, out, err);
    if (st) td_dataset_buf_free(out);
    return st;
}

void td_dstream_destroy(td_dstream *s)
{
    if (!s) return;
    for (int k = 0; k < NB; k++)
        td_build_drop(&s->b[k]);
    td_build_drop(&s->cx);
    td_build_drop(&s->cy);
    td_dataset_parts_fini(&s->parts);
    for (int k = 0; k < s->nak; k++)
        td_build_drop(&s->arr[k].b);
    free(s->arr);
    td_sbuf_fini(&s->small);
    cJSON_Delete(s->members);
    td_dstream_destroy(s->child);
    free(s->csv_name);
    td_names_fini(&s->names);
    td_strings_free(s->hdr, s->nhdr);
    free(s->rec_d);
    free(s->rec_f);
    free(s->rec_exact);
    free(s->rec_line_of);
    free(s);
}
