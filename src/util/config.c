/* config.c — the configuration table, the `key = value` parser and the command line. */
#include "util/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/budget.h"
#include "util/log.h"
#include "util/text.h"

typedef enum {
    CFG_INT,     /* int field */
    CFG_I64,     /* int64_t field */
    CFG_STR,     /* char[] field; min/max bound the length */
    CFG_LISTEN,  /* char[] field holding "host:port" */
    CFG_LOGLEVEL /* int field holding a td_log_level */
} cfg_type;

typedef struct cfg_key {
    const char *name;
    cfg_type type;
    const char *def;  /* default, as the text a config file would hold */
    int64_t min, max; /* numeric bounds, or length bounds of a string */
    size_t off, size; /* the td_config field */
    const char *help;
} cfg_key;

#define FIELD(f) offsetof(td_config, f), sizeof(((td_config *)0)->f)

/* The single source of defaults and bounds. */
static const cfg_key keys[] = {
    {"listen", CFG_LISTEN, "127.0.0.1:8080", 3, 255, FIELD(listen),
     "address and port to listen on (host:port, [v6]:port, or a port alone for 127.0.0.1; port 0 "
     "picks a free one)"},
    {"workers", CFG_INT, "0", 0, 1024, FIELD(workers), "training worker threads; 0 = one per core"},
    {"state_dir", CFG_STR, "./state", 1, TD_CONFIG_STR_MAX - 1, FIELD(state_dir),
     "directory for the database, datasets and checkpoints"},
    {"auth_token_file", CFG_STR, "", 0, TD_CONFIG_STR_MAX - 1, FIELD(auth_token_file),
     "file holding the bearer token for /v1 and /metrics (else $TRAIND_TOKEN; empty = no auth)"},
    {"tokens_file", CFG_STR, "", 0, TD_CONFIG_STR_MAX - 1, FIELD(tokens_file),
     "file of named tokens, one `NAME SCOPE TOKEN` a line, SCOPE read or write (reloaded on "
     "SIGHUP)"},
    {"tls_cert_file", CFG_STR, "", 0, TD_CONFIG_STR_MAX - 1, FIELD(tls_cert_file),
     "PEM certificate (chain); with tls_key_file the port speaks only HTTPS"},
    {"tls_key_file", CFG_STR, "", 0, TD_CONFIG_STR_MAX - 1, FIELD(tls_key_file),
     "PEM private key of tls_cert_file"},
    {"max_body_mb", CFG_INT, "256", 1, 16384, FIELD(max_body_mb),
     "largest request body, MiB (413 past it)"},
    {"max_queued_jobs", CFG_INT, "64", 1, 1000000, FIELD(max_queued_jobs),
     "jobs waiting for a worker before new ones get 429"},
    {"checkpoint_interval_s", CFG_INT, "30", 0, 86400, FIELD(checkpoint_interval_s),
     "seconds between checkpoints of a running job (at most); 0 = after every epoch"},
    {"history_max_rows", CFG_I64, "100000", 10, 1000000000, FIELD(history_max_rows),
     "per-epoch records stored per job; past it history is thinned (every 2nd epoch, "
     "4th, ...; first, best, latest kept)"},
    {"log_level", CFG_LOGLEVEL, "info", TD_LOG_DEBUG, TD_LOG_ERROR, FIELD(log_level),
     "debug | info | warn | error"},
    {"max_connections", CFG_INT, "512", 1, 10000, FIELD(max_connections),
     "simultaneous HTTP connections (8 more are kept for /healthz and /readyz)"},
    {"max_event_streams", CFG_INT, "0", 0, 10000, FIELD(max_event_streams),
     "open GET /v1/jobs/{id}/events streams before 503; 0 = half of max_connections"},
    {"connection_timeout_s", CFG_INT, "30", 1, 3600, FIELD(connection_timeout_s),
     "seconds a connection may stay idle, or take to send its headers; after it a body "
     "must average 64 KiB/s"},
    {"max_dataset_rows", CFG_I64, "10000000", 1, 1000000000, FIELD(max_dataset_rows),
     "largest number of samples in a dataset"},
    {"max_dataset_features", CFG_I64, "100000", 1, 10000000, FIELD(max_dataset_features),
     "largest number of features in a dataset"},
    {"disk_reserve_mb", CFG_INT, "8", 0, 4096, FIELD(disk_reserve_mb),
     "MiB kept allocated in state_dir/reserve.bin so a full disk can still be emptied"},
    {"max_memory_mb", CFG_I64, "0", 0, 1 << 30, FIELD(max_memory_mb),
     "memory for running jobs (estimated) and request bodies being read, MiB; a job over "
     "it alone gets 422, jobs that only fit one after another wait queued; 0 = half of "
     "physical RAM"},
    {"store", CFG_STR, "", 0, TD_CONFIG_STR_MAX - 1, FIELD(store),
     "shared store: a libpq URI (postgresql://user@host:port/db?sslmode=verify-full) whose "
     "database many daemons share as store and job queue; empty = SQLite in state_dir"},
    {"node_name", CFG_STR, "", 0, TD_NODE_NAME_MAX - 1, FIELD(node_name),
     "this daemon's name in a shared store (jobs show the node running them); empty = "
     "hostname:port"},
    {"lease_s", CFG_INT, "15", 2, 3600, FIELD(lease_s),
     "shared store: seconds a job's lease lasts unless renewed (heartbeat every lease_s/3); "
     "a daemon lost for longer has its jobs resumed elsewhere"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const cfg_key *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!*s) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s) return -1;
    *out = v;
    return 0;
}

