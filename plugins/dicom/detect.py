"""Which TCP streams carry DICOM, and where PDUs start.

Ports (Wireshark's "DICOM Ports" preference: a comma separated list with
ranges, default 104 and 11112) and a heuristic that works on any port: an
A-ASSOCIATE-RQ at the start of the client's bytes (PS3.8 9.3.2: type 1,
protocol version 1, plausible length, printable AE titles), looked at across
segments: while fewer than 74 bytes fit one, the answer is "not yet". After a capture
gap, or when the capture started mid-stream, :func:`find_pdu` finds the next
plausible PDU header so framing can resynchronise.
"""

from __future__ import annotations

import struct

_U32 = struct.Struct(">I")
MAX_ASSOC_PDU = 1 << 20          # A-ASSOCIATE-RQ/AC larger than this are not real
MAX_SYNC_PDU = 1 << 28           # a P-DATA length beyond this is not trusted to resync


def parse_ports(spec: str) -> frozenset[int] | list[tuple[int, int]]:
    """'104,3200,50000-51000' -> ranges; raises ValueError on bad input."""
    ranges = []
    for part in str(spec).replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        a = int(lo)
        b = int(hi) if sep else a
        if not (0 < a <= b <= 65535):
            raise ValueError(f"bad port range {part!r}")
        ranges.append((a, b))
    return ranges


def port_matches(ranges, port: int) -> bool:
    for a, b in ranges:
        if a <= port <= b:
            return True
    return False


def _printable_ae(raw: bytes) -> bool:
    # AE titles (PS3.5 6.2, VR AE): 16 bytes of printable ASCII, space padded;
    # real peers also pad with NULs.
    return all(32 <= c < 127 or c == 0 for c in raw) and raw.strip(b" \0") != b""


RQ_FIXED = 74                    # PDU header + fixed fields of an A-ASSOCIATE-RQ


def associate_rq(data) -> bool | None:
    """Does data start with a plausible A-ASSOCIATE-RQ (PS3.8 9.3.2)? True
    or False; None while fewer than :data:`RQ_FIXED` bytes are there and
    those fit one (the header may come in a segment of its own)."""
    n = len(data)
    if n >= 1 and data[0] != 1 or n >= 2 and data[1] != 0:
        return False
    if n >= 6 and not 68 <= _U32.unpack_from(data, 2)[0] <= MAX_ASSOC_PDU:
        return False
    if n >= 7 and data[6] != 0 or n >= 8 and data[7] != 1:
        return False
    if n < RQ_FIXED:
        # AE titles (bytes 10-41) so far: printable ASCII or NUL.
        return None if all(32 <= c < 127 or c == 0 for c in bytes(data[10:42])) else False
    return _printable_ae(bytes(data[10:26])) and _printable_ae(bytes(data[26:42]))


def looks_like_associate_rq(data: bytes) -> bool:
    """True if data starts with a plausible A-ASSOCIATE-RQ (PS3.8 9.3.2)."""
    return associate_rq(data) is True


def plausible_pdu(buf, i: int):
    """Is there a plausible PDU header at buf[i]? True, False, or None when
    more bytes are needed to tell."""
    n = len(buf) - i
    if n < 6:
        return None
    t = buf[i]
    if t < 1 or t > 7 or buf[i + 1] != 0:
        return False
    length = _U32.unpack_from(buf, i + 2)[0]
    if t == 4:
        if not 6 <= length <= MAX_SYNC_PDU:
            return False
        if n < 12:
            return None
        pdv = _U32.unpack_from(buf, i + 6)[0]
        ctx, flags = buf[i + 10], buf[i + 11]
        return 2 <= pdv <= length - 4 and ctx & 1 == 1 and flags <= 3
    if t in (5, 6):
        if length != 4:
            return False
        if n < 10:
            return None
        return buf[i + 6:i + 10] == b"\0\0\0\0"
    if t == 7:
        if length != 4:
            return False
        if n < 10:
            return None
        return buf[i + 6] == 0 and buf[i + 7] == 0 and buf[i + 8] in (0, 1, 2) and buf[i + 9] <= 6
    if t == 3:
        if length != 4:
            return False
        if n < 10:
            return None
        return buf[i + 6] == 0 and buf[i + 7] in (1, 2) and buf[i + 8] in (1, 2, 3)
    # 1, 2: A-ASSOCIATE-RQ/AC
    if not 68 <= length <= MAX_ASSOC_PDU:
        return False
    if n < 42:
        return None
    if bytes(buf[i + 6:i + 8]) != b"\x00\x01":
        return False
    return t == 2 or (_printable_ae(bytes(buf[i + 10:i + 26]))
                      and _printable_ae(bytes(buf[i + 26:i + 42])))


def find_pdu(buf, start: int = 0):
    """Index of the first plausible PDU header at or after start; None if
    none yet (the caller keeps the last bytes and waits for more), with the
    index from which to keep bytes: returns (index or None, keep_from)."""
    i, end = start, len(buf)
    while i < end:
        # Candidates start with a type byte 1..7 followed by a zero byte.
        j = buf.find(b"\x00", i + 1)
        if j < 0:
            return None, max(start, end - 1)
        i = j - 1
        if 1 <= buf[i] <= 7:
            ok = plausible_pdu(buf, i)
            if ok:
                return i, i
            if ok is None:
                return None, i
        i = j
    return None, end
