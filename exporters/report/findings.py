"""The expert list of the report: each finding with its hint (the field's
summary), its message (patient data hidden unless ``--phi``), and a link to
its place in the ladder.

A finding names frames, a TCP stream and usually an association. It is
attached to the ladder event at its frame: the last of its frames that
falls in its association (a slow response names the request and the
response: it belongs to the response; an idle period names the PDUs before
and after: it belongs where the pause ended), the event that contains that
frame, else the nearest event before it. A finding without an association
(a TCP gap) goes to the association of its stream whose frames hold it.
"""

from __future__ import annotations

from bisect import bisect_left

from dicomwire.expert import SEVERITIES
from dicomwire.exporters.report.phi import Redactor

MAX_FINDINGS = 20_000          # listed one by one (most severe first); the rest counted
RANK = {s: i for i, s in enumerate(SEVERITIES)}


def link(expert, by_id: dict, phi: bool, match=None, known=frozenset()) -> tuple[list, int]:
    """(findings as dicts, how many were left out of the list), each listed
    one linked to its association and event (whose ``findings`` and the
    association's ``findings`` counts are updated)."""
    infos = [i for i in expert.infos if _shown(i, by_id, match)]
    infos.sort(key=lambda i: -RANK[i.field.severity])       # stable: capture order within
    capped = max(0, len(infos) - MAX_FINDINGS)
    infos = infos[:MAX_FINDINGS]
    redact = Redactor(phi, known)
    index = _EventIndex(by_id)
    out = []
    for n, info in enumerate(infos):
        f = info.field
        entry = {"n": n, "name": f.name, "severity": f.severity,
                 "message": redact(f.name, info.message),
                 "frames": list(info.frames), "stream": info.stream, "assoc": None,
                 "event": None}
        a, ev = index.locate(info)
        if a is not None:
            entry["assoc"] = a["id"]
            counts = a["findings"]
            counts[f.severity] = counts.get(f.severity, 0) + 1
        if ev is not None:
            entry["event"] = ev["seq"]
            ev.setdefault("findings", []).append(n)
        out.append(entry)
    return out, capped


def kinds(listed: list, expert) -> dict:
    """name -> severity, group and hint (the field's summary) of each kind
    of finding listed: said once, not on every finding."""
    out = {}
    for f in listed:
        if f["name"] not in out:
            field = expert.fields[f["name"]]
            out[f["name"]] = {"severity": field.severity, "group": field.group,
                              "hint": field.summary}
    return out


def _shown(info, by_id, match) -> bool:
    """Under -Y: findings of the associations shown, or on matching PDUs."""
    if match is None:
        return True
    return info.assoc in by_id or bool(match.frames.intersection(info.frames))


class _EventIndex:
    """Frame -> association and ladder event, by binary search over each
    association's events sorted by their last frame."""

    def __init__(self, by_id):
        self.by_id = by_id
        self.by_stream: dict[int, list] = {}
        for a in by_id.values():
            self.by_stream.setdefault(a["stream"], []).append(a)
        self.sorted: dict[int, tuple] = {}

    def _events(self, a):
        got = self.sorted.get(a["id"])
        if got is None:
            evs = sorted(a["events"], key=lambda e: (e["frames"][1], e["seq"]))
            got = self.sorted[a["id"]] = ([e["frames"][1] for e in evs], evs)
        return got

    def locate(self, info):
        a = self.by_id.get(info.assoc) if info.assoc is not None else None
        if a is None and info.stream is not None:
            a = self._stream_association(info.stream, info.frames)
        if a is None:
            return None, None
        for frame in reversed(info.frames):
            ev = self._at(a, frame)
            if ev is not None:
                return a, ev
        return a, None

    def _stream_association(self, stream, frames):
        cands = self.by_stream.get(stream, ())
        for frame in frames:
            for a in cands:
                first, last = a["frames"]
                if first is not None and first <= frame <= last:
                    return a
        return cands[0] if len(cands) == 1 else None

    def _at(self, a, frame):
        """The event containing ``frame`` (the shortest one), else the last
        event before it; None when the frame lies outside the association."""
        first, last = a["frames"]
        if first is None or not first <= frame <= last:
            return None
        lasts, evs = self._events(a)
        i = bisect_left(lasts, frame)
        best = None
        for ev in evs[i:i + 64]:            # events ending at or after the frame
            f0, f1 = ev["frames"]
            if f0 <= frame <= f1 and (best is None or f1 - f0 < best["frames"][1] -
                                      best["frames"][0]):
                best = ev
        if best is None and i > 0:
            best = evs[i - 1]
        return best
