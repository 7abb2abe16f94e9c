/* test_sec.c — security on a network (issue 11): the tokens_file parser and scopes, the
 * audit log, SIGHUP reload, private state under any umask, HTTPS, and the strict HTTP
 * edge (both framings, UTF-8 names, escaped echoes, unknown cursors). The daemon cases
 * run $TD_BIN on an ephemeral port; none asserts a duration. */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/auth.h"
#include "api.h"
#include "testutil.h"
#include "util/config.h"
#include "util/text.h"

#define READ_TOK "reader-secret-0001"
#define WRITE_TOK "writer-secret-0002"
#define DEFAULT_TOK "default-secret-0003"
#define DS_JSON "{\"name\":\"d\",\"X\":[[0,1],[1,0],[1,1],[0,0]],\"y\":[0,1,1,0]}"

/* ---- helpers ----------------------------------------------------------------------- */

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* A fresh directory holding API_CONF (conf_text) and, when tokens is non-NULL,
 * tokens.txt (named by conf_text as "@TOKENS@"). Starts the daemon there with extra args
 * and env; returns the port, or -1 when it exited (d->exit_code). */
static int start_in(httpc_daemon *d, char dir[256], const char *conf_text, const char *tokens,
                    const char *const *extra, const char *const *env)
{
    snprintf(dir, 256, "/tmp/traind-sec-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char tok[300], text[4096];
    snprintf(tok, sizeof tok, "%s/tokens.txt", dir);
    const char *at = strstr(conf_text, "@TOKENS@");
    if (at)
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - conf_text), conf_text, tok, at + 8);
    else
        snprintf(text, sizeof text, "%s", conf_text);
    if (tokens) put_file(tok, tokens);
    return api_start_any(d, dir, text, extra, env);
}

static int start_ok(httpc_daemon *d, char dir[256], const char *conf_text, const char *tokens,
                    const char *const *env)
{
    int port = start_in(d, dir, conf_text, tokens, NULL, env);
    if (port <= 0) {
        char *log = httpc_daemon_log(d);
        ck_abort_msg("daemon did not start: %s", log);
    }
    return port;
}

/* A request with a bearer token (NULL = none); returns the status, out filled. */
static int call(int port, const char *method, const char *path, const char *token, const char *json,
                httpc_resp *out)
{
    char h[256] = "";
    size_t n = 0;
    if (token) n += (size_t)snprintf(h, sizeof h, "Authorization: Bearer %s\n", token);
    if (json) snprintf(h + n, sizeof h - n, "Content-Type: application/json\n");
    return httpc_request(port, method, path, h, json, json ? strlen(json) : 0, out);
}

static int status_of(int port, const char *method, const char *path, const char *token,
                     const char *json)
{
    httpc_resp r;
    int st = call(port, method, path, token, json, &r);
    httpc_free(&r);
    return st;
}

/* Asserts that r carries the error object with this code and (if field) field. */
static void expect_error(const httpc_resp *r, const char *code, const char *field)
{
    ck_assert_msg(r->body && td_utf8_valid(r->body, r->body_len), "body not UTF-8");
    cJSON *j = cJSON_Parse(r->body);
    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "field");
    ck_assert_msg(cJSON_IsString(c) && strcmp(c->valuestring, code) == 0, "want %s: %s", code,
                  r->body);
    if (field)
        ck_assert_msg(cJSON_IsString(f) && strcmp(f->valuestring, field) == 0, "want field %s: %s",
                      field, r->body);
    cJSON_Delete(j);
}

/* Waits up to 10 s for the log to hold needle at least `times` times. */
static int wait_log(const httpc_daemon *d, const char *needle, int times)
{
    double t0 = httpc_now();
    while (httpc_now() - t0 < 10.0) {
        char *log = httpc_daemon_log(d);
        int n = 0;
        for (const char *p = log; (p = strstr(p, needle)); p++)
            n++;
        free(log);
        if (n >= times) return 1;
        usleep(20 * 1000);
    }
    return 0;
}

static int log_has(const httpc_daemon *d, const char *needle)
{
    char *log = httpc_daemon_log(d);
    int has = strstr(log, needle) != NULL;
    free(log);
    return has;
}

