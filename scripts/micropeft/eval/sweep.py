"""`micropeft bench --sweep`: the learning-rate sweep that chooses each recipe's optimizer
and rate, as a command anyone can rerun.

Each method is trained in the C runtime with every (optimizer, rate) of the grid (and its
recipe's own choice) on a validation split carved from the task's training samples, never
its test split, and scored there, mean over seeds. Results go to <out>/sweep.json (one
entry per run, saved after each, so an interrupted sweep resumes) and <out>/sweep.md (the
table); `micropeft bench` into the same folder cites them in its report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from micropeft.eval.tasks import METHODS, BenchConfig, TaskData, prepare_task
from micropeft.files import write_atomic

# The (optimizer, learning rate) pairs every method is tried with.
SWEEP_GRID: tuple[tuple[str, float], ...] = (
    ("sgd", 0.003),
    ("sgd", 0.01),
    ("sgd", 0.03),
    ("adam", 0.001),
    ("adam", 0.003),
    ("adam", 0.01),
)
# Of the task's training samples, the share held out to score the sweep (stratified).
VALIDATION_FRACTION = 1 / 3
SWEEP_JSON = "sweep.json"
SWEEP_TABLE = "sweep.md"
# Within this much validation accuracy the smaller rate wins (it keeps C and TF closer).
NEAR_TIE = 0.01


def validation_split(data: TaskData) -> TaskData:
    """The task's training samples split into training and validation (as its test set):
    stratified, seeded (sklearn train_test_split, random_state 0)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(data.y_train))
    train, val = train_test_split(
        index, test_size=VALIDATION_FRACTION, stratify=data.y_train, random_state=0
    )
    train, val = np.sort(train), np.sort(val)
    return dataclasses.replace(
        data,
        x_train=data.x_train[train],
        y_train=data.y_train[train],
        x_test=data.x_train[val],
        y_test=data.y_train[val],
    )


