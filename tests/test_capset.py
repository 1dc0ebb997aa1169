"""Several capture files read as one (issue 18, file sets): a real capture
cut into 2-4 files at arbitrary frames, in pcap and pcapng, at several time
resolutions and link types, given in any order, or split by stream into
files that overlap in time, gives what the single file gives: the same
PDUs, findings and exported bytes (the same frame numbers where the files
follow each other in time)."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

import capgen
from dicomwire.capset import CaptureSet, open_set, plan
from dicomwire.capspan import Span, probe
from dicomwire.capture import CaptureError, open_capture
from support import ROOT, SAMPLE

CORPUS = ROOT / "tests" / "corpus" / "captures"
CAPTURES = [SAMPLE, CORPUS / "move_with_callback.pcap", CORPUS / "store_dcmtk_multi_ts.pcap",
            CORPUS / "get_with_subops.pcap"]
KINDS = ("pcap", "pcapng-ns", "pcap-ns", "sll-pcapng", "pcapng-be", "raw-pcap", "gzip-pcap")


def frames_of(path) -> list[tuple]:
    """(ts_ns, data, orig_len, linktype) of every frame."""
    with open_capture(str(path)) as cap:
        return [(ts, bytes(data), orig, lt) for _n, ts, lt, data, orig, _i in cap]


def _relink(data: bytes, linktype: int, to: int) -> bytes:
    assert linktype == capgen.LT_ETHERNET
    return capgen.link(to, data[14:]) if to != capgen.LT_ETHERNET else data


def write_part(path: Path, frames, kind: str) -> Path:
    """``frames`` as a capture file of ``kind`` (see KINDS)."""
    lt = {"sll": capgen.LT_SLL, "raw": capgen.LT_RAW}.get(kind.split("-")[0], capgen.LT_ETHERNET)
    rows = [(ts, _relink(d, flt, lt), orig - (len(d) - len(_relink(d, flt, lt))))
            for ts, d, orig, flt in frames]
    if kind.endswith("pcapng") or "pcapng-" in kind:
        tsresol = 9 if kind.endswith("-ns") else None
        blob = capgen.simple_pcapng(rows, lt, big_endian=kind.endswith("-be"), tsresol=tsresol)
    else:
        blob = capgen.pcap(rows, lt, nanosecond=kind.endswith("-ns"))
    if kind.startswith("gzip"):
        blob = gzip.compress(blob)
    path.write_bytes(blob)
    return path


def split(src, folder: Path, cuts, kinds=("pcap",)) -> list[Path]:
    """``src`` cut before each frame number in ``cuts`` (1-based), one file
    per piece, kinds taken in turn; in time order."""
    frames = frames_of(src)
    bounds = [0, *[c - 1 for c in cuts], len(frames)]
    out = []
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        kind = kinds[i % len(kinds)]
        ext = ".pcapng" if "pcapng" in kind else ".pcap"
        out.append(write_part(folder / f"part{i}{ext}", frames[a:b], kind))
    return out


def outputs(cli, *capture, outdir: Path) -> dict:
    """What show, expert -T json, streams and export say of a capture."""
    show = cli("show", "-q", *capture)
    expert = cli("expert", "-q", "-T", "json", *capture)
    streams = cli("streams", "-q", "-T", "json", *capture)
    export = cli("export", "-q", *capture, "-o", outdir)
    doc = json.loads(expert.stdout)
    files = {p.name: p.read_bytes() for p in sorted(outdir.iterdir())}
    return {"show": show.stdout, "expert": (doc["summary"], doc["infos"]),
            "streams": json.loads(streams.stdout)["streams"], "export": files,
            "status": (show.returncode, expert.returncode, export.returncode)}


def _single(cli, src, tmp_path):
    return outputs(cli, src, outdir=tmp_path / "single")


@pytest.mark.parametrize("src", CAPTURES, ids=lambda p: p.stem)
def test_a_capture_cut_into_files_reads_as_the_single_file(cli, tmp_path, src):
    want = _single(cli, src, tmp_path)
    n = len(frames_of(src))
    rng = random.Random(src.stem)
    for round_ in range(3):
        parts = rng.randint(2, 4)
        cuts = sorted(rng.sample(range(2, n + 1), parts - 1))
        kinds = rng.sample(KINDS, len(KINDS))
        folder = tmp_path / f"cut{round_}"
        folder.mkdir()
        files = split(src, folder, cuts, kinds)
        got = outputs(cli, *files, outdir=folder / "out")
        assert got == want, (cuts, kinds)
        shuffled = files[:]
        rng.shuffle(shuffled)
        assert outputs(cli, *shuffled, outdir=folder / "out2") == want, (cuts, kinds, shuffled)


def test_an_object_cut_by_a_file_boundary_is_exported_whole(cli, tmp_path):
    # Frames 11-15 of the sample carry the CT image's data set.
    want = _single(cli, SAMPLE, tmp_path)
    files = split(SAMPLE, tmp_path, [12, 14], ("pcap", "pcapng-ns"))
    got = outputs(cli, *files, outdir=tmp_path / "out")
    assert got["export"] == want["export"] and len(got["export"]) >= 5
    assert got == want


def test_a_folder_and_a_quoted_glob(cli, tmp_path):
    want = cli("show", "-q", SAMPLE).stdout
    split(SAMPLE, tmp_path, [20, 50], ("pcapng-ns", "pcap"))
    (tmp_path / "notes.txt").write_text("not a capture")
    assert cli("show", "-q", tmp_path, ok=True).stdout == want
    assert cli("show", "-q", str(tmp_path / "part*"), ok=True).stdout == want
    r = cli("streams", "-T", "json", str(tmp_path / "part*"), ok=True)
    doc = json.loads(r.stdout)
    assert doc["capture"] == f"{tmp_path / 'part*'} [3 files]" and doc["format"] == "pcapng+pcap"
    assert doc["frames"] == 76


def test_files_that_overlap_in_time_are_merged_by_timestamp(cli, tmp_path):
    """Two captures of different streams over the same time (a capture per
    interface, say): merged by timestamp, as one capture of both."""
    src = CORPUS / "move_with_callback.pcap"
    frames = frames_of(src)
    ports = [struct.unpack(">HH", d[34:38]) for _ts, d, _o, _lt in frames]
    dport = [min(p) for p in ports]
    assert len(set(dport)) > 1
    first = dport[0]
    a = write_part(tmp_path / "a.pcapng", [f for f, p in zip(frames, dport) if p == first],
                   "pcapng-ns")
    b = write_part(tmp_path / "b.pcap", [f for f, p in zip(frames, dport) if p != first], "pcap")
    ts = [f[0] for f in frames]
    assert len(set(ts)) == len(ts), "ties would make the frame order ambiguous"
    cap = open_set([str(b), str(a)])
    assert isinstance(cap, CaptureSet) and len(cap.parts) == 1 and len(cap.parts[0]) == 2
    cap.close()
    want = _single(cli, src, tmp_path)
    assert outputs(cli, a, b, outdir=tmp_path / "o1") == want
    assert outputs(cli, b, a, outdir=tmp_path / "o2") == want


def test_a_damaged_file_in_the_middle_is_reported_and_the_rest_read(cli, tmp_path):
    files = split(SAMPLE, tmp_path, [30, 45], ("pcap", "pcapng-ns", "pcap"))
    blob = files[1].read_bytes()
    files[1].write_bytes(blob[:-50])             # its last block cut
    r = cli("show", *files)
    assert r.returncode == 0
    assert f"{files[1]}: capture cut mid-block" in r.stderr
    assert "A-RELEASE response" in r.stdout.splitlines()[-1]      # the last file was read
    doc = json.loads(cli("expert", "-q", "-T", "json", *files).stdout)
    damaged = [i for i in doc["infos"] if i["name"] == "capture.damaged"]
    assert len(damaged) == 1 and str(files[1]) in damaged[0]["message"]
    assert cli("show", "-q", "--fail-on", "problems", *files).returncode == 1


def test_a_file_that_is_no_capture_is_skipped_with_a_warning(cli, tmp_path):
    files = split(SAMPLE, tmp_path, [40], ("pcap", "pcap"))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"hello, not a capture at all")
    r = cli("show", files[0], junk, files[1])
    assert r.returncode == 0 and f"{junk}: not a pcap or pcapng capture" in r.stderr
    assert r.stdout == cli("show", "-q", SAMPLE).stdout
    missing = cli("show", files[0], tmp_path / "missing.pcap")
    assert missing.returncode == 2 and "No such file" in missing.stderr
    assert cli("show", str(tmp_path / "nothing*")).returncode == 2
    assert cli("show", junk, junk).returncode == 2


def test_annotate_writes_one_capture_of_every_file(cli, tmp_path):
    files = split(SAMPLE, tmp_path, [25, 60], ("pcap", "sll-pcapng", "pcap-ns"))
    out = tmp_path / "out.pcapng"
    assert "76 frame(s) written" in cli("annotate", "-q", *files, "-o", out, ok=True).stdout
    got = frames_of(out)
    want = frames_of(SAMPLE)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert [g[3] for g in got] == [1] * 24 + [113] * 35 + [1] * 17
    with open_capture(str(out)) as cap:
        list(cap)
        assert [i.linktype for i in cap.interfaces] == [1, 113, 1]


def test_the_fast_path_reads_each_file_in_place(tmp_path, monkeypatch):
    """Files that follow each other get their own walker (the fast path),
    and its results are the general path's."""
    import dicomwire.pipeline as pipeline
    from dicomwire.config import Config
    files = split(SAMPLE, tmp_path, [15, 40], ("pcap", "pcapng-ns", "pcap"))
    walked = []

    class Recording(pipeline.FastPath):
        def __init__(self, reader, *a, **kw):
            walked.append(reader.name)
            super().__init__(reader, *a, **kw)

    monkeypatch.setattr(pipeline, "FastPath", Recording)
    res = {}
    for fast in (True, False):
        r = pipeline.run([str(f) for f in files], Config(fast_path=fast))
        res[fast] = (r.frames, [(s.id, s.dirs[0].bytes, s.dirs[1].bytes, s.close_reason)
                                for s in r.streams], [i.message for i in r.expert.infos])
    assert walked == [str(f) for f in files]
    assert res[True] == res[False] and res[True][0] == 76


