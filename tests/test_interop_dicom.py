"""Acceptance of the DICOM decoding on traffic between real peers.

Every capture here is made with tcpdump on loopback while real programs talk
DICOM to each other -- DCMTK (echoscu, storescu, storescp, findscu, movescu,
getscu, dcmqrscp) and pynetdicom -- and then decoded with dicomwire:

* C-ECHO, DCMTK echoscu -> storescp;
* C-STORE of a ~300 kB object in implicit LE, explicit LE, explicit BE and
  deflated explicit LE with a 4096 byte max PDU, compared byte for byte with
  what a bit-preserving storescp wrote to disk;
* C-FIND, C-MOVE (with the callback association to the move destination) and
  C-GET (SCP role negotiated, C-STOREs on the same association) against
  dcmqrscp;
* pynetdicom extended negotiation (user identity, role selection, SOP class
  extended negotiation, asynchronous operations window) and A-ABORT, with the
  passcode masked by ``dicomwire show -V`` and ``dicomwire assoc``;
* for every capture, where tshark is installed: dicomwire's (frame, PDU type)
  sequence equals tshark's.

Skips cleanly when packets cannot be captured (not root, no tcpdump) or the
DCMTK programs are missing.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest

import peers

from support import Recorder, dw, record, stored_dataset

# DCMTK and pynetdicom peers, captured with tcpdump.
pytestmark = [pytest.mark.interop, pytest.mark.root]

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"

ROWS = COLS = 384                      # 384 x 384 x 16 bit: 294,912 pixel bytes
PASSCODE = "s3cr3t-Passc0de"           # user identity secrets (must be masked)
JWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJib2IifQ."
SERVER_RESPONSE = b"WELCOME-TOKEN-42"
DCMTK_TOOLS = ("echoscu", "storescu", "storescp", "findscu", "movescu",
               "getscu", "dcmqrscp")


@pytest.fixture(scope="module", autouse=True)
def _need_capture():
    # Module scope: runs before the module-scoped peer fixtures, so nothing
    # is started when capturing is impossible.
    peers.require_capture()


def _need_dcmtk(*names):
    if not peers.have_dcmtk(*names):
        pytest.skip(f"DCMTK programs missing: {', '.join(names)}")


# --------------------------------------------------------------------------
# Decoding and comparison helpers
# --------------------------------------------------------------------------

class Rec:
    """One decoded DIMSE message, with what is only readable during the
    dicomwire_message hook (the data set bytes) kept for the test."""

    def __init__(self, message):
        self.msg = message
        self.raw = None
        self.ds = None
        self.ds_error = None
        if message.has_dataset and message.complete:
            self.raw = message.dataset_bytes()
            try:
                self.ds = message.dataset()
            except Exception as exc:  # reported by the assertions
                self.ds_error = repr(exc)

    def __getattr__(self, name):
        return getattr(self.msg, name)

    def __repr__(self):
        return (f"<{self.msg.name} id={self.msg.message_id} status={self.msg.status} "
                f"assoc={self.msg.assoc.id if self.msg.assoc else None}>")


# One decoded PDU: the frame it ended in, type, problems, association id,
# direction (0: from the association requestor), PDU length, PDV lengths.
PduRec = namedtuple("PduRec", "frame type problems assoc direction length pdvs")


def pdu_rec(pdu) -> PduRec:
    return PduRec(pdu.last_frame, pdu.type, list(pdu.problems),
                  pdu.assoc.id if pdu.assoc else None, pdu.direction,
                  pdu.length, [v.length for v in pdu.pdvs])


class Collect(Recorder):
    """PDUs (PduRec), messages (Rec) and ended associations of a run, and
    the queries the tests ask of them."""

    def __init__(self):
        super().__init__(pdu=pdu_rec, message=Rec, end=Recorder.keep)
        self.result = None        # the pipeline's Result (streams, gaps...)

    def by_name(self, name, assoc=None):
        return [r for r in self.messages if r.name == name
                and (assoc is None or r.assoc is assoc)]

    def association(self, calling, called):
        found = [a for a in self.assocs
                 if (a.calling_ae, a.called_ae) == (calling, called)]
        assert len(found) == 1, [(a.calling_ae, a.called_ae) for a in self.assocs]
        return found[0]

    def pdu_types(self, assoc):
        return [p.type for p in self.pdus if p.assoc == assoc.id]


def decode(pcap, ports) -> Collect:
    """Decode *pcap* with the given DICOM server ports; no plugin errors."""
    col = Collect()
    col.result = record(
        pcap, col, preferences={"dicom.tcp.port": ",".join(str(p) for p in ports)})
    assert col.pdus, f"no DICOM PDU decoded in {pcap}"
    return col


def assert_clean(col: Collect):
    """The capture is whole (no TCP gaps: a lost packet would be tcpdump's
    fault, not the decoder's); every PDU decoded without problems; every
    message complete and clean; every association negotiated, then released
    or aborted, with no request left unanswered."""
    lost = [(s.id, [d.gaps for d in s.dirs]) for s in col.result.streams
            if any(d.gaps for d in s.dirs)]
    assert not lost, f"the capture lost packets (stream, gaps each way): {lost}"
    bad = [p for p in col.pdus if p.problems]
    assert not bad, bad[:5]
    bad = [(r, r.problems) for r in col.messages if not r.complete or r.problems]
    assert not bad, bad[:5]
    bad = [(r, r.ds_error) for r in col.messages if r.ds_error]
    assert not bad, bad[:5]
    assert all(a.pending == {} for a in col.assocs), [a.pending for a in col.assocs]
    for a in col.assocs:
        types = col.pdu_types(a)
        assert a.negotiated and types[:2] == [1, 2], (a.id, types)
        assert types[-2:] == [5, 6] or types[-1] == 7, (a.id, types)
        assert set(types[2:-2]) <= {4}, (a.id, types)


def tshark_pdus(pcap, ports) -> list[tuple[int, int]]:
    cmd = [shutil.which("tshark"), "-n", "-r", str(pcap)]
    for p in ports:
        cmd += ["-d", f"tcp.port=={p},dicom"]
    cmd += ["-Y", "dicom", "-T", "fields", "-e", "frame.number", "-e", "dicom.pdu.type"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = []
    for line in res.stdout.splitlines():
        frame, _, types = line.partition("\t")
        for t in types.split(","):
            if t.strip():
                out.append((int(frame), int(t, 0)))
    return out


def check_tshark(col: Collect, pcap, ports):
    """dicomwire's (frame, PDU type) sequence equals tshark's.

    A PDU counts at the frame where it ends (tshark shows it on the frame that
    completes its reassembly).  Several PDUs may end in one frame: their
    order inside the frame must agree too, hence a stable sort by frame only.
    """
    if not shutil.which("tshark"):
        return
    ours = sorted(((p.frame, p.type) for p in col.pdus), key=lambda x: x[0])
    theirs = tshark_pdus(pcap, ports)
    assert ours == theirs, _diff(ours, theirs)


def _diff(ours, theirs):
    a, b = set(ours), set(theirs)
    return (f"{len(ours)} PDUs vs tshark {len(theirs)}; only dicomwire: "
            f"{sorted(a - b)[:10]}; only tshark: {sorted(b - a)[:10]}")


def file_ts(path) -> str:
    import pydicom
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


def stored_files(outdir) -> list[Path]:
    return sorted(p for p in Path(outdir).iterdir() if p.is_file())


# --------------------------------------------------------------------------
# Test objects
# --------------------------------------------------------------------------

def _ct(**changes):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for k, v in changes.items():
        setattr(ds, k, v)
    return ds


@pytest.fixture(scope="module")
def big_objects(tmp_path_factory):
    """One ~300 kB CT (random pixel bytes) as an explicit LE file and as an
    explicit BE file (storescu sends a file unconverted if a context with the
    file's transfer syntax is accepted, so explicit BE needs a BE file)."""
    from pydicom.filewriter import dcmwrite
    d = tmp_path_factory.mktemp("objects")
    ds = _ct(Rows=ROWS, Columns=COLS)
    ds.PixelData = os.urandom(ROWS * COLS * 2)
    le = d / "big_le.dcm"
    ds.save_as(le, enforce_file_format=True)
    ds.file_meta.TransferSyntaxUID = EXPLICIT_BE
    be = d / "big_be.dcm"
    dcmwrite(be, ds, little_endian=False, implicit_vr=False, force_encoding=True)
    return {"le": le, "be": be, "uid": ds.SOPInstanceUID, "pixels": bytes(ds.PixelData)}


# --------------------------------------------------------------------------
# 1. C-ECHO: DCMTK echoscu -> storescp
# --------------------------------------------------------------------------

def test_dcmtk_echo(tmp_path):
    _need_dcmtk("echoscu", "storescp")
    port = peers.free_port()
    pcap = tmp_path / "echo.pcap"
    scp = peers.start_storescp(port, tmp_path / "out")
    try:
        with peers.capture(pcap, port):
            peers.run_dcmtk("echoscu", ["-aet", "ECHOSCU", "-aec", "STORESCP",
                                        "-to", "10", "-ta", "10", "-td", "10",
                                        peers.LOOPBACK, port])
    finally:
        peers.stop_process(scp)

    col = decode(pcap, [port])
    assert_clean(col)
    assert [p.type for p in col.pdus] == [1, 2, 4, 4, 5, 6]
    a = col.association("ECHOSCU", "STORESCP")
    assert a.negotiated and a.end == "released"
    assert [pc.abstract_syntax for pc in a.contexts.values() if pc.accepted] == [VERIFICATION]
    rq, rsp = col.messages
    assert (rq.name, rsp.name) == ("C-ECHO-RQ", "C-ECHO-RSP")
    assert rsp.request is rq.msg and rsp.status == 0 and rq.message_id == rsp.message_id
    assert not rq.has_dataset and not rsp.has_dataset
    check_tshark(col, pcap, [port])


# --------------------------------------------------------------------------
# 2. C-STORE in each native transfer syntax (and deflated), small PDUs
# --------------------------------------------------------------------------

STORE_CASES = {
    # storescu proposal, storescp preference, file to send, expected TS
    "implicit-le": ("-xi", [], "le", IMPLICIT_LE),
    "explicit-le": ("-xe", ["+xe"], "le", EXPLICIT_LE),
    "explicit-be": ("-xb", ["+xb"], "be", EXPLICIT_BE),
    "deflated-le": ("-xd", ["+xd"], "le", DEFLATED_LE),
}


@pytest.mark.parametrize("case", list(STORE_CASES))
def test_dcmtk_store_bit_identical(tmp_path, big_objects, case):
    _need_dcmtk("storescu", "storescp")
    propose, prefer, which, ts = STORE_CASES[case]
    port = peers.free_port()
    pcap = tmp_path / f"store-{case}.pcap"
    out = tmp_path / "out"
    # +B: write the data set exactly as received (also deflated stays deflated).
    scp = peers.start_storescp(port, out, ("+B", "+uf", "-pdu", "4096", *prefer))
    try:
        with peers.capture(pcap, port):
            peers.run_storescu(port, [big_objects[which]], [propose, "-R", "-pdu", "4096"],
                               aet="STORESCU", aec="STORESCP")
    finally:
        peers.stop_process(scp)

    col = decode(pcap, [port])
    assert_clean(col)
    a = col.association("STORESCU", "STORESCP")
    assert a.end == "released" and a.max_pdu == [4096, 4096]
    (rq,) = col.by_name("C-STORE-RQ")
    (rsp,) = col.by_name("C-STORE-RSP")
    assert rsp.request is rq.msg and rsp.status == 0
    assert rq.complete and rq.transfer_syntax == ts
    assert a.contexts[rq.context_id].accepted
    assert a.contexts[rq.context_id].abstract_syntax == CT_IMAGE_STORAGE

    # Spread over many PDUs and PDVs, none larger than the receiver's 4096.
    sent = [p for p in col.pdus if p.type == 4 and p.direction == 0]
    assert len(sent) > 50 and sum(len(p.pdvs) for p in sent) > 50, len(sent)
    assert all(p.length <= 4096 for p in sent)
    assert all(p.length == sum(4 + n for n in p.pdvs) for p in sent)

    # Byte for byte what storescp (bit preserving) wrote after the file meta.
    (stored,) = stored_files(out)
    assert file_ts(stored) == ts
    assert rq.raw == stored_dataset(stored)
    assert rq.dataset_len == len(rq.raw) > 250_000   # random pixels do not deflate

    ds = rq.ds
    assert ds is not None
    assert ds.SOPInstanceUID == rq.command["AffectedSOPInstanceUID"] == big_objects["uid"]
    assert (ds.Rows, ds.Columns) == (ROWS, COLS)
    assert ds.PixelData == big_objects["pixels"]
    check_tshark(col, pcap, [port])

    # `dicomwire export` writes the same bytes, under a meta header that
    # pydicom and dcmdump read.
    exported = tmp_path / "exported"
    dw("export", pcap, "-o", exported, "--ports", port, ok=True)
    (ours,) = sorted(exported.iterdir())
    assert stored_dataset(ours) == stored_dataset(stored)
    assert file_ts(ours) == ts
    import pydicom
    meta = pydicom.dcmread(ours, stop_before_pixels=True).file_meta
    assert meta.MediaStorageSOPInstanceUID == big_objects["uid"]
    assert meta.ImplementationClassUID == "1.2.826.0.1.3680043.8.427.10"
    assert meta.SourceApplicationEntityTitle.strip() == rq.msg.assoc.calling_ae
    if shutil.which("dcmdump"):
        d = subprocess.run(["dcmdump", "-q", str(ours)], capture_output=True, text=True,
                           timeout=60)
        assert d.returncode == 0 and "W:" not in d.stderr and "E:" not in d.stderr, d.stderr


def test_pdu_times_are_tsharks_frame_times(tmp_path, big_objects):
    """A C-STORE in 128 kB PDUs, each spanning several loopback segments:
    the time `show` prints beside a frame (text, -T fields, JSON `time`) is
    tshark's frame.time_relative of that frame, and JSON `first_time` that
    of `first_frame`."""
    _need_dcmtk("storescu", "storescp")
    if not shutil.which("tshark"):
        pytest.skip("tshark not installed")
    import json
    port = peers.free_port()
    pcap = tmp_path / "store-big-pdus.pcap"
    scp = peers.start_storescp(port, tmp_path / "out", ("+B", "+uf", "-pdu", "131072"))
    try:
        with peers.capture(pcap, port):
            peers.run_storescu(port, [big_objects["le"]], ["-pdu", "131072"])
    finally:
        peers.stop_process(scp)
    res = subprocess.run([shutil.which("tshark"), "-n", "-r", str(pcap), "-T", "fields",
                          "-e", "frame.number", "-e", "frame.time_relative"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    theirs = dict(ln.split("\t") for ln in res.stdout.splitlines())
    docs = [json.loads(ln) for ln in
            dw("show", "-T", "jsonl", "--ports", port, pcap, ok=True).stdout.splitlines()]
    spread = [d for d in docs if theirs[str(d["first_frame"])] != theirs[str(d["frame"])]]
    assert spread, "no PDU spans frames with different times"
    for d in docs:
        assert f"{d['time']:.9f}" == theirs[str(d["frame"])], d
        assert f"{d['first_time']:.9f}" == theirs[str(d["first_frame"])], d
    text = [ln.split()[:2]
            for ln in dw("show", "--ports", port, pcap, ok=True).stdout.splitlines()]
    assert text == [[str(d["frame"]), theirs[str(d["frame"])][:-3]] for d in docs]
    fields = dw("show", "-T", "fields", "-e", "frame.number", "-e", "frame.time_relative",
                "--ports", port, pcap, ok=True).stdout.splitlines()
    assert fields == [f"{d['frame']}\t{theirs[str(d['frame'])]}" for d in docs]


# --------------------------------------------------------------------------
# 3. Query/retrieve against dcmqrscp: C-FIND, C-MOVE (+ callback), C-GET
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qrscp(tmp_path_factory):
    """dcmqrscp (AE QRSCP) loaded with three CTs of one patient in two
    studies, and a bit-preserving storescp as move destination (MOVEDEST)."""
    _need_dcmtk("dcmqrscp", "storescu", "storescp", "findscu", "movescu", "getscu")
    from pydicom.uid import generate_uid
    d = tmp_path_factory.mktemp("qr")
    db = d / "db"
    db.mkdir()
    studies = [generate_uid(), generate_uid()]
    files, uids = [], []
    for i, st in enumerate([0, 0, 1]):
        ds = _ct(StudyInstanceUID=studies[st], SeriesInstanceUID=generate_uid(),
                 PatientID="DWPAT", PatientName="WIRE^DICOM")
        f = d / f"obj{i}.dcm"
        ds.save_as(f, enforce_file_format=True)
        files.append(f)
        uids.append(ds.SOPInstanceUID)
    qport, dport = peers.free_port(), peers.free_port()
    cfg = d / "dcmqrscp.cfg"
    cfg.write_text(
        f"NetworkTCPPort  = {qport}\n"
        "MaxPDUSize      = 16384\n"
        "MaxAssociations = 16\n"
        "HostTable BEGIN\n"
        f"movedest = (MOVEDEST, {peers.LOOPBACK}, {dport})\n"
        "HostTable END\n"
        "VendorTable BEGIN\nVendorTable END\n"
        "AETable BEGIN\n"
        f"QRSCP  {db}  RW (10, 100mb)  ANY\n"
        "AETable END\n")
    # Fork mode (the default): DCMTK 3.6.7 dcmqrscp -s (single process)
    # segfaults after the first association is released.
    qr = peers.start_dcmtk("dcmqrscp", ["-c", cfg, "-dhl", "-ta", "10", qport], qport)
    dest_dir = d / "dest"
    dest = None
    try:
        peers.run_storescu(qport, files, ["-R"], aet="LOADER", aec="QRSCP")
        peers.wait_connections_closed(qport, 10)
        dest = peers.start_storescp(dport, dest_dir, aet="MOVEDEST")
        yield dict(qport=qport, dport=dport, studies=studies, uids=uids,
                   files=files, dest=dest_dir, dir=d)
    finally:
        if dest is not None:
            peers.stop_process(dest)
        peers.stop_process(qr)


def _qr_args(qr, tool, *extra):
    return ["-aet", tool.upper(), "-aec", "QRSCP", "-to", "10", "-ta", "10", "-td", "30",
            "-S", *extra, peers.LOOPBACK, qr["qport"]]


def test_dcmqrscp_find(tmp_path, qrscp):
    pcap = tmp_path / "find.pcap"
    with peers.capture_ports(pcap, [qrscp["qport"]]):
        peers.run_dcmtk("findscu", _qr_args(
            qrscp, "findscu", "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=DWPAT",
            "-k", "StudyInstanceUID"), cwd=tmp_path)

    col = decode(pcap, [qrscp["qport"]])
    assert_clean(col)
    a = col.association("FINDSCU", "QRSCP")
    assert a.end == "released"
    (rq,) = col.by_name("C-FIND-RQ")
    assert rq.sop_class_uid == STUDY_ROOT_FIND
    assert rq.ds.QueryRetrieveLevel == "STUDY" and rq.ds.PatientID == "DWPAT"
    rsps = col.by_name("C-FIND-RSP")
    assert [r.status for r in rsps] == [0xFF00, 0xFF00, 0x0000]
    assert all(r.request is rq.msg for r in rsps)
    assert all(r.message_id == rq.message_id for r in rsps)
    assert sorted(r.ds.StudyInstanceUID for r in rsps[:2]) == sorted(qrscp["studies"])
    assert not rsps[-1].has_dataset
    assert all(r.response_time is not None and r.response_time >= 0 for r in rsps)
    check_tshark(col, pcap, [qrscp["qport"]])


def test_dcmqrscp_move_with_callback_association(tmp_path, qrscp):
    ports = [qrscp["qport"], qrscp["dport"]]
    pcap = tmp_path / "move.pcap"
    before = set(stored_files(qrscp["dest"])) if qrscp["dest"].exists() else set()
    with peers.capture_ports(pcap, ports):
        peers.run_dcmtk("movescu", _qr_args(
            qrscp, "movescu", "-aem", "MOVEDEST", "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={qrscp['studies'][0]}"), cwd=tmp_path)

    col = decode(pcap, ports)
    assert_clean(col)
    a = col.association("MOVESCU", "QRSCP")
    cb = col.association("QRSCP", "MOVEDEST")
    assert a.end == cb.end == "released"
    assert a.stream is not cb.stream and cb.stream.server[1] == qrscp["dport"]

    (rq,) = col.by_name("C-MOVE-RQ", a)
    assert rq.command["MoveDestination"].strip() == "MOVEDEST"
    assert rq.ds.StudyInstanceUID == qrscp["studies"][0]
    rsps = col.by_name("C-MOVE-RSP", a)
    assert rsps and all(r.request is rq.msg for r in rsps)
    assert [r.status for r in rsps][-1] == 0x0000
    assert all(r.status == 0xFF00 for r in rsps[:-1])
    final = rsps[-1].command
    assert final["NumberOfCompletedSuboperations"] == 2
    assert final["NumberOfFailedSuboperations"] == 0
    assert final["NumberOfWarningSuboperations"] == 0
    assert all("NumberOfRemainingSuboperations" in r.command for r in rsps[:-1])

    # The sub-operations: their own association, dcmqrscp -> MOVEDEST.
    stores = col.by_name("C-STORE-RQ", cb)
    assert len(stores) == 2 and col.by_name("C-STORE-RQ", a) == []
    assert all(s.direction == 0 for s in stores)
    assert {s.ds.SOPInstanceUID for s in stores} == set(qrscp["uids"][:2])
    for s in stores:
        assert s.ds.SOPInstanceUID == s.command["AffectedSOPInstanceUID"]
        assert s.command["MoveOriginatorApplicationEntityTitle"].strip() == "MOVESCU"
        assert s.command["MoveOriginatorMessageID"] == rq.message_id
    srsps = col.by_name("C-STORE-RSP", cb)
    assert sorted(r.request.message_id for r in srsps) == sorted(s.message_id for s in stores)
    assert all(r.status == 0 for r in srsps)
    # What MOVEDEST (bit preserving) stored is what crossed the wire.
    new = [f for f in stored_files(qrscp["dest"]) if f not in before]
    assert sorted(stored_dataset(f) for f in new) == sorted(s.raw for s in stores)
    # The expert check links the callback association to the C-MOVE, finds
    # nothing wrong with the move itself.
    names = [i.field.name for i in col.result.expert.infos]
    linked = [i for i in col.result.expert.infos if i.field.name == "dicom.move.callback"]
    assert len(linked) == 1 and f"callback association {cb.id}" in linked[0].message
    assert not {"dicom.move.no_callback", "dicom.move.suboperations",
                "dicom.move.destination_unknown"} & set(names)
    check_tshark(col, pcap, ports)


def test_dcmqrscp_get_with_scp_role(tmp_path, qrscp):
    pcap = tmp_path / "get.pcap"
    (tmp_path / "got").mkdir()
    with peers.capture_ports(pcap, [qrscp["qport"]]):
        peers.run_dcmtk("getscu", _qr_args(
            qrscp, "getscu", "-od", tmp_path / "got", "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={qrscp['studies'][1]}"), cwd=tmp_path)

    col = decode(pcap, [qrscp["qport"]])
    assert_clean(col)
    a = col.association("GETSCU", "QRSCP")
    assert a.end == "released"
    # Role selection: the requestor asks to be SCP for CT storage, accepted.
    rq_role, ac_role = a.roles[CT_IMAGE_STORAGE]
    assert rq_role[1] == 1 and ac_role is not None and ac_role[1] == 1

    (rq,) = col.by_name("C-GET-RQ")
    assert rq.ds.StudyInstanceUID == qrscp["studies"][1]
    rsps = col.by_name("C-GET-RSP")
    assert all(r.request is rq.msg for r in rsps)
    assert rsps[-1].status == 0 and rsps[-1].command["NumberOfCompletedSuboperations"] == 1
    # The C-STORE sub-operation on the same association, acceptor -> requestor.
    (st,) = col.by_name("C-STORE-RQ")
    (srsp,) = col.by_name("C-STORE-RSP")
    assert st.assoc is a and st.direction == 1 and srsp.direction == 0
    assert srsp.request is st.msg and srsp.status == 0
    assert st.ds.SOPInstanceUID == st.command["AffectedSOPInstanceUID"] == qrscp["uids"][2]
    assert a.contexts[st.context_id].abstract_syntax == CT_IMAGE_STORAGE
    # The order on the wire: RQ, the store and its response, then the final RSP.
    order = [r.name for r in col.messages]
    assert order.index("C-STORE-RQ") > order.index("C-GET-RQ")
    assert order.index("C-STORE-RSP") < len(order) - 1 and order[-1] == "C-GET-RSP"
    check_tshark(col, pcap, [qrscp["qport"]])


# --------------------------------------------------------------------------
# 4. pynetdicom: extended negotiation, user identity, A-ABORT
# --------------------------------------------------------------------------

def _start_negotiating_scp(port):
    """A pynetdicom SCP that answers user identity, role selection, SOP class
    extended negotiation and asynchronous operations window requests."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import CTImageStorage, Verification

    ae = AE("NEGSCP")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ae.add_supported_context(Verification)
    ae.add_supported_context(STUDY_ROOT_FIND)
    ae.add_supported_context(CTImageStorage, scu_role=True, scp_role=True)

    def on_user_id(event):
        # pynetdicom sends a server response (0x59) only for types 3-5.
        if event.user_id_type == 5:
            return event.primary_field == JWT.encode(), SERVER_RESPONSE
        ok = (event.primary_field, event.secondary_field) == (
            b"alice", PASSCODE.encode())
        return ok, None

    def on_sop_extended(event):
        return {uid: b"\x01" for uid in event.app_info}

    def on_async(event):
        return 3, 2          # ignored: pynetdicom always answers (1, 1)

    handlers = [(evt.EVT_USER_ID, on_user_id), (evt.EVT_SOP_EXTENDED, on_sop_extended),
                (evt.EVT_ASYNC_OPS, on_async)]
    return ae.start_server((peers.LOOPBACK, port), block=False, evt_handlers=handlers)


def _user_items(pdu_container, item_type):
    """Sub-items of type *item_type* in the user information item."""
    out = []
    for item in pdu_container.body.variable_items:
        if item.item_type == 0x50:
            out += [s.body for s in item.body.sub_items if s.item_type == item_type]
    return out


def test_pynetdicom_extended_negotiation_and_abort(tmp_path):
    from pynetdicom import AE
    from pynetdicom.pdu_primitives import (AsynchronousOperationsWindowNegotiation,
                                           SCP_SCU_RoleSelectionNegotiation,
                                           SOPClassExtendedNegotiation,
                                           UserIdentityNegotiation)
    from pynetdicom.sop_class import CTImageStorage, Verification

    port = peers.free_port()
    pcap = tmp_path / "neg.pcap"
    server = _start_negotiating_scp(port)
    try:
        with peers.capture(pcap, port):
            ae = AE("NEGSCU")
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
            ae.add_requested_context(Verification)
            ae.add_requested_context(STUDY_ROOT_FIND)
            ae.add_requested_context(CTImageStorage)

            uid = UserIdentityNegotiation()
            uid.user_identity_type = 2
            uid.primary_field = b"alice"
            uid.secondary_field = PASSCODE.encode()
            uid.positive_response_requested = True
            role = SCP_SCU_RoleSelectionNegotiation()
            role.sop_class_uid = CTImageStorage
            role.scu_role, role.scp_role = True, True
            ext = SOPClassExtendedNegotiation()
            ext.sop_class_uid = STUDY_ROOT_FIND
            ext.service_class_application_information = b"\x01\x01\x01"
            win = AsynchronousOperationsWindowNegotiation()
            win.maximum_number_operations_invoked = 5
            win.maximum_number_operations_performed = 4

            assoc = ae.associate(peers.LOOPBACK, port, ae_title="NEGSCP",
                                 ext_neg=[uid, role, ext, win])
            assert assoc.is_established
            assert assoc.send_c_echo().Status == 0
            assoc.release()

            jwt = UserIdentityNegotiation()
            jwt.user_identity_type = 5
            jwt.primary_field = JWT.encode()
            jwt.positive_response_requested = True
            assoc = ae.associate(peers.LOOPBACK, port, ae_title="NEGSCP", ext_neg=[jwt])
            assert assoc.is_established
            assoc.release()

            assoc = ae.associate(peers.LOOPBACK, port, ae_title="NEGSCP")
            assert assoc.is_established
            assoc.abort()
            assert assoc.is_aborted
    finally:
        peers.stop_scp(server)

    col = decode(pcap, [port])
    assert_clean(col)
    first, token, aborted = sorted(col.assocs, key=lambda a: a.id)

    # User identity: username + passcode (no server response for type 2)...
    ui = first.user_identity
    assert ui.user_identity_type == 2 and ui.positive_response_requested == 1
    assert bytes(ui.primary_field) == b"alice"
    assert bytes(ui.secondary_field) == PASSCODE.encode()
    assert first.user_identity_ac is None
    # ... and a JSON web token answered with a server response (0x59).
    assert token.user_identity.user_identity_type == 5
    assert bytes(token.user_identity.primary_field) == JWT.encode()
    assert bytes(token.user_identity_ac.server_response) == SERVER_RESPONSE
    assert token.end == "released"
    # SCP/SCU role selection: proposed (1, 1), accepted (1, 1).
    assert [tuple(x) for x in first.roles[CT_IMAGE_STORAGE]] == [(1, 1), (1, 1)]
    # SOP class extended negotiation, both ways.
    (rq_ext,) = _user_items(first.rq, 0x56)
    assert rq_ext.sop_class_uid.strip("\0 ") == STUDY_ROOT_FIND
    assert bytes(rq_ext.service_class_application_information) == b"\x01\x01\x01"
    (ac_ext,) = _user_items(first.ac, 0x56)
    assert bytes(ac_ext.service_class_application_information) == b"\x01"
    # Asynchronous operations window, both ways.
    (rq_win,) = _user_items(first.rq, 0x53)
    assert (rq_win.max_operations_invoked, rq_win.max_operations_performed) == (5, 4)
    (ac_win,) = _user_items(first.ac, 0x53)
    # pynetdicom does not do asynchronous operations: it always answers (1, 1).
    assert (ac_win.max_operations_invoked, ac_win.max_operations_performed) == (1, 1)
    assert first.end == "released"
    assert [r.name for r in col.messages] == ["C-ECHO-RQ", "C-ECHO-RSP"]
    assert all(r.complete and not r.problems for r in col.messages)

    # The last association was aborted by the requestor (A-ABORT source 0).
    assert aborted.end == "aborted" and aborted.abort is not None
    assert aborted.abort.body.source == 0
    assert col.pdu_types(aborted) == [1, 2, 7]
    assert col.pdus[-1].type == 7 and col.pdus[-1].direction == 0

    # The secrets never show unless asked for (in any spelling: text, hex).
    secrets = [s for v in (PASSCODE, JWT, SERVER_RESPONSE.decode())
               for s in (v, v.encode().hex())]
    for args in (["show", "-V"], ["show", "-T", "json"], ["assoc"]):
        out = dw(*args, "--ports", port, pcap, ok=True).stdout
        assert not any(s in out for s in secrets), args
    shown = dw("show", "-V", "--show-secrets", "--ports", port, pcap, ok=True).stdout
    assert PASSCODE in shown and JWT in shown
    shown = dw("assoc", "--show-secrets", "--ports", port, pcap, ok=True).stdout
    assert PASSCODE in shown and JWT in shown
    lines = dw("show", "--ports", port, pcap, ok=True).stdout.splitlines()
    assert sum("A-ABORT" in line for line in lines) == 1
    assert "A-ABORT" in lines[-1]
    check_tshark(col, pcap, [port])


# --------------------------------------------------------------------------
# 5. The heuristic across segments: an A-ASSOCIATE-RQ header sent alone
# --------------------------------------------------------------------------

def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        more = sock.recv(n - len(buf))
        assert more, f"connection closed after {len(buf)} of {n} bytes"
        buf += more
    return buf


def _recv_pdu(sock):
    head = _recv_exact(sock, 6)
    return head + _recv_exact(sock, struct.unpack_from(">I", head, 2)[0])


def test_heuristic_rq_header_in_its_own_segment(tmp_path):
    """A client (a raw socket, TCP_NODELAY) sends the 6-byte A-ASSOCIATE-RQ
    header, waits 50 ms, then the rest, then a C-ECHO and a release, to a
    pynetdicom SCP on a port not in --ports: the heuristic must look at the
    PDU header across segments and decode all of it."""
    import socket
    import time

    import dicomgen as D
    port = peers.free_port()
    assert port not in (104, 11112)
    pcap = tmp_path / "split-header.pcap"
    rq = D.assoc_rq(called="STORESCP", calling="RAWSCU", contexts=((1, VERIFICATION),))
    server = peers.start_scp(port)
    try:
        with peers.capture(pcap, port):
            with socket.create_connection((peers.LOOPBACK, port), timeout=10) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.sendall(rq[:6])
                time.sleep(0.05)
                sock.sendall(rq[6:])
                assert _recv_pdu(sock)[0] == 2                 # A-ASSOCIATE-AC
                sock.sendall(D.pdata((1, 3, D.ECHO_RQ)))
                rsp = _recv_pdu(sock)
                assert rsp[0] == 4 and rsp[11] == 3            # one command PDV, last
                sock.sendall(D.RELEASE_RQ)
                assert _recv_pdu(sock)[0] == 6                 # A-RELEASE-RP
    finally:
        peers.stop_scp(server)

    col = decode(pcap, [104])                                  # not the SCP's port
    assert_clean(col)
    assert [p.type for p in col.pdus] == [1, 2, 4, 4, 5, 6]
    (a,) = col.assocs
    assert (a.calling_ae, a.called_ae, a.end) == ("RAWSCU", "STORESCP", "released")
    rq_rec, rsp_rec = col.messages
    assert (rq_rec.name, rsp_rec.name) == ("C-ECHO-RQ", "C-ECHO-RSP")
    assert rsp_rec.request is rq_rec.msg and rsp_rec.status == 0
    lines = dw("show", "--ports", "104", pcap, ok=True).stdout.splitlines()
    assert len(lines) == 6 and "A-ASSOCIATE request RAWSCU --> STORESCP" in lines[0]
    # The header really came alone: the request spans two frames, 50 ms apart.
    import json
    doc = json.loads(dw("show", "-T", "jsonl", "--ports", "104", pcap, ok=True).stdout
                     .splitlines()[0])
    assert doc["first_frame"] < doc["frame"] and doc["time"] - doc["first_time"] > 0.04
    check_tshark(col, pcap, [port])
