#!/usr/bin/env python3
"""A/B timing: this tree against another revision, runs interleaved.

Wall times on shared machines drift by 20 % or more between batches of runs
a few minutes apart, which swamps a 10 % change measured in two separate
batches. Here each round runs every tree once, in turn, so both see the
same drift; compare the minimums (and medians) it prints.

    python benchmarks/ab.py 2389e3b -- show -q /tmp/perf20.pcap      (dicomwire's arguments after --)
    python benchmarks/ab.py HEAD~3 --runs 8 --out /tmp/x -- export -q CAPTURE -o /tmp/x

Each tree runs as ``python -m dicomwire`` from a folder of links that lays
the sources out as the installed package (pyproject's package-dir), so no
install is needed (the other revision's compiled walk is built in place;
this tree's must be, as ``pip install -e .`` does); ``--out DIR`` is
removed before every run (exports).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where each subpackage lives in the source tree (pyproject.toml package-dir).
LAYOUT = {"specs": "specs", "plugins": "plugins", "exporters": "exporters"}


def package_dir(tree: Path, into: Path) -> Path:
    """A folder whose ``dicomwire`` package is ``tree``'s sources, by links."""
    pkg = into / "dicomwire"
    pkg.mkdir(parents=True)
    for f in (tree / "core").iterdir():
        if f.name != "__pycache__":
            (pkg / f.name).symlink_to(f)
    for name, src in LAYOUT.items():
        (pkg / name).symlink_to(tree / src)
    return into


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", help="the other revision (a commit, tag or branch)")
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--out", help="a folder the command writes, removed before each run")
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv:
        ap.error("give the dicomwire arguments after --")
    cut = argv.index("--")
    a, args = ap.parse_args(argv[:cut]), argv[cut + 1:]
    work = Path(tempfile.mkdtemp(prefix="dicomwire-ab-"))
    try:
        other = work / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                        str(other), a.rev], check=True)
        if (other / "core" / "_fastwalk.c").exists():
            # The compiled walk, as an install builds it (else that tree would
            # time the Python walk); this tree's is the one pip built in place.
            subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                           cwd=other, check=False, capture_output=True)
        trees = {a.rev: package_dir(other, work / "a"), "this tree": package_dir(ROOT, work / "b")}
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)      # time byte-compiled code, as installed
        times = {k: [] for k in trees}
        for rnd in range(a.runs + 1):                 # round 0 warms caches and .pyc files
            for name, path in trees.items():
                if a.out:
                    shutil.rmtree(a.out, ignore_errors=True)
                r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "dicomwire", *args],
                               env=dict(env, PYTHONPATH=str(path)),
                               stdout=subprocess.DEVNULL, check=False)
                wall = time.perf_counter() - t0
                r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
                if rnd:
                    times[name].append((wall, cpu))
        print(f"dicomwire {' '.join(args)}: {a.runs} interleaved runs each")
        print(f"{'tree':<12} {'wall min':>9} {'median':>8} {'cpu min':>9} {'median':>8}")
        for name, v in times.items():
            w, c = [x[0] for x in v], [x[1] for x in v]
            print(f"{name[:12]:<12} {min(w):>8.2f}s {statistics.median(w):>7.2f}s "
                  f"{min(c):>8.2f}s {statistics.median(c):>7.2f}s")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(work / "tree")], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        if a.out:
            shutil.rmtree(a.out, ignore_errors=True)


if __name__ == "__main__":
    main()
