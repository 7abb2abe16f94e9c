/* api.c — the test suites' HTTP client, daemon launcher and request helpers (see api.h). */
#include "api.h"
#include "pgtest.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 30000

/* HTTPS mode (httpc_tls_on): the directory holding cert.pem and key.pem, "" when off. */
static char g_tls_dir[256];
static char g_tls_cert[300], g_tls_key[300];
static char g_store[512]; /* httpc_store_set: every daemon's `store`, "" = none */

void httpc_store_set(const char *uri) { snprintf(g_store, sizeof g_store, "%s", uri ? uri : ""); }

int httpc_make_cert(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout '%s/key.pem' -out '%s/cert.pem' -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

int httpc_tls_on(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_tls_dir, sizeof g_tls_dir, "%s/traind-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_tls_dir) || httpc_make_cert(g_tls_dir) != 0) {
        g_tls_dir[0] = '\0';
        return -1;
    }
    snprintf(g_tls_cert, sizeof g_tls_cert, "%s/cert.pem", g_tls_dir);
    snprintf(g_tls_key, sizeof g_tls_key, "%s/key.pem", g_tls_dir);
    return 0;
}

void httpc_tls_off(void)
{
    if (!g_tls_dir[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tls_dir);
    if (system(cmd) != 0) {
    }
    g_tls_dir[0] = '\0';
}

const char *httpc_tls_cert(void) { return g_tls_dir[0] ? g_tls_cert : NULL; }
const char *httpc_tls_key(void) { return g_tls_dir[0] ? g_tls_key : NULL; }

/* A connection: plain, or TLS over fd when sess is set. */
typedef struct conn_t {
    int fd;
    gnutls_session_t sess;
    gnutls_certificate_credentials_t cred;
} conn_t;

static void conn_close(conn_t *c)
{
    if (c->sess) gnutls_deinit(c->sess);
    if (c->cred) gnutls_certificate_free_credentials(c->cred);
    if (c->fd >= 0) close(c->fd);
    c->sess = NULL, c->cred = NULL, c->fd = -1;
}

/* Connects (and in HTTPS mode shakes hands, verifying the certificate); 0 or -1. */
static int conn_open(conn_t *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = httpc_connect(port);
    if (c->fd < 0) return -1;
    if (!g_tls_dir[0]) return 0;
    struct timeval tv = {IO_TIMEOUT_MS / 1000, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (gnutls_certificate_allocate_credentials(&c->cred) < 0 ||
        gnutls_certificate_set_x509_trust_file(c->cred, g_tls_cert, GNUTLS_X509_FMT_PEM) <= 0 ||
        gnutls_init(&c->sess, GNUTLS_CLIENT | GNUTLS_NO_SIGNAL) < 0 ||
        gnutls_set_default_priority(c->sess) < 0 ||
        gnutls_credentials_set(c->sess, GNUTLS_CRD_CERTIFICATE, c->cred) < 0)
        goto fail;
    gnutls_session_set_verify_cert(c->sess, "127.0.0.1", 0);
    gnutls_transport_set_int(c->sess, c->fd);
    int rc;
    do
        rc = gnutls_handshake(c->sess);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) goto fail;
    return 0;
fail:
    conn_close(c);
    return -1;
}

/* Sends all of p; 0 or -1. */
static int conn_send(conn_t *c, const char *p, size_t n)
{
    if (!c->sess) return httpc_send_all(c->fd, p, n);
    while (n > 0) {
        ssize_t w = gnutls_record_send(c->sess, p, n);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads some bytes: > 0, 0 at the end (a close, with or without close_notify), -1 on
 * an error or the timeout. */
static ssize_t conn_recv(conn_t *c, char *buf, size_t n)
{
    if (!c->sess) {
        struct pollfd p = {c->fd, POLLIN, 0};
        int r = poll(&p, 1, IO_TIMEOUT_MS);
        if (r < 0 && errno == EINTR) return conn_recv(c, buf, n);
        if (r <= 0) return -1;
        ssize_t k = recv(c->fd, buf, n, 0);
        if (k < 0 && errno == EINTR) return conn_recv(c, buf, n);
        return k < 0 ? 0 : k; /* a reset ends the response like a close */
    }
    for (;;) {
        ssize_t k = gnutls_record_recv(c->sess, buf, n);
        if (k == GNUTLS_E_INTERRUPTED) continue;
        if (k == GNUTLS_E_AGAIN) return -1; /* SO_RCVTIMEO */
        if (k == GNUTLS_E_PREMATURE_TERMINATION) return 0;
        return k < 0 ? 0 : k;
    }
}

double httpc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int httpc_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int httpc_send_all(int fd, const void *s, size_t n)
{
    const char *p = s;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

double httpc_wait_closed(int fd, double timeout_s)
{
    double t0 = httpc_now();
    char buf[4096];
    for (;;) {
        double left = timeout_s - (httpc_now() - t0);
        if (left <= 0) return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue; /* re-check the deadline */
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return httpc_now() - t0;
    }
}

/* A growing buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static int buf_add(buf_t *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_addf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int buf_addf(buf_t *b, const char *fmt, ...)
{
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) return -1;
    return buf_add(b, tmp, (size_t)n);
}

/* Decodes a chunked body in place; returns the decoded length (what could be decoded). */
static size_t dechunk(char *s, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(s + in, &end, 16);
        char *crlf = strstr(s + in, "\r\n");
        if (!crlf || end == s + in) break;
        in = (size_t)(crlf - s) + 2;
        if (sz == 0) break;
        if (in + sz > n) sz = n - in;
        memmove(s + out, s + in, sz);
        out += sz;
        in += sz + 2;
    }
    s[out] = '\0';
    return out;
}

const char *httpc_header(const httpc_resp *r, const char *name, char *buf, size_t n)
{
    if (!r->headers) return NULL;
    size_t nl = strlen(name);
    for (const char *line = r->headers; *line;) {
        const char *eol = strstr(line, "\r\n");
        size_t ll = eol ? (size_t)(eol - line) : strlen(line);
        if (ll > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = (size_t)(line + ll - v);
            if (vl >= n) vl = n - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        if (!eol) break;
        line = eol + 2;
    }
    return NULL;
}

void httpc_free(httpc_resp *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
    r->status = -1;
}

int httpc_request(int port, const char *method, const char *path, const char *headers,
                  const char *body, size_t len, httpc_resp *out)
{
    memset(out, 0, sizeof *out);
    out->status = -1;
    double t0 = httpc_now();
    buf_t req = {0}, in = {0};
    conn_t cn;
    if (conn_open(&cn, port) != 0) return -1;
    int fd = cn.fd;

    buf_addf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n", method, path,
             port);
    for (const char *h = headers; h && *h;) {
        size_t l = strcspn(h, "\r\n");
        if (l) {
            buf_add(&req, h, l);
            buf_add(&req, "\r\n", 2);
        }
        h += l;
        while (*h == '\r' || *h == '\n')
            h++;
    }
    if (body) buf_addf(&req, "Content-Length: %zu\r\n", len);
    buf_add(&req, "\r\n", 2);
    if (body && len) buf_add(&req, body, len);
    if (!req.p) goto done;

    /* Send, but stop as soon as the server has something to say (over TLS: send it all,
     * a failed send because the server answered early and closed is fine). */
    size_t sent = cn.sess ? req.len : 0;
    if (cn.sess) conn_send(&cn, req.p, req.len);
    while (sent < req.len) {
        struct pollfd p = {fd, POLLIN | POLLOUT, 0};
        int r = poll(&p, 1, IO_TIMEOUT_MS);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) goto done;
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) break;
        ssize_t w = send(fd, req.p + sent, req.len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w < 0) break; /* reset: maybe a response is already waiting */
        sent += (size_t)w;
    }
    for (;;) {
        char tmp[16384];
        ssize_t n = conn_recv(&cn, tmp, sizeof tmp);
        if (n < 0) goto done;
        if (n == 0) break;
        if (buf_add(&in, tmp, (size_t)n)) goto done;
    }
    if (!in.p) goto done;
    char *hend = strstr(in.p, "\r\n\r\n");
    if (!hend || strncmp(in.p, "HTTP/1.", 7) != 0) goto done;
    out->status = atoi(in.p + 9);
    char *first_eol = strstr(in.p, "\r\n");
    size_t hl = (size_t)(hend - first_eol); /* the header lines, each ending in CRLF */
    out->headers = malloc(hl + 1);
    if (!out->headers) goto fail;
    memcpy(out->headers, first_eol + 2, hl);
    out->headers[hl] = '\0';
    char *b = hend + 4;
    size_t bl = in.len - (size_t)(b - in.p);
    out->body = malloc(bl + 1);
    if (!out->body) goto fail;
    memcpy(out->body, b, bl);
    out->body[bl] = '\0';
    char v[64];
    if (httpc_header(out, "Transfer-Encoding", v, sizeof v) && strcasecmp(v, "chunked") == 0)
        bl = dechunk(out->body, bl);
    else if (httpc_header(out, "Content-Length", v, sizeof v) && strtoul(v, NULL, 10) < bl)
        bl = strtoul(v, NULL, 10), out->body[bl] = '\0';
    out->body_len = bl;
    goto done;
fail:
    httpc_free(out);
done:
    out->elapsed_s = httpc_now() - t0;
    conn_close(&cn);
    free(req.p);
    free(in.p);
    return out->status;
}

/* ------------------------------------------------------------------ daemon ---- */

int httpc_daemon_start(httpc_daemon *d, const char *dir_in, const char *const *args,
                       const char *const *env)
{
    memset(d, 0, sizeof *d);
    d->pid = -1;
    d->port = -1;
    d->exit_code = -1;
    if (dir_in) {
        snprintf(d->dir, sizeof d->dir, "%s", dir_in);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(d->dir, sizeof d->dir, "%s/traind-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(d->dir)) return -1;
    }
    snprintf(d->log, sizeof d->log, "%s/traind.log", d->dir);
    char state[300];
    snprintf(state, sizeof state, "%s/state", d->dir);
    const char *bin = getenv("TD_BIN");
    if (!bin || !*bin) bin = "build/traind";

    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--state-dir";
    argv[n++] = state;
    char tls_conf[300];
    const char *user_conf = NULL;
    for (int i = 0; args && args[i] && n < 61; i++) {
        if ((g_tls_dir[0] || g_store[0]) && strcmp(args[i], "--config") == 0 && args[i + 1]) {
            user_conf = args[++i]; /* merged into tls_conf below */
            continue;
        }
        argv[n++] = args[i];
    }
    if (g_tls_dir[0] || g_store[0]) { /* HTTPS, a shared store: a config of its own with the
                                        * pair or the store (and user_conf's lines) */
        snprintf(tls_conf, sizeof tls_conf, "%s/tls.conf", d->dir);
        FILE *f = fopen(tls_conf, "w");
        if (!f) return -1;
        FILE *u = user_conf ? fopen(user_conf, "r") : NULL;
        char line[4096];
        while (u && fgets(line, sizeof line, u))
            fputs(line, f);
        if (u) fclose(u);
        if (g_tls_dir[0])
            fprintf(f, "\ntls_cert_file = %s\ntls_key_file = %s\n", g_tls_cert, g_tls_key);
        if (g_store[0]) fprintf(f, "\nstore = %s\n", g_store);
        fclose(f);
        argv[n++] = "--config";
        argv[n++] = tls_conf;
    }
    argv[n] = NULL;

    off_t log_start = 0; /* a restart appends to the same log: look past the old lines */
    struct stat st;
    if (stat(d->log, &st) == 0) log_start = st.st_size;

    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int lfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (lfd >= 0) {
            dup2(lfd, 1);
            dup2(lfd, 2);
            close(lfd);
        }
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(bin, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    d->pid = pid;

    double t0 = httpc_now();
    while (httpc_now() - t0 < 20.0) {
        FILE *f = fopen(d->log, "r");
        if (f) {
            char line[1024];
            fseeko(f, log_start, SEEK_SET);
            while (fgets(line, sizeof line, f)) {
                char *p = strstr(line, "listening on ");
                char *colon = p ? strrchr(p, ':') : NULL;
                if (colon) {
                    d->port = atoi(colon + 1);
                    fclose(f);
                    return d->port;
                }
            }
            fclose(f);
        }
        int stv;
        if (waitpid(pid, &stv, WNOHANG) == pid) { /* exited: keep its status for stop */
            d->pid = -1;
            d->exit_code = WIFEXITED(stv) ? WEXITSTATUS(stv) : 128 + WTERMSIG(stv);
            return -1;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return -1;
}

int httpc_daemon_stop(httpc_daemon *d, int sig, double timeout_s)
{
    if (d->pid <= 0) return d->exit_code; /* exited already (or never started) */
    if (sig) kill(d->pid, sig);
    double t0 = httpc_now();
    int stv, code = -1;
    for (;;) {
        pid_t r = waitpid(d->pid, &stv, WNOHANG);
        if (r == d->pid) {
            code = WIFEXITED(stv) ? WEXITSTATUS(stv) : 128 + WTERMSIG(stv);
            break;
        }
        if (httpc_now() - t0 > timeout_s) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &stv, 0);
            code = -1;
            break;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    d->pid = -1;
    if (code != 0) { /* a sanitizer's report (make asan) is in the log: show it */
        char *log = httpc_daemon_log(d);
        const char *rep = strstr(log, "ERROR: LeakSanitizer");
        if (!rep) rep = strstr(log, "ERROR: AddressSanitizer");
        if (!rep) rep = strstr(log, "runtime error:");
        if (rep)
            fprintf(stderr, "httpc: the daemon in %s exited with %d; its log says:\n%.6000s\n",
                    d->dir, code, rep);
        free(log);
    }
    return code;
}

char *httpc_daemon_log(const httpc_daemon *d)
{
    buf_t b = {0};
    FILE *f = fopen(d->log, "r");
    if (f) {
        char tmp[4096];
        size_t n;
        while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
            buf_add(&b, tmp, n);
        fclose(f);
    }
    return b.p ? b.p : strdup("");
}

void httpc_daemon_cleanup(httpc_daemon *d)
{
    if (!d->dir[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd) != 0) {
    }
    d->dir[0] = '\0';
}

long httpc_proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = strlen(field);
    long kb = -1;
    while (f && kb < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') kb = strtol(line + n + 1, NULL, 10);
    if (f) fclose(f);
    return kb;
}

double httpc_metric(int port, const char *name)
{
    httpc_resp r;
    ck_assert_int_eq(httpc_request(port, "GET", "/metrics", NULL, NULL, 0, &r), 200);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(r.body, key);
    ck_assert_msg(p != NULL, "no %s in /metrics", name);
    double v = strtod(p + strlen(key), NULL);
    httpc_free(&r);
    return v;
}

/* ---- api_*: suite helpers --------------------------------------------------------- */

static char g_auth[300]; /* api_auth_set: an "Authorization: Bearer ..." line, "" = none */

void api_auth_set(const char *token)
{
    if (token && *token)
        snprintf(g_auth, sizeof g_auth, "Authorization: Bearer %s", token);
    else
        g_auth[0] = '\0';
}

api_call api_req_n(int port, const char *method, const char *path, const char *hdrs,
                   const char *body, size_t len)
{
    api_call c = {0};
    const char *h = hdrs ? hdrs : (body ? API_JSON : NULL);
    char both[1024];
    if (g_auth[0] && !(h && strstr(h, "Authorization:"))) {
        snprintf(both, sizeof both, "%s%s%s", g_auth, h ? "\n" : "", h ? h : "");
        h = both;
    }
    c.status = httpc_request(port, method, path, h, body, len, &c.r);
    c.json = c.r.body ? cJSON_Parse(c.r.body) : NULL;
    return c;
}

api_call api_reqh(int port, const char *method, const char *path, const char *hdrs,
                  const char *body)
{
    return api_req_n(port, method, path, hdrs, body, body ? strlen(body) : 0);
}

api_call api_req(int port, const char *method, const char *path, const char *body)
{
    return api_reqh(port, method, path, NULL, body);
}

void api_done(api_call *c)
{
    cJSON_Delete(c->json);
    c->json = NULL;
    httpc_free(&c->r);
}

const char *api_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

double api_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "\"%s\" is not a number", k);
    return v->valuedouble;
}

int api_is(const cJSON *o, const char *k, const char *want)
{
    const char *v = api_str(o, k);
    return v && strcmp(v, want) == 0;
}

const cJSON *api_item(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "no \"%s\" in the answer", k);
    return v;
}

void api_expect_error(const api_call *c, int status, const char *code, const char *field)
{
    const char *body = c->r.body ? c->r.body : "";
    ck_assert_msg(c->status == status, "status %d, want %d: %s", c->status, status, body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c->json, "error");
    ck_assert_msg(cJSON_IsObject(e), "no error object in %s", body);
    ck_assert_msg(api_str(e, "message") && *api_str(e, "message"), "no message in %s", body);
    ck_assert_msg(api_str(e, "code") && *api_str(e, "code"), "no code in %s", body);
    if (code) ck_assert_str_eq(api_str(e, "code"), code);
    if (field && !*field)
        ck_assert_msg(api_str(e, "field") == NULL, "unexpected field in %s", body);
    else if (field)
        ck_assert_msg(api_str(e, "field") && strcmp(api_str(e, "field"), field) == 0,
                      "field should be \"%s\": %s", field, body);
}

char *api_post_idh(int port, const char *path, const char *hdrs, const char *body, int want)
{
    api_call c = api_reqh(port, "POST", path, hdrs, body);
    ck_assert_msg(c.status == want, "POST %s: %d, want %d: %s", path, c.status, want,
                  c.r.body ? c.r.body : "");
    const char *id = api_str(c.json, "id");
    ck_assert_msg(id != NULL, "POST %s: no id in %s", path, c.r.body);
    char loc[256], *out = strdup(id);
    ck_assert_ptr_nonnull(out);
    if (httpc_header(&c.r, "Location", loc, sizeof loc))
        ck_assert_msg(strstr(loc, out) != NULL, "Location %s does not name %s", loc, out);
    else
        ck_assert_msg(want != 201 && want != 202, "POST %s: %d without a Location", path, want);
    api_done(&c);
    return out;
}

char *api_post_id(int port, const char *path, const char *body, int want)
{
    return api_post_idh(port, path, NULL, body, want);
}

cJSON *api_json(int port, const char *method, const char *path, const char *body, int want)
{
    return api_jsonh(port, method, path, NULL, body, want);
}

cJSON *api_jsonh(int port, const char *method, const char *path, const char *hdrs, const char *body,
                 int want)
{
    api_call c = api_reqh(port, method, path, hdrs, body);
    ck_assert_msg(c.status == want, "%s %s: %d, want %d: %s", method, path, c.status, want,
                  c.r.body ? c.r.body : "");
    ck_assert_msg(c.json != NULL, "%s %s: not JSON: %s", method, path, c.r.body);
    cJSON *j = c.json;
    c.json = NULL;
    api_done(&c);
    return j;
}

char *api_post_job(int port, const char *model, const char *ds, const char *hp)
{
    size_t n = strlen(model) + strlen(ds) + (hp ? strlen(hp) : 2) + 64;
    char *body = malloc(n);
    ck_assert_ptr_nonnull(body);
    snprintf(body, n, "{\"model\":\"%s\",\"dataset\":\"%s\",\"hyperparameters\":%s}", model, ds,
             hp ? hp : "{}");
    char *id = api_post_id(port, "/v1/jobs", body, 202);
    free(body);
    return id;
}

api_call api_get(int port, const char *fmt, const char *id)
{
    char path[512];
    snprintf(path, sizeof path, fmt, id);
    api_call c = api_req(port, "GET", path, NULL);
    ck_assert_msg(c.status == 200, "GET %s: %d %s", path, c.status, c.r.body ? c.r.body : "");
    return c;
}

cJSON *api_get_json(int port, const char *fmt, const char *id)
{
    api_call c = api_get(port, fmt, id);
    ck_assert_msg(c.json != NULL, "GET %s: not JSON: %s", fmt, c.r.body);
    cJSON *j = c.json;
    c.json = NULL;
    api_done(&c);
    return j;
}

char *api_get_raw(int port, const char *fmt, const char *id)
{
    api_call c = api_get(port, fmt, id);
    char *b = strdup(c.r.body ? c.r.body : "");
    ck_assert_ptr_nonnull(b);
    api_done(&c);
    return b;
}

static int terminal(const char *state)
{
    return !strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "cancelled");
}

/* GET /v1/<kind>s/{id} until its state is terminal; the caller deletes the answer. */
static cJSON *wait_terminal(int port, const char *kind, const char *id, double timeout_s)
{
    char fmt[32];
    snprintf(fmt, sizeof fmt, "/v1/%ss/%%s", kind);
    for (double t0 = httpc_now();; usleep(10000)) {
        cJSON *j = api_get_json(port, fmt, id);
        const char *st = api_str(j, "state");
        ck_assert_msg(st != NULL, "%s %s has no state", kind, id);
        if (terminal(st)) return j;
        ck_assert_msg(httpc_now() - t0 < timeout_s, "%s %s still %s after %.0f s", kind, id, st,
                      timeout_s);
        cJSON_Delete(j);
    }
}

cJSON *api_wait_job(int port, const char *id, double timeout_s)
{
    return wait_terminal(port, "job", id, timeout_s);
}

void api_wait_state(int port, const char *id, const char *want, double timeout_s)
{
    for (double t0 = httpc_now();; usleep(10000)) {
        cJSON *j = api_get_json(port, "/v1/jobs/%s", id);
        int there = api_is(j, "state", want);
        char st[32];
        snprintf(st, sizeof st, "%s", api_str(j, "state") ? api_str(j, "state") : "(none)");
        cJSON_Delete(j);
        if (there) return;
        ck_assert_msg(!terminal(st), "job %s ended %s, want %s", id, st, want);
        ck_assert_msg(httpc_now() - t0 < timeout_s, "job %s is %s, want %s", id, st, want);
    }
}

void api_expect_state(int port, const char *id, const char *state, double timeout_s)
{
    cJSON *j = api_wait_job(port, id, timeout_s);
    if (strcmp(api_str(j, "state"), state) != 0) {
        char *text = cJSON_PrintUnformatted(j);
        ck_abort_msg("job %s ended %s, want %s: %s", id, api_str(j, "state"), state, text);
    }
    cJSON_Delete(j);
}

cJSON *api_wait_sweep(int port, const char *id, double timeout_s)
{
    return wait_terminal(port, "sweep", id, timeout_s);
}

int api_job_epoch(int port, const char *id)
{
    cJSON *j = api_get_json(port, "/v1/jobs/%s", id);
    double e = api_num(api_item(j, "progress"), "epoch");
    cJSON_Delete(j);
    return (int)e;
}

int api_start_any(httpc_daemon *d, const char *dir, const char *conf, const char *const *args,
                  const char *const *env)
{
    if (!conf) return httpc_daemon_start(d, dir, args, env);
    char tmpl[256], path[300];
    if (!dir) { /* the config lives beside the state, so a restart over dir finds it */
        const char *tmp = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/traind-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        ck_assert_ptr_nonnull(dir = mkdtemp(tmpl));
    }
    snprintf(path, sizeof path, "%s/" API_CONF, dir);
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(conf, f);
    fclose(f);
    const char *argv[32] = {"--config", path};
    int n = 2;
    for (int i = 0; args && args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return httpc_daemon_start(d, dir, argv, env);
}

httpc_daemon api_start(const char *dir, const char *conf, const char *const *args,
                       const char *const *env)
{
    httpc_daemon d;
    if (api_start_any(&d, dir, conf, args, env) <= 0) {
        char *log = httpc_daemon_log(&d);
        ck_abort_msg("daemon did not start (exit %d): %s", d.exit_code, log);
    }
    return d;
}

void api_term(httpc_daemon *d)
{
    int code = httpc_daemon_stop(d, SIGTERM, 20);
    if (code != 0) {
        char *log = httpc_daemon_log(d);
        ck_abort_msg("exit code %d at SIGTERM:\n%s", code, log);
    }
}

void api_stop(httpc_daemon *d)
{
    api_term(d);
    httpc_daemon_cleanup(d);
}

void api_expect_healthy(int port)
{
    api_call c = api_req(port, "GET", "/healthz", NULL);
    ck_assert_int_eq(c.status, 200);
    ck_assert_str_eq(api_str(c.json, "status"), "ok");
    api_done(&c);
    c = api_req(port, "GET", "/readyz", NULL);
    ck_assert_int_eq(c.status, 200);
    api_done(&c);
}

char *api_dataset_body(int n, int d, int K, unsigned seed)
{
    cJSON *o = cJSON_CreateObject(), *X = cJSON_AddArrayToObject(o, "X"),
          *y = cJSON_AddArrayToObject(o, "y");
    for (int i = 0; i < n; i++) {
        cJSON *row = cJSON_CreateArray();
        double s[16] = {0};
        for (int j = 0; j < d; j++) {
            seed = seed * 1103515245u + 12345u;
            double x = (double)((seed >> 8) % 2000) / 1000.0 - 1.0;
            cJSON_AddItemToArray(row, cJSON_CreateNumber(x));
            for (int k = 0; k < K && k < 16; k++)
                s[k] += x * ((j + k) % 3 - 1) + 0.01 * k;
        }
        int best = 0;
        for (int k = 1; k < K && k < 16; k++)
            if (s[k] > s[best]) best = k;
        cJSON_AddItemToArray(X, row);
        cJSON_AddItemToArray(y, cJSON_CreateNumber(i < K ? i : best));
    }
    char *s = cJSON_PrintUnformatted(o);
    ck_assert_ptr_nonnull(s);
    cJSON_Delete(o);
    return s;
}

void api_https_on(void) { ck_assert_int_eq(httpc_tls_on(), 0); }
void api_https_off(void) { httpc_tls_off(); }

void api_pg_on(void)
{
    char uri[512];
    td_pgtest_newdb(uri, sizeof uri);
    httpc_store_set(uri);
}
void api_pg_off(void) { httpc_store_set(NULL); }
