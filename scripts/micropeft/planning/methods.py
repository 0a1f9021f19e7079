"""Which parameters each layer trains: PEFT method configuration.

The vocabulary follows Hugging Face PEFT where it fits: `r`, `lora_alpha`,
`target_modules`. A configuration names one method or a combination:

    full         every weight and bias (the baseline)
    last_layer   the classifier head's weights and bias
    bitfit       biases
    scale_shift  a per-output-channel scale and shift after the layer's linear part
    lora         low-rank adapters on 1x1 convolutions and dense layers
    sparse       weights and biases of chosen layers (MCUNetV3-style sparse update)
    dora         weight-decomposed LoRA (HF PEFT use_dora): a trained magnitude per
                 output channel times the normalised direction W0 + (alpha / r) B A,
                 on 1x1 convolutions and dense layers; no other method on its layers
    ia3          IA3 (HF PEFT IA3Config): a trained scaling vector (starting at 1) of
                 a layer's output channels, on any convolution or dense layer
    ia3_input    IA3 on a feedforward module (HF PEFT IA3Config's feedforward_modules):
                 a trained scaling vector (starting at 1) of a layer's input channels
                 (a dense layer's input features), lin = W (l x) + b, on any convolution
                 (the input scaled before the window) or dense layer; its weights stay
                 frozen (no full, sparse, last_layer, lora, dora or ia3 on its layers)

`feedforward_modules` (HF PEFT's IA3Config) takes targets in the same syntax and
needs ia3 in the method list: the layers it picks, which must be among ia3's own
targets (HF requires a subset of target_modules), get ia3_input instead of ia3.

`target_modules` selects layers for the methods that take targets (all but
`full` and `last_layer`). Each entry is one of:

    an integer           layer index (negative counts from the end)
    "all"                every layer that can carry the method
    "head"               the last layer with weights
    a kind               "pointwise" (1x1 conv), "depthwise", "conv" (any CONV_2D),
                         "fc" (dense), "linear" (pointwise + fc), "weighted" (any of them)
    "last:N" / "last:N:KIND"   the last N layers (of that kind) that can carry the method
    "lora_layers"        the layers that lora or dora adapts in the same configuration
                         (what HF PEFT's bias: "lora_only" trains: their biases)
    a layer name         exact match (layer names are the .tflite output tensor names)
    otherwise            a regular expression searched in layer names

Selectors by keyword pick only layers that can carry the method; a name, index or
regular expression that picks a layer that cannot (LoRA on a 3x3 conv, say) is an
error. `target_modules` may also map method names to their own list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from micropeft import formats
from micropeft.errors import UserError
from micropeft.planning import plan
from micropeft.prep.graph import Graph, Layer, Method, Op

# CLI name -> flag, in bit order (the names of micropeft.formats.METHOD_NAMES).
METHODS = {m.name.lower(): m for m in Method if m != Method.NONE}
OPTIMIZERS = tuple(o.name.lower() for o in formats.Optimizer)
ACT_CACHES = tuple(d.name.lower() for d in formats.CacheDtype)
UPDATES = tuple(u.name.lower() for u in formats.UpdateMode)
# Learning-rate schedules (HF TrainingArguments' lr_scheduler_type): "linear" falls to 0
# over lr_decay_steps updates, the plan's one schedule field.
LR_SCHEDULES = ("constant", "linear")
KINDS = ("pointwise", "depthwise", "conv", "fc", "linear", "weighted")

# Targets when the configuration names none.
DEFAULT_TARGETS: dict[str, list[Any]] = {
    "bitfit": ["all"],
    "scale_shift": ["all"],
    "lora": ["last:4:linear"],
    "sparse": ["last:2"],
    "dora": ["last:4:linear"],
    "ia3": ["all"],
    "ia3_input": ["all"],
}
# Methods with LoRA's rank and alpha (r, lora_alpha).
LOW_RANK = ("lora", "dora")
# The target keyword for the layers the low-rank method adapts (HF PEFT's bias: "lora_only").
LORA_LAYERS = "lora_layers"


@dataclass
class MethodConfig:
    """A fine-tuning configuration: method(s), their targets, and training settings."""

    method: str | list[str] = "lora"
    r: int = 4
    lora_alpha: float = 8.0
    target_modules: list[Any] | dict[str, list[Any]] | str | None = None
    # HF PEFT IA3Config: the ia3 targets whose input, not output, IA3 scales (ia3_input)
    feedforward_modules: list[Any] | str | None = None
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    lr_schedule: str = "constant"  # LR_SCHEDULES
    lr_decay_steps: int | None = None  # "linear": updates to decay over (bench: its run's)
    epochs: int = 10
    batch_size: int = 16
    ram_budget: int | None = None  # bytes of total device RAM (plan.device_ram); None: no limit
    act_cache: str = "s8"  # values kept for backward: "s8" (tensor's quantization) | "f32"
    update: str = "batch"  # "batch": step() per batch | "layer": per layer, per sample
    int8_backward: bool = False  # input gradients of frozen 1x1 conv / FC layers in int8
    # every layer output but the logits fake-quantized to int8 (PlanFlag.QUANTIZED_FORWARD)
    quantized_forward: bool = False
    # samples one runtime call trains together (the plan's batch capacity; RAM grows with it)
    batch_capacity: int = 1
    seed: int = 0
    # A recipe's name in the report and what it trains, in words (bench's recipes set them).
    label: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        names = [self.method] if isinstance(self.method, str) else list(self.method)
        return [n.strip().lower().replace("-", "_") for n in names]

    def check(self) -> None:
        names = self.methods
        if not names:
            raise UserError("no method given (choose from " + ", ".join(METHODS) + ")")
        for name in names:
            if name not in METHODS:
                raise UserError(f"unknown method {name!r} (choose from {', '.join(METHODS)})")
        low_rank = any(n in LOW_RANK for n in names)
        if "lora" in names and "dora" in names:
            raise UserError("lora and dora share r and lora_alpha: use one of them")
        if low_rank and not 1 <= int(self.r) <= 64:
            raise UserError(f"LoRA rank r must lie in 1..64, not {self.r}")
        if low_rank and not float(self.lora_alpha) > 0:
            raise UserError(f"lora_alpha must be positive, not {self.lora_alpha}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r} (use 'sgd' or 'adam')")
        if self.act_cache not in ACT_CACHES:
            raise UserError(f"unknown act_cache {self.act_cache!r} (use 'f32' or 's8')")
        if self.update not in UPDATES:
            raise UserError(f"unknown update {self.update!r} (use 'batch' or 'layer')")
        for name in ("int8_backward", "quantized_forward"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{name} must be true or false, not {getattr(self, name)!r}")
        capacity, limit = self.batch_capacity, formats.LIMIT["MAX_BATCH"]
        if isinstance(capacity, bool) or not (isinstance(capacity, int) and 1 <= capacity <= limit):
            raise UserError(f"batch_capacity must be an integer in 1..{limit}, not {capacity!r}")
        if self.update == "layer" and capacity != 1:
            raise UserError("update layer trains one sample at a time: batch_capacity must be 1")
        if self.update == "layer" and int(self.batch_size) != 1:
            raise UserError("update 'layer' applies every sample's gradients at once: batch_size 1")
        if not float(self.lr) > 0:
            raise UserError(f"learning rate must be positive, not {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UserError(
                f"unknown lr_schedule {self.lr_schedule!r} (use {' or '.join(LR_SCHEDULES)})"
            )
        if self.lr_decay_steps is not None and self.lr_schedule != "linear":
            raise UserError(
                "lr_decay_steps is the length of the linear schedule: lr_schedule linear"
            )
        if self.lr_decay_steps is not None and int(self.lr_decay_steps) < 1:
            raise UserError(f"lr_decay_steps must be at least 1, not {self.lr_decay_steps}")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise UserError("epochs and batch_size must be at least 1")
        if self.ram_budget is not None and int(self.ram_budget) <= 0:
            raise UserError(f"ram_budget must be a positive number of bytes, not {self.ram_budget}")
        if self.feedforward_modules is not None:
            if "ia3" not in names:
                raise UserError(
                    "feedforward_modules (HF PEFT IA3Config) picks among ia3's target_modules: "
                    "add ia3 to the method list"
                )
            if "ia3_input" in names:
                raise UserError(
                    "feedforward_modules and method ia3_input both choose what ia3_input "
                    "trains: use one"
                )

    def targets_for(self, method: str) -> list[Any]:
        targets = self.target_modules
        if isinstance(targets, dict):
            targets = targets.get(method)
        if targets is None:
            return list(DEFAULT_TARGETS.get(method, []))
        return [targets] if isinstance(targets, (str, int)) else list(targets)

    def feedforward_targets(self) -> list[Any] | None:
        """feedforward_modules as a list of targets (None: not given)."""
        targets = self.feedforward_modules
        if targets is None:
            return None
        return [targets] if isinstance(targets, (str, int)) else list(targets)

    def optimizer_config(self) -> Any:
        """The planner's OptimizerConfig for these settings."""

        if self.lr_schedule == "linear" and self.lr_decay_steps is None:
            raise UserError(
                "lr_schedule linear decays the rate to 0 over the training run: give its number "
                "of updates, lr_decay_steps (--lr-decay-steps: epochs x batches per epoch)"
            )
        return plan.OptimizerConfig(
            kind=self.optimizer,
            lr=float(self.lr),
            momentum=float(self.momentum),
            lr_decay_steps=int(self.lr_decay_steps or 0),
        )

    def plan(
        self, graph: Graph, model: bytes, seed: int | None = None, batch: int | None = None
    ) -> Any:
        """The plan of `graph` (marked by apply_method) for `model`'s bytes: the one path
        from a configuration to a plan (prepare-model, bench and merge all take it).
        `seed` (LoRA A's initialisation) and `batch` (its batch capacity) override the
        configuration's."""

        return plan.build_plan(
            graph,
            model,
            self.optimizer_config(),
            self.act_cache,
            self.seed if seed is None else seed,
            update=self.update,
            int8_backward=self.int8_backward,
            quantized_forward=self.quantized_forward,
            batch=self.batch_capacity if batch is None else batch,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}


