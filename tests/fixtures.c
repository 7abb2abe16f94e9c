/* fixtures.c — data sets and hyperparameters shared by the engine and REST suites (see
 * fixtures.h); moved verbatim from test_mlp.c, test_gmm.c, test_embed.c and test_faults.c. */
#include "fixtures.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "math/rng.h"

double urand(unsigned *s) /* uniform [0, 1), a fixed LCG: the same data everywhere */
{
    *s = *s * 1664525u + 1013904223u;
    return (double)(*s >> 8) / 16777216.0;
}

double nrand(unsigned *s)
{
    double u = urand(s), v = urand(s);
    return sqrt(-2 * log(1 - u)) * cos(2 * M_PI * v);
}

void free_data(td_dataset *ds)
{
    free((void *)ds->X);
    free((void *)ds->y);
    free((void *)ds->Y);
}

void mlp_hp(td_hparams *hp, int64_t h0, int64_t h1, td_activation act)
{
    td_hparams_defaults(hp, TD_MODEL_MLP);
    hp->mlp.n_hidden = h1 > 0 ? 2 : 1;
    hp->mlp.hidden[0] = h0;
    hp->mlp.hidden[1] = h1;
    hp->mlp.activation = act;
    hp->seed = 5;
}

/* Two interleaved spirals of n/2 points each, 1.5 turns, scaled into [-1, 1]^2. */
td_dataset spirals(int64_t n)
{
    float *X = malloc(sizeof(float) * (size_t)(2 * n));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
    unsigned s = 3;
    for (int64_t i = 0; i < n; i++) {
        int cls = (int)(i & 1);
        double t = sqrt((i / 2 + 0.5) / (double)(n / 2)) * 3 * M_PI;
        double r = t / (3 * M_PI);
        double a = t + cls * M_PI;
        X[2 * i] = (float)(r * cos(a) + 0.01 * nrand(&s));
        X[2 * i + 1] = (float)(r * sin(a) + 0.01 * nrand(&s));
        y[i] = cls;
    }
    return (td_dataset){.N = n, .D = 2, .X = X, .y = y, .y_cols = 1};
}

void spiral_hp(td_hparams *hp)
{
    mlp_hp(hp, 64, 64, TD_ACT_TANH);
    hp->optimizer = TD_OPT_ADAM;
    hp->lr = 0.01;
    hp->batch_size = 64;
    hp->epochs = 60;
    hp->seed = 1;
}

/* G = 3 groups of S = 5 ordered levels; the true level of group g rises with g:
 * y_g = clamp(floor(2.5 + s + 0.05 g + 0.5 noise_g)) with s linear in x: the expected level
 * rises with g, each group's label is noisy on its own. */
td_dataset rising(int64_t N, unsigned seed)
{
    enum { D = 4, G = 3, S = 5 };
    float *X = malloc(sizeof(float) * (size_t)(N * D));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)(N * G));
    for (int64_t n = 0; n < N; n++) {
        double s = 0;
        for (int d = 0; d < D; d++) {
            X[n * D + d] = (float)nrand(&seed);
            s += X[n * D + d] * (0.6 - 0.25 * d);
        }
        for (int g = 0; g < G; g++) {
            int v = (int)floor(2.5 + s + 0.05 * g + 0.5 * nrand(&seed));
            y[n * G + g] = v < 0 ? 0 : v >= S ? S - 1 : v;
        }
    }
    return (td_dataset){.N = N, .D = D, .X = X, .y = y, .y_cols = G};
}

static double gauss(td_rng *r)
{
    double u = td_rng_uniform(r), v = td_rng_uniform(r);
    return sqrt(-2 * log(1 - u)) * cos(2 * M_PI * v);
}

/* N rows of E features around M centres (spread 4 x scale), unit-ish noise; the caller frees
 * X. Labels (true cluster) into y when non-NULL. */
