/* test_rest_gmm.c — gmm and embed_gmm jobs through the REST API of a live daemon: a gmm
 * job with n_init 2 (resolved hyperparameters, the model object, both runs in the history,
 * predictions, validation), an embed_gmm job (defaults, history columns, the model, purity,
 * predictions, inline pairs), and an exact resume after SIGKILL of each (gmm within its
 * second n_init run, embed_gmm after the warm-up). The data and the engine's settings are
 * the gmm and embed suites' (fixtures.h). */
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

/* ---- gmm ------------------------------------------------------------------------------ */

START_TEST(gmm_job_through_rest_api)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    /* an unlabelled dataset: 3 blobs in 2 dimensions */
    int64_t N = 600, E = 2;
    float *X = gmm_blobs(N, E, 3, 17, 0, NULL);
    size_t cap = (size_t)N * 40 + 64;
    char *body = malloc(cap), *p = body;
    p += sprintf(p, "{\"name\":\"blobs\",\"X\":[");
    for (int64_t i = 0; i < N; i++)
        p += sprintf(p, "%s[%.6g,%.6g]", i ? "," : "", (double)X[i * 2], (double)X[i * 2 + 1]);
    sprintf(p, "]}");
    api_call c = api_req(port, "POST", "/v1/datasets", body);
    free(body);
    ck_assert_msg(c.status == 201, "dataset: %d %s", c.status, c.r.body);
    char *ds = strdup(api_str(c.json, "id"));
    api_done(&c);

    /* a bad means_init shape names the field */
    char job[1024];
    snprintf(job, sizeof job,
             "{\"model\":\"gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"components\":3,\"means_init\":[[0,0],[1,1]]}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", job);
    ck_assert_msg(c.status == 422, "%d %s", c.status, c.r.body);
    ck_assert_str_eq(api_str(cJSON_GetObjectItem(c.json, "error"), "field"),
                     "hyperparameters.means_init");
    api_done(&c);

    snprintf(job, sizeof job,
             "{\"model\":\"gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"components\":3,\"covariance\":\"full\",\"seed\":4,\"n_init\":2,"
             "\"weights_init\":[0.2,0.3,0.5]}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", job);
    ck_assert_msg(c.status == 202, "job: %d %s", c.status, c.r.body);
    char *id = strdup(api_str(c.json, "id"));
    const cJSON *hp = cJSON_GetObjectItem(c.json, "hyperparameters");
    ck_assert_int_eq(cJSON_GetObjectItem(hp, "max_iter")->valueint, 100);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(hp, "weights_init")), 3);
    ck_assert_str_eq(api_str(hp, "init"), "kmeans++");
    api_done(&c);

    char path[160];
    api_expect_state(port, id, "succeeded", 60);
    cJSON *j = api_get_json(port, "/v1/jobs/%s", id);
    const cJSON *metrics = cJSON_GetObjectItem(j, "metrics");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(metrics, "lower_bound")));
    cJSON_Delete(j);

    snprintf(path, sizeof path, "/v1/jobs/%s/model", id);
    c = api_req(port, "GET", path, NULL);
    ck_assert_msg(c.status == 200, "%d %s", c.status, c.r.body);
    ck_assert_str_eq(api_str(c.json, "model"), "gmm");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "weights")), 3);
    const cJSON *means = cJSON_GetObjectItem(c.json, "means");
    ck_assert_int_eq(cJSON_GetArraySize(means), 3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(means, 0)), 2);
    const cJSON *covs = cJSON_GetObjectItem(c.json, "covariances");
    ck_assert_int_eq(cJSON_GetArraySize(covs), 3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(covs, 0)), 2);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetArrayItem(covs, 0), 0)), 2);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(c.json, "lower_bound")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(c.json, "converged")));
    int n_iter = cJSON_GetObjectItem(c.json, "n_iter")->valueint;
    ck_assert_int_ge(n_iter, 2);
    api_done(&c);

    snprintf(path, sizeof path, "/v1/jobs/%s/losses", id);
    c = api_req(port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    /* n_init 2: two whole runs in the history, "run" 1 then 2; the model is the better
     * run's, whose n_iter is its own iteration count */
    const cJSON *lb = cJSON_GetObjectItem(c.json, "lower_bound");
    const cJSON *run = cJSON_GetObjectItem(c.json, "run");
    int n = cJSON_GetArraySize(lb), n1 = 0;
    ck_assert_int_eq(cJSON_GetArraySize(run), n);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c.json, "size_2")), n);
    while (n1 < n && cJSON_GetArrayItem(run, n1)->valueint == 1)
        n1++;
    ck_assert_int_ge(n1, 2);
    ck_assert_int_gt(n, n1);
    ck_assert_msg(n_iter == n1 || n_iter == n - n1, "n_iter %d, runs of %d and %d", n_iter, n1,
                  n - n1);
    double best_lb = -INFINITY;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(cJSON_GetArrayItem(run, i)->valueint, i < n1 ? 1 : 2);
        if (i != 0 && i != n1) /* EM never lowers the bound within a run */
            ck_assert(cJSON_GetArrayItem(lb, i)->valuedouble >=
                      cJSON_GetArrayItem(lb, i - 1)->valuedouble - 1e-6);
        if (i == n1 - 1 || i == n - 1)
            best_lb = fmax(best_lb, cJSON_GetArrayItem(lb, i)->valuedouble);
    }
    snprintf(path, sizeof path, "/v1/jobs/%s/model", id);
    api_call mc = api_req(port, "GET", path, NULL);
    tu_close(cJSON_GetObjectItem(mc.json, "lower_bound")->valuedouble, best_lb, 1e-12, 0,
             "model lower_bound = the best run's");
    api_done(&mc);
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", id);
    api_done(&c);

    snprintf(path, sizeof path, "/v1/jobs/%s/predict", id);
    c = api_req(port, "POST", path, "{\"X\":[[0,0],[1,2],[-3,4],[10,-10]]}");
    ck_assert_msg(c.status == 200, "%d %s", c.status, c.r.body);
    const cJSON *resp = cJSON_GetObjectItem(c.json, "responsibilities");
    const cJSON *labels = cJSON_GetObjectItem(c.json, "labels");
    const cJSON *ll = cJSON_GetObjectItem(c.json, "log_likelihood");
    ck_assert_int_eq(cJSON_GetArraySize(resp), 4);
    ck_assert_int_eq(cJSON_GetArraySize(labels), 4);
    ck_assert_int_eq(cJSON_GetArraySize(ll), 4);
    for (int i = 0; i < 4; i++) {
        const cJSON *row = cJSON_GetArrayItem(resp, i);
        ck_assert_int_eq(cJSON_GetArraySize(row), 3);
        double s = 0, best = -1;
        int arg = 0;
        for (int k = 0; k < 3; k++) {
            double v = cJSON_GetArrayItem(row, k)->valuedouble;
            s += v;
            if (v > best) best = v, arg = k;
        }
        tu_close(s, 1.0, 1e-5, 0, "responsibilities row sum");
        ck_assert_int_eq(cJSON_GetArrayItem(labels, i)->valueint, arg);
        ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(ll, i)));
    }
    api_done(&c);
    c = api_req(port, "POST", path, "{\"X\":[[0,0,1]]}");
    ck_assert_int_eq(c.status, 422);
    api_done(&c);

    /* embed_gmm needs labels or pairs: this dataset has neither */
    snprintf(job, sizeof job, "{\"model\":\"embed_gmm\",\"dataset\":\"%s\"}", ds);
    c = api_req(port, "POST", "/v1/jobs", job);
    ck_assert_int_eq(c.status, 422);
    ck_assert_str_eq(api_str(cJSON_GetObjectItem(c.json, "error"), "field"), "dataset");
    api_done(&c);

    free(ds), free(id), free(X);
    api_stop(&d);
}
END_TEST

