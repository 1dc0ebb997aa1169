"""dicomwire.capcount: the frames of a capture file counted cheaply (what a
--dask run numbers each run of files from) are the frames its reader reads,
for pcap and pcapng of every kind, compressed, and damaged files."""

from __future__ import annotations

import gzip
import types

import pytest

from dicomwire import capcount
from dicomwire.capcount import BUDGET, SLACK, Counting, count_frames
from dicomwire.capsource import MAX_RECORD
from dicomwire.capture import CaptureError
from dicomwire.fastpath import ext
from dicomwire.capset import CaptureSet
from support import SAMPLE
from test_capset import KINDS, frames_of, write_part


def read(path) -> int:
    with CaptureSet([str(path)]) as r:
        return sum(1 for _ in r)


@pytest.mark.parametrize("kind", KINDS)
def test_the_count_is_what_the_reader_reads(tmp_path, kind):
    path = write_part(tmp_path / f"x.{kind}", frames_of(SAMPLE), kind)
    assert count_frames([str(path)]) == read(path) == 76


def test_several_files_and_damaged_ones(tmp_path):
    frames = frames_of(SAMPLE)
    a = write_part(tmp_path / "a.pcap", frames[:30], "pcap")
    b = write_part(tmp_path / "b.pcapng", frames[30:], "pcapng-ns")
    assert count_frames([str(a), str(b)]) == 76
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(a.read_bytes()[:-7])                  # the last record cut short
    assert count_frames([str(cut)]) == read(cut) == 29
    gz = tmp_path / "x.pcap.gz"
    gz.write_bytes(gzip.compress(a.read_bytes()))
    assert count_frames([str(gz)]) == 30


@pytest.mark.parametrize("kind", [k for k in KINDS if not k.startswith("gzip")])
@pytest.mark.parametrize("window", [64, 1 << 20])
def test_the_compiled_walk_counts_as_the_python_one(tmp_path, monkeypatch, kind, window):
    """The C walk (``count_file``, GIL released) and the Python loop
    give the same counts, whole and cut, window after window; a second
    section in another byte order is followed."""
    if capcount.ext is None:
        pytest.skip("the compiled walk is not built")
    monkeypatch.setattr(capcount, "WINDOW", window)
    monkeypatch.setattr(capcount, "BUDGET", window)
    frames = frames_of(SAMPLE)
    path = write_part(tmp_path / f"x.{kind}", frames, kind)
    data = path.read_bytes()
    variants = {"whole": data, "cut": data[:-5], "header": data[:24]}
    if kind.startswith("pcapng"):
        other = write_part(tmp_path / "be.pcapng", frames[:9], "pcapng-be") \
            if "pcapng-be" in KINDS else None
        if other is not None:
            variants["sections"] = data + other.read_bytes()
    for name, blob in variants.items():
        f = tmp_path / f"{name}.{kind}"
        f.write_bytes(blob)
        compiled = count_frames([str(f)])
        walked = capcount._count_headers(str(f), lambda: False)
        monkeypatch.setattr(capcount, "ext", None)
        python = count_frames([str(f)])
        walked_py = capcount._count_headers(str(f), lambda: False)
        monkeypatch.setattr(capcount, "ext", ext)
        assert compiled == python == read(f), name
        # Whole files are counted from their headers, not by the reader
        # (a cut one, or a pcapng cut inside its first block, by the reader).
        cut = name == "cut" or (name == "header" and "pcapng" in kind)
        expect = None if cut else read(f)
        assert walked == walked_py == expect, name


def test_counting_on_a_thread_gives_bases_and_errors(tmp_path):
    frames = frames_of(SAMPLE)
    a = write_part(tmp_path / "a.pcap", frames[:30], "pcap")
    b = write_part(tmp_path / "b.pcapng", frames[30:50], "pcapng")
    counting = Counting([str(a), str(b)])
    assert (counting.before(0), counting.before(1), counting.before(2)) == (0, 30, 50)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all, no magic here")
    counting = Counting([str(a), str(bad)])
    assert counting.before(1) == 30
    with pytest.raises(CaptureError):
        counting.before(2)


