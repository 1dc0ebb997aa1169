"""DICOM Upper Layer PDUs, items and PDVs (PS3.8 9.3, Annex D, Annex E;
PS3.7 Annex D.3.3) as Construct declarations.

One declaration per PDU and per item; each parses AND builds.  Lengths are
parsed as named fields (``length``, ``sop_class_uid_length`` ...) and are
always recomputed on build, so values can be built without giving lengths
(fuzzers that want a wrong length patch the built bytes).

Lossless by design: every reserved field is a named field (``reserved1``,
``reserved2`` ...) that is parsed and kept and defaults to 0 on build; AE
titles and UIDs keep their padding; bytes that a fixed-layout item or PDU
declares but does not use are kept in a ``trailing`` field; items of unknown
type are kept raw.  So ``build(parse(data)) == data`` for anything that
parses.

Bounded by design: every PDU, item and length-prefixed field body is parsed
from a substream of exactly its declared length (``FixedSized``), so nothing
can read past its declared length; a length that overruns its parent is a
Construct error, turned into :class:`SpecError` by :func:`parse_pdu`.

Field names never shadow ``dict`` methods (Containers are dicts, so a
field called ``items`` would be hidden behind ``dict.items``): item lists are
``variable_items`` and ``sub_items``.

Strings (AE titles, UIDs, names) are Python ``str`` decoded as latin-1: one
character per byte, so any byte string parses and the round trip is exact,
padding included.  :func:`strip_ae` and :func:`strip_uid` give the
significant value.

Fast paths (DESIGN.md "Specs and speed"): :data:`PDU_HEADER` and
:data:`PDV_HEADER` are ``struct.Struct`` formats derived from the Construct
headers below, and :func:`iter_pdvs` walks a P-DATA-TF body with them.

This module is the grammar; the code that reads and writes with it
(:func:`parse_pdu`, :func:`salvage_associate`, :func:`iter_pdvs`,
:func:`build_pdu`, :func:`item` and the helpers on parsed values) is in
:mod:`.pdu_codec`, and every one of its names is importable from here too.

Every PDU starts with the same 6-byte header (PS3.8 9.3.1)::

     0        1        2                                   6
    +--------+--------+--------+--------+--------+--------+----------
    |PDU-type|reserved|          PDU-length (u32 BE)      | body ...
    +--------+--------+--------+--------+--------+--------+----------
                        number of bytes after this field

and every item / sub-item starts with a 4-byte header (PS3.8 9.3.2.x)::

     0        1        2                 4
    +--------+--------+--------+--------+----------
    |Itemtype|reserved| Item-length u16 | value ...
    +--------+--------+--------+--------+----------
"""

from __future__ import annotations

from construct import (
    Bytes,
    Computed,
    Const,
    Construct,
    Default,
    GreedyBytes,
    Int8ub,
    Int16ub,
    Int32ub,
    Rebuild,
    StringError,
    Struct,
    Switch,
    this,
)

# SpecError, parse, build, parse_located and Located are also importable from
# here (plugins read them through this module).
from dicomwire.spec import (
    ByType,
    Fail,
    Latin1,
    Require,
    SpecError,
    Text,
    Located,
    ToEnd,
    build,
    built_size,
    doc,
    parse,
    header_of,
    parse_located,
    sized,
    struct_of,
)

from .tables import (
    ABORT_REASONS,
    ABORT_SOURCES,
    ITEM_TYPES,
    PDU_TYPES,
    PDV_COMMAND,
    PDV_LAST,
    PRESENTATION_CONTEXT_RESULTS,
    REJECT_REASONS,
    REJECT_RESULTS,
    REJECT_SOURCES,
    SCP_ROLES,
    SCU_ROLES,
    USER_IDENTITY_RESPONSE_REQUESTED,
    USER_IDENTITY_TYPES,
)

# ===========================================================================
# Building blocks (the generic ones are the spec runtime's, dicomwire.spec)
# ===========================================================================

