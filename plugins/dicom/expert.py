"""DICOM expert infos: the registered fields and the built-in checks.

Names follow Wireshark's DICOM dissector where it has one (``dicom.assoc.reject``,
``dicom.pdv.flags.invalid`` ...); our additions live in the same namespace.
Each finding says what happened and what to check, in the words of the
DICOM wiki's troubleshooting section.
"""

from __future__ import annotations

import re
from functools import lru_cache

from dicomwire.expert import ExpertField as F
from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom.dissector import CAPTURE_ENDED, EVICTED
from dicomwire.plugins.dicom.render import uid_name
from dicomwire.specs.dicom import dataset, tables

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
IDLE_S = 2.0                # pauses longer than this between PDUs get a note
ACSE_TIMEOUT_S = 30.0       # DCMTK's and pynetdicom's default ACSE timeout

SLOW_RESPONSE_S = 5.0       # responses later than this get a note
MAX_LOST_SYNTAXES = 16      # findings per association for abstract syntaxes left without context
_UID_CHARS = frozenset("0123456789.")
_UID_RE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")

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
    "reserved": "dicom.reserved.nonzero",
}


@hookimpl
def dicomwire_expert_fields():
    return FIELDS


@hookimpl
def dicomwire_pdu(pdu, expert):
    a = pdu.assoc
    if pdu.skipped or pdu.problems or pdu.lead:
        _pdu_problems(pdu, expert, a)
    if a is not None:
        _idle(a, pdu, expert)
    t = pdu.type
    if t == 4:
        # The bulk of a capture: only the P-DATA checks (kept cheap).
        if a is not None:
            _pdata(a, pdu, expert)
        return
    aid = a.id if a is not None else None
    if t == 2 and a is not None and a.rq is not None:
        _contexts(a, pdu, expert)
        if a.rq_ts is not None:
            expert.report("dicom.timing.assoc_setup", f"{a.label()}: accepted "
                          f"{(pdu.last_ts - a.rq_ts) / 1e6:.3f} ms after the request",
                          [a.rq_frame, pdu.last_frame], pdu.stream.id, a.id)
    if pdu.decoded is None:
        return
    if t in (1, 2) and a is not None:
        _uids(a, pdu, expert)
        _ae_titles(a, pdu, expert)
        _user_info(a, pdu, expert)
    _reserved(pdu, expert, a)
    if t == 1:
        _rq_contexts(pdu, expert, aid)
    if t in (1, 2):
        _unknown_items(pdu, expert, aid)


def _pdu_problems(pdu, expert, a):
    aid = a.id if a is not None else None
    frames = [pdu.last_frame]
    if pdu.lead:
        expert.report("dicom.capture.partial", f"the capture began mid-stream: {pdu.lead} "
                      f"bytes before this {pdu.name}, the first PDU header seen, belong to "
                      f"a PDU sent before the capture began", frames, pdu.stream.id, aid)
    if pdu.skipped:
        expert.report("dicom.pdu.resync", f"{pdu.skipped} bytes skipped before this "
                      f"{pdu.name} to find its header", frames, pdu.stream.id, aid)
    for kind, text in pdu.problem_kinds():
        name = PROBLEM_FIELDS.get(kind, "dicom.pdu.malformed")
        if name == "dicom.reserved.nonzero":
            _report_reserved(a, expert, pdu, text)
        elif name:
            expert.report(name, f"{pdu.name}: {text}", frames, pdu.stream.id, aid)


# Item types allowed at each level of an A-ASSOCIATE-RQ / -AC (PS3.8 9.3.2-9.3.3,
# D.3.3.x; PS3.7 D.3.3).
_TOP_ITEMS = {1: {0x10, 0x20, 0x50}, 2: {0x10, 0x21, 0x50}}
_CONTEXT_SUBS = {0x20: {0x30, 0x40}, 0x21: {0x40}}
# User information: 0x51-0x56 both ways; common extended negotiation (0x57)
# and the user identity request (0x58) in the RQ, its answer (0x59) in the AC.
_USER_SUBS = {1: set(range(0x51, 0x59)), 2: set(range(0x51, 0x57)) | {0x59}}


