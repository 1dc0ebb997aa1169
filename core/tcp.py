"""TCP reassembly: segments -> in-order stream bytes and events, per direction.

A :class:`Reassembler` takes segments from :mod:`dicomwire.link` and tells a
sink (any object with the methods of :class:`StreamSink`) what each stream
carried, in order:

- ``data``: a contiguous piece of stream bytes, with its stream offset and the
  frame (number, timestamp) it came from, so every byte maps back to a frame;
- ``gap``: bytes that crossed the wire but are not in the capture (lost
  segment, snaplen cut, hole never filled), with offset and size, so a
  dissector can resynchronise instead of gluing unrelated bytes together;
- ``conflict``: a retransmission whose bytes differ from those already seen
  (offset and size: from the first byte that differs to the last);
- ``stream_open`` / ``stream_close`` with how it closed.

Offsets are absolute (0 = first byte after the SYN, or the first byte seen
when the capture started mid-stream), so sequence wrap-around never shows.
The next in-order bytes of a direction are delivered at once
(:meth:`dicomwire.fastpath.Direction.advance`); everything else goes to the
slow path (:class:`dicomwire.slowpath.SlowPath`), where out-of-order data
waits in a bounded buffer (``max_ooo`` bytes per direction) until the hole
fills, the peer's ACK proves the capture missed it, the stream closes, or
the bound is reached; then the hole becomes a gap.

The flow table is bounded too (``max_flows`` streams, preference
``tcp.max_flows``): a SYN flood or a scan cannot grow it without limit. When
a new flow would exceed it, a tenth of the table is forgotten at once (so the
cost is amortised over new flows, nothing is done per segment): the oldest
closed flows and open flows that carried no payload (half-open), else the
least recently active. An open flow is closed first through the normal path (close
reason ``evicted``: what it held is delivered or becomes a gap); one that
carried no payload is also left out of :attr:`Reassembler.streams`. The
count is reported once, at :meth:`Reassembler.finish`.

Over days of live capture the stream list would grow without end: with
``retire_after`` (capture time, ns; live runs) a closed stream leaves the
flow table and :attr:`Reassembler.streams` once that long has passed since
its last frame, its counters added to :attr:`Reassembler.retired`
(:class:`Retired`, what end-of-run totals need). Files keep every stream.
"""

from __future__ import annotations

import heapq
from collections import deque

# Direction (the per-direction state, with its in-order update and lane)
# belongs to the hot path; dicomwire.tcp.Direction names it too. The TCP
# flags and the bounds of the slow path are named here as well.
from dicomwire.fastpath import MASK, Direction  # noqa: F401
from dicomwire.link import reverse_flow, split_flow
from dicomwire.slowpath import ACK, FIN, HALF, MAX_OOO, PSH, RST, SYN, SlowPath  # noqa: F401

ZERO_WINDOW = 0x200         # set by dicomwire.link: window field 0 (counted on plain ACKs only)
MAX_FLOWS = 20_000          # streams in the flow table (open, or closed and remembered)
HISTORY = 256 << 10         # delivered bytes kept to compare retransmissions


class StreamSink:
    """What a reassembler calls; subclass and override what you need."""

    #: The expert log engine findings of the reassembler go to (the
    #: pipeline's sink sets the run's); None: not reported.
    expert = None

    def stream_open(self, stream):
        pass

    def data(self, stream, direction, offset, payload, frame, ts):
        pass

    def gap(self, stream, direction, offset, size, frame, ts):
        pass

    def conflict(self, stream, direction, offset, size, frame, ts):
        pass

    def stream_close(self, stream):
        pass

    def dissector_failed(self, stream, what, exc):
        """``stream.dissector`` raised ``exc`` in its ``what`` ("data", ...)
        when the fast path called it directly (dicomwire.fastpath). This
        default raises it."""
        raise exc

    def flows_evicted(self, reasm, count, dropped, frame):
        """Called once, at the end, if the flow table overflowed: ``count``
        open flows were closed early (reason ``evicted``), ``dropped`` of them
        carried no payload and are not in ``reasm.streams``; ``frame`` is the
        first eviction. This default reports it to :attr:`expert`."""
        expert = self.expert
        if expert is None:
            return
        kept = count - dropped
        expert.report(
            "tcp.flows.evicted",
            f"{count} TCP flow(s) evicted: more than {reasm.max_flows} were tracked at once "
            f"(tcp.max_flows); {dropped} never carried payload (half-open: SYN flood or scan) "
            f"and are left out of the stream list"
            + (f"; {kept} were closed early (close reason 'evicted')" if kept else ""),
            frames=[frame])