/* "host:port" or "[v6]:port" with a numeric port 0..65535 and a non-empty host. */
static int listen_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s) return 0;
    if (s[0] == '[' && colon[-1] != ']') return 0;
    if (s[0] == '[' && colon - s < 3) return 0;
    if (s[0] != '[' && memchr(s, ':', (size_t)(colon - s))) return 0; /* bare v6 */
    int64_t port;
    if (parse_i64(colon + 1, &port) || port < 0 || port > 65535) return 0;
    for (const char *p = s; p < colon; p++)
        if (isspace((unsigned char)*p)) return 0;
    return 1;
}

/* A string key's value, its length checked; c unaltered on error. */
static td_status set_str(td_config *c, const cfg_key *k, const char *value, td_error *err)
{
    size_t n = strlen(value);
    if ((int64_t)n < k->min || (int64_t)n > k->max || n >= k->size)
        return td_fail(err, TD_EINVAL, k->name,
                       "%s: length %zu is out of range [%" PRId64 ", %" PRId64 "]", k->name, n,
                       k->min, k->max);
    memcpy((char *)c + k->off, value, n + 1);
    return TD_OK;
}

/* Applies one key; c unaltered on error. */
static td_status set_key(td_config *c, const cfg_key *k, const char *value, td_error *err)
{
    char *field = (char *)c + k->off;
    switch (k->type) {
    case CFG_INT:
    case CFG_I64: {
        int64_t v;
        if (parse_i64(value, &v))
            return td_fail(err, TD_EINVAL, k->name, "%s: \"%s\" is not an integer", k->name, value);
        if (v < k->min || v > k->max)
            return td_fail(err, TD_EINVAL, k->name,
                           "%s: %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", k->name, v,
                           k->min, k->max);
        if (k->type == CFG_INT) {
            int iv = (int)v;
            memcpy(field, &iv, sizeof iv);
        } else {
            memcpy(field, &v, sizeof v);
        }
        return TD_OK;
    }
    case CFG_LISTEN: {
        /* "8081" and ":8081" are the loopback address's port 8081 */
        char full[64];
        const char *port = value[0] == ':' ? value + 1 : value;
        int64_t pv;
        if (!parse_i64(port, &pv) && pv >= 0 && pv <= 65535 && *port != '+' && *port != '-') {
            snprintf(full, sizeof full, "127.0.0.1:%lld", (long long)pv);
            value = full;
        }
        if (!listen_ok(value))
            return td_fail(err, TD_EINVAL, k->name,
                           "%s: \"%s\" is not host:port (e.g. "
                           "127.0.0.1:8080, [::1]:8080, or a port alone: 8080)",
                           k->name, value);
        return set_str(c, k, value, err);
    }
    case CFG_STR: return set_str(c, k, value, err);
    case CFG_LOGLEVEL: {
        td_log_level lv;
        if (td_log_level_parse(value, &lv))
            return td_fail(err, TD_EINVAL, k->name,
                           "%s: \"%s\" is not one of debug, info, "
                           "warn, error",
                           k->name, value);
        int iv = (int)lv;
        memcpy(field, &iv, sizeof iv);
        return TD_OK;
    }
    }
    return td_fail(err, TD_EINTERNAL, k->name, "%s: bad table entry", k->name);
}

