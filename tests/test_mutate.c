/* test_mutate.c — randomly mutated requests against a live daemon.
 *
 * A daemon (workers 1, queue of 4) gets a dataset and two trained jobs, then
 * TD_MUTATE_N (default 600) requests, each a valid request of one of the templates below
 * with one to three mutations drawn from a seeded generator (TD_MUTATE_SEED, default 7):
 *   bodies     the JSON of a dataset, of softmax / mlp / gmm / embed_gmm jobs (inline data
 *              included), of the four losses and of a predict request, and a CSV dataset;
 *              mutated as bytes (flip a bit, overwrite, insert, delete, duplicate a slice,
 *              truncate) or as a tree (a value replaced by another kind or by an extreme
 *              number such as 1e999, -0, 2^63 or NaN; a key deleted, renamed, duplicated;
 *              a value wrapped in an array or object; an array shortened or lengthened; a
 *              value replaced by nesting 2 to 20000 levels deep)
 *   queries    the values of limit / after / state / format / label_column / header
 *              mutated as bytes (percent-encoded, so the request line stays HTTP), unknown
 *              and repeated parameters
 *   headers    Content-Type (other types, parameters, case, junk), Idempotency-Key (empty,
 *              over 255 bytes, binary), Authorization and unknown headers
 * The requests stay well-formed HTTP (framing, Content-Length, no CR/LF in a header):
 * the parsers under test are the daemon's, not libmicrohttpd's.
 * Every answer must be a 4xx with the error object {"error": {"code", "message"}} or, when
 * the mutation left the request valid, a 2xx with a JSON body (a job created that way is
 * cancelled at once); never a 5xx, never a dropped connection. Afterwards /healthz and
 * /readyz answer 200, /metrics counts no 5xx, an unmutated request still works and the
 * daemon exits 0 at SIGTERM (under ASan: no leak on any of those paths). A failure
 * prints the request, so the seed and the index reproduce it. */
#include <cJSON.h>
#include <ctype.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "testutil.h"

/* ---- the generator ----------------------------------------------------------------- */

static uint64_t g_rng;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static const char *pick(const char *const *v, size_t n) { return v[below(n)]; }
#define PICK(arr) pick(arr, sizeof arr / sizeof arr[0])

/* ---- a growing byte buffer ----------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static void b_put(buf *b, const void *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void b_str(buf *b, const char *s) { b_put(b, s, strlen(s)); }

/* ---- mutations ------------------------------------------------------------------------ */

static const char *const EXTREME[] = {"1e999",
                                      "-1e999",
                                      "1e309",
                                      "-0",
                                      "0",
                                      "-1",
                                      "1e-320",
                                      "4.9e-324",
                                      "3.5e38",
                                      "-3.5e38",
                                      "2147483647",
                                      "2147483648",
                                      "-2147483649",
                                      "9223372036854775807",
                                      "9223372036854775808",
                                      "18446744073709551616",
                                      "1e7",
                                      "10000001",
                                      "0.5",
                                      "1.0000000000000002",
                                      "NaN",
                                      "Infinity",
                                      "-Infinity",
                                      "1e+",
                                      "00",
                                      "\"1\"",
                                      "\"\"",
                                      "\"\\u0000\"",
                                      "\"\\ud800\"",
                                      "null",
                                      "true",
                                      "false",
                                      "[]",
                                      "{}",
                                      "[[]]",
                                      "[null]",
                                      "{\"\":0}",
                                      "[1e999]",
                                      "\"x\\\"y\"",
                                      "\"\xc3\x28\"",
                                      "\"\xf0\x9f\x92\xa9\"",
                                      "-100",
                                      "100000",
                                      "100001"};

