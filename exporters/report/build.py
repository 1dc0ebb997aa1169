"""The report's model, built once at the end of the pass from what the
collector kept: plain data (dicts, lists, strings, numbers) that
``json.dumps`` takes as it is, and that the page draws.

Top level: ``summary`` (the capture in numbers), ``associations`` (each with
its ladder ``events``, ``markers`` between them and its timeline ``lane``),
``negotiations`` (each distinct negotiation table once; associations name
theirs by index), ``findings`` (the expert list, each linked to its
association and ladder event), ``charts`` (response times, throughput, idle
periods, response statistics), ``queries`` (C-FIND keys and match counts)
and ``timeline`` (its span and lane count). Times are seconds since the
capture's first frame, as tshark's ``frame.time_relative``.
"""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from datetime import datetime, timezone

from dicomwire import __version__
from dicomwire.expert import SEVERITIES
from dicomwire.plugins.dicom.expert_dimse import SLOW_RESPONSE_S
from dicomwire.plugins.dicom.expert_pdu import IDLE_S

from dicomwire.exporters.report import charts, findings, layout
from dicomwire.exporters.report.phi import hide_uids
from dicomwire.exporters.report.queries import link_callbacks

REFERENCES = ("pair", "rsp", "cancels")     # event keys that point at another event


@contextmanager
def paused_gc(thaw: bool = False):
    """No garbage collection while the model is built and written: it is
    plain acyclic data, and on a busy capture collections that walk its
    millions of objects cost more than the building itself. What exists is
    then frozen (``gc.freeze``: left out of collections, still freed when
    dropped) until the page is written (``thaw``), so the collections in
    between do not walk the model either."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.unfreeze() if thaw else gc.freeze()
        if was:
            gc.enable()


def build_model(col, result) -> dict:
    """The model of one pass: ``col`` the :class:`~.collect.ReportCollector`,
    ``result`` the pass's :class:`~dicomwire.pipeline.Result`."""
    with paused_gc():
        return _build(col, result)


def _build(col, result) -> dict:
    t0 = result.first_ts
    if t0 is None:
        t0 = min((t.first_ts for t in col.order if t.first_ts is not None), default=0)
    tracks = [t for t in col.order if _selected(col.match, t)]
    assocs = [_association(t, t0, col) for t in tracks]
    negotiations = col.negotiations
    by_id = {a["id"]: a for a in assocs}
    known = {impl[0] for n in negotiations for impl in json.loads(n)["implementation"]
             if impl and impl[0]}
    listed, capped = findings.link(result.expert, by_id, col.phi, col.match, known)
    if not col.phi:
        _hide_uids(assocs, known)
    link_callbacks(col.qr, by_id, t0)
    layout.place(assocs, by_id, [t.idle for t in tracks], t0)
    if col.match is not None:
        _mark_matches(assocs, col.match.frames)
    return {
        "summary": _summary(col, result, assocs, listed, capped, t0),
        "associations": assocs,
        "negotiations": [json.loads(k) for k in negotiations],
        "findings": listed,
        "finding_kinds": findings.kinds(listed, result.expert),
        "charts": charts.make(assocs, col.rsp_stats),
        "queries": charts.queries(col.qr, by_id, t0),
        "timeline": layout.timeline(assocs),
    }


def _selected(match, t) -> bool:
    """-Y keeps the associations with at least one PDU that matched."""
    if match is None:
        return True
    if t.first_frame is None:
        return False
    stream = t.info["stream"] if t.info else t.assoc.stream.id
    return any(first <= t.last_frame and last >= t.first_frame
               for first, last in match.ranges.get(stream, ()))


def rel(ts, t0) -> float | None:
    return None if ts is None else round((ts - t0) / 1e9, 6)


def _association(t, t0, col) -> dict:
    info = t.info or col.info(t.assoc)     # still open: its end never came (a failure)
    end_ts = t.end_ts if t.end_ts is not None else t.last_ts
    events = [_event(ev, t0) for ev in t.events()]
    return {"id": t.id, **info,
            "start": rel(t.first_ts, t0), "end": rel(end_ts, t0),
            "frames": [t.first_frame, t.last_frame], "pdus": t.pdus, "bytes": t.bytes,
            "messages": t.messages, "datasets": t.datasets, "objects": t.objects,
            "events": events, "left_out": t.seq - len(events), "idle_seen": t.idle_seen,
            "findings": {}}


def _event(ev, t0) -> dict:
    """Times relative, references to other events as their seq numbers."""
    ts, te = ev.pop("ts"), ev.pop("te")
    ev["t"] = rel(ts, t0)
    if te != ts:
        ev["dt"] = round((te - ts) / 1e9, 6)          # absent: within one frame
    for key in REFERENCES:
        other = ev.get(key)
        if isinstance(other, dict):
            ev[key] = other["seq"]
    if "rsp_time" in ev:
        ev["rsp_time"] = round(ev["rsp_time"], 6)
    return ev


def _mark_matches(assocs, frames):
    for a in assocs:
        for ev in a["events"]:
            if ev["frames"][0] in frames or ev["frames"][1] in frames:
                ev["match"] = True


def _hide_uids(assocs, known):
    """Problem texts may quote an instance UID: hidden unless --phi."""
    for a in assocs:
        for ev in a["events"]:
            if "problems" in ev:
                ev["problems"] = [hide_uids(p, known) for p in ev["problems"]]


def _summary(col, result, assocs, listed, capped, t0) -> dict:
    reader = result.reader
    outcomes: dict[str, int] = {}
    for a in assocs:
        outcomes[a["outcome"]] = outcomes.get(a["outcome"], 0) + 1
    unlisted = col.unlisted if col.match is None else {"outcomes": {}, "accepted": 0,
                                                       "rejected": 0}
    for how, n in unlisted["outcomes"].items():
        outcomes[how] = outcomes.get(how, 0) + n
    severities = {s: 0 for s in reversed(SEVERITIES)}
    for f in listed:
        severities[f["severity"]] += 1
    last = max((s.last_ts for s in result.streams), default=t0)
    started = datetime.fromtimestamp(t0 / 1e9, timezone.utc) if t0 else None
    return {
        "capture": reader.name, "format": reader.format, "frames": result.frames,
        "start": started.isoformat(timespec="seconds") if started else None,
        "duration": rel(max(last, t0), t0),
        "tcp_streams": len(result.streams),
        "dicom_streams": len({a["stream"] for a in assocs}),
        "associations": sum(outcomes.values()),
        "listed": len(assocs),
        "accepted": sum(1 for a in assocs if a["accepted"]) + unlisted["accepted"],
        "rejected": sum(1 for a in assocs if a["rejected"]) + unlisted["rejected"],
        "aborted": outcomes.get("aborted", 0),
        "outcomes": outcomes,
        "messages": sum(a["messages"] for a in assocs),
        "datasets": sum(a["datasets"] for a in assocs),
        "objects": sum(a["objects"] for a in assocs),
        "findings": severities,
        "findings_left_out": result.expert.dropped + capped,
        "events_left_out": sum(a["left_out"] for a in assocs),
        "queries_left_out": col.qr.unlisted,
        "filter": col.filter_text, "phi": col.phi,
        "interrupted": result.interrupted,
        "tool": f"dicomwire {__version__}",
        # The findings' thresholds, which the page draws and labels with.
        "thresholds": {"slow_response": SLOW_RESPONSE_S, "idle": IDLE_S},
    }
