"""The report's collector: a plugin that keeps, during the one pass, what
the page shows, and builds the model at the end (``dicomwire_capture_end``).

Memory stays bounded whatever the capture: per association, counters and at
most :data:`HEAD` + :data:`TAIL` ladder events (the first and the last; the
ones between are counted, and the page says how many and where), at most
:data:`MAX_EVENTS` events over the whole capture, :data:`MAX_ASSOCS`
associations listed (the rest counted), bounded idle and query lists.
Nothing here reads a data set except a C-FIND identifier (small) and, with
``phi``, a C-STORE's element headers.
"""

from __future__ import annotations

import json
from collections import deque

from dicomwire.hookspecs import hookimpl
from dicomwire.plugins.dicom.expert_pdu import IDLE_S
from dicomwire.specs.dicom.tables import C_CANCEL_RQ

from dicomwire.exporters.report.events import PENDING, message_event, pdu_event
from dicomwire.exporters.report.queries import QueryRetrieve

HEAD, TAIL = 1_500, 500        # ladder events kept per association: the first, the last
MAX_EVENTS = 150_000           # ladder events kept over all associations
MAX_ASSOCS = 50_000            # associations listed with their ladder
MAX_IDLE = 200                 # idle periods kept per association
MAX_REQUESTS = 1_000           # requests awaiting a response, per association
IDLE_NS = int(IDLE_S * 1e9)    # the expert's threshold (dicom.timing.idle)


class Track:
    """What the report keeps of one association while the pass runs."""

    __slots__ = ("assoc", "id", "head", "tail", "seq", "first_frame", "last_frame",
                 "first_ts", "last_ts", "pdus", "bytes", "messages", "datasets", "objects",
                 "requests", "prev", "idle", "idle_seen", "end", "end_ts", "info")

    def __init__(self, assoc):
        self.assoc = assoc
        self.id = assoc.id
        self.head: list = []
        self.tail: deque = deque(maxlen=TAIL)
        self.seq = 0                     # events made (kept or left out)
        self.first_frame = self.last_frame = self.first_ts = self.last_ts = None
        self.pdus, self.bytes = [0, 0], [0, 0]
        self.messages = self.datasets = self.objects = 0
        self.requests: dict = {}         # id(request) -> (request, its event)
        self.prev = None                 # the last PDU: (frame, ts, direction, was a request)
        self.idle: list = []
        self.idle_seen = 0
        self.end = self.end_ts = None
        self.info: dict | None = None    # filled when it ends (the Association is let go)

    def events(self) -> list:
        return self.head + list(self.tail)


