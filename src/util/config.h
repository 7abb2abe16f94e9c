/* config.h — the daemon's configuration: embedded defaults, a `key = value` file, and
 * command-line flags, in that order of precedence (flags win).
 *
 * One table in config.c (name, type, default, min, max, field) is the single source of
 * every key's default and bounds; the defaults, the file parser, the flags, the --help
 * text and config/traind.conf's documentation all follow it.
 *
 * File format: one `key = value` per line; blank lines and lines whose first non-blank
 * character is '#' are ignored, as is a " # comment" after a value (a '#' preceded by
 * a blank, or one that begins the value: "key =#x" sets key to ""). Values are taken
 * verbatim after trimming (no quoting), so td_config_dump's output reads back as the same
 * settings. Unknown keys, keys set
 * twice, malformed numbers and out-of-range values are errors naming the line and key. */
#ifndef TRAIND_CONFIG_H
#define TRAIND_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "traind/status.h"

#define TD_CONFIG_STR_MAX 1024
#define TD_NODE_NAME_MAX 256 /* = TD_NODE_MAX of store.h */
#define TD_TOKEN_MAX 256

typedef struct td_config {
    char listen[256]; /* "host:port" ("[::1]:port"); port 0 = ephemeral */
    int workers;      /* training threads; 0 = one per core */
    char state_dir[TD_CONFIG_STR_MAX];
    char auth_token_file[TD_CONFIG_STR_MAX]; /* "" = none */
    char tokens_file[TD_CONFIG_STR_MAX];     /* named tokens with scopes (http/auth.h); "" = none */
    char tls_cert_file[TD_CONFIG_STR_MAX];   /* PEM; with tls_key_file: HTTPS only */
    char tls_key_file[TD_CONFIG_STR_MAX];
    int max_body_mb;           /* request body limit, MiB */
    int max_queued_jobs;       /* queue length before 429 */
    int checkpoint_interval_s; /* at most one checkpoint per interval; 0 = every epoch */
    int64_t history_max_rows;  /* stored history records per job (thinned past it) */
    int log_level;             /* a td_log_level */
    int max_connections;
    int max_event_streams;    /* 0 = half of max_connections */
    int connection_timeout_s; /* idle / slow-client timeout */
    int64_t max_dataset_rows;
    int64_t max_dataset_features;
    int disk_reserve_mb;              /* space kept for deletes on a full disk, MiB */
    int64_t max_memory_mb;            /* memory budget, MiB; 0 = half of physical RAM */
    char store[TD_CONFIG_STR_MAX];    /* libpq URI of a shared store; "" = SQLite */
    char node_name[TD_NODE_NAME_MAX]; /* "" = hostname:port */
    int lease_s;                      /* shared store: job lease, seconds */

    /* Resolved by td_config_finish (not keys of the file): */
    char auth_token[TD_TOKEN_MAX];       /* from auth_token_file, else $TRAIND_TOKEN; "" = none */
    char config_path[TD_CONFIG_STR_MAX]; /* the file loaded, "" = embedded defaults only */
} td_config;

/* What the command line asks for. */
typedef enum {
    TD_CLI_RUN = 0, /* start the daemon */
    TD_CLI_CHECK,   /* --check-config: validate, print the effective config, exit */
    TD_CLI_VERSION, /* --version */
    TD_CLI_HELP     /* --help */
} td_cli_action;

/* Overwrites c with the embedded defaults (no file, no environment). */
void td_config_defaults(td_config *c);

/* Sets one key from its text value, with the table's parsing and bounds. On error c is
 * unaltered and err names the key. */
td_status td_config_set(td_config *c, const char *key, const char *value, td_error *err);

/* Applies `key = value` text over c. origin names the source in messages ("file.conf");
 * errors read "origin:LINE: ..." with err->field = the key. On error c may be partially
 * updated. */
td_status td_config_parse(td_config *c, const char *text, const char *origin, td_error *err);

/* Reads path and applies it with td_config_parse; records the path in c->config_path. */
td_status td_config_load_file(td_config *c, const char *path, td_error *err);

/* Checks the keys against each other (max_event_streams <= max_connections; the two TLS
 * files both or neither), then resolves what depends on the environment: the auth token
 * from auth_token_file (the file's content, surrounding whitespace trimmed; a file over
 * 64 KiB is refused, never cut) or else from $TRAIND_TOKEN. A token must be 8..255
 * visible ASCII characters. tokens_file is read by http/auth.h, not here. */
td_status td_config_finish(td_config *c, td_error *err);

/* The whole start-up sequence: defaults, then --config FILE if given, then the flags
 * --listen ADDR, --state-dir DIR, --workers N (also as --flag=value), then
 * td_config_finish. *action tells what was asked (--check-config, --version, --help;
 * with --help/--version nothing is loaded). Unknown flags are errors. */
td_status td_config_from_args(td_config *c, int argc, char *const argv[], td_cli_action *action,
                              td_error *err);

/* Number of worker threads to run: workers, or the number of online cores when 0. */
int td_config_workers(const td_config *c);

/* Request body limit in bytes. */
uint64_t td_config_max_body(const td_config *c);

/* Event streams allowed at once: max_event_streams, or half of max_connections when 0. */
int td_config_max_event_streams(const td_config *c);
/* Memory budget in bytes: max_memory_mb, or half of physical RAM when 0. */
uint64_t td_config_max_memory(const td_config *c);

/* Prints every key as `key = value` (the token is never printed). */
void td_config_dump(const td_config *c, FILE *out);

/* Prints the flags and, from the table, every key with its default and bounds. */
void td_config_usage(FILE *out, const char *prog);

/* Iterates the table (for tests and docs): returns 0 past the end. *def gets the default
 * as text ("" for none). */
int td_config_key(int i, const char **name, const char **def);

#endif
