"""numpy-friendly ctypes wrappers of every kernel in include/peft/peft_kernels.h.

Each wrapper checks array sizes against the parameter structure (so that a
wrong shape raises ValueError instead of corrupting memory), calls the C kernel
and raises KernelError with the status name when it does not return PEFT_OK.
Arrays go in as float32 (int8 for quantized data), batch 1, NHWC without the N.

Backward wrappers take an optional output array that is updated in place (to
exercise `accumulate` and the add-into semantics of `_bwd_weight_`); without
one, input gradients start as NaN (so a test sees any element the kernel left
unwritten) and weight gradients start at zero.

`library()` gives the raw functions (argtypes set) for calls that need NULL.
The wrappers call the runtime's own kernels (libpeft.so, the build's default
backend); inside `with use_backend("reference")` (or "optimized") they call
that backend's kernel library instead, so that tests can run both.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from micropeft.host import native

PEFT_OK = 0
STATUS_NAMES = {
    0: "PEFT_OK",
    1: "PEFT_ERR_ARG",
    2: "PEFT_ERR_BUFFER_TOO_SMALL",
    3: "PEFT_ERR_UNSUPPORTED",
    4: "PEFT_ERR_NUMERIC",
}

ACT_NONE = 0
ACT_RELU = 1
ACT_RELU6 = 2

_F32P = ctypes.POINTER(ctypes.c_float)
_S8P = ctypes.POINTER(ctypes.c_int8)
_U8P = ctypes.POINTER(ctypes.c_uint8)


class Dims(ctypes.Structure):
    """peft_dims: one activation tensor, batch 1, NHWC."""

    _fields_ = [("h", ctypes.c_int32), ("w", ctypes.c_int32), ("c", ctypes.c_int32)]


class WeightsS8(ctypes.Structure):
    """peft_weights_s8: frozen int8 weights and their symmetric scales."""

    _fields_ = [("data", _S8P), ("scales", _F32P), ("scale_count", ctypes.c_int32)]


class ConvParams(ctypes.Structure):
    """peft_conv_params (`in` is spelled `in_`, a Python keyword otherwise)."""

    _fields_ = [
        ("in_", Dims),
        ("out", Dims),
        ("kernel_h", ctypes.c_int32),
        ("kernel_w", ctypes.c_int32),
        ("stride_h", ctypes.c_int32),
        ("stride_w", ctypes.c_int32),
        ("pad_top", ctypes.c_int32),
        ("pad_left", ctypes.c_int32),
    ]


class FcParams(ctypes.Structure):
    """peft_fc_params."""

    _fields_ = [
        ("rows", ctypes.c_int32),
        ("in_features", ctypes.c_int32),
        ("out_features", ctypes.c_int32),
    ]


class PadParams(ctypes.Structure):
    """peft_pad_params (`in` is spelled `in_`)."""

    _fields_ = [
        ("in_", Dims),
        ("out", Dims),
        ("pad_top", ctypes.c_int32),
        ("pad_left", ctypes.c_int32),
    ]


class KernelError(RuntimeError):
    """A kernel returned a status other than PEFT_OK."""

    def __init__(self, function: str, status: int) -> None:
        self.function = function
        self.status = status
        self.status_name = STATUS_NAMES.get(status, f"status {status}")
        super().__init__(f"{function}: {self.status_name}")


_P = ctypes.POINTER
_CONV = _P(ConvParams)
_FC = _P(FcParams)
_PAD = _P(PadParams)
_DIMS = _P(Dims)
_W8 = _P(WeightsS8)
_I32 = ctypes.c_int32
_BOOL = ctypes.c_bool
_F32 = ctypes.c_float

# Every kernel of include/peft/peft_kernels.h and its C argument types.
SIGNATURES: dict[str, list[object]] = {
    "peft_conv2d_fwd_s8": [_CONV, _F32P, _W8, _F32P, _F32P],
    "peft_conv2d_fwd_f32": [_CONV, _F32P, _F32P, _F32P, _F32P],
    "peft_conv2d_bwd_input_s8": [_CONV, _W8, _F32P, _F32P, _BOOL],
    "peft_conv2d_bwd_input_f32": [_CONV, _F32P, _F32P, _F32P, _BOOL],
    "peft_conv2d_bwd_weight_f32": [_CONV, _F32P, _F32P, _F32P],
    "peft_conv2d_bwd_bias_f32": [_DIMS, _F32P, _F32P],
    "peft_depthwise_conv2d_fwd_s8": [_CONV, _F32P, _W8, _F32P, _F32P],
    "peft_depthwise_conv2d_fwd_f32": [_CONV, _F32P, _F32P, _F32P, _F32P],
    "peft_depthwise_conv2d_bwd_input_s8": [_CONV, _W8, _F32P, _F32P, _BOOL],
    "peft_depthwise_conv2d_bwd_input_f32": [_CONV, _F32P, _F32P, _F32P, _BOOL],
    "peft_depthwise_conv2d_bwd_weight_f32": [_CONV, _F32P, _F32P, _F32P],
    "peft_depthwise_conv2d_bwd_bias_f32": [_DIMS, _F32P, _F32P],
    "peft_fc_fwd_s8": [_FC, _F32P, _W8, _F32P, _F32P],
    "peft_fc_fwd_f32": [_FC, _F32P, _F32P, _F32P, _F32P],
    "peft_fc_bwd_input_s8": [_FC, _W8, _F32P, _F32P, _BOOL],
    "peft_fc_bwd_input_f32": [_FC, _F32P, _F32P, _F32P, _BOOL],
    "peft_fc_bwd_weight_f32": [_FC, _F32P, _F32P, _F32P],
    "peft_fc_bwd_bias_f32": [_FC, _F32P, _F32P],
    "peft_fc_bwd_input_s8s8": [_FC, _W8, _F32P, _F32P, _BOOL, ctypes.POINTER(ctypes.c_int16), _I32],
    "peft_add_fwd_f32": [_I32, _F32P, _F32P, _F32P],
    "peft_add_bwd_input_f32": [_I32, _F32P, _F32P, _BOOL],
    "peft_mean_fwd_f32": [_DIMS, _F32P, _F32P],
    "peft_mean_bwd_input_f32": [_DIMS, _F32P, _F32P, _BOOL],
    "peft_avg_pool2d_fwd_f32": [_CONV, _F32P, _F32P],
    "peft_avg_pool2d_bwd_input_f32": [_CONV, _F32P, _F32P, _BOOL],
    "peft_pad_fwd_f32": [_PAD, _F32P, _F32P],
    "peft_pad_bwd_input_f32": [_PAD, _F32P, _F32P, _BOOL],
    "peft_activation_fwd_f32": [ctypes.c_int, _I32, _F32P],
    "peft_activation_bwd_f32": [ctypes.c_int, _I32, _F32P, _F32P],
    "peft_scale_shift_fwd_f32": [_I32, _I32, _F32P, _F32P, _F32P, _F32P],
    "peft_scale_shift_bwd_input_f32": [_I32, _I32, _F32P, _F32P, _F32P, _BOOL],
    "peft_scale_shift_bwd_param_f32": [_I32, _I32, _F32P, _F32P, _F32P, _F32P],
    "peft_softmax_xent_fwd_f32": [_I32, _F32P, _I32, _F32P, _F32P],
    "peft_softmax_xent_bwd_f32": [_I32, _F32P, _I32, _F32P],
    "peft_quantize_s8": [_I32, _F32P, _F32, _I32, _S8P],
    "peft_dequantize_s8": [_I32, _S8P, _F32, _I32, _F32P],
}


BACKENDS = native.BACKENDS


# Kernels private to lib/peft (declared in lib/peft/kernels/activation/
# peft_activation_mask.h, not in peft_kernels.h) that a backend still replaces, bound so that
# the backends can be compared.
PRIVATE_SIGNATURES: dict[str, list[object]] = {
    "peft_activation_fwd_mask_f32": [ctypes.c_int, _I32, _F32P, _U8P],
    "peft_activation_bwd_mask_f32": [_I32, _U8P, _F32P],
}


def _with_signatures(lib: ctypes.CDLL) -> ctypes.CDLL:
    for name, argtypes in (SIGNATURES | PRIVATE_SIGNATURES).items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = ctypes.c_int
    return lib


@functools.cache
def library() -> ctypes.CDLL:
    """The host runtime with every kernel's argtypes and restype set."""
    return _with_signatures(native.load_library())


