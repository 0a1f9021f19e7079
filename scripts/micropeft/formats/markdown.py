"""The tables of docs/formats.md, written from the descriptions.

The prose around them stays hand-written: each table sits between
`<!-- formats:NAME -->` and `<!-- /formats -->`, and `fill` replaces what is
between the two markers.
"""

from __future__ import annotations

import re
from enum import IntFlag

from micropeft.formats.blobs import (
    ARRAY_REF,
    BLOB_HEADER,
    BLOBS,
    CONTAINER_HEADER,
    DATASET_HEADER,
    LIMITS,
    PLAN_BUFFER,
    PLAN_HEADER,
    PLAN_LAYER,
    PLAN_TENSOR,
    STATE_HEADER,
)
from micropeft.formats.enums import ENUMS
from micropeft.formats.layout import MAGIC, PAD, SCALARS, Layout

DOCS_PATH = "docs/formats.md"
_MARKER = re.compile(r"(<!-- formats:([a-z0-9-]+) -->\n)(.*?)(<!-- /formats -->)", re.S)


def _type(layout: Layout, name: str) -> str:
    f = layout.field(name)
    if isinstance(f.kind, Layout):
        return "ref"
    if f.kind == MAGIC:
        return "char[4]"
    if f.kind == PAD:
        return ""
    base = SCALARS[f.kind][3]
    return base if f.count == 1 else f"{base} x {f.count}"


def layout_table(layout: Layout) -> str:
    magic = {blob.header: blob for blob in BLOBS}.get(layout)
    rows = ["| offset | size | type | field |", "|---:|---:|---|---|"]
    for f in layout.fields:
        doc = f"`{f.name}`: {f.doc}" if f.doc else f"`{f.name}`"
        if f.kind == MAGIC and magic is not None:
            doc += f" `{magic.magic.decode()}`"
        if f.name == "version" and magic is not None:
            doc += f" ({magic.version})"
        if f.name == "header_size" and magic is not None:
            doc += f" ({magic.header_size})"
        rows.append(f"| {layout.offset(f.name)} | {f.size} | {_type(layout, f.name)} | {doc} |")
    return "\n".join(rows) + "\n"


def enums_table() -> str:
    rows = ["| enum | C prefix | values |", "|---|---|---|"]
    for spec in ENUMS:
        members = [m for m in spec.py if not (issubclass(spec.py, IntFlag) and m.value == 0)]
        values = ", ".join(f"{m.value} {m.name}" for m in members)
        rows.append(f"| {spec.py.__name__} | `{spec.prefix}` | {values} |")
    return "\n".join(rows) + "\n"


def limits_table() -> str:
    rows = ["| limit | value | meaning |", "|---|---:|---|"]
    for limit in LIMITS:
        value = f"0x{limit.value:X}" if limit.hex else str(limit.value)
        rows.append(f"| `PEFT_{limit.name}` | {value} | {limit.doc} |")
    return "\n".join(rows) + "\n"


TABLES = {
    "blob-header": lambda: layout_table(BLOB_HEADER),
    "dataset-header": lambda: layout_table(DATASET_HEADER),
    "container-header": lambda: layout_table(CONTAINER_HEADER),
    "plan-header": lambda: layout_table(PLAN_HEADER),
    "plan-tensor": lambda: layout_table(PLAN_TENSOR),
    "plan-ref": lambda: layout_table(ARRAY_REF),
    "plan-layer": lambda: layout_table(PLAN_LAYER),
    "plan-buffer": lambda: layout_table(PLAN_BUFFER),
    "state-header": lambda: layout_table(STATE_HEADER),
    "enums": enums_table,
    "limits": limits_table,
}


def fill(text: str) -> str:
    """`text` with every marked table rewritten; an unknown or missing table is an error."""
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in TABLES:
            raise ValueError(f"{DOCS_PATH}: unknown table {name!r}")
        seen.add(name)
        return match.group(1) + TABLES[name]() + match.group(4)

    out = _MARKER.sub(replace, text)
    missing = set(TABLES) - seen
    if missing:
        raise ValueError(f"{DOCS_PATH} lacks the table(s) {', '.join(sorted(missing))}")
    return out
