"""`dicomwire export`: Part 10 files from the sample capture and from built
traffic; meta header, artificial UIDs, names, collisions, incomplete objects.
(Byte-identity with a bit-preserving SCP, per transfer syntax, is in
test_interop_dicom.py.)"""

import os
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

import capgen as g
from dicomgen import (AC, DATASET, RELEASE_RP, RELEASE_RQ, STORE_RQ, assoc_rq,
                      pdata)
from dicomwire.exporters.part10 import ARTIFICIAL_CLASS_UID, safe_component
from support import SAMPLE, dw
from test_expert import capture, exchange


def export(*args):
    return dw("export", *args)


def test_sample_export_reads_back(tmp_path):
    p = export(SAMPLE, "-o", tmp_path)
    assert p.returncode == 0, p.stderr
    files = sorted(tmp_path.iterdir())
    assert len(files) == 9 and "9 object(s) written" in p.stdout
    stores = [f for f in files if "C-FIND" not in f.name]
    assert len(stores) == 5
    for f in stores:
        ds = pydicom.dcmread(f)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert f.name.endswith(f"-{ds.SOPInstanceUID}.dcm")
        assert ds.file_meta.ImplementationClassUID == "1.2.826.0.1.3680043.8.427.10"
    tss = {str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
           for f in stores}
    assert "1.2.840.10008.1.2.1.99" in tss and "1.2.840.10008.1.2.2" in tss
    ident = pydicom.dcmread(tmp_path / "000035-1-C-FIND-RQ-data.dcm")
    assert ident.file_meta.MediaStorageSOPClassUID == ARTIFICIAL_CLASS_UID
    assert ident.file_meta.MediaStorageSOPInstanceUID == "1.2.826.0.1.3680043.8.427.11.2.35.1"
    if shutil.which("dcmdump"):
        for f in files:
            d = subprocess.run(["dcmdump", "-q", str(f)], capture_output=True)
            assert d.returncode == 0 and not d.stderr.strip(), (f, d.stderr)


def test_list_writes_nothing_and_min_size_zero_adds_commands(tmp_path):
    p = export(SAMPLE, "--list", "--min-size", "0")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["Packet", "Hostname", "Content"]
    assert any("C-ECHO-RQ" in ln and "MODALITY <-> STORESCP" in ln for ln in lines)
    assert len(lines) - 1 == 9 + 17           # 9 data sets + 17 command sets
    assert list(tmp_path.iterdir()) == []
    p = export(SAMPLE, "-o", tmp_path, "--min-size", "0")
    echo = pydicom.dcmread(next(tmp_path.glob("*-C-ECHO-RQ.dcm")))
    assert echo.CommandField == 0x0030
    assert echo.file_meta.MediaStorageSOPClassUID == ARTIFICIAL_CLASS_UID


def test_no_meta_writes_the_bare_data_set(tmp_path):
    export(SAMPLE, "-o", tmp_path / "meta")
    export(SAMPLE, "-o", tmp_path / "bare", "--no-meta")
    for f in (tmp_path / "bare").iterdir():
        full = (tmp_path / "meta" / f.name).read_bytes()
        assert full.endswith(f.read_bytes()) and full[128:132] == b"DICM"
        assert f.read_bytes()[128:132] != b"DICM"


def test_hostile_names_stay_inside_and_never_overwrite(tmp_path):
    rq = assoc_rq(calling="../../../etc", called="/abs\x01")
    steps = [(0, rq), (1, AC), (0, pdata((3, 1, STORE_RQ), ) + pdata((3, 2, DATASET))),
             (0, pdata((3, 1, STORE_RQ), ) + pdata((3, 2, DATASET))),
             (0, RELEASE_RQ), (1, RELEASE_RP)]
    cap = capture(tmp_path, packets=exchange(steps))
    out = tmp_path / "out"
    (out / "pre").mkdir(parents=True)
    p = export(cap, "-o", out, "--name", "{calling}/{called}/{sop}")
    assert p.returncode == 0, p.stderr
    written = sorted(x.relative_to(out) for x in out.rglob("*.dcm"))
    assert [str(w) for w in written] == [
        "etc/abs/1.2.826.0.1.3680043.9.7.dcm", "etc/abs/1.2.826.0.1.3680043.9.7_2.dcm"]
    assert all(out in (out / w).resolve().parents for w in written)
    # A second export into the same folder adds files, never replaces them.
    export(cap, "-o", out, "--name", "{calling}/{called}/{sop}")
    assert len(list(out.rglob("*.dcm"))) == 4
    assert safe_component("../..") == "unknown" and "/" not in safe_component("a/b")


