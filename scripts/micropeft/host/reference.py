"""TensorFlow reference of what the C runtime trains: the same method, from the same int8 model.

The trainable part is ``graph.layers[split_layer:]`` (the plan's split layer: the
first layer that trains anything); its input is the split tensor, the first
input of that layer. Everything runs in float32:

- frozen weights are ``int8 * scale`` (one scale per output channel, or one per
  tensor), read in place from the .tflite bytes through the layers' ArrayRefs,
  in TFLite's layouts (CONV_2D ``[out][kh][kw][in]``, DEPTHWISE_CONV_2D
  ``[kh][kw][c]``, FULLY_CONNECTED ``[out][in]``); biases are ``int32 * scale``.
- a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layer computes
  ``y = linear(x) + bias``; with SCALE_SHIFT ``y = y * gamma + beta`` (per output
  channel, gamma starts at 1, beta at 0); with LORA (1x1 conv and FC only)
  ``y += (alpha / r) * B(A(x))`` with A ``[r][in]``, B ``[out][r]`` (B starts at
  0); with IA3 ``y = y * l`` (per output channel, l starts at 1; excludes
  SCALE_SHIFT); with IA3_INPUT ``linear(x * l)`` instead of ``linear(x)`` (l per
  input channel, a dense layer's input feature, starting at 1, the input scaled before
  a convolution's window; weights frozen); with DORA (1x1 conv and FC only, no other
  method on the layer)
  ``y = n * (linear(x) + (alpha / r) * B(A(x))) + bias`` with
  ``n = m / max(||W + (alpha / r) B A||_c, 1e-12)``, the L2 norm of each output
  channel's weight row held constant in backward (HF PEFT detaches it, DoRA
  paper section 4.3), and m starting at ``||W||_c``; then the fused activation
  (NONE, RELU, RELU6).
- ADD is ``a + b`` (+ activation), MEAN averages over H and W, AVERAGE_POOL_2D
  divides by the number of non-padding elements (TFLite), PAD pads with zeros,
  RESHAPE is the identity on batch-1 data. Padding is explicit: ``pad_top`` /
  ``pad_left`` lead, the trailing padding follows from the in/out shapes.
- trained parameters: FULL / LAST_LAYER / SPARSE train weight and bias, BITFIT
  the bias, SCALE_SHIFT gamma and beta, LORA A and B, DORA dora_m, A and B,
  IA3 ia3_l, IA3_INPUT ia3_in; everything else is a constant.

What backward reads is what the runtime keeps (``act_cache``, plan.py): with
"s8" the gradient of a trained weight, LoRA A or IA3_INPUT's l sees the layer's input, the
gradient of gamma (IA3's l) sees the pre-scale output, and DoRA's m sees
``W x + (alpha / r) B A x`` with the input of ``W x`` (the runtime recomputes it
from the kept input), all rounded to int8 with the quantization of the tensor
they belong to (the input tensor; the layer's output tensor) and back; the
forward and every other gradient use the float values. With "f32" nothing is
rounded.

The int8 backward path (``int8_backward``, plan.py): the gradient wrt the input
of a frozen layer that has a fully connected form (FC, 1x1 stride-1 conv) is
what peft_fc_bwd_input_s8s8 computes: per row (a pixel of one sample) of the
output gradient ``g``, ``h = g * weight_scale`` per output channel, quantized to
``round(h * 127 / max|h|)`` (halves away from zero) and multiplied by the int8
weights in exact integer sums, times ``max|h| / 127``. Only that gradient changes;
the forward and every parameter gradient stay float.

The quantized forward (``quantized_forward``, PlanFlag.QUANTIZED_FORWARD): every
layer's output except the graph's output (the logits), after the fused activation
and for every op (ADD, MEAN, AVERAGE_POOL_2D, PAD and RESHAPE too), is replaced by
its int8 value with its tensor's quantization, in float32 as the C runtime computes
it (``fake_quantize``: ``v = y / scale``, rounded half away from zero, plus the
zero point, clipped to [-128, 127], minus the zero point, times the scale), in
training and in prediction. A CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED
output is first rounded to a multiple of ``2^-rs`` of a step (halves away from zero),
``rs`` the right shift of the channel's requantization multiplier
``s_in * s_w / s_out = m * 2^-rs``, m in [0.5, 1), at most 31 (float32 ``frexp``):
that is how TFLite's int8 kernels round (MultiplyByQuantizedMultiplier rounds the
scaled accumulator twice), so the runtime's activations are, but for rare float32
ties, the int8 model's own; for that a trained bias of such a layer (not DoRA's) is also
used rounded to its int32 steps ``s_in * s_w`` (halves away from zero), as merge
stores it. A layer whose training only multiplies its output channels by ``f``
(``scales_channels_only``: scale+shift's gamma, IA3's l) is rounded as merge stores it,
with ``f`` in the weight scales: ``s_w`` is ``|f| s_w`` (``s_w`` where ``f`` is 0) for
its shifts, and its whole bias ``f b + beta`` is rounded to the steps ``s_in |f| s_w``
after the scaling. A layer whose own weights train (``plan.rounds_trained_weights``)
computes with them rounded to int8 as merge stores them (``round_weights``: per channel
the model's scale where ``max |w| <= 127 s_w``, else ``max |w| / 127``), and a LoRA layer
(``plan.rounds_lora``) with ``W0 + (alpha / r) B A`` rounded the same way
(``lora_rounded_weights``); their scales then give the shifts and a trained bias's steps,
and every gradient passes that rounding straight through (LoRA's A and B keep their own).
The activations' gradient is the straight-through estimator too: the
gradient wrt the fake-quantized value passes to ``y`` unchanged. The value is
``fq(y)`` bit for bit (written ``stop_gradient(fq(y)) + (y - stop_gradient(y))``).

Loss: softmax cross-entropy (natural log) of the graph's output logits, averaged
over the batch (the C runtime sums per-sample gradients and divides by their
count at step(), which is the same).

One optimizer step on the mean gradient ``g`` of every trained parameter ``p``:

1. clipping (``clip_norm > 0``): ``g *= min(1, clip_norm / ||g||)``, with
   ``||g||`` the global L2 norm over all trained parameters;
2. weight decay (``weight_decay > 0``, L2): ``g += weight_decay * p``;
3. ``t += 1`` (the update's number); with ``lr_decay_steps`` N the rate is HF's linear
   schedule ``lr * (N - (t - 1)) / N``, 0 from update N + 1 on (else ``lr``);
   SGD with momentum ``m``: ``v = m * v + g``; ``p -= lr * v`` (v starts at 0);
   Adam: ``m1 = b1 * m1 + (1 - b1) * g``;
   ``m2 = b2 * m2 + (1 - b2) * g * g``;
   ``p -= lr * (m1 / (1 - b1**t)) / (sqrt(m2 / (1 - b2**t)) + eps)``.

These are written out by hand (Keras optimizers put epsilon elsewhere).
Parameters are keyed ``f"{layer_name}/{kind}"`` with kind one of weight, bias,
gamma, beta, lora_a, lora_b, in the layouts above. TensorFlow is imported inside
functions so that importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from micropeft import formats
from micropeft.planning.plan import (
    has_fc_form,
    lora_a_init,
    rounds_lora,
    rounds_trained_weights,
)
from micropeft.prep import convert
from micropeft.prep.graph import Activation, ArrayRef, Graph, Layer, Method, Op

_WEIGHTED_OPS = (Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.FULLY_CONNECTED)
DORA_NORM_MIN = 1e-12  # DoRA's norm is clamped here (lib/peft/methods/peft_method_dora.c)


class OptimizerSettings(Protocol):
    """What the reference reads of an optimizer configuration (plan.OptimizerConfig fits)."""

    kind: str  # "sgd" or "adam"
    lr: float
    momentum: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    clip_norm: float
    lr_decay_steps: int  # linear decay of lr to 0 over this many updates; 0: constant


# ---- Reading the int8 model ---------------------------------------------------------------


def read_array(model_bytes: bytes, ref: ArrayRef) -> np.ndarray:
    """The raw values (int8 weights or int32 biases) of a constant array, flat."""
    dtype = np.dtype(ref.dtype)
    end = ref.offset + ref.count * dtype.itemsize
    if ref.offset < 0 or end > len(model_bytes):
        raise ValueError(f"array at {ref.offset} (+{ref.count} {ref.dtype}) is outside the model")
    return np.frombuffer(model_bytes, dtype=dtype, count=ref.count, offset=ref.offset).copy()


def read_scales(model_bytes: bytes, ref: ArrayRef) -> np.ndarray:
    """The float32 scales of a constant array (1, or one per output channel)."""
    end = ref.scale_offset + 4 * ref.scale_count
    if ref.scale_count < 1 or ref.scale_offset < 0 or end > len(model_bytes):
        raise ValueError(f"scales at {ref.scale_offset} (x{ref.scale_count}) outside the model")
    return np.frombuffer(
        model_bytes, dtype="<f4", count=ref.scale_count, offset=ref.scale_offset
    ).astype(np.float32)


def in_channels(graph: Graph, layer: Layer) -> int:
    """Input features of a weighted layer (FC flattens its whole input)."""
    shape = graph.tensors[layer.inputs[0]].shape
    if layer.op == Op.FULLY_CONNECTED:
        if layer.weights is not None:  # TFLite: rows of [in] when the input is larger
            return layer.weights.count // out_channels(graph, layer)
        return shape[0] * shape[1] * shape[2]
    return shape[2]


def out_channels(graph: Graph, layer: Layer) -> int:
    return graph.tensors[layer.output].shape[2]


def weight_shape(graph: Graph, layer: Layer) -> tuple[int, ...]:
    """The TFLite layout of a layer's weights."""
    kh, kw = layer.kernel
    if layer.op == Op.CONV_2D:
        return (out_channels(graph, layer), kh, kw, in_channels(graph, layer))
    if layer.op == Op.DEPTHWISE_CONV_2D:
        return (kh, kw, out_channels(graph, layer))
    if layer.op == Op.FULLY_CONNECTED:
        return (out_channels(graph, layer), in_channels(graph, layer))
    raise ValueError(f"layer {layer.name}: {layer.op.name} has no weights")


