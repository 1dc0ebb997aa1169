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
from dicomwire.fastpath import ext

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
            kind, big, pos = 0, 0, 24
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            kind, big, pos = 0, 1, 24
        elif magic == b"\x0a\x0d\x0d\x0a":
            kind, big, pos = 1, 0, 0
        else:
            return None                  # the rest: read by the reader
        if ext is not None:
            return _count_compiled(buf, size, kind, pos, big)
        if kind == 1:
            return _count_pcapng(buf, size)
        unpack, step, at = struct.Struct(">I" if big else "<I").unpack_from, 16, 8
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


def _count_compiled(buf, size, kind, pos, big) -> int | None:
    """The same walk in C (``count_records``), a window at a time."""
    n, done = 0, 0
    while pos < size:
        k, end, big = ext.count_records(buf, kind, pos, pos + WINDOW, big)
        n += k
        if end == pos:
            break                        # a record that does not fit
        pos = end
        done = _release(buf, done, pos)
    return n if pos == size else None


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


class Counting:
    """The frames of ``paths`` counted in order on a thread (the compiled
    walk releases the GIL: it runs beside the client's imports and
    connection), so that a ``--dask`` run knows each run's frame base
    without a round trip. :meth:`before` waits for what it needs;
    :meth:`stop` ends the counting early."""

    def __init__(self, paths):
        import threading
        self.paths, self.counts, self.error = list(paths), [], None
        self.stopped = False
        self.ready = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="dicomwire-count", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for path in self.paths:
                if self.stopped:
                    return
                n = count_frames([path])
                with self.ready:
                    self.counts.append(n)
                    self.ready.notify_all()
        except BaseException as e:       # given to the waiting thread
            with self.ready:
                self.error = e
                self.ready.notify_all()

    def before(self, n: int) -> int:
        """The frames of the first ``n`` files (waits for their counts)."""
        with self.ready:
            self.ready.wait_for(lambda: len(self.counts) >= n or self.error is not None)
            if len(self.counts) < n:
                raise self.error
            return sum(self.counts[:n])

    def stop(self) -> None:
        """No more counts needed: the file being counted is the last."""
        self.stopped = True