def _unknown_items(pdu, expert, aid):
    top = _TOP_ITEMS[pdu.type]
    found = []
    for item in pdu.decoded.body.variable_items:
        t = item.item_type
        if t not in top:
            found.append(f"item 0x{t:02X}")
            continue
        body = item.body
        subs = getattr(body, "sub_items", None) if not isinstance(body, (bytes, str)) else None
        if subs is None:
            continue
        allowed = _USER_SUBS[pdu.type] if t == 0x50 else _CONTEXT_SUBS.get(t, set())
        for sub in subs:
            if sub.item_type not in allowed:
                found.append(f"sub-item 0x{sub.item_type:02X} in item 0x{t:02X}")
    if found:
        expert.report("dicom.item.unknown", f"{pdu.name}: " + ", ".join(found[:8])
                      + (f" and {len(found) - 8} more" if len(found) > 8 else ""),
                      [pdu.last_frame], pdu.stream.id, aid)


def _idle(a, pdu, expert):
    """Long pauses: after a request the acceptor (receiver) was slow; after
    anything else the requestor (sender) was idle (the DICOM wiki: "looking
    at the timestamps is by far the best method")."""
    # Per PDU, so kept cheap: the previous PDU's facts live on the association.
    prev = a.idle_prev
    request = pdu.type in (1, 5)
    if not request:
        for p in pdu.pdvs:
            m = p.message
            if p.flags & 1 and m is not None and m.command_field is not None \
                    and not m.is_response:
                request = True
                break
    a.idle_prev = (pdu.last_frame, pdu.last_ts, pdu.direction, request)
    if prev is None:
        return
    frame, ts, direction, was_request = prev
    pause = (pdu.first_ts - ts) / 1e9
    if pause <= IDLE_S:
        return
    if was_request:
        who = ("waiting for the acceptor to answer" if direction == 0 else
               "waiting for the requestor to answer")
    else:
        who = "nobody was waiting: the sending application was idle"
    expert.report("dicom.timing.idle", f"{a.label()}: {pause:.1f} s without a PDU between "
                  f"frames {frame} and {pdu.first_frame} ({who})", [frame, pdu.first_frame],
                  pdu.stream.id, a.id)


def _pdata(a, pdu, expert):
    # Max length (PS3.8 D.1) is announced by the receiver: the requestor's
    # in the RQ (index 0), the acceptor's in the AC (1); 0 means no limit.
    limit = a.max_pdu[1 - pdu.direction] if a.requestor == 0 else None
    if limit and pdu.length > limit:
        expert.report("dicom.pdu.too_large", f"P-DATA-TF of {pdu.length} bytes; the receiver "
                      f"accepts at most {limit}", [pdu.last_frame], pdu.stream.id, a.id)
    pdvs = pdu.pdvs
    if len(pdvs) > 1 and len({pdv.flags & 1 for pdv in pdvs}) == 2:
        expert.report("dicom.pdu.mixed", "command and data set PDVs share this PDU",
                      [pdu.last_frame], pdu.stream.id, a.id)
    if a.negotiated and a.ac is not None:
        contexts = a.contexts
        for pdv in pdvs:
            pc = contexts.get(pdv.context_id)
            if pc is None or not pc.accepted:
                why = "never proposed" if pc is None else (
                    "not answered" if pc.result is None else
                    tables.PCTX_RESULTS.get(pc.result, f"result {pc.result}"))
                expert.report("dicom.pdv.ctx.not_accepted", f"PDV on presentation context "
                              f"{pdv.context_id} ({why})", [pdu.last_frame], pdu.stream.id,
                              a.id)


