"""DICOM expert infos: the registered fields and the built-in checks.

Names follow Wireshark's DICOM dissector where it has one (``dicom.assoc.reject``,
``dicom.pdv.flags.invalid`` ...); our additions live in the same namespace.
Each finding says what happened and what to check, in the words of the
DICOM wiki's troubleshooting section.
"""

from __future__ import annotations

from dicomwire.expert import ExpertField as F
from dicomwire.hookspecs import hookimpl
from dicomwire.specs.dicom import tables

FIELDS = (
    # Wireshark parity (packet-dcm.c ei[])
    F("dicom.assoc.reject", "warn", "response-code", "Association rejected"),
    F("dicom.assoc.abort", "warn", "response-code", "Association aborted"),
    F("dicom.no_abstract_syntax", "error", "malformed",
      "No Abstract Syntax provided for this Presentation Context"),
    F("dicom.multiple_abstract_syntax", "error", "malformed",
      "More than one Abstract Syntax provided for this Presentation Context"),
    F("dicom.no_transfer_syntax", "error", "malformed",
      "No Transfer Syntax provided for this Presentation Context"),
    F("dicom.multiple_transfer_syntax", "error", "malformed",
      "Only one Transfer Syntax allowed in an Association Response"),
    F("dicom.assoc.item.len.invalid", "error", "malformed", "Invalid Association Item Length"),
    F("dicom.pdv.ctx.invalid", "error", "malformed", "Invalid Presentation Context ID"),
    F("dicom.pdv.flags.invalid", "error", "malformed", "Invalid Flags"),
    F("dicom.status_msg", "warn", "response-code", "DIMSE status other than success"),
    F("dicom.data.tag.missing", "error", "malformed", "Early termination of tag. Data is missing"),
    F("dicom.pdv.len.invalid", "error", "malformed", "Invalid PDV length"),
    F("dicom.pdu_length.invalid", "error", "malformed", "Invalid PDU length"),
    # dicomwire additions
    F("dicom.pdu.malformed", "error", "malformed", "A PDU could not be decoded as PS3.8 defines it"),
    F("dicom.pdu.resync", "warn", "reassemble",
      "Bytes skipped to find the next PDU header (capture began mid-stream or after a gap)"),
    F("dicom.message.incomplete", "warn", "reassemble",
      "A DIMSE message is incomplete: bytes missing from the capture or the association ended"),
    F("dicom.pctx.rejected", "warn", "response-code",
      "Presentation contexts rejected by the acceptor"),
    F("dicom.assoc.no_release", "warn", "sequence",
      "The TCP connection closed without A-RELEASE or A-ABORT"),
    F("dicom.assoc.no_dimse", "note", "sequence", "An association carried no DIMSE message"),
    F("dicom.dimse.no_response", "warn", "sequence",
      "A request got no final response before the association ended"),
)

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

# PDU problems the dissector reports (model.PDU.problems): their kind -> field.
PROBLEM_FIELDS = {
    "pdu_length": "dicom.pdu_length.invalid",
    "pdv_length": "dicom.pdv.len.invalid",
    "pdv_flags": "dicom.pdv.flags.invalid",
    "pdv_ctx": "dicom.pdv.ctx.invalid",
    "item_length": "dicom.assoc.item.len.invalid",
    "malformed": "dicom.pdu.malformed",
    "gap": None,               # already a tcp.gap expert info; the message check covers it
}


@hookimpl
def dicomwire_expert_fields():
    return FIELDS


@hookimpl
def dicomwire_pdu(pdu, expert):
    a = pdu.assoc
    aid = a.id if a is not None else None
    frames = [pdu.last_frame]
    if pdu.skipped:
        expert.report("dicom.pdu.resync", f"{pdu.skipped} bytes skipped before this "
                      f"{pdu.name} to find its header", frames, pdu.stream.id, aid)
    for kind, text in pdu.problem_kinds():
        name = PROBLEM_FIELDS.get(kind, "dicom.pdu.malformed")
        if name:
            expert.report(name, f"{pdu.name}: {text}", frames, pdu.stream.id, aid)
    if pdu.type == 2 and a is not None and a.rq is not None:
        _contexts(a, pdu, expert)
    if pdu.type == 1 and pdu.decoded is not None:
        _rq_contexts(pdu, expert, aid)


