/* json_util.c — body parsing with byte offsets, element-naming readers, key checks and
 * the growing output buffer of the JSON edge (see json_util.h for the contracts). */
#include "codec/json_util.h"

#include "traind/hparams.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/text.h"

/* ---- parsing ---------------------------------------------------------------------- */

#define MALFORMED "malformed JSON at byte "

/* Marker strings standing for non-finite literals after td_json_parse's rewrite. */
#define MARK_NAN '\x01'
#define MARK_PINF '\x02'
#define MARK_NINF '\x03'

static int is_word_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.'; }

/* Case-insensitive prefix match of word at s (within n bytes); returns its length. */
static size_t match_word(const char *s, size_t n, const char *word)
{
    size_t k = strlen(word);
    if (n < k) return 0;
    for (size_t i = 0; i < k; i++)
        if (tolower((unsigned char)s[i]) != word[i]) return 0;
    if (n > k && is_word_char(s[k])) return 0;
    return k;
}

/* Rewrites NaN / Infinity / -Infinity / nan / inf / -inf outside strings into marker
 * strings of the same length ("\x01" padded with spaces), so byte offsets are unchanged.
 * Returns a malloc'd copy, or NULL when there was nothing to rewrite (or no memory). */
static char *rewrite_nonfinite(const char *body, size_t len)
{
    char *copy = NULL;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        if (c == '"') {
            in_string = 1;
            continue;
        }
        if (i > 0 && is_word_char(body[i - 1])) continue;
        size_t start = i, j = i;
        int neg = 0;
        if (c == '-' || c == '+') {
            neg = c == '-';
            j++;
        }
        size_t k;
        char mark;
        if ((k = match_word(body + j, len - j, "infinity")) ||
            (k = match_word(body + j, len - j, "inf")))
            mark = neg ? MARK_NINF : MARK_PINF;
        else if ((k = match_word(body + j, len - j, "nan")))
            mark = MARK_NAN;
        else
            continue;
        if (!copy) {
            copy = malloc(len + 1);
            if (!copy) return NULL;
            memcpy(copy, body, len);
            copy[len] = '\0';
        }
        size_t end = j + k; /* token is [start, end), at least 3 bytes */
        copy[start] = '"';
        copy[start + 1] = mark;
        copy[start + 2] = '"';
        for (size_t p = start + 3; p < end; p++)
            copy[p] = ' ';
        i = end - 1;
    }
    return copy;
}

td_status td_json_fail_malformed(uint64_t off, const char *near, size_t near_len, const char *why,
                                 td_error *err)
{
    if (!near)
        return td_fail(err, TD_EMALFORMED, "", MALFORMED "%llu: %s", (unsigned long long)off,
                       why ? why : "unexpected end of input");
    char text[24];
    size_t n = 0;
    for (size_t i = 0; i < near_len && n < 16; i++)
        text[n++] = isprint((unsigned char)near[i]) && near[i] != '"' ? near[i] : '?';
    text[n] = '\0';
    return td_fail(err, TD_EMALFORMED, "", MALFORMED "%llu: %s near \"%s\"",
                   (unsigned long long)off, why ? why : "syntax error", text);
}

static td_status malformed(td_error *err, const char *body, size_t len, size_t off, const char *why)
{
    if (off >= len) return td_json_fail_malformed(off, NULL, 0, why, err);
    return td_json_fail_malformed(off, body + off, len - off, why, err);
}

/* A copy of body in which each "\u0000" inside a string is six 0xFF bytes (the same
 * length, so offsets hold), or NULL when there is none (*oom set when the copy failed).
 * cJSON would decode the escape to a NUL that silently ends the C string; 0xFF is never
 * well-formed UTF-8, so td_json_get_string refuses the string, naming its field. */
static char *rewrite_nul_escapes(const char *body, size_t len, int *oom)
{
    char *copy = NULL;
    int in_string = 0;
    *oom = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = body[i] == '"';
            continue;
        }
        if (body[i] == '"') {
            in_string = 0;
            continue;
        }
        if (body[i] != '\\') continue;
        if (i + 5 < len && body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0) {
            if (!copy) {
                if (!(copy = malloc(len + 1))) {
                    *oom = 1;
                    return NULL;
                }
                memcpy(copy, body, len);
                copy[len] = '\0';
            }
            memset(copy + i, 0xff, 6);
            i += 5;
            continue;
        }
        i++; /* the escaped character */
    }
    return copy;
}

