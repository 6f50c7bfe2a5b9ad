# The README's two commands, and the developer commands around them. CMake does the building;
# this file only names the build directories and the order of the steps.
#
#   make demo          Release build in build/release, then runs the programs in $(DEMO)
#   make test          every test (unit, multiprocess, packaging): RelWithDebInfo in build/test
#   make test-asan     the same tests under AddressSanitizer + UBSan, in build/asan
#   make test-tsan     the lock-free cores instantiated with threads, under ThreadSanitizer (build/tsan)
#   make bench         Release build, then every bench/run_*.sh (medians, controls and peers)
#   make format        clang-format -i on the C++ sources;  make format-check: only report
#   make tidy          clang-tidy over runtime/ (.clang-tidy), with build/test's compile database
#   make fuzz          every libFuzzer target (clang, build/fuzz) for FUZZ_SECONDS each (docs/fuzzing.md)
#   make clean         removes build/
#
# Variables: JOBS (parallel builds and tests), DEMO, CTEST_ARGS (e.g. CTEST_ARGS='-R Queue'),
# BENCH_ARGS (passed to every bench/run_*.sh after the binary directory: the repetitions),
# BUILD_ROOT (build/), FUZZ_SECONDS (60), FUZZ_ARGS (more libFuzzer flags, e.g. FUZZ_ARGS=-seed=1).
# Every target first runs scripts/install-deps, which is silent when nothing is missing.

JOBS ?= $(shell nproc)
BUILD_ROOT ?= build
# The seeds' programs, then the main job: the seeds' efficiency comparison (docs/pool.md).
DEMO ?= seed000_multicore seed001_process_basics seed001_lock seed001_value seed001_queue seed003_process_list \
  seed004_four_tasks seed001_manager seed001_pool seed002_pool seed003_pool_methods efficiency_comparison
CTEST_ARGS ?=
BENCH_ARGS ?=
CMAKE ?= cmake
CTEST ?= ctest
CLANG_FORMAT ?= clang-format-16
RUN_CLANG_TIDY ?= run-clang-tidy

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# `cmake -S . -B <dir>` is idempotent: it configures a new directory and refreshes an existing one.
CONFIGURE = $(CMAKE) -S . -G Ninja --log-level=WARNING -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
BUILD = $(CMAKE) --build
# --timeout is the limit of a test that sets none (tests/CMakeLists.txt gives most their own).
CTEST_RUN = $(CTEST) --output-on-failure --timeout 300 -j $(JOBS) $(CTEST_ARGS) --test-dir
# The C++ sources: tracked files plus new ones not yet added, never what .gitignore excludes.
SOURCES = git ls-files --cached --others --exclude-standard -- '*.cpp' '*.hpp' '*.h' '*.cc' '*.inl'

.PHONY: help deps deps-lint demo test test-asan test-tsan bench fuzz format format-check tidy clean

help:
	@sed -n '4,12s/^# //p' $(firstword $(MAKEFILE_LIST))

deps:
	@scripts/install-deps

deps-lint:
	@scripts/install-deps --lint

demo: deps
	$(CONFIGURE) -B $(BUILD_ROOT)/release -DCMAKE_BUILD_TYPE=Release -DMPROC_BUILD_TESTS=OFF
	$(BUILD) $(BUILD_ROOT)/release -j $(JOBS) --target $(DEMO)
	@for d in $(DEMO); do echo "== examples/$$d"; $(BUILD_ROOT)/release/examples/$$d; done

test: deps
	$(CONFIGURE) -B $(BUILD_ROOT)/test -DCMAKE_BUILD_TYPE=RelWithDebInfo
	$(BUILD) $(BUILD_ROOT)/test -j $(JOBS)
	$(CTEST_RUN) $(BUILD_ROOT)/test

test-asan: export UBSAN_OPTIONS ?= print_stacktrace=1
test-asan: deps
	$(CONFIGURE) -B $(BUILD_ROOT)/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_SANITIZE='address;undefined'
	$(BUILD) $(BUILD_ROOT)/asan -j $(JOBS)
	$(CTEST_RUN) $(BUILD_ROOT)/asan

