#!/usr/bin/env python3
"""Regenerate the real-peer capture corpus (issue 13, "the rule that keeps it true").

    python tests/corpus/make_corpus.py            # every capture
    python tests/corpus/make_corpus.py echo mpps  # some of them (derived ones follow their source)
    python tests/corpus/make_corpus.py --list     # what there is
    make corpus                                   # the same, then `make golden`

Needs root (or CAP_NET_RAW) and tcpdump, DCMTK's command line tools
(``apt-get install dcmtk tcpdump``), pynetdicom and pydicom (the test extras),
and for ``store_j2k`` OpenJPEG's ``opj_compress`` (``apt-get install
libopenjp2-tools``; skipped with a message without it).  ``tshark``, when
installed, checks that every capture decodes (``--no-check`` skips that).

Every peer talks on loopback only: SCPs listen on 127.0.0.1 port 11112, the
C-MOVE destination on port 104 (both in dicomwire's default ``--ports``), and
tcpdump captures ``tcp port 11112 or tcp port 104`` on ``lo``.  Both ports
must be free.  AE titles are fixed, patients synthetic (``CORPUS^...``), UIDs
derived from fixed strings, images 64x64: only the TCP ports the kernel picks
for clients and the timestamps differ between runs.

The captures are fixtures: they are committed and CI never regenerates them.
After regenerating, run ``python tests/corpus/make_golden.py`` and review the
diff of ``tests/corpus/golden/``.  What each capture shows, whether it is
clean, and what dicomwire must (or today wrongly does) report on it, is in
``tests/corpus/manifest.py``; a capture added here needs an entry there.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

CORPUS = Path(__file__).resolve().parent
TESTS = CORPUS.parent
REPO = TESTS.parent
CAPTURES = CORPUS / "captures"
for p in (TESTS, CORPUS):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import peers  # noqa: E402
from dicomwire.pcapng_writer import internet_checksum  # noqa: E402

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.sequence import Sequence  # noqa: E402
from pydicom.uid import (  # noqa: E402
    CTImageStorage, ExplicitVRLittleEndian,
    JPEG2000Lossless, SecondaryCaptureImageStorage, generate_uid)
from pynetdicom import AE, evt  # noqa: E402
from pynetdicom.dimse_primitives import C_ECHO  # noqa: E402
from pynetdicom.pdu_primitives import (  # noqa: E402
    AsynchronousOperationsWindowNegotiation)
from pynetdicom.presentation import build_context, build_role  # noqa: E402
from pynetdicom.sop_class import (  # noqa: E402
    ModalityPerformedProcedureStep, ModalityWorklistInformationFind,
    StorageCommitmentPushModel, StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove, Verification)

SCP_PORT = 11112          # every SCP of the corpus
DEST_PORT = 104           # the C-MOVE destination (storescp)
HOST = peers.LOOPBACK
TIMEOUT = 30

# AE titles: fixed, one per role
MODALITY, PACS, RIS, WORKSTATION, DEST = "MODALITY", "PACS", "RIS", "WORKSTATION", "DEST_SCP"
SCOMMIT_INSTANCE = "1.2.840.10008.1.20.1.1"        # the well-known Storage Commitment instance


def uid(tag: str) -> str:
    """A fixed UID: the same content on every run."""
    return generate_uid(entropy_srcs=["dicomwire-corpus", tag])


def say(msg: str) -> None:
    print(f"make_corpus: {msg}", flush=True)


def check(cond, what: str) -> None:
    if not cond:
        raise RuntimeError(f"FAILED: {what}")


# --------------------------------------------------------------------------
# The objects sent: synthetic 64x64 images, encoded by DCMTK where it can
# --------------------------------------------------------------------------

def image(name: str, sop_class: str, bits: int, size: int = 64) -> Dataset:
    """A small synthetic image (explicit VR little endian), with file meta."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"] if bits == 16 else ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(f"{name}-instance")
    ds.StudyDate = ds.SeriesDate = "20240301"
    ds.StudyTime = ds.SeriesTime = "101500"
    ds.AccessionNumber = "CORPUS0001"
    ds.Modality = "CT" if bits == 16 else "OT"
    if sop_class == SecondaryCaptureImageStorage:
        ds.ConversionType = "WSD"
    ds.PatientName = "CORPUS^SYNTHETIC"
    ds.PatientID = "CORPUS-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = uid("study-1")
    ds.SeriesInstanceUID = uid(f"{name}-series")
    ds.StudyID = "1"
    ds.SeriesNumber = 1 if bits == 16 else 2
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else 8
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if bits == 8:   # 8x8 checkerboard with a ramp: runs for RLE, edges for JPEG
        ds.PixelData = bytes((((x // 8 + y // 8) % 2) * 160 + y)
                             for y in range(size) for x in range(size))
    else:
        ds.PixelData = b"".join(((x * 48 + y * 16) & 0xFFF).to_bytes(2, "little")
                                for y in range(size) for x in range(size))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def j2k_codestream(ds: Dataset, work: Path) -> bytes | None:
    """The 8-bit image as a lossless JPEG 2000 codestream made by OpenJPEG's
    opj_compress (None when it is not installed)."""
    exe = shutil.which("opj_compress")
    if exe is None:
        return None
    pgm = work / "sc8.pgm"
    pgm.write_bytes(b"P5\n%d %d\n255\n" % (ds.Columns, ds.Rows) + bytes(ds.PixelData))
    out = work / "sc8.j2k"
    subprocess.run([exe, "-i", pgm, "-o", out], check=True, capture_output=True, timeout=60)
    return out.read_bytes()


def make_objects(work: Path) -> dict[str, Path]:
    """Write the corpus's objects into *work*; returns name -> file."""
    files = {}
    for name, sop, bits in (("ct16", CTImageStorage, 16),
                            ("sc8", SecondaryCaptureImageStorage, 8)):
        files[name] = work / f"{name}.dcm"
        image(name, sop, bits).save_as(files[name], enforce_file_format=True)
    # DCMTK encoders, each on its own copy (new instance UIDs: lossy is another object)
    files["sc8_jpeg"] = work / "sc8_jpeg.dcm"          # JPEG baseline (process 1)
    peers.run_dcmtk("dcmcjpeg", ["+eb", files["sc8"], files["sc8_jpeg"]])
    files["sc8_rle"] = work / "sc8_rle.dcm"            # RLE lossless, one frame
    peers.run_dcmtk("dcmcrle", [files["sc8"], files["sc8_rle"]])
    files["ct16_deflated"] = work / "ct16_deflated.dcm"  # Deflated Explicit VR LE
    peers.run_dcmtk("dcmconv", ["+td", files["ct16"], files["ct16_deflated"]])
    # 256x256 of seeded noise: a deflated data set of ~100 KB, several PDUs long
    import random
    big = image("ct16big", CTImageStorage, 16, size=256)
    rnd = random.Random(17)
    big.PixelData = b"".join(rnd.getrandbits(12).to_bytes(2, "little")
                             for _ in range(256 * 256))
    files["ct16big"] = work / "ct16big.dcm"
    big.save_as(files["ct16big"], enforce_file_format=True)
    files["ct16big_deflated"] = work / "ct16big_deflated.dcm"
    peers.run_dcmtk("dcmconv", ["+td", files["ct16big"], files["ct16big_deflated"]])
    sc8 = image("sc8j2k", SecondaryCaptureImageStorage, 8)
    code = j2k_codestream(sc8, work)
    if code is not None:
        sc8.PixelData = encapsulate([code])
        sc8["PixelData"].VR = "OB"
        sc8.file_meta.TransferSyntaxUID = JPEG2000Lossless
        files["sc8_j2k"] = work / "sc8_j2k.dcm"
        sc8.save_as(files["sc8_j2k"], enforce_file_format=True)
    return files


# --------------------------------------------------------------------------
# Peers: pynetdicom SCPs and SCUs, DCMTK through tests/peers.py
# --------------------------------------------------------------------------

def pyn_ae(title: str) -> AE:
    ae = AE(title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    return ae


def pyn_server(ae: AE, handlers=(), port: int = SCP_PORT):
    """Start *ae* as a server on 127.0.0.1:*port* (stop with .shutdown())."""
    return ae.start_server((HOST, port), block=False, evt_handlers=list(handlers))


@contextlib.contextmanager
def running(*servers):
    """Stop pynetdicom servers and DCMTK processes on exit, whatever happened."""
    try:
        yield
    finally:
        for s in servers:
            if hasattr(s, "shutdown"):
                s.shutdown()
            else:
                peers.stop_process(s)


def dataset(**kw) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def study_matches() -> list[Dataset]:
    """Study-level C-FIND matches (synthetic patients)."""
    out = []
    for i, (name, mods, desc) in enumerate((("CORPUS^ALPHA", "CT", "CT CHEST"),
                                           ("CORPUS^BRAVO^J", "MR", "MR BRAIN"),
                                           ("CORPUS^CHARLIE", "CT\\SR", "CT ABDOMEN"),
                                           ("CORPUS^DELTA", "US", "US LIVER")), 1):
        out.append(dataset(
            SpecificCharacterSet="ISO_IR 100", QueryRetrieveLevel="STUDY",
            StudyDate=f"202403{i:02d}", StudyTime=f"09{i:02d}00",
            AccessionNumber=f"CORPUS{i:04d}", ModalitiesInStudy=mods.split("\\"),
            StudyDescription=desc, PatientName=name, PatientID=f"CORPUS-{i:04d}",
            StudyInstanceUID=uid(f"find-study-{i}"), NumberOfStudyRelatedInstances=i * 3))
    return out


def worklist_items() -> list[Dataset]:
    """Scheduled procedure steps for the Modality Worklist SCP."""
    out = []
    for i, (name, desc) in enumerate((("CORPUS^ECHO", "CT HEAD"),
                                      ("CORPUS^FOXTROT", "CT THORAX")), 1):
        sps = dataset(Modality="CT", ScheduledStationAETitle=MODALITY,
                      ScheduledProcedureStepStartDate="20240301",
                      ScheduledProcedureStepStartTime=f"1{i}0000",
                      ScheduledPerformingPhysicianName="CORPUS^DOCTOR",
                      ScheduledProcedureStepDescription=desc,
                      ScheduledProcedureStepID=f"SPS{i:04d}")
        out.append(dataset(
            SpecificCharacterSet="ISO_IR 100", AccessionNumber=f"CORPUS{i:04d}",
            ReferringPhysicianName="CORPUS^REFERRER", PatientName=name,
            PatientID=f"CORPUS-{i:04d}", PatientBirthDate="19700101", PatientSex="O",
            StudyInstanceUID=uid(f"mwl-study-{i}"), RequestedProcedureDescription=desc,
            ScheduledProcedureStepSequence=Sequence([sps]),
            RequestedProcedureID=f"RP{i:04d}"))
    return out


def find_scp(title: str, model: str, matches: list[Dataset], pause: float = 0.0):
    """A pynetdicom C-FIND SCP answering every query with *matches* (one
    Pending each, *pause* seconds apart), honouring C-CANCEL."""
    ae = pyn_ae(title)
    ae.add_supported_context(model)

    def on_find(event):
        for ds in matches:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds
            time.sleep(pause)
        if event.is_cancelled:
            yield 0xFE00, None

    return pyn_server(ae, [(evt.EVT_C_FIND, on_find)])


# --------------------------------------------------------------------------
# The captures.  Each function talks DICOM while the capture runs.
# --------------------------------------------------------------------------

RECIPES: dict[str, Callable] = {}
DERIVED: dict[str, tuple[str, Callable]] = {}     # name -> (source capture, cut)


def recipe(fn):
    RECIPES[fn.__name__] = fn
    return fn


@recipe
def echo(cap, files, work):
    """DCMTK echoscu -> pynetdicom SCP: C-ECHO, release."""
    server = peers.start_scp(SCP_PORT, PACS)
    with running(server), cap():
        peers.run_dcmtk("echoscu", ["-aet", MODALITY, "-aec", PACS, HOST, SCP_PORT])


@recipe
def store_dcmtk_multi_ts(cap, files, work):
    """DCMTK storescu proposing JPEG baseline and uncompressed contexts for
    each SOP class (-xy -R) -> DCMTK storescp, which accepts the uncompressed
    one per class; both stores succeed."""
    scp = peers.start_storescp(SCP_PORT, work / "in-multi", aet=PACS)
    with running(scp), cap():
        peers.run_storescu(SCP_PORT, [files["ct16"], files["sc8"]], ["-R", "-xy"],
                           aet=MODALITY, aec=PACS)
    check(len(list((work / "in-multi").iterdir())) == 2, "multi_ts: storescp stored")


@recipe
def store_dcmtk_default_proposals(cap, files, work):
    """DCMTK storescu with its default proposals (every storage class it
    knows, 128 contexts) -> a pynetdicom SCP that supports CT Image Storage
    only: most contexts rejected, the one CT store succeeds."""
    received = []

    def on_store(event):
        received.append(event.dataset)
        return 0x0000

    ae = pyn_ae(PACS)
    ae.add_supported_context(CTImageStorage, ["1.2.840.10008.1.2", ExplicitVRLittleEndian])
    server = pyn_server(ae, [(evt.EVT_C_STORE, on_store)])
    with running(server), cap():
        peers.run_storescu(SCP_PORT, [files["ct16"]], [], aet=MODALITY, aec=PACS)
    check(len(received) == 1, "default proposals: SCP stored the CT")


def _store_dcmtk(cap, work, files, tag, extra=()):
    scp = peers.start_storescp(SCP_PORT, work / f"in-{tag}", ("+B", "+uf", "+xa"), aet=PACS)
    with running(scp), cap():
        peers.run_storescu(SCP_PORT, files, ["-R", *extra], aet=MODALITY, aec=PACS)
    check(len(list((work / f"in-{tag}").iterdir())) == len(files), f"{tag}: storescp stored")


@recipe
def store_jpeg(cap, files, work):
    """DCMTK storescu -> storescp: one JPEG Baseline image (made by dcmcjpeg)."""
    _store_dcmtk(cap, work, [files["sc8_jpeg"]], "jpeg", ["-xy"])


@recipe
def store_rle(cap, files, work):
    """pynetdicom SCU -> DCMTK storescp: one single-frame RLE Lossless image
    (made by dcmcrle)."""
    import pydicom
    ds = pydicom.dcmread(files["sc8_rle"])
    scp = peers.start_storescp(SCP_PORT, work / "in-rle", ("+B", "+uf", "+xa"), aet=PACS)
    ae = pyn_ae(MODALITY)
    ae.add_requested_context(ds.SOPClassUID, [ds.file_meta.TransferSyntaxUID])
    with running(scp), cap():
        assoc = ae.associate(HOST, SCP_PORT, ae_title=PACS)
        check(assoc.is_established, "rle: association")
        status = assoc.send_c_store(ds)
        assoc.release()
        check(status.Status == 0, f"rle: C-STORE status {status}")


@recipe
def store_j2k(cap, files, work):
    """DCMTK storescu -> storescp: one JPEG 2000 Lossless image (codestream
    by OpenJPEG's opj_compress)."""
    if "sc8_j2k" not in files:
        raise Skip("opj_compress not installed (apt-get install libopenjp2-tools)")
    _store_dcmtk(cap, work, [files["sc8_j2k"]], "j2k", ["-xv"])


@recipe
def store_deflated(cap, files, work):
    """DCMTK storescu (-xd) -> pynetdicom SCP: one CT image in Deflated
    Explicit VR Little Endian (made by dcmconv +td)."""
    server = peers.start_scp(SCP_PORT, PACS)
    with running(server), cap():
        peers.run_storescu(SCP_PORT, [files["ct16_deflated"]], ["-R", "-xd"],
                           aet=MODALITY, aec=PACS)
    check(len(server.received) == 1, "deflated: SCP stored")
    check(server.received[0].file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99",
          "deflated: transfer syntax")


@recipe
def store_deflated_large(cap, files, work):
    """DCMTK storescu (-xd) -> pynetdicom SCP: a 256x256 CT of noise (a
    deflated data set of ~100 KB over several PDUs), then the small deflated
    CT, in one association (Deflated Explicit VR Little Endian, dcmconv +td)."""
    server = peers.start_scp(SCP_PORT, PACS)
    with running(server), cap():
        peers.run_storescu(SCP_PORT, [files["ct16big_deflated"], files["ct16_deflated"]],
                           ["-R", "-xd"], aet=MODALITY, aec=PACS)
    check(len(server.received) == 2, "deflated large: SCP stored both")
    check(all(r.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
              for r in server.received), "deflated large: transfer syntax")


def _findscu(keys, extra=()):
    args = ["-aet", WORKSTATION, "-aec", PACS, *extra]
    for k in keys:
        args += ["-k", k]
    return peers.run_dcmtk("findscu", [*args, HOST, SCP_PORT])


STUDY_KEYS = ["QueryRetrieveLevel=STUDY", "PatientName=CORPUS*", "PatientID",
              "StudyDate=20240301-20240331", "StudyTime", "AccessionNumber",
              "ModalitiesInStudy", "StudyDescription", "StudyInstanceUID",
              "NumberOfStudyRelatedInstances", "SpecificCharacterSet"]


@recipe
def find_study(cap, files, work):
    """DCMTK findscu -> pynetdicom SCP: Study Root C-FIND, four Pending
    responses with identifiers, then Success."""
    server = find_scp(PACS, StudyRootQueryRetrieveInformationModelFind, study_matches(),
                      pause=0.05)
    with running(server), cap():
        _findscu(STUDY_KEYS, ["-S"])


@recipe
def mwl_find(cap, files, work):
    """DCMTK findscu -W -> pynetdicom Modality Worklist SCP: two scheduled
    procedure steps, then Success."""
    server = find_scp(RIS, ModalityWorklistInformationFind, worklist_items())
    keys = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
            "StudyInstanceUID", "RequestedProcedureID", "RequestedProcedureDescription",
            "ReferringPhysicianName", "SpecificCharacterSet",
            "ScheduledProcedureStepSequence[0].Modality=CT",
            f"ScheduledProcedureStepSequence[0].ScheduledStationAETitle={MODALITY}",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20240301",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
            "ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
            "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID"]
    with running(server), cap():
        peers.run_dcmtk("findscu", ["-W", "-aet", MODALITY, "-aec", RIS,
                                    *sum((["-k", k] for k in keys), []), HOST, SCP_PORT])


@recipe
def find_cancel(cap, files, work):
    """pynetdicom SCU -> pynetdicom SCP: Study Root C-FIND cancelled with
    C-CANCEL after the first Pending response; the SCP answers FE00 (Cancel)."""
    server = find_scp(PACS, StudyRootQueryRetrieveInformationModelFind, study_matches(),
                      pause=0.3)
    ae = pyn_ae(WORKSTATION)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind, ExplicitVRLittleEndian)
    query = dataset(QueryRetrieveLevel="STUDY", PatientName="CORPUS*", PatientID="",
                    StudyDate="", StudyInstanceUID="")
    statuses = []
    with running(server), cap():
        assoc = ae.associate(HOST, SCP_PORT, ae_title=PACS)
        check(assoc.is_established, "cancel: association")
        cx = assoc.accepted_contexts[0].context_id
        for status, _ in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind,
                                           msg_id=7):
            statuses.append(status.Status)
            if len(statuses) == 1:
                assoc.send_c_cancel(7, cx)
        assoc.release()
    check(statuses[0] == 0xFF00 and statuses[-1] == 0xFE00, f"cancel: statuses {statuses}")


def _move_scp(datasets):
    """pynetdicom Study Root C-MOVE SCP: DEST_SCP is 127.0.0.1:104, any
    other destination is unknown (A801)."""
    ae = pyn_ae(PACS)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)   # movescu proposes it too

    def on_move(event):
        dest = event.move_destination
        dest = (dest.decode() if isinstance(dest, bytes) else dest).strip()
        if dest != DEST:
            yield None, None
            return
        contexts = [build_context(ds.SOPClassUID, ExplicitVRLittleEndian) for ds in datasets]
        yield HOST, DEST_PORT, {"contexts": contexts}
        yield len(datasets)
        for ds in datasets:
            if event.is_cancelled:
                yield 0xFE00, None
                return
            yield 0xFF00, ds

    return pyn_server(ae, [(evt.EVT_C_MOVE, on_move),
                           (evt.EVT_C_FIND, lambda event: iter([(0x0000, None)]))])


