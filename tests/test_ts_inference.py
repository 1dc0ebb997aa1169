"""A capture that began after the A-ASSOCIATE exchange: the transfer syntax
of each presentation context is proven from the data set bytes themselves
(plugins/dicom/tsinfer.py ``infer_transfer_syntax``), never guessed from the
first group number; when nothing proves one, ``assoc`` says so, the
``dicom.ts.unproven`` note is raised once per context, the data set is not
decoded as if it were implicit VR, and export marks the file.

Real traffic: pynetdicom MPPS N-CREATE + N-SET (the N-SET data set starts with
group 0040) and the shipped sample (C-STOREs in all four uncompressed and
deflated syntaxes), cut so that the capture begins mid-association."""

from __future__ import annotations

import json
import random
import re
import struct
import zlib

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

import dimse_peers as dp
import peers
from dicomwire.plugins.dicom import tsinfer as D
from dicomwire.specs.dicom.uids import UID_NAMES
from support import SAMPLE, dw

SAMPLE_PORT = 11112
UNPROVEN = "unknown (negotiation not captured; the data did not prove one)"


def proven_line(uid):
    return f"Accepted Transfer Syntax: ={UID_NAMES[uid]} (inferred from the data)"


# --------------------------------------------------------------------------
# The inference itself, on data sets pydicom encodes
# --------------------------------------------------------------------------

def encoded(name, implicit, little):
    ds = pydicom.dcmread(get_testdata_file(name))
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = little, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def deflated(raw):
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(raw) + c.flush()


ENCODINGS = [(dp.IMPLICIT_LE, True, True), (dp.EXPLICIT_LE, False, True),
             (dp.EXPLICIT_BE, False, False)]


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "MR_small.dcm"])
@pytest.mark.parametrize("uid,implicit,little", ENCODINGS)
def test_each_encoding_proven_from_a_bounded_head(name, uid, implicit, little):
    raw = encoded(name, implicit, little)
    for head in (raw, raw[:D.INFER_HEAD], raw[:4096]):
        got = D.infer_transfer_syntax(head, len(raw))
        assert got.syntax == uid and got.fits == (uid,), (head is raw, got)
    got = D.infer_transfer_syntax(deflated(encoded(name, False, True)))
    assert got.syntax == dp.DEFLATED_LE, got


def test_encapsulated_pixel_data_is_no_proof_of_explicit_little_endian():
    # A compressed syntax encodes its data set in explicit VR little endian
    # too (PS3.5 A.4): which one, the bytes do not say.
    raw = encoded("JPEG2000.dcm", False, True)
    j2k = str(pydicom.dcmread(get_testdata_file("JPEG2000.dcm")).file_meta.TransferSyntaxUID)
    for head, read_all in ((raw, None), (raw[:2048], lambda: raw)):
        got = D.infer_transfer_syntax(head, len(raw), read_all=read_all)
        assert got.syntax is None and got.fits == (dp.EXPLICIT_LE,), got
        assert "encapsulated Pixel Data" in got.why
        got = D.infer_transfer_syntax(head, len(raw), [dp.EXPLICIT_LE, j2k], read_all)
        assert got.syntax == j2k, got


def test_tiny_data_sets_and_garbage():
    # One element, walked exactly to the end: enough (the N-SET of a status).
    status = struct.pack("<HH2sH", 0x0040, 0x0252, b"CS", 10) + b"COMPLETED "
    assert D.infer_transfer_syntax(status, len(status)).syntax == dp.EXPLICIT_LE
    implicit = struct.pack("<HHI", 0x0040, 0x0252, 10) + b"COMPLETED "
    assert D.infer_transfer_syntax(implicit, len(implicit)).syntax == dp.IMPLICIT_LE
    # Nothing, or bytes that are no data set in any syntax: unproven, and why.
    assert D.infer_transfer_syntax(b"", 0).syntax is None
    rng = random.Random(1)
    for n in (7, 48, 300, 5000, 40000):
        junk = rng.randbytes(n)
        got = D.infer_transfer_syntax(junk[:D.INFER_HEAD], n)
        assert got.syntax is None and got.fits == () and got.why, (n, got)
    # A head cut before several elements walked proves nothing (pixel data first).
    big = struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", 1 << 20) + bytes(D.INFER_HEAD)
    assert D.infer_transfer_syntax(big[:D.INFER_HEAD], len(big)).syntax is None


