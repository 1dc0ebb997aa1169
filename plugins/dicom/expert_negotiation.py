"""DICOM expert checks on the association negotiation (A-ASSOCIATE-RQ/-AC).

Items and sub-items where they may stand (PS3.8 9.3.2-9.3.3, Annex D), AE
titles and their echo, the mandatory user information and the application
context, presentation context IDs and syntaxes in the request, the
acceptor's answer to each proposed context, the UIDs negotiated, and the
abstract syntaxes left without an accepted context (judged when the
association ends, by what it carried). Apart because they look at the two
negotiation PDUs only, never at P-DATA: the plugin ``dicom-expert``
(``expert.py``) calls them from ``dicomwire_pdu`` for A-ASSOCIATE PDUs, and
``expert_assoc_end.py`` calls ``report_lost_syntaxes``.
"""

from __future__ import annotations

from dicomwire.plugins.dicom.association import CAPTURE_ENDED, EVICTED
from dicomwire.plugins.dicom.expert_pdu import uid_problem
from dicomwire.plugins.dicom.render import uid_name
from dicomwire.specs.dicom import tables

ACSE_TIMEOUT_S = 30.0       # DCMTK's and pynetdicom's default ACSE timeout
MAX_LOST_SYNTAXES = 16      # findings per association for abstract syntaxes left without context

# Item types allowed at each level of an A-ASSOCIATE-RQ / -AC (PS3.8 9.3.2-9.3.3,
# D.3.3.x; PS3.7 D.3.3).
_TOP_ITEMS = {1: {0x10, 0x20, 0x50}, 2: {0x10, 0x21, 0x50}}
_CONTEXT_SUBS = {0x20: {0x30, 0x40}, 0x21: {0x40}}
# User information: 0x51-0x56 both ways; common extended negotiation (0x57)
# and the user identity request (0x58) in the RQ, its answer (0x59) in the AC.
_USER_SUBS = {1: set(range(0x51, 0x59)), 2: set(range(0x51, 0x57)) | {0x59}}


def check_unknown_items(pdu, expert, aid):
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


def check_ae_titles(a, pdu, expert):
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


def check_uids(a, pdu, expert):
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


def check_user_info(a, pdu, expert):
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


def check_rq_contexts(pdu, expert, aid):
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


def check_contexts(a, pdu, expert):
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
    # the association ends (report_lost_syntaxes): by what was sent after.
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


def report_lost_syntaxes(a, expert):
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
