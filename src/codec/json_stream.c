/* json_stream.c — JSON bodies as they arrive (stream_dataset.h): the lexer, a dataset's
 * members, and object bodies (td_dstream_object).
 *
 * A byte-level lexer keeps the syntax (a stack of open containers and what may come
 * next) and hands each value to the dataset logic by depth: the root object (depth 0),
 * its members (depth 1: "X", "y", ...), and inside an array member the builders'
 * levels (L = depth - 1: 0 the member, 1 its elements, 2 the elements of a row). A
 * token cut by the end of a piece is kept in tok[] (numbers and literals, at most
 * TOK_MAX bytes) or in the string decoder's state, and finished with the next piece;
 * a number wholly inside a piece is converted in place. Inside a row of numbers the
 * lexer runs a tight loop (number, comma, number, ...) that leaves at anything unusual,
 * to the general code, which handles every case.
 *
 * Objects (td_dstream_object: loss, predict and job bodies). The same lexer; the root
 * object's members go by key to a generic builder (numbers kept as float32 with what the
 * float does not tell on the side, the rule applied when the caller reads the array:
 * jarray_read, array_build.c), to a nested dataset parser (the bytes of the member's
 * value are fed to it as they are lexed), or into the small members' JSON text. */
#include "codec/stream_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static td_dstream *dstream_json_prefixed(uint64_t size_hint, const char *prefix);

/* ---------------------------------------------------------------- JSON: values --- */

static const char *const KEYS[] = {"X", "y", "Y", "pairs", "pair_labels", "name", NULL};

/* A key error wins over every value: stop reading values. */
static void key_error(td_dstream *s)
{
    s->keys_final = 1;
    for (int k = 0; k < NB; k++)
        td_build_drop(&s->b[k]);
}

/* X's first error is known: its values are of no more use. */
static void x_failed(td_dstream *s)
{
    if (s->b[B_X].failed && s->b[B_X].data) td_build_drop(&s->b[B_X]);
}

static void obj_value(td_dstream *s, int d, td_json_vkind k, const num *nm, const char *text,
                      size_t tlen, uint64_t off);
static void obj_close(td_dstream *s, int d, int is_array, uint64_t off);
static void obj_key(td_dstream *s);
static void obj_member_begin(td_dstream *s, uint64_t off);
static void obj_member_end(td_dstream *s, uint64_t off);

/* A value of kind k begins at depth d (containers: as they open). */
static void on_value(td_dstream *s, int d, td_json_vkind k, const num *nm, const char *text,
                     size_t tlen, uint64_t off)
{
    if (s->objmode) {
        obj_value(s, d, k, nm, text, tlen, off);
        return;
    }
    if (d == 0) {
        if (k == TD_JV_OBJECT) {
            s->root_obj = 1;
        } else {
            s->parts.key_st = td_json_fail_not_object(s->prefix, "the dataset", &s->parts.key_err);
            key_error(s);
        }
        return;
    }
    if (s->keys_final || !s->root_obj) return;
    int m = s->member;
    if (d == 1) {
        if (m == K_SKIP || k == TD_JV_NULL) return; /* null is "not given" */
        if (m == K_NAME) {
            s->parts.name_present = 1;
            if (k != TD_JV_STRING) {
                char pn[TD_JSON_PATH_MAX];
                td_json_path(pn, s->prefix, "name");
                s->parts.name_st = td_json_fail_not_string(pn, k, &s->parts.name_err);
            }
            return;
        }
        s->b[m].part->present = 1;
        td_build_value(s, &s->b[m], 0, k, nm, text, tlen, off);
        if (m == K_X) x_failed(s);
        return;
    }
    if (m >= NB) return;
    td_build_value(s, &s->b[m], d - 1, k, nm, text, tlen, off);
    if (m == K_X) x_failed(s);
}

/* The container that was a value at depth d has ended at off (just past it). */
static void on_close(td_dstream *s, int d, int is_array, uint64_t off)
{
    if (s->objmode) {
        obj_close(s, d, is_array, off);
        return;
    }
    if (d == 0 || s->keys_final || !s->root_obj || s->member >= NB) return;
    td_build_close(s, &s->b[s->member], d - 1, is_array, off);
    if (s->member == K_X) x_failed(s);
}

