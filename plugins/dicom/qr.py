"""Query/Retrieve checks: the DICOM wiki's "C-FIND issues" and "C-MOVE issues".

C-FIND: each request's identifier is compared with its responses and with the
next request (PS3.4 C.2.2: empty keys are return keys, others match). C-MOVE:
the move destination, the callback association from the SCP to it (linked by
its called AE title and the C-STOREs' Move Originator fields, PS3.7 9.1.4.1),
and the sub-operation counts of the final response. C-GET: the SCP role the
retrieving side must accept for the storage classes it receives (PS3.4 C.4.3).
"""

from __future__ import annotations

from dicomwire.expert import ExpertField as F
from dicomwire.hookspecs import FOLLOWING, hookimpl

FIELDS = (
    F("dicom.find.no_match", "note", "response-code",
      "A C-FIND returned no matches: compare the query keys with the stored values"),
    F("dicom.find.trailing_space", "note", "protocol",
      "A C-FIND key value ends in spaces beyond the padding: matching may fail"),
    F("dicom.find.pn_components", "chat", "protocol",
      "A C-FIND Person Name key has '^' components: matching is per component"),
    F("dicom.find.over_defined", "note", "protocol",
      "A C-FIND with several matching keys returned nothing: the query may be over-defined"),
    F("dicom.find.unrequested_keys", "chat", "protocol",
      "C-FIND responses returned keys the request did not ask for"),
    F("dicom.find.missing_keys", "note", "protocol",
      "Return keys asked for by a C-FIND were never returned"),
    F("dicom.find.altered_key", "note", "protocol",
      "A follow-up C-FIND used a returned value in a different form (spaces, case)"),
    F("dicom.move.destination_unknown", "warn", "response-code",
      "C-MOVE destination unknown to the SCP (status A801)"),
    F("dicom.move.suboperations", "warn", "response-code",
      "C-MOVE / C-GET sub-operations failed or completed with warnings"),
    F("dicom.move.no_callback", "warn", "sequence",
      "No callback association to the move destination was seen"),
    F("dicom.move.callback", "chat", "sequence",
      "The callback association a C-MOVE caused"),
    F("dicom.move.callback_rejected", "warn", "response-code",
      "The callback association to the move destination was rejected"),
    F("dicom.get.no_scp_role", "warn", "protocol",
      "C-GET on an association where the retrieving side did not get the SCP role "
      "for any storage class"),
)

FIND_RQ, FIND_RSP, MOVE_RQ, MOVE_RSP, GET_RQ, GET_RSP = (0x0020, 0x8020, 0x0021, 0x8021,
                                                         0x0010, 0x8010)
# Keys that responses may carry without being asked (PS3.4 C.4.1.1.3.2, C.3.4).
ALWAYS_OK = {0x00080005, 0x00080052, 0x00080054, 0x00080056, 0x00880130, 0x00880140}


@hookimpl
def dicomwire_expert_fields():
    return FIELDS


def identifier(message) -> dict | None:
    """tag -> (keyword, VR, value as sent) of an identifier data set's top
    level. Values come from the raw bytes (the trailing spaces are what some
    checks look for); element headers are walked (PS3.5 7.1), VRs of implicit
    VR identifiers come from the dictionary. None if it does not parse."""
    from dicomwire.specs.dicom import dictionary
    from dicomwire.specs.dicom.dataset import UNDEFINED, walk
    try:
        raw, implicit, little = message.plain_dataset()
        out = {}
        for _off, tag, vr, length, voff, depth in walk(
                raw, implicit, little, vr_of=dictionary.vr, sequences=False):
            if depth or tag >> 16 == 0xFFFE:
                continue                     # inside a sequence; items and delimiters
            vr = vr or dictionary.vr(tag) or "UN"
            if vr == "SQ" or length == UNDEFINED:
                out[tag] = (dictionary.keyword(tag), "SQ", None)
                continue
            text = bytes(raw[voff:voff + length]).decode("latin-1").rstrip("\0")
            out[tag] = (dictionary.keyword(tag), vr, text)
        return out
    except Exception:
        return None


def _state(expert):
    # "followed": a C-MOVE seen while following a stream through (--dask: its
    # callbacks may be on the other streams of those files, unread).
    return expert.state.setdefault("dicom.qr", {"finds": {}, "last_find": {}, "moves": [],
                                                "followed": False})


