"""The benchmark report: Markdown and a self-contained HTML page from results.json.

Everything the report says about the numbers is computed here from the
results file (`micropeft.bench` writes it): the tables, the plots and the
conclusions. Only the account of the methods and their sources is fixed text.
The document is built once as a list of blocks and rendered twice: Markdown
(plots as PNG files beside it) and HTML (plots embedded as base64 PNG, no
external resource).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from micropeft.errors import UserError
from micropeft.files import write_atomic

RESULTS_SCHEMA = 1

# Fixed text: what each family of methods trains, and where it comes from.
METHOD_ACCOUNTS: list[tuple[str, str]] = [
    (
        "Full fine-tuning",
        "every weight and bias of the network is trained: the accuracy reference, and the "
        "memory worst case (every activation kept for backward, a gradient and optimizer "
        "state for every parameter).",
    ),
    (
        "Last layer (classifier head)",
        "only the new classifier is trained on top of frozen features: the cheapest method, "
        "and the floor that every other method should beat. Every other method below also "
        "trains the head, since the target task has its own, freshly initialised, label set.",
    ),
    (
        "BitFit",
        "trains the biases only (Ben Zaken, Ravfogel and Goldberg, *BitFit: Simple "
        "Parameter-efficient Fine-tuning for Transformer-based Masked Language-models*, ACL "
        "2022). TinyTL (Cai, Gan, Zhu and Han, *TinyTL: Reduce Memory, Not Parameters for "
        "Efficient On-Device Learning*, NeurIPS 2020) showed why this suits small devices: "
        "a bias gradient needs no stored input activation, so training memory is dominated by "
        "activations, not parameters; TinyTL adds lite residual modules to win back accuracy.",
    ),
    (
        "Scale and shift",
        "a per-channel gamma and beta after each layer's linear part; it stands in for "
        "BatchNorm tuning, which is not possible as such because TFLite folds BatchNorm "
        "into the convolution weights.",
    ),
    (
        "LoRA",
        "low-rank adapters A (r x in) and B (out x r) added to 1x1 convolutions and fully "
        "connected layers, y += (alpha / r) B A x, with B starting at zero (Hu et al., *LoRA: "
        "Low-Rank Adaptation of Large Language Models*, ICLR 2022, arXiv 2021). Depthwise "
        "convolutions are left out: an adapter would be larger than the layer.",
    ),
    (
        "Sparse update",
        "weights and biases of a chosen subset of layers (the last blocks) are trained, "
        "following the sparse back-propagation of MCUNetV3 / tiny-training (Lin et al., "
        "*On-Device Training Under 256KB Memory*, NeurIPS 2022), which selects the layers "
        "worth updating under a memory budget.",
    ),
    (
        "Combinations",
        "methods compose because freezing is data: e.g. LoRA + BitFit + head trains the "
        "adapters, every bias and the classifier in one pass.",
    ),
]


# ---------------------------------------------------------------------------
# Reading and summarising results


def load_results(path: Path) -> dict[str, Any]:
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
        if not self.values:
            return "n/a"
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


@dataclass
class MethodSummary:
    name: str
    label: str
    info: dict[str, Any]
    acc_c: Stat
    acc_tf: Stat
    step_ms_c: Stat
    step_ms_tf: Stat
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def ram_total(self) -> float:
        """Total device RAM (TFLM + training arenas + buffers) when measured, else the
        training arena."""
        ram = self.info.get("ram", {})
        return float(ram.get("total_device", ram.get("total", math.nan)))

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


def _runs(results: dict[str, Any], method: str, impl: str) -> list[dict[str, Any]]:
    return sorted(
        (r for r in results["runs"] if r.get("method") == method and r.get("impl") == impl),
        key=lambda r: r.get("seed", 0),
    )


def _mean_curve(runs: Sequence[dict[str, Any]], key: str) -> list[float]:
    curves = [[e[key] for e in r.get("epochs", []) if e.get(key) is not None] for r in runs]
    curves = [c for c in curves if c]
    if not curves:
        return []
    n = min(len(c) for c in curves)
    return [float(np.mean([c[i] for c in curves])) for i in range(n)]


def summarize(results: dict[str, Any]) -> list[MethodSummary]:
    """One summary per method that has at least one run, in the config's order."""
    order = list(results["config"].get("methods", [])) or list(results["methods"])
    summaries = []
    for name in order:
        info = results["methods"].get(name)
        if info is None:
            continue
        c_runs, tf_runs = _runs(results, name, "c"), _runs(results, name, "tf")
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


