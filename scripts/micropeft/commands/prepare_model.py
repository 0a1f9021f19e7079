"""`micropeft prepare-model`: model -> int8 .tflite -> checked -> method -> plan.

Writes into --out: model.tflite (what the device stores: the int8 model cut
after the frozen prefix, see tflite_graph.device_model), full.tflite (the whole
int8 model), plan.bin (the plan blob) and summary.json (the memory table's
figures and what produced them).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from micropeft.commands import (
    output_folder,
    parse_range,
    read_tflite,
    refuse_device_model,
    removed_on_error,
)
from micropeft.deploy import pack
from micropeft.errors import UserError
from micropeft.files import write_atomic
from micropeft.planning import config, methods, plan
from micropeft.prep import convert, datasets, models, tflite_graph
from micropeft.prep.convert import quiet_native_stderr

ARCHS = ("mobilenet_v1", "mobilenet_v2", "tiny_cnn", *models.SERIES_ARCHS)
# Pretraining data when --pretrain-dataset is not given: images, or sensor series.
DEFAULT_PRETRAIN = {"image": "animal-mnist", "series": "japanese-vowels"}


def register(subparsers: argparse._SubParsersAction) -> None:

    parser = subparsers.add_parser(
        "prepare-model",
        help="convert a model to int8, check it in TFLM, mark the method, plan the memory",
        description="Build (and pretrain, cached) a built-in MobileNet, or take a Keras or "
        ".tflite model; convert to full int8; check TFLM against TFLite; apply the PEFT "
        "method; plan the training arena; print the memory table; write the device model, "
        "the plan and a JSON summary.",
    )
    src = parser.add_argument_group("model source (one of)")
    src.add_argument("--arch", choices=ARCHS, default=None, help="built-in (default mobilenet_v1)")
    src.add_argument("--keras", help="a Keras model file (.keras/.h5) to convert")
    src.add_argument("--tflite", help="an int8 .tflite model to use as is")
    b = parser.add_argument_group("built-in model")
    b.add_argument("--alpha", type=float, default=0.25, help="width multiplier (default 0.25)")
    b.add_argument(
        "--size",
        type=int,
        default=32,
        help="input height and width, or a 1-D arch's length T (input T x 1 x C; default 32)",
    )
    b.add_argument(
        "--channels",
        type=int,
        help="input channels (default 1, 3 with --imagenet; a 1-D arch: the pretraining dataset's)",
    )
    b.add_argument(
        "--pretrain-dataset",
        help="source dataset for pretraining and calibration (default animal-mnist; "
        "japanese-vowels for a 1-D arch)",
    )
    b.add_argument("--pretrain-epochs", type=int, default=12, help="default 12")
    b.add_argument("--imagenet", action="store_true", help="start from Keras ImageNet weights")
    b.add_argument("--no-cache", action="store_true", help="pretrain again, ignore the cache")
    parser.add_argument(
        "--num-classes",
        type=int,
        help="classes of the target task: a fresh head replaces the pretrained one if different",
    )
    parser.add_argument(
        "--input-range",
        help="float range the model expects for pixels 0..1 (default 0,1; -1,1 with --imagenet)",
    )
    config.add_method_arguments(parser)
    parser.add_argument(
        "--prefix-cache",
        default="0",
        help="RAM the sample gives to caching prefix outputs, counted in the device total "
        "(CONFIG_PEFT_SAMPLE_CACHE_SIZE, e.g. 24k; default 0)",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(handler=run)


@dataclass
class Prepared:
    full_model: bytes
    device_model: bytes
    plan: Any
    summary: dict[str, Any]


def _source_model(args: argparse.Namespace) -> tuple[bytes, dict[str, Any]]:
    """The full int8 .tflite and facts about where it came from."""

    chosen = [s for s in (args.arch, args.keras, args.tflite) if s]
    if len(chosen) > 1:
        raise UserError("give one model source: --arch, --keras or --tflite")
    if args.tflite:
        path = Path(args.tflite)
        refuse_device_model(path)
        model_bytes = read_tflite(path, "--tflite", parse="whole")
        rng = parse_range(args.input_range, (0.0, 1.0))
        return model_bytes, {"source": str(path), "input_range": list(rng)}

    if args.keras:
        model = models.load_keras_model(args.keras)
        shape = models.input_shape(model)
        rng = parse_range(args.input_range, (0.0, 1.0))
        info: dict[str, Any] = {"source": args.keras, "input_range": list(rng)}
    else:
        arch = args.arch or "mobilenet_v1"
        series = arch in models.SERIES_ARCHS
        source = _pretrain_source(args, series)
        if args.channels is not None and args.channels < 1:
            raise UserError(f"--channels must be at least 1, not {args.channels}")
        if series:
            channels = args.channels or int(datasets.load_source(source, series=True).x.shape[-1])
        else:
            channels = args.channels or (3 if args.imagenet else 1)
        cfg = models.PretrainConfig(
            arch=arch,
            alpha=args.alpha,
            size=args.size,
            channels=channels,
            dataset=source,
            epochs=args.pretrain_epochs,
            seed=args.seed or 0,
            imagenet=args.imagenet,
        )
        if cfg.epochs < 0:
            raise UserError("--pretrain-epochs must be >= 0")
        model, meta = models.pretrained(cfg, use_cache=not args.no_cache)
        if args.num_classes and args.num_classes != len(meta["classes"]):
            model = models.replace_head(model, args.num_classes, cfg.seed)
        shape = models.input_shape_for(arch, args.size, channels)
        rng = parse_range(args.input_range, tuple(meta["input_range"]))
        info = {
            "source": f"{arch} alpha {args.alpha:g} size {args.size}",
            "pretrain": {k: meta[k] for k in ("dataset", "test_accuracy", "config")},
            "input_range": list(rng),
        }
    source = _pretrain_source(args, datasets.is_series(shape))
    rep = datasets.representative(source, shape, 256, 0)
    return convert.to_int8_tflite(model, datasets.to_model_range(rep, rng)), info


def _pretrain_source(args: argparse.Namespace, series: bool) -> str:
    """--pretrain-dataset, or the default for an image or a (T, 1, C) series model."""
    return args.pretrain_dataset or DEFAULT_PRETRAIN["series" if series else "image"]


def prepare(args: argparse.Namespace, cfg: Any) -> Prepared:

    full, info = _source_model(args)
    graph = tflite_graph.graph_from_tflite(full, name=Path(args.out).name)
    inp = graph.tensors[graph.input]
    classes = graph.tensors[graph.output].size
    if args.tflite and args.num_classes and args.num_classes != classes:
        raise UserError(
            f"the .tflite outputs {classes} classes, not --num-classes {args.num_classes}"
        )

    # TFLM vs TFLite reference kernels on a few random int8 inputs.
    rng = np.random.default_rng(0)
    samples = rng.integers(-128, 128, (4, *inp.shape)).astype(np.int8)
    check = convert.check_tflm_matches_tflite(full, samples)

    methods.apply_method(graph, cfg)
    split = plan.choose_split(graph)
    device = tflite_graph.device_model_for_graph(full, graph, split)
    the_plan = cfg.plan(graph, device)
    blob = the_plan.to_bytes()
    prefix = convert.run_tflm(device, samples[:1])
    state_bytes = _state_bytes(the_plan)

    breakdown = the_plan.breakdown()
    summary = {
        "model": info["source"],
        **{k: v for k, v in info.items() if k != "source"},
        "input_shape": list(inp.shape),
        "input_quant": {"scale": inp.quant.scale, "zero_point": inp.quant.zero_point},
        "num_classes": classes,
        "layers": len(graph.layers),
        "split_layer": the_plan.split_layer,
        "split_tensor": graph.tensors[the_plan.input_tensor].name,
        "method": cfg.to_dict(),
        "trainable_layers": [
            {"index": i, "name": n, "methods": m} for i, n, m in methods.describe(graph)
        ],
        "tflm_check_max_abs_diff": check.max_abs_diff,
        "ram": {
            "tflm_arena_prefix": prefix.arena_used_bytes,
            "tflm_arena_source": "measured: TFLM recording allocator, host (64-bit) build",
            "train_arena": the_plan.arena_bytes("train"),
            "infer_arena": the_plan.arena_bytes("infer"),
            "train_breakdown": breakdown,
            "train_peak": the_plan.peak_report("train"),
        },
        "flash": {
            "model": len(device),
            "plan": len(blob),
            "state_slot": state_bytes,
        },
        "trainable_parameters": the_plan.trainable_parameters,
        "macs_per_sample": the_plan.macs(),
        "int8_backward": {
            "kconfig": plan.INT8_BACKWARD_KCONFIG if cfg.int8_backward else None,
            "layers": [pl.layer.name for pl in the_plan.int8_backward_layers],
        },
    }
    summary["ram"]["total_train"] = (prefix.arena_used_bytes or 0) + summary["ram"]["train_arena"]
    device_ram = the_plan.device_ram(prefix.arena_used_bytes or 0, _prefix_cache(args))
    summary["ram"]["device"] = device_ram
    summary["ram"]["total_device"] = device_ram["total"]
    return Prepared(full, device, the_plan, summary)


def _prefix_cache(args: argparse.Namespace) -> int:

    value = config.parse_size(getattr(args, "prefix_cache", "0") or "0")
    if value < 0:
        raise UserError("--prefix-cache must be >= 0")
    return value


def _state_bytes(the_plan: Any) -> int:

    return pack.state_size(the_plan.trainable_parameters, the_plan.optimizer.states_per_param)


def _kib(n: int | None) -> str:
    return "?" if n is None else f"{n:>9,d} B  {n / 1024:7.1f} KiB"


def memory_table(summary: dict[str, Any]) -> str:
    ram, flash, macs = summary["ram"], summary["flash"], summary["macs_per_sample"]
    capacity = int(summary["method"].get("batch_capacity", 1))
    rows = [
        f"memory for {summary['model']}, input {'x'.join(map(str, summary['input_shape']))}, "
        f"method {summary['method']['method']}, split before layer {summary['split_layer']}",
        f"  RAM  TFLM arena, frozen prefix     {_kib(ram['tflm_arena_prefix'])}"
        "   (measured, host TFLM)",
    ]
    for part, value in ram["train_breakdown"].items():
        if part != "total":
            rows.append(f"       training: {part:<19}{_kib(value)}")
    rows += [
        f"       training arena total       {_kib(ram['train_arena'])}"
        + (f"   (batch capacity {capacity})" if capacity > 1 else ""),
        f"       TFLM + training            {_kib(ram['total_train'])}",
        f"       state buffer               {_kib(ram['device']['state_buffer'])}",
        f"       prefix cache               {_kib(ram['device']['prefix_cache'])}",
        f"       split buffer: TFLM output  {_kib(ram['device']['split_buffer'])}",
        f"       TOTAL DEVICE RAM           {_kib(ram['total_device'])}",
        f"       inference arena (runtime)  {_kib(ram['infer_arena'])}",
        f"  FLASH device model             {_kib(flash['model'])}",
        f"       plan                       {_kib(flash['plan'])}",
        f"       trained state (per slot)   {_kib(flash['state_slot'])}",
        f"  trainable parameters           {summary['trainable_parameters']:>9,d}",
        f"  MACs per training sample       prefix forward {macs['prefix_forward']:,d}, "
        f"forward {macs['forward']:,d}, backward {macs['backward']:,d}",
    ]
    rows += ["  " + line for line in ram["train_peak"]]
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads

    out = output_folder(args.out)
    if args.num_classes is not None and args.num_classes < 2:
        raise UserError(f"--num-classes must be at least 2, not {args.num_classes}")
    cfg = config.config_from_args(args)

    with quiet_native_stderr():
        prepared = prepare(args, cfg)
    summary = prepared.summary
    print(memory_table(summary))
    for entry in summary["trainable_layers"]:
        # TFLite names fused tensors "a;b;c"; the first part names the layer well enough.
        short = entry["name"].split(";")[0]
        print(f"  trains layer {entry['index']:3d} {entry['methods']:<22} {short}")
    int8 = summary["int8_backward"]
    if int8["kconfig"]:
        print(
            f"  int8 backward path on {len(int8['layers'])} frozen layer(s); the firmware "
            f"needs {int8['kconfig']}=y (its default; pack writes it into <board>.conf)"
        )
    budget = cfg.ram_budget
    if budget is not None and summary["ram"]["total_device"] > budget:
        ram = summary["ram"]
        parts = ", ".join(f"{k} {v:,d}" for k, v in ram["device"].items() if k != "total")
        step, live = prepared.plan.peak("train")
        named = "; ".join(f"{prepared.plan.buffer_name(b)} {b.size:,d}" for b in live[:4])
        raise UserError(
            f"needs {ram['total_device']:,d} B of device RAM ({parts}) > budget {budget:,d} B; "
            f"the training arena peaks at {prepared.plan.step_name(step)} with {named}: "
            "try --update layer, a lower --r, fewer --target-modules, or a smaller --size "
            "(nothing written)"
        )
    summary["ram_budget"] = budget
    with removed_on_error(out):
        write_atomic(out / "full.tflite", prepared.full_model)
        write_atomic(out / "model.tflite", prepared.device_model)
        write_atomic(out / "plan.bin", prepared.plan.to_bytes())
        write_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    print(f"wrote {out}/model.tflite, full.tflite, plan.bin, summary.json")
    return 0
