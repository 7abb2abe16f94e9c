/* dataset_tree.c — the cJSON tree reader of dataset bodies, the reference of the
 * streaming parser (dataset_tree.h). Moved here from src/codec/json_dataset.c when the
 * stream became the only reader in production; its integer readers from
 * src/codec/json_util.c after them. */
#include "dataset_tree.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/json_util.h"
#include "traind/hparams.h"
#include "util/names.h"

/* A present, non-null member (NULL otherwise). */
static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* y as class names (its first element is a string): the tree reader's version of the
 * stream's name_elem / label_done, with the same errors. */
static td_status read_names(td_dataset_part *a, const cJSON *v, const char *path)
{
    int64_t n = cJSON_GetArraySize(v), i = 0;
    int32_t *y = malloc((size_t)(n ? n : 1) * sizeof *y);
    if (!y || !(a->names = calloc(1, sizeof *a->names))) {
        free(y);
        return td_fail(&a->err, TD_ENOMEM, path, "out of memory reading %s", path);
    }
    a->data = y;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        char ep[TD_JSON_PATH_MAX];
        td_json_index_path(ep, path, i, -1);
        if (td_json_kind_of(c) != TD_JV_STRING) /* NaN's marker is a cJSON string too */
            return td_fail(&a->err, TD_EINVAL, ep,
                           "%s must be a class name (a string), as "
                           "%s[0] is; got %s",
                           ep, path, td_json_kind(c));
        size_t len = strlen(c->valuestring);
        if (len == 0 || len > TD_CLASS_NAME_MAX)
            return td_fail(&a->err, TD_EINVAL, ep,
                           "%s: a class name must be 1 to %d bytes of "
                           "text without NUL",
                           ep, TD_CLASS_NAME_MAX);
        int32_t k = td_names_add(a->names, c->valuestring, len);
        if (k == -1) return td_fail(&a->err, TD_ENOMEM, path, "out of memory reading %s", path);
        if (k == -2)
            return td_fail(&a->err, TD_EINVAL, ep, "%s: more than %d distinct class names", ep,
                           TD_MAX_CLASSES);
        y[i] = k;
    }
    a->rows = n;
    return TD_OK;
}

static td_json_rule int_rule(int64_t lo, int64_t hi, unsigned flags)
{
    td_json_rule r = {1, flags, lo < INT32_MIN ? INT32_MIN : lo, hi > INT32_MAX ? INT32_MAX : hi};
    return r;
}

td_status td_json_vector_i32(int32_t **out, int64_t *n, const cJSON *v, int64_t lo, int64_t hi,
                             unsigned flags, const char *path, td_error *err)
{
    td_json_rule r = int_rule(lo, hi, flags);
    return td_json_read_vector((void **)out, n, v, &r, path, err);
}

td_status td_json_matrix_i32(int32_t **out, int64_t *rows, int64_t *cols, const cJSON *v,
                             int64_t lo, int64_t hi, unsigned flags, const char *path,
                             td_error *err)
{
    td_json_rule r = int_rule(lo, hi, flags);
    return td_json_read_matrix((void **)out, rows, cols, v, &r, path, err);
}

td_status td_json_labels_i32(int32_t **out, int64_t *rows, int64_t *cols, int *grouped,
                             const cJSON *v, const char *path, td_error *err)
{
    *grouped = 0;
    if (cJSON_IsArray(v) && cJSON_IsArray(v->child)) {
        *grouped = 1;
        return td_json_matrix_i32(out, rows, cols, v, INT32_MIN, INT32_MAX, 0, path, err);
    }
    *cols = 1;
    return td_json_vector_i32(out, rows, v, INT32_MIN, INT32_MAX, 0, path, err);
}

/* Reads one member into a part with a tree reader. */
static void read_part(td_dataset_part *a, const cJSON *v, int kind, int64_t N, const char *path)
{
    a->present = v != NULL;
    a->cols = 1;
    a->row0_len = -1;
    if (!v) return;
    float **f = (float **)&a->data;
    int32_t **i = (int32_t **)&a->data;
    switch (kind) {
    case 0: /* X */ a->st = td_json_matrix_f32(f, &a->rows, &a->cols, v, 0, path, &a->err); break;
    case 1: /* y */
        if (cJSON_IsArray(v) && v->child && td_json_kind_of(v->child) == TD_JV_STRING)
            a->st = read_names(a, v, path);
        else
            a->st = td_json_labels_i32(i, &a->rows, &a->cols, &a->grouped, v, path, &a->err);
        break;
    case 2: /* Y */
        a->st = td_json_matrix_f32(f, &a->rows, &a->cols, v, TD_JSON_NONNEG, path, &a->err);
        break;
    case 3: /* pairs */
        if (cJSON_IsArray(v) && cJSON_IsArray(v->child)) a->row0_len = cJSON_GetArraySize(v->child);
        a->st = td_json_matrix_i32(i, &a->rows, &a->cols, v, 0, N - 1, 0, path, &a->err);
        break;
    default: /* pair_labels */
        a->st = td_json_vector_i32(i, &a->rows, v, 0, 1, TD_JSON_BOOLS, path, &a->err);
        break;
    }
}

td_status td_json_dataset_from(td_dataset_buf *out, const cJSON *obj, const char *prefix,
                               td_error *err)
{
    static const char *const keys[] = {"X", "y", "Y", "pairs", "pair_labels", "name", NULL};
    const char *const names[] = {"X", "y", "Y", "pairs", "pair_labels"};
    td_dataset_parts p;
    memset(&p, 0, sizeof p);
    memset(out, 0, sizeof *out);
    p.key_st = td_json_check_keys(obj, prefix, "the dataset", keys, &p.key_err);
    if (p.key_st == TD_OK) {
        td_dataset_part *parts[] = {&p.X, &p.y, &p.Y, &p.pairs, &p.pair_labels};
        for (int k = 0; k < 5; k++) {
            char path[TD_JSON_PATH_MAX];
            td_json_path(path, prefix, names[k]);
            read_part(parts[k], member(obj, names[k]), k, p.X.st ? 0 : p.X.rows, path);
        }
        const cJSON *name = member(obj, "name");
        if (name) {
            char pn[TD_JSON_PATH_MAX];
            const char *s = NULL;
            td_json_path(pn, prefix, "name");
            p.name_present = 1;
            /* as the stream: only the kind here; its length, UTF-8 and characters are
             * checked by td_dataset_parts_finish (td_dataset_name_copy), in that order */
            if (td_json_kind_of(name) != TD_JV_STRING || !(s = name->valuestring))
                p.name_st = td_json_fail_not_string(pn, td_json_kind_of(name), &p.name_err);
            else if (!(p.name = strdup(s)))
                p.name_st = td_fail(&p.name_err, TD_ENOMEM, pn, "out of memory");
            p.name_len = p.name ? strlen(p.name) : 0;
        }
    }
    return td_dataset_parts_finish(out, &p, prefix, err);
}

td_status td_json_dataset_parse(td_dataset_buf *out, const char *body, size_t len, td_error *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root;
    td_status st = td_json_parse(&root, body, len, err);
    if (st) return st;
    st = td_json_dataset_from(out, root, NULL, err);
    cJSON_Delete(root);
    return st;
}
