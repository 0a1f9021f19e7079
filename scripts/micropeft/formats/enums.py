"""Every enum that crosses the Python/C boundary, with its C spelling.

The Python classes are the ones the package uses (graph.Op, graph.Method,
runtime.Status ... are these); `ENUMS` says how each is written in the
generated C header (include/peft/peft_formats.h).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag


class Op(IntEnum):
    """Operators of the trainable part (the plan layer record's op byte)."""

    CONV_2D = 1
    DEPTHWISE_CONV_2D = 2
    FULLY_CONNECTED = 3
    ADD = 4
    MEAN = 5
    AVERAGE_POOL_2D = 6
    PAD = 7
    RESHAPE = 8


class Activation(IntEnum):
    """Fused activation of a layer (TFLite's fused_activation_function)."""

    NONE = 0
    RELU = 1
    RELU6 = 2


class Method(IntFlag):
    """Why a layer trains something; a layer may carry several (combinations)."""

    NONE = 0
    FULL = 1  # weights and biases
    LAST_LAYER = 2  # weights and biases of the classifier head
    BITFIT = 4  # biases
    SCALE_SHIFT = 8  # per-channel gamma/beta after the layer's linear part
    LORA = 16  # low-rank adapter A (r x in), B (out x r) on 1x1 conv / FC
    SPARSE = 32  # weights and biases of chosen layers
    DORA = 64  # weight-decomposed LoRA: magnitude m per output channel + LoRA direction A, B
    IA3 = 128  # IA3: a per-output-channel scaling l of the layer's output (HF PEFT IA3Config)
    # IA3 on a feedforward module (HF PEFT IA3Config.feedforward_modules): a per-input-channel
    # scaling l of the layer's input, lin = W (l x) + b
    IA3_INPUT = 256


# The methods in bit order, as Kconfig, the C sources and the CLI name them.
METHOD_NAMES: tuple[str, ...] = tuple(m.name.lower() for m in Method if m != Method.NONE)


class PlanFlag(IntFlag):
    """Options of the whole plan (plan header flags); a runtime refuses a bit it does
    not know (ERR_PLAN_FIELD) or one whose code its build leaves out."""

    NONE = 0
    # The input gradient through a frozen int8 pointwise conv / FC layer with the output
    # gradient quantized per row to int8 (peft_fc_bwd_input_s8s8; CONFIG_PEFT_INT8_BACKWARD).
    INT8_BACKWARD = 1
    # Quantization-aware forward: every layer output except the logits is fake-quantized to
    # its tensor's int8 quantization as TFLite's int8 kernels round it (a conv / dense
    # output first to its requantization multiplier's grid, a trained bias in int32 steps),
    # in training and inference, with a straight-through gradient; the merged int8 model then
    # computes what the runtime trained (deploy/merge.py keeps the model's activation ranges).
    QUANTIZED_FORWARD = 2


class ParamKind(IntEnum):
    """The parameter arrays a layer can have (plan records store an offset for each)."""

    WEIGHT = 0
    BIAS = 1
    GAMMA = 2
    BETA = 3
    LORA_A = 4
    LORA_B = 5
    DORA_M = 6  # DoRA's magnitude, one per output channel
    IA3_L = 7  # IA3's scaling vector, one per output channel
    IA3_IN = 8  # IA3's scaling vector of a feedforward module, one per input channel


# Names of the kinds, as parameter keys f"{layer}/{kind}" use them.
PARAM_KINDS: tuple[str, ...] = tuple(k.name.lower() for k in ParamKind)


class ParamSize(IntEnum):
    """How many floats a layer's array of one ParamKind holds (the loader recomputes it)."""

    WEIGHTS = 0  # as many as the layer's weight tensor
    BIAS = 1  # as many as the layer's bias tensor
    OUT = 2  # one per output feature
    RANK_IN = 3  # LoRA rank x input features
    OUT_RANK = 4  # output features x LoRA rank
    IN = 5  # one per input feature (FC) or input channel (convolutions)


# Each ParamKind's size and the methods whose layers have the array (NONE: every layer that
# has the tensor), in ParamKind order: the plan writer and the C loader both count from it.
PARAM_ARRAYS: dict[ParamKind, tuple[ParamSize, Method]] = {
    ParamKind.WEIGHT: (ParamSize.WEIGHTS, Method.NONE),
    ParamKind.BIAS: (ParamSize.BIAS, Method.NONE),
    ParamKind.GAMMA: (ParamSize.OUT, Method.SCALE_SHIFT),
    ParamKind.BETA: (ParamSize.OUT, Method.SCALE_SHIFT),
    ParamKind.LORA_A: (ParamSize.RANK_IN, Method.LORA | Method.DORA),
    ParamKind.LORA_B: (ParamSize.OUT_RANK, Method.LORA | Method.DORA),
    ParamKind.DORA_M: (ParamSize.OUT, Method.DORA),
    ParamKind.IA3_L: (ParamSize.OUT, Method.IA3),
    ParamKind.IA3_IN: (ParamSize.IN, Method.IA3_INPUT),
}


class CacheDtype(IntEnum):
    """Storage of the activations kept for backward."""

    F32 = 0
    S8 = 1  # int8 with each tensor's TFLite quantization


class Optimizer(IntEnum):
    """Optimizer kinds (plan header, state header)."""

    SGD = 0
    ADAM = 1


class UpdateMode(IntEnum):
    """When the optimizer updates the parameters (plan header)."""

    BATCH = 0  # step() applies the mean of the accumulated gradients
    LAYER = 1  # each layer's update during backward, per sample, no gradients kept


class TrainRegion(IntEnum):
    """Regions of the training arena, in arena order (plan header sizes)."""

    PARAMS = 0
    PARAM_GRADS = 1
    OPTIMIZER_STATE = 2
    WORK = 3  # every other buffer, laid out by lifetime (buffer records)


class Arena(IntEnum):
    """The arena a work buffer belongs to (buffer record)."""

    TRAIN = 0
    INFER = 1  # after the parameters


class BufferKind(IntEnum):
    """Kinds of work-region buffers (buffer record). The owner is a plan tensor
    (VALUE, KEEP, GRAD), a plan layer, or 0 (PROBS); a runtime refuses a kind it
    does not know (ERR_PLAN_BUFFER_KIND)."""

    VALUE = 1  # a tensor's float values (kept for backward with act_cache f32)
    KEEP = 2  # a tensor kept int8 for a weight / LoRA A gradient (act_cache s8)
    GRAD = 3  # a tensor's activation gradient
    MASK = 4  # 1 bit per output element: the fused ReLU/ReLU6 derivative
    KEEP_LIN = 5  # scale+shift's pre-scale output (act_cache dtype, output's quantization)
    KEEP_U = 6  # LoRA's u = (alpha / r) A x, float
    PROBS = 7  # softmax output
    FWD_BIAS = 8  # forward scratch: a frozen bias dequantised from the model
    FWD_LIN = 9  # forward scratch: scale+shift's pre-scale output
    FWD_LORA_OUT = 10  # forward scratch: DoRA's B u (LoRA adds it into its output)
    FWD_U = 11  # forward scratch (inference): LoRA's u
    BWD_IN = 12  # backward scratch: the kept int8 input, dequantised (LoRA: BWD_IN_ROWS rows)
    # backward scratch: scale+shift's gradient wrt its input; with act_cache S8 it first
    # holds the kept pre-scale output, dequantised, for gamma's gradient (read before)
    BWD_GLIN = 13
    BWD_DU = 14  # backward scratch: LoRA's gradient wrt u
    PARAM_GRAD = 15  # per-layer updates: a parameter gradient during its layer's backward
    BWD_S8S8 = 16  # backward scratch of the int8 path (peft_fc_bwd_input_s8s8_get_buffer_size)
    FWD_XS = 17  # forward scratch: IA3_INPUT's scaled input l x (the layer's input size)
    BWD_GX = 18  # backward scratch: IA3_INPUT's gradient wrt the scaled input (input size)
    # forward scratch (quantized forward): trained weights rounded to int8 as merge stores
    # them, in float, then their per-channel scales (weight count + output channels)
    FWD_QW = 19
    BWD_QW = 20  # backward scratch: the same, recomputed for the input gradient
    # DoRA's ||W0 + s B A|| per output channel, live over the whole schedule: computed when
    # the parameters change (init, optimizer update, state import), read by every forward
    # and backward in between
    DORA_NORM = 21


class Cm4Phase(IntEnum):
    """Phase marks of the Cortex-M4F harness (cm4/fw/peft_cm4.h, cm4.py)."""

    FORWARD = 1
    BACKWARD = 2
    SAMPLE_END = 3
    OPTIMIZER = 4
    STEP_END = 5
    INFER = 6
    INFER_END = 7
    REGION = 8
    REGION_END = 9


class Status(IntEnum):
    """Status codes of every C call (values are ABI)."""

    OK = 0
    ERR_ARG = 1
    ERR_BUFFER_TOO_SMALL = 2
    ERR_UNSUPPORTED = 3
    ERR_NUMERIC = 4
    ERR_DIVERGED = 5
    ERR_LOGITS_NONFINITE = 6
    ERR_PARAMS_NONFINITE = 7
    ERR_PLAN_TRUNCATED = 10
    ERR_PLAN_MAGIC = 11
    ERR_PLAN_VERSION = 12
    ERR_PLAN_LENGTH = 13
    ERR_PLAN_CRC = 14
    ERR_PLAN_MODEL_MISMATCH = 15
    ERR_PLAN_FIELD = 16
    ERR_PLAN_MODEL_OFFSET = 17
    ERR_PLAN_ARENA_OFFSET = 18
    ERR_PLAN_METHOD_NOT_COMPILED = 19
    ERR_PLAN_ALIGNMENT = 20
    ERR_PLAN_SHAPE = 21
    ERR_PLAN_INT8_NOT_COMPILED = 22
    ERR_PLAN_BUFFER_KIND = 28
    ERR_STATE_TRUNCATED = 30
    ERR_STATE_MAGIC = 31
    ERR_STATE_VERSION = 32
    ERR_STATE_LENGTH = 33
    ERR_STATE_CRC = 34
    ERR_STATE_PLAN_MISMATCH = 35
    ERR_STATE_NONFINITE = 36


# What peft_status_str() answers, and the doc comment of each code.
STATUS_TEXT: dict[Status, tuple[str, str]] = {
    Status.OK: ("ok", ""),
    Status.ERR_ARG: ("invalid argument", "NULL pointer or out-of-range argument."),
    Status.ERR_BUFFER_TOO_SMALL: (
        "buffer too small",
        "Caller's buffer or arena is smaller than required.",
    ),
    Status.ERR_UNSUPPORTED: (
        "unsupported operator or shape",
        "Operator/shape combination the kernels do not handle.",
    ),
    Status.ERR_NUMERIC: (
        "NaN or infinity in loss, gradient or update",
        "A NaN or infinity appeared (loss, gradient or update); a step returning it changed "
        "nothing.",
    ),
    Status.ERR_DIVERGED: (
        "training diverged (loss or parameter beyond its bound)",
        "Loss above the trainer's bound, or an update would take a parameter beyond its "
        "bound; nothing was applied.",
    ),
    Status.ERR_LOGITS_NONFINITE: (
        "NaN or infinity in the logits",
        "predict: a logit is NaN or infinite.",
    ),
    Status.ERR_PARAMS_NONFINITE: (
        "NaN or infinity in the parameters",
        "export: a parameter or optimizer value is not finite; nothing was written.",
    ),
    Status.ERR_PLAN_TRUNCATED: ("plan truncated", "Shorter than its header or declared length."),
    Status.ERR_PLAN_MAGIC: ("plan: bad magic", "Not a plan blob."),
    Status.ERR_PLAN_VERSION: (
        "plan: unsupported version",
        "Format version this runtime does not read.",
    ),
    Status.ERR_PLAN_LENGTH: (
        "plan: length mismatch",
        "Declared length disagrees with the blob or sections.",
    ),
    Status.ERR_PLAN_CRC: ("plan: CRC mismatch", "CRC32 mismatch: corrupted blob."),
    Status.ERR_PLAN_MODEL_MISMATCH: (
        "plan: made for another model",
        "Plan was made for another model (CRC/length).",
    ),
    Status.ERR_PLAN_FIELD: (
        "plan: invalid field",
        "A field holds an invalid value (op, index, shape...).",
    ),
    Status.ERR_PLAN_MODEL_OFFSET: (
        "plan: weight reference outside the model",
        "A weight reference points outside the model.",
    ),
    Status.ERR_PLAN_ARENA_OFFSET: (
        "plan: buffer offset disagrees with the runtime layout",
        "A buffer offset disagrees with the runtime's layout.",
    ),
    Status.ERR_PLAN_METHOD_NOT_COMPILED: (
        "plan: method not compiled in",
        "Plan needs a method/optimizer left out of the build.",
    ),
    Status.ERR_PLAN_ALIGNMENT: (
        "plan or model not 4-byte aligned",
        "Model or blob base not 4-byte aligned.",
    ),
    Status.ERR_PLAN_SHAPE: (
        "plan: tensor shape beyond the runtime's bound",
        "A dimension or element count beyond the runtime's bound.",
    ),
    Status.ERR_PLAN_INT8_NOT_COMPILED: (
        "plan: int8 backward path not compiled in",
        "Plan needs the int8 backward path; CONFIG_PEFT_INT8_BACKWARD compiles it in.",
    ),
    Status.ERR_PLAN_BUFFER_KIND: (
        "plan: unknown buffer kind",
        "A buffer record of a kind this runtime does not know.",
    ),
    Status.ERR_STATE_TRUNCATED: ("state truncated", "Shorter than its header or declared length."),
    Status.ERR_STATE_MAGIC: ("state: bad magic", "Not a state blob."),
    Status.ERR_STATE_VERSION: (
        "state: unsupported version",
        "Format version this runtime does not read.",
    ),
    Status.ERR_STATE_LENGTH: (
        "state: length mismatch",
        "Declared length or sizes disagree with the plan.",
    ),
    Status.ERR_STATE_CRC: ("state: CRC mismatch", "CRC32 mismatch: corrupted blob."),
    Status.ERR_STATE_PLAN_MISMATCH: (
        "state: saved for another plan",
        "State was saved for another plan.",
    ),
    Status.ERR_STATE_NONFINITE: (
        "state: NaN or infinity in the stored values",
        "A stored parameter or optimizer value is not finite.",
    ),
}


@dataclass(frozen=True)
class CEnum:
    """How one Python enum is written in C.

    prefix: the members' macro prefix (PEFT_OP_ ...); c_type: a typedef name
    (None: an anonymous enum); count: also emit PEFT_<count> = number of members
    (for a flag enum: of bits), used as the bound of loops over all members."""

    py: type[IntEnum] | type[IntFlag]
    prefix: str
    c_type: str | None = None
    count: str | None = None
    all_name: str | None = None  # flags: PEFT_<all_name> = every bit
    doc: str = ""
    in_c_header: bool = True  # False: C defines it elsewhere, a test compares


ENUMS: tuple[CEnum, ...] = (
    CEnum(Status, "PEFT_", "peft_status", doc="Status codes returned by every micropeft call."),
    CEnum(Op, "PEFT_OP_", count="OP_COUNT", doc="Operator codes (plan layer record)."),
    CEnum(Activation, "PEFT_ACT_", "peft_activation", doc=Activation.__doc__ or ""),
    CEnum(
        Method,
        "PEFT_METHOD_",
        count="METHOD_COUNT",
        all_name="METHOD_ALL",
        doc="Method flags (plan layer record); bit i is method i of PEFT_METHOD_COUNT.",
    ),
    CEnum(
        PlanFlag,
        "PEFT_PLAN_FLAG_",
        all_name="PLAN_FLAGS_ALL",
        doc="Plan flags (plan header); a runtime refuses a bit outside PEFT_PLAN_FLAGS_ALL.",
    ),
    CEnum(
        ParamKind,
        "PEFT_PARAM_",
        "peft_param_kind",
        count="PARAM_KIND_COUNT",
        doc="The parameter arrays a layer can have; the plan stores buffer offsets for each.",
    ),
    CEnum(
        ParamSize,
        "PEFT_PARAM_SIZE_",
        "peft_param_size",
        doc="How many floats a layer's parameter array holds (PEFT_PARAM_ARRAY_LIST).",
    ),
    CEnum(CacheDtype, "PEFT_CACHE_", "peft_cache_dtype", doc=CacheDtype.__doc__ or ""),
    CEnum(Optimizer, "PEFT_OPTIMIZER_", "peft_optimizer_kind", doc=Optimizer.__doc__ or ""),
    CEnum(UpdateMode, "PEFT_UPDATE_", "peft_update_mode", doc=UpdateMode.__doc__ or ""),
    CEnum(TrainRegion, "PEFT_TRAIN_", count="TRAIN_REGION_COUNT", doc=TrainRegion.__doc__ or ""),
    CEnum(Arena, "PEFT_ARENA_", doc=Arena.__doc__ or ""),
    CEnum(BufferKind, "PEFT_BUF_", "peft_buffer_kind", doc=BufferKind.__doc__ or ""),
    # cm4/fw/peft_cm4.h spells these out for the bare-metal harness (it includes no
    # runtime header); tests/python/test_formats.py checks it against this class.
    CEnum(Cm4Phase, "PEFT_CM4_", doc=Cm4Phase.__doc__ or "", in_c_header=False),
)