/* Reads from fd until the peer closes (or 10 s); buf gets the bytes, NUL-terminated. */
static size_t read_all(int fd, char *buf, size_t n)
{
    size_t len = 0;
    double t0 = httpc_now();
    while (httpc_now() - t0 < 10.0 && len + 1 < n) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t k = recv(fd, buf + len, n - 1 - len, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        len += (size_t)k;
    }
    buf[len] = '\0';
    return len;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* ---- tokens_file: the parser, matching, scopes ---------------------------------------- */

START_TEST(tokens_file_parse_and_match)
{
    td_tokens t = {0, NULL};
    td_error e;
    const char *good = "# who may do what\n"
                       "\n"
                       "  dash   read   " READ_TOK "   # the dashboard\n"
                       "ci\twrite\t" WRITE_TOK "\r\n"
                       "ops.night-1 read tok#with#hash\n";
    ck_assert_msg(td_tokens_parse(&t, good, "tokens.txt", &e) == TD_OK, "%s", e.message);
    ck_assert_int_eq(t.n, 3);
    ck_assert_str_eq(t.v[0].name, "dash");
    ck_assert_int_eq(t.v[0].scope, TD_SCOPE_READ);
    ck_assert_str_eq(t.v[0].secret, READ_TOK);
    ck_assert_str_eq(t.v[1].name, "ci");
    ck_assert_int_eq(t.v[1].scope, TD_SCOPE_WRITE);
    ck_assert_str_eq(t.v[1].secret, WRITE_TOK); /* the CR of a CRLF line is a blank */
    ck_assert_str_eq(t.v[2].secret, "tok#with#hash");

    ck_assert_ptr_eq(td_tokens_match(&t, WRITE_TOK), &t.v[1]);
    ck_assert_ptr_eq(td_tokens_match(&t, READ_TOK), &t.v[0]);
    ck_assert_ptr_null(td_tokens_match(&t, "writer-secret-000")); /* a prefix */
    ck_assert_ptr_null(td_tokens_match(&t, WRITE_TOK "x"));       /* longer */
    ck_assert_ptr_null(td_tokens_match(&t, ""));

    ck_assert(td_scope_allows(TD_SCOPE_READ, "GET", "/v1/jobs"));
    ck_assert(td_scope_allows(TD_SCOPE_READ, "HEAD", "/v1/jobs/job_1/events"));
    ck_assert(td_scope_allows(TD_SCOPE_READ, "GET", "/metrics"));
    ck_assert(!td_scope_allows(TD_SCOPE_READ, "POST", "/v1/jobs"));
    ck_assert(!td_scope_allows(TD_SCOPE_READ, "DELETE", "/v1/datasets/ds_1"));
    ck_assert(!td_scope_allows(TD_SCOPE_READ, "POST", "/v1/loss"));
    ck_assert(!td_scope_allows(TD_SCOPE_READ, "GET", "/v1"));
    ck_assert(td_scope_allows(TD_SCOPE_WRITE, "DELETE", "/v1/datasets/ds_1"));

    /* Each bad line is refused with its number, and nothing of the file is taken. */
    char longline[1200];
    memset(longline, 'x', sizeof longline);
    snprintf(longline, sizeof longline, "ok read abcdefgh1\nlong write %0*d\n", 1090, 7);
    const struct {
        const char *text, *want;
    } bad[] = {
        {"a read abcdefgh1\nb admin abcdefgh2\n",
         "tokens.txt:2: SCOPE \"admin\" is not read or write"},
        {"a read abcdefgh1 extra\n",
         "tokens.txt:1: expected \"NAME SCOPE TOKEN\", found more than 3"},
        {"\n\na read\n", "tokens.txt:3: expected \"NAME SCOPE TOKEN\", found 2 fields"},
        {"a read short\n", "tokens.txt:1: the token of \"a\" must be 8..255"},
        {"a/b read abcdefgh1\n", "tokens.txt:1: NAME must be"},
        {"a read abcdefgh1\na write abcdefgh2\n", "tokens.txt:2: the name \"a\" is used twice"},
        {"a read abcdefgh1\nb write abcdefgh1\n",
         "tokens.txt:2: token \"b\" has the same secret as \"a\""},
        {longline, "tokens.txt:2: line is 1101 bytes long; at most 1024"},
        {"a read abc\xff"
         "defgh\n",
         "not all visible ASCII"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(td_tokens_parse(&t, bad[i].text, "tokens.txt", &e), TD_EINVAL);
        ck_assert_msg(strstr(e.message, bad[i].want), "case %zu: got \"%s\"", i, e.message);
        ck_assert_str_eq(e.field, "tokens_file");
        ck_assert_int_eq(t.n, 3);
    }
    /* A name or secret already in the set (here: from the first file) is a duplicate. */
    ck_assert_int_eq(td_tokens_parse(&t, "ci read other-secret-1\n", "more.txt", &e), TD_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "more.txt:1: the name \"ci\" is used twice"));
    free(t.v);
}
END_TEST

/* auth_token_file is read whole: 300 blanks before the token used to leave 19 of its
 * characters (a 319-byte read); a file too large to be a token is refused, not cut. */
START_TEST(auth_token_file_read_whole)
{
    char dir[] = "/tmp/traind-sec-XXXXXX", path[300];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/token", dir);
    const char *tok = "a-forty-character-token-0123456789abcdef";
    char text[1024];
    snprintf(text, sizeof text, "%300s%s\n\n", "", tok);
    put_file(path, text);
    td_config c;
    td_error e;
    td_config_defaults(&c);
    snprintf(c.auth_token_file, sizeof c.auth_token_file, "%s", path);
    ck_assert_msg(td_config_finish(&c, &e) == TD_OK, "%s", e.message);
    ck_assert_str_eq(c.auth_token, tok);

    char *big = malloc(70 * 1024 + 1);
    memset(big, ' ', 70 * 1024);
    memcpy(big + 1000, tok, strlen(tok));
    big[70 * 1024] = '\0';
    put_file(path, big);
    free(big);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_EINVAL);
    ck_assert_str_eq(e.field, "auth_token_file");
    ck_assert_msg(strstr(e.message, "is larger than 65536 bytes"), "%s", e.message);

    /* tokens_file through td_tokens_load: "default" comes first, a file of comments only
     * is an error (it would mean "no auth"), and "default" may not be reused. */
    char tpath[300];
    snprintf(tpath, sizeof tpath, "%s/tokens", dir);
    put_file(tpath, "# nothing yet\n");
    td_config_defaults(&c);
    snprintf(c.tokens_file, sizeof c.tokens_file, "%s", tpath);
    td_tokens *t = NULL;
    ck_assert_int_eq(td_tokens_load(&t, &c, &e), TD_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "holds no token"));
    put_file(tpath, "default read abcdefgh1\n");
    snprintf(c.auth_token, sizeof c.auth_token, "%s", DEFAULT_TOK);
    ck_assert_int_eq(td_tokens_load(&t, &c, &e), TD_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, ":1: the name \"default\" is used twice"));
    put_file(tpath, "r read abcdefgh1\n");
    ck_assert_msg(td_tokens_load(&t, &c, &e) == TD_OK, "%s", e.message);
    ck_assert_int_eq(t->n, 2);
    ck_assert_str_eq(t->v[0].name, "default");
    ck_assert_int_eq(t->v[0].scope, TD_SCOPE_WRITE);
    ck_assert_str_eq(t->v[1].name, "r");
    td_tokens_free(t);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- scopes and the audit, live --------------------------------------------------------- */

