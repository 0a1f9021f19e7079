"""Recipes: the shipped YAML files that bench measures and `prepare-model --config NAME`
builds, HF PEFT's keys mapped onto the methods, and `micropeft layers`.

The layer listing is checked against the model's operators as TensorFlow Lite's own
interpreter reads them; the HF PEFT mapping against hand-marked layers of a small graph;
the bench/prepare-model agreement by running the command the report prints."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from micropeft import cli, formats
from micropeft.errors import UserError
from micropeft.eval import tasks, train
from micropeft.planning import config, methods
from micropeft.prep import tflite_graph
from micropeft.prep.graph import Method
from test_prep_methods import _graph, _marked

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """An int8 MobileNetV1 alpha 0.25, 32x32x1, 10 classes (random weights: the recipes
    and the layer listing depend on the architecture, not on what it learned)."""
    from micropeft.prep import convert, models

    folder = tmp_path_factory.mktemp("mobilenet")
    keras_model = models.build_mobilenet_v1(0.25, 32, 10, channels=1)
    rep = np.random.default_rng(0).random((32, 32, 32, 1)).astype(np.float32)
    path = folder / "model.tflite"
    path.write_bytes(convert.to_int8_tflite(keras_model, rep))
    return path


def _main(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# ---------------------------------------------------------------------------
# The shipped recipes


def test_every_shipped_recipe_is_a_bench_method_and_loads(mobilenet):
    assert config.recipe_names() == sorted(tasks.BENCH_RECIPES)
    assert list(tasks.METHODS) == list(tasks.BENCH_RECIPES)
    graph = tflite_graph.graph_from_tflite(mobilenet.read_bytes())
    for name in config.recipe_names():
        cfg = config.load_config(name)
        assert cfg.label and cfg.description, name
        # bench's view of the recipe is the recipe: same configuration, same marks.
        spec = tasks.METHODS[name]
        bench_cfg = spec.config
        assert bench_cfg == cfg, name
        a = methods.apply_method(tflite_graph.graph_from_tflite(mobilenet.read_bytes()), cfg)
        b = methods.apply_method(graph, bench_cfg)
        assert [lay.methods for lay in a.layers] == [lay.methods for lay in b.layers], name


def test_bench_recipes_mark_the_layers_they_describe(mobilenet):
    # MobileNetV1: 13 depthwise + 13 pointwise convs, a 3x3 stem, and a dense head without
    # bias (read from the model by TFLite's interpreter in test_layers_*).
    graph = tflite_graph.graph_from_tflite(mobilenet.read_bytes())
    pointwise = [i for i, lay in enumerate(graph.layers) if "conv_pw_" in lay.name]
    depthwise = [i for i, lay in enumerate(graph.layers) if "conv_dw_" in lay.name]
    head = len(graph.layers) - 1

    def marks(name):
        marked = methods.apply_method(graph, config.load_config(name))
        return {i: lay.methods for i, lay in enumerate(marked.layers) if lay.methods}

    assert marks("lora_r4") == {
        **{i: Method.LORA for i in pointwise[-4:]},
        head: Method.LAST_LAYER,
    }
    assert marks("dora_r4") == {
        **{i: Method.DORA for i in pointwise[-4:]},
        head: Method.LAST_LAYER,
    }
    assert marks("sparse") == {
        **{i: Method.SPARSE for i in depthwise[-3:]},
        head: Method.LAST_LAYER,
    }
    assert marks("last_layer") == {head: Method.LAST_LAYER}
    weighted = [*pointwise, *depthwise, 0]
    assert marks("bitfit") == {**{i: Method.BITFIT for i in weighted}, head: Method.LAST_LAYER}


@pytest.mark.parametrize(
    ("name", "quantized_forward"),
    [(name, False) for name in tasks.BENCH_RECIPES]
    + [(name, True) for name in ("bitfit", "lora_r4", "ia3")],
)
def test_prepare_model_config_builds_bench_plan(
    name, quantized_forward, mobilenet, tmp_path, capsys, monkeypatch
):
    """The command the report prints, run as given: its plan.bin is, byte for byte, the
    plan bench trains (seed 0) when handed the same model bytes (prepare-model plans for
    the device model it cuts; bench's own plan carries the full model's CRC). The default
    bench's linear schedule over its run (5 epochs of 63 batches, 1,000 samples) travels
    in the command and the plan, and so does bench's --quantized-forward (the plan flag)."""
    monkeypatch.chdir(tmp_path)
    bench = tasks.BenchConfig(quantized_forward=quantized_forward)
    spec = tasks.METHODS[name].for_run(bench, 1000)
    command = shlex.split(spec.prepare_model_command(mobilenet))
    assert command[:2] == ["micropeft", "prepare-model"]
    updates = 5 * 1000 if spec.update == "layer" else 5 * 63
    at = command.index("--lr-decay-steps")
    assert command[at : at + 2] == ["--lr-decay-steps", str(updates)]
    assert ("--quantized-forward" in command) == quantized_forward
    code, out, err = _main(command[1:], capsys)
    assert code == 0, err
    folder = tmp_path / name
    device = (folder / "model.tflite").read_bytes()
    graph = tflite_graph.graph_from_tflite(mobilenet.read_bytes())
    prepared = train.prepare_method(spec, graph, device)
    bench_plan = spec.plan(prepared.graph, device, seed=0)
    assert bench_plan.to_bytes() == (folder / "plan.bin").read_bytes()
    header = formats.PLAN_HEADER.unpack(bench_plan.to_bytes())
    assert header["lr_decay_steps"] == updates
    flag = int(formats.PlanFlag.QUANTIZED_FORWARD)
    assert (header["flags"] & flag != 0) == quantized_forward
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["split_layer"] == prepared.split_layer
    assert summary["trainable_parameters"] == bench_plan.trainable_parameters
    assert summary["method"]["label"] == spec.label
    # bench's plan of the full model differs only in the model it names.
    full_plan = spec.plan(prepared.graph, mobilenet.read_bytes(), seed=0)
    assert len(full_plan.to_bytes()) == len(bench_plan.to_bytes())


