"""DICOM traffic built from the spec pack, for tests: PDUs, command sets,
data sets and a whole valid association as (direction, bytes) segments."""

import struct

from dicomwire.specs.dicom.command import encode_command
from dicomwire.specs.dicom.pdu import build_pdu, item

VERIFICATION = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
APP_CONTEXT = "1.2.840.10008.3.1.1.1"
NO_DATA = 0x0101


def assoc_rq(called="STORESCP", calling="MODALITY", contexts=((1, VERIFICATION), (3, CT_STORAGE))):
    return build_pdu("A-ASSOCIATE-RQ", called_ae_title=called, calling_ae_title=calling,
                     variable_items=[
                         item(0x10, APP_CONTEXT),
                         *[item(0x20, context_id=cid, sub_items=[
                             item(0x30, sop), item(0x40, EXPLICIT_LE), item(0x40, IMPLICIT_LE)])
                           for cid, sop in contexts],
                         item(0x50, sub_items=[item(0x51, max_length=16384),
                                               item(0x52, "1.2.826.0.1.3680043.9.1"),
                                               item(0x55, "HOSTILE_1")])])


def assoc_ac(called="STORESCP", calling="MODALITY", contexts=(1, 3)):
    return build_pdu("A-ASSOCIATE-AC", called_ae_title=called, calling_ae_title=calling,
                     variable_items=[
                         item(0x10, APP_CONTEXT),
                         *[item(0x21, context_id=cid, result=0,
                                sub_items=[item(0x40, IMPLICIT_LE)]) for cid in contexts],
                         item(0x50, sub_items=[item(0x51, max_length=32768),
                                               item(0x52, "1.2.3.4")])])


def pdata(*pdvs) -> bytes:
    """A P-DATA-TF of (context id, message control header, fragment) PDVs."""
    return build_pdu("P-DATA-TF", pdvs=[dict(context_id=c, message_control_header=f, fragment=b)
                                        for c, f, b in pdvs])


def raw_pdu(ptype: int, body: bytes = b"", reserved: int = 0, length: int | None = None) -> bytes:
    """Any PDU header (any type, reserved byte, length) followed by ``body``."""
    return struct.pack(">BBI", ptype, reserved, len(body) if length is None else length) + body


def raw_pdv(length: int, cid: int, flags: int, data: bytes = b"") -> bytes:
    return struct.pack(">IBB", length, cid, flags) + data


def element(group, elem, value: bytes) -> bytes:
    """An Implicit VR Little Endian element (PS3.5 7.1.3)."""
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, elem, len(value)) + value


ECHO_RQ = encode_command(dict(CommandField=0x0030, MessageID=1,
                              AffectedSOPClassUID=VERIFICATION, CommandDataSetType=NO_DATA))
ECHO_RSP = encode_command(dict(CommandField=0x8030, MessageIDBeingRespondedTo=1,
                               AffectedSOPClassUID=VERIFICATION, CommandDataSetType=NO_DATA,
                               Status=0))
STORE_RQ = encode_command(dict(CommandField=0x0001, MessageID=2, Priority=0,
                               AffectedSOPClassUID=CT_STORAGE,
                               AffectedSOPInstanceUID="1.2.826.0.1.3680043.9.7",
                               CommandDataSetType=0x0000))
STORE_RSP = encode_command(dict(CommandField=0x8001, MessageIDBeingRespondedTo=2,
                                AffectedSOPClassUID=CT_STORAGE,
                                AffectedSOPInstanceUID="1.2.826.0.1.3680043.9.7",
                                CommandDataSetType=NO_DATA, Status=0))
DATASET = (element(0x0008, 0x0016, CT_STORAGE.encode())
           + element(0x0008, 0x0018, b"1.2.826.0.1.3680043.9.7")
           + element(0x0010, 0x0010, b"DOE^JANE")
           + element(0x7FE0, 0x0010, bytes(range(256)) * 4))
RELEASE_RQ = build_pdu("A-RELEASE-RQ")
RELEASE_RP = build_pdu("A-RELEASE-RP")
ABORT = build_pdu("A-ABORT", source=2, reason=1)
REJECT = build_pdu("A-ASSOCIATE-RJ", result=1, source=1, reason=7)
RQ, AC = assoc_rq(), assoc_ac()


def valid_session():
    """A whole association as (direction, bytes) segments, in wire order:
    negotiation, C-ECHO, a C-STORE whose command and data set are fragmented
    across PDVs and PDUs (one PDU carrying a command and a data PDV), release."""
    return [
        (0, RQ), (1, AC),
        (0, pdata((1, 3, ECHO_RQ))), (1, pdata((1, 3, ECHO_RSP))),
        (0, pdata((3, 1, STORE_RQ[:40])) + pdata((3, 3, STORE_RQ[40:]), (3, 0, DATASET[:300]))),
        (0, pdata((3, 0, DATASET[300:700])) + pdata((3, 2, DATASET[700:]))),
        (1, pdata((3, 3, STORE_RSP))),
        (0, RELEASE_RQ), (1, RELEASE_RP),
    ]


# --------------------------------------------------------------------------
# Driving DicomStream directly
# --------------------------------------------------------------------------
