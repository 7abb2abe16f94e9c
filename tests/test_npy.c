/* test_npy.c — numpy files in and models out, against a live daemon:
 *   upload     .npz (savez, savez_compressed, big-endian Fortran order, data descriptors)
 *              and .npy bodies store the same dataset as the same data sent as JSON, and
 *              train to the same weights
 *   dtypes     every accepted X dtype is stored as numpy's astype(np.float32) gives it
 *   errors     bad bodies: 422 naming the member or the element, nothing left behind
 *   download   GET /v1/datasets/{id}/data as json, csv and npz round-trips through
 *              POST /v1/datasets; numpy reads the npz
 *   predict    an .npy body gives the JSON answer of a JSON body, byte for byte; with
 *              Accept: application/zip the .npz holds the same arrays (numpy reads it)
 *   exports    the model as npz (numpy: every array under its JSON path), as ONNX
 *              (onnx.checker with shape inference; onnxruntime matches /predict within
 *              1e-5) and as a C header compiled with cc -std=c99 -Wall -Wextra -pedantic
 *              -Werror, whose traind_predict matches /predict within 1e-5; for softmax,
 *              mlp, grouped mlp, gmm (full, diag, spherical) and embed_gmm
 * The bodies come from tests/npy_gen.py and numpy's checks from tests/npy_check.py, both
 * run with /usr/bin/python3 (Debian's python3-numpy, python3-onnx: scripts/deps.sh);
 * onnxruntime is the npm package onnxruntime-node run by tests/onnx_run.js (make test
 * installs it into build/node and sets NODE_PATH). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "testutil.h"

#define PY "/usr/bin/python3"

static httpc_daemon g_d;
static int g_port;
static char g_gen[300]; /* the generated bodies */

static void setup(void)
{
    g_d = api_start(NULL, NULL, NULL, NULL);
    g_port = g_d.port;
    snprintf(g_gen, sizeof g_gen, "%s/gen", g_d.dir);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && " PY " tests/npy_gen.py %s", g_gen, g_gen);
    ck_assert_msg(system(cmd) == 0, "tests/npy_gen.py failed (needs " PY " with numpy)");
}

static void teardown(void) { api_stop(&g_d); }

static void spit(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static const char *type_of(const char *file)
{
    const char *ext = strrchr(file, '.');
    return !strcmp(ext, ".npz") ? "Content-Type: application/zip"
        : !strcmp(ext, ".npy")  ? "Content-Type: application/x-npy"
        : !strcmp(ext, ".csv")  ? "Content-Type: text/csv"
                                : "Content-Type: application/json";
}

/* POSTs raw bytes; returns the status, *r to free. */
static int post_raw(const char *path, const char *hdrs, const char *body, size_t len, httpc_resp *r)
{
    return httpc_request(g_port, "POST", path, hdrs, body, len, r);
}

/* Uploads a generated file; asserts 201; returns the dataset id (malloc'd). */
static char *upload(const char *file)
{
    char path[400];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", g_gen, file);
    char *body = tu_read_file(path, &len);
    api_call c = api_req_n(g_port, "POST", "/v1/datasets", type_of(file), body, len);
    ck_assert_msg(c.status == 201 && api_str(c.json, "id"), "%s: %d %s", file, c.status, c.r.body);
    char *id = strdup(api_str(c.json, "id"));
    api_done(&c);
    free(body);
    return id;
}

/* GET path; asserts 200; the body (malloc'd, *len bytes). */
static char *get(const char *path, const char *hdrs, size_t *len)
{
    httpc_resp r;
    int st = httpc_request(g_port, "GET", path, hdrs, NULL, 0, &r);
    ck_assert_msg(st == 200, "GET %s: %d %s", path, st, r.body);
    char *b = malloc(r.body_len + 1);
    memcpy(b, r.body, r.body_len + 1);
    if (len) *len = r.body_len;
    httpc_free(&r);
    return b;
}

static char *dataset_as(const char *id, const char *format, size_t *len)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/datasets/%s/data?format=%s", id, format);
    return get(path, NULL, len);
}

