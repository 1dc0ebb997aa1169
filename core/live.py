"""Live capture (issue 18): ``-i IFACE`` (repeatable), ``-f BPF``, ``-a
duration:N|packets:N|filesize:KB`` (tshark's autostop names) and ``-w FILE``
on every command that reads a capture.

dicomwire opens no interface itself. As tshark leaves capturing to dumpcap,
it runs a capture tool that is kept up to date with the kernel and libpcap:
``dumpcap`` when installed, else ``tcpdump`` (preference ``capture.tool``),
writing pcapng or pcap to a pipe, and reads the pipe as it reads stdin
(:class:`PipeInput`: whatever has arrived, without waiting for a full
chunk). Autostop: packets by the tool's ``-c``, duration by dumpcap's ``-a``
or a timer, file size by counting the bytes read; the tool is then asked to
stop (SIGINT: it writes out what it holds and closes the pipe) and the pass
ends at the end of the pipe, as at the end of a file.

Ctrl-C (:class:`LiveCapture` handles SIGINT while it runs) does the same:
the tool is stopped, the pass reads what it wrote, streams are closed,
findings reported and objects written as at the end of a file; the result
says it was interrupted (exit status 130). A second Ctrl-C stops at once.
A tool that cannot capture (no permission, no such interface) or none
installed is a :class:`dicomwire.capsource.CaptureError` that says why.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import threading
from collections import deque

from dicomwire.capsource import CHUNK, CaptureError

KB = 1000                       # dumpcap's kB
TOOLS = ("dumpcap", "tcpdump")
GRACE = 3.0                     # seconds a tool gets after SIGINT, then SIGTERM, then SIGKILL
PERMISSION_HINT = ("capturing needs root, or the capabilities cap_net_raw and cap_net_admin "
                   "on the capture tool (e.g. setcap cap_net_raw,cap_net_admin=eip "
                   "/usr/bin/dumpcap)")


class PipeInput:
    """A pipe read as it comes, as a capture source (a binary file object):
    ``read(n)`` returns what has arrived, at least one byte, up to ``n``
    (more reads while more is ready, so a fast producer still gives large
    chunks). ``before_read`` is called before each wait (the command line
    flushes its output there: results appear as they happen); ``tee``
    gets every byte read (``-w``); ``on_limit`` is called once ``limit``
    bytes were read."""

    def __init__(self, fd: int, name: str, *, tee=None, before_read=None, limit=None,
                 on_limit=None):
        self.fd, self.name = fd, name
        self.tee, self.before_read = tee, before_read
        self.limit, self.on_limit = limit, on_limit
        self.count = 0

    def read(self, n: int = CHUNK) -> bytes:
        if self.before_read is not None:
            self.before_read()
        data = os.read(self.fd, n)
        if data and len(data) < n and select.select([self.fd], [], [], 0)[0]:
            parts, got = [data], len(data)
            while got < n and select.select([self.fd], [], [], 0)[0]:
                more = os.read(self.fd, n - got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        self.count += len(data)
        if self.tee is not None and data:
            self.tee.write(data)
        if self.limit is not None and self.count >= self.limit:
            self.limit = None
            self.on_limit()
        return data


def find_tool(choice: str = "auto") -> tuple[str, str]:
    """(kind, path) of the capture tool: ``dumpcap`` or ``tcpdump`` by
    ``choice`` (auto: dumpcap if installed)."""
    for kind in (TOOLS if choice == "auto" else (choice,)):
        path = shutil.which(kind)
        if path:
            return kind, path
    want = "dumpcap (Wireshark) or tcpdump" if choice == "auto" else choice
    raise CaptureError(f"live capture needs {want}, and it is not installed "
                       f"(or not on PATH)")


def tool_command(kind: str, path: str, interfaces, bpf=None, stops=()) -> list[str]:
    """The tool's command line: pcapng (dumpcap) or pcap (tcpdump, packet
    by packet: ``-U``, ``--immediate-mode``) on stdout."""
    stops = dict(stops)
    if kind == "dumpcap":
        cmd = [path, *(["-f", bpf] if bpf else [])]     # before -i: for every interface
        for i in interfaces:
            cmd += ["-i", i]
        cmd += ["-w", "-"]
        if "duration" in stops:
            cmd += ["-a", f"duration:{stops['duration']:g}"]
    else:
        if len(interfaces) > 1:
            raise CaptureError("tcpdump captures on one interface: install dumpcap (Wireshark) "
                               "for several -i, or use -i any")
        cmd = [path, "-i", interfaces[0], "-U", "--immediate-mode", "-w", "-"]
    if "packets" in stops:
        cmd += ["-c", str(int(stops["packets"]))]
    if kind != "dumpcap" and bpf:
        cmd.append(bpf)
    return cmd


class LiveCapture:
    """The capture tool running, its output as :attr:`stream` (a
    :class:`PipeInput`); a context manager that stops and reaps it.

    :attr:`interrupted`: Ctrl-C came (the tool was stopped, the pass goes
    on to the end of what it wrote). :meth:`report` adds what the tool said
    (drops, a failure) to a result."""

    def __init__(self, interfaces, bpf=None, stops=(), write=None, tool="auto",
                 before_read=None):
        self.interfaces, self.bpf, self.stops = list(interfaces), bpf, dict(stops)
        self.kind, path = find_tool(tool or "auto")
        self.command = tool_command(self.kind, path, self.interfaces, bpf, stops)
        self.write, self.before_read = write, before_read
        self.interrupted = self.stopping = False
        self.proc = self.stream = self._tee = self._timer = None
        self._old_handler = None
        self.stderr: deque = deque(maxlen=40)

    @property
    def label(self) -> str:
        return ", ".join(self.interfaces)

    def __enter__(self):
        if self.write:
            try:
                self._tee = open(self.write, "wb", buffering=0)
            except OSError as e:
                raise CaptureError(f"cannot write {self.write}: {e.strerror or e}") from None
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self._said = threading.Thread(target=self._read_stderr, daemon=True)
        self._said.start()
        limit = self.stops.get("filesize")
        self.stream = PipeInput(self.proc.stdout.fileno(), f"<live: {self.label}>",
                                tee=self._tee, before_read=self.before_read,
                                limit=None if limit is None else limit * KB,
                                on_limit=self.stop)
        if "duration" in self.stops and self.kind != "dumpcap":
            self._timer = threading.Timer(self.stops["duration"], self.stop)
            self._timer.daemon = True
            self._timer.start()
        if threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc):
        if self._old_handler is not None:
            signal.signal(signal.SIGINT, self._old_handler)
            self._old_handler = None
        if self._timer is not None:
            self._timer.cancel()
        self.stop()
        try:
            self.proc.wait(timeout=3 * GRACE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        if self._tee is not None:
            self._tee.close()

    def _on_sigint(self, signum, frame):
        if self.interrupted:
            raise KeyboardInterrupt          # the second Ctrl-C: stop now
        self.interrupted = True
        self.stop()

    def stop(self):
        """Ask the tool to end (SIGINT: it writes out what it holds); SIGTERM,
        then SIGKILL if it does not within :data:`GRACE` seconds each."""
        proc = self.proc
        if proc is None or self.stopping or proc.poll() is not None:
            return
        self.stopping = True
        proc.send_signal(signal.SIGINT)

        def insist():
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    proc.wait(timeout=GRACE)
                    return
                except subprocess.TimeoutExpired:
                    proc.send_signal(sig)
        threading.Thread(target=insist, daemon=True).start()

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    def failure(self) -> str | None:
        """Why the tool failed (it ended with a non-zero status), or None."""
        try:
            status = self.proc.wait(timeout=3 * GRACE)
        except subprocess.TimeoutExpired:
            return None
        if status in (0, -signal.SIGINT) or (self.stopping and status < 0):
            return None
        self._said.join(timeout=GRACE)
        said = []               # what it said first, up to its first empty line
        for line in self.stderr:
            if line.startswith(("Capturing on", "File:", "tcpdump: listening on")):
                continue
            if not line.strip() and said or len(said) == 3:
                break
            if line.strip():
                said.append(line.strip())
        said = " ".join(said)
        msg = f"cannot capture on {self.label} with {self.kind} (exit status {status})"
        msg += f": {said}" if said else ""
        if re.search(r"(?i)permission|not permitted", said):
            msg += f"; {PERMISSION_HINT}"
        return msg

    def dropped(self) -> int:
        """Packets the tool says the kernel or it dropped."""
        n = 0
        for line in self.stderr:
            m = re.search(r"(\d+) packets? dropped by (kernel|interface)", line)
            if m:
                n += int(m.group(1))
            m = re.search(r"received/dropped on interface .*: \d+/(\d+)", line)
            if m:
                n += int(m.group(1))
        return n

    def report(self, result) -> None:
        """What the tool said, into ``result``: a failure or drops as
        warnings; Ctrl-C as the result's interruption."""
        problem = self.failure()
        if problem:
            result.warnings.append(problem)
            result.source_problems += 1
        drops = self.dropped()
        if drops:
            text = (f"{self.kind} reports {drops} packet(s) dropped on {self.label}: "
                    f"the capture is missing them")
            result.warnings.append(text)
            result.source_problems += 1
            result.expert.report("capture.dropped", text)
        if self.interrupted and not result.interrupted:
            result.interrupted = True
            result.warnings.append("interrupted: results cover the frames captured so far")
