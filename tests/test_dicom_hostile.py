"""The DICOM stream dissector against hostile, broken and odd input.

:class:`~dicomwire.plugins.dicom.dissector.DicomStream` is driven directly
(a fake stream, a plugin host with the DICOM hook specs and a collecting
plugin) with byte streams built from the spec pack (``build_pdu``,
``encode_command``) and then damaged by hand, in every chunking; and end to
end through pcap files written by ``tests/capgen.py`` and
``dicomwire.pipeline.run``.

Each case checks what is reported (``pdu.problems``, ``message.problems``,
``message.complete``) and that nothing raises: driven directly an exception
would propagate; through the pipeline it would land in ``host.errors``.
"""

from __future__ import annotations

import random
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capgen as g

import dicomwire.plugins.dicom as dicom_plugin
from dicomwire.config import Config
from dicomwire.hookspecs import hookimpl
from dicomwire.host import PluginHost
from dicomwire.plugins.dicom import detect, hookspecs
from dicomwire.plugins.dicom.dissector import SYNC, SYNC_WINDOW, DicomStream
from dicomwire.specs.dicom.command import encode_command
from dicomwire.specs.dicom.pdu import build_pdu, item
from support import Recorder, record

# --------------------------------------------------------------------------
# Building blocks: PDUs from the spec pack, raw bytes for the broken ones
# --------------------------------------------------------------------------

from dicomgen import (
    VERIFICATION,
    CT_STORAGE,
    IMPLICIT_LE,
    EXPLICIT_LE,
    APP_CONTEXT,
    NO_DATA,
    assoc_rq,
    assoc_ac,
    pdata,
    raw_pdu,
    raw_pdv,
    element,
    ECHO_RQ,
    ECHO_RSP,
    STORE_RQ,
    STORE_RSP,
    DATASET,
    RELEASE_RQ,
    RELEASE_RP,
    ABORT,
    REJECT,
    RQ,
    AC,
    valid_session,
)


class FakeStream:
    """What DicomStream reads of a dicomwire.tcp.Stream."""

    def __init__(self, client_known=True):
        self.id = 0
        self.client = (b"\x7f\0\0\1", 40000)
        self.server = (b"\x7f\0\0\1", 104)
        self.client_known = client_known
        self.last_ts = 0
        self.close_reason = "fin"                  # the stream closed (not cut by the capture)
        from dicomwire.tcp import Direction
        self.dirs = (Direction(), Direction())     # counters (zero windows) per side


def pdu_row(pdu):
    return dict(
        dir=pdu.direction, type=pdu.type, length=pdu.length, offset=pdu.offset,
        skipped=pdu.skipped, lead=pdu.lead, problems=list(pdu.problems), complete=pdu.complete,
        frames=(pdu.first_frame, pdu.last_frame),
        pdvs=[(v.context_id, v.flags, v.length, v.offset) for v in pdu.pdvs],
        decoded=pdu.decoded is not None, assoc=pdu.assoc.id if pdu.assoc else None)


def message_row(m):
    data = m.dataset_bytes() if m.has_dataset else None
    if data is not None:
        assert isinstance(data, bytes), type(data)
    return dict(
        dir=m.direction, cid=m.context_id, name=m.name, command=m.command,
        complete=m.complete, problems=list(m.problems), data=data,
        dataset_len=m.dataset_len, missing=m.dataset_missing,
        frames=(m.first_frame, m.last_frame), paired=m.request is not None,
        assoc=m.assoc.id if m.assoc else None)


class Collect(Recorder):
    """Records everything the DICOM hooks report, as plain data: PDUs,
    messages, the associations as they start (``started``) and, in order,
    each association's start and end (``events``)."""

    def __init__(self):
        super().__init__(pdu=pdu_row, message=message_row, start=Recorder.keep)
        self.events = []

    @hookimpl
    def dicomwire_association_start(self, assoc):
        super().dicomwire_association_start(assoc)
        self.events.append(("start", assoc.id, assoc.negotiated))

    @hookimpl
    def dicomwire_association_end(self, assoc):
        self.events.append(("end", assoc.id, assoc.end, assoc.calling_ae, assoc.called_ae))

    def summary(self):
        return self.pdus, self.messages, self.events

    def names(self):
        return [m["name"] for m in self.messages]

    def complete(self):
        return [m["name"] for m in self.messages if m["complete"]]


def make(client_known=True):
    host = PluginHost(builtins={}, entry_points=False)
    host.pm.add_hookspecs(hookspecs)
    col = Collect()
    host.register(col, "collect")
    ds = DicomStream(FakeStream(client_known), host, Config(), dicom_plugin._Counter())
    return ds, host, col


class Gap:
    def __init__(self, direction, size):
        self.direction, self.size = direction, size


def feed(ds, segments, splits=None, view=False, close=True, check=None):
    """Feed (direction, bytes) segments (or :class:`Gap`) with the right stream
    offsets, segment i as frame i + 1; ``splits[i]``: cut points inside
    segment i; ``view``: pass memoryviews (as the reassembler's out-of-order
    path does); ``check(ds)`` runs after every chunk."""
    off = [0, 0]
    for i, seg in enumerate(segments):
        frame, ts = i + 1, (i + 1) * 1000
        if isinstance(seg, Gap):
            ds.gap(seg.direction, off[seg.direction], seg.size, frame, ts)
            off[seg.direction] += seg.size
            continue
        d, b = seg
        cuts = sorted(set(c for c in (splits[i] if splits else ()) if 0 < c < len(b)))
        for a, z in zip([0] + cuts, cuts + [len(b)]):
            piece = b[a:z]
            ds.data(d, off[d] + a, memoryview(piece) if view else piece, frame, ts)
            if check is not None:
                check(ds)
        off[d] += len(b)
    if close:
        ds.close()


def decode(segments, client_known=True, **kw):
    ds, host, col = make(client_known)
    feed(ds, segments, **kw)
    assert host.errors == [], host.errors
    return col, ds


def client_stream(*parts):
    """Everything on direction 0 after a valid A-ASSOCIATE-RQ."""
    return [(0, RQ), (0, b"".join(parts))]


# --------------------------------------------------------------------------
# The valid session, and re-chunking
# --------------------------------------------------------------------------

def test_valid_session_decodes():
    col, ds = decode(valid_session())
    assert [p["type"] for p in col.pdus] == [1, 2, 4, 4, 4, 4, 4, 4, 4, 5, 6]
    assert all(p["complete"] and not p["problems"] and not p["skipped"] for p in col.pdus)
    assert col.names() == ["C-ECHO-RQ", "C-ECHO-RSP", "C-STORE-RQ", "C-STORE-RSP"]
    assert all(m["complete"] and not m["problems"] for m in col.messages)
    store = col.messages[2]
    assert store["data"] == DATASET and store["frames"] == (5, 6)
    assert col.messages[1]["paired"] and col.messages[3]["paired"]
    a = col.started[0]
    assert (a.calling_ae, a.called_ae, a.end) == ("MODALITY", "STORESCP", "released")
    assert a.contexts[3].transfer_syntax == IMPLICIT_LE and a.contexts[3].accepted
    assert a.max_pdu == [16384, 32768] and a.pending == {}


BASELINE = None


