"""Length changes in the rewrite (core/reshape.py through core/rewrite.py),
on hand-made TCP conversations: the rewritten capture reassembles to the
new bytes in both directions, sequence and acknowledgment numbers and SACK
blocks move, a retransmission is rewritten as its original, IP lengths and
checksums stay right (and stay as wrong as they were), the reassembler
finds nothing new."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import capgen
from capgen import ACK, FIN, PSH, SYN
from support import rewrite_file

from dicomwire.capture import open_capture
from dicomwire.config import Config
from dicomwire.hookspecs import hookimpl
from dicomwire.pcapng_writer import internet_checksum
from dicomwire.pipeline import make_host, run
from dicomwire.reshape import Resizes
from dicomwire.rewrite import Edits, Rewriter

C, S, CP, SP = "10.0.0.1", "10.0.0.2", 40000, 5000


class Bytes:
    """A stream dissector that keeps every direction's bytes and gaps."""

    def __init__(self):
        self.got: dict = {}
        self.gaps: list = []

    @hookimpl
    def dicomwire_stream_dissector(self, stream):
        return self

    def data(self, direction, offset, payload, frame, ts):
        buf = self.got.setdefault(direction, bytearray())
        assert offset == len(buf)
        buf += payload

    def gap(self, direction, offset, size, frame, ts):
        self.gaps.append((direction, offset, size))

    def close(self):
        pass


def read(path):
    config = Config()
    host = make_host(config)
    rec = Bytes()
    host.register(rec, "bytes")
    result = run(str(path), config, host)
    return rec, result


def conversation(v6: bool, sack: bool = True):
    """SYN, three client segments, a SACK of the third while the second is
    missing, the second retransmitted, server data, more client data, FINs."""
    mk = capgen.ipv6_tcp if v6 else capgen.ipv4_tcp
    c, s = 1001, 5001
    opt = (b"\x01\x01\x05\x0a" + (c + 20).to_bytes(4, "big") + (c + 30).to_bytes(4, "big")
           if sack else b"")
    return [mk(C, S, CP, SP, 1000, 0, SYN),
            mk(S, C, SP, CP, 5000, c, SYN | ACK),
            mk(C, S, CP, SP, c, s, ACK),
            mk(C, S, CP, SP, c, s, PSH | ACK, b"A" * 10),
            mk(C, S, CP, SP, c + 10, s, PSH | ACK, b"B" * 10),
            mk(C, S, CP, SP, c + 20, s, PSH | ACK, b"C" * 10),
            mk(S, C, SP, CP, s, c + 10, ACK, options=opt),
            mk(C, S, CP, SP, c + 10, s, PSH | ACK, b"B" * 10),      # retransmission
            mk(S, C, SP, CP, s, c + 30, PSH | ACK, b"xyz"),
            mk(C, S, CP, SP, c + 30, s + 3, ACK),
            mk(C, S, CP, SP, c + 30, s + 3, PSH | ACK, b"DDDDD"),
            mk(S, C, SP, CP, s + 3, c + 35, ACK),
            mk(C, S, CP, SP, c + 35, s + 3, FIN | ACK),
            mk(S, C, SP, CP, s + 3, c + 36, FIN | ACK),
            mk(C, S, CP, SP, c + 36, s + 4, ACK)]


def write(tmp_path, packets, name="in.pcap"):
    path = tmp_path / name
    frames = [(1_000_000 * (i + 1), capgen.ethernet(p)) for i, p in enumerate(packets)]
    path.write_bytes(capgen.pcap(frames))
    return path


def rewritten(tmp_path, src, edits):
    _rec, result = read(src)
    out = tmp_path / "out.pcap"
    rewrite_file(src, out, Rewriter(result.streams, edits))
    return out, result


def frames(path):
    with open_capture(str(path)) as cap:
        return [(bytes(d), orig) for _n, _ts, _lt, d, orig, _i in cap]


