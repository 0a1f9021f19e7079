# The two commands of README.md: `make bench` (main job) and `make test`.
# Both start with scripts/bootstrap.sh, so a fresh machine needs nothing else.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup bench test test-c test-python lint format clean fuzz fuzz-ci fuzz-build

setup:
	@scripts/bootstrap.sh

bench: setup
	$(BIN)/micropeft bench

test: setup lint test-c test-python fuzz-ci

# C and C++ sources under clang-format, except the generated ones (written by
# python -m micropeft.formats, tools/golden.py and tests/host/gen_plan_fixtures.py).
C_SOURCES = $(shell git ls-files '*.c' '*.h' '*.cc' '*.cpp' | \
	grep -v -e 'include/peft/peft_formats.h' -e '/golden_' -e 'peft_plan_fixtures.h')

lint:
	$(BIN)/clang-format --dry-run --Werror $(C_SOURCES)
	$(BIN)/ruff check scripts tests tools setup.py
	$(BIN)/ruff format --check scripts tests tools setup.py

format: setup
	$(BIN)/clang-format -i $(C_SOURCES)
	$(BIN)/ruff format scripts tests tools setup.py

# Host build with warnings as errors, once plain and once under ASan + UBSan.
test-c:
	cmake -S . -B build/test -G Ninja -DCMAKE_BUILD_TYPE=Debug
	cmake --build build/test
	ctest --test-dir build/test --output-on-failure
	cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPEFT_SANITIZE=ON
	cmake --build build/asan
	ctest --test-dir build/asan --output-on-failure

# MICROPEFT_STRICT=1: a skipped test fails (tests/python/conftest.py).
test-python:
	MICROPEFT_STRICT=1 $(BIN)/pytest tests/python

# libFuzzer harnesses (tests/fuzz, clang) with ASan + UBSan, every report fatal;
# seed corpora made by the command line at test time. CI: at least FUZZ_CI_RUNS
# executions per harness; `make fuzz`: long runs (FUZZ_RUNS / FUZZ_SECONDS each).
FUZZ_BUILD := build/fuzz
FUZZ_CI_RUNS ?= 100000
FUZZ_CI_SECONDS ?= 400
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 14400

fuzz-build: setup
	CC=clang cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DPEFT_FUZZ=ON -DPEFT_BUILD_TESTS=OFF
	cmake --build $(FUZZ_BUILD)
	$(BIN)/python tests/fuzz/make_corpus.py --out $(FUZZ_BUILD)/corpus

fuzz-ci: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_CI_RUNS) $(FUZZ_CI_SECONDS)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_RUNS) $(FUZZ_SECONDS)

clean:
	rm -rf build
