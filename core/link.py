"""Link, IP and TCP decoding: frame bytes -> TCP segment, or None.

Hot path: one call per frame, ``struct`` only, no objects but the result
tuple. A segment is the tuple

    (flow, seq, ack, flags, payload, missing)

with ``flow`` the bytes ``src addr + dst addr + src port + dst port`` (12
bytes for IPv4, 36 for IPv6: in IPv4 the wire already has them in that order,
so the fast path takes one slice; see :func:`split_flow`), ``flags`` the TCP
flags (NS in bit 8, and bit 9 set when the advertised window is zero), ``payload`` the TCP payload as bytes (Ethernet padding
removed), and ``missing`` the payload bytes that were on the wire but not
captured (snaplen truncation): the reassembler turns them into a gap.

Link types (https://www.tcpdump.org/linktypes.html): Ethernet (1) with
802.1Q / 802.1ad / QinQ tags, Linux SLL (113) and SLL2 (276), BSD NULL (0)
and LOOP (108) with the address family in either byte order, raw IP (101,
12, 14), IPv4 (228), IPv6 (229). IPv4 options and IPv6 extension headers are
walked; IPv4 and IPv6 fragments are reassembled (bounded), everything that is
not TCP is dropped after the fewest possible byte reads.
"""

from __future__ import annotations

import struct

from dicomwire import headers

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
AF_INET = 2
AF_INET6 = frozenset((10, 24, 28, 30))   # Linux, NetBSD/OpenBSD/BSDi, FreeBSD, Darwin
IPPROTO_TCP = 6
IPV6_EXT = frozenset((0, 43, 60, 51, 135, 139, 140))  # walked, 44 (fragment) apart

_TCP = headers.TCP_HEAD               # seq, ack, data offset, flags, window
_IP4 = headers.IPV4_HEAD               # the IPv4 header up to the protocol
_H = struct.Struct("!H")

# What a link decode function raises on a frame shorter than its headers.
SHORT = (struct.error, IndexError)

# Fragment reassembly bounds: datagrams waiting, bytes per datagram.
MAX_FRAG_DATAGRAMS = 1024
MAX_DATAGRAM = 65535 + 40


class LinkStats:
    __slots__ = ("non_ip", "non_tcp", "malformed", "fragments",
                 "reassembled", "frag_dropped", "unsupported_link", "truncated")

    def __init__(self):
        for k in self.__slots__:
            setattr(self, k, 0)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.__slots__}


