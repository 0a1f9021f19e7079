"""The TensorFlow reference trainer against independent references.

(a) its forward pass on a real int8 .tflite against tf.lite.Interpreter;
(b) its gradients against GradientTape on a Keras float model built here, layer
    by layer with Keras layers, from the same dequantized weights;
(c) its optimizer steps against the formulas computed by hand in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from micropeft.host.reference import (
    TFReferenceTrainer,
    dequantize,
    first_trainable_layer,
    tflite_tensor_values,
)
from micropeft.planning.plan import OptimizerConfig
from micropeft.prep.graph import (
    Activation,
    ArrayRef,
    Graph,
    Layer,
    Method,
    Op,
    QuantParams,
    TensorInfo,
)


def Opt(kind: str = "sgd", lr: float = 0.1, **fields: float) -> OptimizerConfig:  # noqa: N802
    """An optimizer configuration: the planner's, plain SGD at 0.1 unless told."""
    return OptimizerConfig(kind, lr=lr, **{"momentum": 0.0, **fields})


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-3))


# ---- A synthetic int8 "model file": arrays laid out at byte offsets, as in a .tflite ----------


class Blob:
    def __init__(self) -> None:
        self.data = bytearray(b"\x00" * 16)

    def put(self, array: np.ndarray) -> int:
        self.data += b"\x00" * (-len(self.data) % 16)
        offset = len(self.data)
        self.data += np.ascontiguousarray(array).tobytes()
        return offset

    def ref(self, q: np.ndarray, scales: np.ndarray) -> ArrayRef:
        offset = self.put(q)
        scale_offset = self.put(scales.astype("<f4"))
        return ArrayRef(offset, q.size, str(q.dtype), scale_offset, scales.size)


def _tensor(name: str, shape: tuple[int, int, int]) -> TensorInfo:
    return TensorInfo(name, shape, QuantParams(0.05, 0))


def synthetic_model(seed: int = 0) -> tuple[Graph, bytes, dict[str, np.ndarray]]:
    """A graph with every op of the trainable part, its int8 blob and the float weights
    (q * scale computed here, independently of the reference's reader), Keras layouts."""
    rng = np.random.default_rng(seed)
    blob = Blob()
    floats: dict[str, np.ndarray] = {}

    def weighted(name: str, shape: tuple[int, ...], out: int, per_channel: bool) -> tuple:
        q = rng.integers(-127, 128, shape).astype(np.int8)
        scales = rng.uniform(0.004, 0.012, out if per_channel else 1).astype(np.float32)
        axis = 2 if len(shape) == 3 else 0  # depthwise [kh,kw,c], else [out, ...]
        bshape = [1] * len(shape)
        bshape[axis] = -1
        floats[f"{name}/weight"] = q.astype(np.float32) * scales.reshape(bshape)
        qb = rng.integers(-300, 300, out).astype(np.int32)
        bscales = rng.uniform(5e-4, 1.5e-3, out).astype(np.float32)
        floats[f"{name}/bias"] = qb.astype(np.float32) * bscales
        return blob.ref(q, scales), blob.ref(qb, bscales)

    tensors = [
        _tensor("in", (9, 9, 3)),  # 0
        _tensor("conv1", (5, 5, 8)),  # 1
        _tensor("pad", (6, 6, 8)),  # 2
        _tensor("dw", (2, 2, 8)),  # 3
        _tensor("pw1", (2, 2, 16)),  # 4
        _tensor("pw2", (2, 2, 8)),  # 5
        _tensor("add", (2, 2, 8)),  # 6
        _tensor("pool", (2, 2, 8)),  # 7
        _tensor("mean", (1, 1, 8)),  # 8
        _tensor("flat", (1, 1, 8)),  # 9
        _tensor("logits", (1, 1, 5)),  # 10
    ]
    w, b = weighted("conv1", (8, 3, 3, 3), 8, True)
    conv1 = Layer("conv1", Op.CONV_2D, [0], 1, Activation.RELU6, (3, 3), (2, 2), 1, 1, w, b)
    pad = Layer("pad", Op.PAD, [1], 2, pad_top=1, pad_left=0)
    w, b = weighted("dw", (3, 3, 8), 8, True)
    dw = Layer("dw", Op.DEPTHWISE_CONV_2D, [2], 3, Activation.RELU, (3, 3), (2, 2), 0, 0, w, b)
    w, b = weighted("pw1", (16, 1, 1, 8), 16, True)
    pw1 = Layer("pw1", Op.CONV_2D, [3], 4, Activation.RELU, weights=w, bias=b)
    w, b = weighted("pw2", (8, 1, 1, 16), 8, False)
    pw2 = Layer("pw2", Op.CONV_2D, [4], 5, Activation.NONE, weights=w, bias=b)
    add = Layer("add", Op.ADD, [3, 5], 6, Activation.NONE)
    pool = Layer("pool", Op.AVERAGE_POOL_2D, [6], 7, kernel=(3, 3), pad_top=1, pad_left=1)
    mean = Layer("mean", Op.MEAN, [7], 8, kernel=(2, 2))
    flat = Layer("flat", Op.RESHAPE, [8], 9)
    w, b = weighted("fc", (5, 8), 5, True)
    fc = Layer("fc", Op.FULLY_CONNECTED, [9], 10, weights=w, bias=b)
    graph = Graph(tensors, [conv1, pad, dw, pw1, pw2, add, pool, mean, flat, fc], 0, 10, "synth")
    return graph, bytes(blob.data), floats


