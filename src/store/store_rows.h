/* store_rows.h — reading rows and pages, as both store backends do it (SQLite: store_query.c,
 * PostgreSQL: store_pg.c). For the store's files only. */
#ifndef TRAIND_STORE_ROWS_H
#define TRAIND_STORE_ROWS_H

#include <stddef.h>

#include "store/store.h"

/* A row's columns read into a struct by a table, one entry a column (td_store_read_cols,
 * td_pg_read_cols): kind 't' copies text into a char array field ("" for NULL); 'n' reads
 * a number into an int or int64_t field (by its size; NULL: 0); 'N' an int64_t field, -1
 * for NULL. */
typedef struct {
    int col;          /* the result's column */
    char kind;        /* 't', 'n' or 'N' */
    size_t off, size; /* the field: offsetof, sizeof */
} td_col;
#define TD_COL(type, col, kind, field)                             \
    {                                                              \
        col, kind, offsetof(type, field), sizeof((type *)0)->field \
    }

/* The columns of a job's row (JOB_COLS) and a sweep's (SWEEP_COLS) that read as they are,
 * for both backends: every field but a job's state (column 4), JSON copies (5, 16, 26, 27)
 * and node, and a sweep's state (1) and spec (5), which the readers take themselves. A
 * job's stop_at_epoch reads NULL as 0, its checkpoint_epoch and sweep_trial as -1. */
extern const td_col TD_JOB_READ[], TD_SWEEP_READ[];
extern const int TD_JOB_NREAD, TD_SWEEP_NREAD;

/* The start of a listing page: cursor gets after ("" when NULL; after may alias next),
 * next is cleared, *n = 0 rows; TD_EINVAL (field "limit") unless limit >= 1. */
td_status td_store_page_start(int limit, const char *after, char cursor[TD_ID_MAX],
                              char next[TD_ID_MAX], int *n, td_error *err);

/* A job state by its name (td_job_state_name's), -1 for NULL or an unknown name. */
int td_store_state_of(const char *name);

/* A target kind by its name (td_target_name's), TD_TARGET_NONE for NULL or an unknown
 * name. */
td_target_kind td_store_target_of(const char *name);

/* The column count of a history_columns text ("a,b,c"): 0 for NULL or "". */
int td_store_count_cols(const char *names);

#endif
