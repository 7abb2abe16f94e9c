/* events.h — GET /v1/jobs/{id}/events: a job's Server-Sent Events, produced on demand.
 *
 * A stream is a cursor (the last progress epoch sent), not a buffer: each time the server
 * asks for bytes (a libmicrohttpd callback response, td_resp.stream), the producer makes
 * the next event from the job's state and the cursor, so a stream holds the same few KiB
 * however long the job and however slowly its client reads. A client that reads more
 * slowly than the job trains simply finds the cursor behind and skips ahead.
 *
 * Events, in this order:
 *   state     {"state":"queued"|"running","epoch":E} when the job is seen in that state
 *             (queued before running; running before any progress);
 *   progress  {"epoch":E,<every history column>,"epochs":planned} with `id: E`;
 *   state     the terminal state {"state","epoch"[,"error":{"code","message"}]}, after the
 *             final epoch's progress event, then the stream ends. A job deleted meanwhile
 *             ends it with {"state":"deleted"}.
 * Which progress events:
 *   max_rate R > 0: at most R a second, each the latest epoch at the time (a multiple of
 *             `every` when every > 1); a finished job sends only its final epoch.
 *   max_rate 0: every epoch that is a multiple of `every`, in order, while the job keeps
 *             them in memory (its tail, jobs/tail.h; a cursor that fell behind it skips to
 *             the oldest epoch there); a finished job replays them from the stored
 *             history (thinned past history_max_rows), a page at a time.
 *   Always: progress resumes after Last-Event-ID, and the final epoch and the terminal
 *   state are sent.
 * A running job's events come from its tail, never from the store, so streams do not
 * slow training; the store is read only at state changes and to replay a finished job. */
#ifndef TRAIND_HTTP_EVENTS_H
#define TRAIND_HTTP_EVENTS_H

#include <stdint.h>

#include "http/http.h"
#include "jobs/jobs.h"
#include "store/store.h"

#define TD_EVENTS_DEFAULT_RATE 10 /* progress events a second when the client names none */
#define TD_EVENTS_MAX_RATE 1000

typedef struct td_events_opts {
    int max_rate;  /* 0..TD_EVENTS_MAX_RATE; 0 = no time limit */
    int64_t every; /* >= 1 */
    int64_t after; /* Last-Event-ID: progress after this epoch (0: all) */
} td_events_opts;

/* Makes resp the event stream of job id (the caller checked it exists): status 200,
 * text/event-stream, a producer over store and jobs (which must outlive the response).
 * TD_ENOMEM when out of memory (resp untouched). */
td_status td_events_stream(td_resp *resp, td_store *store, td_jobs *jobs, const char *id,
                           const td_events_opts *o, td_error *err);

#endif
