# traind — build, test, sanitize, bench, install.
#   make            the libraries (build/libtraind.a, build/libtraind_engine.a) and the daemon
#   make examples   examples/*.c, built against the engine library alone (build/examples/)
#   make engine-check  fails if the engine library holds an HTTP, JSON or SQLite symbol
#   make test       every Check suite (tests/test_*.c): the engine suites in build/engine_runner,
#                   linked against the engine library alone, the others in build/test_runner
#   make asan       the same suites under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      the BENCH.md workloads, side by side with the Python peers
#   make fuzz       each libFuzzer target (fuzz/, clang) for FUZZ_SECONDS (default 30)
#   make soak       jobs and status traffic against a daemon for SOAK_SECONDS (default 60)
#   make run        build and start the daemon on its embedded defaults (flags: ARGS="...")
#   make docs       regenerate docs/hyperparameters.md from the hyperparameter table
#   make style      fails when a C file differs from .clang-format's layout (CI runs it)
#   make format     rewrites the C files in that layout
#   make install    PREFIX=/usr/local DESTDIR=  (an edited /etc/traind/traind.conf is kept)
#   make uninstall  the same PREFIX and DESTDIR
#   make deps       install the missing Debian packages (scripts/deps.sh; as root)
#   make reference  remake tests/data/reference (PyTorch, scikit-learn; see its VERSIONS)
# Every build depends on `deps` (order-only), so missing packages are installed before the
# first compile, never while the Makefile is read: `make -n` installs nothing. The
# pkg-config flags are expanded when a recipe runs, after `deps`.

BUILD   ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
MODULES := libmicrohttpd libcjson openblas sqlite3 gnutls zlib libprotobuf-c libpq
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

# Deferred (=), and so run only when a recipe needs them: after `deps`, on a fresh machine.
PKG_CFLAGS = $(shell pkg-config --cflags $(MODULES) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(MODULES) 2>/dev/null)

# Debian packages the tests use beyond the build's: numpy (tests/npy_*.py), onnx (its
# checker) and node (onnxruntime-node, installed by npm into build/node: see test).
TEST_PKGS := python3-numpy python3-onnx

OPT     ?= -O3 -march=x86-64 -mtune=generic
SAN     ?=
CFLAGS  += -std=gnu11 $(OPT) -fno-math-errno -g -Wall -Wextra -Wshadow -Wno-unused-parameter -pthread \
           -Iinclude -Isrc -I$(BUILD)/gen $(PKG_CFLAGS) \
           -DTD_VERSION='"$(VERSION)"' $(SAN)
LDLIBS  += $(PKG_LIBS) -lm -pthread
LDFLAGS += $(SAN)

