/* test_rest_mlp.c — mlp jobs through the REST API of a live daemon: the two spirals
 * (resolved hyperparameters, falling losses, the engine's model bit for bit, predictions,
 * the model back in as initial_weights, softmax failing on the same data), grouped
 * monotone outputs (penalty columns, per-group distributions), and an exact resume after
 * SIGKILL. The data and the engine's settings are the mlp suite's (fixtures.h). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "fixtures.h"
#include "testutil.h"
#include "traind/train.h"
#include "train/mlp.h"

/* {"X": [...], "y": [...]} of ds; y as rows of G when ds->y_cols > 1. malloc'd. */
static char *dataset_json(const td_dataset *ds)
{
    size_t cap = (size_t)(ds->N * ds->D) * 18 + (size_t)(ds->N * ds->y_cols) * 8 + 64;
    char *b = malloc(cap), *p = b;
    ck_assert(b);
    p += sprintf(p, "{\"X\":[");
    for (int64_t n = 0; n < ds->N; n++) {
        p += sprintf(p, "%s[", n ? "," : "");
        for (int64_t d = 0; d < ds->D; d++)
            p += sprintf(p, "%s%.9g", d ? "," : "", (double)ds->X[n * ds->D + d]);
        p += sprintf(p, "]");
    }
    p += sprintf(p, "],\"y\":[");
    for (int64_t n = 0; n < ds->N; n++) {
        int64_t G = ds->y_cols;
        p += sprintf(p, "%s%s", n ? "," : "", G > 1 ? "[" : "");
        for (int64_t g = 0; g < G; g++)
            p += sprintf(p, "%s%d", g ? "," : "", ds->y[n * G + g]);
        p += sprintf(p, "%s", G > 1 ? "]" : "");
    }
    sprintf(p, "]}");
    return b;
}

static char *post_dataset(int port, const td_dataset *ds)
{
    char *body = dataset_json(ds);
    char *id = api_post_id(port, "/v1/datasets", body, 201);
    free(body);
    return id;
}

static char *run_job(int port, const char *model, const char *ds, const char *hp)
{
    char *id = api_post_job(port, model, ds, hp);
    api_expect_state(port, id, "succeeded", 90);
    return id;
}

/* POST /predict with rows [0, n) of ds. */
static api_call predict(int port, const char *job, const td_dataset *ds, int64_t n)
{
    td_dataset part = *ds;
    part.N = n;
    part.y_cols = 0; /* X only */
    char *body = dataset_json(&part);
    strcpy(strstr(body, ",\"y\":"), "}");
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    api_call c = api_req(port, "POST", path, body);
    free(body);
    ck_assert_msg(c.status == 200, "predict: %d %s", c.status, c.r.body);
    return c;
}

static int64_t array_len(const cJSON *o, const char *key)
{
    const cJSON *a = key ? cJSON_GetObjectItem(o, key) : o;
    ck_assert_msg(cJSON_IsArray(a), "%s is not an array", key ? key : "item");
    return cJSON_GetArraySize(a);
}

/* Every "layers"[l] W (in, out) and b (out) against the trainer's parameters, exactly. */
static void expect_layers(const cJSON *model, const td_model *m, const char *act)
{
    const cJSON *layers = cJSON_GetObjectItem(model, "layers");
    td_tensor_desc t[TD_MAX_TENSORS];
    int nt = td_model_layout(m, t);
    ck_assert_int_eq(array_len(layers, NULL), nt / 2);
    for (int l = 0; l < nt / 2; l++) {
        const cJSON *L = cJSON_GetArrayItem(layers, l);
        const td_tensor_desc *W = &t[2 * l], *b = &t[2 * l + 1];
        ck_assert_str_eq(cJSON_GetObjectItem(L, "activation")->valuestring,
                         l < nt / 2 - 1 ? act : "softmax");
        int64_t rows, cols, nb;
        float *w = tu_floats(cJSON_GetObjectItem(L, "W"), NULL, &rows, &cols);
        float *bb = tu_floats(cJSON_GetObjectItem(L, "b"), &nb, NULL, NULL);
        ck_assert_int_eq(rows, W->rows);
        ck_assert_int_eq(cols, W->cols);
        ck_assert_int_eq(nb, b->cols);
        ck_assert(memcmp(w, m->params + W->offset, sizeof(float) * (size_t)(rows * cols)) == 0);
        ck_assert(memcmp(bb, m->params + b->offset, sizeof(float) * (size_t)nb) == 0);
        free(w), free(bb);
    }
}

