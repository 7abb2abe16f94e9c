/* blas.h — thin single-precision GEMM wrappers over OpenBLAS's cblas.
 *
 * All matrices are row-major. OpenBLAS is made single-threaded once, on the first call
 * (pthread_once): the engine parallelises itself with td_pool over fixed chunks of rows,
 * so a product's result must not depend on how many threads BLAS would have used, and
 * BLAS threads must not oversubscribe the cores the job manager hands out. */
#ifndef TRAIND_BLAS_H
#define TRAIND_BLAS_H

#include <stdint.h>

/* Makes OpenBLAS single-threaded (idempotent, thread-safe). The wrappers below call it;
 * call it directly before using cblas elsewhere. */
void td_blas_init(void);

/* C (M, N) = alpha * A (M, K) B (K, N) + beta * C. lda, ldb, ldc are row strides. */
void td_sgemm_nn(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K,
                 float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc);

/* C (M, N) = alpha * A^T B + beta * C with A stored (K, M) and B (K, N). */
void td_sgemm_tn(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K,
                 float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc);

/* C (M, N) = alpha * A B^T + beta * C with A (M, K) and B stored (N, K). */
void td_sgemm_nt(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K,
                 float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc);

#endif