def keras_model(floats: dict[str, np.ndarray], lora: dict[str, np.ndarray], affine: dict):
    """The synthetic graph in Keras layers (SAME padding, ZeroPadding2D, AveragePooling2D...).

    `lora` holds A/B for pw1 and fc (alpha 4, rank 2) when not empty; `affine` holds
    gamma/beta for conv1 and dw (as a 1x1 DepthwiseConv2D with bias) when not empty.
    Returns the model (outputs: logits and every intermediate) and its name -> variable map.
    """
    k = tf.keras.layers
    alpha, rank = 4.0, 2
    x0 = k.Input((9, 9, 3))
    c1 = k.Conv2D(8, 3, strides=2, padding="same", name="conv1")
    y = c1(x0)
    aff = {}
    if affine:
        aff["conv1"] = k.DepthwiseConv2D(1, name="conv1_affine")
        y = aff["conv1"](y)
    t1 = k.ReLU(6.0)(y)
    t2 = k.ZeroPadding2D(((1, 0), (0, 1)))(t1)
    dw = k.DepthwiseConv2D(3, strides=2, padding="valid", name="dw")
    y = dw(t2)
    if affine:
        aff["dw"] = k.DepthwiseConv2D(1, name="dw_affine")
        y = aff["dw"](y)
    t3 = k.ReLU()(y)
    pw1 = k.Conv2D(16, 1, name="pw1")
    y = pw1(t3)
    adapters = {}
    if lora:
        adapters["pw1"] = (k.Conv2D(rank, 1, use_bias=False), k.Conv2D(16, 1, use_bias=False))
        a, b = adapters["pw1"]
        y = k.Add()([y, k.Rescaling(alpha / rank)(b(a(t3)))])
    t4 = k.ReLU()(y)
    pw2 = k.Conv2D(8, 1, name="pw2")
    t5 = pw2(t4)
    t6 = k.Add()([t3, t5])
    t7 = k.AveragePooling2D(3, strides=1, padding="same")(t6)
    t8 = k.GlobalAveragePooling2D()(t7)
    t9 = k.Flatten()(t8)
    fc = k.Dense(5, name="fc")
    y = fc(t9)
    if lora:
        adapters["fc"] = (k.Dense(rank, use_bias=False), k.Dense(5, use_bias=False))
        a, b = adapters["fc"]
        y = k.Add()([y, k.Rescaling(alpha / rank)(b(a(t9)))])
    model = tf.keras.Model(x0, [y, t1, t3, t9])

    conv1_w = floats["conv1/weight"].transpose(1, 2, 3, 0)
    c1.set_weights([conv1_w, floats["conv1/bias"]])
    dw.set_weights([floats["dw/weight"][..., None], floats["dw/bias"]])
    pw1.set_weights([floats["pw1/weight"].transpose(1, 2, 3, 0), floats["pw1/bias"]])
    pw2.set_weights([floats["pw2/weight"].transpose(1, 2, 3, 0), floats["pw2/bias"]])
    fc.set_weights([floats["fc/weight"].T, floats["fc/bias"]])
    names = {
        "conv1/weight": (c1.kernel, lambda g: g.transpose(3, 0, 1, 2)),
        "conv1/bias": (c1.bias, None),
        "dw/weight": (dw.kernel, lambda g: g[..., 0]),
        "dw/bias": (dw.bias, None),
        "pw1/weight": (pw1.kernel, lambda g: g.transpose(3, 0, 1, 2)),
        "pw1/bias": (pw1.bias, None),
        "pw2/weight": (pw2.kernel, lambda g: g.transpose(3, 0, 1, 2)),
        "pw2/bias": (pw2.bias, None),
        "fc/weight": (fc.kernel, lambda g: g.T),
        "fc/bias": (fc.bias, None),
    }
    for layer, (a, b) in adapters.items():
        a_val, b_val = lora[f"{layer}/lora_a"], lora[f"{layer}/lora_b"]
        if layer == "fc":
            a.set_weights([a_val.T])
            b.set_weights([b_val.T])
            names[f"{layer}/lora_a"] = (a.kernel, lambda g: g.T)
            names[f"{layer}/lora_b"] = (b.kernel, lambda g: g.T)
        else:
            a.set_weights([a_val.T[None, None]])
            b.set_weights([b_val.T[None, None]])
            names[f"{layer}/lora_a"] = (a.kernel, lambda g: g[0, 0].T)
            names[f"{layer}/lora_b"] = (b.kernel, lambda g: g[0, 0].T)
    for layer, dense in aff.items():
        gamma, beta = affine[f"{layer}/gamma"], affine[f"{layer}/beta"]
        dense.set_weights([gamma[None, None, :, None], beta])
        names[f"{layer}/gamma"] = (dense.kernel, lambda g: g[0, 0, :, 0])
        names[f"{layer}/beta"] = (dense.bias, None)
    return model, names


