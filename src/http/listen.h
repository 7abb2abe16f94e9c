/* listen.h — the server's listening socket (listen.c); td_listen_parse and
 * td_listen_is_loopback are in server.h. Not for other modules. */
#ifndef TRAIND_HTTP_LISTEN_H
#define TRAIND_HTTP_LISTEN_H

#include <stddef.h>

#include "traind/status.h"

/* Binds listen_addr ("host:port", "[v6]:port"; port 0 picks one) and listens; returns the
 * fd (non-blocking, close-on-exec) or -1 with err set. *v6: an IPv6 socket; address
 * (address_len bytes) and *port: where it listens ("127.0.0.1:8080", "[::1]:8080"). */
int td_listen_open(const char *listen_addr, int *v6, char *address, size_t address_len, int *port,
                   td_error *err);

#endif
