"""dicomwire.outbox: a --dask worker's output goes to the client in chunks
as it is made, and waits there on disk: the merge reads each part's events
back in order, and only those of the attempt whose result it got (a task
Dask ran again after a lost worker sends its chunks again)."""

from __future__ import annotations

import queue

from dicomwire.outbox import Collector, Outbox
from dicomwire.partresult import PartResult


class _Queue:
    """What the collector reads of a dask.distributed.Queue."""

    def __init__(self):
        self.q = queue.Queue()
        self.closed = False

    def put(self, chunk):
        self.q.put(chunk)

    def get(self, batch=True):
        out = []
        while not self.q.empty():
            out.append(self.q.get())
        return out

    def close(self):
        self.closed = True


def events(n, kind="o", start=0):
    return [(start + i, i, 0, kind, f"line {start + i}\n") for i in range(n)]


def test_chunks_go_ahead_and_come_back_in_order():
    qs = [_Queue(), _Queue()]
    collector = Collector(qs)
    parts = []
    for k, q in enumerate(qs):
        box = Outbox(q.put, chunk=7)
        for e in events(30, "x" if k else "o", 100 * k):
            box.append(e)
        box.hold()
        box.append((1 << 62, 99, 0, "o", "closed at the end\n"))
        parts.append(PartResult(k, 0, events=list(box), sent=box.sent, tag=box.tag,
                                findings=box.findings))
    assert [p.sent for p in parts] == [4, 4] and [p.findings for p in parts] == [0, 30]
    assert [len(p.events) for p in parts] == [3, 3]
    collector.finish(parts)
    collector.release()
    assert all(q.closed for q in qs)
    for k, p in enumerate(parts):
        got = list(p.spool.events(p.tag)) + p.events
        assert got[:30] == events(30, "x" if k else "o", 100 * k)
        assert got[30][4] == "closed at the end\n"
    collector.close()


def test_a_task_run_again_sends_its_chunks_again_under_another_tag():
    q = _Queue()
    collector = Collector([q])
    lost = Outbox(q.put, chunk=5)
    for e in events(12):
        lost.append(e)                        # two chunks, then the worker is lost
    again = Outbox(q.put, chunk=5)
    for e in events(12):
        again.append(e)
    part = PartResult(0, 0, events=list(again), sent=again.sent, tag=again.tag)
    collector.finish([part])
    assert list(part.spool.events(part.tag)) + part.events == events(12)
    assert part.spool.count(lost.tag) == 2 and lost.tag != again.tag
    collector.close()


def test_without_a_sender_everything_stays_in_the_part():
    box = Outbox()
    for e in events(50_000):
        box.append(e)
    assert box.sent == 0 and len(box) == 50_000


def test_a_chunk_delivered_twice_is_kept_once():
    """A put that failed after the scheduler took the chunk leaves its
    events in the outbox: they go again, with the same number."""
    q = _Queue()
    sent = []

    def flaky(chunk):
        q.put(chunk)
        if not sent:
            sent.append(chunk)
            raise OSError("connection lost after delivery")

    box = Outbox(flaky, chunk=4)
    for e in events(3):
        box.append(e)
    try:
        box.append(events(4)[3])
    except OSError:
        pass
    for e in events(9)[4:]:
        box.append(e)
    collector = Collector([q])
    part = PartResult(0, 0, events=list(box), sent=box.sent, tag=box.tag)
    collector.finish([part])
    got = list(part.spool.events(part.tag)) + part.events
    assert got == events(9)
    collector.close()


def test_sending_ahead_keeps_the_order_and_bounds_what_waits():
    """SendAhead: the pass hands chunks over and goes on while a slow send
    waits for its answer; at most ``depth`` wait, in order, and close()
    returns once the last has left."""
    import threading
    from dicomwire.outbox import SendAhead
    sent, gate = [], threading.Event()

    def slow(chunk):
        gate.wait(5)
        sent.append(chunk)
    ahead = SendAhead(slow, depth=2)
    ahead(b"1")                            # taken by the sending thread, which waits
    handed = threading.Event()

    def hand_over():
        for c in (b"2", b"3", b"4"):
            ahead(c)
        handed.set()
    t = threading.Thread(target=hand_over)
    t.start()
    assert not handed.wait(0.3)            # two wait behind the first; the fourth blocks
    gate.set()
    t.join(5)
    ahead.close()
    assert sent == [b"1", b"2", b"3", b"4"]


def test_a_failed_send_is_raised_and_what_follows_is_not_sent():
    import pytest
    from dicomwire.outbox import SendAhead
    sent = []

    def send(chunk):
        if chunk == b"bad":
            raise ConnectionError("scheduler gone")
        sent.append(chunk)
    ahead = SendAhead(send)
    for c in (b"a", b"bad", b"c"):
        try:
            ahead(c)
        except ConnectionError:
            break
    with pytest.raises(ConnectionError):
        ahead.close()
    assert sent == [b"a"]
