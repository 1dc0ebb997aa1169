"""Several capture files read as one capture: ring buffers (``dumpcap -b``,
``tcpdump -C/-W``), a folder, a glob (issue 18).

:func:`open_set` gives a :class:`CaptureSet`, which reads like one
:class:`dicomwire.capture.CaptureReader`: one pass, frames in time order,
numbered 1, 2, ... across the files; ``interfaces`` and ``comments`` are
the set's (every file's interfaces, indexes global), ``warnings`` name the
file they are about. The files are placed by their time spans
(:func:`dicomwire.capspan.probe`), then read in parts:

- a file that follows the ones before it in time (a ring buffer's next
  file) is read by its own reader, through the walker (the pipeline's fast
  path) as a single capture is: nothing is copied, only numbering goes on;
- files that overlap in time are merged by timestamp (a heap over their
  frames, ties in command-line order); their frames take the general path.

Link types and time resolutions may differ: frames carry their own. The
reassembler sees one pass, so a TCP stream or an object that crosses a
file boundary simply continues. A file that is no capture, or damaged, is
reported (``warnings``) and the others are still read.
"""

from __future__ import annotations

import heapq
import os

from dicomwire.capsource import MAX_RECORD, CaptureError
from dicomwire.capspan import Span, expand, probe


def open_set(sources, *, max_record: int = MAX_RECORD):
    """The capture named by ``sources``: a path, a folder, a glob, or a
    list of those. One file: its :class:`CaptureReader`; more: a
    :class:`CaptureSet`."""
    from dicomwire.capture import CaptureReader
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [os.fspath(s) for s in sources]
    paths = expand(sources)
    if len(paths) == 1:
        return CaptureReader(paths[0], max_record=max_record)
    return CaptureSet(paths, max_record=max_record, label=_label(sources, len(paths)))


def _label(sources, n: int) -> str:
    shown = ", ".join(sources) if len(sources) <= 3 else f"{sources[0]}, ..., {sources[-1]}"
    return f"{shown} [{n} files]"


def plan(spans: list[Span]) -> list[list[Span]]:
    """The parts of a set: files sorted by their first frame's time (files
    without frames first, ties in command-line order), consecutive files
    that overlap in time grouped (a part of several is merged)."""
    order = sorted(spans, key=lambda s: (s.first_ts is not None, s.first_ts or 0, s.index))
    parts: list[list[Span]] = []
    latest = None                      # the latest last frame of the current part
    for s in order:
        if s.first_ts is not None and latest is not None and s.first_ts < latest:
            parts[-1].append(s)
            latest = max(latest, s.last_ts)
            continue
        parts.append([s])
        if s.first_ts is not None:
            latest = s.last_ts
    return parts


