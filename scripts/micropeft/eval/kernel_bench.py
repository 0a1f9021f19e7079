"""Cost of the convolution and fully connected kernels, per pass and per training step.

`python -m micropeft.eval.kernel_bench` prints, for both kernel backends side by
side (reference: lib/peft/kernels; optimized: lib/peft/kernels_optimized):

1. host microseconds per call of every pass (fwd s8/f32, bwd_input s8/f32,
   bwd_weight) of the kernels on MobileNetV1-0.25-like shapes (the fastest of
   several timed repeats: the machine is shared and noisy), from each
   backend's host library (libpeft_kernels_<backend>.so);
2. with arm-none-eabi-gcc and qemu-system-arm on PATH, Cortex-M4F instructions
   per MAC of the same calls (a firmware that calls each pass between two
   phase marks, counted by micropeft.eval.cm4's QEMU plugin: exact and repeatable)
   and estimated cycles per MAC (the plugin's Cortex-M4 TRM weights), and the
   code size of lib/peft built with each backend;
3. unless --no-step, for MobileNetV1 0.25 32x32 (random weights, converted to
   int8) trained with BitFit + head and LoRA r4 + head: host microseconds per
   training step of the runtime (batch 16), and per backend the M4
   instructions per MAC of a sample's forward and backward (the cm4 trainer
   driver, MACs from the plan) and the estimated ms per step at 64 MHz.

--json FILE also writes the kernel table as a JSON array, one object per row
(op, pass, dtype, shape, backend, macs, host_us, m4_instr_per_mac,
m4_est_cycles_per_mac). --source-root counts the M4 figures of another copy
of lib/peft (say, a git worktree of an older commit under build/).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from micropeft import formats
from micropeft.errors import UserError
from micropeft.eval import cm4, tasks, train
from micropeft.eval import kernel_binding as kb
from micropeft.files import write_atomic
from micropeft.host import native, runtime
from micropeft.host.reference import tflite_tensor_values
from micropeft.planning import plan
from micropeft.prep import convert, models
from micropeft.prep.tflite_graph import graph_from_tflite

PASSES = (
    "fwd_s8",
    "fwd_f32",
    "bwd_input_s8",
    "bwd_input_f32",
    "bwd_weight_f32",
    "bwd_input_s8s8",  # the int8 path: fully connected and pointwise layers only
)
STEP_METHODS = ("bitfit", "lora_r4")
M4_STEP_SAMPLES = 2  # the firmware's step on the device's plan (one sample per call)
STEP_BATCH = 16


@dataclass(frozen=True)
class Case:
    """One layer shape: op is "conv2d", "depthwise_conv2d" or "fc"."""

    name: str
    op: str
    in_shape: tuple[int, int, int]  # fc: (1, rows, in_features)
    out_shape: tuple[int, int, int]  # fc: (1, rows, out_features)
    kernel: int = 1
    stride: int = 1
    pad: int = 0

    @property
    def fc_form(self) -> tuple[int, int, int] | None:
        """(rows, in, out) when the layer runs as a fully connected one (the int8 path)."""
        if self.op == "fc":
            return (self.in_shape[1], self.in_shape[2], self.out_shape[2])
        if self.op == "conv2d" and self.kernel == 1 and self.stride == 1 and self.pad == 0:
            return (self.out_shape[0] * self.out_shape[1], self.in_shape[2], self.out_shape[2])
        return None

    def has_pass(self, name: str) -> bool:
        return name != "bwd_input_s8s8" or self.fc_form is not None

    @property
    def weight_count(self) -> int:
        k2 = self.kernel * self.kernel
        if self.op == "depthwise_conv2d":
            return k2 * self.in_shape[2]
        return self.out_shape[2] * k2 * self.in_shape[2]

    @property
    def macs(self) -> int:
        out = self.out_shape[0] * self.out_shape[1] * self.out_shape[2]
        k2 = self.kernel * self.kernel
        return out * k2 * (1 if self.op == "depthwise_conv2d" else self.in_shape[2])


# Layers of MobileNetV1 0.25 on 32x32x1 inputs (SAME padding), and its head.
CASES = (
    Case("conv 3x3/2 32x32x1->16x16x8", "conv2d", (32, 32, 1), (16, 16, 8), 3, 2, 0),
    Case("conv 3x3/1 8x8x16->8x8x16", "conv2d", (8, 8, 16), (8, 8, 16), 3, 1, 1),
    Case("dw 3x3/1 8x8x32", "depthwise_conv2d", (8, 8, 32), (8, 8, 32), 3, 1, 1),
    Case("dw 3x3/2 8x8x32->4x4x32", "depthwise_conv2d", (8, 8, 32), (4, 4, 32), 3, 2, 0),
    Case("pw 1x1 8x8x32->8x8x32", "conv2d", (8, 8, 32), (8, 8, 32)),
    Case("pw 1x1 4x4x64->4x4x64", "conv2d", (4, 4, 64), (4, 4, 64)),
    # The 2x2 and 1x1 layers at the end hold most of MobileNetV1 0.25 32x32's MACs
    # (five 2x2x128->128 of 0.8 M), with 4 and 1 rows per call: the whole step's cost.
    # (A 256->256 layer's float weights and their gradient alone fill the rig's 256 KB.)
    Case("pw 1x1 2x2x128->2x2x128", "conv2d", (2, 2, 128), (2, 2, 128)),
    Case("pw 1x1 1x1x128->1x1x128", "conv2d", (1, 1, 128), (1, 1, 128)),
    Case("fc 256->10", "fc", (1, 1, 256), (1, 1, 10)),
    Case("fc 256->10, 16 rows", "fc", (1, 16, 256), (1, 16, 10)),
)


def _n(shape: tuple[int, int, int]) -> int:
    return shape[0] * shape[1] * shape[2]


# ---------------------------------------------------------------------------
# Host: time per call


def _f32(a: np.ndarray) -> ctypes._Pointer:
    return a.ctypes.data_as(kb._F32P)


def _calls(lib: ctypes.CDLL, case: Case) -> dict[str, Callable[[], int]]:
    """Zero-argument closures, one per pass, over buffers that live as long as they do."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, _n(case.in_shape)).astype(np.float32)
    g = rng.uniform(-1, 1, _n(case.out_shape)).astype(np.float32)
    out = np.zeros(_n(case.out_shape), np.float32)
    gin = np.zeros_like(x)
    q = rng.integers(-127, 128, case.weight_count).astype(np.int8)
    wf = rng.uniform(-0.1, 0.1, case.weight_count).astype(np.float32)
    gw = np.zeros_like(wf)
    scales = rng.uniform(0.001, 0.01, case.out_shape[2]).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, case.out_shape[2]).astype(np.float32)
    w8 = kb.WeightsS8(q.ctypes.data_as(kb._S8P), _f32(scales), case.out_shape[2])
    if case.op == "fc":
        params: object = kb.FcParams(case.in_shape[1], case.in_shape[2], case.out_shape[2])
        prefix = "peft_fc"
    else:
        params = kb.ConvParams(
            kb.dims(case.in_shape),
            kb.dims(case.out_shape),
            case.kernel,
            case.kernel,
            case.stride,
            case.stride,
            case.pad,
            case.pad,
        )
        prefix = f"peft_{case.op}"
    fn = {p: getattr(lib, f"{prefix}_{p}") for p in PASSES if p != "bwd_input_s8s8"}
    pp, pw8 = ctypes.byref(params), ctypes.byref(w8)
    fc_form = kb.FcParams(*case.fc_form) if case.fc_form else kb.FcParams(1, 1, 1)
    scratch = np.zeros(4096, np.int16)
    keep = (x, g, out, gin, q, wf, gw, scales, bias, w8, params, fc_form, scratch)
    s8s8 = lib.peft_fc_bwd_input_s8s8
    calls = {
        "fwd_s8": lambda: fn["fwd_s8"](pp, _f32(x), pw8, _f32(bias), _f32(out)),
        "fwd_f32": lambda: fn["fwd_f32"](pp, _f32(x), _f32(wf), _f32(bias), _f32(out)),
        "bwd_input_s8": lambda: fn["bwd_input_s8"](pp, pw8, _f32(g), _f32(gin), False),
        "bwd_input_f32": lambda: fn["bwd_input_f32"](pp, _f32(wf), _f32(g), _f32(gin), False),
        "bwd_weight_f32": lambda: fn["bwd_weight_f32"](pp, _f32(x), _f32(g), _f32(gw)),
        "bwd_input_s8s8": lambda: s8s8(
            ctypes.byref(fc_form),
            pw8,
            _f32(g),
            _f32(gin),
            False,
            scratch.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
            2 * scratch.size,
        ),
    }
    calls["_keep"] = lambda: len(keep)  # holds the buffers; never timed
    return calls