START_TEST(rest_two_spirals)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    td_dataset ds = spirals(2000);
    char *dsid = post_dataset(port, &ds);
    char *job = run_job(port, "mlp", dsid, SPIRAL_HP);

    /* the job: resolved hyperparameters */
    api_call c = api_get(port, "/v1/jobs/%s", job);
    const cJSON *hp = cJSON_GetObjectItem(c.json, "hyperparameters");
    ck_assert_str_eq(cJSON_GetObjectItem(c.json, "model")->valuestring, "mlp");
    ck_assert_int_eq(array_len(hp, "hidden"), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(hp, "activation")->valuestring, "tanh");
    ck_assert_str_eq(cJSON_GetObjectItem(hp, "optimizer")->valuestring, "adam");
    api_done(&c);

    /* losses: one row per epoch, falling */
    c = api_get(port, "/v1/jobs/%s/losses", job);
    const cJSON *loss = cJSON_GetObjectItem(c.json, "loss");
    ck_assert_int_eq(array_len(c.json, "loss"), 60);
    ck_assert_int_eq(array_len(c.json, "accuracy"), 60);
    ck_assert(cJSON_GetArrayItem(loss, 59)->valuedouble <
              0.2 * cJSON_GetArrayItem(loss, 0)->valuedouble);
    api_done(&c);

    /* the model is the engine's, bit for bit (same data, seed and build; the daemon's
     * thread count does not matter) */
    td_hparams h;
    spiral_hp(&h);
    td_trainer *t = tu_make_trainer(&h, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    c = api_get(port, "/v1/jobs/%s/model", job);
    ck_assert_str_eq(cJSON_GetObjectItem(c.json, "model")->valuestring, "mlp");
    expect_layers(c.json, td_trainer_model(t), "tanh");
    char *model_json = strdup(c.r.body);
    api_done(&c);

    /* predictions on the training set: >= 97% */
    c = predict(port, job, &ds, ds.N);
    const cJSON *probs = cJSON_GetObjectItem(c.json, "probabilities");
    const cJSON *labels = cJSON_GetObjectItem(c.json, "labels");
    ck_assert_int_eq(array_len(probs, NULL), ds.N);
    ck_assert_int_eq(array_len(labels, NULL), ds.N);
    int64_t ok = 0;
    for (int64_t n = 0; n < ds.N; n++) {
        const cJSON *row = cJSON_GetArrayItem(probs, (int)n);
        ck_assert_int_eq(array_len(row, NULL), 2);
        tu_close(cJSON_GetArrayItem(row, 0)->valuedouble + cJSON_GetArrayItem(row, 1)->valuedouble,
                 1.0, 0, 1e-6, "row sum");
        ok += cJSON_GetArrayItem(labels, (int)n)->valueint == ds.y[n];
    }
    ck_assert_msg(ok >= 0.97 * ds.N, "REST predictions: %lld of %lld right", (long long)ok,
                  (long long)ds.N);
    api_done(&c);

    /* the model object goes back in as initial_weights ({"layers": [...]}): with a step
     * far below float resolution, the weights come back unchanged */
    size_t n = strlen(model_json) + 256;
    char *hp2 = malloc(n);
    snprintf(hp2, n,
             "{\"hidden\":[64,64],\"activation\":\"tanh\",\"optimizer\":\"sgd\","
             "\"lr\":1e-30,\"epochs\":1,\"initial_weights\":%s}",
             model_json);
    char *job2 = run_job(port, "mlp", dsid, hp2);
    c = api_get(port, "/v1/jobs/%s/model", job2);
    expect_layers(c.json, td_trainer_model(t), "tanh");
    api_done(&c);

    /* softmax regression on the same data through the same API cannot separate them */
    char *job3 = run_job(port, "softmax", dsid,
                         "{\"optimizer\":\"adam\",\"lr\":0.01,\"batch_size\":64,\"epochs\":30}");
    c = predict(port, job3, &ds, ds.N);
    labels = cJSON_GetObjectItem(c.json, "labels");
    ok = 0;
    for (int64_t i = 0; i < ds.N; i++)
        ok += cJSON_GetArrayItem(labels, (int)i)->valueint == ds.y[i];
    ck_assert_msg(ok < 0.75 * ds.N, "softmax got %lld of %lld", (long long)ok, (long long)ds.N);
    api_done(&c);

    api_stop(&d);
    td_trainer_destroy(t);
    free(model_json), free(hp2), free(job), free(job2), free(job3), free(dsid);
    free_data(&ds);
}
END_TEST

