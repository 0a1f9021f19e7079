"""The optimized kernels against the reference kernels, both loaded at once.

The optimized backend (lib/peft/kernels_optimized) must compute what the
reference backend (lib/peft/kernels) computes, for every op and pass, on
random shapes larger than test_kernels.py's (channel counts that are and are
not multiples of the 4 x 4 blocks, 1 to 20 rows, MobileNet layer shapes), with
`accumulate` on and off. Both libraries are loaded into this process side by
side (libpeft_kernels_<backend>.so), and a third: the optimized kernels with the
Cortex-M4F's scalar lanes (PEFT_SCALAR_LANES), whose paths the M4 runs where a
host's vector lanes run others.

Tolerance: the blocked kernels add in the reference's order, but an int8
input gradient scales each weight before the sum instead of each output
gradient, so single roundings differ: max|opt - ref| / max|ref| <= 1e-5 is
some 80 float32 ulps of the largest value, far below any real error and far
above those roundings (measured worst: printed by -s).
"""

from __future__ import annotations

import numpy as np
import pytest

from micropeft.eval import kernel_binding as k
from test_kernels import random_scales, tf_padding
from test_kernels_ops import tflite_quantize

TOL = 1e-5
WORST: dict[str, float] = {}


def close(label: str, opt: np.ndarray, ref: np.ndarray) -> None:
    assert np.all(np.isfinite(opt)), f"{label}: non-finite output (an element left unwritten?)"
    err = float(np.max(np.abs(opt - ref)) / max(float(np.max(np.abs(ref))), 1e-12))
    WORST[label] = max(WORST.get(label, 0.0), err)
    assert err <= TOL, f"{label}: optimized differs from reference by {err:.3g} (relative)"


# The optimized kernels as a host runs them, and with the M4's scalar lanes (the paths the
# M4 takes where a host's vector lanes take others: native.KERNEL_LIBRARIES).
OPTIMIZED = ("optimized", "optimized_scalar")


def both(call) -> tuple[np.ndarray, np.ndarray]:
    """(optimized, reference) results of `call`; the scalar-lane library's result is held
    to the reference here with the same bound."""
    with k.use_backend("reference"):
        ref = np.asarray(call())
    with k.use_backend("optimized_scalar"):
        scalar = np.asarray(call())
    close("scalar lanes", scalar, ref)
    with k.use_backend("optimized"):
        opt = call()
    return np.asarray(opt), ref


def conv_geometry(rng: np.random.Generator, depthwise: bool) -> dict:
    while True:
        h, w = (int(v) for v in rng.integers(3, 17, size=2))
        kh, kw = (int(v) for v in rng.choice([1, 2, 3, 5], size=2))
        sh, sw = (int(v) for v in rng.choice([1, 2, 3], size=2))
        if depthwise:
            sw = sh
        padding = str(rng.choice(["SAME", "VALID"]))
        if padding == "VALID" and (kh > h or kw > w):
            continue
        oh, pt = tf_padding(h, kh, sh, padding)
        ow, pl = tf_padding(w, kw, sw, padding)
        cin = int(rng.choice([1, 2, 3, 4, 5, 8, 13, 16, 32]))
        cout = cin if depthwise else int(rng.choice([1, 3, 4, 6, 8, 10, 16, 33]))
        return dict(
            in_shape=(h, w, cin),
            out_shape=(oh, ow, cout),
            kernel=(kh, kw),
            stride=(sh, sw),
            pad=(pt, pl),
        )


# MobileNetV1 0.25 32x32 layers (kernel_bench's shapes) plus random ones.
MOBILENET = [
    dict(in_shape=(32, 32, 1), out_shape=(16, 16, 8), kernel=(3, 3), stride=(2, 2), pad=(0, 0)),
    dict(in_shape=(8, 8, 16), out_shape=(8, 8, 16), kernel=(3, 3), stride=(1, 1), pad=(1, 1)),
    dict(in_shape=(8, 8, 32), out_shape=(8, 8, 32), kernel=(1, 1), stride=(1, 1), pad=(0, 0)),
]


