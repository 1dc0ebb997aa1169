"""Expert info: diagnostics as registered data, like Wireshark's ``ei[]``.

Each kind of finding is an :class:`ExpertField` (unique filter name,
severity, group, summary) registered once; a finding is an
:class:`ExpertInfo` that names its field, says what happened in words, and
points at frames, the stream and, for a pack that has them, the session
within the stream (``assoc``). Plugins report through the run's
:class:`ExpertLog` (hooks receive it as ``expert``)::

    expert.report("mllp.nack", "message 42 refused (AE)",
                  frames=[frame], stream=stream.id)

A plugin may register fields of its own with :meth:`ExpertLog.register`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("chat", "note", "warn", "error")          # Wireshark's, in order
GROUPS = ("sequence", "response-code", "request-code", "malformed", "protocol",
          "reassemble", "comment")


@dataclass(frozen=True)
class ExpertField:
    name: str            # filter name, e.g. tcp.gap
    severity: str        # one of SEVERITIES
    group: str           # one of GROUPS
    summary: str         # what it means, for listings and `dicomwire fields`

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.name}: unknown severity {self.severity!r}")
        if self.group not in GROUPS:
            raise ValueError(f"{self.name}: unknown group {self.group!r}")


@dataclass
class ExpertInfo:
    field: ExpertField
    message: str
    frames: tuple = ()
    stream: int | None = None
    assoc: int | None = None

    @property
    def frame(self) -> int | None:
        return self.frames[0] if self.frames else None

    def as_dict(self) -> dict:
        return {"name": self.field.name, "severity": self.field.severity,
                "group": self.field.group, "message": self.message,
                "frames": list(self.frames), "stream": self.stream,
                "association": self.assoc}      # the key of the JSON output, kept


@dataclass
class ExpertLog:
    """The findings of one run, and the fields they may use."""
    fields: dict = field(default_factory=dict)
    infos: list = field(default_factory=list)
    by_frame: dict = field(default_factory=dict)     # frame -> [ExpertInfo]
    max_infos: int = 100_000                         # bounded: counts go on past it
    dropped: int = 0
    state: dict = field(default_factory=dict)        # per-run scratch space for checks
    # Called with each finding as it is reported (expert --follow prints them).
    listeners: list = field(default_factory=list)
    # Live runs: at most about this many findings kept (the oldest half goes
    # past it, into ``earlier``: per field, the count and first frames that
    # summary() needs); None keeps all (up to max_infos).
    retain: int | None = None
    earlier: dict = field(default_factory=dict)      # name -> [field, count, first frames]

    def register(self, table) -> None:
        """Register ExpertFields; a name registered twice must be the same field."""
        for f in table:
            old = self.fields.get(f.name)
            if old is not None and old != f:
                raise ValueError(f"expert field {f.name!r} registered twice, differently")
            self.fields[f.name] = f

    def report(self, name: str, message: str, frames=(), stream=None, assoc=None) -> ExpertInfo:
        f = self.fields.get(name)
        if f is None:
            raise KeyError(f"unregistered expert field {name!r}")
        info = ExpertInfo(f, message, tuple(fr for fr in frames if fr is not None), stream, assoc)
        # Listeners (expert --follow) see every finding, past the cap too.
        for listener in self.listeners:
            listener(info)
        if len(self.infos) >= self.max_infos:
            self.dropped += 1
            return info
        self.infos.append(info)
        for fr in info.frames:
            self.by_frame.setdefault(fr, []).append(info)
        if self.retain is not None and len(self.infos) > self.retain:
            self._forget_oldest()
        return info

    def _forget_oldest(self):
        """The oldest half of the findings kept, out: counted in ``earlier``."""
        half = len(self.infos) // 2
        old, self.infos = self.infos[:half], self.infos[half:]
        by_frame = self.by_frame
        for i in old:
            r = self.earlier.setdefault(i.field.name, [i.field, 0, []])
            r[1] += 1
            if len(r[2]) < 10 and i.frame is not None:
                r[2].append(i.frame)
            for fr in i.frames:
                kept = [x for x in by_frame.get(fr, ()) if x is not i]
                if kept:
                    by_frame[fr] = kept
                else:
                    by_frame.pop(fr, None)

    def at_least(self, severity: str) -> list:
        rank = SEVERITIES.index(severity)
        return [i for i in self.infos if SEVERITIES.index(i.field.severity) >= rank]

    def summary(self, min_severity: str = "chat") -> list[tuple]:
        """(severity, group, name, summary, count, first frames) rows, most
        severe first, like ``tshark -z expert``."""
        rank = SEVERITIES.index(min_severity)
        rows: dict = {name: [f, n, list(frames)] for name, (f, n, frames) in self.earlier.items()
                      if SEVERITIES.index(f.severity) >= rank}
        for i in self.infos:
            f = i.field
            if SEVERITIES.index(f.severity) < rank:
                continue
            r = rows.setdefault(f.name, [f, 0, []])
            r[1] += 1
            if len(r[2]) < 10 and i.frame is not None:
                r[2].append(i.frame)
        out = [(f.severity, f.group, f.name, f.summary, n, frames)
               for f, n, frames in rows.values()]
        out.sort(key=lambda r: (-SEVERITIES.index(r[0]), r[2]))
        return out


# What the engine itself finds: capture, link and TCP faults, plugin failures.
ENGINE_FIELDS = (
    ExpertField("capture.damaged", "error", "malformed",
                "The capture file is damaged (cut short, impossible lengths): "
                "reading stopped there"),
    ExpertField("capture.dropped", "warn", "sequence",
                "The capture tool reports packets dropped (by the kernel or by itself): "
                "the capture misses them, streams may show gaps"),
    ExpertField("link.malformed", "error", "malformed",
                "A frame's link, IP or TCP headers are malformed"),
    ExpertField("tcp.gap", "warn", "sequence",
                "Bytes of a TCP stream are missing from the capture (lost by the capture, "
                "or cut by the snaplen): what they carried cannot be decoded"),
    ExpertField("tcp.overlap.conflict", "error", "reassemble",
                "A retransmitted TCP segment carries different bytes than the first copy"),
    ExpertField("tcp.flows.evicted", "warn", "reassemble",
                "More TCP flows than tcp.max_flows were tracked at once (SYN flood, scan, "
                "very busy link): half-open and idle flows were evicted to bound memory"),
    ExpertField("tcp.refused", "warn", "sequence",
                "TCP connection refused: the SYN was answered by a RST (nothing listens on "
                "that port, or a firewall rejects it)"),
    ExpertField("plugin.failed", "error", "protocol",
                "A plugin raised an exception; the run went on without it for that event"),
)
