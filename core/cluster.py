"""``--dask [ADDRESS]``: a file set read on a Dask cluster (issue 18).

The client (this process) places the set's files as a one-process pass
would (:func:`dicomwire.capset.plan`), cuts the parts into *runs* of
consecutive files (:func:`dicomwire.runplan.plan`: a small first run,
then runs that shrink toward the end), gives every run its frame base (the
frames the run before read when it has ended, else counted:
:mod:`dicomwire.framebase`), then runs
:func:`dicomwire.handover.run_part` on each run, handing the next run to
the first worker free. Workers read the files by
path: on a real cluster they must see the same paths (a shared file
system). The merge (:mod:`dicomwire.merge`) puts the parts together in the
one-process order; only the client writes to stdout or to ``-o``.

When a part reports state it cannot hand over (a plugin's request whose
answer may come on another stream, a full flow table) or the parts do not
fit together, the set is read in one process here: the output is the same,
only slower (said on stderr unless ``-q``).
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import time
import uuid
from concurrent.futures import CancelledError

from dicomwire.capcount import Counting, Uncut
from dicomwire.capture import CaptureError
from dicomwire.framebase import Bases
from dicomwire.gctune import collect_at_next_part, collector_tuned
from dicomwire.localcluster import fork_local_workers
from dicomwire.outbox import Collector, SendAhead
from dicomwire.plugpack import pack, unpack
from dicomwire.runplan import plan, runs_of
from dicomwire.spooldir import SharedDir, writer
from dicomwire.watchers import scheduler_watchers, watchers_paused

IMPORTED = time.time()      # about when the command started (DICOMWIRE_DASK_TIMES)
LOCAL = "local"
#: Commands whose pass can be split (the others say so).
SUPPORTED = ("show", "expert", "streams", "export", "assoc")


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
    if getattr(args, "filter", None) and cmd != "show":
        return f"--dask: {cmd} -Y needs one process (show -Y is read on the cluster)"
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
    # Dask logs what goes wrong with its tracebacks (a lost scheduler, a
    # worker): the run's own error says it once, without them.
    for name in list(logging.root.manager.loggerDict):   # (some have levels of their own)
        if name.split(".")[0] in ("distributed", "dask"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        if address == LOCAL:
            fork_local_workers()
            cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None,
                                   silence_logs=logging.CRITICAL)
            return Client(cluster)
        _refused(address)
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {e}") from None


def _refused(address: str) -> None:
    """Raise OSError at once when nothing listens at a TCP ``address``
    (Dask's client would retry for its whole timeout), or after 10 s when
    it does not answer. Other schemes (tls://, ucx://) are left to Dask."""
    import socket
    from distributed.comm.addressing import parse_address, parse_host_port
    scheme, location = parse_address(address)
    if scheme == "tcp":
        with socket.create_connection(parse_host_port(location, 8786), timeout=10):
            pass


def _remote(task):
    """What a worker runs (imported there by name): its output goes ahead
    to the client a chunk at a time, through the client's folder when this
    worker sees it (:mod:`dicomwire.spooldir`), else the part's queue. The
    collector is tuned as the command line's while the part runs; what the
    part made and left in cycles is collected as it ends
    (:data:`dicomwire.gctune.collector_tuned`): by then :func:`_part` has
    returned, and nothing of the part but its result is reachable (but for
    a failed part's error: then the next part starts with a full
    collection)."""
    with watchers_paused, collector_tuned:
        try:
            return _part(task)
        except BaseException:
            collect_at_next_part()       # (its traceback holds the part's state)
            raise


def _part(task):
    from dask.distributed import Queue
    from dicomwire.handover import run_part
    # Dask keeps a task's arguments until the client lets go of its future
    # (after the last run): the part works on a copy of its own, so that
    # nothing it builds (config.state, plugins' state) stays reachable from
    # them.
    task = pickle.loads(pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
    # Through the client's folder when this worker sees it, else through
    # the part's queue (by name: registered here, released below; a put
    # waits for the scheduler's answer).
    send, queue = writer(task.get("shared"), task["part"]), None
    if send is None:
        queue = Queue(task["queue"])
        send = SendAhead(queue.put)
    try:
        try:
            result = run_part(dict(task, plugins=unpack(task["plugins"]), send=send))
        except BaseException:
            send.close(raising=False)    # the part's own error is the one to tell
            raise
        send.close()                     # every chunk sent before the result
    finally:
        if queue is not None:
            queue.close()
    result.spooled = getattr(send, "path", None)
    return result


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
    counting = Counting(runs_of(reader, 1)[0])   # beside the connection
    try:
        client = connect(args.dask)
    except BaseException:
        counting.stop()
        raise
    run_id = None
    try:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        # More runs than workers (tests: streams handed over across several runs).
        wanted = os.environ.get("DICOMWIRE_DASK_RUNS")
        runs, stops = plan(reader, workers, int(wanted) if wanted else None)
        try:
            packed = [pack(p, plugins) for p in plugins]
            pickle.dumps((config, packed))
        except Exception as e:              # a plugin that cannot travel
            counting.stop()
            _close(client)
            return _local(args, run_local, f"a plugin cannot be sent to the workers ({e})")
        run_id = uuid.uuid4().hex[:12]
        try:
            parts, collector = _submit(client, (runs, stops), workers, config, packed,
                                       first_ts, run_id, counting)
        except BaseException as e:
            counting.stop()
            _close(client)
            if isinstance(e, Uncut):        # a cut file that cannot be walked to the cut
                return _local(args, run_local, str(e))
            raise
        closing = None
        try:
            counting.stop()
            # The client's goodbyes (a LocalCluster's workers too) are mostly
            # waits: on a thread, beside the merge.
            closing = threading.Thread(target=_close, args=(client,), name="dicomwire-close",
                                       daemon=True)
            closing.start()
            unsafe = [u for p in parts for u in p.unsafe]
            if not unsafe:
                t = time.perf_counter()
                result = merge.merge(parts, name, fmt, first_ts, config, host, plugins, skipped)
                if os.environ.get("DICOMWIRE_DASK_TIMES"):
                    print(f"dicomwire: times: merged in {time.perf_counter() - t:.2f} s",
                          file=sys.stderr)
                return result
        except merge.Mismatch as e:
            unsafe = [str(e)]
        finally:
            collector.close()                # the spools go before a run in one process
            if closing is None:
                _close(client)
            else:
                closing.join()
        return _local(args, run_local, unsafe[0])
    finally:
        for p in plugins:
            done = getattr(p, "cluster_done", None)
            if done is not None:
                done(run_id)


def _first_ts(reader):
    for f in reader:
        return f[1]
    return None


def _submit(client, layout, workers, config, packed, first_ts, run_id, counting):
    """The parts' results, each with the ``spool`` of the output it sent
    ahead, and the collector that holds the spools (the caller closes it).
    ``layout``: (runs, stops). At most ``workers`` runs are given out
    at a time."""
    from dask.distributed import Queue, wait
    runs, stops = layout
    # A run's queue is made, and polled, from its submission on.
    try:
        shared = SharedDir()
    except OSError:                          # no temporary folder: the queues only
        shared = None
    try:
        collector = Collector([None] * len(runs), watched=(), shared=shared)
    except BaseException:
        if shared is not None:
            shared.close()
        raise
    results, bases = {}, None

    def _task(k):
        base, start = bases.give(k, results)
        queue = Queue(f"dicomwire-{run_id}-{k}", client=client)
        collector.watch(k, queue)
        return dict(config=config, plugins=packed, part=k, runs=runs, stops=stops,
                    start=start, first_ts=first_ts, run_id=run_id, base=base,
                    queue=queue.name, shared=shared and shared.offer,
                    chunk=int(os.environ.get("DICOMWIRE_DASK_CHUNK") or 0))   # tests: small
    futures, part_of, paused = [], {}, False
    try:
        bases = Bases(runs, stops, workers, counting)
        t0 = time.time()
        # Each run starts as soon as the frames of the files before it are
        # counted (its frame base; the client's thread counts them) and a
        # worker is free: one that ends early takes the next run.
        running = set()
        for k in range(len(runs)):
            if len(running) >= workers:      # (wait: connect()'s client is the default)
                _done, running = wait(running, return_when="FIRST_COMPLETED")
                if any(f.status == "error" for f in _done):
                    break                    # the gather below raises its error
                for f in _done:              # (not one lost and computed again)
                    if f.status == "finished":
                        results[part_of[f.key]] = f.result()
                        collector.settle(part_of[f.key])
                        bases.ended(part_of[f.key])
                    else:
                        bases.lost(part_of[f.key])
            futures.append(client.submit(_remote, _task(k), pure=False))
            running.add(futures[-1])
            part_of[futures[-1].key] = k
            if len(futures) == min(workers, len(runs)):    # (the first runs go first)
                paused = _ask_scheduler(client, False)
        counting.stop()
        pending = [k for k in range(len(futures)) if k not in results]
        results.update(zip(pending, client.gather([futures[k] for k in pending])))
        parts = [results[k] for k in range(len(futures))]
        if len(parts) != len(runs):          # (cannot be: a failed run raised above)
            raise ClusterError(f"the Dask run ended after {len(parts)} of {len(runs)} runs")
        bases.check_seams(parts)
        collector.finish(parts)
        collector.release()
        if os.environ.get("DICOMWIRE_DASK_TIMES"):
            _print_times(parts, t0, time.time())
        return parts, collector
    except BaseException as e:
        # Tasks still running would go on sending into queues nobody reads.
        try:
            client.cancel(futures)
        except Exception:                    # the connection is gone: they stop with it
            pass
        collector.close()
        if isinstance(e, (CaptureError, ClusterError, Uncut)) or not isinstance(e, Exception):
            raise                            # Ctrl-C too
        raise _failure(e, client) from None
    finally:
        if bases is not None:
            bases.close()
        if paused:
            _ask_scheduler(client, True)


def _failure(e: Exception, client) -> ClusterError:
    """What a run that failed with Dask's ``e`` tells the user."""
    name = type(e).__name__
    # (the reason is there from distributed 2024.7; before, a cancelled
    # task of a client that lost its scheduler is all there is)
    lost = getattr(e, "reason", None) == "scheduler-connection-lost" or (
        isinstance(e, CancelledError) and getattr(client, "status", "") != "running")
    if lost:
        return ClusterError("the connection to the Dask scheduler was lost during the run")
    if name in ("KilledWorker", "CommClosedError") or isinstance(e, CancelledError):
        return ClusterError(f"a Dask worker was lost during the run ({name}: {e})")
    return ClusterError(f"the Dask run failed ({name}: {e})")


def _ask_scheduler(client, on: bool) -> bool:
    """Whether the scheduler ran :func:`dicomwire.watchers.scheduler_watchers`
    (it may not import dicomwire: then it keeps its watchers). Waits 5 s at
    most: a run that failed because the scheduler is gone ends at once."""
    try:
        # (Client.run_on_scheduler with a bound on the wait)
        return bool(client.sync(client._run_on_scheduler, scheduler_watchers, on,
                                callback_timeout=5))
    except Exception:
        return False


def _print_times(parts, t0, now):
    """Where a run's time went (``DICOMWIRE_DASK_TIMES=1``, for benchmarks):
    per part, when it started and ended after the first submission, and
    its wall and CPU seconds."""
    rows = ", ".join(f"part {p.part}: {p.started - t0:.2f}-{p.ended - t0:.2f} s "
                     f"(CPU {p.cpu:.2f} s, task {p.task_cpu:.2f} s, following "
                     f"{p.follow_cpu:.2f} s)" for p in parts)
    print(f"dicomwire: times: submitted {t0 - IMPORTED:.2f} s after start-up, "
          f"{now - t0:.2f} s for the parts; {rows}", file=sys.stderr)


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