float *gmm_blobs(int64_t N, int64_t E, int64_t M, uint64_t seed, double offset, int32_t *y)
{
    td_rng r;
    td_rng_seed(&r, seed, 7);
    double *c = malloc(sizeof(double) * (size_t)(M * E));
    float *X = malloc(sizeof(float) * (size_t)(N * E));
    ck_assert(c && X);
    for (int64_t i = 0; i < M * E; i++)
        c[i] = 4 * gauss(&r);
    for (int64_t i = 0; i < N; i++) {
        int64_t k = (int64_t)td_rng_below(&r, (uint64_t)M);
        double s = 0.5 + (double)k / (double)M; /* clusters of different spread */
        if (y) y[i] = (int32_t)k;
        for (int64_t j = 0; j < E; j++)
            X[i * E + j] = (float)(offset + c[k * E + j] + s * gauss(&r) * (1 + 0.3 * (j % 3)));
    }
    free(c);
    return X;
}

td_hparams gmm_hp(int64_t M, td_covariance cov)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = M;
    hp.gmm.covariance = cov;
    return hp;
}

/* Every number of a nested array, depth first, into out (n of them); returns the count. */
int64_t flatten(double *out, int64_t n, const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        ck_assert_int_gt(n, 0);
        out[0] = v->valuedouble;
        return 1;
    }
    int64_t k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, v) k += flatten(out + k, n - k, c);
    return k;
}

/* N rows of D features around K centres (4 x standard normal per coordinate), unit
 * noise; labels into y. The caller frees X. */
float *embed_blobs(int64_t N, int64_t D, int64_t K, uint64_t seed, int32_t *y)
{
    td_rng r;
    td_rng_seed(&r, seed, 7);
    double *c = malloc(sizeof(double) * (size_t)(K * D));
    float *X = malloc(sizeof(float) * (size_t)(N * D));
    ck_assert(c && X);
    for (int64_t i = 0; i < K * D; i++)
        c[i] = 4 * gauss(&r);
    for (int64_t i = 0; i < N; i++) {
        int64_t k = (int64_t)td_rng_below(&r, (uint64_t)K);
        y[i] = (int32_t)k;
        for (int64_t j = 0; j < D; j++)
            X[i * D + j] = (float)(c[k * D + j] + gauss(&r));
    }
    free(c);
    return X;
}

td_hparams embed_hp(int64_t E, int64_t M, int64_t seed)
{
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
    hp.embed.embedding_dim = E;
    hp.gmm.components = M;
    hp.seed = seed;
    return hp;
}

/* Purity of labels a (N, values in [0, M)) against y (values in [0, K)). */
double purity(const float *a, const int32_t *y, int64_t N, int64_t M, int64_t K)
{
    int64_t *cnt = calloc((size_t)(M * K), sizeof(int64_t)), tot = 0;
    ck_assert(cnt);
    for (int64_t i = 0; i < N; i++) {
        ck_assert(a[i] >= 0 && a[i] < M);
        cnt[(int64_t)a[i] * K + y[i]]++;
    }
    for (int64_t m = 0; m < M; m++) {
        int64_t best = 0;
        for (int64_t k = 0; k < K; k++)
            best = cnt[m * K + k] > best ? cnt[m * K + k] : best;
        tot += best;
    }
    free(cnt);
    return (double)tot / (double)N;
}

/* ---- faults ---- */

#define AN 24

static float g_X[AN * 3];
static int32_t g_y[AN], g_yg[AN * 2];

td_dataset faults_data(int grouped)
{
    for (int i = 0; i < AN; i++) {
        for (int j = 0; j < 3; j++)
            g_X[i * 3 + j] = (float)(i % 3) * 1.5f + (float)((i * 7 + j * 5) % 11) / 11.0f;
        g_y[i] = i % 3;
        g_yg[i * 2] = i % 3;
        g_yg[i * 2 + 1] = (i / 3) % 3;
    }
    td_dataset ds = {.N = AN, .D = 3, .X = g_X, .y = g_y, .y_cols = 1};
    if (grouped) ds.y = g_yg, ds.y_cols = 2;
    return ds;
}
