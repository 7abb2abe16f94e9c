/* gmm_impl.h — what gmm.c, gmm_init.c and gmm_model.c share: the EM workspace's layout
 * (struct td_gmm_work), the work-split constants and the small numeric helpers. Private to
 * those three files; the contracts are in gmm.h. */
#ifndef TRAIND_GMM_IMPL_H
#define TRAIND_GMM_IMPL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/gmm.h"

#define LOG_2PI 1.8378770664093453
#define MAX_TASKS 16
#define ROWS_PER_TASK 4096
#define SCRATCH_FLOATS 65536   /* floats in a block's product scratch */
#define EXP_CUT (-69.0f)       /* e^-69 ~ 1e-30: responsibilities below are 0 */
#define MAX_PARAMS (1ll << 26) /* parameters of the largest model accepted */
#define KMEANS_MAX_ITER 300
#define KMEANS_TOL 1e-4          /* x mean feature variance, as scikit-learn */
#define GATHER_WIN 256           /* rows scanned per compaction window */
#define ESUM_DOUBLES (1ll << 23) /* cap on the E-step's per-chunk sum slots */
#define COND_DOUBLE \
    1e3 /* full / tied: a covariance whose condition estimate
                                         exceeds this puts the E-step in double */

typedef struct echunk { /* one E-step / k-means row chunk */
    int64_t lo, hi;
    float *xbT;     /* (E, B) centred rows of a block, transposed */
    float *lp;      /* (M, B) log densities, then exp terms / distances */
    float *mx, *sm; /* (B) row max, row sum */
    double sum;     /* sum of log-likelihoods (k-means: of distances) */
    float worst;    /* lowest log-likelihood, its row */
    int64_t worst_i;
    int64_t changed; /* k-means: labels that changed */
    double tpart[8]; /* k-means++: per-candidate potential */
    double *nk, *rx; /* (M), (M, E): sum r, sum r (x - c) of the chunk */
    float *rxf;      /* (E, M) one block's sum r (x - c) */
    float *gT;       /* (E, B) td_gmm_nll_grad: a block's gradient, made
                                          on first use */
    float *yT;       /* (Mg*E, B) full | (E, B) tied: L^-1 (x - c) */
    /* full and tied with an ill-conditioned covariance (w->edbl): the same in double */
    double *xbTd; /* (E, B) centred rows of a block, transposed */
    double *yTd;  /* (Mg*E, B) full | (E, B) tied: L^-1 (x - c) */
    double *accd; /* (B) squared distances of one component */
    double *gTd;  /* (2, E, B) td_gmm_nll_grad: gradient, then (tied)
                                          sum_k r_k L^-1 (x - mu_k); made on first use (gT
                                          likewise holds (2, E, B) floats for full and tied) */
} echunk;

typedef struct mtask { /* one M-step task */
    int64_t k0, k1, c, lo, hi;
    float *xb;       /* (B2 + GATHER_WIN, E) centred rows with r > 0 */
    float *rr;       /* (B2 + GATHER_WIN) their responsibilities */
    float *wb;       /* (B2 + GATHER_WIN, E) sqrt(r) (x - mu_k) */
    int64_t *idx;    /* (GATHER_WIN) */
    float *sb;       /* (E) diag block sums */
    double *xd, *wd; /* full and tied: (B2 + GATHER_WIN, E) the rows of xb
                                          in double, sqrt(r) (x - mu_k) */
    double *sd;      /* full and tied: (E, E) block scatter */
} mtask;

