"""The results file of `micropeft bench` (results.json): its schema version, typed
records of what it holds, and its reader. The benchmark (store.py, train.py) writes
these records and the report (summary.py, conclusions.py, render.py) reads them;
neither side imports the other.

The records are TypedDicts: they type-check the keys on both sides and are plain
dicts at run time, so the JSON file is exactly what it was before they existed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from micropeft.errors import UserError

RESULTS_SCHEMA = 1

# The parts of the planner's training-RAM breakdown, in the order tables and plots show them.
RAM_PARTS = ("cached_activations", "gradients", "parameters", "optimizer_state", "scratch")


class EpochRecord(TypedDict):
    """One epoch of a run: mean training loss and test accuracy after it."""

    epoch: int
    loss: float
    accuracy: float


class _RunKeys(TypedDict):
    key: str  # "method/seed/impl", or "zero_shot/0", "scratch/<seed>"
    method: str  # a bench method name, "zero_shot" or "scratch"
    seed: int
    impl: str  # "c" (the C runtime), "tf" (the TF reference), "int8" (zero-shot), "keras"
    accuracy: float  # on the test set, after the last epoch


class RunRecord(_RunKeys, total=False):
    """One run of results.json's "runs" (the keys after `accuracy` only where trained)."""

    epochs: list[EpochRecord]
    step_ms: float  # median host time of a training step
    train_s: float
    steps: int
    first_step_param_diff: float  # C against TF after the first step (relative)
    param_diff_floor: float
    lockstep_steps: int  # steps before the C and TF runs drift apart
    lockstep_bound: float
    at_c_params: list[dict[str, Any]] | None  # C run: TF set to the C parameters per epoch
    merged: dict[str, Any]  # C run: the merged .tflite checked against the runtime


class MethodRecord(TypedDict, total=False):
    """One method's seed-independent costs, results.json's "methods" entry."""

    plan_file: str
    label: str
    description: str
    split_layer: int
    layers_trained: int
    trainable_parameters: int
    ram: dict[str, int]  # RAM_PARTS, total, total_device, high_water
    ram_device: dict[str, int]
    ram_peak: list[Any]
    ram_infer: int
    flash: dict[str, int]  # model, plan, code, runtime_code
    macs: dict[str, int]  # prefix_forward, forward, backward
    optimizer: dict[str, Any]  # an OptimizerConfig's fields
    runtime: dict[str, Any]  # the C runtime's own arena and parameter figures
    m4: dict[str, Any] | None  # cm4.TrainingCost.to_dict(), None without the M4 part


class ResultsFile(TypedDict):
    """The whole of results.json."""

    schema: int
    fingerprint: str
    config: dict[str, Any]  # the BenchConfig's fields
    setup: dict[str, Any]
    methods: dict[str, MethodRecord]
    runs: list[RunRecord]


def load_results(path: Path) -> ResultsFile:
    if not path.is_file():
        raise UserError(f"results file not found: {path} (run `micropeft bench` first)")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(results, dict) or results.get("schema") != RESULTS_SCHEMA:
        raise UserError(f"{path}: not a micropeft results file (schema {RESULTS_SCHEMA})")
    for key in ("config", "methods", "runs"):
        if key not in results:
            raise UserError(f"{path}: no '{key}' section")
    return results


def optimizer_text(opt: dict[str, Any]) -> str:
    """ "Adam, lr 0.003" / "SGD (momentum 0.9), lr 0.01" from an OptimizerConfig's fields."""
    if opt.get("kind") == "adam":
        return f"Adam, lr {opt['lr']:g}"
    return f"SGD (momentum {opt.get('momentum', 0.0):g}), lr {opt['lr']:g}"
