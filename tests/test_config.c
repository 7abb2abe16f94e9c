/* test_config.c — configuration (table defaults, file, flags, token), logging and
 * sd_notify. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"
#include "util/config.h"
#include "util/log.h"
#include "util/notify.h"

/* Writes text to a new temporary file; returns its path (static buffer per slot). */
static const char *temp_file(int slot, const char *text)
{
    static char paths[4][64];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/traind-cfg-XXXXXX");
    int fd = mkstemp(paths[slot]);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return paths[slot];
}

static td_status from_args(td_config *c, td_cli_action *act, td_error *e, const char *a1,
                           const char *a2, const char *a3, const char *a4, const char *a5,
                           const char *a6)
{
    char *argv[8] = {(char *)"traind"};
    int argc = 1;
    const char *a[] = {a1, a2, a3, a4, a5, a6};
    for (int i = 0; i < 6 && a[i]; i++)
        argv[argc++] = (char *)a[i];
    return td_config_from_args(c, argc, argv, act, e);
}

START_TEST(defaults)
{
    unsetenv("TRAIND_TOKEN");
    td_config c;
    td_config_defaults(&c);
    ck_assert_str_eq(c.listen, "127.0.0.1:8080");
    ck_assert_int_eq(c.workers, 0);
    ck_assert_str_eq(c.state_dir, "./state");
    ck_assert_str_eq(c.auth_token_file, "");
    ck_assert_int_eq(c.max_body_mb, 256);
    ck_assert_uint_eq(td_config_max_body(&c), 256ull << 20);
    ck_assert_int_eq(c.max_queued_jobs, 64);
    ck_assert_int_eq(c.checkpoint_interval_s, 30);
    ck_assert_int_eq(c.log_level, TD_LOG_INFO);
    ck_assert_int_eq(c.max_connections, 512);
    ck_assert_int_eq(c.connection_timeout_s, 30);
    ck_assert_int_eq(c.max_dataset_rows, 10000000);
    ck_assert_int_eq(c.max_dataset_features, 100000);
    ck_assert_int_eq(td_config_workers(&c), (int)sysconf(_SC_NPROCESSORS_ONLN));
    c.workers = 3;
    ck_assert_int_eq(td_config_workers(&c), 3);

    /* No flags, no file, no environment: the same, and no token. */
    td_config d;
    td_cli_action act;
    td_error e;
    ck_assert_int_eq(from_args(&d, &act, &e, NULL, NULL, NULL, NULL, NULL, NULL), TD_OK);
    ck_assert_int_eq(act, TD_CLI_RUN);
    ck_assert_str_eq(d.listen, "127.0.0.1:8080");
    ck_assert_str_eq(d.auth_token, "");
    ck_assert_str_eq(d.config_path, "");

    /* Every key of the table has a default that its own parser accepts. */
    const char *name, *def;
    for (int i = 0; td_config_key(i, &name, &def); i++)
        ck_assert_msg(td_config_set(&c, name, def, &e) == TD_OK, "%s: %s", name, e.message);
}
END_TEST

START_TEST(file_parsing)
{
    td_config c;
    td_config_defaults(&c);
    td_error e;
    const char *text = "# a comment\n"
                       "\n"
                       "   listen=0.0.0.0:9000   \n"
                       "workers = 4   # inline comment\n"
                       "\tstate_dir = /var/lib/x#y\n"
                       "log_level = WARN\n"
                       "max_body_mb = 1\r\n"
                       "max_dataset_features = 9999999\n"
                       "auth_token_file =\n"
                       "listen_x_is_not_here = 1\n";
    /* Unknown key: error naming the line and the key, and field = key. */
    ck_assert_int_eq(td_config_parse(&c, text, "t.conf", &e), TD_EINVAL);
    ck_assert_str_eq(e.field, "listen_x_is_not_here");
    ck_assert_ptr_nonnull(strstr(e.message, "t.conf:10:"));
    ck_assert_ptr_nonnull(strstr(e.message, "unknown key \"listen_x_is_not_here\""));
    /* Everything before it was applied. */
    ck_assert_str_eq(c.listen, "0.0.0.0:9000");
    ck_assert_int_eq(c.workers, 4);
    ck_assert_str_eq(c.state_dir, "/var/lib/x#y"); /* '#' not after a blank is data */
    ck_assert_int_eq(c.log_level, TD_LOG_WARN);
    ck_assert_int_eq(c.max_body_mb, 1);
    ck_assert_int_eq(c.max_dataset_features, 9999999);
    ck_assert_str_eq(c.auth_token_file, "");
}
END_TEST