def _ae_titles(a, pdu, expert):
    b = pdu.decoded.body
    frames, sid = [pdu.last_frame], pdu.stream.id
    for role, raw in (("called", b.called_ae_title), ("calling", b.calling_ae_title)):
        raw = raw or ""
        # AE VR (PS3.5 6.2): default repertoire, no control characters, no backslash.
        if pdu.type == 1 and (any(ord(ch) < 32 or ord(ch) >= 127 or ch == "\\"
                                  for ch in raw.rstrip("\0"))
                              or not raw.strip(" \0")):
            expert.report("dicom.assoc.ae_invalid", f"{pdu.name}: {role} AE title {raw!r}",
                          frames, sid, a.id)
    if pdu.type == 2 and a.rq is not None:
        rq = a.rq.body
        got = (b.called_ae_title.strip(" \0"), b.calling_ae_title.strip(" \0"))
        want = (rq.called_ae_title.strip(" \0"), rq.calling_ae_title.strip(" \0"))
        if got != want:
            expert.report("dicom.assoc.ae_not_echoed", f"A-ASSOCIATE-AC has called/calling "
                          f"{got[0]!r}/{got[1]!r}, the request {want[0]!r}/{want[1]!r}",
                          frames, sid, a.id)
        if a.rq_ts is not None and (pdu.last_ts - a.rq_ts) / 1e9 > ACSE_TIMEOUT_S:
            expert.report("dicom.assoc.slow_answer", f"{a.label()}: accepted "
                          f"{(pdu.last_ts - a.rq_ts) / 1e9:.1f} s after the request; many "
                          f"peers give up after {ACSE_TIMEOUT_S:.0f} s", [a.rq_frame] + frames,
                          sid, a.id)


def _reserved(pdu, expert, a):
    """Non-zero reserved fields anywhere in a decoded PDU (kept by the spec),
    counted per place: 'reserved3 of item 0x20 = 0xFF (5 items)'. Some stacks
    always set one (DCMTK: 0xFF in item 0x20), so it is said once per association."""
    found: dict = {}

    def walk(node, where):
        if isinstance(node, dict):
            if isinstance(node.get("item_type"), int):
                where = f"item 0x{node['item_type']:02X}"
            for k, v in node.items():
                if k.startswith("reserved") and v not in (0, None) and (
                        not isinstance(v, (bytes, bytearray)) or any(v)):
                    shown = f"0x{v:02X}" if isinstance(v, int) else bytes(v).hex()
                    key = f"{k} of {where} = {shown}"
                    found[key] = found.get(key, 0) + 1
                elif isinstance(v, (dict, list)):
                    walk(v, where)
        elif isinstance(node, list):
            for v in node:
                walk(v, where)

    walk(pdu.decoded, "the PDU header")
    if found:
        _report_reserved(a, expert, pdu, "; ".join(
            k + (f" ({n} items)" if n > 1 else "") for k, n in list(found.items())[:5]))


def _report_reserved(a, expert, pdu, text):
    if a is not None:
        if a.reserved_reported:
            return
        a.reserved_reported = True
    expert.report("dicom.reserved.nonzero", f"{pdu.name}: {text} (receivers ignore it)",
                  [pdu.last_frame], pdu.stream.id, a.id if a is not None else None)


def uid_problem(uid) -> str | None:
    """Why a UID breaks PS3.5 9.1, or None: at most 64 characters, digit
    components separated by dots, none empty, none with a leading zero (one
    trailing NUL is padding). None means absent, which is not checked here."""
    if uid is None or not isinstance(uid, str):
        return None
    return _uid_problem(uid)


@lru_cache(maxsize=4096)      # SOP Class UIDs repeat in every message of a transfer
def _uid_problem(uid: str) -> str | None:
    u = uid[:-1] if uid.endswith("\0") else uid
    if len(u) <= 64 and _UID_RE.fullmatch(u):
        return None                      # the usual case: one C-level match
    if not u.strip("\0 "):
        return "empty"
    if len(u) > 64:
        return f"{len(u)} characters, more than 64"
    if not set(u) <= _UID_CHARS:
        return "characters other than digits and dots"
    for comp in u.split("."):
        if not comp:
            return "an empty component"
        if len(comp) > 1 and comp[0] == "0":
            return f"component {comp!r} has a leading zero"
    return None


def _uids(a, pdu, expert):
    seen = []
    if pdu.type == 1:
        seen += [a.application_context] + [pc.abstract_syntax for pc in a.contexts.values()]
        seen += [t for pc in a.contexts.values() for t in pc.transfer_syntaxes]
    else:
        seen += [pc.transfer_syntax for pc in a.contexts.values() if pc.accepted]
    seen.append((a.implementation[0 if pdu.type == 1 else 1] or (None,))[0])
    for uid in dict.fromkeys(u for u in seen if uid_problem(u)):
        expert.report("dicom.uid.invalid", f"{pdu.name}: UID {uid!r} ({uid_problem(uid)})",
                      [pdu.last_frame], pdu.stream.id, a.id)


