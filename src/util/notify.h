/* notify.h — the systemd readiness protocol (sd_notify) without libsystemd.
 *
 * Under a Type=notify unit, systemd sets $NOTIFY_SOCKET to a datagram socket: a path
 * ("/run/systemd/notify") or an abstract name ("@..."). td_notify sends one datagram
 * holding newline-separated assignments such as "READY=1", "STOPPING=1" or
 * "STATUS=listening on 127.0.0.1:8080". Outside systemd ($NOTIFY_SOCKET unset) every call
 * is a successful no-op. */
#ifndef TRAIND_NOTIFY_H
#define TRAIND_NOTIFY_H

#include "traind/status.h"

/* Sends state to $NOTIFY_SOCKET. Returns TD_OK when sent or when not under systemd;
 * TD_EINVAL for a malformed $NOTIFY_SOCKET, TD_EIO when the send fails (err filled). */
td_status td_notify(const char *state, td_error *err);

/* printf-style td_notify (the formatted state is truncated at 1 KiB). */
td_status td_notifyf(td_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
