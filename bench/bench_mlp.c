/* bench_mlp.c — W7 of BENCH.md on the engine alone (no HTTP).
 * Usage: bench_mlp N D H1 H2 K BATCH EPOCHS [threads] [runs]
 * Data as the peer (bench/peers/mlp.py) makes it: X standard normal (N, D), y = argmax(X Wtrue)
 * with Wtrue standard normal (D, K), from a fixed seed. mlp D-H1-H2-K, ReLU, Adam lr 1e-3,
 * mini-batches of BATCH with the per-epoch shuffle. Each run builds a fresh trainer and
 * trains EPOCHS epochs; prints the median over the runs of the ms per epoch and the final
 * loss. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "math/rng.h"
#include "traind/train.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* dst (n) standard normal by Box-Muller from r. */
static void normals(float *dst, int64_t n, td_rng *r)
{
    for (int64_t i = 0; i < n; i += 2) {
        double u = td_rng_uniform(r), v = td_rng_uniform(r);
        double rad = sqrt(-2 * log(1 - u));
        dst[i] = (float)(rad * cos(2 * M_PI * v));
        if (i + 1 < n) dst[i + 1] = (float)(rad * sin(2 * M_PI * v));
    }
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: %s N D H1 H2 K BATCH EPOCHS [threads] [runs]\n", argv[0]);
        return 2;
    }
    int64_t N = atoll(argv[1]), D = atoll(argv[2]), H1 = atoll(argv[3]), H2 = atoll(argv[4]);
    int64_t K = atoll(argv[5]), B = atoll(argv[6]), E = atoll(argv[7]);
    int threads = argc > 8 ? atoi(argv[8]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    int runs = argc > 9 ? atoi(argv[9]) : 3;
    if (N < 1 || D < 1 || H1 < 1 || H2 < 1 || K < 2 || B < 0 || E < 1 || runs < 1) {
        fprintf(stderr, "bench: bad arguments\n");
        return 2;
    }
    float *X = malloc(sizeof(float) * (size_t)(N * D));
    float *Wt = malloc(sizeof(float) * (size_t)(D * K));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    if (!X || !Wt || !y) return 1;
    td_rng rng;
    td_rng_seed(&rng, 0, 0);
    normals(X, N * D, &rng);
    normals(Wt, D * K, &rng);
    for (int64_t n = 0; n < N; n++) {
        int64_t best = 0;
        double bv = -INFINITY;
        for (int64_t k = 0; k < K; k++) {
            double z = 0;
            for (int64_t d = 0; d < D; d++)
                z += X[n * D + d] * Wt[d * K + k];
            if (z > bv) bv = z, best = k;
        }
        y[n] = (int32_t)best;
    }
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.n_hidden = 2;
    hp.mlp.hidden[0] = H1;
    hp.mlp.hidden[1] = H2;
    hp.mlp.activation = TD_ACT_RELU;
    hp.optimizer = TD_OPT_ADAM;
    hp.lr = 1e-3;
    hp.batch_size = B;
    hp.epochs = E;
    hp.n_classes = K;

    double *ms = malloc(sizeof(double) * (size_t)runs), loss = 0;
    for (int run = 0; run < runs; run++) {
        td_error err;
        td_trainer *t;
        if (td_trainer_create(&t, &hp, &ds, NULL, &err)) {
            fprintf(stderr, "bench: %s\n", err.message);
            return 1;
        }
        td_trainer_set_threads(t, threads);
        td_record rec;
        for (int64_t e = 0; e < E; e++) {
            if (td_trainer_step(t, &rec, &err)) {
                fprintf(stderr, "bench: %s\n", err.message);
                return 1;
            }
        }
        ms[run] = rec.v[1] / (double)E * 1e3; /* elapsed_s covers the training epochs only */
        loss = rec.v[2];
        td_trainer_destroy(t);
    }
    qsort(ms, (size_t)runs, sizeof(double), cmp_d);
    printf("traind mlp N=%lld D=%lld H=%lld,%lld K=%lld batch=%lld epochs=%lld threads=%d "
           "runs=%d: median %.0f ms/epoch (min %.0f), final loss %.4f\n",
           (long long)N, (long long)D, (long long)H1, (long long)H2, (long long)K, (long long)B,
           (long long)E, threads, runs, ms[runs / 2], ms[0], loss);
    free(ms);
    free(X), free(Wt), free(y);
    return 0;
}
