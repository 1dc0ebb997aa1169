"""The one pcapng writer (annotate, the peer fuzzer): what it writes is what
python-pcapng writes for the same content, byte for byte, and reads back."""

import io
import warnings

import pcapng
import pytest
from pcapng import blocks

from dicomwire.capture import open_capture
from dicomwire.pcapng_writer import ACK, SYN, PcapngWriter, internet_checksum, tcp_frame

FRAMES = [(1_700_000_000_123_456_789, b"abcde", 0, 5, []),
          (1_700_000_000_123_456_790, b"x" * 64, 1, 100, ["hello", "w\u00f6rld \u00e9"]),
          (5, b"z", 0, 1, ["a"])]


def reference(app, comments, interfaces, frames) -> bytes:
    out = io.BytesIO()
    opts = {"shb_userappl": app}
    if comments:
        opts["opt_comment"] = list(comments)
    shb = blocks.SectionHeader(options=opts)
    for linktype, snaplen, name in interfaces:
        o = {"if_tsresol": b"\x09"}
        if name:
            o["if_name"] = name
        shb.new_member(blocks.InterfaceDescription, link_type=linktype, snaplen=snaplen,
                       options=o)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        w = pcapng.FileWriter(out, shb)
        for t, data, iface, orig, cm in frames:
            epb = shb.new_member(blocks.EnhancedPacket, interface_id=iface,
                                 options={"opt_comment": cm} if cm else {})
            epb.timestamp_high, epb.timestamp_low = t >> 32, t & 0xFFFFFFFF
            epb.packet_data, epb.packet_len = data, orig
            w.write_block(epb)
    return out.getvalue()


def ours(app, comments, interfaces, frames) -> bytes:
    out = io.BytesIO()
    w = PcapngWriter(out, application=app, comments=comments)
    for linktype, snaplen, name in interfaces:
        w.add_interface(linktype, snaplen, name)
    for t, data, iface, orig, cm in frames:
        w.write(t, data, iface=iface, orig_len=orig, comments=cm)
    assert w.frames == len(frames)
    return out.getvalue()


@pytest.mark.parametrize("comments", [[], ["one"], ["one", "two three"]])
@pytest.mark.parametrize("interfaces", [[(1, 262144, None)],
                                        [(1, 262144, "lo"), (113, 65535, "any")]])
def test_bytes_are_python_pcapng_s(comments, interfaces):
    frames = [f for f in FRAMES if f[2] < len(interfaces)]
    assert ours("dicomwire", comments, interfaces, frames) == \
        reference("dicomwire", comments, interfaces, frames)


def test_our_reader_reads_it_back(tmp_path):
    path = tmp_path / "w.pcapng"
    frame = tcp_frame("127.0.0.1", "127.0.0.2", 40000, 104, 1000, 0, SYN)
    with open(path, "wb") as f:
        w = PcapngWriter(f, application="t")
        w.add_interface(1, name="lo")
        w.write(1_000_000_123, frame, comments=["first"])
        w.write(2_000_000_456, tcp_frame("::1", "::1", 104, 40000, 5000, 1001, SYN | ACK))
    with open_capture(str(path)) as reader:
        got = [(fr.number, fr.ts_ns, bytes(fr.data)) for fr in reader.frames()]
        assert reader.comments.get(1) == ["first"]
    assert [g[1] for g in got] == [1_000_000_123, 2_000_000_456] and got[0][2] == frame


def test_checksums_verify():
    frame = tcp_frame("10.0.0.1", "10.0.0.2", 1, 2, 3, 4, ACK, b"payload!", ident=7)
    ip = frame[14:34]
    assert internet_checksum(ip) == 0
    tcp = frame[34:]
    pseudo = ip[12:20] + bytes([0, 6]) + len(tcp).to_bytes(2, "big")
    assert internet_checksum(pseudo + tcp) == 0
