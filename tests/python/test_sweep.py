"""`micropeft bench --sweep`: each candidate's validation score is the C run the benchmark
itself makes with that optimizer and rate on the same split (and the TensorFlow reference's
where the two stay in step), the split never touches the test samples, and the table marks
the winner by the stated rule (hand-computed cases)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from micropeft.eval import sweep, tasks, train
from micropeft.prep import convert, models, tflite_graph


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    keras_model = models.build_tiny_cnn(8, 1, 10)
    rep = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 1)).astype(np.float32)
    (folder / "tiny.tflite").write_bytes(convert.to_int8_tflite(keras_model, rep))
    return folder


def test_sweep_scores_are_the_benchmarks_own_runs(tiny, monkeypatch):
    monkeypatch.setattr(sweep, "SWEEP_GRID", (("sgd", 0.03), ("adam", 0.003)))
    cfg = tasks.BenchConfig(
        task="user",
        model_path=str(tiny / "tiny.tflite"),
        dataset="digits",
        methods=["last_layer"],
        seeds=[0],
        epochs=2,
        batch_size=8,
        train_samples=90,
        test_samples=30,
    )
    out = tiny / "out"
    table = sweep.run_sweep(cfg, out, progress=False)
    record = json.loads((out / sweep.SWEEP_JSON).read_text())
    task = tasks.prepare_task(cfg, out / "cache", {})
    data = sweep.validation_split(task)
    # 90 training samples, a third held out (stratified: 3 per class); the test split unused
    assert (len(data.y_train), len(data.y_test)) == (60, 30)
    assert np.bincount(data.y_test).tolist() == [3] * 10
    train_rows = {row.tobytes() for row in task.x_train}
    assert all(row.tobytes() in train_rows for row in data.x_test)
    assert not any(row.tobytes() in {r.tobytes() for r in data.x_test} for row in task.x_test)
    # the grid and the recipe's own choice (last_layer: Adam 0.01)
    assert sweep.candidates("last_layer") == [("sgd", 0.03), ("adam", 0.003), ("adam", 0.01)]
    graph = tflite_graph.graph_from_tflite(data.model)
    for kind, lr in sweep.candidates("last_layer"):
        # as bench trains it: the run's linear schedule over its 60 samples' updates
        spec = tasks.METHODS["last_layer"].with_optimizer(kind, lr).for_run(cfg, len(data.x_train))
        prepared = train.prepare_method(spec, graph, data.model)
        cache = train.prefix_activations(
            data.model, graph, [prepared.input_tensor], data, tiny / "cache"
        )
        c_run, tf_run, _ = train.train_pair(prepared, data.model, cache, data, cfg, seed=0)
        score = record["runs"][f"last_layer/{kind}/{lr:g}/0"]
        assert score == c_run["accuracy"], (kind, lr)
        if c_run["lockstep_steps"] == c_run["steps"]:
            assert score == tf_run["accuracy"], (kind, lr)
    text = table.read_text()
    assert "| method | SGD 0.03 | Adam 0.003 | Adam 0.01 | best | recipe |" in text
    # a rerun resumes: nothing left to train, the same file
    before = (out / sweep.SWEEP_JSON).read_text()
    sweep.run_sweep(cfg, out, progress=False)
    assert (out / sweep.SWEEP_JSON).read_text() == before


def test_best_takes_the_smaller_rate_in_a_near_tie():
    # 70.5 % is the best; 70.0 % lies within one point of it at a smaller rate: it wins
    assert sweep.best({("sgd", 0.01): 0.700, ("adam", 0.03): 0.705}) == ("sgd", 0.01)
    # 2 points apart: the best stands
    assert sweep.best({("sgd", 0.01): 0.70, ("adam", 0.03): 0.72}) == ("adam", 0.03)
    assert sweep.best({}) is None


def test_sweep_table_and_report_text_from_a_record(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "SWEEP_GRID", (("sgd", 0.01), ("adam", 0.003)))
    record = {
        "task": "toy",
        "samples": {"train": 60, "validation": 30},
        "epochs": 5,
        "batch_size": 16,
        "seeds": [0, 1],
        "methods": {"bitfit": {"label": "BitFit + head", "recipe": ["sgd", 0.01]}},
        "runs": {
            # SGD 0.01: mean 0.60; Adam 0.003: mean 0.70 (wins by more than a point)
            "bitfit/sgd/0.01/0": 0.58,
            "bitfit/sgd/0.01/1": 0.62,
            "bitfit/adam/0.003/0": 0.70,
            "bitfit/adam/0.003/1": 0.70,
        },
    }
    text = sweep.sweep_markdown(record)
    assert "| BitFit + head | *60.0* | **70.0** | Adam 0.003 | SGD 0.01 |" in text
    (tmp_path / sweep.SWEEP_JSON).write_text(json.dumps(record))
    tuning = sweep.tuning_text(tmp_path, ["bitfit", "lora_r4"])
    assert tuning is not None and "`micropeft bench --sweep` on toy" in tuning
    assert "BitFit + head SGD 0.01: 60 %, Adam 0.003: 70 %" in tuning
    assert sweep.tuning_text(tmp_path / "none", ["bitfit"]) is None