void td_config_defaults(td_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++) {
        td_status st = set_key(c, &keys[i], keys[i].def, NULL);
        (void)st;
        /* A default outside its own bounds is a programmer error in the table. */
    }
}

td_status td_config_set(td_config *c, const char *key, const char *value, td_error *err)
{
    const cfg_key *k = find_key(key);
    if (!k) return td_fail(err, TD_EINVAL, key, "unknown key \"%s\"", key);
    return set_key(c, k, value, err);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

td_status td_config_parse(td_config *c, const char *text, const char *origin, td_error *err)
{
    int seen[NKEYS] = {0};
    td_status st = TD_OK;
    const char *p = text;
    char line[4096];
    for (int lineno = 1; *p; lineno++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n >= sizeof line)
            return td_fail(err, TD_EINVAL, "", "%s:%d: line too long", origin, lineno);
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + (nl ? 1 : 0);

        char *s = trim(line);
        if (!*s || *s == '#') continue;
        for (char *h = s + 1; *h; h++) /* " # comment" after a value */
            if (*h == '#' && isspace((unsigned char)h[-1])) {
                *h = '\0';
                break;
            }
        char *eq = strchr(s, '=');
        if (!eq)
            return td_fail(err, TD_EINVAL, "", "%s:%d: expected \"key = value\", got \"%s\"",
                           origin, lineno, trim(s));
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        if (*value == '#') /* "key = # comment" and "key =# comment" alike: no value */
            *value = '\0';
        const cfg_key *k = find_key(key);
        if (!k)
            return td_fail(err, TD_EINVAL, key, "%s:%d: unknown key \"%s\"", origin, lineno, key);
        size_t ki = (size_t)(k - keys);
        if (seen[ki])
            return td_fail(err, TD_EINVAL, key, "%s:%d: %s is already set on line %d", origin,
                           lineno, key, seen[ki]);
        seen[ki] = lineno;
        td_error e2;
        st = set_key(c, k, value, &e2);
        if (st != TD_OK) return td_fail(err, st, key, "%s:%d: %s", origin, lineno, e2.message);
    }
    return TD_OK;
}

td_status td_config_load_file(td_config *c, const char *path, td_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return td_fail(err, TD_EIO, "config", "cannot open config file %s: %s", path,
                       strerror(errno));
    td_status st = TD_OK;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (1u << 20)) {
                st = td_fail(err, TD_EINVAL, "config", "config file %s is larger than 1 MiB", path);
                goto done;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                st = td_fail(err, TD_ENOMEM, "config", "out of memory reading %s", path);
                goto done;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, 4096, f);
        len += r;
        if (r < 4096) break;
    }
    if (ferror(f)) {
        st = td_fail(err, TD_EIO, "config", "cannot read config file %s", path);
        goto done;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        st = td_fail(err, TD_EINVAL, "config", "config file %s contains a NUL byte", path);
        goto done;
    }
    st = td_config_parse(c, buf, path, err);
    if (st == TD_OK) snprintf(c->config_path, sizeof c->config_path, "%s", path);
