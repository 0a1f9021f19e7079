"""Every blob the device reads: the common header, the plan, the trained state,
the model+plan container and the dataset, and the limits the readers enforce.

All integers are little-endian. Each blob starts with BLOB_HEADER (magic,
version, header size, total length, CRC32 of the bytes from CRC_START to the
total length), followed by its own fields.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from micropeft.formats.enums import Method, ParamKind, TrainRegion
from micropeft.formats.layout import MAGIC, PAD, Field, Layout

NONE = 0xFFFFFFFF  # "no buffer" in an offset field
NO_INPUT = 0xFFFF  # absent second input of a layer record


@dataclass(frozen=True)
class Limit:
    name: str  # PEFT_<name> in C
    value: int
    doc: str
    unsigned: bool = False  # C: an unsigned constant (compared with unsigned fields)
    hex: bool = False


LIMITS: tuple[Limit, ...] = (
    Limit("NONE", NONE, "An absent buffer in an offset field.", unsigned=True, hex=True),
    Limit("NO_INPUT", NO_INPUT, "An absent second input of a layer record.", True, True),
    Limit("ALIGN", 16, "Every arena buffer is rounded up to this many bytes.", unsigned=True),
    Limit("MAX_TENSOR_ELEMENTS", 1 << 24, "Elements of one tensor."),
    Limit("MAX_LORA_RANK", 64, "Largest LoRA rank r (the smallest is 1)."),
    Limit("MAX_KERNEL", 1024, "Largest kernel size or stride of one axis."),
    Limit(
        "LR_DECAY_STEPS_LIMIT",
        1 << 24,
        "A linear schedule has fewer updates (its step counts convert to float exactly).",
        unsigned=True,
    ),
    Limit("MAX_BATCH", 256, "Largest batch capacity of a plan (samples per call)."),
    Limit("MIN_CLASSES", 2, "Fewest classes of a dataset blob."),
    Limit("MAX_CLASSES", 255, "Most classes of a dataset blob (labels are u8)."),
    Limit(
        "BWD_IN_ROWS",
        4,
        "Rows of a LoRA layer's int8-kept input dequantised at once for A's gradient.",
    ),
    Limit(
        "S8S8_ROWS",
        32,
        "Output-gradient rows the int8 path quantizes at once: its scratch holds this many "
        "(or every row of a smaller call), the weight columns widened once per chunk.",
    ),
    Limit(
        "METHODS_NOT_WITH_IA3_INPUT",
        int(
            Method.FULL | Method.LAST_LAYER | Method.SPARSE | Method.LORA | Method.DORA | Method.IA3
        ),
        "Methods that share no layer with IA3_INPUT: their weight and LoRA A gradients would "
        "need l x rather than the kept x; output IA3 is the other IA3 form.",
        unsigned=True,
        hex=True,
    ),
    Limit(
        "METHODS_SCALING_CHANNELS",
        int(Method.SCALE_SHIFT | Method.IA3),
        "Methods whose trained factor multiplies a layer's output channels (gamma, IA3's l): "
        "merge folds it into the channel's weight scale, the int8 codes kept.",
        unsigned=True,
        hex=True,
    ),
    Limit(
        "METHODS_CHANGING_WEIGHTS",
        int(
            Method.FULL
            | Method.LAST_LAYER
            | Method.SPARSE
            | Method.LORA
            | Method.DORA
            | Method.IA3_INPUT
        ),
        "Methods that change a layer's weights otherwise: merge gives them new int8 codes.",
        unsigned=True,
        hex=True,
    ),
    Limit(
        "METHODS_TRAINING_WEIGHTS",
        int(Method.FULL | Method.LAST_LAYER | Method.SPARSE),
        "Methods that train a layer's weights themselves (float32 in the arena).",
        unsigned=True,
        hex=True,
    ),
    Limit(
        "STATE_STREAM_BUFFER",
        256,
        "The sample's buffer through which a trained state streams to and from flash.",
        unsigned=True,
    ),
)
LIMIT = {limit.name: limit.value for limit in LIMITS}

BLOB_HEADER = Layout(
    "Common blob header",
    "BLOB_HDR",
    (
        Field("magic", MAGIC, doc="magic"),
        Field("version", "u16", doc="format version"),
        Field("header_size", "u16", doc="header size"),
        Field("total_length", "u32", doc="total length of the blob"),
        Field("crc", "u32", doc="CRC32 of bytes 16 .. total length", default=0),
    ),
    doc="The first 16 bytes of every blob.",
)
CRC_START = BLOB_HEADER.size  # the CRC covers the bytes after the common header


@dataclass(frozen=True)
class Blob:
    """A blob kind: its magic, version and header layout (which starts with BLOB_HEADER)."""

    name: str
    c_name: str  # PEFT_<c_name>_MAGIC / _VERSION / _HEADER_SIZE
    magic: bytes
    version: int
    header: Layout

    def __post_init__(self) -> None:
        common = self.header.fields[: len(BLOB_HEADER.fields)]
        if common != BLOB_HEADER.fields:
            raise ValueError(f"{self.name}: the header must start with the common blob header")

    @property
    def magic_u32(self) -> int:
        return int.from_bytes(self.magic, "little")

    @property
    def header_size(self) -> int:
        return self.header.size

    def pack_header(self, buffer: bytearray, **values: object) -> None:
        """Write the header at the start of `buffer` (magic, version and size filled in)."""
        self.header.pack_into(
            buffer,
            0,
            magic=self.magic,
            version=self.version,
            header_size=self.header_size,
            **values,
        )

    def seal(self, buffer: bytearray) -> bytes:
        """Store the CRC32 of everything after the common header; the finished blob."""
        total = BLOB_HEADER.read(buffer, "total_length")
        BLOB_HEADER.write(buffer, "crc", zlib.crc32(bytes(buffer[CRC_START:total])) & 0xFFFFFFFF)
        return bytes(buffer)


_N_PARAM = len(ParamKind)

# ---- plan ----
PLAN_HEADER = Layout(
    "Plan header",
    "PLAN_HDR",
    (
        *BLOB_HEADER.fields,
        Field("model_crc", "u32", doc="CRC32 of the model"),
        Field("model_length", "u32", doc="model length"),
        Field("num_tensors", "u16", doc="number of tensors T (= layers + 1)"),
        Field("num_layers", "u16", doc="number of layers L"),
        Field("input_tensor", "u16", doc="input tensor (0: the tensor that crosses the split)"),
        Field("output_tensor", "u16", doc="output tensor (T - 1: the logits)"),
        Field("num_classes", "u16", doc="number of classes (= size of the logits)"),
        Field("act_cache", "u8", doc="activation cache (CacheDtype)"),
        Field("optimizer", "u8", doc="optimizer (Optimizer)"),
        Field("seed", "u32", doc="seed (LoRA initialisation)"),
        Field("lr", "f32", doc="learning rate"),
        Field("momentum", "f32", doc="SGD momentum"),
        Field("beta1", "f32", doc="Adam beta1"),
        Field("beta2", "f32", doc="Adam beta2"),
        Field("eps", "f32", doc="Adam eps"),
        Field("weight_decay", "f32", doc="weight decay"),
        Field("clip_norm", "f32", doc="global-norm clipping (0: off)"),
        Field("num_buffers", "u32", doc="number of buffer records B (both arenas)"),
        Field(
            "train_region_size",
            "u32",
            len(TrainRegion),
            doc="train region sizes (TrainRegion order; the regions follow one another "
            "from offset 0)",
        ),
        Field("train_size", "u32", doc="training arena size (the sum)"),
        Field("infer_work_size", "u32", doc="inference work region size (after the parameters)"),
        Field("infer_size", "u32", doc="inference arena size"),
        Field("trainable_params", "u32", doc="number of trainable float parameters"),
        Field("update", "u32", doc="when the optimizer updates (UpdateMode)"),
        Field("flags", "u32", doc="plan options (PlanFlag bits)", default=0),
        Field(
            "lr_decay_steps",
            "u32",
            doc="learning rate decays linearly to 0 over this many optimizer steps "
            "(HF's linear schedule; 0: constant)",
            default=0,
        ),
        Field(
            "batch",
            "u32",
            doc="batch capacity: samples one trainer call runs together (every per-sample "
            "work buffer holds this many, stacked; 1..MAX_BATCH)",
            default=1,
        ),
        Field("tensor_record_size", "u32", doc="tensor record size"),
        Field("layer_record_size", "u32", doc="layer record size"),
        Field("buffer_record_size", "u32", doc="buffer record size"),
    ),
)

PLAN_TENSOR = Layout(
    "Plan tensor record",
    "PLAN_TENSOR",
    (
        Field("h", "i32", doc="height (batch 1, NHWC)"),
        Field("w", "i32", doc="width"),
        Field("c", "i32", doc="channels"),
        Field("scale", "f32", doc="TFLite scale"),
        Field("zero_point", "i32", doc="TFLite zero point (-128..127)"),
        Field(
            "cache_dtype",
            "u8",
            doc="dtype of the values kept for backward (CacheDtype; 0 when not kept)",
        ),
        Field("needs_grad", "u8", doc="needs a gradient (1: a trainable parameter is upstream)"),
        Field("reserved", "u16", doc="reserved, 0", default=0),
    ),
)

ARRAY_REF = Layout(
    "Model array reference",
    "PLAN_REF",
    (
        Field("offset", "u32", doc="byte offset of the data in the model"),
        Field("count", "u32", doc="element count"),
        Field("scale_offset", "u32", doc="byte offset of the float32 scales"),
        Field("scale_count", "u32", doc="scale count (1 or one per output channel)"),
    ),
    doc="A constant array in the model (all zero when absent).",
)

PLAN_LAYER = Layout(
    "Plan layer record",
    "PLAN_LAYER",
    (
        Field("op", "u8", doc="op (Op)"),
        Field("activation", "u8", doc="fused activation (Activation)"),
        Field("methods", "u16", doc="methods (Method flags)"),
        Field("graph_layer", "u16", doc="index of the layer in the planner's graph"),
        Field("num_inputs", "u16", doc="number of inputs (2 for ADD, else 1)"),
        Field("input", "u16", 2, doc="input tensors (second NO_INPUT when absent)"),
        Field("output", "u16", doc="output tensor (k + 1)"),
        Field("lora_rank", "u16", doc="LoRA rank r (0 without LoRA or DoRA)"),
        Field("lora_alpha", "f32", doc="LoRA alpha (0 without LoRA or DoRA)"),
        Field("kernel_h", "i32", doc="kernel height"),
        Field("kernel_w", "i32", doc="kernel width"),
        Field("stride_h", "i32", doc="stride height"),
        Field("stride_w", "i32", doc="stride width"),
        Field("pad_top", "i32", doc="padding before the first row"),
        Field("pad_left", "i32", doc="padding before the first column"),
        Field("weights", ARRAY_REF, doc="weights (int8, float32 scales)"),
        Field("bias", ARRAY_REF, doc="bias (int32, float32 scales); zero without one"),
        Field("reserved", "u32", doc="reserved, 0", default=0),
        Field("param", "u32", _N_PARAM, doc="parameter offsets (ParamKind order)"),
        Field("grad", "u32", _N_PARAM, doc="gradient offsets (ParamKind order)"),
        Field("opt_m", "u32", _N_PARAM, doc="first moments (SGD velocity / Adam m)"),
        Field("opt_v", "u32", _N_PARAM, doc="Adam second moments"),
    ),
)

PLAN_BUFFER = Layout(
    "Plan buffer record",
    "PLAN_BUFFER",
    (
        Field("kind", "u8", doc="kind (BufferKind)"),
        Field("arena", "u8", doc="arena (Arena)"),
        Field("part", "u8", doc="parameter kind of a PARAM_GRAD (ParamKind), else 0"),
        Field("reserved", "u8", doc="reserved, 0", default=0),
        Field("owner", "u16", doc="plan tensor (VALUE, KEEP, GRAD), plan layer, or 0 (PROBS)"),
        Field("first", "u16", doc="first step live (forward of layer k: k; loss: L)"),
        Field("last", "u16", doc="last step live (backward of layer k: 2L - k)"),
        Field("reserved2", "u16", doc="reserved, 0", default=0),
        Field("size", "u32", doc="bytes (a multiple of ALIGN)"),
        Field("arena_offset", "u32", doc="arena offset (greedy-by-size first fit)"),
    ),
    doc="One work-region buffer; records sorted by arena, kind, owner, part.",
)

PLAN = Blob("Plan blob", "PLAN", b"PEFP", 7, PLAN_HEADER)

# ---- trained state ----
STATE_HEADER = Layout(
    "Trained-state header",
    "STATE_HDR",
    (
        *BLOB_HEADER.fields,
        Field("plan_crc", "u32", doc="CRC32 of the plan it was saved for"),
        Field("epoch", "u32", doc="epoch (caller metadata)"),
        Field("sequence", "u32", doc="sequence number (caller metadata)"),
        Field("steps", "u32", doc="optimizer steps taken (Adam's t)"),
        Field("params_bytes", "u32", doc="P = 4 x trainable parameters"),
        Field("opt_bytes", "u32", doc="S = P x optimizer states per parameter"),
        Field("optimizer", "u32", doc="optimizer (Optimizer)"),
        Field("reserved", "u32", doc="reserved, 0", default=0),
    ),
)
STATE = Blob("Trained-state blob", "STATE", b"PEFS", 1, STATE_HEADER)

# ---- model+plan container (peft_model partition) ----
CONTAINER_HEADER = Layout(
    "Model+plan container header",
    "CONTAINER_HDR",
    (
        *BLOB_HEADER.fields,
        Field("model_offset", "u32", doc="model offset (16-aligned)"),
        Field("model_length", "u32", doc="model length"),
        Field("plan_offset", "u32", doc="plan offset (16-aligned, after the model)"),
        Field("plan_length", "u32", doc="plan length"),
        Field("model_crc", "u32", doc="CRC32 of the model alone (the plan header repeats it)"),
        Field("reserved", PAD, 28, doc="reserved, zero"),
    ),
)
CONTAINER = Blob("Model+plan container", "CONTAINER", b"PEFM", 1, CONTAINER_HEADER)
CONTAINER_MODEL_ALIGN = 16  # flatbuffers align their content to 16 bytes from the buffer start

# ---- dataset (peft_dataset partition) ----
DATASET_HEADER = Layout(
    "Dataset header",
    "DATASET_HDR",
    (
        *BLOB_HEADER.fields,
        Field("n_train", "u32", doc="training samples"),
        Field("n_test", "u32", doc="test samples"),
        Field("height", "u16", doc="height"),
        Field("width", "u16", doc="width"),
        Field("channels", "u16", doc="channels"),
        Field("classes", "u16", doc="classes (MIN_CLASSES..MAX_CLASSES)"),
        Field("input_scale", "f32", doc="input scale (the model input tensor's)"),
        Field("input_zero_point", "i32", doc="input zero point"),
        Field("sample_bytes", "u32", doc="bytes per sample (height x width x channels)"),
        Field("samples_offset", "u32", doc="offset of the samples"),
        Field("labels_offset", "u32", doc="offset of the labels"),
        Field("reserved", PAD, 12, doc="reserved, zero"),
    ),
)
DATASET = Blob("Dataset blob", "DATASET", b"PEFD", 1, DATASET_HEADER)

BLOBS: tuple[Blob, ...] = (PLAN, STATE, CONTAINER, DATASET)
_SIZES = {PLAN_HEADER: 132, PLAN_TENSOR: 24, PLAN_LAYER: 224, PLAN_BUFFER: 20}
_SIZES.update({STATE_HEADER: 48, CONTAINER_HEADER: 64, DATASET_HEADER: 64})
for _layout, _size in _SIZES.items():  # the sizes of this version (plan 7, the rest 1)
    assert _layout.size == _size, (_layout.name, _layout.size)

LAYOUTS: tuple[Layout, ...] = (
    BLOB_HEADER,
    PLAN_HEADER,
    PLAN_TENSOR,
    ARRAY_REF,
    PLAN_LAYER,
    PLAN_BUFFER,
    STATE_HEADER,
    CONTAINER_HEADER,
    DATASET_HEADER,
)
