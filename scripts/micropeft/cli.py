"""The `micropeft` command line: a thin layer over the library modules.

Every subcommand lives in `micropeft.commands.<name>` and exposes
`register(subparsers)`; heavy imports (TensorFlow) happen inside handlers so
that `--help` and bad-usage errors answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from micropeft import __version__
from micropeft.errors import UserError

# One module per subcommand, in the order `--help` lists them.
COMMAND_MODULES = [
    "micropeft.commands.build_host",
    "micropeft.commands.prepare_model",
    "micropeft.commands.layers",
    "micropeft.commands.prepare_dataset",
    "micropeft.commands.pack",
    "micropeft.commands.merge",
    "micropeft.commands.bench",
    "micropeft.commands.report",
]


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="micropeft",
        description="Parameter-efficient fine-tuning for microcontrollers: prepare models "
        "and datasets, pack flash images, benchmark the methods, write the report.",
    )
    parser.add_argument("--version", action="version", version=f"micropeft {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineArgumentParser
    )
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"micropeft: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("micropeft: interrupted", file=sys.stderr)
        return 130
