/* dscache.c — refcounted, read-only shared datasets (see dscache.h). */
#include "store/dscache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/blob.h"

struct td_dscache_entry {
    td_dscache *cache;
    td_dscache_entry *next;
    char id[48];
    int refs;             /* holders, and acquirers on their way (cache->mu) */
    int gone;             /* deleted: freed at the last release (cache->mu) */
    pthread_mutex_t load; /* held while mapping and verifying */
    /* set under `load` by the first holder, cleared under cache->mu by the last */
    td_blob_map_t map; /* map.base NULL when not mapped (or copied) */
    void *copy;        /* aligned copy of the payload, or NULL */
    const void *payload;
    size_t len;
    size_t file_bytes;
    /* the version of the file whose checksum was verified (cache->mu) */
    td_blob_stamp verified;
    int has_verified;
};

struct td_dscache {
    pthread_mutex_t mu;
    td_dscache_entry *head;
    td_dscache_stats stats;
};

td_dscache *td_dscache_create(void)
{
    td_dscache *c = calloc(1, sizeof *c);
    if (c) pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void entry_free(td_dscache_entry *e)
{
    pthread_mutex_destroy(&e->load);
    free(e);
}

void td_dscache_destroy(td_dscache *c)
{
    if (!c) return;
    for (td_dscache_entry *e = c->head, *n; e; e = n) {
        n = e->next;
        td_blob_unmap(&e->map); /* only if someone forgot a release */
        free(e->copy);
        entry_free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Finds or adds id's entry and counts the caller as a holder; NULL when out of memory. */
static td_dscache_entry *pin(td_dscache *c, const char *id)
{
    pthread_mutex_lock(&c->mu);
    td_dscache_entry *e = c->head;
    while (e && (e->gone || strcmp(e->id, id) != 0))
        e = e->next;
    if (!e && (e = calloc(1, sizeof *e))) {
        e->cache = c;
        snprintf(e->id, sizeof e->id, "%s", id);
        pthread_mutex_init(&e->load, NULL);
        e->next = c->head;
        c->head = e;
    }
    if (e) e->refs++;
    pthread_mutex_unlock(&c->mu);
    return e;
}

/* Maps e (caller holds e->load, e not mapped): verified unless its stamp is known. */
static td_status map_entry(td_dscache_entry *e, const char *path, td_dscache_align_fn align,
                           td_error *err)
{
    td_dscache *c = e->cache;
    td_blob_stamp known;
    pthread_mutex_lock(&c->mu);
    int has = e->has_verified;
    known = e->verified;
    pthread_mutex_unlock(&c->mu);

    td_blob_map_t m;
    td_status rc = td_blob_map(path, TD_BLOB_DATASET, has ? &known : NULL, &m, err);
    if (rc) return rc;
    const void *payload = m.payload;
    void *copy = NULL;
    size_t off = align ? align(m.payload, m.len) : 0;
    if (((uintptr_t)m.payload + off) % TD_DSCACHE_ALIGN) {
        /* an older layout: one aligned copy, shared like the mapping */
        size_t shift = (TD_DSCACHE_ALIGN - off % TD_DSCACHE_ALIGN) % TD_DSCACHE_ALIGN;
        size_t bytes = (m.len + shift + TD_DSCACHE_ALIGN - 1) / TD_DSCACHE_ALIGN * TD_DSCACHE_ALIGN;
        if (!(copy = aligned_alloc(TD_DSCACHE_ALIGN, bytes))) {
            td_blob_unmap(&m);
            return td_fail(err, TD_ENOMEM, NULL, "%s: cannot allocate %zu bytes", path, bytes);
        }
        memcpy((char *)copy + shift, m.payload, m.len);
        payload = (char *)copy + shift;
    }
    pthread_mutex_lock(&c->mu);
    if (m.verified) {
        c->stats.verifications++;
        e->verified = m.stamp;
        e->has_verified = 1;
    }
    c->stats.mapped++;
    c->stats.mapped_bytes += (int64_t)m.map_len;
    c->stats.copied_bytes += copy ? (int64_t)m.len : 0;
    pthread_mutex_unlock(&c->mu);
    e->payload = payload;
    e->len = m.len;
    e->file_bytes = m.map_len;
    e->copy = copy;
    if (copy) td_blob_unmap(&m); /* the copy is what is read */
    e->map = m;
    return TD_OK;
}

td_status td_dscache_acquire(td_dscache *c, const char *id, const char *path,
                             td_dscache_align_fn align, td_dscache_entry **entry,
                             const void **payload, size_t *len, td_error *err)
{
    *entry = NULL;
    *payload = NULL;
    *len = 0;
    td_dscache_entry *e = pin(c, id);
    if (!e) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    td_status rc = TD_OK;
    pthread_mutex_lock(&e->load);
    if (!e->payload) rc = map_entry(e, path, align, err);
    pthread_mutex_unlock(&e->load);
    if (rc) {
        td_dscache_release(e);
        return rc;
    }
    *entry = e;
    *payload = e->payload;
    *len = e->len;
    return TD_OK;
}

void td_dscache_release(td_dscache_entry *e)
{
    if (!e) return;
    td_dscache *c = e->cache;
    pthread_mutex_lock(&c->mu);
    if (--e->refs == 0) {
        if (e->payload) {
            c->stats.mapped--;
            c->stats.mapped_bytes -= (int64_t)e->file_bytes;
            c->stats.copied_bytes -= e->copy ? (int64_t)e->len : 0;
        }
        td_blob_unmap(&e->map);
        free(e->copy);
        e->copy = NULL;
        e->payload = NULL;
        e->len = 0;
        if (e->gone) { /* unlink it */
            td_dscache_entry **pp = &c->head;
            while (*pp != e)
                pp = &(*pp)->next;
            *pp = e->next;
            entry_free(e);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

void td_dscache_forget(td_dscache *c, const char *id)
{
    pthread_mutex_lock(&c->mu);
    for (td_dscache_entry **pp = &c->head; *pp; pp = &(*pp)->next) {
        td_dscache_entry *e = *pp;
        if (e->gone || strcmp(e->id, id) != 0) continue;
        if (e->refs == 0) {
            *pp = e->next;
            entry_free(e);
        } else {
            e->gone = 1;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
}

void td_dscache_stats_get(td_dscache *c, td_dscache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}
