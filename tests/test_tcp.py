"""dicomwire.tcp.Reassembler driven directly with hand-made segments.

Segments are the tuples of :mod:`dicomwire.link`:
``(flow, seq, ack, flags, payload, missing)`` with ``flow`` =
src4 + dst4 + sport (2, BE) + dport (2, BE).  A recording sink rebuilds each
direction's bytes from ``data`` events, checks that every ``data`` / ``gap``
event continues exactly where the previous one ended, and records gaps,
conflicts and close reasons.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dicomwire.tcp import ACK, FIN, MASK, PSH, RST, SYN, ZERO_WINDOW, Reassembler, StreamSink

CLIENT = bytes([10, 0, 0, 1])
SERVER = bytes([10, 0, 0, 2])
CPORT, SPORT = 40000, 104


def flow(src, dst, sport, dport):
    return src + dst + struct.pack("!HH", sport, dport)


C2S = flow(CLIENT, SERVER, CPORT, SPORT)
S2C = flow(SERVER, CLIENT, SPORT, CPORT)


# --------------------------------------------------------------------------
# Recording sink
# --------------------------------------------------------------------------

class Rec(StreamSink):
    """Rebuilds every direction from the events and checks their order."""

    def __init__(self):
        self.opened = []
        self.pos = {}          # (stream id, direction) -> next expected offset
        self.buf = {}          # (stream id, direction) -> bytearray of data only
        self.pieces = {}       # (stream id, direction) -> [("d", off, bytes) | ("g", off, size)]
        self.gaps = {}         # (stream id, direction) -> [(offset, size)]
        self.conflicts = []    # (stream id, direction, offset, size, frame)
        self.closed = {}       # stream id -> close reason
        self.events = []       # (kind, stream id, direction, offset, size, frame)

    def _key(self, stream, d):
        assert stream.id in self.opened and stream.id not in self.closed
        return (stream.id, d)

    def stream_open(self, stream):
        assert stream.id not in self.opened
        self.opened.append(stream.id)

    def data(self, stream, direction, offset, payload, frame, ts):
        key = self._key(stream, direction)
        assert len(payload) > 0
        assert offset == self.pos.get(key, 0), "data not contiguous"
        payload = bytes(payload)
        self.pos[key] = offset + len(payload)
        self.buf.setdefault(key, bytearray()).extend(payload)
        self.pieces.setdefault(key, []).append(("d", offset, payload))
        self.events.append(("data", stream.id, direction, offset, len(payload), frame))

    def gap(self, stream, direction, offset, size, frame, ts):
        key = self._key(stream, direction)
        assert size > 0
        assert offset == self.pos.get(key, 0), "gap not contiguous"
        self.pos[key] = offset + size
        self.gaps.setdefault(key, []).append((offset, size))
        self.pieces.setdefault(key, []).append(("g", offset, size))
        self.events.append(("gap", stream.id, direction, offset, size, frame))

    def conflict(self, stream, direction, offset, size, frame, ts):
        self._key(stream, direction)
        self.conflicts.append((stream.id, direction, offset, size, frame))
        self.events.append(("conflict", stream.id, direction, offset, size, frame))

    def stream_close(self, stream):
        assert stream.id in self.opened and stream.id not in self.closed
        assert stream.closed and stream.close_reason
        self.closed[stream.id] = stream.close_reason
        self.events.append(("close", stream.id, None, None, None, stream.last_frame))

    # helpers for the tests
    def bytes(self, sid=0, d=0):
        return bytes(self.buf.get((sid, d), b""))

    def gaps_of(self, sid=0, d=0):
        return self.gaps.get((sid, d), [])

    def kinds(self, sid=0):
        return [e[0] for e in self.events if e[1] == sid]


class Wire:
    """A reassembler, its sink and a frame counter."""

    def __init__(self, **kw):
        self.sink = Rec()
        self.r = Reassembler(self.sink, **kw)
        self.frame = 0

    def send(self, fl, seq, flags=ACK, payload=b"", ack=0, missing=0):
        self.frame += 1
        self.r.feed(self.frame, 1_000_000 * self.frame,
                    (fl, seq & MASK, ack & MASK, flags, payload, missing))
        return self.frame

    @property
    def streams(self):
        return self.r.streams


class Conn:
    """One connection on a wire; offsets are stream offsets (0 = first byte
    after the SYN).  ``ack`` defaults to the peer's ISN + 1 (acknowledging no
    data), so nothing here proves a hole unless a test asks for it."""

    def __init__(self, wire, isn_c=1000, isn_s=900_000, c2s=C2S, s2c=S2C):
        self.w = wire
        self.isn = (isn_c, isn_s)
        self.fl = (c2s, s2c)

    def seq(self, d, off):
        return (self.isn[d] + 1 + off) & MASK

    def handshake(self):
        self.w.send(self.fl[0], self.isn[0], SYN)
        self.w.send(self.fl[1], self.isn[1], SYN | ACK, ack=self.isn[0] + 1)
        self.w.send(self.fl[0], self.isn[0] + 1, ACK, ack=self.isn[1] + 1)

    def send(self, d, off, payload=b"", flags=ACK | PSH, ack=None, missing=0):
        if ack is None:
            ack = self.isn[1 - d] + 1
        return self.w.send(self.fl[d], self.seq(d, off), flags, payload, ack, missing)

    def c(self, off, payload=b"", **kw):
        return self.send(0, off, payload, **kw)

    def s(self, off, payload=b"", **kw):
        return self.send(1, off, payload, **kw)

    def ack_of(self, d, off):
        """The ACK value acknowledging direction ``d`` up to ``off``."""
        return self.seq(d, off)


def blob(n, seed=0):
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------------------
# Handshake, data, closing
# --------------------------------------------------------------------------

def test_handshake_data_both_ways_and_fin_close():
    w = Wire()
    c = Conn(w)
    c.handshake()
    assert len(w.streams) == 1
    st_ = w.streams[0]
    assert st_.client == (CLIENT, CPORT) and st_.server == (SERVER, SPORT)
    assert st_.client_known and st_.syn and st_.synack
    assert not st_.closed
    f1 = c.c(0, b"hello ")
    f2 = c.c(6, b"world")
    f3 = c.s(0, b"ok", ack=c.ack_of(0, 11))
    c.c(11, b"", flags=FIN | ACK, ack=c.ack_of(1, 2))
    assert not st_.closed
    f_fin = c.s(2, b"", flags=FIN | ACK, ack=c.ack_of(0, 12))
    # Both FINs and every byte seen: closed at once, not only at finish().
    assert st_.closed and st_.close_reason == "fin"
    assert w.sink.closed == {0: "fin"}
    c.c(12, b"", flags=ACK, ack=c.ack_of(1, 3))      # last ACK: ignored
    assert w.sink.bytes(0, 0) == b"hello world"
    assert w.sink.bytes(0, 1) == b"ok"
    assert [e for e in w.sink.events if e[0] == "data"] == [
        ("data", 0, 0, 0, 6, f1), ("data", 0, 0, 6, 5, f2), ("data", 0, 1, 0, 2, f3)]
    assert w.sink.events[-1] == ("close", 0, None, None, None, f_fin)
    a, b = st_.dirs
    assert (a.bytes, a.frames) == (11, 6)              # frames after close count too
    assert (b.bytes, b.frames) == (2, 3)
    assert a.gaps == b.gaps == a.conflicts == b.conflicts == a.retrans == 0
    assert st_.fin == [True, True] and not st_.rst
    assert st_.first_frame == 1 and st_.last_frame == w.frame
    w.r.finish()
    assert w.sink.closed == {0: "fin"}           # finish() does not close twice
    assert w.sink.conflicts == []


def test_rst_close():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"A-ASSOCIATE")
    c.s(0, b"", flags=RST | ACK, ack=c.ack_of(0, 11))
    st_ = w.streams[0]
    assert st_.closed and st_.rst and st_.close_reason == "rst"
    c.c(11, b"late")                             # after the RST: ignored
    w.r.finish()
    assert w.sink.closed == {0: "rst"}
    assert w.sink.bytes(0, 0) == b"A-ASSOCIATE"
    assert w.sink.gaps == {}


def test_syn_answered_by_rst_is_refused():
    w = Wire()
    w.send(C2S, 777, SYN)
    w.send(S2C, 0, RST | ACK, ack=778)
    assert len(w.streams) == 1
    st_ = w.streams[0]
    assert st_.closed and st_.close_reason == "refused"
    assert st_.client == (CLIENT, CPORT) and st_.client_known
    w.r.finish()
    assert w.sink.closed == {0: "refused"}
    assert w.sink.events == [("close", 0, None, None, None, 2)]


def test_capture_starting_mid_stream():
    w = Wire()
    # The server speaks first in the capture; no SYN anywhere.
    w.send(S2C, 5_000_000, ACK | PSH, b"from server", ack=123_456)
    w.send(C2S, 123_456, ACK | PSH, b"from client", ack=5_000_011)
    w.send(S2C, 5_000_011, ACK | PSH, b"!", ack=123_467)
    assert len(w.streams) == 1
    st_ = w.streams[0]
    assert not st_.client_known and not st_.syn
    assert st_.client == (CLIENT, CPORT) and st_.server == (SERVER, SPORT)  # higher port
    assert w.sink.bytes(0, 1) == b"from server!"
    assert w.sink.bytes(0, 0) == b"from client"
    assert [e[3] for e in w.sink.events if e[0] == "data"] == [0, 0, 11]
    w.r.finish()
    assert w.sink.closed == {0: "open"}
    assert w.sink.gaps == {} and w.sink.conflicts == []


def test_mid_stream_client_guess_other_way_round():
    # The client has the higher port even when it sends the first segment seen.
    fl = flow(CLIENT, SERVER, 11112, 50000)
    w = Wire()
    w.send(fl, 1, ACK, b"x")
    st_ = w.streams[0]
    assert st_.client == (SERVER, 50000) and st_.server == (CLIENT, 11112)
    assert w.sink.bytes(0, 1) == b"x"


# --------------------------------------------------------------------------
# Out of order, retransmissions, conflicts
# --------------------------------------------------------------------------

def test_out_of_order_segments():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(30)
    fa = c.c(0, data[:10])
    fc = c.c(20, data[20:])
    assert w.sink.bytes() == data[:10]            # held until the hole fills
    fb = c.c(10, data[10:20])
    assert w.sink.bytes() == data
    assert [e for e in w.sink.events if e[0] == "data"] == [
        ("data", 0, 0, 0, 10, fa), ("data", 0, 0, 10, 10, fb), ("data", 0, 0, 20, 10, fc)]
    d0 = w.streams[0].dirs[0]
    assert d0.ooo_segments == 1 and d0.ooo == {} and d0.ooo_bytes == 0
    assert d0.gaps == d0.conflicts == d0.retrans == 0
    # Back on the fast path.
    c.c(30, b"more")
    assert w.sink.bytes() == data + b"more"
    assert w.streams[0].dirs[0].expect == c.seq(0, 34)


def test_exact_retransmission():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"0123456789")
    c.c(0, b"0123456789")
    c.c(10, b"abc")
    c.c(10, b"abc")
    assert w.sink.bytes() == b"0123456789abc"
    d0 = w.streams[0].dirs[0]
    assert d0.retrans == 2 and d0.conflicts == 0
    assert w.sink.conflicts == [] and w.sink.gaps == {}


def test_partial_overlap_retransmission():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(40, 1)
    c.c(0, data[:10])
    c.c(5, data[5:25])            # 5 old bytes, 15 new
    c.c(20, data[20:40])          # 5 old, 15 new
    assert w.sink.bytes() == data
    assert [e[3:5] for e in w.sink.events if e[0] == "data"] == [(0, 10), (10, 15), (25, 15)]
    d0 = w.streams[0].dirs[0]
    assert d0.retrans == 2 and d0.conflicts == 0


def test_conflict_with_delivered_data():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"AAAAAAAAAA")
    c.c(10, b"BBBBBBBBBB")
    f = c.c(5, b"AAAAAXXXXXCCCCC")   # all old: 5..10 same, 10..20 differ from the B's
    assert w.sink.conflicts == [(0, 0, 10, 10, f)]
    assert w.sink.bytes() == b"A" * 10 + b"B" * 10      # first seen bytes kept
    c.c(15, b"BBBBBnew")                                 # same old bytes, 3 new
    assert w.sink.conflicts == [(0, 0, 10, 10, f)]
    assert w.sink.bytes().endswith(b"BBBBBnew")
    f3 = c.c(0, b"AAZAA")                                # fully old, differs at 2
    assert w.sink.conflicts[-1] == (0, 0, 2, 1, f3)      # the bytes that differ only
    d0 = w.streams[0].dirs[0]
    assert d0.conflicts == 2 and d0.retrans == 3


def test_conflict_with_data_held_out_of_order():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"a" * 10)
    c.c(20, b"c" * 10)                    # held
    f = c.c(20, b"c" * 5 + b"X" * 5)      # same offset, different bytes, still held
    assert w.sink.conflicts == [(0, 0, 25, 5, f)]        # from the first byte that differs
    fd = c.c(25, b"Y" * 10)               # held at another offset: 25..30 differs from c's
    c.c(10, b"b" * 10)                    # fills the hole: everything drains
    assert w.sink.bytes() == b"a" * 10 + b"b" * 10 + b"c" * 10 + b"Y" * 5
    # The overlap 25..30 is compared when the held segment is drained; the
    # conflict names the frame that carried the differing bytes.
    assert w.sink.conflicts[1] == (0, 0, 25, 5, fd)
    d0 = w.streams[0].dirs[0]
    assert d0.conflicts == 2 and d0.gaps == 0 and d0.ooo == {} and d0.ooo_heap == []


def test_identical_held_duplicate_is_no_conflict():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"a" * 10)
    c.c(20, b"c" * 10)
    c.c(20, b"c" * 10)
    c.c(20, b"c" * 15)          # longer at the same offset: replaces the held one
    c.c(10, b"b" * 10)
    assert w.sink.bytes() == b"a" * 10 + b"b" * 10 + b"c" * 15
    assert w.sink.conflicts == []


# --------------------------------------------------------------------------
# Gaps
# --------------------------------------------------------------------------

def test_missing_segment_becomes_gap_at_finish():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(100, 2)
    c.c(0, data[:30])
    c.c(55, data[55:])                    # 30..55 never captured
    assert w.sink.gaps == {}
    w.r.finish()
    assert w.sink.gaps_of() == [(30, 25)]
    assert w.sink.pieces[(0, 0)] == [("d", 0, data[:30]), ("g", 30, 25), ("d", 55, data[55:])]
    assert w.sink.closed == {0: "open"}
    d0 = w.streams[0].dirs[0]
    assert (d0.gaps, d0.gap_bytes, d0.bytes) == (1, 25, 75)


def test_gap_proven_by_peer_ack():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(300, 3)
    c.c(0, data[:100])
    fc = c.c(200, data[200:])             # 100..200 lost by the capture
    assert w.sink.gaps == {}
    # The server acknowledges everything: the hole is a gap now, before the end.
    fa = c.s(0, b"", flags=ACK, ack=c.ack_of(0, 300))
    assert w.sink.gaps_of() == [(100, 100)]
    ev = [e for e in w.sink.events if e[0] in ("data", "gap")]
    assert ev == [("data", 0, 0, 0, 100, 3 + 1), ("gap", 0, 0, 100, 100, fa),
                  ("data", 0, 0, 200, 100, fc)]
    assert not w.streams[0].closed
    # And the stream goes on on the fast path.
    c.c(300, b"next")
    assert w.sink.bytes() == data[:100] + data[200:] + b"next"
    assert w.streams[0].dirs[0].expect == c.seq(0, 304)
    w.r.finish()
    assert w.sink.gaps_of() == [(100, 100)]


def test_ack_covering_part_of_hole():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(300, 4)
    c.c(0, data[:100])
    c.c(200, data[200:])
    c.s(0, b"", flags=ACK, ack=c.ack_of(0, 150))   # proves 100..150 only
    assert w.sink.gaps_of() == [(100, 50)]
    c.c(150, data[150:200])                        # the rest arrives after all
    assert w.sink.bytes() == data[:100] + data[150:]
    assert w.sink.gaps_of() == [(100, 50)]


def test_ack_of_data_not_yet_seen_without_holes_is_no_gap():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"x" * 10)
    c.s(0, b"", flags=ACK, ack=c.ack_of(0, 20))   # ahead of the capture, no hole held
    assert w.sink.gaps == {}
    c.c(10, b"y" * 10)
    assert w.sink.bytes() == b"x" * 10 + b"y" * 10 and w.sink.gaps == {}


def test_snaplen_truncated_segment():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(250, 5)
    c.c(0, data[:50])
    f = c.c(50, data[50:110], missing=40)     # 100 bytes on the wire, 60 captured
    c.c(150, data[150:])
    assert w.sink.pieces[(0, 0)] == [("d", 0, data[:50]), ("d", 50, data[50:110]),
                                     ("g", 110, 40), ("d", 150, data[150:])]
    assert ("gap", 0, 0, 110, 40, f) in w.sink.events
    d0 = w.streams[0].dirs[0]
    assert d0.expect == c.seq(0, 250)         # fast path again after the cut
    assert (d0.gaps, d0.gap_bytes, d0.bytes) == (1, 40, 210)


def test_snaplen_truncated_segment_out_of_order():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(300, 6)
    c.c(0, data[:100])
    c.c(200, data[200:230], missing=70)
    c.c(100, data[100:200])
    assert w.sink.pieces[(0, 0)] == [("d", 0, data[:100]), ("d", 100, data[100:200]),
                                     ("d", 200, data[200:230]), ("g", 230, 70)]


def test_retransmission_into_truncated_tail():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(200, 7)
    c.c(0, data[:20], missing=80)          # 0..20 captured, 20..100 a gap
    c.c(50, data[50:150])                  # overlaps the gap: only 100..150 is new
    assert w.sink.pieces[(0, 0)] == [("d", 0, data[:20]), ("g", 20, 80),
                                     ("d", 100, data[100:150])]
    assert w.sink.conflicts == []


@pytest.mark.parametrize("full_first", [False, True])
def test_held_truncated_segment_and_its_full_resend(full_first):
    """A held snaplen-cut segment and a full copy at the same offset, in
    either order: the captured bytes win, no gap."""
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(300, 12)
    c.c(0, data[:100])
    cut, full = (data[200:210], 90), (data[200:300], 0)
    for p, m in ((full, cut) if full_first else (cut, full)):
        c.c(200, p, missing=m)
    c.c(100, data[100:200])
    assert w.sink.bytes() == data and w.sink.gaps == {} and w.sink.conflicts == []


def test_held_segment_extended_by_a_longer_cut_copy():
    # Held: 10 real bytes. Then a copy cut after 5 bytes of a 30-byte resend:
    # the 10 captured bytes stay, 20 more are known to be missing.
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(100, 13)
    c.c(0, data[:10])
    c.c(20, data[20:30])
    c.c(20, data[20:25], missing=25)
    c.c(10, data[10:20])
    assert w.sink.pieces[(0, 0)] == [("d", 0, data[:10]), ("d", 10, data[10:20]),
                                     ("d", 20, data[20:30]), ("g", 30, 20)]


# --------------------------------------------------------------------------
# Sequence numbers, port reuse, keep-alive, zero window
# --------------------------------------------------------------------------

@pytest.mark.parametrize("isn_c", [MASK - 4, MASK, 0xFFFFFFF0])
def test_sequence_wrap_around(isn_c):
    w = Wire()
    c = Conn(w, isn_c=isn_c, isn_s=MASK - 1)
    c.handshake()
    data = blob(64, 8)
    c.c(0, data[:3])
    c.c(16, data[16:40])                 # out of order, across the wrap
    c.c(3, data[3:16])
    c.c(40, data[40:])
    c.s(0, data[:7], ack=c.ack_of(0, 64))
    c.s(7, data[7:9])
    c.c(64, b"", flags=FIN | ACK)
    c.s(9, b"", flags=FIN | ACK)
    assert w.sink.bytes(0, 0) == data
    assert w.sink.bytes(0, 1) == data[:9]
    assert w.sink.closed == {0: "fin"}
    assert w.sink.gaps == {} and w.sink.conflicts == []
    offs = [e[3] for e in w.sink.events if e[0] == "data" and e[2] == 0]
    assert offs == [0, 3, 16, 40]


def test_port_reuse_new_isn_is_new_stream():
    w = Wire()
    c = Conn(w, isn_c=1000)
    c.handshake()
    c.c(0, b"first")
    c.c(5, flags=FIN | ACK)
    c.s(0, flags=FIN | ACK, ack=c.ack_of(0, 6))
    assert w.sink.closed == {0: "fin"}
    w.send(C2S, 1000, SYN)                   # the old SYN again (late duplicate)
    assert len(w.streams) == 1
    c2 = Conn(w, isn_c=77_000_000, isn_s=5)
    c2.handshake()
    c2.c(0, b"second")
    assert len(w.streams) == 2
    new = w.streams[1]
    assert new.id == 1 and new.client_known and new.client == (CLIENT, CPORT)
    assert w.sink.bytes(1, 0) == b"second"
    assert w.sink.bytes(0, 0) == b"first"
    assert w.sink.closed == {0: "fin"}        # the old one keeps its reason
    w.r.finish()
    assert w.sink.closed == {0: "fin", 1: "open"}


def test_port_reuse_while_open_closes_old_as_reused():
    w = Wire()
    c = Conn(w, isn_c=1000)
    c.handshake()
    c.c(0, b"abc")
    w.send(C2S, 50_000, SYN)
    assert len(w.streams) == 2
    assert w.sink.closed == {0: "reused"}


def test_retransmitted_syn_is_not_a_new_stream():
    w = Wire()
    w.send(C2S, 1000, SYN)
    w.send(C2S, 1000, SYN)
    w.send(S2C, 9000, SYN | ACK, ack=1001)
    w.send(S2C, 9000, SYN | ACK, ack=1001)
    w.send(C2S, 1001, ACK | PSH, b"hi", ack=9001)
    assert len(w.streams) == 1
    assert w.sink.bytes() == b"hi"


def test_syn_with_data():
    # TCP Fast Open: data on the SYN is stream offset 0.
    w = Wire()
    w.send(C2S, 500, SYN, b"early")
    w.send(S2C, 7000, SYN | ACK, ack=506)
    w.send(C2S, 506, ACK | PSH, b" data", ack=7001)
    assert w.sink.bytes() == b"early data"
    assert [e[3] for e in w.sink.events if e[0] == "data"] == [0, 5]


def test_keep_alive():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"0123456789")
    n_events = len(w.sink.events)
    c.c(9, b"\x00", flags=ACK)       # keep-alive: one old byte (garbage), seq = next - 1
    c.c(9, b"\x00", flags=ACK)
    d0 = w.streams[0].dirs[0]
    assert d0.keepalives == 2
    assert d0.conflicts == 0 and w.sink.conflicts == []
    assert len(w.sink.events) == n_events       # no data, no gap, no conflict
    c.c(10, b"more")
    assert w.sink.bytes() == b"0123456789more"


def test_zero_window_probe():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(40, 9)
    c.c(0, data[:10])
    c.c(10, data[10:11])             # window probe: one new byte
    c.c(10, data[10:40])             # window open: the byte again, with more
    assert w.sink.bytes() == data
    assert [e[3:5] for e in w.sink.events if e[0] == "data"] == [(0, 10), (10, 1), (11, 29)]
    d0 = w.streams[0].dirs[0]
    assert d0.conflicts == 0 and d0.keepalives == 0 and d0.retrans == 1


# --------------------------------------------------------------------------
# Bounds and the end of the capture
# --------------------------------------------------------------------------

def test_ooo_bound_turns_hole_into_gap():
    w = Wire(max_ooo=100)
    c = Conn(w)
    c.handshake()
    data = blob(250, 10)
    c.c(0, data[:50])
    c.c(100, data[100:150])
    c.c(150, data[150:200])               # 100 bytes held: at the bound, not past it
    assert w.sink.gaps == {}
    f = c.c(200, data[200:250])           # 150 > 100: give up on 50..100
    assert w.sink.gaps_of() == [(50, 50)]
    assert ("gap", 0, 0, 50, 50, f) in w.sink.events
    assert w.sink.bytes() == data[:50] + data[100:]
    d0 = w.streams[0].dirs[0]
    assert d0.ooo == {} and d0.ooo_heap == [] and d0.ooo_bytes == 0
    assert d0.expect == c.seq(0, 250)
    c.c(50, data[50:100])                 # the lost bytes come too late: old news
    assert w.sink.bytes() == data[:50] + data[100:]
    assert w.sink.conflicts == []


def test_state_released_on_close():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"x" * 100)
    c.c(200, b"z" * 100)
    c.s(0, b"y" * 50)
    st_ = w.streams[0]
    assert st_.dirs[0].ooo and st_.dirs[0].history and st_.dirs[1].history and st_.holes
    c.s(50, flags=RST | ACK)
    assert st_.closed and st_.close_reason == "rst"
    for dr in st_.dirs:
        assert dr.ooo == {} and dr.ooo_heap == [] and dr.ooo_bytes == 0
        assert dr.history == [] and dr.hist_bytes == 0
        assert dr.expect is None
    assert not st_.holes
    # The held bytes were not lost: the hole became a gap first.
    assert w.sink.pieces[(0, 0)] == [("d", 0, b"x" * 100), ("g", 100, 100),
                                     ("d", 200, b"z" * 100)]


def test_history_is_bounded():
    w = Wire(history=1000)
    c = Conn(w)
    c.handshake()
    for i in range(50):
        c.c(100 * i, bytes([i]) * 100)
    d0 = w.streams[0].dirs[0]
    assert d0.hist_bytes <= 1000 and sum(map(len, d0.history)) == d0.hist_bytes
    # Recent bytes are still compared.
    f = c.c(4900, b"Q" * 100)
    assert w.sink.conflicts == [(0, 0, 4900, 100, f)]


@pytest.mark.parametrize("fins,reason", [((), "open"), ((0,), "half-closed"),
                                         ((1,), "half-closed"), ((0, 1), "fin")])
def test_finish_close_reasons(fins, reason):
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"abc")
    c.c(10, b"later")          # 3..10 missing: a trailing hole until finish()
    if 0 in fins:
        c.c(15, flags=FIN | ACK)
    if 1 in fins:
        c.s(0, flags=FIN | ACK)
    assert not w.streams[0].closed
    w.r.finish()
    assert w.sink.closed == {0: reason}
    assert w.sink.pieces[(0, 0)] == [("d", 0, b"abc"), ("g", 3, 7), ("d", 10, b"later")]


def test_finish_trailing_hole_up_to_fin():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"abc")
    c.c(20, flags=FIN | ACK)          # 3..20 were sent but not captured
    w.r.finish()
    assert w.sink.gaps_of() == [(3, 17)]
    assert w.sink.closed == {0: "half-closed"}


def test_finish_trailing_hole_up_to_peer_ack():
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"abc")
    c.s(0, b"", flags=ACK, ack=c.ack_of(0, 30))   # the server got 30 bytes
    w.r.finish()
    assert w.sink.gaps_of() == [(3, 27)]
    assert w.sink.closed == {0: "open"}


def test_fin_seen_before_last_data_closes_as_fin():
    """Reordering puts both FINs before the client's last data segment; the
    stream must close ("fin") as soon as that segment arrives, not stay open
    until finish() -- else a reused 4-tuple would close it as "reused"."""
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"a" * 10)
    c.c(20, flags=FIN | ACK)            # FIN before data 10..20 (reordered)
    c.s(0, flags=FIN | ACK)
    assert not w.streams[0].closed
    c.c(10, b"b" * 10)                  # in order: would take the fast path
    assert w.sink.closed == {0: "fin"}
    assert w.sink.bytes() == b"a" * 10 + b"b" * 10
    c2 = Conn(w, isn_c=5_000_000, isn_s=6_000_000)
    c2.handshake()
    assert len(w.streams) == 2 and w.sink.closed == {0: "fin"}


def test_ack_proving_hole_after_both_fins_closes_as_fin():
    w = Wire()
    c = Conn(w)
    c.handshake()
    data = blob(30, 11)
    c.c(0, data[:10])
    c.c(20, data[20:], flags=FIN | ACK | PSH)    # 10..20 lost by the capture
    c.s(0, flags=FIN | ACK)                      # acks nothing yet
    assert not w.streams[0].closed
    c.s(1, flags=ACK, ack=c.ack_of(0, 31))       # acks all data and the FIN
    assert w.sink.gaps_of() == [(10, 10)]
    assert w.sink.closed == {0: "fin"}


def test_ipv6_flow():
    a, b = bytes(15) + b"\x01", bytes(15) + b"\x02"
    fwd, rev = flow(a, b, 50000, 11112), flow(b, a, 11112, 50000)
    w = Wire()
    c = Conn(w, c2s=fwd, s2c=rev)
    c.handshake()
    c.c(0, b"v6")
    c.s(0, b"ok")
    assert w.streams[0].client == (a, 50000)
    assert w.sink.bytes(0, 0) == b"v6" and w.sink.bytes(0, 1) == b"ok"
    assert repr(w.streams[0]) == "<Stream 0 [::1]:50000 -> [::2]:11112>"


def test_several_streams_interleaved():
    w = Wire()
    conns = []
    for i in range(5):
        fl = flow(CLIENT, SERVER, 50000 + i, SPORT)
        rv = flow(SERVER, CLIENT, SPORT, 50000 + i)
        cn = Conn(w, isn_c=1000 * i, isn_s=MASK - i, c2s=fl, s2c=rv)
        cn.handshake()
        conns.append(cn)
    for k in range(3):
        for i, cn in enumerate(conns):
            cn.c(4 * k, f"{i}:{k};".encode())
    assert len(w.streams) == 5
    for i in range(5):
        assert w.sink.bytes(i, 0) == f"{i}:0;{i}:1;{i}:2;".encode()


# --------------------------------------------------------------------------
# Flag-gated fields: the ack field means something only with ACK (issue 13)
# --------------------------------------------------------------------------

# ISNs above 2**31 both ways: an ack field of 0 taken for an acknowledgement
# would lie "ahead" of either direction by more than a gigabyte.
HIGH_ISNS = dict(isn_c=0x9000_0000, isn_s=0xA000_0000)


@pytest.mark.parametrize("side", [0, 1])
def test_bare_rst_acknowledges_nothing(side):
    """A RST without ACK (RFC 9293 3.10.7.1: the answer to a segment that had
    one is <SEQ=SEG.ACK><CTL=RST>, ack field 0, as Linux sends to data
    reaching a closed socket) closes the stream as "rst"; its ack field
    proves no missing bytes."""
    w = Wire()
    c = Conn(w, **HIGH_ISNS)
    c.handshake()
    c.c(0, b"A" * 100)
    c.s(0, b"B" * 50, ack=c.ack_of(0, 100))
    c.c(100, b"", flags=ACK, ack=c.ack_of(1, 50))
    c.send(side, (100, 50)[side], b"", flags=RST, ack=0)
    st_ = w.streams[0]
    assert st_.closed and st_.rst and st_.close_reason == "rst"
    w.r.finish()
    assert w.sink.closed == {0: "rst"}
    assert w.sink.gaps == {}
    assert w.sink.bytes(0, 0) == b"A" * 100 and w.sink.bytes(0, 1) == b"B" * 50


@pytest.mark.parametrize("side", [0, 1])
def test_bare_rst_after_fin_acknowledges_nothing(side):
    """The real case: one side closed (FIN), the other sent more, and the
    closed side's kernel answered with a bare RST (ack field 0)."""
    w = Wire()
    c = Conn(w, **HIGH_ISNS)
    c.handshake()
    c.c(0, b"A" * 100)
    c.s(0, b"B" * 50, ack=c.ack_of(0, 100))
    other = 1 - side
    sent = (100, 50)
    c.send(side, sent[side], b"", flags=FIN | ACK, ack=c.ack_of(other, sent[other]))
    c.send(other, sent[other], b"late", flags=ACK | PSH, ack=c.ack_of(side, sent[side] + 1))
    c.send(side, sent[side] + 1, b"", flags=RST, ack=0)
    w.r.finish()
    assert w.sink.closed == {0: "rst"}
    assert w.sink.gaps == {}
    assert w.sink.bytes(0, other) == (b"A" * 100, b"B" * 50)[other] + b"late"