START_TEST(scopes_and_audit)
{
    httpc_daemon d;
    char dir[256];
    const char *env[] = {"TRAIND_TOKEN=" DEFAULT_TOK, NULL};
    int port = start_ok(&d, dir, "tokens_file = @TOKENS@\n",
                        "dash read " READ_TOK "\nci write " WRITE_TOK "\n", env);
    httpc_resp r;

    ck_assert_int_eq(status_of(port, "GET", "/v1/datasets", READ_TOK, NULL), 200);
    ck_assert_int_eq(status_of(port, "GET", "/metrics", READ_TOK, NULL), 200);
    ck_assert_int_eq(call(port, "POST", "/v1/datasets", READ_TOK, DS_JSON, &r), 403);
    expect_error(&r, "forbidden", NULL);
    ck_assert_ptr_nonnull(strstr(r.body, "\\\"dash\\\" has scope read"));
    ck_assert_ptr_null(strstr(r.body, READ_TOK));
    httpc_free(&r);
    ck_assert_int_eq(status_of(port, "POST", "/v1/loss", READ_TOK,
                               "{\"loss\":\"mse\",\"predictions\":[1],\"targets\":[1]}"),
                     403);
    ck_assert_int_eq(status_of(port, "DELETE", "/v1/datasets/ds_x", READ_TOK, NULL), 403);
    ck_assert_int_eq(status_of(port, "POST", "/v1/datasets", WRITE_TOK, DS_JSON), 201);
    ck_assert_int_eq(status_of(port, "POST", "/v1/datasets", DEFAULT_TOK, DS_JSON), 201);
    ck_assert_int_eq(status_of(port, "GET", "/v1/datasets", WRITE_TOK, NULL), 200);
    ck_assert_int_eq(status_of(port, "POST", "/v1/datasets", NULL, DS_JSON), 401);
    ck_assert_int_eq(status_of(port, "GET", "/v1/datasets", "reader-secret-0009", NULL), 401);
    ck_assert_int_eq(status_of(port, "GET", "/healthz", NULL, NULL), 200);

    /* One audit line per write request, with the token's NAME, never a secret. */
    ck_assert(wait_log(&d, "audit: token=ci method=POST path=/v1/datasets status=201", 1));
    ck_assert(log_has(&d, "audit: token=default method=POST path=/v1/datasets status=201"));
    ck_assert(log_has(&d, "audit: token=dash method=POST path=/v1/datasets status=403"));
    ck_assert(log_has(&d, "audit: token=dash method=DELETE path=/v1/datasets/ds_x status=403"));
    ck_assert(log_has(&d, "audit: token=- method=POST path=/v1/datasets status=401"));
    char *log = httpc_daemon_log(&d);
    ck_assert_int_eq(count_of(log, "audit: "), 6);
    ck_assert_ptr_null(strstr(log, "method=GET"));
    ck_assert_ptr_null(strstr(log, READ_TOK));
    ck_assert_ptr_null(strstr(log, WRITE_TOK));
    ck_assert_ptr_null(strstr(log, DEFAULT_TOK));
    free(log);
    api_stop(&d);
}
END_TEST

