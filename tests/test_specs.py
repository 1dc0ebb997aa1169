"""The DICOM spec pack (dicomwire.specs.dicom): round trips of every PDU and
item, real bytes from pynetdicom, hostile input, fast paths against the
Construct declarations, and the data tables.

Expected bytes are assembled here with ``struct`` straight from the layouts
of PS3.8 9.3 / PS3.7 D.3.3, independently of the declarations under test.
"""

from __future__ import annotations

import random
import struct
from io import BytesIO

import pytest
from construct import Container, ListContainer, SizeofError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomwire.specs import dicom
from dicomwire.specs.dicom import (
    PDU,
    PDU_HEADER,
    PDV,
    PDV_HEADER,
    AbortBody,
    AbstractSyntaxItem,
    ApplicationContextItem,
    AssociateBody,
    AssociateRJBody,
    AsynchronousOperationsWindowItem,
    ImplementationClassUIDItem,
    ImplementationVersionNameItem,
    Item,
    MaximumLengthItem,
    PDataBody,
    PDUHeader,
    PDVHeader,
    PresentationContextACItem,
    PresentationContextRQItem,
    ReleaseBody,
    RoleSelectionItem,
    SOPClassCommonExtendedNegotiationItem,
    SOPClassExtendedNegotiationItem,
    SpecError,
    TransferSyntaxItem,
    UnknownItem,
    UserIdentityACItem,
    UserIdentityRQItem,
    UserInformationItem,
    VariableItem,
    build,
    build_pdu,
    find_items,
    item,
    iter_pdvs,
    parse,
    parse_pdu,
    status_info,
    strip_ae,
    strip_uid,
)
from dicomwire.specs.dicom import tables

# Example counts keep the whole file well under 15 s.
HYP = settings(max_examples=150, deadline=None,
               suppress_health_check=[HealthCheck.too_slow])
HYP_SLOW = settings(HYP, max_examples=60)

# --------------------------------------------------------------------------
# Independent byte assembly (PS3.8 9.3)
# --------------------------------------------------------------------------


def raw_pdu(pdu_type: int, body: bytes, reserved: int = 0) -> bytes:
    return struct.pack(">BBI", pdu_type, reserved, len(body)) + body


def raw_item(item_type: int, body: bytes, reserved: int = 0) -> bytes:
    return struct.pack(">BBH", item_type, reserved, len(body)) + body


def raw_pdv(context_id: int, mch: int, fragment: bytes) -> bytes:
    return struct.pack(">IBB", len(fragment) + 2, context_id, mch) + fragment


def u16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def ae(title: bytes) -> bytes:
    return title.ljust(16, b" ")


def raw_associate(pdu_type, called, calling, items, version=1, rsv2=0,
                  rsv3=bytes(32), reserved=0):
    body = struct.pack(">HH", version, rsv2) + called + calling + rsv3 + items
    return raw_pdu(pdu_type, body, reserved)


# --------------------------------------------------------------------------
# Construct's round-trip idiom: parse, build, size in one helper
# --------------------------------------------------------------------------


