/* store_rows.h — reading rows and pages, as both store backends do it (SQLite: store_query.c,
 * PostgreSQL: store_pg.c). For the store's files only. */
#ifndef TRAIND_STORE_ROWS_H
#define TRAIND_STORE_ROWS_H

#include <stddef.h>

#include "store/store.h"

/* A row's columns read into a struct by a table, one entry a column (td_store_read_cols,
 * td_pg_read_cols): kind 't' copies text into a char array field ("" for NULL); 'n' reads
 * a number into an int or int64_t field (by its size; NULL: 0); 'N' an int64_t field, -1
 * for NULL; 's' a job state by its name into a td_job_state field (unknown: failed). */
typedef struct {
    int col;          /* the result's column */
    char kind;        /* 't', 'n', 'N' or 's' */
    size_t off, size; /* the field: offsetof, sizeof */
} td_col;
#define TD_COL(type, col, kind, field)                             \
    {                                                              \
        col, kind, offsetof(type, field), sizeof((type *)0)->field \
    }

/* The columns of a job's row (JOB_COLS) and a sweep's (SWEEP_COLS) that read as they are,
 * for both backends: every field but a job's JSON copies (columns 5, 16, 26, 27) and node,
 * and a sweep's spec (5), which the readers take themselves. A
 * job's stop_at_epoch reads NULL as 0, its checkpoint_epoch and sweep_trial as -1. */
extern const td_col TD_JOB_READ[], TD_SWEEP_READ[];
extern const int TD_JOB_NREAD, TD_SWEEP_NREAD;

/* An array of rows as the listings give them (td_store_collect, td_pg_collect): elem bytes
 * a row, its id (char[TD_ID_MAX]) at offset id, drop(rows, n) frees n rows and the array;
 * what names them in the out-of-memory message ("out of memory listing <what>"). */
typedef struct {
    size_t elem, id;
    void (*drop)(void *rows, int n);
    const char *what;
} td_row_kind;
extern const td_row_kind TD_JOB_ROWS, TD_SWEEP_ROWS, TD_TRIAL_ROWS;

/* The start of a listing page: cursor gets after ("" when NULL; after may alias next),
 * next is cleared, *n = 0 rows; TD_EINVAL (field "limit") unless limit >= 1. */
td_status td_store_page_start(int limit, const char *after, char cursor[TD_ID_MAX],
                              char next[TD_ID_MAX], int *n, td_error *err);

/* A job state by its name (td_job_state_name's), -1 for NULL or an unknown name. */
int td_store_state_of(const char *name);
/* The state of a row's 's' column (td_col): its name's, failed when unknown. */
static inline td_job_state td_store_row_state(const char *name)
{
    int st = td_store_state_of(name);
    return st < 0 ? TD_JOB_FAILED : (td_job_state)st;
}

/* A target kind by its name (td_target_name's), TD_TARGET_NONE for NULL or an unknown
 * name. */
td_target_kind td_store_target_of(const char *name);

/* The column count of a history_columns text ("a,b,c"): 0 for NULL or "". */
int td_store_count_cols(const char *names);

#endif
