"""`micropeft pack`: partition images, Intel HEX, devicetree overlay, flash file.

Reads prepare-model's folder (model.tflite, plan.bin, summary.json) and
prepare-dataset's dataset.bin; writes into --out the four partition images,
partitions.hex (every partition at its flash address, the state slots erased),
images.hex (model and dataset only: re-flashing it keeps the trained state),
<board>.overlay (fixed-partitions matching them), <board>.conf (the sample's Kconfig
for these images: buffer sizes, methods, optimizer), pack.json, and for native_sim
flash.bin, the raw flash file its flash simulator loads (`zephyr.exe --flash=flash.bin`).
A plan whose RAM does not fit the board beside the sample is refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from micropeft.commands import output_folder, read_tflite, removed_on_error
from micropeft.deploy import boards, pack
from micropeft.deploy.boards import BOARDS
from micropeft.errors import UserError
from micropeft.files import write_atomic
from micropeft.planning import plan as plan_module
from micropeft.planning.config import parse_size
from micropeft.prep import datasets, tflite_graph


def register(subparsers: argparse._SubParsersAction) -> None:

    parser = subparsers.add_parser(
        "pack",
        help="lay out flash partitions: images, Intel HEX, devicetree overlay",
        description="Pack the model+plan, the dataset and two trained-state slots into flash "
        "partitions after the firmware, and write the images, an Intel HEX, the devicetree "
        "overlay and (native_sim) the flash simulator's file.",
    )
    parser.add_argument("--board", default="nrf52840dk", help=f"one of {', '.join(BOARDS)}")
    parser.add_argument("--model-dir", required=True, help="prepare-model's output folder")
    parser.add_argument("--dataset", required=True, help="prepare-dataset's dataset.bin")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--firmware-size", help="flash kept for the firmware, e.g. 512k (default: per board)"
    )
    parser.add_argument("--state-size", help="bytes per state slot (default: from the plan)")
    parser.set_defaults(handler=run)


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    return path.read_bytes()


def run(args: argparse.Namespace) -> int:

    out = output_folder(args.out)
    board = boards.get_board(args.board)
    model_dir = Path(args.model_dir)
    model = read_tflite(model_dir / "model.tflite", "--model-dir", parse="input")
    plan = _read(model_dir / "plan.bin", "plan")
    plan_module.check_blob_version(plan, str(model_dir / "plan.bin"))
    summary_text = _read(model_dir / "summary.json", "summary").decode()
    try:
        summary = json.loads(summary_text)
    except ValueError as error:
        raise UserError(f"{model_dir / 'summary.json'} is not JSON ({error})") from error
    dataset = _read(Path(args.dataset), "dataset blob")
    parsed = datasets.parse_dataset_blob(dataset)

    # The dataset must match the model input it will be fed to.
    info = tflite_graph.input_info(model)
    shape = parsed.x_train.shape[1:]
    if tuple(shape) != info.shape or (
        abs(parsed.quant.scale - info.quant.scale) > 1e-12 * max(1.0, info.quant.scale)
        or parsed.quant.zero_point != info.quant.zero_point
    ):
        raise UserError(
            f"the dataset ({'x'.join(map(str, shape))}, scale {parsed.quant.scale:g}, zero point "
            f"{parsed.quant.zero_point}) was not prepared for this model "
            f"({'x'.join(map(str, info.shape))}, scale {info.quant.scale:g}, zero point "
            f"{info.quant.zero_point}): run prepare-dataset --model {model_dir / 'model.tflite'}"
        )
    if parsed.num_classes != int(summary.get("num_classes", parsed.num_classes)):
        raise UserError(
            f"the dataset has {parsed.num_classes} classes, the model {summary['num_classes']}"
        )

    firmware = board.firmware_size if args.firmware_size is None else parse_size(args.firmware_size)
    if args.state_size is not None:
        state = parse_size(args.state_size)
    else:
        state = int(summary.get("flash", {}).get("state_slot", 0))
        if state <= 0:
            raise UserError("summary.json has no state size: give --state-size")
    images = {"peft_model": pack.model_container(model, plan), "peft_dataset": dataset}
    parts = pack.layout(board, images, state, firmware)
    # The device model's output is the split activation (int8): one byte per element.
    split_bytes = tflite_graph.output_classes(model)
    options, comments = pack.board_config(board, summary, split_bytes, len(parsed.x_train))
    used = parts[-1].offset + parts[-1].size
    meta = {
        "board": board.name,
        "flash_size": board.flash_size,
        "page_size": board.page_size,
        "firmware_size": firmware,
        "free_bytes": board.flash_size - used,
        "partitions": [
            {"label": p.label, "offset": p.offset, "size": p.size, "bytes": len(p.data)}
            for p in parts
        ],
    }
    with removed_on_error(out):
        for p in parts:
            write_atomic(out / f"{p.label}.bin", p.data)
        write_atomic(out / "partitions.hex", pack.intel_hex(board, parts))
        # Model and dataset only: re-flashing them leaves the trained state slots alone.
        images_only = [p for p in parts if p.label in images]
        write_atomic(out / "images.hex", pack.intel_hex(board, images_only))
        write_atomic(out / f"{board.name}.overlay", pack.overlay(board, parts, firmware))
        write_atomic(out / f"{board.name}.conf", pack.conf_text(board, options, comments))
        if board.name == "native_sim":
            write_atomic(out / "flash.bin", pack.flash_image(board, parts))
        write_atomic(out / "pack.json", json.dumps(meta, indent=2) + "\n")
    print(f"{board.name}: flash {board.flash_size // 1024} KiB, firmware {firmware // 1024} KiB")
    for p in parts:
        print(
            f"  {p.label:<13} 0x{board.flash_base + p.offset:08x}  {p.size // 1024:5d} KiB  "
            f"({len(p.data):,d} bytes of data)"
        )
    print(f"  free          {(board.flash_size - used) // 1024:5d} KiB; wrote {out}")
    for line in comments:
        print(f"  {line}")
    return 0
