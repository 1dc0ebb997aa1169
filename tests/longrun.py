"""A long live run, made up as it comes: many short DICOM associations (and
a little traffic nobody dissects), one after the other, as a pcap stream
that is generated while it is read, never held whole
(tests/test_live_memory.py)."""

from __future__ import annotations

import io

import capgen as g
from dicomgen import valid_session

SESSION = valid_session()


def packets(i: int):
    """Association ``i``: its own connection (client port from i), a
    C-ECHO and a small C-STORE, released and closed; every tenth also a
    short web request beside it (a stream nobody dissects)."""
    client = f"10.1.{(i >> 8) & 255}.{i & 255}"
    port = 20000 + i % 40000
    pk = g.exchange(client, "10.0.0.2", port, 11112, SESSION)
    if i % 10 == 0:
        pk += g.exchange(client, "10.0.0.3", port, 80, [(0, b"GET / HTTP/1.1\r\n\r\n"),
                                                       (1, b"HTTP/1.1 200 OK\r\n\r\nhello")])
    return pk


class LongRun(io.RawIOBase):
    """``count`` associations (``make(i)``: association i's packets),
    ``spacing`` seconds of capture time apart, as a readable pcap byte
    stream (a live capture's pipe, without a tool)."""

    def __init__(self, count: int, spacing: float = 1.0, make=packets):
        self.count, self.spacing, self.make = count, spacing, make
        self._chunks = self._generate()
        self._buf = b""

    def _generate(self):
        yield g.pcap_header()
        for i in range(self.count):
            t0 = int(i * self.spacing * 1e9)
            yield b"".join(g.pcap_record(t0 + k * 1000, g.ethernet(p))
                           for k, p in enumerate(self.make(i)))

    def readable(self):
        return True

    def read(self, n=-1):
        """What has "arrived", as a pipe gives it: the rest of the current
        association's frames, at most ``n`` bytes; b"" at the end."""
        if not self._buf:
            self._buf = next(self._chunks, b"")
        n = len(self._buf) if n is None or n < 0 else n
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readinto(self, b):
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)
