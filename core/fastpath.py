"""The hot path: what carries the bulk of a capture, in one module.

Most frames are the next in-order segment of a known TCP flow over Ethernet
and IPv4; what handles them lives here, behind a small API. The rest takes
the general path (link decode, :meth:`dicomwire.tcp.Reassembler.feed`) with
the same results (tests/test_pipeline.py runs both):

- **The in-order update**, :meth:`Direction.advance` and :meth:`Direction.push`
  (one payload, into the lane when one is open): sequence number, stream
  offset, retransmission history; the reassembler uses them too.
- **The walk**, :meth:`FastPath.walk`, over a reader's records in place:
  each plain segment (:data:`PLAIN`: Ethernet, IPv4 without options or
  fragments, TCP ACK without SYN, FIN or RST, a window) that is the next
  in-order one of a known flow goes straight to its stream's dissector, or
  declines a stream no plugin would take (:func:`decline`); a SYN-ACK or
  first FIN the slow path would simply note is noted here
  (:meth:`FastPath._control`); every other frame goes down the general
  path, in order. In C where
  ``core/_fastwalk.c`` was built (:data:`ext`), the same loop
  (tests/test_fastwalk.py).
- **The bulk lane**, :meth:`Direction.grant_lane` / :meth:`Direction.take_lane`:
  in a long opaque run a dissector lets the next in-order payloads be
  appended to its parts instead of being called per segment; records that
  continue a lane (a **burst**; bare ACKs of other flows may come between)
  take one state update for all of them.
"""
from __future__ import annotations

import os
import types

from dicomwire import headers
# The per-direction state and its in-order update, used by the walk and the
# reassembler alike; importable from here too (the hot path's API).
from dicomwire.direction import DISCARD, IGNORED, MASK, Direction, decline  # noqa: F401

EXT_VERSION = 8           # the compiled walk's VERSION this module is in step with
try:
    from dicomwire import _fastwalk as ext
except ImportError:
    ext = None
if ext is not None and (ext.VERSION != EXT_VERSION or os.environ.get("DICOMWIRE_PURE")):
    ext = None

SYN = 0x02

# The fields the plain-segment check reads (dicomwire.headers); a plain
# segment's flow key (dicomwire.link's flow bytes) is frame[26:38].
PLAIN = headers.PLAIN


