"""Query/Retrieve checks (plugins/dicom/qr.py): C-FIND key comparisons, C-MOVE
destinations and callback associations, C-GET roles; on traffic built from
the spec pack."""

import pytest
import capgen as g
from dicomgen import (AC, REJECT, RELEASE_RP, RELEASE_RQ, RQ, assoc_rq, element,
                      encode_command, pdata)
from dicomwire.pipeline import run
from test_expert import exchange

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"


def ident(*elements):
    return b"".join(element(gp, el, v) for gp, el, v in sorted(elements))


def find_rq(mid, identifier):
    cmd = encode_command(dict(CommandField=0x0020, MessageID=mid, Priority=0,
                              AffectedSOPClassUID=STUDY_FIND, CommandDataSetType=0))
    return pdata((1, 3, cmd)) + pdata((1, 2, identifier))


def find_rsp(mid, status, identifier=None):
    cmd = encode_command(dict(CommandField=0x8020, MessageIDBeingRespondedTo=mid,
                              AffectedSOPClassUID=STUDY_FIND, Status=status,
                              CommandDataSetType=0x0101 if identifier is None else 0))
    out = pdata((1, 3, cmd))
    return out + pdata((1, 2, identifier)) if identifier is not None else out


def move_rq(mid, dest):
    cmd = encode_command(dict(CommandField=0x0021, MessageID=mid, Priority=0,
                              AffectedSOPClassUID=STUDY_MOVE, MoveDestination=dest,
                              CommandDataSetType=0))
    return pdata((1, 3, cmd)) + pdata((1, 2, ident((0x0008, 0x0052, b"STUDY"),
                                                   (0x0020, 0x000D, b"1.2.3"))))


def move_rsp(mid, status, completed=0, failed=0, warned=0):
    return pdata((1, 3, encode_command(dict(
        CommandField=0x8021, MessageIDBeingRespondedTo=mid, AffectedSOPClassUID=STUDY_MOVE,
        Status=status, CommandDataSetType=0x0101, NumberOfRemainingSuboperations=0,
        NumberOfCompletedSuboperations=completed, NumberOfFailedSuboperations=failed,
        NumberOfWarningSuboperations=warned))))


def pcap(tmp_path, *connections):
    """Frames of several connections, each a packet list, in the given order."""
    frames = [p for conn in connections for p in conn]
    path = tmp_path / "qr.pcap"
    path.write_bytes(g.pcap([(i * 1_000_000, g.ethernet(p)) for i, p in enumerate(frames)]))
    return run(str(path))


def infos(result, name):
    return [i.message for i in result.expert.infos if i.field.name == name]


def test_find_no_match_components_spaces_and_keys(tmp_path):
    q1 = ident((0x0008, 0x0052, b"STUDY"), (0x0010, 0x0010, b"DOE^JOHN"),
               (0x0010, 0x0020, b"ID1   "), (0x0020, 0x000D, b""))
    q2 = ident((0x0008, 0x0052, b"STUDY"), (0x0010, 0x0010, b"Doe^Jane"),
               (0x0008, 0x0020, b""), (0x0008, 0x0050, b""))
    r2 = ident((0x0008, 0x0052, b"STUDY"), (0x0010, 0x0010, b"DOE^JANE"),
               (0x0008, 0x0020, b"20240101"), (0x0010, 0x0030, b"19700101"))
    q3 = ident((0x0008, 0x0052, b"STUDY"), (0x0010, 0x0010, b"doe^jane"))
    steps = [(0, RQ), (1, AC), (0, find_rq(1, q1)), (1, find_rsp(1, 0)),
             (0, find_rq(2, q2)), (1, find_rsp(2, 0xFF00, r2)), (1, find_rsp(2, 0)),
             (0, find_rq(3, q3)), (1, find_rsp(3, 0)), (0, RELEASE_RQ), (1, RELEASE_RP)]
    r = pcap(tmp_path, exchange(steps))
    assert "C-FIND-RQ ID=1: no match" in infos(r, "dicom.find.no_match")[0]
    assert any("'DOE^JOHN'" in m for m in infos(r, "dicom.find.pn_components"))
    assert "PatientID 'ID1   ' ends in spaces" in infos(r, "dicom.find.trailing_space")[0]
    assert "PatientBirthDate" in infos(r, "dicom.find.unrequested_keys")[0]
    assert "AccessionNumber" in infos(r, "dicom.find.missing_keys")[0]
    assert "'doe^jane' where a previous response returned 'DOE^JANE'" in \
        infos(r, "dicom.find.altered_key")[0]


def test_find_over_defined(tmp_path):
    q = ident((0x0008, 0x0052, b"STUDY"), (0x0010, 0x0010, b"DOE"), (0x0010, 0x0020, b"ID1"),
              (0x0008, 0x0020, b"20240101"), (0x0008, 0x0060, b"CT"))
    steps = [(0, RQ), (1, AC), (0, find_rq(1, q)), (1, find_rsp(1, 0)),
             (0, RELEASE_RQ), (1, RELEASE_RP)]
    r = pcap(tmp_path, exchange(steps))
    assert "no match for 4 matching keys" in infos(r, "dicom.find.over_defined")[0]
    assert not infos(r, "dicom.find.no_match")


