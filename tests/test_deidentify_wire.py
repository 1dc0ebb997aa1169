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
from support import rewrite_file

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


# -- IP fragments (RFC 791 3.2, RFC 8200 4.5) ---------------------------------------

def _segments(path) -> bytes:
    """Every TCP payload of a capture as dicomwire reassembles it, joined."""
    from dicomwire.capture import open_capture
    from dicomwire.link import LinkDecoder
    dec, out = LinkDecoder(), []
    reader = open_capture(str(path))
    for _n, _ts, linktype, data, _orig, _iface in reader:
        seg = dec.decode(linktype, bytes(data))
        if seg is not None:
            out.append(seg[4])
    reader.close()
    return b"".join(out)


def _checksums_right(path) -> bool:
    """Every reassembled IPv4 datagram's TCP checksum is right (RFC 9293 3.1)."""
    from dicomwire.capture import open_capture
    from dicomwire.pcapng_writer import internet_checksum
    pieces: dict = {}
    reader = open_capture(str(path))
    for _n, _ts, _lt, data, _orig, _iface in reader:
        ip = bytes(data[14:])
        ident, frag = struct.unpack_from("!HH", ip, 4)
        body = ip[20:struct.unpack_from("!H", ip, 2)[0]]
        pieces.setdefault(ident if frag & 0x3FFF else object(), []).append(
            ((frag & 0x1FFF) * 8, body, ip[12:20]))
    reader.close()
    for parts in pieces.values():
        seg = b"".join(b for _o, b, _a in sorted(parts, key=lambda p: p[0]))
        pseudo = parts[0][2] + struct.pack("!BBH", 0, 6, len(seg))
        if internet_checksum(pseudo + seg) not in (0, 0xFFFF):
            return False
    return True


def _fragmented(size, *, drop_last=False, reverse=False, between=(), pixels=64):
    """Ethernet frames of a C-STORE whose data set segment is IP-fragmented
    in ``size`` bytes (``reverse``: last fragment first; ``between``: frames
    of another flow among the fragments; ``drop_last``: never completed)."""
    out = []
    for p in packets(dataset(pixels=pixels)):
        if NAME not in p:
            out.append(cg.ethernet(p))
            continue
        frags = [cg.ethernet(f) for f in cg.ipv4_fragments(p, size)]
        if drop_last:
            frags = frags[:-1]
        if reverse:
            frags.reverse()
        if between:
            frags[1:1] = [cg.ethernet(b) for b in between]
        out += frags
    return out


@pytest.mark.parametrize("size", [8, 48, 1400])
def test_fragmented_data_sets_are_rewritten_in_their_fragments(cli, tmp_path, size):
    src = write(tmp_path / "frag.pcap", _fragmented(size, pixels=4000))
    assert all(v in _segments(src) for v in SECRETS)
    out = tmp_path / "out.pcap"
    r = deidentify(cli, src, out)
    assert r.returncode == 0, r.stdout
    assert "PDU sequence identical" in r.stdout and "rewritten whole" in r.stdout
    assert not [v for v in SECRETS if v in _segments(out)]
    assert _checksums_right(out)
    assert len(list(_frames(out))) == len(list(_frames(src)))


def _frames(path):
    from dicomwire.capture import open_capture
    reader = open_capture(str(path))
    yield from ((n, ts, bytes(d)) for n, ts, _lt, d, _o, _i in reader)
    reader.close()


def test_fragments_out_of_order_among_other_frames_keep_the_frame_order(cli, tmp_path):
    other = cg.ipv4_tcp("10.9.9.9", "10.9.9.8", 4000, 80, 1, 1, 0x18, b"other flow")
    src = write(tmp_path / "frag.pcap", _fragmented(64, reverse=True, between=[other] * 3))
    out = tmp_path / "out.pcap"
    r = deidentify(cli, src, out)
    assert r.returncode == 0, r.stdout
    assert not [v for v in SECRETS if v in _segments(out)]
    a, b = list(_frames(src)), list(_frames(out))
    assert [ts for _n, ts, _d in a] == [ts for _n, ts, _d in b]
    assert [d for _n, _ts, d in a if b"other flow" in d] == \
        [d for _n, _ts, d in b if b"other flow" in d]


def test_ipv6_fragments_are_rewritten(cli, tmp_path):
    c6, s6 = "2001:db8::1", "2001:db8::2"
    out = []
    for i, p in enumerate(packets()):
        ihl = (p[0] & 0x0F) * 4
        sport, dport, seq, ack, _off, flags = struct.unpack_from("!HHIIBB", p, ihl)
        src, dst = (c6, s6) if p[12:16] == cg.addr(C) else (s6, c6)
        seg6 = cg.ipv6_tcp(src, dst, sport, dport, seq, ack, flags, p[ihl + 20:])
        if NAME in p:
            out += [cg.ethernet(f) for f in cg.ipv6_fragments(src, dst, 6, seg6[40:], 96, i)]
        else:
            out.append(cg.ethernet(seg6))
    src = write(tmp_path / "frag6.pcap", out)
    dst = tmp_path / "out.pcapng"
    r = deidentify(cli, src, dst)
    assert r.returncode == 0 and "rewritten whole" in r.stdout, r.stdout
    assert not [v for v in SECRETS if v in _segments(dst)]


