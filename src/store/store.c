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
 * model reference (or a small model itself, in its row) commit relaxed without waiting:
 * the WAL is written in order, so the next durable commit (its end, a checkpoint) makes
 * them durable with it; a power loss
 * before that leaves the job as its last durable commit had it (queued or running), and
 * it resumes. A process crash loses nothing: the page cache keeps NORMAL commits.
 *
 * Files vs rows: a file is written (atomically) before the row that refers to it and
 * removed after the row is gone, so a row never points to a missing file; a crash
 * can only leave unreferenced files, which td_store_open sweeps. Checkpoint files carry
 * their epoch in the name, so writing a new one never touches the recorded one: see
 * td_store_checkpoint_save.
 *
 * Ids in paths: every id that reaches a file name is checked to be [a-z0-9_]+ first
 * (id_ok), so an id from a URL cannot escape state_dir.
 *
 * Hot reads (GET /v1/jobs/{id} under load): the job-by-key statements are prepared once
 * and kept (s->st_job_by[]), reset after each use, finalized by td_store_close; every
 * lookup is by primary key or a unique index. Every other statement comes from the
 * connection's statement cache ("statement cache" below): parsed once, not per call. SQLite's global memory statistics are off
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

#include "store/store_sqlite.h"

static const char *SCHEMA_SQL =
    "CREATE TABLE datasets("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT NOT NULL,"
    "  n_samples INTEGER NOT NULL,"
    "  n_features INTEGER NOT NULL,"
    "  n_classes INTEGER NOT NULL,"
    "  target TEXT NOT NULL,"
    "  label_cols INTEGER NOT NULL," /* y_cols (SQL names are case-insensitive) */
    "  prob_cols INTEGER NOT NULL,"  /* Y_cols */
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
    "  checkpoint_epoch INTEGER," /* NULL: no checkpoint */
    "  model_params INTEGER,"     /* NULL: no model file */
    "  history_columns TEXT"      /* comma-separated names, NULL: not set */
    ") WITHOUT ROWID;"
    "CREATE INDEX jobs_state ON jobs(state, id);"
    "CREATE INDEX jobs_dataset ON jobs(dataset);"
    "CREATE INDEX jobs_validation ON jobs(validation);"
    "CREATE TABLE history("
    "  job_id TEXT NOT NULL,"
    "  epoch INTEGER NOT NULL,"
    "  record BLOB NOT NULL," /* n_cols host-endian doubles, NaN kept */
    "  PRIMARY KEY (job_id, epoch)"
    ") WITHOUT ROWID;";

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
    if (us <= last_us) us = last_us + 1; /* strictly increasing within the process */
    last_us = us;
    pthread_mutex_unlock(&mu);

    unsigned char *p = (unsigned char *)&rnd;
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(p + got, sizeof rnd - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
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
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST) return -1;
    struct stat sb;
    if (stat(tmp, &sb) != 0) return -1;
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
                 is_ds         ? "SELECT 1 FROM datasets WHERE id = ?1"
                     : is_ckpt ? "SELECT checkpoint_epoch FROM jobs WHERE id = ?1"
                               : "SELECT model_params IS NOT NULL FROM jobs WHERE id = ?1",
                 err);
    if (rc) goto cleanup;
    d = opendir(dirpath);
    if (!d) {
        rc = td_fail(err, TD_EIO, NULL, "opendir %s: %s", dirpath, strerror(errno));
        goto cleanup;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dirpath, name);
        if (td_blob_is_temp(name)) {
            unlink(path);
            continue;
        }
        /* "<id>.bin" or "<job>.<epoch>.ckpt" */
        const char *dot = strchr(name, '.');
        size_t idlen = dot ? (size_t)(dot - name) : 0;
        if (!dot || idlen == 0 || idlen >= sizeof id) continue;
        memcpy(id, name, idlen);
        id[idlen] = '\0';
        int64_t epoch = -1;
        if (is_ckpt) {
            char *end;
            errno = 0;
            long long e = strtoll(dot + 1, &end, 10);
            if (errno || end == dot + 1 || strcmp(end, ".ckpt") != 0) continue;
            epoch = e;
        } else if (strcmp(dot, ".bin") != 0) {
            continue;
        }
        sqlite3_reset(st);
        bind_str(st, 1, id);
        int row;
        rc = step_row(s, st, &row, err);
        if (rc) goto cleanup;
        int keep = row &&
            (is_ds ? 1
                 : is_ckpt
                 ? sqlite3_column_type(st, 0) != SQLITE_NULL && sqlite3_column_int64(st, 0) == epoch
                 : sqlite3_column_int(st, 0) != 0);
        if (!keep) unlink(path);
    }
