"""``dicomwire deidentify`` on traffic as the wire and the capturing host
shape it (review of issue 17): segments offloaded by the capturing host
(IPv4 total length 0), IP fragments, retransmissions whose bytes differ,
and the output file itself (the input, a failed check, -o with a colon)."""

from __future__ import annotations

import os
import struct

import pytest

import capgen as cg
from dicomgen import CT_STORAGE, RELEASE_RP, RELEASE_RQ, assoc_ac, assoc_rq, pdata

from dicomwire.specs.dicom.command import encode_command

C, S = "10.0.0.1", "10.0.0.2"
SOPI = b"1.2.826.0.1.3680043.8.498.1234567890"
NAME, PID, BIRTH = b"DOE^JANE", b"PID778899", b"19750312"
SECRETS = (NAME, PID, BIRTH, SOPI)


def el(g, e, v: bytes) -> bytes:
    if len(v) % 2:
        v += b" "
    return struct.pack("<HHI", g, e, len(v)) + v


def dataset(extra=b"", pixels=64) -> bytes:
    return (el(0x0008, 0x0016, CT_STORAGE.encode() + b"\0") + el(0x0008, 0x0018, SOPI)
            + extra + el(0x0010, 0x0010, NAME) + el(0x0010, 0x0020, PID)
            + el(0x0010, 0x0030, BIRTH) + el(0x7FE0, 0x0010, bytes(pixels)))


def steps(ds=None):
    rq = encode_command(dict(CommandField=0x0001, MessageID=2, Priority=0,
                             AffectedSOPClassUID=CT_STORAGE, AffectedSOPInstanceUID=SOPI.decode(),
                             CommandDataSetType=0x0000))
    rsp = encode_command(dict(CommandField=0x8001, MessageIDBeingRespondedTo=2,
                              AffectedSOPClassUID=CT_STORAGE,
                              AffectedSOPInstanceUID=SOPI.decode(), CommandDataSetType=0x0101,
                              Status=0))
    return [(0, assoc_rq()), (1, assoc_ac()), (0, pdata((3, 3, rq))),
            (0, pdata((3, 2, dataset() if ds is None else ds))), (1, pdata((3, 3, rsp))),
            (0, RELEASE_RQ), (1, RELEASE_RP)]


def packets(ds=None, split_at=None):
    """The IP packets of one C-STORE; ``split_at``: the data set's PDU sent in
    two segments, cut at that byte string's fourth byte."""
    st = steps(ds)
    if split_at is not None:
        pd = st[3][1]
        cut = pd.index(split_at) + 4
        st[3] = (0, pd[:cut])
        st.insert(4, (0, pd[cut:]))
    return cg.exchange(C, S, 50000, 104, st)


def write(path, frames, linktype=cg.LT_ETHERNET):
    path.write_bytes(cg.pcap([(1_700_000_000_000_000_000 + i * 1000, f)
                              for i, f in enumerate(frames)], linktype))
    return path


def deidentify(cli, src, out, *extra, ok=False):
    return cli("deidentify", "-q", str(src), "-o", str(out), *extra, ok=ok)


def left(path) -> list[bytes]:
    data = path.read_bytes()
    return [v for v in SECRETS if v in data]


# -- segments offloaded by the capturing host (TSO): IPv4 total length 0 ----------

@pytest.mark.parametrize("split", [None, NAME], ids=["whole", "name-split"])
def test_offloaded_frames_with_total_length_zero_are_rewritten(cli, tmp_path, split):
    """The first pass reads a total length of 0 as "to the frame's end"
    (dicomwire.link.ip_end); the rewrite's Ethernet shortcut read it as an
    empty segment and left every planned edit of those frames undone."""
    frames = []
    for p in packets(split_at=split):
        p = bytearray(p)
        if p[12:16] == cg.addr(C):              # the capturing (sending) host's frames
            p[2:4] = b"\0\0"
        frames.append(cg.ethernet(bytes(p), pad=False))
    src = write(tmp_path / "tso.pcap", frames)
    out = tmp_path / "out.pcap"
    r = deidentify(cli, src, out)
    assert r.returncode == 0, r.stdout
    assert "PDU sequence identical" in r.stdout
    assert not left(out)


# -- a retransmission whose bytes differ from the first copy ------------------------

def _tcp_checksum(p: bytes) -> bytes:
    """An IPv4/TCP packet with its TCP checksum computed (RFC 9293 3.1)."""
    from dicomwire.pcapng_writer import internet_checksum
    p = bytearray(p)
    ihl = (p[0] & 0x0F) * 4
    seg = bytearray(p[ihl:])
    seg[16:18] = b"\0\0"
    pseudo = bytes(p[12:20]) + struct.pack("!BBH", 0, 6, len(seg))
    p[ihl + 16:ihl + 18] = struct.pack("!H", internet_checksum(pseudo + bytes(seg)))
    return bytes(p)


def test_a_retransmission_with_other_bytes_is_blanked_in_every_copy(cli, tmp_path):
    """The first copy holds a kept attribute (Manufacturer), the resent copy
    a name in its place: the first pass planned the first copy only, so the
    bytes that differ are blanked in both (and only those)."""
    maker = b"ACME MEDICAL SYSTEMS"
    other = b"SMITH^JOHN" + maker[10:]
    ds = dataset(el(0x0008, 0x0070, maker))
    frames = []
    for p in packets(ds):
        frames.append(cg.ethernet(p))
        if maker in p:
            frames.append(cg.ethernet(_tcp_checksum(p.replace(maker, other))))
    src = write(tmp_path / "retx.pcap", frames)
    out = tmp_path / "out.pcap"
    r = deidentify(cli, src, out)
    assert r.returncode == 0, r.stdout
    assert "PDU sequence identical" in r.stdout
    assert "1 x retransmitted bytes that differ from the first copy" in r.stdout
    data = out.read_bytes()
    assert b"SMITH" not in data and b"ACME" not in data and not left(out)
    # Only the bytes that differ: the rest of the value is the same in both copies.
    assert data.count(bytes(10) + maker[10:]) == 2


def test_a_blank_over_patches_cuts_them_around_it():
    from dicomwire.rewrite import Edits
    e = Edits(strict=False)
    e.put(10, b"ABCDEFGHIJ")            # 10..20
    e.put(30, b"klmnop")                # 30..36
    e.blank(40, 4)
    e.blank_over(14, 3)                 # inside the first
    e.blank_over(28, 4)                 # across the start of the second
    e.blank_over(41, 10)                # over the blank's end and beyond
    e.freeze()
    got = e.apply(0, b"x" * 60)
    want = bytearray(b"x" * 60)
    want[10:20] = b"ABCDEFGHIJ"
    want[30:36] = b"klmnop"
    want[40:44] = bytes(4)
    for s, n in ((14, 3), (28, 4), (41, 10)):
        want[s:s + n] = bytes(n)
    assert got == want
    assert not e.untouched(45, 50) and e.untouched(52, 60)
