"""1-D sensor inputs (T, 1, C): the .ts reader, series sources, fitting and refusals,
the 1-D MobileNets through conversion and prepare-model, and the C runtime against the
TensorFlow reference on a small 1-D net.

Expected values are written out by hand from the documented rules (the .ts format,
linear interpolation, percentile scaling), or come from TensorFlow (GradientTape in the
reference trainer) and TFLite's reference kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from micropeft.errors import UserError
from micropeft.eval.results import load_results
from micropeft.prep import convert, datasets, models, tflite_graph

TINY_TS = """# a comment line
@problemName Tiny
@timeStamps false
@missing false
@univariate false
@dimensions 2
@equalLength false
@classLabel true walk run
@data
1.0,2.0,3.0:10,20,30:walk
0.5,1.5:-1,-2:run
# comments may sit between cases
4,5,6,7:8,9,10,11:walk
"""


def test_ts_reader_reads_a_hand_written_file(tmp_path):
    path = tmp_path / "tiny.ts"
    path.write_text(TINY_TS)
    cases, labels, classes = datasets.read_ts(path)
    assert classes == ["walk", "run"]
    assert labels == ["walk", "run", "walk"]
    assert [c.shape for c in cases] == [(2, 3), (2, 2), (2, 4)]
    np.testing.assert_array_equal(cases[0], [[1, 2, 3], [10, 20, 30]])
    np.testing.assert_array_equal(cases[1], [[0.5, 1.5], [-1, -2]])
    np.testing.assert_array_equal(cases[2], [[4, 5, 6, 7], [8, 9, 10, 11]])


@pytest.mark.parametrize(
    "text, needle",
    [
        (TINY_TS.replace("@timeStamps false", "@timeStamps true"), "time stamps"),
        (TINY_TS.replace("@classLabel true walk run", "@classLabel false"), "no class labels"),
        (TINY_TS.replace("0.5,1.5:-1,-2:run", "0.5,?:-1,-2:run"), "not a number"),
        (TINY_TS.replace("0.5,1.5:-1,-2:run", "0.5,1.5:-1:run"), "different lengths"),
        (TINY_TS.replace("0.5,1.5:-1,-2:run", "0.5,1.5:run"), "1 dimensions"),
        (TINY_TS.replace("0.5,1.5:-1,-2:run", "0.5,1.5:-1,-2:jump"), "jump"),
        (TINY_TS.split("@data")[0] + "@data\n", "no cases"),
        ("1,2:walk\n", "header"),
    ],
)
def test_ts_reader_refuses_bad_files_in_one_line(tmp_path, text, needle):
    path = tmp_path / "bad.ts"
    path.write_text(text)
    with pytest.raises(UserError, match=needle) as info:
        datasets.read_ts(path)
    assert "\n" not in str(info.value)


def test_resample_series_is_linear_over_the_whole_duration():
    series = np.asarray([[0.0, 3.0], [1.0, 1.0]])
    # Two points stretched to four: time 0, 1/3, 2/3, 1 of the way from 0 to 3.
    np.testing.assert_allclose(
        datasets.resample_series(series, 4), [[0, 1, 2, 3], [1, 1, 1, 1]], atol=1e-6
    )
    np.testing.assert_allclose(
        datasets.resample_series(np.asarray([[0.0, 1, 2, 3, 4]]), 3), [[0, 2, 4]]
    )


def test_series_npz_is_scaled_per_channel(tmp_path):
    # Channel 0 runs 0..100, channel 1 is ten times larger: each maps on its own
    # percentiles (1 and 99, exactly 1 and 99 here, and 10 and 990), then clips.
    t = np.arange(101, dtype=np.float64)
    x = np.stack([t, 10 * t], axis=-1)[None].repeat(4, axis=0)  # (4, 101, 2)
    path = tmp_path / "s.npz"
    np.savez(path, x=x, y=np.asarray([0, 1, 0, 1]))
    data = datasets.load_source(str(path), series=True)
    assert data.x.shape == (4, 101, 1, 2) and data.series
    expected = np.clip((t - 1) / 98, 0, 1)
    np.testing.assert_allclose(data.x[0, :, 0, 0], expected, atol=1e-6)
    np.testing.assert_allclose(data.x[0, :, 0, 1], expected, atol=1e-6)
    # The same array with its column axis: no flag needed.
    np.savez(path, x=x[:, :, None, :], y=np.asarray([0, 1, 0, 1]))
    np.testing.assert_allclose(datasets.load_source(str(path)).x, data.x)


def test_fit_resamples_series_and_refuses_mismatches():
    x = np.linspace(0, 1, 3 * 20).reshape(3, 20, 1, 1).repeat(5, axis=-1).astype(np.float32)
    fitted = datasets.fit_images(x, (10, 1, 5))
    assert fitted.shape == (3, 10, 1, 5)
    # The same series laid out as a row (1, T, C) for a model whose time runs along w.
    np.testing.assert_allclose(datasets.fit_images(x, (1, 10, 5))[:, 0], fitted[:, :, 0])
    with pytest.raises(UserError, match="5 channels per time step .* has 6"):
        datasets.fit_images(x, (10, 1, 6))
    with pytest.raises(UserError, match="is an image"):
        datasets.fit_images(x, (16, 16, 1))
    images = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(UserError, match="holds images 8x8x1: use a series source"):
        datasets.fit_images(images, (10, 1, 5))
    with pytest.raises(UserError, match="model input has 6 channels; images convert"):
        datasets.fit_images(images, (8, 8, 6))


def test_sktime_sources_have_the_documented_shapes():
    vowels = datasets.load_source("japanese-vowels")
    assert vowels.x.shape == (640, 29, 1, 12) and vowels.num_classes == 9
    # The speaker halves split the classes and keep every utterance.
    a, b = datasets.load_source("japanese-vowels-a"), datasets.load_source("japanese-vowels-b")
    assert a.class_names == ["1", "2", "3", "4", "5"] and b.class_names == ["6", "7", "8", "9"]
    assert len(a.y) + len(b.y) == 640
    assert np.array_equal(np.unique(a.y), np.arange(5)) and np.array_equal(
        np.unique(b.y), [0, 1, 2, 3]
    )
    motions = datasets.load_source("basic-motions")
    assert motions.x.shape == (80, 100, 1, 6) and motions.num_classes == 4
    assert np.bincount(motions.y).tolist() == [20, 20, 20, 20]
    for data in (vowels, motions):
        assert data.x.min() == 0.0 and data.x.max() == 1.0


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "micropeft", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess, needle: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def series_model(tmp_path_factory):
    """prepare-model on a 1-D MobileNetV1 (16 x 1 x 12, not pretrained: --pretrain-epochs 0)."""
    folder = tmp_path_factory.mktemp("series")
    env = {"MICROPEFT_CACHE": str(folder / "cache")}
    done = _cli(
        "prepare-model",
        "--arch",
        "mobilenet_v1_1d",
        "--size",
        "16",
        "--pretrain-epochs",
        "0",
        "--num-classes",
        "4",
        "--config",
        "lora_r4",
        "--out",
        str(folder / "model"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return folder, done.stdout, env


def test_prepare_model_takes_a_series_model(series_model):
    folder, stdout, _ = series_model
    summary = json.loads((folder / "model" / "summary.json").read_text())
    assert summary["input_shape"] == [16, 1, 12]  # japanese-vowels' 12 channels by default
    assert summary["tflm_check_max_abs_diff"] <= convert.MAX_TFLM_DIFF
    assert summary["pretrain"]["dataset"] == "japanese-vowels"
    assert "input 16x1x12" in stdout
    # lora_r4's "last:4:pointwise": the 1x1 convs of the 1-D net, as on images.
    graph = tflite_graph.graph_from_tflite((folder / "model" / "full.tflite").read_bytes())
    lora = [t for t in summary["trainable_layers"] if "lora" in t["methods"]]
    assert len(lora) == 4
    for entry in lora:
        layer = graph.layers[entry["index"]]
        assert layer.kernel == (1, 1) and layer.op.name == "CONV_2D"
    kernels = {layer.kernel for layer in graph.layers if layer.op.name == "DEPTHWISE_CONV_2D"}
    assert kernels == {(3, 1)}


def test_prepare_dataset_fits_series_to_the_model(series_model, tmp_path):
    folder, _, env = series_model
    model = str(folder / "model" / "model.tflite")
    done = _cli("prepare-dataset", "--model", model, "--source", "japanese-vowels-b",
                "--out", str(tmp_path / "d"), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert meta["shape"] == [16, 1, 12] and meta["train"] + meta["test"] == 263
    blob = datasets.parse_dataset_blob((tmp_path / "d" / "dataset.bin").read_bytes())
    assert blob.x_train.shape[1:] == (16, 1, 12) and blob.num_classes == 4
    _one_line(
        _cli(
            "prepare-dataset",
            "--model",
            model,
            "--source",
            "digits",
            "--out",
            str(tmp_path / "e"),
            env=env,
        ),  # fmt: skip
        "classes but the model outputs 4",
    )
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((8, 16, 3, 12)), y=np.arange(8) % 4)
    _one_line(
        _cli(
            "prepare-dataset",
            "--model",
            model,
            "--source",
            str(bad),
            "--out",
            str(tmp_path / "f"),
            env=env,
        ),  # fmt: skip
        "reads 'x' shaped (N, T, C) or (N, T, 1, C)",
    )
    np.savez(bad, x=np.zeros((8, 16, 6)), y=np.arange(8) % 4)
    _one_line(
        _cli(
            "prepare-dataset",
            "--model",
            model,
            "--source",
            str(bad),
            "--out",
            str(tmp_path / "g"),
            env=env,
        ),  # fmt: skip
        "6 channels per time step",
    )
    assert not any((tmp_path / n).exists() for n in "efg")


def test_image_model_refuses_series_in_one_line(tmp_path):
    done = _cli("prepare-model", "--arch", "tiny_cnn", "--size", "32", "--pretrain-dataset",
                "basic-motions", "--pretrain-epochs", "0", "--out", str(tmp_path / "m"),
                env={"MICROPEFT_CACHE": str(tmp_path / "cache")})  # fmt: skip
    _one_line(done, "model input 32x32x1 is an image")


@pytest.mark.parametrize("arch", models.SERIES_ARCHS)
def test_1d_mobilenets_convert_and_match_tflm(arch):
    model = models.build(arch, 0.35, 24, 5, 3, imagenet=False)
    assert models.input_shape(model) == (24, 1, 5)
    rep = np.random.default_rng(0).uniform(0, 1, (16, 24, 1, 5)).astype(np.float32)
    full = convert.to_int8_tflite(model, rep)
    graph = tflite_graph.graph_from_tflite(full)
    for layer in graph.layers:
        if layer.op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert layer.kernel in ((3, 1), (1, 1)), layer.name
    if arch == "mobilenet_v2_1d":
        assert any(layer.op.name == "ADD" for layer in graph.layers)
    samples = np.random.default_rng(1).integers(-128, 128, (3, 24, 1, 5)).astype(np.int8)
    assert convert.check_tflm_matches_tflite(full, samples).max_abs_diff <= 1


def test_1d_mobilenet_errors_are_user_errors():
    with pytest.raises(UserError, match="too short"):
        models.build("mobilenet_v1_1d", 0.25, 4, 3, 2, imagenet=False)
    with pytest.raises(UserError, match="no ImageNet weights"):
        models.build("mobilenet_v2_1d", 0.35, 32, 3, 2, imagenet=True)


def _tiny_1d_keras_model():
    """Every 1-D layer kind: conv (5, 1) stride (2, 1), depthwise (3, 1) strides 1 and
    (2, 1) (which TensorFlow's own depthwise kernel refuses: the reference strides it by
    slicing), pointwise convs, pooling and a dense head, on 7 channels."""
    init = tf.keras.initializers.GlorotUniform(seed=0)
    layers = tf.keras.layers
    inputs = tf.keras.Input((20, 1, 7))
    x = layers.Conv2D(8, (5, 1), strides=(2, 1), padding="same", kernel_initializer=init)(inputs)
    x = layers.ReLU(6.0)(x)
    x = layers.DepthwiseConv2D((3, 1), padding="same", depthwise_initializer=init)(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(12, 1, kernel_initializer=init)(x)
    x = layers.ReLU()(x)
    x = layers.DepthwiseConv2D((3, 1), strides=(2, 1), padding="same", depthwise_initializer=init)(
        x
    )
    x = layers.ReLU(6.0)(x)
    x = layers.Conv2D(8, 1, kernel_initializer=init)(x)
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    logits = layers.Dense(4, kernel_initializer=init, name="logits")(x)
    return tf.keras.Model(inputs, logits)


@pytest.fixture(scope="module")
def tiny_1d():
    """The int8 1-D model, 12 samples and their labels (test_training_equivalence's form)."""
    tf.keras.utils.set_random_seed(0)
    return _int8_with_samples(_tiny_1d_keras_model(), (20, 1, 7))


def _int8_with_samples(model, sample_shape):
    """The model with a sharpened head (confident logits) converted to int8 on 32 random
    samples, and 12 of them with random labels of its 4 classes."""
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 10.0, np.linspace(-0.3, 0.3, bias.size).astype(np.float32)])
    rng = np.random.default_rng(0)
    samples = rng.uniform(0, 1, (32, *sample_shape)).astype(np.float32)
    labels = rng.integers(0, 4, len(samples)).astype(np.int32)
    return convert.to_int8_tflite(model, samples), samples[:12], labels[:12]


