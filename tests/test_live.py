"""Live capture (issue 18): -i, -f, -a, -w on every command that reads a
capture, results as they happen, Ctrl-C that ends cleanly, clear errors.

Without root the capture tool is a stand-in (tests/fake_capture_tool.py,
installed as ``tcpdump`` on a PATH of its own) that writes the sample as a
live tcpdump would; tests/test_live_root.py captures for real, in a network
namespace, with dumpcap and tcpdump."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dicomwire import liveopts
from dicomwire.capsource import CaptureError
from dicomwire.live import PipeInput, find_tool, tool_command
from support import QUIET, ROOT, SAMPLE, dw

FAKE = ROOT / "tests" / "fake_capture_tool.py"


@pytest.fixture
def fake(tmp_path):
    """Environment for a child dicomwire whose only capture tool is the
    stand-in ``tcpdump``, writing the sample."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "tcpdump"
    tool.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    tool.chmod(0o755)
    return dict(os.environ, PATH=str(bindir), FAKE_CAPTURE=str(SAMPLE), FAKE_PACE="0.005",
                FAKE_ARGS=str(tmp_path / "args"), **QUIET)


class Child:
    """``python -m dicomwire ARGS`` running, its stdout lines as they come."""

    def __init__(self, args, env, **kw):
        self.proc = subprocess.Popen([sys.executable, "-m", "dicomwire", *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, text=True, **kw)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self, timeout=20.0) -> str | None:
        return self.lines.get(timeout=timeout)

    def finish(self, timeout=30.0) -> tuple[int, list[str], str]:
        rc = self.proc.wait(timeout=timeout)
        rest = []
        while (item := self.line()) is not None:
            rest.append(item)
        err = self.proc.stderr.read()
        assert "Traceback" not in err, err
        return rc, rest, err


def sample_show(*extra) -> str:
    return dw("show", "-q", *extra, SAMPLE, ok=True).stdout


# -- options -----------------------------------------------------------------------------


def test_autostop_conditions_parse():
    assert liveopts.autostop("duration:2.5") == ("duration", 2.5)
    assert liveopts.autostop("packets:10") == ("packets", 10)
    assert liveopts.autostop("filesize:100") == ("filesize", 100)
    for bad in ("duration", "packets:x", "filesize:-1", "seconds:3", "packets:1.5"):
        with pytest.raises(Exception):
            liveopts.autostop(bad)


@pytest.mark.parametrize("args, words", [
    (["show", "-i", "lo", SAMPLE], "give no capture files with it"),
    (["show", "-f", "tcp", SAMPLE], "-f and -a go with -i"),
    (["export", "-a", "packets:3", SAMPLE, "-o", "x"], "-f and -a go with -i"),
    (["show", "-w", "copy.pcap", SAMPLE], "files are kept already"),
    (["show"], "no capture given"),
    (["streams", "-a", "duration:x", "-i", "lo"], "expected duration:SECONDS"),
])
def test_usage_errors(args, words):
    r = dw(*args, env=QUIET)
    assert r.returncode == 2 and words in r.stderr and r.stdout == ""


def test_the_tool_command_lines():
    assert tool_command("dumpcap", "/d", ["eth0", "eth1"], "port 104",
                        [("duration", 5), ("packets", 9)]) == \
        ["/d", "-f", "port 104", "-i", "eth0", "-i", "eth1", "-w", "-", "-a", "duration:5",
         "-c", "9"]
    assert tool_command("tcpdump", "/t", ["any"], "port 104", [("packets", 9.0)]) == \
        ["/t", "-i", "any", "-U", "--immediate-mode", "-w", "-", "-c", "9", "port 104"]
    with pytest.raises(CaptureError, match="tcpdump captures on one interface"):
        tool_command("tcpdump", "/t", ["eth0", "eth1"])


def test_no_capture_tool_is_a_clear_error(tmp_path):
    r = dw("show", "-i", "lo", env={"PATH": str(tmp_path)})
    assert r.returncode == 2
    assert r.stderr.strip() == ("dicomwire: error: live capture needs dumpcap (Wireshark) or "
                                "tcpdump, and it is not installed (or not on PATH)")
    r = dw("show", "-o", "capture.tool:dumpcap", "-i", "lo", env={"PATH": str(tmp_path)})
    assert r.returncode == 2 and "live capture needs dumpcap, and it" in r.stderr
    r = dw("show", "-o", "capture.tool:wireshark", "-i", "lo")
    assert r.returncode == 2 and "capture.tool: expected auto, dumpcap or tcpdump" in r.stderr


