#!/usr/bin/env python3
"""deidentify against export on one capture (issue 17: no more than 3x):
runs interleaved (wall times drift on a shared machine), medians, ratio.

    python benchmarks/deid_ratio.py /tmp/perf20.pcap --runs 9

Each run is the command line as a user types it (start-up included);
deidentify's output and export's folder go to a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from warm import compile_project


def timed(cmd) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture")
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    compile_project()
    dw = [sys.executable, "-m", "dicomwire"]
    tmp = tempfile.mkdtemp(prefix="deid_ratio_")
    times: dict[str, list[float]] = {"export": [], "deidentify": []}
    try:
        for _ in range(args.runs):
            out = os.path.join(tmp, "export")
            times["export"].append(timed(dw + ["export", "-q", args.capture, "-o", out]))
            shutil.rmtree(out, ignore_errors=True)
            times["deidentify"].append(timed(dw + ["deidentify", "-q", args.capture, "-o",
                                                   os.path.join(tmp, "out.pcapng")]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.capture}: {args.runs} interleaved runs each; load average "
          f"{os.getloadavg()[0]:.2f} after")
    for name, t in times.items():
        print(f"{name:<11} min {min(t):5.2f} s  median {statistics.median(t):5.2f} s  "
              f"max {max(t):5.2f} s")
    ratio = statistics.median(times["deidentify"]) / statistics.median(times["export"])
    print(f"median ratio deidentify / export: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