@pytest.mark.parametrize("opt_case", ["sgd", "adam"])
@pytest.mark.parametrize(
    "method_case", ["full", "bitfit", "scale_shift", "lora", "sparse", "dora", "ia3"]
)
@pytest.mark.parametrize("act_cache", ["f32", "s8"])
def test_c_runtime_matches_reference_on_a_1d_net(tiny_1d, method_case, opt_case, act_cache):
    """Forward, every gradient, loss and parameters after each step, C against the
    TensorFlow reference (GradientTape), through (k, 1) kernels and (s, 1) strides."""
    from test_training_equivalence import _compare_steps, _setup, _steps

    graph = tflite_graph.graph_from_tflite(tiny_1d[0])
    assert graph.layers[0].kernel == (5, 1) and graph.layers[0].stride == (2, 1)
    assert graph.layers[3].op.name == "DEPTHWISE_CONV_2D" and graph.layers[3].stride == (2, 1)
    _compare_steps(*_setup(tiny_1d, method_case, opt_case, act_cache=act_cache), _steps(act_cache))


def _tiny_conv1d_keras_model(length: int = 24, channels: int = 5):
    """A Keras Conv1D net (TFLite: EXPAND_DIMS as RESHAPE, CONV_2D with (1, k) kernels,
    a RESHAPE back to 3-D and MEAN over time): conv stride 2, depthwise 1-D convs."""
    init = tf.keras.initializers.GlorotUniform(seed=0)
    layers = tf.keras.layers
    inputs = tf.keras.Input((length, channels))
    x = layers.Conv1D(8, 5, strides=2, padding="same", activation="relu6", kernel_initializer=init)(
        inputs
    )
    x = layers.DepthwiseConv1D(3, padding="same", activation="relu", depthwise_initializer=init)(x)
    x = layers.Conv1D(12, 1, activation="relu", kernel_initializer=init)(x)
    x = layers.DepthwiseConv1D(
        3, strides=2, padding="same", activation="relu", depthwise_initializer=init
    )(x)
    x = layers.Conv1D(8, 1, activation="relu", kernel_initializer=init)(x)
    x = layers.GlobalAveragePooling1D()(x)
    logits = layers.Dense(4, kernel_initializer=init, name="logits")(x)
    return tf.keras.Model(inputs, logits)


