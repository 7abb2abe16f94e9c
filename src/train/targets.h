/* targets.h — the loss of a batch of logits against its targets, as the trainers use it.
 *
 * The models produce logits (rows, K); everything after that is shared: the batch's
 * denominators (computed once per batch), the loss and d(loss)/d(logits) of a block of
 * rows through loss.c's "_sum" functions, the argmax accuracy, and the reduction of the
 * blocks' sums into the batch's reduced loss. A model may evaluate the batch in one block
 * (mlp) or in many small ones while the rows are in cache (softmax's fused kernel); the
 * result is the same function of the logits. */
#ifndef TRAIND_TARGETS_H
#define TRAIND_TARGETS_H

#include <stdint.h>

#include "traind/loss.h"

/* What the loss is computed against, for the rows of one batch, in batch order. */
typedef struct td_targets {
    const int32_t *y; /* (n, G) class indices, or NULL */
    const float *Y;   /* (n, K) probabilities, or NULL */
    int64_t G;        /* groups (1 = plain) */
    td_ce_opts ce;    /* ignore_index, class_weights, label_smoothing (mean) */
    double monotone_weight, monotone_margin;
} td_targets;

/* The batch's denominators of the mean reductions. */
typedef struct td_batch_denoms {
    int64_t n;       /* rows in the batch */
    double denom;    /* index targets: sum of the weights of non-ignored rows */
    double ce_count; /* grouped: non-ignored (row, group) entries */
} td_batch_denoms;

/* Un-reduced sums of one or more blocks. */
typedef struct td_loss_sums {
    double loss_sum, ce_sum, pen_sum;
    int64_t violations, correct, counted;
} td_loss_sums;

/* The reduced loss of a batch. */
typedef struct td_batch_stats {
    double loss;              /* data loss of the batch (mean over the batch) */
    int defined;              /* 0 when every target was ignored */
    double cross_entropy;     /* grouped: the ce part; otherwise == loss */
    double penalty;           /* grouped: mean penalty (unweighted) */
    int64_t violations;       /* grouped: rows whose argmax sequence decreases */
    int64_t correct, counted; /* argmax accuracy over non-ignored targets */
} td_batch_stats;

/* d for the n rows of tg. */
void td_targets_denoms(td_batch_denoms *d, const td_targets *tg, int64_t n);

/* Rows [first, first + nb) of the batch: logits (nb, K) of those rows. Adds their loss
 * sums and accuracy counts to *s; dlogits (nb, K), when non-NULL, is OVERWRITTEN with
 * d(batch loss)/d(logits) (the batch's denominators applied). */
void td_targets_block(td_loss_sums *s, float *dlogits, const float *logits, int64_t first,
                      int64_t nb, int64_t K, const td_targets *tg, const td_batch_denoms *d);

/* *acc += *s. */
void td_loss_sums_add(td_loss_sums *acc, const td_loss_sums *s);

/* The batch's reduced loss from the sums of all its blocks. */
void td_targets_finish(td_batch_stats *st, const td_loss_sums *s, const td_batch_denoms *d,
                       const td_targets *tg);

#endif
