"""`west micropeft ...`: the micropeft CLI as a west extension command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from west.commands import WestCommand  # type: ignore[import-not-found]

# west loads this file by path; make the package importable when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from micropeft.cli import main  # noqa: E402 (importable only after the line above)


class MicropeftCommand(WestCommand):
    def __init__(self) -> None:
        super().__init__(
            "micropeft",
            "micropeft tooling",
            "Runs the micropeft CLI (see `west micropeft --help`).",
            accepts_unknown_args=True,
        )

    def do_add_parser(self, parser_adder: argparse._SubParsersAction) -> argparse.ArgumentParser:
        return parser_adder.add_parser(self.name, help=self.help, add_help=False)

    def do_run(self, args: argparse.Namespace, unknown: list[str]) -> None:
        raise SystemExit(main(unknown))
