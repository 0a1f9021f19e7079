"""Session-wide pytest hooks: the kernel-vs-TensorFlow summary table."""

from __future__ import annotations

import pytest

import gradcheck


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    rows = gradcheck.summary_rows()
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write("kernels vs TensorFlow: cases checked and worst relative error per op")
    write(f"{'op':<20} {'grad cases':>10} {'worst grad':>11} {'fwd cases':>10} {'worst fwd':>10}")
    for op, bwd_n, bwd_err, fwd_n, fwd_err in rows:
        write(f"{op:<20} {bwd_n:>10} {bwd_err:>11.2e} {fwd_n:>10} {fwd_err:>10.2e}")
    total = sum(r[1] for r in rows), sum(r[3] for r in rows)
    write(f"{'total':<20} {total[0]:>10} {'':>11} {total[1]:>10}")