def _movescu(dest, check=True):
    return peers.run_dcmtk("movescu", check=check, args=[
        "-S", "-aet", WORKSTATION, "-aec", PACS, "-aem", dest,
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid('study-1')}",
        HOST, SCP_PORT])


@recipe
def move_with_callback(cap, files, work):
    """DCMTK movescu -> pynetdicom SCP (C-MOVE, destination DEST_SCP), which
    opens the callback association to DCMTK storescp on port 104 and
    C-STOREs two images; Pending, then Success."""
    import pydicom
    datasets = [pydicom.dcmread(files[n]) for n in ("ct16", "sc8")]
    server = _move_scp(datasets)
    dest = peers.start_storescp(DEST_PORT, work / "in-move", aet=DEST)
    with running(server, dest), cap():
        _movescu(DEST)
    check(len(list((work / "in-move").iterdir())) == 2, "move: destination stored")


@recipe
def move_unknown_destination(cap, files, work):
    """DCMTK movescu -> pynetdicom SCP, destination AE the SCP does not
    know: C-MOVE-RSP A801 (Move destination unknown), no callback."""
    server = _move_scp([])
    with running(server), cap():
        res = _movescu("NOWHERE", check=False)
    check("MoveDestinationUnknown" in res.stdout + res.stderr,
          f"move unknown: {res.stdout}{res.stderr}")


