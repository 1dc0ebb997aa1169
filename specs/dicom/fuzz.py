"""Spec-driven fuzzing material: valid DICOM Upper Layer traffic generated from
the Construct declarations of :mod:`.pdu` and :mod:`.command`, and
field-aware mutations of it.

Nothing here touches a network; :mod:`dicomwire.plugins.dicom.fuzzpeer`
runs campaigns against peers with it.  Three layers:

**Choices.**  Every generator and mutator takes a :class:`Choices`, the source
of its decisions: :class:`RandomChoices` (a seeded ``random.Random``:
reproducible campaigns) or :class:`DrawChoices` (a hypothesis ``draw``: the
same code becomes a hypothesis strategy, with shrinking).

**Field maps.**  :func:`field_map` reads the located parse of the spec
runtime (:func:`dicomwire.spec.parse_located`) and returns every named field with its absolute offset,
size, value, kind (``length``, ``type``, ``reserved``, ``flags``,
``ae_title``, ``text``, ``int``, ``bytes``, ``region``) and, for lengths, how
far the bounded region around it reaches.  Mutators pick fields from the map
and :func:`patch` them (a deliberately wrong value) or :func:`resize` them
(new content, every enclosing length recomputed), so a mutation always
knows what it broke and says it in its note, e.g. ``"length of
body -> variable_items -> [2] 77 -> 78 (off by one)"``.

**Mutators.**  :data:`MUTATORS` maps a kind name to a function
``f(choices, pdu_bytes) -> Mutation | None`` (None: the PDU has no field of
that kind).  Kinds that need more than one PDU (fragment order, PDUs beyond
the negotiated maximum, command sets) have their own functions.

hypothesis is optional: the strategies at the end (:func:`ae_titles`,
:func:`uids`, :func:`associate_rqs`, :func:`associations`, :func:`pdata_pdus`,
:func:`valid_pdus`, :func:`mutated_pdus`) import it when called.
"""

from __future__ import annotations

import copy
import random
import struct
from dataclasses import dataclass
from typing import Any, Callable, Sequence

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
from dicomwire.spec import parse_located

from . import pdu as P
from .command import CommandElement, KEYWORDS, encode_command
from .tables import ITEM_TYPES, PDU_TYPES, PDV_COMMAND, PDV_LAST

# ===========================================================================
# Well-known values
# ===========================================================================

VERIFICATION = "1.2.840.10008.1.1"
from dicomwire.specs.dicom.tables import (APPLICATION_CONTEXT, DEFLATED_LE,  # noqa: E402
                                          EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE)
TRANSFER_SYNTAXES = (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE)
#: Storage SOP classes every storage SCP is likely to accept (PS3.4 B.5).
STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",        # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4",        # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.7",        # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.6.1",      # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.1",        # Computed Radiography Image Storage
)
#: A UID derived from a UUID (PS3.5 B.2): needs no registered root.
IMPLEMENTATION_CLASS_UID = "2.25.160209848227391963498233145312305364851"
IMPLEMENTATION_VERSION = "DICOMWIRE_FUZZ"
C_ECHO_RQ, C_STORE_RQ = 0x0030, 0x0001
NO_DATA_SET = 0x0101

# ===========================================================================
# Choices: where decisions come from
# ===========================================================================


class Choices:
    """The decisions of a generator: the interface both sources implement."""

    def integer(self, lo: int, hi: int) -> int:            # lo <= n <= hi
        raise NotImplementedError

    def choice(self, seq: Sequence):
        raise NotImplementedError

    def boolean(self) -> bool:
        raise NotImplementedError

    def binary(self, n: int) -> bytes:
        raise NotImplementedError

    def shuffled(self, seq: Sequence) -> list:
        raise NotImplementedError


