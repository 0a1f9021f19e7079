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


# The methods in bit order, as Kconfig, the C sources and the CLI name them.
METHOD_NAMES: tuple[str, ...] = tuple(m.name.lower() for m in Method if m != Method.NONE)


class ParamKind(IntEnum):
    """The parameter arrays a layer can have (plan records store an offset for each)."""

    WEIGHT = 0
    BIAS = 1
    GAMMA = 2
    BETA = 3
    LORA_A = 4
    LORA_B = 5


# Names of the kinds, as parameter keys f"{layer}/{kind}" use them.
PARAM_KINDS: tuple[str, ...] = tuple(k.name.lower() for k in ParamKind)


class CacheDtype(IntEnum):
    """Storage of the activations kept for backward."""

    F32 = 0
    S8 = 1  # int8 with each tensor's TFLite quantization


class Optimizer(IntEnum):
    """Optimizer kinds (plan header, state header)."""

    SGD = 0
    ADAM = 1


class TrainRegion(IntEnum):
    """Regions of the training arena, in arena order (plan header sizes)."""

    PARAMS = 0
    PARAM_GRADS = 1
    OPTIMIZER_STATE = 2
    CACHE = 3
    SLOTS = 4
    SCRATCH = 5


class InferRegion(IntEnum):
    """Regions of the inference arena after the parameters (plan header sizes)."""

    SLOTS = 0
    SCRATCH = 1


class TrainScratch(IntEnum):
    """A layer's training scratch items (layer record, in layout order)."""

    IN0 = 0  # float staging of int8-cached input 0
    IN1 = 1  # ... of input 1
    OUT = 2  # ... of the output
    TMP_A = 3  # output-sized (LoRA forward branch, scale+shift input gradient)
    TMP_B = 4  # rows x r (LoRA u gradient)


class InferScratch(IntEnum):
    """A layer's inference scratch items (layer record, in layout order)."""

    LIN = 0  # linear output before scale+shift
    TMP_A = 1
    TMP_B = 2


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
    ERR_STATE_TRUNCATED = 30
    ERR_STATE_MAGIC = 31
    ERR_STATE_VERSION = 32
    ERR_STATE_LENGTH = 33
    ERR_STATE_CRC = 34
    ERR_STATE_PLAN_MISMATCH = 35


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
        "NaN or infinity in loss or gradient",
        "A NaN or infinity appeared (loss or gradient).",
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
        ParamKind,
        "PEFT_PARAM_",
        "peft_param_kind",
        count="PARAM_KIND_COUNT",
        doc="The parameter arrays a layer can have; the plan stores buffer offsets for each.",
    ),
    CEnum(CacheDtype, "PEFT_CACHE_", "peft_cache_dtype", doc=CacheDtype.__doc__ or ""),
    CEnum(Optimizer, "PEFT_OPTIMIZER_", "peft_optimizer_kind", doc=Optimizer.__doc__ or ""),
    CEnum(TrainRegion, "PEFT_TRAIN_", count="TRAIN_REGION_COUNT", doc=TrainRegion.__doc__ or ""),
    CEnum(InferRegion, "PEFT_INFER_", count="INFER_REGION_COUNT", doc=InferRegion.__doc__ or ""),
    CEnum(TrainScratch, "PEFT_S_", count="S_TRAIN_COUNT", doc=TrainScratch.__doc__ or ""),
    CEnum(InferScratch, "PEFT_SI_", count="S_INFER_COUNT", doc=InferScratch.__doc__ or ""),
    # cm4/fw/peft_cm4.h spells these out for the bare-metal harness (it includes no
    # runtime header); tests/python/test_formats.py checks it against this class.
    CEnum(Cm4Phase, "PEFT_CM4_", doc=Cm4Phase.__doc__ or "", in_c_header=False),
)
