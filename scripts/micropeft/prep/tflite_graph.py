"""Read an int8 .tflite into the Graph IR, and cut the model the device stores.

The parser walks the flatbuffer with TensorFlow's generated schema
(`tensorflow.lite.python.schema_py_generated`, the `tflite` package as a
fallback) and records, for every weight, bias and scale vector, its byte
offset from the start of the file: the runtime reads them in place from flash.

Graph tensors are the activation tensors only (constants live in ArrayRefs),
numbered in order of first appearance; `graph.extra["tflite_tensor_index"]`
maps them back to the .tflite's tensor indices, and layer i is the model's
operator i (only a trailing SOFTMAX is dropped).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from micropeft.errors import UserError
from micropeft.prep.graph import Activation, ArrayRef, Graph, Layer, Op, QuantParams, TensorInfo

# Vtable slots of the schema fields whose vectors we locate or patch (schema.fbs order).
_SUBGRAPH_OUTPUTS = 8
_SUBGRAPH_OPERATORS = 10
_BUFFER_DATA = 4
_TENSOR_SHAPE = 4
_QUANT_SCALE = 8

# TensorType values of schema.fbs.
_INT8 = 9
_INT32 = 2
_FLOAT32 = 0


_SCHEMA: list[Any] = []


def _schema() -> Any:
    if _SCHEMA:
        return _SCHEMA[0]
    try:
        schema_fb = _load_tf_schema()
    except ImportError:  # pragma: no cover - only without TensorFlow
        try:
            import tflite as schema_fb  # type: ignore[import-not-found]
        except ImportError as error:
            raise UserError(
                "reading .tflite files needs TensorFlow or the 'tflite' package"
            ) from error
    _SCHEMA.append(schema_fb)
    return schema_fb


def _load_tf_schema() -> Any:
    """TensorFlow's generated schema module, loaded from its file on its own.

    Importing it as `tensorflow.lite.python.schema_py_generated` would import all
    of TensorFlow (seconds); the module itself only needs `flatbuffers`.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("tensorflow is not installed")
    for root in spec.submodule_search_locations:
        file = Path(root) / "lite" / "python" / "schema_py_generated.py"
        if file.is_file():
            module_spec = importlib.util.spec_from_file_location("_micropeft_tflite_schema", file)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
            return module
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def _vector_pos(table: Any, slot: int) -> tuple[int, int] | None:
    """(absolute byte position of the first element, length) of a vector field."""
    o = table._tab.Offset(slot)
    if o == 0:
        return None
    pos = table._tab.Vector(o)
    length = table._tab.VectorLen(o)
    if pos + length > len(table._tab.Bytes):
        raise UserError("the .tflite file is corrupt (a vector runs past the end of the file)")
    return pos, length


def _op_names(schema_fb: Any) -> dict[int, str]:
    return {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}


def _load_model(model: bytes) -> tuple[Any, Any, Any]:
    schema_fb = _schema()
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise UserError("not a TensorFlow Lite model (no 'TFL3' identifier)")
    try:
        root = schema_fb.Model.GetRootAs(model, 0)
        if root.SubgraphsLength() < 1:
            raise UserError("the .tflite has no subgraph")
        subgraph = root.Subgraphs(0)
    except (struct.error, IndexError) as error:
        raise UserError(f"the .tflite file is corrupt ({error})") from error
    return schema_fb, root, subgraph


def _builtin_code(schema_fb: Any, root: Any, op: Any) -> int:
    code = root.OperatorCodes(op.OpcodeIndex())
    # Newer files keep small codes in the deprecated int8 field, larger ones in the int32.
    return max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: int
    buffer: int
    scales: np.ndarray
    zero_points: np.ndarray
    scale_pos: int  # absolute position of the float32 scale vector, -1 if none


