/* names.h — class names (string labels) collected while a dataset is read, then ordered
 * like numpy.unique / scikit-learn's LabelEncoder.
 *
 * A reader adds each row's label text and stores the provisional index it gets (first
 * appearance order); td_names_finish sorts the distinct names by Unicode code point (the
 * byte order of UTF-8, which is Python's str order) and rewrites the indices in place. */
#ifndef TRAIND_UTIL_NAMES_H
#define TRAIND_UTIL_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "traind/status.h"

#define TD_CLASS_NAME_MAX 256 /* bytes of one class name */

typedef struct td_names {
    char **v; /* distinct names, first appearance order (owned) */
    int64_t n, cap;
    int64_t *slot; /* open addressing over v: index + 1, 0 = empty */
    size_t nslot;
} td_names;

/* The provisional index of name (len bytes, no NUL needed): >= 0, or -1 out of memory,
 * -2 more than TD_MAX_CLASSES distinct names. */
int32_t td_names_add(td_names *t, const char *name, size_t len);

/* Sorts the names, rewrites y[0..n) (provisional indices, or negative: kept) to sorted
 * ones, and moves the names into *classes (malloc'd array of *K malloc'd strings). t is
 * emptied either way. */
td_status td_names_finish(td_names *t, int32_t *y, int64_t n, char ***classes, int64_t *K,
                          td_error *err);

void td_names_fini(td_names *t);

/* Frees an array of n malloc'd strings (NULL is fine). */
void td_strings_free(char **v, int64_t n);

#endif
