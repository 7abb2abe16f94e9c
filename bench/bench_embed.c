/* bench_embed.c — W4 of BENCH.md on the engine alone (no HTTP): embed_gmm.
 * Usage: bench_embed N D H E M PAIRS ITERS [threads]
 * The peer's workload (bench/peers/embed_gmm.py): M centres standard normal x 3 in D dimensions,
 * labels uniform, each row its centre plus standard normal noise; network D-H-E ReLU,
 * Adam lr 1e-3 weight_decay 1e-4, PAIRS pairs, gmm_weight 0.1, no warm-up (the peer has
 * none), every row embedded and one EM step (full covariance) per iteration, one combined
 * backward. traind's GMM starts from k-means++ (n_init 5) in iteration 1, the peer's from
 * random rows outside its timed loop: iteration 1 is printed apart and left out of the
 * flatness ratio. Prints the median ms per iteration, the mean of the first and last 10%
 * of the iterations (after iteration 1) and their ratio (the iteration cost must not grow),
 * and the final losses. */
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
    if (argc < 8) {
        fprintf(stderr, "usage: %s N D H E M PAIRS ITERS [threads]\n", argv[0]);
        return 2;
    }
    int64_t N = atoll(argv[1]), D = atoll(argv[2]), H = atoll(argv[3]), E = atoll(argv[4]);
    int64_t M = atoll(argv[5]), P = atoll(argv[6]), I = atoll(argv[7]);
    int threads = argc > 8 ? atoi(argv[8]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (N < 1 || D < 1 || H < 1 || E < 1 || M < 1 || P < 1 || I < 3 || M > N) {
        fprintf(stderr, "bench: bad sizes\n");
        return 2;
    }
    td_rng rng;
    td_rng_seed(&rng, 0, 0);
    double *c = malloc(sizeof(double) * (size_t)(M * D));
    float *X = malloc(sizeof(float) * (size_t)(N * D));
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    for (int64_t i = 0; i < M * D; i++)
        c[i] = 3 * gauss(&rng);
    for (int64_t i = 0; i < N; i++) {
        int64_t k = (int64_t)td_rng_below(&rng, (uint64_t)M);
        y[i] = (int32_t)k;
        for (int64_t j = 0; j < D; j++)
            X[i * D + j] = (float)(c[k * D + j] + gauss(&rng));
    }
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
    hp.mlp.hidden[0] = H;
    hp.embed.embedding_dim = E;
    hp.gmm.components = M;
    hp.embed.pairs_per_iteration = P;
    hp.epochs = I;
    hp.embed.warmup_iterations = 0;
    hp.embed.gmm_weight = 0.1;
    hp.weight_decay = 1e-4;
    td_error err;
    td_trainer *t;
    if (td_trainer_create(&t, &hp, &ds, NULL, &err)) {
        fprintf(stderr, "bench: %s: %s\n", err.field, err.message);
        return 1;
    }
    td_trainer_set_threads(t, threads);
    double *ms = malloc(sizeof(double) * (size_t)I), *sorted = malloc(sizeof(double) * (size_t)I);
    double prev = 0, pair = 0, nll = 0;
    td_record rec;
    int64_t n = 0;
    while (!td_trainer_done(t)) {
        if (td_trainer_step(t, &rec, &err)) {
            fprintf(stderr, "bench: %s\n", err.message);
            return 1;
        }
        ms[n++] = (rec.v[1] - prev) * 1e3;
        prev = rec.v[1];
        pair = rec.v[3];
        nll = rec.v[4];
    }
    memcpy(sorted, ms + 1, sizeof(double) * (size_t)(n - 1));
    qsort(sorted, (size_t)(n - 1), sizeof(double), cmp_d);
    double med = sorted[(n - 1) / 2];
    int64_t k = (n - 1) / 10 > 0 ? (n - 1) / 10 : 1;
    double first = 0, last = 0;
    for (int64_t i = 0; i < k; i++) {
        first += ms[1 + i];
        last += ms[n - k + i];
    }
    first /= (double)k, last /= (double)k;
    printf("traind embed_gmm N=%lld D=%lld H=%lld E=%lld M=%lld pairs=%lld iters=%lld "
           "threads=%d: median %.2f ms/iter (iteration 1 with k-means init %.1f ms; all %lld "
           "iterations %.2f ms/iter), first %lld: %.2f ms, last %lld: %.2f ms, "
           "ratio last/first %.3f, loss %.4f + %.4f\n",
           (long long)N, (long long)D, (long long)H, (long long)E, (long long)M, (long long)P,
           (long long)n, threads, med, ms[0], (long long)n, prev * 1e3 / (double)n, (long long)k,
           first, (long long)k, last, last / first, pair, nll);
    td_trainer_destroy(t);
    td_hparams_fini(&hp);
    free(c), free(X), free(y), free(ms), free(sorted);
    return 0;
}
