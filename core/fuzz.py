"""``dicomwire fuzz``: association-level fuzzing of a DICOM SCP, and the
spec-driven fuzzing library (re-exported from
:mod:`dicomwire.specs.dicom.fuzz`: generators, field-aware mutators,
hypothesis strategies).

A campaign runs numbered cases against one peer.  Each case opens a TCP
connection, sends its PDUs (an A-ASSOCIATE-RQ, possibly mutated, then
P-DATA-TF / release PDUs, possibly mutated or out of order), reads what comes
back with timeouts and closes.  Then a *probe* (a valid association for
Verification, a C-ECHO, a release, built with the spec pack) tells whether
the peer still serves.  Each case gets a verdict:

=========  ==============================================================
ok         answered as valid traffic is answered; probe passed
rejected   refused the case: A-ASSOCIATE-RJ, A-ABORT or close; probe passed
silent     no answer within the timeout, connection kept open (a peer
           waiting for bytes a broken length promised); probe passed
reset      the peer reset the connection (RST) during the case; probe passed
malformed  the peer answered with a PDU that does not parse (PS3.8 9.3)
hang       the probe got no answer in time: the peer stopped serving
dead       the probe was refused: nothing listens any more (crash)
unhealthy  the probe failed otherwise (rejected, aborted, C-ECHO failed)
=========  ==============================================================

:data:`FAILING` verdicts are written as pcapng files (the case's exchange and
the probe's, TCP/IP frames synthesised on the real addresses and ports),
which ``dicomwire show`` and Wireshark decode and ``--replay`` resends.

Safety: only loopback targets unless ``allow_remote``; every socket
operation has a timeout; campaigns are bounded in cases and time.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import os
import random
import select
import socket
import struct
import sys
import time
import warnings
from collections import Counter
from typing import Callable

from dicomwire.specs.dicom import fuzz as sf
from dicomwire.specs.dicom import pdu as P
from dicomwire.specs.dicom.command import decode_command
from dicomwire.specs.dicom.fuzz import (  # noqa: F401  (the library API, re-exported)
    MUTATORS,
    Choices,
    DrawChoices,
    Field,
    Mutation,
    RandomChoices,
    ae_titles,
    associate_rqs,
    associations,
    command_set,
    field_map,
    fragments_out_of_order,
    mutate,
    mutated_pdus,
    oversize_pdata,
    patch,
    pdata_pdus,
    resize,
    uids,
    valid_pdus,
)
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
# Cases
# ===========================================================================


@dataclasses.dataclass
class Session:
    """What a case knows while it runs: the contexts it proposed and what
    the peer accepted, the peer's maximum PDU length."""
    proposed: dict = dataclasses.field(default_factory=dict)       # id -> abstract syntax
    accepted: dict = dataclasses.field(default_factory=dict)       # id -> transfer syntax
    max_pdu: int = 16384
    associated: bool = False
    message_id: int = 0

    def next_id(self) -> int:
        self.message_id += 1
        return self.message_id

    def context(self, abstract: str | None = None) -> int:
        for cid, sop in self.proposed.items():
            if cid in self.accepted and (abstract is None or sop == abstract):
                return cid
        return 1


@dataclasses.dataclass
class Step:
    label: str
    build: Callable                  # Session -> (list of PDU bytes, note)
    expect: bool = True              # wait for an answer
    needs_association: bool = False  # only once the peer accepted
    chunk: int = 0                   # >0: send in pieces of this many bytes


@dataclasses.dataclass
class Case:
    index: int
    kind: str
    steps: list


def _fixed(pdus, note=""):
    return lambda s: (list(pdus), note)


def _one(c: Choices, mutator, pdu: bytes):
    """A one-PDU step's output: the PDU, or its mutation and what changed."""
    if mutator is None:
        return [pdu], ""
    m = mutator(c, pdu)
    return [m.data], m.note


def _named(name: str, mutator) -> str:
    return name + (" (mutated)" if mutator else "")


def _rq_step(c: Choices, opts, mutator=None, chunk=0) -> Step:
    contexts = sf.presentation_contexts(c)
    fields = sf.associate_rq_fields(c, called=opts.called, calling=opts.calling,
                                    contexts=contexts)
    rq = P.build_pdu("A-ASSOCIATE-RQ", **fields)

    def build(s: Session):
        s.proposed = {cid: sop for cid, sop, _ts in contexts}
        return _one(c, mutator, rq)
    return Step(_named("A-ASSOCIATE-RQ", mutator), build, chunk=chunk)


def _echo_step(c: Choices, mutator=None, chunk=0) -> Step:
    def build(s: Session):
        return _one(c, mutator, sf.pdata((s.context(sf.VERIFICATION), 3,
                                          sf.echo_rq(s.next_id()))))
    return Step(_named("C-ECHO-RQ", mutator), build, needs_association=True, chunk=chunk)


