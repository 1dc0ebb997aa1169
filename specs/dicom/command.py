"""DIMSE command sets: the command elements and their implicit VR LE encoding.

A command set (PS3.7 6.3, 9.3 and 10.3) is a group 0000 data set, always
encoded Implicit VR Little Endian (PS3.7 6.3.1, PS3.5 7.1.3): each element is

    +-------+---------+--------------+-----------------+
    | group | element | value length |     value       |
    | u16le |  u16le  |    u32le     | (length bytes)  |
    +-------+---------+--------------+-----------------+

The VR of each element comes from the command dictionary (PS3.7 E.1-1,
E.2-1 retired elements kept so old peers still decode).
"""

from __future__ import annotations

import struct

from construct import Bytes, GreedyRange, Int16ul, Int32ul, Struct, this

from dicomwire.spec import header_of, struct_of

# PS3.7 Table E.1-1 (and E.2-1 retired): element -> (keyword, VR)
COMMAND_ELEMENTS: dict[int, tuple[str, str]] = {
    0x0000: ("CommandGroupLength", "UL"),
    0x0001: ("CommandLengthToEnd", "UL"),                 # retired
    0x0002: ("AffectedSOPClassUID", "UI"),
    0x0003: ("RequestedSOPClassUID", "UI"),
    0x0010: ("CommandRecognitionCode", "SH"),             # retired
    0x0100: ("CommandField", "US"),
    0x0110: ("MessageID", "US"),
    0x0120: ("MessageIDBeingRespondedTo", "US"),
    0x0200: ("Initiator", "AE"),                          # retired
    0x0300: ("Receiver", "AE"),                           # retired
    0x0400: ("FindLocation", "AE"),                       # retired
    0x0600: ("MoveDestination", "AE"),
    0x0700: ("Priority", "US"),
    0x0800: ("CommandDataSetType", "US"),
    0x0850: ("NumberOfMatches", "US"),                    # retired
    0x0860: ("ResponseSequenceNumber", "US"),             # retired
    0x0900: ("Status", "US"),
    0x0901: ("OffendingElement", "AT"),
    0x0902: ("ErrorComment", "LO"),
    0x0903: ("ErrorID", "US"),
    0x1000: ("AffectedSOPInstanceUID", "UI"),
    0x1001: ("RequestedSOPInstanceUID", "UI"),
    0x1002: ("EventTypeID", "US"),
    0x1005: ("AttributeIdentifierList", "AT"),
    0x1008: ("ActionTypeID", "US"),
    0x1020: ("NumberOfRemainingSuboperations", "US"),
    0x1021: ("NumberOfCompletedSuboperations", "US"),
    0x1022: ("NumberOfFailedSuboperations", "US"),
    0x1023: ("NumberOfWarningSuboperations", "US"),
    0x1030: ("MoveOriginatorApplicationEntityTitle", "AE"),
    0x1031: ("MoveOriginatorMessageID", "US"),
    0x4000: ("DialogReceiver", "LT"),                     # retired
    0x4010: ("TerminalType", "LT"),                       # retired
    0x5010: ("MessageSetID", "SH"),                       # retired
    0x5020: ("EndMessageID", "SH"),                       # retired
    0x5110: ("DisplayFormat", "LT"),                      # retired
    0x5120: ("PagePositionID", "LT"),                     # retired
    0x5130: ("TextFormatID", "CS"),                       # retired
    0x5140: ("NormalReverse", "CS"),                      # retired
    0x5150: ("AddGrayScale", "CS"),                       # retired
    0x5160: ("Borders", "CS"),                            # retired
    0x5170: ("Copies", "IS"),                             # retired
    0x5180: ("CommandMagnificationType", "CS"),           # retired
    0x5190: ("Erase", "CS"),                              # retired
    0x51A0: ("Print", "CS"),                              # retired
    0x51B0: ("Overlays", "US"),                           # retired
}
KEYWORDS = {kw: el for el, (kw, _vr) in COMMAND_ELEMENTS.items()}
NO_DATA_SET = 0x0101       # CommandDataSetType: no data set follows (PS3.7 E.1-1)

# Declarative layout, for building and fuzzing (PS3.5 7.1.3).
CommandElement = Struct(
    "group" / Int16ul,
    "element" / Int16ul,
    "length" / Int32ul,
    "value" / Bytes(this.length),
)
CommandSet = GreedyRange(CommandElement)

# Fast path: the element header of CommandElement as a struct ("<HHL").
_ELEMENT_HEADER = struct_of(header_of(CommandElement, "group", "element", "length"))
_SINGLE = {"US": 2, "UL": 4}                 # value size of the single-valued VRs here


class CommandError(ValueError):
    """A command set that cannot be decoded (offset says where)."""

    def __init__(self, msg, offset):
        super().__init__(f"{msg} at command set offset {offset}")
        self.offset = offset


_U16, _U32 = struct.Struct("<H").unpack, struct.Struct("<I").unpack
# element -> (keyword, VR, the struct of its single US/UL value or None).
_DECODE = {el: (kw, vr, {"US": struct.Struct("<H"), "UL": struct.Struct("<I")}.get(vr))
           for el, (kw, vr) in COMMAND_ELEMENTS.items()}


