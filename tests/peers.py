"""Real DICOM peers and packet capture on loopback, for tests and scripts.

Everything here talks to 127.0.0.1 only.  The helpers fall into three groups:

* **Ports / sockets** -- :func:`free_port`, :func:`port_is_free`,
  :func:`wait_listening`, :func:`wait_connections_closed`.  The two ``wait_*``
  helpers read ``/proc/net/tcp`` instead of probing with ``connect()``, so
  waiting never adds stray TCP connections to a capture.
* **Capture** -- :func:`capture` (a context manager around ``tcpdump``),
  :func:`capture_ports` (several ports, or any tcpdump filter),
  :func:`can_capture` and :func:`require_capture` (``pytest.skip`` when
  capturing is impossible, e.g. not root or no tcpdump).
* **Peers** -- a pynetdicom SCP (:func:`start_scp` / :func:`stop_scp`) and
  DCMTK command line tools (:func:`run_storescu`, :func:`start_storescp`,
  :func:`start_dcmtk` and :func:`run_dcmtk` for any other server / client,
  :func:`stop_process`).

Typical use::

    port = free_port()
    server = start_scp(port)
    try:
        with capture("out.pcap", port) as cap:
            ...                      # talk DICOM to 127.0.0.1:port
    finally:
        stop_scp(server)
    print(cap.captured, cap.dropped)

Every subprocess is started with a timeout and is killed at interpreter exit
if a caller forgot to stop it.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

LOOPBACK = "127.0.0.1"

# Processes started by this module; killed at exit as a safety net.
_PROCS: set[subprocess.Popen] = set()


class CaptureError(RuntimeError):
    """tcpdump is missing, cannot capture, or lost packets."""


# --------------------------------------------------------------------------
# Ports and socket state
# --------------------------------------------------------------------------

def _below_ephemeral() -> tuple[int, int]:
    """Ports below the kernel's ephemeral range (where every client's source
    port is drawn; 32768 up by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            first = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    top = min(first, 32768)
    return (10000 if top > 12000 else 1024), top


# Servers' ports come from below the ephemeral range, a share of it for each
# pytest-xdist worker: no other test process's connection can use the port
# or match a capture's "tcp port P".
_PORTS_FROM, _PORTS_TO = _below_ephemeral()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is unused right now, in this test
    process's share of the ports below the ephemeral range."""
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0) % count
    share = (_PORTS_TO - _PORTS_FROM) // count
    low = _PORTS_FROM + index * share
    for _ in range(200):
        port = random.randrange(low, low + share)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {low}-{low + share - 1}")


def port_is_free(port: int) -> bool:
    """True if a server could bind 127.0.0.1:*port* (with SO_REUSEADDR,
    like pynetdicom does, so leftover TIME_WAIT sockets don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


# /proc/net/tcp state codes (include/net/tcp_states.h)
_LISTEN = "0A"
_CLOSED_ENOUGH = {"06", "07", _LISTEN}  # TIME_WAIT, CLOSE, LISTEN


def _tcp_states(port: int) -> list[str]:
    """States of all IPv4/IPv6 TCP sockets whose local or remote port is
    *port*.  Returns [] if /proc is unavailable."""
    states = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            ports = (int(local.rsplit(":", 1)[1], 16),
                     int(remote.rsplit(":", 1)[1], 16))
            if port in ports:
                states.append(state)
    return states


def wait_listening(port: int, timeout: float = 10.0,
                   proc: subprocess.Popen | None = None) -> None:
    """Wait until something listens on TCP *port*.

    Uses /proc/net/tcp (no packets); falls back to a connect() probe when
    /proc is not available.  If *proc* exits meanwhile, fail early.
    """
    use_proc = Path("/proc/net/tcp").exists()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited (rc={proc.returncode}) "
                               f"before listening on port {port}")
        if use_proc:
            if _LISTEN in _tcp_states(port):
                return
        else:
            with contextlib.suppress(OSError), \
                    socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {LOOPBACK}:{port} "
                       f"after {timeout}s")


def wait_connections_closed(port: int, timeout: float = 10.0) -> bool:
    """Wait until no TCP connection on *port* is still open or half-closed
    (TIME_WAIT counts as closed: both FINs and the last ACK are on the wire).
    Returns False on timeout instead of raising."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s in _CLOSED_ENOUGH for s in _tcp_states(port)):
            return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------
# Packet capture (tcpdump)
# --------------------------------------------------------------------------