def test_bare_rst_with_a_stray_ack_field_proves_no_hole():
    """Held data behind a hole, then a RST without ACK whose ack field (not
    zero here) lies beyond everything: only the hole itself is missing."""
    w = Wire()
    c = Conn(w, **HIGH_ISNS)
    c.handshake()
    data = blob(300, 13)
    c.c(0, data[:100])
    c.c(200, data[200:])                           # 100..200 never captured
    c.s(0, b"", flags=RST, ack=c.ack_of(0, 5000))
    assert w.streams[0].close_reason == "rst"
    w.r.finish()
    assert w.sink.gaps_of() == [(100, 100)]         # at the close: the hole, nothing more
    assert w.sink.bytes() == data[:100] + data[200:]


def test_segment_without_ack_flag_proves_no_hole():
    """Neither a hole filled by "acknowledgement" nor a trailing gap at the
    end comes from a segment whose ACK flag is clear, whatever its ack field."""
    w = Wire()
    c = Conn(w, **HIGH_ISNS)
    c.handshake()
    data = blob(300, 14)
    c.c(0, data[:100])
    c.c(200, data[200:])
    c.s(0, b"x", flags=PSH, ack=c.ack_of(0, 300))  # ACK clear: acknowledges nothing
    assert w.sink.gaps == {}
    c.c(100, data[100:200])                        # the hole fills after all
    c.s(1, b"y", flags=PSH, ack=c.ack_of(0, 900))
    w.r.finish()
    assert w.sink.gaps == {} and w.sink.bytes() == data
    assert w.sink.closed == {0: "open"}