def _time_call(call: Callable[[], int], repeats: int, budget_s: float = 0.02) -> float:
    """Fastest mean seconds per call over `repeats` timed loops of about budget_s each."""
    if call() != kb.PEFT_OK:
        raise UserError("a kernel returned an error on the benchmark's own shapes")
    t0 = time.perf_counter()
    call()
    one = max(time.perf_counter() - t0, 1e-7)
    loops = max(1, int(budget_s / one))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(loops):
            call()
        best = min(best, (time.perf_counter() - t0) / loops)
    return best


def host_kernel_times(lib: ctypes.CDLL, repeats: int) -> dict[str, dict[str, float]]:
    """Microseconds per call, case name -> pass -> us."""
    results = {}
    for case in CASES:
        calls = _calls(lib, case)
        results[case.name] = {
            p: 1e6 * _time_call(calls[p], repeats) for p in PASSES if case.has_pass(p)
        }
    return results


# ---------------------------------------------------------------------------
# Cortex-M4F: instructions per call


def _c_case(case: Case) -> str:
    rows, n_in, n_out = case.fc_form or (0, 0, 0)
    fc = f"{{{rows}, {n_in}, {n_out}}}"
    if case.op == "fc":
        return f"{{2, {{{{0}}}}, {fc}}}"
    op = 0 if case.op == "conv2d" else 1
    i, o = case.in_shape, case.out_shape
    k, s, p = case.kernel, case.stride, case.pad
    dims = f"{{{i[0]}, {i[1]}, {i[2]}}}, {{{o[0]}, {o[1]}, {o[2]}}}"
    return f"{{{op}, {{{dims}, {k}, {k}, {s}, {s}, {p}, {p}}}, {fc}}}"


