/* test_edge.c — the daemon's HTTP edge under clients that try to hold its connections:
 * refusals decided from the headers (issue 10 item 4) and event streams against the
 * connection slots (item 7). Every case runs $TD_BIN on an ephemeral port.
 *
 * Deadlines here are generous (seconds) against a connection_timeout_s of 30 where the
 * behaviour must be immediate, so that a loaded machine cannot make them flake: what they
 * tell apart is "answered at once" from "waits for a body or a timeout". */
#define _GNU_SOURCE /* strcasestr */
#include <cJSON.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "testutil.h"

#define TOKEN "edge-test-token-1"
#define AUTH "Authorization: Bearer " TOKEN
#define HUGE_LEN "18446744073709551615" /* UINT64_MAX */

/* ---- helpers ----------------------------------------------------------------------- */

/* Starts the daemon with conf_text as its config file (and TRAIND_TOKEN when with_token);
 * returns its port. */
static int start(httpc_daemon *d, const char *conf_text, int with_token)
{
    const char *env[] = {"TRAIND_TOKEN=" TOKEN, NULL};
    *d = api_start(NULL, conf_text, NULL, with_token ? env : NULL);
    return d->port;
}

/* Reads what the server sends on fd until it closes the connection or timeout_s passes.
 * Returns the seconds until the close, or -1 when it was still open (buf gets the bytes
 * read, NUL-terminated, truncated to n - 1). */
static double read_to_close(int fd, char *buf, size_t n, double timeout_s)
{
    double t0 = httpc_now();
    size_t len = 0;
    buf[0] = '\0';
    for (;;) {
        double left = timeout_s - (httpc_now() - t0);
        if (left <= 0) return -1;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0) continue;
        char tmp[4096];
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return httpc_now() - t0;
        size_t take = (size_t)k < n - 1 - len ? (size_t)k : n - 1 - len;
        memcpy(buf + len, tmp, take);
        len += take;
        buf[len] = '\0';
    }
}

/* Reads a response's head (up to the blank line) within timeout_s; returns its status, or
 * -1. head gets the status line and headers. */
static int read_head(int fd, char *head, size_t n, double timeout_s)
{
    double t0 = httpc_now();
    size_t len = 0;
    head[0] = '\0';
    while (!strstr(head, "\r\n\r\n")) {
        double left = timeout_s - (httpc_now() - t0);
        if (left <= 0 || len + 1 >= n) return -1;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0) continue;
        ssize_t k = recv(fd, head + len, 1, 0); /* byte by byte: nothing past the head */
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        head[++len] = '\0';
    }
    int status = -1;
    return sscanf(head, "HTTP/1.1 %d", &status) == 1 ? status : -1;
}

/* The JSON body after the head in a raw response: asserts the error object and returns a
 * copy of its code (static buffer). */
static const char *error_code(const char *raw)
{
    static char code[64];
    const char *body = strstr(raw, "\r\n\r\n");
    ck_assert_msg(body != NULL, "no response head in: %s", raw);
    cJSON *j = cJSON_Parse(body + 4);
    ck_assert_msg(j != NULL, "body is not JSON: %s", raw);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
    cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    ck_assert_msg(cJSON_IsString(c) && cJSON_IsString(m) && m->valuestring[0],
                  "no error object in: %s", raw);
    snprintf(code, sizeof code, "%s", c->valuestring);
    cJSON_Delete(j);
    return code;
}

