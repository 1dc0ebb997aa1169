"""Reading and writing whole PDUs with the declarations of :mod:`.pdu`: the
code, kept apart from the grammar it serves.

:func:`parse_pdu` (one whole PDU, checked against its header first, every
failure a :class:`SpecError`), :func:`salvage_associate` (an
A-ASSOCIATE-RQ/AC whose full parse failed, decoded as far as it goes),
:func:`iter_pdvs` (the PDV items of a P-DATA-TF body, walked with the
``PDV_HEADER`` struct fast path derived in :mod:`.pdu`), :func:`build_pdu`
and :func:`item` (values to build from, lengths computed), and small helpers
on parsed values (:func:`strip_ae`, :func:`strip_uid`, :func:`is_command`,
:func:`is_last`, :func:`find_items`).  :mod:`.pdu` re-exports every name, so
``dicomwire.specs.dicom.pdu.parse_pdu`` and the rest keep working.
"""

from __future__ import annotations

from typing import Any, Iterator

from construct import ConstructError, Container

from dicomwire.spec import Located, SpecError, build, parse, parse_located

from .pdu import (
    PDU,
    PDU_HEADER,
    PDU_HEADER_SIZE,
    PDV_HEADER,
    PDV_HEADER_SIZE,
    AssociateBody,
    PDUHeader,
    VariableItem,
)
from .tables import PDU_TYPE_BY_NAME, PDU_TYPES, PDV_COMMAND, PDV_LAST


# ===========================================================================
# Fast path: the PDVs of a P-DATA-TF body
# ===========================================================================


def iter_pdvs(body, base: int = 0) -> Iterator[tuple[int, int, memoryview, int]]:
    """Walk the PDV items of a P-DATA-TF body (the bytes after the 6-byte PDU
    header) with the struct fast path.

    Yields ``(context_id, message_control_header, fragment, offset)`` per PDV,
    where ``fragment`` is a memoryview into ``body`` (no copy; it is only
    valid while ``body`` is unchanged) and ``offset`` is ``base`` plus the
    position of the PDV item (its length field) in ``body``.

    Error behaviour: the well-formed PDVs before a malformed one are yielded
    first; then :class:`SpecError` is raised (``path="pdvs"``, ``offset`` of
    the bad item) when fewer than 6 bytes are left for a PDV header, when a
    PDV length is less than 2, or when a PDV overruns the body.  Nothing else
    is raised; the caller treats the rest of the body as malformed.
    """
    view = memoryview(body)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    end = len(view)
    pos = 0
    unpack = PDV_HEADER.unpack_from
    while pos < end:
        if end - pos < PDV_HEADER_SIZE:
            raise SpecError(
                f"{end - pos} byte(s) left in the P-DATA-TF body, "
                f"less than a PDV item header ({PDV_HEADER_SIZE})",
                path="pdvs", offset=base + pos)
        length, context_id, control = unpack(view, pos)
        if length < 2:
            raise SpecError(f"PDV item length {length} is less than 2",
                            path="pdvs", offset=base + pos)
        stop = pos + 4 + length
        if stop > end:
            raise SpecError(
                f"PDV item length {length} overruns the P-DATA-TF body "
                f"by {stop - end} byte(s)", path="pdvs", offset=base + pos)
        yield context_id, control, view[pos + PDV_HEADER_SIZE:stop], base + pos
        pos = stop


# ===========================================================================
# Whole PDUs, and helpers on parsed values
# ===========================================================================


def parse_pdu(data) -> Container:
    """Parse one whole PDU (header included) from ``data`` (bytes-like).

    ``data`` must be exactly one PDU: the header's length is checked against
    ``len(data)`` before anything else is parsed.  Raises :class:`SpecError`
    (and nothing else) for short data, an unknown PDU type, a length that
    disagrees with the data, or any malformed field.
    """
    data = bytes(data)
    if len(data) < PDU_HEADER_SIZE:
        raise SpecError(f"{len(data)} byte(s): shorter than the PDU header "
                        f"({PDU_HEADER_SIZE})", path="length")
    pdu_type, _, length = PDU_HEADER.unpack_from(data)
    if pdu_type not in PDU_TYPES:
        raise SpecError(f"unknown PDU type 0x{pdu_type:02X}", path="pdu_type")
    available = len(data) - PDU_HEADER_SIZE
    if length > available:
        raise SpecError(f"PDU length {length} but only {available} byte(s) "
                        f"follow the header", path="length")
    if length < available:
        raise SpecError(f"PDU length {length} but {available} byte(s) "
                        f"follow the header", path="length")
    try:
        return PDU.parse(data)
    except ConstructError as err:
        raise SpecError.from_construct(err) from err