# The runtime's names as this module always spelled them.
_Latin1, _ByType, _Fail, _Require = Latin1, ByType, Fail, Require
_built_size, _sized = built_size, sized


class AETitleString(Latin1):
    """The string of a 16-byte AE title (PS3.8 9.3.2, PS3.5 AE VR).  Parses to the exact
    16-character string, padding kept; builds from up to 16 characters,
    padding short values with spaces (20H) as PS3.8 asks."""

    def _encode(self, obj, context, path):
        raw = super()._encode(obj, context, path)
        if len(raw) > 16:
            raise StringError(f"AE title longer than 16 bytes: {raw!r}", path=path)
        return raw.ljust(16, b" ")


#: 16-byte AE title field.
AETitle = AETitleString(Bytes(16))


#: Kept bytes after the last declared field of a fixed-layout body (an item
#: or PDU whose length says more than its fields use); empty when well formed.
_TRAILING = "trailing" / Default(GreedyBytes, b"")


def _item(item_type: int, body: Construct, ref: str,
          second: str = "reserved1") -> Struct:
    """An item: type, reserved (or ``second``), length u16, then ``body``
    parsed from exactly ``length`` bytes (PS3.8 9.3.2 item header); ``ref``:
    the section that defines the item."""
    length, value = _sized("length", Int16ub, "body", body)
    return Struct(
        doc("item_type" / Const(item_type, Int8ub), ref, enum=ITEM_TYPES),
        second / Default(Int8ub, 0),
        doc(length, "PS3.8 9.3.2", text="bytes after this field"),
        doc(value, ref),
    )


def _uid_field(name: str, ref: str) -> tuple[Construct, Construct]:
    """``<name>_length`` u16 then ``<name>`` of that many bytes (defined in
    ``ref``)."""
    return tuple(doc(f, ref) for f in _sized(f"{name}_length", Int16ub, name, Text))


# ===========================================================================
# Items and sub-items
# ===========================================================================

# ---- PS3.8 9.3.2.2.1 Abstract Syntax Sub-Item (0x30) ----------------------
#   0 type=30H | 1 reserved | 2-3 length | 4.. Abstract-syntax-name (UID)
AbstractSyntaxItem = _item(0x30, Text, "PS3.8 9.3.2.2.1")

# ---- PS3.8 9.3.2.2.2 / 9.3.3.2.1 Transfer Syntax Sub-Item (0x40) ----------
#   0 type=40H | 1 reserved | 2-3 length | 4.. Transfer-syntax-name (UID)
TransferSyntaxItem = _item(0x40, Text, "PS3.8 9.3.2.2.2")

# ---- PS3.8 9.3.2.1 / 9.3.3.1 Application Context Item (0x10) --------------
#   0 type=10H | 1 reserved | 2-3 length | 4.. Application-context-name (UID)
ApplicationContextItem = _item(0x10, Text, "PS3.8 9.3.2.1")

# ---- PS3.8 D.1 Maximum Length Sub-Item (0x51) -----------------------------
#   0 type=51H | 1 reserved | 2-3 length=4 | 4-7 Maximum-length-received u32
#   (0 = no maximum)
MaximumLengthItem = _item(0x51, Struct(
    doc("max_length" / Int32ub, "PS3.8 D.1",
        text="maximum P-DATA-TF PDU length received (0: no maximum)"),
    _TRAILING,
), "PS3.8 D.1")

# ---- PS3.7 D.3.3.2 Implementation Class UID Sub-Item (0x52) ---------------
#   0 type=52H | 1 reserved | 2-3 length | 4.. Implementation-class-uid
ImplementationClassUIDItem = _item(0x52, Text, "PS3.7 D.3.3.2")

