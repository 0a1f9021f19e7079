"""Model preparation: int8 conversion, the .tflite parser and the device model.

References: TFLite's interpreter (reference kernels, all tensors preserved),
TFLM's own kernels (tflite_micro runtime), and a numpy int8 convolution
written here from the TFLite quantization formulas.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tensorflow as tf

from micropeft.errors import UserError
from micropeft.prep import convert, models, tflite_graph
from micropeft.prep.graph import Activation, Op


def _geometry_model():
    """Every operator the parser maps, with odd sizes so SAME padding is asymmetric."""
    init = tf.keras.initializers.GlorotUniform(seed=3)
    binit = tf.keras.initializers.RandomUniform(-0.2, 0.2, seed=4)
    inputs = tf.keras.Input((16, 13, 3))
    x = tf.keras.layers.Conv2D(
        8, 3, strides=2, padding="same", kernel_initializer=init, bias_initializer=binit
    )(inputs)
    x = tf.keras.layers.ReLU(6.0)(x)
    x = tf.keras.layers.ZeroPadding2D(((2, 1), (1, 0)))(x)
    x = tf.keras.layers.DepthwiseConv2D(
        3, strides=2, padding="valid", depthwise_initializer=init, bias_initializer=binit
    )(x)
    x = tf.keras.layers.ReLU()(x)
    y = tf.keras.layers.Conv2D(
        8, 1, padding="same", kernel_initializer=init, bias_initializer=binit
    )(x)
    x = tf.keras.layers.Add()([x, y])
    x = tf.keras.layers.DepthwiseConv2D(
        5, padding="same", depthwise_initializer=init, bias_initializer=binit
    )(x)
    x = tf.keras.layers.AveragePooling2D(2, strides=1, padding="same")(x)
    x = tf.keras.layers.Reshape((3, 5, 8))(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(5, kernel_initializer=init, bias_initializer=binit)(x)
    x = tf.keras.layers.Softmax()(x)
    return tf.keras.Model(inputs, x)


@pytest.fixture(scope="module")
def geometry():
    model = _geometry_model()
    rep = np.random.default_rng(0).uniform(-1, 1, (24, 16, 13, 3)).astype(np.float32)
    return convert.to_int8_tflite(model, rep)


@pytest.fixture(scope="module")
def tiny():
    model = models.build_tiny_cnn(16, 1, 4)
    rep = np.random.default_rng(1).uniform(0, 1, (24, 16, 16, 1)).astype(np.float32)
    return convert.to_int8_tflite(model, rep)


def _all_tensors(model: bytes, x: np.ndarray):
    interpreter = convert.tflite_interpreter(model, preserve_all_tensors=True)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
    interpreter.invoke()
    return interpreter


def test_conversion_is_full_int8_batch_1(tiny):
    interpreter = convert.tflite_interpreter(tiny)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert list(inp["shape_signature"]) == [1, 16, 16, 1]
    assert all(d["dtype"] in (np.int8, np.int32) for d in interpreter.get_tensor_details())


def test_offsets_point_at_weight_bias_and_scale_bytes(geometry):
    graph = tflite_graph.graph_from_tflite(geometry)
    interpreter = convert.tflite_interpreter(geometry)
    by_data = {}
    for d in interpreter.get_tensor_details():
        try:
            by_data.setdefault(d["name"], (interpreter.get_tensor(d["index"]), d))
        except ValueError:
            pass
    checked = 0
    for layer in graph.layers:
        for ref in (layer.weights, layer.bias):
            if ref is None:
                continue
            dtype = np.int8 if ref.dtype == "int8" else np.int32
            data = np.frombuffer(geometry, dtype, ref.count, ref.offset)
            scales = np.frombuffer(geometry, "<f4", ref.scale_count, ref.scale_offset)
            # The interpreter's constant tensor with exactly these values and scales.
            matches = [
                d
                for value, d in by_data.values()
                if value.dtype == dtype
                and value.size == ref.count
                and np.array_equal(value.ravel(), data)
                and np.allclose(d["quantization_parameters"]["scales"], scales, rtol=0, atol=0)
            ]
            assert matches, f"{layer.name}: no tensor holds the bytes at {ref.offset}"
            checked += 1
    assert checked >= 8


def _requant(acc, in_scale, w_scales, out_q, act):
    real = acc * (in_scale * w_scales)
    q = np.round(real / out_q.scale) + out_q.zero_point
    low = out_q.zero_point if act in (Activation.RELU, Activation.RELU6) else -128
    high = 127
    if act == Activation.RELU6:
        high = min(127, out_q.zero_point + int(np.round(6.0 / out_q.scale)))
    return np.clip(q, max(low, -128), high)


def _conv_reference(graph, layer, model, x):
    """int8 conv/depthwise from the parsed geometry and the bytes at the offsets."""
    tin = graph.tensors[layer.inputs[0]]
    tout = graph.tensors[layer.output]
    kh, kw = layer.kernel
    sh, sw = layer.stride
    oh, ow, oc = tout.shape
    ih, iw, ic = tin.shape
    xf = x.astype(np.int64) - tin.quant.zero_point
    padded = np.zeros((ih + kh + sh * oh, iw + kw + sw * ow, ic), np.int64)
    padded[layer.pad_top : layer.pad_top + ih, layer.pad_left : layer.pad_left + iw] = xf
    w = np.frombuffer(model, np.int8, layer.weights.count, layer.weights.offset).astype(np.int64)
    ws = np.frombuffer(model, "<f4", layer.weights.scale_count, layer.weights.scale_offset)
    bias = np.zeros(oc, np.int64)
    if layer.bias is not None:
        bias = np.frombuffer(model, np.int32, layer.bias.count, layer.bias.offset)
    acc = np.zeros((oh, ow, oc), np.int64)
    if layer.op == Op.CONV_2D:
        w = w.reshape(oc, kh, kw, ic)
        for i in range(oh):
            for j in range(ow):
                patch = padded[i * sh : i * sh + kh, j * sw : j * sw + kw]
                acc[i, j] = np.einsum("hwc,ohwc->o", patch, w)
    else:
        w = w.reshape(kh, kw, oc)
        for i in range(oh):
            for j in range(ow):
                patch = padded[i * sh : i * sh + kh, j * sw : j * sw + kw]
                acc[i, j] = np.einsum("hwc,hwc->c", patch, w)
    return _requant(
        acc + bias, tin.quant.scale, ws.astype(np.float64), tout.quant, layer.activation
    )


def test_geometry_matches_the_interpreter(geometry):
    graph = tflite_graph.graph_from_tflite(geometry)
    ops = [layer.op for layer in graph.layers]
    for op in (Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.FULLY_CONNECTED, Op.ADD, Op.PAD, Op.MEAN):
        assert op in ops, f"{op.name} missing from {[o.name for o in ops]}"
    assert Op.AVERAGE_POOL_2D in ops and Op.RESHAPE in ops
    # The trailing SOFTMAX is dropped: the graph's output is the logits tensor.
    interpreter = convert.tflite_interpreter(geometry)
    assert graph.layers[-1].op == Op.FULLY_CONNECTED
    assert graph.tensors[graph.output].shape == (1, 1, 5)
    softmax_out = interpreter.get_output_details()[0]["index"]
    assert softmax_out not in graph.extra["tflite_tensor_index"]

    x = np.random.default_rng(5).integers(-128, 128, (16, 13, 3)).astype(np.int8)
    interp = _all_tensors(geometry, x)
    index = graph.extra["tflite_tensor_index"]
    value = {g: interp.get_tensor(t)[0] for g, t in enumerate(index)}
    same_pad = []
    for layer in graph.layers:
        got = value[layer.output].reshape(graph.tensors[layer.output].shape)
        if layer.op in (Op.CONV_2D, Op.DEPTHWISE_CONV_2D):
            inp = value[layer.inputs[0]].reshape(graph.tensors[layer.inputs[0]].shape)
            ref = _conv_reference(graph, layer, geometry, inp)
            assert np.max(np.abs(ref - got.astype(np.int64))) <= 1, layer.name
            same_pad.append((layer.kernel, layer.stride, layer.pad_top, layer.pad_left))
        if layer.op == Op.PAD:
            inp = value[layer.inputs[0]].reshape(graph.tensors[layer.inputs[0]].shape)
            h, w, _ = inp.shape
            assert (layer.pad_top, layer.pad_left) == (2, 1)
            assert np.array_equal(got[2 : 2 + h, 1 : 1 + w], inp)
    # conv 3x3 s2 on 16x13 SAME: totals 1 and 2 -> 0, 1; dw 5x5 s1 SAME -> 2, 2.
    assert ((3, 3), (2, 2), 0, 1) in same_pad
    assert ((5, 5), (1, 1), 2, 2) in same_pad
    assert ((3, 3), (2, 2), 0, 0) in same_pad  # the VALID depthwise after PAD


def test_tflm_matches_tflite_reference_kernels(tiny):
    x = np.random.default_rng(2).integers(-128, 128, (4, 16, 16, 1)).astype(np.int8)
    result = convert.check_tflm_matches_tflite(tiny, x)
    assert result.max_abs_diff <= convert.MAX_TFLM_DIFF
    assert result.samples == 4
    assert result.arena_used_bytes and result.arena_used_bytes > 16 * 16


@pytest.mark.parametrize("split", [0, 1, 2, 4])
def test_device_model_runs_the_prefix_in_tflm(tiny, split):
    graph = tflite_graph.graph_from_tflite(tiny)
    device = tflite_graph.device_model_for_graph(tiny, graph, split)
    assert len(device) == len(tiny)
    # Patched in place: every constant the plan points at holds the same bytes.
    for layer in graph.layers:
        for ref in (layer.weights, layer.bias):
            if ref is not None:
                end = ref.offset + ref.count * (1 if ref.dtype == "int8" else 4)
                assert device[ref.offset : end] == tiny[ref.offset : end]
                scales = slice(ref.scale_offset, ref.scale_offset + 4 * ref.scale_count)
                assert device[scales] == tiny[scales]
    # Parsed back, the device model is the frozen prefix, tensors and geometry unchanged.
    if split > 0:
        prefix = tflite_graph.graph_from_tflite(device)
        assert len(prefix.layers) == split
        for a, b in zip(prefix.layers, graph.layers[:split], strict=True):
            assert (a.name, a.op, a.kernel, a.stride, a.pad_top, a.weights) == (
                b.name, b.op, b.kernel, b.stride, b.pad_top, b.weights
            )  # fmt: skip
            assert prefix.tensors[a.output] == graph.tensors[b.output]
    x = np.random.default_rng(split).integers(-128, 128, (3, 16, 16, 1)).astype(np.int8)
    tflite_index = graph.extra["tflite_tensor_index"][graph.layers[split].inputs[0]]
    expected = np.stack([_all_tensors(tiny, s).get_tensor(tflite_index)[0] for s in x])
    run = convert.run_tflm(device, x)
    assert run.outputs.shape == expected.shape
    np.testing.assert_array_equal(run.outputs, expected)


def test_device_model_rejects_bad_split(tiny):
    with pytest.raises(UserError, match="out of range"):
        tflite_graph.device_model(tiny, 6, 1)
    with pytest.raises(UserError, match="not a tensor"):
        tflite_graph.device_model(tiny, 1, 10_000)


def test_bad_model_bytes_are_user_errors(tiny):
    with pytest.raises(UserError, match="TFL3"):
        tflite_graph.graph_from_tflite(b"not a model at all")
    broken = bytearray(tiny)
    # Point the operators vector's length far past the end of the file.
    _, _, subgraph = tflite_graph._load_model(tiny)
    pos, _ = tflite_graph._vector_pos(subgraph, tflite_graph._SUBGRAPH_OPERATORS)
    struct.pack_into("<I", broken, pos - 4, 1_000_000)
    with pytest.raises(UserError):
        tflite_graph.graph_from_tflite(bytes(broken))


def test_unsupported_operator_names_operator_and_layer():
    inputs = tf.keras.Input((8, 8, 2))
    x = tf.keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(3)(x)
    rep = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 2)).astype(np.float32)
    model = convert.to_int8_tflite(tf.keras.Model(inputs, x), rep)
    with pytest.raises(UserError, match=r"operator 1 \(MAX_POOL_2D, output '.+'\).*unsupported"):
        tflite_graph.graph_from_tflite(model)


def test_input_info_and_classes(tiny):
    info = tflite_graph.input_info(tiny)
    interpreter = convert.tflite_interpreter(tiny)
    scale, zero = interpreter.get_input_details()[0]["quantization"]
    assert info.shape == (16, 16, 1)
    assert info.quant.scale == pytest.approx(scale) and info.quant.zero_point == zero
    assert tflite_graph.output_classes(tiny) == 4


def test_keras_model_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        models.load_keras_model(str(tmp_path / "none.keras"))
    (tmp_path / "junk.keras").write_bytes(b"junk")
    with pytest.raises(UserError, match="not a Keras model"):
        models.load_keras_model(str(tmp_path / "junk.keras"))
    model = models.build_tiny_cnn(8, 2, 3)
    model.save(tmp_path / "tiny.keras")
    loaded = models.load_keras_model(str(tmp_path / "tiny.keras"))
    assert models.input_shape(loaded) == (8, 8, 2)
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_mobilenet_builders_and_offline_imagenet():
    v1 = models.build_mobilenet_v1(0.25, 32, 7, channels=1)
    assert v1.output_shape == (None, 7) and models.input_shape(v1) == (32, 32, 1)
    with pytest.raises(UserError, match="3 input channels"):
        models.build_mobilenet_v2(0.35, 96, 5, channels=1, weights="imagenet")
    with pytest.raises(UserError, match="at least 32"):
        models.build_mobilenet_v1(0.25, 16, 5)


def test_device_model_arena_grows_with_the_prefix(tiny):
    """TFLM plans tensors no operator uses for the whole run; the cut-off suffix's
    activations must not cost arena, so a longer prefix never needs less."""
    graph = tflite_graph.graph_from_tflite(tiny)
    x = np.zeros((1, 16, 16, 1), np.int8)
    arenas = [
        convert.run_tflm(tflite_graph.device_model_for_graph(tiny, graph, k), x).arena_used_bytes
        for k in range(len(graph.layers))
    ]
    assert arenas == sorted(arenas) and arenas[0] < arenas[1], arenas
