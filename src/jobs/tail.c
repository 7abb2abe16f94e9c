/* tail.c — a running job's in-memory history tail (tail.h).
 *
 * DESIGN
 * Two buffers: `ring`, every epoch's record for readers (the last TD_TAIL_ROWS), and
 * `pend`, the records not yet committed that the history bound keeps (store.h): the
 * latest, the first, the best and the multiples of the current stride. A record that
 * stops being kept (the previous latest, a superseded best) leaves `pend` as soon as it
 * does, and one off the stride never comes back on it (the stride only grows), so once
 * history is thinned a flush writes a few records for many epochs and flushes come from
 * the clock (TD_TAIL_FLUSH_S), not from the buffer filling up.
 *
 * Threads: `mu` guards the window (lo, hi, committed), the ring, `pend` / `npend`,
 * `closed` and `nwait`. Only the job's worker writes: it appends under `mu` (one
 * uncontended lock per epoch) and broadcasts `cond` only when a reader waits, so readers
 * cost it nothing per epoch otherwise. The worker reads what it wrote without the lock
 * and never holds `mu` across a store call: td_tail_flush hands `pend` to the store, then
 * empties it and moves `committed` under `mu`. Fields marked "worker only" are touched by
 * the worker alone. */
#include "jobs/tail.h"
#include "util/clock.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct td_tail {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    atomic_int refs;
    td_store *store;
    char id[TD_ID_MAX];
    int ncols;
    char names[TD_HIST_MAX_COLS][TD_HIST_NAME_MAX];
    const char *name_ptrs[TD_HIST_MAX_COLS];
    int i_loss, i_val; /* columns "loss" / "val_loss", -1 when absent */
    int64_t epochs, max_rows;
    double *ring; /* (TD_TAIL_ROWS, ncols): epoch e in row e % TD_TAIL_ROWS */
    int64_t lo, hi, committed;
    int closed, nwait;
    /* worker only */
    int64_t *pend_epochs; /* (TD_TAIL_BATCH) ascending, all > committed */
    double *pend;         /* (TD_TAIL_BATCH, ncols) */
    int64_t npend;
    /* worker only */
    int64_t first, best, flushed_best;
    double best_val; /* the best record's val_loss, or loss without one */
    int best_has_val;
    double last_flush; /* monotonic seconds */
    int flushed;       /* a batch went to the store since the tail was made */
};

static double *ring_row(const td_tail *t, int64_t epoch)
{
    return t->ring + (size_t)(epoch % TD_TAIL_ROWS) * (size_t)t->ncols;
}

/* Worker only: counts epoch's record for first and best (returns 1 when it is the new
 * best). The best epoch has the lowest val_loss among the records that have one, else
 * (none has) the lowest loss; NaN never counts; on a tie the earlier epoch stays. */
static int track(td_tail *t, int64_t epoch, const double *rec)
{
    if (t->first < 0) t->first = epoch;
    int has_val = t->i_val >= 0 && !isnan(rec[t->i_val]);
    double k = has_val ? rec[t->i_val] : t->i_loss >= 0 ? rec[t->i_loss] : NAN;
    if (isnan(k) || (t->best_has_val && !has_val)) return 0;
    if (t->best >= 0 && !(has_val && !t->best_has_val) && !(k < t->best_val)) return 0;
    t->best = epoch, t->best_val = k, t->best_has_val = has_val;
    return 1;
}

/* First and best of the stored history (a resumed job; at most history_max_rows rows). */
static td_status track_stored(td_tail *t, td_error *err)
{
    td_history h;
    td_status st = td_store_history_get(t->store, t->id, -1, &h, err);
    if (st) return st;
    double rec[TD_HIST_MAX_COLS];
    for (int64_t i = 0; i < h.n_rows && h.n_cols == t->ncols; i++) {
        for (int c = 0; c < h.n_cols; c++)
            rec[c] = h.cols[(size_t)c * (size_t)h.n_rows + (size_t)i];
        (void)track(t, h.epochs[i], rec);
    }
    td_history_fini(&h);
    t->flushed_best = t->best;
    return TD_OK;
}

