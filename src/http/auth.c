/* auth.c — token sets: the tokens_file parser, matching, scopes (see auth.h). */
#include "http/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/server.h"
#include "util/text.h"

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= TD_TOKEN_NAME_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Appends one token to t (grown by one). */
static td_status tokens_add(td_tokens *t, const char *name, td_scope scope, const char *secret,
                            td_error *err)
{
    td_token *nv = realloc(t->v, (t->n + 1) * sizeof *nv);
    if (!nv) return td_fail(err, TD_ENOMEM, "tokens_file", "out of memory");
    t->v = nv;
    td_token *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->scope = scope;
    snprintf(k->secret, sizeof k->secret, "%s", secret);
    return TD_OK;
}

/* The checks of one token against those already in t. */
static td_status token_unique(const td_tokens *t, const char *name, const char *secret,
                              const char *where, td_error *err)
{
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->v[i].name, name) == 0)
            return td_fail(err, TD_EINVAL, "tokens_file", "%s: the name \"%s\" is used twice",
                           where, name);
        if (strcmp(t->v[i].secret, secret) == 0)
            return td_fail(err, TD_EINVAL, "tokens_file",
                           "%s: token \"%s\" has the same "
                           "secret as \"%s\"",
                           where, name, t->v[i].name);
    }
    return TD_OK;
}

td_status td_tokens_parse(td_tokens *t, const char *text, const char *origin, td_error *err)
{
    td_tokens add = {0, NULL};
    td_status st = TD_OK;
    const char *p = text;
    char where[TD_CONFIG_STR_MAX + 32];
    for (int lineno = 1; *p; lineno++) {
        size_t n = strcspn(p, "\n");
        const char *line = p;
        p += n + (p[n] == '\n');
        snprintf(where, sizeof where, "%s:%d", origin, lineno);
        if (n > TD_TOKENS_LINE_MAX) {
            st = td_fail(err, TD_EINVAL, "tokens_file",
                         "%s: line is %zu bytes long; at most "
                         "%d are allowed",
                         where, n, TD_TOKENS_LINE_MAX);
            goto fail;
        }
        /* Up to three fields, then only blanks or a comment. */
        const char *f[4];
        size_t fl[4];
        int nf = 0;
        for (size_t i = 0; i < n;) {
            if (is_blank(line[i])) {
                i++;
                continue;
            }
            if (line[i] == '#') break;
            size_t j = i;
            while (j < n && !is_blank(line[j]))
                j++;
            if (nf == 4) break;
            f[nf] = line + i, fl[nf] = j - i, nf++;
            i = j;
        }
        if (nf == 0) continue;
        if (nf != 3) {
            st = td_fail(err, TD_EINVAL, "tokens_file",
                         "%s: expected \"NAME SCOPE TOKEN\", "
                         "found %s%d field%s",
                         where, nf > 3 ? "more than " : "", nf > 3 ? 3 : nf, nf == 1 ? "" : "s");
            goto fail;
        }
        char name[TD_TOKEN_NAME_MAX], secret[TD_TOKEN_MAX];
        if (!name_ok(f[0], fl[0])) {
            st = td_fail(err, TD_EINVAL, "tokens_file",
                         "%s: NAME must be 1..%d of A-Z a-z "
                         "0-9 . _ -",
                         where, TD_TOKEN_NAME_MAX - 1);
            goto fail;
        }
        memcpy(name, f[0], fl[0]);
        name[fl[0]] = '\0';
        td_scope scope;
        if (fl[1] == 4 && memcmp(f[1], "read", 4) == 0)
            scope = TD_SCOPE_READ;
        else if (fl[1] == 5 && memcmp(f[1], "write", 5) == 0)
            scope = TD_SCOPE_WRITE;
        else {
            char esc[64], raw[16];
            snprintf(raw, sizeof raw, "%.*s", (int)(fl[1] < 15 ? fl[1] : 15), f[1]);
            st = td_fail(err, TD_EINVAL, "tokens_file",
                         "%s: SCOPE \"%s\" is not read or "
                         "write",
                         where, td_escape_bytes(esc, sizeof esc, raw, 1));
            goto fail;
        }
        int visible = 1;
        for (size_t i = 0; i < fl[2]; i++)
            visible &= f[2][i] >= 0x21 && f[2][i] <= 0x7e;
        if (fl[2] < 8 || fl[2] >= TD_TOKEN_MAX || !visible) {
            st = td_fail(err, TD_EINVAL, "tokens_file",
                         "%s: the token of \"%s\" must be "
                         "8..%d visible ASCII characters; it has %zu%s",
                         where, name, TD_TOKEN_MAX - 1, fl[2],
                         visible ? "" : ", not all visible ASCII");
            goto fail;
        }
        memcpy(secret, f[2], fl[2]);
        secret[fl[2]] = '\0';
        td_tokens both = {add.n, add.v};
        if ((st = token_unique(t, name, secret, where, err)) != TD_OK ||
            (st = token_unique(&both, name, secret, where, err)) != TD_OK ||
            (st = tokens_add(&add, name, scope, secret, err)) != TD_OK)
            goto fail;
    }
    if (add.n) {
        td_token *nv = realloc(t->v, (t->n + add.n) * sizeof *nv);
        if (!nv) {
            st = td_fail(err, TD_ENOMEM, "tokens_file", "out of memory");
            goto fail;
        }
        memcpy(nv + t->n, add.v, add.n * sizeof *nv);
        t->v = nv;
        t->n += add.n;
    }
fail:
    if (add.v) explicit_bzero(add.v, add.n * sizeof *add.v);
    free(add.v);
    return st;
}

