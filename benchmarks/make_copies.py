#!/usr/bin/env python3
"""A longer capture of many associations from a shorter one, for the
``--dask`` benchmark (benchmarks/dask_speedup.py): COPIES copies of a
classic pcap (Ethernet, IPv4, TCP) one after the other, copy i shifted by
i times the capture's duration plus a second and its client ports (every
port but SERVER_PORT) moved by 1000 * i, so that each copy's connections are
new ones (a copy with the same 4-tuples and initial sequence numbers would
be read as retransmissions of the first). Checksums are left as they were
(dicomwire and tshark do not check them by default).

    python benchmarks/make_copies.py IN.pcap OUT.pcap COPIES [SERVER_PORT]

benchmarks/README.md: 4 copies of make_large.py's 20 associations (1.8 GB).
"""

from __future__ import annotations

import struct
import sys


def main() -> int:
    src, dst, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
    server = int(sys.argv[4]) if len(sys.argv) > 4 else 11112
    data = open(src, "rb").read()
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise SystemExit("a little-endian microsecond pcap is expected (editcap -F pcap)")
    records, pos = [], 24
    while pos + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        records.append((sec, usec, data[pos + 16:pos + 16 + incl], orig))
        pos += 16 + incl
    span = records[-1][0] - records[0][0] + 1
    with open(dst, "wb") as out:
        out.write(data[:24])
        for i in range(copies):
            for sec, usec, frame, orig in records:
                frame = bytearray(frame)
                if len(frame) >= 38 and frame[12:14] == b"\x08\x00" and frame[23] == 6:
                    at = 14 + (frame[14] & 0x0F) * 4
                    for off in (at, at + 2):
                        port = struct.unpack_from(">H", frame, off)[0]
                        if port != server:
                            struct.pack_into(">H", frame, off, (port + 1000 * i) & 0xFFFF)
                out.write(struct.pack("<IIII", sec + span * i, usec, len(frame), orig))
                out.write(frame)
    return 0


if __name__ == "__main__":
    sys.exit(main())