static cJSON *parse_at(const char *text, size_t len, size_t *off)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    *off = end && end >= text ? (size_t)(end - text) : 0;
    return root;
}

td_status td_json_parse(cJSON **out, const char *body, size_t len, td_error *err)
{
    *out = NULL;
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    if (i == len) return td_fail(err, TD_EMALFORMED, "", MALFORMED "%zu: the body is empty", len);
    int oom;
    char *nulfree = rewrite_nul_escapes(body, len, &oom);
    if (oom) return td_fail(err, TD_ENOMEM, "", "out of memory");
    if (nulfree) {
        td_status st = td_json_parse(out, nulfree, len, err);
        free(nulfree);
        return st;
    }
    size_t off;
    cJSON *root = parse_at(body, len, &off);
    const char *text = body;
    char *copy = NULL;
    if (!root) {
        copy = rewrite_nonfinite(body, len);
        if (!copy) return malformed(err, body, len, off, NULL);
        root = parse_at(copy, len, &off);
        if (!root) {
            free(copy);
            return malformed(err, body, len, off, NULL);
        }
        text = copy; /* a literal just parsed is blanks here, not in body */
    }
    while (off < len && isspace((unsigned char)text[off]))
        off++;
    free(copy);
    if (off < len) {
        cJSON_Delete(root);
        return malformed(err, body, len, off, "unexpected data after the JSON value");
    }
    *out = root;
    return TD_OK;
}

/* ---- paths and keys --------------------------------------------------------------- */

void td_json_path(char out[TD_JSON_PATH_MAX], const char *prefix, const char *key)
{
    int n;
    if (prefix && prefix[0])
        n = snprintf(out, TD_JSON_PATH_MAX, "%s.%s", prefix, key);
    else
        n = snprintf(out, TD_JSON_PATH_MAX, "%s", key);
    if (n < 0) out[0] = '\0';
}

void td_json_index_path(char out[TD_JSON_PATH_MAX], const char *base, int64_t i, int64_t j)
{
    int n;
    if (j >= 0)
        n = snprintf(out, TD_JSON_PATH_MAX, "%s[%lld][%lld]", base, (long long)i, (long long)j);
    else
        n = snprintf(out, TD_JSON_PATH_MAX, "%s[%lld]", base, (long long)i);
    if (n < 0) out[0] = '\0';
}

/* the members of a td_dataset an engine error can name */
static const char *const data_roots[] = {"X", "y", "Y", "pairs", "pair_labels", NULL};

static int is_hparam_root(const char *f, size_t n)
{
    for (size_t i = 0; i < td_hparam_ndefs; i++) {
        const char *name = td_hparam_defs[i].name; /* "lr", "monotone.weight" */
        if (strncmp(name, f, n) == 0 && (name[n] == '\0' || name[n] == '.')) return 1;
    }
    return 0;
}

_Static_assert(sizeof((td_error *)0)->field == TD_JSON_PATH_MAX, "a path fills td_error.field");

void td_json_scope_error(td_error *err, const char *data_field)
{
    if (!err || !err->field[0]) return;
    const char *f = err->field;
    size_t n = strcspn(f, ".[");
    char out[TD_JSON_PATH_MAX]; /* = sizeof err->field; cut to it, like every path */
    if (n == 7 && strncmp(f, "dataset", 7) == 0) {
        if (snprintf(out, sizeof out, "%s%s", data_field, f + 7) <= 0) return;
    } else {
        const char *prefix = NULL;
        for (int i = 0; data_roots[i] && !prefix; i++)
            if (strlen(data_roots[i]) == n && strncmp(f, data_roots[i], n) == 0)
                prefix = data_field;
        if (!prefix && is_hparam_root(f, n)) prefix = "hyperparameters";
        if (!prefix) return;
        td_json_path(out, prefix, f);
    }
    memcpy(err->field, out, sizeof out);
}

static void lower_copy(char *dst, const char *src, size_t cap)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

const char *td_json_suggest(const char *name, const char *const *choices)
{
    if (strlen(name) > 64) return NULL;
    char a[72], b[72];
    lower_copy(a, name, sizeof a);
    const char *best = NULL;
    int best_d = 99;
    for (size_t i = 0; choices[i]; i++) {
        lower_copy(b, choices[i], sizeof b);
        int d = td_edit_distance(a, b);
        if (d < best_d) best_d = d, best = choices[i];
    }
    size_t len = strlen(name);
    int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
    return best_d <= limit ? best : NULL;
}

