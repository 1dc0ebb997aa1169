"""Query/Retrieve for the report: each C-FIND with its keys and match count,
and each C-MOVE with what is needed to find the callback association it
caused (PS3.4 C.4.2: the SCP opens a new association to the move
destination while the C-MOVE is in progress).

Key values are patient data: by default only the key names are kept (and
whether each one was a matching key or a return key), except the few keys
that say nothing about a patient (the query level, modalities); ``phi``
keeps every value.
"""

from __future__ import annotations

from dicomwire.plugins.dicom.qr import ALWAYS_OK, identifier

FIND_RQ, FIND_RSP, MOVE_RQ, MOVE_RSP, STORE_RQ = 0x0020, 0x8020, 0x0021, 0x8021, 0x0001
PENDING = (0xFF00, 0xFF01)
SAFE_KEYS = {"QueryRetrieveLevel", "Modality", "ModalitiesInStudy", "SpecificCharacterSet"}
MAX_QUERIES = 5_000          # C-FIND queries listed (more are counted)
MAX_OPEN = 1_000             # C-FINDs and C-MOVEs awaiting their final response, per run


class QueryRetrieve:
    """Collects C-FIND queries and C-MOVE operations as messages arrive."""

    def __init__(self, phi: bool = False):
        self.phi = phi
        self.finds: list[dict] = []      # the queries listed, in request order
        self.unlisted = 0                # queries beyond MAX_QUERIES
        self.moves: list[dict] = []      # C-MOVE-RQs: destination, time window, callbacks
        self._open: dict = {}            # id(request message) -> (message, record)
        # (association id, Move Originator AE, Move Originator Message ID) of
        # C-STOREs that name the C-MOVE they serve (PS3.7 9.1.1.1)
        self.originators: set = set()

    def message(self, m, ev, aid: int):
        """Called for every message with its ladder event (request events are
        updated later by the responses: the dicts are shared)."""
        cf = m.command_field
        if cf == FIND_RQ:
            self._find_request(m, ev, aid)
        elif cf == MOVE_RQ:
            self._move_request(m, ev, aid)
        elif cf in (FIND_RSP, MOVE_RSP) and m.request is not None:
            self._response(m)
        elif cf == STORE_RQ:
            c = m.command or {}
            orig = c.get("MoveOriginatorMessageID")
            if orig is not None:
                ae = str(c.get("MoveOriginatorApplicationEntityTitle") or "").strip()
                self.originators.add((aid, ae, orig))

    def _remember(self, m, record):
        if len(self._open) >= MAX_OPEN:        # never answered: forget the oldest
            self._open.pop(next(iter(self._open)))
        self._open[id(m)] = (m, record)

    def _find_request(self, m, ev, aid):
        if len(self.finds) >= MAX_QUERIES:
            self.unlisted += 1
            return
        q = {"assoc": aid, "event": ev, "sop": ev.get("sop"), "msg_id": ev.get("msg_id"),
             "frame": m.last_frame, "rq_ts": m.last_ts, "keys": [], "level": None,
             "matches": 0, "status": None, "end": None}
        ident = identifier(m) if m.has_dataset and m.complete else None
        for tag, (kw, vr, value) in sorted((ident or {}).items()):
            key = {"keyword": kw or f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
                   "matching": bool(value) and tag not in ALWAYS_OK}
            if value and (self.phi or kw in SAFE_KEYS):
                key["value"] = value
            q["keys"].append(key)
            if kw == "QueryRetrieveLevel":
                q["level"] = (value or "").strip() or None
        self.finds.append(q)
        self._remember(m, q)

    def _move_request(self, m, ev, aid):
        mv = {"assoc": aid, "event": ev, "msg_id": m.message_id, "dest": ev.get("dest"),
              "ts": m.last_ts, "end": None, "callbacks": []}
        self.moves.append(mv)
        self._remember(m, mv)

    def _response(self, m):
        entry = self._open.get(id(m.request))
        if entry is None or entry[0] is not m.request:
            return
        record = entry[1]
        if "matches" in record and m.has_dataset:
            record["matches"] += 1
        if m.status not in PENDING:
            record["status"] = m.status
            record["end"] = m.last_ts
            del self._open[id(m.request)]


def link_callbacks(qr: QueryRetrieve, by_id: dict, t0: int):
    """Each association to a C-MOVE's destination that started while the
    C-MOVE was in progress (from its request to its final response, or the
    end of its association) is that C-MOVE's callback; C-STOREs naming the
    C-MOVE as their Move Originator link theirs whatever the timing. The
    association gets ``callback_of``; the C-MOVE's association ``callbacks``
    and its event, if kept, ``callbacks`` too."""
    by_called: dict[str, list] = {}
    for a in by_id.values():
        if a["called"]:
            by_called.setdefault(a["called"], []).append(a)
    links: dict[int, tuple] = {}                 # callback id -> (move, how)
    for mv in sorted(qr.moves, key=lambda mv: mv["ts"]):     # the latest C-MOVE wins
        src = by_id.get(mv["assoc"])
        if src is None or not mv["dest"]:
            continue
        start = (mv["ts"] - t0) / 1e9
        end = (mv["end"] - t0) / 1e9 if mv["end"] is not None else src["end"]
        for a in by_called.get(mv["dest"], ()):
            if a is not src and a["start"] is not None and start <= a["start"] <= end:
                links[a["id"]] = (mv, "destination and time")
    links.update(originator_links(qr, by_id))
    _apply_links(links, by_id)


def originator_links(qr, by_id: dict) -> dict:
    """callback id -> (move, "move originator") from the C-STOREs' Move
    Originator AE title and Message ID (PS3.7 9.1.1.1)."""
    out = {}
    for aid, ae, orig in qr.originators:
        for mv in qr.moves:
            src = by_id.get(mv["assoc"])
            if src is not None and aid in by_id and aid != src["id"] \
                    and mv["msg_id"] == orig and (src["calling"] or "") == ae:
                out[aid] = (mv, "move originator")
    return out


def _apply_links(links: dict, by_id: dict):
    for aid, (mv, how) in sorted(links.items()):
        a, src, ev = by_id[aid], by_id[mv["assoc"]], mv["event"]
        a["callback_of"] = {"assoc": src["id"], "seq": ev["seq"], "by": how}
        src.setdefault("callbacks", []).append({"assoc": aid, "seq": ev["seq"]})
        if "t" in ev:                            # kept in the ladder (made relative)
            ev.setdefault("callbacks", []).append(aid)