START_TEST(bad_tokens_file_refused_at_start)
{
    httpc_daemon d;
    char dir[256];
    ck_assert_int_eq(
        start_in(&d, dir, "tokens_file = @TOKENS@\n", "ok write abcdefgh1\nbroken\n", NULL, NULL),
        -1);
    ck_assert_int_eq(httpc_daemon_stop(&d, 0, 5), 2);
    ck_assert(log_has(&d, "tokens.txt:2: expected \"NAME SCOPE TOKEN\", found 1 field"));
    httpc_daemon_cleanup(&d);

    /* Protected mode counts the tokens of the file too: with them a non-loopback listen
     * starts (and warns that it has no TLS). */
    const char *any[] = {"--listen", "0.0.0.0:0", NULL};
    int port = start_in(&d, dir, "tokens_file = @TOKENS@\n", "ops write abcdefgh1\n", any, NULL);
    ck_assert_int_gt(port, 0);
    ck_assert(log_has(&d, "no TLS on the non-loopback 0.0.0.0:0"));
    api_stop(&d);
    ck_assert_int_eq(start_in(&d, dir, "", NULL, any, NULL), -1);
    ck_assert_int_eq(httpc_daemon_stop(&d, 0, 5), 2);
    ck_assert(log_has(&d, "refusing to listen on 0.0.0.0:0 without an auth token"));
    httpc_daemon_cleanup(&d);
}
END_TEST

/* ---- SIGHUP ----------------------------------------------------------------------------- */

