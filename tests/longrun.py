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


MPPS = "1.2.840.10008.3.1.2.3.3"
FIND = "1.2.840.10008.5.1.4.1.2.2.1"         # Study Root Q/R
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"


def service_packets(i: int):
    """Association ``i`` of a modality left waiting: it creates MPPS step
    ``i`` (answered), sets step ``i - 1`` (made by the association before),
    and sends a C-ECHO, a C-FIND and a C-MOVE that get no response before
    the release."""
    import dicomgen as d
    from dicomwire.specs.dicom.command import encode_command

    def cmd(ctx, data=False, **kw):
        return d.pdata((ctx, 3, encode_command(dict(CommandDataSetType=0 if data else d.NO_DATA,
                                                    **kw))))
    def step(n):
        return f"1.2.826.0.1.3680043.9.99.{n + 1}"
    ident = d.element(0x0008, 0x0052, b"STUDY") + d.element(0x0010, 0x0010, b"DOE*")
    session = [
        (0, d.assoc_rq(contexts=((1, d.VERIFICATION), (5, MPPS), (7, FIND), (9, MOVE)))),
        (1, d.assoc_ac(contexts=(1, 5, 7, 9))),
        (0, cmd(5, CommandField=0x0140, MessageID=1, AffectedSOPClassUID=MPPS,
                AffectedSOPInstanceUID=step(i))),
        (1, cmd(5, CommandField=0x8140, MessageIDBeingRespondedTo=1, AffectedSOPClassUID=MPPS,
                AffectedSOPInstanceUID=step(i), Status=0)),
        (0, cmd(5, CommandField=0x0120, MessageID=2, RequestedSOPClassUID=MPPS,
                RequestedSOPInstanceUID=step(i - 1))),
        (1, cmd(5, CommandField=0x8120, MessageIDBeingRespondedTo=2, AffectedSOPClassUID=MPPS,
                AffectedSOPInstanceUID=step(i - 1), Status=0)),
        (0, d.pdata((1, 3, d.ECHO_RQ))),
        (0, cmd(7, True, CommandField=0x0020, MessageID=3, Priority=0, AffectedSOPClassUID=FIND)
            + d.pdata((7, 2, ident))),
        (0, cmd(9, True, CommandField=0x0021, MessageID=4, Priority=0, AffectedSOPClassUID=MOVE,
                MoveDestination="VIEWER") + d.pdata((9, 2, ident))),
        (0, d.RELEASE_RQ), (1, d.RELEASE_RP),
    ]
    client = f"10.4.{(i >> 8) & 255}.{i & 255}"
    return g.exchange(client, "10.0.0.2", 20000 + i % 40000, 11112, session)
