/* request.c — the handler side of http.h: responses (JSON bodies, the error object of
 * SPEC §6, headers), the request's headers and query, and the router (patterns with
 * "{x}" captures, server.h). Nothing here knows the server's state: server.c calls these
 * for every request. */
#include <cJSON.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http.h"
#include "http/server.h"
#include "util/log.h"
#include "util/text.h"

/* ---------------------------------------------------------------- responses ---- */

void td_resp_json(td_resp *r, int status, char *json)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->content_type = "application/json";
    if (!json) { /* the caller's print failed: out of memory */
        r->status = 500;
        static const char oom[] =
            "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
        r->body = strdup(oom);
        r->body_len = r->body ? strlen(r->body) : 0;
        return;
    }
    r->status = status;
    r->body = json;
    r->body_len = strlen(json);
}

static void resp_errorv(td_resp *r, int status, const char *code, const char *field,
                        const char *fmt, va_list ap)
{
    char raw[1024], msg[1024 * 4];
    vsnprintf(raw, sizeof raw, fmt, ap);
    /* The message may echo client bytes (a path, a header, a value): any that are not
     * well-formed UTF-8 go out as "\xHH" (cJSON escapes the control characters). */
    td_escape_bytes(msg, sizeof msg, raw, 0);
    char *json = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *e = root ? cJSON_AddObjectToObject(root, "error") : NULL;
    if (e && cJSON_AddStringToObject(e, "code", code ? code : "error") &&
        cJSON_AddStringToObject(e, "message", msg) &&
        (!field || !*field || cJSON_AddStringToObject(e, "field", field)))
        json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    td_resp_json(r, status, json);
}

void td_resp_error(td_resp *r, int status, const char *code, const char *field, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    resp_errorv(r, status, code, field, fmt, ap);
    va_end(ap);
}

static int status_http(td_status st)
{
    switch (st) {
    case TD_EINVAL: return 422;
    case TD_EDIVERGED: return 422;
    case TD_EMALFORMED: return 400;
    case TD_ENOTFOUND: return 404;
    case TD_ECONFLICT: return 409;
    case TD_EBUSY: return 429;
    case TD_ENOSPACE: return 507;
    case TD_ESTOPPED:
    case TD_ESHUTDOWN: return 503;
    case TD_ENOMEM:
    case TD_EIO:
    case TD_EINTERNAL:
    case TD_OK: return 500;
    }
    return 500;
}

void td_resp_from_error(td_resp *r, td_status st, const td_error *err)
{
    const char *field = err && err->field[0] ? err->field : NULL;
    const char *msg = err && err->message[0] ? err->message : td_status_code(st);
    td_resp_error(r, status_http(st), st == TD_OK ? "internal" : td_status_code(st), field, "%s",
                  msg);
    if (st == TD_EBUSY) td_resp_header(r, "Retry-After", "1");
    if (st == TD_ESHUTDOWN || st == TD_ESTOPPED) td_resp_header(r, "Retry-After", "5");
}

void td_resp_header(td_resp *r, const char *name, const char *fmt, ...)
{
    int i;
    for (i = 0; i < r->nhdr; i++)
        if (strcasecmp(r->hdr_name[i], name) == 0) break;
    if (i == r->nhdr) {
        if (r->nhdr >= TD_MAX_RESP_HEADERS) {
            td_log(TD_LOG_ERROR, "http", "response header %s dropped: more than %d headers", name,
                   TD_MAX_RESP_HEADERS);
            return;
        }
        r->nhdr++;
    }
    r->hdr_name[i] = name;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->hdr_value[i], sizeof r->hdr_value[i], fmt, ap);
    va_end(ap);
    for (char *p = r->hdr_value[i]; *p; p++) /* no header injection */
        if (*p == '\r' || *p == '\n') *p = ' ';
}

void td_resp_free(td_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    if (r->stream && r->stream_free) r->stream_free(r->stream_ctx);
    r->stream = NULL;
    r->stream_ctx = NULL;
    r->stream_free = NULL;
}

/* ----------------------------------------------------------------- requests ---- */

const char *td_req_header(const td_req *r, const char *name)
{
    if (!r || !r->conn) return NULL;
    return MHD_lookup_connection_value((struct MHD_Connection *)r->conn, MHD_HEADER_KIND, name);
}

const char *td_req_query(const td_req *r, const char *name)
{
    if (!r || !r->conn) return NULL;
    return MHD_lookup_connection_value((struct MHD_Connection *)r->conn, MHD_GET_ARGUMENT_KIND,
                                       name);
}

int td_token_equal(const char *given, const char *expected)
{
    size_t ne = strlen(expected), ng = strlen(given);
    volatile unsigned char d = (unsigned char)(ng != ne);
    for (size_t i = 0; i < ne; i++)
        d |= (unsigned char)(expected[i] ^ (i < ng ? given[i] : 0));
    return d == 0;
}

/* "/v1/jobs/{id}" against "/v1/jobs/job_1": a "{x}" takes one whole non-empty segment. */
static int pattern_match(const char *pat, const char *path, const char **starts, size_t *lens,
                         int *ncap)
{
    const char *p = pat, *u = path;
    int n = 0;
    while (*p && *u) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close) return 0;
            size_t seg = strcspn(u, "/");
            if (seg == 0) return 0;
            if (n < TD_MAX_PATH_PARAMS) {
                if (starts) starts[n] = u, lens[n] = seg;
                n++;
            }
            p = close + 1;
            u += seg;
            continue;
        }
        if (*p != *u) return 0;
        p++, u++;
    }
    if (*p || *u) return 0;
    if (ncap) *ncap = n < TD_MAX_PATH_PARAMS ? n : TD_MAX_PATH_PARAMS;
    return 1;
}

const td_route *td_route_find(const td_route *routes, size_t n, const char *method,
                              const char *path, int *path_status, char *allow, size_t allow_len,
                              int *any_public)
{
    const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
    const td_route *hit = NULL;
    int path_hit = 0, pub = 0;
    size_t alen = 0;
    if (allow && allow_len) allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const td_route *r = &routes[i];
        if (!pattern_match(r->pattern, path, NULL, NULL, NULL)) continue;
        path_hit = 1;
        pub |= r->public_route;
        if (!hit && strcmp(r->method, m) == 0) hit = r;
        int dup = 0; /* each method once in Allow */
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(routes[j].method, r->method) == 0 &&
                pattern_match(routes[j].pattern, path, NULL, NULL, NULL);
        if (allow && !dup) {
            int k = snprintf(allow + alen, allow_len - alen, "%s%s", alen ? ", " : "", r->method);
            if (k > 0 && (size_t)k < allow_len - alen)
                alen += (size_t)k;
            else
                allow[alen] = '\0'; /* whole methods only */
        }
    }
    if (path_status) *path_status = hit ? 200 : path_hit ? 405 : 404;
    if (any_public) *any_public = pub;
    return hit;
}

int td_route_captures(const char *pattern, const char *path, char *capbuf,
                      const char *params[TD_MAX_PATH_PARAMS])
{
    const char *starts[TD_MAX_PATH_PARAMS];
    size_t lens[TD_MAX_PATH_PARAMS];
    int n = 0;
    if (!pattern_match(pattern, path, starts, lens, &n)) return -1;
    strcpy(capbuf, path);
    for (int i = 0; i < n; i++) {
        char *p = capbuf + (starts[i] - path);
        p[lens[i]] = '\0'; /* the '/' after it (or the NUL) */
        params[i] = p;
    }
    return n;
}
