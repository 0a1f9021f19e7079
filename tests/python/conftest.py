"""Session-wide pytest hooks: the kernel-vs-TensorFlow summary table, and the CI
switch MICROPEFT_STRICT=1 (set by `make test` and .ci/run) under which a skipped
test or module fails: missing evidence must not pass as green."""

from __future__ import annotations

import os

import pytest

import gradcheck
from micropeft.eval import kernel_binding as kernels


@pytest.fixture(params=kernels.BACKENDS)
def each_backend(request: pytest.FixtureRequest):
    """Runs a kernel test once per backend (the wrappers call that backend's library)."""
    gradcheck.BACKEND = request.param
    try:
        with kernels.use_backend(request.param):
            yield request.param
    finally:
        gradcheck.BACKEND = None


STRICT = os.environ.get("MICROPEFT_STRICT") == "1"


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under MICROPEFT_STRICT=1: {_skip_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> object:
    outcome = yield
    _fail_skip(outcome.get_result())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STRICT:
        terminalreporter.write_line("MICROPEFT_STRICT=1: every skip counted as a failure")
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
