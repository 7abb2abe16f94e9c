/* server.c — libmicrohttpd behind http.h: limits, auth, body handling, streams, metrics.
 * The response and request helpers and the router are in request.c, the listening
 * socket in listen.c.
 *
 * DESIGN
 *
 * Threads. The daemon runs libmicrohttpd with an internal polling thread that only
 * accepts, and one thread per connection (MHD_USE_THREAD_PER_CONNECTION, poll(2)). A
 * connection's requests, its handlers and its response (including a streamed one) all
 * run on that connection's thread, so a handler or an event stream that waits blocks
 * nobody else: ordinary requests stay fast while any number of SSE clients wait for
 * training progress. The cost is a thread (mostly untouched stack) per open connection,
 * bounded by max_connections. A thread pool with suspend/resume would save those threads
 * but makes every streaming producer asynchronous; with at most a few hundred
 * connections the simple model wins.
 *
 * Event streams (td_resp.stream). MHD calls stream_read on the connection's thread.
 * stream_read never hands MHD a 0 ("nothing yet", which MHD would busy-poll or, for
 * HTTP/1.0, treat as an API violation): it calls the producer again until the producer
 * returns data or ends the stream. A producer may block up to ~1 s per call; one that
 * returns 0 at once is re-called every 20 ms. While the producer has nothing, a comment
 * line (": keepalive") goes out every min(15 s, timeout/2) so that MHD's idle timeout and
 * proxies do not cut a quiet stream, and a client that went away is noticed (the send
 * fails, MHD closes, the producer's free function runs). td_server_stop sets `stopping`,
 * which makes every stream_read end its stream within one producer call.
 *
 * Per-request state (req_state) is created on the first access-handler call and freed
 * only in the request-completed callback, which MHD also runs when a client aborts.
 *
 * Request bodies. A route without a sink gets its body accumulated (up to max_body) and
 * its handler called once it is all in: right for the small bodies of most routes. A
 * route with a td_body_sink (POST /v1/datasets) has its sink begun on the first call,
 * once the headers passed every check; each piece MHD reads (some 16 KiB) goes to the
 * sink as it arrives and is not kept, and the sink's end answers when the body is in.
 * The sink's state is freed in the request-completed callback, or as soon as the body
 * passes max_body. The limit: a Content-Length over it (UINT64_MAX included: a declared
 * length is never taken for "unknown") is answered 413 before any of the body is read; a
 * chunked body is counted as it streams, dropped from the limit on, and answered 413
 * when it ends, or cut off (connection closed) OVERFLOW_SLACK bytes later.
 * (libmicrohttpd 0.9.75 accepts a response only before the body is read or after it all
 * is: MHD_queue_response returns MHD_NO in between, so an earlier 413 is not possible.)
 *
 * Refusals come from the headers. Every rejection decide() makes (401, 404, 405, 400 for a
 * bad Content-Length, 415, 413, 503) is queued on the first access-handler call, so the
 * client gets it before sending any body; when a body may follow (or on any 401 or
 * 503) the response carries Connection: close, and MHD closes after sending it without
 * reading the rest. Authentication is checked before the body limit, so a client
 * without the token learns nothing but 401 and holds its connection for one round trip.
 * (Content-Length values MHD itself cannot parse, e.g. "-5" or 25 digits, are answered
 * by MHD with its own 400 / 413 and a close before we are called.)
 * Per-connection state (conn_entry) is created and freed by the connection-notify
 * callback and sits in a list under `lock`.
 *
 * Slow clients. MHD's connection timeout drops a connection idle for timeout seconds.
 * That alone does not stop a client that drips a byte now and then, so a watchdog thread
 * checks every connection's phase (conn_entry.phase) five times a second and shuts down
 * (shutdown(2)) one that is past its deadline: (1) waiting for a request's headers for
 * longer than timeout (from accept, or from the end of the previous request); (2) a body
 * still arriving timeout seconds after its headers at less than SLOW_BODY_RATE (64 KiB/s)
 * on average since them. The body rule is a minimum average rate rather than a fixed
 * total deadline: a dripped or endless body lives at most timeout seconds (plus one
 * watchdog tick), while an honest upload of B bytes is never cut before
 * max(timeout, B / 64 KiB/s) — and max_body bounds B, so every body ends. A client
 * keeping a slot must send 64 KiB/s for it, which a drip attack cannot afford at scale.
 * The conn_entry is unlinked under `lock` before MHD closes the fd, so the watchdog never
 * touches a reused descriptor.
 *
 * Reserved slots. MHD's connection limit is max_connections + PROBE_RESERVE. A connection
 * accepted while max_connections others are open is marked `reserve`: it may only ask for
 * a public route (the health probes /healthz and /readyz; anything else is a 503
 * server_busy with Retry-After: 1), must send its headers within RESERVE_HEADER_S, and is
 * closed after its one answer. So whatever holds the max_connections ordinary slots
 * (event streams, idle keep-alive clients, uploads), a probe gets through, and the reserve
 * turns over within RESERVE_HEADER_S even if idle connections land in it: holding it
 * takes PROBE_RESERVE new connections every 2 s, a flood rather than a leak.
 *
 * Streamed responses hold a connection for as long as the client wants, so at most
 * max_streams are open at once (nstreams, taken in send_resp, given back by MHD's free
 * callback of the response, stream_done); past it a handler's stream becomes a 503
 * too_many_streams with Retry-After, and the other slots stay for ordinary requests.
 *
 * Counters (responses by status, open connections) are atomics.
 */
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util/budget.h"
#include "http/auth.h"
#include "http/listen.h"
#include "http/tls.h"
#include "util/clock.h"
#include "util/log.h"

