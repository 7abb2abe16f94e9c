/* main.c — traind: configuration, the HTTP server, signals, systemd readiness.
 *
 * DESIGN
 *
 * Start-up: flags and config file (util/config) -> refuse a non-loopback listen address
 * without a token -> app_init (store, job manager) -> td_server_start with the base routes
 * below plus the application's -> log "listening on ADDR" -> READY=1 to systemd.
 *
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked before main starts a thread, so every
 * thread it starts inherits the mask and the main thread takes them, synchronously, with
 * sigwait(). A thread started before main (OpenBLAS's pool, made by a library constructor)
 * has them unblocked: one delivered there while the main thread is not in sigwait would
 * kill the process (the default action), so a handler forwards it to the main thread
 * (pthread_kill, async-signal-safe), where it waits for sigwait like any other. SIGTERM/SIGINT -> STOPPING=1 ->
 * td_server_stop (stop accepting, end event streams, let running handlers finish, join)
 * -> app_shutdown (checkpoint running jobs, stop the workers, close the store) -> exit 0.
 * SIGHUP -> reload() (below): the settings that can change under running jobs and open
 * connections are re-read; the rest wait for a restart. SIGPIPE is ignored.
 *
 * Security at start: the token set (http/auth.h: tokens_file + the "default" token) is
 * loaded and a bad file refused with its line number (exit 2); a non-loopback listen
 * without any token is refused, and one without TLS is warned about; the umask becomes
 * 077 and an existing state_dir is made private (util/private.h).
 *
 * Hook points for the application (http/routes.h: store, job manager, /v1 routes), called
 * through the five app_* wrappers below, the only place main.c touches the application:
 *   app_init      td_app_init(&d->app, &d->cfg, err)  open the store, start the workers
 *   app_routes    td_app_routes(&n)                    the /v1 route table (handlers get
 *                                                      d->app as their app argument)
 *   app_ready     td_app_ready(d->app, why, cap)       store open, workers running and
 *                                                      state_dir not full (else why)
 *   app_metrics   td_app_metrics(d->app, out)          Prometheus lines: jobs by state,
 *                                                      queue depth, samples trained
 *   app_shutdown  td_app_shutdown(d->app)              checkpoint, stop, free
 * The base routes (/healthz, /readyz, /metrics) live here because they describe the
 * process; they reach the server and the app through the file-level `g_daemon`.
 */
#include <cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/auth.h"
#include "http/http.h"
#include "http/routes.h"
#include "http/server.h"
#include "http/tls.h"
#include "util/config.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/private.h"

typedef struct daemon_ctx {
    td_config cfg;
    td_server *srv;
    td_server *_Atomic srv_live; /* srv, published for the handlers once started */
    td_app *app;                 /* the application's state, handed to its route handlers */
    td_tokens *tokens;           /* the token set in force (replaced by reload) */
    atomic_int stopping;
    time_t started;
} daemon_ctx;

static daemon_ctx g_daemon;

/* The thread that sigwaits (see DESIGN): signals caught by another thread go there. */
static pthread_t g_main_thread;
static void forward_to_main(int sig) { pthread_kill(g_main_thread, sig); }

/* ------------------------------------------------------ application hooks ---- */

static td_status app_init(daemon_ctx *d, td_error *err)
{
    return td_app_init(&d->app, &d->cfg, err);
}

static const td_route *app_routes(size_t *n) { return td_app_routes(n); }

static int app_ready(daemon_ctx *d, char *why, size_t cap)
{
    return td_app_ready(d->app, why, cap);
}

static void app_metrics(daemon_ctx *d, FILE *out) { td_app_metrics(d->app, out); }

static void app_shutdown(daemon_ctx *d)
{
    td_app_shutdown(d->app);
    d->app = NULL;
}

/* ------------------------------------------------------------- base routes ---- */

static void h_healthz(void *app, const td_req *req, td_resp *resp)
{
    (void)app, (void)req;
    td_resp_json(resp, 200, strdup("{\"status\":\"ok\"}"));
}

/* 503 {"status":"not_ready","reason":why,"error":{"code":"not_ready","message":why}}: the
 * reason for a probe, in the error object every non-2xx answer has. */