def _store_step(c: Choices, mutator=None) -> Step:
    def build(s: Session):
        cid = next((k for k in s.accepted if s.accepted[k] == sf.IMPLICIT_LE
                    and s.proposed.get(k) in sf.STORAGE_CLASSES), None)
        if cid is None:          # no storage context in Implicit VR LE: echo instead
            return [sf.pdata((s.context(sf.VERIFICATION), 3, sf.echo_rq(s.next_id())))], \
                "no storage context accepted in Implicit VR LE: C-ECHO instead"
        inst = sf.uid(c)
        pdus = sf.message(cid, sf.store_rq(s.next_id(), s.proposed[cid], inst),
                          sf.dataset(c, s.proposed[cid], inst), s.max_pdu or 16384)
        if mutator is None:
            return pdus, ""
        k = c.integer(0, len(pdus) - 1)
        m = mutator(c, pdus[k])
        pdus[k] = m.data
        return pdus, f"PDU {k + 1} of {len(pdus)}: {m.note}"
    return Step(_named("C-STORE-RQ", mutator), build, needs_association=True)


def _release_step(c: Choices, mutator=None, chunk=0) -> Step:
    def build(s: Session):
        return _one(c, mutator, sf.release_rq())
    return Step(_named("A-RELEASE-RQ", mutator), build, needs_association=True, chunk=chunk)


def _only(kind):
    def apply(c, data):
        m = MUTATORS[kind](c, data)
        # A PDU without a field of this kind goes out unchanged, and says so.
        return m if m is not None else Mutation(kind, data, "nothing to mutate: sent as is")
    return apply


#: Kinds that find a field in an A-RELEASE-RQ (no integers, no PDVs there).
_RELEASE_KINDS = ("length_off_by_one", "length_overrun", "length_underrun",
                  "unknown_pdu_type", "reserved_nonzero", "truncated")


def _generic(kind: str, c: Choices, opts) -> list[Step]:
    """A mutation of one PDU of an otherwise valid association: the
    A-ASSOCIATE-RQ, a P-DATA-TF (C-ECHO or C-STORE) or the A-RELEASE-RQ."""
    mut = _only(kind)
    assoc_only = kind in ("uid_value", "ae_title_value", "unknown_item", "item_structure")
    where = "rq" if assoc_only else c.choice(
        ("data",) if kind == "pdv_flags" else
        ("rq", "rq", "data", "data", "release") if kind in _RELEASE_KINDS else
        ("rq", "data"))
    steps = [_rq_step(c, opts, mut if where == "rq" else None)]
    if where == "data":
        steps.append(_store_step(c, mut) if c.boolean() else _echo_step(c, mut))
    steps.append(_echo_step(c))
    steps.append(_release_step(c, mut if where == "release" else None))
    return steps


def _valid(c, opts):
    steps = [_rq_step(c, opts), _echo_step(c)]
    if c.boolean():
        steps.append(_store_step(c))
    return steps + [_release_step(c)]


def _dribble(c, opts):
    n = c.integer(1, 7)
    return [_rq_step(c, opts, chunk=n), _echo_step(c, chunk=n), _release_step(c, chunk=n)]


def _out_of_order(c, opts):
    def build(s: Session):
        cid = s.context()
        data = None
        if c.boolean():
            inst = sf.uid(c)
            sop = s.proposed.get(cid, sf.STORAGE_CLASSES[0])
            data = sf.dataset(c, sop, inst, pixels=c.integer(0, 512))
            cmd = sf.store_rq(s.next_id(), sop, inst)
        else:
            cmd = sf.echo_rq(s.next_id())
        return sf.fragments_out_of_order(c, cid, cmd, data)
    return [_rq_step(c, opts), Step("P-DATA-TF (fragments out of order)", build,
                                    needs_association=True),
            _echo_step(c), _release_step(c)]


def _oversize(c, opts):
    def build(s: Session):
        cid = next((k for k, sop in s.proposed.items()
                    if k in s.accepted and sop in sf.STORAGE_CLASSES), s.context())
        return sf.oversize_pdata(c, cid, s.max_pdu, s.next_id())
    return [_rq_step(c, opts), Step("P-DATA-TF (beyond the maximum length)", build,
                                    needs_association=True),
            _echo_step(c), _release_step(c)]


def _command(c, opts):
    def build(s: Session):
        cmd, note = sf.command_set(c, sf.echo_rq(s.next_id()))
        return [sf.pdata((s.context(sf.VERIFICATION), 3, cmd))], note
    return [_rq_step(c, opts), Step("C-ECHO-RQ (command set mutated)", build,
                                    needs_association=True),
            _echo_step(c), _release_step(c)]


