"""The C trainer against TensorFlow autodiff (micropeft.host.reference), on random
graphs of every operator and method combination; its state blob; its arena.

The whole int8 Keras model, every method and both optimizers, is compared in
test_training_equivalence.py; here the graphs are hand-built (runtime_fixtures)
so that residual ADDs, PAD, AVERAGE_POOL_2D, RESHAPE and row-wise dense layers
are covered too.
"""

from __future__ import annotations

import numpy as np
import pytest

from micropeft.formats import PlanFlag
from micropeft.host.runtime import PeftError, Status, Trainer
from micropeft.planning.plan import OptimizerConfig, build_plan
from micropeft.prep.graph import Method, Op
from runtime_fixtures import random_graph
from test_runtime_plan import _chain


def _close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> float:
    """Largest error relative to the array's scale (tiny saturated gradients get a
    float32 floor of 1e-7)."""
    expected = np.asarray(expected, np.float32).reshape(-1)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert err <= rtol * scale + 1e-7, (err, scale)
    return err


def _samples(plan, rng: np.random.Generator, n: int):
    info = plan.tensors[0].info
    x = rng.integers(-128, 128, size=(n, *info.shape)).astype(np.int8)
    xf = ((x.astype(np.float32) - info.quant.zero_point) * np.float32(info.quant.scale)).astype(
        np.float32
    )
    labels = rng.integers(0, plan.num_classes, size=n)
    return x, xf, labels


def _two_steps_match(trainer, ref, plan, rng, logits: bool = False) -> None:
    """Two steps of a batch of 3 (gradient accumulation) in the C trainer and the TF
    reference: (with `logits`, the logits first,) gradients, loss, parameters after each."""
    for _ in range(2):
        x, xf, labels = _samples(plan, rng, 3)
        if logits:
            c_logits = np.stack([trainer.predict(xi)[0] for xi in x])
            _close(c_logits.reshape(-1), ref.predict(xf), rtol=1e-5)
        pairs = zip(x, labels, strict=True)
        c_loss = np.mean([trainer.train_sample(xi, int(li)) for xi, li in pairs])
        expected = ref.gradients(xf, labels)
        got = trainer.gradients()
        assert set(got) == set(expected)
        # 2e-4 of the array's scale: TensorFlow sums in another order on another CPU
        # (seen: 1.34e-4 for seed 108 on an AMD EPYC with TF 2.21, under 1e-4 elsewhere).
        for key in expected:
            _close(got[key] / 3, expected[key], rtol=2e-4)
        tf_loss = ref.train_batch(xf, labels)
        assert c_loss == pytest.approx(tf_loss, rel=1e-4, abs=1e-6)
        trainer.step()
        params = trainer.parameters()
        for key, value in ref.parameters().items():
            _close(params[key], value, rtol=2e-4)
        assert not any(g.any() for g in trainer.gradients().values())  # zeroed by step


@pytest.mark.parametrize("seed", list(range(100, 112)))
def test_random_graph_gradients_and_step_match_tensorflow(seed):
    from micropeft.host.reference import TFReferenceTrainer

    graph, model = random_graph(seed)
    opt = (
        OptimizerConfig("adam", lr=0.01, weight_decay=1e-3)
        if seed % 2
        else OptimizerConfig("sgd", lr=0.05, momentum=0.9, clip_norm=0.5)
    )
    plan = build_plan(graph, model, opt, "f32", seed=seed)
    trainer = Trainer(model, plan)
    ref = TFReferenceTrainer(
        graph, model, plan.split_layer, opt, initial_params=trainer.parameters(), seed=seed
    )
    _two_steps_match(trainer, ref, plan, np.random.default_rng(seed))