def test_rst_ack_still_proves_missing_bytes():
    """RST|ACK: its ack field is an acknowledgement, as before."""
    w = Wire()
    c = Conn(w, **HIGH_ISNS)
    c.handshake()
    c.c(0, b"A-ASSOCIATE")
    c.s(0, b"", flags=RST | ACK, ack=c.ack_of(0, 30))   # the server got 30 bytes
    w.r.finish()
    assert w.sink.closed == {0: "rst"}
    assert w.sink.gaps_of() == [(11, 19)]


def test_zero_window_only_on_a_plain_ack():
    """A window of 0 advertises a full receiver only on an ACK that is not a
    SYN, FIN or RST (Wireshark's tcp.analysis.zero_window has the same
    exclusions): Linux sends its bare RSTs with window 0, and a segment
    without ACK is dropped before its window is read (RFC 9293 3.10.7.4)."""
    w = Wire()
    c = Conn(w)
    z = ZERO_WINDOW
    w.send(C2S, 1000, SYN | z)
    w.send(S2C, 900_000, SYN | ACK | z, ack=1001)
    c.c(0, b"data", flags=ACK | PSH | z)                       # counted
    c.s(0, b"", flags=ACK | z, ack=c.ack_of(0, 4))             # counted
    c.s(0, b"", flags=PSH | z)                                 # no ACK: not counted
    c.c(4, b"", flags=FIN | ACK | z, ack=c.ack_of(1, 0))       # FIN: not counted
    c.s(0, b"", flags=RST | z)                                 # RST: not counted
    a, b = w.streams[0].dirs
    assert (a.zero_windows, b.zero_windows) == (1, 1)


