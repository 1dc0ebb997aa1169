"""Running a case against the peer, probing it afterwards with a valid
Verification association, and the verdict."""

from __future__ import annotations

import dataclasses
import functools
import time

from dicomwire.specs.dicom import fuzz as sf
from dicomwire.specs.dicom import pdu as P
from dicomwire.plugins.dicom.fuzzpeer.peer import Conn, Exchange, Options, Target, describe
from dicomwire.plugins.dicom.fuzzpeer.cases import Session

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