# ---- PS3.7 D.3.3.3 Asynchronous Operations Window Sub-Item (0x53) ---------
#   0 type=53H | 1 reserved | 2-3 length=4 | 4-5 Max-number-operations-invoked
#   | 6-7 Max-number-operations-performed  (0 = unlimited)
AsynchronousOperationsWindowItem = _item(0x53, Struct(
    doc("max_operations_invoked" / Int16ub, "PS3.7 D.3.3.3", text="0: unlimited"),
    doc("max_operations_performed" / Int16ub, "PS3.7 D.3.3.3", text="0: unlimited"),
    _TRAILING,
), "PS3.7 D.3.3.3")

# ---- PS3.7 D.3.3.4 SCP/SCU Role Selection Sub-Item (0x54) -----------------
#   0 type=54H | 1 reserved | 2-3 length | 4-5 UID-length | 6.. SOP-class-uid
#   | SCU-role u8 | SCP-role u8   (0 = non-support, 1 = support)
RoleSelectionItem = _item(0x54, Struct(
    *_uid_field("sop_class_uid", "PS3.7 D.3.3.4"),
    doc("scu_role" / Int8ub, "PS3.7 D.3.3.4", enum=SCU_ROLES),
    doc("scp_role" / Int8ub, "PS3.7 D.3.3.4", enum=SCP_ROLES),
    _TRAILING,
), "PS3.7 D.3.3.4")

# ---- PS3.7 D.3.3.2 Implementation Version Name Sub-Item (0x55) ------------
#   0 type=55H | 1 reserved | 2-3 length | 4.. Implementation-version-name
ImplementationVersionNameItem = _item(0x55, Text, "PS3.7 D.3.3.2")

# ---- PS3.7 D.3.3.5 SOP Class Extended Negotiation Sub-Item (0x56) ---------
#   0 type=56H | 1 reserved | 2-3 length | 4-5 SOP-class-uid-length
#   | 6.. SOP-class-uid | .. Service-class-application-information (bytes)
SOPClassExtendedNegotiationItem = _item(0x56, Struct(
    *_uid_field("sop_class_uid", "PS3.7 D.3.3.5"),
    doc("service_class_application_information" / GreedyBytes, "PS3.7 D.3.3.5",
        text="defined per service class in PS3.4"),
), "PS3.7 D.3.3.5")

# ---- PS3.7 D.3.3.6 SOP Class Common Extended Negotiation Sub-Item (0x57) --
#   0 type=57H | 1 Sub-item-version (was reserved; 0) | 2-3 length
#   | 4-5 SOP-class-uid-length | SOP-class-uid
#   | Service-class-uid-length u16 | Service-class-uid
#   | Related-general-sop-class-identification-length u16
#   | Related-general-sop-class-identification: n x (uid-length u16, uid)
RelatedGeneralSOPClass = Struct(*_uid_field("uid", "PS3.7 D.3.3.6"))
SOPClassCommonExtendedNegotiationItem = _item(0x57, Struct(
    *_uid_field("sop_class_uid", "PS3.7 D.3.3.6"),
    *_uid_field("service_class_uid", "PS3.7 D.3.3.6"),
    *_sized("related_general_sop_class_identification_length", Int16ub,
            "related_general_sop_classes", ToEnd(RelatedGeneralSOPClass)),
    _TRAILING,
), "PS3.7 D.3.3.6", second="sub_item_version")

# ---- PS3.7 D.3.3.7.1 User Identity Sub-Item, RQ (0x58) --------------------
#   0 type=58H | 1 reserved | 2-3 length | 4 User-Identity-Type (1-5)
#   | 5 Positive-response-requested | 6-7 Primary-field-length | Primary-field
#   | Secondary-field-length u16 | Secondary-field (only for type 2)
UserIdentityRQItem = _item(0x58, Struct(
    doc("user_identity_type" / Int8ub, "PS3.7 D.3.3.7.1", enum=USER_IDENTITY_TYPES),
    doc("positive_response_requested" / Default(Int8ub, 0), "PS3.7 D.3.3.7.1",
        enum=USER_IDENTITY_RESPONSE_REQUESTED),
    *_sized("primary_field_length", Int16ub, "primary_field", GreedyBytes),
    *_sized("secondary_field_length", Int16ub, "secondary_field",
            Default(GreedyBytes, b"")),
    _TRAILING,
), "PS3.7 D.3.3.7.1")