def test_rst_payload_is_not_stream_data():
    """Data in a RST (RFC 9293 3.5.3, RFC 1122 4.2.2.12: a diagnostic, the
    "reset cause" of Wireshark) is not part of the stream."""
    w = Wire()
    c = Conn(w)
    c.handshake()
    c.c(0, b"hello")
    c.s(0, b"connection reset: bad request", flags=RST | ACK, ack=c.ack_of(0, 5))
    w.r.finish()
    assert w.sink.closed == {0: "rst"}
    assert w.sink.bytes(0, 1) == b"" and w.sink.gaps == {}
    assert w.streams[0].dirs[1].bytes == 0


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

# Half of the ISNs lie just below 2**32, so the streams cross the wrap.
ISNS = st.one_of(st.integers(0, MASK), st.integers(MASK - 400, MASK),
                 st.sampled_from([0, 1, MASK]))
# Small arbitrary byte strings (shrink well) or larger random ones.
DATA = st.one_of(st.binary(max_size=300),
                 st.builds(lambda n, seed: random.Random(seed).randbytes(n),
                           st.integers(0, 3000), st.integers(0, 2**32)))


@st.composite
def direction_plan(draw, drop):
    """One direction: its bytes, its segments and when each is captured.

    Segments are a partition of the bytes (sent in order, one per time
    unit) plus retransmissions; each is captured after a random delay of at
    most a few time units (what the sender may have in flight). With
    ``drop``, some partition segments are lost by the capture (the receiver
    still gets them) and retransmissions only repeat captured bytes."""
    data = draw(DATA)
    n = len(data)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=25)))) if n > 1 else []
    bounds = [0, *[x for x in cuts if 0 < x < n], n] if n else [0]
    parts = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    window = draw(st.integers(0, 5))
    delays = st.floats(0, window, allow_nan=False) if window else st.just(0.0)
    dropped = set()
    if drop and parts:
        dropped = set(draw(st.lists(st.integers(0, len(parts) - 1), max_size=len(parts))))
    events = []        # (time, start, end, captured)
    for i, (a, b) in enumerate(parts):
        events.append((i + draw(delays), a, b, i not in dropped))
    kept = [i for i in range(len(parts)) if i not in dropped]
    for _ in range(draw(st.integers(0, 8))):
        if not kept:
            break
        if drop:
            i = draw(st.sampled_from(kept))
            a, b = parts[i]
            a2 = draw(st.integers(a, b - 1))
            b2 = draw(st.integers(a2 + 1, b))
        else:
            a2 = draw(st.integers(0, n - 1))
            b2 = draw(st.integers(a2 + 1, min(n, a2 + 1500)))
            i = next(k for k, (a, b) in enumerate(parts) if a <= b2 - 1 < b)
        events.append((i + draw(st.floats(0, 10, allow_nan=False)), a2, b2, True))
    fin_time = len(parts) + draw(delays)
    return data, events, fin_time, dropped, parts