@pytest.mark.parametrize("seed", list(range(100, 106)))
def test_quantized_forward_gradients_and_step_match_tensorflow(seed):
    """PlanFlag.QUANTIZED_FORWARD: every layer output but the logits on its int8 grid,
    straight-through gradient, in the C runtime as in the TF reference (both caches,
    both optimizers): logits, gradients, loss and parameters after two steps."""
    from micropeft.host.reference import TFReferenceTrainer

    graph, model = random_graph(seed)
    opt = (
        OptimizerConfig("adam", lr=0.01, weight_decay=1e-3)
        if seed % 2
        else OptimizerConfig("sgd", lr=0.05, momentum=0.9, clip_norm=0.5)
    )
    cache = "s8" if seed % 3 == 0 else "f32"
    plan = build_plan(graph, model, opt, cache, seed=seed, quantized_forward=True)
    assert plan.flags == int(PlanFlag.QUANTIZED_FORWARD)
    trainer = Trainer(model, plan)
    ref = TFReferenceTrainer.from_plan(plan, model, trainer.parameters())
    assert ref.quantized_forward
    _two_steps_match(trainer, ref, plan, np.random.default_rng(seed), logits=True)


def _round(v: np.ndarray) -> np.ndarray:
    """Halves away from zero, as roundf."""
    a = np.abs(v)
    return np.sign(v) * (np.floor(a) + (a - np.floor(a) >= 0.5))


def int8_codes_by_hand(
    v: np.ndarray, scale: float, zero_point: int, grid: np.ndarray | None = None
) -> np.ndarray:
    """By hand: steps of the output scale, first rounded to 1/grid of a step where given
    (TFLite's requantization), then to a step; clamped to int8 (test_merge uses it too)."""
    steps = (v / np.float32(scale)).astype(np.float32)
    if grid is not None:
        steps = (_round(steps * grid) / grid).astype(np.float32)
    return np.clip(_round(steps) + zero_point, -128, 127)


def _fake_quantize(
    v: np.ndarray, scale: float, zero_point: int, grid: np.ndarray | None = None
) -> np.ndarray:
    """int8_codes_by_hand, dequantised (float32)."""
    q = int8_codes_by_hand(v, scale, zero_point, grid)
    return ((q - zero_point) * np.float32(scale)).astype(np.float32)


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_quantized_forward_is_the_float_forward_rounded_to_int8(mode):
    """_chain with BitFit on the 1x1 conv and the head trained: the runtime's logits with
    the flag are numpy's conv1x1 + ReLU, fake-quantized with its tensor's quantization
    after rounding to a 2^-rs grid (TFLite's multiplier s_in s_w / s_out = m 2^-rs, m in
    [0.5, 1), per output channel), mean, fake-quantized, dense (the logits unrounded),
    both trained biases in int32 steps of s_in s_w; without it, all of it unrounded."""
    from micropeft.host import reference

    graph, model = _chain({2: Method.BITFIT, 4: Method.LAST_LAYER})
    opt = OptimizerConfig("sgd", lr=0.05)
    plans = {qf: build_plan(graph, model, opt, "s8", quantized_forward=qf) for qf in (False, True)}
    assert [lay.op for lay in graph.layers[plans[True].split_layer :]] == [
        Op.CONV_2D, Op.MEAN, Op.FULLY_CONNECTED
    ]  # fmt: skip
    conv, mean, head = graph.layers[2:]
    x, xf, _ = _samples(plans[True], np.random.default_rng(5), 8)
    w = reference.dequantize_weight(graph, model, conv).reshape(6, 4)
    b = reference.dequantize_bias(graph, model, conv)
    wh = reference.dequantize_weight(graph, model, head)
    bh = reference.dequantize_bias(graph, model, head)
    rows = xf.reshape(len(xf), -1, 4)
    logits = {}

    def int32_bias(layer, bias):  # the trained bias in steps of s_in s_w
        step = np.float32(graph.tensors[layer.inputs[0]].quant.scale) * reference.read_scales(
            model, layer.weights
        )
        return (_round(bias / step) * step).astype(np.float32)

    for qf, the_plan in plans.items():
        y = np.maximum(rows @ w.T + (int32_bias(conv, b) if qf else b), 0).astype(np.float32)
        if qf:
            q = graph.tensors[conv.output].quant
            s_in = np.float32(graph.tensors[conv.inputs[0]].quant.scale)
            multiplier = s_in * reference.read_scales(model, conv.weights) / np.float32(q.scale)
            mantissa, exponent = np.frexp(multiplier.astype(np.float32))
            assert np.all((mantissa >= 0.5) & (mantissa < 1) & (exponent < 0))
            y = _fake_quantize(y, q.scale, q.zero_point, np.exp2(-exponent).astype(np.float32))
        m = y.mean(axis=1, dtype=np.float32)
        if qf:
            q = graph.tensors[mean.output].quant
            m = _fake_quantize(m, q.scale, q.zero_point)
        want = (m @ wh.T + (int32_bias(head, bh) if qf else bh)).astype(np.float32)
        trainer = Trainer(model, the_plan.to_bytes(), mode=mode)
        logits[qf] = np.stack([trainer.predict(xi)[0] for xi in x])
        np.testing.assert_allclose(
            logits[qf], want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max())
        )
    # The rounding is visible: the two differ by far more than float32 noise.
    assert np.max(np.abs(logits[True] - logits[False])) > 1e-3 * np.abs(logits[False]).max()


