/* testutil.c — reference loading and numeric comparison for the Check suites. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *tu_ref_load(const char *name)
{
    const char *dir = getenv("TD_REFDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/data/reference", name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "reference file %s not found (set TD_REFDIR)", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    ck_assert(buf != NULL);
    ck_assert_int_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    ck_assert_msg(root != NULL, "reference file %s is not valid JSON", path);
    return root;
}

/* Walks a scalar / vector / matrix and calls put(i, value). */
static int64_t shape_of(const cJSON *a, int64_t *rows, int64_t *cols)
{
    if (cJSON_IsNumber(a)) {
        *rows = 1, *cols = 1;
        return 1;
    }
    ck_assert_msg(cJSON_IsArray(a), "expected an array");
    int64_t r = cJSON_GetArraySize(a), c = 1;
    if (r > 0 && cJSON_IsArray(cJSON_GetArrayItem(a, 0)))
        c = cJSON_GetArraySize(cJSON_GetArrayItem(a, 0));
    *rows = r, *cols = c;
    return r * c;
}

#define FLATTEN(T, name)                                                     \
    T *name(const cJSON *a, int64_t *n, int64_t *rows, int64_t *cols)        \
    {                                                                        \
        int64_t r, c, total = shape_of(a, &r, &c);                           \
        T *out = malloc(sizeof(T) * (size_t)(total ? total : 1));            \
        ck_assert(out != NULL);                                              \
        int64_t i = 0;                                                       \
        if (cJSON_IsNumber(a)) {                                             \
            out[i++] = (T)a->valuedouble;                                    \
        } else {                                                             \
            const cJSON *row;                                                \
            cJSON_ArrayForEach(row, a)                                       \
            {                                                                \
                if (cJSON_IsArray(row)) {                                    \
                    ck_assert_int_eq(cJSON_GetArraySize(row), c);            \
                    const cJSON *v;                                          \
                    cJSON_ArrayForEach(v, row) out[i++] = (T)v->valuedouble; \
                } else {                                                     \
                    out[i++] = (T)row->valuedouble;                          \
                }                                                            \
            }                                                                \
        }                                                                    \
        if (n) *n = total;                                                   \
        if (rows) *rows = r;                                                 \
        if (cols) *cols = c;                                                 \
        return out;                                                          \
    }
FLATTEN(float, tu_floats)
FLATTEN(double, tu_doubles)
FLATTEN(int32_t, tu_ints)

double tu_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    ck_assert_msg(cJSON_IsNumber(v), "reference has no number \"%s\"", key);
    return v->valuedouble;
}

void tu_close_at(const char *file, int line, double got, double want, double rtol, double atol,
                 const char *what, int64_t index)
{
    double tol = atol + rtol * fabs(want);
    if (!(fabs(got - want) <= tol)) {
        if (index >= 0)
            ck_abort_msg("%s:%d: %s[%lld] = %.9g, want %.9g (tol %.3g)", file, line, what,
                         (long long)index, got, want, tol);
        ck_abort_msg("%s:%d: %s = %.9g, want %.9g (tol %.3g)", file, line, what, got, want, tol);
    }
}

void tu_close_arrays_f(const char *file, int line, const float *got, const double *want, int64_t n,
                       double rtol, double atol, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        tu_close_at(file, line, got[i], want[i], rtol, atol, what, i);
}

td_trainer *tu_make_trainer(const td_hparams *hp, const td_dataset *ds)
{
    td_error err = {{0}, {0}};
    td_trainer *t = NULL;
    td_status st = td_trainer_create(&t, hp, ds, NULL, &err);
    ck_assert_msg(st == TD_OK, "trainer: %s: %s", err.field, err.message);
    return t;
}

void tu_step_ok(td_trainer *t, td_record *rec)
{
    td_error err = {{0}, {0}};
    td_status st = td_trainer_step(t, rec, &err);
    ck_assert_msg(st == TD_OK, "step: %s: %s", err.field, err.message);
}

void *tu_resume_bit_identical(const td_hparams *hp, const td_dataset *ds, int64_t stop, int threads,
                              size_t *cap)
{
    td_record rf[TU_RESUME_MAX_EPOCHS], rr[TU_RESUME_MAX_EPOCHS];
    td_trainer *full = tu_make_trainer(hp, ds);
    int64_t n = 0;
    while (!td_trainer_done(full)) {
        ck_assert_int_lt(n, TU_RESUME_MAX_EPOCHS);
        tu_step_ok(full, &rf[n++]);
    }
    td_trainer *first = tu_make_trainer(hp, ds);
    td_trainer_set_threads(first, threads);
    for (int64_t e = 0; e < stop; e++)
        tu_step_ok(first, &rr[e]);
    *cap = td_trainer_state_size(first);
    void *snap = malloc(*cap);
    ck_assert_uint_eq(td_trainer_save(first, snap, *cap), *cap);
    td_trainer_destroy(first);

    td_trainer *resumed = tu_make_trainer(hp, ds);
    td_error err;
    ck_assert_int_eq(td_trainer_restore(resumed, snap, *cap, &err), TD_OK);
    ck_assert_int_eq(td_trainer_epoch(resumed), stop);
    for (int64_t e = stop; e < n; e++)
        tu_step_ok(resumed, &rr[e]);
    ck_assert(td_trainer_done(resumed));
    const td_model *a = td_trainer_model(full), *b = td_trainer_model(resumed);
    ck_assert(memcmp(a->params, b->params, sizeof(float) * (size_t)a->n_params) == 0);
    for (int64_t e = 0; e < n; e++)
        for (int c = 2; c < 9; c++) /* every column but epoch and elapsed_s */
            ck_assert_msg(memcmp(&rf[e].v[c], &rr[e].v[c], sizeof(double)) == 0,
                          "epoch %lld column %d differs", (long long)e + 1, c);
    td_trainer_destroy(full);
    td_trainer_destroy(resumed);
    return snap;
}

int tu_column(const td_trainer *t, const char *name) { return td_trainer_column(t, name); }

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return s;
}