def test_two_fits_prefer_the_association_or_stay_unproven():
    # 16983 bytes that are one explicit OB element and one implicit element
    # alike (the implicit length is the VR bytes "OB\0\0"): ambiguous.
    n = 0x424F + 8 - 12
    raw = struct.pack("<HH2s2xI", 0x0009, 0x0010, b"OB", n) + bytes(n)
    got = D.infer_transfer_syntax(raw, len(raw))
    assert got.syntax is None and set(got.fits) == {dp.IMPLICIT_LE, dp.EXPLICIT_LE}
    assert "ambiguous" in got.why
    got = D.infer_transfer_syntax(raw, len(raw), prefer=[dp.EXPLICIT_LE])
    assert got.syntax == dp.EXPLICIT_LE


# --------------------------------------------------------------------------
# Real traffic cut mid-association
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mpps(tmp_path_factory):
    """MPPS N-CREATE + N-SET captured whole, once per proposed syntax:
    {syntax: (pcap, port, decoded messages, truth: the accepted syntax)}."""
    peers.require_capture()
    out = {}
    for syntax in (dp.IMPLICIT_LE, dp.EXPLICIT_LE):
        pcap, port = dp.mpps_capture(tmp_path_factory.mktemp("mpps") / "mpps.pcap", syntax)
        col, _ = dp.decode(pcap, port)
        (a,) = col.assocs
        (pc,) = a.contexts.values()
        assert a.negotiated and pc.abstract_syntax == dp.MPPS
        out[syntax] = (pcap, port, col.messages, pc.transfer_syntax)
    return out


def cut_at_nset(src, messages, dst):
    nset = next(m for m in messages if m["name"] == "N-SET-RQ")
    assert nset["raw"][:2] == b"\x40\x00"         # group 0040 first (little endian)
    return dp.cut_before(src, dst, nset["first_frame"])


@pytest.mark.interop
@pytest.mark.root
@pytest.mark.parametrize("syntax", [dp.IMPLICIT_LE, dp.EXPLICIT_LE])
def test_mpps_nset_mid_stream_syntax_proven_not_deflated(tmp_path, mpps, syntax):
    pcap, port, messages, truth = mpps[syntax]
    assert truth == syntax
    cut = cut_at_nset(pcap, messages, tmp_path / "cut.pcap")
    out = dw("assoc", "-q", "--ports", port, cut).stdout
    assert "negotiation not captured" in out and "Deflated" not in out, out
    assert proven_line(truth) in out, out
    col, _ = dp.decode(cut, port)
    names = [m["name"] for m in col.messages]
    assert names == ["N-SET-RQ", "N-SET-RSP"], names
    (a,) = col.assocs
    (pc,) = a.contexts.values()
    assert pc.transfer_syntax == truth and pc.inference.proven
    # The data set decodes as what it is.
    rsp = dw("show", "-q", "-V", "--ports", port, cut).stdout
    assert "(0040,0252) CS Performed Procedure Step Status: 'COMPLETED'" in rsp, rsp
    p = dw("expert", "-q", "-T", "json", "--ports", port, cut)
    assert "dicom.ts.unproven" not in p.stdout


def test_sample_cut_after_the_negotiation_each_syntax_proven(tmp_path):
    whole, _ = dp.decode(SAMPLE, SAMPLE_PORT)
    truth = {cid: pc.transfer_syntax for cid, pc in whole.assocs[0].contexts.items()}
    assert {dp.IMPLICIT_LE, dp.EXPLICIT_LE, dp.EXPLICIT_BE, dp.DEFLATED_LE} <= set(truth.values())
    cut = dp.cut_before(SAMPLE, tmp_path / "late.pcap", 7)       # after the A-ASSOCIATE-AC
    late, _ = dp.decode(cut, SAMPLE_PORT)
    a = late.assocs[0]
    assert not a.negotiated
    carried = {m["context"] for m in late.messages if m["size"] and m["assoc"] == a.id}
    assert carried == set(truth) - {1}                             # C-ECHO: no data set
    for cid in carried:
        pc = a.contexts[cid]
        assert (cid, pc.transfer_syntax) == (cid, truth[cid]) and pc.inference.proven
    out = dw("assoc", "-q", cut).stdout
    for uid in (dp.IMPLICIT_LE, dp.EXPLICIT_LE, dp.EXPLICIT_BE, dp.DEFLATED_LE):
        assert proven_line(uid) in out, out
    assert "dicom.ts.unproven" not in dw("expert", "-q", "-T", "json", cut).stdout