def test_int8_cache_stays_close_to_the_float_gradients():
    from micropeft.host.reference import TFReferenceTrainer

    graph, model = _chain({0: Method.FULL, 1: Method.SCALE_SHIFT, 2: Method.LORA, 4: Method.FULL})
    opt = OptimizerConfig("sgd", lr=0.05)
    plan = build_plan(graph, model, opt, "s8")
    trainer = Trainer(model, plan)
    ref = TFReferenceTrainer(graph, model, plan.split_layer, opt, trainer.parameters())
    x, xf, labels = _samples(plan, np.random.default_rng(3), 4)
    for xi, li in zip(x, labels, strict=True):
        trainer.train_sample(xi, int(li))
    expected = ref.gradients(xf, labels)
    got = trainer.gradients()
    for key, value in expected.items():
        value = value.reshape(-1)
        if not value.any():  # LoRA A before B moves: exactly zero on both sides
            assert not got[key].any(), key
            continue
        # int8 activations (scale ~0.01-0.1) perturb the gradients a little, not their direction.
        cos = np.dot(got[key] / 4, value) / (np.linalg.norm(got[key] / 4) * np.linalg.norm(value))
        assert cos > 0.95, (key, cos)


def test_fifty_steps_reduce_the_loss_with_int8_cache():
    graph, model = _chain({1: Method.BITFIT, 2: Method.LORA, 4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("adam", lr=0.01), "s8")
    trainer = Trainer(model, plan)
    x, _, labels = _samples(plan, np.random.default_rng(4), 8)

    def loss() -> float:
        logits = np.stack([trainer.predict(xi)[0] for xi in x])
        z = logits - logits.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(8), labels]))

    before = loss()
    for _ in range(50):
        for xi, li in zip(x, labels, strict=True):
            trainer.train_sample(xi, int(li))
        trainer.step()
    assert loss() < 0.5 * before


