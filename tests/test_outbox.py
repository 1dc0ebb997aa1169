"""dicomwire.outbox: a --dask worker's output goes to the client in chunks
as it is made, and waits there on disk: the merge reads each part's events
back in order, and only those of the attempt whose result it got (a task
Dask ran again after a lost worker sends its chunks again)."""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from pathlib import Path

import pytest

from dicomwire.outbox import (TAG, Collector, Outbox, OutputLost, SendAhead, Spool, columns,
                              events_of)
from dicomwire.partresult import PartResult


def _events(spool, tag):
    """The events of a spool's chunks of attempt ``tag``, one by one."""
    for block in spool.blocks(tag):
        yield from events_of(block)


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
    return [(start + i, 0, kind, f"line {start + i}\n") for i in range(n)]


def test_chunks_go_ahead_and_come_back_in_order():
    qs = [_Queue(), _Queue()]
    collector = Collector(qs)
    parts = []
    for k, q in enumerate(qs):
        box = Outbox(q.put, chunk=7)
        for e in events(30, "x" if k else "o", 100 * k):
            box.append(e)
        box.hold()
        box.append((1 << 62, 0, "o", "closed at the end\n"))
        parts.append(PartResult(k, 0, events=box.tail(), sent=box.sent, tag=box.tag,
                                findings=box.findings))
    assert [p.sent for p in parts] == [4, 4] and [p.findings for p in parts] == [0, 30]
    assert [len(p.events[0]) for p in parts] == [3, 3]
    collector.finish(parts)
    collector.release()
    assert all(q.closed for q in qs)
    for k, p in enumerate(parts):
        got = list(_events(p.spool, p.tag)) + list(events_of(p.events))
        assert got[:30] == events(30, "x" if k else "o", 100 * k)
        assert got[30][3] == "closed at the end\n"
    collector.close()


def test_only_the_queues_of_runs_out_are_polled(monkeypatch):
    """A queue is polled from its run's submission (watch) until its run
    has ended (settle: taken once more, then left); finish still takes
    from every queue."""
    monkeypatch.setattr(Collector, "POLL", 0.01)
    asked = []

    class Counted(_Queue):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def get(self, batch=True):
            asked.append(self.k)
            return super().get(batch)

    collector = Collector([None, None], watched=())
    first = Counted(0)
    collector.watch(0, first)
    first.put(b"x" * TAG + bytes(8) + b"chunk")
    _wait_for(lambda: collector.spools[0].count(b"x" * TAG) == 1)
    assert 1 not in asked
    collector.settle(0)
    _wait_for(lambda: 0 not in collector.watched)
    n = asked.count(0)
    collector.watch(1, Counted(1))
    _wait_for(lambda: asked.count(1) >= 3)
    assert asked.count(0) == n                 # settled: no longer asked
    collector.close()


def _wait_for(cond, timeout=5.0):
    import time
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_a_task_run_again_sends_its_chunks_again_under_another_tag():
    q = _Queue()
    collector = Collector([q])
    lost = Outbox(q.put, chunk=5)
    for e in events(12):
        lost.append(e)                        # two chunks, then the worker is lost
    again = Outbox(q.put, chunk=5)
    for e in events(12):
        again.append(e)
    part = PartResult(0, 0, events=again.tail(), sent=again.sent, tag=again.tag)
    collector.finish([part])
    assert list(_events(part.spool, part.tag)) + list(events_of(part.events)) == events(12)
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
    part = PartResult(0, 0, events=box.tail(), sent=box.sent, tag=box.tag)
    collector.finish([part])
    got = list(_events(part.spool, part.tag)) + list(events_of(part.events))
    assert got == events(9)
    collector.close()


