"""The benchmark's results on disk: results.json and results.csv, rewritten atomically
after every run, so that an interrupted benchmark resumes where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

from micropeft.eval.results import RAM_PARTS, RESULTS_SCHEMA, MethodRecord, ResultsFile, RunRecord
from micropeft.eval.tasks import BenchConfig
from micropeft.files import write_atomic

# ---------------------------------------------------------------------------
# Results file: atomic, incremental, resumable


CSV_FIELDS = [
    "key",
    "task",
    "method",
    "label",
    "seed",
    "impl",
    "accuracy",
    "final_loss",
    "epochs",
    "step_ms",
    "train_s",
    "trainable_parameters",
    "ram_total",
    "ram_high_water",
    "ram_cached_activations",
    "ram_gradients",
    "ram_parameters",
    "ram_optimizer_state",
    "ram_scratch",
    "flash_model",
    "flash_plan",
    "flash_code",
    "macs_forward",
    "macs_backward",
    "m4_fits",
    "m4_forward",
    "m4_backward",
    "m4_optimizer",
    "m4_step",
    "merged_agreement",
    "merged_accuracy",
    "merged_16x8_agreement",
    "merged_16x8_accuracy",
    "m4_est_step_ms",
]


class ResultsStore:
    """results.json + results.csv in `out_dir`; runs keyed by "method/seed/impl"."""

    def __init__(self, out_dir: Path, config: BenchConfig) -> None:
        self.path = out_dir / "results.json"
        self.csv_path = out_dir / "results.csv"
        self.fingerprint = config.fingerprint()
        self.data: ResultsFile = {
            "schema": RESULTS_SCHEMA,
            "fingerprint": self.fingerprint,
            "config": asdict(config),
            "setup": {},
            "methods": {},
            "runs": [],
        }
        self.discarded = 0
        if self.path.is_file():
            try:
                old = json.loads(self.path.read_text())
            except json.JSONDecodeError:
                old = {}
            if old.get("schema") == RESULTS_SCHEMA and old.get("fingerprint") == self.fingerprint:
                self.data["runs"] = list(old.get("runs", []))
                self.data["methods"] = dict(old.get("methods", {}))
                self.data["setup"] = dict(old.get("setup", {}))
            else:
                self.discarded = len(old.get("runs", []))

    def has(self, key: str) -> bool:
        return any(r.get("key") == key for r in self.data["runs"])

    def add_run(self, run: RunRecord) -> None:
        self.data["runs"] = [r for r in self.data["runs"] if r.get("key") != run["key"]]
        self.data["runs"].append(run)
        self.save()

    def set_method(self, name: str, info: MethodRecord) -> None:
        self.data["methods"][name] = info
        self.save()

    def method(self, name: str) -> MethodRecord:
        return self.data["methods"].get(name, {})

    def save(self) -> None:
        write_atomic(self.path, (json.dumps(self.data, indent=1) + "\n").encode())
        write_atomic(self.csv_path, self._csv().encode())

    def _csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        task = self.data["config"].get("task")
        for run in self.data["runs"]:
            info = self.data["methods"].get(run.get("method"), {})
            ram = info.get("ram", {})
            flash = info.get("flash", {})
            macs = info.get("macs", {})
            m4 = info.get("m4") or {}
            epochs = run.get("epochs", [])
            row = {
                **{k: run.get(k) for k in ("key", "method", "seed", "impl", "accuracy")},
                "task": task,
                "label": info.get("label", run.get("method")),
                "final_loss": epochs[-1].get("loss") if epochs else None,
                "epochs": len(epochs),
                "step_ms": run.get("step_ms"),
                "train_s": run.get("train_s"),
                "trainable_parameters": info.get("trainable_parameters"),
                "ram_high_water": ram.get("high_water"),
                "flash_model": flash.get("model"),
                "flash_plan": flash.get("plan"),
                "flash_code": flash.get("code"),
                "macs_forward": macs.get("forward"),
                "macs_backward": macs.get("backward"),
                "m4_fits": m4.get("fits"),
                **{f"m4_{k}": m4.get(k) for k in ("forward", "backward", "optimizer", "step")},
                "m4_est_step_ms": m4.get("est_step_ms"),
            }
            for part in ("total", *RAM_PARTS):
                row[f"ram_{part}"] = ram.get(part)
            merged = run.get("merged") or {}
            row["merged_agreement"] = merged.get("agreement_tflm")
            row["merged_accuracy"] = merged.get("accuracy_tflm")
            row["merged_16x8_agreement"] = merged.get("agreement_tflm_16x8")
            row["merged_16x8_accuracy"] = merged.get("accuracy_tflm_16x8")
            writer.writerow(row)
        return buffer.getvalue()
