"""Addresses in frame headers replaced consistently: the engine's half of
pseudonymising hosts in a rewritten capture (:func:`dicomwire.rewrite.rewrite_capture`
takes a :class:`HeaderMapper` as ``headers``).

What is rewritten, in every frame whatever it carries: Ethernet source and
destination (VLAN tags followed), the link-layer address of Linux cooked
captures (SLL, SLL2), ARP sender and target (Ethernet/IPv4 ARP, RFC 826),
IPv4 and IPv6 source and destination, IP in IP (one level). Checksums that
cover them are updated incrementally (RFC 1624): the IPv4 header checksum,
and the TCP, UDP and ICMPv6 checksums through their pseudo-header (RFC 793,
RFC 768, RFC 8200 8.1), so a checksum that was right stays right and one
that was wrong (offloaded by the capturing host) stays as wrong. Addresses
inside other payloads (ICMP errors quoting a header, DNS, DHCP, ...) are
not rewritten: :attr:`HeaderMapper.other` counts the frames that may hold
some.

How addresses are mapped (:class:`AddressMap`), under a key (the same key,
the same mapping across captures):

- IPv4 and IPv6 by class (RFC 6890): unspecified, multicast, broadcast,
  reserved and the IPv6 loopback stay as they are (they name no host);
  loopback 127/8, private (RFC 1918), shared (RFC 6598), link-local
  (169.254/16, fe80::/64), unique local (fc00::/7) and global unicast
  (2000::/3) stay in their range; IPv4-mapped IPv6 maps its IPv4 address.
  Within a range the mapping preserves prefixes (as Crypto-PAn, Xu et al.
  2002): two addresses that share their first n bits share them after, so
  subnets stay subnets. It is a bijection, so flows stay apart. Other
  (public) addresses are permuted the same way over the whole space, walked
  along their cycle until they land outside the ranges above, which keeps
  the bijection.
- MAC addresses (RFC 7042 2.1): group addresses (the I/G bit: multicast,
  broadcast) and the all-zero address of loopback captures stay; every other
  one becomes a unicast, locally administered address (U/L bit set).
"""

from __future__ import annotations

import hashlib
import struct

from dicomwire.checksum import moved, sum16

_H = struct.Struct("!H")
VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
IPV6_EXT = frozenset((0, 43, 60, 51, 135, 139, 140))
ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
# UDP ports of protocols whose payload names addresses: DNS, DHCP, NetBIOS,
# DHCPv6, mDNS, LLMNR.
ADDRESS_PORTS = frozenset((53, 67, 68, 137, 138, 546, 547, 5353, 5355))
MAX_WALK = 1000              # cycle-walking steps (expected: 1 or 2)


def _net(text: str) -> tuple[int, int]:
    import ipaddress
    n = ipaddress.ip_network(text)
    return int(n.network_address), n.prefixlen


# (network, prefix length, rule): "keep" unchanged; "within": the prefix kept,
# the rest permuted. Most specific first; whatever matches none is public.
IPV4_RANGES = [(*_net(t), r) for t, r in (
    ("0.0.0.0/8", "keep"), ("127.0.0.0/8", "within"), ("10.0.0.0/8", "within"),
    ("172.16.0.0/12", "within"), ("192.168.0.0/16", "within"), ("100.64.0.0/10", "within"),
    ("169.254.0.0/16", "within"), ("224.0.0.0/4", "keep"), ("240.0.0.0/4", "keep"))]
IPV6_RANGES = [(*_net(t), r) for t, r in (
    ("::/128", "keep"), ("::1/128", "keep"), ("::ffff:0:0/96", "ipv4"),
    ("fe80::/64", "within"), ("fc00::/8", "within"), ("fd00::/8", "within"),
    ("ff00::/8", "keep"), ("2000::/3", "within"))]


def _range(value: int, width: int, ranges):
    for net, plen, rule in ranges:
        if value >> (width - plen) == net >> (width - plen):
            return plen, rule
    return 0, "public"