td_status td_tokens_load(td_tokens **out, const td_config *c, td_error *err)
{
    *out = NULL;
    td_tokens *t = calloc(1, sizeof *t);
    if (!t) return td_fail(err, TD_ENOMEM, "tokens_file", "out of memory");
    td_status st = TD_OK;
    if (c->auth_token[0] && (st = tokens_add(t, "default", TD_SCOPE_WRITE, c->auth_token, err)))
        goto fail;
    if (c->tokens_file[0]) {
        char *text;
        size_t len;
        if ((st = td_read_small_file(c->tokens_file, TD_TOKENS_FILE_MAX, "tokens_file", &text, &len,
                                     err)) != TD_OK)
            goto fail;
        size_t before = t->n;
        st = td_tokens_parse(t, text, c->tokens_file, err);
        explicit_bzero(text, len);
        free(text);
        if (st != TD_OK) goto fail;
        if (t->n == before) {
            st = td_fail(err, TD_EINVAL, "tokens_file",
                         "tokens_file %s holds no token (one "
                         "`NAME SCOPE TOKEN` a line)",
                         c->tokens_file);
            goto fail;
        }
    }
    *out = t;
    return TD_OK;
fail:
    td_tokens_free(t);
    return st;
}

const td_token *td_tokens_match(const td_tokens *t, const char *given)
{
    const td_token *hit = NULL;
    if (!t) return NULL;
    for (size_t i = 0; i < t->n; i++) {
        int eq = td_token_equal(given, t->v[i].secret);
        hit = eq && !hit ? &t->v[i] : hit; /* no early exit: every secret is compared */
    }
    return hit;
}

int td_scope_allows(td_scope s, const char *method, const char *path)
{
    if (s == TD_SCOPE_WRITE) return 1;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) return 0;
    return strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/metrics") == 0;
}

const char *td_scope_name(td_scope s) { return s == TD_SCOPE_WRITE ? "write" : "read"; }

td_tokens *td_tokens_copy(const td_tokens *t)
{
    td_tokens *c = calloc(1, sizeof *c);
    if (!c || !t || !t->n) return c;
    if (!(c->v = malloc(t->n * sizeof *c->v))) {
        free(c);
        return NULL;
    }
    memcpy(c->v, t->v, t->n * sizeof *c->v);
    c->n = t->n;
    return c;
}

void td_tokens_free(td_tokens *t)
{
    if (!t) return;
    if (t->v) explicit_bzero(t->v, t->n * sizeof *t->v);
    free(t->v);
    free(t);
}
