"""Write the seed corpora (fuzz/corpus/TARGET/) from captures the project
makes itself: the shipped sample (real DCMTK and pynetdicom peers, recorded
by tests/make_sample.py) and the traffic the tests build (tests/capgen.py,
tests/dicomgen.py). Each seed is small (a few kB): the committed corpus
stays under 200 kB. Run again after a format change of a target's input:

    python fuzz/make_seeds.py
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import capgen as g  # noqa: E402
import dicomgen as dg  # noqa: E402

import harness  # noqa: E402
from dicomwire.capture import open_capture  # noqa: E402
from dicomwire.link import LinkDecoder  # noqa: E402
from dicomwire.specs.dicom.pdu import iter_pdvs  # noqa: E402
from dicomwire.tcp import Reassembler, StreamSink  # noqa: E402

SAMPLE = ROOT / "core" / "samples" / "sample.pcap"
MAX_SEED = 4096
C, S = "192.0.2.10", "198.51.100.20"


def sample_frames():
    with open_capture(str(SAMPLE)) as r:
        return list(r)


class Collect(StreamSink):
    """Per stream: the in-order bytes of each direction, and the order in
    which pieces crossed (direction, bytes)."""

    def __init__(self):
        self.wire = {}

    def data(self, stream, direction, offset, payload, frame, ts):
        self.wire.setdefault(stream.id, []).append((direction, bytes(payload)))


def sample_streams():
    dec, sink = LinkDecoder(), Collect()
    r = Reassembler(sink)
    segs = {}
    for number, ts, lt, data, _orig, _if in sample_frames():
        seg = dec.decode(lt, data)
        if seg is not None:
            r.feed(number, ts, seg)
            segs.setdefault(r.flows[seg[0]][0].id, []).append((r.flows[seg[0]][1], seg))
    r.finish()
    return sink.wire, segs


def split_pdus(data: bytes):
    pos = 0
    while pos + 6 <= len(data):
        n = struct.unpack_from(">I", data, pos + 2)[0]
        yield data[pos:pos + 6 + n]
        pos += 6 + n


def joined(pieces, direction):
    return b"".join(b for d, b in pieces if d == direction)


# -- per target ---------------------------------------------------------------

def capture_seeds():
    frames = sample_frames()
    small = g.pcap([(ts, data) for _n, ts, _lt, data, _o, _i in frames[:12]])
    yield b"\x00" + small
    yield b"\x01" + small                                    # through a mapped file
    yield b"\x00" + g.simple_pcapng([(ts, data) for _n, ts, _lt, data, _o, _i in frames[:8]],
                                    tsresol=9)
    yield b"\x00" + gzip.compress(small[:3000], mtime=0)
    pk = g.conversation(C, S, 40000, 104, [b"q" * 40], [b"r" * 20])
    yield b"\x02" + g.pcap([(i * 1000, g.sll(p)) for i, p in enumerate(pk)], g.LT_SLL,
                           modified=True, big_endian=True)
    yield b"\x00" + g.pcap([(i, p) for i, p in enumerate(pk)], g.LT_RAW, nanosecond=True)
    itf = g.IDB(g.LT_NULL, 0, 0x80 | 20, 100, "lo0")
    yield b"\x00" + g.pcapng([g.Section([itf, g.EPB(0, g.null(pk[0]), 200 * 10**9, comments=["hi"]),
                                         g.SPB(g.null(pk[1])), g.NRB(), g.ISB()]),
                              g.Section([g.IDB(g.LT_ETHERNET, 64),
                                         g.PB(0, g.ethernet(pk[2]), 7000)], big_endian=True)])


def link_seeds():
    def frames(lt_index, pkts):
        return bytes([lt_index]) + b"".join(len(p).to_bytes(2, "big") + p for p in pkts)
    lts = __import__("fuzz_link").LINKTYPES
    ix = {lt: i for i, lt in enumerate(lts)}
    sample = [data for _n, _ts, _lt, data, _o, _i in sample_frames() if len(data) <= 400]
    yield frames(ix[1], sample[:6])
    pk = g.conversation(C, S, 40000, 104, [b"q" * 40], [])[:4]
    v6 = g.ipv6_tcp("2001:db8::1", "2001:db8::2", 40000, 104, 1, 2, g.ACK, b"v6",
                    ext_headers=[g.hop_by_hop(), g.routing(), g.dest_opts()])
    yield frames(ix[113], [g.sll(p) for p in pk])
    yield frames(ix[276], [g.sll2(p) for p in pk])
    yield frames(ix[0], [g.null(p) for p in pk] + [g.null(v6, big_endian=True)])
    yield frames(ix[108], [g.loop(p) for p in pk])
    yield frames(ix[101], pk + [v6])
    yield frames(ix[1], [g.qinq(pk[0]), g.ethernet(pk[1], vlans=[7]), g.ethernet(v6)])
    big = g.ipv4_tcp(C, S, 40000, 104, 9, 1, g.ACK, bytes(range(256)) * 2, ident=77)
    yield frames(ix[1], [g.ethernet(f) for f in reversed(g.ipv4_fragments(big, 200))])
    yield frames(ix[229], g.ipv6_fragments("2001:db8::1", "2001:db8::2", g.P_TCP,
                                          g.tcp("2001:db8::1", "2001:db8::2", 1, 2, 3, 4,
                                                g.ACK, b"z" * 300), 128, 99,
                                          fragmentable=[g.auth_hdr()]))


def tcp_seeds():
    _wire, segs = sample_streams()
    for sid, limit in ((1, 4000), (0, 4000), (2, 2500)):
        isn = {}
        out, size = [b"\x0f"], 0
        for d, (flow, seq, ack, flags, payload, _missing) in segs[sid]:
            if flags & 2 and d not in isn:
                isn[d] = seq
            isn.setdefault(d, seq)
            who = 8 if d else 0
            for i in range(0, max(len(payload), 1), 255):
                piece = payload[i:i + 255]
                rel = (seq + i - isn[d]) & 0xFFFF
                rack = (ack - isn.get(1 - d, ack)) & 0xFFFF
                f = flags & 0x1F if i == 0 else flags & 0x18
                out.append(struct.pack(">BBHHBB", who, f, rel, rack, len(piece), 0) + piece)
                size += 8 + len(piece)
                if size > limit:
                    break
            if size > limit:
                break
        yield b"".join(out)


def pdu_seeds():
    wire, _segs = sample_streams()
    seen = set()
    for sid, pieces in wire.items():
        for d in (0, 1):
            for p in split_pdus(joined(pieces, d)):
                key = (p[0], len(p) > 600)
                if len(p) <= 2048 and key not in seen or p[0] != 4:
                    seen.add(key)
                    if len(p) <= MAX_SEED:
                        yield p
    for p in (dg.RQ, dg.AC, dg.REJECT, dg.ABORT, dg.RELEASE_RQ,
              dg.pdata((1, 3, dg.ECHO_RQ), (3, 0, dg.DATASET[:100]))):
        yield p


def pdv_input(pieces, known=True, start=0):
    out = [b"\x01" if known else b"\x00"]
    skipped = [0, 0]
    for d, b in pieces:
        if skipped[d] < start:
            cut = min(len(b), start - skipped[d])
            skipped[d] += cut
            b = b[cut:]
        for i in range(0, len(b), 64):
            c = b[i:i + 64]
            out.append(bytes([d | (len(c) - 1) << 2]) + c)
    return b"".join(out)


def pdv_seeds():
    yield pdv_input(dg.valid_session())
    yield pdv_input(dg.valid_session(), known=False, start=150)
    wire, _segs = sample_streams()
    for sid in sorted(wire):
        pieces, size, keep = wire[sid], 0, []
        for d, b in pieces:
            keep.append((d, b[:2500]))
            size += len(keep[-1][1])
            if size > 3000:
                break
        yield pdv_input(keep)


def dimse_seeds():
    wire, _segs = sample_streams()
    commands, datasets = set(), []
    for pieces in wire.values():
        for d in (0, 1):
            parts = {}
            for p in split_pdus(joined(pieces, d)):
                if p[0] != 4:
                    continue
                for cid, mch, frag, _off in iter_pdvs(p[6:]):
                    key = (cid, mch & 1)
                    parts.setdefault(key, []).append(bytes(frag))
                    if mch & 2:
                        whole = b"".join(parts.pop(key))
                        if mch & 1:
                            commands.add(whole)
                        else:
                            datasets.append((cid, whole[:MAX_SEED]))
    for c in sorted(commands)[:12]:
        yield b"\x04" + c
    # The sample's data sets by context: 1 implicit, 3 explicit LE, 5 explicit
    # BE, 7 deflated (tests/make_sample.py); the rest as implicit.
    ts_of = {1: 0, 3: 1, 5: 2, 7: 3}
    for cid, ds in datasets[:8]:
        yield bytes([ts_of.get(cid, 0)]) + ds
    for ts in range(4):
        yield bytes([ts]) + dg.DATASET


FILTERS = [
    'dicom.cmd.name == "C-STORE-RQ" && Modality == CT',
    'dicom.pdu.type in {3 7} || dicom.summary matches "reject"',
    "dicom.cmd.status != 0 || !dicom.assoc",
    'dicom.assoc.ae.calling in {"MODALITY" "CT01"} and Modality == CT',
    'dicom.cmd.sop_class contains "1.2.840.10008.5.1.4.1.1"',
    "dicom.pdu.len > 0x4000 and not (dicom.pdv.flags eq 3)",
    "frame.number >= 10 && frame.time_relative < 1.5",
    'PatientName == "DOE^JANE" || expert.severity == "error"',
    r'dicom.summary matches "C-\w+-RQ ID=\d+\t"',
    r'dicom.assoc.ae.called == "M\u00dcNCHEN" or dicom.assoc.ae.calling == "\"Q\""',
]


def filter_seeds():
    for f in FILTERS:
        yield f.encode()


SEEDS = {"capture": capture_seeds, "link": link_seeds, "tcp": tcp_seeds, "pdu": pdu_seeds,
         "pdv": pdv_seeds, "dimse": dimse_seeds, "filter": filter_seeds}


def main():
    total = 0
    for target in harness.TARGETS:
        d = harness.corpus_dir(target)
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        n = size = 0
        for seed in SEEDS[target]():
            seed = seed[:MAX_SEED * 2]
            name = hashlib.sha1(seed).hexdigest()[:16]
            (d / f"seed-{name}").write_bytes(seed)
            n += 1
            size += len(seed)
        total += size
        print(f"{target:8} {n:3} seeds {size:7} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
