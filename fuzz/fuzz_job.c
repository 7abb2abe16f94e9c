/* fuzz_job.c — libFuzzer target for job bodies and their hyperparameters.
 *
 * The input is a POST /v1/jobs body, taken the way the daemon takes it (routes_jobs.c,
 * h_job_create and validate_job): td_json_job_parse (which runs td_json_hparams), the
 * stored hyperparameter text (td_job_hparams_text), td_job_decode_hparams against the
 * inline "data" or against one of three fixed datasets (class labels, grouped labels,
 * probabilities; picked by a hash of the input), then, for a model of at most 2^20
 * parameters, td_trainer_create and, when that is cheap, one epoch (one thread), a
 * snapshot and its restore.
 * Checked: every refusal is TD_EINVAL / TD_EMALFORMED with a message (never an internal
 * error, an out-of-memory or a crash); the stored text decodes to hyperparameters that
 * print back to the same text; an accepted job builds a trainer (what passed validation
 * trains: a 202 never becomes a failed job for a reason known at submission), whose step
 * is TD_OK or TD_EDIVERGED and whose snapshot restores. The body fed in pieces (sizes
 * from its hash) gives the same request or error as whole; an inline "data" read by the
 * stream gives what the tree reader (td_json_dataset_from, prefix "data") gives for it.
 * Run: make fuzz (FUZZ_SECONDS per target). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_tree.h"
#include "fuzz.h"
#include "codec/json_hparams.h"
#include "codec/json_job.h"
#include "codec/json_util.h"
#include "codec/stream_dataset.h"
#include "traind/train.h"

#define N_ROWS 12

static float g_X[N_ROWS * 3], g_Y[N_ROWS * 3];
static int32_t g_y[N_ROWS], g_yg[N_ROWS * 2], g_pairs[4 * 2] = {0, 1, 2, 3, 4, 5, 6, 7},
                                                          g_pl[4] = {1, 0, 1, 0};
static td_dataset g_ds[3];

static void init_datasets(void)
{
    if (g_ds[0].X) return;
    for (int i = 0; i < N_ROWS; i++) {
        for (int j = 0; j < 3; j++) {
            g_X[i * 3 + j] = (float)((i * 7 + j * 3) % 11) / 5.0f - 1.0f + (float)(i % 3);
            g_Y[i * 3 + j] = j == i % 3 ? 0.8f : 0.1f;
        }
        g_y[i] = i % 3;
        g_yg[i * 2] = i % 2;
        g_yg[i * 2 + 1] = (i / 2) % 3;
    }
    td_dataset base = {.N = N_ROWS, .D = 3, .X = g_X};
    g_ds[0] = base, g_ds[0].y = g_y, g_ds[0].y_cols = 1;
    g_ds[0].pairs = g_pairs, g_ds[0].pair_labels = g_pl, g_ds[0].P = 4;
    g_ds[1] = base, g_ds[1].y = g_yg, g_ds[1].y_cols = 2;
    g_ds[2] = base, g_ds[2].Y = g_Y, g_ds[2].Y_cols = 3;
}

static void train_a_little(const td_hparams *hp, const td_dataset *ds)
{
    td_error err = {{0}, {0}};
    int64_t K = 0;
    td_status st = td_hparams_check(hp, ds, &K, &err);
    FUZZ_CHECK(st == TD_OK, "decoded hyperparameters fail the check: %s", err.message);
    td_model shape;
    td_model_shape(&shape, hp, ds->D, K);
    if (shape.n_params > (1 << 20)) /* accepted (under the cap), too big to build here */
        return;
    td_trainer *t = NULL;
    st = td_trainer_create(&t, hp, ds, NULL, &err);
    FUZZ_CHECK(st == TD_OK, "a validated job does not build a trainer: %s: %s (field %s)",
               td_status_code(st), err.message, err.field);
    td_trainer_set_threads(t, 1);
    const td_model *m = td_trainer_model(t);
    /* One epoch only when it is cheap: a fuzzer run should not train for seconds. */
    double work = (double)m->n_params * (double)ds->N;
    if (hp->model == TD_MODEL_GMM || hp->model == TD_MODEL_EMBED_GMM)
        work *= (double)(hp->gmm.n_init > 0 ? hp->gmm.n_init : 1) * (double)hp->gmm.components;
    if (work < 2e5 && td_trainer_state_size(t) < ((size_t)1 << 22)) {
        td_record rec;
        st = td_trainer_step(t, &rec, &err);
        FUZZ_CHECK(st == TD_OK || st == TD_EDIVERGED, "epoch 1: %s: %s", td_status_code(st),
                   err.message);
        size_t cap = td_trainer_state_size(t);
        void *buf = malloc(cap ? cap : 1);
        FUZZ_CHECK(buf != NULL, "out of memory");
        size_t n = td_trainer_save(t, buf, cap);
        FUZZ_CHECK(n > 0 && n <= cap, "snapshot of %zu bytes, capacity %zu", n, cap);
        st = td_trainer_restore(t, buf, n, &err);
        FUZZ_CHECK(st == TD_OK, "own snapshot does not restore: %s", err.message);
        free(buf);
    }
    td_trainer_destroy(t);
}

