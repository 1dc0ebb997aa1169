"""TCP reassembly off the in-order path: what Reassembler.feed does not take.

:class:`dicomwire.tcp.Reassembler` delivers the next in-order bytes of a
direction itself (:meth:`dicomwire.fastpath.Direction.advance`); every other
segment comes here (:meth:`SlowPath.segment`): the handshake, FIN and RST,
keep-alives, retransmissions (compared with the recent history: different
bytes are a ``conflict``), and segments beyond a hole, held (at most
``max_ooo`` bytes per direction) until the hole fills, the peer's ACK proves
the capture lost it (:meth:`SlowPath.acked_hole`), the stream closes
(:meth:`SlowPath.close`) or the bound is reached; then the hole becomes a
``gap``. Bytes are never glued across a hole.
"""

from __future__ import annotations

import heapq

from dicomwire.fastpath import MASK

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
HALF = 1 << 31
MAX_OOO = 64 << 20          # bytes waiting for a hole, per direction
MAX_LOST = 1 << 16          # gaps recorded by offset, per direction (Direction.lost)


class SlowPath:
    """The out-of-order half of a reassembler; ``sink`` gets its events,
    ``max_ooo`` bounds what waits for a hole per direction, ``history`` the
    delivered bytes kept to compare retransmissions with."""

    def __init__(self, sink, max_ooo: int, history: int):
        self.sink = sink
        self.max_ooo = max_ooo
        self.history = history
        self.closed = None      # a list the streams closed are appended to, if set

    def close(self, stream, reason):
        """Close ``stream`` (once): what its directions hold is delivered,
        holes up to a FIN or the peer's last ACK become gaps; then the sink's
        ``stream_close``."""
        if stream.closed:
            return
        for d in (0, 1):
            self._drain(stream, d, stream.dirs[d], stream.last_frame, stream.last_ts, final=True)
        stream.closed = True
        stream.close_reason = reason
        for dr in stream.dirs:
            dr.forget_history()
        self._sync(stream)
        if self.closed is not None:
            self.closed.append(stream)
        self.sink.stream_close(stream)

    @staticmethod
    def _sync(stream):
        """Re-derive the fast-path flags after any slow-path change."""
        holes = False
        for dr in stream.dirs:
            if dr.ooo:
                holes = True
            # After a FIN the fast path is off for that direction: data the
            # FIN overtook must reach the close check in segment (else the
            # stream stays open until finish() or is closed as "reused").
            # Costs nothing in order: segments after a FIN carry seq =
            # next_seq + 1 and take the slow path anyway.
            dr.expect = (None if dr.ooo or stream.closed or dr.fin_off is not None
                         else dr.next_seq)
        stream.holes = holes

    def segment(self, stream, d, dr, frame, ts, seq, flags, payload, missing):
        """A segment of direction ``d`` (its state ``dr``, the stream open)
        that is not simply its next bytes in order: handshake, FIN or RST,
        a keep-alive, a retransmission, a segment beyond a hole, or bytes the
        snaplen cut (``missing``)."""
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
            self.close(stream, "refused" if refused and stream.syn else "rst")
        elif stream.fin[0] and stream.fin[1]:
            done = all(x.fin_off is not None and x.next_off >= x.fin_off and not x.ooo
                       for x in stream.dirs)
            if done:
                self.close(stream, "fin")

    def _deliver(self, stream, d, dr, off, payload, missing, frame, ts):
        n = len(payload)
        if n:
            # (The close or _sync after every caller re-derives dr.expect.)
            dr.advance((payload,), n, self.history)
            self.sink.data(stream, d, off, payload, frame, ts)
        if missing:
            self._gap(stream, d, dr, missing, frame, ts)

    def _gap(self, stream, d, dr, size, frame, ts):
        off = dr.next_off
        dr.next_off = off + size
        dr.next_seq = (dr.next_seq + size) & MASK
        dr.gaps += 1
        dr.gap_bytes += size
        lost = dr.lost
        if lost is None:
            lost = dr.lost = []
        if len(lost) < MAX_LOST:
            lost.append((off, size))
        else:                               # bounded: the last one runs on, to this end
            lost[-1] = (lost[-1][0], off + size - lost[-1][0])
        dr.forget_history()
        self.sink.gap(stream, d, off, size, frame, ts)

    def _hold(self, stream, d, dr, off, payload, missing, frame, ts):
        """Keep a segment that starts beyond a hole."""
        dr.ooo_segments += 1
        old = dr.ooo.get(off)
        if old is not None:
            dr.retrans += 1
            m = min(len(old[0]), len(payload))
            diff = differing(bytes(old[0][:m]), bytes(payload[:m]))
            if diff is not None:
                dr.conflicts += 1
                self.sink.conflict(stream, d, off + diff[0], diff[1] - diff[0], frame, ts)
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

    def acked_hole(self, stream, d, dr, ack, frame, ts):
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
        """Compare re-sent bytes with what was delivered; report the range
        from the first byte that differs to the last (one conflict)."""
        end = off + len(payload)
        hend = dr.next_off          # the history ends where delivery stands
        lo = hi = None
        for hp in reversed(dr.history):
            hoff = hend - len(hp)
            if hend <= off:
                break
            if hoff >= end:
                hend = hoff
                continue
            a, b = max(off, hoff), min(end, hend)
            diff = differing(bytes(payload[a - off:b - off]), bytes(hp[a - hoff:b - hoff]))
            if diff is not None:
                lo = a + diff[0]                  # walking backwards: the lowest so far
                hi = a + diff[1] if hi is None else hi
            hend = hoff
        if lo is not None:
            dr.conflicts += 1
            self.sink.conflict(stream, d, lo, hi - lo, frame, ts)


def differing(a: bytes, b: bytes):
    """``(first, end)``: the range of equal-length ``a`` and ``b`` from the
    first byte that differs to the last, or None when they are equal
    (bisection over slice comparisons: C speed, only on a conflict)."""
    if a == b:
        return None
    lo, hi = 0, len(a)                 # a[:lo] == b[:lo]; a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    n, top, bot = len(a), len(a) - lo, 0   # a[n-bot:] == b[n-bot:]; not for top
    while top - bot > 1:
        mid = (top + bot) // 2
        if a[n - mid:] == b[n - mid:]:
            bot = mid
        else:
            top = mid
    return lo, n - bot