@hookimpl
def dicomwire_message(message, expert):
    m = message
    cf = m.command_field
    if cf not in (FIND_RQ, FIND_RSP, MOVE_RQ, MOVE_RSP, GET_RQ, GET_RSP, 0x0001):
        return
    a = m.assoc
    if a is None:
        return
    st = _state(expert)
    sid, aid = a.stream.id, a.id
    if cf == FIND_RQ and m.has_dataset and m.complete:
        ident = identifier(m)
        if ident is not None:
            _find_request(m, ident, st, expert, sid, aid)
    elif cf == FIND_RSP and m.request is not None:
        f = st["finds"].get(id(m.request))
        if f is None:
            return
        if m.has_dataset and m.complete:
            ident = identifier(m)
            if ident:
                f["matches"] += 1
                f["returned"] |= set(ident)
                f["values"].append(ident)
        if m.status not in (0xFF00, 0xFF01):
            _find_done(m, f, st, expert, sid, aid)
            del st["finds"][id(m.request)]
    elif cf == MOVE_RQ:
        dest = (m.command or {}).get("MoveDestination")
        st["moves"].append(dict(assoc=a, msg_id=m.message_id, dest=dest, frame=m.last_frame,
                                ts=m.last_ts, callbacks=[], done=False))
        st["followed"] |= bool(expert.state.get(FOLLOWING))
    elif cf == MOVE_RSP:
        _move_response(m, st, expert, sid, aid)
    elif cf == GET_RQ:
        accepted = [r for r in a.roles.values() if r[1] and r[1][1]]
        if a.negotiated and a.ac is not None and not accepted:
            expert.report("dicom.get.no_scp_role", f"C-GET-RQ ID={m.message_id}: no SCP/SCU "
                          f"role selection accepted the retrieving side as SCP: the objects "
                          f"cannot be sent back on this association", [m.last_frame], sid, aid)
    elif cf == GET_RSP:
        _suboperations(m, expert, sid, aid)
    elif cf == 0x0001:
        _callback_store(m, st)


def _find_request(m, ident, st, expert, sid, aid):
    frames = [m.last_frame]
    matching = {t: v for t, v in ident.items() if v[2] and t not in ALWAYS_OK}
    for t, (kw, vr, raw) in matching.items():
        # One trailing space pads an odd length (PS3.5 6.2); more is content.
        if raw.endswith("  ") or (raw.endswith(" ") and len(raw) % 2 == 1):
            expert.report("dicom.find.trailing_space", f"C-FIND-RQ ID={m.message_id}: "
                          f"{kw} {raw!r} ends in spaces", frames, sid, aid)
        if vr == "PN" and "^" in raw:
            expert.report("dicom.find.pn_components", f"C-FIND-RQ ID={m.message_id}: {kw} "
                          f"{raw!r} matches component by component (family^given^...)",
                          frames, sid, aid)
    prev = st["last_find"].get(aid)
    if prev is not None:
        for t, (kw, _vr, raw) in matching.items():
            for returned in prev:
                got = returned.get(t)
                if got and got[2] and got[2] != raw and (
                        got[2].strip().lower() == raw.strip().lower()):
                    expert.report("dicom.find.altered_key", f"C-FIND-RQ ID={m.message_id}: "
                                  f"{kw} {raw!r} where a previous response returned "
                                  f"{got[2]!r}", frames, sid, aid)
                    break
    st["finds"][id(m)] = dict(request=m.message_id, frame=m.last_frame, ident=ident, aid=aid,
                              matching=matching, matches=0, returned=set(), values=[])


def _find_done(m, f, st, expert, sid, aid):
    frames = [f["frame"], m.last_frame]
    rq = f"C-FIND-RQ ID={f['request']}"
    keys = ", ".join(f"{kw}={raw!r}" for kw, _vr, raw in f["matching"].values()) or "none"
    if f["matches"] == 0 and m.status == 0:
        if len(f["matching"]) >= 3:
            expert.report("dicom.find.over_defined", f"{rq}: no match for {len(f['matching'])} "
                          f"matching keys ({keys}): try fewer keys or wildcards", frames, sid, aid)
        else:
            expert.report("dicom.find.no_match", f"{rq}: no match (matching keys: {keys})",
                          frames, sid, aid)
    if f["matches"]:
        asked = {t for t in f["ident"] if t not in ALWAYS_OK}
        extra = sorted(f["returned"] - asked - ALWAYS_OK)
        if extra:
            names = ", ".join(f["values"][0].get(t, (f"{t:08X}",))[0]
                              for t in extra if t in f["values"][0]) or f"{len(extra)} tags"
            expert.report("dicom.find.unrequested_keys", f"{rq}: responses returned keys not "
                          f"asked for: {names}", frames, sid, aid)
        missing = [f["ident"][t][0] for t in sorted(asked - f["returned"])]
        if missing:
            expert.report("dicom.find.missing_keys", f"{rq}: return keys never returned: "
                          f"{', '.join(missing)}", frames, sid, aid)
    st["last_find"][aid] = f["values"]