@recipe
def get_with_subops(cap, files, work):
    """pynetdicom SCU -> DCMTK dcmqrscp: Study Root C-GET; the two images
    come back as C-STORE sub-operations on the same association (the SCU
    proposed CT and SC storage with the SCP role, dcmqrscp accepted)."""
    import pydicom
    db = work / "qrdb"
    db.mkdir()
    for n in ("ct16", "sc8"):
        shutil.copy(files[n], db / f"{n}.dcm")
    peers.run_dcmtk("dcmqridx", [db, db / "ct16.dcm", db / "sc8.dcm"])
    cfg = work / "dcmqrscp.cfg"
    cfg.write_text(f"NetworkTCPPort = {SCP_PORT}\nMaxPDUSize = 16384\nMaxAssociations = 4\n"
                   "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
                   f"AETable BEGIN\n{PACS} {db} R (10, 10mb) ANY\nAETable END\n")
    scp = peers.start_dcmtk("dcmqrscp", ["-c", cfg, SCP_PORT], SCP_PORT)
    # getscu would propose its 120 storage contexts: pynetdicom proposes the two needed
    sops = [pydicom.dcmread(files[n], stop_before_pixels=True).SOPClassUID
            for n in ("ct16", "sc8")]
    ae = pyn_ae(WORKSTATION)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet, ExplicitVRLittleEndian)
    for sop in sops:
        ae.add_requested_context(sop, ExplicitVRLittleEndian)
    received = []

    def on_store(event):
        received.append(event.request.AffectedSOPInstanceUID)
        return 0x0000

    query = dataset(QueryRetrieveLevel="STUDY", StudyInstanceUID=uid("study-1"))
    statuses = []
    with running(scp), cap():
        assoc = ae.associate(HOST, SCP_PORT, ae_title=PACS,
                             ext_neg=[build_role(sop, scp_role=True) for sop in sops],
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
        check(assoc.is_established, "get: association")
        for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet,
                                          msg_id=1):
            statuses.append(status.Status)
        assoc.release()
    check(len(received) == 2 and statuses[-1] == 0, f"get: {received} {statuses}")


