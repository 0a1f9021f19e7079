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

Results go to <out>/results.json (per setting: one entry per run, plus per-method
costs) and <out>/results.csv (one row per run), rewritten atomically after every
run by the parent process; a run already there with the same fingerprint (what
decided its numbers: the setting's data and training, the method's recipe) is
skipped, so an interrupted benchmark resumes where it stopped and a new method,
seed or setting runs only what is new.

A grid of settings (a suite, tasks.SUITES) runs the same way: first each setting is
prepared (pretraining cached, the prefix cache, every method's plan and costs; a
recipe that matches no layer of the model is noted as skipped), with the jobs that need
no pretrained model beside it (the host and Cortex-M4F library builds, the from-scratch
baselines), then every run, in parallel across processes (joblib's loky backend), one
progress bar over all of them; a run that fails records its error and the others go on.
"""

from __future__ import annotations

import math
import os
import platform
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from micropeft.errors import UserError
from micropeft.eval import cm4, render, sweep
from micropeft.eval.results import MethodRecord, RunRecord
from micropeft.eval.store import ResultsStore, SettingStore
from micropeft.eval.tasks import (
    METHODS,
    BenchConfig,
    TaskData,
    prepare_task,
    scratch_task,
    timed,
)
from micropeft.eval.train import (
    PrefixCache,
    PreparedMethod,
    measure_m4,
    method_costs,
    prefix_activations,
    prepare_method,
    scratch_run,
    train_pair,
    zero_shot_run,
)
from micropeft.files import write_atomic
from micropeft.host import native
from micropeft.prep import convert, tflite_graph

# ---------------------------------------------------------------------------
# One setting: prepared once (in a worker), then its runs (in any worker)


@dataclass
class PreparedSetting:
    """What the parent needs of a prepared setting (picklable: no model, no data)."""

    config: BenchConfig
    work_dir: Path  # its artifacts/ folder's parent
    split_tensors: list[int]
    costs: dict[str, MethodRecord]  # per method that applies to the model
    skipped: dict[str, str]  # method -> why it does not apply
    zero_shot: RunRecord
    data_setup: dict[str, Any]
    model_file: Path
    timing: dict[str, float]


@dataclass
class _Context:
    """A setting's model, data and prefix cache, kept per process for its next runs."""

    data: TaskData
    graph: Any
    cache: PrefixCache
    prepared: dict[str, PreparedMethod] = field(default_factory=dict)  # by run fingerprint

    def method(self, cfg: BenchConfig, name: str) -> PreparedMethod:
        key = cfg.run_fingerprint(name)
        if key not in self.prepared:
            spec = METHODS[name].for_run(cfg, len(self.data.x_train))
            self.prepared[key] = prepare_method(spec, self.graph, self.data.model)
        return self.prepared[key]


_CONTEXTS: dict[tuple[str, tuple[int, ...]], _Context] = {}
_CONTEXTS_KEPT = 3  # settings a worker keeps loaded (each holds its prefix cache)


def _context_key(cfg: BenchConfig, split_tensors: list[int]) -> tuple[str, tuple[int, ...]]:
    return cfg.setting_fingerprint(), tuple(split_tensors)


def _context(setting: PreparedSetting, cache_dir: Path) -> _Context:
    key = _context_key(setting.config, setting.split_tensors)
    if key not in _CONTEXTS:
        while len(_CONTEXTS) >= _CONTEXTS_KEPT:
            _CONTEXTS.pop(next(iter(_CONTEXTS)))
        data = prepare_task(setting.config, cache_dir, {})
        graph = tflite_graph.graph_from_tflite(data.model)
        cache = prefix_activations(data.model, graph, setting.split_tensors, data, cache_dir)
        _CONTEXTS[key] = _Context(data, graph, cache)
    return _CONTEXTS[key]


def prepare_setting(cfg: BenchConfig, work_dir: Path, cache_dir: Path) -> PreparedSetting:
    """Pretrain (cached), convert, cache the prefix outputs and plan every method."""
    cpu_start = time.process_time()
    timing: dict[str, float] = {}
    data = prepare_task(cfg, cache_dir, timing)
    graph = tflite_graph.graph_from_tflite(data.model)
    artifacts = work_dir / "artifacts"
    model_file = artifacts / "model.tflite"
    if not model_file.is_file() or model_file.read_bytes() != data.model:
        write_atomic(model_file, data.model)
    prepared: dict[str, PreparedMethod] = {}
    skipped: dict[str, str] = {}
    for name in cfg.methods:
        try:
            spec = METHODS[name].for_run(cfg, len(data.x_train))
            prepared[name] = prepare_method(spec, graph, data.model)
        except UserError as error:  # the recipe cannot apply to this model
            skipped[name] = str(error)
    split_tensors = sorted({p.input_tensor for p in prepared.values()})
    with timed(timing, "prefix_cache_s"):
        cache = prefix_activations(data.model, graph, split_tensors, data, cache_dir)
    costs = {name: method_costs(p, data.model, artifacts) for name, p in prepared.items()}
    by_fingerprint = {cfg.run_fingerprint(name): p for name, p in prepared.items()}
    _CONTEXTS[_context_key(cfg, split_tensors)] = _Context(data, graph, cache, by_fingerprint)
    timing["prepare_cpu_s"] = time.process_time() - cpu_start
    return PreparedSetting(
        cfg,
        work_dir,
        split_tensors,
        costs,
        skipped,
        zero_shot_run(cache, data),
        dict(data.setup),
        model_file,
        timing,
    )


def _limit_threads(threads: int | None) -> None:
    """TensorFlow started quietly (a worker process imports it afresh, and its start-up
    lines would stand between the progress bars), its thread pools sized to a share of the
    cores (before its first op): several workers, each with a pool as wide as the machine,
    only slow each other."""
    convert.start_tensorflow_quietly()  # lists the devices: thread pools can still be set
    if threads is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this worker: set by its first job
        pass


def _prepare_job(
    group: list[tuple[int, BenchConfig, Path]],
    cache_dir: Path,
    threads: int | None,
    keep_going: bool,
) -> list[tuple[int, PreparedSetting | str]]:
    """Settings that share a pretrained model, one after the other (one pretraining).
    keep_going: an error is returned as its text (recorded) instead of raised."""
    _limit_threads(threads)
    out: list[tuple[int, PreparedSetting | str]] = []
    for index, cfg, work_dir in group:
        try:
            out.append((index, prepare_setting(cfg, work_dir, cache_dir)))
        except Exception as error:
            if not keep_going:
                raise
            out.append((index, _error_text(error)))
    return out


def _error_text(error: BaseException) -> str:
    if isinstance(error, UserError):
        return str(error)
    last = traceback.extract_tb(error.__traceback__)[-1:]
    where = f" (at {Path(last[0].filename).name}:{last[0].lineno})" if last else ""
    return f"{type(error).__name__}: {error}{where}"


# A unit of work: ("run", setting, method, seed), ("m4", setting, method, None) or
# ("scratch", setting, None, seed). Scratch runs need no pretrained model: they run while
# the settings are prepared, beside a job that builds the host and Cortex-M4F libraries.
Job = tuple[str, int, str | None, int | None]


def _early_job(
    job: Job, cfg: BenchConfig | None, threads: int | None
) -> tuple[Job, Any, tuple[float, float]]:
    """A job that needs no prepared setting: a scratch run of cfg, or ("build", -1, None,
    None), the libraries every later run uses (cfg: None, or a setting measured on the M4)."""
    _limit_threads(threads)
    start = time.perf_counter(), time.process_time()
    try:
        if job[0] == "build":
            native.build_host()
            if cfg is not None:
                cm4.build_runtime()
                cm4.build_plugin()
            return job, None, _elapsed(start)
        assert cfg is not None and job[3] is not None
        return job, scratch_run(scratch_task(cfg), cfg, job[3]), _elapsed(start)
    except Exception as error:  # noqa: BLE001 - recorded in the results; the others go on
        return job, _error_text(error), _elapsed(start)


def _run_job(
    job: Job, setting: PreparedSetting, cache_dir: Path, threads: int | None
) -> tuple[Job, Any, tuple[float, float]]:
    """Run one job; returns (job, its result or the error text, (wall, CPU) seconds).
    CPU time (every thread of the process) is what a loaded machine does not inflate."""
    _limit_threads(threads)
    start = time.perf_counter(), time.process_time()
    kind, _, method, seed = job
    try:
        ctx = _context(setting, cache_dir)
        cfg = setting.config
        if kind == "run":
            assert method is not None and seed is not None
            merge_check = seed == min(cfg.seeds)  # one seed per method: the merged table
            result: Any = train_pair(
                ctx.method(cfg, method), ctx.data.model, ctx.cache, ctx.data, cfg, seed, merge_check
            )
        elif kind == "m4":
            assert method is not None
            m4_dir = cache_dir / "cm4" / cfg.setting_id().replace("/", "_")
            result = measure_m4(
                ctx.method(cfg, method), ctx.data.model, ctx.cache, ctx.data, cfg, m4_dir,
                setting.work_dir / "artifacts",
            )  # fmt: skip
        else:
            raise ValueError(f"not a run of a prepared setting: {kind}")
    except Exception as error:  # noqa: BLE001 - recorded in the results; the others go on
        return job, _error_text(error), _elapsed(start)
    return job, result, _elapsed(start)


def _elapsed(start: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


# ---------------------------------------------------------------------------
# The whole benchmark


def _host_setup() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}"
    )


