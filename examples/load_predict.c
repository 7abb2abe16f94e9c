/* load_predict.c — load a model that train_save wrote and predict.
 *
 * Built against the engine library alone (make examples):
 *   cc -Iinclude load_predict.c build/libtraind_engine.a -lopenblas -lm -pthread
 * Usage: load_predict [MODEL_FILE] [x1 x2 ...]   (default model.tdm and three points)
 *
 * Prints one line per point: its coordinates, the predicted class and the class
 * probabilities. */
#include <stdio.h>
#include <stdlib.h>

#include "traind/train.h"

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "model.tdm";
    td_model m;
    td_error err;
    if (td_model_load(&m, path, &err)) {
        fprintf(stderr, "load_predict: %s: %s\n", err.field, err.message);
        return 1;
    }
    printf("loaded %s: %s, %lld inputs, %lld classes\n", path, td_model_names[m.kind],
           (long long)m.D, (long long)m.K);

    float defaults[] = {-2, 0, 2, 0, 0, 3};
    int64_t D = m.D, n = argc > 2 ? (argc - 2) / D : (D == 2 ? 3 : 0);
    float *X = malloc(sizeof(float) * (size_t)(n * D + 1));
    float *probs = malloc(sizeof(float) * (size_t)(n * m.K + 1));
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)(n * m.G + 1));
    int rc = 1;
    if (!X || !probs || !labels) goto out;
    for (int64_t i = 0; i < n * D; i++)
        X[i] = argc > 2 ? strtof(argv[2 + i], NULL) : defaults[i];
    if (td_model_predict(probs, labels, &m, X, n, D, &err)) {
        fprintf(stderr, "load_predict: %s: %s\n", err.field, err.message);
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        printf("x");
        for (int64_t j = 0; j < D; j++)
            printf(" %g", X[i * D + j]);
        printf("  class %d  p", labels[i * m.G]);
        for (int64_t k = 0; k < m.K; k++)
            printf(" %.6f", probs[i * m.K + k]);
        printf("\n");
    }
    rc = 0;
out:
    free(X), free(probs), free(labels);
    td_model_fini(&m);
    return rc;
}