# -- the time spans and the plan -------------------------------------------------------

@pytest.mark.parametrize("kind", ["pcap", "pcap-ns", "pcapng-ns", "pcapng-be", "sll-pcapng",
                                  "gzip-pcap"])
def test_the_span_probe_finds_the_last_frame(tmp_path, kind, monkeypatch):
    import dicomwire.capspan as capspan
    scan = capspan._scan
    scans = []
    monkeypatch.setattr(capspan, "_scan", lambda *a: scans.append(1) or scan(*a))
    frames = frames_of(SAMPLE)
    rng = random.Random(kind)
    for k in range(8):
        a = rng.randrange(0, len(frames) - 1)
        b = rng.randrange(a + 1, len(frames) + 1)
        path = write_part(tmp_path / f"p{k}", frames[a:b], kind)
        span = probe(str(path))
        assert (span.first_ts, span.last_ts) == (frames[a][0], frames[b - 1][0]), (a, b)
        assert span.compressed == kind.startswith("gzip")
    # Only a compressed file is read whole; the others from their end.
    assert len(scans) == (8 if kind.startswith("gzip") else 0)


def test_the_span_of_a_cut_or_empty_capture(tmp_path):
    frames = frames_of(SAMPLE)
    path = write_part(tmp_path / "cut.pcap", frames[:20], "pcap")
    path.write_bytes(path.read_bytes()[:-7])
    assert probe(str(path)).last_ts == frames[18][0]     # read up to the damage
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(capgen.pcap([]))
    assert probe(str(empty))[4:6] == (None, None)


