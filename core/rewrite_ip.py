"""The IP layer of a rewrite (:mod:`dicomwire.rewrite`), protocol-agnostic:
where a frame's TCP segment lies (:func:`locate`), read as the first pass
reads it (:mod:`dicomwire.link`: lengths by :func:`dicomwire.link.ip_end`,
IPv4 options and IPv6 extension headers walked), and the frames of IP
fragments (:class:`Fragments`).

The first pass reassembles fragmented datagrams (RFC 791 3.2, RFC 8200
4.5) and plans edits inside them like inside any segment; so the rewrite
reassembles them too, the same way (pieces by offset, a later piece at the
same offset over an earlier one, sorted by offset), applies the edits to the
whole datagram, updates the TCP checksum (in the first fragment) by the
difference over the whole payload (RFC 1624; the TCP checksum covers the
whole segment, RFC 9293 3.1) and lays each fragment's bytes back from the
rewritten datagram: every copy of a byte says the same. An IPv4 header
checksum covers the header only (RFC 791 3.1): it stays. Frames keep their
order: from the first fragment of a datagram that may belong to a rewritten
stream until the datagram is complete, frames wait (bounded:
:data:`MAX_HELD_FRAMES`, :data:`MAX_HELD_BYTES`). What cannot be rewritten
(a datagram never completed, the bound reached, a TCP header missing, a
stream whose lengths change) fails closed: the payload of each fragment that
may belong to a rewritten stream is blanked (zeros; its TCP header kept when
known) and counted in :attr:`Fragments.blanked`. A fragment may belong to a
rewritten stream when its datagram's first fragment names one (addresses,
ports), or, its first fragment unseen, when its addresses are those of one.
"""

from __future__ import annotations

import struct
from collections import Counter, deque

from dicomwire.link import ip_end
from dicomwire.checksum import moved, sum16

_TCP = struct.Struct("!HHIIBB")              # ports, seq, ack, data offset, flags
_H = struct.Struct("!H")
VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
IPV6_EXT = frozenset((0, 43, 60, 51, 135, 139, 140))


def locate(linktype: int, data):
    """Where a frame's TCP segment lies: ``(flow, seq, tcp_at, pay_at,
    pay_end)`` with ``flow`` as :mod:`dicomwire.link` builds it, or None
    (not TCP over IP, an IP fragment, too short). IP fragments are not
    followed: :attr:`Rewriter.fragments` counts them."""
    try:
        etype, off = ip_header(linktype, data)
        if etype == 0x0800:
            return _ipv4(data, off)
        if etype == 0x86DD:
            return _ipv6(data, off)
    except (IndexError, struct.error):
        pass
    return None


def ip_header(linktype: int, data) -> tuple:
    """``(ethertype, offset)`` of a frame's network header, ``(None, 0)``
    for a link type not read here. IndexError or struct.error when short."""
    if linktype == 1:
        etype, off = (data[12] << 8) | data[13], 14
        while etype in VLAN_TYPES:
            etype, off = _H.unpack_from(data, off + 2)[0], off + 4
        return etype, off
    if linktype == 113:
        return _H.unpack_from(data, 14)[0], 16
    if linktype == 276:
        return _H.unpack_from(data, 0)[0], 20
    if linktype in (0, 108):
        fam = int.from_bytes(data[:4], "little")
        if fam > 0xFFFF:
            fam = int.from_bytes(data[:4], "big")
        return (0x0800 if fam == 2 else 0x86DD), 4
    if linktype in (101, 12, 14, 228, 229):
        return (0x0800 if data[0] >> 4 == 4 else 0x86DD), 0
    return None, 0


class Fragment(Exception):
    """The frame holds an IP fragment."""


def _ipv4(data, off):
    if data[off + 9] != 6:
        return None
    ihl = (data[off] & 0x0F) * 4
    total = _H.unpack_from(data, off + 2)[0]
    if _H.unpack_from(data, off + 6)[0] & 0x3FFF:
        raise Fragment
    end = ip_end(off, total, len(data))
    return _tcp(data, off + ihl, end, bytes(data[off + 12:off + 20]))


