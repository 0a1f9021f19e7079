"""The report renderer on a small synthetic results file (the numbers are made
up here; what is checked is that the report says what those numbers imply)."""

from __future__ import annotations

import json
import re

import pytest

from micropeft.errors import UserError
from micropeft.eval.conclusions import conclusions
from micropeft.eval.render import write_report
from micropeft.eval.results import RESULTS_SCHEMA, load_results, results_file
from micropeft.eval.summary import Stat, pareto_front, summarize


def _method(label, total, params, m4_step=None, fits=True):
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
        }
    return {
        "label": label,
        "description": f"{label} as configured",
        "trainable_parameters": params,
        "ram": {**parts, "total": total, "high_water": total - 16},
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
        # cheap and weak, on the front
        "head": _method("Head", 4_096, 650, m4_step=1e5),
        # dominated: more RAM than "lora" and less accurate
        "bitfit": _method("BitFit", 40_960, 3_000, m4_step=2e6),
        "lora": _method("LoRA", 20_480, 5_000, m4_step=1e6),
        # most accurate, most RAM, does not fit
        "full": _method("Full", 409_600, 200_000, m4_step=9e6, fits=False),
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
    # per-KB gain over zero-shot (10 %): head (52 - 10) / 4 KB = 10.5 points/KB
    assert "Head, 10.50 points per KB" in text
    # speed: ratios 4, 4, 2, 4 -> geometric mean 2**(7/4) = 3.36
    assert "the C runtime is 3.4x faster than TensorFlow" in text
    assert "Does not fit the nRF52840's 256 KB RAM as a bare-metal firmware: Full." in text
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
    assert "| LoRA | 5,000 | 72.0 ± 2.0 | 72.0 ± 1.0 | +0.0 | 20.0 |" in md
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
