"""The compiled walk (``dicomwire._fastwalk``, core/_fastwalk.c) and the
Python walk of dicomwire.fastpath give the same results, field for field:
streams and their counters, PDUs, messages, findings, link counts, frames
read, on the corpus, span-port mixes, every pcap variant, hostile frames and
a run stopped in the middle of a burst. (tests/test_pipeline.py compares
both with the general path as well.) Skipped where the extension is not
built: the Python walk is then the only one."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

import capgen as g
from dicomgen import valid_session
from dicomwire import fastpath
from dicomwire.hookspecs import hookimpl
from support import Recorder, record

built = pytest.mark.skipif(fastpath.ext is None, reason="dicomwire._fastwalk not built (or DICOMWIRE_PURE set)")

ROOT = Path(__file__).resolve().parent.parent


def _can_build() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return bool(shutil.which(cc)) and (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()


@pytest.mark.skipif(not _can_build() or bool(os.environ.get("DICOMWIRE_PURE")),
                    reason="no C compiler or Python headers here (or DICOMWIRE_PURE set)")
def test_built_where_it_can_be():
    """Where ``pip install`` can compile it, the walk in use is the compiled
    one, of the version dicomwire.fastpath is in step with (a stale build
    of an older core/_fastwalk.c is not used: reinstall, or ``make test``)."""
    from dicomwire import _fastwalk
    assert _fastwalk.VERSION == fastpath.EXT_VERSION and fastpath.ext is _fastwalk
CORPUS = sorted((ROOT / "tests" / "corpus" / "captures").glob("*.pcap"))


def outcome(path, *, fast=True, plugin=None):
    rec = Recorder(pdu=lambda p: (p.stream.id, p.direction, p.type, p.length, p.offset,
                                  p.first_frame, p.last_frame, tuple(p.problems)),
                   message=lambda m: (m.name, m.message_id, m.first_frame, m.last_frame,
                                      m.complete, m.dataset_len, tuple(m.problems)))
    cfg = {} if fast else {"fast_path": False}
    if plugin is not None:
        from dicomwire.config import Config
        from dicomwire.pipeline import make_host, run
        config = Config(**cfg)
        host = make_host(config)
        host.register(rec, "collect")
        host.register(plugin, "stopper")
        r = run(str(path), config, host)
    else:
        r = record(path, rec, allow_errors=True, **cfg)
    streams = [(s.id, s.client, s.server, s.first_frame, s.last_frame, s.first_ts, s.last_ts,
                s.close_reason, s.dissector is False,
                [(d.frames, d.next_off, d.next_seq, d.ack, d.retrans, d.gaps, d.gap_bytes,
                  d.conflicts, d.keepalives, d.ooo_segments, d.zero_windows, d.lane)
                 for d in s.dirs]) for s in r.streams]
    infos = [(i.field.name, i.message, tuple(i.frames)) for i in r.expert.infos]
    return (r.frames, r.reader.truncated, r.interrupted, r.link.stats.as_dict(), streams,
            rec.pdus, rec.messages, infos)


def general(path, got):
    """``got`` (a fast outcome) equals what the general path gives, but for
    the lanes' rooms (the general path opens none)."""
    def strip(o):
        streams = [(*s[:-1], [d[:-1] for d in s[-1]]) for s in o[4]]
        return (*o[:4], streams, *o[5:])
    assert strip(got) == strip(outcome(path, fast=False))


def both(path, monkeypatch, **kw):
    """(compiled, Python) outcomes; asserted equal."""
    compiled = outcome(path, **kw)
    with monkeypatch.context() as mp:
        mp.setattr(fastpath, "ext", None)
        python = outcome(path, **kw)
    assert compiled == python
    return compiled


@built
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_corpus_captures_agree(path, monkeypatch):
    both(path, monkeypatch)


def _make_mixed():
    spec = importlib.util.spec_from_file_location("make_mixed", ROOT / "benchmarks" / "make_mixed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_mixed", mod)
    spec.loader.exec_module(mod)
    return mod


@built
def test_span_port_mix_agrees(tmp_path, monkeypatch):
    """benchmarks/make_mixed.py's capture, 2 MB: bulk flows, small web flows,
    UDP, the sample's DICOM; the general path agrees too."""
    path = tmp_path / "mixed.pcap"
    _make_mixed().make(str(path), 2)
    got = both(path, monkeypatch)
    general(path, got)
    frames, _t, _i, stats, streams, pdus, messages, _ = got
    assert stats["non_tcp"] > 100 and len(streams) > 30 and pdus and messages
    assert all(s[8] for s in streams if s[2][1] in (445, 2049, 443, 9000, 80))   # ignored


