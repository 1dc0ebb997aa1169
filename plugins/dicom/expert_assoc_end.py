"""DICOM expert checks on how an association ended.

Rejected or aborted (with a plain-language hint per reason: what a DICOM
engineer checks next), unanswered, closed without A-RELEASE or with the
release unanswered, cut by the end of the capture (a note, never a
fault), no DIMSE message exchanged, requests left without a response, zero
TCP windows per side, and the abstract syntaxes the negotiation left
without a context. Apart because they run once per association, from its
final state. ``check_association_end`` is the hook
``dicomwire_association_end`` of the plugin ``dicom-expert`` (``expert.py``
binds it there).
"""

from __future__ import annotations

from dicomwire.plugins.dicom.association import CAPTURE_ENDED, EVICTED
from dicomwire.plugins.dicom.expert_negotiation import report_lost_syntaxes
from dicomwire.specs.dicom import tables

# Plain-language hints: what a DICOM engineer checks next (DICOM wiki,
# "Association Request & Response").
REJECT_HINTS = {
    (1, 2): "the peer does not support the DICOM application context: check that it speaks DICOM",
    (1, 3): "the calling AE title is not known to the acceptor: check the AE title configured "
            "on the calling side and the acceptor's list of known peers (AE title, host, port)",
    (1, 7): "the called AE title is not recognised: check the AE title configured on both "
            "sides (the one called must match the acceptor's own)",
    (2, 2): "protocol version not supported: the peer's DICOM stack is not PS3.8 compatible",
    (3, 1): "temporary congestion: the acceptor is busy; retry later",
    (3, 2): "local limit exceeded: the acceptor has too many associations open (licences are "
            "often counted per AE title); retry later or raise its limit",
}
ABORT_HINTS = {
    (2, 1): "the peer received a PDU type it does not know",
    (2, 2): "the peer received a PDU it did not expect in this state",
    (2, 4): "the peer did not recognise a PDU parameter",
    (2, 5): "the peer did not expect a PDU parameter",
    (2, 6): "the peer found a PDU parameter value invalid (often a PDU longer than the "
            "negotiated maximum, or a malformed item)",
    (0, 0): "the service user aborted: look at the application logs on the aborting side",
}


def check_association_end(assoc, expert):
    """The checks of an association that ended, however it ended (the hook
    ``dicomwire_association_end``)."""
    a = assoc
    sid = a.stream.id
    if a.rj is not None:
        b = a.rj.body
        hint = REJECT_HINTS.get((b.source, b.reason), "")
        expert.report("dicom.assoc.reject",
                      f"{a.label()}: {tables.reject_text(b.result, b.source, b.reason)}"
                      + (f": {hint}" if hint else ""), [a.rj_frame], sid, a.id)
    elif a.abort is not None:
        b = a.abort.body
        hint = ABORT_HINTS.get((b.source, b.reason), "")
        expert.report("dicom.assoc.abort", f"{a.label()}: {tables.abort_text(b.source, b.reason)}"
                      + (f": {hint}" if hint else ""), [a.abort_frame], sid, a.id)
    elif a.end in (CAPTURE_ENDED, EVICTED):
        _capture_ended(a, expert)
        return
    elif a.rq is not None and a.ac is None:
        expert.report("dicom.assoc.no_answer", f"{a.label()}: the A-ASSOCIATE-RQ got no "
                      f"answer before the association ended ({a.end}): check that the "
                      f"called AE listens on this port", [a.rq_frame], sid, a.id)
    elif a.end == "closed" and a.released:
        expert.report("dicom.assoc.release_unanswered", f"{a.label()}: TCP stream {sid} "
                      f"closed ({a.stream.close_reason}) after the A-RELEASE-RQ without an "
                      f"A-RELEASE-RP", [a.stream.last_frame], sid, a.id)
    elif a.end == "closed":
        expert.report("dicom.assoc.no_release",
                      f"{a.label()}: TCP stream {sid} closed ({a.stream.close_reason}) "
                      f"without A-RELEASE or A-ABORT", [a.stream.last_frame], sid, a.id)
    if a.ac is not None and a.messages == 0:
        expert.report("dicom.assoc.no_dimse", f"{a.label()}: accepted but no DIMSE "
                      f"message was exchanged", [a.ac_frame], sid, a.id)
    report_lost_syntaxes(a, expert)
    _zero_windows(a, expert)
    for (_d, mid), req in a.pending.items():
        expert.report("dicom.dimse.no_response", f"{req.name} ID={mid} got no final "
                      f"response before the association ended ({a.end})",
                      [req.last_frame], sid, a.id)


def _zero_windows(a, expert):
    sid = a.stream.id
    for d, who in ((0, "requestor"), (1, "acceptor")):
        n = a.stream.dirs[d].zero_windows
        if n:
            ae = a.calling_ae if d == 0 else a.called_ae
            expert.report("dicom.timing.zero_window", f"{a.label()}: the {who} ({ae}) "
                          f"advertised a zero window {n} time(s): it could not read fast "
                          f"enough, so the receiver side slowed the transfer",
                          [a.stream.last_frame], sid, a.id)


def _capture_ended(a, expert):
    """The capture ended while the association was open: one note saying
    what was still in flight, never a fault (the rest was not seen)."""
    state = ("its A-ASSOCIATE-RQ not yet answered" if a.rq is not None and a.ac is None
             else "its A-RELEASE-RQ not yet answered" if a.released
             else "the association still open")
    waiting = [f"{req.name} ID={mid} (frame {req.last_frame})"
               for (_d, mid), req in a.pending.items()]
    text = (f"{a.label()}: the capture ended with {state}" if a.end == CAPTURE_ENDED else
            f"{a.label()}: dicomwire stopped following TCP stream {a.stream.id} (more flows "
            f"open than tcp.max_flows: see tcp.flows.evicted) with {state}")
    if waiting:
        text += (f"; {len(waiting)} request(s) not yet answered: " + ", ".join(waiting[:5])
                 + (", ..." if len(waiting) > 5 else ""))
    expert.report("dicom.capture.partial", text, [a.stream.last_frame], a.stream.id, a.id)
    report_lost_syntaxes(a, expert)
    _zero_windows(a, expert)
