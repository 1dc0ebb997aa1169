"""The spec runtime (core/spec.py, ``dicomwire.spec``): struct fast paths
derived from their declarations and checked against them on random bytes,
the located parse, and the DICOM pack's readers of it (render's item
offsets, the fuzzer's field map)."""

from __future__ import annotations

import struct

import pytest
from construct import Bytes, Const, Int8ub, Int16ub, Int16ul, Renamed, Struct, this
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomwire import spec as R
from dicomwire.plugins.dicom import render
from dicomwire.specs.dicom import command as C
from dicomwire.specs.dicom import dataset as D
from dicomwire.specs.dicom import fuzz as sf
from dicomwire.specs.dicom import pdu as P

HYP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_CMD_HEADER = R.header_of(C.CommandElement, "group", "element", "length")

# Every struct fast path of the DICOM pack, the declaration it derives from,
# and how to make random header bytes a whole thing the full declaration
# parses (None: the declaration is the whole thing).
DERIVED = [
    ("PDU_HEADER", P.PDU_HEADER, P.PDUHeader, None),
    ("PDV_HEADER", P.PDV_HEADER, P.PDVHeader, (P.PDV, ">I", 0, 2)),
    ("command element", C._ELEMENT_HEADER, _CMD_HEADER, (C.CommandElement, "<I", 4, 0)),
    ("implicit LE", D.FAST_HEADERS[True][0], D.IMPLICIT_LE, None),
    ("explicit short LE", D.FAST_HEADERS[True][1], D.EXPLICIT_SHORT_LE, None),
    ("explicit long LE", D.FAST_HEADERS[True][2], D.EXPLICIT_LONG_LE, None),
    ("implicit BE", D.FAST_HEADERS[False][0], D.IMPLICIT_BE, None),
    ("explicit short BE", D.FAST_HEADERS[False][1], D.EXPLICIT_SHORT_BE, None),
    ("explicit long BE", D.FAST_HEADERS[False][2], D.EXPLICIT_LONG_BE, None),
]


def _const_spans(decl):
    """(offset, bytes) of the constant byte strings of a fixed layout: the
    fast path skips them, the declaration checks them."""
    spans, pos = [], 0
    for sc in decl.subcons:
        inner = sc.subcon if isinstance(sc, Renamed) else sc
        if isinstance(inner, Const) and isinstance(inner.value, bytes):
            spans.append((pos, inner.value))
        pos += sc.sizeof()
    return spans


@pytest.mark.parametrize("name, fast, decl, whole", DERIVED, ids=[d[0] for d in DERIVED])
@HYP
@given(data=st.data())
def test_derived_struct_unpacks_as_the_declaration_parses(name, fast, decl, whole, data):
    raw = bytearray(data.draw(st.binary(min_size=fast.size, max_size=fast.size)))
    for at, value in _const_spans(decl):
        raw[at:at + len(value)] = value
    names = R.struct_names(decl)
    values = fast.unpack(bytes(raw))
    assert fast.size == decl.sizeof()
    parsed = decl.parse(bytes(raw))
    assert values == tuple(parsed[n] for n in names)
    assert decl.build(parsed) == bytes(raw)
    if whole is not None:
        # The full declaration reads its header as the fast path does.
        full, fmt, at, least = whole
        length = least + struct.unpack_from(fmt, raw, at)[0] % 64
        struct.pack_into(fmt, raw, at, length)
        parsed = full.parse(bytes(raw) + bytes(length - least))
        assert fast.unpack(bytes(raw)) == tuple(parsed[n] for n in names)


def test_derived_formats():
    assert P.PDU_HEADER.format == ">BBL" and P.PDV_HEADER.format == ">LBB"
    assert C._ELEMENT_HEADER.format == "<HHL"
    assert [s.format for s in D.FAST_HEADERS[True]] == ["<HHL", "<HH2sH", "<HH2s2xL"]
    assert [s.format for s in D.FAST_HEADERS[False]] == [">HHL", ">HH2sH", ">HH2s2xL"]
    assert R.struct_names(D.EXPLICIT_LONG_LE) == ("group", "element", "vr", "length")


def test_struct_format_refuses_what_struct_cannot_say():
    with pytest.raises(TypeError):
        R.struct_format(Struct("n" / Int8ub, "v" / Bytes(this.n)))
    with pytest.raises(TypeError):
        R.struct_format(Struct("a" / Int16ub, "b" / Int16ul))
    with pytest.raises(TypeError):
        R.struct_format(Int16ub)