def _span_packets(rnd, tcp_options=b""):
    """A DICOM session between a bulk flow (ignored), small flows and UDP."""
    steps = valid_session()
    mss = 300

    def cut(direction):
        return [b[i:i + mss] for d, b in steps if d == direction for i in range(0, len(b), mss)]

    dicom = g.conversation("10.0.0.1", "10.0.0.2", 40000, 104, cut(0), cut(1))
    bulk = g.conversation("10.0.0.5", "10.0.0.6", 45000, 445,
                          [rnd.randbytes(rnd.randint(1, 1400)) for _ in range(80)], [b"ok"] * 5)
    small = [p for i in range(6) for p in g.conversation(
        f"10.0.1.{i}", "10.0.2.1", 50000 + i, 80, [b"GET / HTTP/1.1\r\n\r\n"], [b"x" * 900])]
    udp = [g.ipv4("10.0.0.7", "10.0.0.8", 17, g.udp("10.0.0.7", "10.0.0.8", 5353, 53, b"q" * 60))
           for _ in range(15)]
    out = []
    streams = [dicom, bulk, small, udp]
    while any(streams):
        s = rnd.choice([s for s in streams if s])
        out += [s.pop(0) for _ in range(min(len(s), rnd.randint(1, 6)))]
    return out


VARIANTS = {
    "plain": {},
    "big-endian": {"big_endian": True},
    "nanosecond": {"nanosecond": True},
    "modified": {"modified": True},
    "snaplen": {"snaplen": 200},
    "vlan": {"vlans": (100,)},
    "sll": {"link": "sll"},
}


@built
@pytest.mark.parametrize("variant", VARIANTS)
def test_pcap_variants_agree(tmp_path, monkeypatch, variant):
    """Byte orders, resolutions, Kuznetzov's records, snaplen cuts, VLAN
    tags and another link type (the compiled walk hands on what it does not
    take, as the Python walk does)."""
    kw = dict(VARIANTS[variant])
    pk = _span_packets(random.Random(variant))
    link, vlans, snap = kw.pop("link", None), kw.pop("vlans", ()), kw.get("snaplen")
    frames = []
    for i, p in enumerate(pk):
        data = g.sll(p) if link == "sll" else g.ethernet(p, vlans=vlans)
        frames.append((1_700_000_000_000_000_000 + i * 1237, data[:snap] if snap else data, len(data)))
    path = tmp_path / f"{variant}.pcap"
    path.write_bytes(g.pcap(frames, linktype=113 if link == "sll" else 1, **kw))
    general(path, both(path, monkeypatch))


@built
@pytest.mark.parametrize("seed", range(12))
def test_hostile_frames_agree(tmp_path, monkeypatch, seed):
    """Bytes flipped in headers and payloads (lengths, flags, the window,
    IP options, fragments), frames cut short, zero windows, retransmitted
    and reordered segments, IPv6 among them."""
    rnd = random.Random(seed)
    pk = _span_packets(rnd)
    pk[5:5] = [g.ipv6_tcp("2001:db8::1", "2001:db8::2", 41000, 104, 1, 0, g.SYN)]
    frames = []
    for p in pk:
        f = bytearray(g.ethernet(p))
        r = rnd.random()
        if r < 0.08 and frames:
            frames.append(frames[-1])                        # retransmitted
        elif r < 0.12 and len(frames) > 2:
            frames[-1], frames[-2] = frames[-2], frames[-1]  # reordered
        for _ in range(rnd.randrange(3) if rnd.random() < 0.3 else 0):
            f[rnd.randrange(min(len(f), 60))] = rnd.randrange(256)
        if rnd.random() < 0.03:
            del f[rnd.randrange(len(f)):]
        frames.append(bytes(f))
    path = tmp_path / "hostile.pcap"
    path.write_bytes(g.pcap([(i * 1000, f) for i, f in enumerate(frames)]))
    general(path, both(path, monkeypatch))


class _Stop:
    """Ctrl-C at the n-th PDU: the pass ends there, as interrupted."""

    def __init__(self, n):
        self.n = n

    @hookimpl
    def dicomwire_pdu(self, pdu):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


