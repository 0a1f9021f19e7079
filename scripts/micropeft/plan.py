"""The planner: from a marked Graph to the plan blob that the C runtime reads.

`build_plan` chooses the split point (the first layer that trains anything,
moved earlier if a residual skip would cross it), lays out every buffer of the
training and inference arenas, and writes the blob (docs/formats.md, "Plan
blob"). The C reader (lib/peft/plan) recomputes the same layout with the same
algorithm and refuses a plan whose offsets differ, so the arena sizes below are
the exact numbers the device uses.

Layout (all offsets in bytes, every buffer 16-byte aligned):

    train:  parameters | parameter gradients | optimizer state | activation cache
            | slots | scratch
    infer:  parameters | slots | scratch

Slots are `slot_size` bytes each (the largest float tensor). In training the
slot region holds the forward temporaries (tensors that backward does not need)
during the forward pass and the activation gradients during backward; both are
allocated by liveness, lowest free slot first.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

from micropeft import formats
from micropeft.errors import UserError
from micropeft.graph import Activation, ArrayRef, Graph, Layer, Method, Op, TensorInfo

PLAN_VERSION = formats.PLAN.version
HEADER_SIZE = formats.PLAN_HEADER.size
TENSOR_RECORD_SIZE = formats.PLAN_TENSOR.size
LAYER_RECORD_SIZE = formats.PLAN_LAYER.size
NONE = formats.NONE  # "no buffer" in an offset field
NO_INPUT = formats.NO_INPUT
ALIGN = formats.LIMIT["ALIGN"]
MAX_SLOTS = formats.LIMIT["MAX_SLOTS"]  # the C allocator tracks slots in a 64-bit mask
MAX_TENSOR_ELEMENTS = formats.LIMIT["MAX_TENSOR_ELEMENTS"]
MAX_LORA_RANK = formats.LIMIT["MAX_LORA_RANK"]

CACHE_DTYPES = {d.name.lower(): int(d) for d in formats.CacheDtype}
OPTIMIZERS = {o.name.lower(): int(o) for o in formats.Optimizer}
LINEAR_OPS = (Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.FULLY_CONNECTED)


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
    lora: bool = False
    runs_backward: bool = False
    backward_inputs: list[bool] = field(default_factory=list)
    needs_input_values: bool = False
    needs_output_values: bool = False
    params: list[int] = field(default_factory=lambda: [NONE] * len(formats.ParamKind))
    grads: list[int] = field(default_factory=lambda: [NONE] * len(formats.ParamKind))
    opt_m: list[int] = field(default_factory=lambda: [NONE] * len(formats.ParamKind))
    opt_v: list[int] = field(default_factory=lambda: [NONE] * len(formats.ParamKind))
    cache_z: int = NONE
    cache_u: int = NONE
    scratch_train: list[int] = field(default_factory=lambda: [NONE] * len(formats.TrainScratch))
    scratch_infer: list[int] = field(default_factory=lambda: [NONE] * len(formats.InferScratch))

    def param_counts(self) -> list[int]:
        """Float counts of weight, bias, gamma, beta, lora_a, lora_b (0: absent)."""
        lay = self.layer
        out_c = self.out_features
        weight = lay.weights.count if lay.weights is not None else 0
        bias = lay.bias.count if lay.bias is not None else 0
        r = lay.lora_rank if self.lora else 0
        ss = out_c if self.scale_shift else 0
        return [weight, bias, ss, ss, r * self.in_features, out_c * r]

    def trainable(self) -> list[bool]:
        return [
            self.train_weight,
            self.train_bias,
            self.scale_shift,
            self.scale_shift,
            self.lora,
            self.lora,
        ]


@dataclass
class PlanTensor:
    graph_index: int
    info: TensorInfo
    cached: bool = False
    needs_grad: bool = False
    cache_offset: int = NONE
    fwd_offset: int = NONE
    grad_offset: int = NONE
    infer_offset: int = NONE

    @property
    def size(self) -> int:
        return self.info.size


class _Slots:
    """Lowest-free-slot allocator (the C side uses the same rule)."""

    def __init__(self) -> None:
        self.used: set[int] = set()
        self.peak = 0

    def alloc(self) -> int:
        i = 0
        while i in self.used:
            i += 1
        if i >= MAX_SLOTS:
            raise UserError(f"plan needs more than {MAX_SLOTS} live buffers at once")
        self.used.add(i)
        self.peak = max(self.peak, i + 1)
        return i

    def free(self, i: int) -> None:
        self.used.remove(i)


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
    regions: dict[str, int] = field(default_factory=dict)

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

    def breakdown(self) -> dict[str, int]:
        """How the training arena splits (same figures as peft_plan_arena_breakdown)."""
        r = self.regions
        parts = {
            "cached_activations": r["cache_size"],
            "gradients": r["grads_size"] + r["slots_size"],
            "parameters": r["params_size"],
            "optimizer_state": r["opt_size"],
            "scratch": r["scratch_size"],
        }
        parts["total"] = sum(parts.values())
        return parts

    def macs(self) -> dict[str, int]:
        """Multiply-accumulates per training sample: the TFLM prefix forward, the
        runtime's forward (LoRA included) and the backward the plan computes.
        Linear layers count their MACs; pooling/mean one per input element."""
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
                if pl.backward_inputs[0]:
                    backward += base
                if pl.lora:
                    r = lay.lora_rank
                    backward += 2 * pl.rows * r * pl.out_features  # dB, B^T g
                    backward += pl.rows * pl.in_features * r  # dA
                    if pl.backward_inputs[0]:
                        backward += pl.rows * pl.in_features * r  # A^T du
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
        nt, nl = len(self.tensors), len(self.layers)
        total = HEADER_SIZE + nt * TENSOR_RECORD_SIZE + nl * LAYER_RECORD_SIZE
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
            slot_size=r["slot_size"],
            train_region_size=[r[name] for name in _TRAIN_REGION_KEYS],
            train_size=r["train_size"],
            infer_region_size=[r[name] for name in _INFER_REGION_KEYS],
            infer_size=r["infer_size"],
            probs_offset=r["probs_offset"],
            trainable_params=self.trainable_parameters,
            tensor_record_size=TENSOR_RECORD_SIZE,
            layer_record_size=LAYER_RECORD_SIZE,
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
                cache_offset=t.cache_offset,
                fwd_offset=t.fwd_offset,
                grad_offset=t.grad_offset,
                infer_offset=t.infer_offset,
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
                cache_z=pl.cache_z,
                cache_u=pl.cache_u,
                scratch_train=pl.scratch_train,
                scratch_infer=pl.scratch_infer,
            )
            pos += LAYER_RECORD_SIZE
        return formats.PLAN.seal(blob)

    def parameter_name(self, plan_layer: int, kind: int) -> str:
        """Key of a trainable array, as runtime.Trainer.parameters() uses it."""
        return f"{self.layers[plan_layer].layer.name}/{formats.PARAM_KINDS[kind]}"


# Plan.regions keys of the header's region sizes, in TrainRegion / InferRegion order.
_TRAIN_REGION_KEYS = (
    "params_size",
    "grads_size",
    "opt_size",
    "cache_size",
    "slots_size",
    "scratch_size",
)
_INFER_REGION_KEYS = ("infer_slots_size", "infer_scratch_size")
assert len(_TRAIN_REGION_KEYS) == len(formats.TrainRegion)
assert len(_INFER_REGION_KEYS) == len(formats.InferRegion)


def _ref_fields(ref: ArrayRef | None) -> dict[str, int]:
    if ref is None:
        return {"offset": 0, "count": 0, "scale_offset": 0, "scale_count": 0}
    return {
        "offset": ref.offset,
        "count": ref.count,
        "scale_offset": ref.scale_offset,
        "scale_count": ref.scale_count,
    }


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
    if lay.methods & Method.LORA:
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
    act_cache: str = "f32",
    seed: int = 0,
) -> Plan:
    """Lay out the trainable part of `graph` (layers marked by methods.py)."""
    optimizer.check()
    if act_cache not in CACHE_DTYPES:
        raise UserError(f"unknown activation cache {act_cache!r} (use 'f32' or 's8')")
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
        pl.lora = bool(lay.methods & Method.LORA)
        _check_layer(lay, pl, tensors)
        tensors[pl.output].needs_grad = any(pl.trainable()) or any(
            tensors[t].needs_grad for t in pl.inputs
        )
        pl.runs_backward = tensors[pl.output].needs_grad
        pl.backward_inputs = [tensors[t].needs_grad for t in pl.inputs]
        pl.needs_input_values = pl.train_weight or pl.lora
        pl.needs_output_values = pl.runs_backward and lay.activation != Activation.NONE
        if pl.needs_input_values:
            tensors[pl.inputs[0]].cached = True
        if pl.needs_output_values:
            tensors[pl.output].cached = True

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
    )
    if plan.trainable_parameters == 0:
        raise UserError("nothing to train: the marked layers have no trainable parameters")
    _layout(plan, consumers)
    return plan


def _layout(plan: Plan, consumers: dict[int, list[int]]) -> None:
    """The arena layout; lib/peft/plan/peft_plan_layout.c mirrors it line by line."""
    layers, tensors = plan.layers, plan.tensors
    s8 = plan.act_cache == "s8"
    r: dict[str, int] = {}

    off = 0  # parameters: weight (trained), bias (always), gamma, beta, lora_a, lora_b
    for pl in layers:
        counts = pl.param_counts()
        present = [pl.train_weight, counts[1] > 0, pl.scale_shift, pl.scale_shift, pl.lora, pl.lora]
        for k in range(6):
            if present[k]:
                pl.params[k] = off
                off += _align(4 * counts[k])
    r["params_size"] = off

    for pl in layers:  # gradients of the trainable arrays
        counts = pl.param_counts()
        for k, trains in enumerate(pl.trainable()):
            if trains:
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

    cache_start = off
    elem = 1 if s8 else 4
    if tensors[0].cached:
        tensors[0].cache_offset = off
        off += _align(elem * tensors[0].size)
    for pl in layers:
        out_size = tensors[pl.output].size
        if pl.scale_shift:
            pl.cache_z = off
            off += _align(4 * out_size)
        if pl.lora:
            pl.cache_u = off
            off += _align(4 * pl.rows * pl.layer.lora_rank)
        t = tensors[pl.output]
        if t.cached:
            t.cache_offset = off
            off += _align(elem * t.size)
    r["probs_offset"] = off
    off += _align(4 * plan.num_classes)
    r["cache_size"] = off - cache_start

    slot_size = _align(4 * max(t.size for t in tensors))
    r["slot_size"] = slot_size
    slots_start = off
    last_use = {i: max(c) if c else len(layers) for i, c in consumers.items()}

    # Forward temporaries (tensors not cached), then gradients, share the slots.
    fwd = _Slots()
    index: dict[int, int] = {}
    if not tensors[0].cached:
        index[0] = fwd.alloc()
    for pl in layers:
        if not tensors[pl.output].cached:
            index[pl.output] = fwd.alloc()
        for t in dict.fromkeys(pl.inputs):
            if not tensors[t].cached and last_use[t] == pl.index:
                fwd.free(index[t])
    for t, i in index.items():
        tensors[t].fwd_offset = slots_start + i * slot_size

    bwd = _Slots()
    gindex: dict[int, int] = {len(tensors) - 1: bwd.alloc()}
    for pl in reversed(layers):
        if not pl.runs_backward:
            continue
        for t, needs in zip(pl.inputs, pl.backward_inputs, strict=True):
            if needs and t not in gindex:
                gindex[t] = bwd.alloc()
        bwd.free(gindex[pl.output])
    for t, i in gindex.items():
        tensors[t].grad_offset = slots_start + i * slot_size
    r["slots_size"] = max(fwd.peak, bwd.peak) * slot_size
    off += r["slots_size"]

    scratch_start = off
    scratch = 0
    for pl in layers:
        out_size = tensors[pl.output].size
        sizes = [0] * 5
        if s8 and tensors[pl.inputs[0]].cached:
            sizes[0] = 4 * tensors[pl.inputs[0]].size
        if s8 and len(pl.inputs) > 1 and tensors[pl.inputs[1]].cached:
            sizes[1] = 4 * tensors[pl.inputs[1]].size
        if s8 and tensors[pl.output].cached:
            sizes[2] = 4 * out_size
        if pl.lora or pl.scale_shift:
            sizes[3] = 4 * out_size
        if pl.lora:
            sizes[4] = 4 * pl.rows * pl.layer.lora_rank
        pos = scratch_start
        for k in range(5):
            if sizes[k]:
                pl.scratch_train[k] = pos
                pos += _align(sizes[k])
        scratch = max(scratch, pos - scratch_start)
    r["scratch_size"] = scratch
    r["train_size"] = off + scratch

    # Inference: parameters, then every tensor in a slot, then scratch.
    inf = _Slots()
    iindex = {0: inf.alloc()}
    for pl in layers:
        iindex[pl.output] = inf.alloc()
        for t in dict.fromkeys(pl.inputs):
            if last_use[t] == pl.index:
                inf.free(iindex[t])
    base = r["params_size"]
    for t, i in iindex.items():
        tensors[t].infer_offset = base + i * slot_size
    r["infer_slots_size"] = inf.peak * slot_size
    iscratch_start = base + r["infer_slots_size"]
    iscratch = 0
    for pl in layers:
        out_size = tensors[pl.output].size
        sizes = [
            4 * out_size if pl.scale_shift else 0,
            4 * out_size if pl.lora else 0,
            4 * pl.rows * pl.layer.lora_rank if pl.lora else 0,
        ]
        pos = iscratch_start
        for k in range(3):
            if sizes[k]:
                pl.scratch_infer[k] = pos
                pos += _align(sizes[k])
        iscratch = max(iscratch, pos - iscratch_start)
    r["infer_scratch_size"] = iscratch
    r["infer_size"] = iscratch_start + iscratch
    plan.regions = r


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
