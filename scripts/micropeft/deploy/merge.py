"""Fold a trained state into a standard int8 (or 16x8) .tflite; export trained parameters.

The runtime computes a trained layer in float32 (reference.py states the exact
semantics); this module rewrites the same arithmetic into the model's own
tensors, so that TFLite or TFLM run the adapted model with no micropeft code:

- weights: ``W' = gamma * W + (alpha / r) * B A`` (the trained W where full,
  last-layer or sparse updates train it; IA3's l multiplies each output channel like
  gamma; IA3 on a feedforward module, ``W (l x)``, multiplies each input channel of W
  by its l, the bias unchanged; DoRA's ``W' = m * (W + (alpha / r) B A) / ||.||_c``),
  requantized per output
  channel (the original scale where the new weights still fit its range, else
  ``max |W'| / 127``; one scale for a per-tensor layer). Where gamma or IA3's l is all
  that changed a per-channel layer's weights, the factor goes into each channel's scale
  and the codes stay (``_scale_channels``: no rounding at all; the runtime's quantized
  forward rounds such a layer with those scales). With a
  calibration set the codes are not rounded to nearest but one input at a time,
  each rounding error compensated on the inputs still to round (GPTQ's order,
  through the inverse Gram matrix of the layer's inputs as the runtime computes
  them), the bias last: the layer's output error over the set falls about 3-4x,
  and its mean goes into the bias (bias correction). Frozen weights keep their
  int8 codes (no second rounding);
- biases: ``b' = gamma * b + beta``, ``l * b`` with IA3 (the trained b for BitFit and the
  others),
  requantized with ``input scale x new weight scale`` as TFLite requires;
- activations from the split onward are recalibrated from a calibration set
  (min/max of the float activations the runtime computes, over the set). PAD,
  RESHAPE and AVERAGE_POOL_2D keep their input's quantization (their int8
  kernels do not rescale), so such tensors share one range. The int8 logits
  start below the lowest winning logit of the set (_logits_quant): lower logits,
  which never decide a class, clip there (a trailing softmax then gives those
  classes a little more probability), and close competitors get finer steps.
  Without a calibration set every activation keeps the quantization the model
  was converted with.
- a plan with the quantized forward (PlanFlag.QUANTIZED_FORWARD) trained every
  activation but the logits on the int8 grid of the model's own quantization
  (the runtime fake-quantizes each layer output with it), so those keep it: only
  the logits are recalibrated (_logits_quant; they keep theirs too when a
  same-quantization op makes them, since the runtime rounded its input). The
  calibration set still gives the weight rounding's statistics and the 16x8
  peaks, through the same quantized forward.

16x8 (``with_16x8``): the same model with the trainable part in TFLite's 16x8
mode (int16 activations, int8 weights, int64 biases), which TFLite and TFLM run
for every op the trainable part may hold: int8 activation rounding, not the
weights, is what separates the int8 model from the runtime's float forward when
the trained part is deep (each requantized layer flips about 0.2-0.8 % of a
near-tie task's predictions), and int16 steps are 256x finer.

Everything keeps its shape, so the model is patched in place (int8 weights,
int32 biases and float32 scale vectors are fixed-length flatbuffer vectors); a
layer without a bias tensor that gains a nonzero bias gets one through
TensorFlow's flatbuffer_utils. Trained parameters are read through the runtime's
ctypes binding (runtime.Trainer), never by decoding the state blob here.
"""

from __future__ import annotations

import copy
import io
import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from micropeft.deploy import boards, pack
from micropeft.errors import UserError
from micropeft.host import reference, runtime
from micropeft.host.reference import in_channels, weight_shape
from micropeft.host.runtime import PARAM_KINDS, Status
from micropeft.planning import config, methods
from micropeft.planning import plan as planning_plan
from micropeft.prep import convert, datasets, tflite_graph
from micropeft.prep.convert import quiet_native_stderr
from micropeft.prep.graph import ArrayRef, Graph, Layer, Method, Op

_WEIGHTED = (Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.FULLY_CONNECTED)
# Ops whose int8 kernels copy or average values without rescaling: output quant = input quant.
_SAME_QUANT_OPS = (Op.PAD, Op.RESHAPE, Op.AVERAGE_POOL_2D)
CALIBRATION_SAMPLES = 500  # default cap on the calibration set (min/max settle well before)


# ---------------------------------------------------------------------------
# The model folder (prepare-model's --out)


@dataclass
class ModelFolder:
    path: Path
    full: bytes  # full.tflite: the whole int8 model
    device: bytes  # model.tflite: the device model the plan was built for
    plan_blob: bytes
    summary: dict[str, Any]

    def plan(self) -> Any:
        """The plan rebuilt from summary.json's method over full.tflite; it must be plan.bin.

        The rebuilt plan names the layers and carries what the state does not
        (LoRA alpha, the split layer), without decoding plan.bin here."""

        graph = tflite_graph.graph_from_tflite(self.full)
        method = self.summary.get("method")
        if not isinstance(method, dict):
            raise UserError(f"{self.path / 'summary.json'} has no method: run prepare-model again")
        cfg = config.config_from_dict(method, str(self.path / "summary.json"))
        methods.apply_method(graph, cfg)
        the_plan = cfg.plan(graph, self.device)
        if the_plan.to_bytes() != self.plan_blob:
            raise UserError(
                f"{self.path}: plan.bin is not the plan summary.json describes "
                "(files from different prepare-model runs or versions): run prepare-model again"
            )
        return the_plan


