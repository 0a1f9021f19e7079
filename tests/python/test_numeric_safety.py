"""Numeric faults injected into the C trainer: none may change what was there.

Each fault (a huge learning rate, NaN/Inf/huge inputs, a gradient that is not
finite or overflows, an optimizer state that overflows in the last array of a
step) is injected on random graphs of every operator and method, with both
optimizers. After it, the trainer must report it (ERR_NUMERIC, ERR_DIVERGED, ...),
and the parameters, the optimizer state and the step counter must be exactly
what they were (the exported state is byte for byte the same), the gradients
cleared, and that state must load into a fresh trainer and keep training.
"""

from __future__ import annotations

import ctypes
import struct
import zlib

import numpy as np
import pytest

from micropeft.host.runtime import PeftError, Status, Trainer
from micropeft.planning.plan import OptimizerConfig, build_plan
from micropeft.prep.graph import Method
from runtime_fixtures import random_graph
from test_runtime_plan import _chain

SEEDS = list(range(300, 312))
STATE_HEADER = 48
REFUSED = (Status.ERR_NUMERIC, Status.ERR_DIVERGED)


def _optimizer(seed: int, lr: float = 0.05) -> OptimizerConfig:
    if seed % 2:
        return OptimizerConfig("adam", lr=lr)
    return OptimizerConfig("sgd", lr=lr, momentum=0.9, clip_norm=1.0 if seed % 4 else 0.0)


def _int8_samples(plan, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    shape = plan.tensors[0].info.shape
    x = rng.integers(-128, 128, size=(n, *shape)).astype(np.int8)
    return x, rng.integers(0, plan.num_classes, size=n)


def _trained(seed: int, lr: float = 0.05) -> tuple[Trainer, object, bytes]:
    """A trainer after two good steps (non-zero optimizer state), its plan, its model."""
    graph, model = random_graph(seed)
    plan = build_plan(graph, model, _optimizer(seed, lr), "f32", seed=seed)
    trainer = Trainer(model, plan)
    x, y = _int8_samples(plan, np.random.default_rng(seed), 4)
    for i in range(4):
        trainer.train_sample(x[i], int(y[i]))
        if i % 2:
            trainer.step()
    return trainer, plan, model


def _grad_array(trainer: Trainer, index: int) -> np.ndarray:
    """The C gradient buffer of trainable array `index`, writable (fault injection)."""
    info = trainer.param_infos()[index]
    ptr = ctypes.cast(info.grad, ctypes.POINTER(ctypes.c_float))
    return np.ctypeslib.as_array(ptr, shape=(info.count,))


def _assert_refused_and_intact(trainer: Trainer, before: bytes, call, statuses=REFUSED) -> None:
    steps = trainer.steps
    with pytest.raises(PeftError) as info:
        call()
    assert info.value.status in statuses, info.value
    assert trainer.steps == steps
    assert trainer.export_state() == before  # parameters, optimizer state, step counter
    for grad in trainer.gradients().values():
        assert not np.any(grad), "gradients must be cleared (or never added)"


def _assert_resumable(state: bytes, plan, model: bytes, seed: int) -> None:
    """The kept state is finite, loads into a fresh trainer and trains on."""
    values = np.frombuffer(state[STATE_HEADER:], dtype=np.float32)
    assert np.all(np.isfinite(values))
    fresh = Trainer(model, plan)
    fresh.import_state(state)
    x, y = _int8_samples(plan, np.random.default_rng(seed + 1), 1)
    fresh.train_sample(x[0], int(y[0]))
    fresh.step()
    assert np.all(np.isfinite(np.frombuffer(fresh.export_state()[STATE_HEADER:], np.float32)))


@pytest.mark.parametrize("lr", [1e12, 1e30])
@pytest.mark.parametrize("seed", SEEDS)
def test_huge_learning_rate_is_refused_before_any_update(seed, lr):
    good, plan, model = _trained(seed)
    state = good.export_state()
    huge = build_plan(plan.graph, model, _optimizer(seed, lr), "f32", seed=seed)
    trainer = Trainer(model, huge)
    # The same parameters and moments under the huge-lr plan: re-sign the plan CRC.
    moved = bytearray(state)
    struct.pack_into("<I", moved, 16, *struct.unpack_from("<I", huge.to_bytes(), 12))
    struct.pack_into("<I", moved, 12, zlib.crc32(bytes(moved[16:])) & 0xFFFFFFFF)
    trainer.import_state(bytes(moved))
    before = trainer.export_state()
    x, y = _int8_samples(plan, np.random.default_rng(seed + 7), 2)
    for i in range(2):
        trainer.train_sample(x[i], int(y[i]))
    _assert_refused_and_intact(trainer, before, trainer.step)
    _assert_resumable(state, plan, model, seed)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 3e38])
@pytest.mark.parametrize("seed", SEEDS)
def test_non_finite_or_overflowing_input(seed, value):
    trainer, plan, model = _trained(seed)
    before = trainer.export_state()
    shape = plan.tensors[0].info.shape
    x = np.full(shape, value, dtype=np.float32)
    # NaN and infinity are refused at the input; 3e38 overflows inside the forward
    # (a non-finite or diverged loss) or gives a finite loss that is then trained.
    try:
        trainer.train_sample(x, 0)
    except PeftError as error:
        assert error.status in REFUSED
        assert trainer.export_state() == before
        assert not any(np.any(g) for g in trainer.gradients().values())
    else:
        assert np.isfinite(value)
        try:
            trainer.step()
        except PeftError as error:
            assert error.status in REFUSED
            assert trainer.export_state() == before
    if not np.isfinite(value):
        _assert_refused_and_intact(
            trainer, before, lambda: trainer.predict(x), (Status.ERR_NUMERIC,)
        )
    _assert_resumable(trainer.export_state(), plan, model, seed)


