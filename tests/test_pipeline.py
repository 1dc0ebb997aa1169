"""The fused fast path of pipeline.run gives exactly what the general path
(link decode, then Reassembler.feed, then the dispatcher) gives: same streams
and counters, same PDUs, messages and expert infos, on clean, reordered,
lossy, truncated and hostile captures."""

import random
import struct

import pytest

import capgen as g
import dicomgen as D
from dicomgen import valid_session
from dicomwire import fastpath
from dicomwire.config import Config
from dicomwire.hookspecs import hookimpl
from dicomwire.pipeline import run
from support import SAMPLE, Recorder, record


def pdu_row(pdu):
    return (pdu.stream.id, pdu.direction, pdu.type, pdu.length, pdu.offset,
            pdu.first_frame, pdu.last_frame, tuple(pdu.problems))


def message_row(m):
    return (m.name, m.message_id, m.first_frame, m.last_frame, m.complete,
            m.dataset_len, m.dataset_bytes() if m.has_dataset else b"", tuple(m.problems))


def outcome(path, fast):
    rec = Recorder(pdu=pdu_row, message=message_row)
    # Plugin failures are compared too (as plugin.failed infos), not refused.
    r = record(path, rec, allow_errors=True, fast_path=fast)
    streams = [(s.id, s.client, s.server, s.first_frame, s.last_frame, s.close_reason,
                [(d.frames, d.next_off, d.retrans, d.gaps, d.gap_bytes, d.conflicts,
                  d.keepalives, d.ooo_segments, d.zero_windows) for d in s.dirs], s.last_ts)
               for s in r.streams]
    infos = [(i.field.name, i.message, tuple(i.frames)) for i in r.expert.infos]
    return streams, rec.pdus, rec.messages, infos


def write(tmp_path, name, packets, times=None):
    p = tmp_path / name
    times = times or [i * 1000 for i in range(len(packets))]
    p.write_bytes(g.pcap([(t, g.ethernet(x)) for t, x in zip(times, packets)]))
    return p


def session_packets(mss=700):
    steps = valid_session()
    def cut(direction):
        return [b[i:i + mss] for d, b in steps if d == direction for i in range(0, len(b), mss)]
    return g.conversation("10.0.0.1", "10.0.0.2", 40000, 104, cut(0), cut(1))


def agree(path):
    """The fast path (its compiled walk where built, and its Python walk)
    gives what the general path gives."""
    fast, slow = outcome(path, True), outcome(path, False)
    assert fast == slow
    if fastpath.ext is not None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(fastpath, "ext", None)
            assert outcome(path, True) == slow
    return fast


def test_sample_capture():
    streams, pdus, messages, _ = agree(SAMPLE)
    assert len(pdus) > 30 and len(messages) > 10


