/* xxh64.c — the xxHash 64-bit algorithm (XXH64), streaming: the checksum of the store's
 * blobs (store/blob.c) and of the engine's model files (train/model_file.c). */
#include "math/xxh64.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t xround(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl64(acc, 31);
    return acc * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t v)
{
    acc ^= xround(0, v);
    return acc * P1 + P4;
}

void td_xxh64_init(td_xxh64_state *h, uint64_t seed)
{
    memset(h, 0, sizeof *h);
    h->seed = seed;
    h->v[0] = seed + P1 + P2;
    h->v[1] = seed + P2;
    h->v[2] = seed;
    h->v[3] = seed - P1;
}

void td_xxh64_update(td_xxh64_state *h, const void *data, size_t len)
{
    const uint8_t *p = data, *end = p + len;
    if (len == 0) return;
    h->total += len;
    if (h->memsize + len < 32) {
        memcpy(h->mem + h->memsize, p, len);
        h->memsize += (uint32_t)len;
        return;
    }
    if (h->memsize) {
        size_t fill = 32 - h->memsize;
        memcpy(h->mem + h->memsize, p, fill);
        for (int i = 0; i < 4; i++)
            h->v[i] = xround(h->v[i], td_rd64(h->mem + 8 * i));
        p += fill;
        h->memsize = 0;
    }
    uint64_t v0 = h->v[0], v1 = h->v[1], v2 = h->v[2], v3 = h->v[3];
    while (end - p >= 32) {
        v0 = xround(v0, td_rd64(p));
        v1 = xround(v1, td_rd64(p + 8));
        v2 = xround(v2, td_rd64(p + 16));
        v3 = xround(v3, td_rd64(p + 24));
        p += 32;
    }
    h->v[0] = v0, h->v[1] = v1, h->v[2] = v2, h->v[3] = v3;
    if (p < end) {
        memcpy(h->mem, p, (size_t)(end - p));
        h->memsize = (uint32_t)(end - p);
    }
}

uint64_t td_xxh64_digest(const td_xxh64_state *h)
{
    uint64_t acc;
    if (h->total >= 32) {
        acc = rotl64(h->v[0], 1) + rotl64(h->v[1], 7) + rotl64(h->v[2], 12) + rotl64(h->v[3], 18);
        for (int i = 0; i < 4; i++)
            acc = xmerge(acc, h->v[i]);
    } else {
        acc = h->seed + P5;
    }
    acc += h->total;
    const uint8_t *p = h->mem, *end = p + h->memsize;
    while (end - p >= 8) {
        acc ^= xround(0, td_rd64(p));
        acc = rotl64(acc, 27) * P1 + P4;
        p += 8;
    }
    if (end - p >= 4) {
        acc ^= (uint64_t)td_rd32(p) * P1;
        acc = rotl64(acc, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        acc ^= (*p++) * P5;
        acc = rotl64(acc, 11) * P1;
    }
    acc ^= acc >> 33;
    acc *= P2;
    acc ^= acc >> 29;
    acc *= P3;
    acc ^= acc >> 32;
    return acc;
}

uint64_t td_xxh64(const void *data, size_t len, uint64_t seed)
{
    td_xxh64_state h;
    td_xxh64_init(&h, seed);
    td_xxh64_update(&h, data, len);
    return td_xxh64_digest(&h);
}
