"""What a worker sends back from its share of a ``--dask`` pass
(:func:`dicomwire.handover.run_part`): plain data, pickled to the client
and put together by :mod:`dicomwire.merge`."""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass


@dataclass
class StreamInfo:
    """What the merge and ``streams`` need of a stream (plain data)."""
    id: int
    client: tuple
    server: tuple
    client_known: bool
    first_frame: int
    last_frame: int
    first_ts: int
    last_ts: int
    closed: bool
    close_reason: str | None
    dirs: tuple
    tls: str | None
    cover: int = 0                    # the last frame of its flow this part fed it
    closed_by: tuple | None = None    # (frame, per direction (frames, zero windows, bytes))
    parked: bool = False              # counted, not dissected (begun mid-stream in a later run)

    def describe(self):               # as stream.tls in dicomwire.tablecmds.stream_rows
        return self.tls

    @property
    def flow(self):
        return tuple(sorted((self.client, self.server)))


DIR_FIELDS = ("frames", "bytes", "gaps", "gap_bytes", "retrans", "ooo_segments", "conflicts",
              "keepalives", "zero_windows")
#: A direction's counters, as ``streams`` shows them (plain data).
DirInfo = make_dataclass("DirInfo", DIR_FIELDS, namespace={"__module__": __name__})


@dataclass
class PartResult:
    part: int
    frames: int                               # frames of its own run
    end_offset: int | None = None             # where it stopped in its last file
    streams: list = field(default_factory=list)
    # The events not sent ahead (streams closed by the capture's end), in
    # the part's order: one dicomwire.outbox.block.
    events: tuple = ((), (), "", "", (), (), True)
    sent: int = 0               # chunks of earlier events sent ahead (dicomwire.outbox),
    tag: bytes = b""            # under this tag; the client gives the part its ``spool``
    findings: int = 0           # expert events among all
    ids: list = field(default_factory=list)        # (kind, n, frame, stream) of sessions made
    warnings: list = field(default_factory=list)
    malformed: list = field(default_factory=list)  # (frame, text), own run only
    malformed_count: int = 0
    errors: list = field(default_factory=list)     # (text, frame) of plugin failures
    unsafe: list = field(default_factory=list)     # why this part cannot be merged exactly
    extra: dict = field(default_factory=dict)      # what plugins hand back (cluster_result)
    truncated: int = 0
    elapsed: float = 0.0                          # wall and CPU seconds of the task
    cpu: float = 0.0                              # the worker process's, all threads
    task_cpu: float = 0.0                         # the task's own thread's
    follow_cpu: float = 0.0                       # of it, following streams past the run
    started: float = 0.0                          # time.time() at its start and end
    ended: float = 0.0
    spool: object = None
    spooled: str | None = None    # the file its chunks are in (dicomwire.spooldir), or None


def stream_info(s, cover, closed_by, parked=False) -> StreamInfo:
    dirs = tuple(DirInfo(*(getattr(d, f) for f in DIR_FIELDS)) for d in s.dirs)
    return StreamInfo(int(s.id), s.client, s.server, s.client_known, s.first_frame,
                      s.last_frame, s.first_ts, s.last_ts, s.closed, s.close_reason, dirs,
                      s.tls.describe() if s.tls else None, cover, closed_by, parked)