/* POSTs X (N, E) with every float written exactly (%.9g); returns the dataset id. */
static char *post_rows(int port, const float *X, int64_t N, int64_t E)
{
    size_t cap = (size_t)(N * E) * 18 + 64;
    char *body = malloc(cap), *p = body;
    p += sprintf(p, "{\"X\":[");
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < E; j++)
            p += sprintf(p, "%s%.9g%s",
                         j       ? ","
                             : i ? ",["
                                 : "[",
                         (double)X[i * E + j], j == E - 1 ? "]" : "");
    sprintf(p, "]}");
    char *id = api_post_id(port, "/v1/datasets", body, 201);
    free(body);
    return id;
}

/* A gmm job with n_init 3 (checkpoints every iteration) killed with SIGKILL in its second
 * run resumes after a restart and ends with the uninterrupted engine's model bit for bit;
 * its history has every iteration once, runs 1, 2, 3 in order. A tied job's model object
 * has one (E, E) covariance. */
START_TEST(gmm_resume_after_kill9_mid_n_init_is_exact)
{
    const char *conf = "checkpoint_interval_s = 0\nworkers = 1\n";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    int64_t N = 40000, E = 8, M = 6, I = 60, R = 3;
    float *X = gmm_blobs(N, E, 4, 31, 0, NULL);
    char *ds = post_rows(d.port, X, N, E), job[512];
    snprintf(job, sizeof job,
             "{\"model\":\"gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"components\":%lld,\"n_init\":%lld,\"max_iter\":%lld,\"tol\":0,\"seed\":5}}",
             ds, (long long)M, (long long)R, (long long)I);
    api_call c = api_req(d.port, "POST", "/v1/jobs", job);
    ck_assert_msg(c.status == 202, "job: %d %s", c.status, c.r.body);
    char *id = strdup(api_str(c.json, "id"));
    api_done(&c);
    double t0 = httpc_now();
    while (api_job_epoch(d.port, id) < I + 5 && httpc_now() - t0 < 60)
        usleep(1000);
    int before = api_job_epoch(d.port, id);
    ck_assert_msg(before > I && before < R * I, "iteration %d when interrupting", before);
    httpc_daemon_stop(&d, SIGKILL, 10);

    httpc_daemon r = api_start(d.dir, conf, NULL, NULL);
    api_expect_state(r.port, id, "succeeded", 120);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", id);
    c = api_req(r.port, "GET", path, NULL);
    const cJSON *ep = cJSON_GetObjectItem(c.json, "epoch"),
                *run = cJSON_GetObjectItem(c.json, "run");
    ck_assert_int_eq(cJSON_GetArraySize(ep), R * I);
    for (int i = 0; i < R * I; i++) {
        ck_assert_int_eq(cJSON_GetArrayItem(ep, i)->valueint, i + 1);
        ck_assert_int_eq(cJSON_GetArrayItem(run, i)->valueint, 1 + i / I);
    }
    api_done(&c);

    td_dataset tds = {.N = N, .D = E, .X = X};
    td_hparams hp = gmm_hp(M, TD_COV_FULL);
    hp.gmm.n_init = R, hp.gmm.max_iter = I, hp.tol = 0, hp.seed = 5;
    td_trainer *t = tu_make_trainer(&hp, &tds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    const td_model *m = td_trainer_model(t);
    snprintf(path, sizeof path, "/v1/jobs/%s/model", id);
    c = api_req(r.port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    const char *names[3] = {"weights", "means", "covariances"};
    td_tensor_desc tt[TD_MAX_TENSORS];
    ck_assert_int_eq(td_model_layout(m, tt), 3);
    for (int k = 0; k < 3; k++) {
        int64_t n = tt[k].rows * tt[k].cols;
        double *v = malloc(sizeof(double) * (size_t)n);
        ck_assert_int_eq(flatten(v, n, cJSON_GetObjectItem(c.json, names[k])), n);
        for (int64_t i = 0; i < n; i++)
            ck_assert_msg((float)v[i] == m->params[tt[k].offset + i],
                          "%s[%lld] differs after "
                          "the resume",
                          names[k], (long long)i);
        free(v);
    }
    ck_assert(cJSON_GetObjectItem(c.json, "lower_bound")->valuedouble == m->lower_bound);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "n_iter")->valueint, I);
    api_done(&c);

    /* tied through the API: the model's covariances are one (E, E) matrix */
    snprintf(job, sizeof job,
             "{\"model\":\"gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"components\":3,\"covariance\":\"tied\",\"max_iter\":5}}",
             ds);
    c = api_req(r.port, "POST", "/v1/jobs", job);
    ck_assert_msg(c.status == 202, "tied job: %d %s", c.status, c.r.body);
    free(id);
    id = strdup(api_str(c.json, "id"));
    api_done(&c);
    api_expect_state(r.port, id, "succeeded", 60);
    snprintf(path, sizeof path, "/v1/jobs/%s/model", id);
    c = api_req(r.port, "GET", path, NULL);
    ck_assert_str_eq(api_str(c.json, "covariance"), "tied");
    const cJSON *covs = cJSON_GetObjectItem(c.json, "covariances");
    ck_assert_int_eq(cJSON_GetArraySize(covs), E);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(covs, 0)), E);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", id);
    c = api_req(r.port, "POST", path, "{\"X\":[[0,0,0,0,0,0,0,0]]}");
    ck_assert_msg(c.status == 200, "%d %s", c.status, c.r.body);
    ck_assert_int_eq(
        cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "responsibilities"), 0)),
        3);
    api_done(&c);

    api_stop(&r);
    td_trainer_destroy(t);
    td_hparams_fini(&hp);
    free(id), free(ds), free(X);
}
END_TEST

