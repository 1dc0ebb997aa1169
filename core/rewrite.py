"""Rewriting TCP payloads in a capture, by stream offset: the engine's half of
a capture rewriter (a pack decides what to change, this module changes it).

A pack that read a capture in one pass (:func:`dicomwire.pipeline.run`)
describes, per stream direction, what its bytes become: an
:class:`dicomwire.edits.Edits`
of patches (stream offset -> new bytes, or a blank of zeros) and, for the
directions it vouches for (``strict``), the byte ranges it understood
(``keep``): everything else of a strict direction is blanked. A second pass
over the same capture (:class:`Rewriter`, :func:`rewrite_capture`) finds each
frame's TCP payload, maps its sequence number to the stream offset the
reassembler gave its bytes (``seq - base``, with the stream's final
``next_seq`` and ``next_off``; port reuse told apart by frame number), and
applies the edits that fall inside it, so retransmissions and out-of-order
copies are rewritten alike. Same-length edits leave sequence numbers, IP
lengths and the IPv4 header checksum as they were; the TCP checksum is
updated incrementally (RFC 1624): right where it was right, as wrong as it
was where the capturing host offloaded it. Replacements that change a
length (``Edits.replace``) move what follows them: the frames of those
streams go through :class:`dicomwire.reshape.Reshaper` (sequence and
acknowledgment numbers, IP lengths, checksums); other streams take the
same-length path, unchanged.

IP fragments are reassembled as the first pass reassembled them and
rewritten whole (:class:`dicomwire.rewrite_ip.Fragments`: frames held in
order until a datagram completes; what cannot be rewritten is blanked).

Frames are written with :class:`dicomwire.pcapng_writer.PcapngWriter`
(pcapng) or :class:`dicomwire.pcapng_writer.PcapWriter` (pcap).
"""

from __future__ import annotations

import bisect
import struct

from dicomwire.checksum import moved, sum16
from dicomwire.edits import Edits  # noqa: F401  (the pack's half, named here too)
from dicomwire.reshape import Reshaper
from dicomwire.rewrite_ip import (HELD, RESHAPED, Fragment, Fragments, ip_header,  # noqa: F401
                                  locate)

MASK = 0xFFFFFFFF
_H = struct.Struct("!H")


class Rewriter:
    """Frame by frame, the second pass: ``frame(linktype, number, data)``
    returns the rewritten frame, or None when it stays as it was.
    ``streams``: the first pass's :class:`dicomwire.tcp.Stream` list;
    ``edits``: ``{(stream id, direction): Edits}``."""

    def __init__(self, streams, edits: dict):
        self.flows: dict = {}          # flow -> [(first frame, key, base seq), ...]
        self.edits = edits
        self.last_off: dict = {}       # key -> last offset (unwrapping past 4 GiB)
        self.rewritten = 0
        for e in edits.values():
            if not e.frozen:
                e.freeze()
        for s in streams:
            for d in (0, 1):
                key = (s.id, d)
                dr = s.dirs[d]
                if key not in edits or dr.next_seq is None:
                    continue
                src, dst = (s.client, s.server) if d == 0 else (s.server, s.client)
                flow = src[0] + dst[0] + struct.pack("!HH", src[1], dst[1])
                base = (dr.next_seq - dr.next_off) & MASK
                self.flows.setdefault(flow, []).append((s.first_frame, key, base))
        for lst in self.flows.values():
            lst.sort()
        # Streams with length changes: their frames, both ways, take the other path.
        self.reshaper = Reshaper(streams, edits) \
            if any(e.resizes is not None for e in edits.values()) else None
        # IP fragments: rewritten whole (dicomwire.rewrite_ip), their frames held in order.
        pairs = {f[:-4] for f in self.flows}
        if self.reshaper is not None:
            pairs.update(f[:-4] for f in self.reshaper.flows)
        self.frags = Fragments(self._target, pairs)

    def _target(self, flow, number: int, seq: int):
        """A reassembled datagram's segment: ``(Edits, stream offset)``,
        RESHAPED, or None (a stream not rewritten)."""
        if self.reshaper is not None and flow in self.reshaper.flows:
            return RESHAPED
        hits = self.flows.get(flow)
        return None if hits is None else self._offset(hits, number, seq)

    def _offset(self, hits, number: int, seq: int):
        """``(Edits, stream offset)`` of a segment of a flow's streams
        ``hits``: port reuse told apart by frame number, sequence numbers
        unwrapped past 4 GiB from the last offset seen."""
        hit = hits[0]
        for h in hits[1:]:               # port reuse: the last stream begun by then
            if h[0] <= number:
                hit = h
        _first, key, base = hit
        rel = (seq - base) & MASK
        last = self.last_off.get(key, 0)
        off = last + ((rel - last + (1 << 31)) & MASK) - (1 << 31)
        self.last_off[key] = max(last, off)
        return self.edits[key], off

    def frame(self, linktype: int, number: int, data):
        if self.reshaper is not None:
            new = self._reshaped(linktype, number, data)
            if new is not _OTHER:
                return new
        if linktype == 1 and len(data) >= 54 and data[12] == 8 and data[13] == 0 \
                and data[14] == 0x45 and data[23] == 6 and not (data[20] & 0x3F or data[21]):
            # Ethernet, IPv4 without options, TCP, not a fragment: most frames.
            pay_at = 34 + (data[46] >> 4) * 4
            total = (data[16] << 8) | data[17]      # 0: TSO, to the frame's end (ip_end)
            pay_end = min(14 + total, len(data)) if total else len(data)
            if pay_at >= pay_end:
                return None                      # no payload (an ACK): nothing to change
            hits = self.flows.get(bytes(data[26:38]))
            if hits is None:
                return None
            seq, tcp_at = int.from_bytes(data[38:42], "big"), 34
            if len(hits) == 1:          # one stream on this flow (no port reuse): most frames
                _first, key, base = hits[0]
                rel = (seq - base) & MASK
                last = self.last_off.get(key, 0)
                off = last + ((rel - last + (1 << 31)) & MASK) - (1 << 31)
                if off > last:
                    self.last_off[key] = off
                edits = self.edits[key]
                ends = edits._busy_ends             # Edits.untouched, inline
                i = bisect.bisect_right(ends, off)
                if i == len(ends) or edits._busy_starts[i] >= off + pay_end - pay_at:
                    return None
                return self._patch(data, edits, off, tcp_at, pay_at, pay_end)
        else:
            try:
                where = locate(linktype, data)
            except Fragment:
                return self.frags.see(linktype, number, data)
            if where is None:
                return None
            flow, seq, tcp_at, pay_at, pay_end = where
            hits = self.flows.get(flow)
            if hits is None or pay_at >= pay_end:
                return None
        edits, off = self._offset(hits, number, seq)
        if edits.untouched(off, off + pay_end - pay_at):
            return None
        return self._patch(data, edits, off, tcp_at, pay_at, pay_end)

    def _patch(self, data, edits, off, tcp_at, pay_at, pay_end):
        """The frame with its segment's edits applied (None: unchanged)."""
        old = data[pay_at:pay_end]
        new = edits.apply(off, old)
        if new is None:
            return None
        out = bytearray(data)
        out[pay_at:pay_end] = new
        c = _H.unpack_from(out, tcp_at + 16)[0]
        _H.pack_into(out, tcp_at + 16, moved(c, sum16(new) - sum16(old)))
        self.rewritten += 1
        return out

    def _reshaped(self, linktype: int, number: int, data):
        """A frame of a stream with length changes rewritten (None: as it
        was), or _OTHER for a frame of any other stream."""
        try:
            where = locate(linktype, data)
        except Fragment:
            return _OTHER
        hits = None if where is None else self.reshaper.flows.get(where[0])
        if hits is None:
            return _OTHER
        etype, ip_at = ip_header(linktype, data)
        new = self.reshaper.frame(number, data, hits, where, ip_at, etype == 0x0800)
        if new is not None:
            self.rewritten += 1
        return new