def test_incomplete_objects_skipped_or_kept(tmp_path):
    # The data set's last fragment never comes: the association is aborted.
    from dicomgen import ABORT
    steps = [(0, assoc_rq()), (1, AC), (0, pdata((3, 1, STORE_RQ), ) + pdata((3, 0, DATASET))),
             (0, ABORT)]
    cap = capture(tmp_path, packets=exchange(steps))
    p = export(cap, "-o", tmp_path / "a")
    assert "0 object(s) written" in p.stdout and "not exported, bytes are missing" in p.stderr
    p = export(cap, "-o", tmp_path / "b", "--keep-incomplete", "--fail-on", "problems")
    assert p.returncode == 1
    (f,) = (tmp_path / "b").iterdir()
    assert f.name.endswith(".dcm.incomplete")


def test_usage_errors(tmp_path):
    assert export(SAMPLE).returncode == 2                         # neither -o nor --list
    p = export(SAMPLE, "-o", tmp_path, "--name", "{nope}")
    assert p.returncode == 2 and "template" in p.stderr
    assert "clinical" in export("--help").stdout


@pytest.mark.parametrize("value", ["prefs.thing:1", "dicom.tcp.port:104"])
def test_dash_o_name_value_stays_a_preference(tmp_path, value):
    from dicomwire.cli import build_parser
    args = build_parser().parse_args(["export", str(SAMPLE), "-o", value, "-o", str(tmp_path)])
    assert args.options == [value] and args.outdir == str(tmp_path)


def test_iter_objects_python_api():
    from dicomwire.exporters.part10 import iter_objects
    # By default the instances only: each has a SOP Instance UID (README).
    stores = list(iter_objects(str(SAMPLE), keep_raw=True))
    assert [o.kind for o in stores] == ["instance"] * 5
    assert all(o.message == "C-STORE-RQ" and o.dataset.SOPInstanceUID for o in stores)
    objs = list(iter_objects(str(SAMPLE), keep_raw=True, kinds=None))
    assert len(objs) == 9
    assert {o.kind for o in objs} == {"instance", "identifier"}
    assert [o for o in objs if o.kind == "identifier"] == list(
        iter_objects(str(SAMPLE), keep_raw=True, kinds=["identifier"]))
    assert stores[0].dataset.Modality == "CT" and stores[0].calling_ae == "MODALITY"
    assert stores[0].first_frame <= stores[0].last_frame == 15
    assert all(o.raw for o in objs)
    # Leaving early stops the pass and the worker thread.
    import threading
    it = iter_objects(str(SAMPLE))
    first = next(it)
    it.close()
    assert first.message == "C-STORE-RQ"
    assert not [t for t in threading.enumerate() if t.name == "dicomwire-iter-objects"]
    with pytest.raises(Exception, match="not a pcap"):
        list(iter_objects(__file__))


def test_export_display_filter():
    p = export(SAMPLE, "--list", "-Y", 'Modality == MR && dicom.assoc.ae.calling == DCMTKSCU')
    rows = p.stdout.splitlines()[1:]
    assert len(rows) == 1 and "DCMTKSCU <-> STORESCP" in rows[0] and "MR Image" in rows[0]
    p = export(SAMPLE, "--list", "-Y", 'dicom.cmd.name == "C-FIND-RSP"')
    assert len(p.stdout.splitlines()) - 1 == 3
    p = export(SAMPLE, "--list", "-Y", "Modality ==")
    assert p.returncode == 2 and "syntax error" in p.stderr


