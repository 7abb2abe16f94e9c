/* linear_isa.h — the softmax kernel's inner loops, one set per instruction-set level
 * (math/isa.h), for linear.c. The bodies are in linear_kern.h, compiled once per level by
 * linear_isa.c. */
#ifndef TRAIND_LINEAR_ISA_H
#define TRAIND_LINEAR_ISA_H

#include <stdint.h>

#include "math/isa.h"
#include "train/targets.h"

#define TD_LIN_RB 16 /* rows per block */

/* The packed weights: Wt (K, DP) the transposed W, zero-padded to DP = D rounded up to 16
 * (64-byte aligned rows), b (K). */
typedef struct td_lin_args {
    int64_t D, K, DP;
    const float *Wt, *b;
} td_lin_args;

/* The cross entropy of one block against class-index targets without class weights or
 * label smoothing (the common case): rows [0, nb) of logits (nb, K), targets y (nb);
 * ignore is the ignore_index, scale = 1/denominator of the batch. Adds the block's loss
 * sum and accuracy counts to *s and OVERWRITES dz (TD_LIN_RB, K) with scale * d(loss)/dz
 * (rows nb.. zero), as td_targets_block does, up to the order of one sum. Returns 0 and
 * touches nothing when a logit is not finite (the caller then takes td_targets_block). */
typedef int (*td_lin_xent_fn)(td_loss_sums *s, float *dz, const float *logits, const int32_t *y,
                              int64_t nb, int64_t K, int32_t ignore, float scale);

typedef struct td_lin_kernels {
    /* logits (TD_LIN_RB, K) OVERWRITTEN with X[block] W + b; x (TD_LIN_RB) the block's
     * rows (D each), next (TD_LIN_RB) rows to prefetch or NULLs */
    void (*logits)(const td_lin_args *L, float *restrict logits, const float *const *x,
                   const float *const *next);
    /* dWt (K, DP) += dz^T X[block], db (K) += column sums of dz (TD_LIN_RB, K) */
    void (*grad)(const td_lin_args *L, float *restrict dWt, float *restrict db,
                 const float *restrict dz, const float *const *x);
    td_lin_xent_fn xent; /* NULL at levels without one, and for K > 16 */
} td_lin_kernels;

/* The kernels of td_isa()'s level. */
const td_lin_kernels *td_lin_kernels_get(void);

#endif
