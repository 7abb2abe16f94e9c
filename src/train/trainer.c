/* trainer.c — the public td_trainer interface: picks the model family's row (family.h) at
 * creation, forwards the calls to its trainer kind (the family's td_trainer_kind) and reads the base fields every
 * family keeps current (trainer_impl.h). */
#include "traind/train.h"

#include <string.h>

#include "train/family.h"

/* The model family's trainer (hp resolved): its check, then its create. */
static td_status create_family(td_trainer **out, const td_hparams *hp, const td_dataset *train,
                               const td_dataset *val, td_error *err)
{
    *out = NULL;
    const td_family *f = td_family_of((int)hp->model);
    if (!f) return td_fail(err, TD_EINVAL, "model", "unknown model %d", (int)hp->model);
    int64_t K;
    td_status st = f->trainer->check(hp, train, val, &K, err);
    return st ? st : f->trainer->create(out, hp, train, val, K, err);
}

td_status td_trainer_create(td_trainer **out, const td_hparams *given, const td_dataset *train,
                            const td_dataset *val, td_error *err)
{
    td_hparams resolved = *given; /* shallow: the family makes its own deep copy */
    td_hparams_resolve(&resolved, 0);
    const td_hparams *hp = &resolved;
    if (hp->standardize) return td_std_trainer_create(out, hp, train, val, create_family, err);
    return create_family(out, hp, train, val, err);
}

td_status td_trainer_check(const td_hparams *hp, const td_dataset *train, const td_dataset *val,
                           int64_t *K, td_error *err)
{
    const td_family *f = td_family_of((int)hp->model);
    if (!f) return td_fail(err, TD_EINVAL, "model", "unknown model %d", (int)hp->model);
    return f->trainer->check(hp, train, val, K, err);
}

size_t td_train_memory_estimate(const td_hparams *hp, const td_dataset *train,
                                const td_dataset *val, int64_t K, int threads)
{
    const td_family *f = td_family_of((int)hp->model);
    if (!f) return 0;
    size_t b = f->trainer->bytes(hp, train, val, K, threads);
    b += 1024 * (size_t)(threads > 1 ? threads : 1); /* the pool */
    if (hp->standardize) b += td_std_trainer_bytes(train, val);
    /* the allocator's share: headers, and whole pages for the large (mmap'd) blocks */
    return b + b / 32 + (256u << 10);
}

void td_trainer_destroy(td_trainer *t)
{
    if (!t) return;
    td_std *s = t->std; /* after the family, which reads its copies */
    t->kind->destroy(t);
    td_std_free(s);
}

void td_trainer_set_threads(td_trainer *t, int n)
{
    td_pool_resize(&t->pool, n);
    if (t->kind->set_threads) t->kind->set_threads(t, n);
}
td_status td_trainer_step(td_trainer *t, td_record *rec, td_error *err)
{
    td_status st = t->kind->step(t, rec, err);
    if (t->std) td_std_sync(t->std, t->model);
    return st;
}
td_status td_trainer_run(td_trainer *t, td_epoch_fn on_epoch, void *ctx, td_record *last,
                         td_error *err)
{
    td_record rec;
    while (!td_trainer_done(t)) {
        td_status st = td_trainer_step(t, &rec, err);
        if (st) return st;
        if (last) *last = rec;
        if (on_epoch && on_epoch(t, &rec, ctx))
            return td_fail(err, TD_ESTOPPED, NULL, "stopped after epoch %lld", (long long)t->epoch);
    }
    return TD_OK;
}

int td_trainer_done(const td_trainer *t) { return t->stopped || t->epoch >= t->epochs; }
int64_t td_trainer_epoch(const td_trainer *t) { return t->epoch; }
int64_t td_trainer_epochs(const td_trainer *t) { return t->epochs; }
int64_t td_trainer_rows(const td_trainer *t) { return t->rows; }
const td_model *td_trainer_model(const td_trainer *t)
{
    return t->std ? td_std_model(t->std) : t->model;
}
const char *const *td_trainer_columns(const td_trainer *t, int *n)
{
    *n = t->ncols;
    return t->cols;
}
int td_trainer_column(const td_trainer *t, const char *name)
{
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i], name) == 0) return i;
    return -1;
}
size_t td_trainer_state_size(const td_trainer *t)
{
    return t->kind->state_size(t) + (t->std ? td_std_state_bytes(t->std) : 0);
}
size_t td_trainer_save(const td_trainer *t, void *buf, size_t cap)
{
    size_t need = td_trainer_state_size(t);
    if (cap < need) return 0;
    t->kind->save(t, buf);
    if (t->std) td_std_save(t->std, buf, t->kind->state_size(t));
    return need;
}
td_status td_trainer_restore(td_trainer *t, const void *buf, size_t len, td_error *err)
{
    if (!t->std) return t->kind->restore(t, buf, len, err);
    td_status st = td_std_restore_check(t->std, buf, len, err);
    if (st) return st;
    st = t->kind->restore(t, buf, len - td_std_state_bytes(t->std), err);
    td_std_sync(t->std, t->model);
    return st;
}
double td_trainer_elapsed(const td_trainer *t) { return t->elapsed; }
td_status td_trainer_objective(td_trainer *t, double *loss, float *grad)
{
    if (!t->kind->objective) return td_fail(NULL, TD_EINVAL, NULL, "no differentiable objective");
    return t->kind->objective(t, loss, grad);
}
