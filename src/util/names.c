/* names.c — class names collected and ordered (contracts in names.h). */
#include "util/names.h"

#include <stdlib.h>
#include <string.h>

#include "traind/hparams.h"

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Doubles the slot table and places every name again. */
static int rehash(td_names *t)
{
    size_t ns = t->nslot ? t->nslot * 2 : 64;
    int64_t *sl = calloc(ns, sizeof *sl);
    if (!sl) return -1;
    for (int64_t i = 0; i < t->n; i++) {
        size_t k = (size_t)hash(t->v[i], strlen(t->v[i])) & (ns - 1);
        while (sl[k])
            k = (k + 1) & (ns - 1);
        sl[k] = i + 1;
    }
    free(t->slot);
    t->slot = sl;
    t->nslot = ns;
    return 0;
}

int32_t td_names_add(td_names *t, const char *name, size_t len)
{
    if ((size_t)(t->n + 1) * 2 > t->nslot && rehash(t)) return -1;
    size_t k = (size_t)hash(name, len) & (t->nslot - 1);
    for (; t->slot[k]; k = (k + 1) & (t->nslot - 1)) {
        const char *v = t->v[t->slot[k] - 1];
        if (strlen(v) == len && memcmp(v, name, len) == 0) /* v may be shorter than len */
            return (int32_t)(t->slot[k] - 1);
    }
    if (t->n >= TD_MAX_CLASSES) return -2;
    if (t->n == t->cap) {
        int64_t cap = t->cap ? t->cap * 2 : 16;
        char **nv = realloc(t->v, (size_t)cap * sizeof *nv);
        if (!nv) return -1;
        t->v = nv;
        t->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return -1;
    memcpy(c, name, len);
    c[len] = '\0';
    t->v[t->n] = c;
    t->slot[k] = ++t->n;
    return (int32_t)(t->n - 1);
}

static int cmp_name(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: UTF-8 byte order is code point order */
    return strcmp(**(char *const *const *)a, **(char *const *const *)b);
}

td_status td_names_finish(td_names *t, int32_t *y, int64_t n, char ***classes, int64_t *K,
                          td_error *err)
{
    *classes = NULL;
    *K = 0;
    char ***order = malloc((size_t)(t->n ? t->n : 1) * sizeof *order);
    int32_t *to = malloc((size_t)(t->n ? t->n : 1) * sizeof *to);
    if (!order || !to) {
        free(order);
        free(to);
        td_names_fini(t);
        return td_fail(err, TD_ENOMEM, "y", "out of memory for the class names");
    }
    for (int64_t i = 0; i < t->n; i++)
        order[i] = &t->v[i];
    qsort(order, (size_t)t->n, sizeof *order, cmp_name);
    char **sorted = (char **)order; /* reused in place: order[r] read before written */
    for (int64_t r = 0; r < t->n; r++) {
        char **src = order[r];
        to[src - t->v] = (int32_t)r;
        sorted[r] = *src;
    }
    for (int64_t i = 0; i < n; i++)
        if (y[i] >= 0) y[i] = to[y[i]];
    free(to);
    *classes = sorted;
    *K = t->n;
    free(t->v);
    free(t->slot);
    memset(t, 0, sizeof *t);
    return TD_OK;
}

void td_names_fini(td_names *t)
{
    if (!t) return;
    td_strings_free(t->v, t->n);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

void td_strings_free(char **v, int64_t n)
{
    if (!v) return;
    for (int64_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}
