"""Method configuration: target selection, flags per layer, YAML and flags.

The graph is written by hand here (a MobileNet-like tail), so every expected
selection is known without running the code under test."""

from __future__ import annotations

import argparse

import pytest

from micropeft.errors import UserError
from micropeft.planning import config, methods
from micropeft.prep.graph import ArrayRef, Graph, Layer, Method, Op, QuantParams, TensorInfo

Q = QuantParams(0.1, 0)


def _ref(n: int, dtype: str = "int8") -> ArrayRef:
    return ArrayRef(0, n, dtype, 0, 1)


def _graph() -> Graph:
    tensors = [TensorInfo(f"t{i}", (4, 4, 8), Q) for i in range(9)]
    tensors[7] = TensorInfo("t7", (1, 1, 8), Q)
    tensors[8] = TensorInfo("t8", (1, 1, 3), Q)
    L = Layer
    layers = [
        L(
            "conv0",
            Op.CONV_2D,
            [0],
            1,
            kernel=(3, 3),
            stride=(2, 2),
            weights=_ref(9),
            bias=_ref(8, "int32"),
        ),
        L(
            "dw1",
            Op.DEPTHWISE_CONV_2D,
            [1],
            2,
            kernel=(3, 3),
            weights=_ref(72),
            bias=_ref(8, "int32"),
        ),
        L("pw1", Op.CONV_2D, [2], 3, weights=_ref(64), bias=_ref(8, "int32")),
        L(
            "dw2",
            Op.DEPTHWISE_CONV_2D,
            [3],
            4,
            kernel=(3, 3),
            weights=_ref(72),
            bias=_ref(8, "int32"),
        ),
        L("pw2", Op.CONV_2D, [4], 5, weights=_ref(64), bias=_ref(8, "int32")),
        L("add", Op.ADD, [5, 3], 6),
        L("mean", Op.MEAN, [6], 7, kernel=(4, 4)),
        L("fc", Op.FULLY_CONNECTED, [7], 8, weights=_ref(24)),  # no bias
    ]
    return Graph(tensors, layers, 0, 8)


def _marked(graph: Graph) -> dict[str, Method]:
    return {layer.name: layer.methods for layer in graph.layers if layer.methods}


def test_lora_default_targets_pointwise_and_dense_only():
    g = methods.apply_method(_graph(), methods.MethodConfig(method="lora", r=2, lora_alpha=4))
    assert _marked(g) == {"pw1": Method.LORA, "pw2": Method.LORA, "fc": Method.LORA}
    fc = g.layers[-1]
    assert fc.lora_rank == 2 and fc.lora_alpha == 4.0
    assert g.layers[1].lora_rank == 0


def test_lora_on_a_depthwise_layer_is_a_clear_error():
    cfg = methods.MethodConfig(method="lora", target_modules=["dw1"])
    with pytest.raises(UserError, match=r"dw1.*cannot carry it: LoRA needs a 1x1"):
        methods.apply_method(_graph(), cfg)


def test_dora_default_targets_pointwise_and_dense_with_the_rank():
    cfg = methods.MethodConfig(method="dora", r=3, lora_alpha=6)
    g = methods.apply_method(_graph(), cfg)
    assert _marked(g) == {"pw1": Method.DORA, "pw2": Method.DORA, "fc": Method.DORA}
    assert (g.layers[2].lora_rank, g.layers[2].lora_alpha) == (3, 6.0)
    assert g.layers[1].lora_rank == 0


def test_dora_on_a_depthwise_layer_or_beside_another_method_is_a_clear_error():
    cfg = methods.MethodConfig(method="dora", target_modules=["dw1"])
    with pytest.raises(UserError, match=r"dw1.*cannot carry it: DoRA needs a 1x1"):
        methods.apply_method(_graph(), cfg)
    cfg = methods.MethodConfig(method=["dora", "last_layer"])  # dora's defaults take the head
    with pytest.raises(UserError, match=r"layer fc: dora and last_layer on one layer"):
        methods.apply_method(_graph(), cfg)
    with pytest.raises(UserError, match="lora and dora"):
        methods.apply_method(_graph(), methods.MethodConfig(method=["lora", "dora"]))


def test_ia3_all_takes_every_layer_with_weights_and_excludes_scale_shift():
    g = methods.apply_method(_graph(), methods.MethodConfig(method="ia3"))
    assert _marked(g) == {n: Method.IA3 for n in ("conv0", "dw1", "pw1", "dw2", "pw2", "fc")}
    cfg = methods.MethodConfig(method=["ia3", "scale_shift"])
    with pytest.raises(UserError, match="ia3 and scale_shift both scale"):
        methods.apply_method(_graph(), cfg)