def run_bench(
    cfg: BenchConfig,
    out_dir: Path,
    report: bool = True,
    progress: bool = True,
    jobs: int = 1,
) -> Path:
    """Run (or resume) the benchmark of one setting; returns the results file.

    Bad input found while preparing the setting (a UserError) is raised."""
    return run_grid([cfg], out_dir, report=report, progress=progress, jobs=jobs, suite=False)


def run_grid(
    configs: list[BenchConfig],
    out_dir: Path,
    report: bool = True,
    progress: bool = True,
    jobs: int = 1,
    suite: bool = True,
) -> Path:
    """Run (or resume) every setting of `configs` into one results file; returns it.

    suite: each setting's artifacts go to <out>/<setting id>/, and a setting that cannot be
    prepared is noted in the results instead of raised."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    for cfg in configs:
        cfg.check()
    if any(cfg.cm4 for cfg in configs):
        cm4.require_tools()
    if jobs < 1:
        raise UserError("--jobs must be at least 1")
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = out_dir / "cache"
    store = ResultsStore(out_dir)
    settings = [store.open(cfg) for cfg in configs]
    for s in settings:
        if s.discarded:
            print(
                f"bench: {s.setting_id}: {s.discarded} earlier run(s) made with another "
                "configuration or recipe discarded"
            )
    if any(s.discarded for s in settings):
        store.save()
    threads = None if jobs == 1 else max(1, (os.cpu_count() or 1) // jobs)
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")

    # Settings that share a pretrained model are prepared by one job, so it trains once.
    groups: dict[str, list[tuple[int, BenchConfig, Path]]] = {}
    for index, cfg in enumerate(configs):
        work_dir = out_dir / cfg.setting_id().replace("/", "_") if suite else out_dir
        key = "user" if cfg.model_path else repr(_pretrain_key(cfg))
        groups.setdefault(f"{key}/{index if cfg.model_path else ''}", []).append(
            (index, cfg, work_dir)
        )
    prepared: dict[int, PreparedSetting] = {}
    # One setting (a plain bench) prints its own preparation lines; a bar would only
    # stand in front of them (and of a bad-input error).
    bar = tqdm(
        total=len(configs),
        desc="preparing",
        unit="setting",
        disable=not progress or len(configs) < 2,
    )
    # Beside the preparation (the pretraining, mostly on one core): the libraries, then
    # the scratch runs.
    measured_cfg = next((cfg for cfg in configs if cfg.cm4), None)
    early: list[tuple[Job, BenchConfig | None]] = [(("build", -1, None, None), measured_cfg)]
    for index, (s, cfg) in enumerate(zip(settings, configs, strict=True)):
        if cfg.scratch and cfg.model_path is None:
            early += [
                (("scratch", index, None, seed), cfg)
                for seed in cfg.seeds[: cfg.scratch_seeds]
                if not s.has(f"scratch/{seed}")
            ]
    calls = [delayed(_prepare_job)(group, cache_dir, threads, suite) for group in groups.values()]
    calls += [delayed(_early_job)(job, cfg, threads) for job, cfg in early]
    for finished in parallel(calls) if jobs > 1 else map(_call, calls):
        if isinstance(finished, tuple):  # an early job
            job, result, times = finished
            if job[0] == "scratch":
                _record_job(settings[job[1]], configs[job[1]], job, result, times)
            elif isinstance(result, str):
                raise UserError(result)  # the libraries did not build: nothing can run
            continue
        for index, result in finished:
            if isinstance(result, str):
                settings[index].skip("(setting)", None, "error", result)
            else:
                prepared[index] = result
                _record_prepared(settings[index], result)
            bar.update(1)
    bar.close()

    work: list[Job] = []
    for index, p in sorted(prepared.items()):
        s, cfg = settings[index], p.config
        for name in cfg.methods:
            if name in p.costs:
                work += [
                    ("run", index, name, seed)
                    for seed in cfg.seeds
                    if not (s.has(f"{name}/{seed}/c") and s.has(f"{name}/{seed}/tf"))
                ]
        if cfg.cm4:
            work += [
                ("m4", index, n, None)
                for n in cfg.methods
                if n in p.costs and not s.method(n).get("m4")
            ]
    bar = tqdm(total=len(work), desc="runs", unit="run", disable=not progress)
    calls = (delayed(_run_job)(job, prepared[job[1]], cache_dir, threads) for job in work)
    for job, result, times in parallel(calls) if jobs > 1 else map(_call, calls):
        kind, index, method, seed = job
        bar.set_postfix_str(
            f"{configs[index].setting_id()} {method or kind} {'' if seed is None else seed}"
        )
        _record_job(settings[index], configs[index], job, result, times)
        bar.update(1)
    bar.close()

    total = time.perf_counter() - started
    for index, p in prepared.items():
        _finish_setup(settings[index], p, out_dir, total)
    store.save()
    if report:
        render.write_report(store.path, out_dir)
    return store.path


def _call(call: tuple[Any, tuple[Any, ...], dict[str, Any]]) -> Any:
    """Run one joblib `delayed` call here (one job: no worker processes)."""
    function, args, kwargs = call
    return function(*args, **kwargs)


def _pretrain_key(cfg: BenchConfig) -> tuple[Any, ...]:
    spec = cfg.task_spec()
    return (spec.source, spec.arch, spec.alpha, spec.size, spec.channels, cfg.pretrain_epochs)


def _record_prepared(s: SettingStore, p: PreparedSetting) -> None:
    for name, reason in p.skipped.items():
        s.skip(name, None, "no-match", reason)
    for name, costs in p.costs.items():
        old = s.method(name)
        info = {**old, **costs}
        if "high_water" in old.get("ram", {}):  # measured by the runs kept
            info["ram"]["high_water"] = old["ram"]["high_water"]
        s.data["methods"][name] = info
    zero = p.zero_shot
    zero["fingerprint"] = p.config.run_fingerprint("zero_shot")
    s.add_run(zero)
    timing = s.data["setup"].setdefault("timing", {})
    for key, value in p.timing.items():
        timing[key] = round(value, 1)


def _record_job(
    s: SettingStore, cfg: BenchConfig, job: Job, result: Any, times: tuple[float, float]
) -> None:
    kind, _, method, seed = job
    wall, cpu = times
    timing = s.data["setup"].setdefault("timing", {})
    timing_key = {"run": "fine_tuning_s", "m4": "cm4_s", "scratch": "scratch_s"}[kind]
    timing[timing_key] = round(timing.get(timing_key, 0.0) + wall, 1)
    cpu_key = timing_key.replace("_s", "_cpu_s")
    timing[cpu_key] = round(timing.get(cpu_key, 0.0) + cpu, 1)
    if isinstance(result, str):
        s.skip(method or kind, seed, "error", result)
        return
    if kind == "run":
        assert method is not None
        c_run, tf_run, memory = result
        info = s.method(method)
        info["ram"]["high_water"] = max(memory["high_water"], info["ram"].get("high_water", 0))
        info["runtime"] = memory
        s.data["methods"][method] = info
        for run in (c_run, tf_run):
            run["fingerprint"] = cfg.run_fingerprint(method)
        c_run["wall_s"] = round(wall, 2)
        c_run["cpu_s"] = round(cpu, 2)
        s.data["runs"] = [r for r in s.data["runs"] if r.get("key") != c_run["key"]]
        s.data["runs"].append(c_run)
        s.add_run(tf_run)
    elif kind == "m4":
        assert method is not None
        info = s.method(method)
        info["m4"] = result
        info["m4_fingerprint"] = cfg.m4_fingerprint(method)
        if result.get("fits"):
            info["flash"]["code"] = result["code"]["text"]
            info["flash"]["runtime_code"] = result["library_text"]
        s.set_method(method, info)
    else:
        result["fingerprint"] = cfg.run_fingerprint("scratch")
        result["cpu_s"] = round(cpu, 2)
        s.add_run(result)


def _finish_setup(s: SettingStore, p: PreparedSetting, out_dir: Path, total_s: float) -> None:
    """The setting's setup text, for the report."""
    cfg = p.config
    methods = s.data["config"]["methods"]
    setup = dict(p.data_setup)
    if cfg.model_path is None:
        setup["spec"] = asdict(cfg.task_spec())
    setup["host"] = _host_setup()
    rates = "; ".join(f"{METHODS[m].label}: {METHODS[m].optimizer_text()}" for m in methods)
    schedule = (
        "falling linearly to 0 over the run (HF's linear schedule)"
        if cfg.lr_schedule == "linear"
        else "constant"
    )
    if cfg.quantized_forward:
        schedule += ", every layer output but the logits fake-quantized to int8 (quantized forward)"
    setup["training"] = (
        f"{cfg.epochs} epochs, batch {cfg.batch_size}, optimizer per method ({rates}), the "
        f"learning rate {schedule}; the C runtime and TensorFlow see the same samples in the "
        f"same order from the same initial parameters; host time per step is the median over "
        f"all steps"
    )
    setup["tuning"] = sweep.tuning_text(out_dir, methods) or (
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
    timing = dict(s.data["setup"].get("timing", {}))
    timing["total_s"] = round(total_s, 1)
    setup["timing"] = {k: v for k, v in timing.items() if not math.isnan(v)}
    setup["model_file"] = str(p.model_file.relative_to(out_dir))
    s.data["setup"] = setup