done:
    free(buf);
    fclose(f);
    return st;
}

static td_status token_check(const char *tok, const char *src, td_error *err)
{
    size_t n = strlen(tok);
    if (n < 8 || n >= TD_TOKEN_MAX)
        return td_fail(err, TD_EINVAL, "auth_token_file",
                       "the token from %s must be 8..%d "
                       "characters long, it has %zu",
                       src, TD_TOKEN_MAX - 1, n);
    for (size_t i = 0; i < n; i++)
        if (tok[i] < 0x21 || tok[i] > 0x7e)
            return td_fail(err, TD_EINVAL, "auth_token_file",
                           "the token from %s must be "
                           "visible ASCII characters (no spaces)",
                           src);
    return TD_OK;
}

td_status td_config_finish(td_config *c, td_error *err)
{
    if (c->max_event_streams > c->max_connections)
        return td_fail(err, TD_EINVAL, "max_event_streams",
                       "max_event_streams: %d is more than "
                       "max_connections (%d)",
                       c->max_event_streams, c->max_connections);
    if (!c->tls_cert_file[0] != !c->tls_key_file[0])
        return td_fail(err, TD_EINVAL, c->tls_cert_file[0] ? "tls_key_file" : "tls_cert_file",
                       "tls_cert_file and tls_key_file go together: set both (HTTPS) or "
                       "neither (plain HTTP)");
    c->auth_token[0] = '\0';
    if (c->auth_token_file[0]) {
        /* The whole file, however much blank surrounds the token: a fixed-size read
         * would keep a cut token (300 blanks + a token left 19 of its characters). */
        char *buf;
        size_t n;
        td_status st =
            td_read_small_file(c->auth_token_file, 64 * 1024, "auth_token_file", &buf, &n, err);
        if (st != TD_OK) return st;
        char *t = trim(buf);
        st = token_check(t, c->auth_token_file, err);
        if (st == TD_OK) snprintf(c->auth_token, sizeof c->auth_token, "%s", t);
        free(buf);
        return st;
    }
    const char *env = getenv("TRAIND_TOKEN");
    if (env && *env) {
        td_status st = token_check(env, "$TRAIND_TOKEN", err);
        if (st != TD_OK) return st;
        snprintf(c->auth_token, sizeof c->auth_token, "%s", env);
    }
    return TD_OK;
}

/* Keys a command-line flag sets: --<key> with '-' for '_' (flag_of). */
static const char *const flag_keys[] = {"listen", "state_dir", "workers"};
#define NFLAGKEYS (sizeof flag_keys / sizeof flag_keys[0])

/* The flag of key ("state_dir": "--state-dir") in out. */
static const char *flag_of(char out[32], const char *key)
{
    snprintf(out, 32, "--%s", key);
    for (char *p = out; *p; p++)
        if (*p == '_') *p = '-';
    return out;
}

/* Matches argv[*i] against "--name" / "--name=value"; *val gets the value (consuming the
 * next argument when needed). Returns 1 on a match, 0 if not this flag, -1 when the
 * value is missing. */
static int flag_value(int argc, char *const argv[], int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) return -1;
    *val = argv[++*i];
    return 1;
}

