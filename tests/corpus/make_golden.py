#!/usr/bin/env python3
"""Write the golden outputs of the capture corpus from the current code.

    python tests/corpus/make_golden.py          # every capture of the manifest
    python tests/corpus/make_golden.py echo     # some of them
    make golden                                 # the same

For each capture ``tests/corpus/captures/NAME.pcap`` this writes
``tests/corpus/golden/NAME.show.txt`` (``dicomwire show``),
``NAME.show-V.txt`` (``show -V``), ``NAME.expert.txt`` (``expert
--verbose``) and ``NAME.export-list.txt`` (``export --list``), running the CLI in-process from the captures folder (file
names without paths; no ``dicomwire.toml`` there, so default preferences).
Nothing in them depends on the machine or the clock: the same code gives
the same bytes.  Review ``git diff tests/corpus/golden`` before committing:
the diff is the change in what users see.  ``tests/test_corpus.py`` fails
when a golden differs from the current output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent
CAPTURES = CORPUS / "captures"
GOLDEN = CORPUS / "golden"
if str(CORPUS) not in sys.path:
    sys.path.insert(0, str(CORPUS))

from manifest import MANIFEST  # noqa: E402

# output kind -> dicomwire arguments before the capture's file name
KINDS = {
    "show": ["show", "-q"],
    "show-V": ["show", "-V", "-q"],
    "expert": ["expert", "-q", "--verbose"],
    "export-list": ["export", "-q", "--list"],
}


def golden_path(name: str, kind: str) -> Path:
    return GOLDEN / f"{name}.{kind}.txt"


def run_cli(args: list[str]) -> tuple[int, str]:
    """Run ``dicomwire ARGS`` in-process in the captures folder; returns
    (exit status, stdout)."""
    from dicomwire.cli import main
    buf = io.StringIO()
    old = os.getcwd()
    os.chdir(CAPTURES)
    try:
        with contextlib.redirect_stdout(buf):
            rc = main(list(args))
    finally:
        os.chdir(old)
    return rc, buf.getvalue()


def output(name: str, kind: str) -> str:
    """What ``dicomwire`` prints for output *kind* of capture *name* (with
    the capture's extra options from the manifest)."""
    args = [*KINDS[kind], *MANIFEST[name].options]
    rc, out = run_cli([*args, f"{name}.pcap"])
    if rc != 0:
        raise RuntimeError(f"dicomwire {' '.join(args)} {name}.pcap: exit status {rc}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="captures (default: every one in the manifest)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in MANIFEST]
    if unknown:
        ap.error(f"not in tests/corpus/manifest.py: {', '.join(unknown)}")
    GOLDEN.mkdir(exist_ok=True)
    changed = 0
    for name in args.names or MANIFEST:
        for kind in KINDS:
            text = output(name, kind)
            path = golden_path(name, kind)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                changed += 1
                print(f"make_golden: wrote {path.relative_to(CORPUS.parent.parent)}")
    stale = sorted(p.name for p in GOLDEN.glob("*.txt")
                   if p.name.split(".", 1)[0] not in MANIFEST)
    for p in stale:
        print(f"make_golden: {p} belongs to no capture of the manifest (delete it?)")
    print(f"make_golden: {changed} file(s) changed; review them with "
          f"`git diff tests/corpus/golden` before committing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
