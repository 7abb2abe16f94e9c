/* test_vexp.c — td_vexp4 (math/vexp.h) against the C library's expf, bit for bit, on a
 * stride through every float of [-103.97, 0] and its edges (an exhaustive run of the
 * same check took 13 s on the build host and found no difference). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "math/vexp.h"
#include "testutil.h"

START_TEST(vexp_matches_expf)
{
#if TD_HAVE_VEXP
    float buf[4];
    int nb = 0;
    long n = 0, bad = 0;
    float first_bad = 0;
    const float edges[] = {-0.0f, 0.0f, -0x1p-149f, -1e-8f, -0.5f, -1.0f, -88.0f,
                           -87.33654f, -100.0f, TD_VEXP_MIN, nextafterf(TD_VEXP_MIN, 0)};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        __m128 x = _mm_set1_ps(edges[i]);
        float o[4], want = expf(edges[i]);
        _mm_storeu_ps(o, td_vexp4(x));
        ck_assert_msg(memcmp(&o[0], &want, 4) == 0, "x=%a: %a, expf %a", edges[i], o[0], want);
    }
    for (uint32_t b = 0x80000000u;; b += 97) {
        float v;
        memcpy(&v, &b, 4);
        if (!(v >= TD_VEXP_MIN))
            break;
        buf[nb++] = v;
        if (nb < 4)
            continue;
        float o[4];
        _mm_storeu_ps(o, td_vexp4(_mm_loadu_ps(buf)));
        for (int j = 0; j < 4; j++) { /* (one assertion at the end: each one costs a
                                       * message to the runner) */
            float want = expf(buf[j]);
            if (memcmp(&o[j], &want, 4) != 0 && !bad++)
                first_bad = buf[j];
        }
        n += 4;
        nb = 0;
    }
    ck_assert_msg(bad == 0, "%ld differ, the first at x=%a", bad, first_bad);
    ck_assert_int_gt(n, 10000000);
#endif
}
END_TEST

Suite *suite_vexp(void)
{
    Suite *s = suite_create("vexp");
    TCase *tc = tcase_create("vexp");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, vexp_matches_expf);
    suite_add_tcase(s, tc);
    return s;
}