START_TEST(bounds_and_errors)
{
    static const struct {
        const char *text, *key, *where, *what;
    } cases[] = {
        {"max_body_mb = 0\n", "max_body_mb", "x.conf:1:", "out of range [1, 16384]"},
        {"\n\nmax_body_mb = 16385\n", "max_body_mb", "x.conf:3:", "out of range"},
        {"workers = -1\n", "workers", "x.conf:1:", "out of range [0, 1024]"},
        {"workers = two\n", "workers", "x.conf:1:", "not an integer"},
        {"workers = 2x\n", "workers", "x.conf:1:", "not an integer"},
        {"workers =\n", "workers", "x.conf:1:", "not an integer"},
        {"connection_timeout_s = 0\n", "connection_timeout_s", "x.conf:1:", "out of range"},
        {"max_connections = 99999999999999999999\n", "max_connections",
         "x.conf:1:", "not an integer"},
        {"log_level = loud\n", "log_level", "x.conf:1:", "debug, info, warn, error"},
        {"listen = 80800\n", "listen", "x.conf:1:", "host:port"},
        {"listen = localhost:99999\n", "listen", "x.conf:1:", "host:port"},
        {"listen = ::1:80\n", "listen", "x.conf:1:", "host:port"},
        {"state_dir =\n", "state_dir", "x.conf:1:", "length 0"},
        {"workers = 1\nworkers = 2\n", "workers", "x.conf:2:", "already set on line 1"},
        {"just words\n", "", "x.conf:1:", "key = value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        td_config c;
        td_config_defaults(&c);
        td_error e;
        ck_assert_int_eq(td_config_parse(&c, cases[i].text, "x.conf", &e), TD_EINVAL);
        ck_assert_msg(strcmp(e.field, cases[i].key) == 0, "case %zu: field %s", i, e.field);
        ck_assert_msg(strstr(e.message, cases[i].where) && strstr(e.message, cases[i].what) &&
                          (!*cases[i].key || strstr(e.message, cases[i].key)),
                      "case %zu: %s", i, e.message);
    }
    /* td_config_set leaves the config alone on error. */
    td_config c, before;
    td_config_defaults(&c);
    before = c;
    td_error e;
    ck_assert_int_eq(td_config_set(&c, "max_queued_jobs", "0", &e), TD_EINVAL);
    ck_assert_int_eq(td_config_set(&c, "listen", "nope", &e), TD_EINVAL);
    ck_assert_int_eq(td_config_set(&c, "nope", "1", &e), TD_EINVAL);
    ck_assert_str_eq(e.field, "nope");
    ck_assert_int_eq(memcmp(&c, &before, sizeof c), 0);
    ck_assert_int_eq(td_config_set(&c, "listen", "[::1]:0", &e), TD_OK);
    ck_assert_int_eq(td_config_set(&c, "listen", "localhost:8080", &e), TD_OK);
}
END_TEST

/* max_event_streams: 0 is half of max_connections; more than max_connections is refused
 * by td_config_finish, naming both keys. */
START_TEST(event_streams_key)
{
    unsetenv("TRAIND_TOKEN");
    td_config c;
    td_config_defaults(&c);
    td_error e;
    ck_assert_int_eq(c.max_event_streams, 0);
    ck_assert_int_eq(td_config_max_event_streams(&c), 256);
    ck_assert_int_eq(td_config_parse(&c, "max_connections = 16\n", "x.conf", &e), TD_OK);
    ck_assert_int_eq(td_config_max_event_streams(&c), 8);
    ck_assert_int_eq(td_config_set(&c, "max_connections", "1", &e), TD_OK);
    ck_assert_int_eq(td_config_max_event_streams(&c), 1);
    td_config_defaults(&c);
    ck_assert_int_eq(td_config_parse(&c, "max_event_streams = 4\n", "x.conf", &e), TD_OK);
    ck_assert_int_eq(td_config_max_event_streams(&c), 4);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_OK);
    ck_assert_int_eq(td_config_parse(&c, "max_connections = 3\n", "x.conf", &e), TD_OK);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_EINVAL);
    ck_assert_str_eq(e.field, "max_event_streams");
    ck_assert_ptr_nonnull(strstr(e.message,
                                 "max_event_streams: 4 is more than "
                                 "max_connections (3)"));
    ck_assert_int_eq(td_config_set(&c, "max_event_streams", "10001", &e), TD_EINVAL);
}
END_TEST

