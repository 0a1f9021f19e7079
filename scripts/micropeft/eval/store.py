"""The benchmark's results on disk: results.json and results.csv, rewritten atomically
after every run, so that an interrupted benchmark resumes where it stopped and a new
method, seed or setting runs only what is new.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path

from micropeft.eval.results import (
    RAM_PARTS,
    RESULTS_SCHEMA,
    MethodRecord,
    ResultsFile,
    RunRecord,
    load_settings,
    results_file,
)
from micropeft.eval.tasks import METHODS, BenchConfig
from micropeft.files import write_atomic

# ---------------------------------------------------------------------------
# Results file: atomic, incremental, resumable


CSV_FIELDS = [
    "setting",
    "key",
    "task",
    "arch",
    "alpha",
    "size",
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
    """results.json + results.csv in `out_dir`: every setting benchmarked into the folder.

    Runs are keyed per setting by "method/seed/impl" and carry the fingerprint of what
    decided their numbers (BenchConfig.run_fingerprint). Opening a setting drops the runs
    whose fingerprint no longer matches (a changed recipe drops that method's runs, a
    changed training length the setting's); adding a method, a seed or a setting keeps
    every other run. Only one process writes the file (the benchmark's parent).
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / "results.json"
        self.csv_path = out_dir / "results.csv"
        self.settings: dict[str, ResultsFile] = {}
        if self.path.is_file():
            self.settings = dict(load_settings(self.path))

    def open(self, config: BenchConfig) -> SettingStore:
        """The setting of `config`, its stale runs dropped (SettingStore.discarded)."""
        setting_id = config.setting_id()
        old = self.settings.get(setting_id)
        fresh: ResultsFile = {
            "schema": RESULTS_SCHEMA,
            "setting": setting_id,
            "fingerprint": config.setting_fingerprint(),
            "config": asdict(config),
            "setup": {},
            "methods": {},
            "runs": [],
            "skipped": [],
        }
        discarded = 0
        if old is not None:
            expected = _expected_fingerprints(config)
            for run in old.get("runs", []):
                if run.get("fingerprint") == expected.get(run.get("method", "")):
                    fresh["runs"].append(run)
                else:
                    discarded += 1
            kept = {r["method"] for r in fresh["runs"]}
            fresh["methods"] = {
                name: info for name, info in old.get("methods", {}).items() if name in kept
            }
            for name, info in fresh["methods"].items():
                m4 = info.get("m4")
                if m4 is not None and info.get("m4_fingerprint") != config.m4_fingerprint(name):
                    info["m4"] = None
            if old.get("fingerprint") == fresh["fingerprint"]:
                fresh["setup"] = dict(old.get("setup", {}))
                fresh["skipped"] = [
                    s for s in old.get("skipped", []) if s.get("method") not in config.methods
                ]
            # Methods and seeds: everything the setting holds, in the recipes' order.
            ran = {r["method"] for r in fresh["runs"]} | set(config.methods)
            fresh["config"]["methods"] = [m for m in METHODS if m in ran]
            seeds = {r["seed"] for r in fresh["runs"] if r.get("method") in METHODS}
            fresh["config"]["seeds"] = sorted(seeds | set(config.seeds))
        self.settings[setting_id] = fresh
        return SettingStore(self, fresh, discarded)

    def save(self) -> None:
        file = results_file(self.settings)
        write_atomic(self.path, (json.dumps(file, indent=1) + "\n").encode())
        write_atomic(self.csv_path, self._csv().encode())

    def _csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for setting_id, setting in self.settings.items():
            for row in _csv_rows(setting):
                writer.writerow({"setting": setting_id, **row})
        return buffer.getvalue()


def _expected_fingerprints(config: BenchConfig) -> dict[str, str]:
    names = [*METHODS, "scratch", "zero_shot"]
    return {name: config.run_fingerprint(name) for name in names}


class SettingStore:
    """One setting of a ResultsStore; every change is saved at once (atomic rewrite)."""

    def __init__(self, store: ResultsStore, data: ResultsFile, discarded: int) -> None:
        self.store = store
        self.data = data
        self.discarded = discarded

    @property
    def setting_id(self) -> str:
        return self.data["setting"]

    def has(self, key: str) -> bool:
        return any(r.get("key") == key for r in self.data["runs"])

    def add_run(self, run: RunRecord) -> None:
        self.data["runs"] = [r for r in self.data["runs"] if r.get("key") != run["key"]]
        self.data["runs"].append(run)
        self.data["skipped"] = [
            s
            for s in self.data["skipped"]
            if not (s.get("method") == run.get("method") and s.get("seed") in (None, run["seed"]))
        ]
        self.store.save()

    def set_method(self, name: str, info: MethodRecord) -> None:
        self.data["methods"][name] = info
        self.store.save()

    def method(self, name: str) -> MethodRecord:
        return self.data["methods"].get(name, {})

    def skip(self, method: str, seed: int | None, kind: str, reason: str) -> None:
        """Note a method (seed None) or a run that did not run, and why; a method with no
        run left is dropped from the setting's list."""
        self.data["skipped"] = [
            s
            for s in self.data["skipped"]
            if not (s.get("method") == method and s.get("seed") == seed)
        ]
        self.data["skipped"].append(
            {"method": method, "seed": seed, "kind": kind, "reason": reason}
        )
        if seed is None:
            self.data["config"]["methods"] = [
                m for m in self.data["config"]["methods"] if m != method
            ]
            self.data["methods"].pop(method, None)
            self.data["runs"] = [r for r in self.data["runs"] if r.get("method") != method]
        self.store.save()


def _csv_rows(setting: ResultsFile) -> list[dict[str, object]]:
    config = setting["config"]
    spec = setting.get("setup", {}).get("spec", {})
    rows = []
    for run in setting["runs"]:
        info = setting["methods"].get(run.get("method"), {})
        ram = info.get("ram", {})
        flash = info.get("flash", {})
        macs = info.get("macs", {})
        m4 = info.get("m4") or {}
        epochs = run.get("epochs", [])
        row = {
            **{k: run.get(k) for k in ("key", "method", "seed", "impl", "accuracy")},
            "task": config.get("task"),
            "arch": spec.get("arch"),
            "alpha": spec.get("alpha"),
            "size": spec.get("size"),
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
        rows.append(row)
    return rows