def _baseline():
    global BASELINE
    if BASELINE is None:
        BASELINE = decode(valid_session())[0].summary()
    return BASELINE


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_rechunking_gives_the_same_result(data):
    segments = valid_session()
    splits = [data.draw(st.lists(st.integers(1, len(b) - 1), max_size=12), label=f"cuts{i}")
              for i, (_d, b) in enumerate(segments)]
    view = data.draw(st.booleans(), label="memoryview")
    col, _ = decode(segments, splits=splits, view=view)
    assert col.summary() == _baseline()


def test_one_byte_chunks_give_the_same_result():
    segments = valid_session()
    splits = [range(1, len(b)) for _d, b in segments]
    for view in (False, True):
        col, _ = decode(segments, splits=splits, view=view)
        assert col.summary() == _baseline()


# --------------------------------------------------------------------------
# PDU headers: absurd lengths, zero lengths, unknown types, reserved bytes
# --------------------------------------------------------------------------

def test_pdata_length_ffffffff_is_trusted_without_harm():
    # A 4 GiB P-DATA-TF is legal framing (PS3.8 9.3.5: u32 length): its
    # first PDV decodes; the rest of the direction is inside it, so the
    # PDU is reported cut short when the stream ends. Nothing is buffered.
    huge = raw_pdu(4, raw_pdv(len(ECHO_RQ) + 2, 1, 3, ECHO_RQ), length=0xFFFFFFFF)
    stream = client_stream(huge, pdata((1, 3, ECHO_RQ)), RELEASE_RQ)
    col, ds = decode(stream, close=False)
    assert col.names() == ["C-ECHO-RQ"] and col.messages[0]["complete"]
    assert len(ds.sides[0].hbuf) <= 6
    ds.close()
    last = col.pdus[-1]
    assert last["type"] == 4 and last["length"] == 0xFFFFFFFF and not last["complete"]
    assert "stream ended inside this PDU" in last["problems"]


@pytest.mark.parametrize("ptype", [1, 2, 3, 5, 6, 7])
def test_association_pdu_length_ffffffff_resyncs(ptype):
    # Association PDUs are buffered whole, so an implausible length (more
    # than 1 MiB) is refused: reported, then the next real header is found.
    bogus = raw_pdu(ptype, b"\x00\x01" + b"Z" * 40, length=0xFFFFFFFF)
    col, _ = decode([(0, bogus + RQ + pdata((1, 3, ECHO_RQ)) + RELEASE_RQ)])
    first = col.pdus[0]
    assert first["type"] == ptype and not first["complete"]
    assert "implausible" in first["problems"][0]
    assert [p["type"] for p in col.pdus[1:]] == [1, 4, 5]
    assert col.pdus[1]["skipped"] == 5 + 42 and not col.pdus[1]["problems"]
    assert col.complete() == ["C-ECHO-RQ"]
    assert col.started[-1].calling_ae == "MODALITY"


@pytest.mark.parametrize("ptype", range(1, 8))
def test_pdu_length_zero(ptype):
    col, _ = decode(client_stream(raw_pdu(ptype), pdata((1, 3, ECHO_RQ))))
    zero = col.pdus[1]
    assert zero["type"] == ptype and zero["length"] == 0
    assert zero["problems"] and not zero["complete"]
    # Framing survives: the next PDU is read right after the 6-byte header.
    assert col.pdus[2]["type"] == 4 and col.pdus[2]["offset"] == len(RQ) + 6
    assert not col.pdus[2]["problems"] and col.complete() == ["C-ECHO-RQ"]
    # An A-RELEASE-RQ that is never answered ends "closed" (the expert says
    # the A-RELEASE-RP is missing); only the RP ends it "released".
    end = {3: "rejected", 6: "released", 7: "aborted"}.get(ptype, "closed")
    assert col.events[-1][:3] == ("end", 0, end)


def test_lone_zero_length_associate_rq_still_creates_the_association():
    col, _ = decode([(0, raw_pdu(1))])
    assert col.pdus[0]["problems"] and col.events[0] == ("start", 0, True)
    assert col.started[0].calling_ae is None


@pytest.mark.parametrize("ptype", [0x00, 0x08, 0x09, 0x80, 0xFF])
def test_unknown_pdu_type_then_resync(ptype):
    junk = raw_pdu(ptype, b"\xde\xad\xbe\xef\xfe\xed")
    col, _ = decode(client_stream(junk, pdata((1, 3, ECHO_RQ)), junk, RELEASE_RQ))
    types = [p["type"] for p in col.pdus]
    assert types == [1, ptype, 4, ptype, 5]
    for p in (col.pdus[1], col.pdus[3]):
        assert f"unknown PDU type 0x{ptype:02x}" in p["problems"][0] and not p["complete"]
    # The resync skipped the rest of the bogus header and its body.
    assert col.pdus[2]["skipped"] == 5 + 6 and col.pdus[2]["offset"] == len(RQ) + 12
    assert col.pdus[4]["skipped"] == 11 and not col.pdus[4]["problems"]
    assert col.complete() == ["C-ECHO-RQ"] and col.events[-1][2] == "closed"   # RQ, no RP


def test_reserved_header_byte_is_reported_and_the_pdu_decoded():
    rq = bytearray(RQ)
    rq[1] = 0x55
    pd = bytearray(pdata((1, 3, ECHO_RQ)))
    pd[1] = 0xFF
    rel = bytearray(RELEASE_RQ)
    rel[1] = 1
    col, _ = decode([(0, bytes(rq)), (0, bytes(pd) + bytes(rel))])
    assert [p["type"] for p in col.pdus] == [1, 4, 5]
    assert [p["problems"] for p in col.pdus] == [
        ["reserved byte of the PDU header is 0x55, not 0"],
        ["reserved byte of the PDU header is 0xff, not 0"],
        ["reserved byte of the PDU header is 0x01, not 0"]]
    assert all(p["decoded"] for p in (col.pdus[0], col.pdus[2]))
    assert not any(p["complete"] for p in col.pdus)
    assert col.started[0].calling_ae == "MODALITY" and col.complete() == ["C-ECHO-RQ"]
    assert col.events[-1][2] == "closed"               # an A-RELEASE-RQ without its RP


# --------------------------------------------------------------------------
# Items inside A-ASSOCIATE: overruns, zero lengths
# --------------------------------------------------------------------------

def _patch_item(pdu: bytes, header: bytes, new_len: int) -> bytes:
    """Set the 16-bit length of the first item starting with ``header``."""
    b = bytearray(pdu)
    i = b.index(header)
    b[i + 2:i + 4] = struct.pack(">H", new_len)
    return bytes(b)


@pytest.mark.parametrize("what", ["sub-item past its item", "item past the PDU",
                                  "transfer syntax past its context", "last item truncated"])
