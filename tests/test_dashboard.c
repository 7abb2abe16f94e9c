/* test_dashboard.c — the dashboard (web/, http/static.h), the model catalogue
 * (GET /v1/models, http/catalog.h) and the page in a real browser:
 *   catalog   every model lists exactly the table's names that apply to it, each default
 *             equal to td_hparams_defaults + td_hparams_resolve (weight_decay 0 for the
 *             models' default optimizers) read through the table's offsets, bounds and
 *             choices as in the table, a description for every entry; a few values
 *             spelled out (softmax lr 0.1, mlp hidden [100], ...)
 *   static    GET / and /assets/<name> without a token, byte for byte the files of web/,
 *             their Content-Types, the Content-Security-Policy, ETag and 304, 404s, and
 *             the page told whether a token is configured
 *   browser   tests/browser/dashboard.test.js in Debian's chromium (puppeteer-core)
 *             against a daemon with a token, a dataset, a finished and a running job:
 *             the token prompt, the job list, a drawn chart, a view that advances live,
 *             a finished 2x2 sweep's view (trials sorted by the metric, the overlaid
 *             curves and the metric-against-hyperparameter charts drawn, links to the
 *             trials' jobs), a running sweep's view that refreshes, cancels and deletes,
 *             no request to another origin, no page error. Missing node, chromium or
 *             puppeteer-core fail it (make test installs them). With $TD_SCREENSHOT
 *             set, the running job's view is saved there, the sweep's view next to it as
 *             <name>-sweep.png (docs/dashboard.png and docs/dashboard-sweep.png come from
 *             `TD_SCREENSHOT=docs/dashboard.png make test SUITE=dashboard`).
 * Each test starts its own short-lived daemon on an ephemeral port. */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http/catalog.h"
#include "api.h"
#include "testutil.h"
#include "traind/hparams.h"

#define TOKEN "dashboard-token-1"
#define AUTH "Authorization: Bearer " TOKEN

/* ---- helpers ----------------------------------------------------------------------- */

/* A daemon with the token; every api_* request of this test carries it. */
static httpc_daemon start_with_token(void)
{
    const char *env[] = {"TRAIND_TOKEN=" TOKEN, NULL};
    api_auth_set(TOKEN);
    return api_start(NULL, NULL, NULL, env);
}

/* ---- catalog ----------------------------------------------------------------------- */

static const cJSON *model_entry(const cJSON *cat, const char *model)
{
    const cJSON *m;
    cJSON_ArrayForEach(
        m, cJSON_GetObjectItemCaseSensitive(cat, "models")) if (api_str(m, "name") &&
                                                                strcmp(api_str(m, "name"), model) ==
                                                                    0) return m;
    ck_abort_msg("no model %s in the catalogue", model);
    return NULL;
}

static const cJSON *hp_entry(const cJSON *model, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(
        e,
        cJSON_GetObjectItemCaseSensitive(model, "hyperparameters")) if (api_str(e, "name") &&
                                                                        strcmp(api_str(e, "name"),
                                                                               name) == 0) return e;
    return NULL;
}

