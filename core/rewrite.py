"""Rewriting TCP payloads in a capture, by stream offset: the engine's half of
a capture rewriter (a pack decides what to change, this module changes it).

A pack that read a capture in one pass (:func:`dicomwire.pipeline.run`)
describes, per stream direction, what its bytes become: an :class:`Edits`
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

from dicomwire.applied import Applied
from dicomwire.reshape import Reshaper, Resizes
from dicomwire.rewrite_ip import (HELD, RESHAPED, Fragment, Fragments, ip_header,  # noqa: F401
                                  locate)

MASK = 0xFFFFFFFF
_H = struct.Struct("!H")


class Edits(Applied):
    """What one stream direction's bytes become. ``put`` and ``blank`` add
    patches (later ones must not overlap earlier ones: the first wins);
    ``replace`` a replacement of any length (it wins over patches inside
    its range); ``keep`` marks bytes a ``strict`` direction lets through
    unchanged."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self._keep: list[list[int]] = []       # merged [start, end) while in order
        self._patches: list[tuple] = []        # (offset, length, bytes or None: zeros)
        self._resizes: list[tuple] = []        # (offset, old length, new bytes)
        self._over: list[tuple] = []           # blanks over every patch: (offset, end)
        self.resizes: Resizes | None = None    # set by freeze(), when there are any
        self.frozen = False

    def keep(self, start: int, end: int):
        if end <= start:
            return
        k = self._keep
        if k and k[-1][0] <= start <= k[-1][1]:
            if end > k[-1][1]:
                k[-1][1] = end
        else:
            k.append([start, end])

    def put(self, offset: int, data: bytes):
        if data:
            self._patches.append((offset, len(data), bytes(data)))

    def blank(self, offset: int, length: int):
        if length > 0:
            self._patches.append((offset, length, None))

    def blank_over(self, offset: int, length: int):
        """A blank that wins over every patch in its range (what overlaps it
        is cut around it), for bytes no patch may vouch for: retransmitted
        bytes that differ from the first copy, blanked in every copy (which
        copy a receiver keeps is its own: RFC 9293 3.10.7.4 trims to new
        bytes, stacks differ on overlaps)."""
        if length > 0:
            self._over.append((offset, offset + length))

    def replace(self, offset: int, old_len: int, data: bytes):
        """``old_len`` bytes at ``offset`` become ``data``, of any length:
        what follows moves by the difference (:mod:`dicomwire.reshape`)."""
        if old_len < 1:
            raise ValueError("a replacement covers at least one old byte")
        if len(data) == old_len:
            self.put(offset, data)
        else:
            self._resizes.append((offset, old_len, bytes(data)))

    def freeze(self):
        """Sort and merge (called once, before the rewrite)."""
        self._keep = merged = _merge(self._keep)
        self.keep_starts = [s for s, _ in merged]
        patches, end = [], -1
        for p in sorted(self._patches, key=lambda p: p[0]):
            if p[0] >= end:                     # overlapping patches: the first wins
                patches.append(p)
                end = p[0] + p[1]
        if self._over:
            patches = _carve(patches, _merge(self._over))
        self._patches = patches
        self._index(patches)
        resizes, end = [], -1
        for r in sorted(self._resizes, key=lambda r: r[0]):
            if r[0] >= end:                     # overlapping ones: the first wins
                resizes.append(r)
                end = r[0] + r[1]
        self.resizes = Resizes(resizes) if resizes else None
        self._busy(merged, patches)
        self.frozen = True

    def _busy(self, keep, patches):
        """Where anything happens (patches; in a strict direction, what is
        not kept), merged: :meth:`untouched` answers with one bisection."""
        spans = [(p[0], p[0] + p[1]) for p in patches]
        if self.strict:
            prev = 0
            for s, e in keep:
                if s > prev:
                    spans.append((prev, s))
                prev = e
            spans.append((prev, 1 << 62))
        merged = _merge(spans)
        self._busy_starts = [s for s, _e in merged]
        self._busy_ends = [e for _s, e in merged]

    def untouched(self, off: int, end: int) -> bool:
        """Nothing changes in ``[off, end)``: most segments of a long
        transfer (its pixel data), told apart without copying them."""
        i = bisect.bisect_right(self._busy_ends, off)
        return i == len(self._busy_ends) or self._busy_starts[i] >= end

    def apply(self, off: int, payload) -> bytearray | None:
        """The payload at stream offset ``off`` rewritten, or None if unchanged."""
        n = len(payload)
        end = off + n
        out = None
        if self.strict:
            i = bisect.bisect_right(self.keep_starts, off) - 1
            k = self._keep
            if not (i >= 0 and k[i][1] >= end):
                out = bytearray(n)              # zeros, then the kept ranges copied back
                i = max(i, 0)
                while i < len(k) and k[i][0] < end:
                    s, e = max(k[i][0], off), min(k[i][1], end)
                    if s < e:
                        out[s - off:e - off] = payload[s - off:e - off]
                    i += 1
        ps = self.patch_starts
        j = bisect.bisect_right(ps, off) - 1
        if j < 0 or self._patches[j][0] + self._patches[j][1] <= off:
            j += 1
        patches = self._patches
        while j < len(patches) and patches[j][0] < end:
            p_off, p_len, data = patches[j]
            s, e = max(p_off, off), min(p_off + p_len, end)
            if out is None:
                out = bytearray(payload)
            out[s - off:e - off] = bytes(e - s) if data is None else data[s - p_off:e - p_off]
            if not self._applied[j] and (e - s == p_len or self._piece(j, s, e)):
                self._applied[j] = 1
            j += 1
        if out is not None and out == payload:
            return None
        return out


