"""Does the report page stay usable on a busy capture? Writes a synthetic
capture of N small associations (tests/reportgen.py: C-ECHO and C-STORE
associations, some rejected or aborted, several at a time), runs
``dicomwire report`` on it, then opens the page in Debian's chromium
(headless) and times: the page until it is drawn, opening the last
association's ladder, a zoom of the timeline.

    python benchmarks/report_page.py 10000 /tmp/assoc10k.pcap
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import reportgen as rg                 # noqa: E402  (tests/ helpers)
from browser import MISSING, Loaded, chromium   # noqa: E402


def association(i: int) -> list:
    """The i-th association: mostly an echo and a store, every tenth
    rejected, every twentieth aborted, every seventh with three stores."""
    if i % 10 == 3:
        return rg.rejected()
    stores = [rg.store(2 + k, instance=f"1.2.826.0.1.3680043.9.7.{i}.{k}")
              for k in range(3 if i % 7 == 0 else 1)]
    return rg.association(rg.echo(1), *stores, end="abort" if i % 20 == 5 else "release")


def write_capture(n: int, path: Path):
    # A new association every 5 ms, each about 10-20 ms long: 2 to 4 at once.
    conns = [rg.timed(association(i), i * 5_000_000, 20000 + i) for i in range(n)]
    path.write_bytes(rg.pcap(*conns))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="associations")
    ap.add_argument("capture", type=Path, help="the capture to write (kept if it exists)")
    ap.add_argument("--html", type=Path, help="the report (default: CAPTURE.html)")
    args = ap.parse_args()
    html = args.html or args.capture.with_suffix(".html")
    if not args.capture.exists():
        secs, _ = timed(lambda: write_capture(args.n, args.capture))
        print(f"capture: {args.capture} ({args.capture.stat().st_size:,} bytes, {secs:.1f} s)")
    cmd = [sys.executable, "-m", "dicomwire", "report", "-q", str(args.capture), "-o", str(html)]
    secs, _ = timed(lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL))
    print(f"report: {secs:.2f} s, {os.path.getsize(html):,} bytes")
    if MISSING:
        print(f"no browser: {MISSING}")
        return
    with chromium() as browser:
        secs, view = timed(lambda: Loaded(browser, html))
        page = view.page
        print(f"page drawn in chromium: {secs:.2f} s "
              f"({page.locator('#timeline-svg rect.bar').count():,} timeline bars)")
        last = page.evaluate("DW.M.associations[DW.M.associations.length - 1].id")
        secs, _ = timed(lambda: (page.evaluate(f"location.hash = '#assoc-{last}'"),
                                 page.wait_for_selector(f"#ladder-{last}")))
        print(f"last association's ladder opened: {secs:.3f} s")
        secs, _ = timed(lambda: page.click("[data-zoom=in]"))
        print(f"timeline zoom: {secs:.3f} s")
        print(f"problems: {view.problems or 'none'}")


if __name__ == "__main__":
    main()