def test_the_plan_groups_files_that_overlap():
    def s(i, a, b):
        return Span(f"f{i}", i, "pcap", 1, a, b, False)
    spans = [s(0, 30, 40), s(1, 10, 20), s(2, 20, 30), s(3, 35, 50), s(4, 60, 70),
             s(5, None, None), s(6, 65, 66)]
    assert [[x.path for x in p] for p in plan(spans)] == \
        [["f5"], ["f1"], ["f2"], ["f0", "f3"], ["f4", "f6"]]


def test_a_library_caller_passes_a_list_a_folder_or_a_glob(tmp_path):
    from dicomwire.pipeline import run
    files = split(SAMPLE, tmp_path, [33], ("pcapng-ns", "pcap"))
    for source in ([str(f) for f in files], str(tmp_path), str(tmp_path / "*.pcap*")):
        r = run(source)
        assert r.frames == 76 and len(r.streams) == 3 and not r.warnings
        assert r.first_ts == frames_of(SAMPLE)[0][0]
    assert type(open_capture(str(files[0]))).__name__ == "CaptureReader"
    with pytest.raises(CaptureError):
        open_set(["-", str(files[0])])
    with pytest.raises(CaptureError):
        open_set(str(tmp_path / "none*"))
    assert os.path.exists(files[0])


def test_a_ring_buffer_cut_by_editcap(cli, tmp_path):
    """What the issue names: a real capture cut with ``editcap -c``."""
    import shutil
    if not shutil.which("editcap"):
        pytest.skip("editcap (Wireshark) is not installed")
    import subprocess
    for src, n in ((SAMPLE, 17), (CORPUS / "get_with_subops.pcap", 9)):
        folder = tmp_path / src.stem
        folder.mkdir()
        subprocess.run(["editcap", "-c", str(n), str(src), str(folder / "ring.pcapng")],
                       check=True)
        files = sorted(folder.iterdir())
        assert len(files) >= 3
        want = _single(cli, src, tmp_path / f"{src.stem}-single")
        assert outputs(cli, *files, outdir=tmp_path / f"{src.stem}-out") == want
        assert outputs(cli, folder, outdir=tmp_path / f"{src.stem}-dir") == want


