/* api.h — the one HTTP helper of the test suites, in two layers.
 *
 * httpc_*: a tiny blocking HTTP/1.1 client and a daemon launcher.
 *
 *   httpc_resp r;
 *   int status = httpc_request(port, "POST", "/v1/loss", "Content-Type: application/json",
 *                              body, strlen(body), &r);
 *   ... r.body, httpc_header(&r, "Location") ...
 *   httpc_free(&r);
 *
 * Every request uses its own connection with "Connection: close" and reads the response
 * to the end (a finite Server-Sent Events stream included); chunked bodies are decoded.
 * Nothing in this layer calls ck_assert (httpc_metric aside): failures are return values,
 * so it can be used from any thread.
 *
 * api_*: what the suites against a live daemon share, built on it. api_req*, api_done,
 * api_str and api_is assert nothing (any thread may use them); the others assert (the test
 * fails with the status and the body), so they belong on the test's own thread:
 *
 *   httpc_daemon d = api_start(NULL, "workers = 1\n", NULL, NULL);
 *   char *ds = api_post_id(d.port, "/v1/datasets", body, 201);
 *   api_call c = api_req(d.port, "GET", "/v1/jobs", NULL);
 *   ... c.status, c.json, api_str(c.json, "state") ...
 *   api_done(&c);
 *   api_stop(&d); */
#ifndef TRAIND_TESTS_API_H
#define TRAIND_TESTS_API_H

#include <cJSON.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct httpc_resp {
    int status;    /* -1 when there was no response */
    char *headers; /* the header lines after the status line, NUL-terminated */
    char *body;    /* the body, chunked encoding removed, NUL-terminated */
    size_t body_len;
    double elapsed_s; /* from connect to the end of the response */
} httpc_resp;

/* Sends one request to 127.0.0.1:port and reads the whole response. headers: extra header
 * lines separated by "\n" or "\r\n" (NULL for none). body: sent with a Content-Length
 * when non-NULL. If the server answers before the body is fully sent (e.g. 413), sending
 * stops and the answer is read. Returns the status, or -1 (out->status -1) on a
 * connection error or a timeout (30 s). out must be released with httpc_free. */
int httpc_request(int port, const char *method, const char *path, const char *headers,
                  const char *body, size_t len, httpc_resp *out);

/* Value of a response header (case-insensitive name) copied into buf, or NULL. */
const char *httpc_header(const httpc_resp *r, const char *name, char *buf, size_t n);

void httpc_free(httpc_resp *r);

/* HTTPS. httpc_tls_on makes a self-signed certificate for 127.0.0.1 (openssl, EC P-256,
 * in a new temporary directory) and switches this process to HTTPS: from then on
 * httpc_request speaks TLS (GnuTLS, verifying the daemon's certificate against that one
 * and the name 127.0.0.1), and httpc_daemon_start gives every daemon the pair through
 * tls_cert_file / tls_key_file (in a config file of its own, holding also the lines of a
 * --config file among args). Returns 0, or -1 when the certificate could not be made.
 * httpc_tls_off goes back to plain HTTP and removes the directory. The raw-socket helpers
 * below stay plain TCP. */
int httpc_tls_on(void);
void httpc_tls_off(void);
/* Every daemon started from now on gets `store = uri` (a shared PostgreSQL store, merged
 * into its config like the TLS pair); NULL or "" goes back to SQLite. */
void httpc_store_set(const char *uri);
/* The certificate and key files while TLS is on (NULL when off). */
const char *httpc_tls_cert(void);
const char *httpc_tls_key(void);
/* Makes a self-signed certificate for 127.0.0.1 in dir (dir/cert.pem, dir/key.pem). */
int httpc_make_cert(const char *dir);

/* A raw blocking TCP connection to 127.0.0.1:port, or -1. */
int httpc_connect(int port);
/* Writes all of s (no SIGPIPE); 0 on success, -1 on error. */
int httpc_send_all(int fd, const void *s, size_t n);
/* Waits up to timeout_s for the peer to close fd (EOF or reset), discarding what it
 * sends. Returns the seconds waited, or -1 if it was still open at the timeout. */
