"""Mutations of a whole DIMSE message rather than of one PDU: PDV fragments
in an order PS3.8 forbids, a P-DATA-TF longer than the receiver's
negotiated maximum, and command sets broken field-aware.

Each returns the bytes (PDUs, or a command set) and a note saying what it
broke.  Apart from :mod:`.mutate` because they do not fit its
``f(choices, pdu_bytes)`` shape: they need a presentation context, a
negotiated maximum or a command set, and build several PDUs from the
generators of :mod:`.generate`.
"""

from __future__ import annotations

import struct

from dicomwire.spec import ToEnd

from ..command import KEYWORDS, CommandElement, decode_command, encode_command
from ..tables import PDV_COMMAND, PDV_LAST
from .choices import Choices
from .fieldmap import field_map, patch, pick
from .generate import (
    PIXEL_DATA_HEADER_SIZE,
    STORAGE_CLASSES,
    data_element,
    dataset,
    pdata,
    pixel_data,
    store_rq,
    uid,
)

#: A command set: its elements up to the end (PS3.7 E.1).
_COMMAND_SET = ToEnd(CommandElement)


def fragments_out_of_order(c: Choices, context_id: int, command: bytes,
                           data: bytes | None = None) -> tuple[list[bytes], str]:
    """A message whose PDV fragments arrive in an order PS3.8 9.3.5 / E.2 does
    not allow: the command split in pieces sent last-first or reversed, a
    data set fragment before the command ends, the last fragment twice, a
    fragment missing, or the data set before its command.  Returns the
    P-DATA-TF PDUs and a note."""
    n = c.integer(2, 4)
    step = max(1, -(-len(command) // n))
    cmd = [command[i:i + step] for i in range(0, len(command), step)]
    frags = [(context_id, PDV_COMMAND | (PDV_LAST if i == len(cmd) - 1 else 0), p)
             for i, p in enumerate(cmd)]
    ds = []
    if data is not None:
        half = max(1, len(data) // 2)
        ds = [(context_id, 0, data[:half]), (context_id, PDV_LAST, data[half:])]
    variant = c.choice(("last_first", "reversed", "data_inside_command", "last_twice",
                        "missing", "data_first", "interleaved"))
    if variant == "last_first":
        order = [frags[-1], *frags[:-1], *ds]
    elif variant == "reversed":
        order = [*reversed(frags), *ds]
    elif variant == "data_inside_command":
        filler = ds[:1] or [(context_id, 0, b"\0" * 8)]
        order = [frags[0], *filler, *frags[1:], *ds[1:]]
    elif variant == "last_twice":
        order = [*frags, frags[-1], *ds]
    elif variant == "missing":
        drop = c.integer(0, len(frags) - 1)
        order = [f for i, f in enumerate(frags) if i != drop] + ds
    elif variant == "data_first":
        order = [*(ds or [(context_id, PDV_LAST, b"\0" * 8)]), *frags]
    else:
        # A second copy of the command interleaved fragment by fragment on
        # the same context: PS3.8 9.3.5 lets only other contexts interleave.
        order = [f for pair in zip(frags, frags) for f in pair] + ds
    if c.boolean():
        # Several PDVs per PDU: the disorder also crosses PDU boundaries.
        k = c.integer(1, len(order))
        pdus = [pdata(*order[:k])] + ([pdata(*order[k:])] if order[k:] else [])
    else:
        pdus = [pdata(v) for v in order]
    return pdus, f"{variant.replace('_', ' ')} ({len(frags)} command fragment(s), " \
                 f"{len(ds)} data set fragment(s), {len(pdus)} PDU(s))"


def oversize_pdata(c: Choices, context_id: int, max_pdu: int,
                   message_id: int = 1) -> tuple[list[bytes], str]:
    """A C-STORE whose data set travels in one P-DATA-TF longer than the
    receiver's negotiated maximum (PS3.8 D.1): by one byte, a little, twice
    or sixteen times (``max_pdu`` 0, no maximum: 1 MiB).  Returns the PDUs
    (command, then the oversized data PDU) and a note."""
    base = max_pdu or (1 << 20)
    length = c.choice((base + 1, base + c.integer(2, 1000), 2 * base, min(16 * base, 1 << 22)))
    sop, inst = STORAGE_CLASSES[0], uid(c)
    cmd = store_rq(message_id, sop, inst)
    head = dataset(c, sop, inst, pixels=0)[:-PIXEL_DATA_HEADER_SIZE]
    # PDU length = PDV header (6) + data set; the pixel data fills the rest
    # (even length: one byte more when needed).
    pixels = max(0, length - 6 - len(head) - PIXEL_DATA_HEADER_SIZE)
    pixels += pixels % 2
    ds = head + pixel_data(pixels)
    big = pdata((context_id, PDV_LAST, ds))
    got = len(big) - 6
    limit = f"receiver maximum {max_pdu} (+{got - max_pdu})" if max_pdu else \
        "the receiver set no maximum"
    return [pdata((context_id, PDV_COMMAND | PDV_LAST, cmd)), big], \
        f"P-DATA-TF length {got}, {limit}"


def command_set(c: Choices, command: bytes) -> tuple[bytes, str]:
    """A command set broken field-aware (PS3.7 E.1, PS3.5 7.1.3): an element
    length off by one or overrunning, a wrong group length, an unknown or
    two-valued Command Field, Message ID 0 or 0xFFFF, a required element missing, an
    element outside group 0000, or a 64 kB UID."""
    fields = field_map(command, _COMMAND_SET)
    variant = c.choice(("element_length", "element_overrun", "group_length",
                        "command_field", "multi_valued", "message_id", "missing",
                        "foreign_group", "huge_uid"))
    if variant in ("element_length", "element_overrun"):
        f = pick(c, fields, "length")
        avail = f.bound - (f.offset + f.size)
        new = f.value + c.choice((-1, 1)) if variant == "element_length" else \
            c.choice((avail + 1, f.max_value))
        return patch(command, f, max(new, 0)), f"command element {f.where} {f.value} -> {new}"
    values, _elements, _problems = decode_command(command)
    values.pop("CommandGroupLength", None)
    if variant == "group_length":
        # (0000,0000) comes first: its 4-byte value is the group length.
        val = [f for f in fields if f.path == (0, "value")][0]
        old = struct.unpack("<I", val.value)[0]
        new = (old + c.choice((-1, 1, 100))) & 0xFFFFFFFF
        return patch(command, val, struct.pack("<I", new)), \
            f"CommandGroupLength {old} -> {new}"
    if variant == "command_field":
        values["CommandField"] = c.choice((0x0000, 0x0FFF, 0x7FFF, 0xFFFF, 0x8030))
        return encode_command(values), f"CommandField = 0x{values['CommandField']:04X}"
    if variant == "multi_valued":
        # US with two values where PS3.7 E.1-1 says VM 1.
        values["CommandField"] = [values["CommandField"]] * 2
        return encode_command(values), "CommandField with two values"
    if variant == "message_id":
        values["MessageID"] = c.choice((0, 0xFFFF))
        return encode_command(values), f"MessageID = {values['MessageID']}"
    if variant == "missing":
        key = c.choice(sorted(k for k in values if k in KEYWORDS))
        del values[key]
        return encode_command(values), f"{key} missing"
    if variant == "foreign_group":
        extra = data_element(0x0008, 0x0020, b"20260101")
        return command + extra, "element (0008,0020) inside the command set"
    values["AffectedSOPClassUID"] = "1.2." + "9" * 65000
    return encode_command(values), "AffectedSOPClassUID of 65004 bytes"
