/* json_eval.c — the evaluate body and answer (contracts in json_eval.h). The numbers are
 * the engine's (td_class_metrics_compute, td_gmm_predict, td_gmm_n_parameters); this file
 * reads and writes JSON. */
#include "codec/json_eval.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_util.h"

static const char *const eval_arrays[] = {"X", "y", NULL};
static const char *const eval_small[] = {"dataset", NULL};

td_dstream *td_json_evaluate_stream(uint64_t size_hint)
{
    return td_dstream_object(eval_arrays, eval_small, NULL, size_hint);
}

td_status td_json_evaluate_input(float **X, int32_t **y, int64_t *N, char *dataset, size_t cap,
                                 td_dstream *s, const td_model *m, td_error *err)
{
    static const char *const keys[] = {"X", "y", "dataset", NULL};
    *X = NULL;
    *y = NULL;
    *N = 0;
    dataset[0] = '\0';
    const cJSON *root;
    td_status st = td_dstream_object_finish(s, &root, err);
    if (st || (st = td_json_check_keys(root, NULL, "the evaluate body", keys, err))) return st;
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "dataset");
    int has_x = cJSON_GetObjectItemCaseSensitive(root, "X") != NULL;
    if (ds && has_x)
        return td_fail(err, TD_EINVAL, "dataset",
                       "give either dataset (the id of a stored "
                       "dataset) or X and y inline, not both");
    if (ds) return td_json_dataset_id(dataset, cap, ds, err);
    if (!has_x)
        return td_fail(err, TD_EINVAL, "dataset",
                       "dataset (the id of a stored dataset) or X "
                       "and y (inline rows and labels) are required");
    td_jarray *xa = td_dstream_array(s, "X"), *ya = td_dstream_array(s, "y");
    if (!xa) return td_json_fail_not_rows("X", TD_JV_NULL, err);
    int64_t D = 0, ny = 0;
    if ((st = td_jarray_matrix_f32(X, N, &D, xa, 0, "X", err))) return st;
    if (D != m->D)
        st = td_fail(err, TD_EINVAL, "X", "X has %lld columns, the model expects %lld features",
                     (long long)D, (long long)m->D);
    if (st == TD_OK && ya &&
        (st = td_jarray_vector_i32(y, &ny, ya, 0, INT32_MAX, 0, "y", err)) == TD_OK && ny != *N)
        st = td_fail(err, TD_EINVAL, "y", "y has %lld entries, but X has %lld rows", (long long)ny,
                     (long long)*N);
    if (st) {
        free(*X), *X = NULL;
        free(*y), *y = NULL;
        *N = 0;
    }
    return st;
}

/* {"precision", "recall", "f1", "support"} */
static cJSON *prf(double p, double r, double f, int64_t support)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "precision", p);
    cJSON_AddNumberToObject(o, "recall", r);
    cJSON_AddNumberToObject(o, "f1", f);
    cJSON_AddNumberToObject(o, "support", (double)support);
    return o;
}

static td_status classifier(cJSON *o, const td_model *m, const float *X, const int32_t *y,
                            int64_t N, const td_names_view *nv, td_error *err)
{
    if (m->G > 1)
        return td_fail(err, TD_EINVAL, "model",
                       "evaluate takes models of one label per row; "
                       "this one has %lld groups",
                       (long long)m->G);
    if (!y) return td_fail(err, TD_EINVAL, "y", "y is required: the true class of each row");
    int64_t K = m->K;
    float *probs = malloc(sizeof(float) * (size_t)(N * K + 1));
    int32_t *pred = malloc(sizeof(int32_t) * (size_t)(N + 1));
    td_class_metrics c = {0};
    td_status st = !probs || !pred ? td_fail(err, TD_ENOMEM, NULL,
                                             "out of memory for %lld "
                                             "predictions",
                                             (long long)N)
                                   : td_model_predict(probs, pred, m, X, N, m->D, err);
    if (st == TD_OK) st = td_class_metrics_compute(&c, probs, pred, y, N, K, err);
    free(probs);
    free(pred);
    if (st) return st;
    cJSON_AddNumberToObject(o, "loss", c.loss);
    cJSON_AddNumberToObject(o, "accuracy", c.accuracy);
    cJSON *classes = cJSON_AddArrayToObject(o, "classes");
    cJSON *cm = cJSON_AddArrayToObject(o, "confusion_matrix");
    cJSON *per = cJSON_AddArrayToObject(o, "per_class");
    for (int64_t k = 0; k < K; k++) {
        cJSON *name = nv ? cJSON_CreateString(nv->v[k]) : cJSON_CreateNumber((double)k);
        cJSON_AddItemToArray(classes, name);
        cJSON *row = cJSON_CreateArray();
        for (int64_t j = 0; j < K; j++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)c.confusion[k * K + j]));
        cJSON_AddItemToArray(cm, row);
        cJSON *pc = prf(c.precision[k], c.recall[k], c.f1[k], c.support[k]);
        cJSON_AddItemToObject(pc, "class", cJSON_Duplicate(name, 0));
        cJSON_AddItemToArray(per, pc);
    }
    cJSON_AddItemToObject(o, "macro_avg", prf(c.macro[0], c.macro[1], c.macro[2], N));
    cJSON_AddItemToObject(o, "weighted_avg", prf(c.weighted[0], c.weighted[1], c.weighted[2], N));
    td_class_metrics_fini(&c);
    return TD_OK;
}

static td_status mixture(cJSON *o, const td_model *m, const float *X, int64_t N, td_error *err)
{
    float *ll = malloc(sizeof(float) * (size_t)(N + 1));
    if (!ll) return td_fail(err, TD_ENOMEM, NULL, "out of memory for %lld rows", (long long)N);
    td_status st = td_gmm_predict(NULL, NULL, ll, m, X, N, m->D, err);
    if (st == TD_OK) {
        double sum = 0;
        for (int64_t i = 0; i < N; i++)
            sum += ll[i];
        double score = sum / (double)N, p = (double)td_gmm_n_parameters(m);
        cJSON_AddNumberToObject(o, "score", score);
        cJSON_AddNumberToObject(o, "bic", -2 * score * (double)N + p * log((double)N));
        cJSON_AddNumberToObject(o, "aic", -2 * score * (double)N + 2 * p);
        cJSON_AddNumberToObject(o, "n_parameters", p);
    }
    free(ll);
    return st;
}

td_status td_json_evaluate(char **out, const td_model *m, const float *X, const int32_t *y,
                           int64_t N, const td_names_view *nv, td_error *err)
{
    *out = NULL;
    if (m->kind == TD_MODEL_EMBED_GMM)
        return td_fail(err, TD_EINVAL, "model", "evaluate takes softmax, mlp and gmm models");
    if (N < 1) return td_fail(err, TD_EINVAL, "X", "X has no rows");
    if (nv && nv->n != m->K) nv = NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o) return td_fail(err, TD_ENOMEM, NULL, "out of memory");
    cJSON_AddNumberToObject(o, "n_samples", (double)N);
    td_status st =
        m->kind == TD_MODEL_GMM ? mixture(o, m, X, N, err) : classifier(o, m, X, y, N, nv, err);
    if (st == TD_OK && !(*out = cJSON_PrintUnformatted(o)))
        st = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    cJSON_Delete(o);
    return st;
}
