"""Hostile captures, end to end (issue 8): whole pcap files built with
tests/capgen.py and tests/dicomgen.py, run through ``dicomwire.pipeline.run``
and the commands ``show -V``, ``expert``, ``export``, each checked for a clear
report (an expert info or a one-line message), bounded memory and bounded
time, and no traceback.

What is already covered elsewhere, and not repeated here: PDU, PDV and item
framing faults driven straight into the dissector (test_dicom_hostile.py),
capture reader faults on their own (test_capture.py), TCP reassembly faults
(test_tcp.py). This file adds the cases that only show in a whole pass:
deep and unterminated data sets rendered by ``show -V``, a deflate bomb, file
names from hostile AE titles and UIDs, huge and tiny PDUs in volume, a
command set that never ends, and the flow table under a SYN flood.

Memory is measured in a child process (its own peak RSS, minus the peak of
the same command on a small capture) or with tracemalloc in process; time
is bounded by generous timeouts, never asserted as speed.
"""

from __future__ import annotations

import json
import os
import random
import resource
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib

import pytest

import capgen as g
from dicomgen import (
    APP_CONTEXT, CT_STORAGE, DATASET, ECHO_RQ, ECHO_RSP, IMPLICIT_LE, RELEASE_RP,
    RELEASE_RQ, STORE_RSP, VERIFICATION, assoc_ac, assoc_rq, element, pdata, raw_pdu,
    raw_pdv)

from dicomwire.config import Config
from dicomwire.specs.dicom.command import encode_command
from dicomwire.specs.dicom.pdu import build_pdu, item
from dicomwire.tcp import MAX_FLOWS, Reassembler, StreamSink
from support import SAMPLE, Recorder, record

T0 = 1_700_000_000_000_000_000
C, S = "192.0.2.10", "198.51.100.20"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

# pydicom warns about the invalid values these captures carry on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pydicom")


# --------------------------------------------------------------------------
# Building captures
# --------------------------------------------------------------------------

def session(steps, *, cport=40000, sport=104, mss=1460, client=C, server=S, close=True):
    """IP packets of one TCP connection: handshake; each (direction, bytes)
    step cut into ``mss``-byte segments, then ACKed by the peer; FIN both
    ways (unless ``close`` is false)."""
    mk, A = g.ipv4_tcp, g.ACK
    c, s = 1000, 5000
    pk = [mk(client, server, cport, sport, c, 0, g.SYN),
          mk(server, client, sport, cport, s, c + 1, g.SYN | A)]
    c, s = c + 1, s + 1
    pk.append(mk(client, server, cport, sport, c, s, A))
    for d, data in steps:
        for i in range(0, len(data), mss):
            piece = data[i:i + mss]
            if d == 0:
                pk.append(mk(client, server, cport, sport, c, s, g.PSH | A, piece))
                c += len(piece)
            else:
                pk.append(mk(server, client, sport, cport, s, c, g.PSH | A, piece))
                s += len(piece)
        pk.append(mk(server, client, sport, cport, s, c, A) if d == 0
                  else mk(client, server, cport, sport, c, s, A))
    if close:
        pk += [mk(client, server, cport, sport, c, s, g.FIN | A),
               mk(server, client, sport, cport, s, c + 1, g.FIN | A),
               mk(client, server, cport, sport, c + 1, s + 1, A)]
    return pk


def write_pcap(path, packets):
    path.write_bytes(g.pcap([(T0 + i * 1000, g.ethernet(p)) for i, p in enumerate(packets)]))
    return path


def store_rq(mid=2, sop_instance="1.2.826.0.1.3680043.9.7", sop_class=CT_STORAGE):
    return encode_command(dict(CommandField=0x0001, MessageID=mid, Priority=0,
                               AffectedSOPClassUID=sop_class,
                               AffectedSOPInstanceUID=sop_instance,
                               CommandDataSetType=0x0000))


def store_session(datasets, *, rq=None, ac=None, pdv=16000, mss=1460):
    """An association carrying one C-STORE per (command, data set) pair,
    data sets in PDVs of ``pdv`` bytes, each answered, then released."""
    steps = [(0, rq or assoc_rq()), (1, ac or assoc_ac())]
    for mid, (cmd, ds) in enumerate(datasets, start=2):
        pdus = [pdata((3, 3, cmd))]
        for i in range(0, len(ds), pdv):
            pdus.append(pdata((3, 2 if i + pdv >= len(ds) else 0, ds[i:i + pdv])))
        steps.append((0, b"".join(pdus)))
        steps.append((1, pdata((3, 3, encode_command(dict(
            CommandField=0x8001, MessageIDBeingRespondedTo=mid, AffectedSOPClassUID=CT_STORAGE,
            CommandDataSetType=0x0101, Status=0))))))
    steps += [(0, RELEASE_RQ), (1, RELEASE_RP)]
    return session(steps, mss=mss)


