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
from dicomwire.spooldir import TOKEN_FILE, FileSend, SharedDir, writer


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
        assert not [n for n in os.listdir(shared.path) if n != TOKEN_FILE]
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
