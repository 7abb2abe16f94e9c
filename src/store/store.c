/* store.c — SQLite rows + blob files under state_dir (API and layout in store.h).
 *
 * DESIGN
 * Threads: one SQLite connection (opened NOMUTEX) guarded by s->mu. Every public
 * function takes the mutex only around its SQL; big file I/O (dataset, checkpoint and
 * model blobs, up to hundreds of MB) runs outside it so HTTP threads are not blocked
 * behind a worker writing a checkpoint. Because all SQL goes through the one
 * connection under the mutex, a check and the write that depends on it (dataset in use
 * -> no delete, job terminal -> no delete, dataset exists -> insert job) cannot
 * interleave with another thread's writes; they also run in one BEGIN IMMEDIATE
 * transaction so a crash never leaves half of a multi-statement change.
 *
 * Durability: journal_mode=WAL with synchronous=FULL. With NORMAL, a WAL commit is not
 * fsynced, so an OS crash or power loss after a 202 could lose the job that was just
 * accepted (kill -9 alone could not; the page cache survives it). FULL fsyncs the WAL
 * on every commit: one fsync per job insert and per checkpoint. History is the
 * exception: td_store_history_commit writes a batch of epochs with synchronous=NORMAL
 * (no fsync), because only epochs after the last checkpoint can be lost that way, and
 * resume recomputes those (store.h, "batched, bounded history").
 * Group commit: a job's insert and its end must be durable when the call returns, but
 * need not hold the lock while the disk syncs. They commit with synchronous=NORMAL under
 * the lock, then, unlocked, wait for one fdatasync of the WAL that covers every commit
 * made so far (group_sync): concurrent inserts and ends share one sync instead of
 * queueing one each behind the lock. A job's start, live mark, history columns and
 * model reference commit relaxed without waiting: the WAL is written in order, so the
 * next durable commit (its end, a checkpoint) makes them durable with it; a power loss
 * before that leaves the job as its last durable commit had it (queued or running), and
 * it resumes. A process crash loses nothing: the page cache keeps NORMAL commits.
 *
 * Files vs rows: a file is written (atomically) before the row that refers to it and
 * removed after the row is gone, so a row never points to a missing file; a crash
 * can only leave unreferenced files, which td_store_open sweeps. Checkpoint files carry
 * their epoch in the name, so writing a new one never touches the recorded one: see
 * td_store_epoch_commit.
 *
 * Ids in paths: every id that reaches a file name is checked to be [a-z0-9_]+ first
 * (id_ok), so an id from a URL cannot escape state_dir.
 *
 * Hot reads (GET /v1/jobs/{id} under load): the job-by-key statements are prepared once
 * and kept (s->st_job_by[]), reset after each use, finalized by td_store_close; every
 * lookup is by primary key or a unique index. SQLite's global memory statistics are off
 * (SQLITE_CONFIG_MEMSTATUS): they cost a mutex per allocation and nothing reads them. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "store/blob.h"
#include "store/store_pg.h"
#include "store/dscache.h"
#include "store/store_impl.h"

struct td_store {
    pthread_mutex_t mu;
    sqlite3 *db;
    int lock_fd;
    char dir[PATH_MAX / 2];
    sqlite3_stmt *st_job_by[2];      /* SELECT a job by id / by idempotency key (kept) */
    char build_tag[TD_BLOB_TAG_MAX + 1]; /* written into checkpoints; "" = none */
    td_pg *pg;                       /* the PostgreSQL backend, or NULL: SQLite (db) */
    td_dscache *datasets;            /* loaded datasets, shared (dscache.h) */
    /* group commit (see "group commit" below): guarded by sync_mu, taken after mu */
    pthread_mutex_t sync_mu;
    pthread_cond_t sync_cv;
    uint64_t committed, synced;      /* tickets of relaxed commits made / made durable */
    int syncing;                     /* a thread is syncing the WAL for the group */
    int wal_fd;                      /* traind.db-wal, opened at the first group sync */
};

static const char *const STATE_NAMES[TD_JOB_NSTATES] = {
    "queued", "running", "succeeded", "failed", "cancelled"};
static const char *const TARGET_NAMES[] = {"none", "index", "grouped", "probs"};

/* Dataset file payload: this header {N, D, y_cols, Y_cols, P, pad, 0, 0}, pad zero bytes,
 * then X (N, D) f32, y (N, y_cols) i32, Y (N, Y_cols) f32, pairs (P, 2) i32, pair_labels
 * (P) i32, each absent when its count is 0. pad puts X at a file offset that is a multiple
 * of 64 (DS_PAD), so X is aligned in the shared read-only mapping that jobs read
 * (dscache.h); files written before the padding existed have pad 0 and are copied once
 * into aligned memory when loaded. */
#define DS_HDR_WORDS TD_DATASET_HDR_WORDS
#define DS_HDR_BYTES (DS_HDR_WORDS * sizeof(int64_t))
#define DS_ALIGN TD_DATASET_ALIGN
#define DS_PAD TD_DATASET_PAD

static const char *SCHEMA_SQL =
    "CREATE TABLE datasets("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT NOT NULL,"
    "  n_samples INTEGER NOT NULL,"
    "  n_features INTEGER NOT NULL,"
    "  n_classes INTEGER NOT NULL,"
    "  target TEXT NOT NULL,"
    "  label_cols INTEGER NOT NULL,"      /* y_cols (SQL names are case-insensitive) */
    "  prob_cols INTEGER NOT NULL,"       /* Y_cols */
    "  n_pairs INTEGER NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE jobs("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  model TEXT NOT NULL,"
    "  dataset TEXT NOT NULL,"
    "  validation TEXT,"
    "  state TEXT NOT NULL CHECK (state IN"
    "    ('queued','running','succeeded','failed','cancelled')),"
    "  hyperparameters TEXT NOT NULL,"
    "  created_at TEXT NOT NULL,"
    "  started_at TEXT,"
    "  finished_at TEXT,"
    "  error_code TEXT,"
    "  error_message TEXT,"
    "  restarts INTEGER NOT NULL DEFAULT 0,"
    "  epoch INTEGER NOT NULL DEFAULT 0,"
    "  epochs INTEGER NOT NULL DEFAULT 0,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  idempotency_key TEXT UNIQUE,"
    "  metrics TEXT,"
    "  checkpoint_epoch INTEGER,"         /* NULL: no checkpoint */
    "  model_params INTEGER,"             /* NULL: no model file */
    "  history_columns TEXT"              /* comma-separated names, NULL: not set */
    ") WITHOUT ROWID;"
    "CREATE INDEX jobs_state ON jobs(state, id);"
    "CREATE INDEX jobs_dataset ON jobs(dataset);"
    "CREATE INDEX jobs_validation ON jobs(validation);"
    "CREATE TABLE history("
    "  job_id TEXT NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  record BLOB NOT NULL,"             /* n_cols host-endian doubles, NaN kept */
    "  PRIMARY KEY (job_id, epoch)"
    ") WITHOUT ROWID;";

#define JOB_COLS                                                                          \
    "id, model, dataset, validation, state, hyperparameters, created_at, started_at, "   \
    "finished_at, error_code, error_message, restarts, epoch, epochs, cancel_requested, " \
    "idempotency_key, metrics, checkpoint_epoch, model_params IS NOT NULL, crashes, "     \
    "resumed_on_different_build, sweep, sweep_trial, stop_at_epoch, paused, "             \
    "stopped_early, classes, warnings"

#define DS_COLS                                                                          \
    "id, name, n_samples, n_features, n_classes, target, label_cols, prob_cols, n_pairs, " \
    "created_at, bytes"

/* ---- small helpers ------------------------------------------------------------------ */

static void enter(td_store *s)
{
    pthread_mutex_lock(&s->mu);
}

/* Rolls back a transaction left open by an error path, then unlocks. */
static void leave(td_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&s->mu);
}

/* SQLite's failure as TD_EIO, or TD_ENOSPACE when it was for lack of space: SQLITE_FULL
 * (a write of the WAL or the database), or an I/O error whose errno is ENOSPC or EDQUOT
 * (e.g. growing the -shm file). */
static td_status db_fail(td_store *s, td_error *err, const char *what)
{
    int ec = sqlite3_extended_errcode(s->db) & 0xff, en = sqlite3_system_errno(s->db);
    if (ec == SQLITE_IOERR && (en == ENOSPC || en == EDQUOT)) /* the message says "disk I/O" */
        return td_fail(err, TD_ENOSPACE, NULL, "sqlite (%s): %s (%s)", what,
                       sqlite3_errmsg(s->db), strerror(en));
    return td_fail(err, ec == SQLITE_FULL ? TD_ENOSPACE : TD_EIO, NULL, "sqlite (%s): %s", what,
                   sqlite3_errmsg(s->db));
}

/* Finalizes *st (if any) and prepares sql into it. */
static td_status prepare(td_store *s, sqlite3_stmt **st, const char *sql, td_error *err)
{
    sqlite3_finalize(*st);
    *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(s, err, "prepare");
    return TD_OK;
}

static td_status exec_sql(td_store *s, const char *sql, td_error *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(s, err, sql);
    return TD_OK;
}

/* Steps a statement that returns no row. */
static td_status step_done(td_store *s, sqlite3_stmt *st, td_error *err)
{
    int r = sqlite3_step(st);
    if (r != SQLITE_DONE)
        return db_fail(s, err, "step");
    return TD_OK;
}

/* Steps a query: *row = 1 with a row, 0 at the end. */
static td_status step_row(td_store *s, sqlite3_stmt *st, int *row, td_error *err)
{
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *row = 1;
        return TD_OK;
    }
    *row = 0;
    if (r != SQLITE_DONE)
        return db_fail(s, err, "step");
    return TD_OK;
}

/* Binds text, or NULL when v is NULL or "". */
static void bind_opt(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_str(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

/* Copies column i as text into out (size cap), "" when NULL. */
static void col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

/* strdup of column i, *out NULL when the column is NULL; -1 on allocation failure. */
static int col_dup(sqlite3_stmt *st, int i, char **out)
{
    *out = NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t)
        return 0;
    *out = strdup((const char *)t);
    return *out ? 0 : -1;
}

/* Ids that may become file names: [a-z0-9_]+, shorter than TD_ID_MAX. */
static int id_ok(const char *id)
{
    if (!id || !*id)
        return 0;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n < TD_ID_MAX;
}

static void path_of(char *out, size_t cap, const td_store *s, const char *sub, const char *id,
                    const char *suffix)
{
    snprintf(out, cap, "%s/%s/%s%s", s->dir, sub, id, suffix);
}

static void ckpt_path(char *out, size_t cap, const td_store *s, const char *job_id,
                      int64_t epoch)
{
    snprintf(out, cap, "%s/checkpoints/%s.%" PRId64 ".ckpt", s->dir, job_id, epoch);
}

static int state_from_text(const unsigned char *t)
{
    for (int i = 0; i < TD_JOB_NSTATES; i++)
        if (t && strcmp((const char *)t, STATE_NAMES[i]) == 0)
            return i;
    return -1;
}

/* ---- public small functions ---------------------------------------------------------- */

const char *td_job_state_name(td_job_state st)
{
    return st >= 0 && st < TD_JOB_NSTATES ? STATE_NAMES[st] : "unknown";
}

td_status td_job_state_parse(const char *name, td_job_state *out, td_error *err)
{
    int i = state_from_text((const unsigned char *)name);
    if (i < 0)
        return td_fail(err, TD_EINVAL, "state",
                       "unknown state \"%s\" (queued, running, succeeded, failed, cancelled)",
                       name ? name : "");
    *out = (td_job_state)i;
    return TD_OK;
}

int td_job_state_terminal(td_job_state st)
{
    return st == TD_JOB_SUCCEEDED || st == TD_JOB_FAILED || st == TD_JOB_CANCELLED;
}

const char *td_target_name(td_target_kind t)
{
    return t >= TD_TARGET_NONE && t <= TD_TARGET_PROBS ? TARGET_NAMES[t] : "none";
}

static td_target_kind target_from_text(const unsigned char *t)
{
    for (int i = 0; i <= TD_TARGET_PROBS; i++)
        if (t && strcmp((const char *)t, TARGET_NAMES[i]) == 0)
            return (td_target_kind)i;
    return TD_TARGET_NONE;
}

void td_store_now(char out[TD_TIME_MAX])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, TD_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, TD_TIME_MAX - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void td_store_new_id(char out[TD_ID_MAX], const char *prefix)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t last_us;
    struct timespec ts;
    uint64_t rnd = 0;

    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    pthread_mutex_lock(&mu);
    if (us <= last_us)
        us = last_us + 1;                 /* strictly increasing within the process */
    last_us = us;
    pthread_mutex_unlock(&mu);

    unsigned char *p = (unsigned char *)&rnd;
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(p + got, sizeof rnd - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* No getrandom (ancient kernel): the time part alone keeps ids unique in
             * this process; mix in the pid and address for across processes. */
            rnd ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL ^ (uintptr_t)&ts;
            break;
        }
        got += (size_t)r;
    }
    snprintf(out, TD_ID_MAX, "%.15s%013" PRIx64 "%011" PRIx64, prefix ? prefix : "",
             us & ((UINT64_C(1) << 52) - 1), rnd & ((UINT64_C(1) << 44) - 1));
}

