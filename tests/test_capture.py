"""dicomwire.capture: pcap / pcapng / gzip / stdin reading, hostile input, CLI.

Captures are built by tests/capgen.py (hand-written with struct); one test
checks capgen against python-pcapng and tshark so the writer is trustworthy.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import random
import shutil
import struct
import subprocess
import tempfile
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import capgen as g

from dicomwire.capture import (
    MAX_RECORD, CaptureError, CaptureReader, Frame, Interface, open_capture)
from dicomwire.config import Config
from dicomwire.link import LinkDecoder
from dicomwire.pipeline import make_host, run
from support import QUIET, dw, dw_pipe

T0 = 1_700_000_000_123_456_789          # a timestamp with every ns digit set
C, S = "192.0.2.10", "198.51.100.20"


def packets(n=6, size=100):
    """n Ethernet/IPv4/TCP frames with distinct payloads."""
    return [g.ethernet(g.ipv4_tcp(C, S, 40000, 104, 1000 + i * size, 1, g.ACK | g.PSH,
                                  bytes([i]) * size)) for i in range(n)]


def read(source, **kw):
    """(reader, list of Frame) after reading everything."""
    r = open_capture(source, **kw)
    try:
        return r, list(r.frames())
    finally:
        r.close()


def put(tmp_path, data, name="cap.pcap"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


SOURCES = ["path", "fileobj", "gzip", "gzip-fileobj"]


def as_source(kind, tmp_path, data):
    """The same capture bytes as a mapped path, a file object, or gzip."""
    if kind == "path":
        return str(put(tmp_path, data))
    if kind == "fileobj":
        return io.BytesIO(data)
    if kind == "gzip":          # by magic: the name says nothing
        return str(put(tmp_path, gzip.compress(data), "cap.pcap"))
    if kind == "gzip-fileobj":
        return io.BytesIO(gzip.compress(data))
    raise ValueError(kind)


# --- pcap ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("nanosecond,big_endian,modified", [
    (False, False, False), (False, True, False), (True, False, False),
    (True, True, False), (False, False, True), (False, True, True)])
def test_pcap_variants(tmp_path, kind, nanosecond, big_endian, modified):
    frames = packets(5)
    stamps = [T0, T0 + 1, T0 + 999, 0xFFFFFFFF * 10**9 + 999_999_999, 1_000]
    data = g.pcap(list(zip(stamps, frames)), g.LT_ETHERNET, nanosecond=nanosecond,
                  big_endian=big_endian, modified=modified, snaplen=65535)
    r, got = read(as_source(kind, tmp_path, data))
    assert r.format == "pcap"
    assert r.warnings == []
    assert r.frames_read == 5 and r.truncated == 0
    assert r.interfaces == [Interface(1, 65535, None, 0, 9 if nanosecond else 6)]
    exp_ts = stamps if nanosecond else [t // 1000 * 1000 for t in stamps]
    assert got == [Frame(i + 1, exp_ts[i], 1, frames[i], len(frames[i]), 0) for i in range(5)]
    assert r.bytes_read == len(data)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("kind", SOURCES)
def test_first_frame_time(tmp_path, fmt, kind):
    """``first_ts``: the capture's first frame's time (a UDP frame here),
    whichever loop read it (the reader's iteration, the pipeline's fast
    loops): the origin of relative times, as tshark's."""
    udp = g.ethernet(g.ipv4(C, S, g.P_UDP, g.udp(C, S, 5000, 53, b"x")))
    stamps = [T0 + 5000 * i for i in range(5)]
    frames = list(zip(stamps, [udp] + packets(4)))
    data = (g.pcap(frames, nanosecond=True) if fmt == "pcap"
            else g.simple_pcapng(frames, tsresol=9))
    r = open_capture(as_source(kind, tmp_path, data))
    assert r.first_ts is None
    assert len(list(r)) == 5
    r.close()
    assert r.first_ts == T0
    res = run(as_source(kind, tmp_path, data))
    assert res.reader.first_ts == res.first_ts == T0
    assert res.streams[0].first_ts == T0 + 5000