@st.composite
def plans(draw, drop=False):
    isns = (draw(ISNS), draw(ISNS))
    dirs = (draw(direction_plan(drop)), draw(direction_plan(drop)))
    acks = draw(st.integers(0, 2**64 - 1))    # bit i: a pure ACK after event i
    return isns, dirs, acks


def play(isns, dirs, acks, mutate=None, **kw):
    """Feed one connection built from a plan; return the wire.

    Every segment carries the ACK the receiver would send at that moment:
    the contiguous prefix of what it received (including segments the
    capture lost, which it did receive), plus one for a received FIN.
    ``mutate`` = (direction, event index, stream offset): that segment
    carries a different byte at that offset."""
    w = Wire(**kw)
    c = Conn(w, isn_c=isns[0], isn_s=isns[1])
    c.handshake()
    timeline = []
    for d, (data, events, fin_time, _dropped, _parts) in enumerate(dirs):
        for k, (t, a, b, captured) in enumerate(events):
            timeline.append((t, d, k, "data", a, b, captured))
        timeline.append((fin_time, d, 10**6, "fin", len(data), len(data), True))
    timeline.sort(key=lambda e: e[:3])
    got = [bytearray(len(dirs[0][0])), bytearray(len(dirs[1][0]))]
    prefix = [0, 0]
    fin_rcvd = [False, False]
    sent_end = [0, 0]

    def ack_for(d):
        o = 1 - d
        return c.ack_of(o, prefix[o] + (1 if fin_rcvd[o] and prefix[o] == len(got[o]) else 0))

    for i, (_t, d, k, kind, a, b, captured) in enumerate(timeline):
        data = dirs[d][0]
        if captured:
            if kind == "fin":
                c.send(d, a, data[a:b], flags=FIN | ACK, ack=ack_for(d))
            else:
                payload = data[a:b]
                if mutate is not None and mutate[:2] == (d, k):
                    x = mutate[2] - a
                    payload = payload[:x] + bytes([payload[x] ^ 0xFF]) + payload[x + 1:]
                c.send(d, a, payload, flags=ACK | PSH, ack=ack_for(d))
        # The receiver got it (captured or not) and acknowledges.
        if kind == "fin":
            fin_rcvd[d] = True
        else:
            got[d][a:b] = b"\x01" * (b - a)
            while prefix[d] < len(got[d]) and got[d][prefix[d]]:
                prefix[d] += 1
        sent_end[d] = max(sent_end[d], b)
        if acks >> (i % 64) & 1:
            o = 1 - d
            fin_extra = 1 if any(e[1] == o and e[3] == "fin" for e in timeline[:i + 1]) else 0
            c.send(o, sent_end[o] + fin_extra, b"", flags=ACK, ack=ack_for(o))
    return w