def dequantize_weight(graph: Graph, model_bytes: bytes, layer: Layer) -> np.ndarray:
    """float32 weights = int8 * scale (per output channel or per tensor), TFLite layout."""
    if layer.weights is None:
        raise ValueError(f"layer {layer.name}: no weights")
    shape = weight_shape(graph, layer)
    q = read_array(model_bytes, layer.weights).astype(np.float32)
    if q.size != int(np.prod(shape)):
        raise ValueError(f"layer {layer.name}: {q.size} weights, expected shape {shape}")
    q = q.reshape(shape)
    scales = read_scales(model_bytes, layer.weights)
    if scales.size == 1:
        return q * scales[0]
    if scales.size != out_channels(graph, layer):
        raise ValueError(f"layer {layer.name}: {scales.size} weight scales")
    channel_axis = 2 if layer.op == Op.DEPTHWISE_CONV_2D else 0
    bshape = [1] * len(shape)
    bshape[channel_axis] = -1
    return q * scales.reshape(bshape)


def dequantize_bias(graph: Graph, model_bytes: bytes, layer: Layer) -> np.ndarray:
    """float32 biases = int32 * scale; zeros for a layer without a bias."""
    n = out_channels(graph, layer)
    if layer.bias is None:
        return np.zeros(n, np.float32)
    q = read_array(model_bytes, layer.bias).astype(np.float32)
    if q.size != n:
        raise ValueError(f"layer {layer.name}: {q.size} biases for {n} channels")
    scales = read_scales(model_bytes, layer.bias)
    if scales.size not in (1, n):
        raise ValueError(f"layer {layer.name}: {scales.size} bias scales")
    return q * scales


def first_trainable_layer(graph: Graph) -> int:
    """The index of the first layer that trains anything (the plan's split layer)."""
    for index, layer in enumerate(graph.layers):
        if layer.methods != Method.NONE:
            return index
    raise ValueError("no layer trains anything: apply a method first")


def trained_kinds(layer: Layer) -> list[str]:
    """Which of the layer's parameters its methods train, in micropeft.formats.PARAM_KINDS order."""
    if layer.op not in _WEIGHTED_OPS:
        return []
    kinds = []
    if layer.trains_weight:
        kinds.append("weight")
    if layer.trains_bias:
        kinds.append("bias")
    if layer.methods & Method.SCALE_SHIFT:
        kinds += ["gamma", "beta"]
    if layer.methods & (Method.LORA | Method.DORA):
        kinds += ["lora_a", "lora_b"]
    if layer.methods & Method.DORA:
        kinds.append("dora_m")
    if layer.methods & Method.IA3:
        kinds.append("ia3_l")
    if layer.methods & Method.IA3_INPUT:
        kinds.append("ia3_in")
    return kinds