/* ---- embed_gmm ------------------------------------------------------------------------ */

static int size_of(const cJSON *o, const char *k)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Stores X (N, D) and y (N) (floats printed so they read back exactly); returns the id. */
static char *post_dataset(int port, const float *X, const int32_t *y, int64_t N, int64_t D)
{
    size_t cap = (size_t)(N * D) * 18 + (size_t)N * 12 + 64;
    char *body = malloc(cap), *p = body;
    p += sprintf(p, "{\"name\":\"blobs\",\"X\":[");
    for (int64_t i = 0; i < N; i++) {
        p += sprintf(p, "%s[", i ? "," : "");
        for (int64_t j = 0; j < D; j++)
            p += sprintf(p, "%s%.9g", j ? "," : "", (double)X[i * D + j]);
        *p++ = ']';
    }
    p += sprintf(p, "],\"y\":[");
    for (int64_t i = 0; i < N; i++)
        p += sprintf(p, "%s%d", i ? "," : "", y[i]);
    sprintf(p, "]}");
    char *id = api_post_id(port, "/v1/datasets", body, 201);
    free(body);
    return id;
}

START_TEST(embed_job_through_rest_api)
{
    httpc_daemon d = api_start(NULL, NULL, NULL, NULL);
    int port = d.port;
    int64_t N = 3000, D = 20, K = 6;
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    float *X = embed_blobs(N, D, K, 1, y);
    char *ds = post_dataset(port, X, y, N, D), *body, *p;
    api_call c;

    char job[1024];
    snprintf(job, sizeof job,
             "{\"model\":\"embed_gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"epochs\":10}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", job);
    ck_assert_int_eq(c.status, 422); /* embed_gmm counts iterations */
    api_done(&c);

    snprintf(job, sizeof job,
             "{\"model\":\"embed_gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"embedding_dim\":4,\"components\":6,\"seed\":3}}",
             ds);
    c = api_req(port, "POST", "/v1/jobs", job);
    ck_assert_msg(c.status == 202, "job: %d %s", c.status, c.r.body);
    char *id = strdup(api_str(c.json, "id"));
    const cJSON *hp = cJSON_GetObjectItem(c.json, "hyperparameters");
    ck_assert_int_eq(cJSON_GetObjectItem(hp, "iterations")->valueint, 300);
    ck_assert_int_eq(cJSON_GetObjectItem(hp, "warmup_iterations")->valueint, 45);
    ck_assert_int_eq(cJSON_GetObjectItem(hp, "n_init")->valueint, 5);
    tu_close(cJSON_GetObjectItem(hp, "gmm_weight")->valuedouble, 0.01, 0, 0, "gmm_weight");
    api_done(&c);

    char path[160];
    api_expect_state(port, id, "succeeded", 90);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    c = api_req(port, "GET", path, NULL);
    const cJSON *metrics = cJSON_GetObjectItem(c.json, "metrics");
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(metrics, "gmm_nll")));
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(metrics, "pair_loss")));
    api_done(&c);

    snprintf(path, sizeof path, "/v1/jobs/%s/losses", id);
    c = api_req(port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    static const char *const cols[] = {"epoch",   "elapsed_s", "loss",   "pair_loss",
                                       "gmm_nll", "reseeded",  "size_0", "size_5"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        ck_assert_msg(size_of(c.json, cols[i]) == 300, "column %s", cols[i]);
    const cJSON *nll = cJSON_GetObjectItem(c.json, "gmm_nll");
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(nll, 44)));
    ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(nll, 45)));
    api_done(&c);

    snprintf(path, sizeof path, "/v1/jobs/%s/model", id);
    c = api_req(port, "GET", path, NULL);
    ck_assert_msg(c.status == 200, "%d %s", c.status, c.r.body);
    ck_assert_str_eq(api_str(c.json, "model"), "embed_gmm");
    const cJSON *layers = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "network"), "layers");
    ck_assert_int_eq(cJSON_GetArraySize(layers), 2);
    const cJSON *l0 = cJSON_GetArrayItem(layers, 0), *l1 = cJSON_GetArrayItem(layers, 1);
    ck_assert_int_eq(size_of(l0, "W"), 20);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(l0, "W"), 0)), 128);
    ck_assert_str_eq(api_str(l0, "activation"), "relu");
    ck_assert_int_eq(size_of(l1, "W"), 128);
    ck_assert_int_eq(size_of(l1, "b"), 4);
    ck_assert_str_eq(api_str(l1, "activation"), "linear");
    const cJSON *gmm = cJSON_GetObjectItem(c.json, "gmm");
    ck_assert_str_eq(api_str(gmm, "covariance"), "full");
    ck_assert_int_eq(size_of(gmm, "weights"), 6);
    ck_assert_int_eq(size_of(gmm, "means"), 6);
    const cJSON *covs = cJSON_GetObjectItem(gmm, "covariances");
    ck_assert_int_eq(cJSON_GetArraySize(covs), 6);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(covs, 0)), 4);
    ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(gmm, "lower_bound")));
    ck_assert_int_eq(cJSON_GetObjectItem(gmm, "n_iter")->valueint, 255);
    const cJSON *as = cJSON_GetObjectItem(c.json, "assignments");
    ck_assert_int_eq(cJSON_GetArraySize(as), N);
    float *a = malloc(sizeof(float) * (size_t)N);
    for (int64_t i = 0; i < N; i++)
        a[i] = (float)cJSON_GetArrayItem(as, (int)i)->valueint;
    double pur = purity(a, y, N, K, K);
    ck_assert_msg(pur >= 0.9, "purity through the API %.4f", pur);
    api_done(&c);

    /* predict on the first 5 training rows: their labels are their assignments */
    body = malloc(4096);
    p = body + sprintf(body, "{\"X\":[");
    for (int64_t i = 0; i < 5; i++) {
        p += sprintf(p, "%s[", i ? "," : "");
        for (int64_t j = 0; j < D; j++)
            p += sprintf(p, "%s%.9g", j ? "," : "", (double)X[i * D + j]);
        p += sprintf(p, "]");
    }
    sprintf(p, "]}");
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", id);
    c = api_req(port, "POST", path, body);
    free(body);
    ck_assert_msg(c.status == 200, "%d %s", c.status, c.r.body);
    const cJSON *emb = cJSON_GetObjectItem(c.json, "embedding");
    const cJSON *resp = cJSON_GetObjectItem(c.json, "responsibilities");
    const cJSON *labels = cJSON_GetObjectItem(c.json, "labels");
    ck_assert_int_eq(cJSON_GetArraySize(emb), 5);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(emb, 0)), 4);
    ck_assert_int_eq(size_of(c.json, "log_likelihood"), 5);
    for (int i = 0; i < 5; i++) {
        const cJSON *row = cJSON_GetArrayItem(resp, i);
        ck_assert_int_eq(cJSON_GetArraySize(row), 6);
        double s = 0;
        for (int k = 0; k < 6; k++)
            s += cJSON_GetArrayItem(row, k)->valuedouble;
        tu_close(s, 1.0, 1e-5, 0, "responsibilities row sum");
        ck_assert_int_eq(cJSON_GetArrayItem(labels, i)->valueint, (int)a[i]);
    }
    api_done(&c);
    c = api_req(port, "POST", path, "{\"X\":[[0,0,1]]}");
    ck_assert_int_eq(c.status, 422);
    api_done(&c);

    /* inline data with pairs */
    snprintf(job, sizeof job,
             "{\"model\":\"embed_gmm\",\"data\":{\"X\":[[0,0],[0,1],[5,5],"
             "[5,6],[0,0.5],[5,5.5]],\"pairs\":[[0,1],[2,3],[0,2],[1,3],[4,0],[5,2]],"
             "\"pair_labels\":[1,1,0,0,true,true]},\"hyperparameters\":{\"components\":2,"
             "\"iterations\":20,\"hidden\":[8]}}");
    c = api_req(port, "POST", "/v1/jobs", job);
    ck_assert_msg(c.status == 202, "pairs job: %d %s", c.status, c.r.body);
    free(id);
    id = strdup(api_str(c.json, "id"));
    api_done(&c);
    api_expect_state(port, id, "succeeded", 30);

    free(a), free(ds), free(id), free(X), free(y);
    api_stop(&d);
}
END_TEST

