"""The C header of the formats: enum values, limits, blob constants, named offsets."""

from __future__ import annotations

from enum import IntFlag

from micropeft.formats.blobs import BLOB_HEADER, BLOBS, CRC_START, LAYOUTS, LIMITS
from micropeft.formats.enums import (
    ENUMS,
    PARAM_ARRAYS,
    STATUS_TEXT,
    CEnum,
    Method,
    Op,
    Status,
)
from micropeft.formats.layout import PAD, Layout

HEADER_PATH = "include/peft/peft_formats.h"
GENERATOR = "python -m micropeft.formats"
COLUMNS = 100  # .clang-format ColumnLimit
SOURCE = "scripts/micropeft/formats/"


def _macro(name: str) -> str:
    return name.upper()


def _enum(spec: CEnum) -> list[str]:
    members = [m for m in spec.py if not (issubclass(spec.py, IntFlag) and m.value == 0)]
    lines = [f"/** {spec.doc.strip()} */" if spec.doc else ""]
    lines.append("typedef enum {" if spec.c_type else "enum {")
    for m in members:
        if spec.py is Status and STATUS_TEXT[m][1]:
            lines.append(f"\t/** {STATUS_TEXT[m][1]} */")
        lines.append(f"\t{spec.prefix}{m.name} = {m.value},")
    if spec.count:
        lines.append("\t/** Number of members, not a member. */")
        lines.append(f"\tPEFT_{spec.count} = {len(members)},")
    if spec.all_name:
        every = 0
        for m in members:
            every |= m.value
        lines.append("\t/** Every bit. */")
        lines.append(f"\tPEFT_{spec.all_name} = {every},")
    lines.append(f"}} {spec.c_type};" if spec.c_type else "};")
    return [line for line in lines if line != ""]


def _layout(layout: Layout) -> list[str]:
    p = f"PEFT_{layout.c_name}"
    doc = f"{layout.name}: {layout.size} bytes." + (f" {layout.doc}" if layout.doc else "")
    lines = [f"/* {doc} */", f"#define {p}_SIZE {layout.size}u"]
    shared = len(BLOB_HEADER.fields)
    if layout is BLOB_HEADER or layout.fields[:shared] != BLOB_HEADER.fields:
        shared = 0
    if shared:
        common = f"Bytes 0..{CRC_START - 1}: the common blob header"
        lines.append(f"/* {common} (PEFT_BLOB_HDR_OFF_*). */")
    for f in layout.fields[shared:]:
        name = _macro(f.name)
        lines.append(f"#define {p}_OFF_{name} {layout.offset(f.name)}u")
        if f.count > 1 and f.kind != PAD:
            lines.append(f"#define {p}_N_{name} {f.count}u")
        if f.kind == PAD:
            lines.append(f"#define {p}_LEN_{name} {f.count}u")
    return lines


def _continued(first: str, entries: list[str]) -> list[str]:
    """A multi-line macro with its backslashes in the last column (as clang-format puts them)."""
    lines = [first, *entries]
    out = []
    for i, line in enumerate(lines):
        if i == len(lines) - 1:
            out.append(line)
            continue
        width = len(line.expandtabs(8))
        out.append(line + " " * max(COLUMNS - 1 - width, 1) + "\\")
    return out


def _align_macros(lines: list[str]) -> list[str]:
    """Pad the names of consecutive #defines so that their values line up (comment lines
    do not break a run, blank lines do): clang-format's AlignConsecutiveMacros."""
    out = list(lines)
    run: list[int] = []

    def flush() -> None:
        simple = [i for i in run if "(" not in out[i].split()[1]]
        if simple:
            width = max(len(out[i].split()[1]) for i in simple)
            for i in simple:
                _, name, value = out[i].split(" ", 2)
                out[i] = f"#define {name.ljust(width)} {value}"
        run.clear()

    for i, line in enumerate(lines):
        if line.startswith("#define ") and not line.endswith("\\") and " " in line[8:]:
            run.append(i)
        elif line.startswith("/*") and run:
            continue
        else:
            flush()
    flush()
    return out


