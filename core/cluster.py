"""``--dask [ADDRESS]``: a file set read on a Dask cluster (issue 18).

The client (this process) places the set's files as a one-process pass
would (:func:`dicomwire.capset.plan`), cuts the parts into one *run* per
worker (consecutive files, about the same bytes each), counts each run's
frames in parallel to give every run its frame base, then runs
:func:`dicomwire.handover.run_part` on each run. Workers read the files by
path: on a real cluster they must see the same paths (a shared file
system). The merge (:mod:`dicomwire.merge`) puts the parts together in the
one-process order; only the client writes to stdout or to ``-o``.

When a part reports state it cannot hand over (a plugin's request whose
answer may come on another stream, a full flow table) or the parts do not
fit together, the set is read in one process here: the output is the same,
only slower (said on stderr unless ``-q``).
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
import time
import types
import uuid

from dicomwire.capcount import Counting
from dicomwire.capture import CaptureError

LOCAL = "local"
#: Commands whose pass can be split (the others say so).
SUPPORTED = ("show", "expert", "streams", "export")


class ClusterError(Exception):
    """The cluster cannot be used: dask missing, scheduler unreachable, a
    worker lost. The CLI prints it as a usage error (exit status 2)."""


def add_option(parser) -> None:
    parser.add_argument(
        "--dask", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
        help="read a file set on a Dask cluster: a local one (a worker per core) without "
             "ADDRESS, else the scheduler at ADDRESS (tcp://host:8786); the workers must "
             "see the capture files (and the -o folder) at the same paths")


def check(args) -> str | None:
    """Why ``--dask`` cannot be used with these arguments, or None."""
    cmd = getattr(args, "command", None)
    if cmd not in SUPPORTED:
        return f"--dask is not supported by {cmd} (only {', '.join(SUPPORTED)})"
    if getattr(args, "interfaces", None):
        return "--dask reads capture files, not live interfaces (-i)"
    if any(c == "-" for c in _list(args.capture)):
        return "--dask reads capture files, not stdin"
    if getattr(args, "filter", None):
        return "--dask does not take -Y yet"
    if cmd == "show" and args.format != "text":
        return "--dask: show prints text only (-T json/jsonl/fields need one process)"
    if cmd == "expert" and (args.follow or args.format == "jsonl"):
        return "--dask: expert --follow and -T jsonl need one process"
    return None


def _list(capture):
    return capture if isinstance(capture, (list, tuple)) else [capture]


def connect(address: str):
    """A dask.distributed Client: a LocalCluster (one single-threaded worker
    process per core) for :data:`LOCAL`, else the scheduler at ``address``."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ClusterError("--dask needs dask: pip install 'dicomwire[dask]'") from None
    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        if address == LOCAL:
            cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.CRITICAL)
            return Client(cluster)
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {e}") from None


def runs_of(reader, workers: int) -> list[list[str]]:
    """The set's parts cut into at most ``workers`` runs of consecutive
    parts, about the same bytes each (a part of overlapping files stays
    whole: they are merged by timestamp)."""
    parts = getattr(reader, "parts", None)
    if parts is None:                              # one file
        return [[reader.name]]
    sizes = [sum(s.size or 0 for s in p) for p in parts]
    total, runs, acc = sum(sizes) or 1, [], 0
    n = max(1, min(workers, len(parts)))
    for p, size in zip(parts, sizes):
        if not runs or (acc + size / 2 > total * len(runs) / n and len(runs) < n):
            runs.append([])
        runs[-1] += [s.path for s in sorted(p, key=lambda s: s.index)]
        acc += size
    return runs


def _pack(obj):
    """A plugin object for the workers: stdout and modules by name."""
    state = {}
    for name, value in vars(obj).items():
        if value is sys.stdout:
            value = "<stdout>"
        elif isinstance(value, types.ModuleType):
            value = ("<module>", value.__name__)
        elif isinstance(value, argparse.Namespace):      # the command line, less what
            value = argparse.Namespace(**{k: v for k, v in vars(value).items()  # stays here
                                          if _travels(v)})
        state[name] = value
    return type(obj), state


def _travels(value) -> bool:
    try:
        pickle.dumps(value)
        return True
    except Exception:
        return False


