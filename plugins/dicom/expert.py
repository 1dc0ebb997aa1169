"""DICOM expert infos: the registered fields and the built-in checks.

Names follow Wireshark's DICOM dissector where it has one (``dicom.assoc.reject``,
``dicom.pdv.flags.invalid`` ...); our additions live in the same namespace.
Each finding says what happened and what to check, in the words of the
DICOM wiki's troubleshooting section.

This module is the plugin ``dicom-expert``: the fields and the hooks. The
checks live in helper modules by what they look at, and are called from
here in a fixed order (the order of the findings): ``expert_pdu`` (any PDU:
framing problems, pauses, P-DATA, reserved fields, UID syntax),
``expert_negotiation`` (A-ASSOCIATE-RQ/-AC), ``expert_dimse`` (each DIMSE
message) and ``expert_assoc_end`` (how an association ended).
"""

from __future__ import annotations

from dicomwire.expert import ExpertField as F
from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom import expert_assoc_end, expert_dimse
from dicomwire.plugins.dicom.expert_negotiation import (
    check_ae_titles, check_contexts, check_rq_contexts, check_uids, check_unknown_items,
    check_user_info,
)
from dicomwire.plugins.dicom.expert_pdu import (
    check_idle, check_pdata, check_pdu_problems, check_reserved,
)

# Public names of this module before the checks moved out; still importable here.
from dicomwire.plugins.dicom.expert_assoc_end import ABORT_HINTS, REJECT_HINTS  # noqa: F401
from dicomwire.plugins.dicom.expert_pdu import PROBLEM_FIELDS, uid_problem  # noqa: F401

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
      "An abstract syntax was left without an accepted presentation context and the "
      "association carried nothing: likely why nothing was sent"),
    F("dicom.pctx.unsupported", "note", "response-code",
      "Proposed abstract syntaxes the acceptor accepted on no context; the association "
      "went on with the others"),
    F("dicom.pctx.unanswered", "warn", "protocol",
      "The A-ASSOCIATE-AC gives no result for a proposed presentation context (PS3.8 "
      "7.1.1.13, 9.3.3.2)"),
    F("dicom.pctx.alternative_rejected", "chat", "response-code",
      "Alternative presentation contexts rejected (their abstract syntax was accepted on "
      "another context)"),
    F("dicom.assoc.user_info.missing", "warn", "protocol",
      "An A-ASSOCIATE-RQ/AC lacks a mandatory user information sub-item: Maximum Length "
      "(0x51, PS3.8 D.1) or Implementation Class UID (0x52, PS3.7 D.3.3.2)"),
    F("dicom.assoc.app_context", "warn", "protocol",
      "The application context is not DICOM's (1.2.840.10008.3.1.1.1, PS3.7 A.2.1)"),
    F("dicom.pctx.id.invalid", "error", "malformed",
      "A presentation context ID is even, or used twice in one A-ASSOCIATE-RQ (PS3.8 "
      "9.3.2.2: unique odd integers 1-255)"),
    F("dicom.pctx.not_proposed", "error", "protocol",
      "The A-ASSOCIATE-AC answers a presentation context the request did not propose "
      "(PS3.8 9.3.3.2)"),
    F("dicom.dimse.async_exceeded", "warn", "sequence",
      "More requests outstanding at once than the negotiated asynchronous operations "
      "window allows (default 1: one at a time, PS3.7 D.3.3.3)"),
    F("dicom.mpps.refused", "warn", "response-code",
      "The MPPS SCP refused an N-CREATE or N-SET: the procedure step's state did not "
      "reach the RIS (PS3.4 F.7)"),
    F("dicom.capture.partial", "note", "sequence",
      "Part of an exchange lies outside the capture (it began after the association "
      "started, or ended while it was open): what was not seen is not a fault"),
    F("dicom.assoc.no_release", "warn", "sequence",
      "The TCP connection closed without A-RELEASE or A-ABORT"),
    F("dicom.assoc.no_dimse", "note", "sequence", "An association carried no DIMSE message"),
    F("dicom.assoc.release_unanswered", "note", "sequence",
      "The connection closed after an A-RELEASE-RQ without its A-RELEASE-RP (PS3.8 7.2)"),
    F("dicom.dimse.no_response", "warn", "sequence",
      "A request got no final response before the association ended"),
    F("dicom.pdu.too_large", "error", "protocol",
      "A P-DATA-TF PDU is longer than the receiver's negotiated maximum length"),
    F("dicom.pdv.ctx.not_accepted", "error", "protocol",
      "A PDV uses a presentation context that was not accepted"),
    F("dicom.pdu.mixed", "note", "protocol",
      "Command and data set PDVs in one P-DATA-TF PDU: legal, but some peers mishandle it"),
    F("dicom.uid.invalid", "warn", "malformed",
      "A UID breaks PS3.5 9.1: empty, over 64 characters, not digits and dots, an empty "
      "component or one with a leading zero"),
    F("dicom.item.unknown", "note", "protocol",
      "An A-ASSOCIATE item or sub-item of a type not defined where it stands (PS3.8 9.3.2, "
      "9.3.3, Annex D): peers skip it, or reject the association"),
    F("dicom.dataset.malformed", "error", "malformed",
      "A data set's structure breaks: an item or value overruns its sequence, a delimiter "
      "is out of place, or nesting is too deep (PS3.5 7.5)"),
    F("dicom.dataset.meta_in_network", "warn", "protocol",
      "A network data set contains File Meta Information (group 0002), which belongs in "
      "files only (PS3.10 7.1)"),
    F("dicom.dimse.duplicate_id", "warn", "sequence",
      "A request reuses the Message ID of a request still waiting for its response"),
    F("dicom.dimse.unknown_response", "warn", "sequence",
      "A response answers a Message ID no request used"),
    F("dicom.dimse.store_rsp_no_instance", "note", "protocol",
      "C-STORE-RSP without Affected SOP Instance UID"),
    F("dicom.dimse.sop_mismatch", "warn", "protocol",
      "The SOP Class or Instance UID of the command differs from the data set's"),
    F("dicom.timing.assoc_setup", "chat", "sequence",
      "Association set-up time (A-ASSOCIATE-RQ to -AC)"),
    F("dicom.timing.slow_response", "note", "sequence",
      "A response came late (more than the slow-response threshold)"),
    F("dicom.timing.throughput", "chat", "sequence", "Transfer rate of a data set"),
    F("dicom.assoc.ae_invalid", "warn", "protocol",
      "An AE title holds control characters or NULs, or is all spaces (PS3.5 6.2, AE VR)"),
    F("dicom.assoc.ae_not_echoed", "note", "protocol",
      "The A-ASSOCIATE-AC does not echo the AE titles of the request (PS3.8 9.3.3)"),
    F("dicom.assoc.no_answer", "warn", "sequence",
      "An A-ASSOCIATE-RQ got no A-ASSOCIATE-AC or -RJ"),
    F("dicom.assoc.slow_answer", "warn", "sequence",
      "The A-ASSOCIATE-AC came later than peers usually wait (ACSE timeout)"),
    F("dicom.reserved.nonzero", "chat", "protocol",
      "A reserved field is not zero (receivers shall ignore it, PS3.8 9.3); once per "
      "association"),
    F("dicom.timing.idle", "note", "sequence",
      "A long pause on an association, and which side it was waiting for"),
    F("dicom.timing.transfer_limited", "note", "sequence",
      "A data set transfer was slowed by its receiver (zero windows while it crossed) or "
      "by its sender (pauses between its fragments)"),
    F("dicom.timing.zero_window", "note", "sequence",
      "A side advertised a zero TCP window: its receiving application could not keep up "
      "(the receiver, not the sender or the network, slowed the transfer)"),
)


