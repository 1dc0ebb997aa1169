"""--dask runs: how a file set is cut for workers (dicomwire.runplan, no
cluster needed) and how dicomwire.cluster hands the runs out (a fake
client). Runs are consecutive, cover every file once, and the plan's first
run is small so the second worker starts without waiting for half the
set's frame count."""

from __future__ import annotations

import types

import pytest

from dicomwire.runplan import plan, runs_of


def a_set(*sizes, together=(), fmt="pcapng"):
    """A reader of files ``f0``.. of these sizes (MB); ``together``: indexes
    of files that overlap in time, one part; ``fmt``: their format (a
    classic pcap may be cut between runs)."""
    files = [types.SimpleNamespace(path=f"/set/f{i}", size=s << 20, index=i, format=fmt,
                                   compressed=False, cuttable=fmt == "pcap")
             for i, s in enumerate(sizes)]
    parts, i = [], 0
    while i < len(files):
        n = next((len(t) for t in together if t[0] == i), 1)
        parts.append(files[i:i + n])
        i += n
    return types.SimpleNamespace(parts=parts)


def names(runs):
    if isinstance(runs, tuple):                  # a plan: (runs, stops)
        runs = runs[0]
    return [[p.rsplit("/", 1)[1] for p in run] for run in runs]


def test_even_runs_by_bytes():
    assert names(runs_of(a_set(900, 900, 900, 900), 2)) == [["f0", "f1"], ["f2", "f3"]]
    assert names(runs_of(a_set(100, 100, 1000), 2)) == [["f0", "f1"], ["f2"]]
    assert names(runs_of(a_set(900, 900), 5)) == [["f0"], ["f1"]]
    # Bounds inside a big first file each end a run at the next files.
    assert names(runs_of(a_set(6000, 1000, 1000), 3)) == [["f0"], ["f1"], ["f2"]]


def test_the_plan_starts_with_one_file_then_runs_shrink():
    """After the first file, each run holds half of what is left (two
    workers): the worker that ends first takes the next, smaller run, so
    the two end together whatever each byte costs them."""
    runs = names(plan(a_set(*[900] * 16), 2))
    assert [len(r) for r in runs] == [1, 8, 3, 2, 1, 1]
    assert sum(runs, []) == [f"f{i}" for i in range(16)]
    # Three workers: a first file, then a third of what is left each time.
    assert [len(r) for r in plan(a_set(*[500] * 12), 3)[0]] == [1, 4, 2, 2, 1, 1, 1]


MB = 1 << 20


def test_classic_pcap_files_are_cut_where_runs_end():
    """The bounds fall inside files: the run ends there, the next begins
    with the same file, whatever the files' sizes."""
    runs, stops = plan(a_set(*[900] * 17, fmt="pcap"), 2)
    assert [s is not None for s in stops] == [False] * 5 + [True, True, True, False]
    once = [f for k, run in enumerate(names(runs))        # a cut file is in both runs
            for f in (run[1:] if k and stops[k - 1] is not None else run)]
    assert once == [f"f{i}" for i in range(17)] and names(runs)[5:] == [["f16"]] * 4
    # One big file: a small head, half of the rest, then half of what is left
    # each time, down to 1/256 of the set; the last run holds under two such.
    total, least = 14_000 * MB, 14_000 * MB / 256
    runs, stops = plan(a_set(14_000, fmt="pcap"), 2)
    assert names(runs) == [["f0"]] * len(runs) and stops[-1] is None
    head = 7_000 * MB / 16
    assert stops[:2] == [int(head), int(head + (total - head) / 2)]
    pieces = [b - a for a, b in zip([0] + stops[:-1], stops[:-1] + [total])]
    assert pieces[1:-1] == sorted(pieces[1:-1], reverse=True)
    assert min(pieces[1:-1]) >= least - 1 and least <= pieces[-1] < 2 * least + 1


def test_no_cut_near_a_files_edge_nor_in_other_files():
    """No piece under MIN_PIECE (the bound goes to the file's edge); pcapng,
    compressed files and files that overlap in time are not cut."""
    runs, stops = plan(a_set(1030, 970, fmt="pcap"), 1, runs=2)    # 30 MB from the end
    assert names(runs) == [["f0"], ["f1"]] and stops == [None, None]
    runs, stops = plan(a_set(1000, 1000, fmt="pcap"), 1, runs=2)    # at the end
    assert names(runs) == [["f0"], ["f1"]] and stops == [None, None]
    for reader in (a_set(*[900] * 16), a_set(900, 7000, 7000, together=[(1, 2)], fmt="pcap")):
        runs, stops = plan(reader, 2)
        assert stops == [None] * len(runs)
    gz = a_set(*[900] * 17, fmt="pcap")
    for part in gz.parts:              # (capspan.probe: compressed, or a modified pcap)
        part[0].cuttable = False
    assert set(plan(gz, 2)[1]) == {None}
    # Even runs (tests, DICOMWIRE_DASK_RUNS) are cut too.
    runs, stops = plan(a_set(1000, fmt="pcap"), 1, runs=4)
    assert names(runs) == [["f0"]] * 4 and stops == [250 * MB, 500 * MB, 750 * MB, None]


