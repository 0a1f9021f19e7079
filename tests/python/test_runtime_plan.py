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

from micropeft import formats
from micropeft.errors import UserError
from micropeft.host.runtime import LoadedPlan, PeftError, Status, Trainer, load_plan_status
from micropeft.planning.plan import (
    BUFFER_KIND_NAMES,
    BUFFER_RECORD_SIZE,
    BWD_IN_ROWS,
    HEADER_SIZE,
    LAYER_RECORD_SIZE,
    TENSOR_RECORD_SIZE,
    OptimizerConfig,
    build_plan,
    int8_backward_scratch_bytes,
    lora_a_init,
)
from micropeft.prep.graph import Activation, Method
from runtime_fixtures import GraphBuilder, mark, random_graph

BATCH_OFFSET = formats.PLAN_HEADER.offset("batch")
OPTIMIZERS = [
    OptimizerConfig("sgd", lr=0.01, momentum=0.9),
    OptimizerConfig("adam", lr=0.001),
    OptimizerConfig("sgd", lr=0.1, momentum=0.0),
]


def test_arena_sizes_agree_with_c_on_200_random_plans():
    """Planner == C size query == the arena's measured high-water mark after a
    training call of as many samples as the plan's batch capacity (the highest byte
    the runtime writes is the end of the written part of the buffer at the top of the
    work region)."""
    kinds = set()
    buffer_kinds = set()
    streamed = 0  # LoRA layers whose A gradient read the kept input in several row blocks
    for seed in range(200):
        graph, model = random_graph(seed, ia3_input=seed % 3 == 1)
        opt = OPTIMIZERS[seed % 3]
        cache = "s8" if seed % 2 else "f32"
        update = "layer" if seed % 4 >= 2 else "batch"
        int8 = seed % 5 == 0
        qf = seed % 6 == 5  # the quantized forward (its FWD_QW / BWD_QW buffers)
        batch = 1 if update == "layer" else 1 + seed % 3
        plan = build_plan(
            graph, model, opt, cache, seed=seed, update=update, int8_backward=int8,
            quantized_forward=qf, batch=batch,
        )  # fmt: skip
        loaded = LoadedPlan(model, plan.to_bytes())
        trainer = Trainer(model, plan)
        trainer.set_limits(1e9, 1e9)  # random weights: losses above the default bound (1000)
        x = np.random.default_rng(seed).integers(-128, 128, (batch, *plan.tensors[0].info.shape))
        labels = (seed + np.arange(batch)) % plan.num_classes
        _, statuses = trainer.train_batch(x.astype(np.int8), labels)
        assert not statuses.any(), (seed, statuses)
        trainer.step()
        written = max(b.offset + b.used for b in plan.buffers if b.arena == 0)
        assert trainer.arena_high_water() == written, seed
        buffer_kinds.update(BUFFER_KIND_NAMES[b.kind] for b in plan.buffers)
        streamed += sum(
            1
            for b in plan.buffers
            if BUFFER_KIND_NAMES[b.kind] == "bwd_in"
            and plan.layers[b.owner].streams_input
            and plan.layers[b.owner].rows > BWD_IN_ROWS
        )
        assert loaded.arena_size("train") == plan.arena_bytes("train"), seed
        assert loaded.arena_size("infer") == plan.arena_bytes("infer"), seed
        parts = loaded.breakdown()
        assert parts == plan.breakdown(), seed
        assert sum(v for k, v in parts.items() if k != "total") == parts["total"]
        assert parts["total"] == plan.arena_bytes("train")
        assert loaded.trainable_params() == plan.trainable_parameters > 0
        assert loaded.num_classes() == plan.num_classes
        assert loaded.batch_capacity() == batch
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
    assert buffer_kinds == set(BUFFER_KIND_NAMES.values())
    assert streamed > 0


