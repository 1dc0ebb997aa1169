"""TCP reassembly: segments -> in-order stream bytes and events, per direction.

A :class:`Reassembler` takes segments from :mod:`dicomwire.link` and tells a
sink (any object with the methods of :class:`StreamSink`) what each stream
carried, in order:

- ``data``: a contiguous piece of stream bytes, with its stream offset and the
  frame (number, timestamp) it came from, so every byte maps back to a frame;
- ``gap``: bytes that crossed the wire but are not in the capture (lost
  segment, snaplen cut, hole never filled), with offset and size, so a
  dissector can resynchronise instead of gluing unrelated bytes together;
- ``conflict``: a retransmission whose bytes differ from those already seen;
- ``stream_open`` / ``stream_close`` with how it closed.

Offsets are absolute (0 = first byte after the SYN, or the first byte seen
when the capture started mid-stream), so sequence wrap-around never shows.
In-order segments take a short fast path; out-of-order data waits in a
bounded buffer (``max_ooo`` bytes per direction) until the hole fills, the
peer's ACK proves the capture missed it, the stream closes, or the bound is
reached; then the hole becomes a gap.

The flow table is bounded too (``max_flows`` streams, preference
``tcp.max_flows``): a SYN flood or a scan cannot grow it without limit. When
a new flow would exceed it, a tenth of the table is forgotten at once (so the
cost is amortised over new flows, nothing is done per segment): the oldest
closed flows and open flows that carried no payload (half-open), else the
least recently active. An open flow is closed first through the normal path (close
reason ``evicted``: what it held is delivered or becomes a gap); one that
carried no payload is also left out of :attr:`Reassembler.streams`. The
count is reported once, at :meth:`Reassembler.finish`.
"""

from __future__ import annotations

import heapq

# Direction (the per-direction state, with its in-order update and lane)
# belongs to the hot path; dicomwire.tcp.Direction names it too.
from dicomwire.fastpath import MASK, Direction  # noqa: F401
from dicomwire.link import reverse_flow, split_flow

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
ZERO_WINDOW = 0x200         # set by dicomwire.link: window field 0 (counted on plain ACKs only)
HALF = 1 << 31

MAX_OOO = 64 << 20          # bytes waiting for a hole, per direction
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
                 "fin", "rst", "closed", "close_reason", "dissector", "data")

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


