/* bench_gmm.c — W3 of BENCH.md on the engine alone (no HTTP): GMM EM, full covariance.
 * Usage: bench_gmm N E M ITERS [threads]
 * Data as the peer (bench/peers/gmm.py) makes it: M centres standard normal x 5, each row a
 * centre picked uniformly plus standard normal noise; means_init = centres + 0.5, weights
 * and covariances from the k-means partition (scikit-learn's semantics when only
 * means_init is given), tol 0, ITERS iterations. Prints the median ms per EM iteration
 * (the first iteration also runs the k-means initialisation: printed apart, as is the
 * median including it) and the final lower bound. */
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

static double gauss(td_rng *r)
{
    double u = td_rng_uniform(r), v = td_rng_uniform(r);
    return sqrt(-2 * log(1 - u)) * cos(2 * M_PI * v);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s N E M ITERS [threads]\n", argv[0]);
        return 2;
    }
    int64_t N = atoll(argv[1]), E = atoll(argv[2]), M = atoll(argv[3]), I = atoll(argv[4]);
    int threads = argc > 5 ? atoi(argv[5]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (N < 1 || E < 1 || M < 1 || I < 1 || M > N) {
        fprintf(stderr, "bench: bad sizes\n");
        return 2;
    }
    td_rng rng;
    td_rng_seed(&rng, 0, 0);
    double *c = malloc(sizeof(double) * (size_t)(M * E));
    float *X = malloc(sizeof(float) * (size_t)(N * E)),
          *mi = malloc(sizeof(float) * (size_t)(M * E));
    for (int64_t i = 0; i < M * E; i++) {
        c[i] = 5 * gauss(&rng);
        mi[i] = (float)(c[i] + 0.5);
    }
    for (int64_t i = 0; i < N; i++) {
        int64_t k = (int64_t)td_rng_below(&rng, (uint64_t)M);
        for (int64_t j = 0; j < E; j++)
            X[i * E + j] = (float)(c[k * E + j] + gauss(&rng));
    }
    td_dataset ds = {.N = N, .D = E, .X = X};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = M;
    hp.gmm.covariance = TD_COV_FULL;
    hp.gmm.max_iter = I;
    hp.tol = 0;
    hp.gmm.means_init = (td_hp_tensor){.v = mi, .n = M * E, .ndim = 2, .dims = {M, E, 0}};
    td_error err;
    td_trainer *t;
    if (td_trainer_create(&t, &hp, &ds, NULL, &err)) {
        fprintf(stderr, "bench: %s\n", err.message);
        return 1;
    }
    td_trainer_set_threads(t, threads);
    double *ms = malloc(sizeof(double) * (size_t)I), prev = 0, lb = 0;
    td_record rec;
    int64_t n = 0;
    while (!td_trainer_done(t)) {
        if (td_trainer_step(t, &rec, &err)) {
            fprintf(stderr, "bench: %s\n", err.message);
            return 1;
        }
        ms[n++] = (rec.v[1] - prev) * 1e3;
        prev = rec.v[1];
        lb = rec.v[3];
    }
    double first = ms[0];
    qsort(ms + 1, (size_t)(n - 1), sizeof(double), cmp_d);
    double med = n > 1 ? ms[1 + (n - 1) / 2] : first;
    printf("traind gmm N=%lld E=%lld M=%lld iters=%lld threads=%d: median %.2f ms/iter "
           "(first iteration with k-means init %.1f ms; all %d iterations %.1f ms/iter), "
           "lower_bound %.4f\n",
           (long long)N, (long long)E, (long long)M, (long long)n, threads, med, first, (int)n,
           prev * 1e3 / (double)n, lb);
    td_trainer_destroy(t);
    hp.gmm.means_init.v = NULL; /* mi freed below */
    td_hparams_fini(&hp);
    free(c), free(X), free(mi), free(ms);
    return 0;
}