def tcp_fields(frame: bytes, v6: bool):
    ip = 14
    tcp = ip + (40 if v6 else (frame[ip] & 15) * 4)
    seq = int.from_bytes(frame[tcp + 4:tcp + 8], "big")
    ack = int.from_bytes(frame[tcp + 8:tcp + 12], "big")
    end = 54 + int.from_bytes(frame[18:20], "big") if v6 else \
        14 + int.from_bytes(frame[16:18], "big")
    return seq, ack, frame[tcp + (frame[tcp + 12] >> 4) * 4:end], tcp


def checksums(frame: bytes, v6: bool):
    """(IPv4 header check, TCP check): 0 where right."""
    _s, _a, _p, tcp = tcp_fields(frame, v6)
    end = 54 + int.from_bytes(frame[18:20], "big") if v6 else \
        14 + int.from_bytes(frame[16:18], "big")
    seg = frame[tcp:end]                       # not the Ethernet padding
    if v6:
        pseudo = frame[22:54] + len(seg).to_bytes(4, "big") + b"\0\0\0\x06"
        return 0, internet_checksum(pseudo + seg)
    pseudo = frame[26:34] + b"\0\x06" + len(seg).to_bytes(2, "big")
    return internet_checksum(frame[14:tcp]), internet_checksum(pseudo + seg)


def findings(result):
    return Counter(i.field.name for i in result.expert.infos)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_both_directions_grow_and_shrink_and_everything_after_moves(tmp_path, v6):
    src = write(tmp_path, conversation(v6))
    client, server = Edits(), Edits()
    client.replace(12, 6, b"0123456789")          # +4, inside the second segment
    client.put(32, b"dd")                         # same length, after the change
    server.replace(0, 3, b"Q")                    # -2
    out, before = rewritten(tmp_path, src, {(0, 0): client, (0, 1): server})
    rec, after = read(out)
    assert bytes(rec.got[0]) == b"A" * 10 + b"BB0123456789BB" + b"C" * 10 + b"DDddD"
    assert bytes(rec.got[1]) == b"Q"
    assert not rec.gaps
    assert findings(after) == findings(before)
    new = frames(out)
    f = [tcp_fields(d, v6) for d, _o in new]
    assert f[4][2] == b"BB0123456789BB" and f[7][2] == f[4][2]     # retransmission alike
    assert (f[5][0], f[10][0], f[12][0]) == (1025, 1035, 1040)        # client seq moved
    assert (f[6][1], f[8][1], f[11][1], f[13][1]) == (1011, 1035, 1040, 1041)   # acks
    assert (f[9][1], f[12][1], f[14][1]) == (5002, 5002, 5003)        # server side -2
    sack = new[6][0][f[6][3] + 24:f[6][3] + 32]
    assert sack == (1025).to_bytes(4, "big") + (1035).to_bytes(4, "big")
    for data, orig in new:
        assert orig == len(data)
        assert checksums(data, v6) == (0, 0)
    old = frames(src)
    assert len(new[4][0]) == len(old[4][0]) + 4 and new[0] == old[0]


def test_a_wrong_checksum_stays_as_wrong(tmp_path):
    """An offloaded checksum (the capturing host left it to the card) is
    not made right, nor more wrong: the same residue after the rewrite."""
    packets = conversation(False, sack=False)
    p = bytearray(packets[4])
    p[36] ^= 0x5A                                      # TCP checksum of frame 5
    packets[4] = bytes(p)
    src = write(tmp_path, packets)
    e = Edits()
    e.replace(12, 6, b"0123456789")
    out, _ = rewritten(tmp_path, src, {(0, 0): e})
    was, now = frames(src)[4][0], frames(out)[4][0]
    assert checksums(was, False)[1] != 0
    assert checksums(now, False) == checksums(was, False)


