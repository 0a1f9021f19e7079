"""`python -m micropeft.formats [--out DIR] [--check]`: write the generated files.

Writes include/peft/peft_formats.h and the tables of docs/formats.md from the
descriptions in this package. `--out DIR` writes them under DIR instead of the
repository (the docs' prose is taken from the repository's copy); `--check`
writes nothing and exits 1 when a committed file differs from what it would write.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from micropeft.files import write_atomic
from micropeft.formats import cheader, markdown
from micropeft.host.native import REPO_ROOT


def generated(repo: Path = REPO_ROOT) -> dict[str, str]:
    """Relative path -> the text it should hold."""
    docs = (repo / markdown.DOCS_PATH).read_text()
    return {cheader.HEADER_PATH: cheader.render(), markdown.DOCS_PATH: markdown.fill(docs)}


def main(argv: list[str] | None = None, repo: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(prog="python -m micropeft.formats", description=__doc__)
    parser.add_argument("--out", type=Path, help="write under this folder, not the repository")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when stale")
    args = parser.parse_args(argv)
    files = generated(repo)
    if args.check:
        stale = [p for p, text in files.items() if (repo / p).read_text() != text]
        for path in stale:
            print(f"stale: {path} (run python -m micropeft.formats)", file=sys.stderr)
        return 1 if stale else 0
    root = args.out if args.out is not None else repo
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text.encode())
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
