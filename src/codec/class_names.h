/* class_names.h — class names as JSON text (the interner is util/names.h). */
#ifndef TRAIND_CODEC_CLASS_NAMES_H
#define TRAIND_CODEC_CLASS_NAMES_H

#include <stdint.h>

#include "traind/status.h"
#include "util/names.h"

/* The class names as a JSON array text ("[\"a\",\"b\"]"), malloc'd; NULL when out of
 * memory. And back: *out gets n strings; TD_EINVAL when text is not an array of strings. */
char *td_strings_json(char *const *v, int64_t n);
td_status td_strings_parse(const char *text, char ***out, int64_t *n, td_error *err);

#endif
