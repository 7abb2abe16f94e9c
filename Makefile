# traind — build, test, sanitize, bench, install.
#   make            engine library (build/libtraind.a) and the daemon (build/traind)
#   make test       every Check suite (one runner, tests/test_*.c)
#   make asan       the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      the BENCH.md workloads, side by side with the Python peers
#   make fuzz       each libFuzzer target (fuzz/, clang) for FUZZ_SECONDS (default 30)
#   make soak       jobs and status traffic against a daemon for SOAK_SECONDS (default 60)
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

# The fuzz harnesses (without their libFuzzer entry) are linked in for the regress suite.
FUZZ_HARNESS := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard fuzz/fuzz_*.c)))
$(FUZZ_HARNESS): CFLAGS += -DTD_FUZZ_NO_MAIN

# Allocation-failure injection (tests/failalloc.h): only the runner wraps the allocator.
FAILALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc

$(BUILD)/test_runner: $(TEST_OBJS) $(FUZZ_HARNESS) $(BUILD)/libtraind.a
	$(CC) $(LDFLAGS) $(FAILALLOC) -o $@ $^ $(shell pkg-config --libs check) $(LDLIBS)

TD_REFDIR ?= $(abspath ../shared/reference)
export TD_REFDIR

test: $(BUILD)/test_runner $(BUILD)/traind
	TD_BIN=$(abspath $(BUILD)/traind) $(BUILD)/test_runner $(SUITE)

# Leaks fail it too: LeakSanitizer checks at the exit of every process, i.e. of each Check
# test (forked: a leak exits it with 1, an error), of each daemon a test stops (its exit
# code, asserted 0 at SIGTERM, becomes 1, and httpc prints the report from its log) and of
# the runner itself.
asan:
	ASAN_OPTIONS="detect_leaks=1:$$ASAN_OPTIONS" UBSAN_OPTIONS="print_stacktrace=1:$$UBSAN_OPTIONS" \
	$(MAKE) BUILD=build-asan OPT="-O1" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

bench: $(BUILD)/libtraind.a $(BUILD)/traind $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)
	bench/run.sh $(BUILD)

# A daemon under jobs and status traffic for SOAK_SECONDS; prints its memory (VmRSS) at the
# start, after the warm-up and at the end, and fails on a 5xx, a dropped connection, RSS
# growing past SOAK_MAX_GROWTH_MB (default 64) or descriptors leaking (scripts/soak.py).
SOAK_SECONDS ?= 60
soak: $(BUILD)/traind
	python3 scripts/soak.py $(BUILD)/traind $(SOAK_SECONDS)

run: $(BUILD)/traind
	$(BUILD)/traind

install: $(BUILD)/traind
	install -D -m 0755 $(BUILD)/traind $(DESTDIR)$(PREFIX)/bin/traind
	install -D -m 0644 config/traind.conf $(DESTDIR)/etc/traind/traind.conf
	install -D -m 0644 systemd/traind.service $(DESTDIR)$(PREFIX)/lib/systemd/system/traind.service
	sed -i 's|/usr/local/bin/traind|$(PREFIX)/bin/traind|' $(DESTDIR)$(PREFIX)/lib/systemd/system/traind.service

# Each fuzz/fuzz_<name>.c (harness td_fuzz_<name>, fuzz/fuzz.h) is built with clang's
# libFuzzer, ASan and UBSan against build-fuzz/libtraind.a (the library compiled with
# clang and the same sanitizers, plus coverage) and run for FUZZ_SECONDS from the seeds in
# fuzz/seeds/<kind> (<name> without "_dataset") and tests/regress/<name>, with
# fuzz/<kind>.dict when there is one;
# new inputs go to build-fuzz/corpus-<name>, a crash stops the run and leaves
# build-fuzz/crash-* (copy it to tests/regress/<name>/: the regress suite replays it).
FUZZ_SECONDS ?= 30
FUZZ_CC      ?= clang
FUZZ_TARGETS := json_dataset csv_dataset job loss predict config router
FUZZ_FLAGS   := -std=gnu11 -g -O1 -Wno-psabi -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -pthread -Iinclude -Isrc -Ifuzz $(shell pkg-config --cflags $(MODULES)) \
                -DTD_VERSION='"$(VERSION)"'
FUZZ_OBJS    := $(LIB_SRCS:%.c=build-fuzz/%.o) build-fuzz/gen/openapi.o

build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

build-fuzz/gen/openapi.o: $(BUILD)/gen/openapi.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@

build-fuzz/libtraind.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

build-fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h build-fuzz/libtraind.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< build-fuzz/libtraind.a $(LDLIBS)

fuzz: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  k=$${t%_dataset}; mkdir -p build-fuzz/corpus-$$t; \
	  dict=; [ -f fuzz/$$k.dict ] && dict=-dict=fuzz/$$k.dict; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=build-fuzz/ -print_final_stats=1 $$dict \
	    build-fuzz/corpus-$$t fuzz/seeds/$$k $$(ls -d tests/regress/$$t 2>/dev/null) \
	    >build-fuzz/$$t.log 2>&1; rc=$$?; \
	  grep -E '^Done|number_of_executed_units' build-fuzz/$$t.log; \
	  [ $$rc -eq 0 ] || { tail -40 build-fuzz/$$t.log; exit 1; }; \
	done

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all test asan bench run install clean fuzz soak
-include $(BUILD)/src/main.d $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(FUZZ_HARNESS:.o=.d) $(FUZZ_OBJS:.o=.d)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libtraind.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