static void list_choices(char *out, size_t cap, const char *const *choices)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; choices[i] && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", choices[i]);
}

td_status td_json_fail_not_object(const char *prefix, const char *what, td_error *err)
{
    return td_fail(err, TD_EINVAL, prefix ? prefix : "", "%s must be a JSON object", what);
}

td_status td_json_check_key(const char *key, int repeated, const char *prefix, const char *what,
                            const char *const *allowed, td_error *err)
{
    char field[TD_JSON_PATH_MAX];
    int known = 0;
    for (size_t i = 0; allowed[i] && !known; i++)
        known = strcmp(allowed[i], key) == 0;
    td_json_path(field, prefix, key);
    if (!known) {
        const char *s = td_json_suggest(key, allowed);
        if (s)
            return td_fail(err, TD_EINVAL, field,
                           "unknown key \"%.64s\" in %s; did you "
                           "mean \"%s\"?",
                           key, what, s);
        char list[256];
        list_choices(list, sizeof list, allowed);
        return td_fail(err, TD_EINVAL, field, "unknown key \"%.64s\" in %s (allowed: %s)", key,
                       what, list);
    }
    if (repeated)
        return td_fail(err, TD_EINVAL, field, "key \"%s\" is given twice in %s", key, what);
    return TD_OK;
}

td_status td_json_check_keys(const cJSON *obj, const char *prefix, const char *what,
                             const char *const *allowed, td_error *err)
{
    if (!cJSON_IsObject(obj)) return td_json_fail_not_object(prefix, what, err);
    for (const cJSON *c = obj->child; c; c = c->next) {
        const char *key = c->string ? c->string : "";
        int repeated = 0;
        /* td_json_check_key refuses unknown keys first, so a repeat is of a known key and
         * this loop is bounded by the allowed list. */
        for (const cJSON *d = obj->child; d != c && !repeated; d = d->next)
            repeated = d->string && strcmp(d->string, key) == 0;
        td_status st = td_json_check_key(key, repeated, prefix, what, allowed, err);
        if (st) return st;
    }
    return TD_OK;
}

/* ---- scalars ---------------------------------------------------------------------- */

/* Marker of a non-finite literal (0 if v is not one). */
static char marker_of(const cJSON *v)
{
    if (!cJSON_IsString(v) || !v->valuestring) return 0;
    char c = v->valuestring[0];
    if ((c == MARK_NAN || c == MARK_PINF || c == MARK_NINF) && v->valuestring[1] == '\0') return c;
    return 0;
}

td_json_vkind td_json_kind_of(const cJSON *v)
{
    switch (marker_of(v)) {
    case MARK_NAN: return TD_JV_NAN;
    case MARK_PINF: return TD_JV_PINF;
    case MARK_NINF: return TD_JV_NINF;
    default: break;
    }
    if (!v) return TD_JV_NONE;
    if (cJSON_IsString(v)) return TD_JV_STRING;
    if (cJSON_IsNull(v)) return TD_JV_NULL;
    if (cJSON_IsTrue(v)) return TD_JV_TRUE;
    if (cJSON_IsFalse(v)) return TD_JV_FALSE;
    if (cJSON_IsArray(v)) return TD_JV_ARRAY;
    if (cJSON_IsObject(v)) return TD_JV_OBJECT;
    if (cJSON_IsNumber(v)) return TD_JV_NUMBER;
    return TD_JV_NONE;
}

const char *td_json_kind_name(td_json_vkind k)
{
    switch (k) {
    case TD_JV_NAN: return "NaN";
    case TD_JV_PINF: return "Infinity";
    case TD_JV_NINF: return "-Infinity";
    case TD_JV_NONE: return "nothing";
    case TD_JV_STRING: return "a string";
    case TD_JV_NULL: return "null";
    case TD_JV_TRUE: return "true";
    case TD_JV_FALSE: return "false";
    case TD_JV_ARRAY: return "an array";
    case TD_JV_OBJECT: return "an object";
    case TD_JV_NUMBER: return "a number";
    }
    return "an unknown value";
}

static const char *kind_of(const cJSON *v) { return td_json_kind_name(td_json_kind_of(v)); }

const char *td_json_kind(const cJSON *v) { return kind_of(v); }

