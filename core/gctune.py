"""The garbage collector tuned for one long pass: the command line's for
good (:func:`tune_gc`, :func:`end_gc`), a ``--dask`` worker's while its
parts run (:data:`collector_tuned`, :mod:`dicomwire.handover`)."""

from __future__ import annotations

import gc
import threading
import time


#: Collector thresholds for one long pass (see :func:`tune_gc`).
TUNED_GC = (10_000, 20, 20)


def tune_gc():
    """The collector of a program that runs one long pass (the command
    line's): what start-up made is left out of collections for good, and
    the young generation is collected every 10,000 allocations, not 700 (a
    pass makes many short-lived containers and few cycles: on a span-port
    capture the default costs about a quarter of the pass)."""
    gc.freeze()
    gc.set_threshold(*TUNED_GC)


def end_gc():
    """The end of that program: everything left out of the full collection
    the interpreter runs on its way out (objects are still freed by their
    references; traversing a pass's streams once more costs ~4 % of a
    span-port run)."""
    gc.freeze()


class WhileTasks:
    """A change to a worker process made while any of its tasks runs: the
    first task in makes it (``enter()`` returns what ``leave`` needs), the
    last one out undoes it (a worker may run several threads)."""

    def __init__(self, enter, leave):
        self.enter, self.leave = enter, leave
        self.lock, self.running, self.saved = threading.Lock(), 0, None

    def __enter__(self):
        with self.lock:
            if not self.running:
                self.saved = self.enter()
            self.running += 1

    def __exit__(self, *exc):
        with self.lock:
            self.running -= 1
            if not self.running:
                self.leave(self.saved)


#: s: at most this long between full collections at a part's start (see
#: :func:`_tune`): ~40 ms each on a worker's heap.
FULL_EVERY = 30.0
_last_full = [None]          # time.monotonic() of the last one; None: at the next part


def _tune():
    # What became garbage outside the parts (between two of them, or what a
    # failed part's error held until Dask let go of it) is frozen with the
    # heap below and only a full collection frees it: one runs at a part's
    # start when none ran for FULL_EVERY s, not before every part.
    now = time.monotonic()
    if _last_full[0] is None or now - _last_full[0] >= FULL_EVERY:
        gc.collect()
        _last_full[0] = now
    saved = gc.get_threshold()
    tune_gc()
    return saved


def _untune(saved):
    # What the parts made and left in cycles (streams, their dissectors) is
    # collected while the worker's heap is still frozen: the collection
    # walks only what the parts made, not dask's objects (a full one before
    # each part took 30-55 ms of its hand-out). Left for later, it would
    # join the oldest generation on gc.unfreeze uncounted, where nothing
    # triggers its collection: a worker grew ~33 MB a show run of a16.
    gc.collect()
    gc.set_threshold(*saved)
    gc.unfreeze()


def collect_at_next_part():
    """A part failed: what its error holds becomes garbage once Dask lets
    go of it; the next part starts with a full collection."""
    _last_full[0] = None


#: The collector as the command line tunes it for its pass
#: (:func:`tune_gc`), while a --dask worker's parts run: a worker's heap
#: (dask's own modules and state) is left out of collections, and given back after.
collector_tuned = WhileTasks(_tune, _untune)
