"""Field-aware mutators of single PDUs, and :data:`MUTATORS`, their table.

Each mutator is ``f(choices, pdu_bytes) -> Mutation | None`` (None: the PDU
has no field of that kind): it reads the PDU's :func:`~.fieldmap.field_map`,
picks a field of its kind, breaks it (a wrong length, an unknown type, a
non-zero reserved field, a boundary integer, a cut, a malformed UID or AE
title, an unknown or misplaced item, a forbidden item structure, bad PDV
flags) and says what it broke in the note, e.g. ``"length of body ->
variable_items -> [2] 77 -> 78 (off by one)"``.  :func:`mutate` applies one
by name.  Mutations that need more than one PDU, or a command set, are in
:mod:`.mutate_message`.
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass
from typing import Callable

from .. import pdu as P
from ..tables import (APPLICATION_CONTEXT, IMPLICIT_LE, ITEM_TYPES, PDU_TYPES, PDV_COMMAND,
                      PDV_LAST)
from .choices import Choices
from .fieldmap import field_map, patch, pick, resize, room
from .generate import AE_CHARS, STORAGE_CLASSES, uid


@dataclass
class Mutation:
    """Mutated bytes and what was done to them."""
    kind: str
    data: bytes
    note: str


def length_off_by_one(c: Choices, data: bytes) -> Mutation | None:
    """A length field (PDU, item, sub-item, UID, PDV) one more or one less
    than what follows it."""
    fields = field_map(data)
    f = pick(c, fields, "length")
    if f is None:
        return None
    new = f.value + c.choice((-1, 1))
    if not 0 <= new <= f.max_value:
        new = f.value - (new - f.value)
    return Mutation("length_off_by_one", patch(data, f, new),
                    f"{f.where} {f.value} -> {new} (off by one)")


def length_overrun(c: Choices, data: bytes) -> Mutation | None:
    """A length that runs past the end of its parent (or the PDU): by a few
    bytes, or the largest value its field holds."""
    fields = field_map(data)
    f = pick(c, fields, "length")
    if f is None:
        return None
    avail = f.bound - (f.offset + f.size)
    new = c.choice((avail + 1, avail + c.integer(2, 300), f.max_value))
    new = min(new, f.max_value)
    if new <= f.value:
        new = f.max_value
    return Mutation("length_overrun", patch(data, f, new),
                    f"{f.where} {f.value} -> {new} ({avail} byte(s) available: overrun)")


def length_underrun(c: Choices, data: bytes) -> Mutation | None:
    """A length shorter than what its fields need: 0, 1, half, or 2 less."""
    fields = field_map(data)
    f = pick(c, fields, "length", where=lambda f: f.value > 0)
    if f is None:
        return None
    new = c.choice(sorted({0, 1, f.value // 2, max(f.value - 2, 0)} - {f.value}))
    return Mutation("length_underrun", patch(data, f, new),
                    f"{f.where} {f.value} -> {new} (underrun)")


_UNKNOWN_PDU_TYPES = (0x00, 0x08, 0x09, 0x0F, 0x10, 0x41, 0x80, 0xFF)


def unknown_pdu_type(c: Choices, data: bytes) -> Mutation | None:
    """The PDU type byte set to a type PS3.8 does not define, or to another
    PDU's type (type confusion)."""
    fields = field_map(data)
    f = pick(c, fields, "type", where=lambda f: f.path == ("pdu_type",))
    choices = [t for t in (*_UNKNOWN_PDU_TYPES, c.integer(8, 255), *PDU_TYPES) if t != f.value]
    new = c.choice(choices)
    what = "unknown" if new not in PDU_TYPES else f"confused with {PDU_TYPES[new]}"
    return Mutation("unknown_pdu_type", patch(data, f, new),
                    f"PDU type 0x{f.value:02X} -> 0x{new:02X} ({what})")


def reserved_nonzero(c: Choices, data: bytes) -> Mutation | None:
    """A reserved field (PDU header, item header, body) set to non-zero: a
    receiver shall ignore it (PS3.8 9.3)."""
    fields = field_map(data)
    f = pick(c, fields, "reserved")
    if f is None:
        return None
    if f.fmt:
        new = c.choice((1, f.max_value, c.integer(1, f.max_value)))
        return Mutation("reserved_nonzero", patch(data, f, new),
                        f"{f.where} 0 -> 0x{new:X}")
    raw = bytes(b | 1 for b in c.binary(f.size))
    return Mutation("reserved_nonzero", patch(data, f, raw),
                    f"{f.where}: {f.size} non-zero byte(s)")