static void not_ready(td_resp *resp, const char *why)
{
    cJSON *root = cJSON_CreateObject(), *e = cJSON_CreateObject();
    char *body = NULL;
    if (root && e && cJSON_AddStringToObject(root, "status", "not_ready") &&
        cJSON_AddStringToObject(root, "reason", why) &&
        cJSON_AddStringToObject(e, "code", "not_ready") &&
        cJSON_AddStringToObject(e, "message", why) && cJSON_AddItemToObject(root, "error", e)) {
        e = NULL; /* root owns it */
        body = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(e);
    cJSON_Delete(root);
    if (body)
        td_resp_json(resp, 503, body);
    else
        td_resp_error(resp, 503, "not_ready", NULL, "%s", why);
}

static void h_readyz(void *app, const td_req *req, td_resp *resp)
{
    (void)app, (void)req;
    daemon_ctx *d = &g_daemon;
    char why[600];
    if (atomic_load(&d->stopping))
        td_resp_error(resp, 503, "shutting_down", NULL, "traind is shutting down");
    else if (!app_ready(d, why, sizeof why))
        not_ready(resp, why);
    else
        td_resp_json(resp, 200, strdup("{\"status\":\"ready\"}"));
}

static void h_metrics(void *app, const td_req *req, td_resp *resp)
{
    (void)app, (void)req;
    daemon_ctx *d = &g_daemon;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (!out) {
        td_resp_error(resp, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    fprintf(out,
            "# HELP traind_build_info Build information.\n"
            "# TYPE traind_build_info gauge\n"
            "traind_build_info{version=\"%s\"} 1\n"
            "# HELP traind_start_time_seconds Start time of the process, Unix seconds.\n"
            "# TYPE traind_start_time_seconds gauge\n"
            "traind_start_time_seconds %lld\n",
            TD_VERSION, (long long)d->started);
    td_server *srv = atomic_load(&d->srv_live);
    if (srv) td_server_write_metrics(srv, out);
    app_metrics(d, out);
    if (fclose(out) != 0 || !buf) {
        free(buf);
        td_resp_error(resp, 500, "out_of_memory", NULL, "out of memory");
        return;
    }
    free(resp->body);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = buf;
    resp->body_len = len;
}

static const td_route base_routes[] = {
    {"GET", "/healthz", h_healthz, NULL, 1, NULL, ""},
    {"GET", "/readyz", h_readyz, NULL, 1, NULL, ""},
    {"GET", "/metrics", h_metrics, NULL, 0, NULL, ""},
};
#define NBASE (sizeof base_routes / sizeof base_routes[0])

/* ----------------------------------------------------------------- reload ---- */

/* SIGHUP: reads the configuration again (the same flags, the config file, the token
 * files, $TRAIND_TOKEN as the process has it) and applies what can change while jobs run
 * and connections stay open:
 *   tokens_file, auth_token_file   the token set, for requests from now on
 *   log_level                      at once
 *   max_body_mb                    for requests whose headers arrive from now on
 *   tls_cert_file, tls_key_file    read again (a renewed certificate) when HTTPS is on:
 *                                  for handshakes from now on
 * Any other key that changed is logged as needing a restart and keeps its value. When
 * anything is wrong (the config file, a token file, protected mode: no token left on a
 * non-loopback listen) nothing changes and the log says why. */
static void reload(daemon_ctx *d, int argc, char **argv)
{
    td_config nc;
    td_cli_action action;
    td_error err = {{0}, {0}};
    td_tokens *nt = NULL;
    td_tls_pem pem = {NULL, NULL};
    char tls_warn[512] = "";
    if (td_config_from_args(&nc, argc, argv, &action, &err) != TD_OK ||
        td_tokens_load(&nt, &nc, &err) != TD_OK)
        goto fail;
    if (nt->n == 0 && !td_listen_is_loopback(d->cfg.listen)) {
        td_fail(&err, TD_EINVAL, NULL, "no token left, and %s is not a loopback address",
                d->cfg.listen);
        goto fail;
    }
    /* HTTPS on: the pair again (HTTPS off <-> on needs a restart, and is said so below). */
    int tls_again = td_server_tls(d->srv) && nc.tls_cert_file[0];
    if (tls_again &&
        (td_tls_load(&pem, nc.tls_cert_file, nc.tls_key_file, tls_warn, sizeof tls_warn, &err) !=
             TD_OK ||
         td_tls_install(&pem, &err) != TD_OK))
        goto fail;
    td_tls_pem_free(&pem);
    if (tls_warn[0]) td_log(TD_LOG_WARN, "main", "%s", tls_warn);
    if (tls_again) {
        memcpy(d->cfg.tls_cert_file, nc.tls_cert_file, sizeof nc.tls_cert_file);
        memcpy(d->cfg.tls_key_file, nc.tls_key_file, sizeof nc.tls_key_file);
    }
    if (td_server_set_tokens(d->srv, nt, &err) != TD_OK) goto fail;
    td_tokens_free(d->tokens);
    d->tokens = nt;
    td_server_set_max_body(d->srv, td_config_max_body(&nc));
    d->cfg.log_level = nc.log_level;
    d->cfg.max_body_mb = nc.max_body_mb;
    memcpy(d->cfg.tokens_file, nc.tokens_file, sizeof nc.tokens_file);
    memcpy(d->cfg.auth_token_file, nc.auth_token_file, sizeof nc.auth_token_file);
    memcpy(d->cfg.auth_token, nc.auth_token, sizeof nc.auth_token);
    /* What a restart would change. */
    nc.log_level = d->cfg.log_level;
    nc.max_body_mb = d->cfg.max_body_mb;
    char *was = NULL, *now = NULL;
    size_t wl = 0, nl = 0;
    FILE *fw = open_memstream(&was, &wl), *fn = open_memstream(&now, &nl);
    if (fw) td_config_dump(&d->cfg, fw), fclose(fw);
    if (fn) td_config_dump(&nc, fn), fclose(fn);
    for (const char *a = was, *b = now; a && b && *a && *b;) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || memcmp(a, b, la) != 0)
            td_log(TD_LOG_WARN, "main", "reload: %.*s needs a restart (still %.*s)", (int)lb, b,
                   (int)la, a);
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
    free(was);
    free(now);
    size_t nread = 0;
    for (size_t i = 0; i < nt->n; i++)
        nread += nt->v[i].scope == TD_SCOPE_READ;
    td_log(TD_LOG_INFO, "main",
           "reloaded: %zu tokens (%zu read, %zu write), log_level %s, "
           "max_body_mb %d%s",
           nt->n, nread, nt->n - nread, td_log_level_name((td_log_level)d->cfg.log_level),
           d->cfg.max_body_mb, tls_again ? ", certificate" : "");
    td_log_set_level((td_log_level)d->cfg.log_level); /* after the line above, at any level */
    return;
fail:
    td_log(TD_LOG_ERROR, "main", "reload failed, keeping the current settings: %s", err.message);
    td_tls_pem_free(&pem);
    td_tokens_free(nt);
}

/* ------------------------------------------------------------------- main ---- */

int main(int argc, char **argv)
{
    daemon_ctx *d = &g_daemon;
    td_error err = {{0}, {0}};
    td_cli_action action;

    if (td_config_from_args(&d->cfg, argc, argv, &action, &err) != TD_OK) {
        fprintf(stderr, "traind: %s\n", err.message);
        return 2;
    }
    if (action == TD_CLI_HELP) {
        td_config_usage(stdout, "traind");
        return 0;
    }
    if (action == TD_CLI_VERSION) {
        printf("traind %s\n", TD_VERSION);
        return 0;
    }
    td_log_set_level((td_log_level)d->cfg.log_level);

    if (td_tokens_load(&d->tokens, &d->cfg, &err) != TD_OK) {
        fprintf(stderr, "traind: %s\n", err.message);
        return 2;
    }
    td_tls_pem pem = {NULL, NULL};
    char tls_warn[512] = "";
    if (d->cfg.tls_cert_file[0] &&
        td_tls_load(&pem, d->cfg.tls_cert_file, d->cfg.tls_key_file, tls_warn, sizeof tls_warn,
                    &err) != TD_OK) {
        fprintf(stderr, "traind: %s\n", err.message);
        td_tokens_free(d->tokens);
        return 2;
    }
    if (d->tokens->n == 0 && !td_listen_is_loopback(d->cfg.listen)) {
        fprintf(stderr,
                "traind: refusing to listen on %s without an auth token: anyone who can reach "
                "it could use the API.\n"
                "  Set one with `auth_token_file = /path/to/token` in the config file (a file "
                "holding the token, 8+ characters),\n"
                "  or `tokens_file` (named tokens with scopes), or the TRAIND_TOKEN environment "
                "variable; or listen on 127.0.0.1.\n",
                d->cfg.listen);
        td_tokens_free(d->tokens);
        td_tls_pem_free(&pem);
        return 2;
    }
    if (action == TD_CLI_CHECK) {
        td_config_dump(&d->cfg, stdout);
        printf("# tokens: %zu%s\n# https: %s\n", d->tokens->n, d->tokens->n ? "" : " (no auth)",
               pem.cert ? "on" : "off");
        td_tokens_free(d->tokens);
        td_tls_pem_free(&pem);
        printf("# configuration OK%s%s\n", d->cfg.config_path[0] ? ": " : " (embedded defaults)",
               d->cfg.config_path);
        return 0;
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    g_main_thread = pthread_self();
    struct sigaction fwd = {.sa_handler = forward_to_main};
    sigfillset(&fwd.sa_mask);
    sigaction(SIGTERM, &fwd, NULL);
    sigaction(SIGINT, &fwd, NULL);
    sigaction(SIGHUP, &fwd, NULL);
    signal(SIGPIPE, SIG_IGN);
    d->started = time(NULL);

    td_log(TD_LOG_INFO, "main",
           "traind %s starting: %d workers, state_dir %s, auth %s "
           "(%zu tokens), %s%s%s",
           TD_VERSION, td_config_workers(&d->cfg), d->cfg.state_dir, d->tokens->n ? "on" : "off",
           d->tokens->n, pem.cert ? "https" : "http", d->cfg.config_path[0] ? ", config " : "",
           d->cfg.config_path);
    if (tls_warn[0]) td_log(TD_LOG_WARN, "main", "%s", tls_warn);
    if (!pem.cert && !td_listen_is_loopback(d->cfg.listen))
        td_log(TD_LOG_WARN, "main",
               "no TLS on the non-loopback %s: tokens and data cross "
               "the network in clear text; set tls_cert_file and tls_key_file, or put an HTTPS "
               "reverse proxy in front (docs/security.md)",
               d->cfg.listen);
    int fixed = 0;
    if (td_state_private(d->cfg.state_dir, &fixed, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "main", "cannot start: %s", err.message);
        td_tokens_free(d->tokens);
        td_tls_pem_free(&pem);
        return 1;
    }
    if (fixed)
        td_log(TD_LOG_WARN, "main", "state_dir %s: took group/other access off %d entries",
               d->cfg.state_dir, fixed);

    if (app_init(d, &err) != TD_OK) {
        td_log(TD_LOG_ERROR, "main", "cannot start: %s", err.message);
        td_tokens_free(d->tokens);
        td_tls_pem_free(&pem);
        return 1;
    }

    size_t napp = 0;
    const td_route *approutes = app_routes(&napp);
    td_route *routes = calloc(NBASE + napp, sizeof *routes);
    if (!routes) {
        td_log(TD_LOG_ERROR, "main", "out of memory");
        app_shutdown(d);
        td_tokens_free(d->tokens);
        td_tls_pem_free(&pem);
        return 1;
    }
    memcpy(routes, base_routes, sizeof base_routes);
    if (napp) memcpy(routes + NBASE, approutes, napp * sizeof *routes);

    td_server_opts so = td_server_default_opts();
    so.listen = d->cfg.listen;
    so.tokens = d->tokens;
    so.tls_cert_pem = pem.cert;
    so.tls_key_pem = pem.key;
    so.max_body = td_config_max_body(&d->cfg);
    so.max_connections = (unsigned)d->cfg.max_connections;
    so.max_streams = (unsigned)td_config_max_event_streams(&d->cfg);
    so.connection_timeout_s = (unsigned)d->cfg.connection_timeout_s;
    td_status st = td_server_start(&d->srv, &so, routes, NBASE + napp, d->app, &err);
    free(routes); /* the server keeps a copy */
    if (st != TD_OK) {
        td_log(TD_LOG_ERROR, "main", "cannot start: %s", err.message);
        app_shutdown(d);
        td_tokens_free(d->tokens);
        td_tls_pem_free(&pem);
        return 1;
    }
    atomic_store(&d->srv_live, d->srv);
    if (td_server_tls(d->srv)) td_log(TD_LOG_INFO, "http", "HTTPS only (%s)", d->cfg.tls_cert_file);
    td_log(TD_LOG_INFO, "http", "listening on %s", td_server_address(d->srv));
    if (td_notifyf(&err, "READY=1\nSTATUS=listening on %s", td_server_address(d->srv)) != TD_OK)
        td_log(TD_LOG_WARN, "main", "systemd notify: %s", err.message);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0) continue;
        if (sig == SIGHUP) {
            td_log(TD_LOG_INFO, "main", "SIGHUP received, reloading");
            reload(d, argc, argv);
            continue;
        }
        td_log(TD_LOG_INFO, "main", "%s received, shutting down",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    atomic_store(&d->stopping, 1);
    td_notify("STOPPING=1\nSTATUS=shutting down", NULL);
    atomic_store(&d->srv_live, NULL);
    td_server_stop(d->srv);
    d->srv = NULL;
    td_tls_pem_free(&pem); /* the PEM text stays valid while MHD may read it */
    app_shutdown(d);
    td_tokens_free(d->tokens);
    td_log(TD_LOG_INFO, "main", "stopped");
    return 0;
}
