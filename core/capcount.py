"""How many frames a capture file holds, cheaply: what a ``--dask`` run
(:mod:`dicomwire.cluster`) needs before any worker starts, so that each run
of files numbers its frames as one pass would. Record headers are walked in
a pcap (lengths chained to the end of the file) or pcapng (block lengths):
by the compiled walk, which reads the file itself without the GIL (read,
not mapped: mapping a file's pages in and out costs twice the time of
copying them), else by a Python loop over the mapped file. Anything else
(compressed, damaged, cut) is read frame by frame by the reader, which is
always right.
"""

from __future__ import annotations

import mmap
import os

from dicomwire.capset import CaptureSet
from dicomwire.capsource import MAX_RECORD
from dicomwire.fastpath import ext

WINDOW = 32 << 20         # pages walked are given back behind this: memory stays flat
BUDGET = 64 << 20         # bytes the compiled walk reads between checks for a stop (and marks)
SLACK = 1 << 20           # count_file's buffer (_fastwalk.c): how far past its budget it walks


def _release(buf, done: int, pos: int) -> int:
    """Drop the mapped pages before ``pos`` (as the reader releases its
    windows behind it); returns where the next release starts."""
    end = min(pos, len(buf)) & ~(mmap.PAGESIZE - 1)
    if end > done and hasattr(buf, "madvise"):
        buf.madvise(mmap.MADV_DONTNEED, done, end - done)
    return max(done, end)


class Stopped(Exception):
    """Counting was stopped (:meth:`Counting.stop`) inside a file."""


def count_frames(paths, stopped=lambda: False, mark=None) -> int:
    """Frames of files, as a set's reader numbers them (a part merged by
    timestamp has the frames of its files): record headers walked in a
    pcap or pcapng, else (compressed, damaged) every frame read.
    ``stopped()``: checked every window; true, :class:`Stopped` is raised.
    ``mark(pos, n)``: told, every window of a classic pcap walked, that
    ``n`` records come before offset ``pos`` (a record's start)."""
    if len(paths) > 1:
        return sum(count_frames([p], stopped) for p in paths)
    n = _count_headers(paths[0], stopped, mark or (lambda pos, n: None))
    return n if n is not None else _frames_read(paths, stopped=stopped)


def _frames_read(paths, start=None, stopped=lambda: False) -> int:
    """Frames of ``paths`` as the reader gives them, every frame read (from
    ``start`` in the first file): always right, whatever the files hold."""
    reader = CaptureSet(list(paths), start=start)
    try:
        n = 0
        for n, _frame in enumerate(reader, 1):
            if not n & 0xFFFF and stopped():
                raise Stopped
        return n
    finally:
        reader.close()


def _kind(magic: bytes):
    """(kind, first record, big-endian) of a file starting with ``magic``
    (as count_file takes them), else None."""
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return 0, 24, 0
    if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return 0, 24, 1
    if magic == b"\x0a\x0d\x0d\x0a":
        return 1, 0, 0
    return None                          # the rest: read by the reader


def _count_headers(path, stopped, mark=lambda pos, n: None) -> int | None:
    try:
        with open(path, "rb", buffering=0) as f:
            layout = _kind(f.read(4))
            size = f.seek(0, 2)
            if layout is None or size < 24:
                return None
            if ext is not None:
                f.seek(0)
                return _count_compiled(f, size, *layout, stopped, mark)
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    try:
        return _count_python(buf, size, *layout, stopped, mark)
    finally:
        buf.close()


def _count_compiled(f, size, kind, pos, big, stopped, mark) -> int | None:
    """The walk in C (``count_file``: read into its own buffer, the GIL
    released), :data:`BUDGET` bytes a call. None when the file ends inside
    a record."""
    n = 0
    while True:
        k, pos, big, status = ext.count_file(f.fileno(), kind, pos, big, BUDGET)
        n += k
        if kind == 0 and status >= 0:
            mark(pos, n)
        if status:
            return n if status > 0 and pos == size else None
        if stopped():
            raise Stopped


def _count_python(buf, size, kind, pos, big, stopped, mark) -> int | None:
    """The same walk in Python, over the mapped file."""
    import struct
    if kind == 1:
        return _count_pcapng(buf, size)
    unpack, step, at = struct.Struct(">I" if big else "<I").unpack_from, 16, 8
    n, done = 0, 0
    while pos + step <= size:
        limit = min(size, pos + WINDOW)
        while pos + step <= limit:
            pos += step + unpack(buf, pos + at)[0]
            n += 1
        if pos <= size:
            mark(pos, n)
        done = _release(buf, done, pos)
        if stopped():
            raise Stopped
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


class Uncut(Exception):
    """A file cannot be walked to the offset a run begins at (not a
    classic pcap, damaged before it)."""


