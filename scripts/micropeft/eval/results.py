"""The results file of `micropeft bench` (results.json): its schema version, typed
records of what it holds, and its readers.

One file holds every setting (task, model, input size) that was benchmarked into its
folder: `{"schema": 2, "settings": {id: setting}}`, each setting with its own config,
setup, methods, runs and skipped entries; a single-task bench writes one setting. The
benchmark (store.py, train.py) writes these records and the report (summary.py,
conclusions.py, render.py) reads them; neither side imports the other.

The records are TypedDicts: they type-check the keys on both sides and are plain
dicts at run time, so the JSON file is exactly what it was before they existed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from micropeft.errors import UserError

# 1: one setting per file (a whole-config fingerprint); 2: settings keyed by id, runs keyed
# per run with their own fingerprint.
RESULTS_SCHEMA = 2

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
    # What decided the run's numbers (tasks.BenchConfig.run_fingerprint): a run whose
    # fingerprint no longer matches is run again.
    fingerprint: str
    wall_s: float  # C run: the whole job (both trainings, evaluation, merge check)
    cpu_s: float  # C run, scratch: the job's CPU time (every thread)


class SkippedRecord(TypedDict, total=False):
    """A method that did not run in a setting, and why (shown in the report)."""

    method: str
    seed: int | None  # None: the method as a whole (its recipe matches no layer)
    kind: str  # "no-match" (the recipe cannot apply to this model) or "error" (a run failed)
    reason: str


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
    m4_fingerprint: str  # tasks.BenchConfig.m4_fingerprint of the count


class _SettingKeys(TypedDict):
    schema: int
    fingerprint: str  # the setting's (tasks.BenchConfig.setting_fingerprint)
    config: dict[str, Any]  # the BenchConfig's fields (methods and seeds: all in the file)
    setup: dict[str, Any]
    methods: dict[str, MethodRecord]
    runs: list[RunRecord]


class ResultsFile(_SettingKeys, total=False):
    """One setting of results.json (one task, model and input size): what the report renders."""

    setting: str  # its id, "task/arch-alpha/size"
    skipped: list[SkippedRecord]


def results_file(settings: dict[str, ResultsFile]) -> dict[str, Any]:
    """The whole of results.json for these settings (id -> setting)."""
    return {"schema": RESULTS_SCHEMA, "settings": settings}


def load_settings(path: Path) -> list[tuple[str, ResultsFile]]:
    """Every setting of a results file, in the order they were first benchmarked."""
    if not path.is_file():
        raise UserError(f"results file not found: {path} (run `micropeft bench` first)")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from error
    schema = results.get("schema") if isinstance(results, dict) else None
    if isinstance(schema, int) and schema < RESULTS_SCHEMA:
        raise UserError(
            f"{path}: results of an older micropeft (schema {schema}; this one reads "
            f"{RESULTS_SCHEMA}): run `micropeft bench` again into another --out folder, or "
            "delete the file"
        )
    if schema != RESULTS_SCHEMA or not isinstance(results.get("settings"), dict):
        raise UserError(f"{path}: not a micropeft results file (schema {RESULTS_SCHEMA})")
    out = []
    for setting_id, setting in results["settings"].items():
        for key in ("config", "methods", "runs"):
            if key not in setting:
                raise UserError(f"{path}: setting {setting_id}: no '{key}' section")
        out.append((setting_id, setting))
    if not out:
        raise UserError(f"{path}: holds no results yet")
    return out


def load_results(path: Path) -> ResultsFile:
    """The one setting of a single-task results file."""
    settings = load_settings(path)
    if len(settings) != 1:
        names = ", ".join(name for name, _ in settings)
        raise UserError(f"{path}: holds {len(settings)} settings ({names}), not one")
    return settings[0][1]


def optimizer_text(opt: dict[str, Any]) -> str:
    """ "Adam, lr 0.003" / "SGD (momentum 0.9), lr 0.01, linear decay over 315 updates"
    from an OptimizerConfig's fields."""
    decay = opt.get("lr_decay_steps") or 0
    schedule = f", linear decay over {decay} updates" if decay else ""
    if opt.get("kind") == "adam":
        return f"Adam, lr {opt['lr']:g}{schedule}"
    return f"SGD (momentum {opt.get('momentum', 0.0):g}), lr {opt['lr']:g}{schedule}"
