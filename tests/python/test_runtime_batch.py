"""Batched calls: a plan's batch capacity, train_batch and predict_batch.

A batched call runs every layer over all its samples at once; per sample it must
compute what one call per sample computes (the TensorFlow reference comparison of
batched training is in test_training_equivalence). Forward values are the same sums
in the same order, so logits and losses are equal exactly; summed gradients may round
differently (the sum over samples is grouped otherwise). A sample that may not add its
gradient must not take the others with it.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from micropeft.host.runtime import PeftError, Status, Trainer
from micropeft.planning.plan import OptimizerConfig, build_plan
from micropeft.prep.graph import Activation, Method
from runtime_fixtures import GraphBuilder, mark, random_graph

GRAD_RTOL = 1e-5


def _plans(graph, model, batch: int, **kw):
    """The same plan with batch capacity 1 and `batch`."""
    opt = OptimizerConfig("adam", lr=0.01)
    return (
        build_plan(graph, model, opt, seed=3, **kw),
        build_plan(graph, model, opt, seed=3, batch=batch, **kw),
    )


def _inputs(plan, n: int, seed: int) -> np.ndarray:
    shape = plan.tensors[0].info.shape
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)


def _assert_gradients_close(one: Trainer, batched: Trainer, what: object) -> None:
    for key, expected in one.gradients().items():
        got = batched.gradients()[key]
        scale = max(float(np.max(np.abs(expected))), 1e-6)
        err = float(np.max(np.abs(got - expected))) / scale
        assert err < GRAD_RTOL, (what, key, err)


def test_a_batched_call_computes_what_sample_by_sample_calls_compute_on_random_plans():
    """Every op and method of the random graphs, both caches, the int8 path and the
    quantized forward: logits, predictions and first losses equal, gradients to
    rounding, and the parameters after two steps too."""
    for seed in range(60):
        graph, model = random_graph(seed, ia3_input=seed % 3 == 1)
        batch = 2 + seed % 4
        kw = {
            "act_cache": "s8" if seed % 2 else "f32",
            "int8_backward": seed % 5 == 0,
            "quantized_forward": seed % 6 == 5,
        }
        p1, pb = _plans(graph, model, batch, **kw)
        one, many = Trainer(model, p1), Trainer(model, pb)
        for t in (one, many):
            t.set_limits(1e9, 1e9)  # random weights: losses beyond the default bound
        x = _inputs(p1, 2 * batch, seed)
        labels = (seed + np.arange(2 * batch)) % p1.num_classes
        logits, predicted, statuses = many.predict_batch(x[:batch])
        assert not statuses.any()
        for i in range(batch):
            z, p = one.predict(x[i])
            np.testing.assert_array_equal(logits[i], z, err_msg=f"{seed} sample {i}")
            assert predicted[i] == p
        for step, half in enumerate((slice(0, batch), slice(batch, 2 * batch))):
            losses_one = [
                one.train_sample(xi, int(y)) for xi, y in zip(x[half], labels[half], strict=True)
            ]
            losses, statuses = many.train_batch(x[half], labels[half])
            assert not statuses.any(), (seed, statuses)
            if step == 0:  # the same parameters: the same sums
                np.testing.assert_array_equal(losses, np.float32(losses_one), err_msg=str(seed))
            else:  # parameters one step apart by rounding
                np.testing.assert_allclose(losses, losses_one, rtol=1e-4, err_msg=str(seed))
            _assert_gradients_close(one, many, (seed, step))
            one.step()
            many.step()
        for key, value in one.parameters().items():
            scale = max(float(np.max(np.abs(value))), 1e-6)
            assert float(np.max(np.abs(many.parameters()[key] - value))) / scale < 1e-4


def _tiny():
    """conv 3x3 s2 -> depthwise -> 1x1 conv -> mean -> dense, BitFit + head."""
    gb = GraphBuilder(5, (8, 8, 2))
    x = gb.conv(gb.input, 4, k=3, s=2, act=Activation.RELU6)
    x = gb.conv(x, 4, k=3, s=1, act=Activation.RELU, depthwise=True)
    x = gb.conv(x, 6, k=1, s=1, act=Activation.RELU)
    graph, model = gb.graph(gb.fc(gb.mean(x), 3))
    for layer in graph.layers[:3]:
        mark(layer, Method.BITFIT)
    mark(graph.layers[-1], Method.LAST_LAYER)
    return graph, model


def test_a_sample_that_may_not_add_its_gradient_leaves_the_others_training():
    """A non-finite input and a loss above max_loss: those samples report their status
    and a NaN loss; the gradients are those of the other samples alone."""
    graph, model = _tiny()
    p1, p4 = _plans(graph, model, 4)
    x = _inputs(p1, 4, 1).astype(np.float32) / 16.0
    labels = np.array([0, 1, 2, 0])
    probe = Trainer(model, p1)
    losses = np.array([probe.train_sample(xi, int(y)) for xi, y in zip(x, labels, strict=True)])
    worst = int(np.argmax(losses))
    x[(worst + 1) % 4, 0, 0, 0] = np.nan
    bound = float(np.max(np.delete(losses, worst)))  # only the worst loss lies above it
    one, many = Trainer(model, p1), Trainer(model, p4)
    for t in (one, many):
        t.set_limits(bound * (1 + 1e-6), 1e4)
    got, statuses = many.train_batch(x, labels)
    expected = {worst: Status.ERR_DIVERGED, (worst + 1) % 4: Status.ERR_NUMERIC}
    for i in range(4):
        assert statuses[i] == expected.get(i, Status.OK), (i, statuses)
        if i in expected:
            assert np.isnan(got[i])
        else:
            assert got[i] == pytest.approx(losses[i], rel=1e-6)
            one.train_sample(x[i], int(labels[i]))
    _assert_gradients_close(one, many, "the good samples")
    assert many._t.samples == 2


def test_batch_calls_check_their_arguments():
    graph, model = _tiny()
    _, p4 = _plans(graph, model, 4)
    trainer = Trainer(model, p4)
    x = _inputs(p4, 5, 2)
    with pytest.raises(ValueError, match="batch capacity is 4"):
        trainer.train_batch(x, np.zeros(5))
    with pytest.raises(ValueError, match="2 labels for 4 samples"):
        trainer.train_batch(x[:4], np.zeros(2))
    with pytest.raises(ValueError, match="not a whole number"):
        trainer.predict_batch(x[:2].reshape(-1)[:-1])
    with pytest.raises(PeftError, match="ERR_ARG"):
        trainer.train_batch(x[:3], np.array([0, 3, 1]))  # 3 classes: labels 0..2
    assert not any(g.any() for g in trainer.gradients().values())  # nothing trained
    assert trainer._t.samples == 0
    lib = trainer.lib
    for samples in (0, 5):  # the C call refuses what the binding never sends
        status = lib.peft_trainer_train_batch_s8(
            ctypes.byref(trainer._t), x.ctypes.data, np.zeros(5, np.int32).ctypes.data,
            samples, None, None,
        )  # fmt: skip
        assert status == Status.ERR_ARG
        status = lib.peft_trainer_predict_batch_s8(
            ctypes.byref(trainer._t), x.ctypes.data, samples, None, None, None
        )
        assert status == Status.ERR_ARG


def test_an_inference_arena_predicts_a_batch():
    """Mode "infer": the inference arena holds the batch too."""
    graph, model = _tiny()
    p1, p4 = _plans(graph, model, 4)
    x = _inputs(p1, 4, 3)
    single = Trainer(model, p1, mode="infer")
    logits, predicted, statuses = Trainer(model, p4, mode="infer").predict_batch(x)
    assert not statuses.any()
    for i in range(4):
        z, p = single.predict(x[i])
        np.testing.assert_array_equal(logits[i], z)
        assert predicted[i] == p


def test_a_batch_forward_then_backward_is_train_batch():
    """The two-phase batch call (forward_batch, backward: what the Cortex-M4F driver times)
    adds exactly the gradients of train_batch; a sample that may not add its gradient fails
    the forward and leaves nothing for backward."""
    graph, model = _tiny()
    _, p4 = _plans(graph, model, 4)
    x = _inputs(p4, 4, 5)
    labels = np.array([2, 0, 1, 1])
    split, whole = Trainer(model, p4), Trainer(model, p4)
    losses = split.forward_batch(x, labels.copy())
    split.backward()
    expected, statuses = whole.train_batch(x, labels)
    assert not statuses.any()
    np.testing.assert_array_equal(losses, expected)
    for key, value in whole.gradients().items():
        np.testing.assert_array_equal(split.gradients()[key], value)
    assert split._t.samples == 4
    split.set_limits(float(np.min(losses)) * 0.5, 1e4)  # every loss beyond the bound
    with pytest.raises(PeftError, match="ERR_DIVERGED"):
        split.forward_batch(x, labels)
    with pytest.raises(PeftError, match="ERR_ARG"):
        split.backward()