/* ---- open / close ----------------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    if (stat(tmp, &sb) != 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Removes the files of one subdirectory that no row refers to (see DESIGN). Called
 * from td_store_open with the lock held and nothing else running. */
static td_status sweep_dir(td_store *s, const char *sub, td_error *err)
{
    td_status rc = TD_OK;
    char dirpath[PATH_MAX], path[PATH_MAX + 256], id[TD_ID_MAX];
    sqlite3_stmt *st = NULL;
    DIR *d = NULL;
    int is_ds = strcmp(sub, "datasets") == 0, is_ckpt = strcmp(sub, "checkpoints") == 0;

    snprintf(dirpath, sizeof dirpath, "%s/%s", s->dir, sub);
    rc = prepare(s, &st,
                 is_ds     ? "SELECT 1 FROM datasets WHERE id = ?1"
                 : is_ckpt ? "SELECT checkpoint_epoch FROM jobs WHERE id = ?1"
                           : "SELECT model_params IS NOT NULL FROM jobs WHERE id = ?1",
                 err);
    if (rc)
        goto cleanup;
    d = opendir(dirpath);
    if (!d) {
        rc = td_fail(err, TD_EIO, NULL, "opendir %s: %s", dirpath, strerror(errno));
        goto cleanup;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dirpath, name);
        if (td_blob_is_temp(name)) {
            unlink(path);
            continue;
        }
        /* "<id>.bin" or "<job>.<epoch>.ckpt" */
        const char *dot = strchr(name, '.');
        size_t idlen = dot ? (size_t)(dot - name) : 0;
        if (!dot || idlen == 0 || idlen >= sizeof id)
            continue;
        memcpy(id, name, idlen);
        id[idlen] = '\0';
        int64_t epoch = -1;
        if (is_ckpt) {
            char *end;
            errno = 0;
            long long e = strtoll(dot + 1, &end, 10);
            if (errno || end == dot + 1 || strcmp(end, ".ckpt") != 0)
                continue;
            epoch = e;
        } else if (strcmp(dot, ".bin") != 0) {
            continue;
        }
        sqlite3_reset(st);
        bind_str(st, 1, id);
        int row;
        rc = step_row(s, st, &row, err);
        if (rc)
            goto cleanup;
        int keep = row && (is_ds ? 1
                           : is_ckpt ? sqlite3_column_type(st, 0) != SQLITE_NULL &&
                                           sqlite3_column_int64(st, 0) == epoch
                                     : sqlite3_column_int(st, 0) != 0);
        if (!keep)
            unlink(path);
    }
cleanup:
    if (d)
        closedir(d);
    sqlite3_finalize(st);
    return rc;
}

static void sweep_history(td_store *s); /* with td_store_job_delete, below */

/* A PostgreSQL store's open: removes the temp files a crash left in the dataset cache
 * (cached files themselves stay valid: ids are never reused). */
static void sweep_cache_temps(td_store *s)
{
    char dirpath[PATH_MAX], path[PATH_MAX + 256];
    snprintf(dirpath, sizeof dirpath, "%s/datasets", s->dir);
    DIR *d = opendir(dirpath);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (td_blob_is_temp(de->d_name)) {
            snprintf(path, sizeof path, "%s/%s", dirpath, de->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
}

/* Columns added after schema version 1 (issue 10): every database gets those it lacks
 * at open, a new one right after SCHEMA_SQL, an older one in place (ALTER TABLE ADD
 * COLUMN with a default: no table rewrite), so the migration is idempotent and needs no
 * version bump. */
static const struct {
    const char *table, *name, *decl;
} ADDED_COLUMNS[] = {
    /* 1 while a worker of the open daemon holds the job; found 1 at the next open, the
     * daemon died while running it */
    {"jobs", "live", "INTEGER NOT NULL DEFAULT 0"},
    /* deaths of the daemon while running the job (td_store_job_reap_crashed) */
    {"jobs", "crashes", "INTEGER NOT NULL DEFAULT 0"},
    /* 1 once the job resumed from a checkpoint written by a differently built binary */
    {"jobs", "resumed_on_different_build", "INTEGER NOT NULL DEFAULT 0"},
    /* issue 16: class names (a JSON array of strings) of a dataset whose y was given as
     * names, copied to its jobs when they are created (the model keeps them even once
     * the dataset is deleted); a CSV header's feature column names. NULL: none. */
    {"datasets", "classes", "TEXT"},
    {"datasets", "columns", "TEXT"},
    {"jobs", "classes", "TEXT"},
    /* JSON array of the finished run's {code, message} warnings; NULL: none recorded */
    {"jobs", "warnings", "TEXT"},
};

static td_status add_missing_columns(td_store *s, td_error *err)
{
    td_status rc = TD_OK;
    for (size_t i = 0; i < sizeof ADDED_COLUMNS / sizeof *ADDED_COLUMNS && !rc; i++) {
        sqlite3_stmt *st = NULL;
        int row;
        rc = prepare(s, &st, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", err);
        if (!rc) {
            bind_str(st, 1, ADDED_COLUMNS[i].table);
            bind_str(st, 2, ADDED_COLUMNS[i].name);
            rc = step_row(s, st, &row, err);
        }
        sqlite3_finalize(st);
        if (!rc && !row) {
            char sql[160];
            snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s %s", ADDED_COLUMNS[i].table,
                     ADDED_COLUMNS[i].name, ADDED_COLUMNS[i].decl);
            rc = exec_sql(s, sql, err);
        }
    }
    return rc;
}

static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); /* SQLITE_MISUSE if already initialized */
}

td_status td_store_open(td_store **out, const char *state_dir, td_error *err)
{
    return td_store_open_uri(out, state_dir, NULL, err);
}

int td_store_shared(const td_store *s)
{
    return s->pg != NULL;
}

void td_store_set_node(td_store *s, const char *node, double lease_s)
{
    if (s->pg)
        td_pg_set_node(s->pg, node, lease_s);
}

td_status td_store_open_uri(td_store **out, const char *state_dir, const char *uri,
                            td_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    td_status rc = TD_OK;
    td_store *s = NULL;
    sqlite3_stmt *st = NULL;
    char path[PATH_MAX];
    static const char *const SUBDIRS[] = {"datasets", "checkpoints", "models"};

    *out = NULL;
    if (!state_dir || !*state_dir || strlen(state_dir) >= sizeof s->dir) {
        rc = td_fail(err, TD_EINVAL, "state_dir", "state directory path is empty or too long");
        goto cleanup;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory opening the store");
        goto cleanup;
    }
    s->lock_fd = -1;
    s->wal_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    if (!(s->datasets = td_dscache_create())) {
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory opening the store");
        goto cleanup;
    }
    pthread_mutex_init(&s->sync_mu, NULL);
    pthread_cond_init(&s->sync_cv, NULL);
    snprintf(s->dir, sizeof s->dir, "%s", state_dir);
    size_t dl = strlen(s->dir);
    while (dl > 1 && s->dir[dl - 1] == '/')
        s->dir[--dl] = '\0';

    if (mkdir_p(s->dir, 0750) != 0) {
        rc = td_fail(err, TD_EIO, "state_dir", "cannot create state directory %s: %s", s->dir,
                     strerror(errno));
        goto cleanup;
    }
    for (size_t i = 0; i < sizeof SUBDIRS / sizeof *SUBDIRS; i++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, SUBDIRS[i]);
        if (mkdir_p(path, 0750) != 0) {
            rc = td_fail(err, TD_EIO, "state_dir", "cannot create %s: %s", path,
                         strerror(errno));
            goto cleanup;
        }
    }
    snprintf(path, sizeof path, "%s/lock", s->dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s->lock_fd < 0) {
        rc = td_fail(err, TD_EIO, "state_dir", "cannot open %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = td_fail(err, errno == EWOULDBLOCK ? TD_ECONFLICT : TD_EIO, "state_dir",
                     "state directory %s is in use by another traind (lock %s: %s)", s->dir,
                     path, strerror(errno));
        goto cleanup;
    }
    if (uri && *uri) { /* PostgreSQL: state_dir is the lock and the dataset cache */
        if ((rc = td_pg_open(&s->pg, uri, s->dir, s->build_tag, err)))
            goto cleanup;
        sweep_cache_temps(s);
        *out = s;
        s = NULL;
        goto cleanup;
    }

    snprintf(path, sizeof path, "%s/traind.db", s->dir);
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = td_fail(err, TD_EIO, "state_dir", "cannot open %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto cleanup;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    rc = prepare(s, &st, "PRAGMA journal_mode=WAL", err);
    if (rc)
        goto cleanup;
    int row;
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    const unsigned char *mode = row ? sqlite3_column_text(st, 0) : NULL;
    if (!mode || strcmp((const char *)mode, "wal") != 0) {
        rc = td_fail(err, TD_EIO, "state_dir", "%s: cannot switch to WAL journal mode", path);
        goto cleanup;
    }
    /* FULL: see DESIGN (a job must survive a power loss once its 202 has gone out). */
    rc = exec_sql(s, "PRAGMA synchronous=FULL", err);
    if (rc)
        goto cleanup;

    rc = prepare(s, &st, "PRAGMA user_version", err);
    if (rc)
        goto cleanup;
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    int version = row ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    st = NULL;
    if (version == 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d", TD_STORE_SCHEMA);
        if ((rc = exec_sql(s, "BEGIN IMMEDIATE", err)) || (rc = exec_sql(s, SCHEMA_SQL, err)) ||
            (rc = exec_sql(s, sql, err)) || (rc = exec_sql(s, "COMMIT", err))) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            goto cleanup;
        }
    } else if (version != TD_STORE_SCHEMA) {
        rc = td_fail(err, TD_EIO, "state_dir",
                     "%s has schema version %d; this traind knows version %d", path, version,
                     TD_STORE_SCHEMA);
        goto cleanup;
    }
    if ((rc = add_missing_columns(s, err)) || (rc = td_store_sweeps_migrate(s, err)))
        goto cleanup;
    for (size_t i = 0; i < sizeof SUBDIRS / sizeof *SUBDIRS; i++)
        if ((rc = sweep_dir(s, SUBDIRS[i], err)))
            goto cleanup;
    sweep_history(s);
    *out = s;
    s = NULL;
cleanup:
    sqlite3_finalize(st);
    td_store_close(s);
    return rc;
}

void td_store_close(td_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < 2; i++)
        sqlite3_finalize(s->st_job_by[i]);
    td_pg_close(s->pg);
    if (s->db)
        sqlite3_close(s->db);     /* all other statements are finalized by every function */
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd);        /* releases the flock */
    pthread_mutex_destroy(&s->mu);
    td_dscache_destroy(s->datasets);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_cond_destroy(&s->sync_cv);
    free(s);
}

/* ---- group commit (see DESIGN) ------------------------------------------------------- */

/* Makes the next commits relaxed (synchronous=NORMAL: no fsync). Caller holds mu, outside
 * a transaction, and calls unrelax before it leaves. */
static td_status relax(td_store *s, td_error *err)
{
    return exec_sql(s, "PRAGMA synchronous=NORMAL", err);
}

static void unrelax(td_store *s)
{
    sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
}

/* The ticket of a relaxed commit just made, for group_sync. Caller holds mu. */
static uint64_t commit_ticket(td_store *s)
{
    pthread_mutex_lock(&s->sync_mu);
    uint64_t t = ++s->committed;
    pthread_mutex_unlock(&s->sync_mu);
    return t;
}

/* Returns once the commit with this ticket is durable: a thread finding no sync under way
 * syncs the WAL for every commit ticketed so far; the others wait for it. An fdatasync of
 * the WAL file is what synchronous=FULL does at a commit (SQLite syncs the WAL itself
 * before it checkpoints, so a commit already copied into the database is durable too).
 * Caller does not hold mu. */
