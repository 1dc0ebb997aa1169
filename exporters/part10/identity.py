"""What an exported object is: the SOP Class and Instance UIDs its File Meta
Information carries, its transfer syntax, and the words that describe it
in the listing and its file name.

Real SOP UIDs for stored objects (C-STORE-RQ data sets) only; Wireshark's
artificial ones for everything else (command sets, query identifiers,
N-service data sets: DICOM wiki, "Conformance statement"), never the
command's UIDs. Apart from the exporter because it is a decision about
DICOM messages, read from their command and the top of their data set,
not about files.
"""

from __future__ import annotations

from dicomwire.plugins.dicom.render import uid_name
from dicomwire.specs.dicom.tables import C_STORE_RQ, IMPLICIT_LE

ARTIFICIAL_CLASS_UID = "1.2.826.0.1.3680043.8.427.11.1"
ARTIFICIAL_INSTANCE_ROOT = "1.2.826.0.1.3680043.8.427.11.2"


def identify(m, part: str, frame: int, n: int) -> tuple:
    """``(sop_class, sop_instance, transfer_syntax, content, what)`` of the
    ``part`` ("dataset" or "command") of message ``m``, the ``n``-th object
    of ``frame``: the UIDs for the meta, the transfer syntax (None:
    unknown), the listing's description and the file name's ``{what}``."""
    if part == "dataset":
        sop_class, sop_instance = storage_uids(m)
        ts = m.transfer_syntax
    else:
        sop_class = sop_instance = None
        ts = IMPLICIT_LE                   # command sets always are (PS3.7 6.3.1)
    artificial = not (sop_class and sop_instance)
    if artificial:
        sop_class = ARTIFICIAL_CLASS_UID
        sop_instance = f"{ARTIFICIAL_INSTANCE_ROOT}.{frame}.{n}"
    if part == "command":
        content, what = m.name, m.name
    elif not artificial:
        content, what = _class_name(sop_class), sop_instance
    elif m.command is None:
        content, what = "Data Set (command not captured)", "dataset"
    else:
        content, what = f"{m.name} {_dataset_word(m)}", f"{m.name}-data"
    return sop_class, sop_instance, ts, content, what


def _class_name(uid) -> str:
    return uid_name(uid) or str(uid)


def dataset_uids(m):
    """SOP Class UID, SOP Instance UID and Query/Retrieve Level from the top
    level of the data set (element headers walked, no pixels read, no
    pydicom); None for each one missing, or all if the syntax is unknown."""
    from dicomwire.specs.dicom.dataset import text
    found, _err = m.scan_dataset((0x00080016, 0x00080018, 0x00080052)) or ({}, None)
    return text(found.get(0x00080016)), text(found.get(0x00080018)), text(found.get(0x00080052))


def storage_uids(m):
    """The SOP Class and Instance UID a data set is exported under, or
    (None, None) for the artificial ones. A C-STORE-RQ's object: its
    command's Affected SOP Class/Instance UID (else the data set's own). A
    data set whose command was not captured: its own top-level ones, if it
    has both, is no query identifier (no Query/Retrieve Level) and its class
    is no known non-storage one. Every other message (C-FIND / C-GET /
    C-MOVE identifiers, N-CREATE / N-SET / N-ACTION / N-EVENT-REPORT / N-GET
    data sets, responses): None, whatever UIDs its command or data set holds."""
    if m.command_field == C_STORE_RQ:
        cls, inst = m.sop_class_uid, m.sop_instance_uid
        if not (cls and inst):
            ds_class, ds_instance, _level = dataset_uids(m)
            cls, inst = cls or ds_class, inst or ds_instance
        return cls, inst
    if m.command is None:
        cls, inst, level = dataset_uids(m)
        if cls and inst and level is None and _storage_class(cls):
            return cls, inst
    return None, None


def _storage_class(uid: str) -> bool:
    """Not a registered UID of something other than a storage SOP class
    (Storage Commitment, an MPPS or a query model, say); private ones pass."""
    name = uid_name(uid)
    return not name or ("Storage" in name and not name.startswith("Storage "))


def _dataset_word(m) -> str:
    """What PS3.7 calls the data set of this message: the Identifier of
    C-FIND, C-GET and C-MOVE (9.1.2-9.1.4), else a data set."""
    return "identifier" if m.name.startswith(("C-FIND", "C-GET", "C-MOVE")) else "data set"