@pytest.mark.parametrize("seed", range(6))
def test_reordered_duplicated_and_lost_segments(tmp_path, seed):
    rnd = random.Random(seed)
    pk = session_packets(mss=rnd.choice((90, 300, 1460)))
    head, body = pk[:3], pk[3:]
    out = []
    for p in body:
        r = rnd.random()
        if r < 0.05 and seed % 2:
            continue                           # lost
        out.append(p)
        if r > 0.93:
            out.append(p)                      # duplicated
    for _ in range(len(out) // 8):             # some swaps
        i = rnd.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    agree(write(tmp_path, f"shuffled{seed}.pcap", head + out))


def test_mid_stream_start_zero_window_and_truncated_frames(tmp_path):
    pk = session_packets(mss=200)
    cut = pk[6:]                                   # no handshake, no A-ASSOCIATE
    full = g.ipv4("10.0.0.2", "10.0.0.1", g.P_TCP,
                  g.tcp("10.0.0.2", "10.0.0.1", 104, 40000, 5001, 1001, g.ACK, window=0))
    cut[4:4] = [full]
    path = write(tmp_path, "mid.pcap", cut)
    agree(path)
    # snaplen-cut frames: the fast path must leave them to the general one.
    frames = [(i * 1000, g.ethernet(x)[:120], len(g.ethernet(x))) for i, x in enumerate(pk)]
    snapped = tmp_path / "snap.pcap"
    snapped.write_bytes(g.pcap(frames, snaplen=120))
    streams, _, _, infos = agree(snapped)
    assert any(n == "tcp.gap" for n, _, _ in infos)


@pytest.mark.parametrize("seed", range(30))
def test_mutated_frames_agree(tmp_path, seed):
    """Random bytes flipped in headers and payloads, frames cut short: both
    paths see the same thing (and neither raises)."""
    rnd = random.Random(seed)
    frames = [bytearray(g.ethernet(x)) for x in session_packets(mss=rnd.choice((64, 500)))]
    for f in frames:
        for _ in range(rnd.randrange(3)):
            if rnd.random() < 0.5:
                f[rnd.randrange(min(len(f), 60))] = rnd.randrange(256)
            else:
                f[rnd.randrange(len(f))] = rnd.randrange(256)
        if rnd.random() < 0.05:
            del f[rnd.randrange(len(f)):]
    p = tmp_path / "m.pcap"
    p.write_bytes(g.pcap([(i * 1000, bytes(f)) for i, f in enumerate(frames)]))
    agree(p)


# --- the bulk lane: big PDVs, where the fast path appends payloads itself ---

BIG = D.element(0x0008, 0x0016, D.CT_STORAGE.encode()) \
    + D.element(0x0008, 0x0018, b"1.2.826.0.1.3680043.9.7") \
    + D.element(0x7FE0, 0x0010, bytes(range(256)) * 400)          # about 100 kB


def bulk_steps(abort_at=None, pdu=30_000, mss=1000):
    """An association storing BIG in PDVs of ``pdu`` bytes, cut into
    ``mss``-sized segments; ``abort_at``: the acceptor aborts after that
    many data segments (while a lane is open)."""
    data = [D.pdata((3, 0 if i + pdu < len(BIG) else 2, BIG[i:i + pdu]))
            for i in range(0, len(BIG), pdu)]
    steps = [(0, D.RQ), (1, D.AC), (0, D.pdata((3, 3, D.STORE_RQ)))]
    segs = [b[i:i + mss] for b in data for i in range(0, len(b), mss)]
    for k, s in enumerate(segs):
        if k == abort_at:
            steps.append((1, D.ABORT))
        steps.append((0, s))
    steps += [(1, D.pdata((3, 3, D.STORE_RSP))), (0, D.RELEASE_RQ), (1, D.RELEASE_RP)]
    return steps


@pytest.mark.parametrize("case", ["clean", "abort", "small-pdu", "lost", "reordered"])
def test_bulk_lane_agrees(tmp_path, case):
    steps = bulk_steps(abort_at=40 if case == "abort" else None,
                       pdu=5000 if case == "small-pdu" else 30_000,
                       mss=1460 if case == "small-pdu" else 1000)
    pk = g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, steps)
    if case == "lost":
        del pk[30], pk[55]                          # data segments of a lane
    elif case == "reordered":
        for i in (24, 40, 60):      # data, ACK, data, ACK -> data, data (swapped), ACK, ACK
            assert len(pk[i]) > 100 and len(pk[i + 2]) > 100
            pk[i:i + 4] = [pk[i + 2], pk[i], pk[i + 1], pk[i + 3]]
    streams, pdus, messages, infos = agree(write(tmp_path, f"{case}.pcap", pk))
    stored = [m for m in messages if m[0] == "C-STORE-RQ"]
    assert stored
    if case in ("clean", "small-pdu", "reordered"):
        assert stored[0][4] and stored[0][6] == BIG   # complete, every byte in order
    else:
        assert not stored[0][4]


def test_bulk_lane_spills_like_add_data(tmp_path, monkeypatch):
    """With a tiny memory budget the lane stops where add_data would spill:
    the data set is spooled to disk all the same, byte for byte."""
    from dicomwire.plugins.dicom import spool
    monkeypatch.setattr(spool, "SPOOL_AT", 20_000)
    monkeypatch.setattr(spool, "MEMORY_BUDGET", 30_000)
    pk = g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, bulk_steps())
    streams, pdus, messages, infos = agree(write(tmp_path, "spill.pcap", pk))
    stored = [m for m in messages if m[0] == "C-STORE-RQ"]
    assert stored[0][4] and stored[0][6] == BIG
    assert spool.held[0] == 0                         # all accounted for and released


def _thin_acks(pk, every=8):
    """Keep one in ``every`` bare ACKs of the data phase, so data segments
    follow each other as on a fast link (the pcap loop's bursts)."""
    out, k = [], 0
    for i, p in enumerate(pk):
        bare = len(p) == 40 and 5 < i < len(pk) - 8
        if bare:
            k += 1
            if k % every:
                continue
        out.append(p)
    return out