def salvage_associate(data, located: list | None = None) -> Container | None:
    """An A-ASSOCIATE-RQ/AC (whole PDU bytes) whose full parse failed (an
    item or sub-item overrunning its parent, say), decoded as far as it
    goes: the header and fixed fields, and every variable item that parses
    on its own; items stop at the first one overrunning the PDU, an item
    malformed inside is skipped.  None if even the fixed part is missing.

    With ``located`` (a list), the :class:`dicomwire.spec.Located` records
    of what was decoded are appended to it, at their offsets in ``data``
    and with the paths the full parse would give them."""
    data = bytes(data)
    if len(data) < 74:
        return None

    def piece(spec, lo, hi, prefix):
        if located is None:
            return parse(spec, data[lo:hi])
        value, where = parse_located(spec, data[lo:hi], base=lo, prefix=prefix)
        located.extend(where)
        return value

    try:
        pdu = piece(PDUHeader, 0, 6, ())
        pdu.body = piece(AssociateBody, 6, 74, ("body",))
    except SpecError:
        return None
    items = pdu.body.variable_items
    pos, end = 74, len(data)
    while end - pos >= 4:
        stop = pos + 4 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if stop > end:
            break
        path = ("body", "variable_items", len(items))
        try:
            items.append(piece(VariableItem, pos, stop, path))
        except SpecError:
            pass                          # this item is malformed inside: skip it
        else:
            if located is not None:
                located.append(Located(path, pos, stop - pos, items[-1], VariableItem))
        pos = stop
    return pdu


def build_pdu(pdu_type: int | str, reserved1: int = 0, **fields: Any) -> bytes:
    """Build a whole PDU from its type (number or name, e.g.
    ``"A-ASSOCIATE-RQ"``) and body fields; lengths are computed.

    >>> build_pdu("A-RELEASE-RQ").hex()
    '05000000000400000000'
    """
    if isinstance(pdu_type, str):
        if pdu_type not in PDU_TYPE_BY_NAME:
            raise SpecError(f"unknown PDU name {pdu_type!r}", path="pdu_type")
        pdu_type = PDU_TYPE_BY_NAME[pdu_type]
    return build(PDU, dict(pdu_type=pdu_type, reserved1=reserved1, body=fields))


def item(item_type: int, body: Any = None, **fields: Any) -> dict:
    """A dict to build an item from: ``item(0x40, "1.2.840.10008.1.2")`` or
    ``item(0x20, context_id=1, sub_items=[...])``.  ``reserved1`` (and
    ``sub_item_version`` for 0x57) go to the item header, other keywords to
    the body."""
    header = {"item_type": item_type}
    for key in ("reserved1", "sub_item_version"):
        if key in fields:
            header[key] = fields.pop(key)
    header["body"] = body if body is not None else fields
    return header


def strip_ae(value: str | bytes) -> str:
    """The significant part of an AE title: leading and trailing spaces are
    not significant (PS3.8 9.3.2); trailing NULs from sloppy peers are
    dropped too."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("latin-1")
    return value.strip(" \x00")


def strip_uid(value: str | bytes) -> str:
    """A UID without its padding: a trailing NUL (PS3.5 9.1, PS3.8 Annex F)
    or, from sloppy peers, spaces."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("latin-1")
    return value.strip(" \x00")


#: Short aliases.
ae_title = strip_ae
uid = strip_uid


def is_command(message_control_header: int) -> bool:
    """PS3.8 E.2 bit 0: the fragment belongs to a command (else a data set)."""
    return bool(message_control_header & PDV_COMMAND)


def is_last(message_control_header: int) -> bool:
    """PS3.8 E.2 bit 1: the fragment is the last of its command / data set."""
    return bool(message_control_header & PDV_LAST)


def find_items(items, item_type: int) -> list:
    """The items of ``item_type`` in a parsed item list (e.g.
    ``find_items(pdu.body.variable_items, 0x20)``)."""
    return [i for i in items if i.item_type == item_type]


__all__ = [
    "iter_pdvs", "parse_pdu", "salvage_associate", "build_pdu", "item",
    "strip_ae", "strip_uid", "ae_title", "uid", "is_command", "is_last", "find_items",
]