/* The default of entry e against the struct of defaults, through the table row d. */
static void check_default(const cJSON *e, const td_hparam_def *d, const td_hparams *hp,
                          const char *model)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "default");
    const char *p = (const char *)hp + d->offset;
    ck_assert_msg(v != NULL, "%s %s: no default", model, d->name);
    switch (d->type) {
    case TD_HP_DOUBLE:
        ck_assert_msg(cJSON_IsNumber(v) && v->valuedouble == *(const double *)p,
                      "%s %s: default %g, the table's %g", model, d->name, v->valuedouble,
                      *(const double *)p);
        break;
    case TD_HP_INT:
        if (strcmp(d->name, "n_classes") == 0 && *(const int64_t *)p == 0)
            ck_assert_msg(cJSON_IsNull(v), "n_classes 0 (from the data) is null");
        else
            ck_assert_msg(cJSON_IsNumber(v) && v->valuedouble == (double)*(const int64_t *)p,
                          "%s %s: default %g, the table's %lld", model, d->name, v->valuedouble,
                          (long long)*(const int64_t *)p);
        break;
    case TD_HP_BOOL:
        ck_assert_msg(cJSON_IsBool(v) && cJSON_IsTrue(v) == (*(const int *)p != 0),
                      "%s %s: boolean default", model, d->name);
        break;
    case TD_HP_ENUM:
        ck_assert_msg(cJSON_IsString(v) && strcmp(v->valuestring, d->choices[*(const int *)p]) == 0,
                      "%s %s: default %s", model, d->name,
                      cJSON_IsString(v) ? v->valuestring : "?");
        break;
    case TD_HP_DOUBLE2:
        ck_assert_int_eq(cJSON_GetArraySize(v), 2);
        for (int i = 0; i < 2; i++)
            ck_assert(cJSON_GetArrayItem(v, i)->valuedouble == ((const double *)p)[i]);
        break;
    case TD_HP_INT_LIST: {
        int64_t n = *(const int64_t *)((const char *)hp + d->count_offset);
        ck_assert_int_eq(cJSON_GetArraySize(v), n);
        for (int64_t i = 0; i < n; i++)
            ck_assert(cJSON_GetArrayItem(v, (int)i)->valuedouble ==
                      (double)((const int64_t *)p)[i]);
        break;
    }
    default: /* lists, tensors and weights are not given by default */
        ck_assert_msg(cJSON_IsNull(v), "%s %s: default should be null", model, d->name);
    }
}

