"""The report's plain data made from the DICOM pack's objects: one ladder
event per association PDU or DIMSE message, and one association's
negotiation table.

Everything here is JSON-ready (dicts, lists, strings, numbers). Times stay
in capture nanoseconds until the model is built (:mod:`.build` makes them
relative to the capture's first frame). Nothing that names a patient is
read unless ``phi`` asks for it: AE titles, SOP classes, sizes and statuses
are not patient data; SOP Instance UIDs and data set values are.
"""

from __future__ import annotations

from dicomwire.addr import format_endpoint
from dicomwire.plugins.dicom.render import uid_name
from dicomwire.specs.dicom import dataset, tables

ASSOCIATION_PDUS = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ",
                    5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}
PENDING = (0xFF00, 0xFF01)
MOVE_RSP, GET_RSP = 0x8021, 0x8010
# Read from a C-STORE's data set only with --phi: who and what the object is about.
PHI_TAGS = {0x00100010: "PatientName", 0x00100020: "PatientID",
            0x00080050: "AccessionNumber", 0x0020000D: "StudyInstanceUID"}


def named_uid(uid) -> list | None:
    """[UID, registered name or ""]: both, so the page can show either."""
    return [uid, uid_name(uid)] if uid else None


def pdu_event(pdu) -> dict:
    """A ladder event for an association PDU (A-ASSOCIATE-RQ/-AC/-RJ,
    A-RELEASE-RQ/-RP, A-ABORT, or one of an unknown type)."""
    ev = {"kind": "assoc", "dir": pdu.direction,
          "name": ASSOCIATION_PDUS.get(pdu.type, pdu.name),
          "frames": [pdu.first_frame, pdu.last_frame], "ts": pdu.first_ts, "te": pdu.last_ts,
          "size": pdu.length + 6}
    detail = _pdu_detail(pdu)
    if detail:
        ev["detail"] = detail
    if pdu.problems:
        ev["problems"] = pdu.problems[:3]
    return ev


def _pdu_detail(pdu) -> str:
    d, a, t = pdu.decoded, pdu.assoc, pdu.type
    if t == 1 and a is not None:
        return f"{len(a.contexts)} presentation context(s) proposed"
    if t == 2 and a is not None:
        ok = sum(1 for pc in a.contexts.values() if pc.result == 0)
        return f"{ok} of {len(a.contexts)} presentation context(s) accepted"
    if t == 3 and d is not None:
        return tables.reject_text(d.body.result, d.body.source, d.body.reason)
    if t == 7 and d is not None:
        return tables.abort_text(d.body.source, d.body.reason)
    return ""


def message_event(m, phi: bool = False) -> dict:
    """A ladder event for a DIMSE message (complete or cut); pairing with
    its request is the collector's (it knows the request's event)."""
    ev = {"kind": "dimse", "dir": m.direction, "name": m.name,
          "frames": [m.first_frame, m.last_frame], "ts": m.first_ts, "te": m.last_ts}
    mid = m.message_id
    if mid is not None:
        ev["msg_id"] = mid
    sop = m.exchange_sop_class
    if sop:
        ev["sop"] = uid_name(sop) or sop
    if m.has_dataset:
        ev["ds"] = m.dataset_len
        if m.dataset_missing:
            ev["missing"] = m.dataset_missing
    st = m.status
    if m.is_response and st is not None:
        cat, meaning = tables.status_info(st, m.command_field, sop_class=sop)
        ev.update(status=st, category=cat)
        if meaning != cat:
            ev["meaning"] = meaning
        if m.command_field in (MOVE_RSP, GET_RSP):
            ev["subops"] = _suboperations(m.command)
    dest = (m.command or {}).get("MoveDestination")
    if dest:
        ev["dest"] = str(dest).strip()
    if not m.complete:
        ev["incomplete"] = True
    if m.problems:
        ev["problems"] = m.problems[:3]
    if phi:
        _phi(m, ev)
    return ev


def _suboperations(c) -> dict:
    c = c or {}
    return {k.lower(): c.get(f"NumberOf{k}Suboperations")
            for k in ("Remaining", "Completed", "Failed", "Warning")}


def _phi(m, ev):
    """Patient and instance identifiers (--phi): the SOP Instance UID of the
    command, and for a C-STORE the data set's patient and study keys (one
    walk of the element headers, during the message hook)."""
    inst = m.sop_instance_uid
    if inst:
        ev["instance"] = inst
    if m.name != "C-STORE-RQ" or not m.has_dataset:
        return
    try:
        scanned = m.scan_dataset(tuple(PHI_TAGS))
    except (RuntimeError, ValueError):
        return
    if scanned:
        found = scanned[0]
        ids = {kw: dataset.text(found.get(tag)) for tag, kw in PHI_TAGS.items()}
        ev["patient"] = {k: v for k, v in ids.items() if v}


def association_info(a) -> dict:
    """What the page says of an association besides its ladder: AE titles,
    end points, how it went, its negotiation (read once, at its end)."""
    s = a.stream
    return {"calling": a.calling_ae, "called": a.called_ae, "negotiated": a.negotiated,
            "accepted": a.ac is not None, "rejected": a.rj is not None,
            "outcome": outcome(a), "stream": s.id,
            "client": format_endpoint(*s.client), "server": format_endpoint(*s.server),
            "negotiation": negotiation(a)}


def outcome(a) -> str:
    """How the association ended, in the words of the page."""
    from dicomwire.plugins.dicom.association import CAPTURE_ENDED, EVICTED
    if a.end == CAPTURE_ENDED:
        return "open"
    if a.end == EVICTED:
        return "not followed"
    if a.end == "closed":
        return "closed" if not a.released else "closed after release request"
    return a.end or "open"


def negotiation(a) -> dict:
    """The association's negotiation as a table: proposed contexts with
    their transfer syntaxes, answers, roles, maximum PDU lengths and
    implementations (user identity: its type only, never its values)."""
    return {
        "negotiated": a.negotiated,
        "max_pdu": list(a.max_pdu),
        "implementation": [list(i) if i else None for i in a.implementation],
        "async_window": [list(w) if w else None for w in a.async_window],
        "contexts": [_context(a, a.contexts[cid]) for cid in sorted(a.contexts)],
        "roles": [{"sop": named_uid(uid), "proposed": list(rq) if rq else None,
                   "accepted": list(ac) if ac else None}
                  for uid, (rq, ac) in a.roles.items()],
        "extended": [named_uid(uid) for uid in a.extended],
        "user_identity": _identity_type(a.user_identity),
    }


def _context(a, pc) -> dict:
    if pc.result is not None:
        result = tables.PCTX_RESULTS.get(pc.result, f"result {pc.result}")
    elif a.ac is not None or not a.negotiated:
        result = "not answered" if a.negotiated else "not captured"
    else:
        result = "proposed"
    accepted = pc.transfer_syntax if pc.result not in (1, 2, 3, 4) else None
    row = {"id": pc.id, "abstract": named_uid(pc.abstract_syntax),
           "offered": [named_uid(ts) for ts in pc.transfer_syntaxes],
           "result": result, "accepted": named_uid(accepted)}
    if pc.inferred:
        row["inferred"] = True
    return row


def _identity_type(ui) -> str | None:
    if ui is None:
        return None
    kinds = {1: "username", 2: "username and passcode", 3: "Kerberos", 4: "SAML", 5: "JWT"}
    kind = getattr(ui, "user_identity_type", None)
    return kinds.get(kind, f"type {kind}")