def test_spooled_data_sets_export_byte_identical(tmp_path, monkeypatch):
    """Data sets past the spool threshold are copied file to file (sendfile);
    the result equals what the in-memory path writes, and a target without a
    file descriptor gets the same bytes by hand."""
    import io

    from dicomwire.config import Config
    from dicomwire.exporters.part10 import Part10Exporter
    from dicomwire.pipeline import make_host, run
    from dicomwire.plugins.dicom import spool

    def export(outdir):
        outdir.mkdir()
        cfg = Config()
        host = make_host(cfg)
        exp = Part10Exporter(str(outdir))
        host.register(exp, "exp")
        run(str(SAMPLE), cfg, host)
        return {p.name: p.read_bytes() for p in Path(outdir).iterdir()}

    whole = export(tmp_path / "memory")
    monkeypatch.setattr(spool, "SPOOL_AT", 1000)
    spooled = export(tmp_path / "spooled")
    assert spooled == whole and len(whole) >= 5

    from dicomwire.hookspecs import hookimpl

    class Probe:
        @hookimpl
        def dicomwire_message(self, message):
            if message.has_dataset and message.dataset_len > 1000:
                buf = io.BytesIO()
                n = message.copy_dataset(buf)
                assert n == message.dataset_len and buf.getvalue() == message.dataset_bytes()
                seen.append(n)

    seen = []
    host = make_host(Config())
    host.register(Probe(), "probe")
    run(str(SAMPLE), Config(), host)
    assert seen and not host.errors


def test_memory_budget_spools_parallel_data_sets(monkeypatch):
    """Data sets held in memory together stay under MEMORY_BUDGET however
    many transfers overlap: the one growing past it goes to disk."""
    from dicomwire.plugins.dicom import model, spool
    monkeypatch.setattr(spool, "MEMORY_BUDGET", 100_000)
    monkeypatch.setattr(spool, "SPOOL_AT", 80_000)
    start = spool.held[0]
    msgs = [model.Message(None, 0, 1, 1, 0) for _ in range(5)]
    chunk = bytes(range(256)) * 8                      # 2 kB
    for _ in range(40):                                # 80 kB each, 400 kB in all
        for m in msgs:
            m.add_data(chunk)
            assert spool.held[0] - start <= 100_000 + len(chunk)
    assert sum(m._spool is not None for m in msgs) >= 3
    for m in msgs:
        assert m.dataset_bytes() == chunk * 40
        m.release()
    assert spool.held[0] == start                       # released bytes leave the count


def test_memory_budget_starts_fresh_each_run(monkeypatch):
    """Bytes a previous run never released (a failed dissector) do not make
    this run spool everything."""
    from dicomwire.config import Config
    from dicomwire.hookspecs import hookimpl
    from dicomwire.pipeline import make_host, run
    from dicomwire.plugins.dicom import spool
    spool.held[0] = 10 ** 12                        # as if leaked by an earlier run
    spooled = []

    class Probe:
        @hookimpl
        def dicomwire_message(self, message):
            if message.has_dataset:
                spooled.append(message._spool is not None)

    host = make_host(Config())
    host.register(Probe(), "probe")
    run(str(SAMPLE), Config(), host)
    assert spooled and not any(spooled) and spool.held[0] == 0


# --- the writer process (many objects into a fresh folder) ---

def _many_stores(tmp_path, n=60):
    from dicomgen import STORE_RSP, pdata
    steps = [(0, assoc_rq()), (1, AC)]
    for _ in range(n):
        steps += [(0, pdata((3, 3, STORE_RQ))), (0, pdata((3, 2, DATASET))),
                  (1, pdata((3, 3, STORE_RSP)))]
    steps += [(0, RELEASE_RQ), (1, RELEASE_RP)]
    p = tmp_path / "many.pcap"
    p.write_bytes(g.pcap([(i * 1000, g.ethernet(x)) for i, x in enumerate(
        g.exchange("10.0.0.1", "10.0.0.2", 40000, 104, steps))]))
    return p


def _export_in_process(capture_path, outdir):
    from dicomwire.exporters.part10 import Part10Exporter
    from dicomwire.pipeline import make_host, run
    from dicomwire.config import Config
    cfg = Config()
    host = make_host(cfg)
    os.makedirs(outdir, exist_ok=True)
    exp = Part10Exporter(str(outdir))
    host.register(exp, "export")
    run(str(capture_path), cfg, host)
    return exp