static td_status group_sync(td_store *s, uint64_t ticket, td_error *err)
{
    td_status rc = TD_OK;
    pthread_mutex_lock(&s->sync_mu);
    while (s->synced < ticket && rc == TD_OK) {
        if (s->syncing) {
            pthread_cond_wait(&s->sync_cv, &s->sync_mu);
            continue;
        }
        s->syncing = 1;
        uint64_t target = s->committed;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/traind.db-wal", s->dir);
        if (s->wal_fd < 0)
            s->wal_fd = open(path, O_RDONLY | O_CLOEXEC);
        int fd = s->wal_fd, e = 0;
        pthread_mutex_unlock(&s->sync_mu);
        if (fd < 0 || fdatasync(fd) != 0)
            e = errno ? errno : EIO;
        pthread_mutex_lock(&s->sync_mu);
        s->syncing = 0;
        if (!e && target > s->synced)
            s->synced = target;
        pthread_cond_broadcast(&s->sync_cv);
        if (e)
            rc = td_fail(err, e == ENOSPC || e == EDQUOT ? TD_ENOSPACE : TD_EIO, NULL,
                         "cannot sync %s: %s", path, strerror(e));
    }
    pthread_mutex_unlock(&s->sync_mu);
    return rc;
}

/* ---- datasets ----------------------------------------------------------------------- */

static void read_ds_meta(sqlite3_stmt *st, td_dataset_meta *m)
{
    memset(m, 0, sizeof *m);
    col_copy(st, 0, m->id, sizeof m->id);
    col_copy(st, 1, m->name, sizeof m->name);
    m->N = sqlite3_column_int64(st, 2);
    m->D = sqlite3_column_int64(st, 3);
    m->n_classes = sqlite3_column_int64(st, 4);
    m->target = target_from_text(sqlite3_column_text(st, 5));
    m->y_cols = sqlite3_column_int64(st, 6);
    m->Y_cols = sqlite3_column_int64(st, 7);
    m->P = sqlite3_column_int64(st, 8);
    col_copy(st, 9, m->created_at, sizeof m->created_at);
    m->bytes = sqlite3_column_int64(st, 10);
}

/* Byte sizes of the five arrays; -1 when ds is inconsistent or too large (with the
 * header and DS_PAD bytes of padding). */
static int ds_sizes(const td_dataset *ds, size_t sz[5])
{
    int64_t counts[5] = {0};
    int64_t yc = ds->y ? ds->y_cols : 0, Yc = ds->Y ? ds->Y_cols : 0;
    if (__builtin_mul_overflow(ds->N, ds->D, &counts[0]) ||
        __builtin_mul_overflow(ds->N, yc, &counts[1]) ||
        __builtin_mul_overflow(ds->N, Yc, &counts[2]) ||
        __builtin_mul_overflow(ds->P, (int64_t)2, &counts[3]))
        return -1;
    counts[4] = ds->P;
    size_t total = DS_HDR_BYTES + DS_PAD;
    for (int i = 0; i < 5; i++) {
        if (counts[i] < 0 || __builtin_mul_overflow((size_t)counts[i], (size_t)4, &sz[i]) ||
            __builtin_add_overflow(total, sz[i], &total) || total > (size_t)INT64_MAX / 2)
            return -1;
    }
    return 0;
}

td_status td_store_dataset_put(td_store *s, const td_dataset *ds, const char *name,
                               td_dataset_meta *out, td_error *err)
{
    td_status rc = TD_OK;
    int written = 0;
    char path[PATH_MAX];
    td_dataset_meta m;
    size_t sz[5];

    memset(&m, 0, sizeof m);
    if (!ds || ds->N < 1 || ds->D < 1 || !ds->X) {
        rc = td_fail(err, TD_EINVAL, "X", "a dataset needs X with N >= 1 rows and D >= 1 columns");
        goto cleanup;
    }
    if (ds->y && ds->Y) {
        rc = td_fail(err, TD_EINVAL, "Y", "give either y or Y, not both");
        goto cleanup;
    }
    if ((ds->y && ds->y_cols < 1) || (ds->Y && ds->Y_cols < 1)) {
        rc = td_fail(err, TD_EINVAL, ds->y ? "y" : "Y", "target has no columns");
        goto cleanup;
    }
    if (ds->P < 0 || (ds->P > 0 && (!ds->pairs || !ds->pair_labels))) {
        rc = td_fail(err, TD_EINVAL, "pairs", "pairs and pair_labels must both be given");
        goto cleanup;
    }
    if (name && strlen(name) >= TD_NAME_MAX) {
        rc = td_fail(err, TD_EINVAL, "name", "name is longer than %d bytes", TD_NAME_MAX - 1);
        goto cleanup;
    }
    if (ds_sizes(ds, sz) != 0) {
        rc = td_fail(err, TD_EINVAL, "X", "dataset dimensions are too large");
        goto cleanup;
    }

    td_store_dataset_meta_fill(&m, ds, name);

    int64_t hdr[DS_HDR_WORDS] = {m.N, m.D, m.y_cols, m.Y_cols, m.P, DS_PAD, 0, 0};
    static const char pad[DS_ALIGN];
    td_blob_seg segs[7] = {{hdr, sizeof hdr}, {pad, DS_PAD},      {ds->X, sz[0]},
                           {ds->y, sz[1]},    {ds->Y, sz[2]},     {ds->pairs, sz[3]},
                           {ds->pair_labels, sz[4]}};
    m.bytes = TD_BLOB_HEADER;
    for (int i = 0; i < 7; i++)
        m.bytes += (int64_t)segs[i].len;
    path_of(path, sizeof path, s, "datasets", m.id, ".bin");
    rc = td_blob_write(path, TD_BLOB_DATASET, 0, segs, 7, err);
    if (rc)
        goto cleanup;
    written = 1;

    rc = td_store_dataset_insert(s, &m, err);
    if (rc)
        goto cleanup;
    written = 0;                  /* the row now owns the file */
    if (out)
        *out = m;
cleanup:
    if (written)
        unlink(path);
    return rc;
}

void td_store_dataset_meta_fill(td_dataset_meta *m, const td_dataset *ds, const char *name)
{
    memset(m, 0, sizeof *m);
    m->N = ds->N, m->D = ds->D;
    m->y_cols = ds->y ? ds->y_cols : 0;
    m->Y_cols = ds->Y ? ds->Y_cols : 0;
    m->P = ds->P;
    if (ds->y) {
        int32_t mx = -1;
        for (int64_t i = 0; i < ds->N * ds->y_cols; i++)
            mx = ds->y[i] > mx ? ds->y[i] : mx;
        m->target = ds->y_cols > 1 ? TD_TARGET_GROUPED : TD_TARGET_INDEX;
        m->n_classes = (int64_t)mx + 1;
    } else if (ds->Y) {
        m->target = TD_TARGET_PROBS;
        m->n_classes = ds->Y_cols;
    }
    snprintf(m->name, sizeof m->name, "%s", name ? name : "");
    td_store_new_id(m->id, "ds_");
    td_store_now(m->created_at);
}

void td_store_dataset_path(const td_store *s, const char *id, char *out, size_t cap)
{
    path_of(out, cap, s, "datasets", id, ".bin");
}