def keras_gradients(model, names, x, labels):
    variables = [v for v, _ in names.values()]
    with tf.GradientTape() as tape:
        logits = model(x)[0]
        loss = tf.reduce_mean(
            tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        )
    grads = tape.gradient(loss, variables)
    out = {}
    for (key, (_, to_native)), g in zip(names.items(), grads, strict=True):
        g = g.numpy()
        out[key] = to_native(g) if to_native else g
    return float(loss), out


# Which layers carry which method, per case; the trained parameters follow from them.
GRADIENT_CASES = {
    "full": {name: Method.FULL for name in ("conv1", "dw", "pw1", "pw2", "fc")},
    "bitfit": {name: Method.BITFIT for name in ("conv1", "dw", "pw1", "pw2", "fc")},
    "head": {"fc": Method.LAST_LAYER},
    "lora": {"pw1": Method.LORA, "fc": Method.LORA},
    "sparse_pw1": {"pw1": Method.SPARSE},
    "scale_shift": {"conv1": Method.SCALE_SHIFT, "dw": Method.SCALE_SHIFT},
    "lora_bitfit_head": {
        "pw1": Method.LORA | Method.BITFIT,
        "pw2": Method.BITFIT,
        "fc": Method.LORA | Method.LAST_LAYER,
    },
}
# The Keras output that is the split tensor, per first trainable layer.
SPLIT_OUTPUT = {"conv1": None, "dw": None, "pw1": 2, "fc": 3}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_gradients_match_keras_gradient_tape(case):
    graph, model_bytes, floats = synthetic_model()
    rng = np.random.default_rng(1)
    methods = GRADIENT_CASES[case]
    lora, affine = {}, {}
    for layer in graph.layers:
        layer.methods = methods.get(layer.name, Method.NONE)
        if layer.methods & Method.LORA:
            layer.lora_rank, layer.lora_alpha = 2, 4.0
            n_in = 8  # pw1 reads dw's 8 channels, fc the 8 pooled features
            n_out = 16 if layer.name == "pw1" else 5
            # B != 0 so that A gets a gradient too.
            lora[f"{layer.name}/lora_a"] = rng.normal(0, 0.3, (2, n_in)).astype(np.float32)
            lora[f"{layer.name}/lora_b"] = rng.normal(0, 0.3, (n_out, 2)).astype(np.float32)
        if layer.methods & Method.SCALE_SHIFT:
            affine[f"{layer.name}/gamma"] = rng.uniform(0.5, 1.5, 8).astype(np.float32)
            affine[f"{layer.name}/beta"] = rng.normal(0, 0.2, 8).astype(np.float32)
    split = first_trainable_layer(graph)
    model, names = keras_model(floats, lora, affine)

    x = rng.uniform(0, 1, (4, 9, 9, 3)).astype(np.float32)
    labels = np.array([0, 3, 1, 4], np.int32)
    keras_loss, keras_grads = keras_gradients(model, names, x, labels)
    outputs = model(x)
    split_name = graph.layers[split].name
    x_split = x if SPLIT_OUTPUT[split_name] is None else outputs[SPLIT_OUTPUT[split_name]].numpy()

    trainer = TFReferenceTrainer(graph, model_bytes, split, Opt(), {**lora, **affine})
    expected_keys = {
        f"{layer.name}/{kind}"
        for layer in graph.layers
        for kind, flag in (
            ("weight", Method.FULL | Method.LAST_LAYER | Method.SPARSE),
            ("bias", Method.FULL | Method.LAST_LAYER | Method.SPARSE | Method.BITFIT),
            ("gamma", Method.SCALE_SHIFT),
            ("beta", Method.SCALE_SHIFT),
            ("lora_a", Method.LORA),
            ("lora_b", Method.LORA),
        )
        if layer.methods & flag
    }
    assert set(trainer.trained) == expected_keys

    np.testing.assert_allclose(trainer.predict(x_split), outputs[0].numpy(), rtol=1e-4, atol=1e-5)
    assert trainer.loss(x_split, labels) == pytest.approx(keras_loss, rel=1e-5)
    grads = trainer.gradients(x_split, labels)
    assert set(grads) == expected_keys
    for key, g in grads.items():
        assert g.shape == keras_grads[key].shape, key
        assert np.max(np.abs(keras_grads[key])) > 1e-6, f"{key}: test has no gradient signal"
        assert rel_err(g, keras_grads[key]) < 1e-4, key