def _user_info(a, pdu, expert):
    """Mandatory user information sub-items and the application context, as
    the dissector recorded them (both in every A-ASSOCIATE-RQ and -AC). Not
    judged on a PDU decoded only in part: its malformed finding says why."""
    if pdu.problems:
        return
    side = 0 if pdu.type == 1 else 1
    missing = []
    if a.max_pdu[side] is None:
        missing.append("Maximum Length (0x51)")
    if (a.implementation[side] or (None,))[0] is None:
        missing.append("Implementation Class UID (0x52)")
    frames, sid = [pdu.last_frame], pdu.stream.id
    if missing:
        expert.report("dicom.assoc.user_info.missing", f"{pdu.name} of {a.label()} has no "
                      + " and no ".join(missing) + " sub-item: some peers reject or abort "
                      "such an association", frames, sid, a.id)
    ctx = a.application_contexts[side]
    if ctx is not None and ctx != tables.APPLICATION_CONTEXT:
        expert.report("dicom.assoc.app_context", f"{pdu.name}: application context "
                      f"{ctx!r}, not DICOM's {tables.APPLICATION_CONTEXT}", frames, sid, a.id)


def _rq_contexts(pdu, expert, aid):
    seen = set()
    for item in pdu.decoded.body.variable_items:
        if item.item_type != 0x20:
            continue
        subs = [s.item_type for s in item.body.sub_items]
        cid = item.body.context_id
        if cid in seen or not cid & 1:
            expert.report("dicom.pctx.id.invalid", f"presentation context ID {cid} "
                          + ("is used twice" if cid in seen else "is even"),
                          [pdu.last_frame], pdu.stream.id, aid)
        seen.add(cid)
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


def _pctx_why(pc) -> str:
    offered = ", ".join(uid_name(t) or t for t in pc.transfer_syntaxes[:4]) or "none"
    more = len(pc.transfer_syntaxes) - 4
    return (f"context {pc.id}: {tables.PCTX_RESULTS.get(pc.result, f'result {pc.result}')}"
            f", offered {offered}" + (f" and {more} more" if more > 0 else ""))


def _contexts(a, pdu, expert):
    """The A-ASSOCIATE-AC's answers to the proposed contexts (PS3.8 9.3.3.2,
    7.1.1.13: one result per proposed context). Rule checks only when both
    PDUs decoded whole (a salvaged one lacks items that were there)."""
    frames, sid = [pdu.last_frame], pdu.stream.id
    whole = not pdu.problems and a.rq_whole
    if pdu.decoded is not None:
        proposed = {it.body.context_id for it in a.rq.body.variable_items
                    if it.item_type == 0x20}
        answered = set()
        for item in pdu.decoded.body.variable_items:
            if item.item_type != 0x21:
                continue
            cid = item.body.context_id
            answered.add(cid)
            if whole and cid not in proposed:
                expert.report("dicom.pctx.not_proposed", f"the A-ASSOCIATE-AC answers "
                              f"presentation context {cid}, which the request did not "
                              f"propose", frames, sid, a.id)
            n = sum(1 for s in item.body.sub_items if s.item_type == 0x40)
            if n > 1:
                expert.report("dicom.multiple_transfer_syntax", f"presentation context {cid} "
                              f"accepts {n} transfer syntaxes", frames, sid, a.id)
        missing = sorted(proposed - answered)
        if whole and missing:
            expert.report("dicom.pctx.unanswered", f"{a.label()}: the A-ASSOCIATE-AC gives "
                          f"no result for presentation context(s) "
                          + ", ".join(map(str, missing[:16])) + (", ..." if len(missing) > 16
                                                                 else "")
                          + ": nothing can be sent on them", frames, sid, a.id)
    rejected = [pc for pc in a.contexts.values() if pc.result not in (None, 0)]
    if not rejected:
        return
    # A requestor often offers one abstract syntax on several contexts (one per
    # transfer syntax, as DCMTK's storescu does): the acceptor takes one and
    # rejects the others. An abstract syntax left with none is judged when
    # the association ends (_lost_syntaxes): by what was sent after.
    accepted = {pc.abstract_syntax for pc in a.contexts.values() if pc.accepted}
    alternatives = []
    for pc in rejected:
        if pc.abstract_syntax in accepted:
            alternatives.append(pc)
        else:
            a.lost_syntaxes.setdefault(pc.abstract_syntax, []).append(pc)
    if alternatives:
        shown = "; ".join(f"{uid_name(pc.abstract_syntax) or pc.abstract_syntax} "
                          f"({_pctx_why(pc)})" for pc in alternatives[:5])
        expert.report("dicom.pctx.alternative_rejected", f"{a.label()}: "
                      f"{len(alternatives)} alternative presentation context(s) rejected, "
                      f"their abstract syntaxes accepted on other contexts: {shown}"
                      + ("; ..." if len(alternatives) > 5 else ""), frames, sid, a.id)


