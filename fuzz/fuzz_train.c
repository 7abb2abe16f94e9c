/* fuzz_train.c — libFuzzer target: every model trained on fuzzed finite data.
 *
 * The input is binary:
 *   byte 0      options: optimizer (b % 3), mlp activation (b / 3 % 3), gmm / embed_gmm
 *               init (b / 9 % 2), mini-batches for the mlp (b / 18 % 2)
 *   byte 1      N = 3 + b % 14 rows
 *   byte 2      D = 1 + b % 4 features
 *   N bytes     labels y = b % 3 (rows 0, 1, 2 get 0, 1, 2: every class is present)
 *   N*D floats  X, 4 bytes each, little-endian; missing bytes are 0; a non-finite pattern
 *               becomes a finite one (inf -> +-FLT_MAX, NaN -> its payload's sign x 1e-45)
 * so the fuzzer reaches float32's extremes (fuzz/train.dict holds their bit patterns).
 * Each input trains softmax, mlp, grouped mlp (two label columns, monotone penalty), gmm
 * with every covariance, and embed_gmm with every covariance, for up to two epochs (one
 * thread), then snapshots, restores and predicts the training rows.
 * Checked: every step is TD_OK with finite weights and no infinite record value, or
 * TD_EDIVERGED with a field and a message; the model stays finite either way; a snapshot
 * restores; predictions give labels in range. Never a crash.
 * Run: make fuzz (FUZZ_SECONDS per target). */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "traind/train.h"

#define MAX_N 16
#define MAX_D 4

static int finite_all(const float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

static void check_predict(const td_model *m, const td_dataset *ds)
{
    td_error err = {{0}, {0}};
    int64_t K = m->kind == TD_MODEL_EMBED_GMM ? m->components : m->K;
    float probs[MAX_N * 64], emb[MAX_N * 64];
    int32_t labels[MAX_N * 4];
    td_status st = m->kind == TD_MODEL_EMBED_GMM
        ? td_embed_predict(emb, labels, probs, NULL, m, ds->X, ds->N, ds->D, &err)
        : td_model_predict(probs, labels, m, ds->X, ds->N, ds->D, &err);
    FUZZ_CHECK(st == TD_OK || st == TD_EINVAL, "predict: %s: %s", td_status_code(st), err.message);
    if (st != TD_OK) return;
    int64_t per = m->kind == TD_MODEL_GMM || m->kind == TD_MODEL_EMBED_GMM ? K : K / m->G;
    for (int64_t i = 0; i < ds->N * m->G; i++)
        FUZZ_CHECK(labels[i] >= 0 && labels[i] < per, "label %d of %lld", labels[i],
                   (long long)per);
}

static void train(const td_hparams *hp, const td_dataset *ds)
{
    td_error err = {{0}, {0}};
    td_trainer *t = NULL;
    td_status st = td_trainer_create(&t, hp, ds, NULL, &err);
    FUZZ_CHECK(st == TD_OK, "%s: create: %s: %s", td_model_names[hp->model], td_status_code(st),
               err.message);
    td_trainer_set_threads(t, 1);
    const td_model *m = td_trainer_model(t);
    for (int e = 0; e < 2 && !td_trainer_done(t); e++) {
        td_record rec;
        st = td_trainer_step(t, &rec, &err);
        m = td_trainer_model(t);
        FUZZ_CHECK(finite_all(m->params, m->n_params), "%s: non-finite weights (status %s)",
                   td_model_names[hp->model], td_status_code(st));
        if (st != TD_OK) {
            FUZZ_CHECK(st == TD_EDIVERGED && err.field[0] && err.message[0],
                       "%s: step: %s (field \"%s\"): %s", td_model_names[hp->model],
                       td_status_code(st), err.field, err.message);
            break;
        }
        int nc;
        td_trainer_columns(t, &nc);
        for (int c = 0; c < nc; c++)
            FUZZ_CHECK(!isinf(rec.v[c]), "%s: record column %d is %g", td_model_names[hp->model], c,
                       rec.v[c]);
    }
    size_t cap = td_trainer_state_size(t);
    void *buf = malloc(cap ? cap : 1);
    FUZZ_CHECK(buf != NULL, "out of memory");
    size_t n = td_trainer_save(t, buf, cap);
    st = td_trainer_restore(t, buf, n, &err);
    FUZZ_CHECK(n > 0 && st == TD_OK, "own snapshot does not restore: %s", err.message);
    free(buf);
    check_predict(td_trainer_model(t), ds);
    td_trainer_destroy(t);
}

int td_fuzz_train(const uint8_t *data, size_t size)
{
    uint8_t opt = size > 0 ? data[0] : 0;
    int64_t N = 3 + (size > 1 ? data[1] : 0) % (MAX_N - 2),
            D = 1 + (size > 2 ? data[2] : 0) % MAX_D;
    size_t pos = 3;
    float X[MAX_N * MAX_D];
    int32_t y[MAX_N], yg[MAX_N * 2];
    for (int64_t i = 0; i < N; i++, pos++) {
        y[i] = i < 3 ? (int32_t)i : (pos < size ? data[pos] : 0) % 3;
        yg[i * 2] = y[i];
        yg[i * 2 + 1] = (int32_t)((y[i] + i) % 3);
    }
    for (int64_t i = 0; i < N * D; i++, pos += 4) {
        uint32_t bits = 0;
        for (int b = 0; b < 4; b++)
            bits |= (uint32_t)(pos + (size_t)b < size ? data[pos + (size_t)b] : 0) << (8 * b);
        float x;
        memcpy(&x, &bits, sizeof x);
        if (isinf(x))
            x = copysignf(FLT_MAX, x);
        else if (isnan(x))
            x = copysignf(1e-45f, x);
        X[i] = x;
    }
    td_dataset ds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    td_dataset grouped = ds, unlabelled = ds;
    grouped.y = yg, grouped.y_cols = 2;
    unlabelled.y = NULL, unlabelled.y_cols = 0;

    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.optimizer = (td_optimizer_kind)(opt % 3);
    hp.epochs = 2;
    train(&hp, &ds);
    td_hparams_fini(&hp);
    for (int g = 1; g <= 2; g++) {
        td_hparams_defaults(&hp, TD_MODEL_MLP);
        hp.optimizer = (td_optimizer_kind)(opt % 3);
        hp.mlp.activation = (td_activation)(opt / 3 % 3);
        hp.mlp.n_hidden = 1, hp.mlp.hidden[0] = 3;
        hp.batch_size = opt / 18 % 2 ? 4 : 0;
        hp.epochs = 2;
        if (g == 2) hp.groups = 2, hp.monotone_weight = 0.5;
        train(&hp, g == 2 ? &grouped : &ds);
        td_hparams_fini(&hp);
    }
    for (int c = 0; c < 3; c++) {
        td_hparams_defaults(&hp, TD_MODEL_GMM);
        hp.gmm.covariance = (td_covariance)c;
        hp.gmm.init = (td_gmm_init)(opt / 9 % 2);
        hp.gmm.components = 2, hp.gmm.max_iter = 2;
        train(&hp, &unlabelled);
        td_hparams_fini(&hp);
        td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
        hp.gmm.covariance = (td_covariance)c;
        hp.gmm.init = (td_gmm_init)(opt / 9 % 2);
        hp.gmm.components = 2, hp.embed.embedding_dim = 2, hp.epochs = 2,
        hp.embed.warmup_iterations = 0;
        hp.embed.pairs_per_iteration = 8;
        train(&hp, &ds);
        td_hparams_fini(&hp);
    }
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_train)
