"""Checks of the normalized services a modality relies on after the images
are sent: Storage Commitment (PS3.4 Annex J) and Modality Performed
Procedure Step (PS3.4 Annex F).

Storage Commitment: the N-ACTION-RQ asks the SCP to take responsibility for
a list of instances (a Transaction UID names the request); the answer is an
N-EVENT-REPORT-RQ, on the same association or a later one in either
direction (J.3.3), event 1 when all were committed, 2 when some failed
(Failed SOP Sequence (0008,1198), each with a Failure Reason (0008,1197)).
A modality deletes only what was committed, so failures matter.

MPPS: N-CREATE starts a procedure step (its SOP Instance UID names it),
N-SETs update it; an N-SET for a step whose N-CREATE is not in the capture
is worth a note (it may have been created before the capture began).
"""

from __future__ import annotations

from dicomwire.expert import ExpertField as F
from dicomwire.hookspecs import FOLLOWING, hookimpl
from dicomwire.plugins.dicom.association import CAPTURE_ENDED, EVICTED
from dicomwire.specs.dicom import tables

N_CREATE_RSP = tables.N_CREATE_RQ | tables.COMMAND_RESPONSE_BIT
N_ACTION_RSP = tables.N_ACTION_RQ | tables.COMMAND_RESPONSE_BIT
FAILURES_SHOWN = 5

FIELDS = (
    F("dicom.stgcmt.failed", "warn", "response-code",
      "Storage commitment failed for some instances (N-EVENT-REPORT event 2, Failed SOP "
      "Sequence): the SCP did not take responsibility for them"),
    F("dicom.stgcmt.no_report", "note", "sequence",
      "Storage commitment was requested (N-ACTION) but no N-EVENT-REPORT for its "
      "transaction is in the capture"),
    F("dicom.mpps.set_without_create", "note", "sequence",
      "An MPPS N-SET for a procedure step whose N-CREATE is not in the capture"),
)


@hookimpl
def dicomwire_expert_fields():
    return FIELDS


def _state(expert):
    # Per run: transactions asked for (UID -> request facts) and MPPS
    # instances created (UID -> None, the least recently used first), across
    # associations; "forgotten": steps a live run let go of (see _mpps).
    # "open": association id -> the UIDs of the transactions it asked for.
    # "followed": a commitment asked for while following a stream through
    # (--dask: the other streams of those files unread; its report may
    # have come on one, and the transaction is gone from "transactions").
    return expert.state.setdefault("dicom.nservices", {"transactions": {}, "open": {},
                                                       "mpps": {}, "forgotten": 0,
                                                       "followed": False})


@hookimpl
def dicomwire_message(message, expert):
    m = message
    cf = m.command_field
    if cf is None:
        return
    cls = m.exchange_sop_class
    if cls == tables.STORAGE_COMMITMENT_SOP_CLASS:
        if cf == tables.N_ACTION_RQ:
            _commitment_request(m, expert)
        elif cf == N_ACTION_RSP:
            _commitment_refused(m, expert)
        elif cf == tables.N_EVENT_REPORT_RQ:
            _commitment_report(m, expert)
    elif cls == tables.MPPS_SOP_CLASS:
        _mpps(m, cf, expert)


def _dataset(m):
    """The message's data set (pydicom), or None when absent or unreadable."""
    if not m.has_dataset or not m.complete:
        return None
    try:
        return m.dataset()
    except Exception:          # an unreadable data set has its own finding
        return None


def _get(ds, keyword):
    """An attribute's value, or None: pydicom decodes values lazily, so a
    malformed one raises only here (a damaged report must not stop the check)."""
    try:
        return ds.get(keyword)
    except Exception:
        return None


def _items(ds, keyword) -> list:
    value = _get(ds, keyword)
    try:
        return list(value or ())
    except Exception:
        return []


def _reason(item) -> str:
    """A Failure Reason (0008,1197) in words, whatever its shape."""
    value = _get(item, "FailureReason")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        code = int(value)
    except (TypeError, ValueError):
        return "no readable Failure Reason" if value is None else f"Failure Reason {value!r}"
    return f"0x{code:04X} {tables.failure_reason(code)}"


def _where(m):
    a = m.assoc
    return (a.stream.id, a.id) if a is not None else (None, None)


def _commitment_request(m, expert):
    ds = _dataset(m)
    uid = _get(ds, "TransactionUID") if ds is not None else None
    if not uid:
        return
    st = _state(expert)
    st["followed"] |= bool(expert.state.get(FOLLOWING))
    st["transactions"][str(uid)] = dict(
        frame=m.last_frame, count=len(_items(ds, "ReferencedSOPSequence")), where=_where(m),
        assoc=m.assoc, request=m)
    if m.assoc is not None:
        st["open"].setdefault(m.assoc.id, []).append(str(uid))