def test_pcap_exact_timestamps():
    # Microsecond file: 1700000000.123456 s; nanosecond file: .123456789 s.
    raw = packets(1)[0]
    us = g.pcap_header() + struct.pack("<IIII", 1_700_000_000, 123_456, len(raw), len(raw)) + raw
    ns = (g.pcap_header(nanosecond=True)
          + struct.pack("<IIII", 1_700_000_000, 123_456_789, len(raw), len(raw)) + raw)
    assert read(io.BytesIO(us))[1][0].ts_ns == 1_700_000_000_123_456_000
    assert read(io.BytesIO(ns))[1][0].ts_ns == 1_700_000_000_123_456_789


def test_pcap_raw_tuples_and_linktype_fcs_bits():
    # The LinkType field's upper bits (FCS length, F bit) are not the link type.
    raw = packets(1)[0]
    data = bytearray(g.pcap([(T0, raw)], g.LT_ETHERNET))
    struct.pack_into("<I", data, 20, 0x14000000 | 1)        # FCS len 1, F bit
    with open_capture(io.BytesIO(bytes(data))) as r:
        assert list(r) == [(1, T0 // 1000 * 1000, 1, raw, len(raw), 0)]
    assert r.interfaces[0].linktype == 1


@pytest.mark.parametrize("kind", ["path", "fileobj"])
def test_pcap_snaplen_truncated_records(tmp_path, kind):
    full = g.ethernet(g.ipv4_tcp(C, S, 40000, 104, 7, 1, g.ACK, b"P" * 1000))
    cut = full[:100]
    frames = [(T0, packets(1)[0]), (T0 + 1000, cut, len(full))]
    r, got = read(as_source(kind, tmp_path, g.pcap(frames, snaplen=100)))
    assert r.truncated == 1 and r.frames_read == 2 and r.warnings == []
    assert got[1].data == cut and got[1].orig_len == len(full) == 1054
    seg = LinkDecoder().decode(got[1].linktype, got[1].data)
    assert seg[4] == b"P" * 46                  # 100 - 14 - 20 - 20 captured bytes
    assert seg[5] == 1000 - 46                  # the rest is reported missing
    assert seg[1] == 7


# --- pcapng -------------------------------------------------------------------


def two_section_capture():
    """Section 1 (LE): eth0 10^-9, any (SLL) 2^-20 + offset 100 s, blocks of
    every kind; section 2 (BE): raw IPv6 10^-3, NULL default resolution."""
    v4 = g.conversation(C, S, 40000, 104, [b"hello" * 10], [b"world" * 3])
    v6 = g.conversation("2001:db8::1", "2001:db8::2", 40001, 11112, [b"x" * 30], [])
    e0 = g.ethernet(v4[0])
    s1, s3 = g.sll(v4[1]), g.sll(v4[3])
    spb = g.ethernet(v4[2])
    sec1 = g.Section([
        g.IDB(g.LT_ETHERNET, 0, 9, None, "eth0"),
        g.IDB(g.LT_SLL, 0, 0x80 | 20, 100, "any"),
        g.EPB(0, e0, ticks=T0, comments=["first", "zweiter ✓"]),
        g.NRB(),
        g.EPB(1, s1, ticks=(1_600_000_000 << 20) + (1 << 19)),   # .5 s, then +100 s
        g.ISB(0, 5),
        g.SPB(spb),
        g.PB(1, s3, ticks=(1_600_000_001 << 20) + (1 << 18), drops=3, comments=["old"]),
        g.RawBlock(0x00000BAD, struct.pack("<I", 32473) + b"custom!!"),   # custom block
        g.RawBlock(0x40000BAD, struct.pack("<I", 32473) + b"nocopy"),
        g.RawBlock(0x0000000A, b"\0" * 8),                                  # decryption secrets
        g.RawBlock(0x80001234, b"local use"),
    ])
    sec2 = g.Section([
        g.IDB(g.LT_IPV6, 0, 3),
        g.IDB(g.LT_NULL, 0),
        g.EPB(1, g.null(v6[0], big_endian=True), ticks=1_700_000_001_000_001),
        g.EPB(0, v6[1], ticks=1_700_000_001_500, comments=["in section 2"]),
    ], big_endian=True)
    expected = [
        Frame(1, T0, 1, e0, len(e0), 0),
        Frame(2, 1_600_000_100_500_000_000, 113, s1, len(s1), 1),
        Frame(3, 1_600_000_100_500_000_000, 1, spb, len(spb), 0),     # SPB: previous ts
        Frame(4, 1_600_000_101_250_000_000, 113, s3, len(s3), 1),
        Frame(5, 1_700_000_001_000_001_000, 0, g.null(v6[0], big_endian=True),
              len(v6[0]) + 4, 3),
        Frame(6, 1_700_000_001_500_000_000, 229, v6[1], len(v6[1]), 2),
    ]
    return g.pcapng([sec1, sec2]), expected


@pytest.mark.parametrize("kind", SOURCES)
def test_pcapng_sections_interfaces_blocks(tmp_path, kind):
    data, expected = two_section_capture()
    r, got = read(as_source(kind, tmp_path, data))
    assert r.format == "pcapng"
    assert r.warnings == []
    assert got == expected
    assert r.interfaces == [
        Interface(1, 0, "eth0", 0, 9, 10, 0),
        Interface(113, 0, "any", 0, 20, 2, 100),
        Interface(229, 0, None, 1, 3, 10, 0),
        Interface(0, 0, None, 1, 6, 10, 0),
    ]
    assert r.comments == {1: ["first", "zweiter ✓"], 4: ["old"], 6: ["in section 2"]}
    assert r.frames_read == 6 and r.truncated == 0
    assert r.bytes_read == len(data)


@pytest.mark.parametrize("tsresol,tsoffset,ticks,expected", [
    (None, None, 1_700_000_000_123_456, 1_700_000_000_123_456_000),      # default 10^-6
    (6, None, 1_700_000_000_123_456, 1_700_000_000_123_456_000),
    (9, None, T0, T0),
    (3, None, 1_700_000_000_123, 1_700_000_000_123_000_000),
    (0, None, 1_700_000_000, 1_700_000_000_000_000_000),
    (12, None, 12_345_678_901_234_567, 12_345_678_901_234),                # ps: floor to ns
    (0x80 | 20, None, (1_700_000_000 << 20) + (3 << 18), 1_700_000_000_750_000_000),
    (0x80 | 10, None, (1 << 10) + 1, 1_000_976_562),                    # 1 + 1/1024 s
    (0x80 | 32, None, (5 << 32) + (1 << 31), 5_500_000_000),
    (9, 3600, T0, T0 + 3_600_000_000_000),
    (9, -1_700_000_000, T0, 123_456_789),
    (3, 1_000_000_000, 5, 1_000_000_000_005_000_000),
])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_tsresol_tsoffset(tsresol, tsoffset, ticks, expected, big_endian):
    raw = packets(1)[0]
    data = g.pcapng(g.Section([g.IDB(1, 0, tsresol, tsoffset), g.EPB(0, raw, ticks=ticks)],
                              big_endian))
    r, got = read(io.BytesIO(data))
    assert r.warnings == []
    assert [f.ts_ns for f in got] == [expected]


def test_pcapng_spb_snaplen_and_truncation():
    raw = g.ethernet(g.ipv4_tcp(C, S, 40000, 104, 1, 1, g.ACK, b"z" * 200))
    data = g.pcapng(g.Section([
        g.IDB(1, 96),
        g.EPB(0, raw[:96], ticks=1, orig_len=len(raw)),
        g.SPB(raw[:96], orig_len=len(raw)),        # SPB keeps min(orig_len, snaplen)
        g.SPB(raw[:50]),                           # short packet, padded block
    ]))
    r, got = read(io.BytesIO(data))
    assert r.warnings == []
    assert [(f.data, f.orig_len) for f in got] == [
        (raw[:96], len(raw)), (raw[:96], len(raw)), (raw[:50], 50)]
    assert r.truncated == 2
    assert [f.ts_ns for f in got] == [1000, 1000, 1000]


def test_pcapng_bad_blocks_skipped_with_warnings():
    raw = packets(1)[0]
    data = g.pcapng([
        g.Section([g.SPB(raw)]),                                      # no interface yet
        g.Section([g.IDB(1), g.EPB(7, raw, ticks=1),                  # unknown interface
                   g.EPB(0, raw, ticks=2, incl_len=len(raw) + 400),   # overruns its block
                   g.IDB(1, 0, 99),                                    # implausible tsresol
                   g.EPB(1, raw, ticks=3), g.EPB(0, raw, ticks=4)]),
    ])
    r, got = read(io.BytesIO(data))
    assert [(f.number, f.ts_ns, f.iface) for f in got] == [(1, 3000, 1), (2, 4000, 0)]
    w = r.warnings
    assert len(w) == 4
    assert "simple packet block before any interface" in w[0]
    assert "unknown interface 7" in w[1]
    assert f"captured length {len(raw) + 400} overruns the block" in w[2]
    assert "implausible if_tsresol 99" in w[3]
    assert all("byte offset" in x for x in w)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pcapng_capgen_agrees_with_python_pcapng():
    """capgen's pcapng is read the same way by python-pcapng (independent)."""
    pcapng = pytest.importorskip("pcapng")
    data, expected = two_section_capture()
    kinds, packets_seen = [], []
    for b in pcapng.FileScanner(io.BytesIO(data)):
        name = type(b).__name__
        kinds.append(name)
        if name == "EnhancedPacket":
            packets_seen.append((b.interface_id, b.interface.link_type,
                                 (b.timestamp_high << 32) | b.timestamp_low,
                                 bytes(b.packet_data), b.packet_len,
                                 list(b.options.get_all("opt_comment"))
                                 if "opt_comment" in b.options else []))
        elif name == "SimplePacket":
            packets_seen.append(("spb", bytes(b.packet_data), b.packet_len))
        elif name == "InterfaceDescription":
            packets_seen.append(("idb", b.link_type, b.options.get("if_name"),
                                 b.options.get("if_tsoffset")))
    assert kinds == ["SectionHeader", "InterfaceDescription", "InterfaceDescription",
                     "EnhancedPacket", "NameResolution", "EnhancedPacket",
                     "InterfaceStatistics", "SimplePacket", "ObsoletePacket",
                     "UnknownBlock", "UnknownBlock", "UnknownBlock", "UnknownBlock",
                     "SectionHeader", "InterfaceDescription", "InterfaceDescription",
                     "EnhancedPacket", "EnhancedPacket"]
    e = expected
    assert packets_seen == [
        ("idb", 1, "eth0", None), ("idb", 113, "any", 100),
        (0, 1, T0, e[0].data, e[0].orig_len, ["first", "zweiter ✓"]),
        (1, 113, (1_600_000_000 << 20) + (1 << 19), e[1].data, e[1].orig_len, []),
        ("spb", e[2].data, e[2].orig_len),
        ("idb", 229, None, None), ("idb", 0, None, None),
        (1, 0, 1_700_000_001_000_001, e[4].data, e[4].orig_len, []),
        (0, 229, 1_700_000_001_500, e[5].data, e[5].orig_len, ["in section 2"]),
    ]


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")
def test_capgen_agrees_with_tshark(tmp_path):
    """tshark reads capgen's files with the same frames, times and checksums."""
    data, expected = two_section_capture()
    p = put(tmp_path, data, "two.pcapng")
    q = put(tmp_path, g.pcap([(T0, packets(1)[0])], nanosecond=True, big_endian=True),
            "be.pcap")
    out = {}
    for f in (p, q):
        res = subprocess.run(
            ["tshark", "-n", "-r", str(f), "-o", "tcp.check_checksum:TRUE",
             "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=|",
             "-e", "frame.time_epoch", "-e", "frame.cap_len", "-e", "frame.comment",
             "-e", "tcp.checksum.status", "-e", "tcp.srcport"],
            capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        out[f.name] = [line.split("|") for line in res.stdout.splitlines()]
    rows = out["two.pcapng"]
    # tshark also lists the custom blocks (0xBAD, 0x40000BAD) as records: skip them.
    assert len(rows) == 8
    pkt = [r for r in rows if r[4]]
    assert len(pkt) == 6
    for row, fr in zip(pkt, expected):
        if fr.number != 3:                     # SPB: no timestamp in tshark
            sec, _, frac = row[0].partition(".")
            assert int(sec) * 10**9 + int(frac.ljust(9, "0")) == fr.ts_ns
        assert int(row[1]) == len(fr.data)
        assert row[3] == "1"                   # TCP checksum good
    assert pkt[0][2] == "first,zweiter ✓"
    assert out["be.pcap"] == [["1700000000.123456789", "154", "", "1", "40000"]]


# --- gzip, file objects, stdin ------------------------------------------------


def big_capture(n=2500, size=1400):
    """About 3.5 MB: records straddle the 1 MiB read chunks."""
    frames = [(T0 + i, g.ethernet(g.ipv4_tcp(C, S, 40000, 104, 1 + i * size, 1, g.ACK,
                                             bytes([i & 0xFF]) * size)))
              for i in range(n)]
    return frames


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("kind", SOURCES)
def test_chunk_boundaries(tmp_path, fmt, kind):
    frames = big_capture()
    data = (g.pcap(frames, nanosecond=True) if fmt == "pcap"
            else g.simple_pcapng(frames, tsresol=9))
    assert len(data) > 3 << 20
    r, got = read(as_source(kind, tmp_path, data))
    assert r.warnings == []
    assert len(got) == len(frames)
    assert all(f.data == frames[i][1] and f.ts_ns == T0 + i for i, f in enumerate(got))
    assert r.bytes_read == len(data)


def test_gzip_concatenated_members_and_name_ignored(tmp_path):
    frames = [(T0 + i, p) for i, p in enumerate(packets(9))]
    data = g.pcap(frames)
    cuts = [0, 10, 24 + 40, 300, len(data)]                 # mid-header, mid-record
    gz = b"".join(gzip.compress(data[a:b]) for a, b in zip(cuts, cuts[1:]))
    p = put(tmp_path, gz, "capture.pcapng")                # misleading name
    r, got = read(str(p))
    assert r.warnings == [] and r.format == "pcap"
    assert [f.data for f in got] == [f[1] for f in frames]
    assert r.progress == (len(gz), None)                   # compressed: no total


def test_gzip_trailing_garbage_keeps_frames(tmp_path):
    frames = [(T0 + i, p) for i, p in enumerate(packets(4))]
    gz = gzip.compress(g.pcap(frames)) + b"\0" * 512        # zero padding after the member
    r, got = read(str(put(tmp_path, gz)))
    assert len(got) == 4
    assert len(r.warnings) == 1 and "corrupt gzip data" in r.warnings[0]


def test_gzip_corrupt_midway_keeps_frames_before(tmp_path):
    frames = big_capture(1000)
    raw = g.pcap(frames)
    half = 24 + 600 * (16 + len(frames[0][1])) + 30          # 600 records and a bit
    bad_member = b"\x1f\x8b\x08\x00\0\0\0\0\0\xff" + b"\xff" * 64   # reserved block type
    p = put(tmp_path, gzip.compress(raw[:half]) + bad_member)
    r, got = read(str(p))
    assert [f.data for f in got] == [f[1] for f in frames[:600]]
    assert len(r.warnings) == 2
    assert "corrupt gzip data" in r.warnings[0] and f"after {half} decoded bytes" in r.warnings[0]
    assert "cut mid-record: pcap record 601" in r.warnings[1]
    # The pipeline does not raise either: the fault is a warning.
    res = run(str(p))
    assert res.frames == 600 and res.warnings == r.warnings
    # Damage inside a deflate stream may decode as garbage first: whatever
    # happens, frames or warnings, never an exception.
    gz = bytearray(gzip.compress(raw, compresslevel=1))
    for i in range(len(gz) // 2, len(gz) // 2 + 64):
        gz[i] ^= 0x5A
    r, got = read(io.BytesIO(bytes(gz)))
    assert 0 < len(got) < 1000 and r.warnings
    assert [f.data for f in got[:400]] == [f[1] for f in frames[:400]]


def test_gzip_truncated_reports_cut(tmp_path):
    frames = [(T0 + i, p) for i, p in enumerate(packets(4))]
    gz = gzip.compress(g.pcap(frames), compresslevel=0)   # stored: cut = cut data
    r, got = read(str(put(tmp_path, gz[:-8 - 30])))
    assert len(got) == 3
    assert len(r.warnings) == 1 and "cut mid-record: pcap record 4" in r.warnings[0]


def test_file_object_and_frame_api():
    frames = [(T0, p) for p in packets(2)]
    with CaptureReader(io.BytesIO(g.pcap(frames))) as r:
        got = list(r.frames())
    assert [type(f) for f in got] == [Frame, Frame]
    assert r.name == "<stream>"


def test_cli_stdin_plain_and_gzip(tmp_path):
    pk = g.conversation(C, S, 40000, 104, [b"A" * 70, b"B" * 30], [b"C" * 11])
    data = g.pcap([(T0 + i * 1000, g.ethernet(p)) for i, p in enumerate(pk)])
    res = dw("streams", "-T", "json", "-", input=data, text=False, env=QUIET)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["capture"] == "<stdin>" and doc["format"] == "pcap"
    assert doc["frames"] == len(pk)
    assert [(s["client"], s["server"], s["bytes_c2s"], s["bytes_s2c"], s["close"])
            for s in doc["streams"]] == [(f"{C}:40000", f"{S}:104", 100, 11, "fin")]
    p = put(tmp_path, data, "conv.pcap")
    if shutil.which("gzip"):
        res = dw_pipe("streams", "-T", "json", "-", source=f"gzip -c {p}", text=False,
                      env=QUIET)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["streams"][0]["bytes_c2s"] == 100


# --- hostile input ------------------------------------------------------------


def pcap_with_bad_record(length_field=0xFFFFFFFF):
    good = packets(2)
    data = g.pcap([(T0, good[0]), (T0 + 1, good[1])])
    bad = struct.pack("<IIII", 1, 2, length_field, 60) + b"x" * 100
    return data, data + bad


@pytest.mark.parametrize("kind", SOURCES)
def test_pcap_record_length_ffffffff(tmp_path, kind):
    good, data = pcap_with_bad_record()
    r, got = read(as_source(kind, tmp_path, data))
    assert len(got) == 2
    assert r.warnings == [
        f"{r.name}: implausible record length 4294967295 in pcap record 3 at byte offset "
        f"{len(good)} (after frame 2); stopped reading"]


@pytest.mark.parametrize("kind", SOURCES)
def test_pcapng_block_length_4gib(tmp_path, kind):
    raw = packets(1)[0]
    good = g.pcapng(g.Section([g.IDB(1), g.EPB(0, raw, ticks=1)]))
    data = good + struct.pack("<II", 6, 0xFFFFFFFC) + b"\0" * 64
    r, got = read(as_source(kind, tmp_path, data))
    assert [f.data for f in got] == [raw]
    assert len(r.warnings) == 1
    assert ("implausible pcapng block length 4294967292 (block type 0x6) at byte offset "
            f"{len(good)} (after frame 1)") in r.warnings[0]


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("claim", [0xFFFFFFFF, 0xFFFFFFFC, MAX_RECORD - 16])
def test_huge_claims_allocate_only_what_is_present(tmp_path, kind, claim):
    """A record claiming up to 4 GiB costs at most what the file holds."""
    raw = packets(1)[0]
    pc = g.pcap([(T0, raw)]) + struct.pack("<IIII", 0, 0, claim, claim) + b"y" * 1000
    ng = (g.pcapng(g.Section([g.IDB(1), g.EPB(0, raw, ticks=1)]))
          + struct.pack("<II", 6, claim & ~3) + b"\0" * 1000)
    for data in (pc, ng):
        src = as_source(kind, tmp_path, data)
        tracemalloc.start()
        try:
            r, got = read(src)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(got) == 1 and len(r.warnings) == 1
        assert peak < 8 << 20, f"peak {peak} bytes"


def test_cut_captures(tmp_path):
    frames = [(T0 + i, p) for i, p in enumerate(packets(3))]
    data = g.pcap(frames)
    rec = 16 + len(frames[0][1])
    # cut in the third record's data
    r, got = read(io.BytesIO(data[:-10]))
    assert len(got) == 2
    assert r.warnings == [f"<stream>: capture cut mid-record: pcap record 3 needs "
                          f"{len(frames[2][1])} bytes, {len(frames[2][1]) - 10} present at "
                          f"byte offset {24 + 2 * rec} (after frame 2); stopped reading"]
    # cut in the third record's header
    r, got = read(io.BytesIO(data[:24 + 2 * rec + 7]))
    assert len(got) == 2
    assert r.warnings == [f"<stream>: capture cut in a record header at byte offset "
                          f"{24 + 2 * rec} (after frame 2); stopped reading"]
    # the same, mapped from a path
    r, got = read(str(put(tmp_path, data[:24 + 2 * rec + 7])))
    assert len(got) == 2 and "cut in a record header" in r.warnings[0]
    # pcapng: cut mid-block and in a block header
    ng = g.pcapng(g.Section([g.IDB(1)] + [g.EPB(0, f[1], ticks=i) for i, f in enumerate(frames)]))
    blk = 32 + len(frames[0][1]) + (-len(frames[0][1]) % 4)
    start3 = len(ng) - blk
    r, got = read(io.BytesIO(ng[:-5]))
    assert len(got) == 2
    assert r.warnings == [f"<stream>: capture cut mid-block: pcapng block type 0x6 needs "
                          f"{blk} bytes, {blk - 5} present at byte offset {start3} "
                          f"(after frame 2); stopped reading"]
    r, got = read(io.BytesIO(ng[:start3 + 6]))
    assert len(got) == 2
    assert r.warnings == [f"<stream>: capture cut in a block header at byte offset {start3} "
                          f"(after frame 2); stopped reading"]


def test_pcapng_structural_faults():
    raw = packets(1)[0]
    good = g.pcapng(g.Section([g.IDB(1), g.EPB(0, raw, ticks=1)]))
    # trailer length differs from the header length
    bad = bytearray(good + g.block(6, struct.pack("<IIIII", 0, 0, 2, 60, 60) + raw))
    bad[-4] ^= 4
    r, got = read(io.BytesIO(bytes(bad)))
    assert len(got) == 1 and "block length mismatch" in r.warnings[0]
    # a second section with a bad byte-order magic
    sec = bytearray(g.pcapng(g.Section([])))
    sec[8:12] = b"ABCD"
    r, got = read(io.BytesIO(good + bytes(sec)))
    assert len(got) == 1 and "bad byte-order magic 41424344" in r.warnings[0]
    # block length not a multiple of 4, and too small
    for blen in (33, 8):
        r, got = read(io.BytesIO(good + struct.pack("<II", 6, blen) + b"\0" * 40))
        assert len(got) == 1 and f"implausible pcapng block length {blen}" in r.warnings[0]


@pytest.mark.parametrize("btype,blen", [(6, 12), (6, 28), (2, 16), (1, 12), (3, 12)])
def test_pcapng_blocks_too_short_for_their_type(btype, blen):
    """A block shorter than its fixed fields, at the very end of the file."""
    raw = packets(1)[0]
    good = g.pcapng(g.Section([g.IDB(1), g.EPB(0, raw, ticks=1)]))
    blk = struct.pack("<II", btype, blen) + b"\0" * (blen - 12) + struct.pack("<I", blen)
    r, got = read(io.BytesIO(good + blk))
    assert [f.data for f in got][:1] == [raw]
    assert len(got) == 1
    assert len(r.warnings) == 1 and "byte offset" in r.warnings[0]


def test_garbage_after_header():
    rnd = random.Random(1234)
    for hdr in (g.pcap_header(), g.pcap_header(big_endian=True, nanosecond=True),
                g.pcapng(g.Section([g.IDB(1)]))):
        for _ in range(20):
            junk = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 3000)))
            r, got = read(io.BytesIO(hdr + junk))
            assert r.frames_read == len(got)
            assert r.warnings or sum(len(f.data) for f in got) < len(junk)
            assert all("byte offset" in w for w in r.warnings)


@functools.lru_cache(maxsize=None)
def fuzz_bases():
    pk = g.conversation(C, S, 40000, 104, [b"q" * 40], [b"r" * 20])
    return (g.pcap([(T0 + i, g.ethernet(p)) for i, p in enumerate(pk)]),
            g.pcap([(T0 + i, g.sll(p)) for i, p in enumerate(pk)], g.LT_SLL, modified=True),
            g.simple_pcapng([(T0 + i, g.ethernet(p)) for i, p in enumerate(pk)], tsresol=9),
            two_section_capture()[0])


@functools.lru_cache(maxsize=None)
def shared_host():
    return make_host(Config())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_captures_never_raise(data):
    """Any byte flips or cuts of a valid capture (plain, mapped from a file,
    or of its gzip form): frames or warnings, never an exception other than
    CaptureError at open, and the whole pass survives too."""
    base = data.draw(st.sampled_from(fuzz_bases()))
    kind = data.draw(st.sampled_from(["bytesio", "path", "gzip"]))
    if kind == "gzip":
        base = gzip.compress(base)
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(0, 6))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    blob = bytes(buf[:cut])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "fuzz.cap")
        with open(path, "wb") as f:
            f.write(blob)

        def source():
            return path if kind == "path" else io.BytesIO(blob)
        try:
            r = open_capture(source())
        except CaptureError:
            return
        with r:
            got = list(r)
        assert r.frames_read == len(got)
        try:
            res = run(source(), host=shared_host())
        except CaptureError:
            pytest.fail("CaptureError after a successful open")
        assert res.frames == len(got)