def _has_weights(layer: Layer) -> bool:
    return layer.weights is not None and layer.op in (
        Op.CONV_2D,
        Op.DEPTHWISE_CONV_2D,
        Op.FULLY_CONNECTED,
    )


def _is_pointwise(layer: Layer) -> bool:
    return layer.op == Op.CONV_2D and layer.kernel == (1, 1) and layer.stride == (1, 1)


def _of_kind(layer: Layer, kind: str) -> bool:
    if not _has_weights(layer):
        return False
    return {
        "pointwise": _is_pointwise(layer),
        "depthwise": layer.op == Op.DEPTHWISE_CONV_2D,
        "conv": layer.op == Op.CONV_2D,
        "fc": layer.op == Op.FULLY_CONNECTED,
        "linear": _is_pointwise(layer) or layer.op == Op.FULLY_CONNECTED,
        "weighted": True,
    }[kind]


def can_carry(layer: Layer, method: str) -> str | None:
    """None if `layer` can carry `method`, else why not."""
    if not _has_weights(layer):
        return f"{layer.op.name} has no weights"
    # The C plan loader's rule (peft_plan_load.c has_fc_form), so nothing it refuses is offered.
    if method in LOW_RANK and not plan.has_fc_form(layer):
        label = {"lora": "LoRA", "dora": "DoRA"}[method]
        return f"{label} needs a 1x1 stride-1 convolution or a dense layer"
    if method == "bitfit" and layer.bias is None:
        return "it has no bias"
    return None


