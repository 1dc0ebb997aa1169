"""Where things go on the page, decided here so it can be tested without a
browser: the rows of each ladder and the lanes of the timeline.

A ladder has one row per event, in the order the events completed (the
order Wireshark lists PDUs in), and a marker row where something happened
between two arrows: events left out (the middle of a very long
association), or an idle period (a pause longer than the expert's
threshold, placed before the arrow whose frames end it). The timeline puts
each association on the first lane that is free when it starts, so
sequential associations share a lane and concurrent ones stack.
"""

from __future__ import annotations

import heapq

from dicomwire.plugins.dicom.expert_dimse import SLOW_RESPONSE_S


def place(assocs: list, by_id: dict, idle_lists: list, t0: int):
    """Rows and markers of every ladder (``row`` on each event, ``markers``
    and ``rows`` on the association), slow responses flagged, idle periods
    made relative (``idle``), and the timeline ``lane`` of each."""
    for a, idle in zip(assocs, idle_lists):
        a["idle"] = [_idle(p, t0) for p in idle]
        _ladder_rows(a)
    _lanes(assocs)


def _idle(p, t0) -> dict:
    q = dict(p)
    q["t"] = round((q.pop("ts") - t0) / 1e9, 6)
    q["seconds"] = round(q["seconds"], 6)
    return q


def _ladder_rows(a):
    events = sorted(a["events"], key=lambda e: e["seq"])
    a["events"] = events
    pauses = sorted(enumerate(a["idle"]), key=lambda ip: ip[1]["to"])
    markers, row, prev, k = [], 0, -1, 0
    for ev in events:
        if ev["seq"] > prev + 1:
            markers.append({"row": row, "kind": "left_out", "count": ev["seq"] - prev - 1})
            row += 1
        while k < len(pauses) and pauses[k][1]["to"] <= ev["frames"][1]:
            markers.append({"row": row, "kind": "idle", "idle": pauses[k][0]})
            row, k = row + 1, k + 1
        ev["row"] = row
        row += 1
        prev = ev["seq"]
        if ev.get("rsp_time") is not None and ev["rsp_time"] > SLOW_RESPONSE_S:
            ev["slow"] = True
    trailing = len(events) + a["left_out"] - (prev + 1)
    if trailing > 0:                         # left out after the last event kept
        markers.append({"row": row, "kind": "left_out", "count": trailing})
        row += 1
    for i, _p in pauses[k:]:
        markers.append({"row": row, "kind": "idle", "idle": i})
        row += 1
    a["markers"], a["rows"] = markers, row


def _lanes(assocs):
    free: list = []                           # (end, lane) of each lane in use
    lanes = 0
    for a in sorted(assocs, key=lambda a: (a["start"] or 0, a["id"])):
        start = a["start"] or 0
        end = max(a["end"] if a["end"] is not None else start, start)
        if free and free[0][0] < start:
            _end, lane = heapq.heappop(free)
        else:
            lane, lanes = lanes, lanes + 1
        a["lane"] = lane
        heapq.heappush(free, (end, lane))


def timeline(assocs: list) -> dict:
    """The timeline's span (seconds) and number of lanes."""
    starts = [a["start"] for a in assocs if a["start"] is not None]
    ends = [a["end"] for a in assocs if a["end"] is not None]
    return {"start": min(starts, default=0.0), "end": max(ends + starts, default=0.0),
            "lanes": 1 + max((a["lane"] for a in assocs), default=-1)}
