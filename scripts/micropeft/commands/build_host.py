"""`micropeft build-host`: build the C runtime for this machine."""

from __future__ import annotations

import argparse

from micropeft.host import native


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-host", help="build the C runtime (lib/peft) for this machine with CMake"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = native.build_host(quiet=False, targets=None)
    shown = path.relative_to(native.REPO_ROOT) if path.is_relative_to(native.REPO_ROOT) else path
    print(f"built {shown}")
    return 0