def _pdu_order(c, opts):
    """PDUs the state machine of PS3.8 9.2 does not expect where they come."""
    variant = c.choice(("pdata_first", "release_first", "rp_first", "ac_from_client",
                        "rj_from_client", "rq_twice", "pdata_after_release",
                        "abort_odd", "rp_instead_of_rq", "abort_then_data"))
    note = variant.replace("_", " ")
    echo = sf.pdata((1, 3, sf.echo_rq(1)))
    first = {"pdata_first": echo, "release_first": sf.release_rq(),
             "rp_first": P.build_pdu("A-RELEASE-RP"),
             "ac_from_client": sf.associate_ac(c),
             "rj_from_client": P.build_pdu("A-ASSOCIATE-RJ", result=1, source=1, reason=1)}
    if variant in first:
        return [Step("first PDU", _fixed([first[variant]], note))]
    steps = [_rq_step(c, opts)]
    if variant == "rq_twice":
        steps.append(Step("A-ASSOCIATE-RQ again", _fixed(
            [sf.associate_rq(c, called=opts.called, calling=opts.calling)], note),
            needs_association=True))
    elif variant == "pdata_after_release":
        steps += [_release_step(c), Step("C-ECHO-RQ after release", _fixed([echo], note))]
    elif variant == "abort_odd":
        steps.append(Step("A-ABORT (odd source/reason)", _fixed(
            [sf.abort(c.choice((1, 3, 0xFF)), c.choice((3, 7, 0xFF)))], note),
            needs_association=True))
    elif variant == "rp_instead_of_rq":
        steps += [_echo_step(c), Step("A-RELEASE-RP from the requestor", _fixed(
            [P.build_pdu("A-RELEASE-RP")], note), needs_association=True)]
    else:
        steps.append(Step("A-ABORT then C-ECHO-RQ", _fixed([sf.abort(), echo], note),
                          needs_association=True))
    return steps


def _garbage(c, opts):
    variant = c.choice(("random", "random_after_rq", "http", "tls", "zeros"))
    blob = {"random": c.binary(c.integer(1, 2000)),
            "random_after_rq": c.binary(c.integer(1, 2000)),
            "http": b"GET / HTTP/1.1\r\nHost: pacs\r\n\r\n",
            "tls": bytes.fromhex("16030100a5010000a10303") + c.binary(64),
            "zeros": bytes(c.integer(6, 4096))}[variant]
    note = f"{variant.replace('_', ' ')} ({len(blob)} bytes)"
    step = Step("non-DICOM bytes", _fixed([blob], note),
                needs_association=variant == "random_after_rq")
    return ([_rq_step(c, opts)] if variant == "random_after_rq" else []) + [step]


def _short_send(c, opts):
    """A PDU whose header promises more than is sent; the connection is then
    left open for the timeout, then closed (the peer must cope with EOF)."""
    def build(s: Session):
        pdu = sf.pdata((s.context(), 3, sf.echo_rq(s.next_id())))
        k = c.integer(1, len(pdu) - 1)
        return [pdu[:k]], f"{k} of {len(pdu)} bytes of a P-DATA-TF"
    if c.boolean():
        rq = sf.associate_rq(c, called=opts.called, calling=opts.calling)
        k = c.integer(1, len(rq) - 1)
        return [Step("A-ASSOCIATE-RQ (cut short)",
                     _fixed([rq[:k]], f"{k} of {len(rq)} bytes of an A-ASSOCIATE-RQ"))]
    return [_rq_step(c, opts), Step("P-DATA-TF (cut short)", build, needs_association=True)]


#: Campaign kinds: name -> (builder of the case's steps, description).
KINDS: dict[str, tuple[Callable, str]] = {
    "valid": (_valid, "A valid association: C-ECHO, sometimes a C-STORE, release."),
    "dribble": (_dribble, "A valid association sent 1 to 7 bytes per TCP segment."),
    **{k: ((lambda k: lambda c, o: _generic(k, c, o))(k),
           (f.__doc__ or k).strip().split("\n\n")[0].replace("\n    ", " "))
       for k, f in MUTATORS.items()},
    "fragments_out_of_order": (_out_of_order, "PDV fragments of a message out of order, "
                                              "missing or duplicated (PS3.8 E.2)."),
    "oversize_pdu": (_oversize, "A P-DATA-TF longer than the peer's negotiated maximum "
                                "(PS3.8 D.1)."),
    "command_set": (_command, "A C-ECHO-RQ command set with broken elements (PS3.7 E.1)."),
    "pdu_order": (_pdu_order, "PDUs where the state machine does not expect them "
                              "(PS3.8 9.2)."),
    "garbage": (_garbage, "Bytes that are not DICOM (random, HTTP, TLS, zeros)."),
    "short_send": (_short_send, "A PDU cut short, the connection held open until "
                                "the timeout."),
}


