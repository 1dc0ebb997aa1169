"""Where each run of a ``--dask`` pass (:mod:`dicomwire.cluster`) numbers
its frames from: its *base*, the frames of the set before it, so that it
numbers them as one pass does; and, for a run that begins inside a file,
the record it begins at (its *start*).

A run's base is the frames the run before read, when that run has ended
(exact: no count to disagree with); else counted. The first runs' bases
come from :class:`dicomwire.capcount.Counting`, a thread that counts the
files in order from the start. A later run whose predecessor is still
being read has that predecessor's range counted
(:func:`dicomwire.capcount.count_run`): ahead, on a thread, as the
predecessor was handed out, when another worker was expected to be free
before it ended (:class:`Ahead`); else when the run is handed out, while
its worker waits (on a16 that wait was 0.06-0.13 s a hand-out near the
end). The runs' own frame counts are checked against the bases at the end
(:meth:`Bases.check_seams`).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future

from dicomwire.capcount import count_run


def _firsts(runs, stops) -> list[int]:
    """The index in the set of each run's first file (a file cut between
    two runs is in both)."""
    at = [0]
    for run, stop in zip(runs[:-1], stops):
        at.append(at[-1] + len(run) - (stop is not None))
    return at


def _last_counted(workers: int, runs: int) -> int:
    """The last run whose base the count thread gives (runs 0 to
    ``workers`` start while the runs before them are surely still read)."""
    return min(workers, runs - 1)


class Bases:
    """The (base, start) of each run as it is handed out (:meth:`give`),
    in order. ``runs``, ``stops``: the plan's; ``counting``: the
    :class:`dicomwire.capcount.Counting` of the set's files, told here how
    far it need count (:meth:`dicomwire.capcount.Counting.need`)."""

    def __init__(self, runs, stops, workers: int, counting, clock=time.monotonic):
        self.runs, self.stops, self.firsts = runs, stops, _firsts(runs, stops)
        self.workers, self.counting = workers, counting
        last = _last_counted(workers, len(runs))
        counting.need(self.firsts[last] + (stops[last - 1] is not None if last else 0))
        self.ahead = Ahead(self.runs, self.stops, clock)
        self.bases: list[int] = []
        self.starts: list = []

    def give(self, k: int, results) -> tuple[int, int | None]:
        """Run ``k``'s (base, start), now that it is handed out;
        ``results``: the parts ended so far, by run."""
        base, start = self._base(k, results)
        self.bases.append(base)
        self.starts.append(start)
        self.ahead.handed(k, start)
        return base, start

    def _base(self, k, results):
        runs, stops, bases, starts = self.runs, self.stops, self.bases, self.starts
        if k - 1 in results:                 # the run before ended: its own frames
            before = results[k - 1]
            return (bases[k - 1] + before.frames,
                    before.end_offset if stops[k - 1] is not None else None)
        if k > _last_counted(self.workers, len(runs)):  # the run before is still read
            n, start = (self.ahead.take(k - 1)
                        or count_run(runs[k - 1], starts[k - 1], stops[k - 1]))
            return bases[k - 1] + n, start
        if k and stops[k - 1] is not None:
            return self.counting.at(self.firsts[k], stops[k - 1])
        return self.counting.before(self.firsts[k]), None

    def ended(self, k: int) -> None:
        """Run ``k``'s result is in."""
        self.ahead.ended(k)

    def lost(self, k: int) -> None:
        """Dask lost run ``k`` and computes it again."""
        self.ahead.forget(k)

    def check_seams(self, parts) -> None:
        """Each run read the frames the count gave it and, in a cut file,
        stopped where the next began: else (the reader stopped at damage
        the count walked over, a file changed) the part says it is unsafe
        and the set is read in one process."""
        bases, starts = self.bases, self.starts
        for k in range(len(parts) - 1):
            if bases[k] + parts[k].frames != bases[k + 1] or (
                    self.stops[k] is not None and parts[k].end_offset != starts[k + 1]):
                parts[k].unsafe.append(f"run {k + 1} did not read the frames its files "
                                       f"were counted to hold (a damaged or changed file)")

    def close(self) -> None:
        self.ahead.close()


def run_bytes(paths, start: int | None, stop: int | None) -> int | None:
    """Bytes of a run: its files, less what comes before ``start`` in the
    first and after ``stop`` in the last (None: a file cannot be seen
    here; the worker that reads it will say why)."""
    try:
        sizes = [os.path.getsize(p) for p in paths]
    except OSError:
        return None
    return sum(sizes) - (start or 0) - (sizes[-1] - stop if stop is not None else 0)


class Ahead:
    """Counts of runs made as they are handed out, for the runs whose
    successor will likely be handed out before they end: when another
    worker is expected to be free first (the one whose run has the fewest
    bytes left, at the rate the ended runs read). Each count runs on a
    daemon thread of its own and stops within a window once not needed
    (the run ended first, the pass is over): a count made for nothing
    costs about 0.1 s of CPU for 0.5 GB. :meth:`handed` when a run is
    given out, :meth:`ended` when its result is in (:meth:`forget` when
    Dask lost it); :meth:`take` gives a count made (None: none was)."""

    def __init__(self, runs, stops, clock=time.monotonic):
        self.runs, self.stops, self.clock = runs, stops, clock
        self.running: dict[int, tuple[float, int]] = {}   # run -> (handed at, bytes)
        self.read = [0, 0.0]                             # bytes and seconds of ended runs
        self.counts: dict[int, tuple[Future, threading.Event]] = {}

    def handed(self, k: int, start: int | None) -> None:
        """Run ``k`` is given out, from ``start`` in its first file."""
        now = self.clock()
        size = run_bytes(self.runs[k], start, self.stops[k])
        if size is None:
            return                           # (not counted ahead, not in the rate)
        if k < len(self.runs) - 1 and self._others_first(now, size):
            self.counts[k] = self._count(k, start)
        self.running[k] = (now, size)

    def _count(self, k, start):
        done, stop = Future(), threading.Event()
        done.set_running_or_notify_cancel()

        def count():
            try:
                done.set_result(count_run(self.runs[k], start, self.stops[k], stop.is_set))
            except BaseException as e:       # given to take() (Stopped: nobody asks)
                done.set_exception(e)
        threading.Thread(target=count, name="dicomwire-ahead", daemon=True).start()
        return done, stop

    def _others_first(self, now: float, size: int) -> bool:
        """Whether a running run is expected to end before one of ``size``
        bytes handed out now (unknown before a run ended: no)."""
        nbytes, seconds = self.read
        if not self.running or not nbytes or seconds <= 0:
            return False
        rate = nbytes / seconds
        return any(b - rate * (now - t) < size for t, b in self.running.values())

    def ended(self, k: int) -> None:
        """Run ``k``'s result is in (its successor's base comes from it)."""
        got = self.running.pop(k, None)
        if got is not None:
            self.read[0] += got[1]
            self.read[1] += self.clock() - got[0]
        count = self.counts.pop(k, None)
        if count is not None:
            count[1].set()

    def forget(self, k: int) -> None:
        """Run ``k`` is computed again (Dask lost it): its hand-out time
        says nothing more about when it ends."""
        self.running.pop(k, None)

    def take(self, k: int):
        """(frames, end) of run ``k`` as :func:`count_run` gives them, if
        counted ahead (waits for the count), else None. Raises what the
        count raised."""
        count = self.counts.pop(k, None)
        return None if count is None else count[0].result()

    def close(self) -> None:
        for _done, stop in self.counts.values():
            stop.set()
        self.counts.clear()
