"""``dicomwire deidentify`` options of issue 17 beyond the profile's table:
the SOP classes known to carry burned-in text named in the summary, dates
shifted (Retain Longitudinal Temporal Information with Modified Dates),
replacements that stay valid values of their VR (PS3.5 6.2), data sets
cut by the capture walked up to the cut, stdin."""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest
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


def studies(path) -> list[tuple]:
    from dicomwire.exporters.part10 import iter_objects
    return [(o.message, o.dataset.get("StudyDate"), o.dataset.get("StudyTime"),
             o.dataset.get("PatientBirthDate"))
            for o in iter_objects(str(path), kinds=None)]


def test_dates_shifted_by_the_days_asked_for(cli, tmp_path):
    """C-FIND on real peers: the query's range moves on both ends, each
    response's date by the same days, times of day kept; birth dates (not
    in the option's column) still dummies."""
    src, out = CORPUS / "find_study.pcap", tmp_path / "o.pcapng"
    r = cli("deidentify", "-q", str(src), "-o", str(out), "--date-shift", "-10", ok=True)
    assert "dates shifted by -10 day(s)" in r.stdout and "PDU sequence identical" in r.stdout
    before, after = studies(src), studies(out)
    assert before[0][1] == "20240301-20240331" and after[0][1] == "20240220-20240321"
    assert [a[1] for a in after[1:]] == ["20240220", "20240221", "20240222", "20240223"]
    assert [a[2] for a in after[1:]] == [b[2] for b in before[1:]]        # times kept


def test_a_derived_shift_is_whole_weeks_and_follows_the_key(cli, tmp_path):
    import datetime
    src = CORPUS / "find_study.pcap"
    shifts = []
    for n, key in enumerate(("a", "a", "b")):
        out = tmp_path / f"{n}.pcapng"
        cli("deidentify", "-q", str(src), "-o", str(out), "--key", key,
            "--option", "retain-long-modified-dates", ok=True)
        new = datetime.date.fromisoformat(studies(out)[1][1])
        shifts.append((new - datetime.date(2024, 3, 1)).days)
    assert shifts[0] == shifts[1] != shifts[2]
    assert all(s % 7 == 0 and -3650 <= s <= -365 for s in shifts)
    # Without the option: the Basic Profile's dummies.
    cli("deidentify", "-q", str(src), "-o", str(tmp_path / "d.pcapng"), ok=True)
    assert {s[1] for s in studies(tmp_path / "d.pcapng")[1:]} == {"19000101"}
    assert {s[2] for s in studies(tmp_path / "d.pcapng")[1:]} == {"000000"}


def test_every_replacement_is_a_valid_value_of_its_vr():
    """PS3.5 6.2: what replaces a value validates as its VR (pydicom's
    validators), with and without the date shift; invalid dates blanked and
    counted; Timezone Offset From UTC stays an offset."""
    from pydicom.valuerep import validate_value
    from pydicom.config import RAISE
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientAge = "DOE^JOHN", "ID-0042", "045Y"
    ds.PatientSex, ds.PatientWeight, ds.PatientSize = "M", "81.5", "1.80"
    ds.StudyDate, ds.StudyTime = "20240229", "235959.123456"
    ds.AcquisitionDateTime = "20240101120000.5-0500"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.InstanceCreationDate = "20241301"                  # no 13th month
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.StudyID, ds.AccessionNumber = "123", "A12345"
    ds.StationName, ds.OperatorsName = "CT01", "SMITH^ANNE"
    ds.StudyInstanceUID, ds.FrameOfReferenceUID = "1.2.3.4.5", "1.23"
    for shift in (None, -70):
        options = ("retain-long-modified-dates",) if shift else ()
        new, tally = planned(ds, Profile(options, date_shift=shift), implicit=False)
        for elem in new:
            validate_value(elem.VR, elem.value, RAISE)
        assert new.TimezoneOffsetFromUTC == "+0000" and new.InstanceCreationDate == ""
        assert tally.counts["dates and times not valid in their VR (blanked)"] == 1
        assert new.FrameOfReferenceUID != "1.23" and not new.FrameOfReferenceUID.startswith("1.0")
        if shift:
            assert new.StudyDate == "20231221" and new.StudyTime == "235959.123456"
            assert new.AcquisitionDateTime == "20231023120000.5-0500"
        else:
            assert new.StudyDate == "19000101" and new.AcquisitionDateTime.endswith("+0000")