class Stream:
    """A TCP connection: ``dirs[0]`` is client -> server, ``dirs[1]`` back.

    The client is the side that sent the SYN. When the capture started
    mid-stream (``client_known`` false) the side with the higher port is
    taken as the client, which is right for ephemeral-port clients.
    ``dissector`` and ``data`` are free for the protocol layer.
    """

    __slots__ = ("id", "client", "server", "dirs", "first_frame", "last_frame",
                 "first_ts", "last_ts", "client_known", "syn", "synack", "holes",
                 "fin", "rst", "closed", "close_reason", "dissector", "data", "tls", "sniff")

    def __init__(self, sid, client, server, frame, ts, client_known):
        self.id = sid
        self.client, self.server = client, server       # (addr bytes, port)
        self.dirs = (Direction(), Direction())
        self.first_frame = self.last_frame = frame
        self.first_ts = self.last_ts = ts
        self.client_known = client_known
        self.syn = self.synack = False
        self.holes = False        # any direction holding out-of-order data
        self.fin = [False, False]
        self.rst = False
        self.closed = False
        self.close_reason = None
        self.dissector = None
        self.data = None
        self.tls = None           # dicomwire.tls.Session when the stream is TLS
        # Undecided: the bytes a client's first payload may start with for a
        # dissector to take the stream (dicomwire.hookspecs.StreamInterest);
        # None: ask the plugins.
        self.sniff = None

    @property
    def frames(self) -> int:
        return self.dirs[0].frames + self.dirs[1].frames

    def endpoint(self, direction):
        """(address, port) of the sender in ``direction``."""
        return self.client if direction == 0 else self.server

    def __repr__(self):
        from dicomwire.addr import format_endpoint
        return (f"<Stream {self.id} {format_endpoint(*self.client)} -> "
                f"{format_endpoint(*self.server)}>")


class Retired:
    """Totals of the streams retired from a reassembler's list (live runs)."""

    __slots__ = ("streams", "frames", "bytes", "gaps", "gap_bytes", "conflicts", "retrans",
                 "closes")

    def __init__(self):
        self.streams = self.frames = self.bytes = self.gaps = self.gap_bytes = 0
        self.conflicts = self.retrans = 0
        self.closes: dict = {}              # close reason -> streams

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def __str__(self):
        return (f"and {self.streams} streams closed earlier (tcp.retire_after), in all: "
                f"{self.frames} frames, {self.bytes} bytes, {self.gaps} gaps, "
                f"{self.retrans} retransmissions, {self.conflicts} conflicts")

    def add(self, s: Stream):
        self.streams += 1
        self.closes[s.close_reason] = self.closes.get(s.close_reason, 0) + 1
        for d in s.dirs:
            self.frames += d.frames
            self.bytes += d.bytes
            self.gaps += d.gaps
            self.gap_bytes += d.gap_bytes
            self.conflicts += d.conflicts
            self.retrans += d.retrans


