"""Session-wide pytest hooks: the kernel-vs-TensorFlow summary table."""

from __future__ import annotations

import pytest

import gradcheck
from micropeft.binding import kernels


@pytest.fixture(params=kernels.BACKENDS)
def each_backend(request: pytest.FixtureRequest):
    """Runs a kernel test once per backend (the wrappers call that backend's library)."""
    gradcheck.BACKEND = request.param
    try:
        with kernels.use_backend(request.param):
            yield request.param
    finally:
        gradcheck.BACKEND = None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = gradcheck.summary_rows()
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write("kernels vs TensorFlow: cases checked and worst relative error per op")
    write(f"{'op':<30} {'grad cases':>10} {'worst grad':>11} {'fwd cases':>10} {'worst fwd':>10}")
    for op, bwd_n, bwd_err, fwd_n, fwd_err in rows:
        write(f"{op:<30} {bwd_n:>10} {bwd_err:>11.2e} {fwd_n:>10} {fwd_err:>10.2e}")
    total = sum(r[1] for r in rows), sum(r[3] for r in rows)
    write(f"{'total':<30} {total[0]:>10} {'':>11} {total[1]:>10}")
