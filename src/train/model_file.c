/* model_file.c — a model as one binary file: td_model_save / td_model_load (train.h), like
 * liblinear's save_model / load_model, for programs that embed the engine.
 *
 * Format (every number little-endian):
 *   off 0   magic      "TDMODEL1"
 *   off 8   fields     int64 x FIELDS: kind, D, K, G, intercept, n_hidden, hidden[16],
 *                      activation, covariance, converged, n_iter, components, rows,
 *                      n_params, lower_bound (the bits of the double)
 *   off H   params     float32 x n_params, in the order of td_model_layout
 *           mean,scale float32 x 2 D, only for a model that standardizes (td_model.mean;
 *                      the file's length tells)
 *   end-8   checksum   XXH64 (seed 0) of every byte before it
 * Loading checks the checksum first, then every field against what the engine accepts,
 * and that n_params is the layout's count, so a loaded model predicts like the saved one. */
#include "traind/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "math/xxh64.h"

static const char MAGIC[8] = {'T', 'D', 'M', 'O', 'D', 'E', 'L', '1'};
enum {
    F_KIND,
    F_D,
    F_K,
    F_G,
    F_INTERCEPT,
    F_NHIDDEN,
    F_HIDDEN,
    F_ACTIVATION = F_HIDDEN + TD_MAX_HIDDEN,
    F_COVARIANCE,
    F_CONVERGED,
    F_NITER,
    F_COMPONENTS,
    F_ROWS,
    F_NPARAMS,
    F_LOWER_BOUND,
    FIELDS
};
#define HEADER (8 + 8 * FIELDS)
#define MAX_DIM ((int64_t)1 << 31) /* any one size */
#define MAX_PARAMS ((double)((int64_t)1 << 40))

size_t td_model_file_size(const td_model *m)
{
    return HEADER + sizeof(float) * (size_t)(m->n_params + (m->mean ? 2 * m->D : 0)) + 8;
}

size_t td_model_encode(const td_model *m, void *buf, size_t cap)
{
    size_t need = td_model_file_size(m);
    if (cap < need) return 0;
    int64_t f[FIELDS] = {0};
    f[F_KIND] = m->kind, f[F_D] = m->D, f[F_K] = m->K, f[F_G] = m->G;
    f[F_INTERCEPT] = m->intercept, f[F_NHIDDEN] = m->n_hidden;
    for (int l = 0; l < TD_MAX_HIDDEN; l++)
        f[F_HIDDEN + l] = l < m->n_hidden ? m->hidden[l] : 0;
    f[F_ACTIVATION] = m->activation, f[F_COVARIANCE] = m->covariance;
    f[F_CONVERGED] = m->converged, f[F_NITER] = m->n_iter;
    f[F_COMPONENTS] = m->components, f[F_ROWS] = m->rows, f[F_NPARAMS] = m->n_params;
    memcpy(&f[F_LOWER_BOUND], &m->lower_bound, 8);
    uint8_t *p = buf;
    memcpy(p, MAGIC, 8);
    for (int i = 0; i < FIELDS; i++)
        td_wr64(p + 8 + 8 * i, (uint64_t)f[i]);
    p += HEADER;
    for (int64_t i = 0; i < m->n_params; i++) {
        uint32_t u;
        memcpy(&u, &m->params[i], 4);
        td_wr32(p + 4 * i, u);
    }
    p += 4 * (size_t)m->n_params;
    for (int64_t i = 0; m->mean && i < 2 * m->D; i++) { /* scale = mean + D */
        uint32_t u;
        memcpy(&u, &m->mean[i], 4);
        td_wr32(p + 4 * i, u);
    }
    p += m->mean ? 8 * (size_t)m->D : 0;
    td_wr64(p, td_xxh64(buf, need - 8, 0));
    return need;
}

/* The parameter count of m's shape in double (no overflow whatever the fields): an upper
 * bound of td_model_nparams, checked before it is called. */
static double nparams_bound(const td_model *m)
{
    double n = 0, in = (double)m->D;
    for (int64_t l = 0; l < m->n_hidden; l++)
        n += (in + 1) * (double)m->hidden[l], in = (double)m->hidden[l];
    double E = (double)m->K, M = (double)m->components;
    switch (m->kind) {
    case TD_MODEL_GMM: return (double)m->K * (1 + (double)m->D + (double)m->D * (double)m->D);
    case TD_MODEL_EMBED_GMM: return n + (in + 1) * E + M * (1 + E + E * E) + (double)m->rows;
    default: return n + (in + 1) * E;
    }
}

static td_status bad(td_error *err, const char *what)
{
    return td_fail(err, TD_EINVAL, "model", "not a valid model file: %s", what);
}