# ---- PS3.7 D.3.3.7.2 User Identity Sub-Item, AC (0x59) --------------------
#   0 type=59H | 1 reserved | 2-3 length | 4-5 Server-response-length
#   | Server-response
UserIdentityACItem = _item(0x59, Struct(
    *_sized("server_response_length", Int16ub, "server_response",
            Default(GreedyBytes, b"")),
    _TRAILING,
), "PS3.7 D.3.3.7.2")

#: An item of a type this pack does not know, or of a known type found at a
#: level where PS3.8 does not place it: kept raw (type, reserved, length,
#: body bytes), so the round trip stays exact.
UnknownItem = Struct(
    "item_type" / Int8ub,
    "reserved1" / Default(Int8ub, 0),
    *_sized("length", Int16ub, "body", GreedyBytes),
)

# Where each item may appear (PS3.8 9.3.2 / 9.3.3): one dispatch table per
# level.  An item found at the wrong level parses as UnknownItem (kept raw,
# left for the association checks to flag), which also bounds nesting to
# three levels whatever the input: a hostile 0x50 inside a 0x50 inside ...
# cannot recurse.
#: Sub-items of a presentation context (0x20 / 0x21).
PRESENTATION_SUB_ITEMS: dict[int, Construct] = {
    0x30: AbstractSyntaxItem,
    0x40: TransferSyntaxItem,
}
#: Sub-items of the user information item (0x50).
USER_SUB_ITEMS: dict[int, Construct] = {
    0x51: MaximumLengthItem,
    0x52: ImplementationClassUIDItem,
    0x53: AsynchronousOperationsWindowItem,
    0x54: RoleSelectionItem,
    0x55: ImplementationVersionNameItem,
    0x56: SOPClassExtendedNegotiationItem,
    0x57: SOPClassCommonExtendedNegotiationItem,
    0x58: UserIdentityRQItem,
    0x59: UserIdentityACItem,
}
#: Variable items of A-ASSOCIATE-RQ/AC (filled below).
VARIABLE_ITEMS: dict[int, Construct] = {}

PresentationSubItem = _ByType(PRESENTATION_SUB_ITEMS, UnknownItem)
UserSubItem = _ByType(USER_SUB_ITEMS, UnknownItem)
VariableItem = _ByType(VARIABLE_ITEMS, UnknownItem)

# ---- PS3.8 9.3.2.2 Presentation Context Item, RQ (0x20) -------------------
#   0 type=20H | 1 reserved | 2-3 length | 4 Presentation-context-ID
#   | 5 reserved | 6 reserved | 7 reserved | 8.. one Abstract Syntax sub-item
#   and one or more Transfer Syntax sub-items
PresentationContextRQItem = _item(0x20, Struct(
    doc("context_id" / Int8ub, "PS3.8 9.3.2.2", text="odd, 1-255"),
    "reserved2" / Default(Int8ub, 0),
    "reserved3" / Default(Int8ub, 0),
    "reserved4" / Default(Int8ub, 0),
    doc("sub_items" / ToEnd(PresentationSubItem), "PS3.8 9.3.2.2",
        text="one abstract syntax (30H), then transfer syntaxes (40H)"),
), "PS3.8 9.3.2.2")

