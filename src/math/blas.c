/* blas.c — sgemm wrappers (see blas.h). */
#include "math/blas.h"

#include <cblas.h>
#include <pthread.h>

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single_thread(void) { openblas_set_num_threads(1); }

void td_blas_init(void) { pthread_once(&blas_once, blas_single_thread); }

void td_sgemm_nn(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K,
                 float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc)
{
    td_blas_init();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)M, (blasint)N, (blasint)K,
                alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void td_sgemm_tn(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K,
                 float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc)
{
    td_blas_init();
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha,
                A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void td_sgemm_nt(float *C, const float *A, const float *B, int64_t M, int64_t N, int64_t K,
                 float alpha, float beta, int64_t lda, int64_t ldb, int64_t ldc)
{
    td_blas_init();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N, (blasint)K, alpha,
                A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}
