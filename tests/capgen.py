"""Test-only capture writer: frames and pcap / pcapng files, built in memory.

Everything is written by hand with :mod:`struct` from the specifications, not
with the code under test (nor scapy), so tests compare two independent
readings of the formats:

- IPv4 (RFC 791), IPv6 and its extension headers (RFC 8200), TCP (RFC 9293),
  with correct checksums so external tools accept the frames;
- link layers of https://www.tcpdump.org/linktypes.html;
- pcap (draft-ietf-opsawg-pcap), Kuznetzov "modified" pcap, and pcapng
  (draft-ietf-opsawg-pcapng).

Addresses are given as text (``"10.0.0.1"``, ``"2001:db8::1"``) or packed bytes.
Timestamps are integers in nanoseconds since the epoch.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

from dicomwire.pcapng_writer import internet_checksum

# TCP flags
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS = 1, 2, 4, 8, 16, 32, 64, 128, 256

# Link types (LINKTYPE_*)
LT_NULL, LT_ETHERNET, LT_RAW, LT_LOOP, LT_SLL, LT_SLL2 = 0, 1, 101, 108, 113, 276
LT_IPV4, LT_IPV6 = 228, 229
LT_DLT_RAW12, LT_DLT_RAW14 = 12, 14

# IP protocol numbers
P_HOPOPT, P_ICMP, P_TCP, P_UDP, P_ROUTING, P_FRAGMENT = 0, 1, 6, 17, 43, 44
P_ICMPV6, P_NONE, P_DSTOPTS = 58, 59, 60


def addr(a) -> bytes:
    """Packed address from text or bytes."""
    if isinstance(a, (bytes, bytearray)):
        return bytes(a)
    return socket.inet_pton(socket.AF_INET6 if ":" in a else socket.AF_INET, a)


# The Internet checksum (RFC 1071): the one the fuzzer's case files use.
checksum = internet_checksum


# --- transport ----------------------------------------------------------------


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", options=b"", window=65535):
    """A TCP segment (header + payload) with its checksum over the pseudo header
    of ``src``/``dst`` (4 or 16 byte addresses). ``options`` is padded with
    zeros (End of Option List) to a multiple of 4."""
    src, dst = addr(src), addr(dst)
    options = options + b"\0" * (-len(options) % 4)
    hlen = 20 + len(options)
    assert hlen <= 60, "TCP options too long"
    doff = (hlen // 4) << 4 | (1 if flags & NS else 0)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      doff, flags & 0xFF, window, 0, 0) + options
    seg = hdr + payload
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, P_TCP, len(seg))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), P_TCP)
    c = checksum(pseudo + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src, dst, sport, dport, payload=b""):
    src, dst = addr(src), addr(dst)
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, P_UDP, len(seg))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(seg), P_UDP)
    c = checksum(pseudo + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def icmp_echo(ident=1, seqno=1, payload=b"ping"):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seqno) + payload
    c = checksum(body)
    return body[:2] + struct.pack("!H", c) + body[4:]


# --- network ------------------------------------------------------------------


def ipv4(src, dst, proto, payload, *, ident=1, df=True, mf=False, frag_offset=0,
         ttl=64, ip_options=b"", total_length=None):
    """An IPv4 datagram. ``frag_offset`` in bytes (multiple of 8).
    ``ip_options`` is padded with zeros (End of Option List) to 4 bytes.
    ``total_length`` overrides the header field (0 for TSO captures)."""
    ip_options = ip_options + b"\0" * (-len(ip_options) % 4)
    ihl = 20 + len(ip_options)
    assert ihl <= 60, "IPv4 options too long"
    assert frag_offset % 8 == 0
    total = ihl + len(payload) if total_length is None else total_length
    ff = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_offset // 8)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl // 4, 0, total, ident, ff, ttl,
                      proto, 0, addr(src), addr(dst)) + ip_options
    c = checksum(hdr)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + payload


def ipv4_tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", options=b"",
             ip_options=b"", **ipkw):
    """IPv4 + TCP in one datagram (``ipkw`` passed to :func:`ipv4`)."""
    seg = tcp(src, dst, sport, dport, seq, ack, flags, payload, options)
    return ipv4(src, dst, P_TCP, seg, ip_options=ip_options, **ipkw)


def ipv4_fragments(datagram: bytes, size: int) -> list[bytes]:
    """Split an IPv4 datagram into fragments carrying at most ``size`` payload
    bytes each (rounded down to a multiple of 8). Options are kept on the
    first fragment only (RFC 791 copies only 'copied' options; tests don't
    rely on that)."""
    ihl = (datagram[0] & 0x0F) * 4
    total = struct.unpack_from("!H", datagram, 2)[0]
    ident = struct.unpack_from("!H", datagram, 4)[0]
    ttl, proto = datagram[8], datagram[9]
    src, dst = datagram[12:16], datagram[16:20]
    options = datagram[20:ihl]
    body = datagram[ihl:total]
    size = max(8, size - size % 8)
    out = []
    for off in range(0, len(body), size):
        piece = body[off:off + size]
        more = off + size < len(body)
        out.append(ipv4(src, dst, proto, piece, ident=ident, df=False, mf=more,
                        frag_offset=off, ttl=ttl, ip_options=options if off == 0 else b""))
    return out


# IPv6 extension headers: (next-header code of this header, bytes after its
# own first "next header" byte). ipv6() fills in the next-header bytes.

@dataclass
class Ext:
    code: int
    rest: bytes                      # the header without its first byte


def _ext_len8(code: int, opts: bytes) -> Ext:
    """Hop-by-hop / destination options: padded with PadN to 8-byte units."""
    body = opts
    pad = -(2 + len(body)) % 8
    if pad == 1:
        body += b"\0"                # Pad1
    elif pad:
        body += bytes((1, pad - 2)) + b"\0" * (pad - 2)   # PadN
    n = (2 + len(body)) // 8 - 1
    return Ext(code, bytes((n,)) + body)


def hop_by_hop(opts: bytes = b"\x05\x02\x00\x00") -> Ext:
    """Hop-by-hop options (default: a Router Alert option)."""
    return _ext_len8(P_HOPOPT, opts)


def dest_opts(opts: bytes = b"") -> Ext:
    return _ext_len8(P_DSTOPTS, opts)


def routing(addresses=("2001:db8::ff",), rtype=0, segments_left=0) -> Ext:
    body = struct.pack("!BBI", rtype, segments_left, 0) + b"".join(addr(a) for a in addresses)
    return Ext(P_ROUTING, bytes(((2 + len(body)) // 8 - 1,)) + body)


def frag_hdr(offset: int, more: bool, ident: int) -> Ext:
    assert offset % 8 == 0
    return Ext(P_FRAGMENT, struct.pack("!BHI", 0, offset | (1 if more else 0), ident))


def auth_hdr(icv: bytes = b"\0" * 12, spi=0x1234, seqno=1) -> Ext:
    """IPsec AH (RFC 4302): length in 4-byte units minus 2."""
    body = struct.pack("!xxII", spi, seqno) + icv
    n = (2 + len(body)) // 4 - 2
    return Ext(51, bytes((n,)) + body)


def chain(ext_headers, nxt):
    """Extension headers in order, then protocol ``nxt``: (code of the first
    header, their bytes with every next-header field filled in)."""
    codes = [e.code for e in ext_headers] + [nxt]
    return codes[0], b"".join(bytes((codes[i + 1],)) + e.rest for i, e in enumerate(ext_headers))


def ipv6(src, dst, nxt, payload, *, ext_headers=(), hop_limit=64, payload_length=None):
    """An IPv6 packet: fixed header, ``ext_headers`` (list of :class:`Ext`,
    in order), then the upper-layer ``payload`` whose protocol is ``nxt``."""
    first, exts = chain(ext_headers, nxt)
    plen = len(exts) + len(payload) if payload_length is None else payload_length
    hdr = struct.pack("!IHBB16s16s", 6 << 28, plen, first, hop_limit, addr(src), addr(dst))
    return hdr + exts + payload


def ipv6_tcp(src, dst, sport, dport, seq, ack, flags, payload=b"", options=b"",
             ext_headers=(), **ipkw):
    seg = tcp(src, dst, sport, dport, seq, ack, flags, payload, options)
    return ipv6(src, dst, P_TCP, seg, ext_headers=ext_headers, **ipkw)


def ipv6_fragments(src, dst, nxt, upper: bytes, size: int, ident: int,
                   unfragmentable=(), fragmentable=()) -> list[bytes]:
    """Fragment the upper-layer bytes ``upper`` (protocol ``nxt``) in pieces of
    at most ``size`` bytes (multiple of 8), each with ``unfragmentable``
    extension headers then a fragment header. ``fragmentable`` extension
    headers (AH, final destination options) go before ``upper`` in the
    fragmented part, as RFC 8200 4.5 has them."""
    if fragmentable:
        nxt, exts = chain(fragmentable, nxt)
        upper = exts + upper
    size = max(8, size - size % 8)
    out = []
    for off in range(0, len(upper), size):
        more = off + size < len(upper)
        out.append(ipv6(src, dst, nxt, upper[off:off + size],
                        ext_headers=list(unfragmentable) + [frag_hdr(off, more, ident)]))
    return out


# --- link layers --------------------------------------------------------------

ETH_IPV4, ETH_IPV6, ETH_ARP = 0x0800, 0x86DD, 0x0806
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def ethertype_of(packet: bytes) -> int:
    return ETH_IPV6 if packet[0] >> 4 == 6 else ETH_IPV4


def ethernet(payload: bytes, ethertype: int | None = None, vlans=(), *,
             dst=MAC_B, src=MAC_A, pad=True) -> bytes:
    """An Ethernet II frame, without FCS. ``vlans``: outer first, each a VLAN id
    (802.1Q, TPID 0x8100) or ``(tpid, vid)`` (0x88a8 for an 802.1ad S-tag).
    Padded with zeros to the 60-byte minimum unless ``pad`` is false."""
    if ethertype is None:
        ethertype = ethertype_of(payload)
    tags = b""
    for v in vlans:
        tpid, vid = v if isinstance(v, tuple) else (0x8100, v)
        tags += struct.pack("!HH", tpid, vid & 0x0FFF)
    f = dst + src + tags + struct.pack("!H", ethertype) + payload
    if pad and len(f) < 60:
        f += b"\0" * (60 - len(f))
    return f


def qinq(payload: bytes, outer=100, inner=200, **kw) -> bytes:
    """802.1ad S-tag + 802.1Q C-tag."""
    return ethernet(payload, vlans=[(0x88A8, outer), (0x8100, inner)], **kw)


def sll(payload: bytes, protocol: int | None = None, pkttype=0) -> bytes:
    """Linux cooked capture v1 (LINKTYPE_LINUX_SLL, 16-byte header)."""
    if protocol is None:
        protocol = ethertype_of(payload)
    return struct.pack("!HHH8sH", pkttype, 1, 6, MAC_A + b"\0\0", protocol) + payload


def sll2(payload: bytes, protocol: int | None = None, ifindex=2, pkttype=0) -> bytes:
    """Linux cooked capture v2 (LINKTYPE_LINUX_SLL2, 20-byte header)."""
    if protocol is None:
        protocol = ethertype_of(payload)
    return struct.pack("!HHIHBB8s", protocol, 0, ifindex, 1, pkttype, 6,
                       MAC_A + b"\0\0") + payload


AF_INET = 2
AF_INET6_VALUES = (10, 24, 28, 30)     # Linux, Net/OpenBSD, FreeBSD, Darwin


def null(payload: bytes, af: int | None = None, big_endian=False) -> bytes:
    """BSD loopback (LINKTYPE_NULL): 4-byte address family in the capturing
    host's byte order."""
    if af is None:
        af = 30 if payload[0] >> 4 == 6 else AF_INET
    return struct.pack(">I" if big_endian else "<I", af) + payload


