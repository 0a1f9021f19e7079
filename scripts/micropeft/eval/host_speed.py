"""Host training speed of the C runtime against TensorFlow, per method.

`python -m micropeft.eval.host_speed` trains each bench method (micropeft.eval.tasks
.METHODS) on MobileNetV1 0.25 32x32 with random weights (kernel_bench's model) and
prints, at batch 16 and at batch 1, the host milliseconds per training step of the C
runtime (the host build: libpeft.so; at batch 16 bench's way, one train_batch call on a
plan of batch capacity 16, then step; at batch 1 the device's plan, one train_sample
then step) and of the TensorFlow reference trainer that bench checks it against
(micropeft.host.reference, one train_batch per step, after a warm-up call that traces
it), and their ratio TF/C (> 1: the C runtime is faster), with the geometric means over
the methods. Each time is the fastest of --repeats timed calls (the machine is shared
and noisy): TF's one train_batch per step, and for C the training call and the step on
their own, summed.
Methods whose update is per layer step after every sample, so only batch 1 applies.
--json FILE also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from micropeft.errors import UserError
from micropeft.eval import kernel_bench, tasks, train
from micropeft.files import write_atomic
from micropeft.host import native, reference, runtime
from micropeft.host.reference import tflite_tensor_values
from micropeft.prep import convert
from micropeft.prep.tflite_graph import graph_from_tflite

BATCHES = (16, 1)


def _fastest(call: Callable[[], object], repeats: int) -> float:
    """Fastest seconds of `repeats` calls, after one untimed warm-up call."""
    call()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def _c_step_seconds(
    trainer: runtime.Trainer, xq: np.ndarray, labels: np.ndarray, repeats: int
) -> float:
    """Seconds of one C step over the samples: the training call (train_batch, or
    train_sample for one sample) and the step timed on their own, fastest of `repeats`
    each, summed."""
    calls = [lambda: train.c_train_batch(trainer, xq, labels)]
    best = [math.inf] * (len(calls) + 1)
    for _ in range(repeats + 1):  # the first round warms up
        for i, call in enumerate([*calls, trainer.step]):
            t0 = time.perf_counter()
            call()
            best[i] = min(best[i], time.perf_counter() - t0)
    return sum(best)


def method_speed(
    name: str, model: bytes, graph: object, repeats: int
) -> dict[str, float | str | None]:
    """ms per step of C and TF at each batch of BATCHES (None where it does not apply)."""
    default = tasks.BenchConfig()  # the recipe as the default bench trains it
    spec = tasks.METHODS[name].for_run(default, default.train_samples)
    prepared = train.prepare_method(spec, graph, model)
    laid = spec.plan(prepared.graph, model, seed=0)
    batched = train.run_plan(spec, prepared.graph, model, 0, default)
    rng = np.random.default_rng(1)
    n = max(BATCHES)
    images = rng.uniform(0, 1, (n, 32, 32, 1)).astype(np.float32)
    labels = rng.integers(0, 10, n).astype(np.int32)
    split = prepared.graph.tensors[laid.input_tensor]
    (xq,) = tflite_tensor_values(model, [split.name], images)
    xf = ((xq.astype(np.float32) - np.float32(split.quant.zero_point)) * split.quant.scale).astype(
        np.float32
    )
    trainers = {1: runtime.Trainer(model, laid), max(BATCHES): runtime.Trainer(model, batched)}
    trainer = trainers[1]
    initial = reference.initial_parameters(prepared.graph, model, laid.split_layer, seed=0)
    for key, value in trainer.parameters().items():
        initial[key] = np.asarray(value, np.float32).reshape(initial[key].shape).copy()
    tf_trainer = reference.TFReferenceTrainer(
        prepared.graph,
        model,
        laid.split_layer,
        spec.optimizer_config(),
        initial,
        act_cache=laid.act_cache,
        int8_backward=laid.int8_backward,
        quantized_forward=laid.quantized_forward,
    )
    row: dict[str, float | str | None] = {"method": name, "label": spec.label}
    for batch in BATCHES:
        c_ms = tf_ms = None
        if batch == 1 or spec.update == "batch":
            c_ms = 1e3 * _c_step_seconds(trainers[batch], xq[:batch], labels[:batch], repeats)
            tf_ms = 1e3 * _fastest(
                lambda b=batch: tf_trainer.train_batch(xf[:b], labels[:b]), repeats
            )
        row[f"c_ms_b{batch}"] = c_ms
        row[f"tf_ms_b{batch}"] = tf_ms
        row[f"tf_over_c_b{batch}"] = None if c_ms is None or tf_ms is None else tf_ms / c_ms
    return row


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def _cell(value: object, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, float) else "-".rjust(len(format(0.0, fmt)))


def print_table(rows: list[dict[str, float | str | None]]) -> None:
    head = "".join(f"{'C ms':>9s}{'TF ms':>9s}{'TF/C':>7s}" for _ in BATCHES)
    print(f"{'':18s}" + "".join(f"{f'batch {b}':>25s}" for b in BATCHES))
    print(f"{'method':18s}{head}")
    for row in rows:
        cells = "".join(
            _cell(row[f"c_ms_b{b}"], "9.2f")
            + _cell(row[f"tf_ms_b{b}"], "9.2f")
            + _cell(row[f"tf_over_c_b{b}"], "7.1f")
            for b in BATCHES
        )
        print(f"{row['method']!s:18s}{cells}")
    for b in BATCHES:
        ratios = [float(r) for r in (row[f"tf_over_c_b{b}"] for row in rows) if r is not None]
        if ratios:
            print(
                f"batch {b:2d}: TF/C geometric mean {_geomean(ratios):.1f}, "
                f"lowest {min(ratios):.1f}, highest {max(ratios):.1f} ({len(ratios)} methods)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m micropeft.eval.host_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (the fastest counts)")
    parser.add_argument(
        "--methods", nargs="+", default=list(tasks.METHODS), help="bench method names"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=native.REPO_ROOT / "build" / "kernel_bench"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    try:
        unknown = [m for m in args.methods if m not in tasks.METHODS]
        if unknown:
            raise UserError(f"unknown method {unknown[0]!r}; one of: {', '.join(tasks.METHODS)}")
        if args.repeats < 1:
            raise UserError("--repeats must be at least 1")
        convert.start_tensorflow_quietly()  # its start-up lines would stand among the figures
        model = kernel_bench.random_mobilenet(args.work_dir)
        graph = graph_from_tflite(model)
        rows = [
            method_speed(name, model, graph, args.repeats)
            for name in tqdm(args.methods, desc="methods", unit="method")
        ]
    except UserError as e:
        parser.exit(2, f"host_speed: {e}\n")
    print("MobileNetV1 0.25 32x32, host ms per training step (fastest of "
          f"{args.repeats}):")  # fmt: skip
    print_table(rows)
    if args.json is not None:
        write_atomic(args.json, json.dumps(rows, indent=1).encode())
        print(f"wrote {len(rows)} rows to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