def deflated_ac():
    """An A-ASSOCIATE-AC accepting context 3 with Deflated Explicit VR LE."""
    return build_pdu("A-ASSOCIATE-AC", called_ae_title="STORESCP", calling_ae_title="MODALITY",
                     variable_items=[
                         item(0x10, APP_CONTEXT),
                         item(0x21, context_id=1, result=0, sub_items=[item(0x40, IMPLICIT_LE)]),
                         item(0x21, context_id=3, result=0, sub_items=[item(0x40, DEFLATED_LE)]),
                         item(0x50, sub_items=[item(0x51, max_length=0)])])


def explicit(group, elem, vr: bytes, value: bytes, length=None) -> bytes:
    """An Explicit VR Little Endian element (PS3.5 7.1.2)."""
    n = len(value) if length is None else length
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHI", group, elem, vr, 0, n) + value
    return struct.pack("<HH2sH", group, elem, vr, n) + value


ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
HEAD = (element(0x0008, 0x0016, CT_STORAGE.encode())
        + element(0x0008, 0x0018, b"1.2.826.0.1.3680043.9.7")
        + element(0x0010, 0x0010, b"DOE^JANE"))


def nested_sequences(depth: int) -> bytes:
    """Implicit VR LE: (0040,A730) Content Sequence, undefined length, whose
    one item holds the next one, ``depth`` levels deep, all closed."""
    opening = struct.pack("<HHI", 0x0040, 0xA730, 0xFFFFFFFF) + ITEM
    return opening * depth + (ITEM_END + SEQ_END) * depth


# --------------------------------------------------------------------------
# Running the commands
# --------------------------------------------------------------------------

_RSS_CHILD = r"""
import resource, sys
from dicomwire.cli import main
try:
    rc = main(sys.argv[1:])
finally:
    sys.stdout.flush()
    try:
        # This process's own peak (ru_maxrss would include the parent's RSS
        # at fork: Linux carries it across exec).
        with open("/proc/self/status") as f:
            peak = next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = peak // 1024 if sys.platform == "darwin" else peak
    sys.stderr.write("\nMAXRSS %d\n" % peak)
sys.exit(rc)
"""


