"""The report's plots (PNG bytes, drawn with matplotlib without a display)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from micropeft.eval.results import RAM_PARTS
from micropeft.eval.summary import MethodSummary

# ---------------------------------------------------------------------------
# Plots (matplotlib, Agg backend)


def _figure_png(draw: Callable[[Any], None], size: tuple[float, float]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=size, dpi=100)
    try:
        draw(fig)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def plot_accuracy_vs_ram(summaries: Sequence[MethodSummary], front: Sequence[int]) -> bytes:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        for i, s in enumerate(summaries):
            if not math.isfinite(s.ram_total) or not s.acc_c.values:
                continue
            marker = "o" if i in front else "s"
            ax.errorbar(
                s.ram_total / 1024,
                100 * s.acc_c.mean,
                yerr=100 * s.acc_c.std,
                fmt=marker,
                capsize=3,
                color="C0" if i in front else "C7",
            )
            ax.annotate(
                s.label,
                (s.ram_total / 1024, 100 * s.acc_c.mean),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        if front:
            xs = [summaries[i].ram_total / 1024 for i in front]
            ys = [100 * summaries[i].acc_c.mean for i in front]
            ax.step(xs, ys, where="post", color="C0", alpha=0.6, label="Pareto front")
            ax.legend(loc="lower right")
        ax.set_xscale("log")
        ax.set_xlabel("training RAM: planner's arena (KB, log scale)")
        ax.set_ylabel("target test accuracy, C runtime (%)")
        ax.grid(True, alpha=0.3)

    return _figure_png(draw, (8, 5))


def plot_costs(summaries: Sequence[MethodSummary]) -> bytes:
    def draw(fig: Any) -> None:
        labels = [s.label for s in summaries]
        x = np.arange(len(summaries))
        ax = fig.add_subplot(1, 2, 1)
        bottom = np.zeros(len(summaries))
        for k, part in enumerate(RAM_PARTS):
            values = np.array([s.info.get("ram", {}).get(part, 0) / 1024 for s in summaries])
            ax.bar(x, values, bottom=bottom, label=part.replace("_", " "), color=f"C{k}")
            bottom += values
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("training arena (KB)")
        ax.set_title("RAM by part (planner)")
        ax.legend(fontsize=8)
        ax = fig.add_subplot(1, 2, 2)
        bottom = np.zeros(len(summaries))
        for k, (part, title) in enumerate(
            (("forward", "forward"), ("backward", "backward"), ("optimizer", "optimizer"))
        ):
            values = []
            for s in summaries:
                m4 = s.m4
                if m4 is None or not m4.get("fits"):
                    values.append(0.0)
                    continue
                n = m4.get("samples_per_step", 1)
                per_step = m4[part] * (n if part != "optimizer" else 1)
                values.append(per_step / 1e6)
            ax.bar(x, values, bottom=bottom, label=title, color=f"C{k + 5}")
            bottom += np.array(values)
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
        ax.set_ylabel("Cortex-M4F instructions per step (millions)")
        ax.set_title("Compute per training step (QEMU count)")
        ax.legend(fontsize=8)

    return _figure_png(draw, (12, 5))


def plot_learning_curves(summaries: Sequence[MethodSummary]) -> bytes:
    def draw(fig: Any) -> None:
        for col, key in enumerate(("loss", "accuracy")):
            ax = fig.add_subplot(1, 2, col + 1)
            for k, s in enumerate(summaries):
                for impl, style in (("c", "-"), ("tf", "--")):
                    curve = s.curves.get(impl, {}).get(key, [])
                    if not curve:
                        continue
                    scale = 100 if key == "accuracy" else 1
                    ax.plot(
                        range(1, len(curve) + 1),
                        [scale * v for v in curve],
                        style,
                        color=f"C{k % 10}",
                        label=s.label if impl == "c" else None,
                    )
            ax.set_xlabel("epoch")
            ax.set_ylabel("training loss" if key == "loss" else "test accuracy (%)")
            ax.grid(True, alpha=0.3)
            if col == 1:
                ax.legend(fontsize=7, loc="lower right")
            ax.set_title(f"{key}: C runtime solid, TensorFlow dashed")

    return _figure_png(draw, (12, 5))