PROP = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@PROP
@given(plans(drop=False))
def test_property_resegmented_reordered_duplicated(plan):
    isns, dirs, acks = plan
    w = play(isns, dirs, acks)
    s = w.sink
    assert len(w.streams) == 1
    # Every byte and both FINs fed: the stream closed by itself.
    assert s.closed == {0: "fin"}
    for d in (0, 1):
        assert s.bytes(0, d) == dirs[d][0]
        assert s.gaps_of(0, d) == []
    assert s.conflicts == []
    st_ = w.streams[0]
    assert sum(dr.gaps + dr.conflicts for dr in st_.dirs) == 0
    w.r.finish()
    assert s.closed == {0: "fin"}


@PROP
@given(plans(drop=False), st.integers(0, 2))
def test_property_small_history_still_no_conflict(plan, hist):
    isns, dirs, acks = plan
    w = play(isns, dirs, acks, history=[1, 64, 4096][hist])
    for d in (0, 1):
        assert w.sink.bytes(0, d) == dirs[d][0]
    assert w.sink.conflicts == [] and w.sink.gaps == {}


@PROP
@given(plans(drop=False), st.data())
def test_property_one_changed_byte_is_a_conflict(plan, draw):
    """One segment carries one different byte: a conflict is reported, and
    the delivered bytes differ from the original at that offset at most.
    (A one-byte segment one below the next expected byte is taken for a
    keep-alive and never compared, so such cases are left out.)"""
    isns, dirs, acks = plan
    # FINs last: a segment after the close is never looked at.
    dirs = tuple((data, list(ev), 1e9, dr, parts) for data, ev, _f, dr, parts in dirs)
    d = draw.draw(st.integers(0, 1))
    events = dirs[d][1]
    # Bytes that two segments carry (so there is something to compare),
    # none of them a one-byte segment.
    cover = [0] * len(dirs[d][0])
    for _t, a, b, _c in events:
        for i in range(a, b):
            cover[i] += 1 if b - a > 1 else 100
    candidates = [i for i, n in enumerate(cover) if 2 <= n < 100]
    if not candidates:
        # Make one: resend the middle of the first segment of two bytes or more.
        long_ = [(a, b) for _t, a, b, _c in events if b - a > 1]
        assume(long_ and not any(n >= 100 for n in cover[long_[0][0]:long_[0][1]]))
        a, b = long_[0]
        events.append((b - 1 + 3.0, a, b, True))
        candidates = list(range(a, b))
    pos = draw.draw(st.sampled_from(candidates))
    k = draw.draw(st.sampled_from([k for k, (_t, a, b, _c) in enumerate(events) if a <= pos < b]))
    w = play(isns, dirs, acks, mutate=(d, k, pos))
    s = w.sink
    assert len(s.conflicts) >= 1
    assert all(c[1] == d for c in s.conflicts)
    assert any(off <= pos < off + size for _sid, _d, off, size, _f in s.conflicts)
    got, want = s.bytes(0, d), dirs[d][0]
    assert len(got) == len(want)
    assert [i for i in range(len(want)) if got[i] != want[i]] in ([], [pos])
    assert s.bytes(0, 1 - d) == dirs[1 - d][0]
    assert s.gaps == {} and s.closed == {0: "fin"}


