/* fuzz_predict.c — libFuzzer target for POST /v1/jobs/{id}/predict bodies.
 *
 * Six small models are trained once (a few epochs on a fixed 24 x 3 dataset) and rebuilt
 * from their stored form (td_json_model_meta, td_json_model_from_meta), as GET /model and
 * predict load them: softmax, grouped softmax (G = 2), softmax without intercept, mlp,
 * gmm (full covariances) and embed_gmm. The input's first byte picks the model, the rest
 * is the body for td_json_predict.
 * Checked: a refusal is TD_EINVAL / TD_EMALFORMED with a message; an answer is JSON that
 * parses back (no NaN / Infinity literal), an object; the body fed in pieces (the route's
 * td_json_predict_stream / _finish) gives the same answer or error.
 * Run: make fuzz (FUZZ_SECONDS per target). */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "codec/json_model.h"
#include "traind/train.h"

#define N_ROWS 24
#define N_MODELS 6

static td_model g_models[N_MODELS];
static int g_ready;

static void build(td_model *out, const td_hparams *hp, const td_dataset *ds)
{
    td_error err = {{0}, {0}};
    td_trainer *t = NULL;
    td_status st = td_trainer_create(&t, hp, ds, NULL, &err);
    FUZZ_CHECK(st == TD_OK, "model %d: %s", (int)hp->model, err.message);
    td_trainer_set_threads(t, 1);
    td_record rec;
    for (int e = 0; e < 3 && !td_trainer_done(t); e++)
        FUZZ_CHECK(td_trainer_step(t, &rec, &err) == TD_OK, "step: %s", err.message);
    const td_model *m = td_trainer_model(t);
    char *meta = NULL;
    FUZZ_CHECK(td_json_model_meta(&meta, m, &err) == TD_OK, "meta: %s", err.message);
    FUZZ_CHECK(td_json_model_from_meta(out, meta, strlen(meta), m->params, m->n_params, &err) ==
                   TD_OK,
               "from meta: %s", err.message);
    free(meta);
    td_trainer_destroy(t);
}

static void init_models(void)
{
    static float X[N_ROWS * 3];
    static int32_t y[N_ROWS], yg[N_ROWS * 2];
    if (g_ready) return;
    for (int i = 0; i < N_ROWS; i++) {
        for (int j = 0; j < 3; j++)
            X[i * 3 + j] = (float)(i % 3) * 2.0f + (float)((i * 5 + j * 7) % 13) / 13.0f;
        y[i] = i % 3;
        yg[i * 2] = i % 3;
        yg[i * 2 + 1] = (i + 1) % 3;
    }
    td_dataset ds = {.N = N_ROWS, .D = 3, .X = X, .y = y, .y_cols = 1};
    td_dataset dg = ds;
    dg.y = yg, dg.y_cols = 2;
    td_hparams hp;
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    build(&g_models[0], &hp, &ds);
    hp.groups = 2;
    build(&g_models[1], &hp, &dg);
    td_hparams_defaults(&hp, TD_MODEL_SOFTMAX);
    hp.intercept = TD_INTERCEPT_NONE;
    build(&g_models[2], &hp, &ds);
    td_hparams_defaults(&hp, TD_MODEL_MLP);
    hp.mlp.hidden[0] = 4, hp.mlp.n_hidden = 1;
    build(&g_models[3], &hp, &ds);
    td_hparams_defaults(&hp, TD_MODEL_GMM);
    hp.gmm.components = 2;
    build(&g_models[4], &hp, &ds);
    td_hparams_defaults(&hp, TD_MODEL_EMBED_GMM);
    hp.mlp.hidden[0] = 4, hp.mlp.n_hidden = 1;
    hp.embed.embedding_dim = 2, hp.gmm.components = 2, hp.epochs = 3,
    hp.embed.warmup_iterations = 1;
    build(&g_models[5], &hp, &ds);
    g_ready = 1;
}

int td_fuzz_predict(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    init_models();
    const td_model *m = &g_models[data[0] % N_MODELS];
    td_error err = {{0}, {0}};
    char *out = NULL;
    size_t len = 0;
    td_status st = td_json_predict(&out, &len, m, (const char *)data + 1, size - 1, &err);
    /* the same body in pieces (the route's own calls): the same answer or error */
    td_dstream *s = td_json_predict_stream(0);
    FUZZ_CHECK(s != NULL, "out of memory");
    size_t step = 1 + (size + data[0]) % 9;
    for (size_t at = 1; at < size; at += step)
        td_dstream_feed(s, (const char *)data + at, step < size - at ? step : size - at);
    td_jout *o = NULL;
    td_error e2 = {{0}, {0}};
    td_status st2 = td_json_predict_finish(&o, m, s, &e2);
    td_dstream_destroy(s);
    FUZZ_CHECK(st2 == st && (st ? strcmp(e2.message, err.message) == 0 : 1),
               "pieces: %d %s, whole: %d %s", st2, e2.message, st, err.message);
    if (o) {
        char *again = td_jout_string(o, NULL);
        FUZZ_CHECK(again && out && strcmp(again, out) == 0, "pieces: another answer");
        free(again);
        td_jout_free(o);
    }
    if (st != TD_OK) {
        FUZZ_CHECK_REFUSAL(st, err);
        free(out);
        return 0;
    }
    FUZZ_CHECK(out != NULL && strlen(out) == len, "output of %zu bytes, len %zu",
               out ? strlen(out) : 0, len);
    cJSON *j = cJSON_Parse(out);
    FUZZ_CHECK(cJSON_IsObject(j), "answer is not a JSON object: %.300s", out);
    cJSON_Delete(j);
    free(out);
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_predict)
