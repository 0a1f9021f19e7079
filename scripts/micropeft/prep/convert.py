"""Full-int8 conversion and the TFLM-vs-TFLite check.

`to_int8_tflite` turns a float Keras model into the .tflite the device runs:
int8 weights and activations, int8 input and output, batch fixed to 1.
`check_tflm_matches_tflite` runs the model in TFLM's own kernels (the
`tflite_micro` package) and in TFLite's reference kernels and compares them:
a model whose int8 results differ between the two would train on the device
against features the PC never saw.

TFLM runs in a child process (`python -m micropeft.prep.convert --tflm-worker`):
a model TFLM rejects may abort the process instead of raising.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from micropeft.errors import UserError
from micropeft.prep import models

# Largest difference (int8 units) tolerated between TFLM and TFLite's reference kernels:
# both round the same way, but fixed-point rescaling may differ by one step.
MAX_TFLM_DIFF = 1


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Send what native code (TensorFlow's C++ logs) writes on fd 2 to nowhere.

    TensorFlow prints start-up and converter chatter straight to the process's
    stderr, whatever TF_CPP_MIN_LOG_LEVEL says; the CLI keeps stderr for its one-line
    errors. MICROPEFT_VERBOSE=1 keeps everything.
    """
    if os.environ.get("MICROPEFT_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def start_tensorflow_quietly() -> None:
    """Import TensorFlow and let it probe for CUDA with fd 2 sent nowhere, then keep
    absl's and TensorFlow's Python loggers to errors. The CUDA lines ("Could not find
    cuda drivers", "failed call to cuInit") and absl's "before absl::InitializeLog()"
    warnings come from native code at import and at the first device query, before any
    log level applies; a command that keeps stderr for its progress bars calls this first."""
    _quiet_tensorflow()
    with quiet_native_stderr():
        import tensorflow as tf
        from absl import logging as absl_logging

        tf.config.list_physical_devices()
        absl_logging.set_verbosity(absl_logging.ERROR)
        # Python-side notices ("... triggered tf.function retracing") go to its own logger.
        tf.get_logger().setLevel("ERROR")


def to_int8_tflite(keras_model: Any, representative: np.ndarray) -> bytes:
    """Convert a float Keras model to a full-int8 .tflite with batch 1.

    `representative` holds float samples shaped like the model input (N, h, w, c)
    for calibrating activation ranges (a few hundred suffice).
    """
    _quiet_tensorflow()
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    h, w, c = models.input_shape(keras_model)
    representative = np.asarray(representative, dtype=np.float32)
    if representative.ndim != 4 or representative.shape[1:] != (h, w, c):
        raise UserError(
            f"representative data shaped {representative.shape} does not match the model "
            f"input (N, {h}, {w}, {c})"
        )
    if len(representative) == 0:
        raise UserError("the representative dataset is empty")
    # A Conv1D model's input is (batch, T, C): the (N, 1, T, C) rows lose their unit axis.
    keras_shape = tuple(int(d) for d in keras_model.input_shape[1:])
    representative = representative.reshape(len(representative), *keras_shape)

    # Batch 1 is fixed by tracing with a static signature; freezing the variables
    # first keeps the converter from emitting resource-variable ops (Keras 3).
    @tf.function(input_signature=[tf.TensorSpec((1, *keras_shape), tf.float32, name="input")])
    def forward(x: Any) -> Any:
        return keras_model(x, training=False)

    frozen = convert_variables_to_constants_v2(forward.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def samples() -> Any:
        for i in range(len(representative)):
            yield [representative[i : i + 1]]

    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    import warnings

    try:
        # calibration notices, not problems; the converter's native "fully_quantize: ..."
        # line goes to fd 2 whatever the log level
        with warnings.catch_warnings(), quiet_native_stderr():
            warnings.simplefilter("ignore")
            return bytes(converter.convert())
    except Exception as error:  # noqa: BLE001 - the converter raises many types
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(
            f"TFLite could not convert {keras_model.name} to full int8 "
            f"({type(error).__name__}: {first})"
        ) from error


def tflite_interpreter(model: bytes, preserve_all_tensors: bool = False) -> Any:
    """TFLite's interpreter with its reference kernels (the independent oracle)."""
    _quiet_tensorflow()
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        try:
            interpreter = tf.lite.Interpreter(
                model_content=model,
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
                experimental_preserve_all_tensors=preserve_all_tensors,
            )
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise UserError(f"TFLite cannot load the model: {error}") from error
    return interpreter


def run_tflite(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """Outputs (N, ...) of TFLite's reference kernels for int8 inputs (N, h, w, c)."""
    interpreter = tflite_interpreter(model)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    results = []
    for sample in inputs:
        # (h, w, c) samples; a (1, T, C) series input is stored as (1, T, C), not 4-D.
        interpreter.set_tensor(inp["index"], sample.reshape(inp["shape"]).astype(inp["dtype"]))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(results)


@dataclass
class TflmRun:
    outputs: np.ndarray  # (N, ...) output 0 for every input
    arena_used_bytes: int | None  # TFLM's recording allocator total (host build)


def run_tflm(model: bytes, inputs: np.ndarray, arena_size: int | None = None) -> TflmRun:
    """Run `model` in TFLM's kernels (child process) on int8 inputs (N, h, w, c)."""
    with tempfile.TemporaryDirectory(prefix="micropeft-tflm-") as tmp:
        folder = Path(tmp)
        (folder / "model.tflite").write_bytes(model)
        np.save(folder / "inputs.npy", np.ascontiguousarray(inputs))
        command = [sys.executable, "-m", "micropeft.prep.convert", "--tflm-worker", tmp]
        if arena_size is not None:
            command.append(str(arena_size))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        result_file = folder / "result.json"
        if done.returncode != 0 or not result_file.is_file():
            lines = [line for line in (done.stderr or "").strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {done.returncode}"
            raise UserError(f"TFLM cannot run the model: {reason}")
        meta = json.loads(result_file.read_text())
        outputs = np.load(folder / "outputs.npy")
    arena = re.search(r"Arena allocation total (\d+) bytes", done.stderr or "")
    return TflmRun(outputs, int(arena.group(1)) if arena else meta.get("arena"))


def _tflm_worker(folder: Path, arena_size: int | None) -> None:
    """Child-process side of run_tflm: TFLM's Python runtime, results to files."""
    from tflite_micro.python.tflite_micro import runtime

    model = (folder / "model.tflite").read_bytes()
    inputs = np.load(folder / "inputs.npy")
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    outputs = []
    for i, sample in enumerate(inputs):
        interpreter.set_input(sample.reshape(interpreter.get_input_details(0)["shape"]), 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0))[0])
        if i == 0:
            # The recording allocator prints its totals on stderr; the parent parses them.
            sys.stderr.flush()
            interpreter.print_allocations()
    np.save(folder / "outputs.npy", np.stack(outputs))
    (folder / "result.json").write_text(json.dumps({"count": len(outputs)}))


@dataclass
class CheckResult:
    max_abs_diff: int
    samples: int
    arena_used_bytes: int | None


def quantize_input(model: bytes, samples: np.ndarray) -> np.ndarray:
    """Float samples -> the model input's int8 (its scale and zero point)."""
    interpreter = tflite_interpreter(model)
    detail = interpreter.get_input_details()[0]
    scale, zero_point = detail["quantization"]
    if detail["dtype"] != np.int8 or scale == 0:
        raise UserError("the model input is not int8-quantized (convert with full int8)")
    q = np.round(np.asarray(samples, np.float32) / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def check_tflm_matches_tflite(model: bytes, inputs_int8: np.ndarray) -> CheckResult:
    """TFLM's kernels vs TFLite's reference kernels on the same int8 inputs.

    Raises UserError when outputs differ by more than MAX_TFLM_DIFF int8 steps.
    """
    reference = run_tflite(model, inputs_int8).astype(np.int32)
    tflm = run_tflm(model, inputs_int8)
    if tflm.outputs.shape != reference.shape:
        raise UserError(
            f"TFLM output shape {tflm.outputs.shape} differs from TFLite's {reference.shape}"
        )
    diff = int(np.max(np.abs(tflm.outputs.astype(np.int32) - reference))) if reference.size else 0
    if diff > MAX_TFLM_DIFF:
        raise UserError(
            f"TFLM and TFLite's reference kernels disagree by {diff} int8 steps "
            f"(tolerance {MAX_TFLM_DIFF}): the model uses an operator variant TFLM "
            "computes differently"
        )
    return CheckResult(diff, len(inputs_int8), tflm.arena_used_bytes)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--tflm-worker":
        _tflm_worker(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        sys.exit("usage: python -m micropeft.prep.convert --tflm-worker FOLDER [ARENA_SIZE]")