def test_frozen_weights_are_dequantized_from_the_blob():
    graph, model_bytes, floats = synthetic_model(seed=3)
    for layer in graph.layers:
        layer.methods = Method.FULL if layer.weights is not None else Method.NONE
    params = TFReferenceTrainer(graph, model_bytes, 0, Opt()).parameters()
    assert set(params) == {k for k in floats}
    for key, value in floats.items():
        np.testing.assert_array_equal(params[key], value, err_msg=key)


def test_bad_splits_and_lora_targets_are_rejected():
    graph, model_bytes, _ = synthetic_model()
    graph.layers[4].methods = Method.FULL  # pw2: the ADD after it also reads dw's output
    with pytest.raises(ValueError, match="single tensor"):
        TFReferenceTrainer(graph, model_bytes, 4, Opt()).predict(np.zeros((1, 2, 2, 16)))
    graph.layers[4].methods = Method.NONE
    graph.layers[2].methods = Method.LORA  # 3x3 depthwise
    graph.layers[2].lora_rank, graph.layers[2].lora_alpha = 2, 2.0
    with pytest.raises(ValueError, match="LoRA"):
        TFReferenceTrainer(graph, model_bytes, 2, Opt())
    graph.layers[2].methods = Method.BITFIT
    with pytest.raises(ValueError, match="not a parameter"):
        TFReferenceTrainer(graph, model_bytes, 2, Opt(), {"dw/gamma": np.ones(8)})
    with pytest.raises(ValueError, match="shape"):
        TFReferenceTrainer(graph, model_bytes, 2, Opt(), {"dw/bias": np.ones(3)})


# ---- (c) optimizer formulas, by hand on a single FC layer -----------------------------------