START_TEST(rest_grouped_monotone)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    td_dataset ds = rising(600, 67);
    char *dsid = post_dataset(port, &ds);
    const char *hp = "{\"hidden\":[16],\"activation\":\"tanh\",\"groups\":3,"
                     "\"monotone\":{\"weight\":5,\"margin\":0.05},\"lr\":0.01,"
                     "\"batch_size\":64,\"epochs\":10,\"seed\":2}";
    char *job = run_job(port, "mlp", dsid, hp);

    api_call c = api_get(port, "/v1/jobs/%s", job);
    const cJSON *h = cJSON_GetObjectItem(c.json, "hyperparameters");
    ck_assert_int_eq(cJSON_GetObjectItem(h, "groups")->valueint, 3);
    tu_close(cJSON_GetObjectItem(cJSON_GetObjectItem(h, "monotone"), "weight")->valuedouble, 5, 0,
             0, "monotone.weight");
    const cJSON *metrics = cJSON_GetObjectItem(c.json, "metrics");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(metrics, "violation_rate")));
    api_done(&c);

    c = api_get(port, "/v1/jobs/%s/losses", job);
    ck_assert_int_eq(array_len(c.json, "penalty"), 10);
    ck_assert_int_eq(array_len(c.json, "violation_rate"), 10);
    double v = cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "violation_rate"), 9)->valuedouble;
    ck_assert_msg(v <= 0.05, "violation rate %g", v);
    api_done(&c);

    c = api_get(port, "/v1/jobs/%s/model", job);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "groups")->valueint, 3);
    const cJSON *layers = cJSON_GetObjectItem(c.json, "layers");
    ck_assert_int_eq(array_len(layers, NULL), 2);
    ck_assert_int_eq(array_len(cJSON_GetArrayItem(layers, 0), "W"), 4);
    ck_assert_int_eq(
        array_len(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 1), "W"), 0),
                  NULL),
        15);
    api_done(&c);

    /* predictions: probabilities (N, G, S), labels (N, G) = argmax of each group */
    c = predict(port, job, &ds, 7);
    const cJSON *probs = cJSON_GetObjectItem(c.json, "probabilities");
    const cJSON *labels = cJSON_GetObjectItem(c.json, "labels");
    ck_assert_int_eq(array_len(probs, NULL), 7);
    ck_assert_int_eq(array_len(labels, NULL), 7);
    for (int n = 0; n < 7; n++) {
        const cJSON *pn = cJSON_GetArrayItem(probs, n), *ln = cJSON_GetArrayItem(labels, n);
        ck_assert_int_eq(array_len(pn, NULL), 3);
        ck_assert_int_eq(array_len(ln, NULL), 3);
        for (int g = 0; g < 3; g++) {
            const cJSON *pg = cJSON_GetArrayItem(pn, g);
            ck_assert_int_eq(array_len(pg, NULL), 5);
            double s = 0, best = -1;
            int arg = -1;
            for (int k = 0; k < 5; k++) {
                double p = cJSON_GetArrayItem(pg, k)->valuedouble;
                s += p;
                if (p > best) best = p, arg = k;
            }
            tu_close(s, 1.0, 0, 1e-6, "group sum");
            ck_assert_int_eq(cJSON_GetArrayItem(ln, g)->valueint, arg);
        }
    }
    api_done(&c);

    api_stop(&d);
    free(job), free(dsid);
    free_data(&ds);
}
END_TEST