@PROP
@given(plans(drop=True))
def test_property_dropped_segments_become_exact_gaps(plan):
    isns, dirs, acks = plan
    w = play(isns, dirs, acks)
    w.r.finish()
    s = w.sink
    assert s.conflicts == []
    assert s.closed == {0: "fin"}
    for d in (0, 1):
        data, events, _fin, dropped, parts = dirs[d]
        covered = bytearray(len(data))          # bytes some captured segment carried
        for _t, a, b, captured in events:
            if captured:
                covered[a:b] = b"\x01" * (b - a)
        lost = sum(1 for x in covered if not x)
        assert lost == sum(b - a for i, (a, b) in enumerate(parts) if i in dropped)
        pieces = s.pieces.get((0, d), [])
        end = 0
        for kind, off, x in pieces:
            assert off == end
            if kind == "d":
                assert x == data[off:off + len(x)]
                assert all(covered[off:off + len(x)])
                end += len(x)
            else:
                assert not any(covered[off:off + x]), "gap over captured bytes"
                end += x
        assert end == len(data)
        assert sum(size for _o, size in s.gaps_of(0, d)) == lost
        dr = w.streams[0].dirs[d]
        assert dr.gap_bytes == lost and dr.bytes == len(data) - lost


@st.composite
def chaos_plans(draw):
    """Everything at once: drops, snaplen cuts, overlapping resends, reordering."""
    isns = (draw(ISNS), draw(ISNS))
    dirs = []
    for _ in range(2):
        data, events, fin_time, _dropped, parts = draw(direction_plan(False))
        n = len(data)
        chaos = []
        for t, a, b in ((t, a, b) for t, a, b, _c in events):
            fate = draw(st.sampled_from(["keep", "keep", "keep", "drop", "cut"]))
            if fate == "drop":
                chaos.append((t, a, b, False, 0))
            elif fate == "cut":
                chaos.append((t, a, b, True, draw(st.integers(1, b - a))))
            else:
                chaos.append((t, a, b, True, 0))
        dirs.append((data, chaos, fin_time, n))
    acks = draw(st.integers(0, 2**64 - 1))
    max_ooo = draw(st.sampled_from([64 << 20, 1000, 100]))
    return isns, dirs, acks, max_ooo