struct td_gmm_work {
    const float *X;
    int64_t N, E, M, CS, SA; /* SA: per-component accumulator (E*E full and tied,
                                          else E) */
    int64_t CSK;             /* component k's covariance is covs + k * CSK: CS,
                                          0 for tied (one shared matrix) */
    int dbl;                 /* full and tied: scatter and precision factors in
                                          double */
    int edbl;                /* full and tied, set by td_gmm_prepare: some
                                          covariance is ill-conditioned, so the E-step's log
                                          densities are evaluated in double too */
    td_covariance cov;
    double *centre;  /* (E) */
    float *centre_f; /* (E) */
    float *respT;    /* (M, N) */
    float *loglik;   /* (N) */
    /* prepared parameters */
    float *PT;   /* full: (M*E, E) rows of L_k^-1; tied: (E, E);
                                          diag: (M, E) 1/sd; spherical: (M) precisions */
    float *cv;   /* (M, E) full and tied: L_k^-1 (mu_k - c); else
                                          mu_k - c */
    double *PTd; /* full: (M*E, E) rows of L_k^-1; tied: (E, E) L^-1 */
    double *cvd; /* (M, E) full and tied: L_k^-1 (mu_k - c) */
    double *cst; /* (M) log pi_k + log det P_k - E/2 log 2pi */
    int prepared;
    int sums_valid; /* the chunks' nk/rx come from the last E-step */
    /* E-step chunks */
    int64_t R, B, Mg;
    echunk ch[MAX_TASKS];
    /* M-step tasks */
    int64_t T2, C, B2;
    mtask mt[MAX_TASKS];                /* T2 <= MAX_TASKS */
    double *nk_part, *rx_part, *s_part; /* (C, M), (C, M, E), (C, M, SA) */
    float *mu_cf;                       /* (M, E) new means - centre, for the covariance pass */
    double *mu_cd;                      /* (M, E) the same in double (full and tied) */
    unsigned char *skip;                /* (M) empty components, skipped in the second pass */
    /* data covariance (for re-seeding), computed on first use */
    double *data_cov; /* (CS) */
    /* k-means */
    float *cen_f; /* (M, E) centres - centre */
    float *cen_n; /* (M) squared norms */
    int32_t *lab; /* (N) */
    double *d2;   /* (N) k-means++: squared distance to the centres */
    int64_t cand_idx[8], ncand;
    int kpp_update; /* kpp_task: fold candidate 0 into d2 */
};

/* ---- small helpers ------------------------------------------------------------------ */

static inline void *xcalloc(size_t n, size_t size) { return calloc(n ? n : 1, size); }

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* Lower Cholesky factor L (E, E) of the symmetric A (lower triangle read); the upper part
 * of L is zeroed. Returns 0, or -1 when A is not positive definite. */
static inline int cholesky(double *L, const double *A, int64_t E)
{
    for (int64_t j = 0; j < E; j++) {
        double s = A[j * E + j];
        for (int64_t k = 0; k < j; k++)
            s -= L[j * E + k] * L[j * E + k];
        if (!(s > 0) || !isfinite(s)) return -1;
        double d = sqrt(s);
        L[j * E + j] = d;
        for (int64_t i = j + 1; i < E; i++) {
            double t = A[i * E + j];
            for (int64_t k = 0; k < j; k++)
                t -= L[i * E + k] * L[j * E + k];
            L[i * E + j] = t / d;
        }
        for (int64_t i = 0; i < j; i++)
            L[i * E + j] = 0;
    }
    return 0;
}

/* Linv (E, E) = L^-1 for lower-triangular L (forward substitution, column by column). */
static inline void tri_inverse(double *Linv, const double *L, int64_t E)
{
    memset(Linv, 0, sizeof(double) * (size_t)(E * E));
    for (int64_t c = 0; c < E; c++)
        for (int64_t i = c; i < E; i++) {
            double t = i == c ? 1.0 : 0.0;
            for (int64_t k = c; k < i; k++)
                t -= L[i * E + k] * Linv[k * E + c];
            Linv[i * E + c] = t / L[i * E + i];
        }
}

static inline void free_kmeans(td_gmm_work *w)
{
    free(w->cen_f);
    free(w->cen_n);
    free(w->lab);
    free(w->d2);
    w->cen_f = w->cen_n = NULL;
    w->lab = NULL;
    w->d2 = NULL;
}

/* Rows [i0, i0+nb) minus the centre into xbT (E, B), transposed. */
static inline void centre_block_T(const td_gmm_work *w, float *xbT, int64_t i0, int64_t nb)
{
    int64_t E = w->E, B = w->B;
    for (int64_t i = 0; i < nb; i++) {
        const float *x = w->X + (i0 + i) * E;
        for (int64_t j = 0; j < E; j++)
            xbT[j * B + i] = x[j] - w->centre_f[j];
    }
}

#endif
