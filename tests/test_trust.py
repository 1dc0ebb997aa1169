"""Issue 13: every finding true. Captures cut from the shipped real-peer
sample (pynetdicom and DCMTK, captured with tcpdump) as a capture that
began late or ended early would be: what the capture did not see is never
reported as a fault."""

from pathlib import Path

import pytest

import capgen
from dicomwire.pipeline import run
from support import SAMPLE


def cut(tmp_path, keep, name="cut.pcap"):
    path = tmp_path / name
    path.write_bytes(capgen.select_frames(SAMPLE, keep))
    return path


def findings(path, severity="chat"):
    return [(i.field.name, i.field.severity, i.message)
            for i in run(str(path)).expert.at_least(severity)]


def warnings(path):
    return [f for f in findings(path, "warn")]


def test_capture_that_ends_with_the_association_open_claims_no_fault(tmp_path):
    # Frame 37 is the first pending C-FIND-RSP of association 0: the capture
    # stops there, the association still open, the C-FIND unanswered.
    path = cut(tmp_path, lambda n: n <= 37)
    assert warnings(path) == []
    notes = [m for name, sev, m in findings(path, "note") if name == "dicom.capture.partial"]
    assert any("the capture ended with the association still open" in m
               and "C-FIND-RQ ID=6" in m for m in notes), notes
    names = {name for name, _s, _m in findings(path)}
    assert not names & {"dicom.assoc.no_release", "dicom.dimse.no_response",
                        "dicom.message.incomplete", "dicom.assoc.no_answer"}


def test_capture_that_ends_before_the_associate_answer(tmp_path):
    # Only the A-ASSOCIATE-RQ (frame 4) of association 0 is in the capture.
    path = cut(tmp_path, lambda n: n <= 5)
    assert warnings(path) == []
    notes = [m for name, _s, m in findings(path) if name == "dicom.capture.partial"]
    assert any("A-ASSOCIATE-RQ not yet answered" in m for m in notes), notes


def test_capture_that_begins_inside_a_transfer_claims_no_fault(tmp_path):
    # Begins at frame 11, inside the first C-STORE's data set: its command
    # was sent before the capture began.
    path = cut(tmp_path, lambda n: 11 <= n <= 42)
    assert warnings(path) == []
    notes = [m for name, _s, m in findings(path) if name == "dicom.capture.partial"]
    assert any("sent before the capture began" in m for m in notes), notes


def test_capture_that_begins_mid_pdu_says_so_without_a_resync_warning(tmp_path):
    # Frame 12 carries the middle of a data set PDU: the bytes before the
    # next header are what the capture missed at its start, not a resync.
    path = cut(tmp_path, lambda n: n >= 12)
    assert [f for f in warnings(path) if f[0] == "dicom.pdu.resync"] == []
    notes = [m for name, _s, m in findings(path) if name == "dicom.capture.partial"]
    assert any("the capture began mid-stream" in m for m in notes), notes


def test_connection_closed_without_release_is_still_a_warning():
    # The complete sample: every association released or rejected.
    names = [f[0] for f in warnings(SAMPLE)]
    assert names == ["dicom.assoc.reject"]


def test_pending_responses_with_identifiers_are_paired_before_they_are_shown(cli):
    """Defect 5: a C-FIND-RSP (Pending) carries an identifier, so its message
    completes after its command PDU was rendered; the pairing must already
    be there: -Y on dicom.rsp.time finds every response."""
    out = cli("show", "-T", "fields", "-e", "frame.number", "-e", "dicom.cmd.name",
              "-e", "dicom.rsp.time", "-Y", "dicom.rsp.time >= 0", SAMPLE, ok=True).stdout
    rows = [ln.split("\t") for ln in out.splitlines()]
    find_rsps = [r for r in rows if r[1] == "C-FIND-RSP"]
    assert len(find_rsps) == 4, rows            # 3 pending and the final one
    assert all(float(r[2]) > 0 for r in find_rsps)
    tree = cli("show", "-V", "-Y", "frame.number == 37", SAMPLE, ok=True).stdout
    assert "[Response to C-FIND-RQ ID=6 in frame 35" in tree


@pytest.mark.parametrize("last, expected", [
    (9, []), (16, []), (30, []), (44, []),
    (64, ["dicom.assoc.reject"]),          # the sample's one real fault, then DCMTK's store cut
])
def test_captures_cut_anywhere_claim_only_real_faults(tmp_path, last, expected):
    assert [f[0] for f in warnings(cut(tmp_path, lambda n: n <= last))] == expected


# --------------------------------------------------------------------------
# Association checks (issue 13, "new findings"). Real peers do not break
# these rules, so the traffic is built from the spec pack.
# --------------------------------------------------------------------------