def test_item_overrunning_its_parent(what):
    if what == "sub-item past its item":
        rq = _patch_item(RQ, b"\x51\x00\x00\x04", 0x400)           # max length in user info
    elif what == "item past the PDU":
        rq = _patch_item(RQ, b"\x50\x00", 0x2000)                   # user info item
    elif what == "transfer syntax past its context":
        rq = _patch_item(RQ, b"\x40\x00\x00\x13" + EXPLICIT_LE.encode(), 0x100)
    else:
        rq = RQ[:-3]
        rq = rq[:2] + struct.pack(">I", len(rq) - 6) + rq[6:]
    col, _ = decode([(0, rq), (1, AC), (0, pdata((1, 3, ECHO_RQ))),
                     (1, pdata((1, 3, ECHO_RSP)))])
    bad = col.pdus[0]
    assert bad["type"] == 1 and not bad["complete"]
    assert bad["problems"] and bad["problems"][0].startswith("malformed A-ASSOCIATE-RQ")
    # Decoded as far as possible: the association exists, with its AE titles
    # and whatever items parsed on their own.
    assert bad["decoded"] and col.events[0] == ("start", 0, True)
    a = col.started[0]
    assert (a.calling_ae, a.called_ae, a.application_context) == ("MODALITY", "STORESCP",
                                                                  APP_CONTEXT)
    if what == "transfer syntax past its context":
        assert 1 not in a.contexts or a.contexts[1].abstract_syntax is None
        assert a.contexts[3].abstract_syntax == CT_STORAGE
    else:
        assert a.contexts[1].abstract_syntax == VERIFICATION
        assert a.contexts[3].transfer_syntaxes == [EXPLICIT_LE, IMPLICIT_LE]
    assert col.pdus[1]["type"] == 2 and not col.pdus[1]["problems"]
    assert col.complete() == ["C-ECHO-RQ", "C-ECHO-RSP"]


def test_ac_with_overrunning_item_still_accepts_the_earlier_contexts():
    ac = _patch_item(AC, b"\x50\x00", 0x3000)
    col, _ = decode([(0, RQ), (1, ac), (0, pdata((3, 3, STORE_RQ), (3, 2, DATASET)))])
    assert col.pdus[1]["problems"] and col.pdus[1]["decoded"]
    a = col.started[0]
    assert a.contexts[3].accepted and a.contexts[3].transfer_syntax == IMPLICIT_LE
    assert a.max_pdu[1] is None                 # it was in the broken item
    assert col.messages[0]["complete"] and col.messages[0]["data"] == DATASET


def test_zero_length_items():
    rq = build_pdu("A-ASSOCIATE-RQ", called_ae_title="SCP", calling_ae_title="SCU",
                   variable_items=[item(0x10, ""),
                                   item(0x20, context_id=1, sub_items=[item(0x30, ""),
                                                                       item(0x40, "")]),
                                   item(0x50, sub_items=[item(0x52, ""), item(0x55, "")]),
                                   dict(item_type=0x7E, body=b"")])
    ac = build_pdu("A-ASSOCIATE-AC", called_ae_title="SCP", calling_ae_title="SCU",
                   variable_items=[item(0x21, context_id=1, result=0, sub_items=[]),
                                   item(0x50, sub_items=[])])
    col, _ = decode([(0, rq), (1, ac), (0, pdata((1, 3, ECHO_RQ)))])
    assert [p["problems"] for p in col.pdus] == [[], [], []]
    a = col.started[0]
    assert (a.calling_ae, a.called_ae, a.application_context) == ("SCU", "SCP", "")
    assert a.contexts[1].transfer_syntaxes == [""] and a.contexts[1].accepted
    assert col.complete() == ["C-ECHO-RQ"]


def test_zero_length_item_headers_only():
    # An item of length 0 where a context id and sub-items are required.
    body = RQ[6:74] + b"\x20\x00\x00\x00" + b"\x50\x00\x00\x00" + b"\x21\x00\x00\x00"
    rq = raw_pdu(1, body)
    col, _ = decode([(0, rq), (0, pdata((1, 3, ECHO_RQ)))])
    assert col.pdus[0]["problems"] and col.started[0].calling_ae == "MODALITY"
    assert col.complete() == ["C-ECHO-RQ"]


# --------------------------------------------------------------------------
# PDVs: lengths, flags, context ids
# --------------------------------------------------------------------------

@pytest.mark.parametrize("plen", [0, 1])
def test_pdv_length_below_two(plen):
    bad = raw_pdu(4, raw_pdv(plen, 1, 3) + b"\0\0\0\0")
    col, _ = decode(client_stream(bad, pdata((1, 3, ECHO_RQ)), RELEASE_RQ))
    p = col.pdus[1]
    assert p["problems"] == [f"invalid PDV length {plen} at stream offset {len(RQ) + 6} "
                             f"(6 bytes left in the PDU); resynchronising"]
    assert not p["complete"] and p["pdvs"] == []
    assert [q["type"] for q in col.pdus[2:]] == [4, 5]
    assert col.complete() == ["C-ECHO-RQ"]


def test_pdv_length_two_is_an_empty_fragment():
    col, _ = decode(client_stream(pdata((1, 3, b"")), pdata((1, 3, ECHO_RQ))))
    assert not col.pdus[1]["problems"] and col.pdus[1]["pdvs"][0][:3] == (1, 3, 2)
    empty, echo = col.messages
    assert empty["command"] == {}
    assert empty["problems"] == ["command set without Command Field (0000,0100)"]
    assert echo["name"] == "C-ECHO-RQ" and echo["complete"] and not echo["problems"]


@pytest.mark.parametrize("extra", [1, 2, 100, 0x7FFFFFFF])
def test_pdv_overrunning_its_pdu(extra):
    body = raw_pdv(len(ECHO_RQ) + 2 + extra, 1, 3, ECHO_RQ)
    col, _ = decode(client_stream(raw_pdu(4, body), pdata((1, 3, ECHO_RQ)), RELEASE_RQ))
    p = col.pdus[1]
    assert "invalid PDV length" in p["problems"][0] and not p["complete"]
    assert [q["type"] for q in col.pdus[2:]] == [4, 5] and not col.pdus[2]["problems"]
    assert col.complete() == ["C-ECHO-RQ"] and len(col.messages) == 1


@pytest.mark.parametrize("trailing", [1, 3, 5])
def test_bytes_after_the_last_pdv_too_short_for_another(trailing):
    body = raw_pdv(len(ECHO_RQ) + 2, 1, 3, ECHO_RQ) + b"\x01" * trailing
    col, _ = decode(client_stream(raw_pdu(4, body), pdata((1, 3, ECHO_RQ)), RELEASE_RQ))
    p = col.pdus[1]
    assert p["problems"] == [f"{trailing} byte(s) at the end of the P-DATA-TF, too short "
                             f"for a PDV"]
    # The PDU's length is kept: the next PDU follows, nothing skipped.
    assert col.pdus[2]["offset"] == len(RQ) + 6 + len(body) and not col.pdus[2]["skipped"]
    assert col.complete() == ["C-ECHO-RQ", "C-ECHO-RQ"]


@pytest.mark.parametrize("flags", [0x04, 0x07, 0x0B, 0x10, 0x80, 0xFE, 0xFF])
def test_bad_pdv_flags_are_reported(flags):
    col, _ = decode(client_stream(pdata((1, flags, ECHO_RQ), (1, 3, ECHO_RQ)), RELEASE_RQ))
    p = col.pdus[1]
    assert p["problems"] == [f"invalid PDV flags 0x{flags:02x} (context 1)"]
    assert [v[:2] for v in p["pdvs"]] == [(1, flags), (1, 3)]
    assert col.pdus[2]["type"] == 5
    assert all(m["name"] in ("C-ECHO-RQ", "Data Set") for m in col.messages)
    assert col.messages[-1]["name"] == "C-ECHO-RQ" and col.messages[-1]["complete"]
    if flags & 3 == 3:                      # command, last: both decode
        assert col.complete() == ["C-ECHO-RQ", "C-ECHO-RQ"]
    elif not flags & 1:                     # data set bits: a data set without command
        assert not col.messages[0]["complete"] and col.messages[0]["command"] is None
        assert col.messages[0]["data"] == ECHO_RQ


