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
    """Python memory in use (tracemalloc) every ``every`` stream closes;
    ``collect``: what is held, cyclic garbage collected first."""

    def __init__(self, every=20, collect=False):
        self.every, self.closes, self.high, self.collect = every, 0, 0, collect

    @hookimpl
    def dicomwire_stream_close(self):
        self.closes += 1
        if self.closes % self.every == 0:
            if self.collect:
                gc.collect()
            self.high = max(self.high, tracemalloc.get_traced_memory()[0])


def live_run(count, retire_after=20.0, setup=None, source=LongRun, collect=False):
    """``count`` associations a second apart through the pipeline as a live
    run: (streams listed, streams retired, findings kept, highest memory
    sampled, memory after, Stream objects alive), the run itself gone.
    ``setup(host, config)`` registers the command's plugins."""
    config = Config(retire_after=retire_after)
    host = make_host(config)
    sampler = _Sampler(collect=collect)
    host.register(sampler, "sampler")
    if setup is not None:
        setup(host, config)
    gc.collect()
    tracemalloc.start()
    try:
        result = run(source(count), config, host)
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


class _Null:
    def write(self, text):
        pass


def _show(flt, verbose=False, out=None):
    """``setup`` for live_run: show -Y FLT (-V), as cmd_show registers it."""
    import argparse
    from dicomwire.plugins.dicom.show import ShowPDUs, show_match
    made = []

    def setup(host, config):
        args = argparse.Namespace(format="text", verbose=verbose, fields=(),
                                  show_secrets=False, filter=flt)
        shower = ShowPDUs(args, out or _Null())
        shower.config, shower.match = config, show_match(flt)
        host.register(shower, "show")
        made[:] = [shower]
    return setup, made


@pytest.mark.slow
def test_show_with_a_display_filter_stays_in_bounded_memory(monkeypatch):
    """show -Y: every PDU matches, is printed and forgotten (the matched
    frames were kept, about 2.7 kB an association)."""
    from dicomwire.addr import format_endpoint
    from dicomwire.plugins.dicom import show
    monkeypatch.setattr(pipeline, "RETAIN_FINDINGS", 300)
    # Endpoint texts are cached (4096 of them): bounded, but it would fill here.
    monkeypatch.setattr(show, "format_endpoint", format_endpoint.__wrapped__)
    setup, made = _show("frame.number > 0 && !(Modality == MR)", verbose=True)
    live_run(5, setup=setup)                                  # imports and caches, once
    small = live_run(40, setup=setup)
    big = live_run(400, setup=setup)
    print("show -Y, memory after 40 / 400 associations:", small[4], big[4],
          "highest:", small[3], big[3])
    # What grows to its bound here: show's findings shown (~1,600, ~280 kB).
    assert big[3] < small[3] + 500_000, (small[3], big[3])
    assert big[4] < small[4] + 500_000, (small[4], big[4])
    match = made[-1].match
    assert not match.frames and not match.ranges and not match.order


def cut_packets(i: int):
    """Association ``i`` aborted in the middle of a C-STORE's data set: the
    message is reported cut short and reaches no PDU of its own."""
    import dicomgen as d
    session = [(0, d.RQ), (1, d.AC),
               (0, d.pdata((3, 3, d.STORE_RQ)) + d.pdata((3, 0, d.DATASET[:300]))),
               (1, d.ABORT)]
    return g.exchange(f"10.2.{(i >> 8) & 255}.{i & 255}", "10.0.0.2", 30000 + i % 30000,
                      11112, session)


def test_messages_cut_short_leave_nothing_behind():
    """show -V -Y with a data set keyword: what the renderer and the filter
    hold for a message until its PDU goes with the message when it reaches
    none (an association aborted mid data set): it was kept by id for ever."""
    setup, made = _show("Modality == CT || frame.number > 0", verbose=True)
    listed = live_run(60, retire_after=5.0, setup=setup,
                      source=lambda n: LongRun(n, make=cut_packets))[0]
    gc.collect()
    shower = made[-1]
    assert len(shower.datasets) <= listed and len(shower.match.kw) <= listed < 10