/* A grouped mlp job killed with SIGKILL mid-run resumes from its checkpoint after a
 * restart and ends with the uninterrupted engine's weights, bit for bit, and a history of
 * every epoch exactly once. */
START_TEST(rest_resume_after_kill9_is_exact)
{
    const char *conf = "checkpoint_interval_s = 0\nworkers = 1\n";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    td_dataset ds = rising(400, 71);
    char *dsid = post_dataset(d.port, &ds);
    const char *hp = "{\"hidden\":[8,8],\"activation\":\"relu\",\"groups\":3,"
                     "\"monotone\":{\"weight\":1},\"lr\":0.005,\"batch_size\":50,"
                     "\"epochs\":800,\"validation_split\":0.25,\"seed\":4}";
    char *job = api_post_job(d.port, "mlp", dsid, hp);
    double t0 = httpc_now();
    while (api_job_epoch(d.port, job) < 40 && httpc_now() - t0 < 30)
        usleep(2000);
    int before = api_job_epoch(d.port, job);
    ck_assert_msg(before >= 40 && before < 800, "epoch %d when interrupting", before);
    httpc_daemon_stop(&d, SIGKILL, 10);

    httpc_daemon r = api_start(d.dir, conf, NULL, NULL);
    api_expect_state(r.port, job, "succeeded", 90);
    api_call c = api_get(r.port, "/v1/jobs/%s", job);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint, 1);
    api_done(&c);
    c = api_get(r.port, "/v1/jobs/%s/losses", job);
    const cJSON *ep = cJSON_GetObjectItem(c.json, "epoch"), *v;
    ck_assert_int_eq(array_len(ep, NULL), 800);
    int i = 1;
    cJSON_ArrayForEach(v, ep) ck_assert_int_eq(v->valueint, i++);
    double last_val = cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "val_loss"), 799)->valuedouble;
    api_done(&c);

    td_hparams h;
    mlp_hp(&h, 8, 8, TD_ACT_RELU);
    h.groups = 3;
    h.monotone_weight = 1;
    h.lr = 0.005;
    h.batch_size = 50;
    h.epochs = 800;
    h.validation_split = 0.25;
    h.seed = 4;
    td_trainer *t = tu_make_trainer(&h, &ds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    c = api_get(r.port, "/v1/jobs/%s/model", job);
    expect_layers(c.json, td_trainer_model(t), "relu");
    api_done(&c);
    ck_assert(memcmp(&last_val, &rec.v[tu_column(t, "val_loss")], sizeof last_val) == 0);

    api_stop(&r);
    td_trainer_destroy(t);
    free(job), free(dsid);
    free_data(&ds);
}
END_TEST

Suite *suite_rest_mlp(void)
{
    Suite *s = suite_create("rest_mlp");
    TCase *tc = tcase_create("rest");
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, rest_two_spirals);
    tcase_add_test(tc, rest_grouped_monotone);
    tcase_add_test(tc, rest_resume_after_kill9_is_exact);
    suite_add_tcase(s, tc);
    return s;
}