def test_not_a_capture(tmp_path):
    cases = {
        "text.txt": (b"hello, this is not a capture\n",
                     "not a pcap or pcapng capture (starts with 68656c6c)"),
        "empty.pcap": (b"", "not a capture file (too short: 0 bytes)"),
        "tiny.pcap": (b"\xd4\xc3", "not a capture file (too short: 2 bytes)"),
        "header.pcap": (g.pcap_header()[:10], "pcap file header cut short"),
        "empty.gz": (gzip.compress(b""), "not a capture file (too short: 0 bytes)"),
        "text.gz": (gzip.compress(b"plain text"), "not a pcap or pcapng capture"),
    }
    for name, (content, msg) in cases.items():
        p = put(tmp_path, content, name)
        with pytest.raises(CaptureError) as ei:
            open_capture(str(p))
        assert str(ei.value).startswith(f"{p}: ") and msg in str(ei.value), name
    # A folder is a file set (tests/test_capset.py): here, of no capture.
    with pytest.raises(CaptureError, match="none of these files is a capture"):
        open_capture(str(tmp_path))
    (tmp_path / "nothing").mkdir()
    with pytest.raises(CaptureError, match="no capture files in this folder"):
        open_capture(str(tmp_path / "nothing"))
    with pytest.raises(CaptureError, match="No such file or directory"):
        open_capture(str(tmp_path / "missing.pcap"))
    with pytest.raises(CaptureError, match="corrupt gzip data"):
        open_capture(io.BytesIO(b"\x1f\x8b" + b"\xff" * 40))


