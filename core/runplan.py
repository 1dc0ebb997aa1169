"""How a ``--dask`` run cuts a file set into *runs* of consecutive files
(:mod:`dicomwire.cluster` hands them to workers). Files that overlap in
time are merged by timestamp, so they stay together in a run; a classic
pcap read on its own may be cut between two runs at a record (so that runs
hold the bytes planned whatever the files' sizes, and one big file is
shared).
Paths are absolute: a worker's folder is not the client's."""

from __future__ import annotations

import os

from dicomwire.capspan import Span, cuttable


def runs_of(reader, workers: int) -> list[list[str]]:
    """The set's parts cut into at most ``workers`` runs of consecutive
    parts, about the same bytes each (a part of overlapping files stays
    whole: they are merged by timestamp)."""
    parts = getattr(reader, "parts", None)
    if parts is None:                              # one file
        return [[os.path.abspath(reader.name)]]
    sizes = _sizes(parts)
    total = sum(sizes) or 1
    n = max(1, min(workers, len(parts)))
    return _cut(parts, sizes, [total * i / n for i in range(1, n)], inside=False)[0]


#: No run begins or ends less than this many bytes from a file's edge (or
#: another cut): a piece smaller is not worth a worker's start.
MIN_PIECE = 64 << 20
#: The plan's first run, when it is cut from a big first file: this part of
#: a worker's share (small, so the second worker starts at once, and long
#: enough for the count to reach the next runs' starts meanwhile).
HEAD = 16
#: The runs after the first shrink toward the end (each a worker's part of
#: what is left) down to this part of the set, or :data:`MIN_PIECE` when
#: that is more: on 14 GB, 56 MB, so 64 MB, about a fifth of a second's
#: reading. (1/128, 112 MB, left one worker idle 0.21 s on average at the
#: end of a16's `show`, this 0.05 s: 10 runs each, and the parts ended 0.05
#: s earlier against their CPU time. More runs: more seams that a pack's
#: state across streams may cross, which make a set be read in one process.)
TAIL = 256


def plan(reader, workers: int, runs: int | None = None):
    """(runs, stops): the runs for ``workers`` workers, taken in order as
    workers free up (:func:`dicomwire.cluster._submit`), and where each
    ends inside its last file (``stops[k]``: an offset, see
    :meth:`dicomwire.capture.CaptureReader.bound`; None: at the file's end).
    A cut file is the last file of one run and the first of the next;
    only a classic pcap read on its own (no time overlap) is cut, no piece
    smaller than :data:`MIN_PIECE`.

    Run k starts once the frames before it are counted; so that the second
    worker need not wait for half the set's count, the first run is
    small (the first part alone, or the head of a big first file). The
    runs after it are guided (:func:`_guided`): each holds what is left
    divided by ``workers``, so they shrink toward the end and the workers
    end together even when a byte costs one of them more than another (a
    busier machine, files of other traffic). ``runs``: so many even runs
    instead (tests)."""
    parts = _parts(reader)
    sizes = _sizes(parts)
    total = sum(sizes) or 1
    if runs is not None or workers < 2:
        n = runs or workers
        return _cut(parts, sizes, [total * i / n for i in range(1, n)])
    share = total / workers
    head = sizes[0] if sizes[0] <= share / 2 else share / HEAD
    if sizes[0] > share / 2 and not (_cuttable(parts[0]) and head >= MIN_PIECE):
        return _cut(parts, sizes, [share * i for i in range(1, workers)])    # even runs
    return _cut(parts, sizes, [head] + _guided(head, total, workers))


def _guided(start: float, total: float, workers: int) -> list[float]:
    """Where the runs after ``start`` end (guided self-scheduling,
    Polychronopoulos and Kuck 1987): each run holds 1/``workers`` of the
    bytes still left, at least 1/:data:`TAIL` of the set; the last holds
    what is left when it is less than two such runs. A worker that ends
    its run early takes the next, smaller one: the workers' ends differ by
    about the last runs' length, not by a share's worth of drift."""
    least = max(MIN_PIECE, total / TAIL)
    bounds, at = [], start
    while True:
        left = total - at
        step = max(left / workers, least)
        if left - step < least:
            return bounds
        at += step
        bounds.append(at)


def _parts(reader):
    parts = getattr(reader, "parts", None)
    if parts is not None:
        return parts
    src = getattr(reader, "src", None)                # one file
    return [[Span(reader.name, 0, getattr(reader, "format", None), getattr(src, "size", None),
                  None, None, getattr(src, "compressed", True),
                  src is not None and cuttable(reader))]]


def _cuttable(part) -> bool:
    return len(part) == 1 and getattr(part[0], "cuttable", False) and bool(part[0].size)


def _sizes(parts) -> list[int]:
    return [sum(s.size or 0 for s in p) for p in parts]


def _cut(parts, sizes, bounds, inside=True):
    """(runs, stops) of ``parts`` in runs that end near the byte offsets
    ``bounds``: inside a part that may be cut (:func:`_cuttable`;
    ``inside``), else between parts (a part goes to the run that holds
    most of it)."""
    runs, stops, acc, b = [[]], [], 0, 0
    for p, size in zip(parts, sizes):
        can = inside and _cuttable(p)
        # Absolute: a worker's folder is not the client's.
        paths = [os.path.abspath(s.path) for s in sorted(p, key=lambda s: s.index)]
        if b < len(bounds) and runs[-1] and acc + size / 2 > bounds[b] \
                and not (can and bounds[b] - acc >= MIN_PIECE):
            runs.append([])                  # this part begins the next run
            stops.append(None)
            b += 1
        runs[-1] += paths
        cut = acc
        while b < len(bounds) and can and bounds[b] - cut >= MIN_PIECE \
                and acc + size - bounds[b] >= MIN_PIECE:
            cut = bounds[b]
            stops.append(int(cut - acc))     # an offset in the file
            runs.append(list(paths))         # the file goes on in the next run
            b += 1
        acc += size
    stops.append(None)
    return runs, stops