def test_the_plan_falls_back_to_even_runs():
    """Too few files, a first file bigger than half a share, one worker."""
    for reader, workers in ((a_set(900, 900), 2), (a_set(3000, 900, 900, 900), 2),
                            (a_set(900, 900, 900), 1)):
        assert plan(reader, workers) == (runs_of(reader, workers),
                                         [None] * len(runs_of(reader, workers)))


def test_overlapping_files_stay_in_one_run():
    reader = a_set(900, 400, 400, 900, 900, 900, together=[(1, 2)])
    runs = names(plan(reader, 2))
    assert sum(runs, []) == [f"f{i}" for i in range(6)]
    assert any({"f1", "f2"} <= set(r) for r in runs)
    # Overlapping files first: the small first run is the group.
    runs = names(plan(a_set(400, 400, *[900] * 6, together=[(0, 1)]), 2))
    assert runs[0] == ["f0", "f1"] and sum(runs, []) == [f"f{i}" for i in range(8)]


def test_one_file():
    reader = types.SimpleNamespace(parts=None, name="one.pcapng", format="pcapng",
                                   src=types.SimpleNamespace(size=900 * MB, compressed=False))
    assert names(plan(reader, 2)) == [["one.pcapng"]] and plan(reader, 2)[1] == [None]


class _Future:
    def __init__(self, k, client):
        self.k = self.key = k
        self.status, self.client = "pending", client

    def result(self):
        return self.client.gather([self])[0]


class _Client:
    """What _submit asks of a dask Client: tasks recorded, not run."""

    def __init__(self, ends, per_file=100):
        self.tasks, self.futures, self.most, self.ends = [], [], 0, ends
        self.per_file = per_file         # the frames a part reads of each file

    def submit(self, fn, task, pure=True):
        self.tasks.append(task)
        self.futures.append(_Future(task["part"], self))
        running = sum(f.status == "pending" for f in self.futures)
        self.most = max(self.most, running)
        return self.futures[-1]

    def gather(self, futures):
        if any(f.status == "error" for f in futures):
            raise RuntimeError("a run failed")
        return [types.SimpleNamespace(part=f.k, tag=b"", sent=0, spooled=None, unsafe=[], end_offset=None,
                                      frames=self.per_file * len(self.tasks[f.k]["runs"][f.k]))
                for f in futures]

    def cancel(self, futures):
        pass

    def wait(self, running, return_when):
        """The oldest running future ends, as ``self.ends`` says."""
        first = min(running, key=lambda f: f.k)
        first.status = self.ends.pop(0) if self.ends else "finished"
        return {first}, set(running) - {first}


class _Queue:
    def __init__(self, name, client=None):
        self.name = name

    def get(self, batch=True):
        return []

    def close(self):
        pass


class _Counting:
    """The count: 100 frames a file (the thread's, and count_run's)."""

    def before(self, n):
        return n * 100

    def need(self, n):
        pass

    def stop(self):
        pass


def _submit(monkeypatch, runs, workers, ends=(), per_file=100):
    distributed = pytest.importorskip("dask.distributed")
    from dicomwire import cluster, framebase
    client = _Client(list(ends), per_file)
    monkeypatch.setattr(framebase, "count_run",
                        lambda paths, start, stop, stopped=None: (100 * len(paths), None))
    monkeypatch.setattr(framebase, "run_bytes", lambda paths, start, stop: 100 * len(paths))
    monkeypatch.setattr(distributed, "Queue", _Queue)
    monkeypatch.setattr(distributed, "wait", client.wait)
    stops = [None] * len(runs)
    return client, lambda: cluster._submit(client, (runs, stops),
                                           workers, {}, [], None, "id", _Counting())


def test_runs_are_handed_out_a_worker_at_a_time(monkeypatch):
    """At most ``workers`` runs out at once, each with the frames of the
    files before it as its base; a run lost and computed again by Dask
    does not stop the hand-out."""
    runs = [["a"], ["b", "c"], ["d"], ["e", "f", "g"], ["h"]]
    client, submit = _submit(monkeypatch, runs, 2, ends=["finished", "lost"])
    parts, collector = submit()
    collector.close()
    assert [p.part for p in parts] == [0, 1, 2, 3, 4] and client.most == 2
    assert [t["base"] for t in client.tasks] == [0, 100, 300, 400, 700]


def test_a_run_after_one_that_ended_is_numbered_from_its_frames(monkeypatch):
    """A run submitted once the run before has ended takes its base from
    the frames that run read, not from a count (here the parts read 90 a
    file, the count says 100): its seam cannot disagree with the count."""
    runs = [["a"], ["b", "c"], ["d"], ["e", "f", "g"]]
    client, submit = _submit(monkeypatch, runs, 1, per_file=90)
    parts, collector = submit()
    collector.close()
    assert [t["base"] for t in client.tasks] == [0, 90, 270, 360]
    assert not any(p.unsafe for p in parts)


def test_a_failed_run_stops_the_hand_out(monkeypatch):
    from dicomwire.cluster import ClusterError
    client, submit = _submit(monkeypatch, [["a"], ["b"], ["c"], ["d"]], 2, ends=["error"])
    with pytest.raises(ClusterError, match="a run failed"):
        submit()
    assert len(client.tasks) == 2
