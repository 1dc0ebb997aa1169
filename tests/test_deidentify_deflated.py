"""``dicomwire deidentify`` on deflated data sets (issue 17): real-peer
captures (DCMTK storescu -xd, Deflated Explicit VR Little Endian) whose data
sets are inflated, de-identified, deflated again and laid back with new PDV
and PDU lengths, every later byte moved. The output reads as the input in
dicomwire and tshark (the same PDUs, the same findings, no new TCP analysis
flag), its checksums are right where the input's were, and its exports are
Part 10 files with the new identifiers and the same pixels."""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pydicom
import pytest

import capgen
from dicomwire.exporters.part10 import iter_objects
from dicomwire.pcapng_writer import internet_checksum

CORPUS = Path(__file__).resolve().parent / "corpus" / "captures"
LARGE = CORPUS / "store_deflated_large.pcap"
tshark_needed = pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")


def deidentify(cli, src, out, *extra, ok=True):
    return cli("deidentify", "-q", str(src), "-o", str(out), *extra, ok=ok)


def tshark(path, *fields, checksums=False, filter="dicom"):
    args = ["tshark", "-r", str(path), "-o", "dicom.tcp.port:11112"]
    if checksums:
        args += ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    args += ["-Y", filter, "-T", "fields"]
    for f in fields:
        args += ["-e", f]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return [line.split("\t") for line in p.stdout.splitlines()]


def objects(path):
    return sorted((o.dataset for o in iter_objects(str(path), kinds=None)
                   if o.message == "C-STORE-RQ"), key=lambda d: d.Rows)


def originals(path) -> set[bytes]:
    found = set()
    for ds in objects(path):
        for kw in ("PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID",
                   "SeriesInstanceUID", "SOPInstanceUID"):
            found.add(str(ds.get(kw)).encode())
    return found


def test_deflated_again_with_the_same_pdus_and_findings(cli, tmp_path):
    out = tmp_path / "o.pcapng"
    r = deidentify(cli, LARGE, out)
    assert "deflated data sets: 2 deflated again" in r.stdout
    assert "self-check: PDU sequence identical (16 PDUs); findings identical" in r.stdout
    assert "blanked" not in r.stdout
    before = cli("expert", "-q", str(LARGE)).stdout
    assert cli("expert", "-q", str(out)).stdout == before


def test_exports_are_part10_files_with_new_identifiers_and_the_same_pixels(cli, tmp_path):
    out = tmp_path / "o.pcapng"
    deidentify(cli, LARGE, out)
    cli("export", "-q", str(out), "-o", str(tmp_path / "x"), ok=True)
    files = sorted((tmp_path / "x").iterdir())
    assert len(files) == 2
    old = objects(LARGE)
    new = sorted((pydicom.dcmread(f) for f in files), key=lambda d: d.Rows)
    left = originals(LARGE)
    for before, ds in zip(old, new):
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID.startswith("2.25.") and ds.SOPInstanceUID != before.SOPInstanceUID
        assert ds.StudyInstanceUID != before.StudyInstanceUID
        assert ds.PixelData == before.PixelData
        assert not [v for v in left if v in str(list(ds.iterall())).encode()]
    assert len({d.StudyInstanceUID for d in new}) == 1        # still one study


@tshark_needed
def test_tshark_reads_the_same_pdus_and_no_new_tcp_fault(cli, tmp_path):
    out = tmp_path / "o.pcapng"
    deidentify(cli, LARGE, out)
    types = [row[1] for row in tshark(LARGE, "frame.number", "dicom.pdu.type")]
    assert types and [row[1] for row in tshark(out, "frame.number", "dicom.pdu.type")] == types
    lens_in = tshark(LARGE, "dicom.pdu.len")
    lens_out = tshark(out, "dicom.pdu.len")
    assert len(lens_out) == len(lens_in) and lens_out != lens_in      # lengths did change
    for path in (LARGE, out):
        assert tshark(path, "frame.number", filter="tcp.analysis.flags") == []
    # Acknowledgments follow the moved data: each ACK acknowledges a byte sent.
    rows = tshark(out, "tcp.srcport", "tcp.seq", "tcp.len", "tcp.ack", filter="tcp")
    sent = {}
    for sport, seq, n, _ack in rows:
        sent.setdefault(sport, set()).add(int(seq) + int(n))
    for sport, _seq, _n, ack in rows[2:]:
        other = next(p for p in sent if p != sport)
        assert int(ack) in sent[other] or int(ack) == max(sent[other]) + 1


