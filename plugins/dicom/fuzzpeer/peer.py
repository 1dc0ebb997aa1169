"""The fuzzer's peer side: targets (loopback unless allowed), the exchange
recorded while a case runs, one connection with timeouts, and what the peer
said (:func:`describe`)."""

from __future__ import annotations

import dataclasses
import ipaddress
import select
import socket
import time
from typing import Callable

from dicomwire.specs.dicom import pdu as P
from dicomwire.specs.dicom.command import decode_command
from dicomwire.specs.dicom.tables import PDU_TYPES, abort_text, command_name, reject_text

VERDICTS = ("ok", "rejected", "silent", "reset", "malformed", "hang", "dead", "unhealthy")
#: Verdicts worth a file and a non-zero exit: the peer crashed, stopped
#: serving, failed a valid C-ECHO or answered garbage.  A reset is listed
#: but not failing: peers that close a socket with unread bytes (our
#: rejected garbage) make their kernel send a RST.
FAILING = ("malformed", "hang", "dead", "unhealthy")
VERDICT_MEANING = {
    "ok": "answered as valid traffic is answered; probe passed",
    "rejected": "refused the case (A-ASSOCIATE-RJ, A-ABORT or close); probe passed",
    "silent": "no answer within the timeout, connection left open; probe passed",
    "reset": "reset the TCP connection (RST) during the case; probe passed",
    "malformed": "answered with a PDU that does not parse",
    "hang": "the probe got no answer in time: the peer stopped serving",
    "dead": "the probe was refused: nothing listens any more (crash?)",
    "unhealthy": "the probe failed otherwise (rejected, aborted, C-ECHO failed)",
}


@dataclasses.dataclass
class Options:
    count: int = 200
    time_limit: float = 300.0
    seed: int | None = None
    timeout: float = 2.0            # per answer awaited in a case
    probe_timeout: float = 5.0
    recover: float = 60.0           # wait this long for a hung / unhealthy peer
    kinds: list | None = None
    cases: list | None = None       # only these case numbers
    outdir: str = "dicomwire-fuzz"
    save_all: bool = False
    called: str = "ANY-SCP"
    calling: str = "DICOMWIRE"
    progress: Callable | None = None


class TargetError(ValueError):
    """A target that is malformed, or not loopback without permission."""


class PeerDown(RuntimeError):
    """The target fails the probe before anything was sent to it."""


# ===========================================================================
# Target
# ===========================================================================


@dataclasses.dataclass(frozen=True)
class Target:
    host: str                 # as given
    addr: str                 # numeric address connected to
    port: int
    family: int

    def __str__(self):
        return f"[{self.addr}]:{self.port}" if self.family == socket.AF_INET6 \
            else f"{self.addr}:{self.port}"


def _split(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"target {text!r} is not HOST:PORT (IPv6: [ADDR]:PORT)")
    return host, int(port)


def is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%")[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def resolve_target(text: str, allow_remote: bool = False) -> Target:
    """``HOST:PORT`` -> :class:`Target`.  Addresses are taken literally and
    ``localhost`` is 127.0.0.1; other names go through the system resolver.
    A target outside 127.0.0.0/8 and ::1 needs ``allow_remote``; the check
    happens before any packet is sent to it."""
    host, port = _split(text)
    if host == "localhost":
        addr, family = "127.0.0.1", socket.AF_INET
    else:
        try:
            ip = ipaddress.ip_address(host)
            addr = str(ip)
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        except ValueError:
            try:
                info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                raise TargetError(f"cannot resolve {host!r}: {e.strerror}") from None
            family, addr = info[0][0], info[0][4][0]
    if not is_loopback(addr) and not allow_remote:
        raise TargetError(
            f"{text} ({addr}) is not a loopback address: fuzzing sends malformed traffic "
            f"that can crash or disturb the peer. Fuzz only systems you are responsible "
            f"for, never production or clinical ones; to go ahead, add --allow-remote")
    return Target(host, addr, port, family)