def _closed(ahead, raising=True):
    """ahead.close() on a thread: a close that hangs fails the test."""
    errors = []

    def close():
        try:
            ahead.close(raising)
        except BaseException as e:
            errors.append(e)
    t = threading.Thread(target=close, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "close() hung"
    if errors:
        raise errors[0]


def test_sending_ahead_keeps_the_order_and_bounds_what_waits():
    """SendAhead: the pass hands chunks over and goes on while a slow send
    waits for its answer; at most ``depth`` wait (one more is being sent),
    in order, and close() returns once the last has left."""
    sent, gate = [], threading.Event()

    def slow(chunk):
        gate.wait(5)
        sent.append(chunk)
    ahead = SendAhead(slow, depth=2)
    handed = []

    def hand_over():
        for c in (b"1", b"2", b"3", b"4"):
            ahead(c)
            handed.append(c)
    t = threading.Thread(target=hand_over, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while len(handed) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    t.join(0.3)
    # "1" is being sent, "2" and "3" wait; the fourth is held back.
    assert handed == [b"1", b"2", b"3"] and t.is_alive() and sent == []
    gate.set()
    t.join(5)
    assert not t.is_alive()
    _closed(ahead)
    assert sent == [b"1", b"2", b"3", b"4"]


def test_a_put_that_fails_once_is_tried_again_and_nothing_is_lost(monkeypatch):
    """The Outbox sends through SendAhead; one put fails (after delivering,
    as a lost answer would): tried again, every chunk reaches the spool
    once, as many as the part says it sent."""
    monkeypatch.setattr(SendAhead, "PAUSES", (0, 0))
    spool, calls = Spool(), []

    def put(chunk):
        calls.append(chunk)
        spool.add(chunk)
        if len(calls) == 2:
            raise ConnectionError("the answer was lost")
    ahead = SendAhead(put)
    box = Outbox(ahead, chunk=3)
    for n in range(10):
        box.append((n, 1, "o", f"line {n}\n"))
    box.hold()
    _closed(ahead)
    assert len(calls) == 4 and box.sent == 3 and spool.count(box.tag) == 3
    got = [e[0] for e in _events(spool, box.tag)] + [e[0] for e in box]
    assert got == list(range(10))
    spool.close()


def test_a_put_that_keeps_failing_stops_the_pass_as_a_broken_pipe(monkeypatch):
    """After its tries a failed put is OutputLost (a BrokenPipeError, which
    the engine lets through to stop the pass): raised at the next chunk
    handed over and at close(); nothing after it is sent."""
    monkeypatch.setattr(SendAhead, "PAUSES", (0, 0))
    sent = []

    def put(chunk):
        if chunk == b"bad":
            raise ConnectionError("scheduler gone")
        sent.append(chunk)
    ahead = SendAhead(put)
    ahead(b"a")
    ahead(b"bad")
    with pytest.raises(OutputLost) as lost:
        for _ in range(1000):              # raised once the thread has given up
            ahead(b"later")
            time.sleep(0.01)
    assert isinstance(lost.value, BrokenPipeError)
    assert isinstance(lost.value.__cause__, ConnectionError)
    with pytest.raises(OutputLost):
        _closed(ahead)
    _closed(ahead, raising=False)          # the pass's own error is the one told
    assert sent == [b"a"]


def test_a_failed_part_drops_what_still_waits(monkeypatch):
    """close(raising=False), the part having failed: the chunks still
    waiting are not sent (nobody will merge them), and nothing is raised."""
    sent, gate = [], threading.Event()

    def slow(chunk):
        gate.wait(5)
        sent.append(chunk)
    ahead = SendAhead(slow)
    for c in (b"1", b"2", b"3"):
        ahead(c)
    threading.Timer(0.2, gate.set).start()
    _closed(ahead, raising=False)
    assert sent[:1] == [b"1"] and b"3" not in sent


def test_output_lost_in_a_part_is_an_error_not_a_quiet_end(monkeypatch, capsys):
    """A worker's output that cannot reach the client (OutputLost, raised
    where a show line is recorded, inside the plugins' hooks) ends the part
    with that error: the engine lets it through as a broken pipe, and the
    command line reports it (exit 2) instead of ending quietly as for
    ``| head``. The part runs here in-process, on a set of two files."""
    from dicomwire import cli, handover, plugpack
    from support import SAMPLE, in_process_cluster
    from test_capset import frames_of, write_part
    frames = frames_of(SAMPLE)
    tmp = Path(tempfile.mkdtemp())
    a = write_part(tmp / "a.pcap", frames[: len(frames) // 2], "pcap")
    b = write_part(tmp / "b.pcap", frames[len(frames) // 2:], "pcap")
    parts = []

    def lost(chunk):
        raise OutputLost("output could not be sent to the client (test)")

    def submit(client, layout, workers, config, packed, first_ts, run_id, counting):
        runs, stops = layout
        task = dict(config=config, plugins=plugpack.unpack(packed), part=0, runs=runs,
                    stops=stops, first_ts=first_ts, run_id=run_id, base=0, queue=None,
                    chunk=1, send=lost)
        parts.append(handover.run_part(task))      # raises: nothing is returned
        raise AssertionError("the part ended quietly")
    in_process_cluster(monkeypatch, submit)
    status = cli.main(["show", "-q", str(a), str(b), "--dask", "tcp://127.0.0.1:1"])
    assert status == 2 and not parts
    assert "output could not be sent to the client" in capsys.readouterr().err


@pytest.mark.parametrize("write", ["compiled", "python"])
def test_a_recorder_writes_into_the_columns_and_sends_at_the_limit(monkeypatch, write):
    """A worker's stdout and stderr Recorders append to the Outbox's
    columns themselves: with findings appended between, each chunk holds
    exactly ``chunk`` events, every field in its own column, and text is
    never counted as a finding; after hold(), the tail comes sorted by
    place (streams closed at the end: by their first frame). The compiled
    write (dicomwire._fastwalk.record) and the Python one record the same."""
    import pickle
    import types

    from dicomwire import handover
    from dicomwire.handover import END, Clock, Recorder
    from dicomwire.outbox import HEAD
    if write == "python":
        monkeypatch.setattr(handover, "compiled_record", None)
    elif handover.compiled_record is None:
        pytest.skip("dicomwire._fastwalk not built (or DICOMWIRE_PURE set)")
    sent = []
    host = types.SimpleNamespace(frame=10, stream=types.SimpleNamespace(id=handover.LateId(7),
                                                                       first_frame=3))
    clock = Clock(host)
    box = Outbox(sent.append, chunk=3)
    out, err = Recorder(clock, box), Recorder(clock, box, "e")
    assert out.write("") == 0 and box.texts == [""]      # (a write returns its length)
    box.frames.clear(), box.sids.clear(), box.kinds.clear(), box.texts.clear()
    want = []
    for i in range(8):
        host.frame = 10 + i
        if i % 3 == 1:                                   # the Recorders reach the limit
            box.append((clock.frame(), clock.sid(), "x", f"finding {i}"))
            want.append((10 + i, 7, "x", f"finding {i}"))
        else:
            (out if i % 2 else err).write(f"line {i}\n")
            want.append((10 + i, 7, "o" if i % 2 else "e", f"line {i}\n"))
    assert len(sent) == box.sent == 2 and len(box) == 2 and box.findings == 3
    got = []
    for chunk in sent:
        block = pickle.loads(chunk[HEAD:])
        assert [len(block[k]) for k in (0, 1, 2, 4)] == [3] * 4      # (one column an event)
        got += events_of(block)
    box.hold()
    host.frame, host.stream = 0, types.SimpleNamespace(id=2, first_frame=5)
    out.write("closed at the end\n")
    host.stream = types.SimpleNamespace(id=1, first_frame=4)
    out.write("closed first\n")
    host.stream = None
    assert out.write("of no stream\n") == 13
    tail = box.tail()
    got += events_of(tail)
    assert got[:8] == want
    assert got[8:] == [(END, None, "o", "of no stream\n"), (END + 4, 1, "o", "closed first\n"),
                       (END + 5, 2, "o", "closed at the end\n")]
    assert tail[2] == "exooo"


def test_stderr_of_another_thread_is_not_an_event_of_the_pass(capsys):
    """While a part runs, stderr is the Recorder for the whole process:
    what another thread writes there goes to the worker's own stderr, not
    between the columns' appends of the pass's events."""
    import contextlib
    import sys
    import threading
    import types

    from dicomwire.handover import Clock, Recorder
    host = types.SimpleNamespace(frame=5, stream=None)
    box = Outbox()
    with contextlib.redirect_stderr(Recorder(Clock(host), box, "e")):
        print("from the pass", file=sys.stderr)
        other = threading.Thread(target=lambda: print("from Dask", file=sys.stderr))
        other.start()
        other.join()
    assert [e[3] for e in box] == ["from the pass", "\n"]
    assert "from Dask" in capsys.readouterr().err