class AddressMap:
    """The consistent pseudonym of each IPv4, IPv6 and MAC address under
    ``key``. ``changed``: every original that changed, to its pseudonym."""

    def __init__(self, key: bytes):
        self.key = hashlib.sha256(b"dicomwire hosts\0" + key).digest()
        self.changed: dict[bytes, bytes] = {}
        self._cache: dict[bytes, bytes] = {}
        self._macs: dict[bytes, bytes] = {}      # pseudonym -> original (no two alike)

    def _bit(self, kind: bytes, depth: int, prefix: int) -> int:
        h = hashlib.blake2b(kind + depth.to_bytes(2, "big") + prefix.to_bytes(16, "big"),
                            key=self.key, digest_size=1)
        return h.digest()[0] & 1

    def _permute(self, kind: bytes, value: int, width: int, keep: int) -> int:
        """Prefix-preserving: bit i flipped by a function of the bits above it."""
        out = value
        for i in range(keep, width):
            shift = width - 1 - i
            if self._bit(kind, i, value >> (shift + 1)):
                out ^= 1 << shift
        return out

    def _ip(self, kind: bytes, value: int, width: int, ranges) -> int:
        plen, rule = _range(value, width, ranges)
        if rule == "keep":
            return value
        if rule == "ipv4":
            low = int.from_bytes(self.ipv4((value & 0xFFFFFFFF).to_bytes(4, "big")), "big")
            return (value >> 32 << 32) | low
        if rule == "within":
            return self._permute(kind, value, width, plen)
        new = value
        for _ in range(MAX_WALK):                # public: walked to another public one
            new = self._permute(kind, new, width, 0)
            if _range(new, width, ranges)[1] == "public":
                return new
        return value ^ 1                         # not reached in practice

    def _addr(self, a: bytes, new_of) -> bytes:
        new = self._cache.get(a)
        if new is None:
            new = self._cache[a] = new_of(a)
            if new != a:
                self.changed[a] = new
        return new

    def ipv4(self, a: bytes) -> bytes:
        return self._addr(bytes(a), lambda a: self._ip(
            b"4", int.from_bytes(a, "big"), 32, IPV4_RANGES).to_bytes(4, "big"))

    def ipv6(self, a: bytes) -> bytes:
        return self._addr(bytes(a), lambda a: self._ip(
            b"6", int.from_bytes(a, "big"), 128, IPV6_RANGES).to_bytes(16, "big"))

    def mac(self, a: bytes) -> bytes:
        return self._addr(bytes(a), self._new_mac)

    def _new_mac(self, a: bytes) -> bytes:
        if a[0] & 1 or not any(a):              # group (I/G bit), or no address at all
            return a
        n = 0
        while True:                              # injective: a clash takes the next draw
            h = hashlib.blake2b(b"mac" + a + n.to_bytes(4, "big"), key=self.key,
                                digest_size=6).digest()
            new = bytes([(h[0] & 0xFC) | 0x02]) + h[1:]     # unicast, locally administered
            if self._macs.setdefault(new, a) == a:
                return new
            n += 1


def fix_checksum(buf, at: int, old: bytes, new: bytes, zero_is_none: bool = False):
    """The checksum at ``at`` updated for ``old`` -> ``new`` covered by it
    (:func:`dicomwire.checksum.moved`). A UDP checksum of zero (none
    computed, RFC 768) stays zero; a result of zero is sent as all ones."""
    c = _H.unpack_from(buf, at)[0]
    if zero_is_none and c == 0:
        return
    c = moved(c, sum16(new) - sum16(old))
    _H.pack_into(buf, at, 0xFFFF if zero_is_none and c == 0 else c)