def int_boundary(c: Choices, data: bytes) -> Mutation | None:
    """An integer field (context id, result, source, reason, protocol
    version, maximum length, roles, user identity type ...) set to a
    boundary value: 0, 1, the top of its width, or one bit flipped."""
    fields = field_map(data)
    f = pick(c, fields, "int")
    if f is None:
        return None
    top = f.max_value
    cands = [v for v in (0, 1, 2, top, top - 1, (top + 1) // 2,
                         f.value ^ (1 << c.integer(0, 8 * struct.calcsize(f.fmt) - 1)))
             if v != f.value]
    new = c.choice(cands)
    return Mutation("int_boundary", patch(data, f, new), f"{f.where} {f.value} -> {new}")


def truncated(c: Choices, data: bytes) -> Mutation | None:
    """The PDU cut inside one of its fields, with the PDU length saying so
    (the framing holds, the body ends early)."""
    fields = field_map(data)
    f = pick(c, fields, "length", "type", "reserved", "flags", "ae_title", "text", "int",
              "bytes", where=lambda f: f.offset >= 6 and f.size > 1)
    if f is None:
        return None
    cut = f.offset + c.integer(1, f.size - 1)
    # Only the PDU length follows the cut: the item that was cut keeps the
    # length it announced, so it now runs past the end of the body.
    head = [g for g in fields if g.path == ("length",)][0]
    out = patch(data[:cut], head, cut - 6)
    return Mutation("truncated", out, f"cut at byte {cut}, inside {f.where} "
                                      f"({len(data) - cut} byte(s) dropped, PDU length fixed)")


_TEXT_VARIANTS = ("empty", "nul", "huge", "over64", "letters", "double_dot", "leading_zero",
                  "trailing_dot", "spaces", "high_bytes", "unknown")


def uid_value(c: Choices, data: bytes) -> Mutation | None:
    """A UID or name (application context, abstract / transfer syntax,
    implementation class UID, SOP class in role and extended negotiation
    items, version name) empty, NUL, longer than 64, huge (up to what its
    lengths can hold), or malformed; every enclosing length is recomputed."""
    fields = field_map(data)
    f = pick(c, fields, "text")
    if f is None:
        return None
    variant = c.choice(_TEXT_VARIANTS)
    if variant == "empty":
        new = b""
    elif variant == "nul":
        new = b"\0"
    elif variant in ("huge", "over64"):
        limit = room(fields, f) + f.size
        n = (c.choice((1024, 8192, 32768, 65000)) if variant == "huge" else c.integer(65, 200))
        n = max(1, min(n, limit))
        new = (b"1.2." + b"9" * n)[:n]
    elif variant == "letters":
        new = b"1.2.ABC.x"
    elif variant == "double_dot":
        new = b"1.2..840.10008"
    elif variant == "leading_zero":
        new = b"1.02.840.010008.1"
    elif variant == "trailing_dot":
        new = f.value.encode("latin-1").rstrip(b"\0") + b"."
    elif variant == "spaces":
        new = b"  " + f.value.encode("latin-1") + b"   "
    elif variant == "high_bytes":
        new = bytes(c.integer(0x80, 0xFF) for _ in range(c.integer(1, 32)))
    else:
        new = uid(c).encode()          # well formed, but nobody knows it
    if len(new) - f.size > room(fields, f):
        new = new[:f.size + room(fields, f)]
    out, notes = resize(data, fields, f, new)
    shown = new[:24].decode("latin-1") + ("..." if len(new) > 24 else "")
    return Mutation("uid_value", out, f"{f.where} = {shown!r} ({variant}, {len(new)} bytes"
                                      + "".join(f"; {n}" for n in notes) + ")")