def test_the_tool_found(tmp_path, monkeypatch):
    for name in ("tcpdump", "dumpcap"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_tool() == ("dumpcap", str(tmp_path / "dumpcap"))
    assert find_tool("tcpdump") == ("tcpdump", str(tmp_path / "tcpdump"))
    (tmp_path / "dumpcap").unlink()
    assert find_tool()[0] == "tcpdump"
    with pytest.raises(CaptureError, match="live capture needs dumpcap, and"):
        find_tool("dumpcap")


def test_a_pipe_is_read_as_it_comes(tmp_path):
    r, w = os.pipe()
    copy = tmp_path / "copy"
    calls, limits = [], []
    with open(copy, "wb") as tee:
        pipe = PipeInput(r, "<test>", tee=tee, before_read=lambda: calls.append(1),
                         limit=5, on_limit=lambda: limits.append(1))
        os.write(w, b"abc")
        assert pipe.read(100) == b"abc"         # what has arrived, no waiting for 100
        os.write(w, b"defgh")
        assert pipe.read(4) == b"defg" and pipe.read(100) == b"h"
        os.close(w)
        assert pipe.read(100) == b""
    os.close(r)
    assert copy.read_bytes() == b"abcdefgh" and len(calls) == 4 and limits == [1]


# -- live, with the stand-in tool ------------------------------------------------------


def test_show_prints_each_pdu_as_it_happens_and_ctrl_c_ends_cleanly(fake, tmp_path):
    raw = tmp_path / "raw.pcap"
    child = Child(["show", "-i", "lo", "-f", "tcp port 11112", "-w", raw], fake)
    first = child.line()
    assert "A-ASSOCIATE request MODALITY --> STORESCP" in first
    lines = [first]
    while "A-RELEASE response" not in lines[-1] or len(lines) < 38:
        lines.append(child.line())            # the whole sample, while the tool still runs
    time.sleep(0.3)
    assert child.proc.poll() is None          # an idle link: it waits for more
    child.proc.send_signal(signal.SIGINT)
    rc, rest, err = child.finish()
    assert rc == 130 and rest == []
    assert "interrupted: results cover the frames captured so far" in err
    assert "".join(lines) == sample_show()
    assert raw.read_bytes() == SAMPLE.read_bytes()      # what was decoded, kept
    args = Path(fake["FAKE_ARGS"]).read_text().split("\n")
    assert args == ["-i", "lo", "-U", "--immediate-mode", "-w", "-", "tcp port 11112"]
    assert _tool_gone(fake["FAKE_ARGS"])


def test_ctrl_c_in_a_terminal_reaches_the_tool_too(fake):
    """A terminal's Ctrl-C goes to the whole process group: the tool ends
    by itself, dicomwire reads what it wrote and ends as on its own Ctrl-C."""
    child = Child(["show", "-i", "lo"], fake, start_new_session=True)
    lines = [child.line() for _ in range(38)]
    time.sleep(0.2)
    os.killpg(child.proc.pid, signal.SIGINT)
    rc, rest, err = child.finish()
    assert rc == 130 and rest == [] and "".join(lines) == sample_show()
    assert _tool_gone(fake["FAKE_ARGS"])


def test_ctrl_c_before_anything_was_captured(fake):
    child = Child(["show", "-i", "lo"], dict(fake, FAKE_SILENT="1"))
    deadline = time.monotonic() + 20
    while not Path(fake["FAKE_ARGS"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)                        # the tool runs: dicomwire handles Ctrl-C
    time.sleep(0.2)
    child.proc.send_signal(signal.SIGINT)
    rc, rest, err = child.finish()
    assert rc == 130 and rest == [] and "error" not in err
    assert _tool_gone(fake["FAKE_ARGS"])


def _tool_gone(marker: str) -> bool:
    """No stand-in tool of this test is left running."""
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"fake_capture_tool" in cmd and marker.encode() in env:
            return False
    return True


@pytest.mark.parametrize("stop, frames", [("packets:30", 30), ("filesize:20", None),
                                          ("duration:1", 76)])
def test_autostop_ends_the_pass_as_the_end_of_a_file(fake, tmp_path, stop, frames):
    raw = tmp_path / "raw.pcap"
    t0 = time.monotonic()
    r = dw("streams", "-T", "json", "-i", "lo", "-a", stop, "-w", raw, env=fake, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    if frames is None:                     # about 20 kB read, then the tool stopped
        assert 20_000 <= raw.stat().st_size < 20_000 + 20_000 and 0 < doc["frames"] < 76
    else:
        assert doc["frames"] == frames
    assert doc["capture"] == "<live: lo>"
    assert json.loads(dw("streams", "-T", "json", raw).stdout)["streams"] == doc["streams"]
    if stop.startswith("duration"):
        assert 1.0 <= time.monotonic() - t0 < 15


def test_expert_follow_prints_findings_as_they_are_reported(fake):
    child = Child(["expert", "--follow", "-T", "jsonl", "-i", "lo"], fake)
    found = [json.loads(child.line()) for _ in range(4)]
    assert child.proc.poll() is None            # each printed as it was reported
    assert [f["name"] for f in found] == ["dicom.timing.assoc_setup", "dicom.assoc.reject",
                                          "dicom.reserved.nonzero", "dicom.timing.assoc_setup"]
    assert found[1]["frames"] == [51]
    time.sleep(0.5)                             # the rest of the sample written (idle link)
    child.proc.send_signal(signal.SIGINT)
    rc, rest, _err = child.finish()
    assert rc == 130 and rest == []


def test_export_live(fake, tmp_path):
    out = tmp_path / "out"
    r = dw("export", "-q", "-i", "lo", "-a", "duration:1", "-o", out, env=fake)
    assert r.returncode == 0 and r.stdout.startswith("9 object(s) written")
    want = tmp_path / "want"
    dw("export", "-q", SAMPLE, "-o", want, ok=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == \
        {p.name: p.read_bytes() for p in want.iterdir()}


def test_the_tool_s_failure_and_drops_are_reported(fake):
    r = dw("show", "-i", "lo", env=dict(fake, FAKE_FAIL="1"))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines()[-1] == (
        "dicomwire: error: cannot capture on lo with tcpdump (exit status 1): tcpdump: lo: "
        "You don't have permission to perform this capture on that device (socket: Operation "
        "not permitted); capturing needs root, or the capabilities cap_net_raw and "
        "cap_net_admin on the capture tool (e.g. setcap cap_net_raw,cap_net_admin=eip "
        "/usr/bin/dumpcap)")
    r = dw("show", "-i", "lo", "-a", "packets:10", "--fail-on", "problems",
           env=dict(fake, FAKE_DROPS="7"))
    assert r.returncode == 1
    assert "tcpdump reports 7 packet(s) dropped on lo: the capture is missing them" in r.stderr


def test_stdin_is_read_as_it_comes_and_kept_with_w(tmp_path):
    """``tcpdump -w - | dicomwire show -``: lines as the capture comes in."""
    raw = tmp_path / "raw.pcap"
    env = dict(os.environ, FAKE_CAPTURE=str(SAMPLE), FAKE_PACE="0.005", **QUIET)
    tool = subprocess.Popen([sys.executable, FAKE, "-i", "lo"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        child = Child(["show", "-", "-w", raw], env, stdin=tool.stdout)
        tool.stdout.close()
        lines = [child.line() for _ in range(38)]
        assert "".join(lines) == sample_show()        # all of it before the input ends
        tool.send_signal(signal.SIGINT)
        rc, rest, _ = child.finish()
        assert rc == 0 and rest == []
    finally:
        tool.wait(timeout=10)
    assert raw.read_bytes() == SAMPLE.read_bytes()


@pytest.mark.parametrize("dfilter", [None, "dicom.pdu.type == 3", 'expert.severity == "chat"'])
def test_follow_gives_the_findings_expert_gives(cli, dfilter):
    """On a file, --follow prints what expert -T json lists (-Y as well),
    in the order they were reported."""
    y = ["-Y", dfilter] if dfilter else []
    want = json.loads(cli("expert", "-q", "-T", "json", *y, SAMPLE).stdout)["infos"]
    follow = cli("expert", "-q", "--follow", "-T", "jsonl", *y, SAMPLE).stdout
    after = cli("expert", "-q", "-T", "jsonl", *y, SAMPLE).stdout
    assert follow == after and [json.loads(x) for x in follow.splitlines()] == want
    assert want if dfilter != "dicom.pdu.type == 3" else len(want) == 1
    text = cli("expert", "-q", "--follow", *y, SAMPLE).stdout.splitlines()
    assert len(text) == len(want) and all(len(t.split("  ")) >= 3 for t in text)