@pytest.mark.parametrize("case", ["clean", "retransmitted", "zero-window", "snapped",
                                  "interleaved", "lost", "vlan", "ends-on-an-ack"])
def test_bulk_bursts_agree(tmp_path, case):
    """Consecutive data segments of one flow are taken in bursts by the
    pcap loop: the same as one by one, whatever interrupts the run. (VLAN
    tagged: no walk, the lanes through the reassembler's in-order path.)"""
    pk = _thin_acks(g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, bulk_steps()))
    frames = [g.ethernet(x, vlans=[5] if case == "vlan" else ()) for x in pk]
    snap = None
    if case == "retransmitted":
        frames.insert(40, frames[35])
    elif case == "zero-window":
        frames.insert(40, g.ethernet(g.ipv4("10.0.0.1", "10.0.0.2", g.P_TCP, g.tcp(
            "10.0.0.1", "10.0.0.2", 40000, 104, 1001, 5001, g.ACK, window=0))))
    elif case == "snapped":
        snap = 200                                   # every data frame cut by the snaplen
    elif case == "interleaved":
        other = [g.ethernet(x) for x in _thin_acks(
            g.exchange("10.0.0.3", "10.0.0.2", 40001, 104, bulk_steps()))]
        mixed = []
        for i in range(max(len(frames), len(other))):
            mixed += frames[i:i + 1] + other[i:i + 1]
        frames = mixed
    elif case == "lost":
        del frames[30], frames[47]
    elif case == "ends-on-an-ack":
        # A bare ACK of the other direction inside a burst, as the last record.
        i = next(i for i in range(40, len(pk)) if len(pk[i]) == 40 and len(pk[i - 1]) > 500)
        frames = frames[:i + 1]
    p = tmp_path / f"{case}.pcap"
    if snap:
        p.write_bytes(g.pcap([(i * 1000, f[:snap], len(f)) for i, f in enumerate(frames)],
                             snaplen=snap))
    else:
        p.write_bytes(g.pcap([(i * 1000, f) for i, f in enumerate(frames)]))
    streams, pdus, messages, infos = agree(p)
    stored = [m for m in messages if m[0] == "C-STORE-RQ"]
    assert stored
    if case in ("clean", "retransmitted", "zero-window", "interleaved", "vlan"):
        assert all(m[4] and m[6] == BIG for m in stored)


@pytest.mark.parametrize("case", ["clean", "nanoseconds", "big-endian", "comment", "two-ifaces",
                                  "new-section", "spb", "binary-resolution", "lost"])
def test_pcapng_bursts_agree(tmp_path, case):
    """A memory-mapped pcapng: Enhanced Packet Blocks after a lane segment
    are taken in bursts; any other block (a comment, another interface, a new
    section, a Simple Packet Block, an unusual time resolution) stops one."""
    pk = _thin_acks(g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, bulk_steps()))
    frames = [g.ethernet(x) for x in pk]
    if case == "lost":
        del frames[30], frames[47]
    res = {"nanoseconds": 9, "binary-resolution": 0x80 | 20}.get(case)
    blocks = [g.IDB(tsresol=res)]
    if case == "two-ifaces":
        blocks.append(g.IDB())
    for i, f in enumerate(frames):
        epb = g.EPB(1 if case == "two-ifaces" and i % 9 == 4 else 0, f, ts_ns=i * 1000)
        if case == "comment" and i % 7 == 3:
            epb.comments = [f"frame {i + 1}"]
        if case == "spb" and i == 33:
            blocks.append(g.SPB(f))
            continue
        blocks.append(epb)
    sections = [g.Section(blocks, big_endian=case == "big-endian")]
    if case == "new-section":
        half = len(blocks) // 2
        sections = [g.Section(blocks[:half]), g.Section([g.IDB()] + blocks[half:])]
    p = tmp_path / f"{case}.pcapng"
    p.write_bytes(g.pcapng(sections))
    streams, pdus, messages, infos = agree(p)
    stored = [m for m in messages if m[0] == "C-STORE-RQ"]
    assert stored
    if case != "lost":
        assert all(m[4] and m[6] == BIG for m in stored)
    # The same frames as the classic pcap of the same packets.
    if case in ("clean", "nanoseconds", "big-endian", "comment", "two-ifaces"):
        classic = tmp_path / f"{case}.pcap"
        classic.write_bytes(g.pcap([(i * 1000, f) for i, f in enumerate(frames)]))
        assert outcome(classic, True)[1:3] == (pdus, messages)