def garble(src, dst, messages, seed=7):
    """A copy of the pcap ``src`` with the data set of each of ``messages``
    (decoded from ``src``, each data set in one frame) replaced by random
    bytes of the same length: the TCP and PDU framing stay as they were."""
    head, records = dp.frames(src)
    rng = random.Random(seed)
    for m in messages:
        frame = records[m["dataset_frame"] - 1][1]
        at = bytes(frame).rfind(m["raw"])
        assert at >= 0
        frame[at:at + len(m["raw"])] = rng.randbytes(len(m["raw"]))
    return dp.write_frames(dst, head, records)


@pytest.mark.interop
@pytest.mark.root
@pytest.mark.parametrize("which", ["both", "request"])
def test_garbage_data_set_unproven_noted_and_export_marked(tmp_path, mpps, which):
    pcap, port, messages, truth = mpps[dp.EXPLICIT_LE]
    names = ["N-SET-RQ", "N-SET-RSP"] if which == "both" else ["N-SET-RQ"]
    garbled = garble(pcap, tmp_path / "garbled.pcap", [m for m in messages if m["name"] in names])
    bad = cut_at_nset(garbled, messages, tmp_path / "bad.pcap")

    col, _ = dp.decode(bad, port)
    (a,) = col.assocs
    (pc,) = a.contexts.values()
    rq = next(m for m in col.messages if m["name"] == "N-SET-RQ")
    assert rq["ts"] is None                              # not pretended implicit VR
    out = dw("assoc", "-q", "--ports", port, bad).stdout
    if which == "both":
        assert pc.transfer_syntax is None and not pc.inference.proven
        assert f"Accepted Transfer Syntax: {UNPROVEN}" in out, out
    else:
        # The response's data set proves it later on the same context.
        assert pc.transfer_syntax == truth and pc.inference.proven
        assert proven_line(truth) in out, out

    doc = json.loads(dw("expert", "-q", "-T", "json", "--ports", port, bad).stdout)
    notes = [i for i in doc["infos"] if i["name"] == "dicom.ts.unproven"]
    assert len(notes) == 1, notes                         # once per context
    assert (notes[0]["severity"], notes[0]["group"]) == ("note", "reassemble")
    assert "N-SET-RQ" in notes[0]["message"] and "context 1" in notes[0]["message"]

    shown = dw("show", "-q", "-V", "--ports", port, bad).stdout
    assert "[data set could not be decoded: ValueError: transfer syntax not proven" in shown
    assert not re.search(r"Data Set \(.*Implicit VR Little Endian\)", shown), shown
    assert "Expert Info (note/reassemble): N-SET-RQ on presentation context 1: transfer " \
        "syntax not proven" in shown

    listed = dw("export", "--list", "--ports", port, bad).stdout
    out_dir = tmp_path / "out"
    p = dw("export", "--ports", port, bad, "-o", out_dir)
    assert p.returncode == 0, p.stderr
    marked = sorted(f.name for f in out_dir.iterdir() if f.name.endswith(".dcm.unknown-ts"))
    plain = sorted(f.name for f in out_dir.iterdir() if f.name.endswith(".dcm"))
    assert len(marked) == len(names) and "transfer syntax not proven" in p.stderr, p.stderr
    assert len(plain) == 2 - len(names)
    for name in marked:
        assert name in listed, listed
        assert next(ln for ln in listed.splitlines() if name in ln).endswith(
            "(transfer syntax not proven)")
        data = (out_dir / name).read_bytes()
        assert data[128:132] == b"DICM"
        meta = pydicom.filereader.read_file_meta_info(out_dir / name)
        assert "TransferSyntaxUID" not in meta            # no syntax claimed
        assert any(data.endswith(m["raw"]) for m in dp.decode(bad, port)[0].messages
                   if m["raw"])
    for name in plain:
        ds = pydicom.dcmread(out_dir / name)
        assert ds.file_meta.TransferSyntaxUID == truth


def test_the_note_is_a_builtin_plugin_that_can_be_blocked(tmp_path):
    # The sample cut inside the CT's data set: its tail proves nothing.
    cut = dp.cut_before(SAMPLE, tmp_path / "late.pcap", 13)

    def notes(*extra):
        doc = json.loads(dw("expert", "-q", "-T", "json", *extra, cut).stdout)
        return [i for i in doc["infos"] if i["name"] == "dicom.ts.unproven"]

    (note,) = notes()
    assert "context 5" in note["message"] and "command was not captured" in note["message"]
    assert notes("-p", "no:dicom-expert-ts") == []
    fields = dw("fields").stdout.splitlines()
    assert sum(ln.split("\t")[1] == "dicom.ts.unproven" for ln in fields) == 1