/* The scalar readers on (kind, value): the one place their words are written. */
static td_status kv_double(double *out, td_json_vkind k, double v, const char *path, td_error *err)
{
    if (k == TD_JV_NUMBER) {
        if (!isfinite(v))
            return td_fail(err, TD_EINVAL, path,
                           "%s is not finite (the number overflows a "
                           "double); only finite numbers are allowed",
                           path);
        *out = v;
        return TD_OK;
    }
    if (k == TD_JV_NAN || k == TD_JV_PINF || k == TD_JV_NINF)
        return td_fail(err, TD_EINVAL, path, "%s is %s; only finite numbers are allowed", path,
                       td_json_kind_name(k));
    return td_fail(err, TD_EINVAL, path, "%s must be a number, got %s", path, td_json_kind_name(k));
}

/* Doubles at or beyond the midpoint between FLT_MAX and 2^128 round to inf as float32. */
#define F32_LIMIT 0x1.ffffffp+127

static td_status kv_float(float *out, td_json_vkind k, double v, const char *path, td_error *err)
{
    double d = 0;
    td_status st = kv_double(&d, k, v, path, err);
    if (st) return st;
    if (!(fabs(d) < F32_LIMIT))
        return td_fail(err, TD_EINVAL, path,
                       "%s = %g is outside the float32 range "
                       "(|x| <= %.8g)",
                       path, d, (double)FLT_MAX);
    *out = (float)d;
    return TD_OK;
}

static td_status kv_int(int64_t *out, td_json_vkind k, double v, int64_t lo, int64_t hi,
                        const char *path, td_error *err)
{
    double d = 0;
    td_status st = kv_double(&d, k, v, path, err);
    if (st) return st;
    if (d != floor(d))
        return td_fail(err, TD_EINVAL, path, "%s = %.17g is not an integer", path, d);
    if (d < (double)lo || d > (double)hi || d >= 0x1p63)
        return td_fail(err, TD_EINVAL, path, "%s = %.17g is outside [%lld, %lld]", path, d,
                       (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return TD_OK;
}

static double num_of(const cJSON *v) { return cJSON_IsNumber(v) ? v->valuedouble : 0; }

td_status td_json_get_double(double *out, const cJSON *v, const char *path, td_error *err)
{
    return kv_double(out, td_json_kind_of(v), num_of(v), path, err);
}

td_status td_json_get_int(int64_t *out, const cJSON *v, int64_t lo, int64_t hi, const char *path,
                          td_error *err)
{
    return kv_int(out, td_json_kind_of(v), num_of(v), lo, hi, path, err);
}

td_status td_json_get_bool(int *out, const cJSON *v, const char *path, td_error *err)
{
    if (!cJSON_IsBool(v))
        return td_fail(err, TD_EINVAL, path, "%s must be true or false, got %s", path, kind_of(v));
    *out = cJSON_IsTrue(v);
    return TD_OK;
}

td_status td_json_fail_not_string(const char *path, td_json_vkind k, td_error *err)
{
    return td_fail(err, TD_EINVAL, path, "%s must be a string, got %s", path, td_json_kind_name(k));
}

td_status td_json_get_pair(double x[2], const cJSON *v, int integral, const double *range,
                           const char *hint, const char *path, td_error *err)
{
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2)
        return td_fail(err, TD_EINVAL, path, "%s must be an array of 2 numbers%s", path, hint);
    int k = 0;
    for (const cJSON *c = v->child; c; c = c->next, k++) {
        char ef[TD_JSON_PATH_MAX];
        td_json_index_path(ef, path, k, -1);
        td_status st;
        if (integral) {
            int64_t i = 0;
            if ((st = td_json_get_int(&i, c, -(INT64_C(1) << 53), INT64_C(1) << 53, ef, err)))
                return st;
            x[k] = (double)i;
        } else if ((st = td_json_get_double(&x[k], c, ef, err))) {
            return st;
        }
        if (range && !(x[k] >= range[0] && x[k] < range[1]))
            return td_fail(err, TD_EINVAL, ef, "%s must be in [%g, %g), got %g", ef, range[0],
                           range[1], x[k]);
    }
    return TD_OK;
}

td_status td_json_get_string(const char **out, const cJSON *v, const char *path, td_error *err)
{
    if (!cJSON_IsString(v) || !v->valuestring || marker_of(v))
        return td_json_fail_not_string(path, td_json_kind_of(v), err);
    if (!td_utf8_valid(v->valuestring, strlen(v->valuestring)))
        return td_fail(err, TD_EINVAL, path, "%s must be UTF-8 text without NUL characters", path);
    *out = v->valuestring;
    return TD_OK;
}

td_status td_json_dataset_id(char *dataset, size_t cap, const cJSON *v, td_error *err)
{
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= cap)
        return td_fail(err, TD_EINVAL, "dataset",
                       "dataset must be the id of a stored dataset such as \"ds_...\"");
    snprintf(dataset, cap, "%s", v->valuestring);
    return TD_OK;
}