def fc_model(seed: int = 0) -> tuple[Graph, bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    blob = Blob()
    qw = rng.integers(-127, 128, (4, 6)).astype(np.int8)
    sw = np.array([0.02], np.float32)
    qb = rng.integers(-100, 100, 4).astype(np.int32)
    sb = np.array([0.003], np.float32)
    layer = Layer("fc", Op.FULLY_CONNECTED, [0], 1, weights=blob.ref(qw, sw), bias=blob.ref(qb, sb))
    layer.methods = Method.FULL
    graph = Graph([_tensor("x", (1, 1, 6)), _tensor("y", (1, 1, 4))], [layer], 0, 1)
    return graph, bytes(blob.data), qw.astype(np.float32) * sw[0], qb.astype(np.float32) * sb[0]


def numpy_fc_loss_grads(w, b, x, labels):
    logits = x @ w.T + b
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = len(x)
    loss = -np.mean(np.log(p[np.arange(n), labels]))
    d = p.copy()
    d[np.arange(n), labels] -= 1.0
    d /= n
    return loss, d.T @ x, d.sum(axis=0)


OPTIMIZER_CASES = {
    "sgd": Opt("sgd", lr=0.5),
    "sgd_momentum_wd": Opt("sgd", lr=0.3, momentum=0.9, weight_decay=0.05),
    "sgd_clip": Opt("sgd", lr=0.3, momentum=0.5, clip_norm=0.05, weight_decay=0.01),
    "adam": Opt("adam", lr=0.01, beta1=0.8, beta2=0.95, eps=1e-3),
    "adam_clip_wd": Opt("adam", lr=0.02, eps=1e-6, weight_decay=0.1, clip_norm=0.05),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_optimizer_steps_match_hand_computed_updates(case):
    opt = OPTIMIZER_CASES[case]
    graph, model_bytes, w, b = fc_model()
    trainer = TFReferenceTrainer(graph, model_bytes, 0, opt)
    rng = np.random.default_rng(2)
    w, b = w.astype(np.float64), b.astype(np.float64)
    state = {"w": [np.zeros_like(w), np.zeros_like(w)], "b": [np.zeros_like(b), np.zeros_like(b)]}
    clipped = False
    for t in range(1, 5):
        x = rng.normal(0, 1, (3, 6))
        labels = rng.integers(0, 4, 3)
        loss, gw, gb = numpy_fc_loss_grads(w, b, x, labels)
        norm = np.sqrt(np.sum(gw**2) + np.sum(gb**2))
        if opt.clip_norm > 0 and norm > opt.clip_norm:
            clipped = True
            gw, gb = gw * opt.clip_norm / norm, gb * opt.clip_norm / norm
        new = {}
        for name, p, g in (("w", w, gw), ("b", b, gb)):
            g = g + opt.weight_decay * p
            s1, s2 = state[name]
            if opt.kind == "sgd":
                s1[...] = opt.momentum * s1 + g
                new[name] = p - opt.lr * s1
            else:
                s1[...] = opt.beta1 * s1 + (1 - opt.beta1) * g
                s2[...] = opt.beta2 * s2 + (1 - opt.beta2) * g * g
                m_hat = s1 / (1 - opt.beta1**t)
                v_hat = s2 / (1 - opt.beta2**t)
                new[name] = p - opt.lr * m_hat / (np.sqrt(v_hat) + opt.eps)
        w, b = new["w"], new["b"]
        got_loss = trainer.train_batch(x.astype(np.float32).reshape(3, 1, 1, 6), labels)
        assert got_loss == pytest.approx(loss, rel=1e-5)
        params = trainer.parameters()
        assert rel_err(params["fc/weight"], w) < 1e-5, (t, "weight")
        assert rel_err(params["fc/bias"], b) < 1e-5, (t, "bias")
    assert clipped == (opt.clip_norm > 0), "a clipping case must clip"


# ---- (a) forward on a real int8 .tflite against tf.lite.Interpreter ------------------------


@pytest.fixture(scope="module")
def tiny_int8():
    from micropeft.prep import convert, models
    from micropeft.prep.tflite_graph import graph_from_tflite

    tf.keras.utils.set_random_seed(0)
    model = models.build_tiny_cnn(size=16, channels=3, num_classes=4, width=8, seed=0)
    # Glorot-initialised logits of random inputs are nearly equal: spread them out.
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 20.0, np.linspace(-0.5, 0.5, bias.size).astype(np.float32)])
    rng = np.random.default_rng(0)
    representative = rng.uniform(0, 1, (32, 16, 16, 3)).astype(np.float32)
    model_bytes = convert.to_int8_tflite(model, representative)
    return graph_from_tflite(model_bytes), model_bytes, representative


