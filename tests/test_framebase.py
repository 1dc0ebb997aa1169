"""dicomwire.framebase: each --dask run's frame base comes from the run
before when it ended, else from a count, and the runs are checked against
them; a run is counted as it is handed out when another worker is
expected to be free before it ends (its successor's base is then ready),
not otherwise; the count is count_run's, and what it raises reaches the
run that needs it."""

from __future__ import annotations

import types
from concurrent.futures import Future

import pytest

from dicomwire import capcount
from dicomwire.framebase import Ahead, Bases, run_bytes
from dicomwire.capcount import Counting, Uncut
from test_capcount import _pcap


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def files(tmp_path):
    """Four pcaps of 1,000 records; sizes in bytes of 24 + 1000 x 116."""
    paths = []
    for i in range(4):
        p = tmp_path / f"r{i}.pcap"
        p.write_bytes(_pcap([100] * 1000))
        paths.append(str(p))
    return paths


def test_a_run_s_bytes_are_its_files_less_what_is_cut_off(files):
    size = 24 + 1000 * 116
    assert run_bytes(files[:2], None, None) == 2 * size
    assert run_bytes(files[:2], 140, None) == 2 * size - 140
    assert run_bytes(files[1:3], 140, 24 + 116 * 10) == size - 140 + 24 + 116 * 10


def test_counted_ahead_only_when_another_worker_is_free_first(files):
    """At 1 byte/s (the ended run 0 read its bytes in as many seconds),
    run 2 handed out while run 1 has more left than run 2 holds is not
    counted ahead (its worker will take run 3 itself), and the last run
    never is; run 2 handed out when run 1 has a tenth left is, as
    count_run counts it."""
    clock = Clock()
    runs = [[f] for f in files]
    ahead = Ahead(runs, [None] * 4, clock)
    size = run_bytes(files[:1], None, None)
    ahead.handed(0, None)
    assert not ahead.counts                       # (nothing ended yet: no rate)
    runs[1] = files[1:4]                          # a long run beside: 3 x size
    ahead.runs = runs
    ahead.handed(1, None)
    clock.now = size
    ahead.ended(0)
    ahead.handed(2, None)
    assert 2 not in ahead.counts                  # run 1: 2 x size left, run 2: size
    clock.now = size + size + size // 2           # run 2 ended
    ahead.ended(2)
    ahead.handed(3, None)
    assert 3 not in ahead.counts                  # the last run: nobody needs its count
    ahead.close()

    ahead = Ahead([[f] for f in files], [None] * 4, clock)
    clock.now = 0.0
    ahead.handed(0, None)
    ahead.handed(1, None)
    clock.now = size
    ahead.ended(0)
    clock.now = size + size * 0.9                 # run 1 has a tenth left
    ahead.handed(2, None)
    assert ahead.take(2) == capcount.count_run([files[2]]) == (1000, None)
    assert ahead.take(2) is None                  # (taken once)
    ahead.close()


def test_a_count_ahead_goes_to_the_cut_and_its_errors_reach_the_taker(files, tmp_path):
    clock = Clock()
    stop = 24 + 116 * 400 + 3
    ahead = Ahead([[files[0]], [files[1]], [files[2]], [files[3]]],
                  [None, stop, None, None], clock)
    ahead.handed(0, None)
    clock.now = 1e9                              # run 0 read slowly: any other is first
    ahead.ended(0)
    ahead.handed(2, None)
    ahead.running[9] = (clock.now, 0)             # a run with nothing left beside
    ahead.handed(1, 24 + 116 * 100)
    assert ahead.take(1) == capcount.count_run([files[1]], 24 + 116 * 100, stop) \
        == (300, 24 + 116 * 400)
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20) + b"\x00" * 8 + b"\xff\xff\xff\x7f"
                        + bytes(64))
    ahead.runs[2] = [str(damaged)]
    ahead.stops[2] = 60
    ahead.handed(2, None)
    with pytest.raises(Uncut):
        ahead.take(2)
    ahead.close()


def test_a_run_that_ends_first_drops_its_count(files):
    clock = Clock()
    ahead = Ahead([[f] for f in files], [None] * 4, clock)
    ahead.handed(0, None)
    clock.now = 1.0
    ahead.ended(0)
    ahead.running[9] = (clock.now, 0)
    ahead.handed(1, None)
    assert 1 in ahead.counts
    ahead.ended(1)                                # its successor's base comes from its result
    assert ahead.take(1) is None
    ahead.close()


def test_each_base_from_the_count_the_run_before_a_count_ahead_or_now(files):
    """Runs of one file each, two workers: runs 1 and 2 have the count
    thread's bases; run 3, run 2's frames (it ended); run 4, run 3's count
    made ahead (run 3 handed out beside a run about to end); run 5, run
    4's range counted when run 5 is handed out. A run that read other
    frames than its base says so."""
    clock = Clock()
    files = files + files[:2]
    runs, stops = [[f] for f in files], [None] * 6
    counting = Counting(files)
    bases = Bases((runs, stops, list(range(6))), 2, counting, clock)
    results = {}
    assert [bases.give(k, results) for k in range(3)] == [(0, None), (1000, None),
                                                          (2000, None)]
    clock.now = 1.0
    results[2] = types.SimpleNamespace(frames=999, end_offset=None)   # (as if)
    bases.ended(2)
    bases.ahead.running[9] = (clock.now, 0)                 # a run about to end beside
    assert bases.give(3, results) == (2000 + 999, None)     # run 2 ended with 999
    assert bases.ahead.counts[3].result() == (1000, None)
    made = Future()                                         # (so as to tell it apart)
    made.set_result((777, None))
    bases.ahead.counts[3] = made
    assert bases.give(4, results) == (2999 + 777, None)     # run 3's count made ahead
    bases.ahead.counts.pop(4)                               # as if none was made
    assert bases.give(5, results) == (3776 + 1000, None)    # run 4 counted now
    bases.close()
    counting.stop()
    parts = [types.SimpleNamespace(frames=n, end_offset=None, unsafe=[])
             for n in (1000, 1000, 999, 777, 1000, 1000)]
    bases.check_seams(parts)
    assert [p.unsafe for p in parts] == [[]] * 6
    parts[3].frames = 998                                   # (a file changed under it)
    bases.check_seams(parts)
    assert "did not read the frames" in parts[3].unsafe[0]
    assert [p.unsafe for p in parts[:3] + parts[4:]] == [[]] * 5
