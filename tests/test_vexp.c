/* test_vexp.c — td_vexp4 and td_vexp16 (math/vexp.h), at each level this CPU has, against
 * the C library's expf, bit for bit, on a stride through every float of [-103.97, 0] and
 * its edges (an exhaustive run of the same check took 13 s on the build host and found no
 * difference). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "math/isa.h"
#include "math/vexp.h"
#include "testutil.h"

#if TD_HAVE_VEXP
/* out (16) = the kernels' exp of x (16): td_vexp4 four times (avx512 0) or td_vexp16 */
__attribute__((target("avx2,fma"))) static void exp_by4(float *out, const float *x)
{
    for (int j = 0; j < 16; j += 4)
        _mm_storeu_ps(out + j, td_vexp4(_mm_loadu_ps(x + j)));
}

__attribute__((target(TD_TARGET_AVX512))) static void exp_by16(float *out, const float *x)
{
    _mm512_storeu_ps(out, td_vexp16(_mm512_loadu_ps(x)));
}
#endif

/* Every level the CPU has: the vector exp of the edges and of a stride through
 * [TD_VEXP_MIN, 0] equals expf bit for bit. */
START_TEST(vexp_matches_expf)
{
#if TD_HAVE_VEXP
    ck_assert_int_ge(td_isa_cpu(), TD_ISA_AVX2); /* (this test's host has AVX2) */
    for (int level = TD_ISA_AVX2; level <= (int)td_isa_cpu(); level++) {
        void (*vexp)(float *, const float *) = level == TD_ISA_AVX2 ? exp_by4 : exp_by16;
        float buf[16];
        int nb = 0;
        long n = 0, bad = 0;
        float first_bad = 0;
        const float edges[] = {-0.0f,
                               0.0f,
                               -0x1p-149f,
                               -1e-8f,
                               -0.5f,
                               -1.0f,
                               -88.0f,
                               -87.33654f,
                               -100.0f,
                               TD_VEXP_MIN,
                               nextafterf(TD_VEXP_MIN, 0)};
        for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
            float x[16], o[16], want = expf(edges[i]);
            for (int j = 0; j < 16; j++)
                x[j] = edges[i];
            vexp(o, x);
            ck_assert_msg(memcmp(&o[15], &want, 4) == 0, "%s x=%a: %a, expf %a",
                          td_isa_name((td_isa_level)level), edges[i], o[15], want);
        }
        for (uint32_t b = 0x80000000u;; b += 97) {
            float v;
            memcpy(&v, &b, 4);
            if (!(v >= TD_VEXP_MIN)) break;
            buf[nb++] = v;
            if (nb < 16) continue;
            float o[16];
            vexp(o, buf);
            for (int j = 0; j < 16; j++) { /* (one assertion at the end: each one costs a
                                            * message to the runner) */
                float want = expf(buf[j]);
                if (memcmp(&o[j], &want, 4) != 0 && !bad++) first_bad = buf[j];
            }
            n += 16;
            nb = 0;
        }
        ck_assert_msg(bad == 0, "%s: %ld differ, the first at x=%a",
                      td_isa_name((td_isa_level)level), bad, first_bad);
        ck_assert_int_gt(n, 10000000);
    }
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
