"""`micropeft layers`: each layer of a model, and which methods can train it.

What a user needs to write `target_modules`: index, name, operator, shapes,
parameter count, the kind keywords that pick the layer and the methods that can
carry it, all from the planner's own rules (planning.methods).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from micropeft.commands import read_tflite, refuse_device_model
from micropeft.errors import UserError
from micropeft.planning import methods
from micropeft.prep import tflite_graph
from micropeft.prep.graph import Graph, Layer, Op

COMMAND = "micropeft layers"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "layers",
        help="list a model's layers with shapes and the methods that can target them",
        description="List every layer of an int8 model (prepare-model's output folder, its "
        "full.tflite, or any int8 .tflite): index, name, operator, input and output shapes, "
        "parameters, the target_modules kind keywords that pick it and the methods that can "
        "train it.",
    )
    parser.add_argument("model", help="prepare-model's output folder, or a whole int8 .tflite")
    parser.set_defaults(handler=run)


def model_file(text: str) -> Path:
    """The whole model a user means: a prepared folder's full.tflite, or the file."""
    path = Path(text)
    if path.is_dir():
        full = path / "full.tflite"
        if not full.is_file():
            raise UserError(f"{text} has no full.tflite: give prepare-model's output folder")
        return full
    if not path.is_file():
        raise UserError(f"model file not found: {text}")
    refuse_device_model(path, COMMAND)
    return path


def _op_text(layer: Layer) -> str:
    if layer.op in (Op.CONV_2D, Op.DEPTHWISE_CONV_2D):
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        stride = str(sh) if sh == sw else f"{sh}x{sw}"
        return f"{layer.op.name} {kh}x{kw}/{stride}"
    return layer.op.name


def _shape(graph: Graph, tensor: int) -> str:
    return "x".join(map(str, graph.tensors[tensor].shape))


def parameters(layer: Layer) -> int:
    """The layer's stored weights and biases (what full fine-tuning trains of it)."""
    return sum(ref.count for ref in (layer.weights, layer.bias) if ref is not None)


def rows(graph: Graph) -> list[dict[str, object]]:
    """One record per layer (what the table prints)."""
    head = methods.head_index(graph)
    out = []
    for i, layer in enumerate(graph.layers):
        out.append(
            {
                "index": i,
                "name": layer.name,
                "op": _op_text(layer),
                "input": " + ".join(_shape(graph, t) for t in layer.inputs),
                "output": _shape(graph, layer.output),
                "parameters": parameters(layer),
                "kinds": methods.kinds_of(layer) + (["head"] if i == head else []),
                "methods": methods.methods_for(graph, i),
            }
        )
    return out


def table(graph: Graph) -> str:
    header = ("idx", "name", "op", "input -> output", "params", "kinds", "methods")
    cells = [
        (
            str(r["index"]),
            # TFLite names fused tensors "a;b;c"; the first part names the layer well enough.
            str(r["name"]).split(";")[0],
            str(r["op"]),
            f"{r['input']} -> {r['output']}",
            f"{r['parameters']:,d}",
            ",".join(r["kinds"]) or "-",  # type: ignore[arg-type]
            ",".join(r["methods"]) or "-",  # type: ignore[arg-type]
        )
        for r in rows(graph)
    ]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    right = {0, 4}  # numbers

    def line(row: tuple[str, ...]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join(
        [
            line(header),
            *map(line, cells),
            "target_modules takes an index, a name (or a regular expression searched in "
            "names), or a keyword: all, head, " + ", ".join(methods.KINDS) + ", last:N[:KIND]",
        ]
    )


def run(args: argparse.Namespace) -> int:
    path = model_file(args.model)
    data = read_tflite(path, "model", parse="whole")
    print(table(tflite_graph.graph_from_tflite(data, name=path.stem)))
    return 0
