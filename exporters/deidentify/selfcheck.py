"""The self-check run beside the rewrite: two forked children read what
the parent writes to the output file, through pipes, as it is written. One
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


class _Child:
    """A forked process running ``work(pipe)`` on what the parent writes to
    it; its dict comes back pickled. ``siblings``: children forked before,
    whose pipe ends the new child must not keep open (a held write end, and
    that sibling never sees the end of its input)."""

    def __init__(self, work, siblings=()):
        r, w = os.pipe()
        rr, rw = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                       # the child: never returns
            for fd in [w, rr] + [f for c in siblings for f in c.fds()]:
                os.close(fd)
            code = 0
            try:
                data = pickle.dumps(work(os.fdopen(r, "rb", buffering=CHUNK)))
                while data:
                    data = data[os.write(rw, data):]
            except BaseException:
                code = 1
            os._exit(code)
        os.close(r)
        os.close(rw)
        self.result_fd = rr
        self.pipe = os.fdopen(w, "wb", buffering=1 << 20)

    def fds(self) -> list[int]:
        return [self.pipe.fileno(), self.result_fd]

    def write(self, b) -> bool:
        try:
            self.pipe.write(b)
            return True
        except OSError:                         # the child is gone
            return False

    def result(self) -> dict | None:
        try:
            self.pipe.close()
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
        if hasattr(os, "fork") and not os.environ.get("DICOMWIRE_SERIAL_CHECK"):
            first = _Child(lambda src: _decode(src, config, originals, planned, tap))
            self.children = [first, _Child(lambda src: _search(src, originals),
                                           siblings=[first])]

    def write(self, b):
        self.out.write(b)
        if not self.failed:
            for c in self.children:
                if not c.write(b):
                    self.failed = True

    def result(self) -> dict | None:
        if not self.children:
            return None
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