START_TEST(models_catalog_is_the_table)
{
    httpc_daemon d = start_with_token();
    int port = d.port;
    httpc_resp r;
    ck_assert_int_eq(httpc_request(port, "GET", "/v1/models", NULL, NULL, 0, &r), 401);
    httpc_free(&r);
    cJSON *cat = api_json(port, "GET", "/v1/models", NULL, 200);
    ck_assert_ptr_nonnull(cat);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(cat, "models")), TD_MODEL_COUNT);
    static const char *const types[] = {"number",      "integer",     "boolean",
                                        "enum",        "number_pair", "integer_list",
                                        "number_list", "weights",     "tensor"};
    for (int m = 0; m < TD_MODEL_COUNT; m++) {
        const cJSON *me = model_entry(cat, td_model_names[m]);
        td_hparams hp;
        td_hparams_defaults(&hp, (td_model_kind)m);
        td_hparams_resolve(&hp, 0); /* the open defaults as the catalogue shows them */
        int applies = 0;
        for (size_t i = 0; i < td_hparam_ndefs; i++) {
            const td_hparam_def *def = &td_hparam_defs[i];
            const cJSON *e = hp_entry(me, def->name);
            if (!(def->models & TD_MODEL_BIT(m))) {
                ck_assert_msg(e == NULL, "%s lists %s, which does not apply to it",
                              td_model_names[m], def->name);
                continue;
            }
            applies++;
            ck_assert_msg(e != NULL, "%s lacks %s", td_model_names[m], def->name);
            ck_assert_str_eq(api_str(e, "type"), types[def->type]);
            ck_assert_msg(api_str(e, "description") && strlen(api_str(e, "description")) > 5,
                          "%s: no description", def->name);
            check_default(e, def, &hp, td_model_names[m]);
            if (def->type == TD_HP_ENUM) {
                const cJSON *ch = cJSON_GetObjectItem(e, "choices");
                int k = 0;
                for (; def->choices[k]; k++)
                    ck_assert_str_eq(cJSON_GetArrayItem(ch, k)->valuestring, def->choices[k]);
                ck_assert_int_eq(cJSON_GetArraySize(ch), k);
            } else if (def->type != TD_HP_BOOL) {
                if (def->min > -1e300)
                    ck_assert(api_num(e, "min") == def->min);
                else
                    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(e, "min")));
                if (def->max < 1e300)
                    ck_assert_msg(api_num(e, "max") == def->max, "%s max %.17g, table %.17g",
                                  def->name, api_num(e, "max"), def->max);
                else
                    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(e, "max")));
            }
            /* the keys, every one on every entry */
            static const char *const keys[] = {"name", "type",    "default",    "min",
                                               "max",  "choices", "description"};
            for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
                ck_assert_msg(cJSON_GetObjectItem(e, keys[k]) != NULL, "%s lacks \"%s\"", def->name,
                              keys[k]);
            if (def->type != TD_HP_ENUM) ck_assert(cJSON_IsNull(cJSON_GetObjectItem(e, "choices")));
        }
        ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(me, "hyperparameters")), applies);
        td_hparams_fini(&hp);
    }
    /* A few values spelled out (SPEC §4-5), so the loop above cannot agree with itself
     * about a wrong table. */
    const cJSON *softmax = model_entry(cat, "softmax"), *mlp = model_entry(cat, "mlp");
    const cJSON *gmm = model_entry(cat, "gmm"), *embed = model_entry(cat, "embed_gmm");
    const cJSON *lr = hp_entry(softmax, "lr");
    ck_assert(api_num(lr, "default") == 0.1 && api_num(lr, "min") == 0 &&
              cJSON_IsTrue(cJSON_GetObjectItem(lr, "min_exclusive")));
    ck_assert_msg(strstr(api_str(softmax, "description"), "logistic regression") != NULL,
                  "softmax: %s", api_str(softmax, "description"));
    ck_assert(api_num(hp_entry(mlp, "lr"), "default") == 1e-3);
    ck_assert_str_eq(api_str(hp_entry(mlp, "optimizer"), "default"), "adam");
    ck_assert(cJSON_GetArrayItem(cJSON_GetObjectItem(hp_entry(mlp, "hidden"), "default"), 0)
                  ->valuedouble == 100);
    ck_assert(api_num(hp_entry(mlp, "batch_size"), "default") == 64);
    ck_assert(api_num(hp_entry(gmm, "tol"), "default") == 1e-3);
    ck_assert(api_num(hp_entry(embed, "iterations"), "default") == 300);
    ck_assert(api_num(hp_entry(embed, "warmup_iterations"), "default") == -1);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(hp_entry(softmax, "n_classes"), "default")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(hp_entry(softmax, "betas"), "max_exclusive")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(hp_entry(softmax, "l2"), "max")));
    ck_assert_ptr_null(hp_entry(softmax, "hidden"));
    ck_assert_str_eq(api_str(hp_entry(softmax, "monotone.weight"), "type"), "number");
    cJSON_Delete(cat);
    /* The handler's text is td_json_model_catalog's. */
    char *text = td_json_model_catalog();
    ck_assert_ptr_nonnull(text);
    httpc_request(port, "GET", "/v1/models", AUTH, NULL, 0, &r);
    ck_assert_str_eq(r.body, text);
    httpc_free(&r);
    free(text);
    api_stop(&d);
}
END_TEST

/* ---- static ------------------------------------------------------------------------ */