def _lost_syntaxes(a, expert):
    """Abstract syntaxes left without an accepted context. Requestors often
    propose every class they know (DCMTK's storescu: 128) and use a few: when
    the association went on to carry messages, the rest is a note; when it
    carried nothing, the rejection is the likely reason, a warning per
    abstract syntax."""
    lost = a.lost_syntaxes
    if not lost:
        return
    frames, sid = [a.ac_frame], a.stream.id
    names = [uid_name(u) or str(u) for u in lost]
    if a.messages or a.end in (CAPTURE_ENDED, EVICTED):
        went_on = ("the association went on with the others" if a.messages else
                   "the rest of the association is not in the capture")
        expert.report("dicom.pctx.unsupported", f"{a.label()}: {len(lost)} proposed abstract "
                      f"syntax(es) not accepted on any context ({went_on}; objects of these "
                      f"classes could not be sent): "
                      + ", ".join(names[:8]) + (", ..." if len(names) > 8 else ""),
                      frames, sid, a.id)
        return
    for uid, pcs in list(lost.items())[:MAX_LOST_SYNTAXES]:
        expert.report("dicom.pctx.rejected", f"{a.label()}: {uid_name(uid) or uid} has no "
                      f"accepted presentation context, and nothing was sent on this "
                      f"association (" + "; ".join(_pctx_why(pc) for pc in pcs[:3])
                      + (f"; {len(pcs) - 3} more contexts" if len(pcs) > 3 else "") + ")",
                      frames, sid, a.id)
    if len(names) > MAX_LOST_SYNTAXES:
        rest = names[MAX_LOST_SYNTAXES:]
        expert.report("dicom.pctx.rejected", f"{a.label()}: {len(rest)} more abstract "
                      f"syntaxes have no accepted presentation context: "
                      + ", ".join(rest[:5]) + (", ..." if len(rest) > 5 else ""),
                      frames, sid, a.id)


