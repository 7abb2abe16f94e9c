/* static.h — the dashboard (web/): GET / and GET /assets/<name>, served from the binary.
 *
 * The Makefile compiles every file of web/ and web/vendor/ into td_web_assets
 * (scripts/embed_web.sh), the way docs/openapi.json is compiled in: no file is read at
 * run time and nothing is fetched from elsewhere. Both routes are public (the files hold
 * no data; every API call of the page carries the token). Answers carry a strict
 * Content-Security-Policy (this origin only, no inline script or style), an ETag (a tag
 * of the bytes; If-None-Match gives 304), Cache-Control no-cache (revalidate: the names
 * do not change with the bytes) and X-Content-Type-Options nosniff.
 *
 * index.html's "@AUTH@" is replaced by "bearer" when a token is configured, else by
 * "none", so the page knows whether to ask for the token without a 401 first. */
#ifndef TRAIND_HTTP_STATIC_H
#define TRAIND_HTTP_STATIC_H

#include <stddef.h>

#include "http/http.h"

typedef struct td_web_asset {
    const char *name;          /* base name: "app.js" is /assets/app.js */
    const unsigned char *data; /* len bytes, then a NUL */
    size_t len;
    const char *tag;  /* 16 hex digits of the bytes' sha256 */
    const char *type; /* its Content-Type, by the name's extension */
} td_web_asset;

extern const td_web_asset td_web_assets[]; /* generated: $(BUILD)/gen/web.c */
extern const size_t td_web_nassets;

/* The asset named name, or NULL. */
const td_web_asset *td_web_asset_find(const char *name);

/* GET / (index.html) and GET /assets/{name}; app is the td_app (routes.h). */
void td_h_index(void *app, const td_req *req, td_resp *resp);
void td_h_asset(void *app, const td_req *req, td_resp *resp);

#endif
