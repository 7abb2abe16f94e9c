/* fixtures.h — data sets and hyperparameters shared by the engine suites (test_mlp.c,
 * test_gmm.c, test_embed.c) and the REST suites that train the same models through a live
 * daemon (test_rest_mlp.c, test_rest_gmm.c), so both sides see the same data. The names are
 * the ones the engine suites always used; everything malloc'd is the caller's. */
#ifndef TRAIND_TESTS_FIXTURES_H
#define TRAIND_TESTS_FIXTURES_H

#include <cJSON.h>
#include <stdint.h>

#include "traind/train.h"

/* ---- mlp (test_mlp.c, test_rest_mlp.c) ---- */

/* Uniform [0, 1) from a fixed LCG (the same data everywhere), and a normal from two. */
double urand(unsigned *s);

double nrand(unsigned *s);

/* Frees X, y and Y of a dataset made here. */
void free_data(td_dataset *ds);

/* mlp defaults with hidden layers (h0) or (h0, h1) when h1 > 0, act and seed 5. */
void mlp_hp(td_hparams *hp, int64_t h0, int64_t h1, td_activation act);

/* Two interleaved spirals of n/2 points each, 1.5 turns, scaled into [-1, 1]^2. */
td_dataset spirals(int64_t n);

#define SPIRAL_HP                                                         \
    "{\"hidden\":[64,64],\"activation\":\"tanh\",\"optimizer\":\"adam\"," \
    "\"lr\":0.01,\"batch_size\":64,\"epochs\":60,\"seed\":1}"

/* The engine's side of SPIRAL_HP. */
void spiral_hp(td_hparams *hp);

/* G = 3 groups of S = 5 ordered levels; the true level of group g rises with g:
 * y_g = clamp(floor(2.5 + s + 0.05 g + 0.5 noise_g)) with s linear in x: the expected level
 * rises with g, each group's label is noisy on its own. */
td_dataset rising(int64_t N, unsigned seed);

/* ---- gmm (test_gmm.c, test_rest_gmm.c) ---- */

/* N rows of E features around M centres (spread 4 x scale), unit-ish noise; the caller frees
 * X. Labels (true cluster) into y when non-NULL. */
float *gmm_blobs(int64_t N, int64_t E, int64_t M, uint64_t seed, double offset, int32_t *y);

/* gmm defaults with M components and cov. */
td_hparams gmm_hp(int64_t M, td_covariance cov);

/* Every number of a nested array, depth first, into out (n of them); returns the count. */
int64_t flatten(double *out, int64_t n, const cJSON *v);

/* ---- embed_gmm (test_embed.c, test_rest_gmm.c) ---- */

/* N rows of D features around K centres (4 x standard normal per coordinate), unit
 * noise; labels into y. The caller frees X. */
float *embed_blobs(int64_t N, int64_t D, int64_t K, uint64_t seed, int32_t *y);

/* embed_gmm defaults with embedding_dim E, M components and seed. */
td_hparams embed_hp(int64_t E, int64_t M, int64_t seed);

/* Purity of labels a (N, values in [0, M)) against y (values in [0, K)). */
double purity(const float *a, const int32_t *y, int64_t N, int64_t M, int64_t K);

/* ---- faults (test_faults_engine.c, test_faults.c) ---- */

/* 24 rows of 3 features in 3 classes (static storage, overwritten by each call): labels y
 * (y_cols 1), or with grouped two label columns (the second (i / 3) % 3). */
td_dataset faults_data(int grouped);

#endif