def test_comments_keep_their_frames_across_files(tmp_path):
    """pcapng packet comments follow the set's frame numbers, whether the
    files are read one after the other or merged."""
    def part(name, ts_comments):
        blocks = [capgen.IDB(tsresol=9)]
        blocks += [capgen.EPB(0, capgen.ethernet(b"x" * 40), ts, comments=c)
                   for ts, c in ts_comments]
        path = tmp_path / name
        path.write_bytes(capgen.pcapng(capgen.Section(blocks)))
        return str(path)
    a = part("a.pcapng", [(10, ["a1"]), (20, []), (30, ["a3"])])
    b = part("b.pcapng", [(40, ["b1"]), (50, ["b2"])])
    c = part("c.pcapng", [(15, ["c1"]), (25, [])])          # overlaps a
    with open_set([b, a]) as cap:
        assert [f[:2] for f in cap] == [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]
        assert cap.comments == {1: ["a1"], 3: ["a3"], 4: ["b1"], 5: ["b2"]}
    with open_set([b, a, c]) as cap:
        assert [f[1] for f in cap] == [10, 15, 20, 25, 30, 40, 50]
        assert cap.comments == {1: ["a1"], 2: ["c1"], 5: ["a3"], 6: ["b1"], 7: ["b2"]}
        assert len(cap.interfaces) == 3 and cap.frames_read == 7


def _clocks_set(tmp_path):
    """Two pcapng files concatenated (``cat``: the second section's
    interfaces count nanoseconds from an if_tsoffset and 2^-20 s), a
    microsecond and a nanosecond pcap, their times interleaved: (files,
    every frame time in time order)."""
    base = 1_700_000_000 * 10**9

    def pkt(i):
        return capgen.ethernet(capgen.ipv4_tcp("10.0.0.1", "10.0.0.2", 1000 + i, 104, 1, 0, 0x02))
    first = capgen.Section([capgen.IDB(), *[capgen.EPB(0, pkt(i), base + i * 10**9)
                                            for i in range(3)]])
    second = capgen.Section([capgen.IDB(tsresol=9, tsoffset=1_700_000_000),
                             capgen.IDB(tsresol=0x80 | 20),
                             capgen.EPB(0, pkt(3), base + 5 * 10**9 + 123),
                             capgen.EPB(1, pkt(4), base + 9 * 10**9),
                             capgen.EPB(0, pkt(5), base + 9_500_000_007)])
    two = tmp_path / "two.pcapng"
    two.write_bytes(capgen.pcapng(first) + capgen.pcapng(second))
    us = tmp_path / "us.pcap"
    us.write_bytes(capgen.pcap([(base + 2_500_000_000, pkt(6)), (base + 7 * 10**9, pkt(7))]))
    ns = tmp_path / "ns.pcap"
    ns.write_bytes(capgen.pcap([(base + 3_000_000_007, pkt(8)), (base + 8 * 10**9 + 9, pkt(9))],
                               nanosecond=True))
    times = sorted([base, base + 10**9, base + 2 * 10**9, base + 5 * 10**9 + 123,
                    base + 9 * 10**9, base + 9_500_000_007, base + 2_500_000_000,
                    base + 7 * 10**9, base + 3_000_000_007, base + 8 * 10**9 + 9])
    return [two, us, ns], times


def test_sections_with_their_own_clocks_in_a_set(tmp_path):
    """Each pcapng section's interfaces keep their own if_tsresol and
    if_tsoffset, in the reader and in the span probe (the last frame lies
    in the second section: the first section's clock would put it 2 s after
    1970); the set then merges the files by their true times."""
    (two, us, ns), times = _clocks_set(tmp_path)
    with open_capture(str(two)) as cap:
        own = [ts for _n, ts, *_ in cap]
    assert own == [times[0], times[1], times[2], times[5], times[8], times[9]]
    assert probe(str(two)).last_ts == times[-1]
    with open_set([two, us, ns]) as cap:
        assert [ts for _n, ts, *_ in cap] == times
    from dicomwire.pipeline import run
    for src in (str(two), [two, us, ns]):               # the walker's clocks (fast path)
        seen = []
        run(src, tap=lambda _n, ts, *_: seen.append(ts))
        assert seen == (own if src == str(two) else times)


@pytest.mark.skipif(not shutil.which("tshark"), reason="needs tshark")
def test_sections_with_their_own_clocks_as_tshark_reads_them(tmp_path):
    """Each file's frame times as tshark's frame.time_epoch, and the set's
    the files' together in time order. (mergecap 4.0 is no reference: it
    maps the second section's interfaces onto the first's.)"""
    files, _times = _clocks_set(tmp_path)
    every = []
    for path in files:
        out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch"],
                             capture_output=True, text=True, check=True).stdout.split()
        theirs = [int(t.replace(".", "")) for t in out]          # 9 decimals: ns
        with open_capture(str(path)) as cap:
            assert [ts for _n, ts, *_ in cap] == theirs
        every += theirs
    with open_set(files) as cap:
        assert [ts for _n, ts, *_ in cap] == sorted(every)