def walk(linktype: int, buf):
    """Where the addresses of a frame's headers lie: ``(kind, [offsets],
    [(checksum offset, zero means none)], other)`` per group, ``kind`` one of
    ``mac``, ``ip4``, ``ip6``; ``other`` true when the payload may name
    addresses too (ICMP, DNS, DHCP, tunnels not followed)."""
    try:
        if linktype == 1:
            if len(buf) < 14:
                return
            yield "mac", [0, 6], [], False
            etype, off = _H.unpack_from(buf, 12)[0], 14
            while etype in VLAN_TYPES:
                etype, off = _H.unpack_from(buf, off + 2)[0], off + 4
        elif linktype == 113:                    # SLL: the sender's address
            if _H.unpack_from(buf, 4)[0] == 6:
                yield "mac", [6], [], False
            etype, off = _H.unpack_from(buf, 14)[0], 16
        elif linktype == 276:                    # SLL2
            if buf[11] == 6:
                yield "mac", [12], [], False
            etype, off = _H.unpack_from(buf, 0)[0], 20
        elif linktype in (0, 108):
            fam = int.from_bytes(buf[:4], "little")
            if fam > 0xFFFF:
                fam = int.from_bytes(buf[:4], "big")
            etype, off = (ETH_IPV4 if fam == 2 else ETH_IPV6), 4
        elif linktype in (101, 12, 14, 228, 229):
            etype, off = (ETH_IPV4 if buf[0] >> 4 == 4 else ETH_IPV6), 0
        else:
            return
        if etype == ETH_ARP:
            if bytes(buf[off:off + 6]) == b"\x00\x01\x08\x00\x06\x04" and len(buf) >= off + 28:
                yield "mac", [off + 8, off + 18], [], False
                yield "ip4", [off + 14, off + 24], [], False
            return
        yield from _ip(buf, etype, off, 0)
    except (IndexError, struct.error):
        return


def _ip(buf, etype, off, depth):
    if etype == ETH_IPV4 and len(buf) >= off + 20 and buf[off] >> 4 == 4:
        ihl = (buf[off] & 0x0F) * 4
        proto, first = buf[off + 9], not _H.unpack_from(buf, off + 6)[0] & 0x1FFF
        sums, l4 = [(off + 10, False)], off + ihl
        yield from _l4(buf, "ip4", [off + 12, off + 16], sums, l4 if first else None, proto,
                       depth)
    elif etype == ETH_IPV6 and len(buf) >= off + 40 and buf[off] >> 4 == 6:
        nxt, at, routed = buf[off + 6], off + 40, False
        while nxt in IPV6_EXT or nxt == 44:
            if nxt == 44:
                if _H.unpack_from(buf, at + 2)[0] & 0xFFF8:
                    at = None                    # a later fragment: no upper header
                    break
                nxt, at = buf[at], at + 8
                continue
            routed = routed or (nxt == 43 and buf[at + 3] > 0)
            hlen = (buf[at + 1] + 2) * 4 if nxt == 51 else (buf[at + 1] + 1) * 8
            nxt, at = buf[at], at + hlen
        # With segments left in a routing header the pseudo-header holds the
        # final destination (RFC 8200 8.1), not this one.
        yield from _l4(buf, "ip6", [off + 8], [], at, nxt, depth)
        yield from _l4(buf, "ip6", [off + 24], [], None if routed else at, nxt, depth,
                       inner=False)


def _l4(buf, kind, addrs, sums, l4, proto, depth, inner=True):
    other = False
    if l4 is not None and len(buf) >= l4 + 8:
        if proto == 6 and len(buf) >= l4 + 18:
            sums = sums + [(l4 + 16, False)]
        elif proto == 17:
            sums = sums + [(l4 + 6, True)]
            ports = _H.unpack_from(buf, l4)[0], _H.unpack_from(buf, l4 + 2)[0]
            other = ports[0] in ADDRESS_PORTS or ports[1] in ADDRESS_PORTS
        elif proto == 58:
            sums = sums + [(l4 + 2, False)]
            other = buf[l4] < 128                # ICMPv6 errors quote the packet
        elif proto == 1:
            other = buf[l4] not in (0, 8)        # ICMP but echo: may quote a header
        elif proto in (47, 50, 51):
            other = True                         # GRE, ESP, AH: not followed
    yield kind, addrs, sums, other
    if inner and l4 is not None and proto in (4, 41) and depth < 1:
        yield from _ip(buf, ETH_IPV4 if proto == 4 else ETH_IPV6, l4, depth + 1)