def test_counting_stops_inside_a_file(tmp_path, monkeypatch):
    """stop() ends the count within a window, not at the file's end; a
    wait for a count that will never come raises."""
    monkeypatch.setattr(capcount, "BUDGET", 256)
    monkeypatch.setattr(capcount, "WINDOW", 256)
    big = tmp_path / "big.pcap"          # longer than count_file's buffer
    big.write_bytes(_pcap([10_000] * 400))
    for compiled in (capcount.ext, None):
        monkeypatch.setattr(capcount, "ext", compiled)
        windows = []
        with pytest.raises(capcount.Stopped):
            count_frames([str(big)], lambda: windows.append(1) or len(windows) > 2)
        assert len(windows) == 3
        assert count_frames([str(big)]) == 400
    # Counting on its thread: stopped inside the second file, a wait for a
    # later count raises (it used to wait for ever).
    import threading
    gate, calls = threading.Event(), []

    def slow(paths, stopped, mark=None):
        calls.append(paths)
        if len(calls) == 2:
            gate.wait(5)
            if stopped():
                raise capcount.Stopped
        return 1
    monkeypatch.setattr(capcount, "count_frames", slow)
    counting = Counting(["x.pcap"] * 50)
    assert counting.before(1) == 1
    counting.stop()
    gate.set()
    counting.thread.join(5)
    assert not counting.thread.is_alive() and len(calls) == 2 and counting.counts == [1]
    with pytest.raises(capcount.Stopped):
        counting.before(50)


def test_counting_ends_at_the_files_needed(monkeypatch):
    """need(n): the counts of the first n files, none after (a --dask run
    that knows its runs counts no further than its last run's base)."""
    import threading
    gate, calls = threading.Event(), []

    def slow(paths, stopped, mark=None):
        calls.append(paths)
        if len(calls) == 2:
            gate.wait(5)
        return 2
    monkeypatch.setattr(capcount, "count_frames", slow)
    counting = Counting([f"{i}.pcap" for i in range(50)])
    counting.need(3)
    gate.set()
    assert counting.before(3) == 6
    counting.thread.join(5)
    assert not counting.thread.is_alive() and len(calls) == 3
    with pytest.raises(capcount.Stopped):
        counting.before(4)


def test_records_longer_than_the_compiled_walks_buffer(tmp_path):
    """count_file reads 1 MiB at a time: a longer record grows its buffer;
    a file that ends inside one is cut (status -1, the reader says what)."""
    if capcount.ext is None:
        pytest.skip("the compiled walk is not built")
    f = tmp_path / "long.pcap"
    f.write_bytes(_pcap([100, 3 << 20, 60]))
    with open(f, "rb") as fh:
        assert capcount.ext.count_file(fh.fileno(), 0, 24, 0, 1 << 30)[::3] == (3, 1)
    assert count_frames([str(f)]) == 3
    f.write_bytes(_pcap([100, 3 << 20])[:-1])
    with open(f, "rb") as fh:
        n, pos, _big, status = capcount.ext.count_file(fh.fileno(), 0, 24, 0, 1 << 30)
    assert (n, pos, status) == (1, 24 + 116, -1)
    # A damaged header claiming more than the file holds: cut at once (its
    # buffer is not grown towards 1 GiB first).
    import struct
    f.write_bytes(_pcap([100]) + struct.pack("<IIII", 1, 0, 0x7FFFFFF0, 60) + bytes(2 << 20))
    with open(f, "rb") as fh:
        assert capcount.ext.count_file(fh.fileno(), 0, 24, 0, 1 << 30)[::3] == (1, -1)


def _pcap(sizes) -> bytes:
    """A pcap of zero-filled records of ``sizes`` bytes."""
    import struct
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 1 << 24, 1)]
    out += [struct.pack("<IIII", 1, 0, n, n) + bytes(n) for n in sizes]
    return b"".join(out)