/* A key of the root object has been read (s->key, s->cap_len, s->cap_total). */
static void on_key(td_dstream *s)
{
    s->member = K_SKIP;
    if (s->objmode) {
        obj_key(s);
        return;
    }
    if (s->keys_final || !s->root_obj) return;
    const char *key = s->key;
    int idx = -1;
    if (s->cap_total <= KEY_CAP)
        for (int k = 0; KEYS[k]; k++)
            if (strcmp(KEYS[k], key) == 0) idx = k;
    int repeated = idx >= 0 && (s->seen & (1u << idx));
    td_status st =
        td_json_check_key(key, repeated, s->prefix, "the dataset", KEYS, &s->parts.key_err);
    if (st) {
        s->parts.key_st = st;
        key_error(s);
        return;
    }
    s->seen |= 1u << idx;
    s->member = idx;
}

/* ---------------------------------------------------------------- JSON: lexer ---- */

static inline int is_ws(unsigned char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

/* The bytes a number or literal is made of (anything else ends it). */
static inline int is_bare(unsigned char c)
{
    return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '.' || c == '+' ||
        c == '-' || c == '_';
}

/* After a complete value at the current depth. */
static inline void value_done(td_dstream *s) { s->state = s->depth ? S_COMMA_OR_CLOSE : S_END; }

/* Case-insensitive equality of text[0..n) with lower-case word. */
static int word_eq(const char *text, size_t n, const char *word)
{
    size_t k = strlen(word);
    if (n != k) return 0;
    for (size_t i = 0; i < k; i++)
        if ((text[i] | 0x20) != word[i]) return 0;
    return 1;
}

/* A complete bare token text[0..n) at body offset off. Returns 0, or -1 when malformed
 * (then near_put has the token's bytes from the offending one). */
static int bare_token(td_dstream *s, const char *text, size_t n, uint64_t off)
{
    unsigned char c = (unsigned char)text[0];
    const char *t = text;
    size_t tn = n;
    if (c == '-' || c == '+') {
        t++;
        tn--;
    }
    if (tn && ((unsigned char)(*t | 0x20) >= 'a' && (unsigned char)(*t | 0x20) <= 'z')) {
        td_json_vkind k = TD_JV_NONE;
        if (t == text && n == 4 && memcmp(text, "true", 4) == 0)
            k = TD_JV_TRUE;
        else if (t == text && n == 5 && memcmp(text, "false", 5) == 0)
            k = TD_JV_FALSE;
        else if (t == text && n == 4 && memcmp(text, "null", 4) == 0)
            k = TD_JV_NULL;
        else if (word_eq(t, tn, "infinity") || word_eq(t, tn, "inf"))
            k = c == '-' ? TD_JV_NINF : TD_JV_PINF;
        else if (word_eq(t, tn, "nan"))
            k = TD_JV_NAN;
        if (k == TD_JV_NONE) {
            td_ds_malformed(s, off,
                            "not a JSON value (true, false, null, a number, NaN or "
                            "Infinity)");
            td_ds_near_put(s, text, n);
            return -1;
        }
        on_value(s, s->depth, k, NULL, NULL, 0, off);
        value_done(s);
        return 0;
    }
    if (c == '+' || !(c == '-' || is_digit(c))) {
        td_ds_malformed(s, off, "not a JSON value");
        td_ds_near_put(s, text, n);
        return -1;
    }
    num nm;
    const char *stop;
    if (scan_number(text, text + n, 1, &nm, &stop) != SCAN_OK || stop != text + n) {
        size_t at = (size_t)(stop - text);
        td_ds_malformed(s, off + at, "invalid number");
        td_ds_near_put(s, stop, n - at);
        return -1;
    }
    on_value(s, s->depth, TD_JV_NUMBER, &nm, text, n, off);
    value_done(s);
    return 0;
}

/* Starts or continues a bare token at p; returns where the lexer goes on. */
static const char *bare(td_dstream *s, const char *p, const char *end)
{
    const char *q = p;
    while (q < end && is_bare((unsigned char)*q))
        q++;
    size_t n = (size_t)(q - p);
    if (s->tok == TOK_BARE) { /* continuing a token cut by the last piece */
        if (s->tok_len + n > TOK_MAX) {
            td_ds_malformed(s, s->tok_off, "a number or literal longer than 4096 bytes");
            td_ds_near_put(s, s->tok_buf, s->tok_len);
            return p;
        }
        memcpy(s->tok_buf + s->tok_len, p, n);
        s->tok_len += n;
        if (q == end) return q;
        s->tok = TOK_NONE;
        s->tok_buf[s->tok_len] = '\0';
        if (bare_token(s, s->tok_buf, s->tok_len, s->tok_off))
            return q; /* near continues after the token */
        return q;
    }
    if (q == end) { /* may go on in the next piece */
        if (n > TOK_MAX) {
            td_ds_malformed(s, off_of(s, p), "a number or literal longer than 4096 bytes");
            return p;
        }
        s->tok = TOK_BARE;
        s->tok_off = off_of(s, p);
        memcpy(s->tok_buf, p, n);
        s->tok_len = n;
        return q;
    }
    if (n > TOK_MAX) {
        td_ds_malformed(s, off_of(s, p), "a number or literal longer than 4096 bytes");
        return p;
    }
    if (bare_token(s, p, n, off_of(s, p))) return q;
    return q;
}

/* The tight loop over a row of numbers of builder b, entered at p with a value
 * expected. Leaves (returning where it stopped, state consistent) at anything but
 * number, comma, number, ... */
static const char *row_loop(td_dstream *s, build *b, const char *p, const char *end)
{
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (!(c == '-' || is_digit(c))) return p;
        if (b->i > 0 && b->j >= b->C) return p;
        num nm;
        const char *q;
        if (scan_number(p, end, 0, &nm, &q) != SCAN_OK || is_bare((unsigned char)*q) ||
            q - p > TOK_MAX)
            return p;
        if (b->generic) { /* every number is kept */
            td_build_generic(s, b, b->i, b->j, TD_JV_NUMBER, &nm, p, (size_t)(q - p));
            if (s->done) return end;
        } else {
            double d;
            float f = num_f32(&nm, p, (size_t)(q - p), &d);
            if (!td_json_rule_ok(&b->rule, d)) return p;
            uint32_t bits;
            bits_of_float(&bits, f);
            if (b->n == b->cap) {
                if (td_build_reserve(s, b, b->n + 1)) return end;
            }
            b->data[b->n++] = bits;
        }
        b->j++;
        p = q;
        /* after the value */
        while (p < end && is_ws((unsigned char)*p))
            p++;
        if (p == end || *p != ',') {
            s->state = S_COMMA_OR_CLOSE;
            return p;
        }
        p++;
        while (p < end && is_ws((unsigned char)*p))
            p++;
        s->state = S_VALUE;
        if (p == end) return p;
    }
}