td_status td_model_decode(td_model *m, const void *buf, size_t len, td_error *err)
{
    memset(m, 0, sizeof *m);
    const uint8_t *p = buf;
    if (len < HEADER + 8 || memcmp(p, MAGIC, 8) != 0)
        return bad(err,
                   len < 8 || memcmp(p, MAGIC, 8) != 0 ? "no TDMODEL1 magic" : "truncated header");
    if (td_rd64(p + len - 8) != td_xxh64(p, len - 8, 0))
        return bad(err, "checksum mismatch (the file is damaged or truncated)");
    int64_t f[FIELDS];
    for (int i = 0; i < FIELDS; i++)
        f[i] = (int64_t)td_rd64(p + 8 + 8 * i);
    if (f[F_KIND] < 0 || f[F_KIND] >= TD_MODEL_COUNT || f[F_NHIDDEN] < 0 ||
        f[F_NHIDDEN] > TD_MAX_HIDDEN || f[F_INTERCEPT] < 0 ||
        f[F_INTERCEPT] > TD_INTERCEPT_COLUMN0 || f[F_ACTIVATION] < 0 ||
        f[F_ACTIVATION] > TD_ACT_SIGMOID || f[F_COVARIANCE] < 0 ||
        f[F_COVARIANCE] > TD_COV_SPHERICAL)
        return bad(err, "unknown model kind or setting");
    int dims[] = {F_D, F_K, F_G, F_COMPONENTS, F_ROWS, F_NITER};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (f[dims[i]] < 0 || f[dims[i]] > MAX_DIM) return bad(err, "a size out of range");
    for (int64_t l = 0; l < f[F_NHIDDEN]; l++)
        if (f[F_HIDDEN + l] < 1 || f[F_HIDDEN + l] > MAX_DIM)
            return bad(err, "a hidden layer size out of range");
    if (f[F_D] < 1 || f[F_K] < 1 || f[F_G] < 1 || f[F_K] % f[F_G] != 0)
        return bad(err, "inputs, outputs or groups out of range");
    m->kind = (td_model_kind)f[F_KIND];
    m->D = f[F_D], m->K = f[F_K], m->G = f[F_G];
    m->intercept = (td_intercept)f[F_INTERCEPT];
    m->n_hidden = f[F_NHIDDEN];
    for (int64_t l = 0; l < m->n_hidden; l++)
        m->hidden[l] = f[F_HIDDEN + l];
    m->activation = (td_activation)f[F_ACTIVATION];
    m->covariance = (td_covariance)f[F_COVARIANCE];
    m->converged = f[F_CONVERGED] != 0;
    m->n_iter = f[F_NITER];
    m->components = f[F_COMPONENTS];
    m->rows = f[F_ROWS];
    memcpy(&m->lower_bound, &f[F_LOWER_BOUND], 8);
    if (m->kind == TD_MODEL_EMBED_GMM && m->components < 1)
        return bad(err, "no mixture components");
    size_t plain = HEADER + 4 * (size_t)f[F_NPARAMS] + 8;
    int standardized = nparams_bound(m) <= MAX_PARAMS && len == plain + 8 * (size_t)m->D;
    if (nparams_bound(m) > MAX_PARAMS || td_model_nparams(m) != f[F_NPARAMS] ||
        (len != plain && !standardized))
        return bad(err, "the parameter count does not match the model's shape");
    m->n_params = f[F_NPARAMS];
    if (!(m->params = malloc(sizeof(float) * (size_t)(m->n_params + 1))))
        return td_fail(err, TD_ENOMEM, NULL, "out of memory for %lld parameters",
                       (long long)m->n_params);
    for (int64_t i = 0; i < m->n_params; i++) {
        uint32_t u = td_rd32(p + HEADER + 4 * i);
        memcpy(&m->params[i], &u, 4);
    }
    if (standardized) {
        if (!(m->mean = malloc(sizeof(float) * (size_t)(2 * m->D)))) {
            td_model_fini(m);
            return td_fail(err, TD_ENOMEM, NULL, "out of memory");
        }
        m->scale = m->mean + m->D;
        for (int64_t i = 0; i < 2 * m->D; i++) {
            uint32_t u = td_rd32(p + HEADER + 4 * (size_t)(m->n_params + i));
            memcpy(&m->mean[i], &u, 4);
        }
        for (int64_t j = 0; j < m->D; j++)
            if (!isfinite(m->mean[j]) || !(m->scale[j] > 0) || !isfinite(m->scale[j])) {
                td_model_fini(m);
                return bad(err, "a standardization mean or scale that is not finite (> 0)");
            }
    }
    return TD_OK;
}

td_status td_model_save(const td_model *m, const char *path, td_error *err)
{
    size_t n = td_model_file_size(m);
    void *buf = malloc(n);
    if (!buf) return td_fail(err, TD_ENOMEM, NULL, "out of memory for a %zu-byte model file", n);
    td_model_encode(m, buf, n);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        free(buf);
        return td_fail(err, TD_EINVAL, "path", "the path is too long");
    }
    FILE *fp = fopen(tmp, "wb");
    int ok = fp && fwrite(buf, 1, n, fp) == n;
    int e = errno;
    ok = fp && fclose(fp) == 0 && ok;
    e = ok ? 0 : (e ? e : errno);
    free(buf);
    if (!ok || rename(tmp, path) != 0) {
        e = e ? e : errno;
        remove(tmp);
        return td_fail(err, e == ENOSPC ? TD_ENOSPACE : TD_EIO, "path", "cannot write %s: %s", path,
                       strerror(e));
    }
    return TD_OK;
}

td_status td_model_load(td_model *m, const char *path, td_error *err)
{
    memset(m, 0, sizeof *m);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return td_fail(err, errno == ENOENT ? TD_ENOTFOUND : TD_EIO, "path", "cannot open %s: %s",
                       path, strerror(errno));
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    rewind(fp);
    void *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    int ok = buf && fread(buf, 1, (size_t)n, fp) == (size_t)n;
    int e = errno;
    fclose(fp);
    if (!ok) {
        free(buf);
        return td_fail(err, n >= 0 && !buf ? TD_ENOMEM : TD_EIO, "path", "cannot read %s: %s", path,
                       n >= 0 && !buf ? "out of memory" : strerror(e));
    }
    td_status st = td_model_decode(m, buf, (size_t)n, err);
    free(buf);
    return st;
}