@pytest.mark.parametrize("fault", ["nan", "inf", "overflow"])
@pytest.mark.parametrize("seed", SEEDS)
def test_bad_gradient_in_the_last_array_changes_no_layer(seed, fault):
    trainer, plan, model = _trained(seed)
    before = trainer.export_state()
    x, y = _int8_samples(plan, np.random.default_rng(seed + 3), 1)
    trainer.train_sample(x[0], int(y[0]))
    # The last array is updated last: an in-place optimizer would have changed
    # every earlier array before noticing.
    grad = _grad_array(trainer, len(trainer.param_infos()) - 1)
    grad[-1] = {"nan": np.nan, "inf": np.inf, "overflow": 3e38}[fault]
    _assert_refused_and_intact(trainer, before, trainer.step, (Status.ERR_NUMERIC,))
    _assert_resumable(before, plan, model, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_optimizer_state_overflowing_mid_step_changes_nothing(seed):
    trainer, plan, model = _trained(seed)
    good = trainer.export_state()
    # The first optimizer moment of the last array near FLT_MAX: its update
    # overflows (Adam: m / eps) or leaves the parameter bound (SGD momentum),
    # after every other array's update was computed.
    n_params = plan.trainable_parameters
    states = plan.optimizer.states_per_param
    last_count = trainer.param_infos()[-1].count
    blob = bytearray(good)
    # Optimizer state follows the parameters: per array its m (then v for Adam).
    last_m = STATE_HEADER + 4 * n_params + 4 * states * (n_params - last_count)
    struct.pack_into("<f", blob, last_m + 4 * (last_count - 1), 3.0e38)
    struct.pack_into("<I", blob, 12, zlib.crc32(bytes(blob[16:])) & 0xFFFFFFFF)
    trainer.import_state(bytes(blob))
    before = trainer.export_state()
    x, y = _int8_samples(plan, np.random.default_rng(seed + 5), 1)
    trainer.train_sample(x[0], int(y[0]))
    _assert_refused_and_intact(trainer, before, trainer.step)
    _assert_resumable(good, plan, model, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_loss_above_the_bound_adds_nothing(seed):
    trainer, plan, model = _trained(seed)
    before = trainer.export_state()
    trainer.set_limits(1e-6, 1e4)  # every real loss is above it
    x, y = _int8_samples(plan, np.random.default_rng(seed), 1)
    _assert_refused_and_intact(
        trainer, before, lambda: trainer.train_sample(x[0], int(y[0])), (Status.ERR_DIVERGED,)
    )
    trainer.step()  # nothing was accumulated: no update
    assert trainer.export_state() == before
    trainer.set_limits(float("inf"), float("inf"))
    trainer.train_sample(x[0], int(y[0]))
    trainer.step()
    assert trainer.export_state() != before


def test_set_limits_checks_its_arguments():
    graph, model = _chain({4: Method.LAST_LAYER})
    trainer = Trainer(model, build_plan(graph, model, OptimizerConfig("sgd"), "f32"))
    for bad in ((0.0, 1.0), (1.0, -1.0), (float("nan"), 1.0)):
        with pytest.raises(PeftError) as info:
            trainer.set_limits(*bad)
        assert info.value.status == Status.ERR_ARG


def test_non_finite_parameters_are_not_predicted_exported_or_imported():
    graph, model = _chain({4: Method.LAST_LAYER})
    plan = build_plan(graph, model, OptimizerConfig("adam"), "f32")
    trainer = Trainer(model, plan)
    x, y = _int8_samples(plan, np.random.default_rng(1), 1)
    trainer.train_sample(x[0], int(y[0]))
    trainer.step()
    good = trainer.export_state()
    logits, _ = trainer.predict(x[0])
    assert np.all(np.isfinite(logits))
    # A NaN in the head's weights reaches every logit.
    info = trainer.param_infos()[0]
    weights = np.ctypeslib.as_array(info.data, shape=(info.count,))
    weights[:] = np.nan
    with pytest.raises(PeftError) as error:
        trainer.predict(x[0])
    assert error.value.status == Status.ERR_LOGITS_NONFINITE
    with pytest.raises(PeftError) as error:
        trainer.export_state()
    assert error.value.status == Status.ERR_PARAMS_NONFINITE
    # Loading the good state repairs it; a state holding NaN or infinity is refused.
    trainer.import_state(good)
    np.testing.assert_array_equal(trainer.predict(x[0])[0], logits)
    for at in (STATE_HEADER, len(good) - 4):  # a parameter; the last Adam moment
        for value in (np.nan, np.inf):
            bad = bytearray(good)
            struct.pack_into("<f", bad, at, value)
            struct.pack_into("<I", bad, 12, zlib.crc32(bytes(bad[16:])) & 0xFFFFFFFF)
            for mode in ("train", "infer"):
                target = Trainer(model, plan, mode=mode)
                target.import_state(good)
                kept = target.parameters()
                with pytest.raises(PeftError) as error:
                    target.import_state(bytes(bad))
                assert error.value.status == Status.ERR_STATE_NONFINITE
                for key, value_kept in target.parameters().items():
                    np.testing.assert_array_equal(value_kept, kept[key])
