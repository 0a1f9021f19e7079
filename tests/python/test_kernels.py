"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels against TensorFlow.

Every case is a random geometry drawn from a fixed seed (tiny shapes: 3..9
pixels a side, 1..8 channels, kernels 1/3/5 and non-square, strides 1/2, SAME
and VALID, per-tensor and per-channel scales). The reference is TensorFlow in
float64 (tf.nn.conv2d, tf.nn.depthwise_conv2d, matmul) on the float32 inputs,
with int8 weights dequantized as w = q * scale; the gradients come from
tf.GradientTape on L = sum(y * grad_out) for a random grad_out, so
dL/dx, dL/dw and dL/dbias are exactly what the backward kernels compute.

Error measure (per tensor): max|c - tf| / max(max|tf|, 1e-6), which must be
<= 1e-4. The C side runs in float32.

Gradient cases per seed: conv and depthwise 4 (bwd_input s8 and f32,
bwd_weight, bwd_bias), fc 4; with 48 conv, 32 depthwise and 24 fc seeds that
is 416 gradient cases, plus forward cases (s8 and f32) for each seed. Sensor
series inputs (T, 1, C) with (k, 1) kernels add 12 conv and 12 depthwise seeds
(T up to 40, so the optimized backend's long-row paths run too).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gradcheck import assert_close
from micropeft.eval import kernel_binding as k

# Every test runs once per kernel backend (reference and optimized).
pytestmark = pytest.mark.usefixtures("each_backend")


def tf_padding(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(out, pad_before) as TensorFlow computes them for SAME/VALID."""
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2
    return -(-(size - kernel + 1) // stride), 0


def random_geometry(rng: np.random.Generator, depthwise: bool, series: bool = False) -> dict:
    """A random valid geometry; depthwise uses one stride for both axes (TF's rule).

    `series`: a (T, 1, C) sensor input (T 8..40, one column), kernels (k, 1), strides
    (s, 1) (depthwise (s, s), which on one column is the same), up to 12 channels."""
    while True:
        h, w = (int(v) for v in rng.integers(3, 10, size=2))
        kh, kw = (int(v) for v in rng.choice([1, 3, 5], size=2))
        if series:
            h, w, kh, kw = int(rng.integers(8, 41)), 1, int(rng.choice([1, 3, 5, 7])), 1
        if depthwise:
            s = int(rng.choice([1, 2]))
            sh, sw = s, s
        else:
            sh, sw = (int(v) for v in rng.choice([1, 2], size=2))
            if series:
                sw = 1
        padding = str(rng.choice(["SAME", "VALID"]))
        if padding == "VALID" and (kh > h or kw > w):
            continue
        oh, pt = tf_padding(h, kh, sh, padding)
        ow, pl = tf_padding(w, kw, sw, padding)
        cin = int(rng.choice([1, 2, 3, 5, 8, 12] if series else [1, 2, 3, 5, 8]))
        cout = cin if depthwise else int(rng.choice([1, 2, 3, 4, 7]))
        return dict(
            in_shape=(h, w, cin),
            out_shape=(oh, ow, cout),
            kernel=(kh, kw),
            stride=(sh, sw),
            pad=(pt, pl),
            padding=padding,
        )


def random_scales(rng: np.random.Generator, channels: int) -> np.ndarray:
    count = 1 if rng.random() < 0.4 else channels
    return rng.uniform(0.002, 0.05, size=count).astype(np.float32)


def tf_grads(fn, x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray):
    """y = fn(x, w) + b in float64 and dL/dx, dL/dw, dL/db for L = sum(y * g)."""
    tx, tw, tb = (tf.Variable(np.asarray(a, dtype=np.float64)) for a in (x, w, b))
    with tf.GradientTape() as tape:
        y = fn(tx, tw) + tb
        loss = tf.reduce_sum(y * tf.constant(g, dtype=tf.float64))
    dx, dw, db = tape.gradient(loss, [tx, tw, tb])
    return y.numpy(), dx.numpy(), dw.numpy(), db.numpy()


CONV_SEEDS = range(48)
DEPTHWISE_SEEDS = range(100, 132)
FC_SEEDS = range(200, 224)
SERIES_SEEDS = range(300, 312)


@pytest.mark.parametrize("seed", CONV_SEEDS)
def test_conv2d_matches_tensorflow(seed: int):
    rng = np.random.default_rng(seed)
    _check_conv2d(rng, random_geometry(rng, depthwise=False))


@pytest.mark.parametrize("seed", SERIES_SEEDS)
def test_conv2d_on_series_matches_tensorflow(seed: int):
    rng = np.random.default_rng(seed)
    _check_conv2d(rng, random_geometry(rng, depthwise=False, series=True))


def _check_conv2d(rng: np.random.Generator, geo: dict) -> None:
    (h, w, cin), (oh, ow, cout) = geo["in_shape"], geo["out_shape"]
    kh, kw = geo["kernel"]
    p = k.conv_params(geo["in_shape"], geo["out_shape"], geo["kernel"], geo["stride"], geo["pad"])
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    q = rng.integers(-127, 128, size=(cout, kh, kw, cin)).astype(np.int8)
    scales = random_scales(rng, cout)
    w_s8 = q.astype(np.float32) * np.broadcast_to(scales, (cout,))[:, None, None, None]
    w_f32 = rng.standard_normal((cout, kh, kw, cin)).astype(np.float32) * 0.3
    bias = rng.standard_normal(cout).astype(np.float32)
    g = rng.standard_normal((oh, ow, cout)).astype(np.float32)
    strides = [1, *geo["stride"], 1]

    def conv(tx: tf.Tensor, tw: tf.Tensor) -> tf.Tensor:
        # Ours is [out][kh][kw][in]; TF wants [kh][kw][in][out].
        filters = tf.transpose(tw, [1, 2, 3, 0])
        return tf.nn.conv2d(tx[None], filters, strides, geo["padding"])[0]

    for weights, is_s8 in ((w_s8, True), (w_f32, False)):
        y, dx, dw, db = tf_grads(conv, x, weights, bias, g)
        if is_s8:
            assert_close("conv2d_fwd_s8", k.conv2d_fwd_s8(p, x, q, scales, bias), y)
            assert_close("conv2d_bwd_input_s8", k.conv2d_bwd_input_s8(p, q, scales, g), dx)
        else:
            assert_close("conv2d_fwd_f32", k.conv2d_fwd_f32(p, x, weights, bias), y)
            assert_close("conv2d_bwd_input_f32", k.conv2d_bwd_input_f32(p, weights, g), dx)
            assert_close("conv2d_bwd_weight_f32", k.conv2d_bwd_weight_f32(p, x, g), dw)
            assert_close("conv2d_bwd_bias_f32", k.conv2d_bwd_bias_f32(geo["out_shape"], g), db)


@pytest.mark.parametrize("seed", DEPTHWISE_SEEDS)
def test_depthwise_conv2d_matches_tensorflow(seed: int):
    rng = np.random.default_rng(seed)
    _check_depthwise_conv2d(rng, random_geometry(rng, depthwise=True))


@pytest.mark.parametrize("seed", SERIES_SEEDS)
def test_depthwise_conv2d_on_series_matches_tensorflow(seed: int):
    rng = np.random.default_rng(seed)
    _check_depthwise_conv2d(rng, random_geometry(rng, depthwise=True, series=True))


def _check_depthwise_conv2d(rng: np.random.Generator, geo: dict) -> None:
    (h, w, c), (oh, ow, _) = geo["in_shape"], geo["out_shape"]
    kh, kw = geo["kernel"]
    p = k.conv_params(geo["in_shape"], geo["out_shape"], geo["kernel"], geo["stride"], geo["pad"])
    x = rng.standard_normal((h, w, c)).astype(np.float32)
    q = rng.integers(-127, 128, size=(kh, kw, c)).astype(np.int8)
    scales = random_scales(rng, c)
    w_s8 = q.astype(np.float32) * np.broadcast_to(scales, (c,))
    w_f32 = rng.standard_normal((kh, kw, c)).astype(np.float32) * 0.3
    bias = rng.standard_normal(c).astype(np.float32)
    g = rng.standard_normal((oh, ow, c)).astype(np.float32)
    strides = [1, *geo["stride"], 1]

    def depthwise(tx: tf.Tensor, tw: tf.Tensor) -> tf.Tensor:
        # Ours is [kh][kw][c]; TF wants [kh][kw][c][multiplier].
        return tf.nn.depthwise_conv2d(tx[None], tw[..., None], strides, geo["padding"])[0]

    for weights, is_s8 in ((w_s8, True), (w_f32, False)):
        y, dx, dw, db = tf_grads(depthwise, x, weights, bias, g)
        if is_s8:
            got = k.depthwise_conv2d_fwd_s8(p, x, q, scales, bias)
            assert_close("depthwise_conv2d_fwd_s8", got, y)
            got = k.depthwise_conv2d_bwd_input_s8(p, q, scales, g)
            assert_close("depthwise_conv2d_bwd_input_s8", got, dx)
        else:
            got = k.depthwise_conv2d_fwd_f32(p, x, weights, bias)
            assert_close("depthwise_conv2d_fwd_f32", got, y)
            got = k.depthwise_conv2d_bwd_input_f32(p, weights, g)
            assert_close("depthwise_conv2d_bwd_input_f32", got, dx)
            got = k.depthwise_conv2d_bwd_weight_f32(p, x, g)
            assert_close("depthwise_conv2d_bwd_weight_f32", got, dw)
            got = k.depthwise_conv2d_bwd_bias_f32(geo["out_shape"], g)
            assert_close("depthwise_conv2d_bwd_bias_f32", got, db)


@pytest.mark.parametrize("seed", FC_SEEDS)
def test_fully_connected_matches_tensorflow(seed: int):
    rng = np.random.default_rng(seed)
    rows = int(rng.choice([1, 1, 2, 5, 9]))
    n_in, n_out = (int(v) for v in rng.integers(1, 33, size=2))
    p = k.fc_params(rows, n_in, n_out)
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    q = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.int8)
    scales = random_scales(rng, n_out)
    w_s8 = q.astype(np.float32) * np.broadcast_to(scales, (n_out,))[:, None]
    w_f32 = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.3
    bias = rng.standard_normal(n_out).astype(np.float32)
    g = rng.standard_normal((rows, n_out)).astype(np.float32)

    def fc(tx: tf.Tensor, tw: tf.Tensor) -> tf.Tensor:
        return tf.matmul(tx, tw, transpose_b=True)

    for weights, is_s8 in ((w_s8, True), (w_f32, False)):
        y, dx, dw, db = tf_grads(fc, x, weights, bias, g)
        if is_s8:
            assert_close("fc_fwd_s8", k.fc_fwd_s8(p, x, q, scales, bias), y)
            assert_close("fc_bwd_input_s8", k.fc_bwd_input_s8(p, q, scales, g), dx)
        else:
            assert_close("fc_fwd_f32", k.fc_fwd_f32(p, x, weights, bias), y)
            assert_close("fc_bwd_input_f32", k.fc_bwd_input_f32(p, weights, g), dx)
            assert_close("fc_bwd_weight_f32", k.fc_bwd_weight_f32(p, x, g), dw)
            assert_close("fc_bwd_bias_f32", k.fc_bwd_bias_f32(p, g), db)


@pytest.mark.parametrize("seed", range(6))
def test_forward_without_bias_equals_forward_with_zero_bias(seed: int):
    """bias == NULL means no bias (LoRA factors, TFLite layers without one)."""
    rng = np.random.default_rng(300 + seed)
    geo = random_geometry(rng, depthwise=False)
    (h, w, cin), cout = geo["in_shape"], geo["out_shape"][2]
    p = k.conv_params(geo["in_shape"], geo["out_shape"], geo["kernel"], geo["stride"], geo["pad"])
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    wt = rng.standard_normal((cout, *geo["kernel"], cin)).astype(np.float32)
    zero = np.zeros(cout, dtype=np.float32)
    np.testing.assert_array_equal(k.conv2d_fwd_f32(p, x, wt), k.conv2d_fwd_f32(p, x, wt, zero))
    fp = k.fc_params(2, cin, cout)
    xf = rng.standard_normal((2, cin)).astype(np.float32)
    wf = rng.standard_normal((cout, cin)).astype(np.float32)
    np.testing.assert_array_equal(k.fc_fwd_f32(fp, xf, wf), k.fc_fwd_f32(fp, xf, wf, zero))
    assert_close("fc_fwd_f32", k.fc_fwd_f32(fp, xf, wf), xf.astype(np.float64) @ wf.T)