/* The stored dataset as JSON without its "name" (it differs between uploads). */
static char *data_json(const char *id)
{
    char *s = dataset_as(id, "json", NULL);
    char *name = strstr(s, ",\"name\":");
    ck_assert_ptr_nonnull(name);
    *name = '\0';
    return s;
}

/* Starts a job and waits for it to succeed; returns its id. */
static char *train(const char *ds, const char *model, const char *hp)
{
    char body[600];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"dataset\":\"%s\",\"hyperparameters\":%s}",
             model, ds, hp);
    char *id = api_post_id(g_port, "/v1/jobs", body, 202);
    api_expect_state(g_port, id, "succeeded", 30);
    return id;
}

static char *model_json(const char *job)
{
    char path[120];
    snprintf(path, sizeof path, "/v1/jobs/%s/model", job);
    return get(path, NULL, NULL);
}

/* ---- upload ------------------------------------------------------------------------- */

START_TEST(npz_same_as_json)
{
    char *ref = upload("data.json"), *want = data_json(ref);
    static const char *const files[] = {"plain.npz", "comp.npz", "fortran_be.npz", "desc.npz"};
    char *job_ref = train(ref, "softmax", "{\"epochs\":15,\"seed\":3}");
    char *w_ref = model_json(job_ref);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *id = upload(files[i]), *got = data_json(id);
        ck_assert_msg(strcmp(got, want) == 0, "%s is stored differently from data.json", files[i]);
        if (i < 2) { /* savez and savez_compressed: the same weights */
            char *job = train(id, "softmax", "{\"epochs\":15,\"seed\":3}");
            char *w = model_json(job);
            ck_assert_msg(strcmp(w, w_ref) == 0, "%s trains to other weights:\n%s\n%s", files[i], w,
                          w_ref);
            free(job), free(w);
        }
        free(id), free(got);
    }
    /* X.npy: X alone, unlabelled */
    char *id = upload("X.npy"), *got = data_json(id);
    char *yk = strstr(want, ",\"y\":");
    ck_assert_ptr_nonnull(yk);
    *yk = '\0';
    ck_assert_str_eq(got, want);
    free(id), free(got), free(ref), free(want), free(job_ref), free(w_ref);
}
END_TEST

START_TEST(npy_dtypes)
{
    static const char *const tags[] = {"f4", "lef8", "bef8", "i1", "i2",   "bei4",
                                       "i8", "u1",   "u2",   "u4", "beu8", "bool"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        char f1[64], f2[64];
        snprintf(f1, sizeof f1, "X_%s.npy", tags[i]);
        snprintf(f2, sizeof f2, "X_%s.json", tags[i]);
        char *a = upload(f1), *b = upload(f2), *ja = data_json(a), *jb = data_json(b);
        ck_assert_msg(strcmp(ja, jb) == 0, "%s: stored\n%s\nastype(float32) gives\n%s", f1, ja, jb);
        free(a), free(b), free(ja), free(jb);
    }
}
END_TEST

/* y as a unicode array: the class names sorted by code point, y their indices; the same
 * dataset as the JSON strings give */
START_TEST(npz_unicode_labels)
{
    char *j = upload("unicode_y.json"), *jd = data_json(j);
    static const char *const files[] = {"unicode_y.npz", "unicode_be.npz"};
    for (int f = 0; f < 2; f++) {
        char *n = upload(files[f]), *nd = data_json(n), path[200];
        ck_assert_msg(strcmp(nd, jd) == 0, "%s: stored\n%s\nJSON names give\n%s", files[f], nd, jd);
        snprintf(path, sizeof path, "/v1/datasets/%s", n);
        char *meta = get(path, NULL, NULL);
        ck_assert_msg(strstr(meta, "\"classes\":[\"a\",\"b\",\"\u00e9t\u00e9\"]") ||
                          strstr(meta, "\"classes\":[\"a\",\"b\",\"\xc3\xa9t\xc3\xa9\"]"),
                      "%s: %s", files[f], meta);
        free(n), free(nd), free(meta);
    }
    free(j), free(jd);
}
END_TEST

