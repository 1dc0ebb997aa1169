"""The bytes of a capture: a file (memory-mapped when it can be), stdin, or
either gzip-compressed, read in large chunks (dicomwire.capture reads the
formats from them).

Input is hostile: nothing here allocates more than a chunk beyond what is
present; gzip output is produced a chunk at a time.
"""

from __future__ import annotations

import mmap
import os
import sys
import zlib
from typing import BinaryIO

CHUNK = 1 << 20
# Largest record or block we accept. Real packets are at most 256 KiB
# (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD); loopback/TSO captures stay far
# below this. Anything larger is garbage, never an allocation.
MAX_RECORD = 16 << 20
# A mapped file is read in windows of this size; pages behind are released.
WINDOW = 8 << 20


class CaptureError(Exception):
    """The input cannot be read as a capture, or stops being one."""


class Source:
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
                # Payloads still hold views of it: unmapped when they go. Its
                # pages leave our memory now (a view read later maps them
                # again from the page cache): a file set closes one file
                # after another, while streams still hold views of the last.
                try:
                    self.mapped.madvise(mmap.MADV_DONTNEED)
                except (OSError, ValueError, AttributeError):
                    pass
        if self.owned:
            self.raw.close()


def open_source(source) -> Source:
    if source == "-" or source is None:
        return Source(sys.stdin.buffer, "<stdin>", None, owned=False)
    if hasattr(source, "read"):
        return Source(source, getattr(source, "name", "<stream>"), None, owned=False)
    path = os.fspath(source)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise CaptureError(f"{path}: {e.strerror or e}") from None
    try:
        size = os.fstat(f.fileno()).st_size
        if not os.path.isfile(path):
            size = None
        return Source(f, path, size)
    except IsADirectoryError:
        f.close()
        raise CaptureError(f"{path}: is a directory") from None
    except OSError as e:
        f.close()
        raise CaptureError(f"{path}: {e.strerror or e}") from None
