"""dicomwire.link: every link type, VLANs, IP options and extension headers,
fragments, non-TCP traffic, padding, short frames; and a round trip of every
capture format x link type through :func:`dicomwire.pipeline.run`."""

from __future__ import annotations

import gzip
import io
import struct

import pytest

import capgen as g

from dicomwire.link import (
    MAX_FRAG_DATAGRAMS, LinkDecoder, reverse_flow, split_flow)
from dicomwire.config import Config
from dicomwire.pipeline import make_host, run

C4, S4 = "192.0.2.1", "198.51.100.2"
C6, S6 = "2001:db8::1", "2001:db8:ffff::2"
SEQ, ACKN = 0x01020304, 0xA0B0C0D0
PAYLOAD = b"DICOM-PDU:" + bytes(range(256))


def flow(src, dst, sport=40000, dport=104):
    return g.addr(src) + g.addr(dst) + struct.pack("!HH", sport, dport)


def seg4(payload=PAYLOAD, flags=g.PSH | g.ACK, **kw):
    return g.ipv4_tcp(C4, S4, 40000, 104, SEQ, ACKN, flags, payload, **kw)


def seg6(payload=PAYLOAD, flags=g.PSH | g.ACK, **kw):
    return g.ipv6_tcp(C6, S6, 40000, 104, SEQ, ACKN, flags, payload, **kw)


EXPECT4 = (flow(C4, S4), SEQ, ACKN, g.PSH | g.ACK, PAYLOAD, 0)
EXPECT6 = (flow(C6, S6), SEQ, ACKN, g.PSH | g.ACK, PAYLOAD, 0)


def decode(linktype, frame, dec=None):
    dec = dec or LinkDecoder()
    one = dec.decode(linktype, frame)
    two = dec.decoder(linktype)(frame)          # the pipeline's way
    assert one == two
    return one


# --- every link type ----------------------------------------------------------

# (id, linktype, wrap(ip packet) -> frame, IP versions it carries)
LINKS = [
    ("ethernet", 1, lambda p: g.ethernet(p), (4, 6)),
    ("vlan", 1, lambda p: g.ethernet(p, vlans=[42]), (4, 6)),
    ("qinq", 1, lambda p: g.qinq(p), (4, 6)),
    ("qinq-9100", 1, lambda p: g.ethernet(p, vlans=[(0x9100, 7), (0x8100, 8)]), (4, 6)),
    ("triple-tag", 1, lambda p: g.ethernet(p, vlans=[(0x88A8, 1), (0x9200, 2), 3]), (4, 6)),
    ("sll", 113, g.sll, (4, 6)),
    ("sll2", 276, g.sll2, (4, 6)),
    ("null-le", 0, lambda p: g.null(p), (4, 6)),
    ("null-be", 0, lambda p: g.null(p, big_endian=True), (4, 6)),
    *[(f"null-{o}-af{af}", 0, (lambda af, be: lambda p: g.null(p, af, be))(af, o == "be"), (6,))
      for af in g.AF_INET6_VALUES for o in ("le", "be")],
    ("loop", 108, lambda p: g.loop(p), (4, 6)),
    *[(f"loop-af{af}", 108, (lambda af: lambda p: g.loop(p, af))(af), (6,))
      for af in g.AF_INET6_VALUES],
    ("raw101", 101, lambda p: p, (4, 6)),
    ("raw12", 12, lambda p: p, (4, 6)),
    ("raw14", 14, lambda p: p, (4, 6)),
    ("ipv4-228", 228, lambda p: p, (4,)),
    ("ipv6-229", 229, lambda p: p, (6,)),
]
LINK_CASES = [pytest.param(lt, w, v, id=f"{name}-v{v}")
              for name, lt, w, vs in LINKS for v in vs]


@pytest.mark.parametrize("linktype,wrap,version", LINK_CASES)
def test_every_link_type_same_segment(linktype, wrap, version):
    pkt, expect = (seg4(), EXPECT4) if version == 4 else (seg6(), EXPECT6)
    dec = LinkDecoder()
    assert decode(linktype, wrap(pkt), dec) == expect
    assert dec.stats.as_dict() == dict.fromkeys(dec.stats.__slots__, 0)
    assert dec.malformed == []