LIB_SRCS  := $(sort $(wildcard src/*/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(sort $(wildcard tests/*.c))
TEST_OBJS := $(TEST_SRCS:%.c=$(BUILD)/%.o)
# The engine suites test src/train and src/math through the engine alone and run in
# build/engine_runner (below), with the helpers named here; every other tests/*.c goes into
# build/test_runner (the suites that start a daemon or use the codec or the store, and their
# helpers: api.c, storetest.c, testutil_codec.c...). A new engine suite is added here.
ENGINE_TESTS := $(patsubst %,tests/test_%.c,softmax mlp gmm embed loss family standardize isa \
                  vexp status memory engine crash_engine faults_engine regress_engine)
ENGINE_TEST_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(ENGINE_TESTS) tests/testutil.c \
                      tests/fixtures.c tests/failalloc.c) $(BUILD)/tests/engine/runner.o
DAEMON_TEST_SRCS := $(filter-out $(ENGINE_TESTS),$(TEST_SRCS))
BENCH_SRCS:= $(sort $(wildcard bench/*.c))

# The embeddable engine: the trainers and kernels (src/train, src/math) and td_status,
# nothing of HTTP, JSON or storage; it needs only OpenBLAS, libm and pthreads. The
# examples, bench/ and the engine suites (ENGINE_TESTS, below) link against it alone, so the
# linker enforces the boundary; engine-check, run by make test, holds the library to it.
ENGINE_SRCS := $(sort $(wildcard src/train/*.c src/math/*.c)) src/util/status.c src/util/clock.c
ENGINE_OBJS := $(ENGINE_SRCS:%.c=$(BUILD)/%.o)
ENGINE_LIBS  = $(shell pkg-config --libs openblas 2>/dev/null) -lm -pthread
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLES     := $(EXAMPLE_SRCS:examples/%.c=$(BUILD)/examples/%)

all: $(BUILD)/libtraind.a $(BUILD)/libtraind_engine.a $(BUILD)/traind | deps

# Phony, so it runs once per make (cheap: pkg-config --exists when nothing is missing);
# order-only (after |) below, so it never makes a target out of date.
deps:
	@scripts/deps.sh

# What the test suites need beyond the build (see TEST_PKGS).
test-deps: | deps
	@scripts/deps.sh --test $(TEST_PKGS)

$(BUILD)/%.o: %.c | deps
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

# The build fingerprint (src/math/fingerprint.h) names the flags that change the numbers.
$(BUILD)/src/math/fingerprint.o: CFLAGS += -DTD_BUILD_FLAGS='"$(strip $(OPT) $(SAN))"'

$(BUILD)/gen/openapi.o: $(BUILD)/gen/openapi.c | deps
	$(CC) $(CFLAGS) -c $< -o $@

# The ONNX schema (third_party/onnx/onnx.proto, vendored) compiled by protoc-c for
# src/codec/model_onnx.c.
$(BUILD)/gen/onnx.pb-c.c: third_party/onnx/onnx.proto | deps
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen --proto_path=third_party/onnx onnx.proto

$(BUILD)/gen/onnx.pb-c.h: $(BUILD)/gen/onnx.pb-c.c ;

$(BUILD)/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/src/codec/model_onnx.o: $(BUILD)/gen/onnx.pb-c.h


# The dashboard (web/, web/vendor/), served at GET / and /assets/<name>, is compiled in the
# same way (scripts/embed_web.sh: one byte array per file and the table of http/static.h).
WEB_FILES := $(sort $(wildcard web/*.html web/*.js web/*.css web/*.svg web/vendor/*))
$(BUILD)/gen/web.c: $(WEB_FILES) scripts/embed_web.sh
	@mkdir -p $(dir $@)
	@scripts/embed_web.sh $@ $(WEB_FILES)

$(BUILD)/gen/web.o: $(BUILD)/gen/web.c | deps
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtraind.a: $(LIB_OBJS) $(BUILD)/gen/openapi.o $(BUILD)/gen/onnx.pb-c.o $(BUILD)/gen/web.o
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtraind_engine.a: $(ENGINE_OBJS)
	@rm -f $@
	ar rcs $@ $^

# Fails when the engine library defines or needs a libmicrohttpd, cJSON or SQLite symbol.
engine-check: $(BUILD)/libtraind_engine.a
	@if nm $< | grep -E ' [A-Za-z] (MHD_|cJSON_|sqlite3_)'; then \
	  echo "engine-check: $< holds HTTP, JSON or SQLite symbols (above)"; exit 1; \
	else echo "engine-check: $< has no MHD_, cJSON_ or sqlite3_ symbols"; fi

# Compiled with the public headers only (include/traind) and linked against the engine.
$(BUILD)/examples/%: examples/%.c $(BUILD)/libtraind_engine.a | deps
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(OPT) -g -Wall -Wextra -Wshadow -pthread $(SAN) -Iinclude -o $@ $< \
	  $(BUILD)/libtraind_engine.a $(ENGINE_LIBS)

examples: $(EXAMPLES)

$(BUILD)/traind: $(BUILD)/src/main.o $(BUILD)/libtraind.a | deps
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Every tests/test_*.c defines one or more "Suite *suite_<name>(void)"; a runner calls all
# those of its files (the list in its suites.inc), so adding a test file needs no edit here
# (an engine suite: one word in ENGINE_TESTS). tests/runner.c is compiled once per runner,
# each time finding its own suites.inc.
SUITES_INC = grep -ho '^Suite \*suite_[a-z0-9_]*(void)' $^ | \
               sed 's/^Suite \*\(suite_[a-z0-9_]*\)(void)/X(\1)/' > $@.tmp && mv $@.tmp $@
$(BUILD)/tests/suites.inc: $(DAEMON_TEST_SRCS)
	@mkdir -p $(dir $@)
	@$(SUITES_INC)
$(BUILD)/tests/engine/suites.inc: $(ENGINE_TESTS)
	@mkdir -p $(dir $@)
	@$(SUITES_INC)

$(BUILD)/tests/runner.o: $(BUILD)/tests/suites.inc
$(BUILD)/tests/runner.o: CFLAGS += -I$(BUILD)/tests
$(BUILD)/tests/engine/runner.o: tests/runner.c $(BUILD)/tests/engine/suites.inc | deps
	$(CC) $(CFLAGS) -I$(BUILD)/tests/engine -MMD -MP -c $< -o $@

# The fuzz harnesses (without their libFuzzer entry) are linked in for the regress suite;
# some compare against a reference in tests/ (dataset_tree.h), hence -Itests.
FUZZ_HARNESS := $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard fuzz/fuzz_*.c)))
$(FUZZ_HARNESS): CFLAGS += -DTD_FUZZ_NO_MAIN -Itests

# Allocation-failure injection (tests/failalloc.h): only the runners wrap the allocator.
FAILALLOC := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc,--wrap=free

$(BUILD)/test_runner: $(DAEMON_TEST_SRCS:%.c=$(BUILD)/%.o) $(FUZZ_HARNESS) $(BUILD)/libtraind.a | deps
	$(CC) $(LDFLAGS) $(FAILALLOC) -o $@ $^ $(shell pkg-config --libs check) $(LDLIBS)

# The engine suites against the engine library, Check, OpenBLAS and libm alone: no
# libtraind.a, libmicrohttpd or SQLite, so an engine suite that calls into the codec, the
# store or the server fails to link. cJSON is there for the suites' own reading of the
# reference vectors (testutil.h's tu_ref_load, fixtures.h's flatten), not for the engine:
# it has no cJSON symbol (engine-check), and the codec's td_json_* are not linked.
$(BUILD)/engine_runner: $(ENGINE_TEST_OBJS) $(BUILD)/libtraind_engine.a | deps
	$(CC) $(LDFLAGS) $(FAILALLOC) -o $@ $^ $(shell pkg-config --libs check libcjson) $(ENGINE_LIBS)

# The reference vectors (PyTorch, numpy, scikit-learn in float64) are in the repository;
# TD_REFDIR=<dir> runs the suites against another set (another seed of gen_reference.py).
TD_REFDIR ?= $(abspath tests/data/reference)
export TD_REFDIR

# The dashboard suite (tests/test_dashboard.c) drives Debian's chromium with puppeteer-core
# from npm (tests/browser/package-lock.json; --ignore-scripts: it downloads no browser).
# Installed when missing; without them that suite fails, it is never skipped.
BROWSER_DEPS := tests/browser/node_modules/puppeteer-core/package.json
$(BROWSER_DEPS): tests/browser/package.json tests/browser/package-lock.json | test-deps
	cd tests/browser && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# onnxruntime for the npy suite's ONNX checks (tests/onnx_run.js): the npm package
# onnxruntime-node, whose Linux library ships inside it (no install scripts run), in
# build/node whatever BUILD is.
NODE_DIR := build/node
ORT_NODE := $(NODE_DIR)/node_modules/onnxruntime-node/package.json
$(ORT_NODE): | test-deps
	@mkdir -p $(NODE_DIR)
	cd $(NODE_DIR) && npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
	  onnxruntime-node

# Both runners, the engine's first; both run even when the first fails. SUITE=<name> runs
# in the runner that has it (a name neither has: test_runner fails, saying so).
TEST_ENV = TD_BIN=$(abspath $(BUILD)/traind) TD_EXAMPLES=$(abspath $(BUILD)/examples) \
           NODE_PATH=$(abspath $(NODE_DIR)/node_modules)
test: $(BUILD)/engine_runner $(BUILD)/test_runner $(BUILD)/traind $(EXAMPLES) engine-check $(ORT_NODE) \
      $(BROWSER_DEPS) | deps test-deps
	@rc=0; grep -qx 'X(suite_$(SUITE))' $(BUILD)/tests/engine/suites.inc; engine=$$?; \
	if [ -z "$(SUITE)" ] || [ $$engine = 0 ]; then \
	  echo "$(BUILD)/engine_runner $(SUITE)"; $(TEST_ENV) $(BUILD)/engine_runner $(SUITE) || rc=1; fi; \
	if [ -z "$(SUITE)" ] || [ $$engine != 0 ]; then \
	  echo "$(BUILD)/test_runner $(SUITE)"; $(TEST_ENV) $(BUILD)/test_runner $(SUITE) || rc=1; fi; \
	exit $$rc

# Leaks fail it too: LeakSanitizer checks at the exit of every process, i.e. of each Check
# test (forked: a leak exits it with 1, an error), of each daemon a test stops (its exit
# code, asserted 0 at SIGTERM, becomes 1, and tests/api.c prints the report from its log) and of
# the runner itself.
asan: | deps
	ASAN_OPTIONS="detect_leaks=1:$$ASAN_OPTIONS" UBSAN_OPTIONS="print_stacktrace=1:$$UBSAN_OPTIONS" \
	$(MAKE) BUILD=build-asan OPT="-O1" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

bench: $(BUILD)/libtraind_engine.a $(BUILD)/traind $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%) | deps
	bench/run.sh $(BUILD)

# A daemon under jobs and status traffic for SOAK_SECONDS; prints its memory (VmRSS) at the
# start, after the warm-up and at the end, and fails on a 5xx, a dropped connection, RSS
# growing past SOAK_MAX_GROWTH_MB (default 64) or descriptors leaking (scripts/soak.py).
SOAK_SECONDS ?= 60
soak: $(BUILD)/traind | deps
	python3 scripts/soak.py $(BUILD)/traind $(SOAK_SECONDS)

# The C sources in .clang-format's layout (clang-format 14, Debian's clang-format).
STYLE_SRCS := $(sort $(wildcard src/*.c src/*/*.c src/*/*.h include/traind/*.h tests/*.c \
                tests/*.h bench/*.c fuzz/*.c fuzz/*.h examples/*.c scripts/*.c))
style: | deps
	@scripts/deps.sh clang-format
	clang-format --dry-run --Werror $(STYLE_SRCS)
	@echo "style: $(words $(STYLE_SRCS)) files in .clang-format's layout"
format: | deps
	@scripts/deps.sh clang-format
	clang-format -i $(STYLE_SRCS)

# docs/hyperparameters.md from the hyperparameter table (scripts/hparams_md.c); the docs
# suite of `make test` fails when the file in the repository is not current.
docs: $(BUILD)/hparams_md | deps
	$(BUILD)/hparams_md > docs/hyperparameters.md.tmp && mv docs/hyperparameters.md.tmp docs/hyperparameters.md

$(BUILD)/hparams_md: scripts/hparams_md.c $(BUILD)/libtraind.a | deps
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libtraind.a $(LDLIBS)

# ARGS are passed to the daemon: make run ARGS="--listen 8081 --state-dir /tmp/td"
ARGS ?=
run: $(BUILD)/traind | deps
	$(BUILD)/traind $(ARGS)

# An existing traind.conf that differs from config/traind.conf (the admin's edits) is kept:
# the new default goes beside it as traind.conf.new, to merge by hand.
CONF := $(DESTDIR)/etc/traind/traind.conf
UNIT := $(DESTDIR)$(PREFIX)/lib/systemd/system/traind.service
install: $(BUILD)/traind | deps
	install -D -m 0755 $(BUILD)/traind $(DESTDIR)$(PREFIX)/bin/traind
	@if [ -e $(CONF) ] && ! cmp -s config/traind.conf $(CONF); then \
	  echo "install -D -m 0644 config/traind.conf $(CONF).new  (kept the edited $(CONF))"; \
	  install -D -m 0644 config/traind.conf $(CONF).new; \
	else \
	  echo "install -D -m 0644 config/traind.conf $(CONF)"; \
	  install -D -m 0644 config/traind.conf $(CONF); rm -f $(CONF).new; \
	fi
	install -D -m 0644 systemd/traind.service $(UNIT)
	sed -i 's|/usr/local/bin/traind|$(PREFIX)/bin/traind|' $(UNIT)

# Removes what install put there, except an edited traind.conf (it says so); the state
# directory (/var/lib/traind by the unit's StateDirectory) is never touched.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/traind $(UNIT) $(CONF).new
	@if [ -e $(CONF) ] && ! cmp -s config/traind.conf $(CONF); then \
	  echo "kept the edited $(CONF)"; \
	else \
	  echo "rm -f $(CONF)"; rm -f $(CONF); rmdir $(DESTDIR)/etc/traind 2>/dev/null || true; \
	fi

# tests/data/reference from tests/data/gen_reference.py (seed 1); needs Debian's PyTorch and
# scikit-learn (installed here by deps as root). Check the diff: values move only in the
# last digits with another BLAS; anything more is a change of semantics.
reference:
	scripts/deps.sh python3-torch python3-sklearn
	/usr/bin/python3 tests/data/gen_reference.py 1 tests/data/reference

# Each fuzz/fuzz_<name>.c (harness td_fuzz_<name>, fuzz/fuzz.h) is built with clang's
# libFuzzer, ASan and UBSan against build-fuzz/libtraind.a (the library compiled with
# clang and the same sanitizers, plus coverage) and run for FUZZ_SECONDS from the seeds in
# fuzz/seeds/<kind> (<name> without "_dataset") and tests/regress/<name>, with
# fuzz/<kind>.dict when there is one;
# new inputs go to build-fuzz/corpus-<name>, a crash stops the run and leaves
# build-fuzz/crash-* (copy it to tests/regress/<name>/: the regress suite replays it).
FUZZ_SECONDS ?= 30
FUZZ_CC      ?= clang
FUZZ_TARGETS := json_dataset csv_dataset job loss predict config router train npy
FUZZ_FLAGS    = -std=gnu11 -g -O1 -Wno-psabi -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -pthread -Iinclude -Isrc -Ifuzz -Itests -I$(BUILD)/gen $(PKG_CFLAGS) \
                -DTD_VERSION='"$(VERSION)"'
FUZZ_OBJS    := $(LIB_SRCS:%.c=build-fuzz/%.o) build-fuzz/gen/openapi.o build-fuzz/gen/onnx.pb-c.o build-fuzz/gen/web.o

build-fuzz/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

build-fuzz/gen/openapi.o: $(BUILD)/gen/openapi.c | deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@

build-fuzz/gen/onnx.pb-c.o: $(BUILD)/gen/onnx.pb-c.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@

build-fuzz/src/codec/model_onnx.o: $(BUILD)/gen/onnx.pb-c.h

build-fuzz/gen/web.o: $(BUILD)/gen/web.c | deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@

build-fuzz/libtraind.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

# The targets that compare the stream with the cJSON tree reader (fuzz_json_dataset,
# fuzz_job, fuzz_loss) link its reference from tests/ (dataset_tree.c); the others ignore it.
FUZZ_REFS := build-fuzz/tests/dataset_tree.o
.SECONDARY: $(FUZZ_REFS)

build-fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h build-fuzz/libtraind.a $(FUZZ_REFS) | deps
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_REFS) build-fuzz/libtraind.a $(LDLIBS)

fuzz: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%) | deps
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

.PHONY: all deps test-deps test asan bench examples engine-check run install uninstall reference clean fuzz soak docs style format
-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(BUILD)/tests/engine/runner.d $(FUZZ_HARNESS:.o=.d) $(FUZZ_OBJS:.o=.d) $(FUZZ_REFS:.o=.d) \
         $(BUILD)/src/main.d

$(BUILD)/bench/%: bench/%.c $(BUILD)/libtraind_engine.a | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(ENGINE_LIBS)
