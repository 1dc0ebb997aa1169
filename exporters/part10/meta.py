"""The File Meta Information of an exported Part 10 file (PS3.10 7.1): the
128-byte preamble, 'DICM' and group 0002 in explicit VR little endian, with
Wireshark's implementation UID and our version name.

Apart from the exporter because it is pure byte building from a few UIDs
(no capture state, no files): what makes a written file a Part 10 file.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from dicomwire import __version__

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.427.10"      # Wireshark's, per the DICOM wiki
VERSION_NAME = f"DICOMWIRE_{__version__}"[:16]


def _element(group, elem, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element (PS3.5 7.1.2)."""
    if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def _text(value: str, vr: bytes) -> bytes:
    raw = value.encode("ascii", "replace")
    if len(raw) % 2:
        raw += b"\0" if vr == b"UI" else b" "      # PS3.5 6.2 padding
    return raw


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str | None,
              source_ae: str | None) -> bytes:
    """Preamble, 'DICM' and the File Meta Information group (PS3.10 7.1).
    ``transfer_syntax`` None (not negotiated in the capture, not proven by
    the data): no Transfer Syntax UID element, rather than a false one; such
    files are written marked (``.dcm.unknown-ts``)."""
    head, tail = _meta_parts(sop_class, transfer_syntax, source_ae)
    instance = _element(0x0002, 0x0003, b"UI", _text(sop_instance, b"UI"))
    return (_PREAMBLE + _element(0x0002, 0x0000, b"UL",
                                 struct.pack("<I", len(head) + len(instance) + len(tail)))
            + head + instance + tail)


_PREAMBLE = bytes(128) + b"DICM"


@lru_cache(maxsize=256)
def _meta_parts(sop_class: str, transfer_syntax: str | None, source_ae: str | None):
    """The meta elements before and after the instance UID: the same for
    every object of a class, syntax and sender, so built once (per object
    they cost more than the write)."""
    head = (_element(0x0002, 0x0001, b"OB", b"\x00\x01")
            + _element(0x0002, 0x0002, b"UI", _text(sop_class, b"UI")))
    tail = b"".join(([_element(0x0002, 0x0010, b"UI", _text(transfer_syntax, b"UI"))]
                     if transfer_syntax else []) + [
        _element(0x0002, 0x0012, b"UI", _text(IMPLEMENTATION_UID, b"UI")),
        _element(0x0002, 0x0013, b"SH", _text(VERSION_NAME, b"SH")),
    ] + ([_element(0x0002, 0x0016, b"AE", _text(source_ae[:16], b"AE"))] if source_ae else []))
    return head, tail
