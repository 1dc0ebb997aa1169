"""Data set structure (PS3.5 section 7): element headers and a structural walk.

An element is a tag (group, element), in explicit VR a two-letter VR, a value
length and the value (PS3.5 7.1.1-7.1.3)::

    implicit VR      | group u16 | elem u16 | length u32 |
    explicit, short  | group u16 | elem u16 | VR 2 | length u16 |
    explicit, long   | group u16 | elem u16 | VR 2 | 00 00 | length u32 |

Long VRs are those of PS3.5 Table 7.1-1 (OB, OD, OF, OL, OV, OW, SQ, SV, UC,
UN, UR, UT, UV).  Items and delimiters (FFFE,E000/E00D/E0DD) always use the
implicit header, whatever the transfer syntax (PS3.5 7.5).  A length of
FFFFFFFF is undefined: the value ends at a delimiter (PS3.5 7.5.1-7.5.2), for
sequences, and for encapsulated pixel data (fragments as items, PS3.5 A.4).
UN with undefined length holds an implicit VR LE sequence (PS3.5 6.2.2).

:func:`walk` reads the structure only: headers, never values, so a 2 GB pixel
element costs one header.  It is iterative (no recursion limit on nesting),
bounded by the buffer, and stops with :class:`DataSetError` where the
structure breaks, after yielding every element before the break.
"""

from __future__ import annotations

import bisect
from itertools import accumulate
from typing import Callable, Iterator, NamedTuple

from construct import Bytes, Const, Int16ub, Int16ul, Int32ub, Int32ul, Struct

from dicomwire.spec import struct_of

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC",
                      b"UN", b"UR", b"UT", b"UV"})


def _headers(u16, u32):
    implicit = Struct("group" / u16, "element" / u16, "length" / u32)
    short = Struct("group" / u16, "element" / u16, "vr" / Bytes(2), "length" / u16)
    long = Struct("group" / u16, "element" / u16, "vr" / Bytes(2),
                  "reserved" / Const(b"\x00\x00"), "length" / u32)
    return implicit, short, long


# PS3.5 7.1.2 (explicit) and 7.1.3 (implicit) element headers, both byte orders.
IMPLICIT_LE, EXPLICIT_SHORT_LE, EXPLICIT_LONG_LE = _headers(Int16ul, Int32ul)
IMPLICIT_BE, EXPLICIT_SHORT_BE, EXPLICIT_LONG_BE = _headers(Int16ub, Int32ub)

# Fast paths: little endian? -> (implicit, explicit short, explicit long)
# ``struct`` formats derived from the declarations above ("<HHL", "<HH2sH",
# "<HH2s2xL" ...; the long header's reserved 00 00 is skipped, not checked).
FAST_HEADERS = {
    True: tuple(struct_of(h) for h in (IMPLICIT_LE, EXPLICIT_SHORT_LE, EXPLICIT_LONG_LE)),
    False: tuple(struct_of(h) for h in (IMPLICIT_BE, EXPLICIT_SHORT_BE, EXPLICIT_LONG_BE)),
}


class Element(NamedTuple):
    offset: int          # of the header, in the buffer
    tag: int             # (group << 16) | element
    vr: str | None       # None: implicit VR (or an item / delimiter)
    length: int          # value length; UNDEFINED for undefined
    value_offset: int
    depth: int           # 0: top level; items and their elements go deeper


class DataSetError(ValueError):
    """The structure breaks at ``offset``: ``kind`` is 'truncated' (a header
    or value runs past the end, PS3.5 7.1: Wireshark's "early termination of
    tag"), 'unterminated' (an undefined length never ends), 'nesting' (an
    item or value overruns its parent) or 'depth'."""

    def __init__(self, kind: str, offset: int, text: str, tag: int | None = None):
        super().__init__(f"offset {offset}: {text}")
        self.kind, self.offset, self.tag = kind, offset, tag


