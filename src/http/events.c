/* events.c — a job's Server-Sent Events from a cursor (events.h).
 *
 * DESIGN (threads): a stream's producer runs on its connection's thread (server.c) and
 * owns its state alone. It reads the job's tail (thread-safe, jobs/tail.h) while the job
 * trains and the store otherwise; it may block up to about a second per call (waiting on
 * the tail, on the job manager's change counter, or for its next rate tick), as the
 * server allows. Per call it makes at most EV_CHUNK bytes of events into `out`, which is
 * drained before the next call: memory per stream stays a few KiB whatever happens. */
#include "http/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/json_util.h"
#include "jobs/tail.h"
#include "util/clock.h"

#define EV_WAIT_MS 1000 /* longest wait per producer call */
#define EV_PAGE 64      /* stored records read at a time when replaying */
#define EV_CHUNK 8192   /* bytes of events made per producer call, at most about */

typedef struct ev {
    td_store *store;
    td_jobs *jobs;
    char id[TD_ID_MAX];
    td_events_opts o;
    int64_t cursor;   /* the last progress epoch sent (or Last-Event-ID) */
    int last_state;   /* the last state event sent, -1 before the first */
    uint64_t seen;    /* the job manager's change counter */
    td_tail *tail;    /* the job's tail while it trains here (a reference) */
    double next_tick; /* max_rate > 0: no progress event before (monotonic s) */
    int finishing;    /* the job ended: fin is its row */
    td_job_row fin;
    int64_t scanned; /* finishing, replay: stored records read up to here */
    int replayed;    /* finishing: no more stored records to go through */
    int done;
    td_sbuf out; /* events made, not yet handed to the server */
    size_t sent; /* of out */
} ev;