def test_a_range_across_segments_and_a_shrink_that_empties_one(tmp_path):
    """Old bytes 5..25 (three segments) become 3 bytes: the first segment
    keeps its head and the 3 new bytes; the second and the third keep what
    is after the range; nothing else moves but by -17."""
    src = write(tmp_path, conversation(False))
    e = Edits()
    e.replace(5, 20, b"xyz")
    out, _ = rewritten(tmp_path, src, {(0, 0): e})
    rec, _ = read(out)
    assert bytes(rec.got[0]) == b"AAAAAxyz" + b"C" * 5 + b"DDDDD"
    f = [tcp_fields(d, False) for d, _o in frames(out)]
    assert f[3][2] == b"AAAAAxyz" and f[4][2] == b"" and f[7][2] == b""
    assert f[5][2] == b"CCCCC" and f[5][0] == 1001 + 8
    assert f[8][1] == 1001 + 13


def test_the_map_and_its_inverse():
    r = Resizes([(10, 5, b"1234567"), (30, 10, b"")])
    assert [r.new_offset(x) for x in (0, 10, 12, 14, 15, 29, 30, 35, 40, 50)] == \
        [0, 10, 12, 14, 17, 31, 32, 32, 32, 42]
    assert [r.old_offset(y) for y in (0, 10, 17, 31, 32, 42)] == [0, 10, 15, 29, 40, 50]
    e = Edits()
    with pytest.raises(ValueError):
        e.replace(4, 0, b"x")


def test_a_cut_frame_stays_cut_and_its_original_length_moves(tmp_path):
    packets = conversation(False)
    frames_in = [(1_000_000 * (i + 1), capgen.ethernet(p)) for i, p in enumerate(packets)]
    ts, data = frames_in[4]
    frames_in[4] = (ts, data[:60], len(data))          # snap length 60: 6 payload bytes
    src = tmp_path / "cut.pcap"
    src.write_bytes(capgen.pcap(frames_in))
    e = Edits()
    e.replace(12, 6, b"0123456789")
    out, _ = rewritten(tmp_path, src, {(0, 0): e})
    data, orig = frames(out)[4]
    assert len(data) == 60 and orig == len(packets[4]) + 14 + 4
    assert data[54:] == b"BB0123"


def test_a_segment_past_the_ip_length_field_is_a_clear_error(tmp_path):
    """An IPv4 segment of 65 495 bytes cannot take 100 more: the rewrite
    says which frame, as a ValueError (the command prints it, exit 2)."""
    from dicomwire.reshape import LengthError
    mk = capgen.ipv4_tcp
    big = b"X" * (65535 - 40)
    packets = [mk(C, S, CP, SP, 1000, 0, SYN), mk(S, C, SP, CP, 5000, 1001, SYN | ACK),
               mk(C, S, CP, SP, 1001, 5001, PSH | ACK, big)]
    src = write(tmp_path, packets)
    e = Edits()
    e.replace(10, 10, b"Y" * 110)
    with pytest.raises(LengthError, match="frame 3: .* 65635 bytes"):
        rewritten(tmp_path, src, {(0, 0): e})
    assert issubclass(LengthError, ValueError)


@settings(max_examples=400)
@example(b"\x00\x00", b"\xff\xf9", 0)          # comes to 0xFFFF: the checksum is 0x0000
@given(st.binary(min_size=2, max_size=64), st.binary(min_size=2, max_size=64),
       st.integers(0, 31))
def test_a_moved_checksum_is_the_one_a_sender_computes(data, word, at):
    """dicomwire.checksum.moved (RFC 1624 eqn. 3) against the checksum
    computed afresh (RFC 1071) over the words covered, before and after two
    bytes change; what it covers is never all zeros (a pseudo header holds
    the protocol), so afresh is never 0xFFFF, and neither is the update."""
    from dicomwire.checksum import moved, sum16
    old = b"\x00\x06" + data + b"\x00" * (len(data) & 1)
    at = 2 + 2 * (at % ((len(old) - 2) // 2))
    new = old[:at] + word[:2] + old[at + 2:]
    got = moved(internet_checksum(old), sum16(new) - sum16(old))
    assert got == internet_checksum(new) and got != 0xFFFF
    assert moved(0x1234, sum16(old) - sum16(old)) == 0x1234      # nothing moved: as it was
