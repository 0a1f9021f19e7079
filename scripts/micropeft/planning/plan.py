"""The planner: from a marked Graph to the plan blob that the C runtime reads.

`build_plan` chooses the split point (the first layer that trains anything,
moved earlier if a residual skip would cross it), lays out every buffer of the
training and inference arenas, and writes the blob (docs/formats.md, "Plan
blob"). The C reader (lib/peft/plan) recomputes the same layout with the same
algorithm and refuses a plan whose offsets differ, so the arena sizes below are
the exact numbers the device uses.

Layout (all offsets in bytes, every buffer 16-byte aligned):

    train:  parameters | parameter gradients | optimizer state | work
    infer:  parameters | work

Parameters, their gradients and the optimizer state live across samples and
are packed in layer order. The work region holds everything else, each buffer
with its own size and live range over the schedule of one training sample:
forward of layer k at step k, the loss at step L (L layers), backward of layer
k at step 2L - k. Offsets come from a greedy-by-size first-fit assignment, as
TFLM's GreedyMemoryPlanner does it: largest buffer first (ties: table order),
each at the lowest offset where it overlaps no already placed buffer whose live
range meets its own. Backward keeps only what it needs: a 1-bit mask for a
fused ReLU/ReLU6, the input of a layer whose weights or LoRA factors train
(int8 with the tensor's quantization by default), the pre-scale output of
scale+shift, LoRA's u, the input of a layer whose input IA3 scales (IA3_INPUT,
which also computes that layer's input gradient, wrt l x, into a scratch); a
frozen layer keeps nothing.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

from micropeft import formats
from micropeft.errors import UserError
from micropeft.formats import ParamKind, ParamSize
from micropeft.prep.graph import Activation, ArrayRef, Graph, Layer, Method, Op, TensorInfo

PLAN_VERSION = formats.PLAN.version
HEADER_SIZE = formats.PLAN_HEADER.size
TENSOR_RECORD_SIZE = formats.PLAN_TENSOR.size
LAYER_RECORD_SIZE = formats.PLAN_LAYER.size
BUFFER_RECORD_SIZE = formats.PLAN_BUFFER.size
NONE = formats.NONE  # "no buffer" in an offset field
NO_INPUT = formats.NO_INPUT
ALIGN = formats.LIMIT["ALIGN"]
MAX_TENSOR_ELEMENTS = formats.LIMIT["MAX_TENSOR_ELEMENTS"]
MAX_LORA_RANK = formats.LIMIT["MAX_LORA_RANK"]
STATE_STREAM_BUFFER = formats.LIMIT["STATE_STREAM_BUFFER"]
BWD_IN_ROWS = formats.LIMIT["BWD_IN_ROWS"]

CACHE_DTYPES = {d.name.lower(): int(d) for d in formats.CacheDtype}
OPTIMIZERS = {o.name.lower(): int(o) for o in formats.Optimizer}
UPDATES = {u.name.lower(): int(u) for u in formats.UpdateMode}  # after step() / per layer
ARENAS = {a.name.lower(): int(a) for a in formats.Arena}
PARAM_KINDS = formats.PARAM_KINDS
LINEAR_OPS = (Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.FULLY_CONNECTED)
# What shares no layer with IA3_INPUT (formats' limit, the C loader's rule too).
NOT_WITH_IA3_INPUT = Method(formats.LIMIT["METHODS_NOT_WITH_IA3_INPUT"])
TRAINING_WEIGHTS = Method(formats.LIMIT["METHODS_TRAINING_WEIGHTS"])
# Kinds of work-region buffers (formats.BufferKind; docs/formats.md, "Plan buffer record").
BUFFER_KINDS = {k.name.lower(): int(k) for k in formats.BufferKind}
BUFFER_KIND_NAMES = {v: k for k, v in BUFFER_KINDS.items()}
_KEPT_KINDS = ("keep", "mask", "keep_lin", "keep_u")
# The Kconfig option that compiles in the int8 backward path (lib/peft/Kconfig); a
# firmware without it refuses a plan with PlanFlag.INT8_BACKWARD (ERR_PLAN_INT8_NOT_COMPILED).
INT8_BACKWARD_KCONFIG = "CONFIG_PEFT_INT8_BACKWARD"


def check_blob_version(blob: bytes, source: str) -> None:
    """A clear error for a plan blob this micropeft does not write (e.g. an older one)."""
    if len(blob) < formats.BLOB_HEADER.size or blob[:4] != formats.PLAN.magic:
        raise UserError(f"{source} is not a plan blob")
    version = formats.BLOB_HEADER.read(blob, "version")
    if version != PLAN_VERSION:
        raise UserError(
            f"{source} is plan format version {version}; this micropeft (and its runtime) "
            f"reads version {PLAN_VERSION}: run prepare-model again"
        )


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer of the on-device training (see include/peft/peft_optim.h)."""

    kind: str = "sgd"  # "sgd" | "adam"
    lr: float = 0.01
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float = 0.0
    # HF's linear schedule: lr falls linearly to 0 over this many updates (0: constant).
    lr_decay_steps: int = 0

    def check(self) -> None:
        if self.kind not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.kind!r} (use 'sgd' or 'adam')")
        finite = all(
            math.isfinite(v)
            for v in (
                self.lr,
                self.momentum,
                self.beta1,
                self.beta2,
                self.eps,
                self.weight_decay,
                self.clip_norm,
            )
        )
        if not finite or self.lr <= 0:
            raise UserError(f"optimizer: learning rate must be a positive number, not {self.lr}")
        if not (0 <= self.momentum < 1 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise UserError("optimizer: momentum, beta1 and beta2 must lie in [0, 1)")
        if self.eps <= 0 or self.weight_decay < 0 or self.clip_norm < 0:
            raise UserError("optimizer: eps must be > 0, weight_decay and clip_norm >= 0")
        limit = formats.LIMIT["LR_DECAY_STEPS_LIMIT"]
        if not (isinstance(self.lr_decay_steps, int) and 0 <= self.lr_decay_steps < limit):
            raise UserError(
                f"optimizer: lr_decay_steps must be an integer in 0..{limit - 1}, "
                f"not {self.lr_decay_steps!r}"
            )

    @property
    def states_per_param(self) -> int:
        """Arrays of optimizer state per trainable array."""
        if self.kind == "adam":
            return 2
        return 1 if self.momentum != 0 else 0


@dataclass
class PlanLayer:
    """One layer of the trainable part with its derived flags and buffers."""

    index: int  # plan layer index
    graph_index: int
    layer: Layer
    inputs: list[int]  # plan tensor indices
    output: int
    rows: int = 1  # FC/LoRA rows (pixels of a 1x1 conv)
    in_features: int = 0
    out_features: int = 0
    train_weight: bool = False
    train_bias: bool = False
    scale_shift: bool = False
    lora: bool = False  # LoRA's A and B: LoRA or DoRA
    dora: bool = False
    ia3: bool = False
    ia3_input: bool = False  # IA3 on a feedforward module: l scales the input
    runs_backward: bool = False
    backward_inputs: list[bool] = field(default_factory=list)
    needs_input_values: bool = False  # input kept for a weight / LoRA A / IA3 input gradient
    keeps_mask: bool = False  # fused ReLU/ReLU6 derivative kept as a 1-bit mask
    int8_input_grad: bool = False  # input gradient through the int8 path (plan flag)
    # Quantized forward: the trained weights computed rounded to int8 (rounds_trained_weights)
    rounds_weights: bool = False
    rounds_lora: bool = False  # quantized forward: W0 + s B A computed rounded (rounds_lora)
    params: list[int] = field(default_factory=lambda: [NONE] * len(formats.ParamKind))
    grads: list[int] = field(default_factory=lambda: [NONE] * len(formats.ParamKind))
    opt_m: list[int] = field(default_factory=lambda: [NONE] * len(formats.ParamKind))
    opt_v: list[int] = field(default_factory=lambda: [NONE] * len(formats.ParamKind))

    def param_counts(self) -> list[int]:
        """Float counts of every ParamKind (formats.PARAM_ARRAYS; 0: absent)."""
        lay = self.layer
        sizes = {
            ParamSize.WEIGHTS: lay.weights.count if lay.weights is not None else 0,
            ParamSize.BIAS: lay.bias.count if lay.bias is not None else 0,
            ParamSize.OUT: self.out_features,
            ParamSize.RANK_IN: lay.lora_rank * self.in_features,
            ParamSize.OUT_RANK: self.out_features * lay.lora_rank,
            ParamSize.IN: self.in_features,
        }
        return [
            sizes[size] if owners == Method.NONE or lay.methods & owners else 0
            for size, owners in formats.PARAM_ARRAYS.values()
        ]

    def trainable(self) -> list[bool]:
        """Which ParamKinds this layer trains: weight and bias as its methods say, every
        other array wherever the layer has it."""
        own = {ParamKind.WEIGHT: self.train_weight, ParamKind.BIAS: self.train_bias}
        return [
            own.get(kind, bool(self.layer.methods & owners))
            for kind, (_, owners) in formats.PARAM_ARRAYS.items()
        ]

    @property
    def streams_input(self) -> bool:
        """Backward reads the input only for LoRA A's gradient (no weight gradient, no
        DoRA): the int8-kept rows are dequantised BWD_IN_ROWS at a time."""
        return self.lora and not self.dora and not self.train_weight

    @property
    def scales_lin(self) -> bool:
        """A trained per-channel scale of the linear output (scale+shift, IA3): lin kept."""
        return self.scale_shift or self.ia3


@dataclass
class PlanTensor:
    graph_index: int
    info: TensorInfo
    cached: bool = False  # kept for backward (a consumer's weight / LoRA A gradient)
    needs_grad: bool = False

    @property
    def size(self) -> int:
        return self.info.size


@dataclass
class Buffer:
    """One work-region buffer: what it holds, its bytes and its live range (steps)."""

    arena: int  # ARENAS
    kind: int  # BUFFER_KINDS
    owner: int  # plan tensor or layer index (0 for PROBS)
    part: int  # parameter kind of a PARAM_GRAD, else 0
    size: int  # bytes, a multiple of ALIGN
    first: int
    last: int
    offset: int = NONE  # arena offset
    used: int = 0  # bytes the runtime writes (size less the alignment padding)

    def live_at(self, step: int) -> bool:
        return self.first <= step <= self.last


@dataclass
class Plan:
    """A laid-out plan for one model (see the module docstring)."""

    graph: Graph
    model_crc: int
    model_length: int
    optimizer: OptimizerConfig
    act_cache: str
    seed: int
    split_layer: int
    input_tensor: int
    layers: list[PlanLayer]
    tensors: list[PlanTensor]
    update: str = "batch"  # UPDATES
    int8_backward: bool = False  # PlanFlag.INT8_BACKWARD: the int8 path where it applies
    # PlanFlag.QUANTIZED_FORWARD: every layer output but the logits fake-quantized to int8
    quantized_forward: bool = False
    # Samples one trainer call runs together: every per-sample work buffer holds this many
    # (stacked along the height); 1 keeps one sample at a time.
    batch: int = 1
    regions: dict[str, int] = field(default_factory=dict)
    buffers: list[Buffer] = field(default_factory=list)  # table order (_buffers)

    # ---- figures ----
    @property
    def num_classes(self) -> int:
        return self.tensors[-1].size

    @property
    def trainable_parameters(self) -> int:
        total = 0
        for pl in self.layers:
            counts = pl.param_counts()
            total += sum(c for c, t in zip(counts, pl.trainable(), strict=True) if t)
        return total

    def arena_bytes(self, mode: str = "train") -> int:
        """Exact arena size of peft_trainer_init() for mode "train" or "infer"."""
        if mode not in ("train", "infer"):
            raise UserError(f"unknown arena mode {mode!r} (use 'train' or 'infer')")
        return self.regions["train_size"] if mode == "train" else self.regions["infer_size"]

    def device_ram(self, tflm_arena: int, prefix_cache: int = 0) -> dict[str, int]:
        """RAM the sample (samples/peft_mobilenet) needs for this plan, bytes: the TFLM
        arena of the frozen prefix, the training arena, the buffer the trained state
        streams through to and from flash, the cache of prefix outputs and a buffer of
        one split activation: none, the sample reads it in TFLM's output tensor, inside
        the TFLM arena (kept in the table as 0, a part the issue's total names)."""

        parts = {
            "tflm_arena": int(tflm_arena),
            "train_arena": self.arena_bytes("train"),
            "state_buffer": STATE_STREAM_BUFFER,
            "prefix_cache": int(prefix_cache),
            "split_buffer": 0,
        }
        parts["total"] = sum(parts.values())
        return parts

    @property
    def flags(self) -> int:
        """The plan header's PlanFlag bits."""
        bits = formats.PlanFlag.NONE
        if self.int8_backward:
            bits |= formats.PlanFlag.INT8_BACKWARD
        if self.quantized_forward:
            bits |= formats.PlanFlag.QUANTIZED_FORWARD
        return int(bits)

    @property
    def int8_backward_layers(self) -> list[PlanLayer]:
        """The layers whose input gradient takes the int8 path."""
        return [pl for pl in self.layers if pl.int8_input_grad]

    def _kept_as_value(self, tensor: int) -> bool:
        """With act_cache f32 a kept tensor's forward values live on for backward."""
        return self.act_cache == "f32" and self.tensors[tensor].cached

    def peak(self, mode: str = "train") -> tuple[int, list[Buffer]]:
        """The first step where the work region is used up to its end, and the
        buffers live then (largest first)."""
        arena = ARENAS[mode]
        bufs = [b for b in self.buffers if b.arena == arena]
        top = self.regions["work_size" if mode == "train" else "infer_work_size"]
        base = self.regions["work_offset" if mode == "train" else "infer_work_offset"]
        for step in range(2 * len(self.layers) + 1):
            live = [b for b in bufs if b.live_at(step)]
            if live and max(b.offset - base + b.size for b in live) == top:
                return step, sorted(live, key=lambda b: (-b.size, b.offset))
        return 0, []

    def step_name(self, step: int) -> str:
        n = len(self.layers)
        if step < n:
            return f"forward of layer {self.layers[step].graph_index}"
        if step == n:
            return "the loss"
        return f"backward of layer {self.layers[2 * n - step].graph_index}"

    def buffer_name(self, b: Buffer) -> str:
        kind = BUFFER_KIND_NAMES[b.kind]
        if kind in ("value", "keep", "grad"):
            what = {"value": "values", "keep": "kept int8 values", "grad": "gradient"}[kind]
            if kind == "value" and b.arena == 0 and self._kept_as_value(b.owner):
                what = "values (kept, f32)"
            name = self.tensors[b.owner].info.name.split(";")[0]
            return f"{what} of tensor {b.owner} {name!r}"
        if kind == "probs":
            return "softmax output"
        lay = self.layers[b.owner]
        what = kind.replace("_", " ")
        if kind == "param_grad":
            what = f"gradient of {PARAM_KINDS[b.part]}"
        return f"{what} of layer {lay.graph_index} {lay.layer.name.split(';')[0]!r}"

    def peak_report(self, mode: str = "train", limit: int = 8) -> list[str]:
        """Lines naming the buffers live at the peak (what a user would shrink)."""
        step, live = self.peak(mode)
        lines = [f"peak of the {mode} work region at {self.step_name(step)}:"]
        for b in live[:limit]:
            lines.append(f"  {b.size:>9,d} B  {self.buffer_name(b)}")
        if len(live) > limit:
            rest = sum(b.size for b in live[limit:])
            lines.append(f"  {rest:>9,d} B  {len(live) - limit} smaller buffers")
        return lines

    def breakdown(self) -> dict[str, int]:
        """How the training arena splits (same figures as peft_plan_arena_breakdown).
        The work region is split by what is live at its peak: kept values, gradients
        (with the parameter gradients) and the rest (temporaries, scratch, holes)."""
        r = self.regions
        _, live = self.peak("train")
        kept = sum(
            b.size
            for b in live
            if BUFFER_KIND_NAMES[b.kind] in _KEPT_KINDS
            or (b.kind == BUFFER_KINDS["value"] and self._kept_as_value(b.owner))
        )
        grads = sum(
            b.size for b in live if b.kind in (BUFFER_KINDS["grad"], BUFFER_KINDS["param_grad"])
        )
        parts = {
            "cached_activations": kept,
            "gradients": r["grads_size"] + grads,
            "parameters": r["params_size"],
            "optimizer_state": r["opt_size"],
            "scratch": r["work_size"] - kept - grads,
        }
        parts["total"] = sum(parts.values())
        return parts

    def macs(self) -> dict[str, int]:
        """Multiply-accumulates per training sample: the TFLM prefix forward, the
        runtime's forward (LoRA included) and the backward the plan computes.
        Linear layers count their MACs; pooling/mean one per input element. What
        follows a parameter change, as the optimizer update itself (DoRA's norms,
        (r + 1) in out per layer, recomputed after each update), is not counted."""
        g = self.graph
        prefix = sum(_layer_macs(g, lay) for lay in g.layers[: self.split_layer])
        forward = 0
        backward = 0
        for pl in self.layers:
            lay = pl.layer
            base = _layer_macs(g, lay)
            lora = 0
            if pl.lora:
                r = lay.lora_rank
                lora = pl.rows * (pl.in_features * r + r * pl.out_features)
            forward += base + lora
            if not pl.runs_backward:
                continue
            if lay.op in LINEAR_OPS:
                if pl.train_weight:
                    backward += base
                if pl.backward_inputs[0] or pl.ia3_input:
                    backward += base
                if pl.lora:
                    r = lay.lora_rank
                    backward += 2 * pl.rows * r * pl.out_features  # dB, B^T g
                    backward += pl.rows * pl.in_features * r  # dA
                    if pl.backward_inputs[0]:
                        backward += pl.rows * pl.in_features * r  # A^T du
                if pl.dora:  # W0 x and B u recomputed
                    backward += base + pl.rows * pl.out_features * lay.lora_rank
            elif lay.op in (Op.MEAN, Op.AVERAGE_POOL_2D) and pl.backward_inputs[0]:
                backward += base
        return {"prefix_forward": prefix, "forward": forward, "backward": backward}

    def crc(self) -> int:
        return formats.BLOB_HEADER.read(self.to_bytes(), "crc")

    # ---- blob ----
    def to_bytes(self) -> bytes:
        """The plan blob (docs/formats.md, "Plan blob"; layouts in micropeft.formats)."""
        r = self.regions
        opt = self.optimizer
        nt, nl, nb = len(self.tensors), len(self.layers), len(self.buffers)
        total = (
            HEADER_SIZE + nt * TENSOR_RECORD_SIZE + nl * LAYER_RECORD_SIZE + nb * BUFFER_RECORD_SIZE
        )
        blob = bytearray(total)
        formats.PLAN.pack_header(
            blob,
            total_length=total,
            model_crc=self.model_crc,
            model_length=self.model_length,
            num_tensors=nt,
            num_layers=nl,
            input_tensor=0,
            output_tensor=nt - 1,
            num_classes=self.num_classes,
            act_cache=CACHE_DTYPES[self.act_cache],
            optimizer=OPTIMIZERS[opt.kind],
            seed=self.seed & 0xFFFFFFFF,
            lr=opt.lr,
            momentum=opt.momentum,
            beta1=opt.beta1,
            beta2=opt.beta2,
            eps=opt.eps,
            weight_decay=opt.weight_decay,
            clip_norm=opt.clip_norm,
            lr_decay_steps=opt.lr_decay_steps,
            batch=self.batch,
            num_buffers=nb,
            train_region_size=[r[name] for name in _TRAIN_REGION_KEYS],
            train_size=r["train_size"],
            infer_work_size=r["infer_work_size"],
            infer_size=r["infer_size"],
            trainable_params=self.trainable_parameters,
            update=UPDATES[self.update],
            flags=self.flags,
            tensor_record_size=TENSOR_RECORD_SIZE,
            layer_record_size=LAYER_RECORD_SIZE,
            buffer_record_size=BUFFER_RECORD_SIZE,
        )
        pos = HEADER_SIZE
        for t in self.tensors:
            h, w, c = t.info.shape
            formats.PLAN_TENSOR.pack_into(
                blob,
                pos,
                h=h,
                w=w,
                c=c,
                scale=t.info.quant.scale,
                zero_point=t.info.quant.zero_point,
                cache_dtype=CACHE_DTYPES[self.act_cache] if t.cached else 0,
                needs_grad=1 if t.needs_grad else 0,
            )
            pos += TENSOR_RECORD_SIZE
        for pl in self.layers:
            lay = pl.layer
            formats.PLAN_LAYER.pack_into(
                blob,
                pos,
                op=int(lay.op),
                activation=int(lay.activation),
                methods=int(lay.methods),
                graph_layer=pl.graph_index,
                num_inputs=len(pl.inputs),
                input=[pl.inputs[0], pl.inputs[1] if len(pl.inputs) > 1 else NO_INPUT],
                output=pl.output,
                lora_rank=lay.lora_rank if pl.lora else 0,
                lora_alpha=float(lay.lora_alpha) if pl.lora else 0.0,
                kernel_h=lay.kernel[0],
                kernel_w=lay.kernel[1],
                stride_h=lay.stride[0],
                stride_w=lay.stride[1],
                pad_top=lay.pad_top,
                pad_left=lay.pad_left,
                weights=_ref_fields(lay.weights),
                bias=_ref_fields(lay.bias),
                param=pl.params,
                grad=pl.grads,
                opt_m=pl.opt_m,
                opt_v=pl.opt_v,
            )
            pos += LAYER_RECORD_SIZE
        for buf in self.buffers:
            formats.PLAN_BUFFER.pack_into(
                blob,
                pos,
                kind=buf.kind,
                arena=buf.arena,
                part=buf.part,
                owner=buf.owner,
                first=buf.first,
                last=buf.last,
                size=buf.size,
                arena_offset=buf.offset,
            )
            pos += BUFFER_RECORD_SIZE
        return formats.PLAN.seal(blob)

    def parameter_name(self, plan_layer: int, kind: int) -> str:
        """Key of a trainable array, as runtime.Trainer.parameters() uses it."""
        return f"{self.layers[plan_layer].layer.name}/{PARAM_KINDS[kind]}"


# Plan.regions keys of the header's training region sizes, in TrainRegion order.
_TRAIN_REGION_KEYS = ("params_size", "grads_size", "opt_size", "work_size")
assert len(_TRAIN_REGION_KEYS) == len(formats.TrainRegion)


def _ref_fields(ref: ArrayRef | None) -> dict[str, int]:
    if ref is None:
        return {"offset": 0, "count": 0, "scale_offset": 0, "scale_count": 0}
    return {
        "offset": ref.offset,
        "count": ref.count,
        "scale_offset": ref.scale_offset,
        "scale_count": ref.scale_count,
    }


def has_fc_form(lay: Layer) -> bool:
    """A fully connected layer, or a 1x1 stride-1 unpadded conv (the same [out][in]
    weights, one row per pixel): what the int8 path's kernel computes."""
    pointwise = (
        lay.op == Op.CONV_2D
        and tuple(lay.kernel) == (1, 1)
        and tuple(lay.stride) == (1, 1)
        and lay.pad_top == 0
        and lay.pad_left == 0
    )
    return pointwise or lay.op == Op.FULLY_CONNECTED


def int8_backward_scratch_bytes(rows: int, out_features: int) -> int:
    """peft_fc_bwd_input_s8s8_get_buffer_size: min(rows, PEFT_S8S8_ROWS) quantized gradient
    rows and 4 widened weight columns, int16, each padded to a pair, and one float scale per
    row (the plan layout check and tests/python/test_runtime_plan.py hold it to the C query)."""
    pairs = out_features + out_features % 2
    chunk = min(rows, formats.LIMIT["S8S8_ROWS"])
    return 2 * pairs * (chunk + 4) + 4 * chunk


def _layer_macs(g: Graph, lay: Layer) -> int:
    out = g.tensors[lay.output].shape
    inp = g.tensors[lay.inputs[0]].shape
    if lay.op == Op.CONV_2D:
        return out[0] * out[1] * out[2] * lay.kernel[0] * lay.kernel[1] * inp[2]
    if lay.op == Op.DEPTHWISE_CONV_2D:
        return out[0] * out[1] * out[2] * lay.kernel[0] * lay.kernel[1]
    if lay.op == Op.FULLY_CONNECTED:
        n_out = out[2]
        n_in = lay.weights.count // n_out if lay.weights is not None else inp[2]
        return (out[0] * out[1] * out[2] // n_out) * n_in * n_out
    if lay.op in (Op.MEAN, Op.AVERAGE_POOL_2D):
        return inp[0] * inp[1] * inp[2]
    return 0


# ---- split point ----
def choose_split(graph: Graph) -> int:
    """First layer that trains anything, moved earlier until one tensor crosses."""
    first = next((i for i, lay in enumerate(graph.layers) if lay.trains_anything), None)
    if first is None:
        raise UserError("nothing to train: no layer is marked with a method (apply a method first)")
    producer = {lay.output: i for i, lay in enumerate(graph.layers)}
    split = first
    while True:
        crossing = _crossing(graph, split, producer)
        if len(crossing) <= 1:
            return split
        split = min(producer.get(t, 0) for t in crossing)


def _crossing(graph: Graph, split: int, producer: dict[int, int]) -> list[int]:
    crossing: list[int] = []
    for lay in graph.layers[split:]:
        for t in lay.inputs:
            if producer.get(t, -1) < split and t not in crossing:
                crossing.append(t)
    return crossing


def _check_layer(lay: Layer, pl: PlanLayer, tensors: list[PlanTensor]) -> None:
    name = f"layer {lay.name!r}"
    if lay.op not in list(Op):
        raise UserError(f"{name}: operator {lay.op} is not supported by the runtime")
    if lay.activation not in list(Activation):
        raise UserError(f"{name}: unsupported fused activation {lay.activation}")
    n_in = 2 if lay.op == Op.ADD else 1
    if len(lay.inputs) != n_in:
        raise UserError(f"{name}: {lay.op.name} needs {n_in} input(s), has {len(lay.inputs)}")
    if lay.methods and lay.op not in LINEAR_OPS:
        raise UserError(f"{name}: methods apply to CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED")
    if lay.op in LINEAR_OPS and lay.weights is None:
        raise UserError(f"{name}: {lay.op.name} without weights")
    if lay.methods & Method.DORA and lay.methods != Method.DORA:
        raise UserError(f"{name}: DoRA rescales the whole layer: no other method on it")
    if lay.methods & Method.IA3 and lay.methods & Method.SCALE_SHIFT:
        raise UserError(f"{name}: IA3 and scale_shift both scale the output: choose one")
    if lay.methods & Method.IA3_INPUT and lay.methods & NOT_WITH_IA3_INPUT:
        others = [m.name.lower() for m in Method if m & NOT_WITH_IA3_INPUT & lay.methods]
        raise UserError(
            f"{name}: ia3_input (IA3 scaling the input) and {', '.join(others)} on one layer: "
            "not supported (its weights and LoRA stay frozen / apart; output IA3 is the "
            "other IA3 form)"
        )
    if lay.methods & (Method.LORA | Method.DORA):
        pointwise = lay.op == Op.CONV_2D and lay.kernel == (1, 1) and lay.stride == (1, 1)
        if not (pointwise or lay.op == Op.FULLY_CONNECTED):
            raise UserError(f"{name}: LoRA needs a 1x1 stride-1 convolution or a dense layer")
        if not 1 <= lay.lora_rank <= MAX_LORA_RANK:
            raise UserError(f"{name}: LoRA rank must lie in 1..{MAX_LORA_RANK}")
        if not (math.isfinite(lay.lora_alpha) and lay.lora_alpha > 0):
            raise UserError(f"{name}: LoRA alpha must be a positive number")
    if lay.methods and not any(pl.trainable()):
        raise UserError(f"{name}: its methods ({lay.methods!r}) train nothing here (no bias?)")
    for t in [*pl.inputs, pl.output]:
        if tensors[t].size > MAX_TENSOR_ELEMENTS:
            raise UserError(f"{name}: tensor too large for the runtime")
    if lay.weights is not None and lay.weights.dtype != "int8":
        raise UserError(f"{name}: weights must be int8, not {lay.weights.dtype}")
    if lay.bias is not None and lay.bias.dtype != "int32":
        raise UserError(f"{name}: bias must be int32, not {lay.bias.dtype}")


def build_plan(
    graph: Graph,
    model: bytes,
    optimizer: OptimizerConfig,
    act_cache: str = "s8",
    seed: int = 0,
    update: str = "batch",
    int8_backward: bool = False,
    quantized_forward: bool = False,
    batch: int = 1,
) -> Plan:
    """Lay out the trainable part of `graph` (layers marked by methods.py).

    `update` "layer" applies each layer's optimizer update as soon as its
    gradients are complete during backward (one sample per step, no gradient
    buffers kept across layers: MCUNetV3's operator reordering).
    `int8_backward` puts the input gradient of every frozen pointwise conv and
    FC layer on the int8 path (the output gradient quantized per row to int8,
    integer products with the int8 weights: peft_fc_bwd_input_s8s8).
    `quantized_forward` sets PlanFlag.QUANTIZED_FORWARD: the runtime fake-quantizes
    every layer output but the logits to its tensor's int8 quantization (training
    and inference; straight-through gradient), so merge's int8 model computes what
    was trained. It changes no buffer.
    `batch` is the batch capacity: the runtime trains (or predicts) up to this many
    samples in one call, each layer over all of them at once, every per-sample buffer
    that many times as large (1..MAX_BATCH; batch updates only)."""
    optimizer.check()
    max_batch = formats.LIMIT["MAX_BATCH"]
    if isinstance(batch, bool) or not (isinstance(batch, int) and 1 <= batch <= max_batch):
        raise UserError(f"batch capacity must be an integer in 1..{max_batch}, not {batch!r}")
    if update == "layer" and batch > 1:
        raise UserError("per-layer updates train one sample at a time: batch capacity must be 1")
    if act_cache not in CACHE_DTYPES:
        raise UserError(f"unknown activation cache {act_cache!r} (use 'f32' or 's8')")
    if update not in UPDATES:
        raise UserError(f"unknown update {update!r} (use 'batch' or 'layer')")
    if update == "layer" and optimizer.clip_norm > 0:
        raise UserError("per-layer updates cannot clip by the global gradient norm (clip_norm)")
    split = choose_split(graph)
    producer = {lay.output: i for i, lay in enumerate(graph.layers)}
    crossing = _crossing(graph, split, producer)
    input_tensor = crossing[0] if crossing else graph.layers[split].inputs[0]

    # Plan tensors: the input, then one output per layer.
    tmap = {input_tensor: 0}
    tensors = [PlanTensor(input_tensor, graph.tensors[input_tensor])]
    layers: list[PlanLayer] = []
    for gi in range(split, len(graph.layers)):
        lay = graph.layers[gi]
        try:
            inputs = [tmap[t] for t in lay.inputs]
        except KeyError:
            raise UserError(f"layer {lay.name!r} reads a tensor from before the split") from None
        if lay.output in tmap:
            raise UserError(f"layer {lay.name!r}: tensor {lay.output} is written twice")
        tmap[lay.output] = len(tensors)
        tensors.append(PlanTensor(lay.output, graph.tensors[lay.output]))
        layers.append(PlanLayer(len(layers), gi, lay, inputs, len(tensors) - 1))
    if graph.output not in tmap or tmap[graph.output] != len(tensors) - 1:
        raise UserError("the graph's output (logits) must be the last layer's output")
    consumers: dict[int, list[int]] = {i: [] for i in range(len(tensors))}
    for pl in layers:
        for t in pl.inputs:
            consumers[t].append(pl.index)
    for i in range(len(tensors) - 1):
        if not consumers[i]:
            name = tensors[i].info.name
            raise UserError(f"tensor {name!r} is computed but never used after the split")

    # Derived flags.
    for pl in layers:
        lay = pl.layer
        pl.out_features = tensors[pl.output].info.shape[2]
        if lay.op == Op.FULLY_CONNECTED:
            pl.in_features = lay.weights.count // pl.out_features if lay.weights else 0
            pl.rows = tensors[pl.inputs[0]].size // max(pl.in_features, 1)
        else:
            pl.in_features = tensors[pl.inputs[0]].info.shape[2]
            h, w, _ = tensors[pl.output].info.shape
            pl.rows = h * w
        pl.train_weight = lay.trains_weight
        pl.train_bias = lay.trains_bias
        pl.scale_shift = bool(lay.methods & Method.SCALE_SHIFT)
        pl.lora = bool(lay.methods & (Method.LORA | Method.DORA))
        pl.dora = bool(lay.methods & Method.DORA)
        pl.ia3 = bool(lay.methods & Method.IA3)
        pl.ia3_input = bool(lay.methods & Method.IA3_INPUT)
        _check_layer(lay, pl, tensors)
        tensors[pl.output].needs_grad = any(pl.trainable()) or any(
            tensors[t].needs_grad for t in pl.inputs
        )
        pl.runs_backward = tensors[pl.output].needs_grad
        pl.backward_inputs = [tensors[t].needs_grad for t in pl.inputs]
        pl.needs_input_values = pl.train_weight or pl.lora or pl.ia3_input
        pl.keeps_mask = pl.runs_backward and lay.activation != Activation.NONE
        pl.rounds_lora = quantized_forward and rounds_lora(lay)
        pl.int8_input_grad = (
            int8_backward
            and has_fc_form(lay)
            and pl.backward_inputs[0]
            and not pl.train_weight
            and not pl.ia3_input
            and not pl.rounds_lora
        )
        pl.rounds_weights = quantized_forward and rounds_trained_weights(lay)
        if pl.needs_input_values:
            tensors[pl.inputs[0]].cached = True

    plan = Plan(
        graph=graph,
        model_crc=zlib.crc32(model) & 0xFFFFFFFF,
        model_length=len(model),
        optimizer=optimizer,
        act_cache=act_cache,
        seed=seed,
        split_layer=split,
        input_tensor=input_tensor,
        layers=layers,
        tensors=tensors,
        update=update,
        int8_backward=int8_backward,
        quantized_forward=quantized_forward,
        batch=batch,
    )
    if plan.trainable_parameters == 0:
        raise UserError("nothing to train: the marked layers have no trainable parameters")
    largest = max(tensors, key=lambda t: t.size)
    if batch * largest.size > MAX_TENSOR_ELEMENTS:
        raise UserError(
            f"batch capacity {batch}: {batch} samples of tensor {largest.info.name!r} "
            f"({largest.size} values each) exceed the runtime's {MAX_TENSOR_ELEMENTS} per buffer"
        )
    _layout(plan, consumers)
    return plan


def _layout(plan: Plan, consumers: dict[int, list[int]]) -> None:
    """The arena layout; lib/peft/plan/peft_plan_layout.c mirrors it."""
    layers = plan.layers
    r: dict[str, int] = {}
    per_layer = plan.update == "layer"

    off = 0  # parameters: what trains (frozen biases are read from the model)
    for pl in layers:
        counts = pl.param_counts()
        for k, trains in enumerate(pl.trainable()):
            if trains:
                pl.params[k] = off
                off += _align(4 * counts[k])
    r["params_size"] = off

    for pl in layers:  # gradients of the trainable arrays, kept across samples
        counts = pl.param_counts()
        for k, trains in enumerate(pl.trainable()):
            if trains and not per_layer:
                pl.grads[k] = off
                off += _align(4 * counts[k])
    r["grads_size"] = off - r["params_size"]

    opt_start = off
    states = plan.optimizer.states_per_param
    for pl in layers:
        counts = pl.param_counts()
        for k, trains in enumerate(pl.trainable()):
            if trains and states >= 1:
                pl.opt_m[k] = off
                off += _align(4 * counts[k])
            if trains and states >= 2:
                pl.opt_v[k] = off
                off += _align(4 * counts[k])
    r["opt_size"] = off - opt_start

    plan.buffers = _buffers(plan, consumers)
    r["work_offset"] = off
    r["work_size"] = _place([b for b in plan.buffers if b.arena == 0], off)
    r["train_size"] = off + r["work_size"]
    r["infer_work_offset"] = r["params_size"]
    r["infer_work_size"] = _place([b for b in plan.buffers if b.arena == 1], r["params_size"])
    r["infer_size"] = r["params_size"] + r["infer_work_size"]
    plan.regions = r


def _buffers(plan: Plan, consumers: dict[int, list[int]]) -> list[Buffer]:
    """Every work buffer in table order: arena, kind, owner, part (the C side
    derives the same list in the same order and compares it with the table)."""
    layers, tensors = plan.layers, plan.tensors
    n = len(layers)
    s8 = plan.act_cache == "s8"
    per_layer = plan.update == "layer"
    nb = plan.batch  # per-sample buffers hold nb samples, stacked

    def bwd(k: int) -> int:
        return 2 * n - k

    def producer(t: int) -> int:
        return max(t - 1, 0)  # tensor t > 0 is the output of layer t - 1

    def last_forward(t: int) -> int:
        return max(consumers[t]) if consumers[t] else n  # the logits: read by the loss

    def last_keep(t: int) -> int | None:
        readers = [
            k for k in consumers[t] if layers[k].needs_input_values and layers[k].inputs[0] == t
        ]
        return bwd(min(readers)) if readers else None

    def size(pl: PlanLayer) -> int:
        return nb * tensors[pl.output].size

    out: list[Buffer] = []

    def add(
        arena: int, kind: str, owner: int, nbytes: int, first: int, last: int, part: int = 0
    ) -> None:
        size = _align(nbytes)
        out.append(Buffer(arena, BUFFER_KINDS[kind], owner, part, size, first, last, NONE, nbytes))

    # Training arena.
    for t, pt in enumerate(tensors):
        keep = last_keep(t)
        last = last_forward(t) if s8 or keep is None else max(last_forward(t), keep)
        add(0, "value", t, 4 * nb * pt.size, producer(t), last)
    if s8:
        for t, pt in enumerate(tensors):
            keep = last_keep(t)
            if keep is not None:
                add(0, "keep", t, nb * pt.size, producer(t), keep)
    for t, pt in enumerate(tensors):
        if pt.needs_grad:
            first = n if t == len(tensors) - 1 else bwd(max(consumers[t]))
            add(0, "grad", t, 4 * nb * pt.size, first, bwd(t - 1))
    for pl in layers:
        if pl.keeps_mask:
            add(0, "mask", pl.index, (size(pl) + 7) // 8, pl.index, bwd(pl.index))
    for pl in layers:
        if pl.scales_lin:
            add(0, "keep_lin", pl.index, (1 if s8 else 4) * size(pl), pl.index, bwd(pl.index))
    for pl in layers:
        if pl.lora:
            add(
                0,
                "keep_u",
                pl.index,
                4 * nb * pl.rows * pl.layer.lora_rank,
                pl.index,
                bwd(pl.index),
            )
    add(0, "probs", 0, 4 * nb * plan.num_classes, n, n)
    _forward_scratch(plan, out, 0, add)
    for pl in layers:
        if s8 and pl.needs_input_values:
            k = pl.index
            whole = nb * tensors[pl.inputs[0]].size
            rows = min(nb * pl.rows, BWD_IN_ROWS)
            staged = rows * pl.in_features if pl.streams_input else whole
            add(0, "bwd_in", k, 4 * staged, bwd(k), bwd(k))
    for pl in layers:
        if pl.scales_lin or pl.dora:  # DoRA: W0 x + B u recomputed, then n g
            add(0, "bwd_glin", pl.index, 4 * size(pl), bwd(pl.index), bwd(pl.index))
    for pl in layers:
        if pl.lora:
            k = pl.index
            add(0, "bwd_du", k, 4 * nb * pl.rows * pl.layer.lora_rank, bwd(k), bwd(k))
    if per_layer:
        for pl in layers:
            counts = pl.param_counts()
            for part, trains in enumerate(pl.trainable()):
                if trains:
                    k = pl.index
                    add(0, "param_grad", k, 4 * counts[part], bwd(k), bwd(k), part)
    for pl in layers:
        if pl.int8_input_grad:
            k = pl.index
            scratch = int8_backward_scratch_bytes(nb * pl.rows, pl.out_features)
            add(0, "bwd_s8s8", k, scratch, bwd(k), bwd(k))
    _scaled_input(plan, 0, add)
    for pl in layers:
        if pl.ia3_input:  # the op's input gradient, wrt l x
            k = pl.index
            add(0, "bwd_gx", k, 4 * nb * tensors[pl.inputs[0]].size, bwd(k), bwd(k))
    _rounded_weights(plan, 0, add)
    for pl in layers:
        if (pl.rounds_weights or pl.rounds_lora) and pl.backward_inputs[0]:
            k = pl.index
            add(0, "bwd_qw", k, _rounded_weights_bytes(pl), bwd(k), bwd(k))
    _dora_norms(plan, 0, add)

    # Inference arena.
    for t, pt in enumerate(tensors):
        add(1, "value", t, 4 * nb * pt.size, producer(t), last_forward(t))
    _forward_scratch(plan, out, 1, add)
    _scaled_input(plan, 1, add)
    _rounded_weights(plan, 1, add)
    _dora_norms(plan, 1, add)
    return out


def rounds_trained_weights(lay: Layer) -> bool:
    """With the quantized forward, a layer whose own weights train and that no method
    but BitFit adapts otherwise computes with its weights rounded to int8 as merge stores
    them (reference.round_weights), so that merge's codes are the ones it trained with."""
    return bool(lay.methods & TRAINING_WEIGHTS) and not lay.methods & ~(
        TRAINING_WEIGHTS | Method.BITFIT
    )


def rounds_lora(lay: Layer) -> bool:
    """With the quantized forward, a LoRA layer (no method but BitFit besides, one weight
    scale per output channel) computes with W0 + (alpha / r) B A rounded to int8 as merge
    stores it (reference.lora_rounded_weights), one output row at a time, its input
    gradient too (so it is not on the int8 backward path)."""
    return (
        bool(lay.methods & Method.LORA)
        and not lay.methods & ~(Method.LORA | Method.BITFIT)
        and lay.weights is not None
        and lay.weights.scale_count > 1
    )


def _rounded_weights_bytes(pl: PlanLayer) -> int:
    """fwd_qw / bwd_qw: the rounded weights (a LoRA layer's: one merged row) in float,
    then one scale per output channel."""
    assert pl.layer.weights is not None
    weights = pl.in_features if pl.rounds_lora else pl.layer.weights.count
    return 4 * (weights + pl.out_features)


def _rounded_weights(plan: Plan, arena: int, add: object) -> None:
    """The quantized forward's rounded trained weights (forward scratch, both arenas)."""
    for pl in plan.layers:
        if pl.rounds_weights or pl.rounds_lora:
            k = pl.index
            add(arena, "fwd_qw", k, _rounded_weights_bytes(pl), k, k)  # type: ignore[operator]


def _dora_norms(plan: Plan, arena: int, add: object) -> None:
    """DoRA's ||W0 + s B A|| per output channel (both arenas): it depends on the
    parameters only, so the runtime computes it when they change and every forward and
    backward in between reads it; live over the whole schedule, 0 .. 2L."""
    for pl in plan.layers:
        if pl.dora:
            add(arena, "dora_norm", pl.index, 4 * pl.out_features, 0, 2 * len(plan.layers))  # type: ignore[operator]


def _scaled_input(plan: Plan, arena: int, add: object) -> None:
    """IA3_INPUT's forward scratch: l x, what the layer's linear kernel reads."""
    for pl in plan.layers:
        if pl.ia3_input:
            k = pl.index
            nbytes = 4 * plan.batch * plan.tensors[pl.inputs[0]].size
            add(arena, "fwd_xs", k, nbytes, k, k)  # type: ignore[operator]


def _forward_scratch(plan: Plan, out: list[Buffer], arena: int, add: object) -> None:
    """Per-layer forward scratch (the same in both arenas, but LoRA's u, which
    training keeps in keep_u, and scale+shift's pre-scale output, which training
    with act_cache f32 writes to keep_lin directly)."""
    staged_lin = arena == 1 or plan.act_cache == "s8"
    for kind, wanted in (
        ("fwd_bias", lambda pl: pl.layer.bias is not None and not pl.train_bias),
        ("fwd_lin", lambda pl: pl.scales_lin and staged_lin),
        ("fwd_lora_out", lambda pl: pl.dora),  # LoRA adds B u into its output in place
        ("fwd_u", lambda pl: pl.lora and arena == 1),
    ):
        for pl in plan.layers:
            if not wanted(pl):
                continue
            k = pl.index
            if kind == "fwd_bias":
                nbytes = 4 * pl.out_features
            elif kind == "fwd_u":
                nbytes = 4 * plan.batch * pl.rows * pl.layer.lora_rank
            else:
                nbytes = 4 * plan.batch * plan.tensors[pl.output].size
            add(arena, kind, k, nbytes, k, k)  # type: ignore[operator]


def _place(bufs: list[Buffer], base: int) -> int:
    """Greedy by size, first fit (TFLM's GreedyMemoryPlanner): largest first, ties in
    table order; each buffer at the lowest offset clear of every placed buffer whose
    live range meets its own. Returns the region size; offsets include `base`."""
    order = sorted(range(len(bufs)), key=lambda i: (-bufs[i].size, i))
    placed: list[Buffer] = []
    for i in order:
        b = bufs[i]
        rivals = [p for p in placed if p.first <= b.last and b.first <= p.last]
        at = 0
        while True:
            ends = [
                p.offset + p.size
                for p in rivals
                if p.offset < at + b.size and at < p.offset + p.size
            ]
            if not ends:
                break
            at = max(ends)
        b.offset = at
        placed.append(b)
    top = max((b.offset + b.size for b in bufs), default=0)
    for b in bufs:
        b.offset += base
    return top


def lora_a_init(seed: int, graph_layer: int, rank: int, in_features: int) -> list[float]:
    """LoRA A as the C runtime initialises it (lib/peft/methods/peft_method_lora.c):
    xorshift32 seeded with (seed ^ (0x9E3779B9 * (graph_layer + 1))) | 1, each value
    bound * (2 u - 1) with u = (x >> 8) / 2^24 and bound = 1 / sqrt(in_features),
    row-major [rank][in_features]. Computed in float32 like the C code."""
    import numpy as np

    x = (seed ^ ((0x9E3779B9 * (graph_layer + 1)) & 0xFFFFFFFF)) & 0xFFFFFFFF
    x |= 1
    bound = np.float32(1.0) / np.sqrt(np.float32(in_features))
    out = []
    for _ in range(rank * in_features):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        u = np.float32(x >> 8) * np.float32(1.0 / (1 << 24))
        out.append(float(bound * (np.float32(2.0) * u - np.float32(1.0))))
    return out