def kinds_of(layer: Layer) -> list[str]:
    """The layer-kind keywords of target_modules (KINDS) that pick `layer`."""
    return [kind for kind in KINDS if _of_kind(layer, kind)]


def methods_for(graph: Graph, index: int) -> list[str]:
    """The methods that can train layer `index` of `graph` (the rules apply_method uses)."""
    layer = graph.layers[index]
    if not _has_weights(layer):
        return []
    names = []
    for name in METHODS:
        if name == "last_layer":
            if index == head_index(graph):
                names.append(name)
        elif name == "full" or can_carry(layer, name) is None:
            names.append(name)
    return names


def head_index(graph: Graph) -> int:
    for i in range(len(graph.layers) - 1, -1, -1):
        if _has_weights(graph.layers[i]):
            return i
    raise UserError("the model has no layer with weights")


def select_layers(
    graph: Graph, targets: list[Any], method: str, adapted: list[int] | None = None
) -> list[int]:
    """Indices of the layers `targets` pick for `method` (see the module docstring);
    `adapted`: the layers lora/dora picked (the "lora_layers" keyword)."""
    layers = graph.layers
    chosen: list[int] = []

    def add(indices: list[int], explicit: bool, what: str) -> None:
        if not indices:
            raise UserError(f"{method}: target {what!r} matches no layer that can carry it")
        for i in indices:
            why = can_carry(layers[i], method)
            if why is not None:
                if explicit:
                    raise UserError(
                        f"{method}: target {what!r} picks layer {i} ({layers[i].name}), "
                        f"which cannot carry it: {why}"
                    )
                continue
            if i not in chosen:
                chosen.append(i)

    def eligible(kind: str = "weighted") -> list[int]:
        return [
            i
            for i, layer in enumerate(layers)
            if _of_kind(layer, kind) and can_carry(layer, method) is None
        ]

    for target in targets:
        if isinstance(target, bool):
            raise UserError(f"{method}: bad target {target!r}")
        if isinstance(target, int) or (isinstance(target, str) and re.fullmatch(r"-?\d+", target)):
            i = int(target)
            if not -len(layers) <= i < len(layers):
                raise UserError(f"{method}: layer index {i} out of range (0..{len(layers) - 1})")
            add([i % len(layers)], True, str(target))
            continue
        if not isinstance(target, str):
            raise UserError(f"{method}: bad target {target!r} (a name, index or keyword)")
        word = target.strip()
        last = re.fullmatch(r"last:(\d+)(?::(\w+))?", word)
        if word == "all":
            add(eligible(), False, word)
        elif word == "head":
            add([head_index(graph)], True, word)
        elif word == LORA_LAYERS:
            if not adapted:
                raise UserError(f"{method}: target {word!r} needs lora or dora in the method list")
            add(adapted, False, word)
        elif word in KINDS:
            add(eligible(word), False, word)
        elif last:
            kind = last.group(2) or "weighted"
            if kind not in KINDS:
                raise UserError(f"{method}: unknown layer kind {kind!r} in {word!r} ({KINDS})")
            count = int(last.group(1))
            if count < 1:
                raise UserError(f"{method}: {word!r} selects no layer")
            add(eligible(kind)[-count:], False, word)
        else:
            exact = [i for i, layer in enumerate(layers) if layer.name == word]
            if exact:
                add(exact, True, word)
                continue
            try:
                pattern = re.compile(word)
            except re.error as error:
                raise UserError(f"{method}: bad regular expression {word!r} ({error})") from error
            add([i for i, layer in enumerate(layers) if pattern.search(layer.name)], True, word)
    return sorted(chosen)


