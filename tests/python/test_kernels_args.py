"""Kernel contracts that TensorFlow does not cover: argument checks (PEFT_ERR_ARG
and nothing written), the geometry rule of peft_conv_params, and the
accumulate / add-into semantics of the backward kernels.

The geometry rule is checked against a brute-force transcription of the
header's sentence (out == (in + pad_top + pad_bottom - k) / s + 1 for some
0 <= pad_bottom < k + s, pad_top >= 0). Accumulation is checked exactly:
accumulate=True must give base + (the accumulate=False result) bit for bit.
"""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import numpy as np
import pytest

from micropeft.eval import kernel_binding as k

# Every test runs once per kernel backend (reference and optimized).
pytestmark = pytest.mark.usefixtures("each_backend")

REPO = Path(__file__).resolve().parents[2]
ERR_ARG = 1
ERR_NUMERIC = 4
F32P = ctypes.POINTER(ctypes.c_float)
S8P = ctypes.POINTER(ctypes.c_int8)
BYREF = type(ctypes.byref(ctypes.c_int()))


def fp(a: np.ndarray) -> ctypes._Pointer:
    return a.ctypes.data_as(F32P)


# ---- the geometry rule ----


def header_rule(size: int, out: int, kernel: int, stride: int, pad: int) -> bool:
    if kernel <= 0 or stride <= 0 or pad < 0 or size <= 0 or out <= 0:
        return False
    return any(
        size + pad + pb - kernel >= 0 and (size + pad + pb - kernel) // stride + 1 == out
        for pb in range(kernel + stride)
    )


def conv_status(p: k.ConvParams) -> tuple[int, bool]:
    """Status of a 1-channel conv (buffers sized from p) and whether out was touched."""
    lib = k.active_library()
    x = np.ones(max(p.in_.h * p.in_.w, 1), dtype=np.float32)
    w = np.ones(max(p.kernel_h * p.kernel_w, 1), dtype=np.float32)
    out = np.full(max(p.out.h * p.out.w, 1), 7.0, dtype=np.float32)
    status = lib.peft_conv2d_fwd_f32(ctypes.byref(p), fp(x), fp(w), None, fp(out))
    return status, bool(np.any(out != 7.0))


@pytest.mark.parametrize("seed", range(4))
def test_geometry_rule_is_the_headers(seed: int):
    rng = np.random.default_rng(1300 + seed)
    accepted = rejected = 0
    for _ in range(150):
        size, kernel, stride = (int(v) for v in rng.integers(1, 7, size=3))
        pad = int(rng.integers(-1, 5))
        out = int(rng.integers(-1, 10))
        # The rule on the rows; the columns are a valid 1-wide case.
        p = k.conv_params((size, 1, 1), (out, 1, 1), (kernel, 1), (stride, 1), (pad, 0))
        status, touched = conv_status(p)
        if header_rule(size, out, kernel, stride, pad):
            assert status == 0, (size, out, kernel, stride, pad)
            accepted += 1
        else:
            assert status == ERR_ARG, (size, out, kernel, stride, pad)
            assert not touched
            rejected += 1
    assert accepted > 20 and rejected > 20


def test_zero_kernel_or_stride_is_rejected():
    for kernel, stride in ((0, 1), (1, 0), (-1, 1), (1, -2)):
        p = k.conv_params((4, 4, 1), (4, 4, 1), (kernel, 1), (stride, 1))
        assert conv_status(p) == (ERR_ARG, False)


def test_avg_pool_needs_every_window_to_cover_the_input():
    x = np.ones((3, 3, 1), dtype=np.float32)
    # pad_bottom == 1 with a 1x1 window: the last row of windows sees only
    # padding (count 0). The header's conv rule accepts it, pooling must not.
    p = k.conv_params((3, 3, 1), (4, 3, 1), (1, 1))
    assert k.conv2d_fwd_f32(p, x, np.ones(1)).shape == (4, 3, 1)
    with pytest.raises(k.KernelError, match="PEFT_ERR_ARG"):
        k.avg_pool2d_fwd_f32(p, x)
    # pad_top == kernel: the first window sees only padding.
    p = k.conv_params((3, 3, 1), (4, 3, 1), (2, 1), (1, 1), (2, 0))
    with pytest.raises(k.KernelError, match="PEFT_ERR_ARG"):
        k.avg_pool2d_bwd_input_f32(p, np.ones((4, 3, 1)))


