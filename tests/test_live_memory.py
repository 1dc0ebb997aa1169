"""Days of live monitoring in bounded memory (issue 18): a live run retires
closed streams (``Config.retire_after``, preference ``tcp.retire_after``)
and keeps its older findings as counts (``ExpertLog.retain``), so what it
holds stays flat as associations go by, while its totals (problems, the
expert summary, the streams' counts) are those of the same capture read as
a file. The traffic is made as it is read (tests/longrun.py)."""

from __future__ import annotations

import gc
import json
import tracemalloc

import pytest

from dicomwire import pipeline
from dicomwire.config import Config
from dicomwire.hookspecs import hookimpl
from dicomwire.pipeline import make_host, run
from dicomwire.tcp import Stream
from longrun import LongRun, packets
import capgen as g
from support import dw


class _Sampler:
    """Python memory in use (tracemalloc) every ``every`` stream closes."""

    def __init__(self, every=20):
        self.every, self.closes, self.high = every, 0, 0

    @hookimpl
    def dicomwire_stream_close(self):
        self.closes += 1
        if self.closes % self.every == 0:
            self.high = max(self.high, tracemalloc.get_traced_memory()[0])


def live_run(count, retire_after=20.0):
    """``count`` associations a second apart through the pipeline as a live
    run: (streams listed, streams retired, findings kept, highest memory
    sampled, memory after, Stream objects alive), the run itself gone."""
    config = Config(retire_after=retire_after)
    host = make_host(config)
    sampler = _Sampler()
    host.register(sampler, "sampler")
    gc.collect()
    tracemalloc.start()
    try:
        result = run(LongRun(count), config, host)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    live = sum(1 for o in gc.get_objects() if type(o) is Stream)
    return (len(result.streams), result.retired.streams, len(result.expert.infos),
            sampler.high, after, live)


@pytest.mark.slow
def test_a_long_live_run_stays_in_bounded_memory(monkeypatch):
    """Ten times the associations, the same memory: the streams of the last
    20 s of capture time, the latest findings, and nothing else that grows."""
    monkeypatch.setattr(pipeline, "RETAIN_FINDINGS", 300)
    run(LongRun(5), Config(retire_after=20.0))         # imports and caches, once
    small = live_run(40)
    big = live_run(400)                                   # ten times the associations
    for listed, _retired, infos, _high, _after, live in (small, big):
        # The streams closed within the last 20 s of capture time (22 or so).
        assert listed <= 25 and live <= 25 and infos <= 300
    assert big[1] > 10 * small[1]
    assert big[3] < small[3] + 1_000_000, (small[3], big[3])   # what a run holds: flat
    assert big[4] < small[4] + 1_000_000, (small[4], big[4])


def test_a_live_run_totals_what_the_file_run_lists(monkeypatch):
    """Retired streams and forgotten findings still count: problems, the
    expert summary, frames, bytes and closes, against the same traffic
    with every stream and finding kept."""
    monkeypatch.setattr(pipeline, "RETAIN_FINDINGS", 50)
    live = run(LongRun(60), Config(retire_after=5.0))
    whole = run(LongRun(60), Config())
    assert live.retired.streams and not whole.retired.streams
    assert live.retired.streams + len(live.streams) == len(whole.streams)
    kept = {s.id for s in live.streams}
    assert kept == {s.id for s in whole.streams[-len(kept):]}          # the latest ones
    gone = [s for s in whole.streams if s.id not in kept]
    r = live.retired
    assert r.frames == sum(s.frames for s in gone)
    assert r.bytes == sum(d.bytes for s in gone for d in s.dirs)
    assert r.closes == {"fin": len(gone)}
    assert live.problems() == whole.problems()
    assert live.expert.summary() == whole.expert.summary()
    assert len(live.expert.infos) <= 50 < len(whole.expert.infos)
    frames = {fr for i in live.expert.infos for fr in i.frames}
    assert set(live.expert.by_frame) == frames                 # no stale index either