def loop(payload: bytes, af: int | None = None) -> bytes:
    """OpenBSD loopback (LINKTYPE_LOOP): address family in network order."""
    if af is None:
        af = 24 if payload[0] >> 4 == 6 else AF_INET
    return struct.pack(">I", af) + payload


def link(linktype: int, packet: bytes, **kw) -> bytes:
    """Wrap an IP packet for ``linktype`` with default link parameters."""
    if linktype == LT_ETHERNET:
        return ethernet(packet, **kw)
    if linktype == LT_SLL:
        return sll(packet, **kw)
    if linktype == LT_SLL2:
        return sll2(packet, **kw)
    if linktype == LT_NULL:
        return null(packet, **kw)
    if linktype == LT_LOOP:
        return loop(packet, **kw)
    if linktype in (LT_RAW, LT_DLT_RAW12, LT_DLT_RAW14, LT_IPV4, LT_IPV6):
        return packet
    raise ValueError(f"capgen: no writer for link type {linktype}")


# --- a whole TCP conversation -------------------------------------------------


def conversation(client, server, cport, sport, c2s=(), s2c=(), *, isn_c=1000, isn_s=5000,
                 v6=None):
    """IP packets of one TCP connection: handshake, then ``c2s`` payloads
    (each ACKed by the server), then ``s2c`` payloads (each ACKed), then
    FIN/ACK both ways. Returns the list of packets (client->server first)."""
    if v6 is None:
        v6 = len(addr(client)) == 16
    mk = ipv6_tcp if v6 else ipv4_tcp
    c, s = isn_c, isn_s
    pk = [mk(client, server, cport, sport, c, 0, SYN, options=b"\x02\x04\x05\xb4"),
          mk(server, client, sport, cport, s, c + 1, SYN | ACK, options=b"\x02\x04\x05\xb4")]
    c += 1
    s += 1
    pk.append(mk(client, server, cport, sport, c, s, ACK))
    for p in c2s:
        pk.append(mk(client, server, cport, sport, c, s, PSH | ACK, p))
        c += len(p)
        pk.append(mk(server, client, sport, cport, s, c, ACK))
    for p in s2c:
        pk.append(mk(server, client, sport, cport, s, c, PSH | ACK, p))
        s += len(p)
        pk.append(mk(client, server, cport, sport, c, s, ACK))
    pk.append(mk(client, server, cport, sport, c, s, FIN | ACK))
    pk.append(mk(server, client, sport, cport, s, c + 1, FIN | ACK))
    pk.append(mk(client, server, cport, sport, c + 1, s + 1, ACK))
    return pk


