/* auth.h — named bearer tokens with scopes.
 *
 * A token set holds every token the server accepts, each with a NAME (what the audit log
 * shows: never the token itself) and a SCOPE:
 *   read   GET (and HEAD) on /v1/... and /metrics
 *   write  everything
 * It comes from tokens_file (one `NAME SCOPE TOKEN` a line) plus, when auth_token_file or
 * $TRAIND_TOKEN gives one, a write token named "default". An empty set means no auth.
 *
 * tokens_file format: fields separated by blanks (space, tab); blank lines and lines whose
 * first non-blank character is '#' are ignored, and a field beginning with '#' starts a
 * comment to the end of the line (so a token cannot begin with '#'). NAME is 1..64 of
 * [A-Za-z0-9._-], unique; SCOPE is "read" or "write"; TOKEN is 8..255 visible ASCII
 * characters, unique. A line over TD_TOKENS_LINE_MAX bytes, a line with a missing or an
 * extra field, or any bad field is refused with its line number: the whole file is
 * refused, nothing of it is used. */
#ifndef TRAIND_AUTH_H
#define TRAIND_AUTH_H

#include <stddef.h>

#include "traind/status.h"
#include "util/config.h"

#define TD_TOKEN_NAME_MAX 65    /* 64 characters + NUL */
#define TD_TOKENS_LINE_MAX 1024 /* bytes of a tokens_file line, without its newline */
#define TD_TOKENS_FILE_MAX (1u << 20)

typedef enum { TD_SCOPE_READ = 1, TD_SCOPE_WRITE = 2 } td_scope;

typedef struct td_token {
    char name[TD_TOKEN_NAME_MAX];
    td_scope scope;
    char secret[TD_TOKEN_MAX];
} td_token;

typedef struct td_tokens {
    size_t n;
    td_token *v; /* n tokens, malloc'd */
} td_tokens;

/* Parses tokens_file text, appending to t (on error t is unaltered). origin names the
 * file in messages: "tokens.txt:3: scope \"admin\" is not read or write". */
td_status td_tokens_parse(td_tokens *t, const char *text, const char *origin, td_error *err);

/* The set for c: c->tokens_file (if set; one with no token is an error) and, when
 * c->auth_token is set, the write token "default" (a NAME "default" in the file is then
 * an error). *out is a new set (td_tokens_free). */
td_status td_tokens_load(td_tokens **out, const td_config *c, td_error *err);

/* The token whose secret equals given, or NULL. Every secret is compared, each in
 * constant time (td_token_equal), whichever matches: the time depends on the set, not on
 * given. */
const td_token *td_tokens_match(const td_tokens *t, const char *given);

/* 1 when scope s may make this request: write always; read only GET/HEAD on /v1/... and
 * /metrics. */
int td_scope_allows(td_scope s, const char *method, const char *path);

const char *td_scope_name(td_scope s);

/* A deep copy (NULL on out of memory; a NULL t copies as an empty set). */
td_tokens *td_tokens_copy(const td_tokens *t);

void td_tokens_free(td_tokens *t);

#endif
