/* model_c.c — a model as a C99 header (contract in model_c.h).
 *
 * The header is written with stdio into a memory stream: the weight arrays, then
 * traind_net_ (softmax, mlp, embed_gmm: x -> z through the layers), traind_gmm_ (gmm,
 * embed_gmm: responsibilities from an input in double) and traind_predict. */
#include "codec/model_c.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/gmm.h"

static void emit_floats(FILE *f, const char *name, const float *p, int64_t n)
{
    fprintf(f, "static const float %s[%lld] = {", name, (long long)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "%s%.9ef", i == 0 ? "\n    " : i % 6 ? ", " : ",\n    ", (double)p[i]);
    fprintf(f, "%s};\n", n > 0 ? "\n" : "0");
}

static void emit_doubles(FILE *f, const char *name, const double *p, int64_t n)
{
    fprintf(f, "static const double %s[%lld] = {", name, (long long)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++)
        fprintf(f, "%s%.17e", i == 0 ? "\n    " : i % 4 ? ", " : ",\n    ", p[i]);
    fprintf(f, "%s};\n", n > 0 ? "\n" : "0");
}

/* The network: layers W_l (in, out) and b_l, hidden activation act (-1: none), output
 * layer linear. Writes traind_net_(x, z). */
static void emit_net(FILE *f, const td_model *m, const td_tensor_desc *t, int ntens, int64_t K)
{
    static const char *const ACT[] = {"s > 0 ? s : 0", "tanh(s)", "1 / (1 + exp(-s))"};
    int64_t width = m->D > K ? m->D : K;
    int layers = 0;
    for (int i = 0; i < ntens; i++) {
        if (strcmp(t[i].name, "W") != 0) continue;
        char nm[32];
        snprintf(nm, sizeof nm, "traind_W%d", t[i].layer);
        emit_floats(f, nm, m->params + t[i].offset, t[i].rows * t[i].cols);
        if (i + 1 < ntens && strcmp(t[i + 1].name, "b") == 0) {
            snprintf(nm, sizeof nm, "traind_b%d", t[i].layer);
            emit_floats(f, nm, m->params + t[i + 1].offset, t[i + 1].cols);
        }
        width = t[i].cols > width ? t[i].cols : width;
        layers++;
    }
    fprintf(f,
            "\nstatic void traind_net_(const float *x, double *z)\n{\n"
            "    double a[%lld], h[%lld];\n    int i, j;\n    (void)h;\n"
            "    for (j = 0; j < %lld; j++)\n        a[j] = x[j];\n",
            (long long)width, (long long)width, (long long)m->D);
    for (int i = 0, l = 0; i < ntens; i++) {
        if (strcmp(t[i].name, "W") != 0) continue;
        int last = ++l == layers, has_b = i + 1 < ntens && strcmp(t[i + 1].name, "b") == 0;
        long long in = t[i].rows, out = t[i].cols;
        char bias[32] = "0";
        if (has_b) snprintf(bias, sizeof bias, "traind_b%d[j]", t[i].layer);
        fprintf(f,
                "    for (j = 0; j < %lld; j++) {\n        double s = %s;\n"
                "        for (i = 0; i < %lld; i++)\n"
                "            s += a[i] * traind_W%d[i * %lld + j];\n"
                "        %s = %s;\n    }\n",
                out, bias, in, t[i].layer, out, last ? "z[j]" : "h[j]",
                last ? "s" : ACT[m->activation]);
        if (!last) fprintf(f, "    for (j = 0; j < %lld; j++)\n        a[j] = h[j];\n", out);
    }
    fprintf(f, "}\n");
}

int td_gmm_component_factor(double *Li, double *log_norm, const td_model *g, int64_t k)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    td_model_layout(g, t);
    int64_t E = g->D, cs = td_gmm_cov_size(g->covariance, E);
    double logdet;
    int rc = td_gmm_inverse_factor(Li, &logdet, g->params + t[2].offset + k * cs, g->covariance, E);
    if (rc == 0)
        *log_norm =
            log((double)g->params[t[0].offset + k]) - 0.5 * ((double)E * log(2 * M_PI) + logdet);
    return rc;
}