def test_no_two_live_buffers_overlap_on_random_plans():
    """Property of the layout (checked here from the buffer list, not the algorithm):
    two buffers live at the same step never share a byte, and each lies in its region."""
    for seed in range(300):
        graph, model = random_graph(seed, ia3_input=seed % 3 == 1)
        cache = "s8" if seed % 2 else "f32"
        update = "layer" if seed % 3 == 0 else "batch"
        opt, int8, qf = OPTIMIZERS[seed % 3], seed % 4 == 1, seed % 6 == 5
        batch = 1 if update == "layer" else 1 + seed % 4
        plan = build_plan(
            graph, model, opt, cache, seed=seed, update=update, int8_backward=int8,
            quantized_forward=qf, batch=batch,
        )  # fmt: skip
        r = plan.regions
        regions = {
            0: (r["work_offset"], r["train_size"]),
            1: (r["infer_work_offset"], r["infer_size"]),
        }
        for arena, (low, high) in regions.items():
            bufs = [b for b in plan.buffers if b.arena == arena]
            for b in bufs:
                assert low <= b.offset and b.offset + b.size <= high, seed
                assert b.offset % 16 == 0 and b.size % 16 == 0 and b.used <= b.size
            for i, a in enumerate(bufs):
                for b in bufs[i + 1 :]:
                    together = a.first <= b.last and b.first <= a.last
                    apart = a.offset + a.size <= b.offset or b.offset + b.size <= a.offset
                    assert apart or not together, (seed, plan.buffer_name(a), plan.buffer_name(b))


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


@pytest.mark.parametrize(
    ("layer", "method", "count"),
    [
        # _chain's 1x1 conv (4 -> 6 channels: 24 weights, 6 biases), LoRA rank 2.
        (2, Method.FULL, 24 + 6),
        (2, Method.BITFIT, 6),
        (2, Method.SCALE_SHIFT, 6 + 6),  # gamma, beta
        (2, Method.LORA, 2 * 4 + 6 * 2),  # A: rank x in, B: out x rank
        (2, Method.DORA, 2 * 4 + 6 * 2 + 6),  # and a magnitude per output channel
        (2, Method.IA3, 6),
        (2, Method.IA3_INPUT, 4),  # one per input channel (4 -> 6)
        (4, Method.IA3_INPUT, 6),  # the head: one per input feature
        (2, Method.IA3_INPUT | Method.BITFIT, 4 + 6),
        (4, Method.LAST_LAYER, 6 * 3 + 3),  # the head: dense 6 -> 3
    ],
)
def test_trainable_parameter_counts_are_hand_counted(layer, method, count):
    """Planner and C loader count each method's arrays (formats.PARAM_ARRAYS) as by hand."""
    graph, model = _chain({layer: method})
    plan = build_plan(graph, model, OptimizerConfig("adam", lr=0.001), "f32")
    assert plan.trainable_parameters == count
    assert LoadedPlan(model, plan.to_bytes()).trainable_params() == count


def test_layout_of_a_hand_counted_plan():
    # BitFit on the depthwise conv and the head, SGD with momentum, f32 cache.
    graph, model = _chain({1: Method.BITFIT, 4: Method.BITFIT})
    plan = build_plan(graph, model, OptimizerConfig("sgd", momentum=0.9), "f32")
    assert plan.split_layer == 1
    # Plan layers: 0 depthwise (4x4x4, ReLU), 1 conv1x1 (4x4x6, ReLU), 2 mean (6),
    # 3 dense (3). Steps: forward 0..3, loss 4, backward of layer k at 8 - k.
    # Parameters, gradients, momentum: the two trained biases (4 and 3 floats), 16 B
    # each. The frozen 1x1 bias is read from the model into a forward scratch.
    # Work buffers (bytes, live range) and where greedy-by-size first fit puts them:
    # value t2 384 [1,2] @0, grad t2 384 [6,7] @0, value t0 256 [0,0] @0,
    # value t1 256 [0,1] @384, grad t1 256 [7,8] @384, value t3 32 [2,3] @384,
    # grad t3 32 [5,6] @384, fwd bias 32 [1,1] @640, value t4 16 [3,4] @0,
    # grad t4 16 [4,5] @16, masks 16 [0,8] @672 and [1,7] @688, probs 16 [4,4] @32.
    # Nothing is kept but the two ReLU masks (no weight trains).
    expected = {
        ("value", 2): (0, 1, 2),
        ("grad", 2): (0, 6, 7),
        ("value", 0): (0, 0, 0),
        ("value", 1): (384, 0, 1),
        ("grad", 1): (384, 7, 8),
        ("value", 3): (384, 2, 3),
        ("grad", 3): (384, 5, 6),
        ("fwd_bias", 1): (640, 1, 1),
        ("value", 4): (0, 3, 4),
        ("grad", 4): (16, 4, 5),
        ("mask", 0): (672, 0, 8),
        ("mask", 1): (688, 1, 7),
        ("probs", 0): (32, 4, 4),
    }
    base = 3 * 32
    got = {
        (BUFFER_KIND_NAMES[b.kind], b.owner): (b.offset - base, b.first, b.last)
        for b in plan.buffers
        if b.arena == 0
    }
    assert got == expected
    # The peak is the forward of the 1x1 conv: values t1 + t2, its bias, both masks.
    step, live = plan.peak()
    assert step == 1
    assert sorted(b.size for b in live) == [16, 16, 32, 256, 384]
    assert plan.breakdown() == {
        "parameters": 32,
        "gradients": 32,
        "optimizer_state": 32,
        "cached_activations": 32,
        "scratch": 704 - 32,
        "total": 96 + 704,
    }
    assert plan.trainable_parameters == 7
    loaded = LoadedPlan(model, plan.to_bytes())
    assert loaded.breakdown() == plan.breakdown()
    assert loaded.arena_size("train") == 800


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


