"""What the benchmark runs: the built-in tasks, the benchmarked methods and their
optimizers, the configuration (whose fingerprint keys resumable results) and the
preparation of a task's int8 model and target data.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from micropeft.errors import UserError
from micropeft.eval.results import optimizer_text
from micropeft.files import write_atomic
from micropeft.host import reference
from micropeft.planning import config
from micropeft.planning.methods import LR_SCHEDULES, MethodConfig
from micropeft.planning.plan import OptimizerConfig
from micropeft.prep import convert, datasets, models, tflite_graph

# ---------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class TaskSpec:
    """A built-in task: pretrain on `source`, fine-tune on `target` with a new head.

    `size` is the image side, or the length T of a 1-D arch's (T, 1, C) input."""

    name: str
    source: str
    target: str
    description: str
    arch: str = "mobilenet_v1"
    alpha: float = 0.25
    size: int = 32
    channels: int = 1
    # Pretraining runs this many times the bench's pretraining epochs: a source of a few
    # hundred samples needs more passes for as many steps (vowels: 12 epochs reach 55 %
    # held-out accuracy, 30 reach 74 %).
    pretrain_epoch_factor: int = 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return models.input_shape_for(self.arch, self.size, self.channels)

    @property
    def shape_text(self) -> str:
        """How the setup text names the fitted input."""
        h, w, c = self.input_shape
        if datasets.is_series((h, w, c)):
            return f"series resampled to {h} steps (linear interpolation) x {c} channels"
        return f"images resized to {h}x{w}x{c}"


TASKS: dict[str, TaskSpec] = {
    "animal-to-digits": TaskSpec(
        "animal-to-digits",
        "animal-mnist",
        "digits",
        "pretrain on Animal-MNIST (animal silhouettes), fine-tune on scikit-learn's "
        "handwritten digits: another domain and another label set",
    ),
    "animal-to-textures": TaskSpec(
        "animal-to-textures",
        "animal-mnist",
        "skimage-patches",
        "pretrain on Animal-MNIST, fine-tune on crops of scikit-image's sample images "
        "(texture and scene recognition, 8 classes)",
    ),
    "digits-to-animal": TaskSpec(
        "digits-to-animal",
        "digits",
        "animal-mnist",
        "pretrain on scikit-learn's digits, fine-tune on Animal-MNIST (the reverse transfer)",
    ),
    # A 1-D sensor task: the device meets users its model never heard. Both halves share
    # one per-channel scaling (one sensor); every utterance (7 to 29 frames) is stretched
    # to 32 frames over its own duration.
    "vowels-new-speakers": TaskSpec(
        "vowels-new-speakers",
        "japanese-vowels-a",
        "japanese-vowels-b",
        "sensor series: pretrain a 1-D MobileNetV1 on speakers 1-5 of sktime's JapaneseVowels "
        "(12 LPC cepstrum coefficients per frame), fine-tune on the 4 speakers it never heard "
        "(6-9): adapting to new users",
        arch="mobilenet_v1_1d",
        size=32,
        channels=12,
        pretrain_epoch_factor=3,
    ),
}
DEFAULT_TASK = "animal-to-digits"
# The architectures a task can be benchmarked with (models.build's names).
ARCHS = ("mobilenet_v1", "mobilenet_v2", "tiny_cnn")


