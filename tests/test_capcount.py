"""dicomwire.capcount: the frames of a capture file counted cheaply (what a
--dask run numbers each run of files from) are the frames its reader reads,
for pcap and pcapng of every kind, compressed, and damaged files."""

from __future__ import annotations

import gzip

import pytest

from dicomwire.capcount import count_frames
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
