"""Dask's diagnostic callbacks paused on the processes a ``--dask`` part
runs in (:mod:`dicomwire.cluster`), and on the scheduler while a run is
on, and given back after.

:data:`WATCHERS`, diagnostics only: Dask's statistical profiler (samples
the task's stack every 10 ms) and the tick monitor (20 ms; "ticks" turns
its count into the event loop's interval each second). Each wake-up of a
worker's event loop takes the GIL from the part: with them, the part's
thread was switched out ~280 times a second, without ~165. The worker's
*nanny* (its parent process, when it has one) ticks too: ~1.4 % of a core
each, taken from the parts on a machine whose cores they fill (in a
`show` of 14 GB, a nanny's CPU during the run fell from 0.72-0.82 s to
0.23-0.45 s). The memory and system monitors and the heartbeat, which
keep the processes safe and their figures current, stay. Each ask shows
in the nanny's log as a "Run out-of-band function" line (INFO).

The nanny is asked through its ``run`` handler (what ``Client.run(...,
nanny=True)`` uses), which imports this module there: it imports nothing
heavy. Should the worker die in a part, its nanny's tick stays paused
(it only ever logged a slow event loop) until the next part on that nanny's
new worker ends.

The scheduler's tick costs ~1.5 % of a core too (its whole idle cost is
~2.5 %); the client pauses it for the run (:func:`scheduler_watchers`,
through ``Client.run_on_scheduler``: a scheduler that cannot import
dicomwire keeps it). Several clients at once: the last one out gives it
back. A client killed in its run leaves it paused (a diagnostic only).
"""

from __future__ import annotations

import pickle
import time

from dicomwire.gctune import WhileTasks

WATCHERS = ("profile", "tick", "ticks")


def pause(server) -> list:
    """Stop ``server``'s watchers (a Dask worker or nanny) on its loop's
    own thread; returns them for :func:`resume`."""
    # All of them, running or not yet restarted: a part that follows
    # another on this worker is paused after the last one's restart (the
    # loop takes both in order); Dask runs every callback it registers.
    paused = [server.periodic_callbacks[n] for n in WATCHERS if n in server.periodic_callbacks]
    for callback in paused:
        server.loop.add_callback(callback.stop)
    return paused


def resume(server, paused) -> None:
    def restart():                       # on the loop's own thread
        if "clos" in str(getattr(server, "status", "")):
            return                       # closing: its callbacks are stopped for good
        # The tick counts from now: its first tick would otherwise measure
        # the whole part and log the loop as unresponsive.
        server._last_tick = server._last_tick_cycle = time.time()
        server._last_tick_counter = getattr(server, "_tick_counter", 0)
        for callback in paused:
            callback.start()
    server.loop.add_callback(restart)


def _set(server, on: bool) -> None:
    """``server``'s watchers given back (``on``) or paused, once: a pause
    kept is not taken again; ``dicomwire_pauses`` counts the pauses (a
    test's evidence)."""
    paused = getattr(server, "dicomwire_paused", None)
    if not on and paused is None:
        server.dicomwire_paused = pause(server)
        server.dicomwire_pauses = getattr(server, "dicomwire_pauses", 0) + 1
    elif on and paused is not None:
        resume(server, paused)
        server.dicomwire_paused = None


def nanny_watchers(on: bool, dask_worker=None) -> bool:
    """Run in a nanny (``dask_worker`` is the nanny): its watchers paused
    (``on`` false) or given back. Never raises: the nanny would log a
    failed run."""
    try:
        _set(dask_worker, on)
        return True
    except Exception:
        return False


def scheduler_watchers(on: bool, dask_scheduler=None) -> bool:
    """Run on the scheduler: a ``--dask`` run starts (``on`` false) or
    ends. The watchers are paused while any run is on (``dicomwire_runs``
    counts them). Never raises."""
    try:
        runs = max(getattr(dask_scheduler, "dicomwire_runs", 0) + (-1 if on else 1), 0)
        dask_scheduler.dicomwire_runs = runs
        _set(dask_scheduler, runs == 0)
        return True
    except Exception:
        return False


def _ask_nanny(worker, on: bool) -> bool:
    """Whether ``worker``'s nanny ran :func:`nanny_watchers` (one round trip,
    waited for: a resume never overtakes its pause)."""
    if not getattr(worker, "nanny", None):
        return False
    from distributed.utils import sync

    async def call():
        async with worker.rpc(worker.nanny) as nanny:
            answer = await nanny.run(function=pickle.dumps(nanny_watchers),
                                     args=pickle.dumps((on,)))
        return isinstance(answer, dict) and answer.get("status") == "OK"
    try:
        return bool(sync(worker.loop, call, callback_timeout=5))
    except Exception:                    # no answer: the nanny keeps its watchers
        return False


def _enter():
    try:
        from distributed import get_worker
        worker = get_worker()
    except Exception:                    # not in a worker, another dask: left alone
        return None
    return worker, pause(worker), _ask_nanny(worker, False)


def _leave(saved):
    if saved is None:
        return
    worker, paused, nanny = saved
    resume(worker, paused)
    if nanny:
        _ask_nanny(worker, True)


#: The watchers of the worker and of its nanny paused while any part runs
#: on the worker (first task in, last out).
watchers_paused = WhileTasks(_enter, _leave)