# ThreadSanitizer sees threads in one address space only, so it runs the tests that instantiate
# the cores (WaitWord, RobustLockWord, the semaphore, event, condition and barrier cores) with
# threads; the cross-process tests are the other half (STYLE.md point 6).
TSAN_TARGETS = platform_test lock_test sync_primitives_core_test mpmc_ring_test lane_queue_test pipe_test queue_test base_manager_test
TSAN_TESTS = ^(WaitWordTest|PlayersPerGroup/WaitWordPingPongTest.Threads|FutexTest.Wake(From|Counts)|RobustLockWord|SemaphoreCore|EventCore|ConditionCore|BarrierCore|Cores|MpmcRing\.Threads|MpmcRingModel|LaneQueue\.(Threads|AnExited)|LaneQueueModel|LanesQueue\.(Threads|AThread)|SpscRing\.Streams|SpscRingModel|SpscQueue\.ThreadsTakingTheTwoRoles|BaseManager|Methods/BaseManagerTest)\.?
test-tsan: export TSAN_OPTIONS ?= halt_on_error=1 second_deadlock_stack=1
test-tsan: deps
	$(CONFIGURE) -B $(BUILD_ROOT)/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPROC_SANITIZE=thread \
	  -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCH=OFF
	$(BUILD) $(BUILD_ROOT)/tsan -j $(JOBS) --target $(TSAN_TARGETS)
	$(CTEST_RUN) $(BUILD_ROOT)/tsan -R '$(TSAN_TESTS)' --no-tests=error

bench: deps
	$(CONFIGURE) -B $(BUILD_ROOT)/release -DCMAKE_BUILD_TYPE=Release -DMPROC_BUILD_TESTS=OFF
	$(BUILD) $(BUILD_ROOT)/release -j $(JOBS)
	@ran=0; \
	for script in bench/run_*.sh; do \
	  echo "== $$script"; "$$script" $(BUILD_ROOT)/release/bench $(BENCH_ARGS); ran=1; \
	done; \
	if ((ran == 0)); then echo "make bench: no bench/run_*.sh scripts" >&2; exit 1; fi

# libFuzzer needs clang, so build/fuzz is a clang build of the fuzz targets alone. Each target grows
# a working corpus in build/fuzz/corpus/<name>/ from the committed seeds of fuzz/corpus/<name>/ (only
# read) and leaves what it finds in build/fuzz/artifacts/<name>/. One process per target: -jobs or
# -fork would take every core of a shared machine. The first finding stops the run (exit 77).
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FUZZ_CXX ?= clang++
fuzz: deps
	$(CONFIGURE) -B $(BUILD_ROOT)/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=$(FUZZ_CXX) \
	  -DMPROC_BUILD_FUZZ=ON -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_BENCH=OFF -DMPROC_BUILD_EXAMPLES=OFF
	$(BUILD) $(BUILD_ROOT)/fuzz -j $(JOBS) --target mproc_fuzzers
	@for seeds in fuzz/corpus/*/; do \
	  name=$$(basename "$$seeds"); \
	  corpus=$(BUILD_ROOT)/fuzz/corpus/$$name; artifacts=$(BUILD_ROOT)/fuzz/artifacts/$$name/; \
	  mkdir -p "$$corpus" "$$artifacts"; \
	  echo "== fuzz_$$name for $(FUZZ_SECONDS) s"; \
	  $(BUILD_ROOT)/fuzz/fuzz/fuzz_$$name -max_total_time=$(FUZZ_SECONDS) -malloc_limit_mb=64 \
	    -artifact_prefix="$$artifacts" $(FUZZ_ARGS) "$$corpus" "$$seeds"; \
	done

format: deps-lint
	$(SOURCES) | xargs -r $(CLANG_FORMAT) -i

format-check: deps-lint
	$(SOURCES) | xargs -r $(CLANG_FORMAT) --dry-run --Werror

tidy: deps-lint
	$(CONFIGURE) -B $(BUILD_ROOT)/test -DCMAKE_BUILD_TYPE=RelWithDebInfo
	$(RUN_CLANG_TIDY) -p $(BUILD_ROOT)/test -j $(JOBS) -quiet '^$(CURDIR)/runtime/.*\.cpp$$'

clean:
	rm -rf $(BUILD_ROOT)
