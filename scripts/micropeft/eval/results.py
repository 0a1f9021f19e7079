"""The results file of `micropeft bench` (results.json): its schema version, typed
records of what it holds, and its reader. The benchmark writes these records and the
report reads them; neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from micropeft.errors import UserError

RESULTS_SCHEMA = 1


# ---------------------------------------------------------------------------
# Reading and summarising results


def load_results(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"results file not found: {path} (run `micropeft bench` first)")
    try:
        results = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(results, dict) or results.get("schema") != RESULTS_SCHEMA:
        raise UserError(f"{path}: not a micropeft results file (schema {RESULTS_SCHEMA})")
    for key in ("config", "methods", "runs"):
        if key not in results:
            raise UserError(f"{path}: no '{key}' section")
    return results


# ---------------------------------------------------------------------------
# Formatting helpers


def optimizer_text(opt: dict[str, Any]) -> str:
    """ "Adam, lr 0.003" / "SGD (momentum 0.9), lr 0.01" from an OptimizerConfig's fields."""
    if opt.get("kind") == "adam":
        return f"Adam, lr {opt['lr']:g}"
    return f"SGD (momentum {opt.get('momentum', 0.0):g}), lr {opt['lr']:g}"


# The parts of the planner's training-RAM breakdown, in the order tables and plots show them.
RAM_PARTS = ("cached_activations", "gradients", "parameters", "optimizer_state", "scratch")
