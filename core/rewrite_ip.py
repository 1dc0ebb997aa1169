"""The IP layer of a rewrite (:mod:`dicomwire.rewrite`), protocol-agnostic:
where a frame's TCP segment lies (:func:`locate`), read as the first pass
reads it (:mod:`dicomwire.link`: lengths by :func:`dicomwire.link.ip_end`,
IPv4 options and IPv6 extension headers walked).
"""

from __future__ import annotations

import struct

from dicomwire.link import ip_end

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