class Reassembler:
    """Feed segments with :meth:`feed`; call :meth:`finish` at the end."""

    def __init__(self, sink: StreamSink, *, max_ooo: int = MAX_OOO,
                 history: int = HISTORY, max_flows: int | None = None):
        self.sink = sink
        self.max_ooo = max_ooo
        self.history_limit = history
        if max_flows is None:
            # The pipeline's sink carries the run's Config (tcp.max_flows).
            max_flows = getattr(getattr(sink, "config", None), "max_flows", MAX_FLOWS)
        self.max_flows = max(1, int(max_flows))
        self.flows: dict = {}          # flow bytes (see dicomwire.link) -> (stream, direction)
        self.streams: list[Stream] = []
        self.evicted = 0               # open flows closed because the table was full
        self.dropped = 0               # of those, the ones that never carried payload
        self.evicted_frame = None      # first eviction
        self._table: dict = {}         # streams with keys in self.flows, oldest first
        self._next_id = 0
        self._unlisted = 0             # dropped streams still in self.streams

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
                    self._acked_hole(stream, 1 - d, other, ack, frame, ts)
            dr.ack = ack
        if seq == dr.expect and not flags & 7 and not missing:
            # The next bytes, in order, nothing held.
            n = len(payload)
            if n:
                off = dr.advance((payload,), n, self.history_limit)
                self.sink.data(stream, d, off, payload, frame, ts)
            return
        if not stream.closed:
            self._slow(stream, d, dr, frame, ts, seq, flags, payload, missing)

    # -- streams --

    def _new(self, frame, ts, flow, flags):
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
                self._close(stream, "reused")
            return True
        return False

    def _close(self, stream, reason):
        if stream.closed:
            return
        for d in (0, 1):
            self._drain(stream, d, stream.dirs[d], stream.last_frame, stream.last_ts, final=True)
        stream.closed = True
        stream.close_reason = reason
        for dr in stream.dirs:
            dr.forget_history()
        self._sync(stream)
        self.sink.stream_close(stream)

    @staticmethod
    def _sync(stream):
        """Re-derive the fast-path flags after any slow-path change."""
        holes = False
        for dr in stream.dirs:
            if dr.ooo:
                holes = True
            # After a FIN the fast path is off for that direction: data the
            # FIN overtook must reach the close check in _slow (else the
            # stream stays open until finish() or is closed as "reused").
            # Costs nothing in order: segments after a FIN carry seq =
            # next_seq + 1 and take the slow path anyway.
            dr.expect = (None if dr.ooo or stream.closed or dr.fin_off is not None
                         else dr.next_seq)
        stream.holes = holes

    def finish(self):
        """End of capture: flush every open stream (holes become gaps)."""
        for s in self.streams:
            if not s.closed:
                fins = s.fin[0] + s.fin[1]
                self._close(s, ("open", "half-closed", "fin")[fins])
        if self._unlisted:
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
                self._close(s, "evicted")
                if not (s.dirs[0].next_off or s.dirs[1].next_off):
                    # Nothing decoded, nothing to list: free it whole.
                    self.dropped += 1
                    self._unlisted += 1
            del self._table[s]
            # Its two keys (dicomwire.link's flow bytes, client -> server and back),
            # unless port reuse gave them to a newer stream already.
            key = (s.client[0] + s.server[0] + s.client[1].to_bytes(2, "big")
                   + s.server[1].to_bytes(2, "big"))
            for k in (key, reverse_flow(key)):
                hit = self.flows.get(k)
                if hit is not None and hit[0] is s:
                    del self.flows[k]
        # In place (the pipeline's Result shares the list), once the dropped
        # ones are half of it: amortised O(1) per dropped stream.
        if self._unlisted * 2 > len(self.streams):
            self._compact()

    def _compact(self):
        self.streams[:] = [s for s in self.streams if not _unlisted(s)]
        self._unlisted = 0

    # -- the slow path: handshake, FIN/RST, holes, retransmissions --

    def _slow(self, stream, d, dr, frame, ts, seq, flags, payload, missing):
        if flags & SYN:
            if flags & ACK:
                stream.synack = True
            else:
                stream.syn = True
            if dr.isn is None:
                dr.isn = seq
                if dr.next_seq is None or dr.bytes == 0:
                    dr.next_seq = (seq + 1) & MASK
            seq = (seq + 1) & MASK
        if dr.next_seq is None:
            # Capture started mid-stream: the first byte seen is offset 0.
            dr.next_seq = seq
        rel = (seq - dr.next_seq) & MASK
        if rel >= HALF:
            rel -= 1 << 32
        off = dr.next_off + rel
        if flags & RST:
            # Data in a RST is a diagnostic (RFC 9293 3.5.3, Wireshark's
            # "reset cause"), not stream bytes.
            payload, missing = b"", 0
        n = len(payload) + missing
        if flags & FIN and dr.fin_off is None:
            dr.fin_off = off + n
            stream.fin[d] = True
        if n:
            if n <= 1 and rel == -1 and not flags & (SYN | FIN):
                dr.keepalives += 1            # keep-alive: one old byte, never data
            elif off + n <= dr.next_off:
                dr.retrans += 1
                if payload:
                    self._compare_history(stream, d, dr, off, payload, frame, ts)
            else:
                if off < dr.next_off:
                    dr.retrans += 1
                    cut = dr.next_off - off
                    if cut <= len(payload):
                        self._compare_history(stream, d, dr, off, payload[:cut], frame, ts)
                        payload = payload[cut:]
                    else:                     # overlap reaches into the missing tail
                        missing -= cut - len(payload)
                        payload = payload[len(payload):]
                    off = dr.next_off
                if off == dr.next_off:
                    # The segment that fills a hole is in order, not out of
                    # order: deliver it, then what waited behind it (holding
                    # it first counted it in ooo_segments too).
                    self._deliver(stream, d, dr, off, payload, missing, frame, ts)
                    if dr.ooo:
                        self._drain(stream, d, dr, frame, ts)
                else:
                    self._hold(stream, d, dr, off, payload, missing, frame, ts)
                    self._drain(stream, d, dr, frame, ts)
        self._sync(stream)
        if flags & RST:
            stream.rst = True
            refused = not stream.dirs[0].bytes and not stream.dirs[1].bytes and not stream.synack
            self._close(stream, "refused" if refused and stream.syn else "rst")
        elif stream.fin[0] and stream.fin[1]:
            done = all(x.fin_off is not None and x.next_off >= x.fin_off and not x.ooo
                       for x in stream.dirs)
            if done:
                self._close(stream, "fin")

    def _deliver(self, stream, d, dr, off, payload, missing, frame, ts):
        n = len(payload)
        if n:
            # (The close or _sync after every caller re-derives dr.expect.)
            dr.advance((payload,), n, self.history_limit)
            self.sink.data(stream, d, off, payload, frame, ts)
        if missing:
            self._gap(stream, d, dr, missing, frame, ts)

    def _gap(self, stream, d, dr, size, frame, ts):
        off = dr.next_off
        dr.next_off = off + size
        dr.next_seq = (dr.next_seq + size) & MASK
        dr.gaps += 1
        dr.gap_bytes += size
        dr.forget_history()
        self.sink.gap(stream, d, off, size, frame, ts)

    def _hold(self, stream, d, dr, off, payload, missing, frame, ts):
        """Keep a segment that starts beyond a hole."""
        dr.ooo_segments += 1
        old = dr.ooo.get(off)
        if old is not None:
            dr.retrans += 1
            m = min(len(old[0]), len(payload))
            if bytes(old[0][:m]) != bytes(payload[:m]):
                dr.conflicts += 1
                self.sink.conflict(stream, d, off, m, frame, ts)
            # Merge rather than keep whichever covers more of the wire: the
            # full resend of a snaplen-cut segment (or the reverse order)
            # must not turn captured bytes into a gap.
            old_end = len(old[0]) + old[1]
            if len(payload) <= len(old[0]):
                if len(payload) + missing > old_end:     # only more missing tail
                    dr.ooo[off] = (old[0], len(payload) + missing - len(old[0]),
                                   old[2], old[3])
                return
            missing = max(len(payload) + missing, old_end) - len(payload)
            dr.ooo_bytes -= len(old[0])
        else:
            heapq.heappush(dr.ooo_heap, off)
        # A copy: the frame's buffer must not be pinned while we wait.
        dr.ooo[off] = (bytes(payload), missing, frame, ts)
        dr.ooo_bytes += len(payload)
        if dr.ooo_bytes > self.max_ooo:
            # Too much waiting on one hole: give it up as missing.
            first = dr.ooo_heap[0]
            if first > dr.next_off:
                self._gap(stream, d, dr, first - dr.next_off, frame, ts)

    def _acked_hole(self, stream, d, dr, ack, frame, ts):
        """The peer acknowledged bytes we never saw: the capture lost them."""
        acked_off = dr.next_off + ((ack - dr.next_seq) & MASK)
        first = dr.ooo_heap[0]
        hole_end = min(first, acked_off)
        if hole_end > dr.next_off:
            self._gap(stream, d, dr, hole_end - dr.next_off, frame, ts)
            self._drain(stream, d, dr, frame, ts)
            self._sync(stream)

    def _drain(self, stream, d, dr, frame, ts, final=False):
        """Deliver held segments that now continue the stream. With ``final``,
        holes between them (and up to a FIN or the peer's last ACK) become gaps."""
        heap, ooo = dr.ooo_heap, dr.ooo
        while heap:
            first = heap[0]
            if first > dr.next_off:
                if not final:
                    return
                self._gap(stream, d, dr, first - dr.next_off, frame, ts)
            heapq.heappop(heap)
            payload, missing, pframe, pts = ooo.pop(first)
            dr.ooo_bytes -= len(payload)
            end = first + len(payload) + missing
            if end <= dr.next_off:
                if payload:
                    self._compare_history(stream, d, dr, first, memoryview(payload), pframe, pts)
                continue
            if first < dr.next_off:
                cut = dr.next_off - first
                if cut <= len(payload):
                    self._compare_history(stream, d, dr, first,
                                          memoryview(payload)[:cut], pframe, pts)
                    payload = payload[cut:]
                else:
                    missing -= cut - len(payload)
                    payload = b""
            self._deliver(stream, d, dr, dr.next_off, memoryview(payload), missing, pframe, pts)
        if final and dr.next_seq is not None:
            # Bytes the FIN or the peer's ACK prove were sent but never seen.
            end = dr.fin_off
            peer_ack = stream.dirs[1 - d].ack
            if end is None and peer_ack is not None:
                rel = (peer_ack - dr.next_seq) & MASK
                if 0 < rel < HALF:
                    end = dr.next_off + rel
            if end is not None and end > dr.next_off:
                self._gap(stream, d, dr, end - dr.next_off, frame, ts)

    def _compare_history(self, stream, d, dr, off, payload, frame, ts):
        """Compare re-sent bytes with what was delivered; report differences."""
        end = off + len(payload)
        hend = dr.next_off          # the history ends where delivery stands
        for hp in reversed(dr.history):
            hoff = hend - len(hp)
            if hend <= off:
                break
            if hoff >= end:
                hend = hoff
                continue
            a, b = max(off, hoff), min(end, hend)
            if payload[a - off:b - off] != hp[a - hoff:b - hoff]:
                dr.conflicts += 1
                self.sink.conflict(stream, d, a, b - a, frame, ts)
                return
            hend = hoff


def _last_frame(s):
    return s.last_frame


def _unlisted(s) -> bool:
    """An evicted stream that never carried payload (left out of the list)."""
    return s.close_reason == "evicted" and not (s.dirs[0].next_off or s.dirs[1].next_off)