# ===========================================================================
# Exchanges: what crossed the wire, for reports and pcapng
# ===========================================================================


@dataclasses.dataclass
class Event:
    t: int                    # ns since the epoch
    side: int                 # 0: us (client), 1: the peer
    what: str                 # data, syn, fin, rst, refused
    data: bytes = b""
    note: str = ""


@dataclasses.dataclass
class Exchange:
    label: str
    client: tuple = ("127.0.0.1", 0)
    server: tuple = ("127.0.0.1", 0)
    events: list = dataclasses.field(default_factory=list)

    def add(self, side, what, data=b"", note=""):
        self.events.append(Event(time.time_ns(), side, what, bytes(data), note))


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _answer(pdu: bytes) -> bool:
    """Does this PDU answer a request: not a P-DATA-TF, or one whose last PDV
    ends a command (PS3.8 E.2)?"""
    if pdu[0] != 4:
        return True
    last = None
    try:
        for _cid, mch, _frag, _off in P.iter_pdvs(memoryview(pdu)[P.PDU_HEADER_SIZE:]):
            last = mch
    except P.SpecError:
        return True
    return last is not None and last & 3 == 3


class Conn:
    """One TCP connection to the target with every step bounded in time;
    everything sent and received is logged in :attr:`ex`."""

    MAX_RECEIVED = 16 << 20          # a peer sending endless bytes stops being read
    DRAIN = 0.05

    def __init__(self, target: Target, label: str, timeout: float):
        self.target, self.timeout = target, timeout
        self.ex = Exchange(label, server=(target.addr, target.port))
        self.sock = None
        self.buf = b""
        self.received = 0
        self.state = "new"           # open, closed (peer FIN), reset, refused, timeout

    def open(self) -> str:
        s = socket.socket(self.target.family, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect((self.target.addr, self.target.port))
        except ConnectionRefusedError:
            # The kernel kept the port it picked; on loopback the address is
            # the target's own.
            addr, port = s.getsockname()[:2]
            self.ex.client = (self.target.addr if is_loopback(self.target.addr) else addr, port)
            s.close()
            self.ex.add(0, "refused")
            self.state = "refused"
            return self.state
        except (socket.timeout, OSError):
            s.close()
            self.state = "timeout"
            return self.state
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.ex.client = s.getsockname()[:2]
        self.ex.add(0, "syn")
        self.state = "open"
        return self.state

    def send(self, data: bytes, note: str = "", chunk: int = 0) -> bool:
        """Send ``data`` (in ``chunk``-byte pieces if > 0); False when the
        connection is no longer usable (reset, closed, or the peer stopped
        reading for longer than the timeout)."""
        if self.state != "open":
            return False
        pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
        for i, piece in enumerate(pieces):
            try:
                self.sock.sendall(piece)
            except socket.timeout:
                self.ex.add(0, "data", piece, note + " [send stalled: the peer stopped reading]")
                self.state = "stalled"
                return False
            except (ConnectionResetError, BrokenPipeError):
                self._reset()
                return False
            self.ex.add(0, "data", piece, note if i == 0 else "")
            if chunk:
                time.sleep(0.0005)   # separate segments, read separately by the peer
                self._recv(0)        # keep what the peer says meanwhile (read() takes it)
                if self.state != "open":
                    return False
        return True

    def _reset(self):
        if self.state not in ("reset", "closed"):
            self.ex.add(1, "rst")
        self.state = "reset"

    def pdus(self) -> list[bytes]:
        """Take the complete PDUs received so far."""
        out = []
        while len(self.buf) >= P.PDU_HEADER_SIZE:
            _t, _r, length = P.PDU_HEADER.unpack_from(self.buf)
            end = P.PDU_HEADER_SIZE + length
            if len(self.buf) < end:
                break
            out.append(self.buf[:end])
            self.buf = self.buf[end:]
        return out

    def read(self, wait: float) -> list[bytes]:
        """Wait up to ``wait`` s for an answer: a PDU other than P-DATA-TF, or
        a P-DATA-TF that ends a command (0: take only what is there now).
        Returns the PDUs received, those that arrived while sending
        included.  Sets :attr:`state` on close or reset."""
        got = []
        deadline = time.monotonic() + wait
        while True:
            got += self.pdus()
            if self.state != "open" or (got and _answer(got[-1])):
                break
            left = deadline - time.monotonic()
            # Past the deadline only what is already there is taken, for at
            # most DRAIN seconds: a peer sending without pause cannot hold us.
            if left < -self.DRAIN or not self._recv(max(left, 0)):
                break
        return got

    def drain(self):
        """Take what the peer has sent so far, without waiting."""
        self.read(0)

    def _recv(self, timeout: float) -> bool:
        """Receive what arrives within ``timeout`` s into the buffer; False
        when nothing came (or the connection ended)."""
        try:
            ready, _, _ = select.select([self.sock], [], [], timeout)
        except (OSError, ValueError):
            return False
        if not ready:
            return False
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            self._reset()
            return False
        except (socket.timeout, OSError):
            return False
        if not data:
            self.ex.add(1, "fin")
            self.state = "closed"
            return False
        if _QUICKACK is not None:
            # Peers that write a PDU header and its body separately (DCMTK)
            # would otherwise wait for our delayed ACK (Nagle): 40 ms a PDU.
            self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        self.received += len(data)
        if self.received > self.MAX_RECEIVED:
            self.state = "flooding"
            return False
        self.ex.add(1, "data", data)
        self.buf += data
        return True

    def close(self):
        if self.sock is None:
            return
        if self.state == "open":
            self.drain()             # unread data would turn our FIN into a RST
        if self.state in ("open", "closed", "stalled", "flooding"):
            self.ex.add(0, "fin")
        try:
            self.sock.close()
        finally:
            self.sock = None


# ===========================================================================
# What the peer said
# ===========================================================================


def describe(pdu: bytes) -> tuple[str, str]:
    """``(class, text)`` of a PDU from the peer: class is ``ac``, ``rj``,
    ``abort``, ``rp``, ``data``, ``other`` or ``malformed``."""
    try:
        p = P.parse_pdu(pdu)
    except P.SpecError as e:
        return "malformed", f"malformed {PDU_TYPES.get(pdu[0], f'type 0x{pdu[0]:02X}')} " \
                            f"PDU ({len(pdu)} bytes): {e}"
    b = p.body
    if p.pdu_type == 2:
        res = [(it.body.context_id, it.body.result) for it in b.variable_items
               if it.item_type == 0x21]
        ok = sum(1 for _, r in res if r == 0)
        return "ac", f"A-ASSOCIATE-AC ({ok} of {len(res)} context(s) accepted)"
    if p.pdu_type == 3:
        return "rj", f"A-ASSOCIATE-RJ ({reject_text(b.result, b.source, b.reason)})"
    if p.pdu_type == 7:
        return "abort", f"A-ABORT ({abort_text(b.source, b.reason)})"
    if p.pdu_type == 6:
        return "rp", "A-RELEASE-RP"
    if p.pdu_type == 4:
        names = []
        for pdv in b.pdvs:
            if pdv.message_control_header & 3 != 3:
                names.append("command fragment" if pdv.message_control_header & 1
                             else "data set fragment")
                continue
            # A peer's command set is hostile input too: any value type.
            fields, _e, problems = decode_command(pdv.fragment)
            cf, st = fields.get("CommandField"), fields.get("Status")
            name = command_name(cf) if isinstance(cf, int) else "command without one Command Field"
            names.append(name + (f" 0x{st:04X}" if isinstance(st, int) else "")
                         + (" (malformed command)" if problems else ""))
        return "data", "P-DATA-TF: " + ", ".join(names)
    return "other", PDU_TYPES[p.pdu_type]


# ===========================================================================
