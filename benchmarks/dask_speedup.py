#!/usr/bin/env python3
"""The speed-up of ``--dask`` over one process on a file set (issue 18).

Starts a Dask scheduler and WORKERS single-threaded workers on loopback
(``dask scheduler`` / ``dask worker``, random ports), then runs each
command in alternating rounds, one process then ``--dask tcp://...``
(wall times drift on a shared machine), checks that both print the same
bytes (and, for export, write the same files), and prints the best and the
median of each. ``--local`` also times ``--dask`` without an address (a
LocalCluster started per run: its start-up is part of the time);
``--local-only`` times that alone, without the scheduler and workers
idling beside it.

    python benchmarks/dask_speedup.py SET... [--workers 2] [--rounds 5] [--local | --local-only]
                                             [--halves] [--probe] [--times FILE]

SET: the files, folder or glob of a capture set, e.g. a capture cut with
``editcap -c 80000 big.pcap part.pcap``. benchmarks/README.md has the
figures and how the sets were made.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from warm import compile_project

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(workers: int, profiler: bool = True):
    """(address, processes) of a scheduler and its workers on loopback
    (``profiler``: Dask's statistical profiler of the workers' tasks, on by
    default, samples them every 10 ms)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", ":0"], **quiet)]
    for _ in range(workers):
        env = dict(os.environ, DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=str(profiler))
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nthreads", "1",
                                       "--host", "127.0.0.1", "--no-dashboard"], env=env,
                                      **quiet))
    from dask.distributed import Client
    with Client(address, timeout="30s") as c:
        c.wait_for_workers(workers, timeout=60)
        c.run(lambda: __import__("dicomwire.handover"))   # imports paid once, as a warm cluster
    return address, procs


def timed(cmd, outdir=None, log=None) -> tuple[float, bytes, int]:
    """Wall seconds, stdout and peak memory (MB) of ``cmd``; ``log``: a
    file its stderr is appended to."""
    if outdir:
        shutil.rmtree(outdir, ignore_errors=True)
    t = time.perf_counter()
    # GNU time reports the command's own peak: a child's ru_maxrss seen from
    # here would start from this process's size at the fork.
    with tempfile.NamedTemporaryFile() as peak:
        r = subprocess.run(["/usr/bin/time", "-o", peak.name, "-f", "%M", *cmd],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        dt = time.perf_counter() - t
        if r.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd)}: {r.stderr.decode()}")
        if log:
            with open(log, "ab") as f:
                f.write(f"{' '.join(cmd)}: {dt:.2f} s\n".encode() + r.stderr)
        return dt, r.stdout, int(open(peak.name).read().split()[-1]) // 1024


def worker_peaks(address) -> list[int]:
    """Each worker process's peak memory so far (MB)."""
    import resource
    from dask.distributed import Client
    with Client(address, timeout="30s") as c:
        got = c.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    return sorted(got.values())


def halves_at_once(cmd, capture) -> float:
    """Wall seconds of two ``cmd`` processes started together on the first
    and the second half of the set's files (the slower one's)."""
    files = sorted(str(p) for c in capture for p in
                   (sorted(Path(c).iterdir()) if Path(c).is_dir() else [Path(c)]))
    half = len(files) // 2
    t = time.perf_counter()
    procs = [subprocess.Popen([*cmd, *part], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for part in (files[:half], files[half:])]
    for p in procs:
        p.wait()
    return time.perf_counter() - t


SPIN = "n = 0\nfor i in range(20_000_000):\n    n += i\n"


def machine_ceiling() -> float:
    """What two CPU-bound processes get on this machine now: a pure-Python
    loop timed alone, then two at once; 2 x alone / the slower of the two.
    A VM whose host is busy gives its vCPUs less than two cores' worth (no
    steal time shown in the guest): the ceiling of any two-worker run."""
    cmd = [sys.executable, "-c", SPIN]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    alone = time.perf_counter() - t
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd) for _ in range(2)]
    for p in procs:
        p.wait()
    return 2 * alone / (time.perf_counter() - t)


