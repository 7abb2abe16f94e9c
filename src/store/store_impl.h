/* store_impl.h — for the store's own files only (store_sweeps.c): the one connection of
 * store.c under its lock, and its error conventions (store.h). Not for other modules. */
#ifndef TRAIND_STORE_IMPL_H
#define TRAIND_STORE_IMPL_H

#include <sqlite3.h>

#include "store/store.h"
#include "store/store_rows.h"

/* Takes the store's lock and returns its connection; td_store_leave rolls back a
 * transaction left open (an error path) and unlocks. */
sqlite3 *td_store_enter(td_store *s);
void td_store_leave(td_store *s);
/* As store.c's helpers: failures are TD_EIO / TD_ENOSPACE with SQLite's message. A
 * statement of td_store_prepare comes from the connection's statement cache: give it back
 * with td_store_unprepare (NULL: nothing), never sqlite3_finalize. */
td_status td_store_prepare(td_store *s, sqlite3_stmt **st, const char *sql, td_error *err);
void td_store_unprepare(td_store *s, sqlite3_stmt *st);
td_status td_store_exec(td_store *s, const char *sql, td_error *err);
td_status td_store_step_row(td_store *s, sqlite3_stmt *st, int *row, td_error *err);
td_status td_store_step_done(td_store *s, sqlite3_stmt *st, td_error *err);

/* One statement's prepare, bind and step (store_query.c). fmt binds ?1, ?2, ... from the
 * arguments, one character a parameter: 's' text (const char *; NULL binds NULL), 'o' text
 * or NULL when NULL or "", 'i' int, 'I' int64_t, 'd' double.
 *   td_store_bind:  prepares sql into *st (giving back the one it held) and binds;
 *   td_store_query: td_store_bind, then steps: *row = 1 with a row (read it from *st), 0
 *                   at the end; give *st back with td_store_unprepare;
 *   td_store_run:   prepares, binds and steps a statement that returns no row, then
 *                   gives it back (sqlite3_changes still counts its rows). */
td_status td_store_bind(td_store *s, sqlite3_stmt **st, td_error *err, const char *sql,
                        const char *fmt, ...);
td_status td_store_query(td_store *s, sqlite3_stmt **st, int *row, td_error *err, const char *sql,
                         const char *fmt, ...);
td_status td_store_run(td_store *s, td_error *err, const char *sql, const char *fmt, ...);

/* Reads the current row of st into row by a column table (store_rows.h). */
void td_store_read_cols(sqlite3_stmt *st, void *row, const td_col *cols, int n);

/* Steps st and reads its rows, up to cap, into *rows (malloc'd, k's; NULL when none), *n
 * of them: read(st, row, err) fills one from st's current row (freeing what it took on a
 * failure). When st has a row past them, next (unless NULL) gets the last one's id. */
td_status td_store_collect(td_store *s, sqlite3_stmt *st, int cap, const td_row_kind *k,
                           td_status (*read)(sqlite3_stmt *st, void *row, td_error *err),
                           void **rows, int *n, char *next, td_error *err);

/* The PostgreSQL backend of a store opened with a URI (store_pg.h), else NULL. */
struct td_pg *td_store_pg(td_store *s);

/* At open (the lock held by the caller, td_store_open): creates the sweep tables and the
 * jobs' sweep columns when missing. Idempotent. */
td_status td_store_sweeps_migrate(td_store *s, td_error *err);

/* TD_ECONFLICT when job id is a trial of a sweep still queued or running (its sweep
 * decides from it: delete the sweep once it ends). Lock held by the caller. */
td_status td_store_job_in_active_sweep(td_store *s, const char *id, td_error *err);

#endif