@built
@pytest.mark.parametrize("at", [1, 5, 9])
def test_an_interrupted_walk_leaves_the_same_state(tmp_path, monkeypatch, at):
    """A KeyboardInterrupt out of a callback while bursts are open: both
    walks end their burst and stop the reader at the same record."""
    path = tmp_path / "stop.pcap"
    pk = _span_packets(random.Random(3))
    path.write_bytes(g.pcap([(i * 1000, g.ethernet(p)) for i, p in enumerate(pk)]))
    compiled = outcome(path, plugin=_Stop(at))
    with monkeypatch.context() as mp:
        mp.setattr(fastpath, "ext", None)
        python = outcome(path, plugin=_Stop(at))
    assert compiled == python and compiled[2]                    # interrupted
    assert compiled[0] < outcome(path)[0]



class _Histories:
    """At the first PDU: the retransmission history of every stream."""

    def __init__(self):
        self.streams, self.seen = [], None

    @hookimpl
    def dicomwire_stream_open(self, stream):
        self.streams.append(stream)

    @hookimpl
    def dicomwire_pdu(self, pdu):
        if self.seen is None:
            self.seen = [list(d.history) for s in self.streams for d in s.dirs]


@built
def test_an_ignored_direction_keeps_spans_that_read_as_views(tmp_path, monkeypatch):
    """The compiled walk keeps the payloads of an ignored direction as
    spans of the capture (not memoryviews: cheaper), which read as the
    Python walk's views do: length, slices, buffer, equality."""
    rnd = random.Random(9)
    sent = [rnd.randbytes(rnd.randint(200, 1400)) for _ in range(40)]
    bulk = g.conversation("10.0.0.5", "10.0.0.6", 45000, 445, sent, [])[:-4]   # open
    steps = valid_session()
    dicom = g.conversation("10.0.0.1", "10.0.0.2", 40000, 104,
                           [b for d, b in steps if d == 0], [b for d, b in steps if d == 1])
    path = tmp_path / "spans.pcap"
    path.write_bytes(g.pcap([(i * 1000, g.ethernet(p)) for i, p in enumerate(bulk + dicom)]))
    got = {}
    for walk in ("compiled", "python"):
        with monkeypatch.context() as mp:
            if walk == "python":
                mp.setattr(fastpath, "ext", None)
            h = _Histories()
            record(path, h)
            got[walk] = h.seen[0]
    spans, views = got["compiled"], got["python"]
    # (the first payload was seen by the selection, as the Python walk's)
    assert {type(p).__name__ for p in spans[1:]} == {"Part"} and len(spans) == len(sent)
    assert {type(p) for p in views} == {memoryview}
    assert b"".join(map(bytes, spans)) == b"".join(map(bytes, views)) == b"".join(sent)[
        -sum(map(len, views)):]
    for p, v in zip(spans, views):
        assert len(p) == len(v) and bytes(memoryview(p)) == bytes(v) and v == p
        for a, b in ((0, None), (3, 17), (-5, None), (10, 4), (None, -1), (0, 10_000)):
            assert bytes(p[a:b]) == bytes(v[a:b])
        assert p[0] == v[0] and p[-1] == v[-1] and bytes(p[::2]) == bytes(v[::2])


@built
def test_retransmissions_of_an_ignored_flow_compare_alike(tmp_path, monkeypatch):
    """Re-sent bytes of an ignored flow are compared with its history (spans
    in the compiled walk, views in the Python one): a changed copy is a
    conflict in both, an equal one is not."""
    rnd = random.Random(4)
    sent = [rnd.randbytes(1000) for _ in range(30)]
    pk = g.conversation("10.0.0.5", "10.0.0.6", 45000, 445, sent, [])
    data = [i for i, p in enumerate(pk) if len(p) > 100]
    same, changed = bytearray(pk[data[10]]), bytearray(pk[data[20]])
    changed[-7] ^= 0xFF
    pk[data[25]:data[25]] = [bytes(same), bytes(changed)]
    path = tmp_path / "resent.pcap"
    path.write_bytes(g.pcap([(i * 1000, g.ethernet(p)) for i, p in enumerate(pk)]))
    got = both(path, monkeypatch)
    infos = got[-1]
    assert [n for n, _m, _f in infos].count("tcp.overlap.conflict") == 1
    general(path, got)


