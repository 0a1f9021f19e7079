"""Byte layouts described as data: fields with a type and a count, packed little-endian.

A `Layout` is the one description of a header or record. Python packs and
unpacks through it, the C header generator turns it into named offsets, and the
docs tables are written from it, so an offset exists in one place only.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Scalar field types: (struct code, size, C type, docs type).
SCALARS: dict[str, tuple[str, int, str, str]] = {
    "u8": ("B", 1, "uint8_t", "u8"),
    "u16": ("H", 2, "uint16_t", "u16"),
    "u32": ("I", 4, "uint32_t", "u32"),
    "i32": ("i", 4, "int32_t", "i32"),
    "f32": ("f", 4, "float", "f32"),
}
MAGIC = "magic"  # four ASCII bytes
PAD = "pad"  # reserved bytes, written as zero, never read


@dataclass(frozen=True)
class Field:
    """One field: a scalar (`kind` in SCALARS), `count` of them, or a nested Layout."""

    name: str
    kind: str | Layout
    count: int = 1
    doc: str = ""
    default: Any = None  # value packed when the caller gives none (reserved fields: 0)

    @property
    def size(self) -> int:
        if isinstance(self.kind, Layout):
            return self.kind.size * self.count
        if self.kind in (MAGIC, PAD):
            return self.count if self.kind == PAD else 4
        return SCALARS[self.kind][1] * self.count

    @property
    def struct_code(self) -> str:
        if isinstance(self.kind, Layout):
            return self.kind.struct_code * self.count
        if self.kind == MAGIC:
            return "4s"
        if self.kind == PAD:
            return f"{self.count}x"
        code = SCALARS[self.kind][0]
        return code * self.count

    @property
    def values(self) -> int:
        """Number of struct values the field packs to."""
        if isinstance(self.kind, Layout):
            return self.kind.values * self.count
        if self.kind == PAD:
            return 0
        return 1 if self.kind == MAGIC else self.count


@dataclass(frozen=True)
class Layout:
    """A header or record. `c_name` prefixes its C macros (PEFT_<c_name>_...)."""

    name: str
    c_name: str
    fields: tuple[Field, ...]
    doc: str = ""
    offsets: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        offsets: dict[str, int] = {}
        pos = 0
        for f in self.fields:
            if f.name in offsets:
                raise ValueError(f"{self.name}: field {f.name} twice")
            align = f.kind.align if isinstance(f.kind, Layout) else min(f.size // f.count, 4)
            if f.kind not in (MAGIC, PAD) and pos % max(align, 1):
                raise ValueError(f"{self.name}: field {f.name} at {pos} is not {align}-aligned")
            offsets[f.name] = pos
            pos += f.size
        object.__setattr__(self, "offsets", offsets)

    # ---- geometry ----
    @property
    def size(self) -> int:
        return sum(f.size for f in self.fields)

    @property
    def align(self) -> int:
        return 4

    @property
    def struct_code(self) -> str:
        return "".join(f.struct_code for f in self.fields)

    @property
    def struct(self) -> struct.Struct:
        return struct.Struct("<" + self.struct_code)

    @property
    def values(self) -> int:
        return sum(f.values for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    def offset(self, name: str) -> int:
        return self.offsets[name]

    # ---- packing ----
    def flatten(self, values: Mapping[str, Any]) -> list[Any]:
        """Struct values in field order; unknown names are an error."""
        unknown = set(values) - set(self.offsets)
        if unknown:
            raise KeyError(f"{self.name} has no field(s) {', '.join(sorted(unknown))}")
        flat: list[Any] = []
        for f in self.fields:
            if f.kind == PAD:
                continue
            value = values.get(f.name, f.default)
            if value is None:
                raise KeyError(f"{self.name}: no value for field {f.name!r}")
            if isinstance(f.kind, Layout):
                items = [value] if f.count == 1 else list(value)
                if len(items) != f.count:
                    raise ValueError(f"{self.name}.{f.name}: {f.count} records, not {len(items)}")
                for item in items:
                    flat += f.kind.flatten(item)
            elif f.count == 1 or f.kind == MAGIC:
                flat.append(value)
            else:
                items = list(_as_sequence(value, f.count))
                if len(items) != f.count:
                    raise ValueError(f"{self.name}.{f.name}: {f.count} values, not {len(items)}")
                flat += items
        return flat

    def pack(self, **values: Any) -> bytes:
        return self.struct.pack(*self.flatten(values))

    def pack_into(self, buffer: bytearray, offset: int, **values: Any) -> None:
        self.struct.pack_into(buffer, offset, *self.flatten(values))

    def unpack(self, buffer: bytes | bytearray | memoryview, offset: int = 0) -> dict[str, Any]:
        """Field name -> value (tuples for counted fields, dicts for nested layouts)."""
        flat = list(self.struct.unpack_from(buffer, offset))
        return self._rebuild(flat)

    def _rebuild(self, flat: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.kind == PAD:
                continue
            if isinstance(f.kind, Layout):
                items = [f.kind._rebuild(flat) for _ in range(f.count)]
                out[f.name] = items[0] if f.count == 1 else tuple(items)
            elif f.count == 1 or f.kind == MAGIC:
                out[f.name] = flat.pop(0)
            else:
                out[f.name] = tuple(flat.pop(0) for _ in range(f.count))
        return out

    def read(self, buffer: bytes | bytearray | memoryview, name: str, offset: int = 0) -> Any:
        """One field's value (a scalar or a tuple)."""
        f = self.field(name)
        code = "<" + f.struct_code
        values = struct.unpack_from(code, buffer, offset + self.offset(name))
        return values[0] if len(values) == 1 else values

    def write(self, buffer: bytearray, name: str, value: Any, offset: int = 0) -> None:
        """Overwrite one field in place (tests corrupt blobs this way)."""
        f = self.field(name)
        items = [value] if f.count == 1 or f.kind == MAGIC else list(value)
        struct.pack_into("<" + f.struct_code, buffer, offset + self.offset(name), *items)


def _as_sequence(value: Any, count: int) -> Sequence[Any]:
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"expected {count} values, got {value!r}")