@PROP
@given(chaos_plans())
def test_property_chaos_invariants(plan):
    """Whatever the capture lost, cut or repeated: the events cover each
    direction exactly once, data is always the right bytes and only bytes
    some segment carried, and bytes no segment carried are always in gaps."""
    isns, dirs, acks, max_ooo = plan
    w = Wire(max_ooo=max_ooo)
    c = Conn(w, isn_c=isns[0], isn_s=isns[1])
    c.handshake()
    timeline = []
    for d, (data, events, fin_time, _n) in enumerate(dirs):
        for k, (t, a, b, captured, cut) in enumerate(events):
            timeline.append((t, d, k, "data", a, b, captured, cut))
        timeline.append((fin_time, d, 10**6, "fin", len(data), len(data), True, 0))
    timeline.sort(key=lambda e: e[:3])
    got = [bytearray(len(dirs[0][0])), bytearray(len(dirs[1][0]))]
    prefix, fin_rcvd = [0, 0], [False, False]
    carried = [bytearray(len(dirs[0][0])), bytearray(len(dirs[1][0]))]

    def ack_for(d):
        o = 1 - d
        return c.ack_of(o, prefix[o] + (1 if fin_rcvd[o] and prefix[o] == len(got[o]) else 0))

    for i, (_t, d, _k, kind, a, b, captured, cut) in enumerate(timeline):
        data = dirs[d][0]
        if kind == "fin":
            c.send(d, a, b"", flags=FIN | ACK, ack=ack_for(d))
            fin_rcvd[d] = True
            continue
        if captured:
            end = b - cut
            c.send(d, a, data[a:end], flags=ACK | PSH, ack=ack_for(d), missing=cut)
            carried[d][a:end] = b"\x01" * (end - a)
        got[d][a:b] = b"\x01" * (b - a)
        while prefix[d] < len(got[d]) and got[d][prefix[d]]:
            prefix[d] += 1
        if acks >> (i % 64) & 1:
            c.send(1 - d, 0, b"", flags=ACK, ack=ack_for(1 - d))
    w.r.finish()
    s = w.sink
    assert s.closed == {0: "fin"}
    assert s.conflicts == []
    for d in (0, 1):
        data = dirs[d][0]
        end = 0
        for kind, off, x in s.pieces.get((0, d), []):
            assert off == end
            if kind == "d":
                assert x == data[off:off + len(x)]
                assert all(carried[d][off:off + len(x)])
                end += len(x)
            else:
                end += x
        assert end == len(data)
        delivered = bytearray(len(data))
        for kind, off, x in s.pieces.get((0, d), []):
            if kind == "d":
                delivered[off:off + len(x)] = b"\x01" * len(x)
        assert not any(delivered[i] and not carried[d][i] for i in range(len(data)))
        dr = w.streams[0].dirs[d]
        assert dr.bytes + dr.gap_bytes == len(data)
        assert dr.ooo == {} and dr.history == []