td_status td_tail_create(td_tail **out, td_store *store, const char *job_id,
                         const char *const *names, int ncols, int64_t epochs, int64_t committed,
                         int64_t max_rows, td_error *err)
{
    *out = NULL;
    if (ncols < 1 || ncols > TD_HIST_MAX_COLS)
        return td_fail(err, TD_EINVAL, "columns", "need 1..%d history columns, got %d",
                       TD_HIST_MAX_COLS, ncols);
    td_tail *t = calloc(1, sizeof *t);
    if (!t) return td_fail(err, TD_ENOMEM, NULL, "out of memory for the history tail");
    size_t cells = (size_t)TD_TAIL_ROWS * (size_t)ncols;
    t->ring = malloc(sizeof *t->ring * cells);
    t->pend = malloc(sizeof *t->pend * (size_t)TD_TAIL_BATCH * (size_t)ncols);
    t->pend_epochs = malloc(sizeof *t->pend_epochs * TD_TAIL_BATCH);
    if (!t->ring || !t->pend || !t->pend_epochs) {
        free(t->ring), free(t->pend), free(t->pend_epochs), free(t);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory for the history tail");
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca; /* timed waits on the monotonic clock */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&t->refs, 1);
    t->store = store;
    snprintf(t->id, sizeof t->id, "%s", job_id);
    t->ncols = ncols;
    t->i_loss = t->i_val = -1;
    for (int c = 0; c < ncols; c++) {
        snprintf(t->names[c], TD_HIST_NAME_MAX, "%s", names[c]);
        t->name_ptrs[c] = t->names[c];
        if (strcmp(names[c], "loss") == 0) t->i_loss = c;
        if (strcmp(names[c], "val_loss") == 0) t->i_val = c;
    }
    t->epochs = epochs;
    t->max_rows = max_rows;
    t->committed = t->hi = committed;
    t->lo = committed + 1;
    t->first = t->best = t->flushed_best = -1;
    t->last_flush = td_mono_s();
    td_status st = committed > 0 ? track_stored(t, err) : TD_OK;
    if (st) {
        td_tail_release(t);
        return st;
    }
    *out = t;
    return TD_OK;
}

void td_tail_retain(td_tail *t) { atomic_fetch_add(&t->refs, 1); }

void td_tail_release(td_tail *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cond);
    free(t->ring);
    free(t->pend);
    free(t->pend_epochs);
    free(t);
}

/* ---- the worker --------------------------------------------------------------------- */

/* Removes pend's record of epoch if there is one and the bound no longer keeps it at
 * stride S. Caller holds mu. */
static void unpend_locked(td_tail *t, int64_t epoch, int64_t S)
{
    if (epoch <= t->committed || epoch % S == 0 || epoch == t->first || epoch == t->best) return;
    int64_t i = t->npend;
    while (i > 0 && t->pend_epochs[i - 1] > epoch)
        i--;
    if (i == 0 || t->pend_epochs[i - 1] != epoch) return;
    size_t nc = (size_t)t->ncols, rest = (size_t)(t->npend - i);
    memmove(t->pend_epochs + i - 1, t->pend_epochs + i, sizeof *t->pend_epochs * rest);
    memmove(t->pend + (size_t)(i - 1) * nc, t->pend + (size_t)i * nc, sizeof *t->pend * rest * nc);
    t->npend--;
}