def make_case(index: int, kind: str, seed: int, opts: "Options") -> Case:
    """Case ``index`` of a campaign: its decisions depend only on the seed,
    the index (and what the peer answers), so one case can be rerun alone
    (``--case``)."""
    return Case(index, kind, KINDS[kind][0](RandomChoices(f"{seed}:{index}"), opts))


def kind_order(seed: int, kinds: list[str], count: int) -> list[str]:
    """Every kind in turn, each round shuffled: any count covers the kinds
    evenly."""
    rng = random.Random(f"{seed}:kinds")
    out = []
    while len(out) < count:
        out += rng.sample(kinds, len(kinds))
    return out[:count]


# ===========================================================================
# Running a case, probing
# ===========================================================================


@dataclasses.dataclass
class Probe:
    status: str               # ok, refused, timeout, rejected, aborted, closed, reset, failed
    detail: str
    seconds: float
    exchange: Exchange | None = None


@dataclasses.dataclass
class CaseResult:
    index: int
    kind: str
    notes: list
    sent: list
    reaction: list
    outcome: str              # answered, rejected, silent, reset, refused
    verdict: str = ""
    probe: Probe | None = None
    seconds: float = 0.0
    file: str | None = None
    exchange: Exchange | None = None
    peer_malformed: bool = False     # the peer sent a PDU that does not parse
    recovered: float | None = None   # hang / unhealthy: seconds until a probe passed again

    def as_dict(self) -> dict:
        return {"case": self.index, "kind": self.kind, "verdict": self.verdict,
                "outcome": self.outcome, "mutation": self.notes, "sent": self.sent,
                "peer": self.reaction, "probe": self.probe.status if self.probe else None,
                "probe_detail": self.probe.detail if self.probe else None,
                "recovered_after": None if self.recovered is None else round(self.recovered, 3),
                "seconds": round(self.seconds, 4), "file": self.file}


def run_steps(target: Target, steps: list, opts: "Options", label: str) -> CaseResult:
    """Run a case's steps on one connection; what the peer did decides the
    outcome."""
    t0 = time.monotonic()
    conn = Conn(target, label, opts.timeout)
    sess = Session()
    notes, sent, reaction = [], [], []
    flags = set()
    if conn.open() != "open":
        return CaseResult(0, "", notes, sent, [f"connect: {conn.state}"], "refused",
                          seconds=time.monotonic() - t0, exchange=conn.ex)
    for step in steps:
        if step.needs_association and not sess.associated:
            break
        pdus, note = step.build(sess)
        if note:
            notes.append(f"{step.label}: {note}")
        sent.append(step.label)
        for k, pdu in enumerate(pdus):
            label = (f"{step.label}: {note}" if note else step.label) if k == 0 else \
                f"{step.label} (PDU {k + 1} of {len(pdus)})"
            if not conn.send(pdu, note=label, chunk=step.chunk):
                break
        answers = conn.read(opts.timeout if step.expect else 0)
        for a in answers:
            cls, text = describe(a)
            reaction.append(text)
            flags.add(cls)
            if cls == "ac":
                sess.associated = True
                sess.accepted, sess.max_pdu = sf.negotiated(a)
            elif cls in ("rj", "abort", "rp"):
                sess.associated = False
                if cls == "rp":
                    flags.add("released")
        if conn.state != "open" or flags & {"rj", "abort"}:
            break
        if step.expect and not answers:
            flags.add("silent")
            reaction.append(f"no answer to {step.label} within {opts.timeout:g} s")
            break
    end = conn.state
    conn.close()
    if end == "closed" and "released" in flags:
        end = "released"             # closing after A-RELEASE-RP is the protocol
    if end == "closed":
        reaction.append("closed the connection")
    elif end == "reset":
        reaction.append("reset the connection")
    elif end == "stalled":
        reaction.append(f"stopped reading (send blocked {opts.timeout:g} s)")
    elif end == "flooding":
        reaction.append(f"sent more than {Conn.MAX_RECEIVED >> 20} MiB without pause")
    if flags & {"rj", "abort"}:
        outcome = "rejected"          # a reset after an A-ABORT is the peer's kernel
    elif end == "reset":
        outcome = "reset"
    elif end == "closed":
        outcome = "rejected"
    elif "silent" in flags or end in ("stalled", "flooding"):
        outcome = "silent"
    else:
        outcome = "answered"
    return CaseResult(0, "", notes, sent, _squeeze(reaction), outcome,
                      seconds=time.monotonic() - t0,
                      exchange=conn.ex, peer_malformed="malformed" in flags)