#define STATUS_LO 100
#define STATUS_HI 599
#define SLOW_BODY_RATE (64.0 * 1024) /* bytes/s below which a late body is dropped */
#define PROBE_RESERVE 8              /* connections past max_connections kept for probes */
#define RESERVE_HEADER_S 2.0         /* header deadline of a connection in the reserve */
#define KEEPALIVE_MAX_S 15.0
#define OVERFLOW_SLACK (16u << 20) /* bytes of a chunked body read past the limit for a 413 */
#define KEEPALIVE_TEXT ": keepalive\n\n"

typedef enum {
    CONN_HEADERS, /* waiting for a request's headers */
    CONN_BODY,    /* a request's body is arriving */
    CONN_BUSY     /* a handler runs or a response goes out: no deadline */
} conn_phase;

typedef struct conn_entry {
    struct conn_entry *prev, *next;
    int fd;
    conn_phase phase;
    double since;              /* monotonic time the phase began */
    _Atomic uint64_t body_got; /* bytes of the body received (phase CONN_BODY) */
    int reserve;               /* accepted past max_connections: probes only (see DESIGN) */
    int killed;                /* the watchdog shut it down */
} conn_entry;

struct td_server {
    struct MHD_Daemon *mhd;
    td_route *routes;
    size_t nroutes;
    void *app;
    td_tokens *tokens; /* empty = no auth; swapped under tok_lock */
    pthread_rwlock_t tok_lock;
    _Atomic uint64_t max_body; /* changed by td_server_set_max_body (SIGHUP) */
    int tls;                   /* HTTPS only */
    unsigned max_conn;         /* max_connections; MHD's limit is PROBE_RESERVE more */
    unsigned max_streams;      /* streamed responses at once; 0 = no limit */
    unsigned timeout_s;
    double keepalive_s;
    int port;
    char address[96];
    atomic_int stopping;
    _Atomic uint64_t counts[STATUS_HI - STATUS_LO + 1];
    atomic_uint nconn;
    atomic_uint nstreams; /* streamed responses open now */

    pthread_mutex_t lock; /* guards conns, wd_quit */
    pthread_cond_t wd_cond;
    conn_entry *conns;
    int wd_quit;
    int wd_started;
    pthread_t wd_thread;
};

typedef struct req_state {
    td_server *srv;
    conn_entry *ce;
    double t0;
    char method[16];
    char logpath[160];
    char token_name[TD_TOKEN_NAME_MAX]; /* the token's NAME, "-" for none, for the audit */
    const td_route *route;
    char *capbuf; /* copy of the path holding the captures */
    const char *params[TD_MAX_PATH_PARAMS];
    int nparams;
    int has_body;
    uint64_t content_length; /* UINT64_MAX = unknown (chunked) */
    uint64_t max_body;       /* the server's max_body when the headers came in */
    /* A rejection decided from the headers (0 = none). */
    int rej_status;
    const char *rej_code;
    char rej_msg[256];
    char rej_field[64]; /* the error's field, "" for none */
    char allow[64];
    /* The body: accumulated, or streamed to the route's sink. */
    char *body;
    size_t len, cap;
    const td_body_sink *sink; /* set once begin returned sink_state */
    void *sink_state;
    int sink_stopped; /* the sink wants no more: the rest is dropped */
    int overflow;     /* body passed max_body: discarding */
    uint64_t discarded;
    int nomem;
    uint64_t reserved; /* bytes of the memory budget held for the body */
    int over_budget;   /* a chunked body outgrew the budget: discarding */
    int status;        /* status of the response queued, 0 = none */
    int close;         /* answer with Connection: close */
} req_state;

typedef struct stream_state {
    td_server *srv;
    td_stream_fn fn;
    void *ctx;
    void (*free_fn)(void *ctx);
    uint64_t upos; /* bytes the producer has delivered */
    double last_out;
    int slot; /* holds one of max_streams (an event stream) */
} stream_state;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Authenticates the request: 1 when no token is configured (*scope write, name "-") or
 * `Authorization: Bearer <token>` carries one of the set (*scope its scope, name its
 * NAME), else 0 (name "-"). */
static int bearer_ok(td_server *s, struct MHD_Connection *c, td_scope *scope, char *name,
                     size_t name_len)
{
    snprintf(name, name_len, "-");
    *scope = TD_SCOPE_WRITE;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    pthread_rwlock_rdlock(&s->tok_lock);
    int ok = s->tokens->n == 0;
    if (!ok && h) {
        while (*h == ' ' || *h == '\t')
            h++;
        if (strncasecmp(h, "Bearer", 6) == 0 && (h[6] == ' ' || h[6] == '\t')) {
            h += 6;
            while (*h == ' ' || *h == '\t')
                h++;
            const td_token *t = td_tokens_match(s->tokens, h);
            if (t) {
                ok = 1;
                *scope = t->scope;
                snprintf(name, name_len, "%s", t->name);
            }
        }
    }
    pthread_rwlock_unlock(&s->tok_lock);
    return ok;
}