double httpc_wait_closed(int fd, double timeout_s);
/* Monotonic seconds. */
double httpc_now(void);

/* A "Name:   123 kB" line of /proc/<pid>/status (VmHWM, VmRSS, RssAnon, ...) in KiB; -1
 * when the process or the line is not there. */
long httpc_proc_kb(pid_t pid, const char *field);
/* The value of the /metrics line "name value" (the request and the line must exist). */
double httpc_metric(int port, const char *name);

/* A traind process under test: $TD_BIN (default build/traind) started with
 * "--listen 127.0.0.1:0 --state-dir DIR/state" and then args, stderr+stdout to DIR/traind.log,
 * where DIR is a fresh temporary directory. */
typedef struct httpc_daemon {
    pid_t pid; /* -1 when not running */
    int port;
    int exit_code; /* set when it exited during httpc_daemon_start, else -1 */
    char dir[256];
    char log[300];
} httpc_daemon;

/* Starts the daemon and waits (up to 20 s) for its "listening on ADDR:PORT" line.
 * args: NULL-terminated extra arguments (NULL for none); env: NULL-terminated "NAME=value"
 * strings added to its environment (NULL for none). If dir_in is non-NULL that directory
 * is reused (restart over the same state); otherwise a new one is made. Returns the port,
 * or -1 if the daemon exited (d->exit_code) or never listened; httpc_daemon_stop then
 * still returns the exit code. */
int httpc_daemon_start(httpc_daemon *d, const char *dir_in, const char *const *args,
                       const char *const *env);

/* Sends sig (e.g. SIGTERM; 0 = only wait) and waits up to timeout_s for the exit. Returns
 * the exit code, 128+signal if it died of a signal, or -1 on timeout (it is then killed
 * with SIGKILL). */
int httpc_daemon_stop(httpc_daemon *d, int sig, double timeout_s);

/* The daemon's log so far (malloc'd, NUL-terminated; "" if none). */
char *httpc_daemon_log(const httpc_daemon *d);

/* Removes d->dir recursively. */
void httpc_daemon_cleanup(httpc_daemon *d);

/* ---- api_*: suite helpers ----------------------------------------------------------- */

#define API_JSON "Content-Type: application/json"

/* One answer: the status (-1: none), the body parsed as JSON (NULL when it is not) and
 * the raw response. Release with api_done. */
typedef struct api_call {
    int status;
    cJSON *json;
    httpc_resp r;
} api_call;

/* From now on (in this process) every api_* request carries "Authorization: Bearer token"
 * unless its headers have an Authorization line; NULL or "" goes back to none. The
 * httpc_* layer is not affected. */
void api_auth_set(const char *token);

/* method path with body (NULL: none), sent as JSON. */
api_call api_req(int port, const char *method, const char *path, const char *body);
/* The same with extra header lines (NULL: the JSON Content-Type when there is a body). */
api_call api_reqh(int port, const char *method, const char *path, const char *hdrs,
                  const char *body);
/* The same with a body of len bytes (it may hold NULs). */
api_call api_req_n(int port, const char *method, const char *path, const char *hdrs,
                   const char *body, size_t len);
void api_done(api_call *c);

/* o[k] as a string (NULL when absent or not a string), as a number (it must be one), or
 * as an item that must be there. */
const char *api_str(const cJSON *o, const char *k);
double api_num(const cJSON *o, const char *k);
const cJSON *api_item(const cJSON *o, const char *k);
/* 1 when o[k] is the string want. */
int api_is(const cJSON *o, const char *k, const char *want);

/* Asserts the SPEC error object: the status, {"error":{"code","message","field"?}} with a
 * non-empty code and message. code and field are checked when non-NULL; field "" asserts
 * that there is none. */
