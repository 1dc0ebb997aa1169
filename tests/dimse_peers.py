"""Real pynetdicom traffic beyond C-STORE, captured on loopback, for tests:
MPPS (N-CREATE, N-SET), Storage Commitment (N-ACTION), C-FIND with pending
responses, and helpers to decode a capture and to cut its first frames off
(a capture that began mid-association).

Everything talks to 127.0.0.1 only (see peers.py).
"""

from __future__ import annotations

import struct
from pathlib import Path

import peers

from support import Recorder, record

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
MPPS = "1.2.840.10008.3.1.2.3.3"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"      # the well-known instance
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"


def _mpps_create():
    from pydicom.dataset import Dataset
    ds = Dataset()
    ds.PatientName = "Test^Mpps"
    ds.PatientID = "MPPS-42"
    ds.Modality = "CT"
    ds.PerformedProcedureStepID = "PPS-1"
    ds.PerformedProcedureStepStartDate = "20240102"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    return ds


def mpps_set():
    """An MPPS N-SET modification list: its first element is group 0040
    (Performed Procedure Step End Date, then End Time, then Status COMPLETED)."""
    from pydicom.dataset import Dataset
    ds = Dataset()
    ds.PerformedProcedureStepEndDate = "20240102"
    ds.PerformedProcedureStepEndTime = "103000"
    ds.PerformedProcedureStepStatus = "COMPLETED"
    return ds


def find_matches(n=3):
    """IMAGE level C-FIND matches that carry SOP Class and Instance UIDs."""
    from pydicom.dataset import Dataset
    out = []
    for i in range(n):
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.9.7133.{i + 1}"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7133.100"
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.7133.200"
        out.append(ds)
    return out


def start_services_scp(port, syntaxes=(IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE)):
    """A pynetdicom SCP for CT / SC storage, Study Root C-FIND (three pending
    IMAGE matches, then success), MPPS N-CREATE / N-SET and Storage
    Commitment N-ACTION. Stop it with ``server.shutdown()``."""
    from pynetdicom import AE, evt
    ae = AE("SERVICES")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for uid in (CT_IMAGE_STORAGE, SC_IMAGE_STORAGE, STUDY_ROOT_FIND, MPPS,
                STORAGE_COMMITMENT):
        ae.add_supported_context(uid, list(syntaxes))
    instances = {}

    def on_store(event):
        return 0x0000

    def on_find(event):
        for ds in find_matches():
            yield 0xFF00, ds

    def on_create(event):
        ds = event.attribute_list
        ds.SOPClassUID = MPPS
        ds.SOPInstanceUID = event.request.AffectedSOPInstanceUID
        instances[ds.SOPInstanceUID] = ds
        return 0x0000, ds

    def on_set(event):
        ds = instances[event.request.RequestedSOPInstanceUID]
        ds.update(event.modification_list)
        return 0x0000, ds

    def on_action(event):
        from pydicom.dataset import Dataset
        reply = Dataset()
        reply.TransactionUID = event.action_information.TransactionUID
        return 0x0000, reply

    return ae.start_server(
        (peers.LOOPBACK, port), block=False,
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_C_FIND, on_find),
                      (evt.EVT_N_CREATE, on_create), (evt.EVT_N_SET, on_set),
                      (evt.EVT_N_ACTION, on_action)])


def _scu(contexts, port):
    from pynetdicom import AE
    ae = AE("MODALITY")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    for uid, syntaxes in contexts:
        ae.add_requested_context(uid, list(syntaxes))
    a = ae.associate(peers.LOOPBACK, port, ae_title="SERVICES")
    assert a.is_established, "association not accepted"
    return a


def _ok(status):
    assert status is not None and status.Status == 0x0000, status


def mpps_capture(path, syntax=EXPLICIT_LE):
    """One association MODALITY -> SERVICES proposing MPPS in ``syntax`` only:
    N-CREATE (IN PROGRESS), then N-SET (COMPLETED), each answered with the
    instance's attributes; released. Returns (pcap path, server port)."""
    from pydicom.uid import generate_uid
    port = peers.free_port()
    server = start_services_scp(port)
    try:
        with peers.capture(path, port):
            a = _scu([(MPPS, [syntax])], port)
            try:
                inst = generate_uid()
                _ok(a.send_n_create(_mpps_create(), MPPS, inst)[0])
                _ok(a.send_n_set(mpps_set(), MPPS, inst)[0])
            finally:
                a.release()
    finally:
        server.shutdown()
    return Path(path), port


