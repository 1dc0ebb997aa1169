"""`dicomwire annotate`: every frame copied with its time, interface and
lengths; DICOM comments (summaries, association, expert infos); existing
comments kept; --only-dicom."""

import shutil
import subprocess

import pytest

import capgen as g
from dicomgen import AC, RELEASE_RP, RELEASE_RQ, RQ, ECHO_RQ, ECHO_RSP, pdata
from dicomwire.capture import open_capture
from support import SAMPLE, dw
from test_expert import exchange


def annotate(src, out, *extra):
    return dw("annotate", src, "-o", out, *extra)


def frames(path):
    r = open_capture(str(path))
    got = list(r.frames())
    return r, got


def test_sample_copied_exactly_with_dicom_comments(tmp_path):
    out = tmp_path / "a.pcapng"
    p = annotate(SAMPLE, out)
    assert p.returncode == 0, p.stderr
    _, before = frames(SAMPLE)
    reader, after = frames(out)
    assert reader.format == "pcapng" and len(after) == len(before) == 76
    assert [(f.ts_ns, f.data, f.orig_len, f.linktype) for f in after] == \
           [(f.ts_ns, f.data, f.orig_len, f.linktype) for f in before]
    c = reader.comments
    assert c[4][0].startswith("DICOM: A-ASSOCIATE request MODALITY --> STORESCP")
    assert "[association 0: MODALITY <-> STORESCP]" in c[4][0]
    assert any("Expert Info (warn/response-code) dicom.assoc.reject" in x for x in c[51])
    assert not c.get(1)                      # the SYN carries no DICOM


@pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")
def test_tshark_reads_the_comments(tmp_path):
    out = tmp_path / "a.pcapng"
    annotate(SAMPLE, out)
    p = subprocess.run(["tshark", "-r", str(out), "-Y", "frame.comment", "-T", "fields",
                        "-e", "frame.number", "-e", "frame.comment"], capture_output=True,
                       text=True, timeout=120)
    rows = dict(line.split("\t", 1) for line in p.stdout.splitlines())
    assert "C-ECHO-RSP ID=1 (Success)" in rows["9"]
    assert "dicom.assoc.reject" in rows["51"]
    # Every frame, the plain blocks written directly too, reads back whole.
    p = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.len",
                        "-e", "frame.cap_len"], capture_output=True, text=True, timeout=120)
    errors = [x for x in p.stderr.splitlines() if "Running as user" not in x]
    assert p.returncode == 0 and not errors, p.stderr
    lens = [line.split("\t") for line in p.stdout.splitlines()]
    assert len(lens) == 76 and all(a == b for a, b in lens)


def test_interfaces_existing_comments_truncation_and_only_dicom(tmp_path):
    dicom = exchange([(0, RQ), (1, AC), (0, pdata((1, 3, ECHO_RQ))), (1, pdata((1, 3, ECHO_RSP))),
                      (0, RELEASE_RQ), (1, RELEASE_RP)])
    web = g.conversation("10.0.0.7", "10.0.0.8", 40001, 80, [b"GET / HTTP/1.0\r\n\r\n"])
    blocks = [g.IDB(g.LT_ETHERNET, name="eth0"), g.IDB(g.LT_RAW, name="tun0")]
    for i, pk in enumerate(dicom):
        comments = ["kept from the original"] if i == 0 else []
        blocks.append(g.EPB(0, g.ethernet(pk), 1_000_000 * i + 7000, comments=comments))
    for i, pk in enumerate(web):
        blocks.append(g.EPB(1, pk, 50_000_000 + i))
    # A snaplen-cut copy of the last web frame: the original length is kept.
    blocks.append(g.EPB(1, web[-1][:30], 60_000_000, orig_len=len(web[-1])))
    src = tmp_path / "in.pcapng"
    src.write_bytes(g.pcapng(g.Section(blocks)))

    out = tmp_path / "all.pcapng"
    assert annotate(src, out).returncode == 0
    reader, got = frames(out)
    assert [i.linktype for i in reader.interfaces] == [1, 101]
    assert [i.name for i in reader.interfaces] == ["eth0", "tun0"]
    assert len(got) == len(dicom) + len(web) + 1
    assert got[-1].orig_len == len(web[-1]) and len(got[-1].data) == 30
    assert reader.comments[1][0] == "kept from the original"
    assert got[0].ts_ns == 7000
    # SYN, SYN-ACK, then two frames per step: the C-ECHO-RQ (third step) is frame 7.
    assert any("C-ECHO-RQ" in x for x in reader.comments[7])

    only = tmp_path / "only.pcapng"
    assert annotate(src, only, "--only-dicom").returncode == 0
    reader, got = frames(only)
    assert len(got) == len(dicom)
    assert {f.iface for f in got} == {0}


def test_usage(tmp_path):
    p = dw("annotate", SAMPLE)
    assert p.returncode == 2 and "-o OUT.pcapng" in p.stderr
