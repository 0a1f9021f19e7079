"""The report renderer on a small synthetic results file (the numbers are made
up here; what is checked is that the report says what those numbers imply)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from micropeft.errors import UserError
from micropeft.eval.conclusions import conclusions
from micropeft.eval.render import write_report
from micropeft.eval.results import RESULTS_SCHEMA, load_results, results_file
from micropeft.eval.summary import Stat, pareto_front, summarize


def _method(label, total, params, m4_step=None, fits=True, device_kib=None):
    parts = {
        "cached_activations": total // 2,
        "gradients": total // 4,
        "parameters": total // 8,
        "optimizer_state": total // 16,
    }
    parts["scratch"] = total - sum(parts.values())
    m4 = None
    if m4_step is not None:
        m4 = {
            "fits": fits,
            "samples_per_step": 2,
            "forward": m4_step * 0.2,
            "backward": m4_step * 0.25,
            "optimizer": m4_step * 0.1,
            "step": m4_step,
            "code": {"text": 20000},
            # 1.28 estimated cycles per instruction: m4_step / 50,000 ms at 64 MHz
            "est_step_cycles": int(m4_step * 1.28),
            "est_step_ms": m4_step * 1.28 / 64e3,
        }
    return {
        "label": label,
        "description": f"{label} as configured",
        "trainable_parameters": params,
        "ram": {
            **parts,
            "total": total,
            "high_water": total - 16,
            "total_device": int(1024 * (device_kib if device_kib is not None else total / 1024)),
        },
        "flash": {"model": 100_000, "plan": 2_000},
        "macs": {"forward": 1e6, "backward": 2e6},
        "m4": m4,
    }


def _runs(method, accs_c, accs_tf, ms_c=1.0, ms_tf=4.0):
    runs = []
    for seed, (a, b) in enumerate(zip(accs_c, accs_tf, strict=True)):
        for impl, acc, step in (("c", a, ms_c), ("tf", b, ms_tf)):
            runs.append(
                {
                    "key": f"{method}/{seed}/{impl}",
                    "method": method,
                    "seed": seed,
                    "impl": impl,
                    "accuracy": acc,
                    "step_ms": step,
                    "epochs": [
                        {"epoch": 1, "loss": 2.0, "accuracy": acc / 2},
                        {"epoch": 2, "loss": 1.0, "accuracy": acc},
                    ],
                }
            )
    return runs


@pytest.fixture
def results():
    methods = {
        # cheap and weak, on the front (60 KiB of device RAM in all)
        "head": _method("Head", 4_096, 650, m4_step=1e5, device_kib=60),
        # dominated: more RAM than "lora" and less accurate
        "bitfit": _method("BitFit", 40_960, 3_000, m4_step=2e6, device_kib=120),
        "lora": _method("LoRA", 20_480, 5_000, m4_step=1e6, device_kib=100),
        # most accurate, most RAM, does not fit
        "full": _method("Full", 409_600, 200_000, m4_step=9e6, fits=False, device_kib=300),
    }
    runs = (
        _runs("head", [0.50, 0.54, 0.52], [0.51, 0.53, 0.52])
        + _runs("bitfit", [0.60, 0.62, 0.61], [0.60, 0.62, 0.60])
        + _runs("lora", [0.70, 0.72, 0.74], [0.71, 0.72, 0.73], ms_c=2.0, ms_tf=4.0)
        + _runs("full", [0.90, 0.90, 0.90], [0.88, 0.88, 0.88])
    )
    runs += [
        {"key": f"zero_shot/{s}", "method": "zero_shot", "seed": s, "impl": "int8", "accuracy": 0.1}
        for s in range(3)
    ]
    runs += [
        {"key": f"scratch/{s}", "method": "scratch", "seed": s, "impl": "tf", "accuracy": 0.65}
        for s in range(3)
    ]
    return {
        "schema": RESULTS_SCHEMA,
        "config": {"task": "toy", "seeds": [0, 1, 2], "methods": list(methods), "batch_size": 8},
        "setup": {"target": "toy digits", "timing": {"total_s": 12.0}},
        "methods": methods,
        "runs": runs,
    }


def test_pareto_front_by_hand():
    # (cost, accuracy): point 1 is dominated by point 2 (cheaper and better)
    points = [(1.0, 0.5), (10.0, 0.6), (5.0, 0.7), (100.0, 0.9), (5.0, 0.7)]
    assert pareto_front(points) == [0, 2, 4, 3]
    assert pareto_front([(1.0, float("nan"))]) == []


def test_stat_mean_and_sample_std():
    stat = Stat([0.70, 0.72, 0.74])
    assert stat.mean == pytest.approx(0.72)
    assert stat.std == pytest.approx(0.02)  # sample (ddof=1) standard deviation
    assert stat.pct() == "72.0 ± 2.0"


def test_conclusions_follow_the_numbers(results):
    text = " ".join(conclusions(results, summarize(results)))
    front = text.split("Highest")[0]
    assert "Head" in front and "LoRA" in front and "Full" in front
    assert "BitFit" not in front  # dominated by LoRA
    assert "Highest accuracy: Full, 90.0 ± 0.0 %" in text
    # LoRA and Full beat scratch (65 %), head and BitFit do not
    assert "2 of 4 fine-tuning methods beat it (LoRA and Full)" in text
    # largest gap: Full, 2 points, C above TF
    assert "largest 2.0 points (Full, C above TF)" in text
    # per-KiB gain over zero-shot (10 %): head (52 - 10) / 60 KiB of device RAM = 0.70
    assert "Head, 0.70 points per KiB" in text
    # speed: ratios 4, 4, 2, 4 -> geometric mean 2**(7/4) = 3.36
    assert "the C runtime is 3.4x faster than TensorFlow" in text
    assert "Does not fit the nRF52840's 256 KiB RAM as a bare-metal firmware: Full." in text
    assert "cheapest training step is Head (100 k instructions)" in text


def test_report_files_are_self_contained(results, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_file({"toy": results})))
    md_path, html_path = write_report(path)
    md = md_path.read_text()
    page = html_path.read_text()
    for name in ("accuracy_vs_ram", "costs", "learning_curves"):
        png = tmp_path / "report_files" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"report_files/{name}.png" in md
    assert page.count("data:image/png;base64,") == 3
    # nothing loaded from elsewhere: every src/href is a data: URI
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith("data:") for link in links)
    assert "<script" not in page and "@import" not in page
    # the table shows the aggregated numbers
    # device total 100 KiB, training arena 20 KiB
    assert "| LoRA | 5,000 | 72.0 ± 2.0 | 72.0 ± 1.0 | +0.0 | 100.0 | 20.0 |" in md
    assert "does not fit" in md
    assert "Hu et al." in md and "Ben Zaken" in md and "TinyTL" in md and "Lin et al." in md


def test_bad_results_file_is_a_user_error(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{not json")
    with pytest.raises(UserError):
        load_results(path)
    path.write_text(json.dumps({"schema": 999}))
    with pytest.raises(UserError):
        load_results(path)
    with pytest.raises(UserError):
        load_results(tmp_path / "missing.json")


def test_first_step_difference_and_optimizers_come_from_the_runs(results, tmp_path):
    diffs = {"head": 3e-7, "bitfit": 2.5e-5, "lora": 1e-6, "full": 4e-6}
    for run in results["runs"]:
        if run["impl"] == "c" and run["method"] in diffs:
            run["first_step_param_diff"] = diffs[run["method"]] * (1 + run["seed"])
            run["param_diff_floor"] = 1e-3
    results["methods"]["head"]["optimizer"] = {"kind": "adam", "lr": 0.01}
    results["methods"]["full"]["optimizer"] = {"kind": "sgd", "lr": 0.002, "momentum": 0.9}
    text = " ".join(conclusions(results, summarize(results)))
    # the worst run: BitFit seed 2, 2.5e-5 x 3
    assert "differ by at most 7.5e-05 (relative to each array's largest value, or 0.001 if" in text
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_file({"toy": results})))
    md = write_report(path)[0].read_text()
    assert "**Head**: Head as configured; Adam, lr 0.01" in md
    assert "**Full**: Full as configured; SGD (momentum 0.9), lr 0.002" in md


def test_first_step_runs_that_differ_are_named(results):
    for run in results["runs"]:
        if run["impl"] == "c":
            run["first_step_param_diff"] = (
                2e-2 if (run["method"], run["seed"]) == ("lora", 1) else 1e-6
            )
            run["param_diff_floor"] = 1e-3
    text = " ".join(conclusions(results, summarize(results)))
    c_runs = sum(1 for run in results["runs"] if run["impl"] == "c")
    label = results["methods"]["lora"].get("label", "lora")
    assert "agree within 1e-04" in text and f"in {c_runs - 1} of {c_runs} runs" in text
    assert f"{label} seed 1 (2.0e-02)" in text
    assert "compute the same gradients" not in text


def test_checks_at_the_c_parameters_come_from_the_runs(results):
    c_runs = [run for run in results["runs"] if run["impl"] == "c"]
    for i, run in enumerate(c_runs):
        run["steps"] = 100
        run["lockstep_steps"] = 10 * (i + 1)  # 10 %, 20 %, ... of the steps
        run["lockstep_bound"] = 1e-3
        run["at_c_params"] = [
            {"epoch": 1, "grad_diff": 2e-7 * (i + 1), "prediction_agreement": 1.0},
            {"epoch": 2, "grad_diff": None, "prediction_agreement": 0.995 if i == 1 else 1.0},
        ]
    text = " ".join(conclusions(results, summarize(results)))
    median = 10 * (len(c_runs) + 1) / 2
    assert "class for at least 99.5 % of the test samples" in text
    assert f"differs by at most {2e-7 * len(c_runs):.1e} (relative)" in text
    assert f"within 0.001 of each other for a median {median:.0f} % of their steps" in text


def _document_text(results):
    from micropeft.eval.render import Figure, build_document, render_markdown

    blocks = [b for b in build_document(results) if not isinstance(b, Figure)]
    return render_markdown(blocks, Path("unused"), "unused")


def _table_rows(md, header_start):
    """The body rows of the Markdown table whose header starts with `header_start`."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_budget_table_names_the_most_accurate_method_that_fits(results, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results_file({"toy": results})))
    md = write_report(path)[0].read_text()
    rows = _table_rows(md, "| budget (KiB)")
    # device RAM: Head 60, LoRA 100, BitFit 120, Full 300 KiB; accuracy Head 52, BitFit 61,
    # LoRA 72, Full 90 %: Head wins 64 and 96 KiB, LoRA (beats BitFit) 128 to 256, Full never
    # fits. Device ms at 64 MHz: 1.28 cycles/instruction, Head 1e5 -> 2 ms, LoRA 1e6 -> 20 ms.
    assert rows == [
        ["64", "Head", "52.0 ± 2.0", "60.0", "650", "2"],
        ["96", "Head", "52.0 ± 2.0", "60.0", "650", "2"],
        ["128", "LoRA", "72.0 ± 2.0", "100.0", "5,000", "20"],
        ["192", "LoRA", "72.0 ± 2.0", "100.0", "5,000", "20"],
        ["256", "LoRA", "72.0 ± 2.0", "100.0", "5,000", "20"],
    ]
    assert "est. device ms/step at 64 MHz" in md
    # placed right after the conclusions, before the accuracy table
    assert md.index("## Conclusions") < md.index("| budget (KiB)") < md.index("## Accuracy")