def _crafted(tmp_path, steps, name):
    from test_expert import capture, exchange
    r = run(str(capture(tmp_path, packets=exchange(steps), name=name)))
    out: dict = {}
    for i in r.expert.infos:
        out.setdefault(i.field.name, []).append(i.message)
    return out


def test_association_rule_breaks(tmp_path):
    from dicomgen import CT_STORAGE, EXPLICIT_LE, RELEASE_RP, RELEASE_RQ, VERIFICATION, assoc_ac
    from dicomwire.specs.dicom.pdu import build_pdu, item

    def ctx(cid, sop):
        return item(0x20, context_id=cid, sub_items=[item(0x30, sop), item(0x40, EXPLICIT_LE)])

    rq = build_pdu("A-ASSOCIATE-RQ", called_ae_title="STORESCP", calling_ae_title="MODALITY",
                   variable_items=[item(0x10, "1.2.3.4.5"), ctx(1, VERIFICATION),
                                   ctx(1, CT_STORAGE), ctx(4, CT_STORAGE),
                                   item(0x50, sub_items=[item(0x55, "NO_51_52")])])
    ac = assoc_ac(contexts=(1, 7))                 # 7 was never proposed
    got = _crafted(tmp_path, [(0, rq), (1, ac), (0, RELEASE_RQ), (1, RELEASE_RP)], "a.pcap")
    assert sorted(got["dicom.pctx.id.invalid"]) == [
        "presentation context ID 1 is used twice", "presentation context ID 4 is even"]
    assert got["dicom.pctx.not_proposed"] == [
        "the A-ASSOCIATE-AC answers presentation context 7, which the request did not propose"]
    assert "'1.2.3.4.5', not DICOM's 1.2.840.10008.3.1.1.1" in got["dicom.assoc.app_context"][0]
    missing = got["dicom.assoc.user_info.missing"]
    assert len(missing) == 1 and "Maximum Length (0x51) and no Implementation Class UID" \
        in missing[0] and missing[0].startswith("A-ASSOCIATE-RQ")
    assert len(got["dicom.assoc.app_context"]) == 1      # the AC's own is DICOM's


def test_requests_beyond_the_asynchronous_window(tmp_path):
    from dicomgen import AC, RELEASE_RP, RELEASE_RQ, RQ, encode_command, pdata

    def echo(mid):
        return pdata((1, 3, encode_command(dict(CommandField=0x0030, MessageID=mid,
                                                AffectedSOPClassUID="1.2.840.10008.1.1",
                                                CommandDataSetType=0x0101))))

    def rsp(mid):
        return pdata((1, 3, encode_command(dict(CommandField=0x8030, MessageIDBeingRespondedTo=mid,
                                                AffectedSOPClassUID="1.2.840.10008.1.1",
                                                CommandDataSetType=0x0101, Status=0))))

    # No window negotiated (default 1): the second C-ECHO before the first answer.
    got = _crafted(tmp_path, [(0, RQ), (1, AC), (0, echo(1)), (0, echo(2)), (1, rsp(1)),
                              (1, rsp(2)), (0, RELEASE_RQ), (1, RELEASE_RP)], "async.pcap")
    assert got["dicom.dimse.async_exceeded"] == [
        "MODALITY <-> STORESCP: the requestor has 2 requests outstanding (C-ECHO-RQ ID=1, "
        "C-ECHO-RQ ID=2) but the association allows 1 at a time (no asynchronous operations "
        "window was negotiated)"]
    # One at a time: nothing.
    got = _crafted(tmp_path, [(0, RQ), (1, AC), (0, echo(1)), (1, rsp(1)), (0, echo(2)),
                              (1, rsp(2)), (0, RELEASE_RQ), (1, RELEASE_RP)], "sync.pcap")
    assert "dicom.dimse.async_exceeded" not in got


def test_pdu_whose_header_is_split_begins_in_the_frame_of_its_first_byte(tmp_path, cli):
    import json

    from dicomgen import AC, RELEASE_RP, RELEASE_RQ, RQ
    from test_expert import capture, exchange
    path = capture(tmp_path, packets=exchange([(0, RQ[:3]), (0, RQ[3:]), (1, AC),
                                               (0, RELEASE_RQ), (1, RELEASE_RP)]))
    rq = json.loads(cli("show", "-T", "jsonl", path, ok=True).stdout.splitlines()[0])
    # Frames: SYN, SYN-ACK, 3 bytes of header, ACK, the rest of the RQ.
    assert (rq["pdu_type"], rq["first_frame"], rq["frame"]) == (1, 3, 5)


@pytest.mark.parametrize("ts, deflated", [
    ("1.2.840.10008.1.2.1.99", True), ("1.2.840.10008.1.2.4.95", True),
    ("1.2.840.10008.1.2.4.205", True), ("1.2.840.10008.1.2.1", False),
    ("1.2.840.10008.1.2.4.50", False)])
