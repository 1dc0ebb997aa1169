"""Live capture for real (issue 18): dumpcap and tcpdump on the loopback of
a network namespace the test makes, with pynetdicom traffic inside it
(tests/live_traffic.py), so nothing else on the machine is captured.

What is decoded live equals what decoding the -w file gives; autostop by
packets and duration ends with status 0; Ctrl-C (SIGINT to dicomwire) ends
with 130, the capture tool gone and every exported object whole; without
the right to capture (as nobody) the error is one clear line, status 2."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import QUIET, ROOT, dw

pytestmark = [pytest.mark.root, pytest.mark.interop, pytest.mark.slow]

TOOLS = [t for t in ("dumpcap", "tcpdump") if shutil.which(t)]
TRAFFIC = ROOT / "tests" / "live_traffic.py"
_ports = itertools.count(20000 + os.getpid() % 20000)


@pytest.fixture(scope="module")
def netns():
    """A network namespace with its loopback up; removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("needs root and ip (network namespaces)")
    name = f"dwlive{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                       check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Traffic:
    """tests/live_traffic.py running in the namespace."""

    def __init__(self, ns, pause=0.3):
        self.port = next(_ports)
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, TRAFFIC,
                                      str(self.port), str(pause)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def bpf(self) -> str:
        return f"tcp port {self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def traffic(netns):
    t = Traffic(netns)
    yield t
    t.stop()


def in_ns(ns, *args) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "dicomwire", *map(str, args)]


def run_in_ns(ns, *args, timeout=60):
    p = subprocess.run(in_ns(ns, *args), capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **QUIET))
    assert "Traceback" not in p.stderr, p.stderr
    return p


def tool_gone(bpf: str) -> bool:
    for pid in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if bpf.encode() in cmd and (b"dumpcap" in cmd or b"tcpdump" in cmd):
            return False
    return True


@pytest.mark.parametrize("tool", TOOLS)
def test_show_stops_after_n_packets_and_keeps_them(netns, traffic, tool, tmp_path):
    raw = tmp_path / "raw.pcap"
    p = run_in_ns(netns, "show", "-q", "-o", f"capture.tool:{tool}", "-i", "lo", "-f",
                  traffic.bpf, "-a", "packets:80", "-w", raw)
    assert p.returncode == 0, p.stderr
    assert json.loads(dw("streams", "-T", "json", raw, ok=True).stdout)["frames"] == 80
    assert p.stdout == dw("show", "-q", raw, ok=True).stdout
    assert "A-ASSOCIATE request LIVESCU --> STORESCP" in p.stdout


@pytest.mark.parametrize("tool", TOOLS)
def test_a_file_size_stops_the_capture_and_what_was_read_is_decoded(netns, traffic, tool,
                                                                    tmp_path):
    """-a filesize:20 (kB, as dumpcap counts): about 20,000 bytes of the
    tool's output read, the tool stopped, the pass ended as at a file's end."""
    raw = tmp_path / "raw.pcap"
    p = run_in_ns(netns, "streams", "-T", "json", "-o", f"capture.tool:{tool}", "-i", "lo",
                  "-f", traffic.bpf, "-a", "filesize:20", "-w", raw)
    assert p.returncode == 0, p.stderr
    # the tool writes in blocks: what it had written when stopped is kept too
    assert 20_000 <= raw.stat().st_size < 20_000 + 70_000
    assert tool_gone(traffic.bpf)
    live = json.loads(p.stdout)
    assert live["streams"] == json.loads(dw("streams", "-T", "json", raw).stdout)["streams"]
    assert live["frames"] > 0


@pytest.mark.parametrize("tool", TOOLS)
def test_expert_stops_after_a_duration(netns, traffic, tool, tmp_path):
    raw = tmp_path / "raw.pcap"
    t0 = time.monotonic()
    p = run_in_ns(netns, "expert", "-q", "-T", "json", "-o", f"capture.tool:{tool}",
                  "-i", "lo", "-f", traffic.bpf, "-a", "duration:3", "-w", raw)
    took = time.monotonic() - t0
    assert p.returncode in (0, 1), p.stderr
    assert 3 <= took < 20
    live = json.loads(p.stdout)
    assert live["capture"] == "<live: lo>"
    assert live["infos"] == json.loads(dw("expert", "-q", "-T", "json", raw).stdout)["infos"]
    assert any(i["name"] == "dicom.assoc.reject" for i in live["infos"])


@pytest.mark.parametrize("tool", TOOLS)
def test_ctrl_c_during_export_writes_every_complete_object(netns, traffic, tool, tmp_path):
    out, raw = tmp_path / "out", tmp_path / "raw.pcap"
    proc = subprocess.Popen(in_ns(netns, "export", "-o", f"capture.tool:{tool}", "-i", "lo",
                                  "-f", traffic.bpf, "-o", out, "-w", raw),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **QUIET))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list(out.glob("*.dcm"))) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert "Traceback" not in stderr
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and tool_gone(traffic.bpf)
    got = {f.name: f.read_bytes() for f in out.iterdir()}
    assert len(got) >= 3 and all(n.endswith(".dcm") for n in got), sorted(got)
    want = tmp_path / "want"
    dw("export", "-q", raw, "-o", want)
    assert got == {f.name: f.read_bytes() for f in want.iterdir()}
    from pydicom import dcmread
    for f in out.iterdir():
        assert dcmread(f).SOPClassUID


@pytest.mark.parametrize("tool", TOOLS)
def test_lines_and_findings_appear_as_they_happen(netns, traffic, tool):
    env = dict(os.environ, **QUIET)
    for args, want in ((["show"], "A-ASSOCIATE"), (["expert", "--follow", "-T", "jsonl"],
                                                   "dicom.assoc.reject")):
        proc = subprocess.Popen(in_ns(netns, *args, "-q", "-o", f"capture.tool:{tool}", "-i",
                                      "lo", "-f", traffic.bpf),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env)
        seen = ""
        while want not in seen:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            seen += line
        assert proc.poll() is None                  # still capturing
        proc.send_signal(signal.SIGINT)
        proc.stdout.read()
        assert proc.wait(timeout=30) == 130
        assert tool_gone(traffic.bpf)


@pytest.mark.parametrize("tool", TOOLS)
def test_capturing_without_the_right_is_a_clear_error(tool):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run as nobody")
    p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        sys.executable, "-m", "dicomwire", "show", "-o", f"capture.tool:{tool}",
                        "-i", "lo", "-a", "duration:2"], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, **QUIET), cwd="/")
    if "No module named dicomwire" in p.stderr or "Permission denied" in p.stderr[:200]:
        pytest.skip(f"nobody cannot run this checkout: {p.stderr.strip()[:200]}")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dicomwire: error: cannot capture on lo with {tool}")
    assert "permission" in last.lower() and "setcap" in last