def matches(expected, actual, where="") -> None:
    """Every key/element of ``expected`` is in ``actual`` with that value
    (lengths, trailing and computed fields may be left out of expected)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing"
            matches(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, list), where
        assert len(expected) == len(actual), f"{where}: length"
        for i, (e, a) in enumerate(zip(expected, actual)):
            matches(e, a, f"{where}[{i}]")
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"


def common(spec, data: bytes, obj, size=SizeofError):
    """parse(data) matches obj, build(obj) == data, build(parse(data)) ==
    data, parse(build(parse(data))) == parse(data), and sizeof() == size (or
    raises SizeofError)."""
    parsed = spec.parse(data)
    matches(obj, parsed)
    assert spec.build(obj) == data
    assert spec.build(parsed) == data
    assert spec.parse(spec.build(parsed)) == parsed
    if size is SizeofError:
        with pytest.raises(SizeofError):
            spec.sizeof()
    else:
        assert spec.sizeof() == size
    return parsed


# --------------------------------------------------------------------------
# Items and sub-items: every type
# --------------------------------------------------------------------------

TS_IMPLICIT = "1.2.840.10008.1.2"
TS_EXPLICIT = "1.2.840.10008.1.2.1"
TS_BIG = "1.2.840.10008.1.2.2"
VERIFICATION = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"

ITEM_CASES = [
    # (id, declaration, bytes, values)
    ("application-context", ApplicationContextItem,
     raw_item(0x10, APP_CONTEXT.encode()),
     item(0x10, APP_CONTEXT)),
    ("abstract-syntax", AbstractSyntaxItem,
     raw_item(0x30, CT.encode()),
     item(0x30, CT)),
    ("abstract-syntax-nul-padded", AbstractSyntaxItem,
     raw_item(0x30, b"1.2.840.10008.1.1\x00"),
     item(0x30, "1.2.840.10008.1.1\x00")),
    ("transfer-syntax", TransferSyntaxItem,
     raw_item(0x40, TS_IMPLICIT.encode()),
     item(0x40, TS_IMPLICIT)),
    ("transfer-syntax-space-padded-reserved", TransferSyntaxItem,
     raw_item(0x40, b"1.2.840.10008.1.2.1 ", reserved=0x7E),
     item(0x40, "1.2.840.10008.1.2.1 ", reserved1=0x7E)),
    ("presentation-context-rq-three-ts", PresentationContextRQItem,
     raw_item(0x20, bytes([1, 0, 0, 0])
              + raw_item(0x30, CT.encode())
              + raw_item(0x40, TS_IMPLICIT.encode())
              + raw_item(0x40, TS_EXPLICIT.encode())
              + raw_item(0x40, TS_BIG.encode())),
     item(0x20, context_id=1, sub_items=[
         item(0x30, CT), item(0x40, TS_IMPLICIT), item(0x40, TS_EXPLICIT),
         item(0x40, TS_BIG)])),
    ("presentation-context-rq-reserved", PresentationContextRQItem,
     raw_item(0x20, bytes([255, 1, 2, 3])
              + raw_item(0x30, VERIFICATION.encode())
              + raw_item(0x40, TS_IMPLICIT.encode()), reserved=9),
     item(0x20, context_id=255, reserved2=1, reserved3=2, reserved4=3,
          reserved1=9, sub_items=[item(0x30, VERIFICATION),
                              item(0x40, TS_IMPLICIT)])),
    ("presentation-context-ac", PresentationContextACItem,
     raw_item(0x21, bytes([3, 0, 0, 0]) + raw_item(0x40, TS_EXPLICIT.encode())),
     item(0x21, context_id=3, result=0, sub_items=[item(0x40, TS_EXPLICIT)])),
    ("presentation-context-ac-rejected-reserved", PresentationContextACItem,
     raw_item(0x21, bytes([5, 0xAA, 4, 0xBB]) + raw_item(0x40, b"")),
     item(0x21, context_id=5, reserved2=0xAA, result=4, reserved3=0xBB,
          sub_items=[item(0x40, "")])),
    ("maximum-length", MaximumLengthItem,
     raw_item(0x51, struct.pack(">I", 16384)),
     item(0x51, max_length=16384)),
    ("maximum-length-surplus-bytes", MaximumLengthItem,
     raw_item(0x51, struct.pack(">I", 0) + b"\x01\x02"),
     item(0x51, max_length=0, trailing=b"\x01\x02")),
    ("implementation-class-uid", ImplementationClassUIDItem,
     raw_item(0x52, b"1.2.826.0.1.3680043.9.3811\x00"),
     item(0x52, "1.2.826.0.1.3680043.9.3811\x00")),
    ("async-operations-window", AsynchronousOperationsWindowItem,
     raw_item(0x53, struct.pack(">HH", 5, 0)),
     item(0x53, max_operations_invoked=5, max_operations_performed=0)),
    ("role-selection", RoleSelectionItem,
     raw_item(0x54, u16(CT.encode()) + bytes([1, 0])),
     item(0x54, sop_class_uid=CT, scu_role=1, scp_role=0)),
    ("role-selection-both", RoleSelectionItem,
     raw_item(0x54, u16(b"1.2\x00") + bytes([1, 1])),
     item(0x54, sop_class_uid="1.2\x00", scu_role=1, scp_role=1)),
    ("implementation-version-name", ImplementationVersionNameItem,
     raw_item(0x55, b"OFFIS_DCMTK_368 "),
     item(0x55, "OFFIS_DCMTK_368 ")),
    ("sop-class-extended-negotiation", SOPClassExtendedNegotiationItem,
     raw_item(0x56, u16(b"1.2.840.10008.5.1.4.1.2.1.1") + b"\x01\x00\x01"),
     item(0x56, sop_class_uid="1.2.840.10008.5.1.4.1.2.1.1",
          service_class_application_information=b"\x01\x00\x01")),
    ("sop-class-extended-negotiation-empty-info", SOPClassExtendedNegotiationItem,
     raw_item(0x56, u16(CT.encode())),
     item(0x56, sop_class_uid=CT, service_class_application_information=b"")),
    ("common-extended-negotiation-none-related",
     SOPClassCommonExtendedNegotiationItem,
     raw_item(0x57, u16(CT.encode()) + u16(b"1.2.840.10008.4.2") + u16(b"")),
     item(0x57, sop_class_uid=CT, service_class_uid="1.2.840.10008.4.2",
          related_general_sop_classes=[])),
    ("common-extended-negotiation-two-related-version",
     SOPClassCommonExtendedNegotiationItem,
     raw_item(0x57, u16(CT.encode()) + u16(b"1.2.840.10008.4.2")
              + u16(u16(b"1.2.3") + u16(b"1.2.3.4\x00")), reserved=1),
     item(0x57, sub_item_version=1, sop_class_uid=CT,
          service_class_uid="1.2.840.10008.4.2",
          related_general_sop_classes=[dict(uid="1.2.3"),
                                       dict(uid="1.2.3.4\x00")])),
    ("user-identity-ac", UserIdentityACItem,
     raw_item(0x59, u16(b"\x00\x01token")),
     item(0x59, server_response=b"\x00\x01token")),
    ("user-identity-ac-empty", UserIdentityACItem,
     raw_item(0x59, u16(b"")),
     item(0x59, server_response=b"")),
    ("unknown-item", UnknownItem,
     raw_item(0x77, b"\x00\xffopaque", reserved=3),
     dict(item_type=0x77, reserved1=3, body=b"\x00\xffopaque")),
    ("unknown-item-empty", UnknownItem,
     raw_item(0xEE, b""),
     dict(item_type=0xEE, body=b"")),
]

USER_IDENTITY_CASES = [
    (1, b"alice", b""),
    (2, b"alice", b"s3cret"),
    (3, b"\x60\x82kerberos-ticket", b""),
    (4, b"<saml:Assertion/>", b""),
    (5, b"eyJhbGciOi.JIUzI1NiJ9.e30", b""),
]
for _type, _primary, _secondary in USER_IDENTITY_CASES:
    ITEM_CASES.append((
        f"user-identity-rq-type-{_type}", UserIdentityRQItem,
        raw_item(0x58, bytes([_type, _type % 2]) + u16(_primary) + u16(_secondary)),
        item(0x58, user_identity_type=_type, positive_response_requested=_type % 2,
             primary_field=_primary, secondary_field=_secondary)))

USER_INFO_SUBITEMS = [c for c in ITEM_CASES
                      if c[3]["item_type"] in tables.ITEM_TYPES
                      and c[3]["item_type"] > 0x50]
ITEM_CASES.append((
    "user-information-all-sub-items", UserInformationItem,
    raw_item(0x50, b"".join(c[2] for c in USER_INFO_SUBITEMS)),
    item(0x50, sub_items=[c[3] for c in USER_INFO_SUBITEMS])))
ITEM_CASES.append((
    "user-information-empty", UserInformationItem,
    raw_item(0x50, b""), item(0x50, sub_items=[])))


@pytest.mark.parametrize("spec,data,obj", [c[1:] for c in ITEM_CASES],
                         ids=[c[0] for c in ITEM_CASES])
def test_item_round_trip(spec, data, obj):
    parsed = common(spec, data, obj)
    assert parsed.length == len(data) - 4
    # the generic dispatcher agrees with the specific declaration
    assert common(Item, data, obj) == parsed
    assert parse(Item, data) == parsed


def test_every_item_type_is_covered():
    covered = {c[3]["item_type"] for c in ITEM_CASES}
    assert set(tables.ITEM_TYPES) <= covered
    assert covered - set(tables.ITEM_TYPES)          # unknown types too


def test_item_lengths_computed_and_nested():
    data = build(Item, item(0x20, context_id=7, sub_items=[
        item(0x30, VERIFICATION), item(0x40, TS_IMPLICIT)]))
    sub = raw_item(0x30, VERIFICATION.encode()) + raw_item(0x40, TS_IMPLICIT.encode())
    assert data == raw_item(0x20, bytes([7, 0, 0, 0]) + sub)
    parsed = parse(Item, data)
    assert [i.length for i in parsed.body.sub_items] == [len(VERIFICATION), len(TS_IMPLICIT)]


def test_item_at_wrong_level_is_kept_raw():
    # a maximum length sub-item among the variable items of an A-ASSOCIATE
    data = raw_item(0x51, struct.pack(">I", 1234))
    parsed = VariableItem.parse(data)
    assert parsed == Container(item_type=0x51, reserved1=0, length=4,
                               body=struct.pack(">I", 1234))
    assert VariableItem.build(parsed) == data


def test_nesting_is_bounded():
    """0x50 in 0x50 in 0x50 ... must not recurse (RecursionError is not a
    SpecError): the second level is kept raw."""
    inner = b""
    for _ in range(3000 // 4):
        inner = raw_item(0x50, inner) if len(inner) < 60000 else inner
    data = raw_associate(1, ae(b"A"), ae(b"B"), inner)
    parsed = parse_pdu(data)
    (user_info,) = parsed.body.variable_items
    (nested,) = user_info.body.sub_items
    assert nested.item_type == 0x50 and isinstance(nested.body, bytes)
    assert build(PDU, parsed) == data


# --------------------------------------------------------------------------
# PDUs: every type
# --------------------------------------------------------------------------

RQ_ITEMS = (raw_item(0x10, APP_CONTEXT.encode())
            + raw_item(0x20, bytes([1, 0, 0, 0]) + raw_item(0x30, VERIFICATION.encode())
                       + raw_item(0x40, TS_IMPLICIT.encode())
                       + raw_item(0x40, TS_EXPLICIT.encode()))
            + raw_item(0x50, raw_item(0x51, struct.pack(">I", 16384))
                       + raw_item(0x52, b"1.2.3.4")))
RQ_ITEM_VALUES = [
    item(0x10, APP_CONTEXT),
    item(0x20, context_id=1, sub_items=[item(0x30, VERIFICATION),
                                    item(0x40, TS_IMPLICIT),
                                    item(0x40, TS_EXPLICIT)]),
    item(0x50, sub_items=[item(0x51, max_length=16384), item(0x52, "1.2.3.4")]),
]
AC_ITEMS = (raw_item(0x10, APP_CONTEXT.encode())
            + raw_item(0x21, bytes([1, 0, 0, 0]) + raw_item(0x40, TS_IMPLICIT.encode()))
            + raw_item(0x21, bytes([3, 0, 3, 0]) + raw_item(0x40, TS_IMPLICIT.encode()))
            + raw_item(0x50, raw_item(0x51, struct.pack(">I", 0))
                       + raw_item(0x59, u16(b"ok"))))
AC_ITEM_VALUES = [
    item(0x10, APP_CONTEXT),
    item(0x21, context_id=1, result=0, sub_items=[item(0x40, TS_IMPLICIT)]),
    item(0x21, context_id=3, result=3, sub_items=[item(0x40, TS_IMPLICIT)]),
    item(0x50, sub_items=[item(0x51, max_length=0),
                      item(0x59, server_response=b"ok")]),
]

PDU_CASES = [
    ("associate-rq", raw_associate(1, ae(b"ANY-SCP"), ae(b"ECHOSCU"), RQ_ITEMS),
     dict(pdu_type=1, body=dict(protocol_version=1,
                                called_ae_title="ANY-SCP         ",
                                calling_ae_title="ECHOSCU         ",
                                variable_items=RQ_ITEM_VALUES))),
    ("associate-rq-padding-reserved",
     raw_associate(1, b"  LEADING SPACE ", b"NULPAD\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                   RQ_ITEMS, version=3, rsv2=0xBEEF, rsv3=bytes(range(32)), reserved=0x5A),
     dict(pdu_type=1, reserved1=0x5A,
          body=dict(protocol_version=3, reserved2=0xBEEF,
                    called_ae_title="  LEADING SPACE ",
                    calling_ae_title="NULPAD" + "\x00" * 10,
                    reserved3=bytes(range(32)), variable_items=RQ_ITEM_VALUES))),
    ("associate-rq-no-items", raw_associate(1, ae(b"A"), ae(b"B"), b""),
     dict(pdu_type=1, body=dict(called_ae_title="A" + " " * 15,
                                calling_ae_title="B" + " " * 15,
                                variable_items=[]))),
    ("associate-rq-unknown-item",
     raw_associate(1, ae(b"A"), ae(b"B"), RQ_ITEMS + raw_item(0x99, b"??")),
     dict(pdu_type=1, body=dict(called_ae_title="A" + " " * 15,
                                calling_ae_title="B" + " " * 15,
                                variable_items=RQ_ITEM_VALUES + [
         dict(item_type=0x99, body=b"??")]))),
    ("associate-ac", raw_associate(2, ae(b"ANY-SCP"), ae(b"ECHOSCU"), AC_ITEMS),
     dict(pdu_type=2, body=dict(called_ae_title="ANY-SCP         ",
                                calling_ae_title="ECHOSCU         ",
                                variable_items=AC_ITEM_VALUES))),
    ("associate-rj", raw_pdu(3, bytes([0, 1, 1, 7])),
     dict(pdu_type=3, body=dict(result=1, source=1, reason=7))),
    ("associate-rj-reserved-surplus", raw_pdu(3, bytes([0xFF, 2, 3, 2, 9, 9]), reserved=1),
     dict(pdu_type=3, reserved1=1,
          body=dict(reserved2=0xFF, result=2, source=3, reason=2, trailing=b"\x09\x09"))),
    ("p-data-one-pdv", raw_pdu(4, raw_pdv(1, 0x03, b"command")),
     dict(pdu_type=4, body=dict(pdvs=[
         dict(context_id=1, message_control_header=3, is_command=True,
              is_last=True, fragment=b"command")]))),
    ("p-data-several-pdvs",
     raw_pdu(4, raw_pdv(1, 0x01, b"cmd-1") + raw_pdv(1, 0x03, b"cmd-2")
             + raw_pdv(3, 0x00, b"") + raw_pdv(3, 0xFE, b"data-last")),
     dict(pdu_type=4, body=dict(pdvs=[
         dict(context_id=1, message_control_header=1, fragment=b"cmd-1"),
         dict(context_id=1, message_control_header=3, fragment=b"cmd-2"),
         dict(context_id=3, message_control_header=0, is_command=False,
              is_last=False, fragment=b""),
         dict(context_id=3, message_control_header=0xFE, is_command=False,
              is_last=True, fragment=b"data-last")]))),
    ("p-data-empty", raw_pdu(4, b""), dict(pdu_type=4, body=dict(pdvs=[]))),
    ("release-rq", raw_pdu(5, bytes(4)), dict(pdu_type=5, body=dict(reserved2=0))),
    ("release-rq-reserved", raw_pdu(5, b"\x01\x02\x03\x04", reserved=2),
     dict(pdu_type=5, reserved1=2, body=dict(reserved2=0x01020304))),
    ("release-rp", raw_pdu(6, bytes(4)), dict(pdu_type=6, body=dict())),
    ("release-rp-surplus", raw_pdu(6, bytes(4) + b"x"),
     dict(pdu_type=6, body=dict(trailing=b"x"))),
    ("abort", raw_pdu(7, bytes([0, 0, 2, 6])),
     dict(pdu_type=7, body=dict(source=2, reason=6))),
    ("abort-reserved", raw_pdu(7, bytes([1, 2, 0, 0]), reserved=3),
     dict(pdu_type=7, reserved1=3, body=dict(reserved2=1, reserved3=2,
                                              source=0, reason=0))),
]


@pytest.mark.parametrize("data,obj", [c[1:] for c in PDU_CASES],
                         ids=[c[0] for c in PDU_CASES])
def test_pdu_round_trip(data, obj):
    parsed = common(PDU, data, obj)
    assert parse_pdu(data) == parsed
    assert parsed.length == len(data) - 6
    assert build_pdu(obj["pdu_type"], obj.get("reserved1", 0), **obj["body"]) == data
    name = tables.PDU_TYPES[obj["pdu_type"]]
    assert build_pdu(name, obj.get("reserved1", 0), **obj["body"]) == data
    header = common(PDUHeader, data[:6], dict(pdu_type=parsed.pdu_type,
                                              reserved1=parsed.reserved1,
                                              length=parsed.length), size=6)
    assert tuple(header.values())[1:4] == PDU_HEADER.unpack_from(data)


def test_every_pdu_type_is_covered():
    assert {c[2]["pdu_type"] for c in PDU_CASES} == set(tables.PDU_TYPES)


def test_bodies_alone():
    """The body declarations work on their own too (fuzzers build them)."""
    assert ReleaseBody.build({}) == bytes(4)
    assert AbortBody.build(dict(source=2, reason=1)) == bytes([0, 0, 2, 1])
    assert AssociateRJBody.build(dict(result=2, source=3, reason=1)) == bytes([0, 2, 3, 1])
    body = AssociateBody.build(dict(called_ae_title="X", calling_ae_title="Y", variable_items=[]))
    assert body == b"\x00\x01\x00\x00" + ae(b"X") + ae(b"Y") + bytes(32)
    assert PDataBody.build(dict(pdvs=[dict(context_id=1, is_last=True,
                                           fragment=b"ab")])) == raw_pdv(1, 2, b"ab")


def test_ae_titles_pad_and_strip():
    data = build_pdu(1, called_ae_title="SCP", calling_ae_title=b"SCU \x00", variable_items=[])
    parsed = parse_pdu(data)
    assert data[10:26] == b"SCP" + b" " * 13
    assert parsed.body.called_ae_title == "SCP" + " " * 13
    assert parsed.body.calling_ae_title == "SCU \x00" + " " * 11
    assert strip_ae(parsed.body.called_ae_title) == "SCP"
    assert strip_ae(parsed.body.calling_ae_title) == "SCU"
    assert strip_ae(b"  MY AE  ") == "MY AE"
    assert strip_uid("1.2.3\x00") == strip_uid(b"1.2.3 ") == "1.2.3"
    with pytest.raises(SpecError):
        build_pdu(1, called_ae_title="X" * 17, calling_ae_title="Y", variable_items=[])
    with pytest.raises(SpecError):
        build_pdu(1, called_ae_title="\u20ac", calling_ae_title="Y", variable_items=[])


def test_non_ascii_bytes_survive():
    """latin-1 maps every byte: hostile AE titles and UIDs parse and rebuild."""
    junk = bytes(range(0x80, 0x90))
    data = raw_associate(1, junk, bytes(range(16)),
                         raw_item(0x10, b"\xff\xfe\x00") + raw_item(0x52, b"\x80"))
    parsed = parse_pdu(data)
    assert parsed.body.called_ae_title.encode("latin-1") == junk
    assert build(PDU, parsed) == data


def test_build_errors_are_spec_errors():
    with pytest.raises(SpecError, match="unknown PDU type 0x08"):
        build_pdu(8)
    with pytest.raises(SpecError):
        build_pdu("A-NOTHING")
    with pytest.raises(SpecError, match="result"):
        build_pdu("A-ASSOCIATE-RJ", source=1, reason=1)
    with pytest.raises(SpecError):
        build(Item, dict(body="no type"))


def test_find_items_and_flags_helpers():
    parsed = parse_pdu(PDU_CASES[0][1])
    (pc,) = find_items(parsed.body.variable_items, 0x20)
    assert [strip_uid(i.body) for i in find_items(pc.body.sub_items, 0x40)] == [
        TS_IMPLICIT, TS_EXPLICIT]
    assert dicom.is_command(0x01) and not dicom.is_command(0x02)
    assert dicom.is_last(0x02) and not dicom.is_last(0x01)


# --------------------------------------------------------------------------
# PDV flags (PS3.8 E.2)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mch", [0x00, 0x01, 0x02, 0x03, 0x04, 0x80, 0xFC, 0xFF])
def test_pdv_message_control_header(mch):
    data = raw_pdv(5, mch, b"xyz")
    parsed = common(PDV, data, dict(length=5, context_id=5,
                                    message_control_header=mch,
                                    is_command=bool(mch & 1),
                                    is_last=bool(mch & 2), fragment=b"xyz"))
    # the whole byte is kept, reserved bits included
    assert PDV.build(parsed)[5] == mch
    (ctx, control, fragment, offset), = iter_pdvs(data)
    assert (ctx, control, bytes(fragment), offset) == (5, mch, b"xyz", 0)


@pytest.mark.parametrize("command,last", [(False, False), (True, False),
                                          (False, True), (True, True)])
def test_pdv_build_from_bits(command, last):
    data = PDV.build(dict(context_id=1, is_command=command, is_last=last,
                          fragment=b"f"))
    assert data == raw_pdv(1, command | (last << 1), b"f")


# --------------------------------------------------------------------------
# Real bytes from pynetdicom (an implementation nobody here wrote)
# --------------------------------------------------------------------------

pynetdicom = pytest.importorskip("pynetdicom")
from pynetdicom import pdu as pn_pdu  # noqa: E402
from pynetdicom import pdu_primitives as pn_prim  # noqa: E402
from pynetdicom.presentation import build_context  # noqa: E402


def _user_information(ac: bool = False):
    ml = pn_prim.MaximumLengthNotification()
    ml.maximum_length_received = 16382
    ic = pn_prim.ImplementationClassUIDNotification()
    ic.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.3.0.4"
    iv = pn_prim.ImplementationVersionNameNotification()
    iv.implementation_version_name = "PYNETDICOM_304"
    aw = pn_prim.AsynchronousOperationsWindowNegotiation()
    aw.maximum_number_operations_invoked = 5
    aw.maximum_number_operations_performed = 3
    rs = pn_prim.SCP_SCU_RoleSelectionNegotiation()
    rs.sop_class_uid = CT
    rs.scu_role = True
    rs.scp_role = False
    ex = pn_prim.SOPClassExtendedNegotiation()
    ex.sop_class_uid = "1.2.840.10008.5.1.4.1.2.1.1"
    ex.service_class_application_information = b"\x01\x01"
    ui = pn_prim.UserIdentityNegotiation()
    if ac:
        ui.server_response = b"server-token"
        return [ml, ic, iv, aw, rs, ex, ui]
    ce = pn_prim.SOPClassCommonExtendedNegotiation()
    ce.sop_class_uid = CT
    ce.service_class_uid = "1.2.840.10008.4.2"
    ce.related_general_sop_class_identification = ["1.2.840.10008.5.1.4.1.1.88.22"]
    ui.user_identity_type = 2
    ui.positive_response_requested = True
    ui.primary_field = b"user"
    ui.secondary_field = b"secret"
    return [ml, ic, iv, aw, rs, ex, ce, ui]


def _associate_primitive(ac: bool = False):
    prim = pn_prim.A_ASSOCIATE()
    prim.application_context_name = APP_CONTEXT
    prim.calling_ae_title = "STORESCU"
    prim.called_ae_title = "ANY-SCP"
    cx1 = build_context(CT, [TS_IMPLICIT, TS_EXPLICIT, TS_BIG])
    cx1.context_id = 1
    cx3 = build_context(VERIFICATION, [TS_IMPLICIT])
    cx3.context_id = 3
    if ac:
        cx1.result, cx1.transfer_syntax = 0, [TS_EXPLICIT]
        cx3.result, cx3.transfer_syntax = 3, [TS_IMPLICIT]
        prim.presentation_context_definition_results_list = [cx1, cx3]
        prim.result = 0
    else:
        prim.presentation_context_definition_list = [cx1, cx3]
    prim.user_information = _user_information(ac)
    return prim


def test_pynetdicom_associate_rq():
    data = pn_pdu.A_ASSOCIATE_RQ(_associate_primitive()).encode()
    pdu = parse_pdu(data)
    assert pdu.pdu_type == 1 and pdu.length == len(data) - 6
    body = pdu.body
    assert body.protocol_version == 1
    assert strip_ae(body.called_ae_title) == "ANY-SCP"
    assert strip_ae(body.calling_ae_title) == "STORESCU"
    assert [i.item_type for i in body.variable_items] == [0x10, 0x20, 0x20, 0x50]
    assert strip_uid(body.variable_items[0].body) == APP_CONTEXT
    pcs = find_items(body.variable_items, 0x20)
    assert [pc.body.context_id for pc in pcs] == [1, 3]
    assert strip_uid(find_items(pcs[0].body.sub_items, 0x30)[0].body) == CT
    assert [strip_uid(ts.body) for ts in find_items(pcs[0].body.sub_items, 0x40)] == [
        TS_IMPLICIT, TS_EXPLICIT, TS_BIG]
    (user,) = find_items(body.variable_items, 0x50)
    sub = {i.item_type: i for i in user.body.sub_items}
    assert set(sub) == set(range(0x51, 0x59))
    assert sub[0x51].body.max_length == 16382
    assert strip_uid(sub[0x52].body) == "1.2.826.0.1.3680043.9.3811.3.0.4"
    assert sub[0x55].body == "PYNETDICOM_304"
    assert (sub[0x53].body.max_operations_invoked,
            sub[0x53].body.max_operations_performed) == (5, 3)
    assert (strip_uid(sub[0x54].body.sop_class_uid), sub[0x54].body.scu_role,
            sub[0x54].body.scp_role) == (CT, 1, 0)
    assert sub[0x56].body.service_class_application_information == b"\x01\x01"
    assert sub[0x57].body.service_class_uid == "1.2.840.10008.4.2"
    assert [r.uid for r in sub[0x57].body.related_general_sop_classes] == [
        "1.2.840.10008.5.1.4.1.1.88.22"]
    ui = sub[0x58].body
    assert (ui.user_identity_type, ui.positive_response_requested,
            ui.primary_field, ui.secondary_field) == (2, 1, b"user", b"secret")
    assert build(PDU, pdu) == data


def test_pynetdicom_associate_ac():
    data = pn_pdu.A_ASSOCIATE_AC(_associate_primitive(ac=True)).encode()
    pdu = parse_pdu(data)
    assert pdu.pdu_type == 2
    assert strip_ae(pdu.body.called_ae_title) == "ANY-SCP"
    assert strip_ae(pdu.body.calling_ae_title) == "STORESCU"
    pcs = find_items(pdu.body.variable_items, 0x21)
    assert [(pc.body.context_id, pc.body.result) for pc in pcs] == [(1, 0), (3, 3)]
    assert strip_uid(pcs[0].body.sub_items[0].body) == TS_EXPLICIT
    (user,) = find_items(pdu.body.variable_items, 0x50)
    (uid_ac,) = find_items(user.body.sub_items, 0x59)
    assert uid_ac.body.server_response == b"server-token"
    assert build(PDU, pdu) == data


def test_our_associate_rq_decodes_in_pynetdicom():
    data = build_pdu("A-ASSOCIATE-RQ", called_ae_title="PEER",
                     calling_ae_title="US", variable_items=RQ_ITEM_VALUES)
    theirs = pn_pdu.A_ASSOCIATE_RQ()
    theirs.decode(data)
    assert theirs.called_ae_title == "PEER"
    assert theirs.calling_ae_title == "US"
    assert theirs.application_context_name == APP_CONTEXT
    (pc,) = theirs.presentation_context
    assert (pc.context_id, pc.abstract_syntax, pc.transfer_syntax) == (
        1, VERIFICATION, [TS_IMPLICIT, TS_EXPLICIT])
    assert theirs.encode() == data


@pytest.mark.parametrize("result,source,reason", [(1, 1, 1), (1, 1, 7), (2, 2, 2),
                                                  (2, 3, 1), (1, 3, 2)])
def test_pynetdicom_associate_rj(result, source, reason):
    prim = pn_prim.A_ASSOCIATE()
    prim.result, prim.result_source, prim.diagnostic = result, source, reason
    data = pn_pdu.A_ASSOCIATE_RJ(prim).encode()
    pdu = parse_pdu(data)
    assert (pdu.pdu_type, pdu.body.result, pdu.body.source, pdu.body.reason) == (
        3, result, source, reason)
    assert tables.reject_reason(source, reason) != "reserved"
    assert build(PDU, pdu) == data


def test_pynetdicom_release_and_abort():
    for cls, pdu_type in ((pn_pdu.A_RELEASE_RQ, 5), (pn_pdu.A_RELEASE_RP, 6)):
        data = cls().encode()
        pdu = parse_pdu(data)
        assert pdu.pdu_type == pdu_type and pdu.body.reserved2 == 0
        assert build(PDU, pdu) == data == build_pdu(pdu_type)
    for source, reason in ((0, 0), (2, 1), (2, 6)):
        abort = pn_pdu.A_ABORT_RQ()
        abort.source, abort.reason_diagnostic = source, reason
        data = abort.encode()
        pdu = parse_pdu(data)
        assert (pdu.pdu_type, pdu.body.source, pdu.body.reason) == (7, source, reason)
        assert build(PDU, pdu) == data == build_pdu("A-ABORT", source=source,
                                                    reason=reason)


def _p_data_pdus(message, context_id, max_pdu):
    out = []
    for primitive in message.encode_msg(context_id, max_pdu):
        pdu = pn_pdu.P_DATA_TF()
        pdu.from_primitive(primitive)
        out.append(pdu.encode())
    return out


def test_pynetdicom_p_data_echo_and_fragmented_store():
    from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
    from pynetdicom.dimse_primitives import C_ECHO, C_STORE

    echo = C_ECHO()
    echo.MessageID = 7
    echo.AffectedSOPClassUID = VERIFICATION
    message = C_ECHO_RQ()
    message.primitive_to_message(echo)
    (data,) = _p_data_pdus(message, 1, 16384)
    pdu = parse_pdu(data)
    (pdv,) = pdu.body.pdvs
    assert (pdv.context_id, pdv.is_command, pdv.is_last) == (1, True, True)
    assert b"1.2.840.10008.1.1" in pdv.fragment
    assert build(PDU, pdu) == data

    dataset = bytes(range(256)) * 3
    store = C_STORE()
    store.MessageID = 9
    store.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    store.AffectedSOPInstanceUID = "1.2.3.4"
    store.Priority = 2
    store.DataSet = BytesIO(dataset)
    message = C_STORE_RQ()
    message.primitive_to_message(store)
    pdus = _p_data_pdus(message, 3, 300)
    assert len(pdus) > 2
    fragments = {True: b"", False: b""}
    lasts = []
    for data in pdus:
        pdu = parse_pdu(data)
        assert build(PDU, pdu) == data
        fast = list(iter_pdvs(data[6:], base=6))
        assert [(p.context_id, p.message_control_header, p.fragment)
                for p in pdu.body.pdvs] == [(c, m, bytes(f)) for c, m, f, _ in fast]
        assert fast[0][3] == 6
        for pdv in pdu.body.pdvs:
            assert pdv.context_id == 3
            fragments[pdv.is_command] += pdv.fragment
            lasts.append((pdv.is_command, pdv.is_last))
    assert fragments[False] == dataset
    assert lasts[-1] == (False, True)
    assert [last for command, last in lasts if command] == [True]


# --------------------------------------------------------------------------
# Hostile input: SpecError, never anything else
# --------------------------------------------------------------------------

GOOD_RQ = PDU_CASES[0][1]


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def test_item_length_overrunning_parent():
    # the application context item (at 74) claims more than the PDU holds
    bad = _patch(GOOD_RQ, 74 + 2, ">H", 0xFFFF)
    with pytest.raises(SpecError) as info:
        parse_pdu(bad)
    assert "body -> variable_items -> [0]" in info.value.path
    # a transfer syntax sub-item overrunning its presentation context
    pc = 74 + 4 + len(APP_CONTEXT)
    first_sub = pc + 8
    ts = first_sub + 4 + len(VERIFICATION)
    bad = _patch(GOOD_RQ, ts + 2, ">H", 200)
    with pytest.raises(SpecError) as info:
        parse_pdu(bad)
    assert "[1]" in info.value.path and "sub_items" in info.value.path
    # a length-prefixed field overrunning its item
    rs = raw_item(0x54, u16(b"1.2") + b"\x01\x00")
    with pytest.raises(SpecError):
        parse(Item, rs[:4] + b"\x00\x09" + rs[6:])
    uid = raw_item(0x58, b"\x01\x00" + u16(b"abc"))
    with pytest.raises(SpecError):
        parse(Item, uid[:6] + b"\x00\x40" + uid[8:])
    cen = raw_item(0x57, u16(b"1") + u16(b"2") + b"\x00\x08" + u16(b"3"))
    with pytest.raises(SpecError):
        parse(Item, cen)


def test_item_shorter_than_its_fields():
    with pytest.raises(SpecError):
        parse(Item, raw_item(0x51, b"\x00\x01"))
    with pytest.raises(SpecError):
        parse(Item, raw_item(0x20, b"\x01"))
    with pytest.raises(SpecError):                 # 3 stray bytes after items
        parse_pdu(raw_associate(1, ae(b"A"), ae(b"B"), RQ_ITEMS + b"\x10\x00\x00"))


def test_pdu_length_huge_with_short_body():
    data = raw_pdu(1, b"\x00\x01")[:2] + b"\xff\xff\xff\xff" + b"\x00\x01"
    with pytest.raises(SpecError) as info:
        parse_pdu(data)
    assert info.value.path == "length"
    with pytest.raises(SpecError):
        parse(PDU, data)                           # the Construct path too


def test_pdu_length_disagreeing_with_data():
    with pytest.raises(SpecError, match="follow the header"):
        parse_pdu(raw_pdu(5, bytes(4)) + b"extra")
    with pytest.raises(SpecError):
        parse_pdu(b"\x05\x00\x00")
    with pytest.raises(SpecError):                 # release body too short
        parse_pdu(raw_pdu(5, b"\x00\x00"))
    with pytest.raises(SpecError):                 # associate cut in an AE title
        parse_pdu(raw_pdu(1, b"\x00\x01\x00\x00ANY"))


@pytest.mark.parametrize("pdu_type", [0x00, 0x08, 0x10, 0xFF])
def test_unknown_pdu_type(pdu_type):
    with pytest.raises(SpecError, match="unknown PDU type"):
        parse_pdu(raw_pdu(pdu_type, bytes(4)))
    with pytest.raises(SpecError, match="unknown PDU type"):
        parse(PDU, raw_pdu(pdu_type, bytes(4)))


@pytest.mark.parametrize("length", [0, 1])
def test_pdv_length_less_than_two(length):
    body = raw_pdv(1, 3, b"ok") + struct.pack(">IBB", length, 1, 3)
    with pytest.raises(SpecError, match="less than 2"):
        parse_pdu(raw_pdu(4, body))
    walker = iter_pdvs(body, base=6)
    assert next(walker)[:2] == (1, 3)
    with pytest.raises(SpecError) as info:
        next(walker)
    assert info.value.offset == 6 + 8 and info.value.path == "pdvs"


def test_pdv_overrun_and_stub():
    overrun = struct.pack(">IBB", 100, 1, 2) + b"short"
    with pytest.raises(SpecError):
        parse_pdu(raw_pdu(4, overrun))
    with pytest.raises(SpecError, match="overruns") as info:
        list(iter_pdvs(overrun))
    assert info.value.offset == 0
    stub = raw_pdv(1, 0, b"x") + b"\x00\x00\x00"
    with pytest.raises(SpecError):
        parse_pdu(raw_pdu(4, stub))
    with pytest.raises(SpecError, match="less than a PDV item header") as info:
        list(iter_pdvs(stub))
    assert info.value.offset == 7


def test_spec_error_is_value_error_with_path():
    assert issubclass(SpecError, ValueError)
    with pytest.raises(ValueError) as info:
        parse_pdu(raw_pdu(3, b"\x00\x01"))
    assert info.value.path and "body" in info.value.path
    assert "(parsing)" not in str(info.value)


ANY_BYTES = st.binary(max_size=300)


@HYP
@given(ANY_BYTES)
def test_random_bytes_parse_or_spec_error(data):
    _parse_or_spec_error(data)


def _parse_or_spec_error(data: bytes):
    try:
        parsed = parse_pdu(data)
    except SpecError:
        return None
    # anything that parses rebuilds to the same bytes
    assert build(PDU, parsed) == data
    return parsed


@HYP
@given(st.integers(1, 7), st.integers(0, 255),
       st.lists(st.tuples(st.sampled_from([0x10, 0x20, 0x21, 0x30, 0x40, 0x50,
                                           0x51, 0x52, 0x53, 0x54, 0x55, 0x56,
                                           0x57, 0x58, 0x59, 0x00, 0x60]),
                          st.binary(max_size=40), st.integers(-3, 3)),
                max_size=6),
       st.binary(max_size=8))
def test_structured_garbage_parse_or_spec_error(pdu_type, reserved, items, tail):
    """Well-framed PDUs of every type whose bodies are item-shaped garbage
    (lengths off by a few), so the item and field parsers are reached."""
    body = bytearray()
    if pdu_type in (1, 2):
        body += b"\x00\x01\x00\x00" + ae(b"A") + ae(b"B") + bytes(32)
    for item_type, payload, skew in items:
        body += struct.pack(">BBH", item_type, 0, max(0, len(payload) + skew))
        body += payload
    if pdu_type == 4:
        body = bytearray(raw_pdv(1, 3, bytes(body)))
    body += tail
    _parse_or_spec_error(raw_pdu(pdu_type, bytes(body), reserved))


@HYP
@given(st.sampled_from([c[1] for c in PDU_CASES]), st.data())
def test_mutated_pdus_parse_or_spec_error(data, draw):
    """Valid PDUs with a few bytes overwritten after the header."""
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        if len(mutated) <= 6:
            break
        pos = draw.draw(st.integers(6, len(mutated) - 1))
        mutated[pos] = draw.draw(st.integers(0, 255))
    _parse_or_spec_error(bytes(mutated))


# --------------------------------------------------------------------------
# Generated traffic: random values build, parse back, rebuild
# --------------------------------------------------------------------------

uids = st.text(alphabet="0123456789.", max_size=64).map(
    lambda s: s + ("\x00" if len(s) % 2 else ""))
ae_titles = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                    max_size=16)
u8 = st.integers(0, 0xFF)
u16s = st.integers(0, 0xFFFF)

user_sub_items = st.one_of(
    st.builds(lambda n: item(0x51, max_length=n), st.integers(0, 0xFFFFFFFF)),
    st.builds(lambda u: item(0x52, u), uids),
    st.builds(lambda a, b: item(0x53, max_operations_invoked=a,
                                max_operations_performed=b), u16s, u16s),
    st.builds(lambda u, a, b: item(0x54, sop_class_uid=u, scu_role=a, scp_role=b),
              uids, u8, u8),
    st.builds(lambda u: item(0x55, u), ae_titles),
    st.builds(lambda u, i: item(0x56, sop_class_uid=u,
                                service_class_application_information=i),
              uids, st.binary(max_size=20)),
    st.builds(lambda v, u, s, r: item(0x57, sub_item_version=v, sop_class_uid=u,
                                      service_class_uid=s,
                                      related_general_sop_classes=[
                                          dict(uid=x) for x in r]),
              u8, uids, uids, st.lists(uids, max_size=3)),
    st.builds(lambda t, p, a, b: item(0x58, user_identity_type=t,
                                      positive_response_requested=p,
                                      primary_field=a, secondary_field=b),
              st.integers(1, 5), st.integers(0, 1), st.binary(max_size=30),
              st.binary(max_size=30)),
    st.builds(lambda r: item(0x59, server_response=r), st.binary(max_size=30)),
    st.builds(lambda t, b: dict(item_type=t, body=b),
              st.integers(0x5A, 0xFF), st.binary(max_size=20)),
)
presentation_rq = st.builds(
    lambda cid, a, ts, r: item(0x20, context_id=cid, reserved2=r, sub_items=[
        item(0x30, a)] + [item(0x40, t) for t in ts]),
    u8, uids, st.lists(uids, min_size=1, max_size=4), u8)
presentation_ac = st.builds(
    lambda cid, res, t: item(0x21, context_id=cid, result=res, sub_items=[item(0x40, t)]),
    u8, st.integers(0, 4), uids)


@HYP_SLOW
@given(st.sampled_from([1, 2]), ae_titles, ae_titles, u8,
       st.lists(st.one_of(presentation_rq, presentation_ac), max_size=4),
       st.lists(user_sub_items, max_size=6))
def test_generated_associate_round_trip(pdu_type, called, calling, reserved,
                                        contexts, user):
    items = [item(0x10, APP_CONTEXT), *contexts, item(0x50, sub_items=user)]
    data = build_pdu(pdu_type, reserved, called_ae_title=called,
                     calling_ae_title=calling, variable_items=items)
    parsed = parse_pdu(data)
    assert parsed.reserved1 == reserved
    assert strip_ae(parsed.body.called_ae_title) == called.strip(" ")
    matches(items, parsed.body.variable_items)
    assert build(PDU, parsed) == data


@HYP
@given(st.lists(st.tuples(u8, u8, st.binary(max_size=50)), max_size=8))
def test_generated_p_data_and_fast_walker(pdvs):
    data = build_pdu(4, pdvs=[dict(context_id=c, message_control_header=m,
                                   fragment=f) for c, m, f in pdvs])
    assert data == raw_pdu(4, b"".join(raw_pdv(c, m, f) for c, m, f in pdvs))
    parsed = parse_pdu(data)
    walked = [(c, m, bytes(f)) for c, m, f, _ in iter_pdvs(data[6:])]
    assert walked == [(p.context_id, p.message_control_header, p.fragment)
                      for p in parsed.body.pdvs] == list(pdvs)


@HYP
@given(st.binary(max_size=60))
def test_fast_walker_agrees_with_construct(body):
    try:
        expected = [(p.context_id, p.message_control_header, p.fragment)
                    for p in PDataBody.parse(body).pdvs]
    except Exception as err:  # noqa: BLE001 - compared below
        expected = err
    try:
        walked = [(c, m, bytes(f)) for c, m, f, _ in iter_pdvs(body)]
    except SpecError as err:
        walked = err
    if isinstance(expected, Exception):
        assert isinstance(walked, SpecError)
    else:
        assert walked == expected


# --------------------------------------------------------------------------
# Fast-path formats agree with the Construct declarations
# --------------------------------------------------------------------------


def test_struct_formats():
    assert PDU_HEADER.size == PDUHeader.sizeof() == 6
    assert PDV_HEADER.size == PDVHeader.sizeof() == 6
    assert struct.calcsize(">BBI") == PDU_HEADER.size
    assert PDU_HEADER.pack(1, 2, 3) == struct.pack(">BBI", 1, 2, 3)
    assert PDV_HEADER.pack(1, 2, 3) == struct.pack(">IBB", 1, 2, 3)


@HYP
@given(u8, u8, st.integers(0, 0xFFFFFFFF))
def test_pdu_header_struct_agrees(pdu_type, reserved, length):
    packed = PDU_HEADER.pack(pdu_type, reserved, length)
    assert PDUHeader.build(dict(pdu_type=pdu_type, reserved1=reserved,
                                length=length)) == packed
    parsed = PDUHeader.parse(packed)
    assert (parsed.pdu_type, parsed.reserved1, parsed.length) == \
        PDU_HEADER.unpack(packed)


@HYP
@given(st.integers(0, 0xFFFFFFFF), u8, u8)
def test_pdv_header_struct_agrees(length, context_id, mch):
    packed = PDV_HEADER.pack(length, context_id, mch)
    assert PDVHeader.build(dict(length=length, context_id=context_id,
                                message_control_header=mch)) == packed
    parsed = PDVHeader.parse(packed)
    assert (parsed.length, parsed.context_id, parsed.message_control_header) == \
        PDV_HEADER.unpack(packed)
    # and the full PDV declaration reads its header the same way
    if 2 <= length <= 64:
        full = PDV.parse(packed + bytes(length - 2))
        assert (full.length, full.context_id, full.message_control_header) == \
            PDV_HEADER.unpack(packed)


def test_full_pdu_header_agrees_with_struct():
    rng = random.Random(1)
    for data, _ in [c[1:] for c in PDU_CASES]:
        parsed = PDU.parse(data)
        assert (parsed.pdu_type, parsed.reserved1, parsed.length) == \
            PDU_HEADER.unpack_from(data)
    for _ in range(50):
        pdu_type = rng.choice([5, 6, 7, 3])
        reserved = rng.randrange(256)
        data = build_pdu(pdu_type, reserved, **({"result": 1, "source": 1, "reason": 1}
                                                if pdu_type == 3 else {}))
        assert PDU_HEADER.unpack_from(data) == (pdu_type, reserved, 4)


# --------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------


def test_pdu_tables():
    assert tables.PDU_TYPES == {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC",
                                3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF",
                                5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}
    assert set(tables.PDU_LONG_NAMES) == set(tables.PDU_TYPES)
    assert tables.PDU_LONG_NAMES[1] == "A-ASSOCIATE request"
    assert tables.reject_reason(1, 7) == "called-AE-title-not-recognized"
    assert tables.reject_reason(2, 2) == "protocol-version-not-supported"
    assert tables.reject_reason(3, 1) == "temporary-congestion"
    assert tables.reject_reason(1, 5) == tables.reject_reason(9, 1) == "reserved"
    assert tables.reject_text(1, 1, 7) == (
        "Rejected permanent, DICOM UL service-user: Called AE title not recognized")
    assert tables.ABORT_REASONS[6] == "invalid-PDU-parameter value"
    assert tables.abort_text(2, 6).endswith(": Invalid PDU parameter value")
    assert tables.abort_text(0, 0) == "DICOM UL service-user (initiated abort)"
    assert dicom.ae_title(b"AE  ") == "AE" and dicom.uid("1.2\x00") == "1.2"
    assert set(tables.ABORT_SOURCES) == {0, 1, 2}
    assert set(tables.PRESENTATION_CONTEXT_RESULTS) == set(range(5))
    assert set(tables.USER_IDENTITY_TYPES) == set(range(1, 6))
    assert tables.SCU_ROLES[1] and tables.SCP_ROLES[0]
    assert tables.PDV_COMMAND | tables.PDV_LAST | tables.PDV_RESERVED_BITS == 0xFF


def test_command_field_table_complete():
    expected = {
        "C-STORE": 0x0001, "C-GET": 0x0010, "C-FIND": 0x0020, "C-MOVE": 0x0021,
        "C-ECHO": 0x0030, "N-EVENT-REPORT": 0x0100, "N-GET": 0x0110,
        "N-SET": 0x0120, "N-ACTION": 0x0130, "N-CREATE": 0x0140,
        "N-DELETE": 0x0150,
    }
    table = {}
    for name, rq in expected.items():
        table[rq] = f"{name}-RQ"
        table[rq | 0x8000] = f"{name}-RSP"
    table[0x0FFF] = "C-CANCEL-RQ"
    assert tables.COMMAND_FIELDS == table
    assert tables.COMMAND_RESPONSES == {rq: rq | 0x8000 for rq in expected.values()}
    assert tables.COMMAND_FIELD_BY_NAME["C-ECHO-RSP"] == 0x8030
    assert tables.command_name(0x8001) == "C-STORE-RSP"
    assert tables.command_name(0x1234) == "unknown command 0x1234"
    assert tables.is_response(0x8021) and not tables.is_response(0x0021)
    assert tables.PRIORITIES == {0: "MEDIUM", 1: "HIGH", 2: "LOW"}
    assert not tables.has_data_set(0x0101)
    assert tables.has_data_set(0x0001) and tables.has_data_set(0x0102)


C_STORE_RSP, C_FIND_RSP, C_MOVE_RSP, C_GET_RSP = 0x8001, 0x8020, 0x8021, 0x8010


@pytest.mark.parametrize("code,command,category,meaning_part", [
    # general, PS3.7 Annex C
    (0x0000, None, "Success", "Success"),
    (0x0001, None, "Warning", "optional"),
    (0x0107, None, "Warning", "Attribute list error"),
    (0x0116, None, "Warning", "out of range"),
    (0x0105, None, "Failure", "No such attribute"),
    (0x0106, None, "Failure", "Invalid attribute value"),
    (0x0110, None, "Failure", "Processing failure"),
    (0x0111, None, "Failure", "Duplicate SOP Instance"),
    (0x0112, None, "Failure", "No such SOP Instance"),
    (0x0113, None, "Failure", "event type"),
    (0x0114, None, "Failure", "No such argument"),
    (0x0115, None, "Failure", "Invalid argument value"),
    (0x0117, None, "Failure", "Invalid object instance"),
    (0x0118, None, "Failure", "No such SOP Class"),
    (0x0119, None, "Failure", "Class-Instance conflict"),
    (0x0120, None, "Failure", "Missing attribute"),
    (0x0121, None, "Failure", "Missing attribute value"),
    (0x0122, 0x8030, "Failure", "SOP Class not supported"),
    (0x0123, None, "Failure", "No such action"),
    (0x0124, None, "Failure", "not authorized"),
    (0x0210, None, "Failure", "Duplicate invocation"),
    (0x0211, None, "Failure", "Unrecognized operation"),
    (0x0212, None, "Failure", "Mistyped argument"),
    (0x0213, None, "Failure", "Resource limitation"),
    (0xFE00, None, "Cancel", "Cancel"),
    (0xFF00, None, "Pending", "Pending"),
    (0xFF01, None, "Pending", "Pending"),
    # storage, PS3.4 B.2.3
    (0xA700, C_STORE_RSP, "Failure", "Out of resources"),
    (0xA7FF, 0x0001, "Failure", "Out of resources"),
    (0xA900, C_STORE_RSP, "Failure", "does not match SOP Class"),
    (0xA9AB, C_STORE_RSP, "Failure", "does not match SOP Class"),
    (0xC000, C_STORE_RSP, "Failure", "Cannot understand"),
    (0xCFFF, C_STORE_RSP, "Failure", "Cannot understand"),
    (0xB000, C_STORE_RSP, "Warning", "Coercion"),
    (0xB007, C_STORE_RSP, "Warning", "does not match SOP Class"),
    (0xB006, C_STORE_RSP, "Warning", "discarded"),
    (0x0000, C_STORE_RSP, "Success", "Success"),
    # C-FIND, PS3.4 C.4.1.1.4
    (0xA700, C_FIND_RSP, "Failure", "Out of resources"),
    (0xA900, C_FIND_RSP, "Failure", "Identifier does not match"),
    (0xC123, C_FIND_RSP, "Failure", "Unable to process"),
    (0xFF00, C_FIND_RSP, "Pending", "current match is supplied"),
    (0xFF01, C_FIND_RSP, "Pending", "Optional Keys were not supported"),
    (0xFE00, C_FIND_RSP, "Cancel", "Cancel"),
    # C-MOVE, PS3.4 C.4.2.1.5
    (0xA701, C_MOVE_RSP, "Failure", "number of matches"),
    (0xA702, C_MOVE_RSP, "Failure", "sub-operations"),
    (0xA801, C_MOVE_RSP, "Failure", "Move destination unknown"),
    (0xA900, C_MOVE_RSP, "Failure", "Identifier does not match"),
    (0xC001, C_MOVE_RSP, "Failure", "Unable to process"),
    (0xB000, C_MOVE_RSP, "Warning", "one or more failures"),
    (0xFF00, C_MOVE_RSP, "Pending", "Sub-operations are continuing"),
    (0x0000, 0x0021, "Success", "no failures"),
    # C-GET, PS3.4 C.4.3.1.4
    (0xA701, C_GET_RSP, "Failure", "number of matches"),
    (0xA702, C_GET_RSP, "Failure", "sub-operations"),
    (0xA900, C_GET_RSP, "Failure", "Identifier does not match"),
    (0xCABC, C_GET_RSP, "Failure", "Unable to process"),
    (0xB000, C_GET_RSP, "Warning", "one or more failures"),
    (0xFF00, C_GET_RSP, "Pending", "Sub-operations are continuing"),
    # range rules without a service, and unknown codes
    (0xA7AB, None, "Failure", "Out of resources"),
    (0xA9CD, None, "Failure", "does not match SOP Class"),
    (0xC5FF, None, "Failure", "unable to process"),
    (0xFF7F, None, "Pending", "Pending"),
    (0xA801, C_STORE_RSP, "Failure", "unknown status 0xA801"),
    (0xB123, None, "Warning", "unknown status 0xB123"),
    (0xFE01, None, "Cancel", "unknown status 0xFE01"),
    (0x0150, None, "Failure", "unknown status 0x0150"),
    (0x0299, C_FIND_RSP, "Failure", "unknown status 0x0299"),
    (0x5000, None, "Failure", "unknown status 0x5000"),
    (0xB000, None, "Warning", "unknown status 0xB000"),
])
def test_status_info(code, command, category, meaning_part):
    got_category, meaning = status_info(code, command)
    assert got_category == category
    assert meaning_part.lower() in meaning.lower()


def test_status_categories_follow_annex_c():
    for code in range(0x10000):
        category, _ = status_info(code)
        assert category == tables.status_category(code)
    assert tables.status_category(0x0107) == "Warning"
    assert tables.status_category(0x01FF) == "Failure"


def test_package_exports():
    for name in ("parse_pdu", "build_pdu", "iter_pdvs", "SpecError", "PDU",
                 "PDU_HEADER", "PDV_HEADER", "status_info", "COMMAND_FIELDS"):
        assert name in dicom.__all__ and hasattr(dicom, name)
    assert isinstance(parse_pdu(GOOD_RQ).body.variable_items, ListContainer)


# --- command sets (PS3.7 E.1-1, PS3.5 7.1.3): the decoder vs the Construct spec ---

def _reference_command(data):
    """Elements of a command set as the Construct spec parses them, values
    by the general decoder: what decode_command's fast paths must give."""
    from dicomwire.specs.dicom import command as C
    fields, out = {}, []
    pos = 0
    for el in C.CommandSet.parse(data):
        kw, vr = C.COMMAND_ELEMENTS.get(el.element, (f"(0000,{el.element:04X})", "UN")) \
            if el.group == 0 else (f"({el.group:04X},{el.element:04X})", "UN")
        value = el.value if vr == "UN" else C._value(vr, el.value)
        if isinstance(value, list) and vr in ("US", "UL") and kw != "Overlays":
            value = value[0] if value else None
        if value is not None:
            fields[kw] = value
        out.append(((el.group << 16) | el.element, kw, vr, pos, 8 + el.length, value))
        pos += 8 + el.length
    return fields, out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0x0000, 0x0002, 0x0100, 0x0110, 0x0120, 0x0700,
                                           0x0800, 0x0900, 0x1000, 0x51B0, 0x0003, 0x1234]),
                          st.binary(max_size=12)), max_size=10))
def test_decode_command_matches_the_spec(elems):
    from dicomwire.specs.dicom.command import decode_command
    data = b"".join(struct.pack("<HHI", 0, e, len(v)) + v for e, v in elems)
    fields, elements, _problems = decode_command(data)
    assert (fields, elements) == _reference_command(data)
