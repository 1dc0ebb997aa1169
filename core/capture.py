"""Capture reading: pcap and pcapng, plain or gzip-compressed, file or stdin.

One streaming pass over the input in large chunks (the bytes come from
dicomwire.capsource; pcapng blocks are read by dicomwire.pcapng_reader). The
hot path yields plain tuples ``(number, ts_ns, linktype, data, orig_len,
iface)``; :class:`Frame` is the named form of the same tuple for library users.

Formats:
- pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html):
  microsecond (a1b2c3d4) and nanosecond (a1b23c4d) magic, both byte orders,
  and the Kuznetzov "modified pcap" variant (a1b2cd34, 24-byte records).
- pcapng (draft-ietf-opsawg-pcapng): several sections (each with its own
  byte order and interfaces), Enhanced (6), Simple (3) and obsolete Packet (2)
  blocks, ``if_tsresol`` (option 9) and ``if_tsoffset`` (option 14),
  ``opt_comment`` (1) kept per frame; every other block type is skipped.

Input is hostile: every length is checked against a hard cap and against what
is present before anything is allocated; a capture cut mid-record ends the
pass with a warning that says what and where (record number, byte offset).
"""

from __future__ import annotations

import glob
import mmap
import os
import struct
from typing import Iterator, NamedTuple

# CaptureError, the bounds, Interface and PCAPNG_SHB are named here too.
from dicomwire.capsource import MAX_RECORD, WINDOW, CaptureError, open_source  # noqa: F401
from dicomwire.pcapng_reader import PCAPNG_SHB, Interface, PcapngBlocks


class Frame(NamedTuple):
    number: int        # 1-based, as Wireshark numbers frames
    ts_ns: int         # nanoseconds since the epoch (if_tsoffset applied)
    linktype: int      # LINKTYPE_* value of the frame's interface
    data: bytes        # captured bytes (possibly fewer than orig_len)
    orig_len: int      # length on the wire
    iface: int         # interface index, global across pcapng sections


PCAP_MAGIC = {
    # magic as read little-endian -> (byte order, ns resolution, record header size)
    0xA1B2C3D4: ("<", False, 16),
    0xA1B23C4D: ("<", True, 16),
    0xA1B2CD34: ("<", False, 24),
    0xD4C3B2A1: (">", False, 16),
    0x4D3CB2A1: (">", True, 16),
    0x34CDB2A1: (">", False, 24),
}