@dataclasses.dataclass
class CaptureResult:
    """Filled in when the :func:`capture` block exits."""
    path: Path
    port: int
    captured: int | None = None   # "N packets captured" (= in the file)
    received: int | None = None   # "N packets received by filter"
    dropped: int | None = None    # "N packets dropped by kernel"
    stderr: str = ""
    ports: list[int] = dataclasses.field(default_factory=list)  # all ports


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM,
          timeout: float = 5.0) -> None:
    """Send *sig*, wait up to *timeout*, then SIGKILL.  Never hangs."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    _PROCS.discard(proc)


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a process started by this module (SIGTERM, then SIGKILL)."""
    _stop(proc, signal.SIGTERM, timeout)


@atexit.register
def _cleanup() -> None:
    for proc in list(_PROCS):
        with contextlib.suppress(Exception):
            _stop(proc, signal.SIGKILL, 2.0)


@contextlib.contextmanager
def capture(path: str | os.PathLike, port: int, *, iface: str = "lo",
            settle: float = 0.3, close_timeout: float = 10.0,
            start_timeout: float = 10.0) -> Iterator[CaptureResult]:
    """Capture ``tcp port PORT`` on loopback to the pcap file *path*.

    Starts tcpdump, waits until it reports "listening on", and yields a
    :class:`CaptureResult`.  On exit it waits (up to *close_timeout*) until
    all TCP connections on *port* are closed, so the file holds complete
    SYN..FIN sessions, sleeps *settle* seconds, stops tcpdump with SIGINT
    (which flushes the file) and fills in the packet counters.

    Raises :class:`CaptureError` if tcpdump is missing or cannot capture
    (not root, bad output path...), or -- when the block itself succeeded --
    if packets were dropped by the kernel or lost before reaching the file.
    """
    with _capture(path, f"tcp port {int(port)}", [int(port)], iface=iface,
                  settle=settle, close_timeout=close_timeout,
                  start_timeout=start_timeout) as result:
        yield result


@contextlib.contextmanager
def capture_ports(path: str | os.PathLike, ports: Sequence[int] = (), *,
                  bpf: str | None = None, iface: str = "lo",
                  settle: float = 0.3, close_timeout: float = 10.0,
                  start_timeout: float = 10.0) -> Iterator[CaptureResult]:
    """Like :func:`capture`, for several TCP *ports* at once (e.g. a C-MOVE
    SCP and its move destination): captures ``tcp port P1 or tcp port P2
    ...``, or the tcpdump filter expression *bpf* if given, and on exit waits
    until the connections on every one of *ports* are closed.  The result's
    ``port`` is the first port, ``ports`` all of them."""
    ports = [int(p) for p in ports]
    if bpf is None:
        if not ports:
            raise ValueError("capture_ports needs ports or a bpf expression")
        bpf = " or ".join(f"tcp port {p}" for p in ports)
    with _capture(path, bpf, ports, iface=iface, settle=settle,
                  close_timeout=close_timeout,
                  start_timeout=start_timeout) as result:
        yield result


