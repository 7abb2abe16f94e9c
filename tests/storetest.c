/* storetest.c — fixtures of the store suites (see storetest.h); moved from test_store.c. */
#define _GNU_SOURCE
#include "storetest.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgtest.h"

char g_dir[256];
char g_uri[512];
td_error g_err;

void mk_tmpdir(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/traind_store_XXXXXX");
    ck_assert(mkdtemp(g_dir) != NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

void rm_tmpdir(void) { rm_dir(g_dir); }

void rm_dir(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

void fresh_pg_db(void) { td_pgtest_newdb(g_uri, sizeof g_uri); }


td_store *open_store(void)
{
    td_store *s = NULL;
    EXPECT(TD_OK, td_store_open_uri(&s, g_dir, g_uri, E));
    ck_assert(s != NULL);
    return s;
}

/* Entries of g_dir/sub whose name contains needle (NULL: all). */
int count_files(const char *sub, const char *needle)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, sub);
    DIR *d = opendir(path);
    ck_assert(d != NULL);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && (!needle || strstr(de->d_name, needle))) n++;
    closedir(d);
    return n;
}

void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    ck_assert(f != NULL);
    ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
    int c = fgetc(f);
    ck_assert_int_ne(c, EOF);
    ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
    fputc(c ^ 0x40, f);
    fclose(f);
}


void make_ds(fixture_ds *f, int64_t N, int64_t D, int64_t G, int64_t P, int probs, unsigned seed)
{
    memset(f, 0, sizeof *f);
    f->X = malloc(sizeof(float) * (size_t)(N * D));
    for (int64_t i = 0; i < N * D; i++) {
        seed = seed * 1103515245u + 12345u;
        f->X[i] = (float)((int)(seed >> 8) - (1 << 22)) * 1.2345e-5f;
    }
    f->ds.N = N, f->ds.D = D, f->ds.X = f->X;
    if (probs) {
        f->Y = malloc(sizeof(float) * (size_t)(N * G));
        for (int64_t i = 0; i < N * G; i++)
            f->Y[i] = 1.0f / (float)G;
        f->ds.Y = f->Y, f->ds.Y_cols = G;
    } else if (G > 0) {
        f->y = malloc(sizeof(int32_t) * (size_t)(N * G));
        for (int64_t i = 0; i < N * G; i++)
            f->y[i] = (int32_t)(i % 7);
        f->ds.y = f->y, f->ds.y_cols = G;
    }
    if (P > 0) {
        f->pairs = malloc(sizeof(int32_t) * (size_t)(2 * P));
        f->labels = malloc(sizeof(int32_t) * (size_t)P);
        for (int64_t p = 0; p < P; p++) {
            f->pairs[2 * p] = (int32_t)(p % N);
            f->pairs[2 * p + 1] = (int32_t)((p * 3 + 1) % N);
            f->labels[p] = (int32_t)(p & 1);
        }
        f->ds.pairs = f->pairs, f->ds.pair_labels = f->labels, f->ds.P = P;
    }
}

void free_ds(fixture_ds *f) { free(f->X), free(f->y), free(f->Y), free(f->pairs), free(f->labels); }

void put_small_ds(td_store *s, td_dataset_meta *m)
{
    fixture_ds f;
    make_ds(&f, 4, 3, 1, 0, 0, 1);
    EXPECT(TD_OK, td_store_dataset_put(s, &f.ds, "small", m, E));
    free_ds(&f);
}

void insert_job(td_store *s, const char *ds, const char *key, char id[TD_ID_MAX])
{
    td_job_spec spec = {.model = "softmax",
                        .dataset = ds,
                        .hyperparameters = "{\"lr\":0.1}",
                        .epochs = 10,
                        .idempotency_key = key};
    EXPECT(TD_OK, td_store_job_insert(s, &spec, id, E));
}

td_status commit_epoch(td_store *s, const char *id, int64_t epoch, const double *rec, int n,
                       const char *metrics, const void *ck, size_t len, td_error *err)
{
    td_history_batch b = {.n_cols = n,
                          .n_rows = 1,
                          .epochs = &epoch,
                          .records = rec,
                          .metrics_json = metrics,
                          .first = -1,
                          .best = -1,
                          .prev_best = -1};
    td_status st = td_store_history_commit(s, id, &b, err);
    if (!st && ck) st = td_store_checkpoint_save(s, id, epoch, ck, len, err);
    return st;
}
