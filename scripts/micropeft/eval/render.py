"""The benchmark report: Markdown and a self-contained HTML page from results.json.

Everything the report says about the numbers is computed from the results file
(`micropeft bench` writes it; results.py reads it): the tables here, the statistics
in summary.py, the plots in plots.py and the conclusions in conclusions.py. Only the
account of the methods and their sources is fixed text.
The document is built once as a list of blocks and rendered twice: Markdown
(plots as PNG files beside it) and HTML (plots embedded as base64 PNG, no
external resource).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from micropeft.eval.budget import (
    BUDGETS_KIB,
    NRF52840_RAM_KIB,
    MethodRanks,
    best_within,
    clock_text,
    device_step_ms,
    ranks_per_budget,
)
from micropeft.eval.conclusions import conclusions
from micropeft.eval.plots import plot_accuracy_vs_ram, plot_costs, plot_learning_curves
from micropeft.eval.results import ResultsFile, load_settings, optimizer_text
from micropeft.eval.summary import (
    MethodSummary,
    Stat,
    baseline,
    join_items,
    kib,
    ms,
    pareto_front,
    runs_of,
    si,
    summarize,
)
from micropeft.files import write_atomic

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
# The document


def budget_table(summaries: Sequence[MethodSummary]) -> Table:
    """Per total device RAM budget, the most accurate method that fits and its costs."""
    rows = []
    # A results file from before the device total was recorded: no answer, not "none fits".
    known = any(math.isfinite(s.device_ram) for s in summaries)
    for budget in BUDGETS_KIB:
        best = best_within(summaries, budget)
        if best is None:
            text = "none fits" if known else "n/a (no total device RAM: run bench again)"
            rows.append([f"{budget}", text, "", "", "", ""])
            continue
        step = device_step_ms(best)
        rows.append(
            [
                f"{budget}",
                best.label,
                best.acc_c.pct(),
                kib(best.device_ram),
                f"{best.info.get('trainable_parameters', 0):,}",
                f"{step:.0f}" if step is not None else "n/a",
            ]
        )
    samples = {
        s.m4.get("samples_per_step") for s in summaries if s.m4 and device_step_ms(s) is not None
    }
    per_step = join_items(sorted(map(str, samples))) or "?"
    return Table(
        [
            "budget (KiB)",
            "most accurate method that fits",
            "accuracy C (%)",
            "total device RAM (KiB)",
            "trainable params",
            f"est. device ms/step at {clock_text()}",
        ],
        rows,
        "For each budget of total device RAM (TFLM arena for the frozen part + training "
        "arena + state stream buffer + cache, as prepare-model prints it; KiB = 1,024 bytes), "
        "the method with the highest mean C-runtime accuracy over seeds among those that fit "
        f'("none fits": not one). Device time: the Cortex-M4F step of {per_step} sample(s) '
        f"counted under QEMU, cycles estimated from the Cortex-M4 TRM's timings at "
        f"{clock_text()} (the nRF52840's clock; no flash wait states); n/a without that "
        "measurement. The nRF52840 has 256 KiB of RAM in all, Zephyr and the application "
        "included.",
    )


def _rank_cell(ranks: dict[str, MethodRanks], name: str, settings: int) -> str:
    entry = ranks.get(name)
    if entry is None:
        return "-"
    return f"{entry.mean_rank:.1f} ({entry.wins} won, fits {len(entry.ranks)}/{settings})"


def cross_setting_blocks(settings: Sequence[tuple[str, ResultsFile]]) -> list[Block]:
    """How the methods rank per budget across settings (task, model, resolution), one
    results file each: nothing for fewer than two settings."""
    if len(settings) < 2:
        return []
    summaries = [summarize(results) for _, results in settings]
    per_budget = {
        budget: {m.name: m for m in ranks_per_budget(summaries, budget)} for budget in BUDGETS_KIB
    }
    labels: dict[str, str] = {}
    for setting in summaries:
        for s in setting:
            labels.setdefault(s.name, s.label)
    # Methods in order of their mean rank under the largest budget, then the others.
    order = [m for b in reversed(BUDGETS_KIB) for m in per_budget[b]]
    names = list(dict.fromkeys(order + list(labels)))
    rows = [
        [labels[name]] + [_rank_cell(per_budget[b], name, len(settings)) for b in BUDGETS_KIB]
        for name in names
    ]
    winners = []
    for budget in BUDGETS_KIB:
        ranked = list(per_budget[budget].values())
        if not ranked:
            winners.append(f"{budget} KiB: none fits in any setting")
            continue
        top = ranked[0]
        winners.append(
            f"{budget} KiB: {top.label} (mean rank {top.mean_rank:.1f}, best in {top.wins} of "
            f"{len(settings)} settings)"
        )
    return [
        Heading(2, "Across settings"),
        Paragraph(
            f"{len(settings)} settings: " + join_items([label for label, _ in settings]) + "."
        ),
        Bullets(winners),
        Table(
            ["method", *[f"{b} KiB" for b in BUDGETS_KIB]],
            rows,
            "Per budget of total device RAM: the method's mean rank by C-runtime accuracy "
            "among the methods that fit (1 = most accurate; equal accuracies share a rank), "
            "over the settings where it fits; how many of those it won; in how many settings "
            "it fits. -: it fits in none.",
        ),
    ]


def _setup_blocks(results: ResultsFile) -> list[Block]:
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


def merged_table(results: ResultsFile, summaries: Sequence[MethodSummary]) -> Table | None:
    """The trained state folded into a standard int8 .tflite (micropeft merge), per method."""
    rows = []
    for s in summaries:
        merged = [r["merged"] for r in runs_of(results, s.name, "c") if r.get("merged")]
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
        "The trained state merged into the model (micropeft merge: LoRA and DoRA folded into "
        "the weights, requantized per channel with error-compensating rounding; IA3's and "
        "scale/shift's factors folded into the weight scales, the codes kept; activations "
        "recalibrated on the training samples, or with the quantized forward only the logits, "
        "and trained weights and LoRA's merged rows stored as the runtime rounded them) and "
        "run in TFLite's and "
        "TFLM's interpreters without micropeft: share of test samples predicted as the C "
        "runtime predicts them, and test accuracy. int8: the standard full-int8 model; 16x8: "
        "the trained part with int16 activations (`micropeft merge --activations int16`), "
        "int8 weights.",
    )


def build_document(results: ResultsFile) -> list[Block]:
    summaries = summarize(results)
    blocks: list[Block] = [Heading(1, "micropeft benchmark: PEFT methods on a microcontroller")]
    config = results["config"]
    if config.get("quick"):
        blocks.append(
            Paragraph(
                f"**Quick smoke run**: {len(config.get('seeds', []))} seed(s), "
                f"{config.get('epochs', '?')} epoch(s), {config.get('train_samples', '?')} "
                "training samples and a briefly pretrained model, to check that every part "
                "works; not for conclusions (`micropeft bench` without --quick gives those)."
            )
        )
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
    blocks.append(Heading(2, "Which method for a RAM budget"))
    blocks.append(budget_table(summaries))

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
                kib(s.device_ram),
                kib(ram.get("total")),
                kib(ram.get("high_water")),
                kib(flash.get("model", 0) + flash.get("plan", 0)) if flash else "n/a",
            ]
        )
    own_head = config.get("model_path") is not None
    for name, label in (
        (
            "zero_shot",
            "Zero-shot (the model as given, no training)"
            if own_head
            else "Zero-shot (new head, no training)",
        ),
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
                "total device RAM (KiB)",
                "train arena plan (KiB)",
                "train arena high-water (KiB)",
                "flash model+plan (KiB)",
            ],
            rows,
            "Target test accuracy after fine-tuning (mean ± std over seeds; no spread for one "
            "seed). RAM (KiB = 1,024 bytes): the device total (TFLM arena + training arena + "
            "state stream buffer + cache, as prepare-model prints it), the training arena as "
            "the planner lays it out, and the highest byte of it the runtime touched. Zero-shot "
            "accuracy is the int8 model "
            + (
                "as given, with its own head, before any training."
                if own_head
                else "with its freshly initialised head before any training."
            ),
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
                kib(m4.get("code", {}).get("text")),
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
                "M4 code (KiB)",
                "host C ms/step",
                "host TF ms/step",
                "TF/C",
            ],
            rows,
            f"MACs of the trainable part per sample. M4: Cortex-M4F instructions counted under "
            "QEMU for a step of "
            f"{join_items(sorted(map(str, steps))) or '?'} sample(s) (forward and "
            f"backward per sample, optimizer per step), instructions per MAC over forward + "
            f"backward, the step's estimated time at 64 MHz (cycles weighted from the Cortex-M4 "
            f"TRM's timings, an estimate: no flash wait states), and the firmware's code size "
            f"(.text without the embedded model). Host: "
            f"wall time per training step of {batch} samples, C runtime (one call of the "
            f"batch, each layer over all its samples at once) and TensorFlow measured side by "
            f"side in the same run.",
        )
    )

    blocks.append(Heading(2, "Plots"))
    measured = [s for s in summaries if s.acc_c.values]
    front = pareto_front([(s.device_ram, s.acc_c.mean) for s in measured])
    if measured:
        blocks.append(
            Figure(
                "accuracy_vs_ram",
                plot_accuracy_vs_ram(measured, front, NRF52840_RAM_KIB),
                "Accuracy against total device RAM (TFLM + training arenas + state stream "
                "buffer + cache); filled circles and the line: the Pareto front; error bars: std "
                "over seeds; dashed: the nRF52840's 256 KiB of RAM (Zephyr and the application "
                "need part of it).",
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
        + (f"; deploy: `{s.info['prepare_model']}`" if s.info.get("prepare_model") else "")
        for s in summaries
        if s.info.get("description")
    ]
    if described:
        blocks.append(
            Paragraph(
                "As configured in this run (each deploy command builds, for a device, the "
                "plan of seed 0 measured here, from this run's model):"
            )
        )
        blocks.append(Bullets(described))
    return blocks


def skipped_blocks(results: ResultsFile) -> list[Block]:
    """What did not run in this setting, and why (a recipe that matches no layer of the
    model, a run that failed)."""
    skipped = results.get("skipped", [])
    if not skipped:
        return []
    items = []
    for s in skipped:
        name = s.get("method", "?")
        label = results["methods"].get(name, {}).get("label") or name
        seed = "" if s.get("seed") is None else f" seed {s['seed']}"
        what = "skipped" if s.get("kind") == "no-match" else "failed"
        items.append(f"**{label}**{seed} {what}: {s.get('reason', '')}")
    return [Heading(2, "Skipped"), Bullets(items)]


def _write_document(blocks: list[Block], out_dir: Path) -> tuple[Path, Path]:
    md = render_markdown(blocks, out_dir / "report_files", "report_files")
    page = render_html(blocks, "micropeft benchmark report")
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    write_atomic(md_path, md.encode())
    write_atomic(html_path, page.encode())
    return md_path, html_path


def write_report(results_path: Path, out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write report.md (+ report_files/*.png) and report.html into `out_dir`; for a file
    of several settings (a suite), one report per setting in <out_dir>/<setting id>/ and
    an index of them in `out_dir`."""
    settings = load_settings(results_path)
    out_dir = out_dir or results_path.parent
    if len(settings) == 1:
        results = settings[0][1]
        return _write_document(build_document(results) + skipped_blocks(results), out_dir)
    rows = []
    for setting_id, results in settings:
        folder = setting_id.replace("/", "_")
        if results["runs"]:
            _write_document(build_document(results) + skipped_blocks(results), out_dir / folder)
        best = max(
            (s for s in summarize(results) if s.acc_c.values),
            key=lambda s: s.acc_c.mean,
            default=None,
        )
        rows.append(
            [
                setting_id,
                str(len(results["config"].get("methods", []))),
                f"{best.label}, {best.acc_c.pct()} %" if best else "n/a",
                str(len(results.get("skipped", []))),
                f"`{folder}/report.html`" if results["runs"] else "none",
            ]
        )
    blocks: list[Block] = [
        Heading(1, "micropeft benchmark suite"),
        Paragraph(
            "One report per setting (task, model, input size), each as a single-task bench "
            "writes it; the C runtime's accuracy over seeds."
        ),
        Table(["Setting", "Methods", "Most accurate (C)", "Skipped", "Report"], rows),
    ]
    blocks += cross_setting_blocks([(sid, r) for sid, r in settings if r["runs"]])
    for setting_id, results in settings:
        for block in skipped_blocks(results):
            if isinstance(block, Heading):
                block = Heading(3, f"Skipped in {setting_id}")
            blocks.append(block)
    return _write_document(blocks, out_dir)
