"""Cortex-M4F cost of the runtime, measured without a board.

The runtime (lib/peft, the same sources as the device build) is compiled with
arm-none-eabi-gcc for the nRF52840's core with the firmware's own flags
(lib/peft/cortex_m4f.flags: -mcpu=cortex-m4 -mfpu=fpv4-sp-d16 -mfloat-abi=hard
-O2), linked with a small driver (cm4/fw) against the nRF52840's memory map
(1 MB flash, 256 KB RAM), and run under `qemu-system-arm -M mps2-an386` with the
project's TCG plugin (cm4/plugin/peft_icount.c), which counts every executed instruction and
reports the running count at each phase mark. The counts are exact and
repeatable. The plugin also weights every executed instruction with its
Cortex-M4 cycle cost from the Cortex-M4 Technical Reference Manual (the table
is in the plugin's header comment): an ESTIMATE of cycles, with no flash wait
states or bus contention, reported beside the exact instruction counts.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from micropeft import formats
from micropeft.errors import UserError
from micropeft.eval.target_flags import read_flags
from micropeft.files import folder_lock
from micropeft.formats import METHOD_NAMES
from micropeft.host.native import BACKENDS, REPO_ROOT

CM4_DIR = REPO_ROOT / "cm4"
FW_DIR = CM4_DIR / "fw"
PLUGIN_SOURCE = CM4_DIR / "plugin" / "peft_icount.c"
LIB_DIR = REPO_ROOT / "lib" / "peft"
INCLUDE_DIR = REPO_ROOT / "include"

CC = "arm-none-eabi-gcc"
AR = "arm-none-eabi-ar"
SIZE = "arm-none-eabi-size"
NM = "arm-none-eabi-nm"
QEMU = "qemu-system-arm"
QEMU_MACHINE = "mps2-an386"

# Core, FPU and optimisation level: the firmware's own (lib/peft/cortex_m4f.flags).
_M4F = read_flags()
ARCH_FLAGS = _M4F["arch"]
OPT_FLAGS = [*_M4F["opt"], "-g", "-ffunction-sections", "-fdata-sections"]
WARN_FLAGS = ["-Wall", "-Wextra"]
# The host build's method and optimizer symbols: the harness compiles them all.
LIB_DEFINES = [
    "CONFIG_PEFT_OPTIMIZER_SGD=1",
    "CONFIG_PEFT_OPTIMIZER_ADAM=1",
    "CONFIG_PEFT_INT8_BACKWARD=1",
    *[f"CONFIG_PEFT_METHOD_{m.upper()}=1" for m in METHOD_NAMES],
]
LINK_FLAGS = [
    "--specs=nano.specs",
    "--specs=rdimon.specs",
    "-nostartfiles",
    "-Wl,--gc-sections",
]
# The nRF52840's core clock, for estimated milliseconds.
CLOCK_HZ = 64_000_000
RAM_BYTES = 256 * 1024
FLASH_BYTES = 1024 * 1024
STACK_BYTES = 8 * 1024
RAM_OVERFLOW_TAG = "PEFT_CM4_RAM_OVERFLOW"
FLASH_OVERFLOW_TAG = "PEFT_CM4_FLASH_OVERFLOW"

# Phase ids of cm4/fw/peft_cm4.h.
FORWARD, BACKWARD, SAMPLE_END, OPTIMIZER, STEP_END, INFER, INFER_END, REGION, REGION_END = range(
    1, 10
)


def default_build_dir() -> Path:
    return REPO_ROOT / "build" / "bench" / "cm4"


def missing_tools() -> list[str]:
    """The programs this module needs that are not on PATH."""
    return [tool for tool in (CC, AR, SIZE, NM, QEMU, "cc") if shutil.which(tool) is None]


def require_tools() -> None:
    missing = missing_tools()
    if missing:
        raise UserError(
            "the Cortex-M4F measurement needs "
            + ", ".join(missing)
            + " (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
            " build-essential), or run the benchmark with --no-cm4"
        )


def _run(cmd: Sequence[str], what: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        list(map(str, cmd)), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if result.returncode != 0:
        raise Cm4BuildError(f"{what} failed: {' '.join(map(str, cmd))}\n{result.stdout[-3000:]}")
    return result.stdout


class Cm4BuildError(UserError):
    """A compile or link step of the harness failed (the message has the tool's output)."""


# ---------------------------------------------------------------------------
# Plugin


def build_plugin(build_dir: Path | None = None) -> Path:
    """Compile the instruction-count plugin with the host compiler (cached)."""
    out_dir = (build_dir or default_build_dir()) / "plugin"
    sources = [PLUGIN_SOURCE, PLUGIN_SOURCE.with_name("qemu_plugin_v1.h")]
    key = _digest(sources, ["plugin-v2"])
    library = out_dir / f"libpeft_icount-{key[:12]}.so"
    if library.is_file():
        return library
    with folder_lock(out_dir):
        if not library.is_file():
            tmp = out_dir / f".{library.name}.tmp"
            _run(
                ["cc", "-O2", "-Wall", "-Wextra", "-fPIC", "-shared", PLUGIN_SOURCE, "-o", tmp],
                "building the QEMU plugin",
            )
            os.replace(tmp, library)
    return library


def _digest(files: Sequence[Path], extra: Sequence[str]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(str(path.relative_to(REPO_ROOT)).encode())
        h.update(path.read_bytes())
    for item in extra:
        h.update(item.encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# The runtime library for the Cortex-M4F


# The benchmark measures the default backend, which the host build also uses.
DEFAULT_BACKEND = "optimized"


def kernel_sources(lib_dir: Path, backend: str = DEFAULT_BACKEND, dsp: bool = True) -> list[Path]:
    """sources.cmake's peft_kernel_sources: every op folder of kernels/; for the optimized
    backend a file of kernels_optimized/<op>/ replaces the reference file of the same name,
    with its dsp/ variants (the Cortex-M4 has the DSP extension) or portable/ ones."""
    if backend not in BACKENDS:
        raise UserError(f"unknown kernel backend {backend!r} (one of {', '.join(BACKENDS)})")
    sources: list[Path] = []
    for op_dir in sorted(p for p in (lib_dir / "kernels").iterdir() if p.is_dir()):
        optimized = lib_dir / "kernels_optimized" / op_dir.name
        # peft_<op>_op.c: the table entry of an op with optimized kernels (runtime_sources).
        chosen = {p.name: p for p in op_dir.glob("*.c") if not p.name.endswith("_op.c")}
        if backend == "optimized" and optimized.is_dir():
            chosen.update({p.name: p for p in optimized.glob("*.c")})
            if (optimized / "dsp").is_dir():
                sources += (optimized / ("dsp" if dsp else "portable")).glob("*.c")
        sources += chosen.values()
    return sorted(sources)


def runtime_sources(backend: str = DEFAULT_BACKEND) -> list[Path]:
    """lib/peft's C sources, as lib/peft/sources.cmake globs them (every method)."""
    patterns = [
        "common/*.c",
        "kernels/*/peft_*_op.c",
        "ops/*.c",
        "optim/*.c",
        "plan/*.c",
        "runtime/*.c",
        "methods/*.c",
    ]
    common = {p for pattern in patterns for p in LIB_DIR.glob(pattern)}
    return sorted(common | set(kernel_sources(LIB_DIR, backend)))


def _runtime_headers() -> list[Path]:
    return sorted(INCLUDE_DIR.rglob("*.h")) + sorted(LIB_DIR.rglob("*.h"))


@dataclass
class Library:
    archive: Path
    objects: list[Path]


def build_runtime(
    build_dir: Path | None = None, jobs: int = 2, backend: str = DEFAULT_BACKEND
) -> Library:
    """Compile lib/peft for the Cortex-M4F into an archive (rebuilt only if a source changed)."""
    require_tools()
    sources = runtime_sources(backend)
    if not sources:
        raise UserError(f"no C sources under {LIB_DIR}")
    flags = [*ARCH_FLAGS, *OPT_FLAGS, *WARN_FLAGS, "-std=c11", f"-I{INCLUDE_DIR}"]
    flags += [f"-D{d}" for d in LIB_DEFINES]
    key = _digest(sources + _runtime_headers(), flags)[:16]
    out_dir = (build_dir or default_build_dir()) / f"lib-{key}"
    archive = out_dir / "libpeft.a"
    objects = [
        out_dir / (str(s.relative_to(LIB_DIR)).replace("/", "__")[:-2] + ".o") for s in sources
    ]
    if archive.is_file():
        return Library(archive, objects)
    with folder_lock(out_dir):
        if not archive.is_file():
            _compile_archive(sources, objects, archive, flags, jobs)
    return Library(archive, objects)


def _compile_archive(
    sources: Sequence[Path], objects: Sequence[Path], archive: Path, flags: list[str], jobs: int
) -> None:
    def compile_one(pair: tuple[Path, Path]) -> None:
        source, obj = pair
        _run(
            [CC, *flags, f"-I{source.parent}", "-c", source, "-o", obj], f"compiling {source.name}"
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(compile_one, zip(sources, objects, strict=True)))
    tmp = archive.with_name(f".{archive.name}.tmp")
    tmp.unlink(missing_ok=True)
    _run([AR, "rcs", tmp, *objects], "archiving libpeft.a")
    os.replace(tmp, archive)


def library_code_size(library: Library) -> dict[str, int]:
    """text/data/bss of every lib/peft object, summed (before the linker drops unused code)."""
    out = _run([SIZE, "-t", *library.objects], "arm-none-eabi-size")
    return _parse_size_berkeley_total(out)


def _parse_size_berkeley_total(text: str) -> dict[str, int]:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and line.rstrip().endswith("(TOTALS)"):
            return {"text": int(parts[0]), "data": int(parts[1]), "bss": int(parts[2])}
    raise UserError(f"cannot parse arm-none-eabi-size output:\n{text}")


# ---------------------------------------------------------------------------
# Firmware


@dataclass
class CodeSize:
    """Sizes in bytes from `arm-none-eabi-size -A` of a linked firmware.

    text: code and constants (flash) without the embedded blobs; blobs: model,
    plan and samples (flash); data: initialised RAM (also in flash); bss:
    zeroed RAM (the training arena included); stack: the reserved stack.
    """

    text: int
    data: int
    bss: int
    blobs: int
    stack: int = STACK_BYTES

    @property
    def flash(self) -> int:
        return self.text + self.data + self.blobs

    @property
    def ram(self) -> int:
        return self.data + self.bss + self.stack


def parse_size_sysv(text: str) -> CodeSize:
    """Parses `arm-none-eabi-size -A` (System V format: one line per section)."""
    sections: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"^(\.\S+)\s+(\d+)\s+(\d+)\s*$", line.strip())
        if match:
            sections[match.group(1)] = int(match.group(2))
    if ".text" not in sections:
        raise UserError(f"no .text section in arm-none-eabi-size output:\n{text}")
    text_like = (
        ".isr_vector",
        ".text",
        ".ARM.extab",
        ".ARM.exidx",
        ".preinit_array",
        ".init_array",
        ".fini_array",
    )
    return CodeSize(
        text=sum(sections.get(s, 0) for s in text_like),
        data=sections.get(".data", 0),
        bss=sections.get(".bss", 0),
        blobs=sections.get(".peft_blobs", 0),
    )


def code_size(elf: Path) -> CodeSize:
    return parse_size_sysv(_run([SIZE, "-A", "-d", elf], "arm-none-eabi-size"))


def symbol_address(elf: Path, name: str) -> int:
    for line in _run([NM, elf], "arm-none-eabi-nm").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise UserError(f"symbol {name} not found in {elf}")


@dataclass(frozen=True)
class FunctionCost:
    name: str
    instructions: int
    est_cycles: int


def profile_functions(elf: Path, profile: Path) -> list[FunctionCost]:
    """Executed instructions and estimated cycles per function of elf, from the plugin's
    profile= file, most instructions first (a block belongs to the function whose symbol
    starts at or below it)."""
    starts: list[tuple[int, str]] = []
    for line in _run([NM, "-n", "--defined-only", elf], "arm-none-eabi-nm").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            starts.append((int(parts[0], 16) & ~1, parts[2]))
    if not starts:
        raise UserError(f"{elf} has no function symbols")
    addresses = [a for a, _ in starts]
    totals: dict[str, list[int]] = {}
    for line in profile.read_text().splitlines():
        _, vaddr, n_insns, executions, cycles = line.split()
        i = bisect.bisect_right(addresses, int(vaddr, 16)) - 1
        name = starts[i][1] if i >= 0 else "(before the first symbol)"
        total = totals.setdefault(name, [0, 0])
        total[0] += int(n_insns) * int(executions)
        total[1] += int(cycles)
    costs = [FunctionCost(name, n, c) for name, (n, c) in totals.items() if n > 0]
    return sorted(costs, key=lambda f: -f.instructions)


class DoesNotFit(Exception):
    """The firmware does not fit the nRF52840's RAM or flash (the linker said so)."""

    def __init__(self, region: str, detail: str) -> None:
        super().__init__(f"does not fit {region}: {detail}")
        self.region = region


def link_firmware(
    elf: Path,
    sources: Sequence[Path],
    defines: Sequence[str] = (),
    library: Library | None = None,
    stack_bytes: int = STACK_BYTES,
) -> Path:
    """Compile the harness files plus `sources` and link them (with libpeft.a if given).

    Raises DoesNotFit when the linker's RAM or flash ASSERT fires.
    """
    require_tools()
    elf.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        CC,
        *ARCH_FLAGS,
        *OPT_FLAGS,
        *WARN_FLAGS,
        "-std=c11",
        f"-I{FW_DIR}",
        f"-I{INCLUDE_DIR}",
        *[f"-D{d}" for d in defines],
        *LINK_FLAGS,
        f"-Wl,--defsym=__stack_size={stack_bytes}",
        "-T",
        FW_DIR / "link.ld",
        f"-Wl,-Map={elf.with_suffix('.map')}",
        FW_DIR / "startup.c",
        FW_DIR / "mark.c",
        *sources,
    ]
    if library is not None:
        cmd += [library.archive]
    cmd += ["-lm", "-o", elf]
    result = subprocess.run(
        list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if result.returncode != 0:
        if RAM_OVERFLOW_TAG in result.stdout:
            raise DoesNotFit("256 KB RAM", "data + bss + stack exceed 256 KB")
        if FLASH_OVERFLOW_TAG in result.stdout or "region `FLASH' overflowed" in result.stdout:
            raise DoesNotFit("1 MB flash", "code + blobs exceed 1 MB")
        if "region `RAM' overflowed" in result.stdout:
            raise DoesNotFit("256 KB RAM", "data + bss exceed 256 KB")
        raise Cm4BuildError(f"linking {elf.name} failed:\n{result.stdout[-3000:]}")
    return elf


# ---------------------------------------------------------------------------
# Running under QEMU


@dataclass
class QemuRun:
    stdout: str
    marks: list[tuple[int, int]]  # (phase id, instructions executed before the mark)
    total: int
    values: dict[str, str] = field(default_factory=dict)  # "key: value" lines of the firmware
    # (phase id, estimated Cortex-M4 cycles before the mark), and the total
    cycle_marks: list[tuple[int, int]] = field(default_factory=list)
    total_cycles: int = 0


def run_firmware(
    elf: Path,
    plugin: Path | None = None,
    timeout_s: float = 300.0,
    build_dir: Path | None = None,
    profile: Path | None = None,
    profile_marks: tuple[int, int] | None = None,
) -> QemuRun:
    """Run a firmware under QEMU with the counting plugin; parse marks and printed values.
    profile: where the plugin writes its per-block counts (profile_functions reads them),
    counted from the first to the second of profile_marks (1-based mark numbers) if given."""
    require_tools()
    plugin = plugin or build_plugin(build_dir)
    mark = symbol_address(elf, "peft_cm4_mark")
    with tempfile.TemporaryDirectory(prefix="peft-cm4-") as tmp:
        report = Path(tmp) / "icount.txt"
        cmd = [
            QEMU,
            "-M",
            QEMU_MACHINE,
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            str(elf),
            "-plugin",
            f"{plugin},mark={mark:#x},out={report}"
            + (f",profile={profile.resolve()}" if profile is not None else "")
            + (
                f",profile_from={profile_marks[0]},profile_to={profile_marks[1]}"
                if profile_marks is not None
                else ""
            ),
        ]
        try:
            result = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired as error:
            raise UserError(f"QEMU did not finish {elf.name} within {timeout_s:.0f} s") from error
        icount = report.read_text() if report.is_file() else ""
    values: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep and re.fullmatch(r"[a-z_0-9]+", key.strip()):
            values[key.strip()] = value.strip()
    found = list(re.finditer(r"^mark (\d+) (\d+) (\d+)$", icount, re.M))
    counts = [int(m.group(2)) for m in found]
    cycle_counts = [int(m.group(3)) for m in found]
    total_match = re.search(r"^total (\d+) (\d+)$", icount, re.M)
    if total_match is None or values.get("status") is None:
        raise UserError(
            f"{elf.name} did not run to the end under QEMU (exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{icount[-500:]}"
        )
    phases = [int(x) for x in values.get("marks", "").split()]
    if len(phases) != len(counts):
        raise UserError(
            f"{elf.name}: {len(counts)} marks counted but {len(phases)} logged by the firmware"
        )
    marks = list(zip(phases, counts, strict=True))
    cycle_marks = list(zip(phases, cycle_counts, strict=True))
    return QemuRun(
        result.stdout,
        marks,
        int(total_match.group(1)),
        values,
        cycle_marks,
        int(total_match.group(2)),
    )


def calibrate(loops: int, build_dir: Path | None = None) -> int:
    """Instructions counted between the marks around a loop of `loops` x (subs, bne)."""
    if loops < 1:
        raise UserError("loops must be at least 1")
    out = (build_dir or default_build_dir()) / "calibrate"
    elf = link_firmware(
        out / f"calibrate_{loops}.elf", [FW_DIR / "calibrate.c"], [f"PEFT_CM4_LOOPS={loops}"]
    )
    run = run_firmware(elf, build_dir=build_dir)
    return phase_deltas(run.marks, REGION, REGION_END)[0]


def step_phases(marks: Sequence[tuple[int, int]]) -> tuple[list[int], list[int], int]:
    """Per-sample forward and backward counts and the optimizer count of one step.

    Phases are contiguous: a forward runs from its FORWARD mark to the
    BACKWARD mark, a backward from there to the next mark (the next FORWARD or
    OPTIMIZER), the optimizer from OPTIMIZER to STEP_END, so that they add up
    to the step exactly.
    """
    forward, backward, optimizer = [], [], None
    for i, (phase, count) in enumerate(marks[:-1]):
        nxt_phase, nxt = marks[i + 1]
        if phase == FORWARD:
            if nxt_phase != BACKWARD:
                raise UserError("a forward mark is not followed by a backward mark")
            forward.append(nxt - count)
        elif phase == BACKWARD:
            if nxt_phase not in (FORWARD, OPTIMIZER):
                raise UserError("a backward mark is not followed by a forward or optimizer mark")
            backward.append(nxt - count)
        elif phase == OPTIMIZER:
            if nxt_phase != STEP_END or optimizer is not None:
                raise UserError("the optimizer mark is not followed by the step's end")
            optimizer = nxt - count
    if optimizer is None or not forward or len(forward) != len(backward):
        raise UserError("the firmware did not mark a whole training step")
    return forward, backward, optimizer


def linked_library_size(map_file: Path) -> int:
    """Bytes of code and constants that the linker kept from libpeft.a (from its map file)."""
    total = 0
    pending: str | None = None
    text = map_file.read_text()
    # What comes before this line lists the sections --gc-sections discarded.
    start = text.find("Linker script and memory map")
    for line in text[max(start, 0) :].splitlines():
        parts = line.split()
        if len(parts) == 1 and parts[0].startswith((".text", ".rodata")):
            pending = parts[0]  # a long section name: address, size, file on the next line
            continue
        if pending is not None and len(parts) >= 3 and parts[0].startswith("0x"):
            addr, size, origin = parts[0], parts[1], parts[2]
        elif len(parts) >= 4 and parts[0].startswith((".text", ".rodata")):
            addr, size, origin = parts[1], parts[2], parts[3]
        else:
            pending = None
            continue
        pending = None
        if "libpeft.a(" in origin and addr.startswith("0x") and size.startswith("0x"):
            total += int(size, 16)
    return total


def phase_deltas(marks: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """Instruction counts from each `start` mark to the next mark (which must be `end`)."""
    deltas = []
    for i, (phase, count) in enumerate(marks):
        if phase == start:
            if i + 1 >= len(marks) or marks[i + 1][0] != end:
                raise UserError(f"mark {start} is not followed by mark {end}")
            deltas.append(marks[i + 1][1] - count)
    return deltas


# ---------------------------------------------------------------------------
# Training cost of one plan


@dataclass
class TrainingCost:
    """Instructions per phase of one training step on the Cortex-M4F.

    forward / backward: mean over the step's samples, per sample; optimizer:
    one step; step: the whole step from the first forward mark to the
    optimizer's end (so step == samples * (forward + backward) + optimizer,
    apart from rounding of the means). infer: one predict.
    """

    fits: bool
    reason: str = ""
    samples_per_step: int = 0
    forward: float = 0.0
    backward: float = 0.0
    optimizer: int = 0
    step: int = 0
    infer: int = 0
    forward_each: list[float] = field(default_factory=list)
    backward_each: list[float] = field(default_factory=list)
    code: dict[str, int] = field(default_factory=dict)
    library_text: int = 0
    arena_high_water: int = 0
    stack_used: int = 0
    losses: list[float] = field(default_factory=list)
    # Estimated Cortex-M4 cycles (the plugin's TRM weights) of the same phases.
    est_forward_cycles: float = 0.0
    est_backward_cycles: float = 0.0
    est_optimizer_cycles: int = 0
    est_step_cycles: int = 0

    @property
    def est_step_ms(self) -> float:
        """Estimated milliseconds per training step at the nRF52840's 64 MHz."""
        return 1e3 * self.est_step_cycles / CLOCK_HZ

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "est_step_ms": self.est_step_ms}


def _asm_blob(name: str, path: Path, align: int = 16) -> str:
    return (
        f'\t.section .peft_blobs.{name},"a"\n\t.balign {align}\n'
        f'\t.global peft_cm4_{name}\npeft_cm4_{name}:\n\t.incbin "{path}"\n'
        f"\t.global peft_cm4_{name}_end\npeft_cm4_{name}_end:\n"
    )


def write_blobs_asm(
    directory: Path,
    model: bytes,
    plan: bytes,
    samples: np.ndarray,
    labels: np.ndarray,
    arena_bytes: int,
) -> Path:
    """An assembly file that embeds the blobs in flash and reserves the arena in .bss."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "model": model,
        "plan": plan,
        "samples": np.ascontiguousarray(samples, dtype=np.int8).tobytes(),
        "labels": np.ascontiguousarray(labels, dtype="<i4").tobytes(),
    }
    asm = []
    for name, data in files.items():
        path = directory / f"{name}.bin"
        path.write_bytes(data)
        asm.append(_asm_blob(name, path.resolve()))
    arena = max(16, (arena_bytes + 15) // 16 * 16)
    asm.append(
        '\t.section .bss.peft_cm4_arena,"aw",%nobits\n\t.balign 16\n'
        f"\t.global peft_cm4_arena\npeft_cm4_arena:\n\t.space {arena}\n"
        f"\t.global peft_cm4_arena_end\npeft_cm4_arena_end:\n"
    )
    out = directory / "blobs.S"
    out.write_text("".join(asm))
    return out


def measure_training(
    model: bytes,
    plan: bytes,
    samples: np.ndarray,
    labels: np.ndarray,
    arena_bytes: int,
    work_dir: Path,
    build_dir: Path | None = None,
    timeout_s: float = 600.0,
    backend: str = DEFAULT_BACKEND,
    profile: Path | None = None,
) -> TrainingCost:
    """Build the trainer firmware for one plan and count one training step plus one inference.

    `samples` are int8 inputs of the trainable part (the split tensor), one row
    per sample of the step; a plan with a batch capacity (at least len(samples))
    takes them in one call, and each sample's forward and backward are then its
    share of the call's. A plan whose arena (plus the driver's RAM) does
    not fit 256 KB is returned with fits=False rather than raised. profile: where a
    second run writes the step's counts by block (profile_functions reads them).
    """
    library = build_runtime(build_dir, backend=backend)
    samples = np.asarray(samples)
    if samples.ndim < 2 or len(samples) != len(labels) or len(samples) == 0:
        raise UserError("measure_training needs one label per sample and at least one sample")
    n = len(samples)
    blobs = write_blobs_asm(work_dir, model, plan, samples.reshape(n, -1), labels, arena_bytes)
    elf = work_dir / "trainer.elf"
    defines = [f"PEFT_CM4_SAMPLES={n}", f"PEFT_CM4_SAMPLE_BYTES={samples.reshape(n, -1).shape[1]}"]
    try:
        link_firmware(elf, [FW_DIR / "driver.c", blobs], defines, library)
    except DoesNotFit as error:
        return TrainingCost(fits=False, reason=str(error), samples_per_step=n)
    size = code_size(elf)
    run = run_firmware(elf, timeout_s=timeout_s, build_dir=build_dir)
    status = run.values.get("status", "")
    if status != "0":
        raise UserError(f"the Cortex-M4F trainer failed: {status} ({run.values.get('error', '')})")
    if profile is not None:  # the same run again, counted by block over the step only
        phases = [phase for phase, _ in run.marks]
        window = (phases.index(FORWARD) + 1, phases.index(STEP_END) + 1)
        run_firmware(
            elf, timeout_s=timeout_s, build_dir=build_dir, profile=profile, profile_marks=window
        )
    forward, backward, optimizer = step_phases(run.marks)
    forward_cycles, backward_cycles, optimizer_cycles = step_phases(run.cycle_marks)
    if formats.PLAN_HEADER.read(plan, "batch") > 1:  # one call for all the samples
        forward, backward = [f / n for f in forward] * n, [b / n for b in backward] * n
        forward_cycles = [f / n for f in forward_cycles] * n
        backward_cycles = [b / n for b in backward_cycles] * n
    infer = phase_deltas(run.marks, INFER, INFER_END)
    first = next(c for p, c in run.marks if p == FORWARD)
    end = next(c for p, c in run.marks if p == STEP_END)
    first_cycle = next(c for p, c in run.cycle_marks if p == FORWARD)
    end_cycle = next(c for p, c in run.cycle_marks if p == STEP_END)
    return TrainingCost(
        fits=True,
        samples_per_step=n,
        forward=float(np.mean(forward)),
        backward=float(np.mean(backward)),
        optimizer=optimizer,
        step=end - first,
        infer=infer[0] if infer else 0,
        forward_each=forward,
        backward_each=backward,
        code={
            "text": size.text,
            "data": size.data,
            "bss": size.bss,
            "blobs": size.blobs,
            "stack": size.stack,
        },
        library_text=linked_library_size(elf.with_suffix(".map")),
        arena_high_water=int(run.values.get("arena_high_water", "0")),
        stack_used=int(run.values.get("stack_used", "0")),
        losses=[float(x) / 1e6 for x in run.values.get("losses_micro", "").split()],
        est_forward_cycles=float(np.mean(forward_cycles)),
        est_backward_cycles=float(np.mean(backward_cycles)),
        est_optimizer_cycles=optimizer_cycles,
        est_step_cycles=end_cycle - first_cycle,
    )
