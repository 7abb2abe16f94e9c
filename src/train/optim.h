/* optim.h — PyTorch's SGD, Adam and AdamW update rules over one flat parameter block. */
#ifndef TRAIND_OPTIM_H
#define TRAIND_OPTIM_H

#include <stdint.h>

#include "math/pool.h"
#include "traind/hparams.h"
#include "traind/status.h"

typedef struct td_optim {
    td_optimizer_kind kind;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    int nesterov;
    int64_t n;    /* parameters */
    int64_t step; /* updates taken so far (torch's state["step"]) */
    /* one allocation, owned through grad: */
    float *grad; /* (n) for the trainer's gradient, then td_optim_step's scratch */
    float *prev; /* (n) the weights td_optim_keep saved, for td_optim_rollback */
    float *m;    /* (n) momentum buffer (sgd) or first moment (adam); NULL for plain sgd */
    float *v;    /* (n) second moment (adam/adamw), after m; NULL for sgd */
} td_optim;

td_status td_optim_init(td_optim *o, const td_hparams *hp, int64_t n);
void td_optim_fini(td_optim *o);

/* Before a step: params (n) saved in o->prev. After a step that diverged: params restored
 * from it. */
void td_optim_keep(td_optim *o, const float *params);
void td_optim_rollback(const td_optim *o, float *params);

/* One update: params (n) updated in place from grad (n), which is used as scratch
 * (its contents are unspecified afterwards). */
void td_optim_step(td_optim *o, float *params, float *grad);
/* The same update with the elements split over pool's threads (pool may be NULL); the
 * update is elementwise, so the result is td_optim_step's for any thread count. */
void td_optim_step_pool(td_optim *o, td_pool *pool, float *params, float *grad);

/* Bytes of state beyond the scalars: the moment buffers. */
int64_t td_optim_nbuffers(const td_optim *o);
/* Snapshots: the td_optim_nbuffers moment buffers (n floats each) written at p, or read
 * from p; both return the byte after them. */
char *td_optim_save(const td_optim *o, char *p);
const char *td_optim_load(td_optim *o, const char *p);

#endif