class Reassembler:
    """Feed segments with :meth:`feed`; call :meth:`finish` at the end."""

    def __init__(self, sink: StreamSink, *, max_ooo: int = MAX_OOO,
                 history: int = HISTORY, max_flows: int = MAX_FLOWS, lanes: bool = True,
                 retire_after: int | None = None):
        self.sink = sink
        # Honour the bulk lanes dissectors grant (dicomwire.fastpath): off,
        # every payload is delivered (the pipeline's reference path).
        self.lanes = lanes
        self.max_ooo = max_ooo
        self.history_limit = history
        self.max_flows = max(1, int(max_flows))
        self.slow = SlowPath(sink, max_ooo, history)   # everything but the next bytes in order
        self.flows: dict = {}          # flow bytes (see dicomwire.link) -> (stream, direction)
        self.streams: list[Stream] = []
        self.evicted = 0               # open flows closed because the table was full
        self.dropped = 0               # of those, the ones that never carried payload
        self.evicted_frame = None      # first eviction
        self._table: dict = {}         # streams with keys in self.flows, oldest first
        self._next_id = 0
        self._unlisted = 0             # dropped streams still in self.streams
        # Live runs: closed streams, in close order, retired retire_after ns
        # of capture time after their last frame (see the module's docstring).
        self.retire_after = retire_after
        self.retired = Retired()
        self._gone: set = set()        # retired streams still in self.streams
        if retire_after is not None:
            self.slow.closed = self._closed = deque()

    # -- entry point, once per TCP segment --

    def feed(self, frame, ts, seg):
        flow, seq, ack, flags, payload, missing = seg
        hit = self.flows.get(flow)
        if hit is None or flags & SYN and self._reused(hit[0], hit[1], flags, seq):
            hit = self._new(frame, ts, flow, flags)
        stream, d = hit
        stream.last_frame = frame
        stream.last_ts = ts
        dr = stream.dirs[d]
        dr.frames += 1
        if flags & ACK:
            # The ack field (and the window) mean something only with ACK: a
            # bare RST, say, carries ack 0 (RFC 9293 3.10.7.1).
            if flags & (ZERO_WINDOW | SYN | FIN | RST) == ZERO_WINDOW:
                dr.zero_windows += 1      # this side's receiver is full: it cannot keep up
            if stream.holes:
                other = stream.dirs[1 - d]
                if other.ooo and 0 < ((ack - other.next_seq) & MASK) < HALF:
                    self.slow.acked_hole(stream, 1 - d, other, ack, frame, ts)
            dr.ack = ack
        if seq == dr.expect and not flags & 7 and not missing:
            # The next bytes, in order, nothing held.
            n = len(payload)
            if n:
                off = dr.push(payload, n, self.history_limit, self.lanes)
                if off is not None:
                    self.sink.data(stream, d, off, payload, frame, ts)
            return
        if not stream.closed:
            self.slow.segment(stream, d, dr, frame, ts, seq, flags, payload, missing)

    # -- streams --

    def _new(self, frame, ts, flow, flags):
        if self.retire_after is not None:
            self._retire(ts)
        if len(self._table) >= self.max_flows:
            self._evict(frame)
        src, sport, dst, dport = split_flow(flow)
        if flags & SYN:
            known = True
            client_is_src = not flags & ACK
        else:
            known = False
            client_is_src = sport > dport or (sport == dport and src > dst)
        a, b = ((src, sport), (dst, dport)) if client_is_src else ((dst, dport), (src, sport))
        s = Stream(self._next_id, a, b, frame, ts, known)
        self._next_id += 1
        self.streams.append(s)
        self._table[s] = None
        fwd, rev = (s, 0), (s, 1)
        if not client_is_src:
            fwd, rev = rev, fwd
        self.flows[flow] = fwd
        self.flows[reverse_flow(flow)] = rev
        self.sink.stream_open(s)
        return fwd

    def _reused(self, stream, d, flags, seq):
        """A SYN on a known 4-tuple: a new connection (port reuse) or a repeat?"""
        if flags & ACK:
            return stream.closed and not stream.synack
        dr = stream.dirs[d]
        if dr.isn is not None and dr.isn == seq:
            return False                  # retransmitted SYN
        if stream.closed or dr.isn is not None or dr.bytes or stream.dirs[1 - d].bytes:
            if not stream.closed:
                self.slow.close(stream, "reused")
            return True
        return False

    def finish(self):
        """End of capture: flush every open stream (holes become gaps)."""
        for s in self.streams:
            if not s.closed:
                fins = s.fin[0] + s.fin[1]
                self.slow.close(s, ("open", "half-closed", "fin")[fins])
        if self._unlisted or self._gone:
            self._compact()
        if self.evicted:
            self.sink.flows_evicted(self, self.evicted, self.dropped, self.evicted_frame)

    # -- the flow table bound: called only when a new flow finds it full --

    def _evict(self, frame):
        """Forget a tenth of the flow table, oldest first: closed flows and
        open ones that carried no payload (half-open); if those are too few,
        the least recently active of the others."""
        want = len(self._table) - (self.max_flows - self.max_flows // 10 - 1)
        if want <= 0:
            return
        victims = []
        for s in self._table:           # creation order: the front holds the oldest
            if s.closed or not (s.dirs[0].next_off or s.dirs[1].next_off or s.holes):
                victims.append(s)
                if len(victims) == want:
                    break
        else:
            chosen = set(map(id, victims))
            busy = [s for s in self._table if id(s) not in chosen]
            victims += heapq.nsmallest(want - len(victims), busy, key=_last_frame)
        for s in victims:
            if not s.closed:
                if self.evicted_frame is None:
                    self.evicted_frame = frame
                self.evicted += 1
                self.slow.close(s, "evicted")
                if not (s.dirs[0].next_off or s.dirs[1].next_off):
                    # Nothing decoded, nothing to list: free it whole.
                    self.dropped += 1
                    self._unlisted += 1
            self._forget(s)
        # In place (the pipeline's Result shares the list), once the dropped
        # ones are half of it: amortised O(1) per dropped stream.
        if self._unlisted * 2 > len(self.streams):
            self._compact()

    def _forget(self, s):
        """Out of the flow table: the stream, and its two keys (dicomwire.link's
        flow bytes, client -> server and back) unless port reuse gave them to a
        newer stream already."""
        del self._table[s]
        key = (s.client[0] + s.server[0] + s.client[1].to_bytes(2, "big")
               + s.server[1].to_bytes(2, "big"))
        for k in (key, reverse_flow(key)):
            hit = self.flows.get(k)
            if hit is not None and hit[0] is s:
                del self.flows[k]

    def _retire(self, now):
        """Retire the streams closed before ``now - retire_after`` (called
        with each new flow: nothing is done per segment)."""
        closed, limit = self._closed, now - self.retire_after
        while closed and closed[0].last_ts <= limit:
            s = closed.popleft()
            if s in self._table:
                self._forget(s)
            if not _unlisted(s):
                self.retired.add(s)
                self._gone.add(s)
            s.dissector = s.data = None     # freed now, not by the next full collection
        if len(self._gone) * 2 > len(self.streams):
            self._compact()

    def _compact(self):
        gone = self._gone
        self.streams[:] = [s for s in self.streams if not _unlisted(s) and s not in gone]
        self._unlisted = 0
        gone.clear()

def _last_frame(s):
    return s.last_frame


def _unlisted(s) -> bool:
    """An evicted stream that never carried payload (left out of the list)."""
    return s.close_reason == "evicted" and not (s.dirs[0].next_off or s.dirs[1].next_off)