@pytest.mark.parametrize("linktype,wrap,version", LINK_CASES)
def test_every_link_type_tiny_payload_and_trailer(linktype, wrap, version):
    """Ethernet pads to 60 bytes; other links may carry trailing bytes: the
    payload is exactly the TCP payload, cut by the IP length."""
    pkt = seg4(b"ok") if version == 4 else seg6(b"ok")
    frame = wrap(pkt)
    if linktype != 1:
        frame += b"\xee" * 9                    # a trailer after the IP packet
    seg = decode(linktype, frame)
    assert seg[4] == b"ok" and seg[5] == 0


def test_ethernet_padding_trimmed_and_fast_path_equivalence():
    pkt = seg4(b"x")                             # 14 + 41 = 55 bytes: padded
    f = g.ethernet(pkt)
    assert len(f) == 60 and f[55:] == b"\0" * 5
    assert decode(1, f)[4] == b"x"
    assert decode(1, g.ethernet(seg4(b"")))[4] == b""
    # the general path (VLAN) gives the same tuple as the fast path
    for p in (seg4(), seg4(b"x"), seg4(b"", flags=g.SYN), seg4(options=b"\x02\x04\x05\xb4")):
        assert decode(1, g.ethernet(p)) == decode(1, g.ethernet(p, vlans=[5])) \
            == decode(101, p)


def test_flags_ns_and_tcp_options():
    all_flags = g.FIN | g.SYN | g.RST | g.PSH | g.ACK | g.URG | g.ECE | g.CWR | g.NS
    opts = b"\x02\x04\x05\xb4\x01\x03\x03\x07\x01\x01\x08\x0a" + b"\x11" * 8 + b"\x04\x02"
    for wrap in (g.ethernet, g.sll):
        lt = 1 if wrap is g.ethernet else 113
        seg = decode(lt, wrap(seg4(flags=all_flags, options=opts)))
        assert seg[3] == all_flags == 0x1FF
        assert seg[4] == PAYLOAD
        seg = decode(lt, wrap(seg6(flags=g.NS | g.ACK, options=b"\x01" * 40)))
        assert seg[3] == 0x110 and seg[4] == PAYLOAD


@pytest.mark.parametrize("ip_options", [
    b"\x94\x04\x00\x00",                                       # router alert
    b"\x01\x01\x01\x00",                                       # NOPs, EOL
    b"\x07\x27\x04" + b"\0" * 36 + b"\x00",                   # record route, 40 bytes
    b"\x44\x0c\x05\x00" + b"\0" * 8,                           # timestamp
])
@pytest.mark.parametrize("wrap,lt", [(g.ethernet, 1), (g.sll, 113), (lambda p: p, 101),
                                     (lambda p: g.ethernet(p, vlans=[9]), 1)])
def test_ipv4_options(ip_options, wrap, lt):
    pkt = seg4(ip_options=ip_options)
    assert (pkt[0] & 0x0F) * 4 == 20 + len(ip_options) + (-len(ip_options) % 4)
    assert decode(lt, wrap(pkt)) == EXPECT4


EXT_CHAINS = {
    "hop": [g.hop_by_hop()],
    "dest": [g.dest_opts()],
    "routing": [g.routing(["2001:db8::a", "2001:db8::b"])],
    "ah": [g.auth_hdr()],
    "hop-routing-dest": [g.hop_by_hop(), g.routing(), g.dest_opts(b"\x01\x0c" + b"\0" * 12)],
    "hop-dest-ah-dest": [g.hop_by_hop(), g.dest_opts(), g.auth_hdr(b"\0" * 16), g.dest_opts()],
    "atomic-fragment": [g.frag_hdr(0, False, 99)],              # RFC 6946
    "hop-atomic-fragment": [g.hop_by_hop(), g.frag_hdr(0, False, 98)],
}