def _suboperations(m, expert, sid, aid):
    c = m.command or {}
    failed = c.get("NumberOfFailedSuboperations") or 0
    warned = c.get("NumberOfWarningSuboperations") or 0
    if m.status in (0xFF00, 0xFF01) or not (failed or warned):
        return
    done = c.get("NumberOfCompletedSuboperations") or 0
    expert.report("dicom.move.suboperations", f"{m.name} ID={m.message_id}: {failed} failed, "
                  f"{warned} with warnings, {done} completed", [m.last_frame], sid, aid)


def _move_response(m, st, expert, sid, aid):
    mv = next((x for x in st["moves"] if x["assoc"] is m.assoc and x["msg_id"] == m.message_id
               and not x["done"]), None)
    dest = mv["dest"] if mv else (m.request.command or {}).get("MoveDestination") \
        if m.request else None
    if m.status == 0xA801:
        expert.report("dicom.move.destination_unknown", f"C-MOVE-RSP ID={m.message_id}: the "
                      f"SCP does not know the move destination {dest!r}: configure that AE "
                      f"title (with host and port) on the Q/R SCP", [m.last_frame], sid, aid)
    _suboperations(m, expert, sid, aid)
    if mv is None or m.status in (0xFF00, 0xFF01):
        return
    mv["done"] = True
    st["moves"].remove(mv)              # answered: nothing links to it any more (bounded)
    completed = (m.command or {}).get("NumberOfCompletedSuboperations") or 0
    if mv["callbacks"]:
        for cb in mv["callbacks"]:
            expert.report("dicom.move.callback", f"C-MOVE-RQ ID={mv['msg_id']} to {dest!r}: "
                          f"callback association {cb.id} ({cb.label()}, TCP stream "
                          f"{cb.stream.id})", [mv["frame"], cb.rq_frame], sid, aid)
            if cb.rj is not None:
                expert.report("dicom.move.callback_rejected", f"C-MOVE-RQ ID={mv['msg_id']}: "
                              f"the callback association to {dest!r} was rejected: check the "
                              f"destination's configuration of the Q/R SCP's AE title",
                              [cb.rj_frame], cb.stream.id, cb.id)
    elif completed or m.status == 0:
        expert.report("dicom.move.no_callback", f"C-MOVE-RQ ID={mv['msg_id']} to {dest!r}: no "
                      f"association to that AE title is in the capture; capture at the Q/R "
                      f"SCP's side, or check its AE configuration (host, port) for {dest!r}",
                      [mv["frame"], m.last_frame], sid, aid)


@hookimpl
def dicomwire_association_end(assoc, expert):
    # Repeated queries are compared within an association: its last one goes with it.
    st = _state(expert)
    st["last_find"].pop(assoc.id, None)
    # Responses come on their request's association: a C-FIND or C-MOVE it
    # left unanswered can report nothing more (days of live capture).
    for key in [k for k, f in st["finds"].items() if f["aid"] == assoc.id]:
        del st["finds"][key]
    st["moves"] = [mv for mv in st["moves"] if mv["assoc"] is not assoc]


@hookimpl
def dicomwire_association_start(assoc, expert):
    # A new association to a pending C-MOVE's destination is its callback.
    st = _state(expert)
    for mv in st["moves"]:
        if not mv["done"] and mv["dest"] and assoc.called_ae == mv["dest"] \
                and assoc not in mv["callbacks"]:
            mv["callbacks"].append(assoc)


def _callback_store(m, st):
    # C-STOREs carrying Move Originator fields link their association too.
    c = m.command or {}
    orig = c.get("MoveOriginatorMessageID")
    if orig is None:
        return
    for mv in st["moves"]:
        if mv["msg_id"] == orig and mv["assoc"].calling_ae == c.get(
                "MoveOriginatorApplicationEntityTitle") and m.assoc not in mv["callbacks"]:
            mv["callbacks"].append(m.assoc)


@hookimpl
def dicomwire_handover_pending(expert):
    # A C-MOVE still running: its callback associations may be in the next run.
    st = expert.state.get("dicom.qr", {})
    if any(not mv["done"] for mv in st.get("moves", ())):
        return ["a C-MOVE is still running (its callbacks may come on other streams)"]
    if st.get("followed"):
        return ["a C-MOVE on a stream followed into the next run (its callbacks unread)"]