@pytest.fixture(scope="module")
def tiny_conv1d():
    tf.keras.utils.set_random_seed(0)
    return _int8_with_samples(_tiny_conv1d_keras_model(), (1, 24, 5))  # (1, T, C) rows


def test_keras_conv1d_model_reads_as_a_row_of_2d_convs(tiny_conv1d):
    graph = tflite_graph.graph_from_tflite(tiny_conv1d[0])
    convs = [(la.op.name, la.kernel, la.stride) for la in graph.layers if "CONV" in la.op.name]
    assert convs == [
        ("CONV_2D", (1, 5), (1, 2)),
        ("DEPTHWISE_CONV_2D", (1, 3), (1, 1)),
        ("CONV_2D", (1, 1), (1, 1)),
        ("DEPTHWISE_CONV_2D", (1, 3), (2, 2)),
        ("CONV_2D", (1, 1), (1, 1)),
    ]
    assert graph.tensors[graph.input].shape == (1, 24, 5)
    assert graph.layers[-2].op.name == "MEAN" and graph.layers[-2].kernel == (1, 6)
    samples = np.random.default_rng(1).integers(-128, 128, (3, 1, 24, 5)).astype(np.int8)
    assert convert.check_tflm_matches_tflite(tiny_conv1d[0], samples).max_abs_diff <= 1


