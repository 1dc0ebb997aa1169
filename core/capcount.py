"""How many frames a capture file holds, cheaply: what a ``--dask`` run
(:mod:`dicomwire.cluster`) needs before any worker starts, so that each run
of files numbers its frames as one pass would. Record headers are walked in
a mapped pcap (lengths chained to the end of the file) or pcapng (block
lengths); anything else (compressed, damaged, cut) is read frame by frame
by the reader, which is always right.
"""

from __future__ import annotations

import mmap

from dicomwire.capset import CaptureSet

WINDOW = 32 << 20         # pages walked are given back behind this: memory stays flat


def _release(buf, done: int, pos: int) -> int:
    """Drop the mapped pages before ``pos`` (as the reader releases its
    windows behind it); returns where the next release starts."""
    end = min(pos, len(buf)) & ~(mmap.PAGESIZE - 1)
    if end > done and hasattr(buf, "madvise"):
        buf.madvise(mmap.MADV_DONTNEED, done, end - done)
    return max(done, end)

def count_frames(paths) -> int:
    """Frames of files, as a set's reader numbers them (a part merged by
    timestamp has the frames of its files): record headers walked in a
    mapped pcap, else (pcapng, compressed, damaged) every frame read."""
    if len(paths) > 1:
        return sum(count_frames([p]) for p in paths)
    n = _count_mapped(paths[0])
    if n is not None:
        return n
    reader = CaptureSet(list(paths))
    try:
        return sum(1 for _ in reader)
    finally:
        reader.close()


def _count_mapped(path) -> int | None:
    import struct
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size < 24:
                return None
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    try:
        magic = buf[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            unpack, pos, step, at = struct.Struct("<I").unpack_from, 24, 16, 8
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            unpack, pos, step, at = struct.Struct(">I").unpack_from, 24, 16, 8
        elif magic == b"\x0a\x0d\x0d\x0a":
            return _count_pcapng(buf, size)
        else:
            return None                  # the rest: read by the reader
        n, done = 0, 0
        while pos + step <= size:
            limit = min(size, pos + WINDOW)
            while pos + step <= limit:
                pos += step + unpack(buf, pos + at)[0]
                n += 1
            done = _release(buf, done, pos)
        return n if pos == size else None
    finally:
        buf.close()


def _count_pcapng(buf, size) -> int | None:
    """Packet blocks (enhanced, simple, obsolete) of a mapped pcapng; None
    when a block does not fit (the reader will say what is wrong)."""
    import struct
    n, pos, u32, done = 0, 0, None, 0
    while pos + 12 <= size:
        if buf[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":           # a section: its byte order
            order = "<" if buf[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            u32 = struct.Struct(order + "II").unpack_from
        btype, blen = u32(buf, pos)
        if blen < 12 or blen % 4 or pos + blen > size:
            return None
        if btype in (6, 3, 2):
            n += 1
        pos += blen
        if pos - done >= WINDOW:
            done = _release(buf, done, pos)
    return n if pos == size else None