def test_budget_table_says_none_fits(results):
    results["methods"]["head"]["ram"]["total_device"] = 70 * 1024
    del results["methods"]["head"]["m4"]["est_step_cycles"]
    rows = _table_rows(_document_text(results), "| budget (KiB)")
    assert rows[0] == ["64", "none fits", "", "", "", ""]
    # 96 KiB: Head (70 KiB) fits; no cycle estimate -> n/a
    assert rows[1] == ["96", "Head", "52.0 ± 2.0", "70.0", "650", "n/a"]


def test_budget_table_without_device_totals_says_so(results):
    for info in results["methods"].values():
        del info["ram"]["total_device"]
    rows = _table_rows(_document_text(results), "| budget (KiB)")
    assert [row[1] for row in rows] == ["n/a (no total device RAM: run bench again)"] * 5


def test_one_seed_shows_no_spread(results):
    results["runs"] = [r for r in results["runs"] if r["seed"] == 0]
    results["config"]["seeds"] = [0]
    md = _document_text(results)
    assert "±" not in md.split("## Setup")[0].replace("mean ± std over seeds", "")
    assert "| LoRA | 5,000 | 70.0 | 71.0 | -1.0 | 100.0 | 20.0 |" in md


def test_quick_run_is_announced_first(results):
    md = _document_text(results)
    assert "Quick smoke run" not in md
    results["config"].update(quick=True, epochs=2, train_samples=240)
    md = _document_text(results)
    banner = md.index("**Quick smoke run**: 3 seed(s), 2 epoch(s), 240 training samples")
    assert md.index("# micropeft benchmark") < banner < md.index("## Conclusions")
    assert "not for conclusions" in md[banner : md.index("## Conclusions")]