def test_a_datagram_never_completed_is_blanked(cli, tmp_path):
    """The first pass never saw its bytes (nothing planned): its fragments'
    payloads are blanked, TCP header kept, and said."""
    src = write(tmp_path / "frag.pcap", _fragmented(64, drop_last=True))
    out = tmp_path / "out.pcap"
    r = deidentify(cli, src, out)
    assert "IP fragment of a DICOM stream, payload zeroed: a datagram never completed" \
        in r.stdout
    data = out.read_bytes()
    assert not [v for v in SECRETS[:3] if v[:4] in data]


def test_fragments_held_beyond_the_bound_are_blanked(cli, tmp_path, monkeypatch):
    import dicomwire.rewrite_ip as rip
    monkeypatch.setattr(rip, "MAX_HELD_FRAMES", 2)
    src = write(tmp_path / "frag.pcap", _fragmented(64, reverse=True))
    out = tmp_path / "out.pcap"
    r = deidentify(cli, src, out)
    assert "payload zeroed: its fragments lay too far apart" in r.stdout
    assert "payload zeroed: a fragment of a datagram already blanked" in r.stdout
    # The first pass read that data set: blanked, the PDUs differ, the check fails.
    assert r.returncode == 1 and "PDU sequence DIFFERENT" in r.stdout
    out = tmp_path / "out.pcap.failed"
    assert not [v for v in SECRETS[:3] if v[:4] in out.read_bytes()]
    assert len(list(_frames(out))) == len(list(_frames(src)))


def test_fragments_of_a_stream_whose_lengths_change_are_blanked(tmp_path):
    """Length changes are not followed into fragments: blanked (fail closed)."""
    from dicomwire.pipeline import run
    from dicomwire.rewrite import Edits, Rewriter
    src = write(tmp_path / "frag.pcap", _fragmented(64))
    result = run(str(src))
    s = result.streams[0]
    edits = {(s.id, 0): Edits(), (s.id, 1): Edits()}
    edits[(s.id, 0)].replace(0, 2, b"xyz")              # grows the first bytes
    rw = Rewriter(result.streams, edits)
    out = tmp_path / "out.pcap"
    rewrite_file(src, out, rw)
    assert dict(rw.frags.blanked) == {"a datagram of a stream whose lengths change": 4}
    assert not [v for v in SECRETS[:3] if v in _segments(out)]


# -- the output file ----------------------------------------------------------------

CORPUS = os.path.join(os.path.dirname(__file__), "corpus", "captures")


@pytest.mark.parametrize("link", ["symlink", "hardlink", "same"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(cli, tmp_path, link):
    src = tmp_path / "same.pcap"
    src.write_bytes(open(os.path.join(CORPUS, "mpps.pcap"), "rb").read())
    before = src.read_bytes()
    out = tmp_path / "link.pcap"
    if link == "symlink":
        out.symlink_to(src)
    elif link == "hardlink":
        os.link(src, out)
    else:
        out = src
    r = deidentify(cli, src, out)
    assert r.returncode == 2 and "is the input" in r.stderr
    assert src.read_bytes() == before


def test_a_failed_check_keeps_the_output_under_another_name(cli, tmp_path):
    """Nothing under the requested name may look ready to send: the output
    of a failed self-check is OUT.failed, an older OUT is removed."""
    out = tmp_path / "o.pcapng"
    out.write_bytes(b"an older output")
    r = deidentify(cli, os.path.join(CORPUS, "move_with_callback.pcap"), out,
                   "--ports", "11112", "--no-heuristic")
    assert r.returncode == 1 and "self-check FAILED" in r.stdout
    assert f"kept as {out}.failed" in r.stdout and f"written to {out}.failed" in r.stdout
    assert not out.exists() and (tmp_path / "o.pcapng.failed").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.pcapng.failed"]


def test_the_output_appears_only_once_checked(cli, tmp_path, monkeypatch):
    """Written beside it under a hidden name, renamed at the end; an error
    leaves neither."""
    from dicomwire.exporters.deidentify import command
    seen = []
    real = command.check_file

    def spy(path, *a, **k):
        seen.append((os.path.basename(path), os.path.exists(tmp_path / "o.pcap")))
        return real(path, *a, **k)
    monkeypatch.setattr(command, "check_file", spy)
    monkeypatch.setenv("DICOMWIRE_SERIAL_CHECK", "1")
    r = deidentify(cli, os.path.join(CORPUS, "mpps.pcap"), tmp_path / "o.pcap")
    assert r.returncode == 0 and seen == [(".o.pcap.partial", False)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.pcap"]


# -- -o with a colon: the output, unless it names a preference ----------------------

@pytest.mark.parametrize("command, name", [
    ("deidentify", "out:1.pcap"), ("annotate", "ann:1.pcapng"), ("report", "rep:1.html"),
    ("export", "exp:1")])
def test_an_output_path_with_a_colon_is_the_output(cli, tmp_path, monkeypatch, command, name):
    monkeypatch.chdir(tmp_path)
    r = cli(command, "-q", os.path.join(CORPUS, "mpps.pcap"), "-o", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / name).exists()


def test_a_preference_stays_a_preference_and_two_paths_are_a_clear_error(cli, tmp_path):
    src = os.path.join(CORPUS, "mpps.pcap")
    r = cli("deidentify", "-q", src, "-o", "tcp.max_flows:5")
    assert r.returncode == 2 and "needs -o OUT" in r.stderr
    r = cli("deidentify", "-q", src, "-o", str(tmp_path / "o.pcap"), "-o", "tcp.max_flows:5")
    assert r.returncode == 0, r.stderr
    r = cli("deidentify", "-q", src, "-o", "a:1", "-o", "b:2")
    assert r.returncode == 2 and "only one can be the output" in r.stderr