# ---- NULL and bad-argument checks, table driven ----


class Buffers:
    """Valid arguments of every kernel on one small geometry: 4x4x2 -> 2x2x3,
    3x3 kernel, VALID (depthwise and pooling: 2 channels)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)

        def f(*shape: int) -> np.ndarray:
            return rng.standard_normal(shape).astype(np.float32)

        self.conv = k.conv_params((4, 4, 2), (2, 2, 3), (3, 3))
        self.dw = k.conv_params((4, 4, 2), (2, 2, 2), (3, 3))
        self.fc = k.fc_params(2, 5, 3)
        self.pad = k.pad_params((4, 4, 2), (5, 7, 2), (1, 2))
        self.in_dims = k.dims((4, 4, 2))
        self.out_dims = k.dims((2, 2, 3))
        self.x, self.x_grad = f(4, 4, 2), f(4, 4, 2)
        self.w, self.w_grad = f(3, 3, 3, 2), f(3, 3, 3, 2)
        self.q = rng.integers(-127, 128, size=54).astype(np.int8)
        self.scales = np.float32([0.01, 0.02, 0.03])
        self.w8 = k.WeightsS8(self.q.ctypes.data_as(S8P), fp(self.scales), 3)
        self.dw_w8 = k.WeightsS8(self.q.ctypes.data_as(S8P), fp(self.scales), 2)
        self.fc_w8 = k.WeightsS8(self.q.ctypes.data_as(S8P), fp(self.scales), 3)
        self.bias, self.bias_grad = f(3), f(3)
        self.y, self.y_grad = f(2, 2, 3), f(2, 2, 3)
        self.dw_w, self.dw_w_grad = f(3, 3, 2), f(3, 3, 2)
        self.dw_y, self.dw_y_grad = f(2, 2, 2), f(2, 2, 2)
        self.fc_x, self.fc_x_grad = f(2, 5), f(2, 5)
        self.fc_w, self.fc_w_grad = f(3, 5), f(3, 5)
        self.fc_y, self.fc_y_grad = f(2, 3), f(2, 3)
        self.pad_y = f(5, 7, 2)
        self.vec, self.vec2, self.vec_out = f(7), f(7), f(7)
        self.mean = f(2)
        self.gamma, self.beta = f(2), f(2)
        self.ss_x, self.ss_out = f(16, 2), f(16, 2)
        self.gamma_grad, self.beta_grad = f(2), f(2)
        self.loss = np.zeros(1, dtype=np.float32)
        self.q_out = np.zeros(7, dtype=np.int8)
        self.s8s8_scratch = np.zeros(256, dtype=np.int16)

    def arrays(self) -> list[np.ndarray]:
        return [v for v in vars(self).values() if isinstance(v, np.ndarray)]


def kernel_calls(b: Buffers) -> dict[str, list[object]]:
    """Every kernel with valid arguments (bias, the optional one, left out)."""
    r = ctypes.byref
    return {
        "peft_conv2d_fwd_s8": [r(b.conv), fp(b.x), r(b.w8), fp(b.bias), fp(b.y)],
        "peft_conv2d_fwd_f32": [r(b.conv), fp(b.x), fp(b.w), fp(b.bias), fp(b.y)],
        "peft_conv2d_bwd_input_s8": [r(b.conv), r(b.w8), fp(b.y_grad), fp(b.x_grad), True],
        "peft_conv2d_bwd_input_f32": [r(b.conv), fp(b.w), fp(b.y_grad), fp(b.x_grad), True],
        "peft_conv2d_bwd_weight_f32": [r(b.conv), fp(b.x), fp(b.y_grad), fp(b.w_grad)],
        "peft_conv2d_bwd_bias_f32": [r(b.out_dims), fp(b.y_grad), fp(b.bias_grad)],
        "peft_depthwise_conv2d_fwd_s8": [r(b.dw), fp(b.x), r(b.dw_w8), fp(b.bias), fp(b.dw_y)],
        "peft_depthwise_conv2d_fwd_f32": [r(b.dw), fp(b.x), fp(b.dw_w), fp(b.bias), fp(b.dw_y)],
        "peft_depthwise_conv2d_bwd_input_s8": [
            r(b.dw),
            r(b.dw_w8),
            fp(b.dw_y_grad),
            fp(b.x_grad),
            False,
        ],
        "peft_depthwise_conv2d_bwd_input_f32": [
            r(b.dw),
            fp(b.dw_w),
            fp(b.dw_y_grad),
            fp(b.x_grad),
            False,
        ],
        "peft_depthwise_conv2d_bwd_weight_f32": [
            r(b.dw),
            fp(b.x),
            fp(b.dw_y_grad),
            fp(b.dw_w_grad),
        ],
        "peft_depthwise_conv2d_bwd_bias_f32": [r(b.in_dims), fp(b.x_grad), fp(b.mean)],
        "peft_fc_fwd_s8": [r(b.fc), fp(b.fc_x), r(b.fc_w8), fp(b.bias), fp(b.fc_y)],
        "peft_fc_fwd_f32": [r(b.fc), fp(b.fc_x), fp(b.fc_w), fp(b.bias), fp(b.fc_y)],
        "peft_fc_bwd_input_s8": [r(b.fc), r(b.fc_w8), fp(b.fc_y_grad), fp(b.fc_x_grad), True],
        "peft_fc_bwd_input_f32": [r(b.fc), fp(b.fc_w), fp(b.fc_y_grad), fp(b.fc_x_grad), True],
        "peft_fc_bwd_weight_f32": [r(b.fc), fp(b.fc_x), fp(b.fc_y_grad), fp(b.fc_w_grad)],
        "peft_fc_bwd_bias_f32": [r(b.fc), fp(b.fc_y_grad), fp(b.bias_grad)],
        "peft_fc_bwd_input_s8s8": [
            r(b.fc),
            r(b.fc_w8),
            fp(b.fc_y_grad),
            fp(b.fc_x_grad),
            True,
            b.s8s8_scratch.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
            2 * b.s8s8_scratch.size,
        ],
        "peft_add_fwd_f32": [7, fp(b.vec), fp(b.vec2), fp(b.vec_out)],
        "peft_add_bwd_input_f32": [7, fp(b.vec), fp(b.vec_out), True],
        "peft_mean_fwd_f32": [r(b.in_dims), fp(b.x), fp(b.mean)],
        "peft_mean_bwd_input_f32": [r(b.in_dims), fp(b.mean), fp(b.x_grad), False],
        "peft_avg_pool2d_fwd_f32": [r(b.dw), fp(b.x), fp(b.dw_y)],
        "peft_avg_pool2d_bwd_input_f32": [r(b.dw), fp(b.dw_y_grad), fp(b.x_grad), True],
        "peft_pad_fwd_f32": [r(b.pad), fp(b.x), fp(b.pad_y)],
        "peft_pad_bwd_input_f32": [r(b.pad), fp(b.pad_y), fp(b.x_grad), False],
        "peft_activation_fwd_f32": [k.ACT_RELU6, 7, fp(b.vec)],
        "peft_activation_bwd_f32": [k.ACT_RELU, 7, fp(b.vec), fp(b.vec2)],
        "peft_scale_shift_fwd_f32": [16, 2, fp(b.ss_x), fp(b.gamma), fp(b.beta), fp(b.ss_out)],
        "peft_scale_shift_bwd_input_f32": [
            16,
            2,
            fp(b.gamma),
            fp(b.ss_out),
            fp(b.ss_x),
            True,
        ],
        "peft_scale_shift_bwd_param_f32": [
            16,
            2,
            fp(b.ss_x),
            fp(b.ss_out),
            fp(b.gamma_grad),
            fp(b.beta_grad),
        ],
        "peft_softmax_xent_fwd_f32": [7, fp(b.vec), 3, fp(b.vec_out), fp(b.loss)],
        "peft_softmax_xent_bwd_f32": [7, fp(b.vec), 6, fp(b.vec_out)],
        "peft_quantize_s8": [7, fp(b.vec), 0.05, -3, b.q_out.ctypes.data_as(S8P)],
        "peft_dequantize_s8": [7, b.q_out.ctypes.data_as(S8P), 0.05, -3, fp(b.vec_out)],
    }


def expect_arg_error(name: str, args: list[object], b: Buffers) -> None:
    """The call returns PEFT_ERR_ARG and leaves every buffer as it was."""
    before = [a.copy() for a in b.arrays()]
    status = getattr(k.active_library(), name)(*args)
    assert status == ERR_ARG, f"{name}{args}: status {status}"
    for old, new in zip(before, b.arrays(), strict=True):
        np.testing.assert_array_equal(old, new, err_msg=f"{name} wrote despite PEFT_ERR_ARG")


ALL_KERNELS = sorted(kernel_calls(Buffers()))


def test_every_declared_kernel_is_bound_and_covered():
    header = (REPO / "include" / "peft" / "peft_kernels.h").read_text()
    declared = set(re.findall(r"^peft_status (peft_\w+)\(", header, flags=re.M))
    assert len(declared) > 30
    assert declared == set(k.SIGNATURES) == set(ALL_KERNELS)
    private = REPO / "lib" / "peft" / "kernels" / "activation" / "peft_activation_mask.h"
    assert set(re.findall(r"^peft_status (peft_\w+)\(", private.read_text(), flags=re.M)) == set(
        k.PRIVATE_SIGNATURES
    )


@pytest.mark.parametrize("name", ALL_KERNELS)
def test_valid_arguments_pass_and_null_pointers_are_rejected(name: str):
    b = Buffers()
    args = kernel_calls(b)[name]
    assert getattr(k.active_library(), name)(*args) == 0, name
    for i, arg in enumerate(args):
        if not isinstance(arg, (ctypes._Pointer, BYREF)):
            continue
        if ("_fwd_" in name and i == 3 and ("conv" in name or "fc" in name)) or (
            name == "peft_scale_shift_bwd_param_f32" and i == 5
        ):
            # bias == NULL means no bias, grad_beta == NULL no beta gradient: accepted.
            nulled = [None if j == i else a for j, a in enumerate(args)]
            assert getattr(k.active_library(), name)(*nulled) == 0
            continue
        b = Buffers()
        fresh = kernel_calls(b)[name]
        expect_arg_error(name, [None if j == i else a for j, a in enumerate(fresh)], b)


def with_params(name: str, b: Buffers, **changes: object) -> None:
    """Replace fields of the call's parameter structure, expect PEFT_ERR_ARG."""
    args = kernel_calls(b)[name]
    struct = args[0]._obj  # the structure behind ctypes.byref
    for field, value in changes.items():
        target = struct
        *path, last = field.split(".")
        for part in path:
            target = getattr(target, part)
        setattr(target, last, value)
    expect_arg_error(name, args, b)


