/* trainer_impl.h — how a model family implements the td_trainer interface of train.h.
 *
 * A trainer implementation is one td_trainer_kind: how its trainers are checked, sized
 * and made, and what each one does (step, snapshots, ...). Each trainer file exports its
 * kind (td_grad_trainer for softmax and mlp, td_gmm_trainer, td_embed_trainer), which
 * the family's row (family.h) names. A trainer is a struct whose first member is a
 * td_trainer: its kind and the base fields every family keeps current, which trainer.c
 * reads for the plain getters (td_trainer_epoch, _epochs, _rows, _elapsed, _model, _done,
 * _columns). */
#ifndef TRAIND_TRAINER_IMPL_H
#define TRAIND_TRAINER_IMPL_H

#include "math/pool.h"
#include "util/clock.h" /* td_mono_s, for td_trainer.elapsed */
#include "traind/train.h"

typedef struct td_std td_std; /* standardize.c */

typedef struct td_trainer_kind {
    /* td_trainer_check: every check create makes, nothing allocated; *K gets the outputs
     * (embed_gmm: the embedding width E). */
    td_status (*check)(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                       int64_t *K, td_error *err);
    /* td_train_memory_estimate before the standardize copies and the allocator's share
     * (datasets as in train.h; gmm and embed_gmm read no validation set). */
    size_t (*bytes)(const td_hparams *hp, const td_dataset *train, const td_dataset *val, int64_t K,
                    int threads);
    /* hp resolved and passed by check, whose K it is given; *out is NULL on entry.
     * trainer.c runs check, then create (standardize around both). */
    td_status (*create)(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                        const td_dataset *val, int64_t K, td_error *err);
    /* the calls on a trainer of this kind (train.h's td_trainer_*) */
    void (*destroy)(td_trainer *t);
    /* may be NULL: after the pool (t->pool) is resized, what else follows the thread count */
    void (*set_threads)(td_trainer *t, int n);
    td_status (*step)(td_trainer *t, td_record *rec, td_error *err);
    /* a snapshot: save writes state_size(t) bytes into buf (trainer.c checks the room) */
    size_t (*state_size)(const td_trainer *t);
    void (*save)(const td_trainer *t, void *buf);
    td_status (*restore)(td_trainer *t, const void *buf, size_t len, td_error *err);
    /* may be NULL: the family has no differentiable objective */
    td_status (*objective)(td_trainer *t, double *loss, float *grad);
} td_trainer_kind;

/* softmax and mlp (grad_trainer.c); gmm (gmm_trainer.c: one step = one EM iteration, K
 * components); embed_gmm (embed_gmm.c: one step = one iteration (pairs, EM step, network
 * step), K = E, the embedding width). */
extern const td_trainer_kind td_grad_trainer, td_gmm_trainer, td_embed_trainer;

struct td_trainer {
    const td_trainer_kind *kind;
    const td_hparams *hp;  /* the family's owned copy */
    const td_model *model; /* the current model (the family's) */
    int64_t epoch;         /* epochs (iterations) completed */
    int64_t epochs;        /* planned (gmm: max_iter) */
    int64_t rows;          /* training rows per epoch */
    double elapsed;        /* seconds of training; restored with a snapshot */
    int stopped;           /* done before epochs: early stopping, convergence */
    td_std *std;           /* standardize (standardize.c): owned; NULL without */
    td_pool *pool;         /* the worker threads (td_trainer_set_threads), owned; NULL: the
                              calling thread alone */
    /* a record's ncols columns (td_trainer_columns): set by create, fixed after */
    const char *const *cols;
    int ncols;
};

/* ---- shared by the families (trainer_util.c) ----------------------------------------- */

/* A family's trainer struct `type` (first member `td_trainer base`, and an owned
 * `td_hparams hp` and a `td_model model`), zeroed, with base.kind = kind, hp a deep copy of
 * hp_in, base.hp and base.model pointing at its hp and model, base.epochs = epochs. NULL
 * when out of memory (nothing left allocated). */