def _ipv6(data, off):
    plen = _H.unpack_from(data, off + 4)[0]
    nxt, at = data[off + 6], off + 40
    end = ip_end(at, plen, len(data))
    while nxt != 6:
        if nxt == 44:
            raise Fragment
        if nxt not in IPV6_EXT:
            return None
        hlen = (data[at + 1] + 2) * 4 if nxt == 51 else (data[at + 1] + 1) * 8
        nxt, at = data[at], at + hlen
    return _tcp(data, at, end, bytes(data[off + 8:off + 40]))


def _tcp(data, at, end, addrs):
    sport, dport, seq, _ack, doff, _flags = _TCP.unpack_from(data, at)
    pay = at + (doff >> 4) * 4
    if pay > end:
        return None
    return addrs + bytes(data[at:at + 4]), seq, at, pay, end


# -- IP fragments ----------------------------------------------------------------------

MAX_HELD_FRAMES = 4096          # frames waiting for a datagram to complete
MAX_HELD_BYTES = 32 << 20
MAX_FAILED = 4096               # datagrams failed, remembered for their later fragments
HELD = object()                 # Rewriter.frame's answer for a frame that waits
RESHAPED = object()             # Fragments.target's answer for a stream whose lengths change


def fragment_of(linktype: int, data):
    """An IP fragment's ``(key, offset, more, body_at, body_end, nxt, v4)``
    (``key``: addresses, identification and version, as dicomwire.link keys
    a datagram; ``nxt``: the protocol of the fragmentable part), or None: not
    a fragment that may carry TCP, or too short."""
    try:
        etype, off = ip_header(linktype, data)
        if etype == 0x0800:
            frag = _H.unpack_from(data, off + 6)[0]
            if not frag & 0x3FFF or data[off + 9] != 6:
                return None
            ihl = (data[off] & 0x0F) * 4
            end = ip_end(off, _H.unpack_from(data, off + 2)[0], len(data))
            key = (bytes(data[off + 12:off + 16]), bytes(data[off + 16:off + 20]),
                   _H.unpack_from(data, off + 4)[0], 4)
            return key, (frag & 0x1FFF) * 8, bool(frag & 0x2000), off + ihl, end, 6, True
        if etype != 0x86DD:
            return None
        end = ip_end(off + 40, _H.unpack_from(data, off + 4)[0], len(data))
        nxt, at = data[off + 6], off + 40
        while nxt != 44:
            if nxt not in IPV6_EXT:
                return None
            hlen = (data[at + 1] + 2) * 4 if nxt == 51 else (data[at + 1] + 1) * 8
            nxt, at = data[at], at + hlen
        fo, ident = struct.unpack_from("!HI", data, at + 2)
        nxt = data[at]
        if nxt != 6 and nxt not in IPV6_EXT:
            return None
        key = (bytes(data[off + 8:off + 24]), bytes(data[off + 24:off + 40]), ident, 6)
        return key, fo & 0xFFF8, bool(fo & 1), at + 8, end, nxt, False
    except (IndexError, struct.error):
        return None


class _Datagram:
    __slots__ = ("pieces", "total", "records", "nxt")

    def __init__(self, nxt):
        self.pieces: dict = {}          # offset -> bytes, as dicomwire.link keeps them
        self.total = None               # known from the last fragment
        self.records: list = []         # [record, body_at, body_end, offset]
        self.nxt = nxt


def _tcp_at(whole: bytes, nxt: int) -> int | None:
    """Where the TCP header begins in a datagram's fragmentable part (IPv6:
    extension headers after the fragment header walked, as dicomwire.link
    does), None when it is not there whole."""
    at = 0
    while nxt != 6:
        if nxt not in IPV6_EXT or at + 2 > len(whole):
            return None
        hlen = (whole[at + 1] + 2) * 4 if nxt == 51 else (whole[at + 1] + 1) * 8
        nxt, at = whole[at], at + hlen
    return at if at + 20 <= len(whole) and (whole[at + 12] >> 4) >= 5 else None