def mpps_create() -> Dataset:
    """N-CREATE attributes of an MPPS IN PROGRESS (PS3.4 F.7.2)."""
    ssa = dataset(StudyInstanceUID=uid("mpps-study"), AccessionNumber="CORPUS0007",
                  RequestedProcedureID="RP0007", ScheduledProcedureStepID="SPS0007",
                  ScheduledProcedureStepDescription="CT HEAD",
                  ReferencedStudySequence=Sequence([]))
    return dataset(
        SpecificCharacterSet="ISO_IR 100", Modality="CT",
        ProcedureCodeSequence=Sequence([]), ReferencedPatientSequence=Sequence([]),
        PatientName="CORPUS^GOLF", PatientID="CORPUS-0007", PatientBirthDate="19700101",
        PatientSex="O", StudyID="7", PerformedStationAETitle=MODALITY,
        PerformedStationName="CT01", PerformedLocation="",
        PerformedProcedureStepStartDate="20240301", PerformedProcedureStepStartTime="110000",
        PerformedProcedureStepEndDate=None, PerformedProcedureStepEndTime=None,
        PerformedProcedureStepStatus="IN PROGRESS", PerformedProcedureStepID="PPS0007",
        PerformedProcedureStepDescription="CT HEAD",
        PerformedProcedureTypeDescription="", PerformedProtocolCodeSequence=Sequence([]),
        ScheduledStepAttributesSequence=Sequence([ssa]),
        PerformedSeriesSequence=Sequence([]))


