/* status.c — td_status codes and the td_fail helper. */
#include "traind/status.h"

#include <stdio.h>
#include <string.h>

const char *td_status_code(td_status st)
{
    switch (st) {
    case TD_OK: return "ok";
    case TD_EINVAL: return "invalid_argument";
    case TD_ENOMEM: return "out_of_memory";
    case TD_EDIVERGED: return "diverged";
    case TD_ESTOPPED: return "stopped";
    case TD_EIO: return "io_error";
    case TD_ENOTFOUND: return "not_found";
    case TD_ECONFLICT: return "conflict";
    case TD_EBUSY: return "queue_full";
    case TD_ESHUTDOWN: return "shutting_down";
    case TD_ENOSPACE: return "insufficient_storage";
    case TD_EINTERNAL: return "internal";
    case TD_EMALFORMED: return "malformed_json";
    }
    return "internal";
}

td_status td_fail(td_error *err, td_status st, const char *field, const char *fmt, ...)
{
    if (!err) return st;
    /* Formatted aside, then copied: field or an argument may be err's own field or
     * message ("validation set: %s", err->message), and an overlapping snprintf is
     * undefined (it garbled such messages). */
    char f[sizeof err->field], m[sizeof err->message];
    snprintf(f, sizeof f, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    memcpy(err->field, f, sizeof f);
    memcpy(err->message, m, sizeof m);
    return st;
}
