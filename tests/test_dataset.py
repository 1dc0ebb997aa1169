"""The data set structure walk (specs/dicom/dataset.py) against pydicom's
reading of real files, its fast headers against the Construct ones, and its
behaviour on cut and hostile data sets."""

import struct

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from dicomwire.specs.dicom import dataset as D

FILES = ["CT_small.dcm", "rtplan.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm",
         "image_dfl.dcm"]


def encoded(name):
    ds = pydicom.dcmread(get_testdata_file(name))
    ts = ds.file_meta.TransferSyntaxUID
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = ts.is_little_endian, ts.is_implicit_VR
    write_dataset(fp, ds)
    return ds, fp.getvalue(), ts.is_implicit_VR, ts.is_little_endian


def vr_of(tag):
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def pydicom_tags(ds):
    """Tags in file order with items and delimiters left out, as iterall gives them."""
    return [int(e.tag) for e in ds.iterall()]


@pytest.mark.parametrize("name", FILES)
def test_walk_finds_the_elements_pydicom_reads(name):
    ds, data, implicit, little = encoded(name)
    els = [D.Element._make(e) for e in D.walk(data, implicit, little, vr_of=vr_of)]
    ours = [e.tag for e in els if e.tag >> 16 != 0xFFFE]
    if name == "JPEG2000.dcm":
        pass       # pydicom does not list fragments; they are items here: left out above
    assert ours == pydicom_tags(ds)
    # Every value offset points just past its header and stays in the buffer.
    for e in els:
        assert e.value_offset <= len(data)
        if e.length != D.UNDEFINED and e.tag not in (D.ITEM,) and e.vr != "SQ":
            assert e.value_offset + e.length <= len(data)


@pytest.mark.parametrize("name", FILES)
def test_every_cut_is_a_data_set_error_never_anything_else(name):
    _, data, implicit, little = encoded(name)
    assert D.check(data, implicit, little) is None
    step = max(1, len(data) // 300)
    for cut in range(1, len(data), step):
        try:
            for _ in D.walk(data[:cut], implicit, little, vr_of=vr_of):
                pass
        except D.DataSetError as e:
            assert e.kind in ("truncated", "unterminated", "nesting")
            assert 0 <= e.offset <= cut
        # Cutting exactly between two top-level elements is a valid data set.


def test_cut_inside_the_last_value_names_the_element():
    _, data, implicit, little = encoded("CT_small.dcm")
    err = D.check(data[:-3], implicit, little)
    assert err.kind == "truncated" and err.tag is not None and "byte(s) left" in str(err)


def test_fast_headers_match_the_construct_headers():
    cases = [(D.IMPLICIT_LE, D.FAST_HEADERS[True][0], (0x0010, 0x0010, 8)),
             (D.IMPLICIT_BE, D.FAST_HEADERS[False][0], (0x0010, 0x0010, 8))]
    for c, s, (g, e, n) in cases:
        b = c.build(dict(group=g, element=e, length=n))
        assert s.unpack(b) == (g, e, n) and len(b) == s.size
    for c, s in ((D.EXPLICIT_SHORT_LE, D.FAST_HEADERS[True][1]), (D.EXPLICIT_SHORT_BE, D.FAST_HEADERS[False][1])):
        b = c.build(dict(group=8, element=0x18, vr=b"UI", length=26))
        assert s.unpack(b) == (8, 0x18, b"UI", 26) and len(b) == s.size
    for c, s in ((D.EXPLICIT_LONG_LE, D.FAST_HEADERS[True][2]), (D.EXPLICIT_LONG_BE, D.FAST_HEADERS[False][2])):
        b = c.build(dict(group=0x7FE0, element=0x10, vr=b"OB", length=1 << 20))
        assert s.unpack(b) == (0x7FE0, 0x10, b"OB", 1 << 20) and len(b) == s.size


def nested(depth, undefined=True):
    """``depth`` sequences, each holding one item holding the next."""
    if undefined:
        opn = b"\x08\x00\x40\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
        cls = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
        return opn * depth + cls * depth
    inner = b""
    for _ in range(depth):
        item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner
        inner = b"\x08\x00\x40\x11SQ\x00\x00" + struct.pack("<I", len(item)) + item
    return inner


def test_deep_nesting_is_walked_without_recursion_up_to_the_bound():
    data = nested(50)
    els = list(D.walk(data, max_depth=200))
    assert max(e[5] for e in els) == 99          # 50 sequences, 50 items
    assert D.check(nested(20)) is None
    assert D.check(data).kind == "depth"         # 64 levels by default
    with pytest.raises(D.DataSetError) as e:
        list(D.walk(nested(10_000)))
    assert e.value.kind == "depth"
    # The bound is a parameter, not a recursion limit.
    assert len(list(D.walk(nested(2000), max_depth=5000))) == 8000


def test_defined_length_nesting_and_skipping_sequences():
    data = nested(20, undefined=False)
    assert len(list(D.walk(data, max_depth=100))) == 40
    assert len(list(D.walk(data, sequences=False))) == 1
    # An item longer than its sequence:
    bad = b"\x08\x00\x40\x11SQ\x00\x00" + struct.pack("<I", 8) + b"\xfe\xff\x00\xe0" \
        + struct.pack("<I", 4) + bytes(4)
    with pytest.raises(D.DataSetError) as e:
        list(D.walk(bad))
    assert e.value.kind == "nesting"


def test_encapsulated_pixel_data_fragments():
    frag = b"\xfe\xff\x00\xe0" + struct.pack("<I", 4) + b"abcd"
    px = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\x00\x00\x00\x00" \
        + frag * 3 + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    els = [D.Element._make(e) for e in D.walk(px)]
    assert [e.tag for e in els] == [0x7FE00010] + [D.ITEM] * 4 + [D.SEQ_END]
    assert D.check(px[:-8]).kind == "unterminated"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.booleans(), st.booleans())