def walk_to(path, offset: int, pos: int | None = None) -> tuple[int, int]:
    """(records, end) of a classic pcap walked from ``pos`` (a record's
    start; None: the first) over every record that ends by ``offset``:
    ``end`` is where the first that does not begins. Raises :class:`Uncut`
    where the reader would stop before (a record over MAX_RECORD)."""
    try:
        with open(path, "rb", buffering=0) as f:
            layout = _kind(f.read(4))
            if layout is None or layout[0] != 0:
                raise Uncut(f"{path}: not a classic pcap")
            _kind_, first, big = layout
            pos = first if pos is None else pos
            n = 0
            if ext is not None and offset - pos > 2 * SLACK:   # the bulk in C
                k, end, big, status = ext.count_file(
                    f.fileno(), 0, pos, big, offset - pos - 2 * SLACK)
                if status >= 0 and end <= offset:     # (past it: a record over its
                    n, pos = k, end                   # buffer grew it; walked here)
            return _walk_tail(f.fileno(), path, offset, pos, n, big)
    except OSError as e:
        raise Uncut(f"{path}: {e}") from None


def count_run(paths, start: int | None = None, stop: int | None = None,
              stopped=lambda: False):
    """(frames, end) of a run of files as its reader numbers them: the
    first from ``start`` (a record's offset; None: its first record), the
    last up to ``stop`` (as :func:`walk_to` ends it; None: its end).
    ``end``: where the next run begins in the last file (None without
    ``stop``). Raises :class:`Uncut` as :func:`walk_to` does, and
    :class:`Stopped` when ``stopped()`` (checked between files and every
    window of a whole file; the piece of a cut file is walked at once)."""
    n = 0
    for i, path in enumerate(paths):
        if stopped():
            raise Stopped
        begin = start if i == 0 else None
        if i == len(paths) - 1 and stop is not None:
            k, end = walk_to(path, stop, begin)
            return n + k, end
        if begin is None:
            n += count_frames([path], stopped)
            continue
        size = os.path.getsize(path)                # the rest of a cut file
        k, end = walk_to(path, size, begin)
        if end != size:                             # it ends inside a record: as read
            k = _frames_read([path], start=begin, stopped=stopped)
        n += k
    return n, None


def _walk_tail(fd, path, offset, pos, n, big) -> tuple[int, int]:
    import struct
    incl = struct.Struct(">I" if big else "<I").unpack_from
    while pos + 16 <= offset:            # a read holds any whole record the reader takes
        tail = os.pread(fd, min(offset - pos, 2 * MAX_RECORD), pos)
        at = 0
        while at + 16 <= len(tail):
            size = incl(tail, at + 8)[0]
            if size > MAX_RECORD:
                raise Uncut(f"{path}: damaged before offset {offset}")  # (the reader stops
            if at + 16 + size > len(tail):                              # there: no cut)
                break
            at += 16 + size
            n += 1
        pos += at
        if at == 0:
            break
    return n, pos


class Counting:
    """The frames of ``paths`` counted in order on a thread (the compiled
    walk releases the GIL: it runs beside the client's imports and
    connection), so that a ``--dask`` run knows each run's frame base
    without a round trip. :meth:`before` waits for what it needs;
    :meth:`stop` ends the counting early."""

    def __init__(self, paths):
        import threading
        self.paths, self.counts, self.error = list(paths), [], None
        self.marks: dict[int, list] = {}   # file -> (offset, records before it) every window
        self.stopped, self.wanted = False, len(self.paths)
        self.ready = threading.Condition()
        self.thread = threading.Thread(target=self._run, name="dicomwire-count", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for i, path in enumerate(self.paths):
                if self.stopped or i >= self.wanted:
                    raise Stopped         # (a wait for a later count ends too)
                n = count_frames([path], lambda: self.stopped or i >= self.wanted,
                                 lambda pos, k, i=i: self._mark(i, pos, k))
                with self.ready:
                    self.counts.append(n)
                    self.ready.notify_all()
        except BaseException as e:       # given to the waiting thread (Stopped too)
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

    def _mark(self, i: int, pos: int, n: int):
        with self.ready:
            self.marks.setdefault(i, []).append((pos, n))
            self.ready.notify_all()

    def at(self, i: int, offset: int) -> tuple[int, int]:
        """(frames before, start) of a run that begins inside file ``i``
        (a classic pcap) at the first record that does not end by
        ``offset``, as :meth:`dicomwire.capture.CaptureReader.bound` ends
        the run before it: the frames of the files before and of that
        file's records before it. Waits only until the counting has walked
        past ``offset`` (or the file), then walks the rest of the way itself.
        Raises :class:`Uncut` when the file cannot be walked there."""
        with self.ready:
            self.ready.wait_for(lambda: len(self.counts) > i or self.error is not None
                                or any(p >= offset for p, _n in self.marks.get(i, ())))
            if len(self.counts) < i:
                raise self.error
            before = sum(self.counts[:i])
            marks = list(self.marks.get(i, ()))
        pos, n = max(((p, k) for p, k in marks if p <= offset), default=(None, 0))
        k, start = walk_to(self.paths[i], offset, pos)
        return before + n + k, start

    def need(self, n: int) -> None:
        """Only the first ``n`` files' counts will be asked for: the
        counting ends there (within a window, if it is past them)."""
        self.wanted = min(self.wanted, n)

    def stop(self) -> None:
        """No more counts needed: counting ends within a window."""
        self.stopped = True