def test_expert_with_a_display_filter_keeps_the_latest_matches(monkeypatch):
    """expert --follow -Y in a live run: the frames of matching PDUs (a
    finding on one passes) are kept for about as many PDUs as findings, the
    latest; the lines printed are the file run's."""
    import io
    from dicomwire.plugins.dicom.follow import FollowFindings
    from dicomwire.plugins.dicom.show import PDUMatchPlugin, compile_filter
    monkeypatch.setattr(pipeline, "RETAIN_FINDINGS", 30)
    runs = {}
    for retire in (5.0, None):
        config = Config(retire_after=retire)
        host = make_host(config)
        match = PDUMatchPlugin(compile_filter("dicom.pdu.type == 4"), record=("frames",))
        out = io.StringIO()
        host.register(FollowFindings(host, out, match=match), "follow")
        host.register(match, "match")
        run(LongRun(60), config, host)
        runs[retire] = (out.getvalue(), match)
    (live, live_match), (whole, whole_match) = runs[5.0], runs[None]
    assert live == whole and live.count("\n") > 30
    assert len(live_match.frames) <= 4 * 30 < len(whole_match.frames)
    assert live_match.frames == set(sorted(whole_match.frames)[-len(live_match.frames):])
    assert not whole_match.ranges and not whole_match.order


class _State:
    """Keeps the run's expert state (the DICOM checks' own) at its end."""

    @hookimpl(trylast=True)
    def dicomwire_capture_end(self, result):
        self.state = dict(result.expert.state)


def _services(count, retire_after, keep=None):
    from longrun import service_packets
    # An unanswered request and its association are a cycle: without a
    # collection first, the samples would see garbage the collector's pace.
    return live_run(count, retire_after, source=lambda n: LongRun(n, make=service_packets),
                    setup=lambda host, _config: host.register(keep or _State(), "state"),
                    collect=True)


@pytest.mark.slow
def test_dicom_services_left_waiting_stay_in_bounded_memory(monkeypatch):
    """MPPS steps (kept as many as findings, the least recently used out),
    and C-FINDs and C-MOVEs never answered (let go at their association's
    end: responses come on it) no longer grow with the associations; a
    C-MOVE held its association, with its stream, for ever."""
    monkeypatch.setattr(pipeline, "RETAIN_FINDINGS", 300)
    _services(5, 20.0)
    small = _services(40, 20.0)
    kept = _State()
    big = _services(400, 20.0, kept)
    print("services, memory after 40 / 400 associations:", small[4], big[4],
          "highest:", small[3], big[3])
    assert big[3] < small[3] + 300_000, (small[3], big[3])
    assert big[4] < small[4] + 300_000, (small[4], big[4])
    nserv, qr = kept.state["dicom.nservices"], kept.state["dicom.qr"]
    assert len(nserv["mpps"]) == 300 and nserv["forgotten"] == 401 - 300
    assert qr["finds"] == {} and qr["moves"] == [] and nserv["open"] == {}


def test_dicom_services_left_waiting_report_what_a_file_run_does(monkeypatch):
    """The same findings, live (steps forgotten, unanswered requests let go)
    and from the file; no N-SET's step was forgotten, so no text differs."""
    monkeypatch.setattr(pipeline, "RETAIN_FINDINGS", 20)
    from longrun import service_packets
    live = run(LongRun(40, make=service_packets), Config(retire_after=5.0))
    whole = run(LongRun(40, make=service_packets), Config())
    assert live.expert.state["dicom.nservices"]["forgotten"] > 0
    assert whole.expert.state["dicom.nservices"]["forgotten"] == 0
    assert live.expert.summary() == whole.expert.summary()
    assert [(i.field.name, i.message) for i in live.expert.infos] == \
        [(i.field.name, i.message) for i in whole.expert.infos][-len(live.expert.infos):]


def test_requests_reusing_an_unanswered_id_are_not_all_kept():
    """200 C-ECHO-RQs with Message ID 1, none answered, in one association:
    each is reported as reusing the ID of the one before, which it held,
    which held the one before it... all 200 alive until the association was."""
    import dicomgen as d
    from dicomwire.plugins.dicom.model import Message
    session = [(0, d.RQ), (1, d.AC)] + [(0, d.pdata((1, 3, d.ECHO_RQ)))] * 200
    path_frames = g.exchange("10.5.0.1", "10.0.0.2", 30000, 11112, session)
    blob = g.pcap_header() + b"".join(g.pcap_record(k * 1000, g.ethernet(p))
                                      for k, p in enumerate(path_frames))
    import io
    result = run(io.BytesIO(blob), Config())
    gc.collect()
    assert sum(1 for i in result.expert.infos if i.field.name == "dicom.dimse.duplicate_id") == 199
    assert sum(1 for o in gc.get_objects() if type(o) is Message) < 5
