"""Every code block of README.md and docs/*.md runs (tests/doc_examples.py
says how), and prints what the page shows where it shows output."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import doc_examples as X

BLOCKS = [b for doc in X.documents() for b in X.blocks(doc)]
ENV = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200")


def _scratch(tmp_path: Path) -> Path:
    for name in ("core", "tests"):
        (tmp_path / name).symlink_to(X.ROOT / name)
    return tmp_path


def _shell(cmd: str, cwd: Path, env=None):
    """A command line as the page writes it, ``dicomwire`` being this
    checkout's (python -m dicomwire)."""
    exe = f"{shlex.quote(sys.executable)} -m dicomwire "
    line = re.sub(r"(^|\| )dicomwire ", lambda m: m.group(1) + exe, cmd)
    return subprocess.run(line, shell=True, cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env or ENV)


@pytest.fixture
def peer():
    """A pynetdicom SCP (Verification, CT Storage) on a free loopback port."""
    import peers
    port = peers.free_port()
    server = peers.start_scp(port)
    yield f"127.0.0.1:{port}"
    peers.stop_scp(server)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example(block, tmp_path, request):
    skip = block.directive("skip")
    if block.lang == "text":
        pytest.skip("output or a drawing: nothing to run")
    if skip:
        pytest.skip(skip[0] or "marked skip in the page")
    cwd = _scratch(tmp_path)
    if block.lang == "python":
        return _python(block, cwd)
    if block.lang == "toml":
        return _toml(block, cwd)
    text_peer = request.getfixturevalue("peer") if block.directive("peer") else None
    steps = X.shell_steps(block)
    assert steps, "a block with nothing to run"
    for cmd, want in steps:
        if text_peer:
            cmd = cmd.replace("127.0.0.1:11112", text_peer)
        p = _shell(cmd, cwd)
        assert "Traceback" not in p.stderr, p.stderr[-2000:]
        if want is None or not [w for w in want if w.strip()]:
            assert p.returncode == 0, (cmd, p.stderr[-2000:])
        else:
            why = X.matches(want, p.stdout.splitlines())
            assert why is None, f"{cmd}: {why}\n{p.stdout[-3000:]}"


def _python(block, cwd: Path):
    code = X.prepared(block)
    plugin = X.plugin_file(code)
    if plugin:
        name, command = plugin
        (cwd / name).write_text(code)
        p = _shell(command, cwd, env=dict(ENV, PYTHONPATH=str(cwd)))
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
        return
    script = "\n".join([*block.directive("setup"), code, *block.directive("then")])
    (cwd / "example.py").write_text(script)
    p = subprocess.run([sys.executable, "example.py"], cwd=cwd, capture_output=True, text=True,
                       timeout=300, env=dict(ENV, PYTHONPATH=str(X.ROOT / "tests")))
    assert p.returncode == 0, p.stderr[-3000:]


def _toml(block, cwd: Path):
    import tomllib
    text = X.prepared(block)
    name = text.splitlines()[0].lstrip("# ").strip()
    (cwd / name).write_text(text)
    p = _shell("dicomwire prefs", cwd)
    assert p.returncode == 0, p.stderr
    flat = {}
    for section, values in tomllib.loads(text).items():
        for key, value in values.items():
            flat[f"{section}.{key}"] = value
    for key, value in flat.items():
        row = [r for r in p.stdout.splitlines() if r.split() and r.split()[0] == key]
        assert row and "file" in row[0] and str(value).lower() in row[0].lower(), (key, row)


def test_the_checker_sees_a_wrong_output_and_a_wrong_command(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("intro\n\n<!-- example: skip-line nope: reason -->\n```\n"
                    "$ dicomwire show CAPTURE\n      4    0.002697 wrong\n...\n```\n")
    (block,) = X.blocks(page)
    (cmd, want), = X.shell_steps(block)
    assert cmd == f"dicomwire show {X.SAMPLE_REL}" and block.directive("skip-line")
    (tmp_path / "run").mkdir()
    p = _shell(cmd, _scratch(tmp_path / "run"))
    assert X.matches(want, p.stdout.splitlines()).startswith("line 1: expected")
    assert X.matches(["a", "...", "c"], ["a", "b", "c"]) is None
    assert X.matches(["a"], ["a", "b"]) == "1 more lines than shown, from 'b'"
    assert X.matches(["a", "...", "z"], ["a", "b"]) == "expected line not found: 'z'"
