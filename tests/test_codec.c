/* test_codec.c — src/codec without a daemon:
 *   header     the .npy header is read strictly (versions 1.0 and 2.0, every refusal
 *              named) and written as numpy writes it
 *   convert    values to float32 as astype does, to int32 only when exact
 *   roundtrip  td_npz_writer's zip read back by the streaming reader in pieces of every
 *              size from 1 to 97 bytes
 *   nomem      every allocation of the reader and of the exporters (npz, C, ONNX) failed
 *              in turn: TD_ENOMEM or success, never a crash or a leak (make asan) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/model_c.h"
#include "codec/model_onnx.h"
#include "codec/npy.h"
#include "codec/npy_dataset.h"
#include "codec/npz_write.h"
#include "failalloc.h"
#include "testutil.h"

static td_status parse(const char *dict, int version, td_npy_header *h, td_error *err)
{
    uint8_t buf[512] = {0x93, 'N', 'U', 'M', 'P', 'Y', (uint8_t)version, 0};
    size_t n = strlen(dict), pre = version == 1 ? 10 : 12;
    buf[8] = (uint8_t)(n & 0xff);
    buf[9] = (uint8_t)(n >> 8);
    memcpy(buf + pre, dict, n);
    return td_npy_header_parse(h, buf, pre + n, "X.npy", err);
}

START_TEST(header)
{
    td_npy_header h;
    td_error err;
    ck_assert_int_eq(
        parse("{'descr': '>i8', 'fortran_order': True, 'shape': (3, 4), }\n", 1, &h, &err), TD_OK);
    ck_assert(h.kind == 'i' && h.itemsize == 8 && h.big_endian && h.fortran_order);
    ck_assert(h.ndim == 2 && h.shape[0] == 3 && h.shape[1] == 4 && h.data_bytes == 96);
    ck_assert_int_eq(
        parse("{\"descr\":\"<f4\",\"shape\":(7,),\"fortran_order\":False}", 2, &h, &err), TD_OK);
    ck_assert(h.kind == 'f' && h.ndim == 1 && h.shape[0] == 7 && h.header_bytes > 12);
    static const struct {
        const char *dict, *words;
    } bad[] = {
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", "object arrays"},
        {"{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", "not supported"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", "structured"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "negative"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
         "too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", "unknown"},
        {"{'descr': '<f4', 'fortran_order': False}", "not a dict"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", "repeated"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(parse(bad[i].dict, 1, &h, &err), TD_EINVAL);
        ck_assert_str_eq(err.field, "X.npy");
        ck_assert_msg(strstr(err.message, bad[i].words), "%s: %s", bad[i].dict, err.message);
    }
    /* the writer: numpy's layout, 64-byte aligned, read back */
    char out[256];
    int64_t shape[2] = {5, 3};
    size_t n = td_npy_header_write(out, "<f4", 2, shape);
    ck_assert_uint_eq(n % 64, 0);
    ck_assert_int_eq(td_npy_header_parse(&h, (uint8_t *)out, n, "X", &err), TD_OK);
    ck_assert(h.ndim == 2 && h.shape[0] == 5 && h.shape[1] == 3 && h.header_bytes == n);
}
END_TEST

START_TEST(convert)
{
    td_npy_header h = {.kind = 'i', .itemsize = 8};
    int64_t big[3] = {(1LL << 53) + 1, -(1LL << 40) - 3, 7};
    float f[3];
    td_npy_to_f32(f, big, 3, &h);
    for (int i = 0; i < 3; i++)
        ck_assert(f[i] == (float)big[i]); /* round to nearest even, as astype */
    int32_t v[3];
    double bad = 0;
    ck_assert_uint_eq(td_npy_to_i32(v, big, 3, &h, &bad), 0);
    ck_assert(bad == (double)big[0]);
    h = (td_npy_header){.kind = 'f', .itemsize = 8, .big_endian = 1};
    uint8_t be[16] = {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18, /* pi */
                      0xc0, 0x00, 0,    0,    0,    0,    0,    0};   /* -2 */
    td_npy_to_f32(f, be, 2, &h);
    ck_assert(f[0] == (float)M_PI && f[1] == -2.0f);
    ck_assert_uint_eq(td_npy_to_i32(v, be, 2, &h, &bad), 0); /* pi is not an integer */
    ck_assert_uint_eq(td_npy_to_i32(v, be + 8, 1, &h, &bad), 1);
    ck_assert_int_eq(v[0], -2);
}
END_TEST

/* ---- the reader on td_npz_writer's output -------------------------------------------- */

typedef struct xs {
    float X[64];
    size_t n;
} xs;

/* (no ck_assert here: it runs while allocations are being failed, and Check allocates) */
static td_status xb(void *ctx, int64_t N, int64_t D, td_error *err)
{
    (void)ctx;
    return N == 5 && D == 3 ? TD_OK : td_fail(err, TD_EINTERNAL, "X", "wrong shape");
}

static td_status xr(void *ctx, const void *v, size_t n, td_error *err)
{
    xs *s = ctx;
    (void)err;
    memcpy(s->X + s->n, v, n * sizeof(float));
    s->n += n;
    return TD_OK;
}

static const td_npy_xsink XS = {xb, xr};