@pytest.mark.parametrize("case", ["milliseconds", "100ns", "offset", "comment-on-each",
                                  "binary-resolution"])
def test_pcapng_blocks_the_walk_reads_agree(tmp_path, case):
    """The walk reads Enhanced Packet Blocks of any decimal time resolution
    down to nanoseconds, with an if_tsoffset, and with options (keeping their
    comments) as the reader does: the same frames, times and comments."""
    pk = _thin_acks(g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, bulk_steps()))
    res = {"milliseconds": 3, "100ns": 7, "binary-resolution": 0x80 | 20}.get(case)
    blocks = [g.IDB(tsresol=res, tsoffset=-3600 if case == "offset" else None)]
    for i, x in enumerate(pk):
        epb = g.EPB(0, g.ethernet(x), ts_ns=1_700_000_000_000_000_000 + i * 1_234_567)
        if case == "comment-on-each":
            epb.comments = [f"frame {i + 1}"]
        blocks.append(epb)
    path = tmp_path / f"{case}.pcapng"
    path.write_bytes(g.pcapng([g.Section(blocks)]))
    seen = []
    for fast in (True, False):
        frames = []
        cfg = Config(fast_path=fast)
        r = run(str(path), cfg,
                tap=lambda n, ts, lt, data, orig, i: frames.append((n, ts, lt, bytes(data), orig, i)))
        seen.append((frames, r.reader.comments, [(s.first_ts, s.last_ts) for s in r.streams]))
    assert seen[0] == seen[1] and len(seen[0][0]) == len(pk)
    assert len(seen[0][1]) == (len(pk) if case == "comment-on-each" else 0)
    agree(path)


def test_pcapng_frames_the_walk_hands_on_are_exactly_their_captured_bytes(tmp_path):
    """Frames the walk gives the general path (another link type; cut by the
    snaplen at lengths that are no multiple of 4, so their blocks are padded)
    carry their captured bytes and no more, as the reader yields them."""
    pk = session_packets(mss=300)
    blocks = [g.IDB(), g.IDB(g.LT_RAW)]
    for i, p in enumerate(pk):
        if i % 3 == 1:
            blocks.append(g.EPB(1, p[:57], ts_ns=i * 1000, orig_len=len(p)))
        else:
            blocks.append(g.EPB(i % 3 // 2, p if i % 3 else g.ethernet(p), ts_ns=i * 1000))
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(g.pcapng([g.Section(blocks)]))
    streams, _, _, infos = agree(path)
    assert any(n == "tcp.gap" for n, _, _ in infos)


# --- flag-gated TCP fields (issue 13): the ack field only with ACK ---

def _ack_cleared(frame: bytes, ack: int) -> bytes:
    """An Ethernet/IPv4/TCP frame (no IP options) with its ACK flag cleared
    and ``ack`` in its ack field (checksums are not checked)."""
    f = bytearray(frame)
    f[47] &= ~g.ACK & 0xFF
    f[42:46] = struct.pack("!I", ack)
    return bytes(f)


def _seq_ack(packet: bytes):
    return struct.unpack_from("!II", packet, 24)


@pytest.mark.parametrize("case", ["bare-rst-client", "bare-rst-server", "no-ack-data",
                                  "no-ack-bulk", "no-ack-burst"])
def test_ack_field_only_with_the_ack_flag(tmp_path, case):
    """A bare RST (ack field 0) or data segments with the ACK flag clear and
    a stray ack field: no tcp.gap from them, on the fast path as on the
    general one (ISNs above 2**31: an ack field of 0 would lie far ahead)."""
    if case.startswith("bare-rst"):
        steps = valid_session()
        pk = g.conversation("10.0.0.1", "10.0.0.2", 40000, 104,
                            [b for d, b in steps if d == 0], [b for d, b in steps if d == 1],
                            isn_c=0x9000_0000, isn_s=0xA000_0000)
        clean = outcome(write(tmp_path, "clean.pcap", pk), True)
        c, s = _seq_ack(pk[-3])                    # the client's FIN: its seq, its ack
        rst = (g.ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 104, c, 0, g.RST)
               if case.endswith("client") else
               g.ipv4_tcp("10.0.0.2", "10.0.0.1", 104, 40000, s, 0, g.RST))
        frames = [g.ethernet(x) for x in pk[:-3]] + [g.ethernet(rst)]
    elif case == "no-ack-data":
        pk = session_packets(mss=200)
        clean = outcome(write(tmp_path, "clean.pcap", pk[:-3]), True)
        frames = [_ack_cleared(g.ethernet(x), 1001 + 10**7)
                  if x[12:16] == bytes([10, 0, 0, 2]) and len(x) > 40 else g.ethernet(x)
                  for x in pk[:-3]]                # no FINs: the stream ends open
    elif case == "no-ack-burst":
        # The capture ends inside the lane: its last records come in a burst
        # (after a segment with ACK, those without it; before the fix the
        # burst took them and kept the last one's ack field).
        pk = _thin_acks(g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, bulk_steps()))[:59]
        assert all(len(x) > 500 for x in pk[-6:])
        clean = outcome(write(tmp_path, "clean.pcap", pk), True)
        frames = [_ack_cleared(g.ethernet(x), 5001 + 10**7) if len(x) > 500 and i % 4 else
                  g.ethernet(x) for i, x in enumerate(pk)]
    else:
        pk = _thin_acks(g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, bulk_steps()))
        clean = outcome(write(tmp_path, "clean.pcap", pk[:-3]), True)
        # Every client segment after the handshake: the lane's bursts among them.
        frames = [_ack_cleared(g.ethernet(x), 5001 + 10**7)
                  if i > 1 and x[12:16] == bytes([10, 0, 0, 1]) else g.ethernet(x)
                  for i, x in enumerate(pk[:-3])]
    p = tmp_path / f"{case}.pcap"
    p.write_bytes(g.pcap([(i * 1000, f) for i, f in enumerate(frames)]))
    streams, pdus, messages, infos = agree(p)
    assert not [i for i in infos if i[0] == "tcp.gap"]
    assert all(d[4] == 0 for d in streams[0][6])            # no gap bytes either way
    assert streams[0][5] == ("rst" if case.startswith("bare-rst") else "open")
    assert pdus == clean[1] and messages == clean[2]