def baseline(results: dict[str, Any], name: str) -> Stat:
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


# ---------------------------------------------------------------------------
# Formatting helpers


def optimizer_text(opt: dict[str, Any]) -> str:
    """ "Adam, lr 0.003" / "SGD (momentum 0.9), lr 0.01" from an OptimizerConfig's fields."""
    if opt.get("kind") == "adam":
        return f"Adam, lr {opt['lr']:g}"
    return f"SGD (momentum {opt.get('momentum', 0.0):g}), lr {opt['lr']:g}"


def kb(n: float | None) -> str:
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


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------------------
# The document model: blocks rendered to Markdown and HTML


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    name: str
    png: bytes
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


def render_markdown(blocks: Sequence[Block], image_dir: Path, image_prefix: str) -> str:
    out = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            out.append(block.text + "\n")
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items) + "\n")
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(block.header) + " |"]
            lines.append("|" + "|".join(" --- " for _ in block.header) + "|")
            lines += ["| " + " | ".join(row) + " |" for row in block.rows]
            if block.caption:
                lines.append(f"\n*{block.caption}*")
            out.append("\n".join(lines) + "\n")
        elif isinstance(block, Figure):
            write_atomic(image_dir / f"{block.name}.png", block.png)
            out.append(
                f"![{block.caption}]({image_prefix}/{block.name}.png)\n\n*{block.caption}*\n"
            )
    return "\n".join(out)