def test_zero_shot_row_of_a_users_own_head(results):
    assert "| Zero-shot (new head, no training) |" in _document_text(results)
    results["config"]["model_path"] = "my_model.tflite"
    md = _document_text(results)
    assert "| Zero-shot (the model as given, no training) |" in md
    assert "new head" not in md


def _setting(results, accuracies, device_kib):
    """A copy of `results` with each method's C accuracy (every seed) and device RAM set."""
    import copy

    other = copy.deepcopy(results)
    for run in other["runs"]:
        if run["impl"] == "c" and run["method"] in accuracies:
            run["accuracy"] = accuracies[run["method"]]
    for name, kib in device_kib.items():
        other["methods"][name]["ram"]["total_device"] = kib * 1024
    return other


def test_cross_setting_ranks_per_budget(results):
    from micropeft.eval.render import Table, cross_setting_blocks

    assert cross_setting_blocks([("toy", results)]) == []
    # Setting A: the fixture (Head 60 KiB 52 %, LoRA 100 KiB 72 %, BitFit 120 KiB 61 %,
    # Full 300 KiB 90 %). Setting B: Head needs 70 KiB, BitFit reaches 80 %.
    b = _setting(results, {"bitfit": 0.80}, {"head": 70})
    blocks = cross_setting_blocks([("A", results), ("B", b)])
    table = next(block for block in blocks if isinstance(block, Table))
    assert table.header == ["method", "64 KiB", "96 KiB", "128 KiB", "192 KiB", "256 KiB"]
    cells = {row[0]: row[1:] for row in table.rows}
    # 64: only A's Head fits. 96: Head in both. 128 and up: A ranks LoRA, BitFit, Head;
    # B ranks BitFit, LoRA, Head -> LoRA and BitFit both mean 1.5 with one win each.
    assert cells["Head"] == [
        "1.0 (1 won, fits 1/2)",
        "1.0 (2 won, fits 2/2)",
        "3.0 (0 won, fits 2/2)",
        "3.0 (0 won, fits 2/2)",
        "3.0 (0 won, fits 2/2)",
    ]
    assert cells["LoRA"] == ["-", "-"] + ["1.5 (1 won, fits 2/2)"] * 3
    assert cells["BitFit"] == ["-", "-"] + ["1.5 (1 won, fits 2/2)"] * 3
    assert cells["Full"] == ["-"] * 5  # 300 KiB: fits no budget
    winners = " ".join(next(block.items for block in blocks if hasattr(block, "items")))
    assert "64 KiB: Head (mean rank 1.0, best in 1 of 2 settings)" in winners
    # a tie on mean rank and wins goes to the name first in order (bitfit)
    assert "128 KiB: BitFit (mean rank 1.5, best in 1 of 2 settings)" in winners


