/* static.c — the dashboard's files (contract in static.h). */
#include "http/static.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/routes.h"

#define CSP                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "    \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " \
    "frame-ancestors 'none'"
#define AUTH_MARK "@AUTH@"

const td_web_asset *td_web_asset_find(const char *name)
{
    for (size_t i = 0; i < td_web_nassets; i++)
        if (strcmp(td_web_assets[i].name, name) == 0) return &td_web_assets[i];
    return NULL;
}

/* Answers with body (malloc'd, len bytes; taken) of content type type under etag, or 304
 * when the request's If-None-Match names it. */
static void answer(const td_req *req, td_resp *resp, const char *type, char *body, size_t len,
                   const char *etag)
{
    td_resp_header(resp, "ETag", "\"%s\"", etag);
    td_resp_header(resp, "Cache-Control", "no-cache");
    td_resp_header(resp, "X-Content-Type-Options", "nosniff");
    td_resp_header(resp, "Content-Security-Policy", "%s", CSP);
    const char *inm = td_req_header(req, "If-None-Match");
    char quoted[80];
    snprintf(quoted, sizeof quoted, "\"%s\"", etag);
    if (inm && (strstr(inm, quoted) || strcmp(inm, "*") == 0)) {
        free(body);
        resp->status = 304;
        return;
    }
    free(resp->body);
    resp->status = 200;
    resp->content_type = type;
    resp->body = body;
    resp->body_len = len;
}

static char *copy(const unsigned char *data, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, data, len);
        s[len] = '\0';
    }
    return s;
}

void td_h_index(void *app, const td_req *req, td_resp *resp)
{
    const td_web_asset *a = td_web_asset_find("index.html");
    const td_config *cfg = td_app_config(app);
    const char *auth = cfg->auth_token[0] || cfg->tokens_file[0] ? "bearer" : "none";
    if (!a) {
        td_resp_error(resp, 404, "not_found", NULL, "this build has no dashboard");
        return;
    }
    /* index.html with AUTH_MARK replaced (at most once) */
    const char *at = strstr((const char *)a->data, AUTH_MARK);
    size_t head = at ? (size_t)(at - (const char *)a->data) : a->len;
    size_t tail = at ? a->len - head - strlen(AUTH_MARK) : 0;
    size_t len = head + (at ? strlen(auth) : 0) + tail;
    char *body = malloc(len + 1);
    if (!body) {
        td_resp_error(resp, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    memcpy(body, a->data, head);
    if (at) {
        memcpy(body + head, auth, strlen(auth));
        memcpy(body + head + strlen(auth), at + strlen(AUTH_MARK), tail);
    }
    body[len] = '\0';
    char etag[64];
    snprintf(etag, sizeof etag, "%s-%s", a->tag, auth);
    answer(req, resp, a->type, body, len, etag);
}

void td_h_asset(void *app, const td_req *req, td_resp *resp)
{
    (void)app;
    const td_web_asset *a = td_web_asset_find(req->params[0]);
    if (!a || strcmp(a->name, "index.html") == 0) {
        td_resp_error(resp, 404, "not_found", NULL, "no asset named \"%.64s\"", req->params[0]);
        return;
    }
    char *body = copy(a->data, a->len);
    if (!body) {
        td_resp_error(resp, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    answer(req, resp, a->type, body, a->len, a->tag);
}
