"""The dependency rule of docs/ARCHITECTURE.md, enforced: the import
contracts of ``.importlinter`` hold (import-linter's ``lint-imports``, which
counts imports inside functions too), they cover every module of core/, and
core/ names no DICOM concept."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
LAYERS = {"core": "", "specs": "specs", "plugins": "plugins", "exporters": "exporters"}


def source_tree(dest: Path) -> Path:
    """The ``dicomwire`` package as one folder tree (setuptools maps it from
    four folders, which import-linter cannot follow)."""
    pkg = dest / "dicomwire"
    skip = shutil.ignore_patterns("__pycache__", "samples", "*.pyc")
    for folder, sub in LAYERS.items():
        shutil.copytree(ROOT / folder, pkg / sub if sub else pkg, ignore=skip,
                        dirs_exist_ok=True)
    return pkg


def lint(tree: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        exe = shutil.which("lint-imports")
    if not exe:
        pytest.fail("lint-imports is missing: pip install -e '.[test]' installs import-linter")
    env = {**os.environ, "PYTHONPATH": str(tree.parent)}
    return subprocess.run([str(exe), "--config", str(CONFIG), "--no-cache"], cwd=tree.parent,
                          env=env, capture_output=True, text=True, timeout=120)


def test_import_contracts_hold(tmp_path):
    p = lint(source_tree(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout and "3 kept" in p.stdout, p.stdout


@pytest.mark.parametrize("module, planted", [
    ("pipeline.py", "def _f():\n    from dicomwire.plugins.dicom import detect\n"),
    ("specs/dicom/pdu.py", "def _f():\n    import dicomwire.plugins\n"),
    ("exporters/annotate.py", "def _f():\n    from dicomwire.exporters import part10\n"),
])
def test_a_planted_import_breaks_a_contract(tmp_path, module, planted):
    pkg = source_tree(tmp_path)
    with open(pkg / module, "a") as f:
        f.write("\n\n" + planted)
    p = lint(pkg)
    assert p.returncode != 0 and "BROKEN" in p.stdout.upper(), p.stdout + p.stderr


def test_the_engine_contract_lists_every_core_module():
    cfg = configparser.ConfigParser()
    cfg.read(CONFIG)
    listed = set(cfg["importlinter:contract:engine"]["source_modules"].split())
    core = set()
    for f in (ROOT / "core").rglob("*.py"):
        parts = ["dicomwire", *f.relative_to(ROOT / "core").with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        core.add(".".join(parts))
    assert listed == core


# -- core/ names no DICOM concept -----------------------------------------------------

DICOM_WORDS = re.compile(
    r"(?i)dicom(?!wire)|\bDIMSE\b|\bPDUs?\b|\bPDVs?\b|\bA-(?:ASSOCIATE|RELEASE|ABORT)"
    r"|\bP-DATA|\bAE[ -]titles?\b|\bpart ?10\b|transfer syntax|presentation context"
    r"|\bpctx\b|\bSOP\b|\bSC[PU]s?\b|\b[CN]-(?:STORE|ECHO|FIND|MOVE|GET|CANCEL|EVENT|SET"
    r"|ACTION|CREATE|DELETE)|\bassociations?\b")

# (file, text of the line): the program's own description, and a key of the
# expert JSON output that must not change.
ALLOWED = {
    ("__init__.py", '"""dicomwire: DICOM network traffic from packet captures, decoded and '
                    'explained.'),
    ("cli.py", 'DESCRIPTION = ("Decode, diagnose and export DICOM network traffic from '
               'packet captures "'),
    ("expert.py", '"association": self.assoc}      # the key of the JSON output, kept'),
}


def test_core_names_no_dicom_concept():
    found = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if DICOM_WORDS.search(line) and (path.name, line.strip()) not in ALLOWED:
                found.append(f"core/{path.name}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