def test_bitfit_all_skips_layers_without_bias_and_full_takes_every_weight():
    g = methods.apply_method(_graph(), methods.MethodConfig(method="bitfit"))
    assert set(_marked(g)) == {"conv0", "dw1", "pw1", "dw2", "pw2"}
    g = methods.apply_method(_graph(), methods.MethodConfig(method="full"))
    assert set(_marked(g)) == {"conv0", "dw1", "pw1", "dw2", "pw2", "fc"}
    assert g.layers[0].trains_weight and g.layers[0].trains_bias
    assert not g.layers[-1].trains_bias  # the dense layer has no bias


def test_last_layer_is_the_head():
    g = methods.apply_method(_graph(), methods.MethodConfig(method="last_layer"))
    assert _marked(g) == {"fc": Method.LAST_LAYER}


def test_combination_with_per_method_targets():
    cfg = methods.MethodConfig(
        method=["lora", "bitfit", "last_layer"],
        target_modules={"lora": ["last:1:pointwise"], "bitfit": [r"^dw\d$"]},
    )
    g = methods.apply_method(_graph(), cfg)
    assert _marked(g) == {
        "dw1": Method.BITFIT,
        "dw2": Method.BITFIT,
        "pw2": Method.LORA,
        "fc": Method.LAST_LAYER,
    }


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([-1], {"fc"}),
        (["2", "4"], {"pw1", "pw2"}),
        (["last:2"], {"pw2", "fc"}),
        (["depthwise"], {"dw1", "dw2"}),
        (["conv"], {"conv0", "pw1", "pw2"}),
        (["head"], {"fc"}),
        (["pw"], {"pw1", "pw2"}),  # a regular expression
    ],
)
def test_target_selectors(targets, expected):
    cfg = methods.MethodConfig(method="sparse", target_modules=targets)
    assert set(_marked(methods.apply_method(_graph(), cfg))) == expected


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (methods.MethodConfig(method="dropout"), "unknown method"),
        (methods.MethodConfig(method="sparse", target_modules=["nope"]), "matches no layer"),
        (methods.MethodConfig(method="sparse", target_modules=[99]), "out of range"),
        (methods.MethodConfig(method="sparse", target_modules=["mean"]), "has no weights"),
        (methods.MethodConfig(method="lora", r=0), "rank"),
        (methods.MethodConfig(method="lora", act_cache="f16"), "act_cache"),
    ],
)
def test_bad_configurations(cfg, message):
    with pytest.raises(UserError, match=message):
        methods.apply_method(_graph(), cfg)


def test_hf_use_dora_turns_lora_into_dora(tmp_path):
    file = tmp_path / "d.yaml"
    file.write_text(
        "method: [lora, last_layer]\nuse_dora: true\nr: 2\n"
        "target_modules: {lora: [last:1:pointwise]}\n"
    )
    cfg = config.load_config(file)
    assert cfg.methods == ["dora", "last_layer"]
    assert _marked(methods.apply_method(_graph(), cfg)) == {
        "pw2": Method.DORA,
        "fc": Method.LAST_LAYER,
    }


