"""Text for people, the decoded data set of a message: ``show -V``'s tree.

A pydicom Dataset as indented lines (tag, VR, name, value; sequences nested
or flat), with UID names, Failure Reasons and encapsulated Pixel Data
described rather than dumped. Apart from ``render.py`` (PDU summaries,
trees, JSON) because it reads decoded data sets through pydicom, once per
message and only during ``dicomwire_message``, never per PDU.
"""

from __future__ import annotations

from dicomwire.plugins.dicom.render import size, uid_name
from dicomwire.specs.dicom import tables


def _value_text(elem, limit: int = 80) -> str:
    vr = elem.VR
    if elem.tag == 0x7FE00010 and elem.is_undefined_length:
        return _encapsulated_text(elem.value)
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or isinstance(elem.value, bytes):
        n = len(elem.value or b"")
        return f"<{n} bytes>"
    v = elem.value
    if elem.tag == 0x00081197 and isinstance(v, int):       # Failure Reason, PS3.3 C.14.1.1
        return f"{v} (0x{v:04X} {tables.failure_reason(v)})"
    if vr == "UI" and v:
        name = uid_name(str(v))
        return f"{v} ({name})" if name else str(v)
    s = repr(v) if isinstance(v, str) else str(v)
    return s if len(s) <= limit else s[:limit] + "..."


def _encapsulated_text(value) -> str:
    """Encapsulated Pixel Data (PS3.5 A.4): items, the first of which is the
    Basic Offset Table (empty, or one offset per frame), then the fragments."""
    value = bytes(value or b"")
    if len(value) < 8 or value[:4] != b"\xfe\xff\x00\xe0":
        return "encapsulated, unreadable fragments (no Basic Offset Table item first)"
    bot = int.from_bytes(value[4:8], "little")
    if 8 + bot > len(value):
        return f"encapsulated, unreadable fragments (a Basic Offset Table of {bot} bytes " \
               f"overruns the value)"
    table = f"Basic Offset Table ({bot} bytes)" if bot else "Basic Offset Table (empty)"
    try:
        from pydicom.encaps import generate_fragments
        frags = [len(f) for f in generate_fragments(value[8 + bot:])]
    except Exception as e:          # malformed encapsulation: say so, go on
        return f"encapsulated, {table}, unreadable fragments ({e})"
    shown = ", ".join(str(n) for n in frags[:8]) + (", ..." if len(frags) > 8 else "")
    many = "fragment" if len(frags) == 1 else "fragments"
    return f"encapsulated, {table}, {len(frags)} {many}" + (f" ({shown} bytes)" if frags else "")


def dataset_lines(ds, indent: int = 0, subtrees: bool = True, detail: bool = False,
                  out: list | None = None) -> list:
    """A pydicom Dataset as indented lines: tag, VR, name, value. Sequences
    and items nest (``subtrees``) or stay flat with a path prefix."""
    out = [] if out is None else out
    pad = "    " * indent if subtrees else ""
    for elem in ds:
        try:
            name = elem.name
        except Exception:
            name = "?"
        head = f"{pad}({elem.tag.group:04X},{elem.tag.element:04X}) {elem.VR} {name}"
        if detail:
            head += f" [length {getattr(elem, 'length', '?')}]"
        if elem.VR == "SQ":
            out.append(f"{head}: {len(elem.value)} item(s)")
            for i, item in enumerate(elem.value):
                if subtrees:
                    out.append(f"{pad}    Item {i + 1}")
                dataset_lines(item, indent + 2, subtrees, detail, out)
            if subtrees:
                out.append(f"{pad}    Sequence Delimitation")
        else:
            out.append(f"{head}: {_value_text(elem)}")
    return out


def dataset_tree(msg, subtrees: bool = True, detail: bool = False) -> str:
    """The decoded data set of a message (only during ``dicomwire_message``)."""
    try:
        ds = msg.dataset()
        lines = dataset_lines(ds, 0, subtrees, detail)
    except Exception as e:
        return f"[data set could not be decoded: {type(e).__name__}: {e}]"
    ts = msg.transfer_syntax
    if ts is None:
        ts = ("a compressed transfer syntax the capture does not name (elements: explicit "
              "VR little endian)" if msg.encoding is not None else "transfer syntax unknown")
    head = f"Data Set ({size(msg.dataset_len)}, {uid_name(ts) or ts})"
    return "\n".join([head] + ["    " + ln for ln in lines])
