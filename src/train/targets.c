/* targets.c — a batch's loss on logits (see targets.h). */
#include "train/targets.h"

#include <string.h>

void td_targets_denoms(td_batch_denoms *d, const td_targets *tg, int64_t n)
{
    memset(d, 0, sizeof *d);
    d->n = n;
    if (tg->G > 1) {
        for (int64_t i = 0; i < n * tg->G; i++)
            d->ce_count += tg->y[i] != tg->ce.ignore_index;
    } else if (!tg->Y) {
        d->denom = td_ce_index_denom(tg->y, n, &tg->ce);
    }
}

/* Argmax accuracy of logits (nb, K) against the targets of rows first.. */
static void accuracy(td_loss_sums *s, const float *logits, int64_t first, int64_t nb, int64_t K,
                     const td_targets *tg)
{
    int64_t S = K / tg->G;
    for (int64_t r = 0; r < nb; r++) {
        for (int64_t g = 0; g < tg->G; g++) {
            const float *z = logits + r * K + g * S;
            int64_t best = 0;
            for (int64_t k = 1; k < S; k++)
                if (z[k] > z[best]) best = k;
            int64_t want;
            if (tg->Y) {
                const float *y = tg->Y + (first + r) * K;
                want = 0;
                for (int64_t k = 1; k < K; k++)
                    if (y[k] > y[want]) want = k;
            } else {
                want = tg->y[(first + r) * tg->G + g];
                if (want == tg->ce.ignore_index) continue;
            }
            s->counted++;
            s->correct += best == want;
        }
    }
}

void td_targets_block(td_loss_sums *s, float *dlogits, const float *logits, int64_t first,
                      int64_t nb, int64_t K, const td_targets *tg, const td_batch_denoms *d)
{
    double sum = 0;
    if (tg->G > 1) {
        td_grouped_result gr;
        float ce_scale = d->ce_count > 0 ? (float)(1.0 / d->ce_count) : 0.0f;
        float pen_scale = (float)(tg->monotone_weight / (double)d->n);
        td_grouped_sum(&gr, NULL, dlogits, logits, tg->y + first * tg->G, nb, tg->G, K / tg->G,
                       tg->ce.ignore_index, tg->monotone_margin, ce_scale, pen_scale);
        s->ce_sum += gr.ce_sum;
        s->pen_sum += gr.penalty_sum;
        s->violations += gr.violations;
    } else if (tg->Y) {
        td_ce_probs_sum(&sum, NULL, dlogits, logits, tg->Y + first * K, nb, K, &tg->ce,
                        (float)(1.0 / (double)d->n));
        s->loss_sum += sum;
    } else {
        float scale = d->denom > 0 ? (float)(1.0 / d->denom) : 0.0f;
        td_ce_index_sum(&sum, NULL, dlogits, logits, tg->y + first, nb, K, &tg->ce, scale);
        s->loss_sum += sum;
    }
    accuracy(s, logits, first, nb, K, tg);
}

void td_loss_sums_add(td_loss_sums *acc, const td_loss_sums *s)
{
    acc->loss_sum += s->loss_sum;
    acc->ce_sum += s->ce_sum;
    acc->pen_sum += s->pen_sum;
    acc->violations += s->violations;
    acc->correct += s->correct;
    acc->counted += s->counted;
}

void td_targets_finish(td_batch_stats *st, const td_loss_sums *s, const td_batch_denoms *d,
                       const td_targets *tg)
{
    memset(st, 0, sizeof *st);
    st->violations = s->violations;
    st->correct = s->correct;
    st->counted = s->counted;
    st->defined = 1;
    if (tg->G > 1) {
        st->defined = d->ce_count > 0;
        st->cross_entropy = d->ce_count > 0 ? s->ce_sum / d->ce_count : 0;
        st->penalty = d->n > 0 ? s->pen_sum / (double)d->n : 0;
        st->loss = st->cross_entropy + tg->monotone_weight * st->penalty;
    } else if (tg->Y) {
        st->loss = st->cross_entropy = d->n > 0 ? s->loss_sum / (double)d->n : 0;
    } else {
        st->defined = d->denom > 0;
        st->loss = st->cross_entropy = d->denom > 0 ? s->loss_sum / d->denom : 0;
    }
}
