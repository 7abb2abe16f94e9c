/* status.h — error reporting shared by every traind module.
 *
 * Functions that can fail return a td_status and, when the caller passes a non-NULL
 * td_error, fill it with the field at fault (a dotted path such as "hyperparameters.lr"
 * or "X[12][3]", or "" when no single field is at fault) and a human-readable message. */
#ifndef TRAIND_STATUS_H
#define TRAIND_STATUS_H

#include <stdarg.h>

typedef enum {
    TD_OK = 0,
    TD_EINVAL,    /* invalid argument / value (HTTP 422) */
    TD_ENOMEM,    /* allocation failed */
    TD_EDIVERGED, /* training produced a non-finite loss */
    TD_ESTOPPED,  /* the epoch callback asked to stop (cancel or shutdown) */
    TD_EIO,       /* storage failure */
    TD_ENOTFOUND, /* no such object */
    TD_ECONFLICT, /* state conflict (HTTP 409) */
    TD_EBUSY,     /* queue full: retry later (HTTP 429) */
    TD_ESHUTDOWN, /* the daemon is shutting down (HTTP 503) */
    TD_ENOSPACE,  /* a write refused for lack of space: ENOSPC, EDQUOT, SQLITE_FULL (507) */
    TD_EINTERNAL, /* programmer error that was caught */
    TD_EMALFORMED /* a body that is not well-formed JSON (HTTP 400); the message gives
                       the byte offset: "malformed JSON at byte N: ..." */
} td_status;

typedef struct td_error {
    char field[128];
    char message[512];
} td_error;

/* Stable machine-readable code for a status ("invalid_argument", "diverged", ...). */
const char *td_status_code(td_status st);

/* Fills err (if non-NULL) and returns st. field may be NULL. */
td_status td_fail(td_error *err, td_status st, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