START_TEST(npy_errors)
{
    static const struct {
        const char *file, *field, *words;
    } cases[] = {
        {"object.npy", "X.npy", "X.npy: dtype '|O' (object arrays) is not supported"},
        {"unicode_y2d.npz", "y.npy", "class names (strings) must be 1-D"},
        {"short_y.npz", "y", "y has 10 rows, but X has 40 rows"},
        {"nan.npy", "X[3][1]", "X[3][1] is NaN"},
        {"big.npy", "X[0][1]", "beyond the float32 range"},
        {"cut.npy", "X.npy", "the data is cut short"},
        {"vector.npy", "X.npy", "X must be 2-D"},
        {"extra.npz", "w.npy", "unknown array"},
        {"pairs_bad.npz", "pairs[1][1]", "pairs[1][1] = 40 is outside [0, 39]"},
        {"corrupt.npz", "X.npy", "CRC-32 mismatch"},
        {"data.json", "npz", "not a zip file"}, /* sent as application/zip below */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[400];
        size_t len;
        snprintf(path, sizeof path, "%s/%s", g_gen, cases[i].file);
        char *body = tu_read_file(path, &len);
        httpc_resp r;
        int st = post_raw("/v1/datasets",
                          strstr(cases[i].file, ".json") ? "Content-Type: application/zip"
                                                         : type_of(cases[i].file),
                          body, len, &r);
        cJSON *j = cJSON_Parse(r.body), *e = cJSON_GetObjectItem(j, "error");
        ck_assert_msg(st == 422 && e, "%s: %d %s", cases[i].file, st, r.body);
        ck_assert_str_eq(cJSON_GetObjectItem(e, "field")->valuestring, cases[i].field);
        ck_assert_msg(strstr(cJSON_GetObjectItem(e, "message")->valuestring, cases[i].words),
                      "%s: %s", cases[i].file, r.body);
        cJSON_Delete(j);
        httpc_free(&r);
        free(body);
    }
    /* a client that goes away halfway through X: its temp file goes too */
    char path0[400];
    size_t blen;
    snprintf(path0, sizeof path0, "%s/X.npy", g_gen);
    char *xb = tu_read_file(path0, &blen);
    int fd = httpc_connect(g_port);
    ck_assert_int_ge(fd, 0);
    char head[200];
    snprintf(head, sizeof head,
             "POST /v1/datasets HTTP/1.1\r\nHost: x\r\nContent-Type: "
             "application/x-npy\r\nContent-Length: %zu\r\n\r\n",
             blen);
    ck_assert_int_eq(httpc_send_all(fd, head, strlen(head)), 0);
    ck_assert_int_eq(httpc_send_all(fd, xb, blen / 2), 0);
    usleep(200000);
    close(fd);
    free(xb);
    char cmd0[400];
    snprintf(cmd0, sizeof cmd0, "test -z \"$(ls -A %s/state/datasets)\"", g_d.dir);
    int empty = 0;
    for (int i = 0; i < 100 && !(empty = system(cmd0) == 0); i++)
        usleep(50000); /* until the server has seen the connection close */
    ck_assert_msg(empty, "an aborted upload left its file in datasets/");
    /* nothing stored, no temp file left in datasets/ */
    size_t n;
    char *list = get("/v1/datasets", NULL, &n);
    ck_assert_msg(strstr(list, "\"datasets\":[]") != NULL, "%s", list);
    free(list);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s/state/datasets)\"", g_d.dir);
    ck_assert_msg(system(cmd) == 0, "files left in datasets/");
}
END_TEST

/* ---- download ----------------------------------------------------------------------- */