def firmware_source() -> str:
    """A driver that calls every pass of every case between REGION marks."""
    max_in = max(_n(c.in_shape) for c in CASES)
    max_out = max(_n(c.out_shape) for c in CASES)
    max_w = max(c.weight_count for c in CASES)
    max_c = max(c.out_shape[2] for c in CASES)
    table = ",\n\t".join(_c_case(c) for c in CASES)
    return f"""/* Generated by micropeft.eval.kernel_bench: each kernel pass between two marks. */
#include <stdio.h>

#include "peft/peft_kernels.h"
#include "peft_cm4.h"

typedef struct {{
	int op; /* 0 conv2d, 1 depthwise, 2 fc */
	peft_conv_params cp;
	peft_fc_params fp;
}} bench_case;

static const bench_case cases[] = {{
	{table}
}};

static float x[{max_in}], gin[{max_in}], out[{max_out}], g[{max_out}];
static float wf[{max_w}], gw[{max_w}], scales[{max_c}], bias[{max_c}];
static int8_t q[{max_w}];
static int16_t scratch[4096] __attribute__((aligned(4)));
static uint32_t seed = 1u;

static float uniform(void)
{{
	seed = seed * 1664525u + 1013904223u;
	return (float)(seed >> 8) / 8388608.0f - 1.0f;
}}

static peft_status run(const bench_case *c, int pass)
{{
	const peft_weights_s8 w8 = {{q, scales, c->op == 2 ? c->fp.out_features : c->cp.out.c}};

	if (pass == 5) {{ /* the int8 path, where the layer has a fully connected form */
		if (c->fp.rows == 0) {{
			return PEFT_OK;
		}}
		return peft_fc_bwd_input_s8s8(&c->fp, &w8, g, gin, false, scratch, sizeof(scratch));
	}}

	if (c->op == 2) {{
		switch (pass) {{
		case 0: return peft_fc_fwd_s8(&c->fp, x, &w8, bias, out);
		case 1: return peft_fc_fwd_f32(&c->fp, x, wf, bias, out);
		case 2: return peft_fc_bwd_input_s8(&c->fp, &w8, g, gin, false);
		case 3: return peft_fc_bwd_input_f32(&c->fp, wf, g, gin, false);
		default: return peft_fc_bwd_weight_f32(&c->fp, x, g, gw);
		}}
	}}
	if (c->op == 1) {{
		switch (pass) {{
		case 0: return peft_depthwise_conv2d_fwd_s8(&c->cp, x, &w8, bias, out);
		case 1: return peft_depthwise_conv2d_fwd_f32(&c->cp, x, wf, bias, out);
		case 2: return peft_depthwise_conv2d_bwd_input_s8(&c->cp, &w8, g, gin, false);
		case 3: return peft_depthwise_conv2d_bwd_input_f32(&c->cp, wf, g, gin, false);
		default: return peft_depthwise_conv2d_bwd_weight_f32(&c->cp, x, g, gw);
		}}
	}}
	switch (pass) {{
	case 0: return peft_conv2d_fwd_s8(&c->cp, x, &w8, bias, out);
	case 1: return peft_conv2d_fwd_f32(&c->cp, x, wf, bias, out);
	case 2: return peft_conv2d_bwd_input_s8(&c->cp, &w8, g, gin, false);
	case 3: return peft_conv2d_bwd_input_f32(&c->cp, wf, g, gin, false);
	default: return peft_conv2d_bwd_weight_f32(&c->cp, x, g, gw);
	}}
}}

int main(void);

int main(void)
{{
	int status = 0;

	for (unsigned i = 0; i < sizeof(x) / sizeof(x[0]); i++) {{
		x[i] = uniform();
	}}
	for (unsigned i = 0; i < sizeof(g) / sizeof(g[0]); i++) {{
		g[i] = uniform();
	}}
	for (unsigned i = 0; i < sizeof(wf) / sizeof(wf[0]); i++) {{
		wf[i] = 0.1f * uniform();
		q[i] = (int8_t)(127.0f * uniform());
	}}
	for (unsigned i = 0; i < sizeof(scales) / sizeof(scales[0]); i++) {{
		scales[i] = 0.005f + 0.004f * uniform();
		bias[i] = 0.1f * uniform();
	}}
	for (unsigned c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {{
		for (int pass = 0; pass < {len(PASSES)}; pass++) {{
			peft_cm4_mark(PEFT_CM4_REGION);
			peft_status st = run(&cases[c], pass);
			peft_cm4_mark(PEFT_CM4_REGION_END);
			if (st != PEFT_OK) {{
				status = (int)st;
			}}
		}}
	}}
	peft_cm4_print_marks();
	printf("status: %d\\n", status);
	return 0;
}}
"""