@pytest.mark.parametrize("chain", EXT_CHAINS, ids=list(EXT_CHAINS))
@pytest.mark.parametrize("wrap,lt", [(g.ethernet, 1), (g.sll2, 276), (lambda p: p, 229),
                                     (lambda p: g.null(p, 28), 0)])
def test_ipv6_extension_headers(chain, wrap, lt):
    dec = LinkDecoder()
    assert decode(lt, wrap(seg6(ext_headers=EXT_CHAINS[chain])), dec) == EXPECT6
    assert dec.pending_fragments() == 0 and dec.stats.malformed == 0


def test_ipv6_extension_headers_then_not_tcp():
    dec = LinkDecoder()
    udp = g.udp(C6, S6, 5353, 5353, b"mdns")
    for pkt in (g.ipv6(C6, S6, g.P_UDP, udp, ext_headers=[g.hop_by_hop(), g.dest_opts()]),
                g.ipv6(C6, S6, g.P_NONE, b"", ext_headers=[g.routing()]),
                g.ipv6(C6, S6, g.P_ICMPV6, b"\x80\0\0\0\0\1\0\1")):
        assert dec.decode(1, g.ethernet(pkt)) is None
    assert dec.stats.non_tcp == 3 and dec.stats.malformed == 0


def test_ipv6_extension_header_overrunning_frame():
    bad = g.Ext(g.P_DSTOPTS, bytes((200,)) + b"\0" * 6)    # claims 1608 bytes
    pkt = g.ipv6(C6, S6, g.P_TCP, b"", ext_headers=[bad])
    dec = LinkDecoder()
    assert dec.decode(1, g.ethernet(pkt)) is None
    assert dec.stats.malformed == 1 and "overrun" in dec.malformed[0][1]


# --- IPv4 / IPv6 fragments ----------------------------------------------------


def v4_frags(size=64, payload=PAYLOAD, ident=0x4242):
    whole = seg4(payload, ident=ident, df=False)
    frags = g.ipv4_fragments(whole, size)
    assert len(frags) > 2
    return whole, frags


@pytest.mark.parametrize("order", ["in-order", "reversed", "duplicated", "middle-first",
                                   "overlapping"])
@pytest.mark.parametrize("wrap,lt", [(g.ethernet, 1), (g.sll, 113), (lambda p: p, 228),
                                     (lambda p: g.ethernet(p, vlans=[1, 2]), 1)])
def test_ipv4_fragments_reassembled(order, wrap, lt):
    whole, frags = v4_frags()
    seq = {"in-order": frags,
           "reversed": frags[::-1],
           "duplicated": [frags[0], frags[1], frags[0], frags[1]] + frags[2:-1]
                         + [frags[1]] + frags[-1:],
           "middle-first": frags[1:2] + frags[-1:] + frags[:1] + frags[2:-1],
           "overlapping": frags[:1] + g.ipv4_fragments(whole, 128)[1:] + frags[1:]}[order]
    dec = LinkDecoder()
    out = [dec.decode(lt, wrap(f)) for f in seq]
    done = [s for s in out if s is not None]
    assert done == [EXPECT4]
    first_complete = out.index(EXPECT4)
    assert all(s is None for s in out[:first_complete])
    assert dec.stats.reassembled == 1 and dec.stats.malformed == 0
    assert dec.stats.fragments == len(seq)              # every fragment counted
    if order in ("in-order", "reversed", "middle-first"):
        assert dec.pending_fragments() == 0


def test_ipv4_fragments_interleaved_datagrams_and_idents():
    _w1, f1 = v4_frags(ident=1)
    _w2, f2 = v4_frags(payload=b"second" * 40, ident=2)
    dec = LinkDecoder()
    got = []
    for a, b in zip(f1[::-1], f2):
        got += [dec.decode(1, g.ethernet(a)), dec.decode(1, g.ethernet(b))]
    got += [dec.decode(1, g.ethernet(b)) for b in f2[len(f1):]]
    got = [s for s in got if s is not None]
    assert [s[4] for s in got] == [PAYLOAD, b"second" * 40]
    assert dec.pending_fragments() == 0