DEPTHWISE_MOBILENET = [
    dict(in_shape=(8, 8, 32), out_shape=(8, 8, 32), kernel=(3, 3), stride=(1, 1), pad=(1, 1)),
    dict(in_shape=(8, 8, 32), out_shape=(4, 4, 32), kernel=(3, 3), stride=(2, 2), pad=(0, 0)),
    dict(in_shape=(7, 9, 5), out_shape=(7, 9, 5), kernel=(3, 3), stride=(1, 1), pad=(1, 1)),
]


def run_window(op: str, geo: dict, rng: np.random.Generator) -> None:
    p = k.conv_params(geo["in_shape"], geo["out_shape"], geo["kernel"], geo["stride"], geo["pad"])
    (h, w, cin), (oh, ow, cout) = geo["in_shape"], geo["out_shape"]
    kh, kw = geo["kernel"]
    w_shape = (kh, kw, cin) if op == "depthwise_conv2d" else (cout, kh, kw, cin)
    x = rng.standard_normal((h, w, cin)).astype(np.float32)
    g = rng.standard_normal((oh, ow, cout)).astype(np.float32)
    q = rng.integers(-127, 128, size=w_shape).astype(np.int8)
    wf = rng.standard_normal(w_shape).astype(np.float32)
    scales = random_scales(rng, cout)
    bias = rng.standard_normal(cout).astype(np.float32)
    base = rng.standard_normal((h, w, cin)).astype(np.float32)
    f = {
        name: getattr(k, f"{op}_{name}")
        for name in ("fwd_s8", "fwd_f32", "bwd_input_s8", "bwd_input_f32", "bwd_weight_f32")
    }
    close(f"{op}_fwd_s8", *both(lambda: f["fwd_s8"](p, x, q, scales, bias)))
    close(f"{op}_fwd_f32", *both(lambda: f["fwd_f32"](p, x, wf, None)))
    close(f"{op}_bwd_input_s8", *both(lambda: f["bwd_input_s8"](p, q, scales, g)))
    close(f"{op}_bwd_input_f32", *both(lambda: f["bwd_input_f32"](p, wf, g)))
    close(
        f"{op}_bwd_input_f32 accumulate",
        *both(lambda: f["bwd_input_f32"](p, wf, g, base.copy(), True)),
    )
    close(f"{op}_bwd_weight_f32", *both(lambda: f["bwd_weight_f32"](p, x, g, wf.copy())))


@pytest.mark.parametrize("seed", range(40))
def test_conv2d_optimized_matches_reference(seed: int):
    rng = np.random.default_rng(5000 + seed)
    geo = MOBILENET[seed] if seed < len(MOBILENET) else conv_geometry(rng, depthwise=False)
    run_window("conv2d", geo, rng)


@pytest.mark.parametrize("seed", range(24))
def test_depthwise_optimized_matches_reference(seed: int):
    rng = np.random.default_rng(6000 + seed)
    geo = (
        DEPTHWISE_MOBILENET[seed]
        if seed < len(DEPTHWISE_MOBILENET)
        else conv_geometry(rng, depthwise=True)
    )
    run_window("depthwise_conv2d", geo, rng)


# Shapes that reach each path of the optimized depthwise kernels beyond the
# random ones (3..16 pixels a side): planes in several bands, planes wider
# than the fixed pitch, a plane too wide for the stack (the four-channel
# loops), the stride-2 input gradient in several bands, odd channel counts
# (the channels after the last group of four) and pixel counts around the
# 16 below which the small-layer loops run.
DEPTHWISE_PATHS = [
    ((24, 30, 5), 1, "SAME"),
    ((23, 19, 6), 1, "VALID"),
    ((9, 90, 3), 1, "SAME"),
    ((40, 26, 7), 2, "SAME"),
    ((41, 23, 9), 2, "VALID"),
    ((4, 4, 13), 1, "SAME"),
    ((3, 5, 6), 1, "SAME"),
    ((2, 2, 128), 1, "SAME"),
    ((17, 17, 4), 2, "SAME"),
]