class RandomChoices(Choices):
    """Decisions from a seeded ``random.Random`` (campaigns, ``--seed``)."""

    def __init__(self, seed: Any = None):
        self.rng = seed if isinstance(seed, random.Random) else random.Random(seed)

    def integer(self, lo, hi):
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        return self.rng.choice(list(seq))

    def boolean(self):
        return self.rng.random() < 0.5

    def binary(self, n):
        return self.rng.randbytes(n)

    def shuffled(self, seq):
        out = list(seq)
        self.rng.shuffle(out)
        return out


class DrawChoices(Choices):
    """Decisions drawn from hypothesis strategies (``draw`` of an
    ``@st.composite``), so generated values shrink."""

    def __init__(self, draw):
        self.draw = draw
        self.st = _hypothesis()

    def integer(self, lo, hi):
        return self.draw(self.st.integers(lo, hi))

    def choice(self, seq):
        return self.draw(self.st.sampled_from(list(seq)))

    def boolean(self):
        return self.draw(self.st.booleans())

    def binary(self, n):
        return self.draw(self.st.binary(min_size=n, max_size=n))

    def shuffled(self, seq):
        return list(self.draw(self.st.permutations(list(seq))))


def _hypothesis():
    try:
        from hypothesis import strategies as st
    except ImportError:
        raise ImportError("the hypothesis strategies of dicomwire need hypothesis "
                          "(pip install hypothesis)") from None
    return st


# ===========================================================================
# Field maps
# ===========================================================================


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
        if isinstance(sc, P.AETitleString):
            return "ae_title", None
        if isinstance(sc, P._Latin1):
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