def test_ipv4_fragment_first_only_is_pending():
    _w, frags = v4_frags()
    dec = LinkDecoder()
    assert dec.decode(1, g.ethernet(frags[0])) is None
    assert dec.decode(1, g.ethernet(frags[-1])) is None       # a hole remains
    assert dec.pending_fragments() == 1
    assert dec.stats.fragments == 2 and dec.stats.reassembled == 0


def test_truncated_fragment_is_malformed():
    _w, frags = v4_frags()
    dec = LinkDecoder()
    assert dec.decode(1, g.ethernet(frags[1][:40], pad=False)) is None
    assert dec.stats.malformed == 1 and "truncated IPv4 fragment" in dec.malformed[0][1]


def test_fragment_table_is_bounded():
    dec = LinkDecoder()
    for i in range(MAX_FRAG_DATAGRAMS + 5):
        _w, frags = v4_frags(ident=i)
        dec.decode(101, frags[0])
    assert dec.pending_fragments() == MAX_FRAG_DATAGRAMS
    assert dec.stats.frag_dropped == 5


@pytest.mark.parametrize("order", ["in-order", "reversed", "duplicated"])
@pytest.mark.parametrize("unfrag", [(), (g.hop_by_hop(),), (g.hop_by_hop(), g.routing())])
def test_ipv6_fragments_reassembled(order, unfrag):
    upper = g.tcp(C6, S6, 40000, 104, SEQ, ACKN, g.PSH | g.ACK, PAYLOAD)
    frags = g.ipv6_fragments(C6, S6, g.P_TCP, upper, 80, ident=0xDEADBEEF,
                             unfragmentable=unfrag)
    assert len(frags) == 4
    seq = {"in-order": frags, "reversed": frags[::-1],
           "duplicated": frags[:2] + frags[:2] + frags[2:]}[order]
    dec = LinkDecoder()
    out = [dec.decode(1, g.ethernet(f)) for f in seq]
    assert out[:-1] == [None] * (len(seq) - 1)
    assert out[-1] == EXPECT6
    assert dec.pending_fragments() == 0 and dec.stats.reassembled == 1


@pytest.mark.parametrize("tail", [[g.dest_opts()], [g.auth_hdr()],
                                  [g.auth_hdr(), g.dest_opts(b"\x01\x02\0\0")]],
                         ids=["dest", "ah", "ah-dest"])
@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_ipv6_fragments_with_fragmentable_extension_headers(tail, order):
    """AH and final destination options follow the fragment header (RFC 8200
    4.1): in later fragments those bytes are data, walked after reassembly."""
    upper = g.tcp(C6, S6, 40000, 104, SEQ, ACKN, g.PSH | g.ACK, PAYLOAD)
    frags = g.ipv6_fragments(C6, S6, g.P_TCP, upper, 80, ident=7,
                             unfragmentable=[g.hop_by_hop()], fragmentable=tail)
    dec = LinkDecoder()
    out = [dec.decode(1, g.ethernet(f)) for f in (frags if order == "in-order" else frags[::-1])]
    assert out == [None] * (len(frags) - 1) + [EXPECT6]
    assert dec.malformed == [] and dec.pending_fragments() == 0
    # UDP behind them: reassembled, then dropped as not TCP
    udp = g.ipv6_fragments(C6, S6, g.P_UDP, g.udp(C6, S6, 1, 2, b"u" * 200), 80, ident=8,
                           fragmentable=tail)
    assert [dec.decode(229, f) for f in udp] == [None] * len(udp)
    assert dec.stats.non_tcp == 1 and dec.pending_fragments() == 0


def test_ipv6_fragment_incomplete_is_pending():
    upper = g.tcp(C6, S6, 40000, 104, SEQ, ACKN, g.ACK, PAYLOAD)
    frags = g.ipv6_fragments(C6, S6, g.P_TCP, upper, 80, ident=5)
    dec = LinkDecoder()
    for f in frags[:-1]:
        assert dec.decode(229, f) is None
    assert dec.pending_fragments() == 1


