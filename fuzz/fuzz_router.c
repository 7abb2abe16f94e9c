/* fuzz_router.c — libFuzzer target for the router and the query-string values the
 * handlers read.
 *
 * The input is "METHOD URL": the method up to the first space (at most 15 bytes, as the
 * server keeps it), the URL after it, split at the first '?' into the path (what MHD hands
 * the access handler, already unescaped) and the query. The path goes through
 * td_route_find over the daemon's table (main.c's /healthz, /readyz, /metrics plus
 * td_app_routes), with the server's 64-byte Allow buffer, then td_route_captures into a
 * buffer of strlen(path) + 1 bytes; the query is split and unescaped as MHD does
 * ('&', '=', %XX, '+') and its label_column / header / state values go through the
 * handlers' parsers (td_csv_opts_parse, td_job_state_parse).
 * Checked: a hit is status 200 for the method asked (HEAD routed as GET); a miss is 404 or
 * 405, and 405 names at least one method in Allow; the Allow text stays inside its buffer;
 * every capture is a non-empty segment without '/' at the place the pattern says;
 * refusals of query values are TD_EINVAL with a message.
 * Run: make fuzz (FUZZ_SECONDS per target). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "codec/json_dataset.h"
#include "http/routes.h"
#include "http/server.h"
#include "store/store.h"

static void h_none(void *app, const td_req *req, td_resp *resp)
{
    (void)app, (void)req, (void)resp;
}

static td_route *g_routes;
static size_t g_n;

static void init_routes(void)
{
    static const td_route base[] = {
        {"GET", "/healthz", h_none, NULL, 1, NULL, NULL},
        {"GET", "/readyz", h_none, NULL, 1, NULL, NULL},
        {"GET", "/metrics", h_none, NULL, 0, NULL, NULL},
    };
    if (g_routes) return;
    size_t napp = 0;
    const td_route *app = td_app_routes(&napp);
    g_n = 3 + napp;
    g_routes = calloc(g_n, sizeof *g_routes);
    FUZZ_CHECK(g_routes != NULL, "out of memory");
    memcpy(g_routes, base, sizeof base);
    memcpy(g_routes + 3, app, napp * sizeof *app);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* MHD_http_unescape, in place ('+' was made ' ' by the caller). */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
            *w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

static void query(char *q)
{
    const char *label = NULL, *header = NULL, *state = NULL;
    for (char *p = q; p && *p;) {
        char *amp = strchr(p, '&');
        if (amp) *amp = '\0';
        for (char *c = p; *c; c++)
            if (*c == '+') *c = ' ';
        char *eq = strchr(p, '=');
        if (eq) *eq = '\0';
        unescape(p);
        if (eq) unescape(eq + 1);
        const char *v = eq ? eq + 1 : "";
        if (strcmp(p, "label_column") == 0)
            label = v;
        else if (strcmp(p, "header") == 0)
            header = v;
        else if (strcmp(p, "state") == 0)
            state = v;
        p = amp ? amp + 1 : NULL;
    }
    td_error err = {{0}, {0}};
    td_csv_opts o;
    td_status st = td_csv_opts_parse(&o, label, header, &err);
    if (st != TD_OK) FUZZ_CHECK_REFUSAL(st, err);
    if (state) {
        td_job_state js;
        st = td_job_state_parse(state, &js, &err);
        if (st != TD_OK)
            FUZZ_CHECK_REFUSAL(st, err);
        else
            FUZZ_CHECK(js >= 0 && js < TD_JOB_NSTATES, "state %d", (int)js);
    }
}

int td_fuzz_router(const uint8_t *data, size_t size)
{
    init_routes();
    char *in = malloc(size + 1);
    FUZZ_CHECK(in != NULL, "out of memory");
    memcpy(in, data, size);
    in[size] = '\0';
    char *sp = strchr(in, ' ');
    if (!sp || sp - in > 15 || sp == in) {
        free(in);
        return 0;
    }
    *sp = '\0';
    const char *method = in;
    char *path = sp + 1, *q = strchr(path, '?');
    if (q) *q++ = '\0';

    char allow[64 + 8];
    memset(allow, 0x5a, sizeof allow);
    int st = 0, pub = -1;
    const td_route *hit = td_route_find(g_routes, g_n, method, path, &st, allow, 64, &pub);
    for (size_t i = 64; i < sizeof allow; i++)
        FUZZ_CHECK((unsigned char)allow[i] == 0x5a, "Allow overran its buffer");
    FUZZ_CHECK(memchr(allow, '\0', 64) != NULL, "Allow is not terminated");
    FUZZ_CHECK(pub == 0 || pub == 1, "any_public %d", pub);
    if (hit) {
        const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
        FUZZ_CHECK(st == 200 && strcmp(hit->method, m) == 0, "hit %s %s for %s, status %d",
                   hit->method, hit->pattern, method, st);
        size_t plen = strlen(path);
        char *capbuf = malloc(plen + 1);
        const char *params[TD_MAX_PATH_PARAMS];
        FUZZ_CHECK(capbuf != NULL, "out of memory");
        int n = td_route_captures(hit->pattern, path, capbuf, params);
        int braces = 0;
        for (const char *p = hit->pattern; *p; p++)
            braces += *p == '{';
        FUZZ_CHECK(n == (braces < TD_MAX_PATH_PARAMS ? braces : TD_MAX_PATH_PARAMS),
                   "%d captures of %s in %s", n, hit->pattern, path);
        for (int i = 0; i < n; i++) {
            FUZZ_CHECK(params[i] >= capbuf && params[i] < capbuf + plen, "capture outside");
            size_t off = (size_t)(params[i] - capbuf), len = strlen(params[i]);
            FUZZ_CHECK(len > 0 && !strchr(params[i], '/') && off + len <= plen &&
                           memcmp(path + off, params[i], len) == 0 &&
                           (off + len == plen || path[off + len] == '/'),
                       "capture %d \"%s\" of %s in %s", i, params[i], hit->pattern, path);
        }
        free(capbuf);
    } else {
        FUZZ_CHECK(st == 404 || st == 405, "miss with status %d", st);
        if (st == 405) FUZZ_CHECK(allow[0] != '\0', "405 without Allow for %s %s", method, path);
    }
    if (q) query(q);
    free(in);
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_router)