/* ---- arrays ----------------------------------------------------------------------- */

typedef td_json_rule rule;

td_status td_json_elem_fail(const td_json_rule *r, td_json_vkind k, double v, const char *path,
                            td_error *err)
{
    td_status st;
    if (!r->is_int) {
        float f = 0;
        if ((st = kv_float(&f, k, v, path, err))) return st;
        return td_fail(err, TD_EINVAL, path, "%s = %g is negative; it must be >= 0", path,
                       (double)f);
    }
    if ((k == TD_JV_TRUE || k == TD_JV_FALSE) && !(r->flags & TD_JSON_BOOLS))
        return td_fail(err, TD_EINVAL, path, "%s must be an integer, got %s", path,
                       td_json_kind_name(k));
    int64_t i;
    if ((st = kv_int(&i, k, v, r->lo, r->hi, path, err))) return st;
    return td_fail(err, TD_EINVAL, path, "%s is invalid", path);
}

td_status td_json_fail_not_rows(const char *path, td_json_vkind k, td_error *err)
{
    return td_fail(err, TD_EINVAL, path,
                   "%s must be an array of rows (arrays of numbers), "
                   "got %s",
                   path, td_json_kind_name(k));
}

td_status td_json_fail_first_not_row(const char *path, td_json_vkind first, td_error *err)
{
    return td_fail(err, TD_EINVAL, path,
                   "%s must be an array of rows (arrays of numbers); "
                   "%s[0] is %s",
                   path, path, td_json_kind_name(first));
}

td_status td_json_fail_first_row_empty(const char *path, td_error *err)
{
    return td_fail(err, TD_EINVAL, path, "%s[0] is empty; rows need at least one value", path);
}

td_status td_json_fail_empty(const char *path, td_error *err)
{
    return td_fail(err, TD_EINVAL, path, "%s must not be empty", path);
}

td_status td_json_fail_not_numbers(const char *path, td_json_vkind k, td_error *err)
{
    return td_fail(err, TD_EINVAL, path, "%s must be an array of numbers, got %s", path,
                   td_json_kind_name(k));
}

td_status td_json_fail_ragged(const char *path, int64_t row, int64_t got, int64_t want,
                              td_error *err)
{
    char rpath[TD_JSON_PATH_MAX];
    td_json_index_path(rpath, path, row, -1);
    return td_fail(err, TD_EINVAL, rpath,
                   "%s has %lld value%s, expected %lld (like %s[0]); "
                   "rows must all have the same length",
                   rpath, (long long)got, got == 1 ? "" : "s", (long long)want, path);
}

/* The slow path: names the element and says why it was refused. */
static td_status elem_error(const cJSON *v, const rule *r, const char *base, int64_t i, int64_t j,
                            td_error *err)
{
    char path[TD_JSON_PATH_MAX];
    td_json_index_path(path, base, i, j);
    return td_json_elem_fail(r, td_json_kind_of(v), num_of(v), path, err);
}

/* Reads one element into dst[idx] (fast path), else reports it. */
static inline td_status read_elem(void *dst, int64_t idx, const cJSON *v, const rule *r,
                                  const char *base, int64_t i, int64_t j, td_error *err)
{
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (td_json_rule_ok(r, d)) {
            if (r->is_int)
                ((int32_t *)dst)[idx] = (int32_t)d;
            else
                ((float *)dst)[idx] = (float)d;
            return TD_OK;
        }
    } else if (r->is_int && (r->flags & TD_JSON_BOOLS) && cJSON_IsBool(v)) {
        int32_t b = cJSON_IsTrue(v);
        if (b >= r->lo && b <= r->hi) {
            ((int32_t *)dst)[idx] = b;
            return TD_OK;
        }
    }
    return elem_error(v, r, base, i, j, err);
}

static size_t elem_size(const rule *r) { return r->is_int ? sizeof(int32_t) : sizeof(float); }

static int64_t count_items(const cJSON *a)
{
    int64_t n = 0;
    for (const cJSON *c = a->child; c; c = c->next)
        n++;
    return n;
}