def test_every_invalid_pdv_flags_value():
    for flags in range(4, 256):
        col, _ = decode(client_stream(pdata((1, flags, ECHO_RQ)), pdata((1, 3, ECHO_RQ))))
        assert col.pdus[1]["problems"] == [f"invalid PDV flags 0x{flags:02x} (context 1)"]
        assert col.pdus[2]["problems"] == [] and col.messages[-1]["complete"]
        assert col.messages[-1]["name"] == "C-ECHO-RQ"


def test_pdv_on_even_context_id():
    col, _ = decode(client_stream(pdata((2, 3, ECHO_RQ)), pdata((0, 3, ECHO_RQ))))
    assert col.pdus[1]["problems"] == ["PDV on even presentation context id 2"]
    assert col.pdus[2]["problems"] == ["PDV on even presentation context id 0"]
    assert [(m["cid"], m["name"], m["complete"]) for m in col.messages] == [
        (2, "C-ECHO-RQ", True), (0, "C-ECHO-RQ", True)]


def test_a_pdv_on_each_of_the_256_context_ids():
    pdus = [pdata((cid, 3, ECHO_RQ)) for cid in range(256)]
    col, _ = decode(client_stream(*pdus))
    assert len(col.pdus) == 257
    for cid in range(256):
        p = col.pdus[1 + cid]
        assert p["pdvs"][0][0] == cid
        assert p["problems"] == ([] if cid & 1 else [f"PDV on even presentation context id {cid}"])
    assert [m["cid"] for m in col.messages] == list(range(256))
    assert all(m["complete"] and m["name"] == "C-ECHO-RQ" for m in col.messages)


def test_short_pdata_bytes_never_reach_a_context_0_message():
    # Context 0 has a C-STORE waiting for its data set; a P-DATA too short for
    # a PDV header is skipped as opaque bytes, not added to that data set, and
    # a gap among those bytes is not counted against it.
    short = raw_pdu(4, b"XYZ")
    for segments in ([(0, short)], [(0, short[:7]), Gap(0, 2)]):
        col, _ = decode(client_stream(pdata((0, 3, STORE_RQ))) + segments
                        + [(0, pdata((0, 2, DATASET)))])
        assert col.pdus[2]["problems"][0] == "P-DATA-TF length 3 is too short for a PDV"
        (store,) = col.messages
        assert store["name"] == "C-STORE-RQ" and store["data"] == DATASET
        assert store["complete"] and store["missing"] == 0 and not store["problems"]


# --------------------------------------------------------------------------
# PDV -> message assembly on odd sequences
# --------------------------------------------------------------------------

def test_data_pdvs_without_a_command():
    col, _ = decode(client_stream(pdata((3, 0, DATASET[:100])), pdata((3, 2, DATASET[100:])),
                                  pdata((1, 3, ECHO_RQ))))
    orphan, echo = col.messages
    assert orphan["name"] == "Data Set" and not orphan["complete"]
    assert orphan["problems"] == ["data set without its command (not captured)"]
    assert orphan["data"] == DATASET and orphan["command"] is None
    assert echo["complete"] and not echo["problems"]


def test_orphan_data_fragments_are_not_glued_to_the_next_command():
    col, _ = decode(client_stream(pdata((3, 0, b"old data")),
                                  pdata((3, 3, STORE_RQ), (3, 2, DATASET))))
    orphan, store = col.messages
    assert orphan["name"] == "Data Set" and orphan["data"] == b"old data"
    assert not orphan["complete"]
    assert "incomplete: a new command arrived before the data set ended" in orphan["problems"]
    assert store["name"] == "C-STORE-RQ" and store["complete"] and store["data"] == DATASET
    assert not store["problems"]


def test_new_command_while_the_previous_awaits_its_data_set():
    col, _ = decode(client_stream(pdata((3, 3, STORE_RQ)), pdata((3, 3, STORE_RQ)),
                                  pdata((3, 2, DATASET))))
    first, second = col.messages
    assert first["name"] == "C-STORE-RQ" and not first["complete"] and first["data"] is None
    assert first["problems"] == ["incomplete: a new command arrived before its data set"]
    assert second["complete"] and second["data"] == DATASET


def test_data_set_pdv_between_command_fragments():
    col, _ = decode(client_stream(pdata((3, 1, STORE_RQ[:20]), (3, 0, DATASET[:10]),
                                        (3, 3, STORE_RQ[20:]), (3, 2, DATASET[10:]))))
    (m,) = col.messages
    assert m["name"] == "C-STORE-RQ" and "data set PDV before the last command fragment" \
        in m["problems"]
    assert m["data"] == DATASET


def test_message_open_at_close_is_reported_incomplete():
    col, _ = decode(client_stream(pdata((3, 3, STORE_RQ)), pdata((3, 0, DATASET[:50]))))
    (m,) = col.messages
    assert not m["complete"] and m["dataset_len"] == 50
    assert m["problems"] == ["incomplete: association closed before the message ended"]


def test_message_after_the_association_ended_is_still_reported():
    # P-DATA after an A-ABORT: the message is on an ended association; at
    # close it is reported, incomplete, not silently dropped.
    col, _ = decode([(0, RQ), (1, ABORT), (0, pdata((3, 3, STORE_RQ), (3, 0, DATASET[:9])))])
    (m,) = col.messages
    assert m["name"] == "C-STORE-RQ" and not m["complete"] and m["dataset_len"] == 9
    assert m["problems"] == ["incomplete: stream closed before the message ended"]
    assert col.events[-1][2] == "aborted"


@pytest.mark.parametrize("case", ["overrun", "outside group 0000", "truncated header",
                                  "only garbage"])
def test_malformed_command_sets(case):
    if case == "overrun":
        cmd = ECHO_RQ + struct.pack("<HHI", 0, 0x0902, 1000) + b"abc"
        want = "element (0000,0902) length 1000 overruns the command set"
    elif case == "outside group 0000":
        cmd = ECHO_RQ + element(0x0008, 0x0018, b"1.2.3")
        want = "element (0008,0018) outside group 0000 in a command set"
    elif case == "truncated header":
        cmd = ECHO_RQ + b"\x00\x00\x00"
        want = "3 trailing bytes, too short for an element header"
    else:
        cmd = b"\xff" * 7
        want = "7 trailing bytes"
    col, _ = decode(client_stream(pdata((1, 3, cmd)), pdata((1, 3, ECHO_RQ))))
    bad, good = col.messages
    assert any(p.startswith(want) for p in bad["problems"]), bad["problems"]
    if case != "only garbage":
        assert bad["name"] == "C-ECHO-RQ" and bad["command"]["MessageID"] == 1
    else:
        assert "command set without Command Field (0000,0100)" in bad["problems"]
    assert good["complete"] and not good["problems"]


