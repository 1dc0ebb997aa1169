"""Capture reading: pcap and pcapng, plain or gzip-compressed, file or stdin.

One streaming pass over the input in large chunks. The hot path yields plain
tuples ``(number, ts_ns, linktype, data, orig_len, iface)``; :class:`Frame`
is the named form of the same tuple for library users.

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

import mmap
import os
import struct
import sys
import zlib
from typing import BinaryIO, Iterator, NamedTuple

CHUNK = 1 << 20
# Largest record or block we accept. Real packets are at most 256 KiB
# (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD); loopback/TSO captures stay far
# below this. Anything larger is garbage, never an allocation.
MAX_RECORD = 16 << 20
# A mapped file is read in windows of this size; pages behind are released.
WINDOW = 8 << 20


class CaptureError(Exception):
    """The input cannot be read as a capture, or stops being one."""


class Frame(NamedTuple):
    number: int        # 1-based, as Wireshark numbers frames
    ts_ns: int         # nanoseconds since the epoch (if_tsoffset applied)
    linktype: int      # LINKTYPE_* value of the frame's interface
    data: bytes        # captured bytes (possibly fewer than orig_len)
    orig_len: int      # length on the wire
    iface: int         # interface index, global across pcapng sections


class Interface(NamedTuple):
    linktype: int
    snaplen: int
    name: str | None
    section: int
    tsresol: int = 6           # exponent; see ``tsbase``
    tsbase: int = 10           # 10 (decimal) or 2 (binary) resolution
    tsoffset: int = 0          # seconds added to every timestamp


# --- input source: file, stdin, gzip ------------------------------------------


class _Source:
    """Bytes of a capture from a file or stdin, gzip inflated transparently.

    A regular uncompressed file is memory-mapped (``mapped``): slicing the map
    copies each record once and nothing else is allocated. Other inputs come
    through :meth:`chunk`, at most one chunk beyond what is actually present.
    """

    def __init__(self, raw: BinaryIO, name: str, size: int | None, owned: bool = True):
        self.raw, self.name, self.size = raw, name, size
        self.owned = owned             # close the file at the end (not stdin or
                                       # a file object the caller passed in)
        self.raw_consumed = 0          # input bytes read, for progress
        self.mapped = None
        self._inflate = None
        self._compressed = b""
        self._pending = b""
        head = self._raw_read(CHUNK)
        if head[:2] == b"\x1f\x8b":
            self._inflate = zlib.decompressobj(wbits=31)
            self._compressed = head
        elif size and len(head) and hasattr(raw, "fileno"):
            try:
                self.mapped = mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ)
                self.raw_consumed = size
                if hasattr(mmap, "MADV_SEQUENTIAL"):
                    # Read once, front to back: bigger read-ahead, fewer page faults.
                    self.mapped.madvise(mmap.MADV_SEQUENTIAL)
            except (OSError, ValueError):
                self._pending = head
        else:
            self._pending = head

    def _raw_read(self, n: int) -> bytes:
        b = self.raw.read(n)
        self.raw_consumed += len(b)
        return b

    @property
    def compressed(self) -> bool:
        return self._inflate is not None

    def chunk(self) -> bytes:
        """The next piece of decoded input, b'' at the end."""
        if self._pending:
            p, self._pending = self._pending, b""
            return p
        if self._inflate is None:
            return self._raw_read(CHUNK)
        while True:
            d = self._inflate
            if d.eof:
                # Concatenated gzip members (as `cat a.gz b.gz` makes them).
                rest = d.unused_data + self._compressed
                if not rest:
                    rest = self._raw_read(CHUNK)
                if not rest:
                    return b""
                self._inflate = d = zlib.decompressobj(wbits=31)
                self._compressed = rest
            if not self._compressed:
                self._compressed = self._raw_read(CHUNK)
                if not self._compressed:
                    return b""          # truncated gzip: the reader reports the cut
            try:
                out = d.decompress(self._compressed, CHUNK)
            except zlib.error as e:
                raise CaptureError(f"{self.name}: corrupt gzip data ({e})") from None
            self._compressed = d.unconsumed_tail
            if out:
                return out

    def close(self):
        if self.mapped is not None:
            try:
                self.mapped.close()
            except BufferError:
                pass        # payloads still hold views of it: unmapped when they go
        if self.owned:
            self.raw.close()


def _open_source(source) -> _Source:
    if source == "-" or source is None:
        return _Source(sys.stdin.buffer, "<stdin>", None, owned=False)
    if hasattr(source, "read"):
        return _Source(source, getattr(source, "name", "<stream>"), None, owned=False)
    path = os.fspath(source)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CaptureError(f"{path}: {e.strerror or e}") from None
    try:
        size = os.fstat(f.fileno()).st_size
        if not os.path.isfile(path):
            size = None
        return _Source(f, path, size)
    except IsADirectoryError:
        f.close()
        raise CaptureError(f"{path}: is a directory") from None
    except OSError as e:
        f.close()
        raise CaptureError(f"{path}: {e.strerror or e}") from None


# --- readers -----------------------------------------------------------------

PCAP_MAGIC = {
    # magic as read little-endian -> (byte order, ns resolution, record header size)
    0xA1B2C3D4: ("<", False, 16),
    0xA1B23C4D: ("<", True, 16),
    0xA1B2CD34: ("<", False, 24),
    0xD4C3B2A1: (">", False, 16),
    0x4D3CB2A1: (">", True, 16),
    0x34CDB2A1: (">", False, 24),
}
PCAPNG_SHB = 0x0A0D0D0A


class CaptureReader:
    """Iterate the frames of a capture in one pass.

    ``iter(reader)`` yields raw tuples (fields as in :class:`Frame`); use
    :meth:`frames` for :class:`Frame` objects. After (or during) iteration:
    ``interfaces``, ``comments`` (frame number -> list of str),
    ``warnings`` (what stopped or was skipped, with record and offset),
    ``frames_read``, ``truncated`` (frames captured shorter than on the wire),
    ``first_ts`` (time of the first frame, in ns, once it was read).
    """

    def __init__(self, source, *, max_record: int = MAX_RECORD):
        self.src = _open_source(source)
        self.name = self.src.name
        self.max_record = max_record
        self.interfaces: list[Interface] = []
        self.comments: dict[int, list[str]] = {}
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
        rec_size, mult, linktype = self.record_size, self.ts_mult, self.linktype
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
                       buf[pos + rec_size:end], orig, 0)
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

    # The current pcapng section's Enhanced Packet Block layout, for a
    # walker: (unpack of type, length, interface, ts high, ts low, captured,
    # original; unpack of the trailer; per section-local interface (ts
    # multiplier, or None where the block must be read here: an unusual
    # resolution or offset; link type; global interface index)).
    epb_layout = None

    @property
    def mapped(self) -> bool:
        """The capture is a memory-mapped file (its buffers are the map)."""
        return self.src.mapped is not None

    def pcap_windows(self):
        """Classic pcap, for a caller that walks the records itself (the
        pipeline's fast loop): yields ``(buf, pos, limit)``, where ``buf[pos:]``
        starts at a record header and every record that ends by ``limit`` may
        be read (headers: :attr:`record`, :attr:`record_size`). Before asking
        for the next window the caller must call :meth:`advance` with where
        it stopped. Bounds and damage are handled here, as for iteration."""
        unpack = self.record.unpack_from
        rec_size, max_record = self.record_size, self.max_record
        mapped = self.src.mapped is not None
        # Fix: the window must hold the largest record accepted, or a record
        # bigger than WINDOW (max_record > WINDOW) never fits: endless loop.
        window = max(WINDOW, rec_size + max_record)
        while True:
            # A window of the map, so pages read can be released as we go.
            buf, pos = self._buf, self._pos
            blen = len(buf)
            if self.first_ts is None and blen - pos >= rec_size:     # once per window
                sec, frac = unpack(buf, pos)[:2]
                self.first_ts = sec * 1_000_000_000 + frac * self.ts_mult
            yield buf, pos, (min(blen, pos + window) if mapped else blen)
            pos = self._pos
            if mapped:
                self._release()
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

    # -- pcapng --

    def _pcapng(self):
        """Block by block; a walker takes the runs of plain Enhanced Packet
        Blocks in between, in place."""
        self._order, self._ifaces, self._section = "<", [], -1
        self._last_ts = 0              # a Simple Packet Block repeats the previous time
        self._layout()
        mapped = self.src.mapped is not None
        while True:
            if self.walker is not None and self.frames_read:
                pos, buf = self._pos, self._buf
                self.walker(buf, pos, min(len(buf), pos + WINDOW) if mapped else len(buf))
            if mapped and self._pos - self._released >= 2 * WINDOW:
                self._release()
            block = self._block()
            if block is None:
                break
            btype, blen, pos, where = block
            if btype == 6 or btype == 2:        # Enhanced / obsolete Packet Block
                frame = self._packet_block(btype, blen, pos, where)
            elif btype == 3:
                frame = self._simple_block(blen, pos, where)
            else:
                frame = None
                if btype == 1:
                    self._interface_block(blen, pos, where)
                elif btype == PCAPNG_SHB:
                    self._section += 1
                    self._ifaces = []
                    self._layout()
                # other blocks (name resolution, statistics, custom, ...): skipped
            if frame is not None:
                yield frame
        self.bytes_read += self._pos

    def _layout(self):
        """Re-derive :attr:`epb_layout` after the section or its interfaces changed."""
        order = self._order
        fast = []
        for gi in self._ifaces:
            itf = self.interfaces[gi]
            mult = None
            if itf.tsbase == 10 and not itf.tsoffset and itf.tsresol in (6, 9):
                mult = 1000 if itf.tsresol == 6 else 1
            fast.append((mult, itf.linktype, gi))
        self.epb_layout = (struct.Struct(order + "IIIIIII").unpack_from,
                           struct.Struct(order + "I").unpack_from, fast)

    def _block(self):
        """The block at the read position, checked and wholly in the buffer:
        (type, length, its buffer position, its file offset), the read
        position moved past it; None where reading stops (with a warning)."""
        if not self._need(12):
            if len(self._buf) - self._pos:
                self._stop("capture cut in a block header", self._offset())
            return None
        buf, pos = self._buf, self._pos
        btype = struct.unpack_from(self._order + "I", buf, pos)[0]
        if btype == PCAPNG_SHB:
            bom = buf[pos + 8:pos + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                self._order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                self._order = ">"
            else:
                self._stop(f"pcapng section header with bad byte-order magic {bom.hex()}",
                           self._offset())
                return None
        order = self._order
        blen = struct.unpack_from(order + "I", buf, pos + 4)[0]
        where = self._offset()
        if blen < 12 or blen % 4 or blen > self.max_record + 64:
            self._stop(f"implausible pcapng block length {blen} (block type 0x{btype:x})", where)
            return None
        if not self._need(blen):
            self._stop(f"capture cut mid-block: pcapng block type 0x{btype:x} needs "
                       f"{blen} bytes, {len(self._buf) - self._pos} present", where)
            return None
        buf, pos = self._buf, self._pos
        trailer = struct.unpack_from(order + "I", buf, pos + blen - 4)[0]
        if trailer != blen:
            self._stop(f"pcapng block length mismatch ({blen} vs trailer {trailer})", where)
            return None
        self._pos = pos + blen
        return btype, blen, pos, where

    def _packet_block(self, btype, blen, pos, where):
        """An Enhanced (6) or obsolete Packet Block (2): its frame, or None if
        malformed (skipped, with a warning)."""
        buf, order, ifaces = self._buf, self._order, self._ifaces
        body, end = pos + 8, pos + blen - 4
        try:
            if btype == 6:
                iid, tsh, tsl, incl, orig = struct.unpack_from(order + "IIIII", buf, body)
            else:
                iid, _drops, tsh, tsl, incl, orig = struct.unpack_from(order + "HHIIII", buf, body)
        except struct.error:
            # Fix: a block shorter than its fixed fields at the very end of
            # the input (mid-input the overrun check below catches it).
            self.warnings.append(
                f"{self.name}: malformed packet block at byte offset {where} "
                f"(block length {blen} is shorter than its fixed fields); skipped")
            return None
        data_at = body + 20
        if data_at + incl > end or iid >= len(ifaces):
            self.warnings.append(
                f"{self.name}: malformed packet block at byte offset {where} "
                f"({'unknown interface %d' % iid if iid >= len(ifaces) else 'captured length %d overruns the block' % incl}); skipped")
            return None
        gi = ifaces[iid]
        itf = self.interfaces[gi]
        ticks = (tsh << 32) | tsl
        if itf.tsbase == 10:
            r = itf.tsresol
            ts = ticks * 1000 if r == 6 else (ticks if r == 9 else
                  (ticks * 10 ** (9 - r) if r < 9 else ticks // 10 ** (r - 9)))
        else:
            ts = (ticks * 1_000_000_000) >> itf.tsresol
        if itf.tsoffset:
            ts += itf.tsoffset * 1_000_000_000
        self._last_ts = ts
        number = self.frames_read = self.frames_read + 1
        if number == 1:
            self.first_ts = ts
        if incl < orig:
            self.truncated += 1
        opt_at = data_at + ((incl + 3) & ~3)
        if opt_at < end:
            for code, val in _options(buf, opt_at, end, order):
                if code == 1:
                    self.comments.setdefault(number, []).append(val.decode("utf-8", "replace"))
        return number, ts, itf.linktype, buf[data_at:data_at + incl], orig, gi

    def _simple_block(self, blen, pos, where):
        """A Simple Packet Block: its frame (no timestamp: the previous
        frame's is repeated, so relative times stay monotonic), or None."""
        if blen < 16:
            # Fix: no room for the original length: the trailer would be
            # read as one and a bogus empty frame yielded.
            self.warnings.append(f"{self.name}: malformed simple packet block at byte offset "
                                 f"{where} (block length {blen}); skipped")
            return None
        if not self._ifaces:
            self.warnings.append(f"{self.name}: simple packet block before any "
                                 f"interface at byte offset {where}; skipped")
            return None
        buf, body, end = self._buf, pos + 8, pos + blen - 4
        gi = self._ifaces[0]
        itf = self.interfaces[gi]
        orig = struct.unpack_from(self._order + "I", buf, body)[0]
        incl = min(orig, end - body - 4)
        if itf.snaplen:
            incl = min(incl, itf.snaplen)
        number = self.frames_read = self.frames_read + 1
        if number == 1:
            self.first_ts = self._last_ts
        if incl < orig:
            self.truncated += 1
        return number, self._last_ts, itf.linktype, buf[body + 4:body + 4 + incl], orig, gi

    def _interface_block(self, blen, pos, where):
        """An Interface Description Block: the next interface of the section."""
        buf, order, body, end = self._buf, self._order, pos + 8, pos + blen - 4
        if blen < 20:
            # Fix: shorter than its fixed fields (struct.error at the end of
            # the input, a bogus interface elsewhere). Keep its place in the
            # section's numbering, with link type 0xFFFF (unassigned): its
            # frames count as an unsupported link.
            self.warnings.append(
                f"{self.name}: malformed interface description block at byte "
                f"offset {where} (block length {blen}); its frames are skipped")
            self._ifaces.append(len(self.interfaces))
            self.interfaces.append(Interface(0xFFFF, 0, None, self._section))
            self._layout()
            return
        linktype, _res, snaplen = struct.unpack_from(order + "HHI", buf, body)
        tsresol, tsbase, tsoffset, name = 6, 10, 0, None
        for code, val in _options(buf, body + 8, end, order):
            if code == 9 and val:
                tsbase = 2 if val[0] & 0x80 else 10
                tsresol = val[0] & 0x7F
            elif code == 14 and len(val) == 8:
                tsoffset = struct.unpack(order + "q", val)[0]
            elif code == 2:
                name = val.decode("utf-8", "replace")
        if tsbase == 10 and tsresol > 30 or tsbase == 2 and tsresol > 96:
            self.warnings.append(f"{self.name}: implausible if_tsresol {tsresol} at "
                                 f"byte offset {where}; using microseconds")
            tsresol, tsbase = 6, 10
        self._ifaces.append(len(self.interfaces))
        self.interfaces.append(
            Interface(linktype, snaplen, name, self._section, tsresol, tsbase, tsoffset))
        self._layout()


def _options(buf, at: int, end: int, order: str):
    """pcapng options (code, value) between at and end; stops at opt_endofopt
    or at the first option that would overrun its block."""
    hdr = struct.Struct(order + "HH")
    while at + 4 <= end:
        code, length = hdr.unpack_from(buf, at)
        if code == 0:
            return
        at += 4
        if at + length > end:
            return
        yield code, bytes(buf[at:at + length])
        at += (length + 3) & ~3


def open_capture(source, **kw) -> CaptureReader:
    """Open a capture: a path, ``'-'`` for stdin, or a binary file object."""
    return CaptureReader(source, **kw)
