#!/usr/bin/env python3
"""The span-port ratio (issue 18): dicomwire against tshark on a capture
where DICOM is a small minority, whole commands, wall time, runs
interleaved (each round runs every command once, in turn, so all see the
same drift of a shared machine).

    python benchmarks/span.py [CAPTURE] [--runs 7] [--mb 425]

CAPTURE (default /tmp/mixed425.pcap) is made by benchmarks/make_mixed.py
if it does not exist. Commands, each with its output to /dev/null:

- ``dicomwire show -q CAPTURE`` and ``dicomwire expert -q CAPTURE``
- ``tshark -r CAPTURE -Y dicom``
- the same with bench.py's options (``-o tcp.reassemble_out_of_order:TRUE
  -d tcp.port==11112,dicom``), unless ``--no-bench-options``

It prints each command's minimum and median wall time and CPU time, the
ratios of tshark's medians to dicomwire's, and the conditions (cores, load
average before and after, which walk dicomwire used).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from warm import compile_project

HERE = Path(__file__).resolve().parent
# As installed: byte-compiled modules (bench.py says why).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL, env=ENV, check=False)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", nargs="?", default="/tmp/mixed425.pcap")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--mb", type=int, default=425, help="size of a capture made (MB)")
    ap.add_argument("--no-bench-options", action="store_true")
    args = ap.parse_args(argv)
    compile_project()
    if not os.path.exists(args.capture):
        subprocess.run([sys.executable, str(HERE / "make_mixed.py"), args.capture,
                        str(args.mb)], check=True)
    tshark = shutil.which("tshark")
    if tshark is None:
        sys.exit("tshark is not installed: no ratio to measure")
    me = [sys.executable, "-m", "dicomwire"]
    jobs = {"dicomwire show -q": me + ["show", "-q", args.capture],
            "dicomwire expert -q": me + ["expert", "-q", args.capture],
            "tshark -Y dicom": [tshark, "-r", args.capture, "-Y", "dicom"]}
    if not args.no_bench_options:
        jobs["tshark -Y dicom, bench.py options"] = [
            tshark, "-r", args.capture, "-o", "tcp.reassemble_out_of_order:TRUE",
            "-d", "tcp.port==11112,dicom", "-Y", "dicom"]
    walk = subprocess.run(me[:1] + ["-c", "from dicomwire import fastpath; "
                                    "print('compiled' if fastpath.ext else 'Python')"],
                          capture_output=True, text=True, env=ENV).stdout.strip()
    load0 = os.getloadavg()
    times = {k: [] for k in jobs}
    for rnd in range(args.runs + 1):          # round 0 warms the page cache and .pyc files
        for name, cmd in jobs.items():
            t = timed(cmd)
            if rnd:
                times[name].append(t)
    load1 = os.getloadavg()
    size = os.path.getsize(args.capture)
    print(f"{args.capture}: {size / 1e6:.0f} MB; {args.runs} interleaved runs each; "
          f"{os.cpu_count()} cores, load average {load0[0]:.2f} before, {load1[0]:.2f} after; "
          f"dicomwire's walk: {walk}")
    print(f"{'command':<36} {'wall min':>9} {'median':>8} {'cpu min':>9} {'median':>8}")
    med = {}
    for name, v in times.items():
        w, c = [x[0] for x in v], [x[1] for x in v]
        med[name] = statistics.median(w)
        print(f"{name:<36} {min(w):>8.2f}s {med[name]:>7.2f}s {min(c):>8.2f}s "
              f"{statistics.median(c):>7.2f}s")
    for t in (k for k in jobs if k.startswith("tshark")):
        ratios = ", ".join(f"{t} / {d}: {med[t] / med[d]:.1f}x"
                           for d in jobs if d.startswith("dicomwire"))
        print(f"median wall ratio: {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