_WIDTH = {"mac": 6, "ip4": 4, "ip6": 16}


class HeaderMapper:
    """Per frame: ``frame(linktype, data)`` returns it with its header
    addresses replaced (a new bytearray), or None when nothing changed."""

    def __init__(self, addresses: AddressMap):
        self.map = addresses
        self.rewritten = self.other = 0
        self._of = {"mac": addresses.mac, "ip4": addresses.ipv4, "ip6": addresses.ipv6}
        self._plain_cache: dict[bytes, tuple] = {}

    def frame(self, linktype: int, data):
        if linktype == 1 and len(data) >= 54 and data[12] == 8 and data[13] == 0 \
                and data[14] == 0x45 and data[23] == 6 and not (data[20] & 0x1F or data[21]):
            return self._plain(data)             # Ethernet, IPv4 without options, TCP
        out = bytearray(data)
        changed = other = False
        for kind, addrs, sums, maybe in walk(linktype, out):
            other = other or maybe
            w, new_of = _WIDTH[kind], self._of[kind]
            if len(out) < max(addrs) + w:
                continue
            old = b"".join(bytes(out[a:a + w]) for a in addrs)
            new = b"".join(new_of(out[a:a + w]) for a in addrs)
            if new == old:
                continue
            for a, i in zip(addrs, range(0, len(new), w)):
                out[a:a + w] = new[i:i + w]
            for at, zero_is_none in sums:
                if len(out) >= at + 2:
                    fix_checksum(out, at, old, new, zero_is_none)
            changed = True
        self.other += other
        if not changed:
            return None
        self.rewritten += 1
        return out


    def _plain(self, data):
        """Most frames: their MACs and IP pair looked up whole, the two
        checksums moved by the IP pair's precomputed difference."""
        key = bytes(data[0:12]) + bytes(data[26:34])
        hit = self._plain_cache.get(key)
        if hit is None:
            macs = self.map.mac(data[0:6]) + self.map.mac(data[6:12])
            old = bytes(data[26:34])
            ips = self.map.ipv4(old[:4]) + self.map.ipv4(old[4:])
            hit = self._plain_cache[key] = (macs, ips, sum16(ips) - sum16(old),
                                            key == macs + ips)
        if hit[3]:
            return None
        out = bytearray(data)
        out[0:12], out[26:34] = hit[0], hit[1]
        for at in (24, 50):
            c = moved((out[at] << 8) | out[at + 1], hit[2])
            out[at], out[at + 1] = c >> 8, c & 0xFF
        self.rewritten += 1
        return out


class AddressTap:
    """A pipeline tap (:func:`dicomwire.pipeline.run`) that collects the
    addresses of every frame's headers: ``found`` maps each to the first
    frame that carries it."""

    def __init__(self):
        self.found: dict[bytes, int] = {}
        self._seen: set[bytes] = set()

    def __call__(self, number, _ts, linktype, data, _orig, _iface):
        if linktype == 1 and len(data) >= 34 and data[12] == 8 and data[13] == 0 \
                and data[14] == 0x45 and data[23] in (6, 17):
            key = bytes(data[0:12]) + bytes(data[26:34])
            if key in self._seen:               # most frames: a header seen before
                return
            if len(self._seen) < 100_000:
                self._seen.add(key)
        found = self.found
        for kind, addrs, _sums, _other in walk(linktype, data):
            w = _WIDTH[kind]
            for a in addrs:
                v = bytes(data[a:a + w])
                if len(v) == w and v not in found:
                    found[v] = number


def format_address(a: bytes) -> str:
    if len(a) == 6:
        return ":".join(f"{b:02x}" for b in a)
    from dicomwire.addr import format_addr
    return format_addr(a)
