# traind — build, test, sanitize, bench, install.
#   make            engine library (build/libtraind.a) and the daemon (build/traind)
#   make test       every Check suite (one runner, tests/test_*.c)
#   make asan       the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      the BENCH.md workloads, side by side with the Python peers
#   make run        build and start the daemon on its embedded defaults
#   make install    PREFIX=/usr/local DESTDIR=
# Missing Debian packages are installed by scripts/deps.sh (as root) before anything builds.

BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
MODULES := libmicrohttpd libcjson openblas sqlite3
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

ifeq ($(filter clean,$(MAKECMDGOALS)),)
DEPS_STATUS := $(shell scripts/deps.sh 1>&2 && echo ok)
ifneq ($(DEPS_STATUS),ok)
$(error missing build dependencies; see the message above)
endif
endif

OPT     ?= -O3 -march=native
SAN     ?=
CFLAGS  += -std=gnu11 $(OPT) -fno-math-errno -g -Wall -Wextra -Wshadow -Wno-unused-parameter -pthread \
           -Iinclude -Isrc $(shell pkg-config --cflags $(MODULES)) \
           -DTD_VERSION='"$(VERSION)"' $(SAN)
LDLIBS  += $(shell pkg-config --libs $(MODULES)) -lm -pthread
LDFLAGS += $(SAN)

LIB_SRCS  := $(sort $(wildcard src/*/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(sort $(wildcard tests/*.c))
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)
BENCH_SRCS:= $(sort $(wildcard bench/*.c))

all: $(BUILD)/libtraind.a $(BUILD)/traind

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# docs/openapi.json, served at GET /v1/openapi.json, is compiled in as bytes (od: no xxd).
$(BUILD)/gen/openapi.c: docs/openapi.json
	@mkdir -p $(dir $@)
	@{ echo '/* generated from docs/openapi.json by the Makefile; do not edit */'; \
	   echo '#include <stddef.h>'; \
	   echo 'const unsigned char td_openapi_json[] = {'; \
	   od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	   echo '0x00};'; \
	   echo 'const size_t td_openapi_json_len = sizeof td_openapi_json - 1;'; } > $@.tmp && \
	 mv $@.tmp $@

$(BUILD)/gen/openapi.o: $(BUILD)/gen/openapi.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtraind.a: $(LIB_OBJS) $(BUILD)/gen/openapi.o
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/traind: $(BUILD)/src/main.o $(BUILD)/libtraind.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Every tests/test_*.c defines one or more "Suite *suite_<name>(void)"; the runner calls
# them all, so adding a test file needs no edit here.
$(BUILD)/tests/suites.inc: $(TEST_SRCS)
	@mkdir -p $(dir $@)
	@grep -ho '^Suite \*suite_[a-z0-9_]*(void)' $(TEST_SRCS) | \
	   sed 's/^Suite \*\(suite_[a-z0-9_]*\)(void)/X(\1)/' > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/runner.o: $(BUILD)/tests/suites.inc
$(BUILD)/tests/runner.o: CFLAGS += -I$(BUILD)/tests

$(BUILD)/test_runner: $(TEST_OBJS) $(BUILD)/libtraind.a
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs check) $(LDLIBS)

TD_REFDIR ?= $(abspath ../shared/reference)
export TD_REFDIR

test: $(BUILD)/test_runner $(BUILD)/traind
	TD_BIN=$(abspath $(BUILD)/traind) $(BUILD)/test_runner $(SUITE)

asan:
	$(MAKE) BUILD=build-asan OPT="-O1" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

bench: $(BUILD)/libtraind.a $(BUILD)/traind $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
	bench/run.sh $(BUILD)

run: $(BUILD)/traind
	$(BUILD)/traind

install: $(BUILD)/traind
	install -D -m 0755 $(BUILD)/traind $(DESTDIR)$(PREFIX)/bin/traind
	install -D -m 0644 config/traind.conf $(DESTDIR)/etc/traind/traind.conf
	install -D -m 0644 systemd/traind.service $(DESTDIR)$(PREFIX)/lib/systemd/system/traind.service
	sed -i 's|/usr/local/bin/traind|$(PREFIX)/bin/traind|' $(DESTDIR)$(PREFIX)/lib/systemd/system/traind.service

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all test asan bench run install clean
-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libtraind.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
