/* runner.c — runs the Check suites of its suites.inc in one SRunner. Compiled once per
 * runner (Makefile): build/engine_runner (the engine suites, ENGINE_TESTS) and
 * build/test_runner (the others).
 * Usage: <runner> [suite-name]   (e.g. "loss" runs only suite_loss) */
#include <check.h>
#include <stdio.h>
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
    int added = 0;
#define X(fn) \
    if (!only || strcmp(only, #fn + 6) == 0) srunner_add_suite(sr, fn()), added++;
#include "suites.inc"
#undef X
    if (!added) {
        fprintf(stderr, "%s: no suite named \"%s\"\n", argv[0], only);
        srunner_free(sr);
        return EXIT_FAILURE;
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