def ae_title_value(c: Choices, data: bytes) -> Mutation | None:
    """An AE title (called or calling) empty (all spaces), NUL, with control
    or non-ASCII characters, a backslash, or "huge": a field of 17 to 1024
    bytes where 16 belong, or a short one (the PDU length follows)."""
    fields = field_map(data)
    f = pick(c, fields, "ae_title")
    if f is None:
        return None
    variant = c.choice(("empty", "nul", "control", "high_bytes", "backslash", "full",
                        "huge", "short"))
    if variant == "huge":
        new = bytes(c.choice(AE_CHARS.encode()) for _ in range(c.choice((17, 64, 1024))))
    elif variant == "short":
        new = b"SHORT"[:c.integer(0, 5)]
    else:
        new = {
            "empty": b" " * 16,
            "nul": b"\0" * 16,
            "control": b"AE\x1b[2J\x07\r\n\t\x7f".ljust(16, b" "),
            "high_bytes": bytes(c.integer(0x80, 0xFF) for _ in range(16)),
            "backslash": b"A\\B".ljust(16, b" "),
            "full": bytes(c.choice(AE_CHARS.encode()) for _ in range(16)),
        }[variant]
    out, _ = resize(data, fields, f, new)
    return Mutation("ae_title_value", out, f"{f.where} = {new[:20]!r}"
                                           f"{'...' if len(new) > 20 else ''} "
                                           f"({variant}, {len(new)} bytes)")


def _unknown_type(c: Choices) -> int:
    return c.choice([t for t in (0x00, 0x11, 0x22, 0x31, 0x41, 0x5A, 0x60, 0x99, 0xFF,
                                 c.integer(0, 255)) if t not in ITEM_TYPES])


def unknown_item(c: Choices, data: bytes) -> Mutation | None:
    """An item of a type PS3.8 does not define inserted among the variable
    items or sub-items, an item of a known type at the wrong level, or an
    existing item retyped to an unknown type."""
    pdu = P.parse_pdu(data)
    if pdu.pdu_type not in (1, 2):
        return None
    lists = [("variable_items", pdu.body.variable_items, P.VARIABLE_ITEMS)]
    for i, it in enumerate(pdu.body.variable_items):
        if it.item_type in (0x20, 0x21, 0x50):
            table = P.USER_SUB_ITEMS if it.item_type == 0x50 else P.PRESENTATION_SUB_ITEMS
            lists.append((f"variable_items -> [{i}] -> sub_items", it.body.sub_items, table))
    action = c.choice(("insert", "insert", "wrong_level", "retype"))
    if action == "retype":
        fields = field_map(data)
        f = pick(c, fields, "type", where=lambda f: f.path != ("pdu_type",))
        new = _unknown_type(c)
        return Mutation("unknown_item", patch(data, f, new),
                        f"{f.where} 0x{f.value:02X} -> 0x{new:02X} (retyped to unknown)")
    where, items, table = c.choice(lists)
    pos = c.integer(0, len(items))
    if action == "wrong_level":
        # Kept raw by the receiver's parser of that level (its table lacks it).
        t = c.choice(sorted(set(ITEM_TYPES) - set(table)))
        body = c.binary(c.choice((0, 4, 17)))
        what = f"known type 0x{t:02X} ({ITEM_TYPES[t]}) at the wrong level"
    else:
        t = _unknown_type(c)
        body = c.binary(c.choice((0, 1, 8, 64, 1000)))
        what = f"unknown type 0x{t:02X}"
    items.insert(pos, P.item(t, body))
    out = P.build(P.PDU, pdu)
    return Mutation("unknown_item", out,
                    f"body -> {where}: item {what}, {len(body)} byte(s), inserted at [{pos}]")


