/* test_docs.c — the documentation is current and self-contained:
 *   hyperparameters_md   docs/hyperparameters.md is what `make docs` writes now
 *                        (td_hparams_markdown, from the hyperparameter table)
 *   openapi_describes    every row of the table has a description in docs/openapi.json's
 *                        Hyperparameters schema (a dotted name in its nested object)
 *   self_contained       README.md, the Markdown under docs/ and docs/openapi.json point at nothing
 *                        outside the repository (no SPEC file, no relative path
 *                        that climbs out of it) */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "http/catalog.h"
#include "testutil.h"
#include "traind/hparams.h"

START_TEST(hyperparameters_md_is_current)
{
    char *want = td_hparams_markdown(), *have = tu_read_file("docs/hyperparameters.md", NULL);
    ck_assert_ptr_nonnull(want);
    if (strcmp(want, have) != 0) {
        size_t i = 0;
        while (want[i] && want[i] == have[i])
            i++;
        ck_abort_msg("docs/hyperparameters.md is not current (run make docs); it differs at "
                     "byte %zu: \"%.60s\" vs \"%.60s\"",
                     i, have + i, want + i);
    }
    /* and it says what matters: a row of each model */
    ck_assert_ptr_nonnull(strstr(have, "| `standardize` | boolean | false |"));
    ck_assert_ptr_nonnull(strstr(have, "| `lr` | number | 0.1 | > 0, ≤ 1000000 |"));
    ck_assert_ptr_nonnull(strstr(have, "## embed_gmm"));
    free(want);
    free(have);
}
END_TEST

START_TEST(openapi_describes_every_hyperparameter)
{
    char *text = tu_read_file("docs/openapi.json", NULL);
    cJSON *doc = cJSON_Parse(text);
    ck_assert_ptr_nonnull(doc);
    const cJSON *props = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "components"), "schemas"),
                            "Hyperparameters"),
        "properties");
    ck_assert_ptr_nonnull(props);
    for (size_t i = 0; i < td_hparam_ndefs; i++) {
        const char *name = td_hparam_defs[i].name, *dot = strchr(name, '.');
        const cJSON *p;
        if (dot) {
            char group[64];
            snprintf(group, sizeof group, "%.*s", (int)(dot - name), name);
            p = cJSON_GetObjectItem(
                cJSON_GetObjectItem(cJSON_GetObjectItem(props, group), "properties"), dot + 1);
        } else {
            p = cJSON_GetObjectItem(props, name);
        }
        ck_assert_msg(p != NULL, "docs/openapi.json: Hyperparameters lacks %s", name);
        const cJSON *d = cJSON_GetObjectItem(p, "description");
        ck_assert_msg(cJSON_IsString(d) && strlen(d->valuestring) > 5,
                      "docs/openapi.json: Hyperparameters.%s has no description", name);
    }
    cJSON_Delete(doc);
    free(text);
}
END_TEST

START_TEST(docs_point_inside_the_repository)
{
    glob_t g;
    ck_assert_int_eq(glob("docs/*.md", 0, NULL, &g), 0);
    ck_assert_int_eq(glob("README.md", GLOB_APPEND, NULL, &g), 0);
    ck_assert_int_eq(glob("docs/openapi.json", GLOB_APPEND, NULL, &g), 0);
    static const char *const outside[] = {"SPEC", "/work/"};
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char *s = tu_read_file(g.gl_pathv[i], NULL);
        for (size_t k = 0; k < sizeof outside / sizeof outside[0]; k++) {
            const char *at = strstr(s, outside[k]);
            ck_assert_msg(at == NULL, "%s points outside the repository: \"%.50s\"", g.gl_pathv[i],
                          at);
        }
        /* "../" climbs out of the repository from README.md or docs/ ("/.../" is prose) */
        for (const char *at = strstr(s, "../"); at; at = strstr(at + 1, "../"))
            ck_assert_msg(at > s && at[-1] == '.',
                          "%s points outside the repository: "
                          "\"%.50s\"",
                          g.gl_pathv[i], at);
        free(s);
    }
    ck_assert_uint_ge(g.gl_pathc, 4);
    globfree(&g);
}
END_TEST

Suite *suite_docs(void)
{
    Suite *s = suite_create("docs");
    TCase *tc = tcase_create("docs");
    tcase_add_test(tc, hyperparameters_md_is_current);
    tcase_add_test(tc, openapi_describes_every_hyperparameter);
    tcase_add_test(tc, docs_point_inside_the_repository);
    suite_add_tcase(s, tc);
    return s;
}