# --- protocol selection across segments (issue 13): MORE ---

class _Keep:
    """A dissector that keeps every event."""

    def __init__(self):
        self.events = []
        self.closed = 0

    def data(self, d, off, payload, frame, ts):
        self.events.append(("data", d, off, bytes(payload), frame, ts))

    def gap(self, d, off, size, frame, ts):
        self.events.append(("gap", d, off, size, frame, ts))

    def close(self):
        self.closed += 1


class _Peeker:
    """Selects a stream once direction 0 carried ``need`` bytes starting with
    ``magic`` (MORE until then); ``asked`` records each call."""

    def __init__(self, need=20, magic=b"HELLO"):
        self.need, self.magic = need, magic
        self.asked, self.dis = [], {}

    @hookimpl
    def dicomwire_stream_dissector(self, stream, direction, payload):
        from dicomwire.hookspecs import MORE
        self.asked.append((stream.id, direction, bytes(payload)))
        p = bytes(payload)
        if direction != 0 or not (p.startswith(self.magic) or self.magic.startswith(p)):
            return None
        if len(p) < self.need:
            return MORE
        self.dis[stream.id] = k = _Keep()
        return k


def _run_with(path, *plugins, fast=True):
    from dicomwire.host import PluginHost
    host = PluginHost(builtins={}, entry_points=False)
    for i, p in enumerate(plugins):
        host.register(p, f"p{i}")
    return run(str(path), Config(fast_path=fast), host)


def _events_of(steps):
    """What a dissector must see of ``steps`` sent by g.exchange (one frame
    per step after the handshake, each ACKed): (kind, d, off, bytes, frame)."""
    off, out, frame = [0, 0], [], 3
    for d, p in steps:
        out.append(("data", d, off[d], p, frame))
        off[d] += len(p)
        frame += 2
    return out


