"""DICOM expert checks on PDUs as units: what any PDU can show.

The framing problems the dissector recorded on a PDU (bad lengths, flags,
bytes skipped to resync, a capture begun mid-stream), long pauses between
PDUs, a P-DATA-TF's size and presentation contexts against what the
association negotiated, non-zero reserved fields, and the UID syntax rule
(PS3.5 9.1) the negotiation and message checks share. Apart from the
negotiation and DIMSE checks because these run on every PDU (the bulk of a
capture is P-DATA): ``check_idle`` and ``check_pdata`` stay cheap.
The plugin ``dicom-expert`` (``expert.py``) calls them from ``dicomwire_pdu``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from dicomwire.specs.dicom import tables

IDLE_S = 2.0                # pauses longer than this between PDUs get a note
_UID_CHARS = frozenset("0123456789.")
_UID_RE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")

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


def check_pdu_problems(pdu, expert, a):
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


def check_idle(a, pdu, expert):
    """Long pauses: after a request the acceptor (receiver) was slow; after
    anything else the requestor (sender) was idle (the DICOM wiki: "looking
    at the timestamps is by far the best method")."""
    # Per PDU, so kept cheap: the previous PDU's facts live on the association.
    prev = a.idle_prev
    a.idle_prev = (pdu.last_frame, pdu.last_ts, pdu.direction, pdu.carries_request())
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


def check_pdata(a, pdu, expert):
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


def check_reserved(pdu, expert, a):
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
