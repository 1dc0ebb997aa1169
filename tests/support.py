"""What the test modules share: the shipped sample capture, the command line
run in a child process, and a recorder plugin for the DICOM hooks.

conftest.py makes fixtures of what needs pytest (the in-process command
line, which reads capsys). The plain names here are imported directly
(``from support import SAMPLE, dw``), also where a fixture cannot go:
module constants, parametrize lists, module-scoped helpers, and the helper
modules beside the tests (dimse_peers.py). tests/ is on sys.path through
``pythonpath`` in pyproject.toml."""

from __future__ import annotations

import os
import shlex
import struct
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from dicomwire.config import Config
from dicomwire.hookspecs import hookimpl
from dicomwire.pipeline import make_host, run

ROOT = Path(__file__).resolve().parent.parent
# The shipped sample (make sample): real pynetdicom and DCMTK traffic.
SAMPLE = ROOT / "core" / "samples" / "sample.pcap"


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------

# env= for a child whose stderr the test reads: no Python warnings in it.
QUIET = {"PYTHONWARNINGS": "ignore"}


class Ran(NamedTuple):
    """What a command line run gave; unpacks as (status, stdout, stderr)."""
    returncode: int
    stdout: str
    stderr: str


def _no_traceback(err, ok, returncode):
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    assert "Traceback" not in err, err[-3000:]
    if ok:
        assert returncode == 0, err[-3000:]


def dw(*args, ok=False, env=None, timeout=120, text=True, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m dicomwire ARGS`` in a child process with its output
    captured (text; ``text=False``: bytes). ``env`` adds to the environment;
    other keywords (``input``, ``stdin``, ``cwd``) go to subprocess.run.
    A traceback on stderr fails the test; ``ok=True``: so does an exit
    status other than 0."""
    p = subprocess.run([sys.executable, "-m", "dicomwire", *map(str, args)],
                       capture_output=True, timeout=timeout, text=text,
                       env=dict(os.environ, **env) if env else None, **kw)
    _no_traceback(p.stderr, ok, p.returncode)
    return p


def dw_pipe(*args, source=None, into=None, env=None, timeout=120, text=True):
    """Run ``python -m dicomwire ARGS`` in a shell pipeline: after the shell
    command ``source`` (``source | dicomwire ARGS``), into the shell command
    ``into`` (``dicomwire ARGS | into``); as :func:`dw`."""
    cmd = " ".join(shlex.quote(str(a)) for a in (sys.executable, "-m", "dicomwire", *args))
    cmd = " | ".join(c for c in (source, cmd, into) if c)
    p = subprocess.run(cmd, shell=True, capture_output=True, timeout=timeout, text=text,
                       env=dict(os.environ, **env) if env else None)
    _no_traceback(p.stderr, False, p.returncode)
    return p


def run_main(capsys, *args, ok=False) -> Ran:
    """Run ``dicomwire ARGS`` in this process (``dicomwire.cli.main``); what
    was printed before is dropped. An exception or a traceback in the output
    fails the test; ``ok=True``: so does an exit status other than 0. The
    ``cli`` fixture is this with capsys bound."""
    from dicomwire.cli import main
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if ok:
        assert rc == 0, out + err
    return Ran(rc, out, err)


# --------------------------------------------------------------------------
# Recording what the DICOM hooks report
# --------------------------------------------------------------------------

class Recorder:
    """A plugin that keeps one row per call of the DICOM hooks. Each keyword
    is the function that makes the row from the hook's object; a hook
    without one keeps nothing. What is only readable during the hook (the
    data set bytes of a message) must be read by that function.

    Rows: ``pdus`` (dicomwire_pdu), ``messages`` (dicomwire_message),
    ``started`` (dicomwire_association_start), ``assocs``
    (dicomwire_association_end). ``keep`` is the function that keeps the
    object itself (associations stay readable after the run)."""

    def __init__(self, pdu=None, message=None, start=None, end=None):
        self._rows = (pdu, message, start, end)
        self.pdus, self.messages, self.started, self.assocs = [], [], [], []

    @staticmethod
    def keep(obj):
        return obj

    @hookimpl
    def dicomwire_pdu(self, pdu):
        if self._rows[0] is not None:
            self.pdus.append(self._rows[0](pdu))

    @hookimpl
    def dicomwire_message(self, message):
        if self._rows[1] is not None:
            self.messages.append(self._rows[1](message))

    @hookimpl
    def dicomwire_association_start(self, assoc):
        if self._rows[2] is not None:
            self.started.append(self._rows[2](assoc))

    @hookimpl
    def dicomwire_association_end(self, assoc):
        if self._rows[3] is not None:
            self.assocs.append(self._rows[3](assoc))


def record(path, recorder, *, config=None, allow_errors=False, **cfg):
    """Run the pipeline over the capture ``path`` with the built-in plugins
    and ``recorder`` registered as "collect", under ``config`` (default:
    ``Config(**cfg)``). No plugin may fail unless ``allow_errors``; the
    failures are kept in ``recorder.errors``. Returns the pipeline's
    result."""
    config = config if config is not None else Config(**cfg)
    host = make_host(config)
    host.register(recorder, "collect")
    result = run(str(path), config, host)
    recorder.errors = list(host.errors)
    if not allow_errors:
        assert host.errors == [], host.errors
    return result


# --------------------------------------------------------------------------
# Part 10 files
# --------------------------------------------------------------------------

def stored_dataset(path) -> bytes:
    """The data set of a DICOM file exactly as stored: everything after the
    preamble, 'DICM' and the group 0002 file meta elements (always explicit
    VR little endian, PS3.10 7.1), whatever the data set's transfer syntax."""
    data = Path(path).read_bytes()
    assert data[128:132] == b"DICM", path
    long_vrs = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC",
                b"UN", b"UR", b"UT", b"UV"}
    pos = 132
    while pos + 8 <= len(data):
        group = struct.unpack_from("<H", data, pos)[0]
        if group != 0x0002:
            break
        if data[pos + 4:pos + 6] in long_vrs:
            pos += 12 + struct.unpack_from("<I", data, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    return data[pos:]


def rewrite_file(src, out, rewriter) -> None:
    """``src`` copied to the pcap ``out`` through ``rewriter`` (a
    :class:`dicomwire.rewrite.Rewriter`): the rewrite's second pass."""
    from dicomwire.capture import open_capture
    from dicomwire.pcapng_writer import PcapWriter
    from dicomwire.rewrite import rewrite_capture
    with open(out, "wb") as f:
        w = PcapWriter(f)
        w.add_interface(1, 262144, None)
        reader = open_capture(str(src))
        try:
            rewrite_capture(reader, rewriter, w)
        finally:
            reader.close()


def in_process_cluster(monkeypatch, submit, workers: int = 1) -> None:
    """``--dask`` without Dask: ``dicomwire.cluster.connect`` gives a client
    that reports ``workers`` workers, and ``submit`` (the signature of
    ``dicomwire.cluster._submit``) stands for the hand-out: a test runs the
    parts itself (``dicomwire.handover.run_part``), in this process."""
    from dicomwire import cluster

    class Client:
        def scheduler_info(self):
            return {"workers": {f"w{i}": {} for i in range(workers)}}

        def close(self):
            pass
    monkeypatch.setattr(cluster, "connect", lambda address: Client())
    monkeypatch.setattr(cluster, "_submit", submit)