static const char *const KEYS[] = {"X",
                                   "y",
                                   "Y",
                                   "model",
                                   "dataset",
                                   "data",
                                   "validation",
                                   "hyperparameters",
                                   "epochs",
                                   "lr",
                                   "hidden",
                                   "n_classes",
                                   "groups",
                                   "loss",
                                   "logits",
                                   "target",
                                   "a",
                                   "b",
                                   "similar",
                                   "initial_weights",
                                   "pairs",
                                   "pair_labels",
                                   "name",
                                   "",
                                   "\xff",
                                   "learning_rate",
                                   "x",
                                   "components",
                                   "class_weights",
                                   "monotone",
                                   "ignore_index",
                                   "batch_size"};

/* Every node of the tree, parents first. */
static void collect(cJSON *n, cJSON **out, int *count, int cap)
{
    for (; n; n = n->next) {
        if (*count < cap) out[(*count)++] = n;
        collect(n->child, out, count, cap);
    }
}

static cJSON *parent_of(cJSON *root, cJSON *node)
{
    for (cJSON *c = root->child; c; c = c->next) {
        if (c == node) return root;
        cJSON *p = parent_of(c, node);
        if (p) return p;
    }
    return NULL;
}

static cJSON *deep(void)
{
    size_t depth = 2 + below(5) * below(5000);
    buf b = {0};
    int obj = (int)below(2);
    for (size_t i = 0; i < depth; i++)
        b_str(&b, obj ? "{\"a\":" : "[");
    b_str(&b, "1");
    for (size_t i = 0; i < depth; i++)
        b_str(&b, obj ? "}" : "]");
    cJSON *r = cJSON_CreateRaw(b.p);
    free(b.p);
    return r;
}

/* One change to the tree of a JSON body; returns the new text (malloc'd). */
static char *mutate_tree(const char *text)
{
    cJSON *root = cJSON_Parse(text);
    ck_assert_msg(root != NULL, "template is not JSON: %s", text);
    cJSON *nodes[4096];
    int n = 0;
    collect(root->child, nodes, &n, 4096);
    if (n == 0) {
        cJSON_Delete(root);
        return strdup(text);
    }
    cJSON *node = nodes[below((size_t)n)];
    cJSON *parent = parent_of(root, node);
    ck_assert_ptr_nonnull(parent);
    switch (below(9)) {
    case 0: /* another value */
    case 1: cJSON_ReplaceItemViaPointer(parent, node, cJSON_CreateRaw(PICK(EXTREME))); break;
    case 2: /* deleted */ cJSON_Delete(cJSON_DetachItemViaPointer(parent, node)); break;
    case 3: /* renamed (objects) or duplicated */
        if (cJSON_IsObject(parent) && node->string) {
            free(node->string);
            node->string = strdup(PICK(KEYS));
        } else {
            cJSON_AddItemToArray(parent, cJSON_Duplicate(node, 1));
        }
        break;
    case 4: /* the same key twice */
        if (cJSON_IsObject(parent) && node->string)
            cJSON_AddItemToObject(parent, node->string, cJSON_Duplicate(node, 1));
        break;
    case 5: { /* wrapped */
        cJSON *w = below(2) ? cJSON_CreateArray() : cJSON_CreateObject();
        cJSON *copy = cJSON_Duplicate(node, 1);
        if (cJSON_IsArray(w))
            cJSON_AddItemToArray(w, copy);
        else
            cJSON_AddItemToObject(w, PICK(KEYS), copy);
        cJSON_ReplaceItemViaPointer(parent, node, w);
        break;
    }
    case 6: /* an array longer or shorter */
        if (cJSON_IsArray(node) && node->child) {
            if (below(2))
                cJSON_DeleteItemFromArray(node, (int)below((size_t)cJSON_GetArraySize(node)));
            else
                for (size_t k = 1 + below(3); k > 0; k--)
                    cJSON_AddItemToArray(node, cJSON_Duplicate(node->child, 1));
        } else {
            cJSON_ReplaceItemViaPointer(parent, node, cJSON_CreateRaw(PICK(EXTREME)));
        }
        break;
    case 7: /* deep nesting */ cJSON_ReplaceItemViaPointer(parent, node, deep()); break;
    case 8: /* a new key */
        if (cJSON_IsObject(parent))
            cJSON_AddItemToObject(parent, PICK(KEYS), cJSON_CreateRaw(PICK(EXTREME)));
        else
            cJSON_AddItemToArray(parent, cJSON_CreateRaw(PICK(EXTREME)));
        break;
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    ck_assert_ptr_nonnull(out);
    return out;
}

static const char INTERESTING[] = "\"{}[]:,-+.eE0919\\ \t\n\rnNaIi/\xff\x80";

/* One change to the bytes of s (*len bytes, malloc'd; may hold NULs); returns it. */
static char *mutate_bytes(char *s, size_t *len)
{
    size_t n = *len, at = below(n + 1);
    switch (below(6)) {
    case 0: /* a bit */
        if (n) s[below(n)] ^= (char)(1u << below(8));
        break;
    case 1: /* a byte */
        if (n)
            s[below(n)] = below(2) ? INTERESTING[below(sizeof INTERESTING - 1)] : (char)below(256);
        break;
    case 2: { /* inserted bytes */
        size_t k = 1 + below(4);
        s = realloc(s, n + k + 1);
        memmove(s + at + k, s + at, n - at + 1);
        for (size_t i = 0; i < k; i++)
            s[at + i] = INTERESTING[below(sizeof INTERESTING - 1)];
        n += k;
        break;
    }
    case 3: { /* deleted */
        size_t k = at < n ? 1 + below(n - at < 8 ? n - at : 8) : 0;
        memmove(s + at, s + at + k, n - at - k + 1);
        n -= k;
        break;
    }
    case 4: { /* a slice repeated */
        if (!n) break;
        size_t from = below(n), k = 1 + below(n - from < 64 ? n - from : 64);
        char slice[64];
        memcpy(slice, s + from, k);
        s = realloc(s, n + k + 1);
        memmove(s + at + k, s + at, n - at + 1);
        memcpy(s + at, slice, k);
        n += k;
        break;
    }
    case 5: /* truncated */
        n = at;
        s[n] = '\0';
        break;
    }
    *len = n;
    return s;
}

/* Percent-encodes what is not unreserved ("=" and "&" kept when structural). */
static void put_query_bytes(buf *b, const char *s, size_t n, int structural)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || strchr("-._~", c) || (structural && (c == '=' || c == '&')))
            b_put(b, &s[i], 1);
        else {
            char e[4];
            snprintf(e, sizeof e, "%%%02X", c);
            b_str(b, e);
        }
    }
}