CONV_KERNELS = [n for n in ALL_KERNELS if n.startswith(("peft_conv2d", "peft_depthwise"))]
CONV_KERNELS = [n for n in CONV_KERNELS if "bias" not in n] + [
    "peft_avg_pool2d_fwd_f32",
    "peft_avg_pool2d_bwd_input_f32",
]


@pytest.mark.parametrize("name", CONV_KERNELS)
@pytest.mark.parametrize(
    "change",
    [
        # 4x4 input, 3x3 kernel, stride 1, no leading pad: the header's rule
        # (pad_bottom < kernel + stride) allows 2..5 outputs a side.
        {"out.h": 6},
        {"out.w": 1},
        {"out.w": 6},
        {"pad_top": 3},  # then at least 5 outputs
        {"in_.h": 0},
        {"in_.c": -1},
        {"out.c": 0},
        {"kernel_h": 0},
        {"stride_w": 0},
        {"pad_top": -1},
        {"stride_h": -1},
    ],
)
def test_inconsistent_geometry_is_rejected(name: str, change: dict):
    with_params(name, Buffers(), **change)


@pytest.mark.parametrize(
    "name",
    [n for n in CONV_KERNELS if "depthwise" in n or "avg_pool" in n],
)
def test_depthwise_and_pooling_need_equal_channels(name: str):
    with_params(name, Buffers(), **{"out.c": 1})