static int same_dataset(const td_dataset_buf *a, const td_dataset_buf *b)
{
    const td_dataset *x = &a->ds, *y = &b->ds;
    if (x->N != y->N || x->D != y->D || x->y_cols != y->y_cols || x->Y_cols != y->Y_cols ||
        x->P != y->P || !a->name != !b->name || (a->name && strcmp(a->name, b->name)))
        return 0;
    return memcmp(a->X, b->X, sizeof(float) * (size_t)(x->N * x->D)) == 0 &&
        (!a->y || memcmp(a->y, b->y, sizeof(int32_t) * (size_t)(x->N * x->y_cols)) == 0) &&
        (!a->Y || memcmp(a->Y, b->Y, sizeof(float) * (size_t)(x->N * x->Y_cols)) == 0) &&
        (!a->pairs || memcmp(a->pairs, b->pairs, sizeof(int32_t) * (size_t)(x->P * 2)) == 0);
}

/* The body in pieces of step bytes: the same outcome as whole (st0, e0, jr0). */
static void compare_pieces(const uint8_t *data, size_t size, size_t step, td_status st0,
                           const td_error *e0, const td_job_request *jr0)
{
    td_dstream *s = td_json_job_stream(size);
    FUZZ_CHECK(s != NULL, "out of memory");
    for (size_t at = 0; at < size; at += step)
        td_dstream_feed(s, (const char *)data + at, step < size - at ? step : size - at);
    td_job_request jr;
    td_error err = {{0}, {0}};
    td_status st = td_json_job_finish(&jr, s, &err);
    td_dstream_destroy(s);
    FUZZ_CHECK(st == st0 && (st ? strcmp(err.message, e0->message) == 0 : 1),
               "pieces of %zu: %d [%s] %s, whole: %d [%s] %s", step, st, err.field, err.message,
               st0, e0->field, e0->message);
    if (!st)
        FUZZ_CHECK(jr.model == jr0->model && !jr.data == !jr0->data &&
                       (!jr.data || same_dataset(jr.data, jr0->data)),
                   "pieces of %zu: another request", step);
    td_job_request_fini(&jr);
}

/* The inline data as the tree reader reads it: the same dataset or error. */
static void compare_tree(const uint8_t *data, size_t size, td_status st0, const td_error *e0,
                         const td_job_request *jr0)
{
    cJSON *tree;
    td_error err = {{0}, {0}};
    if (td_json_parse(&tree, (const char *)data, size, &err) != TD_OK) return;
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(tree, "data");
    if (jr0->data && dv) {
        td_dataset_buf d;
        td_status st = td_json_dataset_from(&d, dv, "data", &err);
        FUZZ_CHECK(st == TD_OK && same_dataset(&d, jr0->data), "tree: %d [%s] %s", st, err.field,
                   err.message);
        td_dataset_buf_free(&d);
    } else if (st0 && strncmp(e0->field, "data.", 5) == 0 && cJSON_IsObject(dv) &&
               !strstr(e0->message, "the job body")) { /* an error of the dataset's */
        td_dataset_buf d;
        td_status st = td_json_dataset_from(&d, dv, "data", &err);
        FUZZ_CHECK(st == st0 && strcmp(err.field, e0->field) == 0 &&
                       strcmp(err.message, e0->message) == 0,
                   "tree: %d [%s] %s, stream: %d [%s] %s", st, err.field, err.message, st0,
                   e0->field, e0->message);
        td_dataset_buf_free(&d);
    }
    cJSON_Delete(tree);
}

int td_fuzz_job(const uint8_t *data, size_t size)
{
    init_datasets();
    td_error err = {{0}, {0}};
    td_job_request jr;
    td_status st = td_json_job_parse(&jr, (const char *)data, size, &err);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    compare_pieces(data, size, 1 + h % 13, st, &err, &jr);
    compare_tree(data, size, st, &err, &jr);
    if (st != TD_OK) {
        FUZZ_CHECK_REFUSAL(st, err);
        td_job_request_fini(&jr);
        return 0;
    }
    const td_dataset *ds = jr.data ? &jr.data->ds : &g_ds[h % 3];
    char *text = td_job_hparams_text(&jr.hp, jr.initial_weights);
    FUZZ_CHECK(text != NULL, "td_job_hparams_text failed");
    td_hparams hp;
    st = td_job_decode_hparams(&hp, td_model_names[jr.model], text, ds, &err);
    if (st != TD_OK) {
        FUZZ_CHECK_REFUSAL(st, err);
    } else {
        if (!jr.initial_weights) {
            char *again = td_job_hparams_text(&hp, NULL);
            FUZZ_CHECK(again && strcmp(again, text) == 0,
                       "stored hyperparameters do not print back:\n  %s\n  %s", text,
                       again ? again : "(null)");
            free(again);
        }
        train_a_little(&hp, ds);
    }
    td_hparams_fini(&hp);
    free(text);
    td_job_request_fini(&jr);
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_job)