/* Opens a connection and sends text (no close). */
static int send_raw(int port, const char *text)
{
    int fd = httpc_connect(port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(httpc_send_all(fd, text, strlen(text)), 0);
    return fd;
}

/* Sends text on a new connection and asserts an answer with status, error code and
 * Connection: close, and the close itself, within 3 s. */
static void expect_refused_and_closed(int port, const char *text, int status, const char *code)
{
    int fd = send_raw(port, text);
    char raw[8192];
    double dt = read_to_close(fd, raw, sizeof raw, 3.0);
    ck_assert_msg(dt >= 0, "still open 3 s after the headers (got: %s) for:\n%s", raw, text);
    int got = -1;
    ck_assert_msg(sscanf(raw, "HTTP/1.1 %d", &got) == 1 && got == status,
                  "want %d, got: %s\nfor:\n%s", status, raw, text);
    if (code) {
        ck_assert_str_eq(error_code(raw), code);
        ck_assert_msg(strcasestr(raw, "\r\nConnection: close\r\n") != NULL,
                      "no Connection: close in: %s", raw);
    }
    close(fd);
}

static int get_status(int port, const char *path, const char *hdrs)
{
    httpc_resp r;
    int st = httpc_request(port, "GET", path, hdrs, NULL, 0, &r);
    httpc_free(&r);
    return st;
}

/* A gauge of GET /metrics, e.g. "traind_http_connections"; -1 when absent. */
static long metric(int port, const char *hdrs, const char *name)
{
    httpc_resp r;
    ck_assert_int_eq(httpc_request(port, "GET", "/metrics", hdrs, NULL, 0, &r), 200);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *at = strstr(r.body, key);
    long v = at ? strtol(at + strlen(key), NULL, 10) : -1;
    httpc_free(&r);
    return v;
}

/* Polls the gauge for up to timeout_s until it reads want; returns the last value read. */
static long wait_metric(int port, const char *hdrs, const char *name, long want, double timeout_s)
{
    double t0 = httpc_now();
    long v;
    while ((v = metric(port, hdrs, name)) != want && httpc_now() - t0 < timeout_s)
        usleep(100 * 1000);
    return v;
}

/* POSTs body to path, asserts want, returns the answer's "id" (malloc'd). */
static char *post_id(int port, const char *path, const char *body, int want)
{
    httpc_resp r;
    int st =
        httpc_request(port, "POST", path, "Content-Type: application/json", body, strlen(body), &r);
    ck_assert_msg(st == want, "POST %s: %d %s", path, st, r.body);
    cJSON *j = cJSON_Parse(r.body);
    cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    ck_assert(cJSON_IsString(id));
    char *out = strdup(id->valuestring);
    cJSON_Delete(j);
    httpc_free(&r);
    return out;
}

/* ---- item 4: refusals from the headers ------------------------------------------- */

/* With a token and max_connections 8: 24 connections that send no token, announce an
 * endless body (Content-Length UINT64_MAX, chunked, or just long) and then drip it, each
 * get 401 with the error object at once and are closed without the body being read; the
 * daemon keeps answering /healthz and authenticated requests, and holds none of them. */
START_TEST(unauthenticated_bodies_refused_at_once)
{
    httpc_daemon d;
    int port = start(&d, "max_connections = 8\nconnection_timeout_s = 30\nworkers = 1\n", 1);
#define CT "Content-Type: application/json\r\n"
    const char *variants[] = {
        "POST /v1/datasets HTTP/1.1\r\nHost: x\r\n" CT "Content-Length: " HUGE_LEN "\r\n\r\n{",
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\n" CT "Content-Length: " HUGE_LEN "\r\n\r\n{",
        "POST /v1/loss HTTP/1.1\r\nHost: x\r\n" CT "Content-Length: 100\r\n\r\n{",
        "POST /v1/datasets HTTP/1.1\r\nHost: x\r\n" CT "Transfer-Encoding: chunked\r\n\r\n1\r\n{",
        "POST /v1/nowhere HTTP/1.1\r\nHost: x\r\n" CT "Content-Length: " HUGE_LEN "\r\n\r\n{",
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0\r\n" CT
        "Content-Length: " HUGE_LEN "\r\n\r\n{",
    };
#undef CT
    enum { ROUNDS = 4, NV = sizeof variants / sizeof variants[0], ALL = ROUNDS * NV };
    int fds[ALL];
    for (int round = 0; round < ROUNDS; round++) {
        /* Six at once (under the limit of 8), all kept open on our side. */
        for (int v = 0; v < NV; v++)
            fds[round * NV + v] = send_raw(port, variants[v]);
        for (int v = 0; v < NV; v++) {
            int fd = fds[round * NV + v];
            char raw[4096];
            double dt = read_to_close(fd, raw, sizeof raw, 3.0);
            ck_assert_msg(dt >= 0, "variant %d not closed 3 s after its headers: %s", v, raw);
            ck_assert_msg(strncmp(raw, "HTTP/1.1 401 ", 13) == 0, "variant %d: %s", v, raw);
            ck_assert_str_eq(error_code(raw), "unauthorized");
            ck_assert_ptr_nonnull(strcasestr(raw, "\r\nWWW-Authenticate: Bearer"));
            ck_assert_ptr_nonnull(strcasestr(raw, "\r\nConnection: close\r\n"));
            send(fd, "1", 1, MSG_NOSIGNAL); /* the drip goes nowhere */
        }
        ck_assert_int_eq(get_status(port, "/healthz", NULL), 200);
        ck_assert_int_eq(get_status(port, "/v1/jobs", AUTH), 200);
        /* Nothing is held: the only connection open is the one asking. */
        ck_assert_int_eq(wait_metric(port, AUTH, "traind_http_connections", 1, 3.0), 1);
    }
    /* A GET without the token is closed after its 401 too. */
    expect_refused_and_closed(port, "GET /v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n", 401,
                              "unauthorized");
    ck_assert_int_eq(wait_metric(port, AUTH, "traind_http_connections", 1, 3.0), 1);
    for (int i = 0; i < ALL; i++)
        close(fds[i]);
    api_stop(&d);
}
END_TEST

/* Authenticated requests whose body is refused from the headers — a Content-Length over
 * max_body_mb (UINT64_MAX included), one that is not a number, a wrong Content-Type —
 * are answered at once and closed, none of the body read. */
START_TEST(refused_bodies_answered_at_once)
{
    httpc_daemon d;
    int port = start(&d, "max_body_mb = 1\nconnection_timeout_s = 30\nworkers = 1\n", 1);
#define POST(path) "POST " path " HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n"
#define CT "Content-Type: application/json\r\n"
    expect_refused_and_closed(port, POST("/v1/datasets") CT "Content-Length: " HUGE_LEN "\r\n\r\n{",
                              413, "payload_too_large");
    expect_refused_and_closed(port, POST("/v1/jobs") CT "Content-Length: " HUGE_LEN "\r\n\r\n{",
                              413, "payload_too_large");
    expect_refused_and_closed(port, POST("/v1/loss") CT "Content-Length: 1048577\r\n\r\n{", 413,
                              "payload_too_large");
    expect_refused_and_closed(port,
                              POST("/v1/loss") "Content-Type: text/plain\r\n"
                                               "Content-Length: " HUGE_LEN "\r\n\r\nx",
                              415, "unsupported_media_type");
    /* Lengths libmicrohttpd itself cannot parse: its own 400 / 413, and a close. */
    expect_refused_and_closed(port, POST("/v1/loss") CT "Content-Length: -5\r\n\r\n{", 400, NULL);
    expect_refused_and_closed(
        port, POST("/v1/loss") CT "Content-Length: 99999999999999999999999\r\n\r\n{", 413, NULL);
#undef CT
#undef POST
    ck_assert_int_eq(get_status(port, "/healthz", NULL), 200);
    ck_assert_int_eq(wait_metric(port, AUTH, "traind_http_connections", 1, 3.0), 1);
    api_stop(&d);
}
END_TEST

/* connection_timeout_s 1: an authenticated body dripped a byte every 0.2 s (never idle
 * for the timeout), by Content-Length or chunked, is dropped once the timeout has passed
 * at under 64 KiB/s, and not before; /healthz answers meanwhile. */
START_TEST(dripped_bodies_dropped_after_the_timeout)
{
    httpc_daemon d;
    int port = start(&d, "connection_timeout_s = 1\nworkers = 1\n", 1);
    const char *starts[] = {
        "POST /v1/loss HTTP/1.1\r\nHost: x\r\n" AUTH "\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{",
        "POST /v1/datasets HTTP/1.1\r\nHost: x\r\n" AUTH "\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n",
    };
    const char *drips[] = {" ", "1\r\n \r\n"};
    enum { N = 2 };
    int fds[N];
    double t0 = httpc_now(), dropped[N] = {-1, -1}, last = t0, gap = 0;
    for (int i = 0; i < N; i++)
        fds[i] = send_raw(port, starts[i]);
    while (httpc_now() - t0 < 6.0 && (dropped[0] < 0 || dropped[1] < 0)) {
        double now = httpc_now();
        gap = now - last > gap ? now - last : gap;
        last = now;
        for (int i = 0; i < N; i++) {
            if (dropped[i] >= 0) continue;
            if (httpc_send_all(fds[i], drips[i], strlen(drips[i])) != 0 ||
                httpc_wait_closed(fds[i], 0.1) >= 0)
                dropped[i] = httpc_now() - t0;
        }
        ck_assert_int_eq(get_status(port, "/healthz", NULL), 200);
        usleep(100 * 1000);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_msg(dropped[i] >= 0 && dropped[i] < 4.0, "drip %d not dropped in time (%.2f)", i,
                      dropped[i]);
        ck_assert_msg(dropped[i] >= 0.9, "drip %d dropped after %.2f s, before the timeout", i,
                      dropped[i]);
        close(fds[i]);
    }
    /* The rate rule dropped them, not the idle timeout: unless this machine was so loaded
     * that a drip came more than the timeout late, they were never idle that long. */
    if (gap < 0.8) {
        char *log = httpc_daemon_log(&d);
        ck_assert_msg(strstr(log, "sent its body too slowly") != NULL, "%s", log);
        free(log);
    }
    api_stop(&d);
}
END_TEST

/* ---- item 7: event streams and the reserved slots -------------------------------- */

/* A daemon with one worker busy on a long job and a second job queued behind it, whose
 * event stream stays open (it waits for the job to start). *queued gets its id. */
static int start_with_queued_job(httpc_daemon *d, const char *conf_text, char **queued)
{
    int port = start(d, conf_text, 0);
    char *ds =
        post_id(port, "/v1/datasets", "{\"X\":[[0,1],[1,0],[1,1],[0,0]],\"y\":[0,1,1,0]}", 201);
    char job[256];
    snprintf(job, sizeof job,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":10000000}}",
             ds);
    free(post_id(port, "/v1/jobs", job, 202));
    *queued = post_id(port, "/v1/jobs", job, 202);
    free(ds);
    return port;
}

/* Opens GET /v1/jobs/{id}/events and returns the fd once a 200 event-stream head came. */
static int open_stream(int port, const char *id)
{
    char req[256], head[2048];
    snprintf(req, sizeof req, "GET /v1/jobs/%s/events HTTP/1.1\r\nHost: x\r\n\r\n", id);
    int fd = send_raw(port, req);
    ck_assert_int_eq(read_head(fd, head, sizeof head, 5.0), 200);
    ck_assert_ptr_nonnull(strcasestr(head, "Content-Type: text/event-stream"));
    return fd;
}

/* max_event_streams 4: the 5th stream is a 503 with Retry-After and the error object; one
 * stream's client going away frees its slot for the next. */
START_TEST(event_streams_limited)
{
    httpc_daemon d;
    char *job;
    /* The 2 s timeout makes idle streams send keepalives every second, which is how a
     * client that went away is noticed. */
    int port = start_with_queued_job(&d,
                                     "max_connections = 16\nmax_event_streams = 4\n"
                                     "connection_timeout_s = 2\nworkers = 1\n",
                                     &job);
    int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = open_stream(port, job);
    ck_assert_int_eq(metric(port, NULL, "traind_http_event_streams"), 4);

    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", job);
    httpc_resp r;
    ck_assert_int_eq(httpc_request(port, "GET", path, NULL, NULL, 0, &r), 503);
    char v[64];
    ck_assert_ptr_nonnull(httpc_header(&r, "Retry-After", v, sizeof v));
    ck_assert_int_gt(atoi(v), 0);
    ck_assert_ptr_nonnull(httpc_header(&r, "Connection", v, sizeof v)); /* it holds no slot */
    ck_assert_str_eq(v, "close");
    cJSON *j = cJSON_Parse(r.body);
    cJSON *code =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "error"), "code");
    ck_assert_msg(cJSON_IsString(code), "%s", r.body);
    ck_assert_str_eq(code->valuestring, "too_many_streams");
    ck_assert_ptr_nonnull(strstr(r.body, "max_event_streams"));
    cJSON_Delete(j);
    httpc_free(&r);
    /* Ordinary requests are not affected. */
    ck_assert_int_eq(get_status(port, "/v1/jobs", NULL), 200);

    /* A client gone is noticed when a keepalive (every second here) cannot be sent: the
     * first may still go out, the next fails. */
    close(fds[0]);
    ck_assert_int_eq(wait_metric(port, NULL, "traind_http_event_streams", 3, 10.0), 3);
    fds[0] = open_stream(port, job);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    free(job);
    api_stop(&d);
}
END_TEST