@dataclass(frozen=True)
class MethodSpec:
    """One benchmarked method: a shipped recipe (micropeft/recipes/NAME.yaml) as
    planning.config loads it for prepare-model --config NAME, under its name."""

    name: str
    config: MethodConfig

    @classmethod
    def from_recipe(cls, name: str) -> MethodSpec:
        """The shipped recipe `name`, as prepare-model --config NAME reads it."""
        return cls(name, config.load_config(name))

    @property
    def label(self) -> str:
        return self.config.label or self.name

    @property
    def description(self) -> str:
        return self.config.description

    @property
    def update(self) -> str:
        return self.config.update

    @property
    def optimizer(self) -> str:
        return self.config.optimizer

    @property
    def lr(self) -> float:
        return float(self.config.lr)

    def with_optimizer(self, optimizer: str, lr: float) -> MethodSpec:
        """The same recipe trained with another optimizer or rate (the sweep's grid)."""
        return replace(self, config=replace(self.config, optimizer=optimizer, lr=lr))

    def for_run(self, cfg: BenchConfig, train_samples: int) -> MethodSpec:
        """The recipe as a bench run of `train_samples` samples trains it, with the run's
        schedule: "linear" decays over its updates (epochs x batches per epoch); with the
        run's quantized forward (BenchConfig.quantized_forward) every method trains with it."""
        if cfg.lr_schedule == "constant":
            run = replace(self.config, lr_schedule="constant", lr_decay_steps=None)
        else:
            updates = cfg.epochs * -(-train_samples // self.batch_size(cfg))
            run = replace(self.config, lr_schedule="linear", lr_decay_steps=updates)
        if cfg.quantized_forward:
            run = replace(run, quantized_forward=True)
        return replace(self, config=run)

    def plan(self, graph: Any, model: bytes, seed: int) -> Any:
        """The method's plan: MethodConfig.plan, the path prepare-model takes."""
        return self.config.plan(graph, model, seed)

    def batch_size(self, cfg: BenchConfig) -> int:
        """Samples per step: the bench's batch, one sample for per-layer updates."""
        return 1 if self.update == "layer" else cfg.batch_size

    def optimizer_text(self) -> str:
        """How the report names this method's optimizer."""
        return optimizer_text(asdict(self.optimizer_config()))

    def optimizer_config(self) -> OptimizerConfig:
        return self.config.optimizer_config()

    def fingerprint_fields(self) -> dict[str, Any]:
        """The recipe's fields that decide its training (not its label or description,
        nor the epochs and batch a bench sets for every method, nor the batch capacity:
        bench trains with a capacity of its batch, train.run_plan)."""
        fields = self.config.to_dict()
        for name in ("label", "description", "epochs", "batch_size", "batch_capacity"):
            fields.pop(name)
        return fields

    def prepare_model_command(self, model_file: str | Path) -> str:
        """The command that builds this recipe's plan for `model_file` (bench's int8
        model, artifacts/model.tflite) for a device, as bench measured it (seed 0)."""
        name = self.name
        decay = self.config.lr_decay_steps
        options = "" if decay is None else f" --lr-schedule linear --lr-decay-steps {decay}"
        if self.config.quantized_forward:
            options += " --quantized-forward"
        return (
            f"micropeft prepare-model --tflite {model_file} --config {name}{options} --out {name}"
        )


# The shipped recipes in the order bench runs and reports them (each is one file; a test
# holds this list to the folder).
BENCH_RECIPES = (
    "full",
    "last_layer",
    "bitfit",
    "scale_shift",
    "lora_r2",
    "lora_r4",
    "lora_r8",
    "sparse",
    "lora_bitfit",
    "dora_r4",
    "ia3",
    "lora_r4_lean",
    "bitfit_lean",
    "scale_shift_lean",
    "lora_r4_int8bwd",
    "bitfit_int8bwd",
)
METHODS: dict[str, MethodSpec] = {name: MethodSpec.from_recipe(name) for name in BENCH_RECIPES}
# What bench runs unless told (--methods): every method family, without the per-sample
# `*_lean` variants (update "layer", one sample per step: 60-100 s of CPU per seed each on
# the default task, measured, against 15 s for LoRA r=4), which `--methods` still runs.
DEFAULT_METHODS = tuple(name for name in BENCH_RECIPES if METHODS[name].update != "layer")
# How each method's optimizer and learning rate were chosen: `micropeft bench --sweep`
# (eval/sweep.py) trains every method in the C runtime with each optimizer and rate of its
# grid on a validation split carved from the target's TRAINING split (never the test split)
# and scores it there, mean over seeds; the best wins, a near tie (under a point) goes to the
# smaller rate, which keeps C and TF closer. The pooled features on digits share a large
# common offset (squared norm about 100-900 against a spread of about 20-50): plain SGD on the
# head is badly conditioned (small rates do not learn, large ones diverge), which Adam's
# per-coordinate scaling fixes. Adam is used only where the training stays in the last layers
# (C and TF agree step for step there); full, BitFit and scale+shift keep SGD (momentum 0.9).

# Shallow back-propagation: the C and TF trajectories stay step-for-step comparable.
QUICK_METHODS = ("last_layer", "lora_r4", "sparse")


@dataclass
class BenchConfig:
    """Everything that decides the numbers (its fingerprints key the resumable results)."""

    task: str = DEFAULT_TASK
    # The model and input size, when not the task's own (a suite's grid sets them).
    arch: str | None = None
    alpha: float | None = None
    size: int | None = None
    model_path: str | None = None  # a user's int8 .tflite (with --dataset)
    dataset: str | None = None  # a user's dataset source (datasets.load_source)
    input_range: tuple[float, float] = (0.0, 1.0)  # of a user's model (built-ins know theirs)
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 5
    batch_size: int = 16
    # Like the epochs and batch, the run's schedule (every method's): "linear" (HF Trainer's
    # default) falls to 0 over the run, so that each run ends settled rather than at a
    # random point of SGD's noise, where two float-close runs (C, TF) end points apart.
    lr_schedule: str = "linear"
    # Every method with the quantized forward (PlanFlag.QUANTIZED_FORWARD: activations
    # fake-quantized to int8 in training and inference, so the merged int8 model agrees).
    quantized_forward: bool = False
    # Of digits' 1,258 training and 539 test samples (test fraction 0.3): `make bench` must
    # finish within 10 minutes on 2 cores from a cold cache (fine-tuning time grows with
    # train_samples x epochs; README, "The benchmark", has the measured times).
    train_samples: int = 1000
    test_samples: int = 500
    test_fraction: float = datasets.TEST_FRACTION
    pretrain_epochs: int = 12  # prepare-model's default: both share the pretraining cache
    scratch: bool = True
    # Seeds of the from-scratch baseline (the first ones of `seeds`): a whole-network Keras
    # training, about 80 s of CPU per seed on the default task.
    scratch_seeds: int = 1
    cm4: bool = True
    cm4_samples: int = 16
    quick: bool = False

    def check(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UserError(
                f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}"
            )
        if not self.methods:
            raise UserError("no method to benchmark")
        if self.model_path is None and self.task not in TASKS:
            raise UserError(f"unknown task {self.task!r}; choose from {', '.join(TASKS)}")
        if self.arch is not None and self.arch not in ARCHS:
            raise UserError(f"unknown architecture {self.arch!r}; choose from {', '.join(ARCHS)}")
        if (self.model_path is None) != (self.dataset is None):
            raise UserError("--model and --dataset go together (a .tflite and its dataset)")
        if not self.seeds:
            raise UserError("at least one seed is needed")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(
                f"unknown lr-schedule {self.lr_schedule!r}; choose from {', '.join(LR_SCHEDULES)}"
            )
        for name in ("epochs", "batch_size", "train_samples", "test_samples", "cm4_samples"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"{name.replace('_', '-')} must be at least 1")

    def source_epochs(self) -> int:
        """Epochs the built-in task's source model is pretrained for."""
        task = TASKS.get(self.task)
        return self.pretrain_epochs * (task.pretrain_epoch_factor if task else 1)

    def task_spec(self) -> TaskSpec:
        """The built-in task with this configuration's model and input size."""
        spec = TASKS[self.task]
        changes = {k: getattr(self, k) for k in ("arch", "alpha", "size") if getattr(self, k)}
        return replace(spec, **changes) if changes else spec

    def setting_id(self) -> str:
        """The setting's name in the results file: task, model and input size."""
        if self.model_path is not None:
            return f"user/{Path(self.model_path).name}"
        spec = self.task_spec()
        return f"{spec.name}/{spec.arch}-{spec.alpha:g}/{spec.size}"

    def setting_fingerprint(self) -> str:
        """What decides every run of the setting: the task's data and model, the
        pretraining, the training length and batch (not which methods or seeds run)."""
        data = asdict(self)
        for name in (
            "methods",
            "seeds",
            "cm4",
            "scratch",
            "scratch_seeds",
            "arch",
            "alpha",
            "size",
        ):
            data.pop(name)
        if not self.quantized_forward:
            data.pop("quantized_forward")  # the settings measured before the option keep theirs
        if self.model_path is None:
            data["task_spec"] = asdict(self.task_spec())
        return _digest(data)

    def run_fingerprint(self, method: str) -> str:
        """What decides a run of `method` (any seed): the setting and the method's recipe
        (the fields that train, not its label or description). "scratch" and "zero_shot"
        depend on the setting alone; the Cortex-M4F count also on `cm4_samples`."""
        if method in ("scratch", "zero_shot"):
            return _digest({"setting": self.setting_fingerprint(), "baseline": method})
        recipe = METHODS[method].fingerprint_fields()
        return _digest({"setting": self.setting_fingerprint(), "recipe": recipe})

    def m4_fingerprint(self, method: str) -> str:
        return _digest({"run": self.run_fingerprint(method), "cm4_samples": self.cm4_samples})


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def quick_config(**overrides: Any) -> BenchConfig:
    """The smoke configuration CI runs: tiny, but every part of the pipeline."""
    cfg = BenchConfig(
        methods=list(QUICK_METHODS),
        seeds=[0],
        epochs=2,
        batch_size=8,
        train_samples=240,
        test_samples=200,
        pretrain_epochs=1,
        cm4_samples=2,
        quick=True,
    )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg


@dataclass(frozen=True)
class SuiteSpec:
    """A grid of settings: tasks x models x input sizes, each with every method x seed."""

    description: str
    tasks: tuple[str, ...] = ()  # empty: every built-in task
    models: tuple[tuple[str, float], ...] = ()  # (arch, alpha); empty: each task's own
    sizes: tuple[int, ...] = ()  # empty: each task's own
    # (arch, size) pairs left out. Device RAM measured with the planner (untrained weights,
    # KiB, last layer / LoRA r=4 + head): MobileNetV1 0.25 at 96: 124 / 218 (fits 256 KB);
    # MobileNetV2 0.35 at 96: 412 / 512, its cheapest method beyond even what 64 needs
    # (336 / 404), so 96 is left out for V2.
    too_large: tuple[tuple[str, int], ...] = ()


SUITE_MODELS = (("mobilenet_v1", 0.25), ("mobilenet_v2", 0.35))
SUITES: dict[str, SuiteSpec] = {
    "full": SuiteSpec(
        "every built-in task x MobileNetV1 alpha 0.25 and MobileNetV2 alpha 0.35 x inputs "
        "32, 64 and 96 (96 where it fits)",
        models=SUITE_MODELS,
        sizes=(32, 64, 96),
        too_large=(("mobilenet_v2", 96),),
    ),
    "tasks": SuiteSpec("every built-in task with its own model and input size"),
}


def suite_configs(name: str, base: BenchConfig) -> list[BenchConfig]:
    """The settings of suite `name` (a SUITES name, or a task name: that task over the
    full suite's models and sizes), each a copy of `base` (methods, seeds, epochs...)."""
    if name in SUITES:
        suite = SUITES[name]
    elif name in TASKS:
        suite = replace(SUITES["full"], tasks=(name,))
    else:
        raise UserError(
            f"unknown suite {name!r}; choose from {', '.join(SUITES)} or a task "
            f"({', '.join(TASKS)})"
        )
    out = []
    for task in suite.tasks or tuple(TASKS):
        models = suite.models or ((TASKS[task].arch, TASKS[task].alpha),)
        for arch, alpha in models:
            for size in suite.sizes or (TASKS[task].size,):
                if (arch, size) in suite.too_large:
                    continue
                # A series task (a 1-D net) runs the same model families with (k, 1) kernels.
                series = TASKS[task].arch.endswith("_1d") and not arch.endswith("_1d")
                model = f"{arch}_1d" if series else arch
                out.append(replace(base, task=task, arch=model, alpha=alpha, size=size))
    return out


# ---------------------------------------------------------------------------
# Task preparation: the int8 model and the target data


@dataclass
class TaskData:
    """The int8 model to fine-tune and the target data, fitted to its input."""

    model: bytes
    keras_builder: Any  # () -> a fresh, randomly initialised Keras model (scratch), or None
    x_train: np.ndarray  # float, the model's input range
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    setup: dict[str, Any]


@contextmanager
def timed(timing: dict[str, float], key: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timing[key] = timing.get(key, 0.0) + time.perf_counter() - start


def _subsample(
    x: np.ndarray, y: np.ndarray, limit: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` samples, stratified, in a fixed order."""
    if len(y) <= limit:
        return x, y
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(y)), train_size=limit, stratify=y, random_state=seed)
    keep = np.sort(keep)
    return x[keep], y[keep]


def prepare_task(cfg: BenchConfig, cache_dir: Path, timing: dict[str, float]) -> TaskData:

    if cfg.model_path is not None:
        return _user_task(cfg, timing)
    task = cfg.task_spec()
    with timed(timing, "pretrain_s"):
        prepared = _pretrained_target_model(task, cfg, cache_dir)
    data = _target_data(task, cfg, prepared["input_range"], prepared["model"])
    data.setup = {  # in the report's order
        "task": data.setup["task"],
        "source": prepared["source_setup"],
        "target": data.setup["target"],
        "model": prepared["model_setup"],
    }
    return data


def scratch_task(cfg: BenchConfig) -> TaskData:
    """A built-in task's target data and Keras builder without its int8 model (model is
    empty): all the from-scratch baseline needs, so it can run before the pretraining ends."""
    if cfg.model_path is not None:
        raise UserError("the from-scratch baseline needs a built-in task (no --model)")
    task = cfg.task_spec()
    return _target_data(task, cfg, _pretrain_config(task, cfg).input_range, b"")


def _target_data(
    task: TaskSpec, cfg: BenchConfig, input_range: tuple[float, float], model: bytes
) -> TaskData:
    """The target dataset of a built-in task, fitted to the model's input and range, and
    split and subsampled as every bench run sees it."""
    shape = task.input_shape
    target = datasets.load_source(task.target, seed=0, series=datasets.is_series(shape))
    train, test = datasets.stratified_split(target.y, cfg.test_fraction, seed=0)
    x = datasets.to_model_range(datasets.fit_images(target.x, shape), input_range)
    x_train, y_train = _subsample(x[train], target.y[train], cfg.train_samples, 0)
    x_test, y_test = _subsample(x[test], target.y[test], cfg.test_samples, 0)
    setup = {
        "task": {"name": task.name, "description": task.description},
        "target": (
            f"{task.target}, {target.num_classes} classes, {task.shape_text}, scaled to "
            f"[{input_range[0]:g}, "
            f"{input_range[1]:g}]; stratified split, {len(y_train)} training samples "
            f"(of {len(train)}), {len(y_test)} test samples (of {len(test)})"
        ),
    }

    def builder() -> Any:

        return models.build(
            task.arch, task.alpha, task.size, task.channels, target.num_classes, imagenet=False
        )

    return TaskData(
        model,
        builder,
        x_train,
        y_train.astype(np.int64),
        x_test,
        y_test.astype(np.int64),
        target.num_classes,
        setup,
    )


def _user_task(cfg: BenchConfig, timing: dict[str, float]) -> TaskData:

    path = Path(str(cfg.model_path))
    if not path.is_file():
        raise UserError(f"model file not found: {path}")
    model = path.read_bytes()
    info = tflite_graph.input_info(model)
    classes = tflite_graph.output_classes(model)
    blob_file = datasets.prepared_dataset_file(str(cfg.dataset))
    if blob_file is not None:
        # prepare-dataset's output: its int8 samples and its split, as the device gets them.
        blob = datasets.parse_dataset_blob(blob_file.read_bytes())
        if tuple(blob.x_train.shape[1:]) != info.shape or blob.quant != info.quant:
            raise UserError(
                f"{blob_file} was not prepared for {path} (input shape or quantization "
                "differ): run prepare-dataset --model with this model"
            )
        if blob.num_classes != classes:
            raise UserError(
                f"{blob_file} has {blob.num_classes} classes but {path} outputs {classes}"
            )
        scale, zero_point = blob.quant.scale, blob.quant.zero_point
        x_train, y_train = _subsample(
            reference.dequantize(blob.x_train, scale, zero_point),
            blob.y_train,
            cfg.train_samples,
            0,
        )
        x_test, y_test = _subsample(
            reference.dequantize(blob.x_test, scale, zero_point),
            blob.y_test,
            cfg.test_samples,
            0,
        )
        split = f"prepare-dataset's split of {blob_file}"
    else:
        data = datasets.load_source(str(cfg.dataset), seed=0, series=datasets.is_series(info.shape))
        datasets.check_against_model(data, classes)
        train, test = datasets.stratified_split(data.y, cfg.test_fraction, seed=0)
        x = datasets.to_model_range(datasets.fit_images(data.x, info.shape), cfg.input_range)
        x_train, y_train = _subsample(x[train], data.y[train], cfg.train_samples, 0)
        x_test, y_test = _subsample(x[test], data.y[test], cfg.test_samples, 0)
        split = f"{cfg.dataset}, stratified split (test fraction {cfg.test_fraction:g}, seed 0)"
    setup = {
        "task": {"name": "user", "description": f"{path.name} fine-tuned on {cfg.dataset}"},
        "target": f"{split}: {len(y_train)} training, {len(y_test)} test samples, input "
        f"range [{cfg.input_range[0]:g}, {cfg.input_range[1]:g}]",
        "model": f"{path}, {len(model):,} bytes (the user's int8 model, head as given)",
    }
    return TaskData(model, None, x_train, y_train, x_test, y_test, classes, setup)


def _pretrain_config(task: TaskSpec, cfg: BenchConfig) -> models.PretrainConfig:
    return models.PretrainConfig(
        arch=task.arch,
        alpha=task.alpha,
        size=task.size,
        channels=task.channels,
        dataset=task.source,
        epochs=cfg.source_epochs(),
        seed=0,
    )


def _pretrained_target_model(task: TaskSpec, cfg: BenchConfig, cache_dir: Path) -> dict[str, Any]:
    """The int8 target model: the backbone pretrained on the source (models.pretrained,
    cached), a new randomly initialised head for the target's classes, converted to full
    int8 with source images for calibration (the device's model exists before its data)."""

    pcfg = _pretrain_config(task, cfg)
    series = datasets.is_series(task.input_shape)
    classes = datasets.load_source(task.target, seed=0, series=series).num_classes
    key = hashlib.sha256(f"{pcfg.key()}/{classes}/v1".encode()).hexdigest()[:16]
    model_file = cache_dir / f"target-{task.name}-{key}.tflite"
    meta_file = model_file.with_suffix(".json")
    if model_file.is_file() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        model = model_file.read_bytes()
    else:
        keras_model, meta = models.pretrained(pcfg, verbose=0, progress=True)
        target = models.replace_head(keras_model, classes, seed=0)
        rep = datasets.representative(task.source, task.input_shape, 256, 0)
        model = convert.to_int8_tflite(
            target, datasets.to_model_range(rep, tuple(meta["input_range"]))
        )
        meta = {k: meta[k] for k in ("dataset", "test_accuracy", "input_range", "classes")}
        write_atomic(model_file, model)
        write_atomic(meta_file, json.dumps(meta).encode())
    source_setup = (
        f"{task.arch} alpha {task.alpha:g}, {'x'.join(map(str, task.input_shape))}, "
        f"pretrained from random initialisation on {meta['dataset']} "
        f"({len(meta['classes'])} classes) for {pcfg.epochs} epochs (Adam "
        f"{pcfg.lr:g}, {pcfg.schedule} schedule, batch {pcfg.batch_size}, BatchNorm momentum "
        f"{pcfg.bn_momentum:g}, "
        + (
            "no augmentation"
            if not pcfg.augment
            else f"random time shifts of up to {pcfg.shift} steps"
            if series
            else f"random flips and shifts of up to {pcfg.shift} px"
        )
        + f"; cached): {100 * meta['test_accuracy']:.1f} % on its held-out 10 %"
    )
    model_setup = (
        f"the pretrained backbone with a new {classes}-class head (Glorot-uniform, seed 0), "
        f"converted to full int8 (int8 weights and activations; calibrated on 256 source "
        f"{'samples' if series else 'images'}): {len(model):,} bytes"
    )
    return {
        "model": model,
        "input_range": tuple(meta["input_range"]),
        "source_setup": source_setup,
        "model_setup": model_setup,
    }
