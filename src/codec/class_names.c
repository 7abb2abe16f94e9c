/* class_names.c — class names as JSON text (contracts in class_names.h). */
#include "codec/class_names.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

char *td_strings_json(char *const *v, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < n; i++) {
        cJSON *s = cJSON_CreateString(v[i]);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    char *out = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return out;
}

td_status td_strings_parse(const char *text, char ***out, int64_t *n, td_error *err)
{
    *out = NULL;
    *n = 0;
    cJSON *a = cJSON_Parse(text);
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        return td_fail(err, TD_EINVAL, "classes", "stored names are not a JSON array");
    }
    int64_t k = cJSON_GetArraySize(a);
    char **v = calloc((size_t)(k ? k : 1), sizeof *v);
    int64_t i = 0;
    for (const cJSON *c = a->child; v && c; c = c->next, i++)
        if (!cJSON_IsString(c) || !(v[i] = strdup(c->valuestring))) break;
    cJSON_Delete(a);
    if (!v || i != k) {
        td_strings_free(v, k);
        return td_fail(err, v ? TD_EINVAL : TD_ENOMEM, "classes",
                       "stored names are not "
                       "strings, or out of memory");
    }
    *out = v;
    *n = k;
    return TD_OK;
}
