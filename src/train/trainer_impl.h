/* trainer_impl.h — how a model family implements the td_trainer interface of train.h.
 *
 * Each family (gradient-trained networks in grad_trainer.c; EM-trained mixtures later)
 * defines a struct whose first member is a td_trainer and fills a vtable; trainer.c
 * dispatches the public td_trainer_* calls through it. */
#ifndef TRAIND_TRAINER_IMPL_H
#define TRAIND_TRAINER_IMPL_H

#include "traind/train.h"

typedef struct td_trainer_vtbl {
    void (*destroy)(td_trainer *t);
    void (*set_threads)(td_trainer *t, int n);
    td_status (*step)(td_trainer *t, td_record *rec, td_error *err);
    int (*done)(const td_trainer *t);
    int64_t (*epoch)(const td_trainer *t);
    int64_t (*epochs)(const td_trainer *t);
    int64_t (*rows)(const td_trainer *t);
    const td_model *(*model)(const td_trainer *t);
    const char *const *(*columns)(const td_trainer *t, int *n);
    size_t (*state_size)(const td_trainer *t);
    size_t (*save)(const td_trainer *t, void *buf, size_t cap);
    td_status (*restore)(td_trainer *t, const void *buf, size_t len, td_error *err);
    double (*elapsed)(const td_trainer *t);
    /* may be NULL: the family has no differentiable objective */
    td_status (*objective)(td_trainer *t, double *loss, float *grad);
} td_trainer_vtbl;

struct td_trainer {
    const td_trainer_vtbl *vt;
};

/* Each family's td_trainer_check (every check its create makes, nothing allocated; *K
 * gets the outputs) and its td_train_memory_estimate (datasets as in train.h). */
td_status td_grad_trainer_check(const td_hparams *hp, const td_dataset *train,
                                const td_dataset *val, int64_t *K, td_error *err);
size_t td_grad_trainer_bytes(const td_hparams *hp, const td_dataset *train,
                             const td_dataset *val, int64_t K, int threads);
td_status td_gmm_trainer_check(const td_hparams *hp, const td_dataset *train,
                               const td_dataset *val, int64_t *K, td_error *err);
size_t td_gmm_trainer_bytes(const td_hparams *hp, const td_dataset *train, int64_t K,
                            int threads);
td_status td_embed_trainer_check(const td_hparams *hp, const td_dataset *train,
                                 const td_dataset *val, int64_t *E, td_error *err);
size_t td_embed_trainer_bytes(const td_hparams *hp, const td_dataset *train, int64_t E,
                              int threads);

/* A family's create (the three below). */
typedef td_status (*td_family_create)(td_trainer **out, const td_hparams *hp,
                                      const td_dataset *train, const td_dataset *val,
                                      td_error *err);
/* standardize (standardize.c): the family's trainer, made by create, on standardized copies
 * of train's and val's X; its model carries the mean and scale. td_std_trainer_bytes: the
 * copies and statistics, for td_train_memory_estimate. */
td_status td_std_trainer_create(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                                const td_dataset *val, td_family_create create, td_error *err);
size_t td_std_trainer_bytes(const td_dataset *train, const td_dataset *val);

/* softmax and mlp (grad_trainer.c); hp is already checked against train. */
td_status td_grad_trainer_create(td_trainer **out, const td_hparams *hp,
                                 const td_dataset *train, const td_dataset *val, td_error *err);
/* gmm (gmm_trainer.c): one step = one EM iteration; checks hp against train itself. */
td_status td_gmm_trainer_create(td_trainer **out, const td_hparams *hp,
                                const td_dataset *train, const td_dataset *val, td_error *err);
/* embed_gmm (embed_gmm.c): one step = one iteration (pairs, EM step, network step); checks
 * hp against train itself. */
td_status td_embed_trainer_create(td_trainer **out, const td_hparams *hp,
                                  const td_dataset *train, const td_dataset *val,
                                  td_error *err);

#endif