def _check_lora(graph: Graph, layer: Layer) -> None:
    pointwise = layer.op == Op.CONV_2D and tuple(layer.kernel) == (1, 1)
    if not (pointwise or layer.op == Op.FULLY_CONNECTED):
        raise ValueError(f"layer {layer.name}: LoRA needs a 1x1 CONV_2D or FULLY_CONNECTED")
    if layer.lora_rank < 1:
        raise ValueError(f"layer {layer.name}: LoRA rank {layer.lora_rank}")


def initial_parameters(
    graph: Graph, model_bytes: bytes, split_layer: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Every parameter of the trainable part, frozen or not, before training.

    Weights and biases come from the model; gamma = 1, beta = 0, B = 0, and A is
    what the C runtime draws for the same seed (plan.lora_a_init).
    """

    params: dict[str, np.ndarray] = {}
    for index in range(split_layer, len(graph.layers)):
        layer = graph.layers[index]
        if layer.op not in _WEIGHTED_OPS:
            continue
        n = out_channels(graph, layer)
        params[f"{layer.name}/weight"] = dequantize_weight(graph, model_bytes, layer)
        params[f"{layer.name}/bias"] = dequantize_bias(graph, model_bytes, layer)
        if layer.methods & Method.SCALE_SHIFT:
            params[f"{layer.name}/gamma"] = np.ones(n, np.float32)
            params[f"{layer.name}/beta"] = np.zeros(n, np.float32)
        if layer.methods & Method.IA3:
            params[f"{layer.name}/ia3_l"] = np.ones(n, np.float32)
        if layer.methods & Method.IA3_INPUT:
            params[f"{layer.name}/ia3_in"] = np.ones(in_channels(graph, layer), np.float32)
        if layer.methods & (Method.LORA | Method.DORA):
            _check_lora(graph, layer)
            fan_in = in_channels(graph, layer)
            a = lora_a_init(seed, index, layer.lora_rank, fan_in)
            params[f"{layer.name}/lora_a"] = np.asarray(a, np.float32).reshape(
                layer.lora_rank, fan_in
            )
            params[f"{layer.name}/lora_b"] = np.zeros((n, layer.lora_rank), np.float32)
        if layer.methods & Method.DORA:  # B = 0: the norm of W0's rows
            w = params[f"{layer.name}/weight"].reshape(n, -1)
            params[f"{layer.name}/dora_m"] = np.maximum(
                np.sqrt(np.sum(w * w, axis=1)), DORA_NORM_MIN
            ).astype(np.float32)
    return params


# ---- The float forward pass (batched NHWC) -------------------------------------------------


def _trailing(in_size: int, out_size: int, kernel: int, stride: int, lead: int) -> int:
    return (out_size - 1) * stride + kernel - in_size - lead


def _pad_spatial(tf: Any, x: Any, top: int, bottom: int, left: int, right: int) -> Any:
    """Zero-pad (positive) or crop (negative) the H and W dims of NHWC `x`."""
    if min(top, bottom, left, right) < 0:
        h, w = int(x.shape[1]), int(x.shape[2])
        x = x[:, max(-top, 0) : h - max(-bottom, 0), max(-left, 0) : w - max(-right, 0), :]
    pads = [[0, 0], [max(top, 0), max(bottom, 0)], [max(left, 0), max(right, 0)], [0, 0]]
    if any(p for pair in pads for p in pair):
        x = tf.pad(x, pads)
    return x


def _windowed_input(tf: Any, graph: Graph, layer: Layer, x: Any) -> Any:
    """The explicitly padded input, so that a VALID window op gives the output shape."""
    ih, iw, _ = graph.tensors[layer.inputs[0]].shape
    oh, ow, _ = graph.tensors[layer.output].shape
    kh, kw = layer.kernel
    sh, sw = layer.stride
    bottom = _trailing(ih, oh, kh, sh, layer.pad_top)
    right = _trailing(iw, ow, kw, sw, layer.pad_left)
    return _pad_spatial(tf, x, layer.pad_top, bottom, layer.pad_left, right)


def _activate(tf: Any, y: Any, activation: Activation) -> Any:
    if activation == Activation.RELU:
        return tf.nn.relu(y)
    if activation == Activation.RELU6:
        return tf.nn.relu6(y)
    return y


def _linear(tf: Any, graph: Graph, layer: Layer, x: Any, weight: Any) -> Any:
    """The layer's linear part without the bias, output [n, h, w, c]."""
    stride = [1, layer.stride[0], layer.stride[1], 1]
    if layer.op == Op.CONV_2D:
        filters = tf.transpose(weight, [1, 2, 3, 0])  # [out,kh,kw,in] -> [kh,kw,in,out]
        return tf.nn.conv2d(_windowed_input(tf, graph, layer, x), filters, stride, "VALID")
    if layer.op == Op.DEPTHWISE_CONV_2D:
        filters = tf.expand_dims(weight, -1)  # [kh,kw,c] -> [kh,kw,c,1]
        windowed = _windowed_input(tf, graph, layer, x)
        sh, sw = layer.stride
        if sh != sw:
            # TensorFlow's depthwise kernel needs equal strides (a (T, 1, C) sensor model
            # may stride (s, 1)): every output position of stride 1, then every s-th.
            full = tf.nn.depthwise_conv2d(windowed, filters, [1, 1, 1, 1], "VALID")
            return full[:, ::sh, ::sw, :]
        return tf.nn.depthwise_conv2d(windowed, filters, stride, "VALID")
    flat = tf.reshape(x, [-1, in_channels(graph, layer)])
    y = tf.matmul(flat, weight, transpose_b=True)
    return tf.reshape(y, [-1, *graph.tensors[layer.output].shape])


def _lora(tf: Any, graph: Graph, layer: Layer, x: Any, a: Any, b: Any, x_kept: Any = None) -> Any:
    """(alpha / r) * B(A(x)), with A and B applied per pixel (1x1 conv) or to the flat input;
    A's gradient sees `x_kept` (what the runtime keeps of x) when given."""
    scale = float(layer.lora_alpha) / float(layer.lora_rank)
    kept = x if x_kept is None else x_kept
    if layer.op == Op.FULLY_CONNECTED:
        n_in = in_channels(graph, layer)

        def down(v: Any, w: Any) -> Any:
            return tf.matmul(tf.reshape(v, [-1, n_in]), w, transpose_b=True)

        y = tf.matmul(_param_grad_sees(tf, down, x, kept, a), b, transpose_b=True)
        return scale * tf.reshape(y, [-1, *graph.tensors[layer.output].shape])
    stride = [1, layer.stride[0], layer.stride[1], 1]

    def down_conv(v: Any, w: Any) -> Any:
        return tf.nn.conv2d(
            _windowed_input(tf, graph, layer, v),
            tf.reshape(tf.transpose(w), [1, 1, w.shape[1], w.shape[0]]),
            stride,
            "VALID",
        )

    xa = _param_grad_sees(tf, down_conv, x, kept, a)
    return scale * tf.nn.conv2d(
        xa, tf.reshape(tf.transpose(b), [1, 1, b.shape[1], b.shape[0]]), 1, "VALID"
    )


def _dora(
    tf: Any, graph: Graph, layer: Layer, params: Mapping[str, Any], x: Any, x_kept: Any, w: Any
) -> Any:
    """DoRA's output: n * (W x + (alpha / r) B A x) + bias, the norm in n detached; m's
    gradient sees W x_kept (the runtime recomputes W x from the kept input)."""
    name = layer.name
    a, b, m = params[f"{name}/lora_a"], params[f"{name}/lora_b"], params[f"{name}/dora_m"]
    scale = float(layer.lora_alpha) / float(layer.lora_rank)
    rows = tf.reshape(w, [w.shape[0], -1]) + scale * tf.matmul(b, a)
    norm = tf.stop_gradient(tf.maximum(tf.norm(rows, axis=1), DORA_NORM_MIN))
    lora = _lora(tf, graph, layer, x, a, b, x_kept)
    direction = _linear(tf, graph, layer, x, w) + lora
    direction_kept = _linear(tf, graph, layer, x_kept, w) + lora
    scaled = _param_grad_sees(tf, lambda v, mag: v * (mag / norm), direction, direction_kept, m)
    return scaled + params[f"{name}/bias"]


def _avg_pool(tf: Any, graph: Graph, layer: Layer, x: Any) -> Any:
    """TFLite AVERAGE_POOL_2D: the window sum divided by its count of non-padding elements."""
    kh, kw = layer.kernel
    stride = [1, layer.stride[0], layer.stride[1], 1]
    window = [1, kh, kw, 1]
    padded = _windowed_input(tf, graph, layer, x)
    ones = _windowed_input(tf, graph, layer, tf.ones_like(x[:1, :, :, :1]))
    sums = tf.nn.avg_pool2d(padded, window, stride, "VALID")
    counts = tf.nn.avg_pool2d(ones, window, stride, "VALID")
    return sums / counts  # both carry the same 1/(kh*kw) factor


def _round_half_away(tf: Any, v: Any) -> Any:
    """roundf in float32: |v| - floor(|v|) is exact, so no addition of 0.5 rounds."""
    a = tf.abs(v)
    f = tf.floor(a)
    return tf.sign(v) * (f + tf.cast(a - f >= 0.5, tf.float32))


def requant_shifts(in_scale: float, weight_scales: np.ndarray, out_scale: float) -> np.ndarray:
    """Per output channel, the right shift rs of TFLite's requantization multiplier
    s_in s_w / s_out = m 2^-rs, m in [0.5, 1) (at most 31), in float32 as the runtime's
    requant_shift computes it."""
    m = (np.float32(in_scale) * np.asarray(weight_scales, np.float32)) / np.float32(out_scale)
    _, e = np.frexp(m.astype(np.float32))
    return np.clip(-e, 0, 31).astype(np.int32)


# The methods whose trained factor multiplies output channels, and those that change weights
# otherwise (formats.LIMIT: the C trainer reads the same two masks).
SCALING_CHANNELS = Method(formats.LIMIT["METHODS_SCALING_CHANNELS"])
CHANGING_WEIGHTS = Method(formats.LIMIT["METHODS_CHANGING_WEIGHTS"])


def scales_channels_only(graph: Graph, layer: Layer) -> bool:
    """The layer's training only multiplies its output channels (scale+shift's gamma, IA3's
    l; its bias and beta may train too) and its weights have one scale per output channel:
    merge folds the factor into each channel's weight scale and keeps the int8 codes, so
    the quantized forward rounds the layer as that merged layer computes it."""
    return (
        bool(layer.methods & SCALING_CHANNELS)
        and not layer.methods & CHANGING_WEIGHTS
        and layer.weights is not None
        and out_channels(graph, layer) >= 2
        and layer.weights.scale_count == out_channels(graph, layer)
    )


@dataclass(frozen=True)
class QuantizedForward:
    """What the quantized forward reads, per CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED layer of the trainable part (name -> one value per output channel),
    from the model's own scales as the runtime reads them."""

    shifts: dict[str, np.ndarray]  # requant_shifts of the output
    bias_steps: dict[str, np.ndarray]  # a trained bias's int32 step, s_in * s_w (float32)
    weight_scales: dict[str, np.ndarray]  # s_w (float32)


def quantized_forward_tables(
    graph: Graph, model_bytes: bytes, split_layer: int
) -> QuantizedForward:
    """The quantized forward's tables (QuantizedForward) of a model's trainable part."""
    shifts, steps, scales = {}, {}, {}
    for layer in graph.layers[split_layer:]:
        if layer.op in _WEIGHTED_OPS and layer.weights is not None:
            n_out = out_channels(graph, layer)
            s_in = np.float32(graph.tensors[layer.inputs[0]].quant.scale)
            s_w = np.broadcast_to(read_scales(model_bytes, layer.weights), (n_out,))
            out_scale = graph.tensors[layer.output].quant.scale
            shifts[layer.name] = requant_shifts(s_in, s_w, out_scale)
            steps[layer.name] = (s_in * s_w.astype(np.float32)).astype(np.float32)
            scales[layer.name] = s_w.astype(np.float32)
    return QuantizedForward(shifts, steps, scales)


def _exp2(tf: Any, k: Any) -> Any:
    """2^k in float32 for integers k in [-126, 127], exactly (built from the exponent bits)."""
    return tf.bitcast(tf.bitwise.left_shift(tf.cast(k, tf.int32) + 127, 23), tf.float32)


def _requant_shifts_of(tf: Any, s_in: float, scale: Any, s_out: float) -> Any:
    """requant_shifts in TensorFlow for a per-channel weight scale tensor: the exponent e
    of frexp (m = mantissa 2^e, mantissa in [0.5, 1)) read from the float32 bits of m =
    s_in scale / s_out (a normal float), rs = -e clipped to 0..31."""
    m = (tf.constant(np.float32(s_in)) * scale) / tf.constant(np.float32(s_out))
    e = tf.bitwise.bitwise_and(tf.bitwise.right_shift(tf.bitcast(m, tf.int32), 23), 0xFF) - 126
    return tf.stop_gradient(tf.clip_by_value(-e, 0, 31))


def _channel_scaled_rounding(
    tf: Any, s_in: float, s_w: np.ndarray, s_out: float, factor: Any, bias: Any
) -> tuple[Any, Any]:
    """A layer whose training only multiplied channel c by factor[c] (scales_channels_only),
    as merge stores it: weight scale |f| s_w (s_w where f is 0), so (1) its output is
    requantized with the shifts of s_in |f| s_w / s_out (returned), and (2) its whole
    bias `bias` (f b + beta) is rounded to int32 steps s_in |f| s_w: returned is what
    that rounding adds, a constant of the gradient (straight-through). float32, in the
    runtime's order of operations."""
    mag = tf.abs(factor)
    scale = tf.where(mag > 0, mag * tf.constant(s_w), tf.constant(s_w))
    step = tf.constant(np.float32(s_in)) * scale
    return _requant_shifts_of(tf, s_in, scale, s_out), _bias_rounding(tf, bias, step)


def round_weights(tf: Any, w: Any, channel_axis: int, s_w: np.ndarray) -> tuple[Any, Any]:
    """Trained float32 weights rounded to int8 as merge stores them (the quantized
    forward of plan.rounds_trained_weights layers; the C trainer's round_weights is the
    same arithmetic): per output channel (`channel_axis`; one scale when `s_w` has one)
    the model's scale s_w where max |w| <= 127 s_w, else max |w| / 127, then codes
    rounded half away from zero, clamped to +-127. Returns the codes (float) and the
    scales, one per channel (each channel the same for a per-tensor layer)."""
    s_w = np.asarray(s_w, np.float32).reshape(-1)
    channels = int(w.shape[channel_axis])
    if s_w.size == 1:
        peak = tf.reshape(tf.reduce_max(tf.abs(w)), [1])
    else:
        others = [a for a in range(len(w.shape)) if a != channel_axis]
        peak = tf.reduce_max(tf.abs(w), axis=others)
    scale = tf.where(peak <= tf.constant(np.float32(127) * s_w), tf.constant(s_w), peak / 127.0)
    scale = tf.broadcast_to(scale, [channels])
    shape = [1] * len(w.shape)
    shape[channel_axis] = channels
    codes = tf.clip_by_value(_round_half_away(tf, w / tf.reshape(scale, shape)), -127.0, 127.0)
    return codes, scale


def lora_rounded_weights(
    tf: Any, layer: Layer, w0: Any, a: Any, b: Any, s_w: np.ndarray
) -> tuple[Any, Any]:
    """A plan.rounds_lora layer's weights as merge stores them and the quantized forward
    computes with them: W0 + (alpha / r) B A in float32 (B A summed over the rank in
    order, as the C trainer's lora_merged_row), rounded by round_weights. Returns the
    codes [out, in] (float) and their scales."""
    rank = int(layer.lora_rank)
    scale = np.float32(layer.lora_alpha) / np.float32(rank)
    rows = tf.reshape(w0, [int(b.shape[0]), -1])
    ba = b[:, 0:1] * a[0:1, :]
    for j in range(1, rank):
        ba = ba + b[:, j : j + 1] * a[j : j + 1, :]
    return round_weights(tf, rows + tf.constant(scale) * ba, 0, s_w)


def _rounded_weights(tf: Any, layer: Layer, w: Any, s_w: np.ndarray) -> tuple[Any, Any]:
    """round_weights' values in the forward, the gradient passing to w unchanged
    (straight-through); and the scales."""
    axis = 2 if layer.op == Op.DEPTHWISE_CONV_2D else 0
    codes, scale = round_weights(tf, w, axis, s_w)
    shape = [1] * len(w.shape)
    shape[axis] = -1
    rounded = codes * tf.reshape(scale, shape)
    return w + tf.stop_gradient(rounded - w), tf.stop_gradient(scale)


def _bias_rounding(tf: Any, bias: Any, steps: Any) -> Any:
    """What rounding a bias to int32 steps adds to it (round(b / step) * step - b, halves
    away from zero), as a constant of the gradient (straight-through)."""
    step = tf.cast(steps, tf.float32)
    return tf.stop_gradient(_round_half_away(tf, bias / step) * step - bias)


def fake_quantize(tf: Any, x: Any, scale: float, zero_point: int, shifts: Any = None) -> Any:
    """int8 and back, as peft_quantize_s8 / peft_dequantize_s8 (half away from zero).
    `shifts` (per channel, the last axis; requant_shifts, or a tensor): first round to a multiple of
    2^-rs of a step, as TFLite's int8 conv / dense kernels round (the runtime's
    quantized forward)."""
    v = x / tf.constant(scale, tf.float32)
    if shifts is not None:
        v = _round_half_away(tf, v * _exp2(tf, shifts)) * _exp2(tf, -shifts)
    q = _round_half_away(tf, v) + float(zero_point)
    q = tf.clip_by_value(q, -128.0, 127.0)
    return (q - float(zero_point)) * tf.constant(scale, tf.float32)


def _scale_channels(tf: Any, x: Any, scale: Any) -> Any:
    """x [n, h, w, c] times a per-channel vector: c channels, or the c' features of
    each row of a dense layer whose input is rows of c' (h * w * c = rows * c')."""
    n_in = int(scale.shape[0])
    flat = tf.reshape(x, [-1, n_in]) * scale
    return tf.reshape(flat, tf.shape(x))


def _param_grad_sees(tf: Any, f: Any, x: Any, kept: Any, param: Any) -> Any:
    """f(x, param) in value; its gradient wrt x at the float x, wrt param at `kept`.
    t - stop_gradient(t) is exactly zero, so the value is f(x, param) bit for bit."""
    t = f(tf.stop_gradient(kept), param)
    return f(x, tf.stop_gradient(param)) + (t - tf.stop_gradient(t))


def int8_backward_weights(
    graph: Graph, model_bytes: bytes, split_layer: int, quantized_forward: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Layer name -> (int8 weights as float32 [out][in], scales [out]) for every layer of
    the trainable part whose input gradient the int8 path computes (plan.has_fc_form,
    weights frozen, no IA3 input scaling: that takes the float path, nor, with the
    quantized forward, LoRA's rounded weights: plan.rounds_lora)."""
    out = {}
    for layer in graph.layers[split_layer:]:
        if (
            layer.op in _WEIGHTED_OPS
            and has_fc_form(layer)
            and not layer.trains_weight
            and not layer.methods & Method.IA3_INPUT
            and not (quantized_forward and rounds_lora(layer))
        ):
            n_out = out_channels(graph, layer)
            q = read_array(model_bytes, layer.weights).astype(np.float32).reshape(n_out, -1)
            scales = np.broadcast_to(read_scales(model_bytes, layer.weights), (n_out,))
            out[layer.name] = (q, scales.astype(np.float32).copy())
    return out


def _int8_input_grad(
    tf: Any, graph: Graph, layer: Layer, x: Any, weight: Any, q: np.ndarray, scales: np.ndarray
) -> Any:
    """The linear part, its gradient wrt x through the int8 path (module docstring), in
    float32 as the C kernel computes it. The integer sums are exact in float32 while
    127 * 127 * out_features < 2^24 (out_features <= 1040)."""
    n_out = q.shape[0]
    q_t, s_t = tf.constant(q), tf.constant(scales)

    @tf.custom_gradient
    def linear(v: Any) -> Any:
        def grad(dy: Any) -> Any:
            h = tf.reshape(dy, [-1, n_out]) * s_t
            m = tf.reduce_max(tf.abs(h), axis=1, keepdims=True)
            inv = tf.where(m > 0, 127.0 / tf.where(m > 0, m, 1.0), 0.0)
            u = h * inv
            r = tf.clip_by_value(tf.sign(u) * tf.floor(tf.abs(u) + 0.5), -127.0, 127.0)
            return tf.reshape(tf.matmul(r, q_t) * (m / 127.0), tf.shape(v))

        return _linear(tf, graph, layer, v, weight), grad

    return linear(x)


def forward(
    graph: Graph,
    split_layer: int,
    params: Mapping[str, Any],
    x: Any,
    act_cache: str = "f32",
    values_out: dict[int, Any] | None = None,
    int8_weights: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
    quantized: QuantizedForward | None = None,
) -> Any:
    """Logits [n, classes] of the trainable part for split-tensor inputs `x` [n, h, w, c].

    `params` holds every parameter of the part (frozen ones as constants);
    `act_cache` is what backward reads (module docstring).
    `values_out`, when given, receives every tensor computed (graph index -> value).
    `int8_weights` (int8_backward_weights): the layers whose input gradient takes the
    int8 path. `quantized` (quantized_forward_tables; the plan's quantized forward): every
    layer output but the logits fake-quantized, straight-through gradient (module
    docstring), a weighted layer's with its shifts and a trained bias rounded to its
    steps.
    """
    import tensorflow as tf

    s8 = act_cache == "s8"

    def kept(value: Any, tensor: int) -> Any:
        quant = graph.tensors[tensor].quant
        return fake_quantize(tf, value, quant.scale, quant.zero_point) if s8 else value

    layers = graph.layers[split_layer:]
    split_tensor = layers[0].inputs[0]
    values: dict[int, Any] = {split_tensor: x}
    for layer in layers:
        missing = [t for t in layer.inputs if t not in values]
        if missing:
            raise ValueError(
                f"layer {layer.name} reads tensor(s) {missing} that the trainable part does not "
                "compute: the split must leave a single tensor between the parts"
            )
        inputs = [values[t] for t in layer.inputs]
        out_shape = [-1, *graph.tensors[layer.output].shape]
        channel_scaled = False  # (scales_channels_only, with the quantized forward)
        rounded_scales = None  # plan.rounds_trained_weights, with the quantized forward
        shifts: Any = None  # the output's requantization shifts (quantized forward)
        if layer.op in _WEIGHTED_OPS:
            name = layer.name
            x_kept = kept(inputs[0], layer.inputs[0])
            weight = params[f"{name}/weight"]
            if quantized is not None and rounds_trained_weights(layer):
                weight, rounded_scales = _rounded_weights(
                    tf, layer, weight, quantized.weight_scales[name]
                )
            if layer.methods & Method.IA3_INPUT:  # l x, l's gradient seeing the kept x
                ia3_in = params[f"{name}/ia3_in"]
                inputs[0] = _param_grad_sees(
                    tf, lambda v, g: _scale_channels(tf, v, g), inputs[0], x_kept, ia3_in
                )
            lora_rounded = quantized is not None and rounds_lora(layer)
            if lora_rounded:  # value and input gradient through the rounded W0 + s B A,
                # A's and B's gradients LoRA's own (straight-through; the branch adds 0)
                a, b = params[f"{name}/lora_a"], params[f"{name}/lora_b"]
                assert quantized is not None
                codes, rounded_scales = lora_rounded_weights(
                    tf, layer, weight, a, b, quantized.weight_scales[name]
                )
                rounded_w = tf.reshape(codes * rounded_scales[:, None], tf.shape(weight))
                branch = _lora(
                    tf, graph, layer, tf.stop_gradient(inputs[0]), a, b, tf.stop_gradient(x_kept)
                )
                y = _linear(tf, graph, layer, inputs[0], tf.stop_gradient(rounded_w))
                y = y + (branch - tf.stop_gradient(branch))
            elif layer.trains_weight and s8:
                y = _param_grad_sees(
                    tf,
                    lambda v, w, lay=layer: _linear(tf, graph, lay, v, w),
                    inputs[0],
                    x_kept,
                    weight,
                )
            elif int8_weights and name in int8_weights:
                q, scales = int8_weights[name]
                y = _int8_input_grad(tf, graph, layer, inputs[0], weight, q, scales)
            else:
                y = _linear(tf, graph, layer, inputs[0], weight)
            bias = params[f"{name}/bias"]
            y = y + bias
            channel_scaled = quantized is not None and scales_channels_only(graph, layer)
            if (
                quantized is not None
                and layer.trains_bias
                and not layer.methods & Method.DORA
                and not channel_scaled
            ):
                steps = quantized.bias_steps[name]
                if rounded_scales is not None:
                    s_in = graph.tensors[layer.inputs[0]].quant.scale
                    steps = tf.constant(np.float32(s_in)) * rounded_scales
                y = y + _bias_rounding(tf, bias, steps)
            factor = None
            if layer.methods & Method.SCALE_SHIFT:
                factor = params[f"{name}/gamma"]
                y = _param_grad_sees(tf, lambda v, g: v * g, y, kept(y, layer.output), factor)
                y = y + params[f"{name}/beta"]
                bias = bias * factor + params[f"{name}/beta"]
            if layer.methods & Method.IA3:
                factor = params[f"{name}/ia3_l"]
                y = _param_grad_sees(tf, lambda v, g: v * g, y, kept(y, layer.output), factor)
                bias = bias * factor
            if channel_scaled:
                assert quantized is not None and factor is not None
                shifts, delta = _channel_scaled_rounding(
                    tf,
                    graph.tensors[layer.inputs[0]].quant.scale,
                    quantized.weight_scales[name],
                    graph.tensors[layer.output].quant.scale,
                    factor,
                    bias,
                )
                y = y + delta
            if layer.methods & Method.LORA and not lora_rounded:
                a, b = params[f"{name}/lora_a"], params[f"{name}/lora_b"]
                y = y + _lora(tf, graph, layer, inputs[0], a, b, x_kept)
            if layer.methods & Method.DORA:
                y = _dora(tf, graph, layer, params, inputs[0], x_kept, weight)
            y = _activate(tf, y, layer.activation)
        elif layer.op == Op.ADD:
            y = _activate(tf, inputs[0] + inputs[1], layer.activation)
        elif layer.op == Op.MEAN:
            y = tf.reduce_mean(inputs[0], axis=[1, 2], keepdims=True)
        elif layer.op == Op.AVERAGE_POOL_2D:
            y = _activate(tf, _avg_pool(tf, graph, layer, inputs[0]), layer.activation)
        elif layer.op == Op.PAD:
            ih, iw, _ = graph.tensors[layer.inputs[0]].shape
            oh, ow, _ = graph.tensors[layer.output].shape
            y = _pad_spatial(
                tf,
                inputs[0],
                layer.pad_top,
                oh - ih - layer.pad_top,
                layer.pad_left,
                ow - iw - layer.pad_left,
            )
        elif layer.op == Op.RESHAPE:
            y = inputs[0]
        else:
            raise ValueError(f"layer {layer.name}: unsupported op {layer.op!r}")
        if quantized is not None and layer.output != graph.output:
            quant = graph.tensors[layer.output].quant
            if layer.op in _WEIGHTED_OPS and rounded_scales is not None:
                s_in = graph.tensors[layer.inputs[0]].quant.scale
                shifts = _requant_shifts_of(tf, s_in, rounded_scales, quant.scale)
            elif layer.op in _WEIGHTED_OPS and not channel_scaled:
                shifts = quantized.shifts.get(layer.name)
                if shifts is None:
                    raise ValueError(f"quantized forward: no requant shifts for layer {layer.name}")
            fq = tf.stop_gradient(fake_quantize(tf, y, quant.scale, quant.zero_point, shifts))
            y = fq + (y - tf.stop_gradient(y))  # fq(y) in value, gradient 1 wrt y
        values[layer.output] = tf.reshape(y, out_shape)
    if graph.output not in values:
        raise ValueError("the trainable part does not compute the graph's output")
    if values_out is not None:
        values_out.update(values)
    return tf.reshape(values[graph.output], [-1, graph.tensors[graph.output].size])


# ---- The trainer ---------------------------------------------------------------------------


class TFReferenceTrainer:
    """Trains the suffix of an int8 model with a PEFT method, in TensorFlow float32.

    Mirrors the C runtime's semantics (see the module docstring); a test drives
    both from the same initial state and compares the parameters after training.
    `split_layer` None means the first layer that trains anything; `seed` is the
    plan's seed (LoRA A starts as the C runtime's for that seed); `initial_params`
    overrides any parameter (TFLite layout, or flat as the C runtime returns it).
    """

    @classmethod
    def from_plan(
        cls, plan: Any, model_bytes: bytes, initial_params: Mapping[str, np.ndarray] | None = None
    ) -> TFReferenceTrainer:
        """The reference for a plan.Plan: its graph, split layer, optimizer, seed, act_cache
        int8 backward path and quantized forward."""
        return cls(
            plan.graph,
            model_bytes,
            plan.split_layer,
            plan.optimizer,
            initial_params,
            plan.seed,
            plan.act_cache,
            plan.int8_backward,
            plan.quantized_forward,
        )

    def __init__(
        self,
        graph: Graph,
        model_bytes: bytes,
        split_layer: int | None,
        optimizer: OptimizerSettings,
        initial_params: Mapping[str, np.ndarray] | None = None,
        seed: int = 0,
        act_cache: str = "f32",
        int8_backward: bool = False,
        quantized_forward: bool = False,
    ) -> None:
        import tensorflow as tf

        if act_cache not in ("f32", "s8"):
            raise ValueError(f"unknown act_cache {act_cache!r} (f32 or s8)")
        self.act_cache = act_cache
        self.quantized_forward = bool(quantized_forward)
        if split_layer is None:
            split_layer = first_trainable_layer(graph)
        if not 0 <= split_layer < len(graph.layers):
            raise ValueError(f"split layer {split_layer} outside 0..{len(graph.layers) - 1}")
        if optimizer.kind not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {optimizer.kind!r} (sgd or adam)")
        self.graph = graph
        self.split_layer = split_layer
        self.optimizer = optimizer
        self.input_shape = graph.tensors[graph.layers[split_layer].inputs[0]].shape
        self.quantized = (
            quantized_forward_tables(graph, bytes(model_bytes), split_layer)
            if quantized_forward
            else None
        )
        self.int8_weights = (
            int8_backward_weights(graph, bytes(model_bytes), split_layer, quantized_forward)
            if int8_backward
            else {}
        )

        values = initial_parameters(graph, bytes(model_bytes), split_layer, seed)
        for key, value in (initial_params or {}).items():
            if key not in values:
                raise ValueError(f"initial parameter {key!r} is not a parameter of the part")
            value = np.asarray(value, np.float32)
            if value.size != values[key].size:
                raise ValueError(f"{key}: shape {value.shape}, expected {values[key].shape}")
            # Same layout, so a flat array (as the C runtime returns it) is accepted too.
            values[key] = value.reshape(values[key].shape).copy()

        self.trained: list[str] = [
            f"{layer.name}/{kind}"
            for layer in graph.layers[split_layer:]
            for kind in trained_kinds(layer)
        ]
        self._vars = [tf.Variable(values[k], name=k.replace("/", "_")) for k in self.trained]
        self._params: dict[str, Any] = {
            k: tf.constant(v) for k, v in values.items() if k not in self.trained
        }
        self._params.update(zip(self.trained, self._vars, strict=True))
        self._slots1 = [tf.Variable(tf.zeros_like(v)) for v in self._vars]
        self._slots2 = [tf.Variable(tf.zeros_like(v)) for v in self._vars]
        self._t = tf.Variable(0.0, dtype=tf.float32)

        spec = [
            tf.TensorSpec([None, *self.input_shape], tf.float32),
            tf.TensorSpec([None], tf.int32),
        ]
        # The graph's Python control flow is over layers, never over tensors: without
        # AutoGraph's source rewriting a trace costs a fraction (a bench run traces 4).
        self._grad_fn = tf.function(self._loss_and_grads, input_signature=spec, autograph=False)
        self._step_fn = tf.function(self._train_step, input_signature=spec, autograph=False)
        self._predict_fn = tf.function(self._logits, input_signature=spec[:1], autograph=False)
        # One call reads every trained array: read one at a time, each is an eager op (bench
        # reads them after every step).
        self._read_fn = tf.function(lambda: [v.read_value() for v in self._vars], autograph=False)

    # -- graph functions --

    def _logits(self, x: Any) -> Any:
        return forward(
            self.graph,
            self.split_layer,
            self._params,
            x,
            self.act_cache,
            int8_weights=self.int8_weights,
            quantized=self.quantized,
        )

    def _loss_and_grads(self, x: Any, labels: Any) -> tuple[Any, list[Any]]:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            logits = self._logits(x)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            )
        return loss, tape.gradient(loss, self._vars)

    def _train_step(self, x: Any, labels: Any) -> Any:
        import tensorflow as tf

        # The traced gradient function, called: gradients() then reuses its trace.
        loss, grads = self._grad_fn(x, labels)
        opt = self.optimizer
        if opt.clip_norm > 0:
            norm = tf.sqrt(tf.add_n([tf.reduce_sum(g * g) for g in grads]))
            factor = tf.where(norm > opt.clip_norm, opt.clip_norm / tf.maximum(norm, 1e-30), 1.0)
            grads = [g * factor for g in grads]
        if opt.weight_decay > 0:
            grads = [g + opt.weight_decay * p for g, p in zip(grads, self._vars, strict=True)]
        self._t.assign_add(1.0)
        lr = self._scheduled_lr()
        if opt.kind == "sgd":
            for p, g, v in zip(self._vars, grads, self._slots1, strict=True):
                v.assign(opt.momentum * v + g)
                p.assign_sub(lr * v)
        else:
            c1 = 1.0 - tf.pow(tf.constant(opt.beta1, tf.float32), self._t)
            c2 = 1.0 - tf.pow(tf.constant(opt.beta2, tf.float32), self._t)
            for p, g, m1, m2 in zip(self._vars, grads, self._slots1, self._slots2, strict=True):
                m1.assign(opt.beta1 * m1 + (1.0 - opt.beta1) * g)
                m2.assign(opt.beta2 * m2 + (1.0 - opt.beta2) * g * g)
                p.assign_sub(lr * (m1 / c1) / (tf.sqrt(m2 / c2) + opt.eps))
        return loss

    def _scheduled_lr(self) -> Any:
        """The rate of update t (self._t, 1 for the first): lr, or with lr_decay_steps N
        lr * (N - (t - 1)) / N in float32, 0 from update N + 1 on (peft_optimizer_lr)."""
        import tensorflow as tf

        opt = self.optimizer
        lr = tf.constant(opt.lr, tf.float32)
        n = int(opt.lr_decay_steps)
        if n == 0:
            return lr
        done = self._t - 1.0
        n_f = tf.constant(float(n), tf.float32)
        return tf.where(done >= n_f, tf.constant(0.0, tf.float32), lr * ((n_f - done) / n_f))

    # -- public API --

    def _inputs(self, x: np.ndarray, labels: Sequence[int] | np.ndarray | None = None) -> Any:
        x = np.asarray(x, np.float32)
        shape = tuple(self.input_shape)
        if x.shape == shape:
            x = x[None]
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != int(np.prod(shape)):
            raise ValueError(f"inputs shaped {x.shape}, expected (n, {', '.join(map(str, shape))})")
        x = x.reshape((x.shape[0], *shape))  # the same elements in the same (h, w, c) order
        if labels is None:
            return x
        y = np.asarray(labels, np.int32).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{y.shape[0]} labels for {x.shape[0]} samples")
        return x, y

    def train_batch(self, x_split: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
        """One optimizer step on the batch's mean loss; returns that loss (before the step)."""
        x, y = self._inputs(x_split, labels)
        return float(self._step_fn(x, y))

    def gradients(
        self, x_split: np.ndarray, labels: Sequence[int] | np.ndarray
    ) -> dict[str, np.ndarray]:
        """Gradients of the batch's mean loss for every trained parameter (no step)."""
        x, y = self._inputs(x_split, labels)
        _, grads = self._grad_fn(x, y)
        return {k: g.numpy() for k, g in zip(self.trained, grads, strict=True)}

    def loss(self, x_split: np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
        x, y = self._inputs(x_split, labels)
        loss, _ = self._grad_fn(x, y)
        return float(loss)

    def predict(self, x_split: np.ndarray) -> np.ndarray:
        """Logits [n, classes] for split-tensor inputs [n, h, w, c] (or one [h, w, c])."""
        return self._predict_fn(self._inputs(x_split)).numpy()

    def assign(self, params: Mapping[str, np.ndarray]) -> None:
        """Set every trained parameter (TFLite layout, or flat as the C runtime returns it);
        the optimizer state is left as it is."""
        missing = [k for k in self.trained if k not in params]
        if missing:
            raise ValueError(f"assign: no value for {', '.join(missing)}")
        for key, var in zip(self.trained, self._vars, strict=True):
            value = np.asarray(params[key], np.float32)
            if value.size != int(np.prod(var.shape)):
                raise ValueError(f"{key}: {value.size} values, expected {var.shape}")
            var.assign(value.reshape(var.shape))

    def parameters(self) -> dict[str, np.ndarray]:
        """The trained parameters now, keyed f"{layer_name}/{kind}", TFLite layouts."""
        values = self._read_fn()
        return {k: v.numpy().copy() for k, v in zip(self.trained, values, strict=True)}


# ---- Helpers for checks against TFLite -----------------------------------------------------


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((np.asarray(q, np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(
        np.float32
    )


def tflite_tensor_values(
    model_bytes: bytes, tensor_names: Sequence[str], inputs: np.ndarray
) -> list[np.ndarray]:
    """Run the .tflite on float `inputs` [n, h, w, c] (quantized as its input wants)
    in TFLite's reference kernels and return the raw values of the named tensors,
    stacked over the samples (e.g. the int8 split tensor that feeds the C runtime)."""

    interpreter = convert.tflite_interpreter(bytes(model_bytes), preserve_all_tensors=True)
    details = {d["name"]: d["index"] for d in interpreter.get_tensor_details()}
    missing = [n for n in tensor_names if n not in details]
    if missing:
        raise ValueError(f"tensors not in the model: {missing}")
    (inp,) = interpreter.get_input_details()
    quantized = convert.quantize_input(bytes(model_bytes), np.asarray(inputs, np.float32))
    results: list[list[np.ndarray]] = [[] for _ in tensor_names]
    for sample in quantized:
        interpreter.set_tensor(inp["index"], sample.reshape(inp["shape"]))
        interpreter.invoke()
        for i, name in enumerate(tensor_names):
            results[i].append(interpreter.get_tensor(details[name])[0].copy())
    return [np.stack(r) for r in results]
