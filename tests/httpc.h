/* httpc.h — a tiny blocking HTTP/1.1 client and a daemon launcher for the test suites.
 *
 *   httpc_resp r;
 *   int status = httpc_request(port, "POST", "/v1/loss", "Content-Type: application/json",
 *                              body, strlen(body), &r);
 *   ... r.body, httpc_header(&r, "Location") ...
 *   httpc_free(&r);
 *
 * Every request uses its own connection with "Connection: close" and reads the response
 * to the end (a finite Server-Sent Events stream included); chunked bodies are decoded.
 * Nothing here calls ck_assert: failures are return values, so a helper can be used from
 * any thread. */
#ifndef TRAIND_HTTPC_H
#define TRAIND_HTTPC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct httpc_resp {
    int status;         /* -1 when there was no response */
    char *headers;      /* the header lines after the status line, NUL-terminated */
    char *body;         /* the body, chunked encoding removed, NUL-terminated */
    size_t body_len;
    double elapsed_s;   /* from connect to the end of the response */
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
    pid_t pid;          /* -1 when not running */
    int port;
    int exit_code;      /* set when it exited during httpc_daemon_start, else -1 */
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

#endif