class ReportCollector:
    """The ``report`` exporter's plugin. ``phi``: keep patient identifiers;
    ``match``: a :class:`~dicomwire.plugins.dicom.show.PDUMatch` (``-Y``)
    registered beside it; after the pass, :attr:`model` is the page's data."""

    def __init__(self, phi: bool = False, match=None, filter_text: str | None = None):
        self.phi, self.match, self.filter_text = phi, match, filter_text
        self.tracks: dict[int, Track] = {}     # association id -> its track
        self.order: list[Track] = []
        # Associations beyond MAX_ASSOCS: counted by outcome, accepted, rejected.
        self.unlisted = {"outcomes": {}, "accepted": 0, "rejected": 0}
        self.kept = 0                          # ladder events kept, all associations
        self.qr = QueryRetrieve(phi)
        self.rsp_stats: dict[str, list] = {}   # response name -> [count, total s, max s]
        # JSON of a negotiation table -> its index: each distinct table kept
        # once (10,000 associations of one device pair share one).
        self.negotiations: dict[str, int] = {}
        self.capture = None
        self.model: dict | None = None

    @hookimpl
    def dicomwire_capture_start(self, capture):
        self.capture = capture

    @hookimpl
    def dicomwire_association_start(self, assoc):
        if len(self.order) >= MAX_ASSOCS:
            return
        t = self.tracks[assoc.id] = Track(assoc)
        self.order.append(t)

    @hookimpl
    def dicomwire_pdu(self, pdu):
        a = pdu.assoc
        t = self.tracks.get(a.id) if a is not None else None
        if t is None:
            return
        d = pdu.direction
        t.pdus[d] += 1
        t.bytes[d] += pdu.length + 6
        if t.first_frame is None:
            t.first_frame, t.first_ts = pdu.first_frame, pdu.first_ts
        t.last_frame, t.last_ts = pdu.last_frame, pdu.last_ts
        self._idle(t, pdu)
        if pdu.type != 4:
            self._add(t, pdu_event(pdu))

    def _idle(self, t, pdu):
        """Pauses between PDUs, judged as dicom.timing.idle judges them:
        after a request the other side was awaited; otherwise nobody was."""
        prev = t.prev
        t.prev = (pdu.last_frame, pdu.last_ts, pdu.direction, pdu.carries_request())
        if prev is None or pdu.first_ts - prev[1] <= IDLE_NS:
            return
        t.idle_seen += 1
        if len(t.idle) < MAX_IDLE:
            frame, ts, direction, was_request = prev
            waiting = (("acceptor" if direction == 0 else "requestor") if was_request
                       else None)
            t.idle.append({"from": frame, "to": pdu.first_frame, "ts": ts,
                           "seconds": (pdu.first_ts - ts) / 1e9, "waiting_for": waiting,
                           "next_sender": "requestor" if pdu.direction == 0 else "acceptor"})

    @hookimpl
    def dicomwire_message(self, message):
        m = message
        t = self.tracks.get(m.assoc.id) if m.assoc is not None else None
        if t is None:
            return
        t.messages += 1
        if m.has_dataset:
            t.datasets += 1
            t.objects += m.name == "C-STORE-RQ"
        ev = message_event(m, self.phi)
        if m.request is not None:
            self._pair(t, m, ev)
        elif not m.is_response and m.command_field not in (None, C_CANCEL_RQ):
            # a request, which owes a response (a C-CANCEL-RQ owes none)
            if len(t.requests) >= MAX_REQUESTS:
                t.requests.pop(next(iter(t.requests)))
            t.requests[id(m)] = (m, ev)
        self._add(t, ev)
        self.qr.message(m, ev, t.id)

    def _pair(self, t, m, ev):
        """A response (or a C-CANCEL-RQ) and its request's event, both ways."""
        entry = t.requests.get(id(m.request))
        req = entry[1] if entry is not None and entry[0] is m.request else None
        if m.command_field == C_CANCEL_RQ:
            if req is not None:
                ev["cancels"] = req
            return
        if req is not None:
            ev["pair"] = req
            if req.get("sop") == ev.get("sop"):
                ev.pop("sop", None)              # the request's arrow names it
        if m.response_time is not None:
            secs = m.response_time / 1e9
            ev["rsp_time"] = secs
            s = self.rsp_stats.setdefault(m.name, [0, 0.0, 0.0])
            s[0] += 1
            s[1] += secs
            s[2] = max(s[2], secs)
        if req is not None and m.status not in PENDING:
            req["rsp"] = ev
            del t.requests[id(m.request)]
        elif req is not None:
            req["pending"] = req.get("pending", 0) + 1      # answered, not finally yet

    def _add(self, t, ev):
        """Keep the event (the first HEAD, the last TAIL of each association,
        MAX_EVENTS in all) or count it as left out (its seq is skipped)."""
        ev["seq"] = t.seq
        t.seq += 1
        if len(t.head) < HEAD and self.kept < MAX_EVENTS:
            t.head.append(ev)
            self.kept += 1
        elif len(t.tail) == t.tail.maxlen and t.tail.maxlen:
            t.tail.append(ev)                    # the oldest of the tail is left out
        elif self.kept < MAX_EVENTS:
            t.tail.append(ev)
            self.kept += 1
        elif t.tail:
            t.tail = deque(t.tail, maxlen=len(t.tail))
            t.tail.append(ev)
        elif ev["kind"] == "assoc":
            t.head.append(ev)                    # over budget: how it ended still shows

    @hookimpl
    def dicomwire_association_end(self, assoc):
        from dicomwire.exporters.report.events import outcome
        t = self.tracks.get(assoc.id)
        if t is None:
            u, how = self.unlisted, outcome(assoc)
            u["outcomes"][how] = u["outcomes"].get(how, 0) + 1
            u["accepted"] += assoc.ac is not None
            u["rejected"] += assoc.rj is not None
            return
        t.end, t.end_ts = assoc.end, assoc.end_ts
        t.info = self.info(assoc)
        for _m, ev in t.requests.values():
            ev["unanswered"] = "association ended" if t.info["outcome"] not in (
                "open", "not followed") else "capture ended"
        t.requests.clear()
        t.assoc = None                          # its decoded PDUs are not needed any more

    def info(self, assoc) -> dict:
        """The association's facts, its negotiation table as an index."""
        from dicomwire.exporters.report.events import association_info
        info = association_info(assoc)
        key = json.dumps(info["negotiation"], sort_keys=True)
        info["negotiation"] = self.negotiations.setdefault(key, len(self.negotiations))
        return info

    @hookimpl(trylast=True)
    def dicomwire_capture_end(self, result):
        from dicomwire.exporters.report.build import build_model
        self.model = build_model(self, result)