def test_float_input_is_the_dequantised_int8_input():
    graph, model = _chain({2: Method.LORA, 4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("sgd"), "f32")
    a, b = Trainer(model, plan), Trainer(model, plan)
    x, xf, labels = _samples(plan, np.random.default_rng(5), 1)
    assert a.train_sample(x[0], int(labels[0])) == pytest.approx(
        b.train_sample(xf[0], int(labels[0])), rel=1e-6
    )
    np.testing.assert_allclose(a.predict(x[0])[0], b.predict(xf[0])[0], rtol=1e-6)


def _trained(plan, model, steps: int, rng: np.random.Generator) -> Trainer:
    trainer = Trainer(model, plan)
    for _ in range(steps):
        x, _, labels = _samples(plan, rng, 2)
        for xi, li in zip(x, labels, strict=True):
            trainer.train_sample(xi, int(li))
        trainer.step()
    return trainer


def test_state_round_trip_continues_identically():
    graph, model = _chain({0: Method.SCALE_SHIFT, 2: Method.LORA, 4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("adam", lr=0.01), "f32")
    first = _trained(plan, model, 3, np.random.default_rng(6))
    state = first.export_state(epoch=2, sequence=7)
    second = Trainer(model, plan)
    assert second.import_state(state) == {"epoch": 2, "sequence": 7}
    assert second.steps == first.steps == 3
    rng1, rng2 = np.random.default_rng(9), np.random.default_rng(9)
    for t, rng in ((first, rng1), (second, rng2)):
        for _ in range(2):
            x, _, labels = _samples(plan, rng, 2)
            for xi, li in zip(x, labels, strict=True):
                t.train_sample(xi, int(li))
            t.step()
    p1, p2 = first.parameters(), second.parameters()
    assert p1.keys() == p2.keys()
    for key in p1:
        np.testing.assert_array_equal(p1[key], p2[key])  # Adam moments and t restored too
    # An inference arena takes the same state and predicts what training predicts.
    infer = Trainer(model, plan, mode="infer")
    infer.import_state(first.export_state())
    x, _, _ = _samples(plan, np.random.default_rng(1), 1)
    np.testing.assert_allclose(infer.predict(x[0])[0], first.predict(x[0])[0], rtol=1e-6)
    assert infer.arena_size() < first.arena_size()


@pytest.mark.parametrize("update", ["batch", "layer"])
def test_dora_norms_follow_every_parameter_change(update):
    """DoRA's norm ||W0 + s B A|| is kept between samples and recomputed when the
    parameters change (init, step or per-layer update, state import, params_changed):
    the trainer that trained, a fresh one and one that trained on other samples, both
    given its state, and an inference arena given it predict the same logits, which are
    TensorFlow's for those parameters, and the three train on identically."""
    from micropeft.host.reference import TFReferenceTrainer

    graph, model = _chain({2: Method.DORA, 4: Method.DORA})
    plan = build_plan(graph, model, OptimizerConfig("adam", lr=0.05), "f32", update=update)
    trained = _trained(plan, model, 3, np.random.default_rng(4))
    other = _trained(plan, model, 2, np.random.default_rng(5))
    state = trained.export_state()
    fresh, infer = Trainer(model, plan), Trainer(model, plan, mode="infer")
    for t in (fresh, other, infer):
        t.import_state(state)
    x, xf, labels = _samples(plan, np.random.default_rng(6), 4)

    def logits(t: Trainer) -> np.ndarray:
        return np.stack([t.predict(xi)[0] for xi in x])

    expected = logits(trained)
    ref = TFReferenceTrainer.from_plan(plan, model, trained.parameters())
    _close(expected.reshape(-1), ref.predict(xf), rtol=1e-5)
    for t in (fresh, other, infer):
        np.testing.assert_array_equal(logits(t), expected)
    for t in (trained, fresh, other):
        losses = [t.train_sample(xi, int(li)) for xi, li in zip(x, labels, strict=True)]
        t.step()
        if t is trained:
            first_losses, first_params = losses, t.parameters()
        assert losses == first_losses
        for key, value in t.parameters().items():
            np.testing.assert_array_equal(value, first_params[key])
    # Parameters written through param_infos(): the norms follow at params_changed().
    by_hand = Trainer(model, plan)
    for info, value in zip(by_hand.param_infos(), trained.parameters().values(), strict=True):
        np.ctypeslib.as_array(info.data, shape=(info.count,))[:] = value
    assert not np.array_equal(logits(by_hand), logits(trained))  # the initial norms
    by_hand.params_changed()
    np.testing.assert_array_equal(logits(by_hand), logits(trained))


def test_corrupted_state_blobs_have_their_codes():
    graph, model = _chain({2: Method.LORA, 4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("sgd"), "f32")
    trainer = _trained(plan, model, 1, np.random.default_rng(2))
    state = trainer.export_state()
    before = trainer.parameters()

    def flip(data: bytes, at: int) -> bytes:
        return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]

    other_plan = build_plan(graph, model, OptimizerConfig("sgd", lr=0.5), "f32")
    other_state = Trainer(model, other_plan).export_state()
    cases = {
        "magic": (flip(state, 0), Status.ERR_STATE_MAGIC),
        "version": (flip(state, 4), Status.ERR_STATE_VERSION),
        "header size": (flip(state, 6), Status.ERR_STATE_LENGTH),
        "truncated": (state[:-1], Status.ERR_STATE_TRUNCATED),
        "tiny": (state[:8], Status.ERR_STATE_TRUNCATED),
        "crc": (flip(state, len(state) - 1), Status.ERR_STATE_CRC),
        "other plan": (other_state, Status.ERR_STATE_PLAN_MISMATCH),
    }
    for name, (data, code) in cases.items():
        with pytest.raises(PeftError) as info:
            trainer.import_state(data)
        assert info.value.status == code, name
    after = trainer.parameters()
    for key in before:  # nothing was loaded from a bad blob
        np.testing.assert_array_equal(before[key], after[key])


def test_high_water_mark_is_measured():
    # LoRA leaves scratch (the last region) in use by the layer that sizes it.
    graph, model = _chain({2: Method.LORA, 4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("sgd"), "f32")
    trainer = Trainer(model, plan)
    parts = plan.breakdown()
    size = plan.arena_bytes("train")
    at_init = trainer.arena_high_water()
    # init writes parameters, zeroes gradients and optimizer state.
    assert (
        parts["parameters"]
        < at_init
        <= parts["parameters"] + plan.regions["grads_size"] + parts["optimizer_state"]
    )
    x, _, labels = _samples(plan, np.random.default_rng(0), 1)
    trainer.train_sample(x[0], int(labels[0]))
    trainer.step()
    assert parts["scratch"] > 0
    # The largest scratch user writes to the end, save the last item's padding.
    assert size - 16 < trainer.arena_high_water() <= size


def test_argument_errors():
    graph, model = _chain({4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("sgd"), "f32")
    trainer = Trainer(model, plan)
    x, _, _ = _samples(plan, np.random.default_rng(0), 1)
    with pytest.raises(PeftError) as info:
        trainer.train_sample(x[0], plan.num_classes)
    assert info.value.status == Status.ERR_ARG
    trainer.step()  # no samples: nothing to apply
    assert trainer.steps == 0
    infer = Trainer(model, plan, mode="infer")
    for call in (lambda: infer.train_sample(x[0], 0), infer.step, infer.export_state):
        with pytest.raises(PeftError):
            call()
    with pytest.raises(ValueError):
        trainer.predict(np.zeros(3, np.int8))


def test_forward_backward_halves_equal_train_sample():
    graph, model = _chain({1: Method.BITFIT, 2: Method.LORA, 4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("sgd"), "s8")
    whole, halves = Trainer(model, plan), Trainer(model, plan)
    x, _, labels = _samples(plan, np.random.default_rng(8), 3)
    with pytest.raises(PeftError):
        halves.backward()  # no forward awaits it
    for xi, li in zip(x, labels, strict=True):
        assert whole.train_sample(xi, int(li)) == halves.forward(xi, int(li))
        halves.backward()
    with pytest.raises(PeftError):
        halves.backward()  # only once per forward
    g1, g2 = whole.gradients(), halves.gradients()
    for key in g1:
        np.testing.assert_array_equal(g1[key], g2[key])


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_linear_schedule_matches_tensorflow_and_stops_after_its_updates(kind):
    """lr_decay_steps 3: updates 1..3 at lr, 2/3 lr, 1/3 lr, then none (HF's linear
    schedule), in the C trainer and the TF reference alike; and for plain SGD, by hand:
    each update moves a parameter by exactly -rate x the mean gradient."""
    from micropeft.host.reference import TFReferenceTrainer

    graph, model = random_graph(104)
    opt = (
        OptimizerConfig("adam", lr=0.01, lr_decay_steps=3)
        if kind == "adam"
        else OptimizerConfig("sgd", lr=0.05, momentum=0.0, lr_decay_steps=3)
    )
    plan = build_plan(graph, model, opt, "f32", seed=104)
    trainer = Trainer(model, plan)
    ref = TFReferenceTrainer(
        graph, model, plan.split_layer, opt, initial_params=trainer.parameters()
    )
    rng = np.random.default_rng(5)
    rates = [np.float32(0.05) * np.float32(f) for f in (1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0)]
    for update in range(4):
        x, xf, labels = _samples(plan, rng, 2)
        for xi, li in zip(x, labels, strict=True):
            trainer.train_sample(xi, int(li))
        before = trainer.parameters()
        mean_grads = {k: g / 2 for k, g in trainer.gradients().items()}
        trainer.step()
        ref.train_batch(xf, labels)
        after = trainer.parameters()
        for key, value in ref.parameters().items():
            _close(after[key], value, rtol=2e-4)
        if update == 3:  # past the schedule: nothing moves
            assert all(np.array_equal(after[k], before[k]) for k in after)
        elif kind == "sgd":
            for key in after:
                expected = before[key] - rates[update] * mean_grads[key]
                np.testing.assert_allclose(after[key], expected, rtol=1e-5, atol=1e-7)
    assert trainer.steps == 4