@pytest.mark.parametrize("case", range(len(DEPTHWISE_PATHS)))
def test_depthwise_paths_match_reference(case: int):
    (h, w, c), stride, padding = DEPTHWISE_PATHS[case]
    oh, pt = tf_padding(h, 3, stride, padding)
    ow, pl = tf_padding(w, 3, stride, padding)
    geo = dict(
        in_shape=(h, w, c),
        out_shape=(oh, ow, c),
        kernel=(3, 3),
        stride=(stride, stride),
        pad=(pt, pl),
    )
    run_window("depthwise_conv2d", geo, np.random.default_rng(6500 + case))


@pytest.mark.parametrize("seed", range(30))
def test_fc_optimized_matches_reference(seed: int):
    rng = np.random.default_rng(7000 + seed)
    rows = int(rng.choice([1, 2, 3, 4, 5, 7, 9, 13, 16, 20, 30]))
    n_in, n_out = (int(rng.choice([1, 3, 4, 5, 10, 16, 33, 64, 256])) for _ in range(2))
    p = k.fc_params(rows, n_in, n_out)
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    g = rng.standard_normal((rows, n_out)).astype(np.float32)
    q = rng.integers(-127, 128, size=(n_out, n_in)).astype(np.int8)
    wf = rng.standard_normal((n_out, n_in)).astype(np.float32)
    scales = random_scales(rng, n_out)
    bias = rng.standard_normal(n_out).astype(np.float32)
    base = rng.standard_normal((rows, n_in)).astype(np.float32)
    close("fc_fwd_s8", *both(lambda: k.fc_fwd_s8(p, x, q, scales, bias)))
    close("fc_fwd_f32", *both(lambda: k.fc_fwd_f32(p, x, wf, bias)))
    close("fc_bwd_input_s8", *both(lambda: k.fc_bwd_input_s8(p, q, scales, g)))
    close(
        "fc_bwd_input_s8 accumulate",
        *both(lambda: k.fc_bwd_input_s8(p, q, scales, g, base.copy(), True)),
    )
    close("fc_bwd_input_f32", *both(lambda: k.fc_bwd_input_f32(p, wf, g)))
    close(
        "fc_bwd_input_f32 accumulate",
        *both(lambda: k.fc_bwd_input_f32(p, wf, g, base.copy(), True)),
    )
    close("fc_bwd_weight_f32", *both(lambda: k.fc_bwd_weight_f32(p, x, g, wf.copy())))
    close("fc_bwd_bias_f32", *both(lambda: k.fc_bwd_bias_f32(p, g)))


@pytest.mark.parametrize("act", [k.ACT_RELU, k.ACT_RELU6])
def test_activation_mask_optimized_matches_reference(act: int) -> None:
    """Bit for bit, on values that include the kinks, -0, the infinities and NaN, every
    length 1..67 (a partial last mask byte), and a MobileNet layer's 16x16x8 output."""
    rng = np.random.default_rng(act)
    special = np.array([0.0, -0.0, 6.0, np.inf, -np.inf, np.nan, -np.nan], dtype=np.float32)
    for n in [*range(1, 68), 16 * 16 * 8]:
        x = rng.uniform(-8, 8, n).astype(np.float32)
        picks = rng.random(n) < 0.3
        x[picks] = rng.choice(special, int(picks.sum()))
        with k.use_backend("reference"):
            y_ref, m_ref = k.activation_fwd_mask_f32(act, x)
        grad = rng.normal(size=n).astype(np.float32)
        with k.use_backend("reference"):
            g_ref = k.activation_bwd_mask_f32(m_ref, grad)
        for lib in OPTIMIZED:
            with k.use_backend(lib):
                y_opt, m_opt = k.activation_fwd_mask_f32(act, x)
                g_opt = k.activation_bwd_mask_f32(m_ref, grad)
            assert y_opt.tobytes() == y_ref.tobytes(), f"{lib}, n={n}: outputs differ"
            assert m_opt.tobytes() == m_ref.tobytes(), f"{lib}, n={n}: masks differ"
            assert g_opt.tobytes() == g_ref.tobytes(), f"{lib}, n={n}: gradients differ"
        assert np.array_equal(y_ref, k.activation_fwd_f32(act, x))
        assert np.array_equal(g_ref, k.activation_bwd_f32(act, y_ref, grad))