td_status td_json_read_vector(void **out, int64_t *n, const cJSON *v, const rule *r,
                              const char *path, td_error *err)
{
    *out = NULL;
    *n = 0;
    if (!cJSON_IsArray(v)) return td_json_fail_not_numbers(path, td_json_kind_of(v), err);
    int64_t count = count_items(v);
    if (count == 0) {
        if (r->flags & TD_JSON_EMPTY_OK) return TD_OK;
        return td_json_fail_empty(path, err);
    }
    void *buf = malloc(elem_size(r) * (size_t)count);
    if (!buf) return td_fail(err, TD_ENOMEM, path, "out of memory reading %s", path);
    int64_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        td_status st = read_elem(buf, i, c, r, path, i, -1, err);
        if (st) {
            free(buf);
            return st;
        }
    }
    *out = buf;
    *n = count;
    return TD_OK;
}

td_status td_json_read_matrix(void **out, int64_t *rows, int64_t *cols, const cJSON *v,
                              const rule *r, const char *path, td_error *err)
{
    *out = NULL;
    *rows = *cols = 0;
    if (!cJSON_IsArray(v)) return td_json_fail_not_rows(path, td_json_kind_of(v), err);
    int64_t R = count_items(v);
    if (R == 0) {
        if (r->flags & TD_JSON_EMPTY_OK) return TD_OK;
        return td_json_fail_empty(path, err);
    }
    const cJSON *first = v->child;
    if (!cJSON_IsArray(first)) return td_json_fail_first_not_row(path, td_json_kind_of(first), err);
    int64_t C = count_items(first);
    if (C == 0) return td_json_fail_first_row_empty(path, err);
    if ((uint64_t)R > (uint64_t)INT64_MAX / (uint64_t)C ||
        (uint64_t)(R * C) > SIZE_MAX / elem_size(r))
        return td_fail(err, TD_EINVAL, path, "%s is too large", path);
    void *buf = malloc(elem_size(r) * (size_t)(R * C));
    if (!buf) return td_fail(err, TD_ENOMEM, path, "out of memory reading %s", path);
    char rpath[TD_JSON_PATH_MAX];
    td_status st = TD_OK;
    int64_t i = 0;
    for (const cJSON *row = v->child; row; row = row->next, i++) {
        if (!cJSON_IsArray(row)) {
            td_json_index_path(rpath, path, i, -1);
            st = td_json_fail_not_numbers(rpath, td_json_kind_of(row), err);
            goto fail;
        }
        int64_t j = 0;
        const cJSON *c = row->child;
        for (; c && j < C; c = c->next, j++)
            if ((st = read_elem(buf, i * C + j, c, r, path, i, j, err))) goto fail;
        if (c || j != C) {
            st = td_json_fail_ragged(path, i, count_items(row), C, err);
            goto fail;
        }
    }
    *out = buf;
    *rows = R;
    *cols = C;
    return TD_OK;
fail:
    free(buf);
    return st;
}

td_status td_json_matrix_f32(float **out, int64_t *rows, int64_t *cols, const cJSON *v,
                             unsigned flags, const char *path, td_error *err)
{
    rule r = {0, flags, 0, 0};
    return td_json_read_matrix((void **)out, rows, cols, v, &r, path, err);
}

td_status td_json_vector_f32(float **out, int64_t *n, const cJSON *v, unsigned flags,
                             const char *path, td_error *err)
{
    rule r = {0, flags, 0, 0};
    return td_json_read_vector((void **)out, n, v, &r, path, err);
}

/* ---- output buffer ---------------------------------------------------------------- */

void td_sbuf_init(td_sbuf *b) { memset(b, 0, sizeof *b); }