def _inline_html(text: str) -> str:
    """Escape, then turn the few Markdown inline marks used here (*x*, **x**, `x`) into tags."""
    import re

    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    escaped = re.sub(r"\*(.+?)\*", r"<em>\1</em>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1.5em 0; } figcaption { font-style: italic; color: #555; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def render_html(blocks: Sequence[Block], title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{_inline_html(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_inline_html(i)}</li>" for i in block.items)
            out.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            caption = f"<caption>{_inline_html(block.caption)}</caption>" if block.caption else ""
            out.append(
                f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
            )
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            out.append(
                f'<figure><img alt="{html.escape(block.caption)}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline_html(block.caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


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


_RAM_PARTS = ("cached_activations", "gradients", "parameters", "optimizer_state", "scratch")


def plot_costs(summaries: Sequence[MethodSummary]) -> bytes:
    def draw(fig: Any) -> None:
        labels = [s.label for s in summaries]
        x = np.arange(len(summaries))
        ax = fig.add_subplot(1, 2, 1)
        bottom = np.zeros(len(summaries))
        for k, part in enumerate(_RAM_PARTS):
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


# ---------------------------------------------------------------------------
# Conclusions, computed from the numbers


# Relative first-step parameter difference under which C and TF count as computing the same
# step: float32 rounding of the same sums stays orders of magnitude below it.
FIRST_STEP_AGREEMENT = 1e-4


def _label(results: dict[str, Any], method: str) -> str:
    return str(results.get("methods", {}).get(method, {}).get("label", method))


def conclusions(results: dict[str, Any], summaries: Sequence[MethodSummary]) -> list[str]:
    out: list[str] = []
    measured = [s for s in summaries if s.acc_c.values]
    if not measured:
        return ["No method has finished a run yet."]
    points = [(s.ram_total, s.acc_c.mean) for s in measured]
    front = pareto_front(points)
    out.append(
        "On the Pareto front of accuracy against training RAM: "
        + _join(
            [
                f"{measured[i].label} ({100 * measured[i].acc_c.mean:.1f} % with "
                f"{kb(measured[i].ram_total)} KB)"
                for i in front
            ]
        )
        + "; every other method is matched or beaten in accuracy by one that needs less RAM."
    )
    best = max(measured, key=lambda s: s.acc_c.mean)
    out.append(f"Highest accuracy: {best.label}, {best.acc_c.pct()} % over {best.acc_c.n} seed(s).")
    zero = baseline(results, "zero_shot")
    scratch = baseline(results, "scratch")
    floor = zero.mean if zero.values else 0.0
    per_kb = [
        (s, (s.acc_c.mean - floor) * 100 / (s.ram_total / 1024))
        for s in measured
        if math.isfinite(s.ram_total) and s.ram_total > 0
    ]
    if per_kb:
        s, value = max(per_kb, key=lambda t: t[1])
        out.append(
            f"Best accuracy gained per KB of training RAM (over the zero-shot "
            f"{100 * floor:.1f} %): {s.label}, {value:.2f} points per KB."
        )
    if scratch.values:
        beat = [s.label for s in measured if s.acc_c.mean > scratch.mean]
        out.append(
            f"Training the same network from scratch on the target with the same epochs "
            f"reaches {scratch.pct()} %; "
            + (
                f"{len(beat)} of {len(measured)} fine-tuning methods beat it"
                + (f" ({_join(beat)})" if beat else "")
                if beat
                else "no fine-tuning method beats it"
            )
            + "."
        )
    both = [s for s in measured if s.acc_tf.values]
    if both:
        gaps = [(s, s.gap) for s in both]
        worst = max(gaps, key=lambda t: abs(t[1]))
        mean_abs = float(np.mean([abs(g) for _, g in gaps]))
        out.append(
            f"The C runtime and the TensorFlow reference agree: the mean absolute accuracy "
            f"difference over methods is {100 * mean_abs:.1f} points, the largest "
            f"{100 * abs(worst[1]):.1f} points ({worst[0].label}, C "
            f"{'above' if worst[1] >= 0 else 'below'} TF)."
        )
    first_step = [
        (r["first_step_param_diff"], r)
        for r in results["runs"]
        if r.get("impl") == "c" and r.get("first_step_param_diff") is not None
    ]
    floors = {
        r["param_diff_floor"]
        for r in results["runs"]
        if r.get("impl") == "c" and r.get("param_diff_floor") is not None
    }
    if first_step:
        scale = "each array's largest value"
        if floors:
            scale += f", or {max(floors):g} if that is smaller"
        worst, worst_run = max(first_step, key=lambda t: t[0])
        apart = sorted((d, r) for d, r in first_step if d > FIRST_STEP_AGREEMENT)
        if not apart:
            out.append(
                f"After the first optimizer step, the C and TF parameters differ by at most "
                f"{worst:.1e} (relative to {scale}) over every method and seed: both compute "
                f"the same gradients and updates, so the accuracy differences come from the "
                f"trajectories drifting apart over many steps (float rounding), not from a "
                f"different computation."
            )
        else:
            names = ", ".join(
                f"{_label(results, r['method'])} seed {r['seed']} ({d:.1e})" for d, r in apart
            )
            out.append(
                f"After the first optimizer step, the C and TF parameters agree within "
                f"{FIRST_STEP_AGREEMENT:.0e} (relative to {scale}) in "
                f"{len(first_step) - len(apart)} of {len(first_step)} runs; they differ by "
                f"more in {names}, the largest {worst:.1e} "
                f"({_label(results, worst_run['method'])} seed {worst_run['seed']})."
            )
    probed = [
        r for r in results["runs"] if r.get("impl") == "c" and r.get("at_c_params") is not None
    ]
    if probed:
        checks = [c for r in probed for c in r["at_c_params"]]
        agreement = min(c["prediction_agreement"] for c in checks)
        grads = [c["grad_diff"] for c in checks if c.get("grad_diff") is not None]
        grad_text = f", and its gradient differs by at most {max(grads):.1e}" if grads else ""
        lockstep = [r["lockstep_steps"] / r["steps"] for r in probed if r.get("steps")]
        out.append(
            f"Set to the C run's own parameters after every epoch, the TF reference predicts "
            f"the C runtime's class for at least {100 * agreement:.1f} % of the test samples"
            f"{grad_text} (relative); the C and TF runs themselves stay within "
            f"{probed[0]['lockstep_bound']:g} of each other for a median "
            f"{100 * float(np.median(lockstep)):.0f} % of their steps: training amplifies "
            f"float rounding, so one seed's C and TF accuracies are two samples of the same "
            f"spread, not one number computed twice."
        )
    ratios = [(s, s.speed_ratio) for s in measured if math.isfinite(s.speed_ratio)]
    if ratios:
        geo = math.exp(float(np.mean([math.log(r) for _, r in ratios])))
        lo = min(ratios, key=lambda t: t[1])
        hi = max(ratios, key=lambda t: t[1])
        who = (
            f"the C runtime is {geo:.1f}x faster than TensorFlow"
            if geo >= 1
            else f"TensorFlow is {1 / geo:.1f}x faster than the C runtime"
        )
        out.append(
            f"On the host, per training step, {who} (geometric mean of the TF/C time ratio; "
            f"from {lo[1]:.2f} for {lo[0].label} to {hi[1]:.2f} for {hi[0].label})."
        )
    fits = [s for s in measured if s.m4 and s.m4.get("fits")]
    no_fit = [s.label for s in measured if s.m4 and not s.m4.get("fits")]
    if fits:
        cheapest = min(fits, key=lambda s: s.m4["step"])  # type: ignore[index]
        dearest = max(fits, key=lambda s: s.m4["step"])  # type: ignore[index]
        out.append(
            f"On the Cortex-M4F (QEMU instruction count), the cheapest training step is "
            f"{cheapest.label} ({si(cheapest.m4['step'])} instructions), the dearest "
            f"{dearest.label} ({si(dearest.m4['step'])})."
        )
    if no_fit:
        out.append(
            f"Does not fit the nRF52840's 256 KB RAM as a bare-metal firmware: {_join(no_fit)}."
        )
    elif fits:
        out.append("Every measured method fits the nRF52840's 256 KB RAM as a bare-metal firmware.")
    return out


# ---------------------------------------------------------------------------
# The document


def _setup_blocks(results: dict[str, Any]) -> list[Block]:
    config = results["config"]
    setup = results.get("setup", {})
    items = []
    task = setup.get("task", {})
    if task:
        items.append(
            f"Task **{config.get('task', '?')}**: {task.get('description', '')}".rstrip(": ")
        )
    for key, text in (
        ("source", "Source (pretraining)"),
        ("target", "Target (fine-tuning)"),
        ("model", "Model"),
        ("training", "Training"),
        ("tuning", "Learning rates"),
        ("host", "Host"),
        ("cm4", "Cortex-M4F"),
        ("choices", "Budget choices"),
    ):
        value = setup.get(key)
        if isinstance(value, str) and value:
            items.append(f"{text}: {value}")
    seeds = config.get("seeds", [])
    items.append(
        f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}); tables give the mean ± sample "
        "standard deviation over seeds."
    )
    if config.get("quick"):
        items.append("**Quick (smoke) configuration**: numbers are not meaningful.")
    timing = setup.get("timing", {})
    if timing:
        items.append(
            "Wall time: "
            + ", ".join(
                f"{k.removesuffix('_s').replace('_', ' ')} {v:.0f} s" for k, v in timing.items()
            )
        )
    return [Heading(2, "Setup"), Bullets(items)]