def _checksummed(src, dst):
    """``src`` with every IPv4 header and TCP checksum made right (loopback
    captures hold partial ones: the kernel leaves them to a card it lacks)."""
    frames = []
    from dicomwire.capture import open_capture
    with open_capture(str(src)) as cap:
        for _n, ts, _lt, data, _orig, _i in cap:
            d = bytearray(data)
            ihl = (d[14] & 15) * 4
            total = struct.unpack_from("!H", d, 16)[0]
            d[24:26] = b"\0\0"
            struct.pack_into("!H", d, 24, internet_checksum(bytes(d[14:14 + ihl])))
            tcp = 14 + ihl
            d[tcp + 16:tcp + 18] = b"\0\0"
            seg = bytes(d[tcp:14 + total])
            pseudo = bytes(d[26:34]) + struct.pack("!xBH", 6, len(seg))
            struct.pack_into("!H", d, tcp + 16, internet_checksum(pseudo + seg))
            frames.append((ts, bytes(d)))
    dst.write_bytes(capgen.pcap(frames, nanosecond=True))
    return dst


@tshark_needed
@pytest.mark.parametrize("fixed", [False, True], ids=["as-captured", "checksums-right"])
def test_checksums_are_right_where_the_input_s_were(cli, tmp_path, fixed):
    src = _checksummed(LARGE, tmp_path / "ok.pcap") if fixed else LARGE
    out = tmp_path / "o.pcapng"
    deidentify(cli, src, out)
    fields = ("frame.number", "tcp.checksum.status", "ip.checksum.status")
    before, after = tshark(src, *fields, checksums=True, filter="tcp"), \
        tshark(out, *fields, checksums=True, filter="tcp")
    assert after == before
    if fixed:
        assert {tuple(r[1:]) for r in after} == {("1", "1")}           # all good


def test_a_value_left_in_a_deflated_data_set_fails_the_command(cli, tmp_path, monkeypatch):
    """The file's bytes hold a deflated data set compressed: the self-check
    inflates the output's to search them."""
    from dicomwire.exporters.deidentify import deflated
    monkeypatch.setattr(deflated, "plan_dataset", lambda *a, **k: [])
    r = deidentify(cli, LARGE, tmp_path / "o.pcapng", ok=False)
    assert r.returncode == 1 and "self-check FAILED" in r.stdout
    assert "in a deflated data set (frame" in r.stdout


@pytest.mark.parametrize("cut", [
    lambda n: n != 11,              # a data set fragment lost: that one blanked, the next laid
    lambda n: n > 10,               # begins inside the first data set
    lambda n: n < 14,               # ends inside the first data set
], ids=["lost-fragment", "begins-late", "ends-early"])
def test_lossy_and_cut_deflated_captures(cli, tmp_path, cut):
    src = tmp_path / "cut.pcap"
    src.write_bytes(capgen.select_frames(LARGE, cut))
    out = tmp_path / "o.pcapng"
    r = deidentify(cli, src, out)
    assert "PDU sequence identical" in r.stdout and "findings identical" in r.stdout
    data = out.read_bytes()
    assert not [v for v in originals(LARGE) if v in data]
    assert not [o for o in iter_objects(str(out), incomplete=True, kinds=None)
                if o.dataset is not None and o.message == "C-STORE-RQ" and
                str(o.dataset.get("PatientName", "")).startswith("CORPUS")]


def test_a_retransmitted_copy_is_rewritten_as_its_original(cli, tmp_path):
    """Frame 16 (the end of the first data set, where its length changed)
    sent again later: both copies carry the same new bytes, and the copy is
    a retransmission to dicomwire and tshark alike."""
    from dicomwire.capture import open_capture
    with open_capture(str(LARGE)) as cap:
        frames = [(ts, bytes(d)) for _n, ts, _lt, d, _o, _i in cap]
    frames.insert(17, (frames[16][0] + 1000, frames[15][1]))
    src = tmp_path / "retrans.pcap"
    src.write_bytes(capgen.pcap(frames, nanosecond=True))
    out = tmp_path / "o.pcapng"
    r = deidentify(cli, src, out)
    assert "PDU sequence identical" in r.stdout and "findings identical" in r.stdout
    with open_capture(str(out)) as cap:
        new = [bytes(d) for _n, _ts, _lt, d, _o, _i in cap]
    assert new[17] == new[15] and new[15] != frames[15][1]
    if shutil.which("tshark"):
        flags = Counter(r[0] for r in tshark(src, "_ws.expert.message",
                                            filter="tcp.analysis.flags"))
        assert flags and Counter(r[0] for r in tshark(out, "_ws.expert.message",
                                                      filter="tcp.analysis.flags")) == flags


def test_split_gives_and_takes_from_the_last_fragments():
    from dicomwire.exporters.deidentify.deflated import split
    room = [[10]]
    assert split([5, 5, 5], [room, room, room], 12) == [5, 5, 2]
    assert split([5, 5, 5], [room, room, room], 9) == [5, 3, 1]
    assert split([5, 5, 5], [[0], [2], [1]], 18) == [5, 7, 6]      # the last PDU full
    assert split([5, 5, 5], [[0], [0], [1]], 18) is None             # no room: blanked
    assert split([5, 5], [[None], [None]], 40) == [5, 35]            # no maximum known
    assert split([5, 5], [[None], [None]], 1) is None