def test_every_deflated_transfer_syntax_is_inflated(ts, deflated):
    """JPIP Referenced Deflate and JPIP HTJ2K Referenced Deflate deflate the
    data set as Deflated Explicit VR Little Endian does (PS3.5 A.5)."""
    import zlib

    from dicomwire.plugins.dicom.model import Association, Message
    a = Association(None, 0, True)
    a.context(1).transfer_syntax = ts
    m = Message(a, 0, 1, 1, 0)
    data = b"\x08\x00\x60\x00CS\x02\x00CT"          # (0008,0060) Modality, explicit VR LE
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    m.add_data(z.compress(data) + z.flush() if deflated else data)
    assert m.encoding == (False, True, deflated)
    assert m.dataset().Modality == "CT"
    m.release()


def test_mid_stream_compressed_image_decodes_its_elements_and_exports_marked(tmp_path, cli):
    """A JPEG store whose negotiation was not captured: its elements prove
    explicit VR little endian, its encapsulated pixels some compressed syntax
    the bytes do not name. The elements are shown and filterable; the export
    is marked, never written as a syntax nobody proved."""
    corpus = Path(__file__).parent / "corpus" / "captures" / "store_jpeg.pcap"
    path = tmp_path / "jpeg_mid.pcap"
    path.write_bytes(capgen.select_frames(corpus, lambda n: n >= 8))   # from the C-STORE-RQ on
    tree = cli("show", "-V", path, ok=True).stdout
    assert "a compressed transfer syntax the capture does not name" in tree
    assert "(0008,0060) CS Modality: 'OT'" in tree
    assert "Pixel Data: encapsulated, Basic Offset Table (4 bytes), 1 fragment" in tree
    assert "Data Set (1.4 kB" in cli("show", "-Y", "Modality == OT", path, ok=True).stdout
    listed = cli("export", "--list", path, ok=True).stdout
    assert ".dcm.unknown-ts  (transfer syntax not proven)" in listed


def test_unanswered_contexts_and_release_without_its_answer(tmp_path):
    from dicomgen import CT_STORAGE, EXPLICIT_LE, RELEASE_RQ, VERIFICATION, assoc_ac
    from dicomwire.specs.dicom.pdu import build_pdu, item

    rq = build_pdu("A-ASSOCIATE-RQ", called_ae_title="STORESCP", calling_ae_title="MODALITY",
                   variable_items=[item(0x10, "1.2.840.10008.3.1.1.1"), *[
                       item(0x20, context_id=cid, sub_items=[item(0x30, sop),
                                                             item(0x40, EXPLICIT_LE)])
                       for cid, sop in ((1, VERIFICATION), (3, CT_STORAGE))],
                       item(0x50, sub_items=[item(0x51, max_length=16384),
                                             item(0x52, "1.2.3.4")])])
    # The AC answers context 1 only; the requestor then releases, and the
    # acceptor closes the connection without an A-RELEASE-RP.
    got = _crafted(tmp_path, [(0, rq), (1, assoc_ac(contexts=(1,))), (0, RELEASE_RQ)], "u.pcap")
    assert got["dicom.pctx.unanswered"] == [
        "MODALITY <-> STORESCP: the A-ASSOCIATE-AC gives no result for presentation "
        "context(s) 3: nothing can be sent on them"]
    assert "after the A-RELEASE-RQ without an A-RELEASE-RP" in \
        got["dicom.assoc.release_unanswered"][0]
    assert "dicom.assoc.no_release" not in got


def test_a_stream_dicomwire_stopped_following_is_not_called_the_capture_end(cli):
    corpus = Path(__file__).parent / "corpus" / "captures" / "move_with_callback.pcap"
    out = cli("expert", "-o", "tcp.max_flows:1", corpus, ok=True).stdout
    assert "dicomwire stopped following TCP stream" in out
    assert "the capture ended" not in out


def test_a_cancel_answer_is_never_a_failure(tmp_path):
    # The capture begins after the C-FIND-RQ: its C-CANCEL-RQ and the FE00
    # answer are there, the request is not.
    corpus = Path(__file__).parent / "corpus" / "captures" / "find_cancel.pcap"
    path = tmp_path / "cancel.pcap"
    path.write_bytes(capgen.select_frames(corpus, lambda n: n >= 12))
    assert warnings(path) == []


def test_a_malformed_association_pdu_raises_only_its_malformed_finding(tmp_path):
    from dicomgen import RELEASE_RP, RELEASE_RQ, RQ, assoc_ac
    ac = bytearray(assoc_ac())
    at = ac.rindex(b"\x51\x00\x00\x04")           # the Maximum Length sub-item
    ac[at + 3] = 0x40                             # its length now overruns the user information
    got = _crafted(tmp_path, [(0, RQ), (1, bytes(ac)), (0, RELEASE_RQ), (1, RELEASE_RP)], "m.pcap")
    assert "dicom.assoc.item.len.invalid" in got or "dicom.pdu.malformed" in got, got
    assert not {"dicom.assoc.user_info.missing", "dicom.pctx.not_proposed",
                "dicom.pctx.unanswered"} & set(got)


