/* log.h — one line per event on stderr, with a level.
 *
 *   2026-11-28T19:30:00Z info http: listening on 127.0.0.1:8080
 *
 * Lines below the threshold (td_log_set_level) are dropped. Every line is written with a
 * single write(2), so lines from concurrent threads never interleave; control characters
 * in the message (e.g. a newline inside a client-supplied path) are replaced by '?' so
 * that one event is always one line. Under journald (stderr is $JOURNAL_STREAM) each line
 * is prefixed by its syslog priority ("<6>"), which journald strips and records. */
#ifndef TRAIND_LOG_H
#define TRAIND_LOG_H

#include <stdarg.h>

typedef enum { TD_LOG_DEBUG = 0, TD_LOG_INFO, TD_LOG_WARN, TD_LOG_ERROR } td_log_level;

/* Sets the threshold (default TD_LOG_INFO). Thread-safe. */
void td_log_set_level(td_log_level level);

/* "debug", "info", "warn", "error". */
const char *td_log_level_name(td_log_level level);
/* Parses a level name (also accepts "warning"); returns 0 on success, -1 if unknown
 * (*out unaltered). */
int td_log_level_parse(const char *name, td_log_level *out);

/* Redirects output to fd (default 2). For tests; not meant to change while logging. */
void td_log_set_fd(int fd);

/* Logs one event. component is a short word ("http", "main", "store"). */
void td_log(td_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void td_logv(td_log_level level, const char *component, const char *fmt, va_list ap);

#endif
