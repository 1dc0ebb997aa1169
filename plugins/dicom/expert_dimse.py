"""DICOM expert checks on DIMSE messages, run once per message.

A message cut short, invalid UIDs in its command, Message IDs reused or
answered without a request, the asynchronous operations window, slow
responses, a data set's structure and its SOP UIDs against the command,
transfer rates and who slowed a transfer, and response statuses (failures,
MPPS refusals, the responder's error comment). Apart from the PDU and
negotiation checks because they read the decoded command and data set, not
the PDUs that carried them. ``check_message`` is the hook
``dicomwire_message`` of the plugin ``dicom-expert`` (``expert.py`` binds
it there, no call in between).
"""

from __future__ import annotations

from dicomwire.plugins.dicom.expert_pdu import uid_problem
from dicomwire.specs.dicom import dataset, tables

SLOW_RESPONSE_S = 5.0       # responses later than this get a note
SENDER_STALL_SHARE = 0.2    # sender pauses over this share of a transfer make it sender-bound
SOP_CLASS, SOP_INSTANCE = 0x00080016, 0x00080018


def check_message(message, expert):
    """The checks of one DIMSE message, complete or cut short (the hook
    ``dicomwire_message``; the data set is readable only now)."""
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