def test_int8_backward_puts_frozen_pointwise_and_dense_layers_on_the_int8_path():
    """BitFit on the stem: every later layer passes an input gradient down. The flag
    puts the frozen 1x1 conv (2) and the head (4) on the int8 path, each with its
    kernel's scratch; never the 3x3 depthwise (1), nor a layer whose weights train."""
    graph, model = _chain({0: Method.BITFIT})
    plain = build_plan(graph, model, OptimizerConfig("sgd"))
    int8 = build_plan(graph, model, OptimizerConfig("sgd"), int8_backward=True)
    assert [pl.index for pl in int8.int8_backward_layers] == [2, 4]
    assert not plain.int8_backward_layers and plain.flags == 0
    scratch = [b for b in int8.buffers if BUFFER_KIND_NAMES[b.kind] == "bwd_s8s8"]
    rows = {pl.index: pl.rows for pl in int8.int8_backward_layers}
    assert [(b.owner, b.used) for b in scratch] == [
        (2, int8_backward_scratch_bytes(rows[2], 6)),
        (4, int8_backward_scratch_bytes(rows[4], 3)),
    ]
    for p in (plain, int8):
        assert load_plan_status(model, p.to_bytes()) == Status.OK
        assert LoadedPlan(model, p.to_bytes()).arena_size("train") == p.arena_bytes("train")
    graph, model = _chain({0: Method.BITFIT, 4: Method.LAST_LAYER})  # the head's weights train
    int8 = build_plan(graph, model, OptimizerConfig("sgd"), int8_backward=True)
    assert [pl.index for pl in int8.int8_backward_layers] == [2]


@pytest.mark.parametrize("cache", ["f32", "s8"])
def test_ia3_input_keeps_the_input_and_computes_its_gradient_on_the_first_layer(cache):
    """IA3 scaling the input of the 1x1 conv (2; 4x4x4 in), the first trained layer: its
    input (plan tensor 0) is kept for l's gradient, l x has a forward scratch in both
    arenas and the op's input gradient (wrt l x) a backward one, though tensor 0 needs no
    gradient; the int8 path leaves the layer out. C derives the same table."""
    graph, model = _chain({2: Method.IA3_INPUT, 4: Method.IA3_INPUT})
    plan = build_plan(graph, model, OptimizerConfig("sgd"), cache, int8_backward=True)
    assert plan.split_layer == 2 and not plan.tensors[0].needs_grad
    assert plan.tensors[0].cached and plan.tensors[2].cached  # the inputs of both layers
    assert not plan.int8_backward_layers
    n = len(plan.layers)
    found = {(BUFFER_KIND_NAMES[b.kind], b.arena, b.owner): b for b in plan.buffers}
    for kind, arena, owner, nbytes, first, last in [
        ("fwd_xs", 0, 0, 4 * 64, 0, 0),
        ("fwd_xs", 1, 0, 4 * 64, 0, 0),
        ("bwd_gx", 0, 0, 4 * 64, 2 * n, 2 * n),
        ("fwd_xs", 0, 2, 4 * 6, 2, 2),
        ("fwd_xs", 1, 2, 4 * 6, 2, 2),
        ("bwd_gx", 0, 2, 4 * 6, 2 * n - 2, 2 * n - 2),
    ]:
        b = found[(kind, arena, owner)]
        assert (b.used, b.first, b.last) == (nbytes, first, last), (kind, arena, owner)
    assert ("grad", 0, 0) not in found
    assert (("keep", 0, 0) in found) == (cache == "s8")
    loaded = LoadedPlan(model, plan.to_bytes())
    assert loaded.arena_size("train") == plan.arena_bytes("train")
    assert loaded.breakdown() == plan.breakdown()
    # The C loader refuses IA3 on the input with a method that reads or scales the layer
    # otherwise (the planner does too, with words).
    blob = plan.to_bytes()
    methods_at = HEADER_SIZE + len(plan.tensors) * TENSOR_RECORD_SIZE + 2  # layer 0 methods
    for other in (Method.IA3, Method.SPARSE, Method.LORA):
        bad = _edit(blob, methods_at, "<H", int(Method.IA3_INPUT | other))
        assert load_plan_status(model, bad) == Status.ERR_PLAN_FIELD, other
    for other in (Method.IA3, Method.FULL, Method.LORA, Method.LAST_LAYER):
        graph, model = _chain({4: Method.IA3_INPUT | other})
        with pytest.raises(UserError, match="ia3_input .* on one layer: not supported"):
            build_plan(graph, model, OptimizerConfig("sgd"))


