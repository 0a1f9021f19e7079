"""One method of the benchmark: the cached frozen prefix, the C runtime and the
TensorFlow reference trained side by side, its costs, its Cortex-M4F counts, and the
zero-shot and from-scratch baselines.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from micropeft.deploy import merge
from micropeft.eval import cm4
from micropeft.eval.results import EpochRecord, MethodRecord, RunRecord
from micropeft.eval.tasks import BenchConfig, MethodSpec, TaskData
from micropeft.files import write_atomic
from micropeft.host import reference, runtime
from micropeft.planning import methods
from micropeft.prep import convert, tflite_graph

# ---------------------------------------------------------------------------
# Frozen-prefix cache


@dataclass
class PrefixCache:
    """int8 values of every split tensor in use, for the train and test samples."""

    train: dict[int, np.ndarray]
    test: dict[int, np.ndarray]
    test_logits: np.ndarray  # the int8 model's own (dequantised) logits: zero-shot


def prefix_activations(
    model: bytes, graph: Any, tensors: list[int], data: TaskData, cache_dir: Path
) -> PrefixCache:
    """Run the int8 model once per sample (tf.lite, all tensors kept) and keep the
    split tensors: the frozen prefix's outputs, reused by every epoch, method and seed."""

    names = [graph.tensors[t].name for t in tensors] + [graph.tensors[graph.output].name]
    h = hashlib.sha256(model)
    for arr in (data.x_train, data.x_test):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps(names).encode())
    path = cache_dir / f"prefix-{h.hexdigest()[:16]}.npz"
    if path.is_file():
        stored = np.load(path)
        train = {t: stored[f"train_{t}"] for t in tensors}
        test = {t: stored[f"test_{t}"] for t in tensors}
        return PrefixCache(train, test, stored["test_logits"])
    values_train = reference.tflite_tensor_values(model, names, data.x_train)
    values_test = reference.tflite_tensor_values(model, names, data.x_test)
    out_q = graph.tensors[graph.output].quant
    logits = reference.dequantize(values_test[-1], out_q.scale, out_q.zero_point)
    arrays = {f"train_{t}": values_train[i] for i, t in enumerate(tensors)}
    arrays.update({f"test_{t}": values_test[i] for i, t in enumerate(tensors)})
    arrays["test_logits"] = logits.reshape(len(data.x_test), -1)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue())
    return PrefixCache(
        {t: arrays[f"train_{t}"] for t in tensors},
        {t: arrays[f"test_{t}"] for t in tensors},
        arrays["test_logits"],
    )


# ---------------------------------------------------------------------------
# One method


@dataclass
class PreparedMethod:
    spec: MethodSpec
    graph: Any
    split_layer: int
    input_tensor: int


def prepare_method(spec: MethodSpec, graph: Any, model: bytes) -> PreparedMethod:

    marked = copy.deepcopy(graph)
    methods.apply_method(marked, spec.config)
    laid = spec.plan(marked, model, seed=0)
    return PreparedMethod(spec, marked, laid.split_layer, laid.input_tensor)


def _dequantize(q: np.ndarray, quant: Any) -> np.ndarray:
    return ((q.astype(np.float32) - np.float32(quant.zero_point)) * np.float32(quant.scale)).astype(
        np.float32
    )


def _prefix_tflm_arena(model: bytes, graph: Any, split_layer: int) -> int:
    """The TFLM arena the frozen prefix needs (measured, host TFLM), as prepare-model."""

    device = tflite_graph.device_model_for_graph(model, graph, split_layer)
    x = np.zeros((1, *graph.tensors[graph.input].shape), np.int8)
    return int(convert.run_tflm(device, x).arena_used_bytes or 0)