@pytest.mark.parametrize("fast", [True, False])
def test_selection_waits_for_more_bytes(tmp_path, fast):
    """MORE: the bytes are held and the plugin asked again with all of them
    so far; once it selects, its dissector gets every byte once, with the
    offsets and frames they came with, whatever the direction."""
    steps = [(0, b"HE"), (0, b"LLO, I am "), (1, b"(server)"), (0, b"the client"),
             (0, b" and more"), (1, b"ok")]
    pk = g.exchange("10.0.0.1", "10.0.0.2", 40000, 7777, steps)
    pe = _Peeker(need=20)
    r = _run_with(write(tmp_path, "more.pcap", pk), pe, fast=fast)
    # Asked with the client's bytes so far, and once for the server's.
    assert pe.asked == [(0, 0, b"HE"), (0, 0, b"HELLO, I am "), (0, 1, b"(server)")]
    # (server) answered None: that answer decides, as without waiting.
    assert r.streams[0].dissector is False and pe.dis == {}

    steps[2] = (0, b"the client")
    steps[3] = (1, b"(server)")
    pe = _Peeker(need=20)
    r = _run_with(write(tmp_path, "more2.pcap", pk := g.exchange(
        "10.0.0.1", "10.0.0.2", 40000, 7777, steps)), pe, fast=fast)
    assert pe.asked == [(0, 0, b"HE"), (0, 0, b"HELLO, I am "),
                        (0, 0, b"HELLO, I am the client")]
    k = pe.dis[0]
    assert [e[:5] for e in k.events] == _events_of(steps)
    assert k.closed == 1 and r.streams[0].dissector is k


def test_selection_gives_up_past_the_bounds(tmp_path):
    """A plugin that never decides is asked PEEK_CALLS times at most, or
    until PEEK_BYTES are held; then the stream costs nothing more."""
    from dicomwire.hookspecs import PEEK_BYTES, PEEK_CALLS
    many = [(0, b"HELLO"[:1])] + [(0, b"x")] * (PEEK_CALLS + 10)
    big = [(0, b"HELLO" + b"y" * 995)] * 10
    path = write(tmp_path, "never.pcap",
                 g.exchange("10.0.0.1", "10.0.0.2", 40000, 7777, many)
                 + g.exchange("10.0.0.3", "10.0.0.2", 40001, 7777, big))
    pe = _Peeker(need=10**9, magic=b"H")
    r = _run_with(path, pe)
    calls = [a for a in pe.asked if a[0] == 0]
    assert len(calls) == PEEK_CALLS and calls[-1][2] == b"H" + b"x" * (PEEK_CALLS - 1)
    calls = [a for a in pe.asked if a[0] == 1]
    assert len(calls) == -(-PEEK_BYTES // 1000) and len(calls[-1][2]) >= PEEK_BYTES
    assert [s.dissector for s in r.streams] == [False, False]


def test_selection_undecided_at_a_gap_or_the_end(tmp_path):
    """Bytes missing while undecided, or the stream's end: not dissected,
    nothing held afterwards."""
    steps = [(0, b"HEL"), (0, b"LO wor"), (0, b"ld and more")]
    pk = g.exchange("10.0.0.1", "10.0.0.2", 40000, 7777, steps)
    lost = pk[:4] + pk[6:]                        # the second piece never captured
    pe = _Peeker(need=10)
    r = _run_with(write(tmp_path, "lost.pcap", lost), pe)
    assert pe.asked == [(0, 0, b"HEL")] and pe.dis == {}
    assert r.streams[0].dissector is False and r.streams[0].dirs[0].gaps == 1
    pe = _Peeker(need=100)
    r = _run_with(write(tmp_path, "short.pcap", pk), pe)
    assert len(pe.asked) == 3 and pe.dis == {} and r.streams[0].dissector is None


def test_selection_a_dissector_beats_more(tmp_path):
    """One plugin undecided, another sure: the sure one wins at once."""
    from dicomwire.hookspecs import hookimpl as impl

    class Sure:
        def __init__(self):
            self.k = _Keep()

        @impl(trylast=True)
        def dicomwire_stream_dissector(self):
            return self.k

    steps = [(0, b"HE"), (0, b"LLO")]
    pe, sure = _Peeker(need=100), Sure()
    _run_with(write(tmp_path, "sure.pcap",
                    g.exchange("10.0.0.1", "10.0.0.2", 40000, 7777, steps)), pe, sure)
    assert len(pe.asked) == 1 and [e[:5] for e in sure.k.events] == _events_of(steps)


@pytest.mark.parametrize("cut", [[6], [1, 2, 6], list(range(5, 74, 5)), [74]])
def test_dicom_heuristic_across_segments(tmp_path, cut):
    """The A-ASSOCIATE-RQ on a port not configured, its first bytes cut in
    segments at ``cut``: found by the heuristic, and decoded exactly as the
    same segments on a configured port (PDUs with their offsets and frames,
    messages, findings)."""
    steps = valid_session()
    rq = steps[0][1]
    assert steps[0][0] == 0 and rq[0] == 1
    bounds = [0] + cut + [len(rq)]
    split = [(0, rq[a:b]) for a, b in zip(bounds, bounds[1:])] + steps[1:]
    on_port = agree(write(tmp_path, "port.pcap",
                          g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, split)))
    found = agree(write(tmp_path, "heuristic.pcap",
                        g.exchange("10.0.0.1", "10.0.0.2", 40000, 7777, split)))
    assert on_port[1] and found[1:3] == on_port[1:3]
    assert len(found[2]) == len([m for m in found[2] if m[4]]) > 2      # all complete
    assert found[1][0][6] == 1 + 2 * (len(bounds) - 1)      # the RQ ends in its last piece
    assert found[0][0][6] == on_port[0][0][6]                # the same counters


