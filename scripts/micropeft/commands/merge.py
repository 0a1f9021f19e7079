"""`micropeft merge` and `micropeft export`: a trained state, off the device, onto a PC.

merge writes a standard int8 .tflite with the adaptation folded in (micropeft.deploy.merge);
export writes the trained parameters to an .npz keyed "<layer name>/<kind>".
Both read the state from a state blob, a native_sim flash file, or a flash
readout (Intel HEX or binary), and the model folder it was trained for.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from micropeft.deploy import merge
from micropeft.errors import UserError
from micropeft.files import write_atomic
from micropeft.host import reference
from micropeft.planning.config import parse_size
from micropeft.prep import datasets, tflite_graph
from micropeft.prep.convert import quiet_native_stderr

_STATE_HELP = (
    "the trained state: a state blob (the runtime's export), a native_sim flash file, or a "
    "board's flash readout (Intel HEX from `nrfjprog --readcode`, or binary); in a flash "
    "image the state slots are found from pack's layout and the newest valid one is used"
)


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="prepare-model's output folder")
    parser.add_argument("--state", required=True, help=_STATE_HELP)
    parser.add_argument("--out", required=True, help="output file")
    parser.add_argument(
        "--board", help="board of a flash image (default: by its size; Intel HEX: nrf52840dk)"
    )
    parser.add_argument(
        "--layout", help="pack's pack.json: the slot addresses (needed for a partial readout)"
    )
    parser.add_argument(
        "--firmware-size", help="flash before the model partition (default: found in the image)"
    )
    parser.add_argument(
        "--address", help="flash address of a binary readout's first byte (default: flash start)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    merge = subparsers.add_parser(
        "merge",
        help="fold a trained state into a standard int8 .tflite (TFLite / TFLM, no micropeft)",
        description="Fold the trained parameters into full.tflite: LoRA merged into the weights "
        "and requantized per channel, BitFit biases, scale/shift folded into weights and biases, "
        "the trained head and fully or sparsely updated weights; biases are requantized with "
        "input scale x weight scale. With --dataset, requantized weights are rounded to "
        "minimise the layer's output error on its training samples (errors compensated "
        "across inputs, the mean error into the bias), and the activations from the split on "
        "are recalibrated (min/max of what the runtime computes; the int8 logits' range "
        "starts below the lowest winning logit, lower ones never decide a class and clip); "
        "without it weights round to nearest and every activation "
        "keeps the quantization the model was converted with (outputs whose range the "
        "training widened then clip, and predictions may differ from the runtime's).",
    )
    _source_arguments(merge)
    merge.add_argument(
        "--dataset", help="prepare-dataset's dataset.bin: calibration samples and the check"
    )
    merge.add_argument(
        "--activations",
        choices=("int8", "int16"),
        default="int8",
        help="int8 (default): a full int8 model; int16: the trained part in TFLite's 16x8 "
        "mode (int16 activations, int8 weights, int64 biases: closer to the runtime's float "
        "predictions, twice the activation memory from the split on; needs --dataset)",
    )
    merge.add_argument(
        "--calibration-samples",
        type=int,
        default=None,
        help="training samples used for calibration (default 500)",
    )
    merge.set_defaults(handler=run_merge)

    export = subparsers.add_parser(
        "export",
        help="write the trained parameters of a state to an .npz (layer name/kind keys)",
        description="Write every trained array of the state to an .npz keyed "
        "'<layer name>/<kind>' (kind: weight, bias, gamma, beta, lora_a, lora_b) in TFLite's "
        "layouts: CONV_2D [out][kh][kw][in], DEPTHWISE_CONV_2D [kh][kw][c], FULLY_CONNECTED "
        "[out][in], LoRA A [r][in] and B [out][r].",
    )
    _source_arguments(export)
    export.set_defaults(handler=run_export)


def _address(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        raise UserError(f"--address must be a number (e.g. 0x40000), not {text!r}") from None


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(model folder, its plan, the trained state) from the common arguments."""

    folder = merge.read_model_folder(args.model_dir)
    the_plan = folder.plan()
    trainer = merge.infer_trainer(folder.device, folder.plan_blob)
    firmware = None if args.firmware_size is None else parse_size(args.firmware_size)
    source = merge.find_state(
        args.state,
        folder,
        trainer,
        board_name=args.board,
        firmware_size=firmware,
        address=_address(args.address),
        layout_path=args.layout,
    )
    state = merge.import_state(trainer, source.state, source.where)
    for note in source.slots:
        print(f"  {note}")
    print(f"state: {source.where}, epoch {state.epoch}, sequence {state.sequence}")
    return folder, the_plan, state