@contextlib.contextmanager
def _capture(path, bpf: str, ports: list[int], *, iface: str, settle: float,
             close_timeout: float,
             start_timeout: float) -> Iterator[CaptureResult]:
    """The body of :func:`capture` / :func:`capture_ports`: tcpdump with the
    filter expression *bpf*; on exit wait for the connections on *ports*."""
    exe = shutil.which("tcpdump")
    if exe is None:
        raise CaptureError("tcpdump not found on PATH")
    path = Path(path)
    # --immediate-mode: without it libpcap's TPACKET_V3 ring hands packets
    #   over in blocks (up to 1 s late) and packets still in the current
    #   block when SIGINT arrives are silently lost -- short captures came
    #   out empty or truncated.
    # -U: write each packet to the file at once; -B: 64 MiB kernel buffer (4 MiB
    # overflowed under load during multi-MB transfers);
    # -s 0: whole packets; -n: never resolve names (no DNS traffic).
    cmd = [exe, "-i", iface, "--immediate-mode", "-U", "-s", "0",
           "-B", "65536", "-n", "-w", str(path), bpf]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, errors="replace")
    _PROCS.add(proc)
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:  # read stderr continuously so the pipe never fills
        for line in proc.stderr:
            lines.append(line)
            if "listening on" in line:
                ready.set()
        ready.set()  # EOF: tcpdump exited

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    ready.wait(start_timeout)
    if not any("listening on" in line for line in lines):
        _stop(proc, signal.SIGKILL)
        reader.join(2)
        raise CaptureError(f"tcpdump did not start capturing on {iface} "
                           f"(needs root or CAP_NET_RAW): "
                           f"{''.join(lines).strip() or 'no output'}")

    result = CaptureResult(path=path, port=ports[0] if ports else 0,
                           ports=list(ports))
    ok = False
    try:
        yield result
        ok = True
    finally:
        deadline = time.monotonic() + close_timeout
        for p in ports:
            wait_connections_closed(
                p, max(0.0, deadline - time.monotonic()))
        time.sleep(settle)
        _stop(proc, signal.SIGINT)
        reader.join(5)
        result.stderr = "".join(lines)
        for key in ("captured", "received", "dropped"):
            m = re.search(rf"(\d+) packets? {key}", result.stderr)
            if m:
                setattr(result, key, int(m.group(1)))
    if ok and result.dropped:
        raise CaptureError(f"kernel dropped {result.dropped} packets")
    # On lo the kernel filter sees every packet twice (out + in) and libpcap
    # keeps one copy, so anything short of received/2 was lost on the way.
    if (ok and iface == "lo" and None not in (result.captured, result.received)
            and result.captured * 2 < result.received):
        raise CaptureError(f"tcpdump wrote {result.captured} of "
                           f"{result.received // 2} packets")


