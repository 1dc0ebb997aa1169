"""The data of the report's charts and query table, from the ladder events
kept (so bounded as they are) and the collector's running statistics.

Each chart is ``{"columns": [...], "points": [[...], ...]}``: rows of
numbers are a third of the size of dicts in the page, and a page with
100,000 responses must still load. Every point names its association and
event, so the page links it to its arrow.
"""

from __future__ import annotations

RESPONSE_COLUMNS = ["t", "seconds", "assoc", "seq", "name"]
THROUGHPUT_COLUMNS = ["t", "bytes", "seconds", "assoc", "seq", "name"]
IDLE_COLUMNS = ["t", "seconds", "assoc", "index", "waiting_for", "waited_side"]


def make(assocs: list, rsp_stats: dict) -> dict:
    """Response time per message over time, throughput per data set, idle
    periods (who was awaited), and per response type: count, mean, max
    (over every response of the capture, kept in the ladder or not)."""
    rt, tp, idle = [], [], []
    for a in assocs:
        aid = a["id"]
        for ev in a["events"]:
            if ev.get("rsp_time") is not None:
                rt.append([ev["t"], ev["rsp_time"], aid, ev["seq"], ev["name"]])
            if ev.get("ds"):
                tp.append([ev["t"], ev["ds"], ev.get("dt", 0.0), aid, ev["seq"], ev["name"]])
        for i, p in enumerate(a["idle"]):
            idle.append([p["t"], p["seconds"], aid, i, p["waiting_for"],
                         _side_name(a, p["waiting_for"])])
    stats = [{"name": name, "count": n, "mean": round(total / n, 6), "max": round(top, 6)}
             for name, (n, total, top) in sorted(rsp_stats.items()) if n]
    return {"response_times": {"columns": RESPONSE_COLUMNS, "points": rt},
            "throughput": {"columns": THROUGHPUT_COLUMNS, "points": tp},
            "idle": {"columns": IDLE_COLUMNS, "points": idle},
            "response_stats": stats}


def _side_name(a, side) -> str | None:
    """The AE title of the side that was awaited (requestor: calling)."""
    if side == "requestor":
        return a["calling"]
    if side == "acceptor":
        return a["called"]
    return None


def queries(qr, by_id: dict, t0: int) -> list:
    """C-FIND queries of the associations shown: keys (values only where
    allowed), match count, final status, time to the final response."""
    out = []
    for q in qr.finds:
        if q["assoc"] not in by_id:
            continue
        ev = q["event"]
        t = ev["t"] if "t" in ev else round((ev["ts"] - t0) / 1e9, 6)
        took = None
        if q.get("end") is not None:
            took = round((q["end"] - q["rq_ts"]) / 1e9, 6)
        out.append({"assoc": q["assoc"], "seq": ev["seq"], "t": t, "frame": q["frame"],
                    "msg_id": q["msg_id"], "sop": q["sop"], "level": q["level"],
                    "keys": q["keys"], "matches": q["matches"], "status": q["status"],
                    "seconds": took})
    return out