def mpps_set() -> Dataset:
    """N-SET to COMPLETED: every top-level attribute is in group 0040."""
    series = dataset(PerformingPhysicianName="CORPUS^DOCTOR", ProtocolName="HEAD ROUTINE",
                     OperatorsName="CORPUS^OPERATOR", SeriesInstanceUID=uid("ct16-series"),
                     SeriesDescription="AXIAL", RetrieveAETitle=PACS,
                     ReferencedImageSequence=Sequence([dataset(
                         ReferencedSOPClassUID=CTImageStorage,
                         ReferencedSOPInstanceUID=uid("ct16-instance"))]),
                     ReferencedNonImageCompositeSOPInstanceSequence=Sequence([]))
    return dataset(PerformedProcedureStepEndDate="20240301",
                   PerformedProcedureStepEndTime="111500",
                   PerformedProcedureStepStatus="COMPLETED",
                   PerformedSeriesSequence=Sequence([series]))


def _mpps(cap, refuse: bool):
    ae = pyn_ae(RIS)
    ae.add_supported_context(ModalityPerformedProcedureStep)

    def on_create(event):
        if refuse:
            return dataset(Status=0x0110, ErrorComment="RIS database unavailable"), None
        ds = event.attribute_list
        ds.SOPClassUID = ModalityPerformedProcedureStep
        ds.SOPInstanceUID = event.request.AffectedSOPInstanceUID
        return 0x0000, ds

    def on_set(event):
        return 0x0000, event.attribute_list

    server = pyn_server(ae, [(evt.EVT_N_CREATE, on_create), (evt.EVT_N_SET, on_set)])
    scu = pyn_ae(MODALITY)
    scu.add_requested_context(ModalityPerformedProcedureStep, ExplicitVRLittleEndian)
    instance = uid("mpps-instance")
    with running(server), cap():
        assoc = scu.associate(HOST, SCP_PORT, ae_title=RIS)
        check(assoc.is_established, "mpps: association")
        status, _ = assoc.send_n_create(mpps_create(), ModalityPerformedProcedureStep,
                                        instance, msg_id=1)
        if refuse:
            check(status.Status == 0x0110, f"mpps refused: status {status}")
        else:
            check(status.Status == 0, f"mpps: N-CREATE status {status}")
            time.sleep(0.2)     # the procedure runs
            status, _ = assoc.send_n_set(mpps_set(), ModalityPerformedProcedureStep,
                                         instance, msg_id=2)
            check(status.Status == 0, f"mpps: N-SET status {status}")
        assoc.release()


@recipe
def mpps(cap, files, work):
    """pynetdicom modality -> pynetdicom RIS: MPPS N-CREATE (IN PROGRESS),
    then N-SET to COMPLETED (data set starting with group 0040); both
    responses carry the attribute list."""
    _mpps(cap, refuse=False)


