"""`micropeft bench`: every PEFT method, C runtime against TensorFlow, costs, report.

For a task (a pretrained int8 model and a target dataset) and each method:

1. the planner marks the layers (methods.apply_method) and lays out the plan;
2. the frozen prefix runs ONCE per sample in TFLite's int8 interpreter and its
   output at every split point in use is cached (the prefix never changes, so
   epochs, methods and seeds reuse it, as the device does);
3. for each seed, the C runtime (runtime.Trainer: the device's sources built for
   the host) and the TensorFlow reference (reference.TFReferenceTrainer) train
   the same method on the same int8 split activations, in the same order, from
   the same initial parameters, epoch by epoch, step by step side by side (so
   their host times are measured under the same load);
4. costs: trainable parameters, the planner's RAM breakdown, the runtime's
   arena high-water mark, flash (model + plan + code), MACs per sample, and the
   Cortex-M4F instruction counts of a training step under QEMU (micropeft.eval.cm4).

Baselines: zero-shot (the int8 model with its re-initialised head, untrained)
and training from scratch (the same architecture from random initialisation on
the target, in Keras, with the same number of epochs).

Results go to <out>/results.json (one entry per run, plus per-method costs) and
<out>/results.csv (one row per run), rewritten atomically after every run; a
run already there with the same configuration is skipped, so an interrupted
benchmark resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

from micropeft.eval import cm4, render, sweep
from micropeft.eval.store import ResultsStore
from micropeft.eval.tasks import METHODS, BenchConfig, prepare_task, timed
from micropeft.eval.train import (
    measure_m4,
    method_costs,
    prefix_activations,
    prepare_method,
    scratch_run,
    train_pair,
    zero_shot_run,
)
from micropeft.files import write_atomic
from micropeft.prep import tflite_graph

# ---------------------------------------------------------------------------
# The whole benchmark


def _host_setup() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}"
    )


def run_bench(cfg: BenchConfig, out_dir: Path, report: bool = True, progress: bool = True) -> Path:
    """Run (or resume) the benchmark; returns the results file."""
    from tqdm import tqdm

    cfg.check()
    if cfg.cm4:
        cm4.require_tools()
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = out_dir / "cache"
    artifacts = out_dir / "artifacts"
    store = ResultsStore(out_dir, cfg)
    if store.discarded:
        print(f"bench: the configuration changed; {store.discarded} earlier run(s) discarded")
    timing: dict[str, float] = {}
    data = prepare_task(cfg, cache_dir, timing)
    graph = tflite_graph.graph_from_tflite(data.model)
    model_file = artifacts / "model.tflite"
    if not model_file.is_file() or model_file.read_bytes() != data.model:
        write_atomic(model_file, data.model)
    store.data["setup"]["model_file"] = str(model_file.relative_to(out_dir))
    prepared = {name: prepare_method(METHODS[name], graph, data.model) for name in cfg.methods}
    split_tensors = sorted({p.input_tensor for p in prepared.values()})
    with timed(timing, "prefix_cache_s"):
        cache = prefix_activations(data.model, graph, split_tensors, data, cache_dir)
    store.add_run(zero_shot_run(cache, data))

    work = [(name, seed) for name in cfg.methods for seed in cfg.seeds]
    bar = tqdm(total=len(work), desc="fine-tuning", unit="run", disable=not progress)
    for name, seed in work:
        p = prepared[name]
        info = {**store.method(name), **method_costs(p, data.model, artifacts)}
        store.data["methods"][name] = info
        bar.set_postfix_str(f"{name} seed {seed}")
        if store.has(f"{name}/{seed}/c") and store.has(f"{name}/{seed}/tf"):
            bar.update(1)
            continue
        with timed(timing, "fine_tuning_s"):
            c_run, tf_run, memory = train_pair(p, data.model, cache, data, cfg, seed)
        info["ram"]["high_water"] = max(memory["high_water"], info["ram"].get("high_water", 0))
        info["runtime"] = memory
        store.data["methods"][name] = info
        store.add_run(c_run)
        store.add_run(tf_run)
        bar.update(1)
    bar.close()

    if cfg.cm4:
        todo = [n for n in cfg.methods if not store.method(n).get("m4")]
        for name in tqdm(todo, desc="cortex-m4f", unit="method", disable=not progress):
            with timed(timing, "cm4_s"):
                m4 = measure_m4(
                    prepared[name], data.model, cache, data, cfg, cache_dir / "cm4", artifacts
                )
            info = store.method(name)
            info["m4"] = m4
            if m4.get("fits"):
                info["flash"]["code"] = m4["code"]["text"]
                info["flash"]["runtime_code"] = m4["library_text"]
            store.set_method(name, info)

    if cfg.scratch and data.keras_builder is not None:
        todo_seeds = [s for s in cfg.seeds if not store.has(f"scratch/{s}")]
        for seed in tqdm(todo_seeds, desc="from scratch", unit="seed", disable=not progress):
            with timed(timing, "scratch_s"):
                store.add_run(scratch_run(data, cfg, seed))

    timing["total_s"] = time.perf_counter() - started
    setup = dict(data.setup)
    setup["host"] = _host_setup()
    rates = "; ".join(f"{METHODS[m].label}: {METHODS[m].optimizer_text()}" for m in cfg.methods)
    setup["training"] = (
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, a constant learning rate, optimizer per "
        f"method ({rates}); the C runtime and TensorFlow see the same samples in the same order "
        f"from the same initial parameters; host time per step is the median over all steps"
    )
    setup["tuning"] = sweep.tuning_text(out_dir, cfg.methods) or (
        "each recipe's own optimizer and rate; `micropeft bench --sweep` with the same --out "
        "measures the validation sweep that chooses them, and this report then cites it"
    )
    setup["choices"] = (
        "the frozen prefix runs once per sample (int8, TFLite interpreter) and its output is "
        f"cached for every epoch, method and seed; the target training set is subsampled to "
        f"{cfg.train_samples} and the test set to {cfg.test_samples} samples, and the source "
        f"model is pretrained for {cfg.source_epochs()} epochs (cached), to keep the whole run "
        "within minutes"
    )
    if cfg.cm4:
        setup["cm4"] = (
            "lib/peft and cm4/fw/driver.c built with arm-none-eabi-gcc -mcpu=cortex-m4 "
            "-mfpu=fpv4-sp-d16 -mfloat-abi=hard -O2 -ffp-contract=off (optimized kernels) "
            "against the nRF52840's memory map (1 MB "
            f"flash, 256 KiB RAM), one step of {cfg.cm4_samples} sample(s) run under "
            "qemu-system-arm -M mps2-an386 and counted by cm4/plugin/peft_icount.c (exact "
            "instructions; cycles estimated from the Cortex-M4 TRM's instruction timings, no "
            "wait states, shown as ms per step at 64 MHz)"
        )
    old_timing = store.data["setup"].get("timing", {})
    setup["model_file"] = store.data["setup"]["model_file"]
    store.data["setup"] = setup
    store.data["setup"]["timing"] = {
        k: round(v, 1) for k, v in {**old_timing, **timing}.items() if not math.isnan(v)
    }
    store.save()
    if report:
        render.write_report(store.path, out_dir)
    return store.path