def _read_tensor(model: bytes, subgraph: Any, index: int) -> _Tensor:
    t = subgraph.Tensors(index)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    quant = t.Quantization()
    scales = np.zeros(0, np.float32)
    zeros = np.zeros(0, np.int64)
    scale_pos = -1
    if quant is not None and quant.ScaleLength():
        scales = np.asarray(quant.ScaleAsNumpy(), np.float32)
        zeros = np.asarray(quant.ZeroPointAsNumpy(), np.int64)
        scale_pos = _vector_pos(quant, _QUANT_SCALE)[0]
    return _Tensor(
        t.Name().decode(), shape, int(t.Type()), int(t.Buffer()), scales, zeros, scale_pos
    )


def _buffer_span(root: Any, index: int) -> tuple[int, int] | None:
    """(absolute offset, length in bytes) of a buffer's data, None when empty."""
    if index <= 0 or index >= root.BuffersLength():
        return None
    buf = root.Buffers(index)
    if buf.Offset() > 1:  # data stored after the flatbuffer (models over 2 GB)
        return int(buf.Offset()), int(buf.Size())
    span = _vector_pos(buf, _BUFFER_DATA)
    if span is None or span[1] == 0:
        return None
    return span


def _activation_shape(t: _Tensor, where: str) -> tuple[int, int, int]:
    shape = t.shape
    if len(shape) == 0 or shape[0] != 1 and len(shape) > 1:
        raise UserError(f"{where}: tensor {t.name!r} has shape {shape}; batch must be 1")
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    if len(shape) == 3:  # (1, w, c): a row
        return 1, shape[1], shape[2]
    if len(shape) == 2:
        return 1, 1, shape[1]
    if len(shape) == 1:
        return 1, 1, shape[0]
    raise UserError(f"{where}: tensor {t.name!r} has unsupported rank {len(shape)}")


def _same_padding(in_size: int, out_size: int, stride: int, kernel: int) -> int:
    total = max((out_size - 1) * stride + kernel - in_size, 0)
    return total // 2


_ACTIVATIONS = {0: Activation.NONE, 1: Activation.RELU, 3: Activation.RELU6}


def graph_from_tflite(model: bytes, name: str = "") -> Graph:
    """Parse an int8 .tflite into a Graph; unsupported content raises UserError."""
    try:
        return _graph_from_tflite(bytes(model), name)
    except (struct.error, IndexError, TypeError, ValueError, UnicodeDecodeError) as error:
        # The flatbuffer accessors raise these on offsets that point outside the file.
        raise UserError(f"the .tflite file is corrupt ({type(error).__name__}: {error})") from error