START_TEST(dataset_download)
{
    char *id = upload("comp.npz"), *want = data_json(id);
    static const char *const formats[] = {"npz", "csv", "json"};
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        char *b = dataset_as(id, formats[i], &len), file[400];
        snprintf(file, sizeof file, "%s/down.%s", g_gen, formats[i]);
        spit(file, b, len);
        httpc_resp r;
        int st = post_raw("/v1/datasets", type_of(file), b, len, &r);
        ck_assert_msg(st == 201, "%s re-upload: %d %s", formats[i], st, r.body);
        cJSON *j = cJSON_Parse(r.body);
        char *again = data_json(cJSON_GetObjectItem(j, "id")->valuestring);
        ck_assert_msg(strcmp(again, want) == 0, "%s does not round-trip", formats[i]);
        cJSON_Delete(j), httpc_free(&r), free(again), free(b);
    }
    /* numpy reads the npz: X float32 (40, 3), y int32 (40,), values as stored */
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             PY
             " -c \"import numpy as np, json; z = np.load('%s/down.npz'); "
             "j = json.load(open('%s/down.json')); "
             "assert z['X'].dtype == np.float32 and z['X'].shape == (40, 3); "
             "assert z['y'].dtype == np.int32 and z['y'].shape == (40,); "
             "assert (z['X'] == np.array(j['X'], np.float32)).all() and (z['y'] == j['y']).all()\"",
             g_gen, g_gen);
    ck_assert_msg(system(cmd) == 0, "numpy disagrees with the npz download");
    /* Accept chooses too; a bad format names the field */
    char path[200];
    size_t len;
    snprintf(path, sizeof path, "/v1/datasets/%s/data", id);
    char *z = get(path, "Accept: application/zip", &len);
    ck_assert(len > 4 && memcmp(z, "PK\x03\x04", 4) == 0);
    free(z);
    snprintf(path, sizeof path, "/v1/datasets/%s/data?format=xls", id);
    httpc_resp r;
    ck_assert_int_eq(httpc_request(g_port, "GET", path, NULL, NULL, 0, &r), 422);
    ck_assert_ptr_nonnull(strstr(r.body, "\"field\":\"format\""));
    httpc_free(&r);
    free(id), free(want);
}
END_TEST

/* ---- predictions and exports --------------------------------------------------------- */

/* POST /v1/jobs/{job}/predict with body; the answer (200 asserted). */
static char *predict(const char *job, const char *hdrs, const char *body, size_t len,
                     size_t *out_len)
{
    char path[120];
    snprintf(path, sizeof path, "/v1/jobs/%s/predict", job);
    httpc_resp r;
    int st = post_raw(path, hdrs, body, len, &r);
    ck_assert_msg(st == 200, "predict: %d %s", st, r.body);
    char *b = malloc(r.body_len + 1);
    memcpy(b, r.body, r.body_len + 1);
    if (out_len) *out_len = r.body_len;
    httpc_free(&r);
    return b;
}

/* The generated X as a JSON predict body ({"X": ...} of data.json without "y"). */
static char *json_X(void)
{
    char path[400];
    size_t len;
    snprintf(path, sizeof path, "%s/data.json", g_gen);
    char *s = tu_read_file(path, &len), *y = strstr(s, ", \"y\":");
    ck_assert_ptr_nonnull(y);
    strcpy(y, "}");
    return s;
}