cleanup:
    if (d) closedir(d);
    unprepare(s, st);
    return rc;
}


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
    if (d) closedir(d);
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
    /* issue 13 (W9): a small model's blob image (blob.h layout, checksummed) kept in its
     * job's row instead of models/<id>.bin (store_history.c, "models"); NULL: in the file */
    {"jobs", "model_image", "BLOB"},
};

static td_status add_missing_columns(td_store *s, td_error *err)
{
    td_status rc = TD_OK;
    for (size_t i = 0; i < sizeof ADDED_COLUMNS / sizeof *ADDED_COLUMNS && !rc; i++) {
        sqlite3_stmt *st = NULL;
        int row = 0;
        rc = prepare(s, &st, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", err);
        if (!rc) {
            bind_str(st, 1, ADDED_COLUMNS[i].table);
            bind_str(st, 2, ADDED_COLUMNS[i].name);
            rc = step_row(s, st, &row, err);
        }
        unprepare(s, st);
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

int td_store_shared(const td_store *s) { return s->pg != NULL; }

void td_store_set_node(td_store *s, const char *node, double lease_s)
{
    if (s->pg) td_pg_set_node(s->pg, node, lease_s);
}

td_status td_store_open_uri(td_store **out, const char *state_dir, const char *uri, td_error *err)
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
            rc = td_fail(err, TD_EIO, "state_dir", "cannot create %s: %s", path, strerror(errno));
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
                     "state directory %s is in use by another traind (lock %s: %s)", s->dir, path,
                     strerror(errno));
        goto cleanup;
    }
    if (uri && *uri) { /* PostgreSQL: state_dir is the lock and the dataset cache */
        if ((rc = td_pg_open(&s->pg, uri, s->dir, s->build_tag, err))) goto cleanup;
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
    if (rc) goto cleanup;
    int row;
    rc = step_row(s, st, &row, err);
    if (rc) goto cleanup;
    const unsigned char *mode = row ? sqlite3_column_text(st, 0) : NULL;
    if (!mode || strcmp((const char *)mode, "wal") != 0) {
        rc = td_fail(err, TD_EIO, "state_dir", "%s: cannot switch to WAL journal mode", path);
        goto cleanup;
    }
    /* FULL: see DESIGN (a job must survive a power loss once its 202 has gone out). */
    rc = exec_sql(s, "PRAGMA synchronous=FULL", err);
    if (rc) goto cleanup;

    rc = prepare(s, &st, "PRAGMA user_version", err);
    if (rc) goto cleanup;
    rc = step_row(s, st, &row, err);
    if (rc) goto cleanup;
    int version = row ? sqlite3_column_int(st, 0) : 0;
    unprepare(s, st);
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
    if ((rc = add_missing_columns(s, err)) || (rc = td_store_sweeps_migrate(s, err))) goto cleanup;
    for (size_t i = 0; i < sizeof SUBDIRS / sizeof *SUBDIRS; i++)
        if ((rc = sweep_dir(s, SUBDIRS[i], err))) goto cleanup;
    sweep_history(s);
    *out = s;
    s = NULL;
cleanup:
    unprepare(s, st);
    td_store_close(s);
    return rc;
}

void td_store_close(td_store *s)
{
    if (!s) return;
    for (int i = 0; i < 2; i++)
        sqlite3_finalize(s->st_job_by[i]);
    for (int i = 0; i < TD_STMT_CACHE; i++)
        sqlite3_finalize(s->stmts[i].st);
    td_pg_close(s->pg);
    if (s->db) sqlite3_close(s->db); /* all other statements are finalized by every function */
    if (s->wal_fd >= 0) close(s->wal_fd);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&s->mu);
    td_dscache_destroy(s->datasets);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_cond_destroy(&s->sync_cv);
    free(s);
}