@hookimpl
def dicomwire_message(message, expert):
    m = message
    a = m.assoc
    aid = a.id if a is not None else None
    sid = a.stream.id if a is not None else None
    if not m.complete:
        why = "; ".join(m.problems) or "unknown"
        if m.beyond_capture and not m.dataset_missing:
            # Cut by the capture's start or end, not by a loss inside it.
            expert.report("dicom.capture.partial", f"{m.name}: {why}",
                          [m.first_frame, m.last_frame], sid, aid)
        else:
            expert.report("dicom.message.incomplete", f"{m.name}: {why}",
                          [m.first_frame, m.last_frame], sid, aid)
    frames = [m.last_frame]
    for key in ("AffectedSOPClassUID", "RequestedSOPClassUID", "AffectedSOPInstanceUID",
                "RequestedSOPInstanceUID"):
        uid = (m.command or {}).get(key)
        if uid_problem(uid):
            expert.report("dicom.uid.invalid", f"{m.name}: {key} {uid!r} "
                          f"({uid_problem(uid)})", frames, sid, aid)
    if m.duplicate_of is not None:
        expert.report("dicom.dimse.duplicate_id", f"{m.name} reuses Message ID {m.message_id} "
                      f"of the {m.duplicate_of.name} in frame {m.duplicate_of.last_frame}, "
                      f"still unanswered", [m.duplicate_of.last_frame, m.last_frame], sid, aid)
    if m.outstanding > 1 and a is not None and not a.async_reported:
        _async_window(a, m, expert, sid)
    if m.is_response and m.request is None and a is not None and a.negotiated:
        expert.report("dicom.dimse.unknown_response", f"{m.name} answers Message ID "
                      f"{m.message_id}, which no request used", frames, sid, aid)
    if m.name == "C-STORE-RSP" and not (m.command or {}).get("AffectedSOPInstanceUID"):
        expert.report("dicom.dimse.store_rsp_no_instance", f"C-STORE-RSP ID={m.message_id} "
                      f"without Affected SOP Instance UID", frames, sid, aid)
    if m.request is not None and m.response_time is not None \
            and m.response_time > SLOW_RESPONSE_S * 1e9:
        expert.report("dicom.timing.slow_response", f"{m.name} ID={m.message_id} came "
                      f"{m.response_time / 1e9:.1f} s after its request",
                      [m.request.last_frame, m.last_frame], sid, aid)
    if m.has_dataset and m.complete:
        _dataset_checks(m, expert, sid, aid)
        secs = (m.last_ts - m.first_ts) / 1e9
        verdict = _limited_by(m, secs)
        if m.dataset_len >= 1 << 20 and secs > 0:
            expert.report("dicom.timing.throughput", f"{m.name} ID={m.message_id}: "
                          f"{m.dataset_len / 1e6:.1f} MB in {secs:.3f} s "
                          f"({m.dataset_len / 1e6 / secs:.1f} MB/s)"
                          + (f"; limited by the {verdict[0]}" if verdict else ""),
                          [m.first_frame, m.last_frame], sid, aid)
        if verdict:
            expert.report("dicom.timing.transfer_limited", f"{m.name} ID={m.message_id} "
                          f"({m.dataset_len / 1e6:.1f} MB in {secs:.3f} s) was slowed by "
                          f"the {verdict[0]}: {verdict[1]}", [m.first_frame, m.last_frame],
                          sid, aid)
    st = m.status
    if st is not None and m.is_response:
        cls = m.exchange_sop_class
        cat, meaning = tables.status_info(st, m.command_field, sop_class=cls)
        if cat == tables.CANCEL:
            return           # what a C-CANCEL-RQ asks for (PS3.7 9.1.2.1.6): never a failure
        said = _error_comment(m)
        if cat == tables.FAILURE and cls == tables.MPPS_SOP_CLASS \
                and m.name in ("N-CREATE-RSP", "N-SET-RSP"):
            expert.report("dicom.mpps.refused", f"{m.name} ID={m.message_id}: 0x{st:04X} "
                          f"{meaning}{said}: the procedure step {m.sop_instance_uid or ''} "
                          f"was not " + ("created" if m.name == "N-CREATE-RSP" else "updated")
                          + "; the RIS does not see this state of the exam"
                          + ("" if said else " (check the attributes sent against the SCP's "
                                             "conformance statement)"),
                          [m.last_frame], sid, aid)
        elif cat not in (tables.SUCCESS, tables.PENDING):
            expert.report("dicom.status_msg", f"{m.name} ID={m.message_id}: {cat} "
                          f"0x{st:04X}: {meaning}{said}", [m.last_frame], sid, aid)


def _async_window(a, m, expert, sid):
    """Requests outstanding beyond the window the A-ASSOCIATE-AC granted:
    (invoked, performed) from the requestor's side, 1 each when absent, 0
    unlimited (PS3.7 D.3.3.3). Said once per association."""
    if not a.negotiated or a.ac is None or a.stream.dirs[0].gaps or a.stream.dirs[1].gaps:
        return                # (a response lost in a gap would look outstanding)
    invoked, performed = a.async_window[1] or (1, 1)
    limit = invoked if m.direction == a.requestor else performed
    if not limit or m.outstanding <= limit:
        return
    a.async_reported = True
    who = "requestor" if m.direction == a.requestor else "acceptor"
    waiting = [f"{r.name} ID={mid}" for (d, mid), r in a.pending.items()
               if d == m.direction][:5]
    expert.report("dicom.dimse.async_exceeded", f"{a.label()}: the {who} has "
                  f"{m.outstanding} requests outstanding ({', '.join(waiting)}) but the "
                  f"association allows {limit} at a time"
                  + ("" if a.async_window[1] else " (no asynchronous operations window "
                     "was negotiated)"), [m.last_frame], sid, a.id)


