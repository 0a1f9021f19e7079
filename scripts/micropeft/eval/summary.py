"""The report's statistics: per-method summaries of the runs (mean and spread over
seeds), the baselines, the Pareto front, and how figures are written in text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from micropeft.eval.results import MethodRecord, ResultsFile, RunRecord


@dataclass
class Stat:
    """Mean and sample standard deviation over seeds (std 0 for one value)."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def pct(self) -> str:
        """Percent, with the spread only where there is one (two seeds or more)."""
        if not self.values:
            return "n/a"
        if self.n == 1:
            return f"{100 * self.mean:.1f}"
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


@dataclass
class MethodSummary:
    name: str
    label: str
    info: MethodRecord
    acc_c: Stat
    acc_tf: Stat
    step_ms_c: Stat
    step_ms_tf: Stat
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def device_ram(self) -> float:
        """Total device RAM in bytes (TFLM arena + training arena + state stream buffer +
        cache, prepare-model's figure); NaN where the results file does not hold it."""
        return float(self.info.get("ram", {}).get("total_device", math.nan))

    @property
    def gap(self) -> float:
        """Mean over seeds of the C accuracy minus the TF accuracy (same seed)."""
        return self.acc_c.mean - self.acc_tf.mean

    @property
    def speed_ratio(self) -> float:
        """TensorFlow time per step over C time per step (> 1: C faster)."""
        if not self.step_ms_c.values or not self.step_ms_tf.values or self.step_ms_c.mean <= 0:
            return math.nan
        return self.step_ms_tf.mean / self.step_ms_c.mean

    @property
    def m4(self) -> dict[str, Any] | None:
        m4 = self.info.get("m4")
        return m4 if isinstance(m4, dict) else None


def runs_of(results: ResultsFile, method: str, impl: str) -> list[RunRecord]:
    return sorted(
        (r for r in results["runs"] if r.get("method") == method and r.get("impl") == impl),
        key=lambda r: r.get("seed", 0),
    )


def _mean_curve(runs: Sequence[RunRecord], key: str) -> list[float]:
    curves = [[e[key] for e in r.get("epochs", []) if e.get(key) is not None] for r in runs]
    curves = [c for c in curves if c]
    if not curves:
        return []
    n = min(len(c) for c in curves)
    return [float(np.mean([c[i] for c in curves])) for i in range(n)]


def summarize(results: ResultsFile) -> list[MethodSummary]:
    """One summary per method that has at least one run, in the config's order."""
    order = list(results["config"].get("methods", [])) or list(results["methods"])
    summaries = []
    for name in order:
        info = results["methods"].get(name)
        if info is None:
            continue
        c_runs, tf_runs = runs_of(results, name, "c"), runs_of(results, name, "tf")
        if not c_runs and not tf_runs:
            continue
        summary = MethodSummary(
            name=name,
            label=str(info.get("label", name)),
            info=info,
            acc_c=Stat([r["accuracy"] for r in c_runs]),
            acc_tf=Stat([r["accuracy"] for r in tf_runs]),
            step_ms_c=Stat([r["step_ms"] for r in c_runs if r.get("step_ms")]),
            step_ms_tf=Stat([r["step_ms"] for r in tf_runs if r.get("step_ms")]),
        )
        for impl, runs in (("c", c_runs), ("tf", tf_runs)):
            summary.curves[impl] = {
                "loss": _mean_curve(runs, "loss"),
                "accuracy": _mean_curve(runs, "accuracy"),
            }
        summaries.append(summary)
    return summaries


def baseline(results: ResultsFile, name: str) -> Stat:
    return Stat([r["accuracy"] for r in results["runs"] if r.get("method") == name])


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point dominates
    (lower or equal cost and higher or equal accuracy, one of them strictly)."""
    front = []
    for i, (cost_i, acc_i) in enumerate(points):
        if not (math.isfinite(cost_i) and math.isfinite(acc_i)):
            continue
        dominated = any(
            j != i
            and math.isfinite(cost_j)
            and math.isfinite(acc_j)
            and cost_j <= cost_i
            and acc_j >= acc_i
            and (cost_j < cost_i or acc_j > acc_i)
            for j, (cost_j, acc_j) in enumerate(points)
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def kib(n: float | None) -> str:
    """Bytes as KiB (1,024 bytes, as prepare-model prints them), one decimal."""
    if n is None or not math.isfinite(float(n)):
        return "n/a"
    return f"{float(n) / 1024:.1f}"


def si(n: float | None) -> str:
    """1234567 -> '1.23 M'."""
    if n is None or not math.isfinite(float(n)):
        return "n/a"
    n = float(n)
    for factor, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g}{suffix}"
    return f"{n:.3g}"


def ms(stat: Stat) -> str:
    return f"{stat.mean:.2f}" if stat.values else "n/a"


def join_items(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