def item_structure(c: Choices, data: bytes) -> Mutation | None:
    """A-ASSOCIATE-RQ items in a shape PS3.8 forbids: no presentation
    context, no application context, two of them, no user information, no
    maximum length, duplicate or even context ids, contexts without an
    abstract or transfer syntax, 128+ contexts, 200 transfer syntaxes,
    items in reverse order, AC items in an RQ."""
    pdu = P.parse_pdu(data)
    if pdu.pdu_type != 1:
        return None
    items = pdu.body.variable_items
    ctxs = [it for it in items if it.item_type == 0x20]
    variant = c.choice(("no_context", "no_app_context", "two_app_contexts", "no_user_info",
                        "no_max_length", "duplicate_ids", "even_ids", "no_abstract",
                        "no_transfer", "two_abstract", "many_contexts", "many_transfers",
                        "reversed", "ac_items"))
    if variant == "no_context":
        items[:] = [it for it in items if it.item_type != 0x20]
    elif variant == "no_app_context":
        items[:] = [it for it in items if it.item_type != 0x10]
    elif variant == "two_app_contexts":
        items.insert(1, P.item(0x10, c.choice((APPLICATION_CONTEXT, "1.2.3.4"))))
    elif variant == "no_user_info":
        items[:] = [it for it in items if it.item_type != 0x50]
    elif variant == "no_max_length":
        for it in items:
            if it.item_type == 0x50:
                it.body.sub_items[:] = [s for s in it.body.sub_items if s.item_type != 0x51]
    elif variant == "duplicate_ids":
        for it in ctxs:
            it.body.context_id = ctxs[0].body.context_id
        items.insert(1, copy.deepcopy(ctxs[0]))
    elif variant == "even_ids":
        for it in ctxs:
            it.body.context_id = c.choice((0, 2, 254, it.body.context_id + 1))
    elif variant in ("no_abstract", "no_transfer", "two_abstract"):
        it = c.choice(ctxs)
        if variant == "two_abstract":
            it.body.sub_items.insert(1, P.item(0x30, c.choice(STORAGE_CLASSES)))
        else:
            drop = 0x30 if variant == "no_abstract" else 0x40
            it.body.sub_items[:] = [s for s in it.body.sub_items if s.item_type != drop]
    elif variant == "many_contexts":
        n = c.choice((128, 129, 200, 255))
        extra = [P.item(0x20, context_id=(2 * k + 1) & 0xFF, sub_items=[
            P.item(0x30, STORAGE_CLASSES[k % len(STORAGE_CLASSES)]), P.item(0x40, IMPLICIT_LE)])
            for k in range(len(ctxs), n)]
        items[len(items) - 1:len(items) - 1] = extra
    elif variant == "many_transfers":
        it = c.choice(ctxs)
        it.body.sub_items.extend(P.item(0x40, f"1.2.840.10008.1.2.4.{k}") for k in range(200))
    elif variant == "reversed":
        items.reverse()
    else:
        for it in ctxs:
            ts = [s for s in it.body.sub_items if s.item_type == 0x40][:1]
            it.update(P.item(0x21, context_id=it.body.context_id, result=0, sub_items=ts))
    return Mutation("item_structure", P.build(P.PDU, pdu), variant.replace("_", " "))


_BAD_FLAGS = (0x00, 0x01, 0x02, 0x04, 0x07, 0x08, 0x10, 0x40, 0x80, 0xFC, 0xFF)


def pdv_flags(c: Choices, data: bytes) -> Mutation | None:
    """A PDV's message control header (PS3.8 E.2) with reserved bits set, or
    its command / last-fragment bits flipped."""
    fields = field_map(data)
    f = pick(c, fields, "flags")
    if f is None:
        return None
    new = c.choice([v for v in (*_BAD_FLAGS, f.value ^ PDV_COMMAND, f.value ^ PDV_LAST)
                    if v != f.value])
    return Mutation("pdv_flags", patch(data, f, new),
                    f"{f.where} 0x{f.value:02X} -> 0x{new:02X}")


#: Mutators of single PDUs: kind -> f(choices, pdu bytes) -> Mutation | None.
MUTATORS: dict[str, Callable[[Choices, bytes], Mutation | None]] = {
    "length_off_by_one": length_off_by_one,
    "length_overrun": length_overrun,
    "length_underrun": length_underrun,
    "unknown_pdu_type": unknown_pdu_type,
    "reserved_nonzero": reserved_nonzero,
    "int_boundary": int_boundary,
    "truncated": truncated,
    "uid_value": uid_value,
    "ae_title_value": ae_title_value,
    "unknown_item": unknown_item,
    "item_structure": item_structure,
    "pdv_flags": pdv_flags,
}


def mutate(c: Choices, data: bytes, kind: str | None = None) -> Mutation:
    """Apply mutator ``kind`` (random if None) to the PDU ``data``; a kind
    that finds nothing to change in this PDU falls back to another."""
    kinds = [kind] if kind else []
    kinds += c.shuffled(sorted(MUTATORS))
    for k in kinds:
        m = MUTATORS[k](c, data)
        if m is not None and m.data != data:
            return m
    raise ValueError("no mutation applies")