START_TEST(sighup_reloads_tokens)
{
    httpc_daemon d;
    char dir[256], tok[300];
    int port = start_ok(&d, dir, "tokens_file = @TOKENS@\nlog_level = info\n",
                        "old write old-secret-0001\nkeep read keep-secret-0002\n", NULL);
    snprintf(tok, sizeof tok, "%s/tokens.txt", dir);
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs", "old-secret-0001", NULL), 200);
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs", "new-secret-0003", NULL), 401);

    /* A job running across the reload, and a keep-alive connection open through it. */
    httpc_resp r;
    ck_assert_int_eq(call(port, "POST", "/v1/jobs", "old-secret-0001",
                          "{\"model\":\"softmax\",\"data\":{\"X\":[[0,1],[1,0]],\"y\":[0,1]},"
                          "\"hyperparameters\":{\"epochs\":200000}}",
                          &r),
                     202);
    cJSON *j = cJSON_Parse(r.body);
    char job[128];
    snprintf(job, sizeof job, "/v1/jobs/%s", cJSON_GetObjectItem(j, "id")->valuestring);
    cJSON_Delete(j);
    httpc_free(&r);
    int fd = httpc_connect(port);
    ck_assert_int_ge(fd, 0);
    const char *ka = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(httpc_send_all(fd, ka, strlen(ka)), 0);
    char buf[4096];
    ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(k, 0);

    put_file(tok, "new write new-secret-0003\nkeep read keep-secret-0002\n");
    kill(d.pid, SIGHUP);
    ck_assert(wait_log(&d, "reloaded: 2 tokens (1 read, 1 write)", 1));
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs", "old-secret-0001", NULL), 401);
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs", "new-secret-0003", NULL), 200);
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs", "keep-secret-0002", NULL), 200);
    ck_assert_int_eq(call(port, "GET", job, "keep-secret-0002", NULL, &r), 200);
    ck_assert_msg(strstr(r.body, "\"state\":\"running\"") || strstr(r.body, "\"state\":\"queued\""),
                  "job after the reload: %s", r.body);
    httpc_free(&r);
    ck_assert_int_eq(httpc_send_all(fd, ka, strlen(ka)), 0); /* the same connection */
    k = recv(fd, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(k, 0);
    buf[k] = '\0';
    ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 200"));
    close(fd);

    /* A bad file keeps the set in force, and the log says why (file and line). */
    put_file(tok, "new write new-secret-0003\nbad owner new-secret-0004\n");
    kill(d.pid, SIGHUP);
    ck_assert(wait_log(&d, "reload failed, keeping the current settings: ", 1));
    ck_assert(log_has(&d, "tokens.txt:2: SCOPE \"owner\" is not read or write"));
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs", "new-secret-0003", NULL), 200);
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs", "keep-secret-0002", NULL), 200);

    /* log_level reloads; a key that needs a restart says so and keeps its value. */
    char conf[300], text[600];
    snprintf(conf, sizeof conf, "%s/" API_CONF, dir);
    snprintf(text, sizeof text, "tokens_file = %s\nlog_level = warn\nworkers = 7\n", tok);
    put_file(conf, text);
    put_file(tok, "new write new-secret-0003\n");
    kill(d.pid, SIGHUP);
    ck_assert(wait_log(&d, "reload: workers = 7 needs a restart", 1));
    ck_assert(wait_log(&d, "reloaded: 1 tokens (0 read, 1 write), log_level warn", 1));
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs", "keep-secret-0002", NULL), 401);
    ck_assert_int_eq(status_of(port, "POST", job, "new-secret-0003", NULL), 405);
    ck_assert_int_eq(call(port, "POST", "/v1/jobs/x/cancel", "new-secret-0003", NULL, &r), 404);
    httpc_free(&r);
    char cancel[160];
    snprintf(cancel, sizeof cancel, "%s/cancel", job);
    ck_assert_int_eq(status_of(port, "POST", cancel, "new-secret-0003", NULL), 202);
    /* At warn, the info-level audit lines stop. */
    ck_assert(!log_has(&d, "path=/v1/jobs/x/cancel"));
    api_stop(&d);
}
END_TEST

/* ---- private state ---------------------------------------------------------------------- */

/* Every entry under dir: directories 0700, files 0600. Returns the number of files. */
static int check_modes(const char *dir)
{
    struct stat sb;
    ck_assert_int_eq(lstat(dir, &sb), 0);
    ck_assert_msg((sb.st_mode & 07777) == 0700, "%s is %04o", dir, sb.st_mode & 07777);
    DIR *dd = opendir(dir);
    ck_assert_ptr_nonnull(dd);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        ck_assert_int_eq(lstat(p, &sb), 0);
        if (S_ISDIR(sb.st_mode)) {
            files += check_modes(p);
            continue;
        }
        ck_assert_msg((sb.st_mode & 07777) == 0600, "%s is %04o", p, sb.st_mode & 07777);
        files++;
    }
    closedir(dd);
    return files;
}