/* Is the media type of ct (before ';') in the comma-separated list? */
static int type_accepted(const char *ct, const char *list)
{
    if (!ct) return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; \t");
    for (const char *l = list; *l;) {
        while (*l == ',' || *l == ' ')
            l++;
        size_t m = strcspn(l, ", ");
        if (m && m == n && strncasecmp(l, ct, n) == 0) return 1;
        l += m;
    }
    return 0;
}

static void reject(req_state *rs, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reject(req_state *rs, int status, const char *code, const char *fmt, ...)
{
    rs->rej_status = status;
    rs->rej_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rs->rej_msg, sizeof rs->rej_msg, fmt, ap);
    va_end(ap);
}

/* MHD_get_connection_values callback: the first query parameter whose name is not in
 * the route's comma-separated list. */
typedef struct query_check {
    const char *allowed;
    char bad[64];
} query_check;

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind, (void)value;
    query_check *q = cls;
    size_t n = strlen(key);
    for (const char *p = q->allowed; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, key, n) == 0) return MHD_YES;
        p += len + (e != NULL);
    }
    snprintf(q->bad, sizeof q->bad, "%s", key);
    return MHD_NO;
}

/* A Content-Length value: decimal digits between optional blanks. Returns 0 with *out the
 * value (UINT64_MAX when it does not fit: larger than any limit all the same), or -1 when
 * it is not a number. */
static int parse_length(const char *v, uint64_t *out)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v < '0' || *v > '9') return -1;
    uint64_t n = 0;
    for (; *v >= '0' && *v <= '9'; v++) {
        unsigned d = (unsigned)(*v - '0');
        n = n > (UINT64_MAX - d) / 10 ? UINT64_MAX : n * 10 + d;
    }
    while (*v == ' ' || *v == '\t')
        v++;
    *out = n;
    return *v ? -1 : 0;
}

/* Decides from the request line and headers: route, captures, or a rejection. Every
 * rejection is answered at once, before any of the body is read (see on_request). */
static void decide(td_server *s, req_state *rs, struct MHD_Connection *c, const char *url,
                   const char *method)
{
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    /* content_length UINT64_MAX means "unknown" (chunked) from here on: a declared length
     * of UINT64_MAX is a known one, over every limit, and refused below. */
    rs->content_length = UINT64_MAX;
    rs->max_body = atomic_load(&s->max_body);
    uint64_t declared = 0;
    int cl_bad = 0;
    if (te) /* chunked: the length is unknown; Transfer-Encoding overrides Content-Length */
        rs->has_body = 1;
    else if (cl && parse_length(cl, &declared) != 0)
        rs->has_body = cl_bad = 1; /* we cannot tell where it ends */
    else
        rs->has_body = declared > 0;

    /* Both framings: a proxy in front may take one and us the other, so where the body
     * ends (and the next request begins) is ambiguous. 400, and send_reject closes the
     * connection: nothing pipelined behind it is read. */
    if (te && cl) {
        rs->has_body = 1;
        reject(rs, 400, "bad_request",
               "a request must not carry both Content-Length and "
               "Transfer-Encoding");
        return;
    }

    if (atomic_load(&s->stopping)) {
        reject(rs, 503, "shutting_down", "the server is shutting down");
        return;
    }

    int path_status = 0, path_public = 0;
    const td_route *hit = td_route_find(s->routes, s->nroutes, method, url, &path_status, rs->allow,
                                        sizeof rs->allow, &path_public);
    td_scope scope;
    int authed = bearer_ok(s, c, &scope, rs->token_name, sizeof rs->token_name);
    if (rs->ce && rs->ce->reserve && !(hit && hit->public_route)) {
        reject(rs, 503, "server_busy",
               "all %u connections (max_connections) are in use; "
               "retry later",
               s->max_conn);
        return;
    }
    if (!hit) {
        if (!authed && !path_public) {
            reject(rs, 401, "unauthorized", "missing or wrong bearer token");
        } else if (path_status == 404) {
            reject(rs, 404, "not_found", "no such resource");
        } else {
            reject(rs, 405, "method_not_allowed", "method %s is not allowed here; allowed: %s",
                   method, rs->allow);
        }
        return;
    }
    if (!hit->public_route && !authed) {
        reject(rs, 401, "unauthorized", "missing or wrong bearer token");
        return;
    }
    if (!hit->public_route && !td_scope_allows(scope, method, url)) {
        reject(rs, 403, "forbidden", "token \"%s\" has scope %s; %s %s needs scope write",
               rs->token_name, td_scope_name(scope), method, url);
        return;
    }
    if (hit->query) { /* the route declares its query parameters: any other is a 422 */
        query_check q = {.allowed = hit->query, .bad = ""};
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_one, &q);
        if (q.bad[0]) {
            snprintf(rs->rej_field, sizeof rs->rej_field, "%s", q.bad);
            reject(rs, 422, "invalid_argument",
                   "unknown query parameter \"%.64s\"; %s %s "
                   "takes %s%s",
                   q.bad, method, hit->pattern, hit->query[0] ? "" : "none", hit->query);
            return;
        }
    }
    if (cl_bad) {
        reject(rs, 400, "bad_request", "Content-Length \"%.64s\" is not a number of bytes", cl);
        return;
    }
    if (rs->has_body && hit->body_types) {
        const char *ct =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!type_accepted(ct, hit->body_types)) {
            reject(rs, 415, "unsupported_media_type",
                   "Content-Type %s%s%s is not accepted; "
                   "use %s",
                   ct ? "\"" : "", ct ? ct : "(none)", ct ? "\"" : "", hit->body_types);
            return;
        }
    }
    if (!te && declared > rs->max_body) {
        reject(rs, 413, "payload_too_large",
               "request body of %s%llu bytes is larger than the "
               "limit of %llu bytes (max_body_mb)",
               declared == UINT64_MAX ? "at least " : "", (unsigned long long)declared,
               (unsigned long long)rs->max_body);
        return;
    }
    if (!te && cl) rs->content_length = declared;

    rs->route = hit;
    rs->capbuf = malloc(strlen(url) + 1);
    if (!rs->capbuf) {
        reject(rs, 500, "out_of_memory", "out of memory");
        return;
    }
    int n = td_route_captures(hit->pattern, url, rs->capbuf, rs->params);
    rs->nparams = n > 0 ? n : 0;
}

