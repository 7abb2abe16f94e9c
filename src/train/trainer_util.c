/* trainer_util.c — the small pieces every trainer family uses (trainer_impl.h): the clock,
 * the finiteness checks, the l1/l2 regulariser and the mixtures' record columns. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "math/isa.h"
#include "train/trainer_impl.h"

void *td_trainer_new(size_t size, const td_trainer_kind *kind, size_t hp_offset,
                     size_t model_offset, const td_hparams *hp_in, int64_t epochs)
{
    char *t = calloc(1, size);
    if (!t) return NULL;
    td_hparams *hp = (td_hparams *)(t + hp_offset);
    if (td_hparams_copy(hp, hp_in)) {
        free(t);
        return NULL;
    }
    td_trainer *base = (td_trainer *)t;
    base->kind = kind;
    base->hp = hp;
    base->model = (const td_model *)(t + model_offset);
    base->epochs = epochs;
    return t;
}

void td_trainer_free(td_trainer *t)
{
    /* t->hp and t->model point into t's own struct (td_trainer_new): t owns them */
    td_pool_destroy(t->pool);
    td_model_fini((td_model *)t->model);
    td_hparams_fini((td_hparams *)t->hp);
    free(t);
}

td_status td_state_header(void *h, size_t size, const void *buf, size_t len, const char *magic,
                          const char *not_ours, td_error *err)
{
    if (len < size) return td_fail(err, TD_EINVAL, "checkpoint", "checkpoint is truncated");
    memcpy(h, buf, size);
    if (memcmp(h, magic, 8) != 0) return td_fail(err, TD_EINVAL, "checkpoint", "%s", not_ours);
    return TD_OK;
}

int td_all_finite(const float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

int64_t td_penalized_count(const td_hparams *hp, const td_tensor_desc *layout, int n)
{
    int64_t count = 0;
    for (int i = 0; i < n; i++) {
        const td_tensor_desc *d = &layout[i];
        if (d->penalized || hp->regularize_bias)
            count += (d->rows - (hp->regularize_bias ? 0 : d->skip_rows)) * d->cols;
    }
    return count;
}

/* *sq += sum w^2, *ab += sum |w| over params[lo, hi), in eight interleaved partial sums
 * added in a fixed order (vectorised, the same for any thread count); grad (when
 * non-NULL) += l2 w + l1 sign(w). Runs once per optimizer step (W2: 391 an epoch). */
TD_CLONES
static void penalty_range(double *sq, double *ab, float *grad, const float *params, int64_t lo,
                          int64_t hi, double l2, double l1)
{
    double s[8] = {0}, a[8] = {0};
    int64_t j = lo;
    for (; j + 8 <= hi; j += 8)
        for (int i = 0; i < 8; i++) {
            double w = params[j + i];
            s[i] += w * w;
            a[i] += fabs(w);
        }
    for (; j < hi; j++) {
        double w = params[j];
        s[0] += w * w;
        a[0] += fabs(w);
    }
    for (int i = 0; i < 8; i++) {
        *sq += s[i];
        *ab += a[i];
    }
    if (grad)
        for (j = lo; j < hi; j++) {
            float w = params[j];
            grad[j] += (float)(l2 * w) + (float)(l1 * ((w > 0) - (w < 0)));
        }
}

double td_regularize(const td_hparams *hp, const td_tensor_desc *layout, int n, int64_t n_penalized,
                     const float *params, float *grad)
{
    if (hp->l2 == 0 && hp->l1 == 0) return 0;
    double l2 = hp->l2, l1 = hp->l1;
    if (hp->l2_scale == TD_L2_MEAN && n_penalized > 0) l2 /= (double)n_penalized;
    double sq = 0, ab = 0;
    for (int i = 0; i < n; i++) {
        const td_tensor_desc *d = &layout[i];
        if (!d->penalized && !hp->regularize_bias) continue;
        int64_t skip = hp->regularize_bias ? 0 : d->skip_rows;
        int64_t lo = d->offset + skip * d->cols, hi = d->offset + d->rows * d->cols;
        penalty_range(&sq, &ab, grad, params, lo, hi, l2, l1);
    }
    return 0.5 * l2 * sq + l1 * ab;
}

int td_size_columns(const char *cols[TD_REC_MAX + 1], char names[TD_REC_MAX][32],
                    const char *const *fixed, int nfixed, int64_t M)
{
    int n = 0;
    for (int i = 0; i < nfixed; i++)
        cols[n++] = fixed[i];
    for (int64_t k = 0; k < M && n < TD_REC_MAX; k++, n++) {
        snprintf(names[n], sizeof names[n], "size_%lld", (long long)k);
        cols[n] = names[n];
    }
    cols[n] = NULL;
    return n;
}

void td_size_record(td_record *rec, int min_col, int max_col, int sizes_col, const double *nk,
                    int64_t M, int ncols)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t k = 0; k < M; k++) {
        lo = nk[k] < lo ? nk[k] : lo;
        hi = nk[k] > hi ? nk[k] : hi;
        if (sizes_col + k < ncols) rec->v[sizes_col + k] = nk[k];
    }
    rec->v[min_col] = lo;
    rec->v[max_col] = hi;
}
