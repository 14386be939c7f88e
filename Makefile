# tailor — the two commands that matter are `make demo` and `make test`.
# Both install missing Debian packages first (scripts/install-deps.sh).
# CMake does the building; this file only names the jobs.

MAKEFLAGS += --no-print-directory
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60
RELEASE := build/release
TESTB := build/test
FUZZB := build/fuzz

.PHONY: all deps release demo test bench fuzz install clean

all: release

deps:
	@scripts/install-deps.sh --check 2>/dev/null || scripts/install-deps.sh

release: deps
	@cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DTAILOR_TESTS=OFF >/dev/null
	@cmake --build $(RELEASE) -j $(JOBS)

# Imports MovieLens ($TAILOR_DATA, else the cache, else a download of
# ml-latest-small) into demo.db, trains and evaluates the recommenders,
# holds a conversation, then serves the page and the API until Ctrl-C
# (MODEL=FILE.gguf: a language model too; DEMO_SERVE=0: no server).
demo: release
	@MODEL="$(MODEL)" scripts/demo.sh $(RELEASE)/tailor

# Warnings as errors, AddressSanitizer and UBSan, every test.
test: deps
	@cmake -S . -B $(TESTB) -DCMAKE_BUILD_TYPE=Debug -DTAILOR_SANITIZE=ON >/dev/null
	@cmake --build $(TESTB) -j $(JOBS)
	@cd $(TESTB) && ctest --output-on-failure -j $(JOBS)

bench: release
	@scripts/install-deps.sh --check --bench 2>/dev/null || scripts/install-deps.sh --bench
	@cmake --build $(RELEASE) -j $(JOBS) --target bench_import
	@bench/run.sh $(RELEASE)

# libFuzzer targets (clang), each run for FUZZ_SECONDS; not part of CI.
fuzz:
	@scripts/install-deps.sh --check --fuzz 2>/dev/null || scripts/install-deps.sh --fuzz
	@CC=clang cmake -S . -B $(FUZZB) -DCMAKE_BUILD_TYPE=Debug -DTAILOR_FUZZ=ON -DTAILOR_TESTS=OFF >/dev/null
	@cmake --build $(FUZZB) -j $(JOBS)
	@tests/fuzz/run.sh $(FUZZB) $(FUZZ_SECONDS)

install: release
	@cmake --install $(RELEASE) --prefix $(PREFIX)

clean:
	rm -rf build
