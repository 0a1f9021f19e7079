"""The subcommands of `micropeft` (one module each), and the input checks they share.

Every check here runs before any long work and raises UserError (one line,
exit 2); none of them creates anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from micropeft.errors import UserError
from micropeft.prep import tflite_graph


def output_folder(text: str | Path, option: str = "--out") -> Path:
    """`text` as an output folder: a folder, or nothing yet, in which files can
    be created. Checked by creating and removing a probe file in the nearest
    folder that exists, so it holds for root and read-only file systems too."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {text} exists and is not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{option} {text}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".micropeft-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise UserError(
            f"{option} {text} is not writable ({error.strerror or error} in {existing})"
        ) from None
    return path


@contextlib.contextmanager
def removed_on_error(folder: Path) -> Iterator[None]:
    """Remove `folder` again if it did not exist before and the block fails, so
    that a failed command leaves nothing behind."""
    existed = folder.exists()
    try:
        yield
    except BaseException:
        if not existed and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        raise


def read_tflite(text: str | Path, option: str = "--model", parse: str = "io") -> bytes:
    """The bytes of an int8 .tflite file, parsed once so that a truncated or
    corrupt file is a clear error here rather than a traceback later. `parse`:
    "input" (the input tensor), "io" (input and output) or "whole" (every operator)."""

    path = Path(text)
    if not path.is_file():
        raise UserError(f"model file not found: {text}")
    data = path.read_bytes()
    try:
        if parse == "whole":
            tflite_graph.graph_from_tflite(data)
        else:
            tflite_graph.input_info(data)
            if parse == "io":
                tflite_graph.output_classes(data)
    except UserError as error:
        raise UserError(f"{option} {text}: {error}") from None
    except Exception as error:  # noqa: BLE001 - a corrupt flatbuffer fails anywhere in the reader
        raise UserError(
            f"{option} {text} is not a valid .tflite model: truncated or corrupt "
            f"({type(error).__name__} after {len(data):,d} bytes)"
        ) from None
    return data


def parse_range(text: str | None, default: tuple[float, float]) -> tuple[float, float]:
    """--input-range LOW,HIGH as floats (`default` when not given); UserError when malformed."""
    if text is None:
        return default
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--input-range must be LOW,HIGH (e.g. 0,1), not {text!r}") from None
    if not low < high:
        raise UserError(f"--input-range: LOW must be below HIGH ({text})")
    return low, high


def refuse_device_model(path: Path, option: str = "--tflite") -> None:
    """prepare-model's device model (model.tflite, cut at the split) is not a whole
    model: it has the same length as the full.tflite beside it, patched in place."""
    full = path.with_name("full.tflite")
    if path.name == full.name or not (path.is_file() and full.is_file()):
        return
    data, whole = path.read_bytes(), full.read_bytes()
    if len(data) == len(whole) and data != whole:
        raise UserError(
            f"{option} {path} is the device model that prepare-model wrote (cut at the "
            f"split); give the whole model beside it: {option} {full}"
        )


def whole_model(text: str | Path, option: str = "--model") -> Path:
    """The whole int8 model a command fine-tunes: prepare-model's --out folder (its
    full.tflite) or a .tflite file; prepare-model's device model is refused."""
    path = Path(text)
    if path.is_dir():
        path = path / "full.tflite"
        if not path.is_file():
            raise UserError(
                f"{option} {text}: no full.tflite in this folder (give prepare-model's --out "
                "folder or a whole int8 .tflite)"
            )
    refuse_device_model(path, option)
    return path


def input_range_beside(model_path: Path, text: str | None) -> tuple[float, float]:
    """--input-range when given, else the input range in prepare-model's summary.json
    beside the model, else 0,1."""
    if text is not None:
        return parse_range(text, (0.0, 1.0))
    summary = model_path.parent / "summary.json"
    if summary.is_file():
        try:
            low, high = json.loads(summary.read_text())["input_range"]
            return float(low), float(high)
        except (ValueError, KeyError, TypeError):
            pass
    return 0.0, 1.0