def _implicit(ds) -> bytes:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    buf = DicomBytesIO()
    buf.is_implicit_VR, buf.is_little_endian = True, True
    write_dataset(buf, ds)
    return buf.getvalue()


def test_storage_commitment_checks_survive_odd_reports_and_refusals(tmp_path):
    """A refused N-ACTION starts no transaction (no 'no report' note), and a
    report whose Failure Reason has two values is still read, not a crash."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from dicomgen import RELEASE_RP, RELEASE_RQ, assoc_ac, assoc_rq, encode_command, pdata
    sc = "1.2.840.10008.1.20.1"

    def cmd(**kw):
        return encode_command(dict(AffectedSOPClassUID=sc, **kw))

    def action(mid, uid):
        ds = Dataset()
        ds.TransactionUID = uid
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3"
        ds.ReferencedSOPSequence = Sequence([ref])
        rq = encode_command(dict(CommandField=0x0130, MessageID=mid, RequestedSOPClassUID=sc,
                                 RequestedSOPInstanceUID="1.2.840.10008.1.20.1.1",
                                 ActionTypeID=1, CommandDataSetType=0))
        return pdata((1, 3, rq)) + pdata((1, 2, _implicit(ds)))

    report = Dataset()
    report.TransactionUID = "1.2.826.0.1.3680043.9.2"
    bad = Dataset()
    bad.ReferencedSOPClassUID, bad.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3"
    bad.add_new(0x00081197, "US", [0x0112, 0x0110])          # two values: VM 1 expected
    report.FailedSOPSequence = Sequence([bad])
    steps = [(0, assoc_rq(contexts=((1, sc),))), (1, assoc_ac(contexts=(1,))),
             (0, action(1, "1.2.826.0.1.3680043.9.1")),
             (1, pdata((1, 3, cmd(CommandField=0x8130, MessageIDBeingRespondedTo=1,
                                  CommandDataSetType=0x0101, Status=0x0110)))),
             (0, action(2, "1.2.826.0.1.3680043.9.2")),
             (1, pdata((1, 3, cmd(CommandField=0x8130, MessageIDBeingRespondedTo=2,
                                  CommandDataSetType=0x0101, Status=0)))),
             (1, pdata((1, 3, cmd(CommandField=0x0100, MessageID=7, EventTypeID=2,
                                  AffectedSOPInstanceUID="1.2.840.10008.1.20.1.1",
                                  CommandDataSetType=0))) + pdata((1, 2, _implicit(report)))),
             (0, pdata((1, 3, cmd(CommandField=0x8100, MessageIDBeingRespondedTo=7,
                                  CommandDataSetType=0x0101, Status=0)))),
             (0, RELEASE_RQ), (1, RELEASE_RP)]
    got = _crafted(tmp_path, steps, "stgcmt.pcap")
    assert "plugin.failed" not in got, got["plugin.failed"]
    assert "dicom.stgcmt.no_report" not in got                  # the refused one: none due
    assert "1.2.3 (0x0112 No such object instance)" in got["dicom.stgcmt.failed"][0]


def _corpus_manifest():
    import sys
    folder = Path(__file__).parent / "corpus"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    from manifest import MANIFEST
    return MANIFEST


@pytest.mark.slow                     # its 25 captures together: several seconds
@pytest.mark.parametrize("name", sorted(_corpus_manifest()))
def test_every_corpus_capture_cut_at_every_frame_claims_only_its_own_faults(tmp_path, name):
    """Each real-peer capture of the corpus, begun late or ended early at
    every frame: no plugin failure, and no warning or error beyond the
    capture's own faults (what the cut hid is never called a fault)."""
    from dicomwire.capture import open_capture
    entry = _corpus_manifest()[name]
    src = Path(__file__).parent / "corpus" / "captures" / f"{name}.pcap"
    with open_capture(str(src)) as cap:
        total = sum(1 for _ in cap)
    allowed = set(entry.expect) | set(entry.tolerate)
    path = tmp_path / "cut.pcap"
    for k in range(1, total + 1):
        for side, keep in (("from", lambda n: n >= k), ("up to", lambda n: n <= k)):
            path.write_bytes(capgen.select_frames(src, keep))
            odd = [f"{i.field.name}: {i.message}" for i in run(str(path)).expert.at_least("warn")
                   if i.field.name not in allowed]
            assert not odd, f"{name} cut {side} frame {k}: {odd}"