def _lists() -> list[str]:
    """X-macros, so that C code can visit every status, method or op without a copy of the list."""
    out = ["/** Every status as X(code, text); peft_status_str() answers the text. */"]
    entries = [f'\tX(PEFT_{s.name}, "{STATUS_TEXT[s][0]}")' for s in Status]
    out += _continued("#define PEFT_STATUS_LIST(X)", entries)
    out.append("")
    methods = [m for m in Method if m != Method.NONE]
    out.append("/** Every method as X(NAME, name): CONFIG_PEFT_METHOD_<NAME>, peft_method_<name>.")
    out.append(" * Bit i of the method flags is the i-th entry. */")
    entries = [f"\tX({m.name}, {m.name.lower()})" for m in methods]
    out += _continued("#define PEFT_METHOD_LIST(X)", entries)
    out.append("")
    out.append("/** The methods compiled in (CONFIG_PEFT_METHOD_<NAME>) as X(NAME, name). */")
    for m in methods:
        out.append(f"#ifdef CONFIG_PEFT_METHOD_{m.name}")
        out.append(f"#define PEFT_IF_COMPILED_{m.name}(X) X({m.name}, {m.name.lower()})")
        out.append("#else")
        out.append(f"#define PEFT_IF_COMPILED_{m.name}(X)")
        out.append("#endif")
    entries = [f"\tPEFT_IF_COMPILED_{m.name}(X)" for m in methods]
    out += _continued("#define PEFT_COMPILED_METHOD_LIST(X)", entries)
    out.append("")
    out.append("/** Every parameter array as X(KIND, SIZE, OWNERS): PEFT_PARAM_<KIND> holds")
    out.append(" * PEFT_PARAM_SIZE_<SIZE> floats in a layer whose methods meet OWNERS (0: every")
    out.append(" * layer with the tensor). */")
    entries = []
    for kind, (size, owners) in PARAM_ARRAYS.items():
        bits = " | ".join(f"PEFT_METHOD_{m.name}" for m in Method if m and m in owners)
        entries.append(f"\tX({kind.name}, {size.name}, {f'({bits})' if bits else '0u'})")
    out += _continued("#define PEFT_PARAM_ARRAY_LIST(X)", entries)
    out.append("")
    out.append("/** Every op as X(NAME, name): PEFT_OP_<NAME>, its table entry peft_op_<name>. */")
    entries = [f"\tX({op.name}, {op.name.lower()})" for op in Op]
    out += _continued("#define PEFT_OP_LIST(X)", entries)
    out.append("")
    return out


def render() -> str:
    """The text of include/peft/peft_formats.h."""
    out = [
        f"/* Generated by `{GENERATOR}` from {SOURCE}; do not edit. */",
        "/**",
        " * @file peft_formats.h",
        " * @brief Every blob layout, enum and limit shared by the runtime and the tools.",
        " *",
        " * Offsets are bytes from the start of the header or record; every integer is",
        " * little-endian (read them with peft/peft_bytes.h). docs/formats.md explains",
        " * the fields.",
        " */",
        "#ifndef PEFT_FORMATS_H",
        "#define PEFT_FORMATS_H",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
    ]
    for spec in ENUMS:
        if spec.in_c_header:
            out += _enum(spec) + [""]
    out += _lists()
    out.append("/* Limits. */")
    for limit in LIMITS:
        value = f"0x{limit.value:X}" if limit.hex else f"{limit.value}"
        value += "u" if limit.unsigned else ""
        out.append(f"/* {limit.doc} */")
        out.append(f"#define PEFT_{limit.name} {value}")
    out.append("")
    out.append("/* Blobs: magic (the four ASCII bytes read as a little-endian u32), version. */")
    out.append("/* The CRC covers the bytes [PEFT_BLOB_CRC_START, total length). */")
    out.append(f"#define PEFT_BLOB_CRC_START {CRC_START}u")
    for blob in BLOBS:
        p = f"PEFT_{blob.c_name}"
        out.append(f'/* {blob.name}: "{blob.magic.decode()}". */')
        out.append(f"#define {p}_MAGIC 0x{blob.magic_u32:08X}u")
        out.append(f"#define {p}_VERSION {blob.version}u")
        out.append(f"#define {p}_HEADER_SIZE {blob.header_size}u")
    out.append("")
    for layout in LAYOUTS:
        out += _layout(layout) + [""]
    out += [
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        "#endif /* PEFT_FORMATS_H */",
        "",
    ]
    return "\n".join(_align_macros(out))