def m4_kernel_counts(
    source_root: Path, work_dir: Path, backend: str
) -> dict[str, dict[str, tuple[int, int]]]:
    """(instructions, estimated cycles) per call, case name -> pass (the mark calls
    included: a few instructions)."""
    lib_dir = source_root / "lib" / "peft"
    if not (lib_dir / "kernels").is_dir():
        raise UserError(f"no kernel sources under {lib_dir / 'kernels'}")
    sources = cm4.kernel_sources(lib_dir, backend)
    work_dir = work_dir / backend
    work_dir.mkdir(parents=True, exist_ok=True)
    driver = work_dir / "kernel_bench.c"
    driver.write_text(firmware_source())
    elf = cm4.link_firmware(work_dir / "kernel_bench.elf", [driver, *sources])
    run = cm4.run_firmware(elf, build_dir=work_dir)
    if run.values.get("status") != "0":
        raise UserError(f"a kernel failed in the M4 firmware: status {run.values.get('status')}")
    counts = cm4.phase_deltas(run.marks, cm4.REGION, cm4.REGION_END)
    cycles = cm4.phase_deltas(run.cycle_marks, cm4.REGION, cm4.REGION_END)
    it = iter(zip(counts, cycles, strict=True))
    table = {case.name: {p: next(it) for p in PASSES} for case in CASES}
    return {c.name: {p: v for p, v in table[c.name].items() if c.has_pass(p)} for c in CASES}


def m4_code_sizes(source_root: Path, work_dir: Path) -> dict[str, int]:
    """Bytes of .text of lib/peft (every object, before --gc-sections) per backend."""
    sizes = {}
    with _cm4_sources(source_root):
        for backend in cm4.BACKENDS:
            library = cm4.build_runtime(work_dir / "cm4", backend=backend)
            sizes[backend] = cm4.library_code_size(library)["text"]
    return sizes


