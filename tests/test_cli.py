"""The command line: version, help, streams output, exit codes."""

import json
import subprocess

from dicomwire import __version__
from support import SAMPLE, dw, dw_pipe


def test_version_and_help():
    p = dw("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"dicomwire {__version__}"
    p = dw("--help")
    assert p.returncode == 0 and "streams" in p.stdout
    p = dw("streams", "--help")
    assert p.returncode == 0 and "-p PLUGIN" in p.stdout and "--fail-on" in p.stdout


def test_usage_errors_exit_2():
    assert dw().returncode == 2                               # no command
    p = dw("streams", SAMPLE, "-o", "no-colon")
    assert p.returncode == 2 and "NAME:VALUE" in p.stderr


def test_missing_and_non_capture_files_are_one_line_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a capture\n")
    for path, words in ((tmp_path / "missing.pcap", "No such file"),
                        (text, "not a pcap or pcapng"),
                        (tmp_path, "no capture files in this folder")):
        p = dw("streams", path)
        assert p.returncode == 2, p.stderr
        assert words in p.stderr
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_streams_text_lists_the_sample_streams():
    p = dw("streams", SAMPLE)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "3 streams" in lines[0]
    rows = [ln.split() for ln in lines[2:]]
    assert [r[0] for r in rows] == ["0", "1", "2"]
    assert all(r[3].endswith(":11112") and r[-1] == "fin" for r in rows)


def test_streams_json_matches_the_pipeline(cli):
    doc = json.loads(cli("streams", "-T", "json", SAMPLE, ok=True).stdout)
    assert doc["format"] == "pcap" and len(doc["streams"]) == 3
    s0 = doc["streams"][0]
    assert s0["client_known"] and s0["close"] == "fin"
    assert s0["bytes_c2s"] > 50_000 and s0["gaps"] == 0 and s0["conflicts"] == 0
    # The rejected association: request one way, 10-byte A-ASSOCIATE-RJ back.
    assert doc["streams"][1]["bytes_s2c"] == 10


def test_broken_pipe_is_quiet():
    p = dw_pipe("streams", SAMPLE, into="head -c 10")
    assert "Traceback" not in p.stderr and "Error" not in p.stderr


def test_progress_line_and_clear():
    import io

    from dicomwire.pipeline import Progress, run
    out = io.StringIO()
    bar = Progress(out, interval=0)
    calls = []

    def progress(done, total, frames):
        calls.append((done, total, frames))
        bar(done, total, frames)

    # Called per 8 MiB window of a classic pcap, else every 64k frames: a
    # small capture calls it once (mapped, the whole file is done) or never ...
    run(SAMPLE, progress=progress)
    size = SAMPLE.stat().st_size
    assert calls == [(size, size, 76)]
    calls.clear()
    run(io.BytesIO(SAMPLE.read_bytes()), progress=progress)
    assert len(calls) == 1 and calls[0][1:] == (None, 76)
    # ... the bar itself shows percent, megabytes and frames, and clears.
    bar(50_000_000, 100_000_000, 65536)
    assert "50%" in out.getvalue() and "65,536 frames" in out.getvalue()
    bar.clear()
    assert out.getvalue().endswith("\r\033[K")


def _split_rq_capture(path):
    """A capture whose first frame is not TCP (UDP, at 0 s), then a DICOM
    connection from 1 s on whose A-ASSOCIATE-RQ spans frames 5 (1.5 s) and
    6 (1.544 s: 44 ms later), then the A-ASSOCIATE-AC in frame 7 (1.6 s)."""
    import capgen as g
    import dicomgen as D
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 104)

    def tcp(src, dst, seq, ack, flags, payload=b""):
        return g.ipv4_tcp(src[0], dst[0], src[1], dst[1], seq, ack, flags, payload)

    rq, ac = D.assoc_rq(), D.assoc_ac()
    base = 1_700_000_000 * 10**9
    frames = [
        (0, g.ipv4("10.0.0.9", "10.0.0.8", g.P_UDP, g.udp("10.0.0.9", "10.0.0.8", 5000, 53, b"x"))),
        (1_000_000_000, tcp(c, s, 1000, 0, g.SYN)),
        (1_000_100_000, tcp(s, c, 5000, 1001, g.SYN | g.ACK)),
        (1_000_200_000, tcp(c, s, 1001, 5001, g.ACK)),
        (1_500_000_000, tcp(c, s, 1001, 5001, g.ACK, rq[:40])),
        (1_544_000_000, tcp(c, s, 1041, 5001, g.ACK | g.PSH, rq[40:])),
        (1_600_000_000, tcp(s, c, 5001, 1001 + len(rq), g.ACK | g.PSH, ac)),
    ]
    path.write_bytes(g.pcap([(base + t, g.ethernet(p)) for t, p in frames]))
    return path


def test_pdu_time_is_the_time_of_the_frame_shown(tmp_path):
    """The frame shown is the one that completed the PDU; the time shown is
    that frame's, in seconds since the first frame of the capture (tshark's
    frame.time_relative), not the PDU's first segment's since the first TCP
    segment. JSON keeps the first frame and its time too."""
    pcap = _split_rq_capture(tmp_path / "split.pcap")
    p = dw("show", pcap)
    assert p.returncode == 0, p.stderr
    lines = [ln.split()[:2] for ln in p.stdout.splitlines()]
    assert lines == [["6", "1.544000"], ["7", "1.600000"]]
    p = dw("show", "-T", "fields", "-e", "frame.number", "-e", "frame.time_relative", pcap)
    assert p.stdout.splitlines() == ["6\t1.544000000", "7\t1.600000000"]
    p = dw("show", "-T", "json", pcap)
    docs = json.loads(p.stdout)
    assert [(d["frame"], d["time"], d["first_frame"], d["first_time"]) for d in docs] == [
        (6, 1.544, 5, 1.5), (7, 1.6, 7, 1.6)]
    p = dw("show", "-Y", "frame.time_relative > 1.543 && frame.time_relative < 1.545", pcap)
    assert [ln.split()[0] for ln in p.stdout.splitlines()] == ["6"]
    import shutil
    if shutil.which("tshark"):
        t = subprocess.run(["tshark", "-n", "-r", str(pcap), "-T", "fields", "-e", "frame.number",
                            "-e", "frame.time_relative"], capture_output=True, text=True,
                           timeout=60)
        times = dict(ln.split("\t") for ln in t.stdout.splitlines())
        assert (times["6"], times["7"]) == ("1.544000000", "1.600000000")


def test_a_display_filter_travels_by_its_text():
    """A compiled -Y (closures) is pickled as its text and compiled again,
    as a --dask worker gets it."""
    import pickle
    from dicomwire.plugins.dicom.show import compile_filter
    f = compile_filter('dicom.pdu.type == 4 && PatientName contains "DOE"')
    g = pickle.loads(pickle.dumps(f))
    assert g is not f and g.text == f.text and g.fields == f.fields
    for values in ({"dicom.pdu.type": [4], "PatientName": ["DOE^J"]},
                   {"dicom.pdu.type": [4], "PatientName": ["ROE"]}, {}):
        assert g(values) == f(values)
    assert g({"dicom.pdu.type": [4], "PatientName": ["DOE^J"]})
