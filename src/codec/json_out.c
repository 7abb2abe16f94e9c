/* json_out.c — answers written as they are sent (contracts in json_out.h).
 *
 * The writer is a list of parts (text, or an array with its shape); td_jout_read walks
 * them with a cursor (part, element) and formats one element at a time into a small
 * pending buffer, from which bytes are copied out. An element is written with what comes
 * before it: '[' per dim on the first, else the ']'s of the dims it closes, a ',', and as
 * many '['; the ']'s after the last element end the array. */
#include "codec/json_out.h"

#include "util/budget.h"

#include <stdlib.h>
#include <string.h>

#include "codec/json_util.h"

typedef struct part {
    int kind; /* 0 text, 1 float32, 2 int32, 3 float32 made by fill */
    char *text;
    size_t text_len;
    void *v;
    int ndim;
    int64_t dims[3];
    int64_t n;            /* elements */
    td_jout_fill_fn fill; /* kind 3: rows [r0, r0 + nbuf) are in v (block rows) */
    void *ctx;
    void (*free_ctx)(void *);
    int64_t r0, nbuf, block;
} part;

struct td_jout {
    part *parts;
    size_t nparts, cap;
    int failed;
    /* the cursor */
    size_t at;  /* part */
    int64_t k;  /* element (or text byte) within it */
    int closed; /* the part's closing brackets are pending / written */
    char pend[128];
    size_t pend_len, pend_pos;
    uint64_t held; /* memory budget bytes returned when freed (td_jout_hold) */
};

td_jout *td_jout_new(void) { return calloc(1, sizeof(td_jout)); }

int td_jout_failed(const td_jout *o) { return o->failed; }

static part *add(td_jout *o)
{
    if (o->failed) return NULL;
    if (o->nparts == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 8;
        part *p = realloc(o->parts, cap * sizeof *p);
        if (!p) {
            o->failed = 1;
            return NULL;
        }
        o->parts = p;
        o->cap = cap;
    }
    part *p = &o->parts[o->nparts++];
    memset(p, 0, sizeof *p);
    return p;
}

void td_jout_text(td_jout *o, const char *s)
{
    size_t n = strlen(s);
    part *last = o->nparts ? &o->parts[o->nparts - 1] : NULL;
    if (!o->failed && last && last->kind == 0) { /* one text part for adjacent texts */
        char *t = realloc(last->text, last->text_len + n + 1);
        if (!t) {
            o->failed = 1;
            return;
        }
        memcpy(t + last->text_len, s, n + 1);
        last->text = t;
        last->text_len += n;
        return;
    }
    part *p = add(o);
    if (!p) return;
    if (!(p->text = malloc(n + 1))) {
        o->failed = 1;
        o->nparts--;
        return;
    }
    memcpy(p->text, s, n + 1);
    p->text_len = n;
}

void td_jout_double(td_jout *o, double v)
{
    td_sbuf b;
    td_sbuf_init(&b);
    td_sbuf_double(&b, v);
    char *s = td_sbuf_finish(&b, NULL);
    if (!s) {
        o->failed = 1;
        return;
    }
    td_jout_text(o, s);
    free(s);
}

static void add_array(td_jout *o, int kind, void *v, int ndim, const int64_t *dims)
{
    part *p = add(o);
    if (!p) {
        free(v);
        return;
    }
    p->kind = kind;
    p->v = v;
    p->ndim = ndim < 1 ? 1 : ndim > 3 ? 3 : ndim;
    p->n = 1;
    for (int d = 0; d < p->ndim; d++) {
        p->dims[d] = dims[d];
        p->n *= dims[d];
    }
}

void td_jout_f32(td_jout *o, float *v, int ndim, const int64_t *dims)
{
    add_array(o, 1, v, ndim, dims);
}

void td_jout_i32(td_jout *o, int32_t *v, int ndim, const int64_t *dims)
{
    add_array(o, 2, v, ndim, dims);
}

void td_jout_f32_rows(td_jout *o, int64_t rows, int64_t cols, td_jout_fill_fn fill, void *ctx,
                      void (*free_ctx)(void *))
{
    int64_t block = cols > 0 && cols < 4096 ? 4096 / cols : 1;
    float *buf = malloc(sizeof(float) * (size_t)(block * (cols > 0 ? cols : 1)));
    int64_t dims[2] = {rows, cols};
    if (!buf) {
        o->failed = 1;
    } else {
        add_array(o, 3, buf, 2, dims); /* frees buf when it fails */
    }
    if (o->failed) {
        if (free_ctx) free_ctx(ctx);
        return;
    }
    part *p = &o->parts[o->nparts - 1];
    p->fill = fill;
    p->ctx = ctx;
    p->free_ctx = free_ctx;
    p->block = block;
    p->r0 = p->nbuf = 0;
}