# ---------------------------------------------------------------------------
# Whole training steps of MobileNetV1 0.25 32x32


@contextlib.contextmanager
def _cm4_sources(source_root: Path) -> Iterator[None]:
    """Lets micropeft.eval.cm4 compile lib/peft from `source_root` (inside the repository)."""
    saved = cm4.LIB_DIR
    cm4.LIB_DIR = source_root / "lib" / "peft"
    try:
        yield
    finally:
        cm4.LIB_DIR = saved


def random_mobilenet(work_dir: Path) -> bytes:
    """MobileNetV1 0.25 for 32x32x1, 10 classes, random weights, int8 (cached)."""
    path = work_dir / "mobilenet_v1_0.25_32.tflite"
    if path.is_file():
        return path.read_bytes()
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = models.build_mobilenet_v1(0.25, 32, 10, channels=1)
    rng = np.random.default_rng(0)
    blob = convert.to_int8_tflite(model, rng.uniform(0, 1, (32, 32, 32, 1)).astype(np.float32))
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return blob


def step_costs(
    source_root: Path,
    work_dir: Path,
    repeats: int,
    with_m4: bool,
    profile: bool = False,
    m4_batch: int = 1,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list[cm4.FunctionCost]]]]:
    """Per method: host us per step of STEP_BATCH samples and, with_m4, per backend M4
    instructions per forward / backward MAC (means over the firmware's samples) and
    estimated ms per step of the firmware's samples at 64 MHz; and, with profile, per method
    the default backend's training step by function (a second QEMU run of its firmware).
    The firmware's step: M4_STEP_SAMPLES samples one at a time on the device's plan, or
    with m4_batch > 1 that many in one call on a plan of that batch capacity."""

    model = random_mobilenet(work_dir)
    graph = graph_from_tflite(model)
    rng = np.random.default_rng(1)
    images = rng.uniform(0, 1, (STEP_BATCH, 32, 32, 1)).astype(np.float32)
    labels = rng.integers(0, 10, STEP_BATCH).astype(np.int32)
    results: dict[str, dict[str, float]] = {}
    profiles: dict[str, dict[str, list[cm4.FunctionCost]]] = {}
    for name in STEP_METHODS:
        default = tasks.BenchConfig()  # the recipe as the default bench trains it
        spec = tasks.METHODS[name].for_run(default, default.train_samples)
        prepared = train.prepare_method(spec, graph, model)
        laid = plan.build_plan(prepared.graph, model, spec.optimizer_config(), seed=0)
        firmware = plan.build_plan(
            prepared.graph, model, spec.optimizer_config(), seed=0, batch=m4_batch
        )
        m4_samples = M4_STEP_SAMPLES if m4_batch == 1 else m4_batch
        split = prepared.graph.tensors[laid.input_tensor].name
        (xq,) = tflite_tensor_values(model, [split], images)
        # The host runs the step as bench does: one call of the batch (train.run_plan).
        batched = plan.build_plan(
            prepared.graph, model, spec.optimizer_config(), seed=0, batch=STEP_BATCH
        )
        trainer = runtime.Trainer(model, batched)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            train.c_train_batch(trainer, xq, labels)
            trainer.step()
            times.append(time.perf_counter() - t0)
        macs = laid.macs()
        row = {"host_us_per_step": 1e6 * min(times)}
        row["macs_forward"] = float(macs["forward"])
        row["macs_backward"] = float(macs["backward"])
        for backend in cm4.BACKENDS if with_m4 else ():
            profiled = profile and backend == cm4.DEFAULT_BACKEND
            samples = np.ascontiguousarray(xq[:m4_samples].reshape(m4_samples, -1))
            with _cm4_sources(source_root), tempfile.TemporaryDirectory(dir=work_dir) as tmp:
                cost = cm4.measure_training(
                    model,
                    firmware.to_bytes(),
                    samples,
                    labels[:m4_samples],
                    firmware.arena_bytes("train"),
                    Path(tmp),
                    build_dir=work_dir / "cm4",
                    backend=backend,
                    profile=Path(tmp) / "profile.txt" if profiled else None,
                )
                if cost.fits and profiled:
                    profiles.setdefault(name, {})[backend] = cm4.profile_functions(
                        Path(tmp) / "trainer.elf", Path(tmp) / "profile.txt"
                    )
            if cost.fits:
                row[f"{backend}_per_mac_forward"] = cost.forward / macs["forward"]
                row[f"{backend}_per_mac_backward"] = cost.backward / max(macs["backward"], 1)
                row[f"{backend}_est_step_ms"] = cost.est_step_ms
                row[f"{backend}_step_samples"] = float(cost.samples_per_step)
        results[name] = row
    return results, profiles