def _unpack(packed):
    import importlib
    cls, state = packed
    obj = cls.__new__(cls)
    for name, value in state.items():
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "<module>":
            value = importlib.import_module(value[1])
        obj.__dict__[name] = value
    return obj


def _remote(task):
    """What a worker runs (imported there by name)."""
    from dicomwire.handover import run_part
    return run_part(dict(task, plugins=[_unpack(p) for p in task["plugins"]]))


def run(args, source, config, host, plugins, run_local):
    """The pass over ``source`` on the cluster of ``args.dask``; returns a
    :class:`dicomwire.pipeline.Result` like the one-process run's.
    ``run_local()``: the one-process pass, for a set that cannot be split."""
    from dicomwire.capset import open_set
    from dicomwire import merge
    reader = open_set(source)
    try:
        first_ts = reader.first_ts
        if getattr(reader, "parts", None) is None:
            first_ts = _first_ts(reader)
        name, fmt = reader.name, reader.format
        skipped = list(reader.warnings)          # files that are no capture (probed)
    finally:
        reader.close()
    counting = Counting(runs_of(reader, 1)[0][:-1])   # beside the connection (the last
                                                      # file's count is never needed)
    try:
        client = connect(args.dask)
    except BaseException:
        counting.stop()
        raise
    run_id = None
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        # More runs than workers (tests: streams handed over across several runs).
        runs = runs_of(reader, int(os.environ.get("DICOMWIRE_DASK_RUNS") or workers))
        try:
            packed = [_pack(p) for p in plugins]
            pickle.dumps((config, packed))
        except Exception as e:              # a plugin that cannot travel
            counting.stop()
            _close(client)
            return _local(args, run_local, f"a plugin cannot be sent to the workers ({e})")
        run_id = uuid.uuid4().hex[:12]
        try:
            parts = _submit(client, runs, config, packed, first_ts, run_id, counting)
        finally:
            counting.stop()
            _close(client)
        unsafe = [u for p in parts for u in p.unsafe]
        if unsafe:
            return _local(args, run_local, unsafe[0])
        try:
            return merge.merge(parts, name, fmt, first_ts, config, host, plugins, skipped)
        except merge.Mismatch as e:
            return _local(args, run_local, str(e))
    finally:
        for p in plugins:
            done = getattr(p, "cluster_done", None)
            if done is not None:
                done(run_id)


def _first_ts(reader):
    for f in reader:
        return f[1]
    return None


def _submit(client, runs, config, packed, first_ts, run_id, counting):
    def _task(k, base):
        return dict(config=config, plugins=packed, part=k, runs=runs, first_ts=first_ts,
                    run_id=run_id, base=base)
    try:
        t0 = time.perf_counter()
        # Each run starts as soon as the frames of the files before it are
        # counted (its frame base); the client's thread counts them.
        futures, before = [], 0
        for k, run in enumerate(runs):
            futures.append(client.submit(_remote, _task(k, counting.before(before)),
                                         pure=False))
            before += len(run)
        counting.stop()
        parts = client.gather(futures)
        if os.environ.get("DICOMWIRE_DASK_TIMES"):
            print(f"dicomwire: times: {time.perf_counter() - t0:.2f} s for the parts "
                  f"({', '.join(f'{p.elapsed:.2f}' for p in parts)} s in the workers, CPU "
                  f"{', '.join(f'{p.cpu:.2f}' for p in parts)} s)",
                  file=sys.stderr)
        return parts
    except CaptureError:
        raise
    except Exception as e:
        name = type(e).__name__
        if name in ("KilledWorker", "CommClosedError", "CancelledError", "FutureCancelledError"):
            raise ClusterError(f"a Dask worker was lost during the run ({name}: {e})") from None
        raise ClusterError(f"the Dask run failed ({name}: {e})") from None


def _close(client):
    cluster = getattr(client, "cluster", None)
    try:
        client.close()
        if cluster is not None:
            cluster.close()
    except Exception:
        pass


def _local(args, run_local, why):
    if not args.quiet:
        print(f"dicomwire: note: read in one process: {why}", file=sys.stderr)
    return run_local()