/* ---- the templates ------------------------------------------------------------------- */

typedef struct tmpl {
    const char *method, *path, *query, *ctype, *body;
} tmpl;

#define DS_JSON                                                                          \
    "{\"name\":\"mut\",\"X\":[[0.1,0.2,0.3],[1,0.5,-1],[2,2,2],[0,1,0],[1.5,-0.5,0.25]," \
    "[3,1,2],[0.3,0.3,0.9],[-1,-2,-3]],\"y\":[0,1,2,0,1,2,0,1]}"

static const char *const JOB_HP[] = {
    "\"softmax\",\"hyperparameters\":{\"epochs\":3,\"lr\":0.1,\"l2\":0.01,\"optimizer\":"
    "\"adam\",\"batch_size\":4,\"validation_split\":0.25,\"seed\":1}",
    "\"mlp\",\"hyperparameters\":{\"hidden\":[4,3],\"epochs\":2,\"activation\":\"tanh\","
    "\"label_smoothing\":0.1,\"class_weights\":[1,2,1]}",
    "\"gmm\",\"hyperparameters\":{\"components\":2,\"covariance\":\"diag\",\"max_iter\":3,"
    "\"means_init\":[[0,0,0],[1,1,1]]}",
    "\"embed_gmm\",\"hyperparameters\":{\"iterations\":3,\"warmup_iterations\":1,"
    "\"hidden\":[4],\"embedding_dim\":2,\"components\":2}",
};

