/* fuzz.h — what the libFuzzer targets of fuzz/ share.
 *
 * Each fuzz/fuzz_<name>.c defines its harness as int td_fuzz_<name>(data, size) and,
 * unless TD_FUZZ_NO_MAIN is defined, the libFuzzer entry point that calls it. `make fuzz`
 * builds them with clang's libFuzzer; the test runner links them with TD_FUZZ_NO_MAIN and
 * tests/test_regress.c replays the saved inputs (tests/regress/<name>/, fuzz/seeds/) through
 * the same harnesses, under ASan + UBSan in `make asan`.
 *
 * A harness fails by FUZZ_CHECK (message, then abort()): libFuzzer saves the input as a
 * crash; under Check the replaying test dies of SIGABRT. */
#ifndef TRAIND_FUZZ_H
#define TRAIND_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "traind/status.h"

/* The size of the next piece of a body fed in pieces, `left` bytes still to feed: mode 0
 * the rest at once, 1 a byte at a time, 2 pseudo-random sizes 1 .. most from *seed. */
static inline size_t fuzz_piece(int mode, uint64_t *seed, size_t left, size_t most)
{
    size_t n = left;
    if (mode == 1)
        n = 1;
    else if (mode == 2) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        n = 1 + (size_t)(*seed >> 33) % most;
    }
    return n < left ? n : left;
}

#define FUZZ_CHECK(cond, ...)                                                             \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* A failure of a parser fed user input: a refusal with a message, never a programmer
 * error, an I/O error or an out-of-memory from a small body. */
#define FUZZ_CHECK_REFUSAL(st, err)                                                            \
    do {                                                                                       \
        FUZZ_CHECK((st) == TD_EINVAL || (st) == TD_EMALFORMED, "status %s (field \"%s\"): %s", \
                   td_status_code(st), (err).field, (err).message);                            \
        FUZZ_CHECK((err).message[0] != '\0', "refusal without a message");                     \
    } while (0)

#ifdef TD_FUZZ_NO_MAIN
#define TD_FUZZ_ENTRY(fn)
#else
#define TD_FUZZ_ENTRY(fn)                                         \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#endif

int td_fuzz_json_dataset(const uint8_t *data, size_t size);
int td_fuzz_csv_dataset(const uint8_t *data, size_t size);
int td_fuzz_job(const uint8_t *data, size_t size);
int td_fuzz_loss(const uint8_t *data, size_t size);
int td_fuzz_predict(const uint8_t *data, size_t size);
int td_fuzz_config(const uint8_t *data, size_t size);
int td_fuzz_router(const uint8_t *data, size_t size);
int td_fuzz_train(const uint8_t *data, size_t size);
int td_fuzz_npy(const uint8_t *data, size_t size);

#endif
