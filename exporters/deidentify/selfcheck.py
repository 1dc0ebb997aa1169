"""The self-check run beside the rewrite, on the second core: a forked child
decodes the output as it is written (it reads what the parent writes to the
file through a pipe too) and searches its bytes, so checking costs little
more wall time than writing on an idle two-core machine. Where fork is
missing, the child fails, or DICOMWIRE_SERIAL_CHECK is set (to compare), the
check runs after the rewrite, on the file (:func:`check_file`).
"""

from __future__ import annotations

import os
import pickle
from collections import Counter

from dicomwire.exporters.deidentify.check import CHUNK, Inflated, Searcher, Signature


def _decode(source, config, originals, planned) -> dict:
    """The output read again: its PDU signature (``planned``: the length
    changes made on purpose, :class:`.check.Planned`), its findings, and the
    original values found inside its deflated data sets."""
    import dataclasses

    from dicomwire.pipeline import make_host, run
    config = dataclasses.replace(config, state={})     # a run of its own (no PDV spans)
    host = make_host(config)
    sig, inflated = Signature(planned), Inflated(originals)
    host.register(sig, "signature")
    host.register(inflated, "inflated")
    result = run(source, config, host)
    return {"pdus": sig.digest(), "inflated": inflated.hits,
            "findings": Counter(i.field.name for i in result.expert.infos)}


def check_file(path, config, originals, planned=None) -> dict:
    """Decode and search the written file (the sequential way)."""
    from dicomwire.exporters.deidentify.check import search
    out = _decode(path, config, originals, planned)
    out["hits"] = search(path, originals) + out.pop("inflated")
    return out


class _Tee:
    """The child's input: the pipe, every block also given to the searcher."""

    def __init__(self, f, searcher):
        self.f, self.searcher = f, searcher

    def read(self, n=-1):
        b = self.f.read(n)
        if b:
            self.searcher.feed(b)
        return b


class ParallelCheck:
    """Fork the checker; ``write`` is the output file's, teed to it;
    ``result()`` waits for its verdict (None if it failed)."""

    def __init__(self, out, config, originals, planned=None):
        self.out, self.alive = out, hasattr(os, "fork") and not os.environ.get("DICOMWIRE_SERIAL_CHECK")
        self.pipe = None
        if not self.alive:
            return
        r, w = os.pipe()
        rr, rw = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                       # the child: never returns
            os.close(w)
            os.close(rr)
            code = 0
            try:
                searcher = Searcher(originals)
                src = _Tee(os.fdopen(r, "rb", buffering=CHUNK), searcher)
                verdict = _decode(src, config, originals, planned)
                while src.read(CHUNK):          # what the pass did not read, searched too
                    pass
                verdict["hits"] = searcher.hits() + verdict.pop("inflated")
                data = pickle.dumps(verdict)
                while data:
                    data = data[os.write(rw, data):]
            except BaseException:
                code = 1
            os._exit(code)
        os.close(r)
        os.close(rw)
        self.result_fd = rr
        self.pipe = os.fdopen(w, "wb", buffering=1 << 20)

    def write(self, b):
        self.out.write(b)
        if self.pipe is not None:
            try:
                self.pipe.write(b)
            except OSError:                     # the child is gone: check afterwards
                self.pipe = None

    def result(self) -> dict | None:
        if not self.alive:
            return None
        if self.pipe is not None:
            try:
                self.pipe.close()
            except OSError:
                pass
        chunks = []
        while b := os.read(self.result_fd, 1 << 16):
            chunks.append(b)
        os.close(self.result_fd)
        _pid, status = os.waitpid(self.pid, 0)
        if status or not chunks or self.pipe is None:
            return None
        try:
            return pickle.loads(b"".join(chunks))
        except Exception:
            return None