class LinkDecoder:
    """Decode frames of any supported link type into TCP segments.

    Stateful only for IP fragment reassembly. ``malformed`` collects
    ``(frame number, message)`` for frames that claim to be IP/TCP but are
    broken, so callers can report them.
    """

    def __init__(self):
        self.stats = LinkStats()
        self.malformed: list[tuple[int, str]] = []
        self.frame = 0                          # set by the caller for reports
        self._frags: dict = {}
        self._by_link = {
            1: self._ethernet, 113: self._sll, 276: self._sll2,
            0: self._null, 108: self._null,
            101: self._ip, 12: self._ip, 14: self._ip, 228: self._ip, 229: self._ip,
        }
        self._unsupported: set[int] = set()

    def decode(self, linktype: int, data: bytes):
        """Return the TCP segment in this frame, or None."""
        try:
            return self.decoder(linktype)(data)
        except SHORT:
            self.short()
            return None

    def decoder(self, linktype: int):
        """The decode function for one link type: ``f(data) -> segment or None``.
        The pipeline looks it up once per link type change, not per frame,
        and catches :data:`SHORT` around it (a frame too short for the
        headers it announces), calling :meth:`short`."""
        f = self._by_link.get(linktype)
        if f is None:
            return self._unsupported_link(linktype)
        return f

    def short(self, cut: bool = False):
        """A frame too short for the headers it announces: ``cut`` by the
        snaplen (counted as truncated), else malformed."""
        if cut:
            self.stats.truncated += 1
        else:
            self._bad("frame too short for its headers")

    def _unsupported_link(self, linktype):
        if linktype not in self._unsupported:
            self._unsupported.add(linktype)
            self._bad(f"link type {linktype} is not supported; its frames are skipped")

        def skip(data):
            self.stats.unsupported_link += 1
        return skip

    # -- link layers: find the network protocol and its offset --

    def _ethernet(self, data):
        # (The bulk of a capture, plain in-order Ethernet/IPv4/TCP segments,
        # does not come here: dicomwire.fastpath takes it.)
        etype = (data[12] << 8) | data[13]
        off = 14
        while etype in VLAN_TYPES:
            etype = _H.unpack_from(data, off + 2)[0]
            off += 4
        return self._by_ethertype(etype, data, off)

    def _sll(self, data):
        return self._by_ethertype(_H.unpack_from(data, 14)[0], data, 16)

    def _sll2(self, data):
        return self._by_ethertype(_H.unpack_from(data, 0)[0], data, 20)

    def _by_ethertype(self, etype, data, off):
        if etype == ETH_IPV4:
            return self._ipv4(data, off)
        if etype == ETH_IPV6:
            return self._ipv6(data, off)
        self.stats.non_ip += 1
        return None

    def _null(self, data):
        # The family is in the capturing host's byte order: try both.
        fam = int.from_bytes(data[:4], "little")
        if fam > 0xFFFF:
            fam = int.from_bytes(data[:4], "big")
        if fam == AF_INET:
            return self._ipv4(data, 4)
        if fam in AF_INET6:
            return self._ipv6(data, 4)
        self.stats.non_ip += 1
        return None

    def _ip(self, data):
        v = data[0] >> 4
        if v == 4:
            return self._ipv4(data, 0)
        if v == 6:
            return self._ipv6(data, 0)
        self.stats.non_ip += 1
        return None

    # -- network layer --

    def _ipv4(self, data, off):
        vihl, _tos, total, ident, frag, _ttl, proto = _IP4.unpack_from(data, off)
        if proto != IPPROTO_TCP:
            self.stats.non_tcp += 1
            return None
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20:
            self._bad(f"bad IPv4 header (version/IHL 0x{vihl:02x})")
            return None
        src = data[off + 12:off + 16]
        dst = data[off + 16:off + 20]
        avail = len(data) - off
        if total == 0:                 # TSO on the capturing host: length unset (ip_end)
            total = avail
        elif total < ihl:
            self._bad(f"IPv4 total length {total} shorter than its header")
            return None
        if frag & 0x3FFF:              # MF set or non-zero offset: a fragment
            body = data[off + ihl:off + min(total, avail)]
            if total > avail:
                self._bad("truncated IPv4 fragment cannot be reassembled")
                return None
            whole = self._fragment((src, dst, ident, 4), (frag & 0x1FFF) * 8,
                                   bool(frag & 0x2000), body)
            if whole is None:
                return None
            return self._tcp(whole, 0, len(whole), 0, src, dst)
        end = off + total
        missing = 0
        if end > len(data):
            missing = end - len(data)
            end = len(data)
        return self._tcp(data, off + ihl, end, missing, src, dst)

    def _ipv6(self, data, off):
        plen = _H.unpack_from(data, off + 4)[0]
        nxt = data[off + 6]
        src = data[off + 8:off + 24]
        dst = data[off + 24:off + 40]
        at = off + 40
        end = at + plen if plen else len(data)   # 0: jumbogram / TSO (as ip_end)
        frag = None
        while nxt != IPPROTO_TCP:
            if nxt in IPV6_EXT:
                hlen = (data[at + 1] + 2) * 4 if nxt == 51 else (data[at + 1] + 1) * 8
                nxt = data[at]
                at += hlen
            elif nxt == 44:                       # fragment header
                fo, ident = struct.unpack_from("!HI", data, at + 2)
                frag = (fo & 0xFFF8, bool(fo & 1), ident)
                nxt = data[at]
                at += 8
                if nxt in IPV6_EXT:
                    # Fix: headers after the fragment header (AH, final
                    # destination options: RFC 8200 4.1) are part of the
                    # fragmentable part, plain data in later fragments:
                    # reassemble first, walk them after (below).
                    break
            else:
                self.stats.non_tcp += 1
                return None
            if at > len(data):
                self._bad("IPv6 extension headers overrun the frame")
                return None
        if frag is not None:
            if end > len(data):
                self._bad("truncated IPv6 fragment cannot be reassembled")
                return None
            whole = self._fragment((src, dst, frag[2], 6), frag[0], frag[1], data[at:end])
            if whole is None:
                return None
            at = 0
            while nxt in IPV6_EXT:                # fix: see the fragment header above
                hlen = (whole[at + 1] + 2) * 4 if nxt == 51 else (whole[at + 1] + 1) * 8
                nxt = whole[at]
                at += hlen
            if nxt != IPPROTO_TCP:
                self.stats.non_tcp += 1
                return None
            return self._tcp(whole, at, len(whole), 0, src, dst)
        missing = 0
        if end > len(data):
            missing = end - len(data)
            end = len(data)
        return self._tcp(data, at, end, missing, src, dst)

    # -- transport --

    def _tcp(self, data, at, end, missing, src, dst):
        seq, ack, doff, flags, win = _TCP.unpack_from(data, at)
        hlen = (doff >> 4) * 4
        if hlen < 20:
            self._bad(f"bad TCP data offset {hlen}")
            return None
        if at + hlen > end:
            if missing:                # headers cut by the snaplen: nothing usable
                self.stats.truncated += 1
                return None
            self._bad("TCP header overruns the IP payload")
            return None
        if missing:
            self.stats.truncated += 1
        return (bytes(src) + bytes(dst) + bytes(data[at:at + 4]), seq, ack,
                flags | (doff & 1) << 8 | (not win) << 9, bytes(data[at + hlen:end]), missing)

    def _fragment(self, key, offset, more, body):
        """Collect one fragment; return the whole datagram once complete."""
        self.stats.fragments += 1
        frags = self._frags
        entry = frags.get(key)
        if entry is None:
            if len(frags) >= MAX_FRAG_DATAGRAMS:
                # Drop the oldest incomplete datagram (dicts keep insertion order).
                frags.pop(next(iter(frags)))
                self.stats.frag_dropped += 1
                self._bad("too many incomplete IP datagrams; oldest dropped")
            entry = frags[key] = [{}, None]
        pieces, total = entry
        if offset + len(body) > MAX_DATAGRAM:
            del frags[key]
            self.stats.frag_dropped += 1
            self._bad("IP fragment beyond the maximum datagram size")
            return None
        pieces[offset] = bytes(body)
        if not more:
            entry[1] = total = offset + len(body)
        if total is None:
            return None
        # Complete when the pieces cover [0, total) without holes.
        have = 0
        for o in sorted(pieces):
            if o > have:
                return None
            have = max(have, o + len(pieces[o]))
        if have < total:
            return None
        del frags[key]
        buf = bytearray(total)
        for o in sorted(pieces):
            p = pieces[o]
            buf[o:o + len(p)] = p
        self.stats.reassembled += 1
        return bytes(buf[:total])

    def _bad(self, msg):
        self.stats.malformed += 1
        if len(self.malformed) < 10000:
            self.malformed.append((self.frame, msg))

    def pending_fragments(self) -> int:
        """Datagrams still incomplete (reported by :meth:`finish`)."""
        return len(self._frags)

    def finish(self, frame: int):
        """End of capture: datagrams never completed by their fragments are
        malformed, reported once at ``frame``."""
        if self._frags:
            self.frame = frame
            self._bad(f"{len(self._frags)} IP datagram(s) never completed by their fragments")