/* ----------------------------------------------------------------- streams ---- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos; /* MHD's position counts keepalives too; the producer gets its own */
    stream_state *ss = cls;
    const size_t ka = sizeof KEEPALIVE_TEXT - 1;
    for (;;) {
        if (atomic_load(&ss->srv->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        double t0 = td_mono_s();
        ssize_t n = ss->fn(ss->ctx, ss->upos, buf, max);
        if (n < 0) return MHD_CONTENT_READER_END_OF_STREAM;
        double t = td_mono_s();
        if (n > 0) {
            if ((size_t)n > max) n = (ssize_t)max;
            ss->upos += (uint64_t)n;
            ss->last_out = t;
            return n;
        }
        if (t - ss->last_out >= ss->srv->keepalive_s && max >= ka) {
            memcpy(buf, KEEPALIVE_TEXT, ka);
            ss->last_out = t;
            return (ssize_t)ka;
        }
        if (t - t0 < 0.005) sleep_ms(20); /* the producer did not wait: do not spin */
    }
}

/* MHD's free callback of a streamed response: ends the producer and gives back the
 * stream's slot (taken in send_resp). */
static void stream_done(void *cls)
{
    stream_state *ss = cls;
    if (ss->free_fn) ss->free_fn(ss->ctx);
    if (ss->slot) atomic_fetch_sub(&ss->srv->nstreams, 1);
    free(ss);
}

/* Takes one of the max_streams slots: 1, or 0 when all are in use. */
static int stream_slot_take(td_server *s)
{
    unsigned n = atomic_fetch_add(&s->nstreams, 1);
    if (!s->max_streams || n < s->max_streams) return 1;
    atomic_fetch_sub(&s->nstreams, 1);
    return 0;
}

/* ---------------------------------------------------------------- sending ---- */

static void count(td_server *s, int status)
{
    if (status >= STATUS_LO && status <= STATUS_HI)
        atomic_fetch_add(&s->counts[status - STATUS_LO], 1);
}

/* Queues r (consuming its body / stream). */
static enum MHD_Result send_resp(td_server *s, req_state *rs, struct MHD_Connection *c, td_resp *r)
{
    struct MHD_Response *mr;
    int status = r->status ? r->status : 200;
    if (status < STATUS_LO || status > STATUS_HI) status = 500;
    const char *ctype = r->content_type ? r->content_type : "application/json";
    int sse = 0;
    if (r->stream) {
        stream_state *ss = calloc(1, sizeof *ss);
        if (!ss) {
            td_resp_free(r);
            td_resp_error(r, 500, "out_of_memory", NULL, "out of memory");
            return send_resp(s, rs, c, r);
        }
        /* Event streams (text/event-stream) live as long as their job and count against
         * max_event_streams; other streamed answers (predictions, gradients) end as soon
         * as they are written and take no slot. */
        sse = strncasecmp(ctype, "text/event-stream", 17) == 0;
        if (sse && !stream_slot_take(s)) { /* given back by stream_done */
            free(ss);
            rs->close = 1; /* a client turned away holds no connection either */
            td_resp_free(r);
            td_resp_error(r, 503, "too_many_streams", NULL,
                          "all %u event-stream slots "
                          "(max_event_streams) are in use; retry later",
                          s->max_streams);
            td_resp_header(r, "Retry-After", "5");
            return send_resp(s, rs, c, r);
        }
        ss->srv = s;
        ss->fn = r->stream;
        ss->ctx = r->stream_ctx;
        ss->free_fn = r->stream_free;
        ss->last_out = td_mono_s();
        ss->slot = sse;
        r->stream = NULL; /* owned by ss now */
        r->stream_ctx = NULL;
        r->stream_free = NULL;
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, ss,
                                               stream_done);
        if (!mr) {
            stream_done(ss);
            free(r->body);
            r->body = NULL;
            return MHD_NO;
        }
        free(r->body);
        r->body = NULL;
    } else if (r->body) {
        size_t len = r->body_len ? r->body_len : strlen(r->body);
        mr = MHD_create_response_from_buffer(len, r->body, MHD_RESPMEM_MUST_FREE);
        if (!mr) {
            free(r->body);
            r->body = NULL;
            return MHD_NO;
        }
        r->body = NULL; /* MHD frees it */
    } else {
        mr = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!mr) return MHD_NO;
    }
    if (status != 204 && status != 304)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (sse) {
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(mr, "X-Accel-Buffering", "no");
    }
    for (int i = 0; i < r->nhdr && i < TD_MAX_RESP_HEADERS; i++)
        if (r->hdr_name[i]) MHD_add_response_header(mr, r->hdr_name[i], r->hdr_value[i]);
    if (rs->close || (rs->ce && rs->ce->reserve))
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, mr);
    MHD_destroy_response(mr);
    if (ok == MHD_YES) {
        count(s, status);
        rs->status = status;
    }
    return ok;
}

