/* bench_softmax.c — W1 / W2 of BENCH.md on the engine alone (no HTTP).
 * Usage: bench_softmax gd|adam N D K EPOCHS [threads]
 * Data as the peer makes it: X standard normal (N, D), y = argmax(X Wtrue) with Wtrue
 * standard normal; softmax with l2 = 1e-3; gd: full batch, lr 0.5; adam: batch 256,
 * lr 1e-3. Prints the median ms per epoch and the final loss. */
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

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s gd|adam N D K EPOCHS [threads]\n", argv[0]);
        return 2;
    }
    int adam = strcmp(argv[1], "adam") == 0;
    int64_t N = atoll(argv[2]), D = atoll(argv[3]), K = atoll(argv[4]), E = atoll(argv[5]);
    int threads = argc > 6 ? atoi(argv[6]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    /* X 64-byte aligned, as the daemon's shared dataset mappings give it (store.h) */
    size_t xbytes = (sizeof(float) * (size_t)(N * D) + 63) / 64 * 64;
    float *X = aligned_alloc(64, xbytes), *Wt = malloc(sizeof(float) * (size_t)(D * K));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    td_rng rng;
    td_rng_seed(&rng, 0, 0);
    for (int64_t i = 0; i < N * D + D * K; i += 2) { /* Box-Muller */
        double u = td_rng_uniform(&rng), v = td_rng_uniform(&rng);
        double r = sqrt(-2 * log(1 - u));
        float a = (float)(r * cos(2 * M_PI * v)), b = (float)(r * sin(2 * M_PI * v));
        float *dst0 = i < N * D ? &X[i] : &Wt[i - N * D];
        *dst0 = a;
        if (i + 1 < N * D + D * K) *(i + 1 < N * D ? &X[i + 1] : &Wt[i + 1 - N * D]) = b;
    }
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
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.epochs = E;
    hp.l2 = 1e-3;
    if (adam) {
        hp.optimizer = TD_OPT_ADAM;
        hp.lr = 1e-3;
        hp.batch_size = 256;
    } else {
        hp.lr = 0.5;
    }
    td_error err;
    td_trainer *t;
    if (td_trainer_create(&t, &hp, &ds, NULL, &err)) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 1;
    }
    td_trainer_set_threads(t, threads);
    double *ms = malloc(sizeof(double) * (size_t)E), prev = 0, loss = 0;
    td_record rec;
    for (int64_t e = 0; e < E; e++) {
        if (td_trainer_step(t, &rec, &err)) {
            fprintf(stderr, "bench: %s\n", err.message);
            return 1;
        }
        ms[e] = (rec.v[1] - prev) * 1e3;
        prev = rec.v[1];
        loss = rec.v[2];
    }
    qsort(ms, (size_t)E, sizeof(double), cmp_d);
    printf("traind %s N=%lld D=%lld K=%lld epochs=%lld threads=%d: median %.2f ms/epoch, "
           "final loss %.4f\n",
           argv[1], (long long)N, (long long)D, (long long)K, (long long)E, threads, ms[E / 2],
           loss);
    td_trainer_destroy(t);
    return 0;
}