def same_tree(a, b) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only:
        return False
    return all(filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False)
               for n in cmp.common_files)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--local", action="store_true", help="also --dask without an address")
    ap.add_argument("--local-only", action="store_true",
                    help="--dask without an address only, and no cluster of its own idling "
                         "beside it (an idle scheduler and two workers take ~9 %% of a core)")
    ap.add_argument("--commands", default="show,export")
    ap.add_argument("--no-profiler", action="store_true",
                    help="start the workers with Dask's task profiler off")
    ap.add_argument("--probe", action="store_true",
                    help="also measure, each round, what two CPU-bound processes get on this "
                         "machine against one (its ceiling for two workers)")
    ap.add_argument("--times", metavar="FILE",
                    help="run --dask with DICOMWIRE_DASK_TIMES=1 and append its stderr (each "
                         "part's start, end and CPU) to FILE: what made a slow round")
    ap.add_argument("--halves", action="store_true",
                    help="also two plain processes on the set's first and second half of files "
                         "at once (the machine's own limit for two workers; output not merged)")
    a = ap.parse_args()
    compile_project()
    if a.times:
        os.environ["DICOMWIRE_DASK_TIMES"] = "1"    # (one process ignores it)
    address, procs = (None, []) if a.local_only else start_cluster(a.workers,
                                                                     profiler=not a.no_profiler)
    dask_name = "--dask (LocalCluster)" if a.local_only else f"--dask {address}"
    tmp = Path(tempfile.mkdtemp(prefix="dask-bench-"))
    dw = str(BIN / "dicomwire")
    try:
        for command in a.commands.split(","):
            base = [dw, command, "-q", *a.capture]
            variants = {"one process": []}
            if address:
                variants[f"--dask {address}"] = ["--dask", address]
            if a.local or a.local_only:
                variants["--dask (LocalCluster)"] = ["--dask"]
            times = {v: [] for v in variants}
            peaks = {v: 0 for v in variants}
            outs = {}
            halves = a.halves and command != "export"       # (export writes: not compared)
            if halves:
                times["halves at once"], peaks["halves at once"] = [], 0
            ceilings = []
            for _ in range(a.rounds):
                if a.probe:
                    ceilings.append(machine_ceiling())
                if halves:
                    times["halves at once"].append(halves_at_once(base[:3], a.capture))
                for i, (name, extra) in enumerate(variants.items()):
                    outdir = tmp / f"out{i}" if command == "export" else None
                    dt, out, mb = timed(base + extra + (["-o", str(outdir)] if outdir else []),
                                        outdir, a.times if extra else None)
                    times[name].append(dt)
                    peaks[name] = max(peaks[name], mb)
                    outs[name] = out if outdir is None else same_tree(tmp / "out0", outdir)
            ref = outs["one process"]
            ones = times["one process"]
            one, one_med = min(ones), statistics.median(ones)
            for name, ts in times.items():
                same = "identical" if outs.get(name, True) in (ref, True) else "DIFFERENT"
                if name == "halves at once":
                    same = "(not merged)"
                med = statistics.median(ts)
                # The machine's speed drifts between rounds: each round's own
                # ratio (one process / this, run one after the other) too.
                paired = statistics.median(o / t for o, t in zip(ones, ts))
                print(f"{command:7} {name:<36} best {min(ts):6.2f} s  median {med:6.2f} s  "
                      f"speed-up {one / min(ts):4.2f}x (medians {one_med / med:4.2f}x, "
                      f"rounds {paired:4.2f}x)  peak {peaks[name]} MB  {same}")
            if ceilings:
                print(f"{command:7} machine ceiling (two CPU-bound processes against one), "
                      "per round: " + ", ".join(f"{c:.2f}x" for c in ceilings))
            print(f"{command:7} rounds: " + ", ".join(
                f"{o:.2f}/{t:.2f}" for o, t in zip(ones, times[dask_name])))
        peaks = f"workers' peak memory: {worker_peaks(address)} MB; " if address else ""
        print(f"{peaks}load average "
              f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
