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
    """`draw(fig)` lays out its own axes (tight_layout before it places anything whose
    position depends on the layout); the PNG is cropped to everything drawn, legends
    outside the axes included."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=size, dpi=100)
    try:
        draw(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)


# Where a label may go relative to its point, in points (nearest first): the first place
# that overlaps no other label, no marker and stays inside the axes is taken.
_LABEL_OFFSETS = [
    (dx * r, dy * r)
    for r in (6, 14, 24, 36, 50)
    for dx, dy in ((1, 0.5), (1, -1.5), (-1, 0.5), (-1, -1.5), (0, 1.5), (0, -2.5))
]


def place_labels(
    ax: Any, points: Sequence[tuple[float, float]], labels: Sequence[str], fontsize: float = 8
) -> list[Any]:
    """Annotate each data point with its label where the label overlaps no other label
    and no point's marker (a simple greedy offset search; the axes layout must be final).
    Labels placed away from their point get a thin leader line."""
    from matplotlib.text import Text

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    marker = 6.0 * fig.dpi / 72  # half a marker's size and a margin, in pixels
    obstacles = [
        (x - marker, y - marker, x + marker, y + marker) for x, y in (to_px(p) for p in points)
    ]
    frame = ax.get_window_extent(renderer)
    placed: list[tuple[float, float, float, float]] = []
    annotations = []

    def clear(box: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = box
        inside = frame.x0 <= x0 and x1 <= frame.x1 and frame.y0 <= y0 and y1 <= frame.y1
        return inside and not any(
            x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in obstacles + placed
        )

    def annotate(i: int, offset: tuple[float, float], leader: bool = False) -> Any:
        return ax.annotate(
            labels[i],
            points[i],
            xytext=offset,
            textcoords="offset points",
            fontsize=fontsize,
            ha="left" if offset[0] > 0 else "right" if offset[0] < 0 else "center",
            va="center",
            arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6, "shrinkB": 4}
            if leader
            else None,
        )

    def text_box(text: Any) -> tuple[float, float, float, float]:
        text.update_positions(renderer)
        extent = Text.get_window_extent(text, renderer)  # the text alone, not its leader
        return (extent.x0, extent.y0, extent.x1, extent.y1)

    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    for i in order:
        chosen = _LABEL_OFFSETS[0]  # nowhere free: the nearest place, the label still shows
        for offset in _LABEL_OFFSETS:
            probe = annotate(i, offset)
            box = text_box(probe)
            probe.remove()
            if clear(box):
                chosen = offset
                break
        text = annotate(i, chosen, leader=abs(chosen[0]) + abs(chosen[1]) > 20)
        placed.append(text_box(text))
        annotations.append(text)
    return annotations


def _kib_step(high: float) -> int:
    """A tick step in KiB (a power of two from 8) giving at most 8 ticks up to `high`."""
    step = 8
    while high / step > 8:
        step *= 2
    return step


def draw_accuracy_vs_ram(
    fig: Any, summaries: Sequence[MethodSummary], front: Sequence[int], line_kib: float
) -> list[Any]:
    """Accuracy against total device RAM (linear KiB axis), the Pareto front marked, a
    labelled vertical line at `line_kib` (the nRF52840's RAM); returns the point labels."""
    from matplotlib.ticker import MultipleLocator

    ax = fig.add_subplot(1, 1, 1)
    shown = [i for i, s in enumerate(summaries) if math.isfinite(s.device_ram) and s.acc_c.values]
    points = [(summaries[i].device_ram / 1024, 100 * summaries[i].acc_c.mean) for i in shown]
    on_front = [i in front for i in shown]
    for (x, y), i, best in zip(points, shown, on_front, strict=True):
        ax.errorbar(
            x,
            y,
            yerr=100 * summaries[i].acc_c.std,
            fmt="o" if best else "s",
            capsize=3,
            color="C0" if best else "C7",
            markerfacecolor="C0" if best else "white",
        )
    if front:
        xs = [summaries[i].device_ram / 1024 for i in front]
        ys = [100 * summaries[i].acc_c.mean for i in front]
        ax.step(xs, ys, where="post", color="C0", alpha=0.6, label="Pareto front")
    ax.plot([], [], "o", color="C0", label="on the front")
    ax.plot([], [], "s", color="C7", markerfacecolor="white", label="dominated")
    ax.axvline(line_kib, color="C3", linestyle="--", lw=1, label=f"nRF52840 RAM ({line_kib:g} KiB)")
    high = max([x for x, _ in points] + [line_kib]) * 1.1
    ax.set_xlim(0, high)
    ax.xaxis.set_major_locator(MultipleLocator(_kib_step(high)))
    ys = [y for _, y in points]
    if ys:
        spread = max(max(ys) - min(ys), 5.0)
        ax.set_ylim(max(0.0, min(ys) - 0.25 * spread), min(100.0, max(ys) + 0.25 * spread))
    ax.text(
        line_kib,
        1.0,
        f" nRF52840: {line_kib:g} KiB",
        transform=ax.get_xaxis_transform(),
        color="C3",
        fontsize=8,
        ha="left",
        va="bottom",
    )
    ax.set_xlabel("total device RAM: TFLM + training arenas + state buffer + cache (KiB)")
    ax.set_ylabel("target test accuracy, C runtime (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.tight_layout()
    return place_labels(ax, points, [summaries[i].label for i in shown])


def plot_accuracy_vs_ram(
    summaries: Sequence[MethodSummary], front: Sequence[int], line_kib: float
) -> bytes:
    return _figure_png(lambda fig: draw_accuracy_vs_ram(fig, summaries, front, line_kib), (9, 5.5))


def _label_totals(ax: Any, x: np.ndarray, totals: Sequence[float], texts: Sequence[str]) -> None:
    """Each bar's total written above it, so that a bar too small to see still says its
    value (the scale stays linear: stacked parts on a log axis would mislead)."""
    top = max(totals, default=0.0) or 1.0
    for xi, total, text in zip(x, totals, texts, strict=True):
        ax.text(xi, total + 0.01 * top, text, ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_ylim(0, 1.25 * top)


def _legend_above(ax: Any, title: str) -> None:
    """A stacked-bar panel's legend above its axes, where no bar or total label is."""
    ax.legend(
        title=title,
        fontsize=8,
        title_fontsize=8,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=3,
    )


def plot_costs(summaries: Sequence[MethodSummary]) -> bytes:
    return _figure_png(lambda fig: draw_costs(fig, summaries), (12, 5.5))


def draw_costs(fig: Any, summaries: Sequence[MethodSummary]) -> None:
    """The training arena by part and the M4 instructions per step by phase, per method."""
    labels = [s.label for s in summaries]
    x = np.arange(len(summaries))
    ax = fig.add_subplot(1, 2, 1)
    bottom = np.zeros(len(summaries))
    for k, part in enumerate(RAM_PARTS):
        values = np.array([s.info.get("ram", {}).get(part, 0) / 1024 for s in summaries])
        ax.bar(x, values, bottom=bottom, label=part.replace("_", " "), color=f"C{k}")
        bottom += values
    _label_totals(ax, x, list(bottom), [f"{v:.1f}" for v in bottom])
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("training arena (KiB)")
    _legend_above(ax, "training arena by part (planner); total above each bar")
    ax = fig.add_subplot(1, 2, 2)
    bottom = np.zeros(len(summaries))
    for k, part in enumerate(("forward", "backward", "optimizer")):
        values = []
        for s in summaries:
            m4 = s.m4
            if m4 is None or not m4.get("fits"):
                values.append(0.0)
                continue
            n = m4.get("samples_per_step", 1)
            per_step = m4[part] * (n if part != "optimizer" else 1)
            values.append(per_step / 1e6)
        ax.bar(x, values, bottom=bottom, label=part, color=f"C{k + 5}")
        bottom += np.array(values)
    texts = [
        "n/a" if s.m4 is None else "does not fit" if not s.m4.get("fits") else f"{v:.3g}"
        for s, v in zip(summaries, bottom, strict=True)
    ]
    _label_totals(ax, x, list(bottom), texts)
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("Cortex-M4F instructions per step (millions)")
    _legend_above(ax, "compute per training step (QEMU count); total above each bar")
    fig.tight_layout()


def plot_learning_curves(summaries: Sequence[MethodSummary]) -> bytes:
    return _figure_png(lambda fig: draw_learning_curves(fig, summaries), (10, 8))


def draw_learning_curves(fig: Any, summaries: Sequence[MethodSummary]) -> None:
    """Loss above accuracy per epoch, one legend beside each panel (outside the axes)."""
    import matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    # Up to 20 methods in distinct colours (bench runs 16 recipes).
    colours = matplotlib.colormaps["tab10" if len(summaries) <= 10 else "tab20"]
    for row, key in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(2, 1, row + 1)
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
                    color=colours(k % colours.N),
                    marker="o" if len(curve) == 1 else None,
                    label=s.label if impl == "c" else None,
                )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss" if key == "loss" else "test accuracy (%)")
        ax.grid(True, alpha=0.3)
        handles, names = ax.get_legend_handles_labels()
        handles += [
            Line2D([], [], color="0.3", linestyle="-"),
            Line2D([], [], color="0.3", linestyle="--"),
        ]
        names += ["C runtime (solid)", "TensorFlow (dashed)"]
        ax.legend(handles, names, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        ax.set_title(
            "training loss per epoch" if key == "loss" else "test accuracy after each epoch"
        )
    fig.tight_layout()