def test_ten_thousand_tiny_pdus():
    # A C-STORE whose command comes one byte per PDU and whose data set comes
    # in 10,000 one-byte P-DATA-TF PDUs, then 1,000 C-ECHOs: counts exact,
    # time reasonable.
    data = bytes(random.Random(7).randrange(256) for _ in range(10_000))
    parts = [pdata((3, 1, STORE_RQ[i:i + 1])) for i in range(len(STORE_RQ) - 1)]
    parts.append(pdata((3, 3, STORE_RQ[-1:])))
    parts += [pdata((3, 0, data[i:i + 1])) for i in range(len(data) - 1)]
    parts.append(pdata((3, 2, data[-1:])))
    parts += [pdata((1, 3, ECHO_RQ))] * 1000
    blob = b"".join(parts)
    segments = [(0, RQ)] + [(0, blob[i:i + 1460]) for i in range(0, len(blob), 1460)]
    t0 = time.perf_counter()
    col, _ = decode(segments)
    elapsed = time.perf_counter() - t0
    assert len(col.pdus) == 1 + len(parts)
    assert all(not p["problems"] for p in col.pdus)
    store = col.messages[0]
    assert store["complete"] and store["data"] == data and store["name"] == "C-STORE-RQ"
    assert col.names()[1:] == ["C-ECHO-RQ"] * 1000 and len(col.complete()) == 1001
    assert elapsed < 5, elapsed


# --------------------------------------------------------------------------
# Gaps and captures that begin mid-stream
# --------------------------------------------------------------------------

def test_gap_inside_pdv_data_keeps_framing():
    big = pdata((3, 3, STORE_RQ), (3, 2, DATASET))
    cut = big.index(DATASET) + 200
    segments = [(0, RQ), (0, big[:cut]), Gap(0, 300), (0, big[cut + 300:]),
                (0, pdata((1, 3, ECHO_RQ)) + pdata((3, 3, STORE_RQ), (3, 2, DATASET)))]
    col, _ = decode(segments)
    assert [p["type"] for p in col.pdus] == [1, 4, 4, 4]
    damaged = col.pdus[1]
    assert damaged["problems"] == [f"300 bytes missing from the capture at stream offset "
                                   f"{len(RQ) + cut}"]
    assert not damaged["complete"] and not col.pdus[2]["problems"] and not col.pdus[2]["skipped"]
    store, echo, store2 = col.messages
    assert store["name"] == "C-STORE-RQ" and not store["complete"]
    assert store["missing"] == 300 and store["dataset_len"] == len(DATASET) - 300
    assert echo["complete"] and store2["complete"] and store2["data"] == DATASET


def test_gap_exactly_to_the_end_of_a_pdv():
    big = pdata((3, 3, STORE_RQ), (3, 2, DATASET))
    cut = len(big) - 10
    col, _ = decode([(0, RQ), (0, big[:cut]), Gap(0, 10), (0, pdata((1, 3, ECHO_RQ)))])
    store, echo = col.messages
    assert store["missing"] == 10 and not store["complete"] and echo["complete"]
    assert not col.pdus[2]["skipped"]


def test_gap_covering_a_pdu_header_resyncs():
    big = pdata((3, 3, STORE_RQ), (3, 2, DATASET))
    echo = pdata((1, 3, ECHO_RQ))
    # The gap swallows the end of the first PDU and the header of the next.
    segments = [(0, RQ), (0, big[:-10]), Gap(0, 10 + 8), (0, echo[8:] + big + echo + RELEASE_RQ)]
    col, _ = decode(segments)
    types = [p["type"] for p in col.pdus]
    assert types == [1, 4, 4, 4, 5]
    assert "PDU cut short" in col.pdus[1]["problems"][0]
    assert col.pdus[2]["skipped"] == len(echo) - 8
    # The damaged C-STORE waits for the rest of its data set after the resync;
    # the next command on its context ends it, incomplete, with the gap noted.
    cut = col.messages[0]
    assert not cut["complete"] and cut["problems"][0].startswith("18 bytes missing")
    assert "incomplete: a new command arrived before its data set" in cut["problems"]
    assert [m["name"] for m in col.messages[1:] if m["complete"]] == ["C-STORE-RQ", "C-ECHO-RQ"]
    assert col.messages[1]["data"] == DATASET
    assert col.events[-1][2] == "closed"               # an A-RELEASE-RQ without its RP


@pytest.mark.parametrize("where", ["pdu header", "pdv header", "association pdu", "in sync"])
def test_gap_anywhere_never_raises_and_recovers(where):
    big = pdata((3, 3, STORE_RQ), (3, 2, DATASET))
    if where == "pdu header":
        segments = [(0, RQ), (0, big[:3]), Gap(0, len(big) - 3)]
    elif where == "pdv header":
        segments = [(0, RQ), (0, big[:8]), Gap(0, len(big) - 8)]
    elif where == "association pdu":
        segments = [(0, RQ[:50]), Gap(0, len(RQ) - 50)]
    else:
        segments = [(0, RQ), Gap(0, 5), (0, b"\xee" * 7), Gap(0, 100)]
    segments += [(0, pdata((1, 3, ECHO_RQ)) + RELEASE_RQ)]
    col, _ = decode(segments, client_known=where != "in sync")
    assert col.complete() == ["C-ECHO-RQ"] and col.pdus[-1]["type"] == 5


@pytest.mark.parametrize("start", [10, 150, 700, 1100])
def test_capture_starting_mid_stream_resyncs(start):
    # Bytes begin inside a PDV (client_known false: SYNC from the first byte).
    first = pdata((3, 3, STORE_RQ), (3, 0, DATASET[:600])) + pdata((3, 2, DATASET[600:]))
    later = pdata((1, 3, ECHO_RQ)) + pdata((3, 3, STORE_RQ), (3, 2, DATASET)) + RELEASE_RQ
    assert start < len(first)
    segments = [(0, first[start:] + later), (1, pdata((3, 3, STORE_RSP)) + RELEASE_RP)]
    col, _ = decode(segments, client_known=False)
    # Any PDU found inside the damaged part was a real one.
    lost = [p for p in col.pdus if p["dir"] == 0 and p["offset"] < len(first) - start]
    assert all(not p["problems"] for p in lost)
    assert col.events[0] == ("start", 0, False)
    assert col.complete()[-3:] == ["C-ECHO-RQ", "C-STORE-RQ", "C-STORE-RSP"]
    stores = [m for m in col.messages if m["name"] == "C-STORE-RQ" and m["complete"]]
    assert stores[-1]["data"] == DATASET
    assert col.events[-1][2] == "released"
    first_found = next(p for p in col.pdus if p["dir"] == 0)
    # What precedes the first header is what the capture missed, not a resync.
    assert first_found["lead"] == first_found["offset"] and not first_found["skipped"]


# --------------------------------------------------------------------------
# Garbage
# --------------------------------------------------------------------------

def _bounded(ds):
    for side in ds.sides:
        if side.state == SYNC:
            assert len(side.hbuf) <= SYNC_WINDOW + 6
        else:
            assert len(side.hbuf) <= detect.MAX_ASSOC_PDU + 6


def _hostile_segments(prefix, garbage, suffix, direction):
    segs = list(valid_session()[:4]) if prefix else []
    segs.append((direction, garbage))
    if suffix:
        segs += [(0, pdata((1, 3, ECHO_RQ)) + RELEASE_RQ), (1, RELEASE_RP)]
    return segs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=3000), prefix=st.booleans(), suffix=st.booleans(),
       known=st.booleans(), direction=st.integers(0, 1), data=st.data())
