"""dicomwire.cluster's runs: how a file set is cut for --dask workers (no
cluster needed). Runs are consecutive, cover every file once, and the
plan's first run is small so the second worker starts without waiting for
half the set's frame count."""

from __future__ import annotations

import types

from dicomwire.cluster import plan, runs_of


def a_set(*sizes, together=()):
    """A reader of files ``f0``.. of these sizes (MB); ``together``: indexes
    of files that overlap in time, one part."""
    files = [types.SimpleNamespace(path=f"/set/f{i}", size=s << 20, index=i)
             for i, s in enumerate(sizes)]
    parts, i = [], 0
    while i < len(files):
        n = next((len(t) for t in together if t[0] == i), 1)
        parts.append(files[i:i + n])
        i += n
    return types.SimpleNamespace(parts=parts)


def names(runs):
    return [[p.rsplit("/", 1)[1] for p in run] for run in runs]


def test_even_runs_by_bytes():
    assert names(runs_of(a_set(900, 900, 900, 900), 2)) == [["f0", "f1"], ["f2", "f3"]]
    assert names(runs_of(a_set(100, 100, 1000), 2)) == [["f0", "f1"], ["f2"]]
    assert names(runs_of(a_set(900, 900), 5)) == [["f0"], ["f1"]]


def test_the_plan_starts_with_one_file_and_gives_its_worker_the_last_run():
    runs = names(plan(a_set(*[900] * 16), 2))
    assert [len(r) for r in runs] == [1, 8, 7]
    assert sum(runs, []) == [f"f{i}" for i in range(16)]
    # Three workers: a first file, two shares, and the rest.
    assert [len(r) for r in plan(a_set(*[500] * 12), 3)] == [1, 4, 4, 3]


def test_the_plan_falls_back_to_even_runs():
    """Too few files, a first file bigger than half a share, one worker."""
    for reader, workers in ((a_set(900, 900), 2), (a_set(3000, 900, 900, 900), 2),
                            (a_set(900, 900, 900), 1)):
        assert plan(reader, workers) == runs_of(reader, workers)


def test_overlapping_files_stay_in_one_run():
    reader = a_set(900, 400, 400, 900, 900, 900, together=[(1, 2)])
    runs = names(plan(reader, 2))
    assert sum(runs, []) == [f"f{i}" for i in range(6)]
    assert any({"f1", "f2"} <= set(r) for r in runs)


def test_one_file():
    reader = types.SimpleNamespace(parts=None, name="one.pcap")
    assert names(plan(reader, 2)) == [["one.pcap"]]
