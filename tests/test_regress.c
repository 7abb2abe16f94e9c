/* test_regress.c — fuzz findings kept as regression tests.
 *
 *   replay  every file of tests/regress/<target>/ (an input that once crashed
 *           fuzz/fuzz_<target>.c or broke one of its checks, named for the bug) and of the
 *           target's seeds (fuzz/seeds/<kind>/) goes through that target's harness
 *           (td_fuzz_<target>, linked into the runner with TD_FUZZ_NO_MAIN), so `make test`
 *           and `make asan` re-run them with the harness's checks and the sanitizers. A
 *           failing check aborts; the handler below names the file first.
 *   found   the bugs behind those inputs, asserted directly at the API that had them (those
 *           in the engine's API are in test_regress_engine.c).
 * Paths are relative to the repository root (where make runs the tests). */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fuzz/fuzz.h"
#include "testutil.h"
#include "util/config.h"

typedef int (*harness_fn)(const uint8_t *, size_t);

static const struct {
    const char *name, *seeds;
    harness_fn fn;
} targets[] = {
    {"json_dataset", "json", td_fuzz_json_dataset},
    {"csv_dataset", "csv", td_fuzz_csv_dataset},
    {"job", "job", td_fuzz_job},
    {"loss", "loss", td_fuzz_loss},
    {"predict", "predict", td_fuzz_predict},
    {"config", "config", td_fuzz_config},
    {"router", "router", td_fuzz_router},
    {"train", "train", td_fuzz_train},
    {"npy", "npy", td_fuzz_npy},
};
#define NTARGETS (sizeof targets / sizeof targets[0])

static char g_current[512];

static void on_abort(int sig)
{
    static const char pre[] = "regress: the harness failed on ";
    ssize_t w = write(2, pre, sizeof pre - 1);
    w = write(2, g_current, strlen(g_current));
    w = write(2, "\n", 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Feeds every regular file of dir to fn; returns how many. */
static int replay_dir(const char *dir, harness_fn fn)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        snprintf(g_current, sizeof g_current, "%s/%s", dir, de->d_name);
        FILE *f = fopen(g_current, "rb");
        ck_assert_msg(f != NULL, "cannot open %s", g_current);
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        rewind(f);
        uint8_t *buf = malloc((size_t)len + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
        fclose(f);
        fn(buf, (size_t)len);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

START_TEST(replay)
{
    signal(SIGABRT, on_abort);
    char dir[256];
    snprintf(dir, sizeof dir, "tests/regress/%s", targets[_i].name);
    int n = replay_dir(dir, targets[_i].fn);
    snprintf(dir, sizeof dir, "fuzz/seeds/%s", targets[_i].seeds);
    int m = replay_dir(dir, targets[_i].fn);
    ck_assert_msg(m > 0, "no seeds in %s (run the tests from the repository root)", dir);
    (void)n;
    signal(SIGABRT, SIG_DFL);
}
END_TEST

/* ---- found ------------------------------------------------------------------------- */

/* tests/regress/config/value-starting-with-hash: "state_dir =#x" set state_dir to "#x",
 * which --check-config printed as "state_dir = #x", a comment: the dump did not read back.
 * A value that begins with '#' is now a comment, as " # x" after a value always was. */
START_TEST(config_value_starting_with_hash_is_a_comment)
{
    td_config c;
    td_config_defaults(&c);
    td_error err = {{0}, {0}};
    ck_assert_int_eq(td_config_parse(&c, "auth_token_file =#x\n", "t", &err), TD_OK);
    ck_assert_str_eq(c.auth_token_file, "");
    ck_assert_int_eq(td_config_parse(&c, "state_dir =#x\n", "t", &err), TD_EINVAL);
    ck_assert_str_eq(err.field, "state_dir");
    td_config_defaults(&c);
    ck_assert_int_eq(td_config_parse(&c, "state_dir = a#b # c\n", "t", &err), TD_OK);
    ck_assert_str_eq(c.state_dir, "a#b");
}
END_TEST

Suite *suite_regress(void)
{
    Suite *s = suite_create("regress");
    TCase *tc = tcase_create("replay");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, replay, 0, (int)NTARGETS);
    suite_add_tcase(s, tc);
    TCase *found = tcase_create("found");
    tcase_add_test(found, config_value_starting_with_hash_is_a_comment);
    suite_add_tcase(s, found);
    return s;
}
