"""ADD, MEAN, AVERAGE_POOL_2D, PAD, activations, scale-shift, softmax +
cross-entropy and int8 (de)quantization against TensorFlow / TFLite's formulas.

Forward and backward values come from TensorFlow in float64 on the float32
inputs, gradients from tf.GradientTape on L = sum(y * grad_out) (for softmax,
the loss of tf.nn.sparse_softmax_cross_entropy_with_logits itself). Error
measure (per tensor): max|c - tf| / max(max|tf|, 1e-6) <= 1e-4, the C side in
float32. One exception: the softmax gradient is probs - onehot (the interface
passes float32 probs, whose spacing near 1 is 6e-8), so when the answer is
confident and the gradient is ~1e-6 it is measured against max(max|tf|, 1e-2);
the confident cases still check the loss itself (log1pf keeps it accurate)
with the 1e-6 floor. AVERAGE_POOL_2D is compared with tf.nn.avg_pool2d, which (like
TFLite) divides by the number of non-padding elements under SAME padding.

Quantization is compared exactly with numpy written from TFLite's reference
formula: q = clamp(round_half_away_from_zero(x / scale) + zero_point).

Gradient cases: add 2 x 8, mean 10, avg_pool2d 30, pad 12, activation 3 x 8,
scale_shift 3 x 12, softmax_xent 24: 152 in all.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from gradcheck import assert_close
from micropeft.eval import kernel_binding as k


def tape(fn, inputs: list[np.ndarray], g: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """fn(*inputs) in float64 and the gradients of sum(fn(...) * g) wrt every input."""
    variables = [tf.Variable(np.asarray(a, dtype=np.float64)) for a in inputs]
    with tf.GradientTape() as t:
        y = fn(*variables)
        loss = tf.reduce_sum(y * tf.constant(g, dtype=tf.float64))
    return y.numpy(), [d.numpy() for d in t.gradient(loss, variables)]


def random_image(rng: np.random.Generator) -> np.ndarray:
    h, w = (int(v) for v in rng.integers(3, 10, size=2))
    c = int(rng.choice([1, 2, 3, 5, 8]))
    return rng.standard_normal((h, w, c)).astype(np.float32)


@pytest.mark.parametrize("seed", range(8))
def test_add_matches_tensorflow(seed: int):
    rng = np.random.default_rng(400 + seed)
    a = random_image(rng)
    b = rng.standard_normal(a.shape).astype(np.float32)
    g = rng.standard_normal(a.shape).astype(np.float32)
    y, (da, db) = tape(lambda ta, tb: ta + tb, [a, b], g)
    assert_close("add_fwd_f32", k.add_fwd_f32(a, b), y)
    assert_close("add_bwd_input_f32", k.add_bwd_input_f32(g), da)
    assert_close("add_bwd_input_f32", k.add_bwd_input_f32(g), db)


@pytest.mark.parametrize("seed", range(10))
def test_mean_matches_tensorflow(seed: int):
    rng = np.random.default_rng(500 + seed)
    x = random_image(rng)
    g = rng.standard_normal(x.shape[2]).astype(np.float32)
    y, (dx,) = tape(lambda tx: tf.reduce_mean(tx, axis=[0, 1]), [x], g)
    assert_close("mean_fwd_f32", k.mean_fwd_f32(x), y)
    assert_close("mean_bwd_input_f32", k.mean_bwd_input_f32(x.shape, g), dx)


def tf_padding(size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(out, pad_before) as TensorFlow computes them for SAME/VALID."""
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return out, total // 2
    return -(-(size - kernel + 1) // stride), 0


@pytest.mark.parametrize("seed", range(30))
def test_avg_pool2d_matches_tensorflow(seed: int):
    rng = np.random.default_rng(600 + seed)
    x = random_image(rng)
    h, w, c = x.shape
    kh, kw = (int(v) for v in rng.choice([1, 2, 3], size=2))
    sh, sw = (int(v) for v in rng.choice([1, 2], size=2))
    padding = "SAME" if seed % 2 == 0 else "VALID"
    oh, pt = tf_padding(h, kh, sh, padding)
    ow, pl = tf_padding(w, kw, sw, padding)
    p = k.conv_params((h, w, c), (oh, ow, c), (kh, kw), (sh, sw), (pt, pl))
    g = rng.standard_normal((oh, ow, c)).astype(np.float32)

    def pool(tx: tf.Tensor) -> tf.Tensor:
        return tf.nn.avg_pool2d(tx[None], [kh, kw], [sh, sw], padding)[0]

    y, (dx,) = tape(pool, [x], g)
    assert_close("avg_pool2d_fwd_f32", k.avg_pool2d_fwd_f32(p, x), y)
    assert_close("avg_pool2d_bwd_input_f32", k.avg_pool2d_bwd_input_f32(p, g), dx)


@pytest.mark.parametrize("seed", range(12))
def test_pad_matches_tensorflow(seed: int):
    rng = np.random.default_rng(700 + seed)
    x = random_image(rng)
    h, w, c = x.shape
    top, bottom, left, right = (int(v) for v in rng.integers(0, 3, size=4))
    out_shape = (h + top + bottom, w + left + right, c)
    p = k.pad_params(x.shape, out_shape, (top, left))
    g = rng.standard_normal(out_shape).astype(np.float32)
    y, (dx,) = tape(lambda tx: tf.pad(tx, [[top, bottom], [left, right], [0, 0]]), [x], g)
    assert_close("pad_fwd_f32", k.pad_fwd_f32(p, x), y)
    assert_close("pad_bwd_input_f32", k.pad_bwd_input_f32(p, g), dx)


ACTIVATIONS = {
    k.ACT_NONE: tf.identity,
    k.ACT_RELU: tf.nn.relu,
    k.ACT_RELU6: tf.nn.relu6,
}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_activation_matches_tensorflow(act: int, seed: int):
    rng = np.random.default_rng(800 + seed)
    x = (rng.standard_normal(int(rng.integers(1, 60))) * 4).astype(np.float32)
    # The kinks, where TF's gradient is 0: exactly 0 and exactly 6.
    x[: min(2, x.size)] = [0.0, 6.0][: min(2, x.size)]
    g = rng.standard_normal(x.shape).astype(np.float32)
    y, (dx,) = tape(ACTIVATIONS[act], [x], g)
    y_c = k.activation_fwd_f32(act, x)
    assert_close("activation_fwd_f32", y_c, y)
    assert_close("activation_bwd_f32", k.activation_bwd_f32(act, y_c, g), dx)


@pytest.mark.parametrize("seed", range(12))
def test_scale_shift_matches_tensorflow(seed: int):
    rng = np.random.default_rng(900 + seed)
    pixels, channels = int(rng.integers(1, 31)), int(rng.integers(1, 9))
    x = rng.standard_normal((pixels, channels)).astype(np.float32)
    gamma = rng.standard_normal(channels).astype(np.float32)
    beta = rng.standard_normal(channels).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y, (dx, dgamma, dbeta) = tape(lambda tx, tg, tb: tx * tg + tb, [x, gamma, beta], g)
    assert_close("scale_shift_fwd_f32", k.scale_shift_fwd_f32(x, gamma, beta), y)
    assert_close("scale_shift_bwd_input_f32", k.scale_shift_bwd_input_f32(gamma, g), dx)
    got_gamma, got_beta = k.scale_shift_bwd_param_f32(x, g)
    assert_close("scale_shift_bwd_param_f32", got_gamma, dgamma)
    assert_close("scale_shift_bwd_param_f32", got_beta, dbeta)


@pytest.mark.parametrize("seed", range(24))
def test_softmax_xent_matches_tensorflow(seed: int):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(1, 13))
    logits = (rng.standard_normal(n) * rng.choice([0.1, 1.0, 10.0])).astype(np.float32)
    if seed % 4 == 1:
        logits += np.float32(1000.0)  # exp() of these overflows without the max shift
    label = int(rng.integers(0, n))
    if seed % 4 == 2:
        logits[label] += np.float32(15.0)  # a confident, correct answer: tiny loss
    t_logits = tf.Variable(logits.astype(np.float64)[None])
    with tf.GradientTape() as t:
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits([label], t_logits)[0]
    (d_logits,) = t.gradient(loss, [t_logits])
    probs, loss_c = k.softmax_xent_fwd_f32(logits, label)
    assert_close("softmax_xent_fwd_f32", probs, tf.nn.softmax(t_logits)[0].numpy())
    assert_close("softmax_xent_fwd_f32", np.float64(loss_c), loss.numpy())
    # probs - onehot from a float32 probability near 1 (spacing 6e-8) cannot
    # resolve a gradient below ~1e-7: hence the 1e-2 floor (see module doc).
    got = k.softmax_xent_bwd_f32(probs, label)
    assert_close("softmax_xent_bwd_f32", got, d_logits[0], floor=1e-2)


