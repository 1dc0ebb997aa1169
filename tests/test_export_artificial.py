"""Export of data sets that are not C-STORE objects (Wireshark's rule, DICOM
wiki "Conformance statement"): C-FIND identifiers, MPPS N-CREATE / N-SET and
Storage Commitment N-ACTION data sets get the artificial Media Storage SOP
Class 1.2.826.0.1.3680043.8.427.11.1 and a unique artificial instance
1.2.826.0.1.3680043.8.427.11.2.<frame>.<n>, and are named and listed by their
message; a C-STORE keeps its real SOP UIDs. Real pynetdicom traffic."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter

import pydicom
import pytest
from pydicom.data import get_testdata_file

import dimse_peers as dp
import peers
from dicomwire.exporters.part10 import ARTIFICIAL_CLASS_UID, ARTIFICIAL_INSTANCE_ROOT
from support import dw

# Real pynetdicom traffic, captured with tcpdump.
pytestmark = [pytest.mark.interop, pytest.mark.root]

CT = get_testdata_file("CT_small.dcm")


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    peers.require_capture()
    pcap, port = dp.services_capture(tmp_path_factory.mktemp("svc") / "services.pcap", CT)
    col, _ = dp.decode(pcap, port)
    return pcap, port, col.messages


EXPECTED = Counter({"CT Image Storage": 1, "C-FIND-RQ identifier": 1,
                    "C-FIND-RSP identifier": 3, "N-CREATE-RQ data set": 1,
                    "N-CREATE-RSP data set": 1, "N-SET-RQ data set": 1,
                    "N-SET-RSP data set": 1, "N-ACTION-RQ data set": 1,
                    "N-ACTION-RSP data set": 1})


def test_list_labels_each_data_set_by_its_message(services):
    pcap, port, _ = services
    lines = dw("export", "--list", "--ports", port, pcap, ok=True).stdout.splitlines()[1:]
    labels = Counter(re.split(r"\s{2,}", ln.strip())[2] for ln in lines)
    assert labels == EXPECTED, labels
    for ln in lines:
        if "CT Image Storage" not in ln:
            assert re.search(r"-(C-FIND|N-CREATE|N-SET|N-ACTION)-R(Q|SP)-data\.dcm", ln), ln


def test_non_storage_data_sets_get_unique_artificial_uids(tmp_path, services):
    pcap, port, messages = services
    out = tmp_path / "out"
    dw("export", "--ports", port, pcap, "-o", out, ok=True)
    files = sorted(out.iterdir())
    assert len(files) == sum(EXPECTED.values())
    ct = pydicom.dcmread(CT)
    instances = []
    for f in files:
        ds = pydicom.dcmread(f)
        meta = ds.file_meta
        instances.append(meta.MediaStorageSOPInstanceUID)
        if meta.MediaStorageSOPClassUID == ct.SOPClassUID:
            # The one C-STORE: its real UIDs, in the name too.
            assert meta.MediaStorageSOPInstanceUID == ct.SOPInstanceUID == ds.SOPInstanceUID
            assert f.name.endswith(f"-{ct.SOPInstanceUID}.dcm")
            continue
        assert meta.MediaStorageSOPClassUID == ARTIFICIAL_CLASS_UID, f.name
        m = re.fullmatch(re.escape(ARTIFICIAL_INSTANCE_ROOT) + r"\.(\d+)\.(\d+)",
                         meta.MediaStorageSOPInstanceUID)
        assert m, (f.name, meta.MediaStorageSOPInstanceUID)
        assert f.name.startswith(f"{int(m.group(1)):06d}-{m.group(2)}-"), f.name
        assert re.search(r"-(C-FIND-RQ|C-FIND-RSP|N-CREATE-RQ|N-CREATE-RSP|N-SET-RQ|"
                         r"N-SET-RSP|N-ACTION-RQ|N-ACTION-RSP)-", f.name), f.name
    assert len(set(instances)) == len(instances), Counter(instances).most_common(2)
    assert dp.STORAGE_COMMITMENT_INSTANCE not in instances
    # Every C-FIND response identifier and MPPS data set is there, as sent.
    sent = [m["raw"] for m in messages if m["raw"]]
    bodies = [f.read_bytes() for f in files]
    for raw in sent:
        assert sum(b.endswith(raw) for b in bodies) >= 1
    if shutil.which("dcmdump"):
        for f in files:
            d = subprocess.run(["dcmdump", "-q", str(f)], capture_output=True)
            assert d.returncode == 0 and not d.stderr.strip(), (f, d.stderr)


def test_sop_name_field_is_the_media_storage_instance(tmp_path, services):
    pcap, port, _ = services
    out = tmp_path / "named"
    dw("export", "--ports", port, pcap, "-o", out, "--name", "{sop}", ok=True)
    names = sorted(f.name for f in out.iterdir())
    ct = pydicom.dcmread(CT)
    assert f"{ct.SOPInstanceUID}.dcm" in names
    assert sum(n.startswith(ARTIFICIAL_INSTANCE_ROOT + ".") for n in names) == len(names) - 1
    assert not any(re.search(r"_\d+\.dcm$", n) for n in names), names   # no collisions


@pytest.mark.parametrize("first", ["C-STORE-RQ", "C-FIND-RSP"])
def test_data_set_whose_command_was_not_captured(tmp_path, services, first):
    # The capture begins between a command and its data set: a stored
    # object keeps the SOP UIDs it carries; a C-FIND identifier carrying
    # SOP UIDs (and its Query/Retrieve Level) gets artificial ones.
    pcap, port, messages = services
    msg = next(m for m in messages if m["name"] == first)
    cut = dp.cut_before(pcap, tmp_path / "cut.pcap", msg["first_frame"] + 1)
    late, _ = dp.decode(cut, port)
    head = late.messages[0]
    assert head["name"] == "Data Set" and head["raw"] == msg["raw"], head["name"]
    out = tmp_path / "out"
    p = dw("export", "--keep-incomplete", "--ports", port, cut, "-o", out, ok=True)
    listed = dw("export", "--list", "--ports", port, cut, ok=True).stdout.splitlines()[1]
    f = next(f for f in out.iterdir() if f.read_bytes().endswith(msg["raw"]))
    assert f.name.endswith(".dcm.incomplete"), p.stderr
    meta = pydicom.filereader.read_file_meta_info(f)
    if first == "C-STORE-RQ":
        ct = pydicom.dcmread(CT)
        assert (meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID) == (
            ct.SOPClassUID, ct.SOPInstanceUID)
        assert "CT Image Storage" in listed
    else:
        assert meta.MediaStorageSOPClassUID == ARTIFICIAL_CLASS_UID
        assert meta.MediaStorageSOPInstanceUID.startswith(ARTIFICIAL_INSTANCE_ROOT + ".")
        assert "Data Set (command not captured)" in listed