/* Starts a string at p (just past the quote). */
static void string_start(td_dstream *s, int is_key)
{
    s->tok = TOK_STR;
    s->str_key = is_key;
    s->esc = 0;
    s->esc_hi = 0;
    s->cap_len = s->cap_total = 0;
    s->cap_nul = 0;
    s->srole = STR_SKIP;
    if (is_key && s->depth == 1 && s->root_obj && !s->keys_final) {
        s->srole = STR_KEY;
        s->cap_buf = s->key;
        s->cap_max = KEY_CAP;
    } else if (!is_key && s->depth == 1 && s->root_obj && !s->keys_final && s->member == K_NAME) {
        s->srole = STR_NAME;
        s->cap_buf = s->name_buf;
        s->cap_max = NAME_CAP;
    } else if (!is_key && s->depth == 2 && s->root_obj && !s->keys_final && s->member == K_Y &&
               s->b[B_LABELS].name_pending) {
        s->srole = STR_LABEL;
        s->cap_buf = s->label_buf;
        s->cap_max = TD_CLASS_NAME_MAX;
    }
}

static inline void cap_put(td_dstream *s, const char *p, size_t n)
{
    if (s->srole == STR_SKIP || s->cap_nul) return;
    s->cap_total += n;
    size_t room = s->cap_max - s->cap_len;
    if (n > room) n = room;
    memcpy(s->cap_buf + s->cap_len, p, n);
    s->cap_len += n;
}