# --- the bulk lane as an API: granted by a dissector, taken back with its count ---

class _Laner:
    """A dissector of direction 0 that grants the fast path a lane of
    ``room`` bytes after each call, as the DICOM dissector does inside a long
    PDV, and takes it back (counting what was appended) on the next one."""

    def __init__(self, stream, room):
        self.stream, self.room = stream, room
        self.parts, self.calls, self.appended = [], 0, 0

    def _take(self):
        self.appended += self.stream.dirs[0].take_lane()

    def data(self, d, off, payload, frame, ts):
        self._take()
        self.calls += 1
        if d == 0:
            self.parts.append(bytes(payload))
            self.stream.dirs[0].grant_lane(self.room, self.parts)

    def gap(self, d, off, size, frame, ts):
        self._take()

    def close(self):
        self._take()
        self.parts = [bytes(p) for p in self.parts]     # the walk appends views


class _LanePlugin:
    def __init__(self, room):
        self.room, self.dis = room, None

    @hookimpl
    def dicomwire_stream_dissector(self, stream):
        self.dis = _Laner(stream, self.room)
        return self.dis


@pytest.mark.parametrize("link", ["ethernet", "sll"])
@pytest.mark.parametrize("room", [0, 2500, 1 << 20])
def test_a_granted_lane_takes_segments_without_calls(tmp_path, room, link):
    """While a lane is open the fast path appends fitting segments to the
    grantor's part list instead of calling it (through the walk, or the
    reassembler's in-order path for link types the walk leaves); take_lane
    returns how many bytes that was. The bytes, in order, are what the
    reference path (Config.fast_path off: no lanes) delivers."""
    sent = [bytes([i]) * 1000 for i in range(60)]
    pk = _thin_acks(g.exchange("10.0.0.1", "10.0.0.2", 40000, 7777, [(0, p) for p in sent]))
    path = tmp_path / "lane.pcap"
    if link == "sll":
        path.write_bytes(g.pcap([(i * 1000, g.sll(x)) for i, x in enumerate(pk)], linktype=113))
    else:
        path = write(tmp_path, "lane.pcap", pk)
    fast, slow = _LanePlugin(room), _LanePlugin(room)
    _run_with(path, fast, fast=True)
    _run_with(path, slow, fast=False)
    assert b"".join(fast.dis.parts) == b"".join(slow.dis.parts) == b"".join(sent)
    assert slow.dis.appended == 0 and slow.dis.calls == len(sent)
    if room < 1000:
        assert fast.dis.appended == 0 and fast.dis.calls == len(sent)
    else:
        # Each lane takes the segments shorter than what is left of it; the
        # next one comes through a call (2500: two in the lane, one call).
        assert fast.dis.appended == sum(map(len, sent)) - 1000 * fast.dis.calls
        assert fast.dis.calls == (1 if room > 60_000 else 20)


def test_streams_nobody_dissects_and_udp_agree_and_cost_no_calls(tmp_path):
    """A span port's bulk: a non-DICOM TCP flow is ignored after selection
    (its payloads go into a lane that drops them, as bursts) and UDP is
    counted by the walk; streams, link counts and findings agree with the
    reference path, and the DICOM session beside them decodes the same."""
    import random
    rnd = random.Random(5)
    bulk = [rnd.randbytes(rnd.randint(1, 1400)) for _ in range(300)]
    other = g.conversation("10.0.0.5", "10.0.0.6", 45000, 445, bulk, [b"ok"] * 3)
    udp = [g.ipv4("10.0.0.7", "10.0.0.8", 17, g.udp("10.0.0.7", "10.0.0.8", 5353, 53, b"q" * 60))
           for _ in range(20)]
    mixed = []
    for i, pk in enumerate(other):
        mixed.append(pk)
        if i % 15 == 0 and udp:
            mixed.append(udp.pop())
    packets = mixed[:40] + session_packets() + mixed[40:]
    path = write(tmp_path, "span.pcap", packets)
    streams, pdus, messages, infos = agree(path)
    assert len(streams) == 2 and pdus and messages
    (smb,) = [s for s in streams if s[2][1] == 445]
    assert smb[6][0][1] == sum(map(len, bulk))               # every byte accounted for
    r = _run_with(path)
    assert r.link.stats.non_tcp == _run_with(path, fast=False).link.stats.non_tcp == 20
    (ignored,) = [s for s in r.streams if s.server[1] == 445]
    assert ignored.dissector is False and ignored.dirs[0].lane_parts is not None