# ---- PS3.8 9.3.3.2 Presentation Context Item, AC (0x21) -------------------
#   0 type=21H | 1 reserved | 2-3 length | 4 Presentation-context-ID
#   | 5 reserved | 6 Result/Reason | 7 reserved | 8.. one Transfer Syntax
#   sub-item (not significant unless the result is acceptance)
PresentationContextACItem = _item(0x21, Struct(
    doc("context_id" / Int8ub, "PS3.8 9.3.3.2"),
    "reserved2" / Default(Int8ub, 0),
    doc("result" / Int8ub, "PS3.8 9.3.3.2", enum=PRESENTATION_CONTEXT_RESULTS),
    "reserved3" / Default(Int8ub, 0),
    doc("sub_items" / ToEnd(PresentationSubItem), "PS3.8 9.3.3.2",
        text="one transfer syntax (40H)"),
), "PS3.8 9.3.3.2")

# ---- PS3.8 9.3.2.3 / 9.3.3.3 User Information Item (0x50) -----------------
#   0 type=50H | 1 reserved | 2-3 length | 4.. User-data sub-items (0x51 ..)
UserInformationItem = _item(0x50, Struct(
    doc("sub_items" / ToEnd(UserSubItem), "PS3.8 9.3.2.3"),
), "PS3.8 9.3.2.3")

VARIABLE_ITEMS.update({
    0x10: ApplicationContextItem,
    0x20: PresentationContextRQItem,
    0x21: PresentationContextACItem,
    0x50: UserInformationItem,
})

#: Every item type -> declaration (PS3.8 / PS3.7 item types are unique).
ITEMS: dict[int, Construct] = {
    **VARIABLE_ITEMS, **PRESENTATION_SUB_ITEMS, **USER_SUB_ITEMS}

#: Any single item, whatever its level: dispatches on its type byte,
#: UnknownItem otherwise (for parsing or building one item on its own).
Item = _ByType(ITEMS, UnknownItem)

assert set(ITEMS) == set(ITEM_TYPES)

# ===========================================================================
# PDV items (PS3.8 9.3.5.1, Annex E)
# ===========================================================================

#   0-3 Item-length u32 (bytes that follow: 2 + fragment)
#   | 4 Presentation-context-ID | 5 Message Control Header | 6.. fragment
#
#   Message Control Header (PS3.8 E.2):  bit 0: 1 command, 0 data set;
#   bit 1: 1 last fragment, 0 not last; bits 2-7 reserved (kept as is).


def _mch_from_bits(ctx) -> int:
    return ((PDV_COMMAND if ctx.get("is_command") else 0)
            | (PDV_LAST if ctx.get("is_last") else 0))


PDV = Struct(
    # PS3.8 9.3.5.1: length of context id + header + fragment
    doc("length" / Rebuild(Int32ub, lambda ctx: len(ctx.fragment) + 2), "PS3.8 9.3.5.1",
        text="bytes after this field: 2 + fragment"),
    _Require(lambda ctx: ctx.length >= 2,
             "PDV item length {length} is less than 2"),
    doc("context_id" / Int8ub, "PS3.8 9.3.5.1"),
    # PS3.8 E.2: the whole byte is kept; on build it defaults to the bits
    # given as is_command / is_last.
    doc("message_control_header" / Default(Int8ub, _mch_from_bits), "PS3.8 E.2",
        text="bit 0: command; bit 1: last fragment"),
    "is_command" / Computed(lambda ctx: bool(ctx.message_control_header & PDV_COMMAND)),
    "is_last" / Computed(lambda ctx: bool(ctx.message_control_header & PDV_LAST)),
    doc("fragment" / Bytes(this.length - 2), "PS3.8 9.3.5.1",
        text="a command or data set fragment"),
)

#: The 6-byte PDV item header alone: the first fields of :data:`PDV` (the
#: length given, not recomputed, on build).
PDVHeader = header_of(PDV, "length", "context_id", "message_control_header")

# ===========================================================================
# PDUs (PS3.8 9.3)
# ===========================================================================

