/* test_status.c — td_fail and status codes. */
#include "testutil.h"
#include "traind/status.h"

START_TEST(fail_fills_error)
{
    td_error e;
    ck_assert_int_eq(td_fail(&e, TD_EINVAL, "hyperparameters.lr", "must be > 0, got %g", -1.0),
                     TD_EINVAL);
    ck_assert_str_eq(e.field, "hyperparameters.lr");
    ck_assert_str_eq(e.message, "must be > 0, got -1");
    ck_assert_str_eq(td_status_code(TD_EDIVERGED), "diverged");
    ck_assert_str_eq(td_status_code(TD_ENOSPACE), "insufficient_storage");
    ck_assert_int_eq(td_fail(NULL, TD_EIO, NULL, "x"), TD_EIO);
}
END_TEST

Suite *suite_status(void)
{
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, fail_fills_error);
    suite_add_tcase(s, tc);
    return s;
}