def _commitment_refused(m, expert):
    # A refused N-ACTION starts no transaction: no report is to come.
    if m.request is None or m.status is None:
        return
    cat, _meaning = tables.status_info(m.status, m.command_field,
                                       sop_class=tables.STORAGE_COMMITMENT_SOP_CLASS)
    if cat == tables.FAILURE:
        pending = _state(expert)["transactions"]
        for uid in [u for u, t in pending.items() if t["request"] is m.request]:
            del pending[uid]


def _commitment_report(m, expert):
    ds = _dataset(m)
    if ds is None:
        return
    uid = str(_get(ds, "TransactionUID") or "")
    _state(expert)["transactions"].pop(uid, None)
    failed = _items(ds, "FailedSOPSequence")
    if not failed:
        return
    done = len(_items(ds, "ReferencedSOPSequence"))
    lines = [f"{_get(item, 'ReferencedSOPInstanceUID') or '?'} ({_reason(item)})"
             for item in failed[:FAILURES_SHOWN]]
    more = len(failed) - FAILURES_SHOWN
    sid, aid = _where(m)
    expert.report("dicom.stgcmt.failed",
                  f"N-EVENT-REPORT (transaction {uid or '?'}): {len(failed)} of "
                  f"{len(failed) + done} instance(s) not committed: " + "; ".join(lines)
                  + (f"; and {more} more" if more > 0 else "")
                  + ": the modality must not delete them; send them again, then ask for "
                    "commitment again", [m.last_frame], sid, aid)


def _mpps(m, cf, expert):
    st = _state(expert)
    created, uid = st["mpps"], m.sop_instance_uid
    if not uid or cf not in (tables.N_CREATE_RQ, N_CREATE_RSP, tables.N_SET_RQ):
        return
    known = created.pop(uid, False) is None
    created[uid] = None                 # (on N-CREATE-RSP: the SCP chose the UID)
    if expert.retain is not None and len(created) > expert.retain:
        # A live run keeps as many steps as findings, the least recently used
        # out: days of monitoring in bounded memory.
        del created[next(iter(created))]
        st["forgotten"] += 1
    if cf == tables.N_SET_RQ and not known:       # said once per procedure step
        sid, aid = _where(m)
        older = (f", or among the {st['forgotten']} steps this live run no longer "
                 f"remembers" if st["forgotten"] else "")
        expert.report("dicom.mpps.set_without_create",
                      f"N-SET-RQ ID={m.message_id} of procedure step {uid}: "
                      f"its N-CREATE is not in the capture (sent before the capture began, "
                      f"or to another SCP{older}); a 0x0112 'No such SOP Instance' answer would "
                      f"mean the SCP never got it", [m.last_frame], sid, aid)


@hookimpl
def dicomwire_association_end(assoc, expert):
    # A transaction's report may come on any association, but its request's
    # association is needed no more: keep only how it ended (for the note).
    st = expert.state.get("dicom.nservices")
    for uid in st["open"].pop(assoc.id, ()) if st else ():
        t = st["transactions"].get(uid)
        if t is not None and t["assoc"] is assoc:
            t["assoc"], t["request"], t["ended"] = None, None, assoc.end


@hookimpl
def dicomwire_capture_end(result):
    st = result.expert.state.get("dicom.nservices")
    if not st:
        return
    for uid, t in st["transactions"].items():
        sid, aid = t["where"]
        a = t["assoc"]
        ended = (a.end if a is not None else t.get("ended")) in (CAPTURE_ENDED, EVICTED)
        text = (f"Storage commitment for {t['count']} instance(s) (transaction {uid}) "
                f"requested in frame {t['frame']}: no N-EVENT-REPORT in the capture; "
                + ("the capture ended first (the report may come later, often on a new "
                   "association from the SCP)" if ended else
                   "the SCP sends it on this or a later association (a longer capture "
                   "would show it), or never sent it (check its log and the modality's "
                   "SCP port)"))
        result.expert.report("dicom.stgcmt.no_report", text, [t["frame"]], sid, aid)


@hookimpl
def dicomwire_handover_pending(expert):
    # Storage commitment reports and MPPS N-SETs may come on other associations.
    st = expert.state.get("dicom.nservices")
    if st and (st["transactions"] or st["mpps"] or st["followed"]):
        return ["storage commitment or MPPS state that other associations may continue"]