static void sleep_s(double s)
{
    if (s <= 0) return;
    if (s > EV_WAIT_MS * 1e-3) s = EV_WAIT_MS * 1e-3;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- events ------------------------------------------------------------------------ */

static void emit_state(ev *s, td_job_state st, int64_t epoch, const char *code, const char *message)
{
    td_sbuf_puts(&s->out, "event: state\ndata: {\"state\":");
    td_sbuf_string(&s->out, td_job_state_name(st));
    td_sbuf_printf(&s->out, ",\"epoch\":%lld", (long long)epoch);
    if (code && code[0]) {
        td_sbuf_puts(&s->out, ",\"error\":{\"code\":");
        td_sbuf_string(&s->out, code);
        td_sbuf_puts(&s->out, ",\"message\":");
        td_sbuf_string(&s->out, message);
        td_sbuf_puts(&s->out, "}");
    }
    td_sbuf_puts(&s->out, "}\n\n");
    s->last_state = (int)st;
}

/* One progress event: rec holds the ncols values of the record of epoch. */
static void emit_progress(ev *s, int64_t epoch, const char *const *names, int ncols,
                          const double *rec, int64_t planned)
{
    td_sbuf_printf(&s->out, "id: %lld\nevent: progress\ndata: {", (long long)epoch);
    for (int c = 0; c < ncols; c++) {
        td_sbuf_key(&s->out, names[c], c == 0);
        if (strcmp(names[c], "epoch") == 0)
            td_sbuf_int(&s->out, epoch);
        else
            td_sbuf_value(&s->out, names[c], rec[c]);
    }
    td_sbuf_printf(&s->out, ",\"epochs\":%lld}\n\n", (long long)planned);
    s->cursor = epoch;
}

/* The first epoch after `after` that is a multiple of every. */
static int64_t next_multiple(int64_t after, int64_t every) { return (after / every + 1) * every; }

/* ---- while the job trains here: from its tail ----------------------------------------- */

static void drop_tail(ev *s)
{
    td_tail_release(s->tail);
    s->tail = NULL;
}

/* max_rate > 0: at each tick, the latest eligible epoch if it is new. */
static void tail_rate(ev *s)
{
    double now = td_mono_s();
    if (now < s->next_tick) {
        sleep_s(s->next_tick - now);
        return;
    }
    td_tail_view v;
    td_tail_view_get(s->tail, &v);
    int ncols;
    const char *const *names = td_tail_columns(s->tail, &ncols);
    double rec[TD_HIST_MAX_COLS];
    int64_t every = s->o.every;
    /* the final epoch whatever its number; else the latest multiple of every */
    int64_t target = v.closed ? v.hi : v.hi / every * every;
    if (target > s->cursor && td_tail_row(s->tail, target, rec)) {
        emit_progress(s, target, names, ncols, rec, v.epochs);
        s->next_tick = now + 1.0 / s->o.max_rate;
        return;
    }
    if (v.closed) {
        drop_tail(s);
        return;
    }
    int64_t base = target > s->cursor ? target : s->cursor; /* target may have left */
    td_tail_wait(s->tail, next_multiple(base, every) - 1, EV_WAIT_MS, &v);
}

/* max_rate 0: every multiple of every after the cursor that the tail still holds. */
static void tail_every(ev *s)
{
    int ncols;
    const char *const *names = td_tail_columns(s->tail, &ncols);
    double rec[TD_HIST_MAX_COLS];
    int64_t every = s->o.every;
    td_tail_view v;
    td_tail_view_get(s->tail, &v);
    int64_t next = next_multiple(s->cursor, every);
    while (s->out.len < EV_CHUNK) {
        if (next < v.lo) /* the cursor fell behind the window: skip ahead */
            next = (v.lo + every - 1) / every * every;
        if (next <= v.hi) {
            if (td_tail_row(s->tail, next, rec)) {
                emit_progress(s, next, names, ncols, rec, v.epochs);
                next += every;
            } else {
                td_tail_view_get(s->tail, &v); /* the window moved on meanwhile */
            }
            continue;
        }
        if (v.closed) {
            if (v.hi > s->cursor && td_tail_row(s->tail, v.hi, rec)) /* the final epoch */
                emit_progress(s, v.hi, names, ncols, rec, v.epochs);
            drop_tail(s);
            return;
        }
        if (s->out.len > 0) return;
        td_tail_wait(s->tail, next - 1, EV_WAIT_MS, &v);
        if (v.hi < next && !v.closed)
            return; /* nothing yet: the server sends a keepalive now and then */
    }
}

/* ---- after the end: from the store ---------------------------------------------------- */

/* Sends the stored records of epochs > s->scanned (a page of them) that are multiples of
 * every or the final epoch; sets replayed at the end of the history. */
static void replay_page(ev *s, int64_t every)
{
    td_history h;
    if (td_store_history_page(s->store, s->id, s->scanned, EV_PAGE, &h, NULL) != TD_OK) {
        s->replayed = 1;
        return;
    }
    const char *names[TD_HIST_MAX_COLS];
    for (int c = 0; c < h.n_cols; c++)
        names[c] = h.names[c];
    double rec[TD_HIST_MAX_COLS];
    for (int64_t i = 0; i < h.n_rows; i++) {
        int64_t e = h.epochs[i];
        s->scanned = e;
        if (e % every != 0 && e != s->fin.epoch) continue;
        for (int c = 0; c < h.n_cols; c++)
            rec[c] = h.cols[(size_t)c * (size_t)h.n_rows + (size_t)i];
        emit_progress(s, e, names, h.n_cols, rec, s->fin.epochs);
    }
    if (h.n_rows < EV_PAGE) s->replayed = 1;
    td_history_fini(&h);
}

/* The job is terminal: the rest of its progress, then its terminal state. */
static void finish(ev *s)
{
    if (s->o.max_rate == 0) {
        while (!s->replayed && s->out.len < EV_CHUNK)
            replay_page(s, s->o.every);
        if (!s->replayed) return;
    } else if (s->fin.epoch > s->cursor) { /* the final epoch, on a tick */
        double now = td_mono_s();
        if (now < s->next_tick) {
            sleep_s(s->next_tick - now);
            return;
        }
        s->scanned = s->fin.epoch - 1;
        replay_page(s, 1); /* the final record only (it is the last) */
    }
    emit_state(s, s->fin.state, s->fin.epoch, s->fin.error_code, s->fin.error_message);
    s->done = 1;
}

/* ---- while the job trains on another daemon (a shared store): from the store ---------- */

/* Sends the committed records after the cursor (a page) that are multiples of every; with
 * none new, waits a little: polling, coalesced by the holder's batched commits. */
static void remote_page(ev *s, const td_job_row *row)
{
    td_history h;
    if (s->scanned < s->cursor) s->scanned = s->cursor;
    if (td_store_history_page(s->store, s->id, s->scanned, EV_PAGE, &h, NULL) != TD_OK) {
        sleep_s(EV_WAIT_MS * 1e-3);
        return;
    }
    const char *names[TD_HIST_MAX_COLS];
    double rec[TD_HIST_MAX_COLS];
    for (int c = 0; c < h.n_cols; c++)
        names[c] = h.names[c];
    for (int64_t i = 0; i < h.n_rows; i++) {
        s->scanned = h.epochs[i];
        if (h.epochs[i] % s->o.every != 0) continue;
        for (int c = 0; c < h.n_cols; c++)
            rec[c] = h.cols[(size_t)c * (size_t)h.n_rows + (size_t)i];
        emit_progress(s, h.epochs[i], names, h.n_cols, rec, row->epochs);
    }
    if (h.n_rows == 0) sleep_s(0.25);
    td_history_fini(&h);
}

/* ---- the producer --------------------------------------------------------------------- */

/* Makes the next events (or waits a little for some). */
static void produce(ev *s)
{
    if (s->tail) {
        if (s->o.max_rate > 0)
            tail_rate(s);
        else
            tail_every(s);
        return;
    }
    if (s->finishing) {
        finish(s);
        return;
    }
    td_job_row row;
    td_status st = td_store_job_get(s->store, s->id, &row, NULL);
    if (st) {
        if (st == TD_ENOTFOUND)
            td_sbuf_puts(&s->out, "event: state\ndata: {\"state\":\"deleted\"}\n\n");
        s->done = 1; /* a storage error ends the stream: the client reconnects */
        return;
    }
    if (row.state == TD_JOB_QUEUED) {
        if (s->last_state != TD_JOB_QUEUED)
            emit_state(s, TD_JOB_QUEUED, row.epoch, NULL, NULL);
        else
            s->seen = td_jobs_wait_change(s->jobs, s->seen, EV_WAIT_MS);
    } else if (row.state == TD_JOB_RUNNING) {
        if (s->last_state != TD_JOB_RUNNING) emit_state(s, TD_JOB_RUNNING, row.epoch, NULL, NULL);
        s->tail = td_jobs_tail(s->jobs, s->id);
        if (!s->tail && td_store_shared(s->store) && row.node[0])
            remote_page(s, &row); /* held by another daemon (or, briefly, starting here) */
        else if (!s->tail && s->out.len == 0) {
            /* starting (loading its data), or waiting for a worker after a restart */
            td_jobs_stats js;
            td_jobs_stats_get(s->jobs, &js);
            if (!js.accepting)
                s->done = 1; /* stopping: it resumes at the next start */
            else
                s->seen = td_jobs_wait_change(s->jobs, s->seen, EV_WAIT_MS);
        }
    } else {
        /* It ran while we looked away (queued, then ended): say so, in order. */
        if (s->last_state == TD_JOB_QUEUED && row.started_at[0])
            emit_state(s, TD_JOB_RUNNING, 0, NULL, NULL);
        s->fin = row;
        s->finishing = 1;
        s->scanned = s->cursor;
        finish(s);
        return; /* fin owns row now */
    }
    td_job_row_fini(&row);
}

static ssize_t ev_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    ev *s = ctx;
    if (s->sent == s->out.len) {
        s->out.len = s->sent = 0;
        if (s->done) return -1;
        produce(s);
        if (s->out.oom) return -1;
        if (s->out.len == 0) return s->done ? -1 : 0;
    }
    size_t n = s->out.len - s->sent;
    if (n > max) n = max;
    memcpy(buf, s->out.data + s->sent, n);
    s->sent += n;
    return (ssize_t)n;
}

static void ev_free(void *ctx)
{
    ev *s = ctx;
    td_tail_release(s->tail);
    if (s->finishing) td_job_row_fini(&s->fin);
    td_sbuf_fini(&s->out);
    free(s);
}

td_status td_events_stream(td_resp *resp, td_store *store, td_jobs *jobs, const char *id,
                           const td_events_opts *o, td_error *err)
{
    ev *s = calloc(1, sizeof *s);
    if (!s) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    s->store = store;
    s->jobs = jobs;
    snprintf(s->id, sizeof s->id, "%s", id);
    s->o = *o;
    if (s->o.every < 1) s->o.every = 1;
    s->cursor = o->after > 0 ? o->after : 0;
    s->last_state = -1;
    s->seen = td_jobs_wait_change(jobs, 0, 0);
    td_sbuf_init(&s->out);
    resp->status = 200;
    resp->content_type = "text/event-stream";
    td_resp_header(resp, "Cache-Control", "no-cache");
    resp->stream = ev_read;
    resp->stream_ctx = s;
    resp->stream_free = ev_free;
    return TD_OK;
}