def test_incomplete_fragments_reported_by_the_pass(tmp_path):
    _w, frags = v4_frags()
    pk = g.conversation(C4, S4, 40001, 104, [b"abc"])
    frames = [(i * 1000, g.ethernet(p)) for i, p in enumerate(pk + frags[:2])]
    p = tmp_path / "f.pcap"
    p.write_bytes(g.pcap(frames))
    res = run(str(p))
    assert res.link.pending_fragments() == 1
    assert res.link.malformed[-1] == (len(frames), "1 IP datagram(s) never completed by "
                                                   "their fragments")
    assert len(res.streams) == 1 and res.streams[0].dirs[0].bytes == 3


# --- not TCP, not IP, broken, unsupported -------------------------------------


def test_non_tcp_and_non_ip():
    dec = LinkDecoder()
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, g.MAC_A, g.addr(C4),
                      b"\0" * 6, g.addr(S4))
    udp4 = g.ipv4(C4, S4, g.P_UDP, g.udp(C4, S4, 53, 53, b"dns"))
    icmp = g.ipv4(C4, S4, g.P_ICMP, g.icmp_echo())
    udp6 = g.ipv6(C6, S6, g.P_UDP, g.udp(C6, S6, 53, 53, b"dns"))
    non_tcp = [(1, g.ethernet(udp4)), (1, g.ethernet(icmp)), (1, g.ethernet(udp6)),
               (113, g.sll(udp4)), (276, g.sll2(icmp)), (0, g.null(udp6)),
               (108, g.loop(icmp)), (101, udp4), (229, udp6),
               (1, g.ethernet(udp4, vlans=[3]))]
    non_ip = [(1, g.ethernet(arp, g.ETH_ARP)), (1, g.ethernet(arp, g.ETH_ARP, vlans=[3])),
              (113, g.sll(arp, g.ETH_ARP)), (276, g.sll2(arp, g.ETH_ARP)),
              (0, g.null(seg4(), af=7)), (108, g.loop(seg4(), af=99)),
              (101, b"\x50" + seg4()[1:]), (1, g.ethernet(b"\xaa" * 50, 0x88CC))]
    for lt, f in non_tcp + non_ip:
        assert decode(lt, f, dec) is None
    # decode() twice per frame in the helper: both counted
    assert dec.stats.non_tcp == 2 * len(non_tcp)
    assert dec.stats.non_ip == 2 * len(non_ip)
    assert dec.stats.malformed == 0


def test_malformed_headers():
    dec = LinkDecoder()
    bad_ihl = bytearray(seg4())
    bad_ihl[0] = 0x43                                   # IHL 12 bytes
    short_total = bytearray(seg4())
    struct.pack_into("!H", short_total, 2, 12)          # total < header
    bad_doff = bytearray(seg4())
    bad_doff[20 + 12] = 0x30                            # TCP header of 12 bytes
    overrun = bytearray(seg4(b""))
    struct.pack_into("!H", overrun, 2, 30)              # TCP header past the IP end
    for f in (bad_ihl, short_total, bad_doff, overrun):
        assert dec.decode(1, g.ethernet(bytes(f))) is None
    msgs = [m for _n, m in dec.malformed]
    assert msgs == ["bad IPv4 header (version/IHL 0x43)",
                    "IPv4 total length 12 shorter than its header",
                    "bad TCP data offset 12", "TCP header overruns the IP payload"]


def test_tso_zero_total_length():
    pkt = seg4(total_length=0)
    assert decode(101, pkt) == EXPECT4
    pkt6 = seg6(payload_length=0)
    assert decode(229, pkt6) == EXPECT6


@pytest.mark.parametrize("linktype,wrap,version", LINK_CASES)
def test_every_prefix_of_a_frame(linktype, wrap, version):
    """A frame cut anywhere (snaplen, broken capture): never an exception
    escaping SHORT; a segment only when its TCP header is complete, and then
    payload + missing is the whole payload."""
    pkt = seg4() if version == 4 else seg6()
    frame = wrap(pkt)
    link_hdr = len(frame) - len(pkt)
    tcp_end = link_hdr + (20 if version == 4 else 40) + 20
    dec = LinkDecoder()
    f = dec.decoder(linktype)
    for n in range(len(frame)):
        try:
            seg = f(frame[:n])
        except (struct.error, IndexError):
            dec.short()
            seg = None
        if n >= tcp_end:
            assert seg is not None, n
            assert seg[4] == PAYLOAD[:n - tcp_end] and seg[5] == len(PAYLOAD) - (n - tcp_end)
            assert seg[:4] == (EXPECT4 if version == 4 else EXPECT6)[:4]
        else:
            assert seg is None, n


def test_short_frames_counted_by_the_pass(tmp_path):
    pk = g.conversation(C4, S4, 40002, 104, [b"hello"], [b"hi"])
    short = g.ethernet(b"\x45\x00\x00\x28\x00\x01", pad=False)  # 20 bytes, claims IPv4
    assert len(short) == 20 and short[12:14] == b"\x08\x00"
    frames = [(0, g.ethernet(pk[0])), (1, short)] + [(i + 2, g.ethernet(p))
                                                     for i, p in enumerate(pk[1:])]
    frames.append((99, b"\x02" * 13))                 # not even an ethertype
    p = tmp_path / "short.pcap"
    p.write_bytes(g.pcap(frames))
    res = run(str(p))
    assert res.link.stats.malformed == 2
    assert res.link.malformed == [(2, "frame too short for its headers"),
                                  (len(frames), "frame too short for its headers")]
    assert len(res.streams) == 1
    assert (res.streams[0].dirs[0].bytes, res.streams[0].dirs[1].bytes) == (5, 2)
    assert res.problems() == 2


def test_unsupported_link_type_reported_once(tmp_path):
    dec = LinkDecoder()
    for _ in range(3):
        assert dec.decode(147, b"whatever") is None
    assert dec.stats.unsupported_link == 3
    assert dec.malformed == [(0, "link type 147 is not supported; its frames are skipped")]
    # through the pass, with a pcapng holding a supported and an unsupported interface
    pk = g.conversation(C4, S4, 40003, 104, [b"abcd"])
    blocks = [g.IDB(1), g.IDB(147)]
    for i, p in enumerate(pk):
        blocks += [g.EPB(0, g.ethernet(p), i), g.EPB(1, b"\x01" * 30, i)]
    path = tmp_path / "u.pcapng"
    path.write_bytes(g.pcapng(g.Section(blocks)))
    res = run(str(path))
    assert res.link.stats.unsupported_link == len(pk)
    assert [m for _n, m in res.link.malformed] == [
        "link type 147 is not supported; its frames are skipped"]
    assert res.streams[0].dirs[0].bytes == 4


def test_snaplen_missing_bytes_ipv6():
    frame = g.ethernet(seg6())
    cut = frame[:14 + 40 + 20 + 10]
    seg = decode(1, cut)
    assert seg[4] == PAYLOAD[:10] and seg[5] == len(PAYLOAD) - 10
    dec = LinkDecoder()
    assert dec.decode(1, frame[:14 + 40 + 16]) is None        # TCP header cut
    assert dec.stats.truncated == 1 and dec.stats.malformed == 0
    # Cut before the TCP flags (byte 14): too short to read, counted malformed.
    assert dec.decode(1, frame[:14 + 40 + 10]) is None
    assert dec.stats.truncated == 1 and dec.malformed == [(0, "frame too short for its headers")]


def test_split_and_reverse_flow():
    f4, f6 = flow(C4, S4), flow(C6, S6, 5, 6)
    assert split_flow(f4) == (g.addr(C4), 40000, g.addr(S4), 104)
    assert split_flow(f6) == (g.addr(C6), 5, g.addr(S6), 6)
    assert reverse_flow(f4) == flow(S4, C4, 104, 40000)
    assert reverse_flow(reverse_flow(f6)) == f6


# --- round trip: capture format x link type through the whole pass -----------

FORMATS = {
    "pcap-us-le": lambda fr, lt: g.pcap(fr, lt),
    "pcap-ns-be": lambda fr, lt: g.pcap(fr, lt, nanosecond=True, big_endian=True),
    "pcap-modified": lambda fr, lt: g.pcap(fr, lt, modified=True),
    "pcap-modified-be": lambda fr, lt: g.pcap(fr, lt, modified=True, big_endian=True),
    "pcapng-le": lambda fr, lt: g.simple_pcapng(fr, lt, tsresol=9),
    "pcapng-be": lambda fr, lt: g.simple_pcapng(fr, lt, big_endian=True),
    "pcap.gz": lambda fr, lt: gzip.compress(g.pcap(fr, lt, nanosecond=True), 1),
    "pcapng.gz": lambda fr, lt: gzip.compress(g.simple_pcapng(fr, lt), 1),
}
ROUND_LINKS = [x for x in LINKS if "-af" not in x[0]
               or x[0] in ("null-le-af10", "null-be-af24", "loop-af28")]
ROUND = [pytest.param(fmt, lt, w, v, id=f"{fmt}-{name}-v{v}")
         for fmt in FORMATS for name, lt, w, vs in ROUND_LINKS for v in vs]


@pytest.fixture(scope="module")
def host():
    """One plugin host for the many round trips (loading entry points each
    time would dominate the run); it is stateless without plugins."""
    return make_host(Config())


@pytest.fixture(scope="module")
def rt_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("round_trip")


@pytest.mark.parametrize("fmt,linktype,wrap,version", ROUND)
def test_round_trip(rt_dir, host, request, fmt, linktype, wrap, version):
    client, server = (C4, S4) if version == 4 else (C6, S6)
    c2s, s2c = [b"A" * 1000, b"B" * 3, PAYLOAD], [b"C" * 77, b"D" * 1400]
    pk = g.conversation(client, server, 51000, 11112, c2s, s2c)
    t0 = 1_700_000_000_000_001_000
    frames = [(t0 + i * 1_000_000, wrap(p)) for i, p in enumerate(pk)]
    path = rt_dir / request.node.callspec.id
    path.write_bytes(FORMATS[fmt](frames, linktype))
    res = run(str(path), host=host)
    assert res.warnings == [] and res.link.stats.malformed == 0
    assert res.frames == len(pk)
    assert len(res.streams) == 1
    s = res.streams[0]
    assert s.client == (g.addr(client), 51000) and s.server == (g.addr(server), 11112)
    assert s.client_known and s.close_reason == "fin"
    assert s.dirs[0].bytes == sum(map(len, c2s)) == 1000 + 3 + len(PAYLOAD)
    assert s.dirs[1].bytes == sum(map(len, s2c))
    # client: SYN, ACK, its data, ACKs of the server's data, FIN, last ACK
    assert (s.dirs[0].frames, s.dirs[1].frames) == (4 + len(c2s) + len(s2c),
                                                    2 + len(c2s) + len(s2c))
    assert s.first_ts == t0 and s.last_ts == frames[-1][0]
    assert res.problems() == 0


def test_round_trip_file_object_and_fragments():
    """Fragmented, VLAN-tagged IPv4 data inside a stream, read from a file object."""
    pk = g.conversation(C4, S4, 51001, 104, [PAYLOAD * 4])
    frags = g.ipv4_fragments(pk[3], 256)               # the data segment, in 5 pieces
    assert len(frags) == 5
    frames = pk[:3] + frags[::-1] + pk[4:]
    fr = [(i, g.ethernet(p, vlans=[10])) for i, p in enumerate(frames)]
    res = run(io.BytesIO(g.pcap(fr)))
    s = res.streams[0]
    assert s.dirs[0].bytes == len(PAYLOAD) * 4 and res.link.stats.reassembled == 1
    assert res.problems() == 0


def test_headers_cut_by_snaplen_are_truncation_not_malformed(tmp_path):
    # A record the snaplen cut inside the TCP header is a truncated frame
    # (orig_len says so), not a malformed one.
    frame = g.ethernet(seg6())
    p = tmp_path / "cut.pcap"
    p.write_bytes(g.pcap([(0, frame[:14 + 40 + 10], len(frame))]))
    res = run(str(p))
    assert res.link.stats.truncated == 1 and res.link.stats.malformed == 0
    assert res.problems() == 0
