# Thin wrapper around CMake and ctest; CMakeLists.txt holds the build itself.
#
#   make deps       check (and, as root, install) the Debian packages needed
#   make build      configure and build build/ (RelWithDebInfo)
#   make demo       build, then run the examples
#   make test       build and run every test: gcc in build/, gcc with
#                   ASan+UBSan in build-asan/, plus a warning-free clang
#                   build in build-clang/ that runs the fuzz tests
#   make valgrind   run every test case of build/ under valgrind
#   make bench      build build-bench/ and run every benchmark against
#                   Node.js, libuv, Bun and the system floor (docs/benchmarks.md)
#   make install    install into $(PREFIX) (default /usr/local; DESTDIR works)
#   make clean      remove the build directories
#
# BUILD_DIR, ASAN_DIR, CLANG_DIR and BENCH_DIR (default build, build-asan,
# build-clang, build-bench) can be set on the command line to build
# elsewhere. `make bench BENCH_MARKDOWN=FILE` also writes the tables to FILE
# as Markdown; the BENCH_* counts that bench/run.py reads come from the
# environment.

PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

BUILD_DIR := build
ASAN_DIR := build-asan
CLANG_DIR := build-clang
BENCH_DIR := build-bench
BENCH_MARKDOWN ?=

CMAKE ?= cmake
CTEST ?= ctest
# ctest runs in the build directory rather than with --test-dir, which needs
# CMake 3.20 while CMakeLists.txt accepts 3.16.
CTEST_FLAGS := -j2 --output-on-failure --no-label-summary

# cmake --build may run make again. Removing this make's variables keeps its
# flags and jobserver out of that make, so --parallel alone sets the job
# count, and stops it from printing "Entering directory" lines.
CMAKE_BUILD = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL $(CMAKE) --build

# These replace any ASAN_OPTIONS or UBSAN_OPTIONS from the caller's
# environment, so every run checks for leaks and stops at the first report.
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# The steps of each target print in order, and ctest's summary stays last.
.NOTPARALLEL:

.PHONY: all deps build demo test test-clang test-gcc test-asan valgrind \
        bench install clean help

all: build

help:
	@sed -n '3,13s/^# //p' Makefile

deps:
	bash scripts/deps.sh

build: deps
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	$(CMAKE_BUILD) $(BUILD_DIR) --parallel $(JOBS)

demo: build
	@if [ -f examples/demo.sh ]; then \
	  bash examples/demo.sh "$(abspath $(BUILD_DIR))/examples"; \
	else \
	  status=0; \
	  for program in $(BUILD_DIR)/examples/*; do \
	    [ -f "$$program" ] && [ -x "$$program" ] || continue; \
	    echo "== $$program"; \
	    "$$program" </dev/null || status=1; \
	  done; \
	  exit $$status; \
	fi

test: deps test-clang test-gcc test-asan

# Builds everything with clang and -Werror to prove it compiles without
# warnings, and runs the fuzz tests (label fuzz), which need clang's
# libFuzzer; the other tests run in the gcc builds.
test-clang:
	$(CMAKE) -S . -B $(CLANG_DIR) -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCP_WERROR=ON
	$(CMAKE_BUILD) $(CLANG_DIR) --parallel $(JOBS)
	cd $(CLANG_DIR) && $(CTEST) $(CTEST_FLAGS) -L fuzz

test-gcc:
	$(CMAKE) -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DCP_WERROR=ON -DCP_BUILD_TESTS=ON
	$(CMAKE_BUILD) $(BUILD_DIR) --parallel $(JOBS)
	cd $(BUILD_DIR) && $(CTEST) $(CTEST_FLAGS)

# Debug (-O0) here, while build/ is optimized, so the two test runs also
# cover both optimization levels.
test-asan:
	$(CMAKE) -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DCP_SANITIZE=ON \
	  -DCP_WERROR=ON -DCP_BUILD_TESTS=ON
	$(CMAKE_BUILD) $(ASAN_DIR) --parallel $(JOBS)
	cd $(ASAN_DIR) && $(SANITIZER_ENV) $(CTEST) $(CTEST_FLAGS)

valgrind: build
	bash scripts/valgrind.sh $(BUILD_DIR)

# Benchmarks run on an optimized build of their own, without tests, so that
# no sanitizer or debug flag of the other build trees reaches them.
bench: deps
	$(CMAKE) -S . -B $(BENCH_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCP_BUILD_TESTS=OFF -DCP_BUILD_EXAMPLES=OFF -DCP_BUILD_BENCH=ON
	$(CMAKE_BUILD) $(BENCH_DIR) --parallel $(JOBS)
	python3 bench/run.py --build-dir $(BENCH_DIR) \
	  $(if $(BENCH_MARKDOWN),--markdown $(BENCH_MARKDOWN))

install: build
	DESTDIR="$(DESTDIR)" $(CMAKE) --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(CLANG_DIR) $(BENCH_DIR)
