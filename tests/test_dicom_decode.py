"""DICOM decoding over the shipped sample capture (real pynetdicom and DCMTK
peers): PDU sequence, associations, messages, pairing, mid-stream captures and
capture gaps."""

import shutil
import subprocess
from pathlib import Path

import pytest

from dicomwire.capture import open_capture
from support import SAMPLE, Recorder, dw, record


def pdu_row(pdu):
    return (pdu.last_frame, pdu.type, pdu.name, list(pdu.problems),
            pdu.assoc.id if pdu.assoc else None)


def message_row(m):
    ds = None
    if m.has_dataset and m.complete:
        ds = m.dataset()
    return dict(name=m.name, id=m.message_id, status=m.status,
                complete=m.complete, problems=list(m.problems),
                ts=m.transfer_syntax, ds=ds, len=m.dataset_len,
                sop=m.sop_instance_uid, request=m.request is not None,
                rt=m.response_time, assoc=m.assoc.id if m.assoc else None)


def decode(path, **cfg):
    col = Recorder(pdu=pdu_row, message=message_row, start=lambda a: a.id, end=Recorder.keep)
    return col, record(path, col, **cfg)


def test_sample_pdus_and_associations():
    col, _ = decode(SAMPLE)
    types = [t for _f, t, _n, _p, _a in col.pdus]
    # association 0: RQ, AC, P-DATA..., RELEASE RQ/RP; 1: RQ, RJ; 2: DCMTK store
    assert types[:2] == [1, 2] and 5 in types and 6 in types and 3 in types
    assert all(not p for _f, _t, _n, p, _a in col.pdus), [x for x in col.pdus if x[3]]
    assert len(col.assocs) == 3
    a0, a1, a2 = sorted(col.assocs, key=lambda a: a.id)
    assert (a0.calling_ae, a0.called_ae, a0.end) == ("MODALITY", "STORESCP", "released")
    assert a1.end == "rejected" and a1.called_ae == "WRONG_AE"
    assert a2.calling_ae == "DCMTKSCU" and a2.end == "released"
    accepted = [pc for pc in a0.contexts.values() if pc.accepted]
    assert accepted and all(pc.transfer_syntax for pc in accepted)
    assert a0.max_pdu[0] and a0.max_pdu[1]
    assert a0.pending == {}


def test_sample_messages_paired_and_datasets_decoded():
    col, _ = decode(SAMPLE)
    names = [m["name"] for m in col.messages]
    assert names.count("C-ECHO-RQ") == 1 and names.count("C-ECHO-RSP") == 1
    assert names.count("C-STORE-RQ") == 5 and names.count("C-STORE-RSP") == 5
    assert names.count("C-FIND-RQ") == 1 and names.count("C-FIND-RSP") == 4
    assert all(m["complete"] and not m["problems"] for m in col.messages)
    rsps = [m for m in col.messages if m["name"].endswith("-RSP")]
    assert all(m["request"] and m["rt"] >= 0 for m in rsps)
    stores = [m for m in col.messages if m["name"] == "C-STORE-RQ"]
    tss = {m["ts"] for m in stores}
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.1.99"} <= tss
    for m in stores:
        assert m["ds"].SOPInstanceUID == m["sop"]
    finds = [m for m in col.messages if m["name"] == "C-FIND-RSP"]
    assert [m["status"] for m in finds] == [0xFF00, 0xFF00, 0xFF00, 0]
    assert "DOE^JOHN" in str(finds[0]["ds"].PatientName)


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")
def test_pdu_sequence_matches_tshark():
    col, _ = decode(SAMPLE)
    ours = [(f, t) for f, t, _n, _p, _a in col.pdus]
    p = subprocess.run(["tshark", "-r", str(SAMPLE), "-d", "tcp.port==11112,dicom",
                        "-Y", "dicom", "-T", "fields", "-e", "frame.number",
                        "-e", "dicom.pdu.type"], capture_output=True, text=True, timeout=120)
    theirs = []
    for line in p.stdout.splitlines():
        frame, types = line.split("\t")
        for t in types.split(","):
            theirs.append((int(frame), int(t, 0)))
    assert sorted(ours) == sorted(theirs)


def _write_pcap_subset(src, dst, keep):
    """Copy the sample keeping the frames for which keep(number) is true."""
    import struct
    data = Path(src).read_bytes()
    out = [data[:24]]
    pos, n = 24, 0
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        n += 1
        if keep(n):
            out.append(data[pos:pos + 16 + incl])
        pos += 16 + incl
    Path(dst).write_bytes(b"".join(out))


