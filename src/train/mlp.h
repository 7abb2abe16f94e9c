/* mlp.h — the mlp model (SPEC §5): dense layers with relu/tanh/sigmoid and a softmax
 * output, forward and backward per layer in llm.c's style.
 *
 * Shapes: B rows of a block, C inputs of a layer, OC its outputs; the network is
 * D -> H_0 -> ... -> H_{L-1} -> K with L = n_hidden hidden layers. Parameters live in the
 * model's one flat block, in td_model_layout's order W0 (D, H_0), b0 (H_0), W1, b1, ...,
 * W_L (H_{L-1}, K), b_L (K); W is (in, out) as in SPEC §1. The softmax and the loss are
 * targets.c's (td_targets_block), so mlp, softmax and /v1/loss share one loss.
 *
 * Threads: td_mlp_eval splits the n rows into chunks whose number depends only on n and
 * the model's shape; each chunk runs the network on blocks of rows with single-threaded
 * sgemm (math/blas.h) and accumulates its own partial gradient; the partials and loss
 * sums are reduced in chunk order. Results are bit-identical for any thread count. The
 * chunks run in waves of one per thread, each in a slot (scratch and partial gradient)
 * that later waves reuse, so memory grows with the threads, not the chunks. All scratch
 * is allocated by td_mlp_create and td_mlp_reserve (when the thread count grows), once per
 * trainer: nothing is allocated per batch. */
#ifndef TRAIND_MLP_H
#define TRAIND_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "math/pool.h"
#include "traind/train.h"
#include "train/targets.h"

/* ---- layers --------------------------------------------------------------------------- */

/* out (B, OC) OVERWRITTEN with inp (B, C) W (C, OC) + b (OC); b may be NULL. */
void td_dense_forward(float *out, const float *inp, const float *W, const float *b, int64_t B,
                      int64_t C, int64_t OC);

/* Backward of td_dense_forward given dout (B, OC) = d(loss)/d(out):
 * dinp (B, C) OVERWRITTEN with dout W^T (skipped when dinp is NULL: the first layer);
 * dW (C, OC) and db (OC) get inp^T dout and the column sums of dout: OVERWRITTEN when
 * accumulate is 0, ADDED to when it is 1. db may be NULL. */
void td_dense_backward(float *dinp, float *dW, float *db, const float *dout, const float *inp,
                       const float *W, int64_t B, int64_t C, int64_t OC, int accumulate);

/* out (n) OVERWRITTEN with act(inp (n)); out may equal inp (in place). */
void td_act_forward(float *out, const float *inp, int64_t n, td_activation act);

/* dinp (n) OVERWRITTEN with dout (n) * act'(x), where out (n) = act(x) is the forward's
 * output (relu: out > 0; tanh: 1 - out^2; sigmoid: out (1 - out)); dinp may equal dout. */
void td_act_backward(float *dinp, const float *dout, const float *out, int64_t n,
                     td_activation act);

/* ---- the network ---------------------------------------------------------------------- */

typedef struct td_mlp td_mlp;

/* Scratch for the network of m's shape (m->params is not used); with_grad 0 leaves out
 * the partial gradients (forward and loss only: td_mlp_eval then needs grad == NULL).
 * NULL when out of memory. */
td_mlp *td_mlp_create(const td_model *m, int with_grad);
void td_mlp_destroy(td_mlp *M);
/* Adds the slots (scratch block and partial gradient) that `threads` threads use: one per
 * chunk in flight, never more than the chunks. 0, or -1 when out of memory: M keeps the
 * slots it has and runs narrower waves, with the same results. */
int td_mlp_reserve(td_mlp *M, int threads);
/* Bytes td_mlp_create(m, with_grad) plus td_mlp_reserve(threads) allocate, without
 * allocating. */
size_t td_mlp_bytes(const td_model *m, int with_grad, int threads);

/* params (m->n_params) OVERWRITTEN with PyTorch's nn.Linear default initialisation, drawn
 * from seed: every W and b of a layer with fan_in inputs uniform in
 * (-1/sqrt(fan_in), 1/sqrt(fan_in)), layer by layer in layout order. */
void td_mlp_init(float *params, const td_model *m, uint64_t seed);

/* The batch rows (n) of X (*, D) (rows NULL: rows 0..n-1) against tg (targets in batch
 * order). st gets the batch's reduced loss and counts; grad (n_params), when non-NULL,
 * is OVERWRITTEN with d(loss)/d(params). */
void td_mlp_eval(td_mlp *M, td_pool *pool, td_batch_stats *st, float *grad, const float *params,
                 const float *X, const int64_t *rows, int64_t n, const td_targets *tg);

/* grad (n_params) OVERWRITTEN with sum over the n rows of dout (n, K) . d(output)/d(params)
 * for X[rows] (rows may be NULL): the backward pass from a given gradient of the output
 * (embed_gmm's combined embedding gradient). The forward is recomputed block by block
 * (nothing of an earlier td_mlp_forward is kept), in the same chunks, so no memory grows
 * with n. Needs with_grad. */
void td_mlp_backward(td_mlp *M, td_pool *pool, float *grad, const float *params, const float *X,
                     const int64_t *rows, int64_t n, const float *dout);

/* logits (n, K) OVERWRITTEN with the network's output for X[rows] (rows may be NULL). */
void td_mlp_forward(td_mlp *M, td_pool *pool, float *logits, const float *params, const float *X,
                    const int64_t *rows, int64_t n);

#endif