def exchange(client, server, cport, sport, steps):
    """IPv4 packets of one TCP connection carrying ``(direction, payload)``
    steps in wire order (0: client to server), each ACKed at once, with the
    handshake before and FINs after: an interleaved dialogue, unlike
    :func:`conversation`."""
    mk = ipv4_tcp
    c, s = 1000, 5000
    pk = [mk(client, server, cport, sport, c, 0, SYN),
          mk(server, client, sport, cport, s, c + 1, SYN | ACK)]
    c, s = c + 1, s + 1
    for d, p in steps:
        if d == 0:
            pk += [mk(client, server, cport, sport, c, s, PSH | ACK, p),
                   mk(server, client, sport, cport, s, c + len(p), ACK)]
            c += len(p)
        else:
            pk += [mk(server, client, sport, cport, s, c, PSH | ACK, p),
                   mk(client, server, cport, sport, c, s + len(p), ACK)]
            s += len(p)
    pk += [mk(client, server, cport, sport, c, s, FIN | ACK),
           mk(server, client, sport, cport, s, c + 1, FIN | ACK),
           mk(client, server, cport, sport, c + 1, s + 1, ACK)]
    return pk


# --- pcap ---------------------------------------------------------------------


def _frame(f):
    """(ts_ns, data[, orig_len]) -> (ts_ns, data, orig_len)."""
    if len(f) == 2:
        return f[0], f[1], len(f[1])
    return f[0], f[1], f[2]


