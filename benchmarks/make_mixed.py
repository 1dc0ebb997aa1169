#!/usr/bin/env python3
"""Make the span-port benchmark capture (issue 18): DICOM a small minority
among bulk non-DICOM TCP (file shares, backups, HTTPS), many small TCP flows
(web requests) and UDP (DNS, syslog), as a mirror port on a hospital network
shows it. Synthetic frames (Ethernet, IPv4, TCP or UDP; checksums left zero,
which neither dicomwire nor tshark checks by default), in time order, with
the real DICOM exchanges of the shipped sample spliced in.

    python benchmarks/make_mixed.py OUT.pcap [MEGABYTES]    (default 425)

Deterministic for a size. No root needed.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MSS = 1448
_PCAP = struct.Struct("<IHHiIII")
_REC = struct.Struct("<IIII")
_ETH_IP = struct.Struct("!6s6sHBBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
ACK, PSH, SYN, FIN = 0x10, 0x08, 0x02, 0x01


def ip(n: int) -> bytes:
    return bytes((10, 1 + (n >> 16) % 250, (n >> 8) & 255, n & 255))


class Writer:
    def __init__(self, path: str):
        self.f = open(path, "wb")
        self.f.write(_PCAP.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.ts = 1_700_000_000 * 1_000_000          # microseconds
        self.bytes = 24

    def frame(self, data: bytes, gap_us: int = 3):
        self.ts += gap_us
        self.f.write(_REC.pack(self.ts // 1_000_000, self.ts % 1_000_000, len(data), len(data)))
        self.f.write(data)
        self.bytes += 16 + len(data)

    def tcp(self, src, dst, sport, dport, seq, ack, flags, payload=b""):
        total = 40 + len(payload)
        head = _ETH_IP.pack(b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01", 0x0800, 0x45, 0, total,
                            0, 0x4000, 64, 6, 0, src, dst)
        self.frame(head + _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                                    flags, 65535, 0, 0) + payload)

    def udp(self, src, dst, sport, dport, payload):
        total = 28 + len(payload)
        head = _ETH_IP.pack(b"\x02\0\0\0\0\x02", b"\x02\0\0\0\0\x01", 0x0800, 0x45, 0, total,
                            0, 0x4000, 64, 17, 0, src, dst)
        self.frame(head + _UDP.pack(sport, dport, 8 + len(payload), 0) + payload)


class Flow:
    """One TCP connection, sent a step at a time."""

    def __init__(self, w: Writer, n: int, sport: int, dport: int):
        self.w, self.c, self.s = w, ip(2 * n), ip(2 * n + 1)
        self.cp, self.sp = sport, dport
        self.cseq, self.sseq = 1000, 500_000

    def open(self):
        w = self.w
        w.tcp(self.c, self.s, self.cp, self.sp, self.cseq, 0, SYN)
        w.tcp(self.s, self.c, self.sp, self.cp, self.sseq, self.cseq + 1, SYN | ACK)
        self.cseq += 1
        self.sseq += 1
        w.tcp(self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, ACK)

    def send(self, payload: bytes, from_client: bool, ack_every: int = 2):
        w = self.w
        for i in range(0, len(payload), MSS):
            part = payload[i:i + MSS]
            if from_client:
                w.tcp(self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, ACK | PSH, part)
                self.cseq += len(part)
            else:
                w.tcp(self.s, self.c, self.sp, self.cp, self.sseq, self.cseq, ACK | PSH, part)
                self.sseq += len(part)
            if (i // MSS) % ack_every == ack_every - 1 or i + MSS >= len(payload):
                if from_client:
                    w.tcp(self.s, self.c, self.sp, self.cp, self.sseq, self.cseq, ACK)
                else:
                    w.tcp(self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, ACK)

    def close(self):
        w = self.w
        w.tcp(self.c, self.s, self.cp, self.sp, self.cseq, self.sseq, FIN | ACK)
        w.tcp(self.s, self.c, self.sp, self.cp, self.sseq, self.cseq + 1, FIN | ACK)
        w.tcp(self.c, self.s, self.cp, self.sp, self.cseq + 1, self.sseq + 1, ACK)


def dicom_frames():
    """The shipped sample's frames (real DICOM traffic)."""
    sys.path.insert(0, str(ROOT / "core"))
    from dicomwire.capture import open_capture
    with open_capture(str(ROOT / "core" / "samples" / "sample.pcap")) as cap:
        return [bytes(data) for _n, _ts, _lt, data, _o, _i in cap]


def make(path: str, megabytes: int = 425):
    rnd = random.Random(megabytes)
    blob = rnd.randbytes(4 << 20)
    w = Writer(path)
    target = megabytes << 20
    bulk = [Flow(w, 1 + i, 40000 + i, port) for i, port in enumerate((445, 2049, 443, 9000))]
    for f in bulk:
        f.open()
    small_n, udp_n, dicom_at, dicom = 0, 0, target * 3 // 10, dicom_frames()
    while w.bytes < target:
        f = rnd.choice(bulk)                       # a run of one bulk flow's segments
        start = rnd.randrange(len(blob) - 64 * MSS)
        f.send(blob[start:start + rnd.randint(1, 24) * MSS], from_client=f.cp % 2 == 0)
        if rnd.random() < 0.35:                    # a small web-like flow
            s = Flow(w, 1000 + small_n, 50000 + small_n % 10000, 80)
            s.open()
            s.send(b"GET / HTTP/1.1\r\nHost: intranet\r\n\r\n" + blob[:200], True)
            s.send(blob[:rnd.randint(500, 20000)], False)
            s.close()
            small_n += 1
        for _ in range(rnd.randint(0, 3)):         # DNS and syslog
            w.udp(ip(7), ip(8), 30000 + udp_n % 1000, rnd.choice((53, 514)),
                  blob[:rnd.randint(60, 300)])
            udp_n += 1
        if dicom and w.bytes >= dicom_at:
            for data in dicom:
                w.frame(data)
            dicom = None
    for f in bulk:
        f.close()
    w.f.close()
    return {"bytes": w.bytes, "small_flows": small_n, "udp": udp_n}


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    print(make(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 425))