@pytest.mark.parametrize("split_name", ["first", "middle"])
def test_forward_matches_tflite_interpreter(tiny_int8, split_name):
    graph, model_bytes, samples = tiny_int8
    weighted = [i for i, layer in enumerate(graph.layers) if layer.weights is not None]
    split = weighted[0] if split_name == "first" else weighted[len(weighted) // 2]
    for i, layer in enumerate(graph.layers):
        layer.methods = Method.FULL if i >= split and layer.weights is not None else Method.NONE
    split_info = graph.tensors[graph.layers[split].inputs[0]]
    out_info = graph.tensors[graph.output]
    split_q, out_q = tflite_tensor_values(model_bytes, [split_info.name, out_info.name], samples)
    x_split = dequantize(split_q, split_info.quant.scale, split_info.quant.zero_point)
    expected = dequantize(out_q, out_info.quant.scale, out_info.quant.zero_point).reshape(
        len(samples), -1
    )

    logits = TFReferenceTrainer(graph, model_bytes, split, Opt()).predict(x_split)
    spread = float(expected.max() - expected.min())
    assert spread > 0.05, "degenerate logits"
    # The interpreter rounds every activation to int8 (about 1.5 output steps here);
    # a padding, layout or scale mistake moves logits by tens of steps.
    assert np.max(np.abs(logits - expected)) < 4 * out_info.quant.scale
    agree = np.mean(np.argmax(logits, 1) == np.argmax(expected, 1))
    assert agree >= 0.9


def _every_op_keras_model():
    """Conv, PAD, depthwise, 1x1 convs, residual ADD, AVERAGE_POOL_2D, MEAN, dense."""
    k = tf.keras.layers
    x0 = k.Input((12, 12, 3))
    x = k.Conv2D(8, 3, padding="same", activation="relu")(x0)
    x = k.ZeroPadding2D(((1, 0), (1, 0)))(x)  # not SAME: stays a PAD op
    x = k.DepthwiseConv2D(3, strides=2, padding="valid")(x)
    x = k.ReLU(6.0)(x)
    y = k.Conv2D(8, 1)(k.Conv2D(16, 1, activation="relu")(x))
    x = k.Add()([x, y])
    x = k.AveragePooling2D(3, strides=1, padding="same")(x)
    x = k.GlobalAveragePooling2D()(x)
    logits = k.Dense(4, bias_initializer=tf.keras.initializers.RandomNormal(0, 0.3, seed=1))(x)
    return tf.keras.Model(x0, logits)


def test_every_layer_matches_tflite_within_rounding():
    """Each layer, fed the interpreter's own (dequantized) input, gives the
    interpreter's output up to the int8 rounding of that output."""
    from micropeft.host.reference import forward, initial_parameters
    from micropeft.prep import convert
    from micropeft.prep.tflite_graph import graph_from_tflite

    tf.keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    samples = rng.uniform(-1, 1, (8, 12, 12, 3)).astype(np.float32)
    model_bytes = convert.to_int8_tflite(_every_op_keras_model(), samples)
    graph = graph_from_tflite(model_bytes)
    ops = {layer.op for layer in graph.layers}
    assert {Op.PAD, Op.ADD, Op.AVERAGE_POOL_2D, Op.MEAN, Op.DEPTHWISE_CONV_2D} <= ops

    raw = tflite_tensor_values(model_bytes, [t.name for t in graph.tensors], samples)
    values = [
        dequantize(q, t.quant.scale, t.quant.zero_point).reshape(len(samples), *t.shape)
        for q, t in zip(raw, graph.tensors, strict=True)
    ]
    for layer in graph.layers:
        out = graph.tensors[layer.output]
        if layer.op == Op.ADD:
            continue  # two inputs: forward() takes one split tensor (the Keras test covers ADD)
        sub = Graph(graph.tensors, [layer], layer.inputs[0], layer.output)
        layer.methods = Method.FULL if layer.weights is not None else Method.NONE
        params = initial_parameters(sub, model_bytes, 0)
        x = tf.constant(values[layer.inputs[0]])
        y = forward(sub, 0, params, x).numpy().reshape(values[layer.output].shape)
        layer.methods = Method.NONE
        # The int8 output saturates at its range (the fused activation's clamp).
        low = (-128 - out.quant.zero_point) * out.quant.scale
        high = (127 - out.quant.zero_point) * out.quant.scale
        steps = np.max(np.abs(np.clip(y, low, high) - values[layer.output])) / out.quant.scale
        assert steps <= 1.01, f"{layer.name} ({layer.op.name}): {steps:.2f} int8 steps off"
