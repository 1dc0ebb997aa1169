"""One worker's share of a distributed pass (``--dask``, :mod:`dicomwire.cluster`).

A worker reads a *run*: consecutive parts of a file set, numbered from the
run's frame base. It runs the normal pipeline on it (the same dispatcher,
fast path, dissectors and plugins), with three differences:

- **Follow-through.** A stream still open at the end of the run is
  followed into the next runs' files (only its flow is fed, the walk skips
  the others in place) until it closes, a SYN opens a new connection on its
  4-tuple, or the set ends: its state never leaves the process that built
  it. The next worker saw it begin mid-stream; the merge drops that view.
- **Late ids.** Stream and session ids are :class:`LateId` s, whose text is
  a token the merge replaces by the global id.
- **Events.** Text written to stdout and findings are recorded with their
  place in the one-process order (:class:`Clock`) and their stream.

:func:`run_part` returns a :class:`PartResult`: plain data, pickled back to
the client. Nothing here knows a protocol.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import sys
import threading
import time

from dicomwire.capset import CaptureSet
from dicomwire.direction import decline
from dicomwire.fastpath import FastPath, ext
from dicomwire.link import LinkDecoder, reverse_flow
from dicomwire.outbox import CHUNK, NO_STREAM, Outbox
from dicomwire.partresult import PartResult, stream_info
from dicomwire.hookspecs import FOLLOWING
from dicomwire.pipeline import (Result, _configure, _Dispatch, _general_path, _read,
                                make_host)
from dicomwire.tcp import ACK, SYN, Reassembler

END = 1 << 62                   # events of streams closed at the end of the capture
compiled_record = getattr(ext, "record", None)      # (None: the Python write)
TOKEN = re.compile("\ue000([a-z])(\\d+)\\.(\\d+)\ue001")


class LateId(int):
    """An id whose global value is known only at the merge: an int (local
    order, dictionary keys) whose text is a token ``kind``, ``part``, ``n``."""

    def __new__(cls, n, kind="s", part=0):
        self = int.__new__(cls, n)
        self.token = f"\ue000{kind}{part}.{n}\ue001"
        return self

    def __reduce__(self):
        kind, rest = self.token[1], self.token[2:-1]
        return LateId, (int(self), kind, int(rest.split(".")[0]))

    def __str__(self):
        return self.token

    __repr__ = __str__

    def __format__(self, spec):
        return self.token

    def __add__(self, other):       # the reassembler's next id: self._next_id += 1
        return LateId(int(self) + other, self.token[1], int(self.token[2:].split(".")[0]))


class Clock:
    """Where in the one-process order something happens: the frame being
    processed (the host's; after the last frame, the stream being closed)
    and, for plugins that stamp what they make (:meth:`key`), a sequence
    (the part's events need none: they are kept in the order they came).
    The stream an event is about is the host's (``host.stream``: the
    dispatch and the fast path set it)."""

    def __init__(self, host):
        self.host = host
        self.seq = itertools.count()
        self.ids: list = []              # [(kind, n, frame, stream)] of the sessions made

    def frame(self) -> int:
        """The frame being processed; after the last, :data:`END` + the
        first frame of the stream being closed."""
        frame = self.host.frame
        if not frame:
            s = self.host.stream
            return END + (s.first_frame if s is not None else 0)
        return frame

    def key(self) -> tuple:
        return (self.frame(), next(self.seq))

    def sid(self):
        s = self.host.stream
        return None if s is None else int(s.id)

    def make_id(self, kind: str, n: int, part: int) -> LateId:
        i = LateId(n, kind, part)
        self.ids.append((kind, n, self.frame(), self.sid()))
        return i


class Recorder:
    """Stands for stdout (``kind`` "o") or stderr ("e") in a worker: each
    write becomes an event. Stderr is the process's while the part runs
    (``contextlib.redirect_stderr``): what other threads write there (Dask's
    own, a plugin's thread) is theirs, not the pass's, and goes to the
    worker's own stderr (it would also land between the four appends of
    an event of the pass)."""

    def __init__(self, clock, events, kind="o"):
        self.host, self.events, self.kind = clock.host, events, kind
        # (text is no finding: the columns' own appends, not Outbox.append)
        self.frames = events.frames
        self.put_frame, self.put_sid, self.put_kind, self.put_text = events.appenders()
        if kind == "e":
            self.pass_thread, self.elsewhere = threading.get_ident(), sys.stderr
            self.write = self._write_from_pass
        elif compiled_record is not None:    # (a show line: 0.1 us, not 0.4 us, in C)
            self.write = functools.partial(compiled_record, (
                clock.host, events.frames, events.sids, events.kinds, events.texts, kind,
                events, END, NO_STREAM))

    def _write_from_pass(self, text):
        if threading.get_ident() != self.pass_thread:
            return self.elsewhere.write(text)
        return Recorder.write(self, text)

    def write(self, text):
        # Clock.frame() and Clock.sid() inline, the columns' own appends: a
        # show line each. _fastwalk.record does the same in C (tests compare).
        host = self.host
        frame, s = host.frame, host.stream
        if not frame:
            frame = END + (s.first_frame if s is not None else 0)
        self.put_frame(frame)
        self.put_sid(NO_STREAM if s is None else int(s.id))
        self.put_kind(self.kind)
        self.put_text(text)
        if len(self.frames) >= self.events.limit:
            self.events.flush()
        return len(text)

    def flush(self):
        pass


class _Dispatch2(_Dispatch):
    """The pipeline's dispatcher, noting how streams closed by a frame ended.

    In a run after the first (``late``), a stream that begins mid-stream
    is *parked*: counted, not dissected. It is most often the rest of a
    stream an earlier run follows through (and dissects); the merge drops
    this view, or adds its last frames' counts. One that no earlier run
    saw (its handshake not captured) cannot be merged: the set is read in one
    process (:mod:`dicomwire.merge`). Dissecting it here would cost what
    the earlier run spends on it once more: up to the whole stream."""

    def __init__(self, host, config, late=False):
        super().__init__(host, config)
        self.closes = {}        # stream -> (frame, per direction (frames, zero windows, bytes))
        self.late, self.parked = late, set()

    def stream_open(self, stream):
        super().stream_open(stream)
        # Only what a dissector may take (not a stream whose first payload
        # decides, which that payload most often declines; not streams' TLS
        # check): anything else costs little and is merged as it is.
        if self.late and not stream.client_known and self.config.dissect is True \
                and stream.sniff is None and stream.dissector is None:
            self.parked.add(stream)
            decline(stream)

    def stream_close(self, stream):
        if self.host.frame:                  # closed by a frame, not by the end
            self.closes[stream] = (stream.last_frame, tuple(
                (d.frames, d.zero_windows, d.bytes) for d in stream.dirs))
        super().stream_close(stream)


class _Follow(Reassembler):
    """In follow mode (``following``), only the flows of ``flows`` are fed:
    no new stream; a SYN that opens a new connection on a followed 4-tuple
    closes the old stream and ends its following (``stops``).

    In a run after the first (``late``), a SYN on a stream begun without one
    and without payload closes it (``reused``) and opens a new stream: such
    frames are most likely the last of a stream an earlier run closed, as
    one pass has it (the merge folds them into it, or finds the parts do not
    fit)."""

    following = late = False

    def feed(self, frame, ts, seg):
        flags = seg[3]
        if self.late and flags & SYN and not flags & ACK:
            hit = self.flows.get(seg[0])
            if hit is not None:
                s = hit[0]
                if not (s.client_known or s.closed or s.dirs[0].bytes or s.dirs[1].bytes):
                    self.slow.close(s, "reused")
                    for k in (seg[0], reverse_flow(seg[0])):
                        self.flows.pop(k, None)
        if self.following:
            hit = self.flows.get(seg[0])
            if hit is None:
                return
            stream = hit[0]
            if seg[3] & SYN and self._reused(stream, hit[1], seg[3], seg[2]):
                self._stop(stream, frame - 1)
                return
            Reassembler.feed(self, frame, ts, seg)
            if stream.closed:                # its last frames: one pass adds them
                self._stop(stream, frame)    # to its counters, the merge does too
            return
        Reassembler.feed(self, frame, ts, seg)

    def _stop(self, stream, frame):
        """Follow ``stream`` to ``frame``; none left: Followed."""
        self.stops[stream] = frame
        for k in [k for k, (s, _d) in self.flows.items() if s is stream]:
            del self.flows[k]
        if not self.flows:
            raise Followed


class Followed(Exception):
    """Every stream followed is closed."""


class _FollowFast(FastPath):
    """The fast path skipping, in place, the frames of flows not followed."""

    def _segment(self, buf, view, q, at, e, *rest):
        if buf[q + 26:q + 38] not in self.flows:
            return True
        return FastPath._segment(self, buf, view, q, at, e, *rest)


def open_run(paths, base: int, first_ts, start=None, stop=None):
    """A run's files as one capture numbered from ``base`` + 1; ``start``,
    ``stop``: where it begins in its first file and ends in its last
    (:meth:`dicomwire.capture.CaptureReader.bound`; None: their edges)."""
    reader = CaptureSet(list(paths), frame_base=base, start=start, stop=stop)
    reader.first_ts = first_ts
    return reader


def run_part(task) -> PartResult:
    """One run of the set (``task``: see :func:`dicomwire.cluster._submit`);
    what plugins print on stderr is kept too, for the client's stderr."""
    started, t0, c0 = time.time(), time.perf_counter(), time.process_time()
    own0 = time.thread_time()
    out = _run_recorded(task)
    out.elapsed = time.perf_counter() - t0
    out.cpu = time.process_time() - c0
    out.task_cpu = time.thread_time() - own0
    out.started, out.ended = started, time.time()
    return out


def _run_recorded(task) -> PartResult:
    host = make_host(task["config"])
    clock = Clock(host)
    events = Outbox(task.get("send"), task.get("chunk") or CHUNK)
    with contextlib.redirect_stderr(Recorder(clock, events, "e")):
        return _run_part(task, host, clock, events)


def _run_part(task, host, clock, events) -> PartResult:
    config, plugins, k = task["config"], task["plugins"], task["part"]
    for p in plugins:
        for name, value in list(vars(p).items()):
            if value == "<stdout>":
                setattr(p, name, Recorder(clock, events))
        host.register(p, type(p).__name__.lower())
        start = getattr(p, "cluster_start", None)
        if start is not None:
            start(k, task["run_id"], lambda: (clock.key(), clock.sid()))
    config.state["ids"] = lambda kind, n: clock.make_id(kind, n, k)
    expert = _configure(host, config)
    expert.listeners.append(lambda i: events.append((clock.frame(), clock.sid(), "x", i)))
    sink = _Dispatch2(host, config, late=k > 0)
    reasm = _Follow(sink, max_ooo=config.max_ooo, max_flows=config.max_flows,
                    lanes=config.fast_path)
    reasm.stops = {}
    reasm.late = k > 0
    reasm._next_id = LateId(0, "s", k)
    dec = LinkDecoder()
    reader = open_run(task["runs"][k], task["base"], task["first_ts"], task.get("start"),
                      _stops(task)[k])
    out = PartResult(k, 0)
    host.call("dicomwire_capture_start", capture=reader)
    _pass(reader, dec, reasm, host, FastPath)
    out.frames = reader.frames_read - task["base"]
    out.end_offset = reader.end_offset
    if k == len(task["runs"]) - 1:
        dec.finish(reader.frames_read)        # datagrams never completed: the set's end
    elif dec.pending_fragments():
        out.unsafe.append("IP fragments go on in the next run")
    out.warnings, out.truncated = list(reader.warnings), reader.truncated
    out.malformed, out.malformed_count = list(dec.malformed), dec.stats.malformed
    out.unsafe += [r for rs in host.call("dicomwire_handover_pending", expert=expert) for r in rs]
    own_end = task["base"] + out.frames
    # Parked streams are not followed: an earlier run follows them (or the
    # merge finds none did), so their view may end with the run.
    followed = {s for s in reasm.streams if not s.closed and s not in sink.parked}
    expert.state[FOLLOWING] = True
    t = time.thread_time()
    end = _follow(task, k, reasm, host, (own_end, reader.end_offset), followed)
    out.follow_cpu = time.thread_time() - t
    expert.state[FOLLOWING] = False
    out.unsafe += [r for rs in host.call("dicomwire_handover_pending", expert=expert)
                   for r in rs if r not in out.unsafe]
    result = Result(reader, dec, reasm.streams, host, expert)
    events.hold()                             # what follows is keyed by stream, not frame
    host.frame = 0
    reasm.finish()
    if reasm.evicted:
        out.unsafe.append(f"the flow table overflowed (tcp.max_flows {reasm.max_flows})")
    if expert.dropped:
        out.unsafe.append("more findings than the log keeps")
    host.stream = None
    n = len(events)
    host.call("dicomwire_capture_end", result=result)
    if "x" in events.kinds[n:]:
        out.unsafe.append("findings at the end of the capture")
    out.streams = [stream_info(s, reasm.stops.get(s, end if s in followed else own_end),
                               sink.closes.get(s), s in sink.parked) for s in reasm.streams]
    # The tail in its order, as one block: sorted here, beside the other
    # parts, not by the merge after the last.
    out.events, out.ids = events.tail(), clock.ids
    out.sent, out.tag, out.findings = events.sent, events.tag, events.findings
    out.errors = [(str(e), e.frame) for e in host.errors]
    for p in plugins:
        hand = getattr(p, "cluster_result", None)
        if hand is not None:
            out.extra[type(p).__name__] = hand()
    return out


def _pass(reader, dec, reasm, host, fast):
    general = _general_path(dec, reasm, host)

    def walker(r):                    # as pipeline.run's: TCP the compiled walk decoded
        return fast(r, reasm, reasm.sink, host, general, stats=dec.stats,   # goes on past
                    feed=general.decoded).walk                              # the link decode
    if reasm.lanes:
        reader.use_walker(walker)
    try:
        _read(reader, general, None, None)
    finally:
        reader.close()


def _stops(task) -> list:
    return task.get("stops") or [None] * len(task["runs"])


def _follow(task, k, reasm, host, end, followed) -> int:
    """Feed ``followed`` (the streams open at the end of run ``k``, less
    the parked) the frames of their flows in the next runs, each until it
    closes (then ``reasm.stops`` holds its last frame) or the set ends.
    ``end``: (last frame, offset in the last file) where run ``k`` ended (a
    run cut inside a file goes on from there). Returns the last frame read."""
    base, offset = end
    if not followed:
        return base
    stops = _stops(task)
    for key in [key for key, (s, _d) in reasm.flows.items() if s not in followed]:
        del reasm.flows[key]
    reasm.following = True
    try:
        for j in range(k + 1, len(task["runs"])):
            start = offset if stops[j - 1] is not None else None
            reader = open_run(task["runs"][j], base, task["first_ts"], start, stops[j])
            _pass(reader, LinkDecoder(), reasm, host, _FollowFast)
            base, offset = reader.frames_read, reader.end_offset
    except Followed:
        pass
    finally:
        reasm.following = False
    return base
