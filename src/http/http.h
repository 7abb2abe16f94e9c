/* http.h — the HTTP edge's request/response interface, independent of libmicrohttpd.
 *
 * server.c owns the libmicrohttpd daemon: it accumulates a request's body (413 past the
 * limit) or streams it to the route's td_body_sink, checks auth (401), routes method +
 * path through the route table (404 / 405), checks the content type a route declares
 * (415), calls the handler with a td_req, and sends the td_resp. Handlers never see libmicrohttpd types, so they can be unit-tested
 * by building a td_req by hand. */
#ifndef TRAIND_HTTP_H
#define TRAIND_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "traind/status.h"

#define TD_MAX_PATH_PARAMS 4

typedef struct td_req {
    const char *method;                     /* "GET", "POST", ... */
    const char *path;                       /* without the query string */
    const char *params[TD_MAX_PATH_PARAMS]; /* captured "{id}" segments, in order */
    int nparams;
    const char *body; /* NUL-terminated copy of the body ("" if none) */
    size_t body_len;
    void *conn; /* opaque: for td_req_header / td_req_query */
} td_req;

/* Header value (case-insensitive name) or NULL. */
const char *td_req_header(const td_req *r, const char *name);
/* Query-string argument or NULL. */
const char *td_req_query(const td_req *r, const char *name);

/* Streaming body producer for long responses (Server-Sent Events): called repeatedly;
 * writes up to max bytes into buf and returns the count, 0 when it has nothing yet
 * (it will be called again shortly — it may block briefly, e.g. on a condition variable
 * for up to ~1 s), or -1 at the end of the stream. pos is the number of bytes the producer
 * has returned so far. It runs on the connection's own thread, so waiting blocks no other
 * request; while it has nothing, the server sends an SSE comment (": keepalive") now and
 * then, and ends the stream itself when the server stops. free_fn(ctx) runs when the
 * response is done or the client went away. */
typedef ssize_t (*td_stream_fn)(void *ctx, uint64_t pos, char *buf, size_t max);

#define TD_MAX_RESP_HEADERS 4
typedef struct td_resp {
    int status;               /* default 200 */
    const char *content_type; /* default "application/json" */
    char *body;               /* malloc'd, owned by the response; may be NULL */
    size_t body_len;
    const char *hdr_name[TD_MAX_RESP_HEADERS];
    char hdr_value[TD_MAX_RESP_HEADERS][256];
    int nhdr;
    td_stream_fn stream; /* when set, body is ignored */
    void *stream_ctx;
    void (*stream_free)(void *ctx);
} td_resp;
/* The server hands a handler a zeroed td_resp with status 200. A body with body_len 0 is
 * sent as strlen(body) bytes. A handler tested without a server starts from
 * `td_resp r = {0}` and releases it with td_resp_free. */

/* Frees the body and, if a stream is set, runs stream_free(stream_ctx); r can be reused. */
void td_resp_free(td_resp *r);

/* Sets the body (takes ownership of a malloc'd string, freeing any previous body) with a
 * status and Content-Type application/json. json NULL (a failed cJSON_Print) gives a 500
 * out_of_memory error object instead. */
void td_resp_json(td_resp *r, int status, char *json);
/* The error object of SPEC §6: {"error":{"code","message","field"?}}. */
void td_resp_error(td_resp *r, int status, const char *code, const char *field, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
/* Error response from a td_status and td_error: code td_status_code(st), field and message
 * from err. Status mapped: EMALFORMED 400 (code malformed_json), EINVAL/EDIVERGED 422,
 * ENOTFOUND 404, ECONFLICT 409, EBUSY 429 (with Retry-After: 1), ESTOPPED/ESHUTDOWN 503 (Retry-After: 5),
 * EIO/ENOMEM/EINTERNAL (and TD_OK, a caller bug) 500. */
void td_resp_from_error(td_resp *r, td_status st, const td_error *err);
/* Adds a header, or replaces one of the same name (case-insensitive); name must outlive
 * the response (a string literal). CR/LF in the value become spaces. */
void td_resp_header(td_resp *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef void (*td_handler)(void *app, const td_req *req, td_resp *resp);

/* A streaming consumer of a route's request body (td_route.sink), for bodies too big to
 * hold: the server hands the body over piece by piece as it arrives (in the pieces
 * libmicrohttpd reads, at most some 64 KiB each) instead of accumulating it. Every
 * check that comes before a handler (auth, routing, content type, the Content-Length
 * limit) comes before begin too, and the body limit holds while the body streams: past
 * it the state is freed at once, the rest is dropped, and the answer is 413. All
 * callbacks run on the connection's thread, in order: begin, piece..., end, free. */
typedef struct td_body_sink {
    /* The headers are in (req as a handler gets it, with body "" and body_len 0). Returns
     * the request's state, or NULL when out of memory (the answer is then 503). */
    void *(*begin)(void *app, const td_req *req);
    /* The next len bytes of the body. Returns 0 to go on, nonzero when the rest is not
     * wanted (it is still read, counted against the limit, and dropped). */
    int (*piece)(void *state, const char *data, size_t len);
    /* The whole body is in: answer the request as a handler would (req->body_len is the
     * body's size; req->body is ""). Not called when the request was refused (413, ...)
     * or the client went away. */
    void (*end)(void *app, void *state, const td_req *req, td_resp *resp);
    /* Frees the state, once for every state begin returned, whatever happened (run from
     * the request-completed callback, so also when the client aborted). May be NULL. */
    void (*free)(void *state);
} td_body_sink;

/* A route: method and a path pattern whose "{x}" segments (each a whole path segment)
 * are captured into params. */
typedef struct td_route {
    const char *method;
    const char *pattern;      /* e.g. "/v1/jobs/{id}/losses" */
    td_handler handler;       /* may be NULL when sink is set */
    const char *body_types;   /* accepted content types for a body, comma-separated
                                        ("application/json,text/csv"), or NULL = no check */
    int public_route;         /* 1: no auth, and served in the connection slots
                                        reserved past max_connections: for the health
                                        probes (healthz, readyz) only */
    const td_body_sink *sink; /* NULL: the body is accumulated (up to the limit) and
                                        the handler gets it whole; else it streams */
    const char *query;        /* the query parameters it takes, comma-separated
                                        ("limit,after"; "" none): any other is a 422;
                                        NULL = not checked */
} td_route;

#endif