static void modes_under_umask(mode_t mask, int preexisting)
{
    char dir[] = "/tmp/traind-sec-XXXXXX", state[300], path[400];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(state, sizeof state, "%s/state", dir);
    mode_t old = umask(mask);
    if (preexisting) { /* made loose by someone else: traind narrows it at start */
        ck_assert_int_eq(mkdir(state, 0777), 0);
        ck_assert_int_eq(chmod(state, 0755), 0);
        snprintf(path, sizeof path, "%s/notes", state);
        put_file(path, "x");
        ck_assert_int_eq(chmod(path, 0644), 0);
    }
    httpc_daemon d;
    int port = httpc_daemon_start(&d, dir, NULL, NULL);
    umask(old);
    ck_assert_int_gt(port, 0);
    httpc_resp r;
    ck_assert_int_eq(call(port, "POST", "/v1/jobs", NULL,
                          "{\"model\":\"softmax\",\"data\":{\"X\":[[0,1],[1,0]],\"y\":[0,1]},"
                          "\"hyperparameters\":{\"epochs\":3}}",
                          &r),
                     202);
    cJSON *j = cJSON_Parse(r.body);
    char job[128];
    snprintf(job, sizeof job, "/v1/jobs/%s", cJSON_GetObjectItem(j, "id")->valuestring);
    cJSON_Delete(j);
    httpc_free(&r);
    int done = 0;
    for (double t0 = httpc_now(); !done && httpc_now() - t0 < 20;) {
        ck_assert_int_eq(call(port, "GET", job, NULL, NULL, &r), 200);
        done = strstr(r.body, "\"state\":\"succeeded\"") != NULL;
        httpc_free(&r);
        if (!done) usleep(20 * 1000);
    }
    ck_assert(done);
    ck_assert_int_eq(status_of(port, "POST", "/v1/datasets", NULL, DS_JSON), 201);
    /* While it runs: the database with its -wal and -shm, the dataset and model blobs. */
    snprintf(path, sizeof path, "%s/traind.db-wal", state);
    ck_assert_int_eq(access(path, F_OK), 0);
    int files = check_modes(state);
    ck_assert_int_ge(files, 4);
    if (preexisting) ck_assert(log_has(&d, "took group/other access off 2 entries"));
    api_stop(&d);
}

START_TEST(state_private_under_umask_000) { modes_under_umask(0, 0); }
END_TEST

START_TEST(state_private_under_umask_077) { modes_under_umask(077, 0); }
END_TEST

START_TEST(state_private_when_made_loose_before) { modes_under_umask(022, 1); }
END_TEST

/* ---- the strict edge ------------------------------------------------------------------- */

START_TEST(both_framings_400_and_close)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int fd = httpc_connect(d.port);
    ck_assert_int_ge(fd, 0);
    /* If a proxy framed by Content-Length, the chunked "0" ends nothing and the GET is
     * body; if by chunks, the GET is a second request. Neither must be served. */
    const char *req = "POST /v1/datasets HTTP/1.1\r\nHost: x\r\n"
                      "Content-Type: application/json\r\nContent-Length: 5\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                      "GET /v1/datasets HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(httpc_send_all(fd, req, strlen(req)), 0);
    char buf[8192];
    read_all(fd, buf, sizeof buf); /* to the close */
    close(fd);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 400", 12) == 0, "%s", buf);
    ck_assert_int_eq(count_of(buf, "HTTP/1.1 "), 1);
    ck_assert_ptr_nonnull(strstr(buf, "Connection: close"));
    ck_assert_ptr_nonnull(strstr(buf, "\"code\":\"bad_request\""));
    ck_assert_ptr_nonnull(strstr(buf, "both Content-Length and Transfer-Encoding"));
    httpc_resp r;
    ck_assert_int_eq(call(d.port, "GET", "/v1/datasets", NULL, NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"datasets\":[]")); /* nothing was stored */
    httpc_free(&r);
    api_stop(&d);
}
END_TEST