void td_sbuf_fini(td_sbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void td_sbuf_reserve(td_sbuf *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->data = p;
    b->cap = cap;
}

void td_sbuf_put(td_sbuf *b, const char *s, size_t n)
{
    td_sbuf_reserve(b, n);
    if (b->oom) return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void td_sbuf_puts(td_sbuf *b, const char *s) { td_sbuf_put(b, s, strlen(s)); }

void td_sbuf_printf(td_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    td_sbuf_reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Appends an integer without printf (the common case for labels and zeros). */
static void put_int(td_sbuf *b, int64_t v)
{
    td_sbuf_reserve(b, 24);
    if (b->oom) return;
    b->len += td_fmt_int(b->data + b->len, v);
    b->data[b->len] = '\0';
}

void td_sbuf_int(td_sbuf *b, int64_t v) { put_int(b, v); }

size_t td_fmt_int(char out[24], int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    char *p = out;
    if (v < 0) *p++ = '-';
    while (n)
        *p++ = tmp[--n];
    return (size_t)(p - out);
}

/* Significant digits of a %g text ("0.00125" has 3, "1.5e-07" 2). */
static int sig_digits(const char *t)
{
    int n = 0, started = 0;
    for (; *t && *t != 'e'; t++) {
        started |= *t >= '1' && *t <= '9';
        n += started && *t >= '0' && *t <= '9';
    }
    return n;
}

/* 1 when the text t reads back as v (as a float32 when is_float). */
static int reads_back(const char *t, double v, int is_float)
{
    return is_float ? strtof(t, NULL) == (float)v : strtod(t, NULL) == v;
}

/* v in the fewest significant digits that read back as v (as a float32 when is_float),
 * at most 9 / 17 (which always do). Starts at 8 / 16: when that does not read back, 9 / 17
 * it is; when it does, %g has already dropped trailing zeros (0.1f at %.8g is "0.1"), and
 * one digit fewer is tried while that reads back, down to FLT_DIG / DBL_DIG digits (a
 * shorter form that reads back prints exactly at those), or for subnormals (fewer bits:
 * 1e-45f, 5e-324) down to 1. Round-tripping is monotone in the digits. Usually one or two
 * snprintf + strtof. out gets the NUL-terminated text; returns its length. */
static size_t shortest(char out[32], double v, int is_float)
{
    int most = is_float ? 9 : 17, least = is_float ? FLT_DIG : DBL_DIG;
    int n = snprintf(out, 32, "%.*g", most - 1, v);
    if (!reads_back(out, v, is_float)) return (size_t)snprintf(out, 32, "%.*g", most, v);
    if (fabs(v) < (is_float ? (double)FLT_MIN : DBL_MIN)) least = 1;
    char tmp[32];
    for (int p = sig_digits(out); p > least; p = sig_digits(out)) {
        int m = snprintf(tmp, sizeof tmp, "%.*g", p - 1, v);
        if (!reads_back(tmp, v, is_float)) break;
        memcpy(out, tmp, (size_t)m + 1);
        n = m;
    }
    return (size_t)n;
}

size_t td_fmt_float(char out[32], float v)
{
    if (!isfinite(v)) {
        memcpy(out, "null", 4);
        return 4;
    }
    /* integers (and -0, printed as 0) without printf */
    if (v == floorf(v) && fabsf(v) < 1e7f) return td_fmt_int(out, (int64_t)v);
    return shortest(out, v, 1);
}

size_t td_fmt_double(char out[32], double v)
{
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return 4;
    }
    if (v == floor(v) && fabs(v) < 1e15) {
        size_t n = td_fmt_int(out, (int64_t)v);
        out[n] = '\0';
        return n;
    }
    return shortest(out, v, 0);
}

void td_sbuf_float(td_sbuf *b, float v)
{
    td_sbuf_reserve(b, 32);
    if (b->oom) return;
    b->len += td_fmt_float(b->data + b->len, v);
    b->data[b->len] = '\0';
}

void td_sbuf_double(td_sbuf *b, double v)
{
    if (!isfinite(v)) {
        td_sbuf_put(b, "null", 4);
        return;
    }
    td_sbuf_reserve(b, 32);
    if (b->oom) return;
    b->len += td_fmt_double(b->data + b->len, v);
    b->data[b->len] = '\0';
}

void td_sbuf_value(td_sbuf *b, const char *column, double v)
{
    if (td_column_is_bool(column) && (v == 0 || v == 1))
        td_sbuf_puts(b, v ? "true" : "false");
    else
        td_sbuf_double(b, v);
}

int td_column_is_bool(const char *column) { return strcmp(column, "converged") == 0; }

/* One cJSON item into b (as cJSON_PrintUnformatted, with numbers by td_fmt_double). */
static void put_cjson(td_sbuf *b, const cJSON *it)
{
    if (cJSON_IsNull(it) || cJSON_IsInvalid(it))
        td_sbuf_put(b, "null", 4);
    else if (cJSON_IsFalse(it))
        td_sbuf_put(b, "false", 5);
    else if (cJSON_IsTrue(it))
        td_sbuf_put(b, "true", 4);
    else if (cJSON_IsNumber(it))
        td_sbuf_double(b, it->valuedouble);
    else if (cJSON_IsString(it))
        td_sbuf_string(b, it->valuestring);
    else if (cJSON_IsRaw(it))
        td_sbuf_puts(b, it->valuestring ? it->valuestring : "null");
    else {
        int obj = cJSON_IsObject(it);
        td_sbuf_put(b, obj ? "{" : "[", 1);
        for (const cJSON *c = it->child; c; c = c->next) {
            if (obj)
                td_sbuf_key(b, c->string ? c->string : "", c == it->child);
            else if (c != it->child)
                td_sbuf_put(b, ",", 1);
            put_cjson(b, c);
        }
        td_sbuf_put(b, obj ? "}" : "]", 1);
    }
}

char *td_json_print(const cJSON *item)
{
    if (!item) return NULL;
    td_sbuf b;
    td_sbuf_init(&b);
    put_cjson(&b, item);
    return td_sbuf_finish(&b, NULL);
}

char *td_json_take(cJSON *item)
{
    char *text = td_json_print(item);
    cJSON_Delete(item);
    return text;
}

int td_json_add(cJSON *parent, const char *key, cJSON *item)
{
    if (item &&
        (key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item)))
        return 1;
    cJSON_Delete(item);
    return 0;
}

void td_sbuf_string(td_sbuf *b, const char *s)
{
    if (!s) {
        td_sbuf_put(b, "null", 4);
        return;
    }
    td_sbuf_put(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        td_sbuf_put(b, run, (size_t)(p - run));
        run = p + 1;
        switch (c) {
        case '"': td_sbuf_put(b, "\\\"", 2); break;
        case '\\': td_sbuf_put(b, "\\\\", 2); break;
        case '\n': td_sbuf_put(b, "\\n", 2); break;
        case '\r': td_sbuf_put(b, "\\r", 2); break;
        case '\t': td_sbuf_put(b, "\\t", 2); break;
        default: td_sbuf_printf(b, "\\u%04x", c); break;
        }
    }
    td_sbuf_puts(b, run);
    td_sbuf_put(b, "\"", 1);
}

void td_sbuf_key(td_sbuf *b, const char *key, int first)
{
    if (!first) td_sbuf_put(b, ",", 1);
    td_sbuf_string(b, key);
    td_sbuf_put(b, ":", 1);
}

/* [...] of n values, or with rows >= 0 a (rows, n) matrix [[...],[...]] (one row a level
 * down); the values are f when it is given, else v. */
static void put_numbers(td_sbuf *b, const float *f, const int32_t *v, int64_t rows, int64_t n)
{
    td_sbuf_put(b, "[", 1);
    for (int64_t i = 0; i < (rows < 0 ? n : rows); i++) {
        if (i) td_sbuf_put(b, ",", 1);
        if (rows >= 0)
            put_numbers(b, f ? f + i * n : NULL, v ? v + i * n : NULL, -1, n);
        else if (f)
            td_sbuf_float(b, f[i]);
        else
            put_int(b, v[i]);
    }
    td_sbuf_put(b, "]", 1);
}

void td_sbuf_floats(td_sbuf *b, const float *v, int64_t n)
{
    td_sbuf_reserve(b, (size_t)n * 12 + 2);
    put_numbers(b, v, NULL, -1, n);
}

void td_sbuf_ints(td_sbuf *b, const int32_t *v, int64_t n) { put_numbers(b, NULL, v, -1, n); }

void td_sbuf_matrix_f32(td_sbuf *b, const float *v, int64_t rows, int64_t cols)
{
    td_sbuf_reserve(b, (size_t)(rows * (cols * 12 + 3)) + 2);
    put_numbers(b, v, NULL, rows, cols);
}

void td_sbuf_matrix_i32(td_sbuf *b, const int32_t *v, int64_t rows, int64_t cols)
{
    put_numbers(b, NULL, v, rows, cols);
}

void td_sbuf_error(td_sbuf *b, const char *code, const char *message)
{
    if (!code[0]) {
        td_sbuf_puts(b, "null");
        return;
    }
    td_sbuf_puts(b, "{\"code\":");
    td_sbuf_string(b, code);
    td_sbuf_puts(b, ",\"message\":");
    td_sbuf_string(b, message);
    td_sbuf_puts(b, "}");
}

char *td_sbuf_finish(td_sbuf *b, size_t *len)
{
    td_sbuf_reserve(b, 0);
    if (b->oom) {
        td_sbuf_fini(b);
        if (len) *len = 0;
        return NULL;
    }
    char *s = b->data;
    s[b->len] = '\0';
    if (len) *len = b->len;
    memset(b, 0, sizeof *b);
    return s;
}