# ---- PS3.8 9.3.2 A-ASSOCIATE-RQ (1) and 9.3.3 A-ASSOCIATE-AC (2) -----------
#
#    0      1      2             6        8        10
#   +------+------+-------------+--------+--------+------------------+
#   | type | rsv1 | length u32  |version |  rsv2  | Called-AE-title  |
#   +------+------+-------------+--------+--------+------------------+
#    26                  42                        74
#   +--------------------+-------------------------+-----------------+
#   | Calling-AE-title   | reserved (32 bytes)     | variable items  |
#   +--------------------+-------------------------+-----------------+
#
#   In the AC the AE titles are "reserved, but shall be sent with the value
#   received in the RQ" (PS3.8 9.3.3); they keep their names here.
#   Variable items: one 0x10, one or more 0x20 (RQ) / 0x21 (AC), one 0x50.
AssociateBody = Struct(
    doc("protocol_version" / Default(Int16ub, 1), "PS3.8 9.3.2", text="bit 0: version 1"),
    "reserved2" / Default(Int16ub, 0),
    doc("called_ae_title" / AETitle, "PS3.8 9.3.2", text="16 bytes, space padded"),
    doc("calling_ae_title" / AETitle, "PS3.8 9.3.2", text="16 bytes, space padded"),
    "reserved3" / Default(Bytes(32), bytes(32)),
    doc("variable_items" / ToEnd(VariableItem), "PS3.8 9.3.2",
        text="one 10H, one or more 20H (RQ) / 21H (AC), one 50H"),
)

# ---- PS3.8 9.3.4 A-ASSOCIATE-RJ (3) ---------------------------------------
#   0 type | 1 rsv1 | 2-5 length=4 | 6 reserved | 7 Result | 8 Source
#   | 9 Reason/Diag.
AssociateRJBody = Struct(
    "reserved2" / Default(Int8ub, 0),
    doc("result" / Int8ub, "PS3.8 9.3.4", enum=REJECT_RESULTS),
    doc("source" / Int8ub, "PS3.8 9.3.4", enum=REJECT_SOURCES),
    doc("reason" / Int8ub, "PS3.8 9.3.4", enum=REJECT_REASONS,
        text="meaning depends on the source"),
    _TRAILING,
)

# ---- PS3.8 9.3.5 P-DATA-TF (4) --------------------------------------------
#   0 type | 1 rsv1 | 2-5 length | 6.. one or more PDV items (9.3.5.1)
PDataBody = Struct(
    doc("pdvs" / ToEnd(PDV), "PS3.8 9.3.5", text="one or more PDV items"),
)

# ---- PS3.8 9.3.6 A-RELEASE-RQ (5) and 9.3.7 A-RELEASE-RP (6) ---------------
#   0 type | 1 rsv1 | 2-5 length=4 | 6-9 reserved
ReleaseBody = Struct(
    "reserved2" / Default(Int32ub, 0),
    _TRAILING,
)

# ---- PS3.8 9.3.8 A-ABORT (7) ----------------------------------------------
#   0 type | 1 rsv1 | 2-5 length=4 | 6 reserved | 7 reserved | 8 Source
#   | 9 Reason/Diag.
AbortBody = Struct(
    "reserved2" / Default(Int8ub, 0),
    "reserved3" / Default(Int8ub, 0),
    doc("source" / Default(Int8ub, 0), "PS3.8 9.3.8", enum=ABORT_SOURCES),
    doc("reason" / Default(Int8ub, 0), "PS3.8 9.3.8", enum=ABORT_REASONS),
    _TRAILING,
)

#: PDU type -> body declaration.
PDU_BODIES: dict[int, Construct] = {
    0x01: AssociateBody,
    0x02: AssociateBody,
    0x03: AssociateRJBody,
    0x04: PDataBody,
    0x05: ReleaseBody,
    0x06: ReleaseBody,
    0x07: AbortBody,
}
assert set(PDU_BODIES) == set(PDU_TYPES)

