/* linear.h — the softmax model's fused kernel: logits = X W + b, the loss of SPEC §2 on
 * each block of rows, and the weight gradient, in one pass over X.
 *
 * Rows are addressed through an index list (mini-batches, validation rows) or directly
 * (rows == NULL: rows 0..n-1). Work is split into at most TD_LINEAR_MAX_CHUNKS chunks
 * whose number depends only on n; each chunk writes its own partial sums, reduced in chunk
 * order, so results are bit-identical for any thread count. The chunks run in waves of
 * one chunk per thread, each in a slot (partial gradient and scratch) that the next wave
 * reuses: memory grows with the threads (td_linear_reserve), not with the chunks. */
#ifndef TRAIND_LINEAR_H
#define TRAIND_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "math/pool.h"
#include "train/targets.h"

#define TD_LINEAR_MAX_CHUNKS 16

typedef struct td_linear td_linear;

/* Scratch for a model of D inputs and K outputs, for batches of at most max_rows rows
 * (every n passed below), with the slots one thread needs; with_grad 0 leaves out the
 * partial gradients (td_linear_eval then needs dW == NULL). NULL on allocation failure. */
td_linear *td_linear_create(int64_t D, int64_t K, int with_grad, int64_t max_rows);
/* Adds the slots that `threads` threads use on batches of max_rows rows: one per chunk
 * in flight, or up to 1 MiB of them for a small model; never more than the chunks.
 * 0, or -1 when out of memory: L keeps the slots it has and runs narrower waves, with the
 * same results. */
int td_linear_reserve(td_linear *L, int64_t max_rows, int threads);
/* Bytes that td_linear_create plus td_linear_reserve(threads) allocate, without
 * allocating. */
size_t td_linear_bytes(int64_t D, int64_t K, int with_grad, int64_t max_rows, int threads);
void td_linear_destroy(td_linear *L);

/* Evaluates the batch rows (n) of X (*, D): W (D, K), b (K) or NULL.
 * st gets the batch's reduced loss and counts. When dW is non-NULL, dW (D, K) and db (K)
 * (db may be NULL) are OVERWRITTEN with d(loss)/d(W), d(loss)/d(b). */
void td_linear_eval(td_linear *L, td_pool *pool, td_batch_stats *st, float *dW, float *db,
                    const float *W, const float *b, const float *X, const int64_t *rows, int64_t n,
                    const td_targets *tg);

/* logits (n, K) OVERWRITTEN with X[rows] W + b. */
void td_linear_forward(td_linear *L, td_pool *pool, float *logits, const float *W, const float *b,
                       const float *X, const int64_t *rows, int64_t n);

#endif