def _files(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


def test_writer_process_writes_what_the_exporter_would(tmp_path, monkeypatch):
    """Past WRITER_AFTER files a forked writer creates the rest: the same
    names, the same bytes, the same listing as writing them all here."""
    from dicomwire.exporters import part10
    cap = _many_stores(tmp_path)
    monkeypatch.setattr(part10, "WRITER_AFTER", 10 ** 9)
    alone = _export_in_process(cap, tmp_path / "alone")
    monkeypatch.setattr(part10, "WRITER_AFTER", 5)
    forked = _export_in_process(cap, tmp_path / "forked")
    assert len(alone.objects) == 60
    assert [(o.name, o.complete) for o in alone.objects] == \
        [(o.name, o.complete) for o in forked.objects]
    assert all(o.path for o in forked.objects)
    assert _files(tmp_path / "alone") == _files(tmp_path / "forked")
    # A folder that was not empty: no writer (names must see what is there).
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "other.txt").write_text("x")
    busy = _export_in_process(cap, tmp_path / "busy")
    assert busy._writer is None and len(_files(tmp_path / "busy")) == 61


def test_writer_process_errors_are_reported_not_lost(tmp_path, monkeypatch):
    """Files the writer cannot create are reported per object (not counted
    as written); a writer killed mid-run leaves the exporter writing here."""
    from dicomwire.exporters import part10
    cap = _many_stores(tmp_path, 40)
    monkeypatch.setattr(part10, "WRITER_AFTER", 0)
    monkeypatch.setattr(part10, "_CREATE", os.O_WRONLY)     # no O_CREAT: every open fails
    exp = _export_in_process(cap, tmp_path / "nocreate")
    assert exp.objects and all(o.path is None and "not written" in o.reason
                               for o in exp.objects)
    monkeypatch.undo()
    monkeypatch.setattr(part10, "WRITER_AFTER", 3)

    import signal

    from dicomwire.hookspecs import hookimpl

    class Killer:
        @hookimpl
        def dicomwire_message(self, message):
            w = exp2._writer
            if w is not None and len(w.sent) == 5:
                os.kill(w.pid, signal.SIGKILL)
                os.waitpid(w.pid, 0)       # gone: the next file finds a broken pipe

    from dicomwire.config import Config
    from dicomwire.pipeline import make_host, run
    cfg = Config()
    host = make_host(cfg)
    out = tmp_path / "killed"
    out.mkdir()
    exp2 = part10.Part10Exporter(str(out))
    host.register(Killer(), "killer")
    host.register(exp2, "export")
    run(str(cap), cfg, host)
    on_disk = _files(out)
    for o in exp2.objects:
        if o.path:
            assert o.name in on_disk and on_disk[o.name].endswith(DATASET)
        else:
            assert "not written" in o.reason and o.name not in on_disk
    # What the writer had not finished is reported; everything after its
    # death is written here.
    assert sum(1 for o in exp2.objects if o.path) >= 40 - 5 - 3


@pytest.mark.parametrize("extra, checks", [([], False), (["-p", "dicom-expert"], True)])
def test_export_leaves_the_checks_out_unless_asked(tmp_path, monkeypatch, extra, checks):
    """Export reports objects; the built-in checks are what `expert` reports.
    They are not run (per object they cost more than the file) unless named."""
    from dicomwire import cli
    seen = {}
    real = cli.run_capture

    def spy(args, *plugins, tap=None, prepared=None):
        host = prepared[1]
        seen.update(expert=not host.pm.is_blocked("dicom-expert"),
                    qr=not host.pm.is_blocked("dicom-qr"),
                    nservice=not host.pm.is_blocked("dicom-nservice"))
        return real(args, *plugins, tap=tap, prepared=prepared)

    monkeypatch.setattr(cli, "run_capture", spy)
    assert cli.main(["export", "-q", str(SAMPLE), "-o", str(tmp_path / "out"), *extra]) == 0
    assert seen == {"expert": checks, "qr": False, "nservice": False}
    assert len(list((tmp_path / "out").iterdir())) >= 5