def pcap_header(linktype=LT_ETHERNET, *, nanosecond=False, big_endian=False,
                snaplen=262144, modified=False, version=(2, 4)) -> bytes:
    if modified:
        assert not nanosecond
        magic = 0xA1B2CD34
    else:
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    o = ">" if big_endian else "<"
    return struct.pack(o + "IHHiIII", magic, version[0], version[1], 0, 0, snaplen, linktype)


def pcap_record(ts_ns, data, orig_len=None, *, nanosecond=False, big_endian=False,
                modified=False, incl_len=None) -> bytes:
    """One record. ``incl_len`` overrides the captured length field (hostile
    tests); ``orig_len`` defaults to ``len(data)``."""
    o = ">" if big_endian else "<"
    sec, ns = divmod(ts_ns, 1_000_000_000)
    frac = ns if nanosecond else ns // 1000
    incl = len(data) if incl_len is None else incl_len
    orig = len(data) if orig_len is None else orig_len
    hdr = struct.pack(o + "IIII", sec, frac, incl, orig)
    if modified:
        hdr += struct.pack(o + "IHBx", 1, 0x0800, 0)   # ifindex, protocol, pkt_type, pad
    return hdr + data


def pcap(frames, linktype=LT_ETHERNET, nanosecond=False, big_endian=False,
         snaplen=262144, modified=False) -> bytes:
    """A whole pcap file. ``frames``: (ts_ns, data[, orig_len]); a frame whose
    ``orig_len`` exceeds ``len(data)`` is a snaplen-truncated record."""
    out = [pcap_header(linktype, nanosecond=nanosecond, big_endian=big_endian,
                       snaplen=snaplen, modified=modified)]
    for f in frames:
        ts, data, orig = _frame(f)
        out.append(pcap_record(ts, data, orig, nanosecond=nanosecond,
                               big_endian=big_endian, modified=modified))
    return b"".join(out)