@recipe
def mpps_refused(cap, files, work):
    """pynetdicom modality -> pynetdicom RIS: MPPS N-CREATE answered 0110
    (Processing failure, with an Error Comment); no N-SET."""
    _mpps(cap, refuse=True)


def _commitment(cap, fail: bool = False, report_later: bool = False):
    """Storage Commitment Push Model on one association: N-ACTION, then the
    SCP sends N-EVENT-REPORT (it holds the SCP role negotiated for
    1.2.840.10008.1.20.1) and the SCU answers it before releasing."""
    refs = [dataset(ReferencedSOPClassUID=CTImageStorage,
                    ReferencedSOPInstanceUID=uid("ct16-instance")),
            dataset(ReferencedSOPClassUID=SecondaryCaptureImageStorage,
                    ReferencedSOPInstanceUID=uid("sc8-instance"))]
    transaction = uid("commit-transaction-fail" if fail else "commit-transaction")
    ae = pyn_ae(PACS)
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=True, scp_role=True)

    def report(assoc):
        time.sleep(0.2)                       # the archive checks its storage
        info = dataset(TransactionUID=transaction, RetrieveAETitle=PACS)
        if fail:
            info.ReferencedSOPSequence = Sequence([refs[0]])
            failed = dataset(ReferencedSOPClassUID=refs[1].ReferencedSOPClassUID,
                             ReferencedSOPInstanceUID=refs[1].ReferencedSOPInstanceUID,
                             FailureReason=0x0112)        # No such object instance
            info.FailedSOPSequence = Sequence([failed])
        else:
            info.ReferencedSOPSequence = Sequence(refs)
        status, _ = assoc.send_n_event_report(info, 2 if fail else 1, StorageCommitmentPushModel,
                                           SCOMMIT_INSTANCE, msg_id=1)
        reported.append(status)

    reported: list = []

    def on_action(event):
        if not report_later:
            threading.Thread(target=report, args=(event.assoc,), daemon=True).start()
        return 0x0000, None

    server = pyn_server(ae, [(evt.EVT_N_ACTION, on_action)])
    scu = pyn_ae(MODALITY)
    scu.add_requested_context(StorageCommitmentPushModel, ExplicitVRLittleEndian)
    got = threading.Event()

    def on_report(event):
        got.set()
        return 0x0000, None

    with running(server), cap():
        assoc = scu.associate(HOST, SCP_PORT, ae_title=PACS,
                              ext_neg=[build_role(StorageCommitmentPushModel,
                                                  scu_role=True, scp_role=True)],
                              evt_handlers=[(evt.EVT_N_EVENT_REPORT, on_report)])
        check(assoc.is_established, "commitment: association")
        status, _ = assoc.send_n_action(
            dataset(TransactionUID=transaction, ReferencedSOPSequence=Sequence(refs)),
            1, StorageCommitmentPushModel, SCOMMIT_INSTANCE, msg_id=1)
        check(status.Status == 0, f"commitment: N-ACTION status {status}")
        if not report_later:
            check(got.wait(10), "commitment: no N-EVENT-REPORT")
            time.sleep(0.1)                    # let the N-EVENT-REPORT-RSP go out
        assoc.release()
    check(report_later or (reported and reported[0].Status == 0),
          f"commitment: report status {reported}")


@recipe
def storage_commitment(cap, files, work):
    """pynetdicom modality -> pynetdicom archive: Storage Commitment N-ACTION
    for two instances, N-EVENT-REPORT type 1 (all committed) on the same
    association (SCP role negotiated), release."""
    _commitment(cap)


@recipe
def storage_commitment_failure(cap, files, work):
    """As storage_commitment, but the N-EVENT-REPORT is type 2: one instance
    committed, one in the Failed SOP Sequence with Failure Reason 0112 (No
    such object instance)."""
    _commitment(cap, fail=True)


@recipe
def storage_commitment_no_report(cap, files, work):
    """As storage_commitment, but the archive only answers the N-ACTION and
    the modality releases: the report would come later, on another
    association the capture does not hold."""
    _commitment(cap, report_later=True)


def _echo_pair(assoc, overlapped: bool) -> list[int]:
    """Two C-ECHOs: one after the other, or both sent before either answer
    (two outstanding requests), with pynetdicom's DIMSE layer."""
    if not overlapped:
        return [assoc.send_c_echo(msg_id=i).Status for i in (1, 2)]
    cx = assoc.accepted_contexts[0].context_id
    assoc._reactor_checkpoint.clear()          # as send_c_echo does: pause the reactor
    while not assoc._is_paused:
        time.sleep(0.0001)
    for i in (1, 2):
        req = C_ECHO()
        req.MessageID = i
        req.AffectedSOPClassUID = Verification
        assoc.dimse.send_msg(req, cx)
    rsps = [assoc.dimse.get_msg(block=True)[1] for _ in (1, 2)]
    assoc._reactor_checkpoint.set()
    return [r.Status for r in rsps]


def _async(cap, window, overlapped: bool):
    ae = pyn_ae(PACS)
    ae.add_supported_context(Verification)

    def on_echo(event):
        if overlapped:
            time.sleep(0.2)       # the second request arrives while the first is served
        return 0x0000

    server = pyn_server(ae, [(evt.EVT_ASYNC_OPS, lambda event: (1, 1)),
                             (evt.EVT_C_ECHO, on_echo)])
    scu = pyn_ae(MODALITY)
    scu.add_requested_context(Verification)
    ext = []
    if window:
        item = AsynchronousOperationsWindowNegotiation()
        item.maximum_number_operations_invoked, item.maximum_number_operations_performed = window
        ext.append(item)
    with running(server), cap():
        assoc = scu.associate(HOST, SCP_PORT, ae_title=PACS, ext_neg=ext or None)
        check(assoc.is_established, "async: association")
        statuses = _echo_pair(assoc, overlapped)
        assoc.release()
    check(statuses == [0, 0], f"async: statuses {statuses}")


