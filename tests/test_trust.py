"""Issue 13: every finding true. Captures cut from the shipped real-peer
sample (pynetdicom and DCMTK, captured with tcpdump) as a capture that
began late or ended early would be: what the capture did not see is never
reported as a fault."""

from pathlib import Path

import pytest

import capgen
from dicomwire.cli import main
from dicomwire.pipeline import run

SAMPLE = Path(__file__).parent.parent / "core" / "samples" / "sample.pcap"


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


def dicomwire(capsys, *args) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_pending_responses_with_identifiers_are_paired_before_they_are_shown(capsys):
    """Defect 5: a C-FIND-RSP (Pending) carries an identifier, so its message
    completes after its command PDU was rendered; the pairing must already
    be there: -Y on dicom.rsp.time finds every response."""
    out = dicomwire(capsys, "show", "-T", "fields", "-e", "frame.number", "-e", "dicom.cmd.name",
                    "-e", "dicom.rsp.time", "-Y", "dicom.rsp.time >= 0", str(SAMPLE))
    rows = [ln.split("\t") for ln in out.splitlines()]
    find_rsps = [r for r in rows if r[1] == "C-FIND-RSP"]
    assert len(find_rsps) == 4, rows            # 3 pending and the final one
    assert all(float(r[2]) > 0 for r in find_rsps)
    tree = dicomwire(capsys, "show", "-V", "-Y", "frame.number == 37", str(SAMPLE))
    assert "[Response to C-FIND-RQ ID=6 in frame 35" in tree


@pytest.mark.parametrize("last, expected", [
    (9, []), (16, []), (30, []), (44, []),
    (64, ["dicom.assoc.reject"]),          # the sample's one real fault, then DCMTK's store cut
])
def test_captures_cut_anywhere_claim_only_real_faults(tmp_path, last, expected):
    assert [f[0] for f in warnings(cut(tmp_path, lambda n: n <= last))] == expected
