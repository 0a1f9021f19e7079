"""Hand-built graphs and synthetic model bytes for the runtime's tests.

The C runtime reads only the ArrayRefs of a model (int8 weights, int32 biases,
float32 scales), so a bytes object holding those arrays stands in for a
.tflite when the test is about plans and arenas. Whole-model tests use real
.tflite files instead (test_runtime_training.py).
"""

from __future__ import annotations

import random

import numpy as np

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


class ModelBuilder:
    """Appends arrays to a fake model, 4-byte aligned where the runtime needs it."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.data = bytearray(b"TFL3" + bytes(12))
        self.rng = rng

    def _append(self, raw: bytes, align: int) -> int:
        while len(self.data) % align:
            self.data.append(0)
        offset = len(self.data)
        self.data += raw
        return offset

    def weights(self, count: int, channels: int, per_channel: bool = True) -> ArrayRef:
        q = self.rng.integers(-127, 128, size=count, dtype=np.int8)
        offset = self._append(q.tobytes(), 1)
        n = channels if per_channel else 1
        scales = self.rng.uniform(0.002, 0.02, size=n).astype(np.float32)
        scale_offset = self._append(scales.tobytes(), 4)
        return ArrayRef(offset, count, "int8", scale_offset, n)

    def bias(self, channels: int) -> ArrayRef:
        q = self.rng.integers(-2000, 2000, size=channels, dtype=np.int32)
        offset = self._append(q.tobytes(), 4)
        scales = self.rng.uniform(1e-4, 1e-3, size=channels).astype(np.float32)
        scale_offset = self._append(scales.tobytes(), 4)
        return ArrayRef(offset, channels, "int32", scale_offset, channels)

    def bytes(self) -> bytes:
        return bytes(self.data)


class GraphBuilder:
    def __init__(self, seed: int, shape: tuple[int, int, int]) -> None:
        self.np_rng = np.random.default_rng(seed)
        self.rng = random.Random(seed)
        self.model = ModelBuilder(self.np_rng)
        self.tensors: list[TensorInfo] = []
        self.layers: list[Layer] = []
        self.input = self.tensor(shape)

    def tensor(self, shape: tuple[int, int, int]) -> int:
        scale = float(self.np_rng.uniform(0.01, 0.1))
        zp = int(self.np_rng.integers(-20, 20))
        self.tensors.append(TensorInfo(f"t{len(self.tensors)}", shape, QuantParams(scale, zp)))
        return len(self.tensors) - 1

    def shape(self, t: int) -> tuple[int, int, int]:
        return self.tensors[t].shape

    def _add(self, op: Op, inputs: list[int], out_shape: tuple[int, int, int], **kw) -> int:
        out = self.tensor(out_shape)
        name = f"{op.name.lower()}_{len(self.layers)}"
        self.layers.append(Layer(name, op, inputs, out, **kw))
        return out

    @staticmethod
    def _same(n: int, k: int, s: int) -> tuple[int, int]:
        out = -(-n // s)
        pad = max((out - 1) * s + k - n, 0)
        return out, pad // 2

    def conv(
        self,
        x: int,
        out_c: int,
        k: int = 3,
        s: int = 1,
        act: Activation = Activation.RELU,
        bias: bool = True,
        depthwise: bool = False,
        per_channel: bool = True,
    ) -> int:
        h, w, c = self.shape(x)
        oh, pt = self._same(h, k, s)
        ow, pl = self._same(w, k, s)
        if depthwise:
            out_c = c
            wref = self.model.weights(k * k * c, c, per_channel)
        else:
            wref = self.model.weights(out_c * k * k * c, out_c, per_channel)
        op = Op.DEPTHWISE_CONV_2D if depthwise else Op.CONV_2D
        return self._add(
            op,
            [x],
            (oh, ow, out_c),
            activation=act,
            kernel=(k, k),
            stride=(s, s),
            pad_top=pt,
            pad_left=pl,
            weights=wref,
            bias=self.model.bias(out_c) if bias else None,
        )

    def fc(self, x: int, out: int, act: Activation = Activation.NONE, bias: bool = True) -> int:
        n_in = self.shape(x)[2]
        rows = self.shape(x)[0] * self.shape(x)[1]
        return self._add(
            Op.FULLY_CONNECTED,
            [x],
            (1, rows, out) if rows > 1 else (1, 1, out),
            activation=act,
            weights=self.model.weights(out * n_in, out),
            bias=self.model.bias(out) if bias else None,
        )

    def add(self, a: int, b: int, act: Activation = Activation.NONE) -> int:
        return self._add(Op.ADD, [a, b], self.shape(a), activation=act)

    def mean(self, x: int) -> int:
        return self._add(Op.MEAN, [x], (1, 1, self.shape(x)[2]))

    def avg_pool(self, x: int, k: int = 2, s: int = 2) -> int:
        h, w, c = self.shape(x)
        return self._add(
            Op.AVERAGE_POOL_2D,
            [x],
            ((h - k) // s + 1, (w - k) // s + 1, c),
            kernel=(k, k),
            stride=(s, s),
        )

    def pad(self, x: int, top: int = 1, left: int = 1, bottom: int = 1, right: int = 1) -> int:
        h, w, c = self.shape(x)
        return self._add(
            Op.PAD, [x], (h + top + bottom, w + left + right, c), pad_top=top, pad_left=left
        )

    def reshape(self, x: int, shape: tuple[int, int, int]) -> int:
        return self._add(Op.RESHAPE, [x], shape)

    def graph(self, output: int) -> tuple[Graph, bytes]:
        g = Graph(list(self.tensors), list(self.layers), self.input, output, "synthetic")
        return g, self.model.bytes()


METHOD_CHOICES = [
    Method.NONE,
    Method.NONE,
    Method.FULL,
    Method.BITFIT,
    Method.SCALE_SHIFT,
    Method.LORA,
    Method.SPARSE,
    Method.LORA | Method.BITFIT,
    Method.SCALE_SHIFT | Method.BITFIT,
    Method.LORA | Method.SCALE_SHIFT,
    Method.DORA,
    Method.IA3,
    Method.IA3 | Method.BITFIT,
    Method.IA3 | Method.LORA,
]


def mark(layer: Layer, methods: Method, rank: int = 2, alpha: float = 4.0) -> None:
    layer.methods = methods
    if methods & (Method.LORA | Method.DORA):
        layer.lora_rank = rank
        layer.lora_alpha = alpha


def _lora_ok(layer: Layer) -> bool:
    if layer.op == Op.FULLY_CONNECTED:
        return True
    return layer.op == Op.CONV_2D and layer.kernel == (1, 1) and layer.stride == (1, 1)


def random_graph(seed: int, ia3_input: bool = False) -> tuple[Graph, bytes]:
    """A random small network of every supported op, with random methods. `ia3_input`:
    IA3 scales the input of the layers it would scale the output of, where nothing else
    but BitFit trains (the same graph and draws otherwise)."""
    rng = random.Random(seed)
    gb = GraphBuilder(seed, (rng.randint(3, 9), rng.randint(3, 9), rng.randint(1, 4)))
    x = gb.input
    acts = [Activation.NONE, Activation.RELU, Activation.RELU6]
    for _ in range(rng.randint(1, 6)):
        kind = rng.choice(["conv", "conv1", "dw", "res", "pad", "pool", "reshape"])
        h, w, c = gb.shape(x)
        if kind == "conv":
            x = gb.conv(
                x,
                rng.randint(1, 6),
                k=rng.choice([1, 3]),
                s=rng.choice([1, 2]),
                act=rng.choice(acts),
                bias=rng.random() < 0.85,
                per_channel=rng.random() < 0.8,
            )
        elif kind == "conv1":
            x = gb.conv(x, rng.randint(1, 6), k=1, s=1, act=rng.choice(acts))
        elif kind == "dw":
            x = gb.conv(x, c, k=3, s=rng.choice([1, 2]), act=rng.choice(acts), depthwise=True)
        elif kind == "res":
            y = gb.conv(x, c, k=1, s=1, act=rng.choice(acts))
            if rng.random() < 0.5:
                y = gb.conv(y, c, k=3, s=1, act=rng.choice(acts), depthwise=True)
            x = gb.add(x, y, act=rng.choice(acts))
        elif kind == "pad":
            x = gb.pad(
                x, rng.randint(0, 2), rng.randint(0, 2), rng.randint(0, 1), rng.randint(0, 1)
            )
        elif kind == "pool" and h >= 2 and w >= 2:
            x = gb.avg_pool(x, 2, 2)
        elif kind == "reshape":
            x = gb.reshape(x, (w, h, c))
    if rng.random() < 0.3:
        # FC over pixel rows (a 1x1 convolution written as FULLY_CONNECTED).
        x = gb.fc(x, rng.randint(2, 5), act=rng.choice(acts))
        h, w, c = gb.shape(x)
        x = gb.reshape(x, (h, w, c))
    x = gb.mean(x) if rng.random() < 0.7 else gb.reshape(x, (1, 1, gb.tensors[x].size))
    if rng.random() < 0.4:
        x = gb.fc(x, rng.randint(3, 8), act=rng.choice(acts))
    logits = gb.fc(x, rng.randint(2, 6))
    graph, model = gb.graph(logits)
    linear = [
        lay
        for lay in graph.layers
        if lay.op in (Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.FULLY_CONNECTED)
    ]
    for lay in linear:
        m = rng.choice(METHOD_CHOICES)
        if m & Method.LORA and not _lora_ok(lay):
            m &= ~Method.LORA
        if m == Method.DORA and not _lora_ok(lay):
            m = Method.NONE
        if m == Method.BITFIT and lay.bias is None:
            m = Method.NONE
        if m & Method.SCALE_SHIFT and m & Method.LORA and lay.bias is None:
            pass
        mark(lay, m, rank=rng.randint(1, 3), alpha=rng.choice([1.0, 2.0, 8.0]))
    if rng.random() < 0.5 or not any(lay.trains_anything for lay in graph.layers):
        mark(graph.layers[-1], Method.LAST_LAYER)
    # A method that trains nothing on a layer (BitFit without bias) is refused: drop it.
    for lay in linear:
        if lay.methods and not (
            lay.trains_weight
            or lay.trains_bias
            or lay.methods & (Method.SCALE_SHIFT | Method.LORA | Method.DORA | Method.IA3)
        ):
            lay.methods = Method.NONE
    if ia3_input:
        for lay in linear:
            if lay.methods & Method.IA3 and not lay.methods & ~(Method.IA3 | Method.BITFIT):
                lay.methods = (lay.methods & ~Method.IA3) | Method.IA3_INPUT
    return graph, model