# ---------------------------------------------------------------------------
# HF PEFT's vocabulary


def _cfg(tmp_path, text):
    file = tmp_path / "r.yaml"
    file.write_text(text)
    return config.load_config(file)


def test_modules_to_save_head_is_last_layer_and_other_modules_are_sparse(tmp_path):
    cfg = _cfg(tmp_path, "r: 2\ntarget_modules: [pw2]\nmodules_to_save: [head]\n")
    assert cfg.methods == ["lora", "last_layer"]
    assert _marked(methods.apply_method(_graph(), cfg)) == {
        "pw2": Method.LORA,
        "fc": Method.LAST_LAYER,
    }
    cfg = _cfg(tmp_path, "r: 2\ntarget_modules: [pw2]\nmodules_to_save: [head, dw1]\n")
    assert cfg.methods == ["lora", "last_layer", "sparse"]
    assert _marked(methods.apply_method(_graph(), cfg)) == {
        "dw1": Method.SPARSE,
        "pw2": Method.LORA,
        "fc": Method.LAST_LAYER,
    }


def test_bias_all_and_lora_only_are_bitfit(tmp_path):
    # bias "all": bitfit on every layer with a bias (the fc head has none).
    cfg = _cfg(tmp_path, "r: 2\ntarget_modules: [pw2, fc]\nbias: all\n")
    assert _marked(methods.apply_method(_graph(), cfg)) == {
        "conv0": Method.BITFIT,
        "dw1": Method.BITFIT,
        "pw1": Method.BITFIT,
        "dw2": Method.BITFIT,
        "pw2": Method.LORA | Method.BITFIT,
        "fc": Method.LORA,
    }
    # "lora_only": the biases of the layers LoRA adapts (fc has none to train).
    cfg = _cfg(tmp_path, "r: 2\ntarget_modules: [pw2, fc]\nbias: lora_only\n")
    assert _marked(methods.apply_method(_graph(), cfg)) == {
        "pw2": Method.LORA | Method.BITFIT,
        "fc": Method.LORA,
    }
    cfg = _cfg(tmp_path, "r: 2\nbias: none\n")
    assert cfg.methods == ["lora"]


def test_hf_adapter_config_keys_at_their_defaults_load(tmp_path):
    # The keys of an HF PEFT adapter_config.json (LoRA), at HF's defaults.
    text = json.dumps(
        {
            "peft_type": "LORA",
            "task_type": "FEATURE_EXTRACTION",
            "base_model_name_or_path": None,
            "r": 2,
            "lora_alpha": 4,
            "lora_dropout": 0.0,
            "fan_in_fan_out": False,
            "bias": "none",
            "use_rslora": False,
            "init_lora_weights": True,
            "target_modules": ["pw1"],
            "modules_to_save": ["head"],
            "use_dora": False,
            "rank_pattern": {},
            "alpha_pattern": {},
        }
    )
    cfg = _cfg(tmp_path, text)
    assert cfg.methods == ["lora", "last_layer"] and cfg.r == 2 and cfg.lora_alpha == 4.0
    assert _cfg(tmp_path, "peft_type: IA3\ntarget_modules: [pw1]\n").methods == ["ia3"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("r: 2\nrank: 4\n", r"unknown key 'rank': neither micropeft's nor HF PEFT's"),
        ("method: lora\nlora_dropout: 0.1\n", r"HF PEFT's lora_dropout is not supported"),
        ("method: lora\nbias: some\n", r"bias must be 'none', 'all' or 'lora_only'"),
        ("method: bitfit\nbias: all\n", r"bias 'all'.* and method bitfit both"),
        ("method: ia3\nbias: lora_only\n", r"'lora_layers' needs lora or dora"),
        ("peft_type: PREFIX_TUNING\n", r"peft_type 'PREFIX_TUNING' is not supported"),
        ("peft_type: IA3\nmethod: lora\n", r"peft_type IA3 but method 'lora'"),
        ("method: sparse\nmodules_to_save: [dw1]\n", r"modules_to_save and method sparse"),
    ],
)
def test_bad_recipes_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message) as error:
        methods.apply_method(_graph(), _cfg(tmp_path, text))
    assert "\n" not in str(error.value)