def _fingerprint(cfg: BenchConfig) -> str:
    data = dataclasses.asdict(cfg)
    for key in ("methods", "seeds", "cm4", "scratch", "quick", "test_samples"):
        data.pop(key)  # a run's own key names its method and seed; the rest decides it
    text = json.dumps({"config": data, "validation": VALIDATION_FRACTION}, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _key(method: str, kind: str, lr: float, seed: int) -> str:
    return f"{method}/{kind}/{lr:g}/{seed}"


def candidates(method: str) -> list[tuple[str, float]]:
    """The grid, and the recipe's own choice where the grid lacks it."""
    spec = METHODS[method]
    grid = list(SWEEP_GRID)
    if (spec.optimizer, spec.lr) not in grid:
        grid.append((spec.optimizer, spec.lr))
    return grid


def run_sweep(cfg: BenchConfig, out_dir: Path, progress: bool = True) -> Path:
    """Run (or resume) the sweep; returns the Markdown table's path."""
    from tqdm import tqdm

    from micropeft.eval.train import prefix_activations, prepare_method, train_c
    from micropeft.prep import tflite_graph

    cfg.check()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SWEEP_JSON
    fingerprint = _fingerprint(cfg)
    runs: dict[str, float] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = {}
        if isinstance(old, dict) and old.get("fingerprint") == fingerprint:
            runs = dict(old.get("runs", {}))
    data = validation_split(prepare_task(cfg, out_dir / "cache", {}))
    graph = tflite_graph.graph_from_tflite(data.model)
    prepared = {
        (m, kind, lr): prepare_method(
            METHODS[m].with_optimizer(kind, lr).for_run(cfg, len(data.x_train)), graph, data.model
        )
        for m in cfg.methods
        for kind, lr in candidates(m)
    }
    tensors = sorted({p.input_tensor for p in prepared.values()})
    cache = prefix_activations(data.model, graph, tensors, data, out_dir / "cache")
    record: dict[str, Any] = {
        "fingerprint": fingerprint,
        "task": cfg.task if cfg.model_path is None else f"{cfg.model_path} on {cfg.dataset}",
        "samples": {"train": len(data.y_train), "validation": len(data.y_test)},
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "seeds": list(cfg.seeds),
        "methods": {
            m: {"label": METHODS[m].label, "recipe": [METHODS[m].optimizer, METHODS[m].lr]}
            for m in cfg.methods
        },
        "runs": runs,
    }
    work = [(key, seed) for key in prepared for seed in cfg.seeds]
    bar = tqdm(total=len(work), desc="learning-rate sweep", unit="run", disable=not progress)
    for (method, kind, lr), seed in work:
        key = _key(method, kind, lr, seed)
        bar.set_postfix_str(key)
        if key not in runs:
            runs[key] = train_c(prepared[method, kind, lr], data.model, cache, data, cfg, seed)
            write_atomic(path, (json.dumps(record, indent=1) + "\n").encode())
        bar.update(1)
    bar.close()
    write_atomic(path, (json.dumps(record, indent=1) + "\n").encode())
    table = out_dir / SWEEP_TABLE
    write_atomic(table, sweep_markdown(record).encode())
    return table


def scores(record: dict[str, Any], method: str) -> dict[tuple[str, float], float]:
    """Mean validation accuracy over the sweep's seeds per (optimizer, rate) of a method;
    only candidates every seed finished."""
    out = {}
    for kind, lr in candidates(method):
        values = [record["runs"].get(_key(method, kind, lr, s)) for s in record["seeds"]]
        if values and all(v is not None for v in values):
            out[kind, lr] = float(np.mean(values))
    return out


def best(found: dict[tuple[str, float], float]) -> tuple[str, float] | None:
    """The highest score; within NEAR_TIE of it, the smallest rate."""
    if not found:
        return None
    top = max(found.values())
    return min((c for c, v in found.items() if v >= top - NEAR_TIE), key=lambda c: c[1])


def _name(candidate: tuple[str, float]) -> str:
    kind, lr = candidate
    return f"{'Adam' if kind == 'adam' else 'SGD'} {lr:g}"


def sweep_markdown(record: dict[str, Any]) -> str:
    """The sweep as a Markdown table: validation accuracy (%) per method and candidate."""
    columns = list(dict.fromkeys(c for m in record["methods"] for c in candidates(m)))
    columns.sort(key=lambda c: (c[0] != "sgd", c[1]))
    lines = [
        f"# Learning-rate sweep: {record['task']}",
        "",
        f"C runtime, {record['epochs']} epochs, batch {record['batch_size']}, "
        f"{record['samples']['train']} training and {record['samples']['validation']} "
        "validation samples (a stratified split of the task's training samples; never its "
        f"test split), mean over seeds {', '.join(map(str, record['seeds']))}. **Bold**: the "
        f"best (within {100 * NEAR_TIE:g} point of the best, the smaller rate); *recipe*: "
        "the recipe's own choice.",
        "",
        "| method | " + " | ".join(_name(c) for c in columns) + " | best | recipe |",
        "|" + " --- |" * (len(columns) + 3),
    ]
    for method, info in record["methods"].items():
        found = scores(record, method)
        winner = best(found)
        recipe = (str(info["recipe"][0]), float(info["recipe"][1]))
        cells = []
        for c in columns:
            value = found.get(c)
            text = "" if value is None else f"{100 * value:.1f}"
            if text and c == winner:
                text = f"**{text}**"
            elif text and c == recipe:
                text = f"*{text}*"
            cells.append(text)
        lines.append(
            f"| {info['label']} | "
            + " | ".join(cells)
            + f" | {_name(winner) if winner else 'n/a'} | {_name(recipe)} |"
        )
    return "\n".join(lines) + "\n"


def tuning_text(out_dir: Path, methods: list[str]) -> str | None:
    """The report's account of how the rates were chosen: the sweep in `out_dir`, when
    there is one (its numbers), else None."""
    path = out_dir / SWEEP_JSON
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    parts = []
    for method in methods:
        if method not in record.get("methods", {}):
            continue
        found = scores(record, method)
        if found:
            parts.append(
                f"{record['methods'][method]['label']} "
                + ", ".join(f"{_name(c)}: {100 * v:.0f} %" for c, v in found.items())
            )
    if not parts:
        return None
    mean_over = ", ".join(map(str, record["seeds"]))
    return (
        f"validation accuracy by optimizer and rate from `micropeft bench --sweep` on "
        f"{record['task']} ({SWEEP_TABLE} beside this report: C runtime, "
        f"{record['samples']['train']} training "
        f"and {record['samples']['validation']} validation samples carved from the training "
        f"split, never the test split; {record['epochs']} epochs, seeds {mean_over}): "
        + "; ".join(parts)
    )
