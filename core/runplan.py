"""How a ``--dask`` run cuts a file set into *runs* of consecutive files
(:mod:`dicomwire.cluster` hands them to workers). A run holds whole parts:
files that overlap in time are merged by timestamp, so they stay together.
Paths are absolute: a worker's folder is not the client's."""

from __future__ import annotations

import os


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
    return _cut(parts, sizes, [total * i / n for i in range(1, n)])


def plan(reader, workers: int) -> list[list[str]]:
    """The runs for ``workers`` workers, taken in order as workers free
    up (:func:`_submit`). Run k starts once the frames before it are
    counted; so that the second worker need not wait for half the set's
    count, the first run is the first part alone, and the first worker
    free (most often its worker) takes the last run: runs 1 to
    ``workers`` - 1 hold a worker's share each, the last one what is left."""
    parts = getattr(reader, "parts", None)
    if parts is None or workers < 2 or len(parts) <= workers:
        return runs_of(reader, workers)
    sizes = _sizes(parts)
    share = (sum(sizes) or 1) / workers
    if sizes[0] > share / 2:                       # no small first part: even runs
        return runs_of(reader, workers)
    return _cut(parts, sizes, [sizes[0]] + [sizes[0] + share * i for i in range(1, workers)])


def _sizes(parts) -> list[int]:
    return [sum(s.size or 0 for s in p) for p in parts]


def _cut(parts, sizes, bounds) -> list[list[str]]:
    """``parts`` in runs that end near the byte offsets ``bounds`` (a part
    goes to the run that holds most of it)."""
    runs, acc = [[]], 0
    for p, size in zip(parts, sizes):
        if runs[-1] and len(runs) <= len(bounds) and acc + size / 2 > bounds[len(runs) - 1]:
            runs.append([])
        # Absolute: a worker's folder is not the client's.
        runs[-1] += [os.path.abspath(s.path) for s in sorted(p, key=lambda s: s.index)]
        acc += size
    return runs