def test_header_of_keeps_the_declarations_and_gives_lengths_on_build():
    assert P.PDUHeader.subcons[0] is P.PDU.subcons[0]
    assert P.PDUHeader.build(dict(pdu_type=1, reserved1=0, length=9)) == b"\x01\x00\x00\x00\x00\x09"
    assert P.PDVHeader.build(dict(length=2, context_id=1, is_command=True, is_last=True)) \
        == b"\x00\x00\x00\x02\x01\x03"


# -- located parse -------------------------------------------------------------------

def test_located_records_fields_and_list_elements():
    spec = Struct("kind" / Int8ub, *R.sized("length", Int16ub, "items",
                                             R.ToEnd(Struct("a" / Int8ub, "b" / Int8ub))))
    data = b"\x07\x00\x04\x01\x02\x03\x04"
    value, located = R.parse_located(spec, data, base=100, prefix=("x",))
    where = {f.path: (f.offset, f.size) for f in located}
    assert where[("x", "kind")] == (100, 1)
    assert where[("x", "items")] == (103, 4)
    assert where[("x", "items", 1)] == (105, 2)
    assert where[("x", "items", 1, "b")] == (106, 1)
    assert value == spec.parse(data)
    assert [f.offset for f in located] == sorted(f.offset for f in located)


def test_located_raises_spec_errors():
    with pytest.raises(R.SpecError):
        R.parse_located(P.PDU, b"\x05\x00\x00\x00\x00\x09\x00")


def _hand_offsets(plain, offset):
    """The hand-kept item offsets render.py computed before the located parse
    (PS3.8 9.3.2: 68 fixed bytes before the variable items, 4 before a
    presentation context's sub-items): the oracle for valid PDUs."""
    out = {}

    def items(lst, pos, path):
        for i, it in enumerate(lst):
            out[path + (i,)] = pos
            body = it.get("body")
            if isinstance(body, dict) and isinstance(body.get("sub_items"), list):
                items(body["sub_items"], pos + 4 + (4 if "context_id" in body else 0),
                      path + (i, "body", "sub_items"))
            pos += 4 + it["length"]

    items(plain["body"]["variable_items"], offset + 6 + 68, ("body", "variable_items"))
    return out


class _PDU:
    def __init__(self, body, offset):
        self.body, self.offset = body, offset


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(0, 2**20), st.booleans())
def test_item_offsets_from_the_located_parse_match_the_layout(seed, offset, ac):
    c = sf.RandomChoices(seed)
    data = sf.associate_rq(c)
    if ac:
        data = sf.associate_ac(c, data)
    plain = render.plain(P.parse_pdu(data), True)
    assert render.item_offsets(_PDU(data, offset)) == _hand_offsets(plain, offset)
    render.add_offsets(plain, _PDU(data, offset))
    for it in plain["body"]["variable_items"]:
        assert data[it["offset"] - offset] == it["item_type"]


def test_salvaged_items_are_located_where_they_are():
    items = [P.item(0x10, "1.2.840.10008.3.1.1.1"),
             P.item(0x20, context_id=1, sub_items=[P.item(0x30, "1.2"), P.item(0x40, "1.2")]),
             P.item(0x50, sub_items=[P.item(0x51, max_length=0)])]
    data = bytearray(P.build_pdu(1, called_ae_title="A", calling_ae_title="B",
                                 variable_items=items))
    at = 74 + 25 + 4 + 4 + 2           # the abstract syntax sub-item's length
    data[at:at + 2] = (200).to_bytes(2, "big")   # overruns its item: item 1 is skipped
    data = bytes(data)
    with pytest.raises(P.SpecError):
        P.parse_pdu(data)
    located = []
    pdu = P.salvage_associate(data, located)
    assert [i.item_type for i in pdu.body.variable_items] == [0x10, 0x50]
    offsets = render.item_offsets(_PDU(data, 1000))
    assert offsets[("body", "variable_items", 0)] == 1074
    second = 74 + 25 + 4 + int.from_bytes(data[74 + 25 + 2:74 + 25 + 4], "big")
    assert offsets[("body", "variable_items", 1)] == 1000 + second
    assert data[second] == 0x50