def resegmented(name, frame_no, size, drop=(), stop_after=None) -> bytes:
    """A corpus capture (Ethernet, IPv4 without options) whose frame
    ``frame_no`` is sent again as segments of ``size`` bytes; the segments
    numbered in ``drop`` are lost (a gap), and with ``stop_after`` the
    capture ends after that segment (cut)."""
    import struct

    import capgen
    from dicomwire.capture import open_capture
    frames = []
    with open_capture(str(CORPUS / f"{name}.pcap")) as cap:
        for n, ts, _lt, data, _orig, _i in cap:
            if n != frame_no:
                frames.append((ts, bytes(data)))
                continue
            ip, tcp = data[14:34], data[34:]
            sport, dport, seq, ack = struct.unpack_from("!HHII", tcp)
            payload = bytes(data[34 + (tcp[12] >> 4) * 4:14 + struct.unpack_from("!H", ip, 2)[0]])
            for i, at in enumerate(range(0, len(payload), size)):
                if i not in drop:
                    seg = capgen.ipv4_tcp("127.0.0.1", "127.0.0.1", sport, dport, seq + at,
                                          ack, 0x18, payload[at:at + size])
                    frames.append((ts + i, capgen.ethernet(seg, src=bytes(6), dst=bytes(6))))
                if i == stop_after:
                    return capgen.pcap(frames, nanosecond=True)
    return capgen.pcap(frames, nanosecond=True)


def first_store(path):
    from dicomwire.exporters.part10 import iter_objects
    return next(o for o in iter_objects(str(path), incomplete=True, kinds=None, keep_raw=True)
                if o.message == "C-STORE-RQ")


def test_a_data_set_cut_is_walked_up_to_the_cut(cli, tmp_path):
    """A C-STORE data set of DCMTK's with bytes lost in the middle, or the
    capture ending inside it: its elements before the first missing byte
    de-identified (not blanked), the rest zeros, no original value left."""
    from test_deidentify import originals
    for case, kw in (("gap", {"drop": (4,)}), ("cut", {"stop_after": 3})):
        src, out = tmp_path / f"{case}.pcap", tmp_path / f"{case}.pcapng"
        src.write_bytes(resegmented("store_dcmtk_multi_ts", 10, 1000, **kw))
        r = cli("deidentify", "-q", str(src), "-o", str(out), ok=True)
        assert "blanked: 1 x incomplete data set: walked up to the first byte missing" \
            in r.stdout, r.stdout
        assert "PDU sequence identical" in r.stdout
        before, after = first_store(src).raw, first_store(out).raw
        assert len(after) == len(before) and after != before
        new = first_store(out).dataset
        old = first_store(src).dataset
        assert new.PatientName and new.PatientName != old.PatientName
        assert len(str(new.PatientName)) == len(str(old.PatientName))
        assert new.SOPInstanceUID.startswith("2.25.")
        rest = slice(4000 - 12, None)       # past the first missing byte (PDV headers aside)
        assert not after[rest].strip(b"\0") and (case == "cut" or before[rest].strip(b"\0"))
        data = out.read_bytes()
        assert not [v for v in originals(src) if v in data]


@pytest.mark.slow
def test_stdin_is_kept_beside_the_output_then_removed(tmp_path):
    """``deidentify - -o OUT``: a pipe (gzip, even) read twice through a
    temporary file in the output's folder, gone afterwards; the same bytes
    as from the file under the same key."""
    from support import dw, dw_pipe
    src = CORPUS / "move_with_callback.pcap"
    out, ref = tmp_path / "out" / "o.pcapng", tmp_path / "ref.pcapng"
    out.parent.mkdir()
    p = dw_pipe("deidentify", "-", "-o", out, "--key", "k", source=f"gzip -c {src}")
    assert p.returncode == 0 and "PDU sequence identical" in p.stdout, p.stdout + p.stderr
    assert "stdin kept in " + str(out.parent) in p.stderr
    assert [f.name for f in out.parent.iterdir()] == ["o.pcapng"]
    dw("deidentify", "-q", src, "-o", ref, "--key", "k", ok=True)
    assert out.read_bytes() == ref.read_bytes()
    bad = dw("deidentify", "-", "-o", tmp_path / "out" / "x.pcapng", input="not a capture")
    assert bad.returncode == 2 and "not a pcap or pcapng capture" in bad.stderr
    assert [f.name for f in out.parent.iterdir()] == ["o.pcapng"]