def tag_str(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def walk(buf, implicit: bool = False, little: bool = True, *, max_depth: int = 64,
         vr_of: Callable[[int], str | None] | None = None,
         sequences: bool = True) -> Iterator[tuple]:
    """Yield every element header of the data set in ``buf`` (bytes,
    memoryview or mmap), in order, descending into sequences and items, as
    plain tuples in :class:`Element`'s field order (``Element._make`` names
    them; plain tuples keep the walk cheap).  ``sequences=False`` skips
    defined-length sequences whole (undefined ones must still be walked to
    find their end).

    ``vr_of(tag)`` (e.g. a dictionary lookup) tells which implicit-VR
    elements of defined length are sequences to descend into; without it
    only undefined-length ones are.  Raises DataSetError at the first
    structural break; nesting deeper than ``max_depth`` is a break too, so
    hostile input costs at most one pass over the buffer."""
    size = len(buf)
    unpack_impl, unpack_short, unpack_long = (s.unpack_from for s in FAST_HEADERS[little])
    # The level being read: where it ends (None: undefined, ends at a
    # delimiter), the nearest defined end above it (bound), what it holds
    # ('ds' elements, 'sq' items, 'frag' encapsulated fragments) and whether
    # its elements are implicit VR, and its depth.  Parents wait on the stack.
    stack: list[tuple] = []
    cur_end, bound, kind, impl, depth = size, size, "ds", implicit, 0
    pos = 0
    while True:
        if pos == cur_end:
            if not stack:
                return
            cur_end, bound, kind, impl, depth = stack.pop()
            continue
        if pos >= bound:
            raise _unterminated(pos)
        if pos + 8 > bound:
            raise _cut_header(pos, None, bound - pos, bound < size)
        if kind != "ds" or impl:
            g, e, length = unpack_impl(buf, pos)
            tag, vr, vpos = (g << 16) | e, None, pos + 8
        else:
            g, e, vrb, length = unpack_short(buf, pos)
            tag = (g << 16) | e
            if g == 0xFFFE:
                length = unpack_impl(buf, pos)[2]
                vr, vpos = None, pos + 8
            elif vrb in LONG_VRS:
                if pos + 12 > bound:
                    raise _cut_header(pos, tag, bound - pos, bound < size)
                length = unpack_long(buf, pos)[3]
                vr, vpos = vrb.decode("latin-1"), pos + 12
            else:
                vr, vpos = vrb.decode("latin-1"), pos + 8
        if tag == ITEM_END or tag == SEQ_END:
            # A delimiter closes the innermost undefined-length level.
            if cur_end is not None or (kind == "ds") != (tag == ITEM_END):
                raise _misplaced(pos, tag, kind)
            # At the depth of what it closes: an item's, or a sequence's items'.
            yield (pos, tag, None, length, vpos, depth - (tag == ITEM_END))
            cur_end, bound, kind, impl, depth = stack.pop()
            pos = vpos
            continue
        yield (pos, tag, vr, length, vpos, depth)
        if kind != "ds":
            if kind == "frag":                  # a fragment of encapsulated pixel data
                if tag != ITEM or length == UNDEFINED or vpos + length > bound:
                    raise _bad_fragment(pos, tag, length, bound - vpos, bound < size)
                pos = vpos + length
                continue
        elif length != UNDEFINED and not (sequences and (
                vr == "SQ" or vr is None and vr_of is not None and vr_of(tag) == "SQ")):
            if vpos + length > bound:           # a value: skipped
                raise _too_long(pos, tag, length, bound - vpos, bound < size)
            pos = vpos + length
            continue
        cur_end, bound, kind, impl, depth = _enter(stack, (cur_end, bound, kind, impl, depth),
                                                   pos, tag, vr, length, vpos, max_depth, size)
        pos = vpos


def _enter(stack, level, pos, tag, vr, length, vpos, max_depth, size) -> tuple:
    """Open what the element at ``pos`` starts in :func:`walk`'s current
    ``level`` (cur_end, bound, kind, impl, depth): an item (a nested data
    set), a sequence (its items) or encapsulated pixel data (its fragments).
    Checks that the level may hold it, pushes ``level`` on ``stack`` and
    returns the new level.  Apart from the loop: it runs once per item or
    sequence, not per element."""
    _cur_end, bound, kind, impl, depth = level
    if kind != "ds":
        if tag != ITEM:
            raise _misplaced(pos, tag, kind)
        new_kind, new_impl = "ds", impl          # an item: a nested data set
    elif length == UNDEFINED:
        if vr is not None and vr not in ("SQ", "UN", "OB", "OW"):
            raise _misplaced(pos, tag, kind, vr)
        new_kind = "frag" if vr in ("OB", "OW") else "sq"
        new_impl = True if vr == "UN" else impl
    else:
        new_kind, new_impl = "sq", impl
    if depth + 1 > max_depth:
        raise DataSetError("depth", pos, f"nesting deeper than {max_depth} levels", tag)
    stack.append(level)
    if length == UNDEFINED:
        return None, bound, new_kind, new_impl, depth + 1
    if vpos + length > bound:
        raise _too_long(pos, tag, length, bound - vpos, bound < size)
    return vpos + length, vpos + length, new_kind, new_impl, depth + 1


# The walk's breaks, out of its loop: built only when the structure breaks.

def _unterminated(pos) -> DataSetError:
    return DataSetError("unterminated", pos, "undefined length never ends: no "
                        "delimiter before the end of its parent")


def _overrun(at, tag, what, left, nested) -> DataSetError:
    """A header or value past the end: of the buffer ('truncated'), or of
    its parent (``nested``: 'nesting')."""
    if not nested:
        return DataSetError("truncated", at, f"{what}, {left} byte(s) left", tag)
    return DataSetError("nesting", at, f"{what}: overruns its parent", tag)


def _cut_header(pos, tag, left, nested) -> DataSetError:
    what = "element header" if tag is None else f"{tag_str(tag)} header"
    return _overrun(pos, tag, f"{what} cut short", left, nested)


def _too_long(pos, tag, length, left, nested) -> DataSetError:
    return _overrun(pos, tag, f"{tag_str(tag)} declares {length} bytes", left, nested)


def _misplaced(pos, tag, kind, vr=None) -> DataSetError:
    """An element where its level holds none: a delimiter closing no level
    of undefined length (or the wrong kind), something other than an item
    in a sequence or pixel data, an undefined length on a VR that has none."""
    if tag == ITEM_END or tag == SEQ_END:
        return DataSetError("nesting", pos, f"unexpected delimiter {tag_str(tag)}", tag)
    if kind != "ds":
        return DataSetError("nesting", pos, f"{tag_str(tag)} where an item "
                            f"(FFFE,E000) was expected", tag)
    return DataSetError("nesting", pos, f"undefined length on {vr} {tag_str(tag)}", tag)


def _bad_fragment(pos, tag, length, left, nested) -> DataSetError:
    if tag != ITEM:
        return _misplaced(pos, tag, "frag")
    if length == UNDEFINED:
        return DataSetError("nesting", pos, "fragment of undefined length", tag)
    return _overrun(pos, tag, f"fragment of {length} bytes", left, nested)


def scan(buf, implicit: bool = False, little: bool = True, wanted=()) \
        -> tuple[dict[int, bytes], DataSetError | None]:
    """One walk of the top level (and undefined-length sequences, which must
    be walked to find their end): the raw values of the ``wanted`` top-level
    tags, and the first structural break or None.

    Runs once per message, so little-endian data sets of defined lengths
    only (nearly all) take a plain loop; anything else, or any doubt, goes
    to :func:`walk`, which gives the same answer."""
    if little:
        size, pos, found = len(buf), 0, {}
        u_impl, u_short, u_long = (x.unpack_from for x in FAST_HEADERS[True])
        long_vrs = LONG_VRS
        while pos < size:
            if pos + 12 > size:
                break                       # near the end: let walk judge it
            head = buf[pos:pos + 12]        # (slicing works on Chunks too)
            if implicit:
                g, e, length = u_impl(head)
                vpos = pos + 8
            else:
                g, e, vrb, length = u_short(head)
                if vrb in long_vrs:
                    length = u_long(head)[3]
                    vpos = pos + 12
                else:
                    vpos = pos + 8
            end = vpos + length
            if g == 0xFFFE or length == UNDEFINED or end > size:
                break
            tag = (g << 16) | e
            if tag in wanted:
                found[tag] = bytes(buf[vpos:end])
            pos = end
        else:
            return found, None
    if isinstance(buf, Chunks):
        buf = buf.join()                    # the rare case: walk needs one buffer
    return _scan_walk(buf, implicit, little, wanted)


class Chunks:
    """Fragments (bytes, memoryviews) read as one buffer by slicing, without
    joining them: a 20 MB data set in 14,000 TCP payloads is scanned by
    reading its few element headers only."""

    def __init__(self, parts):
        self.parts = parts
        # Where each part starts, at C speed (a 2 GB object has ~1.5M parts).
        ends = list(accumulate(map(len, parts)))
        self.size = ends[-1] if ends else 0
        self.starts = [0, *ends[:-1]] if ends else []

    def __len__(self):
        return self.size

    def __getitem__(self, s: slice) -> bytes:
        start, stop = max(0, s.start or 0), min(self.size, self.size if s.stop is None
                                                  else s.stop)
        if start >= stop:
            return b""
        i = bisect.bisect_right(self.starts, start) - 1
        out, at = [], start
        while at < stop:
            p, base = self.parts[i], self.starts[i]
            piece = p[at - base:stop - base]
            out.append(piece)
            at += len(piece)
            i += 1
        return out[0] if len(out) == 1 and type(out[0]) is bytes else b"".join(out)

    def join(self) -> bytes:
        return b"".join(self.parts)


def _scan_walk(buf, implicit, little, wanted):
    found: dict[int, bytes] = {}
    try:
        for _off, tag, _vr, length, vpos, depth in walk(buf, implicit, little,
                                                        sequences=False):
            if depth == 0 and tag in wanted and length != UNDEFINED:
                found[tag] = bytes(buf[vpos:vpos + length])
    except DataSetError as e:
        return found, e
    return found, None


def check(buf, implicit: bool = False, little: bool = True) -> DataSetError | None:
    """The first structural break of a data set, or None: the top level and
    undefined-length sequences only, which is where a cut shows."""
    return scan(buf, implicit, little)[1]


def text(value: bytes | None) -> str | None:
    """A text value (UI, CS, ...) without its padding (PS3.5 6.2)."""
    if value is None:
        return None
    return value.decode("latin-1").rstrip(" \0").lstrip(" ") or None


# PS3.5 Table 6.2-1: the Value Representations an explicit VR header may name.
VALID_VRS = frozenset(b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS "
                      b"ST SV TM UC UI UL UN UR US UT UV".split())


PIXEL_DATA = 0x7FE00010


def pixel_data_header(buf, implicit: bool = False, little: bool = True):
    """(VR, length) of the top-level Pixel Data (7FE0,0010) header, or None
    when the walk finds none before a later tag, the end or a break (its
    fragments, if encapsulated, are not walked)."""
    try:
        for _pos, tag, vr, length, _vpos, depth in walk(buf, implicit, little,
                                                         sequences=False):
            if depth == 0 and tag >= PIXEL_DATA:
                return (vr, length) if tag == PIXEL_DATA else None
    except DataSetError:
        pass
    return None
