/* fuzz_loss.c — libFuzzer target for POST /v1/loss bodies (td_json_loss_eval, which runs
 * the engine's own losses on what it read).
 * Checked: a refusal is TD_EINVAL / TD_EMALFORMED with a message; an answer is JSON that
 * parses back (no NaN or Infinity literal leaks into it) and is an object holding "loss".
 * Run: make fuzz (FUZZ_SECONDS per target). */
#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "http/json_loss.h"

int td_fuzz_loss(const uint8_t *data, size_t size)
{
    td_error err = {{0}, {0}};
    char *out = NULL;
    td_status st = td_json_loss_eval((const char *)data, size, &out, &err);
    if (st != TD_OK) {
        FUZZ_CHECK_REFUSAL(st, err);
        FUZZ_CHECK(out == NULL, "output on error");
        return 0;
    }
    FUZZ_CHECK(out != NULL, "no output");
    cJSON *j = cJSON_Parse(out);
    FUZZ_CHECK(cJSON_IsObject(j) && cJSON_GetObjectItemCaseSensitive(j, "loss"),
               "answer is not an object with \"loss\": %.300s", out);
    cJSON_Delete(j);
    free(out);
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_loss)