def _error_comment(m) -> str:
    """What the responder said about a failure: Error Comment (0000,0902)
    and Error ID (0000,0903), PS3.7 9.1.2.1.5 (on N-services, 10.1)."""
    c = m.command or {}
    comment, eid = c.get("ErrorComment"), c.get("ErrorID")
    parts = ([f"'{str(comment).strip()}'"] if comment and str(comment).strip() else []) \
        + ([f"Error ID 0x{eid:04X}"] if isinstance(eid, int) else [])
    return f" (the SCP says: {', '.join(parts)})" if parts else ""


SENDER_STALL_SHARE = 0.2    # sender pauses over this share of a transfer make it sender-bound


def _limited_by(m, secs):
    """Who slowed a data set transfer (the DICOM wiki's timing question):
    ('receiver'/'sender'/'receiver and the sender', why) or None."""
    who, why = [], []
    if m.zero_windows:
        side = "acceptor" if m.direction == 0 else "requestor"
        who.append("receiver")
        why.append(f"the {side} advertised a zero TCP window {m.zero_windows} time(s) "
                   f"while it arrived (its application did not read fast enough)")
    if m.stalls and secs > 0 and m.stall_ns / 1e9 >= SENDER_STALL_SHARE * secs:
        who.append("sender")
        why.append(f"the sending side paused {m.stalls} time(s) between fragments, "
                   f"{m.stall_ns / 1e9:.2f} s of {secs:.2f} s, with the receiver's "
                   f"window open" if not m.zero_windows else
                   f"the sending side paused {m.stalls} time(s) between fragments, "
                   f"{m.stall_ns / 1e9:.2f} s of {secs:.2f} s")
    if not who:
        return None
    return " and the ".join(who), "; ".join(why)


SOP_CLASS, SOP_INSTANCE = 0x00080016, 0x00080018


def _dataset_checks(m, expert, sid, aid):
    frames = [m.last_frame]
    try:
        head = m.dataset_head(8)
    except RuntimeError:
        return
    if head[:2] in (b"\x02\x00", b"\x00\x02"):
        expert.report("dicom.dataset.meta_in_network", f"{m.name}: the data set starts with "
                      f"group 0002", frames, sid, aid)
    # One walk of the element headers (PS3.5 7.1), no pixels read: the SOP
    # UIDs, and Wireshark's "early termination of tag" if a value runs past the end.
    scanned = m.scan_dataset((SOP_CLASS, SOP_INSTANCE))
    if scanned is None:
        return                   # deflated: the structure is inside the deflate stream
    found, err = scanned
    if err is not None:
        name = "dicom.data.tag.missing" if err.kind in ("truncated", "unterminated") \
            else "dicom.dataset.malformed"
        expert.report(name, f"{m.name} ID={m.message_id}: data set {err}",
                      [m.dataset_frame or m.last_frame], sid, aid)
    if m.name != "C-STORE-RQ":
        return
    cls, inst = dataset.text(found.get(SOP_CLASS)), dataset.text(found.get(SOP_INSTANCE))
    c = m.command or {}
    diffs = []
    if cls and c.get("AffectedSOPClassUID") and cls != c["AffectedSOPClassUID"]:
        diffs.append(f"SOP Class {c['AffectedSOPClassUID']} in the command, {cls} in the data set")
    if inst and c.get("AffectedSOPInstanceUID") and inst != c["AffectedSOPInstanceUID"]:
        diffs.append(f"SOP Instance {c['AffectedSOPInstanceUID']} in the command, {inst} in "
                     f"the data set")
    if diffs:
        expert.report("dicom.dimse.sop_mismatch", f"C-STORE-RQ ID={m.message_id}: "
                      + "; ".join(diffs), frames, sid, aid)


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
    _lost_syntaxes(a, expert)
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
    _lost_syntaxes(a, expert)
    _zero_windows(a, expert)