@recipe
def async_window(cap, files, work):
    """pynetdicom SCU proposing an asynchronous operations window of 4/4,
    pynetdicom SCP answering 1/1 (it supports no more); two C-ECHOs one
    after the other, within the window."""
    _async(cap, (4, 4), overlapped=False)


@recipe
def async_window_exceeded(cap, files, work):
    """pynetdicom SCU without asynchronous operations window negotiation
    (window 1) sending two C-ECHO-RQs before the first answer; pynetdicom
    SCP answers both."""
    _async(cap, None, overlapped=True)


@recipe
def reject_called_ae(cap, files, work):
    """DCMTK echoscu calling AE WRONG_AE -> pynetdicom SCP PACS that checks
    the called AE title: A-ASSOCIATE-RJ (called AE title not recognised)."""
    server = peers.start_scp(SCP_PORT, PACS, require_called_aet=True)
    with running(server), cap():
        res = peers.run_dcmtk("echoscu", ["-aet", MODALITY, "-aec", "WRONG_AE",
                                          HOST, SCP_PORT], check=False)
    check(res.returncode != 0, "reject: echoscu succeeded")


@recipe
def abort(cap, files, work):
    """pynetdicom SCU -> DCMTK storescp: C-ECHO, then A-ABORT instead of a
    release."""
    scp = peers.start_storescp(SCP_PORT, work / "in-abort", aet=PACS)
    ae = pyn_ae(MODALITY)
    ae.add_requested_context(Verification)
    with running(scp), cap():
        assoc = ae.associate(HOST, SCP_PORT, ae_title=PACS)
        check(assoc.is_established, "abort: association")
        check(assoc.send_c_echo(msg_id=1).Status == 0, "abort: C-ECHO")
        assoc.abort()


# --------------------------------------------------------------------------
# Derived captures: real captures cut in Python
# --------------------------------------------------------------------------

def read_pcap(path: Path) -> tuple[bytes, list[bytes]]:
    """(global header, [record header + data, ...]) of a classic pcap file."""
    data = path.read_bytes()
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
              b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}.get(data[:4])
    check(endian is not None, f"{path}: not a classic pcap file")
    records, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        records.append(data[pos:pos + 16 + incl])
        pos += 16 + incl
    check(pos == len(data), f"{path}: truncated record")
    return data[:24], records


def write_pcap(path: Path, header: bytes, records: list[bytes]) -> None:
    path.write_bytes(header + b"".join(records))


def pdus(path: Path) -> list[dict]:
    """dicomwire's own reading of a capture (show -T json), used only to
    find where to cut; the cut is then checked with tshark."""
    from dicomwire.cli import main
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["show", "-q", "-T", "json", str(path)])
    return json.loads(buf.getvalue())


def cut_end_open(src: Path, out: Path) -> str:
    """Keep the frames up to the data set of the second Pending C-FIND-RSP:
    the capture ends while the association is open and the C-FIND has not
    had its final response; every message in it is complete."""
    all_pdus = pdus(src)
    pending = [i for i, p in enumerate(all_pdus)
               if "C-FIND-RSP" in p["summary"] and "Pending" in p["summary"]]
    check(len(pending) >= 2, "cut_end_open: fewer than two pending responses")
    identifier = all_pdus[pending[1] + 1]
    check("Data Set" in identifier["summary"], "cut_end_open: no identifier after the response")
    last = identifier["frame"]
    header, records = read_pcap(src)
    write_pcap(out, header, records[:last])
    return f"frames 1-{last} of {src.name} (up to the second Pending C-FIND-RSP's identifier)"


def cut_start_mpps(src: Path, out: Path) -> str:
    """Drop everything before the N-SET-RQ: no handshake, no A-ASSOCIATE,
    no N-CREATE; the first data set on the context starts with group 0040."""
    nset = [p for p in pdus(src) if "N-SET-RQ" in p["summary"]]
    check(nset, "cut_start_mpps: no N-SET-RQ")
    first = nset[0]["first_frame"]
    header, records = read_pcap(src)
    write_pcap(out, header, records[first - 1:])
    return f"frames {first}-{len(records)} of {src.name} (from the N-SET-RQ on)"


def _tcp_frame(record: bytes, ports: dict, payload: bytes | None = None,
               seq_add: int = 0) -> bytes:
    """An Ethernet/IPv4/TCP pcap record (little-endian pcap) rebuilt with
    its ports mapped through *ports*, optionally another *payload* and a
    sequence number moved by *seq_add*; lengths and checksums recomputed."""
    hdr, frame = record[:16], record[16:]
    check(frame[12:14] == b"\x08\x00", "not IPv4 over Ethernet")
    ip_at = 14
    ihl = (frame[ip_at] & 0x0F) * 4
    tcp_at = ip_at + ihl
    doff = (frame[tcp_at + 12] >> 4) * 4
    ip, tcp = bytearray(frame[ip_at:tcp_at]), bytearray(frame[tcp_at:tcp_at + doff])
    if payload is None:
        payload = frame[tcp_at + doff:]
    sport, dport, seq = struct.unpack_from("!HHI", tcp)
    struct.pack_into("!HHI", tcp, 0, ports.get(sport, sport), ports.get(dport, dport),
                     (seq + seq_add) & 0xFFFFFFFF)
    struct.pack_into("!H", ip, 2, ihl + doff + len(payload))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, internet_checksum(bytes(ip)))
    struct.pack_into("!H", tcp, 16, 0)
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, doff + len(payload))
    struct.pack_into("!H", tcp, 16, internet_checksum(bytes(pseudo) + bytes(tcp) + payload))
    out = frame[:ip_at] + bytes(ip) + bytes(tcp) + payload
    return hdr[:8] + struct.pack("<II", len(out), len(out)) + out