def _value(vr: str, raw: bytes):
    # Single US / UL values are nearly all of them: one unpack, no format string.
    n = len(raw)
    if vr == "US" and n == 2:
        return _U16(raw)[0]
    if vr == "UL" and n == 4:
        return _U32(raw)[0]
    if vr == "UI":
        return raw.decode("ascii", "replace").rstrip("\0 ")
    if vr == "US":
        n = len(raw) // 2
        vals = struct.unpack(f"<{n}H", raw[:2 * n])
        return vals[0] if n == 1 else list(vals)
    if vr == "UL":
        n = len(raw) // 4
        vals = struct.unpack(f"<{n}I", raw[:4 * n])
        return vals[0] if n == 1 else list(vals)
    if vr == "AT":
        n = len(raw) // 4
        return [(g << 16) | e for g, e in struct.iter_unpack("<HH", raw[:4 * n])]
    s = raw.decode("ascii", "replace")
    return s.rstrip(" \0") if vr in ("AE", "SH", "LO", "CS", "IS") else s.rstrip("\0")


def decode_command(data: bytes) -> tuple[dict, list[tuple[int, str, str, int, int, object]], list[str]]:
    """Decode a command set.

    Returns ``(fields, elements, problems)``: ``fields`` maps keyword ->
    value; ``elements`` lists ``(tag, keyword, vr, offset, length, value)``
    in wire order (tags as 0xGGGGEEEE); ``problems`` describes anything
    malformed (the elements before it are kept).
    """
    fields: dict = {}
    elements = []
    problems = []
    data = bytes(data)                 # slices below are then bytes already
    pos, n = 0, len(data)
    unpack = _ELEMENT_HEADER.unpack_from
    while pos < n:
        if n - pos < 8:
            problems.append(f"{n - pos} trailing bytes, too short for an element header "
                            f"at offset {pos}")
            break
        group, elem, length = unpack(data, pos)
        tag = (group << 16) | elem
        if length > n - pos - 8:
            problems.append(f"element ({group:04X},{elem:04X}) length {length} overruns the "
                            f"command set ({n - pos - 8} bytes left) at offset {pos}")
            break
        known = _DECODE.get(elem) if not group else None
        if known is not None:
            # The usual elements, decoded in place: one UI string or one US/UL.
            kw, vr, single = known
            if vr == "UI":
                value = data[pos + 8:pos + 8 + length].decode("ascii", "replace").rstrip("\0 ")
                fields[kw] = value
                elements.append((tag, kw, vr, pos, 8 + length, value))
                pos += 8 + length
                continue
            if single is not None and length == single.size:
                value = fields[kw] = single.unpack_from(data, pos + 8)[0]
                elements.append((tag, kw, vr, pos, 8 + length, value))
                pos += 8 + length
                continue
        raw = data[pos + 8:pos + 8 + length]
        if group != 0:
            problems.append(f"element ({group:04X},{elem:04X}) outside group 0000 in a "
                            f"command set at offset {pos}")
            kw, vr = f"({group:04X},{elem:04X})", "UN"
            value = raw
        else:
            known = COMMAND_ELEMENTS.get(elem)
            kw, vr = known if known is not None else (f"(0000,{elem:04X})", "UN")
            value = raw if vr == "UN" else _value(vr, raw)
            size = _SINGLE.get(vr)
            if size and length != size and kw != "Overlays":
                # Fix (found by fuzz/fuzz_pdv.py): every US/UL command element
                # holds one value (PS3.7 E.1-1); a list (or nothing) from a wrong
                # length broke whoever reads CommandField, MessageID or Status.
                problems.append(f"element ({group:04X},{elem:04X}) {kw}: value length "
                                f"{length}, not {size} (one {vr}) at offset {pos}")
                if isinstance(value, list):
                    value = value[0] if value else None
            if value is not None:
                fields[kw] = value
        elements.append((tag, kw, vr, pos, 8 + length, value))
        pos += 8 + length
    return fields, elements, problems


def encode_command(fields: dict) -> bytes:
    """Build a command set from keyword -> value (group length computed),
    elements in tag order, values padded to even length (PS3.5 7.1.3)."""
    body = []
    for elem in sorted(KEYWORDS[k] for k in fields if k != "CommandGroupLength"):
        kw, vr = COMMAND_ELEMENTS[elem]
        v = fields[kw]
        if vr == "US":
            raw = b"".join(struct.pack("<H", x) for x in (v if isinstance(v, list) else [v]))
        elif vr == "UL":
            raw = b"".join(struct.pack("<I", x) for x in (v if isinstance(v, list) else [v]))
        elif vr == "AT":
            raw = b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in v)
        else:
            raw = v.encode("ascii") if isinstance(v, str) else bytes(v)
            if len(raw) % 2:
                raw += b"\0" if vr == "UI" else b" "
        body.append(CommandElement.build(dict(group=0, element=elem, length=len(raw), value=raw)))
    data = b"".join(body)
    head = CommandElement.build(dict(group=0, element=0, length=4, value=struct.pack("<I", len(data))))
    return head + data
