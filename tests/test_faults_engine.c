/* test_faults_engine.c — fault injection in the engine: with its n-th allocation failing,
 * for every n of a run (softmax with a validation split and mini-batches, grouped softmax,
 * mlp, gmm, embed_gmm: create, epochs, snapshot and restore, predictions), the engine
 * returns TD_ENOMEM (or success), never a crash; under ASan, no leak on any of those paths
 * (tests/failalloc.h). The JSON edge and the daemon's faults are test_faults.c. */
#include <stdlib.h>

#include "failalloc.h"
#include "fixtures.h"
#include "testutil.h"
#include "traind/train.h"

/* Creates a trainer, runs `epochs` epochs, saves and restores a snapshot, predicts the
 * training rows; returns the first failure, everything freed either way. */
static td_error g_err; /* the last failure's message, for the assertions */

static td_status run_trainer(const td_hparams *hp, const td_dataset *ds, int epochs)
{
    td_error err = {{0}, {0}};
    td_trainer *t = NULL;
    void *snap = NULL;
    float *probs = NULL, *emb = NULL;
    int32_t *labels = NULL;
    td_status st = td_trainer_create(&t, hp, ds, NULL, &err);
    if (st) goto out;
    td_trainer_set_threads(t, 1);
    td_record rec;
    for (int e = 0; e < epochs && !td_trainer_done(t); e++)
        if ((st = td_trainer_step(t, &rec, &err))) goto out;
    size_t cap = td_trainer_state_size(t);
    if (!(snap = malloc(cap))) {
        st = TD_ENOMEM;
        goto out;
    }
    size_t n = td_trainer_save(t, snap, cap);
    if ((st = td_trainer_restore(t, snap, n, &err))) goto out;
    const td_model *m = td_trainer_model(t);
    int64_t K = m->kind == TD_MODEL_EMBED_GMM ? m->components : m->K;
    probs = malloc(sizeof(float) * (size_t)(ds->N * K));
    labels = malloc(sizeof(int32_t) * (size_t)(ds->N * m->G));
    if (!probs || !labels) {
        st = TD_ENOMEM;
        goto out;
    }
    if (m->kind == TD_MODEL_EMBED_GMM) {
        if (!(emb = malloc(sizeof(float) * (size_t)(ds->N * m->K)))) {
            st = TD_ENOMEM;
            goto out;
        }
        st = td_embed_predict(emb, labels, probs, NULL, m, ds->X, ds->N, ds->D, &err);
    } else {
        st = td_model_predict(probs, labels, m, ds->X, ds->N, ds->D, &err);
    }
out:
    free(snap), free(probs), free(labels), free(emb);
    td_trainer_destroy(t);
    if (st) g_err = err;
    return st;
}

static td_status sc_softmax(void)
{
    td_dataset ds = faults_data(0);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.optimizer = TD_OPT_ADAM, hp.batch_size = 5, hp.validation_split = 0.25;
    hp.n_iter_no_change = 5, hp.l1 = 0.01;
    return run_trainer(&hp, &ds, 2);
}

static td_status sc_grouped(void)
{
    td_dataset ds = faults_data(1);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.groups = 2, hp.monotone_weight = 0.5, hp.batch_size = 8, hp.momentum = 0.9;
    return run_trainer(&hp, &ds, 2);
}

static td_status sc_mlp(void)
{
    td_dataset ds = faults_data(0);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.n_hidden = 2, hp.mlp.hidden[0] = 6, hp.mlp.hidden[1] = 4;
    hp.mlp.activation = TD_ACT_TANH;
    hp.label_smoothing = 0.1, hp.validation_split = 0.25, hp.optimizer = TD_OPT_ADAMW;
    return run_trainer(&hp, &ds, 2);
}

static td_status sc_gmm(void)
{
    td_dataset ds = faults_data(0);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = 3, hp.gmm.n_init = 2;
    td_status st = run_trainer(&hp, &ds, 2);
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = 2, hp.gmm.covariance = TD_COV_DIAG, hp.gmm.init = TD_GMM_INIT_RANDOM;
    return st ? st : run_trainer(&hp, &ds, 2);
}

static td_status sc_embed(void)
{
    td_dataset ds = faults_data(0);
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
    hp.mlp.n_hidden = 1, hp.mlp.hidden[0] = 6, hp.embed.embedding_dim = 2, hp.gmm.components = 3;
    hp.epochs = 4, hp.embed.warmup_iterations = 1, hp.embed.gmm_batch = 12;
    hp.embed.pairs_per_iteration = 16;
    return run_trainer(&hp, &ds, 3);
}

static const struct {
    const char *name;
    td_status (*run)(void);
} scenarios[] = {
    {"softmax", sc_softmax}, {"grouped", sc_grouped}, {"mlp", sc_mlp},
    {"gmm", sc_gmm},         {"embed_gmm", sc_embed},
};

START_TEST(nth_allocation_fails) { failalloc_each(scenarios[_i].name, scenarios[_i].run, &g_err); }
END_TEST

Suite *suite_faults_engine(void)
{
    Suite *s = suite_create("faults_engine");
    TCase *alloc = tcase_create("alloc");
    tcase_set_timeout(alloc, 120);
    tcase_add_loop_test(alloc, nth_allocation_fails, 0,
                        (int)(sizeof scenarios / sizeof scenarios[0]));
    suite_add_tcase(s, alloc);
    return s;
}
