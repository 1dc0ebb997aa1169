"""What every benchmark that times ``dicomwire`` processes does first.

An installed package has its bytecode written (pip compiles it; an
editable install writes it on first import). A shell with
``PYTHONDONTWRITEBYTECODE=1`` (some containers, CI images) never writes it
for the editable tree: each timed process would compile every module from
source, ~0.1 s for a plain command and more for ``--dask``'s client, which
imports more of the project. Compiled once here, the timed runs read it.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def compile_project() -> None:
    """The project's bytecode, written whatever the environment says."""
    for sub in ("core", "specs", "plugins", "exporters"):
        compileall.compile_dir(str(PROJECT / sub), quiet=1)
