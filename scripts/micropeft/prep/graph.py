"""The model graph that every part of the tooling shares.

`tflite_graph.graph_from_tflite` builds it from an int8 .tflite; `methods`
marks which parameters each layer trains; `plan` lays it out and writes the
plan blob that the C runtime reads. Shapes are batch-1 NHWC without the N.
Op, Activation and Method are the plan format's codes (micropeft.formats).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from micropeft.formats import Activation, Method, Op

__all__ = [
    "Activation",
    "ArrayRef",
    "Graph",
    "Layer",
    "Method",
    "Op",
    "QuantParams",
    "TensorInfo",
]


@dataclass(frozen=True)
class QuantParams:
    """Affine int8 quantization: real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, int, int]  # (h, w, c); a vector of n is (1, 1, n)
    quant: QuantParams

    @property
    def size(self) -> int:
        h, w, c = self.shape
        return h * w * c


@dataclass(frozen=True)
class ArrayRef:
    """A constant array inside the .tflite file, read in place by the runtime.

    `offset` and `scale_offset` are byte offsets from the start of the model
    file; scales are float32 (1 per tensor, or one per output channel).
    """

    offset: int
    count: int
    dtype: str  # "int8" (weights) or "int32" (biases)
    scale_offset: int
    scale_count: int


@dataclass
class Layer:
    name: str
    op: Op
    inputs: list[int]  # tensor indices (2 for ADD, else 1)
    output: int
    activation: Activation = Activation.NONE
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad_top: int = 0
    pad_left: int = 0
    weights: ArrayRef | None = None
    bias: ArrayRef | None = None
    # Filled in by methods.apply_method:
    methods: Method = Method.NONE
    lora_rank: int = 0
    lora_alpha: float = 0.0

    @property
    def trains_weight(self) -> bool:
        return bool(self.methods & (Method.FULL | Method.LAST_LAYER | Method.SPARSE))

    @property
    def trains_bias(self) -> bool:
        return self.bias is not None and bool(
            self.methods & (Method.FULL | Method.LAST_LAYER | Method.SPARSE | Method.BITFIT)
        )

    @property
    def trains_anything(self) -> bool:
        return self.methods != Method.NONE


@dataclass
class Graph:
    """Layers in execution (topological) order. `output` is the logits tensor:
    a trailing SOFTMAX is dropped, since the runtime's loss applies it."""

    tensors: list[TensorInfo]
    layers: list[Layer]
    input: int
    output: int
    model_name: str = ""
    extra: dict[str, object] = field(default_factory=dict)