def _rq_contexts(pdu, expert, aid):
    for item in pdu.decoded.body.variable_items:
        if item.item_type != 0x20:
            continue
        subs = [s.item_type for s in item.body.sub_items]
        cid = item.body.context_id
        if subs.count(0x30) == 0:
            expert.report("dicom.no_abstract_syntax", f"presentation context {cid} has no "
                          f"abstract syntax", [pdu.last_frame], pdu.stream.id, aid)
        elif subs.count(0x30) > 1:
            expert.report("dicom.multiple_abstract_syntax", f"presentation context {cid} "
                          f"has {subs.count(0x30)} abstract syntaxes",
                          [pdu.last_frame], pdu.stream.id, aid)
        if subs.count(0x40) == 0:
            expert.report("dicom.no_transfer_syntax", f"presentation context {cid} "
                          f"proposes no transfer syntax", [pdu.last_frame], pdu.stream.id, aid)


def _contexts(a, pdu, expert):
    from dicomwire.plugins.dicom.render import uid_name
    if pdu.decoded is not None:
        for item in pdu.decoded.body.variable_items:
            if item.item_type == 0x21:
                n = sum(1 for s in item.body.sub_items if s.item_type == 0x40)
                if n > 1:
                    expert.report("dicom.multiple_transfer_syntax",
                                  f"presentation context {item.body.context_id} accepts "
                                  f"{n} transfer syntaxes", [pdu.last_frame], pdu.stream.id,
                                  a.id)
    rejected = [pc for pc in a.contexts.values() if pc.result not in (None, 0)]
    if not rejected:
        return
    total = len(a.contexts)
    lines = []
    for pc in rejected:
        why = tables.PCTX_RESULTS.get(pc.result, f"result {pc.result}")
        offered = ", ".join(uid_name(t) or t for t in pc.transfer_syntaxes) or "none"
        lines.append(f"{uid_name(pc.abstract_syntax) or pc.abstract_syntax} ({why}; "
                     f"offered: {offered})")
    scope = "all" if len(rejected) == total else f"{len(rejected)} of {total}"
    expert.report("dicom.pctx.rejected", f"{scope} presentation contexts rejected: "
                  + "; ".join(lines), [pdu.last_frame], pdu.stream.id, a.id)


@hookimpl
def dicomwire_message(message, expert):
    m = message
    a = m.assoc
    aid = a.id if a is not None else None
    sid = a.stream.id if a is not None else None
    if not m.complete:
        why = "; ".join(m.problems) or "unknown"
        expert.report("dicom.message.incomplete", f"{m.name}: {why}",
                      [m.first_frame, m.last_frame], sid, aid)
    st = m.status
    if st is not None and m.is_response:
        cat, meaning = tables.status_info(st, m.command_field)
        if cat not in (tables.SUCCESS, tables.PENDING):
            expert.report("dicom.status_msg", f"{m.name} ID={m.message_id}: {cat} "
                          f"0x{st:04X}: {meaning}", [m.last_frame], sid, aid)


@hookimpl
def dicomwire_association_end(assoc, expert):
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
    elif a.end == "closed":
        expert.report("dicom.assoc.no_release",
                      f"{a.label()}: TCP stream {sid} closed ({a.stream.close_reason}) "
                      f"without A-RELEASE or A-ABORT", [a.stream.last_frame], sid, a.id)
    if a.ac is not None and a.messages == 0:
        expert.report("dicom.assoc.no_dimse", f"{a.label()}: accepted but no DIMSE "
                      f"message was exchanged", [a.ac_frame], sid, a.id)
    for (_d, mid), req in a.pending.items():
        expert.report("dicom.dimse.no_response", f"{req.name} ID={mid} got no final "
                      f"response before the association ended ({a.end})",
                      [req.last_frame], sid, a.id)