def method_costs(prepared: PreparedMethod, model: bytes, artifacts: Path) -> MethodRecord:
    """The planner's figures for a method (seed-independent); writes its plan (seed 0)
    to <artifacts>/<method>/plan.bin so that anyone can reload it in the runtime."""

    laid = prepared.spec.plan(prepared.graph, model, seed=0)
    device_ram = laid.device_ram(_prefix_tflm_arena(model, prepared.graph, laid.split_layer))
    blob = laid.to_bytes()
    plan_file = artifacts / prepared.spec.name / "plan.bin"
    if not plan_file.is_file() or plan_file.read_bytes() != blob:
        write_atomic(plan_file, blob)
    return {
        "plan_file": str(plan_file.relative_to(artifacts.parent)),
        # What builds this plan for a device (run.py writes the model there).
        "prepare_model": prepared.spec.prepare_model_command(artifacts / "model.tflite"),
        "label": prepared.spec.label,
        "description": prepared.spec.description,
        "split_layer": laid.split_layer,
        "layers_trained": sum(1 for lay in prepared.graph.layers if lay.methods),
        "trainable_parameters": int(laid.trainable_parameters),
        "ram": {
            **{k: int(v) for k, v in laid.breakdown().items()},
            "total_device": device_ram["total"],
        },
        "ram_device": device_ram,
        "ram_peak": laid.peak_report("train"),
        "ram_infer": int(laid.arena_bytes("infer")),
        "flash": {"model": len(model), "plan": len(blob)},
        "macs": {k: int(v) for k, v in laid.macs().items()},
        "optimizer": asdict(prepared.spec.optimizer_config()),
    }


# An array whose values all sit near zero (a shift, a bias after one step from zero) would
# turn rounding noise into a large relative difference: below this magnitude the
# difference is measured in absolute terms.
PARAM_DIFF_FLOOR = 1e-3


def run_plan(spec: MethodSpec, graph: Any, model: bytes, seed: int, cfg: BenchConfig) -> Any:
    """The plan bench's C runs train with: the recipe's, with a batch capacity of the
    bench's batch (one call per batch, each layer over the batch at once: the same
    per-sample values as the device's plan, the gradients summed in another grouping),
    one sample for per-layer updates."""
    return spec.config.plan(graph, model, seed=seed, batch=spec.batch_size(cfg))


def c_train_batch(trainer: runtime.Trainer, x: np.ndarray, y: np.ndarray) -> float:
    """One batch through the C runtime in calls of its batch capacity; the summed loss of
    the samples that trained (one that added nothing counts as its NaN)."""
    total = 0.0
    for start in range(0, len(x), trainer.batch_capacity):
        part = slice(start, start + trainer.batch_capacity)
        losses, _ = trainer.train_batch(x[part], y[part])
        total += float(np.sum(losses))
    return total