@pytest.mark.parametrize("name", [n for n in ALL_KERNELS if n.endswith("_s8") and "quant" not in n])
@pytest.mark.parametrize("count", [0, -1, 2, 4])
def test_scale_count_must_be_one_or_out_channels(name: str, count: int):
    b = Buffers()
    args = kernel_calls(b)[name]
    weights = next(
        a._obj
        for a in args
        if getattr(a, "_obj", None) is not None and isinstance(a._obj, k.WeightsS8)
    )
    channels = 2 if "depthwise" in name else 3
    if count == channels:
        count = channels + 1
    weights.scale_count = count
    expect_arg_error(name, args, b)


@pytest.mark.parametrize("field", ["data", "scales"])
@pytest.mark.parametrize("name", [n for n in ALL_KERNELS if n.endswith("_s8") and "quant" not in n])
def test_null_weight_data_or_scales_is_rejected(name: str, field: str):
    b = Buffers()
    args = kernel_calls(b)[name]
    weights = next(a._obj for a in args if isinstance(getattr(a, "_obj", None), k.WeightsS8))
    setattr(weights, field, None)
    expect_arg_error(name, args, b)


@pytest.mark.parametrize(
    ("name", "index", "value"),
    [
        ("peft_fc_fwd_f32", None, {"rows": 0}),
        ("peft_fc_bwd_input_f32", None, {"in_features": -3}),
        ("peft_fc_bwd_weight_f32", None, {"out_features": 0}),
        ("peft_pad_fwd_f32", None, {"pad_top": 2}),  # 4 + 2 > 5 rows
        ("peft_pad_bwd_input_f32", None, {"pad_left": -1}),
        ("peft_pad_fwd_f32", None, {"out.c": 3}),
        ("peft_pad_bwd_input_f32", None, {"out.w": 3}),
        ("peft_add_fwd_f32", 0, 0),
        ("peft_add_bwd_input_f32", 0, -7),
        ("peft_activation_fwd_f32", 0, 3),
        ("peft_activation_bwd_f32", 0, -1),
        ("peft_activation_fwd_f32", 1, 0),
        ("peft_scale_shift_fwd_f32", 0, 0),
        ("peft_scale_shift_bwd_param_f32", 1, -2),
        ("peft_softmax_xent_fwd_f32", 2, 7),
        ("peft_softmax_xent_fwd_f32", 2, -1),
        ("peft_softmax_xent_bwd_f32", 2, 7),
        ("peft_softmax_xent_bwd_f32", 0, 0),
        ("peft_quantize_s8", 2, 0.0),
        ("peft_quantize_s8", 2, -0.5),
        ("peft_quantize_s8", 2, float("nan")),
        ("peft_quantize_s8", 2, float("inf")),
        ("peft_quantize_s8", 3, 128),
        ("peft_dequantize_s8", 3, -129),
        ("peft_dequantize_s8", 2, 0.0),
    ],
)
def test_out_of_range_scalars_are_rejected(name: str, index: int | None, value: object):
    b = Buffers()
    if index is None:
        with_params(name, b, **value)
        return
    args = kernel_calls(b)[name]
    args[index] = value
    expect_arg_error(name, args, b)