static void check_exports(const char *job, const char *what)
{
    char path[400], cmd[2400];
    size_t len, nlen;
    char *jx = json_X();
    snprintf(path, sizeof path, "%s/X.npy", g_gen);
    char *npy = tu_read_file(path, &nlen);
    /* an .npy body answers as the JSON body does, byte for byte */
    char *pj = predict(job, "Content-Type: application/json", jx, strlen(jx), NULL);
    char *pn = predict(job, "Content-Type: application/x-npy", npy, nlen, NULL);
    ck_assert_msg(strcmp(pj, pn) == 0, "%s: .npy predict differs:\n%s\n%s", what, pn, pj);
    snprintf(path, sizeof path, "%s/pred.json", g_gen);
    spit(path, pj, strlen(pj));
    /* the npz answer holds the same arrays */
    char *pz =
        predict(job, "Content-Type: application/x-npy\nAccept: application/zip", npy, nlen, &len);
    snprintf(path, sizeof path, "%s/pred.npz", g_gen);
    spit(path, pz, len);
    snprintf(cmd, sizeof cmd, PY " tests/npy_check.py outputs %s/pred.npz %s/pred.json", g_gen,
             g_gen);
    ck_assert_msg(system(cmd) == 0, "%s: predictions npz", what);
    /* the model npz holds the JSON model's arrays */
    char *mj = model_json(job);
    snprintf(path, sizeof path, "%s/model.json", g_gen);
    spit(path, mj, strlen(mj));
    snprintf(path, sizeof path, "/v1/jobs/%s/model?format=npz", job);
    char *mz = get(path, NULL, &len);
    snprintf(path, sizeof path, "%s/model.npz", g_gen);
    spit(path, mz, len);
    snprintf(cmd, sizeof cmd, PY " tests/npy_check.py model %s/model.npz %s/model.json", g_gen,
             g_gen);
    ck_assert_msg(system(cmd) == 0, "%s: model npz", what);
    /* ONNX: onnx.checker (full, with shape inference), then onnxruntime matches
     * /predict within 1e-5 */
    snprintf(path, sizeof path, "/v1/jobs/%s/model?format=onnx", job);
    char *onnx = get(path, NULL, &len);
    snprintf(path, sizeof path, "%s/model.onnx", g_gen);
    spit(path, onnx, len);
    snprintf(cmd, sizeof cmd,
             PY " -c \"import onnx; onnx.checker.check_model(onnx.load("
                "'%s/model.onnx'), full_check=True)\"",
             g_gen);
    ck_assert_msg(system(cmd) == 0, "%s: onnx.checker refuses the model", what);
    snprintf(cmd, sizeof cmd,
             PY " -c \"import json; json.dump(json.load(open('%s/data.json'))"
                "['X'], open('%s/X.json', 'w'))\" && node tests/onnx_run.js %s/model.onnx "
                "%s/X.json %s/pred.json",
             g_gen, g_gen, g_gen, g_gen, g_gen);
    ck_assert_msg(system(cmd) == 0, "%s: onnxruntime disagrees with /predict", what);
    free(onnx);
    /* the C header: compiled clean, it matches /predict */
    snprintf(path, sizeof path, "/v1/jobs/%s/model", job);
    char *hdr = get(path, "Accept: text/x-c", &len);
    snprintf(path, sizeof path, "%s/traind_model.h", g_gen);
    spit(path, hdr, len);
    static const char MAIN_C[] =
        "#include <stdio.h>\n#include \"traind_model.h\"\n"
        "int main(void)\n{\n"
        "    float x[TRAIND_N_FEATURES], out[TRAIND_N_OUTPUTS];\n    int i, label;\n"
        "    while (scanf(\"%f\", &x[0]) == 1) {\n"
        "        for (i = 1; i < TRAIND_N_FEATURES; i++)\n"
        "            if (scanf(\"%f\", &x[i]) != 1)\n                return 1;\n"
        "        label = traind_predict(x, out);\n"
        "        for (i = 0; i < TRAIND_N_OUTPUTS; i++)\n"
        "            printf(\"%.9g \", out[i]);\n"
        "        printf(\"%d\\n\", label);\n    }\n    return 0;\n}\n";
    snprintf(path, sizeof path, "%s/main.c", g_gen);
    spit(path, MAIN_C, strlen(MAIN_C));
    snprintf(cmd, sizeof cmd,
             "cd %s && cc -std=c99 -Wall -Wextra -pedantic -Werror -o main main.c -lm && " PY
             " -c \"import json; [print(*r) for r in json.load(open('data.json'))['X']]\" "
             "> X.txt && ./main < X.txt > out.txt",
             g_gen);
    ck_assert_msg(system(cmd) == 0, "%s: the C header does not compile clean or run", what);
    snprintf(path, sizeof path, "%s/out.txt", g_gen);
    char *out = tu_read_file(path, &len);
    cJSON *p = cJSON_Parse(pj);
    const cJSON *probs = cJSON_GetObjectItem(p, "probabilities");
    if (!probs) probs = cJSON_GetObjectItem(p, "responsibilities");
    const cJSON *labels = cJSON_GetObjectItem(p, "labels");
    int64_t rows = cJSON_GetArraySize(probs), ln;
    int32_t *lab = tu_ints(labels, &ln, NULL, NULL);
    int64_t lper = ln / rows;
    char *q = out;
    for (int64_t i = 0; i < rows; i++) {
        int64_t per; /* row i: (K) or grouped (G, S) */
        double *want = tu_doubles(cJSON_GetArrayItem(probs, (int)i), &per, NULL, NULL);
        for (int64_t k = 0; k < per; k++) {
            double v = strtod(q, &q);
            tu_close_at(__FILE__, __LINE__, v, want[k], 0, 1e-5, what, i * per + k);
        }
        free(want);
        long l = strtol(q, &q, 10);
        ck_assert_msg(l == lab[i * lper], "%s: row %lld label %ld, /predict %d", what, (long long)i,
                      l, lab[i * lper]);
    }
    cJSON_Delete(p);
    free(lab), free(out), free(hdr), free(mj), free(mz), free(pz), free(pn);
    free(pj), free(npy), free(jx);
}