def dw_child(*argv, timeout=120):
    """Run ``dicomwire ARGV`` in a child process: (exit status, stdout,
    stderr, peak RSS in MiB, seconds). The timeout is the time bound."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", _RSS_CHILD, *map(str, argv)],
                       capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    head, _, tail = p.stderr.rpartition("\nMAXRSS ")
    return p.returncode, p.stdout, head, int(tail) / 1024, took


@pytest.fixture(scope="module")
def baseline_rss():
    """Peak RSS of a run on the shipped sample that decodes its data sets
    (imports, plugins, pydicom): hostile captures are measured above it."""
    return dw_child("show", "-V", "-q", SAMPLE)[3]


def expert_json(cli, path, *extra):
    rc, out, _err = cli("expert", "-q", "-T", "json", path, *extra)
    doc = json.loads(out)
    return rc, {i["name"]: i for i in doc["infos"]}, doc


# --------------------------------------------------------------------------
# Data sets: 10,000-deep sequences, undefined lengths that never end
# --------------------------------------------------------------------------

def test_ten_thousand_deep_sequences_show_expert_and_export(tmp_path, cli):
    deep = HEAD + nested_sequences(10_000)
    cap = write_pcap(tmp_path / "deep.pcap", store_session([(store_rq(), deep)]))
    t0 = time.monotonic()
    rc, out, err = cli("show", "-V", cap)
    assert rc == 0
    # The PDU that completes the data set says what is wrong; the tree says
    # the data set could not be shown instead of recursing 10,000 levels.
    line = next(ln for ln in out.splitlines() if "Data Set (" in ln and "P-DATA" in ln)
    assert "[error: dicom.dataset.malformed]" in line
    assert "nesting deeper than 64 levels" in out
    assert "[data set could not be decoded:" in out
    assert "C-STORE-RSP ID=2 (Success)" in out and "A-RELEASE response" in out

    rc, infos, _ = expert_json(cli, cap)
    assert "nesting deeper than" in infos["dicom.dataset.malformed"]["message"]
    assert "plugin.failed" not in infos

    # A display filter on a data set keyword must decode the set: it fails
    # quietly (no match), it does not stop the run.
    rc, out, _ = cli("show", "-q", "-Y", 'PatientName == "DOE^JANE"', cap)
    assert rc == 0

    # Export writes the bytes as received; naming by study/series (which
    # decodes the data set) falls back to "unknown".
    rc, out, _ = cli("export", "-q", cap, "-o", tmp_path / "out",
                    "--name", "{study}/{series}/{sop}")
    assert rc == 0 and "1 object(s) written" in out
    (f,) = (tmp_path / "out").rglob("*.dcm")
    assert f.relative_to(tmp_path / "out").parts[:2] == ("unknown", "unknown")
    assert f.read_bytes().endswith(deep)
    assert time.monotonic() - t0 < 120


@pytest.mark.parametrize("case", ["sequence", "item", "encapsulated pixel data", "UN"])
def test_undefined_lengths_that_never_end(tmp_path, cli, case):
    if case == "sequence":          # a sequence whose delimiter never comes
        tail = struct.pack("<HHI", 0x0040, 0xA730, 0xFFFFFFFF) + ITEM + HEAD + ITEM_END
    elif case == "item":            # an item that never ends, inside a sequence
        tail = struct.pack("<HHI", 0x0040, 0xA730, 0xFFFFFFFF) + ITEM + HEAD * 20
    elif case == "encapsulated pixel data":   # fragments without a sequence delimiter
        tail = (struct.pack("<HHI", 0x7FE0, 0x0010, 0xFFFFFFFF)
                + struct.pack("<HHI", 0xFFFE, 0xE000, 0)
                + struct.pack("<HHI", 0xFFFE, 0xE000, 64) + bytes(64))
    else:                           # UN of undefined length (implicit VR inside)
        tail = struct.pack("<HHI", 0x0009, 0x1010, 0xFFFFFFFF) + ITEM + HEAD
    ds = HEAD + tail
    cap = write_pcap(tmp_path / "undef.pcap", store_session([(store_rq(), ds)]))
    rc, out, _ = cli("show", "-V", cap)
    assert rc == 0 and "C-STORE-RSP ID=2 (Success)" in out
    rc, infos, _ = expert_json(cli, cap)
    # Wireshark's "early termination of tag": the set ends before its
    # undefined-length element does.
    tag = infos["dicom.data.tag.missing"]["message"]
    assert "C-STORE-RQ ID=2" in tag and "never ends" in tag
    assert "plugin.failed" not in infos
    rc, out, _ = cli("export", "-q", cap, "-o", tmp_path / "out")
    assert rc == 0 and "1 object(s) written" in out


# --------------------------------------------------------------------------
# A deflate bomb
# --------------------------------------------------------------------------

def deflate_bomb(inflated: int) -> bytes:
    """A Deflated Explicit VR LE data set (PS3.5 A.5) that inflates to
    ``inflated`` bytes: a few elements, then Pixel Data of zeros. Built from
    one fully flushed deflate block of 16 MiB of zeros, repeated: each is
    byte aligned and independent, so the stream stays valid."""
    head = (explicit(0x0008, 0x0016, b"UI", CT_STORAGE.encode())
            + explicit(0x0008, 0x0018, b"UI", b"1.2.826.0.1.3680043.9.7\0")
            + explicit(0x7FE0, 0x0010, b"OB", b"", length=inflated))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    unit = 16 << 20
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = z.compress(bytes(unit)) + z.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(inflated, unit)
    t = zlib.compressobj(9, zlib.DEFLATED, -15)
    return out + block * n + t.compress(bytes(rest)) + t.flush()


@pytest.fixture(scope="module")
def bomb_capture(tmp_path_factory):
    bomb = deflate_bomb(2 << 30)                      # 2 GiB of pixel data
    assert len(bomb) < 4 << 20
    path = tmp_path_factory.mktemp("bomb") / "bomb.pcap"
    return write_pcap(path, store_session([(store_rq(), bomb)], ac=deflated_ac(),
                                          pdv=60000, mss=60000)), bomb


def test_deflate_bomb_shown_within_bounded_memory(bomb_capture, baseline_rss):
    cap, _bomb = bomb_capture
    rc, out, err, rss, took = dw_child("show", "-V", cap)
    assert rc == 0, err
    assert "C-STORE-RQ ID=2 CT Image Storage" in out
    assert "[data set could not be decoded: ValueError: deflated data set of" in out
    assert "(a deflate bomb?): not decoded]" in out
    # Inflating it whole would take 2 GiB (4 with zlib's output buffer);
    # the bound is 64 times its wire size here (about 130 MB).
    assert rss - baseline_rss < 512, (rss, baseline_rss)
    print(f"deflate bomb: show -V {took:.1f} s, peak RSS {rss:.0f} MiB "
          f"(baseline {baseline_rss:.0f})")


def test_deflate_bomb_exported_as_received(bomb_capture, tmp_path, cli):
    cap, bomb = bomb_capture
    rc, out, _ = cli("export", "-q", cap, "-o", tmp_path)
    assert rc == 0 and "1 object(s) written" in out
    (f,) = tmp_path.iterdir()
    data = f.read_bytes()
    assert data.endswith(bomb)                        # as it crossed the wire
    meta = data[:len(data) - len(bomb)]
    assert b"DICM" in meta[:132] and DEFLATED_LE.encode() in meta


@pytest.mark.parametrize("pixels", ["1 MiB of noise (ratio 1)", "8 MiB of zeros (ratio 1000)"])
def test_deflated_data_sets_within_the_bounds_still_decode(tmp_path, cli, pixels):
    # The bound is a ratio (64) above a floor (16 MiB): ordinary data sets,
    # and small ones however compressible, are shown.
    value = random.Random(3).randbytes(1 << 20) if "noise" in pixels else bytes(8 << 20)
    raw = (explicit(0x0008, 0x0016, b"UI", CT_STORAGE.encode())
           + explicit(0x0008, 0x0018, b"UI", b"1.2.826.0.1.3680043.9.7\0")
           + explicit(0x0010, 0x0010, b"PN", b"DOE^JANE")
           + explicit(0x7FE0, 0x0010, b"OB", value))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    ds = c.compress(raw) + c.flush()
    cap = write_pcap(tmp_path / "defl.pcap", store_session([(store_rq(), ds)], ac=deflated_ac()))
    rc, out, _ = cli("show", "-V", cap)
    assert rc == 0 and "(0010,0010) PN Patient's Name: DOE^JANE" in out
    assert f"(7FE0,0010) OB Pixel Data: <{len(value)} bytes>" in out
    assert "could not be decoded" not in out


# --------------------------------------------------------------------------
# File names from hostile AE titles and UIDs
# --------------------------------------------------------------------------

HOSTILE_UIDS = ["../../../../tmp/evil", "/etc/passwd", "..", ".", "a/../../b",
                "1.2\x00/../x", "\x01\x1b[31m\x7f", "C:\\Windows\\x", "....//....//", ""]


@pytest.mark.parametrize("template", ["{frame:06d}-{n}-{what}", "{calling}/{called}/{sop}",
                                      "{study}/{series}/{sop}", "{called}/../../{sop}"])
def test_export_names_from_hostile_ae_titles_and_uids_stay_inside(tmp_path, cli, template):
    rq = assoc_rq(calling="../..\x00/\x1b[2J", called="..")
    pairs = []
    for i, uid in enumerate(HOSTILE_UIDS):
        ds = (element(0x0008, 0x0016, CT_STORAGE.encode()) + element(0x0008, 0x0018, uid.encode())
              + element(0x0020, 0x000D, f"../{uid}".encode())
              + element(0x0020, 0x000E, uid.encode()) + DATASET[-(8 + 1024):])
        pairs.append((store_rq(mid=2 + i, sop_instance=uid), ds))
    cap = write_pcap(tmp_path / "names.pcap", store_session(pairs, rq=rq))
    out_dir = tmp_path / "deep" / "out"
    for _ in range(2):                                # a second export never overwrites
        rc, out, _ = cli("export", "-q", cap, "-o", out_dir, "--name", template)
        assert rc == 0 and f"{len(pairs)} object(s) written" in out
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    written = [p for p in files if p != cap]
    assert len(written) == 2 * len(pairs)
    for p in written:
        assert out_dir.resolve() in p.resolve().parents, p
        rel = p.relative_to(out_dir)
        for part in rel.parts:
            assert part not in ("", ".", "..") and part.isprintable() and "\\" not in part
            assert not part.startswith("."), part


# --------------------------------------------------------------------------
# PDUs: 0xFFFFFFFF lengths, overrunning items, zero-length items, 256
# context ids, a command set that never ends, millions of tiny PDUs
# --------------------------------------------------------------------------

def _patch_length(pdu: bytes, header: bytes, new_len: int) -> bytes:
    """Set the 16-bit length of the first item starting with ``header``."""
    at = pdu.index(header)
    return pdu[:at + 2] + struct.pack(">H", new_len) + pdu[at + 4:]


def _hostile_pdus_capture(tmp_path):
    rq = assoc_rq()
    overrun = _patch_length(rq, b"\x30\x00", 0x7FFF)        # abstract syntax past its context
    zero_items = raw_pdu(1, rq[6:74] + b"\x10\x00\x00\x00" + b"\x20\x00\x00\x00"
                         + b"\x50\x00\x00\x00")
    steps = [(0, overrun), (1, assoc_ac()),
             (0, zero_items),                                # zero-length items
             (1, raw_pdu(7, b"\0\0\2\1", length=0xFFFFFFFF)),  # absurd A-ABORT length
             (0, pdata((1, 3, ECHO_RQ))), (1, pdata((1, 3, ECHO_RSP))),
             # A 4 GiB P-DATA-TF is legal framing: what follows is inside it.
             (0, raw_pdu(4, raw_pdv(len(ECHO_RQ) + 2, 1, 3, ECHO_RQ), length=0xFFFFFFFF)
              + pdata((1, 3, ECHO_RQ)) + RELEASE_RQ),
             (1, RELEASE_RP)]
    return write_pcap(tmp_path / "pdus.pcap", session(steps))


def test_hostile_association_pdus_through_every_command(tmp_path, cli):
    cap = _hostile_pdus_capture(tmp_path)
    rc, out, _ = cli("show", "-V", cap)
    assert rc == 0
    assert out.count("P-DATA, C-ECHO-RQ ID=1") == 2 and "C-ECHO-RSP ID=1 (Success)" in out
    assert "A-RELEASE response" in out
    rc, infos, doc = expert_json(cli, cap)
    found = {}
    for i in doc["infos"]:
        found.setdefault(i["name"], []).append(i["message"])
    # Items overrunning their parents: Wireshark's invalid item length.
    overruns = found["dicom.assoc.item.len.invalid"]
    assert any("expected 32767" in m for m in overruns)
    assert any("context_id" in m for m in overruns)
    assert any("4294967295" in m for m in found["dicom.pdu_length.invalid"])
    assert found["dicom.pdu.too_large"] == [
        "P-DATA-TF of 4294967295 bytes; the receiver accepts at most 32768"]
    assert "plugin.failed" not in found
    rc, out, _ = cli("export", "-q", cap, "-o", tmp_path / "out", "--min-size", "0")
    assert rc == 0 and "object(s) written" in out


def test_item_overrunning_its_parent_is_an_item_length_finding(tmp_path, cli):
    cap = _hostile_pdus_capture(tmp_path)
    rc, infos, _ = expert_json(cli, cap)
    # Filed as Wireshark's invalid item length, naming the item that overran.
    assert "variable_items" in infos["dicom.assoc.item.len.invalid"]["message"]


def test_a_pdv_on_every_one_of_256_context_ids(tmp_path, cli):
    body = b"".join(pdata((cid, 3, ECHO_RQ)) for cid in range(256))
    cap = write_pcap(tmp_path / "ctx.pcap", session([(0, assoc_rq()), (1, assoc_ac()),
                                                     (0, body), (0, RELEASE_RQ),
                                                     (1, RELEASE_RP)]))
    rc, out, _ = cli("show", cap)
    assert rc == 0 and out.count("C-ECHO-RQ ID=1") == 256
    rc, infos, doc = expert_json(cli, cap)
    per_name = {}
    for i in doc["infos"]:
        per_name[i["name"]] = per_name.get(i["name"], 0) + 1
    assert per_name["dicom.pdv.ctx.invalid"] == 128            # the even ids
    assert "plugin.failed" not in per_name


def test_a_command_set_that_never_ends_is_kept_bounded(tmp_path):
    # A P-DATA-TF of length 0xFFFFFFFF whose one command PDV claims 4 GiB:
    # 24 MiB of it cross the wire. Only the first MiB of a command is kept.
    junk = random.Random(5).randbytes(24 << 20)
    pdu = raw_pdu(4, raw_pdv(0xFFFFFFF0, 1, 3) + junk, length=0xFFFFFFFF)
    cap = write_pcap(tmp_path / "cmd.pcap", session([(0, assoc_rq()), (1, assoc_ac()),
                                                     (0, pdu)], mss=60000))
    rec = Recorder(message=lambda m: (m.complete, list(m.problems), len(m.command_bytes)))
    tracemalloc.start()
    try:
        result = record(cap, rec)                  # no plugin error
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (complete, problems, kept), = rec.messages
    assert not complete and kept == 1 << 20
    assert any("only its first 1048576 bytes were kept" in p for p in problems)
    names = {i.field.name for i in result.expert.infos}
    assert "dicom.message.incomplete" in names
    assert peak < 16 << 20, peak          # the 24 MiB never sit in memory at once


TINY_PDUS = int(os.environ.get("DICOMWIRE_TINY_PDUS", 1_000_000))


@pytest.fixture(scope="module")
def tiny_capture(tmp_path_factory):
    """A C-STORE whose data set comes in TINY_PDUS one-byte P-DATA-TF PDUs
    (13 bytes each on the wire), then a C-ECHO; TCP segments of 60 kB."""
    data = random.Random(11).randbytes(TINY_PDUS)
    # By hand (build_pdu would take minutes): PDU header, PDV header, 1 byte.
    more, last = raw_pdu(4, raw_pdv(3, 3, 0, b"?")), raw_pdu(4, raw_pdv(3, 3, 2, b"?"))
    assert more == pdata((3, 0, b"?"))
    pdus = [more[:-1] + data[i:i + 1] for i in range(TINY_PDUS - 1)]
    pdus.append(last[:-1] + data[-1:])
    steps = [(0, assoc_rq()), (1, assoc_ac()),
             (0, pdata((3, 3, store_rq())) + b"".join(pdus)), (1, pdata((3, 3, STORE_RSP))),
             (0, pdata((1, 3, ECHO_RQ))), (1, pdata((1, 3, ECHO_RSP))),
             (0, RELEASE_RQ), (1, RELEASE_RP)]
    path = tmp_path_factory.mktemp("tiny") / "tiny.pcap"
    return write_pcap(path, session(steps, mss=60000)), data


@pytest.mark.slow
def test_a_million_tiny_pdus(tiny_capture, baseline_rss, tmp_path):
    # Export decodes every PDU and message (the expert checks run too) and
    # writes the data set: exact, in bounded memory and time, no problems.
    cap, data = tiny_capture
    rc, out, err, rss, took = dw_child("export", "--fail-on", "problems", cap, "-o", tmp_path,
                                       timeout=300)
    assert rc == 0 and "1 object(s) written" in out, err
    assert "warning" not in err, err
    (f,) = tmp_path.iterdir()
    assert f.read_bytes().endswith(data)
    assert rss - baseline_rss < 64, (rss, baseline_rss)
    print(f"{TINY_PDUS} tiny PDUs: export {took:.1f} s, peak RSS {rss:.0f} MiB "
          f"(baseline {baseline_rss:.0f})")


def test_message_assembly_memory_is_bounded_per_fragment():
    # What tiny PDVs cost in the message that collects them: each 2-byte
    # fragment is a bytes object and a list slot (~43 bytes of memory for 2
    # of data), so the data set is spooled by count as well as by size; a
    # command keeps at most MAX_COMMAND bytes, in a few parts.
    from dicomwire.plugins.dicom.model import MAX_COMMAND, Message
    n = 250_000
    wire = random.Random(2).randbytes(2 * n)
    huge = bytes(3 * MAX_COMMAND)
    tracemalloc.start()
    try:
        m = Message(None, 0, 1, 1, 0)
        for i in range(0, 2 * n, 2):
            m.add_data(wire[i:i + 2])
        c = Message(None, 0, 1, 1, 0)
        for i in range(0, 200_000, 2):
            c.add_command(wire[i:i + 2])
        c.add_command(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert m.dataset_len == 2 * n and m.dataset_bytes() == wire
    c.finish_command()
    assert len(c.command_bytes) == MAX_COMMAND and c.command_bytes[:200_000] == wire[:200_000]
    assert any(f"command set of {200_000 + 3 * MAX_COMMAND} bytes" in p for p in c.problems)
    # Unbounded, the data set alone would hold ~11 MB of bookkeeping.
    assert peak < 6 << 20, peak
    m.release()


def _raw_tcp_frames(payloads, sport=40000, dport=104, seq=1000):
    """Ethernet/IPv4/TCP frames carrying ``payloads`` in order, by hand
    (checksums left zero: dicomwire does not check them, and computing
    them in Python for tens of MB would dominate the test)."""
    out = []
    for p in payloads:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(p), 1, 0x4000, 64, 6, 0,
                         g.addr(C), g.addr(S))
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 0x50, g.PSH | g.ACK, 65535, 0, 0)
        out.append(g.ethernet(ip + tcp + p))
        seq += len(p)
    return out


def test_mid_stream_capture_of_a_large_object_stays_bounded(tmp_path, monkeypatch):
    # The capture began after the A-ASSOCIATE exchange: the context's
    # transfer syntax is inferred from the data set's first bytes, without
    # reading a spooled data set back whole (spooling from 4 MiB here).
    from dicomwire.plugins.dicom import spool
    monkeypatch.setattr(spool, "SPOOL_AT", 4 << 20)
    size = 24 << 20
    chunk = random.Random(9).randbytes(1 << 20)
    ds = HEAD + struct.pack("<HHI", 0x7FE0, 0x0010, size) + chunk * (size >> 20)
    stream = pdata((1, 3, store_rq())) + b"".join(
        raw_pdu(4, raw_pdv(min(1 << 20, len(ds) - i) + 2, 1, 2 if i + (1 << 20) >= len(ds)
                           else 0, ds[i:i + (1 << 20)])) for i in range(0, len(ds), 1 << 20))
    frames = _raw_tcp_frames([stream[i:i + 60000] for i in range(0, len(stream), 60000)])
    cap = tmp_path / "mid.pcap"
    cap.write_bytes(g.pcap([(T0 + i * 1000, f) for i, f in enumerate(frames)]))
    rec = Recorder(message=lambda m: (m.name, m.dataset_len, m.transfer_syntax))
    tracemalloc.start()
    try:
        record(cap, rec, allow_errors=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rec.messages == [("C-STORE-RQ", len(ds), IMPLICIT_LE)]
    assert peak < 12 << 20, f"peak {peak >> 20} MiB for a {len(ds) >> 20} MiB data set"


# --------------------------------------------------------------------------
# Capture files: 4 GiB block lengths and cuts, with DICOM before the damage
# --------------------------------------------------------------------------

def _echo_packets():
    return session([(0, assoc_rq()), (1, assoc_ac()), (0, pdata((1, 3, ECHO_RQ))),
                    (1, pdata((1, 3, ECHO_RSP)))], close=False)


@pytest.mark.parametrize("damage", ["pcap record 0xFFFFFFFF", "pcapng block 4 GiB",
                                    "pcap cut mid-record", "pcapng cut mid-block"])
def test_damaged_capture_keeps_what_came_before(tmp_path, cli, damage):
    frames = [(T0 + i * 1000, g.ethernet(p)) for i, p in enumerate(_echo_packets())]
    if damage.startswith("pcapng"):
        good = g.simple_pcapng(frames)
        data = (good + struct.pack("<II", 6, 0xFFFFFFFC) + bytes(64)
                if "4 GiB" in damage else good[:-7])
    else:
        good = g.pcap(frames)
        data = (good + struct.pack("<IIII", 1, 2, 0xFFFFFFFF, 60) + bytes(100)
                if "0xFFFFFFFF" in damage else good[:-7])
    cap = tmp_path / "damaged.cap"
    cap.write_bytes(data)
    rc, out, err = cli("show", cap)
    assert rc == 0 and "C-ECHO-RQ ID=1" in out
    assert "dicomwire: warning:" in err and "byte offset" in err
    rc, infos, _ = expert_json(cli, cap, "--fail-on", "problems")
    assert rc == 1 and "stopped reading" in infos["capture.damaged"]["message"]


# --------------------------------------------------------------------------
# The flow table: a SYN flood of 100,000 half-open flows
# --------------------------------------------------------------------------

def syn_flood(n, legit_steps, every):
    """Frames: a real association to port 104 whose segments are spread
    through ``n`` SYNs from distinct (spoofed) clients, one every ``every``
    SYNs. SYN frames are patched copies of one template (source address and
    port), checksums left as they are: dicomwire does not check them."""
    legit = [g.ethernet(p) for p in session(legit_steps)]
    tpl = bytearray(g.ethernet(g.ipv4_tcp("10.9.0.1", S, 1024, 104, 77, 0, g.SYN)))
    frames, k = [], 0
    head = legit[:6]                      # handshake, A-ASSOCIATE-RQ and -AC
    rest = legit[6:]
    frames += head
    for i in range(n):
        tpl[28:30] = struct.pack("!H", i >> 14)            # 10.9.x.y
        tpl[34:36] = struct.pack("!H", 1024 + (i & 0x3FFF))
        frames.append(bytes(tpl))
        if i % every == every - 1 and k < len(rest):
            frames.append(rest[k])
            k += 1
    frames += rest[k:]
    return g.pcap([(T0 + i * 1000, f) for i, f in enumerate(frames)])


@pytest.mark.slow
def test_syn_flood_of_100000_half_open_flows(tmp_path, baseline_rss):
    n, limit = 100_000, 10_000
    stores = [(0, pdata((3, 3, store_rq(mid=2 + i)), (3, 2, DATASET))) for i in range(8)]
    steps = ([(0, assoc_rq()), (1, assoc_ac())]
             + [s for st in stores for s in (st, (1, pdata((3, 3, STORE_RSP))))]
             + [(0, RELEASE_RQ), (1, RELEASE_RP)])
    cap = tmp_path / "flood.pcap"
    cap.write_bytes(syn_flood(n, steps, every=5000))
    rc, out, err, rss, took = dw_child("expert", "-T", "json", "-o", f"tcp.max_flows:{limit}",
                                       cap, timeout=300)
    assert rc == 0, err
    infos = json.loads(out)["infos"]
    (ev,) = [i for i in infos if i["name"] == "tcp.flows.evicted"]
    count = int(ev["message"].split()[0])
    assert n - limit <= count <= n - limit + limit // 10 + 1
    assert f"{count} never carried payload" in ev["message"]
    assert f"more than {limit} were tracked" in ev["message"]
    # The association that went on during the flood lost nothing.
    names = [i["name"] for i in infos]
    assert not {"dicom.message.incomplete", "dicom.assoc.no_release", "tcp.gap",
                "plugin.failed"} & set(names), names
    # Tracking all 100,000 would hold about 200 MiB; a table of 10,000
    # holds a tenth of that.
    assert rss - baseline_rss < 96, (rss, baseline_rss)
    print(f"SYN flood {n}: expert {took:.1f} s, peak RSS {rss:.0f} MiB "
          f"(baseline {baseline_rss:.0f}), {count} evicted")


def test_flow_limit_defaults_and_preference(cli):
    assert Config().max_flows == MAX_FLOWS
    rc, out, _ = cli("prefs", "-o", "tcp.max_flows:123")
    line = next(ln for ln in out.splitlines() if ln.startswith("tcp.max_flows"))
    assert line.split()[1:3] == ["123", "-o"]


# -- the eviction policy, on the reassembler itself --

class Events(StreamSink):
    def __init__(self):
        self.got, self.gaps, self.closed, self.evictions = {}, [], [], []

    def data(self, stream, direction, offset, payload, frame, ts):
        self.got.setdefault((stream.id, direction), []).append((offset, bytes(payload)))

    def gap(self, stream, direction, offset, size, frame, ts):
        self.gaps.append((stream.id, direction, offset, size))

    def stream_close(self, stream):
        self.closed.append((stream.id, stream.close_reason))

    def flows_evicted(self, reasm, count, dropped, frame):
        self.evictions.append((count, dropped, frame))


def _flow(i, sport=104):
    src = bytes([10, 1, i >> 8 & 0xFF, i & 0xFF])
    return src + bytes([10, 0, 0, 2]) + (2000 + i).to_bytes(2, "big") + sport.to_bytes(2, "big")


def test_eviction_prefers_half_open_then_idle_and_flushes_what_it_held():
    ev = Events()
    r = Reassembler(ev, max_flows=10)
    SYN, ACK, PSH = 2, 16, 8
    frame = 0

    def feed(flow, seq, flags, payload=b""):
        nonlocal frame
        frame += 1
        r.feed(frame, frame * 1000, (flow, seq, 0, flags, payload, 0))

    # Flow 0: data in order, then a segment beyond a hole (held out of order).
    feed(_flow(0), 100, SYN)
    feed(_flow(0), 101, ACK | PSH, b"hello")
    feed(_flow(0), 111, ACK | PSH, b"world")            # bytes 106-110 never seen
    # Flows 1-4: busy and recently active; flows 5-9: SYN only.
    for i in range(1, 5):
        feed(_flow(i), 1, SYN)
        feed(_flow(i), 2, ACK | PSH, b"x" * i)
    for i in range(5, 10):
        feed(_flow(i), 1, SYN)
    for i in range(1, 5):                                 # flow 0 is now the idlest
        feed(_flow(i), 2 + i, ACK | PSH, b"y")
    # The table is full: each new flow makes room for a tenth of the table
    # (two here), taking the oldest half-open flows first.
    def evicted():
        return [sid for sid, why in ev.closed if why == "evicted"]

    feed(_flow(10), 1, SYN)
    assert evicted() == [5, 6]
    for i in range(11, 14):
        feed(_flow(i), 1, SYN)
    assert evicted() == [5, 6, 7, 8]
    # Flows that start mid-stream with payload: once the half-open ones are
    # gone, the least recently active flow goes, flow 0 (frame 3).
    for i in range(14, 20):
        feed(_flow(i), 1, ACK | PSH, b"mid-stream")
    assert evicted() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 0]
    # Flow 0's held bytes were not lost: the hole became a gap, then "world".
    assert ev.got[(0, 0)] == [(0, b"hello"), (10, b"world")]
    assert (0, 0, 5, 5) in ev.gaps
    # A later segment of an evicted flow starts a new stream (mid-stream);
    # room is made by the two least recently active, flows 1 and 2.
    feed(_flow(0), 116, ACK | PSH, b"again")
    assert evicted()[-2:] == [1, 2]
    assert r.streams[-1].id == 20 and r.streams[-1].client_known is False
    r.finish()
    # Reported once: 12 evicted, 9 of them half-open (left out of the list),
    # the first at frame 21.
    assert ev.evictions == [(12, 9, 21)]
    assert [s.id for s in r.streams] == [i for i in range(21) if not 5 <= i <= 13]
    assert len(r.flows) <= 2 * r.max_flows
    ids = [sid for sid, _why in ev.closed]
    assert len(ids) == len(set(ids)) == 21


def test_eviction_forgets_closed_flows_first_and_keeps_their_rows():
    ev = Events()
    r = Reassembler(ev, max_flows=4)
    frame = 0
    for i in range(12):                                   # each refused: SYN, RST
        frame += 2
        r.feed(frame - 1, frame, (_flow(i), 1, 0, 2, b"", 0))
        r.feed(frame, frame, (_flow(i)[4:8] + _flow(i)[:4] + _flow(i)[10:] + _flow(i)[8:10],
                              0, 2, 0x14, b"", 0))
    r.finish()
    assert [why for _sid, why in ev.closed] == ["refused"] * 12
    assert len(r.streams) == 12 and ev.evictions == []    # forgotten, not evicted
    assert len(r.flows) <= 8
