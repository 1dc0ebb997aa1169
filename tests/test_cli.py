"""The command line: version, help, streams output, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

from dicomwire import __version__
from dicomwire.cli import main

SAMPLE = Path(__file__).parent.parent / "core" / "samples" / "sample.pcap"


def dw(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dicomwire", *map(str, args)],
                          capture_output=True, text=True, timeout=60, **kw)


def test_version_and_help():
    p = dw("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"dicomwire {__version__}"
    p = dw("--help")
    assert p.returncode == 0 and "streams" in p.stdout
    p = dw("streams", "--help")
    assert p.returncode == 0 and "-p PLUGIN" in p.stdout and "--fail-on" in p.stdout


def test_usage_errors_exit_2():
    assert dw().returncode == 2                               # no command
    p = dw("streams", SAMPLE, "-o", "no-colon")
    assert p.returncode == 2 and "NAME:VALUE" in p.stderr


def test_missing_and_non_capture_files_are_one_line_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a capture\n")
    for path, words in ((tmp_path / "missing.pcap", "No such file"),
                        (text, "not a pcap or pcapng"), (tmp_path, "directory")):
        p = dw("streams", path)
        assert p.returncode == 2, p.stderr
        assert words in p.stderr
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_streams_text_lists_the_sample_streams():
    p = dw("streams", SAMPLE)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "3 streams" in lines[0]
    rows = [ln.split() for ln in lines[2:]]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert all(r[3].endswith(":11112") and r[-1] == "fin" for r in rows)


def test_streams_json_matches_the_pipeline(capsys):
    assert main(["streams", "-T", "json", str(SAMPLE)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "pcap" and len(doc["streams"]) == 3
    s0 = doc["streams"][0]
    assert s0["client_known"] and s0["close"] == "fin"
    assert s0["bytes_c2s"] > 50_000 and s0["gaps"] == 0 and s0["conflicts"] == 0
    # The rejected association: request one way, 10-byte A-ASSOCIATE-RJ back.
    assert doc["streams"][1]["bytes_s2c"] == 10


def test_broken_pipe_is_quiet():
    p = subprocess.run(f"{sys.executable} -m dicomwire streams {SAMPLE} | head -c 10",
                       shell=True, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in p.stderr and "Error" not in p.stderr


def test_progress_line_and_clear():
    import io

    from dicomwire.pipeline import Progress, run
    out = io.StringIO()
    bar = Progress(out, interval=0)
    calls = []

    def progress(done, total, frames):
        calls.append((done, total, frames))
        bar(done, total, frames)

    # Called per 8 MiB window of a classic pcap, else every 64k frames: a
    # small capture calls it once (mapped, the whole file is done) or never ...
    run(SAMPLE, progress=progress)
    size = SAMPLE.stat().st_size
    assert calls == [(size, size, 76)]
    calls.clear()
    run(io.BytesIO(SAMPLE.read_bytes()), progress=progress)
    assert len(calls) == 1 and calls[0][1:] == (None, 76)
    # ... the bar itself shows percent, megabytes and frames, and clears.
    bar(50_000_000, 100_000_000, 65536)
    assert "50%" in out.getvalue() and "65,536 frames" in out.getvalue()
    bar.clear()
    assert out.getvalue().endswith("\r\033[K")