def test_unknown_recipe_name_lists_the_known_ones():
    with pytest.raises(UserError) as error:
        config.load_config("lora_r5")
    message = str(error.value)
    assert message.startswith("unknown recipe 'lora_r5'; known recipes: ")
    assert all(name in message for name in tasks.BENCH_RECIPES)


# ---------------------------------------------------------------------------
# micropeft layers


def _interpreter_ops(model: bytes):
    """(op name, output tensor name, output shape, parameters, weight shape, has bias) per
    operator, from TensorFlow Lite's own interpreter."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=model)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = []
    for op in interpreter._get_ops_details():
        inputs = [tensors[i] for i in op["inputs"] if i >= 0]
        weighted = op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        consts = inputs[1:] if weighted else []
        out = tensors[op["outputs"][0]]
        ops.append(
            (
                op["op_name"],
                out["name"],
                tuple(int(d) for d in out["shape"][1:]),
                sum(int(np.prod(t["shape"])) for t in consts),
                tuple(int(d) for d in consts[0]["shape"]) if consts else None,
                len(consts) == 2,
            )
        )
    return ops


def test_layers_lists_the_model_operators(mobilenet, capsys):
    from micropeft.commands import layers

    model = mobilenet.read_bytes()
    ops = _interpreter_ops(model)
    rows = layers.rows(tflite_graph.graph_from_tflite(model))
    assert len(rows) == len(ops) == 29
    for i, (row, (op, name, shape, params, weight_shape, has_bias)) in enumerate(
        zip(rows, ops, strict=True)
    ):
        assert row["index"] == i
        assert str(row["op"]).split()[0] == op
        assert row["name"] == name
        out = tuple(int(d) for d in str(row["output"]).split("x"))
        assert int(np.prod(out)) == int(np.prod(shape)) and out[-1] == shape[-1]
        assert row["parameters"] == params
        # The placement rules as the method docs state them: LoRA/DoRA on dense layers and
        # 1x1 convolutions (MobileNetV1's are all stride 1), BitFit where a bias exists,
        # the head (last dense) for last_layer, nothing on an operator without weights.
        lora = op == "FULLY_CONNECTED" or (op == "CONV_2D" and weight_shape[1:3] == (1, 1))
        assert ("lora" in row["methods"]) == lora and ("dora" in row["methods"]) == lora
        assert ("bitfit" in row["methods"]) == has_bias
        assert ("last_layer" in row["methods"]) == (i == len(ops) - 1)
        if weight_shape is None:
            assert row["methods"] == [] and row["parameters"] == 0
        else:
            assert {"full", "sparse", "ia3", "scale_shift"} <= set(row["methods"])

    code, out, err = _main(["layers", mobilenet], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["idx", "name", "op"]
    assert len(lines) == 1 + len(ops) + 1
    first = ops[2]  # the first pointwise conv
    assert re.match(
        rf"\s*2\s+{re.escape(first[1].split(';')[0])}\s+CONV_2D 1x1/1\s+.*\s{first[3]:,d}\s",
        lines[3],
    ), lines[3]
    assert "last_layer" in lines[-2] and "head" in lines[-2]


def test_layers_takes_a_prepared_folder(mobilenet, tmp_path, capsys):
    code, _, err = _main(
        ["prepare-model", "--tflite", mobilenet, "--config", "lora_r4", "--out", tmp_path / "m"],
        capsys,
    )
    assert code == 0, err
    code, from_folder, err = _main(["layers", tmp_path / "m"], capsys)
    assert code == 0, err
    _, from_file, _ = _main(["layers", mobilenet], capsys)
    assert from_folder == from_file
    # The device model (cut at the split) is refused, naming the whole one beside it.
    code, _, err = _main(["layers", tmp_path / "m" / "model.tflite"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "device model" in err and str(tmp_path / "m" / "full.tflite") in err


def test_docs_name_every_recipe_and_their_examples_load():
    text = (REPO / "docs" / "recipes.md").read_text()
    assert all(f"`{name}`" in text for name in tasks.BENCH_RECIPES)
    examples = sorted((REPO / "docs" / "configs").glob("*.yaml"))
    assert examples
    for file in examples:
        assert config.load_config(file).methods, file
    # Without adapters: only what bias and modules_to_save name.
    cfg = config.config_from_dict({"method": [], "bias": "all", "modules_to_save": ["head"]})
    assert cfg.methods == ["bitfit", "last_layer"] and cfg.targets_for("bitfit") == ["all"]
