/* rng.h — xoshiro256** seeded by splitmix64: small state, saved in checkpoints. */
#ifndef TRAIND_RNG_H
#define TRAIND_RNG_H

#include <stdint.h>

typedef struct td_rng {
    uint64_t s[4];
} td_rng;

void td_rng_seed(td_rng *r, uint64_t seed, uint64_t stream);
uint64_t td_rng_next(td_rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t td_rng_below(td_rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double td_rng_uniform(td_rng *r);
/* Fisher-Yates shuffle of idx (n). */
void td_rng_shuffle(td_rng *r, int64_t *idx, int64_t n);

#endif
