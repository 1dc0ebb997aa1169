#!/usr/bin/env python3
"""Produce dicomwire's shipped sample capture from real peers on loopback.

    python tests/make_sample.py [OUT.pcap] [--port N]

Default output: core/samples/sample.pcap.  Needs tcpdump and root (or
CAP_NET_RAW).  All traffic goes to 127.0.0.1, on one port (11112 unless
busy) so a dissector needs a single "tcp.port==PORT,dicom" mapping.

The capture holds, in order:

1. MODALITY -> STORESCP (pynetdicom both sides): A-ASSOCIATE-RQ/AC, C-ECHO,
   four C-STOREs (CT explicit LE, MR explicit BE, RT Plan implicit LE,
   SC deflated explicit LE), a Study Root C-FIND with three Pending matches
   then Success, A-RELEASE.
2. MODALITY -> WRONG_AE: rejected (A-ASSOCIATE-RJ, called AE not
   recognised) because the SCP requires its own called AE title.
3. DCMTKSCU -> STORESCP (DCMTK storescu, if installed): one C-STORE of
   MR_small.dcm, release.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import peers  # noqa: E402

from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from pynetdicom import AE  # noqa: E402
from pynetdicom.sop_class import (  # noqa: E402
    StudyRootQueryRetrieveInformationModelFind, Verification)

DEFAULT_OUT = HERE.parent / "core" / "samples" / "sample.pcap"
DEFAULT_PORT = 11112
CALLING, CALLED, WRONG = "MODALITY", "STORESCP", "WRONG_AE"

# (pydicom test file, why it is here) -- all small, ~65 kB in total.
STORE_FILES = [
    "CT_small.dcm",             # CT Image, Explicit VR Little Endian
    "MR_small_bigendian.dcm",   # MR Image, Explicit VR Big Endian
    "rtplan.dcm",               # RT Plan (no pixels), Implicit VR LE
    "image_dfl.dcm",            # Secondary Capture, Deflated Explicit LE
]
DCMTK_FILE = "MR_small.dcm"


def _uid(tag: str) -> str:
    """A fixed UID, so repeated runs produce the same DICOM content."""
    return generate_uid(entropy_srcs=["dicomwire-sample", tag])


def find_responses() -> list[Dataset]:
    """The study-level matches the SCP returns for the sample C-FIND."""
    rows = [
        ("DOE^JOHN", "PID001", "20240115", "CT", "CT CHEST W/O CONTRAST", None),
        ("DOE^JANE^Q^DR", "PID002", "20240116", "MR", "MR BRAIN", None),
        ("Müller^Hans", "PID003", "20240117", "CT\\SR", "Thorax",
         "ISO_IR 100"),
    ]
    out = []
    for i, (name, pid, date, mods, desc, charset) in enumerate(rows, 1):
        ds = Dataset()
        if charset:
            ds.SpecificCharacterSet = charset
        ds.QueryRetrieveLevel = "STUDY"
        ds.PatientName = name
        ds.PatientID = pid
        ds.StudyDate = date
        ds.StudyTime = f"09{i:02d}00"
        ds.AccessionNumber = f"ACC{i:04d}"
        ds.ModalitiesInStudy = mods.split("\\")
        ds.StudyDescription = desc
        ds.StudyInstanceUID = _uid(f"study-{i}")
        ds.NumberOfStudyRelatedInstances = 10 * i
        ds.RetrieveAETitle = CALLED
        out.append(ds)
    return out


def find_query() -> Dataset:
    """Study Root query sent by the SCU: any patient, studies from 2024."""
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = "*"
    ds.PatientID = ""
    ds.StudyDate = "20240101-20241231"
    ds.StudyTime = ""
    ds.AccessionNumber = ""
    ds.ModalitiesInStudy = ""
    ds.StudyDescription = ""
    ds.StudyInstanceUID = ""
    ds.NumberOfStudyRelatedInstances = None
    return ds


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SystemExit(f"make_sample: FAILED: {what}")


def main_association(port: int, files: list[str]) -> None:
    """ECHO, STOREs, FIND, RELEASE in one association."""
    import pydicom

    ae = AE(CALLING)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(Verification)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    datasets = [pydicom.dcmread(f) for f in files]
    for ds in datasets:  # propose each object's own transfer syntax only
        ae.add_requested_context(ds.SOPClassUID,
                                 [ds.file_meta.TransferSyntaxUID])

    assoc = ae.associate(peers.LOOPBACK, port, ae_title=CALLED)
    check(assoc.is_established, "association 1 not established")
    try:
        status = assoc.send_c_echo(msg_id=1)
        check(status.get("Status") == 0x0000, f"C-ECHO status {status}")
        for msg_id, ds in enumerate(datasets, start=2):
            status = assoc.send_c_store(ds, msg_id=msg_id)
            check(status.get("Status") == 0x0000,
                  f"C-STORE {ds.SOPClassUID.name}: {status}")
        statuses = [s.Status for s, _ in assoc.send_c_find(
            find_query(), StudyRootQueryRetrieveInformationModelFind,
            msg_id=len(datasets) + 2) if s]
        check(statuses == [0xFF00] * 3 + [0x0000],
              f"C-FIND statuses {statuses}")
    finally:
        assoc.release()
    check(assoc.is_released, "association 1 not released")


def rejected_association(port: int) -> None:
    ae = AE(CALLING)
    ae.acse_timeout = ae.network_timeout = 30
    ae.add_requested_context(Verification)
    assoc = ae.associate(peers.LOOPBACK, port, ae_title=WRONG)
    check(assoc.is_rejected, "association 2 was not rejected")


def count_pcap_records(path: Path) -> int:
    """Number of packets in a classic pcap file (no dependencies)."""
    data = path.read_bytes()
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
              b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    check(endian is not None, f"{path} is not a pcap file")
    pos, n = 24, 0
    while pos + 16 <= len(data):
        incl_len = struct.unpack(endian + "I", data[pos + 8:pos + 12])[0]
        pos += 16 + incl_len
        n += 1
    check(pos == len(data), f"{path} ends with a truncated record")
    return n


def tshark_summary(path: Path, port: int) -> str | None:
    """One line per DICOM PDU as tshark sees it, or None without tshark."""
    exe = shutil.which("tshark")
    if exe is None:
        return None
    res = subprocess.run(
        [exe, "-n", "-r", str(path), "-d", f"tcp.port=={port},dicom",
         "-Y", "dicom", "-T", "fields", "-e", "frame.number",
         "-e", "tcp.stream", "-e", "_ws.col.Info"],
        capture_output=True, text=True, timeout=60)
    return res.stdout.rstrip()


def choose_port(requested: int | None) -> int:
    if requested is not None:
        return requested
    return DEFAULT_PORT if peers.port_is_free(DEFAULT_PORT) else peers.free_port()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT,
                    help=f"output pcap (default {DEFAULT_OUT})")
    ap.add_argument("--port", type=int, default=None,
                    help=f"TCP port (default {DEFAULT_PORT} if free)")
    ap.add_argument("--no-dcmtk", action="store_true",
                    help="skip the DCMTK storescu association")
    args = ap.parse_args(argv)

    port = choose_port(args.port)
    files = [get_testdata_file(name) for name in STORE_FILES]
    use_dcmtk = not args.no_dcmtk and peers.have_dcmtk("storescu")
    print(f"make_sample: port {port}, output {args.out}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part")
    server = peers.start_scp(port, CALLED, find_responses=find_responses(),
                             require_called_aet=True)
    try:
        with peers.capture(tmp, port) as cap:
            main_association(port, files)
            rejected_association(port)
            if use_dcmtk:
                # wait so the DCMTK association starts after the others
                # have fully closed (keeps the streams cleanly ordered)
                peers.wait_connections_closed(port)
                peers.run_storescu(port, [get_testdata_file(DCMTK_FILE)],
                                   aet="DCMTKSCU", aec=CALLED)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        peers.stop_scp(server)

    # tcpdump may write the file as its own user; hand it back to us.
    os.chown(tmp, os.getuid(), os.getgid())
    os.chmod(tmp, 0o644)
    os.replace(tmp, args.out)

    n = count_pcap_records(args.out)
    stored = len(server.received)
    check(stored == len(files) + use_dcmtk, f"SCP stored {stored} objects")
    print(f"make_sample: {n} frames, {args.out.stat().st_size} bytes "
          f"(tcpdump: {cap.captured} captured, {cap.dropped} dropped); "
          f"SCP stored {stored} objects; "
          f"associations: 1 full, 1 rejected{', 1 DCMTK' if use_dcmtk else ''}")
    summary = tshark_summary(args.out, port)
    if summary is not None:
        print("tshark DICOM PDUs (frame, stream, info):")
        print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