def _sum16(b) -> int:
    """The one's complement sum of ``b`` as 16-bit words (odd length: a zero
    pad byte), modulo 0xFFFF: 2**16 is 1 modulo 0xFFFF (RFC 1071)."""
    if len(b) & 1:
        b = bytes(b) + b"\0"
    return int.from_bytes(b, "big") % 0xFFFF


def _merge(spans):
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def _carve(patches, over):
    """Sorted, apart ``patches`` with the merged ranges ``over`` cut out of
    them and laid as blanks instead."""
    starts = [s for s, _e in over]
    out = [(s, e - s, None) for s, e in over]
    for off, n, data in patches:
        i = max(bisect.bisect_right(starts, off) - 1, 0)
        at, end = off, off + n
        while at < end and i < len(over):
            s, e = over[i]
            if e <= at:
                i += 1
                continue
            if s >= end:
                break
            if s > at:
                out.append((at, s - at, None if data is None else data[at - off:s - off]))
            at = max(at, e)
            i += 1
        if at < end:
            out.append((at, end - at, None if data is None else data[at - off:]))
    out.sort(key=lambda p: p[0])
    return out


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
        if hits is None:
            return None
        hit = hits[0]
        for h in hits[1:]:
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
        hit = hits[0]
        for h in hits[1:]:               # port reuse: the last stream begun by then
            if h[0] <= number:
                hit = h
        _first, key, base = hit
        rel = (seq - base) & MASK
        last = self.last_off.get(key, 0)
        off = last + ((rel - last + (1 << 31)) & MASK) - (1 << 31)
        self.last_off[key] = max(last, off)
        edits = self.edits[key]
        if edits.untouched(off, off + pay_end - pay_at):
            return None
        old = data[pay_at:pay_end]
        new = edits.apply(off, old)
        if new is None:
            return None
        out = bytearray(data)
        out[pay_at:pay_end] = new
        c = _H.unpack_from(out, tcp_at + 16)[0]
        total = ((~c & 0xFFFF) - _sum16(old) + _sum16(new)) % 0xFFFF
        _H.pack_into(out, tcp_at + 16, ~total & 0xFFFF)
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
            write(ts, data if new is None else new, iface=iface, orig_len=orig)
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
