"""Valid DICOM Upper Layer traffic, generated from the declarations of
:mod:`..pdu` and :mod:`..command`: AE titles, UIDs, A-ASSOCIATE-RQ/AC with
presentation contexts and user information, C-ECHO and C-STORE command
sets, small data sets, P-DATA-TF PDUs cut to a maximum length, whole
associations, and the reading of what an A-ASSOCIATE-AC accepted.

Each generator takes a :class:`~.choices.Choices` for its decisions.  Apart
from the mutators: this is what a well-behaved requestor sends, the
material they break.  The UIDs come from where the pack keeps them
(:mod:`..tables`, and :data:`..uids.UID_NAMES` by name); only the
fuzzer's own implementation UID and version are defined here.
"""

from __future__ import annotations

from .. import pdu as P
from ..command import CommandElement, encode_command
from ..tables import (
    APPLICATION_CONTEXT,
    C_STORE_RQ,
    COMMAND_DATA_SET_TYPE_NONE,
    COMMAND_FIELD_BY_NAME,
    DEFLATED_LE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    IMPLICIT_LE,
    PDV_COMMAND,
    PDV_LAST,
)
from ..uids import UID_NAMES
from .choices import Choices

# ===========================================================================
# Well-known values
# ===========================================================================

# UIDs by their registered names: ..uids is the one source of both.
_UID_BY_NAME = {name: u for u, name in UID_NAMES.items()}

VERIFICATION = _UID_BY_NAME["Verification SOP Class"]
TRANSFER_SYNTAXES = (IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_LE)
#: Storage SOP classes every storage SCP is likely to accept (PS3.4 B.5).
STORAGE_CLASSES = tuple(_UID_BY_NAME[name] for name in (
    "CT Image Storage",
    "MR Image Storage",
    "Secondary Capture Image Storage",
    "Ultrasound Image Storage",
    "Computed Radiography Image Storage",
))
#: A UID derived from a UUID (PS3.5 B.2): needs no registered root.
IMPLEMENTATION_CLASS_UID = "2.25.160209848227391963498233145312305364851"
IMPLEMENTATION_VERSION = "DICOMWIRE_FUZZ"
C_ECHO_RQ = COMMAND_FIELD_BY_NAME["C-ECHO-RQ"]
NO_DATA_SET = COMMAND_DATA_SET_TYPE_NONE

# ===========================================================================
# Valid traffic
# ===========================================================================

#: The characters of generated AE titles.
AE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def ae_title(c: Choices) -> str:
    """A valid AE title (PS3.5 AE: 1-16 characters, no control characters,
    not all spaces)."""
    return "".join(c.choice(AE_CHARS) for _ in range(c.integer(1, 16)))


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


def data_element(group: int, elem: int, value: bytes, pad: bytes = b" ") -> bytes:
    """One Implicit VR Little Endian data element, ``value`` padded to even
    length with ``pad``."""
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
        data_element(0x0008, 0x0016, sop_class.encode(), b"\0"),
        data_element(0x0008, 0x0018, sop_instance.encode(), b"\0"),
        data_element(0x0008, 0x0060, b"OT"),
        data_element(0x0010, 0x0010, b"FUZZ^TEST"),
        data_element(0x0010, 0x0020, b"FUZZ-" + str(c.integer(0, 99999)).encode()),
        data_element(0x0020, 0x000D, uid(c).encode(), b"\0"),
        data_element(0x0020, 0x000E, uid(c).encode(), b"\0"),
        pixel_data(n),                  # last: oversize_pdata relies on it
    ])


#: The tag and length in front of the pixel data (Implicit VR LE).
PIXEL_DATA_HEADER_SIZE = 8


def pixel_data(n: int) -> bytes:
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
