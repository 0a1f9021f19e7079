# The two commands of README.md: `make bench` (main job) and `make test`.
# Both start with scripts/bootstrap.sh, so a fresh machine needs nothing else.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup bench test test-c test-python lint clean

setup:
	@scripts/bootstrap.sh

bench: setup
	$(BIN)/micropeft bench

test: setup lint test-c test-python

lint:
	$(BIN)/ruff check scripts tests
	$(BIN)/ruff format --check scripts tests

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

clean:
	rm -rf build
