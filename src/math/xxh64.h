/* xxh64.h — XXH64 (the xxHash 64-bit algorithm), streaming and one-shot, and the
 * little-endian loads and stores of the binary formats that carry it (store/blob.h, the
 * engine's model files). */
#ifndef TRAIND_MATH_XXH64_H
#define TRAIND_MATH_XXH64_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct td_xxh64_state {
    uint64_t v[4];
    uint64_t total;
    uint8_t mem[32];
    uint32_t memsize;
    uint64_t seed;
} td_xxh64_state;

void td_xxh64_init(td_xxh64_state *h, uint64_t seed);
void td_xxh64_update(td_xxh64_state *h, const void *data, size_t len);
uint64_t td_xxh64_digest(const td_xxh64_state *h);
/* One-shot convenience. */
uint64_t td_xxh64(const void *data, size_t len, uint64_t seed);

/* ---- little-endian loads and stores ------------------------------------------------ */

static inline uint64_t td_rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* The 32-bit ones byte by byte (compilers fold it into one load or store). */
static inline uint32_t td_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void td_wr64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, 8);
}

static inline void td_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif
