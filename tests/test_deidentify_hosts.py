"""``dicomwire deidentify --hosts`` (issue 17): IP and MAC addresses of every
frame's headers pseudonymised consistently, by class, checksums kept right
where they were right. The DICOM traffic is a real-peer capture of the
corpus moved onto other addresses (its checksums computed anew, so they are
right before), with an ARP exchange and a DNS query beside it."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

import capgen
from dicomwire.capture import open_capture
from dicomwire.rewrite_hosts import AddressMap, HeaderMapper

CORPUS = Path(__file__).resolve().parent / "corpus" / "captures"
MAC_C, MAC_S = bytes.fromhex("001122334455"), bytes.fromhex("00aabbccddee")


def moved(name, client, server, *, v6=False) -> bytes:
    """A corpus capture (loopback, both ends 127.0.0.1) with the client (the
    higher port) on ``client``, the server on ``server``, real MACs and
    correct checksums; then an ARP request and reply and a DNS query."""
    frames = []
    with open_capture(str(CORPUS / f"{name}.pcap")) as cap:
        for _n, ts, _lt, data, _orig, _i in cap:
            ihl = (data[14] & 15) * 4
            seg = bytearray(data[14 + ihl:14 + struct.unpack_from("!H", data, 16)[0]])
            sport, dport = struct.unpack_from("!HH", seg)
            src, dst = (client, server) if sport > dport else (server, client)
            macs = (MAC_S, MAC_C) if sport > dport else (MAC_C, MAC_S)
            seg[16:18] = b"\0\0"
            a, b = capgen.addr(src), capgen.addr(dst)
            pseudo = a + b + (struct.pack("!IxxxB", len(seg), 6) if v6 else
                              struct.pack("!xBH", 6, len(seg)))
            seg[16:18] = struct.pack("!H", capgen.checksum(pseudo + bytes(seg)))
            ip = (capgen.ipv6(src, dst, 6, bytes(seg)) if v6 else
                  capgen.ipv4(src, dst, 6, bytes(seg)))
            frames.append((ts, capgen.ethernet(ip, dst=macs[0], src=macs[1])))
    ts = frames[-1][0]
    if not v6:
        arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, MAC_C, capgen.addr(client),
                          bytes(6), capgen.addr(server))
        frames.append((ts + 1, capgen.ethernet(arp, capgen.ETH_ARP, dst=b"\xff" * 6,
                                               src=MAC_C)))
    dns = capgen.udp(client, server, 5353 + 1, 53, b"\x12\x34" + bytes(10))
    ip = capgen.ipv6(client, server, 17, dns) if v6 else capgen.ipv4(client, server, 17, dns)
    frames.append((ts + 2, capgen.ethernet(ip, dst=MAC_S, src=MAC_C)))
    return capgen.pcap(frames, nanosecond=True)


def tshark_fields(path, *fields) -> list[list[str]]:
    p = subprocess.run(["tshark", "-r", str(path), "-o", "dicom.tcp.port:11112",
                        "-o", "tcp.check_checksum:TRUE",
                        "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                        "-T", "fields", *sum((["-e", f] for f in fields), [])],
                       capture_output=True, text=True, timeout=60)
    return [line.split("\t") for line in p.stdout.splitlines()]


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")
@pytest.mark.parametrize("client, server, v6", [
    ("192.168.7.20", "10.1.2.3", False),
    ("fe80::1:2ff:fe03:405", "2001:db8:1::10", True),
])
def test_addresses_replaced_by_class_checksums_kept(cli, tmp_path, client, server, v6):
    src, out = tmp_path / "in.pcap", tmp_path / "out.pcapng"
    src.write_bytes(moved("move_with_callback", client, server, v6=v6))
    r = cli("deidentify", "-q", str(src), "-o", str(out), "--hosts", ok=True)
    assert "PDU sequence identical" in r.stdout
    assert "none of 4 original addresses found" in r.stdout, r.stdout
    ip = "ipv6" if v6 else "ip"
    fields = (f"{ip}.src", f"{ip}.dst", "eth.src", "eth.dst", "tcp.checksum.status",
              "udp.checksum.status", "dicom.pdu.type")
    before = tshark_fields(src, *fields)
    after = tshark_fields(out, *fields)
    assert len(after) == len(before) and sum(1 for f in after if f[6]) >= 10   # DICOM seen
    # Checksums: right before (computed anew), right after; PDUs alike.
    assert [f[4:] for f in after] == [f[4:] for f in before]
    assert {f[4] for f in after if f[4]} == {"1"} and {f[5] for f in after if f[5]} == {"1"}
    seen = {a for f in after for a in f[:4] if a}
    assert not seen & {client, server, "00:11:22:33:44:55", "00:aa:bb:cc:dd:ee"}
    new_client = {f[0] for f, b in zip(after, before) if b[0] == client}
    new_server = {f[0] for f, b in zip(after, before) if b[0] == server}
    assert len(new_client) == len(new_server) == 1 and new_client != new_server
    nc, ns = ipaddress.ip_address(new_client.pop()), ipaddress.ip_address(new_server.pop())
    if v6:
        assert nc.is_link_local and str(nc).startswith("fe80::")
        assert ns in ipaddress.ip_network("2000::/3") and not ns.is_private
    else:
        assert nc in ipaddress.ip_network("192.168.0.0/16")
        assert ns in ipaddress.ip_network("10.0.0.0/8")
    macs = {a for f in after for a in f[2:4] if a}
    assert "ff:ff:ff:ff:ff:ff" in macs or v6            # broadcast kept
    for m in macs - {"ff:ff:ff:ff:ff:ff"}:
        assert int(m[:2], 16) & 3 == 2                  # unicast, locally administered
    if not v6:                                          # ARP names the same pseudonyms
        arp = tshark_fields(out, "arp.src.proto_ipv4", "arp.dst.proto_ipv4", "arp.src.hw_mac")
        row = next(f for f in arp if f[0])
        assert row[0] == str(nc) and row[1] == str(ns) and row[2] in macs
    # The same streams, under the new addresses.
    s_in = cli("streams", str(src), ok=True).stdout
    s_out = cli("streams", str(out), ok=True).stdout
    assert len(s_in.splitlines()) == len(s_out.splitlines())
    assert client not in s_out and str(nc) in s_out
    assert "may name addresses in their payload" in r.stdout     # the DNS query


def test_the_same_key_maps_alike_and_a_wrong_checksum_stays_wrong(cli, tmp_path):
    src = CORPUS / "move_with_callback.pcap"                 # loopback: offloaded checksums
    for n in (1, 2):
        cli("deidentify", "-q", str(src), "-o", str(tmp_path / f"{n}.pcapng"), "--hosts",
            "--key", "k", ok=True)
    assert (tmp_path / "1.pcapng").read_bytes() == (tmp_path / "2.pcapng").read_bytes()
    if shutil.which("tshark"):
        f = ("ip.src", "tcp.checksum.status", "ip.checksum.status")
        before, after = tshark_fields(src, *f), tshark_fields(tmp_path / "1.pcapng", *f)
        assert [x[1:] for x in after] == [x[1:] for x in before]
        assert {x[0] for x in before} == {"127.0.0.1"}
        new = {x[0] for x in after}
        assert len(new) == 1 and new != {"127.0.0.1"} and new.pop().startswith("127.")


def test_address_classes_and_bijection():
    m = AddressMap(b"key")
    a4 = lambda t: socket.inet_ntoa(m.ipv4(socket.inet_aton(t)))      # noqa: E731
    a6 = lambda t: socket.inet_ntop(socket.AF_INET6, m.ipv6(           # noqa: E731
        socket.inet_pton(socket.AF_INET6, t)))
    for kept in ("0.0.0.0", "255.255.255.255", "224.0.0.251", "239.1.2.3"):
        assert a4(kept) == kept
    for kept in ("::", "::1", "ff02::1"):
        assert a6(kept) == kept
    # Prefixes preserved within the range: a /24 stays a /24.
    x, y = a4("172.16.5.1"), a4("172.16.5.200")
    assert x.rsplit(".", 1)[0] == y.rsplit(".", 1)[0] and x != y
    assert ipaddress.ip_address(x) in ipaddress.ip_network("172.16.0.0/12")
    pub = [a4(f"8.8.{i}.{j}") for i in range(4) for j in range(64)]
    assert len(set(pub)) == len(pub) and not any(ipaddress.ip_address(p).is_private
                                                 for p in pub)
    assert a6("::ffff:192.168.1.1").startswith("::ffff:192.168.")
    assert a6("fd12:3456::1").startswith("fd")
    mac = m.mac(bytes.fromhex("3c22fb000001"))
    assert mac[0] & 3 == 2 and m.mac(bytes.fromhex("3c22fb000001")) == mac
    assert m.mac(b"\xff" * 6) == b"\xff" * 6 and m.mac(bytes.fromhex("01005e000001"))[0] == 1
    assert AddressMap(b"key").ipv4(socket.inet_aton("10.9.8.7")) == \
        m.ipv4(socket.inet_aton("10.9.8.7"))


@pytest.mark.parametrize("linktype, wrap, at", [
    (capgen.LT_SLL, capgen.sll, 16), (capgen.LT_SLL2, capgen.sll2, 20),
    (capgen.LT_ETHERNET, lambda p: capgen.ethernet(p, vlans=[10]), 18),
])
def test_other_link_layers_and_fragments(linktype, wrap, at):
    """SLL's sender address, VLAN tags, IP fragments (a TCP header in the
    first only): addresses mapped, the IPv4 header checksum and the first
    fragment's TCP checksum (over the whole segment) right."""
    m = HeaderMapper(AddressMap(b"k"))
    seg = capgen.tcp("10.0.0.1", "10.0.0.2", 40000, 104, 1, 1, 0x18, b"x" * 40)
    frags = capgen.ipv4_fragments(capgen.ipv4("10.0.0.1", "10.0.0.2", 6, seg, df=False), 24)
    outs = [m.frame(linktype, wrap(pkt)) for pkt in frags]
    for out in outs:
        ip = bytes(out[at:at + 20])
        assert ip[12:20] == m.map.ipv4(capgen.addr("10.0.0.1")) + m.map.ipv4(
            capgen.addr("10.0.0.2"))
        assert capgen.checksum(ip) == 0
        assert m.map.mac(capgen.MAC_A) in bytes(out[:at]) and capgen.MAC_A not in bytes(out)
    tcp = bytes(outs[0][at + 20:at + 44]) + seg[24:]
    pseudo = bytes(outs[0][at + 12:at + 20]) + struct.pack("!xBH", 6, len(seg))
    assert capgen.checksum(pseudo + tcp) == 0
    assert m.frame(linktype, b"\x00\x01") is None                  # too short: as it is


@pytest.mark.parametrize("v6, proto", [(False, 6), (True, 6), (False, 17), (True, 17)])
def test_a_checksum_that_comes_to_zero_is_what_a_sender_sends(v6, proto):
    """A frame whose checksums come to zero on its new addresses (payload
    word and IP ident chosen so) is rewritten into the very bytes a sender
    on those addresses sends: TCP and the IPv4 header 0x0000, UDP 0xFFFF
    (RFC 768). Eqn. 3 of RFC 1624 taken modulo 0xFFFF gave 0xFFFF in TCP,
    which Wireshark flags as wrong: one frame in 65,535 or so."""
    m = HeaderMapper(AddressMap(b"zero"))
    a, b = ("fe80::1:2ff:fe03:405", "2001:db8:1::10") if v6 else ("192.168.7.20", "10.1.2.3")
    new_of = m.map.ipv6 if v6 else m.map.ipv4
    na, nb = (socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, new_of(capgen.addr(x)))
              for x in (a, b))

    def frame(src, dst, word, ident, macs):
        body = b"DICO" + struct.pack("!H", word) + b"M-"       # the word aligned
        l4 = (capgen.tcp(src, dst, 40000, 104, 7, 9, 0x18, body) if proto == 6 else
              capgen.udp(src, dst, 40000, 104, body))
        ip = (capgen.ipv6(src, dst, proto, l4) if v6 else
              capgen.ipv4(src, dst, proto, l4, ident=ident))
        return capgen.ethernet(ip, dst=macs[0], src=macs[1])

    # A sum S with a zero word comes to ~S; that word added makes it 0xFFFF.
    probe = frame(na, nb, 0, 0, (MAC_S, MAC_C))
    l4_at = 14 + (40 if v6 else 20)
    word = struct.unpack_from("!H", probe, l4_at + (16 if proto == 6 else 6))[0]
    ident = struct.unpack_from("!H", probe, 24)[0]
    new_macs = (m.map.mac(MAC_S), m.map.mac(MAC_C))
    want = frame(na, nb, word, ident, new_macs)
    got = m.frame(capgen.LT_ETHERNET, frame(a, b, word, ident, (MAC_S, MAC_C)))
    at = l4_at + (16 if proto == 6 else 6)
    assert want[at:at + 2] == (b"\0\0" if proto == 6 else b"\xff\xff")
    assert v6 or want[24:26] == b"\0\0"
    assert bytes(got) == want


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in CORPUS.glob("*.pcap")))
def test_every_corpus_capture_with_hosts(cli, tmp_path, name):
    """Every real-peer capture with --hosts: the same PDUs and findings, no
    original address in the headers, tshark's DICOM PDUs alike."""
    src, out = CORPUS / f"{name}.pcap", tmp_path / "o.pcap"
    r = cli("deidentify", "-q", str(src), "-o", str(out), "--hosts", ok=True)
    assert "PDU sequence identical" in r.stdout and "FAILED" not in r.stdout
    assert "original addresses found in the output's frame headers" in r.stdout
    if shutil.which("tshark"):
        pdus = ("dicom.pdu.type",)
        before = tshark_fields(src, *pdus)
        assert tshark_fields(out, *pdus) == before
        assert "127.0.0.1" not in {f[0] for f in tshark_fields(out, "ip.src")}


def test_an_original_address_left_in_a_header_fails_the_check():
    """The check's verdict: an original in the output's headers is a leak,
    unless it is also another address's pseudonym (then it cannot be told)."""
    from dicomwire.exporters.deidentify.hosts import leaks
    m = HeaderMapper(AddressMap(b"k"))
    a, b = capgen.addr("10.0.0.1"), capgen.addr("10.0.0.2")
    new_a = m.map.ipv4(a)
    m.map.ipv4(b)
    assert leaks(m, {new_a: 1, b: 7}) == [("10.0.0.2", 7)]
    m.map.changed[new_a] = b"\x0a\x00\x00\x09"          # new_a also an original
    assert leaks(m, {new_a: 1}) == []
