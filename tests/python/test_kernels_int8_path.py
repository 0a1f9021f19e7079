"""The int8 path of the input gradient (peft_fc_bwd_input_s8s8) against a numpy
model of the same quantization and against TensorFlow's float gradient.

The numpy model is the header's definition: h = grad_out * weight scale per
output feature, each row quantized to round(h * 127 / max|h|) (halves away
from zero) in float32 as the C code computes it, then exact integer products
with the int8 weights, times max|h| / 127. The C result must match it to float
rounding (1e-6), in both backends, which must also agree bit for bit (exact
integer sums).

Against TensorFlow (the float gradient dL/dx of y = x W^T), the tolerance is
the quantization error's bound, element by element: each quantized value is
off by at most half a step s_r = max|h_r| / 127, so
|c - tf|[r][i] <= 0.5 * s_r * sum over o of |q[o][i]| (+ float rounding).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from micropeft.eval import kernel_binding as k


def numpy_model(q: np.ndarray, scales: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(grad_in, per-row step s_r) of the int8 path."""
    s_w = np.broadcast_to(scales.astype(np.float32), (q.shape[0],))
    h = g.astype(np.float32) * s_w[None, :]
    m = np.max(np.abs(h), axis=1)
    inv = np.where(m > 0, np.float32(127.0) / np.where(m > 0, m, 1), 0).astype(np.float32)
    v = (h * inv[:, None]).astype(np.float32)
    qg = np.clip(np.trunc(v + np.where(v < 0, -0.5, 0.5).astype(np.float32)), -127, 127)
    acc = qg.astype(np.int64) @ q.astype(np.int64)
    step = (m / np.float32(127.0)).astype(np.float32)
    return (acc.astype(np.float32) * step[:, None]).astype(np.float32), step


@pytest.mark.parametrize("seed", range(24))
def test_int8_path_matches_its_model_and_tensorflow(seed: int):
    rng = np.random.default_rng(8000 + seed)
    rows = int(rng.choice([1, 3, 8, 9, 16, 33, 64, 70]))  # 32 rows a chunk: whole and partial
    n_in, n_out = (int(rng.choice([1, 3, 4, 7, 16, 32, 64, 129])) for _ in range(2))
    p = k.fc_params(rows, n_in, n_out)
    q = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.int8)
    scales = rng.uniform(0.002, 0.05, size=1 if seed % 3 == 0 else n_out).astype(np.float32)
    g = rng.standard_normal((rows, n_out)).astype(np.float32)
    if seed % 5 == 0:
        g[0] = 0.0  # a zero row: step 0, gradient 0
    results = {}
    for backend in k.BACKENDS:
        with k.use_backend(backend):
            results[backend] = k.fc_bwd_input_s8s8(p, q, scales, g)
            base = rng.standard_normal((rows, n_in)).astype(np.float32)
            added = k.fc_bwd_input_s8s8(p, q, scales, g, base.copy(), True)
            np.testing.assert_array_equal(added, base + results[backend])
    np.testing.assert_array_equal(results["reference"], results["optimized"])
    want, step = numpy_model(q, scales, g)
    got = results["optimized"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * float(np.max(np.abs(want)) + 1))
    w = q.astype(np.float64) * np.broadcast_to(scales, (n_out,))[:, None]
    tx = tf.Variable(np.zeros((rows, n_in)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.matmul(tx, w, transpose_b=True) * g.astype(np.float64))
    dx = tape.gradient(loss, tx).numpy()
    bound = 0.5 * step.astype(np.float64)[:, None] * np.abs(q.astype(np.float64)).sum(axis=0)
    assert np.all(np.abs(got - dx) <= bound * (1 + 1e-5) + 1e-5 * np.max(np.abs(dx))), seed


def test_int8_path_refuses_a_small_scratch():
    p = k.fc_params(2, 8, 6)
    lib = k.library()
    lib.peft_fc_bwd_input_s8s8_get_buffer_size.argtypes = [k._FC]
    need = lib.peft_fc_bwd_input_s8s8_get_buffer_size(p)
    assert need > 0
    q = np.ones((6, 8), np.int8)
    s = np.ones(1, np.float32)
    g = np.ones((2, 6), np.float32)
    gi = np.full((2, 8), 7.0, np.float32)
    w = k.WeightsS8(q.ctypes.data_as(k._S8P), s.ctypes.data_as(k._F32P), 1)
    scratch = np.zeros(need, np.int16)
    fn = lib.peft_fc_bwd_input_s8s8
    status = fn(p, w, k._fp(g), k._fp(gi), False, scratch.ctypes.data_as(fn.argtypes[5]), need - 2)
    assert status == 1 and np.all(gi == 7.0)  # PEFT_ERR_ARG, nothing written