/* ---- statement cache ----------------------------------------------------------------- */

/* Parsing SQL costs more than running most of these statements (a small job's life is some
 * twenty of them), so each distinct SQL text is prepared once per connection
 * (SQLITE_PREPARE_PERSISTENT) and kept in s->stmts, found by a hash of its text and then
 * compared whole. A kept statement in use (busy) is not handed out twice: a second user of
 * the same text gets one of its own, as does every statement once the cache is full, and
 * that one is finalized when given back. A PRAGMA is never kept: SQLite applies some
 * (synchronous) when it prepares them; nor is the schema's DDL, run once at open. */

static int keepable(const char *sql)
{
    return strncmp(sql, "PRAGMA", 6) != 0 && strncmp(sql, "CREATE", 6) != 0 &&
        strncmp(sql, "ALTER", 5) != 0;
}

static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

td_status stmt_take(td_store *s, sqlite3_stmt **st, const char *sql, td_error *err)
{
    int keep = keepable(sql), slot = -1;
    uint64_t h = keep ? sql_hash(sql) : 0;

    *st = NULL;
    for (int i = 0; keep && i < TD_STMT_CACHE; i++) {
        struct td_stmt_slot *e = &s->stmts[i];
        if (!e->st) {
            if (slot < 0) slot = i;
        } else if (e->hash == h && !e->busy && strcmp(sqlite3_sql(e->st), sql) == 0) {
            e->busy = 1;
            *st = e->st;
            return TD_OK;
        }
    }
    if (sqlite3_prepare_v3(s->db, sql, -1, slot >= 0 ? SQLITE_PREPARE_PERSISTENT : 0, st, NULL) !=
        SQLITE_OK)
        return db_fail(s, err, "prepare");
    if (slot >= 0) s->stmts[slot] = (struct td_stmt_slot){.st = *st, .hash = h, .busy = 1};
    return TD_OK;
}

void stmt_give(td_store *s, sqlite3_stmt *st)
{
    for (int i = 0; st && i < TD_STMT_CACHE; i++)
        if (s->stmts[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            s->stmts[i].busy = 0;
            return;
        }
    sqlite3_finalize(st);
}

/* ---- group commit (see DESIGN) ------------------------------------------------------- */

/* The ticket of a relaxed commit just made, for group_sync. Caller holds mu. */
uint64_t commit_ticket(td_store *s)
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
td_status group_sync(td_store *s, uint64_t ticket, td_error *err)
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
        if (s->wal_fd < 0) s->wal_fd = open(path, O_RDONLY | O_CLOEXEC);
        int fd = s->wal_fd, e = 0;
        pthread_mutex_unlock(&s->sync_mu);
        if (fd < 0 || fdatasync(fd) != 0) e = errno ? errno : EIO;
        pthread_mutex_lock(&s->sync_mu);
        s->syncing = 0;
        if (!e && target > s->synced) s->synced = target;
        pthread_cond_broadcast(&s->sync_cv);
        if (e)
            rc = td_fail(err, e == ENOSPC || e == EDQUOT ? TD_ENOSPACE : TD_EIO, NULL,
                         "cannot sync %s: %s", path, strerror(e));
    }
    pthread_mutex_unlock(&s->sync_mu);
    return rc;
}

void td_store_free(void *p) { free(p); }

void td_store_set_build_tag(td_store *s, const char *tag)
{
    snprintf(s->build_tag, sizeof s->build_tag, "%s", tag ? tag : "");
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

void td_store_unprepare(td_store *s, sqlite3_stmt *st) { unprepare(s, st); }

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