def select_frames(src, keep) -> bytes:
    """A real capture cut down: the frames of ``src`` (any capture dicomwire
    reads) whose 1-based number ``keep(number)`` accepts, as a nanosecond
    pcap with their time stamps. Cuts a capture that "began late" or "ended
    early" out of a complete real-peer one."""
    from dicomwire.capture import open_capture
    frames, linktype = [], None
    with open_capture(str(src)) as cap:
        for number, ts_ns, lt, data, orig_len, _iface in cap:
            linktype = lt if linktype is None else linktype
            if keep(number):
                frames.append((ts_ns, bytes(data), orig_len))
    return pcap(frames, linktype, nanosecond=True)


# --- pcapng -------------------------------------------------------------------

SHB_TYPE, IDB_TYPE, PB_TYPE, SPB_TYPE, NRB_TYPE, ISB_TYPE, EPB_TYPE = (
    0x0A0D0D0A, 1, 2, 3, 4, 5, 6)
BOM = 0x1A2B3C4D


@dataclass
class IDB:
    """Interface Description Block. ``tsresol``: the raw if_tsresol byte
    (``9`` for 10^-9, ``0x80 | 20`` for 2^-20) or None (default 10^-6).
    ``tsoffset``: if_tsoffset in seconds, or None."""
    linktype: int = LT_ETHERNET
    snaplen: int = 0
    tsresol: int | None = None
    tsoffset: int | None = None
    name: str | None = None

    def ticks(self, ts_ns: int) -> int:
        """The timestamp field for ``ts_ns`` (exact when the resolution allows)."""
        t = ts_ns - (self.tsoffset or 0) * 1_000_000_000
        r = 6 if self.tsresol is None else self.tsresol
        if r & 0x80:
            return (t << (r & 0x7F)) // 1_000_000_000
        return t * 10 ** r // 1_000_000_000

    def ts_ns(self, ticks: int) -> int:
        """Nanoseconds for a timestamp field (floor), if_tsoffset applied."""
        r = 6 if self.tsresol is None else self.tsresol
        if r & 0x80:
            ns = ticks * 1_000_000_000 >> (r & 0x7F)
        else:
            ns = ticks * 1_000_000_000 // 10 ** r
        return ns + (self.tsoffset or 0) * 1_000_000_000


@dataclass
class EPB:
    """Enhanced Packet Block on section-local interface ``iface``. Give either
    ``ts_ns`` (converted with the interface's resolution) or raw ``ticks``."""
    iface: int
    data: bytes
    ts_ns: int | None = 0
    orig_len: int | None = None
    comments: list = field(default_factory=list)
    ticks: int | None = None
    incl_len: int | None = None        # override (hostile tests)


@dataclass
class PB:
    """Obsolete Packet Block (type 2)."""
    iface: int
    data: bytes
    ts_ns: int | None = 0
    orig_len: int | None = None
    drops: int = 0
    comments: list = field(default_factory=list)
    ticks: int | None = None


@dataclass
class SPB:
    """Simple Packet Block: interface 0 of the section, no timestamp."""
    data: bytes
    orig_len: int | None = None


@dataclass
class RawBlock:
    """Any block, body given as bytes (written in the section's byte order
    for the type and lengths only)."""
    btype: int
    body: bytes = b""


@dataclass
class NRB:
    """Name Resolution Block with IPv4 records (address, names)."""
    records: list = field(default_factory=lambda: [("10.0.0.1", ["client.example"])])


@dataclass
class ISB:
    """Interface Statistics Block (isb_ifrecv, isb_ifdrop options)."""
    iface: int = 0
    ticks: int = 0
    ifrecv: int = 10
    ifdrop: int = 0


