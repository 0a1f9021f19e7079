"""Method configuration from a YAML file and/or command-line flags.

A YAML file holds MethodConfig's fields (see methods.py), e.g.

    method: [lora, bitfit]
    r: 4
    lora_alpha: 8
    target_modules: {lora: ["last:4:linear"], bitfit: [all]}
    use_dora: false        # HF PEFT's LoRA option: true turns lora into dora
    optimizer: sgd
    lr: 0.01
    epochs: 10
    batch_size: 16
    ram_budget: 160k
    act_cache: s8
    update: batch
    int8_backward: false
    seed: 0

Flags given on the command line override the file.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from micropeft.errors import UserError
from micropeft.planning.methods import ACT_CACHES, METHODS, OPTIMIZERS, UPDATES, MethodConfig

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


def _hf_use_dora(values: dict[str, Any], source: str) -> None:
    """HF PEFT's LoraConfig(use_dora=True) is our method dora: lora renamed, targets too."""
    if not values.pop("use_dora", False):
        return
    method = values.get("method", "lora")
    names = _split_list(method) if isinstance(method, str) else list(method)
    if "lora" not in names:
        raise UserError(f"{source}: use_dora applies to lora, which the method list lacks")
    values["method"] = ["dora" if n == "lora" else n for n in names]
    targets = values.get("target_modules")
    if isinstance(targets, dict) and "lora" in targets:
        values["target_modules"] = {("dora" if k == "lora" else k): v for k, v in targets.items()}


def config_from_dict(data: dict[str, Any], source: str = "configuration") -> MethodConfig:
    if "feedforward_modules" in data:
        raise UserError(
            f"{source}: feedforward_modules (IA3 scaling a layer's input) is not supported: "
            "ia3 scales the output of its target_modules"
        )
    known = {f.name for f in fields(MethodConfig)} - {"extra"}
    unknown = sorted(set(data) - known - {"use_dora"})
    if unknown:
        raise UserError(f"{source}: unknown keys {unknown} (known: {sorted(known)})")
    values = dict(data)
    _hf_use_dora(values, source)
    try:
        if isinstance(values.get("method"), str) and "," in values["method"]:
            values["method"] = _split_list(values["method"])
        if values.get("ram_budget") is not None:
            values["ram_budget"] = parse_size(values["ram_budget"])
        for key, kind in (("r", int), ("epochs", int), ("batch_size", int), ("seed", int)):
            if key in values:
                values[key] = kind(values[key])
        for key in ("lora_alpha", "lr", "momentum"):
            if key in values:
                values[key] = float(values[key])
    except (TypeError, ValueError) as error:
        raise UserError(f"{source}: bad value ({error})") from error
    cfg = MethodConfig(**values)
    cfg.check()
    return cfg


def load_config(path: str | Path) -> MethodConfig:
    """A MethodConfig from a YAML file."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise UserError(f"configuration file not found: {path}")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of settings at the top level")
    return config_from_dict(data, str(path))


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for every MethodConfig field (all optional; they override --config)."""
    group = parser.add_argument_group("fine-tuning method")
    group.add_argument("--config", help="YAML file with the method configuration")
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
    group.add_argument("--optimizer", choices=OPTIMIZERS, help="default sgd")
    group.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    group.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
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
        "epochs",
        "batch_size",
        "ram_budget",
        "act_cache",
        "update",
        "int8_backward",
        "seed",
    ):
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    targets = getattr(args, "target_modules", None)
    if targets is not None:
        data["target_modules"] = _split_list(targets)
    return config_from_dict(data, "--config/flags")