def services_capture(path, ct_file):
    """One association carrying a C-STORE of ``ct_file`` (real SOP UIDs), a
    Study Root C-FIND at IMAGE level (three pending matches with SOP UIDs),
    MPPS N-CREATE + N-SET and a Storage Commitment N-ACTION on the
    well-known instance. Returns (pcap path, server port)."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid
    port = peers.free_port()
    server = start_services_scp(port)
    ct = pydicom.dcmread(ct_file)
    try:
        with peers.capture(path, port):
            a = _scu([(CT_IMAGE_STORAGE, [EXPLICIT_LE]), (STUDY_ROOT_FIND, [IMPLICIT_LE]),
                      (MPPS, [EXPLICIT_LE]), (STORAGE_COMMITMENT, [IMPLICIT_LE])], port)
            try:
                _ok(a.send_c_store(ct))
                query = Dataset()
                query.QueryRetrieveLevel = "IMAGE"
                query.StudyInstanceUID = "1.2.826.0.1.3680043.9.7133.100"
                query.SeriesInstanceUID = "1.2.826.0.1.3680043.9.7133.200"
                query.SOPClassUID = ""
                query.SOPInstanceUID = ""
                statuses = [st.Status for st, _ds in a.send_c_find(query, STUDY_ROOT_FIND)]
                assert statuses == [0xFF00] * 3 + [0x0000], statuses
                inst = generate_uid()
                _ok(a.send_n_create(_mpps_create(), MPPS, inst)[0])
                _ok(a.send_n_set(mpps_set(), MPPS, inst)[0])
                action = Dataset()
                action.TransactionUID = generate_uid()
                ref = Dataset()
                ref.ReferencedSOPClassUID = ct.SOPClassUID
                ref.ReferencedSOPInstanceUID = ct.SOPInstanceUID
                action.ReferencedSOPSequence = [ref]
                _ok(a.send_n_action(action, 1, STORAGE_COMMITMENT,
                                    STORAGE_COMMITMENT_INSTANCE)[0])
            finally:
                a.release()
    finally:
        server.shutdown()
    return Path(path), port


# --------------------------------------------------------------------------
# Decoding and cutting captures
# --------------------------------------------------------------------------

def message_row(m):
    """What a run keeps of a message: name, association, first frame, data
    set frame, context, transfer syntax, data set size and bytes."""
    return dict(
        name=m.name, assoc=m.assoc.id if m.assoc else None, first_frame=m.first_frame,
        dataset_frame=m.dataset_frame,
        context=m.context_id, ts=m.transfer_syntax, complete=m.complete,
        size=m.dataset_len if m.has_dataset else None,
        raw=m.dataset_bytes() if m.has_dataset else None)


def decode(pcap, port):
    """(recorder, pipeline result) of a run over ``pcap`` with ``port``
    decoded as DICOM: the recorder keeps the messages (:func:`message_row`)
    and the associations."""
    col = Recorder(message=message_row, end=Recorder.keep)
    return col, record(pcap, col, preferences={"dicom.tcp.port": str(port)})


def frames(pcap):
    """The records of a little-endian pcap file: (header bytes, frame bytes)."""
    data = Path(pcap).read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "a little-endian pcap is expected"
    out, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        out.append((data[pos:pos + 16], bytearray(data[pos + 16:pos + 16 + incl])))
        pos += 16 + incl
    return data[:24], out


def write_frames(dst, head, records):
    Path(dst).write_bytes(head + b"".join(h + bytes(f) for h, f in records))
    return Path(dst)


def cut_before(src, dst, first_frame):
    """A copy of the pcap ``src`` that begins at frame ``first_frame`` (1-based):
    what a capture started mid-association holds."""
    head, records = frames(src)
    return write_frames(dst, head, records[first_frame - 1:])
