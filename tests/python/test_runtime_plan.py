"""The planner (plan.py) and the C plan reader agree; the reader refuses bad blobs.

Arena figures: the C reader recomputes the layout itself and refuses a plan
whose stored offsets differ, so a plan that loads AND whose sizes equal the
planner's proves both sides compute the same numbers. Corrupted blobs: each
edit is re-signed with a fresh CRC so that the field check answers.
(Bit flips, truncations and shape bounds: tests/host/test_plan_checks.c; random and
structural mutations under ASan + UBSan: the libFuzzer harnesses in tests/fuzz.)
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from micropeft.errors import UserError
from micropeft.graph import Activation, Method
from micropeft.plan import (
    HEADER_SIZE,
    LAYER_RECORD_SIZE,
    TENSOR_RECORD_SIZE,
    OptimizerConfig,
    build_plan,
    lora_a_init,
)
from micropeft.runtime import LoadedPlan, PeftError, Status, Trainer, load_plan_status
from runtime_fixtures import GraphBuilder, mark, random_graph

OPTIMIZERS = [
    OptimizerConfig("sgd", lr=0.01, momentum=0.9),
    OptimizerConfig("adam", lr=0.001),
    OptimizerConfig("sgd", lr=0.1, momentum=0.0),
]


def test_arena_sizes_agree_with_c_on_200_random_plans():
    kinds = set()
    for seed in range(200):
        graph, model = random_graph(seed)
        opt = OPTIMIZERS[seed % 3]
        cache = "s8" if seed % 2 else "f32"
        plan = build_plan(graph, model, opt, cache, seed=seed)
        loaded = LoadedPlan(model, plan.to_bytes())
        assert loaded.arena_size("train") == plan.arena_bytes("train"), seed
        assert loaded.arena_size("infer") == plan.arena_bytes("infer"), seed
        parts = loaded.breakdown()
        assert parts == plan.breakdown(), seed
        assert sum(v for k, v in parts.items() if k != "total") == parts["total"]
        assert parts["total"] == plan.arena_bytes("train")
        assert loaded.trainable_params() == plan.trainable_parameters > 0
        assert loaded.num_classes() == plan.num_classes
        assert loaded.input_dims() == plan.tensors[0].info.shape
        kinds.update(lay.op.name for lay in graph.layers[plan.split_layer :])
    # The random graphs exercised every operator of the trainable part.
    assert kinds == {
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "ADD",
        "MEAN",
        "AVERAGE_POOL_2D",
        "PAD",
        "RESHAPE",
    }


def _chain(methods: dict[int, Method], act: Activation = Activation.RELU):
    """conv3x3 s2 (8x8x3 -> 4x4x4), depthwise 3x3, conv1x1 (-> 4x4x6), mean, dense(3)."""
    gb = GraphBuilder(11, (8, 8, 3))
    x = gb.conv(gb.input, 4, k=3, s=2, act=Activation.RELU6)
    x = gb.conv(x, 4, k=3, s=1, act=act, depthwise=True)
    x = gb.conv(x, 6, k=1, s=1, act=Activation.RELU)
    x = gb.mean(x)
    logits = gb.fc(x, 3)
    graph, model = gb.graph(logits)
    for index, m in methods.items():
        mark(graph.layers[index], m, rank=2, alpha=4.0)
    return graph, model


def test_breakdown_of_a_hand_counted_plan():
    # BitFit on the depthwise conv and the head, SGD with momentum, f32 cache.
    graph, model = _chain({1: Method.BITFIT, 4: Method.BITFIT})
    plan = build_plan(graph, model, OptimizerConfig("sgd", momentum=0.9), "f32")
    assert plan.split_layer == 1
    # Parameters: the float biases of every layer after the split (4, 6, 3 floats),
    # each padded to 16 bytes: 16 + 32 + 16.
    # Gradients: biases 4 and 3 (16 + 16), plus slots of the largest tensor
    # (4x4x6 floats = 384 bytes): the forward temporaries mean-out and logits
    # take 2 slots, backward holds at most 2 gradients at once.
    # Optimizer: one momentum buffer per trained bias (16 + 16).
    # Cache: the depthwise and 1x1 outputs (ReLU derivative: 256 + 384) and the
    # softmax output (16); the split input is not kept (no weight gradient).
    assert plan.breakdown() == {
        "parameters": 64,
        "gradients": 32 + 2 * 384,
        "optimizer_state": 32,
        "cached_activations": 256 + 384 + 16,
        "scratch": 0,
        "total": 64 + 32 + 768 + 32 + 656,
    }
    assert plan.trainable_parameters == 7
    loaded = LoadedPlan(model, plan.to_bytes())
    assert loaded.breakdown() == plan.breakdown()


def test_int8_cache_is_smaller_and_stages_in_scratch():
    graph, model = _chain({0: Method.FULL, 2: Method.LORA, 4: Method.LAST_LAYER})
    f32 = build_plan(graph, model, OptimizerConfig("adam"), "f32")
    s8 = build_plan(graph, model, OptimizerConfig("adam"), "s8")
    b32, b8 = f32.breakdown(), s8.breakdown()
    assert b8["cached_activations"] < b32["cached_activations"]
    assert b8["scratch"] > b32["scratch"]  # float staging of the int8 tensors
    assert b8["parameters"] == b32["parameters"]
    for p in (f32, s8):
        assert LoadedPlan(model, p.to_bytes()).breakdown() == p.breakdown()


def test_macs_count_what_the_plan_computes():
    graph, model = _chain({2: Method.LORA, 4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("sgd"))
    conv0 = 4 * 4 * 4 * 9 * 3
    dw = 4 * 4 * 4 * 9
    pw = 4 * 4 * 6 * 4
    lora = 16 * (4 * 2 + 2 * 6)
    mean = 4 * 4 * 6
    head = 6 * 3
    macs = plan.macs()
    assert plan.split_layer == 2
    assert macs["prefix_forward"] == conv0 + dw
    assert macs["forward"] == pw + lora + mean + head
    # Head: weight and input gradients; mean: input gradient; 1x1 conv: only the
    # LoRA gradients (dB, B^T g, dA), no input gradient below the split.
    assert macs["backward"] == 2 * head + mean + (2 * 16 * 2 * 6 + 16 * 4 * 2)


def test_split_moves_before_a_residual_that_would_cross_it():
    gb = GraphBuilder(5, (4, 4, 3))
    t1 = gb.conv(gb.input, 3, k=3, s=1)
    t2 = gb.conv(t1, 3, k=1, s=1)
    t3 = gb.conv(t2, 3, k=1, s=1)
    x = gb.add(t1, t3)
    logits = gb.fc(gb.mean(x), 2)
    graph, model = gb.graph(logits)
    mark(graph.layers[2], Method.BITFIT)
    plan = build_plan(graph, model, OptimizerConfig("sgd"))
    # Starting at layer 2 would need t2 and t1; only the model input crosses at 0.
    assert plan.split_layer == 0
    assert plan.input_tensor == graph.input
    assert load_plan_status(model, plan.to_bytes()) == Status.OK
    # Marking the first layer of the block: layer 1 and the add both read t1,
    # a single tensor, so the split stays at layer 1.
    for lay in graph.layers:
        lay.methods = Method.NONE
    mark(graph.layers[1], Method.BITFIT)
    plan = build_plan(graph, model, OptimizerConfig("sgd"))
    assert plan.split_layer == 1 and plan.input_tensor == t1


def test_planner_refuses_what_the_runtime_cannot_do():
    graph, model = _chain({})
    with pytest.raises(UserError, match="nothing to train"):
        build_plan(graph, model, OptimizerConfig("sgd"))
    graph, model = _chain({1: Method.LORA})  # depthwise 3x3
    with pytest.raises(UserError, match="LoRA"):
        build_plan(graph, model, OptimizerConfig("sgd"))
    graph, model = _chain({4: Method.BITFIT})
    with pytest.raises(UserError, match="optimizer"):
        build_plan(graph, model, OptimizerConfig("rmsprop"))
    with pytest.raises(UserError, match="learning rate"):
        build_plan(graph, model, OptimizerConfig("sgd", lr=-1.0))
    with pytest.raises(UserError, match="activation cache"):
        build_plan(graph, model, OptimizerConfig("sgd"), act_cache="f16")


def test_lora_a_is_the_documented_prng():
    graph, model = _chain({2: Method.LORA, 4: Method.LORA})
    plan = build_plan(graph, model, OptimizerConfig("sgd"), seed=1234)
    params = Trainer(model, plan).parameters()
    for index in (2, 4):
        layer = graph.layers[index]
        in_features = 4 if index == 2 else 6
        expected = lora_a_init(1234, index, 2, in_features)
        np.testing.assert_array_equal(params[f"{layer.name}/lora_a"], np.float32(expected))
        bound = 1 / np.sqrt(in_features)
        assert np.all(np.abs(expected) <= bound) and np.std(expected) > 0.2 * bound
        assert not params[f"{layer.name}/lora_b"].any()


# ---- corrupted blobs (each re-signed) ----


def _resign(blob: bytearray) -> bytes:
    total = struct.unpack_from("<I", blob, 8)[0]
    struct.pack_into("<I", blob, 12, zlib.crc32(bytes(blob[16:total])) & 0xFFFFFFFF)
    return bytes(blob)


@pytest.fixture(scope="module")
def sample_plan():
    graph, model = _chain({0: Method.SCALE_SHIFT, 2: Method.LORA, 4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("adam"), "s8")
    return model, plan


def _edit(blob: bytes, offset: int, fmt: str, value: object) -> bytes:
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, value)
    return _resign(b)


def test_each_corruption_has_its_code(sample_plan):
    model, plan = sample_plan
    blob = plan.to_bytes()
    nt = len(plan.tensors)
    layer0 = HEADER_SIZE + nt * TENSOR_RECORD_SIZE
    layer2 = layer0 + 2 * LAYER_RECORD_SIZE
    assert load_plan_status(model, blob) == Status.OK
    cases = {
        "magic": (b"XEFP" + blob[4:], Status.ERR_PLAN_MAGIC),
        "version": (_edit(blob, 4, "<H", 9), Status.ERR_PLAN_VERSION),
        "truncated": (blob[:-1], Status.ERR_PLAN_TRUNCATED),
        "header only": (blob[:HEADER_SIZE], Status.ERR_PLAN_TRUNCATED),
        "length": (_edit(blob, 8, "<I", len(blob) - 4), Status.ERR_PLAN_LENGTH),
        "crc": (blob[:-1] + bytes([blob[-1] ^ 0x10]), Status.ERR_PLAN_CRC),
        "model crc": (_edit(blob, 16, "<I", 1234), Status.ERR_PLAN_MODEL_MISMATCH),
        "model length": (_edit(blob, 20, "<I", len(model) + 4), Status.ERR_PLAN_MODEL_MISMATCH),
        "op": (_edit(blob, layer0, "<B", 0), Status.ERR_PLAN_FIELD),
        "lora rank": (_edit(blob, layer2 + 14, "<H", 65), Status.ERR_PLAN_FIELD),
        "lora alpha": (_edit(blob, layer2 + 16, "<f", float("nan")), Status.ERR_PLAN_FIELD),
        "needs_grad": (_edit(blob, HEADER_SIZE + 37, "<B", 1), Status.ERR_PLAN_FIELD),
        "weights offset": (
            _edit(blob, layer0 + 44, "<I", len(model) - 3),
            Status.ERR_PLAN_MODEL_OFFSET,
        ),
        "scale offset": (_edit(blob, layer0 + 52, "<I", len(model)), Status.ERR_PLAN_MODEL_OFFSET),
        "bias align": (
            _edit(blob, layer0 + 60, "<I", plan.layers[0].layer.bias.offset + 1),
            Status.ERR_PLAN_ALIGNMENT,
        ),
        "param offset": (
            _edit(blob, layer0 + 80 + 4, "<I", plan.layers[0].params[1] + 16),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
        "cache offset": (
            _edit(blob, HEADER_SIZE + TENSOR_RECORD_SIZE + 20, "<I", 0),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
        "train size": (
            _edit(blob, 96, "<I", plan.arena_bytes("train") + 16),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
        "infer size": (
            _edit(blob, 108, "<I", plan.arena_bytes("infer") - 16),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
    }
    for name, (data, expected) in cases.items():
        assert load_plan_status(model, data) == expected, name
    # The plan only fits its own model.
    other = bytearray(model)
    other[-1] ^= 1
    assert load_plan_status(bytes(other), blob) == Status.ERR_PLAN_MODEL_MISMATCH


def test_peft_error_names_the_status(sample_plan):
    model, plan = sample_plan
    with pytest.raises(PeftError) as info:
        LoadedPlan(model, plan.to_bytes()[:-8])
    assert info.value.code == 10 and info.value.name == "ERR_PLAN_TRUNCATED"
    assert info.value.status is Status.ERR_PLAN_TRUNCATED


def test_status_enum_mirrors_the_c_header():
    from micropeft.native import REPO_ROOT

    header = (REPO_ROOT / "include" / "peft" / "peft_status.h").read_text()
    import re

    pairs = dict(re.findall(r"PEFT_(\w+) = (\d+)", header))
    assert {k: int(v) for k, v in pairs.items()} == {s.name: s.value for s in Status}