@functools.cache
def backend_library(backend: str) -> ctypes.CDLL:
    """The kernels of one backend alone (libpeft_kernels_<backend>.so; any of
    native.KERNEL_LIBRARIES), argtypes set."""
    if backend not in native.KERNEL_LIBRARIES:
        raise ValueError(
            f"backend {backend!r}: expected one of {', '.join(native.KERNEL_LIBRARIES)}"
        )
    native.load_library()  # builds every library of the host build
    return _with_signatures(ctypes.CDLL(str(native.kernels_library_path(backend))))


_active: ctypes.CDLL | None = None


@contextlib.contextmanager
def use_backend(backend: str) -> Iterator[ctypes.CDLL]:
    """Within the block, the wrappers call `backend`'s kernels."""
    global _active
    saved = _active
    _active = backend_library(backend)
    try:
        yield _active
    finally:
        _active = saved


def active_library() -> ctypes.CDLL:
    """The library the wrappers call now (see use_backend)."""
    return _active or library()


def _call(name: str, *args: object) -> None:
    status = getattr(active_library(), name)(*args)
    if status != PEFT_OK:
        raise KernelError(name, status)


# ---- parameter structures ----


def dims(shape: Sequence[int]) -> Dims:
    """peft_dims from (h, w, c)."""
    h, w, c = (int(v) for v in shape)
    return Dims(h, w, c)