def test_random_garbage_never_raises(garbage, prefix, suffix, known, direction, data):
    segments = _hostile_segments(prefix, garbage, suffix, direction)
    col, _ = decode(segments, client_known=known, check=_bounded)
    splits = [data.draw(st.lists(st.integers(1, max(1, len(b) - 1)), max_size=8))
              for _d, b in segments]
    view = data.draw(st.booleans())
    again, _ = decode(segments, client_known=known, splits=splits, view=view, check=_bounded)
    assert again.summary() == col.summary()
    for p in col.pdus:
        assert not (p["complete"] and p["problems"])


# PDU-shaped garbage: headers of every type with random lengths, PDV headers
# with random lengths / contexts / flags, command-like bytes, and noise.
_pdu_like = st.one_of(
    st.builds(lambda t, r, n, body: raw_pdu(t, body, r, n if n >= 0 else None),
              st.integers(0, 9), st.sampled_from([0, 0, 0, 1, 0xFF]),
              st.one_of(st.just(-1), st.integers(0, 80), st.integers(0, 0xFFFFFFFF)),
              st.binary(max_size=80)),
    st.builds(lambda n, c, f, body: raw_pdu(4, raw_pdv(n, c, f, body)),
              st.one_of(st.integers(0, 40), st.integers(0, 0xFFFFFFFF)),
              st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40)),
    st.builds(lambda c, f, frag: pdata((c, f, frag)), st.integers(0, 255), st.integers(0, 3),
              st.sampled_from([ECHO_RQ, STORE_RQ, DATASET[:50], b"", ECHO_RQ[:11]])),
    st.sampled_from([RQ, AC, RELEASE_RQ, RELEASE_RP, ABORT, REJECT, RQ[:40], AC[7:]]),
    st.binary(max_size=30),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.tuples(st.integers(0, 1), _pdu_like), max_size=20),
       known=st.booleans(), data=st.data())
def test_pdu_shaped_garbage_never_raises_and_is_chunking_invariant(pieces, known, data):
    col, _ = decode(pieces, client_known=known, check=_bounded)
    splits = [data.draw(st.lists(st.integers(1, max(1, len(b) - 1)), max_size=6))
              for _d, b in pieces]
    again, _ = decode(pieces, client_known=known, splits=splits, view=data.draw(st.booleans()),
                      check=_bounded)
    assert again.summary() == col.summary()


def test_a_megabyte_of_garbage_keeps_the_resync_buffer_bounded():
    rng = random.Random(1234)
    noise = rng.randbytes(1 << 20)
    # Candidate-dense garbage too: type bytes followed by zeros everywhere.
    dense = (b"\x04\x00\x00\x00\x00\x10\x00\x00" + b"\x01\x00\x00\x00\x10\x00\x00\x01") * (1 << 16)
    for garbage in (noise, dense, b"\x00" * (1 << 20), b"\x07" * (1 << 20)):
        for known in (True, False):
            ds, host, col = make(known)
            t0 = time.perf_counter()
            feed(ds, [(0, garbage[i:i + 1460]) for i in range(0, len(garbage), 1460)],
                 check=_bounded, close=False)
            assert time.perf_counter() - t0 < 5
            assert len(ds.sides[0].hbuf) <= SYNC_WINDOW + 6
            ds.close()
            assert host.errors == []


def test_resync_after_garbage_finds_the_next_pdus():
    # Garbage without any candidate header (no 0x00 byte): everything after
    # it decodes, whatever the chunking.
    rng = random.Random(99)
    garbage = bytes(rng.randrange(8, 256) for _ in range(50_000))
    tail = pdata((1, 3, ECHO_RQ)) + pdata((3, 3, STORE_RQ), (3, 2, DATASET)) + RELEASE_RQ
    blob = garbage + tail
    for known in (True, False):
        for size in (1, 7, 1460, len(blob)):
            col, _ = decode([(0, blob)], client_known=known, splits=[range(size, len(blob), size)])
            assert col.complete() == ["C-ECHO-RQ", "C-STORE-RQ"]
            found = col.pdus[-4:] if known else col.pdus
            if known:       # the first 6 bytes were read as a header of unknown type
                assert found[0]["offset"] == 0
                assert any("unknown PDU type" in q for q in found[0]["problems"])
                found = found[1:]
            assert [p["type"] for p in found] == [4, 4, 5]
            assert found[0]["offset"] == len(garbage)
            # Known start: a resync after the bad header; late start: lead bytes.
            assert found[0]["skipped" if known else "lead"] == len(garbage) - (1 if known else 0)
            assert not any(p["problems"] for p in found)


# --------------------------------------------------------------------------
# detect: the heuristic, ports, find_pdu
# --------------------------------------------------------------------------

def test_looks_like_associate_rq_accepts_real_requests():
    assert detect.looks_like_associate_rq(RQ)
    assert detect.looks_like_associate_rq(memoryview(RQ))
    assert detect.looks_like_associate_rq(RQ[:74])          # the fixed part is enough
    nul = bytearray(RQ)
    nul[10 + 3:26] = b"\0" * 13                              # NUL padded AE title
    assert detect.looks_like_associate_rq(bytes(nul))
    assert detect.looks_like_associate_rq(assoc_rq(called="A", calling="B" * 16))