def test_garbage_only_ever_raises_data_set_error(data, implicit, little):
    try:
        for e in D.walk(data, implicit, little, vr_of=vr_of):
            assert e[0] < len(data)
    except D.DataSetError:
        pass


def test_generated_uid_names_match_pydicom():
    # specs/dicom/uids.py is generated (tests/make_uids.py): rerun it when this fails.
    import runpy

    import pydicom
    import pydicom._uid_dict

    from dicomwire.specs.dicom.uids import PYDICOM_VERSION, UID_NAMES
    # The table as pydicom ships it (pynetdicom adds to the live one on import).
    shipped = runpy.run_path(pydicom._uid_dict.__file__)["UID_dictionary"]
    theirs = {u: entry[0] for u, entry in shipped.items()}
    if pydicom.__version__ == PYDICOM_VERSION:
        assert UID_NAMES == theirs
    else:
        # Another pydicom: names of the UIDs both know must agree; new ones
        # only wait for the next regeneration.
        both = UID_NAMES.keys() & theirs.keys()
        assert len(both) > 400 and {u: UID_NAMES[u] for u in both} == {u: theirs[u] for u in both}


def test_scan_reads_top_level_values_and_the_break():
    _, data, implicit, little = encoded("CT_small.dcm")
    found, err = D.scan(data, implicit, little, (0x00080016, 0x00080018, 0x00100010))
    assert err is None and D.text(found[0x00080016]) == "1.2.840.10008.5.1.4.1.1.2"
    assert D.text(found[0x00100010]) == "CompressedSamples^CT1"
    found, err = D.scan(data[:-10], implicit, little, (0x00080016,))
    assert err.kind == "truncated" and 0x00080016 in found


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FILES[:4]), min_size=1, max_size=1), st.integers(0, 10_000),
       st.binary(max_size=12))
def test_scan_fast_loop_equals_the_walk(names, cut, junk):
    """scan's plain loop and the generic walk give the same values and breaks."""
    _, data, implicit, little = encoded(names[0])
    data = data[:len(data) - cut % 200] + junk
    wanted = (0x00080016, 0x00080018, 0x7FE00010, 0x00100010)
    fast = D.scan(data, implicit, little, wanted)
    slow = D._scan_walk(data, implicit, little, wanted)
    assert fast[0] == slow[0]
    assert (fast[1] is None) == (slow[1] is None)
    if fast[1] is not None:
        assert (fast[1].kind, fast[1].offset, str(fast[1])) == \
            (slow[1].kind, slow[1].offset, str(slow[1]))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FILES[:4]), st.integers(0, 300), st.lists(st.integers(1, 4000),
                                                                 min_size=1, max_size=40))
def test_scan_over_unjoined_fragments_equals_scan_over_bytes(name, cut, sizes):
    _, data, implicit, little = encoded(name)
    data = data[:len(data) - cut]
    parts, at = [], 0
    for n in sizes * (len(data) // max(1, sum(sizes)) + 1):
        if at >= len(data):
            break
        parts.append(memoryview(data)[at:at + n] if n % 2 else data[at:at + n])
        at += n
    wanted = (0x00080016, 0x00080018, 0x7FE00010)
    chunks = D.Chunks(parts)
    assert len(chunks) == len(data) and chunks[5:900] == data[5:900]
    got, want = D.scan(chunks, implicit, little, wanted), D.scan(data, implicit, little, wanted)
    assert got[0] == want[0] and str(got[1]) == str(want[1])
