"""The budget answer: for a total device RAM budget, the most accurate method that fits,
and how the methods rank per budget across several settings (task, model, resolution).

"Fits" is judged on the total device RAM (MethodRecord ram["total_device"]: TFLM arena,
training arena, state stream buffer and cache, the figure prepare-model prints), never the
training arena alone: that is what a firmware must find free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from micropeft.eval.cm4 import CLOCK_HZ
from micropeft.eval.summary import MethodSummary

# The budgets the report answers, in KiB of total device RAM; the last is the nRF52840's.
BUDGETS_KIB = (64, 96, 128, 192, 256)
NRF52840_RAM_KIB = 256


def fitting(summaries: Sequence[MethodSummary], budget_kib: float) -> list[MethodSummary]:
    """The methods with a C-runtime accuracy whose total device RAM is within the budget."""
    return [
        s
        for s in summaries
        if s.acc_c.values and math.isfinite(s.device_ram) and s.device_ram <= budget_kib * 1024
    ]


def best_within(summaries: Sequence[MethodSummary], budget_kib: float) -> MethodSummary | None:
    """The most accurate method (mean C accuracy over seeds) that fits; on equal accuracy
    the one needing less RAM. None when nothing fits."""
    fits = fitting(summaries, budget_kib)
    if not fits:
        return None
    return min(fits, key=lambda s: (-s.acc_c.mean, s.device_ram))


def device_step_ms(summary: MethodSummary) -> float | None:
    """Estimated milliseconds of the Cortex-M4F training step at CLOCK_HZ (the nRF52840's
    64 MHz), from the TRM-weighted cycle estimate; None without one."""
    m4 = summary.m4
    if not m4 or not m4.get("fits") or not m4.get("est_step_cycles"):
        return None
    return 1e3 * float(m4["est_step_cycles"]) / CLOCK_HZ


def clock_text() -> str:
    return f"{CLOCK_HZ / 1e6:g} MHz"


@dataclass
class MethodRanks:
    """One method's standing under one budget across settings."""

    name: str
    label: str
    ranks: list[int]  # its rank (1 = most accurate) in each setting where it fits
    wins: int  # settings where it ranks first (ties share the rank)

    @property
    def mean_rank(self) -> float:
        return sum(self.ranks) / len(self.ranks)


def ranks_per_budget(
    settings: Sequence[Sequence[MethodSummary]], budget_kib: float
) -> list[MethodRanks]:
    """For one budget: each method's rank among the methods that fit, in every setting
    where it fits (competition ranking: equal accuracies share the better rank), sorted by
    mean rank, then by more wins, then by more settings fitted."""
    table: dict[str, MethodRanks] = {}
    for summaries in settings:
        fits = fitting(summaries, budget_kib)
        for s in fits:
            rank = 1 + sum(1 for o in fits if o.acc_c.mean > s.acc_c.mean)
            entry = table.setdefault(s.name, MethodRanks(s.name, s.label, [], 0))
            entry.ranks.append(rank)
            entry.wins += rank == 1
    return sorted(table.values(), key=lambda m: (m.mean_rank, -m.wins, -len(m.ranks), m.name))
