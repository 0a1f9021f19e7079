#!/bin/sh
# One-time set-up on a fresh Debian/Ubuntu machine: system packages (compilers,
# the Cortex-M4F toolchain, QEMU) when missing, then a virtual environment in
# .venv with micropeft installed in editable mode. Safe to run again.
set -eu
cd "$(dirname "$0")/.."

need=""
command -v cmake >/dev/null 2>&1 || need="$need cmake"
command -v ninja >/dev/null 2>&1 || need="$need ninja-build"
command -v cc >/dev/null 2>&1 || need="$need build-essential"
command -v arm-none-eabi-gcc >/dev/null 2>&1 || need="$need gcc-arm-none-eabi libnewlib-arm-none-eabi"
command -v qemu-system-arm >/dev/null 2>&1 || need="$need qemu-system-arm"
# clang with its runtime libraries (libFuzzer, sanitizers) for tests/fuzz:
# a harness that links proves both are there.
fuzz_probe='int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d[0] + (int)n; }'
echo "$fuzz_probe" | clang -fsanitize=fuzzer,address -x c - -o /dev/null >/dev/null 2>&1 ||
  need="$need clang libclang-rt-dev"
if [ -n "$need" ]; then
  echo "bootstrap: installing system packages:$need"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ ! -f .venv/.micropeft-installed ] || [ pyproject.toml -nt .venv/.micropeft-installed ]; then
  echo "bootstrap: creating .venv and installing micropeft (first run takes a few minutes)"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  # The animal-mnist wheel ships 10,000 images; its declared dependencies are
  # not needed to read them (micropeft reads the data files directly).
  .venv/bin/python -m pip install -q --no-deps animal-mnist
  touch .venv/.micropeft-installed
fi
# sktime ships the sensor series the 1-D tasks use (.ts files, read directly); its own
# dependencies (pandas, scikit-base) are not needed for that. Checked on its own so that
# an existing .venv gets it too.
if ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('sktime') is None)"; then
  .venv/bin/python -m pip install -q --no-deps sktime
fi