#define TD_TRAINER_NEW(type, kind, hp_in, epochs)                                                 \
    ((type *)td_trainer_new(sizeof(type), kind, offsetof(type, hp), offsetof(type, model), hp_in, \
                            epochs))
void *td_trainer_new(size_t size, const td_trainer_kind *kind, size_t hp_offset,
                     size_t model_offset, const td_hparams *hp_in, int64_t epochs);
/* The end of a family's destroy: frees what td_trainer_new made (the hp and the model that
 * t->hp and t->model point at, with the model's params, and the struct t itself). */
void td_trainer_free(td_trainer *t);
/* A snapshot's header: its first size bytes of buf[0..len) into h, which begins with the
 * 8-byte magic; "checkpoint" errors when buf is shorter or the magic differs (message
 * not_ours). */
td_status td_state_header(void *h, size_t size, const void *buf, size_t len, const char *magic,
                          const char *not_ours, td_error *err);
/* 1 when every p[0..n) is finite. */
int td_all_finite(const float *p, int64_t n);
/* The weights under l1/l2 among layout[0..n): every penalized tensor (all of them with
 * regularize_bias), less the skip_rows of each when not regularize_bias. */
int64_t td_penalized_count(const td_hparams *hp, const td_tensor_desc *layout, int n);
/* The l1/l2 penalty (SPEC §3) of params over layout[0..n) (the weights td_penalized_count
 * counts, n_penalized of them, which l2_scale "mean" divides l2 by); its gradient is ADDED
 * to grad (n_params) when grad is non-NULL. Returns 0.5 l2 sum w^2 + l1 sum |w|. */
double td_regularize(const td_hparams *hp, const td_tensor_desc *layout, int n, int64_t n_penalized,
                     const float *params, float *grad);
/* A mixture's record columns: cols = fixed[0..nfixed) then "size_0" .. "size_{M-1}" (their
 * text in names) while they fit in TD_REC_MAX; NULL-terminated. Returns the count. */
int td_size_columns(const char *cols[TD_REC_MAX + 1], char names[TD_REC_MAX][32],
                    const char *const *fixed, int nfixed, int64_t M);
/* The matching record values: min_size and max_size of nk (M) at columns min_col and
 * max_col, size_k = nk[k] at sizes_col + k for the components that have a column (ncols
 * columns in all). */
void td_size_record(td_record *rec, int min_col, int max_col, int sizes_col, const double *nk,
                    int64_t M, int ncols);

/* The family's check and create in one (trainer.c), as standardize calls it. */
typedef td_status (*td_checked_create)(td_trainer **out, const td_hparams *hp,
                                       const td_dataset *train, const td_dataset *val,
                                       td_error *err);
/* standardize (standardize.c): the family's trainer, made by create on standardized copies
 * of train's and val's X, which its std holds with their mean and scale.
 * td_std_trainer_bytes: the copies and statistics, for td_train_memory_estimate. */
td_status td_std_trainer_create(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                                const td_dataset *val, td_checked_create create, td_error *err);
size_t td_std_trainer_bytes(const td_dataset *train, const td_dataset *val);
/* trainer.c's calls on a trainer's std: td_std_free (NULL: nothing), after the family's
 * destroy; td_std_sync makes td_std_model the family's model m with mean and scale (after
 * create, step and restore); a snapshot is the family's, then td_std_state_bytes of mean
 * and scale: td_std_save writes them after the family's n bytes of buf,
 * td_std_restore_check compares them with the data's. */
void td_std_free(td_std *s);
void td_std_sync(td_std *s, const td_model *m);
const td_model *td_std_model(const td_std *s);
size_t td_std_state_bytes(const td_std *s);
void td_std_save(const td_std *s, void *buf, size_t n);
td_status td_std_restore_check(const td_std *s, const void *buf, size_t len, td_error *err);

#endif
