"""The link, IP and TCP headers the engine reads, declared once on the spec
runtime, and the ``struct`` fast paths derived from them: what
:mod:`dicomwire.link` unpacks, the fast path's plain-segment check
(:data:`PLAIN`) and the frames :mod:`dicomwire.pcapng_writer` builds.
``tests/test_spec_runtime.py`` checks each against its declaration."""

from __future__ import annotations

from construct import Bytes, Int8ub, Int16ub, Int32ub, Struct

from dicomwire.spec import doc, struct_of

EthernetHeader = Struct(                      # IEEE 802.3 clause 3.2 (Ethernet II framing)
    doc("destination" / Bytes(6), "IEEE 802.3 3.2.4"),
    doc("source" / Bytes(6), "IEEE 802.3 3.2.5"),
    doc("ethertype" / Int16ub, "IEEE 802.3 3.2.6", text="0x0800 IPv4, 0x86DD IPv6, VLAN tags"),
)

IPv4Header = Struct(                          # RFC 791 3.1, without options
    doc("version_ihl" / Int8ub, "RFC 791 3.1", text="version (4) and header length in words"),
    "tos" / Int8ub,
    "total_length" / Int16ub,
    "identification" / Int16ub,
    doc("flags_fragment" / Int16ub, "RFC 791 3.1", text="DF, MF and the fragment offset"),
    "ttl" / Int8ub,
    doc("protocol" / Int8ub, "RFC 791 3.1", text="6 TCP"),
    "checksum" / Int16ub,
    "source" / Bytes(4),
    "destination" / Bytes(4),
)

TCPHeader = Struct(                           # RFC 9293 3.1, without options
    "source_port" / Int16ub,
    "destination_port" / Int16ub,
    "seq" / Int32ub,
    "ack" / Int32ub,
    doc("data_offset" / Int8ub, "RFC 9293 3.1", text="header length in words, high nibble"),
    doc("flags" / Int8ub, "RFC 9293 3.1", text="CWR ECE URG ACK PSH RST SYN FIN"),
    "window" / Int16ub,
    "checksum" / Int16ub,
    "urgent" / Int16ub,
)

# Ethernet + IPv4 + TCP back to back: the plain segment of the fast path.
PlainSegment = Struct("eth" / EthernetHeader, "ip" / IPv4Header, "tcp" / TCPHeader)

PLAIN_FIELDS = ("eth.ethertype", "ip.version_ihl", "ip.total_length", "ip.flags_fragment",
                "ip.protocol", "tcp.seq", "tcp.ack", "tcp.data_offset", "tcp.flags",
                "tcp.window")
# From the frame's first byte: what a plain segment's check reads.
PLAIN = struct_of(PlainSegment, only=PLAIN_FIELDS)
IPV4_LEADING = ("version_ihl", "tos", "total_length", "identification", "flags_fragment",
                "ttl", "protocol")
IPV4_HEAD = struct_of(IPv4Header, only=IPV4_LEADING)         # link: up to the protocol
TCP_FIELDS = ("seq", "ack", "data_offset", "flags", "window")
TCP_HEAD = struct_of(TCPHeader, only=TCP_FIELDS)              # link: from the header's start
ETHERNET = struct_of(EthernetHeader)                          # whole, for building frames
IPV4 = struct_of(IPv4Header)
TCP = struct_of(TCPHeader)
