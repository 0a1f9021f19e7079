"""The comparison every kernel test uses, and a record of every comparison made.

Error measure (per tensor): max|c - tf| / max(max|tf|, floor), the C result
against TensorFlow's. Each call is recorded under its label ("<op>_<pass>_<dtype>")
so that conftest.py can print, at the end of a run, how many forward and
gradient cases were checked and the worst error per op.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

TOL = 1e-4

# label -> every error measured under it, in this test session.
RECORDED: dict[str, list[float]] = defaultdict(list)
# The kernel backend under test (set by conftest's each_backend), shown per op.
BACKEND: str | None = None


def assert_close(
    op: str, got: np.ndarray, want: np.ndarray, tol: float = TOL, floor: float = 1e-6
) -> float:
    """Max error relative to the reference's largest magnitude; fails above `tol`."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (op, got.shape, want.shape)
    assert np.all(np.isfinite(got)), f"{op}: non-finite output (an element left unwritten?)"
    err = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), floor))
    RECORDED[op if BACKEND is None else f"{op}@{BACKEND}"].append(err)
    assert err <= tol, f"{op}: relative error {err:.3g} > {tol}"
    return err


def summary_rows() -> list[tuple[str, int, float, int, float]]:
    """(op, gradient cases, worst gradient error, forward cases, worst forward error)."""
    ops: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"fwd": [], "bwd": []})
    for label, errors in RECORDED.items():
        pass_index = label.find("_fwd_") if "_fwd_" in label else label.find("_bwd_")
        _, at, backend = label.partition("@")
        op = label[:pass_index] + (f" ({backend})" if at else "")
        kind = "fwd" if "_fwd_" in label else "bwd"
        ops[op][kind].extend(errors)
    return [
        (op, len(e["bwd"]), max(e["bwd"], default=0.0), len(e["fwd"]), max(e["fwd"], default=0.0))
        for op, e in sorted(ops.items())
    ]