class FastPath:
    """The walk over a capture's records (``reader.walker = FastPath(...).walk``).

    ``reasm``: the reassembler whose flows it continues; ``sink``: its sink
    (``data`` gets the payloads of streams without a dissector yet,
    ``dissector_failed`` what a dissector raised); ``host``: its ``frame``
    is set before a dissector is called; ``general(number, ts, linktype,
    data, orig, iface)``: the general path for every frame not taken here;
    ``feed(number, ts, segment)``: the same past its link decode (for the
    TCP segments the compiled walk read); ``stats``: the link decoder's
    :class:`dicomwire.link.LinkStats` (IPv4 that is not TCP is counted
    here); ``tap``: sees every frame first; ``progress(done, total,
    frames)``: after each walk."""

    def __init__(self, reader, reasm, sink, host, general, *, tap=None, progress=None,
                 stats=None, feed=None):
        self.reader = reader
        self.stats = stats if stats is not None else types.SimpleNamespace(non_tcp=0)
        self.flows = reasm.flows
        self.history = reasm.history_limit
        self.sink = sink
        self.host = host
        self.general = general
        self.feed = feed
        self.tap = tap
        self.progress = progress

    def walk(self, buf, pos: int, limit: int):
        """Take the records of ``buf`` from ``pos`` that end by ``limit``, in
        order, until one the reader must read itself (a cut record; in a
        pcapng any block but an Enhanced Packet Block of a time resolution
        of 1 ns or coarser), then advance the reader to it. Payloads are
        views of ``buf`` if the file is mapped, else copies. Compiled when
        it can be (no tap)."""
        reader = self.reader
        if ext is not None and self.tap is None:
            self._compiled(buf, pos, limit)
        else:
            self._loop(buf, pos, limit)
        if self.progress is not None:
            self.progress(*reader.progress, reader.frames_read)

    def _compiled(self, buf, pos, limit):
        """:meth:`_loop` in C; ``st`` gets its locals for the same ``finally``.
        Past a time beyond 64 bits (a pcapng clock) the Python walk goes on."""
        r = self.reader
        ng, unpack, size, _t, ifaces, mult, linktype, iface = self._layout()
        big = unpack.__self__.format[0] == ">"
        layout = ((True, big, r.max_record, ifaces, r.packet_options) if ng else
                  (False, big, size, mult, linktype, iface))
        st = [pos, r.frames_read, r.truncated] + [None] * 9
        try:
            ext.walk(buf, memoryview(buf) if r.mapped else buf, pos, limit, r.frames_read,
                     r.truncated, layout, self.flows, self._segment, DISCARD, self.general,
                     self.stats, self.feed, self.history, st)
        finally:
            self._stop(buf, *st[:11])
        if st[11]:
            self._loop(buf, st[0], limit)

    def _stop(self, buf, pos, number, truncated, ts, burst, parts, taken, lane, last_n, last,
              ack_last):                # where a walk stops: its burst ended, the reader advanced
        if burst is not None:
            self._burst_end(buf, burst, parts, taken, lane, last_n, last, ack_last)
            ts = burst[0].last_ts if last_n == number else ts
        self.reader.advance(pos, number, truncated, ts)

    def _loop(self, buf, pos: int, limit: int):
        """The walk in Python (what ``core/_fastwalk.c`` does)."""
        reader, unpack_plain, segment, general, tap, stats = (
            self.reader, PLAIN.unpack_from, self._segment, self.general, self.tap, self.stats)
        number, truncated = reader.frames_read, reader.truncated
        view = memoryview(buf) if reader.mapped else buf
        ng, unpack, size, trailer, ifaces, mult, linktype, iface = self._layout()
        nif, max_record, options = len(ifaces), reader.max_record, reader.packet_options
        burst = parts = key = expect = ts = last = last_n = ack_last = None  # a burst: key's lane
        lane = taken = shift = add = 0
        try:
            while pos + size <= limit:
                if ng:
                    btype, blen, iid, hi, lo, incl, orig = unpack(buf, pos)
                    q, end = pos + 28, pos + blen
                    opt = q + ((incl + 3) & ~3)         # options, up to the trailer
                    if btype != 6 or end > limit or iid >= nif or blen % 4 or blen > max_record \
                            or opt > end - 4 or trailer(buf, end - 4)[0] != blen:
                        break
                    mult, shift, add, linktype, iface = ifaces[iid]
                    if mult is None:
                        break
                    if opt != end - 4:
                        options(number + 1, buf, opt, end - 4)   # its comments
                else:
                    hi, lo, incl, orig = unpack(buf, pos)
                    q = pos + size
                    end = q + incl
                    if end > limit:
                        break
                rec, pos, number = pos, end, number + 1
                if incl < orig:
                    truncated += 1
                if tap is not None:
                    tap(number, (((hi << 32) | lo) * mult >> shift) + add if ng else
                        hi * 1_000_000_000 + lo * mult,
                        linktype, buf[q:q + incl], orig, iface)
                plain = ctl = False
                if linktype == 1 and incl >= 54:
                    etype, vihl, total, frag, proto, seq, ack, doff, flags, win = \
                        unpack_plain(buf, q)
                    at, e = 34 + (doff >> 4 << 2), 14 + total
                    if etype == 0x0800 and vihl == 0x45 and proto == 6 \
                            and not frag & 0x3FFF and 54 <= at <= e <= incl:
                        # flags & 0x17 == 0x10: ACK (its field is kept), no SYN/FIN/RST.
                        plain = win and flags & 0x17 == 0x10
                        ctl = e == at and flags & 0x17 in (0x11, 0x12)   # FIN or SYN, with ACK
                        n = e - at
                        if plain and seq == expect and 0 < n < lane and buf[q + 26:q + 38] == key:
                            lane -= n                  # the burst goes on: no call, no update
                            expect = (expect + n) & MASK
                            parts.append(view[q + at:q + e])
                            taken += n
                            last, last_n, ack_last = rec, number, ack
                            continue
                    elif proto != 6 and etype == 0x0800:
                        stats.non_tcp += 1             # UDP, ICMP...: what the link decoder
                        continue                       # would count, without its call
                ts = (((hi << 32) | lo) * mult >> shift) + add if ng else hi * 1_000_000_000 + lo * mult
                # Anything but a bare ACK of another flow ends the burst first.
                if burst is not None and (not plain or e > at or buf[q + 26:q + 38] == key):
                    burst, lane = self._burst_end(buf, burst, parts, taken, lane, last_n, last, ack_last)
                if plain:
                    hit = segment(buf, view, q, at, e, seq, ack, number, ts)
                    if hit is True:
                        continue
                    if burst is not None:              # the bare ACK goes further: end it now
                        burst, lane = self._burst_end(buf, burst, parts, taken, lane, last_n, last,
                                                      ack_last)
                    if hit:                            # a lane is open: a burst may follow
                        burst, key, expect, lane, parts, taken, last, last_n, ack_last = \
                            self._burst_start(hit, buf, view, q, at, e, rec, number, ack)
                        continue
                if ctl and self._control(buf[q + 26:q + 38], seq, ack, flags, number, ts):
                    continue
                general(number, ts, linktype, buf[q:q + incl], orig, iface)
        finally:
            self._stop(buf, pos, number, truncated, ts, burst, parts, taken, lane, last_n, last,
                       ack_last)

    def _layout(self):
        """The reader's records: (pcapng?, unpack of a record header, its size,
        of a pcapng block trailer, pcapng interfaces (CaptureReader.epb_layout);
        a pcap's ts multiplier, link type and interface)."""
        r = self.reader
        if r.format == "pcapng":
            unpack, trailer, ifaces = r.epb_layout
            return True, unpack, 28, trailer, ifaces, None, None, None
        return False, r.record.unpack_from, r.record_size, None, (), r.ts_mult, r.linktype, r.iface

    def _segment(self, buf, view, q, at, e, seq, ack, number, ts):
        """The plain segment at ``buf[q:]`` (TCP payload ``at:e``), if the next
        in-order one of a known flow (or a bare ACK after its close): if it
        fits the open lane, or declines the stream (``Stream.sniff``),
        (stream, direction, length), not taken (a burst starts with it);
        else it is delivered: True, or (stream, direction) while a lane is
        open after it. False: for the general path."""
        hit = self.flows.get(buf[q + 26:q + 38])
        if hit is None:
            return False
        stream, d = hit
        dr = stream.dirs[d]
        n = e - at
        if seq != dr.expect or stream.holes:
            if n or not stream.closed:
                return False                   # (an ACK after the close: counters only)
        elif 0 < n < dr.lane:
            return stream, d, n
        elif n and stream.dissector is None and stream.sniff is not None \
                and (d or buf[q + at] not in stream.sniff):
            decline(stream)                    # no plugin would take it: a burst starts
            dr.lane += n                       # (room counted after it, as the general path)
            return stream, d, n
        stream.last_frame = number
        stream.last_ts = ts
        dr.frames += 1
        dr.ack = ack
        if n:
            payload = view[q + at:q + e]
            off = dr.push(payload, n, self.history)
            host = self.host
            host.frame, host.stream = number, stream
            dis = stream.dissector
            if dis:
                try:
                    dis.data(d, off, payload, number, ts)
                except Exception as exc:
                    self.sink.dissector_failed(stream, "data", exc)
            elif dis is None:
                # The first payload of a stream picks its dissector: as bytes.
                self.sink.data(stream, d, off, bytes(payload), number, ts)
            return hit if dr.lane else True
        return True                            # a bare ACK: it starts no burst

    def _control(self, key, seq, ack, flags, number, ts):
        """A SYN-ACK or FIN (with ACK, no payload) of a known flow, where the
        reassembler's slow path is simple: the stream open, nothing held; the
        SYN-ACK its direction's first segment, the FIN in order and the
        first of the two (the second closes the stream). Taken here as the
        general path would take it: True; else False."""
        hit = self.flows.get(key)
        if hit is None:
            return False
        stream, d = hit
        dr = stream.dirs[d]
        if stream.closed or stream.holes:
            return False
        if flags & SYN:
            if dr.isn is not None or dr.next_seq is not None:
                return False
            stream.synack = True
            dr.isn = seq
            dr.next_seq = dr.expect = (seq + 1) & MASK
        else:
            if seq != dr.expect or stream.fin[1 - d]:
                return False
            dr.fin_off = dr.next_off
            stream.fin[d] = True
            dr.expect = None                   # (no fast path after a FIN: SlowPath._sync)
        stream.last_frame = number
        stream.last_ts = ts
        dr.frames += 1
        dr.ack = ack
        return True

    @staticmethod
    def _burst_start(hit, buf, view, q, at, e, rec, number, ack):
        """The walk's burst locals (hit, key, expect, lane, parts, taken, last,
        last_n, ack_last) for the lane of ``hit`` from :meth:`_segment`; with
        a third item, the segment at ``buf[q:]`` (record ``rec``) is its first."""
        dr = hit[0].dirs[hit[1]]
        expect, lane, parts = dr.expect, dr.lane, []
        if len(hit) < 3:
            return hit, buf[q + 26:q + 38], expect, lane, parts, 0, None, None, None
        n = e - at
        parts.append(view[q + at:q + e])
        return (hit, buf[q + 26:q + 38], (expect + n) & MASK, lane - n, parts, n, rec, number,
                ack)

    def _burst_end(self, buf, hit, parts, taken, lane, number, last, ack):
        """One state update for a burst: ``parts`` (``taken`` bytes) went into
        the lane of flow entry ``hit``, ``lane`` bytes are left; the record
        at ``last`` (frame ``number``, ack field ``ack``) was its last (bare
        ACKs of other flows may have come after it). Returns (None, 0): no
        burst, no lane."""
        if not parts:
            return None, 0
        reader = self.reader
        if reader.format == "pcapng":
            _t, _l, iid, hi, lo = reader.epb_layout[0](buf, last)[:5]
            mult, shift, add = reader.epb_layout[2][iid][:3]
            ts = (((hi << 32) | lo) * mult >> shift) + add
        else:
            hi, lo = reader.record.unpack_from(buf, last)[:2]
            ts = hi * 1_000_000_000 + lo * reader.ts_mult
        stream, dr = hit[0], hit[0].dirs[hit[1]]
        if number > stream.last_frame:
            stream.last_frame, stream.last_ts = number, ts
        dr.frames += len(parts)
        dr.ack = ack
        dr.advance(parts, taken, self.history)
        dr.lane = lane
        dr.lane_parts += parts
        return None, 0