def test_dims_kernels_reject_non_positive_dims():
    for name in ("peft_mean_fwd_f32", "peft_mean_bwd_input_f32", "peft_conv2d_bwd_bias_f32"):
        for field in ("h", "w", "c"):
            b = Buffers()
            args = kernel_calls(b)[name]
            setattr(args[0]._obj, field, 0)
            expect_arg_error(name, args, b)


def test_quantize_refuses_nan_and_writes_nothing():
    out = np.full(3, 5, dtype=np.int8)
    x = np.float32([1.0, np.nan, 2.0])
    status = k.active_library().peft_quantize_s8(3, fp(x), 0.1, 0, out.ctypes.data_as(S8P))
    assert status == ERR_NUMERIC
    np.testing.assert_array_equal(out, [5, 5, 5])


def test_softmax_reports_a_non_finite_loss():
    with pytest.raises(k.KernelError, match="PEFT_ERR_NUMERIC"):
        k.softmax_xent_fwd_f32(np.float32([np.inf, 0.0]), 0)
    with pytest.raises(k.KernelError, match="PEFT_ERR_NUMERIC"):
        k.softmax_xent_fwd_f32(np.float32([np.nan, 0.0]), 1)


def test_binding_raises_with_the_status_name():
    p = k.conv_params((4, 4, 1), (7, 4, 1), (3, 3))
    with pytest.raises(k.KernelError, match="peft_conv2d_fwd_f32: PEFT_ERR_ARG") as info:
        k.conv2d_fwd_f32(p, np.zeros((4, 4, 1)), np.zeros((1, 3, 3, 1)))
    assert info.value.status == ERR_ARG
    with pytest.raises(ValueError):
        k.conv2d_fwd_f32(p, np.zeros((3, 4, 1)), np.zeros((1, 3, 3, 1)))


