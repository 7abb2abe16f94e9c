/* fuzz_config.c — libFuzzer target for the config file parser (td_config_parse over the
 * embedded defaults, as td_config_load_file applies a file; the input up to its first NUL
 * byte, which load_file refuses).
 * Checked: a refusal is TD_EINVAL with a message that names the line ("fuzz:N: ..."); an
 * accepted file leaves a configuration whose td_config_dump parses back to the same dump
 * (what --check-config prints is a valid config file of the same settings).
 * Run: make fuzz (FUZZ_SECONDS per target). */
#define _GNU_SOURCE /* open_memstream */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "util/config.h"

static char *dump(const td_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    FUZZ_CHECK(f != NULL, "open_memstream");
    td_config_dump(c, f);
    fclose(f);
    return text;
}

int td_fuzz_config(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL, "out of memory");
    memcpy(text, data, size);
    text[size] = '\0';
    td_config c;
    td_config_defaults(&c);
    td_error err = {{0}, {0}};
    td_status st = td_config_parse(&c, text, "fuzz", &err);
    if (st != TD_OK) {
        FUZZ_CHECK(st == TD_EINVAL, "status %s: %s", td_status_code(st), err.message);
        FUZZ_CHECK(strncmp(err.message, "fuzz:", 5) == 0, "message names no line: %s", err.message);
        free(text);
        return 0;
    }
    char *d1 = dump(&c);
    td_config c2;
    td_config_defaults(&c2);
    st = td_config_parse(&c2, d1, "dump", &err);
    FUZZ_CHECK(st == TD_OK, "the dump does not parse: %s\n%s", err.message, d1);
    char *d2 = dump(&c2);
    FUZZ_CHECK(strcmp(d1, d2) == 0, "the dump does not parse back to itself:\n%s\n%s", d1, d2);
    free(d1);
    free(d2);
    free(text);
    return 0;
}

TD_FUZZ_ENTRY(td_fuzz_config)