/* max_connections 16 held by 4 event streams and 12 idle connections: /healthz and
 * /readyz still answer 200 (in the reserved slots), anything else gets 503 server_busy
 * with Retry-After; idle connections that land in the reserve are closed within 2 s, so
 * the probes get through again. */
START_TEST(health_probes_always_answered)
{
    httpc_daemon d;
    char *job;
    int port = start_with_queued_job(&d,
                                     "max_connections = 16\nmax_event_streams = 4\n"
                                     "connection_timeout_s = 30\nworkers = 1\n",
                                     &job);
    enum { STREAMS = 4, IDLE = 12, RESERVE = 8 };
    int streams[STREAMS], idle[IDLE], extra[RESERVE];
    for (int i = 0; i < STREAMS; i++)
        streams[i] = open_stream(port, job);
    for (int i = 0; i < IDLE; i++)
        ck_assert_int_ge(idle[i] = httpc_connect(port), 0);

    /* Once the daemon has accepted them all, other requests are turned away... */
    httpc_resp r;
    int st = 0;
    for (int i = 0; i < 50 && st != 503; i++) {
        st = httpc_request(port, "GET", "/v1/jobs", NULL, NULL, 0, &r);
        if (st == 503) {
            char v[64];
            ck_assert_ptr_nonnull(httpc_header(&r, "Retry-After", v, sizeof v));
            ck_assert_ptr_nonnull(strstr(r.body, "\"server_busy\""));
        }
        httpc_free(&r);
        if (st != 503) usleep(100 * 1000);
    }
    ck_assert_int_eq(st, 503);
    /* ... while the probes are answered, again and again. */
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(get_status(port, "/healthz", NULL), 200);
        ck_assert_int_eq(get_status(port, "/readyz", NULL), 200);
    }
    /* Idle connections that fill the reserve too are closed within ~2 s. */
    for (int i = 0; i < RESERVE; i++)
        ck_assert_int_ge(extra[i] = httpc_connect(port), 0);
    for (int i = 0; i < RESERVE; i++) {
        double w = httpc_wait_closed(extra[i], 6.0);
        ck_assert_msg(w >= 0, "idle connection %d in the reserve still open after 6 s", i);
        close(extra[i]);
    }
    /* Their slots come free as the daemon finishes closing them (just after we see it). */
    st = -1;
    for (double t0 = httpc_now(); st != 200 && httpc_now() - t0 < 3.0; usleep(50 * 1000))
        st = get_status(port, "/healthz", NULL);
    ck_assert_int_eq(st, 200);
    /* The connections in the ordinary slots were left alone (their timeout is 30 s). */
    ck_assert_int_eq(httpc_wait_closed(idle[0], 0.2), -1);
    ck_assert_int_eq(httpc_wait_closed(streams[0], 0.2), -1);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]);
    for (int i = 0; i < STREAMS; i++)
        close(streams[i]);
    free(job);
    api_stop(&d);
}
END_TEST

Suite *suite_edge(void)
{
    Suite *s = suite_create("edge");
    TCase *tc = tcase_create("edge");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, unauthenticated_bodies_refused_at_once);
    tcase_add_test(tc, refused_bodies_answered_at_once);
    tcase_add_test(tc, dripped_bodies_dropped_after_the_timeout);
    tcase_add_test(tc, event_streams_limited);
    tcase_add_test(tc, health_probes_always_answered);
    suite_add_tcase(s, tc);
    return s;
}
