"""The time span of a capture file, cheaply: its first and last frame's time.

A file set (:mod:`dicomwire.capset`) reads files one after the other where
they follow each other in time and merges them by timestamp where they
overlap; to tell which, it needs each file's span before reading any. The
first frame is read as usual. The last one, in a mapped file, is found from
the end: in a pcapng by walking back over the block trailers (each block
ends with its length; not where a later section may begin, whose interfaces
may count time otherwise), in a classic pcap by finding a chain of record
headers that ends exactly at the end of the file (pcap records have no
trailer: a chain of :data:`CHAIN` records, or one back to the first record,
is the proof). Where neither works (compressed files, a capture cut
mid-record, a tail of giant records) every frame is read once
(:func:`_scan`), which is always right and costs a read of the file.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from dicomwire.capsource import MAX_RECORD, CaptureError
from dicomwire.pcapng_reader import PCAPNG_SHB

CHAIN = 3                 # pcap records chained to the end of the file that prove the last
TAIL = 1 << 20            # how far back from the end the pcap probe looks
BLOCKS_BACK = 64          # pcapng blocks walked back before giving up


class Span(NamedTuple):
    """A capture file and what a set needs to place it."""
    path: str
    index: int                 # position on the command line (the tie-breaker)
    format: str                # pcap, pcapng
    size: int | None           # bytes on disk (None: unknown)
    first_ts: int | None       # ns; None: no frame
    last_ts: int | None        # ns of the last frame (the latest, where it had to scan)
    compressed: bool
    # A classic pcap (16-byte record headers) read in place: a --dask run
    # may begin or end inside it (dicomwire.runplan).
    cuttable: bool = False


def probe(path: str, index: int = 0, max_record: int = MAX_RECORD) -> Span:
    """The span of the capture at ``path``; raises CaptureError when it is
    no capture."""
    from dicomwire.capture import CaptureReader
    with CaptureReader(path, max_record=max_record) as r:
        size = r.src.size
        frames = iter(r)
        first = next(frames, None)
        last = None
        if first is not None and r.mapped:
            last = _pcapng_last(r) if r.format == "pcapng" else _pcap_last(r)
        if first is not None and last is None:
            last = _scan(frames, first[1])
        return Span(path, index, r.format, size, None if first is None else first[1],
                    last, r.src.compressed, cuttable(r))


def cuttable(r) -> bool:
    """Whether a --dask run may begin or end inside the file of reader ``r``
    (:meth:`dicomwire.capture.CaptureReader.bound`)."""
    return r.format == "pcap" and r.mapped and getattr(r, "record_size", 0) == 16


def _scan(frames, first_ts: int) -> int:
    """The latest time of the frames left (and of the first)."""
    latest = first_ts
    for f in frames:
        if f[1] > latest:
            latest = f[1]
    return latest


def _pcap_last(r) -> int | None:
    """The time of a mapped classic pcap's last record, proven by a chain
    of :data:`CHAIN` plausible records that ends exactly at the end of the
    file (or reaches back to the first record); None: not found."""
    buf, rec, rec_size = r._buf, r.record, r.record_size
    size = len(buf)
    incl_at = struct.Struct(rec.format[0] + "I").unpack_from
    frac_max = 1_000_000_000 if r.ts_mult == 1 else 1_000_000
    # record end offset -> (records chained from it to the end, start of the last one)
    chained = {size: (0, None)}
    p, lo = size - rec_size, max(24, size - TAIL)
    while p >= lo:
        e = p + rec_size + incl_at(buf, p + 8)[0]
        if e in chained:
            _sec, frac, incl, orig = rec.unpack_from(buf, p)
            if frac < frac_max and incl <= orig and incl <= r.max_record:
                n, last = chained[e]
                n, last = n + 1, (p if last is None else last)
                if n >= CHAIN or p == 24:
                    sec, frac = rec.unpack_from(buf, last)[:2]
                    return sec * 1_000_000_000 + frac * r.ts_mult
                chained[p] = (n, last)
        p -= 1
    return None


def _pcapng_last(r) -> int | None:
    """The time of a mapped pcapng's last Enhanced or obsolete Packet Block,
    found by walking back over the block trailers; its interface's clock is
    the one the reader knows from the front of the file (the section of the
    first frame). None: not found (the walk failed, a Simple Packet Block
    only, an interface the front did not describe, or a later section,
    whose interfaces may count time otherwise: ``cat`` of two files)."""
    buf, order = r._buf, r._order
    if _later_section(buf):
        return None
    u32 = struct.Struct(order + "I").unpack_from
    end = len(buf)
    for _ in range(BLOCKS_BACK):
        if end < 12:
            return None
        blen = u32(buf, end - 4)[0]
        start = end - blen
        if blen < 12 or blen % 4 or start < 0 or u32(buf, start + 4)[0] != blen:
            return None
        btype = u32(buf, start)[0]
        if btype == PCAPNG_SHB:
            return None
        if btype in (6, 2) and blen >= 32:
            if btype == 6:
                iid, hi, lo = struct.unpack_from(order + "III", buf, start + 8)
            else:
                iid, _drops, hi, lo = struct.unpack_from(order + "HHII", buf, start + 8)
            if iid >= len(r._clocks):
                return None
            mult, shift, div, add = r._clocks[iid]
            return (((hi << 32) | lo) * mult >> shift) // div + add
        end = start
    return None


def _later_section(buf) -> bool:
    """Could a Section Header Block follow the first one? Its type reads the
    same in both byte orders; a hit is one if it is 4-aligned and its
    byte-order magic follows (a search at memory speed, no Python walk)."""
    magic, at = struct.pack("<I", PCAPNG_SHB), 12
    while True:
        at = buf.find(magic, at)
        if at < 0:
            return False
        if at % 4 == 0 and bytes(buf[at + 8:at + 12]) in (b"\x4d\x3c\x2b\x1a",
                                                         b"\x1a\x2b\x3c\x4d"):
            return True
        at += 1


def expand(sources) -> list[str]:
    """The capture files named by ``sources`` (paths, folders, quoted globs).
    A folder gives its files that start like a capture
    (pcap, pcapng, gzip), sorted by name; a glob that is not a file's name
    its matches, sorted. Raises CaptureError for a name that is none of these."""
    import glob
    paths = []
    for s in sources:
        s = os.fspath(s)
        if s == "-":
            raise CaptureError("- (stdin) cannot be read together with files")
        if os.path.isdir(s):
            found = [os.path.join(s, n) for n in sorted(os.listdir(s))
                     if not n.startswith(".") and _looks_like_capture(os.path.join(s, n))]
            if not found:
                raise CaptureError(f"{s}: no capture files in this folder")
            paths += found
        elif not os.path.exists(s) and glob.has_magic(s):
            found = sorted(p for p in glob.glob(s) if os.path.isfile(p))
            if not found:
                raise CaptureError(f"{s}: no file matches")
            paths += found
        else:
            paths.append(s)
    return paths


MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d",
          b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34", b"\x0a\x0d\x0d\x0a")


def _looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in MAGICS or head[:2] == b"\x1f\x8b"