@hookimpl
def dicomwire_expert_fields():
    return FIELDS


@hookimpl
def dicomwire_pdu(pdu, expert):
    a = pdu.assoc
    if pdu.skipped or pdu.problems or pdu.lead:
        check_pdu_problems(pdu, expert, a)
    if a is not None:
        check_idle(a, pdu, expert)
    t = pdu.type
    if t == 4:
        # The bulk of a capture: only the P-DATA checks (kept cheap).
        if a is not None:
            check_pdata(a, pdu, expert)
        return
    aid = a.id if a is not None else None
    if t == 2 and a is not None and a.rq is not None:
        check_contexts(a, pdu, expert)
        if a.rq_ts is not None:
            expert.report("dicom.timing.assoc_setup", f"{a.label()}: accepted "
                          f"{(pdu.last_ts - a.rq_ts) / 1e6:.3f} ms after the request",
                          [a.rq_frame, pdu.last_frame], pdu.stream.id, a.id)
    if pdu.decoded is None:
        return
    if t in (1, 2) and a is not None:
        check_uids(a, pdu, expert)
        check_ae_titles(a, pdu, expert)
        check_user_info(a, pdu, expert)
    check_reserved(pdu, expert, a)
    if t == 1:
        check_rq_contexts(pdu, expert, aid)
    if t in (1, 2):
        check_unknown_items(pdu, expert, aid)


# Whole check lists, bound as this plugin's hooks (pluggy registers this
# module) without a call in between: dicomwire_message runs per message.
dicomwire_message = hookimpl(expert_dimse.check_message)
dicomwire_association_end = hookimpl(expert_assoc_end.check_association_end)