def c_predictions(trainer: runtime.Trainer, x: np.ndarray) -> np.ndarray:
    """The C runtime's predicted class of every sample, in calls of its batch capacity
    (-1 where a sample has no answer)."""
    parts = [
        trainer.predict_batch(x[start : start + trainer.batch_capacity])[1]
        for start in range(0, len(x), trainer.batch_capacity)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def _max_relative_diff(c_params: dict[str, Any], tf_params: dict[str, Any]) -> float:
    """Largest |C - TF| over every trained array, relative to that array's largest value
    or PARAM_DIFF_FLOOR, whichever is larger."""
    worst = 0.0
    for key, tf_value in tf_params.items():
        b = np.asarray(tf_value).reshape(-1)
        scale = max(float(np.max(np.abs(b))), PARAM_DIFF_FLOOR)  # |b| and max are exact
        # float64 as converting both first, without the two float64 copies (every step)
        diff = np.subtract(np.asarray(c_params[key]).reshape(-1), b, dtype=np.float64)
        worst = max(worst, float(np.max(np.abs(diff, out=diff))) / scale)
    return worst


# A gradient array whose values all sit near zero (an early layer's bias) would turn rounding
# noise into a large relative difference: below this fraction of the largest gradient of the
# step the difference is measured against that fraction instead.
GRAD_DIFF_FLOOR = 1e-3
# C and TF are "in lockstep" while every trained array differs by less than this (relative,
# as _max_relative_diff): past it the runs are separate trajectories (see train_pair).
LOCKSTEP_BOUND = 1e-3


def _max_relative_grad_diff(c_grads: dict[str, Any], tf_grads: dict[str, Any]) -> float:
    """Largest |C - TF| over every gradient array, relative to that array's largest value or
    GRAD_DIFF_FLOOR times the largest gradient of all, whichever is larger."""
    flat = {k: np.asarray(v, np.float64).reshape(-1) for k, v in tf_grads.items()}
    floor = GRAD_DIFF_FLOOR * max(float(np.max(np.abs(v))) for v in flat.values())
    worst = 0.0
    for key, b in flat.items():
        a = np.asarray(c_grads[key], np.float64).reshape(-1)
        scale = max(float(np.max(np.abs(b))), floor, np.finfo(np.float32).tiny)
        worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


@contextlib.contextmanager
def _at_parameters(
    tf_trainer: reference.TFReferenceTrainer, params: dict[str, np.ndarray]
) -> Iterator[None]:
    """The TF reference moved onto other parameters (the C run's) and back, bit for bit:
    one traced graph serves both (a second reference would trace its own)."""
    own = tf_trainer.parameters()
    tf_trainer.assign(params)
    try:
        yield
    finally:
        tf_trainer.assign(own)


def train_pair(
    prepared: PreparedMethod,
    model: bytes,
    cache: PrefixCache,
    data: TaskData,
    cfg: BenchConfig,
    seed: int,
    merge_check: bool = True,
) -> tuple[RunRecord, RunRecord, dict[str, Any]]:
    """Train the method with the C runtime and the TF reference side by side.

    Same int8 split activations, same sample order, same initial parameters
    (the C trainer's, LoRA A included). Returns the C run, the TF run, and the
    runtime's own memory figures.

    The two runs start in lockstep, but SGD on the whole network (and Adam on
    rounding-level gradients) amplifies float32 rounding: two TF runs whose initial
    parameters differ by 1e-7 end as different models, several accuracy points
    apart. So the C run also records how many steps the runs stayed within
    LOCKSTEP_BOUND, and, after every epoch, a TF reference set to the C run's own
    parameters: its gradient on the epoch's last batch (before the step) and its
    test predictions after it, which must equal the C runtime's wherever C went.
    """

    graph = prepared.graph
    laid = run_plan(prepared.spec, graph, model, seed, cfg)
    trainer = runtime.Trainer(model, laid)
    initial = reference.initial_parameters(graph, model, laid.split_layer, seed=seed)
    for key, value in trainer.parameters().items():
        # The C trainer's initial values (LoRA A from the plan's seed), in TFLite layouts.
        initial[key] = np.asarray(value, np.float32).reshape(initial[key].shape).copy()

    tf_trainer = reference.TFReferenceTrainer(
        graph,
        model,
        laid.split_layer,
        prepared.spec.optimizer_config(),
        initial,
        act_cache=laid.act_cache,
        int8_backward=laid.int8_backward,
        quantized_forward=laid.quantized_forward,
    )
    # Per-layer updates keep no gradient past its layer: only whole-batch steps compare them.
    compare_grads = prepared.spec.update == "batch"
    quant = graph.tensors[laid.input_tensor].quant
    xq_train = cache.train[laid.input_tensor]
    xq_test = cache.test[laid.input_tensor]
    xf_train = _dequantize(xq_train, quant)
    xf_test = _dequantize(xq_test, quant)
    n = len(xq_train)
    rng = np.random.default_rng(seed)
    first_step_diff: float | None = None
    lockstep_steps: int | None = None  # None: in lockstep to the end
    step_index = 0
    at_c_params: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {
        impl: {"epochs": [], "step_times": []} for impl in ("c", "tf")
    }
    for epoch in range(cfg.epochs):
        order = rng.permutation(n)
        losses: dict[str, list[float]] = {"c": [], "tf": []}
        batch_size = prepared.spec.batch_size(cfg)
        epoch_diff = 0.0
        grad_diff: float | None = None
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            t0 = time.perf_counter()
            batch_loss = c_train_batch(trainer, xq_train[batch], data.y_train[batch])
            c_time = time.perf_counter() - t0
            if compare_grads and start + batch_size >= n:
                c_grads = {k: v / len(batch) for k, v in trainer.gradients().items()}
                with _at_parameters(tf_trainer, trainer.parameters()):
                    tf_grads = tf_trainer.gradients(xf_train[batch], data.y_train[batch])
                grad_diff = _max_relative_grad_diff(c_grads, tf_grads)
            t0 = time.perf_counter()
            trainer.step()
            t1 = time.perf_counter()
            c_time += t1 - t0
            tf_loss = tf_trainer.train_batch(xf_train[batch], data.y_train[batch])
            t2 = time.perf_counter()
            diff = _max_relative_diff(trainer.parameters(), tf_trainer.parameters())
            if first_step_diff is None:
                first_step_diff = diff
            if lockstep_steps is None and diff >= LOCKSTEP_BOUND:
                lockstep_steps = step_index
            step_index += 1
            epoch_diff = max(epoch_diff, diff)
            runs["c"]["step_times"].append(c_time)
            runs["tf"]["step_times"].append(t2 - t1)
            losses["c"].append(batch_loss / len(batch))
            losses["tf"].append(tf_loss)
        pred_c = c_predictions(trainer, xq_test)
        pred_tf = np.argmax(tf_trainer.predict(xf_test), axis=1)
        with _at_parameters(tf_trainer, trainer.parameters()):
            pred_probe = np.argmax(tf_trainer.predict(xf_test), axis=1)
        at_c_params.append(
            {
                "epoch": epoch + 1,
                "max_param_diff": epoch_diff,  # C vs TF run, largest over the epoch's steps
                "grad_diff": grad_diff,
                "prediction_agreement": float(np.mean(pred_probe == pred_c)),
                "tf_accuracy": float(np.mean(pred_probe == data.y_test)),
            }
        )
        for impl, pred in (("c", pred_c), ("tf", pred_tf)):
            runs[impl]["epochs"].append(
                {
                    "epoch": epoch + 1,
                    "loss": float(np.mean(losses[impl])),
                    "accuracy": float(np.mean(pred == data.y_test)),
                }
            )
    out: list[RunRecord] = []
    for impl in ("c", "tf"):
        times = runs[impl]["step_times"]
        out.append(
            {
                "key": f"{prepared.spec.name}/{seed}/{impl}",
                "method": prepared.spec.name,
                "seed": seed,
                "impl": impl,
                "accuracy": runs[impl]["epochs"][-1]["accuracy"],
                "epochs": runs[impl]["epochs"],
                "step_ms": 1000.0 * float(np.median(times)),
                "train_s": float(np.sum(times)),
                "steps": len(times),
                "first_step_param_diff": first_step_diff,
                "param_diff_floor": PARAM_DIFF_FLOOR,
                "lockstep_steps": len(times) if lockstep_steps is None else lockstep_steps,
                "lockstep_bound": LOCKSTEP_BOUND,
                "at_c_params": at_c_params if impl == "c" else None,
            }
        )

    # The state as the device would save it, folded into a standard int8 .tflite
    # (merge_check: bench checks one seed per method, the check costs a third of a run).
    if merge_check:
        out[0]["merged"] = merge.check_against_runtime(
            model, laid, trainer.export_state(), data.x_train[: merge.CALIBRATION_SAMPLES],
            data.x_test, pred_c, data.y_test,
        )  # fmt: skip
    # The device's plan (the recipe's batch capacity): its arena, measured after one call.
    device = runtime.Trainer(model, prepared.spec.plan(graph, model, seed=seed))
    c_train_batch(device, xq_train[: device.batch_capacity], data.y_train[: device.batch_capacity])
    memory = {
        "arena_train": int(device.arena_size("train")),
        "arena_infer": int(device.arena_size("infer")),
        "high_water": int(device.arena_high_water()),
        "breakdown": {k: int(v) for k, v in device.breakdown().items()},
        "parameter_count": int(sum(np.asarray(v).size for v in device.parameters().values())),
    }
    return out[0], out[1], memory


def measure_m4(
    prepared: PreparedMethod,
    model: bytes,
    cache: PrefixCache,
    data: TaskData,
    cfg: BenchConfig,
    work_dir: Path,
    artifacts: Path,
) -> dict[str, Any]:

    laid = prepared.spec.plan(prepared.graph, model, seed=0)
    n = min(cfg.cm4_samples, len(data.y_train))
    samples = np.ascontiguousarray(cache.train[laid.input_tensor][:n].reshape(n, -1))
    labels = data.y_train[:n].astype(np.int32)
    # The firmware's inputs, kept beside the plan so that a count can be reproduced.
    folder = artifacts / prepared.spec.name
    for name, array in (("m4_samples.npy", samples), ("m4_labels.npy", labels)):
        buffer = io.BytesIO()
        np.save(buffer, array)
        write_atomic(folder / name, buffer.getvalue())
    cost = cm4.measure_training(
        model,
        laid.to_bytes(),
        samples,
        labels,
        laid.arena_bytes("train"),
        work_dir / prepared.spec.name,
    )
    return cost.to_dict()


# ---------------------------------------------------------------------------
# Baselines


def train_c(
    prepared: PreparedMethod,
    model: bytes,
    cache: PrefixCache,
    data: TaskData,
    cfg: BenchConfig,
    seed: int,
) -> float:
    """The C runtime alone (the learning-rate sweep's runs): train_pair's C run, the same
    plan, sample order and steps, without the reference beside it; the test accuracy
    after the last epoch."""
    laid = run_plan(prepared.spec, prepared.graph, model, seed, cfg)
    trainer = runtime.Trainer(model, laid)
    xq_train = cache.train[laid.input_tensor]
    xq_test = cache.test[laid.input_tensor]
    rng = np.random.default_rng(seed)
    batch_size = prepared.spec.batch_size(cfg)
    for _ in range(cfg.epochs):
        order = rng.permutation(len(xq_train))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            c_train_batch(trainer, xq_train[batch], data.y_train[batch])
            trainer.step()
    return float(np.mean(c_predictions(trainer, xq_test) == data.y_test))


def zero_shot_run(cache: PrefixCache, data: TaskData) -> RunRecord:
    pred = np.argmax(cache.test_logits, axis=1)
    return {
        "key": "zero_shot/0",
        "method": "zero_shot",
        "seed": 0,
        "impl": "int8",
        "accuracy": float(np.mean(pred == data.y_test)),
    }


def _recalibrate_batchnorm(model: Any, x: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics to those of the training set.

    With few steps, Keras' moving averages (momentum 0.99) still sit near their
    initial values and the model predicts one class at inference: the
    baseline would measure that artefact, not what the weights learned.
    """
    import tensorflow as tf

    layers = [lay for lay in model.layers if isinstance(lay, tf.keras.layers.BatchNormalization)]
    saved = [lay.momentum for lay in layers]
    for lay in layers:
        lay.momentum = 0.0
    model(x, training=True)  # one batch of the whole set: its exact statistics
    for lay, momentum in zip(layers, saved, strict=True):
        lay.momentum = momentum


def scratch_run(data: TaskData, cfg: BenchConfig, seed: int) -> RunRecord:
    """The same architecture from random initialisation, Keras (Adam 1e-3), the same
    epochs and batch size; BatchNorm statistics recomputed on the training set."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    model = data.keras_builder()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    epochs: list[EpochRecord] = []
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        history = model.fit(
            data.x_train, data.y_train, batch_size=cfg.batch_size, epochs=1, verbose=0, shuffle=True
        )
        _recalibrate_batchnorm(model, data.x_train)
        logits = model.predict(data.x_test, batch_size=256, verbose=0)
        epochs.append(
            {
                "epoch": epoch + 1,
                "loss": float(history.history["loss"][-1]),
                "accuracy": float(np.mean(np.argmax(logits, axis=1) == data.y_test)),
            }
        )
    return {
        "key": f"scratch/{seed}",
        "method": "scratch",
        "seed": seed,
        "impl": "keras",
        "accuracy": epochs[-1]["accuracy"],
        "epochs": epochs,
        "train_s": time.perf_counter() - start,
    }