def test_hf_feedforward_modules_scale_the_input_of_those_ia3_targets(tmp_path):
    """HF PEFT IA3Config: target_modules get IA3, those also in feedforward_modules scale
    their input (ia3_input) instead of their output; feedforward_modules must be a subset."""
    file = tmp_path / "i.yaml"
    file.write_text(
        "peft_type: IA3\ntarget_modules: [pw1, pw2, fc]\nfeedforward_modules: [fc, pw2]\n"
    )
    cfg = config.load_config(file)
    assert cfg.methods == ["ia3"] and cfg.feedforward_modules == ["fc", "pw2"]
    assert _marked(methods.apply_method(_graph(), cfg)) == {
        "pw1": Method.IA3,
        "pw2": Method.IA3_INPUT,
        "fc": Method.IA3_INPUT,
    }
    # Keywords and regular expressions as in target_modules; the default targets ("all").
    cfg = config.config_from_dict({"method": "ia3", "feedforward_modules": "depthwise"})
    marked = _marked(methods.apply_method(_graph(), cfg))
    assert marked == {
        "conv0": Method.IA3,
        "dw1": Method.IA3_INPUT,
        "pw1": Method.IA3,
        "dw2": Method.IA3_INPUT,
        "pw2": Method.IA3,
        "fc": Method.IA3,
    }
    # Round trip through to_dict (what --config with flags on top does).
    assert config.config_from_dict(cfg.to_dict()).feedforward_modules == "depthwise"
    # The flag.
    parser = argparse.ArgumentParser()
    config.add_method_arguments(parser)
    args = parser.parse_args(["--method", "ia3", "--feedforward-modules", "fc,pw1"])
    marked = _marked(methods.apply_method(_graph(), config.config_from_args(args)))
    assert marked["fc"] == marked["pw1"] == Method.IA3_INPUT and marked["pw2"] == Method.IA3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"method": "ia3", "target_modules": ["pw1"], "feedforward_modules": ["fc"]},
            r"feedforward_modules must be a subset of ia3's target_modules.*layer\(s\) fc",
        ),
        (
            {"method": "lora", "feedforward_modules": ["fc"]},
            "feedforward_modules.*add ia3 to the method list",
        ),
        (
            {"method": ["ia3", "ia3_input"], "feedforward_modules": ["fc"]},
            "feedforward_modules and method ia3_input",
        ),
        (
            {"method": ["ia3", "last_layer"], "feedforward_modules": ["head"]},
            r"layer fc: ia3_input .* and last_layer on one layer are not supported",
        ),
        (
            {"method": ["ia3_input", "lora"], "target_modules": {"ia3_input": ["pw1"]}},
            r"layer pw1: ia3_input .* and lora on one layer",
        ),
        (
            {"method": ["ia3_input", "ia3"], "target_modules": ["pw1"]},
            r"layer pw1: ia3_input .* and ia3 on one layer",
        ),
    ],
)
def test_feedforward_modules_refusals(data, message):
    with pytest.raises(UserError, match=message):
        methods.apply_method(_graph(), config.config_from_dict(data))


def test_ia3_input_alone_takes_every_layer_with_weights():
    g = methods.apply_method(_graph(), methods.MethodConfig(method="ia3_input"))
    every = ("conv0", "dw1", "pw1", "dw2", "pw2", "fc")
    assert _marked(g) == {n: Method.IA3_INPUT for n in every}


def test_yaml_and_flags(tmp_path):
    file = tmp_path / "m.yaml"
    file.write_text(
        "method: [lora, bitfit]\nr: 8\nram_budget: 160k\nact_cache: s8\n"
        "target_modules: {lora: [fc]}\nlr: 0.05\n"
    )
    cfg = config.load_config(file)
    assert cfg.methods == ["lora", "bitfit"] and cfg.r == 8 and cfg.ram_budget == 160 * 1024
    parser = argparse.ArgumentParser()
    config.add_method_arguments(parser)
    args = parser.parse_args(["--config", str(file), "--r", "2", "--target-modules", "pw1,pw2"])
    cfg = config.config_from_args(args)
    assert cfg.r == 2 and cfg.target_modules == ["pw1", "pw2"] and cfg.lr == 0.05
    g = methods.apply_method(_graph(), cfg)
    assert g.layers[2].methods == Method.LORA | Method.BITFIT
    (tmp_path / "bad.yaml").write_text("method: lora\nrank_typo: 3\n")
    with pytest.raises(UserError, match="unknown key .rank_typo.: neither"):
        config.load_config(tmp_path / "bad.yaml")
    with pytest.raises(UserError, match="not found"):
        config.load_config(tmp_path / "missing.yaml")
    assert config.parse_size("1M") == 1 << 20 and config.parse_size("4096") == 4096
    # int8_backward and quantized_forward (which sets the plan's flag, below): off by
    # default, on from the YAML key or the flag, a bool only.
    for key, not_a_bool in (("int8_backward", "'yes'"), ("quantized_forward", "1")):
        assert getattr(cfg, key) is False
        (tmp_path / f"{key}.yaml").write_text(f"method: bitfit\n{key}: true\n")
        assert getattr(config.load_config(tmp_path / f"{key}.yaml"), key) is True
        flag = "--" + key.replace("_", "-")
        args = parser.parse_args(["--config", str(file), flag])
        assert getattr(config.config_from_args(args), key) is True
        (tmp_path / f"{key}-text.yaml").write_text(f"method: bitfit\n{key}: {not_a_bool}\n")
        with pytest.raises(UserError, match=f"{key} must be true or false"):
            config.load_config(tmp_path / f"{key}-text.yaml")
    with pytest.raises(UserError):
        config.parse_size("lots")