/* Answers the rejection decided from the headers. A refused body is never read: the
 * connection closes after the answer (MHD drops what the client still sends), as it does
 * after a 401 and a 503, so that an unauthenticated or turned-away client holds nothing. */
static enum MHD_Result send_reject(td_server *s, req_state *rs, struct MHD_Connection *c)
{
    if (rs->has_body || rs->rej_status == 401 || rs->rej_status == 503) rs->close = 1;
    td_resp r = {0};
    td_resp_error(&r, rs->rej_status, rs->rej_code, rs->rej_field[0] ? rs->rej_field : NULL, "%s",
                  rs->rej_msg);
    if (rs->rej_status == 405) td_resp_header(&r, "Allow", "%s", rs->allow);
    if (rs->rej_status == 401) td_resp_header(&r, "WWW-Authenticate", "Bearer realm=\"traind\"");
    if (rs->rej_status == 503)
        td_resp_header(&r, "Retry-After", strcmp(rs->rej_code, "server_busy") ? "5" : "1");
    return send_resp(s, rs, c, &r);
}

/* ----------------------------------------------------------- MHD callbacks ---- */

/* The memory budget (util/budget.h) held for a body: BODY_BUDGET_FACTOR times its bytes
 * (the bytes, and what they are parsed into), reserved at the headers when the length is
 * known, else piece by piece; released when the request completes. */
#define BODY_BUDGET_FACTOR 2

static int body_reserve(req_state *rs, uint64_t bytes)
{
    uint64_t b = BODY_BUDGET_FACTOR * bytes;
    if (!td_budget_reserve(b)) return 0;
    rs->reserved += b;
    return 1;
}

/* At the headers: a body of known length that does not fit the budget is refused before
 * it is read: 413 when it could never fit, else 503 (Retry-After). */
static void body_admit(req_state *rs)
{
    if (rs->rej_status || rs->content_length == UINT64_MAX || rs->content_length == 0 ||
        body_reserve(rs, rs->content_length))
        return;
    uint64_t limit = td_budget_limit();
    if (BODY_BUDGET_FACTOR * rs->content_length > limit)
        reject(rs, 413, "payload_too_large",
               "request body of %llu bytes needs more memory "
               "to read than max_memory_mb (%llu MiB) allows",
               (unsigned long long)rs->content_length, (unsigned long long)(limit >> 20));
    else
        reject(rs, 503, "over_memory_budget",
               "request body of %llu bytes does not fit the "
               "memory budget now (max_memory_mb = %llu, held by running jobs and other "
               "requests); retry later",
               (unsigned long long)rs->content_length, (unsigned long long)(limit >> 20));
}

/* Frees the sink's state (when the body passed the limit, and at the latest when the
 * request completes). */
static void sink_release(req_state *rs)
{
    if (rs->sink_state && rs->sink->free) rs->sink->free(rs->sink_state);
    rs->sink_state = NULL;
}

static void req_of(td_req *req, const req_state *rs, struct MHD_Connection *c, const char *url,
                   const char *method)
{
    memset(req, 0, sizeof *req);
    req->method = method;
    req->path = url;
    req->nparams = rs->nparams;
    req->body = "";
    req->conn = c;
    for (int i = 0; i < rs->nparams; i++)
        req->params[i] = rs->params[i];
}