START_TEST(stored_strings_are_utf8_without_nul)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    httpc_resp r;
    const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"name\":\"\xff\xfe\",\"X\":[[1]]}", "name"},
        {"{\"name\":\"ab\\u0000cd\",\"X\":[[1]]}", "name"},
        {"{\"name\":\"\xc0\xaf\",\"X\":[[1]]}", "name"},     /* overlong '/' */
        {"{\"name\":\"\xed\xa0\x80\",\"X\":[[1]]}", "name"}, /* a surrogate */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(call(port, "POST", "/v1/datasets", NULL, bad[i].body, &r), 422);
        expect_error(&r, "invalid_argument", bad[i].field);
        ck_assert_ptr_nonnull(strstr(r.body, "UTF-8 text without NUL"));
        httpc_free(&r);
    }
    /* The same rules for a job's inline data (parsed as a tree, not streamed). */
    ck_assert_int_eq(call(port, "POST", "/v1/jobs", NULL,
                          "{\"model\":\"softmax\",\"data\":{\"name\":\"x\\u0000\",\"X\":[[1]],"
                          "\"y\":[0]}}",
                          &r),
                     422);
    expect_error(&r, "invalid_argument", "data.name");
    httpc_free(&r);
    ck_assert_int_eq(call(port, "POST", "/v1/jobs", NULL,
                          "{\"model\":\"soft\xffmax\",\"data\":{\"X\":[[1]],\"y\":[0]}}", &r),
                     422);
    expect_error(&r, "invalid_argument", "model");
    httpc_free(&r);
    /* Good UTF-8 (and an escaped backslash before u0000, which is no NUL) is stored. */
    ck_assert_int_eq(call(port, "POST", "/v1/datasets", NULL,
                          "{\"name\":\"\xc3\xa9t\xc3\xa9 \\u00e9 \\\\u0000\",\"X\":[[1]]}", &r),
                     201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"name\":\"\xc3\xa9t\xc3\xa9 \xc3\xa9 \\\\u0000\""));
    httpc_free(&r);
    ck_assert_int_eq(call(port, "GET", "/v1/datasets", NULL, NULL, &r), 200);
    ck_assert(td_utf8_valid(r.body, r.body_len));
    ck_assert_int_eq(count_of(r.body, "\"id\":"), 1);
    httpc_free(&r);
    ck_assert_int_eq(httpc_request(port, "POST", "/v1/jobs",
                                   "Content-Type: application/json\nIdempotency-Key: k\xff", "{}",
                                   2, &r),
                     422);
    expect_error(&r, "invalid_argument", "Idempotency-Key");
    httpc_free(&r);
    api_stop(&d);
}
END_TEST

START_TEST(errors_escape_what_they_echo)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    httpc_resp r;
    /* MHD decodes %FF%0A in the path: the message echoes the id, escaped. */
    ck_assert_int_eq(call(d.port, "GET", "/v1/jobs/a%FF%0Ab", NULL, NULL, &r), 404);
    expect_error(&r, "not_found", NULL);
    ck_assert_msg(strstr(r.body, "a\\\\xFF\\nb"), "%s", r.body);
    httpc_free(&r);
    ck_assert_int_eq(httpc_request(d.port, "POST", "/v1/datasets",
                                   "Content-Type: text/\xfe\x01plain", "x", 1, &r),
                     415);
    expect_error(&r, "unsupported_media_type", NULL);
    ck_assert_msg(strstr(r.body, "text/\\\\xFE\\u0001plain"), "%s", r.body);
    httpc_free(&r);
    ck_assert_int_eq(call(d.port, "GET", "/v1/jobs?state=%C3%28", NULL, NULL, &r), 422);
    expect_error(&r, "invalid_argument", "state");
    ck_assert_msg(strstr(r.body, "\\\\xC3("), "%s", r.body);
    httpc_free(&r);
    api_stop(&d);
}
END_TEST

START_TEST(unknown_cursor_is_422)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    httpc_resp r;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(status_of(port, "POST", "/v1/datasets", NULL, DS_JSON), 201);
    ck_assert_int_eq(call(port, "GET", "/v1/datasets?limit=2", NULL, NULL, &r), 200);
    cJSON *j = cJSON_Parse(r.body);
    char path[200];
    snprintf(path, sizeof path, "/v1/datasets?limit=2&after=%s",
             cJSON_GetObjectItem(j, "next")->valuestring);
    cJSON_Delete(j);
    httpc_free(&r);
    ck_assert_int_eq(call(port, "GET", path, NULL, NULL, &r), 200);
    ck_assert_int_eq(count_of(r.body, "\"id\":"), 1);
    httpc_free(&r);
    ck_assert_int_eq(
        call(port, "GET", "/v1/datasets?after=ds_000000000000000000000000", NULL, NULL, &r), 422);
    expect_error(&r, "invalid_argument", "after");
    httpc_free(&r);
    ck_assert_int_eq(call(port, "GET", "/v1/jobs?after=job_nope&state=queued", NULL, NULL, &r),
                     422);
    expect_error(&r, "invalid_argument", "after");
    httpc_free(&r);
    ck_assert_int_eq(status_of(port, "GET", "/v1/jobs?after=", NULL, NULL), 200);
    api_stop(&d);
}
END_TEST

/* ---- HTTPS ------------------------------------------------------------------------------- */