@dataclass
class Section:
    blocks: list = field(default_factory=list)   # IDB/EPB/PB/SPB/RawBlock/NRB/ISB
    big_endian: bool = False
    options: list = field(default_factory=lambda: [(4, b"capgen")])  # shb_userappl
    length: int = -1                                # section length field


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def options(opts, o: str, end=True) -> bytes:
    """Encode (code, value bytes or str) pairs, then opt_endofopt."""
    if not opts:
        return b""
    out = b""
    for code, val in opts:
        if isinstance(val, str):
            val = val.encode("utf-8")
        out += struct.pack(o + "HH", code, len(val)) + _pad4(val)
    if end:
        out += struct.pack(o + "HH", 0, 0)
    return out


def block(btype: int, body: bytes, o: str = "<") -> bytes:
    body = _pad4(body)
    n = 12 + len(body)
    return struct.pack(o + "II", btype, n) + body + struct.pack(o + "I", n)


def _ticks(spec, itf: IDB) -> int:
    return spec.ticks if spec.ticks is not None else itf.ticks(spec.ts_ns)


def section_bytes(sec: Section) -> bytes:
    o = ">" if sec.big_endian else "<"
    out = [block(SHB_TYPE, struct.pack(o + "IHHq", BOM, 1, 0, sec.length)
                 + options(sec.options, o), o)]
    ifaces: list[IDB] = []
    for b in sec.blocks:
        if isinstance(b, IDB):
            opts = []
            if b.name is not None:
                opts.append((2, b.name))
            if b.tsresol is not None:
                opts.append((9, bytes((b.tsresol,))))
            if b.tsoffset is not None:
                opts.append((14, struct.pack(o + "q", b.tsoffset)))
            ifaces.append(b)
            out.append(block(IDB_TYPE, struct.pack(o + "HHI", b.linktype, 0, b.snaplen)
                             + options(opts, o), o))
        elif isinstance(b, (EPB, PB)):
            t = _ticks(b, ifaces[b.iface]) if b.iface < len(ifaces) else (b.ticks or 0)
            incl = len(b.data) if getattr(b, "incl_len", None) is None else b.incl_len
            orig = len(b.data) if b.orig_len is None else b.orig_len
            opts = options([(1, c) for c in b.comments], o)
            if isinstance(b, EPB):
                head = struct.pack(o + "IIIII", b.iface, t >> 32, t & 0xFFFFFFFF, incl, orig)
                out.append(block(EPB_TYPE, head + _pad4(b.data) + opts, o))
            else:
                head = struct.pack(o + "HHIIII", b.iface, b.drops, t >> 32, t & 0xFFFFFFFF,
                                   incl, orig)
                out.append(block(PB_TYPE, head + _pad4(b.data) + opts, o))
        elif isinstance(b, SPB):
            orig = len(b.data) if b.orig_len is None else b.orig_len
            out.append(block(SPB_TYPE, struct.pack(o + "I", orig) + _pad4(b.data), o))
        elif isinstance(b, NRB):
            recs = b""
            for a, names in b.records:
                v = addr(a) + b"".join(n.encode() + b"\0" for n in names)
                recs += struct.pack(o + "HH", 1, len(v)) + _pad4(v)
            recs += struct.pack(o + "HH", 0, 0)            # nrb_record_end
            out.append(block(NRB_TYPE, recs, o))
        elif isinstance(b, ISB):
            opts = options([(4, struct.pack(o + "Q", b.ifrecv)),
                            (5, struct.pack(o + "Q", b.ifdrop))], o)
            out.append(block(ISB_TYPE, struct.pack(o + "III", b.iface, b.ticks >> 32,
                                                   b.ticks & 0xFFFFFFFF) + opts, o))
        elif isinstance(b, RawBlock):
            out.append(block(b.btype, b.body, o))
        else:
            raise TypeError(f"capgen: unknown pcapng block {b!r}")
    return b"".join(out)


def pcapng(sections) -> bytes:
    """A pcapng file from a list of :class:`Section` (or one)."""
    if isinstance(sections, Section):
        sections = [sections]
    return b"".join(section_bytes(s) for s in sections)


def simple_pcapng(frames, linktype=LT_ETHERNET, big_endian=False, tsresol=None) -> bytes:
    """One section, one interface, one EPB per (ts_ns, data[, orig_len])."""
    itf = IDB(linktype, 0, tsresol)
    blocks = [itf]
    for f in frames:
        ts, data, orig = _frame(f)
        blocks.append(EPB(0, data, ts, orig))
    return pcapng(Section(blocks, big_endian))
