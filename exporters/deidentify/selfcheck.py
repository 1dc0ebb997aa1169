"""The self-check run beside the rewrite: two forked children read the
output file as the parent writes it (by offset, up to what the parent says
it has flushed: :class:`_Follow`). One
decodes it (:func:`_decode`: PDU signature, findings, the original values
inside deflated data sets, header addresses), the other searches its bytes
for the original values (:func:`_search`); with the parent's rewrite that
is three processes, whose work spreads over the two cores of the machine
we measure on, so checking costs little more wall time than writing. Where
fork is missing, a child fails, or DICOMWIRE_SERIAL_CHECK is set (to
compare), the check runs after the rewrite, on the file (:func:`check_file`).
"""

from __future__ import annotations

import os
import pickle
from collections import Counter

from dicomwire.exporters.deidentify.check import CHUNK, Inflated, Searcher, Signature


def _decode(source, config, originals, planned=None, tap=None) -> dict:
    """The output read again: its PDU signature (``planned``: the length
    changes made on purpose, :class:`.check.Planned`), its findings, the
    original values found inside its deflated data sets, and (``tap``, an
    :class:`dicomwire.rewrite_hosts.AddressTap`) its header addresses."""
    import dataclasses

    from dicomwire.pipeline import make_host, run
    config = dataclasses.replace(config, state={})     # a run of its own (no PDV spans)
    host = make_host(config)
    sig, inflated = Signature(planned), Inflated(originals)
    host.register(sig, "signature")
    host.register(inflated, "inflated")
    result = run(source, config, host, tap=tap)
    if hasattr(source, "read"):             # a pipe: drain what the pass did not read
        while source.read(CHUNK):
            pass
    return {"pdus": sig.digest(), "inflated": inflated.hits,
            "findings": Counter(i.field.name for i in result.expert.infos),
            "addresses": tap.found if tap is not None else {}}


def _search(source, originals) -> dict:
    searcher = Searcher(originals)
    while block := source.read(CHUNK):
        searcher.feed(block)
    return {"hits": searcher.hits()}


def check_file(path, config, originals, planned=None, tap=None) -> dict:
    """Decode and search the written file (the sequential way)."""
    from dicomwire.exporters.deidentify.check import search
    out = _decode(path, config, originals, planned, tap)
    out["hits"] = search(path, originals) + out.pop("inflated")
    return out


NOTIFY = 8 << 20         # the parent tells the checkers how far the file is written every 8 MiB


class _Follow:
    """The output file as it is written, for a child: ``read`` gives what
    the parent has flushed (read from the page cache by ``pread``: no copy
    through a pipe), waiting on the notification pipe for more, whose end
    means the file is whole."""

    def __init__(self, fd: int, notify: int):
        self.fd, self.notify = fd, notify
        self.pos = self.avail = 0
        self.done, self.pending = False, b""

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n is None or n < 0 else n
        while self.pos >= self.avail and not self.done:
            msg = os.read(self.notify, 4096)
            if not msg:
                self.done, self.avail = True, os.fstat(self.fd).st_size
                break
            self.pending += msg
            whole = len(self.pending) // 8 * 8
            if whole:
                self.avail = int.from_bytes(self.pending[whole - 8:whole], "little")
                self.pending = self.pending[whole:]
        want = min(n, self.avail - self.pos)
        if want <= 0:
            return b""
        b = os.pread(self.fd, want, self.pos)
        self.pos += len(b)
        return b


class _Child:
    """A forked process running ``work(source)`` on the output file at
    ``path`` as the parent writes it (read by offset); its dict comes
    back pickled. ``siblings``: children forked before, whose pipe ends the
    new child must not keep open (a held write end, and that sibling never
    sees the end of its input)."""

    def __init__(self, work, path: str, siblings=()):
        r, self.notify = os.pipe()
        rr, rw = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                       # the child: never returns
            for f in [self.notify, rr] + [f for c in siblings for f in c.fds()]:
                os.close(f)
            code = 0
            try:
                data = pickle.dumps(work(_Follow(os.open(path, os.O_RDONLY), r)))
                while data:
                    data = data[os.write(rw, data):]
            except BaseException:
                code = 1
            os._exit(code)
        os.close(r)
        os.close(rw)
        self.result_fd = rr

    def fds(self) -> list[int]:
        return [self.notify, self.result_fd]

    def tell(self, size: int) -> bool:
        try:
            os.write(self.notify, size.to_bytes(8, "little"))
            return True
        except OSError:                         # the child is gone
            return False

    def result(self) -> dict | None:
        try:
            os.close(self.notify)               # the file is whole
        except OSError:
            pass
        chunks = []
        while b := os.read(self.result_fd, 1 << 16):
            chunks.append(b)
        os.close(self.result_fd)
        _pid, status = os.waitpid(self.pid, 0)
        if status or not chunks:
            return None
        try:
            return pickle.loads(b"".join(chunks))
        except Exception:
            return None


class ParallelCheck:
    """Fork the checkers; ``write`` is the output file's, teed to them;
    ``result()`` waits for their verdict (None if one failed: check the
    file afterwards)."""

    def __init__(self, out, config, originals, planned=None, tap=None):
        self.out, self.children, self.failed = out, [], False
        self.written = self.told = 0
        if hasattr(os, "fork") and not os.environ.get("DICOMWIRE_SERIAL_CHECK"):
            out.flush()
            path = out.name                 # (the file is open to write only: read anew)
            first = _Child(lambda src: _decode(src, config, originals, planned, tap), path)
            self.children = [first, _Child(lambda src: _search(src, originals), path,
                                           siblings=[first])]

    def write(self, b):
        self.out.write(b)
        self.written += len(b)
        if self.children and self.written - self.told >= NOTIFY:
            self._tell()

    def _tell(self):
        self.out.flush()
        self.told = self.out.tell()
        for c in self.children:
            if not c.tell(self.told):
                self.failed = True

    def result(self) -> dict | None:
        if not self.children:
            return None
        self.out.flush()                        # all of it in the file before its end is told
        verdict: dict = {}
        for c in self.children:
            part = c.result()
            if part is None:
                self.failed = True
            else:
                verdict.update(part)
        if self.failed:
            return None
        verdict["hits"] = verdict["hits"] + verdict.pop("inflated")
        return verdict