@functools.lru_cache(maxsize=None)
def _capture_problem() -> str | None:
    """None if a short real capture works, else the reason why not."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with capture(Path(tmp) / "probe.pcap", free_port(), settle=0,
                         close_timeout=0, start_timeout=5):
                pass
        except (CaptureError, OSError) as exc:
            return str(exc)
    return None


def can_capture() -> bool:
    """True if tcpdump can capture on loopback here (result is cached)."""
    return _capture_problem() is None


def require_capture() -> None:
    """In a pytest test: skip it (with the reason) unless capture works."""
    problem = _capture_problem()
    if problem is not None:
        import pytest  # lazy: the module also serves plain scripts
        pytest.skip(f"cannot capture packets: {problem}")


# --------------------------------------------------------------------------
# pynetdicom SCP
# --------------------------------------------------------------------------

def start_scp(port: int, ae_title: str = "STORESCP",
              find_responses=(), require_called_aet: bool = False,
              timeout: float = 30.0):
    """Start a pynetdicom SCP on 127.0.0.1:*port* in the background.

    Supports Verification, every storage SOP class (implicit LE, explicit
    LE, explicit BE and deflated explicit LE) and Patient/Study Root C-FIND.
    Each C-FIND answers with *find_responses* -- a list of identifier
    datasets, or a callable taking the request identifier and returning
    them -- one Pending response each, then Success.  With
    *require_called_aet* the association is rejected unless the called AE
    title equals *ae_title*.

    Returns the pynetdicom server; ``server.received`` lists the datasets
    stored so far (with ``file_meta``).  Stop it with :func:`stop_scp`.
    """
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import (
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind, Verification)
    from pydicom.uid import (DeflatedExplicitVRLittleEndian,
                             ExplicitVRBigEndian, ExplicitVRLittleEndian,
                             ImplicitVRLittleEndian)

    syntaxes = [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian]
    ae = AE(ae_title)
    ae.require_called_aet = require_called_aet
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_supported_context(Verification, syntaxes)
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, syntaxes)
    for uid in (PatientRootQueryRetrieveInformationModelFind,
                StudyRootQueryRetrieveInformationModelFind):
        ae.add_supported_context(uid, syntaxes)

    received: list = []

    def on_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    def on_find(event):
        items = (find_responses(event.identifier) if callable(find_responses)
                 else find_responses)
        for ds in items:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    server = ae.start_server(
        (LOOPBACK, port), block=False,
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_C_FIND, on_find)])
    server.received = received
    return server


def stop_scp(server) -> None:
    """Stop a server from :func:`start_scp` (closes listener and threads)."""
    server.shutdown()


# --------------------------------------------------------------------------
# DCMTK command line tools
# --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
@functools.lru_cache(maxsize=None)
def dcmtk_tool(name: str) -> str:
    """Absolute path of the DCMTK program *name* (e.g. ``storescu``).

    pynetdicom installs console scripts with the same names (storescu,
    storescp, echoscu, findscu...) that may come first on PATH, so each
    candidate is checked with ``--version`` for the "dcmtk" banner.
    """
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    for d in [*dirs, "/usr/bin", "/usr/local/bin"]:
        exe = os.path.join(d, name)
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            continue
        with open(exe, "rb") as f:
            if f.read(2) == b"#!":        # a script (pynetdicom's): DCMTK's are binaries
                continue
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([exe, "--version"], capture_output=True,
                                 text=True, timeout=10)
            if "dcmtk" in (out.stdout + out.stderr).lower():
                return exe
    raise FileNotFoundError(f"DCMTK '{name}' not found (apt install dcmtk)")


def have_dcmtk(*names: str) -> bool:
    """True if all DCMTK programs *names* (default storescu) are present."""
    try:
        for name in names or ("storescu",):
            dcmtk_tool(name)
    except FileNotFoundError:
        return False
    return True


def run_storescu(port: int, files: Sequence[str | os.PathLike],
                 extra_args: Sequence[str] = (), *, aet: str = "STORESCU",
                 aec: str = "STORESCP", timeout: float = 60.0,
                 check: bool = True) -> subprocess.CompletedProcess:
    """Send *files* with DCMTK storescu to 127.0.0.1:*port* in one
    association.  Raises RuntimeError on a non-zero exit if *check*."""
    cmd = [dcmtk_tool("storescu"), "-aet", aet, "-aec", aec,
           "-to", "10", "-ta", "10", "-td", "30", *extra_args,
           LOOPBACK, str(port), *map(str, files)]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, errors="replace", timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"storescu failed (rc={res.returncode}):\n"
                           f"{res.stdout}{res.stderr}")
    return res


def start_storescp(port: int, outdir: str | os.PathLike,
                   extra: Sequence[str] = ("+B", "+uf"), *,
                   aet: str = "STORESCP",
                   ready_timeout: float = 10.0) -> subprocess.Popen:
    """Start DCMTK storescp on *port*, writing received objects to *outdir*.

    Default *extra*: ``+B`` (--bit-preserving: write the data set exactly as
    received; note ``-B`` is --normal, i.e. conversions allowed) and ``+uf``
    (unique file names, so repeated instances are not overwritten).

    Note: DCMTK 3.6.7 storescp has no bind-address option and listens on all
    interfaces; only local peers are ever pointed at it.  Returns once it is
    listening; stop it with :func:`stop_process`.  Its log is ``proc.log``.
    """
    os.makedirs(outdir, exist_ok=True)
    return start_dcmtk("storescp", ["-aet", aet, "-od", str(outdir), "-dhl", "-ta", "10",
                                    "-td", "30", *extra, str(port)], port,
                       ready_timeout=ready_timeout)


def start_dcmtk(tool: str, args: Sequence[str], port: int, *,
                ready_timeout: float = 10.0,
                cwd: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start the DCMTK server program *tool* (e.g. ``dcmqrscp``) with *args*
    and wait until it listens on *port* (which *args* must make it use).

    Like :func:`start_storescp`: stdout and stderr go to ``proc.log`` (a
    temporary file), the process is killed at exit if still running, and it
    is stopped with :func:`stop_process`.  Raises RuntimeError with the log
    if it does not start.
    """
    if not port_is_free(port):
        raise RuntimeError(f"port {port} is already in use")
    log = tempfile.TemporaryFile(mode="w+", prefix=f"{tool}-")
    cmd = [dcmtk_tool(tool), *map(str, args)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, cwd=cwd)
    proc.log = log
    _PROCS.add(proc)
    try:
        wait_listening(port, ready_timeout, proc)
    except (RuntimeError, TimeoutError) as exc:
        stop_process(proc)
        log.seek(0)
        raise RuntimeError(f"{tool} did not start: {exc}\n{log.read()}")
    return proc


def run_dcmtk(tool: str, args: Sequence[str], *, timeout: float = 60.0,
              check: bool = True,
              cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run the DCMTK client program *tool* (echoscu, findscu, movescu,
    getscu...) with *args* to completion.  Raises RuntimeError with its
    output on a non-zero exit if *check*."""
    cmd = [dcmtk_tool(tool), *map(str, args)]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, errors="replace", timeout=timeout, cwd=cwd)
    if check and res.returncode != 0:
        raise RuntimeError(f"{tool} failed (rc={res.returncode}):\n"
                           f"{res.stdout}{res.stderr}")
    return res
