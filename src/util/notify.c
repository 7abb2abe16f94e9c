/* notify.c — sd_notify(3) over a raw AF_UNIX datagram. */
#include "util/notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

td_status td_notify(const char *state, td_error *err)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return TD_OK;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof sa.sun_path)
        return td_fail(err, TD_EINVAL, "NOTIFY_SOCKET", "unsupported NOTIFY_SOCKET \"%s\"", path);
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: no terminating NUL counted */
    else
        len++; /* include the NUL of a filesystem path */
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return td_fail(err, TD_EIO, NULL, "notify socket: %s", strerror(errno));
    size_t n = strlen(state);
    ssize_t w;
    do
        w = sendto(fd, state, n, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    while (w < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (w < 0 || (size_t)w != n)
        return td_fail(err, TD_EIO, NULL, "notify %s: %s", path,
                       w < 0 ? strerror(e) : "short send");
    return TD_OK;
}

td_status td_notifyf(td_error *err, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return td_notify(buf, err);
}
