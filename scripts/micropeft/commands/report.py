"""`micropeft report`: write the Markdown and HTML report from a results file."""

from __future__ import annotations

import argparse
from pathlib import Path

from micropeft.commands import output_folder
from micropeft.eval import render


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write report.md and a self-contained report.html from a benchmark results file",
    )
    parser.add_argument(
        "results",
        nargs="?",
        type=Path,
        default=Path("out/bench/results.json"),
        help="results file written by `micropeft bench` (default: out/bench/results.json)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: the results file's folder)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    out = output_folder(args.out if args.out is not None else args.results.parent)
    md_path, html_path = render.write_report(args.results, out)
    print(f"wrote {md_path} and {html_path}")
    return 0