td_status td_store_dataset_insert(td_store *s, const td_dataset_meta *m, td_error *err)
{
    if (s->pg)
        return td_pg_dataset_insert(s->pg, m, err);
    sqlite3_stmt *st = NULL;
    enter(s);
    td_status rc = prepare(s, &st, "INSERT INTO datasets (" DS_COLS ") VALUES "
                           "(?,?,?,?,?,?,?,?,?,?,?)", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, m->id);
    bind_str(st, 2, m->name);
    sqlite3_bind_int64(st, 3, m->N);
    sqlite3_bind_int64(st, 4, m->D);
    sqlite3_bind_int64(st, 5, m->n_classes);
    bind_str(st, 6, td_target_name(m->target));
    sqlite3_bind_int64(st, 7, m->y_cols);
    sqlite3_bind_int64(st, 8, m->Y_cols);
    sqlite3_bind_int64(st, 9, m->P);
    bind_str(st, 10, m->created_at);
    sqlite3_bind_int64(st, 11, m->bytes);
    rc = step_done(s, st, err);
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

/* Reads one dataset row; caller holds the lock. */
static td_status ds_get_locked(td_store *s, const char *id, td_dataset_meta *out, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    if (!id_ok(id)) {
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id ? id : "");
        goto cleanup;
    }
    rc = prepare(s, &st, "SELECT " DS_COLS " FROM datasets WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id);
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    if (!row) {
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
        goto cleanup;
    }
    read_ds_meta(st, out);
cleanup:
    sqlite3_finalize(st);
    return rc;
}

td_status td_store_dataset_names_set(td_store *s, const char *id, const char *classes,
                                     const char *columns, td_error *err)
{
    if (s->pg)
        return td_pg_dataset_names_set(s->pg, id, classes, columns, err);
    sqlite3_stmt *st = NULL;
    enter(s);
    td_status rc = prepare(s, &st, "UPDATE datasets SET classes = ?2, columns = ?3 "
                           "WHERE id = ?1", err);
    if (!rc) {
        bind_str(st, 1, id);
        bind_opt(st, 2, classes);
        bind_opt(st, 3, columns);
        rc = step_done(s, st, err);
    }
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

td_status td_store_dataset_names(td_store *s, const char *id, char **classes, char **columns,
                                 td_error *err)
{
    sqlite3_stmt *st = NULL;
    int row = 0;
    *classes = *columns = NULL;
    if (s->pg)
        return td_pg_dataset_names(s->pg, id, classes, columns, err);
    enter(s);
    td_status rc = prepare(s, &st, "SELECT classes, columns FROM datasets WHERE id = ?1", err);
    if (!rc) {
        bind_str(st, 1, id);
        rc = step_row(s, st, &row, err);
    }
    if (!rc && !row)
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
    if (!rc && (col_dup(st, 0, classes) || col_dup(st, 1, columns))) {
        free(*classes);
        *classes = NULL;
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory");
    }
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

td_status td_store_dataset_get(td_store *s, const char *id, td_dataset_meta *out,
                               td_error *err)
{
    if (s->pg)
        return td_pg_dataset_get(s->pg, id, out, err);
    enter(s);
    td_status rc = ds_get_locked(s, id, out, err);
    leave(s);
    return rc;
}

td_status td_store_dataset_list(td_store *s, int limit, const char *after,
                                td_dataset_meta **rows, int *n, char next[TD_ID_MAX],
                                td_error *err)
{
    if (s->pg)
        return td_pg_dataset_list(s->pg, limit, after, rows, n, next, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    td_dataset_meta *v = NULL;
    int count = 0, locked = 0;
    char cursor[TD_ID_MAX];

    snprintf(cursor, sizeof cursor, "%s", after ? after : "");   /* after may alias next */
    *rows = NULL;
    *n = 0;
    next[0] = '\0';
    if (limit < 1) {
        rc = td_fail(err, TD_EINVAL, "limit", "limit must be >= 1, got %d", limit);
        goto cleanup;
    }
    v = malloc(sizeof *v * ((size_t)limit + 1));
    if (!v) {
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory listing datasets");
        goto cleanup;
    }
    enter(s);
    locked = 1;
    /* one statement per shape, so that each is a primary-key range, never a scan */
    rc = prepare(s, &st,
                 cursor[0] ? "SELECT " DS_COLS " FROM datasets WHERE id < ?1 "
                             "ORDER BY id DESC LIMIT ?2"
                           : "SELECT " DS_COLS " FROM datasets ORDER BY id DESC LIMIT ?2",
                 err);
    if (rc)
        goto cleanup;
    bind_opt(st, 1, cursor);
    sqlite3_bind_int64(st, 2, (int64_t)limit + 1);
    for (;;) {
        int row;
        rc = step_row(s, st, &row, err);
        if (rc)
            goto cleanup;
        if (!row)
            break;
        read_ds_meta(st, &v[count++]);
    }
    if (count > limit) {
        count = limit;
        snprintf(next, TD_ID_MAX, "%s", v[limit - 1].id);
    }
    *rows = v;
    *n = count;
    v = NULL;
cleanup:
    sqlite3_finalize(st);
    if (locked)
        leave(s);
    free(v);
    return rc;
}

void td_stored_dataset_fini(td_stored_dataset *sd)
{
    if (!sd)
        return;
    td_dscache_release(sd->handle);
    memset(sd, 0, sizeof *sd);
}

/* The padding a dataset payload declares (word 5 of its header): 0 in files written
 * before it existed; anything but 0 or DS_PAD is a bad file (the shape check says so). */
static size_t ds_pad_of(const void *payload, size_t len)
{
    int64_t pad = 0;
    if (len >= DS_HDR_BYTES)
        memcpy(&pad, (const char *)payload + 5 * sizeof(int64_t), sizeof pad);
    return pad == (int64_t)DS_PAD ? DS_PAD : 0;
}

/* Where X starts in a payload (what dscache aligns). */
static size_t ds_x_offset(const void *payload, size_t len)
{
    return DS_HDR_BYTES + ds_pad_of(payload, len);
}

td_status td_store_dataset_load(td_store *s, const char *id, td_stored_dataset *out,
                                td_error *err)
{
    td_status rc = TD_OK;
    char path[PATH_MAX];
    const void *buf = NULL;
    size_t len = 0;
    td_dscache_entry *handle = NULL;

    memset(out, 0, sizeof *out);
    if (!id_ok(id)) {
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id ? id : "");
        goto cleanup;
    }
    path_of(path, sizeof path, s, "datasets", id, ".bin");
    if (s->pg) { /* the row, and the file in the local cache (fetched when absent) */
        rc = td_pg_dataset_fetch(s->pg, id, path, &out->meta, err);
    } else {
        enter(s);
        rc = ds_get_locked(s, id, &out->meta, err);
        leave(s);
    }
    if (rc)
        goto cleanup;
    rc = td_dscache_acquire(s->datasets, id, path, ds_x_offset, &handle, &buf, &len, err);
    if (rc == TD_ENOTFOUND && s->pg) {
        rc = td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
    } else if (rc == TD_ENOTFOUND) {
        /* Deleted meanwhile (not found), or the row lost its file (corruption). */
        td_dataset_meta again;
        enter(s);
        rc = ds_get_locked(s, id, &again, NULL);
        leave(s);
        rc = rc == TD_OK ? td_fail(err, TD_EIO, NULL, "%s: data file missing", path)
                         : td_fail(err, TD_ENOTFOUND, "dataset", "dataset %s not found", id);
        goto cleanup;
    }
    if (rc)
        goto cleanup;

    const td_dataset_meta *m = &out->meta;
    int64_t hdr[DS_HDR_WORDS];
    td_dataset d = {.N = m->N, .D = m->D, .y_cols = m->y_cols, .Y_cols = m->Y_cols, .P = m->P};
    size_t sz[5], total = DS_HDR_BYTES;
    /* Non-NULL placeholders so ds_sizes counts the arrays the metadata says exist. */
    d.y = m->y_cols ? (const int32_t *)buf : NULL;
    d.Y = m->Y_cols ? (const float *)buf : NULL;
    if (len < DS_HDR_BYTES || ds_sizes(&d, sz) != 0) {
        rc = td_fail(err, TD_EIO, NULL, "%s: does not match dataset %s", path, id);
        goto cleanup;
    }
    memcpy(hdr, buf, sizeof hdr);
    size_t pad = ds_pad_of(buf, len);
    total += pad;
    for (int i = 0; i < 5; i++)
        total += sz[i];
    if (hdr[0] != m->N || hdr[1] != m->D || hdr[2] != m->y_cols || hdr[3] != m->Y_cols ||
        hdr[4] != m->P || hdr[5] != (int64_t)pad || total != len) {
        rc = td_fail(err, TD_EIO, NULL, "%s: shape does not match dataset %s", path, id);
        goto cleanup;
    }
    const char *p = (const char *)buf + DS_HDR_BYTES + pad;
    d.X = (const float *)p;
    p += sz[0];
    d.y = sz[1] ? (const int32_t *)p : NULL;
    p += sz[1];
    d.Y = sz[2] ? (const float *)p : NULL;
    p += sz[2];
    d.pairs = sz[3] ? (const int32_t *)p : NULL;
    p += sz[3];
    d.pair_labels = sz[4] ? (const int32_t *)p : NULL;
    out->ds = d;
    out->handle = handle;
    handle = NULL;
cleanup:
    td_dscache_release(handle);
    return rc;
}

void td_store_dataset_cache_stats(td_store *s, td_dscache_stats *out)
{
    td_dscache_stats_get(s->datasets, out);
}

static td_status in_use_locked(td_store *s, const char *id, int *in_use, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    rc = prepare(s, &st,
                 "SELECT EXISTS (SELECT 1 FROM jobs WHERE (dataset = ?1 OR validation = ?1) "
                 "AND state IN ('queued', 'running')) OR EXISTS (SELECT 1 FROM sweeps WHERE "
                 "(dataset = ?1 OR validation = ?1) AND state IN ('queued', 'running'))",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id);
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    *in_use = row && sqlite3_column_int(st, 0);
cleanup:
    sqlite3_finalize(st);
    return rc;
}

td_status td_store_dataset_in_use(td_store *s, const char *id, int *in_use, td_error *err)
{
    if (s->pg)
        return td_pg_dataset_in_use(s->pg, id, in_use, err);
    *in_use = 0;
    enter(s);
    td_status rc = in_use_locked(s, id ? id : "", in_use, err);
    leave(s);
    return rc;
}

td_status td_store_dataset_delete(td_store *s, const char *id, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char path[PATH_MAX];
    if (s->pg && (rc = td_pg_dataset_delete(s->pg, id, err)) == TD_OK) {
        td_dscache_forget(s->datasets, id); /* as below: the rows went, then the cache */
        path_of(path, sizeof path, s, "datasets", id, ".bin");
        unlink(path); /* this daemon's copy; others keep a file no id will name again */
    }
    if (s->pg)
        return rc;
    td_dataset_meta m;
    int in_use = 0, deleted = 0;

    enter(s);
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = ds_get_locked(s, id, &m, err);
    if (rc)
        goto cleanup;
    rc = in_use_locked(s, id, &in_use, err);
    if (rc)
        goto cleanup;
    if (in_use) {
        rc = td_fail(err, TD_ECONFLICT, "dataset",
                     "dataset %s is used by a queued or running job", id);
        goto cleanup;
    }
    rc = prepare(s, &st, "DELETE FROM datasets WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
    if (rc)
        goto cleanup;
    deleted = 1;
cleanup:
    sqlite3_finalize(st);
    leave(s);
    if (deleted) {
        td_dscache_forget(s->datasets, id); /* its holders keep reading the mapping */
        path_of(path, sizeof path, s, "datasets", id, ".bin");
        unlink(path);             /* a failure leaves an orphan the next open sweeps */
    }
    return rc;
}

/* ---- jobs --------------------------------------------------------------------------- */

void td_job_row_fini(td_job_row *row)
{
    if (!row)
        return;
    free(row->hyperparameters);
    free(row->metrics);
    free(row->classes);
    free(row->warnings);
    row->hyperparameters = NULL;
    row->metrics = NULL;
    row->classes = NULL;
    row->warnings = NULL;
}

void td_job_rows_free(td_job_row *rows, int n)
{
    if (!rows)
        return;
    for (int i = 0; i < n; i++)
        td_job_row_fini(&rows[i]);
    free(rows);
}

/* Fills r from a JOB_COLS row; TD_ENOMEM if a JSON copy fails (r is then fini'd). */
static td_status read_job(sqlite3_stmt *st, td_job_row *r, td_error *err)
{
    memset(r, 0, sizeof *r);
    col_copy(st, 0, r->id, sizeof r->id);
    col_copy(st, 1, r->model, sizeof r->model);
    col_copy(st, 2, r->dataset, sizeof r->dataset);
    col_copy(st, 3, r->validation, sizeof r->validation);
    int state = state_from_text(sqlite3_column_text(st, 4));
    r->state = state < 0 ? TD_JOB_FAILED : (td_job_state)state;
    col_copy(st, 6, r->created_at, sizeof r->created_at);
    col_copy(st, 7, r->started_at, sizeof r->started_at);
    col_copy(st, 8, r->finished_at, sizeof r->finished_at);
    col_copy(st, 9, r->error_code, sizeof r->error_code);
    col_copy(st, 10, r->error_message, sizeof r->error_message);
    r->restarts = sqlite3_column_int64(st, 11);
    r->epoch = sqlite3_column_int64(st, 12);
    r->epochs = sqlite3_column_int64(st, 13);
    r->cancel_requested = sqlite3_column_int(st, 14);
    col_copy(st, 15, r->idempotency_key, sizeof r->idempotency_key);
    r->checkpoint_epoch =
        sqlite3_column_type(st, 17) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 17);
    r->has_model = sqlite3_column_int(st, 18);
    r->crashes = sqlite3_column_int64(st, 19);
    r->resumed_on_different_build = sqlite3_column_int(st, 20);
    col_copy(st, 21, r->sweep, sizeof r->sweep);
    r->sweep_trial =
        sqlite3_column_type(st, 22) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 22);
    r->stop_at_epoch = sqlite3_column_int64(st, 23); /* NULL: 0 */
    r->paused = sqlite3_column_int(st, 24);
    r->stopped_early = sqlite3_column_int(st, 25);
    if (col_dup(st, 5, &r->hyperparameters) != 0 || col_dup(st, 16, &r->metrics) != 0 ||
        col_dup(st, 26, &r->classes) != 0 || col_dup(st, 27, &r->warnings) != 0) {
        td_job_row_fini(r);
        return td_fail(err, TD_ENOMEM, NULL, "out of memory reading job %s", r->id);
    }
    return TD_OK;
}

/* One job by "id" or "idempotency_key"; caller holds the lock. */
static td_status job_get_locked(td_store *s, const char *col, const char *key, td_job_row *out,
                                td_error *err)
{
    td_status rc = TD_OK;
    int by_id = strcmp(col, "id") == 0;
    sqlite3_stmt *st = s->st_job_by[!by_id];
    int row = 0;

    if (!st) { /* prepared once, kept for every later call */
        const char *sql = by_id ? "SELECT " JOB_COLS " FROM jobs WHERE id = ?1"
                                : "SELECT " JOB_COLS " FROM jobs WHERE idempotency_key = ?1";
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
            return db_fail(s, err, "prepare");
        s->st_job_by[!by_id] = st;
    }
    bind_str(st, 1, key ? key : "");
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    if (!row) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s%s not found",
                     strcmp(col, "id") == 0 ? "" : "with idempotency key ", key ? key : "");
        goto cleanup;
    }
    rc = read_job(st, out, err);
cleanup:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

td_status td_store_job_get(td_store *s, const char *id, td_job_row *out, td_error *err)
{
    memset(out, 0, sizeof *out);
    if (s->pg)
        return td_pg_job_get(s->pg, "id", id, out, err);
    enter(s);
    td_status rc = job_get_locked(s, "id", id, out, err);
    leave(s);
    return rc;
}

td_status td_store_job_find_idempotent(td_store *s, const char *key, td_job_row *out,
                                       td_error *err)
{
    memset(out, 0, sizeof *out);
    if (s->pg)
        return td_pg_job_get(s->pg, "idempotency_key", key, out, err);
    enter(s);
    td_status rc = job_get_locked(s, "idempotency_key", key, out, err);
    leave(s);
    return rc;
}

/* The state of job id (-1 when absent), plus its checkpoint epoch and model flag. */
static td_status job_state_locked(td_store *s, const char *id, int *state, int64_t *ckpt_epoch,
                                  int *has_model, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    *state = -1;
    if (ckpt_epoch)
        *ckpt_epoch = -1;
    rc = prepare(s, &st,
                 "SELECT state, checkpoint_epoch, model_params IS NOT NULL FROM jobs "
                 "WHERE id = ?1",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id ? id : "");
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    if (!row) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", id ? id : "");
        goto cleanup;
    }
    *state = state_from_text(sqlite3_column_text(st, 0));
    if (ckpt_epoch)
        *ckpt_epoch =
            sqlite3_column_type(st, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 1);
    if (has_model)
        *has_model = sqlite3_column_int(st, 2);
cleanup:
    sqlite3_finalize(st);
    return rc;
}

