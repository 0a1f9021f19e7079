"""Builds and loads the host build of the C runtime (lib/peft) for Python.

The C sources come from the repository when the package is installed in editable
mode from it (three folders above this file); a wheel carries its own copy of them
as package data (micropeft/csrc, put there by setup.py). The build goes to
build/host of the repository, or for a wheel to host/ in micropeft's cache folder
(beside the pretrained models), or to $MICROPEFT_BUILD_DIR; it is redone only when a
source is newer.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from micropeft.errors import UserError
from micropeft.files import folder_lock
from micropeft.prep import models

_CHECKOUT = Path(__file__).resolve().parents[3]
_SHIPPED_SOURCES = Path(__file__).resolve().parents[1] / "csrc"
# Where the C sources are: the copy shipped in a wheel, else the repository.
INSTALLED = (_SHIPPED_SOURCES / "lib" / "peft" / "CMakeLists.txt").is_file()
REPO_ROOT = _SHIPPED_SOURCES if INSTALLED else _CHECKOUT


def build_dir() -> Path:
    if "MICROPEFT_BUILD_DIR" in os.environ:
        return Path(os.environ["MICROPEFT_BUILD_DIR"])
    if INSTALLED:
        return models.cache_dir() / "host"
    return REPO_ROOT / "build" / "host"


# Kernel backends, as lib/peft/sources.cmake names them (one host library each).
BACKENDS = ("reference", "optimized")
# The kernel libraries a test can load: each backend's kernels alone, and the optimized
# backend with the Cortex-M4F's scalar lanes (PEFT_SCALAR_LANES), so that the M4's paths
# run on a host too (where the lanes are a vector, some kernels take other paths).
KERNEL_LIBRARIES = (*BACKENDS, "optimized_scalar")
# What Python loads: the runtime and the kernel libraries (not the C tests).
PYTHON_TARGETS = ("peft_shared", *(f"peft_kernels_{name}" for name in KERNEL_LIBRARIES))


def library_path() -> Path:
    return build_dir() / "lib" / "peft" / "libpeft.so"


def kernels_library_path(backend: str) -> Path:
    """One kernel library of KERNEL_LIBRARIES, built beside libpeft.so."""
    return build_dir() / "lib" / "peft" / f"libpeft_kernels_{backend}.so"


def build_host(quiet: bool = True, targets: Sequence[str] | None = PYTHON_TARGETS) -> Path:
    """Configure and build the host runtime (Release, warnings as errors): `targets`, or
    everything (the C tests too) for None. Processes that build at the same time take
    turns (the second finds the build up to date)."""
    if not (REPO_ROOT / "lib" / "peft" / "CMakeLists.txt").is_file():
        raise UserError(f"the C sources are not beside the package (looked in {REPO_ROOT})")
    if shutil.which("cmake") is None:
        raise UserError("cmake is not installed; install cmake and a C compiler")
    out = build_dir()
    capture = subprocess.PIPE if quiet else None
    configure = ["cmake", "-S", str(REPO_ROOT), "-B", str(out), "-DCMAKE_BUILD_TYPE=Release"]
    if not (REPO_ROOT / "tests" / "host").is_dir():
        configure.append("-DPEFT_BUILD_TESTS=OFF")  # a wheel ships the runtime, not its C tests
    steps = [
        configure,
        ["cmake", "--build", str(out), "--parallel", *(["--target", *targets] if targets else [])],
    ]
    with folder_lock(out):
        for step in steps:
            result = subprocess.run(step, stdout=capture, stderr=subprocess.STDOUT, text=True)
            if result.returncode != 0:
                tail = (result.stdout or "")[-2000:]
                raise UserError(f"host build failed: {' '.join(step)}\n{tail}")
    return library_path()


_library: ctypes.CDLL | None = None


def load_library() -> ctypes.CDLL:
    """The host runtime as a ctypes library, built first if needed."""
    global _library
    if _library is None:
        build_host()
        _library = ctypes.CDLL(str(library_path()))
    return _library