_OTHER = object()


def rewrite_capture(reader, rewriter: Rewriter, writer, *, comments: bool = False,
                    headers=None) -> int:
    """Every frame of ``reader`` (a fresh :class:`dicomwire.capture.CaptureReader`)
    to ``writer`` (pcapng or pcap, with the reader's interfaces added),
    rewritten by ``rewriter``; capture comments kept only with ``comments``.
    ``headers``: optionally, what rewrites each frame's headers after its
    payload (:class:`dicomwire.rewrite_hosts.HeaderMapper`). Returns the
    frames written."""
    n = 0
    write, rewrite, reshaper = writer.write, rewriter.frame, rewriter.reshaper
    write_frame = writer.write_frame
    frags = rewriter.frags
    if headers is not None:
        rewrite = _then_headers(rewrite, headers.frame)
        frags.headers = headers.frame

    def held(records):             # frames that waited for IP fragments, in order
        for number, ts, _lt, data, new, orig, iface in records:
            write(ts, data if new is None else new, iface=iface, orig_len=orig,
                  **({"comments": reader.comments.get(number, ())} if comments else {}))
        return len(records)

    for number, ts, linktype, data, orig, iface in reader:
        new = rewrite(linktype, number, data)
        if reshaper is not None and new is not None and reshaper.grown[0] == number:
            new, orig = _resized(new, data, orig, reshaper.grown[1])
        if frags.queue or new is HELD:
            n += held(frags.hold(number, ts, linktype, data, new, orig, iface))
            continue
        if comments:
            write(ts, data if new is None else new, iface=iface, orig_len=orig,
                  comments=reader.comments.get(number, ()))
        else:
            write_frame(ts, data if new is None else new, iface, orig)
        n += 1
    n += held(frags.finish())
    rewriter.rewritten += frags.rewritten
    return n


def _then_headers(payloads, headers):
    def rewrite(linktype, number, data):
        new = payloads(linktype, number, data)
        if new is HELD:
            return new
        out = headers(linktype, data if new is None else new)
        return new if out is None else out
    return rewrite


def _resized(new, data, orig: int, gained: int):
    """A frame whose segment gained ``gained`` bytes: its original length
    moves with it; a frame the capture cut (snap length) stays cut where it
    was."""
    if len(data) < orig and len(new) > len(data):
        new = new[:len(data)]
    return new, orig + gained