def conv_params(
    in_shape: Sequence[int],
    out_shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int] = (1, 1),
    pad: Sequence[int] = (0, 0),
) -> ConvParams:
    """peft_conv_params from (h, w, c) shapes, (kh, kw), (sh, sw), (top, left)."""
    return ConvParams(
        dims(in_shape),
        dims(out_shape),
        int(kernel[0]),
        int(kernel[1]),
        int(stride[0]),
        int(stride[1]),
        int(pad[0]),
        int(pad[1]),
    )


def fc_params(rows: int, in_features: int, out_features: int) -> FcParams:
    return FcParams(int(rows), int(in_features), int(out_features))


def pad_params(in_shape: Sequence[int], out_shape: Sequence[int], pad: Sequence[int]) -> PadParams:
    """peft_pad_params from (h, w, c) shapes and the leading (top, left) pads."""
    return PadParams(dims(in_shape), dims(out_shape), int(pad[0]), int(pad[1]))


# ---- array helpers ----


def _shape(d: Dims) -> tuple[int, int, int]:
    return (d.h, d.w, d.c)


def _count(shape: Sequence[int]) -> int:
    # Non-positive dims give no buffer; the kernel must reject them anyway.
    return int(np.prod([max(int(v), 0) for v in shape]))


def _f32(a: np.ndarray | Sequence[float], shape: Sequence[int], what: str) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.size != _count(shape):
        raise ValueError(f"{what}: {arr.size} elements, expected shape {tuple(shape)}")
    return arr.reshape(tuple(max(int(v), 0) for v in shape))