/* A gmm model g (weights, means, covariances): traind_gmm_(e, out). */
static td_status emit_gmm(FILE *f, const td_model *g, td_error *err)
{
    td_tensor_desc t[TD_MAX_TENSORS];
    td_model_layout(g, t);
    int64_t M = g->K, E = g->D;
    double *Li = malloc(sizeof(double) * (size_t)(M * E * E)),
           *logc = malloc(sizeof(double) * (size_t)M);
    td_status st = TD_OK;
    for (int64_t k = 0; Li && logc && k < M && !st; k++) {
        int r = td_gmm_component_factor(Li + k * E * E, &logc[k], g, k);
        if (r)
            st = r == -1 ? td_fail(err, TD_EINVAL, "model",
                                   "the model's covariances are not "
                                   "positive definite")
                         : td_fail(err, TD_ENOMEM, NULL, "out of memory");
    }
    if (!Li || !logc) st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    if (st) goto done;
    emit_floats(f, "traind_means", g->params + t[1].offset, M * E);
    emit_doubles(f, "traind_prec_chol", Li, M * E * E);
    emit_doubles(f, "traind_log_norm", logc, M);
    fprintf(f,
            "\nstatic int traind_gmm_(const double *e, float *out)\n{\n"
            "    double lp[%lld], top = -HUGE_VAL, sum = 0;\n    int k, i, j, best = 0;\n"
            "    for (k = 0; k < %lld; k++) {\n        double sq = 0;\n"
            "        for (i = 0; i < %lld; i++) {\n            double y = 0;\n"
            "            for (j = 0; j <= i; j++)\n"
            "                y += traind_prec_chol[(k * %lld + i) * %lld + j] *\n"
            "                     (e[j] - traind_means[k * %lld + j]);\n"
            "            sq += y * y;\n        }\n"
            "        lp[k] = traind_log_norm[k] - 0.5 * sq;\n"
            "        if (lp[k] > top) {\n            top = lp[k];\n            best = k;\n"
            "        }\n    }\n"
            "    for (k = 0; k < %lld; k++)\n        sum += exp(lp[k] - top);\n"
            "    for (k = 0; k < %lld; k++)\n        out[k] = (float)(exp(lp[k] - top) / sum);\n"
            "    return best;\n}\n",
            (long long)M, (long long)M, (long long)E, (long long)E, (long long)E, (long long)E,
            (long long)M, (long long)M);
done:
    free(Li), free(logc);
    return st;
}

static void emit_group_softmax(FILE *f, int64_t K, int64_t G, const char *name)
{
    fprintf(f,
            "\nstatic int %s(const float *x, float *out)\n{\n"
            "    double z[%lld];\n    int g, k, label = 0;\n    traind_net_(x, z);\n"
            "    for (g = %lld; g >= 0; g--) {\n"
            "        double *p = z + g * %lld, top, sum = 0;\n        int best = 0;\n"
            "        for (k = 1; k < %lld; k++)\n            if (p[k] > p[best])\n"
            "                best = k;\n        top = p[best];\n"
            "        for (k = 0; k < %lld; k++)\n            sum += exp(p[k] - top);\n"
            "        for (k = 0; k < %lld; k++)\n"
            "            out[g * %lld + k] = (float)(exp(p[k] - top) / sum);\n"
            "        label = best;\n    }\n    return label;\n}\n",
            name, (long long)K, (long long)G - 1, (long long)(K / G), (long long)(K / G),
            (long long)(K / G), (long long)(K / G), (long long)(K / G));
}

td_status td_model_c_header(char **out, size_t *len, const td_model *m, td_error *err)
{
    return td_model_c_header_named(out, len, m, NULL, 0, err);
}

/* s as a C string literal: quotes, backslashes and bytes outside printable ASCII as
 * octal escapes (UTF-8 bytes kept exactly). */
static void emit_c_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f || *p == '?')
            fprintf(f, "\\%03o", *p);
        else
            fputc(*p, f);
    fputc('"', f);
}

