"""``dicomwire deidentify`` options of issue 17 beyond the profile's table:
the SOP classes known to carry burned-in text named in the summary, dates
shifted (Retain Longitudinal Temporal Information with Modified Dates),
replacements that stay valid values of their VR (PS3.5 6.2), data sets
cut by the capture walked up to the cut, stdin."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.filewriter import write_dataset

from dicomwire.exporters.deidentify.plan import Profile, Tally, plan_dataset
from dicomwire.exporters.deidentify.values import Mapper

CORPUS = Path(__file__).resolve().parent / "corpus" / "captures"


def encode(ds: Dataset, implicit=True) -> bytes:
    fp = pydicom.filebase.DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def apply(raw: bytes, patches) -> bytes:
    out = bytearray(raw)
    for at, new in patches:
        out[at:at + (new if isinstance(new, int) else len(new))] = \
            bytes(new) if isinstance(new, int) else new
    return bytes(out)


def planned(ds: Dataset, profile=None, mapper=None, implicit=True):
    raw = encode(ds, implicit)
    tally = Tally()
    patches = plan_dataset(raw, implicit, True, len(raw), profile or Profile(),
                           mapper or Mapper(b"k"), tally)
    out = pydicom.filebase.DicomBytesIO(apply(raw, patches))
    out.is_little_endian, out.is_implicit_VR = True, implicit
    return pydicom.filereader.read_dataset(out, implicit, True), tally


def test_the_summary_names_sop_classes_with_burned_in_text(cli, tmp_path):
    src = CORPUS / "store_dcmtk_multi_ts.pcap"          # a Secondary Capture among CTs
    r = cli("deidentify", "-q", str(src), "-o", str(tmp_path / "o.pcapng"), ok=True)
    assert "warning: 1 data set(s) of SOP classes known to carry burned-in text" in r.stdout
    assert "Secondary Capture Image Storage 1" in r.stdout and "--blank-pixels" in r.stdout
    r = cli("deidentify", "-q", str(src), "-o", str(tmp_path / "b.pcapng"), "--blank-pixels",
            ok=True)
    assert "burned-in text likely (pixel data blanked): Secondary Capture Image Storage 1" \
        in r.stdout and "warning: 1 data set" not in r.stdout
    r = cli("deidentify", "-q", str(CORPUS / "find_study.pcap"), "-o",
            str(tmp_path / "f.pcapng"), ok=True)
    assert "burned-in" not in r.stdout


def test_a_data_set_marked_burned_in_is_noticed():
    ds = Dataset()
    ds.PatientName, ds.BurnedInAnnotation = "DOE^JOHN", "YES"
    _new, tally = planned(ds)
    assert tally.burned_in
    ds.BurnedInAnnotation = "NO"
    assert not planned(ds)[1].burned_in