def _s8(a: np.ndarray | Sequence[int], shape: Sequence[int], what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype != np.int8:
        raise ValueError(f"{what}: dtype {arr.dtype}, expected int8")
    arr = np.ascontiguousarray(arr)
    if arr.size != _count(shape):
        raise ValueError(f"{what}: {arr.size} elements, expected shape {tuple(shape)}")
    return arr.reshape(tuple(max(int(v), 0) for v in shape))


def _inout(a: np.ndarray | None, shape: Sequence[int], what: str, fill: float) -> np.ndarray:
    """An output buffer updated in place: the caller's, or a new one filled with `fill`."""
    if a is None:
        return np.full(tuple(max(int(v), 0) for v in shape), fill, dtype=np.float32)
    if a.dtype != np.float32 or not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{what}: must be a writeable C-contiguous float32 array")
    if a.size != _count(shape):
        raise ValueError(f"{what}: {a.size} elements, expected shape {tuple(shape)}")
    return a


def _grad_in(
    a: np.ndarray | None, shape: Sequence[int], accumulate: bool, what: str = "grad_in"
) -> np.ndarray:
    if a is None and accumulate:
        raise ValueError("accumulate=True needs the grad_in array to add into")
    return _inout(a, shape, what, np.nan)


def _fp(a: np.ndarray | None) -> ctypes._Pointer | None:
    return None if a is None else a.ctypes.data_as(_F32P)


def _sp(a: np.ndarray) -> ctypes._Pointer:
    return a.ctypes.data_as(_S8P)


def _weights_s8(q: np.ndarray, scales: np.ndarray) -> WeightsS8:
    return WeightsS8(_sp(q), _fp(scales), scales.size)


def _scales(scales: np.ndarray | Sequence[float] | float) -> np.ndarray:
    arr = np.ascontiguousarray(np.atleast_1d(np.asarray(scales, dtype=np.float32)))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("scales: expected a non-empty vector")
    return arr


def _bias(bias: np.ndarray | None, n: int) -> np.ndarray | None:
    return None if bias is None else _f32(bias, (n,), "bias")


# ---- CONV_2D ----


def _conv_w_shape(p: ConvParams) -> tuple[int, int, int, int]:
    return (p.out.c, p.kernel_h, p.kernel_w, p.in_.c)


def _dw_w_shape(p: ConvParams) -> tuple[int, int, int]:
    return (p.kernel_h, p.kernel_w, p.out.c)


# CONV_2D and DEPTHWISE_CONV_2D share their signatures; only the C name (`op`)
# and the weight layout (`w_shape`) differ.
WeightShape = Callable[[ConvParams], tuple[int, ...]]
Scales = np.ndarray | Sequence[float] | float


def _window_fwd_s8(
    op: str,
    w_shape: WeightShape,
    p: ConvParams,
    x: np.ndarray,
    q: np.ndarray,
    scales: Scales,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    x = _f32(x, _shape(p.in_), "x")
    # q and s stay referenced while C reads them through w's pointers.
    q = _s8(q, w_shape(p), "q")
    s = _scales(scales)
    w = _weights_s8(q, s)
    b = _bias(bias, p.out.c)
    out = np.full(_shape(p.out), np.nan, dtype=np.float32)
    _call(f"peft_{op}_fwd_s8", ctypes.byref(p), _fp(x), ctypes.byref(w), _fp(b), _fp(out))
    return out


def _window_fwd_f32(
    op: str,
    w_shape: WeightShape,
    p: ConvParams,
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    x = _f32(x, _shape(p.in_), "x")
    w = _f32(w, w_shape(p), "w")
    b = _bias(bias, p.out.c)
    out = np.full(_shape(p.out), np.nan, dtype=np.float32)
    _call(f"peft_{op}_fwd_f32", ctypes.byref(p), _fp(x), _fp(w), _fp(b), _fp(out))
    return out


def _window_bwd_input_s8(
    op: str,
    w_shape: WeightShape,
    p: ConvParams,
    q: np.ndarray,
    scales: Scales,
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    # q and s stay referenced while C reads them through w's pointers.
    q = _s8(q, w_shape(p), "q")
    s = _scales(scales)
    w = _weights_s8(q, s)
    g = _f32(grad_out, _shape(p.out), "grad_out")
    gi = _grad_in(grad_in, _shape(p.in_), accumulate)
    _call(f"peft_{op}_bwd_input_s8", ctypes.byref(p), ctypes.byref(w), _fp(g), _fp(gi), accumulate)
    return gi


def _window_bwd_input_f32(
    op: str,
    w_shape: WeightShape,
    p: ConvParams,
    w: np.ndarray,
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    w = _f32(w, w_shape(p), "w")
    g = _f32(grad_out, _shape(p.out), "grad_out")
    gi = _grad_in(grad_in, _shape(p.in_), accumulate)
    _call(f"peft_{op}_bwd_input_f32", ctypes.byref(p), _fp(w), _fp(g), _fp(gi), accumulate)
    return gi


def _window_bwd_weight_f32(
    op: str,
    w_shape: WeightShape,
    p: ConvParams,
    x: np.ndarray,
    grad_out: np.ndarray,
    grad_w: np.ndarray | None = None,
) -> np.ndarray:
    """Adds dL/dw into grad_w (zeros when not given) and returns it."""
    x = _f32(x, _shape(p.in_), "x")
    g = _f32(grad_out, _shape(p.out), "grad_out")
    gw = _inout(grad_w, w_shape(p), "grad_w", 0.0)
    _call(f"peft_{op}_bwd_weight_f32", ctypes.byref(p), _fp(x), _fp(g), _fp(gw))
    return gw


def _window_bwd_bias_f32(
    op: str, out_shape: Sequence[int], grad_out: np.ndarray, grad_bias: np.ndarray | None = None
) -> np.ndarray:
    """Adds dL/dbias into grad_bias (zeros when not given) and returns it."""
    d = dims(out_shape)
    g = _f32(grad_out, _shape(d), "grad_out")
    gb = _inout(grad_bias, (d.c,), "grad_bias", 0.0)
    _call(f"peft_{op}_bwd_bias_f32", ctypes.byref(d), _fp(g), _fp(gb))
    return gb


# ---- CONV_2D (weights [out_c][kh][kw][in_c]) and DEPTHWISE_CONV_2D ([kh][kw][c]) ----

conv2d_fwd_s8 = functools.partial(_window_fwd_s8, "conv2d", _conv_w_shape)
conv2d_fwd_f32 = functools.partial(_window_fwd_f32, "conv2d", _conv_w_shape)
conv2d_bwd_input_s8 = functools.partial(_window_bwd_input_s8, "conv2d", _conv_w_shape)
conv2d_bwd_input_f32 = functools.partial(_window_bwd_input_f32, "conv2d", _conv_w_shape)
conv2d_bwd_weight_f32 = functools.partial(_window_bwd_weight_f32, "conv2d", _conv_w_shape)
conv2d_bwd_bias_f32 = functools.partial(_window_bwd_bias_f32, "conv2d")

_DW = "depthwise_conv2d"
depthwise_conv2d_fwd_s8 = functools.partial(_window_fwd_s8, _DW, _dw_w_shape)
depthwise_conv2d_fwd_f32 = functools.partial(_window_fwd_f32, _DW, _dw_w_shape)
depthwise_conv2d_bwd_input_s8 = functools.partial(_window_bwd_input_s8, _DW, _dw_w_shape)
depthwise_conv2d_bwd_input_f32 = functools.partial(_window_bwd_input_f32, _DW, _dw_w_shape)
depthwise_conv2d_bwd_weight_f32 = functools.partial(_window_bwd_weight_f32, _DW, _dw_w_shape)
depthwise_conv2d_bwd_bias_f32 = functools.partial(_window_bwd_bias_f32, _DW)


# ---- FULLY_CONNECTED ----


def fc_fwd_s8(
    p: FcParams,
    x: np.ndarray,
    q: np.ndarray,
    scales: np.ndarray | Sequence[float] | float,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """FULLY_CONNECTED with frozen int8 weights q [out][in]; x is [rows][in]."""
    x = _f32(x, (p.rows, p.in_features), "x")
    q = _s8(q, (p.out_features, p.in_features), "q")
    s = _scales(scales)
    b = _bias(bias, p.out_features)
    out = np.full((max(p.rows, 0), max(p.out_features, 0)), np.nan, dtype=np.float32)
    w = _weights_s8(q, s)
    _call("peft_fc_fwd_s8", ctypes.byref(p), _fp(x), ctypes.byref(w), _fp(b), _fp(out))
    return out


def fc_fwd_f32(
    p: FcParams, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None
) -> np.ndarray:
    x = _f32(x, (p.rows, p.in_features), "x")
    w = _f32(w, (p.out_features, p.in_features), "w")
    b = _bias(bias, p.out_features)
    out = np.full((max(p.rows, 0), max(p.out_features, 0)), np.nan, dtype=np.float32)
    _call("peft_fc_fwd_f32", ctypes.byref(p), _fp(x), _fp(w), _fp(b), _fp(out))
    return out


def fc_bwd_input_s8(
    p: FcParams,
    q: np.ndarray,
    scales: np.ndarray | Sequence[float] | float,
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    q = _s8(q, (p.out_features, p.in_features), "q")
    s = _scales(scales)
    g = _f32(grad_out, (p.rows, p.out_features), "grad_out")
    gi = _grad_in(grad_in, (p.rows, p.in_features), accumulate)
    w = _weights_s8(q, s)
    _call("peft_fc_bwd_input_s8", ctypes.byref(p), ctypes.byref(w), _fp(g), _fp(gi), accumulate)
    return gi


def fc_bwd_input_f32(
    p: FcParams,
    w: np.ndarray,
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    w = _f32(w, (p.out_features, p.in_features), "w")
    g = _f32(grad_out, (p.rows, p.out_features), "grad_out")
    gi = _grad_in(grad_in, (p.rows, p.in_features), accumulate)
    _call("peft_fc_bwd_input_f32", ctypes.byref(p), _fp(w), _fp(g), _fp(gi), accumulate)
    return gi


def fc_bwd_weight_f32(
    p: FcParams, x: np.ndarray, grad_out: np.ndarray, grad_w: np.ndarray | None = None
) -> np.ndarray:
    x = _f32(x, (p.rows, p.in_features), "x")
    g = _f32(grad_out, (p.rows, p.out_features), "grad_out")
    gw = _inout(grad_w, (p.out_features, p.in_features), "grad_w", 0.0)
    _call("peft_fc_bwd_weight_f32", ctypes.byref(p), _fp(x), _fp(g), _fp(gw))
    return gw


def fc_bwd_input_s8s8(
    p: FcParams,
    q: np.ndarray,
    scales: np.ndarray | Sequence[float] | float,
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    """The int8 path: grad_out quantized per row, exact integer products (peft_kernels.h)."""
    q = _s8(q, (p.out_features, p.in_features), "q")
    s = _scales(scales)
    g = _f32(grad_out, (p.rows, p.out_features), "grad_out")
    gi = _grad_in(grad_in, (p.rows, p.in_features), accumulate)
    w = _weights_s8(q, s)
    lib = active_library()
    lib.peft_fc_bwd_input_s8s8_get_buffer_size.argtypes = [_FC]
    lib.peft_fc_bwd_input_s8s8_get_buffer_size.restype = _I32
    size = lib.peft_fc_bwd_input_s8s8_get_buffer_size(ctypes.byref(p))
    scratch = np.zeros(max(size // 2, 1), dtype=np.int16)
    _call(
        "peft_fc_bwd_input_s8s8",
        ctypes.byref(p),
        ctypes.byref(w),
        _fp(g),
        _fp(gi),
        accumulate,
        scratch.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
        size,
    )
    return gi


def fc_bwd_bias_f32(
    p: FcParams, grad_out: np.ndarray, grad_bias: np.ndarray | None = None
) -> np.ndarray:
    g = _f32(grad_out, (p.rows, p.out_features), "grad_out")
    gb = _inout(grad_bias, (p.out_features,), "grad_bias", 0.0)
    _call("peft_fc_bwd_bias_f32", ctypes.byref(p), _fp(g), _fp(gb))
    return gb


# ---- ADD, MEAN, AVERAGE_POOL_2D, PAD ----


def add_fwd_f32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a32 = np.ascontiguousarray(a, dtype=np.float32)
    b32 = _f32(b, a32.shape, "b")
    out = np.full(a32.shape, np.nan, dtype=np.float32)
    _call("peft_add_fwd_f32", a32.size, _fp(a32), _fp(b32), _fp(out))
    return out


def add_bwd_input_f32(
    grad_out: np.ndarray, grad_in: np.ndarray | None = None, accumulate: bool = False
) -> np.ndarray:
    g = np.ascontiguousarray(grad_out, dtype=np.float32)
    gi = _grad_in(grad_in, g.shape, accumulate)
    _call("peft_add_bwd_input_f32", g.size, _fp(g), _fp(gi), accumulate)
    return gi


def mean_fwd_f32(x: np.ndarray) -> np.ndarray:
    """MEAN over H and W of an (h, w, c) array: c values."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError("x: expected an (h, w, c) array")
    d = dims(x.shape)
    out = np.full((d.c,), np.nan, dtype=np.float32)
    _call("peft_mean_fwd_f32", ctypes.byref(d), _fp(x), _fp(out))
    return out


def mean_bwd_input_f32(
    in_shape: Sequence[int],
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    d = dims(in_shape)
    g = _f32(grad_out, (d.c,), "grad_out")
    gi = _grad_in(grad_in, _shape(d), accumulate)
    _call("peft_mean_bwd_input_f32", ctypes.byref(d), _fp(g), _fp(gi), accumulate)
    return gi


def avg_pool2d_fwd_f32(p: ConvParams, x: np.ndarray) -> np.ndarray:
    x = _f32(x, _shape(p.in_), "x")
    out = np.full(_shape(p.out), np.nan, dtype=np.float32)
    _call("peft_avg_pool2d_fwd_f32", ctypes.byref(p), _fp(x), _fp(out))
    return out


def avg_pool2d_bwd_input_f32(
    p: ConvParams,
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    g = _f32(grad_out, _shape(p.out), "grad_out")
    gi = _grad_in(grad_in, _shape(p.in_), accumulate)
    _call("peft_avg_pool2d_bwd_input_f32", ctypes.byref(p), _fp(g), _fp(gi), accumulate)
    return gi


def pad_fwd_f32(p: PadParams, x: np.ndarray) -> np.ndarray:
    x = _f32(x, _shape(p.in_), "x")
    out = np.full(_shape(p.out), np.nan, dtype=np.float32)
    _call("peft_pad_fwd_f32", ctypes.byref(p), _fp(x), _fp(out))
    return out


def pad_bwd_input_f32(
    p: PadParams,
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    g = _f32(grad_out, _shape(p.out), "grad_out")
    gi = _grad_in(grad_in, _shape(p.in_), accumulate)
    _call("peft_pad_bwd_input_f32", ctypes.byref(p), _fp(g), _fp(gi), accumulate)
    return gi


# ---- activation, scale-shift ----


def activation_fwd_f32(act: int, x: np.ndarray) -> np.ndarray:
    """act(x) on a copy of x (the kernel works in place)."""
    y = np.array(x, dtype=np.float32, order="C", copy=True)
    _call("peft_activation_fwd_f32", int(act), y.size, _fp(y))
    return y


def activation_bwd_f32(act: int, y: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """grad * act'(x) from the forward output y, on a copy of grad."""
    y32 = np.ascontiguousarray(y, dtype=np.float32)
    g = np.array(grad, dtype=np.float32, order="C", copy=True)
    if g.size != y32.size:
        raise ValueError("grad and y differ in size")
    _call("peft_activation_bwd_f32", int(act), g.size, _fp(y32), _fp(g))
    return g


def activation_fwd_mask_f32(act: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """act(x) on a copy of x, and its 1-bit derivative mask (bit i of byte i // 8)."""
    y = np.array(x, dtype=np.float32, order="C", copy=True)
    mask = np.zeros((y.size + 7) // 8, dtype=np.uint8)
    _call(
        "peft_activation_fwd_mask_f32",
        int(act),
        y.size,
        _fp(y),
        mask.ctypes.data_as(_U8P),
    )
    return y, mask


def activation_bwd_mask_f32(mask: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """grad * the mask's bits, on a copy of grad."""
    g = np.array(grad, dtype=np.float32, order="C", copy=True)
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    if m.size != (g.size + 7) // 8:
        raise ValueError("the mask has one bit per gradient element")
    _call("peft_activation_bwd_mask_f32", g.size, m.ctypes.data_as(_U8P), _fp(g))
    return g


def scale_shift_fwd_f32(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """x * gamma + beta per channel; x is (..., channels)."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    channels = x32.shape[-1]
    pixels = x32.size // channels
    g = _f32(gamma, (channels,), "gamma")
    b = _f32(beta, (channels,), "beta")
    out = np.full(x32.shape, np.nan, dtype=np.float32)
    _call("peft_scale_shift_fwd_f32", pixels, channels, _fp(x32), _fp(g), _fp(b), _fp(out))
    return out


def scale_shift_bwd_input_f32(
    gamma: np.ndarray,
    grad_out: np.ndarray,
    grad_in: np.ndarray | None = None,
    accumulate: bool = False,
) -> np.ndarray:
    g = np.ascontiguousarray(grad_out, dtype=np.float32)
    channels = g.shape[-1]
    gm = _f32(gamma, (channels,), "gamma")
    gi = _grad_in(grad_in, g.shape, accumulate)
    _call(
        "peft_scale_shift_bwd_input_f32",
        g.size // channels,
        channels,
        _fp(gm),
        _fp(g),
        _fp(gi),
        accumulate,
    )
    return gi


def scale_shift_bwd_param_f32(
    x: np.ndarray,
    grad_out: np.ndarray,
    grad_gamma: np.ndarray | None = None,
    grad_beta: np.ndarray | None = None,
    want_beta: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Adds dL/dgamma and dL/dbeta into the given arrays (zeros when not given);
    want_beta False passes grad_beta NULL (only dL/dgamma, as IA3 asks) and returns
    None for it."""
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    channels = x32.shape[-1]
    g = _f32(grad_out, x32.shape, "grad_out")
    gg = _inout(grad_gamma, (channels,), "grad_gamma", 0.0)
    gb = _inout(grad_beta, (channels,), "grad_beta", 0.0) if want_beta else None
    _call(
        "peft_scale_shift_bwd_param_f32",
        x32.size // channels,
        channels,
        _fp(x32),
        _fp(g),
        _fp(gg),
        None if gb is None else _fp(gb),
    )
    return gg, gb


# ---- softmax + cross-entropy, quantization ----


def softmax_xent_fwd_f32(logits: np.ndarray, label: int) -> tuple[np.ndarray, float]:
    """(probs, loss) of one vector of logits and its integer label."""
    z = np.ascontiguousarray(logits, dtype=np.float32).reshape(-1)
    probs = np.full(z.shape, np.nan, dtype=np.float32)
    loss = ctypes.c_float(np.nan)
    _call("peft_softmax_xent_fwd_f32", z.size, _fp(z), int(label), _fp(probs), ctypes.byref(loss))
    return probs, float(loss.value)


def softmax_xent_bwd_f32(probs: np.ndarray, label: int) -> np.ndarray:
    p = np.ascontiguousarray(probs, dtype=np.float32).reshape(-1)
    grad = np.full(p.shape, np.nan, dtype=np.float32)
    _call("peft_softmax_xent_bwd_f32", p.size, _fp(p), int(label), _fp(grad))
    return grad


def quantize_s8(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    out = np.zeros(x32.shape, dtype=np.int8)
    _call("peft_quantize_s8", x32.size, _fp(x32), float(scale), int(zero_point), _sp(out))
    return out


def dequantize_s8(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    q8 = np.ascontiguousarray(q)
    if q8.dtype != np.int8:
        raise ValueError(f"q: dtype {q8.dtype}, expected int8")
    out = np.full(q8.shape, np.nan, dtype=np.float32)
    _call("peft_dequantize_s8", q8.size, _sp(q8), float(scale), int(zero_point), _fp(out))
    return out
