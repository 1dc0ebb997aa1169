"""A ``--dask`` worker's events on their way to the client (issue 18:
memory per worker bounded whatever a run prints).

A worker records what one pass would print and report as events
(:mod:`dicomwire.handover`). :class:`Outbox` sends them on in pickled
chunks of :data:`CHUNK` as they are made; the client keeps each part's
chunks in a temporary file (:class:`Spool`) until the merge reads them
back, a chunk at a time. Neither side holds a run's output in memory.
Nothing here knows Dask: the worker's ``send`` and the client's collection
are :mod:`dicomwire.cluster`'s.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import sys
import tempfile
import threading
import time
from array import array
from itertools import accumulate

CHUNK = 20_000               # events a chunk (about 2 MB of show's lines)
TAG = 16                     # bytes of a chunk's attempt tag
_SEQ = struct.Struct("<Q")   # then its number in the attempt: a chunk sent twice (a put
HEAD = TAG + _SEQ.size       # that failed after delivery) counts once
LENGTH = struct.Struct("<Q")  # before each chunk in a file a worker wrote (dicomwire.spooldir)


class Outbox:
    """The events of a worker's part, kept as columns (a list each for
    frames, streams, kinds and texts, and the findings' objects: a show
    line costs four appends, not a tuple and then its share of a
    transposition). An event's place in the part is its frame, then its
    place in the columns: events are appended as they happen. With
    ``send``, every :data:`CHUNK` events leave as one pickled chunk
    (``sent`` counts them); what is left at the end (the streams closed
    by the capture's end) is the tail the part result carries
    (:meth:`tail`). ``findings``: expert events in all. Each chunk starts
    with ``tag``, this attempt's: a task the cluster runs again (a worker
    lost) sends its chunks again under another."""

    def __init__(self, send=None, chunk=CHUNK):
        self.frames, self.sids, self.kinds, self.texts, self.objects = [], [], [], [], []
        self.send, self.sent, self.findings = send, 0, 0
        self.limit = chunk if send is not None else sys.maxsize   # events that make a chunk
        self.tag = os.urandom(TAG)

    def appenders(self):
        """The columns' own appends for a text event, in order (frame,
        stream: :data:`NO_STREAM` for none, kind, text; a writer that
        calls them checks ``len() >= limit`` and calls :meth:`flush`): they
        stay valid across flushes."""
        return self.frames.append, self.sids.append, self.kinds.append, self.texts.append

    def append(self, event):
        """One event (frame, stream or None, kind, payload): a text, or
        a finding's object (kind "x")."""
        frame, sid, kind, payload = event
        self.frames.append(frame)
        self.sids.append(NO_STREAM if sid is None else sid)
        self.kinds.append(kind)
        if kind == "x":
            self.texts.append("")
            self.objects.append(payload)
            self.findings += 1
        else:
            self.texts.append(payload)
        if len(self.frames) >= self.limit:
            self.flush()

    def __len__(self):
        return len(self.frames)

    def __iter__(self):
        """The events (frame, stream or None, kind, payload), in the order
        they came."""
        objects = iter(self.objects)
        for frame, sid, kind, text in zip(self.frames, self.sids, self.kinds, self.texts):
            yield (frame, None if sid == NO_STREAM else sid, kind,
                   next(objects) if kind == "x" else text)

    def flush(self):
        """The events so far leave as one chunk: a :func:`block`."""
        chunk = block(self.frames, self.sids, self.kinds, self.texts, self.objects)
        self.send(self.tag + _SEQ.pack(self.sent)
                  + pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
        self.sent += 1
        for column in (self.frames, self.sids, self.kinds, self.texts, self.objects):
            column.clear()

    def hold(self):
        """Keep the rest: events made after the pass come in any order."""
        self.send, self.limit = None, sys.maxsize

    def tail(self) -> tuple:
        """The events not sent, sorted by place (frame, then order of
        coming), as one :func:`block`."""
        return columns(sorted(self, key=lambda e: e[0]))


NO_STREAM = -1               # an event's stream when it has none (the columns hold ints)


def block(frames, sids, kinds, texts, objects) -> tuple:
    """Columns (lists) as a chunk travels and the merge reads it: (frames,
    streams (:data:`NO_STREAM`: none), kinds as one str, the texts as one
    str, where each event's text ends in it, the findings' objects in
    order, whether the frames rise). Arrays and one str, not a list of
    20,000 texts: the merge after the last part unpickles a chunk in
    ~0.1 ms, not ~1.5 ms; the worker tells whether the frames rise, the
    merge need not check."""
    return (array("q", frames), array("q", sids), "".join(kinds), "".join(texts),
            array("q", accumulate(map(len, texts))), list(objects), frames == sorted(frames))


def events_of(chunk):
    """The events of a :func:`block` (frame, stream or None, kind,
    payload), in order."""
    frames, sids, kinds, text, ends, objects, _rising = chunk
    start, found = 0, iter(objects)
    for frame, sid, kind, end in zip(frames, sids, kinds, ends):
        yield (frame, None if sid == NO_STREAM else sid, kind,
               next(found) if kind == "x" else text[start:end])
        start = end


class OutputLost(BrokenPipeError):
    """A worker's output can no longer reach the client: its pass stops, as
    a pass stops when the reader of its stdout leaves."""


class SendAhead:
    """``send`` on a thread of its own: a send that waits for its answer (a
    Dask queue's put goes to the scheduler and back) no longer stops the
    pass. At most ``depth`` chunks wait, one more is being sent. A failed
    send is tried again (a chunk carries its number: delivered twice, it
    counts once); one that still fails is :class:`OutputLost`, raised at
    the next chunk handed over or at :meth:`close`."""

    PAUSES = (0.5, 2.0)          # s before each new try of a failed send

    def __init__(self, send, depth: int = 2):
        self.send, self.error, self.dropping = send, None, False
        self.waiting = queue.Queue(maxsize=depth)      # memory stays bounded
        self.thread = threading.Thread(target=self._run, name="dicomwire-send", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            chunk = self.waiting.get()
            if chunk is None:
                return
            if self.error is None and not self.dropping:   # else drained, not sent
                self._send(chunk)

    def _send(self, chunk):
        for pause in (*self.PAUSES, None):
            try:
                self.send(chunk)
                return
            except BaseException as e:
                if pause is None:
                    self.error = OutputLost(f"output could not be sent to the client ({e})")
                    self.error.__cause__ = e
                    return
            time.sleep(pause)

    def __call__(self, chunk: bytes):
        if self.error is not None:
            raise self.error
        self.waiting.put(chunk)

    def close(self, raising: bool = True):
        """Every chunk handed over has left; ``raising``: a failure is
        raised. Not ``raising`` (the pass failed: its error is the one to
        tell), the chunks still waiting are dropped."""
        self.dropping = self.dropping or not raising
        if self.thread.is_alive():
            self.waiting.put(None)
            self.thread.join()
        if raising and self.error is not None:
            raise self.error


def columns(events) -> tuple:
    """Events (frame, stream or None, kind, payload) as one :func:`block`
    (a part's tail; tests). The merge takes a block's runs of text whole
    (:mod:`dicomwire.merge`)."""
    frames, sids, kinds, texts, objects = [], [], [], [], []
    for frame, sid, kind, payload in events:            # (a generator: taken once)
        frames.append(frame)
        sids.append(NO_STREAM if sid is None else sid)
        kinds.append(kind)
        texts.append("" if kind == "x" else payload)
        if kind == "x":
            objects.append(payload)
    return block(frames, sids, kinds, texts, objects)


class Spool:
    """A part's chunks as they arrive, in a temporary file."""

    def __init__(self):
        self.file = tempfile.TemporaryFile()
        self.index: dict[bytes, dict] = {}       # tag -> {seq: (offset, size)}

    def add(self, chunk: bytes):
        seen = self.index.setdefault(chunk[:TAG], {})
        (seq,) = _SEQ.unpack_from(chunk, TAG)
        # A number seen again: the later chunk (the earlier's events and
        # those made since) stands for both.
        f = self.file
        f.seek(0, os.SEEK_END)
        seen[seq] = (f.tell(), len(chunk) - HEAD)
        f.write(chunk[HEAD:])

    @classmethod
    def written(cls, path: str) -> "Spool":
        """The chunks a worker wrote to ``path`` (:mod:`dicomwire.spooldir`),
        each after its length; a chunk cut short is not counted."""
        spool = cls.__new__(cls)
        spool.file, spool.index = open(path, "rb"), {}
        f, at = spool.file, 0
        size = os.fstat(f.fileno()).st_size
        while at + LENGTH.size + HEAD <= size:
            f.seek(at)
            (n,) = LENGTH.unpack(f.read(LENGTH.size))
            chunk = f.read(HEAD)
            if n < HEAD or at + LENGTH.size + n > size:
                break
            (seq,) = _SEQ.unpack_from(chunk, TAG)
            spool.index.setdefault(chunk[:TAG], {})[seq] = (at + LENGTH.size + HEAD, n - HEAD)
            at += LENGTH.size + n
        return spool

    def count(self, tag) -> int:
        return len(self.index.get(tag, ()))

    def blocks(self, tag):
        """The chunks of attempt ``tag`` in order, each a block of
        :func:`columns` (read back one chunk at a time)."""
        f = self.file
        f.flush()
        chunks = self.index.get(tag, {})
        for seq in sorted(chunks):
            offset, size = chunks[seq]
            f.seek(offset)
            yield pickle.loads(f.read(size))

    def close(self):
        self.file.close()


class Collector:
    """The client's side: a thread takes the chunks of every part from its
    ``queues`` (objects with ``get(batch=True)`` -> the chunks waiting) into
    its :class:`Spool` as they come, so that they wait on disk, not in the
    cluster's memory, while earlier parts run. ``watched``: the parts whose
    queues are polled (None: all); the others wait for :meth:`watch`."""

    # s. A get is a round trip to the scheduler (~1.1 ms of the client's CPU,
    # ~0.6 ms of the scheduler's, a queue); a worker sends a chunk every
    # second or so: polled every 0.25 s, an a16 run spent ~0.8 s of a full
    # machine's CPU on gets that mostly found nothing.
    POLL = 1.0

    def __init__(self, queues, watched=None, shared=None):
        self.queues = list(queues)
        self.shared = shared            # (dicomwire.spooldir.SharedDir: closed with the spools)
        self.spools = [Spool() for _ in self.queues]
        self.watched = set(range(len(self.queues)) if watched is None else watched)
        self.settled: set[int] = set()
        self.written: set[int] = set()     # parts whose chunks are in a file they wrote
        self.error = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="dicomwire-collect", daemon=True)
        self.thread.start()

    def watch(self, k: int, queue=None):
        """Poll part ``k``'s queue (``queue``, when not given at the start)
        from now on: its task is submitted."""
        with self.lock:
            if queue is not None:
                self.queues[k] = queue
            self.watched.add(k)

    def settle(self, k: int):
        """Part ``k`` ended: every chunk it sent is in its queue (a task
        returns once its sends are answered), taken once more and no longer
        polled."""
        with self.lock:
            self.settled.add(k)

    def _take(self, every: bool = False) -> int:
        with self.lock:
            if every:
                polled = [k for k, q in enumerate(self.queues) if q is not None]
            else:
                polled = sorted(self.watched)
            last = self.settled.intersection(polled)
        n = 0
        for k in polled:
            if k in self.written:        # (an earlier attempt's chunks: not this one's)
                continue
            for chunk in self.queues[k].get(batch=True):
                self.spools[k].add(chunk)
                n += 1
        with self.lock:
            self.watched -= last
        return n

    def _run(self):
        try:
            while not self.stopping.is_set():
                if not self._take():
                    self.stopping.wait(self.POLL)
        except Exception as e:               # given to finish()
            self.error = e

    def finish(self, parts, timeout: float = 60.0):
        """Every chunk the parts (:class:`dicomwire.partresult.PartResult`)
        say they sent, spooled; each part gets its ``spool``. Raises
        TimeoutError if some never come."""
        self.stopping.set()
        self.thread.join()
        if self.error is not None:
            raise self.error
        for k, p in enumerate(parts):   # (its chunks in a file it wrote)
            if p.spooled:
                self.written.add(k)
                self.spools[k].close()
                self.spools[k] = Spool.written(p.spooled)
                if self.spools[k].count(p.tag) < p.sent:
                    raise OSError(f"a part's output file {p.spooled} is cut short")
        deadline = time.monotonic() + timeout
        while any(s.count(p.tag) < p.sent for s, p in zip(self.spools, parts)):
            if not self._take(every=True):
                if time.monotonic() > deadline:
                    raise TimeoutError("chunks of a part's output never came")
                time.sleep(0.01)
        for p, spool in zip(parts, self.spools):
            p.spool = spool

    def release(self):
        """No more chunks: the queues are given back (the spools stay)."""
        self.stopping.set()
        self.thread.join()
        for q in self.queues:
            try:
                if q is not None:
                    q.close()
            except Exception:             # the connection is gone already
                pass
        self.queues = []

    def close(self):
        self.release()
        for s in self.spools:
            s.close()
        if self.shared is not None:
            self.shared.close()