def read_model_folder(path: str | Path) -> ModelFolder:
    """prepare-model's output folder; UserError when it is not one."""

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"model folder not found: {folder}")
    names = ("full.tflite", "model.tflite", "plan.bin", "summary.json")
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise UserError(
            f"{folder} is not a model folder (prepare-model's --out): missing {', '.join(missing)}"
        )
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{folder / 'summary.json'} is not JSON ({error})") from error
    if not isinstance(summary, dict):
        raise UserError(f"{folder / 'summary.json'} is not a prepare-model summary")
    full = (folder / "full.tflite").read_bytes()
    device = (folder / "model.tflite").read_bytes()
    for name, data in (("full.tflite", full), ("model.tflite", device)):
        tflite_graph.input_info(data)  # a UserError for anything but an int8 .tflite
        if len(data) != len(full):
            raise UserError(f"{folder}: {name} is not the device cut of full.tflite")
    return ModelFolder(folder, full, device, (folder / "plan.bin").read_bytes(), summary)


# ---------------------------------------------------------------------------
# Trained parameters through the runtime binding


@dataclass
class TrainedState:
    """The trained arrays of a state, keyed (graph layer, kind), TFLite layouts (flat)."""

    arrays: dict[tuple[int, str], np.ndarray]
    epoch: int
    sequence: int
    source: str  # where the state was found, for messages
    blob: bytes = b""  # the state blob itself


def infer_trainer(model: bytes, plan_blob: bytes) -> Any:
    """An inference runtime.Trainer for the plan (the state is imported into it)."""

    try:
        return runtime.Trainer(model, plan_blob, mode="infer")
    except runtime.PeftError as error:
        raise UserError(f"the runtime refuses the plan ({error.name})") from error


def _state_error(error: Any) -> str:

    if error.status == Status.ERR_STATE_PLAN_MISMATCH:
        return "it was saved for another plan (another model, method or prepare-model run)"
    if error.status in (Status.ERR_STATE_CRC, Status.ERR_STATE_TRUNCATED):
        return f"it is truncated or corrupt ({error.name})"
    if error.status == Status.ERR_STATE_MAGIC:
        return "it is not a trained state"
    return f"the runtime refuses it ({error.name})"


def import_state(trainer: Any, state: bytes, where: str) -> TrainedState:
    """Load `state` into `trainer` (runtime.Trainer) and copy its trained arrays."""

    try:
        meta = trainer.import_state(state)
    except runtime.PeftError as error:
        raise UserError(f"{where}: {_state_error(error)}") from error
    return trained_arrays(trainer, meta["epoch"], meta["sequence"], where, bytes(state))


def trained_arrays(
    trainer: Any, epoch: int = 0, sequence: int = 0, where: str = "", blob: bytes = b""
) -> TrainedState:
    """The trainer's trained arrays now (param_infos order)."""

    arrays = {}
    for info in trainer.param_infos():
        flat = np.ctypeslib.as_array(info.data, shape=(info.count,)).copy()
        arrays[(int(info.graph_layer), PARAM_KINDS[info.kind])] = flat
    return TrainedState(arrays, epoch, sequence, where, blob)


# ---------------------------------------------------------------------------
# Finding the state: a blob, a native_sim flash file, a flash readout (HEX or binary)


@dataclass
class StateSource:
    state: bytes  # the chosen state blob (the slot's bytes for a flash image)
    where: str
    meta: dict[str, int]
    slots: list[str] = field(default_factory=list)  # what each slot held, for messages