_PDUBodySwitch = Switch(
    this.pdu_type, PDU_BODIES,
    default=_Fail(lambda ctx: f"unknown PDU type 0x{ctx.pdu_type:02X}"),
)

#: A whole PDU: header, then the body of its type parsed from exactly
#: ``length`` bytes.  Unknown PDU types are an error (parse and build).
PDU = Struct(
    doc("pdu_type" / Int8ub, "PS3.8 9.3.1", enum=PDU_TYPES),
    "reserved1" / Default(Int8ub, 0),
    *(doc(f, "PS3.8 9.3.1", text=t) for f, t in zip(
        _sized("length", Int32ub, "body", _PDUBodySwitch),
        ("bytes after this field", "the body of the PDU type"))),
)

# ---- PS3.8 9.3.1 PDU header -----------------------------------------------
#: The 6-byte PDU header alone: the first fields of :data:`PDU`
#: (``pdu_type``: tables.PDU_TYPES; ``length``: bytes after this field).
PDUHeader = header_of(PDU, "pdu_type", "reserved1", "length")


# ===========================================================================
# Fast paths: struct formats derived from the Construct headers
# ===========================================================================


#: 6-byte PDU header, PS3.8 9.3.1: (pdu_type, reserved1, length), ">BBI"
#: (spelled ">BBL" by Construct: same standard sizes).
PDU_HEADER = struct_of(PDUHeader)
#: 6-byte PDV item header, PS3.8 9.3.5.1:
#: (length, context_id, message_control_header), ">IBB" (">LBB").
PDV_HEADER = struct_of(PDVHeader)
PDU_HEADER_SIZE = PDU_HEADER.size
PDV_HEADER_SIZE = PDV_HEADER.size
assert PDU_HEADER_SIZE == 6 and PDV_HEADER_SIZE == 6


# ===========================================================================
# The code that reads and writes PDUs with these declarations
# ===========================================================================

# It lives in .pdu_codec; its names stay importable from here.  Imported last:
# .pdu_codec imports the declarations above (and the package imports this
# module first, so the cycle always resolves this way round).
from .pdu_codec import (  # noqa: E402
    ae_title,
    build_pdu,
    find_items,
    is_command,
    is_last,
    item,
    iter_pdvs,
    parse_pdu,
    salvage_associate,
    strip_ae,
    strip_uid,
    uid,
)

__all__ = [
    "SpecError",
    # building blocks
    "Text", "AETitle", "AETitleString", "ToEnd",
    # items
    "Item", "ITEMS", "UnknownItem", "VariableItem", "PresentationSubItem",
    "UserSubItem", "VARIABLE_ITEMS", "PRESENTATION_SUB_ITEMS", "USER_SUB_ITEMS",
    "ApplicationContextItem", "PresentationContextRQItem",
    "PresentationContextACItem", "AbstractSyntaxItem", "TransferSyntaxItem",
    "UserInformationItem", "MaximumLengthItem", "ImplementationClassUIDItem",
    "AsynchronousOperationsWindowItem", "RoleSelectionItem",
    "ImplementationVersionNameItem", "SOPClassExtendedNegotiationItem",
    "SOPClassCommonExtendedNegotiationItem", "RelatedGeneralSOPClass",
    "UserIdentityRQItem", "UserIdentityACItem",
    # PDVs and PDUs
    "PDV", "PDVHeader", "PDUHeader", "PDU", "PDU_BODIES",
    "AssociateBody", "AssociateRJBody", "PDataBody", "ReleaseBody", "AbortBody",
    # fast paths
    "PDU_HEADER", "PDV_HEADER", "PDU_HEADER_SIZE", "PDV_HEADER_SIZE",
    "iter_pdvs",
    # convenience (.pdu_codec)
    "parse_pdu", "build_pdu", "parse", "build", "item", "salvage_associate",
    "strip_ae", "strip_uid", "ae_title", "uid", "is_command", "is_last", "find_items",
]