static const char *const LOSSES[] = {
    "{\"loss\":\"cross_entropy\",\"logits\":[[2,0,-1],[0,1,0]],\"target\":[0,-100],"
    "\"label_smoothing\":0.1,\"class_weights\":[1,2,3],\"reduction\":\"sum\"}",
    "{\"loss\":\"categorical_crossentropy\",\"probabilities\":[[0.2,0.8]],\"target\":[[0,1]]}",
    "{\"loss\":\"grouped_cross_entropy\",\"logits\":[[1,2,3,4,5,6]],\"target\":[[0,2]],"
    "\"groups\":2,\"monotone\":{\"weight\":1,\"margin\":0.5}}",
    "{\"loss\":\"contrastive\",\"a\":[[1,2],[0,0]],\"b\":[[0,1],[1,1]],\"similar\":[1,0],"
    "\"margin\":2}",
};

static const char *const CTYPES[] = {"text/plain",
                                     "application/json; charset=utf-8",
                                     "APPLICATION/JSON",
                                     "application/jsonx",
                                     "",
                                     "application/x-www-form-urlencoded",
                                     "multipart/form-data; boundary=x",
                                     "text/csv",
                                     "application/json;;;",
                                     "json",
                                     "*/*",
                                     "application/json, text/csv",
                                     "\xff\xfe"};

typedef struct reqt {
    char method[16];
    buf path, headers;
    char *body;
    size_t len;
    int has_body;
} reqt;

static void req_free(reqt *r)
{
    free(r->path.p);
    free(r->headers.p);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* One mutated request of template t (ids substituted). */
static void build(reqt *r, const tmpl *t, const char *ds, const char *job)
{
    memset(r, 0, sizeof *r);
    snprintf(r->method, sizeof r->method, "%s", t->method);
    char path[256];
    snprintf(path, sizeof path, t->path, job);
    b_str(&r->path, path);
    int nmut = 1 + (int)below(3);
    int body_muts = 0, query_muts = 0, header_muts = 0;
    for (int i = 0; i < nmut; i++) {
        size_t w = below(10);
        if (t->body && w < 7)
            body_muts++;
        else if (t->query && w < 9)
            query_muts++;
        else
            header_muts++;
    }
    /* the query */
    if (t->query) {
        char q[512];
        snprintf(q, sizeof q, t->query, ds);
        size_t qn = strlen(q);
        char *qm = strdup(q);
        for (int i = 0; i < query_muts; i++) {
            if (below(3) == 0) { /* an unknown or repeated parameter */
                static const char *const extra[] = {
                    "&limit=2", "&state=queued", "&x=1", "&=", "&&", "&limit"};
                const char *e = PICK(extra);
                size_t el = strlen(e);
                qm = realloc(qm, qn + el + 1);
                memcpy(qm + qn, e, el + 1);
                qn += el;
            } else {
                qm = mutate_bytes(qm, &qn);
            }
        }
        b_str(&r->path, "?");
        put_query_bytes(&r->path, qm, qn, 1);
        free(qm);
    }
    /* the headers */
    const char *ctype = t->ctype;
    for (int i = 0; i < header_muts; i++) {
        switch (below(4)) {
        case 0: ctype = PICK(CTYPES); break;
        case 1: {
            b_str(&r->headers, "Idempotency-Key: ");
            size_t k = below(3) == 0 ? 200 + below(200) : below(20);
            for (size_t j = 0; j < k; j++) {
                char c = (char)(0x20 + below(0x5f));
                if (below(8) == 0) c = (char)(0x80 + below(0x80));
                b_put(&r->headers, &c, 1);
            }
            b_str(&r->headers, "\n");
            break;
        }
        case 2:
            b_str(&r->headers, below(2) ? "Authorization: Bearer nope\n" : "Authorization: x\n");
            break;
        case 3: b_str(&r->headers, below(2) ? "X-Junk: \xff\xfe\n" : "Accept: text/csv\n"); break;
        }
    }
    if (ctype && *ctype) {
        b_str(&r->headers, "Content-Type: ");
        b_str(&r->headers, ctype);
        b_str(&r->headers, "\n");
    }
    /* the body */
    if (t->body) {
        char *body = malloc(strlen(t->body) + 256);
        sprintf(body, t->body, ds); /* "%s" = the dataset id, where a template has one */
        int is_json = body[0] == '{';
        size_t len = strlen(body);
        for (int i = 0; i < body_muts; i++) {
            if (is_json && below(2)) {
                char *m = mutate_tree(body);
                free(body);
                body = m;
                len = strlen(body);
                cJSON *tmp = cJSON_Parse(body); /* an extreme raw value: bytes from now */
                is_json = tmp != NULL;
                cJSON_Delete(tmp);
            } else {
                body = mutate_bytes(body, &len);
                is_json = 0;
            }
        }
        r->body = body;
        r->len = len;
        r->has_body = 1;
    }
}

static void describe(char *out, size_t n, const reqt *r, int index)
{
    size_t k = (size_t)snprintf(out, n, "request %d: %s %s\n%s", index, r->method, r->path.p,
                                r->headers.p ? r->headers.p : "");
    for (size_t i = 0; r->body && i < r->len && k + 8 < n && i < 600; i++) {
        unsigned char c = (unsigned char)r->body[i];
        k += (size_t)snprintf(out + k, n - k, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
    }
}

static int has_error_object(const httpc_resp *r)
{
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    int ok = cJSON_IsObject(e) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "code")) &&
        cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")) &&
        cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring[0];
    cJSON_Delete(j);
    return ok;
}

