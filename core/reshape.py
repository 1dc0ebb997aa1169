"""Length changes in a rewritten capture, protocol-agnostic: what
:mod:`dicomwire.rewrite` does when a replacement (``Edits.replace``) is
longer or shorter than the bytes it replaces.

A direction's length-changing replacements give a map of old stream
offsets to new ones (:class:`Resizes`): everything after a changed range
moves by the sum of the changes before it. Inside a changed range the new
bytes lie over the old ones byte for byte and the difference falls at its
end: bytes added go into the segment that carried the range's last byte,
bytes cut shorten the segments that carried the range's tail (a segment
left with nothing becomes a bare ACK). The map depends on stream offsets
only, so a retransmission or an out-of-order copy of a range is rewritten
exactly as the original was. Frames keep their number, order and time;
only the frame carrying a range's end grows, past the link's MTU when it
was already full (there is no other frame to put the bytes in; readers do
not check the MTU).

Per frame of a stream with length changes (:class:`Reshaper`): the payload
rebuilt, the sequence number moved by the map of its own direction, the
acknowledgment number and the SACK blocks (RFC 2018) by the map of the
other direction (both count that direction's stream bytes, RFC 9293 3.4),
the IPv4 total length or IPv6 payload length and the frame's original
length changed by what the segment gained, and the IPv4 header and TCP
checksums updated by the difference of everything they cover (RFC 1624,
over the whole segment when its length changed): right where they were
right, wrong by the same amount where the capturing host offloaded them.
"""

from __future__ import annotations

import bisect
import struct

from dicomwire.checksum import moved, sum16

MASK = 0xFFFFFFFF
ACK = 0x10
SACK = 5                         # TCP option kind (RFC 2018)
_H = struct.Struct("!H")
_I = struct.Struct("!I")


class LengthError(ValueError):
    """A rewritten segment does not fit its IP header's length field."""


class Resizes:
    """The length-changing replacements of one stream direction, sorted and
    apart: ``[(offset, old length, new bytes)]``; old offsets to new ones
    (:meth:`new_offset`) and back (:meth:`old_offset`)."""

    def __init__(self, items):
        self.starts, self.ends, self.new = [], [], []
        self.new_starts, self.new_ends = [], []
        shift = 0
        for start, old_len, new in items:
            self.starts.append(start)
            self.ends.append(start + old_len)
            self.new.append(new)
            self.new_starts.append(start + shift)
            self.new_ends.append(start + shift + len(new))
            shift += len(new) - old_len
        self.total = shift

    def new_offset(self, x: int) -> int:
        i = bisect.bisect_right(self.starts, x) - 1
        if i < 0:
            return x
        if x < self.ends[i]:                  # inside: byte for byte, the rest at the end
            return self.new_starts[i] + min(x - self.starts[i], len(self.new[i]))
        return self.new_ends[i] + (x - self.ends[i])

    def old_offset(self, y: int) -> int:
        """The old offset of new offset ``y`` (a range's new end maps to its
        old end; inside a range, byte for byte)."""
        i = bisect.bisect_right(self.new_starts, y) - 1
        if i < 0:
            return y
        if y >= self.new_ends[i]:
            return self.ends[i] + (y - self.new_ends[i])
        return self.starts[i] + (y - self.new_starts[i])

    def touches(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self.ends, start)
        return i < len(self.starts) and self.starts[i] < end


def rebuild(edits, off: int, payload):
    """The new bytes of the old stream range ``[off, off + len(payload))``:
    changed ranges from their new bytes, the rest through ``edits.apply``
    (same-length patches, blanks). None when nothing changed."""
    r = edits.resizes
    end = off + len(payload)
    if r is None or not r.touches(off, end):
        return edits.apply(off, payload)
    out = bytearray()
    i = bisect.bisect_right(r.ends, off)
    x = off
    while x < end:
        if i < len(r.starts) and r.starts[i] <= x:
            s, e, new = r.starts[i], r.ends[i], r.new[i]
            y = min(end, e)
            hi = len(new) if y == e else min(y - s, len(new))
            out += new[min(x - s, len(new)):hi]
            i += 1
        else:
            y = end if i == len(r.starts) else min(end, r.starts[i])
            piece = payload[x - off:y - off]
            done = edits.apply(x, piece)
            out += piece if done is None else done
        x = y
    return out


