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
from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom.dissector import CAPTURE_ENDED
from dicomwire.specs.dicom import tables

STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"     # Storage Commitment Push Model SOP Class
MPPS = "1.2.840.10008.3.1.2.3.3"                 # Modality Performed Procedure Step SOP Class
N_EVENT_REPORT_RQ, N_SET_RQ, N_ACTION_RQ, N_CREATE_RQ, N_CREATE_RSP = (
    0x0100, 0x0120, 0x0130, 0x0140, 0x8140)
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
    # instances created, across associations.
    return expert.state.setdefault("dicom.nservices", {"transactions": {}, "mpps": set()})


@hookimpl
def dicomwire_message(message, expert):
    m = message
    cf = m.command_field
    if cf is None:
        return
    cls = m.exchange_sop_class
    if cls == STORAGE_COMMITMENT:
        if cf == N_ACTION_RQ:
            _commitment_request(m, expert)
        elif cf == N_EVENT_REPORT_RQ:
            _commitment_report(m, expert)
    elif cls == MPPS:
        _mpps(m, cf, expert)


def _dataset(m):
    """The message's data set (pydicom), or None when absent or unreadable."""
    if not m.has_dataset or not m.complete:
        return None
    try:
        return m.dataset()
    except Exception:          # an unreadable data set has its own finding
        return None


def _where(m):
    a = m.assoc
    return (a.stream.id, a.id) if a is not None else (None, None)


def _commitment_request(m, expert):
    ds = _dataset(m)
    uid = ds.get("TransactionUID") if ds is not None else None
    if not uid:
        return
    refs = ds.get("ReferencedSOPSequence") or []
    _state(expert)["transactions"][str(uid)] = dict(
        frame=m.last_frame, count=len(refs), where=_where(m), assoc=m.assoc)


def _commitment_report(m, expert):
    ds = _dataset(m)
    if ds is None:
        return
    uid = str(ds.get("TransactionUID") or "")
    _state(expert)["transactions"].pop(uid, None)
    failed = ds.get("FailedSOPSequence") or []
    if not failed:
        return
    done = len(ds.get("ReferencedSOPSequence") or [])
    lines = []
    for item in failed[:FAILURES_SHOWN]:
        reason = item.get("FailureReason")
        why = (f"0x{int(reason):04X} {tables.failure_reason(int(reason))}"
               if reason is not None else "no Failure Reason")
        lines.append(f"{item.get('ReferencedSOPInstanceUID', '?')} ({why})")
    more = len(failed) - FAILURES_SHOWN
    sid, aid = _where(m)
    expert.report("dicom.stgcmt.failed",
                  f"N-EVENT-REPORT (transaction {uid or '?'}): {len(failed)} of "
                  f"{len(failed) + done} instance(s) not committed: " + "; ".join(lines)
                  + (f"; and {more} more" if more > 0 else "")
                  + ": the modality must not delete them; send them again, then ask for "
                    "commitment again", [m.last_frame], sid, aid)


def _mpps(m, cf, expert):
    created = _state(expert)["mpps"]
    if cf == N_CREATE_RQ and m.sop_instance_uid:
        created.add(m.sop_instance_uid)
    elif cf == N_CREATE_RSP and m.sop_instance_uid:
        created.add(m.sop_instance_uid)          # the SCP chose the instance UID
    elif cf == N_SET_RQ and m.sop_instance_uid and m.sop_instance_uid not in created:
        created.add(m.sop_instance_uid)          # said once per procedure step
        sid, aid = _where(m)
        expert.report("dicom.mpps.set_without_create",
                      f"N-SET-RQ ID={m.message_id} of procedure step {m.sop_instance_uid}: "
                      f"its N-CREATE is not in the capture (sent before the capture began, "
                      f"or to another SCP); a 0x0112 'No such SOP Instance' answer would "
                      f"mean the SCP never got it", [m.last_frame], sid, aid)


@hookimpl
def dicomwire_capture_end(result):
    st = result.expert.state.get("dicom.nservices")
    if not st:
        return
    for uid, t in st["transactions"].items():
        sid, aid = t["where"]
        a = t["assoc"]
        ended = a is not None and a.end == CAPTURE_ENDED
        text = (f"Storage commitment for {t['count']} instance(s) (transaction {uid}) "
                       f"requested in frame {t['frame']}: no N-EVENT-REPORT in the capture; "
                       + ("the capture ended first (the report may come later, often on "
                          "a new association from the SCP)" if ended else
                          "the SCP sends it on this or a later association (capture longer), "
                          "or never sent it (check its log and the modality's SCP port)"))
        result.expert.report("dicom.stgcmt.no_report", text, [t["frame"]], sid, aid)
