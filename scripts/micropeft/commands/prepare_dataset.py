"""`micropeft prepare-dataset`: a dataset fitted to a model's input, as a blob.

Writes into --out: dataset.bin (docs/formats.md, "Dataset blob": seeded
stratified train/test split, int8 with the model input's quantization) and
dataset.json (source, class names, counts).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from micropeft.commands import input_range_beside, output_folder, read_tflite, removed_on_error
from micropeft.files import write_atomic
from micropeft.prep import datasets, tflite_graph


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare-dataset",
        help="fit a dataset to a model's input and write the dataset blob",
        description="Load a dataset (animal-mnist, digits, skimage-patches, the sensor series "
        "japanese-vowels[-a|-b] and basic-motions, a .npz with x and y, a folder with one "
        "sub-folder per class, or tfds:NAME), fit it to the model input (images resized, "
        "series resampled in time), quantize it with the input's scale and zero point, split "
        "it (seeded, stratified) and write the dataset blob.",
    )
    parser.add_argument("--model", required=True, help="the .tflite the dataset is for")
    parser.add_argument("--source", default="animal-mnist", help="dataset (default animal-mnist)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=datasets.TEST_FRACTION,
        help=f"default {datasets.TEST_FRACTION:g} (bench's split of a raw --dataset)",
    )
    parser.add_argument("--limit", type=int, help="use this many samples (stratified)")
    parser.add_argument("--seed", type=int, default=0, help="split and sampling seed")
    parser.add_argument(
        "--input-range",
        help="float range the model expects for pixels 0..1 (default: from summary.json "
        "beside the model, else 0,1)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:

    out = output_folder(args.out)
    model_path = Path(args.model)
    model = read_tflite(model_path)
    info = tflite_graph.input_info(model)
    classes = tflite_graph.output_classes(model)
    # The device model ends at the split; its output is not the logits. Use the
    # class count recorded beside it when there is one.
    summary_file = model_path.parent / "summary.json"
    if summary_file.is_file():
        try:
            classes = int(json.loads(summary_file.read_text())["num_classes"])
        except (ValueError, KeyError, TypeError):
            pass
    data = datasets.load_source(args.source, args.seed, series=datasets.is_series(info.shape))
    datasets.check_against_model(data, classes)
    train, test = datasets.stratified_split(data.y, args.test_fraction, args.seed, args.limit)
    rng = input_range_beside(model_path, args.input_range)
    keep = np.concatenate([train, test])
    fitted = datasets.fit_images(data.x[keep], info.shape)
    q = datasets.quantize(fitted, rng, info.quant)
    n = len(train)
    blob = datasets.dataset_blob(q[:n], data.y[train], q[n:], data.y[test], info.quant, classes)
    meta = {
        **datasets.summary(data, train, test),
        "shape": list(info.shape),
        "input_quant": {"scale": info.quant.scale, "zero_point": info.quant.zero_point},
        "input_range": list(rng),
        "seed": args.seed,
        "bytes": len(blob),
    }
    with removed_on_error(out):
        write_atomic(out / "dataset.bin", blob)
        write_atomic(out / "dataset.json", json.dumps(meta, indent=2) + "\n")
    print(
        f"wrote {out}/dataset.bin: {data.name}, {n} train + {len(test)} test samples of "
        f"{'x'.join(map(str, info.shape))}, {classes} classes, {len(blob):,d} bytes"
    )
    return 0
