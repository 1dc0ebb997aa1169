"""Fuzz target: the DICOM stream dissector (PDU framing from TCP bytes,
resynchronisation, association state, PDV -> DIMSE message assembly) with
every built-in DICOM plugin (expert checks, Q/R checks) listening.

Input: one byte (bit 0: the capture saw the handshake; bit 1: the DICOM
ports do not match, the heuristic decides), then chunks: a header byte
(bit 0: direction; bit 1: a capture gap instead of bytes, its size taken
from the chunk's first byte; bits 2-7: length - 1) and the chunk's 1 to 64
bytes.
Checks: the dissector raises nothing, no plugin fails on what it decoded,
every PDU and message it reports is consistent."""

from __future__ import annotations

from dicomwire.config import Config
from dicomwire.expert import ENGINE_FIELDS, ExpertLog
from dicomwire.hookspecs import MORE, PEEK_BYTES, PEEK_CALLS, hookimpl
from dicomwire.pipeline import make_host
from dicomwire.tcp import Stream


class _Watch:
    def __init__(self):
        self.pdus = self.messages = 0

    @hookimpl
    def dicomwire_pdu(self, pdu):
        self.pdus += 1
        assert pdu.length >= 0 and pdu.offset >= 0 and pdu.first_frame <= pdu.last_frame
        assert all(isinstance(p, str) for p in pdu.problems)

    @hookimpl
    def dicomwire_message(self, message):
        self.messages += 1
        m = message
        if m.has_dataset:
            assert len(m.dataset_bytes()) == m.dataset_len
        assert m.command is None or isinstance(m.command, dict)
        assert m.dataset_missing >= 0


_HOST = None


def _host():
    global _HOST
    if _HOST is None:
        _HOST = make_host(Config())
        _HOST.watch = _Watch()
        _HOST.register(_HOST.watch, "fuzz-watch")
    return _HOST


def chunks(body: bytes):
    pos = 0
    while pos < len(body):
        h = body[pos]
        n = (h >> 2) + 1
        yield h & 1, bool(h & 2), body[pos + 1:pos + 1 + n]
        pos += 1 + n


def one_input(data: bytes) -> None:
    if not data:
        return
    host = _host()
    host.errors, host.error_count = [], 0
    host.expert = ExpertLog()
    host.expert.register(ENGINE_FIELDS)
    for table in host.call("dicomwire_expert_fields"):
        host.expert.register(table)
    config = Config(preferences={"dicom.tcp.port": "104" if not data[0] & 2 else "4242"})
    host.call("dicomwire_configure", config=config)
    stream = Stream(0, (b"\x7f\0\0\1", 40000), (b"\x7f\0\0\1", 104), 1, 0, bool(data[0] & 1))
    dis = None
    off = [0, 0]
    held = []                               # while selection answers MORE, as the engine

    def deliver(d, gap, chunk, frame):
        ts = frame * 1_000_000
        stream.last_frame, stream.last_ts = frame, ts
        if gap:
            size = (chunk[0] if chunk else 1) * 97 + 1     # up to ~25 kB missing
            dis.gap(d, off[d], size, frame, ts)
            off[d] += size
        elif chunk:
            dis.data(d, off[d], memoryview(chunk) if frame & 1 else chunk, frame, ts)
            off[d] += len(chunk)

    for frame, (d, gap, chunk) in enumerate(chunks(data[1:]), start=2):
        if dis is None:
            if gap or not chunk:
                if held:
                    return                  # bytes missing while undecided: not dissected
                continue
            held.append((d, chunk, frame))
            peek = b"".join(c for hd, c, _f in held if hd == d)
            dis, _owner = host.call_select("dicomwire_stream_dissector", stream=stream,
                                           direction=d, payload=peek, config=config, host=host)
            if dis is MORE:
                if len(held) < PEEK_CALLS and sum(len(c) for _d, c, _f in held) < PEEK_BYTES:
                    dis = None
                    continue
                return
            if dis is None:
                return                      # not DICOM: nothing more to test
            for hd, c, f in held:
                deliver(hd, False, c, f)
            continue
        deliver(d, gap, chunk, frame)
    if dis is not None:
        dis.close()
    assert host.errors == [], [str(e) for e in host.errors]


if __name__ == "__main__":
    import os
    import sys
    os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(__file__), "run.py"),
                              "pdv", *sys.argv[1:]])