def field_map(data, spec: Construct = P.PDU) -> list[Field]:
    """Every named field of ``data`` parsed as ``spec`` (default: one whole
    PDU), in byte order.  Raises :class:`~.pdu.SpecError` if it does not
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


# ===========================================================================
# Valid traffic
# ===========================================================================

_AE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def ae_title(c: Choices) -> str:
    """A valid AE title (PS3.5 AE: 1-16 characters, no control characters,
    not all spaces)."""
    return "".join(c.choice(_AE_CHARS) for _ in range(c.integer(1, 16)))


def uid(c: Choices) -> str:
    """A valid UID under the UUID-derived root 2.25 (PS3.5 9.1, B.2)."""
    return f"2.25.{c.integer(1, (1 << 128) - 1)}"


def presentation_contexts(c: Choices, storage: int | None = None) -> list[tuple]:
    """``(context id, abstract syntax, [transfer syntaxes])``: Verification as
    context 1, then ``storage`` storage classes (random count if None), each
    offering Implicit VR Little Endian among others."""
    n = c.integer(0, 3) if storage is None else storage
    out = [(1, VERIFICATION, [IMPLICIT_LE] + ([EXPLICIT_LE] if c.boolean() else []))]
    for k in range(n):
        extra = [ts for ts in TRANSFER_SYNTAXES[1:] if c.boolean()]
        out.append((3 + 2 * k, c.choice(STORAGE_CLASSES), c.shuffled([IMPLICIT_LE, *extra])))
    return out


def user_information(c: Choices, max_length: int | None = None, ac: bool = False) -> list[dict]:
    """User information sub-items: maximum length (random if None), the
    implementation class UID, and optionally a version name, an
    asynchronous operations window, a role selection and (RQ) a user
    identity."""
    if max_length is None:
        max_length = c.choice((0, 4096, 16384, 32768, 65536, c.integer(512, 1 << 20)))
    subs = [P.item(0x51, max_length=max_length), P.item(0x52, IMPLEMENTATION_CLASS_UID)]
    if c.boolean():
        subs.append(P.item(0x53, max_operations_invoked=1, max_operations_performed=1))
    if c.boolean():
        subs.append(P.item(0x54, sop_class_uid=c.choice(STORAGE_CLASSES), scu_role=1,
                           scp_role=c.integer(0, 1)))
    if c.boolean():
        subs.append(P.item(0x55, IMPLEMENTATION_VERSION))
    if not ac and c.boolean():
        subs.append(P.item(0x58, user_identity_type=1, positive_response_requested=0,
                           primary_field=ae_title(c).encode()))
    return subs


def associate_rq_fields(c: Choices, called: str | None = None, calling: str | None = None,
                        contexts: list[tuple] | None = None,
                        max_length: int | None = None) -> dict:
    """The body fields of a valid A-ASSOCIATE-RQ (``build_pdu("A-ASSOCIATE-RQ",
    **fields)``)."""
    contexts = presentation_contexts(c) if contexts is None else contexts
    return dict(
        called_ae_title=ae_title(c) if called is None else called,
        calling_ae_title=ae_title(c) if calling is None else calling,
        variable_items=[
            P.item(0x10, APPLICATION_CONTEXT),
            *[P.item(0x20, context_id=cid, sub_items=[P.item(0x30, sop),
                                                      *[P.item(0x40, ts) for ts in tss]])
              for cid, sop, tss in contexts],
            P.item(0x50, sub_items=user_information(c, max_length)),
        ])


def associate_rq(c: Choices, **kw) -> bytes:
    """A valid A-ASSOCIATE-RQ (see :func:`associate_rq_fields`)."""
    return P.build_pdu("A-ASSOCIATE-RQ", **associate_rq_fields(c, **kw))


def associate_ac(c: Choices, rq: bytes | None = None) -> bytes:
    """A valid A-ASSOCIATE-AC answering ``rq`` (a random valid RQ if None):
    every context accepted with its first transfer syntax or rejected."""
    req = P.parse_pdu(rq if rq is not None else associate_rq(c)).body
    items = [P.item(0x10, APPLICATION_CONTEXT)]
    for it in P.find_items(req.variable_items, 0x20):
        tss = [s.body for s in it.body.sub_items if s.item_type == 0x40]
        ok = c.integer(0, 3) > 0
        items.append(P.item(0x21, context_id=it.body.context_id, result=0 if ok else 3,
                            sub_items=[P.item(0x40, tss[0] if tss else IMPLICIT_LE)]))
    items.append(P.item(0x50, sub_items=user_information(c, ac=True)))
    return P.build_pdu("A-ASSOCIATE-AC", called_ae_title=req.called_ae_title,
                       calling_ae_title=req.calling_ae_title, variable_items=items)


def echo_rq(message_id: int = 1) -> bytes:
    """A C-ECHO-RQ command set (PS3.7 9.3.5)."""
    return encode_command(dict(CommandField=C_ECHO_RQ, MessageID=message_id,
                               AffectedSOPClassUID=VERIFICATION,
                               CommandDataSetType=NO_DATA_SET))


def store_rq(message_id: int, sop_class: str, sop_instance: str) -> bytes:
    """A C-STORE-RQ command set (PS3.7 9.3.1), a data set follows."""
    return encode_command(dict(CommandField=C_STORE_RQ, MessageID=message_id, Priority=0,
                               AffectedSOPClassUID=sop_class,
                               AffectedSOPInstanceUID=sop_instance,
                               CommandDataSetType=0x0000))


def _element(group: int, elem: int, value: bytes, pad: bytes = b" ") -> bytes:
    # Implicit VR Little Endian elements share the command element layout
    # (PS3.5 7.1.3); values are padded to even length.
    if len(value) % 2:
        value += pad
    return P.build(CommandElement, dict(group=group, element=elem, length=len(value),
                                        value=value))


def dataset(c: Choices, sop_class: str, sop_instance: str, pixels: int | None = None) -> bytes:
    """A small Implicit VR Little Endian data set: SOP class and instance,
    patient, study, series, modality, and ``pixels`` bytes of pixel data."""
    n = c.integer(0, 2048) if pixels is None else pixels
    n += n % 2
    return b"".join([
        _element(0x0008, 0x0016, sop_class.encode(), b"\0"),
        _element(0x0008, 0x0018, sop_instance.encode(), b"\0"),
        _element(0x0008, 0x0060, b"OT"),
        _element(0x0010, 0x0010, b"FUZZ^TEST"),
        _element(0x0010, 0x0020, b"FUZZ-" + str(c.integer(0, 99999)).encode()),
        _element(0x0020, 0x000D, uid(c).encode(), b"\0"),
        _element(0x0020, 0x000E, uid(c).encode(), b"\0"),
        _pixel_data(n),                 # last: oversize_pdata relies on it
    ])


_PIXELS_HEADER = 8


def _pixel_data(n: int) -> bytes:
    """(7FE0,0010) Pixel Data of ``n`` zero bytes, Implicit VR LE."""
    return P.build(CommandElement, dict(group=0x7FE0, element=0x0010, length=n, value=bytes(n)))


def fragment_sizes(total: int, max_pdu: int) -> list[int]:
    """Fragment sizes that fit P-DATA-TF PDUs of at most ``max_pdu`` bytes
    of PDU length with one PDV each (0: no maximum; 16 kB fragments)."""
    room_ = (max_pdu or 16384 + 6) - 6            # PDV item header: 4 + 2
    room_ = max(room_, 1)
    sizes = [room_] * (total // room_)
    if total % room_ or not sizes:
        sizes.append(total % room_)
    return sizes


def pdvs(context_id: int, data: bytes, command: bool, max_pdu: int) -> list[tuple]:
    """``data`` as PDVs ``(context id, message control header, fragment)``
    with the last-fragment bit on the final one (PS3.8 E.2)."""
    out, pos = [], 0
    sizes = fragment_sizes(len(data), max_pdu)
    for i, n in enumerate(sizes):
        mch = (PDV_COMMAND if command else 0) | (PDV_LAST if i == len(sizes) - 1 else 0)
        out.append((context_id, mch, data[pos:pos + n]))
        pos += n
    return out


def pdata(*pdv_list: tuple) -> bytes:
    """A P-DATA-TF PDU of ``(context id, message control header, fragment)``
    PDVs."""
    return P.build_pdu("P-DATA-TF", pdvs=[dict(context_id=cid, message_control_header=mch,
                                                fragment=frag) for cid, mch, frag in pdv_list])


def message(context_id: int, command: bytes, data: bytes | None = None,
            max_pdu: int = 16384) -> list[bytes]:
    """A DIMSE message as P-DATA-TF PDUs, one PDV each, within ``max_pdu``."""
    out = [pdata(v) for v in pdvs(context_id, command, True, max_pdu)]
    if data is not None:
        out += [pdata(v) for v in pdvs(context_id, data, False, max_pdu)]
    return out


def release_rq() -> bytes:
    return P.build_pdu("A-RELEASE-RQ")


def abort(source: int = 0, reason: int = 0) -> bytes:
    return P.build_pdu("A-ABORT", source=source, reason=reason)


def valid_pdu(c: Choices) -> bytes:
    """Any valid PDU."""
    kind = c.integer(0, 6)
    if kind == 0:
        return associate_rq(c)
    if kind == 1:
        return associate_ac(c)
    if kind == 2:
        return P.build_pdu("A-ASSOCIATE-RJ", result=c.integer(1, 2), source=1,
                           reason=c.choice((1, 2, 3, 7)))
    if kind == 3:
        cid = 2 * c.integer(0, 127) + 1
        if c.boolean():
            return pdata((cid, PDV_COMMAND | PDV_LAST, echo_rq(c.integer(0, 0xFFFF))))
        sop = c.choice(STORAGE_CLASSES)
        inst = uid(c)
        return pdata((cid, PDV_COMMAND | PDV_LAST, store_rq(c.integer(0, 0xFFFF), sop, inst)),
                     (cid, PDV_LAST, dataset(c, sop, inst, pixels=c.integer(0, 256))))
    if kind == 4:
        return release_rq()
    if kind == 5:
        return P.build_pdu("A-RELEASE-RP")
    return abort(c.choice((0, 2)), c.choice((0, 1, 2, 4, 5, 6)))


def association(c: Choices) -> list[bytes]:
    """A requestor's side of a whole valid association: A-ASSOCIATE-RQ, a
    C-ECHO, a C-STORE on each storage context proposed (Implicit VR LE
    assumed accepted), A-RELEASE-RQ, each message within the maximum
    length the RQ itself announces."""
    contexts = presentation_contexts(c)
    fields = associate_rq_fields(c, contexts=contexts)
    max_pdu = next(s["body"]["max_length"] for it in fields["variable_items"]
                   if it["item_type"] == 0x50 for s in it["body"]["sub_items"]
                   if s["item_type"] == 0x51)
    out = [P.build_pdu("A-ASSOCIATE-RQ", **fields)]
    out += message(1, echo_rq(1), max_pdu=max_pdu)
    for n, (cid, sop, _tss) in enumerate(contexts[1:], 2):
        inst = uid(c)
        out += message(cid, store_rq(n, sop, inst), dataset(c, sop, inst), max_pdu)
    return out + [release_rq()]


def negotiated(ac: bytes) -> tuple[dict[int, str], int]:
    """From an A-ASSOCIATE-AC: the accepted contexts ``{id: transfer
    syntax}`` and the acceptor's maximum PDU length (0: none given)."""
    body = P.parse_pdu(ac).body
    accepted = {}
    max_length = 0
    for it in body.variable_items:
        if it.item_type == 0x21 and it.body.result == 0:
            ts = [s.body for s in it.body.sub_items if s.item_type == 0x40]
            accepted[it.body.context_id] = P.strip_uid(ts[0]) if ts else ""
        elif it.item_type == 0x50:
            for s in it.body.sub_items:
                if s.item_type == 0x51:
                    max_length = s.body.max_length
    return accepted, max_length


