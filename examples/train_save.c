/* train_save.c — train a softmax classifier on arrays in memory and save it.
 *
 * Built against the engine library alone (make examples):
 *   cc -Iinclude train_save.c build/libtraind_engine.a -lopenblas -lm -pthread
 * Usage: train_save [MODEL_FILE]   (default model.tdm; load_predict reads it)
 *
 * The data: 300 points in the plane, 100 around each of three centres, the class being the
 * centre. Prints the loss every 50 epochs, then the training accuracy. */
#include <stdio.h>
#include <stdlib.h>

#include "traind/train.h"

#define ROWS 300
#define DIM 2
#define CLASSES 3

static const float centres[CLASSES][DIM] = {{-2, 0}, {2, 0}, {0, 3}};

static int print_loss(const td_trainer *t, const td_record *rec, void *ctx)
{
    int loss = *(const int *)ctx;
    if (td_trainer_epoch(t) % 50 == 0)
        printf("epoch %3lld  loss %.6f\n", (long long)td_trainer_epoch(t), rec->v[loss]);
    return 0; /* nonzero would stop the run */
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "model.tdm";
    static float X[ROWS * DIM];
    static int32_t y[ROWS];
    unsigned s = 12345; /* a small LCG: the same points on every machine */
    for (int i = 0; i < ROWS; i++) {
        y[i] = i % CLASSES;
        for (int j = 0; j < DIM; j++) {
            s = s * 1103515245u + 12345u;
            X[i * DIM + j] = centres[y[i]][j] + ((float)(s >> 8) / (float)(1u << 24) - 0.5f);
        }
    }
    td_dataset ds = {.N = ROWS, .D = DIM, .X = X, .y = y, .y_cols = 1};

    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX); /* sgd, lr 0.1, full batch, 100 epochs */
    hp.lr = 0.5;
    hp.epochs = 200;

    td_error err;
    td_trainer *t;
    td_status st = td_trainer_create(&t, &hp, &ds, NULL, &err);
    if (st) {
        fprintf(stderr, "train_save: %s: %s\n", err.field, err.message);
        return 1;
    }
    int loss = td_trainer_column(t, "loss"), acc = td_trainer_column(t, "accuracy");
    td_record last;
    st = td_trainer_run(t, print_loss, &loss, &last, &err);
    if (!st) st = td_model_save(td_trainer_model(t), path, &err);
    if (st) {
        fprintf(stderr, "train_save: %s: %s\n", err.field, err.message);
        td_trainer_destroy(t);
        return 1;
    }
    printf("trained %lld epochs: loss %.6f, accuracy %.4f\n", (long long)td_trainer_epoch(t),
           last.v[loss], last.v[acc]);
    printf("saved %s (%lld parameters)\n", path, (long long)td_trainer_model(t)->n_params);
    td_trainer_destroy(t);
    return 0;
}