START_TEST(assets_served_without_token)
{
    httpc_daemon d = start_with_token();
    int port = d.port;
    httpc_resp r;
    char h[512];
    /* The page: public, strict CSP, told that a token is needed. */
    ck_assert_int_eq(httpc_request(port, "GET", "/", NULL, NULL, 0, &r), 200);
    ck_assert_str_eq(httpc_header(&r, "Content-Type", h, sizeof h), "text/html; charset=utf-8");
    ck_assert_ptr_nonnull(httpc_header(&r, "Content-Security-Policy", h, sizeof h));
    ck_assert_msg(strstr(h, "default-src 'self'") && strstr(h, "script-src 'self'") &&
                      !strstr(h, "unsafe-inline") && !strstr(h, "http"),
                  "CSP %s", h);
    ck_assert_ptr_nonnull(strstr(r.body, "data-auth=\"bearer\""));
    ck_assert_ptr_null(strstr(r.body, "<script>")); /* no inline script */
    ck_assert_ptr_null(strstr(r.body, "//cdn"));
    char etag[80];
    ck_assert_ptr_nonnull(httpc_header(&r, "ETag", etag, sizeof etag));
    httpc_free(&r);
    char inm[128];
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    ck_assert_int_eq(httpc_request(port, "GET", "/", inm, NULL, 0, &r), 304);
    ck_assert_uint_eq(r.body_len, 0);
    httpc_free(&r);

    /* Each file byte for byte, with its type. */
    static const struct {
        const char *file, *type;
    } files[] = {
        {"web/app.js", "text/javascript; charset=utf-8"},
        {"web/app.css", "text/css; charset=utf-8"},
        {"web/favicon.svg", "image/svg+xml"},
        {"web/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
        {"web/vendor/uPlot.min.css", "text/css; charset=utf-8"},
        {"web/vendor/uPlot.LICENSE", "text/plain; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t len;
        char *want = tu_read_file(files[i].file, &len), path[128];
        snprintf(path, sizeof path, "/assets/%s", strrchr(files[i].file, '/') + 1);
        ck_assert_int_eq(httpc_request(port, "GET", path, NULL, NULL, 0, &r), 200);
        ck_assert_str_eq(httpc_header(&r, "Content-Type", h, sizeof h), files[i].type);
        ck_assert_str_eq(httpc_header(&r, "X-Content-Type-Options", h, sizeof h), "nosniff");
        ck_assert_msg(r.body_len == len && memcmp(r.body, want, len) == 0, "%s differs", path);
        ck_assert_ptr_nonnull(httpc_header(&r, "ETag", etag, sizeof etag));
        httpc_free(&r);
        snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
        ck_assert_int_eq(httpc_request(port, "GET", path, inm, NULL, 0, &r), 304);
        httpc_free(&r);
        free(want);
    }
    /* index.html is the page itself, not with the marker unreplaced */
    ck_assert_int_eq(httpc_request(port, "GET", "/assets/index.html", NULL, NULL, 0, &r), 404);
    httpc_free(&r);
    ck_assert_int_eq(httpc_request(port, "GET", "/assets/nope.js", NULL, NULL, 0, &r), 404);
    httpc_free(&r);
    ck_assert_int_eq(httpc_request(port, "POST", "/", NULL, "", 0, &r), 405);
    httpc_free(&r);
    /* The data stays behind the token. */
    ck_assert_int_eq(httpc_request(port, "GET", "/v1/jobs", NULL, NULL, 0, &r), 401);
    httpc_free(&r);
    api_stop(&d);

    /* Without a token the page is told so (and shows everything at once). */
    d = api_start(NULL, NULL, NULL, NULL);
    ck_assert_int_eq(httpc_request(d.port, "GET", "/", NULL, NULL, 0, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "data-auth=\"none\""));
    httpc_free(&r);
    api_stop(&d);
}
END_TEST

/* ---- browser ----------------------------------------------------------------------- */

/* A 4-class dataset of N rows and D features (deterministic), stored; its id in out. */
static void make_dataset(int port, int N, int D, char *out, size_t n)
{
    size_t cap = (size_t)N * (size_t)D * 12 + 1024, len = 0;
    char *b = malloc(cap);
    len += (size_t)snprintf(b + len, cap - len, "{\"name\":\"dashboard\",\"X\":[");
    unsigned s = 12345;
    int *y = malloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) {
        double sum = 0, x3 = 0;
        len += (size_t)snprintf(b + len, cap - len, "%s[", i ? "," : "");
        for (int j = 0; j < D; j++) {
            s = s * 1103515245u + 12345u;
            double x = ((double)((s >> 8) & 0xffff) / 65535.0 - 0.5) * 4;
            if (j < 3) sum += x;
            if (j == 3) x3 = x;
            len += (size_t)snprintf(b + len, cap - len, "%s%.3f", j ? "," : "", x);
        }
        len += (size_t)snprintf(b + len, cap - len, "]");
        y[i] = (sum > 0) + (x3 > 0.5) * 2;
        if (i % 10 == 3) /* some label noise: the curves level off above 0 */
            y[i] = (y[i] + 1) % 4;
    }
    len += (size_t)snprintf(b + len, cap - len, "],\"y\":[");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(b + len, cap - len, "%s%d", i ? "," : "", y[i]);
    snprintf(b + len, cap - len, "]}");
    cJSON *ds = api_json(port, "POST", "/v1/datasets", b, 201);
    snprintf(out, n, "%s", api_str(ds, "id"));
    cJSON_Delete(ds);
    free(y);
    free(b);
}

static void submit(int port, const char *body, char *id, size_t n)
{
    cJSON *j = api_json(port, "POST", "/v1/jobs", body, 202);
    snprintf(id, n, "%s", api_str(j, "id"));
    cJSON_Delete(j);
}

/* Waits until the sweep has finished (or 60 s); asserts it succeeded. */
static void wait_sweep(int port, const char *id)
{
    cJSON *s = api_wait_sweep(port, id, 60);
    ck_assert_str_eq(api_str(s, "state"), "succeeded");
    cJSON_Delete(s);
}

/* Runs argv with stdout and stderr to log; returns its exit code (127: not started). */
static int run(char *const argv[], const char *log)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s\n", argv[0]);
        _exit(127);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(dashboard_in_chromium)
{
    httpc_daemon d = start_with_token();
    int port = d.port;
    char ds[64], finished[64], running[64], body[512];
    make_dataset(port, 2000, 20, ds, sizeof ds);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":40,\"lr\":0.5}}",
             ds);
    submit(port, body, finished, sizeof finished);
    api_wait_state(port, finished, "succeeded", 60);
    /* a finished 2x2 grid on a small dataset, ranked by val_loss (the split) */
    char small[64], sweep[64];
    make_dataset(port, 300, 20, small, sizeof small);
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":8,\"validation_split\":0.25},"
             "\"search\":{\"lr\":[0.02,0.5],\"optimizer\":[\"sgd\",\"adam\"]}}",
             small);
    cJSON *sw = api_json(port, "POST", "/v1/sweeps", body, 202);
    snprintf(sweep, sizeof sweep, "%s", api_str(sw, "id"));
    cJSON_Delete(sw);
    wait_sweep(port, sweep);
    /* some 10 to 50 epochs a second here: it runs for as long as the test needs */
    snprintf(body, sizeof body,
             "{\"model\":\"mlp\",\"dataset\":\"%s\",\"hyperparameters\":"
             "{\"epochs\":10000000,\"hidden\":[256,256],\"lr\":0.0003,"
             "\"validation_split\":0.2}}",
             ds);
    submit(port, body, running, sizeof running);
    api_wait_state(port, running, "running", 60);

    char url[64], log[400];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
    snprintf(log, sizeof log, "%s/browser.log", d.dir);
    const char *png = getenv("TD_SCREENSHOT");
    char *argv[] = {"node", "tests/browser/dashboard.test.js",  url, TOKEN, finished, running, ds,
                    sweep,  (char *)(png && *png ? png : NULL), NULL};
    int rc = run(argv, log);
    size_t len;
    char *out = tu_read_file(log, &len);
    ck_assert_msg(rc == 0, "dashboard.test.js exited %d:\n%s", rc, out);
    ck_assert_ptr_nonnull(strstr(out, "all checks passed"));
    free(out);

    api_wait_state(port, running, "cancelled", 60); /* by the page's cancel button */
    api_stop(&d);
}
END_TEST

Suite *suite_dashboard(void)
{
    Suite *s = suite_create("dashboard");
    TCase *cat = tcase_create("catalog");
    tcase_add_test(cat, models_catalog_is_the_table);
    suite_add_tcase(s, cat);
    TCase *st = tcase_create("static");
    tcase_add_test(st, assets_served_without_token);
    suite_add_tcase(s, st);
    TCase *br = tcase_create("browser");
    tcase_set_timeout(br, 180);
    tcase_add_test(br, dashboard_in_chromium);
    suite_add_tcase(s, br);
    return s;
}