class Reshaper:
    """The frames of streams with length changes. ``flows``: flow (as
    :func:`dicomwire.rewrite_ip.locate` gives it) -> ``[(first frame, own,
    peer)]``, own and peer ``(key, base sequence number, Edits)`` of the
    frame's direction and of the other one (None: nothing to map)."""

    def __init__(self, streams, edits: dict):
        self.flows: dict = {}
        self.last: dict = {}            # key -> furthest offset seen (unwrapping)
        self.grown = (None, 0)          # (frame number, bytes its segment gained)
        for s in streams:
            es = [edits.get((s.id, d)) for d in (0, 1)]
            if not any(e is not None and e.resizes is not None for e in es):
                continue
            bases = [None if dr.next_seq is None else (dr.next_seq - dr.next_off) & MASK
                     for dr in s.dirs]
            for d in (0, 1):
                src, dst = (s.client, s.server) if d == 0 else (s.server, s.client)
                flow = src[0] + dst[0] + struct.pack("!HH", src[1], dst[1])
                own = ((s.id, d), bases[d], es[d]) \
                    if es[d] is not None and bases[d] is not None else None
                pe = es[1 - d]
                peer = ((s.id, 1 - d), bases[1 - d], pe) \
                    if pe is not None and pe.resizes is not None and \
                    bases[1 - d] is not None else None
                self.flows.setdefault(flow, []).append((s.first_frame, own, peer))
        for lst in self.flows.values():
            lst.sort(key=lambda h: h[0])

    def _offset(self, key, rel: int) -> int:
        last = self.last.get(key, 0)
        off = last + ((rel - last + (1 << 31)) & MASK) - (1 << 31)
        if off > last:
            self.last[key] = off
        return off

    def _moved(self, side, value: int) -> int:
        """A sequence number of ``side``'s space, moved by its map."""
        key, base, e = side
        off = self._offset(key, (value - base) & MASK)
        return (value + e.resizes.new_offset(off) - off) & MASK

    def frame(self, number: int, data, hits, where, ip_at: int, v4: bool):
        """The frame rewritten, or None when nothing in it changed.
        ``where``: ``(flow, seq, tcp_at, pay_at, pay_end)`` from ``locate``;
        ``ip_at``: where its IP header begins."""
        hit = hits[0]
        for h in hits[1:]:                 # port reuse: the last stream begun by then
            if h[0] <= number:
                hit = h
        _first, own, peer = hit
        _flow, seq, tcp_at, pay_at, pay_end = where
        # The segment's length on the wire: its IP length (beyond the captured
        # bytes when the snap length cut it), or to the frame's end when the
        # length is 0 (TSO), as dicomwire.link.ip_end reads it.
        if v4:
            total = _H.unpack_from(data, ip_at + 2)[0]
            full = ip_at + total - pay_at if total else pay_end - pay_at
        else:
            plen = _H.unpack_from(data, ip_at + 4)[0]
            full = ip_at + 40 + plen - pay_at if plen else pay_end - pay_at
        old = data[pay_at:pay_end]
        new, new_seq, gained = None, seq, 0
        if own is not None:
            key, base, e = own
            off = self._offset(key, (seq - base) & MASK)
            r = e.resizes
            if r is not None:
                at = r.new_offset(off)
                new_seq = (seq + at - off) & MASK
                gained = r.new_offset(off + full) - at - full
            new = rebuild(e, off, old)
        head = bytearray(data[tcp_at:pay_at])
        _I.pack_into(head, 4, new_seq)
        if peer is not None:
            if head[13] & ACK:
                _I.pack_into(head, 8, self._moved(peer, _I.unpack_from(head, 8)[0]))
            self._sack(head, peer)
        if new is None and gained == 0 and head == data[tcp_at:pay_at]:
            return None
        if new is None:
            new = old
        return self._build(number, data, ip_at, v4, tcp_at, pay_at, pay_end, head, old, new,
                           gained)

    def _sack(self, head: bytearray, peer):
        pos = 20
        while pos < len(head):
            kind = head[pos]
            if kind == 0:
                return
            if kind == 1:
                pos += 1
                continue
            if pos + 1 >= len(head) or head[pos + 1] < 2:
                return
            size = head[pos + 1]
            if kind == SACK:
                for at in range(pos + 2, min(pos + size, len(head)) - 3, 4):
                    _I.pack_into(head, at, self._moved(peer, _I.unpack_from(head, at)[0]))
            pos += size

    def _build(self, number, data, ip_at, v4, tcp_at, pay_at, pay_end, head, old, new,
               gained):
        out = bytearray(data[:tcp_at]) + head + new + data[pay_end:]
        if gained:
            at = ip_at + (2 if v4 else 4)
            size = _H.unpack_from(out, at)[0]
            if size:
                if size + gained > 0xFFFF or size + gained < 0:
                    raise LengthError(f"frame {number}: the rewritten segment needs an IP "
                                      f"length of {size + gained} bytes (at most 65535)")
                _H.pack_into(out, at, size + gained)
                if v4:
                    c = _H.unpack_from(out, ip_at + 10)[0]
                    _H.pack_into(out, ip_at + 10, moved(c, gained))
        # TCP checksum: the header (its own field left as it was: it cancels
        # out), the payload and the pseudo header's TCP length (RFC 9293 3.1).
        c = _H.unpack_from(head, 16)[0]
        before = sum16(data[tcp_at:pay_at]) + sum16(old)
        after = sum16(head) + sum16(new) + gained
        _H.pack_into(out, tcp_at + 16, moved(c, after - before))
        self.grown = (number, gained)
        return out