# ---------------------------------------------------------------------------
# CLI


def _shape(case: Case) -> dict[str, object]:
    if case.op == "fc":
        rows, n_in, n_out = case.in_shape[1], case.in_shape[2], case.out_shape[2]
        return {"rows": rows, "in_features": n_in, "out_features": n_out}
    return {
        "in": list(case.in_shape),
        "out": list(case.out_shape),
        "kernel": case.kernel,
        "stride": case.stride,
        "pad": case.pad,
    }


def kernel_rows(
    host: dict[str, dict[str, dict[str, float]]],
    m4: dict[str, dict[str, dict[str, tuple[int, int]]]],
) -> list[dict[str, object]]:
    """One row per case, pass and backend (the --json objects); M4 figures None without it."""
    rows = []
    for case in CASES:
        for p in (p for p in PASSES if case.has_pass(p)):
            kernel_pass, _, dtype = p.rpartition("_")
            for backend in kb.BACKENDS:
                counts = m4.get(backend, {}).get(case.name, {}).get(p)
                rows.append(
                    {
                        "op": case.op,
                        "pass": kernel_pass,
                        "dtype": dtype,
                        "shape": _shape(case),
                        "name": case.name,
                        "backend": backend,
                        "macs": case.macs,
                        "host_us": round(host[backend][case.name][p], 2),
                        "m4_instr_per_mac": None
                        if counts is None
                        else round(counts[0] / case.macs, 3),
                        "m4_est_cycles_per_mac": None
                        if counts is None
                        else round(counts[1] / case.macs, 3),
                    }
                )
    return rows


def _cell(value: object, width: int, fmt: str) -> str:
    return f"{value:{width}{fmt}}" if isinstance(value, (int, float)) else f"{'-':>{width}s}"


def print_kernel_table(rows: list[dict[str, object]]) -> None:
    """Reference and optimized side by side: host us, M4 instr/MAC, M4 est. cycles/MAC."""
    print(
        f"{'kernel pass':40s} {'MACs':>7s} {'host us':>17s} {'M4 instr/MAC':>13s} "
        f"{'M4 est cycles/MAC':>17s}"
    )
    pair = f"{'ref':>8s} {'opt':>8s}"
    print(f"{'':40s} {'':>7s} {pair} {'ref':>6s} {'opt':>6s} {pair}")
    by_key: dict[tuple[object, ...], dict[str, dict[str, object]]] = {}
    for row in rows:
        key = (row["name"], row["pass"], row["dtype"])
        by_key.setdefault(key, {})[str(row["backend"])] = row
    for (name, kernel_pass, dtype), pair in by_key.items():
        ref, opt = pair["reference"], pair["optimized"]
        label = f"{name} {kernel_pass}_{dtype}"
        print(
            f"{label:40s} {ref['macs']:7d} {_cell(ref['host_us'], 8, '.1f')} "
            f"{_cell(opt['host_us'], 8, '.1f')} {_cell(ref['m4_instr_per_mac'], 6, '.2f')} "
            f"{_cell(opt['m4_instr_per_mac'], 6, '.2f')} "
            f"{_cell(ref['m4_est_cycles_per_mac'], 8, '.2f')} "
            f"{_cell(opt['m4_est_cycles_per_mac'], 8, '.2f')}"
        )


