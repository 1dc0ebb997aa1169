"""How ``--dask`` without an address starts its LocalCluster's workers
(:func:`dicomwire.cluster.connect`): forked from the command on Linux."""

from __future__ import annotations

import gc
import sys

METHOD = "distributed.worker.multiprocessing-method"


def fork_local_workers() -> None:
    """A LocalCluster's workers forked from this process on Linux, where
    Dask's default spawns them: a spawned worker imports Python, Dask and
    dicomwire afresh (~0.5 s of CPU each, ~0.3 s before the first part
    starts), a forked one has them already. A method the user chose in a
    Dask config file or ``DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD``
    is kept (through ``dask.config.set``: any but Dask's default, spawn).
    Nothing this process buffered may be written twice: the std streams
    are flushed before the fork (a child that ends through Python's exit
    would flush its copy), and its garbage in cycles is collected first (a
    worker's collections would otherwise finalize it there too; what the
    command's start-up froze stays out of this, as it holds no output).
    The count thread may be running: it holds no lock a worker takes, and
    reads unbuffered files; a child does not finalize what other threads'
    frames hold. A worker exits when this process does, killed or not, as
    a spawned one does (its nanny's pipe)."""
    import dask
    chosen = dask.config.get(METHOD, None, config=dask.config.collect())
    if sys.platform != "linux" or chosen or dask.config.get(METHOD, None) != "spawn":
        return
    import dicomwire.handover   # noqa: F401  (what a part imports, in the workers before the fork)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):         # (a reader gone: the command's own writes say so)
            pass
    gc.collect()
    dask.config.set({METHOD: "fork"})