@pytest.mark.parametrize("seed", range(4))
def test_scale_shift_param_grads_optimized_match_reference(seed: int) -> None:
    """Bit for bit (both add each channel's rows in order), at channel counts below,
    at and past the host's chunk of 64 and the M4's blocks of 4, with and without
    the beta gradient, into arrays that already hold sums."""
    rng = np.random.default_rng(300 + seed)
    for channels in [1, 3, 4, 5, 8, 13, 63, 64, 65, 130]:
        pixels = int(rng.integers(1, 300))
        x = rng.normal(size=(pixels, channels)).astype(np.float32)
        g = rng.normal(size=(pixels, channels)).astype(np.float32)
        start = rng.normal(size=channels).astype(np.float32)
        for want_beta in (True, False):
            results = {}
            for backend in ("reference", *OPTIMIZED):
                with k.use_backend(backend):
                    results[backend] = k.scale_shift_bwd_param_f32(
                        x, g, start.copy(), start.copy(), want_beta=want_beta
                    )
            ref_g, ref_b = results["reference"]
            for lib in OPTIMIZED:
                opt_g, opt_b = results[lib]
                assert opt_g.tobytes() == ref_g.tobytes(), f"{lib}, {channels}: gamma differs"
                if want_beta:
                    assert opt_b.tobytes() == ref_b.tobytes(), f"{lib}, {channels}: beta differs"
            np.testing.assert_allclose(
                ref_g, start + np.sum(g.astype(np.float64) * x, axis=0), rtol=1e-4, atol=1e-4
            )


@pytest.mark.parametrize("backend", ["reference", *OPTIMIZED])
def test_quantize_backends_match_tflite(backend: str) -> None:
    """Both backends' codes are TFLite's, bit for bit, at every length 1..130 (the
    optimized one quantizes chunks of 64), on values spread over the int8 range and
    beyond it, exact halves of the step and the infinities; a NaN anywhere is refused."""
    rng = np.random.default_rng(7)
    scale = float(np.float32(0.037))
    halves = (np.arange(-140, 140) + 0.5).astype(np.float32) * np.float32(scale)
    special = np.float32([np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0])
    with k.use_backend(backend):
        for n in [*range(1, 131), 16 * 16 * 8 + 3]:
            x = (rng.standard_normal(n) * 200 * scale).astype(np.float32)
            picks = rng.random(n) < 0.3
            x[picks] = rng.choice(np.concatenate([halves, special]), int(picks.sum()))
            zero_point = int(rng.integers(-128, 128))
            want = tflite_quantize(x, scale, zero_point)
            np.testing.assert_array_equal(k.quantize_s8(x, scale, zero_point), want)
            x[int(rng.integers(n))] = np.nan
            with pytest.raises(k.KernelError, match="NUMERIC"):
                k.quantize_s8(x, scale, zero_point)


def test_print_worst_differences(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last in this file: the worst relative difference per kernel (pytest -s shows it)."""
    with capsys.disabled():
        for label, err in sorted(WORST.items()):
            print(f"optimized vs reference {label:40s} {err:.2e}")