td_status td_store_job_insert(td_store *s, const td_job_spec *spec, char id_out[TD_ID_MAX],
                              td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    td_dataset_meta m;
    char id[TD_ID_MAX], now[TD_TIME_MAX];
    int row = 0, locked = 0, relaxed = 0;
    uint64_t ticket = 0;
    const char *key = spec && spec->idempotency_key && *spec->idempotency_key
                          ? spec->idempotency_key : NULL;

    id_out[0] = '\0';
    if (!spec || !spec->model || !*spec->model || strlen(spec->model) >= TD_MODEL_NAME_MAX) {
        rc = td_fail(err, TD_EINVAL, "model", "model name is empty or too long");
        goto cleanup;
    }
    if (!spec->hyperparameters) {
        rc = td_fail(err, TD_EINVAL, "hyperparameters", "hyperparameters are missing");
        goto cleanup;
    }
    if (spec->epochs < 0) {
        rc = td_fail(err, TD_EINVAL, "hyperparameters.epochs", "epochs must be >= 0");
        goto cleanup;
    }
    if (key && strlen(key) >= TD_IDEM_KEY_MAX) {
        rc = td_fail(err, TD_EINVAL, "idempotency_key", "Idempotency-Key is longer than %d bytes",
                     TD_IDEM_KEY_MAX - 1);
        goto cleanup;
    }
    if (s->pg)
        return td_pg_job_insert(s->pg, spec, id_out, err);
    enter(s);
    locked = 1;
    if ((rc = relax(s, err))) /* durable at return all the same: group_sync below */
        goto cleanup;
    relaxed = 1;
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    if (key) {
        rc = prepare(s, &st, "SELECT id FROM jobs WHERE idempotency_key = ?1", err);
        if (rc)
            goto cleanup;
        bind_str(st, 1, key);
        rc = step_row(s, st, &row, err);
        if (rc)
            goto cleanup;
        if (row) {
            col_copy(st, 0, id_out, TD_ID_MAX);
            rc = td_fail(err, TD_ECONFLICT, "idempotency_key",
                         "a job with this Idempotency-Key exists: %s", id_out);
            goto cleanup;
        }
    }
    rc = ds_get_locked(s, spec->dataset, &m, err);
    if (rc)
        goto cleanup;
    if (spec->validation && *spec->validation) {
        rc = ds_get_locked(s, spec->validation, &m, err);
        if (rc) {
            if (rc == TD_ENOTFOUND)
                td_fail(err, TD_ENOTFOUND, "validation", "dataset %s not found",
                        spec->validation);
            goto cleanup;
        }
    }
    td_store_new_id(id, "job_");
    td_store_now(now);
    rc = prepare(s, &st,
                 "INSERT INTO jobs (id, model, dataset, validation, state, hyperparameters, "
                 "created_at, epochs, idempotency_key, sweep, sweep_trial, stop_at_epoch, "
                 "classes) VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
                 "(SELECT classes FROM datasets WHERE id = ?3))",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id);
    bind_str(st, 2, spec->model);
    bind_str(st, 3, spec->dataset);
    bind_opt(st, 4, spec->validation);
    bind_str(st, 5, spec->hyperparameters);
    bind_str(st, 6, now);
    sqlite3_bind_int64(st, 7, spec->epochs);
    bind_opt(st, 8, key);
    bind_opt(st, 9, spec->sweep);
    if (spec->sweep && *spec->sweep)
        sqlite3_bind_int64(st, 10, spec->sweep_trial);
    if (spec->stop_at_epoch > 0)
        sqlite3_bind_int64(st, 11, spec->stop_at_epoch);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
    if (rc)
        goto cleanup;
    ticket = commit_ticket(s);
    snprintf(id_out, TD_ID_MAX, "%s", id);
cleanup:
    sqlite3_finalize(st);
    if (relaxed)
        unrelax(s);
    if (locked)
        leave(s);
    if (ticket) /* the 202 promises the job survives a power loss */
        rc = group_sync(s, ticket, err);
    return rc;
}

/* Runs a JOB_COLS query with its parameters bound and collects up to cap rows. */
static td_status collect_jobs(td_store *s, sqlite3_stmt *st, int cap, td_job_row **rows,
                              int *n, td_error *err)
{
    td_status rc = TD_OK;
    td_job_row *v = NULL;
    int count = 0, alloc = 0;

    for (;;) {
        int row;
        rc = step_row(s, st, &row, err);
        if (rc)
            goto cleanup;
        if (!row || count == cap)
            break;
        if (count == alloc) {
            int na = alloc ? alloc * 2 : 16;
            td_job_row *nv = realloc(v, sizeof *v * (size_t)na);
            if (!nv) {
                rc = td_fail(err, TD_ENOMEM, NULL, "out of memory listing jobs");
                goto cleanup;
            }
            v = nv, alloc = na;
        }
        rc = read_job(st, &v[count], err);
        if (rc)
            goto cleanup;
        count++;
    }
    *rows = v;
    *n = count;
    v = NULL;
    count = 0;
cleanup:
    td_job_rows_free(v, count);
    return rc;
}

