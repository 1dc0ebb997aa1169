"""Transfer syntax inference for a capture that missed the A-ASSOCIATE
exchange: what the bytes of a data set prove (PS3.5 7.1, A.1-A.5), never a
guess. A decision, not grammar, so it lives with the plugins; the element
walk it judges with is the spec's (:func:`dicomwire.specs.dicom.dataset.walk`).
"""

from __future__ import annotations

import zlib
from typing import Callable, NamedTuple

from dicomwire.specs.dicom.dataset import (FAST_HEADERS, ITEM, LONG_VRS, PIXEL_DATA,
                                           UNDEFINED, VALID_VRS, Chunks, DataSetError,
                                           pixel_data_header, tag_str, walk)
from dicomwire.specs.dicom.tables import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE
from dicomwire.specs.dicom.uids import UID_NAMES

# The syntaxes a network data set can be read in without the negotiation
# (PS3.5 A.1, A.2, A.3, A.5); every other one encodes its data set in explicit
# VR little endian, which is what the walk proves.
PLAIN_SYNTAXES = (IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE)


def _name(uid: str) -> str:
    return UID_NAMES.get(uid, uid)


INFER_HEAD = 16 << 10      # data set bytes read to infer from (the whole if shorter)
INFLATE_PROBE = 64 << 10   # at most this much inflated from the head of a deflated one
PROOF_ELEMENTS = 4         # elements that must walk cleanly when the walk stops short
# Groups no data set element may use (PS3.5 7.1: 0001, 0003, 0005, 0007, FFFF) and
# the only ones above 7FFF at the top level (Digital Signatures, Trailing Padding).
_BAD_GROUPS = frozenset({0x0001, 0x0003, 0x0005, 0x0007})
_HIGH_GROUPS = frozenset({0xFFFA, 0xFFFC})


class Inference(NamedTuple):
    """What the bytes of a data set prove about its transfer syntax."""
    syntax: str | None     # the transfer syntax UID proven, None if none is
    fits: tuple            # every syntax whose structure walked cleanly
    why: str               # in words: the evidence, or why nothing is proven
    # The element encoding proven when the syntax is not: explicit VR little
    # endian with encapsulated Pixel Data (some compressed syntax, PS3.5 A.4).
    elements: str | None = None
    tries: int = 1         # data sets tried (a caller retrying counts them here)

    @property
    def proven(self) -> bool:
        return self.syntax is not None

    @property
    def name(self) -> str:
        return _name(self.syntax) if self.syntax else "unknown"


def _evidence(buf, implicit: bool, little: bool, total: int | None) -> tuple[bool, int, str]:
    """Walk ``buf`` (the first bytes of a data set; ``total``: its whole
    length, None if unknown) as one encoding: (the walk proves it, elements
    walked cleanly, where and why it stopped). Proof is the whole data set
    walked exactly to its end, or PROOF_ELEMENTS clean elements before the
    walk stopped: where ``buf`` ends (a value running on into bytes not read,
    within ``total``), or at a later oddity or break (a damaged data set
    keeps its syntax; a wrong syntax never walks that far)."""
    size = len(buf)
    whole = total is not None and size >= total
    levels = {0: "ds"}           # depth -> what it holds: 'ds' elements, 'items'
    last = {0: -1}               # depth -> last tag seen there (ascending, PS3.5 7.1)
    clean = 0

    def odd(text):
        return clean >= PROOF_ELEMENTS, clean, text

    try:
        for pos, tag, vr, length, _vpos, depth in walk(buf, implicit, little,
                                                       sequences=False):
            group = tag >> 16
            if group == 0xFFFE:
                if tag == ITEM:
                    if levels.get(depth) != "items":
                        return odd(f"an item outside a sequence at offset {pos}")
                    levels[depth + 1], last[depth + 1] = "ds", -1
                continue                  # delimiters: walk() checked their place
            if levels.get(depth) != "ds":
                return odd(f"{tag_str(tag)} where an item belongs at offset {pos}")
            if group in _BAD_GROUPS or (group > 0x7FFF and not (depth == 0 and group in
                                                                  _HIGH_GROUPS)):
                return odd(f"implausible group {group:04X} at offset {pos}")
            if vr is not None and vr.encode("latin-1") not in VALID_VRS:
                return odd(f"no VR {vr!r} at offset {pos}")
            if tag <= last.get(depth, -1):
                return odd(f"{tag_str(tag)} out of order at offset {pos}")
            last[depth] = tag
            clean += 1
            if length == UNDEFINED:
                levels[depth + 1] = "items"
    except DataSetError as e:
        if whole or not _at_the_cut(buf, e, implicit, little, total):
            return odd(f"a break: {e}")
        return clean >= PROOF_ELEMENTS, clean, "the end of the bytes read"
    if whole:
        return clean >= 1, clean, "exactly the end of the data set"
    return clean >= PROOF_ELEMENTS, clean, "the end of the bytes read"