td_status td_model_c_header_named(char **out, size_t *len, const td_model *m, char *const *names,
                                  int64_t n_names, td_error *err)
{
    *out = NULL;
    if (!m->params || (unsigned)m->kind >= TD_MODEL_COUNT)
        return td_fail(err, TD_EINTERNAL, "model", "the model has no parameters");
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (!f) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    td_tensor_desc t[TD_MAX_TENSORS];
    int ntens = td_model_layout(m, t);
    int gmm = m->kind == TD_MODEL_GMM, embed = m->kind == TD_MODEL_EMBED_GMM;
    int64_t G = m->G > 0 ? m->G : 1, outs = embed ? m->components : m->K;
    td_model view;
    if (embed) td_embed_gmm_view(&view, m);
    fprintf(f,
            "/* traind_model.h — a traind %s model (traind " TD_VERSION "), generated.\n"
            " *\n * Self-contained C99: needs only <math.h> (link with -lm).\n"
            " *   float out[TRAIND_N_OUTPUTS];\n"
            " *   int label = traind_predict(x, out);   x: TRAIND_N_FEATURES floats\n"
            " * out gets the %s and the return value is the %s. */\n"
            "#ifndef TRAIND_MODEL_H\n#define TRAIND_MODEL_H\n\n#include <math.h>\n\n"
            "#define TRAIND_N_FEATURES %lld\n#define TRAIND_N_OUTPUTS %lld\n"
            "#define TRAIND_N_GROUPS %lld\n",
            td_model_names[m->kind],
            gmm || embed ? "responsibilities of the mixture's components"
                : G > 1  ? "class probabilities of each group, back to back"
                         : "class probabilities",
            gmm || embed ? "most responsible component"
                : G > 1  ? "first group's most probable class"
                         : "most probable class",
            (long long)m->D, (long long)outs, (long long)G);
    if (names && n_names == outs && G == 1 && !gmm && !embed) {
        fprintf(f,
                "\n/* the class names: out[k] is the probability of traind_classes[k] */\n"
                "static const char *const traind_classes[TRAIND_N_OUTPUTS] = {");
        for (int64_t k = 0; k < n_names; k++) {
            fprintf(f, k ? ",\n    " : "\n    ");
            emit_c_string(f, names[k]);
        }
        fprintf(f, "\n};\n");
    }
    fprintf(f, "\n");
    /* standardize: the model's own traind_predict_raw_ behind one that scales x first */
    const char *pred = m->mean ? "traind_predict_raw_" : "traind_predict";
    if (m->mean) {
        emit_floats(f, "traind_mean", m->mean, m->D);
        emit_floats(f, "traind_scale", m->scale, m->D);
    }
    td_status st = TD_OK;
    if (!gmm) emit_net(f, m, t, ntens, m->K);
    if (gmm || embed) st = emit_gmm(f, embed ? &view : m, err);
    if (!st && !gmm && !embed) emit_group_softmax(f, m->K, G, pred);
    if (!st && gmm)
        fprintf(f,
                "\nstatic int %s(const float *x, float *out)\n{\n"
                "    double e[%lld];\n    int j;\n    for (j = 0; j < %lld; j++)\n"
                "        e[j] = x[j];\n    return traind_gmm_(e, out);\n}\n",
                pred, (long long)m->D, (long long)m->D);
    if (!st && embed)
        fprintf(f,
                "\nstatic int %s(const float *x, float *out)\n{\n"
                "    double e[%lld];\n    traind_net_(x, e);\n    return traind_gmm_(e, out);\n"
                "}\n",
                pred, (long long)m->K);
    if (!st && m->mean) /* float32, as td_standardize_apply */
        fprintf(f,
                "\nstatic int traind_predict(const float *x, float *out)\n{\n"
                "    float xs[%lld];\n    int j;\n    for (j = 0; j < %lld; j++)\n"
                "        xs[j] = (x[j] - traind_mean[j]) / traind_scale[j];\n"
                "    return traind_predict_raw_(xs, out);\n}\n",
                (long long)m->D, (long long)m->D);
    fprintf(f, "\n#endif\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(text);
        return st ? st : td_fail(err, TD_ENOMEM, NULL, "out of memory writing the header");
    }
    if (st) {
        free(text);
        return st;
    }
    *out = text;
    *len = n;
    return TD_OK;
}