def ip_end(start: int, length: int, size: int) -> int:
    """Where an IP packet's bytes end in a frame of ``size`` bytes, as
    :class:`LinkDecoder` reads them: ``start + length`` (``start``: where the
    length field counts from: the IPv4 header, RFC 791 3.1; the end of the
    IPv6 fixed header, RFC 8200 3), cut at the frame's end (snap length), or
    the frame's end when ``length`` is 0 (a segment offloaded by the
    capturing host, TSO: the length is filled in later by the NIC; IPv6: a
    jumbogram). Every rewrite path (:mod:`dicomwire.rewrite`,
    :mod:`dicomwire.reshape`) takes lengths from here."""
    if length == 0:
        return size
    return min(start + length, size)


def split_flow(flow: bytes):
    """``flow`` bytes of a segment -> (src, sport, dst, dport)."""
    n = (len(flow) - 4) // 2
    return (flow[:n], int.from_bytes(flow[2 * n:2 * n + 2], "big"),
            flow[n:2 * n], int.from_bytes(flow[2 * n + 2:], "big"))


def reverse_flow(flow: bytes) -> bytes:
    """The flow key of the opposite direction."""
    n = (len(flow) - 4) // 2
    return flow[n:2 * n] + flow[:n] + flow[2 * n + 2:] + flow[2 * n:2 * n + 2]