def merged_table(results: dict[str, Any], summaries: Sequence[MethodSummary]) -> Table | None:
    """The trained state folded into a standard int8 .tflite (micropeft merge), per method."""
    rows = []
    for s in summaries:
        merged = [r["merged"] for r in _runs(results, s.name, "c") if r.get("merged")]
        if not merged:
            continue

        def stat(key: str, runs: list[dict[str, Any]] = merged) -> str:
            values = [float(m[key]) for m in runs if key in m]
            return Stat(values).pct() if values else "-"

        rows.append(
            [
                s.label,
                stat("agreement_tflite"),
                stat("agreement_tflm"),
                stat("accuracy_tflm"),
                stat("agreement_tflm_16x8"),
                stat("accuracy_tflm_16x8"),
                s.acc_c.pct(),
            ]
        )
    if not rows:
        return None
    return Table(
        [
            "method",
            "int8: agreement TFLite (%)",
            "int8: agreement TFLM (%)",
            "int8: accuracy TFLM (%)",
            "16x8: agreement TFLM (%)",
            "16x8: accuracy TFLM (%)",
            "accuracy runtime (%)",
        ],
        rows,
        "The trained state merged into the model (micropeft merge: LoRA and scale/shift "
        "folded into the weights, requantized per channel with error-compensating rounding, "
        "activations recalibrated on the training samples) and run in TFLite's and TFLM's "
        "interpreters without micropeft: share of test samples predicted as the C runtime "
        "predicts them, and test accuracy. int8: the standard full-int8 model; 16x8: the "
        "trained part with int16 activations (`micropeft merge --activations int16`), int8 "
        "weights.",
    )