static void conn_set_phase(td_server *s, conn_entry *ce, conn_phase phase)
{
    if (!ce) return;
    pthread_mutex_lock(&s->lock);
    ce->phase = phase;
    ce->since = td_mono_s();
    atomic_store(&ce->body_got, 0);
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    td_server *s = cls;
    req_state *rs = *con_cls;

    if (!rs) { /* first call: headers are in */
        rs = calloc(1, sizeof *rs);
        if (!rs) return MHD_NO;
        *con_cls = rs;
        rs->srv = s;
        rs->t0 = td_mono_s();
        snprintf(rs->method, sizeof rs->method, "%s", method);
        if (snprintf(rs->logpath, sizeof rs->logpath, "%s", url) >= (int)sizeof rs->logpath)
            memcpy(rs->logpath + sizeof rs->logpath - 4, "...", 4); /* cut, and says so */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        rs->ce = ci ? ci->socket_context : NULL;
        decide(s, rs, c, url, method);
        body_admit(rs);
        if (!rs->rej_status && rs->route->sink) {
            td_req req;
            req_of(&req, rs, c, url, method);
            rs->sink_state = rs->route->sink->begin(s->app, &req);
            if (rs->sink_state)
                rs->sink = rs->route->sink;
            else
                reject(rs, 503, "out_of_memory", "not enough memory to take the request");
        }
        /* The body's deadline (the watchdog's) starts now. */
        conn_set_phase(s, rs->ce, rs->has_body ? CONN_BODY : CONN_BUSY);
        /* Refuse at once, before reading any body: MHD accepts a response only now or
         * once the whole body is in, and after the response it drops the rest unread. */
        if (rs->rej_status) return send_reject(s, rs, c);
        return MHD_YES;
    }

    if (*upload_data_size) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rs->ce) atomic_fetch_add(&rs->ce->body_got, n);
        if (rs->rej_status || rs->nomem || rs->over_budget) return MHD_YES;
        if (rs->overflow) { /* discard up to OVERFLOW_SLACK more, then hang up */
            rs->discarded += n;
            if (rs->discarded - rs->max_body > OVERFLOW_SLACK) {
                td_log(TD_LOG_INFO, "http", "%s %s: dropped a chunked body far over the limit",
                       rs->method, rs->logpath);
                return MHD_NO;
            }
            return MHD_YES;
        }
        if ((uint64_t)rs->len + n > rs->max_body) {
            rs->overflow = 1;
            rs->discarded = rs->len + n;
            free(rs->body);
            rs->body = NULL;
            rs->len = rs->cap = 0;
            sink_release(rs); /* its memory goes now, not when the body ends */
            return MHD_YES;
        }
        if (rs->content_length == UINT64_MAX && !body_reserve(rs, n)) { /* chunked */
            rs->over_budget = 1;
            free(rs->body);
            rs->body = NULL;
            rs->len = rs->cap = 0;
            sink_release(rs);
            return MHD_YES;
        }
        if (rs->sink) { /* streamed: len counts the bytes, nothing is kept */
            rs->len += n;
            if (!rs->sink_stopped && rs->sink->piece(rs->sink_state, upload_data, n))
                rs->sink_stopped = 1;
            return MHD_YES;
        }
        if (rs->len + n + 1 > rs->cap) {
            size_t want = rs->len + n + 1;
            size_t cap = rs->cap ? rs->cap * 2 : 16384;
            if (cap < want) cap = want;
            if (rs->content_length != UINT64_MAX && cap > rs->content_length + 1 &&
                want <= rs->content_length + 1)
                cap = (size_t)rs->content_length + 1;
            if (cap > rs->max_body + 1) cap = (size_t)rs->max_body + 1;
            char *nb = realloc(rs->body, cap);
            if (!nb) {
                rs->nomem = 1;
                free(rs->body);
                rs->body = NULL;
                rs->len = rs->cap = 0;
                return MHD_YES;
            }
            rs->body = nb;
            rs->cap = cap;
        }
        memcpy(rs->body + rs->len, upload_data, n);
        rs->len += n;
        rs->body[rs->len] = '\0';
        return MHD_YES;
    }

    /* The whole request is in. */
    conn_set_phase(s, rs->ce, CONN_BUSY);
    if (rs->rej_status) return send_reject(s, rs, c);
    if (rs->overflow) {
        reject(rs, 413, "payload_too_large",
               "request body is larger than the limit of %llu "
               "bytes (max_body_mb)",
               (unsigned long long)rs->max_body);
        return send_reject(s, rs, c);
    }
    if (rs->nomem) {
        reject(rs, 503, "out_of_memory", "not enough memory for a %llu-byte body",
               (unsigned long long)(rs->len + rs->discarded));
        return send_reject(s, rs, c);
    }
    if (rs->over_budget) {
        reject(rs, 503, "over_memory_budget",
               "the request body outgrew the memory budget "
               "(max_memory_mb = %llu); retry later",
               (unsigned long long)(td_budget_limit() >> 20));
        return send_reject(s, rs, c);
    }
    td_req req;
    req_of(&req, rs, c, url, method);
    req.body = rs->body ? rs->body : "";
    req.body_len = rs->len;
    td_resp resp = {0};
    resp.status = 200;
    if (rs->sink) {
        req.body = "";
        rs->sink->end(s->app, rs->sink_state, &req, &resp);
    } else {
        rs->route->handler(s->app, &req, &resp);
    }
    enum MHD_Result ok = send_resp(s, rs, c, &resp);
    td_resp_free(&resp);
    return ok;
}