def test_field_map_reads_the_located_parse():
    data = sf.associate_rq(sf.RandomChoices(3))
    _, located = R.parse_located(P.PDU, data)
    named = {f.path: f for f in located if isinstance(f.path[-1], str) and f.size}
    fields = sf.field_map(data)
    assert {f.path for f in fields} == set(named)
    for f in fields:
        assert (f.offset, f.size) == (named[f.path].offset, named[f.path].size)


# -- references and enumerations as data on the declarations -------------------------

def test_doc_is_data_on_the_declaration_and_changes_no_bytes():
    spec = Struct(R.doc("kind" / Int8ub, "X 1.2", enum={1: "one"}, text="a kind"),
                  "rest" / Int8ub)
    assert R.field_docs(spec) == {("kind",): R.Doc("X 1.2", {1: "one"}, "a kind")}
    assert spec.parse(b"\x01\x02") == Struct("kind" / Int8ub, "rest" / Int8ub).parse(b"\x01\x02")
    assert spec.subcons[0].docs == "X 1.2 a kind"
    with pytest.raises(TypeError):
        R.doc(Int8ub, "X 1.2")


def test_enumerations_of_the_tables_are_on_the_declarations():
    from dicomwire.specs.dicom import tables as T
    docs = R.field_docs(P.PDU)
    assert docs[("pdu_type",)].enum is T.PDU_TYPES
    assert docs[("pdu_type",)].ref == "PS3.8 9.3.1"
    assert R.field_docs(P.AbortBody)[("source",)].enum is T.ABORT_SOURCES
    assert R.field_docs(P.AssociateRJBody)[("reason",)].enum is T.REJECT_REASONS
    assert R.field_docs(P.PresentationContextACItem)[("body", "result")].enum \
        is T.PRESENTATION_CONTEXT_RESULTS
    for decl in P.ITEMS.values():
        d = R.field_docs(decl)[("item_type",)]
        assert d.enum is T.ITEM_TYPES and d.ref.startswith(("PS3.8 ", "PS3.7 "))
    # a header made from a declaration keeps its documentation
    assert R.field_docs(P.PDUHeader)[("length",)].ref == "PS3.8 9.3.1"


_WIDTH = {"uint8": 1, "uint16": 2, "uint32": 4}


def test_the_field_registry_reads_references_from_the_declarations():
    from dicomwire.plugins.dicom.fields import FIELDS
    bound = [f for f in FIELDS if f.spec is not None]
    assert len(bound) >= 25
    for f in bound:
        decl, path = f.spec
        d = f.doc()
        assert d is not None and d.ref and d.ref.startswith(("PS3.7 ", "PS3.8 ")), f.name
        named = R.named_fields(decl)[path]
        if f.type in _WIDTH:
            # the registry's type is the declaration's width
            assert R.struct_of(Struct(named)).size == _WIDTH[f.type], f.name


# -- the engine's link headers (dicomwire.headers) -------------------------------

from dicomwire import headers as H  # noqa: E402


@given(st.binary(min_size=54, max_size=54))
def test_the_plain_segment_check_reads_what_the_declarations_say(frame):
    parsed = H.PlainSegment.parse(frame)
    want = tuple(parsed[a][b] for a, b in (n.split(".") for n in H.PLAIN_FIELDS))
    assert H.PLAIN.unpack_from(frame, 0) == want
    assert R.struct_names(H.PlainSegment, H.PLAIN_FIELDS) == H.PLAIN_FIELDS


@given(st.binary(min_size=20, max_size=20), st.binary(min_size=20, max_size=20))
def test_link_header_fast_paths_agree_with_their_declarations(ip, tcp):
    pi, pt = H.IPv4Header.parse(ip), H.TCPHeader.parse(tcp)
    assert H.IPV4_HEAD.unpack_from(ip, 0) == tuple(pi[n] for n in H.IPV4_LEADING)
    assert H.TCP_HEAD.unpack_from(tcp, 0) == tuple(pt[n] for n in H.TCP_FIELDS)
    assert H.IPV4.unpack(ip) == tuple(pi[n] for n in R.struct_names(H.IPv4Header))
    assert H.IPV4.pack(*H.IPV4.unpack(ip)) == H.IPv4Header.build(pi)
    assert H.TCP.pack(*H.TCP.unpack(tcp)) == H.TCPHeader.build(pt)


def test_only_skips_the_other_fields_and_drops_trailing_skips():
    assert R.struct_format(H.TCPHeader, only=("seq",)) == ">2x2xL"
    with pytest.raises(KeyError):
        R.struct_format(H.TCPHeader, only=("nope",))
