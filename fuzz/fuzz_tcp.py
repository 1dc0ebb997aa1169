"""Fuzz target: TCP reassembly (holes, retransmissions, overlaps, snaplen
cuts, FIN/RST/SYN in any order, port reuse, the out-of-order and flow table
bounds). Input: one configuration byte, then 8-byte segment records
(flow and direction, flags, 16-bit sequence and ack offsets, payload
length, missing bytes) each followed by its payload.

A checking sink verifies what every consumer relies on: per stream and
direction, data and gaps tile the stream from offset 0 with nothing skipped
or repeated, nothing arrives after the close, every stream closes exactly
once and its counters agree with what was delivered."""

from __future__ import annotations

import struct

from dicomwire.tcp import Reassembler, StreamSink

MAX_FLOWS = (2, 3, 64, 20_000)
MAX_OOO = (16, 300, 1 << 16, 64 << 20)
ISN_BASE = (0, 0xFFFFFF00, 0x7FFFFFF0, 12345)
_REC = struct.Struct(">BBHHBB")


def _flow(i: int) -> bytes:
    """Four addresses, two server ports: some flows share a 4-tuple with
    reversed roles, one is a connection to itself."""
    if i == 7:
        return bytes([10, 0, 0, 1]) * 2 + (104).to_bytes(2, "big") * 2
    src = bytes([10, 0, 0, 1 + (i & 3)])
    return src + bytes([10, 0, 0, 9]) + (40000 + (i & 3)).to_bytes(2, "big") + (
        104 if i < 4 else 11112).to_bytes(2, "big")


def _reverse(flow: bytes) -> bytes:
    return flow[4:8] + flow[:4] + flow[10:12] + flow[8:10]


class Check(StreamSink):
    def __init__(self):
        self.at = {}                 # (stream id, direction) -> next expected offset
        self.open, self.closed, self.evicted_calls = {}, set(), 0

    def stream_open(self, stream):
        assert stream.id not in self.open, stream.id
        self.open[stream.id] = stream

    def _advance(self, stream, d, off, n):
        assert stream.id in self.open and stream.id not in self.closed, stream.id
        assert n > 0, n
        key = (stream.id, d)
        assert off == self.at.get(key, 0), (key, off, self.at.get(key, 0))
        self.at[key] = off + n

    def data(self, stream, direction, offset, payload, frame, ts):
        self._advance(stream, direction, offset, len(payload))

    def gap(self, stream, direction, offset, size, frame, ts):
        self._advance(stream, direction, offset, size)

    def conflict(self, stream, direction, offset, size, frame, ts):
        assert size > 0 and offset >= 0

    def stream_close(self, stream):
        assert stream.id in self.open and stream.id not in self.closed, stream.id
        self.closed.add(stream.id)
        for d, dr in enumerate(stream.dirs):
            assert dr.next_off == self.at.get((stream.id, d), 0)
            assert not dr.ooo and dr.ooo_bytes == 0 and not dr.ooo_heap
            assert 0 <= dr.gap_bytes <= dr.next_off and dr.bytes >= 0

    def flows_evicted(self, reasm, count, dropped, frame):
        self.evicted_calls += 1
        assert 0 <= dropped <= count == reasm.evicted


def one_input(data: bytes) -> None:
    if not data:
        return
    cfg = data[0]
    sink = Check()
    r = Reassembler(sink, max_flows=MAX_FLOWS[cfg & 3], max_ooo=MAX_OOO[cfg >> 2 & 3],
                    history=8 if cfg & 16 else 256 << 10)
    isn = ISN_BASE[cfg >> 5 & 3]
    pos, frame = 1, 0
    while pos + _REC.size <= len(data):
        who, flags, seq, ack, n, missing = _REC.unpack_from(data, pos)
        pos += _REC.size
        payload = data[pos:pos + n]
        pos += n
        flow = _flow(who & 7)
        if who & 8:
            flow = _reverse(flow)
        side = isn + (who & 8) * 1000
        frame += 1
        r.feed(frame, frame * 1000, (flow, (side + seq) & 0xFFFFFFFF,
                                     (isn + 8000 - (who & 8) * 1000 + ack) & 0xFFFFFFFF,
                                     (flags & 0x1F) | (who & 0x10) << 5, payload,
                                     missing if missing < 64 else 0))
        assert len(r.flows) <= 2 * r.max_flows
    r.finish()
    assert sink.closed == set(sink.open), set(sink.open) - sink.closed
    assert all(s.closed for s in r.streams)
    assert sink.evicted_calls == (1 if r.evicted else 0)
    listed = {s.id for s in r.streams}
    assert len(listed) == len(r.streams) == len(sink.open) - r.dropped


if __name__ == "__main__":
    import os
    import sys
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(__file__), "run.py"),
                              "tcp", *sys.argv[1:]])
