/* log.c — leveled one-line logging to stderr.
 *
 * DESIGN: any thread may log. The threshold and the output fd are atomics read without a
 * lock; a line is formatted into a stack buffer and emitted with one write(2), which the
 * kernel keeps whole for a pipe or journald stream up to PIPE_BUF bytes (longer lines are
 * truncated to fit, so no lock is needed either). */
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096 /* == PIPE_BUF on Linux */

static atomic_int g_level = TD_LOG_INFO;
static atomic_int g_fd = 2;
static pthread_once_t g_journal_once = PTHREAD_ONCE_INIT;
static int g_journal; /* 1: stderr is connected to journald */

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char level_prio[] = {'7', '6', '4', '3'}; /* syslog priorities */

void td_log_set_level(td_log_level level)
{
    if (level < TD_LOG_DEBUG) level = TD_LOG_DEBUG;
    if (level > TD_LOG_ERROR) level = TD_LOG_ERROR;
    atomic_store(&g_level, (int)level);
}


const char *td_log_level_name(td_log_level level)
{
    if (level < TD_LOG_DEBUG || level > TD_LOG_ERROR) return "?";
    return level_names[level];
}

int td_log_level_parse(const char *name, td_log_level *out)
{
    if (!name) return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (td_log_level)i;
            return 0;
        }
    if (strcasecmp(name, "warning") == 0) {
        *out = TD_LOG_WARN;
        return 0;
    }
    return -1;
}

void td_log_set_fd(int fd) { atomic_store(&g_fd, fd); }

/* journald sets JOURNAL_STREAM=<dev>:<ino> of the stream it connected to stderr. */
static void detect_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    struct stat st;
    unsigned long long dev, ino;
    if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
        (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
        g_journal = 1;
}

void td_logv(td_log_level level, const char *component, const char *fmt, va_list ap)
{
    if ((int)level < atomic_load(&g_level)) return;
    if (level < TD_LOG_DEBUG || level > TD_LOG_ERROR) level = TD_LOG_ERROR;
    pthread_once(&g_journal_once, detect_journal);
    int fd = atomic_load(&g_fd);

    char line[LOG_LINE_MAX];
    size_t n = 0;
    if (g_journal && fd == 2) {
        line[n++] = '<';
        line[n++] = level_prio[level];
        line[n++] = '>';
    }
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    n += strftime(line + n, sizeof line - n, "%Y-%m-%dT%H:%M:%SZ ", &tm);
    int k = snprintf(line + n, sizeof line - n, "%s %s: ", level_names[level],
                     component ? component : "-");
    if (k > 0) n += (size_t)k < sizeof line - n ? (size_t)k : sizeof line - n - 1;
    size_t msg_at = n;
    k = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (k > 0) n += (size_t)k < sizeof line - n ? (size_t)k : sizeof line - n - 1;
    for (size_t i = msg_at; i < n; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) line[i] = '?';
    }
    if (n >= sizeof line - 1) n = sizeof line - 2; /* room for the newline */
    line[n++] = '\n';

    const char *p = line;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break; /* nowhere to report a failing log */
        p += w;
        n -= (size_t)w;
    }
}

void td_log(td_log_level level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    td_logv(level, component, fmt, ap);
    va_end(ap);
}