static const char *toe_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "ok";
    case MHD_REQUEST_TERMINATED_WITH_ERROR: return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "read error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "client abort";
    }
    return "?";
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    td_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs) return;
    *con_cls = NULL;
    double ms = (td_mono_s() - rs->t0) * 1e3;
    /* The audit: every write request, authorized or not, with the token's NAME. */
    if (strcmp(rs->method, "GET") != 0 && strcmp(rs->method, "HEAD") != 0)
        td_log(TD_LOG_INFO, "audit", "token=%s method=%s path=%s status=%d%s",
               rs->token_name[0] ? rs->token_name : "-", rs->method, rs->logpath, rs->status,
               toe != MHD_REQUEST_TERMINATED_COMPLETED_OK ? " (not completed)" : "");
    if (rs->status >= 500)
        td_log(TD_LOG_WARN, "http", "%s %s %d %.1fms", rs->method, rs->logpath, rs->status, ms);
    else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        td_log(TD_LOG_DEBUG, "http", "%s %s %d %.1fms (%s)", rs->method, rs->logpath, rs->status,
               ms, toe_name(toe));
    else
        td_log(TD_LOG_DEBUG, "http", "%s %s %d %.1fms", rs->method, rs->logpath, rs->status, ms);
    conn_set_phase(s, rs->ce, CONN_HEADERS);
    sink_release(rs);
    free(rs->capbuf);
    free(rs->body);
    td_budget_release(rs->reserved);
    free(rs);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    td_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        unsigned n = atomic_fetch_add(&s->nconn, 1) + 1;
        conn_entry *ce = calloc(1, sizeof *ce);
        if (!ce) return; /* this connection just has no deadlines */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        ce->fd = ci ? ci->connect_fd : -1;
        ce->phase = CONN_HEADERS;
        ce->since = td_mono_s();
        ce->reserve = n > s->max_conn;
        pthread_mutex_lock(&s->lock);
        ce->next = s->conns;
        if (s->conns) s->conns->prev = ce;
        s->conns = ce;
        pthread_mutex_unlock(&s->lock);
        *socket_context = ce;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&s->nconn, 1);
        conn_entry *ce = *socket_context;
        if (!ce) return;
        pthread_mutex_lock(&s->lock);
        if (ce->prev)
            ce->prev->next = ce->next;
        else
            s->conns = ce->next;
        if (ce->next) ce->next->prev = ce->prev;
        pthread_mutex_unlock(&s->lock);
        free(ce);
        *socket_context = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    /* Most messages are about clients that went away: debug. Resource trouble: warn. */
    int serious = strstr(buf, "thread") || strstr(buf, "memory") || strstr(buf, "accept") ||
        strstr(buf, "limit");
    td_log(serious ? TD_LOG_WARN : TD_LOG_DEBUG, "http", "libmicrohttpd: %s", buf);
}

/* Why ce is past its deadline at time now (the watchdog then closes it), or NULL. Called
 * under s->lock. */
static const char *conn_overdue(const td_server *s, const conn_entry *ce, double now)
{
    double el = now - ce->since;
    if (ce->phase == CONN_HEADERS) {
        double limit = s->timeout_s;
        if (ce->reserve && (limit == 0 || limit > RESERVE_HEADER_S)) limit = RESERVE_HEADER_S;
        return limit > 0 && el > limit ? "sent no complete request in time" : NULL;
    }
    if (ce->phase == CONN_BODY && s->timeout_s && el > s->timeout_s &&
        (double)atomic_load(&ce->body_got) / el < SLOW_BODY_RATE)
        return "sent its body too slowly";
    return NULL;
}

static void *watchdog_main(void *arg)
{
    td_server *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->wd_quit) {
        struct timespec ts = td_deadline(CLOCK_MONOTONIC, 200); /* wd_cond: monotonic */
        pthread_cond_timedwait(&s->wd_cond, &s->lock, &ts);
        double now = td_mono_s();
        for (conn_entry *ce = s->conns; ce; ce = ce->next) {
            const char *why = ce->killed || ce->fd < 0 ? NULL : conn_overdue(s, ce, now);
            if (!why) continue;
            shutdown(ce->fd, SHUT_RDWR); /* MHD sees EOF and closes the connection */
            ce->killed = 1;
            td_log(ce->phase == CONN_BODY ? TD_LOG_INFO : TD_LOG_DEBUG, "http",
                   "closed a connection that %s (%llu body bytes in %.1f s)", why,
                   (unsigned long long)atomic_load(&ce->body_got), now - ce->since);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---------------------------------------------------------------- lifecycle ---- */

td_server_opts td_server_default_opts(void)
{
    td_server_opts o = {
        .listen = "127.0.0.1:8080",
        .auth_token = NULL,
        .max_body = 256ull << 20,
        .max_connections = 512,
        .max_streams = 256,
        .connection_timeout_s = 30,
    };
    return o;
}

static void server_free(td_server *s)
{
    if (s->wd_started) {
        pthread_mutex_lock(&s->lock);
        s->wd_quit = 1;
        pthread_cond_signal(&s->wd_cond);
        pthread_mutex_unlock(&s->lock);
        pthread_join(s->wd_thread, NULL);
    }
    pthread_cond_destroy(&s->wd_cond);
    pthread_mutex_destroy(&s->lock);
    free(s->routes);
    td_tokens_free(s->tokens);
    pthread_rwlock_destroy(&s->tok_lock);
    free(s);
}

td_status td_server_start(td_server **out, const td_server_opts *o, const td_route *routes,
                          size_t nroutes, void *app, td_error *err)
{
    *out = NULL;
    td_status st = TD_OK;
    int fd = -1;
    td_server *s = calloc(1, sizeof *s);
    if (!s) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    pthread_rwlock_init(&s->tok_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wd_cond, &ca);
    pthread_condattr_destroy(&ca);

    s->app = app;
    s->max_body = o->max_body;
    s->max_conn = o->max_connections ? o->max_connections : 512;
    s->max_streams = o->max_streams;
    s->timeout_s = o->connection_timeout_s;
    s->keepalive_s = KEEPALIVE_MAX_S;
    if (s->timeout_s && s->timeout_s / 2.0 < s->keepalive_s) s->keepalive_s = s->timeout_s / 2.0;
    s->nroutes = nroutes;
    s->routes = calloc(nroutes ? nroutes : 1, sizeof *s->routes);
    if (!s->routes) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    if (nroutes) memcpy(s->routes, routes, nroutes * sizeof *routes);
    for (size_t i = 0; i < nroutes; i++)
        if (!routes[i].method || !routes[i].pattern ||
            (!routes[i].handler &&
             !(routes[i].sink && routes[i].sink->begin && routes[i].sink->piece &&
               routes[i].sink->end))) {
            st = td_fail(err, TD_EINVAL, "routes", "route %zu lacks a method, pattern or handler",
                         i);
            goto fail;
        }
    if (!(s->tokens = td_tokens_copy(o->tokens))) {
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    if (o->auth_token && *o->auth_token && !o->tokens) {
        td_config one = {0};
        snprintf(one.auth_token, sizeof one.auth_token, "%s", o->auth_token);
        td_tokens *t = NULL;
        if ((st = td_tokens_load(&t, &one, err)) != TD_OK) goto fail;
        td_tokens_free(s->tokens);
        s->tokens = t;
    }
    s->tls = o->tls_cert_pem && o->tls_key_pem;

    int v6 = 0;
    fd = td_listen_open(o->listen, &v6, s->address, sizeof s->address, &s->port, err);
    if (fd < 0) {
        st = TD_EIO;
        if (err && strstr(err->message, "host:port")) st = TD_EINVAL;
        goto fail;
    }

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
        MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    /* HTTPS only when a certificate is given (GnuTLS; TLS 1.2 and later). */
    /* The pair is answered by td_tls_retrieve, so that a reload can replace it. */
    struct MHD_OptionItem tlsopt[] = {
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)td_tls_retrieve},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)"NORMAL:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1"},
        {MHD_OPTION_END, 0, NULL},
    };
    if (s->tls) {
        td_tls_pem pem = {(char *)o->tls_cert_pem, (char *)o->tls_key_pem};
        if ((st = td_tls_install(&pem, err)) != TD_OK) goto fail;
        flags |= MHD_USE_TLS;
    }
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                              on_mhd_log, s, /* first, so that it gets everything */
                              MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
                              s->max_conn + PROBE_RESERVE, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)o->connection_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                              (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_ARRAY,
                              s->tls ? tlsopt : tlsopt + 2, MHD_OPTION_END);
    fd = -1; /* MHD's now (on failure it may have closed it: never close it twice) */
    if (!s->mhd) {
        st = td_fail(err, TD_EIO, "listen", "cannot start the HTTP server on %s", s->address);
        goto fail;
    }
    if (pthread_create(&s->wd_thread, NULL, watchdog_main, s) == 0)
        s->wd_started = 1;
    else
        td_log(TD_LOG_WARN, "http", "no deadline watchdog: pthread_create failed");
    *out = s;
    return TD_OK;