def test_int8_backward_scratch_is_the_kernel_query():
    from micropeft.eval import kernel_binding as kernels

    for backend in kernels.BACKENDS:
        with kernels.use_backend(backend) as lib:
            lib.peft_fc_bwd_input_s8s8_get_buffer_size.argtypes = [kernels._FC]
            for rows in (1, 3, 31, 32, 33, 100):
                for n_out in range(1, 300):
                    p = kernels.fc_params(rows, 5, n_out)
                    need = lib.peft_fc_bwd_input_s8s8_get_buffer_size(p)
                    assert need == int8_backward_scratch_bytes(rows, n_out), (backend, n_out)
    # By hand: 3 rows of 5 outputs (6 with the pad), int16, plus 4 widened columns, plus 3
    # float scales; 100 rows are quantized 32 at a time.
    assert int8_backward_scratch_bytes(3, 5) == 2 * 6 * (3 + 4) + 4 * 3
    assert int8_backward_scratch_bytes(100, 6) == 2 * 6 * (32 + 4) + 4 * 32


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
    buffer0 = layer0 + len(plan.layers) * LAYER_RECORD_SIZE
    buffer_last = buffer0 + (len(plan.buffers) - 1) * BUFFER_RECORD_SIZE
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
        "old version": (_edit(blob, 4, "<H", 1), Status.ERR_PLAN_VERSION),
        "needs_grad": (_edit(blob, HEADER_SIZE + 21, "<B", 1), Status.ERR_PLAN_FIELD),
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
            _edit(blob, layer0 + 80 + 8, "<I", plan.layers[0].params[2] + 16),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
        "keep dtype": (
            _edit(blob, HEADER_SIZE + 20, "<B", 1 - blob[HEADER_SIZE + 20]),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
        "buffer offset": (_edit(blob, buffer0 + 16, "<I", 0), Status.ERR_PLAN_ARENA_OFFSET),
        "buffer size": (
            _edit(blob, buffer0 + 12, "<I", plan.buffers[0].size + 16),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
        "buffer live range": (_edit(blob, buffer0 + 8, "<H", 7), Status.ERR_PLAN_ARENA_OFFSET),
        "buffer kind": (_edit(blob, buffer0, "<B", 99), Status.ERR_PLAN_BUFFER_KIND),
        "buffer kind 0": (_edit(blob, buffer_last, "<B", 0), Status.ERR_PLAN_BUFFER_KIND),
        "buffer reserved": (_edit(blob, buffer0 + 3, "<B", 1), Status.ERR_PLAN_FIELD),
        "train size": (
            _edit(blob, 88, "<I", plan.arena_bytes("train") + 16),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
        "infer size": (
            _edit(blob, 96, "<I", plan.arena_bytes("infer") - 16),
            Status.ERR_PLAN_ARENA_OFFSET,
        ),
        "update mode": (_edit(blob, 104, "<I", 2), Status.ERR_PLAN_FIELD),
        "batch 0": (_edit(blob, BATCH_OFFSET, "<I", 0), Status.ERR_PLAN_FIELD),
        "batch beyond the limit": (
            _edit(blob, BATCH_OFFSET, "<I", formats.LIMIT["MAX_BATCH"] + 1),
            Status.ERR_PLAN_FIELD,
        ),
        # A larger capacity needs larger buffers than the table's.
        "batch 2": (_edit(blob, BATCH_OFFSET, "<I", 2), Status.ERR_PLAN_ARENA_OFFSET),
    }
    for name, (data, expected) in cases.items():
        assert load_plan_status(model, data) == expected, name
    # The plan only fits its own model.
    other = bytearray(model)
    other[-1] ^= 1
    assert load_plan_status(bytes(other), blob) == Status.ERR_PLAN_MODEL_MISMATCH


def test_per_layer_updates_refuse_a_batch_capacity(sample_plan):
    model, _ = sample_plan
    graph, _ = _chain({0: Method.SCALE_SHIFT, 2: Method.LORA, 4: Method.LAST_LAYER})
    with pytest.raises(UserError, match="one sample at a time: batch capacity must be 1"):
        build_plan(graph, model, OptimizerConfig("sgd"), "s8", update="layer", batch=2)
    blob = build_plan(graph, model, OptimizerConfig("sgd"), "s8", update="layer").to_bytes()
    assert load_plan_status(model, _edit(blob, BATCH_OFFSET, "<I", 2)) == Status.ERR_PLAN_FIELD


@pytest.mark.parametrize("batch", [0, formats.LIMIT["MAX_BATCH"] + 1, 2.0, True])
def test_planner_refuses_a_batch_capacity_outside_its_range(sample_plan, batch):
    model, _ = sample_plan
    graph, _ = _chain({2: Method.BITFIT})
    with pytest.raises(UserError, match="batch capacity must be an integer in 1..256"):
        build_plan(graph, model, OptimizerConfig("sgd"), "s8", batch=batch)


def test_planner_refuses_a_batch_whose_buffers_exceed_the_runtime_bound():
    """256 samples of a 256x256x1 input hold 2^24 values: at the bound, not beyond it; 8x8x3
    times 256 fits."""
    gb = GraphBuilder(3, (256, 256, 1))
    x = gb.conv(gb.input, 1, k=1, s=1, act=Activation.RELU)
    graph, model = gb.graph(gb.fc(gb.mean(x), 2))
    mark(graph.layers[0], Method.BITFIT)
    build_plan(graph, model, OptimizerConfig("sgd"), "s8", batch=256)
    gb = GraphBuilder(3, (256, 257, 1))
    x = gb.conv(gb.input, 1, k=1, s=1, act=Activation.RELU)
    graph, model = gb.graph(gb.fc(gb.mean(x), 2))
    mark(graph.layers[0], Method.BITFIT)
    with pytest.raises(UserError, match="batch capacity 256: 256 samples of tensor"):
        build_plan(graph, model, OptimizerConfig("sgd"), "s8", batch=256)


def test_an_old_plan_gets_a_clear_version_error(sample_plan):
    from micropeft.planning.plan import check_blob_version

    model, plan = sample_plan
    current = formats.PLAN.version
    # Before the lifetime layout; before LoRA's lean buffers; before the rounded weights;
    # before the batch capacity.
    for version in (1, 3, 5, 6):
        old = _edit(plan.to_bytes(), 4, "<H", version)
        assert load_plan_status(model, old) == Status.ERR_PLAN_VERSION
        with pytest.raises(
            UserError,
            match=f"plan format version {version}.*reads version {current}.*prepare-model",
        ):
            check_blob_version(old, "plan.bin")
    check_blob_version(plan.to_bytes(), "plan.bin")


def test_peft_error_names_the_status(sample_plan):
    model, plan = sample_plan
    with pytest.raises(PeftError) as info:
        LoadedPlan(model, plan.to_bytes()[:-8])
    assert info.value.code == 10 and info.value.name == "ERR_PLAN_TRUNCATED"
    assert info.value.status is Status.ERR_PLAN_TRUNCATED
