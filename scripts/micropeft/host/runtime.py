"""ctypes binding of the C trainer (include/peft/peft_trainer.h) for the host.

`Trainer` keeps the model, the plan blob and the arena alive in 16-byte aligned
numpy buffers, exactly as a device keeps them in flash and RAM, and raises
`PeftError` (with the C status) when a call fails.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import numpy as np

from micropeft.formats import PARAM_KINDS, Status
from micropeft.host import native
from micropeft.prep.tflite_graph import graph_from_tflite

__all__ = [
    "LoadedPlan",
    "PeftError",
    "Status",
    "Trainer",
    "abi_query",
    "aligned_buffer",
    "check_layout",
    "load_plan_status",
]

if TYPE_CHECKING:
    from micropeft.planning.plan import Plan


class PeftError(Exception):
    """A C call returned a status other than PEFT_OK."""

    def __init__(self, status: int, call: str = "") -> None:
        self.status = Status(status) if status in Status._value2member_map_ else status
        self.code = int(status)
        self.name = self.status.name if isinstance(self.status, Status) else f"status {status}"
        super().__init__(f"{call}: {self.name}" if call else self.name)


MODES = {"train": 0, "infer": 1}


class _Dims(ctypes.Structure):
    _fields_ = [("h", ctypes.c_int32), ("w", ctypes.c_int32), ("c", ctypes.c_int32)]


class _Breakdown(ctypes.Structure):
    _fields_ = [
        ("cached_activations", ctypes.c_size_t),
        ("gradients", ctypes.c_size_t),
        ("parameters", ctypes.c_size_t),
        ("optimizer_state", ctypes.c_size_t),
        ("scratch", ctypes.c_size_t),
        ("total", ctypes.c_size_t),
    ]


class _TrainerStruct(ctypes.Structure):
    _fields_ = [
        ("plan", ctypes.c_void_p),
        ("mode", ctypes.c_int),
        ("arena", ctypes.c_void_p),
        ("arena_size", ctypes.c_size_t),
        ("step", ctypes.c_uint32),
        ("samples", ctypes.c_uint32),
        ("pending_label", ctypes.c_int32),
        ("pending_labels", ctypes.c_void_p),
        ("pending_samples", ctypes.c_int32),
        ("max_loss", ctypes.c_float),
        ("max_param", ctypes.c_float),
    ]


class _ParamInfo(ctypes.Structure):
    _fields_ = [
        ("layer", ctypes.c_int32),
        ("graph_layer", ctypes.c_int32),
        ("kind", ctypes.c_int),
        ("data", ctypes.POINTER(ctypes.c_float)),
        ("grad", ctypes.POINTER(ctypes.c_float)),
        ("count", ctypes.c_int32),
    ]


class _Meta(ctypes.Structure):
    _fields_ = [("epoch", ctypes.c_uint32), ("sequence", ctypes.c_uint32)]


# The structs this binding mirrors, by their C names: peft_abi_query() gives the
# compiler's sizes and offsets, and _check_layout() refuses a library that differs.
_MIRRORS: dict[str, type[ctypes.Structure]] = {
    "peft_dims": _Dims,
    "peft_arena_breakdown": _Breakdown,
    "peft_trainer": _TrainerStruct,
    "peft_param_info": _ParamInfo,
    "peft_state_meta": _Meta,
}

_P = ctypes.c_void_p
_SIGNATURES: dict[str, list[object]] = {
    "peft_abi_query": [ctypes.c_char_p, ctypes.POINTER(ctypes.c_size_t)],
    "peft_plan_load": [_P, _P, ctypes.c_size_t, _P, ctypes.c_size_t],
    "peft_plan_arena_size": [_P, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)],
    "peft_plan_arena_breakdown": [_P, ctypes.POINTER(_Breakdown)],
    "peft_plan_input_dims": [_P, ctypes.POINTER(_Dims)],
    "peft_plan_input_quant": [_P, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int32)],
    "peft_plan_num_classes": [_P, ctypes.POINTER(ctypes.c_int32)],
    "peft_plan_batch_capacity": [_P, ctypes.POINTER(ctypes.c_int32)],
    "peft_plan_trainable_params": [_P, ctypes.POINTER(ctypes.c_size_t)],
    "peft_trainer_init": [_P, _P, ctypes.c_int, _P, ctypes.c_size_t],
    "peft_trainer_set_limits": [_P, ctypes.c_float, ctypes.c_float],
    "peft_trainer_train_sample_s8": [_P, _P, ctypes.c_int32, ctypes.POINTER(ctypes.c_float)],
    "peft_trainer_train_sample_f32": [_P, _P, ctypes.c_int32, ctypes.POINTER(ctypes.c_float)],
    "peft_trainer_forward_s8": [_P, _P, ctypes.c_int32, ctypes.POINTER(ctypes.c_float)],
    "peft_trainer_forward_f32": [_P, _P, ctypes.c_int32, ctypes.POINTER(ctypes.c_float)],
    "peft_trainer_backward": [_P],
    "peft_trainer_step": [_P],
    "peft_trainer_params_changed": [_P],
    "peft_trainer_predict_s8": [_P, _P, _P, ctypes.POINTER(ctypes.c_int32)],
    "peft_trainer_predict_f32": [_P, _P, _P, ctypes.POINTER(ctypes.c_int32)],
    "peft_trainer_train_batch_s8": [_P, _P, _P, ctypes.c_int32, _P, _P],
    "peft_trainer_train_batch_f32": [_P, _P, _P, ctypes.c_int32, _P, _P],
    "peft_trainer_predict_batch_s8": [_P, _P, ctypes.c_int32, _P, _P, _P],
    "peft_trainer_forward_batch_s8": [_P, _P, _P, ctypes.c_int32, _P],
    "peft_trainer_predict_batch_f32": [_P, _P, ctypes.c_int32, _P, _P, _P],
    "peft_trainer_state_size": [_P, ctypes.POINTER(ctypes.c_size_t)],
    "peft_trainer_export_state": [
        _P,
        _P,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(_Meta),
    ],
    "peft_trainer_import_state": [_P, _P, ctypes.c_size_t, ctypes.POINTER(_Meta)],
    "peft_trainer_arena_high_water": [_P, ctypes.POINTER(ctypes.c_size_t)],
    "peft_trainer_param_count": [_P, ctypes.POINTER(ctypes.c_int32)],
    "peft_trainer_param_info": [_P, ctypes.c_int32, ctypes.POINTER(_ParamInfo)],
}


def _library() -> ctypes.CDLL:
    lib = native.load_library()
    if not getattr(lib, "_micropeft_runtime_bound", False):
        for name, args in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes = args
            fn.restype = ctypes.c_int
        check_layout(lib)
        lib._micropeft_runtime_bound = True
    return lib


def abi_query(lib: ctypes.CDLL, name: str) -> int:
    """sizeof("struct") or offsetof("struct.field") as the C library was compiled."""
    out = ctypes.c_size_t()
    _check(lib.peft_abi_query(name.encode(), ctypes.byref(out)), f"peft_abi_query({name})")
    return out.value


def check_layout(lib: ctypes.CDLL) -> None:
    """Every mirrored struct has the C library's size and field offsets."""
    for c_name, mirror in _MIRRORS.items():
        got = {c_name: ctypes.sizeof(mirror)}
        want = {c_name: abi_query(lib, c_name)}
        for field_name, *_ in mirror._fields_:
            got[f"{c_name}.{field_name}"] = getattr(mirror, field_name).offset
            want[f"{c_name}.{field_name}"] = abi_query(lib, f"{c_name}.{field_name}")
        if got != want:
            wrong = ", ".join(f"{k} {got[k]} (C: {want[k]})" for k in got if got[k] != want[k])
            raise RuntimeError(f"the ctypes mirror of {c_name} disagrees with the library: {wrong}")


