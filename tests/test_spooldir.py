"""dicomwire.spooldir: a --dask worker that sees the client's folder writes
its chunks to a file there, and the merge reads them back as it reads the
chunks that came through a queue; a worker that does not see it (another
machine) is told so and uses the queue; a file cut short is an error, not
output quietly lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dicomwire.outbox import Collector, Outbox, OutputLost, events_of
from dicomwire.partresult import PartResult
from dicomwire.spooldir import PID_FILE, TOKEN_FILE, FileSend, SharedDir, writer


def events(n, start=0):
    return [(start + i, 0, "o", f"line {start + i}\n") for i in range(n)]


def written_part(k, send, n=30, chunk=7):
    """A part whose ``n`` events went out through ``send`` in chunks of
    ``chunk``, but for the last few (its tail)."""
    box = Outbox(send, chunk=chunk)
    for e in events(n, 100 * k):
        box.append(e)
    box.hold()
    return PartResult(k, 0, events=box.tail(), sent=box.sent, tag=box.tag,
                      spooled=getattr(send, "path", None))


def spooled_events(p):
    return [e for block in p.spool.blocks(p.tag) for e in events_of(block)] + \
        list(events_of(p.events))


def test_a_worker_that_sees_the_folder_writes_a_file_the_merge_reads_back():
    shared = SharedDir()
    collector = Collector([None, None], watched=(), shared=shared)
    sends = [writer(shared.offer, k) for k in (0, 1)]
    assert all(isinstance(s, FileSend) and Path(s.path).parent == Path(shared.path)
               for s in sends)
    assert sends[0].path != sends[1].path
    parts = [written_part(k, s) for k, s in enumerate(sends)]
    for s in sends:
        s.close()
    assert [p.sent for p in parts] == [4, 4]
    collector.finish(parts)
    for k, p in enumerate(parts):
        assert spooled_events(p) == events(30, 100 * k)
    collector.close()
    assert not os.path.exists(shared.path)          # the workers' files go with it


def test_a_worker_that_does_not_see_the_folder_is_told_to_use_the_queue(tmp_path):
    shared = SharedDir()
    try:
        assert writer(None, 0) is None
        assert writer((str(tmp_path / "elsewhere"), shared.token), 0) is None
        assert writer((shared.path, "another client's token"), 0) is None
        assert sorted(os.listdir(shared.path)) == sorted([TOKEN_FILE, PID_FILE])
    finally:
        shared.close()


def test_a_file_cut_short_is_an_error_not_fewer_lines():
    shared = SharedDir()
    collector = Collector([None], watched=(), shared=shared)
    send = writer(shared.offer, 0)
    part = written_part(0, send)
    send.close()
    with open(part.spooled, "r+b") as f:
        f.truncate(os.path.getsize(part.spooled) - 3)
    with pytest.raises(OSError, match="cut short"):
        collector.finish([part])
    collector.close()


def test_a_write_that_fails_is_output_lost(tmp_path):
    send = FileSend(str(tmp_path / "part0"))
    os.close(send.fd)
    send.fd = os.open("/dev/full", os.O_WRONLY)     # no space left
    box = Outbox(send, chunk=2)
    box.append(events(1)[0])
    with pytest.raises(OutputLost, match="could not be written"):
        box.append(events(2)[1])
    send.close()


class _Queue(list):
    """What the collector reads of a dask.distributed.Queue."""

    put = list.append

    def get(self, batch=True):
        out, self[:] = list(self), []
        return out

    def close(self):
        pass


def test_a_part_retried_through_the_folder_leaves_its_earlier_queued_chunks():
    """Part 0's first attempt sent chunks through its queue (a worker that
    did not see the folder), its second wrote them to the folder; part 1
    sends through its queue. The merge reads part 0's file and part 1's
    chunks; the earlier attempt's chunks still in part 0's queue are not
    taken into the file's spool."""
    shared = SharedDir()
    queues = [_Queue(), _Queue()]
    collector = Collector(queues, watched=(), shared=shared)
    lost_attempt = Outbox(queues[0].put, chunk=7)
    for e in events(14):
        lost_attempt.append(e)
    send = writer(shared.offer, 0)
    parts = [written_part(0, send), written_part(1, queues[1].put)]
    send.close()
    assert len(queues[0]) == 2 and len(queues[1]) == 4
    collector.finish(parts)
    assert spooled_events(parts[0]) == events(30)
    assert spooled_events(parts[1]) == events(30, 100)
    collector.close()


def test_a_folder_left_by_a_killed_client_is_removed_by_the_next(tmp_path, monkeypatch):
    """A client killed in its run leaves its folder (its files have names):
    the next client removes the folders whose client no longer runs, and
    leaves those of clients still running and those it cannot judge."""
    import subprocess
    import sys
    import tempfile
    from dicomwire import spooldir
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    for name, pid in (("gone", gone), ("running", str(os.getpid())), ("unreadable", "x")):
        folder = tmp_path / (spooldir.PREFIX + name)
        folder.mkdir()
        (folder / spooldir.PID_FILE).write_text(pid)
        (folder / "part0-ab").write_bytes(b"output")
    (tmp_path / "other").mkdir()
    shared = SharedDir()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["other", spooldir.PREFIX + "running", spooldir.PREFIX + "unreadable",
                           os.path.basename(shared.path)])
    shared.close()