void td_tail_append(td_tail *t, int64_t epoch, const double *rec)
{
    /* epochs come one by one, and a flush comes before pend overflows */
    assert(epoch == t->hi + 1 && t->npend < TD_TAIL_BATCH);
    int64_t prev_latest = t->hi, prev_best = t->best;
    int new_best = track(t, epoch, rec);
    int64_t S = td_history_stride(epoch, t->max_rows);
    pthread_mutex_lock(&t->mu);
    unpend_locked(t, prev_latest, S); /* kept as the latest until now */
    if (new_best) unpend_locked(t, prev_best, S);
    t->pend_epochs[t->npend] = epoch;
    memcpy(t->pend + (size_t)t->npend * (size_t)t->ncols, rec, sizeof *rec * (size_t)t->ncols);
    t->npend++;
    memcpy(ring_row(t, epoch), rec, sizeof *rec * (size_t)t->ncols);
    t->hi = epoch;
    if (t->hi - t->lo + 1 > TD_TAIL_ROWS) t->lo = t->hi - TD_TAIL_ROWS + 1;
    if (t->nwait) pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

int td_tail_flush_due(const td_tail *t, double now)
{
    /* npend is written by the worker alone, the caller */
    return t->npend >= TD_TAIL_BATCH || (t->npend > 0 && now - t->last_flush >= TD_TAIL_FLUSH_S);
}

td_status td_tail_flush(td_tail *t, const char *metrics_json, double now, td_error *err)
{
    if (t->npend == 0) return TD_OK;
    /* pend ends with the latest epoch (hi): everything up to it is in the store after */
    td_history_batch b = {.n_cols = t->ncols,
                          .n_rows = t->npend,
                          .epochs = t->pend_epochs,
                          .records = t->pend,
                          .metrics_json = metrics_json,
                          .max_rows = t->max_rows,
                          .first = t->first,
                          .best = t->best,
                          .prev_best = t->flushed_best,
                          .full_pass = !t->flushed};
    td_status st = td_store_history_commit(t->store, t->id, &b, err);
    if (st) return st;
    pthread_mutex_lock(&t->mu);
    t->committed = t->hi;
    t->npend = 0;
    pthread_mutex_unlock(&t->mu);
    t->flushed_best = t->best;
    t->last_flush = now;
    t->flushed = 1;
    return TD_OK;
}

void td_tail_close(td_tail *t)
{
    pthread_mutex_lock(&t->mu);
    t->closed = 1;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->mu);
}

/* ---- readers ------------------------------------------------------------------------ */

static void view_locked(const td_tail *t, td_tail_view *v)
{
    v->lo = t->lo;
    v->hi = t->hi;
    v->committed = t->committed;
    v->epochs = t->epochs;
    v->closed = t->closed;
}

void td_tail_view_get(td_tail *t, td_tail_view *v)
{
    pthread_mutex_lock(&t->mu);
    view_locked(t, v);
    pthread_mutex_unlock(&t->mu);
}

const char *const *td_tail_columns(const td_tail *t, int *ncols)
{
    *ncols = t->ncols;
    return t->name_ptrs;
}

int td_tail_row(td_tail *t, int64_t epoch, double *rec)
{
    pthread_mutex_lock(&t->mu);
    int in = epoch >= t->lo && epoch <= t->hi;
    if (in) memcpy(rec, ring_row(t, epoch), sizeof *rec * (size_t)t->ncols);
    pthread_mutex_unlock(&t->mu);
    return in;
}

