"""Method configuration (a recipe) from a YAML file and/or command-line flags.

A recipe is a YAML file in HF PEFT's vocabulary (`r`, `lora_alpha`,
`target_modules`, `modules_to_save`, `bias`, `use_dora`, `peft_type`,
`feedforward_modules`) plus
MethodConfig's own fields (see methods.py), e.g.

    label: LoRA r=4 + head     # how the report names it
    method: lora
    r: 4
    lora_alpha: 8
    target_modules: [last:4:pointwise]
    modules_to_save: [head]    # HF PEFT: trained whole; "head" is our last_layer
    bias: none                 # HF PEFT: "all" / "lora_only" add bitfit
    optimizer: sgd
    lr: 0.01
    act_cache: s8
    update: batch
    int8_backward: false
    quantized_forward: false   # train on the int8 model's activations (merge agreement)
    batch_capacity: 1          # samples one runtime call trains together (RAM grows)

The HF PEFT keys are translated into MethodConfig's fields on load (methods
added to the list, per-method targets), so a loaded configuration has one form.
The shipped recipes (micropeft/recipes/NAME.yaml) are bench's methods; `--config`
takes a recipe's name or a file. Flags given on the command line override it.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from micropeft.errors import UserError
from micropeft.planning import methods
from micropeft.planning.methods import (
    ACT_CACHES,
    LR_SCHEDULES,
    METHODS,
    OPTIMIZERS,
    UPDATES,
    MethodConfig,
)

# The shipped recipes: bench's methods, and what `prepare-model --config NAME` reads.
RECIPES = Path(__file__).resolve().parents[1] / "recipes"

# HF PEFT's keys (LoraConfig, IA3Config): translated into ours on load...
HF_MAPPED = ("peft_type", "use_dora", "bias", "modules_to_save")
HF_PEFT_TYPES = {"LORA": "lora", "IA3": "ia3"}
# ...accepted at HF's default value only (an adapter_config.json carries them all)...
HF_AT_DEFAULT_ONLY: dict[str, Any] = {
    "lora_dropout": 0.0,
    "fan_in_fan_out": False,
    "use_rslora": False,
    "init_lora_weights": True,
    "init_ia3_weights": True,
    "rank_pattern": {},
    "alpha_pattern": {},
    "layers_to_transform": None,
    "layers_pattern": None,
    "exclude_modules": None,
}
# ...or about where the model came from, which the .tflite says instead.
HF_IGNORED = ("task_type", "inference_mode", "base_model_name_or_path", "revision")

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
}


def parse_size(text: str | int) -> int:
    """'160k', '256KB', '1M', '4096' -> bytes (binary units)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise UserError(f"bad size {text!r} (use bytes or a k/M suffix, e.g. 160k)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _method_names(values: dict[str, Any]) -> list[str]:
    method = values.get("method", "lora")
    if method is None:
        return []
    return _split_list(method) if isinstance(method, str) else list(method)


def _hf_peft_type(values: dict[str, Any], source: str) -> None:
    """HF PEFT's peft_type ("LORA", "IA3") names the method when `method` does not."""
    peft_type = values.pop("peft_type", None)
    if peft_type is None:
        return
    method = HF_PEFT_TYPES.get(str(peft_type).upper())
    if method is None:
        raise UserError(
            f"{source}: peft_type {peft_type!r} is not supported (supported: "
            f"{', '.join(HF_PEFT_TYPES)})"
        )
    if "method" in values and method not in _method_names(values):
        raise UserError(f"{source}: peft_type {peft_type} but method {values['method']!r}")
    values.setdefault("method", method)


def _hf_use_dora(values: dict[str, Any], source: str) -> None:
    """HF PEFT's LoraConfig(use_dora=True) is our method dora: lora renamed, targets too."""
    if not values.pop("use_dora", False):
        return
    names = _method_names(values)
    if "lora" not in names:
        raise UserError(f"{source}: use_dora applies to lora, which the method list lacks")
    values["method"] = ["dora" if n == "lora" else n for n in names]
    targets = values.get("target_modules")
    if isinstance(targets, dict) and "lora" in targets:
        values["target_modules"] = {("dora" if k == "lora" else k): v for k, v in targets.items()}


def _add_method(values: dict[str, Any], name: str, targets: list[Any] | None, why: str) -> None:
    """Adds `name` (with its own targets) to the method list: a list of targets that
    applied to every method becomes per method first, so that it keeps its meaning."""
    names = _method_names(values)
    if name in names:
        raise UserError(f"{why} and method {name} both choose what {name} trains: use one")
    current = values.get("target_modules")
    if targets is not None:
        if current is None:
            current = {}
        elif not isinstance(current, dict):
            current = {n: current for n in names if n in methods.DEFAULT_TARGETS}
        values["target_modules"] = {**current, name: targets}
    values["method"] = [*names, name]


def _hf_bias(values: dict[str, Any], source: str) -> None:
    """HF PEFT's bias: "none" | "all" (bitfit on every layer with a bias) | "lora_only"
    (bitfit on the layers lora/dora adapts)."""
    bias = values.pop("bias", None) or "none"
    targets = {"none": None, "all": ["all"], "lora_only": [methods.LORA_LAYERS]}
    if bias not in targets:
        raise UserError(f"{source}: bias must be 'none', 'all' or 'lora_only', not {bias!r}")
    if targets[bias] is not None:
        _add_method(values, "bitfit", targets[bias], f"{source}: bias {bias!r}")


def _hf_modules_to_save(values: dict[str, Any], source: str) -> None:
    """HF PEFT's modules_to_save (layers trained whole, beside the adapters): "head" is our
    last_layer, any other target (name, index, keyword) is sparse on those layers."""
    modules = values.pop("modules_to_save", None)
    if modules is None:
        return
    entries = [modules] if isinstance(modules, (str, int)) else list(modules)
    why = f"{source}: modules_to_save"
    if "head" in entries:
        _add_method(values, "last_layer", None, why)
    others = [entry for entry in entries if entry != "head"]
    if others:
        _add_method(values, "sparse", others, why)


def _hf_unsupported(values: dict[str, Any], source: str) -> None:
    """HF PEFT keys that have no meaning here: accepted at HF's default, refused otherwise."""
    for key, default in HF_AT_DEFAULT_ONLY.items():
        if key in values and values.pop(key) not in (default, None):
            raise UserError(f"{source}: HF PEFT's {key} is not supported (only {default!r})")
    for key in HF_IGNORED:
        values.pop(key, None)


def config_from_dict(data: dict[str, Any], source: str = "configuration") -> MethodConfig:
    """A MethodConfig from a recipe's keys: ours (MethodConfig's fields) and HF PEFT's,
    which are translated into ours here (see docs/recipes.md for the mapping)."""
    known = {f.name for f in fields(MethodConfig)} - {"extra"}
    hf = {*HF_MAPPED, *HF_AT_DEFAULT_ONLY, *HF_IGNORED}
    for key in data:
        if key not in known and key not in hf:
            raise UserError(
                f"{source}: unknown key {key!r}: neither micropeft's nor HF PEFT's "
                f"(micropeft's: {', '.join(sorted(known))}; HF PEFT's: {', '.join(HF_MAPPED)})"
            )
    values = dict(data)
    _hf_unsupported(values, source)
    _hf_peft_type(values, source)
    _hf_use_dora(values, source)
    _hf_bias(values, source)
    _hf_modules_to_save(values, source)
    try:
        if isinstance(values.get("method"), str) and "," in values["method"]:
            values["method"] = _split_list(values["method"])
        if values.get("ram_budget") is not None:
            values["ram_budget"] = parse_size(values["ram_budget"])
        for key, kind in (
            ("r", int),
            ("epochs", int),
            ("batch_size", int),
            ("seed", int),
            ("lr_decay_steps", int),
        ):
            if values.get(key) is not None:
                values[key] = kind(values[key])
        for key in ("lora_alpha", "lr", "momentum"):
            if key in values:
                values[key] = float(values[key])
        for key in ("label", "description"):
            if key in values:
                values[key] = str(values[key]).strip()
    except (TypeError, ValueError) as error:
        raise UserError(f"{source}: bad value ({error})") from error
    cfg = MethodConfig(**values)
    cfg.check()
    return cfg


def recipe_names() -> list[str]:
    """The shipped recipes (micropeft/recipes/NAME.yaml), by name."""
    return sorted(path.stem for path in RECIPES.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe's file: a path as given, else a shipped recipe's name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    if (RECIPES / f"{text}.yaml").is_file() and Path(text).name == text:
        return RECIPES / f"{text}.yaml"
    known = ", ".join(recipe_names())
    if Path(text).name == text and Path(text).suffix not in (".yaml", ".yml"):
        raise UserError(f"unknown recipe {text!r}; known recipes: {known} (or a YAML file)")
    raise UserError(f"configuration file not found: {text} (shipped recipes: {known})")


def load_config(name_or_path: str | Path) -> MethodConfig:
    """A MethodConfig from a YAML file, or from a shipped recipe given by name."""
    import yaml

    file = recipe_path(name_or_path)
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{file}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(data, dict):
        raise UserError(f"{file}: expected a mapping of settings at the top level")
    return config_from_dict(data, str(name_or_path))


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for every MethodConfig field (all optional; they override --config)."""
    group = parser.add_argument_group("fine-tuning method")
    group.add_argument(
        "--config",
        help="a recipe: a shipped one by name (e.g. lora_r4, the recipes bench measures; "
        "see docs/recipes.md) or a YAML file",
    )
    group.add_argument(
        "--method",
        help=f"method or comma-separated combination: {', '.join(METHODS)} (default lora)",
    )
    group.add_argument("--r", "--rank", dest="r", type=int, help="LoRA rank (default 4)")
    group.add_argument("--lora-alpha", type=float, help="LoRA alpha (default 8)")
    group.add_argument(
        "--target-modules",
        help="comma-separated layer names, indices, regexes or keywords "
        "(all, head, pointwise, depthwise, conv, fc, linear, last:N[:KIND])",
    )
    group.add_argument(
        "--feedforward-modules",
        help="ia3 (HF PEFT IA3Config): the target modules whose input, not output, IA3 "
        "scales (the same syntax; a subset of ia3's targets)",
    )
    group.add_argument("--optimizer", choices=OPTIMIZERS, help="default sgd")
    group.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    group.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help="constant (default) or linear: the rate falls to 0 over --lr-decay-steps updates",
    )
    group.add_argument(
        "--lr-decay-steps",
        type=int,
        help="updates of the linear schedule (epochs x batches per epoch of the device's run)",
    )
    group.add_argument("--epochs", type=int, help="default 10")
    group.add_argument("--batch-size", type=int, help="default 16")
    group.add_argument(
        "--ram-budget",
        help="total device RAM (TFLM + training arenas + state, cache and split buffers), "
        "e.g. 160k (default: none)",
    )
    group.add_argument(
        "--act-cache",
        choices=ACT_CACHES,
        help="values kept for backward: s8 (each tensor's int8 quantization, default) or f32",
    )
    group.add_argument(
        "--update",
        choices=UPDATES,
        help="batch: one optimizer step per batch (default); layer: each layer's update "
        "during backward, per sample (no gradient buffers; needs --batch-size 1)",
    )
    group.add_argument(
        "--int8-backward",
        action="store_true",
        default=None,
        help="input gradients through frozen pointwise conv / dense layers with the output "
        "gradient quantized to int8 (SMLAD on DSP cores; the firmware needs "
        "CONFIG_PEFT_INT8_BACKWARD=y, its default)",
    )
    group.add_argument(
        "--quantized-forward",
        action="store_true",
        default=None,
        help="fake-quantize every layer output but the logits to its int8 quantization, in "
        "training and inference (straight-through gradient), so the merged int8 model "
        "(micropeft merge) computes what the runtime trained",
    )
    group.add_argument(
        "--batch-capacity",
        type=int,
        help="samples the runtime trains in one call, each layer over all of them at once "
        "(faster; every per-sample buffer that many times as large; default 1)",
    )
    group.add_argument("--seed", type=int, help="default 0")


def config_from_args(args: argparse.Namespace) -> MethodConfig:
    """--config's file (if any) with the flags given on top."""
    data: dict[str, Any] = {}
    if getattr(args, "config", None):
        data = load_config(args.config).to_dict()
    for name in (
        "method",
        "r",
        "lora_alpha",
        "optimizer",
        "lr",
        "momentum",
        "lr_schedule",
        "lr_decay_steps",
        "epochs",
        "batch_size",
        "ram_budget",
        "act_cache",
        "update",
        "int8_backward",
        "quantized_forward",
        "batch_capacity",
        "seed",
    ):
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    targets = getattr(args, "target_modules", None)
    if targets is not None:
        data["target_modules"] = _split_list(targets)
    feedforward = getattr(args, "feedforward_modules", None)
    if feedforward is not None:
        data["feedforward_modules"] = _split_list(feedforward)
    return config_from_dict(data, "--config/flags")