def apply_method(graph: Graph, cfg: MethodConfig) -> Graph:
    """Mark `graph`'s layers with cfg's methods (in place); returns the graph."""
    cfg.check()
    for layer in graph.layers:
        layer.methods = Method.NONE
        layer.lora_rank = 0
        layer.lora_alpha = 0.0
    adapted: list[int] = []
    # The low-rank methods first: "lora_layers" targets are the layers they adapt.
    for name in sorted(cfg.methods, key=lambda n: n not in LOW_RANK):
        flag = METHODS[name]
        if name == "full":
            picked = [i for i, layer in enumerate(graph.layers) if _has_weights(layer)]
        elif name == "last_layer":
            picked = [head_index(graph)]
        else:
            picked = select_layers(graph, cfg.targets_for(name), name, adapted)
        if name in LOW_RANK:
            adapted += picked
        if name == "ia3" and cfg.feedforward_targets() is not None:
            feedforward = select_layers(graph, cfg.feedforward_targets(), "ia3_input", adapted)
            outside = [i for i in feedforward if i not in picked]
            if outside:
                names = ", ".join(graph.layers[i].name for i in outside)
                raise UserError(
                    f"feedforward_modules must be a subset of ia3's target_modules (HF PEFT): "
                    f"layer(s) {names} are not among ia3's targets"
                )
            for i in feedforward:
                graph.layers[i].methods |= Method.IA3_INPUT
            picked = [i for i in picked if i not in feedforward]
        for i in picked:
            layer = graph.layers[i]
            layer.methods |= flag
            if name in LOW_RANK:
                layer.lora_rank = int(cfg.r)
                layer.lora_alpha = float(cfg.lora_alpha)
    for layer in graph.layers:
        if layer.methods & Method.DORA and layer.methods != Method.DORA:
            others = [n for n, f in METHODS.items() if layer.methods & f and n != "dora"]
            raise UserError(
                f"layer {layer.name}: dora and {', '.join(others)} on one layer; DoRA rescales "
                "the whole layer (target dora elsewhere, e.g. last:4:pointwise)"
            )
        if layer.methods & Method.IA3 and layer.methods & Method.SCALE_SHIFT:
            raise UserError(
                f"layer {layer.name}: ia3 and scale_shift both scale its output: choose one"
            )
        if layer.methods & Method.IA3_INPUT and layer.methods & plan.NOT_WITH_IA3_INPUT:
            others = [n for n, f in METHODS.items() if layer.methods & f & plan.NOT_WITH_IA3_INPUT]
            raise UserError(
                f"layer {layer.name}: ia3_input (IA3 on a feedforward module: its input scaled) "
                f"and {', '.join(others)} on one layer are not supported (they train or adapt "
                "its weights, or scale its output, which IA3 on a feedforward module does not)"
            )
    if not any(layer.methods for layer in graph.layers):
        raise UserError("the configuration marks no layer to train")
    return graph


def describe(graph: Graph) -> list[tuple[int, str, str]]:
    """(index, layer name, methods) of every marked layer, for printing."""
    rows = []
    for i, layer in enumerate(graph.layers):
        if layer.methods:
            names = [n for n, f in METHODS.items() if layer.methods & f]
            low_rank = layer.methods & (Method.LORA | Method.DORA)
            extra = f" r={layer.lora_rank}" if low_rank else ""
            rows.append((i, layer.name, "+".join(names) + extra))
    return rows
