"""Field maps: the named fields of parsed bytes, where they are and what kind
of value they hold, and the two ways to change one.

:func:`field_map` reads the located parse of the spec runtime
(:func:`dicomwire.spec.parse_located`) and returns every named field with
its absolute offset, size, value, kind (``length``, ``type``, ``reserved``,
``flags``, ``ae_title``, ``text``, ``int``, ``bytes``, ``region``) and, for
lengths, how far the bounded region around it reaches.  Mutators
:func:`pick` fields from the map and :func:`patch` them (a deliberately
wrong value) or :func:`resize` them (new content, every enclosing length
recomputed), so a mutation always knows what it broke.  Apart from the
mutators: this is the reading of a declaration, they are the decisions
taken with it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable

from construct import (
    Adapter,
    Bytes,
    Const,
    Construct,
    FixedSized,
    FormatField,
    GreedyBytes,
    Rebuild,
)

from dicomwire.spec import Latin1, parse_located

from ..pdu import PDU, AETitleString
from .choices import Choices


@dataclass(frozen=True)
class Field:
    """One named field of parsed bytes.

    ``path`` is the Construct path as a tuple (``("body", "variable_items",
    2, "length")``); ``offset``/``size`` locate its bytes; ``fmt`` is the
    ``struct`` format of an integer field, from its declaration; ``bound``
    is the end of the bounded region that holds the field (for a length: the
    farthest its value can reach without overrunning the parent).
    """
    path: tuple
    offset: int
    size: int
    value: Any
    kind: str
    fmt: str | None
    bound: int

    @property
    def name(self) -> str:
        return str(self.path[-1])

    @property
    def where(self) -> str:
        return " -> ".join(f"[{p}]" if isinstance(p, int) else p for p in self.path) or "PDU"

    @property
    def max_value(self) -> int:
        return (1 << (8 * struct.calcsize(self.fmt))) - 1 if self.fmt else 0

    def governs(self) -> tuple[int, int]:
        """The byte range a length field measures: it starts right after the
        field (true of every length in PS3.8 and PS3.5 7.1.3)."""
        start = self.offset + self.size
        return start, start + self.value


def _kind(name: str, subcon: Construct) -> tuple[str, str | None]:
    """Classify a field by its declaration: (kind, struct format).  A length
    is a field the spec recomputes on build (``Rebuild``), or one named
    ``length`` (command elements); ``max_length`` is a value, not a length."""
    sc = subcon
    if isinstance(sc, Rebuild) or (name == "length" and isinstance(sc, FormatField)):
        return "length", _fmt(sc)
    while True:
        if isinstance(sc, Const):
            return "type", _fmt(sc.subcon)
        if isinstance(sc, AETitleString):
            return "ae_title", None
        if isinstance(sc, Latin1):
            return "text", None
        if isinstance(sc, FormatField):
            fmt = sc.fmtstr
            if name == "pdu_type":
                return "type", fmt
            if name.startswith("reserved") or name == "sub_item_version":
                return "reserved", fmt
            if name == "message_control_header":
                return "flags", fmt
            return "int", fmt
        if isinstance(sc, (Bytes, type(GreedyBytes))):
            return ("reserved" if name.startswith("reserved") else "bytes"), None
        if isinstance(sc, (FixedSized, Adapter)) or type(sc).__name__ == "Default":
            sc = sc.subcon
            continue
        return "region", None


def _fmt(sc):
    while not isinstance(sc, FormatField):
        sc = sc.subcon
    return sc.fmtstr


def field_map(data, spec: Construct = PDU) -> list[Field]:
    """Every named field of ``data`` parsed as ``spec`` (default: one whole
    PDU), in byte order.  Raises :class:`~dicomwire.spec.SpecError` if it does not
    parse.  Zero-size fields (computed flags, empty trailers) are left out."""
    located = parse_located(spec, bytes(data))[1]
    # Named fields only (the runtime also locates list elements); a field's
    # bound is the end of the nearest named field around it.
    named = [f for f in located if isinstance(f.path[-1], str)]
    spans = {f.path: (f.offset, f.offset + f.size) for f in named}
    fields = []
    for f in named:
        if not f.size:
            continue
        path = f.path
        kind, fmt = _kind(path[-1], f.decl)
        bound = len(data)
        for k in range(len(path) - 1, 0, -1):
            if path[:k] in spans:
                bound = spans[path[:k]][1]
                break
        fields.append(Field(path, f.offset, f.size, f.value, kind, fmt, bound))
    return fields


def patch(data: bytes, field: Field, value) -> bytes:
    """``data`` with ``field`` set to ``value`` in place: an integer (packed
    with the field's format, clamped to its width) or bytes of the field's
    size.  No length is touched: that is the point."""
    buf = bytearray(data)
    if field.fmt:
        value = max(0, min(int(value), field.max_value))
        struct.pack_into(field.fmt, buf, field.offset, value)
    else:
        value = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        if len(value) != field.size:
            raise ValueError("patch keeps the size; use resize")
        buf[field.offset:field.offset + field.size] = value
    return bytes(buf)


def resize(data: bytes, fields: list[Field], field: Field, new: bytes,
           fix_lengths: bool = True) -> tuple[bytes, list[str]]:
    """Replace the bytes of ``field`` with ``new`` (any size).  With
    ``fix_lengths`` every length whose region holds the field grows or
    shrinks with it (PDU length, item lengths, UID lengths), so the result
    frames correctly; a length that would leave its width is wrapped and
    reported.  Returns the bytes and notes about wrapped lengths."""
    delta = len(new) - field.size
    out = data[:field.offset] + new + data[field.offset + field.size:]
    notes = []
    if fix_lengths and delta:
        for f in fields:
            if f.kind != "length" or f.offset >= field.offset:
                continue
            lo, hi = f.governs()
            if lo <= field.offset and field.offset + field.size <= hi:
                value = f.value + delta
                if not 0 <= value <= f.max_value:
                    notes.append(f"{f.where} wraps to {value & f.max_value}")
                    value &= f.max_value
                out = out[:f.offset] + struct.pack(f.fmt, value) + out[f.offset + f.size:]
    return out, notes


def room(fields: list[Field], field: Field) -> int:
    """How many bytes ``field`` may grow before an enclosing length leaves
    its width."""
    spare = 1 << 40
    for f in fields:
        if f.kind == "length" and f.offset < field.offset:
            lo, hi = f.governs()
            if lo <= field.offset and field.offset + field.size <= hi:
                spare = min(spare, f.max_value - f.value)
    return spare


def pick(c: Choices, fields: list[Field], *kinds: str,
         where: Callable[[Field], bool] | None = None) -> Field | None:
    """One of ``fields`` of one of ``kinds`` (and satisfying ``where``),
    chosen by ``c``; None when there is none."""
    cands = [f for f in fields if f.kind in kinds and (where is None or where(f))]
    return c.choice(cands) if cands else None