class _Interested(_Peeker):
    """A _Peeker that says beforehand which streams it may take."""

    def __init__(self, ports, first, **kw):
        super().__init__(**kw)
        self.ports, self.first = ports, first

    @hookimpl
    def dicomwire_stream_interest(self):
        from dicomwire.hookspecs import StreamInterest
        return StreamInterest(self.ports, self.first)


@pytest.mark.parametrize("fast", [True, False])
def test_streams_outside_every_interest_are_declined_unasked(tmp_path, fast):
    """When every plugin that selects streams gave its interest, a stream
    on none of their ports whose client does not start with one of their
    first bytes, or whose server speaks first, is declined without a call;
    a selecting plugin without one: every stream is asked. Streams,
    counters and choices are the same either way (the walks' as the general
    path's), and the ACKs after each close are counted alike."""
    flows = [(40000, 7777, [(0, b"HELLO, I am the client"), (1, b"ok")]),   # asked: 'H'
             (40001, 7777, [(0, b"xyz"), (1, b"no")]),                     # declined
             (40002, 7777, [(1, b"220 server first"), (0, b"HELLO?")]),    # declined
             (40003, 9999, [(0, b"abc"), (1, b"def")])]                    # asked: its port
    path = write(tmp_path, "interest.pcap", [
        pk for i, (cp, sp, steps) in enumerate(flows)
        for pk in g.exchange(f"10.0.0.{i + 1}", "10.0.1.1", cp, sp, steps)])

    def streams(r):
        return [(s.id, s.close_reason, bool(s.dissector), s.first_frame, s.last_frame,
                 [(d.frames, d.next_off, d.ack, d.lane, d.retrans) for d in s.dirs])
                for s in r.streams]

    told = _Interested({9999}, b"H", need=10)
    got = streams(_run_with(path, told, fast=fast))
    assert sorted({a[0] for a in told.asked}) == [0, 3] and list(told.dis) == [0]
    blind = _Peeker(need=10)
    assert streams(_run_with(path, blind, fast=fast)) == got
    assert sorted({a[0] for a in blind.asked}) == [0, 1, 2, 3]
    # One selecting plugin without an interest: the others' promise is not enough.
    told, blind = _Interested({9999}, b"H", need=10), _Peeker(need=10, magic=b"zzz")
    assert streams(_run_with(path, told, blind, fast=fast)) == got
    assert sorted({a[0] for a in blind.asked}) == [0, 1, 2, 3]


def test_interest_is_the_union_or_nothing():
    from dicomwire.hookspecs import StreamInterest
    from dicomwire.host import PluginHost
    host = PluginHost(builtins={}, entry_points=False)
    assert (i := host.interest(Config())) is not None and not i.ports and i.first == b""
    host.register(_Interested({104}, b"\x16"), "a")
    host.register(_Interested(range(10, 12), b"\x01\x16"), "b")
    i = host.interest(Config())
    assert i.ports == {10, 11, 104} and i.first == b"\x01\x16"
    host.register(_Peeker(), "c")
    assert host.interest(Config()) is None
    assert StreamInterest([5]).first == b""


def test_dicom_interest_follows_its_preferences(tmp_path):
    """The DICOM pack's interest: its ports (DICOM and DICOM over TLS), an
    A-ASSOCIATE-RQ or a ClientHello elsewhere with the heuristic on; the
    sample decodes the same on another port, found by the heuristic."""
    from dicomwire.pipeline import make_host
    config = Config()
    host = make_host(config)
    run(str(SAMPLE), config, host)
    i = host.interest(config)
    assert {104, 11112, 2762} <= i.ports and 105 not in i.ports and i.first == b"\x01\x16"
    config.preferences["dicom.heuristic"] = False
    assert host.interest(config).first == b""