def test_a_run_that_begins_inside_a_file_starts_where_the_one_before_stops(tmp_path,
                                                                           monkeypatch):
    """Counting.at(i, offset): the frames before, and the offset of the
    first record that does not end by ``offset``; a reader bound to end at
    ``offset`` (CaptureReader.bound) stops at that very record, one that
    begins there reads the rest: together, every frame once. From a mark
    of the count (every window) or from the file's start; compiled walk or
    not."""
    import struct
    # 4.5 MB, a record of 1.5 MB (count_file's buffer grows past SLACK)
    sizes = [100 + (i * 3637) % 30000 for i in range(300)]
    sizes[160] = 3 * SLACK // 2
    path = tmp_path / "one.pcap"
    path.write_bytes(_pcap(sizes))
    ends = list(__import__("itertools").accumulate([24] + [16 + n for n in sizes]))
    calls = []
    if capcount.ext is not None:           # (to see the compiled walk take the bulk)
        monkeypatch.setattr(capcount, "ext", types.SimpleNamespace(
            count_file=lambda *a: calls.append(a) or ext.count_file(*a)))
    # A mark only at the file's end (the walk from its start, the bulk
    # compiled); a mark every window; the Python loops.
    for compiled, budget in ((capcount.ext, BUDGET), (capcount.ext, 4096), (None, 4096)):
        monkeypatch.setattr(capcount, "ext", compiled)
        monkeypatch.setattr(capcount, "BUDGET", budget)
        monkeypatch.setattr(capcount, "WINDOW", budget)
        counting = Counting([str(SAMPLE), str(path)])
        before = counting.before(1)
        for offset in (30, 5000, ends[150], ends[150] + 1, ends[-1] - 3, 10**9):
            n, start = counting.at(1, offset)
            k = max(i for i, e in enumerate(ends) if e <= offset)
            assert (n, start) == (before + k, ends[k]), offset
            with CaptureSet([str(path)], stop=offset) as head:
                got = [f[0] for f in head]
            with CaptureSet([str(path)], start=start, frame_base=len(got)) as rest:
                got += [f[0] for f in rest]
            assert got == list(range(1, 301)) and head.end_offset == start
    assert ext is None or any(a[4] < BUDGET and a[4] > 4096 for a in calls)  # walk_to's bulk
    # Damage before the offset (a record over MAX_RECORD: the reader stops
    # there): no cut (the set is read in one process).
    data = bytearray(_pcap(sizes))
    struct.pack_into("<I", data, ends[100] + 8, MAX_RECORD + 1)
    path.write_bytes(bytes(data))
    for compiled in (capcount.ext, None):
        monkeypatch.setattr(capcount, "ext", compiled)
        with pytest.raises(capcount.Uncut, match="damaged"):
            capcount.walk_to(str(path), ends[200])
        # (its header not whole by the offset: the reader stops before it too)
        assert capcount.walk_to(str(path), ends[100] + 10) == (100, ends[100])
    with pytest.raises(capcount.Uncut):
        capcount.walk_to(str(SAMPLE).replace(".pcap", ".nothing"), 100)


def test_only_a_mapped_classic_pcap_is_read_from_an_offset(tmp_path):
    gz = tmp_path / "x.pcap.gz"
    gz.write_bytes(gzip.compress(SAMPLE.read_bytes()))
    with pytest.raises(CaptureError, match="only a classic pcap"):
        with CaptureSet([str(gz)], start=100) as r:
            list(r)


@pytest.mark.parametrize("kind", KINDS)
def test_which_files_a_run_may_begin_or_end_inside(tmp_path, kind):
    """A classic pcap read in place (16-byte record headers, nanosecond or
    not, any link type): yes; pcapng, compressed: no. A modified pcap
    (24-byte headers): no, though its format is pcap."""
    import struct
    from dicomwire.capspan import probe
    path = write_part(tmp_path / f"x.{kind}", frames_of(SAMPLE), kind)
    assert probe(str(path)).cuttable == (kind in ("pcap", "pcap-ns", "raw-pcap"))
    modified = tmp_path / "modified.pcap"
    rec = struct.pack("<IIII", 1, 0, 60, 60) + bytes(8) + bytes(60)
    modified.write_bytes(struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1) + rec * 3)
    span = probe(str(modified))
    assert span.format == "pcap" and not span.cuttable


def test_a_run_counted_from_where_it_begins_to_where_it_ends(tmp_path):
    """count_run: the frames a run's reader reads (from a record inside its
    first file, to a cut in its last, whole files between, a pcapng among
    them, a cut-short file read to its end) and where the next run begins."""
    sizes = [100 + (i * 3637) % 3000 for i in range(200)]
    one, two = tmp_path / "one.pcap", tmp_path / "two.pcap"
    one.write_bytes(_pcap(sizes))
    two.write_bytes(_pcap(sizes[:50]))
    ng = write_part(tmp_path / "x.pcapng", frames_of(SAMPLE), "pcapng")
    ends = list(__import__("itertools").accumulate([24] + [16 + n for n in sizes]))

    def read_run(paths, start, stop):
        with CaptureSet([str(p) for p in paths], start=start, stop=stop) as r:
            n = sum(1 for _ in r)
            return n, r.end_offset if stop is not None else None

    for paths, start, stop in (([one], ends[20], ends[150] + 7), ([one], None, ends[99]),
                               ([one, ng, two], ends[120], None),
                               ([one, ng, one], ends[5], ends[180] - 1), ([ng, two], None, None)):
        got = capcount.count_run([str(p) for p in paths], start, stop)
        assert got == read_run(paths, start, stop), (paths, start, stop)
    cut = tmp_path / "cut.pcap"                   # the rest of a file cut short
    cut.write_bytes(one.read_bytes()[:ends[60] + 9])
    assert capcount.count_run([str(cut)], ends[10]) == read_run([cut], ends[10], None) == (50, None)