def _squeeze(texts: list[str]) -> list[str]:
    """Repeated answers once, with a count (a peer may send dozens of
    A-ABORTs)."""
    out: list = []
    for t in texts:
        if out and out[-1][0] == t:
            out[-1][1] += 1
        else:
            out.append([t, 1])
    return [t if n == 1 else f"{t} x{n}" for t, n in out]


@functools.lru_cache(maxsize=8)
def _probe_pdus(called: str, calling: str) -> tuple[bytes, bytes, bytes]:
    """The probe's PDUs: A-ASSOCIATE-RQ for Verification in Implicit VR LE,
    C-ECHO-RQ, A-RELEASE-RQ (built once: Construct takes milliseconds)."""
    rq = P.build_pdu("A-ASSOCIATE-RQ", called_ae_title=called, calling_ae_title=calling,
                     variable_items=[
                         P.item(0x10, sf.APPLICATION_CONTEXT),
                         P.item(0x20, context_id=1, sub_items=[
                             P.item(0x30, sf.VERIFICATION), P.item(0x40, sf.IMPLICIT_LE)]),
                         P.item(0x50, sub_items=[
                             P.item(0x51, max_length=16384),
                             P.item(0x52, sf.IMPLEMENTATION_CLASS_UID),
                             P.item(0x55, sf.IMPLEMENTATION_VERSION)])])
    return rq, sf.pdata((1, 3, sf.echo_rq(1))), sf.release_rq()


def probe(target: Target, opts: "Options", label: str = "probe") -> Probe:
    """A valid association for Verification, one C-ECHO and a release,
    built with the spec pack: does the peer still serve?"""
    t0 = time.monotonic()
    conn = Conn(target, label, opts.probe_timeout)

    def done(status, detail):
        conn.close()
        return Probe(status, detail, time.monotonic() - t0, conn.ex)

    if conn.open() != "open":
        return done(conn.state, "connection refused" if conn.state == "refused"
                    else f"no TCP connection within {opts.probe_timeout:g} s")
    for what, pdu, want in zip(("A-ASSOCIATE-RQ", "C-ECHO-RQ", "A-RELEASE-RQ"),
                               _probe_pdus(opts.called, opts.calling), ("ac", "data", "rp")):
        conn.send(pdu, note=f"probe: {what}")
        answers = conn.read(opts.probe_timeout)
        if not answers:
            status = {"open": "timeout", "closed": "closed", "reset": "reset"}.get(
                conn.state, "failed")
            return done(status, f"no answer to {what}" + (
                f" within {opts.probe_timeout:g} s" if status == "timeout" else
                f" (connection {conn.state})"))
        # The last PDU is the answer (read() stops there); fragments may precede it.
        cls, text = describe(answers[-1])
        if cls != want:
            status = {"rj": "rejected", "abort": "aborted"}.get(cls, "failed")
            return done(status, f"{what} answered with {text}")
        if want == "ac" and 1 not in sf.negotiated(answers[-1])[0]:
            return done("failed", "Verification not accepted")
        if want == "data" and not text.endswith("C-ECHO-RSP 0x0000"):
            return done("failed", f"C-ECHO answered with {text}")
    return done("ok", "association, C-ECHO and release ok")


def probe_with_retry(target, opts) -> Probe:
    """A probe, repeated once after a pause unless it timed out (a peer still
    tidying up the previous connection may refuse or reject a moment)."""
    p = probe(target, opts)
    if p.status not in ("ok", "timeout"):
        time.sleep(0.25)
        again = probe(target, opts, "probe (retry)")
        again.seconds += p.seconds
        if again.status != "ok" and again.detail != p.detail:
            again.detail = f"{again.detail} (first try: {p.detail})"
        return again
    return p