/* A decoded code point (cJSON's UTF-8). */
static void cap_utf8(td_dstream *s, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp == 0) { /* six bytes that are never UTF-8, as td_json_parse makes of the
                    * escape: the string is refused (or the key unknown), never cut */
        cap_put(s, "\xff\xff\xff\xff\xff\xff", 6);
        return;
    }
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    cap_put(s, u, n);
}

static void string_end(td_dstream *s)
{
    s->tok = TOK_NONE;
    if (s->srole != STR_SKIP) s->cap_buf[s->cap_len] = '\0';
    if (s->str_key) {
        if (s->srole == STR_KEY)
            on_key(s);
        else if (s->depth == 1)
            s->member = K_SKIP;
        s->state = S_COLON;
        return;
    }
    if (s->srole == STR_LABEL) td_build_label_done(s, &s->b[B_LABELS]);
    if (s->srole == STR_NAME && !s->parts.name_st) {
        s->parts.name = strdup(s->cap_buf);
        s->parts.name_len = s->cap_total;
        if (!s->parts.name) td_ds_oom(s, "name");
    }
    value_done(s);
}

static int hex_val(unsigned char c)
{
    if (is_digit(c)) return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Continues a string at p; returns where the lexer goes on. */
static const char *string_more(td_dstream *s, const char *p, const char *end)
{
    while (p < end) {
        if (s->esc == 0) {
            const char *q = p;
            while (q < end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
                q++;
            cap_put(s, p, (size_t)(q - p));
            p = q;
            if (p == end) return p;
            if (*p == '"') {
                s->str_end = off_of(s, p) + 1;
                string_end(s);
                return p + 1;
            }
            if (*p == '\\') {
                s->esc = 1;
                p++;
                continue;
            }
            td_ds_malformed(s, off_of(s, p),
                            "a control character inside a string (write it as "
                            "an escape)");
            return p;
        }
        unsigned char c = (unsigned char)*p;
        if (s->esc == 1) {
            char out = 0;
            switch (c) {
            case '"': out = '"'; break;
            case '\\': out = '\\'; break;
            case '/': out = '/'; break;
            case 'b': out = '\b'; break;
            case 'f': out = '\f'; break;
            case 'n': out = '\n'; break;
            case 'r': out = '\r'; break;
            case 't': out = '\t'; break;
            case 'u':
                s->esc = 2;
                s->esc_u = 0;
                p++;
                continue;
            default: td_ds_malformed(s, off_of(s, p), "invalid escape in a string"); return p;
            }
            cap_put(s, &out, 1);
            s->esc = 0;
            p++;
            continue;
        }
        if (s->esc >= 2 && s->esc <= 5) {
            int h = hex_val(c);
            if (h < 0) {
                td_ds_malformed(s, off_of(s, p), "invalid \\u escape: four hex digits are needed");
                return p;
            }
            s->esc_u = s->esc_u * 16 + (uint32_t)h;
            p++;
            if (++s->esc < 6) continue;
            uint32_t u = s->esc_u;
            if (s->esc_hi) {
                if (u < 0xDC00 || u > 0xDFFF) {
                    td_ds_malformed(s, off_of(s, p - 1),
                                    "invalid \\u escape: a high surrogate "
                                    "must be followed by a low one");
                    td_ds_near_put(s, p - 1, 1);
                    return p;
                }
                cap_utf8(s, 0x10000 + (((s->esc_hi & 0x3FF) << 10) | (u & 0x3FF)));
                s->esc_hi = 0;
                s->esc = 0;
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                td_ds_malformed(s, off_of(s, p - 1),
                                "invalid \\u escape: a low surrogate without "
                                "a high one");
                td_ds_near_put(s, p - 1, 1);
                return p;
            } else if (u >= 0xD800 && u <= 0xDBFF) {
                s->esc_hi = u;
                s->esc = 6;
            } else {
                cap_utf8(s, u);
                s->esc = 0;
            }
            continue;
        }
        /* 6: a '\' then 7: a 'u' must follow a high surrogate */
        if (c != (s->esc == 6 ? '\\' : 'u')) {
            td_ds_malformed(s, off_of(s, p),
                            "invalid \\u escape: a high surrogate must be "
                            "followed by a low one");
            return p;
        }
        s->esc = s->esc == 6 ? 7 : 2;
        s->esc_u = 0;
        p++;
    }
    return p;
}

static void open_container(td_dstream *s, unsigned char c, const char *p)
{
    if (s->depth >= MAX_DEPTH) {
        td_ds_malformed(s, off_of(s, p), "nested deeper than 1000 levels");
        return;
    }
    on_value(s, s->depth, c == '[' ? TD_JV_ARRAY : TD_JV_OBJECT, NULL, NULL, 0, off_of(s, p));
    s->ctype[s->depth++] = c;
    s->state = c == '[' ? S_VALUE_OR_CLOSE : S_KEY_OR_CLOSE;
}

static void close_container(td_dstream *s, const char *p)
{
    s->depth--;
    on_close(s, s->depth, s->ctype[s->depth] == '[', off_of(s, p) + 1);
    if (s->depth == 1) s->member = K_SKIP;
    value_done(s);
}

/* c closes the innermost open container. */
static int closes(const td_dstream *s, unsigned char c)
{
    return c == (s->ctype[s->depth - 1] == '[' ? ']' : '}');
}

/* The lexer over one piece. */
void td_ds_lex_json(td_dstream *s, const char *p, const char *end)
{
    while (p < end) {
        if (s->tok == TOK_STR) {
            p = string_more(s, p, end);
            if (s->done) goto stop;
            continue;
        }
        if (s->tok == TOK_BARE) {
            p = bare(s, p, end);
            if (s->done) goto stop;
            continue;
        }
        unsigned char c = (unsigned char)*p;
        if (is_ws(c)) {
            p++;
            continue;
        }
        switch (s->state) {
        case S_VALUE_OR_CLOSE:
        case S_KEY_OR_CLOSE: /* just opened: empty, or c is read again as the first entry */
            if (closes(s, c)) {
                close_container(s, p);
                p++;
            } else {
                s->state = s->state == S_VALUE_OR_CLOSE ? S_VALUE : S_KEY;
            }
            break;
        case S_VALUE:
            if (!s->started) s->started = 1;
            if (c == '[' || c == '{') {
                open_container(s, c, p);
                p++;
            } else if (c == '"') {
                on_value(s, s->depth, TD_JV_STRING, NULL, NULL, 0, off_of(s, p));
                string_start(s, 0);
                p++;
            } else if (is_bare(c)) {
                build *b = NULL;
                if (s->depth == 3 && !s->keys_final && s->member < NB)
                    b = &s->b[s->member];
                else if (s->depth == 3 && s->objmode && s->om >= 0)
                    b = &s->arr[s->om].b;
                if (b) {
                    if (b->active && !b->failed && !b->rule.is_int && b->shape == SH_ROWS) {
                        const char *q = row_loop(s, b, p, end);
                        if (q != p || s->done) {
                            p = q;
                            break;
                        }
                    }
                }
                p = bare(s, p, end);
            } else {
                td_ds_malformed(s, off_of(s, p), "expected a value");
            }
            break;
        case S_KEY:
            if (c == '"') {
                if (s->objmode && s->depth == 1) obj_member_begin(s, off_of(s, p));
                string_start(s, 1);
                p++;
            } else {
                td_ds_malformed(s, off_of(s, p), "expected a key (a string in double quotes)");
            }
            break;
        case S_COLON:
            if (c == ':') {
                s->state = S_VALUE;
                p++;
            } else {
                td_ds_malformed(s, off_of(s, p), "expected ':' after a key");
            }
            break;
        case S_COMMA_OR_CLOSE: {
            unsigned char open = s->ctype[s->depth - 1];
            if (s->objmode && s->depth == 1 && (c == ',' || c == '}'))
                obj_member_end(s, off_of(s, p));
            if (c == ',') {
                s->state = open == '[' ? S_VALUE : S_KEY;
                p++;
            } else if (closes(s, c)) {
                close_container(s, p);
                p++;
            } else {
                td_ds_malformed(s, off_of(s, p),
                                open == '[' ? "expected ',' or ']'" : "expected ',' or '}'");
            }
            break;
        }
        case S_END: td_ds_malformed(s, off_of(s, p), "unexpected data after the JSON value"); break;
        }
        if (s->done) goto stop;
    }
    return;
stop:
    if (s->malformed && p < end && off_of(s, p) >= s->bad_off)
        td_ds_near_put(s, p, (size_t)(end - p));
}

/* ---------------------------------------------------------------- JSON: finish --- */

/* The end of a JSON body: a token cut by it, an unfinished value; then the malformed or
 * fatal error, if any. */
static td_status syntax_finish(td_dstream *s, td_error *err)
{
    uint64_t total = s->fed;
    if (!s->done && s->tok == TOK_BARE) {
        s->tok = TOK_NONE;
        s->tok_buf[s->tok_len] = '\0';
        bare_token(s, s->tok_buf, s->tok_len, s->tok_off);
    }
    if (!s->done) {
        if (!s->started)
            td_ds_malformed(s, total, "the body is empty");
        else if (s->tok == TOK_STR || s->depth > 0 || s->state != S_END)
            td_ds_malformed(s, total, "unexpected end of input");
    }
    if (s->malformed)
        return td_json_fail_malformed(s->bad_off, s->bad_off >= total ? NULL : s->near, s->near_len,
                                      s->bad_why, err);
    if (s->done) {
        if (err) *err = s->fatal_err;
        return s->fatal_st;
    }
    return TD_OK;
}

td_status td_ds_json_finish(td_dstream *s, td_dataset_buf *out, td_error *err)
{
    td_status st = syntax_finish(s, err);
    if (st) return st;
    if (!s->keys_final) {
        for (int k = 0; k < NB; k++)
            if (k != B_PAIRS) td_build_finish(&s->b[k], NULL);
        /* pairs: indices in [0, N-1]; X comes first in every error order, so its N is
         * the one that matters */
        build *bp = &s->b[B_PAIRS];
        td_json_rule prule = bp->rule;
        if (!s->parts.X.st && bp->part->present) {
            int64_t N = s->parts.X.rows;
            prule.lo = 0;
            prule.hi = N - 1 > INT32_MAX ? INT32_MAX : N - 1;
            /* the values kept are those before the array's first error, row by row: an
             * index out of range among them comes first */
            for (size_t k = 0; k < bp->n; k++) {
                int32_t v;
                memcpy(&v, &bp->data[k], sizeof v);
                if (v >= prule.lo && v <= prule.hi) continue;
                int64_t i = bp->C > 0 ? (int64_t)k / bp->C : 0;
                int64_t j = bp->C > 0 ? (int64_t)k % bp->C : (int64_t)k;
                char path[TD_JSON_PATH_MAX];
                td_json_index_path(path, bp->path, i, j);
                bp->part->st = td_json_elem_fail(&prule, TD_JV_NUMBER, v, path, &bp->part->err);
                break;
            }
        }
        td_build_finish(bp, &prule);
    }
    return td_dataset_parts_finish(out, &s->parts, s->prefix, err);
}

/* ================================================================ objects ======== */

/* Object mode: the lexer is the dataset's; the members are routed by key (obj_key). The
 * small members' bytes, and the inline dataset's, are "tapped": from tap_off on, every
 * byte lexed goes to the small text or to the nested parser, up to the ',' or '}' that
 * ends the member (obj_member_end), piece by piece (run flushes at a piece's end). */

static int key_index(const char *const *keys, const char *key)
{
    for (int k = 0; keys && keys[k]; k++)
        if (strcmp(keys[k], key) == 0) return k;
    return -1;
}

static void small_put(td_dstream *s, const char *p, size_t n)
{
    if (s->done) return;
    if (s->small.len + n > TD_OBJECT_SMALL_MAX) {
        td_ds_fatal(s, TD_EINVAL, s->key,
                    "%.64s: the members of the body other than its arrays "
                    "take more than %u MiB of JSON",
                    s->key, TD_OBJECT_SMALL_MAX >> 20);
        return;
    }
    td_sbuf_put(&s->small, p, n);
    if (s->small.oom) td_ds_oom(s, "the body");
}

/* The tapped bytes up to body offset upto (all in the piece being lexed). */
void td_ds_tap_flush(td_dstream *s, uint64_t upto)
{
    if (s->tap == TAP_NONE || upto <= s->tap_off) return;
    const char *p = s->base + (s->tap_off - s->base_off);
    size_t n = (size_t)(upto - s->tap_off);
    s->tap_off = upto;
    if (s->tap == TAP_SMALL)
        small_put(s, p, n);
    else
        td_dstream_feed(s->child, p, n);
}

/* A member's key begins at off (its opening quote). */
static void obj_member_begin(td_dstream *s, uint64_t off)
{
    s->om = OM_NONE;
    if (s->small_members++) small_put(s, ",", 1);
    s->tap = TAP_SMALL;
    s->tap_off = off;
}

/* The member ends at off (the ',' or '}' after it). */
static void obj_member_end(td_dstream *s, uint64_t off)
{
    td_ds_tap_flush(s, off);
    s->tap = TAP_NONE;
    s->om = OM_NONE;
}

/* The member's key is read (s->key): small members go on being tapped; the others keep
 * their key and get a stand-in value (obj_value). */
static void obj_key(td_dstream *s)
{
    int whole = s->cap_total <= KEY_CAP;
    if (whole && key_index(s->skeys, s->key) >= 0) {
        s->om = OM_SMALL;
        return;
    }
    td_ds_tap_flush(s, s->str_end);
    s->tap = TAP_NONE;
    small_put(s, ":", 1);
    int a = whole ? key_index(s->akeys, s->key) : -1;
    if (a >= 0)
        s->om = s->arr[a].seen ? OM_OTHER : a;
    else if (whole && s->dkey && strcmp(s->key, s->dkey) == 0)
        s->om = s->data_seen ? OM_OTHER : OM_DATA;
    else
        s->om = OM_OTHER;
}

static void obj_value(td_dstream *s, int d, td_json_vkind k, const num *nm, const char *text,
                      size_t tlen, uint64_t off)
{
    if (d == 0) {
        if (k == TD_JV_OBJECT) {
            s->root_obj = 1;
            small_put(s, "{", 1);
        }
        return;
    }
    if (!s->root_obj) return;
    int om = s->om;
    if (d > 1) {
        if (om >= 0) td_build_value(s, &s->arr[om].b, d - 1, k, nm, text, tlen, off);
        return;
    }
    if (om == OM_SMALL || om == OM_NONE) return;
    if (k == TD_JV_NULL)
        small_put(s, "null", 4);
    else
        small_put(s, "0", 1);
    if (om == OM_DATA) {
        s->data_seen = 1;
        s->data_null = k == TD_JV_NULL;
        if (s->data_null) return;
        if (!(s->child = dstream_json_prefixed(s->size_hint, s->dkey))) {
            td_ds_oom(s, s->dkey);
            return;
        }
        if (k == TD_JV_OBJECT || k == TD_JV_ARRAY || k == TD_JV_STRING) {
            s->tap = TAP_CHILD; /* begins here, in this piece */
            s->tap_off = off;
        } else { /* a number or literal (maybe cut across pieces): not a dataset either */
            td_dstream_feed(s->child, "0", 1);
        }
        return;
    }
    if (om >= 0) {
        td_jarray *a = &s->arr[om];
        a->seen = 1;
        if (k == TD_JV_NULL) { /* null is "not given" */
            s->om = OM_OTHER;
            return;
        }
        a->part.present = 1;
        td_build_value(s, &a->b, 0, k, nm, text, tlen, off);
    }
}

static void obj_close(td_dstream *s, int d, int is_array, uint64_t off)
{
    if (d >= 1 && s->root_obj && s->om >= 0)
        td_build_close(s, &s->arr[s->om].b, d - 1, is_array, off);
}

td_dstream *td_dstream_object(const char *const *array_keys, const char *const *small_keys,
                              const char *dataset_key, uint64_t size_hint)
{
    td_dstream *s = td_ds_new(size_hint);
    if (!s) return NULL;
    s->objmode = 1;
    s->akeys = array_keys;
    s->skeys = small_keys;
    s->dkey = dataset_key;
    s->om = OM_NONE;
    td_sbuf_init(&s->small);
    while (array_keys && array_keys[s->nak])
        s->nak++;
    if (!(s->arr = calloc((size_t)s->nak + 1, sizeof *s->arr))) {
        free(s);
        return NULL;
    }
    for (int k = 0; k < s->nak; k++) {
        build *b = &s->arr[k].b;
        td_build_init(b, &s->arr[k].part, array_keys[k], SH_LABELS, 0, 0, 0, 0);
        b->generic = 1;
        b->fb = b->ib = b->rb = b->nb = -1;
    }
    return s;
}

td_status td_dstream_object_finish(td_dstream *s, const cJSON **members, td_error *err)
{
    *members = NULL;
    if (s->finished)
        return td_fail(err, TD_EINTERNAL, NULL, "td_dstream_object_finish called twice");
    s->finished = 1;
    if (!s->bom_checked && !s->done) td_ds_bom_check(s, "", 0, 1);
    td_status st = syntax_finish(s, err);
    if (st) return st;
    if (s->root_obj) {
        small_put(s, "}", 1);
        if ((st = syntax_finish(s, err))) return st;
        if ((st = td_json_parse(&s->members, s->small.data, s->small.len, err))) return st;
        td_sbuf_fini(&s->small);
    } else if (!(s->members = cJSON_CreateArray())) {
        return td_fail(err, TD_ENOMEM, "", "out of memory");
    }
    *members = s->members;
    return TD_OK;
}

td_jarray *td_dstream_array(td_dstream *s, const char *key)
{
    int k = key_index(s->akeys, key);
    return k >= 0 && s->arr[k].part.present ? &s->arr[k] : NULL;
}

td_status td_dstream_dataset(td_dstream *s, td_dataset_buf *out, td_error *err)
{
    memset(out, 0, sizeof *out);
    if (!s->child) return td_fail(err, TD_EINTERNAL, s->dkey, "no inline dataset to read");
    return td_dstream_finish(s->child, out, err);
}

td_dstream *td_dstream_json(uint64_t size_hint)
{
    td_dstream *s = td_ds_new(size_hint);
    if (!s) return NULL;
    td_dataset_parts *p = &s->parts;
    td_build_init(&s->b[B_X], &p->X, "X", SH_ROWS, 0, 0, 0, 0);
    td_build_init(&s->b[B_LABELS], &p->y, "y", SH_LABELS, 1, 0, INT32_MIN, INT32_MAX);
    s->b[B_LABELS].names_ok = 1;
    td_build_init(&s->b[B_PROBS], &p->Y, "Y", SH_ROWS, 0, TD_JSON_NONNEG, 0, 0);
    td_build_init(&s->b[B_PAIRS], &p->pairs, "pairs", SH_ROWS, 1, 0, INT32_MIN, INT32_MAX);
    td_build_init(&s->b[B_PL], &p->pair_labels, "pair_labels", SH_VECTOR, 1, TD_JSON_BOOLS, 0, 1);
    return s;
}

/* A JSON dataset parser whose fields are named "prefix.X[i][j]", ... (prefix kept). */
static td_dstream *dstream_json_prefixed(uint64_t size_hint, const char *prefix)
{
    td_dstream *s = td_dstream_json(size_hint);
    if (!s) return NULL;
    static const char *const names[NB] = {"X", "y", "Y", "pairs", "pair_labels"};
    s->prefix = prefix;
    for (int k = 0; k < NB; k++)
        td_json_path(s->b[k].path, prefix, names[k]);
    return s;
}