def test_capture_started_mid_stream_still_decodes(tmp_path):
    # Drop everything before the first C-STORE data of association 0: no SYN,
    # no A-ASSOCIATE: framing resynchronises, transfer syntaxes are inferred.
    col, _ = decode(SAMPLE)
    first_store = next(f for f, t, _n, _p, _a in col.pdus if t == 4 and f > 10)
    cut = tmp_path / "late.pcap"
    _write_pcap_subset(SAMPLE, cut, lambda n: n >= first_store + 2)
    late, _ = decode(cut)
    stores = [m for m in late.messages if m["name"] == "C-STORE-RQ" and m["complete"]]
    assert len(stores) >= 3
    assert all(m["ds"].SOPInstanceUID == m["sop"] for m in stores)
    assert any(m["name"] == "C-FIND-RSP" and m["status"] == 0xFF00 for m in late.messages)


def test_gap_marks_message_incomplete_and_framing_recovers(tmp_path):
    col, _ = decode(SAMPLE)
    # A frame in the middle of the first big C-STORE (CT_small, ~39 kB).
    frames = [f for f, t, _n, _p, a in col.pdus if t == 4 and a == 0]
    victim = frames[3]
    lossy = tmp_path / "lossy.pcap"
    _write_pcap_subset(SAMPLE, lossy, lambda n: n != victim)
    got, result = decode(lossy)
    assert result.streams[0].dirs[0].gaps + result.streams[0].dirs[1].gaps >= 1
    incomplete = [m for m in got.messages if not m["complete"]]
    assert incomplete
    # Everything after the damage still decodes.
    assert [m["name"] for m in got.messages][-2:] == [m["name"] for m in col.messages][-2:]
    assert sum(1 for m in got.messages if m["complete"]) >= len(col.messages) - 3


def test_no_dicom_plugin_means_no_decoding():
    col, _ = decode(SAMPLE, plugins=["no:dicom"])
    assert col.pdus == [] and col.messages == []


def test_ports_and_heuristic():
    # Not on a configured port: the heuristic still finds the A-ASSOCIATE-RQs.
    col, _ = decode(SAMPLE, preferences={"dicom.tcp.port": "104"})
    assert len(col.assocs) == 3
    col, _ = decode(SAMPLE, preferences={"dicom.tcp.port": "104", "dicom.heuristic": False})
    assert col.assocs == []


def test_show_command_lines():
    out = dw("show", SAMPLE, ok=True).stdout
    assert "A-ASSOCIATE request MODALITY --> STORESCP" in out
    assert "C-ECHO-RQ ID=1" in out and "C-ECHO-RSP ID=1 (Success)" in out
    assert "C-STORE-RQ ID=" in out and "CT Image Storage" in out
    assert "A-ASSOCIATE reject" in out and "Called AE title not recognized" in out
    assert "A-RELEASE request" in out and "A-RELEASE response" in out


def test_show_verbose_tree_with_datasets():
    out = dw("show", "-V", SAMPLE, ok=True).stdout
    assert "(0000,0100) US CommandField: 1 (C-STORE-RQ)" in out
    assert "Data Set (38.9 kB, Explicit VR Little Endian)" in out
    assert "(0008,0060) CS Modality: 'CT'" in out
    assert "(0009,1001) LO [Full fidelity]: 'GE_GENESIS_FF'" in out     # private creator resolved
    assert "Explicit VR Big Endian" in out and "Deflated Explicit VR Little Endian" in out
    # A sequence nests its items; --flat keeps them at one level.
    nested = [ln for ln in out.splitlines() if " SQ " in ln]
    assert nested
    flat = dw("show", "-V", "--flat", SAMPLE).stdout
    assert "Item 1" in out and "Item 1" not in flat


def test_show_json_and_jsonl_agree():
    import json
    j = dw("show", "-T", "json", SAMPLE)
    jl = dw("show", "-T", "jsonl", SAMPLE)
    docs = json.loads(j.stdout)
    assert docs == [json.loads(ln) for ln in jl.stdout.splitlines()]
    first = docs[0]
    assert first["pdu_name"] == "A-ASSOCIATE-RQ" and first["association"] == 0
    assert first["fields"]["body"]["calling_ae_title"].strip() == "MODALITY"
    stores = [d for d in docs if "C-STORE-RQ" in d["summary"]]
    assert stores[0]["pdvs"][0]["command_set"]["CommandField"] == 1
