"""Shared by the fuzz targets: where their corpora live, and the atheris runner.

Each target is a module ``fuzz_<name>.py`` with ``one_input(data: bytes)``:
it feeds the bytes to one of dicomwire's parsers and raises only on a bug
(an exception the parser must not let out, or a broken invariant, as an
AssertionError). The same function runs under atheris (``run.py``, coverage
guided) and under hypothesis (``tests/test_fuzz_harnesses.py``, in CI).
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGETS = ("capture", "link", "tcp", "pdu", "pdv", "dimse", "filter")
# Libraries whose code is the parser's own logic (a grammar, declarations):
# instrumented too, so coverage sees into them.
ALSO_INSTRUMENT = {"filter": ["lark"], "pdu": ["construct"]}


def corpus_dir(target: str) -> Path:
    """Committed seeds (fuzz/make_seeds.py writes them)."""
    return HERE / "corpus" / target


def work_dir(target: str) -> Path:
    """What a fuzzing run adds to the corpus (not committed)."""
    return HERE / "work" / target


def seeds(target: str) -> list[bytes]:
    d = corpus_dir(target)
    if not d.is_dir():
        return []
    return [p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()]


def module(target: str):
    import importlib
    if target not in TARGETS:
        raise SystemExit(f"unknown fuzz target {target!r}; one of: {', '.join(TARGETS)}")
    return importlib.import_module(f"fuzz_{target}")


def run_atheris(target: str, libfuzzer_args: list[str]) -> None:
    """Fuzz one target in this process: dicomwire instrumented for coverage,
    new inputs kept in fuzz/work/TARGET, crashes in fuzz/crashes/."""
    import sys

    import atheris
    with atheris.instrument_imports(include=["dicomwire", *ALSO_INSTRUMENT.get(target, ())]):
        mod = module(target)
    work = work_dir(target)
    work.mkdir(parents=True, exist_ok=True)
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    extra = []
    dictionary = HERE / f"{target}.dict"
    if dictionary.exists() and not any(a.startswith("-dict=") for a in libfuzzer_args):
        extra.append(f"-dict={dictionary}")
    args = [sys.argv[0], f"-artifact_prefix={crashes}{os.sep}{target}-", *extra,
            *libfuzzer_args, str(work), str(corpus_dir(target))]
    atheris.Setup(args, mod.one_input)
    atheris.Fuzz()