def build_document(results: dict[str, Any]) -> list[Block]:
    summaries = summarize(results)
    blocks: list[Block] = [Heading(1, "micropeft benchmark: PEFT methods on a microcontroller")]
    config = results["config"]
    blocks.append(
        Paragraph(
            f"Task {config.get('task', '?')}: every method fine-tunes the same int8 model in the "
            "C runtime (the code the device runs, built for the host) and in a TensorFlow "
            "reference, on the same data from the same initial parameters; costs come from the "
            "planner, the runtime's own queries and a Cortex-M4F build run under QEMU."
        )
    )
    blocks.append(Heading(2, "Conclusions"))
    blocks.append(Bullets(conclusions(results, summaries)))

    blocks.append(Heading(2, "Accuracy and memory"))
    rows = []
    for s in summaries:
        ram = s.info.get("ram", {})
        flash = s.info.get("flash", {})
        rows.append(
            [
                s.label,
                f"{s.info.get('trainable_parameters', 0):,}",
                s.acc_c.pct(),
                s.acc_tf.pct(),
                f"{100 * s.gap:+.1f}" if s.acc_tf.values and s.acc_c.values else "n/a",
                kb(ram.get("total")),
                kb(ram.get("high_water")),
                kb(flash.get("model", 0) + flash.get("plan", 0)) if flash else "n/a",
            ]
        )
    for name, label in (
        ("zero_shot", "Zero-shot (new head, no training)"),
        ("scratch", "From scratch (Keras, same epochs)"),
    ):
        stat = baseline(results, name)
        if stat.values:
            rows.append(
                [
                    label,
                    "",
                    stat.pct() if name == "zero_shot" else "",
                    stat.pct() if name == "scratch" else "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
    blocks.append(
        Table(
            [
                "method",
                "trainable params",
                "accuracy C (%)",
                "accuracy TF (%)",
                "C − TF (points)",
                "train RAM plan (KB)",
                "RAM high-water (KB)",
                "flash model+plan (KB)",
            ],
            rows,
            "Target test accuracy after fine-tuning (mean ± std over seeds). RAM: the training "
            "arena as the planner lays it out and the highest byte the runtime touched. Zero-shot "
            "accuracy is the int8 model with its freshly initialised head before any training.",
        )
    )

    merged = merged_table(results, summaries)
    if merged is not None:
        blocks.append(merged)

    blocks.append(Heading(2, "Compute"))
    rows = []
    for s in summaries:
        macs = s.info.get("macs", {})
        m4 = s.m4
        if m4 is None:
            m4_cells = ["n/a"] * 7
        elif not m4.get("fits"):
            m4_cells = ["does not fit"] + [""] * 6
        else:
            total_macs = macs.get("forward", 0) + macs.get("backward", 0)
            per_mac = (m4["forward"] + m4["backward"]) / total_macs if total_macs else math.nan
            m4_cells = [
                si(m4["forward"]),
                si(m4["backward"]),
                si(m4["optimizer"]),
                si(m4["step"]),
                f"{per_mac:.1f}" if math.isfinite(per_mac) else "n/a",
                f"{m4['est_step_ms']:.0f}" if m4.get("est_step_ms") else "n/a",
                kb(m4.get("code", {}).get("text")),
            ]
        rows.append(
            [
                s.label,
                si(macs.get("forward")),
                si(macs.get("backward")),
                *m4_cells,
                ms(s.step_ms_c),
                ms(s.step_ms_tf),
                f"{s.speed_ratio:.1f}" if math.isfinite(s.speed_ratio) else "n/a",
            ]
        )
    steps = {s.m4.get("samples_per_step") for s in summaries if s.m4 and s.m4.get("fits")}
    batch = config.get("batch_size", "?")
    blocks.append(
        Table(
            [
                "method",
                "MACs fwd/sample",
                "MACs bwd/sample",
                "M4 fwd/sample",
                "M4 bwd/sample",
                "M4 optimizer",
                "M4 step",
                "M4 instr/MAC",
                "M4 est. ms/step",
                "M4 code (KB)",
                "host C ms/step",
                "host TF ms/step",
                "TF/C",
            ],
            rows,
            f"MACs of the trainable part per sample. M4: Cortex-M4F instructions counted under "
            f"QEMU for a step of {_join(sorted(map(str, steps))) or '?'} sample(s) (forward and "
            f"backward per sample, optimizer per step), instructions per MAC over forward + "
            f"backward, the step's estimated time at 64 MHz (cycles weighted from the Cortex-M4 "
            f"TRM's timings, an estimate: no flash wait states), and the firmware's code size "
            f"(.text without the embedded model). Host: "
            f"wall time per training step of {batch} samples, C runtime and TensorFlow measured "
            f"side by side in the same run.",
        )
    )

    blocks.append(Heading(2, "Plots"))
    measured = [s for s in summaries if s.acc_c.values]
    front = pareto_front([(s.ram_total, s.acc_c.mean) for s in measured])
    if measured:
        blocks.append(
            Figure(
                "accuracy_vs_ram",
                plot_accuracy_vs_ram(measured, front),
                "Accuracy against training RAM; circles and the line: the Pareto front; error "
                "bars: std over seeds.",
            )
        )
    if summaries:
        blocks.append(
            Figure(
                "costs",
                plot_costs(summaries),
                "Cost of each method: the training arena by part (planner) and Cortex-M4F "
                "instructions per training step by phase.",
            )
        )
        blocks.append(
            Figure(
                "learning_curves",
                plot_learning_curves(summaries),
                "Learning curves, mean over seeds: training loss and test accuracy per epoch.",
            )
        )
    blocks += _setup_blocks(results)
    blocks.append(Heading(2, "Methods"))
    blocks.append(Bullets([f"**{name}**: {text}" for name, text in METHOD_ACCOUNTS]))
    described = [
        f"**{s.label}**: {s.info['description']}"
        + (f"; {optimizer_text(s.info['optimizer'])}" if s.info.get("optimizer") else "")
        for s in summaries
        if s.info.get("description")
    ]
    if described:
        blocks.append(Paragraph("As configured in this run:"))
        blocks.append(Bullets(described))
    return blocks


def write_report(results_path: Path, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write report.md (+ report_files/*.png) and report.html into `out_dir`."""
    results = load_results(results_path)
    out_dir = out_dir or results_path.parent
    blocks = build_document(results)
    md = render_markdown(blocks, out_dir / "report_files", "report_files")
    page = render_html(blocks, "micropeft benchmark report")
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_atomic(md_path, md.encode())
    write_atomic(html_path, page.encode())
    return md_path, html_path
