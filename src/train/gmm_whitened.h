/* gmm_whitened.h — the two pieces of gmm.c that the full and tied covariances run in
 * either precision, written once. gmm.c includes this file twice, with
 *   GMM_REAL    float (the float factors PT, cv and the scratch xbT, yT, gT) or double
 *               (the ill-conditioned path, w->edbl: PTd, cvd, xbTd, yTd, gTd);
 *   GMM_GEMM    cblas_sgemm or cblas_dgemm (OpenBLAS is single-threaded by then:
 *               td_gmm_work_create called td_blas_init);
 *   GMM_WHITEN, GMM_GRAD  the names of the two functions;
 * and the file undefines them at its end. The arithmetic is the precision's own (rk, float,
 * is promoted in double), as in the two copies this replaces: results are unchanged. No
 * include guard: included once per precision. */

/* y = L^-1 (x - c) of the block's nb rows xb (E, B) for the group of mg components from
 * g0: y (mg*E, B) OVERWRITTEN; tied: the one factor, y (E, B). P: the factors' rows
 * (full (M*E, E), tied (E, E)). */
static void GMM_WHITEN(const td_gmm_work *w, GMM_REAL *y, const GMM_REAL *P, const GMM_REAL *xb,
                       int64_t g0, int64_t mg, int64_t nb)
{
    int64_t E = w->E, B = w->B;
    int64_t rows = w->cov == TD_COV_TIED ? E : mg * E;
    GMM_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, (blasint)nb, (blasint)E, 1,
             P + (w->cov == TD_COV_TIED ? 0 : g0 * E * E), (blasint)E, xb, (blasint)B, 0, y,
             (blasint)B);
}

/* The gradient g (E, B) of a full or tied block of nb rows, OVERWRITTEN (see grad_ctx);
 * g + E*B (E, B) is scratch (tied: z = sum_k r_k (y - cv_k), then g = L^-T z). y: the
 * block's whitened rows from log_densities (full: of the last component group), consumed;
 * xb, P, cv: the block's centred rows, the factors and L_k^-1 (mu_k - c); lp (M, B): the
 * responsibilities. */
TD_CLONES
static void GMM_GRAD(const td_gmm_work *w, GMM_REAL *g, GMM_REAL *y, const GMM_REAL *xb,
                     const GMM_REAL *P, const GMM_REAL *cv, const float *lp, int64_t nb)
{
    int64_t M = w->M, E = w->E, B = w->B;
    for (int64_t b = 0; b < E; b++)
        memset(g + b * B, 0, sizeof(GMM_REAL) * (size_t)nb);
    if (w->cov == TD_COV_TIED) {
        GMM_REAL *zs = g + E * B;
        for (int64_t b = 0; b < E; b++) {
            const GMM_REAL *restrict yb = y + b * B;
            GMM_REAL *restrict z = zs + b * B;
            for (int64_t i = 0; i < nb; i++)
                z[i] = 0;
            for (int64_t k = 0; k < M; k++) {
                const float *restrict rk = lp + k * B;
                GMM_REAL cb = cv[k * E + b];
                for (int64_t i = 0; i < nb; i++)
                    z[i] += (yb[i] - cb) * rk[i];
            }
        }
        GMM_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)E, (blasint)nb, (blasint)E, 1, P,
                 (blasint)E, zs, (blasint)B, 0, g, (blasint)B);
        return;
    }
    for (int64_t g0 = 0; g0 < M; g0 += w->Mg) {
        int64_t mg = imin(w->Mg, M - g0);
        if (M > w->Mg) /* y holds only the last group: recompute this one */
            GMM_WHITEN(w, y, P, xb, g0, mg, nb);
        for (int64_t kk = 0; kk < mg; kk++) {
            const float *restrict rk = lp + (g0 + kk) * B;
            for (int64_t b = 0; b < E; b++) {
                GMM_REAL *restrict yb = y + (kk * E + b) * B;
                GMM_REAL cb = cv[(g0 + kk) * E + b];
                for (int64_t i = 0; i < nb; i++)
                    yb[i] = (yb[i] - cb) * rk[i];
            }
        }
        GMM_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)E, (blasint)nb,
                 (blasint)(mg * E), 1, P + g0 * E * E, (blasint)E, y, (blasint)B, 1, g, (blasint)B);
    }
}

#undef GMM_REAL
#undef GMM_GEMM
#undef GMM_WHITEN
#undef GMM_GRAD