def test_move_destination_unknown_and_no_callback(tmp_path):
    steps = [(0, RQ), (1, AC), (0, move_rq(1, "NOWHERE")), (1, move_rsp(1, 0xA801)),
             (0, move_rq(2, "ARCHIVE")), (1, move_rsp(2, 0, completed=3)),
             (0, RELEASE_RQ), (1, RELEASE_RP)]
    r = pcap(tmp_path, exchange(steps))
    assert "'NOWHERE'" in infos(r, "dicom.move.destination_unknown")[0]
    nocb = infos(r, "dicom.move.no_callback")
    assert len(nocb) == 1 and "'ARCHIVE'" in nocb[0] and "capture at the Q/R" in nocb[0]


def test_move_callback_linked_rejected_and_suboperation_failures(tmp_path):
    move = exchange([(0, RQ), (1, AC), (0, move_rq(7, "ARCHIVE")),
                     (1, move_rsp(7, 0xB000, completed=1, failed=2)),
                     (0, RELEASE_RQ), (1, RELEASE_RP)])
    # The Q/R SCP (S) calls the destination back (C, port 105): rejected.
    rq = assoc_rq(called="ARCHIVE", calling="STORESCP")
    callback = exchange([(0, rq), (1, REJECT)], cport=50000, sport=105)
    callback = [_swap(p) for p in callback]
    cut = 2 + 2 * 3                      # move packets up to and including the C-MOVE-RQ
    r = pcap(tmp_path, move[:cut], callback, move[cut:])
    linked = infos(r, "dicom.move.callback")
    assert len(linked) == 1 and "STORESCP <-> ARCHIVE" in linked[0]
    assert "'ARCHIVE' was rejected" in infos(r, "dicom.move.callback_rejected")[0]
    assert "2 failed, 0 with warnings, 1 completed" in infos(r, "dicom.move.suboperations")[0]


def _swap(packet):
    """The callback runs from S to C: swap the IPv4 addresses of a capgen packet."""
    b = bytearray(packet)
    b[12:16], b[16:20] = packet[16:20], packet[12:16]
    return bytes(b)


def test_get_without_scp_role(tmp_path):
    get = encode_command(dict(CommandField=0x0010, MessageID=1, Priority=0,
                              AffectedSOPClassUID="1.2.840.10008.5.1.4.1.2.2.3",
                              CommandDataSetType=0))
    steps = [(0, RQ), (1, AC), (0, pdata((1, 3, get)) + pdata((1, 2, ident(
        (0x0008, 0x0052, b"STUDY"), (0x0020, 0x000D, b"1.2.3"))))),
        (0, RELEASE_RQ), (1, RELEASE_RP)]
    r = pcap(tmp_path, exchange(steps))
    # The default AC (dicomgen) answers no SCP/SCU role selection.
    assert "C-GET-RQ ID=1" in infos(r, "dicom.get.no_scp_role")[0]


def _pydicom_identifier(raw, implicit, little):
    """The reference: what pydicom reads from the same identifier."""
    from io import BytesIO

    from pydicom.filereader import read_dataset
    ds = read_dataset(BytesIO(raw), implicit, little)
    out = {}
    for tag in list(ds.keys()):
        v = ds.get_item(tag).value             # the raw bytes, before ds[tag] converts them
        elem = ds[tag]
        if elem.VR == "SQ":
            out[int(tag)] = (elem.keyword, "SQ", None)
            continue
        out[int(tag)] = (elem.keyword or str(elem.tag), elem.VR,
                         v.decode("latin-1").rstrip("\0") if isinstance(v, bytes) else str(v))
    return out


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                                "1.2.840.10008.1.2.2"])
def test_identifier_without_pydicom_matches_pydicom(ts):
    """Identifiers are read by the header walk and the dictionary table, not
    by pydicom (0.3 s to import): the same keys, VRs and raw values."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from dicomwire.plugins.dicom.qr import identifier
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = "DOE^JOHN  "
    ds.PatientID = "ID 1"
    ds.StudyDate = ""
    ds.StudyInstanceUID = ""
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.3"
    ds.ReferencedStudySequence = Sequence([item])
    ds.add_new(0x00091010, "LO", "private")
    implicit, little = ts == "1.2.840.10008.1.2", ts != "1.2.840.10008.1.2.2"
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset
    buf = DicomBytesIO()
    buf.is_implicit_VR, buf.is_little_endian = implicit, little
    write_dataset(buf, ds)
    raw = buf.getvalue()

    class Msg:
        def plain_dataset(self):
            return raw, implicit, little

    ours = identifier(Msg())
    ref = _pydicom_identifier(raw, implicit, little)
    assert ours is not None and set(ours) == set(ref)
    for tag in ref:
        kw, vr, text = ref[tag]
        if tag == 0x00091010:
            assert ours[tag][2] == text                # private: no dictionary VR
            continue
        assert ours[tag] == (kw, vr, text), hex(tag)