/* ---- the test ------------------------------------------------------------------------ */

START_TEST(mutated_requests_get_4xx_error_objects)
{
    const char *seed_env = getenv("TD_MUTATE_SEED"), *n_env = getenv("TD_MUTATE_N");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : 7;
    int N = n_env ? atoi(n_env) : 600;
    g_rng = seed;
    httpc_daemon d = api_start(NULL,
                               "workers = 1\nmax_queued_jobs = 4\nmax_body_mb = 1\n"
                               "connection_timeout_s = 10\n",
                               NULL, NULL);
    int port = d.port;
    char *ds = api_post_id(port, "/v1/datasets", DS_JSON, 201);
    char body[1024];
    snprintf(body, sizeof body,
             "{\"model\":\"softmax\",\"dataset\":\"%s\","
             "\"hyperparameters\":{\"epochs\":3}}",
             ds);
    char *job = api_post_id(port, "/v1/jobs", body, 202);
    api_expect_state(port, job, "succeeded", 20);

    /* The templates ("%s": the dataset id in bodies and queries, the job id in paths). */
    char job_bodies[4][512];
    for (int i = 0; i < 4; i++)
        snprintf(job_bodies[i], sizeof job_bodies[i], "{\"model\":%s,\"dataset\":\"%%s\"}",
                 JOB_HP[i]);
    const tmpl T[] = {
        {"POST", "/v1/datasets", NULL, "application/json", DS_JSON},
        {"POST", "/v1/datasets", "label_column=last&header=true", "text/csv",
         "a,b,label\n0.5,1,0\n1,2,1\n-1,0.25,2\n3,3,0\n"},
        {"POST", "/v1/jobs", NULL, "application/json", job_bodies[0]},
        {"POST", "/v1/jobs", NULL, "application/json", job_bodies[1]},
        {"POST", "/v1/jobs", NULL, "application/json", job_bodies[2]},
        {"POST", "/v1/jobs", NULL, "application/json", job_bodies[3]},
        {"POST", "/v1/jobs", NULL, "application/json",
         "{\"model\":\"softmax\",\"data\":{\"X\":[[1,2],[3,4],[5,6]],\"y\":[0,1,1]},"
         "\"hyperparameters\":{\"epochs\":2,\"initial_weights\":{\"W\":[[0,0],[0,0]],"
         "\"b\":[0,0]}}}"},
        {"POST", "/v1/loss", NULL, "application/json", LOSSES[0]},
        {"POST", "/v1/loss", NULL, "application/json", LOSSES[1]},
        {"POST", "/v1/loss", NULL, "application/json", LOSSES[2]},
        {"POST", "/v1/loss", NULL, "application/json", LOSSES[3]},
        {"POST", "/v1/jobs/%s/predict", NULL, "application/json",
         "{\"X\":[[0.1,0.2,0.3],[1,2,3]]}"},
        {"GET", "/v1/jobs", "state=succeeded&limit=5&after=job_zzzz", NULL, NULL},
        {"GET", "/v1/datasets", "limit=2&after=%s", NULL, NULL},
        {"GET", "/v1/jobs/%s/losses", "format=csv", NULL, NULL},
    };
    const size_t NT = sizeof T / sizeof T[0];
    int by_class[6] = {0};
    for (int i = 0; i < N; i++) {
        reqt r;
        build(&r, &T[below(NT)], ds, job);
        httpc_resp resp;
        int st = httpc_request(port, r.method, r.path.p, r.headers.p, r.has_body ? r.body : NULL,
                               r.len, &resp);
        char what[2048], ct[64];
        describe(what, sizeof what, &r, i);
        ck_assert_msg(st >= 200 && st < 500, "status %d (seed %llu) for %s\n-> %s", st,
                      (unsigned long long)seed, what, resp.body ? resp.body : "(no answer)");
        if (st >= 400)
            ck_assert_msg(has_error_object(&resp), "no error object (seed %llu) for %s\n-> %s",
                          (unsigned long long)seed, what, resp.body);
        else if (!httpc_header(&resp, "Content-Type", ct, sizeof ct) ||
                 strncmp(ct, "text/csv", 8) != 0) { /* query keys: MHD ignores case */
            cJSON *j = resp.body ? cJSON_Parse(resp.body) : NULL;
            ck_assert_msg(j != NULL, "2xx answer is not JSON for %s", what);
            cJSON_Delete(j);
        }
        by_class[st / 100]++;
        if (st == 202 && strcmp(r.path.p, "/v1/jobs") == 0) { /* valid after all: stop it */
            cJSON *j = cJSON_Parse(resp.body);
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
            char path[160];
            snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id->valuestring);
            httpc_resp cr;
            int cst = httpc_request(port, "POST", path, NULL, NULL, 0, &cr);
            ck_assert_msg(cst == 202 || cst == 409, "cancel: %d", cst);
            httpc_free(&cr);
            cJSON_Delete(j);
        }
        httpc_free(&resp);
        req_free(&r);
    }
    fprintf(stderr, "mutate: %d requests (seed %llu): %d 2xx, %d 4xx\n", N,
            (unsigned long long)seed, by_class[2], by_class[4]);
    ck_assert_msg(by_class[4] > N / 2, "only %d of %d mutations were refused", by_class[4], N);

    /* Healthy afterwards. */
    httpc_resp r;
    ck_assert_int_eq(httpc_request(port, "GET", "/healthz", NULL, NULL, 0, &r), 200);
    httpc_free(&r);
    ck_assert_int_eq(httpc_request(port, "GET", "/readyz", NULL, NULL, 0, &r), 200);
    httpc_free(&r);
    ck_assert_int_eq(httpc_request(port, "GET", "/metrics", NULL, NULL, 0, &r), 200);
    ck_assert_msg(!strstr(r.body, "traind_http_requests_total{code=\"5"), "5xx counted:\n%s",
                  r.body);
    httpc_free(&r);
    ck_assert_int_eq(httpc_request(port, "POST", "/v1/loss", "Content-Type: application/json",
                                   LOSSES[3], strlen(LOSSES[3]), &r),
                     200);
    httpc_free(&r);
    api_stop(&d);
    free(ds), free(job);
}
END_TEST

Suite *suite_mutate(void)
{
    Suite *s = suite_create("mutate");
    TCase *tc = tcase_create("http");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, mutated_requests_get_4xx_error_objects);
    suite_add_tcase(s, tc);
    return s;
}
