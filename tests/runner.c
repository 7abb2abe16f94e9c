/* runner.c — runs every Check suite of tests/test_*.c in one SRunner.
 * Usage: test_runner [suite-name]   (e.g. "loss" runs only suite_loss) */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#define X(fn) Suite *fn(void);
#include "suites.inc"
#undef X

int main(int argc, char **argv)
{
    /* Tests that train or start a daemon need more than Check's default 4 s. */
    setenv("CK_DEFAULT_TIMEOUT", "120", 0);
    const char *only = argc > 1 ? argv[1] : NULL;
    SRunner *sr = srunner_create(NULL);
#define X(fn) \
    if (!only || strcmp(only, #fn + 6) == 0) srunner_add_suite(sr, fn());
#include "suites.inc"
#undef X
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