td_status td_store_job_list(td_store *s, int state, int limit, const char *after,
                            td_job_row **rows, int *n, char next[TD_ID_MAX], td_error *err)
{
    if (s->pg)
        return td_pg_job_list(s->pg, state, limit, after, rows, n, next, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int locked = 0;
    char cursor[TD_ID_MAX];

    snprintf(cursor, sizeof cursor, "%s", after ? after : "");   /* after may alias next */
    *rows = NULL;
    *n = 0;
    next[0] = '\0';
    if (limit < 1) {
        rc = td_fail(err, TD_EINVAL, "limit", "limit must be >= 1, got %d", limit);
        goto cleanup;
    }
    if (state >= TD_JOB_NSTATES) {
        rc = td_fail(err, TD_EINVAL, "state", "unknown state %d", state);
        goto cleanup;
    }
    enter(s);
    locked = 1;
    /* one statement per filter shape, so that each is a range of the primary key or of
     * jobs_state (state, id): "?1 IS NULL OR ..." would make SQLite scan the table */
    static const char *const sql[2][2] = {
        {"SELECT " JOB_COLS " FROM jobs ORDER BY id DESC LIMIT ?3",
         "SELECT " JOB_COLS " FROM jobs WHERE id < ?2 ORDER BY id DESC LIMIT ?3"},
        {"SELECT " JOB_COLS " FROM jobs WHERE state = ?1 ORDER BY id DESC LIMIT ?3",
         "SELECT " JOB_COLS " FROM jobs WHERE state = ?1 AND id < ?2 ORDER BY id DESC "
         "LIMIT ?3"}};
    rc = prepare(s, &st, sql[state >= 0][cursor[0] != '\0'], err);
    if (rc)
        goto cleanup;
    bind_opt(st, 1, state >= 0 ? STATE_NAMES[state] : NULL);
    bind_opt(st, 2, cursor);
    sqlite3_bind_int64(st, 3, (int64_t)limit + 1);
    rc = collect_jobs(s, st, limit + 1, rows, n, err);
    if (rc)
        goto cleanup;
    if (*n > limit) {
        td_job_row_fini(&(*rows)[limit]);
        *n = limit;
        snprintf(next, TD_ID_MAX, "%s", (*rows)[limit - 1].id);
    }
cleanup:
    sqlite3_finalize(st);
    if (locked)
        leave(s);
    return rc;
}

td_status td_store_job_list_active(td_store *s, td_job_row **rows, int *n, td_error *err)
{
    if (s->pg)
        return td_pg_job_list_active(s->pg, rows, n, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;

    *rows = NULL;
    *n = 0;
    enter(s);
    rc = prepare(s, &st,
                 "SELECT " JOB_COLS " FROM jobs WHERE state IN ('queued', 'running') "
                 "AND paused = 0 ORDER BY id ASC",
                 err);
    if (rc)
        goto cleanup;
    rc = collect_jobs(s, st, INT32_MAX, rows, n, err);
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

td_status td_store_job_counts(td_store *s, int64_t counts[TD_JOB_NSTATES], td_error *err)
{
    if (s->pg)
        return td_pg_job_counts(s->pg, counts, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;

    for (int i = 0; i < TD_JOB_NSTATES; i++)
        counts[i] = 0;
    enter(s);
    rc = prepare(s, &st, "SELECT state, COUNT(*) FROM jobs GROUP BY state", err);
    if (rc)
        goto cleanup;
    for (;;) {
        int row;
        rc = step_row(s, st, &row, err);
        if (rc || !row)
            goto cleanup;
        int i = state_from_text(sqlite3_column_text(st, 0));
        if (i >= 0)
            counts[i] = sqlite3_column_int64(st, 1);
    }
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

/* td_store_job_start, and with live set, td_store_job_claim. */
static td_status job_start(td_store *s, const char *id, int live, td_job_row *out,
                           td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];
    int state, relaxed = 0;

    if (out)
        memset(out, 0, sizeof *out);
    if (s->pg)
        return td_pg_job_start(s->pg, id, live, out, err);
    enter(s);
    if ((rc = relax(s, err))) /* see DESIGN, group commit */
        goto cleanup;
    relaxed = 1;
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = job_state_locked(s, id, &state, NULL, NULL, err);
    if (rc)
        goto cleanup;
    if (state != TD_JOB_QUEUED && state != TD_JOB_RUNNING) {
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is %s", id,
                     td_job_state_name((td_job_state)state));
        goto cleanup;
    }
    td_store_now(now);
    rc = prepare(s, &st,
                 state == TD_JOB_QUEUED
                     ? "UPDATE jobs SET state = 'running', started_at = COALESCE(started_at, "
                       "?2) WHERE id = ?1" /* a paused trial keeps its first start */
                     : "UPDATE jobs SET restarts = restarts + 1, "
                       "started_at = COALESCE(started_at, ?2) WHERE id = ?1",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id);
    bind_str(st, 2, now);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    if (live) {
        if ((rc = prepare(s, &st, "UPDATE jobs SET live = 1 WHERE id = ?1", err)))
            goto cleanup;
        bind_str(st, 1, id);
        if ((rc = step_done(s, st, err)))
            goto cleanup;
    }
    rc = exec_sql(s, "COMMIT", err);
    if (rc)
        goto cleanup;
    if (out)
        rc = job_get_locked(s, "id", id, out, err);
cleanup:
    sqlite3_finalize(st);
    if (relaxed)
        unrelax(s);
    leave(s);
    return rc;
}

td_status td_store_job_start(td_store *s, const char *id, td_job_row *out, td_error *err)
{
    return job_start(s, id, 0, out, err);
}

td_status td_store_job_claim(td_store *s, const char *id, td_job_row *out, td_error *err)
{
    return job_start(s, id, 1, out, err);
}

td_status td_store_job_progress(td_store *s, const char *id, int64_t epoch,
                                const char *metrics_json, td_error *err)
{
    if (s->pg)
        return td_pg_job_progress(s->pg, id, epoch, metrics_json, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;

    enter(s);
    rc = prepare(s, &st,
                 "UPDATE jobs SET epoch = ?2, metrics = COALESCE(?3, metrics) WHERE id = ?1",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id ? id : "");
    sqlite3_bind_int64(st, 2, epoch);
    bind_opt(st, 3, metrics_json);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    if (sqlite3_changes(s->db) == 0)
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", id ? id : "");
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

td_status td_store_job_finish(td_store *s, const char *id, td_job_state state,
                              const char *error_code, const char *error_message,
                              td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];
    int cur, locked = 0, relaxed = 0;
    uint64_t ticket = 0;

    if (!td_job_state_terminal(state)) {
        rc = td_fail(err, TD_EINVAL, "state", "%s is not a terminal state",
                     td_job_state_name(state));
        goto cleanup;
    }
    if (s->pg)
        return td_pg_job_finish(s->pg, id, state, error_code, error_message, err);
    enter(s);
    locked = 1;
    if ((rc = relax(s, err))) /* durable at return all the same: group_sync below */
        goto cleanup;
    relaxed = 1;
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = job_state_locked(s, id, &cur, NULL, NULL, err);
    if (rc)
        goto cleanup;
    if (cur != TD_JOB_QUEUED && cur != TD_JOB_RUNNING) {
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is already %s", id,
                     td_job_state_name((td_job_state)cur));
        goto cleanup;
    }
    td_store_now(now);
    rc = prepare(s, &st,
                 "UPDATE jobs SET state = ?2, finished_at = ?3, error_code = ?4, "
                 "error_message = ?5, live = 0 WHERE id = ?1",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id);
    bind_str(st, 2, STATE_NAMES[state]);
    bind_str(st, 3, now);
    bind_opt(st, 4, error_code);
    bind_opt(st, 5, error_message);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    if ((rc = exec_sql(s, "COMMIT", err)) == TD_OK)
        ticket = commit_ticket(s);
cleanup:
    sqlite3_finalize(st);
    if (relaxed)
        unrelax(s);
    if (locked)
        leave(s);
    if (ticket)
        rc = group_sync(s, ticket, err);
    return rc;
}

td_status td_store_job_cancel(td_store *s, const char *id, td_job_state *state_after,
                              td_error *err)
{
    if (s->pg)
        return td_pg_job_cancel(s->pg, id, state_after, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];
    int cur;

    enter(s);
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = job_state_locked(s, id, &cur, NULL, NULL, err);
    if (rc)
        goto cleanup;
    if (cur != TD_JOB_QUEUED && cur != TD_JOB_RUNNING) {
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is already %s", id,
                     td_job_state_name((td_job_state)cur));
        goto cleanup;
    }
    td_store_now(now);
    rc = prepare(s, &st,
                 cur == TD_JOB_QUEUED
                     ? "UPDATE jobs SET state = 'cancelled', finished_at = ?2, "
                       "cancel_requested = 1 WHERE id = ?1"
                     : "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id);
    if (cur == TD_JOB_QUEUED)
        bind_str(st, 2, now);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
    if (rc)
        goto cleanup;
    if (state_after)
        *state_after = cur == TD_JOB_QUEUED ? TD_JOB_CANCELLED : TD_JOB_RUNNING;
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

/* Deletes the history of a job whose row is gone, PURGE_BATCH records per transaction with
 * a checkpoint after each. One transaction would need a WAL as large as the history it
 * deletes (SQLite writes each page it empties: ~13 MB per 100,000 records of 9 columns),
 * which a full disk does not have; a checkpointed WAL is rewritten from its start, so
 * batches need one batch's pages (under 200 KB) however long the history. Takes the lock
 * per batch, so other requests interleave with a long purge. */
#define PURGE_BATCH 1000

static td_status history_purge(td_store *s, const char *job_id)
{
    td_status rc = TD_OK;
    for (int n = 1; n > 0 && rc == TD_OK;) {
        sqlite3_stmt *st = NULL;
        enter(s);
        rc = prepare(s, &st,
                     "DELETE FROM history WHERE job_id = ?1 AND epoch IN (SELECT epoch FROM "
                     "history WHERE job_id = ?1 ORDER BY epoch LIMIT ?2)",
                     NULL);
        if (rc == TD_OK) {
            bind_str(st, 1, job_id);
            sqlite3_bind_int(st, 2, PURGE_BATCH);
            rc = step_done(s, st, NULL);
        }
        n = rc ? 0 : sqlite3_changes(s->db);
        if (n > 0)
            sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        sqlite3_finalize(st);
        leave(s);
    }
    return rc;
}

/* At open: deletes the history of jobs that no longer exist (a delete cut short by a crash
 * or a full disk), with one index seek per distinct job id. Best effort: what cannot be
 * deleted now (a full disk) waits for the next open. */
static void sweep_history(td_store *s)
{
    sqlite3_stmt *st = NULL;
    char cursor[TD_ID_MAX] = "", id[TD_ID_MAX];
    td_status rc = prepare(s, &st,
                           "SELECT h.job_id, EXISTS (SELECT 1 FROM jobs WHERE id = h.job_id) "
                           "FROM (SELECT job_id FROM history WHERE job_id > ?1 "
                           "ORDER BY job_id LIMIT 1) h",
                           NULL);
    while (rc == TD_OK) {
        int row = 0;
        sqlite3_reset(st);
        bind_str(st, 1, cursor);
        if ((rc = step_row(s, st, &row, NULL)) || !row)
            break;
        col_copy(st, 0, id, sizeof id);
        int orphan = !sqlite3_column_int(st, 1);
        sqlite3_reset(st);
        if (orphan)
            rc = history_purge(s, id);
        snprintf(cursor, sizeof cursor, "%s", id);
    }
    sqlite3_finalize(st);
}

td_status td_store_job_delete(td_store *s, const char *id, td_error *err)
{
    if (s->pg)
        return td_pg_job_delete(s->pg, id, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char path[PATH_MAX];
    int cur, has_model = 0, deleted = 0;
    int64_t ckpt = -1;

    enter(s);
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = job_state_locked(s, id, &cur, &ckpt, &has_model, err);
    if (rc)
        goto cleanup;
    if (cur == TD_JOB_QUEUED || cur == TD_JOB_RUNNING) {
        rc = td_fail(err, TD_ECONFLICT, "state", "job %s is %s; cancel it first", id,
                     td_job_state_name((td_job_state)cur));
        goto cleanup;
    }
    if ((rc = td_store_job_in_active_sweep(s, id, err))) /* its sweep still needs it */
        goto cleanup;
    rc = prepare(s, &st, "DELETE FROM jobs WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
    if (rc)
        goto cleanup;
    deleted = 1;
cleanup:
    sqlite3_finalize(st);
    leave(s);
    if (deleted && id_ok(id)) {
        /* Files go after the rows; a failure leaves orphans for the next open's sweep. */
        if (ckpt >= 0) {
            ckpt_path(path, sizeof path, s, id, ckpt);
            unlink(path);
        }
        if (has_model) {
            path_of(path, sizeof path, s, "models", id, ".bin");
            unlink(path);
        }
    }
    if (deleted)
        history_purge(s, id); /* what it leaves, the next open's sweep removes */
    return rc;
}

/* ---- history ------------------------------------------------------------------------ */

static int count_cols(const unsigned char *t)
{
    if (!t || !*t)
        return 0;
    int n = 1;
    for (; *t; t++)
        n += *t == ',';
    return n;
}

/* The column count of job_id's history (0 when not set); TD_ENOTFOUND without the job. */
static td_status hist_cols_locked(td_store *s, const char *job_id, int *ncols, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    rc = prepare(s, &st, "SELECT history_columns FROM jobs WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id ? job_id : "");
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    if (!row) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    *ncols = count_cols(sqlite3_column_text(st, 0));
cleanup:
    sqlite3_finalize(st);
    return rc;
}

td_status td_store_history_columns_set(td_store *s, const char *job_id,
                                       const char *const *names, int n, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char joined[TD_HIST_MAX_COLS * TD_HIST_NAME_MAX];
    size_t pos = 0;
    int cur = 0, row = 0, locked = 0, relaxed = 0;

    if (n < 1 || n > TD_HIST_MAX_COLS) {
        rc = td_fail(err, TD_EINVAL, "columns", "need 1..%d history columns, got %d",
                     TD_HIST_MAX_COLS, n);
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        const char *p = names[i];
        size_t len = p ? strlen(p) : 0;
        int ok = len > 0 && len < TD_HIST_NAME_MAX;
        for (size_t k = 0; ok && k < len; k++)
            ok = (p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') ||
                 (p[k] >= '0' && p[k] <= '9') || p[k] == '_';
        if (!ok) {
            rc = td_fail(err, TD_EINVAL, "columns", "bad history column name \"%s\"",
                         p ? p : "");
            goto cleanup;
        }
        if (i)
            joined[pos++] = ',';
        memcpy(joined + pos, p, len);
        pos += len;
    }
    joined[pos] = '\0';
    if (s->pg)
        return td_pg_history_columns_set(s->pg, job_id, joined, n, err);
    enter(s);
    locked = 1;
    if ((rc = relax(s, err))) /* set again at every start: see DESIGN, group commit */
        goto cleanup;
    relaxed = 1;
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = hist_cols_locked(s, job_id, &cur, err);
    if (rc)
        goto cleanup;
    if (cur != 0 && cur != n) {
        rc = prepare(s, &st, "SELECT EXISTS (SELECT 1 FROM history WHERE job_id = ?1)", err);
        if (rc)
            goto cleanup;
        bind_str(st, 1, job_id);
        rc = step_row(s, st, &row, err);
        if (rc)
            goto cleanup;
        if (row && sqlite3_column_int(st, 0)) {
            rc = td_fail(err, TD_ECONFLICT, "columns",
                         "job %s has history with %d columns, not %d", job_id, cur, n);
            goto cleanup;
        }
    }
    rc = prepare(s, &st, "UPDATE jobs SET history_columns = ?2 WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    bind_str(st, 2, joined);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
cleanup:
    sqlite3_finalize(st);
    if (relaxed)
        unrelax(s);
    if (locked)
        leave(s);
    return rc;
}

/* Inserts (or replaces) one record; caller holds the lock (and the transaction). */
static td_status hist_insert_locked(td_store *s, const char *job_id, int64_t epoch,
                                    const double *values, int n, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int ncols = 0;

    rc = hist_cols_locked(s, job_id, &ncols, err);
    if (rc)
        goto cleanup;
    if (ncols == 0) {
        rc = td_fail(err, TD_EINVAL, "columns", "job %s: history columns were never set",
                     job_id);
        goto cleanup;
    }
    if (n != ncols || !values) {
        rc = td_fail(err, TD_EINVAL, "columns", "job %s: record has %d values, history has %d "
                     "columns", job_id, n, ncols);
        goto cleanup;
    }
    rc = prepare(s, &st, "INSERT OR REPLACE INTO history (job_id, epoch, record) "
                 "VALUES (?1, ?2, ?3)", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, epoch);
    sqlite3_bind_blob(st, 3, values, (int)(sizeof(double) * (size_t)n), SQLITE_TRANSIENT);
    rc = step_done(s, st, err);
cleanup:
    sqlite3_finalize(st);
    return rc;
}

td_status td_store_history_append(td_store *s, const char *job_id, int64_t epoch,
                                  const double *values, int n, td_error *err)
{
    if (s->pg)
        return td_pg_history_append(s->pg, job_id, epoch, values, n, err);
    enter(s);
    td_status rc = hist_insert_locked(s, job_id, epoch, values, n, err);
    leave(s);
    return rc;
}

void td_history_fini(td_history *h)
{
    if (!h)
        return;
    free(h->epochs);
    free(h->cols);
    h->epochs = NULL;
    h->cols = NULL;
    h->n_rows = 0;
}

/* Reads the records with epoch > after_epoch (the first limit of them; limit < 0: all)
 * into h (n_cols already set); caller holds the lock. */
static td_status hist_rows_locked(td_store *s, const char *job_id, int64_t after_epoch,
                                  int64_t limit, td_history *h, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int row = 0;

    rc = prepare(s, &st, "SELECT COUNT(*) FROM (SELECT 1 FROM history WHERE job_id = ?1 "
                 "AND epoch > ?2 LIMIT ?3)", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, after_epoch);
    sqlite3_bind_int64(st, 3, limit);
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    int64_t nrows = row ? sqlite3_column_int64(st, 0) : 0;
    if (nrows > 0) {
        h->epochs = malloc(sizeof *h->epochs * (size_t)nrows);
        h->cols = malloc(sizeof *h->cols * (size_t)nrows * (size_t)h->n_cols);
        if (!h->epochs || !h->cols) {
            rc = td_fail(err, TD_ENOMEM, NULL, "out of memory reading history of %s", job_id);
            goto cleanup;
        }
    }
    rc = prepare(s, &st,
                 "SELECT epoch, record FROM history WHERE job_id = ?1 AND epoch > ?2 "
                 "ORDER BY epoch LIMIT ?3",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, after_epoch);
    sqlite3_bind_int64(st, 3, limit);
    while (h->n_rows < nrows) {
        rc = step_row(s, st, &row, err);
        if (rc)
            goto cleanup;
        if (!row)
            break;
        const unsigned char *rec = sqlite3_column_blob(st, 1);
        size_t bytes = (size_t)sqlite3_column_bytes(st, 1);
        if (!rec || bytes != sizeof(double) * (size_t)h->n_cols) {
            rc = td_fail(err, TD_EIO, NULL,
                         "history of %s, epoch %lld: record has %zu bytes for %d columns",
                         job_id, (long long)sqlite3_column_int64(st, 0), bytes, h->n_cols);
            goto cleanup;
        }
        h->epochs[h->n_rows] = sqlite3_column_int64(st, 0);
        for (int c = 0; c < h->n_cols; c++)
            memcpy(&h->cols[(size_t)c * (size_t)nrows + (size_t)h->n_rows],
                   rec + sizeof(double) * (size_t)c, sizeof(double));
        h->n_rows++;
    }
    if (h->n_rows != nrows)
        rc = td_fail(err, TD_EINTERNAL, NULL, "history of %s changed while read", job_id);
cleanup:
    sqlite3_finalize(st);
    return rc;
}

td_status td_store_history_get(td_store *s, const char *job_id, int64_t after_epoch,
                               td_history *out, td_error *err)
{
    return td_store_history_page(s, job_id, after_epoch, -1, out, err);
}

td_status td_store_history_page(td_store *s, const char *job_id, int64_t after_epoch,
                                int64_t limit, td_history *out, td_error *err)
{
    if (s->pg)
        return td_pg_history_get(s->pg, job_id, after_epoch, limit, out, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    td_history h;
    int row = 0;

    memset(&h, 0, sizeof h);
    memset(out, 0, sizeof *out);
    enter(s);
    rc = prepare(s, &st, "SELECT history_columns FROM jobs WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id ? job_id : "");
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    if (!row) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    const unsigned char *t = sqlite3_column_text(st, 0);
    for (const char *p = (const char *)t; p && *p && h.n_cols < TD_HIST_MAX_COLS;) {
        size_t len = strcspn(p, ",");
        snprintf(h.names[h.n_cols++], TD_HIST_NAME_MAX, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
    }
    if (h.n_cols > 0) {
        rc = hist_rows_locked(s, job_id, after_epoch, limit > 0 ? limit : -1, &h, err);
        if (rc)
            goto cleanup;
    }
    *out = h;
    memset(&h, 0, sizeof h);
cleanup:
    sqlite3_finalize(st);
    leave(s);
    td_history_fini(&h);
    return rc;
}

td_status td_store_history_truncate(td_store *s, const char *job_id, int64_t after_epoch,
                                    td_error *err)
{
    if (s->pg)
        return td_pg_history_truncate(s->pg, job_id, after_epoch, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int ncols;

    enter(s);
    rc = hist_cols_locked(s, job_id, &ncols, err);
    if (rc)
        goto cleanup;
    /* The job's progress goes back with its history, in one transaction. */
    if ((rc = exec_sql(s, "BEGIN IMMEDIATE", err)))
        goto cleanup;
    rc = prepare(s, &st, "DELETE FROM history WHERE job_id = ?1 AND epoch > ?2", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, after_epoch);
    if ((rc = step_done(s, st, err)))
        goto cleanup;
    sqlite3_finalize(st);
    st = NULL;
    rc = prepare(s, &st, "UPDATE jobs SET epoch = MIN(epoch, ?2) WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, after_epoch);
    if ((rc = step_done(s, st, err)))
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

/* ---- batched, bounded history ---------------------------------------------------------- */

int64_t td_history_stride(int64_t latest, int64_t max_rows)
{
    if (max_rows <= 0 || latest <= max_rows)
        return 1;
    int64_t S = 2;
    while (latest / S + 3 > max_rows && S < (INT64_C(1) << 62))
        S *= 2;
    return S;
}

/* 1 when the bound keeps epoch e: a multiple of the stride, the first, the best or the
 * latest. */
static int hist_kept(int64_t e, int64_t S, const td_history_batch *b, int64_t latest)
{
    return e % S == 0 || e == b->first || e == b->best || e == latest;
}

/* Drops the records the bound no longer keeps: all of them when the stride changed or the
 * batch asks for it (a full pass over the job's history), else only the two that were
 * kept as exceptions until now (the previous latest and the previous best). Caller holds
 * the lock and the transaction. */
static td_status hist_thin_locked(td_store *s, const char *job_id, const td_history_batch *b,
                                  int64_t prev_latest, int64_t latest, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int64_t S = td_history_stride(latest, b->max_rows);
    int full = b->full_pass || S != td_history_stride(prev_latest, b->max_rows);

    if (S == 1)
        return TD_OK;
    rc = prepare(s, &st,
                 full ? "DELETE FROM history WHERE job_id = ?1 AND epoch % ?2 != 0 "
                        "AND epoch NOT IN (?3, ?4, ?5)"
                      : "DELETE FROM history WHERE job_id = ?1 AND epoch IN (?6, ?7) "
                        "AND epoch % ?2 != 0 AND epoch NOT IN (?3, ?4, ?5)",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, S);
    sqlite3_bind_int64(st, 3, b->first);
    sqlite3_bind_int64(st, 4, b->best);
    sqlite3_bind_int64(st, 5, latest);
    if (!full) {
        sqlite3_bind_int64(st, 6, prev_latest);
        sqlite3_bind_int64(st, 7, b->prev_best);
    }
    rc = step_done(s, st, err);
cleanup:
    sqlite3_finalize(st);
    return rc;
}

td_status td_store_history_commit(td_store *s, const char *job_id, const td_history_batch *b,
                                  td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    int ncols = 0, row = 0, locked = 0, relaxed = 0;

    if (b->n_rows < 1 || !b->epochs || !b->records) {
        rc = td_fail(err, TD_EINVAL, "records", "an empty history batch");
        goto cleanup;
    }
    if (s->pg)
        return td_pg_history_commit(s->pg, job_id, b, err);
    int64_t latest = b->epochs[b->n_rows - 1];
    int64_t S = td_history_stride(latest, b->max_rows);
    enter(s);
    locked = 1;
    /* No fsync for this transaction: see store.h. Set outside the transaction, and back to
     * FULL before the lock is released, whatever happens. */
    rc = relax(s, err);
    if (rc)
        goto cleanup;
    relaxed = 1;
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = hist_cols_locked(s, job_id, &ncols, err);
    if (rc)
        goto cleanup;
    if (ncols == 0 || ncols != b->n_cols) {
        rc = td_fail(err, TD_EINVAL, "columns", "job %s: records have %d values, history has "
                     "%d columns", job_id, b->n_cols, ncols);
        goto cleanup;
    }
    rc = prepare(s, &st, "SELECT epoch FROM jobs WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    rc = step_row(s, st, &row, err);
    if (rc)
        goto cleanup;
    int64_t prev_latest = row ? sqlite3_column_int64(st, 0) : 0;
    rc = prepare(s, &st, "INSERT OR REPLACE INTO history (job_id, epoch, record) "
                 "VALUES (?1, ?2, ?3)", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    size_t rec_bytes = sizeof(double) * (size_t)b->n_cols;
    for (int64_t i = 0; i < b->n_rows; i++) {
        if (!hist_kept(b->epochs[i], S, b, latest))
            continue;
        sqlite3_bind_int64(st, 2, b->epochs[i]);
        sqlite3_bind_blob(st, 3, b->records + (size_t)i * (size_t)b->n_cols, (int)rec_bytes,
                          SQLITE_STATIC);
        rc = step_done(s, st, err);
        if (rc)
            goto cleanup;
        sqlite3_reset(st);
    }
    rc = prepare(s, &st, "UPDATE jobs SET epoch = ?2, metrics = COALESCE(?3, metrics) "
                 "WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, latest);
    bind_opt(st, 3, b->metrics_json);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    rc = hist_thin_locked(s, job_id, b, prev_latest, latest, err);
    if (rc)
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
cleanup:
    sqlite3_finalize(st);
    if (locked && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (relaxed)
        unrelax(s);
    if (locked)
        leave(s);
    return rc;
}

void td_history_downsample(td_history *h, int64_t max_points)
{
    int64_t n = h->n_rows;
    if (max_points < 2 || n <= max_points)
        return;
    /* Point k of m takes row round(k (n - 1) / (m - 1)): strictly increasing in k since
     * n > m, so the rows move forward in place, column by column. */
    int64_t m = max_points;
    for (int64_t k = 0; k < m; k++) {
        int64_t i = (k * (n - 1) + (m - 1) / 2) / (m - 1);
        h->epochs[k] = h->epochs[i];
        for (int c = 0; c < h->n_cols; c++)
            h->cols[(size_t)c * (size_t)m + (size_t)k] = h->cols[(size_t)c * (size_t)n + (size_t)i];
    }
    h->n_rows = m;
}

/* ---- epoch commit and checkpoints ---------------------------------------------------- */

/* Shared by td_store_epoch_commit (with_record) and td_store_checkpoint_save. */
static td_status commit_epoch(td_store *s, const char *job_id, int64_t epoch, int with_record,
                              const double *record, int n, const char *metrics_json,
                              const void *ckpt, size_t ckpt_len, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char path[PATH_MAX];
    int64_t old = -2;             /* -2: unknown, -1: none recorded */
    int state, row = 0, written = 0, committed = 0, locked = 0;

    if (!id_ok(job_id)) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    if (epoch < 0) {
        rc = td_fail(err, TD_EINVAL, "epoch", "epoch must be >= 0");
        goto cleanup;
    }
    if (s->pg)
        return td_pg_commit_epoch(s->pg, job_id, epoch, with_record, record, n, metrics_json,
                                  ckpt, ckpt_len, err);
    if (ckpt) {
        td_blob_seg seg = {ckpt, ckpt_len};
        ckpt_path(path, sizeof path, s, job_id, epoch);
        rc = td_blob_write_tagged(path, TD_BLOB_CHECKPOINT, (uint64_t)epoch, s->build_tag,
                                  &seg, 1, err);
        if (rc)
            goto cleanup;
        written = 1;
    }
    enter(s);
    locked = 1;
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = job_state_locked(s, job_id, &state, &old, NULL, err);
    if (rc)
        goto cleanup;
    if (with_record) {
        rc = hist_insert_locked(s, job_id, epoch, record, n, err);
        if (rc)
            goto cleanup;
        rc = prepare(s, &st,
                     "UPDATE jobs SET epoch = ?2, metrics = COALESCE(?3, metrics), "
                     "checkpoint_epoch = CASE WHEN ?4 THEN ?2 ELSE checkpoint_epoch END "
                     "WHERE id = ?1",
                     err);
        if (rc)
            goto cleanup;
        bind_str(st, 1, job_id);
        sqlite3_bind_int64(st, 2, epoch);
        bind_opt(st, 3, metrics_json);
        sqlite3_bind_int(st, 4, ckpt != NULL);
    } else {
        rc = prepare(s, &st, "SELECT epoch FROM jobs WHERE id = ?1", err);
        if (rc)
            goto cleanup;
        bind_str(st, 1, job_id);
        rc = step_row(s, st, &row, err);
        if (rc)
            goto cleanup;
        if (!row || epoch > sqlite3_column_int64(st, 0)) {
            rc = td_fail(err, TD_EINVAL, "epoch",
                         "checkpoint of epoch %lld is ahead of the committed epoch %lld",
                         (long long)epoch, (long long)(row ? sqlite3_column_int64(st, 0) : 0));
            goto cleanup;
        }
        rc = prepare(s, &st, "UPDATE jobs SET checkpoint_epoch = ?2 WHERE id = ?1", err);
        if (rc)
            goto cleanup;
        bind_str(st, 1, job_id);
        sqlite3_bind_int64(st, 2, epoch);
    }
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
    if (rc)
        goto cleanup;
    committed = 1;
cleanup:
    sqlite3_finalize(st);
    if (locked)
        leave(s);
    if (written && committed && old >= 0 && old != epoch) {
        ckpt_path(path, sizeof path, s, job_id, old);   /* the superseded checkpoint */
        unlink(path);
    } else if (written && !committed && old != -2 && old != epoch) {
        unlink(path);             /* never recorded, and not the recorded one */
    }
    return rc;
}

td_status td_store_epoch_commit(td_store *s, const char *job_id, int64_t epoch,
                                const double *record, int n, const char *metrics_json,
                                const void *ckpt, size_t ckpt_len, td_error *err)
{
    return commit_epoch(s, job_id, epoch, 1, record, n, metrics_json, ckpt, ckpt_len, err);
}

td_status td_store_checkpoint_save(td_store *s, const char *job_id, int64_t epoch,
                                   const void *ckpt, size_t ckpt_len, td_error *err)
{
    if (!ckpt)
        return td_fail(err, TD_EINVAL, "checkpoint", "no checkpoint given");
    return commit_epoch(s, job_id, epoch, 0, NULL, 0, NULL, ckpt, ckpt_len, err);
}

td_status td_store_checkpoint_load(td_store *s, const char *job_id, void **buf, size_t *len,
                                   int64_t *epoch, td_error *err)
{
    return td_store_checkpoint_load_tagged(s, job_id, buf, len, epoch, NULL, 0, err);
}

td_status td_store_checkpoint_load_tagged(td_store *s, const char *job_id, void **buf,
                                          size_t *len, int64_t *epoch, char *tag,
                                          size_t tag_cap, td_error *err)
{
    td_status rc = TD_OK;
    char path[PATH_MAX];
    int64_t rec = -1;
    uint64_t aux = 0;
    int state;

    *buf = NULL;
    *len = 0;
    if (!id_ok(job_id)) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    if (s->pg)
        return td_pg_checkpoint_load(s->pg, job_id, buf, len, epoch, tag, tag_cap, err);
    /* A concurrent epoch commit may replace the recorded file between reading the row
     * and opening the file: read the row again then (a few times at most). */
    for (int attempt = 0; attempt < 5; attempt++) {
        enter(s);
        rc = job_state_locked(s, job_id, &state, &rec, NULL, err);
        leave(s);
        if (rc)
            goto cleanup;
        if (rec < 0) {
            rc = td_fail(err, TD_ENOTFOUND, "checkpoint", "job %s has no checkpoint", job_id);
            goto cleanup;
        }
        ckpt_path(path, sizeof path, s, job_id, rec);
        rc = td_blob_read_tagged(path, TD_BLOB_CHECKPOINT, &aux, tag, tag_cap, buf, len, err);
        if (rc != TD_ENOTFOUND)
            break;
    }
    if (rc == TD_ENOTFOUND)
        rc = td_fail(err, TD_EIO, NULL, "%s: recorded checkpoint file is missing", path);
    if (rc)
        goto cleanup;
    if ((int64_t)aux != rec) {
        rc = td_fail(err, TD_EIO, NULL, "%s: holds epoch %lld, expected %lld", path,
                     (long long)aux, (long long)rec);
        goto cleanup;
    }
    if (epoch)
        *epoch = rec;
cleanup:
    if (rc) {
        td_blob_free(*buf);
        *buf = NULL;
        *len = 0;
    }
    return rc;
}

/* ---- models --------------------------------------------------------------------------- */

td_status td_store_model_put(td_store *s, const char *job_id, const char *meta_json,
                             const float *params, int64_t n, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char path[PATH_MAX];
    int written = 0, locked = 0, relaxed = 0;
    size_t bytes;

    if (!id_ok(job_id)) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    if (!meta_json || n < 0 || (n > 0 && !params) ||
        __builtin_mul_overflow((size_t)n, sizeof(float), &bytes)) {
        rc = td_fail(err, TD_EINVAL, "model", "model needs meta JSON and n >= 0 parameters");
        goto cleanup;
    }
    if (s->pg)
        return td_pg_model_put(s->pg, job_id, meta_json, params, n, err);
    /* The new file replaces the job's previous model, which the row may already refer to:
     * if the row's update then fails (a locked or full database), that file must stay
     * (a job's shape never changes, so it matches the row); only a file no row refers to
     * is removed. */
    int state, had_model = 0;
    enter(s);
    rc = job_state_locked(s, job_id, &state, NULL, &had_model, err);
    leave(s);
    if (rc)
        goto cleanup;
    td_blob_seg segs[2] = {{params, bytes}, {meta_json, strlen(meta_json) + 1}};
    path_of(path, sizeof path, s, "models", job_id, ".bin");
    rc = td_blob_write(path, TD_BLOB_MODEL, (uint64_t)n, segs, 2, err);
    if (rc)
        goto cleanup;
    written = !had_model;
    enter(s);
    locked = 1;
    /* the file is synced; the row commits relaxed, durable with the job's next durable
     * commit (its end or a checkpoint: see DESIGN, group commit) */
    if ((rc = relax(s, err)))
        goto cleanup;
    relaxed = 1;
    rc = prepare(s, &st, "UPDATE jobs SET model_params = ?2 WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, job_id);
    sqlite3_bind_int64(st, 2, n);
    rc = step_done(s, st, err);
    if (rc)
        goto cleanup;
    if (sqlite3_changes(s->db) == 0) {
        written = 1; /* the job is gone: so is any reference to the file */
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id);
        goto cleanup;
    }
    written = 0;
cleanup:
    sqlite3_finalize(st);
    if (relaxed)
        unrelax(s);
    if (locked)
        leave(s);
    if (written)
        unlink(path);
    return rc;
}

td_status td_store_model_write_unsynced(td_store *s, const char *job_id, const char *meta_json,
                                        const float *params, int64_t n, td_error *err)
{
    char path[PATH_MAX];
    size_t bytes;
    int state, had_model = 0;

    if (!id_ok(job_id))
        return td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
    if (!meta_json || n < 0 || (n > 0 && !params) ||
        __builtin_mul_overflow((size_t)n, sizeof(float), &bytes))
        return td_fail(err, TD_EINVAL, "model", "model needs meta JSON and n >= 0 parameters");
    if (s->pg)
        return td_pg_model_write_unsynced(s->pg, job_id, meta_json, params, n, err);
    enter(s);
    td_status rc = job_state_locked(s, job_id, &state, NULL, &had_model, err);
    leave(s);
    if (rc)
        return rc;
    if (had_model) /* a recorded file is only ever replaced by a synced one */
        return td_fail(err, TD_ECONFLICT, "model", "job %s has a recorded model", job_id);
    td_blob_seg segs[2] = {{params, bytes}, {meta_json, strlen(meta_json) + 1}};
    path_of(path, sizeof path, s, "models", job_id, ".bin");
    return td_blob_write_unsynced(path, TD_BLOB_MODEL, (uint64_t)n, segs, 2, err);
}

td_status td_store_sync_files(td_store *s, td_error *err)
{
    if (s->pg) /* the models are in the database: nothing of theirs in files */
        return TD_OK;
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || syscall(SYS_syncfs, fd) != 0) {
        int e = errno ? errno : EIO;
        if (fd >= 0)
            close(fd);
        return td_fail(err, e == ENOSPC || e == EDQUOT ? TD_ENOSPACE : TD_EIO, NULL,
                       "cannot sync the files of %s: %s", s->dir, strerror(e));
    }
    close(fd);
    return TD_OK;
}

td_status td_store_jobs_succeed(td_store *s, const char *const *ids, const int64_t *n_params,
                                int n, td_error *err)
{
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];
    uint64_t ticket = 0;

    if (s->pg)
        return td_pg_jobs_succeed(s->pg, ids, n_params, n, err);
    td_store_now(now);
    enter(s);
    if ((rc = relax(s, err))) /* durable at return all the same: group_sync below */
        goto cleanup;
    if ((rc = exec_sql(s, "BEGIN IMMEDIATE", err)))
        goto cleanup;
    /* a job already terminal (none can be: it was running) or gone is left as it is */
    rc = prepare(s, &st,
                 "UPDATE jobs SET state = 'succeeded', finished_at = ?2, live = 0, "
                 "model_params = ?3 WHERE id = ?1 AND state IN ('queued', 'running')",
                 err);
    for (int i = 0; i < n && rc == TD_OK; i++) {
        sqlite3_reset(st);
        bind_str(st, 1, ids[i]);
        bind_str(st, 2, now);
        sqlite3_bind_int64(st, 3, n_params[i]);
        rc = step_done(s, st, err);
    }
    if (rc == TD_OK && (rc = exec_sql(s, "COMMIT", err)) == TD_OK)
        ticket = commit_ticket(s);
cleanup:
    sqlite3_finalize(st);
    unrelax(s);
    leave(s);
    if (ticket)
        rc = group_sync(s, ticket, err);
    return rc;
}

td_status td_store_model_get(td_store *s, const char *job_id, char **meta_json,
                             float **params, int64_t *n, td_error *err)
{
    if (s->pg)
        return td_pg_model_get(s->pg, job_id, meta_json, params, n, err);
    td_status rc = TD_OK;
    char path[PATH_MAX];
    void *buf = NULL;
    size_t len = 0;
    uint64_t aux = 0;
    int state, has_model = 0;

    *meta_json = NULL;
    *params = NULL;
    *n = 0;
    if (!id_ok(job_id)) {
        rc = td_fail(err, TD_ENOTFOUND, NULL, "job %s not found", job_id ? job_id : "");
        goto cleanup;
    }
    enter(s);
    rc = job_state_locked(s, job_id, &state, NULL, &has_model, err);
    leave(s);
    if (rc)
        goto cleanup;
    if (!has_model) {
        rc = td_fail(err, TD_ENOTFOUND, "model", "job %s has no model", job_id);
        goto cleanup;
    }
    path_of(path, sizeof path, s, "models", job_id, ".bin");
    rc = td_blob_read(path, TD_BLOB_MODEL, &aux, &buf, &len, err);
    if (rc)
        goto cleanup;
    size_t pbytes = (size_t)aux * sizeof(float);
    if (aux > (uint64_t)INT64_MAX / sizeof(float) || len < pbytes + 1 ||
        ((char *)buf)[len - 1] != '\0') {
        rc = td_fail(err, TD_EIO, NULL, "%s: malformed model file", path);
        goto cleanup;
    }
    *meta_json = strdup((char *)buf + pbytes);
    if (!*meta_json) {
        rc = td_fail(err, TD_ENOMEM, NULL, "out of memory reading %s", path);
        goto cleanup;
    }
    *params = buf;                /* params sit at the start of the payload */
    *n = (int64_t)aux;
    buf = NULL;
cleanup:
    td_blob_free(buf);
    return rc;
}

void td_store_free(void *p)
{
    free(p);
}

/* ---- crash-loop protection and build changes (issue 10) ------------------------------ */

td_status td_store_job_set_live(td_store *s, const char *id, int live, td_error *err)
{
    if (s->pg)
        return td_pg_job_set_live(s->pg, id, live, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;

    enter(s);
    /* relaxed (see DESIGN, group commit): the mark is about process deaths, and a process
     * death loses no commit */
    if ((rc = relax(s, err)))
        goto cleanup;
    rc = prepare(s, &st, "UPDATE jobs SET live = ?2 WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id ? id : "");
    sqlite3_bind_int(st, 2, live != 0);
    rc = step_done(s, st, err);
cleanup:
    sqlite3_finalize(st);
    unrelax(s);
    leave(s);
    return rc;
}

td_status td_store_job_reap_crashed(td_store *s, int max_crashes, td_job_row **failed, int *n,
                                    td_error *err)
{
    if (s->pg)
        return td_pg_job_reap_crashed(s->pg, max_crashes, failed, n, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;
    char now[TD_TIME_MAX];

    *failed = NULL;
    *n = 0;
    td_store_now(now);
    enter(s);
    rc = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (rc)
        goto cleanup;
    rc = prepare(s, &st,
                 "UPDATE jobs SET crashes = crashes + (state IN ('queued', 'running')), "
                 "live = 0 WHERE live = 1",
                 err);
    if (rc || (rc = step_done(s, st, err)))
        goto cleanup;
    rc = prepare(s, &st,
                 "UPDATE jobs SET state = 'failed', finished_at = ?2, error_code = 'crashed', "
                 "error_message = 'the daemon died ' || crashes || ' times while running this "
                 "job (a crash, an abort or an out-of-memory kill); it is not resumed again' "
                 "WHERE state IN ('queued', 'running') AND crashes >= ?1",
                 err);
    if (rc)
        goto cleanup;
    sqlite3_bind_int(st, 1, max_crashes);
    bind_str(st, 2, now);
    if ((rc = step_done(s, st, err)))
        goto cleanup;
    rc = exec_sql(s, "COMMIT", err);
    if (rc)
        goto cleanup;
    rc = prepare(s, &st,
                 "SELECT " JOB_COLS " FROM jobs WHERE error_code = 'crashed' AND "
                 "finished_at = ?1 ORDER BY id ASC",
                 err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, now);
    rc = collect_jobs(s, st, INT32_MAX, failed, n, err);
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

void td_store_set_build_tag(td_store *s, const char *tag)
{
    snprintf(s->build_tag, sizeof s->build_tag, "%s", tag ? tag : "");
}

td_status td_store_job_mark_different_build(td_store *s, const char *id, td_error *err)
{
    if (s->pg)
        return td_pg_job_mark_different_build(s->pg, id, err);
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;

    enter(s);
    rc = prepare(s, &st, "UPDATE jobs SET resumed_on_different_build = 1 WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id ? id : "");
    rc = step_done(s, st, err);
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

td_status td_store_job_set_warnings(td_store *s, const char *id, const char *json,
                                    td_error *err)
{
    if (s->pg) /* not yet: store_pg.c has no warnings column */
        return td_fail(err, TD_EINVAL, "store", "a PostgreSQL store does not keep "
                       "job warnings yet");
    td_status rc = TD_OK;
    sqlite3_stmt *st = NULL;

    enter(s);
    rc = prepare(s, &st, "UPDATE jobs SET warnings = ?2 WHERE id = ?1", err);
    if (rc)
        goto cleanup;
    bind_str(st, 1, id ? id : "");
    bind_str(st, 2, json);
    rc = step_done(s, st, err);
cleanup:
    sqlite3_finalize(st);
    leave(s);
    return rc;
}

/* ---- the shared queue (PostgreSQL only; store_pg.c) ----------------------------------- */

td_status td_store_job_claim_next(td_store *s, uint64_t mem_avail, char id_out[TD_ID_MAX],
                                  uint64_t *mem_bytes, td_error *err)
{
    id_out[0] = '\0';
    *mem_bytes = 0;
    if (!s->pg)
        return td_fail(err, TD_EINVAL, "store", "claims need a shared (PostgreSQL) store");
    return td_pg_job_claim(s->pg, mem_avail, id_out, mem_bytes, err);
}

td_status td_store_job_renew(td_store *s, const char *const *ids, int n, int *cancel,
                             int *held, td_error *err)
{
    if (!s->pg)
        return td_fail(err, TD_EINVAL, "store", "leases need a shared (PostgreSQL) store");
    if (n <= 0)
        return TD_OK;
    for (int i = 0; i < n; i++)
        if (!id_ok(ids[i]))
            return td_fail(err, TD_EINVAL, "id", "bad job id \"%s\"", ids[i]);
    return td_pg_job_renew(s->pg, ids, n, cancel, held, err);
}

/* ---- for the store's other files (store_impl.h) ------------------------------------- */

td_pg *td_store_pg(td_store *s) { return s->pg; }

sqlite3 *td_store_enter(td_store *s)
{
    enter(s);
    return s->db;
}

void td_store_leave(td_store *s) { leave(s); }

td_status td_store_prepare(td_store *s, sqlite3_stmt **st, const char *sql, td_error *err)
{
    return prepare(s, st, sql, err);
}

td_status td_store_exec(td_store *s, const char *sql, td_error *err)
{
    return exec_sql(s, sql, err);
}

td_status td_store_step_row(td_store *s, sqlite3_stmt *st, int *row, td_error *err)
{
    return step_row(s, st, row, err);
}

td_status td_store_step_done(td_store *s, sqlite3_stmt *st, td_error *err)
{
    return step_done(s, st, err);
}
