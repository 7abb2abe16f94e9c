/* storetest.h — fixtures of the store suites (test_store.c, test_store_jobs.c): a fresh
 * temporary state directory per test, the store opened on it (SQLite, or PostgreSQL when a
 * *_pg suite set g_uri), status assertions that print the store's message, and small
 * datasets, jobs and epochs to put in it. */
#ifndef TRAIND_TESTS_STORETEST_H
#define TRAIND_TESTS_STORETEST_H

#include <check.h>
#include <string.h>

#include "store/store.h"

extern char g_dir[256]; /* the test's state directory (mk_tmpdir) */
extern char g_uri[512]; /* "" = SQLite; a *_pg suite's fixture sets a fresh database */
extern td_error g_err;  /* E: the error of the last EXPECT */

/* Asserts st == want, printing the store's message otherwise. */
#define EXPECT(want, expr)                                                                 \
    do {                                                                                   \
        memset(&g_err, 0, sizeof g_err);                                                   \
        td_status st_ = (expr);                                                            \
        ck_assert_msg(st_ == (want), "%s -> %s (%s), want %s", #expr, td_status_code(st_), \
                      g_err.message, td_status_code(want));                                \
    } while (0)
#define E (&g_err)

/* mkdtemp into g_dir; rm_tmpdir removes it, rm_dir any other directory, recursively. */
void mk_tmpdir(void);
void rm_tmpdir(void);
void rm_dir(const char *dir);
/* Checked fixture of the *_pg suites: a fresh PostgreSQL database into g_uri. */
void fresh_pg_db(void);

/* td_store_open_uri(g_dir, g_uri), asserted. */
td_store *open_store(void);
/* Entries of g_dir/sub whose name contains needle (NULL: all). */
int count_files(const char *sub, const char *needle);
/* XORs one byte of a file at off (to damage it). */
void flip_byte(const char *path, long off);

/* A dataset with every array: X (N, D), y (N, G), pairs (P, 2), pair_labels (P). */
typedef struct {
    float *X;
    int32_t *y, *pairs, *labels;
    float *Y;
    td_dataset ds;
} fixture_ds;

/* Fills f with seeded arrays: X (N, D), y (N, G) or with probs Y (N, G) of 1/G, and P
 * pairs; free_ds frees them. */
void make_ds(fixture_ds *f, int64_t N, int64_t D, int64_t G, int64_t P, int probs, unsigned seed);
void free_ds(fixture_ds *f);
/* A 4 x 3 dataset put into s; its meta into m. */
void put_small_ds(td_store *s, td_dataset_meta *m);
/* A softmax job of 10 epochs on ds (idempotency key when non-NULL); its id into id. */
void insert_job(td_store *s, const char *ds, const char *key, char id[TD_ID_MAX]);
/* One finished epoch written as the job manager writes it (jobs/jobs.c): the record (n
 * values, as many as the job's history columns) and the metrics (may be NULL) through
 * td_store_history_commit, a batch of one, unbounded; then, with ck (len bytes), a
 * checkpoint of that epoch through td_store_checkpoint_save. Stops at the first error. */
td_status commit_epoch(td_store *s, const char *id, int64_t epoch, const double *rec, int n,
                       const char *metrics, const void *ck, size_t len, td_error *err);

#endif
