"""Writing pcapng files, and synthetic TCP/IP frames to put in them.

One writer for every tool that writes a capture (and :class:`PcapWriter`
for those asked for classic pcap) (``annotate`` copies one with
packet comments, packs write the traffic they synthesise). It writes
little-endian pcapng (draft-ietf-opsawg-pcapng): one Section Header Block,
Interface Description Blocks at nanosecond resolution (``if_tsresol`` 9),
and Enhanced Packet Blocks with optional packet comments. Options are written
in the order given, with an end-of-options marker only where there are
options, as python-pcapng writes them, so files stay byte for byte what they
were.

:func:`tcp_frame` builds an Ethernet + IPv4/IPv6 + TCP frame with correct
checksums (RFC 1071, RFC 791, RFC 8200 8.1, RFC 9293 3.1), so that every tool
accepts a synthesised exchange.
"""

from __future__ import annotations

import socket
import struct

from dicomwire import headers

# Block types and option codes (pcapng 4.1-4.3, 3.5).
SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
OPT_END, OPT_COMMENT = 0, 1
SHB_USERAPPL = 4
IF_NAME, IF_TSRESOL = 2, 9
BYTE_ORDER_MAGIC = 0x1A2B3C4D

_HEAD = struct.Struct("<II")                 # block type, total length
_TAIL = struct.Struct("<I")
_SHB_BODY = struct.Struct("<IHHq")           # magic, major, minor, section length (-1)
_IDB_BODY = struct.Struct("<HHI")            # link type, reserved, snaplen
_EPB_HEAD = struct.Struct("<IIIIIII")        # type, length, iface, ts high, ts low, cap, orig
_OPT = struct.Struct("<HH")

DEFAULT_SNAPLEN = 262144
_PADS = (b"", b"\0", b"\0\0", b"\0\0\0")


def _options(opts) -> bytes:
    """``[(code, bytes), ...]`` as pcapng options, end marker included
    (nothing at all for no options)."""
    if not opts:
        return b""
    out = bytearray()
    for code, value in opts:
        out += _OPT.pack(code, len(value)) + value + b"\0" * (-len(value) % 4)
    out += _OPT.pack(OPT_END, 0)
    return bytes(out)


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return _HEAD.pack(btype, total) + body + _TAIL.pack(total)


class PcapngWriter:
    """A pcapng file on a binary file object ``out``: the section header
    is written at once (``application``: ``shb_userappl``; ``comments``: the
    section's comments), interfaces with :meth:`add_interface`, frames with
    :meth:`write`. Timestamps are nanoseconds since the epoch."""

    def __init__(self, out, *, application: str | None = None, comments=()):
        self.out = out
        self.interfaces = 0
        self.frames = 0
        opts = [(SHB_USERAPPL, application.encode())] if application else []
        opts += [(OPT_COMMENT, c.encode()) for c in comments]
        out.write(_block(SHB, _SHB_BODY.pack(BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts)))

    def add_interface(self, linktype: int, snaplen: int = DEFAULT_SNAPLEN,
                      name: str | None = None) -> int:
        """Describe the next interface; returns its index for :meth:`write`."""
        opts = [(IF_TSRESOL, b"\x09")]
        if name:
            opts.append((IF_NAME, name.encode()))
        self.out.write(_block(IDB, _IDB_BODY.pack(linktype, 0, snaplen) + _options(opts)))
        self.interfaces += 1
        return self.interfaces - 1

    def write(self, ts_ns: int, data, *, iface: int = 0, orig_len: int | None = None,
              comments=()):
        """One frame as an Enhanced Packet Block; ``orig_len`` defaults to
        the captured length; each of ``comments`` becomes an ``opt_comment``."""
        n = len(data)
        pad = -n % 4
        if comments:
            opts = _options([(OPT_COMMENT, c.encode()) for c in comments])
            total = 32 + n + pad + len(opts)
            end = b"\0" * pad + opts + _TAIL.pack(total)
        else:                           # nearly every frame: no options at all
            total = 32 + n + pad
            end = _PADS[pad] + _TAIL.pack(total)
        # One write per block: three cost more than joining a frame's bytes.
        self.out.write(b"".join((_EPB_HEAD.pack(EPB, total, iface, ts_ns >> 32,
                                                ts_ns & 0xFFFFFFFF, n,
                                                n if orig_len is None else orig_len),
                                 data, end)))
        self.frames += 1

    def write_frame(self, ts_ns: int, data, iface: int, orig_len: int):
        """:meth:`write` of a frame without comments, by position: a
        rewrite's every frame, where the keywords' cost shows."""
        n = len(data)
        pad = -n % 4
        total = 32 + n + pad
        self.out.write(b"".join((_EPB_HEAD.pack(EPB, total, iface, ts_ns >> 32,
                                                ts_ns & 0xFFFFFFFF, n, orig_len),
                                 data, _PADS[pad], _TAIL.pack(total))))
        self.frames += 1


class PcapWriter:
    """A classic pcap file (nanosecond resolution, magic 0xA1B23C4D, little
    endian) with the same ``add_interface`` / ``write`` calls as
    :class:`PcapngWriter`; pcap holds one link type, so only one interface."""

    _REC = struct.Struct("<IIII")

    def __init__(self, out):
        self.out = out
        self.interfaces = 0
        self.frames = 0

    def add_interface(self, linktype: int, snaplen: int = DEFAULT_SNAPLEN,
                      name: str | None = None) -> int:
        if self.interfaces:
            raise ValueError("pcap holds one interface (link type): write pcapng")
        self.out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))
        self.interfaces = 1
        return 0

    def write(self, ts_ns: int, data, *, iface: int = 0, orig_len: int | None = None,
              comments=()):
        n = len(data)
        sec, ns = divmod(ts_ns, 1_000_000_000)
        self.out.write(self._REC.pack(sec, ns, n, n if orig_len is None else orig_len))
        self.out.write(data)
        self.frames += 1

    def write_frame(self, ts_ns: int, data, iface: int, orig_len: int):
        self.write(ts_ns, data, orig_len=orig_len)


# -- synthetic frames --------------------------------------------------------

_ETH = headers.ETHERNET
_IP4 = headers.IPV4                         # RFC 791, declared in dicomwire.headers
_IP6 = struct.Struct("!IHBB16s16s")         # RFC 8200
_TCP = headers.TCP                          # RFC 9293, no options
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def internet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of IP and TCP headers."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_frame(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
              payload: bytes = b"", ident: int = 1) -> bytes:
    """Ethernet (zero MACs, as Linux loopback) + IPv4 or IPv6 (by the
    address text) + TCP without options, window 65535, checksums correct."""
    v6 = ":" in src
    s, d = (socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, a) for a in (src, dst))
    tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                    65535, 0, 0) + payload
    pseudo = s + d + (struct.pack("!IxxxB", len(tcp), 6) if v6 else
                      struct.pack("!xBH", 6, len(tcp)))
    c = internet_checksum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    if v6:
        ip = _IP6.pack(6 << 28, len(tcp), 6, 64, s, d)
        return _ETH.pack(bytes(6), bytes(6), 0x86DD) + ip + tcp
    head = _IP4.pack(0x45, 0, 20 + len(tcp), ident & 0xFFFF, 0x4000, 64, 6, 0, s, d)
    head = head[:10] + struct.pack("!H", internet_checksum(head)) + head[12:]
    return _ETH.pack(bytes(6), bytes(6), 0x0800) + head + tcp