START_TEST(model_exports)
{
    char *ds = upload("plain.npz"), *dx = upload("X.npy");
    static const struct {
        const char *model, *hp;
        int unlabelled;
    } cases[] = {
        {"softmax", "{\"epochs\":10}", 0},
        {"mlp", "{\"epochs\":10,\"hidden\":[7,5],\"activation\":\"tanh\"}", 0},
        {"mlp", "{\"epochs\":10,\"hidden\":[4],\"activation\":\"sigmoid\"}", 0},
        {"gmm", "{\"components\":3}", 1},
        {"gmm", "{\"components\":2,\"covariance\":\"diag\"}", 1},
        {"gmm", "{\"components\":2,\"covariance\":\"spherical\"}", 1},
        {"embed_gmm",
         "{\"components\":2,\"iterations\":12,\"hidden\":[6],"
         "\"embedding_dim\":2}",
         0},
        /* standardize: mean and scale in every export, applied before the model */
        {"softmax", "{\"epochs\":10,\"standardize\":true}", 0},
        {"mlp", "{\"epochs\":10,\"hidden\":[5],\"standardize\":true}", 0},
        {"gmm", "{\"components\":2,\"standardize\":true}", 1},
        {"embed_gmm",
         "{\"components\":2,\"iterations\":12,\"hidden\":[6],"
         "\"embedding_dim\":2,\"standardize\":true}",
         0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *job = train(cases[i].unlabelled ? dx : ds, cases[i].model, cases[i].hp);
        char what[200];
        snprintf(what, sizeof what, "%s %s", cases[i].model, cases[i].hp);
        check_exports(job, what);
        free(job);
    }
    free(ds), free(dx);
}
END_TEST

START_TEST(grouped_exports)
{
    /* a grouped target (N, 2) from the same X: labels per group */
    char path[400], cmd[1400];
    snprintf(cmd, sizeof cmd,
             PY " -c \"import numpy as np, io; z = np.load('%s/plain.npz'); "
                "y = np.stack([z['y'], (z['X'][:, 0] > 0).astype(np.int32)], 1); "
                "np.savez('%s/grouped.npz', X=z['X'], y=y)\"",
             g_gen, g_gen);
    ck_assert_int_eq(system(cmd), 0);
    char *ds = upload("grouped.npz");
    size_t len;
    char *meta;
    snprintf(path, sizeof path, "/v1/datasets/%s", ds);
    meta = get(path, NULL, &len);
    ck_assert_ptr_nonnull(strstr(meta, "\"target\":\"grouped\""));
    char *job = train(ds, "mlp", "{\"epochs\":10,\"hidden\":[6],\"groups\":2}");
    check_exports(job, "grouped mlp");
    free(meta), free(job), free(ds);
}
END_TEST

Suite *suite_npy(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("npy");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, npz_same_as_json);
    tcase_add_test(tc, npy_dtypes);
    tcase_add_test(tc, npz_unicode_labels);
    tcase_add_test(tc, npy_errors);
    tcase_add_test(tc, dataset_download);
    tcase_add_test(tc, model_exports);
    tcase_add_test(tc, grouped_exports);
    suite_add_tcase(s, tc);
    return s;
}