START_TEST(https_only_when_configured)
{
    ck_assert_int_eq(httpc_tls_on(), 0);
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    httpc_resp r;
    ck_assert_int_eq(call(d.port, "POST", "/v1/datasets", NULL, DS_JSON, &r), 201);
    ck_assert_ptr_nonnull(strstr(r.body, "\"n_samples\":4"));
    httpc_free(&r);
    ck_assert(log_has(&d, "HTTPS only"));
    /* Plain HTTP on the port gets no HTTP answer. */
    int fd = httpc_connect(d.port);
    ck_assert_int_ge(fd, 0);
    const char *plain = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(httpc_send_all(fd, plain, strlen(plain)), 0);
    char buf[4096];
    read_all(fd, buf, sizeof buf);
    close(fd);
    ck_assert_ptr_null(strstr(buf, "HTTP/1.1 200"));
    ck_assert_int_eq(call(d.port, "GET", "/healthz", NULL, NULL, &r), 200); /* still serving */
    httpc_free(&r);

    /* A renewed certificate (a new key) in the same files: the client, which trusts only
     * the new one, fails until SIGHUP installs it; a connection made before stays up. */
    char tlsdir[300];
    snprintf(tlsdir, sizeof tlsdir, "%s", httpc_tls_cert());
    *strrchr(tlsdir, '/') = '\0';
    int fd_old = httpc_connect(d.port); /* plain TCP: held open across the reload */
    ck_assert_int_ge(fd_old, 0);
    ck_assert_int_eq(httpc_make_cert(tlsdir), 0);
    ck_assert_int_eq(call(d.port, "GET", "/healthz", NULL, NULL, &r), -1);
    httpc_free(&r);
    kill(d.pid, SIGHUP);
    ck_assert(wait_log(&d, "max_body_mb 256, certificate", 1));
    ck_assert_int_eq(call(d.port, "GET", "/v1/datasets", NULL, NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"n_samples\":4"));
    httpc_free(&r);
    struct pollfd pf = {fd_old, POLLIN, 0};
    ck_assert_int_eq(poll(&pf, 1, 0), 0); /* not closed by the reload */
    close(fd_old);
    api_stop(&d);

    /* A key that is not the certificate's, or one file of the two: refused at start. */
    httpc_tls_off(); /* start_in's own config below, not the harness's */
    char other[] = "/tmp/traind-sec-XXXXXX", conf[600], dir[256], path[300];
    ck_assert_ptr_nonnull(mkdtemp(other));
    ck_assert_int_eq(httpc_make_cert(other), 0);
    snprintf(path, sizeof path, "%s/b", other);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    ck_assert_int_eq(httpc_make_cert(path), 0);
    snprintf(conf, sizeof conf, "tls_cert_file = %s/cert.pem\ntls_key_file = %s/b/key.pem\n", other,
             other);
    ck_assert_int_eq(start_in(&d, dir, conf, NULL, NULL, NULL), -1);
    ck_assert_int_eq(httpc_daemon_stop(&d, 0, 5), 2);
    ck_assert(log_has(&d, "not a PEM certificate and its matching private key"));
    httpc_daemon_cleanup(&d);
    snprintf(conf, sizeof conf, "tls_cert_file = %s/cert.pem\n", other);
    ck_assert_int_eq(start_in(&d, dir, conf, NULL, NULL, NULL), -1);
    ck_assert_int_eq(httpc_daemon_stop(&d, 0, 5), 2);
    ck_assert(log_has(&d, "tls_cert_file and tls_key_file go together"));
    httpc_daemon_cleanup(&d);
    snprintf(conf, sizeof conf, "rm -rf '%s'", other);
    ck_assert_int_eq(system(conf), 0);
}
END_TEST

Suite *suite_sec(void)
{
    Suite *s = suite_create("sec");
    TCase *unit = tcase_create("tokens");
    tcase_add_test(unit, tokens_file_parse_and_match);
    tcase_add_test(unit, auth_token_file_read_whole);
    suite_add_tcase(s, unit);
    TCase *live = tcase_create("live");
    tcase_set_timeout(live, 60);
    tcase_add_test(live, scopes_and_audit);
    tcase_add_test(live, bad_tokens_file_refused_at_start);
    tcase_add_test(live, sighup_reloads_tokens);
    tcase_add_test(live, state_private_under_umask_000);
    tcase_add_test(live, state_private_under_umask_077);
    tcase_add_test(live, state_private_when_made_loose_before);
    tcase_add_test(live, both_framings_400_and_close);
    tcase_add_test(live, stored_strings_are_utf8_without_nul);
    tcase_add_test(live, errors_escape_what_they_echo);
    tcase_add_test(live, unknown_cursor_is_422);
    tcase_add_test(live, https_only_when_configured);
    suite_add_tcase(s, live);
    return s;
}