START_TEST(files_and_flags)
{
    unsetenv("TRAIND_TOKEN");
    const char *conf = temp_file(0,
                                 "listen = 127.0.0.1:7000\nworkers = 2\nstate_dir = /s\n"
                                 "max_queued_jobs = 5\n");
    td_config c;
    td_cli_action act;
    td_error e;
    /* The file alone. */
    ck_assert_int_eq(from_args(&c, &act, &e, "--config", conf, NULL, NULL, NULL, NULL), TD_OK);
    ck_assert_str_eq(c.listen, "127.0.0.1:7000");
    ck_assert_int_eq(c.workers, 2);
    ck_assert_int_eq(c.max_queued_jobs, 5);
    ck_assert_str_eq(c.config_path, conf);
    /* Flags win over the file, wherever they stand. */
    ck_assert_int_eq(from_args(&c, &act, &e, "--workers", "7", "--config", conf,
                               "--listen=127.0.0.1:0", "--state-dir=/t"),
                     TD_OK);
    ck_assert_str_eq(c.listen, "127.0.0.1:0");
    ck_assert_int_eq(c.workers, 7);
    ck_assert_str_eq(c.state_dir, "/t");
    ck_assert_int_eq(c.max_queued_jobs, 5);
    ck_assert_int_eq(act, TD_CLI_RUN);
    ck_assert_int_eq(
        from_args(&c, &act, &e, "--check-config", "--state-dir", "/u", NULL, NULL, NULL), TD_OK);
    ck_assert_int_eq(act, TD_CLI_CHECK);
    ck_assert_str_eq(c.state_dir, "/u");
    ck_assert_int_eq(from_args(&c, &act, &e, "--version", NULL, NULL, NULL, NULL, NULL), TD_OK);
    ck_assert_int_eq(act, TD_CLI_VERSION);
    ck_assert_int_eq(from_args(&c, &act, &e, "--help", "--bogus", NULL, NULL, NULL, NULL), TD_OK);
    ck_assert_int_eq(act, TD_CLI_HELP);

    /* Errors. */
    ck_assert_int_eq(from_args(&c, &act, &e, "--workers", "2000", NULL, NULL, NULL, NULL),
                     TD_EINVAL);
    ck_assert_str_eq(e.field, "workers");
    ck_assert_ptr_nonnull(strstr(e.message, "--workers"));
    ck_assert_ptr_nonnull(strstr(e.message, "out of range"));
    ck_assert_int_eq(from_args(&c, &act, &e, "--listen", NULL, NULL, NULL, NULL, NULL), TD_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "--listen needs a value"));
    ck_assert_int_eq(from_args(&c, &act, &e, "--frobnicate", NULL, NULL, NULL, NULL, NULL),
                     TD_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "--frobnicate"));
    ck_assert_int_eq(
        from_args(&c, &act, &e, "--config", "/nonexistent/traind.conf", NULL, NULL, NULL, NULL),
        TD_EIO);
    ck_assert_ptr_nonnull(strstr(e.message, "/nonexistent/traind.conf"));
    const char *bad = temp_file(1, "workers = 1\nmax_body_mb = 999999\n");
    ck_assert_int_eq(from_args(&c, &act, &e, "--config", bad, NULL, NULL, NULL, NULL), TD_EINVAL);
    ck_assert_str_eq(e.field, "max_body_mb");
    ck_assert_ptr_nonnull(strstr(e.message, ":2:"));
    unlink(conf);
    unlink(bad);
}
END_TEST