def _check(status: int, call: str) -> None:
    if status != Status.OK:
        raise PeftError(status, call)


def aligned_buffer(data: bytes | int, align: int = 16) -> np.ndarray:
    """A uint8 array whose data starts on an `align` boundary (copy of `data`,
    or `data` zero bytes when it is an int)."""
    n = data if isinstance(data, int) else len(data)
    raw = np.zeros(n + align, dtype=np.uint8)
    start = (-raw.ctypes.data) % align
    buf = raw[start : start + n]
    if not isinstance(data, int):
        buf[:] = np.frombuffer(data, dtype=np.uint8)
    return buf


class LoadedPlan:
    """A plan blob checked by the C reader (peft_plan_load), with its queries."""

    def __init__(self, model: bytes, plan_blob: bytes) -> None:
        self.lib = _library()
        self.model = aligned_buffer(model)
        self.blob = aligned_buffer(plan_blob)
        self.struct = aligned_buffer(abi_query(self.lib, "peft_plan"))
        _check(
            self.lib.peft_plan_load(
                self.struct.ctypes.data,
                self.blob.ctypes.data,
                len(plan_blob),
                self.model.ctypes.data,
                len(model),
            ),
            "peft_plan_load",
        )

    @property
    def ptr(self) -> int:
        return self.struct.ctypes.data

    def arena_size(self, mode: str = "train") -> int:
        out = ctypes.c_size_t()
        _check(self.lib.peft_plan_arena_size(self.ptr, MODES[mode], ctypes.byref(out)), "size")
        return out.value

    def breakdown(self) -> dict[str, int]:
        out = _Breakdown()
        _check(self.lib.peft_plan_arena_breakdown(self.ptr, ctypes.byref(out)), "breakdown")
        return {name: getattr(out, name) for name, _ in _Breakdown._fields_}

    def input_dims(self) -> tuple[int, int, int]:
        d = _Dims()
        _check(self.lib.peft_plan_input_dims(self.ptr, ctypes.byref(d)), "input_dims")
        return (d.h, d.w, d.c)

    def input_quant(self) -> tuple[float, int]:
        s, z = ctypes.c_float(), ctypes.c_int32()
        _check(self.lib.peft_plan_input_quant(self.ptr, ctypes.byref(s), ctypes.byref(z)), "quant")
        return (s.value, z.value)

    def num_classes(self) -> int:
        n = ctypes.c_int32()
        _check(self.lib.peft_plan_num_classes(self.ptr, ctypes.byref(n)), "num_classes")
        return n.value

    def batch_capacity(self) -> int:
        n = ctypes.c_int32()
        _check(self.lib.peft_plan_batch_capacity(self.ptr, ctypes.byref(n)), "batch_capacity")
        return n.value

    def trainable_params(self) -> int:
        n = ctypes.c_size_t()
        _check(self.lib.peft_plan_trainable_params(self.ptr, ctypes.byref(n)), "trainable")
        return n.value