def test_softmax_of_zero_and_ln2_is_one_third_two_thirds():
    probs, loss = k.softmax_xent_fwd_f32(np.array([0.0, np.log(2.0)]), 0)
    np.testing.assert_allclose(probs, [1 / 3, 2 / 3], rtol=1e-6)
    assert abs(loss - np.log(3.0)) < 1e-6


def tflite_quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite's AffineQuantize: x / scale in float32, std::round (half away from
    zero), + zero_point, clamp to int8."""
    v = (np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.float64)
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.clip(rounded + zero_point, -128, 127).astype(np.int8)


@pytest.mark.parametrize("seed", range(10))
def test_quantize_matches_tflite_formula(seed: int):
    rng = np.random.default_rng(1100 + seed)
    scale = float(np.float32(rng.uniform(0.005, 0.2)))
    zero_point = int(rng.integers(-128, 128))
    x = (rng.standard_normal(257) * 128 * scale).astype(np.float32)
    # Exact halves of the step (x / scale lands on k + 0.5) and out-of-range values.
    halves = (np.arange(-6, 6) + 0.5).astype(np.float32) * np.float32(scale)
    x = np.concatenate([x, halves, np.float32([1e9, -1e9, np.inf, -np.inf, 0.0])])
    np.testing.assert_array_equal(
        k.quantize_s8(x, scale, zero_point), tflite_quantize(x, scale, zero_point)
    )


def test_quantize_rounds_half_away_from_zero():
    # scale 0.25: x / scale is exact, so these are exact halves.
    x = np.float32([-0.625, -0.375, -0.125, 0.125, 0.375, 0.625])
    np.testing.assert_array_equal(k.quantize_s8(x, 0.25, 0), [-3, -2, -1, 1, 2, 3])
    np.testing.assert_array_equal(k.quantize_s8(x, 0.25, 10), [7, 8, 9, 11, 12, 13])
    np.testing.assert_array_equal(k.quantize_s8(np.float32([100.0, -100.0]), 0.25, 0), [127, -128])


@pytest.mark.parametrize("seed", range(5))
def test_dequantize_is_exact(seed: int):
    rng = np.random.default_rng(1200 + seed)
    scale = np.float32(rng.uniform(0.001, 0.5))
    zero_point = int(rng.integers(-128, 128))
    q = np.arange(-128, 128, dtype=np.int8)
    want = scale * (q.astype(np.int32) - zero_point).astype(np.float32)
    np.testing.assert_array_equal(k.dequantize_s8(q, float(scale), zero_point), want)
    # A round trip through quantize gives back q where the zero point keeps it in range.
    np.testing.assert_array_equal(k.quantize_s8(want, float(scale), zero_point), q)
