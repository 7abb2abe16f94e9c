/* json_dataset.h — dataset bodies (JSON and text/csv) to owned arrays, and the dataset
 * summary object of the REST API (SPEC §6).
 *
 * JSON body: {"X": [[...], ...], "y": [...] | [[...], ...], "Y": [[...], ...],
 *             "pairs": [[i, j], ...], "pair_labels": [1, 0, ...], "name": "..."}
 *  - X: non-empty, rows of one non-zero length, finite float32 numbers.
 *  - y: class indices, integral numbers in int32 range; (N) or grouped (N, G).
 *  - Y: probability targets (N, K), finite and >= 0. y and Y are exclusive; neither is
 *    fine (an unlabelled dataset, for gmm).
 *  - pairs (P, 2) row indices in [0, N) with pair_labels (P) of 0/1 (true/false accepted);
 *    one needs the other.
 *  - name: a string of at most 256 bytes without control characters.
 *  - Numbers become float32 as (float)strtod does (stream_dataset.h says why).
 * Errors (TD_EINVAL, 422) name the first offending element: "X[12][3]", "y[7]", "X[1]"
 * for a ragged row, "pairs[3][1]". Malformed JSON is the 400 of json_util.h.
 *
 * CSV body (text/csv): one sample per line, comma-separated; double-quoted fields with ""
 * escapes; LF or CRLF; blank lines and a trailing newline are skipped; a UTF-8 BOM is
 * skipped. label_column last (default) | first | none; header false (default) | true.
 * Errors say where: field "line 5, column 3", message "line 5, column 3: ...".
 *
 * POST /v1/datasets and the inline "data" of a job body are read with the streaming
 * parser (stream_dataset.h), the one reader of dataset bodies; the cJSON tree reader it
 * is tested and fuzzed against is tests/dataset_tree.h. */
#ifndef TRAIND_CODEC_JSON_DATASET_H
#define TRAIND_CODEC_JSON_DATASET_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "traind/dataset.h"
#include "traind/status.h"

#define TD_DATASET_NAME_MAX 256

/* A parsed dataset: the arrays are owned here; ds is the engine's view over them. */
typedef struct td_dataset_buf {
    td_dataset ds;        /* N, D, y_cols, Y_cols, P and borrowed pointers to below */
    float *X;             /* (N, D) */
    int32_t *y;           /* (N, y_cols) or NULL */
    float *Y;             /* (N, Y_cols) or NULL */
    int32_t *pairs;       /* (P, 2) or NULL */
    int32_t *pair_labels; /* (P) or NULL */
    char *name;           /* or NULL */
    char **classes;       /* y given as class names: the K names in class order (y
                                holds indices into them), or NULL */
    int64_t n_classes;    /* K when classes is set */
    char **columns;       /* CSV with a header: the D feature columns' names, or NULL */
    int64_t n_columns;
} td_dataset_buf;

/* Frees the arrays and zeroes the struct (safe on a zeroed or half-filled one). */
void td_dataset_buf_free(td_dataset_buf *d);

/* ---- the dataset checks, shared by the tree reader and the streaming parser -------- */

/* One array of a dataset body as read, before the checks across arrays. */
typedef struct td_dataset_part {
    int present;  /* the key was given with a non-null value */
    td_status st; /* the array's own first error (TD_OK: none), in err */
    td_error err;
    void *data;             /* owned: float (X, Y) or int32_t (y, pairs, pair_labels) */
    int64_t rows, cols;     /* cols 1 for a vector */
    int grouped;            /* y: given as rows of labels (N, G) */
    int64_t row0_len;       /* pairs: values in pairs[0] when pairs and pairs[0] are
                                arrays, else -1 */
    struct td_names *names; /* y given as class names: data holds provisional indices
                                into these (class_names.h); owned, or NULL */
} td_dataset_part;

/* A dataset object as read. pairs must be read with indices in [0, X.rows - 1] (the
 * streaming parser re-checks them once X is known). */