class CaptureSet:
    """Capture files read as one capture (see the module's docstring).

    Attributes as :class:`CaptureReader`'s: ``name``, ``format`` (the
    files' formats joined by ``+``), ``interfaces``, ``comments``,
    ``warnings``, ``frames_read``, ``truncated``, ``first_ts`` (known
    before the first frame: the earliest file's), ``progress``; and
    ``spans`` (each file's :class:`dicomwire.capspan.Span`), ``parts``.
    """

    def __init__(self, paths, *, max_record: int = MAX_RECORD, label: str | None = None,
                 frame_base: int = 0, start: int | None = None, stop: int | None = None):
        self.max_record = max_record
        self.interfaces: list = []
        self.comments: dict[int, list[str]] = {}
        self._warnings: list[str] = []
        spans = []
        for i, path in enumerate(paths):
            try:
                spans.append(probe(path, i, max_record))
            except CaptureError as e:
                if not os.path.exists(path) or not os.access(path, os.R_OK):
                    raise
                self._warnings.append(f"{e}; skipped")
        if not spans:
            raise CaptureError(f"{label or paths}: none of these files is a capture")
        self.spans = spans
        self.parts = plan(spans)
        self.name = label or ", ".join(paths)
        self.format = "+".join(dict.fromkeys(s.format for s in sorted(spans,
                                                                       key=lambda s: s.index)))
        self.first_ts = next((s.first_ts for p in self.parts for s in p
                              if s.first_ts is not None), None)
        # Frames of the parts done (and of merged ones so far); frame_base: the
        # frames before these files (a --dask run, dicomwire.handover).
        self._frames = frame_base
        self.truncated = 0
        self._open: list = []          # readers of the part being read
        self._sequential = None        # its reader, when it is one file read in place
        self._done_bytes = 0
        self._make_walker = None
        self._behind: list = []        # maps of files done that views still hold
        # A --dask run that begins or ends inside a file (dicomwire.runplan):
        # the first path is read from offset start, the last to offset stop
        # (CaptureReader.bound); end_offset: where reading of the last ended.
        self._bounds = {0: (start, None), len(paths) - 1: (None, stop)}
        if len(paths) == 1:
            self._bounds = {0: (start, stop)}
        self.end_offset: int | None = None
        self._last = len(paths) - 1
        self._iter = self._read()

    # -- what the pipeline asks of a reader --

    def use_walker(self, make):
        """``make(reader)`` gives the walker of each file read in place
        (:attr:`dicomwire.capture.CaptureReader.walker`)."""
        self._make_walker = make

    def __iter__(self):
        return self._iter

    def frames(self):
        from dicomwire.capture import Frame
        for t in self._iter:
            yield Frame._make(t)

    @property
    def frames_read(self) -> int:
        r = self._sequential
        return self._frames if r is None else r.frames_read

    @property
    def warnings(self) -> list[str]:
        return self._warnings + [w for r in self._open for w in r.warnings]

    @property
    def progress(self) -> tuple[int, int | None]:
        done = self._done_bytes + sum(r.progress[0] for r in self._open)
        sizes = [s.size for s in self.spans]
        total = None if None in sizes or any(s.compressed for s in self.spans) else sum(sizes)
        return done, total

    def close(self):
        for r in list(self._open):
            self._finish(r)
        self._sequential = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- reading --

    def _reader(self, span: Span, shared: bool):
        from dicomwire.capture import CaptureReader
        try:
            r = CaptureReader(span.path, max_record=self.max_record, interfaces=self.interfaces,
                              comments=self.comments if shared else None)
        except CaptureError as e:     # changed since it was probed
            self._warnings.append(f"{e}; skipped")
            return None
        r.behind = self._behind
        r.set_index = span.index
        self._open.append(r)
        start, stop = self._bounds.get(span.index, (None, None))
        if start is not None or stop is not None:
            r.bound(start, stop)
        return r

    def _finish(self, r):
        """A reader done (or the pass stopped): its counts and warnings are the set's."""
        if r not in self._open:
            return
        self._open.remove(r)
        if r is self._sequential:
            self._frames = r.frames_read
            self._sequential = None
        self.truncated += r.truncated
        self._warnings += r.warnings
        if r.set_index == self._last:
            self.end_offset = r.position
        self._done_bytes += r.progress[0]
        r.close()
        m = r.src.mapped
        if m is not None and not m.closed:           # views of it are still held
            self._behind.append(m)

    def _read(self):
        for part in self.parts:
            if len(part) == 1:
                yield from self._in_place(part[0])
            else:
                yield from self._merged(part)

    def _in_place(self, span: Span):
        """One file that follows the others in time: its reader numbers on
        from the frames before it, its walker takes what it can in place."""
        r = self._reader(span, shared=True)
        if r is None:
            return
        r.frames_read = self._frames
        self._sequential = r
        if self._make_walker is not None:
            r.walker = self._make_walker(r)
        try:
            yield from r
        finally:
            self._finish(r)

    def _merged(self, part: list[Span]):
        """Files that overlap in time, merged by timestamp (ties: the file
        given first), renumbered; their comments move to the set's numbers."""
        part = sorted(part, key=lambda s: s.index)
        readers = [r for r in (self._reader(s, shared=False) for s in part) if r is not None]
        try:
            tagged = [_tag(r) for r in readers]
            for r, (number, ts, linktype, data, orig, iface) in heapq.merge(
                    *tagged, key=_ts):
                self._frames += 1
                n = self._frames
                notes = r.comments.pop(number, None)
                if notes:
                    self.comments[n] = notes
                yield n, ts, linktype, data, orig, iface
        finally:
            for r in readers:
                self._finish(r)


def _tag(reader):
    for frame in reader:
        yield reader, frame


def _ts(tagged):
    return tagged[1][1]
