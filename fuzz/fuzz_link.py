"""Fuzz target: link, IP and TCP header decoding, IP fragment reassembly.
Input: one byte choosing the link type, then frames, each preceded by its
length (two bytes, big endian), all through one decoder (fragments meet
across frames)."""

from __future__ import annotations

from dicomwire.link import MAX_DATAGRAM, MAX_FRAG_DATAGRAMS, LinkDecoder

# Every supported link type, and one that is not.
LINKTYPES = (1, 113, 276, 0, 108, 101, 12, 14, 228, 229, 147)


def frames(body: bytes):
    pos = 0
    while pos + 2 <= len(body):
        n = int.from_bytes(body[pos:pos + 2], "big")
        yield body[pos + 2:pos + 2 + n]
        pos += 2 + n


def one_input(data: bytes) -> None:
    if not data:
        return
    linktype = LINKTYPES[data[0] % len(LINKTYPES)]
    dec = LinkDecoder()
    for i, frame in enumerate(frames(data[1:]), start=1):
        dec.frame = i
        seg = dec.decode(linktype, frame)
        if seg is None:
            continue
        flow, seq, ack, flags, payload, missing = seg
        assert isinstance(flow, bytes) and len(flow) in (12, 36), flow
        assert 0 <= seq <= 0xFFFFFFFF and 0 <= ack <= 0xFFFFFFFF
        assert 0 <= flags < 1 << 10
        assert isinstance(payload, bytes) and missing >= 0
        assert len(payload) <= max(len(frame), MAX_DATAGRAM)
    assert dec.pending_fragments() <= MAX_FRAG_DATAGRAMS
    assert all(isinstance(m, str) for _f, m in dec.malformed)


if __name__ == "__main__":
    import os
    import sys
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(__file__), "run.py"),
                              "link", *sys.argv[1:]])
