/* optim.c — SPEC §4: torch.optim.SGD / Adam / AdamW, single-tensor (for-loop) semantics.
 *
 * Per element, with g the gradient and theta the parameter:
 *   sgd:   g += wd*theta; b = g (first step) or mu*b + (1-dampening)*g;
 *          g = nesterov ? g + mu*b : b; theta -= lr*g
 *   adam:  g += wd*theta (coupled); adamw: theta *= 1 - lr*wd (decoupled);
 *          m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *          theta -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps) */
#include "train/optim.h"
#include "math/isa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define POOL_TASK 16384 /* elements per task of td_optim_step_pool */

td_status td_optim_init(td_optim *o, const td_hparams *hp, int64_t n)
{
    memset(o, 0, sizeof *o);
    o->kind = hp->optimizer;
    o->lr = hp->lr;
    o->momentum = hp->momentum;
    o->dampening = hp->dampening;
    o->weight_decay = hp->weight_decay;
    o->beta1 = hp->betas[0];
    o->beta2 = hp->betas[1];
    o->eps = hp->eps;
    o->nesterov = hp->nesterov;
    o->n = n;
    /* one allocation, as llm.c's: grad, prev, then the moments m and v (one save, one
     * load) */
    int64_t nbuf = td_optim_nbuffers(o);
    if (!(o->grad = calloc((size_t)((2 + nbuf) * n), sizeof(float)))) return TD_ENOMEM;
    o->prev = o->grad + n;
    if (nbuf >= 1) o->m = o->prev + n;
    if (nbuf >= 2) o->v = o->m + n;
    return TD_OK;
}

void td_optim_fini(td_optim *o)
{
    free(o->grad);
    o->grad = o->prev = o->m = o->v = NULL;
}

void td_optim_keep(td_optim *o, const float *params)
{
    memcpy(o->prev, params, sizeof(float) * (size_t)o->n);
}

void td_optim_rollback(const td_optim *o, float *params)
{
    memcpy(params, o->prev, sizeof(float) * (size_t)o->n);
}

int64_t td_optim_nbuffers(const td_optim *o)
{
    if (o->kind == TD_OPT_SGD) return o->momentum != 0 ? 1 : 0;
    return 2;
}

char *td_optim_save(const td_optim *o, char *p)
{
    size_t n = sizeof(float) * (size_t)(td_optim_nbuffers(o) * o->n);
    if (n) memcpy(p, o->m, n);
    return p + n;
}

const char *td_optim_load(td_optim *o, const char *p)
{
    size_t n = sizeof(float) * (size_t)(td_optim_nbuffers(o) * o->n);
    if (n) memcpy(o->m, p, n);
    return p + n;
}

/* Elements [lo, hi) of one update. */
TD_CLONES
static void sgd_step(td_optim *o, float *restrict theta, float *restrict g, int64_t lo, int64_t hi)
{
    const float lr = (float)o->lr, wd = (float)o->weight_decay, mu = (float)o->momentum;
    const float damp = 1.0f - (float)o->dampening;
    float *restrict b = o->m;
    for (int64_t i = lo; i < hi; i++) {
        float gi = g[i];
        if (wd != 0) gi += wd * theta[i];
        if (b) {
            b[i] = o->step == 0 ? gi : mu * b[i] + damp * gi;
            gi = o->nesterov ? gi + mu * b[i] : b[i];
        }
        theta[i] -= lr * gi;
    }
}

TD_CLONES
static void adam_step(td_optim *o, float *restrict theta, float *restrict g, int64_t lo, int64_t hi)
{
    const double t = (double)(o->step + 1);
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float step_size = (float)(o->lr / (1.0 - pow(o->beta1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(o->beta2, t));
    const float wd = (float)o->weight_decay;
    const int decoupled = o->kind == TD_OPT_ADAMW;
    const float decay = (float)(1.0 - o->lr * o->weight_decay);
    float *restrict m = o->m, *restrict v = o->v;
    for (int64_t i = lo; i < hi; i++) {
        float gi = g[i];
        if (decoupled)
            theta[i] *= decay;
        else if (wd != 0)
            gi += wd * theta[i];
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        theta[i] -= step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}

static void step_range(td_optim *o, float *params, float *grad, int64_t lo, int64_t hi)
{
    if (o->kind == TD_OPT_SGD)
        sgd_step(o, params, grad, lo, hi);
    else
        adam_step(o, params, grad, lo, hi);
}

void td_optim_step(td_optim *o, float *params, float *grad)
{
    step_range(o, params, grad, 0, o->n);
    o->step++;
}

typedef struct step_ctx {
    td_optim *o;
    float *params, *grad;
} step_ctx;

static void step_task(void *arg, int64_t task)
{
    step_ctx *c = arg;
    int64_t lo = task * POOL_TASK, hi = lo + POOL_TASK < c->o->n ? lo + POOL_TASK : c->o->n;
    step_range(c->o, c->params, c->grad, lo, hi);
}

void td_optim_step_pool(td_optim *o, td_pool *pool, float *params, float *grad)
{
    step_ctx c = {o, params, grad};
    td_pool_run(pool, (o->n + POOL_TASK - 1) / POOL_TASK, step_task, &c);
    o->step++;
}
