/* isa.c — the run-time choice of kernel variants (see isa.h). */
#include "math/isa.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static td_isa_level cpu_level = TD_ISA_GENERIC, chosen = TD_ISA_GENERIC;

static const char *const names[] = {"generic", "avx2", "avx512"};

int td_isa_parse(const char *s)
{
    for (int i = 0; s && i < (int)(sizeof names / sizeof *names); i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

const char *td_isa_name(td_isa_level level)
{
    return level >= TD_ISA_GENERIC && level <= TD_ISA_AVX512 ? names[level] : "unknown";
}

static void decide(void)
{
#if TD_ISA_MULTI
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        cpu_level = TD_ISA_AVX512;
    else if (__builtin_cpu_supports("x86-64-v3"))
        cpu_level = TD_ISA_AVX2;
#endif
    chosen = cpu_level;
    int want = td_isa_parse(getenv("TD_ISA"));
    if (want >= 0 && want < (int)chosen) chosen = (td_isa_level)want;
}

td_isa_level td_isa_cpu(void)
{
    pthread_once(&once, decide);
    return cpu_level;
}

td_isa_level td_isa(void)
{
    pthread_once(&once, decide);
    return chosen;
}

td_isa_level td_isa_force(td_isa_level level)
{
    pthread_once(&once, decide);
    td_isa_level before = chosen;
    chosen = level < cpu_level ? level : cpu_level;
    return before;
}