# ===========================================================================
# Mutations
# ===========================================================================


@dataclass
class Mutation:
    """Mutated bytes and what was done to them."""
    kind: str
    data: bytes
    note: str


def _pick(c: Choices, fields, *kinds, where=None):
    cands = [f for f in fields if f.kind in kinds and (where is None or where(f))]
    return c.choice(cands) if cands else None


def length_off_by_one(c: Choices, data: bytes) -> Mutation | None:
    """A length field (PDU, item, sub-item, UID, PDV) one more or one less
    than what follows it."""
    fields = field_map(data)
    f = _pick(c, fields, "length")
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
    f = _pick(c, fields, "length")
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
    f = _pick(c, fields, "length", where=lambda f: f.value > 0)
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
    f = _pick(c, fields, "type", where=lambda f: f.path == ("pdu_type",))
    choices = [t for t in (*_UNKNOWN_PDU_TYPES, c.integer(8, 255), *PDU_TYPES) if t != f.value]
    new = c.choice(choices)
    what = "unknown" if new not in PDU_TYPES else f"confused with {PDU_TYPES[new]}"
    return Mutation("unknown_pdu_type", patch(data, f, new),
                    f"PDU type 0x{f.value:02X} -> 0x{new:02X} ({what})")


def reserved_nonzero(c: Choices, data: bytes) -> Mutation | None:
    """A reserved field (PDU header, item header, body) set to non-zero: a
    receiver shall ignore it (PS3.8 9.3)."""
    fields = field_map(data)
    f = _pick(c, fields, "reserved")
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
    f = _pick(c, fields, "int")
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
    f = _pick(c, fields, "length", "type", "reserved", "flags", "ae_title", "text", "int",
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
    f = _pick(c, fields, "text")
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
    f = _pick(c, fields, "ae_title")
    if f is None:
        return None
    variant = c.choice(("empty", "nul", "control", "high_bytes", "backslash", "full",
                        "huge", "short"))
    if variant == "huge":
        new = bytes(c.choice(_AE_CHARS.encode()) for _ in range(c.choice((17, 64, 1024))))
    elif variant == "short":
        new = b"SHORT"[:c.integer(0, 5)]
    else:
        new = {
            "empty": b" " * 16,
            "nul": b"\0" * 16,
            "control": b"AE\x1b[2J\x07\r\n\t\x7f".ljust(16, b" "),
            "high_bytes": bytes(c.integer(0x80, 0xFF) for _ in range(16)),
            "backslash": b"A\\B".ljust(16, b" "),
            "full": bytes(c.choice(_AE_CHARS.encode()) for _ in range(16)),
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
        f = _pick(c, fields, "type", where=lambda f: f.path != ("pdu_type",))
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
    f = _pick(c, fields, "flags")
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


# --- several PDUs --------------------------------------------------------------


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
    head = dataset(c, sop, inst, pixels=0)[:-_PIXELS_HEADER]
    # PDU length = PDV header (6) + data set; the pixel data fills the rest
    # (even length: one byte more when needed).
    pixels = max(0, length - 6 - len(head) - _PIXELS_HEADER)
    pixels += pixels % 2
    ds = head + _pixel_data(pixels)
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
        f = _pick(c, fields, "length")
        avail = f.bound - (f.offset + f.size)
        new = f.value + c.choice((-1, 1)) if variant == "element_length" else \
            c.choice((avail + 1, f.max_value))
        return patch(command, f, max(new, 0)), f"command element {f.where} {f.value} -> {new}"
    from .command import decode_command
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
        extra = _element(0x0008, 0x0020, b"20260101")
        return command + extra, "element (0008,0020) inside the command set"
    values["AffectedSOPClassUID"] = "1.2." + "9" * 65000
    return encode_command(values), "AffectedSOPClassUID of 65004 bytes"


_COMMAND_SET = P.ToEnd(CommandElement)


# ===========================================================================
# hypothesis strategies (hypothesis imported when called)
# ===========================================================================


def _composite(build):
    st = _hypothesis()

    @st.composite
    def strategy(draw):
        return build(DrawChoices(draw))
    return strategy()


def ae_titles():
    """Strategy: valid AE titles (str)."""
    return _composite(ae_title)


def uids():
    """Strategy: valid UIDs (str)."""
    return _composite(uid)


def associate_rqs():
    """Strategy: valid A-ASSOCIATE-RQ PDUs (bytes)."""
    return _composite(associate_rq)


def pdata_pdus():
    """Strategy: valid P-DATA-TF PDUs (bytes) carrying a C-ECHO-RQ or a
    C-STORE-RQ with its data set."""
    def build(c):
        pdu = valid_pdu(c)
        while pdu[0] != 4:
            pdu = valid_pdu(c)
        return pdu
    return _composite(build)


def associations():
    """Strategy: a requestor's whole valid association, as a list of PDUs
    (see :func:`association`)."""
    return _composite(association)


def valid_pdus():
    """Strategy: any valid PDU (bytes)."""
    return _composite(valid_pdu)


def mutated_pdus(kinds: Sequence[str] | None = None):
    """Strategy: ``(original, Mutation)`` pairs: a valid PDU and one mutation
    of a kind from ``kinds`` (default: every kind of :data:`MUTATORS`)."""
    names = list(kinds) if kinds else sorted(MUTATORS)

    def build(c):
        kind = c.choice(names)
        while True:
            pdu = valid_pdu(c)
            m = MUTATORS[kind](c, pdu)
            if m is not None and m.data != pdu:
                return pdu, m
    return _composite(build)


__all__ = [
    "Choices", "RandomChoices", "DrawChoices",
    "Field", "field_map", "patch", "resize", "room",
    "ae_title", "uid", "presentation_contexts", "user_information",
    "associate_rq_fields", "associate_rq", "associate_ac", "echo_rq", "store_rq",
    "dataset", "pdvs", "pdata", "message", "release_rq", "abort", "valid_pdu", "association",
    "negotiated", "Mutation", "MUTATORS", "mutate", "fragments_out_of_order",
    "oversize_pdata", "command_set",
    "ae_titles", "uids", "associate_rqs", "associations", "pdata_pdus", "valid_pdus",
    "mutated_pdus",
    "VERIFICATION", "APPLICATION_CONTEXT", "IMPLICIT_LE", "EXPLICIT_LE", "STORAGE_CLASSES",
    "IMPLEMENTATION_CLASS_UID",
]
