/* dataset.h — the training data the engine reads: borrowed float32/int32 arrays. */
#ifndef TRAIND_DATASET_H
#define TRAIND_DATASET_H

#include <stdint.h>

/* What a dataset's targets are. */
typedef enum {
    TD_TARGET_NONE = 0, /* no labels (gmm) */
    TD_TARGET_INDEX,    /* y (N, 1) class indices */
    TD_TARGET_GROUPED,  /* y (N, G) class indices per group, G > 1 */
    TD_TARGET_PROBS     /* Y (N, K) probabilities */
} td_target_kind;

/* All arrays are row-major and borrowed (the caller keeps them alive). */
typedef struct td_dataset {
    int64_t N, D;
    const float *X;   /* (N, D) */
    const int32_t *y; /* (N, y_cols) class indices, or NULL */
    int64_t y_cols;   /* 1 for plain labels, G for grouped targets */
    const float *Y;   /* (N, Y_cols) probability targets, or NULL */
    int64_t Y_cols;
    const int32_t *pairs;       /* (P, 2) row indices, or NULL */
    const int32_t *pair_labels; /* (P) 1 similar / 0 dissimilar */
    int64_t P;
} td_dataset;

#endif
