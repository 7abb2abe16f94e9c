/* server.h — the HTTP server: libmicrohttpd behind the td_req / td_resp / td_route
 * interface of http.h.
 *
 * td_server_start binds, starts the threads and returns; requests are answered on the
 * server's own threads (one per connection, see the DESIGN comment in server.c) until
 * td_server_stop. Before a handler runs, the server has already answered, in this order:
 *   400  the request carries both Content-Length and Transfer-Encoding (its end is
 *        ambiguous: the connection is closed, nothing pipelined after it is served)
 *   503  the connection came in past max_connections and the route is not public (only
 *        public routes, the health probes, are served in the reserved slots)
 *   404  no route's pattern matches the path (401 instead when a token is configured and
 *        the request does not carry it)
 *   405  a pattern matches but not the method; `Allow` lists the methods that would
 *   401  the route is not public, a token is configured, and `Authorization: Bearer <token>`
 *        is missing or wrong (`WWW-Authenticate: Bearer`)
 *   403  the token's scope does not allow the request (a read token on a write route:
 *        http/auth.h)
 *   400  Content-Length is not a number
 *   415  the request has a body, the route declares body_types, and Content-Type is not
 *        one of them (the message names the accepted types)
 *   413  the body is larger than max_body (answered as soon as Content-Length shows it,
 *        without reading the body; a chunked body is discarded from the limit on, and a
 *        streaming route's sink state is freed there: see server.c)
 *   503  the server is stopping
 * all with the error object of SPEC §6, at once from the headers: none of a refused body
 * is read, and the connection is closed after the answer (also after any 401 or 503).
 * A handler's streamed response past max_streams open ones becomes a 503 with
 * Retry-After and a close. HEAD is routed like GET. */
#ifndef TRAIND_SERVER_H
#define TRAIND_SERVER_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "http/auth.h"
#include "http/http.h"
#include "traind/status.h"

typedef struct td_server td_server;

typedef struct td_server_opts {
    const char *listen;       /* "host:port" / "[v6]:port"; port 0 = ephemeral */
    const char *auth_token;   /* one write token "default"; NULL or "" = none; used
                                        only when tokens is NULL */
    const td_tokens *tokens;  /* the token set (copied); NULL = auth_token alone;
                                        empty = no auth */
    const char *tls_cert_pem; /* both set: HTTPS only (PEM text, copied by MHD) */
    const char *tls_key_pem;
    uint64_t max_body;             /* bytes */
    unsigned max_connections;      /* for requests; PROBE_RESERVE more are accepted for
                                        public routes (health probes) only */
    unsigned max_streams;          /* streamed responses (event streams) open at once;
                                        0 = no limit but max_connections */
    unsigned connection_timeout_s; /* idle timeout; also the deadline for a request's
                                        headers and for a body arriving slower than
                                        64 KiB/s; 0 = none */
} td_server_opts;

/* listen 127.0.0.1:8080, no token, 256 MiB body, 512 connections, 256 streams, 30 s
 * timeout. */
td_server_opts td_server_default_opts(void);

/* Binds o->listen and starts serving routes (the array is copied; the strings and
 * handlers it points to must outlive the server). Every handler gets app. On error *out
 * is NULL and err says why (TD_EINVAL bad address, TD_EIO bind/start failure). */
td_status td_server_start(td_server **out, const td_server_opts *o, const td_route *routes,
                          size_t nroutes, void *app, td_error *err);

/* Stops accepting, ends open event streams, closes every connection after its current
 * handler returns, joins the threads and frees s. NULL is a no-op. */
void td_server_stop(td_server *s);

/* Replaces the token set (copied) for the requests that start from now on; one already
 * authenticated keeps its answer. */
td_status td_server_set_tokens(td_server *s, const td_tokens *t, td_error *err);
/* Sets max_body for requests whose headers arrive from now on. */
void td_server_set_max_body(td_server *s, uint64_t max_body);
/* 1 when the server speaks HTTPS. */
int td_server_tls(const td_server *s);

/* The bound port (the ephemeral one when listen asked for port 0). */
int td_server_port(const td_server *s);
/* The bound address as "127.0.0.1:PORT" or "[::1]:PORT". */
const char *td_server_address(const td_server *s);

/* Responses sent with this status code so far (0 for codes outside 100..599). */
uint64_t td_server_requests(const td_server *s, int status);
/* Open connections now. */
unsigned td_server_connections(const td_server *s);
/* Open streamed responses now. */
unsigned td_server_streams(const td_server *s);
/* Writes the server's Prometheus metrics (traind_http_requests_total{code=...},
 * traind_http_connections, traind_http_event_streams) to out. */
void td_server_write_metrics(const td_server *s, FILE *out);

/* Resolves a listen string into a socket address. */
td_status td_listen_parse(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
                          td_error *err);
/* 1 when every address listen resolves to is a loopback address (127.0.0.0/8, ::1),
 * 0 otherwise (also when it does not resolve). */
int td_listen_is_loopback(const char *listen);

/* The router, exposed for tests and fuzzing. Finds the route for method + path (HEAD is
 * routed like GET): returns it with *path_status 200, or NULL with *path_status 404 (no
 * pattern matches the path) or 405 (one does, not for this method). allow (may be NULL)
 * gets the methods of the routes whose pattern matches, ", "-separated, truncated to
 * allow_len; *any_public (may be NULL) is 1 when one of those routes is public. */
const td_route *td_route_find(const td_route *routes, size_t n, const char *method,
                              const char *path, int *path_status, char *allow, size_t allow_len,
                              int *any_public);
/* Copies path into capbuf (strlen(path) + 1 bytes) and points params at its "{x}"
 * segments there (at most TD_MAX_PATH_PARAMS); returns their count, or -1 when path does
 * not match pattern (capbuf and params untouched). */
int td_route_captures(const char *pattern, const char *path, char *capbuf,
                      const char *params[TD_MAX_PATH_PARAMS]);

/* Constant-time equality of two NUL-terminated strings (time depends only on the length
 * of expected). */
int td_token_equal(const char *given, const char *expected);

#endif