def test_equal_accuracies_share_a_rank(results):
    from micropeft.eval.budget import ranks_per_budget

    # LoRA and BitFit both at 72 % in every seed: both rank 1 under 128 KiB, Head 3
    tied = _setting(results, {"bitfit": 0.72, "lora": 0.72}, {})
    ranks = {m.name: m.ranks for m in ranks_per_budget([summarize(tied)], 128)}
    assert ranks == {"bitfit": [1], "lora": [1], "head": [3]}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(9, 5.5), dpi=100)


def _overlap(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_pareto_plot_on_device_ram_with_labels_apart(results):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    from micropeft.eval.plots import draw_accuracy_vs_ram

    # crowd the plot: eight more methods close to LoRA (100 KiB, 72 %)
    for k in range(8):
        name = f"lora_{k}"
        results["methods"][name] = _method(
            f"LoRA variant {k}", 20_480, 5_000, device_kib=96 + 3 * k
        )
        results["runs"] += _runs(name, [0.70 + 0.004 * k] * 3, [0.70] * 3)
        results["config"]["methods"].append(name)
    summaries = summarize(results)
    front = pareto_front([(s.device_ram, s.acc_c.mean) for s in summaries])
    fig = _figure()
    try:
        labels = draw_accuracy_vs_ram(fig, summaries, front, 256)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        assert "total device RAM" in ax.get_xlabel() and "KiB" in ax.get_xlabel()
        # the nRF52840 line at 256 KiB, labelled
        assert any(list(line.get_xdata()) == [256, 256] for line in ax.get_lines())
        assert any("nRF52840: 256 KiB" in t.get_text() for t in ax.texts)
        # KiB ticks: a linear axis in steps of a power of two
        ticks = [t for t in ax.get_xticks() if 0 <= t <= ax.get_xlim()[1]]
        steps = {round(b - a) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(steps) == 1 and steps.pop() in (8, 16, 32, 64, 128)
        # the legend sits outside the axes
        assert not _overlap(ax.get_legend().get_window_extent(renderer), ax.get_window_extent())
        # every label: inside the axes, clear of every other label and every marker
        assert sorted(t.get_text() for t in labels) == sorted(s.label for s in summaries)
        # the text's own box (an Annotation's extent includes its leader line)
        boxes = [Text.get_window_extent(t, renderer) for t in labels]
        for i, box in enumerate(boxes):
            assert ax.get_window_extent().contains(box.x0, box.y0)
            assert all(not _overlap(box, other) for other in boxes[i + 1 :]), labels[i]
        radius = 3.0  # the markers' radius in pixels (6 pt across at 100 dpi: 4.2 px)
        for s in summaries:
            x, y = ax.transData.transform((s.device_ram / 1024, 100 * s.acc_c.mean))
            marker = Bbox.from_extents(x - radius, y - radius, x + radius, y + radius)
            assert all(not _overlap(box, marker) for box in boxes), s.label
    finally:
        plt.close(fig)


def test_learning_curves_integer_epochs_and_a_legend_per_panel(results):
    import matplotlib.pyplot as plt

    from micropeft.eval.plots import draw_learning_curves

    fig = _figure()
    try:
        draw_learning_curves(fig, summarize(results))
        fig.canvas.draw()
        assert len(fig.axes) == 2
        for ax in fig.axes:  # loss, then accuracy
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks)
            names = [t.get_text() for t in ax.get_legend().get_texts()]
            assert "LoRA" in names and "TensorFlow (dashed)" in names
            assert not _overlap(ax.get_legend().get_window_extent(), ax.get_window_extent())
    finally:
        plt.close(fig)


def test_cost_bars_carry_their_totals(results):
    import matplotlib.pyplot as plt

    from micropeft.eval.plots import draw_costs

    fig = _figure()
    try:
        draw_costs(fig, summarize(results))
        ram_ax, m4_ax = fig.axes
        # training arenas 4, 40, 20 and 400 KiB; M4 steps (2 samples): forward 0.2 and
        # backward 0.25 of the step per sample, optimizer 0.1 -> the step (millions)
        assert [t.get_text() for t in ram_ax.texts] == ["4.0", "40.0", "20.0", "400.0"]
        assert [t.get_text() for t in m4_ax.texts] == ["0.1", "2", "1", "does not fit"]
    finally:
        plt.close(fig)