class _Reader:
    """What every op parser needs: the model's tensors, added to the graph on first use."""

    def __init__(self, model: bytes, schema_fb: Any, root: Any, subgraph: Any) -> None:
        self.model = model
        self.schema = schema_fb
        self.root = root
        self.subgraph = subgraph
        self.tensors: list[TensorInfo] = []
        self.tflite_index: list[int] = []
        self.graph_index: dict[int, int] = {}
        self._raw: dict[int, _Tensor] = {}

    def raw(self, index: int) -> _Tensor:
        if index not in self._raw:
            self._raw[index] = _read_tensor(self.model, self.subgraph, index)
        return self._raw[index]

    def activation(self, index: int, where: str) -> int:
        """Graph index of an activation tensor, adding it on first use."""
        if index in self.graph_index:
            return self.graph_index[index]
        t = self.raw(index)
        if t.dtype != _INT8:
            raise UserError(
                f"{where}: tensor {t.name!r} is not int8 (convert the model to full int8)"
            )
        if len(t.scales) != 1:
            raise UserError(f"{where}: activation {t.name!r} needs one per-tensor scale")
        info = TensorInfo(
            t.name,
            _activation_shape(t, where),
            QuantParams(float(t.scales[0]), int(t.zero_points[0])),
        )
        self.graph_index[index] = len(self.tensors)
        self.tensors.append(info)
        self.tflite_index.append(index)
        return self.graph_index[index]

    def array_ref(self, index: int, dtype: int, where: str) -> ArrayRef:
        t = self.raw(index)
        expected = {_INT8: ("int8", 1), _INT32: ("int32", 4)}[dtype]
        if t.dtype != dtype:
            raise UserError(f"{where}: constant {t.name!r} is not {expected[0]}")
        span = _buffer_span(self.root, t.buffer)
        count = int(np.prod(t.shape)) if t.shape else 1
        if span is None or span[1] != count * expected[1]:
            raise UserError(f"{where}: constant {t.name!r} has no data of {count} elements")
        if t.scale_pos < 0:
            raise UserError(f"{where}: constant {t.name!r} is not quantized")
        return ArrayRef(span[0], count, expected[0], t.scale_pos, len(t.scales))

    def const_ints(self, index: int, where: str) -> np.ndarray:
        t = self.raw(index)
        span = _buffer_span(self.root, t.buffer)
        if span is None or t.dtype != _INT32:
            raise UserError(f"{where}: expected a constant int32 tensor {t.name!r}")
        return np.frombuffer(self.model, np.int32, span[1] // 4, span[0]).reshape(t.shape)

    def shape(self, graph_tensor: int) -> tuple[int, int, int]:
        return self.tensors[graph_tensor].shape


@dataclass
class _Operator:
    """One operator of the subgraph, as a parser sees it."""

    ins: list[int]  # .tflite tensor indices
    out: int
    options: Any  # the builtin options table, or None
    where: str  # names the operator in error messages

    def options_as(self, table: Any) -> Any:
        if self.options is not None:
            table.Init(self.options.Bytes, self.options.Pos)
        return table


def _io(r: _Reader, op: _Operator, layer: Layer, inputs: int = 1) -> Layer:
    layer.inputs = [r.activation(op.ins[k], op.where) for k in range(inputs)]
    layer.output = r.activation(op.out, op.where)
    return layer


def _weights(r: _Reader, op: _Operator, layer: Layer) -> None:
    layer.weights = r.array_ref(op.ins[1], _INT8, op.where)
    if len(op.ins) > 2 and op.ins[2] >= 0:
        layer.bias = r.array_ref(op.ins[2], _INT32, op.where)


def _same_pads(r: _Reader, layer: Layer) -> None:
    in_shape, out_shape = r.shape(layer.inputs[0]), r.shape(layer.output)
    layer.pad_top = _same_padding(in_shape[0], out_shape[0], layer.stride[0], layer.kernel[0])
    layer.pad_left = _same_padding(in_shape[1], out_shape[1], layer.stride[1], layer.kernel[1])


def _parse_conv(r: _Reader, op: _Operator, kind: Op) -> Layer:
    if len(op.ins) < 2:
        raise UserError(f"{op.where}: missing filter")
    table = r.schema.Conv2DOptions() if kind == Op.CONV_2D else r.schema.DepthwiseConv2DOptions()
    opts = op.options_as(table)
    if opts.DilationWFactor() != 1 or opts.DilationHFactor() != 1:
        raise UserError(f"{op.where}: dilated convolutions are not supported")
    filt = r.raw(op.ins[1])
    layer = Layer(name="", op=kind, inputs=[], output=-1)
    layer.kernel = (filt.shape[1], filt.shape[2])
    layer.stride = (int(opts.StrideH()), int(opts.StrideW()))
    layer.activation = _fused(opts.FusedActivationFunction(), op.where)
    _io(r, op, layer)
    in_shape, out_shape = r.shape(layer.inputs[0]), r.shape(layer.output)
    if kind == Op.DEPTHWISE_CONV_2D and (
        filt.shape[3] != in_shape[2] or out_shape[2] != in_shape[2]
    ):
        raise UserError(f"{op.where}: depth multiplier other than 1 is not supported")
    if opts.Padding() == r.schema.Padding.SAME:
        _same_pads(r, layer)
    _weights(r, op, layer)
    return layer


def _parse_conv_2d(r: _Reader, op: _Operator) -> Layer:
    return _parse_conv(r, op, Op.CONV_2D)


def _parse_depthwise_conv_2d(r: _Reader, op: _Operator) -> Layer:
    return _parse_conv(r, op, Op.DEPTHWISE_CONV_2D)


def _parse_fully_connected(r: _Reader, op: _Operator) -> Layer:
    opts = op.options_as(r.schema.FullyConnectedOptions())
    layer = Layer(name="", op=Op.FULLY_CONNECTED, inputs=[], output=-1)
    layer.activation = _fused(opts.FusedActivationFunction(), op.where)
    _io(r, op, layer)
    _weights(r, op, layer)
    return layer


def _parse_add(r: _Reader, op: _Operator) -> Layer:
    layer = Layer(name="", op=Op.ADD, inputs=[], output=-1)
    if op.options is not None:
        opts = op.options_as(r.schema.AddOptions())
        layer.activation = _fused(opts.FusedActivationFunction(), op.where)
    _io(r, op, layer, inputs=2)
    if r.shape(layer.inputs[0]) != r.shape(layer.inputs[1]):
        raise UserError(f"{op.where}: ADD with broadcasting is not supported")
    return layer


def _parse_mean(r: _Reader, op: _Operator) -> Layer:
    rank = len(r.raw(op.ins[0]).shape)
    axes = sorted(int(a) % max(rank, 1) for a in r.const_ints(op.ins[1], op.where).ravel())
    # Over height and width; or over the time axis of a (1, T, C) row (what Keras'
    # GlobalAveragePooling1D becomes), whose height is 1.
    if (rank, axes) not in ((4, [1, 2]), (3, [1])):
        raise UserError(f"{op.where}: MEAN is supported over height and width only")
    layer = _io(r, op, Layer(name="", op=Op.MEAN, inputs=[], output=-1))
    layer.kernel = r.shape(layer.inputs[0])[:2]
    return layer


def _parse_average_pool_2d(r: _Reader, op: _Operator) -> Layer:
    opts = op.options_as(r.schema.Pool2DOptions())
    layer = Layer(name="", op=Op.AVERAGE_POOL_2D, inputs=[], output=-1)
    layer.kernel = (int(opts.FilterHeight()), int(opts.FilterWidth()))
    layer.stride = (int(opts.StrideH()), int(opts.StrideW()))
    layer.activation = _fused(opts.FusedActivationFunction(), op.where)
    _io(r, op, layer)
    if opts.Padding() == r.schema.Padding.SAME:
        _same_pads(r, layer)
    return layer


def _parse_pad(r: _Reader, op: _Operator) -> Layer:
    pads = r.const_ints(op.ins[1], op.where)
    if pads.shape != (4, 2) or pads[0].any() or pads[3].any():
        raise UserError(f"{op.where}: PAD is supported on height and width only")
    layer = Layer(name="", op=Op.PAD, inputs=[], output=-1)
    layer.pad_top = int(pads[1][0])
    layer.pad_left = int(pads[2][0])
    return _io(r, op, layer)


def _parse_reshape(r: _Reader, op: _Operator) -> Layer:
    layer = _io(r, op, Layer(name="", op=Op.RESHAPE, inputs=[], output=-1))
    if r.tensors[layer.inputs[0]].size != r.tensors[layer.output].size:
        raise UserError(f"{op.where}: RESHAPE changes the element count")
    return layer


# One parser per supported TFLite builtin (as TFLM's flatbuffer_conversions has one
# Parse<Op> per operator); a trailing SOFTMAX is handled by the caller.
_PARSERS: dict[str, Any] = {
    "CONV_2D": _parse_conv_2d,
    "DEPTHWISE_CONV_2D": _parse_depthwise_conv_2d,
    "FULLY_CONNECTED": _parse_fully_connected,
    "ADD": _parse_add,
    "MEAN": _parse_mean,
    "AVERAGE_POOL_2D": _parse_average_pool_2d,
    "PAD": _parse_pad,
    "RESHAPE": _parse_reshape,
}


def _graph_from_tflite(model: bytes, name: str) -> Graph:
    schema_fb, root, subgraph = _load_model(model)
    op_names = _op_names(schema_fb)
    if root.SubgraphsLength() != 1:
        raise UserError(f"the model has {root.SubgraphsLength()} subgraphs; only 1 is supported")
    if subgraph.InputsLength() != 1 or subgraph.OutputsLength() != 1:
        raise UserError("the model must have exactly one input and one output tensor")
    r = _Reader(model, schema_fb, root, subgraph)
    input_tensor = r.activation(int(subgraph.Inputs(0)), "model input")
    output_index = int(subgraph.Outputs(0))
    layers: list[Layer] = []
    count = subgraph.OperatorsLength()
    for i in range(count):
        op = subgraph.Operators(i)
        code = _builtin_code(schema_fb, root, op)
        op_name = op_names.get(code, f"builtin {code}")
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        out_name = r.raw(outs[0]).name if outs else "?"
        where = f"operator {i} ({op_name}, output {out_name!r})"
        if len(outs) != 1:
            raise UserError(f"{where}: expected one output")
        if op_name == "SOFTMAX":
            if i != count - 1 or outs[0] != output_index:
                raise UserError(f"{where}: SOFTMAX is only supported as the last operator")
            output_index = ins[0]
            break
        parser = _PARSERS.get(op_name)
        if parser is None:
            raise UserError(
                f"{where}: unsupported operator {op_name} (supported: "
                f"{', '.join(_PARSERS)}, trailing SOFTMAX)"
            )
        layer = parser(r, _Operator(ins, outs[0], op.BuiltinOptions(), where))
        layer.name = out_name
        layers.append(layer)

    if not layers:
        raise UserError("the model has no operators")
    if output_index not in r.graph_index:
        raise UserError("the model output is not produced by any operator")
    return Graph(
        tensors=r.tensors,
        layers=layers,
        input=input_tensor,
        output=r.graph_index[output_index],
        model_name=name,
        extra={"tflite_tensor_index": r.tflite_index, "model_size": len(model)},
    )


def _fused(code: int, where: str) -> Activation:
    if code not in _ACTIVATIONS:
        raise UserError(f"{where}: fused activation {code} is not supported (NONE, RELU, RELU6)")
    return _ACTIVATIONS[code]


def device_model(model: bytes, split_op_index: int, split_tensor: int) -> bytes:
    """The model the device stores: the same bytes, patched in place.

    The subgraph's operators vector length becomes `split_op_index` (TFLM runs
    only the frozen prefix) and its outputs vector becomes [split_tensor]
    (a .tflite tensor index). Nothing moves, so every ArrayRef offset stays valid.

    TFLM's memory planner gives every activation tensor that no operator uses
    an arena slot alive for the whole run, so the cut-off suffix's tensors
    would still cost their full size. Their shape entries are therefore
    rewritten to 1 (rank kept): TFLM then reserves a few bytes for each. The
    prefix's tensors and all constants keep their shapes.
    """
    model = bytes(model)
    _, root, subgraph = _load_model(model)
    ops = _vector_pos(subgraph, _SUBGRAPH_OPERATORS)
    outs = _vector_pos(subgraph, _SUBGRAPH_OUTPUTS)
    if ops is None or outs is None or outs[1] < 1:
        raise UserError("the model's subgraph has no operators or no outputs")
    if not 0 <= split_op_index <= ops[1]:
        # 0 is allowed: TFLM then runs no operator and hands the input through.
        raise UserError(f"split operator index {split_op_index} out of range 0..{ops[1]}")
    if not 0 <= split_tensor < subgraph.TensorsLength():
        raise UserError(f"split tensor {split_tensor} is not a tensor of the model")
    patched = bytearray(model)
    struct.pack_into("<I", patched, ops[0] - 4, split_op_index)
    struct.pack_into("<I", patched, outs[0] - 4, 1)
    struct.pack_into("<i", patched, outs[0], split_tensor)
    used = {split_tensor} | {int(subgraph.Inputs(i)) for i in range(subgraph.InputsLength())}
    for i in range(split_op_index):
        op = subgraph.Operators(i)
        used.update(int(op.Inputs(k)) for k in range(op.InputsLength()))
        used.update(int(op.Outputs(k)) for k in range(op.OutputsLength()))
    for t in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(t)
        if t in used or _buffer_span(root, int(tensor.Buffer())) is not None:
            continue
        shape = _vector_pos(tensor, _TENSOR_SHAPE)
        if shape is not None:
            for k in range(shape[1]):
                struct.pack_into("<i", patched, shape[0] + 4 * k, 1)
    return bytes(patched)


def device_model_for_graph(model: bytes, graph: Graph, split_layer: int) -> bytes:
    """device_model for a split before graph layer `split_layer` (its first input)."""
    if not 0 <= split_layer <= len(graph.layers):
        raise UserError(f"split layer {split_layer} out of range 0..{len(graph.layers)}")
    crossing = split_tensors(graph, split_layer)
    if len(crossing) != 1:
        names = ", ".join(graph.tensors[t].name for t in crossing)
        raise UserError(
            f"a split before layer {split_layer} ({graph.layers[split_layer].name}) "
            f"passes {len(crossing)} tensors ({names}) to the trainable part; it must be one: "
            "train from another layer"
        )
    tflite_index = graph.extra["tflite_tensor_index"]
    return device_model(model, split_layer, tflite_index[crossing[0]])


def split_tensors(graph: Graph, split_layer: int) -> list[int]:
    """Tensors made by layers before `split_layer` (or the input) and read at or after it."""
    made = {graph.input} | {layer.output for layer in graph.layers[:split_layer]}
    read = [t for layer in graph.layers[split_layer:] for t in layer.inputs]
    if split_layer == len(graph.layers):
        read.append(graph.output)
    return sorted({t for t in read if t in made})


def input_info(model: bytes) -> TensorInfo:
    """The model input's (h, w, c) and int8 quantization, without parsing operators."""
    _, _, subgraph = _load_model(bytes(model))
    t = _read_tensor(bytes(model), subgraph, int(subgraph.Inputs(0)))
    if t.dtype != _INT8 or len(t.scales) != 1:
        raise UserError("the model input is not int8 with one scale (convert to full int8)")
    return TensorInfo(
        t.name,
        _activation_shape(t, "model input"),
        QuantParams(float(t.scales[0]), int(t.zero_points[0])),
    )


def output_classes(model: bytes) -> int:
    """Number of classes: elements of the model's output tensor."""
    _, _, subgraph = _load_model(bytes(model))
    t = _read_tensor(bytes(model), subgraph, int(subgraph.Outputs(0)))
    return int(np.prod(t.shape)) if t.shape else 1


_QUANT_ZERO_POINT = 10


def quant_positions(model: bytes, tensor: int) -> tuple[int, int]:
    """Absolute positions of a per-tensor-quantized tensor's float32 scale and int64 zero
    point (a .tflite tensor index), for patching them in place."""
    _, _, subgraph = _load_model(bytes(model))
    quant = subgraph.Tensors(tensor).Quantization()
    scale = _vector_pos(quant, _QUANT_SCALE) if quant is not None else None
    zero = _vector_pos(quant, _QUANT_ZERO_POINT) if quant is not None else None
    if scale is None or zero is None or scale[1] != 1 or zero[1] != 1:
        raise UserError(f"tensor {tensor} has no per-tensor scale and zero point")
    return scale[0], zero[0]