def _print_profile(functions: list[cm4.FunctionCost], top: int) -> None:
    total_instructions = sum(f.instructions for f in functions)
    total_cycles = sum(f.est_cycles for f in functions)
    print(
        f"    {cm4.DEFAULT_BACKEND} firmware, the training step by function: "
        f"{total_instructions:,} instructions, est. {total_cycles:,} cycles"
    )
    for f in functions[:top]:
        print(
            f"    {f.name:40s} {f.instructions:12,d} "
            f"{100 * f.instructions / total_instructions:5.1f} %  est. cycles "
            f"{100 * f.est_cycles / total_cycles:5.1f} %"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m micropeft.eval.kernel_bench", description=__doc__
    )
    parser.add_argument(
        "--source-root",
        type=Path,
        default=native.REPO_ROOT,
        help="folder (inside the repository) holding the lib/peft to count on the M4",
    )
    parser.add_argument(
        "--work-dir", type=Path, default=native.REPO_ROOT / "build" / "kernel_bench"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats (the fastest counts)")
    parser.add_argument("--no-cm4", action="store_true", help="skip the QEMU instruction counts")
    parser.add_argument("--no-step", action="store_true", help="skip the whole training steps")
    parser.add_argument("--json", type=Path, help="also write the kernel rows to this JSON file")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after each training step's figures, the N functions of its firmware that execute "
        "the most instructions (optimized backend)",
    )
    parser.add_argument(
        "--m4-batch",
        type=int,
        default=1,
        metavar="N",
        help="the firmware's training step: N samples in one call on a plan of batch capacity "
        f"N (default 1: {M4_STEP_SAMPLES} samples one at a time on the device's plan)",
    )
    args = parser.parse_args(argv)
    try:
        if not 1 <= args.m4_batch <= formats.LIMIT["MAX_BATCH"]:
            raise UserError(f"--m4-batch must lie in 1..{formats.LIMIT['MAX_BATCH']}")
        if args.repeats < 1:
            raise UserError("--repeats must be at least 1")
        if args.profile < 0:
            raise UserError("--profile must be 0 or more")
        if not args.no_step:
            convert.start_tensorflow_quietly()  # its start-up lines would stand among the figures
        source_root = args.source_root.resolve()
        with_m4 = not args.no_cm4 and not cm4.missing_tools()
        host = {b: host_kernel_times(kb.backend_library(b), args.repeats) for b in kb.BACKENDS}
        m4 = {}
        if with_m4:
            m4 = {
                b: m4_kernel_counts(source_root, args.work_dir / "kernels", b) for b in kb.BACKENDS
            }
        rows = kernel_rows(host, m4)
        print_kernel_table(rows)
        if args.json is not None:
            write_atomic(args.json, (json.dumps(rows, indent=1) + "\n").encode())
            print(f"\nwrote {len(rows)} rows to {args.json}")
        if with_m4:
            sizes = m4_code_sizes(source_root, args.work_dir)
            print(
                "\nM4 code, lib/peft .text (all objects, before --gc-sections): "
                + ", ".join(f"{b} {sizes[b] / 1024:.1f} KB" for b in cm4.BACKENDS)
            )
        if not args.no_step:
            steps, profiles = step_costs(
                source_root,
                args.work_dir,
                args.repeats,
                with_m4,
                profile=args.profile > 0,
                m4_batch=args.m4_batch,
            )
            capacity = "" if args.m4_batch == 1 else f", M4 plan of batch capacity {args.m4_batch}"
            print(f"\nMobileNetV1 0.25 32x32, batch {STEP_BATCH}{capacity}:")
            for name, row in steps.items():
                print(f"{name:10s} host {row['host_us_per_step']:10.0f} us/step")
                for backend in cm4.BACKENDS if with_m4 else ():
                    if f"{backend}_per_mac_forward" not in row:
                        print(f"  {backend:10s} M4: does not fit 256 KB")
                        continue
                    fwd, bwd = row["macs_forward"], row["macs_backward"]
                    whole = (
                        row[f"{backend}_per_mac_forward"] * fwd
                        + row[f"{backend}_per_mac_backward"] * bwd
                    ) / (fwd + bwd)
                    print(
                        f"  {backend:10s} M4 instr/MAC forward "
                        f"{row[f'{backend}_per_mac_forward']:.2f} backward "
                        f"{row[f'{backend}_per_mac_backward']:.2f} whole step {whole:.2f}, est. "
                        f"{row[f'{backend}_est_step_ms']:.1f} ms per step of "
                        f"{row[f'{backend}_step_samples']:.0f} samples at 64 MHz"
                    )
                functions = profiles.get(name, {}).get(cm4.DEFAULT_BACKEND, [])
                if functions:
                    _print_profile(functions, args.profile)
    except UserError as error:
        print(f"error: {error}")
        return 2
    except cm4.DoesNotFit as error:  # the cases' buffers, all at once, in the rig's RAM
        print(f"error: the kernel firmware {error}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