def _flash_from_hex(path: Path, board: Any) -> bytes:
    from intelhex import HexReaderError, IntelHex

    ih = IntelHex()
    try:
        ih.loadhex(str(path))
    except (HexReaderError, ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not a valid Intel HEX file ({error})") from error
    ih.padding = board.erased
    if ih.minaddr() is None:
        raise UserError(f"{path}: the Intel HEX file holds no data")
    if ih.minaddr() < board.flash_base or ih.maxaddr() >= board.flash_base + board.flash_size:
        raise UserError(
            f"{path}: addresses 0x{ih.minaddr():x}..0x{ih.maxaddr():x} lie outside the "
            f"{board.name} flash (0x{board.flash_base:x}, {board.flash_size // 1024} KiB)"
        )
    return bytes(ih.tobinarray(start=board.flash_base, size=board.flash_size))


def _flash_from_binary(data: bytes, address: int, board: Any, path: Path) -> bytes:
    offset = address - board.flash_base
    if offset < 0 or offset + len(data) > board.flash_size:
        raise UserError(
            f"{path}: {len(data)} bytes at 0x{address:x} do not fit the {board.name} flash "
            f"({board.flash_size // 1024} KiB at 0x{board.flash_base:x}); give --board or --address"
        )
    flash = bytearray([board.erased]) * board.flash_size
    flash[offset : offset + len(data)] = data
    return bytes(flash)


def state_slots(
    flash: bytes, folder: ModelFolder, board: Any, firmware_size: int | None, layout: Any
) -> list[tuple[str, int, int]]:
    """(label, offset, size) of the two state slots in a flash image.

    With pack.json (`layout`) its offsets; otherwise pack.layout() over the
    images found in the flash: the model container (it must be this folder's)
    and the dataset after it."""

    if layout is not None:
        slots = [
            (p["label"], int(p["offset"]), int(p["size"]))
            for p in layout.get("partitions", [])
            if p.get("label") in ("peft_state0", "peft_state1")
        ]
        if len(slots) != 2:
            raise UserError("pack.json lists no peft_state0 / peft_state1 partitions")
        return slots
    container = pack.model_container(folder.device, folder.plan_blob)
    page = board.page_size
    starts = (
        [firmware_size]
        if firmware_size is not None
        else [board.firmware_size] + list(range(0, board.flash_size, page))
    )
    found = next((s for s in starts if flash[s : s + len(container)] == container), None)
    if found is None:
        other = any(flash[s : s + 4] == pack.MODEL_MAGIC for s in range(0, len(flash), page))
        raise UserError(
            "the flash holds another model and plan than this model folder: merge with the "
            "folder it was packed from"
            if other
            else "no micropeft model partition in the flash image (not a readout of a packed "
            "board, or a partial one: give --layout with pack's pack.json)"
        )
    dataset_at = found + max(-(-len(container) // page) * page, page)
    parsed = datasets.parse_dataset_blob(flash[dataset_at:])
    dataset = datasets.dataset_blob(
        parsed.x_train, parsed.y_train, parsed.x_test, parsed.y_test, parsed.quant,
        parsed.num_classes,
    )  # fmt: skip
    state_size = int(folder.summary.get("flash", {}).get("state_slot", 0))
    if state_size <= 0:
        raise UserError("summary.json has no state size: give --layout with pack's pack.json")
    parts = pack.layout(
        board, {"peft_model": container, "peft_dataset": dataset}, state_size, found
    )
    return [(p.label, p.offset, p.size) for p in parts if p.label.startswith("peft_state")]


def find_state(
    path: str | Path,
    folder: ModelFolder,
    trainer: Any,
    board_name: str | None = None,
    firmware_size: int | None = None,
    address: int | None = None,
    layout_path: str | None = None,
) -> StateSource:
    """The state to merge: `path` is a state blob, a flash file or a readout (HEX/binary).

    A flash image's two slots are tried in the runtime; the valid one with the
    newer sequence number wins (the device's own rule)."""

    file = Path(path)
    if not file.is_file():
        raise UserError(f"state file not found: {file}")
    data = file.read_bytes()
    layout = None
    if layout_path is not None:
        try:
            layout = json.loads(Path(layout_path).read_text())
        except (OSError, ValueError) as error:
            raise UserError(f"--layout {layout_path}: not pack's pack.json ({error})") from error
    is_hex = data[:1] == b":"
    if not is_hex:
        try:
            meta = trainer.import_state(data)
            return StateSource(data, str(file), meta)
        except runtime.PeftError as error:
            if error.status != runtime.Status.ERR_STATE_MAGIC:
                raise UserError(f"{file}: {_state_error(error)}") from error
    if board_name is None and layout is not None:
        board_name = layout.get("board")
    if board_name is None:
        by_size = [b for b in boards.BOARDS.values() if not is_hex and b.flash_size == len(data)]
        board_name = by_size[0].name if len(by_size) == 1 else "nrf52840dk"
    board = boards.get_board(board_name)
    if is_hex:
        flash = _flash_from_hex(file, board)
    else:
        if address is None and len(data) < 64 * 1024 and layout is None:
            raise UserError(f"{file}: {len(data)} bytes, neither a trained state nor a flash image")
        flash = _flash_from_binary(data, board.flash_base if address is None else address,
                                   board, file)  # fmt: skip
    best: StateSource | None = None
    notes = []
    for label, offset, size in state_slots(flash, folder, board, firmware_size, layout):
        blob = flash[offset : offset + size]
        if blob[:4] == bytes([board.erased]) * 4:
            notes.append(f"{label} erased")
            continue
        try:
            meta = trainer.import_state(blob)
        except runtime.PeftError as error:
            notes.append(f"{label}: {_state_error(error)}")
            continue
        notes.append(f"{label} sequence {meta['sequence']} epoch {meta['epoch']}")
        newer = best is None or ((meta["sequence"] - best.meta["sequence"]) & 0xFFFFFFFF) < (
            1 << 31
        )
        if newer:
            where = f"{file} {label} (0x{board.flash_base + offset:x})"
            best = StateSource(blob, where, meta)
    if best is None:
        raise UserError(f"{file}: no valid trained state in the flash ({'; '.join(notes)})")
    best.slots = notes
    return best


# ---------------------------------------------------------------------------
# The merge


def _weight_shape(graph: Graph, layer: Layer) -> tuple[int, ...]:

    return weight_shape(graph, layer)


def _channel_axis(layer: Layer) -> int:
    return 2 if layer.op == Op.DEPTHWISE_CONV_2D else 0


def _per_channel(w: np.ndarray, axis: int, values: np.ndarray) -> np.ndarray:
    shape = [1] * w.ndim
    shape[axis] = -1
    return values.reshape(shape)


def folded_parameters(
    graph: Graph, model: bytes, split_layer: int, trained: dict[tuple[int, str], np.ndarray]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Float (weight, bias) of every weighted layer from the split on, with the trained
    arrays folded in (TFLite layouts): what the runtime computes, as one linear layer."""

    out = {}
    for index in range(split_layer, len(graph.layers)):
        layer = graph.layers[index]
        if layer.op not in _WEIGHTED:
            continue
        shape = _weight_shape(graph, layer)
        w = trained.get((index, "weight"))
        w = reference.dequantize_weight(graph, model, layer) if w is None else w.reshape(shape)
        b = trained.get((index, "bias"))
        b = reference.dequantize_bias(graph, model, layer) if b is None else b
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
        axis = _channel_axis(layer)
        if (index, "gamma") in trained:
            gamma = trained[(index, "gamma")].astype(np.float64)
            w = w * _per_channel(w, axis, gamma)
            b = b * gamma + trained[(index, "beta")].astype(np.float64)
        if (index, "ia3_l") in trained:
            w, b = _fold_ia3(w, b, axis, trained[(index, "ia3_l")])
        if (index, "ia3_in") in trained:
            w = _fold_ia3_input(w, trained[(index, "ia3_in")], layer.name)
        if (index, "lora_a") in trained:
            a = trained[(index, "lora_a")].astype(np.float64)
            if not layer.lora_rank or a.size % layer.lora_rank:
                raise UserError(f"layer {layer.name}: LoRA rank unknown to the graph")
            rank = layer.lora_rank
            a = a.reshape(rank, -1)
            bmat = trained[(index, "lora_b")].astype(np.float64).reshape(-1, rank)
            delta = (float(layer.lora_alpha) / rank) * (bmat @ a)  # [out, in]
            w = w + delta.reshape(shape)
        if (index, "dora_m") in trained:
            w = _fold_dora(w, trained[(index, "dora_m")])
        out[index] = (w, b)
    return out


def _fold_ia3(
    w: np.ndarray, b: np.ndarray, axis: int, scaling: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """IA3 scales the layer's output, bias included: each output channel's weights and bias."""
    scaling = scaling.astype(np.float64)
    return w * _per_channel(w, axis, scaling), b * scaling


def _fold_ia3_input(w: np.ndarray, scaling: np.ndarray, name: str) -> np.ndarray:
    """IA3 on a feedforward module scales the layer's input: W (l x) = (W l) x, each input
    channel's weights times its l. The input channel is the last axis of every TFLite
    layout (CONV_2D [out][kh][kw][in], DEPTHWISE_CONV_2D [1][kh][kw][c], FULLY_CONNECTED
    [out][in]); a convolution's zero padding stays zero either way."""
    scaling = scaling.astype(np.float64).ravel()
    if w.shape[-1] != scaling.size:
        raise UserError(f"layer {name}: {scaling.size} IA3 input scales for {w.shape[-1]} inputs")
    return w * scaling


def _fold_dora(w: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """DoRA's W' = m * W / ||W||_c (W = W0 + s B A, one row per output channel; a 1x1 conv
    or dense layer), the norm clamped as the runtime clamps it."""
    rows = w.reshape(w.shape[0], -1)
    norm = np.maximum(np.sqrt(np.sum(rows * rows, axis=1)), reference.DORA_NORM_MIN)
    return (rows * (magnitude.astype(np.float64) / norm)[:, None]).reshape(w.shape)


def _activation_quant(lo: float, hi: float) -> tuple[float, int] | None:
    """TFLite's asymmetric int8 quantization of a range that includes zero."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo < 1e-12:
        return None
    scale = (hi - lo) / 255.0
    zero_point = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return float(np.float32(scale)), zero_point


def _logits_quant(ranked: np.ndarray) -> tuple[float, int] | None:
    """The int8 logits' range from the calibration samples' logits (sorted per row):
    from below the lowest winning logit to the highest logit. A logit far below every
    winner never decides a class: it clips, and the steps between close competitors get
    finer. The margin below the lowest winner is the distance from it to the median
    winner: the calibration samples are the training samples the runtime fitted, and a
    test sample's winner can sit lower than any of theirs; one that clipped would tie
    with every other clipped class at the lowest code (on the bench task, with the
    quantized forward, a 5 % margin clipped 12 of the 13 methods' 50 disagreements with
    the runtime; this margin: none, 38 in all)."""
    winners = ranked[:, -1]
    lowest = float(winners.min())
    lo = lowest - (float(np.median(winners)) - lowest)
    return _activation_quant(lo, float(ranked.max()))


def _tensor_groups(graph: Graph, split_layer: int) -> dict[int, int]:
    """Representative of each tensor's quantization group (union over _SAME_QUANT_OPS)."""
    parent: dict[int, int] = {}

    def find(t: int) -> int:
        while parent.get(t, t) != t:
            t = parent[t]
        return t

    for layer in graph.layers[split_layer:]:
        if layer.op in _SAME_QUANT_OPS:
            parent[find(layer.output)] = find(layer.inputs[0])
    return {t: find(t) for t in range(len(graph.tensors))}


@dataclass
class Calibration:
    """What the runtime's float forward gives over the calibration set."""

    quant: dict[int, tuple[float, int]]  # new (scale, zero point) of activation tensors
    peak: dict[int, float]  # largest |value| of every tensor from the split on
    # Per layer whose weights are requantized: the Gram matrix of its input windows with
    # a trailing 1 (the bias), [d + 1, d + 1] (per channel [c, d + 1, d + 1] for depthwise)
    gram: dict[int, np.ndarray]


def _windows(graph: Graph, layer: Layer, x: Any) -> np.ndarray:
    """The layer's input windows [positions, kh * kw, c] (TFLite's weight order), or the
    flat input [n, 1, in] of a fully connected layer."""
    import tensorflow as tf

    if layer.op == Op.FULLY_CONNECTED:
        return np.asarray(x, np.float64).reshape(len(x), 1, -1)
    kh, kw = layer.kernel
    padded = reference._windowed_input(tf, graph, layer, x)
    c = padded.shape[-1]
    patches = tf.image.extract_patches(
        padded, [1, kh, kw, 1], [1, layer.stride[0], layer.stride[1], 1], [1, 1, 1, 1], "VALID"
    )
    return np.asarray(patches, np.float64).reshape(-1, kh * kw, c)


def _add_gram(gram: np.ndarray | None, layer: Layer, windows: np.ndarray) -> np.ndarray:
    ones = np.ones((len(windows), 1))
    if layer.op == Op.DEPTHWISE_CONV_2D:
        v = np.concatenate([windows, np.ones((len(windows), 1, windows.shape[2]))], axis=1)
        g = np.einsum("nkc,nlc->ckl", v, v)
    else:
        v = np.concatenate([windows.reshape(len(windows), -1), ones], axis=1)
        g = v.T @ v
    return g if gram is None else gram + g


def calibrate(
    graph: Graph,
    split_layer: int,
    folded: dict[int, tuple[np.ndarray, np.ndarray]],
    split_values: np.ndarray,
    requantized: tuple[int, ...] = (),
    tables: reference.QuantizedForward | None = None,
) -> Calibration:
    """Run the runtime's float forward (the folded parameters) over the calibration
    samples (split-tensor values): new activation quantization from the split on
    (min/max; the logits by _logits_quant), the peaks (16x8), and the input
    statistics of the `requantized` layers for their weight rounding (_round_weights).
    `tables` (reference.quantized_forward_tables; the plan's quantized forward): the
    forward fake-quantizes as the runtime's does, and only the logits get a new
    quantization (module docstring)."""

    plain = copy.deepcopy(graph)
    params = {}
    for index, (w, b) in folded.items():
        layer = plain.layers[index]
        layer.methods = Method.NONE  # the folded weights already hold gamma, beta and LoRA
        params[f"{layer.name}/weight"] = w.astype(np.float32)
        params[f"{layer.name}/bias"] = b.astype(np.float32)
    quantized_forward = tables is not None
    split_tensor = graph.layers[split_layer].inputs[0]
    q = graph.tensors[split_tensor].quant
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    top: list[np.ndarray] = []  # the calibration samples' logits, sorted per sample
    gram: dict[int, np.ndarray] = {}
    for start in range(0, len(split_values), 64):
        x = reference.dequantize(split_values[start : start + 64], q.scale, q.zero_point)
        x = x.reshape((-1, *graph.tensors[split_tensor].shape))
        values: dict[int, Any] = {}
        reference.forward(
            plain,
            split_layer,
            params,
            x,
            values_out=values,
            quantized=tables,
        )
        for index in requantized:
            layer = graph.layers[index]
            windows = _windows(graph, layer, values[layer.inputs[0]])
            gram[index] = _add_gram(gram.get(index), layer, windows)
        for t, v in values.items():
            v = np.asarray(v)
            lo[t] = min(lo.get(t, np.inf), float(v.min()))
            hi[t] = max(hi.get(t, -np.inf), float(v.max()))
            if t == graph.output:
                top.append(np.sort(v.reshape(len(v), -1), axis=1))
    produced = {layer.output for layer in graph.layers[split_layer:]}
    groups = _tensor_groups(graph, split_layer)
    members: dict[int, list[int]] = {}
    for t in lo:
        members.setdefault(groups[t], []).append(t)
    quant = {}
    peak = {}
    for group in members.values():
        low, high = min(lo[t] for t in group), max(hi[t] for t in group)
        peak.update({t: max(-low, high) for t in group})
        if not all(t in produced for t in group):
            continue  # tied to the split tensor (the frozen prefix's output): keep
        if quantized_forward and group != [graph.output]:
            continue  # trained on its int8 grid (or the logits' input was): keep
        if graph.output in group:
            new = _logits_quant(np.concatenate(top))
        else:
            new = _activation_quant(low, high)
        if new is not None:
            quant.update({t: new for t in group})
    return Calibration(quant, peak, gram)


def _round_weights(
    w: np.ndarray, b: np.ndarray, scales: np.ndarray, gram: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """int8 codes of w [out, d] (per-row scales) and a float bias that minimise the
    layer's output error over the calibration inputs, sum (x . (w - s q) + db)^2:
    GPTQ's order (one input at a time, the error compensated on the inputs still to
    round, through the inverse Gram matrix), the bias last, unrounded (int32 holds
    it), which also removes the rounding's mean error (bias correction). `gram` is
    [d + 1, d + 1] shared by all rows, or one per row [out, d + 1, d + 1]."""
    out, d = w.shape
    # A Gram matrix shared by all rows is damped, inverted and factored once (the same
    # matrix for every row: the same factor), not once per row.
    g = np.array(gram[None] if gram.ndim == 2 else gram, np.float64)
    diag = np.einsum("oii->oi", g)
    damp = 0.01 * np.mean(diag[:, :d], axis=1, keepdims=True) + 1e-12
    g[:, np.arange(d + 1), np.arange(d + 1)] += np.concatenate(
        [np.broadcast_to(damp, (len(g), d)), np.zeros((len(g), 1))], axis=1
    )
    # Upper Cholesky factor of the inverse: inv(G) = U^T U.
    inv = np.linalg.inv(g)
    upper = np.transpose(np.linalg.cholesky(inv), (0, 2, 1))
    upper = np.broadcast_to(upper, (out, d + 1, d + 1))
    work = np.concatenate([w, b[:, None]], axis=1).astype(np.float64)
    q = np.zeros((out, d))
    s = scales.astype(np.float64)
    for i in range(d):
        q[:, i] = np.clip(np.round(work[:, i] / s), -127, 127)
        err = (work[:, i] - q[:, i] * s) / upper[:, i, i]
        work[:, i + 1 :] -= err[:, None] * upper[:, i, i + 1 :]
    return q, work[:, d]


@dataclass
class MergeResult:
    model: bytes
    layers: list[dict[str, Any]]  # what changed, per layer
    recalibrated: int  # activation tensors given a new quantization
    model_16x8: bytes | None = None  # the same, the trained part with int16 activations


def _channel_factor(
    graph: Graph, index: int, trained: dict[tuple[int, str], np.ndarray]
) -> np.ndarray | None:
    """The per-output-channel factor (scale+shift's gamma or IA3's l) that is all layer
    `index`'s training did to its weights (reference.scales_channels_only); None when
    its weights need new codes."""
    layer = graph.layers[index]
    if not reference.scales_channels_only(graph, layer):
        return None
    for kind in ("gamma", "ia3_l"):
        if (index, kind) in trained:
            return trained[(index, kind)].astype(np.float64).reshape(-1)
    return None


def _scale_channels(
    codes: np.ndarray, scales: np.ndarray, axis: int, factor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The frozen int8 codes and scales of a per-channel layer whose output channel c the
    training multiplied by factor[c]: the factor goes into the channel's scale (its sign
    into the codes), so the int8 weights are the trained float weights to the float32
    rounding of the scale, with no second rounding of the codes. A channel whose factor
    is 0 computes 0: its codes become 0 and it keeps its scale (TFLite wants scales > 0)."""
    factor = np.asarray(factor, np.float64)
    magnitude = np.abs(factor)
    sign = np.where(factor < 0, -1, np.where(factor > 0, 1, 0))
    new_codes = np.clip(codes.astype(np.int32) * _per_channel(codes, axis, sign), -127, 127)
    new_scales = np.where(magnitude > 0, magnitude * scales.astype(np.float64), scales)
    return new_codes.astype(np.int8), new_scales.astype(np.float32)


def _requantize_weights(
    w: np.ndarray, axis: int, original: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights (narrow range, TFLite's -127..127) and their float32 scales: a
    channel whose new weights still fit its original scale's range keeps that scale
    (the weights trained from ``s * q``: a change smaller than a step costs at most
    the change itself, where a new grid would round every weight afresh); a wider one
    gets ``max |w| / 127``. One scale (`original` of size 1) stays per tensor."""
    per_channel = original.size > 1
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    if per_channel:
        peak = np.max(np.abs(moved), axis=1)
    else:
        peak = np.full(1, np.max(np.abs(moved)))
    old = original.astype(np.float64)
    scales = np.where(peak <= 127.0 * old * (1 + 1e-6), old, peak / 127.0).astype(np.float32)
    q = np.clip(np.round(w / _per_channel(w, axis, scales.astype(np.float64))
                         if per_channel else w / float(scales[0])), -127, 127)  # fmt: skip
    return q.astype(np.int8), scales


def merge(
    full_model: bytes,
    graph: Graph,
    split_layer: int,
    trained: dict[tuple[int, str], np.ndarray],
    calibration: np.ndarray | None = None,
    with_16x8: bool = False,
    quantized_forward: bool = False,
) -> MergeResult:
    """full_model with the trained arrays folded in (see the module docstring).

    `graph` is full_model's graph with the methods marked (it carries LoRA's rank
    and alpha); `calibration` holds int8 model inputs [n, h, w, c], or None to
    keep every activation's quantization; `quantized_forward` is the plan's
    PlanFlag.QUANTIZED_FORWARD (activations but the logits keep theirs)."""

    model = bytearray(full_model)
    folded = folded_parameters(graph, bytes(full_model), split_layer, trained)
    requantized = tuple(
        index
        for index in folded
        if any(
            i == index and k in ("weight", "gamma", "lora_a", "ia3_l", "ia3_in", "dora_m")
            for i, k in trained
        )
    )
    # Layers whose training only scaled output channels keep their codes (_scale_channels).
    scaled = {
        index: factor
        for index in requantized
        if (factor := _channel_factor(graph, index, trained)) is not None
    }
    # With the quantized forward, trained weights that the runtime computed rounded to int8
    # get exactly those codes (reference.round_weights), not a rounding of their own.
    trained_rounding = {
        index
        for index in requantized
        if quantized_forward
        and (
            planning_plan.rounds_trained_weights(graph.layers[index])
            or planning_plan.rounds_lora(graph.layers[index])
        )
    }
    rounded = tuple(
        index for index in requantized if index not in scaled and index not in trained_rounding
    )
    quant: dict[int, tuple[float, int]] = {}
    gram: dict[int, np.ndarray] = {}
    found: Calibration | None = None
    if calibration is not None and len(calibration):
        split_tensor = graph.tensors[graph.layers[split_layer].inputs[0]]
        inp = graph.tensors[graph.input].quant
        x = reference.dequantize(calibration, inp.scale, inp.zero_point)
        (split_values,) = reference.tflite_tensor_values(bytes(full_model), [split_tensor.name], x)
        tables = (
            reference.quantized_forward_tables(graph, bytes(full_model), split_layer)
            if quantized_forward
            else None
        )
        found = calibrate(graph, split_layer, folded, split_values, rounded, tables)
        quant, gram = found.quant, found.gram
    tflite_index = graph.extra["tflite_tensor_index"]
    for t, (scale, zero_point) in quant.items():
        scale_pos, zero_pos = tflite_graph.quant_positions(bytes(full_model), tflite_index[t])
        struct.pack_into("<f", model, scale_pos, scale)
        struct.pack_into("<q", model, zero_pos, zero_point)

    # The converter shares one buffer between equal constants (all-zero biases, say): an
    # array that another tensor also reads gets a buffer of its own instead of a patch.
    owners = Counter(
        ref.offset for lay in graph.layers for ref in (lay.weights, lay.bias) if ref is not None
    )
    rebuilt: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def put(index: int, slot: int, ref: ArrayRef | None, values: np.ndarray, scales: Any) -> None:
        if ref is None or owners[ref.offset] > 1:
            rebuilt[(index, slot)] = (values, scales)
            return
        raw = values.tobytes()
        model[ref.offset : ref.offset + len(raw)] = raw
        stored = np.asarray(scales, "<f4")[: ref.scale_count]
        model[ref.scale_offset : ref.scale_offset + 4 * stored.size] = stored.tobytes()

    def in_scale(layer: Layer) -> float:
        t = layer.inputs[0]
        return quant[t][0] if t in quant else graph.tensors[t].quant.scale

    changes = []
    float_biases: dict[int, np.ndarray] = {}
    for index, (w, b) in folded.items():
        layer = graph.layers[index]
        assert layer.weights is not None
        kinds = sorted({k for i, k in trained if i == index})
        w_scales = reference.read_scales(bytes(full_model), layer.weights)
        if index in scaled:
            codes = reference.read_array(bytes(full_model), layer.weights).reshape(w.shape)
            q, w_scales = _scale_channels(codes, w_scales, _channel_axis(layer), scaled[index])
            put(index, 1, layer.weights, q.reshape(-1), w_scales)
        elif index in trained_rounding:
            import tensorflow as tf

            if (index, "lora_a") in trained:
                rank = int(layer.lora_rank)
                w0 = reference.dequantize_weight(graph, bytes(full_model), layer)
                a = trained[(index, "lora_a")].astype(np.float32).reshape(rank, -1)
                b_up = trained[(index, "lora_b")].astype(np.float32).reshape(-1, rank)
                codes, scales = reference.lora_rounded_weights(
                    tf, layer, tf.constant(w0), tf.constant(a), tf.constant(b_up), w_scales
                )
            else:
                trained_w = trained[(index, "weight")].astype(np.float32).reshape(w.shape)
                codes, scales = reference.round_weights(
                    tf, tf.constant(trained_w), _channel_axis(layer), w_scales
                )
            q = codes.numpy().astype(np.int8)
            w_scales = scales.numpy().astype(np.float32)[: w_scales.size]
            put(index, 1, layer.weights, q.reshape(-1), w_scales)
        elif index in requantized:
            axis = _channel_axis(layer)
            q, w_scales = _requantize_weights(w, axis, w_scales)
            if index in gram:
                rows = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
                row_scales = np.broadcast_to(w_scales, (len(rows),))
                q_rows, b = _round_weights(rows, b, row_scales, gram[index])
                moved = np.moveaxis(np.zeros_like(w), axis, 0)
                q = np.moveaxis(q_rows.reshape(moved.shape), 0, axis).astype(np.int8)
            put(index, 1, layer.weights, q.reshape(-1), w_scales)
        if kinds:
            changes.append({"index": index, "name": layer.name, "trained": kinds})
        if layer.bias is None and not np.any(b):
            continue
        bias_scales = (np.float64(in_scale(layer)) * w_scales.astype(np.float64)).astype(np.float32)
        if bias_scales.size == 1:
            bias_scales = np.full(b.size, bias_scales[0], np.float32)
        q_bias = np.clip(np.round(b / bias_scales.astype(np.float64)), -(2**31), 2**31 - 1)
        put(index, 2, layer.bias, q_bias.astype("<i4"), bias_scales)
        float_biases[index] = b
    merged = bytes(model)
    if rebuilt:
        merged = _rebuild(merged, rebuilt)
    model_16x8 = None
    if with_16x8:
        if found is None:
            raise UserError("int16 activations need calibration samples")
        model_16x8 = _to_16x8(merged, graph, split_layer, float_biases, found.peak)
    return MergeResult(merged, changes, len(quant), model_16x8)


# Ops of the trainable part that TFLite's and TFLM's kernels run with int16 activations.
_INT16_OPS = (*_WEIGHTED, Op.ADD, Op.MEAN, Op.AVERAGE_POOL_2D, Op.PAD, Op.RESHAPE)
INT16_HEADROOM = 1.25  # int16 ranges span this times the calibration peak (steps stay fine)


def _to_16x8(
    model: bytes,
    graph: Graph,
    split_layer: int,
    biases: dict[int, np.ndarray],
    peak: dict[int, float],
) -> bytes:
    """The merged int8 model with the trainable part in TFLite's 16x8 mode: int16
    activations (symmetric, zero point 0, INT16_HEADROOM x the calibration peak), the
    same int8 weights, int64 biases (input scale x weight scale); DEQUANTIZE and
    QUANTIZE turn the frozen prefix's int8 split tensor into int16 (exactly: its int8
    range fits)."""
    with quiet_native_stderr():
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils

    layers = graph.layers[split_layer:]
    unsupported = sorted({lay.op.name for lay in layers if lay.op not in _INT16_OPS})
    if unsupported:
        raise UserError(f"int16 activations: no 16x8 kernel for {', '.join(unsupported)}")
    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    sub = obj.subgraphs[0]
    tflite_index = graph.extra["tflite_tensor_index"]
    split = layers[0].inputs[0]
    q8 = graph.tensors[split].quant
    split_peak = max(abs(-128 - q8.zero_point), abs(127 - q8.zero_point)) * q8.scale
    groups = _tensor_groups(graph, split_layer)

    def quant16(scale: float) -> Any:
        params = schema.QuantizationParametersT()
        params.scale = np.array([scale], np.float32)
        params.zeroPoint = np.zeros(1, np.int64)
        return params

    def scale16(t: int) -> float:
        top = split_peak if groups[t] == groups[split] else peak.get(t, 0.0) * INT16_HEADROOM
        return float(np.float32(top / 32767.0)) if top > 0 else 1.0

    def new_tensor(name: bytes, shape: Any, kind: int, data: np.ndarray | None) -> int:
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(data.tobytes(), np.uint8)
        obj.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type = name, np.asarray(shape, np.int32), kind
        tensor.buffer = len(obj.buffers) - 1
        sub.tensors.append(tensor)
        return len(sub.tensors) - 1

    old_split = sub.tensors[tflite_index[split]]
    split16 = new_tensor(old_split.name + b"/int16", old_split.shape, schema.TensorType.INT16, None)
    sub.tensors[split16].quantization = quant16(scale16(split))
    in16 = {split: scale16(split)}
    for offset, layer in enumerate(layers):
        op = sub.operators[split_layer + offset]
        op.inputs = np.array(
            [split16 if i == tflite_index[split] else i for i in op.inputs], np.int32
        )
        out = sub.tensors[tflite_index[layer.output]]
        out.type = schema.TensorType.INT16
        out.quantization = quant16(scale16(layer.output))
        in16[layer.output] = scale16(layer.output)
        if layer.op not in _WEIGHTED:
            continue
        bias = biases.get(split_layer + offset)
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        if bias is None or (not has_bias and not np.any(bias)):
            continue
        w_scales = np.asarray(sub.tensors[op.inputs[1]].quantization.scale, np.float64)
        scales = in16[layer.inputs[0]] * np.broadcast_to(w_scales, bias.shape)
        values = np.round(bias / scales).astype("<i8")
        index = new_tensor(b"bias16/" + out.name, [bias.size], schema.TensorType.INT64, values)
        params = schema.QuantizationParametersT()
        params.scale = scales.astype(np.float32)
        params.zeroPoint = np.zeros(bias.size, np.int64)
        sub.tensors[index].quantization = params
        inputs = list(op.inputs) + [-1] * (3 - len(op.inputs))
        inputs[2] = index
        op.inputs = np.array(inputs, np.int32)
    for op in sub.operators[split_layer + len(layers) :]:  # a trailing SOFTMAX
        out = sub.tensors[op.outputs[0]]
        out.type = schema.TensorType.INT16
        out.quantization = quant16(1.0 / 32768.0)

    def opcode(builtin: int) -> int:
        codes = [c.builtinCode for c in obj.operatorCodes]
        if builtin in codes:
            return codes.index(builtin)
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        obj.operatorCodes.append(code)
        return len(obj.operatorCodes) - 1

    # TFLite's QUANTIZE takes int8 only to int8: int8 -> float32 -> int16 (one small tensor).
    split_float = new_tensor(
        old_split.name + b"/float", old_split.shape, schema.TensorType.FLOAT32, None
    )
    for position, (builtin, source, target) in enumerate(
        (
            (schema.BuiltinOperator.DEQUANTIZE, tflite_index[split], split_float),
            (schema.BuiltinOperator.QUANTIZE, split_float, split16),
        )
    ):
        op = schema.OperatorT()
        op.opcodeIndex = opcode(builtin)
        op.inputs = np.array([source], np.int32)
        op.outputs = np.array([target], np.int32)
        sub.operators.insert(split_layer + position, op)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def _rebuild(model: bytes, arrays: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Give operator inputs (op index, input slot) new constant tensors with their own
    buffers (values, per-channel scales), through TensorFlow's flatbuffer_utils."""

    with quiet_native_stderr():
        from tensorflow.lite.python import schema_py_generated as schema
        from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    subgraph = obj.subgraphs[0]
    for (op_index, slot), (values, scales) in sorted(arrays.items()):
        op = subgraph.operators[op_index]
        inputs = list(op.inputs) + [-1] * (slot + 1 - len(op.inputs))
        old = subgraph.tensors[inputs[slot]] if inputs[slot] >= 0 else None
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)
        obj.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.shape = old.shape if old is not None else np.array([values.size], np.int32)
        tensor.type = schema.TensorType.INT8 if values.dtype == np.int8 else schema.TensorType.INT32
        tensor.buffer = len(obj.buffers) - 1
        tensor.name = (old.name if old is not None else b"bias") + f"/merged_{op_index}".encode()
        params = schema.QuantizationParametersT()
        params.scale = np.asarray(scales, np.float32)
        params.zeroPoint = np.zeros(len(params.scale), np.int64)
        has_axis = old is not None and old.quantization is not None
        params.quantizedDimension = old.quantization.quantizedDimension if has_axis else 0
        tensor.quantization = params
        subgraph.tensors.append(tensor)
        inputs[slot] = len(subgraph.tensors) - 1
        op.inputs = np.array(inputs, np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


# ---------------------------------------------------------------------------
# Checks and export


def predictions(model: bytes, inputs: np.ndarray, runtime: str) -> np.ndarray:
    """Class predictions of a .tflite on int8 model inputs, in TFLite or TFLM (no micropeft)."""

    if runtime == "tflite":
        out = convert.run_tflite(model, inputs)
    else:
        out = convert.run_tflm(model, inputs).outputs
    return np.argmax(out.reshape(len(inputs), -1), axis=1)


def check_against_runtime(
    model: bytes,
    the_plan: Any,
    state: bytes,
    calibration: np.ndarray,
    test_inputs: np.ndarray,
    runtime_pred: np.ndarray,
    labels: np.ndarray,
) -> dict[str, Any]:
    """Merge an exported state (plan built on `model`, the full int8 model), as int8 and
    as 16x8 (keys with "_16x8"), and score both merged models in TFLite and TFLM against
    the runtime's predictions and the labels.

    `calibration` and `test_inputs` are float model inputs (the model's input range)."""

    trainer = infer_trainer(model, the_plan.to_bytes())
    trained = import_state(trainer, state, "the exported state")
    x = convert.quantize_input(model, test_inputs)
    result = merge(
        model,
        the_plan.graph,
        the_plan.split_layer,
        trained.arrays,
        convert.quantize_input(model, calibration),
        with_16x8=True,
        quantized_forward=the_plan.quantized_forward,
    )
    out: dict[str, Any] = {"recalibrated": result.recalibrated}
    for merged, suffix in ((result.model, ""), (result.model_16x8, "_16x8")):
        assert merged is not None
        out[f"bytes{suffix}"] = len(merged)
        for name in ("tflite", "tflm"):
            pred = predictions(merged, x, name)
            out[f"agreement_{name}{suffix}"] = float(np.mean(pred == runtime_pred))
            out[f"accuracy_{name}{suffix}"] = float(np.mean(pred == labels))
    return out


def export_npz(graph: Graph, trained: dict[tuple[int, str], np.ndarray]) -> bytes:
    """The trained arrays as .npz bytes, keyed "<layer name>/<kind>" in TFLite layouts."""

    arrays = {}
    for (index, kind), flat in sorted(trained.items()):
        layer = graph.layers[index]
        if kind == "weight":
            shape: tuple[int, ...] = _weight_shape(graph, layer)
        elif kind == "lora_a":
            shape = (layer.lora_rank or 1, in_channels(graph, layer))
        elif kind == "lora_b":
            shape = (-1, layer.lora_rank or 1)
        else:
            shape = (-1,)
        arrays[f"{layer.name}/{kind}"] = flat.reshape(shape)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
