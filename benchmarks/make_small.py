#!/usr/bin/env python3
"""Make the many-small-objects benchmark capture with real peers on loopback:
DCMTK storescu sends COUNT distinct small CT data sets (2-10 kB) to a
pynetdicom SCP in one association; tcpdump records it.  Needs root, dcmtk,
tcpdump and pynetdicom.  Loopback peers here manage about 20 stores a second
(delayed ACKs), so 10,000 take about 8 minutes.

    python benchmarks/make_small.py OUT.pcap [COUNT]      (default 10000)
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import peers  # noqa: E402  (the tests' peer helpers: tcpdump, storescp, storescu)


def make_files(folder: Path, count: int) -> list[Path]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
    rnd = random.Random(count)
    files = []
    study = generate_uid()
    for i in range(count):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.PatientName, ds.PatientID, ds.Modality = f"BENCH^{i}", f"P{i:05d}", "CT"
        side = rnd.choice((24, 32, 40, 48, 56, 64))           # 1-8 kB of pixels
        ds.Rows = ds.Columns = side
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = rnd.randbytes(side * side * 2)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        p = folder / f"{i:05d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        files.append(p)
    return files


def main():
    out = Path(sys.argv[1]).resolve()
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "src")
        src.mkdir()
        make_files(src, count)
        port = peers.free_port()
        scp = peers.start_scp(port, timeout=120)
        try:
            with peers.capture(out, port, close_timeout=60):
                peers.run_storescu(port, [src], ("-xe", "+sd", "+r"), timeout=3600)
        finally:
            peers.stop_scp(scp)
    print(f"{out}: {count} C-STOREs, {os.path.getsize(out)} bytes")


if __name__ == "__main__":
    main()
