/* testutil.h — helpers shared by the Check suites: reference vectors and comparisons. */
#ifndef TRAIND_TESTUTIL_H
#define TRAIND_TESTUTIL_H

#include <check.h>
#include <cJSON.h>
#include <stdint.h>

#include "traind/train.h"

/* Loads $TD_REFDIR/<name> (default tests/data/reference/<name>,
 * made by tests/data/gen_reference.py); fails the test if absent.
 * The caller owns the tree (cJSON_Delete). */
cJSON *tu_ref_load(const char *name);

/* Parses text as the daemon does (td_json_parse: NaN and Infinity read too) into a tree
 * the caller owns; fails the test if it is not JSON. In testutil_codec.c: not for the
 * engine suites (build/engine_runner has no codec). */
cJSON *tu_parse(const char *text);

/* Flattens a number, an array of numbers or an array of rows into a new malloc'd array.
 * *n (may be NULL) gets the element count, rows and cols (may be NULL) the shape
 * (cols = 1 for a vector). */
float *tu_floats(const cJSON *arr, int64_t *n, int64_t *rows, int64_t *cols);
double *tu_doubles(const cJSON *arr, int64_t *n, int64_t *rows, int64_t *cols);
int32_t *tu_ints(const cJSON *arr, int64_t *n, int64_t *rows, int64_t *cols);
double tu_num(const cJSON *obj, const char *key);

/* |got - want| <= atol + rtol * |want|, elementwise; the message names the element. */
#define tu_close(got, want, rtol, atol, what) \
    tu_close_at(__FILE__, __LINE__, (double)(got), (double)(want), rtol, atol, what, -1)
void tu_close_at(const char *file, int line, double got, double want, double rtol, double atol,
                 const char *what, int64_t index);
void tu_close_arrays_f(const char *file, int line, const float *got, const double *want, int64_t n,
                       double rtol, double atol, const char *what);
#define tu_close_array(got, want, n, rtol, atol, what) \
    tu_close_arrays_f(__FILE__, __LINE__, got, want, n, rtol, atol, what)

/* The whole file (malloc'd, NUL-terminated; its length into *len when len is non-NULL);
 * the test fails when it cannot be read. */
char *tu_read_file(const char *path, size_t *len);

/* Trainer helpers shared by the engine suites: create (the test fails with the error's
 * field and message otherwise), one step that must succeed, and a record column's index
 * by name (-1 when the trainer has no such column). */
td_trainer *tu_make_trainer(const td_hparams *hp, const td_dataset *ds);
void tu_step_ok(td_trainer *t, td_record *rec);
/* Exact resume: trains hp on ds to the end, and again stopping after `stop` epochs (with
 * `threads` threads), saving a snapshot, restoring it into a new trainer and finishing
 * there; asserts the final parameters and every epoch's record (all columns but epoch and
 * elapsed_s, at most TU_RESUME_MAX_EPOCHS epochs) are bit-identical. Returns the snapshot
 * (malloc'd, *cap bytes; the caller frees it) for further checks. */
#define TU_RESUME_MAX_EPOCHS 64
void *tu_resume_bit_identical(const td_hparams *hp, const td_dataset *ds, int64_t stop, int threads,
                              size_t *cap);
int tu_column(const td_trainer *t, const char *name);

#endif