td_status td_config_from_args(td_config *c, int argc, char *const argv[], td_cli_action *action,
                              td_error *err)
{
    td_config_defaults(c);
    *action = TD_CLI_RUN;
    const char *config_file = NULL;
    const char *set_val[NFLAGKEYS] = {NULL};

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int r;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *action = TD_CLI_HELP;
            return TD_OK;
        }
        if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            *action = TD_CLI_VERSION;
            return TD_OK;
        }
        if (strcmp(a, "--check-config") == 0) {
            *action = TD_CLI_CHECK;
            continue;
        }
        if ((r = flag_value(argc, argv, &i, "--config", &v)) != 0) {
            if (r < 0) return td_fail(err, TD_EINVAL, "config", "--config needs a file name");
            config_file = v;
            continue;
        }
        size_t f;
        char flag[32];
        for (f = 0; f < NFLAGKEYS; f++) {
            r = flag_value(argc, argv, &i, flag_of(flag, flag_keys[f]), &v);
            if (r < 0) return td_fail(err, TD_EINVAL, flag_keys[f], "%s needs a value", flag);
            if (r > 0) {
                set_val[f] = v;
                break;
            }
        }
        if (f == NFLAGKEYS)
            return td_fail(err, TD_EINVAL, "", "unknown option \"%s\" (see --help)", a);
    }

    td_status st;
    if (config_file && (st = td_config_load_file(c, config_file, err)) != TD_OK) return st;
    for (size_t f = 0; f < NFLAGKEYS; f++) {
        if (!set_val[f]) continue;
        td_error e2;
        char flag[32];
        if ((st = td_config_set(c, flag_keys[f], set_val[f], &e2)) != TD_OK)
            return td_fail(err, st, flag_keys[f], "%s: %s", flag_of(flag, flag_keys[f]),
                           e2.message);
    }
    return td_config_finish(c, err);
}

int td_config_workers(const td_config *c)
{
    if (c->workers > 0) return c->workers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
}

uint64_t td_config_max_body(const td_config *c) { return (uint64_t)c->max_body_mb << 20; }

int td_config_max_event_streams(const td_config *c)
{
    if (c->max_event_streams > 0) return c->max_event_streams;
    return c->max_connections > 1 ? c->max_connections / 2 : 1;
}

uint64_t td_config_max_memory(const td_config *c)
{
    if (c->max_memory_mb > 0) return (uint64_t)c->max_memory_mb << 20;
    uint64_t half = td_budget_physical() / 2;
    return half > 0 ? half : (uint64_t)4 << 30; /* unknown RAM: 4 GiB */
}

void td_config_dump(const td_config *c, FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key *k = &keys[i];
        const char *field = (const char *)c + k->off;
        fprintf(out, "%s = ", k->name);
        switch (k->type) {
        case CFG_INT: {
            int v;
            memcpy(&v, field, sizeof v);
            fprintf(out, "%d", v);
            break;
        }
        case CFG_I64: {
            int64_t v;
            memcpy(&v, field, sizeof v);
            fprintf(out, "%" PRId64, v);
            break;
        }
        case CFG_STR:
        case CFG_LISTEN: fputs(field, out); break;
        case CFG_LOGLEVEL: {
            int v;
            memcpy(&v, field, sizeof v);
            fputs(td_log_level_name((td_log_level)v), out);
            break;
        }
        }
        fputc('\n', out);
    }
    fprintf(out, "# auth: %s\n", c->auth_token[0] ? "bearer token configured" : "none");
}

void td_config_usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [--config FILE] [--listen ADDR] [--state-dir DIR] [--workers N]\n"
            "       %s --check-config [...] | --version | --help\n\n"
            "  --config FILE    read `key = value` settings from FILE (default: none)\n"
            "  --listen ADDR    override `listen`\n"
            "  --state-dir DIR  override `state_dir`\n"
            "  --workers N      override `workers`\n"
            "  --check-config   validate the configuration, print it and exit\n"
            "  --version        print the version and exit\n\n"
            "Configuration keys (default, bounds):\n",
            prog, prog);
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_key *k = &keys[i];
        fprintf(out, "  %-22s %s\n  %-22s default \"%s\"", k->name, k->help, "", k->def);
        if (k->type == CFG_INT || k->type == CFG_I64)
            fprintf(out, ", %" PRId64 "..%" PRId64, k->min, k->max);
        fputc('\n', out);
    }
    fprintf(out, "\nThe bearer token may also come from the TRAIND_TOKEN environment variable.\n");
}

int td_config_key(int i, const char **name, const char **def)
{
    if (i < 0 || (size_t)i >= NKEYS) return 0;
    if (name) *name = keys[i].name;
    if (def) *def = keys[i].def;
    return 1;
}
