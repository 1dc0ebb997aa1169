"""Where a DIMSE message's data set bytes live while it crosses: bounded memory.

:class:`DataSetSpool` is the byte store a :class:`~dicomwire.plugins.dicom.model.Message`
is built on: fragments are kept as they came (appended by the dissector, or
by the engine's fast path through the bulk lane), and spilled to a temporary
file past a size, a fragment count, or a budget shared by every message of
the run (``held``), so any number of parallel transfers of any size stay
bounded. It hands the bytes out, as they crossed the wire, only while the
message hooks run, then drops them. Apart from the message model because it
is about memory and files, not about DICOM: what the bytes mean (transfer
syntax, decoding) stays in ``model.py``.
"""

from __future__ import annotations

import io
import os
import tempfile

from dicomwire.specs.dicom import dataset

IOV_MAX = 1024              # buffers per writev (Linux's limit)
SPOOL_AT = 32 << 20         # data sets larger than this are spooled to disk,
SPOOL_PARTS = 1 << 16       # and so are those in more fragments (tiny PDVs) than this,
MEMORY_BUDGET = 48 << 20    # and any that grows while all in memory together pass this.
# Data set bytes held in memory by all messages (in parallel associations):
# one counter, so the bound holds however many transfers overlap.
held = [0]


def writev_all(fd: int, parts: list) -> None:
    """Write every buffer of ``parts`` to ``fd``, IOV_MAX at a time."""
    for i in range(0, len(parts), IOV_MAX):
        group = parts[i:i + IOV_MAX]
        done = os.writev(fd, group)
        if done < sum(map(len, group)):         # a short write: finish it plainly
            rest = memoryview(b"".join(group))[done:]
            while rest:
                rest = rest[os.write(fd, rest):]


class DataSetSpool:
    """A data set's bytes: fragments in memory, spilled to a temporary file
    past the bounds above; readable until :meth:`release`."""

    def __init__(self):
        self._pending = self._spooled = 0     # data set bytes in memory / on disk
        self._parts: list[bytes] = []
        self._spool = None
        self._released = False

    # -- assembly (the dissector and the bulk lane) --

    def add_data(self, data: bytes):
        # Per chunk: an append; every SPOOL_AT bytes (or SPOOL_PARTS chunks)
        # one write to a temporary file. (The bulk of a transfer comes through
        # the lane instead: appended by the pipeline, then took().)
        self._parts.append(data)
        self.took(len(data))

    def lane(self) -> tuple[int, list]:
        """For the dissector's bulk lane: how many bytes may be appended to
        the data set, one part each, before add_data would spill it, and the
        list of parts to append them to; ``took`` them after."""
        return (min(SPOOL_AT - self._pending, MEMORY_BUDGET - held[0],
                    SPOOL_PARTS - len(self._parts)), self._parts)

    def took(self, n: int):
        """Account for ``n`` bytes appended to the parts (add_data, the bulk
        lane); spill them to disk past the bounds."""
        self._pending += n
        held[0] += n
        if self._pending > SPOOL_AT or held[0] > MEMORY_BUDGET \
                or len(self._parts) > SPOOL_PARTS:
            self._spill()

    def _spill(self):
        if self._spool is None:
            self._spool = tempfile.TemporaryFile(prefix="dicomwire-", buffering=0)
        # writev: the fragments go out as they are, without joining them first.
        writev_all(self._spool.fileno(), self._parts)
        self._spooled += self._pending
        held[0] -= self._pending
        self._parts, self._pending = [], 0

    @property
    def dataset_len(self) -> int:
        return self._spooled + self._pending

    # -- reading (only during the dicomwire_message hook) --

    def _rewound_spool(self):
        """The spool file (all bytes flushed, at its start), or None."""
        if self._released:
            raise RuntimeError("data set bytes are released after dicomwire_message")
        if self._spool is not None:
            if self._parts:
                self._spill()
            self._spool.seek(0)
        return self._spool

    def dataset_bytes(self) -> bytes:
        """The data set exactly as it crossed the wire (deflated stays
        deflated). Only during the ``dicomwire_message`` hook."""
        if self._rewound_spool() is not None:
            return self._spool.read()
        if len(self._parts) != 1 or type(self._parts[0]) is not bytes:
            # Fragments may be memoryviews (the reassembler's out-of-order
            # path): always hand out bytes.
            self._parts = [b"".join(self._parts)]
        return self._parts[0]

    def memory_parts(self) -> list | None:
        """The data set's fragments while all of them are in memory (None
        once spooled to disk). Only during the ``dicomwire_message`` hook."""
        if self._released:
            raise RuntimeError("data set bytes are released after dicomwire_message")
        return None if self._spool is not None else self._parts

    def dataset_head(self, n: int) -> bytes:
        """The first n bytes of the data set, without joining the rest."""
        if self._rewound_spool() is not None:
            return self._spool.read(n)
        out, have = [], 0
        for p in self._parts:
            out.append(p[:n - have])
            have += len(out[-1])
            if have >= n:
                break
        return b"".join(out)

    def dataset_view(self):
        """The data set for one read-only walk: its fragments as one
        ``dataset.Chunks`` while they are in memory (never joined), else
        :meth:`dataset_buffer` (the caller closes what has a ``close``)."""
        if self._spool is None and len(self._parts) > 1 and not self._released:
            return dataset.Chunks(self._parts)
        return self.dataset_buffer()

    def dataset_buffer(self):
        """The data set as one buffer without copying a spooled one: bytes,
        or a read-only mmap of the spool file (the caller closes it)."""
        spool = self._rewound_spool()
        if spool is None:
            return self.dataset_bytes()
        if not self._spooled:
            return b""
        import mmap
        return mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ)

    def copy_dataset(self, out, head: bytes = b"") -> int:
        """Write ``head`` (a file meta header, say), then the wire bytes of the
        data set, to ``out``: a binary file or a file descriptor. Bounded
        memory; an in-memory data set goes out in one writev with its head.
        Returns the data set bytes written."""
        if isinstance(out, int):
            fd, write = out, None
        else:
            write = out.write
            try:
                out.flush()
                fd = out.fileno()
            except (AttributeError, OSError, io.UnsupportedOperation):
                fd = None                  # not a real file: write the parts one by one
        if self._rewound_spool() is not None:
            if head:
                writev_all(fd, [head]) if write is None else write(head)
            total, n = self._spooled, 0
            if fd is not None:
                try:
                    # In the kernel, spool file to output file: no copy through Python.
                    while n < total:
                        sent = os.sendfile(fd, self._spool.fileno(), n, total - n)
                        if not sent:
                            break
                        n += sent
                except OSError:
                    pass                   # no sendfile here: by hand
            self._spool.seek(n)            # go on by hand from where sendfile stopped
            while n < total:
                b = self._spool.read(1 << 20)
                if not b:
                    break
                writev_all(fd, [b]) if write is None else write(b)
                n += len(b)
            return n
        parts = [head, *self._parts] if head else self._parts
        if fd is not None:
            writev_all(fd, parts)         # the fragments as they are: no join, no copy
        else:
            for p in parts:
                write(p)
        return self._pending

    def release(self):
        """Drop the data set bytes (after the message hooks ran)."""
        if not self._released:
            held[0] -= self._pending
        self._parts = []
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._released = True