/* Element k of a float part (a kind 3 part fills the block that holds it). */
static float f32_at(part *p, int64_t k)
{
    if (p->kind == 1) return ((const float *)p->v)[k];
    int64_t cols = p->dims[1], r = k / cols;
    if (r < p->r0 || r >= p->r0 + p->nbuf) {
        p->r0 = r;
        p->nbuf = p->dims[0] - r < p->block ? p->dims[0] - r : p->block;
        p->fill(p->ctx, p->r0, p->nbuf, p->v);
    }
    return ((const float *)p->v)[k - p->r0 * cols];
}

static void put(td_jout *o, const char *s, size_t n)
{
    memcpy(o->pend + o->pend_len, s, n);
    o->pend_len += n;
}

static void brackets(td_jout *o, char c, int n)
{
    for (int i = 0; i < n; i++)
        o->pend[o->pend_len++] = c;
}

/* Formats the next token of array part p (its element k with what comes before it, or
 * its closing brackets) into pend. Returns 0 when the part is done. */
static int next_token(td_jout *o, part *p)
{
    if (o->closed) return 0;
    if (p->n == 0 || o->k == p->n) {
        if (p->n == 0) put(o, "[", 1);
        brackets(o, ']', p->n == 0 ? 1 : p->ndim);
        o->closed = 1;
        return 1;
    }
    int64_t k = o->k;
    if (k == 0) {
        brackets(o, '[', p->ndim);
    } else {
        /* the dims whose index wraps to 0 at k are closed and opened again */
        int wrap = 0;
        int64_t stride = 1;
        for (int d = p->ndim - 1; d > 0; d--) {
            stride *= p->dims[d];
            if (k % stride) break;
            wrap++;
        }
        brackets(o, ']', wrap);
        put(o, ",", 1);
        brackets(o, '[', wrap);
    }
    char num[32];
    size_t n = p->kind == 2 ? td_fmt_int(num, ((const int32_t *)p->v)[k])
                            : td_fmt_float(num, f32_at(p, k));
    put(o, num, n);
    o->k++;
    return 1;
}

ssize_t td_jout_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    td_jout *o = ctx;
    size_t w = 0;
    while (w < max) {
        if (o->pend_pos < o->pend_len) {
            size_t n = o->pend_len - o->pend_pos;
            if (n > max - w) n = max - w;
            memcpy(buf + w, o->pend + o->pend_pos, n);
            o->pend_pos += n;
            w += n;
            continue;
        }
        o->pend_len = o->pend_pos = 0;
        if (o->at >= o->nparts) break;
        part *p = &o->parts[o->at];
        if (p->kind == 0) {
            size_t n = p->text_len - (size_t)o->k;
            if (n > max - w) n = max - w;
            memcpy(buf + w, p->text + o->k, n);
            o->k += (int64_t)n;
            w += n;
            if ((size_t)o->k < p->text_len) continue;
        } else if (next_token(o, p)) {
            continue;
        }
        o->at++;
        o->k = 0;
        o->closed = 0;
    }
    if (w == 0 && max > 0) return -1;
    return (ssize_t)w;
}

void td_jout_free(void *ctx)
{
    td_jout *o = ctx;
    if (!o) return;
    for (size_t i = 0; i < o->nparts; i++) {
        free(o->parts[i].text);
        free(o->parts[i].v);
        if (o->parts[i].free_ctx) o->parts[i].free_ctx(o->parts[i].ctx);
    }
    free(o->parts);
    if (o->held) td_budget_release(o->held);
    free(o);
}

void td_jout_hold(td_jout *o, uint64_t bytes) { o->held += bytes; }

char *td_jout_string(td_jout *o, size_t *len)
{
    if (len) *len = 0;
    if (o->failed) return NULL;
    td_sbuf b;
    td_sbuf_init(&b);
    char chunk[16384];
    ssize_t n;
    while ((n = td_jout_read(o, 0, chunk, sizeof chunk)) > 0)
        td_sbuf_put(&b, chunk, (size_t)n);
    if (!b.data && !b.oom) td_sbuf_put(&b, "", 0);
    return td_sbuf_finish(&b, len);
}