def _at_the_cut(buf, e: DataSetError, implicit: bool, little: bool, total) -> bool:
    """Whether the walk stopped only because ``buf`` ends: a header cut short
    at the end, an undefined length still open there, or a value that runs
    on past it but not past the data set's ``total`` length."""
    size = len(buf)
    if e.kind == "unterminated":
        return e.offset >= size
    if e.kind != "truncated":
        return False
    pos, tag = e.offset, e.tag
    u_impl, u_short, u_long = FAST_HEADERS[little]
    if pos + 8 > size:
        return True                       # the header itself runs past the end
    if implicit or (tag is not None and tag >> 16 == 0xFFFE):
        end = pos + 8 + u_impl.unpack_from(buf, pos)[2]
    else:
        _g, _e, vrb, length = u_short.unpack_from(buf, pos)
        if vrb in LONG_VRS:
            if pos + 12 > size:
                return True
            end = pos + 12 + u_long.unpack_from(buf, pos)[3]
        else:
            end = pos + 8 + length
    return total is None or end <= total


def _inflate_head(head: bytes) -> tuple[bytes, bool] | None:
    """Raw inflate (PS3.5 A.5) of the first bytes of a data set, bounded:
    (bytes, whether the deflate stream ended in them), or None if they are
    no deflate stream."""
    d = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = d.decompress(head, INFLATE_PROBE)
    except zlib.error:
        return None
    return out, d.eof


def infer_transfer_syntax(head, total: int | None = None, prefer=(),
                           read_all: Callable[[], object] | None = None) -> Inference:
    """The transfer syntax the first bytes of a data set prove (PS3.5 7.1,
    A.1-A.5), for a presentation context whose negotiation was not captured.

    ``head``: the data set's first bytes (INFER_HEAD is plenty; the whole of a
    shorter one); ``total``: the data set's whole length if known. Each of
    explicit VR little endian, implicit VR little endian and explicit VR big
    endian is tried as an element header walk (:func:`walk`): tags
    ascending within each level, groups plausible, explicit VRs from PS3.5
    Table 6.2-1, lengths that stay inside the bytes, or reach exactly the end
    of the data set, or run on past the bytes read; deflated is tried by a
    bounded raw inflate whose output must walk as explicit VR little endian.
    A syntax is proven when exactly one walks (the whole data set, or
    PROOF_ELEMENTS elements); when several do (a tiny data set can), the one
    in ``prefer`` (the syntaxes the association otherwise uses) if exactly
    one is, else none: ambiguity is said, not guessed.

    Explicit VR little endian is also how every compressed syntax encodes
    its data set (PS3.5 A.4): with encapsulated Pixel Data it is one of
    those, which the bytes do not name (unproven, unless ``prefer`` holds
    exactly one). ``read_all()`` gives the whole data set as one buffer
    (bytes or mmap) when the head ends before Pixel Data, to look."""
    head = bytes(head)
    if not head:
        return Inference(None, (), "no data set bytes to infer from")
    fits, notes = [], []
    for uid, implicit, little in ((EXPLICIT_LE, False, True), (IMPLICIT_LE, True, True),
                                  (EXPLICIT_BE, False, False)):
        ok, n, stop = _evidence(head, implicit, little, total)
        if ok:
            fits.append((uid, f"{n} element(s) walked cleanly up to {stop}"))
        else:
            notes.append(f"not {_name(uid)}: {n} element(s), then {stop}")
    inflated = _inflate_head(head)
    if inflated is None:
        notes.append(f"not {_name(DEFLATED_LE)}: no deflate stream")
    else:
        out, ended = inflated
        whole = ended and total is not None and len(head) >= total
        ok, n, stop = _evidence(out, False, True, len(out) if whole else None)
        if ok:
            fits.append((DEFLATED_LE, f"inflated to {_bytes(len(out))}, {n} element(s) "
                                          f"walked cleanly up to {stop}"))
        else:
            notes.append(f"not {_name(DEFLATED_LE)}: inflated to "
                         f"{_bytes(len(out))}, {n} element(s), then {stop}")
    read = f"the first {_bytes(len(head))}" if total is None or len(head) < total \
        else f"all {_bytes(len(head))}"
    uids = tuple(uid for uid, _ in fits)
    prefer = set(prefer)
    if len(fits) > 1:
        preferred = [f for f in fits if f[0] in prefer]
        if len(preferred) != 1:
            return Inference(None, uids, f"ambiguous: {read} fit "
                             + " and ".join(_name(u) for u in uids))
        uid, how = preferred[0]
        how = (f"{how} ({read}); it also fits "
               + " and ".join(_name(u) for u in uids if u != uid)
               + ", but the association uses this one elsewhere")
    elif fits:
        uid, how = fits[0]
        how = f"{how} ({read})"
    else:
        return Inference(None, (), f"{read} fit no transfer syntax: " + "; ".join(notes))
    if uid == EXPLICIT_LE:
        pixels = pixel_data_header(head)
        if pixels is None and read_all is not None and (total is None or len(head) < total):
            pixels = _pixel_header(read_all())
        if pixels is not None and pixels[1] == UNDEFINED:
            encapsulated = sorted(u for u in prefer if u not in PLAIN_SYNTAXES)
            if len(encapsulated) == 1:
                return Inference(encapsulated[0], uids, f"{how}; encapsulated Pixel Data, "
                                 f"and the only compressed syntax offered is this one")
            return Inference(None, uids, f"{how}, but with encapsulated Pixel Data: a "
                             f"compressed transfer syntax (PS3.5 A.4), which one the data "
                             f"set does not say", elements=EXPLICIT_LE)
    return Inference(uid, uids, how)



