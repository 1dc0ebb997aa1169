"""Run the fuzz targets with atheris (pip install -e '.[fuzz]').

    python fuzz/run.py TARGET [LIBFUZZER OPTIONS]   e.g. -max_total_time=600 -jobs=2
    python fuzz/run.py all [-max_total_time=N]      every target in turn, N s each (default 60)
    python fuzz/run.py TARGET --replay FILE...      run files through the target, no atheris

Targets: capture, link, tcp, pdu, pdv, dimse, filter. Seeds come from
fuzz/corpus/TARGET (fuzz/make_seeds.py), new inputs go to fuzz/work/TARGET,
crashes to fuzz/crashes/TARGET-crash-*: replay one with --replay, then make it
a regression test in tests/test_fuzz_harnesses.py named after what it found.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def replay(target: str, files: list[str]) -> int:
    mod = harness.module(target)
    failed = 0
    for f in files:
        try:
            mod.one_input(Path(f).read_bytes())
            print(f"ok      {f}")
        except Exception as e:          # report every file, then the status
            failed += 1
            print(f"FAILED  {f}: {type(e).__name__}: {e}")
            import traceback
            traceback.print_exc()
    return 1 if failed else 0


def run_all(args: list[str]) -> int:
    if not any(a.startswith("-max_total_time=") for a in args):
        args = args + ["-max_total_time=60"]
    status = 0
    for target in harness.TARGETS:
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, __file__, target, "-print_final_stats=1", *args])
        print(f"== {target}: exit {rc} after {time.monotonic() - t0:.0f} s", flush=True)
        status = status or rc
    return status


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    target, rest = argv[0], argv[1:]
    if target == "all":
        return run_all(rest)
    if rest[:1] == ["--replay"]:
        return replay(target, rest[1:])
    harness.run_atheris(target, rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