def wait_recovery(target: Target, opts: "Options") -> float | None:
    """After a hang or a failed probe: probe every half second until one
    passes (seconds waited) or ``opts.recover`` seconds are over (None)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < opts.recover:
        time.sleep(0.5)
        if probe(target, opts, "probe (recovery)").status == "ok":
            return time.monotonic() - t0
    return None


def verdict(res: CaseResult, pr: Probe) -> str:
    if pr.status == "timeout":
        return "hang"
    if pr.status == "refused":
        return "dead"
    if pr.status != "ok":
        return "unhealthy"
    if res.peer_malformed:
        return "malformed"
    # Refused during the case but serving again at the probe: not healthy.
    return {"answered": "ok", "refused": "unhealthy"}.get(res.outcome, res.outcome)


# ===========================================================================
# pcapng
# ===========================================================================

_ETH = struct.Struct("!6s6sH")
_IP4 = struct.Struct("!BBHHHBBH4s4s")       # RFC 791
_IP6 = struct.Struct("!IHBB16s16s")         # RFC 8200
_TCP = struct.Struct("!HHIIBBHHH")          # RFC 9293, no options
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 32768


def internet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of IP and TCP headers."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _frame(src, dst, sport, dport, seq, ack, flags, payload, ident) -> bytes:
    """Ethernet (zero MACs, as Linux loopback) + IPv4/IPv6 + TCP, checksums
    correct so every tool accepts the frame."""
    v6 = ":" in src
    s, d = (socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, a) for a in (src, dst))
    tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                    65535, 0, 0) + payload
    # Pseudo headers: RFC 8200 8.1 (IPv6), RFC 9293 3.1 (IPv4).
    pseudo = s + d + (struct.pack("!IxxxB", len(tcp), 6) if v6 else
                      struct.pack("!xBH", 6, len(tcp)))
    c = internet_checksum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    if v6:
        ip = _IP6.pack(6 << 28, len(tcp), 6, 64, s, d)
        return _ETH.pack(bytes(6), bytes(6), 0x86DD) + ip + tcp
    head = _IP4.pack(0x45, 0, 20 + len(tcp), ident & 0xFFFF, 0x4000, 64, 6, 0, s, d)
    head = head[:10] + struct.pack("!H", internet_checksum(head)) + head[12:]
    return _ETH.pack(bytes(6), bytes(6), 0x0800) + head + tcp


def exchange_frames(ex: Exchange) -> list[tuple[int, bytes, str]]:
    """The TCP/IP frames of an exchange: ``(time ns, frame, comment)``:
    handshake, data in segments of at most :data:`MSS` bytes, FIN/RST."""
    ends = [(ex.client[0], ex.client[1]), (ex.server[0], ex.server[1])]
    nxt = [1000, 5000]                      # next sequence number per side
    out = []
    ident = [1, 1]

    def emit(t, side, flags, payload=b"", comment=""):
        (sa, sp), (da, dp) = ends[side], ends[1 - side]
        ack = nxt[1 - side] if flags & ACK else 0
        out.append((t, _frame(sa, da, sp, dp, nxt[side], ack, flags, payload, ident[side]),
                    comment))
        ident[side] += 1

    first = True
    for e in ex.events:
        comment = ex.label if first else ""
        first = False
        if e.what == "syn":
            emit(e.t, 0, SYN, comment=comment)
            nxt[0] += 1
            emit(e.t, 1, SYN | ACK)
            nxt[1] += 1
            emit(e.t, 0, ACK)
        elif e.what == "refused":
            emit(e.t, 0, SYN, comment=comment)
            nxt[0] += 1
            emit(e.t, 1, RST | ACK)
        elif e.what == "data":
            for i in range(0, len(e.data), MSS):
                piece = e.data[i:i + MSS]
                note = "; ".join(x for x in (comment, e.note) if x) if i == 0 else ""
                emit(e.t, e.side, PSH | ACK, piece, note)
                nxt[e.side] += len(piece)
        elif e.what == "fin":
            emit(e.t, e.side, FIN | ACK, comment=comment)
            nxt[e.side] += 1
        elif e.what == "rst":
            emit(e.t, e.side, RST | ACK, comment=comment)
    return out


def write_pcapng(path: str, exchanges: list[Exchange], comments: list[str] = ()) -> int:
    """Write the exchanges as one pcapng (Ethernet, nanosecond timestamps),
    section comments first; frames in time order.  Returns the frame count."""
    import pcapng
    from pcapng import blocks
    frames = sorted((f for ex in exchanges for f in exchange_frames(ex)), key=lambda f: f[0])
    opts = {"shb_userappl": "dicomwire fuzz"}
    if comments:
        opts["opt_comment"] = list(comments)
    shb = blocks.SectionHeader(options=opts)
    shb.new_member(blocks.InterfaceDescription, link_type=1, snaplen=262144,
                   options={"if_tsresol": b"\x09", "if_name": "lo"})
    with open(path, "wb") as f, warnings.catch_warnings():
        # python-pcapng declares no type for if_tsresol and warns on every block.
        warnings.simplefilter("ignore", DeprecationWarning)
        writer = pcapng.FileWriter(f, shb)
        for t, data, comment in frames:
            epb = shb.new_member(blocks.EnhancedPacket, interface_id=0,
                                 options={"opt_comment": [comment]} if comment else {})
            epb.timestamp_high, epb.timestamp_low = t >> 32, t & 0xFFFFFFFF
            epb.packet_data = data
            epb.packet_len = len(data)
            writer.write_block(epb)
    return len(frames)


# ===========================================================================
# Replay
# ===========================================================================


def client_script(path: str) -> list[tuple[bytes, bool]]:
    """The client side of the first TCP connection of a capture, as
    ``(bytes, wait for an answer)`` chunks: consecutive client segments are
    one chunk; a chunk waits when the server sent something before the next
    chunk (or when it is the last one)."""
    from dicomwire.capture import open_capture
    from dicomwire.link import LinkDecoder, reverse_flow
    dec = LinkDecoder()
    client = None
    chunks: list[list] = []
    with open_capture(path) as reader:
        for fr in reader.frames():
            seg = dec.decode(fr.linktype, fr.data)
            if seg is None:
                continue
            flow, _seq, _ack, flags, payload = seg[:5]
            if client is None:
                if flags & SYN and not flags & ACK:
                    client = flow
                continue
            if flow == client:
                if flags & SYN and not flags & ACK:
                    break                    # the next connection (the probe)
                if payload:
                    if chunks and not chunks[-1][1]:
                        chunks[-1][0] += bytes(payload)
                    else:
                        chunks.append([bytes(payload), False])
            elif flow == reverse_flow(client) and payload and chunks:
                chunks[-1][1] = True
    if client is None:
        raise ValueError(f"{path}: no TCP connection opening (SYN) found")
    if chunks:
        chunks[-1][1] = True
    return [(b, w) for b, w in chunks]


def replay(target: Target, path: str, opts: "Options") -> CaseResult:
    """Resend the client side of a case file to ``target``, then probe.
    Raises :class:`PeerDown` if the peer fails a probe beforehand."""
    script = client_script(path)
    before = probe_with_retry(target, opts)
    if before.status != "ok":
        raise PeerDown(before.detail)
    steps = [Step(f"chunk {i + 1} ({len(b)} bytes)", _fixed([b]), expect=w)
             for i, (b, w) in enumerate(script)]
    res = run_steps(target, steps, opts, f"dicomwire fuzz: replay of {os.path.basename(path)}")
    res.kind = "replay"
    res.probe = probe_with_retry(target, opts)
    res.verdict = verdict(res, res.probe)
    return res


# ===========================================================================
# Campaign
# ===========================================================================


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


@dataclasses.dataclass
class Report:
    target: str
    seed: int
    options: Options
    results: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    stopped: str | None = None
    baseline: Probe | None = None

    def counts(self) -> Counter:
        return Counter(r.verdict for r in self.results)

    def by_kind(self) -> dict:
        out: dict = {}
        for r in self.results:
            out.setdefault(r.kind, Counter())[r.verdict] += 1
        return out

    def failing(self) -> list:
        return [r for r in self.results if r.verdict in FAILING]

    def as_dict(self) -> dict:
        o = self.options
        return {"target": self.target, "seed": self.seed, "cases": len(self.results),
                "seconds": round(self.seconds, 3), "stopped": self.stopped,
                "timeout": o.timeout, "probe_timeout": o.probe_timeout,
                "outdir": o.outdir,
                "counts": {v: self.counts().get(v, 0) for v in VERDICTS},
                "by_kind": {k: dict(c) for k, c in sorted(self.by_kind().items())},
                "failing": [r.as_dict() for r in self.failing()],
                "results": [r.as_dict() for r in self.results]}


def run_campaign(target: Target, opts: Options) -> Report:
    """Probe the peer, then run the cases; stop at the count, the time
    limit, or when the peer is dead or hung (later cases would only time
    out).  Failing cases are written to ``opts.outdir``."""
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1 << 32)
    kinds = list(opts.kinds or KINDS)
    report = Report(str(target), seed, opts)
    t0 = time.monotonic()
    report.baseline = probe_with_retry(target, opts)
    if report.baseline.status != "ok":
        report.stopped = f"the peer failed the first probe: {report.baseline.detail}"
        report.seconds = time.monotonic() - t0
        return report
    total = max(opts.cases) + 1 if opts.cases else opts.count
    order = kind_order(seed, kinds, total)
    indices = sorted(set(opts.cases)) if opts.cases else range(opts.count)
    for i in indices:
        if time.monotonic() - t0 > opts.time_limit:
            report.stopped = f"time limit ({opts.time_limit:g} s) reached"
            break
        case = make_case(i, order[i], seed, opts)
        res = run_steps(target, case.steps, opts,
                        f"dicomwire fuzz: case {i} ({case.kind}), seed {seed}")
        res.index, res.kind = i, case.kind
        res.probe = probe_with_retry(target, opts)
        res.verdict = verdict(res, res.probe)
        if res.verdict in ("hang", "unhealthy"):
            res.recovered = wait_recovery(target, opts)
        if res.verdict in FAILING or opts.save_all:
            res.file = save_case(report, res)
        res.exchange = None
        res.probe.exchange = None
        report.results.append(res)
        if opts.progress:
            opts.progress(res, len(report.results), len(indices))
        if res.verdict == "dead":
            report.stopped = f"the peer is dead after case {i}"
            break
        if res.verdict in ("hang", "unhealthy") and res.recovered is None:
            report.stopped = f"the peer did not recover within {opts.recover:g} s " \
                             f"after case {i} ({res.verdict})"
            break
    report.seconds = time.monotonic() - t0
    return report


def save_case(report: Report, res: CaseResult) -> str:
    os.makedirs(report.options.outdir, exist_ok=True)
    path = os.path.join(report.options.outdir, f"case-{res.index:05d}-{res.kind}.pcapng")
    res.probe.exchange.label = f"dicomwire fuzz: probe after case {res.index}: " \
                               f"{res.probe.status} ({res.probe.detail})"
    write_pcapng(path, [res.exchange, res.probe.exchange], [
        f"dicomwire fuzz {report.target} case {res.index} ({res.kind}), seed {report.seed}: "
        f"verdict {res.verdict}",
        *(f"mutation: {n}" for n in res.notes),
        f"peer: {'; '.join(res.reaction) or 'nothing'}",
        f"probe: {res.probe.status} ({res.probe.detail})",
        f"replay: dicomwire fuzz {report.target} --replay {os.path.basename(path)}",
    ])
    return path


# ===========================================================================
# Summary
# ===========================================================================


def format_report(report: Report) -> str:
    o = report.options
    lines = [f"dicomwire fuzz {report.target}: {len(report.results)} case(s) in "
             f"{report.seconds:.1f} s, seed {report.seed} "
             f"(timeouts: answer {o.timeout:g} s, probe {o.probe_timeout:g} s)"]
    if report.baseline is not None and report.baseline.status == "ok":
        lines.append(f"first probe: {report.baseline.detail} "
                     f"({report.baseline.seconds * 1000:.0f} ms)")
    if report.stopped:
        lines.append(f"stopped: {report.stopped}")
    counts = report.counts()
    lines += ["", f"  {'verdict':<10} {'cases':>5}  meaning"]
    for v in VERDICTS:
        lines.append(f"  {v:<10} {counts.get(v, 0):>5}  {VERDICT_MEANING[v]}")
    bk = report.by_kind()
    if bk:
        w = max(len(k) for k in bk)
        lines += ["", f"  {'kind':<{w}} {'cases':>5} " + " ".join(f"{v:>9}" for v in VERDICTS)]
        for k in sorted(bk):
            c = bk[k]
            lines.append(f"  {k:<{w}} {sum(c.values()):>5} "
                         + " ".join(f"{c.get(v, 0) or '.':>9}" for v in VERDICTS))
    fails = report.failing()
    if fails:
        lines += ["", f"failing cases ({len(fails)}), written to {o.outdir}:"]
        for r in fails:
            rec = "" if r.verdict not in ("hang", "unhealthy") else \
                (f", recovered after {r.recovered:.1f} s" if r.recovered is not None
                 else ", did not recover")
            lines.append(f"  case {r.index} {r.kind}: {r.verdict}{rec}; "
                         f"peer: {'; '.join(r.reaction) or 'nothing'}; "
                         f"probe: {r.probe.status} ({r.probe.detail})")
            for n in r.notes:
                lines.append(f"      {n}")
            if r.file:
                lines.append(f"      {r.file}")
    elif report.results:
        lines += ["", "no failing case"]
    resets = [r for r in report.results if r.verdict == "reset"]
    if resets:
        lines += ["", f"reset by the peer ({len(resets)}; one again with "
                      f"--seed {report.seed} --case N --save-all):"]
        for r in resets[:20]:
            lines.append(f"  case {r.index} {r.kind}: {'; '.join(r.notes) or '-'}")
        if len(resets) > 20:
            lines.append(f"  ... {len(resets) - 20} more in summary.json")
    return "\n".join(lines) + "\n"


def write_summary(report: Report) -> tuple[str, str]:
    """summary.txt and summary.json in the output folder."""
    os.makedirs(report.options.outdir, exist_ok=True)
    txt = os.path.join(report.options.outdir, "summary.txt")
    js = os.path.join(report.options.outdir, "summary.json")
    with open(txt, "w") as f:
        f.write(format_report(report))
    with open(js, "w") as f:
        json.dump(report.as_dict(), f, indent=1)
        f.write("\n")
    return txt, js


def progress_printer(stream=sys.stderr):
    def show(res: CaseResult, n: int, total: int):
        stream.write(f"\r\033[Kcase {res.index} ({n}/{total}) {res.kind}: {res.verdict}")
        stream.flush()
        if n == total:
            stream.write("\n")
    return show