def _bytes(n: int) -> str:
    return f"{n} byte" + ("" if n == 1 else "s")


def infer_context(a, msg, whole: bool):
    """A context whose acceptance was not captured: prove its transfer
    syntax from the first bytes of a data set (``whole``: all its bytes were
    captured, to its last fragment) (:func:`infer_transfer_syntax`:
    element headers that walk cleanly in exactly one encoding, or a raw
    inflate that does). Once per context when proven (no cost after that,
    nor on negotiated contexts); while unproven, each later data set on the
    context retries, up to INFER_TRIES non-empty ones. Unproven leaves the
    transfer syntax None (nothing decodes the data set in a guessed one) and
    ``pc.inference`` saying why."""
    pc = a.context(msg.context_id)
    if pc.transfer_syntax is not None:
        return
    tried = pc.inference
    if tried is not None and tried.tries >= INFER_TRIES:
        return
    total = msg.dataset_len
    if not total:
        return                       # an empty data set proves nothing, in any syntax
    try:
        head = msg.dataset_head(INFER_HEAD)
    except RuntimeError:
        return
    # Its whole length counts only if every byte of it was captured (else
    # values may run on past what was seen: the head is judged as a prefix).
    # Tie-break for a tiny data set that fits two syntaxes: what this
    # context was offered, and what the association's other contexts use.
    prefer = set(pc.transfer_syntaxes)
    prefer.update(c.transfer_syntax for c in a.contexts.values() if c.transfer_syntax)
    opened = []

    def read_all():
        # The whole data set, for a look at its Pixel Data header (explicit VR
        # little endian, or compressed?): fragments in memory read in place
        # (never joined), a spooled one mapped.
        parts = msg.memory_parts()
        if parts is not None and len(parts) > 1:
            return Chunks(parts)
        opened.append(msg.dataset_buffer())
        return opened[-1]

    try:
        got = infer_transfer_syntax(head, total if whole else None, prefer, read_all)
    finally:
        for buf in opened:
            if hasattr(buf, "close"):
                buf.close()
    if tried is not None:
        got = got._replace(tries=tried.tries + 1)
    pc.inference = got
    if got.proven:
        pc.transfer_syntax = got.syntax
        pc.inferred = True


INFER_TRIES = 32                     # data sets tried on a context that proves nothing


def _pixel_header(buf):
    """(VR, length) of the top-level Pixel Data header of an explicit VR
    little endian data set: element headers hopped by slicing (bytes, mmap
    or Chunks: fragments are never joined), walked in full only when an
    undefined length (a sequence) stands in the way."""
    size, pos = len(buf), 0
    u_short, u_long = FAST_HEADERS[True][1].unpack, FAST_HEADERS[True][2].unpack
    while pos + 12 <= size:
        head = bytes(buf[pos:pos + 12])
        g, e, vrb, length = u_short(head[:8])
        tag = (g << 16) | e
        if tag >= PIXEL_DATA:
            if tag != PIXEL_DATA:
                return None
            return vrb.decode("latin-1"), (u_long(head)[3] if vrb in LONG_VRS else length)
        if vrb in LONG_VRS:
            length, pos = u_long(head)[3], pos + 12
        else:
            pos += 8
        if length == UNDEFINED or g == 0xFFFE:
            whole = buf.join() if isinstance(buf, Chunks) else buf
            return pixel_data_header(whole)
        pos += length
    return None
