"""``show -V`` on encapsulated Pixel Data: the first item is the Basic Offset
Table (PS3.5 A.4), not a fragment. Real traffic: an RLE Lossless image made
by DCMTK dcmcrle, sent by storescu to storescp, both proposing RLE."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_fragments

import peers
from dicomwire.plugins.dicom.render_dataset import _value_text
from support import dw

RLE_LOSSLESS = "1.2.840.10008.1.2.5"


@pytest.fixture(scope="module")
def rle_store(tmp_path_factory):
    peers.require_capture()
    if not peers.have_dcmtk("storescu", "storescp", "dcmcrle"):
        pytest.skip("DCMTK storescu, storescp and dcmcrle are needed")
    tmp = tmp_path_factory.mktemp("rle")
    rle = tmp / "ct_rle.dcm"
    subprocess.run([peers.dcmtk_tool("dcmcrle"), get_testdata_file("CT_small.dcm"), str(rle)],
                   check=True, capture_output=True, timeout=60)
    ds = pydicom.dcmread(rle)
    assert ds.file_meta.TransferSyntaxUID == RLE_LOSSLESS and ds["PixelData"].is_undefined_length
    port = peers.free_port()
    scp = peers.start_storescp(port, tmp / "stored", ("+B", "+uf", "+xr"))
    try:
        with peers.capture(tmp / "rle.pcap", port):
            peers.run_storescu(port, [rle], ["-xr"])
    finally:
        peers.stop_process(scp)
    return tmp / "rle.pcap", port, ds


@pytest.mark.interop
@pytest.mark.root
def test_single_frame_rle_shows_its_offset_table_and_one_fragment(rle_store):
    pcap, port, ds = rle_store
    value = ds.PixelData
    bot_len = int.from_bytes(value[4:8], "little")
    frags = list(generate_fragments(value[8 + bot_len:]))
    assert len(frags) == 1 and int(ds.get("NumberOfFrames", 1)) == 1
    p = dw("show", "-V", "--ports", port, pcap, ok=True)
    (line,) = [ln for ln in p.stdout.splitlines() if "(7FE0,0010)" in ln]
    table = f"Basic Offset Table ({bot_len} bytes)" if bot_len else "Basic Offset Table (empty)"
    assert line.strip().endswith(
        f"Pixel Data: encapsulated, {table}, 1 fragment ({len(frags[0])} bytes)"), line
    assert "RLE Lossless" in p.stdout


def _pixel(value):
    return SimpleNamespace(tag=0x7FE00010, VR="OB", value=value, is_undefined_length=True)


def test_offset_table_empty_or_not_and_many_fragments():
    frames = [b"\x01" * 10, b"\x02" * 20, b"\x03" * 30]
    assert _value_text(_pixel(encapsulate(frames, has_bot=False))) == (
        "encapsulated, Basic Offset Table (empty), 3 fragments (10, 20, 30 bytes)")
    assert _value_text(_pixel(encapsulate(frames, has_bot=True))) == (
        "encapsulated, Basic Offset Table (12 bytes), 3 fragments (10, 20, 30 bytes)")
    assert _value_text(_pixel(encapsulate([b"\x07" * 4], has_bot=True))) == (
        "encapsulated, Basic Offset Table (4 bytes), 1 fragment (4 bytes)")
    # No item at all, or a first item that is no item: said, never raised.
    assert "unreadable" in _value_text(_pixel(b"\x00" * 16))


@pytest.mark.interop
@pytest.mark.root
def test_rle_store_cut_mid_stream_is_not_labelled_explicit_little_endian(tmp_path, rle_store):
    # Without the A-ASSOCIATE-AC, the data set walks as explicit VR little
    # endian but its Pixel Data is encapsulated: some compressed syntax,
    # which one the bytes do not say. No file claims Explicit VR LE.
    import dimse_peers as dp
    pcap, port, _ds = rle_store
    col, _ = dp.decode(pcap, port)
    store = next(m for m in col.messages if m["name"] == "C-STORE-RQ")
    assert store["ts"] == RLE_LOSSLESS
    cut = dp.cut_before(pcap, tmp_path / "cut.pcap", store["first_frame"])
    late, _ = dp.decode(cut, port)
    (a,) = late.assocs
    pc = a.contexts[store["context"]]
    assert pc.transfer_syntax is None and "encapsulated Pixel Data" in pc.inference.why
    dw("export", "--ports", port, cut, "-o", tmp_path / "out", ok=True)
    (f,) = (tmp_path / "out").iterdir()
    assert f.name.endswith(".dcm.unknown-ts")
    assert "TransferSyntaxUID" not in pydicom.filereader.read_file_meta_info(f)
