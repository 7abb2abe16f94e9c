/* store_query.c — one prepare/bind/step for the SQLite store's statements (store_impl.h):
 * the pattern every query and write repeated, written once. */
#include <assert.h>
#include <stdarg.h>

#include "store/store_sqlite.h"

/* Binds ?1, ?2, ... from ap by fmt, one character a parameter:
 *   's' const char *: text (a NULL pointer binds NULL)
 *   'o' const char *: text, or NULL when NULL or ""
 *   'i' int           'I' int64_t           'd' double
 * An unknown character is a programmer's error (assert). */
static void bind_args(sqlite3_stmt *st, const char *fmt, va_list ap)
{
    for (int i = 1; *fmt; fmt++, i++) {
        switch (*fmt) {
        case 's': bind_str(st, i, va_arg(ap, const char *)); break;
        case 'o': bind_opt(st, i, va_arg(ap, const char *)); break;
        case 'i': sqlite3_bind_int(st, i, va_arg(ap, int)); break;
        case 'I': sqlite3_bind_int64(st, i, va_arg(ap, int64_t)); break;
        case 'd': sqlite3_bind_double(st, i, va_arg(ap, double)); break;
        default: assert(!"td_store_query: bad bind format");
        }
    }
}

/* Prepares sql into *st (giving back the one it held) and binds ap by fmt. */
static td_status prepare_bind(td_store *s, sqlite3_stmt **st, td_error *err, const char *sql,
                              const char *fmt, va_list ap)
{
    td_status rc = prepare(s, st, sql, err);
    if (!rc) bind_args(*st, fmt, ap);
    return rc;
}

td_status td_store_bind(td_store *s, sqlite3_stmt **st, td_error *err, const char *sql,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    td_status rc = prepare_bind(s, st, err, sql, fmt, ap);
    va_end(ap);
    return rc;
}

td_status td_store_query(td_store *s, sqlite3_stmt **st, int *row, td_error *err, const char *sql,
                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    td_status rc = prepare_bind(s, st, err, sql, fmt, ap);
    va_end(ap);
    *row = 0;
    return rc ? rc : step_row(s, *st, row, err);
}

td_status td_store_run(td_store *s, td_error *err, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st = NULL;
    va_list ap;
    va_start(ap, fmt);
    td_status rc = prepare_bind(s, &st, err, sql, fmt, ap);
    va_end(ap);
    if (!rc) rc = step_done(s, st, err);
    unprepare(s, st);
    return rc;
}

td_status td_store_collect(td_store *s, sqlite3_stmt *st, int cap, const td_row_kind *k,
                           td_status (*read)(sqlite3_stmt *st, void *row, td_error *err),
                           void **rows, int *n, char *next, td_error *err)
{
    char *v = NULL; /* count rows of k->elem bytes, room for alloc */
    int count = 0, alloc = 0, row = 0;
    td_status rc;
    while (!(rc = step_row(s, st, &row, err)) && row && count < cap) {
        if (count == alloc) {
            int na = alloc ? 2 * alloc : 16;
            char *nv = realloc(v, k->elem * (size_t)na);
            if (!nv) {
                rc = td_fail(err, TD_ENOMEM, NULL, "out of memory listing %s", k->what);
                break;
            }
            v = nv, alloc = na;
        }
        if ((rc = read(st, v + k->elem * (size_t)count, err))) break;
        count++;
    }
    if (rc) {
        k->drop(v, count);
        return rc;
    }
    if (row && next) snprintf(next, TD_ID_MAX, "%s", v + k->elem * (size_t)(count - 1) + k->id);
    *rows = v;
    *n = count;
    return TD_OK;
}

void td_store_read_cols(sqlite3_stmt *st, void *row, const td_col *cols, int n)
{
    for (const td_col *c = cols; c < cols + n; c++) {
        char *f = (char *)row + c->off;
        if (c->kind == 't') {
            col_copy(st, c->col, f, c->size);
        } else if (c->kind == 's') {
            *(td_job_state *)f = td_store_row_state((const char *)sqlite3_column_text(st, c->col));
        } else if (c->kind == 'N' && sqlite3_column_type(st, c->col) == SQLITE_NULL) {
            *(int64_t *)f = -1;
        } else if (c->size == sizeof(int64_t)) {
            *(int64_t *)f = sqlite3_column_int64(st, c->col);
        } else {
            assert(c->size == sizeof(int));
            *(int *)f = sqlite3_column_int(st, c->col);
        }
    }
}
