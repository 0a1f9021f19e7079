"""The benchmark's run engine on a tiny setting (tiny_cnn, 16x16, a few dozen samples):
results keyed per run, so that a new method, seed or setting runs only what is new and a
changed recipe reruns only its method; a recipe that matches no layer, and a run that
fails, noted without stopping the others; the same numbers from 2 worker processes as
from 1; a results file of the older schema refused with a clear error."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from micropeft.errors import UserError
from micropeft.eval import run, tasks
from micropeft.eval.results import load_results, load_settings


def _tiny(**overrides):
    cfg = tasks.quick_config(
        arch="tiny_cnn",
        size=16,
        methods=["last_layer"],
        seeds=[0],
        epochs=1,
        train_samples=48,
        test_samples=40,
        pretrain_epochs=1,
        cm4=False,
        scratch=False,
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """train_pair counted: the (method, seed) of every training run, in the order run."""
    monkeypatch.setenv("MICROPEFT_CACHE", str(tmp_path / "pretrain-cache"))
    calls = []
    real = run.train_pair

    def train_pair(prepared, model, cache, data, cfg, seed, *args):
        calls.append((prepared.spec.name, seed))
        return real(prepared, model, cache, data, cfg, seed, *args)

    monkeypatch.setattr(run, "train_pair", train_pair)
    return calls


def _runs(path):
    return {
        (setting_id, r["key"]): r
        for setting_id, setting in load_settings(path)
        for r in setting["runs"]
    }


def test_a_new_method_seed_setting_or_recipe_runs_only_what_is_new(counted, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    path = run.run_grid([_tiny()], out, report=False, progress=False)
    assert counted == [("last_layer", 0)]
    first = _runs(path)

    # A method and a seed more: the three new (method, seed) pairs, nothing else.
    counted.clear()
    run.run_grid([_tiny(methods=["last_layer", "bitfit"], seeds=[0, 1])], out, report=False)
    assert sorted(counted) == [("bitfit", 0), ("bitfit", 1), ("last_layer", 1)]
    second = _runs(path)
    for key, record in first.items():
        assert second[key] == record  # kept as it was (a rerun would change step_ms)

    # A setting more (another input size): only its runs; the first setting is kept.
    counted.clear()
    settings = [_tiny(methods=["last_layer", "bitfit"], seeds=[0, 1]), _tiny(size=24)]
    run.run_grid(settings, out, report=False, progress=False)
    assert counted == [("last_layer", 0)]
    third = _runs(path)
    assert {s for s, _ in third} == {c.setting_id() for c in settings}
    assert all(third[key] == record for key, record in second.items())

    # A changed recipe (BitFit's learning rate): only BitFit's runs again.
    counted.clear()
    bitfit = tasks.METHODS["bitfit"]
    faster = bitfit.with_optimizer(bitfit.optimizer, 2 * bitfit.lr)
    monkeypatch.setitem(tasks.METHODS, "bitfit", faster)
    run.run_grid(settings, out, report=False, progress=False)
    assert sorted(counted) == [("bitfit", 0), ("bitfit", 1)]
    fourth = _runs(path)
    for key, record in third.items():
        assert (fourth[key] == record) == (record["method"] != "bitfit")

    # A changed training length reruns the setting it belongs to, and only that one.
    counted.clear()
    run.run_grid([_tiny(size=24, epochs=2)], out, report=False, progress=False)
    assert counted == [("last_layer", 0)]
    kept = load_settings(path)
    assert [len(s["runs"]) for _, s in kept] == [1 + 2 * 4, 1 + 2]  # zero-shot + C/TF pairs


def test_a_recipe_that_matches_no_layer_is_skipped_with_a_note(counted, tmp_path, monkeypatch):
    # LoRA on depthwise convolutions: no depthwise layer can carry an adapter.
    lora = tasks.METHODS["lora_r4"]
    spec = tasks.MethodSpec(
        "lora_dw", replace(lora.config, target_modules={"lora": ["last:2:depthwise"]})
    )
    monkeypatch.setitem(tasks.METHODS, "lora_dw", spec)
    failing = "full"
    real = run.train_pair

    def train_pair(prepared, *args):
        if prepared.spec.name == failing:
            raise FloatingPointError("loss is not finite")
        return real(prepared, *args)

    monkeypatch.setattr(run, "train_pair", train_pair)
    out = tmp_path / "bench"
    cfg = _tiny(methods=["last_layer", "lora_dw", failing])
    path = run.run_grid([cfg], out, progress=False)
    results = load_results(path)
    assert results["config"]["methods"] == ["last_layer", "full"]  # lora_dw: nothing to show
    assert {r["method"] for r in results["runs"]} == {"zero_shot", "last_layer"}
    notes = {(s["method"], s["seed"], s["kind"]): s["reason"] for s in results["skipped"]}
    assert notes[("lora_dw", None, "no-match")] == (
        "lora: target 'last:2:depthwise' matches no layer that can carry it"
    )
    assert "FloatingPointError: loss is not finite" in notes[("full", 0, "error")]
    report = (out / "report.md").read_text()
    assert "## Skipped" in report
    assert "**lora_dw** skipped: lora: target 'last:2:depthwise' matches no layer" in report
    assert "seed 0 failed: FloatingPointError: loss is not finite" in report

    # Once it runs, the failure note goes.
    monkeypatch.setattr(run, "train_pair", real)
    results = load_results(run.run_grid([cfg], out, report=False, progress=False))
    assert [(s["method"], s["kind"]) for s in results["skipped"]] == [("lora_dw", "no-match")]
    assert {r["method"] for r in results["runs"]} == {"zero_shot", "last_layer", "full"}


def test_two_worker_processes_give_the_numbers_of_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROPEFT_CACHE", str(tmp_path / "pretrain-cache"))
    cfg = _tiny(methods=["last_layer", "lora_r4"], seeds=[0, 1], epochs=2, scratch=True)
    one = run.run_grid([cfg], tmp_path / "one", report=False, progress=False, jobs=1)
    two = run.run_grid([cfg], tmp_path / "two", report=False, progress=False, jobs=2)
    a, b = _runs(one), _runs(two)
    assert set(a) == set(b) and len(a) == 1 + 2 * 2 * 2 + 1  # zero-shot, pairs, scratch seed 0
    for key, record in a.items():
        # Step times differ from run to run; every number the C runtime produced must not.
        # TensorFlow's (the reference, scratch) run with one thread per worker here and
        # two in one process: its sums differ in their last bits, nothing more.
        epochs, other = record.get("epochs"), b[key].get("epochs")
        if key[1].endswith("/c"):
            assert epochs == other, key
        elif epochs is not None:
            assert [e["epoch"] for e in epochs] == [e["epoch"] for e in other], key
            for mine, theirs in zip(epochs, other, strict=True):
                assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5), key
                assert mine["accuracy"] == theirs["accuracy"], key
        assert record["accuracy"] == b[key]["accuracy"], key
        assert record["fingerprint"] == b[key]["fingerprint"], key


def test_a_results_file_of_the_older_schema_is_refused(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    old = {"schema": 1, "fingerprint": "x", "config": {}, "setup": {}, "methods": {}, "runs": []}
    (out / "results.json").write_text(json.dumps(old))
    with pytest.raises(UserError, match=r"older micropeft \(schema 1; this one reads 2\)"):
        load_results(out / "results.json")
    with pytest.raises(UserError, match="older micropeft"):
        run.run_grid([_tiny()], out, report=False, progress=False)
    assert json.loads((out / "results.json").read_text()) == old  # left as it was


def test_suite_grid():
    base = tasks.BenchConfig()
    full = tasks.suite_configs("full", base)
    # every task x (MobileNetV1 at 32, 64, 96 + MobileNetV2 at 32, 64)
    assert len(full) == len(tasks.TASKS) * 5
    assert {c.setting_id() for c in full} >= {
        "animal-to-digits/mobilenet_v1-0.25/96",
        "animal-to-digits/mobilenet_v2-0.35/64",
        # the sensor task runs the same families as 1-D nets
        "vowels-new-speakers/mobilenet_v1_1d-0.25/96",
        "vowels-new-speakers/mobilenet_v2_1d-0.35/64",
    }
    assert not any(c.arch == "mobilenet_v2" for c in full if c.task == "vowels-new-speakers")
    assert all(c.methods == base.methods and c.seeds == base.seeds for c in full)
    one = tasks.suite_configs("digits-to-animal", base)
    assert [c.setting_id() for c in one] == [
        c.setting_id() for c in full if c.task == "digits-to-animal"
    ]
    own = tasks.suite_configs("tasks", base)
    assert [c.task_spec() for c in own] == list(tasks.TASKS.values())
    with pytest.raises(UserError, match="unknown suite 'nope'; choose from full, tasks"):
        tasks.suite_configs("nope", base)


def test_quantized_forward_is_a_setting_of_its_own():
    """bench --quantized-forward: every method's recipe gets the flag (for_run), and the
    setting's fingerprint changes with it, while one without it keeps the fingerprint
    of the settings measured before the option existed (the key is left out)."""
    plain, qf = tasks.BenchConfig(), tasks.BenchConfig(quantized_forward=True)
    assert plain.setting_fingerprint() != qf.setting_fingerprint()
    data = asdict(plain)
    data.pop("quantized_forward")
    for name in ("methods", "seeds", "cm4", "scratch", "scratch_seeds", "arch", "alpha", "size"):
        data.pop(name)
    data["task_spec"] = asdict(plain.task_spec())
    assert plain.setting_fingerprint() == tasks._digest(data)
    for name in ("bitfit", "lora_r4"):
        assert tasks.METHODS[name].for_run(qf, 1000).config.quantized_forward
        assert not tasks.METHODS[name].for_run(plain, 1000).config.quantized_forward