fail:
    if (fd >= 0) close(fd);
    if (s->mhd) MHD_stop_daemon(s->mhd);
    if (s->tls) td_tls_release();
    server_free(s);
    return st;
}

void td_server_stop(td_server *s)
{
    if (!s) return;
    atomic_store(&s->stopping, 1);
    MHD_socket lfd = MHD_quiesce_daemon(s->mhd);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    MHD_stop_daemon(s->mhd);
    if (s->tls) td_tls_release();
    server_free(s);
}

td_status td_server_set_tokens(td_server *s, const td_tokens *t, td_error *err)
{
    td_tokens *c = td_tokens_copy(t);
    if (!c) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    pthread_rwlock_wrlock(&s->tok_lock);
    td_tokens *old = s->tokens;
    s->tokens = c;
    pthread_rwlock_unlock(&s->tok_lock);
    td_tokens_free(old);
    return TD_OK;
}

void td_server_set_max_body(td_server *s, uint64_t max_body)
{
    atomic_store(&s->max_body, max_body);
}

int td_server_tls(const td_server *s) { return s->tls; }

int td_server_port(const td_server *s) { return s->port; }

const char *td_server_address(const td_server *s) { return s->address; }

uint64_t td_server_requests(const td_server *s, int status)
{
    if (status < STATUS_LO || status > STATUS_HI) return 0;
    return atomic_load(&((td_server *)s)->counts[status - STATUS_LO]);
}

unsigned td_server_connections(const td_server *s) { return atomic_load(&((td_server *)s)->nconn); }

unsigned td_server_streams(const td_server *s) { return atomic_load(&((td_server *)s)->nstreams); }

void td_server_write_metrics(const td_server *s, FILE *out)
{
    fprintf(out,
            "# HELP traind_http_requests_total HTTP responses sent, by status code.\n"
            "# TYPE traind_http_requests_total counter\n");
    for (int code = STATUS_LO; code <= STATUS_HI; code++) {
        uint64_t n = td_server_requests(s, code);
        if (n)
            fprintf(out, "traind_http_requests_total{code=\"%d\"} %llu\n", code,
                    (unsigned long long)n);
    }
    fprintf(out,
            "# HELP traind_http_connections Open HTTP connections.\n"
            "# TYPE traind_http_connections gauge\n"
            "traind_http_connections %u\n",
            td_server_connections(s));
    fprintf(out,
            "# HELP traind_http_event_streams Open streamed responses (event streams).\n"
            "# TYPE traind_http_event_streams gauge\n"
            "traind_http_event_streams %u\n",
            td_server_streams(s));
}