START_TEST(auth_token)
{
    td_config c;
    td_error e;
    td_config_defaults(&c);
    unsetenv("TRAIND_TOKEN");
    ck_assert_int_eq(td_config_finish(&c, &e), TD_OK);
    ck_assert_str_eq(c.auth_token, "");

    setenv("TRAIND_TOKEN", "from-the-env-1", 1);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_OK);
    ck_assert_str_eq(c.auth_token, "from-the-env-1");
    setenv("TRAIND_TOKEN", "short", 1);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "TRAIND_TOKEN"));
    setenv("TRAIND_TOKEN", "has a space", 1);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_EINVAL);

    /* The file wins over the environment; whitespace around the token is dropped. */
    setenv("TRAIND_TOKEN", "from-the-env-1", 1);
    const char *tok = temp_file(0, "  \n from-the-file-1 \n\n");
    snprintf(c.auth_token_file, sizeof c.auth_token_file, "%s", tok);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_OK);
    ck_assert_str_eq(c.auth_token, "from-the-file-1");
    unlink(tok);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_EIO);
    ck_assert_str_eq(e.field, "auth_token_file");
    ck_assert_ptr_nonnull(strstr(e.message, tok));
    const char *empty = temp_file(1, "\n");
    snprintf(c.auth_token_file, sizeof c.auth_token_file, "%s", empty);
    ck_assert_int_eq(td_config_finish(&c, &e), TD_EINVAL);
    unlink(empty);

    /* The token never shows in a dump. */
    c.auth_token_file[0] = '\0';
    ck_assert_int_eq(td_config_finish(&c, &e), TD_OK);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    td_config_dump(&c, f);
    fclose(f);
    ck_assert_ptr_null(strstr(text, "from-the-env-1"));
    ck_assert_ptr_nonnull(strstr(text, "bearer token configured"));
    free(text);
}
END_TEST

/* config/traind.conf documents every key with its default, commented out; uncommented it
 * parses to exactly the defaults. */
START_TEST(shipped_config_matches_table)
{
    unsetenv("TRAIND_TOKEN");
    FILE *f = fopen("config/traind.conf", "r");
    ck_assert_msg(f != NULL, "config/traind.conf not found (run from the repository root)");
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    td_config c, d;
    td_error e;
    td_config_defaults(&c);
    ck_assert_msg(td_config_parse(&c, text, "traind.conf", &e) == TD_OK, "%s", e.message);

    char uncommented[16384] = "";
    const char *name, *def;
    for (int i = 0; td_config_key(i, &name, &def); i++) {
        char line[256];
        snprintf(line, sizeof line, "\n# %s =%s%s\n", name, *def ? " " : "", def);
        ck_assert_msg(strstr(text, line) != NULL, "traind.conf lacks \"%s\"", line + 1);
        strcat(uncommented, line + 3);
    }
    td_config_defaults(&d);
    ck_assert_msg(td_config_parse(&c, uncommented, "uncommented", &e) == TD_OK, "%s", e.message);
    ck_assert_int_eq(memcmp(&c, &d, sizeof c), 0);
}
END_TEST