PCAPNG = {
    "little-endian": dict(big_endian=False, idbs=[{}]),
    "big-endian": dict(big_endian=True, idbs=[{}]),
    "nanosecond": dict(big_endian=False, idbs=[{"tsresol": 9}]),
    "binary-resolution": dict(big_endian=False, idbs=[{"tsresol": 0x80 | 20}]),
    "finer-than-ns": dict(big_endian=False, idbs=[{"tsresol": 12}], base=10**15),  # Python's
    "two-interfaces": dict(big_endian=False, idbs=[{}, {"tsresol": 9, "tsoffset": 3600}]),
    "offset-beyond-64-bits": dict(big_endian=False, idbs=[{"tsoffset": 1 << 40}],
                                  base=(1 << 40) * 10**9),
    "ticks-beyond-64-bits": dict(big_endian=False, idbs=[{"tsresol": 0}], huge=True),
}


@built
@pytest.mark.parametrize("variant", PCAPNG)
def test_pcapng_variants_agree(tmp_path, monkeypatch, variant):
    """Enhanced Packet Blocks in C too: byte orders, resolutions, several
    interfaces, comments, other blocks between them; clocks that do not fit
    64 bits go to the Python walk, from where they start."""
    spec = PCAPNG[variant]
    idbs = [g.IDB(g.LT_ETHERNET, 0, **kw) for kw in spec["idbs"]]
    rnd = random.Random(variant)
    blocks = list(idbs)
    for i, p in enumerate(_span_packets(rnd)):
        itf = i % len(idbs)
        ts = spec.get("base", 1_700_000_000_000_000_000) + i * 1_237_000
        epb = g.EPB(itf, g.ethernet(p), ts, comments=["look"] if i % 37 == 5 else [])
        if spec.get("huge") and i > 150:
            epb = g.EPB(itf, g.ethernet(p), None, ticks=(1 << 63) + i)
        blocks.append(epb)
        if i % 53 == 7:
            blocks.append(g.NRB())
    path = tmp_path / f"{variant}.pcapng"
    path.write_bytes(g.pcapng(g.Section(blocks, spec["big_endian"])))
    handed = []
    loop = fastpath.FastPath._loop
    with monkeypatch.context() as mp:
        mp.setattr(fastpath.FastPath, "_loop", lambda self, *a: handed.append(a) or loop(self, *a))
        got = outcome(path)
    assert bool(handed) == bool(spec.get("huge"))       # the Python walk took over there
    assert got == both(path, monkeypatch)
    general(path, got)
    assert got[0] > 150


@built
@pytest.mark.parametrize("fmt, seed", [(f, s) for f in ("pcap", "pcapng") for s in range(20)])
def test_damaged_files_agree(tmp_path, monkeypatch, fmt, seed):
    """Bytes flipped anywhere in the file, the record and block headers
    included (lengths past the file's end, beyond the snap length, zero,
    odd), and the file cut at a random place: the compiled walk reads what
    the Python walk reads and warns as it does (and never reads outside
    the file: a crash here would end the test run)."""
    rnd = random.Random(seed * 7 + (fmt == "pcapng"))
    pk = _span_packets(rnd)[:60]
    frames = [(i * 1000, g.ethernet(p)) for i, p in enumerate(pk)]
    raw = bytearray(g.pcap(frames) if fmt == "pcap" else g.simple_pcapng(frames))
    head = 24 if fmt == "pcap" else 48          # keep the file a capture of its format
    for _ in range(rnd.randrange(1, 12)):
        at = rnd.randrange(head, len(raw))
        raw[at] = rnd.choice((0, 0xFF, rnd.randrange(256)))
    if rnd.random() < 0.5:
        del raw[rnd.randrange(head, len(raw)):]
    path = tmp_path / f"damaged.{fmt}"
    path.write_bytes(bytes(raw))
    both(path, monkeypatch)


@built
@pytest.mark.parametrize("seed", range(30))
def test_printable_runs_in_c_are_the_python_ones(monkeypatch, seed):
    """deidentify's self-check looks for text in runs of printable bytes:
    the compiled finder (which looks at every n-th byte until one is
    printable) and the Python one give the same runs."""
    from dicomwire.exporters.deidentify import check
    rnd = random.Random(seed)
    data = bytes(rnd.choice((rnd.randrange(256), rnd.randrange(0x20, 0x7F), 0))
                 for _ in range(rnd.randrange(0, 3000)))
    for minimum in (1, 2, 4, 9):
        compiled = check.printable_runs(data, minimum)
        with monkeypatch.context() as mp:
            mp.setattr(check, "_C_RUNS", None)
            assert check.printable_runs(data, minimum) == compiled


