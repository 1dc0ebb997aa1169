"""dicomwire.framebase: each --dask run's frame base comes from the run
before when it ended, else from a count, and the runs are checked against
them; a run is counted as it is handed out when another worker is
expected to be free before it ends (its successor's base is then ready),
not otherwise; the count is count_run's of that run, what it raises
reaches the run that needs it, and a count no longer needed stops."""

from __future__ import annotations

import threading
import types
from concurrent.futures import Future

import pytest

from dicomwire import capcount, framebase
from dicomwire.capcount import Counting, Stopped, Uncut
from dicomwire.framebase import Ahead, Bases, run_bytes
from test_capcount import _pcap

RECORDS = (1000, 1100, 1200, 1300, 1400, 1500)     # a file's records, 100 bytes each
RECORD = 116                                       # with its header


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def files(tmp_path):
    paths = []
    for i, n in enumerate(RECORDS):
        p = tmp_path / f"r{i}.pcap"
        p.write_bytes(_pcap([100] * n))
        paths.append(str(p))
    return paths


def size(n):
    return 24 + n * RECORD


def test_a_run_s_bytes_are_its_files_less_what_is_cut_off(files, tmp_path):
    assert run_bytes(files[:2], None, None) == size(1000) + size(1100)
    assert run_bytes(files[:2], 140, None) == size(1000) + size(1100) - 140
    assert run_bytes(files[1:3], 140, size(10)) == size(1100) - 140 + size(10)
    assert run_bytes([str(tmp_path / "gone.pcap")], None, None) is None


def test_counted_ahead_only_when_another_worker_is_free_first(files):
    """The ended run 0 read its bytes in twice as many seconds (0.5
    byte/s). Run 2, handed out while run 1 has more left than run 2
    holds, is not counted ahead (its own worker will take run 3); run 3,
    handed out when run 1 is about to end, is, as count_run counts run 3;
    the last run never is, however late the others are."""
    clock = Clock()
    runs = [[files[0]], files[1:3], [files[2]], [files[3]], [files[5]]]
    ahead = Ahead(runs, [None] * 5, clock)
    s0 = size(1000)
    ahead.handed(0, None)
    ahead.handed(1, None)                         # 2 files: ~2.3 x s0
    assert not ahead.counts                       # (nothing ended yet: no rate)
    clock.now = 2 * s0
    ahead.ended(0)
    ahead.handed(2, None)                         # run 1 has ~1.3 s0 left, run 2 holds 1.2 s0
    assert not ahead.counts
    clock.now = 4 * s0
    ahead.ended(2)                                # (2.2 s0 read in 4 s0 by the ended runs)
    ahead.handed(3, None)                         # run 1 has ~0.1 s0 left
    assert ahead.take(3) == capcount.count_run([files[3]]) == (1300, None)
    assert ahead.take(3) is None                  # (taken once)
    clock.now = 1e9
    ahead.handed(4, None)                         # the last run
    assert 4 not in ahead.counts
    ahead.close()


def test_a_count_ahead_goes_to_the_cut_and_its_errors_reach_the_taker(files, tmp_path):
    clock = Clock()
    start, stop = size(100), size(400) + 3
    ahead = Ahead([[files[0]], [files[1]], [files[2]], [files[3]]],
                  [None, stop, None, None], clock)
    ahead.handed(0, None)
    clock.now = 1.0
    ahead.ended(0)
    ahead.running[9] = (clock.now, 0)             # a run with nothing left beside
    ahead.handed(1, start)
    assert ahead.take(1) == capcount.count_run([files[1]], start, stop) == (300, size(400))
    damaged = tmp_path / "damaged.pcap"           # a record of 2 GiB
    damaged.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20) + bytes(8) + b"\xff\xff\xff\x7f"
                        + bytes(68))
    ahead.runs[2], ahead.stops[2] = [str(damaged)], 60
    ahead.handed(2, None)
    with pytest.raises(Uncut):
        ahead.take(2)
    ahead.close()


def test_a_count_no_longer_needed_stops(files, monkeypatch):
    """A run that ends first stops its count (its successor's base comes
    from its result), and so does the end of the pass: the threads end."""
    gate = threading.Event()
    real = framebase.count_run

    def slow(paths, start, stop, stopped):
        gate.wait(10)                             # (until the test has ended the run)
        return real(paths, start, stop, stopped)
    monkeypatch.setattr(framebase, "count_run", slow)
    clock = Clock()
    ahead = Ahead([[f] for f in files[:4]], [None] * 4, clock)
    ahead.handed(0, None)
    clock.now = 1.0
    ahead.ended(0)
    ahead.running[9] = (clock.now, 0)
    ahead.handed(1, None)
    ahead.handed(2, None)
    (done1, _), (done2, _) = ahead.counts[1], ahead.counts[2]
    ahead.ended(1)
    assert ahead.take(1) is None
    threads = [t for t in threading.enumerate() if t.name == "dicomwire-ahead"]
    assert len(threads) == 2
    ahead.close()
    gate.set()
    for done in (done1, done2):
        with pytest.raises(Stopped):
            done.result(10)
    for t in threads:
        t.join(10)
        assert not t.is_alive() and t.daemon


def test_a_run_dask_lost_no_longer_counts_as_running(files):
    clock = Clock()
    ahead = Ahead([[f] for f in files[:4]], [None] * 4, clock)
    ahead.handed(0, None)
    ahead.handed(1, None)
    clock.now = 1e6                               # run 1 long overdue
    ahead.ended(0)
    ahead.forget(1)                               # computed again: it says nothing
    ahead.handed(2, None)
    assert not ahead.counts
    ahead.close()


def test_each_base_from_the_count_the_run_before_a_count_ahead_or_now(files):
    """Runs of one file each, two workers: runs 1 and 2 have the count
    thread's bases; run 3, run 2's frames (it ended); run 4, run 3's count
    made ahead (run 3 handed out beside a run about to end); run 5, run
    4's range counted when run 5 is handed out. A run that read other
    frames than its base says so."""
    clock = Clock()
    runs, stops = [[f] for f in files], [None] * 6
    counting = Counting(files)
    bases = Bases(runs, stops, 2, counting, clock)
    results = {}
    assert [bases.give(k, results) for k in range(3)] == [(0, None), (1000, None),
                                                          (2100, None)]
    clock.now = 1.0
    results[2] = types.SimpleNamespace(frames=999, end_offset=None)   # (as if)
    bases.ended(2)
    bases.ahead.running[9] = (clock.now, 0)                 # a run about to end beside
    assert bases.give(3, results) == (2100 + 999, None)     # run 2 ended with 999
    assert bases.ahead.counts[3][0].result() == (1300, None)
    made = Future()                                         # (so as to tell it apart)
    made.set_result((777, None))
    bases.ahead.counts[3] = (made, threading.Event())
    assert bases.give(4, results) == (3099 + 777, None)     # run 3's count made ahead
    bases.ahead.close()                                     # (as if none was made)
    assert bases.give(5, results) == (3876 + 1400, None)    # run 4 counted now
    bases.close()
    counting.stop()
    parts = [types.SimpleNamespace(frames=n, end_offset=None, unsafe=[])
             for n in (1000, 1100, 999, 777, 1400, 1500)]
    bases.check_seams(parts)
    assert [p.unsafe for p in parts] == [[]] * 6
    parts[3].frames = 778                                   # (a file changed under it)
    bases.check_seams(parts)
    assert "did not read the frames" in parts[3].unsafe[0]
    assert [p.unsafe for p in parts[:3] + parts[4:]] == [[]] * 5