class Fragments:
    """The frames of IP fragments in a rewrite, and every frame behind one
    that waits. ``target(flow, number, seq)``: ``(Edits, stream offset)`` of
    a rewritten stream's segment, :data:`RESHAPED`, or None (not rewritten);
    ``pairs``: the address pairs (source + destination) of rewritten
    streams. ``headers``: what rewrites a frame's headers after its payload
    (None: nothing)."""

    def __init__(self, target, pairs):
        self.target, self.pairs = target, pairs
        self.headers = None
        self.queue: deque = deque()     # [number, ts, linktype, data, new, orig, iface]
        self.held_bytes = 0
        self.pending: dict = {}         # key -> _Datagram
        self.failed: dict = {}          # key -> where blanks begin in the datagram (or 0)
        self.datagrams = self.rewritten = 0
        self.blanked: Counter = Counter()   # why -> fragments blanked
        self._last = None

    def see(self, linktype: int, number: int, data):
        """A frame whose IP packet is a fragment (from ``Rewriter.frame``):
        None (as it is), a frame blanked at once, or :data:`HELD`."""
        f = fragment_of(linktype, data)
        if f is None or f[0][0] + f[0][1] not in self.pairs:
            return None                 # not a fragment a rewritten stream may own
        key, off, more, body_at, body_end, nxt, _v4 = f
        if key in self.failed:          # a datagram already failed: its late fragments too
            return self._blank_frame(data, body_at, body_end, off, self.failed[key],
                                     "a fragment of a datagram already blanked")
        dg = self.pending.get(key)
        if dg is None:
            dg = self.pending[key] = _Datagram(nxt)
        if off + body_end - body_at > 65535 + 40:
            dg.total = -1               # beyond any datagram (dicomwire.link drops it)
        dg.pieces[off] = bytes(data[body_at:body_end])
        if not more and dg.total != -1:
            dg.total = off + body_end - body_at
        self._last = (key, dg, body_at, body_end, off)
        return HELD

    def hold(self, number, ts, linktype, data, new, orig, iface):
        """Queue a frame (the one :meth:`see` held, or any other while some
        wait); the frames ready to write, in order."""
        rec = [number, ts, linktype, data, new, orig, iface]
        self.queue.append(rec)
        self.held_bytes += len(data)
        if new is HELD:
            key, dg, body_at, body_end, off = self._last
            dg.records.append((rec, body_at, body_end, off))
            whole = _whole(dg)
            if whole is not None:
                del self.pending[key]
                self._complete(key, dg, whole)
            elif dg.total == -1:
                del self.pending[key]
                self._fail(key, dg, "a datagram beyond the maximum size")
        if len(self.queue) > MAX_HELD_FRAMES or self.held_bytes > MAX_HELD_BYTES:
            self._fail_all("its fragments lay too far apart (more frames between them than "
                           "the rewrite holds)")
        return self._ready()

    def finish(self):
        """End of the capture: datagrams never completed fail; every frame left."""
        self._fail_all("a datagram never completed by its fragments")
        return self._ready()

    def _ready(self):
        q, out = self.queue, []
        while q and q[0][4] is not HELD:
            rec = q.popleft()
            self.held_bytes -= len(rec[3])
            out.append(rec)
        return out

    def _fail_all(self, why):
        for key, dg in list(self.pending.items()):
            del self.pending[key]
            self._fail(key, dg, why)

    def _complete(self, key, dg, whole):
        tcp_at = _tcp_at(whole, dg.nxt)
        if tcp_at is None:
            return self._fail(key, dg, "a datagram whose TCP header is not whole")
        flow = key[0] + key[1] + whole[tcp_at:tcp_at + 4]
        seq = int.from_bytes(whole[tcp_at + 4:tcp_at + 8], "big")
        pay_at = tcp_at + (whole[tcp_at + 12] >> 4) * 4
        hit = self.target(flow, dg.records[0][0][0], seq)
        if hit is None:
            return self._pass(dg)                   # not a rewritten stream: as it is
        old = whole[pay_at:]
        if hit is RESHAPED:                         # lengths change there: not followed
            new, why = bytes(len(old)), "a datagram of a stream whose lengths change"
        else:
            new, why = hit[0].apply(hit[1], old), None
        if new is not None:
            out = bytearray(whole)
            out[pay_at:] = new
            c = _H.unpack_from(out, tcp_at + 16)[0]     # RFC 1624 eqn. 3, whole payload
            _H.pack_into(out, tcp_at + 16, moved(c, sum16(new) - sum16(old)))
            whole = bytes(out)
            self.datagrams += why is None
        if why is not None:
            self.blanked[why] += len(dg.records)
        self._lay(dg, whole)

    def _lay(self, dg, whole):
        """Each fragment's bytes from the (rewritten) datagram."""
        for rec, body_at, body_end, off in dg.records:
            data = rec[3]
            piece = whole[off:off + body_end - body_at]
            new = None
            if data[body_at:body_at + len(piece)] != piece:
                new = bytearray(data)
                new[body_at:body_at + len(piece)] = piece
                self.rewritten += 1
            self._done(rec, new)

    def _pass(self, dg):
        for rec, _at, _end, _off in dg.records:
            self._done(rec, None)

    def _fail(self, key, dg, why):
        """Fail closed: the payloads blanked, TCP header kept when known;
        not blanked when the first fragment names a stream not rewritten."""
        first = dg.pieces.get(0)
        start = None
        if first is not None:
            tcp_at = _tcp_at(first, dg.nxt)
            if tcp_at is not None:
                flow = key[0] + key[1] + first[tcp_at:tcp_at + 4]
                seq = int.from_bytes(first[tcp_at + 4:tcp_at + 8], "big")
                if self.target(flow, dg.records[0][0][0] if dg.records else 0, seq) is None:
                    return self._pass(dg)
                start = tcp_at + (first[tcp_at + 12] >> 4) * 4
        if len(self.failed) >= MAX_FAILED:
            self.failed.pop(next(iter(self.failed)))
        self.failed[key] = start
        for rec, body_at, body_end, off in dg.records:
            self._done(rec, self._blank_frame(rec[3], body_at, body_end, off, start, why))

    def _blank_frame(self, data, body_at, body_end, off, start, why):
        """A fragment's payload zeroed from datagram offset ``start`` (None:
        all of it)."""
        at = body_at if start is None else body_at + max(0, start - off)
        self.blanked[why] += 1
        if at >= body_end or not any(data[at:body_end]):
            return None
        out = bytearray(data)
        out[at:body_end] = bytes(body_end - at)
        self.rewritten += 1
        return out

    def _done(self, rec, new):
        if self.headers is not None:
            h = self.headers(rec[2], rec[3] if new is None else new)
            new = new if h is None else h
        rec[4] = new


def _as_is(dg) -> bytes:
    """A datagram's bytes as its fragments have them (holes as zeros)."""
    size = max((o + len(p) for o, p in dg.pieces.items()), default=0)
    buf = bytearray(size)
    for o in sorted(dg.pieces):
        buf[o:o + len(dg.pieces[o])] = dg.pieces[o]
    return bytes(buf)


def _whole(dg):
    """The datagram once its pieces cover ``[0, total)`` (as dicomwire.link)."""
    if dg.total is None or dg.total < 0:
        return None
    have = 0
    for o in sorted(dg.pieces):
        if o > have:
            return None
        have = max(have, o + len(dg.pieces[o]))
    if have < dg.total:
        return None
    return _as_is(dg)[:dg.total]