# ---- accumulate and add-into semantics ----


def accumulate_cases(rng: np.random.Generator) -> dict[str, tuple]:
    """name -> (call(grad_in, accumulate), grad_in shape) for every _bwd_input_."""

    def f(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    conv = k.conv_params((5, 6, 3), (3, 3, 4), (3, 2), (2, 2), (1, 0))
    dw = k.conv_params((5, 6, 3), (3, 3, 3), (3, 3), (2, 2), (1, 1))
    fc = k.fc_params(3, 5, 4)
    pad = k.pad_params((5, 6, 3), (8, 7, 3), (2, 1))
    q4, q3, qf = (
        rng.integers(-127, 128, size=s).astype(np.int8) for s in ((4, 3, 2, 3), (3, 3, 3), (4, 5))
    )
    w4, w3, wf = f(4, 3, 2, 3), f(3, 3, 3), f(4, 5)
    g_conv, g_dw, g_fc, g_pad = f(3, 3, 4), f(3, 3, 3), f(3, 4), f(8, 7, 3)
    g_img, gamma = f(5, 6, 3), f(3)
    return {
        "conv2d_s8": (
            lambda gi, a: k.conv2d_bwd_input_s8(conv, q4, f(4), g_conv, gi, a),
            (5, 6, 3),
        ),
        "conv2d_f32": (lambda gi, a: k.conv2d_bwd_input_f32(conv, w4, g_conv, gi, a), (5, 6, 3)),
        "depthwise_s8": (
            lambda gi, a: k.depthwise_conv2d_bwd_input_s8(dw, q3, 0.02, g_dw, gi, a),
            (5, 6, 3),
        ),
        "depthwise_f32": (
            lambda gi, a: k.depthwise_conv2d_bwd_input_f32(dw, w3, g_dw, gi, a),
            (5, 6, 3),
        ),
        "fc_s8": (lambda gi, a: k.fc_bwd_input_s8(fc, qf, 0.03, g_fc, gi, a), (3, 5)),
        "fc_f32": (lambda gi, a: k.fc_bwd_input_f32(fc, wf, g_fc, gi, a), (3, 5)),
        "add": (lambda gi, a: k.add_bwd_input_f32(g_img, gi, a), (5, 6, 3)),
        "mean": (lambda gi, a: k.mean_bwd_input_f32((5, 6, 3), gamma, gi, a), (5, 6, 3)),
        "avg_pool2d": (lambda gi, a: k.avg_pool2d_bwd_input_f32(dw, g_dw, gi, a), (5, 6, 3)),
        "pad": (lambda gi, a: k.pad_bwd_input_f32(pad, g_pad, gi, a), (5, 6, 3)),
        "scale_shift": (lambda gi, a: k.scale_shift_bwd_input_f32(gamma, g_img, gi, a), (5, 6, 3)),
    }


ACCUMULATE_NAMES = sorted(accumulate_cases(np.random.default_rng(0)))


@pytest.mark.parametrize("name", ACCUMULATE_NAMES)
def test_bwd_input_overwrites_or_adds(name: str):
    # The scales drawn inside the s8 cases come from the same seeded stream,
    # so each call gets its own fresh generator.
    call, shape = accumulate_cases(np.random.default_rng(1400))[name]
    fresh = call(None, False)
    assert np.all(np.isfinite(fresh)), "an element of grad_in was left unwritten"
    garbage = np.full(shape, 1e30, dtype=np.float32)
    call, _ = accumulate_cases(np.random.default_rng(1400))[name]
    np.testing.assert_array_equal(call(garbage, False), fresh)
    base = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    call, _ = accumulate_cases(np.random.default_rng(1400))[name]
    np.testing.assert_array_equal(call(base.copy(), True), base + fresh)


def test_bwd_weight_bias_and_param_add_into_their_buffers():
    rng = np.random.default_rng(1500)
    conv = k.conv_params((5, 6, 3), (3, 3, 4), (3, 2), (2, 2), (1, 0))
    dw = k.conv_params((5, 6, 3), (3, 3, 3), (3, 3), (2, 2), (1, 1))
    fc = k.fc_params(3, 5, 4)
    x, x_fc, x_ss = (rng.standard_normal(s).astype(np.float32) for s in ((5, 6, 3), (3, 5), (7, 3)))
    g_conv, g_dw, g_fc, g_ss = (
        rng.standard_normal(s).astype(np.float32) for s in ((3, 3, 4), (3, 3, 3), (3, 4), (7, 3))
    )
    calls = {
        "conv2d_weight": (lambda buf: k.conv2d_bwd_weight_f32(conv, x, g_conv, buf), (4, 3, 2, 3)),
        "conv2d_bias": (lambda buf: k.conv2d_bwd_bias_f32((3, 3, 4), g_conv, buf), (4,)),
        "depthwise_weight": (
            lambda buf: k.depthwise_conv2d_bwd_weight_f32(dw, x, g_dw, buf),
            (3, 3, 3),
        ),
        "depthwise_bias": (lambda buf: k.depthwise_conv2d_bwd_bias_f32((3, 3, 3), g_dw, buf), (3,)),
        "fc_weight": (lambda buf: k.fc_bwd_weight_f32(fc, x_fc, g_fc, buf), (4, 5)),
        "fc_bias": (lambda buf: k.fc_bwd_bias_f32(fc, g_fc, buf), (4,)),
        "scale_shift_gamma": (lambda buf: k.scale_shift_bwd_param_f32(x_ss, g_ss, buf)[0], (3,)),
        "scale_shift_beta": (
            lambda buf: k.scale_shift_bwd_param_f32(x_ss, g_ss, None, buf)[1],
            (3,),
        ),
    }
    for name, (call, shape) in calls.items():
        once = call(np.zeros(shape, dtype=np.float32))
        assert np.any(once != 0), name
        base = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_array_equal(call(base.copy()), base + once, err_msg=name)
        twice = call(call(np.zeros(shape, dtype=np.float32)))
        np.testing.assert_array_equal(twice, once + once, err_msg=name)