static char *sample_npz(size_t *len)
{
    static float X[15];
    static int32_t y[5] = {0, 1, 2, 1, 0};
    for (int i = 0; i < 15; i++)
        X[i] = (float)i * 0.25f - 1;
    int64_t sx[2] = {5, 3}, sy[1] = {5};
    td_error err;
    char *out = NULL;
    td_npz_writer *w = td_npz_writer_create();
    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(td_npz_writer_add(w, "X", TD_NPY_F4, 2, sx, X, &err), TD_OK);
    ck_assert_int_eq(td_npz_writer_add(w, "y", TD_NPY_I4, 1, sy, y, &err), TD_OK);
    ck_assert_int_eq(td_npz_writer_finish(w, &out, len, &err), TD_OK);
    return out;
}

/* Reads body in pieces of step bytes; returns the status, *s the X seen. */
static td_status read_npz(const char *body, size_t len, size_t step, xs *s, td_dataset *ds,
                          td_npy_dataset **keep)
{
    memset(s, 0, sizeof *s);
    td_npy_dataset *d = td_npy_dataset_create(1, &XS, s, NULL);
    if (!d) return TD_ENOMEM;
    for (size_t i = 0; i < len; i += step)
        if (td_npy_dataset_feed(d, body + i, len - i < step ? len - i : step)) break;
    td_error err;
    td_status st = td_npy_dataset_finish(d, ds, &err);
    if (keep && st == TD_OK)
        *keep = d;
    else
        td_npy_dataset_destroy(d);
    return st;
}

START_TEST(roundtrip)
{
    size_t len;
    char *z = sample_npz(&len);
    for (size_t step = 1; step <= 97; step++) {
        xs s;
        td_dataset ds;
        td_npy_dataset *d = NULL;
        ck_assert_int_eq(read_npz(z, len, step, &s, &ds, &d), TD_OK);
        ck_assert(ds.N == 5 && ds.D == 3 && ds.y_cols == 1 && s.n == 15);
        for (int i = 0; i < 15; i++)
            ck_assert(s.X[i] == (float)i * 0.25f - 1);
        ck_assert(ds.y[2] == 2 && ds.y[4] == 0);
        td_npy_dataset_destroy(d);
    }
    free(z);
}
END_TEST

/* ---- allocation failures ------------------------------------------------------------- */

/* Runs fn with its n-th allocation failing for every n up to its count: each run ends in
 * TD_OK or TD_ENOMEM. */
static void each_failure(td_status (*fn)(void *), void *arg, const char *what)
{
    failalloc_arm(0);
    ck_assert_int_eq(fn(arg), TD_OK);
    long total = failalloc_count();
    failalloc_arm(-1);
    ck_assert_msg(total > 0, "%s allocates nothing?", what);
    for (long n = 1; n <= total; n++) {
        failalloc_arm(n);
        td_status st = fn(arg);
        failalloc_arm(-1);
        ck_assert_msg(st == TD_OK || st == TD_ENOMEM, "%s, allocation %ld failing: %s", what, n,
                      td_status_code(st));
    }
}

static td_status read_sample(void *arg)
{
    const char *z = ((const char **)arg)[0];
    size_t len = *(const size_t *)((const char **)arg)[1];
    xs s;
    td_dataset ds;
    return read_npz(z, len, 7, &s, &ds, NULL);
}

static td_status export_all(void *arg)
{
    const td_model *m = arg;
    char *out = NULL;
    size_t len;
    td_error err;
    td_status st = td_model_onnx(&out, &len, m, &err);
    free(out);
    out = NULL;
    if (st == TD_OK) st = td_model_c_header(&out, &len, m, &err);
    free(out);
    return st;
}

START_TEST(nomem)
{
    size_t len;
    char *z = sample_npz(&len);
    const char *arg[2] = {z, (const char *)&len};
    each_failure(read_sample, arg, "the npz reader");
    free(z);

    /* softmax (D 3, K 2, b) and a full-covariance gmm (E 2, M 2), parameters by hand */
    td_model sm = {.kind = TD_MODEL_SOFTMAX, .D = 3, .K = 2, .G = 1, .intercept = TD_INTERCEPT_FIT};
    sm.n_params = td_model_nparams(&sm);
    sm.params = calloc((size_t)sm.n_params, sizeof(float));
    for (int64_t i = 0; i < sm.n_params; i++)
        sm.params[i] = 0.1f * (float)i;
    each_failure(export_all, &sm, "softmax exports");
    td_model g = {.kind = TD_MODEL_GMM, .D = 2, .K = 2, .G = 1, .covariance = TD_COV_FULL};
    g.n_params = td_model_nparams(&g);
    g.params = calloc((size_t)g.n_params, sizeof(float));
    float p[] = {0.5f, 0.5f, 0, 0, 1, 1, 1, 0, 0, 1, 2, 0.5f, 0.5f, 1};
    ck_assert_int_eq(g.n_params, (int64_t)(sizeof p / sizeof p[0]));
    memcpy(g.params, p, sizeof p);
    each_failure(export_all, &g, "gmm exports");
    /* not positive definite: named */
    g.params[10] = -1;
    char *out = NULL;
    td_error err;
    ck_assert_int_eq(td_model_onnx(&out, &len, &g, &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "model");
    ck_assert_int_eq(td_model_c_header(&out, &len, &g, &err), TD_EINVAL);
    free(sm.params);
    free(g.params);
}
END_TEST

Suite *suite_codec(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("codec");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, header);
    tcase_add_test(tc, convert);
    tcase_add_test(tc, roundtrip);
    tcase_add_test(tc, nomem);
    suite_add_tcase(s, tc);
    return s;
}