class CaptureReader(PcapngBlocks):
    """Iterate the frames of a capture in one pass.

    ``iter(reader)`` yields raw tuples (fields as in :class:`Frame`); use
    :meth:`frames` for :class:`Frame` objects. After (or during) iteration:
    ``interfaces``, ``comments`` (frame number -> list of str),
    ``warnings`` (what stopped or was skipped, with record and offset),
    ``frames_read``, ``truncated`` (frames captured shorter than on the wire),
    ``first_ts`` (time of the first frame, in ns, once it was read).
    """

    def __init__(self, source, *, max_record: int = MAX_RECORD, interfaces=None,
                 comments=None):
        self.src = open_source(source)
        self.name = self.src.name
        self.max_record = max_record
        # A reader of a file set (dicomwire.capset) shares these with the
        # set's other readers: interface indexes and frame numbers are the set's.
        self.interfaces: list[Interface] = [] if interfaces is None else interfaces
        self.comments: dict[int, list[str]] = {} if comments is None else comments
        self.warnings: list[str] = []
        self.frames_read = 0
        self.truncated = 0
        self.bytes_read = 0            # decoded capture bytes consumed so far
        # Time (ns) of the first frame, known once it is read: the origin of
        # relative times, as tshark's frame.time_relative.
        self.first_ts: int | None = None
        self._buf = self.src.mapped if self.src.mapped is not None else b""
        self._pos = 0
        self._released = 0
        self._need(4)
        head = bytes(self._buf[:4])
        if len(head) < 4:
            self.src.close()
            raise CaptureError(f"{self.name}: not a capture file (too short: {len(head)} bytes)")
        magic = struct.unpack("<I", head)[0]
        if magic in PCAP_MAGIC:
            self.format = "pcap"
        elif magic == PCAPNG_SHB:
            self.format = "pcapng"
        else:
            self.src.close()
            raise CaptureError(
                f"{self.name}: not a pcap or pcapng capture (starts with {head.hex()})")
        if self.format == "pcap":
            try:
                self._pcap_header()     # a broken header is an open-time error
            except CaptureError:
                self.src.close()        # fix: do not leak the file / map
                raise
            self._iter = self._pcap()
        else:
            self._iter = self._pcapng()

    # -- buffer management: buf[pos:] holds unread bytes --

    def _need(self, n: int) -> bool:
        """Make at least n unread bytes available; False if the input ends first."""
        while len(self._buf) - self._pos < n:
            if self.src.mapped is not None:
                return False
            try:
                more = self.src.chunk()
            except CaptureError as e:
                # Fix: corrupt gzip data (or trailing garbage after the last
                # member) once the capture has started is a fault later in the
                # file: keep the frames read so far and warn, as for a cut
                # capture, instead of raising mid-pass. At open it stays an error.
                if not self.bytes_read and not len(self._buf):
                    raise
                self.warnings.append(
                    f"{e} after {self.bytes_read + len(self._buf)} decoded bytes "
                    f"(after frame {self.frames_read}); stopped reading")
                return False
            if not more:
                return False
            self.bytes_read += self._pos
            self._buf = self._buf[self._pos:] + more
            self._pos = 0
        return True

    def _offset(self) -> int:
        return self.bytes_read + self._pos

    def __iter__(self) -> Iterator[tuple]:
        return self._iter

    def use_walker(self, make):
        """Set :attr:`walker` to ``make(self)`` (a file set calls ``make``
        for each file it reads in place)."""
        self.walker = make(self)

    def frames(self) -> Iterator[Frame]:
        for t in self._iter:
            yield Frame._make(t)

    @property
    def progress(self) -> tuple[int, int | None]:
        """(bytes consumed of the file, file size or None): for progress bars."""
        return self.src.raw_consumed, (None if self.src.compressed else self.src.size)

    def close(self):
        self.src.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _stop(self, what: str, offset: int):
        self.warnings.append(f"{self.name}: {what} at byte offset {offset} "
                             f"(after frame {self.frames_read}); stopped reading")

    # -- pcap --

    def _pcap_header(self):
        if not self._need(24):
            raise CaptureError(f"{self.name}: pcap file header cut short")
        order, ns, rec_size = PCAP_MAGIC[struct.unpack_from("<I", self._buf, 0)[0]]
        _m, vmaj, vmin, _tz, _sig, snaplen, network = struct.unpack_from(order + "IHHiIII", self._buf, 0)
        linktype = network & 0x0FFFFFFF if network & 0x04000000 == 0 else network & 0xFFFF
        linktype &= 0xFFFF
        self.iface = len(self.interfaces)       # its index (0 unless in a set)
        self.interfaces.append(Interface(linktype, snaplen, None, 0, 9 if ns else 6))
        self._pos = 24
        self.linktype = linktype
        # Record header (ts seconds, ts fraction, captured length, original
        # length) and its size; ts_ns = seconds * 1e9 + fraction * ts_mult.
        self.record = struct.Struct(order + "IIII")
        self.record_size = rec_size
        self.ts_mult = 1 if ns else 1000

    def _pcap(self):
        unpack = self.record.unpack_from
        rec_size, mult, linktype, iface = self.record_size, self.ts_mult, self.linktype, self.iface
        for buf, pos, limit in self.pcap_windows():
            if self.walker is not None:
                self.walker(buf, pos, limit)     # it takes every whole record
                continue
            number, truncated = self.frames_read, self.truncated
            while pos + rec_size <= limit:
                sec, frac, incl, orig = unpack(buf, pos)
                end = pos + rec_size + incl
                if end > limit:
                    break
                number += 1
                if incl < orig:
                    truncated += 1
                yield (number, sec * 1_000_000_000 + frac * mult, linktype,
                       buf[pos + rec_size:end], orig, iface)
                pos = end
            self.advance(pos, number, truncated)

    # A consumer that reads records in place (the pipeline's fast path,
    # dicomwire.fastpath.FastPath.walk), set before iterating: called as
    # ``walker(buf, pos, limit)`` where ``buf[pos:]`` starts at a record and
    # records that end by ``limit`` may be taken: classic pcap records
    # (:attr:`record`, :attr:`record_size`, :attr:`ts_mult`, :attr:`linktype`)
    # or pcapng Enhanced Packet Blocks (:attr:`epb_layout`, :attr:`max_record`);
    # it calls :meth:`advance` with where it stopped. Iteration then yields
    # only the frames it left: it takes every whole pcap record; in a pcapng
    # it stops at any other block (and is not given the first frame).
    walker = None

    @property
    def mapped(self) -> bool:
        """The capture is a memory-mapped file (its buffers are the map)."""
        return self.src.mapped is not None

    def pcap_windows(self):
        """Classic pcap in windows, for the loop that walks the records (the
        reader's own, or its :attr:`walker`): yields ``(buf, pos, limit)``,
        where ``buf[pos:]`` starts at a record header and every record that
        ends by ``limit`` may be read (headers: :attr:`record`,
        :attr:`record_size`). Before asking for the next window the caller
        must call :meth:`advance` with where it stopped. Bounds and damage
        are handled here, for both."""
        unpack = self.record.unpack_from
        rec_size, max_record = self.record_size, self.max_record
        mapped = self.src.mapped is not None
        # Fix: the window must hold the largest record accepted, or a record
        # bigger than WINDOW (max_record > WINDOW) never fits: endless loop.
        window = max(WINDOW, rec_size + max_record)
        while True:
            # A window of the map, so pages read can be released as we go.
            buf, pos = self._buf, self._pos
            blen = len(buf) if self._stop_at is None else min(len(buf), self._stop_at)
            if self.first_ts is None and blen - pos >= rec_size:     # once per window
                sec, frac = unpack(buf, pos)[:2]
                self.first_ts = sec * 1_000_000_000 + frac * self.ts_mult
            yield buf, pos, (min(blen, pos + window) if mapped else blen)
            pos = self._pos
            if mapped:
                self._release()
            if blen < len(buf):
                # Bounded (:meth:`bound`): a record that ends past the bound is
                # the next run's (unless its length is damage: said below).
                if blen - pos < rec_size:
                    break
                incl = unpack(buf, pos)[2]
                if incl <= max_record and pos + rec_size + incl > blen:
                    break
            if blen - pos >= rec_size:
                incl = unpack(buf, pos)[2]
                if incl > max_record:
                    self._stop(f"implausible record length {incl} in pcap record "
                               f"{self.frames_read + 1}", self._offset())
                    break
                if not self._need(rec_size + incl):
                    self._stop(f"capture cut mid-record: pcap record {self.frames_read + 1} "
                               f"needs {incl} bytes, {len(self._buf) - self._pos - rec_size} "
                               f"present", self._offset())
                    break
            elif not self._need(rec_size):
                if len(self._buf) - self._pos:
                    self._stop("capture cut in a record header", self._offset())
                break
        self.bytes_read += self._pos

    _stop_at = None                # bound(): where reading ends

    def bound(self, start: int | None, stop: int | None):
        """Read a slice of a mapped classic pcap (a ``--dask`` run that
        begins or ends inside the file, :mod:`dicomwire.runplan`): from
        ``start`` (a record's offset), and only the records that end by
        ``stop``, so that reading ends where the first record that does not
        begins (the next run starts there). None: the file's own start or
        end. Called before reading."""
        if self.format != "pcap" or self.src.mapped is None:
            raise CaptureError(f"{self.name}: only a classic pcap file read in place "
                               f"can be read from or to an offset")
        if start is not None:
            self._pos = max(self._pos, start)
        self._stop_at = stop

    @property
    def position(self) -> int:
        """The offset in a mapped file reading has reached (where a run
        that :meth:`bound` ended stopped)."""
        return self._pos

    def advance(self, pos: int, frames: int, truncated: int, last_ts: int | None = None):
        """Where a walker (or a :meth:`pcap_windows` caller) stopped: buffer
        position, frames read so far, how many of them were truncated, the
        time of the last one it took (None: none)."""
        self._pos, self.frames_read, self.truncated = pos, frames, truncated
        if last_ts is not None:
            self._last_ts = last_ts

    def _release(self):
        """Drop the mapped pages already read from our address space (they
        stay in the page cache): resident memory stays flat on big files.
        From the start of the map each time: payloads are views of it, and
        writing an object out maps its pages again, however far behind."""
        upto = self._pos & ~(mmap.PAGESIZE - 1)
        if upto - self._released >= WINDOW:
            try:
                # Cheap where nothing is mapped (the kernel skips empty tables).
                self._buf.madvise(mmap.MADV_DONTNEED, 0, upto)
            except (OSError, ValueError, AttributeError):
                pass
            self._released = upto
            for m in list(self.behind):
                # Files of a set read before this one, still mapped while
                # payloads hold views of them: their pages go too.
                try:
                    m.madvise(mmap.MADV_DONTNEED)
                except (OSError, ValueError, AttributeError):
                    self.behind.remove(m)         # unmapped at last

    # Maps of earlier files whose pages leave with this reader's (a file
    # set shares one list between its readers).
    behind: list = []

def open_capture(source, **kw):
    """Open a capture: a path, ``'-'`` for stdin, or a binary file object
    (a :class:`CaptureReader`); or several files read as one, named by a
    list of paths, a folder or a glob (a :class:`dicomwire.capset.CaptureSet`,
    or the reader of the one file they name)."""
    if isinstance(source, (list, tuple)) or (
            isinstance(source, (str, os.PathLike)) and source != "-" and not os.path.isfile(source)
            and (os.path.isdir(source) or glob.has_magic(os.fspath(source)))):
        from dicomwire.capset import open_set
        return open_set(source, **kw)
    return CaptureReader(source, **kw)
