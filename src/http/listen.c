/* listen.c — listen addresses: "host:port" / "[v6]:port" parsed and resolved, the
 * loopback test, and the listening socket of the server (server.h, listen.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/listen.h"
#include "http/server.h"

/* Splits "host:port" / "[v6]:port" into host and port strings. */
static int split_listen(const char *listen, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1]) return -1;
    const char *h = listen, *he = colon;
    if (*h == '[') {
        if (he[-1] != ']') return -1;
        h++, he--;
    } else if (memchr(h, ':', (size_t)(he - h))) {
        return -1;
    }
    if (he <= h || (size_t)(he - h) >= hlen || strlen(colon + 1) >= plen) return -1;
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    strcpy(port, colon + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    if (atol(port) > 65535) return -1;
    return 0;
}

static td_status resolve(const char *listen, struct addrinfo **res, td_error *err)
{
    char host[256], port[16];
    if (!listen || split_listen(listen, host, sizeof host, port, sizeof port))
        return td_fail(err, TD_EINVAL, "listen", "listen address \"%s\" is not host:port",
                       listen ? listen : "");
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, res);
    if (rc != 0)
        return td_fail(err, TD_EINVAL, "listen", "cannot resolve listen address \"%s\": %s", listen,
                       gai_strerror(rc));
    return TD_OK;
}

td_status td_listen_parse(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
                          td_error *err)
{
    struct addrinfo *res;
    td_status st = resolve(listen, &res, err);
    if (st != TD_OK) return st;
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return TD_OK;
}

static int addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
        if (IN6_IS_ADDR_V4MAPPED(a)) return a->s6_addr[12] == 127;
    }
    return 0;
}

int td_listen_is_loopback(const char *listen)
{
    struct addrinfo *res;
    if (resolve(listen, &res, NULL) != TD_OK) return 0;
    int all = 1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        all &= addr_is_loopback(ai->ai_addr);
    freeaddrinfo(res);
    return all;
}

static void format_address(const struct sockaddr_storage *ss, char *out, size_t n, int *port)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        *port = ntohs(in6->sin6_port);
        snprintf(out, n, "[%s]:%d", ip, *port);
    } else {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        *port = ntohs(in->sin_port);
        snprintf(out, n, "%s:%d", ip, *port);
    }
}

int td_listen_open(const char *listen_addr, int *v6, char *address, size_t address_len, int *port,
                   td_error *err)
{
    struct addrinfo *res;
    if (resolve(listen_addr, &res, err) != TD_OK) return -1;
    int fd = -1, e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 511) == 0) {
            *v6 = ai->ai_family == AF_INET6;
            break;
        }
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        td_fail(err, TD_EIO, "listen", "cannot listen on %s: %s%s", listen_addr, strerror(e),
                e == EADDRINUSE
                    ? " (another traind or program has the port; pick another with "
                      "--listen PORT, e.g. --listen 8081, or the listen key of the config file)"
                    : "");
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        format_address(&ss, address, address_len, port);
    return fd;
}