def test_cli_errors_and_warnings(tmp_path):
    for target in (tmp_path / "missing.pcap", put(tmp_path, b"GIF89a....", "x.pcap"),
                   tmp_path):
        res = dw("streams", target, text=False, env=QUIET)
        err = res.stderr.decode()
        assert res.returncode == 2, err
        assert err.count("\n") == 1 and err.startswith("dicomwire: error: ")
        assert "Traceback" not in err and res.stdout == b""
    frames = [(T0 + i, g.ethernet(p)) for i, p in enumerate(g.conversation(C, S, 1, 2, [b"a"]))]
    cut = put(tmp_path, g.pcap(frames)[:-3], "cut.pcap")
    res = dw("streams", cut, text=False, env=QUIET)
    assert res.returncode == 0
    err = res.stderr.decode()
    assert "dicomwire: warning: " in err and "cut mid-record" in err and "Traceback" not in err
    assert b"(pcap, 7 frames, 1 streams)" in res.stdout
    assert dw("streams", "--fail-on", "problems", cut, text=False, env=QUIET).returncode == 1
    ok = put(tmp_path, g.pcap(frames), "ok.pcap")
    assert dw("streams", "--fail-on", "problems", ok, text=False, env=QUIET).returncode == 0


def test_mapped_windows_and_records_larger_than_a_window(tmp_path, monkeypatch):
    """A mapped file is walked in windows; a record may exceed one window."""
    import signal

    import dicomwire.capture as capture
    monkeypatch.setattr(capture, "WINDOW", 4096)
    sizes = [100, 5000, 3000, 9000, 60, 4096, 4097, 12000, 7]
    frames = [(T0 + i, bytes([i]) * n) for i, n in enumerate(sizes)]
    p = put(tmp_path, g.pcap(frames, modified=True))
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("reader loops forever"))
    signal.alarm(10)
    try:
        r, got = read(str(p), max_record=16384)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert r.src.mapped is not None          # the windowed, mapped path
    assert r.warnings == []
    assert [(f.ts_ns, f.data) for f in got] == [(t // 1000 * 1000, d) for t, d in frames]