typedef struct td_dataset_parts {
    td_status key_st; /* not an object, an unknown or a repeated key */
    td_error key_err;
    td_dataset_part X, y, Y, pairs, pair_labels;
    int name_present;
    td_status name_st; /* name not a string */
    td_error name_err;
    char *name;      /* owned, as given up to its first NUL (checked by
                                td_dataset_parts_finish); may be cut short when longer
                                than TD_DATASET_NAME_MAX */
    size_t name_len; /* strlen of the whole name as given */
} td_dataset_parts;

/* The rules of the dataset body across its arrays, in one order: key errors, X
 * required, y or Y, each array's own error and row count (X, y, Y, pairs, pair_labels),
 * pairs with pair_labels, then the name. On success the arrays move into *out (p keeps
 * nothing); either way p is finalised. Element paths get prefix ("data" gives
 * "data.X[2][1]"); prefix may be NULL or "". */
td_status td_dataset_parts_finish(td_dataset_buf *out, td_dataset_parts *p, const char *prefix,
                                  td_error *err);
/* Frees what p still owns and zeroes it. */
void td_dataset_parts_fini(td_dataset_parts *p);

/* The name rules (at most TD_DATASET_NAME_MAX bytes, no control characters): *out gets a
 * copy. name is the given name up to its first NUL and n its whole length (name may be
 * cut short when n is over the limit). Errors name field. */
td_status td_dataset_name_copy(char **out, const char *name, size_t n, const char *field,
                               td_error *err);

typedef enum {
    TD_CSV_LABEL_LAST = 0,
    TD_CSV_LABEL_FIRST,
    TD_CSV_LABEL_NONE,
    TD_CSV_LABEL_NAMED
} td_csv_label;

typedef struct td_csv_opts {
    td_csv_label label_column; /* default last */
    int header;                /* 1: the first line names the columns; default 0 */
    char delimiter;            /* ',' (default), ';', '\t' or '|' */
    char label_name[128];      /* TD_CSV_LABEL_NAMED: the header name of the label column */
} td_csv_opts;

td_csv_opts td_csv_opts_default(void);
/* Reads the query-string values (each may be NULL for the default): label_column is
 * last, first, none or a header name (with header=true); delimiter is one character of
 * ",;|" or "tab" (a tab itself too). Errors name the field "label_column", "header" or
 * "delimiter". */
td_status td_csv_opts_parse(td_csv_opts *o, const char *label_column, const char *header,
                            td_error *err);
td_status td_csv_delimiter_parse(td_csv_opts *o, const char *delimiter, td_error *err);
/* Parses a CSV body. name (may be NULL) is copied. With a label column the labels are
 * integers (class indices), or class names when the first row's label is not a number
 * (then every label is a name), and there must be at least one feature column. The body in one
 * piece through the streaming parser (stream_dataset.h), which is where the CSV rules
 * live. */
td_status td_csv_dataset_parse(td_dataset_buf *out, const char *body, size_t len,
                               const td_csv_opts *o, const char *name, td_error *err);

/* ---- summary ---------------------------------------------------------------------- */

/* td_target_kind: include/traind/dataset.h */
/* "none", "index", "grouped", "probs" (indexed by td_target_kind). */
extern const char *const td_target_names[];

/* What GET /v1/datasets/{id} reports (never the data). Strings are borrowed. */
typedef struct td_dataset_summary {
    const char *id;   /* NULL: omitted */
    const char *name; /* NULL: null */
    int64_t n_samples, n_features;
    int64_t n_classes; /* classes (per group for grouped targets); 0: null */
    int64_t groups;    /* G for grouped targets, 1 otherwise */
    int64_t n_pairs;
    td_target_kind target;
    const char *created_at; /* RFC 3339; NULL: omitted */
} td_dataset_summary;

/* {"id","name","n_samples","n_features","n_classes","target"[,"groups"][,"n_pairs"]
 *  [,"created_at"]}; NULL when out of memory. The caller deletes it. */
cJSON *td_json_dataset_summary(const td_dataset_summary *s);

#endif
