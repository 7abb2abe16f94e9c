/* testutil_codec.c — the helpers of testutil.h that read through the codec (src/codec):
 * linked into build/test_runner only, so an engine suite that calls one fails to link. */
#include <string.h>

#include "codec/json_util.h"
#include "testutil.h"

cJSON *tu_parse(const char *text)
{
    cJSON *o = NULL;
    td_error err;
    ck_assert_msg(td_json_parse(&o, text, strlen(text), &err) == TD_OK, "%s", err.message);
    return o;
}
