"""Regenerate docs/report.png, the README's picture of the report: the
report of the shipped sample capture, drawn by Debian's chromium (headless,
tests/browser.py), from the top of the page down to its first ladder.

    python tests/make_report_png.py        (make report-screenshot)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from browser import MISSING, Loaded, chromium

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = "core/samples/sample.pcap"      # as the page names it, from the repository's root
OUT = ROOT / "docs" / "report.png"
WIDTH, HEIGHT = 1100, 1240           # summary, timeline and the first ladder's top half


def main() -> int:
    if MISSING:
        print(f"make_report_png: {MISSING}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "sample.html"
        subprocess.run([sys.executable, "-m", "dicomwire", "report", "-q", SAMPLE,
                        "-o", str(html)], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        with chromium() as browser:
            view = Loaded(browser, html, width=WIDTH, height=HEIGHT)
            if view.problems:
                print("\n".join(view.problems), file=sys.stderr)
                return 1
            view.page.screenshot(path=str(OUT))
    print(f"{OUT} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