def test_files_keep_every_stream():
    result = run(LongRun(30), Config())
    assert len(result.streams) == 33 and result.retired.streams == 0
    assert result.expert.retain is None and not result.expert.earlier


@pytest.fixture
def long_capture(tmp_path):
    """30 associations, 10 s apart, as a pcap file (for the stand-in tool)."""
    path = tmp_path / "long.pcap"
    path.write_bytes(b"".join(iter(LongRun(30, spacing=10.0).read, b"")))
    return path


def test_a_live_capture_retires_by_its_preference(tmp_path, long_capture):
    """``-i``: closed streams older than tcp.retire_after (here 25 s of
    capture time) are counted, not listed; 0 keeps all, as a file run."""
    from test_live import FAKE
    from support import QUIET, ROOT  # noqa: F401
    import os
    import sys
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "tcpdump"
    tool.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    tool.chmod(0o755)
    frames = sum(len(packets(i)) for i in range(30))
    env = dict(os.environ, PATH=str(bindir), FAKE_CAPTURE=str(long_capture), FAKE_PACE="0",
               FAKE_ARGS=str(tmp_path / "args"), **QUIET)
    file_doc = json.loads(dw("streams", "-T", "json", long_capture, ok=True).stdout)
    docs = {}
    for keep in ("25", "0"):
        r = dw("streams", "-T", "json", "-i", "lo", "-a", f"packets:{frames}",
               "-o", f"tcp.retire_after:{keep}", env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        docs[keep] = json.loads(r.stdout)
    assert docs["0"]["streams"] == file_doc["streams"] and "retired" not in docs["0"]
    listed, retired = docs["25"]["streams"], docs["25"]["retired"]
    assert len(listed) < 10 and retired["streams"] + len(listed) == len(file_doc["streams"])
    assert listed == file_doc["streams"][-len(listed):]
    assert retired["frames"] + sum(s["frames_c2s"] + s["frames_s2c"] for s in listed) == frames
    assert g.FIN                                                 # capgen closes each one


@pytest.mark.parametrize("name", ["move_with_callback", "find_study", "get_with_subops"])
def test_the_dicom_pack_lets_go_of_what_it_is_done_with(name):
    """Per-run state that would grow with associations over days: answered
    C-MOVEs and each association's last C-FIND (dicom-qr), the endpoints
    show prints per stream; gone once their stream or association is."""
    import argparse
    import io
    from dicomwire.plugins.dicom.show import ShowPDUs
    from test_corpus import CORPUS
    path = CORPUS / "captures" / f"{name}.pcap"
    config = Config()
    host = make_host(config)
    shower = ShowPDUs(argparse.Namespace(format="text", verbose=False, fields=(),
                                         show_secrets=False), io.StringIO())
    shower.config = config
    host.register(shower, "show")
    result = run(str(path), config, host)
    qr = result.expert.state.get("dicom.qr", {"moves": [], "last_find": {}})
    assert qr["moves"] == [] and qr["last_find"] == {}
    assert shower.ends == {} and shower.out.getvalue()


class _Cap:
    """The expert log's cap (100,000 in a file run), made small."""

    def __init__(self, cap):
        self.cap = cap

    @hookimpl
    def dicomwire_capture_start(self):
        self.host.expert.max_infos = self.cap


def test_follow_prints_every_finding_past_the_log_cap():
    """expert --follow on a file: the log stops keeping findings at its cap,
    the lines go on (each finding as it is reported)."""
    import io
    from dicomwire.plugins.dicom.follow import FollowFindings, line
    whole = run(LongRun(20), Config())
    config = Config()
    host = make_host(config)
    out = io.StringIO()
    host.register(FollowFindings(host, out), "follow")
    cap = _Cap(5)
    cap.host = host
    host.register(cap, "cap")
    capped = run(LongRun(20), config, host)
    assert len(capped.expert.infos) == 5 and capped.expert.dropped == len(whole.expert.infos) - 5
    assert out.getvalue() == "".join(line(i, False) for i in whole.expert.infos)