td_status td_tail_pending(td_tail *t, td_history *h, int64_t *committed, td_error *err)
{
    memset(h, 0, sizeof *h);
    h->n_cols = t->ncols;
    for (int c = 0; c < t->ncols; c++)
        memcpy(h->names[c], t->names[c], TD_HIST_NAME_MAX);
    td_status st = TD_OK;
    pthread_mutex_lock(&t->mu);
    int64_t n = t->npend;
    *committed = t->committed;
    if (n > 0) {
        h->epochs = malloc(sizeof *h->epochs * (size_t)n);
        h->cols = malloc(sizeof *h->cols * (size_t)n * (size_t)t->ncols);
        if (!h->epochs || !h->cols) {
            st = td_fail(err, TD_ENOMEM, NULL, "out of memory copying the history tail");
        } else {
            for (int64_t i = 0; i < n; i++) {
                const double *r = t->pend + (size_t)i * (size_t)t->ncols;
                h->epochs[i] = t->pend_epochs[i];
                for (int c = 0; c < t->ncols; c++)
                    h->cols[(size_t)c * (size_t)n + (size_t)i] = r[c];
            }
            h->n_rows = n;
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (st) td_history_fini(h);
    return st;
}

void td_tail_wait(td_tail *t, int64_t after, int timeout_ms, td_tail_view *v)
{
    struct timespec deadline = td_deadline(CLOCK_MONOTONIC, timeout_ms);
    pthread_mutex_lock(&t->mu);
    while (t->hi <= after && !t->closed) {
        t->nwait++;
        int rc = pthread_cond_timedwait(&t->cond, &t->mu, &deadline);
        t->nwait--;
        if (rc != 0) break;
    }
    view_locked(t, v);
    pthread_mutex_unlock(&t->mu);
}

/* Merges pending records p (epochs above `committed`, ascending) into h (the store's, read
 * after p was taken): h's records up to committed, then p's above after_epoch, then h's
 * beyond p's last (committed since); at most limit (<= 0: all). */
static td_status merge(td_history *h, const td_history *p, int64_t committed, int64_t after_epoch,
                       int64_t limit, td_error *err)
{
    int64_t p_last = p->epochs[p->n_rows - 1];
    int64_t a = 0, j0 = 0, b0 = h->n_rows;
    while (a < h->n_rows && h->epochs[a] <= committed)
        a++;
    while (j0 < p->n_rows && p->epochs[j0] <= after_epoch)
        j0++;
    for (int64_t i = a; i < h->n_rows; i++)
        if (h->epochs[i] > p_last) {
            b0 = i;
            break;
        }
    int64_t n = a + (p->n_rows - j0) + (h->n_rows - b0);
    if (limit > 0 && n > limit) n = limit;
    int64_t *ep = malloc(sizeof *ep * (size_t)(n ? n : 1));
    double *cols = malloc(sizeof *cols * (size_t)(n ? n : 1) * (size_t)h->n_cols);
    if (!ep || !cols) {
        free(ep), free(cols);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory merging the history tail");
    }
    int64_t k = 0;
    const td_history *src[3] = {h, p, h};
    const int64_t from[3] = {0, j0, b0}, to[3] = {a, p->n_rows, h->n_rows};
    for (int s = 0; s < 3; s++)
        for (int64_t i = from[s]; i < to[s] && k < n; i++, k++) {
            ep[k] = src[s]->epochs[i];
            for (int c = 0; c < h->n_cols; c++)
                cols[(size_t)c * (size_t)n + (size_t)k] =
                    src[s]->cols[(size_t)c * (size_t)src[s]->n_rows + (size_t)i];
        }
    free(h->epochs);
    free(h->cols);
    h->epochs = ep, h->cols = cols, h->n_rows = n;
    return TD_OK;
}

td_status td_tail_history_get(td_tail *t, td_store *store, const char *job_id, int64_t after_epoch,
                              int64_t limit, td_history *out, td_error *err)
{
    td_history p = {0};
    int64_t committed = 0;
    memset(out, 0, sizeof *out);
    /* The pending records first: whatever is flushed after this is in the store by the
     * time it is read below, so no epoch falls between the two. */
    td_status st = t ? td_tail_pending(t, &p, &committed, err) : TD_OK;
    if (st == TD_OK) st = td_store_history_page(store, job_id, after_epoch, limit, out, err);
    if (st == TD_OK && p.n_rows > 0 && out->n_cols == p.n_cols)
        st = merge(out, &p, committed, after_epoch, limit, err);
    if (st) td_history_fini(out);
    td_history_fini(&p);
    return st;
}
