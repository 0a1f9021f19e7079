"""`micropeft bench --quick` end to end, checked against facts that do not come
from the benchmark itself: the C runtime's own size and parameter queries on
the plan the benchmark wrote (peft_plan_load recomputes the layout in C), the
TensorFlow reference's accuracy on identical data, a second QEMU run of the
same firmware, and the report files' content."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from micropeft.eval import cm4, tasks, train
from micropeft.eval.results import load_results
from micropeft.host import runtime

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    env = dict(os.environ)
    env.setdefault("MICROPEFT_CACHE", str(out / "pretrain-cache"))
    cmd = [sys.executable, "-m", "micropeft", "bench", "--quick", "--out", str(out)]
    if cm4.missing_tools():
        cmd.append("--no-cm4")
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = load_results(out / "results.json")
    return {"out": out, "results": results, "cmd": cmd, "env": env, "elapsed": elapsed}


def _runs(results, impl):
    return {(r["method"], r["seed"]): r for r in results["runs"] if r["impl"] == impl}


def test_every_method_ran_in_c_and_tf(quick):
    results = quick["results"]
    c, tf = _runs(results, "c"), _runs(results, "tf")
    expected = {(m, s) for m in results["config"]["methods"] for s in results["config"]["seeds"]}
    assert set(c) == expected and set(tf) == expected
    for run in list(c.values()) + list(tf.values()):
        assert len(run["epochs"]) == results["config"]["epochs"]
        assert 0.0 <= run["accuracy"] <= 1.0 and run["step_ms"] > 0
    # baselines
    methods = {r["method"] for r in results["runs"]}
    assert "zero_shot" in methods and "scratch" in methods


def test_c_and_tf_accuracy_agree_where_the_runs_stay_in_step(quick):
    # Two float32 trainings of the same model drift apart once rounding differences grow
    # (a TF run started 1e-7 away from itself ends as far from it as C does): final
    # accuracies are compared only where C and TF stayed within the lockstep bound for
    # the whole run, and there they must be equal. Everywhere else the claim is the one
    # test_c_runs_match_the_reference_at_their_own_parameters checks exactly.
    results = quick["results"]
    c, tf = _runs(results, "c"), _runs(results, "tf")
    n_test = int(results["config"]["test_samples"])
    in_step = 0
    for key, run in c.items():
        # the accuracy is a count over the test set
        assert abs(run["accuracy"] * n_test - round(run["accuracy"] * n_test)) < 1e-6
        if run["lockstep_steps"] == run["steps"]:
            in_step += 1
            assert run["accuracy"] == tf[key]["accuracy"], (
                f"{key}: C {run['accuracy']:.3f} vs TF {tf[key]['accuracy']:.3f}"
            )
    assert in_step >= 1, "no quick run stayed in step with the reference"


def test_c_runs_match_the_reference_at_their_own_parameters(quick):
    # After every epoch a TF reference set to the C run's parameters gives C's gradient
    # (1e-4, test_training_equivalence's bound) and C's test predictions: wherever the C
    # run went, the runtime computes what the reference computes there (a kept value
    # rounded differently, a mask from another tensor, would show here).
    results = quick["results"]
    for run in _runs(results, "c").values():
        checks = run["at_c_params"]
        assert [c["epoch"] for c in checks] == [e["epoch"] for e in run["epochs"]], run["key"]
        for check, epoch in zip(checks, run["epochs"], strict=True):
            if tasks.METHODS[run["method"]].update == "batch":
                assert 0.0 <= check["grad_diff"] < 1e-4, (run["key"], check)
            assert check["prediction_agreement"] == 1.0, (run["key"], check)
            assert check["tf_accuracy"] == epoch["accuracy"], (run["key"], check)
        assert 1 <= run["lockstep_steps"] <= run["steps"], run["key"]
        assert run["lockstep_bound"] == train.LOCKSTEP_BOUND


def test_c_and_tf_parameters_agree_after_the_first_step(quick):
    # the quick methods train only the last layers: one step of the same gradients leaves
    # the C and TF parameters equal up to float rounding (relative, with an absolute floor)
    # (Adam's first step is lr * sign(gradient): a gradient at rounding level, as in the
    # sparse depthwise weights, can flip one element's step, hence the looser bound there)
    for run in _runs(quick["results"], "c").values():
        assert run["param_diff_floor"] > 0
        bound = 1e-4 if run["method"] in ("last_layer", "lora_r4") else 5e-2
        assert 0.0 <= run["first_step_param_diff"] < bound, run["key"]


def test_ram_and_parameters_equal_the_runtimes_own_queries(quick):
    out, results = quick["out"], quick["results"]
    model = (out / results["setup"]["model_file"]).read_bytes()
    for name, info in results["methods"].items():
        trainer = runtime.Trainer(model, (out / info["plan_file"]).read_bytes())
        ram = info["ram"]
        assert trainer.arena_size("train") == ram["total"], name
        assert trainer.arena_size("infer") == info["ram_infer"], name
        breakdown = trainer.breakdown()
        for part in ("cached_activations", "gradients", "parameters", "optimizer_state", "scratch"):
            assert breakdown[part] == ram[part], (name, part)
        assert sum(ram[p] for p in breakdown if p != "total") == ram["total"]
        # trainable parameters: the sizes of the arrays the runtime trains
        params = trainer.parameters()
        assert sum(v.size for v in params.values()) == info["trainable_parameters"], name
        # the measured high-water mark lies inside the arena and covers the parameters
        assert ram["parameters"] <= ram["high_water"] <= ram["total"], name
        assert info["flash"]["model"] == len(model)
        assert info["flash"]["plan"] == (out / info["plan_file"]).stat().st_size


@pytest.mark.skipif(bool(cm4.missing_tools()), reason="no Cortex-M4F toolchain or QEMU")
def test_cortex_m4_counts_are_exact_and_repeat(quick, tmp_path):
    out, results = quick["out"], quick["results"]
    model = (out / results["setup"]["model_file"]).read_bytes()
    measured = 0
    for name, info in results["methods"].items():
        m4 = info["m4"]
        if not m4["fits"]:
            assert "256 KB" in m4["reason"]
            assert info["ram"]["total"] > 200 * 1024
            continue
        measured += 1
        n = m4["samples_per_step"]
        assert len(m4["forward_each"]) == len(m4["backward_each"]) == n
        # the phases add up to the step
        assert sum(m4["forward_each"]) + sum(m4["backward_each"]) + m4["optimizer"] == m4["step"]
        # the forward pass does not depend on the data for these ops: every sample costs
        # about the same (ReLU branches aside)
        assert max(m4["forward_each"]) - min(m4["forward_each"]) <= 0.01 * m4["forward"]
        # the firmware's arena high-water mark is the same figure the host runtime reports
        # after training (same code, same layout), and inside the planned arena
        assert m4["arena_high_water"] == info["ram"]["high_water"], name
        assert m4["arena_high_water"] <= info["ram"]["total"]
        assert 0 < m4["code"]["text"] and 0 < m4["library_text"] < m4["code"]["text"]
        assert m4["code"]["blobs"] >= len(model)
        # a second run of the same firmware counts exactly the same
        folder = out / Path(info["plan_file"]).parent
        again = cm4.measure_training(
            model,
            (out / info["plan_file"]).read_bytes(),
            np.load(folder / "m4_samples.npy"),
            np.load(folder / "m4_labels.npy"),
            info["ram"]["total"],
            tmp_path / name,
        )
        assert again.forward_each == m4["forward_each"]
        assert again.backward_each == m4["backward_each"]
        assert again.optimizer == m4["optimizer"] and again.step == m4["step"]
        # the M4 computes the same loss as the host C runtime on the same samples (float32,
        # same kernels, a fresh trainer: the driver steps after all of them); it reports
        # micro-units, truncated, and the M4 build may fuse multiply-adds: rtol 1e-4
        samples = np.load(folder / "m4_samples.npy")
        labels = np.load(folder / "m4_labels.npy")
        host = runtime.Trainer(model, (out / info["plan_file"]).read_bytes())
        host_losses = []
        for x, y in zip(samples, labels, strict=True):
            host_losses.append(host.forward(x, int(y)))
            host.backward()
        assert len(again.losses) == len(host_losses) == n
        np.testing.assert_allclose(again.losses, host_losses, rtol=1e-4, atol=2e-6)
    assert measured >= 1


def test_merged_model_is_scored_per_method(quick):
    """Each C run's state is merged into an int8 .tflite and run in TFLite and TFLM. The
    smoke run barely learns (near-tied logits), so only a loose bound here: the 99 % goal
    is tested in test_merge.py on a model that learned."""
    results = quick["results"]
    for run in _runs(results, "c").values():
        merged = run["merged"]
        for interpreter in ("tflite", "tflm"):
            assert merged[f"agreement_{interpreter}"] >= 0.9, (run["method"], merged)
            assert abs(merged[f"accuracy_{interpreter}"] - run["accuracy"]) <= 0.05, merged
    assert "agreement TFLM (%)" in (quick["out"] / "report.md").read_text()


def test_report_is_written_and_self_contained(quick):
    out = quick["out"]
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for name in quick["results"]["config"]["methods"]:
        label = quick["results"]["methods"][name]["label"]
        assert label in md and label in page
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "<script" not in page
    # CSV: one row per run
    rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + len(quick["results"]["runs"])


def test_rerun_resumes_without_training_again(quick):
    out = quick["out"]
    before = load_results(out / "results.json")["runs"]
    result = subprocess.run(
        quick["cmd"], cwd=REPO, env=quick["env"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    after = load_results(out / "results.json")["runs"]
    # the finished runs are kept as they were (a new training run would change step_ms)
    key = lambda r: r["key"]  # noqa: E731
    assert sorted(before, key=key) == sorted(after, key=key)


def test_parameter_difference_has_an_absolute_floor():

    tf = {"w": np.array([2.0, -4.0]), "shift": np.array([1e-6, -2e-6])}
    # hand-computed: w differs by 0.004 of max |w| = 4 -> 1e-3; shift by 1e-7 absolute,
    # below the floor (1e-3) -> 1e-4, not 1e-7 / 2e-6 = 0.05
    c = {"w": np.array([2.0, -3.996]), "shift": np.array([1e-6, -2.1e-6])}
    assert train._max_relative_diff(c, tf) == pytest.approx(1e-3)
    c["w"] = tf["w"].copy()
    assert train._max_relative_diff(c, tf) == pytest.approx(1e-7 / train.PARAM_DIFF_FLOOR)
    # a real difference in a small array still shows at full size
    c["shift"] = np.array([1e-6, 5e-4])
    assert train._max_relative_diff(c, tf) == pytest.approx((5e-4 + 2e-6) / 1e-3)


def test_tensorflow_starts_quietly_and_pretraining_shows_its_epochs(tmp_path):
    # TensorFlow's native start-up lines (CUDA probing, absl's pre-init warnings) and its
    # Python logger's warnings are muted;
    # pretraining (verbose=0, as bench calls it) still shows one bar step per epoch.
    script = (
        "from micropeft.prep.convert import start_tensorflow_quietly\n"
        "start_tensorflow_quietly()\n"
        "import tensorflow as tf\n"
        "tf.get_logger().warning('a Python-side notice, such as retracing')\n"
        "from micropeft.prep import models\n"
        "cfg = models.PretrainConfig('tiny_cnn', 1.0, 8, 1, 'digits', epochs=2)\n"
        "models.pretrained(cfg, use_cache=False, verbose=0, progress=True)\n"
    )
    env = dict(os.environ, MICROPEFT_CACHE=str(tmp_path), TQDM_MININTERVAL="0")
    env.pop("MICROPEFT_VERBOSE", None)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in re.split(r"[\r\n]+", result.stderr) if line.strip()]
    bar = [line for line in lines if line.startswith("pretraining tiny_cnn on digits")]
    assert any("2/2" in line and "accuracy=" in line for line in bar), result.stderr
    assert all(line.startswith("pretraining") for line in lines), lines