START_TEST(log_lines)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    td_log_set_fd(p[1]);
    td_log_set_level(TD_LOG_INFO);
    td_log(TD_LOG_DEBUG, "test", "hidden");
    td_log(TD_LOG_INFO, "test", "hello %d", 42);
    td_log(TD_LOG_ERROR, "http", "bad\npath\r");
    td_log_set_level(TD_LOG_ERROR);
    td_log(TD_LOG_WARN, "test", "hidden too");
    td_log_set_fd(2);
    close(p[1]);
    char buf[1024];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    /* 2026-11-28T19:30:00Z info test: hello 42 */
    ck_assert_msg(strlen(buf) > 21 && buf[4] == '-' && buf[10] == 'T' && buf[19] == 'Z' &&
                      buf[20] == ' ',
                  "%s", buf);
    ck_assert_int_eq(strncmp(buf + 21, "info test: hello 42\n", 20), 0);
    char *second = strchr(buf, '\n') + 1;
    ck_assert_str_eq(second + 21, "error http: bad?path?\n");
    ck_assert_ptr_null(strstr(buf, "hidden"));

    td_log_level lv;
    ck_assert_int_eq(td_log_level_parse("debug", &lv), 0);
    ck_assert_int_eq(lv, TD_LOG_DEBUG);
    ck_assert_int_eq(td_log_level_parse("Warning", &lv), 0);
    ck_assert_int_eq(lv, TD_LOG_WARN);
    ck_assert_int_eq(td_log_level_parse("verbose", &lv), -1);
    ck_assert_str_eq(td_log_level_name(TD_LOG_ERROR), "error");
}
END_TEST

/* Binds a datagram socket at addr (abstract when it starts with '@'). */
static int notify_listener(const char *addr)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    size_t len = strlen(addr);
    memcpy(sa.sun_path, addr, len);
    if (addr[0] == '@')
        sa.sun_path[0] = '\0';
    else
        len++;
    ck_assert_int_eq(
        bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
        0);
    return fd;
}

START_TEST(sd_notify)
{
    td_error e;
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(td_notify("READY=1", &e), TD_OK); /* not under systemd: no-op */

    char addr[64], buf[256];
    snprintf(addr, sizeof addr, "@traind-test-%d", (int)getpid());
    int fd = notify_listener(addr);
    setenv("NOTIFY_SOCKET", addr, 1);
    ck_assert_int_eq(td_notify("READY=1", &e), TD_OK);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    ck_assert_int_eq(n, 7);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "READY=1");
    ck_assert_int_eq(td_notifyf(&e, "STATUS=listening on %s:%d", "127.0.0.1", 8080), TD_OK);
    n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "STATUS=listening on 127.0.0.1:8080");
    close(fd);

    snprintf(addr, sizeof addr, "/tmp/traind-notify-%d", (int)getpid());
    unlink(addr);
    fd = notify_listener(addr);
    setenv("NOTIFY_SOCKET", addr, 1);
    ck_assert_int_eq(td_notify("STOPPING=1", &e), TD_OK);
    n = recv(fd, buf, sizeof buf - 1, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "STOPPING=1");
    close(fd);
    unlink(addr);
    ck_assert_int_eq(td_notify("STOPPING=1", &e), TD_EIO); /* nobody listening */

    setenv("NOTIFY_SOCKET", "relative/path", 1);
    ck_assert_int_eq(td_notify("READY=1", &e), TD_EINVAL);
}
END_TEST

Suite *suite_config(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, file_parsing);
    tcase_add_test(tc, bounds_and_errors);
    tcase_add_test(tc, event_streams_key);
    tcase_add_test(tc, files_and_flags);
    tcase_add_test(tc, auth_token);
    tcase_add_test(tc, shipped_config_matches_table);
    suite_add_tcase(s, tc);
    TCase *tu = tcase_create("util");
    tcase_add_test(tu, log_lines);
    tcase_add_test(tu, sd_notify);
    suite_add_tcase(s, tu);
    return s;
}