def _closings():
    """Handshakes and closes the walks take themselves (a SYN-ACK, the first
    FIN), and the ones they leave to the general path, one flow each."""
    mk = g.ipv4_tcp
    A, S, F, P, R = g.ACK, g.SYN, g.FIN, g.PSH, g.RST

    def flow(i, steps):       # (direction, seq offset, ack offset, flags, payload)
        c, s, out = f"10.9.{i}.1", f"10.9.{i}.2", []
        for d, so, ao, fl, p in steps:
            src, dst, sp, dp = (c, s, 40000 + i, 8080) if d == 0 else (s, c, 8080, 40000 + i)
            out.append(mk(src, dst, sp, dp, (1000, 5000)[d] + so, (5000, 1000)[d] + ao, fl, p))
        return out

    hs = [(0, 0, -5000, S, b""), (1, 0, 1, S | A, b""), (0, 1, 1, A, b"")]
    return [
        flow(0, hs + [(0, 1, 1, P | A, b"GET"), (1, 1, 4, F | A, b""), (0, 4, 2, F | A, b""),
                      (1, 2, 5, A, b"")]),                                  # server closes first
        flow(1, hs[:2] + [(1, 0, 1, S | A, b"")] + hs[2:] +                 # SYN-ACK again
             [(0, 1, 1, F | A, b""), (0, 1, 1, F | A, b""), (1, 1, 2, F | P | A, b""),
              (0, 2, 2, A, b""), (0, 2, 2, A, b"")]),                       # FIN again, ACKs after
        flow(2, hs + [(0, 1, 1, F | A, b""), (1, 1, 2, P | A, b"late"),   # data after one FIN
                      (1, 5, 2, F | A, b""), (0, 2, 6, R | A, b"")]),
        flow(3, hs + [(0, 4, 1, F | A, b""), (0, 1, 1, P | A, b"abc"),    # the FIN overtakes data
                      (1, 1, 5, F | A, b""), (0, 5, 2, A, b"")]),
        flow(4, [(1, 0, 1, S | A, b"")] + hs[2:] + [(0, 1, 1, F | A, b"")]),  # no SYN seen
        flow(5, hs + [(1, 0, 1, S | A, b"x"), (0, 1, 1, F | A, b""), (1, 1, 2, F | A, b""),
                      (0, 0, -5000, S, b""), (1, 0, 1, S | A, b"")]),       # then the port again
        flow(6, hs[:1] + [(0, 1, 1, F | A, b""), (1, 0, 1, S | A, b"")]),     # FIN before SYN-ACK
    ]


@built
def test_handshakes_and_closes_agree(tmp_path, monkeypatch):
    """SYN-ACKs and first FINs taken by the walks (the stream open, nothing
    held) and all the others left to the general path give what the general
    path gives for all of them: retransmitted ones, data after a FIN, a FIN
    beyond a hole, a capture without the SYN, port reuse."""
    rnd = random.Random(7)
    flows = _closings()
    pk = []
    while any(flows):
        f = rnd.choice([f for f in flows if f])
        pk.append(f.pop(0))
    path = tmp_path / "closings.pcap"
    path.write_bytes(g.pcap([(i * 1000, g.ethernet(p)) for i, p in enumerate(pk)]))
    got = both(path, monkeypatch)
    general(path, got)
    assert {s[7] for s in got[4]} >= {"fin", "half-closed"}
    fed = []
    from dicomwire import pipeline
    real = pipeline._general_path

    def counting(*a):
        general_ = real(*a)
        general_.decoded = lambda n, ts, seg, d=general_.decoded: fed.append(seg[3]) or d(n, ts, seg)
        return general_
    monkeypatch.setattr(pipeline, "_general_path", counting)
    assert outcome(path) == got
    # SYN-ACKs, FINs and ACKs taken in C, and of each kind some left to the general path.
    assert len(pk) - len(fed) >= 12 and {g.FIN | g.ACK, g.SYN | g.ACK} <= set(fed)


def test_the_compiled_walk_is_built_where_it_must_be():
    """CI (``.ci/run``) has a compiler and Python's headers: there a failed
    build of core/_fastwalk.c, or one out of step with fastpath.EXT_VERSION,
    is an error, not skipped tests."""
    import os
    if not os.environ.get("DICOMWIRE_REQUIRE_EXT"):
        pytest.skip("DICOMWIRE_REQUIRE_EXT not set")
    assert fastpath.ext is not None and fastpath.ext.VERSION == fastpath.EXT_VERSION