void api_expect_error(const api_call *c, int status, const char *code, const char *field);

/* method path with body (JSON, NULL: none); asserts the status want and returns the parsed
 * answer (the caller deletes it). */
cJSON *api_json(int port, const char *method, const char *path, const char *body, int want);
/* The same with extra header lines (NULL: the JSON Content-Type when there is a body). */
cJSON *api_jsonh(int port, const char *method, const char *path, const char *hdrs, const char *body,
                 int want);

/* POSTs body (JSON) to path, asserts the status want and returns the answer's "id"
 * (malloc'd); a Location header, required with 201 and 202, must name it. */
char *api_post_id(int port, const char *path, const char *body, int want);
/* The same with extra header lines (NULL: the JSON Content-Type). */
char *api_post_idh(int port, const char *path, const char *hdrs, const char *body, int want);

/* POSTs {"model": model, "dataset": ds, "hyperparameters": hp} (hp: JSON text, NULL for
 * {}) to /v1/jobs, asserts 202 and returns the job's id (malloc'd). */
char *api_post_job(int port, const char *model, const char *ds, const char *hp);

/* GET fmt (printf-formatted with the one string id), asserts 200 and returns the answer
 * (api_done), the parsed body (the caller deletes it) or the raw body (malloc'd). */
api_call api_get(int port, const char *fmt, const char *id);
cJSON *api_get_json(int port, const char *fmt, const char *id);
char *api_get_raw(int port, const char *fmt, const char *id);

/* Polls GET /v1/jobs/{id} until the state is terminal (succeeded, failed, cancelled) and
 * returns that job object (the caller deletes it); the test fails after timeout_s. */
cJSON *api_wait_job(int port, const char *id, double timeout_s);
/* Waits as api_wait_job and asserts the job ended in state (its body in the message). */
void api_expect_state(int port, const char *id, const char *state, double timeout_s);
/* Polls until the job's state is want (any state, e.g. "running"); fails when it ends in
 * another state or after timeout_s. */
void api_wait_state(int port, const char *id, const char *want, double timeout_s);
/* Polls GET /v1/sweeps/{id} until the sweep is terminal and returns it (the caller deletes
 * it); the test fails after timeout_s. */
cJSON *api_wait_sweep(int port, const char *id, double timeout_s);
/* The job's progress.epoch now. */
int api_job_epoch(int port, const char *id);

/* GET /healthz answers 200 {"status":"ok"} and GET /readyz 200. */
void api_expect_healthy(int port);

/* A dataset body {"X","y"} of n rows and d features from a fixed LCG (seed); labels by a
 * linear rule over K classes, rows 0..K-1 labelled 0..K-1 so that every class is present.
 * malloc'd. */
char *api_dataset_body(int n, int d, int K, unsigned seed);

/* Checked fixtures that run a suite over HTTPS (httpc_tls_on: a self-signed certificate
 * made with openssl, every daemon given the pair, every request through GnuTLS verifying
 * it) or on a fresh PostgreSQL database per test (tests/pgtest.h; every daemon of the test
 * on it). */
void api_https_on(void);
void api_https_off(void);
void api_pg_on(void);
void api_pg_off(void);

/* Starts $TD_BIN as httpc_daemon_start does, with conf (NULL: none) as the text of a
 * config file DIR/API_CONF (rewritten on a restart over dir) and then args;
 * returns the port, or -1 when it did not listen (as httpc_daemon_start). */
#define API_CONF "api.conf"
int api_start_any(httpc_daemon *d, const char *dir, const char *conf, const char *const *args,
                  const char *const *env);
/* The same, failing the test (with the daemon's log) when it did not listen. */
httpc_daemon api_start(const char *dir, const char *conf, const char *const *args,
                       const char *const *env);
/* SIGTERM and asserts the exit code 0 (the log in the message); api_term keeps the
 * directory (for a restart over it), api_stop removes it. */
void api_term(httpc_daemon *d);
void api_stop(httpc_daemon *d);

#endif