HEURISTIC_PORT = 4242      # not in dicomwire's default --ports


def split_header(src: Path, out: Path) -> str:
    """The echo capture moved to port 4242 (not a default DICOM port), with
    the A-ASSOCIATE-RQ's 6-byte PDU header in a TCP segment of its own and
    the rest of the PDU in the next: what some devices send.  Only the
    heuristic can find this stream."""
    header, records = read_pcap(src)
    check(header[:4] == b"\xd4\xc3\xb2\xa1", "split_header: expects a little-endian pcap")
    ports = {SCP_PORT: HEURISTIC_PORT}
    rq = next(p for p in pdus(src) if "A-ASSOCIATE request" in p["summary"])
    check(rq["first_frame"] == rq["frame"], "split_header: A-ASSOCIATE-RQ not in one segment")
    new = []
    for i, rec in enumerate(records, 1):
        if i != rq["frame"]:
            new.append(_tcp_frame(rec, ports))
            continue
        frame = rec[16:]
        tcp_at = 14 + (frame[14] & 0x0F) * 4
        payload = frame[tcp_at + (frame[tcp_at + 12] >> 4) * 4:]
        check(payload[:1] == b"\x01", "split_header: frame does not start with the RQ")
        new.append(_tcp_frame(rec, ports, payload[:6]))
        new.append(_tcp_frame(rec, ports, payload[6:], seq_add=6))
    write_pcap(out, header, new)
    return (f"{src.name} on port {HEURISTIC_PORT}, frame {rq['frame']} (A-ASSOCIATE-RQ) "
            f"split after its 6-byte header")


DERIVED["cut_end_open"] = ("find_study", cut_end_open)
DERIVED["split_header_other_port"] = ("echo", split_header)
DERIVED["cut_start_mpps"] = ("mpps", cut_start_mpps)


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

class Skip(Exception):
    """A capture that cannot be made here (a tool is missing)."""


def tshark_pdus(path: Path) -> list[str] | None:
    """tshark's DICOM Info column, one line per frame with DICOM (None
    without tshark)."""
    exe = shutil.which("tshark")
    if exe is None:
        return None
    args = [exe, "-n", "-r", str(path)]
    for port in (SCP_PORT, DEST_PORT, HEURISTIC_PORT):
        args += ["-d", f"tcp.port=={port},dicom"]
    args += ["-Y", "dicom", "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Info"]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return [line for line in res.stdout.splitlines() if line.strip()]


def make_one(name: str, files, work: Path) -> Path:
    out = CAPTURES / f"{name}.pcap"
    part = out.with_name(out.name + ".part")
    result = {}

    @contextlib.contextmanager
    def cap():
        with peers.capture_ports(part, [SCP_PORT, DEST_PORT]) as c:
            yield c
        result["cap"] = c

    try:
        RECIPES[name](cap, files, work)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.chmod(part, 0o644)
    os.replace(part, out)
    c = result["cap"]
    say(f"{name}: {len(read_pcap(out)[1])} frames, {out.stat().st_size} bytes "
        f"(tcpdump: {c.captured} captured, {c.dropped} dropped)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="captures to make (default: all)")
    ap.add_argument("--list", action="store_true", help="list the captures and exit")
    ap.add_argument("--no-check", action="store_true", help="skip the tshark check")
    args = ap.parse_args(argv)
    every = [*RECIPES, *DERIVED]
    if args.list:
        for n in every:
            doc = (RECIPES[n].__doc__ if n in RECIPES else DERIVED[n][1].__doc__) or ""
            print(f"{n:<28} {' '.join(doc.split())}")
        return 0
    unknown = [n for n in args.names if n not in every]
    if unknown:
        ap.error(f"unknown capture(s): {', '.join(unknown)}")
    names = args.names or every
    made = [n for n in names if n in RECIPES]
    # a derived capture needs its source: made now, or made before
    derived = [n for n in every if n in DERIVED and (n in names or DERIVED[n][0] in made)]
    for port in (SCP_PORT, DEST_PORT):
        check(peers.port_is_free(port), f"port {port} is busy")
    CAPTURES.mkdir(parents=True, exist_ok=True)
    skipped = []
    with tempfile.TemporaryDirectory(prefix="dicomwire-corpus-") as tmp:
        work = Path(tmp)
        files = make_objects(work)
        for name in made:
            (work / name).mkdir()
            try:
                make_one(name, files, work / name)
            except Skip as e:
                skipped.append(name)
                say(f"{name}: SKIPPED: {e}")
            # the next capture must not see this one's TIME_WAIT / late FINs
            for port in (SCP_PORT, DEST_PORT):
                peers.wait_connections_closed(port)
    for name in derived:
        src, cut = DERIVED[name]
        out = CAPTURES / f"{name}.pcap"
        how = cut(CAPTURES / f"{src}.pcap", out)
        os.chmod(out, 0o644)
        say(f"{name}: {how}")
    if not args.no_check:
        for name in [*made, *derived]:
            if name in skipped:
                continue
            lines = tshark_pdus(CAPTURES / f"{name}.pcap")
            if lines is None:
                say("tshark not installed: captures not checked")
                break
            check(lines, f"{name}: tshark sees no DICOM")
            say(f"{name}: tshark decodes {len(lines)} DICOM frames")
    total = sum(p.stat().st_size for p in CAPTURES.glob("*.pcap"))
    say(f"corpus: {len(list(CAPTURES.glob('*.pcap')))} captures, {total} bytes"
        + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