@pytest.mark.parametrize("data", [
    AC, REJECT, RELEASE_RQ, RELEASE_RP, ABORT, pdata((1, 3, ECHO_RQ)), b"", b"\x01",
    RQ[:73],                                                 # too short to tell
    bytes([1, 1]) + RQ[2:],                                  # reserved byte set
    RQ[:2] + struct.pack(">I", 67) + RQ[6:],                 # length below the fixed part
    RQ[:2] + struct.pack(">I", detect.MAX_ASSOC_PDU + 1) + RQ[6:],
    RQ[:6] + b"\x00\x02" + RQ[8:],                           # protocol version
    RQ[:10] + b"\x01" * 16 + RQ[26:],                        # control characters
    RQ[:26] + b"\x80" * 16 + RQ[42:],                        # non-ASCII
    RQ[:10] + b" " * 16 + RQ[26:],                           # blank
    RQ[:26] + b"\0" * 16 + RQ[42:],                          # empty
    b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" * 4,
])
def test_looks_like_associate_rq_rejects(data):
    assert not detect.looks_like_associate_rq(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_looks_like_associate_rq_on_garbage(data):
    got = detect.looks_like_associate_rq(data)
    if got:       # only something with the exact shape of an RQ passes
        assert data[0] == 1 and data[1] == 0 and data[6:8] == b"\0\1" and len(data) >= 74


def test_associate_rq_prefixes_wait_for_more():
    """Fewer than 74 bytes of a real RQ: undecided (None), never False; a
    prefix that already breaks the layout: False at once."""
    for n in range(1, detect.RQ_FIXED):
        assert detect.associate_rq(RQ[:n]) is None, n
        assert detect.associate_rq(memoryview(RQ)[:n]) is None, n
    assert detect.associate_rq(RQ[:detect.RQ_FIXED]) is True
    assert detect.associate_rq(RQ) is True
    for bad in (b"\x02", b"\x01\x01", AC[:6], RQ[:2] + struct.pack(">I", 67),
                RQ[:6] + b"\x00\x02", RQ[:12] + b"\x01", b"GET / HTTP/1.1\r\n",
                pdata((1, 3, ECHO_RQ))[:40]):
        assert detect.associate_rq(bad) is False, bad


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_associate_rq_undecided_only_on_short_prefixes(data):
    got = detect.associate_rq(data)
    assert got in (True, False, None)
    if got is None:
        assert len(data) < detect.RQ_FIXED
        assert not data or data[0] == 1
    assert detect.looks_like_associate_rq(data) == (got is True)


def test_parse_ports():
    assert detect.parse_ports("104,3200,50000-51000") == [(104, 104), (3200, 3200),
                                                           (50000, 51000)]
    assert detect.parse_ports(" 104 , 11112 ") == [(104, 104), (11112, 11112)]
    assert detect.parse_ports("1-65535") == [(1, 65535)]
    ranges = detect.parse_ports("104,3200,50000-51000")
    for port, ok in [(104, True), (3200, True), (50000, True), (50500, True), (51000, True),
                     (103, False), (105, False), (49999, False), (51001, False), (11112, False)]:
        assert detect.port_matches(ranges, port) is ok


@pytest.mark.parametrize("bad", ["abc", "104,x", "0", "65536", "200-100", "1-2-3", "-5",
                                 "104;105", "104-", "70000-70001", "1.5", "10 4-"])
def test_parse_ports_rejects(bad):
    with pytest.raises(ValueError):
        detect.parse_ports(bad)


def test_find_pdu_offsets():
    noise = b"\xff\xee\x08\x00\x09\x00"                      # no type 1..7 before a 0x00
    for pdu in (RQ, AC, REJECT, pdata((1, 3, ECHO_RQ)), RELEASE_RQ, RELEASE_RP, ABORT):
        assert detect.find_pdu(noise + pdu) == (len(noise), len(noise))
        assert detect.find_pdu(pdu) == (0, 0)
        assert detect.find_pdu(b"\x00" * 3 + pdu + pdu, 1) == (3, 3)
        assert detect.find_pdu(noise + pdu + pdu, len(noise) + 1)[0] == len(noise) + len(pdu)
    # Decoys rejected: bad reserved byte, bad lengths, PDV with even context or bad flags.
    decoys = (b"\x05\x01\x00\x00\x00\x04" + b"\x04\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00"
              + b"\x04\x00\x00\x00\x00\x10\x00\x00\x00\x04\x02\x03"
              + b"\x04\x00\x00\x00\x00\x10\x00\x00\x00\x04\x01\x04"
              + b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x01")
    at, keep = detect.find_pdu(decoys + RELEASE_RQ)
    assert at == keep == len(decoys)
    # Not enough bytes to tell: wait, keeping from the candidate.
    assert detect.find_pdu(noise + RQ[:41]) == (None, len(noise))
    assert detect.find_pdu(noise + pdata((1, 3, ECHO_RQ))[:11]) == (None, len(noise))
    assert detect.find_pdu(noise + b"\x05") == (None, len(noise))
    assert detect.find_pdu(b"\xff" * 10) == (None, 9)
    assert detect.find_pdu(b"\xff\x00" * 10)[0] is None


def _could_start(buf, i):
    """Could a PDU header start at buf[i], given more bytes?"""
    r = detect.plausible_pdu(buf, i)
    if r is not None:
        return r
    return 1 <= buf[i] <= 7 and (i + 1 >= len(buf) or buf[i + 1] == 0)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=12),
                          st.sampled_from([RELEASE_RQ, ABORT, RQ[:50], b"\x04\x00", b"\x01\x00",
                                           pdata((1, 3, b"ab")), pdata((2, 3, b"ab"))])),
                max_size=10).map(b"".join), st.integers(0, 20))
def test_find_pdu_finds_the_first_candidate_and_keeps_what_it_must(buf, start):
    start = min(start, len(buf))
    at, keep = detect.find_pdu(buf, start)
    if at is not None:
        assert at == keep and detect.plausible_pdu(buf, at) is True
        assert not any(detect.plausible_pdu(buf, i) for i in range(start, at))
    else:
        assert start <= keep <= len(buf)
        assert not any(_could_start(buf, i) for i in range(start, keep))


# --------------------------------------------------------------------------
# End to end: pcap files through dicomwire.pipeline.run
# --------------------------------------------------------------------------

T0 = 1_700_000_000_000_000_000
C, S = "192.0.2.10", "198.51.100.20"
MSS = 1460


def tcp_capture(segments, *, cport=40000, sport=104, handshake=True, drop=(), order=None,
                mss=MSS):
    """A pcap of one TCP connection carrying ``segments`` [(direction, bytes)]
    in that order, each cut to ``mss`` and ACKed by the peer (cumulative
    ACK of what arrived in order, lost packets counting as arrived). ``drop``:
    (direction, stream offset) pairs whose packet is not in the capture (its
    ACK is: the reassembler sees the hole); ``order`` permutes the data
    packets (out-of-order delivery)."""
    seq = [1000, 5000]
    pk = []
    if handshake:
        pk += [g.ipv4_tcp(C, S, cport, sport, seq[0], 0, g.SYN),
               g.ipv4_tcp(S, C, sport, cport, seq[1], seq[0] + 1, g.SYN | g.ACK),
               g.ipv4_tcp(C, S, cport, sport, seq[0] + 1, seq[1] + 1, g.ACK)]
        seq = [seq[0] + 1, seq[1] + 1]
    start = list(seq)
    data = []                                   # (direction, seq, bytes, dropped)
    for d, b in segments:
        for i in range(0, len(b), mss):
            piece = b[i:i + mss]
            off = seq[d] - start[d]
            lost = any(dd == d and off <= o < off + len(piece) for dd, o in drop)
            data.append((d, seq[d], piece, lost))
            seq[d] += len(piece)
    ends = list(seq)
    idx = list(range(len(data))) if order is None else order(list(range(len(data))))
    arrived = set()
    for k in idx:
        d, s, b, lost = data[k]
        src, dst, sp, dp = (C, S, cport, sport) if d == 0 else (S, C, sport, cport)
        if not lost:
            pk.append(g.ipv4_tcp(src, dst, sp, dp, s, 0, g.PSH | g.ACK, b))
        arrived.add(k)
        ack = start[d]
        for j, (dj, sj, bj, _lost) in enumerate(data):
            if dj == d:
                if j not in arrived:
                    break
                ack = sj + len(bj)
        pk.append(g.ipv4_tcp(dst, src, dp, sp, 0, ack, g.ACK))
    pk += [g.ipv4_tcp(C, S, cport, sport, ends[0], ends[1], g.FIN | g.ACK),
           g.ipv4_tcp(S, C, sport, cport, ends[1], ends[0] + 1, g.FIN | g.ACK),
           g.ipv4_tcp(C, S, cport, sport, ends[0] + 1, ends[1] + 1, g.ACK)]
    return g.pcap([(T0 + i * 1_000_000, g.ethernet(p)) for i, p in enumerate(pk)])


def pipeline_decode(tmp_path, pcap_bytes, **cfg):
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_bytes)
    col = Collect()
    return col, record(path, col, **cfg)


def _session_messages(col):
    return [(m["name"], m["complete"], m["data"]) for m in col.messages]


def _per_direction(col):
    """Messages and PDUs of each direction, in order (reordering packets may
    change which direction is decoded first, never the order within one)."""
    return [([(m["name"], m["complete"], m["problems"], m["data"]) for m in col.messages
              if m["dir"] == d],
             [(p["type"], p["length"], p["offset"], p["problems"]) for p in col.pdus
              if p["dir"] == d]) for d in (0, 1)]