@pytest.mark.parametrize("method_case", ["full", "lora", "ia3", "sparse", "lora_bitfit_head"])
def test_c_runtime_matches_reference_on_a_keras_conv1d_model(tiny_conv1d, method_case):
    from test_training_equivalence import _compare_steps, _setup, _steps

    _compare_steps(*_setup(tiny_conv1d, method_case, "adam", act_cache="s8"), _steps("s8"))


def test_prepare_model_and_dataset_take_a_keras_conv1d_model(tmp_path):
    """--keras with a Conv1D model (calibrated on basic-motions' 6 channels), then
    prepare-dataset fits the series to its (1, T, C) input."""
    keras_file = tmp_path / "conv1d.keras"
    _tiny_conv1d_keras_model(32, 6).save(keras_file)
    env = {"MICROPEFT_CACHE": str(tmp_path / "cache")}
    done = _cli("prepare-model", "--keras", str(keras_file), "--method", "lora",
                "--pretrain-dataset", "basic-motions", "--out", str(tmp_path / "m"),
                env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["input_shape"] == [1, 32, 6] and summary["num_classes"] == 4
    done = _cli("prepare-dataset", "--model", str(tmp_path / "m" / "model.tflite"),
                "--source", "basic-motions", "--out", str(tmp_path / "d"), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    blob = datasets.parse_dataset_blob((tmp_path / "d" / "dataset.bin").read_bytes())
    assert blob.x_train.shape[1:] == (1, 32, 6) and len(blob.y_train) + len(blob.y_test) == 80


def test_series_sources_need_sktime_in_one_line(monkeypatch):
    """Without sktime the built-in series sources say how to install it."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sktime" else real(name, *a)
    )
    with pytest.raises(UserError, match="pip install --no-deps sktime"):
        datasets.load_source("basic-motions")


def test_sensor_task_quick_bench_runs_end_to_end(tmp_path):
    """`micropeft bench --task vowels-new-speakers --quick`: every quick method trains the
    1-D model in C and TensorFlow, on the split that the .ts files' own counts predict."""
    from micropeft.eval import tasks

    out = tmp_path / "bench"
    env = {"MICROPEFT_CACHE": str(tmp_path / "cache")}
    done = _cli("bench", "--task", "vowels-new-speakers", "--quick", "--no-cm4", "--no-scratch",
                "--out", str(out), env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = load_results(out / "results.json")  # the one setting of the file
    # Utterances of speakers 6-9 counted straight from sktime's files (label after the
    # last ':' of each data line), then the documented 30 % stratified test split.
    folder = datasets._sktime_folder("JapaneseVowels")
    count = 0
    for part in ("TRAIN", "TEST"):
        text = (folder / f"JapaneseVowels_{part}.ts").read_text().split("@data")[1]
        labels = [line.rsplit(":", 1)[-1].strip() for line in text.splitlines() if line.strip()]
        count += sum(label in {"6", "7", "8", "9"} for label in labels)
    n_test = round(count * 0.3)
    assert f"{count - n_test} training samples (of {count - n_test})" in results["setup"]["target"]
    assert f"{n_test} test samples (of {n_test})" in results["setup"]["target"]
    ran = {(r["method"], r["impl"]) for r in results["runs"]}
    for method in tasks.QUICK_METHODS:
        assert {(method, "c"), (method, "tf")} <= ran
    for run in results["runs"]:
        if run["impl"] == "c" and run["method"] in ("last_layer", "lora_r4"):
            assert 0.0 <= run["first_step_param_diff"] < 1e-4, run["key"]
    model = (out / "artifacts" / "model.tflite").read_bytes()
    assert tflite_graph.input_info(model).shape == (32, 1, 12)
    assert tflite_graph.output_classes(model) == 4
    assert "vowels-new-speakers" in (out / "report.md").read_text()


def test_series_augmentation_shifts_time_only_with_edge_values():
    """Each augmented series is the original moved by at most `shift` steps, its ends
    repeating the edge value; no flip, channels untouched."""
    t = np.arange(10, dtype=np.float32)
    x = np.stack([t, 100 + t], axis=-1)[None, :, None, :].repeat(50, axis=0)  # (50, 10, 1, 2)
    out = models._augment(x, 2, 0.0, np.random.default_rng(0))
    assert out.shape == x.shape
    seen = set()
    for series in out[:, :, 0, 0]:
        shifts = [d for d in range(-2, 3) if np.array_equal(series, np.clip(t + d, 0, 9))]
        assert len(shifts) == 1, series
        seen.add(shifts[0])
    assert seen == {-2, -1, 0, 1, 2}
    np.testing.assert_array_equal(out[..., 1], out[..., 0] + 100)