def _check_out(path: str, suffix: str) -> Path:
    out = Path(path)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name ending in {suffix}")
    return out


def run_merge(args: argparse.Namespace) -> int:

    out = _check_out(args.out, ".tflite")
    if args.calibration_samples is not None and args.calibration_samples < 1:
        raise UserError("--calibration-samples must be at least 1")
    if args.activations == "int16" and args.dataset is None:
        raise UserError("--activations int16 needs --dataset (the int16 ranges come from it)")
    folder, the_plan, state = _load(args)
    calibration = test = None
    if args.dataset is not None:
        path = Path(args.dataset)
        if not path.is_file():
            raise UserError(f"dataset blob not found: {path}")
        data = datasets.parse_dataset_blob(path.read_bytes())
        info = tflite_graph.input_info(folder.full)
        if tuple(data.x_train.shape[1:]) != info.shape or data.quant != info.quant:
            raise UserError(f"{path} was not prepared for this model (input shape or quantization)")
        calibration = data.x_train[: args.calibration_samples or merge.CALIBRATION_SAMPLES]
        test = (data.x_test, data.y_test)
    with quiet_native_stderr():
        result = merge.merge(
            folder.full,
            the_plan.graph,
            the_plan.split_layer,
            state.arrays,
            calibration,
            with_16x8=args.activations == "int16",
            quantized_forward=the_plan.quantized_forward,
        )
    model = result.model if result.model_16x8 is None else result.model_16x8
    for change in result.layers:
        short = change["name"].split(";")[0]
        print(f"  merged layer {change['index']:3d} {'+'.join(change['trained']):<24} {short}")
    print(f"  activations recalibrated: {result.recalibrated}")
    if test is not None and len(test[0]):
        _print_check(folder, the_plan, state, model, test)
    write_atomic(out, model)
    print(f"wrote {out} ({len(model):,d} bytes)")
    return 0


def _print_check(folder: Any, the_plan: Any, state: Any, model: bytes, test: Any) -> None:
    """Agreement of the merged model (TFLite) with the runtime on the dataset's test split."""

    x, y = test
    split = the_plan.graph.tensors[the_plan.input_tensor]
    inp = the_plan.graph.tensors[the_plan.graph.input].quant
    (split_q,) = reference.tflite_tensor_values(
        folder.full, [split.name], reference.dequantize(x, inp.scale, inp.zero_point)
    )
    trainer = merge.infer_trainer(folder.device, folder.plan_blob)
    trainer.import_state(state.blob)
    runtime_pred = np.array([trainer.predict(s)[1] for s in split_q])
    merged_pred = merge.predictions(model, x, "tflite")
    agree, merged_acc, runtime_acc = (
        100 * float(np.mean(a == b))
        for a, b in ((merged_pred, runtime_pred), (merged_pred, y), (runtime_pred, y))
    )
    print(
        f"  check on {len(y)} test samples (TFLite): agreement with the runtime {agree:.1f} %, "
        f"accuracy {merged_acc:.1f} % merged, {runtime_acc:.1f} % runtime"
    )


def run_export(args: argparse.Namespace) -> int:

    out = _check_out(args.out, ".npz")
    _, the_plan, state = _load(args)
    write_atomic(out, merge.export_npz(the_plan.graph, state.arrays))
    print(f"wrote {out} ({len(state.arrays)} arrays)")
    return 0