/* An embed_gmm job (gmm_batch, checkpoints every iteration) killed with SIGKILL after the
 * warm-up resumes after a restart and ends with the uninterrupted engine's model, bit for
 * bit: network, mixture and assignments; its history has every iteration once. */
START_TEST(embed_resume_after_kill9_is_exact)
{
    const char *conf = "checkpoint_interval_s = 0\nworkers = 1\n";
    httpc_daemon d = api_start(NULL, conf, NULL, NULL);
    int64_t N = 3000, D = 20, K = 5, I = 600;
    int32_t *y = malloc(sizeof(int32_t) * (size_t)N);
    float *X = embed_blobs(N, D, K, 6, y);
    char *ds = post_dataset(d.port, X, y, N, D), job[512];
    snprintf(job, sizeof job,
             "{\"model\":\"embed_gmm\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"embedding_dim\":3,\"components\":5,\"iterations\":%lld,\"hidden\":[64],"
             "\"gmm_batch\":1000,\"seed\":8}}",
             ds, (long long)I);
    api_call c = api_req(d.port, "POST", "/v1/jobs", job);
    ck_assert_msg(c.status == 202, "job: %d %s", c.status, c.r.body);
    char *id = strdup(api_str(c.json, "id"));
    api_done(&c);
    double t0 = httpc_now();
    while (api_job_epoch(d.port, id) < 100 && httpc_now() - t0 < 60)
        usleep(2000);
    int before = api_job_epoch(d.port, id);
    ck_assert_msg(before >= 100 && before < I, "iteration %d when interrupting", before);
    httpc_daemon_stop(&d, SIGKILL, 10);

    httpc_daemon r = api_start(d.dir, conf, NULL, NULL);
    api_expect_state(r.port, id, "succeeded", 120);
    char path[160];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    c = api_req(r.port, "GET", path, NULL);
    ck_assert_int_eq(cJSON_GetObjectItem(c.json, "restarts")->valueint, 1);
    api_done(&c);
    snprintf(path, sizeof path, "/v1/jobs/%s/losses", id);
    c = api_req(r.port, "GET", path, NULL);
    const cJSON *ep = cJSON_GetObjectItem(c.json, "epoch"), *v;
    ck_assert_int_eq(cJSON_GetArraySize(ep), I);
    int i = 1;
    cJSON_ArrayForEach(v, ep) ck_assert_int_eq(v->valueint, i++);
    double last_nll =
        cJSON_GetArrayItem(cJSON_GetObjectItem(c.json, "gmm_nll"), (int)I - 1)->valuedouble;
    api_done(&c);

    td_dataset tds = {.N = N, .D = D, .X = X, .y = y, .y_cols = 1};
    td_hparams hp = embed_hp(3, K, 8);
    hp.epochs = I;
    hp.mlp.hidden[0] = 64;
    hp.embed.gmm_batch = 1000;
    td_trainer *t = tu_make_trainer(&hp, &tds);
    td_record rec;
    while (!td_trainer_done(t))
        tu_step_ok(t, &rec);
    ck_assert(last_nll == rec.v[tu_column(t, "gmm_nll")]);
    const td_model *m = td_trainer_model(t);
    td_tensor_desc tt[TD_MAX_TENSORS];
    int nt = td_model_layout(m, tt);
    snprintf(path, sizeof path, "/v1/jobs/%s/model", id);
    c = api_req(r.port, "GET", path, NULL);
    ck_assert_int_eq(c.status, 200);
    const cJSON *layers = cJSON_GetObjectItem(cJSON_GetObjectItem(c.json, "network"), "layers");
    const cJSON *gmm = cJSON_GetObjectItem(c.json, "gmm");
    const cJSON *got[8] = {cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 0), "W"),
                           cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 0), "b"),
                           cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 1), "W"),
                           cJSON_GetObjectItem(cJSON_GetArrayItem(layers, 1), "b"),
                           cJSON_GetObjectItem(gmm, "weights"),
                           cJSON_GetObjectItem(gmm, "means"),
                           cJSON_GetObjectItem(gmm, "covariances"),
                           cJSON_GetObjectItem(c.json, "assignments")};
    ck_assert_int_eq(nt, 8);
    for (int k = 0; k < nt; k++) {
        int64_t n = tt[k].rows * tt[k].cols;
        double *dv = malloc(sizeof(double) * (size_t)n);
        float *f = malloc(sizeof(float) * (size_t)n);
        ck_assert_int_eq(flatten(dv, n, got[k]), n);
        for (int64_t x = 0; x < n; x++)
            f[x] = (float)dv[x]; /* printed with %.9g: exact */
        free(dv);
        ck_assert_msg(memcmp(f, m->params + tt[k].offset, sizeof(float) * (size_t)n) == 0,
                      "tensor %s differs after the resume", tt[k].name);
        free(f);
    }
    api_done(&c);

    api_stop(&r);
    td_trainer_destroy(t);
    td_hparams_fini(&hp);
    free(id), free(ds), free(X), free(y);
}
END_TEST

Suite *suite_rest_gmm(void)
{
    Suite *s = suite_create("rest_gmm");
    TCase *tc = tcase_create("gmm");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, gmm_job_through_rest_api);
    tcase_add_test(tc, gmm_resume_after_kill9_mid_n_init_is_exact);
    suite_add_tcase(s, tc);
    tc = tcase_create("embed_gmm");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, embed_job_through_rest_api);
    tcase_add_test(tc, embed_resume_after_kill9_is_exact);
    suite_add_tcase(s, tc);
    return s;
}
