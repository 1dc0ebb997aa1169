"""What the test modules share: the shipped sample capture, the command line
run in a child process, and a recorder plugin for the DICOM hooks.

conftest.py makes fixtures of what needs pytest (the in-process command
line, which reads capsys). The plain names here are imported directly
(``from support import SAMPLE, dw``), also where a fixture cannot go:
module constants, parametrize lists, module-scoped helpers, and the helper
modules beside the tests (dimse_peers.py). tests/ is on sys.path through
``pythonpath`` in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The shipped sample (make sample): real pynetdicom and DCMTK traffic.
SAMPLE = ROOT / "core" / "samples" / "sample.pcap"
