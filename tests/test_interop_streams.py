"""Real DICOM traffic on loopback, captured with tcpdump, through the pipeline.

(a) pynetdicom SCU -> pynetdicom SCP: C-ECHO, then C-ECHO and C-STOREs;
(b) DCMTK storescu -> storescp (bit-preserving) with a multi-frame object of
a few MB, so the stream spans many segments.

Each capture is run through :func:`dicomwire.pipeline.run` with a recording
dissector plugin; its bytes are checked against tshark's own reassembly
(``-z follow,tcp,raw``) and, independently, against DICOM framing (PDUs that
consume the stream exactly, PDV payloads that rebuild the objects sent).
Every test skips cleanly when packets cannot be captured here.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import peers

from dicomwire.hookspecs import hookimpl
from dicomwire.host import PluginHost
from dicomwire.pipeline import run
from support import QUIET, SAMPLE, dw

PDU_TYPES = set(range(1, 8))


# --------------------------------------------------------------------------
# Recording plugin
# --------------------------------------------------------------------------

class Recorder:
    """A stream dissector that keeps every byte, per direction."""

    def __init__(self, stream):
        self.stream = stream
        self.buf = (bytearray(), bytearray())
        self.gaps = []
        self.closes = 0

    def data(self, direction, offset, payload, frame, ts):
        assert offset == len(self.buf[direction]), "data not contiguous"
        assert not self.closes
        self.buf[direction].extend(payload)          # a memoryview: copy now

    def gap(self, direction, offset, size, frame, ts):
        self.gaps.append((direction, offset, size))

    def close(self):
        self.closes += 1


class RecPlugin:
    def __init__(self):
        self.rec: dict[int, Recorder] = {}
        self.opened: list[int] = []
        self.closed: list[tuple[int, str]] = []

    @hookimpl
    def dicomwire_stream_open(self, stream):
        self.opened.append(stream.id)

    @hookimpl
    def dicomwire_stream_dissector(self, stream, direction, payload):
        assert stream.id not in self.rec
        self.rec[stream.id] = r = Recorder(stream)
        return r

    @hookimpl
    def dicomwire_stream_close(self, stream):
        self.closed.append((stream.id, stream.close_reason))


def run_recorded(pcap, *extra_plugins):
    host = PluginHost(builtins={}, entry_points=False, stderr=io.StringIO())
    rec = RecPlugin()
    host.register(rec, "rec")
    for name, plugin in extra_plugins:
        host.register(plugin, name)
    result = run(str(pcap), host=host)
    return result, rec, host


# --------------------------------------------------------------------------
# DICOM framing and tshark's reassembly
# --------------------------------------------------------------------------

def walk_pdus(buf):
    """(type, body) of each PDU; the PDUs must consume ``buf`` exactly."""
    out, at = [], 0
    while at < len(buf):
        assert at + 6 <= len(buf), f"PDU header cut at {at}"
        ptype, _reserved, length = struct.unpack_from(">BBI", buf, at)
        assert ptype in PDU_TYPES, f"PDU type {ptype} at offset {at}"
        assert at + 6 + length <= len(buf), f"PDU at {at} overruns the stream"
        out.append((ptype, bytes(buf[at + 6:at + 6 + length])))
        at += 6 + length
    assert at == len(buf)
    return out


def messages(pdus):
    """P-DATA-TF PDVs -> list of (is_command, bytes) per complete fragment run."""
    out, cur = [], {True: bytearray(), False: bytearray()}
    for ptype, body in pdus:
        if ptype != 4:
            continue
        at = 0
        while at < len(body):
            (length,) = struct.unpack_from(">I", body, at)
            assert length >= 2 and at + 4 + length <= len(body)
            _pcid, hdr = body[at + 4], body[at + 5]
            cmd, last = bool(hdr & 1), bool(hdr & 2)
            cur[cmd].extend(body[at + 6:at + 4 + length])
            if last:
                out.append((cmd, bytes(cur[cmd])))
                cur[cmd] = bytearray()
            at += 4 + length
        assert at == len(body)
    assert not cur[True] and not cur[False], "unfinished PDV fragments"
    return out


def tshark_follow(pcap, index):
    """tshark's reassembled bytes of TCP stream ``index``: (node 0, node 1)."""
    res = subprocess.run(["tshark", "-n", "-r", str(pcap), "-q", "-z",
                          f"follow,tcp,raw,{index}"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    nodes = (bytearray(), bytearray())
    body = False
    for line in res.stdout.splitlines():
        if line.startswith("====="):
            body = False
            continue
        if line.startswith("Node 1:"):
            body = True
            continue
        if not body or not line.strip():
            continue
        if line.startswith("\t"):
            nodes[1].extend(bytes.fromhex(line.strip()))
        else:
            nodes[0].extend(bytes.fromhex(line.strip()))
    return nodes


def tshark_stream_count(pcap):
    res = subprocess.run(["tshark", "-n", "-r", str(pcap), "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return len({x for x in res.stdout.split() if x})


def check_stream(pcap, result, rec, sid, tshark_index):
    """The common assertions for one complete, clean stream."""
    s = result.streams[sid]
    assert s.client_known and s.syn and s.synack
    assert s.close_reason == "fin"
    for d in s.dirs:
        assert d.gaps == 0 and d.gap_bytes == 0 and d.conflicts == 0
    r = rec.rec[sid]
    assert r.gaps == [] and r.closes == 1
    assert (len(r.buf[0]), len(r.buf[1])) == (s.dirs[0].bytes, s.dirs[1].bytes)
    c2s, s2c = walk_pdus(r.buf[0]), walk_pdus(r.buf[1])
    assert c2s[0][0] == 1 and c2s[-1][0] == 5          # A-ASSOCIATE-RQ .. A-RELEASE-RQ
    assert s2c[0][0] == 2 and s2c[-1][0] == 6          # A-ASSOCIATE-AC .. A-RELEASE-RP
    if shutil.which("tshark"):
        t0, t1 = tshark_follow(pcap, tshark_index)
        assert bytes(r.buf[0]) == bytes(t0)
        assert bytes(r.buf[1]) == bytes(t1)
    return c2s, s2c


# --------------------------------------------------------------------------
# Captures (one per module)
# --------------------------------------------------------------------------

def _pixels(n, seed):
    """n bytes of noise (no numpy: it is not among the test dependencies)."""
    return random.Random(seed).randbytes(n)


def _dataset(n_pixels_bytes, seed):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    side = int((n_pixels_bytes // 2) ** 0.5)
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Interop^Streams"
    ds.PatientID = f"IS{seed}"
    ds.Modality = "CT"
    if side:
        ds.Rows = ds.Columns = side
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = _pixels(2 * side * side, seed)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def capture_retrying(pcap, port, talk, attempts=4):
    """Run ``talk()`` under :func:`peers.capture`; capture again when tcpdump
    lost packets (the kernel ring overflows when the machine is busy and a
    few MB cross loopback in 64 KB segments). Skips, saying why, if every
    attempt lost packets: that is the capture's fault, not the pipeline's."""
    last = None
    for _ in range(attempts):
        try:
            with peers.capture(pcap, port) as cap:
                talk()
            return cap
        except peers.CaptureError as e:
            if "dropped" not in str(e) and "wrote" not in str(e):
                raise
            last = e
    pytest.skip(f"tcpdump lost packets in {attempts} captures in a row "
                f"(machine too busy?): {last}")


@pytest.fixture(scope="module")
def pynetdicom_capture(tmp_path_factory):
    peers.require_capture()
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, Verification
    from pydicom.uid import ExplicitVRLittleEndian

    pcap = tmp_path_factory.mktemp("pynetdicom") / "pynetdicom.pcap"
    sent = [_dataset(0, 1), _dataset(64 << 10, 2), _dataset(400 << 10, 3)]
    port = peers.free_port()
    server = peers.start_scp(port)

    def talk():
        ae = AE("INTEROP")
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 15
        ae.add_requested_context(Verification)
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        # Association 1: C-ECHO only.
        assoc = ae.associate(peers.LOOPBACK, port, ae_title="STORESCP")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
        # Association 2: C-ECHO and C-STOREs.
        assoc = ae.associate(peers.LOOPBACK, port, ae_title="STORESCP")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        for ds in sent:
            assert assoc.send_c_store(ds).Status == 0
        assoc.release()

    try:
        cap = capture_retrying(pcap, port, talk)
    finally:
        peers.stop_scp(server)
    got = [ds.SOPInstanceUID for ds in server.received[-len(sent):]]
    assert got == [ds.SOPInstanceUID for ds in sent]
    return pcap, port, sent, cap


@pytest.fixture(scope="module")
def dcmtk_capture(tmp_path_factory):
    peers.require_capture()
    if not peers.have_dcmtk("storescu", "storescp"):
        pytest.skip("DCMTK storescu/storescp not installed")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    tmp = tmp_path_factory.mktemp("dcmtk")
    # Multi-frame Grayscale Word Secondary Capture: 24 frames of 256x256x16 bit
    # = 3 MiB of pixels, so the stream spans a few hundred segments.
    frames, rows, cols = 24, 256, 256
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Interop^Multiframe"
    ds.PatientID = "ISMF"
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = _pixels(2 * frames * rows * cols, 7)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    src = tmp / "multiframe.dcm"
    ds.save_as(src, enforce_file_format=True)

    pcap = tmp / "dcmtk.pcap"
    out = tmp / "received"
    port = peers.free_port()
    scp = peers.start_storescp(port, out)

    def talk():
        for old in out.iterdir():                   # from an attempt that lost packets
            old.unlink()
        peers.run_storescu(port, [src])

    try:
        cap = capture_retrying(pcap, port, talk)
    finally:
        peers.stop_process(scp)
    received = [p for p in out.iterdir() if p.is_file()]
    assert len(received) == 1, list(out.iterdir())
    return pcap, port, ds, received[0], cap


def _dataset_part(dicom_file: bytes) -> bytes:
    """The data set of a Part 10 file: what follows the (0002) group."""
    assert dicom_file[128:132] == b"DICM"
    tag, vr, _len, glen = struct.unpack_from("<I2sHI", dicom_file, 132)
    assert tag == 0x00000002 and vr == b"UL"
    return dicom_file[132 + 12 + glen:]


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

@pytest.mark.interop
@pytest.mark.root
def test_pynetdicom_echo_and_stores(pynetdicom_capture):
    from pydicom.filereader import read_dataset

    pcap, port, sent, cap = pynetdicom_capture
    result, rec, host = run_recorded(pcap)
    assert host.errors == []
    assert len(result.streams) == 2
    if shutil.which("tshark"):
        assert tshark_stream_count(pcap) == 2
    assert result.frames == cap.captured
    assert rec.opened == [0, 1]
    assert rec.closed == [(0, "fin"), (1, "fin")]
    for sid in (0, 1):
        assert result.streams[sid].server[1] == port
        check_stream(pcap, result, rec, sid, sid)
    # Association 2, independently: its P-DATA PDVs rebuild the data sets sent.
    c2s, _ = check_stream(pcap, result, rec, 1, 1)
    msgs = messages(c2s)
    datasets = [b for is_cmd, b in msgs if not is_cmd]
    commands = [b for is_cmd, b in msgs if is_cmd]
    assert len(commands) == 1 + len(sent)              # C-ECHO-RQ, C-STORE-RQs
    assert len(datasets) == len(sent)
    for raw, ds in zip(datasets, sent):
        got = read_dataset(io.BytesIO(raw), is_implicit_VR=False, is_little_endian=True)
        assert got.SOPInstanceUID == ds.SOPInstanceUID
        assert got.get("PixelData") == ds.get("PixelData")
    assert len(rec.rec[1].buf[0]) > 400 << 10


@pytest.mark.interop
@pytest.mark.root
def test_dcmtk_multiframe_store(dcmtk_capture):
    pcap, port, ds, received, cap = dcmtk_capture
    result, rec, host = run_recorded(pcap)
    assert host.errors == []
    assert len(result.streams) == 1
    assert result.frames == cap.captured
    s = result.streams[0]
    assert s.server[1] == port
    c2s, s2c = check_stream(pcap, result, rec, 0, 0)
    assert s.dirs[0].bytes > 3 << 20
    assert s.dirs[0].frames > 40                      # really many segments
    assert rec.closed == [(0, "fin")]
    # The data set PDVs are exactly what storescp (+B, bit-preserving) wrote.
    msgs = messages(c2s)
    datasets = [b for is_cmd, b in msgs if not is_cmd]
    assert len(datasets) == 1
    assert datasets[0] == _dataset_part(received.read_bytes())
    assert ds.PixelData in datasets[0]
    # And the SCP answered with one C-STORE-RSP (a command, no data set).
    answers = messages(s2c)
    assert [is_cmd for is_cmd, _ in answers] == [True]


@pytest.mark.interop
@pytest.mark.root
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_streams_from_stdin_same_as_file(pynetdicom_capture, fmt):
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip("tcpdump not found")
    pcap = pynetdicom_capture[0]
    from_file = dw("streams", "-T", fmt, pcap, text=False, env=QUIET)
    assert from_file.returncode == 0, from_file.stderr
    dump = subprocess.Popen([tcpdump, "-n", "-r", str(pcap), "-w", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        from_stdin = dw("streams", "-T", fmt, "-", stdin=dump.stdout, text=False, env=QUIET)
    finally:
        dump.stdout.close()
        dump.wait(30)
    assert dump.returncode == 0
    assert from_stdin.returncode == 0, from_stdin.stderr
    if fmt == "json":
        a, b = json.loads(from_file.stdout), json.loads(from_stdin.stdout)
        assert a["streams"] == b["streams"] and a["frames"] == b["frames"]
        assert len(a["streams"]) == 2
        assert [r["close"] for r in a["streams"]] == ["fin", "fin"]
    else:
        a = from_file.stdout.decode().splitlines()
        b = from_stdin.stdout.decode().splitlines()
        # The title names the input; everything after it is the same.
        assert a[0].startswith(f"TCP streams in {pcap}") and "2 streams" in a[0]
        assert b[0].startswith("TCP streams in ") and "2 streams" in b[0]
        assert a[1:] == b[1:]
        assert len(a) == 4                          # title, header, two rows


class Exploding:
    """A plugin whose stream_close raises."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def dicomwire_stream_close(self, stream):
        self.calls += 1
        raise RuntimeError(f"boom on stream {stream.id}")


class Counting:
    def __init__(self):
        self.closed = []
        self.ended = 0

    @hookimpl
    def dicomwire_stream_close(self, stream):
        self.closed.append(stream.id)

    @hookimpl
    def dicomwire_capture_end(self, result):
        self.ended += 1


def test_failing_plugin_does_not_stop_the_run():
    # Needs no capture privileges: the shipped sample (real loopback traffic).
    boom, count = Exploding(), Counting()
    result, rec, host = run_recorded(SAMPLE, ("boom", boom), ("count", count))
    n = len(result.streams)
    assert n >= 2
    assert boom.calls == n
    assert host.error_count == n and len(host.errors) == n
    for err in host.errors:
        assert err.plugin == "boom" and err.hook == "dicomwire_stream_close"
        assert "RuntimeError: boom on stream" in err.error
        assert "boom" in str(err)
    # Everyone else still ran, for every stream, to the end.
    assert count.closed == list(range(n)) and count.ended == 1
    assert [sid for sid, _ in rec.closed] == list(range(n))
    assert all(r.closes == 1 for r in rec.rec.values())
    assert result.problems() >= n
    # The first failure of each kind is reported once on the host's stderr.
    assert host.stderr.getvalue().count("plugin 'boom' failed") == 1


def test_failing_dissector_loses_its_stream_not_the_run():
    class BadDissector:
        def data(self, *a):
            raise ValueError("bad bytes")

        def gap(self, *a):
            pass

        def close(self):
            raise AssertionError("close must not be called after a failure")

    class BadPlugin:
        @hookimpl(tryfirst=True)
        def dicomwire_stream_dissector(self, stream):
            return BadDissector() if stream.id == 0 else None

    result, rec, host = run_recorded(SAMPLE, ("bad", BadPlugin()))
    n = len(result.streams)
    assert [(e.plugin, e.hook) for e in host.errors] == [("bad", "dissector.data")]
    assert 0 not in rec.rec                      # the bad plugin won stream 0
    assert sorted(rec.rec) == list(range(1, n))  # the recorder got the others
    assert [sid for sid, _ in rec.closed] == list(range(n))


# --------------------------------------------------------------------------
# A real kernel's bare RST (issue 13)
# --------------------------------------------------------------------------

def _tcp_packets(pcap):
    """(sport, dport, flags, seq, ack, window, payload length) of each
    Ethernet/IPv4/TCP record of a classic pcap, read with struct alone (not
    with dicomwire). A record cut at the end (tcpdump still writing) is left
    out."""
    buf = Path(pcap).read_bytes()
    out, pos = [], 24
    while pos + 16 <= len(buf):
        incl = struct.unpack_from("<I", buf, pos + 8)[0]
        f = buf[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        if len(f) < incl or len(f) < 54 or f[12:14] != b"\x08\x00" or f[23] != 6:
            continue
        ihl = (f[14] & 15) * 4
        t = 14 + ihl
        total = struct.unpack_from("!H", f, 16)[0]
        sport, dport, seq, ack, doff, flags, win = struct.unpack_from("!HHIIBBH", f, t)
        out.append((sport, dport, flags, seq, ack, win, 14 + total - t - (doff >> 4) * 4))
    return out


def _bitten(packets):
    """The bare RSTs (flags RST only) in ``packets``, each as (sender is the
    listening side, whether the peer's next sequence number lies above 2**31:
    where an ack field of 0 taken for an acknowledgement makes a gap of more
    than a gigabyte)."""
    out = []
    for i, (sp, dp, flags, seq, ack, win, n) in enumerate(packets):
        if flags != 0x04:
            continue
        assert ack == 0 and win == 0             # as Linux sends it
        peer = next(p for p in reversed(packets[:i]) if (p[0], p[1]) == (dp, sp))
        out.append((sp < dp, (peer[3] + peer[6]) & 0xFFFFFFFF >= 1 << 31))
    return out


@pytest.mark.interop
@pytest.mark.root
def test_bare_rst_from_a_real_kernel(tmp_path):
    """One side closes (FIN), the other writes once more: the closed side's
    Linux kernel answers with a bare RST (flags R only, ack field 0,
    window 0). Connections are made until, for a RST from either side, the
    peer's sequence numbers lie above 2**31 (random ISNs: a few tries); each
    must close as "rst" with no gap, no zero window, every byte delivered."""
    import socket
    import time

    peers.require_capture()
    port = peers.free_port()
    pcap = tmp_path / "bare-rst.pcap"
    with peers.capture(pcap, port):
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((peers.LOOPBACK, port))
        srv.listen(4)
        try:
            for i in range(40):
                cli = socket.create_connection((peers.LOOPBACK, port), timeout=5)
                acc, _ = srv.accept()
                acc.settimeout(5)
                cli.sendall(b"request %d" % i)
                acc.recv(100)
                acc.sendall(b"answer")
                cli.recv(100)
                closer, writer = (acc, cli) if i % 2 == 0 else (cli, acc)
                closer.close()                    # FIN; nothing left unread
                assert writer.recv(100) == b""    # the FIN arrived
                writer.sendall(b"one more")       # -> the bare RST
                deadline = time.monotonic() + 2
                while not any(flags == 0x04 for _, _, flags, *_ in _tcp_packets(pcap)[-3:]):
                    assert time.monotonic() < deadline, "no RST on the wire"
                    time.sleep(0.01)
                writer.close()
                bitten = {side for side, high in _bitten(_tcp_packets(pcap)) if high}
                if bitten == {True, False}:
                    break
        finally:
            srv.close()
    packets = _tcp_packets(pcap)
    assert {side for side, high in _bitten(packets) if high} == {True, False}, \
        "40 connections without a high sequence number on both sides"
    result = run(str(pcap))
    assert len(result.streams) == i + 1
    assert not [x for x in result.expert.infos if x.field.name == "tcp.gap"]
    for s in result.streams:
        assert s.close_reason == "rst"
        a, b = s.dirs
        assert (a.gaps, b.gaps, a.zero_windows, b.zero_windows) == (0, 0, 0, 0)
        assert a.bytes == len(b"request %d" % s.id) + len(b"one more") * (s.id % 2 == 0)
        assert b.bytes == len(b"answer") + len(b"one more") * (s.id % 2 == 1)