def load_plan_status(model: bytes, plan_blob: bytes) -> Status:
    """The status peft_plan_load() returns for this blob (OK or the error)."""
    try:
        LoadedPlan(model, plan_blob)
    except PeftError as error:
        return Status(error.code)
    return Status.OK


class Trainer:
    """The C trainer over one arena (mode "train" or "infer").

    `plan_blob` is the blob, or a `plan.Plan` (whose graph then names the
    parameters; with bytes the names come from parsing the model)."""

    def __init__(self, model: bytes, plan_blob: bytes | Plan, mode: str = "train") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be 'train' or 'infer', not {mode!r}")
        self._plan_obj = None if isinstance(plan_blob, bytes | bytearray) else plan_blob
        blob = bytes(plan_blob) if self._plan_obj is None else self._plan_obj.to_bytes()
        self._model_bytes = bytes(model)
        self.plan = LoadedPlan(self._model_bytes, blob)
        self.lib = self.plan.lib
        self.mode = mode
        size = self.plan.arena_size(mode)
        self.arena = aligned_buffer(max(size, 1))
        self._t = _TrainerStruct()
        _check(
            self.lib.peft_trainer_init(
                ctypes.byref(self._t), self.plan.ptr, MODES[mode], self.arena.ctypes.data, size
            ),
            "peft_trainer_init",
        )
        self.input_dims = self.plan.input_dims()
        self._input_size = int(np.prod(self.input_dims))  # checked on every sample
        self.input_scale, self.input_zero_point = self.plan.input_quant()
        self.num_classes = self.plan.num_classes()
        self.batch_capacity = self.plan.batch_capacity()
        self._names: list[str] | None = None
        self._views: dict[str, dict[str, np.ndarray]] = {}

    def set_limits(self, max_loss: float, max_param: float) -> None:
        """Divergence bounds: a loss above max_loss, a parameter beyond +-max_param."""
        _check(
            self.lib.peft_trainer_set_limits(ctypes.byref(self._t), max_loss, max_param),
            "peft_trainer_set_limits",
        )

    # ---- training ----
    def _input(self, x: np.ndarray) -> tuple[np.ndarray, str]:
        x = np.asarray(x)
        if x.size != self._input_size:
            raise ValueError(f"input has {x.size} values, the plan's input has {self._input_size}")
        if x.dtype == np.int8:
            return np.ascontiguousarray(x.reshape(-1)), "s8"
        return np.ascontiguousarray(x.reshape(-1), dtype=np.float32), "f32"

    def train_sample(self, x: np.ndarray, label: int) -> float:
        """Forward + backward for one sample; returns its loss (gradients add up)."""
        arr, kind = self._input(x)
        loss = ctypes.c_float()
        fn = getattr(self.lib, f"peft_trainer_train_sample_{kind}")
        _check(fn(ctypes.byref(self._t), arr.ctypes.data, int(label), ctypes.byref(loss)), "train")
        return float(loss.value)

    def _batch_input(self, x: np.ndarray) -> tuple[np.ndarray, str, int]:
        """The samples of a batch call, one after the other: (values, kind, count)."""
        x = np.asarray(x)
        n = x.size // self._input_size if self._input_size else 0
        if n < 1 or x.size != n * self._input_size:
            raise ValueError(
                f"input has {x.size} values, not a whole number of the plan's "
                f"{self._input_size}-value inputs"
            )
        if n > self.batch_capacity:
            raise ValueError(f"{n} samples: the plan's batch capacity is {self.batch_capacity}")
        kind = "s8" if x.dtype == np.int8 else "f32"
        dtype = np.int8 if kind == "s8" else np.float32
        return np.ascontiguousarray(x.reshape(-1), dtype=dtype), kind, n

    def train_batch(self, x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward + backward of up to batch_capacity samples in one call (their
        gradients add up). Returns each sample's loss (NaN where it added nothing) and
        its status code; raises PeftError only for a bad argument."""
        arr, kind, n = self._batch_input(x)
        labels = np.ascontiguousarray(labels, dtype=np.int32).reshape(-1)
        if labels.size != n:
            raise ValueError(f"{labels.size} labels for {n} samples")
        losses = np.zeros(n, np.float32)
        statuses = np.zeros(n, np.int32)  # peft_status is a C enum: int
        fn = getattr(self.lib, f"peft_trainer_train_batch_{kind}")
        status = fn(
            ctypes.byref(self._t),
            arr.ctypes.data,
            labels.ctypes.data,
            n,
            losses.ctypes.data,
            statuses.ctypes.data,
        )
        if status == Status.ERR_ARG:
            _check(status, "train_batch")
        return losses, statuses

    def forward_batch(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The first half of train_batch for int8 samples (forward + losses of all of
        them at once); backward() must follow. Raises PeftError when a sample may not add
        its gradient (then nothing awaits backward)."""
        arr, kind, n = self._batch_input(x)
        if kind != "s8":
            raise ValueError("forward_batch takes int8 samples")
        # The C trainer reads the labels again in backward: kept alive until then.
        self._pending_labels = np.ascontiguousarray(labels, dtype=np.int32).reshape(-1)
        if self._pending_labels.size != n:
            raise ValueError(f"{self._pending_labels.size} labels for {n} samples")
        losses = np.zeros(n, np.float32)
        _check(
            self.lib.peft_trainer_forward_batch_s8(
                ctypes.byref(self._t),
                arr.ctypes.data,
                self._pending_labels.ctypes.data,
                n,
                losses.ctypes.data,
            ),
            "forward_batch",
        )
        return losses

    def predict_batch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forward of up to batch_capacity samples in one call: logits (samples x
        classes), predictions and each sample's status code (logits and prediction of
        a sample that failed are NaN and -1)."""
        arr, kind, n = self._batch_input(x)
        logits = np.full((n, self.num_classes), np.nan, np.float32)
        predicted = np.full(n, -1, np.int32)
        statuses = np.zeros(n, np.int32)
        fn = getattr(self.lib, f"peft_trainer_predict_batch_{kind}")
        status = fn(
            ctypes.byref(self._t),
            arr.ctypes.data,
            n,
            logits.ctypes.data,
            predicted.ctypes.data,
            statuses.ctypes.data,
        )
        if status == Status.ERR_ARG:
            _check(status, "predict_batch")
        return logits, predicted, statuses

    def forward(self, x: np.ndarray, label: int) -> float:
        """The first half of train_sample (forward + loss); backward() must follow."""
        arr, kind = self._input(x)
        loss = ctypes.c_float()
        fn = getattr(self.lib, f"peft_trainer_forward_{kind}")
        _check(fn(ctypes.byref(self._t), arr.ctypes.data, int(label), ctypes.byref(loss)), "fwd")
        return float(loss.value)

    def backward(self) -> None:
        """The second half of train_sample: adds the last forward's gradients."""
        _check(self.lib.peft_trainer_backward(ctypes.byref(self._t)), "peft_trainer_backward")

    def step(self) -> None:
        """Apply the mean gradient of the samples since the last step."""
        _check(self.lib.peft_trainer_step(ctypes.byref(self._t)), "peft_trainer_step")

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        arr, kind = self._input(x)
        logits = np.zeros(self.num_classes, dtype=np.float32)
        pred = ctypes.c_int32()
        fn = getattr(self.lib, f"peft_trainer_predict_{kind}")
        _check(
            fn(ctypes.byref(self._t), arr.ctypes.data, logits.ctypes.data, ctypes.byref(pred)),
            "predict",
        )
        return logits, int(pred.value)

    @property
    def steps(self) -> int:
        return int(self._t.step)

    # ---- state ----
    def export_state(self, epoch: int = 0, sequence: int = 0) -> bytes:
        size = ctypes.c_size_t()
        _check(self.lib.peft_trainer_state_size(ctypes.byref(self._t), ctypes.byref(size)), "size")
        buf = aligned_buffer(size.value)
        written = ctypes.c_size_t()
        meta = _Meta(epoch, sequence)
        _check(
            self.lib.peft_trainer_export_state(
                ctypes.byref(self._t),
                buf.ctypes.data,
                size.value,
                ctypes.byref(written),
                ctypes.byref(meta),
            ),
            "export_state",
        )
        return bytes(buf[: written.value])

    def import_state(self, state: bytes) -> dict[str, int]:
        buf = aligned_buffer(state)
        meta = _Meta()
        _check(
            self.lib.peft_trainer_import_state(
                ctypes.byref(self._t), buf.ctypes.data, len(state), ctypes.byref(meta)
            ),
            "import_state",
        )
        return {"epoch": meta.epoch, "sequence": meta.sequence}

    # ---- figures ----
    def arena_high_water(self) -> int:
        out = ctypes.c_size_t()
        _check(
            self.lib.peft_trainer_arena_high_water(ctypes.byref(self._t), ctypes.byref(out)), "hw"
        )
        return out.value

    def arena_size(self, mode: str | None = None) -> int:
        return self.plan.arena_size(mode or self.mode)

    def breakdown(self) -> dict[str, int]:
        return self.plan.breakdown()

    def _layer_name(self, graph_layer: int) -> str:
        if self._names is None:
            if self._plan_obj is not None:
                self._names = [lay.name for lay in self._plan_obj.graph.layers]
            else:
                try:
                    graph = graph_from_tflite(self._model_bytes)
                    self._names = [lay.name for lay in graph.layers]
                except Exception:  # noqa: BLE001 - names are a convenience only
                    self._names = []
        if graph_layer < len(self._names):
            return self._names[graph_layer]
        return f"layer{graph_layer}"

    def param_infos(self) -> list[_ParamInfo]:
        count = ctypes.c_int32()
        _check(self.lib.peft_trainer_param_count(ctypes.byref(self._t), ctypes.byref(count)), "n")
        infos = []
        for i in range(count.value):
            info = _ParamInfo()
            _check(
                self.lib.peft_trainer_param_info(ctypes.byref(self._t), i, ctypes.byref(info)),
                "param_info",
            )
            infos.append(info)
        return infos

    def _arena_views(self, field: str) -> dict[str, np.ndarray]:
        """numpy views of every trainable array's "data" or "grad" in the arena, keyed as
        parameters(): built once (bench reads them after every step), as the arrays sit
        where peft_trainer_init put them for the trainer's life."""
        if field not in self._views:
            self._views[field] = {
                f"{self._layer_name(info.graph_layer)}/{PARAM_KINDS[info.kind]}": (
                    np.ctypeslib.as_array(getattr(info, field), shape=(info.count,))
                )
                for info in self.param_infos()
            }
        return self._views[field]

    def parameters(self) -> dict[str, np.ndarray]:
        """Copies of the trainable arrays, keyed f"{layer_name}/{kind}" (kernel layout)."""
        return {key: view.copy() for key, view in self._arena_views("data").items()}

    def params_changed(self) -> None:
        """After writing parameters through param_infos()' data: recompute what the
        runtime derives from them (DoRA's norms; peft_trainer_params_changed)."""
        _check(self.lib.peft_trainer_params_changed(ctypes.byref(self._t)), "params_changed")

    def gradients(self) -> dict[str, np.ndarray]:
        """Copies of the summed gradients (train mode), same keys as parameters()."""
        return {key: view.copy() for key, view in self._arena_views("grad").items()}