EXPECTED = [("C-ECHO-RQ", True, None), ("C-ECHO-RSP", True, None),
            ("C-STORE-RQ", True, DATASET), ("C-STORE-RSP", True, None)]


@pytest.mark.parametrize("port,cfg", [(104, {}), (4242, {}), (11112, {"preferences": {"dicom.heuristic": False}})])
def test_pipeline_valid_session(tmp_path, port, cfg):
    col, _ = pipeline_decode(tmp_path, tcp_capture(valid_session(), sport=port), **cfg)
    assert _session_messages(col) == EXPECTED
    assert all(not p["problems"] for p in col.pdus) and len(col.pdus) == 11
    assert col.events[-1] == ("end", 0, "released", "MODALITY", "STORESCP")


def test_pipeline_heuristic_off_and_other_port_means_no_dicom(tmp_path):
    col, _ = pipeline_decode(tmp_path, tcp_capture(valid_session(), sport=4242),
                             preferences={"dicom.heuristic": False})
    assert col.pdus == [] and col.messages == []


def test_pipeline_tiny_segments_and_reordering_match(tmp_path):
    # One-byte and 7-byte TCP segments, and segments delivered in reverse
    # pairs (the reassembler's out-of-order path hands over memoryviews).
    base, _ = pipeline_decode(tmp_path, tcp_capture(valid_session()))

    def swap_pairs(idx):
        out = []
        for i in range(0, len(idx) - 1, 2):
            out += [idx[i + 1], idx[i]]
        return out + idx[len(out):]

    for kw in (dict(mss=7), dict(mss=1), dict(mss=100, order=swap_pairs)):
        col, result = pipeline_decode(tmp_path, tcp_capture(valid_session(), **kw))
        assert all(d.gaps == 0 for d in result.streams[0].dirs)
        assert _per_direction(col) == _per_direction(base)


def test_pipeline_lost_segment_inside_a_data_set(tmp_path):
    segments = valid_session()
    big = pdata((3, 3, STORE_RQ), (3, 2, DATASET * 3))
    segments[4:6] = [(0, big)]
    # Lose the 200-byte packet holding the 2000th byte of the data set.
    at = len(RQ) + len(segments[2][1]) + big.index(DATASET) + 2000
    raw = tcp_capture(segments, mss=200, drop=[(0, at)])
    col, result = pipeline_decode(tmp_path, raw)
    assert result.streams[0].dirs[0].gaps == 1
    store = next(m for m in col.messages if m["name"] == "C-STORE-RQ")
    assert not store["complete"] and store["missing"] == 200
    assert any("missing from the capture" in p for p in store["problems"])
    assert col.complete() == ["C-ECHO-RQ", "C-ECHO-RSP", "C-STORE-RSP"]
    assert col.events[-1][2] == "released"


def test_pipeline_lost_segment_holding_a_pdu_header(tmp_path):
    segments = valid_session()
    segments[2] = (0, pdata((1, 3, ECHO_RQ)) + pdata((3, 3, STORE_RQ), (3, 2, DATASET)))
    # The 50-byte packet holding the C-ECHO's PDU header is lost.
    raw = tcp_capture(segments, mss=50, drop=[(0, len(RQ) + 2)])
    col, result = pipeline_decode(tmp_path, raw)
    assert result.streams[0].dirs[0].gaps == 1
    assert "C-STORE-RQ" in col.complete() and "C-STORE-RSP" in col.complete()
    stores = [m for m in col.messages if m["name"] == "C-STORE-RQ" and m["complete"]]
    assert stores[0]["data"] == DATASET
    assert col.events[-1][2] == "released"


def test_pipeline_capture_starting_mid_stream(tmp_path):
    first = pdata((3, 3, STORE_RQ), (3, 2, DATASET))
    later = pdata((1, 3, ECHO_RQ)) + pdata((3, 3, STORE_RQ), (3, 2, DATASET)) + RELEASE_RQ
    segments = [(0, first[333:] + later), (1, pdata((3, 3, STORE_RSP)) + RELEASE_RP)]
    col, result = pipeline_decode(tmp_path, tcp_capture(segments, handshake=False))
    assert not result.streams[0].client_known
    assert col.events[0] == ("start", 0, False)
    assert col.complete()[-3:] == ["C-ECHO-RQ", "C-STORE-RQ", "C-STORE-RSP"]
    a = col.started[0]
    assert a.contexts[3].transfer_syntax == IMPLICIT_LE and a.contexts[3].inferred


def test_pipeline_hostile_pdus_between_valid_ones(tmp_path):
    echo = pdata((1, 3, ECHO_RQ))
    bad = [raw_pdu(4, raw_pdv(1, 1, 3) + b"\0" * 4),                   # PDV length 1
           raw_pdu(1, b"", length=0xFFFFFFFF),                          # absurd RQ length
           raw_pdu(4, raw_pdv(len(ECHO_RQ) + 2, 2, 0xFF, ECHO_RQ)),    # even context, flags
           raw_pdu(0x09, b"\x01\x02\x03\x04"),                         # unknown type
           raw_pdu(5, b"\0\0\0\0", reserved=0x20)]                     # reserved byte
    segments = valid_session()
    segments.insert(3, (0, b"".join(b + echo for b in bad)))
    col, _ = pipeline_decode(tmp_path, tcp_capture(segments, mss=64))
    flagged = [p for p in col.pdus if p["problems"]]
    assert [p["type"] for p in flagged] == [4, 1, 4, 9, 5]
    assert col.names() == ["C-ECHO-RQ"] * 7 + ["C-ECHO-RSP", "C-STORE-RQ", "C-STORE-RSP"]
    assert all(m["complete"] for m in col.messages)
    assert col.messages[-2]["data"] == DATASET
    assert col.events[-1][2] == "released"


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(min_size=1, max_size=2000), at=st.integers(0, 9),
       mss=st.integers(1, 600))
def test_pipeline_garbage_never_records_errors(tmp_path, garbage, at, mss):
    # Garbage anywhere in a session, any segment size: whatever is decoded,
    # no dissector or hook exception is recorded (pipeline_decode checks).
    segments = valid_session()
    segments.insert(at, (at % 2, garbage))
    pipeline_decode(tmp_path, tcp_capture(segments, mss=mss))


def test_repeated_association_pdus_are_decoded_once(monkeypatch):
    """The same A-ASSOCIATE-RQ/-AC bytes on every association (a device's
    usual negotiation) are decoded once and give the same associations;
    other bytes are decoded on their own."""
    from dicomwire.plugins.dicom import association
    calls = []
    real = association.spec.parse_pdu
    monkeypatch.setattr(association.spec, "parse_pdu", lambda b: calls.append(b) or real(b))
    monkeypatch.setattr(association, "_decoded", {})
    first, _ = decode(valid_session())
    n = len(calls)
    again, _ = decode(valid_session())
    assert len(calls) == n                          # every one: from the first session
    assert first.pdus == again.pdus

    def contexts(col):
        return {k: [getattr(c, s) for s in c.__slots__] for k, c in col.started[0].contexts.items()}
    assert contexts(first) == contexts(again) and len(contexts(first)) == 2
    other = RQ.replace(b"MODALITY", b"MODALITZ")
    third, _ = decode([(0, other)] + valid_session()[1:])
    assert third.started[0].calling_ae == "MODALITZ" and len(calls) == n + 1
